"""Integrated gradients (Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep
Networks", ICML 2017) and gradient x input, for one sample of a Sequential model.

Integrated gradients of output ``c`` of ``f`` at ``x`` from a baseline ``b``:
``(x - b) * mean_k grad f_c(b + a_k (x - b))`` over ``steps`` points ``a_k`` of [0, 1] (the
midpoint rule). Completeness: the attributions sum to ``f_c(x) - f_c(b)``, up to the
quadrature error, which :attr:`Explanation.completeness_error` reports.

Text models (an Embedding first) are explained at the embeddings: the path runs from the
baseline's embeddings (every token the padding id 0) to the input's, with the input's mask
throughout, and a token's attribution is the sum over the embedding axis of
``(e - e_baseline) * gradient``.

>>> import numpy as np
>>> from edgemine.layers import Dense
>>> from edgemine.models import Sequential
>>> from edgemine.utils import set_random_seed
>>> set_random_seed(0)
>>> model = Sequential([Dense(8, "tanh", input_shape=(4,)), Dense(3, "softmax")])
>>> e = integrated_gradients(model, np.array([0.5, -1.0, 2.0, 0.1]), steps=128)
>>> e.attributions.shape, e.completeness_error < 0.01
((4,), True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..layers.embedding import Embedding
from .gradients import chain, explaining, forward_backward

METHODS = ("ig", "gxi")
BASELINES = ("zero", "blur")
_CHUNK = 128  # path points per forward/backward batch


@dataclass
class Explanation:
    """The attributions of one sample for one output (``target``).

    ``attributions`` has the sample's shape (images: (H, W, C)), or one value per token for
    text models (``token_ids`` then holds the ids); ``score`` and ``baseline_score`` are the
    target output at the input and at the baseline."""

    method: str
    target: int
    attributions: np.ndarray
    score: float
    baseline_score: float
    outputs: np.ndarray
    baseline: str
    steps: int
    token_ids: np.ndarray | None = field(default=None)

    @property
    def completeness_error(self) -> float:
        """|sum of attributions - (score - baseline_score)| / |score - baseline_score|: how far
        integrated gradients are from completeness (0 is exact)."""
        delta = self.score - self.baseline_score
        gap = abs(float(self.attributions.sum()) - delta)
        return gap / abs(delta) if delta else (0.0 if gap == 0 else float("inf"))


def blur(image: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """A Gaussian blur of an (H, W, C) image (``sigma`` default: an eighth of the shorter side),
    the weights renormalised at the borders: the blurred baseline of integrated gradients.

    >>> float(blur(np.ones((5, 4, 1))).min().round(6))
    1.0
    """
    h, w = image.shape[:2]
    sigma = max(min(h, w) / 8.0, 0.5) if sigma is None else float(sigma)

    def weights(n):
        d = np.arange(n)[:, None] - np.arange(n)[None, :]
        k = np.exp(-0.5 * (d / sigma) ** 2)
        return k / k.sum(1, keepdims=True)

    return np.einsum("ih,hwc,jw->ijc", weights(h), image, weights(w))


def _sample(model, x) -> np.ndarray:
    """One sample with its batch axis; token ids as int, everything else float64."""
    model._require_built()
    text = isinstance(chain(model)[0], Embedding)
    arr = np.asarray(x)
    if arr.shape == tuple(model.input_shape):
        arr = arr[None]
    checked = model._check_x(arr, "the input to explain")  # shape, dtype, NaN and id checks
    if len(checked) != 1:
        raise ValueError(f"explain one sample at a time; got {len(checked)}")
    return checked if text else checked.astype(np.float64)


def _baseline_for(x: np.ndarray, baseline: str, image: bool) -> np.ndarray:
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
    if baseline == "zero":
        return np.zeros_like(x)
    if not image:
        raise ValueError("the blurred baseline is for image inputs (height, width, channels)")
    return blur(x[0])[None]


def _text_inputs(model, ids: np.ndarray):
    """The input's and the baseline's embeddings (1, T, D) and the input's mask (or None)."""
    emb = chain(model)[0]
    table = np.asarray(model.ops.to_numpy(emb.embeddings.value), dtype=np.float64)
    e_x = table[ids.astype(np.int64)]
    e_b = np.broadcast_to(table[0], e_x.shape).copy()  # every token the padding id 0
    mask = (ids != 0) if emb.mask_zero else None
    return e_x, e_b, mask


def _path_gradients(model, start, x, b, alphas, target, mask):
    """Mean gradient of the target output along b + a (x - b), plus f(x) and f(b)."""
    total = np.zeros(x.shape[1:])
    for i in range(0, len(alphas), _CHUNK):
        a = alphas[i : i + _CHUNK].reshape(-1, *([1] * (x.ndim - 1)))
        points = (b + a * (x - b)).astype(np.float32)
        m = None if mask is None else np.repeat(mask, len(points), axis=0)
        _, grads = forward_backward(model, points, target, start, m)
        total += grads.sum(0)
    ends = np.concatenate([x, b]).astype(np.float32)
    m = None if mask is None else np.repeat(mask, 2, axis=0)
    outputs, _ = forward_backward(model, ends, target, start, m)
    return total / len(alphas), outputs


def explain(
    model,
    x,
    method: str = "ig",
    target: int | None = None,
    baseline: str = "zero",
    steps: int = 128,
) -> Explanation:
    """Attributions of one sample ``x`` for output ``target`` (default: the predicted class)
    by integrated gradients (``"ig"``, ``steps`` points) or gradient x input (``"gxi"``: the
    gradient at the input times input - baseline)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    sample = _sample(model, x)
    text = isinstance(chain(model)[0], Embedding)
    start = 1 if text else 0  # text: the layer after the Embedding takes the path's points
    if text:
        if baseline != "zero":
            raise ValueError("text models take the zero baseline (every token the padding id 0)")
        xs, bs, mask = _text_inputs(model, sample)
    else:
        image = sample.ndim == 4 and sample.shape[-1] in (1, 3)
        xs, bs, mask = sample, _baseline_for(sample, baseline, image), None
    with explaining(model, start):
        if target is None:
            outputs, _ = forward_backward(model, xs.astype(np.float32), 0, start, mask)
            target = int(outputs[0].argmax()) if outputs.shape[1] > 1 else 0
        width = int(np.prod(model.output_shape))
        if not 0 <= int(target) < width:
            raise ValueError(f"target {target} is outside the model's {width} outputs")
        alphas = (np.arange(steps) + 0.5) / steps if method == "ig" else np.ones(1)
        grad, outputs = _path_gradients(model, start, xs, bs, alphas, int(target), mask)
    attr = ((xs - bs)[0] * grad).astype(np.float64)
    if text:
        attr = attr.sum(-1)
    return Explanation(
        method=method,
        target=int(target),
        attributions=attr,
        score=float(outputs[0, target]),
        baseline_score=float(outputs[1, target]),
        outputs=outputs[0],
        baseline=baseline,
        steps=steps if method == "ig" else 1,
        token_ids=sample[0].astype(np.int64) if text else None,
    )


def integrated_gradients(model, x, target=None, baseline="zero", steps=128) -> Explanation:
    """Integrated gradients of one sample (see :func:`explain`)."""
    return explain(model, x, "ig", target, baseline, steps)


def gradient_x_input(model, x, target=None, baseline="zero") -> Explanation:
    """Gradient x (input - baseline) of one sample (see :func:`explain`)."""
    return explain(model, x, "gxi", target, baseline)
