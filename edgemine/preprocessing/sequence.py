"""Sequence padding with the semantics and defaults of Keras 2's ``pad_sequences``.

Example:
    >>> from edgemine.preprocessing.sequence import pad_sequences
    >>> pad_sequences([[1, 2, 3], [4]], maxlen=2).tolist()
    [[2, 3], [0, 4]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["pad_sequences"]

_MODES = ("pre", "post")


def _check_pad_arguments(sequences, maxlen, padding: str, truncating: str) -> int | None:
    """``maxlen`` as an int (or None), after checking pad_sequences's arguments."""
    if padding not in _MODES:
        raise ValueError(f"padding must be 'pre' or 'post', got {padding!r}")
    if truncating not in _MODES:
        raise ValueError(f"truncating must be 'pre' or 'post', got {truncating!r}")
    if maxlen is not None:
        if isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)):
            raise TypeError(f"maxlen must be an int or None, got {maxlen!r}")
        if maxlen < 1:
            raise ValueError(f"maxlen must be >= 1 or None, got {maxlen}")
        maxlen = int(maxlen)
    if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__len__"):
        raise ValueError("sequences must be a list of sequences")
    return maxlen


def _lengths_and_item_shape(sequences) -> tuple[list[int], tuple[int, ...]]:
    """Each sequence's length, and the shape of an item (of the first non-empty sequence)."""
    lengths = []
    sample_shape: tuple[int, ...] = ()
    found_shape = False
    for x in sequences:
        if isinstance(x, (str, bytes)) or not hasattr(x, "__len__"):
            raise ValueError(f"sequences must be a list of sequences; found non-sequence {x!r}")
        lengths.append(len(x))
        if not found_shape and len(x):
            sample_shape = np.asarray(x).shape[1:]
            found_shape = True
    return lengths, sample_shape


def pad_sequences(
    sequences: Sequence[Sequence[Any]],
    maxlen: int | None = None,
    dtype: DTypeLike = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: float | str = 0.0,
) -> np.ndarray:
    """Pad (and truncate) a list of sequences to one length, like Keras 2.

    Args:
        sequences: a list of sequences (lists, tuples or arrays); items may themselves
            be arrays of a common shape, which becomes the trailing shape of the output.
        maxlen: output length; default: the length of the longest sequence.
        dtype: output dtype (``'int32'`` by default; use a float dtype to keep fractions).
        padding: ``'pre'`` pads at the front, ``'post'`` at the back.
        truncating: ``'pre'`` drops values from the front (keeps the last ``maxlen``),
            ``'post'`` drops values from the back.
        value: the padding value.

    Returns:
        An array of shape ``(len(sequences), maxlen) + item_shape``.

    Raises:
        ValueError: bad ``maxlen`` / ``padding`` / ``truncating``, a non-sequence item,
            items of inconsistent shapes, or a string ``value`` with a numeric dtype.
        TypeError: ``maxlen`` is not an int.

    Example:
        >>> pad_sequences([[1, 2, 3], [4]], maxlen=2, padding="post", truncating="post").tolist()
        [[1, 2], [4, 0]]
        >>> pad_sequences([[0.5], []], dtype="float32", value=-1.0).tolist()
        [[0.5], [-1.0]]
    """
    maxlen = _check_pad_arguments(sequences, maxlen, padding, truncating)
    lengths, sample_shape = _lengths_and_item_shape(sequences)
    if maxlen is None:
        maxlen = max(lengths) if lengths else 0

    dt = np.dtype(dtype)
    if isinstance(value, str) and dt != np.dtype(object) and dt.kind not in "US":
        raise ValueError(
            f"dtype {dt} is not compatible with the string padding value {value!r}; "
            "use dtype=object or a string dtype"
        )

    out = np.full((len(sequences), maxlen) + tuple(sample_shape), value, dtype=dt)
    for idx, s in enumerate(sequences):
        if not len(s) or not maxlen:
            continue
        trunc = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        trunc = np.asarray(trunc, dtype=dt)
        if trunc.shape[1:] != tuple(sample_shape):
            raise ValueError(
                f"shape of sample {trunc.shape[1:]} of sequence at position {idx} "
                f"is different from expected shape {tuple(sample_shape)}"
            )
        if padding == "post":
            out[idx, : len(trunc)] = trunc
        else:
            out[idx, -len(trunc) :] = trunc
    return out
