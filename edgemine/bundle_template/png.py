"""PNG decoding with zlib, struct and numpy only: shared by edgemine's CLI and the bundle runner
(copied next to run.py, which must run on a bare device with numpy and onnxruntime, Python 3.6+).
"""

import os
import struct
import zlib

import numpy as np

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(raw, height, rowbytes, bpp, name):
    """Undo PNG's per-row filters; returns (height, rowbytes) uint8."""
    data = np.frombuffer(raw, dtype=np.uint8).reshape(height, rowbytes + 1)
    out = np.zeros((height, rowbytes), dtype=np.uint8)
    prev = np.zeros(rowbytes, dtype=np.int64)
    for y in range(height):
        kind = int(data[y, 0])
        row = data[y, 1:].astype(np.int64)
        if kind == 0:
            cur = row
        elif kind == 1:
            cur = np.cumsum(row.reshape(-1, bpp), axis=0).reshape(-1) & 255
        elif kind == 2:
            cur = (row + prev) & 255
        elif kind == 3:
            cur = row.copy()
            for x in range(rowbytes):
                left = cur[x - bpp] if x >= bpp else 0
                cur[x] = (cur[x] + ((left + prev[x]) >> 1)) & 255
        elif kind == 4:
            cur = row.copy()
            r, p = cur.tolist(), prev.tolist()
            for x in range(rowbytes):
                a = r[x - bpp] if x >= bpp else 0
                c = p[x - bpp] if x >= bpp else 0
                r[x] = (r[x] + _paeth(a, p[x], c)) & 255
            cur = np.array(r, dtype=np.int64)
        else:
            raise ValueError(f"{name}: corrupt PNG (unknown row filter {kind})")
        out[y] = cur
        prev = cur
    return out


def read_png(path):
    """Decode a PNG file to a float32 (height, width, channels) array with values 0..255.

    Grey, grey+alpha, RGB, RGBA and palette images of every bit depth; alpha is dropped
    (grey+alpha -> 1 channel, RGBA -> 3). Interlaced (Adam7) images are refused.

    Errors are ValueError("NAME: what is wrong").
    """
    name = os.path.basename(str(path))
    with open(str(path), "rb") as f:
        data = f.read()
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError(f"{name}: not a PNG file")
    pos, header, palette, idat = len(_PNG_SIGNATURE), None, None, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise ValueError(f"{name}: truncated PNG")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            raise ValueError(f"{name}: corrupt PNG (bad checksum in {kind.decode('latin-1')})")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, dtype=np.uint8).reshape(-1, 3)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or not idat:
        raise ValueError(f"{name}: corrupt PNG (no IHDR or IDAT)")
    width, height, depth, color, _, _, interlace = header
    if color not in _PNG_CHANNELS or depth not in (1, 2, 4, 8, 16) or width < 1 or height < 1:
        raise ValueError(f"{name}: unsupported PNG (color type {color}, bit depth {depth})")
    if interlace:
        raise ValueError(f"{name}: interlaced PNGs are not supported; save it without interlacing")
    if width * height > 1 << 26:
        raise ValueError(f"{name}: image too large ({width}x{height})")
    channels = _PNG_CHANNELS[color]
    bits = channels * depth
    rowbytes = (width * bits + 7) // 8
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as e:
        raise ValueError(f"{name}: corrupt PNG ({e})") from None
    if len(raw) != height * (rowbytes + 1):
        raise ValueError(f"{name}: corrupt PNG (pixel data has the wrong size)")
    rows = _unfilter(raw, height, rowbytes, max(1, bits // 8), name)
    if depth == 16:
        px = rows.view(">u2").astype(np.float32).reshape(height, width, channels) * (255 / 65535)
    elif depth == 8:
        px = rows.reshape(height, width, channels).astype(np.float32)
    else:
        per_byte = 8 // depth
        shifts = np.arange(8 - depth, -1, -depth, dtype=np.uint8)
        vals = (rows[:, :, None] >> shifts) & ((1 << depth) - 1)
        vals = vals.reshape(height, rowbytes * per_byte)[:, :width]
        px = vals.astype(np.float32)[..., None]
        if color == 0:
            px *= 255 / ((1 << depth) - 1)
    if color == 3:
        if palette is None:
            raise ValueError(f"{name}: corrupt PNG (palette image without PLTE)")
        idx = px[..., 0].astype(np.int64)
        if idx.max() >= len(palette):
            raise ValueError(f"{name}: corrupt PNG (palette index out of range)")
        px = palette[idx].astype(np.float32)
    elif color == 4:
        px = px[..., :1]
    elif color == 6:
        px = px[..., :3]
    return px
