"""Model-zoo specs and the data they train on.

A spec names the architecture (Keras-style layer configs), compile and fit settings and a data
set: a bundled one ('mnist', 'tweets') or a user's ``.npz``. The zoo's own specs ship inside the
package (``edgemine/zoo/*.json``) and are addressed by name (``load_spec("seed_cnn")``); a path
to a ``.json`` file loads a user's spec. The CLI's ``train`` and the README's main job use these
functions; nothing here downloads anything or reads the repository's folders.

>>> names()
['seed_cnn', 'seed_lstm']
>>> build_model(load_spec("seed_cnn")).count_params()
93322

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
from importlib import resources
from pathlib import Path

import numpy as np

from ..layers.base import LAYER_REGISTRY
from ..models import Sequential
from ..utils import to_categorical

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
    """Prepared arrays, ready for ``fit`` / ``evaluate`` (a user's file may lack either split)."""

    x_train: np.ndarray | None
    y_train: np.ndarray | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    preprocessing: dict | None = None
    class_names: list[str] | None = None


def names() -> list[str]:
    """The names of the specs that ship with the package (``load_spec`` takes them).

    >>> "seed_lstm" in names()
    True
    """
    here = resources.files(__name__)
    return sorted(p.name[: -len(".json")] for p in here.iterdir() if p.name.endswith(".json"))


def is_spec_name(text: str) -> bool:
    """Is ``text`` the name of a shipped spec (not a path)?

    >>> is_spec_name("seed_cnn"), is_spec_name("seed_cnn.json")
    (True, False)
    """
    return text in names()


def load_spec(name_or_path: str | os.PathLike) -> dict:
    """Read and check a zoo spec: a shipped one by name (see :func:`names`) or a JSON file.

    >>> load_spec("seed_cnn")["dataset"]
    'mnist'
    """
    path = name_or_path
    try:
        if is_spec_name(str(name_or_path)):
            path = f"{name_or_path} (edgemine's zoo)"
            text = (resources.files(__name__) / f"{name_or_path}.json").read_text("utf-8")
        else:
            text = Path(name_or_path).read_text(encoding="utf-8")
        spec = json.loads(text)
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file (the zoo's specs: {', '.join(names())})") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a folder, not a spec file") from None
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
    from ..datasets import mnist

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
    from ..datasets import tweets

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
        # the model carries its vocabulary: predict, export and bundles tokenise text with it
        "word_index": tweets.get_word_index(num_words=num_words),
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
    """A user's arrays: x_train/y_train and/or x_test/y_test (each pair whole), or x/y."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except Exception as e:
        raise SpecError(f"{path}: not a readable .npz file ({e})") from None
    if "x" in arrays and "y" in arrays and not {"x_train", "x_test"} & set(arrays):
        return Data(arrays["x"], arrays["y"], None, None)
    for split in ("train", "test"):
        if (f"x_{split}" in arrays) != (f"y_{split}" in arrays):
            raise SpecError(f"{path}: has only one of x_{split} and y_{split}")
    if "x_train" not in arrays and "x_test" not in arrays:
        raise SpecError(
            f"{path}: needs arrays x_train/y_train and/or x_test/y_test (or x/y); "
            f"found {', '.join(sorted(arrays)) or 'none'}"
        )
    return Data(
        arrays.get("x_train"), arrays.get("y_train"), arrays.get("x_test"), arrays.get("y_test")
    )


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
