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
    "edgemine.models.model",
    "edgemine.models.heads",
    "edgemine.callbacks",
    "edgemine.report",
    "edgemine.report.metrics",
    "edgemine.report.writer",
    "edgemine.explain",
    "edgemine.explain.attributions",
    "edgemine.backend",
    "edgemine.kernels.interface",
    "edgemine.kernels._shared",
    "edgemine.model_inputs",
    "edgemine.data_adapters",
    "edgemine.dataset_utils",
    "edgemine.saving.weights_h5",
    "edgemine.keras.weights",
    "edgemine.zoo",
    "edgemine.layers.core",
    "edgemine.layers.conv",
    "edgemine.layers.conv1d",
    "edgemine.layers.pooling1d",
    "edgemine.onnx.converters.conv1d",
    "edgemine.preprocessing.inputs",
    "edgemine.preprocessing.text",
    "edgemine.distributed._cluster",
    "edgemine.distributed.scoring",
    "edgemine.distributed.sweep",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_keras_namespace_is_lazy_and_complete():
    """`import edgemine as keras` exposes what Keras programs use, importing nothing heavy."""
    import subprocess
    import sys

    code = (
        "import sys, edgemine as keras\n"
        "print(sorted(m for m in ('numba', 'onnx', 'onnxruntime', 'h5py') if m in sys.modules))\n"
        "names = ['Sequential', 'Model', 'Input', 'layers', 'optimizers', 'losses', 'metrics', "
        "'callbacks', 'utils', 'datasets', 'models', 'preprocessing']\n"
        "print(all(getattr(keras, n) is not None for n in names))\n"
        "print(keras.utils.pad_sequences is keras.preprocessing.pad_sequences)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["[]", "True", "True"]
    import edgemine

    with pytest.raises(AttributeError, match="has no attribute 'Graph'"):
        edgemine.Graph  # noqa: B018  (an unknown name is a plain AttributeError)
