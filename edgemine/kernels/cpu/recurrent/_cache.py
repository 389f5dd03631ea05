"""The state that ``rnn_forward`` hands to ``rnn_backward`` (opaque to layers)."""

from __future__ import annotations


class RNNCache:
    """What ``rnn_backward`` needs from ``rnn_forward`` (opaque to layers); while the forward
    runs, also the state that its chunk threads share."""

    __slots__ = (
        "cell",
        "xc",
        "kernel",
        "rk",
        "mask",
        "rmask",
        "dmask",
        "has_rd",
        "rev",
        "seq",
        "zero_out",
        "act",
        "ract",
        "hst",
        "cst",
        "gates",
        "fast",
        "fused",
        "gemm",
        # forward-only state (dropped before the cache is returned)
        "xp",
        "xbias",
        "ring",
        "rb",
        "exact",
        "one",
        "full",
        "store_h",
        "h",
        "c",
        "hm",
    )
