"""Loss values and their gradients. Reduction is Keras 3's default, ``sum_over_batch_size``:
the mean over the batch and, for a (batch, time, classes) output, over time too (the
cross-entropies return one loss per row, (batch, time); the caller averages over time)."""

from __future__ import annotations

import numpy as np

from .activations import bias_activation_inplace

EPSILON = 1e-7  # Keras's backend epsilon, used to clip probabilities


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def loss_forward(name, y_pred, y_true, from_logits=False):
    """Losses: (batch,), or (batch, time) for a cross-entropy on a (batch, time, classes) output."""
    if name == "categorical_crossentropy":
        if from_logits:
            return -(y_true * _log_softmax(y_pred)).sum(axis=-1)
        p = y_pred / y_pred.sum(axis=-1, keepdims=True)
        return -(y_true * np.log(np.clip(p, EPSILON, 1 - EPSILON))).sum(axis=-1)
    if name == "sparse_categorical_crossentropy":
        idx = y_true.reshape(-1).astype(np.int64)
        rows = y_pred.reshape(-1, y_pred.shape[-1])
        if from_logits:
            logp = _log_softmax(rows)
        else:
            logp = np.log(np.clip(rows, EPSILON, 1 - EPSILON))
        return -np.take_along_axis(logp, idx[:, None], axis=-1)[:, 0].reshape(y_pred.shape[:-1])
    if name == "binary_crossentropy":
        if from_logits:
            z = y_pred
            per = np.maximum(z, 0) - z * y_true + np.log1p(np.exp(-np.abs(z)))
        else:
            p = np.clip(y_pred, EPSILON, 1 - EPSILON)
            per = -(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))
        return per.reshape(per.shape[0], -1).mean(axis=-1)
    if name == "mean_squared_error":
        d = y_pred - y_true
        return (d * d).reshape(d.shape[0], -1).mean(axis=-1)
    raise ValueError(f"unknown loss {name!r}")


def loss_gradient(name, y_pred, y_true, from_logits=False, fused_activation=None):
    """Gradient of the batch-mean loss (a cross-entropy's mean over batch and time).

    With ``fused_activation`` ('softmax' for the cross-entropies, 'sigmoid' for binary), y_pred is
    that activation's output and the gradient returned is with respect to its INPUT: the exact,
    well-conditioned ``(p - t) / n`` instead of a division by small probabilities.
    With ``from_logits`` the gradient is likewise with respect to the logits y_pred.
    """
    n = y_pred.shape[0]
    dt = y_pred.dtype
    if name in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        n = y_pred.size // y_pred.shape[-1]  # Keras averages over every (sample, step) row
        if name == "sparse_categorical_crossentropy":
            t = np.zeros_like(y_pred).reshape(n, -1)
            np.put_along_axis(t, y_true.reshape(-1, 1).astype(np.int64), 1, axis=-1)
            t = t.reshape(y_pred.shape)
        else:
            t = y_true.astype(dt, copy=False)
        if from_logits:
            return ((_softmax(y_pred) * t.sum(axis=-1, keepdims=True) - t) / n).astype(dt)
        if fused_activation == "softmax":
            return ((y_pred * t.sum(axis=-1, keepdims=True) - t) / n).astype(dt)
        if name == "sparse_categorical_crossentropy":  # Keras clips but does not renormalise
            inside = (y_pred > EPSILON) & (y_pred < 1 - EPSILON)
            return (np.where(inside, -t / np.clip(y_pred, EPSILON, 1), 0) / n).astype(dt)
        s = y_pred.sum(axis=-1, keepdims=True)
        p = y_pred / s
        inside = (p > EPSILON) & (p < 1 - EPSILON)
        dp = np.where(inside, -t / np.clip(p, EPSILON, 1), 0)
        # through the normalisation p = y / sum(y)
        return ((dp - (dp * p).sum(axis=-1, keepdims=True)) / s / n).astype(dt)
    if name == "binary_crossentropy":
        m = y_pred[0].size
        if from_logits or fused_activation == "sigmoid":
            p = _sigmoid(y_pred) if from_logits else y_pred
            return ((p - y_true) / (n * m)).astype(dt)
        inside = (y_pred > EPSILON) & (y_pred < 1 - EPSILON)
        p = np.clip(y_pred, EPSILON, 1 - EPSILON)
        g = np.where(inside, (p - y_true) / (p * (1 - p)), 0)
        return (g / (n * m)).astype(dt)
    if name == "mean_squared_error":
        m = y_pred[0].size
        return (2.0 * (y_pred - y_true) / (n * m)).astype(dt)
    raise ValueError(f"unknown loss {name!r}")


def loss_and_gradient(
    name, y_pred, y_true, from_logits=False, fused_activation=None, apply_activation=False
):
    """(per-sample losses, gradient of the batch-mean loss): a training step's loss.

    ``fused_activation`` and ``from_logits`` mean what they mean for ``loss_gradient``. With
    ``apply_activation``, y_pred holds the fused activation's INPUT and becomes its output, in
    place (a layer can then leave its softmax to the loss: on a GPU the softmax, the losses and
    the gradient take one launch instead of three).

    >>> z = np.array([[2.0, 0.0]], dtype=np.float32)
    >>> per, g = loss_and_gradient("sparse_categorical_crossentropy", z, np.array([[0]]),
    ...                            fused_activation="softmax", apply_activation=True)
    >>> bool(np.isclose(z.sum(), 1.0)), bool(np.isclose(per[0], -np.log(z[0, 0])))
    (True, True)
    """
    if apply_activation:
        if fused_activation not in ("softmax", "sigmoid"):
            raise ValueError(f"apply_activation needs a fused activation, got {fused_activation!r}")
        bias_activation_inplace(y_pred, None, fused_activation)
    per = loss_forward(name, y_pred, y_true, from_logits)
    return per, loss_gradient(name, y_pred, y_true, from_logits, fused_activation)
