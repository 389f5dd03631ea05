"""ONNX export of edgemine models (:mod:`edgemine.onnx.exporter`) and a readable summary of an
ONNX file (:func:`describe_onnx`, used by ``edgemine inspect``).

Example:
    >>> from edgemine.models import Sequential
    >>> from edgemine.layers import Dense
    >>> path = export(Sequential([Dense(2, input_shape=(3,))]), "/tmp/doc_init.onnx")
    >>> print(describe_onnx(path).splitlines()[0])
    doc_init.onnx: ONNX model, opset 17, IR 8, producer edgemine 0.1.0
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from .exporter import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, ExportError, export, to_onnx

_TYPE_NAMES = {
    1: "float32",
    10: "float16",
    11: "float64",
    7: "int64",
    6: "int32",
    2: "uint8",
    3: "int8",
}


def _value_info(v) -> str:
    t = v.type.tensor_type
    dims = [d.dim_param if d.dim_param else str(d.dim_value) for d in t.shape.dim]
    return f"{v.name} ({', '.join(dims)}) {_TYPE_NAMES.get(t.elem_type, t.elem_type)}"


def _metadata_lines(meta: dict[str, str]) -> list[str]:
    """describe_onnx's lines for edgemine's metadata (and any other metadata keys)."""
    lines = []
    if "edgemine_version" in meta:
        lines.append(f"  exported by edgemine {meta['edgemine_version']}")
    if meta.get("edgemine_quantization"):
        lines.append(f"  quantization: {meta['edgemine_quantization']}")
    try:
        layers = json.loads(meta["layers"]) if meta.get("layers") else None
    except json.JSONDecodeError:
        layers = None
    if isinstance(layers, list):
        lines.append("  layers:")
        for entry in layers:
            if isinstance(entry, dict):
                cfg = entry.get("config") or {}
                name = cfg.get("name", "") if isinstance(cfg, dict) else ""
                lines.append(f"    {entry.get('class_name', '?')} {name}".rstrip())
    for key in ("class_names", "preprocessing"):
        raw = meta.get(key)
        if not raw:
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            lines.append(f"  {key}: (not valid JSON)")
            continue
        if key == "preprocessing" and isinstance(value, dict) and "word_index" in value:
            value = {**value, "word_index": f"<{len(value['word_index'])} words>"}
        text = json.dumps(value)
        lines.append(f"  {key}: {text if len(text) <= 200 else text[:197] + '...'}")
    others = sorted(
        set(meta)
        - {"edgemine_version", "layers", "class_names", "preprocessing", "edgemine_quantization"}
    )
    for key in others:
        lines.append(f"  {key}: {meta[key][:100]}")
    return lines


def describe_onnx(path: str | os.PathLike) -> str:
    """A multi-line summary of an ONNX file: opset, input/output, operators, parameters and the
    edgemine metadata (layers, class names, preprocessing, quantization).

    Raises ValueError (one line) for a missing or unreadable file.

    Example:
        >>> text = describe_onnx("/tmp/doc_init.onnx")
        >>> "operators: Gemm x1" in text
        True
    """
    import numpy as np
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ValueError(f"{path.name}: not a readable ONNX model ({type(e).__name__})") from None
    g = proto.graph
    opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    producer = f"{proto.producer_name} {proto.producer_version}".strip() or "unknown"
    lines = [
        f"{path.name}: ONNX model, opset {opsets.get('ai.onnx', '?')}, IR {proto.ir_version}, "
        f"producer {producer}"
    ]
    extra = {k: v for k, v in opsets.items() if k != "ai.onnx"}
    if extra:
        lines.append("  other opsets: " + ", ".join(f"{k} {v}" for k, v in extra.items()))
    inits = {i.name for i in g.initializer}
    for v in g.input:
        if v.name not in inits:
            lines.append(f"  input:  {_value_info(v)}")
    for v in g.output:
        lines.append(f"  output: {_value_info(v)}")
    ops = Counter(n.op_type for n in g.node)
    lines.append(
        f"  nodes: {len(g.node)}; operators: "
        + ", ".join(f"{op} x{k}" for op, k in sorted(ops.items()))
    )
    params = sum(int(np.prod(i.dims)) if i.dims else 1 for i in g.initializer)
    lines.append(
        f"  parameters: {params:,} in {len(g.initializer)} initializers; "
        f"file {path.stat().st_size / 1024:.1f} KB"
    )
    lines += _metadata_lines({p.key: p.value for p in proto.metadata_props})
    return "\n".join(lines)


__all__ = [
    "DEFAULT_OPSET",
    "MAX_OPSET",
    "MIN_OPSET",
    "ExportError",
    "describe_onnx",
    "export",
    "to_onnx",
]
