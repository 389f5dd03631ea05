"""Scoring and sweeps on a real Dask LocalCluster (two worker processes, one thread each)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

import cloudpickle  # noqa: E402  (a dependency of distributed)
from click.testing import CliRunner  # noqa: E402

from edgemine import zoo  # noqa: E402
from edgemine.cli import main  # noqa: E402
from edgemine.cli.export import Predictor  # noqa: E402
from edgemine.datasets import mnist  # noqa: E402
from edgemine.distributed import (  # noqa: E402
    ChunkError,
    connect,
    load_output,
    model_loads,
    predict,
    sweep,
)
from edgemine.layers import Conv2D, Dense, Flatten, MaxPooling2D  # noqa: E402
from edgemine.models import Sequential  # noqa: E402
from edgemine.onnx import export  # noqa: E402
from edgemine.runtime import limit_threads  # noqa: E402

# the workers cannot import this file: ship its functions (the killing transform) by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])

TINY_SPEC = {
    "name": "tiny",
    "one_hot": 10,
    "model": {
        "layers": [
            {"class_name": "Flatten", "config": {"input_shape": [28, 28, 1]}},
            {"class_name": "Dense", "config": {"units": 16, "activation": "relu"}},
            {"class_name": "Dense", "config": {"units": 10, "activation": "softmax"}},
        ]
    },
    "compile": {"optimizer": "adam", "loss": "categorical_crossentropy", "metrics": ["accuracy"]},
    "fit": {"epochs": 1, "batch_size": 32},
}


@pytest.fixture(scope="module", autouse=True)
def _restore_threads():
    """The references run single-threaded here; later tests in this process get theirs back."""
    import numba

    before = numba.get_num_threads()
    yield
    limit_threads(before)


@pytest.fixture(scope="module")
def client():
    with connect("local:2") as c:
        yield c


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small CNN as .edgemine and .onnx, and MNIST test images in two .npy files."""
    from edgemine.utils import set_random_seed

    tmp = tmp_path_factory.mktemp("dist")
    set_random_seed(3)
    model = Sequential(
        [
            Conv2D(4, 3, activation="relu", input_shape=(28, 28, 1)),
            MaxPooling2D(2),
            Flatten(),
            Dense(10, activation="softmax"),
        ]
    )
    model.save(tmp / "m.edgemine")
    export(model, tmp / "m.onnx")
    _, (x, y) = mnist.load_data()
    np.save(tmp / "a.npy", x[:700])  # uint8: scaled by 1/255 like edgemine predict
    np.save(tmp / "b.npy", x[700:1000])
    data = x[:400].reshape(-1, 28, 28, 1).astype(np.float32) / 255
    np.savez(
        tmp / "small.npz", x_train=data[:300], y_train=y[:300], x_test=data[300:], y_test=y[300:400]
    )
    return tmp


def _reference(model_path: Path, arrays: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
    """Single-process prediction with one thread, as ``edgemine predict --threads 1``."""
    limit_threads(1)
    pred = Predictor(model_path, threads=1)
    x = np.concatenate([pred.from_array(a, "x") for a in arrays])
    return pred.predict(x, batch_size)


@pytest.mark.parametrize("suffix", [".onnx", ".edgemine"])
def test_predict_equals_single_process_in_order(client, files, suffix):
    model = files / f"m{suffix}"
    before = client.run(model_loads)
    # chunks of 256 rows: chunk 2 spans both files
    y = predict(model, [files / "a.npy", files / "b.npy"], client, chunk_size=200)
    ref = _reference(model, [np.load(files / "a.npy"), np.load(files / "b.npy")])
    assert y.shape == (1000, 10) and y.dtype == ref.dtype
    assert np.array_equal(y, ref)
    after = client.run(model_loads)
    assert all(after[w] - before.get(w, 0) <= 1 for w in after)  # loaded once per worker
    # the workers run without Dask's glibc trim threshold (it slowed training down)
    assert set(client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_").values()) == {None}
    # a numpy array and a Dask array give the same rows
    import dask.array as da

    x = np.load(files / "a.npy")
    ref = _reference(model, [x])  # its last batch is rows 512-699
    assert np.array_equal(predict(model, x, client, chunk_size=256), ref)
    dx = da.from_array(x, chunks=(100, 28, 28))
    assert np.array_equal(predict(model, dx, client, chunk_size=512), ref)


def test_output_folder_holds_every_row_once(client, files, tmp_path):
    model = files / "m.onnx"
    out = tmp_path / "pred"
    index = predict(model, files / "a.npy", client, chunk_size=256, out=out)
    assert [c["start"] for c in index["chunks"]] == [0, 256, 512]
    assert json.loads((out / "index.json").read_text())["rows"] == 700
    assert np.array_equal(load_output(out), _reference(model, [np.load(files / "a.npy")]))
    predict(model, files / "b.npy", client, out=out)  # a new run replaces the old chunks
    assert sorted(p.name for p in out.iterdir()) == ["chunk-000000.npy", "index.json"]
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt"):
        predict(model, files / "b.npy", client, out=out)


def test_failing_chunk_names_chunk_and_file(client, files, tmp_path):
    bad = tmp_path / "wrong_shape.npy"
    np.save(bad, np.zeros((50, 5), np.float32))
    with pytest.raises(ChunkError, match=r"chunk 2 \(input rows 512-.*wrong_shape\.npy rows 0-49"):
        predict(files / "m.onnx", [files / "a.npy", bad], client, chunk_size=256)
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"not an array")
    with pytest.raises(ChunkError, match="garbage.npy.*not a readable .npy"):
        predict(files / "m.onnx", [garbage], client)


def _kill_worker_once(x: np.ndarray, marker: str, calls: str) -> np.ndarray:
    """The worker process running the third chunk dies (SIGKILL), once over the cluster."""
    with open(calls, "a") as f:
        f.write(".")
    if os.path.getsize(calls) >= 3 and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return x


@pytest.mark.parametrize("to_folder", [False, True])
def test_killed_worker_loses_and_duplicates_no_row(client, files, tmp_path, to_folder):
    import functools

    marker, calls = tmp_path / "killed", tmp_path / "calls"
    transform = functools.partial(_kill_worker_once, marker=str(marker), calls=str(calls))
    out = tmp_path / "pred" if to_folder else None
    model = files / "m.onnx"
    y = predict(
        model, files / "a.npy", client, chunk_size=64, batch_size=64, out=out, transform=transform
    )
    assert marker.exists()  # a worker did die
    got = load_output(out) if to_folder else y
    assert np.array_equal(got, _reference(model, [np.load(files / "a.npy")], batch_size=64))
    if to_folder:
        assert [(c["start"], c["stop"]) for c in y["chunks"]] == [
            (s, min(s + 64, 700)) for s in range(0, 700, 64)
        ]
        assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no half-written chunk
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next tests


@pytest.mark.parametrize("folds", [0, 2])
def test_sweep_equals_trainings_one_by_one(client, files, folds):
    grid = {"learning_rate": [0.01, 0.001], "batch_size": [16, 32]}
    data = str(files / "small.npz")
    on_dask = sweep(TINY_SPEC, grid, client, data=data, folds=folds, seed=5)
    here = sweep(TINY_SPEC, grid, None, data=data, folds=folds, seed=5)
    assert len(on_dask.trainings) == 4 * max(folds, 1)
    assert [r["seeds"] for r in on_dask.rows] == [r["seeds"] for r in here.rows]
    assert len({s for r in on_dask.rows for s in r["seeds"]}) == 4 * max(folds, 1)
    assert [r["metrics"] for r in on_dask.rows] == [r["metrics"] for r in here.rows]
    assert on_dask.best == here.best
    from edgemine.saving import load_model

    tmp = files / f"best{folds}"
    tmp.mkdir()
    (tmp / "a.edgemine").write_bytes(on_dask.model)
    (tmp / "b.edgemine").write_bytes(here.model)
    a, b = load_model(tmp / "a.edgemine"), load_model(tmp / "b.edgemine")
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


def test_cli_predict_and_sweep_on_a_scheduler_address(client, files, tmp_path):
    address = client.scheduler_info()["address"]
    runner = CliRunner()
    args = ["predict", str(files / "m.edgemine"), str(files / "a.npy"), str(files / "b.npy")]
    single = runner.invoke(main, [*args, "--threads", "1", "-o", str(tmp_path / "one.csv")])
    assert single.exit_code == 0, single.output
    dist = runner.invoke(
        main, [*args, "--dask", address, "--chunk-size", "300", "-o", str(tmp_path / "d.csv")]
    )
    assert dist.exit_code == 0, dist.output
    assert (tmp_path / "one.csv").read_text() == (tmp_path / "d.csv").read_text()
    for _ in range(2):  # the second run replaces the first's files
        folder = runner.invoke(main, [*args, "--dask", address, "-o", str(tmp_path / "chunks")])
        assert folder.exit_code == 0 and "1000 predictions in 1 chunk" in folder.output
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(TINY_SPEC))
    out = tmp_path / "sweep"
    cmd = ["sweep", str(spec), "--data", str(files / "small.npz"), "--grid"]
    result = runner.invoke(
        main, [*cmd, "learning_rate=1e-2,1e-3", "--dask", address, "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "test_accuracy" in result.output and (out / "best.edgemine").is_file()
    assert len((out / "results.csv").read_text().splitlines()) == 3
    bad = runner.invoke(main, [*cmd, "momentum=1", "--dask", address, "-o", str(out)])
    assert bad.exit_code != 0 and "unknown setting 'momentum'" in bad.output
    zoo.load_spec(spec)  # the spec the CLI read is a valid zoo spec


def test_help_does_not_import_dask_and_missing_dask_is_explained():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from edgemine.cli import main\n"
        "assert CliRunner().invoke(main, ['--help']).exit_code == 0\n"
        "assert 'distributed' not in sys.modules and 'dask' not in sys.modules\n"
        "sys.modules['distributed'] = None\n"  # as if the extra were not installed
        "r = CliRunner().invoke(main, ['sweep', 'seed_cnn', '--dask', 'local:1', '-o', 'x'])\n"
        "print(r.output)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "pip install 'edgemine[dask]'" in run.stdout


def test_chunks_span_files_and_rows_keep_their_names():
    from edgemine.distributed.scoring import plan_chunks, row_names

    sources = [("d/a.npy", 3, False), ("d/one.npy", 1, False), ("d/a.npy", 3, False)]
    chunks = plan_chunks(sources, 2)
    assert [(c.start, c.stop, len(c.pieces)) for c in chunks] == [
        (0, 2, 1),
        (2, 4, 2),
        (4, 6, 1),
        (6, 7, 1),
    ]
    assert row_names(chunks, {}) == [
        *["a.npy[0]", "a.npy[1]", "a.npy[2]", "one.npy"],
        *["a.npy[0]", "a.npy[1]", "a.npy[2]"],
    ]
