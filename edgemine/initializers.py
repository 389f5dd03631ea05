"""Weight initialisers with Keras's names, formulas and fan computation.

All draws come from ``edgemine.utils.get_rng()`` so ``set_random_seed`` makes them repeatable.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .utils import get_rng

Initializer = Callable[[tuple, np.dtype], np.ndarray]


def compute_fans(shape: tuple) -> tuple[float, float]:
    """Keras's fan-in / fan-out: a conv kernel (kh, kw, cin, cout) counts its receptive field."""
    if len(shape) < 1:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    receptive = math.prod(shape[:-2])
    return float(shape[-2] * receptive), float(shape[-1] * receptive)


def _truncated_normal(shape, stddev, dtype):
    # Keras truncates at two standard deviations and rescales so that the std stays `stddev`
    rng = get_rng()
    sd = stddev / 0.87962566103423978
    out = rng.normal(0.0, sd, size=shape)
    bad = np.abs(out) > 2 * sd
    while bad.any():
        out[bad] = rng.normal(0.0, sd, size=int(bad.sum()))
        bad = np.abs(out) > 2 * sd
    return out.astype(dtype)


def _variance_scaling(scale: float, mode: str, distribution: str) -> Initializer:
    def init(shape, dtype=np.float32):
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        s = scale / max(1.0, n)
        if distribution == "uniform":
            limit = math.sqrt(3.0 * s)
            return get_rng().uniform(-limit, limit, size=shape).astype(dtype)
        return _truncated_normal(shape, math.sqrt(s), dtype)

    return init


def zeros(shape, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


def ones(shape, dtype=np.float32):
    return np.ones(shape, dtype=dtype)


def orthogonal(shape, dtype=np.float32, gain: float = 1.0):
    """Keras's Orthogonal: QR of a normal matrix, sign-corrected."""
    rows = math.prod(shape[:-1])
    cols = shape[-1]
    flat = get_rng().normal(0.0, 1.0, size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return (gain * q[:rows, :cols]).reshape(shape).astype(dtype)


def random_normal(shape, dtype=np.float32):
    return get_rng().normal(0.0, 0.05, size=shape).astype(dtype)


def random_uniform(shape, dtype=np.float32):
    return get_rng().uniform(-0.05, 0.05, size=shape).astype(dtype)


INITIALIZERS: dict[str, Initializer] = {
    "zeros": zeros,
    "ones": ones,
    "orthogonal": orthogonal,
    "random_normal": random_normal,
    "random_uniform": random_uniform,
    "glorot_uniform": _variance_scaling(1.0, "fan_avg", "uniform"),
    "glorot_normal": _variance_scaling(1.0, "fan_avg", "normal"),
    "he_uniform": _variance_scaling(2.0, "fan_in", "uniform"),
    "he_normal": _variance_scaling(2.0, "fan_in", "normal"),
    "lecun_uniform": _variance_scaling(1.0, "fan_in", "uniform"),
    "lecun_normal": _variance_scaling(1.0, "fan_in", "normal"),
}


def get(identifier: str | Initializer) -> Initializer:
    """Look up an initialiser by Keras name (case-insensitive, CamelCase accepted).

    >>> get("glorot_uniform")((3, 2)).shape
    (3, 2)
    """
    if callable(identifier):
        return identifier
    if not isinstance(identifier, str):
        raise TypeError(f"initializer must be a name or a callable, got {identifier!r}")
    key = identifier.lower()
    key = {
        "glorotuniform": "glorot_uniform",
        "glorotnormal": "glorot_normal",
        "heuniform": "he_uniform",
        "henormal": "he_normal",
        "randomnormal": "random_normal",
        "randomuniform": "random_uniform",
        "lecununiform": "lecun_uniform",
        "lecunnormal": "lecun_normal",
    }.get(key, key)
    if key not in INITIALIZERS:
        raise ValueError(
            f"unknown initializer {identifier!r}; known: {', '.join(sorted(INITIALIZERS))}"
        )
    return INITIALIZERS[key]


def serialize(identifier: str | Initializer) -> str:
    if isinstance(identifier, str):
        get(identifier)
        return identifier
    for key, fn in INITIALIZERS.items():
        if fn is identifier:
            return key
    raise ValueError("only named initializers can be saved; pass the initializer by name")
