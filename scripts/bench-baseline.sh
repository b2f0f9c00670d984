#!/usr/bin/env bash
# bench-baseline.sh [COMMIT] - payguard's CPU per case at 0 ms of outside
# latency, this build against an older one (default de876f2, the last with
# blocking outside calls), measured alternately in the same hour.
#
# Why: on a shared machine one run's CPU per case moves by 20-40% with the
# neighbours (bench/results-latency.md), so a figure measured on another
# day is no baseline. This builds COMMIT's stages in a git worktree, then
# runs section i of scripts/bench.sh at 0 ms (BENCH_ONLY=latency,
# BENCH_LAT_DELAYS=0: three runs of 3,000 cases each) PAIRS times for each
# build, one after the other (baseline, current, baseline, current, ...),
# with the older build's payguard, stages and console swapped into bin/
# for its turns (the sandbox and pg-load stay the current ones: the same
# outside systems and load for both). bin/ is put back on exit, whatever
# happens. Writes bench/results-baseline.md: every run's figure, each
# build's median and mean, and whether this build's median is above the
# baseline's.
#
#   PAIRS=3 bash scripts/bench-baseline.sh de876f2
set -u
cd "$(dirname "$0")/.."
base=${1:-de876f2}
pairs=${PAIRS:-3}
case $pairs in '' | *[!0-9]* | 0) echo "bench-baseline: PAIRS must be a positive integer, not '$pairs'" >&2; exit 2 ;; esac
git rev-parse --verify -q "$base^{commit}" >/dev/null || { echo "bench-baseline: no commit '$base'" >&2; exit 2; }
head=$(git rev-parse --short HEAD)
work=$(mktemp -d /tmp/pg-baseline.XXXXXX)
swap="payguard ingest validate triage approve execute audit console"
mkdir -p "$work/current"
cp -a bin/. "$work/current/" || exit 1
restore() {
    cp -a "$work/current/." bin/
    git worktree remove --force "$work/base" >/dev/null 2>&1
    rm -rf "$work"
}
trap restore EXIT
trap 'exit 130' INT TERM

echo "bench-baseline: building $base in $work/base"
git worktree add -q "$work/base" "$base" || exit 1
make -C "$work/base" -j"$(getconf _NPROCESSORS_ONLN)" all >"$work/build.log" 2>&1 || {
    tail -20 "$work/build.log"
    exit 1
}

# run BUILD N - section i at 0 ms with BUILD's stages; prints its three figures
run() {
    local b
    for b in $swap; do
        if [ "$1" = base ]; then cp "$work/base/bin/$b" "bin/$b"; else cp "$work/current/$b" "bin/$b"; fi
    done
    BENCH_ONLY=latency BENCH_LAT_DELAYS=0 BENCH_OUT="$work/out_$1_$2" bash scripts/bench.sh >"$work/log_$1_$2" 2>&1 ||
        { tail -20 "$work/log_$1_$2" >&2; return 1; }
    # the line bench.sh says: "payguard CPU per case at 0 ms: A B C ms (median M)"
    sed -n 's/.*payguard CPU per case at 0 ms: \([0-9. ]*\) ms (median.*/\1/p' "$work/log_$1_$2" | tail -1
}

: >"$work/base.runs"
: >"$work/current.runs"
for i in $(seq 1 "$pairs"); do
    for b in base current; do
        figs=$(run "$b" "$i") || exit 1
        [ "$(wc -w <<<"$figs")" = 3 ] || { echo "bench-baseline: no figures in $work/log_${b}_$i" >&2; exit 1; }
        echo "bench-baseline: pair $i, $b: $figs ms"
        echo "$i $figs" >>"$work/$b.runs"
    done
done

# stats FILE - "median mean n" of every figure in FILE's runs
stats() {
    awk '{for (i = 2; i <= NF; i++) print $i}' "$1" | sort -g |
        awk '{v[NR] = $1; s += $1} END {m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f %.3f %d\n", m, s / NR, NR}'
}
read -r bmed bmean bn <<<"$(stats "$work/base.runs")"
read -r cmed cmean cn <<<"$(stats "$work/current.runs")"
verdict=$(awk -v c="$cmed" -v b="$bmed" 'BEGIN {if (c <= b) printf "met: %.0f%% of the baseline'"'"'s", 100 * c / b; else printf "missed: %.0f%% of the baseline'"'"'s", 100 * c / b}')
{
    echo "# payguard benchmarks: CPU per case against a baseline build"
    echo
    echo "\`bash scripts/bench-baseline.sh $base\` on $(date -u +%Y-%m-%dT%H:%M:%SZ): commit $head against $base,"
    echo "alternately ($pairs pairs, the baseline first in each), on this machine ($(getconf _NPROCESSORS_ONLN) cores)."
    echo "Each turn is section i of scripts/bench.sh at 0 ms of outside latency (three runs of 3,000 fresh"
    echo "auto-approved refund cases, 64 connections; see results-latency.md for what is measured): payguard's"
    echo "own CPU per case, the stage processes only, schedstat. The sandbox and pg-load are the current"
    echo "build's in both turns."
    echo
    echo "| pair | $base (ms per case) | $head (ms per case) |"
    echo "|---|---|---|"
    join "$work/base.runs" "$work/current.runs" 2>/dev/null |
        awk '{printf "| %s | %s, %s, %s | %s, %s, %s |\n", $1, $2, $3, $4, $5, $6, $7}'
    echo
    echo "| build | median | mean | runs |"
    echo "|---|---|---|---|"
    echo "| $base (baseline) | $bmed | $bmean | $bn |"
    echo "| $head | $cmed | $cmean | $cn |"
    echo
    echo "| target | measured | verdict |"
    echo "|---|---|---|"
    echo "| payguard CPU per case at 0 ms not above the baseline's, measured alternately | $cmed vs $bmed ms (medians) | $verdict |"
} >bench/results-baseline.md
echo "bench-baseline: $head median $cmed ms, $base median $bmed ms: $verdict; bench/results-baseline.md"
