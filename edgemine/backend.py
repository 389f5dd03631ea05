"""Device selection. Every device is a kernel module with the same op functions
(``edgemine.kernels.cpu`` is the reference); layers call ``layer.ops.<op>``.

'cuda' needs three things, checked in this order, and the error names the first one missing:
the numba-cuda package (``pip install 'edgemine[cuda]'``), an NVIDIA driver (libcuda), and a GPU
that the driver sees. With ``NUMBA_ENABLE_CUDASIM=1`` Numba's CUDA simulator stands in for all
three (slow; for tests).

>>> "cpu" in available_devices()
True
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import os
import sys
from types import ModuleType

DEVICES = ("cpu", "cuda")

# CUresult codes worth a sentence of their own
_CUDA_ERRORS = {
    3: "the driver was not initialised",
    35: "the NVIDIA driver is older than this CUDA runtime needs",
    100: "the NVIDIA driver is installed but found no GPU (CUDA_ERROR_NO_DEVICE)",
    101: "the NVIDIA driver is installed but found no usable GPU (CUDA_ERROR_INVALID_DEVICE)",
    304: "the NVIDIA driver could not be loaded by the operating system",
    999: "the NVIDIA driver reported an unknown error",
}


def _simulating() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def driver_problem() -> str | None:
    """Why the NVIDIA driver cannot run CUDA here (no libcuda / no GPU), or None when it can.

    Asks libcuda directly through ctypes (cuInit, cuDeviceGetCount), so it needs neither Numba's
    CUDA target nor a CUDA toolkit."""
    names = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so")
    lib = None
    for libname in names:
        try:
            lib = ctypes.CDLL(libname)
            break
        except OSError:
            continue
    if lib is None:
        return "no NVIDIA driver: libcuda could not be loaded (install the NVIDIA driver)"
    try:
        rc = int(lib.cuInit(0))
        if rc != 0:
            return _CUDA_ERRORS.get(
                rc, f"the NVIDIA driver failed to initialise (cuInit error {rc})"
            )
        count = ctypes.c_int(0)
        rc = int(lib.cuDeviceGetCount(ctypes.byref(count)))
    except (AttributeError, OSError) as e:  # not a real libcuda
        return f"the NVIDIA driver library is unusable: {e}"
    if rc != 0:
        return _CUDA_ERRORS.get(rc, f"the NVIDIA driver could not count GPUs (error {rc})")
    if count.value == 0:
        return "the NVIDIA driver is installed but found no GPU"
    return None


def cuda_unavailable_reason() -> str | None:
    """Why CUDA cannot be used here, or None when it can.

    Precisely one of: numba-cuda is not installed; no NVIDIA driver; the driver sees no GPU; or
    Numba's own initialisation error. Under ``NUMBA_ENABLE_CUDASIM=1`` the simulator counts as a
    device."""
    try:
        from numba import cuda
    except ImportError as e:  # pragma: no cover - numba is a dependency
        return f"Numba's CUDA target cannot be imported ({e}); pip install 'edgemine[cuda]'"
    if _simulating():
        return None if cuda.is_available() else "Numba's CUDA simulator is not available"
    if importlib.util.find_spec("numba_cuda") is None:
        return "numba-cuda is not installed (pip install 'edgemine[cuda]')"
    problem = driver_problem()
    if problem is not None:
        return problem
    try:
        if cuda.is_available():
            return None
    except Exception as e:  # the driver may raise instead of answering False
        return f"Numba could not initialise CUDA: {e}"
    try:
        from numba.cuda.cudadrv.driver import driver

        detail = getattr(driver, "initialization_error", None)
    except Exception:  # pragma: no cover - depends on the numba-cuda version
        detail = None
    return f"Numba could not initialise CUDA: {detail or 'cuda.is_available() is False'}"


def available_devices() -> list[str]:
    """The devices that work on this machine, 'cpu' first."""
    return ["cpu"] + (["cuda"] if cuda_unavailable_reason() is None else [])


def get_ops(device: str) -> ModuleType:
    """The kernel module for ``device`` ('cpu' or 'cuda'); a clear error if it cannot run here."""
    if not isinstance(device, str) or device.lower() not in DEVICES:
        raise ValueError(f"unknown device {device!r}; known: {', '.join(DEVICES)}")
    device = device.lower()
    if device == "cpu":
        from .kernels import cpu

        return cpu
    reason = cuda_unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"device 'cuda' is not available: {reason}")
    return importlib.import_module("edgemine.kernels.cuda")
