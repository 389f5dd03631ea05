"""Reversing a sequence in time on the CPU (Bidirectional's backward direction)."""

from __future__ import annotations

import numpy as np


def reverse_time(y):
    """y[:, ::-1] as a contiguous array (aligns a backward RNN's sequence with the input)."""
    return np.ascontiguousarray(y[:, ::-1])
