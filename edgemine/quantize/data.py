"""Data for quantization: user .npz files, bundled data sets, turning raw data into model inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .metadata import ModelSpec, model_spec, read_metadata

#: default number of calibration samples taken from a data set.
CALIBRATION_SAMPLES = 300


def load_npz(path: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray | None]:
    """Read ``(x, y)`` from an ``.npz``: keys ``x``/``y``, or ``x_train``... / ``x_test``...

    ``split`` says which pair to prefer when both are present ("train" for calibration, "test"
    for evaluation). ``y`` is None when the file has no labels. Never unpickles.

    Example::

        >>> x, y = load_npz("digits.npz", split="test")  # doctest: +SKIP
    """
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"{path} is not a readable .npz file ({exc})") from exc
    with data:
        keys = set(data.files)
        other = "test" if split == "train" else "train"
        for xk, yk in (
            (f"x_{split}", f"y_{split}"),
            ("x", "y"),
            (f"x_{other}", f"y_{other}"),
        ):
            if xk in keys:
                return data[xk], (data[yk] if yk in keys else None)
    raise ValueError(
        f"{path} has keys {sorted(keys)}; expected 'x' (and 'y'), or 'x_train'/'x_test' "
        "(and 'y_train'/'y_test')"
    )


def prepare_inputs(
    x: np.ndarray,
    spec: ModelSpec,
    preprocessing: dict[str, Any] | None = None,
) -> np.ndarray:
    """Make raw data fit a model's input: dtype, a missing channel axis, and image scaling.

    Integer images (for example MNIST's uint8 ``(n, 28, 28)``) feeding a float input are
    multiplied by ``preprocessing["scale"]`` (1/255 when absent); float arrays are taken as
    already scaled. Token ids are cast to the input's integer type.

    Example::

        >>> spec = ModelSpec("input", np.float32, (None, 28, 28, 1), "probabilities", (None, 10))
        >>> x = prepare_inputs(np.full((2, 28, 28), 255, np.uint8), spec, {"scale": 1 / 255})
        >>> x.shape, x.dtype, float(x.max())
        ((2, 28, 28, 1), dtype('float32'), 1.0)
    """
    x = np.asarray(x)
    pre = preprocessing or {}
    want = spec.input_shape
    if x.ndim == len(want) - 1:
        # a single channel left out: add it where the layout puts it
        axis = 1 if pre.get("layout", "NHWC").upper() == "NCHW" else x.ndim
        x = np.expand_dims(x, axis)
    if x.ndim != len(want):
        raise ValueError(f"inputs have shape {x.shape}; the model takes {_shape_str(want)}")
    for got, need in zip(x.shape[1:], want[1:]):
        if need is not None and got != need:
            raise ValueError(f"inputs have shape {x.shape}; the model takes {_shape_str(want)}")
    if np.issubdtype(spec.input_dtype, np.floating):
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32) * np.float32(pre.get("scale", 1.0 / 255.0))
        return np.ascontiguousarray(x, dtype=spec.input_dtype)
    if np.issubdtype(x.dtype, np.floating):
        if not np.all(np.equal(np.mod(x, 1), 0)):
            raise ValueError("the model takes integer token ids; the inputs are not integers")
    return np.ascontiguousarray(x, dtype=spec.input_dtype)


def _shape_str(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


def _dataset_for(preprocessing: dict[str, Any] | None, spec: ModelSpec) -> str | None:
    pre = preprocessing or {}
    if pre.get("dataset"):
        return str(pre["dataset"])
    if pre.get("kind") == "image":
        if (pre.get("height"), pre.get("width"), pre.get("channels")) == (28, 28, 1):
            return "mnist"
        return None
    if pre.get("kind") == "text":
        return "tweets"
    if not pre and tuple(spec.input_shape[1:]) in {(28, 28, 1), (1, 28, 28), (28, 28)}:
        return "mnist"
    return None


def _evenly(n_total: int, n: int) -> np.ndarray:
    """n indices spread evenly over range(n_total): a stratified pick from label-sorted data."""
    n = min(n, n_total)
    return np.unique(np.linspace(0, n_total - 1, n).round().astype(np.int64))


def _dataset_split(
    model: str | Path, split: str, n: int | None
) -> tuple[np.ndarray, np.ndarray, str]:
    spec = model_spec(model)
    pre = read_metadata(model)["preprocessing"] or {}
    name = _dataset_for(pre, spec)
    if name is None:
        raise ValueError(
            "no bundled data set matches this model's preprocessing "
            f"({json.dumps(pre) if pre else 'none in its metadata'}); pass data explicitly"
        )
    if name == "mnist":
        from edgemine.datasets import mnist

        train, test = mnist.load_data()
    elif name == "tweets":
        from edgemine.datasets import tweets

        train, test = tweets.load_data(
            num_words=int(pre.get("num_words", 10000)), maxlen=int(pre.get("maxlen", 100))
        )
    else:
        raise ValueError(f"unknown data set {name!r} in the model's preprocessing metadata")
    x, y = train if split == "train" else test
    if n is not None:
        idx = _evenly(len(x), n)
        x, y = x[idx], y[idx]
    return prepare_inputs(x, spec, pre), np.asarray(y), name


def default_calibration(model: str | Path, n: int = CALIBRATION_SAMPLES) -> np.ndarray:
    """``n`` training samples of the bundled data set that fits the model, as model inputs.

    The set is chosen from the model's ``preprocessing`` metadata: 28x28x1 images -> MNIST,
    text -> the tweet corpus (with its ``num_words`` and ``maxlen``); ``"dataset"`` in the
    metadata overrides the guess. Samples are spread evenly over the (label-sorted) split.

    Example::

        >>> default_calibration("mnist_cnn.onnx", n=200).shape  # doctest: +SKIP
        (200, 28, 28, 1)
    """
    return _dataset_split(model, "train", n)[0]


def default_eval_data(
    model: str | Path, n: int | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """The bundled test split that fits the model: ``(x, y, dataset_name)``, x as model inputs.

    Example::

        >>> x, y, name = default_eval_data("mnist_cnn.onnx")  # doctest: +SKIP
    """
    return _dataset_split(model, "test", n)


def synthetic_inputs(model: str | Path, n: int = 64, seed: int = 0) -> np.ndarray:
    """Random inputs of the right shape and type (images in [0, 1], token ids in the vocabulary).

    Only for timing and for comparing outputs when no data fits; never for calibration.

    Example::

        >>> synthetic_inputs("cnn.onnx", n=8).shape  # doctest: +SKIP
        (8, 28, 28, 1)
    """
    spec = model_spec(model)
    pre = read_metadata(model)["preprocessing"] or {}
    shape = (n,) + tuple(1 if d is None else d for d in spec.input_shape[1:])
    rng = np.random.default_rng(seed)
    if np.issubdtype(spec.input_dtype, np.floating):
        return rng.random(shape).astype(spec.input_dtype)
    high = int(pre.get("num_words", 100))
    return rng.integers(0, high, size=shape).astype(spec.input_dtype)
