"""The train / evaluate / inspect commands, through click's runner and as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

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
    p = subprocess.run([*exe, "inspect", "seed_cnn"], capture_output=True, text=True, cwd=tmp)
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


# ---------------------------------------------------------------------------------------
# the zoo by name, and the bugs of issue 12 (each test failed on the code before its fix)

DENSE_MNIST_SPEC = {
    "name": "dense_mnist",
    "dataset": "mnist",
    "model": {
        "layers": [
            {"class_name": "Flatten", "config": {"input_shape": [28, 28, 1]}},
            {"class_name": "Dense", "config": {"units": 10, "activation": "softmax"}},
        ]
    },
    "compile": {"optimizer": "adam", "loss": "categorical_crossentropy", "metrics": ["accuracy"]},
    "fit": {"epochs": 1, "batch_size": 32},
}


def _train(runner, *args):
    return runner.invoke(main, ["train", *map(str, args), "--verbose", "0"])


@pytest.mark.parametrize("name, params", [("seed_cnn", "93,322"), ("seed_lstm", "710,858")])
def test_zoo_specs_by_name(name, params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing is read from the repository's folders
    r = CliRunner().invoke(main, ["inspect", name])
    assert r.exit_code == 0, r.output
    assert params in r.output


def test_resume_without_output_writes_next_to_the_checkpoint(files, monkeypatch):
    tmp, spec, data = files
    (tmp / "sub").mkdir()
    ckpt = tmp / "sub" / "ckpt.edgemine"
    runner = CliRunner()
    r = _train(runner, spec, "--data", data, "-o", tmp / "m.edgemine", "--checkpoint", ckpt)
    assert r.exit_code == 0, r.output
    unrelated = tmp / "ckpt.edgemine"
    unrelated.write_bytes(b"someone else's file")
    monkeypatch.chdir(tmp)
    r = _train(runner, "sub/ckpt.edgemine", "--resume", "--epochs", 3, "--data", data)
    assert r.exit_code == 0, r.output
    assert unrelated.read_bytes() == b"someone else's file"
    assert load_model(ckpt).epochs_trained == 3
    assert "saved sub/ckpt.edgemine" in r.output


def test_resume_of_a_finished_checkpoint_is_refused(files):
    tmp, spec, data = files
    out = tmp / "m.edgemine"
    runner = CliRunner()
    assert _train(runner, spec, "--data", data, "-o", out).exit_code == 0
    r = _train(runner, out, "--resume", "--epochs", 2, "--data", data)
    assert r.exit_code != 0 and "-1 epoch" not in r.output
    assert "already trained 2 epoch(s)" in r.output and "--epochs above 2" in r.output


def test_evaluate_accepts_a_file_with_only_the_test_split(files):
    tmp, spec, data = files
    out = tmp / "m.edgemine"
    assert _train(CliRunner(), spec, "--data", data, "-o", out).exit_code == 0
    test_only = tmp / "test_only.npz"
    with np.load(data) as d:
        np.savez(test_only, x_test=d["x_test"], y_test=d["y_test"])
    r = CliRunner().invoke(main, ["evaluate", str(out), "--data", str(test_only)])
    assert r.exit_code == 0, r.output
    assert "16 samples: loss" in r.output


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--epochs", "0"], "0 is not in the range x>=1"),
        (["-o", "{tmp}/missing/m.edgemine"], "does not exist"),
        (["-o", "{tmp}"], "is a folder"),
        (["-o", "{tmp}/data.npz/m.edgemine"], "is not a folder"),
        (["--checkpoint", "{tmp}/missing/c.edgemine"], "does not exist"),
        (["-o", "{tmp}/m.json"], "must not be a .json file"),
    ],
)
def test_bad_outputs_and_epochs_are_refused_before_training(files, extra, message):
    tmp, spec, data = files
    extra = [e.format(tmp=tmp) for e in extra]
    r = CliRunner().invoke(main, ["train", str(spec), "--data", str(data), *extra])
    assert r.exit_code != 0
    assert message in r.output
    assert "Epoch" not in r.output and "trained" not in r.output  # no training ran
    assert len(r.output.strip().splitlines()) == 1 and r.output.startswith("Error:")


@pytest.mark.parametrize(
    "args",
    [
        ["nonsense"],
        ["train", "no_such_spec"],
        ["train", "seed_cnn", "--resume", "--epochs", "2"],
        ["train", "seed_cnn", "--batch-size", "0"],
        ["train", "seed_cnn", "--bogus"],
        ["evaluate", "missing.edgemine"],
        ["inspect", "missing.onnx"],
        ["pipeline", "--spec", "no_such_spec"],
    ],
)
def test_every_error_is_one_line(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, args)
    assert r.exit_code != 0
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), r.output


def test_validation_split_is_stratified_on_real_data(tmp_path):
    """`--validation-split 0.1` once validated on the last rows of label-sorted MNIST (all 9s,
    val_accuracy 0.0); the CLI now holds out a stratified, shuffled, seeded share."""
    spec = tmp_path / "dense.json"
    spec.write_text(json.dumps(DENSE_MNIST_SPEC))
    args = [spec, "--validation-split", 0.1, "--seed", 3, "-o", tmp_path / "m.edgemine"]
    r = _train(CliRunner(), *args)
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("validation (400 rows)"))
    assert float(line.split("accuracy ")[1].split(",")[0]) > 0.6


TEXT_SPEC = {
    "name": "tiny_text",
    "dataset": "tweets",
    "dataset_args": {"num_words": 300, "maxlen": 12},
    "one_hot": 5,  # wider than the 3 sentiments, as the seed LSTM's 10-way softmax
    "model": {
        "layers": [
            {"class_name": "Embedding", "config": {"input_dim": 300, "output_dim": 4}},
            {"class_name": "LSTM", "config": {"units": 4}},
            {"class_name": "Dense", "config": {"units": 5, "activation": "softmax"}},
        ]
    },
    "compile": {"optimizer": "adam", "loss": "categorical_crossentropy"},
    "fit": {"epochs": 1, "batch_size": 256},
}


def test_a_text_model_trained_by_the_cli_reads_text_everywhere(tmp_path):
    """Issue 12: `predict` on text failed with "no vocabulary" for a model `train` made, and its
    bundle failed with "3 labels for a model with 10 outputs"; ids past the vocabulary reached
    onnxruntime's internal error. The model now carries its vocabulary, names every output,
    and the export says its vocabulary size."""
    runner = CliRunner()
    spec, model = tmp_path / "text.json", tmp_path / "text.edgemine"
    spec.write_text(json.dumps(TEXT_SPEC))
    assert _train(runner, spec, "-o", model).exit_code == 0
    m = load_model(model)
    assert m.class_names == ["negative", "neutral", "positive", "3", "4"]
    assert len(m.preprocessing["word_index"]) == 299
    texts = tmp_path / "texts.txt"
    texts.write_text("what a great day\nso tired of this\n")
    r = runner.invoke(main, ["predict", str(model), str(texts), "-o", str(tmp_path / "p.npy")])
    assert r.exit_code == 0, r.output
    onnx_path = tmp_path / "text.onnx"
    assert runner.invoke(main, ["export", str(model), "-o", str(onnx_path)]).exit_code == 0
    r = runner.invoke(main, ["predict", str(onnx_path), str(texts), "-o", str(tmp_path / "q.npy")])
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), np.load(tmp_path / "q.npy"), atol=1e-5)
    bundle = tmp_path / "bundle"
    r = runner.invoke(main, ["bundle", str(model), "-o", str(bundle)])
    assert r.exit_code == 0, r.output
    assert json.loads((bundle / "preprocessing.json").read_text())["vocab_size"] == 300
    res = subprocess.run(
        [sys.executable, str(bundle / "run.py"), str(texts), "--output", str(tmp_path / "b.npy")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(np.load(tmp_path / "b.npy"), np.load(tmp_path / "q.npy"), atol=1e-6)
    ids = tmp_path / "ids.npy"
    np.save(ids, np.full((1, 12), 300))
    for path in (model, onnx_path):
        r = runner.invoke(main, ["predict", str(path), str(ids)])
        assert r.exit_code != 0 and "token id 300, outside the vocabulary (0..299)" in r.output
    res = subprocess.run(
        [sys.executable, str(bundle / "run.py"), str(ids)], capture_output=True, text=True
    )
    assert res.returncode == 2 and "token id 300, outside the vocabulary (0..299)" in res.stderr


def test_help_lists_every_command_without_importing_them():
    """`edgemine --help` imports no command module (numba, onnx and onnxruntime take seconds),
    and its help texts are the commands' own."""
    from edgemine.cli import COMMANDS

    code = (
        "import sys\nfrom edgemine.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('numba', 'onnx', 'onnxruntime', 'h5py', 'PIL', 'edgemine.models')\n"
        "print('IMPORTED', [m for m in heavy if m in sys.modules])\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "IMPORTED []" in res.stdout
    for name in COMMANDS:
        assert f"  {name} " in res.stdout
    for name, (_, _, short) in COMMANDS.items():
        cmd = main.get_command(None, name)
        assert cmd.name == name and cmd.get_short_help_str(limit=1000) == short
    r = CliRunner().invoke(main, ["nonsense"])
    assert r.exit_code != 0 and "No such command 'nonsense'" in r.output
