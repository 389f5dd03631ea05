"""Compute kernels, one package per device. Each exposes the same op functions (see cpu/__init__)."""

import os

from edgemine._numba_env import drop_stale_kernel_cache, import_numba

drop_stale_kernel_cache(os.path.dirname(__file__))
import_numba()  # before any kernel module imports numba
