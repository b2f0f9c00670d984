# e2e_lib.sh - shared helpers for the end-to-end tests (sourced, not run).
#
# Each test runs the real processes in a fresh temp directory with its own
# config and port, counts checks, and ends with "N passed, N failed".

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/bin
PASSED=0
FAILED=0
WORK=$(mktemp -d /tmp/pg-e2e.XXXXXX)

# ok DESCRIPTION COMMAND... - run a check, count and print it
ok() {
    local desc=$1
    shift
    if "$@"; then
        PASSED=$((PASSED + 1))
        echo "ok - $desc"
    else
        FAILED=$((FAILED + 1))
        echo "not ok - $desc"
    fi
}

# free_port - an unused TCP port on loopback
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 20000))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    echo 28080
}

# write_config NAME PORT [extra ZPL lines for payguard/delivery] - a test config
write_config() {
    local dir=$WORK/$1 port=$2 inflight=${3:-10000}
    mkdir -p "$dir"
    cat >"$dir/payguard.cfg" <<CFG
payguard
    run_dir = $dir/run
    data_dir = $dir/data
    drain_ms = 3000
    restart_max_ms = 500
    delivery
        resend_ms = 1000
        max_inflight = $inflight
ingest
    http_port = $port
triage
    instances = 2
CFG
    echo "$dir/payguard.cfg"
}

# up CONFIG - start the group detached, wait until ingest answers
up() {
    "$BIN/payguard" up -c "$1" -d || return 1
    local port
    port=$(awk '/http_port/ {print $3}' "$1")
    for _ in $(seq 1 100); do
        curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "group did not come up" >&2
    return 1
}

# down CONFIG - stop the group in order
down() { "$BIN/payguard" down -c "$1" >/dev/null; }

# inst_pid CONFIG INSTANCE - pid of a running instance, from master.state
inst_pid() {
    local run
    run=$(dirname "$1")/run
    awk -v i="$2" '$1 == i {print $2}' "$run/master.state"
}

# restarts CONFIG INSTANCE - how often the supervisor restarted it
restarts() {
    local run
    run=$(dirname "$1")/run
    awk -v i="$2" '$1 == i {print $4}' "$run/master.state"
}

# quiesce CONFIG [SECONDS] - wait until no instance has unacked events
quiesce() {
    local run t=${2:-60}
    run=$(dirname "$1")/run
    for _ in $(seq 1 $((t * 5))); do
        local busy
        busy=$(cat "$run"/*.stat 2>/dev/null | awk -F= '/^unacked_/ {s += $2} END {print s + 0}')
        if [ "$busy" = 0 ]; then
            sleep 1.2 # one more status period: the counters are 1 s old
            busy=$(cat "$run"/*.stat 2>/dev/null | awk -F= '/^unacked_/ {s += $2} END {print s + 0}')
            [ "$busy" = 0 ] && return 0
        fi
        sleep 0.2
    done
    return 1
}

# finish - stop anything left, print the summary, exit with the verdict
finish() {
    for cfg in "$WORK"/*/payguard.cfg; do
        [ -f "$cfg" ] && "$BIN/payguard" down -c "$cfg" >/dev/null 2>&1
    done
    if [ "$FAILED" -eq 0 ]; then
        rm -rf "$WORK"
    else
        echo "# kept for inspection: $WORK"
    fi
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}
