#!/usr/bin/env bash
# Run an edgemine bundle on an emulated Raspberry Pi 4 (arm64 Debian bookworm under qemu-user)
# and on this host, and check that both give the same outputs.
#
# usage: tools/pi_check.sh BUNDLE_DIR INPUTS.npy|INPUTS.csv [EXPECTED.npy]
#        tools/pi_check.sh --engine
#
# Make BUNDLE_DIR and INPUTS.npy (and EXPECTED.npy) with tools/pi_check_prepare.py.
# --engine runs edgemine's own Numba engine instead of a bundle: it builds a wheel on the host,
# installs it in the emulated Pi, and there (and on the host) loads the trained seed CNN and a
# seed LSTM, predicts fixed batches and fine-tunes the CNN for 20 steps
# (tools/pi_engine_check.py), twice on the Pi (cold and warm Numba cache); exit 0 only when the
# Pi's predictions equal the host's to 1e-5 and its fine-tuned weights to 1e-4 relative.
# HOST_PYTHON must then import edgemine (e.g. the repository's .venv/bin/python).
# Needs root (debootstrap, chroot, mounts). Follows shared/notes/arm64-emulation.md:
# binfmt + qemu-aarch64, a cached rootfs, an ARM /proc/cpuinfo bind-mounted over the host's
# (onnxruntime's aarch64 build segfaults on an Intel one), QEMU_CPU=cortex-a72, no host pip
# settings inside the chroot, every mount undone on exit.
#
# Environment (all optional):
#   EDGEMINE_PI_CACHE    cache folder            (default /var/cache/edgemine-pi)
#   EDGEMINE_PI_ROOTFS   the arm64 rootfs        (default $EDGEMINE_PI_CACHE/rootfs)
#   EDGEMINE_PI_MIRROR   Debian mirror           (default http://deb.debian.org/debian)
#   EDGEMINE_PI_CPU      qemu CPU model          (default cortex-a72, a Pi 4; cortex-a76: Pi 5)
#   EDGEMINE_PI_RESULTS  results file            (default tools/results/pi_check.md)
#   EDGEMINE_PI_TOL      max abs difference      (default 1e-5)
#   EDGEMINE_PI_REPEATS  batch-1 runs for --bench (default 20)
#   HOST_PYTHON          host python with numpy + onnxruntime (default python3)
#
# Emulated timings compare runs under the same emulation only; they are not Pi speeds.

set -euo pipefail

usage() { echo "usage: $0 BUNDLE_DIR INPUTS.npy [EXPECTED.npy] | $0 --engine" >&2; exit 2; }
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENGINE=""
if [[ ${1:-} == --engine ]]; then
    [[ $# -eq 1 ]] || usage
    ENGINE=1; BUNDLE=""; INPUTS=""; EXPECTED=""
else
    [[ $# -ge 2 && $# -le 3 ]] || usage
    BUNDLE=$(cd "$1" 2>/dev/null && pwd) || { echo "error: no bundle folder $1" >&2; exit 2; }
    INPUTS=$(realpath "$2")
    EXPECTED=${3:+$(realpath "$3")}
    for f in run.py model.onnx preprocessing.json requirements.txt; do
        [[ -f $BUNDLE/$f ]] || { echo "error: $BUNDLE has no $f: not an edgemine bundle" >&2; exit 2; }
    done
    [[ -f $INPUTS ]] || { echo "error: no inputs file $INPUTS" >&2; exit 2; }
    INPUT_NAME="inputs.${INPUTS##*.}"  # .npy, or .csv for a table model or an anomaly detector
    [[ -z $EXPECTED || -f $EXPECTED ]] || { echo "error: no expected file $EXPECTED" >&2; exit 2; }
fi
[[ $(id -u) -eq 0 ]] || { echo "error: run as root (debootstrap, chroot and mounts)" >&2; exit 2; }

CACHE=${EDGEMINE_PI_CACHE:-/var/cache/edgemine-pi}
ROOTFS=${EDGEMINE_PI_ROOTFS:-$CACHE/rootfs}
MIRROR=${EDGEMINE_PI_MIRROR:-http://deb.debian.org/debian}
CPU=${EDGEMINE_PI_CPU:-cortex-a72}
RESULTS=${EDGEMINE_PI_RESULTS:-$REPO/tools/results/pi_check.md}
TOL=${EDGEMINE_PI_TOL:-1e-5}
REPEATS=${EDGEMINE_PI_REPEATS:-20}
HOST_PYTHON=${HOST_PYTHON:-python3}
NAME=$([[ -n $ENGINE ]] && echo engine || basename "$BUNDLE")
WORK=$(mktemp -d /tmp/pi_check.XXXXXX)
CHROOT_WORK=/tmp/pi_check_$NAME
MOUNTS=$WORK/mounts  # mounted paths, one a line, undone in reverse order by cleanup
STEPS=()         # "name|seconds|status"
STATUS=FAIL
FAILED_STEP=""

mkdir -p "$CACHE"
export QEMU_CPU=$CPU

# ---------------------------------------------------------------------------------------------
cleanup() {
    local rc=$?
    set +e
    # cpuinfo first (it sits on top of proc), then the rest in reverse mount order
    local m
    if [[ -f $MOUNTS ]]; then
        while read -r m; do
            umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null \
                || echo "warning: could not unmount $m" >&2
        done < <(tac "$MOUNTS")
    fi
    [[ -d $ROOTFS$CHROOT_WORK ]] && rm -rf "${ROOTFS:?}$CHROOT_WORK"
    if [[ $STATUS != PASS && -n ${RESULTS_READY:-} ]]; then
        if [[ -n $ENGINE ]]; then engine_results || true; else write_results || true; fi
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# step NAME CMD...: runs CMD (in a subshell, under set -e), prints and records its duration;
# a failure stops the check
step() {
    local name=$1; shift
    local t0 t1 rc
    t0=$(now)
    printf '== %s\n' "$name"
    set +e
    (set -e; "$@")
    rc=$?
    set -e
    t1=$(now)
    local dur; dur=$(secs "$t0" "$t1")
    if [[ $rc -eq 0 ]]; then
        STEPS+=("$name|$dur|ok"); printf '   %s s\n' "$dur"
    else
        STEPS+=("$name|$dur|failed (exit $rc)"); FAILED_STEP=$name
        printf '   FAILED after %s s (exit %s)\n' "$dur" "$rc" >&2
        exit "$rc"
    fi
}

# in_pi CMD...: run CMD inside the arm64 rootfs with a clean environment
in_pi() {
    chroot "$ROOTFS" /usr/bin/env -i \
        QEMU_CPU="$CPU" HOME=/root LANG=C.UTF-8 \
        PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$@"
}

# ---------------------------------------------------------------------------------------------
host_tools() {
    if ! command -v debootstrap >/dev/null || ! command -v qemu-aarch64-static >/dev/null \
        || ! command -v update-binfmts >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            qemu-user-static binfmt-support debootstrap >/dev/null
    fi
    if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
        update-binfmts --enable qemu-aarch64
    fi
    grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64
}

rootfs() {
    if [[ -f $ROOTFS/.edgemine-rootfs-ok ]]; then
        echo "   reusing $ROOTFS ($(cat "$ROOTFS/.edgemine-rootfs-ok"))"
        return 0
    fi
    local partial=$ROOTFS.partial t0
    rm -rf "$partial"
    t0=$(now)
    debootstrap --arch=arm64 --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$partial" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
        || { tail -5 "$CACHE/debootstrap.log" >&2; return 1; }
    rm -rf "$ROOTFS"
    mv "$partial" "$ROOTFS"
    echo "debootstrap bookworm arm64 minbase, $(date -u +%FT%TZ), $(secs "$t0" "$(now)") s" \
        >"$ROOTFS/.edgemine-rootfs-ok"
}

configure() {
    # the qemu binary inside too, in case binfmt was registered without the F flag
    install -D -m 755 "$(command -v qemu-aarch64-static)" "$ROOTFS/usr/bin/qemu-aarch64-static"
    cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf" 2>/dev/null || true
    local changed=0 crt
    mkdir -p "$ROOTFS/usr/local/share/ca-certificates"
    for crt in /usr/local/share/ca-certificates/*.crt; do
        [[ -f $crt ]] || continue
        if ! cmp -s "$crt" "$ROOTFS/usr/local/share/ca-certificates/$(basename "$crt")"; then
            cp "$crt" "$ROOTFS/usr/local/share/ca-certificates/"; changed=1
        fi
    done
    # a plain pip.conf: no host find-links (x86 wheels), no host constraints
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\ntimeout = 180\n' \
        >"$ROOTFS/etc/pip.conf"
    # a Raspberry Pi 4's /proc/cpuinfo, one entry per CPU the kernel says is possible
    local n; n=$(awk -F- '{ print ($2 == "" ? 1 : $2 + 1) }' /sys/devices/system/cpu/possible)
    {
        for ((i = 0; i < n; i++)); do
            printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$i"
            printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\n'
            printf 'CPU part\t: 0xd08\nCPU revision\t: 3\n\n'
        done
        printf 'Hardware\t: BCM2835\nRevision\t: c03111\nSerial\t\t: 1000000000000000\n'
        printf 'Model\t\t: Raspberry Pi 4 Model B Rev 1.1\n'
    } >"$CACHE/cpuinfo-pi4"
    echo "$changed" >"$WORK/certs_changed"
}

mount_one() {  # mount_one TARGET MOUNT-ARGS...
    local target=$1; shift
    if mountpoint -q "$target"; then umount "$target" 2>/dev/null || umount -l "$target"; fi
    mount "$@" "$target"
    echo "$target" >>"$MOUNTS"
}

mounts() {
    mount_one "$ROOTFS/proc" -t proc proc
    mount_one "$ROOTFS/sys" --bind /sys
    mount_one "$ROOTFS/dev" --bind /dev
    mount_one "$ROOTFS/dev/pts" --bind /dev/pts
    mount_one "$ROOTFS/proc/cpuinfo" --bind "$CACHE/cpuinfo-pi4"
    # the emulated CPU as arm64 programs see it
    echo "   $(in_pi uname -m), $(in_pi grep -m1 'CPU part' /proc/cpuinfo | tr -s '\t ' ' '), QEMU_CPU=$CPU"
}

certs() {
    if [[ $(cat "$WORK/certs_changed") == 1 ]]; then
        in_pi update-ca-certificates 2>&1 | grep -v '^rehash: warning' || true
    else
        echo "   unchanged"
    fi
}

venv() {
    if ! [[ -x $ROOTFS/opt/venv/bin/python ]]; then
        in_pi python3 -m venv /opt/venv
    fi
    local req=$ROOTFS/opt/requirements.txt
    cp "$BUNDLE/requirements.txt" "$req"
    if ! grep -qiE '^\s*onnxruntime' "$req"; then
        # a Jetson bundle names no onnxruntime (it comes from JetPack); the Pi check uses PyPI's
        echo "onnxruntime>=1.19,<2" >>"$req"
    fi
    in_pi /opt/venv/bin/pip install -q -r /opt/requirements.txt
    in_pi /opt/venv/bin/python -c \
        "import sys, numpy, onnxruntime; print('   arm64: Python', sys.version.split()[0], '| numpy', numpy.__version__, '| onnxruntime', onnxruntime.__version__)"
}

copy_in() {
    rm -rf "${ROOTFS:?}$CHROOT_WORK"
    mkdir -p "$ROOTFS$CHROOT_WORK"
    cp -r "$BUNDLE" "$ROOTFS$CHROOT_WORK/bundle"
    cp "$INPUTS" "$ROOTFS$CHROOT_WORK/$INPUT_NAME"
}

predict_pi() {
    in_pi /opt/venv/bin/python "$CHROOT_WORK/bundle/run.py" "$CHROOT_WORK/$INPUT_NAME" \
        --json --output "$CHROOT_WORK/out.npy" >"$WORK/pi_predict.json"
    cp "$ROOTFS$CHROOT_WORK/out.npy" "$WORK/out_arm64.npy"
}

bench_pi() {
    in_pi /opt/venv/bin/python "$CHROOT_WORK/bundle/run.py" "$CHROOT_WORK/$INPUT_NAME" \
        --json --bench --repeats "$REPEATS" >"$WORK/pi_bench.json"
}

predict_host() {
    "$HOST_PYTHON" "$BUNDLE/run.py" "$INPUTS" --json --output "$WORK/out_host.npy" \
        >"$WORK/host_predict.json"
}

bench_host() {
    "$HOST_PYTHON" "$BUNDLE/run.py" "$INPUTS" --json --bench --repeats "$REPEATS" \
        >"$WORK/host_bench.json"
}

compare() {
    "$HOST_PYTHON" - "$WORK" "$TOL" "${EXPECTED:-}" <<'EOF'
import json, sys
import numpy as np
work, tol, expected = sys.argv[1], float(sys.argv[2]), sys.argv[3]
pi = np.load(f"{work}/out_arm64.npy").astype(np.float64)
host = np.load(f"{work}/out_host.npy").astype(np.float64)
res = {"samples": len(pi), "max_diff_host": float(np.abs(pi - host).max()),
       "same_top1": int((pi.argmax(-1) == host.argmax(-1)).sum())}
if expected:
    exp = np.load(expected).astype(np.float64)
    res["max_diff_expected"] = float(np.abs(pi - exp).max())
    res["max_diff_host_expected"] = float(np.abs(host - exp).max())
json.dump(res, open(f"{work}/compare.json", "w"))
print(f"   max |arm64 - host| = {res['max_diff_host']:.3g} over {res['samples']} samples"
      + (f"; max |arm64 - expected| = {res['max_diff_expected']:.3g}" if expected else ""))
worst = max(v for k, v in res.items() if k.startswith("max_diff"))
sys.exit(0 if worst <= tol else 1)
EOF
}

write_results() {
    mkdir -p "$(dirname "$RESULTS")"
    printf '%s\n' "${STEPS[@]}" >"$WORK/steps.txt"
    "$HOST_PYTHON" - "$WORK" "$RESULTS" "$NAME" "$BUNDLE" "$INPUTS" "${EXPECTED:-}" \
        "$STATUS" "$FAILED_STEP" "$CPU" "$TOL" "$REPEATS" <<'EOF'
import datetime, json, os, re, sys
work, results, name, bundle, inputs, expected, status, failed, cpu, tol, repeats = sys.argv[1:]
def load(f):
    try:
        return json.load(open(os.path.join(work, f)))
    except (OSError, ValueError):  # not written, or cut short by a failed step
        return {}
spec = json.load(open(os.path.join(bundle, "preprocessing.json")))
b = spec.get("bundle", {})
steps = [l.split("|") for l in open(os.path.join(work, "steps.txt")).read().splitlines() if l]
cmp_, pib, hob, pip_ = load("compare.json"), load("pi_bench.json"), load("host_bench.json"), load("pi_predict.json")
when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
lines = [f"<!-- pi_check:{name} -->",
         f"## {name}: {status}" + (f" (failed at: {failed})" if failed else ""), "",
         f"- date: {when}",
         f"- bundle: `{name}` target {b.get('target')}, {b.get('quantization')}, "
         f"{spec.get('kind')} model, {b.get('model_bytes', 0) / 1024:.1f} KiB, "
         f"sha256 {str(b.get('model_sha256'))[:12]}",
         f"- inputs: `{os.path.basename(inputs)}`" + (f", expected: `{os.path.basename(expected)}`" if expected else "")]
if pip_:
    lines.append(f"- arm64 (qemu-user, QEMU_CPU={cpu}): onnxruntime {pip_.get('onnxruntime')}, "
                 f"numpy {pip_.get('numpy')}, provider {pip_.get('provider')}")
hp = load("host_predict.json")
if hp:
    cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                      if l.startswith("model name")), "unknown CPU")
    lines.append(f"- host (x86_64, {cpu_model}): onnxruntime {hp.get('onnxruntime')}, "
                 f"numpy {hp.get('numpy')}")
if cmp_:
    s = (f"- max abs diff arm64 vs host: **{cmp_['max_diff_host']:.3g}** over {cmp_['samples']} samples "
         f"(tolerance {tol}); same top-1 class: {cmp_['same_top1']}/{cmp_['samples']}")
    if "max_diff_expected" in cmp_:
        s += (f"; arm64 vs expected (host onnxruntime on the model): {cmp_['max_diff_expected']:.3g}, "
              f"host run.py vs expected: {cmp_['max_diff_host_expected']:.3g}")
    lines.append(s)
lines += ["", "| step | seconds | status |", "| --- | ---: | --- |"]
lines += [f"| {n} | {t} | {st} |" for n, t, st in steps]
if pib or hob:
    lines += ["", f"run.py --bench ({repeats} runs at batch 1; emulated timings compare only with each other):", "",
              "| where | batch 1 median ms | batch 1 p90 ms | batch 64 ms | samples/s at 64 |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for where, d in (("arm64 (emulated)", pib), ("host x86_64", hob)):
        if d.get("bench"):
            x = d["bench"]
            lines.append(f"| {where} | {x['latency_ms_batch1_median']:.3f} | {x['latency_ms_batch1_p90']:.3f} "
                         f"| {x['batch64_ms_median']:.2f} | {x['throughput_per_s_batch64']:.0f} |")
lines.append(f"<!-- /pi_check:{name} -->")
section = "\n".join(lines)
head = ("# pi_check results\n\n"
        "`tools/pi_check.sh` runs a bundle's run.py on an emulated Raspberry Pi 4 (arm64 Debian bookworm\n"
        "userland under qemu-user) and on the x86_64 host, and compares the outputs. Emulated timings are\n"
        "good only for comparisons under the same emulation, never as Pi speeds; the host's 2 cores are\n"
        "shared with other work, so timings also vary from run to run. One section per bundle,\n"
        "replaced on each run.\n")
text = open(results).read() if os.path.exists(results) else head
pat = re.compile(rf"<!-- pi_check:{re.escape(name)} -->.*?<!-- /pi_check:{re.escape(name)} -->", re.S)
text = pat.sub(lambda m: section, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
open(results, "w").write(text)
print(f"results: {results}")
EOF
}

# --engine -------------------------------------------------------------------------------------
ENGINE_VENV=/opt/engine-venv
CHECK="$HOST_PYTHON $REPO/tools/pi_engine_check.py"

build_wheel() {
    mkdir -p "$WORK/wheel"
    "$HOST_PYTHON" -m pip wheel -q --no-deps "$REPO" -w "$WORK/wheel"
    ls "$WORK/wheel"/edgemine-*.whl
}

engine_venv() {
    [[ -x $ROOTFS$ENGINE_VENV/bin/python ]] || in_pi python3 -m venv "$ENGINE_VENV"
    mkdir -p "$ROOTFS/opt/wheel" && rm -f "$ROOTFS"/opt/wheel/*.whl
    cp "$WORK"/wheel/edgemine-*.whl "$ROOTFS/opt/wheel/"
    local whl; whl=/opt/wheel/$(basename "$WORK"/wheel/edgemine-*.whl)
    # PyPI's aarch64 wheels for the dependencies; edgemine itself always from this wheel
    in_pi "$ENGINE_VENV/bin/pip" install -q "$whl"
    in_pi "$ENGINE_VENV/bin/pip" install -q --force-reinstall --no-deps "$whl"
    in_pi "$ENGINE_VENV/bin/python" -c \
        "import numba, numpy, edgemine; print('   arm64: numba', numba.__version__, '| numpy', numpy.__version__, '| edgemine', edgemine.__version__)"
}

engine_prepare() {
    $CHECK prepare "$WORK/engine"
    rm -rf "${ROOTFS:?}$CHROOT_WORK"
    mkdir -p "$ROOTFS$CHROOT_WORK"
    cp -r "$WORK/engine" "$ROOTFS$CHROOT_WORK/engine"
    cp "$REPO/tools/pi_engine_check.py" "$ROOTFS$CHROOT_WORK/"
}

engine_pi() {  # engine_pi OUT: one run in the emulated Pi, Numba's cache in the work folder
    in_pi /usr/bin/env NUMBA_CACHE_DIR="$CHROOT_WORK/numba-cache" "$ENGINE_VENV/bin/python" \
        "$CHROOT_WORK/pi_engine_check.py" run "$CHROOT_WORK/engine" "$CHROOT_WORK/$1" >/dev/null
    cp -r "$ROOTFS$CHROOT_WORK/$1" "$WORK/$1"
}

engine_host() {
    NUMBA_CACHE_DIR="$WORK/numba-cache" $CHECK run "$WORK/engine" "$WORK/host" >/dev/null
}

engine_results() {
    printf '%s\n' "${STEPS[@]}" >"$WORK/steps.txt"
    $CHECK report "$WORK" "$RESULTS" "$STATUS" "$FAILED_STEP" "$CPU"
}

# ---------------------------------------------------------------------------------------------
exec 9>"$CACHE/lock"
flock -w 900 9 || { echo "error: another pi_check holds $CACHE/lock" >&2; exit 1; }

T_ALL=$(now)
RESULTS_READY=1
if [[ -n $ENGINE ]]; then
    echo "pi_check --engine: rootfs $ROOTFS"
    step "host tools (qemu-user-static, binfmt)" host_tools
    step "arm64 rootfs (debootstrap bookworm, or reuse)" rootfs
    step "configure rootfs (certs, pip.conf, cpuinfo)" configure
    step "mount proc/sys/dev + Pi 4 cpuinfo" mounts
    step "update-ca-certificates inside (when the host's changed)" certs
    step "build the edgemine wheel (host)" build_wheel
    step "engine venv: pip install the wheel (arm64)" engine_venv
    step "prepare models + inputs (host)" engine_prepare
    step "engine run, cold Numba cache (arm64, emulated)" engine_pi pi_cold
    step "engine run, warm Numba cache (arm64, emulated)" engine_pi pi_warm
    step "engine run (host)" engine_host
    STEPS+=("total before compare|$(secs "$T_ALL" "$(now)")|ok")
    if $CHECK compare "$WORK/host" "$WORK/pi_warm" && $CHECK compare "$WORK/pi_cold" "$WORK/pi_warm"; then
        STATUS=PASS
    else
        STATUS=FAIL; FAILED_STEP="compare"
    fi
    engine_results
    echo "pi_check --engine: $STATUS"
    [[ $STATUS == PASS ]]
    exit
fi
echo "pi_check: bundle $BUNDLE, inputs $INPUTS, rootfs $ROOTFS"
step "host tools (qemu-user-static, binfmt)" host_tools
step "arm64 rootfs (debootstrap bookworm, or reuse)" rootfs
step "configure rootfs (certs, pip.conf, cpuinfo)" configure
step "mount proc/sys/dev + Pi 4 cpuinfo" mounts
step "update-ca-certificates inside (when the host's changed)" certs
step "venv: pip install -r requirements.txt (arm64)" venv
step "copy bundle + inputs into rootfs" copy_in
step "run.py predict (arm64, emulated)" predict_pi
step "run.py --bench (arm64, emulated)" bench_pi
step "run.py predict (host)" predict_host
step "run.py --bench (host)" bench_host
STEPS+=("total before compare|$(secs "$T_ALL" "$(now)")|ok")
if compare; then
    STATUS=PASS
else
    STATUS=FAIL; FAILED_STEP="compare (tolerance $TOL)"
fi
write_results
echo "pi_check: $STATUS"
[[ $STATUS == PASS ]]
