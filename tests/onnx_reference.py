"""onnx's ReferenceEvaluator with spec-complete replacements for the few operators where onnx's
reference implementation falls short (shared by test_onnx_export.py and the layer harness)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator
from onnx.reference.ops import op_gru, op_lstm, op_max_pool, op_rnn


def _rnn_act(name: str, alpha: float | None, beta: float | None):
    return {
        "Sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)),
        "Tanh": np.tanh,
        "Relu": lambda x: np.maximum(x, 0),
        "Affine": lambda x: alpha * x + beta,
    }[name]


def _acts_of(op, n: int) -> list:
    """The activation functions of a reference LSTM / GRU / RNN node (the same in both
    directions, as Keras's Bidirectional makes them)."""
    names = list(op.activations)
    alpha = list(op.activation_alpha) if op.activation_alpha is not None else [None] * len(names)
    beta = list(op.activation_beta) if op.activation_beta is not None else [None] * len(names)
    assert names[:n] == names[n:] or len(names) == n
    return [_rnn_act(names[i], alpha[i], beta[i]) for i in range(n)]


class LSTM_ref(op_lstm.LSTM):  # noqa: N801
    """onnx's reference LSTM ignores the ``activations`` attribute (onnx 1.23); this one uses it."""

    op_domain = ""

    def _run(self, *args, **kwargs):
        if self.activations:
            self.f, self.g, self.h = _acts_of(self, 3)
        return super()._run(*args, **kwargs)


class GRU_ref(op_gru.GRU):  # noqa: N801
    """onnx's reference GRU ignores the ``activations`` attribute (onnx 1.23); this one uses it."""

    op_domain = ""

    def _run(self, *args, **kwargs):
        if self.activations:
            self.f, self.g = _acts_of(self, 2)
        return super()._run(*args, **kwargs)


class RNN_ref(op_rnn.RNN_14):  # noqa: N801
    """onnx's reference RNN knows only Tanh and Affine (onnx 1.23); this one knows them all."""

    op_domain = ""

    def choose_act(self, name, alpha, beta):
        return _rnn_act(name, alpha, beta)


class MaxPool_ref(op_max_pool.MaxPool):  # noqa: N801
    """onnx 1.23's reference MaxPool, with all strides 1, reads 2-D pads as [top, bottom, left,
    right] (_op_common_pool.py) instead of ONNX's [top, left, bottom, right]; this one always
    takes its general (correct) path."""

    op_domain = ""

    def _run(
        self,
        x,
        auto_pad=None,
        ceil_mode=None,
        dilations=None,
        kernel_shape=None,
        pads=None,
        storage_order=None,
        strides=None,
    ):
        return self._max_pool(
            x,
            auto_pad=auto_pad,
            ceil_mode=ceil_mode,
            dilations=dilations or [1] * len(kernel_shape),
            kernel_shape=kernel_shape,
            pads=pads,
            storage_order=storage_order,
            strides=strides or [1] * len(kernel_shape),
        )


for _cls, _name in (
    (LSTM_ref, "LSTM"),
    (GRU_ref, "GRU"),
    (RNN_ref, "RNN"),
    (MaxPool_ref, "MaxPool"),
):
    _cls.__name__ = _name


def _attr(node: onnx.NodeProto, name: str):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return None


def reference(proto: onnx.ModelProto) -> ReferenceEvaluator:
    """onnx's ReferenceEvaluator, with the spec-complete subclasses above only where onnx's own
    ops fall short: recurrent nodes with non-default activations, stride-1 MaxPool whose pads
    onnx misreads."""
    new_ops = []
    nodes = list(proto.graph.node)
    if any(n.op_type in ("LSTM", "GRU", "RNN") and _attr(n, "activations") for n in nodes):
        new_ops += [LSTM_ref, GRU_ref, RNN_ref]
    for n in nodes:
        pads = _attr(n, "pads")
        stride_1 = set(_attr(n, "strides") or [1]) == {1}
        if n.op_type == "MaxPool" and stride_1 and pads and pads[1] != pads[2]:
            new_ops.append(MaxPool_ref)
            break
    return ReferenceEvaluator(proto, new_ops=new_ops or None)
