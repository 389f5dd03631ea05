"""``edgemine pipeline``: the README's main job, end to end on the bundled MNIST.

Train the seed CNN, evaluate it, save it, export it to ONNX, run the test set through
onnxruntime, write a deployable bundle, and print one report.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from .. import zoo
from ..callbacks import Callback
from ._click import Command, check_writable


class _EpochTimer(Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._t0)


def _median_ms(fn, repeats: int) -> float:
    from ..runtime import time_calls

    return float(np.median(time_calls(fn, min_time=0.0, min_runs=repeats, max_runs=repeats)) * 1e3)


@click.command(cls=Command)
@click.option(
    "--spec",
    default="seed_cnn",
    show_default=True,
    help="Zoo spec to train: a name (see `edgemine train --help`) or a .json file.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Default: the spec's.")
@click.option("-o", "--out-dir", type=click.Path(file_okay=False), default="out", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--verbose", type=click.IntRange(0, 2), default=1, show_default=True)
def pipeline(spec, epochs, out_dir, seed, verbose):
    """Train the seed CNN on bundled MNIST, export it, run it in onnxruntime, bundle it, report."""
    from ..utils import set_random_seed

    set_random_seed(seed)
    s = zoo.load_spec(spec)
    model = zoo.build_model(s)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise click.UsageError(f"-o {out}: cannot create the folder ({e.strerror})") from None
    check_writable(out / f"{s['name']}.edgemine", "-o")
    d = zoo.load_data(s["dataset"], s.get("dataset_args"))
    model.preprocessing, model.class_names = d.preprocessing, d.class_names
    one_hot = s.get("one_hot")
    fit = dict(s.get("fit") or {})
    epochs = epochs or fit.get("epochs", 1)

    timer = _EpochTimer()
    t0 = time.perf_counter()
    model.fit(
        d.x_train,
        zoo.targets_for(model, d.y_train, one_hot),
        epochs=epochs,
        batch_size=fit.get("batch_size", 32),
        verbose=verbose,
        callbacks=[timer],
    )
    fit_s = time.perf_counter() - t0
    probs = model.predict(d.x_test, batch_size=256)
    engine_acc = float((probs.argmax(-1) == d.y_test).mean())
    model_path = out / f"{s['name']}.edgemine"
    model.save(model_path)
    one = d.x_test[:1]
    report = [
        f"edgemine pipeline: {s['name']} on {s['dataset']} "
        f"({len(d.x_train)} train / {len(d.x_test)} test)",
        f"  fit            {epochs} epochs in {fit_s:.1f} s; last epoch "
        f"{len(d.x_train) / timer.seconds[-1]:,.0f} samples/s (a first run also compiles the "
        "Numba kernels)",
        f"  engine         test accuracy {engine_acc * 100:.2f}%, "
        f"batch-1 latency {_median_ms(lambda: model.predict(one), 50):.3f} ms",
        f"  saved          {model_path} ({model_path.stat().st_size / 1024:.0f} KiB)",
    ]
    report += _deploy_report(model, d, probs, out, s["name"])
    click.echo("\n".join(report))


def _deploy_report(model, d, probs, out: Path, name: str) -> list[str]:
    """Export to ONNX, rerun the test set in onnxruntime, quantize to int8, write the bundle."""
    from ..bundle import write_bundle
    from ..onnx import export
    from ..quantize import quantize_int8
    from ..runtime import Session

    onnx_path = export(model, out / f"{name}.onnx")
    session = Session(onnx_path)
    ort_probs = session.predict(d.x_test, batch_size=256)
    ort_acc = float((ort_probs.argmax(-1) == d.y_test).mean())
    one = d.x_test[:1]
    int8_path = quantize_int8(onnx_path, out / f"{name}_int8.onnx", calibration=d.x_train[:300])
    int8 = Session(int8_path)
    int8_acc = float((int8.predict(d.x_test, batch_size=256).argmax(-1) == d.y_test).mean())
    bundle_dir = write_bundle(onnx_path, out / f"{name}_bundle_rpi", target="rpi")
    size = onnx_path.stat().st_size
    return [
        f"  onnxruntime    test accuracy {ort_acc * 100:.2f}%, largest |engine - onnxruntime| "
        f"{float(np.abs(ort_probs - probs).max()):.2e}, "
        f"batch-1 latency {_median_ms(lambda: session.predict(one), 200):.3f} ms",
        f"  onnx file      {onnx_path} ({size / 1024:.0f} KiB)",
        f"  int8 (static)  test accuracy {int8_acc * 100:.2f}%, "
        f"{int8_path.stat().st_size / 1024:.0f} KiB ({int8_path.stat().st_size / size:.0%} of fp32), "
        f"batch-1 latency {_median_ms(lambda: int8.predict(one), 200):.3f} ms",
        f"  bundle         {bundle_dir}/ (run: python {bundle_dir}/run.py IMAGE.png)",
    ]
