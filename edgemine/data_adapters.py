"""What ``fit`` / ``evaluate`` / ``predict`` read their batches from (Keras's data adapters).

Arrays stay the fast path: the training loop slices them itself. Anything else iterable (a
list of batches, a generator, a dataset helper's result) is a source of batches ``(x, y)``,
``(x, y, sample_weight)`` or ``x`` alone, with Keras 3's epoch semantics: without
``steps_per_epoch`` an epoch is one pass over the source; with it, an epoch is that many
batches, read on from where the previous epoch stopped, and a source that runs out ends the
training with a warning. TensorFlow, PyTorch and JAX data objects are refused by name.

>>> batches = [(np.zeros((2, 3)), np.ones(2)), (np.zeros((1, 3)), np.ones(1))]
>>> steps = EpochIterator(batches)
>>> [len(x) for x, y, w in steps.epoch()], steps.exhausted
([2, 1], False)
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np

from .model_inputs import Inputs, positive_int

_FRAMEWORKS = ("tensorflow", "tf_keras", "keras", "torch", "jax", "jaxlib", "flax", "datasets")


def is_batch_source(x) -> bool:
    """Whether ``x`` is an iterable of batches rather than array data (an array, a list or
    tuple or dict of arrays for several inputs, or a nested list of numbers). A list of
    tuples is a list of batches.

    >>> is_batch_source(np.zeros(3)), is_batch_source([np.zeros(3)]), is_batch_source(iter([]))
    (False, False, True)
    """
    refuse_framework_object(x, "x")
    if isinstance(x, list) and x and all(isinstance(b, tuple) for b in x):
        return True
    if x is None or isinstance(x, (np.ndarray, np.generic, list, tuple, dict, Inputs, str, bytes)):
        return False
    if hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
        return False
    return hasattr(x, "__iter__") or hasattr(x, "__next__")


def refuse_framework_object(x, what: str) -> None:
    """A clear TypeError for a TensorFlow / PyTorch / JAX data object (edgemine runs on numpy).

    >>> refuse_framework_object(np.zeros(2), "x")  # arrays pass
    """
    module = type(x).__module__ or ""
    root = module.split(".")[0]
    if root not in _FRAMEWORKS or hasattr(x, "__array__"):
        return
    raise TypeError(
        f"{what} is a {module}.{type(x).__name__}: edgemine does not run {root} data pipelines "
        "(tf.data, DataLoader, ...). Give numpy arrays, or a Python iterable or generator of "
        "numpy batches (x, y) or (x, y, sample_weight), e.g. edgemine.utils."
        "image_dataset_from_directory(...)"
    )


def unpack_batch(data, what: str = "a batch") -> tuple:
    """(x, y, sample_weight) of one batch, as Keras's ``unpack_x_y_sample_weight`` reads it:
    a tuple or list of 1 to 3 items, or x alone.

    >>> unpack_batch((1, 2))
    (1, 2, None)
    """
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data
    raise ValueError(
        f"{what} is a tuple of {len(data)} items; batches are (x,), (x, y) or (x, y, sample_weight)"
    )


class EpochIterator:
    """Epochs of batches from an iterable ``source``; ``steps`` batches per epoch if given
    (Keras's ``steps_per_epoch`` / ``validation_steps`` / ``steps``), else one full pass.

    ``exhausted`` turns True when a source with ``steps`` set ran out of data before the
    epoch's last step (Keras then stops training, with a warning), or when an epoch without
    ``steps`` produced no batch at all (a generator read to its end by an earlier epoch).
    """

    def __init__(self, source, steps: int | None = None, what: str = "x"):
        refuse_framework_object(source, what)
        self.source = source
        self.what = what
        self.steps = None if steps is None else positive_int(steps, f"steps for {what}")
        self._iterator: Iterator | None = None
        self.exhausted = False

    def _new_iterator(self) -> Iterator:
        try:
            return iter(self.source)
        except TypeError:
            raise TypeError(
                f"{self.what} must be arrays or an iterable of batches, got "
                f"{type(self.source).__name__}"
            ) from None

    def epoch(self) -> Iterator[tuple]:
        """This epoch's batches, each unpacked to (x, y, sample_weight)."""
        if self.steps is None:
            count = 0
            for count, batch in enumerate(self._new_iterator(), 1):  # noqa: B007
                yield unpack_batch(batch, f"batch {count} of {self.what}")
            if count == 0:
                self._ran_out()
            return
        if self._iterator is None:
            self._iterator = self._new_iterator()
        for step in range(self.steps):
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator = None
                self._ran_out(step)
                return
            yield unpack_batch(batch, f"batch {step + 1} of {self.what}")

    def _ran_out(self, step: int = 0) -> None:
        self.exhausted = True
        warnings.warn(
            f"{self.what} ran out of data after {step} batches of this epoch; interrupting "
            "training. Make sure that it can generate at least steps_per_epoch * epochs "
            "batches (a generator is read once: give a list, or a re-iterable object, to "
            "train for several epochs).",
            stacklevel=4,
        )


def class_weights_of(y: np.ndarray, class_weight: dict) -> np.ndarray:
    """One weight per sample from ``class_weight`` {class: weight}, as Keras 3 maps it: the
    class of a row of several columns is its argmax, of one column its rounded value; classes
    missing from the dict weigh 1.

    >>> class_weights_of(np.array([[0.], [1.], [1.]]), {0: 1.0, 1: 3.0}).tolist()
    [1.0, 3.0, 3.0]
    """
    y = np.asarray(y)
    if y.ndim > 1:
        y = y.argmax(-1) if y.shape[-1] != 1 else y[..., 0]
    if y.ndim != 1:
        raise ValueError(
            f"class_weight needs one class per sample; targets of shape {y.shape} hold several "
            "(use sample_weight for per-step weights)"
        )
    classes = np.round(y).astype(np.int64)
    weights = np.ones(len(classes), dtype=np.float32)
    for c, w in class_weight.items():
        weights[classes == c] = w
    return weights


def check_class_weight(class_weight) -> dict | None:
    """``class_weight`` as {int class: float weight}, or a ValueError naming the problem."""
    if class_weight is None:
        return None
    if not isinstance(class_weight, dict):
        raise ValueError(f"class_weight must be a dict {{class: weight}}, got {class_weight!r}")
    out = {}
    for c, w in class_weight.items():
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0:
            raise ValueError(f"class_weight keys must be class indices >= 0, got {c!r}")
        if isinstance(w, bool) or not isinstance(w, (int, float, np.number)) or not w >= 0:
            raise ValueError(f"class_weight[{c}] must be a number >= 0, got {w!r}")
        out[int(c)] = float(w)
    return out


def check_sample_weight(sample_weight, n: int, what: str = "sample_weight") -> np.ndarray | None:
    """``sample_weight`` as float32 (n,), or a ValueError naming the problem."""
    if sample_weight is None:
        return None
    try:
        w = np.asarray(sample_weight, dtype=np.float32)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be numeric, got {type(sample_weight).__name__}") from None
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.shape != (n,):
        raise ValueError(f"{what} must have shape ({n},), one weight per sample; got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{what} must hold finite weights >= 0")
    return w


class ArrayBatches:
    """Checked arrays x, y (and sample weights w or None) in batches of ``batch_size``:
    shuffled per epoch with the given generator if ``shuffle``, else in order.

    >>> data = ArrayBatches(np.arange(5.0), np.arange(5.0), None, 2)
    >>> [xb.tolist() for xb, yb, wb in data.epoch(None)]
    [[0.0, 1.0], [2.0, 3.0], [4.0]]
    """

    exhausted = False  # arrays never run out

    def __init__(self, x, y, w, batch_size: int, shuffle: bool = False, class_weighted=False):
        self.x, self.y, self.w = x, y, w
        self.class_weighted = class_weighted  # w came from class_weight: training data only
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.steps = -(-len(x) // batch_size)

    def epoch(self, rng: np.random.Generator | None):
        n, size = len(self.x), self.batch_size
        order = rng.permutation(n) if self.shuffle and rng is not None else None
        for step in range(self.steps):
            idx = slice(step * size, (step + 1) * size)
            if order is not None:
                idx = order[idx]
            yield self.x[idx], self.y[idx], None if self.w is None else self.w[idx]

    def split(self, fraction: float) -> tuple[ArrayBatches, ArrayBatches]:
        """(training part, validation part): Keras's validation_split takes the tail of the
        arrays, before any shuffling."""
        n = len(self.x)
        cut = int(n * (1.0 - fraction))
        if cut == 0 or cut == n:
            raise ValueError("validation_split leaves no training or no validation samples")

        def part(sl):
            w = None if self.w is None or self.class_weighted else self.w[sl]
            return ArrayBatches(self.x[sl], self.y[sl], w, self.batch_size, self.shuffle)

        train, val = part(slice(0, cut)), part(slice(cut, n))
        if self.class_weighted:  # Keras splits first and weighs the training part only
            train.w = self.w[:cut]
        val.shuffle = False
        return train, val
