"""Keras 2 semantics of edgemine.preprocessing (Tokenizer, pad_sequences)."""

from __future__ import annotations

import doctest
import json
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edgemine.preprocessing as preprocessing
from edgemine.preprocessing import sequence, text
from edgemine.preprocessing.sequence import pad_sequences
from edgemine.preprocessing.text import Tokenizer, text_to_word_sequence, tokenizer_from_json

# ---------------------------------------------------------------------------------------
# text_to_word_sequence / filters


def test_default_filters_are_keras_2():
    assert text.DEFAULT_FILTERS == '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
    tok = Tokenizer()
    assert tok.filters == text.DEFAULT_FILTERS
    assert (tok.num_words, tok.lower, tok.split, tok.char_level, tok.oov_token) == (
        None,
        True,
        " ",
        False,
        None,
    )


def test_filters_lower_and_split():
    words = text_to_word_sequence("Hello, World!\tTab\nNew-line_under  x.y@z  [a]")
    assert words == ["hello", "world", "tab", "new", "line", "under", "x", "y", "z", "a"]


def test_apostrophe_and_carriage_return_are_kept():
    # ' is not in the default filters, nor is \r: both stay inside words, as in Keras 2.
    assert text_to_word_sequence("Don't stop\rnow") == ["don't", "stop\rnow"]


def test_lower_false_and_custom_filters_and_split():
    assert text_to_word_sequence("Ab cD", lower=False) == ["Ab", "cD"]
    assert text_to_word_sequence("a-b c", filters="") == ["a-b", "c"]
    assert text_to_word_sequence("a,b c;d", filters=";", split=",") == ["a", "b c", "d"]


# ---------------------------------------------------------------------------------------
# Tokenizer fitting


def test_word_index_by_count_ties_in_first_appearance_order():
    tok = Tokenizer()
    tok.fit_on_texts(["c b a", "a d", "b"])
    # counts: c1 b2 a2 d1 -> b, a (tie, b first), then c, d (tie, c first)
    assert tok.word_index == {"b": 1, "a": 2, "c": 3, "d": 4}
    assert tok.index_word == {1: "b", 2: "a", 3: "c", 4: "d"}
    assert isinstance(tok.word_counts, OrderedDict)
    assert list(tok.word_counts.items()) == [("c", 1), ("b", 2), ("a", 2), ("d", 1)]
    assert tok.document_count == 3
    assert dict(tok.word_docs) == {"c": 1, "b": 2, "a": 2, "d": 1}
    assert dict(tok.index_docs) == {1: 2, 2: 2, 3: 1, 4: 1}


def test_repeated_word_in_one_text_counts_once_in_word_docs():
    tok = Tokenizer()
    tok.fit_on_texts(["x x x y"])
    assert tok.word_counts == OrderedDict([("x", 3), ("y", 1)])
    assert dict(tok.word_docs) == {"x": 1, "y": 1}


def test_fit_twice_accumulates():
    tok = Tokenizer()
    tok.fit_on_texts(["a b"])
    tok.fit_on_texts(["b c", "c c"])
    assert tok.document_count == 3
    assert list(tok.word_counts.items()) == [("a", 1), ("b", 2), ("c", 3)]
    assert tok.word_index == {"c": 1, "b": 2, "a": 3}


def test_char_level_and_pretokenized_lists():
    tok = Tokenizer(char_level=True)
    tok.fit_on_texts(["abcA!"])
    # char level: no filtering, lower-cased characters
    assert tok.word_index == {"a": 1, "b": 2, "c": 3, "!": 4}
    tok = Tokenizer()
    tok.fit_on_texts([["Hello", "World"], "hello there"])
    assert tok.word_index == {"hello": 1, "world": 2, "there": 3}


# ---------------------------------------------------------------------------------------
# texts_to_sequences / sequences_to_texts


def test_num_words_keeps_indices_below_num_words():
    tok = Tokenizer(num_words=3)
    tok.fit_on_texts(["c b a", "a d", "b"])  # b1 a2 c3 d4
    assert len(tok.word_index) == 4  # the vocabulary itself is not cut
    assert tok.texts_to_sequences(["a b c d e"]) == [[2, 1]]
    assert tok.sequences_to_texts([[1, 2, 3, 4, 99]]) == ["b a"]
    assert tok.texts_to_sequences([""]) == [[]]


def test_oov_token_gets_index_1_and_replaces_unknown_and_cut_words():
    tok = Tokenizer(num_words=3, oov_token="<OOV>")
    tok.fit_on_texts(["c b a", "a d", "b"])
    assert tok.word_index == {"<OOV>": 1, "b": 2, "a": 3, "c": 4, "d": 5}
    # a (3) >= num_words -> oov, b (2) kept, zzz unknown -> oov
    assert tok.texts_to_sequences(["b a zzz"]) == [[2, 1, 1]]
    assert tok.sequences_to_texts([[2, 3, 99, 0]]) == ["b <OOV> <OOV> <OOV>"]


def test_oov_token_without_num_words():
    tok = Tokenizer(oov_token="?")
    tok.fit_on_texts(["x y y"])
    assert tok.word_index == {"?": 1, "y": 2, "x": 3}
    assert tok.texts_to_sequences(["x new y"]) == [[3, 1, 2]]
    assert tok.sequences_to_texts([[3, 2, 7]]) == ["x y ?"]


def test_texts_to_sequences_applies_same_filters():
    tok = Tokenizer()
    tok.fit_on_texts(["Good movie"])
    assert tok.texts_to_sequences(["GOOD!!! movie...", "bad"]) == [[1, 2], []]
    assert list(tok.texts_to_sequences_generator(["movie"])) == [[2]]
    assert tok.sequences_to_texts(np.array([[2, 1]])) == ["movie good"]


# ---------------------------------------------------------------------------------------
# JSON


def test_json_round_trip():
    tok = Tokenizer(num_words=4, oov_token="<unk>", lower=False)
    tok.fit_on_texts(["B a B", "c a", "D"])
    s = tok.to_json()
    payload = json.loads(s)  # plain JSON
    assert payload["class_name"] == "Tokenizer"
    assert json.loads(payload["config"]["word_index"]) == tok.word_index
    tok2 = tokenizer_from_json(s)
    for attr in ("num_words", "filters", "lower", "split", "char_level", "oov_token"):
        assert getattr(tok2, attr) == getattr(tok, attr)
    assert tok2.document_count == 3
    assert tok2.word_index == tok.word_index
    assert tok2.index_word == tok.index_word  # int keys restored
    assert list(tok2.word_counts.items()) == list(tok.word_counts.items())
    assert dict(tok2.index_docs) == dict(tok.index_docs)
    assert tok2.texts_to_sequences(["B a c D x"]) == tok.texts_to_sequences(["B a c D x"])


def test_reads_keras_2_json():
    keras_json = json.dumps(
        {
            "class_name": "Tokenizer",
            "config": {
                "num_words": None,
                "filters": text.DEFAULT_FILTERS,
                "lower": True,
                "split": " ",
                "char_level": False,
                "oov_token": None,
                "document_count": 1,
                "word_counts": '{"a": 1, "b": 2}',
                "word_docs": '{"b": 1, "a": 1}',
                "index_docs": '{"1": 1, "2": 1}',
                "index_word": '{"1": "b", "2": "a"}',
                "word_index": '{"b": 1, "a": 2}',
            },
        }
    )
    tok = tokenizer_from_json(keras_json)
    assert tok.index_word == {1: "b", 2: "a"}
    assert tok.texts_to_sequences(["a b c"]) == [[2, 1]]


def test_bad_json_is_value_error():
    with pytest.raises(ValueError, match="Tokenizer JSON"):
        tokenizer_from_json("not json")
    with pytest.raises(ValueError, match="Tokenizer JSON"):
        tokenizer_from_json('{"class_name": "Tokenizer"}')


# ---------------------------------------------------------------------------------------
# Tokenizer errors


def test_fit_on_empty_list_is_value_error():
    with pytest.raises(ValueError, match="at least one text"):
        Tokenizer().fit_on_texts([])


@pytest.mark.parametrize("texts", ["a single string", [1, 2], ["ok", None], [b"bytes"], 5])
def test_non_string_texts_are_type_errors(texts):
    tok = Tokenizer()
    with pytest.raises(TypeError):
        tok.fit_on_texts(texts)
    assert tok.document_count == 0 and not tok.word_index  # nothing half-fitted


def test_texts_to_sequences_type_errors():
    tok = Tokenizer()
    tok.fit_on_texts(["a"])
    with pytest.raises(TypeError):
        tok.texts_to_sequences([3])
    with pytest.raises(TypeError):
        tok.texts_to_sequences("a")


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        ({"num_words": 0}, ValueError),
        ({"num_words": -5}, ValueError),
        ({"num_words": 2.5}, TypeError),
        ({"split": ""}, ValueError),
        ({"oov_token": 1}, TypeError),
    ],
)
def test_bad_tokenizer_arguments(kwargs, exc):
    with pytest.raises(exc, match=next(iter(kwargs))):
        Tokenizer(**kwargs)


# ---------------------------------------------------------------------------------------
# pad_sequences


SEQS = [[1, 2, 3], [4, 5], [6]]


def test_pad_defaults_pre_to_longest():
    out = pad_sequences(SEQS)
    assert out.dtype == np.int32
    assert out.tolist() == [[1, 2, 3], [0, 4, 5], [0, 0, 6]]


@pytest.mark.parametrize(
    "padding, truncating, expected",
    [
        ("pre", "pre", [[2, 3], [4, 5], [0, 6]]),
        ("pre", "post", [[1, 2], [4, 5], [0, 6]]),
        ("post", "pre", [[2, 3], [4, 5], [6, 0]]),
        ("post", "post", [[1, 2], [4, 5], [6, 0]]),
    ],
)
def test_pad_and_truncate_modes(padding, truncating, expected):
    out = pad_sequences(SEQS, maxlen=2, padding=padding, truncating=truncating)
    assert out.tolist() == expected


def test_pad_longer_maxlen_and_value():
    out = pad_sequences(SEQS, maxlen=4, value=-1, padding="post")
    assert out.tolist() == [[1, 2, 3, -1], [4, 5, -1, -1], [6, -1, -1, -1]]


def test_pad_float_dtype_keeps_fractions_int_dtype_truncates():
    seqs = [[0.5, 1.5], [2.25]]
    out = pad_sequences(seqs, maxlen=3, dtype="float32", value=0.5)
    assert out.dtype == np.float32
    assert out.tolist() == [[0.5, 0.5, 1.5], [0.5, 0.5, 2.25]]
    assert pad_sequences(seqs).tolist() == [[0, 1], [0, 2]]  # Keras 2 casts to int32


def test_pad_empty_sequences_and_arrays():
    assert pad_sequences([[], [7]], maxlen=2).tolist() == [[0, 0], [0, 7]]
    assert pad_sequences([], maxlen=3).shape == (0, 3)
    assert pad_sequences([[], []]).shape == (2, 0)
    arr = np.arange(6).reshape(2, 3)
    assert pad_sequences(arr, maxlen=2).tolist() == [[1, 2], [4, 5]]
    assert pad_sequences((np.array([1, 2]), (3,)), maxlen=2).tolist() == [[1, 2], [0, 3]]


def test_pad_multidimensional_items():
    out = pad_sequences([[[1, 2], [3, 4]], [[5, 6]]], dtype="float64")
    assert out.shape == (2, 2, 2)
    assert out.tolist() == [[[1, 2], [3, 4]], [[0, 0], [5, 6]]]
    with pytest.raises(ValueError, match="shape"):
        pad_sequences([[[1, 2]], [[3, 4, 5]]])


def test_pad_string_values():
    out = pad_sequences([["a"], ["b", "c"]], dtype=object, value="<pad>")
    assert out.tolist() == [["<pad>", "a"], ["b", "c"]]
    with pytest.raises(ValueError, match="string"):
        pad_sequences([[1]], value="x")


@pytest.mark.parametrize("maxlen", [0, -1])
def test_pad_bad_maxlen(maxlen):
    with pytest.raises(ValueError, match="maxlen"):
        pad_sequences(SEQS, maxlen=maxlen)


def test_pad_bad_arguments():
    with pytest.raises(TypeError, match="maxlen"):
        pad_sequences(SEQS, maxlen=2.0)
    with pytest.raises(ValueError, match="padding"):
        pad_sequences(SEQS, padding="middle")
    with pytest.raises(ValueError, match="truncating"):
        pad_sequences(SEQS, truncating="both")
    with pytest.raises(ValueError, match="padding"):
        pad_sequences([], padding="x")  # checked even when there is nothing to pad
    with pytest.raises(ValueError, match="non-sequence"):
        pad_sequences([[1], 2])
    with pytest.raises(ValueError, match="list of sequences"):
        pad_sequences(5)


@settings(max_examples=150, deadline=None)
@given(
    seqs=st.lists(st.lists(st.integers(1, 1000), max_size=12), max_size=8),
    maxlen=st.one_of(st.none(), st.integers(1, 15)),
    padding=st.sampled_from(["pre", "post"]),
)
def test_pad_property_shape_and_pre_truncation(seqs, maxlen, padding):
    out = pad_sequences(seqs, maxlen=maxlen, padding=padding, truncating="pre")
    width = maxlen if maxlen is not None else max((len(s) for s in seqs), default=0)
    assert out.shape == (len(seqs), width)
    assert out.dtype == np.int32
    for row, s in zip(out.tolist(), seqs):
        kept = s[-width:] if width else []
        k = len(kept)
        if padding == "pre":
            assert row[width - k :] == kept and row[: width - k] == [0] * (width - k)
        else:
            assert row[:k] == kept and row[k:] == [0] * (width - k)


# ---------------------------------------------------------------------------------------
# docstring examples


@pytest.mark.parametrize("module", [preprocessing, text, sequence])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
