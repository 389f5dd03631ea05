"""The report: size, accuracy and latency of quantized models against fp32."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np

from .data import prepare_inputs
from .metadata import model_spec, read_metadata


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _predict(sess, name: str, x: np.ndarray, batch: int = 256) -> np.ndarray:
    return np.concatenate(
        [sess.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)]
    )


def _median_ms(sess, name: str, x: np.ndarray, repeats: int, warmup: int = 2) -> float:
    from ..runtime import time_calls

    feed = {name: x}
    times = time_calls(
        lambda: sess.run(None, feed),
        min_time=0.0,
        min_runs=repeats,
        max_runs=repeats,
        warmup=warmup,
    )
    return statistics.median(times) * 1000.0


def _batch_of(x: np.ndarray, n: int) -> np.ndarray:
    reps = -(-n // len(x))
    return np.ascontiguousarray(np.concatenate([x] * reps)[:n]) if reps > 1 else x[:n].copy()


def compare_models(
    reference_path: str | Path,
    candidate_path: str | Path,
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    repeats: int = 30,
) -> dict[str, Any]:
    """Measure a quantized or fp16 model against its fp32 reference on the inputs ``x``.

    Returns a dict: ``reference`` and ``candidate`` (each ``path``, ``precision``,
    ``size_bytes``, ``accuracy`` (None without ``y``), ``latency_ms_batch1``,
    ``latency_ms_batch64``: medians of ``repeats`` runs on onnxruntime's CPU provider),
    ``size_ratio``, ``max_abs_diff`` and ``mean_abs_diff`` of the outputs, ``top1_agreement``,
    ``samples``. ``y`` may be class ids or one-hot rows.

    Example::

        >>> r = compare_models("cnn.onnx", "cnn_int8.onnx", x_test, y_test)  # doctest: +SKIP
        >>> r["max_abs_diff"] < 0.05, r["size_ratio"] < 0.5  # doctest: +SKIP
        (True, True)
    """
    reference_path, candidate_path = Path(reference_path), Path(candidate_path)
    spec = model_spec(reference_path)
    pre = read_metadata(reference_path)["preprocessing"]
    x = prepare_inputs(x, spec, pre)
    if len(x) == 0:
        raise ValueError("no samples to compare on")
    labels = None
    if y is not None:
        y = np.asarray(y)
        labels = y.argmax(axis=-1) if y.ndim == 2 else y.reshape(-1)
        if len(labels) != len(x):
            raise ValueError(f"{len(x)} inputs but {len(labels)} labels")
    out: dict[str, Any] = {"samples": int(len(x))}
    preds = {}
    for role, path in (("reference", reference_path), ("candidate", candidate_path)):
        sess = _session(path)
        name = sess.get_inputs()[0].name
        p = _predict(sess, name, x)
        preds[role] = p
        out[role] = {
            "path": str(path),
            "precision": read_metadata(path)["quantization"] or "fp32",
            "size_bytes": path.stat().st_size,
            "accuracy": (None if labels is None else float(np.mean(p.argmax(axis=-1) == labels))),
            "latency_ms_batch1": _median_ms(sess, name, x[:1].copy(), repeats),
            "latency_ms_batch64": _median_ms(sess, name, _batch_of(x, 64), max(3, repeats // 3)),
        }
    diff = np.abs(preds["reference"].astype(np.float64) - preds["candidate"].astype(np.float64))
    out["max_abs_diff"] = float(diff.max())
    out["mean_abs_diff"] = float(diff.mean())
    out["top1_agreement"] = float(
        np.mean(preds["reference"].argmax(axis=-1) == preds["candidate"].argmax(axis=-1))
    )
    out["size_ratio"] = out["candidate"]["size_bytes"] / out["reference"]["size_bytes"]
    return out


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MiB"


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of a :func:`compare_models` report.

    Example::

        >>> print(format_report(compare_models("cnn.onnx", "cnn_int8.onnx", x)))  # doctest: +SKIP
    """
    ref, cand = report["reference"], report["candidate"]
    left = f"{ref['precision']} ({Path(ref['path']).name})"
    right = f"{cand['precision']} ({Path(cand['path']).name})"
    width = max(len(left), 22)

    def row(label: str, a: str, b: str) -> str:
        return f"{label:<20}{a:<{width + 2}}{b}"

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}x faster" if b <= a else f"{b / a:.2f}x slower"

    lines = [
        row("", left, right),
        row(
            "file size",
            _kb(ref["size_bytes"]),
            f"{_kb(cand['size_bytes'])} ({report['size_ratio']:.2f}x)",
        ),
    ]
    if ref["accuracy"] is not None:
        lines.append(
            row(
                "accuracy",
                f"{ref['accuracy'] * 100:.2f}%",
                f"{cand['accuracy'] * 100:.2f}% ({(cand['accuracy'] - ref['accuracy']) * 100:+.2f} pts)",
            )
        )
    for key, label in (
        ("latency_ms_batch1", "latency, batch 1"),
        ("latency_ms_batch64", "latency, batch 64"),
    ):
        lines.append(
            row(label, f"{ref[key]:.3f} ms", f"{cand[key]:.3f} ms ({ratio(ref[key], cand[key])})")
        )
    lines.append(
        f"outputs on {report['samples']} samples: max |diff| {report['max_abs_diff']:.3g}, "
        f"mean |diff| {report['mean_abs_diff']:.3g}, top-1 agreement "
        f"{report['top1_agreement'] * 100:.2f}%"
    )
    lines.append("latencies: median of repeated runs, onnxruntime CPU provider, this machine")
    return "\n".join(lines)
