#!/usr/bin/env bash
# Real-GPU check of edgemine's CUDA backend, for a bare machine with an NVIDIA GPU and driver.
#
#   bash tools/gpu_check.sh
#
# 1. installs what is missing (numba-cuda, the project with [cuda,test], optionally a CUDA torch);
#    every install is optional and time-boxed, and an offline machine falls back to what is there;
# 2. runs tests/test_cuda_sim.py on the real GPU (EDGEMINE_CUDA_REAL=1: no simulator);
# 3. trains the seed CNN (MNIST subset) and the seed LSTM (tweets) one epoch each on CPU and GPU
#    and reports test accuracy for both (the CPU runs go in the background meanwhile);
# 4. runs tools/gpu_bench.py speed: edgemine cuda vs PyTorch CUDA, batch 32 and 256, then
#    tools/gpu_bench.py profile: launches, allocations, copies and GPU time per training step,
#    and tools/gpu_bench.py overhead: the host cost of single launches, copies and views;
# 5. writes $OUT/gpu_check.md when $OUT is set, else tools/results/gpu_check.md.
#
# Meant to finish within about 5 minutes (GPU_CHECK_BUDGET seconds, default 300): later steps
# shrink to the time left. PYTHON picks the interpreter (default python3). GPU_CHECK_NO_INSTALL=1
# skips step 1. GPU_CHECK_DRY_RUN=1 runs every step without a GPU, in Numba's CUDA simulator with
# tiny models (PyTorch on the CPU), to check the script itself.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET:-300}
START=$(date +%s)
RESULTS=${OUT:-$REPO/tools/results}
mkdir -p "$RESULTS"
MD=$RESULTS/gpu_check.md
WORK=$(mktemp -d /tmp/gpu_check.XXXXXX)
LOG=${OUT:-$WORK}/gpu_check.log
export PYTHONUNBUFFERED=1
DRY=${GPU_CHECK_DRY_RUN:-0}
BENCH=()
if [ "$DRY" = 1 ]; then
    export NUMBA_ENABLE_CUDASIM=1 GPU_CHECK_NO_INSTALL=1
    BENCH=(--tiny)
    REAL=0
else
    unset NUMBA_ENABLE_CUDASIM
    REAL=1
fi

elapsed() { echo $(($(date +%s) - START)); }
left() { echo $((BUDGET - $(date +%s) + START)); }
say() { echo "[gpu_check $(elapsed)s] $*" | tee -a "$LOG"; }
note() { echo "- $*" >>"$WORK/notes.md"; say "$*"; }
# run a command with a time limit, its output into the log; returns the command's status
run() {
    local limit=$1
    shift
    say "+ $* (limit ${limit}s)"
    timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
}
: >"$WORK/notes.md"
say "repo $REPO, python $($PY --version 2>&1), results to $MD"

# ----- 0. the machine -----
GPU_INFO="none (nvidia-smi not found)"
CUDA_DRV=""
if command -v nvidia-smi >/dev/null; then
    GPU_INFO=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 |
        head -1)
    CUDA_DRV=$(nvidia-smi 2>/dev/null | grep -o 'CUDA Version: [0-9.]*' | grep -o '[0-9.]*$' || true)
fi
say "GPU: ${GPU_INFO:-none} (driver CUDA ${CUDA_DRV:-?})"
PIP=("$PY" -m pip install -q --disable-pip-version-check --retries 0 --timeout 8)

# ----- 1. installs (optional, time-boxed) -----
if [ "${GPU_CHECK_NO_INSTALL:-0}" = 1 ]; then
    note "installs skipped (GPU_CHECK_NO_INSTALL=1)"
elif ! $PY -c "import numba_cuda" 2>/dev/null; then
    extra=cu12
    [ "${CUDA_DRV%%.*}" -ge 13 ] 2>/dev/null && extra=cu13
    run 120 "${PIP[@]}" "numba-cuda[$extra]" || run 90 "${PIP[@]}" numba-cuda ||
        note "numba-cuda could not be installed"
fi
if [ "${GPU_CHECK_NO_INSTALL:-0}" = 1 ]; then
    :
elif $PY -c "import numpy, numba, numba_cuda, click, onnx, onnxruntime, pytest" 2>/dev/null &&
    run 60 "${PIP[@]}" --no-deps --no-build-isolation -e .; then
    note "dependencies were all there; installed the project with pip install --no-deps -e ."
elif run 150 "${PIP[@]}" -e ".[cuda,test]"; then
    note "installed the project with pip install -e .[cuda,test]"
elif run 60 "${PIP[@]}" --no-deps --no-build-isolation -e .; then
    note "pip install -e .[cuda,test] failed (offline?); installed the project without dependencies"
else
    note "could not pip-install the project; running it from the source tree (PYTHONPATH)"
fi
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
TORCH_DEV=cuda
[ "$DRY" = 1 ] && TORCH_DEV=cpu
if [ "$DRY" != 1 ] && ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    if [ "${GPU_CHECK_NO_INSTALL:-0}" != 1 ] && [ "$(left)" -gt 200 ] &&
        run 120 "${PIP[@]}" torch &&
        $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
        note "installed torch $($PY -c 'import torch; print(torch.__version__)')"
    else
        TORCH_DEV=none
        note "no CUDA-enabled PyTorch could be had in time: the PyTorch comparison is skipped"
    fi
fi
$PY - >>"$WORK/versions.md" 2>>"$LOG" <<'EOF'
import importlib
for name in ("numpy", "numba", "numba_cuda", "torch"):
    try:
        m = importlib.import_module(name)
        print(f"- {name} {getattr(m, '__version__', '?')}")
    except Exception as e:
        print(f"- {name}: not importable ({type(e).__name__})")
EOF

# ----- 2. is CUDA usable? -----
if ! REASON=$("$PY" -c "from edgemine.backend import cuda_unavailable_reason as r
print(r() or '')" 2>>"$LOG"); then
    REASON="edgemine could not be imported (see the log)"
fi
say "cuda_unavailable_reason: ${REASON:-none, CUDA is usable}"

if [ -z "$REASON" ]; then
    # ----- 3a. CPU accuracy runs in the background (they need no GPU) -----
    CPU_LIMIT=$(($(left) - 20))
    [ "$CPU_LIMIT" -lt 30 ] && CPU_LIMIT=30
    NUMBA_NUM_THREADS=$(($(nproc) > 8 ? 8 : $(nproc))) timeout --kill-after=10 "$CPU_LIMIT" \
        "$PY" tools/gpu_bench.py accuracy --device cpu --models cnn,lstm ${BENCH[@]+"${BENCH[@]}"} \
        >"$WORK/acc_cpu.jsonl" 2>>"$LOG" &
    CPU_PID=$!

    # ----- 2b. the CUDA tests, for real -----
    NPROC=1
    $PY -c "import xdist" 2>/dev/null && NPROC=5
    XDIST=()
    [ "$NPROC" -gt 1 ] && XDIST=(-n "$NPROC")
    EDGEMINE_CUDA_REAL=$REAL timeout --kill-after=10 $(($(left) > 300 ? 150 : $(left) / 2)) \
        "$PY" -m pytest -q -p no:cacheprovider ${XDIST[@]+"${XDIST[@]}"} tests/test_cuda_sim.py \
        >"$WORK/pytest.txt" 2>&1
    TEST_RC=$?
    cat "$WORK/pytest.txt" >>"$LOG"
    say "CUDA tests exit status $TEST_RC"

    # ----- 3b. GPU accuracy runs -----
    timeout --kill-after=10 $(($(left) / 2)) "$PY" tools/gpu_bench.py accuracy --device cuda \
        --models cnn,lstm ${BENCH[@]+"${BENCH[@]}"} >"$WORK/acc_gpu.jsonl" 2>>"$LOG"
    say "GPU accuracy runs done (status $?)"
    wait "$CPU_PID"
    say "CPU accuracy runs done (status $?)"

    # ----- 4. speed: edgemine cuda vs PyTorch -----
    # 8 measurements (2 models x 2 batch sizes x 2 engines) plus warm-ups; 45 s kept for 4b, 4c
    SECS=$(((($(left)) - 75) / 16))
    [ "$SECS" -gt 8 ] && SECS=8
    BATCHES=32,256
    [ "$DRY" = 1 ] && BATCHES=2,4
    if [ "$SECS" -ge 1 ]; then
        timeout --kill-after=10 $(($(left) - 45)) "$PY" tools/gpu_bench.py speed \
            --batch-sizes "$BATCHES" --seconds "$SECS" --torch-device "$TORCH_DEV" \
            ${BENCH[@]+"${BENCH[@]}"} >"$WORK/speed.jsonl" 2>>"$LOG"
        say "speed bench done (status $?, ${SECS}s per measurement)"
    else
        note "no time left for the speed benchmark"
    fi

    # ----- 4b. where an edgemine training step's time goes -----
    PROFILE=(--batch-sizes 32,256 --steps 30)
    [ "$DRY" = 1 ] && PROFILE=(--batch-sizes 2 --steps 1)
    if [ "$(left)" -gt 35 ]; then
        timeout --kill-after=10 $(($(left) - 25)) "$PY" tools/gpu_bench.py profile "${PROFILE[@]}" \
            ${BENCH[@]+"${BENCH[@]}"} >"$WORK/profile.jsonl" 2>>"$LOG"
        say "profile done (status $?)"
    else
        note "no time left for the step profile"
    fi

    # ----- 4c. host cost of single numba.cuda calls (a few seconds) -----
    if [ "$(left)" -gt 12 ]; then
        timeout --kill-after=5 $(($(left) - 8)) "$PY" tools/gpu_bench.py overhead \
            >"$WORK/overhead.jsonl" 2>>"$LOG"
        say "call overheads done (status $?)"
    else
        note "no time left for the call overheads"
    fi
fi

# ----- 5. the report -----
DRY=$DRY WORK=$WORK MD=$MD REASON=$REASON GPU_INFO=$GPU_INFO ELAPSED=$(elapsed) TEST_RC=${TEST_RC:-} \
    $PY - <<'EOF'
import json
import os
from pathlib import Path

work = Path(os.environ["WORK"])


def rows(name):
    p = work / name
    out = []
    if p.exists():
        for line in p.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
    return out


title = "a real GPU" if os.environ.get("DRY") != "1" else "Numba's CUDA simulator (dry run)"
lines = [f"# edgemine CUDA backend on {title} (tools/gpu_check.sh)", ""]
lines += [f"- GPU: {os.environ.get('GPU_INFO') or 'none found'}"]
lines += (work / "versions.md").read_text().splitlines() if (work / "versions.md").exists() else []
lines += [f"- wall time of the whole check: {os.environ['ELAPSED']} s", ""]
reason = os.environ.get("REASON")
if reason:
    lines += [f"**CUDA is not usable here: {reason}.** Nothing else was run.", ""]
else:
    how = "in the simulator" if os.environ.get("DRY") == "1" else "EDGEMINE_CUDA_REAL=1, no simulator"
    lines += [f"## CUDA tests (tests/test_cuda_sim.py, {how})", ""]
    pt = work / "pytest.txt"
    tail = [ln for ln in pt.read_text().splitlines() if ln.strip()][-25:] if pt.exists() else []
    done = [ln for ln in tail if " in " in ln and ("passed" in ln or "failed" in ln)]
    summary = done[-1] if done else "no summary line"
    lines += [f"exit status {os.environ.get('TEST_RC')}: `{summary.strip()}`", ""]
    if os.environ.get("TEST_RC") not in ("0", ""):
        lines += ["```", *tail, "```", ""]
    if pt.exists():
        pending = sorted(
            {ln.strip() for ln in pt.read_text().splitlines() if "is pending:" in ln and "{" not in ln}
        )
        lines += [f"- {ln}" for ln in pending] + ([""] if pending else [])
    lines += ["## Seed models, one epoch, test accuracy", "",
              "| model | CPU accuracy % | CPU fit s | GPU accuracy % | GPU fit s |",
              "|---|---|---|---|---|"]
    cpu = {r["model"]: r for r in rows("acc_cpu.jsonl")}
    gpu = {r["model"]: r for r in rows("acc_gpu.jsonl")}
    for m in ("cnn", "lstm"):
        c, g = cpu.get(m, {}), gpu.get(m, {})
        lines.append(
            f"| {m} | {c.get('test_accuracy', c.get('error', 'did not finish'))} | "
            f"{c.get('fit_s', '')} | {g.get('test_accuracy', g.get('error', 'did not finish'))} | "
            f"{g.get('fit_s', '')} |"
        )
    lines += ["", "## Training speed, samples/s (edgemine device='cuda' vs PyTorch CUDA)", "",
              "| model | batch | edgemine | PyTorch | edgemine / PyTorch | notes |",
              "|---|---|---|---|---|---|"]
    for r in rows("speed.jsonl"):
        errs = "; ".join(str(r[k]) for k in ("edgemine_error", "torch_error") if k in r)
        lines.append(
            f"| {r['model']} | {r['batch']} | {r.get('edgemine_samples_per_s', '-')} | "
            f"{r.get('torch_samples_per_s', '-')} | {r.get('edgemine_over_torch', '-')} | "
            f"{errs} |"
        )
    if not rows("speed.jsonl"):
        lines.append("| - | - | - | - | - | not run or no result |")
    lines += ["", "## Where an edgemine training step's time goes (tools/gpu_bench.py profile)", "",
              "Per step of `fit`; host ms is time spent in the call on the CPU (a download waits "
              "for the GPU to finish the queued work). GPU ms: CUDA events around each launch, "
              "from a second run.", "",
              "| model | batch | wall ms | launches | launch ms | allocations | alloc ms | "
              "array objects | array ms | upload ms | download ms | other host ms | "
              "GPU kernel ms |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows("profile.jsonl"):
        if "error" in r:
            lines.append(f"| {r['model']} | {r['batch']} | {r['error']} |" + " |" * 10)
            continue
        cells = [r.get(k, "-") for k in (
            "wall_ms_per_step", "launches_per_step", "launches_host_ms_per_step",
            "allocations_per_step", "allocations_host_ms_per_step", "array_objects_per_step",
            "array_objects_host_ms_per_step", "uploads_host_ms_per_step",
            "downloads_host_ms_per_step", "other_host_ms_per_step", "gpu_kernel_ms_per_step")]
        lines.append(f"| {r['model']} | {r['batch']} | " + " | ".join(map(str, cells)) + " |")
    for r in rows("profile.jsonl"):
        if "gpu_ms_by_kernel" in r:
            busiest = ", ".join(f"{k} {v}" for k, v in r["gpu_ms_by_kernel"].items())
            lines.append(f"\n- {r['model']} batch {r['batch']}, GPU ms by kernel: {busiest}")
    if not rows("profile.jsonl"):
        lines.append("| - | - | not run or no result |" + " |" * 10)
if rows("overhead.jsonl"):
    lines += ["", "## Host cost of single numba.cuda calls (tools/gpu_bench.py overhead)", "",
              "Median host microseconds per call.", "", "| call | host us |", "|---|---|"]
    lines += [f"| {r['call']} | {r['host_us']} |" for r in rows("overhead.jsonl")]
notes = (work / "notes.md").read_text().strip() if (work / "notes.md").exists() else ""
if notes:
    lines += ["", "## Notes", "", notes]
Path(os.environ["MD"]).write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
say "report written to $MD (log: $LOG)"
[ -z "$REASON" ] && [ "${TEST_RC:-1}" -eq 0 ]
