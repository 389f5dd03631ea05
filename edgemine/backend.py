"""Device selection. Every device is a kernel module with the same op functions
(``edgemine.kernels.cpu`` is the reference); layers call ``layer.ops.<op>``.

>>> "cpu" in available_devices()
True
"""

from __future__ import annotations

import importlib
from types import ModuleType

DEVICES = ("cpu", "cuda")


def cuda_unavailable_reason() -> str | None:
    """Why CUDA cannot be used here, or None when it can."""
    try:
        from numba import cuda
    except ImportError:  # pragma: no cover - numba is a dependency
        return "numba is not installed"
    try:
        importlib.import_module("numba_cuda")
    except ImportError:
        if not getattr(cuda, "is_available", None):
            return "numba-cuda is not installed (pip install 'edgemine[cuda]')"
    try:
        if cuda.is_available():
            return None
    except Exception as e:  # the driver may raise instead of answering False
        return f"the CUDA driver could not be loaded: {e}"
    try:
        cuda.detect()
    except Exception as e:
        return f"no usable CUDA driver: {e}"
    return "no CUDA driver or no NVIDIA GPU was found"


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
