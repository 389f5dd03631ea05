"""Reading an exported model: edgemine's metadata, the input spec and the graph's operators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper


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


def _copy_metadata(src: onnx.ModelProto, dst_path: Path, quantization: str) -> None:
    """Put the source's metadata back (ORT's tools replace it) and record the quantization."""
    model = onnx.load(str(dst_path))
    del model.metadata_props[:]
    for prop in src.metadata_props:
        if prop.key != "edgemine_quantization":
            model.metadata_props.add(key=prop.key, value=prop.value)
    model.metadata_props.add(key="edgemine_quantization", value=quantization)
    onnx.save(model, str(dst_path))
