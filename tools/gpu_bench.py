"""GPU benchmarks for edgemine's CUDA backend, with PyTorch as the peer.

Four commands, each printing one JSON line per measurement (the last line of output is a JSON
list of all of them):

``speed``: training samples/s of the seed CNN (MNIST-shaped) and the seed LSTM (tweets-shaped:
Embedding 10,000 x 64, LSTM 64 x2, Dense 64, Dense 10) on edgemine ``device='cuda'`` and on
PyTorch CUDA, at each batch size (default 32 and 256), and their ratio. Both train from host
arrays with one host-to-device copy per batch and read the loss back every step, as ``fit`` does.
Each measurement runs a warm-up (kernel compilation), then trains for ``--seconds`` seconds.

``profile``: where the time of one edgemine ``device='cuda'`` training step goes: kernel
launches, allocations, array objects, uploads and downloads (counts and host milliseconds per
step), and each kernel's GPU time (CUDA events around every launch; real GPU only). With ``--stub-kernels``, in
the simulator, every launch is a no-op and the step's wall time is edgemine's host work alone
(full shapes; no GPU needed).

``overhead``: host microseconds per numba.cuda call of the kinds a training step makes (kernel
launches by argument count, launch + synchronize, allocation, reshape, slice, small copies).

``accuracy``: trains the seed CNN (edgemine.datasets.mnist) or the seed LSTM
(edgemine.datasets.tweets) for ``--epochs`` epochs on one device and reports test accuracy.

``--tiny`` shrinks every model and data set so that the code paths can be exercised in Numba's
CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) and on PyTorch CPU, without a GPU.

Examples::

    python tools/gpu_bench.py speed --batch-sizes 32,256 --seconds 8
    python tools/gpu_bench.py accuracy --models cnn --device cuda
    python tools/gpu_bench.py profile --batch-sizes 32 --steps 30
    NUMBA_ENABLE_CUDASIM=1 python tools/gpu_bench.py profile --stub-kernels --steps 60
    NUMBA_ENABLE_CUDASIM=1 python tools/gpu_bench.py speed --tiny --torch-device cpu
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# ----- model shapes -----
FULL = {
    "cnn": {"hw": 28, "filters": (32, 64, 64), "dense": 64, "classes": 10},
    "lstm": {"vocab": 10000, "dim": 64, "units": 64, "maxlen": 100, "dense": 64, "classes": 10},
}
TINY = {
    "cnn": {"hw": 18, "filters": (2, 3, 3), "dense": 4, "classes": 3},
    "lstm": {"vocab": 20, "dim": 3, "units": 3, "maxlen": 4, "dense": 4, "classes": 3},
}


def edgemine_model(kind: str, s: dict) -> Any:
    """The seed CNN / LSTM as an edgemine Sequential (shapes from ``s``)."""
    from edgemine import layers
    from edgemine.models import Sequential

    if kind == "cnn":
        f1, f2, f3 = s["filters"]
        return Sequential(
            [
                layers.Conv2D(f1, (3, 3), activation="relu", input_shape=(s["hw"], s["hw"], 1)),
                layers.MaxPooling2D((2, 2)),
                layers.Conv2D(f2, (3, 3), activation="relu"),
                layers.MaxPooling2D((2, 2)),
                layers.Conv2D(f3, (3, 3), activation="relu"),
                layers.Flatten(),
                layers.Dense(s["dense"], activation="relu"),
                layers.Dense(s["classes"], activation="softmax"),
            ]
        )
    for name in ("Embedding", "LSTM"):
        if not hasattr(layers, name):
            raise RuntimeError(f"edgemine.layers has no {name}")
    return Sequential(
        [
            layers.Embedding(input_dim=s["vocab"], output_dim=s["dim"], input_length=s["maxlen"]),
            layers.LSTM(s["units"], return_sequences=True),
            layers.LSTM(s["units"]),
            layers.Dense(s["dense"], activation="relu"),
            layers.Dense(s["classes"], activation="softmax"),
        ]
    )


def torch_model(kind: str, s: dict) -> Any:
    """The same architecture in PyTorch (NCHW convolutions, cuDNN LSTMs on a GPU)."""
    import torch
    from torch import nn

    if kind == "cnn":
        f1, f2, f3 = s["filters"]
        side = ((s["hw"] - 2) // 2 - 2) // 2 - 2
        return nn.Sequential(
            nn.Conv2d(1, f1, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(f1, f2, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(f2, f3, 3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(f3 * side * side, s["dense"]),
            nn.ReLU(),
            nn.Linear(s["dense"], s["classes"]),
        )

    class SeedLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(s["vocab"], s["dim"])
            self.l1 = nn.LSTM(s["dim"], s["units"], batch_first=True)
            self.l2 = nn.LSTM(s["units"], s["units"], batch_first=True)
            self.d1 = nn.Linear(s["units"], s["dense"])
            self.d2 = nn.Linear(s["dense"], s["classes"])

        def forward(self, x):
            h, _ = self.l1(self.emb(x))
            h, _ = self.l2(h)
            return self.d2(torch.relu(self.d1(h[:, -1])))

    return SeedLSTM()


def synthetic(kind: str, s: dict, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs of the model's shape and integer labels."""
    rng = np.random.default_rng(seed)
    if kind == "cnn":
        x = rng.random((n, s["hw"], s["hw"], 1), dtype=np.float32)
    else:
        x = rng.integers(1, s["vocab"], (n, s["maxlen"])).astype(np.int32)
    return x, rng.integers(0, s["classes"], n)


# ----- speed -----
def _budget(seconds: float) -> Any:
    """A fit callback that stops training after ``seconds`` and counts the steps run."""
    from edgemine.callbacks import Callback

    class Budget(Callback):
        def __init__(self):
            super().__init__()
            self.steps = 0
            self.t0 = 0.0
            self.elapsed = 0.0

        def on_train_begin(self, logs=None):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            self.elapsed = time.perf_counter() - self.t0
            if self.elapsed >= seconds:
                self.model.stop_training = True

    return Budget()


def speed_edgemine(
    kind: str,
    s: dict,
    batch: int,
    seconds: float,
    device: str,
    warmup_steps: int = 2,
    max_steps: int = 200,
) -> dict:
    """Training samples/s of edgemine on ``device`` (fit over synthetic data; epochs repeat
    until ``seconds`` have passed)."""
    from edgemine.utils import set_random_seed, to_categorical

    set_random_seed(0)
    model = edgemine_model(kind, s)
    model.compile(optimizer="adam", loss="categorical_crossentropy", device=device)
    x, y = synthetic(kind, s, batch * warmup_steps)
    t0 = time.perf_counter()
    model.fit(x, to_categorical(y, s["classes"]), batch_size=batch, epochs=1, verbose=0)
    warm_s = time.perf_counter() - t0
    x, y = synthetic(kind, s, batch * max_steps, seed=1)
    budget = _budget(seconds)
    model.fit(
        x,
        to_categorical(y, s["classes"]),
        batch_size=batch,
        epochs=10**6,
        verbose=0,
        callbacks=[budget],
    )
    return {
        "samples_per_s": budget.steps * batch / budget.elapsed,
        "steps": budget.steps,
        "warmup_s": warm_s,
    }


def speed_torch(
    kind: str, s: dict, batch: int, seconds: float, device: str, warmup_steps: int = 3
) -> dict:
    """Training samples/s of the PyTorch twin on ``device`` ('cuda' or 'cpu')."""
    import torch

    torch.manual_seed(0)
    dev = torch.device(device)
    model = torch_model(kind, s).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = synthetic(kind, s, min(200 * batch, batch * 64), seed=1)
    if kind == "cnn":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    x_t = torch.from_numpy(x if kind == "cnn" else x.astype(np.int64))
    y_t = torch.from_numpy(y.astype(np.int64))
    if device == "cuda":
        x_t, y_t = x_t.pin_memory(), y_t.pin_memory()

    def step(i):
        lo = (i * batch) % (len(x_t) - batch + 1)
        xb = x_t[lo : lo + batch].to(dev, non_blocking=True)
        yb = y_t[lo : lo + batch].to(dev, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss.item()  # one host read per step, as edgemine's fit does

    t0 = time.perf_counter()
    for i in range(warmup_steps):
        step(i)
    warm_s = time.perf_counter() - t0
    if device == "cuda":
        torch.cuda.synchronize()
    steps = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step(steps)
        steps += 1
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    return {"samples_per_s": steps * batch / elapsed, "steps": steps, "warmup_s": warm_s}


def cmd_speed(args: argparse.Namespace) -> list[dict]:
    """Speed rows for every model and batch size (printed as they finish)."""
    shapes = TINY if args.tiny else FULL
    rows = []
    for kind in args.models.split(","):
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            row = {"bench": "speed", "model": kind, "batch": batch}
            try:
                r = speed_edgemine(kind, shapes[kind], batch, args.seconds, args.device)
                row["edgemine_samples_per_s"] = round(r["samples_per_s"], 1)
                row["edgemine_warmup_s"] = round(r["warmup_s"], 2)
            except Exception as e:
                row["edgemine_error"] = f"{type(e).__name__}: {e}"
            if args.torch_device != "none":
                try:
                    r = speed_torch(kind, shapes[kind], batch, args.seconds, args.torch_device)
                    row["torch_samples_per_s"] = round(r["samples_per_s"], 1)
                    row["torch_warmup_s"] = round(r["warmup_s"], 2)
                except Exception as e:
                    row["torch_error"] = f"{type(e).__name__}: {e}"
            if "edgemine_samples_per_s" in row and "torch_samples_per_s" in row:
                row["edgemine_over_torch"] = round(
                    row["edgemine_samples_per_s"] / row["torch_samples_per_s"], 3
                )
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


# ----- profile -----
class HostCallProfiler:
    """Counts, and times on the host, every CUDA kernel launch, device allocation, upload,
    download and device-array object (a view: numba builds one per reshape or slice) that
    numba.cuda makes while active (a context manager). With ``gpu_events`` each
    launch is also bracketed by two CUDA events, which gives each kernel's GPU time (real GPU
    only; the events add host work, so host times from such a run are not representative).

    Works with numba-cuda and with Numba's CUDA simulator (host times only)."""

    def __init__(self, gpu_events: bool = False):
        from numba import config

        self.sim = bool(config.ENABLE_CUDASIM)
        self.gpu_events = gpu_events and not self.sim
        self.calls: dict[str, list[float]] = {}  # kind of call -> [count, host seconds]
        self.kernels: dict[str, list[float]] = {}  # kernel name -> [launches, host seconds]
        self.events: list[tuple[str, Any, Any]] = []
        self._undo: list[tuple[Any, str, Any]] = []
        self._depth = 0

    def _add(self, table: dict, key: str, seconds: float) -> None:
        row = table.setdefault(key, [0, 0.0])
        row[0] += 1
        row[1] += seconds

    def _patch(self, owner: Any, name: str, key: str, kernel: bool = False) -> None:
        original = getattr(owner, name)
        prof = self
        from numba import cuda

        def timed(*args, **kwargs):
            if prof._depth:  # a nested call of one already being timed
                return original(*args, **kwargs)
            if kernel:
                fn = args[0]
                if getattr(fn, "_device", False):  # simulator: a device function call
                    return original(*args, **kwargs)
                label = getattr(fn, "py_func", getattr(fn, "fn", fn)).__name__
            prof._depth += 1
            e0 = None
            try:
                if kernel and prof.gpu_events:
                    e0 = cuda.event(timing=True)
                    e0.record()
                t0 = time.perf_counter()
                out = original(*args, **kwargs)
                dt = time.perf_counter() - t0
                if e0 is not None:
                    e1 = cuda.event(timing=True)
                    e1.record()
                    prof.events.append((label, e0, e1))
            finally:
                prof._depth -= 1
            prof._add(prof.calls, key, dt)
            if kernel:
                prof._add(prof.kernels, label, dt)
            return out

        setattr(owner, name, timed)
        self._undo.append((owner, name, original))

    def __enter__(self) -> HostCallProfiler:
        from numba import cuda

        if self.sim:
            from numba.cuda.simulator import kernel as sim_kernel
            from numba.cuda.simulator.cudadrv import devicearray as sim_da

            self._patch(sim_kernel.FakeCUDAKernel, "__call__", "launches", kernel=True)
            self._patch(sim_da.FakeCUDAArray, "copy_to_host", "downloads")
            self._patch(sim_da.FakeCUDAArray, "copy_to_device", "uploads")
            self._patch(sim_da.FakeCUDAArray, "__init__", "array_objects")
        else:
            from numba.cuda import dispatcher
            from numba.cuda.cudadrv import devicearray

            self._patch(dispatcher.CUDADispatcher, "call", "launches", kernel=True)
            self._patch(devicearray.DeviceNDArrayBase, "copy_to_host", "downloads")
            self._patch(devicearray.DeviceNDArrayBase, "copy_to_device", "uploads")
            self._patch(devicearray.DeviceNDArray, "__init__", "array_objects")
        self._patch(cuda, "device_array", "allocations")
        self._patch(cuda, "to_device", "uploads")
        return self

    def __exit__(self, *exc: Any) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()

    def gpu_seconds(self) -> dict[str, float]:
        """GPU time per kernel name (after a synchronize), from the event pairs."""
        from numba import cuda

        cuda.synchronize()
        out: dict[str, float] = {}
        for label, e0, e1 in self.events:
            out[label] = out.get(label, 0.0) + cuda.event_elapsed_time(e0, e1) / 1000.0
        return out


class StubKernelLaunches:
    """In Numba's CUDA simulator, makes every kernel launch a no-op while active (a context
    manager): a training step then costs only its host work, edgemine's Python around the
    kernels, which a GPU cannot hide. The results are garbage; the host path is the real one."""

    def __enter__(self) -> StubKernelLaunches:
        from numba import config
        from numba.cuda.simulator import kernel as sim_kernel

        if not config.ENABLE_CUDASIM:
            raise RuntimeError(
                "--stub-kernels needs Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
            )
        self._kernel = sim_kernel.FakeCUDAKernel
        self._call = call = self._kernel.__call__

        def launch(kernel, *args):
            return call(kernel, *args) if kernel._device else None

        self._kernel.__call__ = launch
        return self

    def __exit__(self, *exc: Any) -> None:
        self._kernel.__call__ = self._call


def profile_edgemine(kind: str, s: dict, batch: int, steps: int, stub: bool = False) -> dict:
    """Where the time of one ``fit`` training step goes on device='cuda': host time in kernel
    launches, allocations, uploads and downloads, per step; then, in a second run with CUDA
    events around each launch, the kernels' GPU time per step. ``stub``: kernel launches are
    no-ops (simulator only), so that the wall time is the host work alone."""
    if stub:
        with StubKernelLaunches():
            return {**profile_edgemine(kind, s, batch, steps), "stub_kernels": True}
    from edgemine.callbacks import Callback
    from edgemine.utils import set_random_seed, to_categorical

    class StepClock(Callback):
        def __init__(self):
            super().__init__()
            self.t0 = 0.0
            self.total = 0.0

        def on_train_begin(self, logs=None):
            self.t0 = time.perf_counter()

        def on_train_end(self, logs=None):
            self.total = time.perf_counter() - self.t0

    set_random_seed(0)
    model = edgemine_model(kind, s)
    model.compile(optimizer="adam", loss="categorical_crossentropy", device="cuda")
    x, y = synthetic(kind, s, batch * steps, seed=1)
    y = to_categorical(y, s["classes"])
    model.fit(x[: 2 * batch], y[: 2 * batch], batch_size=batch, verbose=0)  # compile, warm up
    clock = StepClock()
    with HostCallProfiler() as prof:
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, callbacks=[clock])
    row: dict[str, Any] = {"bench": "profile", "model": kind, "batch": batch, "steps": steps}
    row["wall_ms_per_step"] = round(1000 * clock.total / steps, 3)
    accounted = 0.0
    # a download waits for the GPU; array objects: views made by reshapes and slices (and the
    # arrays of allocations made outside a numba call)
    for key in ("allocations", "array_objects", "downloads", "launches", "uploads"):
        count, secs = prof.calls.get(key, (0, 0.0))
        row[f"{key}_per_step"] = round(count / steps, 2)
        row[f"{key}_host_ms_per_step"] = round(1000 * secs / steps, 3)
        accounted += secs
    row["other_host_ms_per_step"] = round(1000 * (clock.total - accounted) / steps, 3)
    top = sorted(prof.kernels.items(), key=lambda kv: -kv[1][1])
    row["launches_by_kernel"] = {k: round(c / steps, 2) for k, (c, _) in top}
    if not prof.sim:
        with HostCallProfiler(gpu_events=True) as gprof:
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
        gpu = gprof.gpu_seconds()
        row["gpu_kernel_ms_per_step"] = round(1000 * sum(gpu.values()) / steps, 3)
        busiest = sorted(gpu.items(), key=lambda kv: -kv[1])[:8]
        row["gpu_ms_by_kernel"] = {k: round(1000 * v / steps, 3) for k, v in busiest}
    return row


def cmd_profile(args: argparse.Namespace) -> list[dict]:
    """Profile rows for every model and batch size."""
    shapes = TINY if args.tiny else FULL
    rows = []
    for kind in args.models.split(","):
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            try:
                row = profile_edgemine(kind, shapes[kind], batch, args.steps, args.stub_kernels)
            except Exception as e:
                row = {"bench": "profile", "model": kind, "batch": batch}
                row["error"] = f"{type(e).__name__}: {e}"
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


# ----- overhead -----
def cmd_overhead(args: argparse.Namespace) -> list[dict]:
    """Host microseconds per numba.cuda call that a training step makes many of: a kernel
    launch with 1, 4 and 8 array arguments (and with 6 scalars more), a launch followed by a
    synchronize, an allocation, a reshape, a slice, small uploads and downloads. Medians of
    ``--repeat`` calls (the simulator runs them too, with fewer repeats, for a smoke test)."""
    from numba import config, cuda

    sim = bool(config.ENABLE_CUDASIM)
    repeat = min(args.repeat, 20) if sim else args.repeat

    @cuda.jit
    def k1(a):
        pass

    @cuda.jit
    def k4(a, b, c, d):
        pass

    @cuda.jit
    def k8(a, b, c, d, e, f, g, h):
        pass

    @cuda.jit
    def k4s(a, b, c, d, i, j, x, y, p, q):
        pass

    arrs = [cuda.device_array(256, np.float32) for _ in range(8)]
    host = np.ones(256, np.float32)
    a = arrs[0]
    cases = {
        "launch, 1 array": lambda: k1[1, 32](a),
        "launch, 4 arrays": lambda: k4[1, 32](*arrs[:4]),
        "launch, 8 arrays": lambda: k8[1, 32](*arrs),
        "launch, 4 arrays + 6 scalars": lambda: k4s[1, 32](*arrs[:4], 1, 2, 0.5, 0.25, True, 3),
        "launch + synchronize": lambda: (k1[1, 32](a), cuda.synchronize()),
        "allocation (1 KiB)": lambda: cuda.device_array(256, np.float32),
        "reshape": lambda: a.reshape(16, 16),
        "slice": lambda: a[:128],
        "upload (1 KiB, to_device)": lambda: cuda.to_device(host),
        "upload (1 KiB, copy_to_device)": lambda: a.copy_to_device(host),
        "download (1 KiB)": lambda: a.copy_to_host(),
    }
    rows = []
    for name, fn in cases.items():
        fn()  # compile / warm up
        if not sim:
            cuda.synchronize()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        if not sim:
            cuda.synchronize()
        row = {
            "bench": "overhead",
            "call": name,
            "host_us": round(1e6 * float(np.median(times)), 2),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


# ----- accuracy -----
def load(kind: str, tiny: bool) -> tuple[tuple, tuple]:
    """(x_train, y_train), (x_test, y_test) of the seed program, one-hot labels."""
    from edgemine.utils import to_categorical

    if kind == "cnn":
        from edgemine.datasets import mnist

        (xt, yt), (xv, yv) = mnist.load_data()
        xt = xt.reshape(-1, 28, 28, 1).astype("float32") / 255.0
        xv = xv.reshape(-1, 28, 28, 1).astype("float32") / 255.0
    else:
        from edgemine.datasets import tweets

        (xt, yt), (xv, yv) = tweets.load_data(num_words=10000, maxlen=100)
    if tiny:
        r = np.random.default_rng(0)
        it, iv = r.permutation(len(xt))[:48], r.permutation(len(xv))[:16]
        xt, yt, xv, yv = xt[it], yt[it], xv[iv], yv[iv]
        if kind == "cnn":  # the tiny CNN takes 18 x 18 crops
            xt, xv = xt[:, 5:23, 5:23], xv[:, 5:23, 5:23]
        else:
            s = TINY["lstm"]
            xt = np.minimum(xt[:, -s["maxlen"] :], s["vocab"] - 1)
            xv = np.minimum(xv[:, -s["maxlen"] :], s["vocab"] - 1)
    classes = (TINY if tiny else FULL)[kind]["classes"]
    yt, yv = np.minimum(yt, classes - 1), np.minimum(yv, classes - 1)
    return (xt, to_categorical(yt, classes)), (xv, to_categorical(yv, classes))


def cmd_accuracy(args: argparse.Namespace) -> list[dict]:
    """Train each seed model on one device and report its test accuracy."""
    from edgemine.utils import set_random_seed

    rows = []
    for kind in args.models.split(","):
        row = {"bench": "accuracy", "model": kind, "device": args.device, "epochs": args.epochs}
        try:
            (xt, yt), (xv, yv) = load(kind, args.tiny)
            if args.max_train:
                xt, yt = xt[: args.max_train], yt[: args.max_train]
            set_random_seed(0)
            model = edgemine_model(kind, (TINY if args.tiny else FULL)[kind])
            model.compile(
                optimizer="adam",
                loss="categorical_crossentropy",
                metrics=["accuracy"],
                device=args.device,
            )
            t0 = time.perf_counter()
            model.fit(xt, yt, epochs=args.epochs, batch_size=32, verbose=0)
            row["fit_s"] = round(time.perf_counter() - t0, 2)
            loss, acc = model.evaluate(xv, yv, verbose=0)
            row.update(
                train_samples=len(xt),
                test_accuracy=round(100 * float(acc), 2),
                test_loss=round(float(loss), 4),
            )
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns 1 when any measurement reported an error."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("speed", help="training samples/s, edgemine cuda vs PyTorch")
    sp.add_argument("--models", default="cnn,lstm")
    sp.add_argument("--batch-sizes", default="32,256")
    sp.add_argument("--seconds", type=float, default=8.0, help="timed training per measurement")
    sp.add_argument("--device", default="cuda", help="edgemine device")
    sp.add_argument("--torch-device", default="cuda", help="'cuda', 'cpu' or 'none'")
    sp.add_argument("--tiny", action="store_true", help="tiny shapes (simulator smoke test)")
    ap = sub.add_parser("accuracy", help="train the seed models, report test accuracy")
    ap.add_argument("--models", default="cnn,lstm")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-train", type=int, default=0, help="cap the training samples (0: all)")
    ap.add_argument("--tiny", action="store_true")
    pp = sub.add_parser("profile", help="where an edgemine cuda training step's time goes")
    pp.add_argument("--models", default="cnn,lstm")
    pp.add_argument("--batch-sizes", default="32")
    pp.add_argument("--steps", type=int, default=30, help="timed training steps")
    pp.add_argument("--tiny", action="store_true")
    pp.add_argument(
        "--stub-kernels",
        action="store_true",
        help="simulator only: kernel launches do nothing, the wall time is host work alone",
    )
    op = sub.add_parser("overhead", help="host microseconds per numba.cuda launch, copy, view")
    op.add_argument("--repeat", type=int, default=2000)
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from strict_simulator import make_strict  # test code: it lives in tests/

    make_strict()  # under NUMBA_ENABLE_CUDASIM=1: fail where a real GPU would
    commands = {
        "speed": cmd_speed,
        "accuracy": cmd_accuracy,
        "profile": cmd_profile,
        "overhead": cmd_overhead,
    }
    rows = commands[args.command](args)
    print(json.dumps(rows))
    return 1 if any("error" in k for r in rows for k in r) else 0


if __name__ == "__main__":
    sys.exit(main())
