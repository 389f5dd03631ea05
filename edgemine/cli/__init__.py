"""The ``edgemine`` command line: train, evaluate, inspect, export, predict, bench, quantize, bundle,
sweep.

Errors print one line and exit non-zero; ``edgemine --debug ...`` shows the traceback instead.
"""

from __future__ import annotations

import sys

import click

from .. import __version__
from ._click import OneLineUsage


class _Group(OneLineUsage, click.Group):
    """Turns any exception from a command into a one-line error (unless --debug)."""

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


from .convert import convert  # noqa: E402
from .deploy import bundle, quantize  # noqa: E402
from .export import bench_cmd, export_cmd, predict_cmd  # noqa: E402
from .pipeline import pipeline  # noqa: E402
from .scale import sweep_cmd  # noqa: E402
from .train import evaluate, inspect_cmd, train  # noqa: E402

main.add_command(train)
main.add_command(evaluate)
main.add_command(inspect_cmd)
main.add_command(pipeline)
main.add_command(quantize)
main.add_command(bundle)
main.add_command(export_cmd)
main.add_command(predict_cmd)
main.add_command(bench_cmd)
main.add_command(convert)
main.add_command(sweep_cmd)
