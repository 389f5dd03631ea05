"""The train / evaluate / inspect commands, through click's runner and as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO

from edgemine.cli import main
from edgemine.models import load_model

TINY_SPEC = {
    "name": "tiny",
    "dataset": "mnist",
    "model": {
        "layers": [
            {
                "class_name": "Conv2D",
                "config": {
                    "filters": 2,
                    "kernel_size": 3,
                    "activation": "relu",
                    "input_shape": [8, 8, 1],
                },
            },
            {"class_name": "Flatten", "config": {}},
            {"class_name": "Dense", "config": {"units": 3, "activation": "softmax"}},
        ]
    },
    "compile": {
        "optimizer": "adam",
        "loss": "sparse_categorical_crossentropy",
        "metrics": ["accuracy"],
    },
    "fit": {"epochs": 2, "batch_size": 16},
}


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(TINY_SPEC))
    data = tmp_path / "data.npz"
    np.savez(
        data,
        x_train=rng.random((64, 8, 8, 1), dtype=np.float32),
        y_train=rng.integers(0, 3, 64),
        x_test=rng.random((16, 8, 8, 1), dtype=np.float32),
        y_test=rng.integers(0, 3, 16),
    )
    return tmp_path, spec, data


def test_train_evaluate_inspect_resume(files):
    tmp, spec, data = files
    runner = CliRunner()
    out = tmp / "tiny.edgemine"
    ckpt = tmp / "ckpt.edgemine"
    r = runner.invoke(
        main,
        [
            "train",
            str(spec),
            "--data",
            str(data),
            "-o",
            str(out),
            "--seed",
            "1",
            "--checkpoint",
            str(ckpt),
            "--verbose",
            "0",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "trained tiny for 2 epoch(s)" in r.output and "test loss" in r.output
    assert load_model(out).epochs_trained == 2
    r = runner.invoke(
        main,
        [
            "train",
            str(ckpt),
            "--resume",
            "--epochs",
            "3",
            "--data",
            str(data),
            "-o",
            str(out),
            "--verbose",
            "0",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "for 1 epoch(s)" in r.output
    assert load_model(out).epochs_trained == 3
    r = runner.invoke(main, ["evaluate", str(out), "--data", str(data)])
    assert r.exit_code == 0 and "16 samples: loss" in r.output
    r = runner.invoke(main, ["inspect", str(out)])
    assert r.exit_code == 0 and "Total params" in r.output and "FLOPs" in r.output


def test_errors_are_one_line(files):
    tmp, spec, data = files
    bad = tmp / "bad.edgemine"
    bad.write_bytes(b"not a zip")
    r = CliRunner().invoke(main, ["evaluate", str(bad)])
    assert r.exit_code == 1
    assert r.output.strip().startswith("Error:") and len(r.output.strip().splitlines()) == 1
    assert "Traceback" not in r.output
    r = CliRunner().invoke(main, ["train", str(spec), "--data", "nonsense"])
    assert r.exit_code != 0 and "unknown data set" in r.output


def test_cli_as_a_subprocess_with_debug(files):
    tmp, spec, _ = files
    bad = tmp / "bad.edgemine"
    bad.write_bytes(b"garbage")
    exe = [sys.executable, "-c", "from edgemine.cli import main; main()"]
    p = subprocess.run([*exe, "inspect", str(bad)], capture_output=True, text=True)
    assert p.returncode == 1 and "not an edgemine model file" in p.stderr
    assert "Traceback" not in p.stderr
    p = subprocess.run([*exe, "--debug", "inspect", str(bad)], capture_output=True, text=True)
    assert p.returncode == 1 and "Traceback" in p.stderr
    p = subprocess.run(
        [*exe, "inspect", str(REPO / "models" / "seed_cnn.json")], capture_output=True, text=True
    )
    assert p.returncode == 0 and "93,322" in p.stdout


def test_pipeline_main_job_end_to_end(tmp_path):
    """The README's main job, one epoch: train, save, export, onnxruntime parity, int8, bundle."""
    r = CliRunner().invoke(
        main, ["pipeline", "--epochs", "1", "-o", str(tmp_path), "--verbose", "0"]
    )
    assert r.exit_code == 0, r.output
    lines = {line.split()[0]: line for line in r.output.splitlines() if line.startswith("  ")}
    engine = float(lines["engine"].split("accuracy ")[1].split("%")[0])
    ort = float(lines["onnxruntime"].split("accuracy ")[1].split("%")[0])
    assert engine > 85 and ort == engine
    assert float(lines["onnxruntime"].split("onnxruntime| ")[1].split(",")[0]) < 1e-5
    for name in (
        "seed_cnn.edgemine",
        "seed_cnn.onnx",
        "seed_cnn_int8.onnx",
        "seed_cnn_bundle_rpi/run.py",
        "seed_cnn_bundle_rpi/model.onnx",
    ):
        assert (tmp_path / name).is_file(), name
