"""``edgemine export``, ``edgemine predict`` and ``edgemine bench``.

Examples::

    edgemine export mnist.edgemine -o mnist.onnx --opset 17
    edgemine predict mnist.onnx digit.png            # or .npy / .npz / .csv / a text file
    edgemine predict tweets.edgemine tweets.txt -o predictions.csv
    edgemine bench mnist.edgemine --threads 2

Inputs for ``predict``: ``.npy`` / ``.npz`` arrays (integer images are scaled by the model's
preprocessing ``scale``, 1/255 by default), ``.csv`` with one numeric sample per row (a header
row is skipped), image files (PNG, JPEG, BMP, ...), and for text models any other file: one text
per line, tokenised with the model's stored vocabulary. Images and texts are prepared by
``edgemine.preprocessing.inputs``, the module that bundles carry too.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
import numpy as np

from ..preprocessing import inputs
from ._click import Command

_EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)
_LARGE = 2048  # inputs with more samples than this get a progress bar


# --------------------------------------------------------------------------------------------
# models: .edgemine (the engine) or .onnx (onnxruntime) behind one interface
# --------------------------------------------------------------------------------------------


class Predictor:
    """A .edgemine model (engine) or a .onnx model (onnxruntime) with one interface.

    Example:
        >>> Predictor("mnist.onnx").sample_shape  # doctest: +SKIP
        (28, 28, 1)
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        path = Path(path)
        self.path = path
        suffix = path.suffix.lower()
        if suffix == ".onnx":
            from ..runtime import Session

            self.session = Session(path, threads=threads)
            if len(self.session.inputs) != 1:
                raise ValueError(
                    f"{path.name}: the model has {len(self.session.inputs)} inputs; prediction "
                    "from files takes one (use edgemine.runtime.Session(...).predict([...]))"
                )
            self.model = None
            self.sample_shape = tuple(self.session.input_shape[1:])
            self.int_input = bool(np.issubdtype(self.session.input_dtype, np.integer))
            self.preprocessing = self.session.preprocessing or {}
            self.class_names = self.session.class_names
            self.vocab_size = self.session.vocab_size
        elif suffix == ".edgemine":
            from ..saving import load_model

            self.session = None
            self.model = load_model(path, compile=False)
            if len(self.model.inputs) != 1:
                raise ValueError(
                    f"{path.name}: the model has {len(self.model.inputs)} inputs; prediction "
                    "from files takes one (use model.predict([...]) in Python)"
                )
            self.sample_shape = tuple(self.model.input_shape)
            reader = self.model.input_reader()
            self.int_input = reader.input_dtype == "int"
            self.preprocessing = self.model.preprocessing or {}
            self.class_names = self.model.class_names
            self.vocab_size = reader.input_dim if self.int_input else None
        else:
            raise ValueError(f"{path.name}: MODEL must be a .edgemine or .onnx file")
        self.nchw = str(self.preprocessing.get("layout", "NHWC")).upper() == "NCHW"

    def predict(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        if self.session is not None:
            return self.session.predict(x, batch_size=batch_size)
        return self.model.predict(x, batch_size=batch_size)

    # ----- turning files into model inputs -----
    def _image_hw_c(self) -> tuple[int, int, int]:
        if self.int_input or len(self.sample_shape) != 3 or None in self.sample_shape:
            raise ValueError(
                f"{self.path.name} does not take images: its input is "
                f"(batch, {', '.join(map(str, self.sample_shape))})"
            )
        if self.nchw:
            c, h, w = self.sample_shape
        else:
            h, w, c = self.sample_shape
        return h, w, c

    def _scale(self) -> float:
        return float(self.preprocessing.get("scale", 1.0 / 255.0))

    def _image_preprocessing(self) -> dict:
        h, w, c = self._image_hw_c()
        return {**self.preprocessing, "height": h, "width": w, "channels": c}

    def from_array(self, arr: np.ndarray, name: str) -> np.ndarray:
        """Token ids checked against the vocabulary; images prepared as a bundle prepares
        them (see ``edgemine.preprocessing.inputs``); other arrays passed on as they are."""
        arr = np.asarray(arr)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ValueError(f"{name} holds {arr.dtype} data, not numbers")
        if self.int_input:
            maxlen = self.sample_shape[0] if len(self.sample_shape) == 1 else None
            return inputs.token_ids(arr, maxlen, self.vocab_size, name)
        if len(self.sample_shape) == 3 and None not in self.sample_shape:
            return inputs.images_from_array(
                arr, self._image_preprocessing(), self.sample_shape, name
            )
        return arr

    def from_image(self, path: Path) -> np.ndarray:
        return inputs.image_file_input(path, self._image_preprocessing())

    def from_csv(self, path: Path) -> np.ndarray:
        if self.preprocessing.get("kind") == "table":  # named columns, in any order
            header, rows = inputs.read_csv(path)
            return inputs.table_input(header, rows, self.preprocessing, path.name)
        rows = []
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            for i, row in enumerate(csv.reader(f)):
                cells = [c.strip() for c in row if c.strip()]
                if not cells:
                    continue
                try:
                    rows.append([float(c) for c in cells])
                except ValueError:
                    if i == 0 and not rows:
                        continue  # a header
                    raise ValueError(f"{path.name}, line {i + 1}: not numeric") from None
        if not rows:
            raise ValueError(f"{path.name}: no numeric rows")
        if len({len(r) for r in rows}) != 1:
            raise ValueError(f"{path.name}: rows have different lengths")
        arr = np.array(rows, dtype=np.float64)
        size = math.prod(d for d in self.sample_shape if d is not None)
        if None in self.sample_shape or arr.shape[1] != size:
            if None in self.sample_shape and len(self.sample_shape) == 1:
                size = arr.shape[1]
            else:
                raise ValueError(
                    f"{path.name} has {arr.shape[1]} values per row; the model takes {size} "
                    f"(a flattened {'x'.join(map(str, self.sample_shape))} sample)"
                )
        shape = tuple(size if d is None else d for d in self.sample_shape)
        arr = arr.reshape(len(arr), *shape)
        whole = bool(np.all(arr == np.round(arr)))
        if self.int_input:
            if not whole:
                raise ValueError(f"{path.name}: token ids must be whole numbers")
            return arr.astype(np.int64)
        if whole and arr.max() > 1:  # raw 0..255 pixels, like an integer .npy
            arr = arr * self._scale()
        return arr.astype(np.float32)

    def from_text(self, path: Path) -> tuple[np.ndarray, list[str]]:
        if not self.int_input:
            raise ValueError(
                f"{path.name}: {self.path.name} takes numeric inputs, not text "
                "(give a .npy, .npz, .csv or image file)"
            )
        pre = dict(self.preprocessing)
        pre.setdefault("maxlen", self.sample_shape[0] if self.sample_shape else None)
        try:
            encoder = inputs.TextEncoder(pre)
        except inputs.InputError as e:
            raise ValueError(f"{self.path.name}: {e}") from None
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ValueError(f"{path.name}: cannot read it ({e.strerror})") from None
        if b"\x00" in data[:65536]:
            raise ValueError(
                f"{path.name} is not a text file; inputs are .npy, .npz, .csv, images or text "
                "(one text per line)"
            )
        lines = data.decode("utf-8", errors="replace").splitlines()
        keep = [(i, line) for i, line in enumerate(lines, 1) if line.strip()]
        if not keep:
            raise ValueError(f"{path.name}: no text lines")
        x = np.concatenate([encoder.encode(line, f"{path.name}:{i}") for i, line in keep])
        return x, [f"{path.name}:{i}" for i, _ in keep]

    def load_inputs(self, paths: list[Path]) -> tuple[np.ndarray, list[str]]:
        """All inputs as one batch, with a source label per sample."""
        parts, names = [], []
        for path in paths:
            suffix = path.suffix.lower()
            if suffix == ".npy":
                try:
                    arr = np.load(path, allow_pickle=False)
                except Exception as e:
                    raise ValueError(f"{path.name}: not a readable .npy file ({e})") from None
                x = self.from_array(arr, path.name)
            elif suffix == ".npz":
                x = self.from_array(_npz_array(path), path.name)
            elif suffix == ".csv":
                x = self.from_csv(path)
            elif inputs.is_image_file(path):
                x = self.from_image(path)
            else:
                x, labels = self.from_text(path)
                parts.append(x)
                names.extend(labels)
                continue
            parts.append(x)
            names.extend(
                [path.name] if len(x) == 1 else [f"{path.name}[{i}]" for i in range(len(x))]
            )
        if len({p.shape[1:] for p in parts}) > 1:
            raise ValueError("the inputs have different sample shapes")
        x = np.concatenate(parts) if len(parts) > 1 else parts[0]
        return x, names


def _npz_array(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.files)
            for key in ("x", "x_test", "inputs", "input"):
                if key in keys:
                    return npz[key]
            if len(keys) == 1:
                return npz[keys[0]]
    except Exception as e:
        raise ValueError(f"{path.name}: not a readable .npz file ({e})") from None
    raise ValueError(f"{path.name} holds {keys}; name the input array 'x'")


# --------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------


def summarize(y: np.ndarray, class_names: list | None) -> list[dict[str, Any]]:
    """Class index, label and probability per sample of a classifier's output.

    Example:
        >>> summarize(np.array([[0.1, 0.9]]), ["cat", "dog"])[0]["label"]
        'dog'
    """
    rows = []
    flat = y.reshape(len(y), -1)
    for p in flat:
        if flat.shape[1] == 1:
            k, prob = int(p[0] >= 0.5), float(p[0])
        else:
            k = int(np.argmax(p))
            prob = float(p[k])
        label = str(class_names[k]) if class_names and k < len(class_names) else str(k)
        rows.append({"class": k, "label": label, "probability": prob})
    return rows


def _write_output(out: Path, y: np.ndarray, names: list[str], rows: list[dict], classes) -> None:
    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    flat = y.reshape(len(y), -1)
    if suffix == ".npy":
        np.save(out, y)
    elif suffix == ".json":
        data = [
            {"input": n, **r, "probabilities": [float(v) for v in p]}
            for n, r, p in zip(names, rows, flat)
        ]
        out.write_text(json.dumps(data, indent=1) + "\n")
    elif suffix == ".csv":
        heads = (
            [str(c) for c in classes]
            if classes and len(classes) == flat.shape[1]
            else [str(i) for i in range(flat.shape[1])]
        )
        with open(out, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["input", "class", "label", "probability", *[f"p_{h}" for h in heads]])
            for n, r, p in zip(names, rows, flat):
                w.writerow(
                    [n, r["class"], r["label"], f"{r['probability']:.6g}", *[f"{v:.6g}" for v in p]]
                )
    else:
        raise ValueError(f"{out.name}: the output must be .csv, .npy or .json")


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------


@click.command("export", cls=Command)
@click.argument("model_path", metavar="MODEL.edgemine", type=_EXISTING)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The .onnx file to write (default: MODEL with .onnx).",
)
@click.option(
    "--opset",
    type=int,
    default=None,
    help="Target ONNX opset (default 17; 13 up to the newest onnxruntime runs).",
)
@click.option("--nchw", is_flag=True, help="Take NCHW images (no Transpose at the input).")
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Compare onnxruntime with the engine on random inputs.",
)
def export_cmd(
    model_path: Path, output: Path | None, opset: int | None, nchw: bool, verify: bool
) -> None:
    """Export a .edgemine model to ONNX."""
    from ..onnx import DEFAULT_OPSET, export
    from ..saving import load_model

    if model_path.suffix.lower() != ".edgemine":
        raise ValueError(f"{model_path.name}: export takes a .edgemine model")
    model = load_model(model_path, compile=False)
    output = output or model_path.with_suffix(".onnx")
    if output.suffix.lower() != ".onnx":
        raise ValueError(f"{output.name}: the output file must end in .onnx")
    path = export(model, output, opset=opset or DEFAULT_OPSET, nchw_input=nchw)
    from ..runtime import Session

    sess = Session(path, threads=1, providers=["CPUExecutionProvider"])
    msg = (
        f"wrote {path} ({path.stat().st_size / 1024:.1f} KB, opset {opset or DEFAULT_OPSET}): "
        f"{', '.join(t.describe() for t in sess.inputs)} -> "
        f"{', '.join(t.name for t in sess.outputs)}"
    )
    if verify:
        x = _random_input(model, 4, np.random.default_rng(0))
        ref = model.predict(x)
        got = sess.predict(x.transpose(0, 3, 1, 2) if nchw else x)
        pairs = zip(ref, got) if isinstance(ref, list) else [(ref, got)]
        diff = max(float(np.abs(r - g).max()) for r, g in pairs)
        msg += f"; max |onnxruntime - engine| = {diff:.2e} on 4 random samples"
        if not diff <= 1e-4:
            raise ValueError(f"exported graph disagrees with the engine (max abs diff {diff:.3g})")
    click.echo(msg)


@click.command("predict", cls=Command)
@click.argument("model_path", metavar="MODEL", type=_EXISTING)
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True, type=_EXISTING)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Save predictions to .csv, .npy or .json instead of printing them (with --dask also "
    "a folder: a .npy file per chunk and index.json).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Threads: onnxruntime's, or the engine's Numba/OpenBLAS (default: physical cores; with --dask: 1 per task).",
)
@click.option(
    "--dask",
    "dask_address",
    metavar="ADDRESS|local[:N]",
    help="Score on a Dask cluster: a scheduler's address, or local:N worker processes here "
    "(pip install 'edgemine[dask]').",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=8192,
    show_default=True,
    help="Rows per Dask task (rounded up to whole batches).",
)
@click.option(
    "--labels-from",
    type=_EXISTING,
    help="A .npy/.npz of the inputs' true labels: print the per-class report after them.",
)
def predict_cmd(
    model_path: Path,
    inputs: tuple[Path, ...],
    output: Path | None,
    batch_size: int,
    threads: int | None,
    labels_from: Path | None,
    dask_address: str | None,
    chunk_size: int,
) -> None:
    """Classify INPUT files (.npy, .npz, .csv, images, or text: one per line) with MODEL
    (.edgemine or .onnx)."""
    from ..progress import ProgressBar

    if dask_address is not None:
        if labels_from is not None:
            raise click.UsageError(
                "--labels-from works without --dask (the report needs all outputs)"
            )
        from .scale import dask_predict

        return dask_predict(
            model_path, inputs, output, batch_size, threads, dask_address, chunk_size
        )
    if output is not None and output.suffix.lower() not in (".csv", ".npy", ".json"):
        raise ValueError(f"{output.name}: the output must be .csv, .npy or .json")
    from .. import report

    labels = None if labels_from is None else report.read_labels(str(labels_from))
    pred = Predictor(model_path, threads=threads)
    if threads is not None:
        from ..runtime import limit_threads

        limit_threads(threads)  # the engine's Numba and OpenBLAS threads too
    x, names = pred.load_inputs(list(inputs))
    # whole batches per chunk: every batch is then the one model.predict(x, batch_size) makes
    chunk = batch_size * math.ceil(1024 / batch_size)
    steps = math.ceil(len(x) / chunk)
    bar = ProgressBar(steps, 1, stream=sys.stderr) if len(x) > _LARGE else None
    outs = []
    for step in range(steps):
        outs.append(np.asarray(pred.predict(x[step * chunk : (step + 1) * chunk], batch_size)))
        if bar is not None:
            bar.update(step + 1, {})
    if bar is not None:
        bar.finish({})
    y = np.concatenate(outs)
    show_predictions(y, names, pred.class_names, output)
    if labels is not None:
        rep = report.classification_report(labels, y.reshape(len(y), -1), pred.class_names)
        click.echo(report.format_report(rep))


def show_predictions(y: np.ndarray, names: list[str], classes, output: Path | None) -> None:
    """Write predictions to ``output`` (.csv, .npy, .json) or print one line per sample."""
    rows = summarize(y, classes)
    if output is not None:
        _write_output(output, y, names, rows, classes)
        click.echo(f"wrote {len(rows)} predictions to {output}", err=True)
    else:
        width = min(max(len(n) for n in names), 40)
        for name, row in zip(names, rows):
            click.echo(f"{name:<{width}}  {row['label']}  {row['probability']:.4f}")


def _random_input(model: Any, n: int, rng: np.random.Generator):
    """Random inputs for ``model``: token ids below its vocabulary, else floats in [0, 1) (a
    list of arrays for a model with several inputs)."""
    arrays = []
    for i, tensor in enumerate(model.inputs):
        shape = tuple(8 if d is None else d for d in tensor.shape[1:])
        reader = model.input_reader(i)
        if reader.input_dtype == "int":
            arrays.append(rng.integers(0, int(reader.input_dim), size=(n, *shape)).astype(np.int64))
        else:
            arrays.append(rng.random((n, *shape), dtype=np.float32))
    return arrays[0] if len(arrays) == 1 else arrays


def _random_session_input(sess: Any, n: int, rng: np.random.Generator) -> Any:
    """Random inputs for an ONNX session (dynamic axes: 8): an array, or a list of them for a
    graph with several inputs."""
    arrays = []
    for spec in sess.inputs:
        shape = (n, *(8 if d is None else d for d in spec.shape[1:]))
        if np.issubdtype(spec.dtype, np.integer):
            arrays.append(rng.integers(0, sess.vocab_sizes.get(spec.name) or 2, size=shape))
        else:
            arrays.append(rng.random(shape))
    return arrays if len(arrays) > 1 else arrays[0]


def bench_rows(
    model_path: Path, threads: int, batch: int, min_time: float
) -> list[tuple[str, float, float]]:
    """(runner, batch-1 latency in ms, batch-``batch`` samples/s), medians, for the engine (a
    .edgemine model) and onnxruntime on its export (or on the .onnx file)."""
    from ..runtime import Session, time_calls

    rng = np.random.default_rng(0)
    rows = []
    if model_path.suffix.lower() == ".edgemine":
        import numba

        from ..onnx import export
        from ..saving import load_model

        model = load_model(model_path, compile=False)
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        x1, xb = _random_input(model, 1, rng), _random_input(model, batch, rng)
        lat = time_calls(lambda: model.predict_on_batch(x1), min_time=min_time)
        thr = time_calls(lambda: model.predict_on_batch(xb), min_time=min_time, min_runs=3)
        rows.append(("edgemine engine", 1e3 * float(np.median(lat)), batch / float(np.median(thr))))
        with tempfile.TemporaryDirectory() as tmp:
            sess = Session(export(model, Path(tmp) / "model.onnx"), threads=threads)
    elif model_path.suffix.lower() == ".onnx":
        sess = Session(model_path, threads=threads)
        x1 = xb = None
    else:
        raise ValueError(f"{model_path.name}: MODEL must be a .edgemine or .onnx file")
    if x1 is None:
        x1, xb = _random_session_input(sess, 1, rng), _random_session_input(sess, batch, rng)
    x1, xb = sess.check_inputs(x1), sess.check_inputs(xb)
    lat = time_calls(lambda: sess.run(x1), min_time=min_time)
    thr = time_calls(lambda: sess.run(xb), min_time=min_time, min_runs=3)
    rows.append(("onnxruntime", 1e3 * float(np.median(lat)), batch / float(np.median(thr))))
    return rows


@click.command("bench", cls=Command)
@click.argument("model_path", metavar="MODEL", type=_EXISTING)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Threads for both runners (default: physical cores).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=2),
    default=256,
    show_default=True,
    help="Batch size of the throughput run.",
)
@click.option(
    "--min-time",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_default=True,
    help="Seconds of timed runs per measurement (medians are reported).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def bench_cmd(
    model_path: Path, threads: int | None, batch_size: int, min_time: float, as_json: bool
) -> None:
    """Latency at batch 1 and throughput at a large batch: the engine vs onnxruntime."""
    from ..runtime import physical_cores

    threads = threads or physical_cores()
    rows = bench_rows(model_path, threads, batch_size, min_time)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "model": str(model_path),
                    "threads": threads,
                    "batch_size": batch_size,
                    "results": [
                        {"runner": r, "latency_ms": lat, "samples_per_s": thr}
                        for r, lat, thr in rows
                    ],
                }
            )
        )
        return
    click.echo(f"{model_path.name}, {threads} thread(s), medians")
    click.echo(f"{'runner':<18}{'batch 1 (ms)':>14}{f'batch {batch_size} (samples/s)':>26}")
    for runner, lat, thr in rows:
        click.echo(f"{runner:<18}{lat:>14.3f}{thr:>26,.0f}")
    if len(rows) == 2:
        (_, l0, t0), (_, l1, t1) = rows
        click.echo(f"{'onnxruntime gain':<18}{l0 / l1:>13.1f}x{t1 / t0:>25.1f}x")


__all__ = ["Predictor", "bench_cmd", "export_cmd", "predict_cmd", "summarize"]
