"""The CUDA backend: the CPU backend's op functions (``edgemine.kernels.cpu``) over numba.cuda
device arrays, so that layers, losses and optimizers run unchanged with ``device="cuda"``.

Everything CUDA-specific stays in this package (numba-cuda is in maintenance mode, so the whole
target must be replaceable): ``gemm.py`` holds the only matrix product, the other modules one
topic each. Tensors stay on the device for a whole training step; the host sees them only through
:func:`to_numpy`. Launch overhead in Numba is high (tens to hundreds of microseconds per launch,
numba issue #3003), so each op is one or a few fused kernels: bias and activation in the GEMM
epilogue, one kernel for a whole recurrent sequence, fixed-order reductions instead of atomics
(results are reproducible run to run).

Under ``NUMBA_ENABLE_CUDASIM=1`` the same code runs in Numba's simulator with tiny launch sizes,
which is how the tests check every op against its CPU twin without a GPU.

Rules for op code (``_device.py``): take outputs and temporaries from ``empty`` (inside a batch
they come from the batch arena and are handed out again to the next batch, so nothing may keep
one past its batch, nor key a cache on an array's identity); allocate state that outlives the
batch under ``lasting_memory``; reshape and slice with ``view`` / ``part`` (numba builds a new
array object per reshape); reuse scratch through ``workspace``; upload host data with ``upload``.
"""

# ruff: noqa: F401 (the ops are imported to be re-exported; __all__ is the interface's OPS)
from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from .._shared import conv_output_size, gradient_out
from ..interface import OPS
from ._device import (
    SIM,
    DeviceArray,
    add,
    batch_memory,
    is_device,
    lasting_memory,
    multiply,
    upload,
    view,
    zeros,
)
from ._device import last as _last
from .activations import (
    activation_backward,
    activation_forward,
    bias_activation,
    relu_backward,
    relu_forward,
    softmax_backward,
    softmax_forward,
    softmax_rows_inplace,
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
from .gemm import bias_gradient, gemm
from .losses import loss_and_gradient, loss_forward
from .merge import merge_backward, merge_forward
from .norm import (
    batch_moments,
    batchnorm_backward,
    batchnorm_forward,
    dropout_forward,
    ema_update,
    layernorm_backward,
    layernorm_forward,
)
from .optim import (
    adam_update,
    adam_update_sparse,
    clear_rows,
    rmsprop_update,
    scale_,
    scatter_rows,
    sgd_update,
)
from .pool import global_pool_backward, global_pool_forward, pool2d_backward, pool2d_forward
from .recurrent import reverse_time, rnn_backward, rnn_forward
from .sequence import (
    repeat_vector_backward,
    repeat_vector_forward,
    spatial_dropout_backward,
    spatial_dropout_forward,
)

name = "cuda"
# the GEMM kernel applies bias and activation as it writes (Backend.gemm_epilogue)
gemm_epilogue = True
simulated: bool = SIM

#: the backend interface (``edgemine.kernels.interface.Backend``): one list for every backend
__all__ = list(OPS)


def asarray(x: np.ndarray | DeviceArray, dtype: DTypeLike | None = None) -> DeviceArray:
    """Host array -> device array (a device array of the right dtype is returned as is)."""
    if is_device(x):
        if dtype is None or np.dtype(dtype) == x.dtype:
            return x
        x = x.copy_to_host()
    return upload(np.ascontiguousarray(x, dtype=dtype))


def reshape(x: DeviceArray, shape: tuple) -> DeviceArray:
    """x with a new shape (a view, made once per array and shape: ``_device.view``)."""
    return view(x, *shape)


def to_numpy(x: DeviceArray | np.ndarray) -> np.ndarray:
    """Device array -> host numpy array (host arrays pass through)."""
    if is_device(x):
        return x.copy_to_host()
    return np.asarray(x)


def zeros_like(x: DeviceArray) -> DeviceArray:
    """A zero-filled device array shaped like x."""
    return zeros(x.shape, x.dtype)


def synchronize() -> None:
    """Wait for every launched kernel (for timing)."""
    from numba import cuda

    cuda.synchronize()


def dense_forward(
    x: DeviceArray, kernel: DeviceArray, bias: DeviceArray | None, activation: str = "linear"
) -> DeviceArray:
    """activation(x @ kernel + bias) over the last axis of x (any rank >= 2), one fused GEMM."""
    units = kernel.shape[1]
    x2 = view(x, x.size // _last(x), _last(x))
    fused = activation if activation != "softmax" else "linear"
    y = gemm(x2, kernel, bias=bias, activation=fused)
    if activation == "softmax":
        softmax_rows_inplace(y)
    return view(y, *x.shape[:-1], units)


def dense_backward(
    x: DeviceArray,
    kernel: DeviceArray,
    dz: DeviceArray,
    need_dx: bool = True,
    activation: str = "linear",
    y: DeviceArray | None = None,
    out: tuple | None = None,
) -> tuple[DeviceArray | None, DeviceArray, DeviceArray]:
    """Returns (dx or None, dkernel, dbias) for dz = dL/d(x @ kernel + bias), or, with
    ``activation`` and the forward output ``y``, dL/d(the activation's output) (as in the CPU
    backend). ``out``: None, or (dkernel, dbias) device arrays (either None) that the weight
    gradients are written into."""
    x2 = view(x, x.size // _last(x), _last(x))
    dz2, dbias = bias_gradient(activation, y, dz, gradient_out(out, 1))
    dkernel = gemm(x2, dz2, gradient_out(out, 0), trans_a=True)
    dx = view(gemm(dz2, kernel, trans_b=True), *x.shape) if need_dx else None
    return dx, dkernel, dbias


def dropout_backward(dy: DeviceArray, mask: DeviceArray) -> DeviceArray:
    """dy * mask (the mask from dropout_forward, already scaled)."""
    return multiply(dy, mask)
