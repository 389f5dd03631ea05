"""The ``edgemine`` command line: train, evaluate, explain, inspect, export, predict, bench,
quantize, bundle, convert, anomaly, sweep.

Errors print one line and exit non-zero; ``edgemine --debug ...`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import sys

import click

from .. import __version__
from ._click import OneLineUsage

#: name -> (module, attribute, the short help that ``edgemine --help`` shows). A command's
#: module is imported only when that command runs, so ``--help`` and each command load only
#: what they use (numba, onnx and onnxruntime take seconds to import). A test keeps the help
#: texts equal to the commands' own.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": (
        ".train",
        "train",
        "Train MODEL (a zoo spec's name such as seed_cnn, a spec .json, or a .edgemine file).",
    ),
    "evaluate": (
        ".train",
        "evaluate",
        "Report loss and metrics of a trained model on a test set, for a classifier with the "
        "per-class table (--report DIR: metrics.json, pictures and report.html).",
    ),
    "explain": (
        ".explain",
        "explain_cmd",
        "Explain MODEL's decisions on INPUT files: image files (a heat-map PNG and the "
        "attributions as .npy each) or, for text models, text files of one text per line (an "
        "HTML strip per file, each token's attribution in explanations.json); a table model's "
        "CSV rows get a bar chart each.",
    ),
    "inspect": (
        ".train",
        "inspect_cmd",
        "Show a model's layers, parameters and FLOPs (.edgemine, .onnx, Keras, a zoo name or "
        ".json).",
    ),
    "pipeline": (
        ".pipeline",
        "pipeline",
        "Train the seed CNN on bundled MNIST, export it, run it in onnxruntime, bundle it, report.",
    ),
    "export": (".export", "export_cmd", "Export a .edgemine model to ONNX."),
    "predict": (
        ".export",
        "predict_cmd",
        "Classify INPUT files (.npy, .npz, .csv, images, or text: one per line) with MODEL "
        "(.edgemine or .onnx).",
    ),
    "bench": (
        ".export",
        "bench_cmd",
        "Latency at batch 1 and throughput at a large batch: the engine vs onnxruntime.",
    ),
    "quantize": (
        ".deploy",
        "quantize",
        "Write an int8 or fp16 version of MODEL (.onnx or .edgemine) and compare it with fp32.",
    ),
    "bundle": (
        ".deploy",
        "bundle",
        "Write a self-contained folder that runs MODEL (.onnx or .edgemine) on a device.",
    ),
    "anomaly": (
        ".anomaly",
        "anomaly",
        "Find anomalies in sensor series with an autoencoder trained on normal data.",
    ),
    "convert": (
        ".convert",
        "convert",
        "Convert a Keras model file (IN: .keras, .h5, or .weights.h5 with --model) to OUT.",
    ),
    "sweep": (
        ".scale",
        "sweep_cmd",
        "Train SPEC (a zoo name or .json) once per grid point (and fold) on a Dask cluster; "
        "write results.csv and the best model to -o DIR.",
    ),
}


class _Group(OneLineUsage, click.Group):
    """Turns any exception from a command into a one-line error (unless --debug), and imports
    a command's module only when the command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        return getattr(importlib.import_module(module, __name__), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, _, short) in COMMANDS.items()])

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.ClickException as e:
            if isinstance(e, click.UsageError):
                e.ctx = None  # no "Usage: ..." / "Try --help" lines
            e.message = "; ".join(line.strip() for line in e.message.splitlines() if line.strip())
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise click.ClickException(f"{message}") from None


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="edgemine")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """edgemine: train small CNNs and LSTMs, export them to ONNX, ship them to edge devices."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
