"""Text tokenization with the semantics and defaults of Keras 2's ``Tokenizer``.

Example:
    >>> from edgemine.preprocessing.text import Tokenizer
    >>> tok = Tokenizer(num_words=3)
    >>> tok.fit_on_texts(["the cat sat", "the dog!"])
    >>> tok.word_index
    {'the': 1, 'cat': 2, 'sat': 3, 'dog': 4}
    >>> tok.texts_to_sequences(["The dog sat on the cat."])  # 'dog', 'sat' >= num_words
    [[1, 1, 2]]
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .inputs import DEFAULT_FILTERS, text_to_word_sequence, word_ids

__all__ = ["DEFAULT_FILTERS", "Tokenizer", "text_to_word_sequence", "tokenizer_from_json"]


def _check_split(split: Any) -> None:
    if not isinstance(split, str):
        raise TypeError(f"split must be a str, got {type(split).__name__}")
    if not split:
        raise ValueError("split must be a non-empty string")


def _check_texts(texts: Any, name: str = "texts") -> None:
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            f"{name} must be a sequence of strings, not a single {type(texts).__name__}"
        )
    if not isinstance(texts, Iterable):
        raise TypeError(f"{name} must be an iterable of strings, got {type(texts).__name__}")


class Tokenizer:
    """Vectorize texts into sequences of word indices (Keras 2 semantics).

    Args:
        num_words: if set, only words with index ``< num_words`` are kept when
            converting texts to sequences (the vocabulary itself keeps every word).
        filters: characters replaced by ``split`` before splitting.
        lower: lower-case the texts first.
        split: the word separator.
        char_level: if True, every character is a token.
        oov_token: if set, it gets index 1 and replaces out-of-vocabulary words
            (and words with index ``>= num_words``) in ``texts_to_sequences``.
        document_count: number of texts seen so far (used when restoring from JSON).

    Attributes:
        word_counts: ``OrderedDict`` word -> count, in order of first appearance.
        word_docs: word -> number of texts it appears in.
        word_index: word -> index, by descending count (ties: first appearance), from 1.
        index_word: the inverse of ``word_index``.
        index_docs: index -> number of texts it appears in.
        document_count: number of texts fitted.

    Example:
        >>> tok = Tokenizer(oov_token="<oov>")
        >>> tok.fit_on_texts(["a b b", "c"])
        >>> tok.word_index
        {'<oov>': 1, 'b': 2, 'a': 3, 'c': 4}
        >>> tok.texts_to_sequences(["b x a"])
        [[2, 1, 3]]
        >>> tok.sequences_to_texts([[2, 1, 3]])
        ['b <oov> a']
    """

    def __init__(
        self,
        num_words: int | None = None,
        filters: str = DEFAULT_FILTERS,
        lower: bool = True,
        split: str = " ",
        char_level: bool = False,
        oov_token: str | None = None,
        document_count: int = 0,
    ) -> None:
        if num_words is not None:
            if isinstance(num_words, bool) or not isinstance(num_words, int):
                raise TypeError(f"num_words must be an int or None, got {num_words!r}")
            if num_words < 1:
                raise ValueError(f"num_words must be >= 1 or None, got {num_words}")
        if not isinstance(filters, str):
            raise TypeError(f"filters must be a str, got {type(filters).__name__}")
        _check_split(split)
        if oov_token is not None and not isinstance(oov_token, str):
            raise TypeError(f"oov_token must be a str or None, got {type(oov_token).__name__}")
        self.num_words = num_words
        self.filters = filters
        self.lower = bool(lower)
        self.split = split
        self.char_level = bool(char_level)
        self.oov_token = oov_token
        self.document_count = int(document_count)
        self.word_counts: OrderedDict[str, int] = OrderedDict()
        self.word_docs: defaultdict[str, int] = defaultdict(int)
        self.index_docs: defaultdict[int, int] = defaultdict(int)
        self.word_index: dict[str, int] = {}
        self.index_word: dict[int, str] = {}

    def __repr__(self) -> str:
        return (
            f"Tokenizer(num_words={self.num_words!r}, words={len(self.word_index)}, "
            f"documents={self.document_count}, oov_token={self.oov_token!r})"
        )

    # -- tokenizing -----------------------------------------------------------------

    def _tokens(self, text: Any) -> list[str]:
        """Tokens of one text: a str, or (as in Keras) an already split list of str."""
        if isinstance(text, list):
            if not all(isinstance(w, str) for w in text):
                raise TypeError("a pre-tokenized text must be a list of str")
            return [w.lower() for w in text] if self.lower else list(text)
        if not isinstance(text, str):
            raise TypeError(
                f"texts must contain str (or lists of str), got {type(text).__name__}: {text!r}"
            )
        if self.char_level:
            return list(text.lower() if self.lower else text)
        return text_to_word_sequence(text, self.filters, self.lower, self.split)

    # -- fitting --------------------------------------------------------------------

    def fit_on_texts(self, texts: Iterable[str]) -> None:
        """Update the vocabulary from a list of texts (can be called several times).

        Raises:
            TypeError: ``texts`` is a single string or contains non-strings.
            ValueError: ``texts`` is empty.

        Example:
            >>> tok = Tokenizer()
            >>> tok.fit_on_texts(["b a", "a"])
            >>> dict(tok.word_counts), tok.document_count
            ({'b': 1, 'a': 2}, 2)
        """
        _check_texts(texts)
        texts = list(texts)
        if not texts:
            raise ValueError("fit_on_texts needs at least one text; got an empty list")
        token_lists = [self._tokens(t) for t in texts]  # validate all before mutating
        # Counter keeps insertion order, so word_counts stays in order of first appearance.
        counts = Counter(self.word_counts)
        counts.update(itertools.chain.from_iterable(token_lists))
        docs = Counter(self.word_docs)
        docs.update(itertools.chain.from_iterable(dict.fromkeys(seq) for seq in token_lists))
        self.word_counts = OrderedDict(counts)
        self.word_docs = defaultdict(int, docs)
        self.document_count += len(token_lists)
        self._rebuild_index()

    def _rebuild_index(self) -> None:
        # A stable sort keeps ties in order of first appearance, as in Keras.
        wcounts = sorted(self.word_counts.items(), key=lambda kv: kv[1], reverse=True)
        sorted_voc = [] if self.oov_token is None else [self.oov_token]
        sorted_voc.extend(w for w, _ in wcounts)
        # As in Keras: if the oov token is also a real word, the later index wins.
        self.word_index = dict(zip(sorted_voc, range(1, len(sorted_voc) + 1)))
        self.index_word = {i: w for w, i in self.word_index.items()}
        self.index_docs = defaultdict(int)
        for w, c in self.word_docs.items():
            self.index_docs[self.word_index[w]] = c

    # -- converting -----------------------------------------------------------------

    def texts_to_sequences_generator(self, texts: Iterable[str]) -> Iterator[list[int]]:
        """Yield one list of word indices per text (see :meth:`texts_to_sequences`)."""
        _check_texts(texts)
        oov_index = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        for text in texts:
            yield word_ids(self._tokens(text), self.word_index.get, self.num_words, oov_index)

    def texts_to_sequences(self, texts: Iterable[str]) -> list[list[int]]:
        """Turn texts into lists of word indices.

        Unknown words, and words with index ``>= num_words``, are dropped, or replaced
        by the index of ``oov_token`` when it is set.

        Example:
            >>> tok = Tokenizer(num_words=2)
            >>> tok.fit_on_texts(["x x y"])
            >>> tok.texts_to_sequences(["x y z"])
            [[1]]
        """
        return list(self.texts_to_sequences_generator(texts))

    def sequences_to_texts_generator(self, sequences: Iterable[Sequence[int]]) -> Iterator[str]:
        """Yield one text per sequence (see :meth:`sequences_to_texts`)."""
        num_words = self.num_words
        oov_index = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        for seq in sequences:
            vect: list[str] = []
            for num in seq:
                num = int(num)
                word = self.index_word.get(num)
                if word is not None:
                    if num_words and num >= num_words:
                        if oov_index is not None:
                            vect.append(self.index_word[oov_index])
                    else:
                        vect.append(word)
                elif oov_index is not None:
                    vect.append(self.index_word[oov_index])
            yield " ".join(vect)

    def sequences_to_texts(self, sequences: Iterable[Sequence[int]]) -> list[str]:
        """Turn lists of word indices back into space-joined texts.

        Example:
            >>> tok = Tokenizer()
            >>> tok.fit_on_texts(["Hello, world"])
            >>> tok.sequences_to_texts([[2, 1, 7]])
            ['world hello']
        """
        return list(self.sequences_to_texts_generator(sequences))

    # -- serialization --------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """The Keras 2 config dict (vocabulary fields are JSON strings, as in Keras)."""
        return {
            "num_words": self.num_words,
            "filters": self.filters,
            "lower": self.lower,
            "split": self.split,
            "char_level": self.char_level,
            "oov_token": self.oov_token,
            "document_count": self.document_count,
            "word_counts": json.dumps(self.word_counts),
            "word_docs": json.dumps(self.word_docs),
            "index_docs": json.dumps(self.index_docs),
            "index_word": json.dumps(self.index_word),
            "word_index": json.dumps(self.word_index),
        }

    def to_json(self, **kwargs: Any) -> str:
        """Serialize to a Keras-2-compatible JSON string (``json.dumps`` kwargs allowed).

        Example:
            >>> tok = Tokenizer()
            >>> tok.fit_on_texts(["a b b"])
            >>> tokenizer_from_json(tok.to_json()).word_index
            {'b': 1, 'a': 2}
        """
        return json.dumps(
            {"class_name": type(self).__name__, "config": self.get_config()}, **kwargs
        )


def tokenizer_from_json(json_string: str) -> Tokenizer:
    """Rebuild a :class:`Tokenizer` from :meth:`Tokenizer.to_json` output (JSON only).

    Example:
        >>> tok = Tokenizer(num_words=5, oov_token="?")
        >>> tok.fit_on_texts(["one two"])
        >>> tokenizer_from_json(tok.to_json()).texts_to_sequences(["two three"])
        [[3, 1]]
    """
    if not isinstance(json_string, (str, bytes, bytearray)):
        raise TypeError(f"json_string must be a str, got {type(json_string).__name__}")
    try:
        tokenizer_config = json.loads(json_string)
        config = dict(tokenizer_config["config"])
        word_counts = json.loads(config.pop("word_counts"))
        word_docs = json.loads(config.pop("word_docs"))
        index_docs = json.loads(config.pop("index_docs"))
        index_word = json.loads(config.pop("index_word"))
        word_index = json.loads(config.pop("word_index"))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"not a Tokenizer JSON string: {exc}") from exc
    known = {
        "num_words",
        "filters",
        "lower",
        "split",
        "char_level",
        "oov_token",
        "document_count",
    }
    tokenizer = Tokenizer(**{k: v for k, v in config.items() if k in known})
    tokenizer.word_counts = OrderedDict(word_counts)
    tokenizer.word_docs = defaultdict(int, word_docs)
    tokenizer.index_docs = defaultdict(int, {int(k): v for k, v in index_docs.items()})
    tokenizer.index_word = {int(k): v for k, v in index_word.items()}
    tokenizer.word_index = dict(word_index)
    return tokenizer
