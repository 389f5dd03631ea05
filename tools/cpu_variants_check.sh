#!/usr/bin/env bash
# The test suite with the CPU code paths of another machine, on this one: no test may depend on
# the CPU model (issue 13). Each variant compiles edgemine's kernels for another Numba target
# (NUMBA_CPU_NAME, into a cache of its own) and makes numpy's OpenBLAS take another kernel family
# (OPENBLAS_CORETYPE): other vector widths, no fused multiply-add, other summation orders.
#
#   bash tools/cpu_variants_check.sh                   # the variants below
#   bash tools/cpu_variants_check.sh "generic Prescott" # NUMBA_CPU_NAME OPENBLAS_CORETYPE
#
# A variant must be one this CPU can run (an AVX-512 target on an AVX2 machine dies of an
# illegal instruction); on an Intel AVX-512 machine, "skylake-avx512 SkylakeX" is the natural one.
# Writes tools/results/cpu_variants.md (or $OUT/cpu_variants.md). About 5 minutes a variant
# on 2 cores, most of it compiling.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-.venv/bin/python}
RESULTS=${OUT:-tools/results}
MD=$RESULTS/cpu_variants.md
if [ $# -eq 0 ]; then
    # x86-64 baseline code (SSE2, no FMA) with OpenBLAS's AVX kernels without FMA; and this
    # CPU's own code with OpenBLAS's SSE3 kernels
    set -- "generic Sandybridge" "host Prescott"
fi
model=$(lscpu | sed -n 's/^Model name: *//p')
flags=$(lscpu | sed -n 's/^Flags: *//p' | tr ' ' '\n' | grep -xE 'avx2|fma|avx512f|avx512_vnni|asimd' | tr '\n' ' ')
{
    echo "# The test suite with other CPUs' code paths (tools/cpu_variants_check.sh)"
    echo
    echo "- date: $(date -u +%Y-%m-%d); machine: $model; SIMD flags: ${flags:-none}"
    echo "- command: \`pytest -q -n 2 -m 'not slow and not wheel'\` per variant, each with a Numba cache of its own"
    echo
    echo "| Numba target (NUMBA_CPU_NAME) | OpenBLAS kernels (OPENBLAS_CORETYPE) | result | seconds |"
    echo "|---|---|---|---|"
} > "$MD"
status=0
failures=""
for variant in "$@"; do
    read -r cpu core <<< "$variant"
    cache=$(mktemp -d /tmp/cpu_variant.XXXXXX)
    start=$(date +%s)
    env_args=(NUMBA_CACHE_DIR="$cache" OPENBLAS_CORETYPE="$core")
    [ "$cpu" != host ] && env_args+=(NUMBA_CPU_NAME="$cpu")
    env "${env_args[@]}" "$PY" -m pytest -q -n 2 -m 'not slow and not wheel' \
        -p no:cacheprovider > "$cache/pytest.log" 2>&1 || status=1
    summary=$(tail -1 "$cache/pytest.log")
    echo "| $cpu | $core | $summary | $(( $(date +%s) - start )) |" >> "$MD"
    failed=$(grep -E '^(FAILED|ERROR) ' "$cache/pytest.log")
    [ -n "$failed" ] && failures+="$cpu / $core:"$'\n'"$failed"$'\n'
    rm -rf "$cache"
    echo "$cpu / $core: $summary"
done
if [ -n "$failures" ]; then
    printf '\nFailed tests:\n\n```\n%s```\n' "$failures" >> "$MD"
fi
echo "wrote $MD"
exit $status
