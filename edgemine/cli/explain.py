"""``edgemine explain``: why the model decided, for image files or lines of text."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from ..preprocessing import inputs
from ._click import Command

_EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)


def _image_preprocessing(model) -> dict:
    pre = dict(model.preprocessing or {})
    shape = tuple(model.input_shape)
    if pre.get("kind") not in (None, "image") or len(shape) != 3 or None in shape:
        raise click.UsageError(f"the model takes inputs of shape {shape}, not images")
    nchw = str(pre.get("layout", "NHWC")).upper() == "NCHW"
    if nchw:
        c, h, w = shape
    else:
        h, w, c = shape
    return {"scale": 1.0 / 255.0, **pre, "height": h, "width": w, "channels": c}


def _class_name(model, k: int) -> str:
    names = model.class_names
    return str(names[k]) if names and k < len(names) else str(k)


def _line(source: str, s: dict, method: str, target: str) -> str:
    what = f"IG, {s['steps']} steps" if method == "ig" else "gradient x input"
    text = (
        f"{source}: class {target} (output {s['score']:.4f}, baseline {s['baseline_score']:.4f}); "
        f"{what}, {s['baseline']} baseline: attributions sum to {s['attribution_sum']:.4f}"
    )
    if s["completeness_error"] is not None:
        text += f" (completeness error {100 * s['completeness_error']:.3f}%)"
    return text


def _explain_images(model, paths, out: Path, options: dict) -> list[dict]:
    from ..explain import explain
    from ..explain.render import heatmap_png, summary
    from ..report import require_matplotlib
    from ..saving import atomic_write_bytes

    require_matplotlib()
    pre = _image_preprocessing(model)
    nchw = str(pre.get("layout", "NHWC")).upper() == "NCHW"
    results = []
    for path in paths:
        x = inputs.image_file_input(path, pre)
        e = explain(model, x, **options)
        image = x[0].transpose(1, 2, 0) if nchw else x[0]  # as the model saw it (resized)
        image = np.clip(image / (255.0 * float(pre["scale"])), 0.0, 1.0)
        if nchw:
            e.attributions = e.attributions.transpose(1, 2, 0)
        s = summary(e, _class_name(model, e.target))
        title = _line(path.name, s, e.method, s["class_name"]).replace("); ", ")\n", 1)
        png = out / f"{path.stem}.png"
        atomic_write_bytes(png, heatmap_png(image, e, title))
        np.save(out / f"{path.stem}_attributions.npy", e.attributions)
        click.echo(_line(path.name, s, e.method, s["class_name"]) + f" -> {png}")
        results.append({"input": path.name, "picture": png.name, **s})
    return results


def _explain_tables(model, paths, out: Path, options: dict) -> list[dict]:
    """A table model (CSV rows): the zero baseline is the training rows' mean (the features
    are standardised), so each feature's attribution is measured from an average row."""
    from ..explain import explain
    from ..explain.render import features_png, summary
    from ..report import require_matplotlib
    from ..saving import atomic_write_bytes

    require_matplotlib()
    pre = model.preprocessing
    columns = list(pre["columns"])
    results = []
    for path in paths:
        header, rows = inputs.read_csv(path)
        x = inputs.table_input(header, rows, pre, path.name)
        raw = inputs.table_values(header, rows, columns, path.name)
        for (line, _), xi, values in zip(rows, x, raw):
            source = f"{path.name}:{line}"
            e = explain(model, xi, **options)
            s = summary(e, _class_name(model, e.target))
            title = _line(source, s, e.method, s["class_name"]).replace("); ", ")\n", 1)
            png = out / f"{path.stem}_{line}.png"
            atomic_write_bytes(png, features_png(columns, values, e, title))
            click.echo(_line(source, s, e.method, s["class_name"]) + f" -> {png}")
            features = [
                {"column": c, "value": float(v), "attribution": float(a)}
                for c, v, a in zip(columns, values, e.attributions)
            ]
            results.append({"input": source, "picture": png.name, **s, "features": features})
    return results


def _explain_texts(model, paths, out: Path, options: dict) -> list[dict]:
    from ..explain import explain
    from ..explain.render import summary, token_rows, tokens_html
    from ..saving import atomic_write_bytes

    pre = dict(model.preprocessing or {})
    pre.setdefault("maxlen", model.input_shape[0])
    encoder = inputs.TextEncoder(pre)
    words = {i: w for w, i in encoder.word_index.items()}
    results = []
    for path in paths:
        items = []
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for n, text in ((n, t) for n, t in enumerate(lines, 1) if t.strip()):
            source = f"{path.name}:{n}"
            e = explain(model, encoder.encode(text, source), **options)
            s = summary(e, _class_name(model, e.target))
            rows = token_rows(e, words)
            items.append((f"{source} ({s['class_name']}, {s['score']:.3f}): {text[:200]}", rows))
            click.echo(_line(source, s, e.method, s["class_name"]))
            results.append({"input": source, "text": text, **s, "tokens": rows})
        page = out / f"{path.stem}.html"
        atomic_write_bytes(page, tokens_html(items, f"Why {path.name}").encode("utf-8"))
        click.echo(f"wrote {page}")
    return results


@click.command("explain", cls=Command)
@click.argument("model_path", metavar="MODEL.edgemine", type=_EXISTING)
@click.argument("paths", metavar="INPUT...", nargs=-1, required=True, type=_EXISTING)
@click.option(
    "-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path)
)
@click.option(
    "--method",
    type=click.Choice(["ig", "gxi"]),
    default="ig",
    show_default=True,
    help="Integrated gradients or gradient x input.",
)
@click.option("--steps", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--baseline", type=click.Choice(["zero", "blur"]), default="zero", show_default=True)
@click.option("--target", type=click.IntRange(min=0), help="Output to explain (default: the predicted class).")  # fmt: skip
def explain_cmd(model_path, paths, out_dir, method, steps, baseline, target):
    """Explain MODEL's decisions on INPUT files: image files (a heat-map PNG and the
    attributions as .npy each) or, for text models, text files of one text per line (an HTML
    strip per file, each token's attribution in explanations.json); a table model's CSV rows
    get a bar chart each.

    \b
    Example:
      edgemine explain seed_cnn.edgemine digit.png -o why --steps 128
    """
    from ..layers.embedding import Embedding
    from ..saving import atomic_write_bytes, load_model

    model = load_model(model_path, compile=False)
    options = {"method": method, "steps": steps, "baseline": baseline, "target": target}
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(model.input_reader(), Embedding):
        results = _explain_texts(model, paths, out_dir, options)
    elif (model.preprocessing or {}).get("kind") == "table":
        results = _explain_tables(model, paths, out_dir, options)
    else:
        results = _explain_images(model, paths, out_dir, options)
    summary_path = out_dir / "explanations.json"
    atomic_write_bytes(summary_path, (json.dumps(results, indent=1) + "\n").encode())
    click.echo(f"wrote {summary_path}")
