"""onnxruntime sessions with edgemine's ``predict`` interface and sensible defaults.

``Session(path)`` opens an exported model with one intra-op thread per physical core, sequential
execution (one inter-op thread: a Sequential graph is a chain) and the best provider available
(TensorRT, then CUDA, then CPU). ``predict`` takes what ``model.predict`` takes and checks it
the same way, with one-line errors; int32 (and whole-number float) token ids are cast to the
graph's int64.

Example:
    >>> import numpy as np
    >>> from edgemine.models import Sequential
    >>> from edgemine.layers import Dense
    >>> from edgemine.onnx import export
    >>> model = Sequential([Dense(2, activation="softmax", input_shape=(3,))])
    >>> sess = Session(export(model, "/tmp/doc_runtime.onnx"))
    >>> sess.predict(np.zeros((4, 3), np.float32)).shape
    (4, 2)
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
}


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads counted once).

    Reads Linux's CPU topology for the CPUs in the affinity mask; elsewhere falls back to the
    logical CPU count.

    Example:
        >>> physical_cores() >= 1
        True
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{base}/core_id") as f:
                core = f.read().strip()
            with open(f"{base}/physical_package_id") as f:
                package = f.read().strip()
        except OSError:
            return max(1, len(cpus))
        cores.add((package, core))
    return max(1, len(cores) or len(cpus))


def default_providers() -> list[str]:
    """TensorRT and CUDA when this onnxruntime build has them, then CPU.

    Example:
        >>> default_providers()[-1]
        'CPUExecutionProvider'
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in _GPU_PROVIDERS if p in available] + ["CPUExecutionProvider"]


class TensorSpec(NamedTuple):
    """A graph input or output: its name, shape (None for a dynamic axis) and dtype."""

    name: str
    shape: tuple
    dtype: np.dtype

    def describe(self) -> str:
        """``name (batch, 28, 28, 1) float32``."""
        shape = ", ".join(
            "batch" if i == 0 and d is None else str(d) for i, d in enumerate(self.shape)
        )
        return f"{self.name} ({shape}) {self.dtype}"


class Session:
    """An onnxruntime session over an edgemine ONNX file, with ``predict(x, batch_size)``.

    Args:
        path: the ``.onnx`` file (or its bytes).
        threads: intra-op threads; default: the physical cores available to this process.
        providers: execution providers; default: :func:`default_providers`.

    Attributes:
        inputs, outputs: the graph's :class:`TensorSpec` lists; input_name, input_shape (None
        for dynamic axes), input_dtype, vocab_size, output_name and output_shape describe the
        first of each (a model with one input and one output, as most are); vocab_sizes (by
        input name, for token-id inputs); metadata (the model's ``metadata_props``),
        class_names, preprocessing.

    A model with several inputs (a functional model's export) takes a list of arrays in input
    order or a dict by input name, as ``model.predict`` does; one with several outputs returns a
    list of arrays.

    Example:
        >>> sess = Session("/tmp/doc_runtime.onnx", threads=1)
        >>> sess.input_shape, sess.input_dtype
        ((None, 3), dtype('float32'))
    """

    def __init__(
        self,
        path: str | os.PathLike | bytes,
        threads: int | None = None,
        providers: list[str] | None = None,
    ) -> None:
        import onnxruntime as ort

        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1
        ):
            raise ValueError(f"threads must be a positive int, got {threads!r}")
        if isinstance(path, (bytes, bytearray)):
            source: Any = bytes(path)
            self.path = None
        else:
            self.path = Path(path)
            if not self.path.is_file():
                raise FileNotFoundError(f"model file not found: {self.path}")
            source = str(self.path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads) if threads else physical_cores()
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 4  # a failing run raises; ORT's own log would repeat it in red
        self.threads = opts.intra_op_num_threads
        self.providers = list(providers) if providers else default_providers()
        try:
            self._sess = ort.InferenceSession(source, sess_options=opts, providers=self.providers)
        except Exception as e:  # ORT raises several types for an unreadable model
            name = self.path if self.path else "model bytes"
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"{name}: not a loadable ONNX model ({first})") from None
        self.inputs = [_spec(i, "input") for i in self._sess.get_inputs()]
        self.outputs = [_spec(o, "output") for o in self._sess.get_outputs()]
        first = self.inputs[0]
        self.input_name, self.input_shape, self.input_dtype = first
        self.output_name, self.output_shape = self.outputs[0].name, self.outputs[0].shape
        meta = self._sess.get_modelmeta().custom_metadata_map
        self.metadata: dict[str, str] = dict(meta)
        self.class_names = self._json_meta("class_names", list)
        self.preprocessing = self._json_meta("preprocessing", dict)
        self.vocab_sizes = self._vocab_sizes()
        self.vocab_size = self.vocab_sizes.get(self.input_name)

    def _json_meta(self, key: str, kind: type) -> Any:
        raw = self.metadata.get(key)
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, kind) else None

    def _vocab_sizes(self) -> dict[str, int | None]:
        """Each token-id input's vocabulary, for a clear range error rather than ORT's: the
        exporter's ``vocab_size`` (the smallest table) where one input takes token ids, else
        the rows of the Embedding table that a Gather takes straight from each input."""
        ids = [t.name for t in self.inputs if np.issubdtype(t.dtype, np.integer)]
        meta = self._json_meta("vocab_size", int)
        if len(ids) == 1 and meta:
            return {ids[0]: meta}
        found = self._gather_tables(ids) if ids else {}
        return {name: found.get(name, meta or None) for name in ids}

    def _gather_tables(self, names: list[str]) -> dict[str, int]:
        if self.path is None:
            return {}
        try:
            import onnx

            proto = onnx.load(str(self.path), load_external_data=False)
        except Exception:
            return {}
        inits = {i.name: i for i in proto.graph.initializer}
        found: dict[str, int] = {}
        for node in proto.graph.node:
            if node.op_type == "Gather" and len(node.input) > 1 and node.input[1] in names:
                table = inits.get(node.input[0])
                if table is not None and len(table.dims) >= 1:
                    rows = int(table.dims[0])
                    found[node.input[1]] = min(rows, found.get(node.input[1], rows))
        return found

    # ----- input checking -----
    def check_input(self, x: Any, what: str = "x", index: int = 0) -> np.ndarray:
        """``x`` as a contiguous array of input ``index``'s dtype, or a one-line
        ValueError/TypeError.

        Example:
            >>> Session("/tmp/doc_runtime.onnx").check_input([[1, 2, 3]]).dtype
            dtype('float32')
        """
        spec = self.inputs[index]
        try:
            arr = np.asarray(x)
        except Exception as e:
            raise TypeError(f"{what} could not be turned into an array: {e}") from None
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise TypeError(f"{what} must be numeric, got dtype {arr.dtype}")
        want = spec.shape
        if arr.ndim != len(want) or any(
            w is not None and w != a for w, a in zip(want[1:], arr.shape[1:])
        ):
            expect = ", ".join(
                "batch" if i == 0 else ("None" if d is None else str(d)) for i, d in enumerate(want)
            )
            raise ValueError(f"{what} has shape {arr.shape}, but the model expects ({expect})")
        if arr.shape[0] == 0:
            raise ValueError(f"{what} is empty")
        if np.issubdtype(spec.dtype, np.integer):
            return self._token_ids(arr, what, self.vocab_sizes.get(spec.name), spec.dtype)
        arr = np.ascontiguousarray(arr, dtype=spec.dtype)
        if not np.isfinite(arr).all():
            raise ValueError(f"{what} contains NaN or infinite values")
        return arr

    @staticmethod
    def _token_ids(arr: np.ndarray, what: str, vocab: int | None, dtype: np.dtype) -> np.ndarray:
        if np.issubdtype(arr.dtype, np.floating):
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise TypeError(f"{what} must hold integer token ids; got non-integer floats")
        lo, hi = (arr.min(), arr.max()) if arr.size else (0, 0)
        if lo < 0 or (vocab is not None and hi >= vocab):
            bad = int(lo if lo < 0 else hi)
            limit = f"0..{vocab - 1}" if vocab else "0 and up"
            raise ValueError(f"{what} holds token id {bad}, outside the vocabulary ({limit})")
        return np.ascontiguousarray(arr, dtype=dtype)

    def check_inputs(self, x: Any) -> list[np.ndarray]:
        """Every input's checked array: ``x`` itself for a model with one input, else a list in
        input order or a dict by input name (the same number of samples in each).

        Example:
            >>> [a.shape for a in Session("/tmp/doc_runtime.onnx").check_inputs(np.ones((2, 3)))]
            [(2, 3)]
        """
        names = [t.name for t in self.inputs]
        if len(names) == 1:
            return [self.check_input(x)]
        if isinstance(x, dict):
            if set(x) != set(names):
                raise ValueError(f"x is a dict with keys {sorted(x)}, but the inputs are {names}")
            x = [x[n] for n in names]
        if not isinstance(x, (list, tuple)) or len(x) != len(names):
            raise ValueError(
                f"the model has {len(names)} inputs ({', '.join(names)}): give x as a list of "
                f"{len(names)} arrays or a dict by input name"
            )
        arrays = [self.check_input(a, f"x[{i}] ({names[i]!r})", i) for i, a in enumerate(x)]
        if len({len(a) for a in arrays}) > 1:
            raise ValueError("the arrays of x hold different numbers of samples")
        return arrays

    # ----- running -----
    def run(self, x: np.ndarray | list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        """One unchecked batch through onnxruntime (the caller checked dtypes and shapes): an
        array, or a list in input order; returns the output, or a list of them."""
        arrays = x if isinstance(x, list) else [x]
        feed = {t.name: a for t, a in zip(self.inputs, arrays)}
        outs = self._sess.run([t.name for t in self.outputs], feed)
        return outs if len(outs) > 1 else outs[0]

    def predict(
        self, x: Any, batch_size: int | None = None, verbose: int = 0
    ) -> np.ndarray | list[np.ndarray]:
        """Model outputs for ``x``, in batches of ``batch_size`` (default 32, like the engine);
        a list of arrays for a model with several outputs.

        ``verbose=1`` shows a progress bar on stderr when there is more than one batch.

        Example:
            >>> Session("/tmp/doc_runtime.onnx").predict(np.ones((3, 3)), batch_size=2).shape
            (3, 2)
        """
        if batch_size is None:
            batch_size = 32
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or (batch_size < 1)
        ):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        arrays = self.check_inputs(x)
        one = len(arrays) == 1
        n = len(arrays[0])
        if n <= batch_size:
            return self.run(arrays[0] if one else arrays)
        from .progress import ProgressBar

        steps = math.ceil(n / batch_size)
        bar = ProgressBar(steps, 1, stream=sys.stderr) if verbose else None
        outs = []
        for step in range(steps):
            part = [a[step * batch_size : (step + 1) * batch_size] for a in arrays]
            out = self.run(part[0] if one else part)
            outs.append(out if isinstance(out, list) else [out])
            if bar is not None:
                bar.update(step + 1, {})
        if bar is not None:
            bar.finish({})
        joined = [np.concatenate(parts) for parts in zip(*outs)]
        return joined if len(joined) > 1 else joined[0]

    def __repr__(self) -> str:
        where = self.path.name if self.path else "bytes"
        ins = ", ".join(t.describe() for t in self.inputs)
        return f"<Session {where}: {ins}, threads={self.threads}, providers={self.providers}>"


def _spec(arg: Any, what: str) -> TensorSpec:
    """A TensorSpec from onnxruntime's NodeArg; an input of an unknown type is refused."""
    shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
    if arg.type not in _ORT_TYPES:
        if what == "input":
            raise ValueError(f"unsupported model input type {arg.type} ({arg.name})")
        return TensorSpec(arg.name, shape, np.dtype(object))
    return TensorSpec(arg.name, shape, np.dtype(_ORT_TYPES[arg.type]))


def time_calls(
    fn: Any, min_time: float = 1.0, min_runs: int = 5, max_runs: int = 10_000, warmup: int = 3
) -> list[float]:
    """Seconds per call of ``fn()``: ``warmup`` untimed calls, then at least ``min_runs`` timed
    ones and more until ``min_time`` seconds have passed (at most ``max_runs``). Report the
    median: on a shared machine the mean is at the mercy of the neighbours.

    Example:
        >>> times = time_calls(lambda: sum(range(100)), min_time=0.01)
        >>> len(times) >= 5
        True
    """
    import time

    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_runs and (
        len(times) < min_runs or time.perf_counter() - start < min_time
    ):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


_pools_limited: int | None = None


def limit_threads(threads: int) -> None:
    """Run the engine's Numba kernels and OpenBLAS (and, with threadpoolctl installed, any
    other BLAS/OpenMP pool) on ``threads`` threads, fixed: without this, OpenBLAS drops to one
    thread while other programs keep the CPUs busy (``edgemine.kernels.cpu.threads``).

    Numba's count belongs to the calling thread, so a thread pool calls this in each task.
    OpenBLAS's count changes the engine's outputs in the last bits (measured up to 1e-6 on the
    seed CNN: its products are summed in another order), so two runs agree bit for bit when
    they use the same count; onnxruntime's outputs did not depend on its thread count.

    Example:
        >>> import numba
        >>> before = numba.get_num_threads()
        >>> limit_threads(1)
        >>> numba.get_num_threads()
        1
        >>> limit_threads(before)
    """
    global _pools_limited

    from .kernels.cpu import threads as thread_policy
    from .kernels.cpu.blas import set_blas_threads

    thread_policy.pin(threads)  # fixed counts: no adaptation to the machine's load
    thread_policy.set_numba_threads(threads)
    set_blas_threads(threads)
    if _pools_limited != threads:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            pass
        else:
            threadpool_limits(int(threads))
        _pools_limited = threads


__all__ = ["Session", "default_providers", "limit_threads", "physical_cores", "time_calls"]
