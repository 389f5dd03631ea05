"""The report's pictures as PNG bytes, drawn with matplotlib's object API (no pyplot: nothing
global changes, no display is needed). matplotlib is optional: ``edgemine[report]``."""

from __future__ import annotations

import io

import numpy as np

MISSING_MATPLOTLIB = (
    "the report's pictures need matplotlib, which is not installed: "
    "pip install 'edgemine[report]' (or pip install matplotlib)"
)


def figure(width: float, height: float):
    """A matplotlib Figure, or an ImportError with the one-line install hint."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(MISSING_MATPLOTLIB) from None
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def confusion_matrix_png(cm: list[list[int]], class_names: list[str]) -> bytes:
    """Counts in each cell, coloured by the share of the true class's row (rows true, columns
    predicted)."""
    cm = np.asarray(cm)
    k = len(class_names)
    side = min(3.0 + 0.45 * k, 14.0)
    fig = figure(side + 1.0, side)
    ax = fig.add_subplot()
    rows = cm.sum(1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    if k <= 30:  # counts stay readable up to about 30 classes
        for (i, j), count in np.ndenumerate(cm):
            colour = "white" if share[i, j] > 0.5 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=colour, fontsize=8)
    ticks = np.arange(k)
    ax.set_xticks(ticks, class_names, rotation=90 if max(map(len, class_names)) > 3 else 0)
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"Confusion matrix ({int(cm.sum())} samples)")
    return png_bytes(fig)


def history_png(history: dict[str, list[float | None]]) -> bytes:
    """One panel per log (loss, accuracy, ...): training and validation per epoch."""
    bases = [k for k in history if not k.startswith("val_")]
    bases += [k[4:] for k in history if k.startswith("val_") and k[4:] not in history]
    from matplotlib.ticker import MaxNLocator

    n = len(next(iter(history.values())))
    fig = figure(4.5 * len(bases), 3.6)
    axes = fig.subplots(1, len(bases), squeeze=False)[0]
    for ax, base in zip(axes, bases):
        for key, label, style in ((base, "training", "o-"), (f"val_{base}", "validation", "s--")):
            values = history.get(key)
            if values is None:
                continue
            y = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            epochs = np.arange(1, len(y) + 1)
            ax.plot(epochs, y, style, label=label, markersize=3 if len(y) > 30 else 5)
        ax.set_xlabel("epoch")
        ax.set_title(base)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0.5, n + 0.5)
    fig.suptitle(f"Training history ({n} epoch{'s' if n > 1 else ''} stored in the model file)")
    return png_bytes(fig)


def misclassified_png(
    images: np.ndarray, true: list[str], predicted: list[str], p_true: np.ndarray
) -> bytes:
    """A grid of images (n, H, W, C) in [0, 1] with their true and predicted classes and the
    probability that the model gave the true class."""
    n = len(images)
    cols = min(n, 6)
    rows = -(-n // cols)
    fig = figure(1.9 * cols, 2.2 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, t, p, pt in zip(axes.ravel(), images, true, predicted, p_true):
        grey = img.shape[-1] == 1
        ax.imshow(img[..., 0] if grey else img, cmap="gray" if grey else None, vmin=0, vmax=1)
        ax.set_title(f"true {t:.12}\npred {p:.12}\np(true) {pt:.3f}", fontsize=8)
    fig.suptitle("Misclassified: the least probable true classes first")
    return png_bytes(fig)
