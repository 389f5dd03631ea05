"""onnxruntime on edgemine's ONNX export vs onnxruntime on PyTorch's export of the same network.

Two seed networks, the same weights in both frameworks:

* the seed CNN (Conv 32/64/64, two max-poolings, Dense 64 + 10): edgemine's graph takes NHWC
  (one input Transpose, one before Flatten); PyTorch's takes NCHW;
* the seed LSTM (Embedding 10000x64, LSTM 64 with return_sequences, LSTM 64, Dense 64 + 10) on
  100 tokens: PyTorch's nn.Embedding + nn.LSTM x2 + nn.Linear x2 on the last time step.

Both graphs run in one process, in the same onnxruntime build with the same session options
(``--threads`` intra-op threads, sequential execution, all graph optimisations), called in turn
(A, B, A, B, ...) so that a noisy neighbour slows both alike. Reported: medians of batch-1
latency and of batch-256 throughput, and edgemine's speed relative to PyTorch's export
(> 1: edgemine's graph is faster). PyTorch is a benchmark peer only (``pip install
torch==2.13.0``); its TorchScript-based exporter is used because the torch.export-based one needs
onnxscript.

Usage::

    python tools/bench_onnx.py                  # writes tools/results/bench_onnx.md
    python tools/bench_onnx.py --threads 2 --min-time 10 --only cnn
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

import edgemine  # noqa: E402
from edgemine import zoo  # noqa: E402
from edgemine.onnx import export  # noqa: E402

sys.path.insert(0, str(REPO / "tools"))
from peers import copy_cnn_weights, copy_lstm_weights, machine, torch_cnn, torch_lstm  # noqa: E402

RESULTS = REPO / "tools" / "results" / "bench_onnx.md"


# ------------------------------------------------------------------------------ the models


def _seed_models(spec: str, torch_builder, copy_weights):
    """An edgemine zoo model with random weights and its PyTorch twin with the same weights."""
    import torch

    em = zoo.build_model(zoo.load_spec(spec))
    _randomize(em)
    tm = torch_builder(torch, softmax=True)
    copy_weights(torch, em, tm)
    return em, tm.eval()


def seed_cnn():
    """The seed CNN in edgemine and in PyTorch, with the same (random) weights."""
    em, tm = _seed_models("seed_cnn", torch_cnn, copy_cnn_weights)
    x = np.random.default_rng(1).random((256, 28, 28, 1), dtype=np.float32)
    return em, tm, x, np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def seed_lstm():
    """The seed LSTM in edgemine and in PyTorch, with the same (random) weights."""
    em, tm = _seed_models("seed_lstm", torch_lstm, copy_lstm_weights)
    x = np.random.default_rng(1).integers(1, 10000, size=(256, 100)).astype(np.int64)
    return em, tm, x, x


def _randomize(model) -> None:
    rng = np.random.default_rng(0)
    model.set_weights(
        [w + rng.normal(0, 0.05, w.shape).astype(np.float32) for w in model.get_weights()]
    )


def torch_export(module, x: np.ndarray, path: Path) -> Path:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.from_numpy(x[:1]),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        )
    return path


# ------------------------------------------------------------------------------- measuring


def session(path: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _alternating(calls: dict, min_time: float, min_runs: int) -> dict[str, list[float]]:
    """Seconds per call of each runner, the runners called in turn (A, B, C, A, B, C, ...) so
    that a noisy neighbour slows them alike; ``min_time`` seconds per runner at least."""
    for fn in calls.values():  # warm-up
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {k: [] for k in calls}
    spent = 0.0
    while spent < min_time * len(calls) or min(len(t) for t in times.values()) < min_runs:
        for name, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            times[name].append(dt)
            spent += dt
    return times


def _caller(sess: ort.InferenceSession, x: np.ndarray):
    feed = {sess.get_inputs()[0].name: x}
    return lambda: sess.run(None, feed)


def measure(runners: dict, batch: int, min_time: float) -> dict:
    """{name: (batch-1 latency ms, batch-``batch`` samples/s, their 10th-percentile twins)}."""
    lat = _alternating({k: _caller(s, x[:1]) for k, (s, x) in runners.items()}, min_time, 50)
    thr = _alternating({k: _caller(s, x[:batch]) for k, (s, x) in runners.items()}, min_time, 10)
    return {
        k: (
            1e3 * float(np.median(lat[k])),
            batch / float(np.median(thr[k])),
            1e3 * float(np.percentile(lat[k], 10)),
            batch / float(np.percentile(thr[k], 10)),
        )
        for k in runners
    }


def graph_ops(path: Path) -> str:
    counts = Counter(n.op_type for n in onnx.load(str(path)).graph.node)
    return ", ".join(f"{op} {k}" for op, k in sorted(counts.items()))


def bench_model(name: str, build, threads: int, min_time: float, tmp: Path) -> dict:
    import torch

    torch.set_num_threads(threads)
    em, tm, x_em, x_torch = build()
    em_path = export(em, tmp / f"{name}_edgemine.onnx", opset=17)
    torch_path = torch_export(tm, x_torch, tmp / f"{name}_torch.onnx")
    runners = {
        "edgemine export": (session(em_path, threads), x_em),
        "PyTorch export": (session(torch_path, threads), x_torch),
    }
    if name == "cnn":
        nchw_path = export(em, tmp / f"{name}_edgemine_nchw.onnx", opset=17, nchw_input=True)
        runners["edgemine export, --nchw"] = (session(nchw_path, threads), x_torch)
    want = em.predict(x_em[:16])
    for label, (sess, x) in runners.items():
        got = sess.run(None, {sess.get_inputs()[0].name: x[:16]})[0]
        diff = float(np.abs(got - want).max())
        if diff > 1e-4:
            raise SystemExit(f"{name}: {label} disagrees with the engine (max abs diff {diff:.3g})")
    results = measure(runners, 256, min_time)
    paths = {"edgemine export": em_path, "PyTorch export": torch_path}
    if name == "cnn":
        paths["edgemine export, --nchw"] = nchw_path
    return {"results": results, "ops": {k: graph_ops(p) for k, p in paths.items()}}


# ------------------------------------------------------------------------------- reporting


def versions() -> str:
    import torch

    return (
        f"Python {platform.python_version()}, numpy {np.__version__}, onnx {onnx.__version__}, "
        f"onnxruntime {ort.__version__}, torch {torch.__version__}, "
        f"edgemine {edgemine.__version__}"
    )


def report(all_results: dict, threads: int, min_time: float, load: str) -> str:
    lines = [
        "# onnxruntime: edgemine's ONNX export vs PyTorch's export",
        "",
        f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        f"- machine: {machine()}; load average {load} (other jobs share it, so the runners are "
        "called in turn, A B C A B C ..., and medians are reported)",
        f"- versions: {versions()}",
        f"- onnxruntime CPU, {threads} intra-op threads, sequential execution, ORT_ENABLE_ALL; "
        f"opset 17; at least {min_time:g} s of timed runs per runner and measurement",
        "- speed vs PyTorch: > 1 means edgemine's graph is faster (ratios of medians); p10: "
        "the 10th percentile of the call times (the least disturbed calls)",
        "- command: `python tools/bench_onnx.py`",
        "",
    ]
    for name, res in all_results.items():
        title = {
            "cnn": "Seed CNN (28x28x1 images)",
            "lstm": "Seed LSTM (100 tokens, vocabulary 10,000)",
        }[name]
        lines += [
            f"## {title}",
            "",
            "| graph | batch 1 latency (ms) | batch 256 (samples/s) | latency vs PyTorch "
            "| throughput vs PyTorch | p10 latency (ms) | p10 batch 256 (samples/s) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        base_lat, base_thr = res["results"]["PyTorch export"][:2]
        for label, (lat, thr, lat10, thr10) in res["results"].items():
            lines.append(
                f"| {label} | {lat:.3f} | {thr:,.0f} | {base_lat / lat:.2f}x "
                f"| {thr / base_thr:.2f}x | {lat10:.3f} | {thr10:,.0f} |"
            )
        lines += ["", "Operators:", ""]
        lines += [f"- {label}: {ops}" for label, ops in res["ops"].items()]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--min-time",
        type=float,
        default=4.0,
        help="seconds of timed runs per runner and measurement",
    )
    parser.add_argument("--only", choices=["cnn", "lstm"])
    parser.add_argument("-o", "--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    builders = {"cnn": seed_cnn, "lstm": seed_lstm}
    names = [args.only] if args.only else list(builders)
    all_results = {}
    before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            all_results[name] = bench_model(
                name, builders[name], args.threads, args.min_time, Path(tmp)
            )
            for label, (lat, thr, _, _) in all_results[name]["results"].items():
                print(f"{name:5s} {label:26s} {lat:8.3f} ms  {thr:10,.0f} samples/s")
    load = f"{before:.1f} before, {os.getloadavg()[0]:.1f} after the run"
    text = report(all_results, args.threads, args.min_time, load)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
