"""Opening Keras files as untrusted input: the ``.keras`` zip, legacy ``.h5`` and Keras 3's
``.weights.h5``. Sizes are checked from the archive's and the HDF5 file's metadata before
anything is read; nothing in a file is ever run.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_CONFIG_BYTES = 16 << 20  # a config.json or model_config attribute
MAX_WEIGHT_BYTES = 1 << 31  # the weights a model may declare (and a .keras member's size)
MAX_DEPTH = 40  # JSON nesting; a Sequential config of Keras 3 nests about 8 deep
_KERAS_MEMBERS = {"config.json", "metadata.json", "model.weights.h5"}


class KerasFileError(ValueError):
    """A Keras file that is unreadable, malformed, or holds something edgemine cannot convert."""


@dataclass
class KerasSource:
    """An open Keras file: its model config (None for a weights-only file), the HDF5 group
    that holds the weights, and that group's layout (``"keras3"``: ``layers/NAME/vars/0``;
    ``"legacy"``: ``NAME`` groups with ``weight_names``)."""

    path: Path
    config: dict | None
    weights: Any
    layout: str
    keras_version: str | None = None

    def fail(self, message: str) -> KerasFileError:
        return KerasFileError(f"{self.path.name}: {message}")


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        raise KerasFileError("reading Keras files needs h5py (pip install h5py)") from None
    return h5py


def _depth_ok(obj: Any, limit: int) -> bool:
    """Whether ``obj`` nests at most ``limit`` levels (iteratively: no recursion to exhaust)."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return True


def parse_config(text: str | bytes, where: str, path: Path) -> dict:
    """A model config from JSON text: bounded in size and depth, an object at the top.

    Example:
        >>> parse_config('{"class_name": "Sequential"}', "config.json", Path("m.keras"))
        {'class_name': 'Sequential'}
        >>> parse_config("[" * 50 + "]" * 50, "config.json", Path("m.keras"))
        Traceback (most recent call last):
        ...
        edgemine.keras.files.KerasFileError: m.keras: config.json nests deeper than 40 levels
    """
    name = path.name
    if len(text) > MAX_CONFIG_BYTES:
        raise KerasFileError(f"{name}: {where} is larger than {MAX_CONFIG_BYTES >> 20} MiB")
    try:
        config = json.loads(text)
    except RecursionError:
        raise KerasFileError(f"{name}: {where} nests deeper than {MAX_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise KerasFileError(f"{name}: {where} is not valid JSON ({e})") from None
    if not _depth_ok(config, MAX_DEPTH):
        raise KerasFileError(f"{name}: {where} nests deeper than {MAX_DEPTH} levels")
    if not isinstance(config, dict):
        raise KerasFileError(f"{name}: {where} must hold a JSON object")
    return config


def _read_zip(path: Path) -> tuple[dict, bytes, str | None]:
    """config.json, the model.weights.h5 bytes and metadata.json's keras_version."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise KerasFileError(f"{path.name}: not a readable .keras archive ({e})") from None
    with zf:
        infos = {i.filename: i for i in zf.infolist()}
        missing = sorted({"config.json", "model.weights.h5"} - set(infos))
        if missing:
            raise KerasFileError(f"{path.name}: the archive lacks {', '.join(missing)}")
        extra = sorted(n for n in infos if n not in _KERAS_MEMBERS)
        if extra:
            raise KerasFileError(
                f"{path.name}: unexpected archive entries {extra[:3]} (assets of layers edgemine "
                "does not convert?)"
            )
        limits = {"model.weights.h5": MAX_WEIGHT_BYTES}
        for name, info in infos.items():
            if info.file_size > limits.get(name, MAX_CONFIG_BYTES):
                raise KerasFileError(f"{path.name}: {name} expands to {info.file_size:,} bytes")
        try:
            members = {name: zf.read(info) for name, info in infos.items()}
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise KerasFileError(f"{path.name}: the archive is corrupt ({e})") from None
    config = parse_config(members["config.json"], "config.json", path)
    version = None
    if "metadata.json" in members:
        meta = parse_config(members["metadata.json"], "metadata.json", path)
        version = meta.get("keras_version") if isinstance(meta.get("keras_version"), str) else None
    return config, members["model.weights.h5"], version


def _attr_text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _open_h5(source, path: Path):
    h5py = _h5py()
    try:
        return h5py.File(source, "r")
    except (OSError, ValueError) as e:
        if isinstance(source, io.BytesIO):
            raise KerasFileError(
                f"{path.name}: model.weights.h5 is not a readable HDF5 file"
            ) from None
        raise KerasFileError(
            f"{path.name}: neither a .keras archive nor a readable HDF5 file ({e})"
        ) from None


@contextmanager
def open_keras(path: str | os.PathLike):
    """Open a Keras file (``.keras``, ``.h5`` or ``.weights.h5``) as a :class:`KerasSource`.

    Example::

        >>> with open_keras("model.keras") as src:  # doctest: +SKIP
        ...     src.config["class_name"], src.layout
        ('Sequential', 'keras3')
    """
    path = Path(path)
    if not path.is_file():
        raise KerasFileError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        config, weights, version = _read_zip(path)
        f = _open_h5(io.BytesIO(weights), path)
        with f:
            yield KerasSource(path, config, f, "keras3", version)
        return
    f = _open_h5(str(path), path)
    with f:
        yield _h5_source(path, f)


def _h5_source(path: Path, f) -> KerasSource:
    """A legacy full-model .h5, a legacy weights-only .h5 or a Keras 3 .weights.h5."""
    version = _attr_text(f.attrs["keras_version"]) if "keras_version" in f.attrs else None
    if "model_config" in f.attrs:
        config = parse_config(_attr_text(f.attrs["model_config"]), "model_config", path)
        if "model_weights" not in f:
            raise KerasFileError(f"{path.name}: the file has a model_config but no model_weights")
        return KerasSource(path, config, f["model_weights"], "legacy", version)
    if "layer_names" in f.attrs:
        return KerasSource(path, None, f, "legacy", version)
    if "layers" in f:
        return KerasSource(path, None, f, "keras3", version)
    raise KerasFileError(
        f"{path.name}: an HDF5 file without a Keras model or Keras weights (no model_config, "
        "layer_names or layers/)"
    )
