"""Write Keras 3's outputs of its 1-D layers (Conv1D, Conv1DTranspose, pooling, UpSampling1D)
into ``tests/fixtures/keras_layers_1d.npz``, which ``tests/test_conv1d.py`` compares edgemine
against (no Keras needed there).

Needs Keras 3 with the torch backend (not needed by edgemine or by CI)::

    python3 -m venv /tmp/kvenv && /tmp/kvenv/bin/pip install keras torch==2.13.0
    KERAS_BACKEND=torch /tmp/kvenv/bin/python tools/make_keras_1d_fixtures.py

Each case k stores its layer config (``configs``, JSON), the input ``x{k}`` (2 samples), the
layer's random weights ``w{k}_{i}`` (Keras's layouts) and Keras's output ``y{k}``; a masked
GlobalAveragePooling1D case also stores ``mask{k}``.

Known difference: Keras's torch backend pads 'same' average pooling with copies of the edge
step when the padding is uneven (TensorFlow's rule, which edgemine and ONNX follow, averages the
in-bounds steps only), so no uneven 'same' AveragePooling1D case is stored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "keras_layers_1d.npz"

CASES = [
    ("Conv1D", {"filters": 4, "kernel_size": 3}, (11, 3)),
    ("Conv1D", {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"}, (11, 3)),
    ("Conv1D", {"filters": 4, "kernel_size": 4, "strides": 3, "padding": "same"}, (10, 3)),
    ("Conv1D", {"filters": 4, "kernel_size": 3, "padding": "causal", "dilation_rate": 2}, (11, 3)),
    ("Conv1D", {"filters": 4, "kernel_size": 3, "padding": "same", "dilation_rate": 3}, (11, 3)),
    ("Conv1D", {"filters": 4, "kernel_size": 2, "strides": 2, "padding": "causal"}, (9, 3)),
    ("Conv1D", {"filters": 5, "kernel_size": 3, "activation": "relu", "use_bias": False}, (6, 2)),
    ("Conv1DTranspose", {"filters": 4, "kernel_size": 3, "strides": 2}, (7, 3)),
    ("Conv1DTranspose", {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"}, (7, 3)),
    ("Conv1DTranspose", {"filters": 4, "kernel_size": 4, "strides": 2, "padding": "same"}, (7, 3)),
    ("Conv1DTranspose", {"filters": 4, "kernel_size": 2, "strides": 3}, (7, 3)),
    ("Conv1DTranspose", {"filters": 4, "kernel_size": 5, "strides": 3, "padding": "same"}, (7, 3)),
    ("Conv1DTranspose", {"filters": 4, "kernel_size": 3, "dilation_rate": 2}, (7, 3)),
    ("Conv1DTranspose", {"filters": 4, "kernel_size": 3, "padding": "same", "dilation_rate": 2}, (7, 3)),
    ("MaxPooling1D", {"pool_size": 3, "strides": 2, "padding": "same"}, (10, 3)),
    ("MaxPooling1D", {"pool_size": 2}, (9, 3)),
    ("AveragePooling1D", {"pool_size": 2}, (9, 3)),
    ("AveragePooling1D", {"pool_size": 3, "strides": 1, "padding": "same"}, (9, 3)),
    ("UpSampling1D", {"size": 3}, (4, 3)),
    ("GlobalAveragePooling1D", {"keepdims": True}, (5, 3)),
    ("GlobalMaxPooling1D", {}, (5, 3)),
    ("GlobalMaxPooling1D", {"keepdims": True}, (5, 3)),
]  # fmt: skip


def main() -> None:
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {}
    configs = []
    for k, (name, config, shape) in enumerate(CASES):
        x = rng.standard_normal((2, *shape)).astype(np.float32)
        layer = getattr(keras.layers, name)(**config)
        layer.build((None, *shape))
        weights = [rng.normal(0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()]
        layer.set_weights(weights)
        arrays[f"x{k}"] = x
        arrays[f"y{k}"] = keras.ops.convert_to_numpy(layer(x))
        arrays.update({f"w{k}_{i}": w for i, w in enumerate(weights)})
        configs.append({"class_name": name, "config": config})
    k = len(CASES)  # the masked mean: masked steps are left out
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0, 0], [0, 1, 1, 1, 1]], bool)
    layer = keras.layers.GlobalAveragePooling1D()
    arrays.update({f"x{k}": x, f"mask{k}": mask})
    arrays[f"y{k}"] = keras.ops.convert_to_numpy(layer(x, mask=mask))
    configs.append({"class_name": "GlobalAveragePooling1D", "config": {}})
    arrays["configs"] = np.array(json.dumps(configs))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({len(configs)} cases, Keras {keras.__version__})")


if __name__ == "__main__":
    main()
