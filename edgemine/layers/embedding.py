"""Embedding: integer token ids -> dense vectors, with a row-sparse gradient and mask_zero."""

from __future__ import annotations

import numpy as np

from .. import initializers
from .base import Layer, SparseGradient, register

# Keras's 'uniform' for embeddings is RandomUniform(-0.05, 0.05)
_INIT_ALIASES = {"uniform": "random_uniform"}


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


_INT32_END = 2**31  # ids are int32 inside the engine and in the exported graph


def check_token_ids(ids: np.ndarray, what: str, input_dim: int, layer_name: str) -> None:
    """Refuse ids outside ``[0, input_dim)`` (and beyond int32) in the caller's dtype, before
    any cast to int32 could wrap them (2**32 + 3 would become id 3).

    >>> import numpy as np
    >>> check_token_ids(np.array([[2**32 + 3]]), "x", 10, "emb")
    Traceback (most recent call last):
    ...
    ValueError: emb: token id 4294967299 in x is out of range for input_dim=10: ids must lie in [0, 9]
    """
    if ids.size == 0:
        return
    end = min(input_dim, _INT32_END)
    lo, hi = ids.min(), ids.max()
    if lo < 0 or hi >= end:
        raise ValueError(
            f"{layer_name}: token id {int(lo if lo < 0 else hi)} in {what} is out of range for "
            f"input_dim={input_dim}: ids must lie in [0, {end - 1}]"
        )


@register
class Embedding(Layer):
    """Looks up a learned vector for each integer id: ``embeddings[ids]``.

    Input (batch, ...) of ids in ``[0, input_dim)``; output (batch, ..., output_dim). The
    gradient is row-sparse (a ``SparseGradient`` of the rows the batch used), so a large
    vocabulary costs no dense (input_dim, output_dim) gradient per step. With ``mask_zero`` id 0
    is padding and the layer gives the next layer (an RNN) the mask ``ids != 0``.

    >>> import numpy as np
    >>> emb = Embedding(input_dim=10, output_dim=4, input_length=3)
    >>> emb(np.array([[1, 2, 0]])).shape
    (1, 3, 4)
    """

    input_dtype = "int"

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer="uniform",
        mask_zero: bool = False,
        input_length: int | None = None,
        **kwargs,
    ):
        self.input_dim = _positive_int(input_dim, "Embedding input_dim")
        self.output_dim = _positive_int(output_dim, "Embedding output_dim")
        if input_length is not None:
            input_length = _positive_int(input_length, "Embedding input_length")
            # Keras 2: input_length on the first layer declares the model's input shape
            if kwargs.get("input_shape") is None and kwargs.get("batch_input_shape") is None:
                kwargs["input_shape"] = (input_length,)
        super().__init__(**kwargs)
        self.input_length = input_length
        initializers.get(_INIT_ALIASES.get(embeddings_initializer, embeddings_initializer))
        self.embeddings_initializer = (
            embeddings_initializer
            if isinstance(embeddings_initializer, str)
            else initializers.serialize(embeddings_initializer)
        )
        self.mask_zero = bool(mask_zero)
        self._ids = None

    def build(self, input_shape):
        init = _INIT_ALIASES.get(self.embeddings_initializer, self.embeddings_initializer)
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim), init)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def _check_ids(self, ids) -> None:
        dtype = np.dtype(ids.dtype)
        if not np.issubdtype(dtype, np.integer):
            raise TypeError(
                f"{self.name}: Embedding expects integer token ids, got dtype {dtype} "
                "(cast whole-number floats with .astype('int32'))"
            )
        if ids.size == 0:
            return
        lo, hi = self.ops.embedding_id_range(ids)
        if lo < 0:
            raise ValueError(
                f"{self.name}: token id {lo} is negative; ids must lie in [0, {self.input_dim})"
            )
        if hi >= self.input_dim:
            raise ValueError(
                f"{self.name}: token id {hi} is out of range for input_dim={self.input_dim} "
                f"(ids must lie in [0, {self.input_dim - 1}]); raise input_dim or tokenize with "
                f"num_words={self.input_dim}"
            )

    def forward(self, x, training=False):
        self._check_ids(x)
        self._ids = x
        return self.ops.embedding_forward(self.embeddings.value, x)

    def backward(self, dy):
        if self.trainable and self.embeddings.trainable:
            rows, values = self.ops.embedding_backward(self._ids, dy, self.input_dim)
            self.embeddings.grad = SparseGradient(rows, values, self.embeddings.shape)
        return None  # ids have no gradient

    def compute_mask(self, inputs, mask=None):
        """The mask for the next layer: ``ids != 0`` with ``mask_zero``, else None."""
        if not self.mask_zero:
            return None
        return self.ops.embedding_mask(inputs)

    def get_config(self):
        config = {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": self.embeddings_initializer,
            "mask_zero": self.mask_zero,
        }
        if self.input_length is not None:
            config["input_length"] = self.input_length
        return config
