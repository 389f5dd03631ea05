"""fp16 versions of a model (onnxruntime.transformers' converter, or a plain cast by hand)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .metadata import _copy_metadata, _load_proto


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
