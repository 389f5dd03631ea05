"""The ``.edgemine`` format's constants and error type, shared by the writer and the loader."""

from __future__ import annotations

FORMAT = "edgemine"
FORMAT_VERSION = 1
MEMBERS = ("config.json", "weights.npz", "optimizer.npz")
# config.json holds the architecture, compile settings and preprocessing (a text model's
# vocabulary): small. The cap bounds what parsing a hostile file costs (~25x in Python objects).
MAX_CONFIG_BYTES = 4 << 20
MAX_JSON_DEPTH = 32  # edgemine writes 8 levels (a Bidirectional layer's config)
MAX_LAYERS = 1024
MAX_DIM = 2**31 - 1  # the kernels index with int32
# the training history kept in config.json: the last MAX_HISTORY_EPOCHS epochs of at most
# MAX_HISTORY_KEYS logs (about 25 bytes a value: 10,000 epochs of 4 logs take 1 MB)
MAX_HISTORY_EPOCHS = 10_000
MAX_HISTORY_KEYS = 64


class ModelFileError(ValueError):
    """A model file that is missing, corrupt, or of another version.

    The SHA-256 digests inside the file detect accidental corruption (a truncated copy, a
    flipped bit); they are not a signature: whoever edits a file can recompute them, so they
    do not show that a file is authentic. Load model files only from sources you trust the way
    you trust code (the loader refuses pickles and checks every field, but it cannot tell a
    deliberately wrong model from a right one).
    """


ModelFileError.__module__ = "edgemine.saving"  # where users import it from


class Invalid(Exception):
    """Raised inside the loader with the field and the problem; ``load_model`` turns it into a
    ModelFileError naming the file."""


def weight_key(i: int, name: str) -> str:
    """The key of layer ``i``'s weight ``name`` in weights.npz (``002/kernel``)."""
    return f"{i:03d}/{name}"
