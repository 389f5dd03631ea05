"""numpy versions of Keras 3's dataset helpers (``keras.utils.image_dataset_from_directory``,
``text_dataset_from_directory``, ``timeseries_dataset_from_array``), without TensorFlow.

Same arguments and the same selection as Keras 3.15 (keras/src/utils/*_dataset_utils.py):
class folders in ``sorted()`` order, files walked in sorted order, the file list shuffled with
``np.random.RandomState(seed)`` before ``validation_split`` takes its tail, window starts
shuffled the same way; so the training and validation subsets hold the files Keras's do.
Each returns a :class:`BatchDataset`: a re-iterable of numpy batches ``(x, y)`` (or ``x``) that
``fit`` / ``evaluate`` / ``predict`` take, one pass per epoch, with ``class_names``. Files are
read batch by batch. Differences: with ``shuffle`` the order inside an epoch is a fresh
permutation per pass drawn from ``seed`` (tf.data's buffered shuffle is not reproducible
without TensorFlow), and images are resized with Pillow's filters.

>>> import numpy as np
>>> ds = timeseries_dataset_from_array(np.arange(10), None, sequence_length=3, batch_size=4)
>>> [b.tolist() for b in ds][0], len(ds)
([[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]], 2)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from .preprocessing import inputs

__all__ = [
    "BatchDataset",
    "image_dataset_from_directory",
    "text_dataset_from_directory",
    "timeseries_dataset_from_array",
]

IMAGE_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # Keras's ALLOWLIST_FORMATS
#: the arguments both directory helpers share, passed on to _from_directory
_COMMON = (
    "directory",
    "labels",
    "label_mode",
    "class_names",
    "batch_size",
    "shuffle",
    "seed",
    "validation_split",
    "subset",
    "follow_links",
    "verbose",
)


class BatchDataset:
    """Batches of ``count`` samples, ``batch_size`` at a time: ``load(indices)`` gives the
    batch of those samples. Iterating again starts a new epoch (reshuffled if ``shuffle``)."""

    def __init__(
        self,
        count: int,
        load: Callable[[np.ndarray], object],
        batch_size: int,
        shuffle: bool = False,
        seed: int | None = None,
        class_names: list[str] | None = None,
        file_paths: list[str] | None = None,
    ):
        self.count = count
        self._load = load
        self.batch_size = batch_size
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self.class_names = class_names
        self.file_paths = file_paths

    def __len__(self) -> int:
        return -(-self.count // self.batch_size)

    def __iter__(self) -> Iterator:
        order = self._rng.permutation(self.count) if self.shuffle else np.arange(self.count)
        for start in range(0, self.count, self.batch_size):
            yield self._load(order[start : start + self.batch_size])

    def arrays(self):
        """Every sample at once, in file (or window) order: ``(x, y)`` or ``x``."""
        return self._load(np.arange(self.count))

    def __repr__(self) -> str:
        return f"<BatchDataset: {self.count} samples in {len(self)} batches of {self.batch_size}>"


def _positive(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _check_split(validation_split, subset, shuffle, seed) -> None:
    """Keras's check_validation_split_arg."""
    if validation_split and not 0 < validation_split < 1:
        raise ValueError(f"validation_split must be between 0 and 1, got {validation_split}")
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError("If subset is set, validation_split must be set, and inversely.")
    if subset not in ("training", "validation", "both", None):
        raise ValueError(f'subset must be "training", "validation" or "both", got {subset!r}')
    if validation_split and shuffle and seed is None:
        raise ValueError(
            "If using validation_split and shuffling the data, you must provide a seed, so "
            "that the training and validation subsets do not overlap."
        )


def _index_directory(
    directory, labels, formats, class_names, shuffle, seed, follow_links, verbose=True
):
    """(file paths, labels or None, class names): Keras's ``index_directory``."""
    root = Path(directory)
    if not root.is_dir():
        raise ValueError(f"{directory} is not a directory")
    if labels == "inferred":
        subdirs = sorted(
            p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        if class_names is not None:
            if not set(class_names) <= set(subdirs):
                raise ValueError(
                    f"class_names {class_names} do not match the subdirectories of "
                    f"{directory}: expected {subdirs} (or a subset of it)"
                )
            subdirs = list(class_names)  # the order given
    else:
        if class_names is not None:
            raise ValueError("class_names can only be given with labels='inferred'")
        subdirs = [""]
    files, found = [], []
    for k, sub in enumerate(subdirs):
        walk = sorted(os.walk(root / sub, followlinks=follow_links), key=lambda w: w[0])
        for dirpath, _, names in walk:
            for name in sorted(names):
                if name.lower().endswith(formats):
                    files.append(os.path.join(dirpath, name))
                    found.append(k)
    if labels == "inferred":
        labels, names = np.array(found, dtype=np.int32), subdirs
    elif labels is None:
        names = None
    else:
        if len(labels) != len(files):
            raise ValueError(
                f"labels has {len(labels)} entries but {directory} holds {len(files)} files"
            )
        names = [str(v) for v in sorted(set(labels))]
        labels = np.asarray(labels)
    if verbose:
        classes = "" if names is None else f" belonging to {len(names)} classes"
        print(f"Found {len(files)} files{classes}.")
    if shuffle:
        np.random.RandomState(seed).shuffle(files)
        if labels is not None:
            np.random.RandomState(seed).shuffle(labels)
    return files, labels, names


def _subset(files, labels, validation_split, subset):
    """Keras's get_training_or_validation_split: the validation part is the tail."""
    if not validation_split:
        return files, labels
    n_val = int(validation_split * len(files))
    if subset == "training":
        print(f"Using {len(files) - n_val} files for training.")
        part = slice(0, len(files) - n_val)
    else:
        print(f"Using {n_val} files for validation.")
        part = slice(len(files) - n_val, len(files))
    return files[part], None if labels is None else labels[part]


def _label_batch(labels, label_mode, num_classes):
    if label_mode == "int":
        return labels.astype(np.int32)
    if label_mode == "binary":
        return labels.astype(np.float32)[:, None]
    return np.eye(num_classes, dtype=np.float32)[labels]


def _from_directory(
    *,
    directory,
    labels,
    label_mode,
    class_names,
    batch_size,
    shuffle,
    seed,
    validation_split,
    subset,
    follow_links,
    verbose,
    formats,
    read_batch,
):
    """The dataset (or the (training, validation) pair for subset='both') of the files."""
    if labels not in ("inferred", None) and not isinstance(labels, (list, tuple, np.ndarray)):
        raise ValueError(f"labels must be 'inferred', None or a list of labels, got {labels!r}")
    if label_mode not in ("int", "categorical", "binary", None):
        raise ValueError(
            f"label_mode must be 'int', 'categorical', 'binary' or None, got {label_mode!r}"
        )
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    batch_size = _positive(batch_size, "batch_size")
    _check_split(validation_split, subset, shuffle, seed)
    if seed is None:
        seed = int(np.random.randint(1e6))  # noqa: NPY002 (as Keras draws it)
    files, found, names = _index_directory(
        directory, labels, formats, class_names, shuffle, seed, follow_links, verbose
    )
    if label_mode == "binary" and len(names) != 2:
        raise ValueError(f'label_mode="binary" needs exactly 2 classes, got {names}')
    if found is not None and label_mode is not None and found.dtype.kind not in "iu":
        raise ValueError("labels must be integers (class indices)")

    def dataset(part_files, part_labels):
        if not part_files:
            raise ValueError(f"no files found in {directory} (allowed formats: {formats})")

        def load(idx):
            x = read_batch([part_files[i] for i in idx])
            if part_labels is None:
                return x
            return x, _label_batch(part_labels[idx], label_mode, len(names))

        return BatchDataset(len(part_files), load, batch_size, shuffle, seed, names, part_files)

    if subset == "both":
        return tuple(
            dataset(*_subset(files, found, validation_split, which))
            for which in ("training", "validation")
        )
    return dataset(*_subset(files, found, validation_split, subset))


def image_dataset_from_directory(
    directory,
    labels="inferred",
    label_mode="int",
    class_names=None,
    color_mode="rgb",
    batch_size=32,
    image_size=(256, 256),
    shuffle=True,
    seed=None,
    validation_split=None,
    subset=None,
    interpolation="bilinear",
    follow_links=False,
    crop_to_aspect_ratio=False,
    pad_to_aspect_ratio=False,
    data_format=None,
    verbose=True,
):
    """Batches ``(images, labels)`` from ``directory/CLASS/*.png|jpg|...``, as Keras 3 makes
    them: float32 pixels 0..255 of shape (batch, height, width, channels) resized to
    ``image_size``; labels int32 (``label_mode="int"``), one-hot (``"categorical"``) or
    float32 (batch, 1) (``"binary"``). ``subset="both"`` gives (training, validation)."""
    channels = {"rgb": 3, "grayscale": 1}.get(color_mode)
    if channels is None:
        raise ValueError(f'color_mode must be "rgb" or "grayscale" here, got {color_mode!r}')
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    if not isinstance(image_size, (list, tuple)) or len(image_size) != 2:
        raise ValueError(f"image_size must be (height, width), got {image_size!r}")
    height, width = (_positive(v, "image_size") for v in image_size)
    if interpolation not in ("bilinear",):
        raise ValueError(f"interpolation must be 'bilinear' here, got {interpolation!r}")
    if crop_to_aspect_ratio or pad_to_aspect_ratio:
        raise ValueError("crop_to_aspect_ratio and pad_to_aspect_ratio are not supported")
    if data_format not in (None, "channels_last"):
        raise ValueError("images come channels_last (batch, height, width, channels)")

    def read_batch(paths):
        out = np.empty((len(paths), height, width, channels), dtype=np.float32)
        for i, path in enumerate(paths):
            img = inputs.read_image(path)
            if img.shape[:2] != (height, width):
                img = inputs.resize(img, height, width)
            out[i] = inputs.fit_channels(img, channels, os.path.basename(path))
        return out

    common = {k: v for k, v in locals().items() if k in _COMMON}  # the shared arguments
    return _from_directory(formats=IMAGE_FORMATS, read_batch=read_batch, **common)


def text_dataset_from_directory(
    directory,
    labels="inferred",
    label_mode="int",
    class_names=None,
    batch_size=32,
    max_length=None,
    shuffle=True,
    seed=None,
    validation_split=None,
    subset=None,
    follow_links=False,
    verbose=True,
):
    """Batches ``(texts, labels)`` from ``directory/CLASS/*.txt``, as Keras 3 makes them:
    texts a numpy array of str (each cut to ``max_length`` characters if given), labels as
    in :func:`image_dataset_from_directory`."""
    if max_length is not None:
        max_length = _positive(max_length, "max_length")

    def read_batch(paths):
        texts = []
        for path in paths:
            text = Path(path).read_bytes().decode("utf-8", errors="replace")
            texts.append(text[:max_length] if max_length else text)
        return np.array(texts, dtype=object)

    common = {k: v for k, v in locals().items() if k in _COMMON}  # the shared arguments
    return _from_directory(formats=(".txt",), read_batch=read_batch, **common)


def timeseries_dataset_from_array(
    data,
    targets,
    sequence_length,
    sequence_stride=1,
    sampling_rate=1,
    batch_size=128,
    shuffle=False,
    seed=None,
    start_index=None,
    end_index=None,
):
    """Batches of sliding windows over ``data`` (and each window's target), as Keras 3 makes
    them: window i starts at ``start_index + s_i`` with ``s_i`` = 0, ``sequence_stride``, ...
    and takes ``sequence_length`` steps ``sampling_rate`` apart; its target is
    ``targets[start_index + s_i]``.

    >>> ds = timeseries_dataset_from_array(np.arange(10), np.arange(10) * 10, 3, batch_size=8)
    >>> x, y = next(iter(ds)); x[1].tolist(), y[:3].tolist()
    ([1, 2, 3], [0, 10, 20])
    """
    data = np.asarray(data)
    n = len(data)
    sequence_length = _positive(sequence_length, "sequence_length")
    sequence_stride = _positive(sequence_stride, "sequence_stride")
    sampling_rate = _positive(sampling_rate, "sampling_rate")
    batch_size = _positive(batch_size, "batch_size")
    if sampling_rate >= n or sequence_stride >= n:
        raise ValueError("sampling_rate and sequence_stride must be lower than the data length")
    start = 0 if start_index is None else int(start_index)
    end = n if end_index is None else int(end_index)
    if not 0 <= start < n or not start < end <= n:
        raise ValueError(
            f"need 0 <= start_index < end_index <= {n}, got {start_index}, {end_index}"
        )
    count = end - start - (sequence_length - 1) * sampling_rate
    if targets is not None:
        targets = np.asarray(targets)
        count = min(count, len(targets))
    if count <= 0:
        raise ValueError("the data is shorter than one window")
    starts = np.arange(0, count, sequence_stride)
    if shuffle:
        if seed is None:
            seed = int(np.random.randint(1e6))  # noqa: NPY002 (as Keras draws it)
        np.random.RandomState(seed).shuffle(starts)
    steps = np.arange(sequence_length) * sampling_rate
    window_data = data[start:end]
    target_data = None if targets is None else targets[start:]

    def load(idx):
        x = window_data[starts[idx][:, None] + steps]
        return x if target_data is None else (x, target_data[starts[idx]])

    return BatchDataset(len(starts), load, batch_size, shuffle, seed)
