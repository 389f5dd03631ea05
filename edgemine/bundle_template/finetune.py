#!/usr/bin/env python3
"""Fine-tune this bundle's model on the device with edgemine's own engine (Numba kernels).

Needs edgemine (pip install -r requirements-finetune.txt); run.py does not. New labelled
examples come as:
  DIR/               one subfolder per class, named as in labels.json, holding PNG images
                     (text models: .txt files, one text per line)
  FILE.npz           arrays x and y: x as run.py reads a .npy (uint8 images, model-ready
                     floats, or token ids); y class indices, class names or one-hot rows

The tuned model replaces model.edgemine (atomically; --output writes elsewhere), and with
--export-onnx also model.onnx, so that run.py predicts with it. Numba keeps its compiled
kernels in .numba_cache/ beside this file (or the user's cache folder if this one is
read-only; NUMBA_CACHE_DIR overrides both): only the first run compiles.

Examples:
  python finetune.py new_images/ --epochs 3 --export-onnx
  python finetune.py examples.npz --lr 1e-4 --batch-size 16 --json
"""

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EXIT_INPUT = 2


def numba_cache_dir():
    """A writable folder for Numba's compiled kernels, so that a second run does not compile:
    $NUMBA_CACHE_DIR if set, else .numba_cache in the bundle, else the user's cache folder."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    user_cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for path in (
        os.path.join(HERE, ".numba_cache"),
        os.path.join(user_cache, "edgemine", "numba"),
    ):
        try:
            os.makedirs(path, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):  # writable, not only present
                pass
        except OSError:
            continue
        return path
    return None


# Numba reads NUMBA_CACHE_DIR when it is first imported: set it before edgemine is imported.
CACHE_DIR = numba_cache_dir()
if CACHE_DIR:
    os.environ["NUMBA_CACHE_DIR"] = CACHE_DIR

sys.path.insert(0, HERE)
import run as runner  # noqa: E402  (run.py ships beside this file: its readers and checks)

np = runner.np
BundleError = runner.BundleError
one_line = runner.one_line


# --------------------------------------------------------------------------------------------
# labels
# --------------------------------------------------------------------------------------------


def class_index(name, labels, source):
    if name not in labels:
        shown = ", ".join(labels[:20]) + (", ..." if len(labels) > 20 else "")
        raise BundleError(
            f"{source}: class {name!r} is not one of this bundle's classes (labels.json: {shown})"
        )
    return labels.index(name)


def label_indices(y, labels, source):
    """Class indices (n,) from indices, class names or one-hot rows."""
    n_classes = len(labels)
    if y.dtype.kind in "US":
        return np.array([class_index(str(v), labels, source) for v in y.reshape(-1)])
    if y.dtype.kind not in "biuf":
        raise BundleError(f"{source}: y has dtype {y.dtype}; expected class indices or names")
    if not np.all(np.isfinite(y)):
        raise BundleError(f"{source}: y holds NaN or infinite values")
    if y.ndim == 2 and y.shape[1] == n_classes and n_classes > 1:
        hot = (y == 1).sum(axis=1) == 1
        if not (np.all(hot) and np.all((y == 0) | (y == 1))):
            raise BundleError(f"{source}: y rows must be one-hot (a single 1 per row)")
        return y.argmax(axis=1)
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1:
        raise BundleError(
            f"{source}: y has shape {y.shape}; expected (n,) class indices or (n, "
            f"{n_classes}) one-hot rows"
        )
    if not np.all(y == np.round(y)) or y.min(initial=0) < 0 or y.max(initial=0) >= n_classes:
        raise BundleError(f"{source}: y must hold class indices 0..{n_classes - 1}")
    return y.astype(np.int64)


# --------------------------------------------------------------------------------------------
# reading examples (through run.py, so that they are prepared exactly as run.py prepares them)
# --------------------------------------------------------------------------------------------


def folder_examples(root, spec, labels, truncate):
    kind = spec.get("kind")
    if kind not in ("image", "text"):
        raise BundleError("a folder of examples needs an image or text model; use an .npz")
    ext = "image" if kind == "image" else ".txt"
    encoder = runner.inputs.TextEncoder(spec) if kind == "text" else None
    classes = sorted(
        d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and d[0] != "."
    )
    if not classes:
        raise BundleError(f"{root} has no class folders: put each example in {root}/<class>/")
    xs, ys, skipped = [], [], 0
    for name in classes:
        k = class_index(name, labels, f"{root}/{name}")
        folder = os.path.join(root, name)
        for fname in sorted(os.listdir(folder)):
            path = os.path.join(folder, fname)
            source = f"{name}/{fname}"
            if fname[0] == "." or not os.path.isfile(path):
                continue
            wanted = runner.inputs.is_image_file(fname) if encoder is None else fname.endswith(ext)
            if not wanted:
                skipped += 1
                continue
            if encoder is None:
                img = runner.inputs.read_image(path)
                xs.append(runner.inputs.image_input(img, spec, source))
                ys.append(k)
                continue
            with open(path, encoding="utf-8", errors="replace") as f:
                for i, line in enumerate(f, 1):
                    if line.strip():
                        xs.append(encoder.encode(line.rstrip("\r\n"), f"{source}:{i}", truncate))
                        ys.append(k)
    if not xs:
        raise BundleError(
            f"no {ext} examples in the class folders of {root} ({', '.join(classes)})"
        )
    if skipped:
        sys.stderr.write(f"note: skipped {skipped} file(s) that are not {ext}\n")
    return np.concatenate(xs), np.array(ys, dtype=np.int64)


def npz_examples(path, spec, labels):
    name = os.path.basename(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as exc:
        raise BundleError(f"{name} is not a readable .npz file ({one_line(exc)})") from None
    missing = [key for key in ("x", "y") if key not in arrays]
    if missing:
        raise BundleError(f"{name} has no array {missing[0]!r} (it holds: {sorted(arrays)})")
    x, y = arrays["x"], arrays["y"]
    kind, source = spec.get("kind"), f"{name}:x"
    if kind == "image":
        shape = tuple(spec["input"]["shape"][1:])
        items = runner.rows(runner.inputs.images_from_array(x, spec, shape, source), source)
    elif kind == "text":
        vocab = spec.get("vocab_size") or spec.get("num_words")
        items = runner.rows(runner.inputs.token_ids(x, spec["maxlen"], vocab, source), source)
    else:
        items = runner.npy_raw(x, spec, source)
    if not items:
        raise BundleError(f"{name}: x holds no examples")
    y = label_indices(y, labels, f"{name}:y")
    if len(y) != len(items):
        raise BundleError(f"{name}: x holds {len(items)} examples but y has {len(y)} labels")
    for source, arr in items:
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise BundleError(f"{source} holds NaN or infinite values")
    return np.concatenate([arr for _, arr in items]), y


def read_examples(path, spec, labels, truncate):
    if os.path.isdir(path):
        return folder_examples(path.rstrip("/") or "/", spec, labels, truncate)
    if not os.path.isfile(path):
        raise BundleError(f"examples not found: {path}")
    if path.lower().endswith(".npz"):
        return npz_examples(path, spec, labels)
    if path.lower().endswith(".csv") and spec.get("kind") == "table":
        return csv_examples(path, spec, labels)
    raise BundleError(f"{path}: expected a folder of class subfolders or an .npz with x and y")


def csv_examples(path, spec, labels):
    """A table model's CSV: the model's feature columns (any order) and its label column."""
    name, label = os.path.basename(path), spec.get("label_column")
    header, table = runner.inputs.read_csv(path)
    if label not in header:
        raise BundleError(f"{name} has no label column {label!r}: fine-tuning needs labels")
    at = header.index(label)
    y = np.array([class_index(cells[at], labels, f"{name}:{line}") for line, cells in table])
    return runner.inputs.table_input(header, table, spec, name), y


# --------------------------------------------------------------------------------------------
# training with edgemine
# --------------------------------------------------------------------------------------------


def import_engine():
    try:
        import edgemine  # noqa: F401  (after NUMBA_CACHE_DIR is set)
        from edgemine.models import load_model
    except ImportError as exc:
        raise BundleError(
            f"fine-tuning needs edgemine ({one_line(exc)}): pip install -r requirements-finetune.txt"
        ) from None
    return load_model


def compile_model(model, args):
    from edgemine import losses, optimizers

    if model.output_shape is None or len(model.output_shape) != 1 or model.output_shape[0] < 2:
        raise BundleError(
            f"finetune.py trains classifiers with one output per class; this model outputs "
            f"{model.output_shape}"
        )
    loss = model.loss
    if loss is None or loss.name not in (
        "categorical_crossentropy",
        "sparse_categorical_crossentropy",
    ):
        # a softmax output gives probabilities; anything else is taken as logits
        softmax = getattr(model.layers[-1], "activation", None) == "softmax"
        loss = losses.Loss("categorical_crossentropy", from_logits=not softmax)
    kind = {"adam": optimizers.Adam, "sgd": optimizers.SGD, "rmsprop": optimizers.RMSprop}
    model.compile(
        optimizer=kind[args.optimizer](learning_rate=args.lr), loss=loss, metrics=["accuracy"]
    )
    return loss


def targets(loss, y, n_classes):
    if loss.name == "sparse_categorical_crossentropy":
        return y.astype(np.float32)
    return np.eye(n_classes, dtype=np.float32)[y]


def accuracy(model, x, y, batch_size):
    return float((model.predict(x, batch_size=batch_size).argmax(axis=1) == y).mean())


def fine_tune(model, x, y, args, labels):
    from edgemine.utils import set_random_seed

    loss = compile_model(model, args)
    set_random_seed(args.seed)
    model.rng = None  # shuffle from --seed, not from the generator saved in the model file
    before = accuracy(model, x, y, args.batch_size)
    t0 = time.perf_counter()
    history = model.fit(
        x,
        targets(loss, y, len(labels)),
        epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=0 if args.json else 2,
    )
    seconds = time.perf_counter() - t0
    return {
        "examples": int(len(x)),
        "per_class": {labels[k]: int(v) for k, v in zip(*np.unique(y, return_counts=True))},
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "learning_rate": args.lr,
        "seed": args.seed,
        "loss": [float(v) for v in history.history["loss"]],
        "accuracy_before": before,
        "accuracy_after": accuracy(model, x, y, args.batch_size),
        "fit_seconds": round(seconds, 3),
    }


# --------------------------------------------------------------------------------------------
# saving and re-exporting
# --------------------------------------------------------------------------------------------


def write_atomic(path, data):
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=HERE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def is_nchw(spec):
    return spec.get("kind") == "image" and str(spec.get("layout", "NHWC")).upper() == "NCHW"


def engine_layout(x, spec):
    """run.py's inputs in the engine's layout: edgemine's models take NHWC images."""
    return x.transpose(0, 2, 3, 1) if is_nchw(spec) else x


def export_onnx(model, spec, x):
    """Replace model.onnx with the tuned model, after onnxruntime agrees with the engine."""
    import hashlib

    from edgemine.onnx import export

    opset = int(spec.get("bundle", {}).get("opset") or 17)
    tmp = os.path.join(HERE, f".model.onnx.{os.getpid()}.new")
    try:
        export(model, tmp, opset=opset, nchw_input=is_nchw(spec))
        session, _ = runner.open_session(tmp, "generic", "CPUExecutionProvider", 0)
        name = runner.check_model_matches(session, spec)
        probe = x[:64]
        engine = model.predict(engine_layout(probe, spec))
        diff = float(np.abs(runner.predict(session, name, probe) - engine).max())
        if not diff <= 1e-4:
            raise BundleError(f"the re-exported model differs from the engine by {diff:.3g}")
        with open(tmp, "rb") as f:
            data = f.read()
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    write_atomic(os.path.join(HERE, "model.onnx"), data)
    bundle = spec.setdefault("bundle", {})
    bundle["model_sha256"] = hashlib.sha256(data).hexdigest()
    bundle["model_bytes"] = len(data)
    text = json.dumps(spec, indent=1, ensure_ascii=False) + "\n"
    write_atomic(os.path.join(HERE, "preprocessing.json"), text.encode("utf-8"))
    return diff


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
        return value

    return parse


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Fine-tune this bundle's model.edgemine with edgemine's engine.",
        epilog="Examples: a folder with one subfolder per class (PNG images; .txt for text "
        "models) or an .npz with x and y.",
    )
    p.add_argument("examples", metavar="EXAMPLES", help="class folders, or an .npz with x/y")
    p.add_argument("--epochs", type=positive(int), default=1, help="passes over the examples")
    p.add_argument("--batch-size", type=positive(int), default=32, help="examples per step")
    p.add_argument("--lr", type=positive(float), default=1e-3, help="learning rate")
    p.add_argument("--optimizer", choices=("adam", "sgd", "rmsprop"), default="adam")
    p.add_argument("--seed", type=int, default=0, help="seed for the shuffling (default 0)")
    p.add_argument("--output", help="where to save the tuned model (default: model.edgemine)")
    p.add_argument("--export-onnx", action="store_true", help="also replace model.onnx")
    p.add_argument("--truncate", action="store_true", help="cut texts longer than maxlen")
    p.add_argument("--json", action="store_true", help="print one JSON report")
    args = p.parse_args(argv)
    if args.seed < 0:
        p.error("--seed must be 0 or more")
    return args


def main(argv=None):
    args = parse_args(argv)
    spec = runner.load_json("preprocessing.json")
    labels = [str(v) for v in runner.load_json("labels.json")]
    source = os.path.join(HERE, "model.edgemine")
    if not os.path.isfile(source):
        raise BundleError(f"model.edgemine is missing from {HERE}: make the bundle with --engine")
    x, y = read_examples(args.examples, spec, labels, args.truncate)
    load_model = import_engine()
    model = load_model(source)
    if model.output_shape is not None and model.output_shape[-1] != len(labels):
        raise BundleError(
            f"model.edgemine has {model.output_shape[-1]} outputs; labels.json {len(labels)}"
        )
    if not args.json:
        print(f"fine-tuning on {len(x)} examples; Numba cache: {CACHE_DIR or 'none'}")
    report = fine_tune(model, engine_layout(x, spec), y, args, labels)
    output = os.path.abspath(args.output or source)
    try:
        model.save(output)  # atomic
    except OSError as exc:
        raise BundleError(
            f"cannot write {output} ({exc.strerror or exc}): --output saves elsewhere"
        ) from None
    report.update({"saved": output, "numba_cache": CACHE_DIR})
    if args.export_onnx:
        report["onnx_max_diff"] = export_onnx(model, spec, x)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(
        f"accuracy on these examples: {report['accuracy_before']:.3f} before, "
        f"{report['accuracy_after']:.3f} after ({report['fit_seconds']:.1f} s of training)"
    )
    print(f"saved {output}")
    if args.export_onnx:
        print(f"re-exported model.onnx (onnxruntime vs engine: {report['onnx_max_diff']:.2g})")
    return 0


if __name__ == "__main__":
    runner.run_command(main)
