"""The ``.edgemine`` model file: a zip holding ``config.json``, ``weights.npz`` and, when the
model is compiled and trained, ``optimizer.npz``. It is data only (no pickle), written
atomically, and every field is type- and range-checked on load with every size bounded by
what the architecture needs. Its SHA-256 digests detect corruption, not tampering (see
``ModelFileError``).

>>> import tempfile, pathlib
>>> from edgemine.models import Sequential
>>> from edgemine.layers import Dense
>>> path = pathlib.Path(tempfile.mkdtemp()) / "m.edgemine"
>>> save_model(Sequential([Dense(2, input_shape=(3,))]), path)
>>> load_model(path).count_params()
8
"""

from ._format import FORMAT, FORMAT_VERSION, ModelFileError
from .files import atomic_write_bytes, remove_leftover_temp_files
from .loader import load_model
from .writer import model_to_bytes, save_model

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ModelFileError",
    "atomic_write_bytes",
    "load_model",
    "model_to_bytes",
    "remove_leftover_temp_files",
    "save_model",
]
