"""edgemine against PyTorch (CPU), side by side in one run, on the seed models.

    python tools/bench.py                      # seed CNN and seed LSTM, writes tools/results/bench.md
    python tools/bench.py --models cnn --quick

For each model: training samples/s at batch 32 (the real train split), predict latency at batch 1
(PyTorch's the better of 2 threads and 1 thread) and throughput at batch 256, each with the ratio edgemine / PyTorch (> 1 means edgemine is
faster). Each engine runs in its own process, as a user runs it (its own malloc, OpenBLAS and
OpenMP state), and the measurements alternate between the two so that noise from a shared
machine falls on both; medians are reported. For the CNN also the start-up time of a fresh process that loads a
saved model and predicts one image, with an empty and with a warm Numba cache.
The peer needs `pip install torch==2.13.0` (CPU build); it is never a runtime dependency.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

THREADS = 2
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(THREADS))
os.environ.setdefault("NUMBA_NUM_THREADS", str(THREADS))

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgemine import zoo  # noqa: E402
from edgemine.utils import set_random_seed, to_categorical  # noqa: E402

sys.path.insert(0, str(REPO / "tools"))
from peers import machine, torch_cnn, torch_lstm  # noqa: E402

# Pause between the two engines: OpenBLAS's (edgemine's) and OpenMP's (PyTorch's) worker threads
# busy-wait for a while after each call, and would otherwise steal a core from the other engine's
# first steps (measured: PyTorch trained about 10 % slower right after edgemine than alone).
PARK_S = 0.5


#: the other program of ``--busy``: numpy matrix products on numpy's default BLAS threads (what
#: a data miner's second job looks like), started fresh for each engine's turn
BUSY_CODE = (
    "import numpy as np\n"
    "a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)\n"
    "while True:\n"
    "    a = (a @ a) / np.float32(1024)\n"
)


class Load:
    """With ``busy``, another numeric program runs while the block runs (its own process, with
    no thread-count variables, so numpy takes every core); else nothing."""

    def __init__(self, busy: bool):
        self.busy = busy
        self.proc = None

    def __enter__(self):
        if self.busy:
            env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
            self.proc = subprocess.Popen([sys.executable, "-c", BUSY_CODE], env=env)
            time.sleep(1.0)  # let it reach its loop
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def median_time(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ------------------------------------------------------------------ one process per engine
#
# Each engine runs in a process of its own, as a user runs it: its own malloc state (edgemine
# keeps freed memory for the next batch, and that setting is process-wide: sharing a process
# with edgemine gave PyTorch its setting too, and PyTorch's batch-256 prediction makes about
# 14,800 page faults a call without it and none with it, 1.5-1.9x faster), its own OpenBLAS and
# OpenMP threads. The parent only takes turns. The "torch-kept" worker is PyTorch with that
# setting, reported as a second reference.


def engine_calls(engine: str, key: str, epochs_steps: int) -> dict:
    """{command: (setup, fn, context)} for one engine on one seed model: 'train' (epochs_steps
    batches of 32), 'latency' (predict one sample), 'b256' (predict 256); PyTorch also
    'latency1' (one thread: faster at batch 1, less synchronisation)."""
    _, spec_file, torch_builder, x_to_torch = CASES[key]
    spec = zoo.load_spec(spec_file)
    set_random_seed(0)
    data = zoo.load_data(spec["dataset"], spec.get("dataset_args"))
    x, y = data.x_train, data.y_train
    bs = 32
    rng = np.random.default_rng(0)
    none = contextlib.nullcontext
    if engine == "edgemine":
        y_hot = to_categorical(y, 10)
        model = zoo.build_model(spec)

        def em_train():
            idx = rng.permutation(len(x))[: epochs_steps * bs]
            for s in range(epochs_steps):
                b = idx[s * bs : (s + 1) * bs]
                model.train_on_batch(x[b], y_hot[b])

        x1, x256 = x[:1], x[:256]
        return {
            "train": (lambda: None, em_train, none),
            "latency": (lambda: None, lambda: model.predict(x1), none),
            "b256": (lambda: None, lambda: model.predict(x256, batch_size=256), none),
        }
    import torch

    if engine == "torch-kept":  # PyTorch with the malloc thresholds that edgemine sets itself
        from edgemine.kernels.cpu import memory

        memory.keep_freed_memory()
    torch.set_num_threads(THREADS)
    tmodel = torch_builder(torch)
    topt = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
    tloss = torch.nn.CrossEntropyLoss()
    tx = x_to_torch(torch, x)
    ty = torch.from_numpy(y.astype(np.int64))

    def torch_train():
        idx = torch.from_numpy(rng.permutation(len(x))[: epochs_steps * bs])
        for s in range(epochs_steps):
            b = idx[s * bs : (s + 1) * bs]
            topt.zero_grad()
            loss = tloss(tmodel(tx[b]), ty[b])
            loss.backward()
            topt.step()

    def mode(training: bool, threads: int):
        def setup():
            torch.set_num_threads(threads)
            tmodel.train(training)

        return setup

    t1, t256 = tx[:1], tx[:256]
    return {
        "train": (mode(True, THREADS), torch_train, none),
        "latency": (mode(False, THREADS), lambda: tmodel(t1), torch.inference_mode),
        "latency1": (mode(False, 1), lambda: tmodel(t1), torch.inference_mode),
        "b256": (mode(False, THREADS), lambda: tmodel(t256), torch.inference_mode),
    }


def worker_main(engine: str, key: str, epochs_steps: int) -> None:
    """Serve timing requests on stdin ('COMMAND N' -> one JSON number on stdout): 'train 1' is
    the seconds of one training run, any other command the median of N timed calls after 2
    warm-up calls. The engine's own prints (progress bars) go nowhere."""
    proto, sys.stdout = sys.stdout, open(os.devnull, "w")
    calls = engine_calls(engine, key, epochs_steps)
    setup, train, _ = calls["train"]
    setup()
    train()  # compile, warm caches
    print("ready", file=proto, flush=True)
    for line in sys.stdin:
        command, n = line.split()
        setup, fn, context = calls[command]
        setup()
        with context():
            if command == "train":
                t0 = time.perf_counter()
                fn()
                value = time.perf_counter() - t0
            else:
                value = median_time(fn, int(n))
        print(json.dumps(value), file=proto, flush=True)


class Worker:
    """One engine's process (``worker_main``), asked for timings in turn with the other's."""

    def __init__(self, engine: str, key: str, epochs_steps: int):
        cmd = [sys.executable, __file__, "--worker", engine, "--models", key]
        cmd += ["--steps", str(epochs_steps)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the {engine} worker did not start (see its error above)")

    def time(self, command: str, n: int = 1) -> float:
        time.sleep(PARK_S)  # the other engine's threads stop spinning first
        self.proc.stdin.write(f"{command} {n}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"a worker stopped during {command!r}")
        return json.loads(line)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def taking_turns(asks: dict, blocks: int) -> dict:
    """{name: median of block values} for ``asks`` = {name: ask()}: the names take turns, block
    by block. The machine's speed drifts by tens of percent over minutes (other tenants), so
    timing one engine's 300 calls and then the other's compared two different machines; taking
    turns puts the drift on both."""
    times: dict = {name: [] for name in asks}
    for _ in range(blocks):
        for name, ask in asks.items():
            times[name].append(ask())
    return {name: statistics.median(v) for name, v in times.items()}


def bench_case(key: str, epochs_steps: int, repeats: int) -> dict:
    """Each metric as (edgemine, PyTorch, PyTorch with edgemine's malloc thresholds)."""
    with (
        Worker("edgemine", key, epochs_steps) as em,
        Worker("torch", key, epochs_steps) as pt,
        Worker("torch-kept", key, epochs_steps) as pk,
    ):
        engines = {"em": em, "torch": pt, "kept": pk}
        train = taking_turns(
            {k: (lambda w=w: w.time("train")) for k, w in engines.items()}, repeats
        )
        # PyTorch at batch 1 is faster on one thread (less synchronisation): take its better one
        asks = {k: (lambda w=w: w.time("latency", 50)) for k, w in engines.items()}
        asks["torch1"] = lambda: pt.time("latency1", 50)
        asks["kept1"] = lambda: pk.time("latency1", 50)
        lat = taking_turns(asks, blocks=10)
        thr = taking_turns({k: (lambda w=w: w.time("b256", 5)) for k, w in engines.items()}, 6)
    n = epochs_steps * 32
    return {
        "train": tuple(n / train[k] for k in engines),
        "latency_ms": (
            lat["em"] * 1e3,
            min(lat["torch"], lat["torch1"]) * 1e3,
            min(lat["kept"], lat["kept1"]) * 1e3,
        ),
        "throughput": tuple(256 / thr[k] for k in engines),
    }


def cold_start(torch_available: bool) -> dict:
    """Wall time of fresh processes that load a saved seed CNN and predict one image."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        set_random_seed(0)
        model = zoo.build_model(zoo.load_spec("seed_cnn"))
        model.save(tmp / "m.edgemine")
        np.save(tmp / "x.npy", np.zeros((1, 28, 28, 1), np.float32))
        code = textwrap.dedent(f"""
            import numpy as np
            from edgemine.models import load_model
            load_model({str(tmp / "m.edgemine")!r}).predict(np.load({str(tmp / "x.npy")!r}))
        """)
        env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp / "numba-cache"))

        def run(cmd, env):
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            return time.perf_counter() - t0

        out["edgemine_cold_s"] = run([sys.executable, "-c", code], env)
        # A README install has no SciPy, but this Python may (the tests' scikit-learn brings
        # it), and numba would import scipy.linalg on its way to the first kernel (edgemine's
        # ``_numba_env.import_numba`` keeps it from doing so): measure both. Hiding SciPy from
        # the child is what numba sees in an install without it.
        no_scipy = "import sys; sys.modules['scipy'] = None\n" + code
        warm, warm_scipy, peer = [], [], []
        if torch_available:
            import torch

            torch.save(torch_cnn(torch).state_dict(), tmp / "m.pt")
            tcode = textwrap.dedent(f"""
                import sys, torch
                sys.path.insert(0, {str(REPO / "tools")!r})
                from peers import torch_cnn
                m = torch_cnn(torch); m.load_state_dict(torch.load({str(tmp / "m.pt")!r}, weights_only=True))
                m.eval()
                with torch.inference_mode(): m(torch.zeros(1, 1, 28, 28))
            """)
        for _ in range(5):  # take turns, so that all see the same machine noise
            warm.append(run([sys.executable, "-c", no_scipy], env))
            warm_scipy.append(run([sys.executable, "-c", code], env))
            if torch_available:
                peer.append(run([sys.executable, "-c", tcode], dict(os.environ)))
        out["edgemine_warm_s"] = statistics.median(warm)
        out["edgemine_warm_scipy_s"] = statistics.median(warm_scipy)
        out["scipy_present"] = importlib.util.find_spec("scipy") is not None
        if torch_available:
            out["torch_s"] = statistics.median(peer)
    return out


CASES = {
    "cnn": (
        "seed CNN",
        "seed_cnn",
        torch_cnn,
        lambda torch, x: torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))),
    ),
    "lstm": (
        "seed LSTM",
        "seed_lstm",
        torch_lstm,
        lambda torch, x: torch.from_numpy(x.astype(np.int64)),
    ),
}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--models", default="cnn,lstm")
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    ap.add_argument(
        "--busy",
        action="store_true",
        help="also measure both engines while another numeric program runs (numpy matrix "
        "products on its default BLAS threads), and report each engine's busy/quiet slowdown",
    )
    ap.add_argument("--out", default=str(REPO / "tools" / "results" / "bench.md"))
    ap.add_argument("--worker", choices=["edgemine", "torch", "torch-kept"], help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker_main(args.worker, args.models, args.steps)
        return
    import torch

    steps, repeats = (10, 2) if args.quick else (60, 5)
    lines = [
        "# edgemine vs PyTorch (CPU), side by side",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {machine()}",
        f"- threads: {THREADS}; batch 32 training on the train split, {steps} steps x {repeats} "
        "alternating repeats (median); latency = predict of one sample, batch 256 = predict of "
        "256, each the median of block medians over 10 / 6 blocks that alternate between the "
        "engines (PyTorch's latency: the faster of 2 threads and 1 thread); each engine in a "
        "process of its own",
        f"- versions: python {platform.python_version()}, numpy {np.__version__}, "
        f"numba {__import__('numba').__version__}, torch {torch.__version__}",
        "",
        "| model | metric | edgemine | PyTorch | ratio (edgemine/PyTorch, >1 = faster) |",
        "|---|---|---|---|---|",
    ]
    results = {}
    for key in args.models.split(","):
        title = CASES[key][0]
        for busy in (False, True) if args.busy else (False,):
            with Load(busy):
                r = bench_case(key, steps, repeats)
            results[key, busy] = r
            tr, lat, thr = r["train"], r["latency_ms"], r["throughput"]
            name = f"{title}, busy" if busy else title
            lines += [
                f"| {name} | training samples/s (batch 32) | {tr[0]:,.0f} | {tr[1]:,.0f} | {tr[0] / tr[1]:.2f}x |",
                f"| {name} | predict latency, batch 1 (ms) | {lat[0]:.3f} | {lat[1]:.3f} | {lat[1] / lat[0]:.2f}x |",
                f"| {name} | predict samples/s, batch 256 | {thr[0]:,.0f} | {thr[1]:,.0f} | {thr[0] / thr[1]:.2f}x |",
            ]
            print("\n".join(lines[-3:]), flush=True)
    lines += [
        "",
        "PyTorch in a process with the malloc thresholds that edgemine sets for itself (glibc's "
        "mmap threshold 32 MB, trim threshold 64 MB: `edgemine/kernels/cpu/memory.py`), timed in "
        "the same turns; a PyTorch user gets this with `MALLOC_MMAP_THRESHOLD_` and "
        "`MALLOC_TRIM_THRESHOLD_` (or another allocator):",
        "",
        "| model | metric | edgemine | PyTorch, memory kept | ratio (edgemine/PyTorch) |",
        "|---|---|---|---|---|",
    ]
    for (key, busy), r in results.items():
        tr, lat, thr = r["train"], r["latency_ms"], r["throughput"]
        name = f"{CASES[key][0]}, busy" if busy else CASES[key][0]
        lines += [
            f"| {name} | training samples/s (batch 32) | {tr[0]:,.0f} | {tr[2]:,.0f} | {tr[0] / tr[2]:.2f}x |",
            f"| {name} | predict latency, batch 1 (ms) | {lat[0]:.3f} | {lat[2]:.3f} | {lat[2] / lat[0]:.2f}x |",
            f"| {name} | predict samples/s, batch 256 | {thr[0]:,.0f} | {thr[2]:,.0f} | {thr[0] / thr[2]:.2f}x |",
        ]
    if args.busy:
        lines += [
            "",
            "Busy: another program (numpy matrix products on numpy's default BLAS threads) runs "
            "during both engines' turns. Slowdown = quiet / busy (1.0 = unaffected; 2.0 = a fair "
            "half of a 2-core machine).",
            "",
            "| model | metric | edgemine slowdown | PyTorch slowdown |",
            "|---|---|---|---|",
        ]
        for key in args.models.split(","):
            quiet, busy = results[key, False], results[key, True]
            for metric, label, higher in (
                ("train", "training", True),
                ("latency_ms", "latency, batch 1", False),
                ("throughput", "predict, batch 256", True),
            ):
                slow = [
                    (quiet[metric][i] / busy[metric][i])
                    if higher
                    else (busy[metric][i] / quiet[metric][i])
                    for i in (0, 1)
                ]
                lines.append(f"| {CASES[key][0]} | {label} | {slow[0]:.2f}x | {slow[1]:.2f}x |")
        print("\n".join(lines[-7:]), flush=True)
    if "cnn" in args.models:
        cs = cold_start(True)
        lines += [
            "",
            "Start-up: a fresh process that loads the saved seed CNN and predicts one image (wall time).",
            "",
            "| case | seconds |",
            "|---|---|",
            f"| edgemine, empty Numba cache (compiles every kernel) | {cs['edgemine_cold_s']:.2f} |",
            f"| edgemine, warm Numba cache, as installed (no SciPy; median of 5) | {cs['edgemine_warm_s']:.2f} |",
        ]
        if cs["scipy_present"]:
            lines.append(
                f"| edgemine, warm Numba cache, SciPy installed too (median of 5) | {cs['edgemine_warm_scipy_s']:.2f} |"
            )
        lines += [
            f"| PyTorch eager (median of 5) | {cs['torch_s']:.2f} |",
            "",
            f"Warm start / PyTorch's: {cs['edgemine_warm_s'] / cs['torch_s']:.2f}x as installed"
            + (
                f", {cs['edgemine_warm_scipy_s'] / cs['torch_s']:.2f}x with SciPy installed"
                if cs["scipy_present"]
                else ""
            )
            + ".",
        ]
        print("\n".join(lines[-6:]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
