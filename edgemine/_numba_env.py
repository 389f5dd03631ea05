"""Numba settings that must be fixed before numba runs its first parallel kernel.

Measured on the project's 2-core machine (shared/notes/numba-performance.md): with numba's default
OpenMP threading layer, libgomp's workers spin after a parallel region and steal the cores that the
next OpenBLAS call needs, making an im2col + matmul convolution 6.5x slower. The ``workqueue``
layer has no spinning workers and costs nothing measurable for our kernels, so edgemine selects it
unless the user already chose a layer.
"""

from __future__ import annotations

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
