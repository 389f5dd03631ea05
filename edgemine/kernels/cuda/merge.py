"""Merging two tensors on the GPU: Bidirectional's directions and the merge layers (Add,
Concatenate, ...). Element-wise modes take equal shapes; ``concat`` joins the last axes, which
may differ in width."""

from __future__ import annotations

from numba import cuda, float32

from ._device import DeviceArray, empty, grid1d, last, view

MODES = {"concat": 0, "sum": 1, "ave": 2, "mul": 3, "sub": 4, "max": 5, "min": 6}


@cuda.jit(cache=True)
def _merge(mode, a, b, out):
    rows, na = a.shape
    width = out.shape[1]
    for idx in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        r = idx // width
        j = idx - r * width
        if mode == 0:
            out[r, j] = a[r, j] if j < na else b[r, j - na]
        elif mode == 1:
            out[r, j] = a[r, j] + b[r, j]
        elif mode == 2:
            out[r, j] = (a[r, j] + b[r, j]) * float32(0.5)
        elif mode == 3:
            out[r, j] = a[r, j] * b[r, j]
        elif mode == 4:
            out[r, j] = a[r, j] - b[r, j]
        elif mode == 5:
            out[r, j] = max(a[r, j], b[r, j])
        else:
            out[r, j] = min(a[r, j], b[r, j])


@cuda.jit(cache=True)
def _merge_bwd(mode, a, b, dy, da, db):
    rows, na = a.shape
    width = dy.shape[1]
    for idx in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
        r = idx // width
        j = idx - r * width
        g = dy[r, j]
        if mode == 0:
            if j < na:
                da[r, j] = g
            else:
                db[r, j - na] = g
        elif mode == 2:
            da[r, j] = g * float32(0.5)
        elif mode == 3:
            da[r, j] = g * b[r, j]
            db[r, j] = g * a[r, j]
        elif mode == 4:
            da[r, j] = g
            db[r, j] = -g
        elif mode == 5:
            first = a[r, j] >= b[r, j]
            da[r, j] = g if first else float32(0.0)
            db[r, j] = float32(0.0) if first else g
        elif mode == 6:
            first = a[r, j] <= b[r, j]
            da[r, j] = g if first else float32(0.0)
            db[r, j] = float32(0.0) if first else g


def _check(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown merge mode {mode!r}")


def merge_forward(mode: str, a: DeviceArray, b: DeviceArray) -> DeviceArray:
    """``mode`` of a and b over the last axis: concat, sum, ave, mul, sub, max or min."""
    _check(mode)
    na, nb = last(a), last(b)
    shape = tuple(int(d) for d in a.shape)
    out_shape = (*shape[:-1], na + nb) if mode == "concat" else shape
    out = empty(out_shape, a.dtype)
    if out.size:
        rows = a.size // na
        _merge[grid1d(out.size)](
            MODES[mode], view(a, rows, na), view(b, rows, nb), view(out, rows, out.size // rows)
        )
    return out


def merge_backward(
    mode: str, a: DeviceArray, b: DeviceArray, dy: DeviceArray
) -> tuple[DeviceArray, DeviceArray]:
    """Gradients (da, db) of ``merge_forward(mode, a, b)`` for dL/dy."""
    _check(mode)
    if mode == "sum":
        return dy, dy
    na, nb = last(a), last(b)
    rows = a.size // na if na else 0
    da = empty(a.shape, a.dtype)
    db = da if mode == "ave" else empty(b.shape, b.dtype)
    if dy.size:
        _merge_bwd[grid1d(dy.size)](
            MODES[mode], view(a, rows, na), view(b, rows, nb),
            view(dy, rows, dy.size // rows), view(da, rows, na), view(db, rows, nb),
        )  # fmt: skip
    return da, db
