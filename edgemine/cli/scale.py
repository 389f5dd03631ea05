"""Beyond one process: ``edgemine predict --dask`` and ``edgemine sweep`` on a Dask cluster.

Examples::

    edgemine predict mnist.onnx images.npy --dask local:2 -o predictions/   # chunk files
    edgemine predict mnist.onnx images.npy --dask tcp://10.0.0.5:8786 -o predictions.csv
    edgemine sweep seed_cnn --grid learning_rate=1e-3,3e-4 --grid batch_size=32,64 \\
        --epochs 1 --dask local:2 -o sweep/

Dask is imported only when one of these runs (``edgemine --help`` stays fast).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from ._click import Command


def _distributed():
    try:
        from .. import distributed
    except ImportError as e:
        raise click.UsageError(str(e)) from None
    return distributed


def _bar():
    """A progress callback for (done, total) on stderr."""
    from ..progress import ProgressBar

    state: dict = {}

    def update(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = ProgressBar(total, 1, stream=sys.stderr)
        state["bar"].update(done, {})
        if done == total:
            state["bar"].finish({})

    return update


def _say_cluster(client) -> None:
    workers = client.scheduler_info().get("workers", {})
    threads = sum(w.get("nthreads", 0) for w in workers.values())
    import importlib.util

    # Dask serves its dashboard (task stream, progress) only with bokeh installed
    has_dashboard = client.cluster is None or importlib.util.find_spec("bokeh") is not None
    link = f", dashboard {client.dashboard_link}" if has_dashboard else ""
    click.echo(f"dask: {len(workers)} worker(s), {threads} thread(s){link}", err=True)


def _class_names(model_path: str, threads: int):
    from ..distributed._worker import predictor

    return predictor(model_path, threads)[0].class_names


def dask_predict(
    model_path: Path,
    inputs: tuple[Path, ...],
    output: Path | None,
    batch_size: int,
    threads: int | None,
    address: str,
    chunk_size: int,
) -> None:
    """``edgemine predict --dask``: -o DIR gets a chunk file per task and nothing is gathered;
    otherwise the outputs come back in input order and are printed or written like
    single-process ``edgemine predict``."""
    from .export import show_predictions

    dist = _distributed()
    folder = output is not None and output.suffix.lower() not in (".csv", ".npy", ".json")
    threads = threads or 1
    t0 = time.perf_counter()
    with dist.connect(address) as client:
        _say_cluster(client)
        details: dict = {}
        result = dist.predict(
            model_path,
            [str(p) for p in inputs],
            client,
            chunk_size=chunk_size,
            batch_size=batch_size,
            threads=threads,
            out=output if folder else None,
            progress=_bar(),
            details=details,
        )
        chunks, names = details["chunks"], details["names"]
        if folder:
            click.echo(
                f"wrote {result['rows']} predictions in {len(chunks)} chunk file(s) to {output} "
                f"({time.perf_counter() - t0:.1f} s; index: {output / dist.scoring.INDEX})",
                err=True,
            )
            return
        classes = client.submit(_class_names, str(Path(model_path).resolve()), threads).result()
    show_predictions(result, dist.scoring.row_names(chunks, names), classes, output)


@click.command("sweep", cls=Command)
@click.argument("spec_arg", metavar="SPEC")
@click.option(
    "--data",
    help="A bundled data set, a .npz or .csv file or an image folder (default: the spec's).",
)
@click.option(
    "--grid",
    "grid_items",
    multiple=True,
    metavar="NAME=V1,V2",
    help="Values to try (repeat for more settings): learning_rate, batch_size, epochs, optimizer.",
)
@click.option(
    "--folds",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="K-fold cross-validation on the training rows (0: score each point on the test rows).",
)
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs (default: the spec's).")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Base seed: each training's seed is made from it, the point's values and the fold.",
)
@click.option("--metric", help="Rank by this metric (default: accuracy, else loss).")
@click.option(
    "--dask",
    "dask_address",
    metavar="ADDRESS|local[:N]",
    required=True,
    help="A scheduler's address, or local:N worker processes here.",
)
@click.option(
    "--threads", type=click.IntRange(min=1), default=1, show_default=True, help="Threads per task."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for results.csv and best.edgemine.",
)
def sweep_cmd(
    spec_arg: str,
    data: str | None,
    grid_items: tuple[str, ...],
    folds: int,
    epochs: int | None,
    seed: int,
    metric: str | None,
    dask_address: str,
    threads: int,
    output: Path,
) -> None:
    """Train SPEC (a zoo name or .json) once per grid point (and fold) on a Dask cluster; write
    results.csv and the best model to -o DIR.

    \b
    Example:
      edgemine sweep seed_cnn --grid learning_rate=1e-3,3e-4 --grid batch_size=32,64 \\
          --epochs 1 --dask local:2 -o sweep
    """
    from .. import zoo
    from ..saving import atomic_write_bytes

    dist = _distributed()
    spec = zoo.load_spec(spec_arg)
    grid = dist.parse_grid(grid_items)
    if folds == 1:
        raise click.UsageError("--folds takes 0 (no cross-validation) or at least 2")
    output.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with dist.connect(dask_address) as client:
        _say_cluster(client)
        result = dist.sweep(
            spec,
            grid,
            client,
            data=data,
            folds=folds,
            epochs=epochs,
            seed=seed,
            threads=threads,
            metric=metric,
            progress=_bar(),
        )
    result.write_csv(output / "results.csv")
    atomic_write_bytes(output / "best.edgemine", result.model)
    click.echo(result.table())
    click.echo(
        f"{len(result.trainings)} training(s) in {time.perf_counter() - t0:.1f} s; best: point "
        f"{result.best} by {result.metric}; wrote {output / 'results.csv'} and "
        f"{output / 'best.edgemine'}"
    )
