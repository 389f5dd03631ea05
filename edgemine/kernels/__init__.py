"""Compute kernels, one package per device. Each exposes the same op functions (see cpu/__init__)."""

from edgemine._numba_env import import_numba

import_numba()  # before any kernel module imports numba
