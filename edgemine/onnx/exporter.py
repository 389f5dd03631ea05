"""Sequential model -> ONNX graph, one converter per layer (see ``converters/``).

The exported graph takes what ``model.predict`` takes and returns what it returns:

* images: float32 NHWC ``(batch, h, w, c)``, or NCHW with ``nchw_input=True``;
* token ids (models starting with an Embedding): int64 ``(batch, steps)``. ONNX graphs have one
  input type, so int32 ids must be cast to int64 by the caller (``edgemine.runtime.Session``
  does it);
* the batch axis is dynamic (``batch``).

ONNX convolutions are NCHW: the exporter tracks the layout of the current tensor, transposes the
input once before the first layer that needs NCHW and back (``Transpose(0, 2, 3, 1)``) only where
a layer needs Keras's channels-last order (Flatten, Reshape, the graph output), so a CNN has one
Transpose at its input and one before Flatten. Element-wise layers, pooling and BatchNormalization
keep whatever layout they get. Dropout disappears; BatchNormalization is folded into a preceding
Conv1D / Conv2D / Dense with a linear activation, else it becomes ``Mul`` + ``Add``. Sequences
work the same way: a 1-D Conv wants (batch, channels, steps) (``"BCT"``); the layers in
``CHANNELS_FIRST_SEQUENCE_LAYERS`` keep that layout, and any other layer gets its inputs back in
Keras's order first.

Supported target opsets: ``MIN_OPSET`` (13) to ``MAX_OPSET``: the newest opset that both the
installed ``onnx`` and the ``onnxruntime`` it was tested with (1.32: opset 28) can run.

Example:
    >>> import numpy as np, onnxruntime as ort
    >>> from edgemine.models import Sequential
    >>> from edgemine.layers import Dense
    >>> model = Sequential([Dense(3, activation="softmax", input_shape=(4,))])
    >>> path = export(model, "/tmp/doc_dense.onnx")
    >>> sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    >>> x = np.ones((2, 4), np.float32)
    >>> bool(np.allclose(sess.run(None, {"input": x})[0], model.predict(x), atol=1e-6))
    True
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .. import __version__
from . import converters
from .converters import MIN_OPSET
from .passes import IDENTITY_LAYERS, next_mask, plan

#: the newest opset onnxruntime 1.32 runs for every operator the converters write
_ORT_MAX_OPSET = 28
#: the newest opset the converters write (limited by the installed onnx package)
MAX_OPSET = min(onnx.defs.onnx_opset_version(), _ORT_MAX_OPSET)
DEFAULT_OPSET = 17

#: layers whose converters take a sequence in ONNX's channels-first ``"BCT"`` layout (what a 1-D
#: Conv writes); before any other layer the exporter transposes it back to Keras's order
CHANNELS_FIRST_SEQUENCE_LAYERS = frozenset(
    {
        "Activation",
        "Add",
        "Average",
        "AveragePooling1D",
        "BatchNormalization",
        "Conv1D",
        "Conv1DTranspose",
        "GlobalAveragePooling1D",
        "GlobalMaxPooling1D",
        "Maximum",
        "MaxPooling1D",
        "Minimum",
        "Multiply",
        "Subtract",
        "UpSampling1D",
    }
)


class ExportError(ValueError):
    """A model, layer or option that has no correct ONNX graph (the message names the layer)."""


def layer_error(layer: Any, message: str) -> ExportError:
    """An ExportError that names ``layer``.

    Example:
        >>> from edgemine.layers import Dense
        >>> str(layer_error(Dense(2, name="d"), "no converter"))
        "layer 'd' (Dense): no converter"
    """
    return ExportError(f"layer {layer.name!r} ({type(layer).__name__}): {message}")


# --------------------------------------------------------------------------------------------
# graph building
# --------------------------------------------------------------------------------------------


class GraphBuilder:
    """Collects nodes and initializers with unique names.

    Example:
        >>> b = GraphBuilder()
        >>> w = b.const(np.ones((2, 2), np.float32), "w")
        >>> y = b.op("MatMul", ["x", w], "dense")
        >>> [n.op_type for n in b.nodes], y
        (['MatMul'], 'dense/MatMul')
    """

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()
        self._consts: dict[tuple, str] = {}

    def fresh(self, hint: str) -> str:
        """A tensor / node name not used yet, based on ``hint``."""
        name, k = hint, 1
        while name in self._names:
            name = f"{hint}_{k}"
            k += 1
        self._names.add(name)
        return name

    def const(self, value: Any, hint: str, dtype: Any = None) -> str:
        """An initializer holding ``value``; small identical constants are shared."""
        arr = np.asarray(value, dtype=dtype)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        key = None
        if arr.size <= 16:
            key = (arr.dtype.str, arr.shape, arr.tobytes())
            if key in self._consts:
                return self._consts[key]
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(arr.copy(order="C"), name))
        if key is not None:
            self._consts[key] = name
        return name

    def op(self, op_type: str, inputs: list[str], hint: str, outputs: int = 1, **attrs: Any) -> Any:
        """Add one node; returns its output name (or the list of names if ``outputs > 1``).

        An empty string in ``inputs`` is an omitted optional input.
        """
        node_name = self.fresh(f"{hint}/{op_type}")
        outs = [node_name] + [self.fresh(f"{node_name}:{i}") for i in range(1, outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=node_name, **attrs))
        return outs[0] if outputs == 1 else outs

    def producer(self, tensor: str) -> onnx.NodeProto | None:
        for node in reversed(self.nodes):
            if tensor in node.output:
                return node
        return None


class ExportContext:
    """What the converters share: the builder, the current tensor, its shape and its layout.

    ``shape`` is the per-sample shape in Keras's (channels-last) terms, whatever the layout of
    the ONNX tensor; ``layout`` is ``"NHWC"`` or ``"NCHW"`` for images and None otherwise.
    ``mask`` is a bool ``(batch, steps)`` tensor while a Keras mask (Embedding(mask_zero=True))
    is alive, else None.
    """

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self.b = GraphBuilder()
        self.tensor = ""
        self.shape: tuple = ()
        self.layout: str | None = None
        self.mask: str | None = None
        self.graph_inputs: set[str] = set()
        #: the records (tensor, shape, layout, mask) of every tensor the node reads (merges)
        self.inputs: list[tuple] = []
        #: whether the node is the only reader of its input (converters may rewrite its producer)
        self.exclusive = True

    # ----- the current tensor and its layout -----
    def set(self, tensor: str, shape: tuple, layout: str | None = None) -> None:
        """Make ``tensor`` (per-sample Keras shape ``shape``) the current tensor.

        Layouts: images ``"NHWC"`` (default) or ``"NCHW"``; sequences ``"BTF"`` (batch-major,
        default), ``"TBF"`` (time-major, what ONNX's recurrent ops take) or ``"BCT"``
        (channels-first, what ONNX's 1-D Conv takes); else None.
        """
        self.tensor = tensor
        self.shape = tuple(shape)
        rank = len(self.shape)
        if rank == 3:
            self.layout = layout if layout in ("NHWC", "NCHW") else "NHWC"
        elif rank == 2:
            self.layout = layout if layout in ("BTF", "TBF", "BCT") else "BTF"
        else:
            self.layout = None

    def _transpose(self, hint: str, perm: list[int], layout: str) -> str:
        self.tensor = self.b.op("Transpose", [self.tensor], hint, perm=perm)
        self.layout = layout
        return self.tensor

    def nchw(self, hint: str) -> str:
        """The current image tensor in NCHW (transposing it if it is NHWC)."""
        if len(self.shape) != 3:
            raise ExportError(
                f"{hint}: expected an image tensor, got per-sample shape {self.shape}"
            )
        if self.layout == "NHWC":
            self._transpose(f"{hint}/to_nchw", [0, 3, 1, 2], "NCHW")
        return self.tensor

    def keras_layout(self, hint: str) -> str:
        """The current tensor in Keras's own order (NHWC images, batch-major sequences)."""
        if self.layout == "NCHW":
            self._transpose(f"{hint}/to_nhwc", [0, 2, 3, 1], "NHWC")
        else:
            self.batch_major(hint)
        return self.tensor

    def batch_major(self, hint: str) -> str:
        """The current sequence as [batch, steps, features]."""
        if self.layout == "TBF":
            self._transpose(f"{hint}/to_batch_major", [1, 0, 2], "BTF")
        elif self.layout == "BCT":
            self._transpose(f"{hint}/to_steps_last", [0, 2, 1], "BTF")
        return self.tensor

    def channels_first(self, hint: str) -> str:
        """The current sequence as [batch, channels, steps] (ONNX's 1-D Conv / pooling)."""
        if len(self.shape) != 2:
            raise ExportError(f"{hint}: expected a sequence, got per-sample shape {self.shape}")
        if self.layout == "BTF":
            self._transpose(f"{hint}/to_channels_first", [0, 2, 1], "BCT")
        elif self.layout == "TBF":
            self._transpose(f"{hint}/to_channels_first", [1, 2, 0], "BCT")
        return self.tensor

    def time_major(self, hint: str) -> str:
        """The current sequence as [steps, batch, features].

        An Embedding's Gather over the graph's ids is rewritten to gather with transposed ids
        (int64 [steps, batch]) instead of transposing its float output.
        """
        if self.layout != "BTF":
            return self.tensor
        node = self.b.producer(self.tensor)
        if (
            self.exclusive
            and node is not None
            and node.op_type == "Gather"
            and node.input[1] in self.graph_inputs
            and len(self.shape) == 2
        ):
            ids_t = self.b.fresh(f"{hint}/ids_time_major")
            tnode = helper.make_node("Transpose", [node.input[1]], [ids_t], name=ids_t, perm=[1, 0])
            self.b.nodes.insert(self.b.nodes.index(node), tnode)
            node.input[1] = ids_t
            self.layout = "TBF"
            return self.tensor
        return self._transpose(f"{hint}/to_time_major", [1, 0, 2], "TBF")

    @property
    def channel_axis(self) -> int:
        return 1 if self.layout in ("NCHW", "BCT") else -1

    # ----- small helpers -----
    def const(self, value: Any, hint: str, dtype: Any = None) -> str:
        return self.b.const(value, hint, dtype)

    def op(self, op_type: str, inputs: list[str], hint: str, outputs: int = 1, **attrs: Any):
        return self.b.op(op_type, inputs, hint, outputs, **attrs)

    def activation(self, x: str, name: str, hint: str, layer: Any = None) -> str:
        """Apply a Keras activation by name; softmax runs over the channels (Keras's last axis)."""
        if name == "linear":
            return x
        if name == "relu":
            return self.op("Relu", [x], hint)
        if name == "sigmoid":
            return self.op("Sigmoid", [x], hint)
        if name == "tanh":
            return self.op("Tanh", [x], hint)
        if name == "softmax":
            return self.op("Softmax", [x], hint, axis=self.channel_axis)
        message = f"activation {name!r} has no ONNX converter"
        raise layer_error(layer, message) if layer is not None else ExportError(message)


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------


def _prune(b: GraphBuilder, outputs: list[str]) -> None:
    """Drop nodes whose outputs nothing reads (and initializers no node reads)."""
    needed = set(outputs)
    keep = []
    for node in reversed(b.nodes):
        if any(o and o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    b.nodes[:] = keep[::-1]
    b.initializers[:] = [i for i in b.initializers if i.name in needed]


def _check_opset(opset: Any) -> int:
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise ExportError(f"opset must be an int, got {opset!r}")
    if not MIN_OPSET <= int(opset) <= MAX_OPSET:
        raise ExportError(
            f"opset {opset} is not supported: edgemine exports opsets {MIN_OPSET}..{MAX_OPSET}"
        )
    return int(opset)


def _dims(shape: tuple) -> list:
    return ["batch", *[d if d is not None else f"d{i}" for i, d in enumerate(shape, 1)]]


def _json(value: Any) -> str:
    def plain(o: Any) -> Any:  # numpy scalars / arrays in a config
        return o.tolist() if hasattr(o, "tolist") else str(o)

    return json.dumps(value, default=plain)


def _metadata(model: Any, nchw_input: bool) -> dict[str, str]:
    layers = [
        {"class_name": type(layer).__name__, "config": layer.get_config()} for layer in model.layers
    ]
    meta = {"edgemine_version": __version__, "layers": _json(layers)}
    readers = [model._consumer(t) for t in model._graph.inputs]
    tables = [r for r in readers if r.input_dtype == "int"]
    if tables:  # token ids index the Embedding's table (the smallest one bounds them all)
        meta["vocab_size"] = str(min(int(r.input_dim) for r in tables))
    if model.class_names is not None:
        meta["class_names"] = _json(list(model.class_names))
    pre = model.preprocessing
    if nchw_input:
        pre = {**(pre or {}), "layout": "NCHW"}
    if pre is not None:
        meta["preprocessing"] = _json(pre)
    return meta


def _exportable_graph(model: Any, opset: int) -> Any:
    """The model's layer graph, after checking that it is built and every layer converts."""
    graph = getattr(model, "_graph", None)
    if not getattr(model, "built", False) or graph is None:
        if not hasattr(model, "_graph"):
            raise ExportError("export needs an edgemine model (Sequential or Model)")
        raise ExportError(
            "the model is not built: give the first layer input_shape=... or call build() first"
        )
    for layer in graph.layers:
        kind = type(layer).__name__
        if kind not in IDENTITY_LAYERS and converters.find(kind, opset) is None:
            known = ", ".join(converters.supported_layers())
            raise layer_error(layer, f"no ONNX converter for opset {opset} (supported: {known})")
    return graph


def _add_inputs(ctx: ExportContext, model: Any, graph: Any, nchw_input: bool) -> tuple[dict, list]:
    """The graph inputs: (tensor id -> record, value infos). One input is named ``input`` (or
    ``tokens`` for token ids); several keep their Input layers' names."""
    records, infos = {}, []
    single = len(graph.inputs) == 1
    for t in graph.inputs:
        shape = tuple(t.shape[1:])
        int_input = model._consumer(t).input_dtype == "int"
        if nchw_input and (not single or len(shape) != 3 or int_input):
            raise ExportError(
                "nchw_input=True needs one image input (h, w, c); this model takes "
                f"{model.input_shape}"
            )
        name = ("tokens" if int_input else "input") if single else t.node.layer.name
        name = ctx.b.fresh(name)
        ctx.graph_inputs.add(name)
        graph_shape = (shape[2], shape[0], shape[1]) if nchw_input else shape
        ctx.set(name, shape, "NCHW" if nchw_input else None)
        records[id(t)] = (ctx.tensor, ctx.shape, ctx.layout, None)
        dtype = TensorProto.INT64 if int_input else TensorProto.FLOAT
        infos.append(helper.make_tensor_value_info(name, dtype, _dims(graph_shape)))
    return records, infos


def _in_keras_order(ctx: ExportContext, record: tuple, hint: str) -> tuple:
    """A channels-first sequence's record in Keras's order (other records as they are)."""
    if record[2] != "BCT":
        return record
    ctx.tensor, ctx.shape, ctx.layout, ctx.mask = record
    ctx.batch_major(hint)
    return (ctx.tensor, ctx.shape, ctx.layout, record[3])


def _convert_nodes(ctx: ExportContext, graph: Any, records: dict) -> None:
    """Each node's converter, on the records of the tensors it reads."""
    params, folded = plan(graph)
    for node in graph.nodes:
        if not node.inputs:
            continue
        layer = node.layer
        kind = type(layer).__name__
        ctx.inputs = [records[id(t)] for t in node.inputs]
        if kind not in CHANNELS_FIRST_SEQUENCE_LAYERS | IDENTITY_LAYERS:
            ctx.inputs = [_in_keras_order(ctx, rec, layer.name) for rec in ctx.inputs]
        ctx.tensor, ctx.shape, ctx.layout, ctx.mask = ctx.inputs[0]
        ctx.exclusive = graph.single_reader(node.inputs[0]) is node
        if kind not in IDENTITY_LAYERS and id(node) not in folded:
            converters.find(kind, ctx.opset)(ctx, layer, params[id(node)])
        if kind != "Embedding" and not layer.multi_input:
            ctx.mask = next_mask(layer, ctx.mask, layer_error)
        want = tuple(node.output.shape[1:])
        if tuple(ctx.shape) != want:
            raise layer_error(  # a converter bug, never a user error
                layer, f"converter produced shape {ctx.shape}, expected {want}"
            )
        records[id(node.output)] = (ctx.tensor, ctx.shape, ctx.layout, ctx.mask)


def _name_output(ctx: ExportContext, record: tuple, name: str, taken: set) -> tuple[str, tuple]:
    """Give an output tensor (in Keras's layout) its graph output name."""
    ctx.tensor, ctx.shape, ctx.layout, ctx.mask = record
    ctx.keras_layout(name)
    node = ctx.b.producer(ctx.tensor)
    if node is None or ctx.tensor in ctx.graph_inputs or ctx.tensor in taken:
        ctx.tensor = ctx.b.op("Identity", [ctx.tensor], name)
        node = ctx.b.nodes[-1]
    old = ctx.tensor
    node.output[list(node.output).index(old)] = name
    for other in ctx.b.nodes:  # nodes that read it (other branches of the graph)
        other.input[:] = [name if i == old else i for i in other.input]
    taken.add(name)
    return name, tuple(ctx.shape)


def _output_names(graph: Any) -> list[str]:
    """'probabilities' after a softmax, else 'output'; several outputs: their layers' names."""
    if len(graph.outputs) > 1:
        return [t.node.layer.name for t in graph.outputs]
    last = graph.outputs[0].node.layer
    return ["probabilities" if getattr(last, "activation", None) == "softmax" else "output"]


def to_onnx(model: Any, opset: int = DEFAULT_OPSET, nchw_input: bool = False) -> onnx.ModelProto:
    """The ONNX ModelProto of a built model, Sequential or functional (see :func:`export`).

    Example:
        >>> from edgemine.models import Sequential
        >>> from edgemine.layers import Dense
        >>> proto = to_onnx(Sequential([Dense(2, input_shape=(3,))]), opset=13)
        >>> [n.op_type for n in proto.graph.node], proto.opset_import[0].version
        (['Gemm'], 13)
    """
    opset = _check_opset(opset)
    graph = _exportable_graph(model, opset)
    ctx = ExportContext(opset)
    records, in_infos = _add_inputs(ctx, model, graph, nchw_input)
    _convert_nodes(ctx, graph, records)
    taken: set[str] = set()
    outs = [
        _name_output(ctx, records[id(t)], ctx.b.fresh(name), taken)
        for t, name in zip(graph.outputs, _output_names(graph))
    ]
    _prune(ctx.b, [name for name, _ in outs])
    proto_graph = helper.make_graph(
        ctx.b.nodes,
        model.name or "edgemine",
        in_infos,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, _dims(s)) for n, s in outs],
        ctx.b.initializers,
    )
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(
        proto_graph,
        opset_imports=opsets,
        producer_name="edgemine",
        producer_version=__version__,
        doc_string=f"edgemine {__version__} export of {model.name!r}",
    )
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    helper.set_model_props(proto, _metadata(model, nchw_input))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as e:  # a converter bug: say so plainly
        raise ExportError(f"internal error: the exported graph is invalid: {e}") from e
    return proto


def export(
    model: Any,
    path: str | os.PathLike,
    opset: int = DEFAULT_OPSET,
    nchw_input: bool = False,
) -> Path:
    """Write ``model`` as an ONNX file at ``path`` (atomically) and return the path.

    Args:
        model: a built edgemine ``Sequential`` model.
        path: the ``.onnx`` file to write.
        opset: target ONNX opset, ``MIN_OPSET`` (13) .. ``MAX_OPSET``.
        nchw_input: take NCHW ``(batch, c, h, w)`` images instead of Keras's NHWC, so that no
            Transpose runs at the input.

    Raises:
        ExportError: a layer or option without a correct ONNX graph (named in the message), an
            unsupported opset, or an unbuilt model.

    Example:
        >>> from edgemine.models import Sequential
        >>> from edgemine.layers import Conv2D, Flatten, Dense
        >>> m = Sequential([Conv2D(2, 3, input_shape=(6, 6, 1)), Flatten(), Dense(2)])
        >>> export(m, "/tmp/doc_cnn.onnx", opset=17).name
        'doc_cnn.onnx'
    """
    from ..saving import atomic_write_bytes

    proto = to_onnx(model, opset=opset, nchw_input=nchw_input)
    path = Path(path)
    atomic_write_bytes(path, proto.SerializeToString())
    return path


__all__ = [
    "CHANNELS_FIRST_SEQUENCE_LAYERS",
    "DEFAULT_OPSET",
    "MAX_OPSET",
    "MIN_OPSET",
    "ExportContext",
    "ExportError",
    "GraphBuilder",
    "IDENTITY_LAYERS",
    "export",
    "to_onnx",
]
