"""ONNX export: every graph is checked (full_check) and run in onnxruntime AND in onnx's
ReferenceEvaluator, and both must match ``model.predict`` to 1e-5 absolute at batch 1 and a
larger batch, for every layer and option, at opset 13, the default and the newest supported."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx_reference import reference

from edgemine.layers import (
    GRU,
    LSTM,
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Bidirectional,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    InputLayer,
    Layer,
    MaxPooling2D,
    Reshape,
    SimpleRNN,
)
from edgemine.models import Sequential
from edgemine.onnx import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, ExportError, export, to_onnx
from edgemine.onnx.converters import find, supported_layers

ATOL = 1e-5
OPSETS = sorted({MIN_OPSET, DEFAULT_OPSET, MAX_OPSET})


# ------------------------------------------------------------------------------------ helpers


def randomize(model: Sequential, seed: int = 0) -> Sequential:
    """Random weights everywhere (non-zero biases), BatchNormalization statistics included."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        new = []
        for var, w in zip(layer.variables, layer.get_weights()):
            if var.name in ("gamma", "moving_variance"):
                new.append(rng.uniform(0.5, 1.5, w.shape))
            elif var.name in ("beta", "moving_mean") or "bias" in var.name:
                new.append(rng.normal(0, 0.3, w.shape))
            else:
                fan = max(int(np.prod(w.shape[:-1])), 1)
                new.append(rng.normal(0, 1.0 / np.sqrt(fan), w.shape))
        layer.set_weights(new)
    return model


def inputs_for(model: Sequential, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    first = model.layers[0]
    if getattr(first, "input_dtype", "float") == "int":
        x = rng.integers(0, first.input_dim, size=(n, *model.input_shape))
        return x.astype(np.int64)
    return rng.normal(size=(n, *model.input_shape)).astype(np.float32)


def check(
    model: Sequential,
    x: np.ndarray | None = None,
    opset: int = DEFAULT_OPSET,
    nchw: bool = False,
    atol: float = ATOL,
) -> onnx.ModelProto:
    """Export, full_check, and compare onnxruntime + ReferenceEvaluator with model.predict."""
    proto = to_onnx(model, opset=opset, nchw_input=nchw)
    onnx.checker.check_model(proto, full_check=True)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = reference(proto)
    name = proto.graph.input[0].name
    x = inputs_for(model, 5) if x is None else x
    for xb in (x[:1], x):
        want = model.predict(xb)
        feed = np.ascontiguousarray(xb.transpose(0, 3, 1, 2)) if nchw else xb
        got_ort = sess.run(None, {name: feed})[0]
        got_ref = ref.run(None, {name: feed})[0]
        assert got_ort.shape == want.shape
        np.testing.assert_allclose(got_ort, want, rtol=0, atol=atol, err_msg="onnxruntime")
        np.testing.assert_allclose(got_ref, want, rtol=0, atol=atol, err_msg="reference")
    return proto


def ops(proto: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in proto.graph.node]


def seed_cnn() -> Sequential:
    return Sequential(
        [
            Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
            MaxPooling2D((2, 2)),
            Conv2D(64, (3, 3), activation="relu"),
            MaxPooling2D((2, 2)),
            Conv2D(64, (3, 3), activation="relu"),
            Flatten(),
            Dense(64, activation="relu"),
            Dense(10, activation="softmax"),
        ]
    )


def no_transpose_pairs(proto: onnx.ModelProto) -> bool:
    producers = {o: n for n in proto.graph.node for o in n.output}
    for node in proto.graph.node:
        if node.op_type == "Transpose":
            src = producers.get(node.input[0])
            if src is not None and src.op_type == "Transpose":
                return False
    return True


# ------------------------------------------------------------------------------- structure


def test_seed_cnn_graph_layout():
    model = randomize(seed_cnn())
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    proto = check(model, x)
    nodes = list(proto.graph.node)
    transposes = [n for n in nodes if n.op_type == "Transpose"]
    assert len(transposes) == 2
    assert transposes[0].input[0] == "input" and list(transposes[0].attribute[0].ints) == [
        0,
        3,
        1,
        2,
    ]
    flatten = next(i for i, n in enumerate(nodes) if n.op_type == "Flatten")
    assert nodes[flatten - 1].op_type == "Transpose"
    assert list(nodes[flatten - 1].attribute[0].ints) == [0, 2, 3, 1]
    assert ops(proto).count("Conv") == 3 and "Dropout" not in ops(proto)
    # dynamic batch axis, Keras shapes at both ends
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [28, 28, 1]
    assert proto.graph.output[0].name == "probabilities"


def test_seed_cnn_nchw_input_has_no_input_transpose():
    model = randomize(seed_cnn())
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    proto = check(model, x, nchw=True)
    transposes = [n for n in proto.graph.node if n.op_type == "Transpose"]
    assert len(transposes) == 1 and transposes[0].input[0] != "input"
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [1, 28, 28]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["preprocessing"])["layout"] == "NCHW"


@pytest.mark.parametrize("opset", OPSETS)
def test_every_cnn_layer_at_opset(opset):
    model = randomize(
        Sequential(
            [
                BatchNormalization(input_shape=(9, 9, 3)),
                Conv2D(4, (3, 2), strides=(2, 1), padding="same", activation="tanh"),
                BatchNormalization(),  # after an activation: not foldable, Mul + Add in NCHW
                AveragePooling2D((2, 2), strides=(1, 2), padding="same"),
                Conv2D(5, 3, padding="same"),
                BatchNormalization(),  # folded into the Conv
                Activation("relu"),
                Dense(6, activation="sigmoid"),  # Dense on an NCHW image: a 1x1 Conv
                Dropout(0.3),
                MaxPooling2D(3, strides=2, padding="same"),
                Activation("softmax"),  # over the channels: axis 1 in NCHW
                GlobalMaxPooling2D(),
                Dense(8),
                BatchNormalization(),  # folded into the Gemm
                Reshape((2, 4)),
                Dense(3),  # rank-3 Dense: MatMul + Add
                Flatten(),
                Dense(4, activation="softmax"),
            ]
        ),
        seed=opset,
    )
    proto = check(model, opset=opset)
    assert proto.opset_import[0].version == opset
    assert ops(proto).count("Mul") == 2  # the first and the second BatchNormalization
    assert no_transpose_pairs(proto)


@pytest.mark.parametrize("opset", OPSETS)
def test_global_pooling_straight_from_nhwc(opset):
    for cls in (GlobalAveragePooling2D, GlobalMaxPooling2D):
        model = Sequential([cls(input_shape=(5, 6, 3)), Dense(2)])
        proto = check(randomize(model), opset=opset)
        assert "Transpose" not in ops(proto)


def test_batchnorm_folding():
    conv_bn = randomize(
        Sequential(
            [
                Conv2D(3, 3, use_bias=False, input_shape=(6, 6, 2)),
                BatchNormalization(),
                Dropout(0.5),
                Flatten(),
                Dense(4),
                Dropout(0.2),
                BatchNormalization(),
                Dense(2),
            ]
        )
    )
    proto = check(conv_bn)
    assert ops(proto) == ["Transpose", "Conv", "Transpose", "Flatten", "Gemm", "Gemm"]
    after_relu = randomize(
        Sequential([Dense(4, activation="relu", input_shape=(3,)), BatchNormalization()])
    )
    assert ops(check(after_relu)) == ["Gemm", "Relu", "Mul", "Add"]
    first = randomize(Sequential([BatchNormalization(input_shape=(4,)), Dense(2)]))
    assert ops(check(first)) == ["Mul", "Add", "Gemm"]
    seq = randomize(Sequential([BatchNormalization(input_shape=(3, 4)), Dense(2)]))
    assert ops(check(seq)) == ["Mul", "Add", "MatMul", "Add"]


def test_dense_on_nhwc_image_and_image_output():
    model = randomize(Sequential([Dense(3, input_shape=(4, 5, 2)), Activation("softmax")]))
    proto = check(model)
    assert ops(proto) == ["MatMul", "Add", "Softmax"]
    conv_out = randomize(Sequential([Conv2D(2, 2, input_shape=(5, 5, 1))]))
    proto = check(conv_out)
    assert ops(proto) == ["Transpose", "Conv", "Transpose"]
    assert proto.graph.output[0].name == "output"


def test_identity_only_model():
    model = Sequential([InputLayer(shape=(3,)), Dropout(0.5)])
    assert ops(check(model)) == ["Identity"]


def test_export_writes_file_and_metadata(tmp_path):
    model = randomize(seed_cnn())
    model.class_names = [f"digit {i}" for i in range(10)]
    model.preprocessing = {
        "kind": "image",
        "height": 28,
        "width": 28,
        "channels": 1,
        "scale": 1 / 255,
    }
    path = export(model, tmp_path / "sub" / "cnn.onnx", opset=13)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["edgemine_version"]
    layers = json.loads(meta["layers"])
    assert [entry["class_name"] for entry in layers][:2] == ["Conv2D", "MaxPooling2D"]
    assert json.loads(meta["class_names"])[3] == "digit 3"
    assert json.loads(meta["preprocessing"])["scale"] == pytest.approx(1 / 255)
    assert proto.ir_version == onnx.helper.find_min_ir_version_for(list(proto.opset_import))
    bare = to_onnx(randomize(Sequential([Dense(2, input_shape=(3,))])))
    keys = {p.key for p in bare.metadata_props}
    assert keys == {"edgemine_version", "layers"}


# ------------------------------------------------------------------------- every option


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (1, 3)])
def test_conv_options(padding, strides):
    for k, (act, bias) in enumerate(
        [("linear", True), ("relu", False), ("sigmoid", True), ("tanh", True), ("softmax", False)]
    ):
        model = Sequential(
            [
                Conv2D(
                    3,
                    (3, 2),
                    strides=strides,
                    padding=padding,
                    activation=act,
                    use_bias=bias,
                    input_shape=(7, 8, 2),
                )
            ]
        )
        check(randomize(model, seed=k))


@pytest.mark.parametrize("cls", [MaxPooling2D, AveragePooling2D])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_pooling_options(cls, padding):
    for pool, strides in [((2, 2), None), ((3, 2), (1, 2)), ((2, 3), (3, 1)), (1, 2)]:
        model = Sequential(
            [Conv2D(2, 1, input_shape=(7, 8, 2)), cls(pool, strides=strides, padding=padding)]
        )
        check(randomize(model))


def test_activation_layers_every_rank():
    for act in ("linear", "relu", "sigmoid", "tanh", "softmax"):
        for shape in ((5,), (3, 4), (4, 5, 3)):
            check(Sequential([Activation(act, input_shape=shape)]))


def test_reshape_from_image_and_back():
    model = randomize(
        Sequential(
            [
                Conv2D(4, 3, padding="same", input_shape=(4, 4, 2)),
                Reshape((8, 8)),
                Dense(3),
                Reshape((2, 4, 3)),
                Conv2D(2, 1),
                Flatten(),
                Dense(2, activation="softmax"),
            ]
        )
    )
    proto = check(model)
    assert no_transpose_pairs(proto)


# ------------------------------------------------------------------- random architectures


@st.composite
def cnn_models(draw):
    h, w, c = draw(st.integers(4, 9)), draw(st.integers(4, 9)), draw(st.integers(1, 3))
    model = Sequential([InputLayer(shape=(h, w, c))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(["conv", "conv", "maxpool", "avgpool", "bn", "act", "drop", "dense"])
        )
        if kind == "conv":
            layer = Conv2D(
                draw(st.integers(1, 4)),
                (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                strides=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
                padding=draw(st.sampled_from(["valid", "same"])),
                activation=draw(st.sampled_from(["linear", "relu", "sigmoid", "tanh"])),
                use_bias=draw(st.booleans()),
            )
        elif kind in ("maxpool", "avgpool"):
            cls = MaxPooling2D if kind == "maxpool" else AveragePooling2D
            layer = cls(
                (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                strides=draw(st.none() | st.tuples(st.integers(1, 3), st.integers(1, 3))),
                padding=draw(st.sampled_from(["valid", "same"])),
            )
        elif kind == "bn":
            layer = BatchNormalization(epsilon=draw(st.sampled_from([1e-3, 1e-5])))
        elif kind == "act":
            layer = Activation(draw(st.sampled_from(["relu", "sigmoid", "tanh", "softmax"])))
        elif kind == "drop":
            layer = Dropout(0.5)
        else:
            layer = Dense(
                draw(st.integers(1, 4)), activation=draw(st.sampled_from(["linear", "relu"]))
            )
        try:
            model.add(layer)
        except ValueError:
            assume(False)
    head = draw(st.sampled_from(["flatten", "gap", "gmp", "none"]))
    if head != "none":
        model.add(
            {"flatten": Flatten, "gap": GlobalAveragePooling2D, "gmp": GlobalMaxPooling2D}[head]()
        )
        model.add(
            Dense(
                draw(st.integers(1, 5)),
                activation=draw(st.sampled_from(["linear", "softmax", "sigmoid"])),
            )
        )
        if draw(st.booleans()):
            model.add(BatchNormalization())
    return randomize(model, seed=draw(st.integers(0, 1000)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=cnn_models(), nchw=st.booleans(), opset=st.sampled_from(OPSETS))
def test_random_cnns(model, nchw, opset):
    proto = check(model, nchw=nchw, opset=opset)
    assert no_transpose_pairs(proto)
    transposes = ops(proto).count("Transpose")
    assert transposes <= 2


# --------------------------------------------------------------------------------- errors


class Custom(Layer):
    def forward(self, x, training=False):
        return x


def test_unsupported_layer_is_named():
    model = Sequential([Dense(2, input_shape=(3,)), Custom(name="mystery")])
    with pytest.raises(ExportError, match="layer 'mystery' \\(Custom\\): no ONNX converter"):
        to_onnx(model)


def test_bad_arguments():
    model = Sequential([Dense(2, input_shape=(3,))])
    for bad in (12, MAX_OPSET + 1, "17", True):
        with pytest.raises(ExportError, match="opset"):
            to_onnx(model, opset=bad)
    with pytest.raises(ExportError, match="nchw_input"):
        to_onnx(model, nchw_input=True)
    with pytest.raises(ExportError, match="not built"):
        to_onnx(Sequential([Dense(2)]))
    with pytest.raises(ExportError, match="Sequential"):
        to_onnx(object())
    assert issubclass(ExportError, ValueError)


def test_docstring_examples():
    import doctest
    import importlib

    names = [
        "edgemine.onnx",
        "edgemine.onnx.exporter",
        "edgemine.onnx.converters",
        "edgemine.onnx.converters.conv",
        "edgemine.onnx.converters.core",
        "edgemine.onnx.converters.pooling",
        "edgemine.onnx.converters.normalization",
        "edgemine.onnx.converters.recurrent",
    ]
    for name in names:
        mod = importlib.import_module(name)
        assert doctest.testmod(mod, optionflags=doctest.ELLIPSIS).failed == 0, name


def test_registry():
    assert find("Conv2D", MIN_OPSET) is find("Conv2D", MAX_OPSET)
    assert find("GlobalAveragePooling2D", 17) is not find("GlobalAveragePooling2D", 18)
    assert find("Conv2D", MIN_OPSET - 1) is None
    assert {"Conv2D", "Dense", "BatchNormalization", "Flatten"} <= set(supported_layers())


# ------------------------------------------------------------------------------ recurrent

RNNS = {"LSTM": LSTM, "GRU": GRU, "SimpleRNN": SimpleRNN}


def tokens(n: int, steps: int, vocab: int, seed: int = 2) -> np.ndarray:
    """Ids with Keras-style front padding, some all-padding rows and zeros in the middle."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, size=(n, steps))
    for i, row in enumerate(x):
        row[: rng.integers(0, steps + 1)] = 0
        if i % 3 == 1:
            row[rng.integers(0, steps)] = 0
    x[0] = 0  # an empty text
    return x.astype(np.int64)


def text_model(
    kind: str,
    seq: bool,
    back: bool,
    mask: bool,
    bi: bool,
    merge: str = "concat",
    seed: int = 0,
    **kw,
) -> Sequential:
    rnn = RNNS[kind](5, return_sequences=seq, go_backwards=back, **kw)
    layers = [
        Embedding(20, 4, mask_zero=mask, input_length=6),
        Bidirectional(rnn, merge_mode=merge) if bi else rnn,
    ]
    if seq:
        layers.append(Flatten())
    layers.append(Dense(3, activation="softmax"))
    return randomize(Sequential(layers), seed=seed)


def seed_lstm() -> Sequential:
    return Sequential(
        [
            Embedding(input_dim=10000, output_dim=64, input_length=100),
            LSTM(64, return_sequences=True),
            LSTM(64),
            Dense(64, activation="relu"),
            Dense(10, activation="softmax"),
        ]
    )


def test_seed_lstm_graph_is_two_lstm_nodes():
    model = randomize(seed_lstm())
    x = np.random.default_rng(0).integers(0, 10000, size=(4, 100)).astype(np.int64)
    proto = check(model, x)
    kinds = ops(proto)
    assert kinds.count("LSTM") == 2 and not {"Loop", "Scan", "If"} & set(kinds)
    # the ids are transposed to time-major once; no float tensor is transposed
    assert kinds == [
        "Transpose",
        "Gather",
        "LSTM",
        "Squeeze",
        "LSTM",
        "Squeeze",
        "Gemm",
        "Relu",
        "Gemm",
        "Softmax",
    ]
    lstm = [n for n in proto.graph.node if n.op_type == "LSTM"]
    assert [list(n.output) for n in lstm] == [[lstm[0].name], ["", lstm[1].output[1]]]
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64


@pytest.mark.parametrize("kind", sorted(RNNS))
@pytest.mark.parametrize("bi", [False, True], ids=["uni", "bidirectional"])
@pytest.mark.parametrize("mask", [False, True], ids=["nomask", "mask_zero"])
def test_recurrent_options(kind, bi, mask):
    for k, (seq, back) in enumerate([(False, False), (False, True), (True, False), (True, True)]):
        model = text_model(kind, seq, back, mask, bi, seed=k)
        proto = check(model, tokens(7, 6, 20, seed=k))
        assert ops(proto).count({"SimpleRNN": "RNN"}.get(kind, kind)) == 1
        node = next(n for n in proto.graph.node if n.op_type in ("LSTM", "GRU", "RNN"))
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        want = "bidirectional" if bi else ("reverse" if back else "forward")
        assert attrs["direction"] == want.encode()
        if kind == "GRU":
            assert attrs["linear_before_reset"] == 1
        if not mask:
            assert "sequence_lens" not in node.input[4:5]


@pytest.mark.parametrize("merge", ["concat", "sum", "mul", "ave"])
def test_bidirectional_merge_modes(merge):
    for k, (seq, mask) in enumerate([(False, False), (True, False), (False, True), (True, True)]):
        check(
            text_model("LSTM", seq, False, mask, True, merge=merge, seed=k),
            tokens(5, 6, 20, seed=k),
        )


def test_bidirectional_over_a_backwards_layer():
    for k, (seq, mask) in enumerate([(False, False), (True, False), (False, True), (True, True)]):
        check(text_model("GRU", seq, True, mask, True, seed=k), tokens(5, 6, 20, seed=k))


def test_stacked_recurrent_layers_stay_time_major():
    model = randomize(
        Sequential(
            [
                Embedding(30, 6, input_length=7),
                LSTM(5, return_sequences=True),
                Dense(4, activation="tanh"),
                BatchNormalization(),
                GRU(3, return_sequences=True, go_backwards=True),
                Bidirectional(SimpleRNN(4, return_sequences=True)),
                Bidirectional(LSTM(2), merge_mode="sum"),
                Dense(2, activation="softmax"),
            ]
        )
    )
    proto = check(model, tokens(6, 7, 30))
    assert ops(proto).count("Transpose") == 2  # the ids, and inside the concat of directions
    for opset in (MIN_OPSET, MAX_OPSET):
        check(model, tokens(4, 7, 30), opset=opset)


def test_masks_through_stacks_and_sequence_outputs():
    model = randomize(
        Sequential(
            [
                Embedding(30, 6, mask_zero=True, input_length=7),
                LSTM(5, return_sequences=True, go_backwards=True),
                Bidirectional(GRU(3, return_sequences=True), merge_mode="ave"),
                SimpleRNN(4, return_sequences=True, activation="relu"),
                Dense(2),
            ]
        )
    )
    for opset in (MIN_OPSET, MAX_OPSET):
        check(model, tokens(9, 7, 30), opset=opset)


def test_mask_passes_through_dropout_as_in_keras():
    # Dropout, Dense, Activation and BatchNormalization pass a Keras mask on unchanged
    model = randomize(
        Sequential(
            [
                Embedding(20, 4, mask_zero=True, input_length=6),
                Dropout(0.5),
                LSTM(5),
                Dense(2, activation="softmax"),
            ]
        )
    )
    proto = check(model, tokens(6, 6, 20))
    assert "ScatterElements" in ops(proto)


def test_embedding_alone_and_dynamic_length():
    model = Sequential([Embedding(12, 3)])
    model.build((None, None))
    x = tokens(4, 5, 12)
    check(model, x)
    check(model, tokens(2, 9, 12))
    lstm = randomize(Sequential([Embedding(12, 3, mask_zero=True), LSTM(4), Dense(2)]))
    lstm.build((None, None))
    check(lstm, tokens(3, 5, 12))
    check(lstm, tokens(3, 8, 12))


@st.composite
def recurrent_models(draw):
    mask = draw(st.booleans())
    steps = draw(st.integers(1, 6))
    layers = [Embedding(15, draw(st.integers(1, 4)), mask_zero=mask, input_length=steps)]
    n = draw(st.integers(1, 3))
    for i in range(n):
        kind = draw(st.sampled_from(sorted(RNNS)))
        kw = {
            "activation": draw(st.sampled_from(["tanh", "relu", "linear", "sigmoid"])),
            "use_bias": draw(st.booleans()),
        }
        if kind != "SimpleRNN":
            kw["recurrent_activation"] = draw(
                st.sampled_from(["sigmoid", "tanh", "relu", "linear"])
            )
        seq = i < n - 1 or draw(st.booleans())
        rnn = RNNS[kind](
            draw(st.integers(1, 4)), return_sequences=seq, go_backwards=draw(st.booleans()), **kw
        )
        if draw(st.booleans()):
            rnn = Bidirectional(
                rnn, merge_mode=draw(st.sampled_from(["concat", "sum", "mul", "ave"]))
            )
        layers.append(rnn)
        if seq and draw(st.booleans()):
            layers.append(Dense(draw(st.integers(1, 3)), activation="tanh"))
    if getattr(layers[-1], "return_sequences", False) or type(layers[-1]).__name__ == "Dense":
        layers.append(Flatten())
    layers.append(Dense(3, activation="softmax"))
    model = Sequential(layers)
    return randomize(model, seed=draw(st.integers(0, 1000))), steps


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=recurrent_models(), opset=st.sampled_from(OPSETS))
def test_random_recurrent_models(spec, opset):
    model, steps = spec
    x = tokens(6, steps, 15)
    try:
        proto = check(model, x, opset=opset)
    except ExportError as e:  # only the documented refusal
        assert "mask_zero=True with go_backwards or Bidirectional" in str(e)
        return
    assert not {"Loop", "Scan"} & set(ops(proto))
    recurrent = [n for n in proto.graph.node if n.op_type in ("LSTM", "GRU", "RNN")]
    wanted = [layer for layer in model.layers if type(layer).__name__ in (*RNNS, "Bidirectional")]
    assert len(recurrent) == len(wanted)


def test_masked_reverse_refusal_names_the_option():
    model = text_model("LSTM", False, True, True, False, activation="sigmoid")
    with pytest.raises(
        ExportError, match="layer 'lstm.*\\(LSTM\\): mask_zero=True with go_backwards"
    ):
        to_onnx(model)
    # the same layer without a mask, or running forwards, exports
    check(text_model("LSTM", False, True, False, False, activation="sigmoid"), tokens(4, 6, 20))
    check(text_model("LSTM", False, False, True, False, activation="sigmoid"), tokens(4, 6, 20))


def test_int32_ids_through_the_runtime(tmp_path):
    from edgemine.runtime import Session

    model = text_model("GRU", False, False, True, False)
    sess = Session(export(model, tmp_path / "gru.onnx"))
    x = tokens(5, 6, 20)
    np.testing.assert_allclose(sess.predict(x.astype(np.int32)), model.predict(x), atol=ATOL)


def test_image_to_sequence_hybrid():
    model = randomize(
        Sequential(
            [
                Conv2D(4, 3, padding="same", activation="relu", input_shape=(6, 8, 1)),
                MaxPooling2D(2),
                Reshape((3, 16)),
                LSTM(5, return_sequences=True),
                Bidirectional(GRU(2)),
                Dense(3, activation="softmax"),
            ]
        )
    )
    for nchw in (False, True):
        proto = check(model, nchw=nchw)
        assert no_transpose_pairs(proto)
    first = randomize(Sequential([SimpleRNN(3, input_shape=(5, 2)), Dense(2)]))
    assert ops(check(first)) == ["Transpose", "RNN", "Squeeze", "Gemm"]


def test_describe_onnx(tmp_path):
    from edgemine.onnx import describe_onnx

    model = randomize(seed_lstm())
    model.class_names = ["a", "b"] + [str(i) for i in range(8)]
    model.preprocessing = {"kind": "text", "maxlen": 100, "word_index": {"x": 1, "y": 2}}
    path = export(model, tmp_path / "lstm.onnx", opset=MIN_OPSET)
    text = describe_onnx(path)
    assert (
        text.splitlines()[0]
        == f"lstm.onnx: ONNX model, opset {MIN_OPSET}, IR 7, producer edgemine 0.1.0"
    )
    assert "input:  tokens (batch, 100) int64" in text
    assert "output: probabilities (batch, 10) float32" in text
    assert "LSTM x2" in text and "Embedding embedding" in text
    assert '"word_index": "<2 words>"' in text and 'class_names: ["a", "b"' in text
    with pytest.raises(ValueError, match="no such file"):
        describe_onnx(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.onnx: not a readable ONNX model"):
        describe_onnx(tmp_path / "junk.onnx")
