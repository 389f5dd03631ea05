"""Activation names. The math lives in the backend (kernels/*/activations)."""

from __future__ import annotations

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")


def get(identifier: str | None) -> str:
    """Validate an activation name; ``None`` means linear, as in Keras.

    >>> get("relu"), get(None)
    ('relu', 'linear')
    """
    if identifier is None:
        return "linear"
    if not isinstance(identifier, str):
        raise TypeError(f"activation must be a name such as 'relu', got {identifier!r}")
    key = identifier.lower()
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation {identifier!r}; known: {', '.join(ACTIVATIONS)}")
    return key
