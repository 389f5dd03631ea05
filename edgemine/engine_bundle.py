"""A bundle that can also train: the usual onnxruntime bundle plus the ``.edgemine`` model and
``finetune.py``, which fine-tunes it on the device with edgemine's own Numba engine from new
labelled examples and can re-export ``model.onnx`` for ``run.py``.

Example::

    from edgemine.engine_bundle import write_engine_bundle
    write_engine_bundle("mnist_cnn.edgemine", "mnist_pi", target="rpi")
    # then, on the Pi:  python3 finetune.py new_digits/ --epochs 3 --export-onnx
    #                   python3 run.py digit.png
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .bundle import BUNDLE_FILES, _template, write_bundle

__all__ = ["ENGINE_BUNDLE_FILES", "write_engine_bundle"]

ENGINE_FILES = ("model.edgemine", "finetune.py", "requirements-finetune.txt")
ENGINE_BUNDLE_FILES = BUNDLE_FILES + ENGINE_FILES

# Measured by tools/pi_check.sh --engine (tools/results/pi_check.md, section "engine"): the seed
# CNN's first prediction of 64 images, which compiles its kernels, against the same call again.
_COMPILE_COST = """\
**The first run compiles.** edgemine's kernels are compiled by Numba on first use, which takes
minutes on a small board; the compiled kernels are then kept in `.numba_cache/` in this folder
(or in `~/.cache/edgemine/numba` when this folder is read-only; `NUMBA_CACHE_DIR` overrides
both), so later runs load them instead of compiling. Deleting it only costs a new compile;
kernels compiled on another machine (a different CPU) are not used. Measured with the seed CNN
(`tools/pi_check.sh --engine`): on an emulated Raspberry Pi 4 (qemu, Cortex-A72) its first
prediction took about 240 s with an empty cache against about 7 s for the next call, and the
first training step about 160 s more than the others; with the cache filled, the first call of
a new process still took 133 s against 30 s for the next one while the cached kernels loaded
(the emulated timings are noisy). On the x86 development machine (2 shared cores) the first
call took about 53 s, and a whole `finetune.py` run on 320 images of the seed CNN (one epoch,
batch 32, with `--export-onnx`) took a median 31 s with an empty cache against 5 s once it was
filled. Emulation is slower than a real Pi, but plan for minutes on the first run, and run it
once before the device goes into service.
"""


def _requirements(version: str) -> str:
    return (
        "# On-device fine-tuning (finetune.py) with edgemine's own engine; run.py does not\n"
        "# need this. edgemine brings numpy, numba (aarch64 wheels on PyPI), onnx and\n"
        f"# onnxruntime. This bundle was made with edgemine {version}: install that release,\n"
        f"# or the wheel it was built as: pip install edgemine-{version}-py3-none-any.whl\n"
        f"edgemine=={version}\n"
    )


def _readme_section(target: str, kind: str) -> str:
    py = "~/edgemine-venv/bin/python" if target != "generic" else ".venv/bin/python"
    pip = py.replace("/python", "/pip")
    if kind == "image":
        layout = (
            "new_examples/\n  cat/   a.png b.png ...     # one folder per class, named as in"
            " labels.json\n  dog/   c.jpg ...           # images (PNG, JPEG, ...) of the model's size\n"
        )
    elif kind == "table":
        layout = "new_rows.csv                     # the model's columns and its label column\n"
    elif kind == "text":
        layout = (
            "new_examples/\n  positive/  a.txt ...      # one folder per class, named as in"
            " labels.json\n  negative/  b.txt ...      # one text per line\n"
        )
    else:
        layout = "examples.npz                # arrays x (model inputs) and y (classes)\n"
    jetson = ""
    if target == "jetson":
        jetson = (
            "\nOn a Jetson, keep NVIDIA's onnxruntime-gpu: install edgemine with `--no-deps` and"
            " then `numba click onnx h5py pillow`, since edgemine's own requirement would add PyPI's CPU"
            " `onnxruntime`. finetune.py trains on the CPU.\n"
        )
    return f"""
## Fine-tuning on the device

This bundle also carries `model.edgemine` (the model in edgemine's own format) and
`finetune.py`, which trains it further on newly collected labelled examples with edgemine's
Numba engine: no TensorFlow or PyTorch. It reads examples exactly as `run.py` does.

```sh
{pip} install -r requirements-finetune.txt   # edgemine (or its wheel)
```
{jetson}
```text
{layout}```

```sh
{py} finetune.py new_examples/ --epochs 3 --export-onnx
{py} finetune.py examples.npz --lr 1e-4 --batch-size 16 --json
{py} run.py image.png                  # with --export-onnx, run.py uses the tuned model
```

An `.npz` holds `x` (what `run.py` reads from a `.npy`) and `y` (class indices, class names or
one-hot rows). Options: `--epochs` (1), `--batch-size` (32), `--lr` (0.001), `--optimizer`
(adam, sgd, rmsprop), `--seed` (0: the same examples and options give the same model),
`--output` (default: replace `model.edgemine`, atomically), `--export-onnx` (replace
`model.onnx` too, after checking that onnxruntime gives the engine's answers). A class folder
that is not in `labels.json`, an image of the wrong size, NaN values or no examples at all are
refused with a one-line `error:` and a non-zero exit status.

{_COMPILE_COST}"""


def write_engine_bundle(
    model_path: str | Path,
    out_dir: str | Path,
    target: str = "rpi",
    labels: list[str] | str | Path | None = None,
    preprocessing: dict[str, Any] | str | Path | None = None,
) -> Path:
    """Write a bundle (see ``edgemine.bundle.write_bundle``) that can also fine-tune its model.

    ``model_path`` is a ``.edgemine`` classifier (one output per class). The folder gets the
    usual ``model.onnx`` + ``run.py`` (numpy and onnxruntime only) and, for training on the
    device with edgemine's engine, ``model.edgemine``, ``finetune.py`` and
    ``requirements-finetune.txt``; its README says how to use them.

    Example::

        >>> write_engine_bundle("cnn.edgemine", "cnn_pi", target="rpi")  # doctest: +SKIP
        PosixPath('cnn_pi')
    """
    from . import __version__
    from .models import load_model
    from .onnx import export

    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"model file not found: {model_path}")
    if model_path.suffix.lower() != ".edgemine":
        raise ValueError(f"{model_path}: a bundle that fine-tunes needs a .edgemine model")
    model = load_model(model_path, compile=False)
    out_shape = model.output_shape
    if out_shape is None or len(out_shape) != 1 or out_shape[0] < 2:
        raise ValueError(
            f"{model_path.name}: finetune.py trains classifiers with one output per class; "
            f"this model outputs {out_shape}"
        )
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="edgemine-engine-bundle-") as tmp:
        onnx_path = export(model, Path(tmp) / "model.onnx")
        write_bundle(onnx_path, out_dir, target, labels=labels, preprocessing=preprocessing)
    if (out_dir / "model.edgemine").resolve() != model_path.resolve():
        shutil.copyfile(model_path, out_dir / "model.edgemine")
    script = out_dir / "finetune.py"
    script.write_text(_template("finetune.py"), encoding="utf-8")
    script.chmod(0o755)
    (out_dir / "requirements-finetune.txt").write_text(_requirements(__version__), encoding="utf-8")
    spec = json.loads((out_dir / "preprocessing.json").read_text(encoding="utf-8"))
    spec["bundle"]["engine"] = {"model": "model.edgemine", "edgemine_version": __version__}
    (out_dir / "preprocessing.json").write_text(
        json.dumps(spec, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    readme = out_dir / "README.md"
    readme.write_text(
        readme.read_text(encoding="utf-8") + _readme_section(target, spec["kind"]),
        encoding="utf-8",
    )
    return out_dir
