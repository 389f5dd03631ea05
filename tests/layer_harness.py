"""The layer test harness: every registered layer, checked the same way (like Keras's
``run_layer_test``).

``CASES`` holds, per layer class name, small configurations (``Case``); ``EXEMPT`` holds the
named reasons why a layer may lack a harness entry, a converter or a CUDA run. For each case:

* ``check_config``: ``get_config`` -> JSON -> ``from_config`` gives the same config, and the
  copy with the same weights computes the same output, of the shape ``compute_output_shape``
  says;
* ``check_save_load``: a model holding the layer survives ``save`` / ``load_model`` (config,
  weights, predictions bit for bit);
* ``check_gradients``: float64 central finite differences of the input and every weight
  gradient (``gradcheck.check_layer``), with the case's mask;
* ``check_float32``: float32 forward and backward against float64 (1e-4 relative to scale);
* ``check_onnx``: the exported graph in onnxruntime and ``onnx.reference`` against
  ``model.predict`` at batch 1 and 3 (1e-5 absolute);
* ``check_cuda`` (in a subprocess under Numba's CUDA simulator, see ``run_cuda_checks``): the
  CUDA backend against the CPU one, inference and training forward, input and weight
  gradients.

Masking: a case with ``mask=True`` passes a (batch, time) mask to ``forward`` in the gradient,
float32 and CUDA checks, and puts an ``Embedding(mask_zero=True)`` in front of the layer for the
save/load and ONNX checks, so the mask comes from padded token ids as in a real model;
``check_masking`` checks what a mask means (Keras's semantics): a masked row's last output
equals the layer's output on that row's real steps alone, and a sequence output passes the mask
on (``compute_mask``).

Adding a layer: one entry in ``CASES`` (and its converter, and its backend ops on both
backends); test_layer_harness.py's meta-test fails until there is one (or an ``EXEMPT`` reason).
Run as a script (``python tests/layer_harness.py cuda SHARD``) it prints the CUDA checks' results as
JSON; the test runs it with ``NUMBA_ENABLE_CUDASIM=1``.
"""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CHECKS = ("config", "save_load", "gradients", "float32", "onnx", "cuda", "masking")


@dataclass(frozen=True)
class Case:
    """One configuration of a layer: constructor arguments and a per-sample input shape."""

    config: dict
    input_shape: tuple
    #: token ids in [0, vocab) instead of float inputs
    vocab: int | None = None
    #: feed a (batch, time) mask (layers with supports_masking)
    mask: bool = False
    #: check -> why this case skips it
    skip: dict = field(default_factory=dict)
    batch: int = 3
    #: a merge layer's inputs: their per-sample shapes (``input_shape`` is then unused)
    input_shapes: tuple | None = None

    @property
    def shapes(self) -> list[tuple]:
        """The per-sample shape of each input (one, unless the layer merges several)."""
        return [tuple(s) for s in self.input_shapes] if self.input_shapes else [self.input_shape]

    @property
    def build_shape(self):
        return self.shapes if self.input_shapes else tuple(self.input_shape)

    @property
    def id(self) -> str:
        parts = [f"{k}={v}" for k, v in self.config.items() if not isinstance(v, dict)]
        inner = self.config.get("layer", {}).get("class_name")
        shapes = ["x".join(map(str, s)) for s in self.shapes] if self.input_shapes else []
        return "-".join(
            ([inner] if inner else []) + parts + shapes + (["masked"] if self.mask else [])
        )


def _rnn(cls: str, **config) -> dict:
    return {"class_name": cls, "config": config}


def _wrapped(cls: str, **config) -> dict:
    """A wrapped layer's config (TimeDistributed's ``layer``)."""
    return {"class_name": cls, "config": config}


CASES: dict[str, list[Case]] = {
    "InputLayer": [Case({"shape": [3, 2]}, (3, 2))],
    "Dense": [
        Case({"units": 3, "activation": "tanh"}, (4,)),
        Case({"units": 2, "activation": "softmax", "use_bias": False}, (3, 4)),
    ],
    "Activation": [
        Case({"activation": "relu"}, (5,)),
        Case({"activation": "sigmoid"}, (2, 3)),
        Case({"activation": "softmax"}, (4,)),
    ],
    "Flatten": [Case({}, (2, 3, 2))],
    "Reshape": [Case({"target_shape": [3, -1]}, (2, 3, 2))],
    "Dropout": [Case({"rate": 0.4, "seed": 3}, (6,))],
    "Conv2D": [
        Case(
            {
                "filters": 3,
                "kernel_size": [2, 3],
                "strides": [1, 2],
                "padding": "same",
                "activation": "relu",
            },
            (5, 6, 2),
        ),
        Case(
            {"filters": 2, "kernel_size": 3, "activation": "sigmoid", "use_bias": False}, (4, 4, 1)
        ),
    ],
    "MaxPooling2D": [
        Case({"pool_size": [2, 2]}, (4, 5, 2)),
        Case({"pool_size": 3}, (6, 7, 2)),
        Case({"pool_size": 3, "strides": 1, "padding": "same"}, (3, 4, 1)),
    ],
    "AveragePooling2D": [
        Case({"pool_size": [2, 2]}, (4, 5, 2)),
        Case({"pool_size": 3, "strides": 2, "padding": "same"}, (4, 4, 1)),
    ],
    "GlobalAveragePooling2D": [Case({}, (3, 4, 2))],
    "GlobalMaxPooling2D": [Case({}, (3, 4, 2))],
    "BatchNormalization": [
        Case({}, (4,)),
        Case({"momentum": 0.9, "center": False}, (2, 3, 2)),
    ],
    "Embedding": [
        Case({"input_dim": 7, "output_dim": 3}, (4,), vocab=7),
        Case({"input_dim": 6, "output_dim": 2, "mask_zero": True}, (5,), vocab=6),
    ],
    "LSTM": [
        Case({"units": 3, "return_sequences": True}, (4, 2)),
        Case({"units": 2}, (5, 3), mask=True),
        Case({"units": 2, "dropout": 0.3, "recurrent_dropout": 0.2, "seed": 1}, (3, 2)),
    ],
    "GRU": [
        Case({"units": 3}, (4, 2)),
        Case(
            {"units": 2, "return_sequences": True, "go_backwards": True},
            (5, 2),
            mask=True,
            skip={"onnx": "a masked go_backwards layer has no ONNX graph (ExportError says so)"},
        ),
    ],
    "SimpleRNN": [
        Case({"units": 3, "activation": "relu", "return_sequences": True}, (4, 2)),
        Case({"units": 2}, (4, 3), mask=True),
    ],
    "Conv1D": [
        Case({"filters": 3, "kernel_size": 3, "activation": "relu"}, (7, 2)),
        Case({"filters": 2, "kernel_size": 4, "strides": 3, "padding": "same"}, (11, 3)),
        Case({"filters": 3, "kernel_size": 3, "padding": "causal", "dilation_rate": 2}, (9, 2)),
        Case({"filters": 2, "kernel_size": 1, "use_bias": False, "activation": "tanh"}, (4, 3)),
        Case({"filters": 2, "kernel_size": 2, "strides": 2, "padding": "causal"}, (5, 1)),
    ],
    "Conv1DTranspose": [
        Case({"filters": 3, "kernel_size": 3, "strides": 2}, (5, 2)),
        Case({"filters": 2, "kernel_size": 4, "strides": 2, "padding": "same"}, (5, 3)),
        Case({"filters": 2, "kernel_size": 2, "strides": 3, "activation": "sigmoid"}, (3, 2)),
        Case({"filters": 2, "kernel_size": 3, "padding": "same", "dilation_rate": 2}, (6, 2)),
    ],
    "MaxPooling1D": [
        Case({"pool_size": 2}, (7, 2)),
        Case({"pool_size": 3, "strides": 2, "padding": "same"}, (8, 2)),
    ],
    "AveragePooling1D": [
        Case({"pool_size": 2}, (7, 2)),
        Case({"pool_size": 3, "strides": 2, "padding": "same"}, (8, 2)),
    ],
    "GlobalAveragePooling1D": [
        Case({}, (5, 3)),
        Case({"keepdims": True}, (4, 2)),
        Case({}, (5, 3), mask=True),
    ],
    "GlobalMaxPooling1D": [Case({}, (5, 3)), Case({"keepdims": True}, (4, 2))],
    "UpSampling1D": [Case({}, (3, 2)), Case({"size": 3}, (2, 3))],
    **{
        kind: [
            Case({}, (), input_shapes=((4,), (4,))),
            Case({}, (), input_shapes=((2, 3), (2, 3), (2, 3))),
        ]
        for kind in ("Add", "Multiply", "Average", "Maximum", "Minimum")
    },
    "Subtract": [Case({}, (), input_shapes=((2, 3), (2, 3)))],
    "Concatenate": [
        Case({}, (), input_shapes=((2, 3), (2, 1), (2, 2))),
        Case({"axis": 1}, (), input_shapes=((2, 3), (1, 3))),
        Case({"axis": -2}, (), input_shapes=((2, 2, 3), (2, 1, 3))),
    ],
    "Bidirectional": [
        Case({"layer": _rnn("LSTM", units=2, return_sequences=True)}, (4, 2)),
        Case({"layer": _rnn("GRU", units=2), "merge_mode": "ave"}, (5, 2), mask=True),
        Case({"layer": _rnn("SimpleRNN", units=2), "merge_mode": "mul"}, (3, 2)),
    ],
    "RepeatVector": [Case({"n": 3}, (4,)), Case({"n": 1}, (2,))],
    "TimeDistributed": [
        Case({"layer": _wrapped("Dense", units=3, activation="tanh")}, (4, 2)),
        Case({"layer": _wrapped("Dense", units=2, activation="softmax")}, (3, 2)),
        Case({"layer": _wrapped("Dropout", rate=0.3, seed=2)}, (3, 4)),
        Case({"layer": _wrapped("Dense", units=2, use_bias=False)}, (3, 2, 4)),
        Case(
            {"layer": _wrapped("Conv2D", filters=2, kernel_size=2, activation="relu")}, (2, 3, 3, 1)
        ),
    ],
    "ReLU": [
        Case({}, (5,)),
        Case({"max_value": 0.8}, (2, 3)),
        Case({"negative_slope": 0.2, "threshold": 0.3}, (6,)),
        Case({"max_value": 1.0, "negative_slope": 0.1, "threshold": 0.2}, (2, 4)),
        Case({"max_value": 0.5, "negative_slope": 0.25}, (4,)),
    ],
    "LeakyReLU": [Case({}, (5,)), Case({"negative_slope": 0.05}, (2, 3))],
    "Softmax": [
        Case({}, (4,)),
        Case({"axis": 1}, (3, 2)),
        Case({"axis": [-2, -1]}, (2, 3)),
        Case({"axis": -2}, (2, 3, 2)),
    ],
    "LayerNormalization": [
        Case({}, (4,)),
        Case({"epsilon": 1e-5, "center": False}, (3, 5)),
        Case({"scale": False}, (2, 3)),
        Case({"axis": [-2, -1]}, (2, 3, 2)),
    ],
    "SpatialDropout1D": [
        Case({"rate": 0.4, "seed": 3}, (5, 4)),
        Case({"rate": 0.5, "seed": 1}, (3, 2)),
    ],
}

#: layer class name -> {what it lacks ('harness', 'converter' or 'cuda'): why}
EXEMPT: dict[str, dict[str, str]] = {}


# ------------------------------------------------------------------------------- coverage


def coverage_problems(registry: dict | None = None) -> list[str]:
    """What a registered layer lacks: harness cases, an ONNX converter, a CUDA run (each unless
    ``EXEMPT`` names a reason). Empty when every layer is covered."""
    from edgemine.layers import LAYER_REGISTRY
    from edgemine.onnx import DEFAULT_OPSET
    from edgemine.onnx.converters import find
    from edgemine.onnx.exporter import IDENTITY_LAYERS

    problems = []
    for name in sorted(LAYER_REGISTRY if registry is None else registry):
        exempt = EXEMPT.get(name, {})
        for what, reason in exempt.items():
            if what not in ("harness", "converter", "cuda") or not str(reason).strip():
                problems.append(f"{name}: EXEMPT[{what!r}] needs a known key and a reason")
        cases = CASES.get(name, [])
        if not cases and "harness" not in exempt:
            problems.append(f"{name}: no harness configuration in tests/layer_harness.py CASES")
        has_converter = name in IDENTITY_LAYERS or find(name, DEFAULT_OPSET) is not None
        if not has_converter and "converter" not in exempt:
            problems.append(f"{name}: no ONNX converter (edgemine/onnx/converters/)")
        if not any("cuda" not in c.skip for c in cases) and "cuda" not in exempt:
            problems.append(f"{name}: no case runs on the CUDA backend")
    return problems


def all_cases(check: str) -> list[tuple[str, Case]]:
    """(layer name, case) pairs that run ``check`` (``masking``: the cases with a mask)."""
    return [
        (name, case)
        for name in sorted(CASES)
        for case in CASES[name]
        if check not in case.skip and (check != "masking" or case.mask)
    ]


# ------------------------------------------------------------------------------- building


def make_layer(name: str, case: Case, first: bool = False):
    """The layer of ``case``; ``first``: with the input shape (a model's first layer)."""
    from edgemine.layers import LAYER_REGISTRY

    config = json.loads(json.dumps(case.config))
    if first and "shape" not in config and not case.input_shapes:
        config["input_shape"] = list(case.input_shape)
    return LAYER_REGISTRY[name](**config)


def randomize(layer, rng: np.random.Generator) -> None:
    """Random weights everywhere (non-zero biases, positive variances)."""
    new = []
    for var, w in zip(layer.variables, layer.get_weights()):
        base = var.name.rsplit("/", 1)[-1]
        if base in ("gamma", "moving_variance"):
            new.append(rng.uniform(0.5, 1.5, w.shape))
        elif base in ("beta", "moving_mean", "bias"):
            new.append(rng.normal(0, 0.3, w.shape))
        else:
            fan = max(int(np.prod(w.shape[:-1])), 1)
            new.append(rng.normal(0, 1.0 / np.sqrt(fan), w.shape))
    layer.set_weights(new)


def built_layer(name: str, case: Case, seed: int = 0):
    layer = make_layer(name, case)
    layer.build(case.build_shape)
    randomize(layer, np.random.default_rng(seed))
    return layer


def twin(layer):
    """A copy of ``layer`` from its config, with the same weights."""
    copy = type(layer).from_config(json.loads(json.dumps(layer.get_config())))
    copy.build(layer.input_shape)
    copy.set_weights(layer.get_weights())
    return copy


def inputs(case: Case, batch: int | None = None, seed: int = 1):
    """(x, mask or None) for ``case``: floats (or token ids), and a mask whose rows keep 1 to
    all of their steps (masked steps at the start of one row, the end of another)."""
    rng = np.random.default_rng(seed)
    n = case.batch if batch is None else batch
    if (
        case.input_shapes
    ):  # a merge: one array per input (no ties: max / min have no gradient there)
        return [rng.standard_normal((n, *s)) for s in case.shapes], None
    shape = (n, *case.input_shape)
    if case.vocab is not None:
        x = rng.integers(0, case.vocab, shape).astype(np.int32)
        x.reshape(-1)[:2] = [0, case.vocab - 1]  # both ends of the id range
    else:
        x = rng.standard_normal(shape)
    if not case.mask:
        return x, None
    steps = case.input_shape[0]
    mask = np.ones((n, steps), dtype=bool)
    for row in range(n):
        keep = 1 + (row * 2) % steps
        if row % 2:
            mask[row, keep:] = False
        else:
            mask[row, : steps - keep] = False
    return x, mask


def masked_model(name: str, case: Case):
    """Embedding(mask_zero=True) -> the layer: the mask comes from padding ids (id 0)."""
    from edgemine.layers import Embedding
    from edgemine.models import Sequential

    steps, features = case.input_shape
    emb = Embedding(9, features, mask_zero=True, input_shape=(steps,), name="harness_embedding")
    model = Sequential([emb, make_layer(name, case)])
    for layer in model.layers:
        randomize(layer, np.random.default_rng(2))
    return model


def model_and_inputs(name: str, case: Case, batch: int):
    """A one-layer model (or the masked model) and inputs for it."""
    from edgemine.layers import Input
    from edgemine.models import Model, Sequential

    if case.input_shapes:
        tensors = [Input(shape=s) for s in case.shapes]
        layer = make_layer(name, case)
        model = Model(tensors, layer(tensors))
        randomize(layer, np.random.default_rng(2))
        xs, _ = inputs(case, batch)
        return model, [x.astype(np.float32) for x in xs]
    if case.mask:
        model = masked_model(name, case)
        x, mask = inputs(case, batch)
        ids = np.random.default_rng(3).integers(1, 9, mask.shape).astype(np.int32)
        return model, np.where(mask, ids, 0)
    model = Sequential([make_layer(name, case, first=True)])
    randomize(model.layers[0], np.random.default_rng(2))
    x, _ = inputs(case, batch)
    return model, (x if case.vocab is not None else x.astype(np.float32))


# --------------------------------------------------------------------------------- checks


def _floats(x, dtype=np.float32):
    """Float inputs as ``dtype`` (token ids unchanged; a merge's list element-wise)."""
    if isinstance(x, list):
        return [_floats(a, dtype) for a in x]
    return x if x.dtype.kind in "iu" else x.astype(dtype)


def _forward(layer, x, mask, training: bool, seed: int = 0):
    from gradcheck import reseed

    reseed(layer, seed)
    kwargs = {} if mask is None else {"mask": layer.ops.asarray(mask)}
    device = [layer.ops.asarray(a) for a in x] if isinstance(x, list) else layer.ops.asarray(x)
    return layer.forward(device, training=training, **kwargs)


def check_config(name: str, case: Case) -> None:
    layer = built_layer(name, case)
    config = layer.get_config()
    copy = twin(layer)
    assert copy.get_config() == config
    x, mask = inputs(case)
    x = _floats(x)
    y = _forward(layer, x, mask, training=False)
    assert tuple(y.shape) == (case.batch, *layer.output_shape), "compute_output_shape"
    np.testing.assert_array_equal(_forward(copy, x, mask, training=False), y)


def check_masking(name: str, case: Case) -> None:
    """Masked steps are skipped: with the mask, each row's last output equals the output on its
    real steps alone (they are contiguous in ``inputs``' masks); a sequence output passes the
    mask on to the next layer."""
    layer = built_layer(name, case)
    x, mask = inputs(case)
    y = _forward(layer, x.astype(np.float32), mask, training=False)
    passed_on = layer.compute_mask(x, mask)
    if len(layer.output_shape) > 1:  # a sequence: the next layer gets the same mask
        np.testing.assert_array_equal(passed_on, mask)
        return
    assert passed_on is None, "a last-step output must end the mask"
    for row in range(case.batch):
        real = x[row : row + 1, mask[row]].astype(np.float32)
        alone = _forward(layer, real, None, training=False)
        np.testing.assert_allclose(y[row : row + 1], alone, rtol=1e-6, atol=1e-6, err_msg=f"{row}")


def check_save_load(name: str, case: Case, folder: Path) -> None:
    from edgemine.models import load_model

    model, x = model_and_inputs(name, case, 3)
    path = folder / f"{name}.edgemine"
    model.save(path)
    loaded = load_model(path, compile=False)
    assert loaded.get_config() == model.get_config()
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def check_gradients(name: str, case: Case) -> None:
    from gradcheck import check_layer

    layer = built_layer(name, case)
    x, mask = inputs(case)
    check_layer(layer, x, samples=25, mask=mask)


def _forward_backward(layer, x, mask, dy):
    """(y, dx, [weight gradients]) of one training step, on the host."""
    from gradcheck import dense_gradient

    ops = layer.ops
    y = ops.to_numpy(_forward(layer, x, mask, training=True))
    dx = layer.backward(ops.asarray(dy.astype(y.dtype)))
    grads = [dense_gradient(v.grad) for v in layer.trainable_variables]
    if isinstance(dx, list):  # a merge: one gradient per input
        return y, [ops.to_numpy(d) for d in dx], grads
    return y, (None if dx is None else ops.to_numpy(dx)), grads


def assert_close(name: str, got, want, rtol: float) -> None:
    """Element-wise within rtol, with an absolute floor of rtol times the array's scale."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * max(scale, 1e-6), err_msg=name)


def _compare_steps(a, b, rtol: float) -> None:
    (ya, dxa, ga), (yb, dxb, gb) = a, b
    assert_close("output", ya, yb, rtol)
    assert (dxa is None) == (dxb is None), "input gradient present on one side only"
    if isinstance(dxa, list):
        for k, (p, q) in enumerate(zip(dxa, dxb)):
            assert_close(f"input {k} gradient", p, q, rtol)
    elif dxa is not None:
        assert_close("input gradient", dxa, dxb, rtol)
    for k, (p, q) in enumerate(zip(ga, gb)):
        assert_close(f"weight gradient {k}", p, q, rtol)


def check_float32(name: str, case: Case) -> None:
    from gradcheck import to_float64

    layer32 = built_layer(name, case)
    layer64 = twin(layer32)
    to_float64(layer64)
    x, mask = inputs(case)
    dy = np.random.default_rng(5).standard_normal((case.batch, *layer32.output_shape))
    _compare_steps(
        _forward_backward(layer32, _floats(x), mask, dy),
        _forward_backward(layer64, _floats(x, np.float64), mask, dy.astype(np.float64)),
        rtol=1e-4,
    )


def check_onnx(name: str, case: Case) -> None:
    import onnx
    import onnxruntime as ort
    from onnx_reference import reference

    from edgemine.onnx import to_onnx

    model, x = model_and_inputs(name, case, 3)
    proto = to_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = reference(proto)
    names = [i.name for i in proto.graph.input]
    xs = x if isinstance(x, list) else [x]
    for rows in (slice(0, 1), slice(None)):
        batch = [a[rows] for a in xs]
        want = model.predict(batch if len(batch) > 1 else batch[0])
        feed = {n: a.astype(np.int64) if a.dtype.kind == "i" else a for n, a in zip(names, batch)}
        for label, got in (
            ("onnxruntime", sess.run(None, feed)[0]),
            ("onnx.reference", ref.run(None, feed)[0]),
        ):
            assert got.shape == want.shape, label
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5, err_msg=label)


def check_cuda(name: str, case: Case, cuda) -> None:
    """The CUDA backend ``cuda`` against the CPU one: inference output, then a training step's
    output and gradients (forward values 1e-5, gradients 1e-4 relative to scale)."""
    cpu_layer = built_layer(name, case)
    cuda_layer = twin(cpu_layer)
    cuda_layer.to_backend(cuda)
    x, mask = inputs(case, batch=2)
    x = _floats(x)
    with cuda.batch_memory():
        got = cuda.to_numpy(_forward(cuda_layer, x, mask, training=False))
    assert_close("inference output", got, _forward(cpu_layer, x, mask, training=False), 1e-5)
    if case.mask or name == "Embedding":
        want_mask = cpu_layer.compute_mask(x, mask)
        got_mask = cuda_layer.compute_mask(
            cuda.asarray(x), None if mask is None else cuda.asarray(mask)
        )
        assert (want_mask is None) == (got_mask is None)
        if want_mask is not None:
            np.testing.assert_array_equal(cuda.to_numpy(got_mask), want_mask)
    dy = np.random.default_rng(5).standard_normal((2, *cpu_layer.output_shape)).astype(np.float32)
    with cuda.batch_memory():
        got_step = _forward_backward(cuda_layer, x, mask, dy)
    _compare_steps(got_step, _forward_backward(cpu_layer, x, mask, dy), rtol=1e-4)


#: the CUDA cases run in this many subprocesses (in parallel under pytest-xdist)
CUDA_SHARDS = 2


def cuda_shard(shard: int) -> list[tuple[str, Case]]:
    """The CUDA cases of one shard (every CUDA_SHARDS-th case)."""
    return all_cases("cuda")[shard::CUDA_SHARDS]


def run_cuda_checks(shard: int) -> dict:
    """The shard's CUDA cases against the CPU backend; {case: {"status", "error"}}."""
    from strict_simulator import make_strict

    from edgemine.backend import get_ops

    make_strict()
    cuda = get_ops("cuda")
    results = {}
    for name, case in cuda_shard(shard):
        key = f"{name}[{case.id}]"
        try:
            check_cuda(name, case, cuda)
            results[key] = {"status": "pass", "error": ""}
        except Exception:
            results[key] = {"status": "fail", "error": traceback.format_exc(limit=8)}
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    if sys.argv[1] == "cuda":
        print(json.dumps(run_cuda_checks(int(sys.argv[2]))))
