#!/usr/bin/env python3
"""Run the model of this edgemine bundle. Needs numpy and onnxruntime (Pillow for images).

Inputs (any mix, in order):
  FILE.npy   model inputs: float arrays as they enter the model, or raw uint8 images
             (n, H, W[, C]) / integer token ids (n, maxlen); one sample may omit the batch axis
  FILE.png   an image (also .jpg, .bmp, .gif, .tif, .webp; Pillow reads it), grey or colour,
             exactly the model's image size
  FILE.csv   for table models: a header row and one sample a row, columns in any order
  FILE.txt   (or any other file) for text models: one text per line
  -          text lines from standard input
  --text T   one text (repeatable)

Examples:
  python run.py digit.png
  python run.py images.npy --json
  echo "what a great day" | python run.py -
  python run.py --bench
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EXIT_INPUT = 2


class BundleError(Exception):
    """A problem with an input, the model or the bundle: reported as one line, exit 2."""


try:
    import numpy as np
except ImportError:  # pragma: no cover - depends on the device
    sys.stderr.write("error: this bundle needs numpy: pip install -r requirements.txt\n")
    sys.exit(EXIT_INPUT)

sys.path.insert(0, HERE)
# edgemine's own input preparation, shipped beside this file: images and texts become model
# inputs exactly as `edgemine predict` makes them on the workstation
import edgemine_inputs as inputs  # noqa: E402

# --------------------------------------------------------------------------------------------
# the bundle's files
# --------------------------------------------------------------------------------------------


def load_json(name):
    path = os.path.join(HERE, name)
    if not os.path.isfile(path):
        raise BundleError(f"{name} is missing from the bundle folder {HERE}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as exc:
        raise BundleError(f"{name} is not valid JSON ({exc})") from None


def one_line(text):
    text = " ".join(str(text).split())
    return text if len(text) <= 300 else text[:297] + "..."


# --------------------------------------------------------------------------------------------
# onnxruntime session and providers
# --------------------------------------------------------------------------------------------

PROVIDER_ORDER = {
    "jetson": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    "rpi": ["CPUExecutionProvider"],
    "generic": ["CPUExecutionProvider"],
}


def provider_options(name):
    if name == "TensorrtExecutionProvider":
        cache = os.environ.get("EDGEMINE_TRT_CACHE") or os.path.join(HERE, "trt_cache")
        try:
            os.makedirs(cache, exist_ok=True)
        except OSError:
            cache = os.path.join(os.path.expanduser("~"), ".cache", "edgemine-trt")
            os.makedirs(cache, exist_ok=True)
        return {"trt_engine_cache_enable": True, "trt_engine_cache_path": cache}
    return {}


def open_session(model_path, target, requested, threads):
    try:
        import onnxruntime as ort
    except ImportError:
        raise BundleError(
            "this bundle needs onnxruntime: pip install -r requirements.txt"
            + (
                " (on a Jetson: onnxruntime-gpu from the Jetson Zoo, see README.md)"
                if target == "jetson"
                else ""
            )
        ) from None
    if not os.path.isfile(model_path):
        raise BundleError(f"model file not found: {model_path}")
    available = ort.get_available_providers()
    if requested:
        if requested not in available:
            raise BundleError(
                f"provider {requested} is not in this onnxruntime build "
                f"(available: {', '.join(available)})"
            )
        order = [requested]
    else:
        order = [p for p in PROVIDER_ORDER.get(target, ["CPUExecutionProvider"]) if p in available]
        order = order or ["CPUExecutionProvider"]
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    last = None
    for start in range(len(order)):  # if TensorRT fails to start, try CUDA, then the CPU
        providers = [(p, provider_options(p)) for p in order[start:]]
        try:
            return ort.InferenceSession(model_path, opts, providers=providers), ort
        except Exception as exc:
            last = exc
            if "protobuf" in str(exc).lower() or "invalid" in str(exc).lower():
                break
    raise BundleError(f"cannot load {os.path.basename(model_path)}: {one_line(last)}")


def check_model_matches(session, spec):
    """Refuse a model whose input or output is not the one the bundle describes."""
    want_in, want_out = spec["input"], spec["output"]
    inp, out = session.get_inputs()[0], session.get_outputs()[0]
    want_type = (
        "tensor("
        + {"float32": "float", "float64": "double"}.get(want_in["dtype"], want_in["dtype"])
        + ")"
    )
    shape = [d if isinstance(d, int) else None for d in inp.shape]
    if (
        inp.type != want_type
        or len(shape) != len(want_in["shape"])
        or any(a is not None and b is not None and a != b for a, b in zip(shape, want_in["shape"]))
    ):
        raise BundleError(
            f"model.onnx takes {inp.type} {inp.shape} but the bundle describes "
            f"{want_in['dtype']} {want_in['shape']}: the model does not belong to this bundle"
        )
    n_out = [d for d in out.shape[1:] if isinstance(d, int)]
    want_n = [d for d in want_out["shape"][1:] if isinstance(d, int)]
    if n_out and want_n and n_out != want_n:
        raise BundleError(
            f"model.onnx gives outputs {out.shape} but the bundle describes "
            f"{want_out['shape']}: the model does not belong to this bundle"
        )
    return inp.name


# --------------------------------------------------------------------------------------------
# reading all inputs
# --------------------------------------------------------------------------------------------


def read_npy(path):
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise BundleError(
            f"{os.path.basename(path)} is not a readable .npy file ({one_line(exc)})"
        ) from None


def rows(arr, source):
    return [(f"{source}[{i}]", arr[i : i + 1]) for i in range(len(arr))]


def rows_of(arr, source, csv_rows):
    return [(f"{source}:{line}", arr[i : i + 1]) for i, (line, _) in enumerate(csv_rows)]


def gather_inputs(args, spec):
    pre = spec  # preprocessing.json: the preprocessing keys, plus input/output/bundle
    kind = pre.get("kind")
    encoder = inputs.TextEncoder(pre) if kind == "text" else None
    sample_shape = tuple(spec["input"]["shape"][1:])
    items = []

    def texts(lines, source):
        for i, line in enumerate(lines, 1):
            line = line.rstrip("\r\n")
            if line.strip():
                items.append(
                    (f"{source}:{i}", encoder.encode(line, f"{source}:{i}", args.truncate))
                )

    for src in args.inputs:
        name = "stdin" if src == "-" else src
        if src != "-" and not os.path.isfile(src):
            raise BundleError(f"input file not found: {src}")
        if src.lower().endswith(".npy"):
            arr = read_npy(src)
            if kind == "text":
                vocab = pre.get("vocab_size") or pre.get("num_words")
                arr = inputs.token_ids(arr, pre["maxlen"], vocab, name)
                if spec["input"]["dtype"] == "int32":
                    arr = arr.astype(np.int32)
                items.extend(rows(arr, name))
            elif kind == "image":
                items.extend(rows(inputs.images_from_array(arr, pre, sample_shape, name), name))
            else:
                items.extend(npy_raw(arr, spec, name))
        elif kind == "table" and src.lower().endswith(".csv"):
            header, table = inputs.read_csv(src)
            items.extend(rows_of(inputs.table_input(header, table, pre, name), name, table))
        elif inputs.is_image_file(src):
            if kind != "image":
                raise BundleError(f"{name}: this model takes {kind or 'array'} inputs, not images")
            items.append((name, inputs.image_file_input(src, pre)))
        else:
            if kind != "text":
                raise BundleError(f"{name}: this model takes {kind or 'array'} inputs, not text")
            if src == "-":
                texts(sys.stdin, "stdin")
            else:
                with open(src, encoding="utf-8", errors="replace") as f:
                    texts(f, name)
    for i, text in enumerate(args.text or []):
        if kind != "text":
            raise BundleError("--text: this model does not take text")
        items.append((f"text[{i}]", encoder.encode(text, f"text[{i}]", args.truncate)))
    return items


def npy_raw(arr, spec, source):
    want = tuple(spec["input"]["shape"][1:])
    if tuple(arr.shape) == want:
        arr = arr[None]
    if tuple(arr.shape[1:]) != want:
        raise BundleError(f"{source} has shape {arr.shape}; the model takes (n, {want})")
    if arr.dtype.kind not in "biuf":
        raise BundleError(f"{source} has dtype {arr.dtype}; the model takes numbers")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise BundleError(f"{source} contains NaN or infinite values")
    return rows(arr.astype(np.dtype(spec["input"]["dtype"])), source)


def synthetic(spec, n):
    shape = [n] + [d if isinstance(d, int) else 1 for d in spec["input"]["shape"][1:]]
    return np.zeros(shape, dtype=np.dtype(spec["input"]["dtype"]))


# --------------------------------------------------------------------------------------------
# running, reporting, benchmarking
# --------------------------------------------------------------------------------------------


def predict(session, name, x, batch=64):
    outs = [session.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)]
    return np.concatenate(outs)


def as_probabilities(out):
    out = out.reshape(len(out), -1).astype(np.float64)
    sums = out.sum(axis=1)
    if out.min(initial=0) >= 0 and np.allclose(sums, 1.0, atol=1e-3):
        return out
    e = np.exp(out - out.max(axis=1, keepdims=True))  # logits: show a softmax
    return e / e.sum(axis=1, keepdims=True)


def bench(session, name, x, repeats):
    x1 = np.ascontiguousarray(x[:1])
    reps = -(-64 // len(x))
    x64 = np.ascontiguousarray(np.concatenate([x] * reps)[:64])

    def timed(feed, n, warmup):
        for _ in range(warmup):
            session.run(None, {name: feed})
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            session.run(None, {name: feed})
            times.append(time.perf_counter() - t0)
        return times

    t1 = sorted(timed(x1, repeats, 5))
    t64 = timed(x64, max(3, repeats // 5), 2)
    med64 = statistics.median(t64)
    return {
        "latency_ms_batch1_median": statistics.median(t1) * 1000,
        "latency_ms_batch1_p90": t1[int(0.9 * (len(t1) - 1))] * 1000,
        "runs_batch1": len(t1),
        "batch64_ms_median": med64 * 1000,
        "throughput_per_s_batch64": 64 / med64,
        "runs_batch64": len(t64),
    }


def score_series(args, session, name, spec):
    """Score each CSV series: one `index,score,flag` line per point (or one JSON document),
    exactly as `edgemine anomaly score` does on the workstation."""
    if not args.inputs or args.text:
        raise BundleError("give the series as CSV files (a header row, the model's columns)")
    docs, outputs = [], []
    for src in args.inputs:
        if not os.path.isfile(src):
            raise BundleError(f"input file not found: {src}")
        header, table = inputs.read_csv(src)
        values = inputs.table_values(header, table, spec["columns"], os.path.basename(src))
        x = inputs.series_windows(values, spec)
        errors = inputs.window_errors(x, predict(session, name, x))
        rule = spec.get("point_rule", "max")
        scores = inputs.point_scores(errors, len(values), spec["window"], spec["stride"], rule)
        flags = scores > spec["threshold"]
        docs.append({"input": src, "scores": scores.tolist(), "flags": flags.astype(int).tolist()})
        outputs.append(scores)
        if not args.json:
            print("index,score,flag")
            for i, (s, f) in enumerate(zip(scores, flags)):
                print(f"{i},{s:.9g},{int(f)}")
        sys.stderr.write(f"{src}: {int(flags.sum())} of {len(flags)} points flagged\n")
    if args.output:  # every point's score, the inputs one after another
        np.save(args.output, np.concatenate(outputs))
    if args.json:
        doc = {"model": os.path.basename(args.model), "provider": session.get_providers()[0]}
        doc.update(onnxruntime=ort_version(), numpy=np.__version__, threshold=spec["threshold"])
        print(json.dumps({**doc, "series": docs}))
    return 0


def ort_version():
    import onnxruntime

    return onnxruntime.__version__


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Predict with this edgemine bundle (numpy + onnxruntime only).",
        epilog="Inputs: .npy, images (.png, .jpg, ...), text files (one text per line) or - for stdin.",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help=".npy, image, text file or -")
    p.add_argument("--text", action="append", metavar="TEXT", help="a text to classify")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--bench", action="store_true", help="time batch 1 and batch 64")
    p.add_argument("--repeats", type=int, default=50, help="runs at batch 1 for --bench")
    p.add_argument("--output", metavar="OUT.npy", help="save the raw model outputs")
    p.add_argument("--provider", help="force one onnxruntime provider, e.g. CPUExecutionProvider")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: onnxruntime's)")
    p.add_argument("--truncate", action="store_true", help="cut texts longer than maxlen")
    p.add_argument("--model", default=os.path.join(HERE, "model.onnx"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    spec = load_json("preprocessing.json")
    labels = load_json("labels.json") if os.path.isfile(os.path.join(HERE, "labels.json")) else None
    target = spec.get("bundle", {}).get("target", "generic")

    session, ort = open_session(args.model, target, args.provider, args.threads)
    provider = session.get_providers()[0]
    name = check_model_matches(session, spec)

    if spec.get("kind") == "series" and not args.bench:  # points in, scores and flags out
        return score_series(args, session, name, spec)
    items = gather_inputs(args, spec) if spec.get("kind") != "series" else []
    if not items and not args.bench:
        raise BundleError("no input given (try --help)")
    result = {
        "model": os.path.basename(args.model),
        "provider": provider,
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
    }
    if not args.json:
        sys.stderr.write(f"model {result['model']} on {provider} (onnxruntime {ort.__version__})\n")

    if items:
        x = np.concatenate([arr for _, arr in items])
        out = predict(session, name, x)
        if args.output:
            np.save(args.output, out)
        probs = as_probabilities(out)
        preds = []
        for (source, _), row in zip(items, probs):
            k = int(row.argmax())
            label = labels[k] if labels and k < len(labels) else str(k)
            preds.append(
                {"input": source, "class": label, "index": k, "probability": float(row[k])}
            )
            if not args.json:
                print(f"{source}\t{label}\t{row[k]:.4f}")
        result["predictions"] = preds
    elif spec.get("kind") == "series" and args.inputs:  # --bench on the series' windows
        header, table = inputs.read_csv(args.inputs[0])
        values = inputs.table_values(header, table, spec["columns"], args.inputs[0])
        x = inputs.series_windows(values, spec)
    else:
        x = synthetic(spec, 1)

    if args.bench:
        b = bench(session, name, x, max(5, args.repeats))
        result["bench"] = b
        if not args.json:
            print(
                f"bench: batch 1 latency median {b['latency_ms_batch1_median']:.3f} ms "
                f"(p90 {b['latency_ms_batch1_p90']:.3f} ms, {b['runs_batch1']} runs); "
                f"batch 64: {b['batch64_ms_median']:.2f} ms, "
                f"{b['throughput_per_s_batch64']:.0f} samples/s ({provider})"
            )
    if args.json:
        print(json.dumps(result, indent=1))
    return 0


def run_command(main):
    """Run ``main`` as the device's command: a problem is one ``error:`` line and a non-zero
    exit status (2 for a BundleError), never a traceback. finetune.py uses it too."""
    try:
        sys.exit(main())
    except (BundleError, inputs.InputError) as exc:
        sys.stderr.write(f"error: {one_line(exc)}\n")
        sys.exit(EXIT_INPUT)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # never a traceback on the device: one line, non-zero exit
        sys.stderr.write(f"error: {exc.__class__.__name__}: {one_line(exc)}\n")
        sys.exit(1)


if __name__ == "__main__":
    run_command(main)
