"""Why a model decided: integrated gradients and gradient x input through the engine's own
backward passes, rendered as a heat-map over an image or a coloured strip of tokens.

>>> import numpy as np
>>> from edgemine.layers import Dense
>>> from edgemine.models import Sequential
>>> model = Sequential([Dense(3, "softmax", input_shape=(2,))])
>>> explain(model, np.array([1.0, 2.0]), method="gxi").attributions.shape
(2,)
"""

from .attributions import (
    BASELINES,
    METHODS,
    Explanation,
    blur,
    explain,
    gradient_x_input,
    integrated_gradients,
)

__all__ = [
    "BASELINES",
    "METHODS",
    "Explanation",
    "blur",
    "explain",
    "gradient_x_input",
    "integrated_gradients",
]
