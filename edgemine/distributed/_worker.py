"""What runs inside a Dask worker process: thread limits and the per-process model cache."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from ..runtime import limit_threads

__all__ = ["limit_threads", "model_loads", "predictor"]

_models: dict[tuple, tuple] = {}  # (path, mtime_ns, size, threads) -> (Predictor, lock)
_models_lock = threading.Lock()
_loads = 0  # models loaded by this process (tests check that a worker loads a model once)


def predictor(path: str, threads: int):
    """This process's loaded model for ``path`` (loaded on first use; reloaded when the file's
    modification time or size changes) and the lock that serialises the engine's predictions
    (an onnxruntime session runs concurrently and gets no lock)."""
    global _loads
    from ..cli.export import Predictor

    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        raise FileNotFoundError(
            f"{path}: no such model file on worker {socket.gethostname()} (pid {os.getpid()}); "
            "workers need the same path, e.g. a shared folder"
        ) from None
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size, int(threads))
    with _models_lock:
        hit = _models.get(key)
        if hit is None:
            for old in [k for k in _models if k[0] == key[0]]:
                del _models[old]  # the file changed: drop the stale model
            pred = Predictor(p, threads=threads)
            lock = threading.Lock() if pred.session is None else None
            hit = _models[key] = (pred, lock)
            _loads += 1
    return hit


def model_loads() -> int:
    """How many models this process has loaded (run it on the workers with ``client.run``).

    >>> model_loads() >= 0
    True
    """
    return _loads
