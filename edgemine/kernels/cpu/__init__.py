"""The CPU backend: numpy arrays, Numba kernels and OpenBLAS matrix products.

This module's functions are the backend interface that layers, losses and optimizers call
(``layer.ops.<name>``). The CUDA backend (``edgemine.kernels.cuda``) provides the same names over
device arrays, so the layers never know where they run.
"""

# ruff: noqa: F401 (the ops are imported to be re-exported; __all__ is the interface's OPS)
from __future__ import annotations

import contextlib

import numpy as np

from .._shared import conv_output_size
from ..interface import OPS
from . import blas, memory, threads
from .activations import (
    activation_backward,
    activation_forward,
    bias_activation,
    bias_activation_inplace,
    column_sums,
    gradient_into,
    gradient_out,
    relu_backward,
    relu_forward,
    softmax_backward,
    softmax_forward,
)
from .conv import conv2d_backward, conv2d_forward
from .conv1d import (
    conv1d_backward,
    conv1d_forward,
    conv1d_geometry,
    conv1d_transpose_backward,
    conv1d_transpose_forward,
    conv1d_transpose_geometry,
    masked_mean_backward,
    masked_mean_forward,
    upsample1d_backward,
    upsample1d_forward,
)
from .embedding import (
    embedding_backward,
    embedding_forward,
    embedding_id_range,
    embedding_mask,
)
from .layernorm import layernorm_backward, layernorm_forward
from .losses import loss_and_gradient, loss_forward
from .merge import merge_backward, merge_forward
from .optim import adam_update, adam_update_sparse, rmsprop_update, scale_, sgd_update
from .pool import pool2d_backward, pool2d_forward
from .recurrent import reverse_time, rnn_backward, rnn_forward
from .sequence import (
    repeat_vector_backward,
    repeat_vector_forward,
    spatial_dropout_backward,
    spatial_dropout_forward,
)

name = "cpu"
# bias and activation are a pass after the OpenBLAS product (Backend.gemm_epilogue)
gemm_epilogue = False

#: the backend interface (``edgemine.kernels.interface.Backend``): one list for every backend
__all__ = list(OPS)


def asarray(x, dtype=None):
    """Host array -> backend array (a contiguous numpy array here)."""
    return np.ascontiguousarray(x, dtype=dtype)


def batch_memory() -> contextlib.AbstractContextManager:
    """Scope of one batch's temporaries. On the CPU numpy allocates them (the CUDA backend hands
    the same device arrays out again to the next batch) and malloc keeps the freed ones for the
    next batch (``memory.keep_freed_memory``); first, the thread counts follow the machine's load
    (``threads.adapt``: OpenBLAS on one thread while other programs keep the cores busy)."""
    if not memory.configured:
        memory.keep_freed_memory()
    threads.adapt()
    return contextlib.nullcontext()


def lasting_memory() -> contextlib.AbstractContextManager:
    """Scope of allocations that outlive the batch (a no-op here, as batch_memory)."""
    return contextlib.nullcontext()


def synchronize() -> None:
    """Wait for queued work: nothing is queued on the CPU."""


def reshape(x, shape: tuple):
    """x with a new shape (same values, no copy)."""
    return x.reshape(shape)


def to_numpy(x) -> np.ndarray:
    return np.asarray(x)


def zeros_like(x):
    return np.zeros_like(x)


def dense_forward(x, kernel, bias, activation="linear"):
    """activation(x @ kernel + bias) over the last axis of x (any rank >= 2)."""
    with blas.for_product(x.size // kernel.shape[0], kernel.shape[1], kernel.shape[0]):
        y = np.ascontiguousarray(x @ kernel)
    return bias_activation_inplace(y, bias, activation)


def dense_backward(x, kernel, dz, need_dx=True, activation="linear", y=None, out=None):
    """Returns (dx or None, dkernel, dbias) for dz = dL/d(x @ kernel + bias), or, with
    ``activation`` and the forward output ``y``, dL/d(the activation's output) (the activation's
    backward is applied first). ``out``: None, or (dkernel, dbias) arrays (either None) that the
    weight gradients are written into."""
    if activation != "linear":
        dz = activation_backward(activation, y, dz)
    x2 = x.reshape(-1, x.shape[-1])
    dz2 = dz.reshape(-1, dz.shape[-1])
    with blas.for_product(*x2.shape, dz2.shape[1]):
        dkernel = np.matmul(x2.T, dz2, out=gradient_out(out, 0))
        dbias = column_sums(dz2, out=gradient_out(out, 1))
        dx = dz @ kernel.T if need_dx else None
    return dx, dkernel, dbias


def global_pool_forward(mode, x):
    """Global pooling over H and W of NHWC x. Returns (y, cache)."""
    if mode == "avg":
        return x.mean(axis=(1, 2)), None
    n, h, w, c = x.shape
    flat = x.reshape(n, h * w, c)
    arg = flat.argmax(axis=1)
    return np.take_along_axis(flat, arg[:, None, :], axis=1)[:, 0, :], arg


def global_pool_backward(mode, x_shape, cache, dy):
    n, h, w, c = x_shape
    if mode == "avg":
        return np.broadcast_to((dy / (h * w))[:, None, None, :], x_shape).copy()
    dx = np.zeros((n, h * w, c), dtype=dy.dtype)
    np.put_along_axis(dx, cache[:, None, :], dy[:, None, :], axis=1)
    return dx.reshape(x_shape)


def batchnorm_forward(x, gamma, beta, mean, var, epsilon):
    """Normalise over every axis but the last with the given statistics.

    Returns (y, xhat, inv_std); xhat and inv_std are kept for the backward pass.
    """
    inv_std = 1.0 / np.sqrt(var + epsilon)
    xhat = (x - mean) * inv_std
    y = xhat * gamma if gamma is not None else xhat.copy()
    if beta is not None:
        y += beta
    return y, xhat, inv_std


def batch_moments(x):
    """Mean and biased variance over every axis but the last (Keras's batch statistics)."""
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)
    return mean, var


def batchnorm_backward(xhat, inv_std, gamma, dy, training, out=None):
    """Returns (dx, dgamma, dbeta). In training the statistics depend on the batch. ``out``:
    None, or (dgamma, dbeta) arrays (either None) that the gradients are written into."""
    axes = tuple(range(dy.ndim - 1))
    dbeta = gradient_into(out, 1, dy.sum(axis=axes))
    dgamma = gradient_into(out, 0, (dy * xhat).sum(axis=axes))
    g = gamma if gamma is not None else 1.0
    if not training:
        return dy * (g * inv_std), dgamma, dbeta
    m = dy.size // dy.shape[-1]
    dx = (g * inv_std / m) * (m * dy - dbeta - xhat * dgamma)
    return dx.astype(dy.dtype, copy=False), dgamma, dbeta


def dropout_forward(x, rate, rng):
    """Inverted dropout. Returns (y, mask) with mask already scaled by 1 / (1 - rate)."""
    keep = rng.random(x.shape, dtype=np.float32) >= rate
    mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - rate))
    return x * mask, mask


def add(a, b):
    """a + b, a new array (an op, so that device arrays work too: Bidirectional's dx)."""
    return a + b


def dropout_backward(dy, mask):
    """dL/dx of dropout_forward: dy * mask (an op, so that device arrays work too)."""
    return dy * mask


def ema_update(target, new, momentum: float) -> None:
    """target = target * momentum + new * (1 - momentum), in place (BatchNormalization's moving
    statistics; rounds exactly as the expression written out does)."""
    target *= momentum
    target += new * (1 - momentum)


def scatter_rows(dense, rows, values):
    """dense[rows] = values (rows unique)."""
    dense[rows] = values


def clear_rows(dense, rows):
    dense[rows] = 0
