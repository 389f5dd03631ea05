"""Numba settings that must be fixed before numba runs its first parallel kernel, and numba's
import without SciPy's start-up cost.

Measured on the project's 2-core machine (shared/notes/numba-performance.md): with numba's default
OpenMP threading layer, libgomp's workers spin after a parallel region and steal the cores that the
next OpenBLAS call needs, making an im2col + matmul convolution 6.5x slower. The ``workqueue``
layer has no spinning workers and costs nothing measurable for our kernels, so edgemine selects it
unless the user already chose a layer.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys

THREADING_LAYER = "workqueue"


def configure() -> None:
    """Select numba's threading layer (respects a user's ``NUMBA_THREADING_LAYER``) without
    importing numba: it reads the variable when first imported, and an already imported numba
    gets the setting in its config (it picks the layer at its first parallel launch)."""
    if "NUMBA_THREADING_LAYER" in os.environ:
        return
    os.environ["NUMBA_THREADING_LAYER"] = THREADING_LAYER
    numba = sys.modules.get("numba")
    if numba is not None:
        numba.config.THREADING_LAYER = THREADING_LAYER


# SciPy is optional for numba, but where it is installed (scikit-learn brings it) numba imports it
# on the way to its first kernel: ``import numba`` checks SciPy's version, and numba's array-math
# module imports all of scipy.linalg to learn whether inner products may call BLAS. edgemine's
# kernels use neither. A fresh process that loads the seed CNN and predicts one image (warm Numba
# cache) took 1.39 s with SciPy installed and 0.99 s without (2-core AMD EPYC, 7 alternating runs).
_SCIPY_AT_START = ("scipy", "scipy.linalg", "scipy.linalg.cython_blas")


def import_numba() -> None:
    """Import numba and its array-math module without importing SciPy.

    The SciPy modules that are not yet imported read as absent while numba starts, then
    numba's BLAS flag is set to whether SciPy is installed (looked up, not imported): user
    numba code that needs BLAS imports SciPy itself when it is compiled (numba's
    ``ensure_blas``), as without edgemine. A SciPy imported before edgemine is left alone, and
    a numba laid out otherwise (no ``numba.np.arraymath``, or one that needs SciPy there) is
    imported as it is."""
    if "numba.np.arraymath" in sys.modules:
        return
    hidden = [name for name in _SCIPY_AT_START if name not in sys.modules]
    sys.modules.update(dict.fromkeys(hidden))
    try:
        import numba  # noqa: F401
        from numba.np import arraymath
    except ImportError:
        arraymath = None
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    if arraymath is None:
        import numba  # noqa: F401, F811  (a failure here is numba's own)
    elif getattr(arraymath, "_HAVE_BLAS", None) is False:
        arraymath._HAVE_BLAS = importlib.util.find_spec("scipy") is not None


def drop_stale_kernel_cache(package_dir: str) -> int:
    """Delete the Numba cache entries in ``package_dir``'s ``__pycache__`` folders that are
    older than the newest ``.py`` file in it; returns how many cached functions it dropped.

    Numba checks a cached kernel only against its own source file, but a kernel that calls a
    jitted function from another file has that function's code compiled in: after an edit to
    ``recurrent/_cells.py``, ``_sequences.py``'s cached kernels ran the old gate code. Installed
    packages never change, so there this only lists the folders (about 1 ms)."""
    newest, files = 0.0, []
    for folder, _, _ in os.walk(package_dir):
        if os.path.basename(folder) == "__pycache__":
            continue
        sources = [_mtime(p) for p in _listing(folder) if p.endswith(".py")]
        newest = max([newest, *(t for t in sources if t is not None)])
        files += [
            p for p in _listing(os.path.join(folder, "__pycache__")) if p.endswith((".nbi", ".nbc"))
        ]
    # an index NAME.nbi lists its compiled overloads NAME.1.nbc, NAME.2.nbc, ...: an entry is
    # stale when it or any overload predates a source (a process that was running during an
    # edit may add an overload to an old index)
    entries: dict[str, list[str]] = {}
    for path in files:
        stem = path[:-4] if path.endswith(".nbi") else path[:-4].rsplit(".", 1)[0]
        entries.setdefault(stem, []).append(path)
    stale = [
        paths for paths in entries.values() if any((_mtime(p) or newest) < newest for p in paths)
    ]
    for paths in stale:
        for path in paths:
            with contextlib.suppress(OSError):  # another process may have removed it
                os.remove(path)
    return len(stale)


def _listing(folder: str) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return [e.path for e in entries]
    except OSError:
        return []


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:  # removed meanwhile (another process)
        return None
