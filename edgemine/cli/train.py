"""``edgemine train``, ``edgemine evaluate`` and ``edgemine inspect``."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .. import zoo
from ._click import Command, check_writable

# losses whose targets are classes: the CLI's validation split is stratified by them
_CLASS_LOSSES = ("categorical_crossentropy", "sparse_categorical_crossentropy")


def _is_spec(model_arg: str) -> bool:
    return zoo.is_spec_name(model_arg) or model_arg.endswith(".json")


def _one_output(model, where: str) -> None:
    """The command line's datasets hold one target per sample: refuse a model of several
    outputs by name (the Python API trains those)."""
    if len(model.output_names) > 1:
        raise click.UsageError(
            f"{where}: the model has {len(model.output_names)} outputs "
            f"({', '.join(model.output_names)}); edgemine train/evaluate take models with one "
            "output (train several outputs with model.fit in Python)"
        )


def _loss_text(model) -> str:
    if isinstance(model.loss, list):  # several outputs
        pairs = zip(model.output_names, model.loss, model.loss_weights)
        return ", ".join(f"{name}: {loss.name} x {w:g}" for name, loss, w in pairs)
    return model.loss.name


def _load_any_model(model_arg: str):
    """A zoo name or spec (.json) gives a fresh model, a .edgemine or Keras file a trained one."""
    from ..keras import KERAS_SUFFIXES, load_keras
    from ..models import load_model

    if _is_spec(model_arg):
        spec = zoo.load_spec(model_arg)
        return zoo.build_model(spec), spec
    if not Path(model_arg).is_file():
        raise click.UsageError(
            f"{model_arg}: no such file, and not a zoo spec ({', '.join(zoo.names())})"
        )
    if model_arg.lower().endswith(KERAS_SUFFIXES):
        return load_keras(model_arg), None
    return load_model(model_arg), None


def _dataset_for(spec: dict | None, data: str | None, model) -> tuple[str, dict]:
    if data:  # a spec's data set options (num_words, maxlen) apply to a text CSV too
        return data, dict((spec or {}).get("dataset_args") or {})
    if spec and spec.get("dataset"):
        return spec["dataset"], dict(spec.get("dataset_args") or {})
    pre = (model.preprocessing if model is not None else None) or {}
    if pre.get("dataset"):  # a shipped set the model was trained on ('wine', 'digits')
        return pre["dataset"], {}
    if pre.get("kind") == "image" and pre.get("height") == 28:
        return "mnist", {}
    if pre.get("kind") == "text":
        return "tweets", {
            "num_words": pre.get("num_words", 10000),
            "maxlen": pre.get("maxlen", 100),
        }
    raise click.UsageError("no data set known for this model: pass --data (a name, file or folder)")


def _class_names_for(model, names: list[str]) -> list[str]:
    """One name per output: a model wider than its data's classes (the seed LSTM's 10-way
    softmax over 3 sentiments) names the outputs no label uses by their index."""
    width = model.output_shape[-1]
    if isinstance(width, int) and width > len(names):
        return list(names) + [str(i) for i in range(len(names), width)]
    return list(names)


def _outputs(model_arg: str, spec: dict | None, output: str | None, checkpoint: str | None):
    """Where the model goes, checked before any work: -o, else a spec's name in the current
    folder, else (a .edgemine file, e.g. a resumed checkpoint) that file itself, updated in
    place, never a file of the same name in the current folder."""
    if output is None:
        output = f"{Path(model_arg).stem}.edgemine" if spec is not None else model_arg
    if output.endswith(".json"):
        raise click.UsageError(f"-o {output}: must not be a .json file (that is a spec)")
    out = check_writable(output, "-o")
    if checkpoint is not None:
        check_writable(checkpoint, "--checkpoint")
    return out


def _epochs(model_arg, model, spec, epochs, resume) -> tuple[int, int]:
    """(initial_epoch, epochs): --epochs is the total to reach, as Keras's ``initial_epoch``."""
    if not resume:
        return 0, epochs if epochs is not None else ((spec or {}).get("fit") or {}).get("epochs", 1)
    if spec is not None:
        raise click.UsageError(f"--resume continues a .edgemine checkpoint; {model_arg} is a spec")
    if epochs is None:
        raise click.UsageError("--resume needs --epochs: the total number of epochs to reach")
    if model.epochs_trained >= epochs:
        raise click.UsageError(
            f"{model_arg} has already trained {model.epochs_trained} epoch(s): pass --epochs "
            f"above {model.epochs_trained} to continue it"
        )
    return model.epochs_trained, epochs


def _fit_arrays(d, model, one_hot, validation_split: float, seed: int | None, name: str):
    """Training targets and, for --validation-split, a stratified shuffled (seeded) split."""
    from ..datasets import train_validation_split

    if d.x_train is None:
        raise click.UsageError(f"{name}: holds no x_train/y_train to train on")
    x, y = d.x_train, zoo.targets_for(model, d.y_train, one_hot)
    if not validation_split:
        return x, y, None
    stratify = model.loss.name in _CLASS_LOSSES
    (x, y), val = train_validation_split(
        x, y, validation_split, stratify=stratify, seed=0 if seed is None else seed
    )
    return x, y, val


def _image_size(ctx, param, value):
    if value is None:
        return None
    h, sep, w = value.lower().partition("x")
    if not (sep and h.isdigit() and w.isdigit() and int(h) > 0 and int(w) > 0):
        raise click.BadParameter(f"{value!r}: expected HEIGHTxWIDTH, e.g. 28x28")
    return int(h), int(w)


def data_options(f):
    """The options that say how to read a user's data (CSV columns, image size)."""
    f = click.option(
        "--image-size",
        callback=_image_size,
        help="Resize a folder's images to HEIGHTxWIDTH (predict resizes the same way).",
    )(f)
    f = click.option("--text-column", help="A CSV of texts: the column holding the text.")(f)
    f = click.option(
        "--label-column", help="A CSV's label column (default: the last, or the model's)."
    )(f)
    return click.option(
        "--data",
        help="'mnist', 'tweets', 'wine', 'digits', a .npz (x_train, y_train, x_test, y_test), a "
        ".csv (a header, numeric features and a label column), or a folder of images with one "
        "subfolder per class (or train/ and test/ folders of them).",
    )(f)


def _load_data(name: str, args: dict, model, options: dict):
    """The data, prepared with a trained model's preprocessing and classes if there is one."""
    from ..preprocessing.inputs import InputError

    try:
        return zoo.load_data(
            name,
            args,
            pre=model.preprocessing if model is not None else None,
            class_names=model.class_names if model is not None else None,
            **options,
        )
    except InputError as e:
        raise click.UsageError(str(e)) from None


@click.command(cls=Command)
@click.argument("model_arg", metavar="MODEL")
@data_options
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs (default: the spec's).")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help="Batch size (default: the spec's, or the one the model file was trained with).",
)
@click.option(
    "--validation-split",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    help="Hold out this fraction of the training rows, stratified by class and shuffled "
    "with --seed (not Keras's last rows).",
)
@click.option("-o", "--output", type=click.Path(), help="Where to save the model.")
@click.option(
    "--checkpoint",
    type=click.Path(),
    help="Save a resumable checkpoint here after every epoch.",
)
@click.option("--resume", is_flag=True, help="MODEL is a checkpoint: continue from its epoch.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--seed", type=int, default=None, help="Random seed (weights, shuffling, dropout).")
@click.option("--verbose", type=click.IntRange(0, 2), default=1, show_default=True)
def train(
    model_arg,
    data,
    label_column,
    text_column,
    image_size,
    epochs,
    batch_size,
    validation_split,
    output,
    checkpoint,
    resume,
    device,
    seed,
    verbose,
):
    """Train MODEL (a zoo spec's name such as seed_cnn, a spec .json, or a .edgemine file).

    Without -o the model is saved as NAME.edgemine in the current folder (a spec) or back
    into MODEL itself (a .edgemine file, e.g. a resumed checkpoint).

    \b
    Example:
      edgemine train seed_cnn -o seed_cnn.edgemine --epochs 3
    """
    from ..callbacks import ModelCheckpoint
    from ..utils import set_random_seed

    data_options = {"label_column": label_column, "text_column": text_column}
    data_options["image_size"] = image_size
    if seed is not None:
        set_random_seed(seed)
    model, spec = (
        (None, zoo.load_spec(model_arg)) if _is_spec(model_arg) else _load_any_model(model_arg)
    )
    if model is not None and model.loss is None:
        raise click.UsageError(f"{model_arg}: the model has no compile settings to train with")
    if model is not None:
        _one_output(model, model_arg)
    out = _outputs(model_arg, spec, output, checkpoint)
    initial_epoch, epochs = _epochs(model_arg, model, spec, epochs, resume)
    name, args = _dataset_for(spec, data, model)
    d = _load_data(name, args, model, data_options)
    model = _ready_model(model_arg, model, spec, d, device)
    one_hot = spec.get("one_hot") if spec else None
    x, y, val = _fit_arrays(d, model, one_hot, validation_split, seed, name)
    if not model.built:
        model.build((None, *x.shape[1:]))
    if d.class_names and model.class_names is None:
        model.class_names = _class_names_for(model, d.class_names)
    batch_size = (
        batch_size
        or ((spec or {}).get("fit") or {}).get("batch_size")
        or model.fit_batch_size
        or 32
    )
    callbacks = [ModelCheckpoint(checkpoint, monitor="loss")] if checkpoint else []
    t0 = time.perf_counter()
    model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        verbose=verbose,
        validation_data=val,
        callbacks=callbacks,
        initial_epoch=initial_epoch,
    )
    fit_s = time.perf_counter() - t0
    lines = _results(model, d, len(x), val, one_hot, model.epochs_trained - initial_epoch, fit_s)
    model.save(out)
    lines.append(f"saved {out}")
    click.echo("\n".join(lines))


def _results(model, d, n: int, val, one_hot, ran: int, fit_s: float) -> list[str]:
    """What training did: speed, and the validation and test metrics."""
    lines = [
        f"trained {model.name} for {ran} epoch(s) in {fit_s:.1f} s "
        f"({n * ran / max(fit_s, 1e-9):,.0f} samples/s)"
    ]
    if val is not None:
        result = model.evaluate(*val, verbose=0, return_dict=True)
        lines.append(f"validation ({len(val[0])} rows) " + _metrics_text(result))
    if d.x_test is not None:
        result = model.evaluate(
            d.x_test, zoo.targets_for(model, d.y_test, one_hot), verbose=0, return_dict=True
        )
        lines.append("test " + _metrics_text(result))
    return lines


def _ready_model(model_arg: str, model, spec: dict | None, d, device: str):
    """The model to train: a spec's built now that the data gives the input shape and the
    number of classes, on ``device``, with the data's preprocessing if it has none."""
    if model is None:
        model = zoo.build_model(spec, num_classes=len(d.class_names) if d.class_names else None)
        if model.loss is None:
            raise click.UsageError(f"{model_arg}: the spec has no compile settings to train with")
    model.set_device(device)
    if d.preprocessing and model.preprocessing is None:
        model.preprocessing = d.preprocessing
    return model


def _metrics_text(result: dict) -> str:
    ordered = {"loss": result["loss"], **result} if "loss" in result else result  # loss first
    return ", ".join(f"{k} {v:.4f}" for k, v in ordered.items())


@click.command(cls=Command)
@click.argument(
    "model_path", metavar="MODEL.edgemine", type=click.Path(exists=True, dir_okay=False)
)
@data_options
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False),
    help="Write metrics.json, confusion_matrix.png, history.png, misclassified.png (image "
    "models) and report.html into this folder (needs matplotlib: edgemine[report]).",
)
def evaluate(model_path, data, label_column, text_column, image_size, batch_size, report_dir):
    """Report loss and metrics of a trained model on a test set, for a classifier with the
    per-class table (--report DIR: metrics.json, pictures and report.html).

    \b
    Example:
      edgemine evaluate seed_cnn.edgemine --report seed_cnn_report
    """
    from .. import report
    from ..models import load_model

    if report_dir is not None:
        report.require_matplotlib()  # before the work, not after it
    model = load_model(model_path)
    if model.loss is None:
        raise click.UsageError(f"{model_path}: the model was saved without compile settings")
    _one_output(model, model_path)
    name, args = _dataset_for(None, data, model)
    options = {"label_column": label_column, "text_column": text_column, "image_size": image_size}
    d = _load_data(name, args, model, options)
    x, y = (d.x_test, d.y_test) if d.x_test is not None else (d.x_train, d.y_train)
    result = model.evaluate(
        x, zoo.targets_for(model, y), batch_size=batch_size, verbose=0, return_dict=True
    )
    click.echo(f"{len(x)} samples: " + _metrics_text(result))
    if model.loss.name not in _CLASS_LOSSES + ("binary_crossentropy",):
        if report_dir is not None:
            raise click.UsageError(f"--report: {model.loss.name} is not a classifier's loss")
        return
    score = model.predict(x, batch_size=batch_size)
    click.echo(report.format_report(report.classification_report(y, score, model.class_names)))
    if report_dir is not None:
        images = _report_images(model, x)
        written = report.write_report(
            report_dir, y, score, model.class_names, model.history_log, images,
            title=f"{Path(model_path).name} on {name}",
        )  # fmt: skip
        click.echo(f"wrote {', '.join(written['files'])} to {report_dir}")


def _report_images(model, x):
    """x as (n, H, W, C) pictures when the model takes images, else None."""
    pre = model.preprocessing or {}
    if x.ndim != 4 or (pre and pre.get("kind") != "image"):
        return None
    nchw = str(pre.get("layout", "NHWC")).upper() == "NCHW"
    images = x.transpose(0, 2, 3, 1) if nchw else x
    return images if images.shape[-1] in (1, 3) else None


@click.command("inspect", cls=Command)
@click.argument("model_path", metavar="MODEL")
def inspect_cmd(model_path):
    """Show a model's layers, parameters and FLOPs (.edgemine, .onnx, Keras, a zoo name or .json)."""
    if model_path.endswith(".onnx"):
        if not Path(model_path).is_file():
            raise click.UsageError(f"{model_path}: no such file")
        from ..onnx import describe_onnx

        click.echo(describe_onnx(model_path))
        return
    model, _ = _load_any_model(model_path)
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    if model.loss is not None:
        lines.append(
            f"Compiled: optimizer={model.optimizer.name}, loss={_loss_text(model)}, "
            f"metrics={model.metric_names}"
        )
    if model.epochs_trained:
        lines.append(f"Trained epochs: {model.epochs_trained}")
    if model.preprocessing:
        lines.append(f"Preprocessing: {model.preprocessing.get('kind')}")
    click.echo("\n".join(lines))
