"""Compute kernels, one package per device. Each exposes the same op functions (see cpu/__init__)."""
