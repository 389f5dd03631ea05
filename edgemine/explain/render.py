"""Explanations as pictures and pages: a heat-map over an image (PNG, matplotlib), and for
text each token's attribution as JSON and as a coloured HTML strip (no matplotlib needed)."""

from __future__ import annotations

import html

import numpy as np

from ..report.plots import figure, png_bytes
from .attributions import Explanation


def summary(e: Explanation, class_name: str) -> dict:
    """The numbers of an explanation that the JSON and the console show."""
    return {
        "method": e.method,
        "baseline": e.baseline,
        "steps": e.steps,
        "class": e.target,
        "class_name": class_name,
        "score": e.score,
        "baseline_score": e.baseline_score,
        "attribution_sum": float(e.attributions.sum()),
        "completeness_error": e.completeness_error if e.method == "ig" else None,
    }


def heatmap_png(image: np.ndarray, e: Explanation, title: str) -> bytes:
    """Three panels: the image, the attributions (summed over channels; red raises the
    explained class's output, blue lowers it) and the attributions over the dimmed image."""
    attr = e.attributions.sum(-1)
    limit = float(np.abs(attr).max()) or 1.0
    grey = image[..., 0] if image.shape[-1] == 1 else image.mean(-1)
    fig = figure(10.5, 3.9)
    axes = fig.subplots(1, 3)
    shown = image[..., 0] if image.shape[-1] == 1 else image
    axes[0].imshow(shown, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("input")
    heat = axes[1].imshow(attr, cmap="bwr", vmin=-limit, vmax=limit)
    axes[1].set_title(f"attributions ({'integrated gradients' if e.method == 'ig' else 'gradient x input'})")  # fmt: skip
    fig.colorbar(heat, ax=axes[1], shrink=0.8)
    axes[2].imshow(grey, cmap="gray", vmin=0, vmax=1, alpha=0.35)  # dimmed: the colours lead
    axes[2].imshow(attr, cmap="bwr", vmin=-limit, vmax=limit, alpha=np.abs(attr) / limit)
    axes[2].set_title("overlay")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    return png_bytes(fig)


def features_png(columns: list[str], values: np.ndarray, e: Explanation, title: str) -> bytes:
    """One bar per feature (red raised the explained class's output, blue lowered it), each
    labelled with the row's value."""
    attr = e.attributions.reshape(-1)
    order = np.argsort(np.abs(attr))  # the largest at the top
    fig = figure(7.5, 1.2 + 0.3 * len(columns))
    ax = fig.add_subplot()
    colours = ["#dc2828" if attr[i] > 0 else "#285adc" for i in order]
    ax.barh(np.arange(len(order)), attr[order], color=colours)
    ax.set_yticks(np.arange(len(order)), [f"{columns[i]} = {values[i]:.4g}" for i in order])
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("attribution")
    fig.suptitle(title, fontsize=9)
    return png_bytes(fig)


def token_rows(e: Explanation, words: dict[int, str]) -> list[dict]:
    """The non-padding tokens in order with their ids and attributions."""
    return [
        {"token": words.get(int(i), f"<{int(i)}>"), "id": int(i), "attribution": float(a)}
        for i, a in zip(e.token_ids, e.attributions)
        if i != 0
    ]


def _span(token: str, value: float, limit: float) -> str:
    alpha = min(abs(value) / limit, 1.0) if limit else 0.0
    rgb = "220,40,40" if value > 0 else "40,90,220"
    return (
        f'<span style="background:rgba({rgb},{alpha:.3f})" title="{value:+.4g}">'
        f"{html.escape(token)}</span>"
    )


def tokens_html(items: list[tuple[str, list[dict]]], title: str) -> str:
    """One strip per text: each token on a background whose colour says the sign (red raises
    the explained class's output, blue lowers it) and whose strength says the size."""
    parts = [
        "<!DOCTYPE html>",
        f'<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        "<style>body{font-family:sans-serif;margin:2em}p.strip{font-size:1.2em;line-height:2}"
        "span{padding:2px 4px;margin:1px;border-radius:3px}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p>Red raises the explained class's output, blue lowers it; hover for the value. "
        "Only the words in the model's vocabulary are shown (the model sees no others).</p>",
    ]
    for heading, rows in items:
        limit = max((abs(r["attribution"]) for r in rows), default=0.0)
        strip = " ".join(_span(r["token"], r["attribution"], limit) for r in rows)
        parts += [f"<h3>{html.escape(heading)}</h3>", f'<p class="strip">{strip or "(no known words)"}</p>']  # fmt: skip
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
