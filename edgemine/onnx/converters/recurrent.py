"""Embedding -> Gather; LSTM / GRU / SimpleRNN / Bidirectional -> ONE ONNX LSTM / GRU / RNN node.

Weights (Keras layouts in, ONNX layouts out):

* LSTM: Keras gates i, f, c, o -> ONNX i, o, f, c; ``W = kernel^T`` (4u, in), ``R =
  recurrent_kernel^T`` (4u, u), ``B = [bias, zeros]``.
* GRU: gates z, r, h in both. ``reset_after=True`` (bias (2, 3u): input bias, recurrent bias) is
  ``linear_before_reset=1`` with ``B = [bias[0], bias[1]]``; ``reset_after=False`` is
  ``linear_before_reset=0`` with ``B = [bias, zeros]``.
* SimpleRNN: ``W = kernel^T``, ``R = recurrent_kernel^T``, ``B = [bias, zeros]``.
* Non-default activations go into the ``activations`` attribute (``linear`` is ``Affine(1, 0)``).

Sequences stay time-major ([steps, batch, features], what ONNX's recurrent ops take) from one
recurrent layer to the next; they are transposed back to Keras's batch-major order only where a
layer needs it (Flatten, Reshape, the graph output). An Embedding that feeds a recurrent layer
gathers with transposed ids, so no float tensor is transposed at the input at all.

``return_sequences`` selects ``Y`` (num_directions axis squeezed, or merged for Bidirectional),
else ``Y_h``. ``go_backwards`` is ``direction="reverse"``; with ``return_sequences`` Keras returns
the sequence in processing (reversed) order, so ``Y`` is flipped in time. Bidirectional is
``direction="bidirectional"``, merged by ``merge_mode`` (concat: forward then backward).

Masks (``Embedding(mask_zero=True)``): Keras skips each masked step (state kept; output: the
previous one, or zero with ``zero_output_for_mask``), wherever it is. ONNX's ``sequence_lens``
only skips a suffix of steps, while Keras pads at the front, so it is not used. Instead, each
sample's real steps are moved, in order, to the front (a permutation computed in the graph from
the mask: CumSum + ScatterElements + GatherElements), the node runs over the compacted sequence, and
the outputs are gathered back to the original time steps:

* the forward direction starts with the real steps, so its state at compacted step ``j`` is
  Keras's state after the ``j+1``-th real step; whatever it does on the trailing padding is never
  read;
* the reverse direction starts at the trailing padding. There the inputs are zeroed and an extra
  input column (1 on padding) holds the state at exactly zero: it cancels the cell-candidate bias
  (LSTM) or the whole bias (SimpleRNN) so that the candidate is ``act(0) = 0``, or saturates the
  GRU's update gate (``z = 1`` keeps the state). This needs ``activation(0) == 0`` (LSTM,
  SimpleRNN) or a saturating ``recurrent_activation`` (GRU); other combinations are refused with
  an ExportError rather than exported wrong.

Example:
    >>> from edgemine.models import Sequential
    >>> from edgemine.layers import LSTM, Embedding
    >>> from edgemine.onnx import to_onnx
    >>> m = Sequential([Embedding(50, 8, input_length=10), LSTM(4, return_sequences=True), LSTM(4)])
    >>> [n.op_type for n in to_onnx(m).graph.node]
    ['Transpose', 'Gather', 'LSTM', 'Squeeze', 'LSTM', 'Squeeze']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import converter

_DEFAULT_ACTS = {
    "LSTM": ["sigmoid", "tanh", "tanh"],
    "GRU": ["sigmoid", "tanh"],
    "SimpleRNN": ["tanh"],
}
_ONNX_ACT = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "linear": "Affine"}
_OP = {"LSTM": "LSTM", "GRU": "GRU", "SimpleRNN": "RNN"}
_GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}
_SATURATE = 1.0e4  # sigmoid / tanh of this is exactly 1.0 in float32 (and finite in float16)


def _err(layer: Any, message: str):
    from ..exporter import layer_error

    return layer_error(layer, message)


# --------------------------------------------------------------------------------- Embedding


@converter("Embedding")
def convert_embedding(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """Embedding: Gather(embeddings, ids); with mask_zero the mask ``ids != 0`` goes along."""
    if ctx.tensor not in ctx.graph_inputs:
        raise _err(layer, "an Embedding must read a model input (it takes the token ids)")
    table = ctx.const(params["embeddings"], f"{layer.name}/embeddings")
    ids = ctx.tensor
    y = ctx.op("Gather", [table, ids], layer.name, axis=0)
    ctx.set(y, layer.output_shape)
    if layer.mask_zero:
        zero = ctx.const(np.array(0, np.int64), "zero_i64")
        ctx.mask = ctx.op(
            "Not", [ctx.op("Equal", [ids, zero], f"{layer.name}/mask")], f"{layer.name}/mask"
        )
    else:
        ctx.mask = None


# ------------------------------------------------------------------------- cell parameters


def _check_cell(layer: Any, kind: str) -> list[str]:
    """The cell's activation list in ONNX's order (f, g[, h]) as Keras names; refuses options
    that have no ONNX equivalent."""
    for attr, what in (("stateful", "stateful=True"), ("return_state", "return_state=True")):
        if getattr(layer, attr, False):
            raise _err(layer, f"{what} has no ONNX export")
    act = getattr(layer, "activation", "tanh")
    if kind == "SimpleRNN":
        acts = [act]
    else:
        ract = getattr(layer, "recurrent_activation", "sigmoid")
        acts = [ract, act, act] if kind == "LSTM" else [ract, act]
    for a in acts:
        if a not in _ONNX_ACT:
            raise _err(layer, f"activation {a!r} has no ONNX recurrent equivalent")
    return acts


def _onnx_acts(acts_per_dir: list[list[str]], kind: str) -> dict[str, Any]:
    """The activations / activation_alpha / activation_beta attributes (empty when default)."""
    if all(acts == _DEFAULT_ACTS[kind] for acts in acts_per_dir):
        return {}
    flat = [a for acts in acts_per_dir for a in acts]
    attrs: dict[str, Any] = {"activations": [_ONNX_ACT[a] for a in flat]}
    if "linear" in flat:  # Affine(alpha=1, beta=0); the lists line up with activations
        attrs["activation_alpha"] = [1.0] * len(flat)
        attrs["activation_beta"] = [0.0] * len(flat)
    return attrs


def _cell_arrays(layer: Any, kind: str, params: dict[str, np.ndarray], pad_column: bool):
    """(W, R, B, linear_before_reset) of one direction, in ONNX layouts (no direction axis).

    With ``pad_column`` W gets one more input column that holds a zero state at padding.
    """
    u = layer.units
    k, r = params["kernel"], params["recurrent_kernel"]
    b = params.get("bias")
    lbr = None
    if kind == "LSTM":
        order = [0, 3, 1, 2]  # Keras i, f, c, o -> ONNX i, o, f, c

        def gates(a):
            return np.concatenate([a[..., g * u : (g + 1) * u] for g in order], axis=-1)

        k, r = gates(k), gates(r)
        wb = gates(b) if b is not None else np.zeros(4 * u, np.float32)
        rb = np.zeros(4 * u, np.float32)
    elif kind == "GRU":
        reset_after = bool(getattr(layer, "reset_after", True))
        lbr = 1 if reset_after else 0
        if b is None:
            wb = rb = np.zeros(3 * u, np.float32)
        elif b.ndim == 2:
            wb, rb = b[0], b[1]
        else:
            wb, rb = b, np.zeros(3 * u, np.float32)
    else:
        wb = b if b is not None else np.zeros(u, np.float32)
        rb = np.zeros(u, np.float32)
    w = np.ascontiguousarray(k.T, dtype=np.float32)
    if pad_column:
        col = np.zeros(w.shape[0], np.float32)
        if kind == "LSTM":  # ONNX gate block 3 is the cell candidate c
            col[3 * u : 4 * u] = -(wb[3 * u : 4 * u] + rb[3 * u : 4 * u])
        elif kind == "GRU":  # block 0 is the update gate z
            col[:u] = _SATURATE
        else:
            col[:] = -(wb + rb)
        w = np.concatenate([w, col[:, None]], axis=1)
    return w, np.ascontiguousarray(r.T, dtype=np.float32), np.concatenate([wb, rb]), lbr


def _zero_state_ok(kind: str, acts: list[str]) -> bool:
    """Whether the padding column can hold the reverse direction's state at exactly zero."""
    if kind == "GRU":
        return acts[0] in ("sigmoid", "tanh")  # z = f(1e4) == 1
    return acts[-1] in ("tanh", "relu", "linear") and acts[0 if kind == "SimpleRNN" else 1] in (
        "tanh",
        "relu",
        "linear",
    )


# ------------------------------------------------------------------------------ the layers


def _directions(layer: Any) -> tuple[str, list[tuple[Any, str]], str | None, bool]:
    """(cell kind, [(cell layer, ONNX direction)], merge mode, swapped) of a layer.

    ``swapped``: a Bidirectional whose wrapped layer itself runs backwards (Keras then returns
    merge(backwards output, forwards output), sequences in reversed time order).
    """
    name = type(layer).__name__
    if name != "Bidirectional":
        return name, [(layer, "reverse" if layer.go_backwards else "forward")], None, False
    fwd = getattr(layer, "forward_layer", None)
    bwd = getattr(layer, "backward_layer", None)
    if fwd is None or bwd is None:
        raise _err(layer, "cannot find the forward and backward layers")
    kind = type(fwd).__name__
    if kind not in _OP or type(bwd).__name__ != kind:
        raise _err(layer, f"Bidirectional over {kind} has no ONNX converter")
    if fwd.units != bwd.units:
        raise _err(layer, "forward and backward layers of different sizes")
    if bool(fwd.go_backwards) == bool(bwd.go_backwards):
        raise _err(layer, "the backward layer must run the other way")
    mode = getattr(layer, "merge_mode", "concat")
    if mode not in ("concat", "sum", "mul", "ave"):
        raise _err(layer, f"merge_mode={mode!r} has no ONNX export (use concat, sum, mul or ave)")
    swapped = bool(fwd.go_backwards)
    if swapped:
        fwd, bwd = bwd, fwd
    return kind, [(fwd, "forward"), (bwd, "reverse")], mode, swapped


def _sub_params(layer: Any, cell: Any, params: dict[str, np.ndarray]):
    """The weights of one direction's cell (a Bidirectional holds both)."""
    if cell is layer:
        return params
    return {
        v.name.split("/")[-1]: np.asarray(w, np.float32)
        for v, w in zip(cell.variables, cell.get_weights())
    }


def _return_sequences(layer: Any) -> bool:
    return bool(getattr(layer, "return_sequences", False))


@converter("LSTM", "GRU", "SimpleRNN", "Bidirectional")
def convert_recurrent(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """One ONNX LSTM / GRU / RNN node per Keras recurrent layer (Bidirectional included)."""
    kind, dirs, merge, swapped = _directions(layer)
    if len(ctx.shape) != 2:
        raise _err(layer, f"expects (steps, features) inputs, got per-sample shape {ctx.shape}")
    acts = [_check_cell(cell, kind) for cell, _ in dirs]
    seq = _return_sequences(layer)
    units = dirs[0][0].units
    direction = "bidirectional" if len(dirs) == 2 else dirs[0][1]
    masked = ctx.mask is not None
    reverse_masked = masked and any(d == "reverse" for _, d in dirs)
    if reverse_masked and not all(_zero_state_ok(kind, a) for a in acts):
        raise _err(
            layer,
            "mask_zero=True with go_backwards or Bidirectional needs activation "
            "tanh, relu or linear (and a sigmoid/tanh recurrent_activation for GRU) "
            "to be exported exactly; this combination is not supported",
        )
    ws, rs, bs, lbrs = [], [], [], set()
    for (cell, _), _acts in zip(dirs, acts):
        w, r, b, lbr = _cell_arrays(cell, kind, _sub_params(layer, cell, params), reverse_masked)
        ws.append(w)
        rs.append(r)
        bs.append(b)
        lbrs.add(lbr)
    if len(lbrs) != 1:
        raise _err(layer, "forward and backward GRUs differ in reset_after")
    name = layer.name
    attrs: dict[str, Any] = {"hidden_size": units, "direction": direction}
    attrs.update(_onnx_acts(acts, kind))
    lbr = lbrs.pop()
    if lbr is not None:
        attrs["linear_before_reset"] = lbr
    inputs_wrb = [
        ctx.const(np.stack(ws), f"{name}/W"),
        ctx.const(np.stack(rs), f"{name}/R"),
        ctx.const(np.stack(bs), f"{name}/B"),
    ]
    if masked:
        _masked(ctx, layer, kind, dirs, merge, swapped, seq, attrs, inputs_wrb, reverse_masked)
    else:
        _unmasked(ctx, layer, kind, len(dirs), merge, swapped, seq, attrs, inputs_wrb)


def _merge(ctx: Any, name: str, merge: str | None, fwd: str, bwd: str) -> str:
    if merge == "concat":
        return ctx.op("Concat", [fwd, bwd], name, axis=-1)
    if merge == "sum":
        return ctx.op("Add", [fwd, bwd], name)
    if merge == "mul":
        return ctx.op("Mul", [fwd, bwd], name)
    half = ctx.const(np.array(0.5, np.float32), "half")
    return ctx.op("Mul", [ctx.op("Add", [fwd, bwd], name), half], name)


def _unmasked(ctx, layer, kind, ndirs, merge, swapped, seq, attrs, wrb) -> None:
    name = layer.name
    x = ctx.time_major(name)
    y, y_h = ctx.op(_OP[kind], [x, *wrb], name, outputs=3 if kind == "LSTM" else 2, **attrs)[:2]
    node = ctx.b.nodes[-1]
    if swapped:  # Keras merges (backwards, forwards) here: swap the direction axis
        order = ctx.const(np.array([1, 0], np.int64), "order_1_0")
        y_seq = ctx.op("Gather", [y, order], name, axis=1) if seq else y
        y_last = ctx.op("Gather", [y_h, order], name, axis=0) if not seq else y_h
        y, y_h = y_seq, y_last
    if seq:
        if ndirs == 1:  # Y: [T, 1, B, H] -> [T, B, H]
            out = ctx.op("Squeeze", [y, ctx.const(np.array([1], np.int64), "axes_1")], name)
            if layer.go_backwards:  # Keras returns the processing (reversed) order
                out = _flip_time(ctx, out, name, axis=0)
        elif merge == "concat":  # [T, 2, B, H] -> [T, B, 2, H] -> [T, B, 2H]
            out = ctx.op("Transpose", [y], name, perm=[0, 2, 1, 3])
            shape = ctx.const(np.array([0, 0, -1], np.int64), "shape_0_0_m1")
            out = ctx.op("Reshape", [out, shape], name)
        else:
            fwd, bwd = _split_dirs(ctx, y, name, axis=1)
            out = _merge(ctx, name, merge, fwd, bwd)
        if swapped:
            out = _flip_time(ctx, out, name, axis=0)
        ctx.set(out, layer.output_shape, "TBF")
    else:
        if ndirs == 1:  # Y_h: [1, B, H] -> [B, H]
            out = ctx.op("Squeeze", [y_h, ctx.const(np.array([0], np.int64), "axes_0")], name)
        elif merge == "concat":  # [2, B, H] -> [B, 2, H] -> [B, 2H]
            out = ctx.op("Transpose", [y_h], name, perm=[1, 0, 2])
            out = ctx.op("Flatten", [out], name, axis=1)
        else:
            fwd, bwd = _split_dirs(ctx, y_h, name, axis=0)
            out = _merge(ctx, name, merge, fwd, bwd)
        ctx.set(out, layer.output_shape)
    # unused outputs (Y_c, and Y or Y_h) are left out of the node
    used = {i for n in ctx.b.nodes for i in n.input}
    node.output[:] = [o if o in used else "" for o in node.output]
    while node.output and node.output[-1] == "":
        node.output.pop()


def _split_dirs(ctx, t: str, name: str, axis: int) -> tuple[str, str]:
    """Split the num_directions axis of Y / Y_h into (forward, backward), axis removed."""
    parts = ctx.op(
        "Split", [t, ctx.const(np.array([1, 1], np.int64), "split_1_1")], name, outputs=2, axis=axis
    )
    ax = ctx.const(np.array([axis], np.int64), f"axes_{axis}")
    return (ctx.op("Squeeze", [parts[0], ax], name), ctx.op("Squeeze", [parts[1], ax], name))


def _flip_time(ctx, t: str, name: str, axis: int) -> str:
    """t reversed along ``axis`` (Slice with step -1)."""
    big = np.iinfo(np.int64).max
    return ctx.op(
        "Slice",
        [
            t,
            ctx.const(np.array([-1], np.int64), "minus_1"),
            ctx.const(np.array([-big], np.int64), "int64_lowest"),
            ctx.const(np.array([axis], np.int64), f"axes_{axis}"),
            ctx.const(np.array([-1], np.int64), "minus_1"),
        ],
        name,
    )


# ---------------------------------------------------------------------------------- masks


def _gather_steps(ctx, data: str, idx: str, width: int, name: str) -> str:
    """out[b, j, :] = data[b, idx[b, j], :] for data [B, T, width] and idx [B, J] (int64).

    GatherElements with the indices broadcast over the feature axis: GatherND with
    ``batch_dims=1`` says the same in fewer bytes, but onnxruntime's symbolic shape inference
    (which its quantization tools run first) gets its shape wrong.
    """
    idx3 = ctx.op("Unsqueeze", [idx, ctx.const(np.array([2], np.int64), "axes_2")], name)
    shape = ctx.const(np.array([1, 1, width], np.int64), f"shape_1_1_{width}")
    return ctx.op("GatherElements", [data, ctx.op("Expand", [idx3, shape], name)], name, axis=1)


def _compaction(ctx, name: str, mask):
    """The masked layer's step bookkeeping, as int64 tensors: (mask, 1, real steps <= t,
    t, real steps per row, src) where src[b, j] is the step that goes to position j (the real
    steps in order first, then the padding in order)."""
    i64 = 7  # TensorProto.INT64
    c = ctx.const
    m_i = ctx.op("Cast", [mask], f"{name}/mask", to=i64)
    one = c(np.array(1, np.int64), "one_i64")
    axis1 = c(np.array(1, np.int64), "axis_1_scalar")
    cnt = ctx.op("CumSum", [m_i, axis1], f"{name}/mask")  # real steps <= t, [B, T]
    steps = ctx.op(
        "CumSum",
        [
            ctx.op(
                "Add", [ctx.op("Mul", [m_i, c(np.array(0, np.int64), "zero_i64")], name), one], name
            ),
            axis1,
        ],
        f"{name}/mask",
    )
    t_idx = ctx.op("Sub", [steps, one], f"{name}/mask")  # t, [B, T]
    n = ctx.op(
        "ReduceSum", [m_i, c(np.array([1], np.int64), "axes_1")], f"{name}/mask", keepdims=1
    )  # [B, 1]
    # destination of step t: real steps in order first, then the padding in order
    dest = ctx.op(
        "Where",
        [
            mask,
            ctx.op("Sub", [cnt, one], name),
            ctx.op("Sub", [ctx.op("Add", [n, t_idx], name), cnt], name),
        ],
        name,
    )
    src = ctx.op(
        "ScatterElements",
        [ctx.op("Mul", [m_i, c(np.array(0, np.int64), "zero_i64")], name), dest, t_idx],
        f"{name}/compact",
        axis=1,
    )  # src[b, j] = the step that goes to j
    return m_i, one, cnt, t_idx, n, src


def _direction_output(ctx, name: str, y, k: int, ndirs: int, cell, direction: str, seq, steps):
    """Direction k's output of the compacted node's Y [B, T, D, H], gathered back to the input's
    time steps (a sequence) or taken after the last real step."""
    mask, m_f, one, cnt, n = steps
    c = ctx.const
    unsq2 = c(np.array([2], np.int64), "axes_2")
    f32 = 1  # TensorProto.FLOAT
    if ndirs == 2:
        yd = ctx.op("Gather", [y, c(np.array(k, np.int64), f"index_{k}")], name, axis=2)
    else:
        yd = ctx.op("Squeeze", [y, unsq2], name)  # [B, T, H]
    zero_i = c(np.array(0, np.int64), "zero_i64")
    if direction == "forward":
        if seq:  # step t: compacted step cnt(t) - 1; zero before the first real step
            idx = ctx.op("Max", [ctx.op("Sub", [cnt, one], name), zero_i], name)
            valid = ctx.op("Cast", [ctx.op("Greater", [cnt, zero_i], name)], name, to=f32)
        else:  # the state after the last real step
            idx = ctx.op("Max", [ctx.op("Sub", [n, one], name), zero_i], name)  # [B, 1]
            valid = ctx.op("Cast", [ctx.op("Greater", [n, zero_i], name)], name, to=f32)
    else:
        if seq:  # real t: cnt(t) - 1; masked t: cnt(t) (the next real step, or padding)
            idx = ctx.op("Where", [mask, ctx.op("Sub", [cnt, one], name), cnt], name)
        else:
            idx = ctx.op("Mul", [n, zero_i], name)  # compacted step 0: [B, 1] of zeros
        valid = None
    out = _gather_steps(ctx, yd, idx, cell.units, name)  # [B, T, H] or [B, 1, H]
    if valid is not None:
        out = ctx.op("Mul", [out, ctx.op("Unsqueeze", [valid, unsq2], name)], name)
    if seq and getattr(cell, "zero_output_for_mask", False):
        out = ctx.op("Mul", [out, ctx.op("Unsqueeze", [m_f, unsq2], name)], name)
    if not seq:
        out = ctx.op("Squeeze", [out, c(np.array([1], np.int64), "axes_1")], name)
    elif direction == "reverse" and ndirs == 1:
        out = _flip_time(ctx, out, name, axis=1)
    return out


def _masked(ctx, layer, kind, dirs, merge, swapped, seq, attrs, wrb, pad_column) -> None:
    """Compact the real steps to the front, run the node, gather the outputs back."""
    name = layer.name
    f32 = 1  # TensorProto.FLOAT
    c = ctx.const
    x = ctx.batch_major(name)  # [B, T, F]
    mask = ctx.mask  # bool [B, T]
    _, one, cnt, t_idx, n, src = _compaction(ctx, name, mask)
    unsq2 = c(np.array([2], np.int64), "axes_2")
    emb = ctx.b.producer(x)
    if emb is not None and emb.op_type == "Gather" and emb.input[1] in ctx.graph_inputs:
        # straight after the Embedding: compact the ids and gather again (the first Gather dies)
        ids = ctx.op("GatherElements", [emb.input[1], src], f"{name}/compact", axis=1)
        xc = ctx.op("Gather", [emb.input[0], ids], f"{name}/compact", axis=0)
    else:
        xc = _gather_steps(ctx, x, src, ctx.shape[-1], f"{name}/compact")  # [B, T, F]
    if pad_column:
        real = ctx.op("Cast", [ctx.op("Less", [t_idx, n], name)], name, to=f32)  # [B, T]
        real3 = ctx.op("Unsqueeze", [real, unsq2], name)
        xc = ctx.op("Mul", [xc, real3], name)
        pad3 = ctx.op("Sub", [c(np.array(1, np.float32), "one_f32"), real3], name)
        xc = ctx.op("Concat", [xc, pad3], name, axis=2)
    xt = ctx.op("Transpose", [xc], name, perm=[1, 0, 2])  # [T, B, F]
    y = ctx.op(_OP[kind], [xt, *wrb], name, **attrs)  # Y only: [T, D, B, H]
    y = ctx.op("Transpose", [y], name, perm=[2, 0, 1, 3])  # [B, T, D, H]
    m_f = ctx.op("Cast", [mask], name, to=f32)
    outs = []
    for k, (cell, direction) in enumerate(dirs):
        steps = (mask, m_f, one, cnt, n)
        outs.append(_direction_output(ctx, name, y, k, len(dirs), cell, direction, seq, steps))
    if swapped:
        outs = outs[::-1]
    out = outs[0] if len(outs) == 1 else _merge(ctx, name, merge, outs[0], outs[1])
    if swapped and seq:
        out = _flip_time(ctx, out, name, axis=1)
    ctx.set(out, layer.output_shape, "BTF" if seq else None)
