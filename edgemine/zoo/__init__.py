"""Model-zoo specs and the data they train on.

A spec names the architecture (Keras-style layer configs), compile and fit settings and a data
set: a bundled one ('mnist', 'tweets', 'wine', 'digits') or a user's file (``.npz``, a CSV, a
folder of images; see :func:`load_data`). A spec may leave the input shape open (it comes from
the data) and write ``"num_classes"`` for a layer option that is the data's number of classes. The zoo's own specs ship inside the
package (``edgemine/zoo/*.json``) and are addressed by name (``load_spec("seed_cnn")``); a path
to a ``.json`` file loads a user's spec. The CLI's ``train`` and the README's main job use these
functions; nothing here downloads anything or reads the repository's folders.

>>> names()
['cnn', 'mlp', 'motion_cnn', 'motion_lstm', 'seed_cnn', 'seed_lstm']
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
from importlib import resources
from pathlib import Path

import numpy as np

from ..datasets.user_data import Data
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


NUM_CLASSES = "num_classes"  # a layer option a spec leaves to the data


def build_model(spec: dict, num_classes: int | None = None) -> Sequential:
    """The (compiled) Sequential model that a spec describes; ``num_classes`` fills the
    options the spec writes as ``"num_classes"``."""
    layers = spec["model"].get("layers")
    if not isinstance(layers, list) or not layers:
        raise SpecError("spec.model.layers must be a non-empty list")
    model = Sequential(name=str(spec.get("name", "sequential")))
    for i, entry in enumerate(layers):
        cls = LAYER_REGISTRY.get(entry.get("class_name")) if isinstance(entry, dict) else None
        if cls is None:
            raise SpecError(f"layer {i}: unknown layer type {entry!r}")
        config = dict(entry.get("config") or {})
        for key, value in config.items():
            if value == NUM_CLASSES:
                if num_classes is None:
                    raise SpecError(
                        f"layer {i}: {key} is the data's number of classes; give --data"
                    )
                config[key] = num_classes
        try:
            model.add(cls(**config))
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


def _prepare_digits() -> Data:
    from ..datasets import digits

    (x_train, y_train), (x_test, y_test) = digits.load_data()
    pre = {"kind": "image", "height": 8, "width": 8, "channels": 1, "scale": 1.0 / 255.0}
    pre.update(layout="NHWC", dataset="digits")
    scale = np.float32(pre["scale"])
    return Data(
        x_train[..., None].astype(np.float32) * scale,
        y_train,
        x_test[..., None].astype(np.float32) * scale,
        y_test,
        pre,
        [str(d) for d in range(10)],
    )


def load_data(
    dataset: str,
    dataset_args: dict | None = None,
    *,
    pre: dict | None = None,
    class_names: list[str] | None = None,
    label_column: str | None = None,
    text_column: str | None = None,
    image_size: tuple[int, int] | None = None,
) -> Data:
    """A data set by name ('mnist', 'tweets', 'wine', 'digits', 'basicmotions', prepared as
    their models expect)
    or a user's file: a ``.npz`` (x_train/y_train/x_test/y_test, or x/y), a CSV table (features
    and a label column), a CSV of texts (with ``text_column``), or a folder of images in class
    subfolders. ``pre`` and ``class_names`` (a trained model's) are applied instead of fitted
    afresh, so a model sees its data as it did in training."""
    from ..datasets import user_data, wine

    if dataset == "mnist":
        return _prepare_mnist()
    if dataset == "tweets":
        return _prepare_tweets(**(dataset_args or {}))
    if dataset == "digits":
        return _prepare_digits()
    if dataset == "basicmotions":
        from ..datasets import basicmotions

        (x_train, y_train), (x_test, y_test) = basicmotions.load_data()
        pre = {"kind": "array", "dataset": "basicmotions"}
        return Data(x_train, y_train, x_test, y_test, pre, list(basicmotions.CLASS_NAMES))
    if dataset == "wine":
        d = user_data.load_table_csv(
            "wine.csv", label_column, pre, class_names, text=wine.csv_text()
        )
        d.preprocessing = {**d.preprocessing, "dataset": "wine"}
        return d
    path = Path(dataset)
    if path.is_dir():
        return user_data.load_image_folder(path, image_size, pre, class_names)
    if path.suffix.lower() == ".npz":
        return _load_npz(path)
    if path.suffix.lower() == ".csv":
        if text_column or (pre or {}).get("kind") == "text":
            column = text_column or pre["text_column"]
            return user_data.load_text_csv(
                path, column, label_column, pre, class_names, **(dataset_args or {})
            )
        return user_data.load_table_csv(path, label_column, pre, class_names)
    raise SpecError(
        f"unknown data set {dataset!r}: use 'mnist', 'tweets', 'wine', 'digits', 'basicmotions', "
        "a .npz or .csv "
        "file, or a folder of images in class subfolders"
    )


def targets_for(model: Sequential, y: np.ndarray, one_hot: int | None = None) -> np.ndarray:
    """Shape labels for the model's loss: one-hot for categorical cross-entropy."""
    if y is None:
        return None
    if model.loss is not None and model.loss.name == "categorical_crossentropy" and y.ndim == 1:
        return to_categorical(y, one_hot or model.output_shape[-1])
    return y
