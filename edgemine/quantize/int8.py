"""int8 versions of a model with onnxruntime's tools: static QDQ with calibration, or dynamic."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

from .data import CALIBRATION_SAMPLES, default_calibration, prepare_inputs
from .metadata import _copy_metadata, _load_proto, _op_types, model_spec, read_metadata

log = logging.getLogger(__name__)

#: ops that make a graph "convolutional": static QDQ with calibration is the default for these.
CONV_OPS = frozenset({"Conv", "ConvTranspose", "QLinearConv"})
#: ops that make a graph "recurrent": dynamic quantization is the default for these.
RECURRENT_OPS = frozenset({"LSTM", "GRU", "RNN"})
_CALIBRATION_BATCH = 32


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
