"""Scoring on a Dask cluster: the input split into chunks of rows, one task per chunk.

A chunk's rows are a run of the input's rows in order; with several input files a chunk may
span two of them. Chunk boundaries are multiples of the batch size, so every batch the model
sees is the batch that single-process ``edgemine predict`` gives it (the engine's outputs
depend, in the last bits, on the batch a sample is in). A large ``.npy`` is memory-mapped by
each task, which reads only its own rows; other files (``.npz``, ``.csv``, ``.png``, text) are
read whole by the tasks that use them. Nothing is read on the client: a first round of small
tasks counts each file's rows.
"""

from __future__ import annotations

import io
import json
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._worker import limit_threads, predictor

INDEX = "index.json"
_ARRAY, _DASK = "array", "dask array"


class ChunkError(RuntimeError):
    """A chunk that failed; the message names the chunk, its rows and its input file(s)."""


@dataclass(frozen=True)
class Piece:
    """Rows ``[start, stop)`` of one source (a file path, an array or a Dask array block)."""

    source: str
    start: int
    stop: int
    single: bool = False  # a .npy holding one sample without its batch axis


@dataclass(frozen=True)
class Chunk:
    """One task's rows ``[start, stop)`` of the whole input, and where they come from."""

    index: int
    start: int
    stop: int
    pieces: tuple[Piece, ...]

    def describe(self) -> str:
        where = ", ".join(f"{p.source} rows {p.start}-{p.stop - 1}" for p in self.pieces)
        return f"chunk {self.index} (input rows {self.start}-{self.stop - 1}: {where})"


def plan_chunks(sources: Sequence[tuple[str, int, bool]], chunk_size: int) -> list[Chunk]:
    """Chunks of ``chunk_size`` rows over the concatenation of ``(source, rows, single)``.

    >>> [c.describe() for c in plan_chunks([("a.npy", 3, False), ("b.npy", 2, False)], 4)]
    ['chunk 0 (input rows 0-3: a.npy rows 0-2, b.npy rows 0-0)', 'chunk 1 (input rows 4-4: b.npy rows 1-1)']
    """
    offsets = np.cumsum([0] + [rows for _, rows, _ in sources])
    total = int(offsets[-1])
    chunks = []
    for index, start in enumerate(range(0, total, chunk_size)):
        stop = min(start + chunk_size, total)
        pieces = []
        for (source, rows, single), first in zip(sources, offsets[:-1]):
            lo, hi = max(start, int(first)), min(stop, int(first) + rows)
            if lo < hi:
                pieces.append(Piece(source, lo - int(first), hi - int(first), single))
        chunks.append(Chunk(index, start, stop, tuple(pieces)))
    return chunks


# --------------------------------------------------------------------------------------------
# worker side
# --------------------------------------------------------------------------------------------


def _read_npy(path: str):
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:
        raise ValueError(f"{Path(path).name}: not a readable .npy file ({e})") from None


def _probe(model_path: str, threads: int, path: str) -> tuple[int, bool, list[str] | None]:
    """(rows, single sample?, row names or None) of one input file, read on a worker."""
    limit_threads(threads)
    pred, _ = predictor(model_path, threads)
    try:
        if path.lower().endswith(".npy"):
            arr = _read_npy(path)
            if arr.ndim == 0:
                raise ValueError(f"{Path(path).name} holds a single number, not samples")
            single = pred.int_input and arr.ndim == len(pred.sample_shape)
            return (1 if single else int(arr.shape[0])), bool(single), None
        x, names = pred.load_inputs([Path(path)])
        return len(x), False, names
    except Exception as e:
        raise ChunkError(f"input {path}: {e}") from None


def _load_piece(pred, piece: Piece, payload) -> np.ndarray:
    name = Path(piece.source).name
    if piece.source in (_ARRAY, _DASK):
        return pred.from_array(payload, piece.source)
    if piece.source.lower().endswith(".npy"):
        arr = _read_npy(piece.source)
        rows = arr if piece.single else arr[piece.start : piece.stop]
        return pred.from_array(np.array(rows), name)  # copies only this chunk's rows
    x, _ = pred.load_inputs([Path(piece.source)])
    return x[piece.start : piece.stop]


def _score_chunk(
    model_path: str,
    threads: int,
    batch_size: int,
    chunk: Chunk,
    payload,
    out_dir: str | None,
    transform: Callable | None,
):
    """Predict one chunk; return the outputs, or write them to ``out_dir`` and return their
    file name, shape and dtype. Any failure becomes a ChunkError naming the chunk."""
    limit_threads(threads)
    try:
        pred, lock = predictor(model_path, threads)
        parts = [_load_piece(pred, piece, payload) for piece in chunk.pieces]
        if len({p.shape[1:] for p in parts}) > 1:
            raise ValueError("the inputs have different sample shapes")
        x = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if transform is not None:
            x = transform(x)
        if lock is None:
            y = np.asarray(pred.predict(x, batch_size))
        else:
            with lock:
                y = np.asarray(pred.predict(x, batch_size))
        if len(y) != chunk.stop - chunk.start:
            raise ValueError(f"got {len(y)} outputs for {chunk.stop - chunk.start} rows")
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ChunkError(f"{chunk.describe()}: {first}") from None
    if out_dir is None:
        return y
    from ..saving import atomic_write_bytes

    name = f"chunk-{chunk.index:06d}.npy"
    buf = io.BytesIO()
    np.save(buf, y, allow_pickle=False)
    atomic_write_bytes(Path(out_dir) / name, buf.getvalue())  # a retried chunk replaces it
    return {"file": name, "shape": list(y.shape), "dtype": str(y.dtype)}


# --------------------------------------------------------------------------------------------
# client side
# --------------------------------------------------------------------------------------------


def _paths(data) -> list[str] | None:
    if isinstance(data, (str, Path)):
        return [str(data)]
    if isinstance(data, (list, tuple)) and data and all(isinstance(p, (str, Path)) for p in data):
        return [str(p) for p in data]
    return None


def _plan(client, model_path: str, data, chunk_size: int, threads: int, retries: int):
    """(chunks, one payload per chunk, the row-name lists of text/CSV/PNG files)."""
    paths = _paths(data)
    if paths is not None:
        for p in paths:
            if not Path(p).is_file():
                raise FileNotFoundError(f"input {p}: no such file")
        paths = [str(Path(p).resolve()) for p in paths]
        probes = client.map(
            _probe, [model_path] * len(paths), [threads] * len(paths), paths, retries=retries
        )
        found = client.gather(probes)
        sources = [(p, rows, single) for p, (rows, single, _) in zip(paths, found)]
        names = {p: n for p, (_, _, n) in zip(paths, found) if n is not None}
        chunks = plan_chunks(sources, chunk_size)
        return chunks, [None] * len(chunks), names
    if isinstance(data, np.ndarray):
        if data.ndim == 0:
            raise ValueError("data must be a batch of samples, not a single number")
        chunks = plan_chunks([(_ARRAY, len(data), False)], chunk_size)
        return chunks, [data[c.start : c.stop] for c in chunks], {}
    try:
        import dask.array as da
    except ImportError:  # pragma: no cover
        da = None
    if da is not None and isinstance(data, da.Array):
        x = data.rechunk({0: chunk_size, **{i: -1 for i in range(1, data.ndim)}})
        chunks = plan_chunks([(_DASK, int(x.shape[0]), False)], chunk_size)
        blocks = client.compute(list(x.to_delayed().ravel()))
        return chunks, blocks, {}
    raise TypeError(
        "data must be a file path, a list of paths, a numpy array or a Dask array, "
        f"got {type(data).__name__}"
    )


def _prepare_out(out: str | Path) -> Path:
    """An empty folder for per-chunk outputs; a previous run's outputs there are replaced."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    ours = [p for p in out.iterdir() if p.name == INDEX or p.name.startswith("chunk-")]
    others = [p for p in out.iterdir() if p not in ours and not p.name.startswith(".")]
    if others:
        raise ValueError(f"{out}: the folder holds other files ({others[0].name}); give a new one")
    for p in ours:
        p.unlink()
    return out


def row_names(chunks: list[Chunk], names: dict[str, list[str]]) -> list[str]:
    """A name per input row, as single-process ``edgemine predict`` names them."""
    rows: dict[str, int] = {}
    for c in chunks:
        for p in c.pieces:
            rows[p.source] = max(rows.get(p.source, 0), p.stop)
    out: list[str] = []
    for p in (p for c in chunks for p in c.pieces):  # in input order, a file given twice too
        if p.source in names:
            out.extend(names[p.source][p.start : p.stop])
        else:
            name = Path(p.source).name
            single = rows[p.source] == 1
            out.extend([name] if single else [f"{name}[{i}]" for i in range(p.start, p.stop)])
    return out


def predict(
    model_path: str | Path,
    data: Any,
    client,
    chunk_size: int = 8192,
    batch_size: int = 256,
    threads: int = 1,
    out: str | Path | None = None,
    transform: Callable | None = None,
    retries: int = 1,
    progress: Callable[[int, int], None] | None = None,
    details: dict | None = None,
) -> np.ndarray | dict:
    """Score ``data`` with a ``.onnx`` or ``.edgemine`` model on the Dask cluster of ``client``.

    Args:
        model_path: the model; workers open the same path (a shared folder on a real cluster).
        data: a ``.npy`` path (memory-mapped: each task reads its rows), a list of files
            (``.npy``, ``.npz``, ``.csv``, ``.png``, text: as ``edgemine predict`` reads them),
            a numpy array or a Dask array of samples.
        chunk_size: rows per task (rounded up to whole batches).
        batch_size: the model's batch, as ``edgemine predict --batch-size``.
        threads: Numba / BLAS / onnxruntime threads per task.
        out: a folder: each chunk's outputs go to ``chunk-NNNNNN.npy`` there, written by the
            workers, with ``index.json`` (chunk files, rows and inputs) and nothing gathered on
            the client; read them with :func:`load_output`.
        transform: a function applied on the worker to each chunk's model input.
        retries: re-runs of a failed task (a lost worker's tasks are re-run by Dask anyway).
        progress: called with (chunks done, chunks) as chunks finish.
        details: a dict that gets the run's ``chunks`` and, for text/CSV/PNG files, the
            ``names`` of their rows (the CLI labels its output with them).

    Returns:
        The outputs in input order (bit for bit those of single-process ``edgemine predict``
        with the same batch size and threads), or, with ``out``, the index written there.

    Example:
        >>> from edgemine.distributed import connect
        >>> with connect("local:2") as client:  # doctest: +SKIP
        ...     predict("mnist.onnx", "images.npy", client).shape
        (200000, 10)
    """
    for value, what in (
        (chunk_size, "chunk_size"),
        (batch_size, "batch_size"),
        (threads, "threads"),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{what} must be a positive int, got {value!r}")
    model_path = str(Path(model_path).resolve())
    if not Path(model_path).is_file():
        raise FileNotFoundError(f"model {model_path}: no such file")
    chunk_size = batch_size * math.ceil(chunk_size / batch_size)  # whole batches per chunk
    chunks, payloads, names = _plan(client, model_path, data, chunk_size, threads, retries)
    if not chunks:
        raise ValueError("the input holds no samples")
    if details is not None:
        details.update(chunks=chunks, names=names)
    out_dir = _prepare_out(out) if out is not None else None
    run = uuid.uuid4().hex[:8]
    futures = [
        client.submit(
            _score_chunk,
            model_path,
            threads,
            batch_size,
            c,
            p,
            None if out_dir is None else str(out_dir),
            transform,
            key=f"edgemine-chunk-{run}-{c.index}",
            retries=retries,
        )
        for c, p in zip(chunks, payloads)
    ]
    del payloads  # the Dask array blocks are released once their chunk is scored
    result, written = _collect(client, futures, chunks, out_dir is not None, progress)
    if out_dir is None:
        return result
    return _write_index(out_dir, model_path, chunks, written)


def _collect(client, futures: list, chunks: list[Chunk], to_files: bool, progress):
    """Wait for the chunks as they finish: (outputs in input order, or None; written files)."""
    from distributed import as_completed

    position = {f.key: i for i, f in enumerate(futures)}
    result: np.ndarray | None = None
    written: list[dict | None] = [None] * len(chunks)
    for done, fut in enumerate(as_completed(futures), 1):
        i = position[fut.key]
        try:
            value = fut.result()
        except Exception as e:
            client.cancel([f for f in futures if f is not None])
            if isinstance(e, ChunkError):
                raise
            raise ChunkError(f"{chunks[i].describe()}: {type(e).__name__}: {e}") from None
        futures[i] = None  # drop the reference: the worker frees the result
        if to_files:
            written[i] = {**value, "start": chunks[i].start, "stop": chunks[i].stop}
        else:
            if result is None:
                result = np.empty((chunks[-1].stop, *value.shape[1:]), value.dtype)
            result[chunks[i].start : chunks[i].stop] = value
        if progress is not None:
            progress(done, len(chunks))
    return result, written


def _write_index(out_dir: Path, model_path: str, chunks: list[Chunk], written: list) -> dict:
    from ..saving import atomic_write_bytes, remove_leftover_temp_files

    first = written[0] if written else {"shape": [0], "dtype": "float32"}
    index = {
        "format": "edgemine-predictions",
        "version": 1,
        "model": model_path,
        "rows": chunks[-1].stop if chunks else 0,
        "shape": [chunks[-1].stop if chunks else 0, *first["shape"][1:]],
        "dtype": first["dtype"],
        "chunks": [
            {**w, "inputs": [[p.source, p.start, p.stop] for p in c.pieces]}
            for w, c in zip(written, chunks)
        ],
    }
    atomic_write_bytes(out_dir / INDEX, (json.dumps(index, indent=1) + "\n").encode())
    for chunk_file in {w["file"] for w in written}:
        remove_leftover_temp_files(out_dir / chunk_file)  # halves of a killed worker's save
    return index


def load_output(folder: str | Path, mmap: bool = False) -> np.ndarray:
    """The outputs that :func:`predict` wrote to ``folder``, in input order (checked complete).

    >>> load_output("predictions")  # doctest: +SKIP
    """
    folder = Path(folder)
    try:
        index = json.loads((folder / INDEX).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{folder}: no readable {INDEX} ({e})") from None
    parts, row = [], 0
    for entry in index["chunks"]:
        if entry["start"] != row:
            raise ValueError(f"{folder}: {entry['file']} starts at row {entry['start']}, not {row}")
        part = np.load(folder / entry["file"], mmap_mode="r" if mmap else None, allow_pickle=False)
        if len(part) != entry["stop"] - entry["start"]:
            raise ValueError(f"{folder}: {entry['file']} holds {len(part)} rows, not the index's")
        parts.append(part)
        row = entry["stop"]
    if row != index["rows"]:
        raise ValueError(f"{folder}: the chunks hold {row} rows; the index says {index['rows']}")
    if not parts:
        return np.empty(index["shape"], index["dtype"])
    return np.concatenate(parts)
