"""What a user gets from ``pip install``: the built wheel, installed (not editable) in a fresh
virtual environment, runs the main job and trains a zoo model by name from an empty folder.

Marked ``wheel`` and left out of a plain ``pytest`` run (it builds, installs and compiles the
kernels afresh: a few minutes); CI's command (`.ci/run`, the README's second command) selects
it with ``-m 'not slow'``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

# what a clean clone holds: no virtual environments, builds or caches
_NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "out", "*.nb[ic]"
)


def _run(cmd: list, cwd: Path, timeout: int = 900) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    p = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert p.returncode == 0, f"{cmd} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout


def test_readme_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    assert ci in blocks, "the README's test command and .ci/run differ"
    assert "-m 'not slow'" in ci  # selects the wheel test below


@pytest.mark.wheel
def test_wheel_in_a_fresh_venv_runs_pipeline_and_train_from_an_empty_folder(tmp_path):
    src = tmp_path / "clone"
    shutil.copytree(REPO, src, ignore=_NOT_IN_A_CLONE)
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp_path / "dist", src], src
    )
    (wheel,) = (tmp_path / "dist").glob("edgemine-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for member in (
        "edgemine/zoo/seed_cnn.json",
        "edgemine/zoo/seed_lstm.json",
        "edgemine/datasets/data/mnist_5k.npz",
        "edgemine/datasets/data/tweets.csv.gz",
        "edgemine/datasets/data/SOURCES.md",
        "edgemine/bundle_template/run.py",
        "edgemine/bundle_template/finetune.py",
    ):
        assert member in names, f"{member} is missing from {wheel.name}"

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp_path)
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", wheel], tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    where = _run(
        [venv / "bin" / "python", "-c", "import edgemine; print(edgemine.__file__)"], empty
    )
    assert Path(where.strip()).is_relative_to(venv), where  # the installed copy, not the clone

    exe = venv / "bin" / "edgemine"
    out = _run([exe, "pipeline", "--epochs", "1", "-o", "out", "--verbose", "0"], empty)
    accuracy = float(out.split("engine         test accuracy ")[1].split("%")[0])
    assert accuracy > 85, out
    assert (empty / "out" / "seed_cnn_bundle_rpi" / "model.onnx").is_file()
    out = _run([exe, "train", "seed_cnn", "--epochs", "1", "--verbose", "0"], empty)
    assert "trained seed_cnn for 1 epoch(s)" in out and "saved seed_cnn.edgemine" in out, out
    assert (empty / "seed_cnn.edgemine").is_file()
