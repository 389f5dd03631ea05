"""Post-training int8 and fp16 versions of an exported ONNX model, and a report against fp32.

Everything numerical is onnxruntime's own tooling: ``quant_pre_process`` (shape inference and
graph optimisation), ``quantize_static`` with a calibration set in QDQ format (the default for
graphs with convolutions), ``quantize_dynamic`` (the default for recurrent and fully connected
graphs) and ``onnxruntime.transformers.float16`` for fp16. This module only chooses, feeds and
measures.

Example::

    from edgemine.quantize import compare_models, format_report, quantize_int8
    q = quantize_int8("mnist_cnn.onnx", "mnist_cnn_int8.onnx")  # static QDQ, MNIST calibration
    print(format_report(compare_models("mnist_cnn.onnx", q, x_test, y_test)))
"""

from __future__ import annotations

import json
import logging
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "ModelSpec",
    "compare_models",
    "convert_fp16",
    "default_calibration",
    "default_eval_data",
    "format_report",
    "load_npz",
    "model_spec",
    "prepare_inputs",
    "quantize_int8",
    "read_metadata",
]

log = logging.getLogger(__name__)

#: ops that make a graph "convolutional": static QDQ with calibration is the default for these.
CONV_OPS = frozenset({"Conv", "ConvTranspose", "QLinearConv"})
#: ops that make a graph "recurrent": dynamic quantization is the default for these.
RECURRENT_OPS = frozenset({"LSTM", "GRU", "RNN"})
#: default number of calibration samples taken from a data set.
CALIBRATION_SAMPLES = 300
_CALIBRATION_BATCH = 32
# ---------------------------------------------------------------------------------------------
# reading a model: metadata and input spec
# ---------------------------------------------------------------------------------------------


def _load_proto(model: str | Path | onnx.ModelProto, weights: bool = False) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        return onnx.load(str(path), load_external_data=weights)
    except Exception as exc:  # protobuf raises several types on a corrupt file
        raise ValueError(f"{path} is not a readable ONNX model ({exc.__class__.__name__})") from exc


def read_metadata(model: str | Path | onnx.ModelProto) -> dict[str, Any]:
    """The edgemine ``metadata_props`` of an ONNX model, with the JSON values decoded.

    Keys always present: ``edgemine_version`` (str or None), ``layers`` (list or None),
    ``class_names`` (list or None), ``preprocessing`` (dict or None), ``quantization`` (str or
    None), ``vocab_size`` (int or None: a text model's Embedding rows, so token ids must lie in
    ``[0, vocab_size)``); plus ``extra``: the other props as strings.

    Example::

        >>> read_metadata("mnist_cnn.onnx")["preprocessing"]["kind"]  # doctest: +SKIP
        'image'
    """
    props = {p.key: p.value for p in _load_proto(model).metadata_props}

    def _json(key: str) -> Any:
        raw = props.pop(key, None)
        if raw is None or raw == "":
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"metadata '{key}' is not valid JSON: {exc}") from exc

    meta = {
        "edgemine_version": props.pop("edgemine_version", None),
        "layers": _json("layers"),
        "class_names": _json("class_names"),
        "preprocessing": _json("preprocessing"),
        "quantization": props.pop("edgemine_quantization", None),
        "vocab_size": _json("vocab_size"),
    }
    vocab = meta["vocab_size"]
    if vocab is not None and (type(vocab) is not int or vocab < 1):
        raise ValueError(f"metadata 'vocab_size' must be a positive integer, got {vocab!r}")
    if meta["class_names"] is not None and not isinstance(meta["class_names"], list):
        raise ValueError("metadata 'class_names' must be a JSON list")
    if meta["preprocessing"] is not None and not isinstance(meta["preprocessing"], dict):
        raise ValueError("metadata 'preprocessing' must be a JSON object")
    meta["extra"] = props
    return meta


class ModelSpec:
    """Name, numpy dtype and shape (None for a dynamic axis) of a model's first input and output.

    Example::

        >>> spec = ModelSpec("input", np.float32, (None, 28, 28, 1), "probabilities", (None, 10))
        >>> spec.input_shape, spec.input_dtype
        ((None, 28, 28, 1), dtype('float32'))
    """

    def __init__(
        self,
        input_name: str,
        input_dtype: np.dtype,
        input_shape: tuple[int | None, ...],
        output_name: str,
        output_shape: tuple[int | None, ...],
    ) -> None:
        self.input_name = input_name
        self.input_dtype = np.dtype(input_dtype)
        self.input_shape = input_shape
        self.output_name = output_name
        self.output_shape = output_shape

    def __repr__(self) -> str:
        return (
            f"ModelSpec(input={self.input_name!r} {self.input_dtype} {self.input_shape}, "
            f"output={self.output_name!r} {self.output_shape})"
        )


def _dims(value_info: onnx.ValueInfoProto) -> tuple[int | None, ...]:
    return tuple(
        d.dim_value if d.HasField("dim_value") else None
        for d in value_info.type.tensor_type.shape.dim
    )


def model_spec(model: str | Path | onnx.ModelProto) -> ModelSpec:
    """Read the first graph input and output of an ONNX model (see :class:`ModelSpec`)."""
    proto = _load_proto(model)
    inits = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if not inputs or not proto.graph.output:
        raise ValueError("the model has no graph input or no graph output")
    inp, out = inputs[0], proto.graph.output[0]
    dtype = helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
    return ModelSpec(inp.name, dtype, _dims(inp), out.name, _dims(out))


def _op_types(proto: onnx.ModelProto) -> set[str]:
    ops: set[str] = set()
    stack = [proto.graph]
    while stack:
        graph = stack.pop()
        for node in graph.node:
            ops.add(node.op_type)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    stack.append(attr.g)
                stack.extend(attr.graphs)
    return ops


# ---------------------------------------------------------------------------------------------
# data: user .npz files, bundled data sets, turning raw data into model inputs
# ---------------------------------------------------------------------------------------------


def load_npz(path: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray | None]:
    """Read ``(x, y)`` from an ``.npz``: keys ``x``/``y``, or ``x_train``... / ``x_test``...

    ``split`` says which pair to prefer when both are present ("train" for calibration, "test"
    for evaluation). ``y`` is None when the file has no labels. Never unpickles.

    Example::

        >>> x, y = load_npz("digits.npz", split="test")  # doctest: +SKIP
    """
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"{path} is not a readable .npz file ({exc})") from exc
    with data:
        keys = set(data.files)
        other = "test" if split == "train" else "train"
        for xk, yk in (
            (f"x_{split}", f"y_{split}"),
            ("x", "y"),
            (f"x_{other}", f"y_{other}"),
        ):
            if xk in keys:
                return data[xk], (data[yk] if yk in keys else None)
    raise ValueError(
        f"{path} has keys {sorted(keys)}; expected 'x' (and 'y'), or 'x_train'/'x_test' "
        "(and 'y_train'/'y_test')"
    )


def prepare_inputs(
    x: np.ndarray,
    spec: ModelSpec,
    preprocessing: dict[str, Any] | None = None,
) -> np.ndarray:
    """Make raw data fit a model's input: dtype, a missing channel axis, and image scaling.

    Integer images (for example MNIST's uint8 ``(n, 28, 28)``) feeding a float input are
    multiplied by ``preprocessing["scale"]`` (1/255 when absent); float arrays are taken as
    already scaled. Token ids are cast to the input's integer type.

    Example::

        >>> spec = ModelSpec("input", np.float32, (None, 28, 28, 1), "probabilities", (None, 10))
        >>> x = prepare_inputs(np.full((2, 28, 28), 255, np.uint8), spec, {"scale": 1 / 255})
        >>> x.shape, x.dtype, float(x.max())
        ((2, 28, 28, 1), dtype('float32'), 1.0)
    """
    x = np.asarray(x)
    pre = preprocessing or {}
    want = spec.input_shape
    if x.ndim == len(want) - 1:
        # a single channel left out: add it where the layout puts it
        axis = 1 if pre.get("layout", "NHWC").upper() == "NCHW" else x.ndim
        x = np.expand_dims(x, axis)
    if x.ndim != len(want):
        raise ValueError(f"inputs have shape {x.shape}; the model takes {_shape_str(want)}")
    for got, need in zip(x.shape[1:], want[1:]):
        if need is not None and got != need:
            raise ValueError(f"inputs have shape {x.shape}; the model takes {_shape_str(want)}")
    if np.issubdtype(spec.input_dtype, np.floating):
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32) * np.float32(pre.get("scale", 1.0 / 255.0))
        return np.ascontiguousarray(x, dtype=spec.input_dtype)
    if np.issubdtype(x.dtype, np.floating):
        if not np.all(np.equal(np.mod(x, 1), 0)):
            raise ValueError("the model takes integer token ids; the inputs are not integers")
    return np.ascontiguousarray(x, dtype=spec.input_dtype)


def _shape_str(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


def _dataset_for(preprocessing: dict[str, Any] | None, spec: ModelSpec) -> str | None:
    pre = preprocessing or {}
    if pre.get("dataset"):
        return str(pre["dataset"])
    if pre.get("kind") == "image":
        if (pre.get("height"), pre.get("width"), pre.get("channels")) == (28, 28, 1):
            return "mnist"
        return None
    if pre.get("kind") == "text":
        return "tweets"
    if not pre and tuple(spec.input_shape[1:]) in {(28, 28, 1), (1, 28, 28), (28, 28)}:
        return "mnist"
    return None


def _evenly(n_total: int, n: int) -> np.ndarray:
    """n indices spread evenly over range(n_total): a stratified pick from label-sorted data."""
    n = min(n, n_total)
    return np.unique(np.linspace(0, n_total - 1, n).round().astype(np.int64))


def _dataset_split(
    model: str | Path, split: str, n: int | None
) -> tuple[np.ndarray, np.ndarray, str]:
    spec = model_spec(model)
    pre = read_metadata(model)["preprocessing"] or {}
    name = _dataset_for(pre, spec)
    if name is None:
        raise ValueError(
            "no bundled data set matches this model's preprocessing "
            f"({json.dumps(pre) if pre else 'none in its metadata'}); pass data explicitly"
        )
    if name == "mnist":
        from edgemine.datasets import mnist

        train, test = mnist.load_data()
    elif name == "tweets":
        from edgemine.datasets import tweets

        train, test = tweets.load_data(
            num_words=int(pre.get("num_words", 10000)), maxlen=int(pre.get("maxlen", 100))
        )
    else:
        raise ValueError(f"unknown data set {name!r} in the model's preprocessing metadata")
    x, y = train if split == "train" else test
    if n is not None:
        idx = _evenly(len(x), n)
        x, y = x[idx], y[idx]
    return prepare_inputs(x, spec, pre), np.asarray(y), name


def default_calibration(model: str | Path, n: int = CALIBRATION_SAMPLES) -> np.ndarray:
    """``n`` training samples of the bundled data set that fits the model, as model inputs.

    The set is chosen from the model's ``preprocessing`` metadata: 28x28x1 images -> MNIST,
    text -> the tweet corpus (with its ``num_words`` and ``maxlen``); ``"dataset"`` in the
    metadata overrides the guess. Samples are spread evenly over the (label-sorted) split.

    Example::

        >>> default_calibration("mnist_cnn.onnx", n=200).shape  # doctest: +SKIP
        (200, 28, 28, 1)
    """
    return _dataset_split(model, "train", n)[0]


def default_eval_data(
    model: str | Path, n: int | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """The bundled test split that fits the model: ``(x, y, dataset_name)``, x as model inputs.

    Example::

        >>> x, y, name = default_eval_data("mnist_cnn.onnx")  # doctest: +SKIP
    """
    return _dataset_split(model, "test", n)


def synthetic_inputs(model: str | Path, n: int = 64, seed: int = 0) -> np.ndarray:
    """Random inputs of the right shape and type (images in [0, 1], token ids in the vocabulary).

    Only for timing and for comparing outputs when no data fits; never for calibration.

    Example::

        >>> synthetic_inputs("cnn.onnx", n=8).shape  # doctest: +SKIP
        (8, 28, 28, 1)
    """
    spec = model_spec(model)
    pre = read_metadata(model)["preprocessing"] or {}
    shape = (n,) + tuple(1 if d is None else d for d in spec.input_shape[1:])
    rng = np.random.default_rng(seed)
    if np.issubdtype(spec.input_dtype, np.floating):
        return rng.random(shape).astype(spec.input_dtype)
    high = int(pre.get("num_words", 100))
    return rng.integers(0, high, size=shape).astype(spec.input_dtype)


# ---------------------------------------------------------------------------------------------
# int8 and fp16
# ---------------------------------------------------------------------------------------------


def _copy_metadata(src: onnx.ModelProto, dst_path: Path, quantization: str) -> None:
    """Put the source's metadata back (ORT's tools replace it) and record the quantization."""
    model = onnx.load(str(dst_path))
    del model.metadata_props[:]
    for prop in src.metadata_props:
        if prop.key != "edgemine_quantization":
            model.metadata_props.add(key=prop.key, value=prop.value)
    model.metadata_props.add(key="edgemine_quantization", value=quantization)
    onnx.save(model, str(dst_path))


def _calibration_reader(name: str, x: np.ndarray):
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        """Feeds the calibration set in batches of 32."""

        def __init__(self) -> None:
            self._batches: Iterator[dict[str, np.ndarray]] = iter(
                {name: x[i : i + _CALIBRATION_BATCH]} for i in range(0, len(x), _CALIBRATION_BATCH)
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    return _Reader()


def _pre_process(src: Path, dst: Path) -> Path:
    """onnxruntime's quant_pre_process; falls back to the original model if it fails."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        # the symbolic pass needs sympy, which edgemine does not depend on; ONNX shape inference
        # and the graph optimisation still run
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
        return dst
    except Exception as exc:  # its symbolic shape inference does not know every graph
        log.warning("quant_pre_process failed (%s); quantizing the model as it is", exc)
        return src


def quantize_int8(
    src: str | Path,
    dst: str | Path,
    method: str | None = None,
    calibration: np.ndarray | None = None,
    *,
    samples: int = CALIBRATION_SAMPLES,
    symmetric: bool = False,
) -> Path:
    """Write an int8 version of the ONNX model ``src`` to ``dst`` with onnxruntime's quantizer.

    ``method``: ``"static"`` (QDQ, activations calibrated with MinMax on ``calibration``,
    per-channel weights), ``"dynamic"`` (int8 weights, activations quantized at run time) or
    None: static for graphs with convolutions, dynamic otherwise (LSTM/GRU/RNN, MatMul/Gemm).
    ``calibration``: model inputs (or raw data, see :func:`prepare_inputs`) for static; when
    None, ``samples`` training samples of the bundled data set that fits the model.
    ``symmetric=True`` makes activations symmetric too (what TensorRT's int8 wants).
    The metadata of ``src`` is kept, with ``edgemine_quantization`` added.

    Example::

        >>> quantize_int8("lstm.onnx", "lstm_int8.onnx")  # doctest: +SKIP
        PosixPath('lstm_int8.onnx')
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.registry import QDQRegistry

    src, dst = Path(src), Path(dst)
    proto = _load_proto(src)
    ops = _op_types(proto)
    if method is None:
        method = "static" if ops & CONV_OPS else "dynamic"
    if method not in ("static", "dynamic"):
        raise ValueError(f"method must be 'static', 'dynamic' or None, not {method!r}")
    dst.parent.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="edgemine-q-") as tmp:
        model_in = _pre_process(src, Path(tmp) / "pre.onnx")
        if method == "static":
            spec = model_spec(proto)
            pre = read_metadata(proto)["preprocessing"]
            if calibration is None:
                calibration = default_calibration(src, samples)
            x = prepare_inputs(calibration, spec, pre)
            if len(x) == 0:
                raise ValueError("the calibration set is empty")
            # everything quantizable except the softmax: its probabilities stay float
            op_types = sorted(
                (set(QDQRegistry) & _op_types(onnx.load(str(model_in)))) - {"Softmax"}
            )
            # Portable int8: x86 without VNNI runs U8S8 through 16-bit pair sums that saturate
            # (onnxruntime warns of this), so one model answered differently on AMD, Intel and
            # ARM. U8U8 takes an exact path everywhere; TensorRT's symmetric int8 keeps its int8
            # types but with 7-bit weights (reduce_range), which cannot saturate either.
            act, weight = (QuantType.QInt8,) * 2 if symmetric else (QuantType.QUInt8,) * 2
            extra = {"ActivationSymmetric": True, "WeightSymmetric": True} if symmetric else {}
            quantize_static(
                str(model_in),
                str(dst),
                _calibration_reader(spec.input_name, x),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=op_types,
                per_channel=True,
                reduce_range=symmetric,
                activation_type=act,
                weight_type=weight,
                extra_options=extra,
            )
        else:
            # dynamic kernels are U8S8: 7-bit weights keep them from saturating (see above)
            quantize_dynamic(
                str(model_in), str(dst), weight_type=QuantType.QInt8, reduce_range=True
            )
    _copy_metadata(proto, dst, f"int8-{method}")
    return dst


def _fp16_by_hand(model: onnx.ModelProto) -> onnx.ModelProto:
    """fp16 without onnxruntime.transformers: cast float initializers and constants to fp16,
    and put Cast nodes at the float inputs and outputs so that the interface stays float32."""
    graph = model.graph
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(
                numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name)
            )
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT:
                arr = numpy_helper.to_array(attr.t).astype(np.float16)
                attr.t.CopyFrom(numpy_helper.from_array(arr, attr.t.name))
        for attr in node.attribute:  # Cast(to=float) inside the graph becomes Cast(to=fp16)
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
    inits = {i.name for i in graph.initializer}
    casts_in, casts_out = [], []
    for inp in graph.input:
        if inp.name in inits or inp.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        new = inp.name + "_fp16"
        for node in graph.node:
            node.input[:] = [new if n == inp.name else n for n in node.input]
        casts_in.append(helper.make_node("Cast", [inp.name], [new], to=TensorProto.FLOAT16))
    for out in graph.output:
        if out.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        new = out.name + "_fp16"
        for node in graph.node:
            node.output[:] = [new if n == out.name else n for n in node.output]
            node.input[:] = [new if n == out.name else n for n in node.input]
        casts_out.append(helper.make_node("Cast", [new], [out.name], to=TensorProto.FLOAT))
    nodes = casts_in + list(graph.node) + casts_out
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    return model


def convert_fp16(src: str | Path, dst: str | Path) -> Path:
    """Write an fp16 version of ``src`` to ``dst``; its input and output stay float32.

    Uses ``onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True)``;
    where that module is missing, an equivalent cast of initializers plus Cast nodes at the
    interface. onnxruntime's CPU provider runs ops that lack an fp16 kernel in float32.

    Example::

        >>> convert_fp16("cnn.onnx", "cnn_fp16.onnx")  # doctest: +SKIP
        PosixPath('cnn_fp16.onnx')
    """
    src, dst = Path(src), Path(dst)
    proto = _load_proto(src, weights=True)
    meta = onnx.ModelProto()
    meta.metadata_props.extend(proto.metadata_props)
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError:
        half = _fp16_by_hand(proto)
    else:
        half = convert_float_to_float16(proto, keep_io_types=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(half, str(dst))
    _copy_metadata(meta, dst, "fp16")
    return dst


# ---------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------


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
    from .runtime import time_calls

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
