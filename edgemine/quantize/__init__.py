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

from .data import (
    CALIBRATION_SAMPLES,
    default_calibration,
    default_eval_data,
    load_npz,
    prepare_inputs,
    synthetic_inputs,
)
from .fp16 import convert_fp16
from .int8 import CONV_OPS, RECURRENT_OPS, quantize_int8
from .metadata import ModelSpec, model_spec, read_metadata
from .report import compare_models, format_report

__all__ = [
    "CALIBRATION_SAMPLES",
    "CONV_OPS",
    "RECURRENT_OPS",
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
    "synthetic_inputs",
]
