"""Keras-2-style preprocessing: text tokenization and sequence padding.

Example:
    >>> from edgemine.preprocessing import Tokenizer, pad_sequences
    >>> tok = Tokenizer()
    >>> tok.fit_on_texts(["good day", "bad day"])
    >>> pad_sequences(tok.texts_to_sequences(["good day"]), maxlen=3).tolist()
    [[0, 2, 1]]
"""

from edgemine.preprocessing import sequence, text
from edgemine.preprocessing.sequence import pad_sequences
from edgemine.preprocessing.text import Tokenizer, text_to_word_sequence, tokenizer_from_json

__all__ = [
    "Tokenizer",
    "pad_sequences",
    "sequence",
    "text",
    "text_to_word_sequence",
    "tokenizer_from_json",
]
