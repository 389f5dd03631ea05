"""The ``.edgemine`` model file: a zip holding ``config.json``, ``weights.npz`` and, when the
model is compiled, ``optimizer.npz``. It is data only (no pickle), written atomically, and every
field is checked on load.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import __version__
from .layers.base import LAYER_REGISTRY

FORMAT = "edgemine"
FORMAT_VERSION = 1
_MEMBERS = {"config.json", "weights.npz", "optimizer.npz"}
_MAX_BYTES = 1 << 31  # refuse archives that expand past 2 GiB (zip bombs)


class ModelFileError(ValueError):
    """A model file that is missing, corrupt, tampered with, or of another version."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would
        if path.exists():
            mode = path.stat().st_mode & 0o7777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _weight_key(i: int, name: str) -> str:
    return f"{i:03d}/{name}"


def model_to_bytes(model, epoch: int | None = None) -> bytes:
    model._require_built()
    weights = {}
    for i, layer in enumerate(model.layers):
        for var, value in zip(layer.variables, layer.get_weights()):
            weights[_weight_key(i, var.name)] = value.astype(np.float32)
    members = {"weights.npz": _npz_bytes(weights)}
    compile_config = None
    if model.optimizer is not None and model.loss is not None:
        compile_config = {
            "optimizer": model.optimizer.get_config(),
            "loss": model.loss.get_config(),
            "metrics": list(model._requested_metrics),
        }
        if model.optimizer.slots:
            members["optimizer.npz"] = _npz_bytes(model.optimizer.get_state())
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "edgemine_version": __version__,
        "model": {"class_name": "Sequential", "config": model.get_config()},
        "compile": compile_config,
        "training": {"epoch": int(epoch if epoch is not None else model.epochs_trained)},
        "preprocessing": model.preprocessing,
        "class_names": model.class_names,
        "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in members.items()},
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", json.dumps(config, indent=1))
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def save_model(model, filepath: str | os.PathLike, epoch: int | None = None) -> None:
    """Save ``model`` to ``filepath`` (``.edgemine``) atomically."""
    atomic_write_bytes(filepath, model_to_bytes(model, epoch))


# ---------------------------------------------------------------- loading


def _fail(path, message: str) -> ModelFileError:
    return ModelFileError(f"{path}: {message}")


def _read_members(path) -> dict[str, bytes]:
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except IsADirectoryError:
        raise _fail(path, "is a directory, not a model file") from None
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise _fail(path, f"not an edgemine model file (not a readable zip archive: {e})") from None
    with zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        unknown = set(names) - _MEMBERS
        if unknown:
            raise _fail(path, f"unexpected entries {sorted(unknown)}; not an edgemine model file")
        if len(set(names)) != len(names):
            raise _fail(path, "duplicate entries in the archive")
        if "config.json" not in names or "weights.npz" not in names:
            raise _fail(path, "config.json or weights.npz is missing; not an edgemine model file")
        if sum(i.file_size for i in infos) > _MAX_BYTES:
            raise _fail(path, "archive expands to more than 2 GiB; refusing to read it")
        out = {}
        for info in infos:
            try:
                out[info.filename] = zf.read(info)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
                raise _fail(path, f"entry {info.filename} is corrupt ({e})") from None
    return out


def _expect(cond: bool, path, message: str) -> None:
    if not cond:
        raise _fail(path, message)


def _load_npz(path, name: str, data: bytes) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except Exception as e:
        raise _fail(
            path, f"{name} is not a valid array archive ({type(e).__name__}: {e})"
        ) from None


def load_model(filepath: str | os.PathLike, compile: bool = True):  # noqa: A002
    """Read a ``.edgemine`` file, checking every field; raises ModelFileError on any problem."""
    from . import losses, optimizers
    from .models import Sequential

    path = os.fspath(filepath)
    members = _read_members(path)
    try:
        config = json.loads(members["config.json"].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(path, f"config.json is not valid JSON ({e})") from None
    _expect(isinstance(config, dict), path, "config.json must hold an object")
    _expect(config.get("format") == FORMAT, path, "not an edgemine model file (format field)")
    version = config.get("format_version")
    _expect(
        version == FORMAT_VERSION,
        path,
        f"file format version {version!r} is not supported; this edgemine reads version "
        f"{FORMAT_VERSION}",
    )
    digests = config.get("sha256")
    _expect(isinstance(digests, dict), path, "config.json lacks the sha256 digests")
    for name, data in members.items():
        if name == "config.json":
            continue
        _expect(
            digests.get(name) == hashlib.sha256(data).hexdigest(),
            path,
            f"{name} does not match its recorded sha256: the file was modified or corrupted",
        )
    model_cfg = config.get("model")
    _expect(
        isinstance(model_cfg, dict) and model_cfg.get("class_name") == "Sequential",
        path,
        "model.class_name must be 'Sequential'",
    )
    mc = model_cfg.get("config")
    _expect(
        isinstance(mc, dict) and isinstance(mc.get("layers"), list),
        path,
        "model.config.layers missing",
    )
    _expect(len(mc["layers"]) > 0, path, "the model has no layers")
    layers = []
    for i, entry in enumerate(mc["layers"]):
        _expect(isinstance(entry, dict), path, f"layer {i} is not an object")
        cls_name = entry.get("class_name")
        cls = LAYER_REGISTRY.get(cls_name) if isinstance(cls_name, str) else None
        _expect(cls is not None, path, f"layer {i}: unknown layer type {cls_name!r}")
        lcfg = entry.get("config")
        _expect(isinstance(lcfg, dict), path, f"layer {i} ({cls_name}): config is not an object")
        try:
            layers.append(cls.from_config(dict(lcfg)))
        except (TypeError, ValueError, KeyError) as e:
            raise _fail(path, f"layer {i} ({cls_name}): invalid config: {e}") from None
    model = Sequential(name=str(mc.get("name", "sequential")))
    for layer in layers:
        try:
            model.add(layer)
        except (TypeError, ValueError) as e:
            raise _fail(path, f"invalid layer stack: {e}") from None
    input_shape = mc.get("input_shape")
    _expect(
        isinstance(input_shape, list)
        and all(d is None or (isinstance(d, int) and d > 0) for d in input_shape),
        path,
        "model.config.input_shape must be a list of positive ints",
    )
    if not model.built:
        try:
            model.build((None, *input_shape))
        except (TypeError, ValueError) as e:
            raise _fail(path, f"cannot build the model: {e}") from None
    _expect(list(model.input_shape) == input_shape, path, "input_shape does not match the layers")

    weights = _load_npz(path, "weights.npz", members["weights.npz"])
    expected = {
        _weight_key(i, v.name): v.shape
        for i, layer in enumerate(model.layers)
        for v in layer.variables
    }
    _expect(
        set(weights) == set(expected),
        path,
        f"weights.npz holds {sorted(set(weights) ^ set(expected))[:4]} that do not match the layers",
    )
    for key, shape in expected.items():
        w = weights[key]
        _expect(w.dtype == np.float32, path, f"weight {key} has dtype {w.dtype}, expected float32")
        _expect(
            tuple(w.shape) == tuple(shape),
            path,
            f"weight {key} has shape {w.shape}, expected {shape}",
        )
        _expect(bool(np.isfinite(w).all()), path, f"weight {key} holds NaN or infinite values")
    for i, layer in enumerate(model.layers):
        layer.set_weights([weights[_weight_key(i, v.name)] for v in layer.variables])

    for key in ("preprocessing", "class_names"):
        value = config.get(key)
        _expect(
            value is None or isinstance(value, (dict if key == "preprocessing" else list)),
            path,
            f"{key} has the wrong type",
        )
    model.preprocessing = config.get("preprocessing")
    model.class_names = config.get("class_names")
    training = config.get("training") or {}
    epoch = training.get("epoch", 0)
    _expect(
        isinstance(epoch, int) and epoch >= 0, path, "training.epoch must be a non-negative int"
    )
    model.epochs_trained = epoch

    cc = config.get("compile")
    if compile and cc is not None:
        _expect(isinstance(cc, dict), path, "compile is not an object")
        try:
            optimizer = optimizers.get(dict(cc.get("optimizer") or {}))
            loss = losses.get(cc.get("loss"))
            model.compile(optimizer=optimizer, loss=loss, metrics=list(cc.get("metrics") or []))
        except (TypeError, ValueError) as e:
            raise _fail(path, f"invalid compile settings: {e}") from None
        if "optimizer.npz" in members:
            state = _load_npz(path, "optimizer.npz", members["optimizer.npz"])
            _expect("iterations" in state, path, "optimizer.npz lacks 'iterations'")
            try:
                optimizer.set_state(state, model.trainable_variables, model.ops)
            except (ValueError, KeyError) as e:
                raise _fail(path, f"optimizer state: {e}") from None
    return model
