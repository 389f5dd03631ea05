"""The converter registry: one function per layer type (and opset range), like tf2onnx's handlers.

A converter is a plain function ``fn(ctx, layer, params) -> None``. It reads the current tensor
from ``ctx`` (an :class:`~edgemine.onnx.exporter.ExportContext`), adds nodes through ``ctx``'s
builder and leaves the new tensor, its per-sample shape and its layout in ``ctx``. ``params``
holds the layer's weights by variable name (``kernel``, ``bias``, ...), possibly rewritten by
graph-level passes (BatchNormalization folding).

Several functions may be registered for one layer type, each for a range of target opsets;
:func:`find` picks the one whose range holds the opset of the export.

Example:
    >>> from edgemine.onnx.converters import find
    >>> find("Conv2D", 17).__name__
    'convert_conv2d'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: the oldest ONNX opset the converters can write
MIN_OPSET = 13

Converter = Callable[[Any, Any, dict], None]

_REGISTRY: dict[str, list[tuple[int, int | None, Converter]]] = {}


def converter(*class_names: str, since: int = MIN_OPSET, until: int | None = None):
    """Register the decorated function for ``class_names`` at opsets ``since..until`` (inclusive).

    Example:
        >>> @converter("MyLayer", since=18)
        ... def convert_my_layer(ctx, layer, params):
        ...     pass
        >>> find("MyLayer", 17) is None, find("MyLayer", 18) is convert_my_layer
        (True, True)
        >>> _ = _REGISTRY.pop("MyLayer")
    """

    def wrap(fn: Converter) -> Converter:
        for name in class_names:
            entries = _REGISTRY.setdefault(name, [])
            for lo, hi, other in entries:
                if since <= (hi if hi is not None else 10**9) and lo <= (
                    until if until is not None else 10**9
                ):
                    raise ValueError(
                        f"converters {other.__name__} and {fn.__name__} overlap for {name}"
                    )
            entries.append((since, until, fn))
        return fn

    return wrap


def find(class_name: str, opset: int) -> Converter | None:
    """The converter of ``class_name`` for ``opset``, or None.

    Example:
        >>> find("NoSuchLayer", 17) is None
        True
    """
    for lo, hi, fn in _REGISTRY.get(class_name, []):
        if lo <= opset and (hi is None or opset <= hi):
            return fn
    return None


def supported_layers() -> dict[str, list[tuple[int, int | None]]]:
    """Layer type -> opset ranges with a converter.

    Example:
        >>> supported_layers()["Dense"]
        [(13, None)]
    """
    return {
        name: sorted((lo, hi) for lo, hi, _ in entries)
        for name, entries in sorted(_REGISTRY.items())
    }


# the converter modules register themselves on import
from . import conv, conv1d, core, merge, normalization, pooling, recurrent, sequence  # noqa: E402, F401

__all__ = ["MIN_OPSET", "Converter", "converter", "find", "supported_layers"]
