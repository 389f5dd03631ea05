"""Classification metrics with numpy: confusion matrix, per-class precision / recall / F1,
macro and weighted averages, accuracy and ROC AUC (rank-based, ties averaged), with the
conventions of scikit-learn's ``classification_report``, ``confusion_matrix`` and
``roc_auc_score`` (the tests check them against scikit-learn to 1e-6).

>>> report = classification_report([0, 1, 1, 0], [[0.9, 0.1], [0.4, 0.6], [0.7, 0.3], [0.2, 0.8]])
>>> report["accuracy"], report["confusion_matrix"], report["roc_auc"]
(0.5, [[1, 1], [1, 1]], 0.5)
"""

from __future__ import annotations

import numpy as np


class ReportError(ValueError):
    """Labels or scores that cannot make a classification report; the message names why."""


def labels_as_classes(y, n: int, what: str = "labels") -> np.ndarray:
    """Integer class labels (n,) from labels, one-hot rows or a (n, 1) column.

    >>> labels_as_classes([[0, 1], [1, 0]], 2)
    array([1, 0])
    """
    arr = np.asarray(y)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ReportError(f"{what} must be numbers, got dtype {arr.dtype}")
    if arr.ndim == 2 and arr.shape[1] > 1:
        arr = arr.argmax(1)  # one-hot (or soft) targets
    arr = arr.reshape(len(arr), -1) if arr.ndim else arr
    if arr.ndim != 2 or arr.shape[1] != 1:
        raise ReportError(f"{what} must be one class per sample, got shape {np.shape(y)}")
    arr = arr[:, 0]
    if len(arr) != n:
        raise ReportError(f"{what} hold {len(arr)} labels for {n} samples")
    if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)) or (arr < 0).any():
        raise ReportError(f"{what} must be whole class numbers >= 0")
    return arr.astype(np.int64)


def scores_and_predictions(y_score) -> tuple[np.ndarray, np.ndarray, int]:
    """(class scores (n, k), predicted classes, k) from a model's outputs: softmax rows
    (argmax) or one sigmoid per sample (class 1 at >= 0.5, as ``edgemine predict`` says)."""
    score = np.asarray(y_score, dtype=np.float64)
    if score.ndim == 1:
        score = score[:, None]
    if score.ndim != 2 or len(score) == 0:
        raise ReportError(f"scores must be (samples, classes), got shape {np.shape(y_score)}")
    if not np.isfinite(score).all():
        raise ReportError("the model's outputs hold NaN or infinite values")
    if score.shape[1] == 1:
        score = np.concatenate([1.0 - score, score], axis=1)
        return score, (score[:, 1] >= 0.5).astype(np.int64), 2
    return score, score.argmax(1), score.shape[1]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Counts: rows are true classes, columns predicted ones, both in the order of ``labels``.

    >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), np.array([0, 1]))
    array([[1, 0],
           [1, 1]])
    """
    index = np.full(int(max(labels.max(), y_true.max(), y_pred.max())) + 1, -1)
    index[labels] = np.arange(len(labels))
    t, p = index[y_true], index[y_pred]
    keep = (t >= 0) & (p >= 0)
    k = len(labels)
    return np.bincount(t[keep] * k + p[keep], minlength=k * k).reshape(k, k)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den is 0 (scikit-learn's ``zero_division=0``)."""
    return np.divide(num, den, out=np.zeros(len(num)), where=den > 0)


def _averages(precision, recall, f1, support) -> tuple[dict, dict]:
    total = int(support.sum())
    macro = {
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
        "support": total,
    }
    w = support / total if total else np.zeros(len(support))
    weighted = {
        "precision": float(precision @ w),
        "recall": float(recall @ w),
        "f1": float(f1 @ w),
        "support": total,
    }
    return macro, weighted


def rank_auc(positive: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve from ranks (Mann-Whitney U): tied scores share their mean rank
    and so count one half. None when ``positive`` is all true or all false.

    >>> rank_auc(np.array([True, False, True, False]), np.array([0.9, 0.9, 0.8, 0.1]))
    0.625
    """
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    sorted_score = score[order]
    # ties: each run of equal scores gets the mean of the ranks it spans (1-based)
    starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
    ends = np.r_[starts[1:], len(score)]
    mean_rank = (starts + 1 + ends) / 2.0
    ranks = np.empty(len(score))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float | None:
    """Binary (two classes: the score of class 1) or one-vs-rest macro ROC AUC over the
    classes that occur in ``y_true`` (a class without positives has no curve); None when
    fewer than two classes occur."""
    if score.shape[1] == 2:
        return rank_auc(y_true == 1, score[:, 1])
    aucs = [rank_auc(y_true == c, score[:, c]) for c in range(score.shape[1])]
    aucs = [a for a in aucs if a is not None]
    return float(np.mean(aucs)) if len(aucs) > 1 else None


def classification_report(
    y_true, y_score, class_names: list[str] | None = None, labels=None
) -> dict:
    """The evaluation report of a classifier: labels ``y_true`` (class numbers or one-hot) and
    the model's outputs ``y_score`` (softmax rows, or one sigmoid per sample).

    The classes reported are ``labels`` if given, else (as scikit-learn) those that occur in
    the labels or the predictions, in class order. Precision, recall and F1 of a class with
    nothing to divide by are 0 (scikit-learn's ``zero_division=0``). Returns ``class_names``,
    ``accuracy``, ``confusion_matrix`` (rows true, columns predicted), ``per_class``
    (``precision``, ``recall``, ``f1``, ``support`` by class name), ``macro_avg``,
    ``weighted_avg``, ``roc_auc`` (see :func:`roc_auc`) and ``n_samples``.

    >>> r = classification_report([1, 1, 0], [0.8, 0.3, 0.1], class_names=["no", "yes"])
    >>> r["per_class"]["yes"]
    {'precision': 1.0, 'recall': 0.5, 'f1': 0.6666666666666666, 'support': 2}
    """
    score, y_pred, k = scores_and_predictions(y_score)
    y_true = labels_as_classes(y_true, len(score))
    if y_true.max() >= k:
        raise ReportError(f"labels hold class {int(y_true.max())}, but the model has {k} classes")
    if labels is None:
        labels = np.union1d(y_true, y_pred)
    labels = np.asarray(labels, dtype=np.int64)
    names = [str(c) for c in range(k)] if class_names is None else [str(c) for c in class_names]
    if len(names) < k:
        raise ReportError(f"{len(names)} class names for a model of {k} classes")
    cm = confusion_matrix(y_true, y_pred, labels)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(1)
    predicted = cm.sum(0)
    precision, recall = _ratio(tp, predicted), _ratio(tp, support)
    f1 = _ratio(2 * tp, (predicted + support).astype(np.float64))
    macro, weighted = _averages(precision, recall, f1, support)
    shown = [names[c] for c in labels]
    return {
        "class_names": shown,
        "accuracy": float((y_true == y_pred).mean()),
        "confusion_matrix": cm.tolist(),
        "per_class": {
            name: {
                "precision": float(p),
                "recall": float(r),
                "f1": float(f),
                "support": int(s),
            }
            for name, p, r, f, s in zip(shown, precision, recall, f1, support)
        },
        "macro_avg": macro,
        "weighted_avg": weighted,
        "roc_auc": roc_auc(y_true, score),
        "n_samples": len(y_true),
    }


def format_report(report: dict, digits: int = 4) -> str:
    """The per-class table as scikit-learn's ``classification_report`` prints it, then ROC AUC.

    >>> print(format_report(classification_report([0, 1], [[0.9, 0.1], [0.2, 0.8]]), digits=2))
                  precision    recall  f1-score   support
    <BLANKLINE>
               0       1.00      1.00      1.00         1
               1       1.00      1.00      1.00         1
    <BLANKLINE>
        accuracy                           1.00         2
       macro avg       1.00      1.00      1.00         2
    weighted avg       1.00      1.00      1.00         2
    <BLANKLINE>
         roc auc                           1.00
    """
    rows = [(name, report["per_class"][name]) for name in report["class_names"]]
    width = max([len("weighted avg"), *(len(name) for name, _ in rows)])
    head = "{:>{w}s} " + " {:>9}" * 4
    row = "{:>{w}s} " + " {:>9.{d}f}" * 3 + " {:>9}"
    lines = [head.format("", "precision", "recall", "f1-score", "support", w=width), ""]
    for name, m in rows:
        lines.append(row.format(name, m["precision"], m["recall"], m["f1"], m["support"], w=width, d=digits))  # fmt: skip
    lines.append("")
    acc = "{:>{w}s} " + " {:>9}" * 2 + " {:>9.{d}f} {:>9}"
    lines.append(acc.format("accuracy", "", "", report["accuracy"], report["n_samples"], w=width, d=digits))  # fmt: skip
    for title, key in (("macro avg", "macro_avg"), ("weighted avg", "weighted_avg")):
        m = report[key]
        lines.append(row.format(title, m["precision"], m["recall"], m["f1"], m["support"], w=width, d=digits))  # fmt: skip
    auc = report["roc_auc"]
    value = "n/a (one class)" if auc is None else f"{auc:.{digits}f}"
    lines += ["", ("{:>{w}s} " + " {:>9}" * 2 + " {:>9}").format("roc auc", "", "", value, w=width)]
    return "\n".join(line.rstrip() for line in lines)


def read_labels(path: str) -> np.ndarray:
    """Labels from a ``.npy`` file, or a ``.npz`` file's ``y``, ``y_test``, ``labels`` or only
    array (class numbers or one-hot rows; checked by :func:`classification_report`)."""
    name = str(path)
    try:
        with open(path, "rb") as f:
            data = np.load(f, allow_pickle=False)
            if isinstance(data, np.ndarray):
                return data
            with data:
                keys = list(data.files)
                for key in ("y", "y_test", "labels", *(keys if len(keys) == 1 else [])):
                    if key in keys:
                        return data[key]
    except Exception as e:
        raise ReportError(f"{name}: not a readable .npy/.npz file of labels ({e})") from None
    raise ReportError(f"{name} holds {keys}; name the labels array 'y'")
