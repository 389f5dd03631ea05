"""Tiny ONNX models with edgemine's metadata, built with onnx.helper, for the deployment tests.

They stand in for what ``edgemine.onnx.export`` writes (same graph shapes, same
``metadata_props`` keys) so that quantization and bundling can be tested on their own.
``tools/pi_check_prepare.py --toy cnn|lstm`` uses them too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgemine.zoo import MNIST_PREPROCESSING

OPSET = 17
KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def _glorot(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def _finish(graph: onnx.GraphProto, meta: dict[str, str]) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="edgemine-tests",
    )
    model.ir_version = 8
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model


def make_cnn(path: str | Path, filters: int = 8, classes: int = 10, seed: int = 0) -> Path:
    """An NHWC 28x28x1 CNN: Transpose, Conv, Relu, MaxPool, Transpose, Flatten, Gemm, Softmax."""
    rng = np.random.default_rng(seed)
    flat = 13 * 13 * filters
    inits = [
        numpy_helper.from_array(_glorot(rng, (filters, 1, 3, 3), 9, 9 * filters), "conv_w"),
        numpy_helper.from_array(rng.normal(0, 0.05, filters).astype(np.float32), "conv_b"),
        numpy_helper.from_array(_glorot(rng, (flat, classes), flat, classes) * 4, "dense_w"),
        numpy_helper.from_array(rng.normal(0, 0.05, classes).astype(np.float32), "dense_b"),
    ]
    nodes = [
        helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "conv_w", "conv_b"], ["conv"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("MaxPool", ["relu"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Transpose", ["pool"], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Flatten", ["nhwc"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "dense_w", "dense_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "toy_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 28, 28, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes])],
        inits,
    )
    layers = [
        {"class_name": "Conv2D", "config": {"filters": filters, "kernel_size": [3, 3]}},
        {"class_name": "MaxPooling2D", "config": {"pool_size": [2, 2]}},
        {"class_name": "Flatten", "config": {}},
        {"class_name": "Dense", "config": {"units": classes, "activation": "softmax"}},
    ]
    meta = {
        "edgemine_version": "0.1.0",
        "layers": json.dumps(layers),
        "class_names": json.dumps([str(i) for i in range(classes)]),
        "preprocessing": json.dumps(MNIST_PREPROCESSING),
    }
    path = Path(path)
    onnx.save(_finish(graph, meta), path)
    return path


def make_lstm(
    path: str | Path,
    vocab: int = 1000,
    maxlen: int = 20,
    dim: int = 16,
    units: int = 32,
    classes: int = 3,
    seed: int = 0,
) -> Path:
    """A text model: int64 tokens, Gather, one LSTM node, Squeeze, Gemm, Softmax."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.uniform(-0.5, 0.5, (vocab, dim)).astype(np.float32), "emb"),
        numpy_helper.from_array(_glorot(rng, (1, 4 * units, dim), dim, 4 * units) * 2, "lstm_w"),
        numpy_helper.from_array(
            _glorot(rng, (1, 4 * units, units), units, 4 * units) * 2, "lstm_r"
        ),
        numpy_helper.from_array(rng.normal(0, 0.1, (1, 8 * units)).astype(np.float32), "lstm_b"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axes0"),
        numpy_helper.from_array(_glorot(rng, (units, classes), units, classes) * 3, "dense_w"),
        numpy_helper.from_array(np.zeros(classes, np.float32), "dense_b"),
    ]
    nodes = [
        helper.make_node("Gather", ["emb", "tokens"], ["embedded"]),
        helper.make_node("Transpose", ["embedded"], ["seq_first"], perm=[1, 0, 2]),
        helper.make_node(
            "LSTM",
            ["seq_first", "lstm_w", "lstm_r", "lstm_b"],
            ["", "y_h"],
            hidden_size=units,
        ),
        helper.make_node("Squeeze", ["y_h", "axes0"], ["last"]),
        helper.make_node("Gemm", ["last", "dense_w", "dense_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "toy_lstm",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["N", maxlen])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes])],
        inits,
    )
    layers = [
        {"class_name": "Embedding", "config": {"input_dim": vocab, "output_dim": dim}},
        {"class_name": "LSTM", "config": {"units": units}},
        {"class_name": "Dense", "config": {"units": classes, "activation": "softmax"}},
    ]
    meta = {
        "edgemine_version": "0.1.0",
        "layers": json.dumps(layers),
        "class_names": json.dumps(["negative", "neutral", "positive"][:classes]),
        "preprocessing": json.dumps(
            {
                "kind": "text",
                "maxlen": maxlen,
                "num_words": vocab,
                "lower": True,
                "filters": KERAS_FILTERS,
                "split": " ",
                "padding": "pre",
                "truncating": "pre",
            }
        ),
    }
    path = Path(path)
    onnx.save(_finish(graph, meta), path)
    return path


def toy_word_index(vocab: int = 1000) -> dict[str, int]:
    """A word index like Keras's Tokenizer's, one entry more than ``vocab`` (cut by the bundle)."""
    return {f"word{i}": i for i in range(1, vocab + 1)}


def toy_images(n: int, seed: int = 1) -> np.ndarray:
    """Blurry random blobs in [0, 1], float32 NHWC (n, 28, 28, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 28, 28)).astype(np.float32)
    x = (x + np.roll(x, 1, 1) + np.roll(x, 1, 2) + np.roll(x, (1, 1), (1, 2))) / 4
    x = np.clip((x - 0.4) * 3, 0, 1)
    return x[..., None].astype(np.float32)


def toy_tokens(n: int, maxlen: int = 20, vocab: int = 1000, seed: int = 2) -> np.ndarray:
    """Token ids (n, maxlen) int64, left-padded with zeros like Keras's pad_sequences."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, size=(n, maxlen), dtype=np.int64)
    for row, length in zip(x, rng.integers(3, maxlen + 1, size=n)):
        row[: maxlen - length] = 0
    return x
