"""Embedding: lookups, the row-sparse gradient, mask_zero, sparse Adam and bad token ids."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgemine import optimizers
from edgemine.kernels import cpu as ops
from edgemine.layers import LAYER_REGISTRY, Dense, Embedding, Flatten
from edgemine.layers.base import SparseGradient, Variable
from edgemine.models import Sequential
from edgemine.preprocessing import Tokenizer, pad_sequences


def _dense(grad: SparseGradient) -> np.ndarray:
    out = np.zeros(grad.shape, dtype=np.float64)
    out[grad.rows] = grad.values
    return out


def test_forward_is_a_row_lookup_with_keras_shapes():
    emb = Embedding(10, 3, input_length=4)
    assert emb.input_spec_shape == (4,)
    ids = np.array([[1, 2, 0, 9], [9, 9, 3, 0]], dtype=np.int32)
    y = emb(ids)
    assert y.shape == (2, 4, 3)
    np.testing.assert_array_equal(y, emb.get_weights()[0][ids])
    assert emb.get_weights()[0].shape == (10, 3)


def test_uniform_initializer_is_keras_random_uniform():
    emb = Embedding(1000, 16)
    emb.build((5,))
    w = emb.get_weights()[0]
    assert w.dtype == np.float32
    assert -0.05 <= w.min() < -0.04 and 0.04 < w.max() <= 0.05


def test_input_length_makes_the_seed_model_build_on_add():
    model = Sequential([Embedding(input_dim=100, output_dim=8, input_length=7)])
    assert model.built and model.output_shape == (7, 8)


@settings(max_examples=15, deadline=None)
@given(
    vocab=st.sampled_from([3, 17, 5000]),
    dim=st.integers(1, 4),
    batch=st.integers(1, 4),
    length=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_sparse_gradient_equals_dense_scatter_add(vocab, dim, batch, length, seed):
    # vocab 5000 > 16 x (ids in the batch) takes the sort-based path, the others the slot table
    rng = np.random.default_rng(seed)
    emb = Embedding(vocab, dim)
    ids = rng.integers(0, min(vocab, 4), (batch, length)).astype(np.int32)  # many duplicates
    emb(ids)
    emb.forward(ids, training=True)
    dy = rng.standard_normal((batch, length, dim)).astype(np.float32)
    assert emb.backward(dy) is None
    grad = emb.embeddings.grad
    assert isinstance(grad, SparseGradient)
    assert grad.shape == (vocab, dim)
    assert len(np.unique(grad.rows)) == len(grad.rows) == len(np.unique(ids))
    assert grad.values.shape == (len(grad.rows), dim)
    expected = np.zeros((vocab, dim))
    np.add.at(expected, ids.reshape(-1), dy.reshape(-1, dim))
    np.testing.assert_allclose(_dense(grad), expected, rtol=1e-6, atol=1e-6)


def test_no_dense_vocab_gradient_is_allocated_per_step():
    emb = Embedding(100_000, 8)
    ids = np.array([[3, 4, 3]], dtype=np.int32)
    emb(ids)
    emb.forward(ids, training=True)
    emb.backward(np.ones((1, 3, 8), np.float32))
    grad = emb.embeddings.grad
    assert grad.values.nbytes == 2 * 8 * 4  # two unique rows, not 100,000


def test_sparse_adam_equals_dense_adam_on_the_same_gradient():
    rng = np.random.default_rng(1)
    table = rng.standard_normal((12, 5)).astype(np.float32)
    dense_var = Variable("embeddings", table.copy())
    sparse_var = Variable("embeddings", table.copy())
    dense_opt, sparse_opt = optimizers.Adam(0.01), optimizers.Adam(0.01)
    dense_opt.build([dense_var], ops)
    sparse_opt.build([sparse_var], ops)
    for step in range(6):
        rows = np.unique(rng.integers(0, 12, 4 if step % 2 else 2)).astype(np.int64)
        values = rng.standard_normal((len(rows), 5)).astype(np.float32)
        dense_grad = np.zeros_like(table)
        dense_grad[rows] = values
        dense_var.grad = dense_grad
        sparse_var.grad = SparseGradient(rows, values, table.shape)
        dense_opt.apply_gradients([dense_var])
        sparse_opt.apply_gradients([sparse_var])
        np.testing.assert_array_equal(sparse_var.value, dense_var.value)


def test_mask_zero_marks_padding():
    emb = Embedding(10, 2, mask_zero=True)
    ids = np.array([[0, 0, 3, 4]], dtype=np.int32)
    emb(ids)
    np.testing.assert_array_equal(emb.compute_mask(ids), [[False, False, True, True]])
    assert Embedding(10, 2).compute_mask(ids) is None


def test_config_round_trip_through_the_registry():
    emb = Embedding(50, 4, mask_zero=True, input_length=9, name="words")
    config = emb.get_config()
    assert config["embeddings_initializer"] == "uniform"
    clone = LAYER_REGISTRY["Embedding"].from_config(config)
    assert clone.get_config() == config


# ----------------------------------------------------------------------------- bad input


def test_token_id_out_of_range_names_layer_and_id():
    emb = Embedding(10, 2, name="tokens")
    with pytest.raises(ValueError, match=r"tokens.*token id 10.*input_dim=10"):
        emb(np.array([[1, 10, 2]]))


def test_negative_token_id_is_rejected():
    emb = Embedding(10, 2, name="tokens")
    with pytest.raises(ValueError, match=r"tokens.*token id -3 is negative"):
        emb(np.array([[1, -3]]))


def test_float_tokens_are_rejected_by_the_layer_and_the_model():
    emb = Embedding(10, 2, name="tokens")
    with pytest.raises(TypeError, match=r"tokens.*integer token ids"):
        emb(np.array([[1.0, 2.0]], dtype=np.float32))
    model = Sequential([Embedding(10, 2, input_length=2), Flatten(), Dense(1)])
    with pytest.raises(TypeError, match="integer token ids"):
        model.predict(np.array([[1.5, 2.0]]))
    # whole-number floats are ids, as in Keras
    assert model.predict(np.array([[1.0, 2.0]])).shape == (1, 1)


def test_model_reports_out_of_range_ids():
    model = Sequential([Embedding(10, 2, input_length=2, name="emb"), Flatten(), Dense(1)])
    with pytest.raises(ValueError, match=r"emb.*token id 12"):
        model.predict(np.array([[1, 12]]))


def test_pad_sequences_maxlen_zero_and_empty_text_list():
    with pytest.raises(ValueError, match="maxlen"):
        pad_sequences([[1, 2]], maxlen=0)
    with pytest.raises(ValueError, match="at least one text"):
        Tokenizer(num_words=10).fit_on_texts([])


@pytest.mark.parametrize(
    ("args", "message"),
    [((0, 4), "input_dim"), ((10, 0), "output_dim"), ((10, 2.5), "output_dim")],
)
def test_bad_constructor_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        Embedding(*args)
