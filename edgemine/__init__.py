"""edgemine: a small, fast deep-learning engine for data mining on edge devices.

The package reads like Keras, so a Keras program runs with its import line changed to
``import edgemine as keras``: ``keras.Sequential``, ``keras.Model``, ``keras.Input``, ``keras.layers``,
``keras.optimizers``, ``keras.losses``, ``keras.metrics``, ``keras.callbacks``,
``keras.utils`` (``to_categorical``, ``pad_sequences``, ``set_random_seed``),
``keras.models.load_model`` and ``keras.datasets``. Each is imported on first use, so
``import edgemine`` stays light (no numba until a model is built).

>>> import edgemine as keras
>>> keras.__version__
'0.1.0'
>>> model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(2)])
>>> model.output_shape
(2,)
>>> keras.utils.to_categorical([1], 3).tolist()
[[0.0, 1.0, 0.0]]
"""

import importlib

from edgemine._numba_env import configure as _configure_numba

_configure_numba()

__version__ = "0.1.0"

#: name -> (module, attribute or None for the module itself), imported on first use
_LAZY = {
    "Sequential": ("edgemine.models", "Sequential"),
    "Model": ("edgemine.models", "Model"),
    "Input": ("edgemine.layers", "Input"),
    "load_model": ("edgemine.models", "load_model"),
    "load_keras": ("edgemine.keras", "load_keras"),
    **{
        name: (f"edgemine.{name}", None)
        for name in (
            "activations",
            "callbacks",
            "datasets",
            "initializers",
            "layers",
            "losses",
            "metrics",
            "models",
            "optimizers",
            "preprocessing",
            "utils",
        )
    },
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'edgemine' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
