"""Model-zoo specs (``models/*.json``) and the data they train on.

A spec names the architecture (Keras-style layer configs), compile and fit settings and a data
set: a bundled one ('mnist', 'tweets') or a user's ``.npz``. The CLI's ``train`` and the README's
main job use these functions; nothing here downloads anything.

>>> spec = {"name": "tiny", "dataset": "mnist", "model": {"layers": [
...     {"class_name": "Flatten", "config": {"input_shape": [28, 28, 1]}},
...     {"class_name": "Dense", "config": {"units": 10, "activation": "softmax"}}]},
...     "compile": {"optimizer": "adam", "loss": "categorical_crossentropy"}}
>>> build_model(spec).output_shape
(10,)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .layers.base import LAYER_REGISTRY
from .models import Sequential
from .utils import to_categorical

MNIST_PREPROCESSING = {
    "kind": "image",
    "height": 28,
    "width": 28,
    "channels": 1,
    "scale": 1.0 / 255.0,
    "layout": "NHWC",
}


class SpecError(ValueError):
    """A zoo spec that is missing a field or names something unknown."""


@dataclass
class Data:
    """Prepared arrays, ready for ``fit`` / ``evaluate``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    preprocessing: dict | None = None
    class_names: list[str] | None = None


def load_spec(path: str | os.PathLike) -> dict:
    """Read and check a zoo spec JSON file."""
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("model"), dict):
        raise SpecError(f"{path}: a zoo spec needs a 'model' object with 'layers'")
    return spec


def build_model(spec: dict) -> Sequential:
    """The (compiled) Sequential model that a spec describes."""
    layers = spec["model"].get("layers")
    if not isinstance(layers, list) or not layers:
        raise SpecError("spec.model.layers must be a non-empty list")
    model = Sequential(name=str(spec.get("name", "sequential")))
    for i, entry in enumerate(layers):
        cls = LAYER_REGISTRY.get(entry.get("class_name")) if isinstance(entry, dict) else None
        if cls is None:
            raise SpecError(f"layer {i}: unknown layer type {entry!r}")
        try:
            model.add(cls(**dict(entry.get("config") or {})))
        except (TypeError, ValueError) as e:
            raise SpecError(f"layer {i} ({entry['class_name']}): {e}") from None
    compile_args = dict(spec.get("compile") or {})
    if compile_args:
        model.compile(**compile_args)
    return model


def _prepare_mnist() -> Data:
    from .datasets import mnist

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    scale = np.float32(MNIST_PREPROCESSING["scale"])
    return Data(
        x_train.reshape(-1, 28, 28, 1).astype(np.float32) * scale,
        y_train.astype(np.int64),
        x_test.reshape(-1, 28, 28, 1).astype(np.float32) * scale,
        y_test.astype(np.int64),
        dict(MNIST_PREPROCESSING),
        [str(d) for d in range(10)],
    )


def _prepare_tweets(num_words: int = 10000, maxlen: int = 100) -> Data:
    from .datasets import tweets

    (x_train, y_train), (x_test, y_test) = tweets.load_data(num_words=num_words, maxlen=maxlen)
    pre = {
        "kind": "text",
        "maxlen": maxlen,
        "num_words": num_words,
        "lower": True,
        "filters": '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n',
        "split": " ",
        "padding": "pre",
        "truncating": "pre",
    }
    return Data(
        x_train,
        y_train.astype(np.int64),
        x_test,
        y_test.astype(np.int64),
        pre,
        ["negative", "neutral", "positive"],
    )


def _load_npz(path: str | os.PathLike) -> Data:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except Exception as e:
        raise SpecError(f"{path}: not a readable .npz file ({e})") from None
    if "x_train" in arrays and "y_train" in arrays:
        return Data(
            arrays["x_train"], arrays["y_train"], arrays.get("x_test"), arrays.get("y_test")
        )
    if "x" in arrays and "y" in arrays:
        return Data(arrays["x"], arrays["y"], None, None)
    raise SpecError(f"{path}: needs arrays x_train/y_train (and x_test/y_test) or x/y")


def load_data(dataset: str, dataset_args: dict | None = None) -> Data:
    """Bundled 'mnist' / 'tweets' (prepared as the seed programs do) or a user's .npz file."""
    if dataset == "mnist":
        return _prepare_mnist()
    if dataset == "tweets":
        return _prepare_tweets(**(dataset_args or {}))
    if str(dataset).endswith(".npz"):
        return _load_npz(dataset)
    raise SpecError(f"unknown data set {dataset!r}: use 'mnist', 'tweets' or a path to a .npz file")


def targets_for(model: Sequential, y: np.ndarray, one_hot: int | None = None) -> np.ndarray:
    """Shape labels for the model's loss: one-hot for categorical cross-entropy."""
    if y is None:
        return None
    if model.loss is not None and model.loss.name == "categorical_crossentropy" and y.ndim == 1:
        return to_categorical(y, one_hot or model.output_shape[-1])
    return y
