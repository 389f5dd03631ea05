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
``CHANNELS_FIRST_SEQUENCE_LAYERS`` keep that layout, and any other layer gets the sequence back
in Keras's order first.

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

#: the newest opset onnxruntime 1.32 runs for every operator the converters write
_ORT_MAX_OPSET = 28
#: the newest opset the converters write (limited by the installed onnx package)
MAX_OPSET = min(onnx.defs.onnx_opset_version(), _ORT_MAX_OPSET)
DEFAULT_OPSET = 17

#: layers that compute nothing at inference
IDENTITY_LAYERS = frozenset({"Dropout", "InputLayer"})

#: layers whose converters take a sequence in ONNX's channels-first ``"BCT"`` layout (what a 1-D
#: Conv writes); before any other layer the exporter transposes it back to Keras's order
CHANNELS_FIRST_SEQUENCE_LAYERS = frozenset(
    {
        "Activation",
        "AveragePooling1D",
        "BatchNormalization",
        "Conv1D",
        "Conv1DTranspose",
        "GlobalAveragePooling1D",
        "GlobalMaxPooling1D",
        "MaxPooling1D",
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
        self.input_name = ""

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
            node is not None
            and node.op_type == "Gather"
            and node.input[1] == self.input_name
            and len(self.shape) == 2
        ):
            ids_t = self.b.fresh(f"{hint}/ids_time_major")
            tnode = helper.make_node(
                "Transpose", [self.input_name], [ids_t], name=ids_t, perm=[1, 0]
            )
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
# graph-level passes
# --------------------------------------------------------------------------------------------


def _params(layer: Any) -> dict[str, np.ndarray]:
    return {
        v.name: np.asarray(w, dtype=np.float32)
        for v, w in zip(layer.variables, layer.get_weights())
    }


def bn_scale_shift(layer: Any, params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """BatchNormalization at inference as ``x * scale + shift`` (float64).

    Example:
        >>> from edgemine.layers import BatchNormalization
        >>> bn = BatchNormalization(epsilon=0.0 + 1e-3); bn.build((2,))
        >>> [a.round(4).tolist() for a in bn_scale_shift(bn, _params(bn))]
        [[0.9995, 0.9995], [0.0, 0.0]]
    """
    mean = params["moving_mean"].astype(np.float64)
    var = params["moving_variance"].astype(np.float64)
    gamma = params["gamma"].astype(np.float64) if "gamma" in params else np.ones_like(mean)
    beta = params["beta"].astype(np.float64) if "beta" in params else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + layer.epsilon)
    return scale, beta - mean * scale


def plan(layers: list[Any]) -> list[tuple[Any, dict[str, np.ndarray]]]:
    """(layer, params) pairs to convert, BatchNormalization folded into a preceding Conv2D /
    Dense whose activation is linear (identity layers such as Dropout in between are skipped;
    they stay in the plan because they end a Keras mask, and convert to nothing).

    Example:
        >>> from edgemine.layers import BatchNormalization, Dense, Dropout
        >>> from edgemine.models import Sequential
        >>> m = Sequential([Dense(3, input_shape=(2,)), Dropout(0.5), BatchNormalization()])
        >>> [type(layer).__name__ for layer, _ in plan(m.layers)]
        ['Dense', 'Dropout']
    """
    out: list[tuple[Any, dict[str, np.ndarray]]] = []
    for layer in layers:
        kind = type(layer).__name__
        if kind in IDENTITY_LAYERS:
            out.append((layer, {}))
            continue
        params = _params(layer)
        computing = [
            i for i, (lay, _) in enumerate(out) if type(lay).__name__ not in IDENTITY_LAYERS
        ]
        if kind == "BatchNormalization" and computing:
            at = computing[-1]
            prev, prev_params = out[at]
            if (
                type(prev).__name__ in ("Conv1D", "Conv2D", "Dense")
                and getattr(prev, "activation", None) == "linear"
                and not prev_params.get("_no_fold")
            ):
                scale, shift = bn_scale_shift(layer, params)
                kernel = prev_params["kernel"].astype(np.float64) * scale  # last axis = outputs
                bias = prev_params.get("bias")
                bias = np.zeros_like(scale) if bias is None else bias.astype(np.float64)
                prev_params = dict(prev_params)
                prev_params["kernel"] = kernel.astype(np.float32)
                prev_params["bias"] = (bias * scale + shift).astype(np.float32)
                out[at] = (prev, prev_params)
                continue
        out.append((layer, params))
    return out


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------


_MASK = object()


def _next_mask(layer: Any, mask: str | None) -> str | None:
    """The mask after ``layer``, as the engine computes it: a layer passes the mask on only if
    its ``compute_mask`` returns the mask it gets (recurrent layers with return_sequences);
    layers without ``compute_mask`` end it."""
    if mask is None:
        return None
    compute_mask = getattr(layer, "compute_mask", None)
    if compute_mask is None:
        return None
    try:
        out = compute_mask(None, _MASK)
    except Exception as e:
        raise layer_error(layer, f"cannot tell how it propagates a mask ({e})") from None
    if out is _MASK:
        return mask
    if out is None:
        return None
    raise layer_error(layer, "changes the mask in a way the exporter does not know")


def _prune(b: GraphBuilder, output: str) -> None:
    """Drop nodes whose outputs nothing reads (and initializers no node reads)."""
    needed = {output}
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
    first = model.layers[0] if model.layers else None
    if getattr(first, "input_dtype", "float") == "int":  # token ids index the first layer's table
        meta["vocab_size"] = str(int(first.input_dim))
    if model.class_names is not None:
        meta["class_names"] = _json(list(model.class_names))
    pre = model.preprocessing
    if nchw_input:
        pre = {**(pre or {}), "layout": "NCHW"}
    if pre is not None:
        meta["preprocessing"] = _json(pre)
    return meta


def _exportable_layers(model: Any, opset: int) -> list:
    """The model's layers, after checking that it is built and every layer has a converter."""
    layers = getattr(model, "layers", None)
    if not isinstance(layers, list) or not layers:
        raise ExportError("export needs an edgemine Sequential model with layers")
    if not getattr(model, "built", False) or model.input_shape is None:
        raise ExportError(
            "the model is not built: give the first layer input_shape=... or call build() first"
        )
    for layer in layers:
        kind = type(layer).__name__
        if kind not in IDENTITY_LAYERS and converters.find(kind, opset) is None:
            known = ", ".join(converters.supported_layers())
            raise layer_error(layer, f"no ONNX converter for opset {opset} (supported: {known})")
    return layers


def _name_output(ctx: ExportContext, last: Any) -> str:
    """Give the graph's output tensor (in Keras's layout) its name: 'probabilities' after a
    softmax, else 'output'."""
    ctx.keras_layout("output")
    out_name = "probabilities" if getattr(last, "activation", None) == "softmax" else "output"
    node = ctx.b.producer(ctx.tensor)
    if node is None or ctx.tensor == ctx.input_name:
        ctx.tensor = ctx.b.op("Identity", [ctx.tensor], "output")
        node = ctx.b.nodes[-1]
    node.output[list(node.output).index(ctx.tensor)] = out_name
    for other in ctx.b.nodes:  # nodes after it (none in a sequential chain) would be renamed too
        other.input[:] = [out_name if i == ctx.tensor else i for i in other.input]

    return out_name


def to_onnx(model: Any, opset: int = DEFAULT_OPSET, nchw_input: bool = False) -> onnx.ModelProto:
    """The ONNX ModelProto of a built Sequential model (see :func:`export`).

    Example:
        >>> from edgemine.models import Sequential
        >>> from edgemine.layers import Dense
        >>> proto = to_onnx(Sequential([Dense(2, input_shape=(3,))]), opset=13)
        >>> [n.op_type for n in proto.graph.node], proto.opset_import[0].version
        (['Gemm'], 13)
    """
    opset = _check_opset(opset)
    layers = _exportable_layers(model, opset)
    in_shape = tuple(model.input_shape)
    int_input = getattr(layers[0], "input_dtype", "float") == "int"
    ctx = ExportContext(opset)
    if nchw_input and (len(in_shape) != 3 or int_input):
        raise ExportError(
            f"nchw_input=True needs an image input (h, w, c); this model takes {in_shape}"
        )
    ctx.input_name = "tokens" if int_input else "input"
    ctx.b.fresh(ctx.input_name)
    if nchw_input:
        h, w, c = in_shape
        graph_in_shape = (c, h, w)
        ctx.set(ctx.input_name, in_shape, "NCHW")
    else:
        graph_in_shape = in_shape
        ctx.set(ctx.input_name, in_shape)

    for layer, params in plan(layers):
        kind = type(layer).__name__
        if ctx.layout == "BCT" and kind not in CHANNELS_FIRST_SEQUENCE_LAYERS | IDENTITY_LAYERS:
            ctx.keras_layout(layer.name)
        if kind not in IDENTITY_LAYERS:
            converters.find(kind, opset)(ctx, layer, params)
        if kind != "Embedding":
            ctx.mask = _next_mask(layer, ctx.mask)
        if ctx.tensor != ctx.input_name and tuple(ctx.shape) != tuple(layer.output_shape):
            raise layer_error(  # a converter bug, never a user error
                layer, f"converter produced shape {ctx.shape}, expected {layer.output_shape}"
            )

    out_name = _name_output(ctx, layers[-1])
    _prune(ctx.b, out_name)
    in_type = TensorProto.INT64 if int_input else TensorProto.FLOAT
    graph = helper.make_graph(
        ctx.b.nodes,
        model.name or "edgemine",
        [helper.make_tensor_value_info(ctx.input_name, in_type, _dims(graph_in_shape))],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, _dims(tuple(ctx.shape)))],
        ctx.b.initializers,
    )
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(
        graph,
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
    "DEFAULT_OPSET",
    "MAX_OPSET",
    "MIN_OPSET",
    "ExportContext",
    "ExportError",
    "GraphBuilder",
    "export",
    "plan",
    "to_onnx",
]
