"""Why a busy CPU slows edgemine down: the seed CNN's step times with OpenBLAS's and Numba's
thread counts varied one at a time, quiet and while another numeric program runs.

    python tools/contention_probe.py            # prints a table (medians of alternating runs)

"adaptive" is edgemine's default (``edgemine.kernels.cpu.threads``: OpenBLAS on one thread
while other programs keep the cores busy); the others pin both counts. Each setting runs in its
own process (thread counts are process-wide and OpenBLAS's are fixed
at its first call), so settings cannot disturb each other; the load (numpy matrix products on
numpy's default BLAS threads, as in ``tools/bench.py --busy``) is restarted for each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from bench import BUSY_CODE  # noqa: E402
from peers import machine  # noqa: E402

CHILD = textwrap.dedent(
    """
    import json, statistics, sys, time
    import numpy as np
    from edgemine import zoo
    from edgemine.kernels.cpu import blas
    from edgemine.utils import set_random_seed, to_categorical
    import numba

    from edgemine.kernels.cpu import threads
    blas_threads, numba_threads = int(sys.argv[1]), int(sys.argv[2])
    if blas_threads:  # fixed counts: the load adaptation off
        threads.adapt()
        threads.pin(blas_threads)
        blas.set_blas_threads(blas_threads)
        numba.set_num_threads(numba_threads)
    set_random_seed(0)
    model = zoo.build_model(zoo.load_spec("seed_cnn"))
    rng = np.random.default_rng(0)
    x = rng.random((256, 28, 28, 1), dtype=np.float32)
    y = to_categorical(rng.integers(0, 10, 256), 10)

    def timed(fn, n):
        fn(); fn()
        out = []
        for _ in range(n):
            t0 = time.perf_counter(); fn(); out.append(time.perf_counter() - t0)
        return statistics.median(out) * 1e3

    res = {
        "latency_b1_ms": timed(lambda: model.predict_on_batch(x[:1]), 200),
        "train_b32_ms": timed(lambda: model.train_on_batch(x[:32], y[:32]), 40),
        "predict_b256_ms": timed(lambda: model.predict_on_batch(x), 20),
    }
    print(json.dumps(res))
    """
)

SETTINGS = {  # name -> (OpenBLAS threads, Numba threads); (0, 0): edgemine's default policy
    "adaptive (default)": (0, 0),
    "fixed: OpenBLAS 2, Numba 2": (2, 2),
    "fixed: OpenBLAS 1, Numba 2": (1, 2),
    "fixed: OpenBLAS 2, Numba 1": (2, 1),
    "fixed: both 1": (1, 1),
}


def run(setting: tuple[int, int], busy: bool) -> dict:
    load = None
    if busy:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
        load = subprocess.Popen([sys.executable, "-c", BUSY_CODE], env=env)
        time.sleep(1.0)
    try:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, *map(str, setting)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        ).stdout
    finally:
        if load is not None:
            load.kill()
            load.wait()
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    print(f"# contention probe: seed CNN, {machine()}")
    print("| setting | load | latency b1 ms | train b32 ms | predict b256 ms |")
    print("|---|---|---|---|---|")
    for name, setting in SETTINGS.items():
        for busy in (False, True):
            r = run(setting, busy)
            print(
                f"| {name} | {'busy' if busy else 'quiet'} | {r['latency_b1_ms']:.3f} | "
                f"{r['train_b32_ms']:.2f} | {r['predict_b256_ms']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
