"""The seed document's two Keras programs (``examples/``), run unchanged on edgemine.

One epoch of each runs in the default suite (CI); the seed's full runs are slow (``-m slow``).
Each program runs as a subprocess from an empty folder, so it needs nothing but the installed
package.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

EXAMPLES = REPO / "examples"


def _program_output(script: str, epochs: int | None, cwd) -> list[str]:
    """Run ``examples/SCRIPT`` (with its epochs argument) from ``cwd``; its stdout lines, the
    last one ``fit seconds: Y``."""
    args = [] if epochs is None else [str(epochs)]
    p = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=cwd,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    out = p.stdout.strip().splitlines()
    assert out[-1].startswith("fit seconds: "), out[-3:]
    return out


def _run(script: str, epochs: int | None, cwd) -> tuple[float, float]:
    out = _program_output(script, epochs, cwd)
    assert out[-2].startswith("Accuracy: "), out[-3:]
    epochs_seen = {line for line in out if line.startswith("Epoch ")}
    assert len(epochs_seen) == (epochs or 10)
    return float(out[-2].split(":")[1]), float(out[-1].split(":")[1])


def test_seed_cnn_program_one_epoch(tmp_path):
    accuracy, _ = _run("seed_cnn.py", 1, tmp_path)
    assert accuracy >= 85.0


def test_seed_lstm_program_one_epoch(tmp_path):
    accuracy, _ = _run("seed_lstm.py", 1, tmp_path)
    assert accuracy >= 65.0  # majority class: 42%


@pytest.mark.slow
def test_seed_cnn_program(tmp_path):
    accuracy, _ = _run("seed_cnn.py", None, tmp_path)
    assert accuracy >= 96.5


@pytest.mark.slow
def test_seed_lstm_program_two_epochs(tmp_path):
    accuracy, _ = _run("seed_lstm.py", 2, tmp_path)
    assert accuracy >= 73.0


def test_keras_io_mnist_convnet_with_only_the_import_changed(tmp_path):
    """keras.io's "Simple MNIST convnet", `import keras` -> `import edgemine as keras`."""
    text = (EXAMPLES / "keras_mnist_convnet.py").read_text()
    assert "import edgemine as keras\nfrom edgemine import layers\n" in text
    accuracy, _ = _run("keras_mnist_convnet.py", 1, tmp_path)
    assert accuracy >= 60.0  # one epoch of 28 steps: 82 % measured; chance is 10 %


@pytest.mark.slow
def test_keras_io_mnist_convnet_full(tmp_path):
    accuracy, _ = _run("keras_mnist_convnet.py", 15, tmp_path)
    assert accuracy >= 96.0


def _keras_run(script: str, epochs: int, cwd) -> dict:
    """Run a keras.io example (``examples/keras_*.py``): its last lines are the metric
    (``Accuracy: X`` or ``Loss: X``) and ``fit seconds: Y``."""
    text = (EXAMPLES / script).read_text()
    assert "import edgemine as keras\n" in text  # the only import of edgemine's API
    key, value = _program_output(script, epochs, cwd)[-2].split(": ")
    return {key: float(value)}


def test_keras_io_addition_rnn_one_iteration(tmp_path):
    """LSTM -> RepeatVector -> LSTM(return_sequences) -> Dense per step, categorical
    cross-entropy averaged over the answer's 4 steps."""
    assert _keras_run("keras_addition_rnn.py", 1, tmp_path)["Accuracy"] >= 35.0  # 41 measured


def test_keras_io_timeseries_classification(tmp_path):
    """The functional FCN (Conv1D, BatchNormalization, ReLU, GlobalAveragePooling1D) with
    ModelCheckpoint(save_best_only) and the reload of the best model."""
    assert _keras_run("keras_timeseries_classification.py", 60, tmp_path)["Accuracy"] > 25.0


def test_keras_io_timeseries_anomaly(tmp_path):
    """The Conv1D / Conv1DTranspose autoencoder with EarlyStopping."""
    assert _keras_run("keras_timeseries_anomaly.py", 5, tmp_path)["Loss"] < 1.0


@pytest.mark.slow
def test_keras_io_bidirectional_lstm(tmp_path):
    """A functional model on variable-length int32 ids: two Bidirectional LSTMs."""
    assert _keras_run("keras_bidirectional_lstm.py", 1, tmp_path)["Accuracy"] >= 80.0  # 86.9


def test_keras_twins_differ_only_in_their_imports():
    """tools/keras_examples.py runs each program on Keras 3 with only the imports switched."""
    sys.path.insert(0, str(REPO / "tools"))
    from keras_examples import EXAMPLES as NAMES
    from keras_examples import keras_twin

    for name in NAMES:
        text = (EXAMPLES / f"{name}.py").read_text()
        twin = keras_twin(text)
        changed = [
            line for line in twin.splitlines() if line not in text.splitlines() and line.strip()
        ]
        assert all("import" in line or "edgemine.datasets." in line for line in changed), changed
