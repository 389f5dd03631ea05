"""RepeatVector and SpatialDropout1D: the sequence layers of an LSTM autoencoder and of 1-D
convolutional models."""

from __future__ import annotations

import numpy as np

from ..utils import get_rng
from .base import Layer, register


@register
class RepeatVector(Layer):
    """Repeats each sample ``n`` times along a new time axis: (batch, features) ->
    (batch, n, features), as Keras's RepeatVector (the decoder input of an LSTM autoencoder).

    >>> import numpy as np
    >>> RepeatVector(3)(np.array([[1.0, 2.0]])).tolist()
    [[[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]]]
    """

    def __init__(self, n: int, **kwargs):
        super().__init__(**kwargs)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"RepeatVector n must be a positive int, got {n!r}")
        self.n = int(n)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"{self.name}: RepeatVector takes (batch, features) inputs, got per-sample "
                f"shape {tuple(input_shape)}"
            )
        return (self.n, input_shape[0])

    def forward(self, x, training=False):
        return self.ops.repeat_vector_forward(x, self.n)

    def backward(self, dy):
        return self.ops.repeat_vector_backward(dy)

    def get_config(self):
        return {**super().get_config(), "n": self.n}


@register
class SpatialDropout1D(Layer):
    """Dropout of whole channels: in training each sample's channel is zeroed at every step with
    probability ``rate`` (the kept ones scaled by 1 / (1 - rate), as Dropout); identity at
    inference. Takes (batch, steps, channels), as Keras's SpatialDropout1D.

    >>> import numpy as np
    >>> y = SpatialDropout1D(0.5, seed=0)(np.ones((2, 4, 3)), training=True)
    >>> bool(((y == 0) | (y == 2)).all()), bool((y == y[:, :1]).all())
    (True, True)
    """

    passes_mask = True

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"SpatialDropout1D rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                f"{self.name}: SpatialDropout1D takes (batch, steps, channels) inputs, got "
                f"per-sample shape {tuple(input_shape)}"
            )
        return tuple(input_shape)

    def forward(self, x, training=False):
        self._mask = None
        if not training or self.rate == 0.0:
            return x
        y, self._mask = self.ops.spatial_dropout_forward(x, self.rate, self._rng or get_rng())
        return y

    def backward(self, dy):
        return dy if self._mask is None else self.ops.spatial_dropout_backward(dy, self._mask)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
