"""``edgemine train``, ``edgemine evaluate`` and ``edgemine inspect``."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .. import zoo
from ._click import Command


def _load_any_model(path: str):
    """A zoo spec (.json) gives a fresh model, a .edgemine or Keras file a trained one."""
    from ..keras import KERAS_SUFFIXES, load_keras
    from ..models import load_model

    if path.lower().endswith(KERAS_SUFFIXES):
        return load_keras(path), None
    if path.endswith(".json"):
        spec = zoo.load_spec(path)
        return zoo.build_model(spec), spec
    return load_model(path), None


def _dataset_for(spec: dict | None, data: str | None, model) -> tuple[str, dict]:
    if data:
        return data, {}
    if spec and spec.get("dataset"):
        return spec["dataset"], dict(spec.get("dataset_args") or {})
    pre = model.preprocessing or {}
    if pre.get("kind") == "image" and pre.get("height") == 28:
        return "mnist", {}
    if pre.get("kind") == "text":
        return "tweets", {
            "num_words": pre.get("num_words", 10000),
            "maxlen": pre.get("maxlen", 100),
        }
    raise click.UsageError("no data set known for this model: pass --data mnist|tweets|FILE.npz")


@click.command(cls=Command)
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", help="'mnist', 'tweets' or a .npz file (x_train, y_train, x_test, y_test).")
@click.option("--epochs", type=click.IntRange(min=0), help="Epochs (default: the spec's).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Batch size (default: the spec's).")
@click.option("--validation-split", type=click.FloatRange(0, 1, max_open=True), default=0.0)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Where to save the model.")
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    help="Save a resumable checkpoint here after every epoch.",
)
@click.option("--resume", is_flag=True, help="MODEL is a checkpoint: continue from its epoch.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--seed", type=int, default=None, help="Random seed (weights, shuffling, dropout).")
@click.option("--verbose", type=click.IntRange(0, 2), default=1, show_default=True)
def train(
    model_path,
    data,
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
    """Train MODEL (a zoo spec from models/*.json, or a .edgemine file) and save it.

    \b
    Example:
      edgemine train models/seed_cnn.json -o seed_cnn.edgemine --epochs 3
    """
    from ..callbacks import ModelCheckpoint
    from ..utils import set_random_seed

    if seed is not None:
        set_random_seed(seed)
    model, spec = _load_any_model(model_path)
    if model.loss is None:
        raise click.UsageError(f"{model_path}: the model has no compile settings to train with")
    model.set_device(device)
    name, args = _dataset_for(spec, data, model)
    d = zoo.load_data(name, args)
    if d.preprocessing and model.preprocessing is None:
        model.preprocessing = d.preprocessing
    if d.class_names and model.class_names is None:
        model.class_names = d.class_names
    one_hot = spec.get("one_hot") if spec else None
    y_train = zoo.targets_for(model, d.y_train, one_hot)
    fit_args = dict((spec or {}).get("fit") or {})
    epochs = epochs if epochs is not None else fit_args.get("epochs", 1)
    batch_size = batch_size or fit_args.get("batch_size", 32)
    initial_epoch = model.epochs_trained if resume else 0
    if resume and initial_epoch >= epochs:
        click.echo(f"{model_path} already has {initial_epoch} epochs (asked for {epochs}).")
    callbacks = [ModelCheckpoint(checkpoint, monitor="loss")] if checkpoint else []
    t0 = time.perf_counter()
    model.fit(
        d.x_train,
        y_train,
        epochs=epochs,
        batch_size=batch_size,
        verbose=verbose,
        validation_split=validation_split,
        callbacks=callbacks,
        initial_epoch=initial_epoch,
    )
    fit_s = time.perf_counter() - t0
    lines = [
        f"trained {model.name} for {epochs - initial_epoch} epoch(s) in {fit_s:.1f} s "
        f"({len(d.x_train) * max(epochs - initial_epoch, 0) / max(fit_s, 1e-9):,.0f} samples/s)"
    ]
    if d.x_test is not None and d.y_test is not None:
        result = model.evaluate(
            d.x_test, zoo.targets_for(model, d.y_test, one_hot), verbose=0, return_dict=True
        )
        lines.append("test " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))
    out = output or str(Path(model_path).with_suffix(".edgemine").name)
    if out.endswith(".json"):
        raise click.UsageError("-o must not be a .json file")
    model.save(out)
    lines.append(f"saved {out}")
    click.echo("\n".join(lines))


@click.command(cls=Command)
@click.argument(
    "model_path", metavar="MODEL.edgemine", type=click.Path(exists=True, dir_okay=False)
)
@click.option("--data", help="'mnist', 'tweets' or a .npz file (default: the model's data set).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
def evaluate(model_path, data, batch_size):
    """Report loss and metrics of a trained model on a test set."""
    from ..models import load_model

    model = load_model(model_path)
    if model.loss is None:
        raise click.UsageError(f"{model_path}: the model was saved without compile settings")
    name, args = _dataset_for(None, data, model)
    d = zoo.load_data(name, args)
    x, y = (d.x_test, d.y_test) if d.x_test is not None else (d.x_train, d.y_train)
    result = model.evaluate(
        x, zoo.targets_for(model, y), batch_size=batch_size, verbose=0, return_dict=True
    )
    click.echo(f"{len(x)} samples: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))


@click.command("inspect", cls=Command)
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
def inspect_cmd(model_path):
    """Show a model's layers, parameters and FLOPs (.edgemine, zoo .json, .onnx or Keras)."""
    if model_path.endswith(".onnx"):
        from ..onnx import describe_onnx

        click.echo(describe_onnx(model_path))
        return
    model, _ = _load_any_model(model_path)
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    if model.loss is not None:
        lines.append(
            f"Compiled: optimizer={model.optimizer.name}, loss={model.loss.name}, "
            f"metrics={model.metric_names}"
        )
    if model.epochs_trained:
        lines.append(f"Trained epochs: {model.epochs_trained}")
    if model.preprocessing:
        lines.append(f"Preprocessing: {model.preprocessing.get('kind')}")
    click.echo("\n".join(lines))
