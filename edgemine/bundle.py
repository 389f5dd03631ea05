"""A self-contained folder that runs an exported model on a Raspberry Pi, a Jetson or any PC.

The folder holds ``model.onnx``, ``labels.json``, ``preprocessing.json``, ``run.py`` (a runner
that needs only numpy and onnxruntime, and Pillow for images) with ``edgemine_inputs.py`` (a copy
of ``edgemine.preprocessing.inputs``: images and texts are prepared exactly as on the
workstation), ``requirements.txt`` and a ``README.md`` for the target.

Example::

    from edgemine.bundle import write_bundle
    write_bundle("mnist_cnn.onnx", "mnist_pi", target="rpi")
    # then, on the Pi:  python3 run.py digit.png --json
"""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .quantize import model_spec, read_metadata, synthetic_inputs

__all__ = ["BUNDLE_FILES", "TARGETS", "ensure_onnx", "write_bundle"]

TARGETS = ("rpi", "jetson", "generic")
BUNDLE_FILES = (
    "model.onnx",
    "labels.json",
    "preprocessing.json",
    "run.py",
    "edgemine_inputs.py",
    "requirements.txt",
    "README.md",
)
BUNDLE_FORMAT = "edgemine-bundle/1"
KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'

#: the first onnxruntime release that runs each ONNX opset (onnxruntime's compatibility table)
_ORT_FOR_OPSET = {
    13: "1.7",
    14: "1.10",
    15: "1.10",
    16: "1.11",
    17: "1.13",
    18: "1.14",
    19: "1.15",
    20: "1.17",
    21: "1.18",
}


# ---------------------------------------------------------------------------------------------
# labels and preprocessing
# ---------------------------------------------------------------------------------------------


def _read_labels(labels: list[str] | str | Path) -> list[str]:
    if isinstance(labels, (list, tuple)):
        return [str(v) for v in labels]
    path = Path(labels)
    if not path.is_file():
        raise FileNotFoundError(f"labels file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        if isinstance(data, dict):  # {"0": "cat", "1": "dog"} or {"cat": 0, ...}
            if all(isinstance(v, int) for v in data.values()):
                return [k for k, _ in sorted(data.items(), key=lambda kv: kv[1])]
            return [str(data[k]) for k in sorted(data, key=int)]
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of class names")
        return [str(v) for v in data]
    return [line.strip() for line in text.splitlines() if line.strip()]


def _resolve_preprocessing(
    meta_pre: dict[str, Any] | None,
    given: dict[str, Any] | str | Path | None,
    onnx_path: Path,
) -> dict[str, Any]:
    pre: dict[str, Any] = dict(meta_pre or {})
    if isinstance(given, (str, Path)):
        given = json.loads(Path(given).read_text(encoding="utf-8"))
    if given:
        pre.update(given)
    spec = model_spec(onnx_path)
    if not pre.get("kind"):
        shape = spec.input_shape
        if np.issubdtype(spec.input_dtype, np.floating) and len(shape) == 4:
            nhwc = shape[3] in (1, 3, 4)
            h, w, c = (shape[1], shape[2], shape[3]) if nhwc else (shape[2], shape[3], shape[1])
            pre = {
                "kind": "image",
                "height": h,
                "width": w,
                "channels": c,
                "scale": 1.0 / 255.0,
                "layout": "NHWC" if nhwc else "NCHW",
                **pre,
            }
        elif np.issubdtype(spec.input_dtype, np.integer) and len(shape) == 2:
            pre = {"kind": "text", "maxlen": shape[1], **pre}
        else:
            pre = {"kind": "array", **pre}
    kind = pre["kind"]
    if kind == "image":
        for key in ("height", "width", "channels"):
            if not isinstance(pre.get(key), int):
                raise ValueError(f"image preprocessing needs an integer '{key}': {pre}")
        pre.setdefault("scale", 1.0 / 255.0)
        pre.setdefault("layout", "NHWC")
    elif kind == "text":
        if not isinstance(pre.get("maxlen"), int):
            raise ValueError(f"text preprocessing needs an integer 'maxlen': {pre}")
        for key, default in (
            ("lower", True),
            ("filters", KERAS_FILTERS),
            ("split", " "),
            ("padding", "pre"),
            ("truncating", "pre"),
        ):
            pre.setdefault(key, default)
        word_index = pre.get("word_index")
        if isinstance(word_index, (str, Path)):
            word_index = json.loads(Path(word_index).read_text(encoding="utf-8"))
        if not word_index:
            raise ValueError(
                "a text model needs its tokenizer vocabulary: pass preprocessing="
                "{'word_index': {...}} (CLI: --vocab word_index.json)"
            )
        num_words = pre.get("num_words")
        # Keras's Tokenizer keeps only words whose index is below num_words
        pre["word_index"] = {
            str(w): int(i)
            for w, i in sorted(word_index.items(), key=lambda kv: kv[1])
            if 0 < int(i) and (num_words is None or int(i) < int(num_words))
        }
    elif kind == "table":
        columns, width = pre.get("columns"), spec.input_shape[-1]
        if not isinstance(columns, list) or len(columns) != width:
            raise ValueError(f"table preprocessing needs the model's {width} 'columns': {pre}")
        for key in ("mean", "std"):
            if not isinstance(pre.get(key), list) or len(pre[key]) != width:
                raise ValueError(f"table preprocessing needs {width} values of '{key}'")
    elif kind == "series":
        for key in ("columns", "mean", "std", "window", "stride", "threshold"):
            if key not in pre:
                raise ValueError(f"an anomaly detector's preprocessing needs '{key}'")
    elif kind != "array":
        raise ValueError(
            f"unknown preprocessing kind {kind!r} (expected 'image', 'text', 'table' or 'series')"
        )
    return pre


# ---------------------------------------------------------------------------------------------
# requirements and README per target
# ---------------------------------------------------------------------------------------------


def _requirements(target: str, ort_version: str, np_version: str, images: bool) -> str:
    head = (
        "# Runtime of this edgemine bundle: numpy and onnxruntime"
        + (", and Pillow to read image files.\n" if images else ", nothing else.\n")
        + f"# Built and checked with onnxruntime {ort_version} and numpy {np_version}.\n"
        + ("pillow>=9\n" if images else "")
    )
    if target == "jetson":
        return head + (
            "# numpy 1.x: NVIDIA's onnxruntime-gpu wheels for JetPack are built against it\n"
            "# (lift the cap only if your onnxruntime-gpu wheel supports numpy 2).\n"
            "numpy>=1.19,<2\n"
            "# onnxruntime-gpu for Jetson does NOT come from PyPI (PyPI's onnxruntime-gpu is\n"
            "# x86_64 only, and PyPI's aarch64 onnxruntime has no CUDA/TensorRT): install the\n"
            "# wheel that matches your JetPack and Python from NVIDIA's Jetson Zoo / JetPack\n"
            "# packages, as README.md explains. Do not also install the CPU 'onnxruntime'.\n"
        )
    return head + "numpy>=1.24,<3\nonnxruntime>=1.19,<2\n"


def _model_summary(spec_json: dict[str, Any], labels: list[str], opset: int) -> str:
    pre = spec_json
    kind = pre["kind"]
    if kind == "image":
        what = (
            f"images of {pre['width']}x{pre['height']} pixels, {pre['channels']} channel(s), "
            f"scaled by {pre['scale']:.6g}, {pre['layout']}"
        )
    elif kind == "text":
        what = (
            f"texts of at most {pre['maxlen']} tokens ({len(pre['word_index'])} known words, "
            f"padding '{pre['padding']}')"
        )
    elif kind == "table":
        what = f"CSV rows with the columns {', '.join(pre['columns'])} (any order, a header row)"
    elif kind == "series":
        what = (
            f"a series in a CSV with the columns {', '.join(pre['columns'])}, scored in windows "
            f"of {pre['window']} points (stride {pre['stride']}), threshold {pre['threshold']:.6g}"
        )
    else:
        what = f"arrays of shape {pre['input']['shape']}"
    quant = pre["bundle"]["quantization"]
    shown = ", ".join(labels[:12]) + (", ..." if len(labels) > 12 else "")
    return (
        f"- input: {what}\n"
        f"- classes ({len(labels)}): {shown}\n"
        f"- precision: {quant}; ONNX opset {opset}; "
        f"{pre['bundle']['model_bytes'] / 1024:.1f} KiB\n"
    )


def _examples(kind: str, py: str) -> str:
    if kind == "image":
        return (
            f"{py} run.py digit.png                 # PNG/JPEG/...: grey or colour, exact size\n"
            f"{py} run.py images.npy --json         # uint8 (n, H, W) or float model inputs\n"
        )
    if kind == "text":
        return (
            f'{py} run.py --text "what a lovely day"\n'
            f"{py} run.py tweets.txt --json         # one text per line\n"
            f'echo "so tired of this" | {py} run.py -\n'
        )
    if kind == "table":
        return f"{py} run.py rows.csv --json          # a header row; columns in any order\n"
    if kind == "series":
        return f"{py} run.py series.csv > scores.csv  # index,score,flag per point\n"
    return f"{py} run.py inputs.npy --json\n"


_COMMON_USAGE = """\
Each prediction prints `input<TAB>class<TAB>probability`; `--json` prints one JSON document
(with the provider used), `--output out.npy` saves the raw outputs, and `--bench` times
batch 1 (median and p90 latency) and batch 64 (throughput). The runner says which
onnxruntime provider it used. It refuses inputs that do not fit the model (wrong image
size, a text longer than maxlen tokens unless `--truncate`, a missing or corrupt
model.onnx) with a one-line `error:` message and exit status 2.
"""


def _rpi_guide(kind: str, ort_note: str) -> str:
    return f"""\
## Install on a Raspberry Pi

Needs a **64-bit** OS (Raspberry Pi OS Bookworm 64-bit, or Ubuntu arm64) on a Pi 3, 4 or 5:
onnxruntime publishes aarch64 wheels only, none for 32-bit armv7. Check with `uname -m`
(it must say `aarch64`).

```sh
sudo apt install python3-venv
python3 -m venv ~/edgemine-venv
~/edgemine-venv/bin/pip install -r requirements.txt
```

## Run

```sh
{_examples(kind, "~/edgemine-venv/bin/python")}~/edgemine-venv/bin/python run.py --bench
```

{_COMMON_USAGE}
The Pi runs on onnxruntime's CPU provider, on all cores by default; `--threads 1` or `2`
leaves room for other programs. An int8 model (`edgemine bundle --int8`) is smaller;
whether it is faster depends on the model: measure with `--bench`.
{ort_note}
"""


def _jetson_guide(kind: str, ort_note: str) -> str:
    return f"""\
## Install on a Jetson

onnxruntime with CUDA and TensorRT for Jetson is **not on PyPI** (PyPI's `onnxruntime-gpu`
is x86_64 only, and PyPI's aarch64 `onnxruntime` is CPU only). Take the `onnxruntime-gpu`
wheel built for your JetPack and Python from NVIDIA's Jetson Zoo (elinux.org, "Jetson Zoo",
ONNX Runtime section) or, for JetPack 6, from NVIDIA's Jetson AI Lab package index. Find your
JetPack with `cat /etc/nv_tegra_release` (L4T release) or `apt show nvidia-jetpack`.

| JetPack | L4T | Python | CUDA | TensorRT | onnxruntime-gpu to use |
| --- | --- | --- | --- | --- | --- |
| 4.6.x | R32.6-R32.7 | 3.6 | 10.2 | 8.0-8.2 | 1.10 or 1.11 (Jetson Zoo) |
| 5.1.x | R35.2-R35.6 | 3.8 | 11.4 | 8.5 | 1.15 to 1.18 (Jetson Zoo) |
| 6.0 | R36.3 | 3.10 | 12.2 | 8.6 | 1.18 to 1.20 (Jetson AI Lab index) |
| 6.1 / 6.2 | R36.4 | 3.10 | 12.6 | 10.3 | 1.20 or newer (Jetson AI Lab index) |

The wheel must match both the Python version and the CUDA/TensorRT of the JetPack; a wheel
for another JetPack fails to load its providers and falls back to the CPU.
{ort_note}

```sh
python3 -m venv --system-site-packages ~/edgemine-venv   # keeps JetPack's TensorRT bindings
~/edgemine-venv/bin/pip install -r requirements.txt         # numpy (+ Pillow), see the file
~/edgemine-venv/bin/pip install onnxruntime_gpu-<version>-cp3X-cp3X-linux_aarch64.whl
~/edgemine-venv/bin/python -c "import onnxruntime as o; print(o.get_available_providers())"
```

## Run

```sh
{_examples(kind, "~/edgemine-venv/bin/python")}~/edgemine-venv/bin/python run.py --bench
```

{_COMMON_USAGE}
Providers are tried in this order: **TensorrtExecutionProvider, CUDAExecutionProvider,
CPUExecutionProvider**; the first that loads is used and printed. `--provider
CUDAExecutionProvider` forces one. TensorRT builds an engine for the model on the first run
(it can take minutes) and caches it in `trt_cache/` beside run.py (or `$EDGEMINE_TRT_CACHE`),
so later runs start fast. Time with `--bench` after that first run. An int8 bundle made for
Jetson (`edgemine bundle --int8 --target jetson`) uses symmetric QDQ int8, which TensorRT runs
as int8; a dynamically quantized (LSTM) int8 model uses onnxruntime's own CPU-only operators,
so keep LSTM models in fp32 or fp16 on a Jetson.
"""


def _generic_guide(kind: str, ort_note: str) -> str:
    return f"""\
## Install

Any 64-bit Linux, macOS or Windows machine with Python 3.10 or newer:

```sh
python3 -m venv .venv
.venv/bin/pip install -r requirements.txt
```

## Run

```sh
{_examples(kind, ".venv/bin/python")}.venv/bin/python run.py --bench
```

{_COMMON_USAGE}
The runner uses onnxruntime's CPU provider; `--provider` selects another one that your
onnxruntime build has (for example `CUDAExecutionProvider` with onnxruntime-gpu).
{ort_note}
"""


_GUIDES = {"rpi": _rpi_guide, "jetson": _jetson_guide, "generic": _generic_guide}


def _readme(target: str, spec_json: dict[str, Any], labels: list[str], opset: int) -> str:
    min_ort = _ORT_FOR_OPSET.get(opset)
    ort_note = (
        f"This model uses ONNX opset {opset}: it needs onnxruntime {min_ort} or newer."
        if min_ort
        else f"This model uses ONNX opset {opset}: check that your onnxruntime supports it."
    )
    return (
        f"# edgemine bundle ({target})\n\n"
        "A model exported by edgemine, ready to run with numpy and onnxruntime only.\n\n"
        f"{_model_summary(spec_json, labels, opset)}\n"
        "Files: `model.onnx` (the model), `labels.json` (class names), `preprocessing.json`\n"
        "(how inputs become model inputs), `run.py` (the runner), `requirements.txt`.\n\n"
        f"{_GUIDES[target](spec_json['kind'], ort_note)}"
    )


# ---------------------------------------------------------------------------------------------
# the bundle
# ---------------------------------------------------------------------------------------------


def ensure_onnx(model_path: str | Path, workdir: str | Path) -> Path:
    """The ONNX file for ``model_path``: itself if ``.onnx``, else an export into ``workdir``.

    A ``.edgemine`` model is loaded with ``edgemine.models.load_model`` and exported with
    ``edgemine.onnx.export`` (which writes the metadata that bundling and quantization read).

    Example::

        >>> ensure_onnx("mnist.edgemine", tmpdir)  # doctest: +SKIP
        PosixPath('/tmp/.../mnist.onnx')
    """
    path = Path(model_path)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    if path.suffix.lower() == ".onnx":
        return path
    if path.suffix.lower() != ".edgemine":
        raise ValueError(f"{path}: expected a .onnx or .edgemine model")
    from edgemine.models import load_model
    from edgemine.onnx import export

    out = Path(workdir) / (path.stem + ".onnx")
    export(load_model(path), out)
    return out


def _template(name: str) -> str:
    return resources.files("edgemine").joinpath("bundle_template", name).read_text(encoding="utf-8")


def _shape_json(shape: tuple[int | None, ...]) -> list[int | None]:
    return [None if d is None else int(d) for d in shape]


def write_bundle(
    onnx_path: str | Path,
    out_dir: str | Path,
    target: str = "rpi",
    labels: list[str] | str | Path | None = None,
    preprocessing: dict[str, Any] | str | Path | None = None,
) -> Path:
    """Write a self-contained deployment folder for ``onnx_path`` and return its path.

    ``target``: ``"rpi"`` (CPU, aarch64), ``"jetson"`` (TensorRT, CUDA, then CPU) or
    ``"generic"``. ``labels``: class names (a list, or a .json / one-per-line text file);
    default: the model's ``class_names`` metadata, else "0", "1", ...
    ``preprocessing``: a dict (or JSON file) laid over the model's ``preprocessing`` metadata;
    for a text model it must supply ``word_index`` unless the bundled data set offers it.
    The model is checked (onnx checker, one onnxruntime run) before anything is written.

    Example::

        >>> write_bundle("cnn.onnx", "bundle_pi", target="rpi")  # doctest: +SKIP
        PosixPath('bundle_pi')
        >>> write_bundle("lstm.onnx", "bundle_j", target="jetson",
        ...              preprocessing={"word_index": tokenizer.word_index})  # doctest: +SKIP
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    proto, n_outputs = _checked_model(onnx_path)
    meta, spec = read_metadata(proto), model_spec(proto)
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if labels is not None:
        names = _read_labels(labels)
    elif meta["class_names"]:
        names = [str(v) for v in meta["class_names"]]
    else:
        names = [str(i) for i in range(n_outputs)]
    if len(names) != n_outputs:
        raise ValueError(f"{len(names)} labels for a model with {n_outputs} outputs")

    pre = _resolve_preprocessing(meta["preprocessing"], preprocessing, onnx_path)
    if meta["vocab_size"]:  # token ids must index the Embedding's rows
        pre["vocab_size"] = meta["vocab_size"]
    pre["input"] = {
        "name": spec.input_name,
        "dtype": spec.input_dtype.name,
        "shape": _shape_json(spec.input_shape),
    }
    pre["output"] = {"name": spec.output_name, "shape": _shape_json(spec.output_shape)}
    pre["bundle"] = {
        "format": BUNDLE_FORMAT,
        "target": target,
        "edgemine_version": meta["edgemine_version"],
        "quantization": meta["quantization"] or "fp32",
        "opset": opset,
        "model_sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "model_bytes": onnx_path.stat().st_size,
    }
    _write_files(onnx_path, out_dir, target, names, pre, opset)
    return out_dir


def _checked_model(onnx_path: Path) -> tuple[onnx.ModelProto, int]:
    """The model, checked by onnx's checker and one onnxruntime run (a bundle is never written
    around a model that cannot load), and its number of outputs per sample."""
    import onnxruntime as ort

    if not onnx_path.is_file():
        raise FileNotFoundError(f"model file not found: {onnx_path}")
    try:
        proto = onnx.load(str(onnx_path))
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise ValueError(f"{onnx_path} is not a valid ONNX model: {exc}") from exc
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    name = model_spec(proto).input_name
    probe = sess.run(None, {name: synthetic_inputs(onnx_path, n=1)})[0]
    return proto, int(np.prod(probe.shape[1:]))


def _write_files(onnx_path: Path, out_dir: Path, target: str, names, pre: dict, opset: int):
    import onnxruntime as ort

    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / "model.onnx").resolve() != onnx_path.resolve():
        shutil.copyfile(onnx_path, out_dir / "model.onnx")
    (out_dir / "labels.json").write_text(json.dumps(names, indent=1) + "\n", encoding="utf-8")
    (out_dir / "preprocessing.json").write_text(
        json.dumps(pre, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    run_py = out_dir / "run.py"
    run_py.write_text(_template("run.py"), encoding="utf-8")
    run_py.chmod(0o755)
    inputs_py = resources.files("edgemine").joinpath("preprocessing", "inputs.py")
    (out_dir / "edgemine_inputs.py").write_text(inputs_py.read_text("utf-8"), encoding="utf-8")
    (out_dir / "requirements.txt").write_text(
        _requirements(target, ort.__version__, np.__version__, pre["kind"] == "image"),
        encoding="utf-8",
    )
    (out_dir / "README.md").write_text(_readme(target, pre, names, opset), encoding="utf-8")
