"""Reading the data files shipped in ``edgemine/datasets/data/`` (works from a wheel too)."""

from __future__ import annotations

import io
from importlib import resources

import numpy as np


def read_data_file(name: str) -> bytes:
    """The bytes of a shipped data file, or a FileNotFoundError that says how to rebuild it."""
    resource = resources.files("edgemine.datasets") / "data" / name
    try:
        return resource.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"edgemine data file {name!r} is missing from edgemine/datasets/data/; "
            "rebuild it with `python tools/make_datasets.py`"
        ) from None


def read_npz(name: str) -> dict[str, np.ndarray]:
    """Every array of a shipped ``.npz`` (no pickles)."""
    with np.load(io.BytesIO(read_data_file(name)), allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Mark cached arrays read-only: the loaders hand out copies of them."""
    for a in arrays:
        a.setflags(write=False)
    return arrays
