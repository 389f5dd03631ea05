#!/usr/bin/env python3
"""The engine itself (Numba kernels, not onnxruntime) on one machine, for ``pi_check.sh --engine``.

usage:
  python tools/pi_engine_check.py prepare WORK     # host: models + fixed inputs into WORK
  python tools/pi_engine_check.py run WORK OUT     # any machine: predict + fine-tune, into OUT
  python tools/pi_engine_check.py compare HOST PI  # exit 0 when the two runs agree
  python tools/pi_engine_check.py report WORK RESULTS STATUS FAILED_STEP QEMU_CPU

``prepare`` copies the trained seed CNN (``models/trained/seed_cnn.edgemine``), trains a seed
LSTM briefly with a fixed seed (the project ships no trained one) and writes fixed inputs: 64 test
images, 64 test tweets and 20 training batches of 32 images. ``run`` needs only an installed
edgemine: it loads both models, predicts the fixed batches, fine-tunes the CNN for 20 steps
(Adam, batch 32, seed 0) and saves it, timing each step; the first call of each kernel includes
Numba's compile time (or its cache load), which ``run`` reports apart. ``compare`` checks
predictions to 1e-5 absolute and fine-tuned weights to 1e-4 relative (of each array's largest
magnitude), and names the first array that differs.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STEPS, BATCH = 20, 32
PREDICT_TOL, WEIGHT_RTOL = 1e-5, 1e-4


def _seed_lstm():
    from edgemine import layers
    from edgemine.models import Sequential

    return Sequential(
        [
            layers.Embedding(10000, 64, input_length=100),
            layers.LSTM(64, return_sequences=True),
            layers.LSTM(64),
            layers.Dense(64, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )


def prepare(work: Path) -> None:
    from edgemine import zoo
    from edgemine.utils import set_random_seed, to_categorical

    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "models" / "trained" / "seed_cnn.edgemine", work / "seed_cnn.edgemine")
    mnist = zoo.load_data("mnist")
    tweets = zoo.load_data("tweets", {"num_words": 10000, "maxlen": 100})
    set_random_seed(0)
    lstm = _seed_lstm()
    lstm.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    lstm.fit(tweets.x_train[:2048], to_categorical(tweets.y_train[:2048], 10), epochs=1, verbose=0)
    lstm.save(work / "seed_lstm.edgemine")
    n = STEPS * BATCH
    np.savez(
        work / "inputs.npz",
        cnn=mnist.x_test[:64],
        lstm=tweets.x_test[:64],
        train_x=mnist.x_train[:n],
        train_y=to_categorical(mnist.y_train[:n], 10),
    )
    print(f"prepared {work}")


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run(work: Path, out: Path) -> None:
    import numba

    import edgemine
    from edgemine.kernels.cpu import blas
    from edgemine.optimizers import Adam
    from edgemine.saving import load_model
    from edgemine.utils import set_random_seed

    out.mkdir(parents=True, exist_ok=True)
    data = np.load(work / "inputs.npz")
    times: dict[str, float] = {}
    cnn, times["load_cnn_s"] = _timed(lambda: load_model(work / "seed_cnn.edgemine"))
    lstm, times["load_lstm_s"] = _timed(lambda: load_model(work / "seed_lstm.edgemine"))
    results = {}
    for name, model in (("cnn", cnn), ("lstm", lstm)):
        x = data[name]
        results[f"predict_{name}"], times[f"predict_{name}_first_s"] = _timed(
            lambda m=model, x=x: m.predict(x, batch_size=64, verbose=0)
        )
        again, times[f"predict_{name}_again_s"] = _timed(
            lambda m=model, x=x: m.predict(x, batch_size=64, verbose=0)
        )
        assert np.array_equal(again, results[f"predict_{name}"]), "predict is not repeatable"

    set_random_seed(0)
    cnn.compile(optimizer=Adam(1e-3), loss="categorical_crossentropy")
    step_s, losses = [], []
    for i in range(STEPS):
        sl = slice(i * BATCH, (i + 1) * BATCH)
        loss, dt = _timed(
            lambda sl=sl: cnn.train_on_batch(data["train_x"][sl], data["train_y"][sl])
        )
        losses.append(float(np.asarray(loss).ravel()[0]))
        step_s.append(dt)
    cnn.save(out / "finetuned.edgemine")
    for j, w in enumerate(cnn.get_weights()):
        results[f"weight_{j}"] = w
    np.savez(out / "result.npz", **results)
    steady = float(np.median(step_s[5:]))
    info = {
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "edgemine": edgemine.__version__,
        "numba_threads": numba.get_num_threads(),
        "cblas_sgemm_found": bool(blas.SGEMM),
        "times": {k: round(v, 4) for k, v in times.items()},
        "step_s": [round(s, 4) for s in step_s],
        "step_median_s": round(steady, 4),
        # the first step compiles (or loads from the cache) every training kernel
        "first_step_extra_s": round(step_s[0] - steady, 4),
        "losses": losses,
    }
    (out / "result.json").write_text(json.dumps(info, indent=1))
    print(json.dumps({k: v for k, v in info.items() if k != "step_s"}))


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":")[0].strip() in ("model name", "Model"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def compare(host: Path, pi: Path) -> int:
    a, b = np.load(host / "result.npz"), np.load(pi / "result.npz")
    report, ok = {}, True
    for key in a.files:
        x, y = a[key].astype(np.float64), b[key].astype(np.float64)
        diff = float(np.abs(x - y).max())
        if key.startswith("predict_"):
            good = diff <= PREDICT_TOL
        else:
            diff /= max(float(np.abs(x).max()), 1e-30)
            good = diff <= WEIGHT_RTOL
        report[key] = diff
        if not good and ok:
            print(f"FIRST DIFFERENCE: {key}: {diff:.3g}")
        ok &= good
    worst_w = max(v for k, v in report.items() if k.startswith("weight_"))
    print(
        f"predict cnn {report['predict_cnn']:.3g}, lstm {report['predict_lstm']:.3g} "
        f"(tolerance {PREDICT_TOL:g}); fine-tuned weights, worst relative {worst_w:.3g} "
        f"(tolerance {WEIGHT_RTOL:g})"
    )
    (pi / "compare.json").write_text(json.dumps(report, indent=1))
    return 0 if ok else 1


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # a step that failed wrote nothing
        return {}


def report(work: Path, results: Path, status: str, failed: str, qemu_cpu: str) -> None:
    """Replace the ``engine`` section of ``tools/results/pi_check.md`` with this run's."""
    runs = {
        "arm64, cold cache": _load_json(work / "pi_cold" / "result.json"),
        "arm64, warm cache": _load_json(work / "pi_warm" / "result.json"),
        "host": _load_json(work / "host" / "result.json"),
    }
    cmp_ = _load_json(work / "pi_warm" / "compare.json")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "<!-- pi_check:engine -->",
        f"## engine: {status}" + (f" (failed at: {failed})" if failed else ""),
        "",
        f"- date: {when}; `tools/pi_check.sh --engine` (tools/pi_engine_check.py)",
    ]
    for where, r in runs.items():
        if r:
            lines.append(
                f"- {where}: {r['machine']} ({r['cpu']}{', QEMU_CPU=' + qemu_cpu if 'arm64' in where else ''}),"
                f" Python {r['python']}, numpy {r['numpy']}, numba {r['numba']}, edgemine"
                f" {r['edgemine']}, {r['numba_threads']} Numba threads, numpy's cblas_sgemm"
                f" {'found' if r['cblas_sgemm_found'] else 'NOT found (own loops)'}"
            )
    if cmp_:
        worst_w = max(v for k, v in cmp_.items() if k.startswith("weight_"))
        lines.append(
            f"- arm64 vs host: predictions max |diff| seed CNN **{cmp_['predict_cnn']:.3g}**,"
            f" seed LSTM **{cmp_['predict_lstm']:.3g}** (tolerance {PREDICT_TOL:g}); weights"
            f" after {STEPS} Adam steps, worst relative difference **{worst_w:.3g}**"
            f" (tolerance {WEIGHT_RTOL:g})"
        )
    steps = [l.split("|") for l in (work / "steps.txt").read_text().splitlines() if l]
    lines += ["", "| step | seconds | status |", "| --- | ---: | --- |"]
    lines += [f"| {n} | {t} | {st} |" for n, t, st in steps]
    lines += [
        "",
        "Seconds inside the engine (emulated timings compare only with each other; first calls"
        " include Numba's compile or cache load):",
        "",
        "| run | load CNN | load LSTM | CNN predict 64, first | again | LSTM predict 64, first"
        " | again | train step, median | first step extra |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for where, r in runs.items():
        if r:
            t = r["times"]
            lines.append(
                f"| {where} | {t['load_cnn_s']:.2f} | {t['load_lstm_s']:.2f} |"
                f" {t['predict_cnn_first_s']:.2f} | {t['predict_cnn_again_s']:.2f} |"
                f" {t['predict_lstm_first_s']:.2f} | {t['predict_lstm_again_s']:.2f} |"
                f" {r['step_median_s']:.3f} | {r['first_step_extra_s']:.2f} |"
            )
    lines.append("<!-- /pi_check:engine -->")
    section = "\n".join(lines)
    text = results.read_text() if results.exists() else "# pi_check results\n"
    pat = re.compile(r"<!-- pi_check:engine -->.*?<!-- /pi_check:engine -->", re.S)
    if pat.search(text):
        text = pat.sub(lambda m: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    results.write_text(text)
    print(f"results: {results}")


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "prepare":
        prepare(Path(argv[1]))
    elif len(argv) == 3 and argv[0] == "run":
        run(Path(argv[1]), Path(argv[2]))
    elif len(argv) == 6 and argv[0] == "report":
        report(Path(argv[1]), Path(argv[2]), *argv[3:])
    elif len(argv) == 3 and argv[0] == "compare":
        return compare(Path(argv[1]), Path(argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
