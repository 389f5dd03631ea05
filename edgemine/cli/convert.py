"""``edgemine convert``: a Keras model file to ONNX, to ``.edgemine`` and to a device bundle,
without TensorFlow (see :mod:`edgemine.keras`).

Examples::

    edgemine convert model.keras -o model.onnx --opset 17
    edgemine convert model.h5 -o model.edgemine
    edgemine convert cnn.keras -o cnn.onnx --int8 --calibration calib.npz --bundle cnn_pi --target rpi
    edgemine convert model.weights.h5 --model arch.json -o model.onnx
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from ._click import Command

_EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)


def _check_options(output: Path, opset, nchw, int8, calibration, bundle_dir, target) -> bool:
    """Whether an ONNX file is needed; one-line errors for options that do not fit together."""
    suffix = output.suffix.lower()
    if suffix not in (".onnx", ".edgemine"):
        raise click.ClickException(f"{output.name}: the output must end in .onnx or .edgemine")
    onnx_needed = suffix == ".onnx" or bundle_dir is not None
    if not onnx_needed and (opset is not None or nchw or int8):
        raise click.ClickException("--opset, --nchw and --int8 need an .onnx output or --bundle")
    if calibration is not None and not int8:
        raise click.ClickException("--calibration needs --int8")
    if target is not None and bundle_dir is None:
        raise click.ClickException("--target needs --bundle")
    return onnx_needed


def _architecture(path: Path | None):
    """The model a weights-only file loads into: a .edgemine, a zoo .json or a Keras file."""
    if path is None:
        return None
    from .train import _load_any_model

    model, _ = _load_any_model(str(path))
    if not model.built:
        model.build()
    return model


def _describe(model) -> str:
    """``Sequential, 9 layers, 2,258 parameters, input (28, 28, 1)`` (a functional model's
    inputs each)."""
    from ..models import Sequential

    kind = "Sequential" if isinstance(model, Sequential) else "functional"
    shapes = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
    inputs = ", ".join(str(tuple(s)) for s in shapes)
    return (
        f"{kind}, {len(model.layers)} layers, {model.count_params():,} parameters, "
        f"input{'s' if len(shapes) > 1 else ''} {inputs}"
    )


@click.command("convert", cls=Command)
@click.argument("source", metavar="IN", type=_EXISTING)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="OUT.onnx or OUT.edgemine (the suffix picks the format).",
)
@click.option(
    "--model",
    "arch",
    type=_EXISTING,
    help="For a .weights.h5 file: the model it belongs to (.edgemine, zoo .json or Keras file).",
)
@click.option("--opset", type=int, default=None, help="Target ONNX opset (default 17).")
@click.option("--nchw", is_flag=True, help="Take NCHW images (no Transpose at the input).")
@click.option("--int8", "int8", is_flag=True, help="Quantize the ONNX output / bundle to int8.")
@click.option("--calibration", type=_EXISTING, help="Calibration .npz for --int8.")
@click.option(
    "--bundle",
    "bundle_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write a deployable folder (see bundle).",
)
@click.option(
    "--target",
    type=click.Choice(["rpi", "jetson", "generic"]),
    default=None,
    help="The bundle's device (default rpi).",
)
@click.option("--labels", type=_EXISTING, help="The bundle's class names (see bundle).")
@click.option(
    "--vocab", type=_EXISTING, help="A text model's tokenizer word_index (JSON), for --bundle."
)
def convert(
    source: Path,
    output: Path,
    arch: Path | None,
    opset: int | None,
    nchw: bool,
    int8: bool,
    calibration: Path | None,
    bundle_dir: Path | None,
    target: str | None,
    labels: Path | None,
    vocab: Path | None,
) -> None:
    """Convert a Keras model file (IN: .keras, .h5, or .weights.h5 with --model) to OUT.

    Needs no TensorFlow, Keras, PyTorch or JAX. Layers, activations or options that edgemine
    does not compute exactly as Keras does are refused with an error naming them.
    """
    from ..keras import load_keras
    from ..onnx import DEFAULT_OPSET, export

    onnx_needed = _check_options(output, opset, nchw, int8, calibration, bundle_dir, target)
    if bundle_dir is None and (labels or vocab):
        raise click.ClickException("--labels and --vocab need --bundle")
    model = load_keras(source, model=_architecture(arch))
    if (
        bundle_dir is not None
        and vocab is None
        and (model.preprocessing or {}).get("kind") == "text"
    ):
        # a Keras file has no tokenizer: never fall back on the bundled corpus's vocabulary
        raise click.ClickException(
            "bundling a text model needs its tokenizer: --vocab word_index.json"
        )
    click.echo(f"read {source.name}: {_describe(model)}")
    if output.suffix.lower() == ".edgemine":
        model.save(output)
        click.echo(f"wrote {output} ({output.stat().st_size / 1024:.1f} KB)")
    if not onnx_needed:
        return
    with tempfile.TemporaryDirectory(prefix="edgemine-convert-") as tmp:
        onnx_out = output if output.suffix.lower() == ".onnx" else Path(tmp) / "model.onnx"
        fp32 = Path(tmp) / "model_fp32.onnx" if int8 else onnx_out
        export(model, fp32, opset=opset or DEFAULT_OPSET, nchw_input=nchw)
        if int8:
            from ..quantize import quantize_int8
            from .deploy import _calibration

            quantize_int8(
                fp32,
                onnx_out,
                calibration=_calibration(calibration, 300),
                symmetric=(target == "jetson"),
            )
        if onnx_out == output:
            kind = "int8 " if int8 else ""
            size = output.stat().st_size / 1024
            click.echo(
                f"wrote {output} ({kind}ONNX, opset {opset or DEFAULT_OPSET}, {size:.1f} KB)"
            )
        if bundle_dir is not None:
            from ..bundle import write_bundle
            from .deploy import _vocab

            out = write_bundle(
                onnx_out,
                bundle_dir,
                target=target or "rpi",
                labels=labels,
                preprocessing=_vocab(vocab),
            )
            click.echo(f"wrote {out}/ (bundle for {target or 'rpi'})")
