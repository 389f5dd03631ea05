"""Batch scoring and model sweeps on Dask's distributed scheduler (the ``edgemine[dask]`` extra).

The same code runs on a laptop (``LocalCluster``: ``connect("local:2")``) and on a cluster
(``dask scheduler`` plus ``dask worker tcp://HOST:8786`` on each machine: ``connect(
"tcp://HOST:8786")``). Workers load a model once per process (an onnxruntime session for
``.onnx``, the engine for ``.edgemine``) and run one Numba/BLAS thread per task, so that
several workers can share a machine without oversubscribing it.

* :func:`predict` scores a large ``.npy`` (memory-mapped: each task reads its own rows), many
  files, a numpy array or a Dask array, chunk by chunk; the results come back in input order,
  or each chunk is written to a folder (:func:`load_output` reads it back).
* :func:`sweep` trains one model per grid point (and fold) as Dask tasks, each with its own
  seed, and ranks them.

Example (a two-worker cluster on this machine)::

    from edgemine.distributed import connect, predict
    with connect("local:2") as client:
        y = predict("mnist.onnx", "images.npy", client, chunk_size=8192)
"""

from __future__ import annotations

try:
    import distributed as _distributed  # noqa: F401
except ImportError:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "edgemine.distributed needs Dask's distributed scheduler: pip install 'edgemine[dask]'"
    ) from None

from ._cluster import connect
from ._worker import model_loads
from .scoring import ChunkError, load_output, predict
from .sweep import grid_points, parse_grid, point_seed, sweep, train_point

__all__ = [
    "ChunkError",
    "connect",
    "grid_points",
    "load_output",
    "model_loads",
    "parse_grid",
    "point_seed",
    "predict",
    "sweep",
    "train_point",
]
