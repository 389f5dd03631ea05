"""A validation split that keeps every class: stratified by label and shuffled with a seed.

Keras's ``validation_split`` takes the LAST rows of the arrays, unshuffled; on data grouped by
label that validates on one class. :func:`train_validation_split` is the alternative the CLI
uses (``edgemine train --validation-split``); pass its result to ``fit(validation_data=...)``.

Example:
    >>> import numpy as np
    >>> x, y = np.arange(20.0).reshape(10, 2), np.array([0] * 5 + [1] * 5)
    >>> (x_tr, y_tr), (x_val, y_val) = train_validation_split(x, y, 0.4, seed=0)
    >>> len(x_tr), sorted(y_val.tolist())
    (6, [0, 0, 1, 1])
"""

from __future__ import annotations

import numpy as np

__all__ = ["class_labels", "per_class_test_rows", "train_validation_split"]


def class_labels(y: np.ndarray) -> np.ndarray:
    """One integer class per row: integer labels as they are, one-hot rows by their argmax.

    Raises:
        ValueError: ``y`` holds no class labels (non-integer values, or several columns that
            are not one-hot).

    Example:
        >>> class_labels(np.array([[0, 1], [1, 0]], dtype="float32")).tolist()
        [1, 0]
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2 and np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1):
        return y.argmax(axis=1)
    if y.ndim == 1 and np.issubdtype(y.dtype, np.number) and np.all(np.isfinite(y)):
        if np.all(y == np.round(y)):
            return y.astype(np.int64)
    raise ValueError(
        f"a stratified split needs class labels (integers or one-hot rows), got y of shape "
        f"{y.shape} and dtype {y.dtype}"
    )


def train_validation_split(
    x: np.ndarray,
    y: np.ndarray,
    fraction: float,
    stratify: bool = True,
    seed: int = 0,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Hold out ``fraction`` of the rows for validation, shuffled with ``seed``.

    With ``stratify`` each class gives ``round(fraction * its count)`` rows (at least one
    while it has two or more), so the validation set has every class in its share. Both parts
    come shuffled; the same arguments always give the same split.

    Returns:
        ``(x_train, y_train), (x_val, y_val)``.

    Raises:
        ValueError: ``fraction`` outside (0, 1), x and y of different lengths, a split that
            leaves no training or no validation row, or (with ``stratify``) no class labels.

    Example:
        >>> x, y = np.zeros((100, 3)), np.repeat(np.arange(4), 25)
        >>> (_, y_tr), (_, y_val) = train_validation_split(x, y, 0.2)
        >>> np.bincount(y_val).tolist(), len(y_tr)
        ([5, 5, 5, 5], 80)
    """
    x, y = np.asarray(x), np.asarray(y)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)):
        raise TypeError(f"the validation fraction must be a number, got {fraction!r}")
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"the validation fraction must lie in (0, 1), got {fraction}")
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise ValueError(f"x and y must have the same number of rows, got {x.shape} and {y.shape}")
    rng = np.random.default_rng(seed)
    if stratify:
        labels = class_labels(y)
        val_parts = []
        for c in np.unique(labels):
            rows = rng.permutation(np.flatnonzero(labels == c))
            take = int(round(fraction * len(rows)))
            if len(rows) > 1:  # each class keeps rows on both sides
                take = min(max(take, 1), len(rows) - 1)
            val_parts.append(rows[:take])
        val = np.concatenate(val_parts)
    else:
        val = rng.permutation(len(x))[: int(round(fraction * len(x)))]
    is_val = np.zeros(len(x), dtype=bool)
    is_val[val] = True
    if is_val.all() or not is_val.any():
        raise ValueError(
            f"a validation fraction of {fraction} of {len(x)} rows leaves no training or no "
            "validation rows"
        )
    train_rows = rng.permutation(np.flatnonzero(~is_val))
    val_rows = rng.permutation(np.flatnonzero(is_val))
    return (x[train_rows], y[train_rows]), (x[val_rows], y[val_rows])


def per_class_test_rows(y: np.ndarray, every: int = 5) -> np.ndarray:
    """DATA.md's split rule for the wine and digits sets: walk the rows in file order, count
    each class's rows separately (r = 0, 1, 2, ...), and a row whose count r satisfies
    ``r % every == every - 1`` is a test row. Returns the boolean test mask.

    Example:
        >>> per_class_test_rows(np.array([0, 0, 1, 0, 0, 0, 1, 1, 1, 1]), every=5).tolist()
        [False, False, False, False, False, True, False, False, False, True]
    """
    y = np.asarray(y)
    rank = np.empty(len(y), dtype=np.int64)
    seen: dict = {}
    for i, label in enumerate(y.tolist()):
        rank[i] = seen.get(label, 0)
        seen[label] = rank[i] + 1
    return rank % every == every - 1
