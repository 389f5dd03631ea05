"""Conv1D's speed on sensor-shaped data: edgemine's 1-D kernels against Conv2D on a height-1
image (the same numbers through the 2-D kernels) and PyTorch's Conv1d, when torch is installed.

    python tools/bench_conv1d.py               # writes tools/results/conv1d.md
    python tools/bench_conv1d.py --threads 1   # every engine on one thread (a busy machine)

Shapes: batch 32, 100 steps, 6 channels in, 64 filters, kernel 3 (BasicMotions-like), and a
second layer 64 -> 64. Per engine: forward at inference, and a training step's forward +
backward (input and weight gradients). Runs alternate between the engines; medians of 30
repeats are reported, with the ratio to edgemine's Conv1D (> 1: that engine is slower).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

THREADS = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 2
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(THREADS))
os.environ.setdefault("NUMBA_NUM_THREADS", str(THREADS))

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgemine.layers import Conv1D, Conv2D  # noqa: E402

SHAPES = [  # (batch, steps, channels in, filters, kernel, padding)
    (32, 100, 6, 64, 3, "same"),
    (32, 100, 64, 64, 3, "same"),
    (32, 100, 6, 64, 3, "causal"),
]


def _edgemine_step(layer, x, dy):
    def infer():
        layer.forward(x, training=False)

    def train():
        layer.forward(x, training=True)
        layer.backward(dy)

    return infer, train


def _engines(n, steps, cin, f, k, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, steps, cin)).astype(np.float32)
    conv1d = Conv1D(f, k, padding=padding)
    conv1d.build((steps, cin))
    y = conv1d.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    engines = {"edgemine Conv1D": _edgemine_step(conv1d, x, dy)}
    if padding != "causal":  # Conv2D has no causal padding
        conv2d = Conv2D(f, (1, k), padding=padding)
        conv2d.build((1, steps, cin))
        engines["edgemine Conv2D (1 x steps)"] = _edgemine_step(
            conv2d, x.reshape(n, 1, steps, cin), dy.reshape(n, 1, -1, f)
        )
    torch_engine = _torch_engine(x, dy, f, k, padding)
    if torch_engine is not None:
        engines["torch Conv1d (NCL)"] = torch_engine
    return engines


def _torch_engine(x, dy, f, k, padding):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(THREADS)
    conv = torch.nn.Conv1d(x.shape[2], f, k, padding="same" if padding == "same" else 0)
    xt = torch.from_numpy(x.transpose(0, 2, 1).copy()).requires_grad_(True)
    dyt = torch.from_numpy(dy.transpose(0, 2, 1).copy())
    pad = (k - 1, 0) if padding == "causal" else None

    def forward():
        return conv(torch.nn.functional.pad(xt, pad) if pad else xt)

    def infer():
        with torch.no_grad():
            forward()

    def train():
        forward().backward(dyt)

    return infer, train


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def measure(repeats: int = 30) -> list[tuple]:
    rows = []
    for shape in SHAPES:
        engines = _engines(*shape)
        for infer, train in engines.values():  # warm up (compile)
            infer()
            train()
        results = {name: ([], []) for name in engines}
        for _ in range(repeats):  # alternate so that noise falls on every engine
            for name, (infer, train) in engines.items():
                results[name][0].append(_median_ms(infer, 1))
                results[name][1].append(_median_ms(train, 1))
        for name, (inf, tr) in results.items():
            rows.append((shape, name, statistics.median(inf), statistics.median(tr)))
    return rows


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(ln.split(":", 1)[1].strip() for ln in out.splitlines() if "Model name" in ln)
    except Exception:
        return platform.processor() or "unknown"


def report(rows: list[tuple]) -> str:
    lines = [
        "# Conv1D speed (tools/bench_conv1d.py)",
        "",
        f"{datetime.date.today()}, {_cpu()}, {THREADS} thread(s), medians of 30 runs, load "
        f"average {os.getloadavg()[0]:.1f} at the end (other jobs share the machine).",
        "",
        "| shape (n, steps, cin -> filters, k, padding) | engine | inference ms | "
        "train step ms | train vs edgemine Conv1D |",
        "|---|---|---|---|---|",
    ]
    base = {}
    for shape, name, inf, tr in rows:
        base.setdefault(shape, tr)
        n, steps, cin, f, k, padding = shape
        label = f"{n}, {steps}, {cin} -> {f}, {k}, {padding}"
        lines.append(f"| {label} | {name} | {inf:.3f} | {tr:.3f} | {tr / base[shape]:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "tools" / "results" / "conv1d.md"))
    parser.add_argument("--threads", type=int, default=2, help="BLAS, numba and torch threads")
    args = parser.parse_args()
    text = report(measure())
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
