"""The seed document's two Keras programs, run unchanged on edgemine (slow: run with -m slow)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

ACCEPTANCE = REPO.parent / "shared" / "acceptance"


def _run(script: str, *args: str) -> tuple[float, float]:
    path = ACCEPTANCE / script
    if not path.exists():
        pytest.skip(f"{path} is not present on this machine")
    out = (
        subprocess.run(
            [sys.executable, str(path), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=3600,
        )
        .stdout.strip()
        .splitlines()
    )
    accuracy = float(out[-2].split(":")[1])
    fit_s = float(out[-1].split(":")[1])
    return accuracy, fit_s


@pytest.mark.slow
def test_seed_cnn_program():
    accuracy, _ = _run("seed_cnn.py")
    assert accuracy >= 96.5


@pytest.mark.slow
def test_seed_lstm_program_two_epochs():
    accuracy, _ = _run("seed_lstm.py", "2")
    assert accuracy >= 73.0
