"""Every layer's backward pass against central finite differences in float64 (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import check_layer
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from edgemine.layers import (
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPooling2D,
    Reshape,
)

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ACTS = st.sampled_from(["linear", "relu", "sigmoid", "tanh", "softmax"])


def _images(rng, n, h, w, c):
    return rng.standard_normal((n, h, w, c))


@settings(SETTINGS, max_examples=30)  # both patch-matrix layouts (K <= 16 and K > 16)
@given(
    n=st.integers(1, 3),
    h=st.integers(3, 7),
    w=st.integers(3, 7),
    c=st.integers(1, 3),
    f=st.integers(1, 4),
    k=st.integers(1, 3),
    s=st.integers(1, 2),
    padding=st.sampled_from(["valid", "same"]),
    act=ACTS,
    use_bias=st.booleans(),
    first=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_conv2d(n, h, w, c, f, k, s, padding, act, use_bias, first, seed):
    """As a first layer the input gradient is skipped."""
    layer = Conv2D(
        f,
        (k, k + (seed % 2) if k + 1 <= min(h, w) else k),
        strides=(s, 1 + seed % 2),
        padding=padding,
        activation=act,
        use_bias=use_bias,
    )
    layer.need_input_grad = not first
    x = _images(np.random.default_rng(seed), n, h, w, c)
    check_layer(layer, x, seed=seed, check_input=not first)


@SETTINGS
@given(
    n=st.integers(1, 3),
    h=st.integers(2, 7),
    w=st.integers(2, 7),
    c=st.integers(1, 3),
    p=st.integers(1, 3),
    s=st.sampled_from([None, 1, 2]),
    padding=st.sampled_from(["valid", "same"]),
    kind=st.sampled_from([MaxPooling2D, AveragePooling2D]),
    seed=st.integers(0, 1000),
)
def test_pooling(n, h, w, c, p, s, padding, kind, seed):
    if padding == "valid" and p > min(h, w):
        p = min(h, w)
    layer = kind(pool_size=(p, max(1, p - seed % 2)), strides=s, padding=padding)
    check_layer(layer, _images(np.random.default_rng(seed), n, h, w, c), seed=seed)


@SETTINGS
@given(
    n=st.integers(1, 3),
    h=st.integers(1, 5),
    w=st.integers(1, 5),
    c=st.integers(1, 4),
    kind=st.sampled_from([GlobalAveragePooling2D, GlobalMaxPooling2D]),
    seed=st.integers(0, 99),
)
def test_global_pooling(n, h, w, c, kind, seed):
    check_layer(kind(), _images(np.random.default_rng(seed), n, h, w, c), seed=seed)


@SETTINGS
@given(
    n=st.integers(1, 4),
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=2),
    units=st.integers(1, 6),
    act=ACTS,
    use_bias=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_dense(n, shape, units, act, use_bias, seed):
    x = np.random.default_rng(seed).standard_normal((n, *shape))
    check_layer(Dense(units, activation=act, use_bias=use_bias), x, seed=seed)


@SETTINGS
@given(n=st.integers(1, 4), c=st.integers(1, 5), act=ACTS, seed=st.integers(0, 1000))
def test_activation(n, c, act, seed):
    x = np.random.default_rng(seed).standard_normal((n, 3, c))
    check_layer(Activation(act), x, seed=seed)


@SETTINGS
@given(
    n=st.integers(2, 5),
    h=st.integers(1, 4),
    c=st.integers(1, 4),
    training=st.booleans(),
    center=st.booleans(),
    scale=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_batchnorm(n, h, c, training, center, scale, seed):
    rng = np.random.default_rng(seed)
    layer = BatchNormalization(center=center, scale=scale)
    layer.build((h, c))
    for v in layer.variables:  # non-trivial statistics and affine parameters
        v.value = (rng.random(v.shape) + 0.5).astype(np.float32)
    # Training mode updates the moving statistics on every forward; they do not affect the output.
    check_layer(
        layer, rng.standard_normal((n, h, c)) * 2 + 1, training=training, seed=seed, rtol=1e-4
    )


def test_flatten_and_reshape_are_exact():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    check_layer(Flatten(), x)
    check_layer(Reshape((4, 15)), x)
    check_layer(Reshape((-1, 5)), x)


def test_dropout_backward_uses_the_forward_mask():
    layer = Dropout(0.5, seed=3)
    layer.build((1000,))
    x = np.ones((4, 1000), dtype=np.float32)
    y = layer.forward(x, training=True)
    assert set(np.unique(y)) <= {0.0, 2.0}
    assert 0.4 < (y == 0).mean() < 0.6
    g = np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(layer.backward(g), g * y)  # y is exactly the scaled mask
    np.testing.assert_array_equal(layer.forward(x, training=False), x)


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh", "softmax", "linear"])
def test_activation_float32_matches_float64(act):
    x = np.random.default_rng(1).standard_normal((5, 7))
    y64 = Activation(act)(x)
    y32 = Activation(act)(x.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "shape,pool", [((2, 7, 5, 3), (2, 2)), ((1, 6, 6, 4), (3, 2)), ((3, 4, 4, 1), (1, 1))]
)
def test_tiled_max_pooling_equals_the_general_kernel(shape, pool):
    """The fast path for tiling windows (ties included: the first maximum wins) against the
    general scatter kernel."""
    from edgemine.kernels.cpu import pool as P

    x = np.random.default_rng(0).integers(0, 3, shape).astype(np.float32)  # many ties
    y, which = P.pool2d_forward("max", x, pool, pool, "valid")
    n, _, _, c = shape
    oh, ow = y.shape[1:3]
    y2 = np.empty_like(y)
    arg = np.empty(y.shape, dtype=np.int32)
    P._max_fwd.serial(x, pool[0], pool[1], pool[0], pool[1], 0, 0, y2, arg)
    np.testing.assert_array_equal(y, y2)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    dx2 = np.empty_like(x)
    P._max_bwd.serial(dy, arg, dx2)
    np.testing.assert_array_equal(
        P.pool2d_backward("max", shape, which, dy, pool, pool, "valid"), dx2
    )


def _direct_conv(x, kernel, strides, padding):
    """Conv2D written out in float64 from its definition (TensorFlow's 'same' padding)."""
    from edgemine.kernels._shared import conv_output_size

    n, h, w, _ = x.shape
    kh, kw, _, f = kernel.shape
    oh, pt = conv_output_size(h, kh, strides[0], padding)
    ow, pl = conv_output_size(w, kw, strides[1], padding)
    xp = np.zeros((n, h + kh + oh * strides[0], w + kw + ow * strides[1], x.shape[3]))
    xp[:, pt : pt + h, pl : pl + w] = x
    y = np.zeros((n, oh, ow, f))
    for i in range(oh):
        for j in range(ow):
            win = xp[:, i * strides[0] : i * strides[0] + kh, j * strides[1] : j * strides[1] + kw]
            y[:, i, j] = np.tensordot(win, kernel, axes=3)
    return y


@settings(SETTINGS, max_examples=40)
@given(
    n=st.integers(1, 40),
    h=st.integers(3, 9),
    c=st.sampled_from([1, 2, 5]),
    k=st.integers(1, 4),
    s=st.integers(1, 3),
    padding=st.sampled_from(["valid", "same"]),
    keep=st.booleans(),
    chunk_rows=st.sampled_from([50, 10**6]),
    seed=st.integers(0, 1000),
)
def test_conv2d_kernels_match_the_definition(n, h, c, k, s, padding, keep, chunk_rows, seed):
    """Both patch layouts, the border clipping and the chunked inference path (several chunks
    and a ragged end, or one) against a direct float64 convolution. The gradients are checked as adjoints:
    conv is linear in x and in the kernel, so <conv(x, k), dy> == <x, dx> == <k, dk>."""
    from edgemine.kernels.cpu import conv as C

    rng = np.random.default_rng(seed)
    kh, kw = k, max(1, k - seed % 2)
    assume(padding == "same" or (kh <= h and kw <= h + 1))  # a valid conv needs a window
    x = rng.standard_normal((n, h, h + 1, c)).astype(np.float32)
    kernel = rng.standard_normal((kh, kw, c, 3)).astype(np.float32)
    ref = _direct_conv(x.astype(np.float64), kernel.astype(np.float64), (s, s), padding)
    dy = rng.standard_normal(ref.shape).astype(np.float32)
    default_rows, C.INFERENCE_CHUNK_ROWS = C.INFERENCE_CHUNK_ROWS, chunk_rows
    try:
        y, cache = C.conv2d_forward(x, kernel, None, (s, s), padding, keep=keep)
        if keep:
            dx, dk, db = C.conv2d_backward(x.shape, cache, kernel, dy, (s, s), padding)
    finally:
        C.INFERENCE_CHUNK_ROWS = default_rows
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    if not keep:
        return
    inner = (ref * dy).sum()
    np.testing.assert_allclose((dx.astype(np.float64) * x).sum(), inner, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose((dk.astype(np.float64) * kernel).sum(), inner, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 1, 2)), rtol=1e-4, atol=1e-4)
