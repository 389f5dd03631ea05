"""BatchNormalization over the last (channels) axis and LayerNormalization over a sample's
trailing axes, with Keras's defaults."""

from __future__ import annotations

import math

from .. import initializers
from .base import Layer, register


class _GammaBeta(Layer):
    """A normalisation layer's optional gamma and beta weights (``scale`` / ``center``)."""

    gamma = None
    beta = None

    def _store_gradients(self, dgamma, dbeta) -> None:
        if self.gamma is not None:
            self.gamma.grad = dgamma
        if self.beta is not None:
            self.beta.grad = dbeta


@register
class BatchNormalization(_GammaBeta):
    """Keras BatchNormalization(axis=-1): batch statistics in training, moving ones otherwise.

    Weights, in Keras's order: gamma, beta, moving_mean, moving_variance.
    """

    passes_mask = True

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if axis not in (-1,):
            raise ValueError("BatchNormalization supports axis=-1 (channels_last) only")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"BatchNormalization momentum must be in [0, 1), got {momentum}")
        if epsilon <= 0:
            raise ValueError(f"BatchNormalization epsilon must be positive, got {epsilon}")
        self.axis = axis
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.inits = {
            "beta_initializer": initializers.serialize(beta_initializer),
            "gamma_initializer": initializers.serialize(gamma_initializer),
            "moving_mean_initializer": initializers.serialize(moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(moving_variance_initializer),
        }

    def build(self, input_shape):
        c = (input_shape[-1],)
        i = self.inits
        self.gamma = self.add_weight("gamma", c, i["gamma_initializer"]) if self.scale else None
        self.beta = self.add_weight("beta", c, i["beta_initializer"]) if self.center else None
        self.moving_mean = self.add_weight(
            "moving_mean", c, i["moving_mean_initializer"], trainable=False
        )
        self.moving_variance = self.add_weight(
            "moving_variance", c, i["moving_variance_initializer"], trainable=False
        )
        super().build(input_shape)

    def forward(self, x, training=False):
        ops = self.ops
        gamma = self.gamma.value if self.gamma else None
        beta = self.beta.value if self.beta else None
        self._training = training
        if training:
            mean, var = ops.batch_moments(x)
            m = self.momentum
            ops.ema_update(self.moving_mean.value, mean, m)
            ops.ema_update(self.moving_variance.value, var, m)
        else:
            mean, var = self.moving_mean.value, self.moving_variance.value
        y, self._xhat, self._inv_std = ops.batchnorm_forward(
            x, gamma, beta, mean, var, self.epsilon
        )
        return y

    def backward(self, dy):
        gamma = self.gamma.value if self.gamma else None
        dx, dgamma, dbeta = self.ops.batchnorm_backward(
            self._xhat,
            self._inv_std,
            gamma,
            dy,
            self._training,
            out=self._grad_outs(self.gamma, self.beta),
        )
        self._store_gradients(dgamma, dbeta)
        return dx

    def flops(self):
        import math

        return 4 * math.prod(self.input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            **self.inits,
        }


@register
class LayerNormalization(_GammaBeta):
    """Keras LayerNormalization: each sample normalised over ``axis`` (the last axis, or a list
    of trailing axes) with its own mean and biased variance, then ``* gamma + beta``.

    Weights, in Keras's order: gamma (``scale=True``), beta (``center=True``), shaped like the
    normalised axes.

    >>> import numpy as np
    >>> LayerNormalization()(np.array([[1.0, 2.0, 3.0]])).round(3).tolist()
    [[-1.223, 0.0, 1.223]]
    """

    passes_mask = True

    def __init__(
        self,
        axis: int | list[int] = -1,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        rms_scaling: bool = False,
        beta_initializer="zeros",
        gamma_initializer="ones",
        **kwargs,
    ):
        super().__init__(**kwargs)
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        if not axes or any(isinstance(a, bool) or not isinstance(a, int) for a in axes):
            raise TypeError(f"LayerNormalization axis must be an int or list of ints, got {axis!r}")
        if rms_scaling:
            raise ValueError("LayerNormalization(rms_scaling=True) is not supported")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
            raise ValueError(f"LayerNormalization epsilon must be positive, got {epsilon!r}")
        self.axis = axis if isinstance(axis, int) else list(axis)
        self._axes = axes
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.inits = {
            "beta_initializer": initializers.serialize(beta_initializer),
            "gamma_initializer": initializers.serialize(gamma_initializer),
        }

    def _normalised_shape(self, input_shape: tuple) -> tuple:
        """The shape of the normalised axes, which must be the trailing ones (Keras counts the
        batch axis: axis 1 is the first axis of ``input_shape``)."""
        rank = len(input_shape) + 1
        axes = sorted(a + rank if a < 0 else a for a in self._axes)
        if axes != list(range(rank - len(axes), rank)) or axes[0] < 1:
            raise ValueError(
                f"{self.name}: LayerNormalization normalises the trailing axes only; axis "
                f"{self.axis!r} does not name them for an input of rank {rank}"
            )
        shape = tuple(input_shape[a - 1] for a in axes)
        if any(d is None for d in shape):
            raise ValueError(f"{self.name}: the normalised axes must be known, got {input_shape}")
        return shape

    def build(self, input_shape):
        shape = self._normalised_shape(tuple(input_shape))
        i = self.inits
        self.gamma = self.add_weight("gamma", shape, i["gamma_initializer"]) if self.scale else None
        self.beta = self.add_weight("beta", shape, i["beta_initializer"]) if self.center else None
        self._cols = math.prod(shape)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        self._normalised_shape(tuple(input_shape))
        return tuple(input_shape)

    def forward(self, x, training=False):
        gamma = self.gamma.value if self.gamma else None
        beta = self.beta.value if self.beta else None
        y, self._xhat, self._inv_std = self.ops.layernorm_forward(
            x, gamma, beta, self._cols, self.epsilon
        )
        return y

    def backward(self, dy):
        gamma = self.gamma.value if self.gamma else None
        dx, dgamma, dbeta = self.ops.layernorm_backward(
            self._xhat, self._inv_std, gamma, dy, out=self._grad_outs(self.gamma, self.beta)
        )
        self._store_gradients(dgamma, dbeta)
        return dx

    def flops(self):
        return 8 * math.prod(self.input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            **self.inits,
        }
