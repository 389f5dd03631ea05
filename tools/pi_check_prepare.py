#!/usr/bin/env python3
"""Make a bundle, an inputs file and the expected outputs for tools/pi_check.sh.

usage:
  python tools/pi_check_prepare.py MODEL(.onnx|.edgemine) -o OUT [--target rpi] [--int8] [-n 64]
  python tools/pi_check_prepare.py --toy cnn|lstm -o OUT        # the tests' tiny models

Writes OUT/bundle/ (a bundle), OUT/inputs.npy and OUT/expected.npy (onnxruntime on this host,
run on the model directly, not through run.py), then prints the pi_check command line.
Inputs come from the bundled data set that fits the model (test split, spread evenly; raw
uint8 images so that run.py's scaling is exercised too), else from random data.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgemine.bundle import ensure_onnx, write_bundle  # noqa: E402
from edgemine.quantize import (  # noqa: E402
    model_spec,
    prepare_inputs,
    quantize_int8,
    read_metadata,
    synthetic_inputs,
)


def _toy(kind: str, workdir: Path) -> tuple[Path, dict | None]:
    spec = importlib.util.spec_from_file_location(
        "deploy_toy_models", REPO / "tests" / "deploy_toy_models.py"
    )
    toys = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toys)
    if kind == "cnn":
        return toys.make_cnn(workdir / "toy_cnn.onnx"), None
    path = toys.make_lstm(workdir / "toy_lstm.onnx", vocab=10000, maxlen=100, dim=32, units=32)
    return path, None  # the vocabulary comes from edgemine.datasets.tweets


def _raw_inputs(onnx_path: Path, n: int) -> np.ndarray:
    """Test samples of the fitting data set as run.py reads them, else random model inputs."""
    pre = read_metadata(onnx_path)["preprocessing"] or {}
    try:
        if pre.get("kind") == "image" and (pre["height"], pre["width"], pre["channels"]) == (
            28,
            28,
            1,
        ):
            from edgemine.datasets import mnist

            x = mnist.load_data()[1][0]
        elif pre.get("kind") == "text":
            from edgemine.datasets import tweets

            x = tweets.load_data(num_words=pre.get("num_words", 10000), maxlen=pre["maxlen"])[1][0]
        else:
            raise LookupError
        idx = np.linspace(0, len(x) - 1, min(n, len(x))).round().astype(int)
        return x[idx]
    except (ImportError, LookupError, OSError) as exc:
        print(f"no data set for this model ({exc or 'none fits'}): random inputs", file=sys.stderr)
        return synthetic_inputs(onnx_path, n=n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("model", nargs="?", help="a .onnx or .edgemine model")
    ap.add_argument("--toy", choices=["cnn", "lstm"], help="use a tiny test model instead")
    ap.add_argument("-o", "--out", required=True, help="output folder")
    ap.add_argument("--target", choices=["rpi", "jetson", "generic"], default="rpi")
    ap.add_argument("--int8", action="store_true", help="quantize to int8 before bundling")
    ap.add_argument("-n", type=int, default=64, help="number of input samples")
    args = ap.parse_args(argv)
    if bool(args.model) == bool(args.toy):
        ap.error("give a MODEL or --toy, not both")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pi-prepare-") as tmp:
        work = Path(tmp)
        if args.toy:
            src, pre = _toy(args.toy, work)
        else:
            src, pre = ensure_onnx(args.model, work), None
        if args.int8:
            src = quantize_int8(src, work / "model_int8.onnx")
        name = (f"toy_{args.toy}" if args.toy else Path(args.model).stem) + (
            "_int8" if args.int8 else ""
        )
        bundle = write_bundle(src, out / name, target=args.target, preprocessing=pre)

        import onnxruntime as ort

        raw = _raw_inputs(src, args.n)
        x = prepare_inputs(raw, model_spec(src), read_metadata(src)["preprocessing"])
        sess = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
        expected = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.save(out / "inputs.npy", raw)
    np.save(out / "expected.npy", expected)
    print(f"bundle:   {bundle}\ninputs:   {out / 'inputs.npy'} {raw.dtype} {raw.shape}")
    print(f"expected: {out / 'expected.npy'} {expected.shape}")
    print(f"next:     tools/pi_check.sh {bundle} {out / 'inputs.npy'} {out / 'expected.npy'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
