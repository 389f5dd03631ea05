"""Keras model files to edgemine models, without TensorFlow, Keras, PyTorch or JAX.

Reads Keras 3 ``.keras`` archives, legacy ``.h5`` files (Keras 2, tf.keras, Keras 3's legacy
saver) and Keras 3 ``.weights.h5`` files (with an edgemine model of the same architecture),
with h5py. Sequential and functional models convert; anything edgemine cannot compute exactly
as Keras does (a layer, an activation, an option, a custom object, a Lambda, a call with
``training=True``, a layer's second output) is refused with a one-line
:class:`KerasFileError`. The files are untrusted input: sizes are checked before reading,
weights only after their declared shapes match, and nothing is run.

Example::

    >>> from edgemine.keras import load_keras
    >>> model = load_keras("model.keras")  # doctest: +SKIP
    >>> model.save("model.edgemine")  # doctest: +SKIP
"""

from .files import KerasFileError, open_keras
from .loader import load_keras

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")

__all__ = ["KERAS_SUFFIXES", "KerasFileError", "load_keras", "open_keras"]
