"""The runnable examples in the public docstrings."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "edgemine",
    "edgemine.utils",
    "edgemine.initializers",
    "edgemine.activations",
    "edgemine.losses",
    "edgemine.metrics",
    "edgemine.optimizers",
    "edgemine.models",
    "edgemine.backend",
    "edgemine.zoo",
    "edgemine.layers.core",
    "edgemine.layers.conv",
    "edgemine.distributed._cluster",
    "edgemine.distributed.scoring",
    "edgemine.distributed.sweep",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
