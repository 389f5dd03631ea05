"""Reading ``.edgemine`` files: every field checked, every size bounded before any work.

The stages run in the order that keeps a hostile file cheap to refuse: the zip's directory,
config.json (capped, then parsed), the architecture (built with zero-byte placeholder
weights: no random draws, no memory), then weights.npz and optimizer.npz, each refused before
decompression if it declares more bytes than the architecture needs, and each array's header
checked against its weight before anything is allocated.
"""

from __future__ import annotations

import hashlib
import os
import zipfile

import numpy as np

from .. import losses, optimizers
from ..layers.base import BUILDING_PLACEHOLDERS
from ..utils import rng_from_state
from . import archive
from ._format import (
    FORMAT,
    FORMAT_VERSION,
    MAX_CONFIG_BYTES,
    MEMBERS,
    Invalid,
    ModelFileError,
    weight_key,
)
from .fields import (
    check_compile_section,
    check_history,
    check_layer_entry,
    check_model_section,
    exact_int,
    expect,
    parse_json,
)
from .writer import generator_holders

_F32 = np.dtype("<f4")
_I64 = np.dtype("<i8")
# weights whose values must be non-negative (a variance): a negative one would give NaN later
_NONNEGATIVE_WEIGHTS = {("BatchNormalization", "moving_variance")}


class _Loading:
    """One load: the open archive and the field being read (named by any failure)."""

    def __init__(self, zf: zipfile.ZipFile):
        self.zf = zf
        self.names = set(zf.namelist())
        self.stage = "the archive"

    def member(self, name: str, limit: int, need: str, digests: dict) -> bytes:
        self.stage = name
        data = archive.read_member(self.zf, name, limit, need)
        expect(
            digests.get(name) == hashlib.sha256(data).hexdigest(),
            f"{name} does not match its recorded sha256: the file is corrupted (or was edited)",
        )
        return data


def _header(config: dict, names: set[str]) -> dict:
    """Check format, version and digests; returns the digests."""
    expect(config.get("format") == FORMAT, "not an edgemine model file (format field)")
    version = config.get("format_version")
    expect(
        type(version) is int and version == FORMAT_VERSION,
        f"file format version {version!r:.40} is not supported; this edgemine reads version "
        f"{FORMAT_VERSION}",
    )
    digests = config.get("sha256")
    expect(isinstance(digests, dict), "config.json lacks the sha256 digests")
    for name in names - {"config.json"}:
        digest = digests.get(name)
        expect(
            isinstance(digest, str) and len(digest) == 64,
            f"sha256.{name} is missing or malformed",
        )
    expect(set(digests) <= set(MEMBERS) - {"config.json"}, "sha256 names unknown entries")
    expect(set(digests) <= names, "an entry listed in sha256 is missing from the archive")
    return digests


def _layers_of(entries: list, functional: bool) -> list:
    """The (unbuilt) layers of the layer entries, each entry checked field by field."""
    layers = []
    for i, entry in enumerate(entries):
        where = f"model.config.layers[{i}]"
        cls = check_layer_entry(entry, where, functional)
        try:
            layers.append(cls.from_config(dict(entry["config"])))
        except Exception as e:  # the constructor's own checks (ranges, combinations)
            raise Invalid(f"{where} ({cls.__name__}): invalid config: {e}") from None
    names = [layer.name for layer in layers]
    expect(len(set(names)) == len(names), "two layers of the model have one name")
    return layers


def _build_model(config: dict):
    """The model of the ``model`` section, built with placeholder weights."""
    from ..models import Model, Sequential
    from ..models.config import rebuild_graph

    kind, entries, mc = check_model_section(config.get("model"))
    layers = _layers_of(entries, functional=kind == "Functional")
    token = BUILDING_PLACEHOLDERS.set(True)
    try:
        if kind == "Sequential":
            model = Sequential(layers, name=mc.get("name", "sequential"))
            if not model.built:
                model.build((None, *mc.get("input_shape")))
        else:
            inbound = {layer.name: e["inbound_nodes"] for layer, e in zip(layers, entries)}
            by_name = {layer.name: layer for layer in layers}
            ins, outs = rebuild_graph(by_name, inbound, mc["input_layers"], mc["output_layers"])
            model = Model(ins, outs, name=mc.get("name", "functional"))
    except Invalid:
        raise
    except Exception as e:
        raise Invalid(f"cannot build the model: {e}") from None
    finally:
        BUILDING_PLACEHOLDERS.reset(token)
    if kind == "Sequential":
        expect(
            list(model.input_shape) == mc.get("input_shape"),
            "input_shape does not match the layers",
        )
    else:
        expect(
            [layer.name for layer in model.layers] == [layer.name for layer in layers],
            "the layer list is not in the model's order (or holds unused layers)",
        )
    return model


def _check_values(where: str, arr: np.ndarray, nonnegative: bool) -> None:
    expect(bool(np.isfinite(arr).all()), f"{where} holds NaN or infinite values")
    if nonnegative:
        expect(not bool((arr < 0).any()), f"{where} holds negative values (it is a variance)")


def _load_weights(loading: _Loading, model, digests: dict) -> None:
    specs, rules = {}, {}
    for i, layer in enumerate(model.layers):
        for v in layer.variables:
            expect(
                all(0 < d <= 2**31 - 1 for d in v.shape), f"layer {i}: weight {v.name} {v.shape}"
            )
            specs[weight_key(i, v.name)] = (v.shape, _F32)
            rules[weight_key(i, v.name)] = (type(layer).__name__, v.name.split("/")[-1])
    limit = archive.npz_limit(specs)
    data = loading.member("weights.npz", limit, "the model's weights need", digests)
    arrays = archive.read_arrays("weights.npz", data, specs)
    del data
    for key, arr in arrays.items():
        _check_values(f"weights.npz: weight {key}", arr, rules[key] in _NONNEGATIVE_WEIGHTS)
    for i, layer in enumerate(model.layers):
        layer.set_weights([arrays.pop(weight_key(i, v.name)) for v in layer.variables])


def _restore_training(config: dict, model) -> None:
    """Preprocessing, class names, the epoch, the history and the generators' states."""
    pre, names = config.get("preprocessing"), config.get("class_names")
    expect(pre is None or isinstance(pre, dict), "preprocessing must be an object or null")
    expect(
        names is None or (isinstance(names, list) and all(isinstance(n, str) for n in names)),
        "class_names must be a list of strings or null",
    )
    training = config.get("training") or {}
    expect(isinstance(training, dict), "training must be an object")
    expect(
        set(training) <= {"epoch", "batch_size", "rng", "layer_rngs", "history"},
        "training has unknown fields",
    )
    history = check_history(training.get("history"))
    epoch = exact_int(training.get("epoch", 0), "training.epoch", 0, 2**31 - 1)
    batch_size = training.get("batch_size")
    if batch_size is not None:
        exact_int(batch_size, "training.batch_size")
    rng = _generator(training.get("rng"), "training.rng")
    holders = generator_holders(model)
    states = training.get("layer_rngs") or {}
    expect(isinstance(states, dict), "training.layer_rngs must be an object")
    expect(
        set(states) <= set(holders),
        f"training.layer_rngs names layers without a seeded generator: {sorted(set(states) - set(holders))[:4]}",
    )
    for key, state in states.items():
        holders[key]._rng = _generator(state, f"training.layer_rngs.{key}")
    model.preprocessing, model.class_names = pre, names
    model.epochs_trained, model.rng, model.fit_batch_size = epoch, rng, batch_size
    model.history_log = history


def _generator(state, where: str):
    if state is None:
        return None
    try:
        return rng_from_state(state)
    except ValueError as e:
        raise Invalid(f"{where}: {e}") from None


def _compile(loading: _Loading, config: dict, model, digests: dict, attach: bool) -> None:
    """Check the compile section and the optimizer state; compile the model if ``attach``."""
    cc = config.get("compile")
    if cc is None:
        expect("optimizer.npz" not in loading.names, "optimizer.npz without compile settings")
        return
    loading.stage = "compile"
    opt_config, args = check_compile_section(cc)
    try:
        optimizer = optimizers.get(dict(opt_config))
        loss_id = args["loss"]
        args["loss"] = (
            [losses.get(i) for i in loss_id] if isinstance(loss_id, list) else losses.get(loss_id)
        )
    except (TypeError, ValueError) as e:
        raise Invalid(f"invalid compile settings: {e}") from None
    if attach:
        try:
            model.compile(optimizer=optimizer, **args)
        except (TypeError, ValueError) as e:
            raise Invalid(f"invalid compile settings: {e}") from None
    if "optimizer.npz" in loading.names:
        state = _optimizer_state(loading, optimizer, model, digests)
        if attach:
            optimizer.set_state(state, model.trainable_variables, model.ops)


def _optimizer_state(loading: _Loading, optimizer, model, digests: dict) -> dict:
    variables = model.trainable_variables
    specs = {"iterations": ((), _I64)}
    for i, v in enumerate(variables):
        for name in optimizer.slot_names:
            specs[f"{i}/{name}"] = (v.shape, _F32)
    limit = archive.npz_limit(specs)
    data = loading.member("optimizer.npz", limit, "the optimizer's state needs", digests)
    state = archive.read_arrays("optimizer.npz", data, specs)
    iterations = int(state["iterations"])
    expect(0 <= iterations < 2**62, f"optimizer.npz: iterations is {iterations}, not a step count")
    for key, arr in state.items():
        if key != "iterations":
            slot = key.split("/", 1)[1]
            _check_values(f"optimizer.npz: slot {key}", arr, slot in optimizer.nonnegative_slots)
    return state


def _load(path: str, compile: bool):  # noqa: A002
    loading = None
    try:
        with archive.open_archive(path) as zf:
            loading = _Loading(zf)
            loading.stage = "config.json"
            limit = MAX_CONFIG_BYTES
            config = parse_json(archive.read_member(zf, "config.json", limit, "edgemine reads"))
            digests = _header(config, loading.names)
            loading.stage = "model"
            model = _build_model(config)
            _load_weights(loading, model, digests)
            loading.stage = "training"
            _restore_training(config, model)
            _compile(loading, config, model, digests, attach=compile)
        return model
    except Invalid as e:
        raise ModelFileError(f"{path}: {e}") from None
    except Exception as e:  # anything else a damaged file can raise is still its fault
        stage = "the archive" if loading is None else loading.stage
        raise ModelFileError(f"{path}: {stage}: cannot read it ({type(e).__name__}: {e})") from None


def load_model(filepath: str | os.PathLike, compile: bool = True):  # noqa: A002
    """Read a ``.edgemine`` file, checking every field; raises ModelFileError naming the file
    and the field on any problem. Loading draws no random numbers.

    >>> import tempfile, pathlib
    >>> from edgemine.models import Sequential
    >>> from edgemine.layers import Dense
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.edgemine"
    >>> Sequential([Dense(2, input_shape=(3,))]).save(path)
    >>> load_model(path).layers[0].units
    2
    >>> _ = path.write_bytes(b"not a zip")
    >>> load_model(path)
    Traceback (most recent call last):
    ...
    edgemine.saving.ModelFileError: ...: not an edgemine model file (not a readable zip archive: File is not a zip file)
    """
    path = os.fspath(filepath)
    if not isinstance(path, str):
        raise TypeError(f"load_model needs a path, got {type(filepath).__name__}")
    return _load(path, compile)
