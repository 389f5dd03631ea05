"""edgemine: a small, fast deep-learning engine for data mining on edge devices.

>>> import edgemine
>>> edgemine.__version__
'0.1.0'
"""

from edgemine._numba_env import configure as _configure_numba

_configure_numba()

__version__ = "0.1.0"

__all__ = ["__version__", "load_keras"]


def __getattr__(name: str):
    # imported on first use: ``import edgemine`` stays light
    if name == "load_keras":
        from .keras import load_keras

        return load_keras
    raise AttributeError(f"module 'edgemine' has no attribute {name!r}")
