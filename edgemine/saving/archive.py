"""Bounded reading of a ``.edgemine`` zip and of the ``.npz`` arrays inside it.

Nothing is decompressed or allocated before its size is checked: a member's declared size
against what the architecture needs, each ``.npy`` header's shape and dtype against the
weight it must fill (zip bombs and huge declared shapes are refused before any work).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import stat
import zipfile
from collections.abc import Iterator

import numpy as np

from ._format import MEMBERS, Invalid

# Per array, np.savez writes a local header, a zip64 extra field, a central directory entry
# (each with the name) and a .npy header (128 bytes for edgemine's shapes).
_NPY_HEADER_MAX = 512
_ENTRY_OVERHEAD = 256
_ARCHIVE_OVERHEAD = 512
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def _check_directory(f, max_entries: int, what: str) -> None:
    """Refuse a zip whose central directory lists more than ``max_entries`` entries before
    zipfile builds an object for each (a 10 MB directory would be 200,000 of them)."""
    end_record = getattr(zipfile, "_EndRecData", None)  # what zipfile reads (zip64 included)
    if end_record is None:  # a Python whose zipfile lacks it: zipfile's own limits remain
        return
    end = end_record(f)
    if end is None:
        return  # not a zip: zipfile says so
    entries, size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
    if entries > max_entries or size > max_entries * _ENTRY_OVERHEAD:
        raise Invalid(f"{what} lists {entries:,} entries, more than the {max_entries} expected")


@contextlib.contextmanager
def open_archive(path: str) -> Iterator[zipfile.ZipFile]:
    """The zip at ``path`` (a regular file), with the right member names (none twice) and
    nothing encrypted."""
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below, after the ZipFile)
    except FileNotFoundError:
        raise Invalid("no such file") from None
    except IsADirectoryError:
        raise Invalid("is a directory, not a model file") from None
    except OSError as e:
        raise Invalid(f"cannot open it ({e})") from None
    with f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # a FIFO or device would hang
            raise Invalid("not a regular file")
        _check_directory(f, len(MEMBERS), "the archive")
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise Invalid(f"not an edgemine model file (not a readable zip archive: {e})") from None
        with zf:
            check_members(zf.infolist())
            yield zf


def check_members(infos: list[zipfile.ZipInfo]) -> None:
    names = [i.filename for i in infos]
    unknown = set(names) - set(MEMBERS)
    if unknown:
        raise Invalid(f"unexpected entries {sorted(unknown)[:4]}; not an edgemine model file")
    if len(set(names)) != len(names):
        raise Invalid("duplicate entries in the archive")
    if "config.json" not in names or "weights.npz" not in names:
        raise Invalid("config.json or weights.npz is missing; not an edgemine model file")
    for info in infos:
        if info.flag_bits & 0x1:
            raise Invalid(f"entry {info.filename} is encrypted")
        if info.compress_type not in _COMPRESSIONS:
            raise Invalid(f"entry {info.filename} uses compression method {info.compress_type}")


def read_member(zf: zipfile.ZipFile, name: str, limit: int, need: str) -> bytes:
    """Member ``name``'s bytes, refused before decompression if it declares more than ``limit``
    (``need`` says where the limit comes from). Reading stops at the declared size."""
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise Invalid(
            f"{name} declares {info.file_size:,} bytes uncompressed, but {need} at most "
            f"{limit:,}; refusing to decompress it (a zip bomb or a mismatched file)"
        )
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except Exception as e:  # zlib.error, BadZipFile (CRC), EOFError, ...: damaged data
        raise Invalid(f"entry {name} is corrupt ({type(e).__name__}: {e})") from None
    if len(data) != info.file_size:
        raise Invalid(f"entry {name} is truncated or corrupt")
    return data


def npz_limit(specs: dict[str, tuple[tuple, np.dtype]]) -> int:
    """The most bytes an ``np.savez`` archive of these arrays can take."""
    total = _ARCHIVE_OVERHEAD
    for key, (shape, dtype) in specs.items():
        total += math.prod(shape) * dtype.itemsize + _NPY_HEADER_MAX + _ENTRY_OVERHEAD
        total += 2 * len(key.encode("utf-8"))
    return total


def _npy_header(f, where: str, shape: tuple, dtype: np.dtype) -> None:
    """Read and check a ``.npy`` header: the stored array must be exactly ``shape`` of
    ``dtype`` in C order."""
    version = np.lib.format.read_magic(f)
    readers = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    if version not in readers:
        raise Invalid(f"{where}: .npy format version {version} is not supported")
    stored_shape, fortran, stored_dtype = readers[version](f, max_header_size=_NPY_HEADER_MAX)
    if tuple(stored_shape) != tuple(shape) or stored_dtype != dtype or fortran:
        raise Invalid(
            f"{where} is stored as {stored_dtype} {tuple(stored_shape)}"
            f"{' (Fortran order)' if fortran else ''}, but the model needs {dtype} {tuple(shape)}"
        )


def read_arrays(member: str, data: bytes, specs: dict[str, tuple[tuple, np.dtype]]) -> dict:
    """The arrays of the ``.npz`` bytes ``data``, which must hold exactly the keys of ``specs``
    with their (shape, dtype): every header is checked before any array is allocated."""
    buf = io.BytesIO(data)
    _check_directory(buf, len(specs), member)
    try:
        inner = zipfile.ZipFile(buf)
    except Exception as e:
        raise Invalid(f"{member} is not a valid array archive ({type(e).__name__}: {e})") from None
    with inner:
        infos = inner.infolist()
        names = [i.filename for i in infos]
        want = {f"{k}.npy" for k in specs}
        if len(set(names)) != len(names) or set(names) != want:
            odd = sorted(set(names) ^ want)[:4] or ["a duplicate entry"]
            raise Invalid(f"{member} holds {odd} that do not match the model")
        check_members_of_npz(member, infos)
        for phase in ("headers", "data"):  # every header first: refuse before allocating
            arrays = {}
            for info in infos:
                key = info.filename[: -len(".npy")]
                arrays[key] = _read_npy(member, inner, info, key, *specs[key], phase == "data")
    return arrays


def check_members_of_npz(member: str, infos: list[zipfile.ZipInfo]) -> None:
    for info in infos:
        if info.flag_bits & 0x1 or info.compress_type not in _COMPRESSIONS:
            raise Invalid(f"{member}: entry {info.filename} is encrypted or oddly compressed")


def _read_npy(member, inner, info, key, shape, dtype, with_data: bool):
    where = f"{member}: array {key}"
    nbytes = math.prod(shape) * dtype.itemsize
    if info.file_size > nbytes + _NPY_HEADER_MAX:
        raise Invalid(
            f"{where} declares {info.file_size:,} bytes, but a {tuple(shape)} {dtype} array "
            f"takes {nbytes:,}"
        )
    try:
        with inner.open(info) as f:
            _npy_header(f, where, shape, dtype)
            if info.file_size != f.tell() + nbytes:
                raise Invalid(f"{where}: its size disagrees with its header")
            if not with_data:
                return None
            arr = np.empty(shape, dtype)
            got = f.readinto(arr.reshape(-1).view(np.uint8)) if nbytes else 0
            if got != nbytes or f.read(1):
                raise Invalid(f"{where} is truncated")
    except Invalid:
        raise
    except Exception as e:  # a damaged header or stream
        raise Invalid(f"{where} is corrupt ({type(e).__name__}: {e})") from None
    return arr
