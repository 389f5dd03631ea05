"""The backend interface: the ops every backend module (``kernels.cpu``, ``kernels.cuda``) offers.

Layers, losses and optimizers call ``layer.ops.<op>``, never a backend module by name, so each op
here exists in every backend with this exact signature (parameter names, order and defaults;
tests/test_backend_interface.py checks both backends against this class). A new backend is a
module with these functions; a new op is added here first, then to every backend.

Conventions that hold for every op:

* ``Array`` is the backend's array: a contiguous float32 numpy array on the CPU, a numba device
  array on CUDA. Host arrays enter through ``asarray`` and leave through ``to_numpy`` only.
* ``out`` of a backward op is None or a tuple with one destination (or None) per weight gradient,
  in the order the op returns them: the optimizer's flat gradient buffer (``Variable.grad_out``).
  The op writes the gradient there and returns that array.
* ``need_dx=False`` (a model's first layer) skips the input gradient: the op returns None for it.
* ``activation`` / ``y`` of a backward op: the op applies that activation's backward to ``dy``
  first, from the forward OUTPUT ``y`` (every activation's derivative is written in terms of y).
* ``batch_memory()`` scopes one batch's temporaries: an op's results may be handed out again to
  the next batch, so nothing may keep one past its batch. State that outlives the batch
  (optimizer slots, moving statistics) is allocated under ``lasting_memory()``.

>>> from edgemine.kernels import cpu
>>> missing = [op for op in OPS if not callable(getattr(cpu, op, None))]
>>> missing
[]
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol, runtime_checkable

import numpy as np

#: a backend array: numpy on the CPU, a numba device array on CUDA
Array = Any


@runtime_checkable
class Backend(Protocol):
    """What a backend module provides. Attributes: ``name`` ('cpu' or 'cuda') and
    ``gemm_epilogue`` (whether its Dense / Conv2D products apply bias and activation in the
    product itself, as the CUDA GEMM does: then moving them to a max pooling saves nothing)."""

    name: str
    gemm_epilogue: bool

    # ----- arrays and memory -----
    def asarray(self, x, dtype=None) -> Array:
        """Host (or backend) array -> contiguous backend array of ``dtype``."""

    def to_numpy(self, x) -> np.ndarray:
        """Backend array -> host numpy array (host arrays pass through)."""

    def zeros_like(self, x: Array) -> Array: ...
    def reshape(self, x: Array, shape: tuple) -> Array:
        """Same values, new shape, no copy."""

    def add(self, a: Array, b: Array) -> Array: ...
    def batch_memory(self) -> contextlib.AbstractContextManager: ...
    def lasting_memory(self) -> contextlib.AbstractContextManager: ...
    def synchronize(self) -> None:
        """Wait for queued work (timing); a no-op on the CPU."""

    def conv_output_size(self, size: int, k: int, stride: int, padding: str) -> tuple[int, int]:
        """(output length, leading pad) along one axis, TensorFlow's 'same'/'valid' rules."""

    # ----- activations and dense -----
    def activation_forward(self, name: str, x: Array) -> Array: ...
    def activation_backward(self, name: str, y: Array, dy: Array) -> Array: ...
    def bias_activation(self, x: Array, bias: Array | None, activation: str) -> Array:
        """activation(x + bias) over the last axis of x (linear, relu, sigmoid or tanh); may
        write into x, which the caller gives up. A max pooling applies its convolution's bias and
        ReLU to its smaller output with it (max commutes with both)."""

    def dense_forward(self, x: Array, kernel: Array, bias: Array | None, activation="linear"):
        """activation(x @ kernel + bias) over the last axis of x."""

    def dense_backward(
        self, x, kernel, dz, need_dx=True, activation="linear", y=None, out=None
    ) -> tuple[Array | None, Array, Array]:
        """(dx or None, dkernel, dbias)."""

    # ----- convolution and pooling (NHWC) -----
    def conv2d_forward(
        self, x, kernel, bias, strides, padding, activation="linear", keep=True, corner=None
    ) -> tuple[Array, Any]:
        """(y, cache); the cache (patch matrix) is kept for backward when ``keep``. With
        ``corner`` (rows, cols) only the output's first rows and columns are computed."""

    def conv2d_backward(
        self,
        x_shape,
        cache,
        kernel,
        dy,
        strides,
        padding,
        need_dx=True,
        activation="linear",
        y=None,
        out=None,
        corner=None,
    ) -> tuple[Array | None, Array, Array]:
        """(dx or None, dkernel, dbias); ``corner`` as given to the forward."""

    def pool2d_forward(self, mode: str, x, pool, strides, padding) -> tuple[Array, Any]:
        """(y, argmax cache) for mode 'max' or 'avg'."""

    def pool2d_backward(
        self, mode: str, x_shape, arg, dy, pool, strides, padding, relu_y=None
    ) -> Array:
        """dx; with ``relu_y`` (the pooled output) also the backward of the ReLU below."""

    def global_pool_forward(self, mode: str, x) -> tuple[Array, Any]: ...
    def global_pool_backward(self, mode: str, x_shape, cache, dy) -> Array: ...

    # ----- 1-D convolution and sequence pooling ((batch, steps, channels)) -----
    def conv1d_geometry(
        self, length: int, k: int, stride: int, dilation: int, padding: str
    ) -> tuple[int, int, int]:
        """(output length, left pad, right pad) along the steps: 'valid', 'same', 'causal'."""

    def conv1d_transpose_geometry(
        self, length: int, k: int, stride: int, dilation: int, padding: str
    ) -> tuple[int, int]:
        """(output length, left pad) of a transposed 1-D convolution, Keras's rule."""

    def conv1d_forward(
        self, x, kernel, bias, stride, padding, dilation=1, activation="linear", keep=True
    ) -> tuple[Array, Any]:
        """(y, cache) for a Keras kernel (k, cin, filters); padding 'valid', 'same' or
        'causal'; the cache (patch matrix) is kept for backward when ``keep``."""

    def conv1d_backward(
        self,
        x_shape,
        cache,
        kernel,
        dy,
        stride,
        padding,
        dilation=1,
        need_dx=True,
        activation="linear",
        y=None,
        out=None,
    ) -> tuple[Array | None, Array, Array]: ...
    def conv1d_transpose_forward(
        self, x, kernel, bias, stride, padding, dilation=1, activation="linear"
    ) -> tuple[Array, Any]:
        """(y, cache) for a Keras Conv1DTranspose kernel (k, filters, cin)."""

    def conv1d_transpose_backward(
        self,
        cache,
        kernel,
        dy,
        stride,
        padding,
        dilation=1,
        need_dx=True,
        activation="linear",
        y=None,
        out=None,
    ) -> tuple[Array | None, Array, Array]: ...
    def upsample1d_forward(self, x, size: int) -> Array: ...
    def upsample1d_backward(self, dy, size: int) -> Array: ...
    def masked_mean_forward(self, x, mask) -> tuple[Array, Any]:
        """(mean over the steps where the (batch, steps) mask is True, cache)."""

    def masked_mean_backward(self, cache, dy) -> Array: ...

    # ----- normalization and dropout -----
    def batch_moments(self, x) -> tuple[Array, Array]: ...
    def ema_update(self, target, new, momentum: float) -> None: ...
    def batchnorm_forward(self, x, gamma, beta, mean, var, epsilon) -> tuple[Array, Array, Array]:
        """(y, xhat, inv_std)."""

    def batchnorm_backward(self, xhat, inv_std, gamma, dy, training, out=None) -> tuple:
        """(dx, dgamma, dbeta)."""

    def dropout_forward(self, x, rate: float, rng) -> tuple[Array, Array]:
        """(y, scaled mask)."""

    def dropout_backward(self, dy, mask) -> Array: ...

    # ----- sequences -----
    def embedding_id_range(self, ids) -> tuple[int, int]: ...
    def embedding_forward(self, table, ids) -> Array: ...
    def embedding_backward(self, ids, dy, input_dim: int) -> tuple[Array, Array]:
        """(unique rows, summed gradient per row): a row-sparse gradient."""

    def embedding_mask(self, ids) -> Array: ...
    def rnn_forward(
        self,
        cell: str,
        x,
        kernel,
        recurrent_kernel,
        bias,
        activation="tanh",
        recurrent_activation="sigmoid",
        mask=None,
        go_backwards=False,
        return_sequences=False,
        zero_output_for_mask=False,
        dropout=0.0,
        recurrent_dropout=0.0,
        rng=None,
        training=False,
    ) -> tuple[Array, Any]:
        """(y, cache) of an 'lstm', 'gru' or 'simple_rnn' layer over (batch, time, features)."""

    def rnn_backward(self, cache, dy, need_dx=True, out=None) -> tuple:
        """(dx or None, dkernel, drecurrent_kernel, dbias)."""

    def reverse_time(self, y) -> Array: ...
    def merge_forward(self, mode: str, a, b) -> Array: ...
    def merge_backward(self, mode: str, a, b, dy) -> tuple[Array, Array]: ...

    # ----- layers of Keras programs: ReLU family, Softmax, LayerNormalization, sequences -----
    def relu_forward(self, x, negative_slope=0.0, max_value=None, threshold=0.0) -> Array:
        """Keras's ``relu``: min(x, max_value) above ``threshold``, else
        ``negative_slope * (x - threshold)``; a new array."""

    def relu_backward(self, x, dy, negative_slope=0.0, max_value=None, threshold=0.0) -> Array:
        """dx from the forward INPUT x (a clipped output does not say which branch it took)."""

    def softmax_forward(self, x, axes: tuple) -> Array:
        """Softmax over ``axes`` (contiguous, positive, never the batch axis)."""

    def softmax_backward(self, y, dy, axes: tuple) -> Array: ...
    def layernorm_forward(self, x, gamma, beta, cols: int, epsilon) -> tuple[Array, Array, Array]:
        """Each run of ``cols`` trailing values normalised: (y, xhat (rows, cols), inv_std)."""

    def layernorm_backward(self, xhat, inv_std, gamma, dy, out=None) -> tuple:
        """(dx, dgamma or None, dbeta)."""

    def repeat_vector_forward(self, x, n: int) -> Array:
        """(batch, features) -> (batch, n, features)."""

    def repeat_vector_backward(self, dy) -> Array: ...
    def spatial_dropout_forward(self, x, rate: float, rng) -> tuple[Array, Array]:
        """(y, scaled (batch, channels) mask) of (batch, steps, channels) x."""

    def spatial_dropout_backward(self, dy, mask) -> Array: ...

    # ----- losses and optimizers -----
    def loss_forward(self, name: str, y_pred, y_true, from_logits=False) -> Array: ...
    def loss_and_gradient(
        self,
        name: str,
        y_pred,
        y_true,
        from_logits=False,
        fused_activation=None,
        apply_activation=False,
    ) -> tuple[Array, Array]:
        """(per-sample losses, gradient of the mean loss w.r.t. y_pred or the fused logits)."""

    def sgd_update(self, p, g, vel, lr, momentum, nesterov) -> None: ...
    def rmsprop_update(self, p, g, ms, mg, mom, lr, rho, eps, momentum, centered) -> None: ...
    def adam_update(self, p, g, m, v, lr_t, beta1, beta2, eps) -> None: ...
    def adam_update_sparse(self, p, rows, g, m, v, lr_t, beta1, beta2, eps) -> None: ...
    def scale_(self, p, factor) -> None:
        """p *= factor, in place (an optimizer's decoupled weight decay)."""

    def scatter_rows(self, dense, rows, values) -> None: ...
    def clear_rows(self, dense, rows) -> None: ...


#: the op names of the interface (every public function of ``Backend``)
OPS: tuple[str, ...] = tuple(
    sorted(n for n, v in vars(Backend).items() if callable(v) and not n.startswith("_"))
)
