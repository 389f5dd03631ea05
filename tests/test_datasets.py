"""The shipped data sets: exact splits, shapes, dtypes and counts (see DATA.md)."""

from __future__ import annotations

import csv
import doctest
import gzip
import hashlib
import io
import re
from importlib import resources

import numpy as np
import pytest

import edgemine.datasets as datasets
from edgemine.datasets import mnist, tweets
from edgemine.preprocessing import Tokenizer, pad_sequences

DATA = resources.files("edgemine.datasets") / "data"


def _raw_mnist():
    with np.load(io.BytesIO((DATA / "mnist_5k.npz").read_bytes())) as npz:
        return npz["x"], npz["y"]


def _raw_tweet_rows():
    text = gzip.decompress((DATA / "tweets.csv.gz").read_bytes()).decode("latin-1")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return rows[0], rows[1:]


# ---------------------------------------------------------------------------------------
# shipped files


def test_sources_md_hashes_match_shipped_files():
    sources = (DATA / "SOURCES.md").read_text(encoding="utf-8")
    for name in ("mnist_5k.npz", "tweets.csv.gz"):
        digest = hashlib.sha256((DATA / name).read_bytes()).hexdigest()
        assert re.search(rf"sha256 of `{re.escape(name)}`: `{digest}`", sources), name
    for needle in ("CC BY-SA 3.0", "LeCun", "Cortes", "Burges", "MIT", "Data for Everyone"):
        assert needle in sources


def test_raw_files():
    x, y = _raw_mnist()
    assert x.shape == (5000, 784) and x.dtype == np.uint8
    assert y.shape == (5000,) and y.dtype == np.uint8
    assert np.all(np.diff(y.astype(int)) >= 0)  # sorted by label
    header, rows = _raw_tweet_rows()
    assert header == ["sentiment", "confidence", "text"]
    assert len(rows) == 38158


# ---------------------------------------------------------------------------------------
# MNIST


def test_mnist_shapes_dtypes_counts():
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    assert x_train.dtype == np.uint8 and x_test.dtype == np.uint8
    assert y_train.shape == (4000,) and y_test.shape == (1000,)
    assert np.issubdtype(y_train.dtype, np.integer)
    assert np.bincount(y_train).tolist() == [400] * 10
    assert np.bincount(y_test).tolist() == [100] * 10
    assert x_train.max() == 255 and x_train.min() == 0


def test_mnist_split_rule_against_raw_npz():
    x, y = _raw_mnist()
    test = np.arange(5000) % 5 == 4
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    np.testing.assert_array_equal(x_test.reshape(-1, 784), x[4::5])
    np.testing.assert_array_equal(y_test, y[4::5])
    # DATA.md (2026-12-02): TRAIN rows in the order RandomState(0).permutation(4000)
    order = np.random.RandomState(0).permutation(4000)
    np.testing.assert_array_equal(x_train.reshape(-1, 784), x[~test][order])
    np.testing.assert_array_equal(y_train, y[~test][order])
    # row-major 28x28
    np.testing.assert_array_equal(x_train[3, 10], x[~test][order[3], 280:308])


def test_mnist_train_tail_holds_every_class():
    """Keras's validation_split takes the last rows: they must not be one class."""
    (_, y_train), _ = mnist.load_data()
    assert len(np.unique(y_train[-400:])) == 10


def test_mnist_returns_fresh_copies_and_is_deterministic():
    (a, b), (c, d) = mnist.load_data()
    a[:] = 7
    b[:] = 7
    (a2, b2), (c2, d2) = mnist.load_data()
    assert a2.flags.writeable and not np.all(a2 == 7) and not np.all(b2 == 7)
    np.testing.assert_array_equal(c, c2)
    np.testing.assert_array_equal(d, d2)


# ---------------------------------------------------------------------------------------
# tweets


def test_tweets_texts_split_and_label_counts():
    (train_texts, y_train), (test_texts, y_test) = tweets.load_texts()
    assert len(train_texts) == 30527 and len(test_texts) == 7631
    assert len(train_texts) + len(test_texts) == 38158
    assert np.bincount(np.concatenate([y_train, y_test])).tolist() == [16186, 15018, 6954]
    assert np.bincount(y_train).tolist() == [12949, 12015, 5563]
    assert np.bincount(y_test).tolist() == [3237, 3003, 1391]
    assert all(isinstance(t, str) for t in train_texts + test_texts)


def test_tweets_split_rule_against_raw_csv():
    _, rows = _raw_tweet_rows()
    (train_texts, y_train), (test_texts, y_test) = tweets.load_texts()
    label = {"negative": 0, "neutral": 1, "positive": 2}
    assert test_texts == [r[2] for r in rows[4::5]]
    train_rows = [r for i, r in enumerate(rows) if i % 5 != 4]
    # DATA.md (2026-12-02): TRAIN rows in the order RandomState(0).permutation(30527)
    train_rows = [train_rows[i] for i in np.random.RandomState(0).permutation(30527)]
    assert train_texts == [r[2] for r in train_rows]
    assert y_test.tolist() == [label[r[0]] for r in rows[4::5]]
    assert y_train.tolist() == [label[r[0]] for r in train_rows]
    assert len(np.unique(y_train[-3000:])) == 3  # the validation_split tail is not one class
    assert tweets.CLASS_NAMES == ("negative", "neutral", "positive")


def test_tweets_load_data_defaults():
    (x_train, y_train), (x_test, y_test) = tweets.load_data()
    assert x_train.shape == (30527, 100) and x_test.shape == (7631, 100)
    assert x_train.dtype == np.int32 and x_test.dtype == np.int32
    assert y_train.shape == (30527,) and y_test.shape == (7631,)
    assert np.issubdtype(y_train.dtype, np.integer)
    assert x_train.min() == 0 and x_train.max() == 9999 and x_test.max() < 10000
    # 'pre' padding: within a row, zeros only before the first word
    nonzero = x_train != 0
    first = nonzero.argmax(axis=1)
    assert np.all(nonzero.sum(axis=1) == 100 - first)


def test_tweets_matches_tokenizer_and_pad_sequences():
    _, rows = _raw_tweet_rows()
    (train_texts, _), (test_texts, _) = tweets.load_texts()
    tok = Tokenizer(num_words=10000)
    # fitted on the TRAIN texts in file order (ties in the word index follow first appearance)
    tok.fit_on_texts([r[2] for i, r in enumerate(rows) if i % 5 != 4])
    (x_train, _), (x_test, _) = tweets.load_data(num_words=10000, maxlen=100)
    head = train_texts[:6000]  # a slice keeps the test fast; the fit used all of TRAIN
    np.testing.assert_array_equal(
        x_train[:6000], pad_sequences(tok.texts_to_sequences(head), maxlen=100)
    )
    np.testing.assert_array_equal(
        x_test, pad_sequences(tok.texts_to_sequences(test_texts), maxlen=100)
    )
    # a small vocabulary and a short maxlen that truncates
    tok.num_words = 500
    (_, _), (x_test, _) = tweets.load_data(num_words=500, maxlen=12)
    np.testing.assert_array_equal(
        x_test, pad_sequences(tok.texts_to_sequences(test_texts), maxlen=12)
    )


def test_tweets_num_words_and_maxlen_respected():
    (x_train, _), (x_test, _) = tweets.load_data(num_words=50, maxlen=7)
    assert x_train.shape == (30527, 7) and x_test.shape == (7631, 7)
    assert x_train.max() == 49 and x_test.max() <= 49
    (x_all, _), _ = tweets.load_data(num_words=None, maxlen=80)
    assert x_all.max() == len(tweets.get_word_index(None))
    # the longest tweet has fewer than 80 words, so nothing is truncated at maxlen=80
    assert np.all(x_all[:, 0] == 0)


def test_tweets_word_index():
    full = tweets.get_word_index(None)
    top = tweets.get_word_index(10000)
    assert len(full) == 43397
    assert len(top) == 9999 and sorted(top.values()) == list(range(1, 10000))
    assert all(full[w] == i for w, i in top.items())
    assert list(full)[:2] == ["the", "to"]
    top["the"] = -1  # a copy
    assert tweets.get_word_index(10000)["the"] == 1


def test_tweets_get_tokenizer_reproduces_load_data():
    tok = tweets.get_tokenizer(num_words=300)
    (train_texts, _), _ = tweets.load_texts()
    (x_train, _), _ = tweets.load_data(num_words=300, maxlen=30)
    np.testing.assert_array_equal(
        pad_sequences(tok.texts_to_sequences(train_texts[:200]), maxlen=30), x_train[:200]
    )
    tok.num_words = 1  # a fresh copy: the cached tokenizer is unchanged
    assert tweets.get_tokenizer(num_words=300).num_words == 300


def test_tweets_deterministic_and_copies():
    (a, b), (c, d) = tweets.load_data(num_words=1000, maxlen=20)
    a[:] = -1
    b[:] = -1
    (a2, b2), (c2, d2) = tweets.load_data(num_words=1000, maxlen=20)
    assert a2.min() >= 0 and b2.min() >= 0
    np.testing.assert_array_equal(c, c2)
    np.testing.assert_array_equal(d, d2)
    (texts, _), _ = tweets.load_texts()
    texts[0] = "changed"
    assert tweets.load_texts()[0][0][0] != "changed"


@pytest.mark.parametrize(
    "kwargs, exc, name",
    [
        ({"num_words": 0}, ValueError, "num_words"),
        ({"num_words": -1}, ValueError, "num_words"),
        ({"maxlen": 0}, ValueError, "maxlen"),
        ({"maxlen": -3}, ValueError, "maxlen"),
        ({"maxlen": None}, TypeError, "maxlen"),
        ({"maxlen": 2.5}, TypeError, "maxlen"),
        ({"num_words": "10"}, TypeError, "num_words"),
    ],
)
def test_tweets_bad_arguments(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        tweets.load_data(**kwargs)


def test_get_word_index_bad_argument():
    with pytest.raises(ValueError, match="num_words"):
        tweets.get_word_index(0)


# ---------------------------------------------------------------------------------------
# docstring examples


@pytest.mark.parametrize(
    "module",
    [
        datasets,
        mnist,
        tweets,
        datasets.splits,
        datasets.wine,
        datasets.digits,
        datasets.basicmotions,
        datasets.kdd_tsad_135,
    ],
)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------------------------------
# validation splits


def test_keras_validation_split_on_mnist_sees_every_class():
    """Keras's validation_split (the last rows) gave val_accuracy 0.0 on label-sorted MNIST."""
    from edgemine.layers import Dense, Flatten
    from edgemine.models import Sequential
    from edgemine.utils import set_random_seed

    set_random_seed(0)
    (x, y), _ = mnist.load_data()
    model = Sequential([Flatten(input_shape=(28, 28)), Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x / 255.0, y, epochs=1, validation_split=0.1, verbose=0)
    assert history.history["val_accuracy"][-1] > 0.6


def test_train_validation_split_is_stratified_shuffled_and_seeded():
    y = np.repeat(np.arange(3), [50, 30, 20])  # grouped by label, as the raw files are
    x = np.arange(100, dtype=np.float32)[:, None]
    (x_tr, y_tr), (x_val, y_val) = datasets.train_validation_split(x, y, 0.1, seed=5)
    assert np.bincount(y_val).tolist() == [5, 3, 2] and len(y_tr) == 90
    assert sorted(np.concatenate([x_tr, x_val])[:, 0].tolist()) == list(range(100))
    np.testing.assert_array_equal(y_tr, y[x_tr[:, 0].astype(int)])  # rows stay paired
    assert not np.all(np.diff(y_tr) >= 0)  # shuffled, not grouped
    again = datasets.train_validation_split(x, y, 0.1, seed=5)
    np.testing.assert_array_equal(again[1][0], x_val)
    other = datasets.train_validation_split(x, y, 0.1, seed=6)
    assert not np.array_equal(other[1][0], x_val)
    one_hot = np.eye(3, dtype=np.float32)[y]
    (_, _), (_, yh_val) = datasets.train_validation_split(x, one_hot, 0.1, seed=5)
    assert yh_val.sum(axis=0).tolist() == [5, 3, 2]
    (_, _), (_, yu) = datasets.train_validation_split(x, y, 0.5, stratify=False)
    assert len(yu) == 50


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((np.zeros((4, 1)), np.arange(4), 0.0), ValueError, "fraction"),
        ((np.zeros((4, 1)), np.arange(4), 1.0), ValueError, "fraction"),
        ((np.zeros((4, 1)), np.arange(4), "0.1"), TypeError, "fraction"),
        ((np.zeros((4, 1)), np.arange(3), 0.5), ValueError, "same number of rows"),
        ((np.zeros((4, 1)), np.array([0.5, 1, 2, 3]), 0.5), ValueError, "class labels"),
        ((np.zeros((2, 1)), np.array([0, 1]), 0.4), ValueError, "leaves no"),
    ],
)
def test_train_validation_split_bad_arguments(args, exc, match):
    with pytest.raises(exc, match=match):
        datasets.train_validation_split(*args)


# ----- the data-mining sets of DATA.md (2026-12-02) -----


def test_wine_split_and_csv(tmp_path):
    from edgemine.datasets import wine

    (x_tr, y_tr), (x_te, y_te) = wine.load_data()
    assert x_tr.dtype == np.float32 and x_tr.shape == (144, 13) and x_te.shape == (34, 13)
    assert np.bincount(y_tr).tolist() == [48, 57, 39] and np.bincount(y_te).tolist() == [11, 14, 9]
    lines = wine.write_csv(tmp_path / "wine.csv").read_text().splitlines()
    assert lines[0].endswith(",proline,class") and len(lines) == 179
    assert lines[1] == "14.23,1.71,2.43,15.6,127,2.8,3.06,0.28,2.29,5.64,1.04,3.92,1065,class_0"
    # per-class rank r % 5 == 4: class 0's rows 4, 9, ... are test rows, file order kept
    assert x_te[0, 0] == np.float32(float(lines[1 + 4].split(",")[0]))


def test_digits_split_and_folder(tmp_path):
    from PIL import Image

    from edgemine.datasets import digits

    (x_tr, y_tr), (x_te, y_te) = digits.load_data()
    assert x_tr.shape == (1442, 8, 8) and x_te.shape == (355, 8, 8) and x_tr.dtype == np.uint8
    assert np.bincount(y_te).tolist() == [35, 36, 35, 36, 36, 36, 36, 35, 34, 36]
    assert x_tr.max() == 255 and set(np.unique(x_tr)) <= {round(v * 255 / 16) for v in range(17)}
    root = digits.write_folder(tmp_path / "digits")
    files = sorted((root / "test").glob("*/*.png"))
    assert len(files) == 355 and len(list((root / "train").glob("*/*.png"))) == 1442
    first = sorted((root / "test" / "0").glob("*.png"))[0]
    assert first.name == "0036.png"  # class 0's fifth row in the file (rows 0, 10, 20, 30, 36)
    np.testing.assert_array_equal(np.asarray(Image.open(first)), x_te[y_te == 0][0])


def test_basicmotions():
    from edgemine.datasets import basicmotions

    (x_tr, y_tr), (x_te, y_te) = basicmotions.load_data()
    assert x_tr.shape == x_te.shape == (40, 100, 6) and x_tr.dtype == np.float32
    assert np.bincount(y_tr).tolist() == np.bincount(y_te).tolist() == [10, 10, 10, 10]
    assert np.isfinite(x_tr).all() and x_tr.std() > 0


def test_kdd_tsad_135_windows():
    from edgemine.datasets import kdd_tsad_135 as kdd

    values, flags = kdd.load_series()
    assert len(values) == 7501 and np.flatnonzero(flags).tolist() == list(range(4187, 4199))
    assert not flags[: kdd.TRAIN_POINTS].any()
    train, test = kdd.windows(values[:1200]), kdd.windows(values[1200:])
    assert train.shape == (1137, 64) and test.shape == (6238, 64)
    assert int(kdd.windows(flags[1200:]).any(axis=1).sum()) == 75
    with pytest.raises(ValueError, match="cannot cut windows of 64"):
        kdd.windows(values[:10])
