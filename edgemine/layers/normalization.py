"""BatchNormalization over the last (channels) axis, with Keras's defaults."""

from __future__ import annotations

from .. import initializers
from .base import Layer, register


@register
class BatchNormalization(Layer):
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
        if self.gamma is not None:
            self.gamma.grad = dgamma
        if self.beta is not None:
            self.beta.grad = dbeta
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
