"""``edgemine quantize`` and ``edgemine bundle``: int8/fp16 models and deployable folders.

Example::

    edgemine quantize mnist.onnx -o mnist_int8.onnx --int8 --eval test.npz
    edgemine bundle mnist.edgemine -o mnist_pi --target rpi --int8
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from ._click import Command

_MODEL = click.Path(exists=True, dir_okay=False, path_type=Path)
_DATA = click.Path(exists=True, dir_okay=False, path_type=Path)


def _fail(exc: Exception) -> click.ClickException:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return click.ClickException(line)


def _calibration(path: Path | None, samples: int):
    if path is None:
        return None
    from ..quantize import load_npz

    x, _ = load_npz(path, split="train")
    return x[:samples] if samples and len(x) > samples else x


def _evaluation_data(onnx_path: Path, eval_path: Path | None, calibration):
    """(x, y, description) for the report: --eval, else the bundled test set, else synthetic."""
    from ..quantize import default_eval_data, load_npz, synthetic_inputs

    if eval_path is not None:
        x, y = load_npz(eval_path, split="test")
        return x, y, str(eval_path)
    try:
        x, _, name = default_eval_data(onnx_path, n=500)
        return x, None, f"{len(x)} {name} test samples (no labels used; --eval for accuracy)"
    except Exception:
        if calibration is not None:
            return calibration, None, "the calibration inputs"
        return synthetic_inputs(onnx_path, n=64), None, "64 random inputs (no data set fits)"


@click.command("quantize", cls=Command)
@click.argument("model", metavar="MODEL", type=_MODEL)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the quantized .onnx.",
)
@click.option("--int8", "int8", is_flag=True, help="int8 with onnxruntime's quantizer.")
@click.option("--fp16", is_flag=True, help="float16 weights and compute; float32 input/output.")
@click.option(
    "--method",
    type=click.Choice(["static", "dynamic"]),
    help="int8 method (default: static QDQ for CNNs, dynamic for LSTM/Dense).",
)
@click.option(
    "--calibration",
    type=_DATA,
    help="Calibration .npz for static int8 (x or x_train); default: the bundled data set.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="Calibration samples.",
)
@click.option(
    "--eval",
    "eval_path",
    type=_DATA,
    help="Labelled .npz (x_test/y_test or x/y) for the accuracy in the report.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def quantize(
    model: Path,
    output: Path,
    int8: bool,
    fp16: bool,
    method: str | None,
    calibration: Path | None,
    samples: int,
    eval_path: Path | None,
    as_json: bool,
) -> None:
    """Write an int8 or fp16 version of MODEL (.onnx or .edgemine) and compare it with fp32.

    The report gives file sizes, the largest output difference, latency at batch 1 and 64
    (medians, onnxruntime CPU) and, with --eval, accuracy.
    """
    from ..bundle import ensure_onnx
    from ..quantize import compare_models, convert_fp16, format_report, quantize_int8

    if int8 == fp16:
        raise click.UsageError("choose exactly one of --int8 and --fp16")
    if fp16 and (method or calibration):
        raise click.UsageError("--method and --calibration apply to --int8 only")
    if method == "dynamic" and calibration:
        raise click.UsageError("--calibration is for static quantization")
    with tempfile.TemporaryDirectory(prefix="edgemine-quantize-") as tmp:
        try:
            src = ensure_onnx(model, tmp)
            calib = _calibration(calibration, samples)
            if int8:
                quantize_int8(src, output, method=method, calibration=calib, samples=samples)
            else:
                convert_fp16(src, output)
            x, y, where = _evaluation_data(src, eval_path, calib)
            report = compare_models(src, output, x, y)
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            raise _fail(exc) from None
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    click.echo(f"wrote {output}")
    click.echo(f"compared on {where}")
    click.echo(format_report(report))


def _vocab(path: Path | None) -> dict | None:
    if path is None:
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and "word_index" in data:
        data = data["word_index"]
    if isinstance(data, str):  # a Keras tokenizer_to_json document
        data = json.loads(data)
    if not isinstance(data, dict):
        raise click.ClickException(f"{path}: expected a JSON object word -> index")
    return {"word_index": data}


@click.command("bundle", cls=Command)
@click.argument("model", metavar="MODEL", type=_MODEL)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The bundle folder to write.",
)
@click.option(
    "--target",
    type=click.Choice(["rpi", "jetson", "generic"]),
    default="rpi",
    show_default=True,
    help="The device the bundle is for.",
)
@click.option("--int8", "int8", is_flag=True, help="Quantize to int8 first (see quantize).")
@click.option("--calibration", type=_DATA, help="Calibration .npz for --int8.")
@click.option("--labels", type=_DATA, help="Class names: a JSON list or one name per line.")
@click.option(
    "--vocab",
    type=_DATA,
    help="Tokenizer word_index (JSON) for a text model, if not the bundled corpus's.",
)
@click.option(
    "--engine",
    is_flag=True,
    help="Also carry the .edgemine model and finetune.py, to fine-tune it on the device "
    "with edgemine's engine (MODEL must be .edgemine).",
)
def bundle(
    model: Path,
    output: Path,
    target: str,
    int8: bool,
    calibration: Path | None,
    labels: Path | None,
    vocab: Path | None,
    engine: bool,
) -> None:
    """Write a self-contained folder that runs MODEL (.onnx or .edgemine) on a device.

    The folder holds model.onnx, labels.json, preprocessing.json, run.py (needs only numpy
    and onnxruntime), requirements.txt and a README.md for the target. With --engine it also
    holds model.edgemine, finetune.py and requirements-finetune.txt (needs edgemine).
    """
    from ..bundle import ensure_onnx, write_bundle
    from ..engine_bundle import write_engine_bundle
    from ..quantize import quantize_int8

    if calibration and not int8:
        raise click.UsageError("--calibration needs --int8")
    if engine and model.suffix.lower() != ".edgemine":
        raise click.UsageError("--engine needs a .edgemine model (the one finetune.py trains)")
    if engine and int8:
        raise click.UsageError(
            "--engine and --int8 do not mix: finetune.py re-exports an fp32 model.onnx"
        )
    with tempfile.TemporaryDirectory(prefix="edgemine-bundle-") as tmp:
        try:
            if engine:
                out = write_engine_bundle(
                    model, output, target=target, labels=labels, preprocessing=_vocab(vocab)
                )
            else:
                src = ensure_onnx(model, tmp)
                if int8:
                    src = quantize_int8(
                        src,
                        Path(tmp) / "model_int8.onnx",
                        calibration=_calibration(calibration, 300),
                        symmetric=(target == "jetson"),
                    )
                out = write_bundle(
                    src, output, target=target, labels=labels, preprocessing=_vocab(vocab)
                )
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            raise _fail(exc) from None
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    extra = ", with finetune.py" if engine else ""
    click.echo(f"wrote {out}/ ({size / 1024:.1f} KiB, target {target}{extra})")
    click.echo(f"  try: python {out / 'run.py'} --bench")
    if engine:
        click.echo(f"  fine-tune: python {out / 'finetune.py'} NEW_EXAMPLES/ --export-onnx")
