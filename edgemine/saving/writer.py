"""Writing ``.edgemine`` files: config.json, weights.npz and optimizer.npz in one zip."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile

import numpy as np

from .. import __version__
from ..utils import rng_state
from ._format import FORMAT, FORMAT_VERSION, MAX_CONFIG_BYTES, weight_key
from .files import atomic_write_bytes


def generator_holders(model) -> dict[str, object]:
    """The layers that draw from a generator of their own (a Dropout or RNN given a seed), by
    key: ``"002"`` for layer 2, ``"003/1"`` for layer 3's second sublayer (Bidirectional)."""
    holders = {}
    for i, layer in enumerate(model.layers):
        subs = [(f"{i:03d}/{j}", sub) for j, sub in enumerate(getattr(layer, "layers", ()))]
        for key, obj in [(f"{i:03d}", layer), *subs]:
            if isinstance(getattr(obj, "_rng", None), np.random.Generator):
                holders[key] = obj
    return holders


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _training_section(model, epoch: int | None) -> dict:
    """The epoch, the history of every epoch's logs, and the generators' states, so that a
    resumed fit draws the same shuffles and dropout masks as an uninterrupted one."""
    return {
        "epoch": int(epoch if epoch is not None else model.epochs_trained),
        "batch_size": model.fit_batch_size,
        "rng": None if model.rng is None else rng_state(model.rng),
        "layer_rngs": {k: rng_state(h._rng) for k, h in generator_holders(model).items()},
        "history": {k: list(v) for k, v in model.history_log.items()},
    }


def _compile_section(model) -> dict:
    """The compile settings: a loss and a list of metric kinds for one output (as files of
    one loss always held them); a list of losses and per output a loss weight and lists of
    metric kinds for several. weighted_metrics and loss_weights only where they are used."""
    heads = model._heads
    many = len(heads) > 1

    def kinds(requests) -> list[str]:
        return [kind for _, kind in requests]

    section = {
        "optimizer": model.optimizer.get_config(),
        "loss": [h.loss.get_config() for h in heads] if many else heads[0].loss.get_config(),
        "metrics": [kinds(h.plain) for h in heads] if many else kinds(heads[0].plain),
    }
    if any(h.weighted for h in heads):
        weighted = [kinds(h.weighted) for h in heads]
        section["weighted_metrics"] = weighted if many else weighted[0]
    if many or heads[0].weight != 1.0:
        section["loss_weights"] = [h.weight for h in heads]
    return section


def model_to_bytes(model, epoch: int | None = None) -> bytes:
    """The bytes of the ``.edgemine`` file of ``model`` (what ``save_model`` writes).

    >>> from edgemine.models import Sequential
    >>> from edgemine.layers import Dense
    >>> model_to_bytes(Sequential([Dense(2, input_shape=(3,))]))[:2]
    b'PK'
    """
    model._require_built()
    weights = {}
    for i, layer in enumerate(model.layers):
        for var, value in zip(layer.variables, layer.get_weights()):
            weights[weight_key(i, var.name)] = value.astype(np.float32)
    members = {"weights.npz": _npz_bytes(weights)}
    compile_config = None
    if model.optimizer is not None and model.loss is not None:
        compile_config = _compile_section(model)
        if model.optimizer.slots:
            members["optimizer.npz"] = _npz_bytes(model.optimizer.get_state())
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "edgemine_version": __version__,
        "model": {
            "class_name": "Sequential" if getattr(model, "is_chain", False) else "Functional",
            "config": model.get_config(),
        },
        "compile": compile_config,
        "training": _training_section(model, epoch),
        "preprocessing": model.preprocessing,
        "class_names": model.class_names,
        # digests against accidental corruption, not a signature (see ModelFileError)
        "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in members.items()},
    }
    try:
        text = json.dumps(config, indent=1, allow_nan=False).encode("utf-8")
    except ValueError as e:
        raise ValueError(f"cannot save the model: its config holds NaN or infinity ({e})") from None
    if len(text) > MAX_CONFIG_BYTES:
        raise ValueError(
            f"cannot save the model: its config.json would take {len(text):,} bytes, more than "
            f"the {MAX_CONFIG_BYTES:,} that loading accepts (is the preprocessing vocabulary huge?)"
        )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", text)
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def save_model(model, filepath: str | os.PathLike, epoch: int | None = None) -> None:
    """Save ``model`` to ``filepath`` (``.edgemine``) atomically, removing the temporary files
    of earlier interrupted saves of ``filepath``.

    >>> import tempfile, pathlib
    >>> from edgemine.models import Sequential, load_model
    >>> from edgemine.layers import Dense
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.edgemine"
    >>> save_model(Sequential([Dense(2, input_shape=(3,))]), path)
    >>> load_model(path).output_shape
    (2,)
    """
    atomic_write_bytes(filepath, model_to_bytes(model, epoch))
