"""Run the Keras example programs of ``examples/`` on edgemine and on Keras 3, side by side.

Each program is written for edgemine (``import edgemine as keras``); its Keras 3 twin is the
same file with the import lines switched (``import keras``, ``from keras import layers``) and
``keras.datasets.`` read from edgemine's shipped data (Keras would download), so the model,
compile and fit lines are the same text. Each prints ``Accuracy: X`` (or ``Loss: X``) and
``fit seconds: Y`` last. Results (with the CPU's model) go to
``tools/results/keras_examples.md``.

Needs Keras 3 with the torch backend in another environment (not edgemine's)::

    python3 -m venv /tmp/kv && /tmp/kv/bin/pip install keras torch==2.13.0
    .venv/bin/python tools/keras_examples.py --keras-python /tmp/kv/bin/python [NAME ...]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {  # name -> epochs compared (the published program's, or fewer on 2 cores)
    "keras_timeseries_anomaly": 50,
    "keras_timeseries_classification": 100,  # the program: 500
    "keras_addition_rnn": 10,  # the program: 30
    "keras_mnist_convnet": 15,
    "keras_bidirectional_lstm": 1,  # the program: 2
}
SWITCH = [
    ("import edgemine as keras\n", "import keras\n\nimport edgemine\n"),
    ("from edgemine import layers\n", "from keras import layers\n"),
    ("keras.datasets.", "edgemine.datasets."),
]


def keras_twin(source: str) -> str:
    """The program with Keras 3's imports (and edgemine's shipped data)."""
    if SWITCH[0][0] not in source:
        raise ValueError(f"the program lacks the line {SWITCH[0][0]!r}")
    for old, new in SWITCH:
        source = source.replace(old, new)
    return source


def run(python: str, path: Path, epochs: int, env: dict) -> dict:
    proc = subprocess.run(
        [python, str(path), str(epochs)], capture_output=True, text=True, env=env, cwd=ROOT
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout)[-600:]}
    found = dict(re.findall(r"^(Accuracy|Loss|fit seconds): ([0-9.eE+-]+)$", proc.stdout, re.M))
    return {k: float(v) for k, v in found.items()}


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return re.search(r"Model name:\s*(.+)", out).group(1).strip()
    except Exception:
        return "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(EXAMPLES))
    ap.add_argument("--keras-python", required=True, help="a Python with keras and torch")
    ap.add_argument("--epochs", type=int, help="override every program's epochs")
    ap.add_argument("--out", type=Path, default=ROOT / "tools" / "results" / "keras_examples.md")
    args = ap.parse_args()
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(ROOT)}
    rows = []
    for name in args.names:
        epochs = args.epochs or EXAMPLES[name]
        path = ROOT / "examples" / f"{name}.py"
        ours = run(sys.executable, path, epochs, env)
        with tempfile.TemporaryDirectory() as tmp:
            twin = Path(tmp) / path.name
            twin.write_text(keras_twin(path.read_text()))
            theirs = run(args.keras_python, twin, epochs, env)
        rows.append((name, epochs, ours, theirs))
        print(name, epochs, ours, theirs, flush=True)
    lines = [
        "# Keras example programs: edgemine against Keras 3.15 (torch 2.13 backend)\n",
        f"CPU: {cpu_name()}, {os.cpu_count()} cores. One run each, same data and epochs; the "
        "metric is the program's own (test or validation accuracy %, or loss).\n",
        "| program | epochs | edgemine metric | Keras 3 metric | edgemine fit s | Keras 3 fit s |",
        "|---|---|---|---|---|---|",
    ]
    for name, epochs, ours, theirs in rows:

        def cell(r, key):
            if "error" in r:
                return "error: " + r["error"].strip().splitlines()[-1][:80]
            metric = r.get("Accuracy", r.get("Loss"))
            return (
                f"{metric:.4g}" if key == "metric" else f"{r.get('fit seconds', float('nan')):.1f}"
            )

        lines.append(
            f"| {name} | {epochs} | {cell(ours, 'metric')} | {cell(theirs, 'metric')} | "
            f"{cell(ours, 'time')} | {cell(theirs, 'time')} |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
