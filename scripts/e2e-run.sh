#!/usr/bin/env bash
# e2e-run.sh LABEL - run every end-to-end script (tests/e2e/e2e_*.sh),
# E2E_JOBS of them at a time (default 2), and close with the total.
#
# Each script starts its own group in its own temp directory, on ports it
# picked free (tests/e2e/lib_e2e.sh), so two run side by side without
# sharing anything but the CPUs (and the record of ports picked, so that
# two never pick the same one); most of a script's time is spent waiting
# for processes to start, stop and restart, which is why two lanes on two
# cores take about half the time of one. A script's output is kept in
# build/e2e-logs/LABEL/NAME.log and printed whole when it ends, with how
# long it took, so the log reads as if they had run one after the other.
# The last line is "LABEL: N passed, N failed"; the exit status is non-zero
# if any script failed or did not end with its own "N passed, N failed".
# PG_BIN and the sanitizer options come from the environment (Makefile);
# the scripts named in E2E_PLAIN (e.g. "backbone chaos") run against bin/
# instead, without the pass's size overrides (make test's mixed pass).
set -u
cd "$(dirname "$0")/.."
label=${1:-e2e}
jobs=${E2E_JOBS:-2}
plain=${E2E_PLAIN:-}
for n in $plain; do
    [ -f "tests/e2e/e2e_$n.sh" ] || { echo "e2e-run: E2E_PLAIN names no script tests/e2e/e2e_$n.sh" >&2; exit 2; }
done
case $jobs in '' | *[!0-9]* | 0) echo "e2e-run: E2E_JOBS must be a positive integer, not '$jobs'" >&2; exit 2 ;; esac
logs=build/e2e-logs/$label
rm -rf "$logs" && mkdir -p "$logs" || exit 2
# the ports every script has picked, so that two never pick the same one
export E2E_PORTS=$PWD/$logs/ports

pass=0 fail=0 bad=""
declare -A script_of start_of build_of

# report PID RC - print a finished script's log and add up its checks
report() {
    local t=${script_of[$1]} rc=$2 log line p f
    log=$logs/$(basename "$t" .sh).log
    echo "== $t (${build_of[$1]})"
    cat "$log"
    echo "# $t: $(($(date +%s) - ${start_of[$1]})) s"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
    p=$(echo "$line" | cut -d' ' -f1)
    f=$(echo "$line" | cut -d' ' -f3)
    pass=$((pass + ${p:-0}))
    fail=$((fail + ${f:-0}))
    if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
        bad="$bad $t"
        [ -z "$line" ] && fail=$((fail + 1))
    fi
}

# the longest scripts first (as measured in CI), so that no long one starts
# last while the other lane sits idle; the rest in name order
order=()
for n in bounded execute validate triage backbone console approve pipeline catchup; do
    [ -f "tests/e2e/e2e_$n.sh" ] && order+=("tests/e2e/e2e_$n.sh")
done
for t in tests/e2e/e2e_*.sh; do
    [[ " ${order[*]} " == *" $t "* ]] || order+=("$t")
done

# reap - wait for the next script to end and report it
running=0
reap() {
    local done_pid
    wait -n -p done_pid
    report "$done_pid" $?
    running=$((running - 1))
}

for t in "${order[@]}"; do
    [ "$running" -lt "$jobs" ] || reap
    n=$(basename "$t" .sh)
    build=$(basename "${PG_BIN:-bin}")
    if [[ " $plain " == *" ${n#e2e_} "* ]]; then
        # named in E2E_PLAIN: the plain build at the script's own sizes
        build=bin
        env -u E2E_WEBHOOKS -u CHAOS_N -u E2E_TRANSPORT_WEBHOOKS -u E2E_RESEND_MS -u E2E_OUTSIDE_N \
            PG_BIN="$PWD/bin" bash "$t" >"$logs/$n.log" 2>&1 &
    else
        bash "$t" >"$logs/$n.log" 2>&1 &
    fi
    script_of[$!]=$t
    build_of[$!]=$build
    start_of[$!]=$(date +%s)
    running=$((running + 1))
done
while [ "$running" -gt 0 ]; do reap; done
[ -z "$bad" ] || echo "failed:$bad"
echo "$label: $pass passed, $fail failed"
[ -z "$bad" ]
