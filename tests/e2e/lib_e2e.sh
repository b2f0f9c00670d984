# lib_e2e.sh - shared helpers for the end-to-end tests (sourced, not run).
#
# Each test runs the real processes in a fresh temp directory with its own
# config and port, counts checks, and ends with "N passed, N failed".

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${PG_BIN:-$ROOT/bin} # make e2e-asan points it at bin-asan/
PASSED=0
FAILED=0
# (scripts/bench.sh puts it on the disk it measures: E2E_WORK_PARENT, E2E_WORK_NAME)
WORK=$(mktemp -d "${E2E_WORK_PARENT:-/tmp}/${E2E_WORK_NAME:-pg-e2e}.XXXXXX")

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

# free_port - an unused TCP port on loopback, below the kernel's ephemeral
# range (so no outgoing connection can be holding it by the time we bind),
# never the same one twice in a test (it runs in $(...): the record is a file)
# nor in two tests run side by side (scripts/e2e-run.sh shares $E2E_PORTS)
free_port() {
    local p lo hi rec=${E2E_PORTS:-$WORK/.ports}
    read -r lo hi </proc/sys/net/ipv4/ip_local_port_range
    [ "$lo" -gt 21000 ] || lo=32768
    touch "$rec"
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % (lo - 20000)))
        grep -qx "$p" "$rec" && continue
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
            echo "$p" >>"$rec"
            echo "$p"
            return
        fi
    done
    echo 28080
}

# E2E_SECRET - the Stripe signing secret every e2e group trusts (pg-load signs with it)
E2E_SECRET=whsec_e2e_test_secret
printf '%s\n' "$E2E_SECRET" >"$WORK/secret"

# outside_config SANDBOX_PORT DIR - the ZPL sections that point a group at its own
# sandbox (on its own port), with the e2e webhook secret
outside_config() {
    local sbx=$1 dir=$2
    printf '%s\n' "$E2E_SECRET" >"$dir/stripe.secrets"
    cat <<CFG
outside
    payments = http://127.0.0.1:$sbx/payments
    ledger = http://127.0.0.1:$sbx/ledger
    psp = http://127.0.0.1:$sbx/psp
    jira = http://127.0.0.1:$sbx/jira
    teams = http://127.0.0.1:$sbx/teams/webhook
sandbox
    port = $sbx
    tokens_file = $ROOT/config/sandbox/tokens
validate
    stripe_secrets_file = $dir/stripe.secrets
    standard_secrets_file = $ROOT/config/sandbox/standard.secrets
    token_file = $ROOT/config/sandbox/read.token
CFG
}

# write_config NAME PORT [MAX_INFLIGHT] - a test config: ingest on PORT,
# approve on $APORT and audit on $UPORT when the test set them, every other
# port free (two tests run side by side: scripts/e2e-run.sh), console off
write_config() {
    local dir=$WORK/$1 port=$2 inflight=${3:-10000}
    mkdir -p "$dir"
    local sbx aport=${APORT:-$(free_port)} uport=${UPORT:-$(free_port)}
    sbx=$(free_port)
    {
        cat <<CFG
payguard
    run_dir = $dir/run
    data_dir = $dir/data
    drain_ms = 3000
    restart_max_ms = 500
    delivery
        resend_ms = ${E2E_RESEND_MS:-1000}
        max_inflight = $inflight
ingest
    http_port = $port
    rate_per_s = 1000000
    rate_burst = 1000000
triage
    instances = 2
console
    enabled = no
approve
    http_port = $aport
audit
    http_port = $uport
CFG
        outside_config "$sbx" "$dir"
    } >"$dir/payguard.cfg"
    echo "$dir/payguard.cfg"
}

# cfg_merge CONFIG - add the settings on stdin (ZPL, sections at column 0) to
# CONFIG: a section it has already gets them under its own heading (a
# section given twice is refused by config_load), a new one is appended
cfg_merge() {
    awk 'NR == FNR { if ($0 ~ /^[^ #]/) { sec = $0; if (!(sec in add)) order[++n] = sec; add[sec] = add[sec] } else if (sec != "") add[sec] = add[sec] $0 "\n"; next }
         { print } /^[^ #]/ && ($0 in add) { printf "%s", add[$0]; done[$0] = 1 }
         END { for (i = 1; i <= n; i++) if (!(order[i] in done)) printf "%s\n%s", order[i], add[order[i]] }' \
        - "$1" >"$1.new" && mv "$1.new" "$1"
}

# cfg_set CONFIG SECTION KEY VALUE - SECTION/KEY = VALUE in CONFIG (a section
# at column 0, a key at its first level): replaced where CONFIG sets it (a key
# set twice is refused by config_load, so cfg_merge cannot change one), else
# added at the end of the section, which is added when missing
cfg_set() {
    awk -v s="$2" -v k="$3" -v v="$4" '
        function add() { if (insec && !done) { print "    " k " = " v; done = 1 } }
        /^[^ #]/ { add(); insec = $1 == s; seen = seen || insec }
        insec && !done && /^    [^ #]/ && $1 == k { print "    " k " = " v; done = 1; next }
        { print }
        END { add(); if (!seen) printf "%s\n    %s = %s\n", s, k, v }' "$1" >"$1.new" && mv "$1.new" "$1"
}

# tok NAME - a demo token of config/sandbox (an approver's, read, write)
tok() { cat "$ROOT/config/sandbox/$1.token"; }

# refusals_counted CONFIG ADDRESS INSTANCE - refused requests from ADDRESS
# that INSTANCE (approve.0, audit.0) put on the trail as access_denied: one
# for a record of its own, N for the summary of a window ("refusals":N;
# common/refusals.h); refusals_records: how many records that took
refusal_lines() {
    "$BIN/payguard" audit export -c "$1" 2>/dev/null | grep '"what":"access_denied"' |
        grep -F "\"instance\":\"$3\"" | grep -F "\"client_ip\":\"$2\""
}
refusals_counted() {
    refusal_lines "$@" | awk '{ if (match($0, /"refusals":[0-9]+/)) n += substr($0, RSTART + 11, RLENGTH - 11); else n++ }
                               END { print n + 0 }'
}
refusals_records() { refusal_lines "$@" | wc -l; }

# wait_refusals CONFIG ADDRESS INSTANCE N - until the trail counts N (20 s)
wait_refusals() {
    for _ in $(seq 1 100); do
        [ "$(refusals_counted "$1" "$2" "$3")" -ge "$4" ] && return 0
        sleep 0.2
    done
    return 1
}

# http_codes N CURL_ARGS... - the status of N requests, counted: "401:20 429:80 "
http_codes() {
    local n=$1
    shift
    for _ in $(seq 1 "$n"); do curl -s -o /dev/null -w '%{http_code}\n' "$@"; done |
        sort | uniq -c | awk '{ printf "%s:%s ", $2, $1 }'
}

# use_execute_hooks FAULT_FILE - run the group with execute's test build
# (bin/hooks/execute: SIGKILL before or after a named step when FAULT_FILE
# says so), from a bin folder of its own beside copies of the other
# programs; sets BIN to it
use_execute_hooks() {
    mkdir -p "$WORK/bin"
    cp "$BIN"/* "$WORK/bin/" 2>/dev/null
    cp "$BIN/hooks/execute" "$WORK/bin/execute"
    BIN=$WORK/bin
    export PG_EXECUTE_FAULT_FILE=$1
}

# sandbox_url CONFIG - the base URL of a group's sandbox
sandbox_url() { echo "http://127.0.0.1:$(awk '$1 == "port" {print $3}' "$1" | tail -1)"; }

# seed_load_payouts CONFIG N - the payouts pg-load's events name (P-0 ..
# P-<N-1>, paid, 1000+i USD, with their payout_paid ledger entries)
seed_load_payouts() {
    local url batch=2000 i=0
    url=$(sandbox_url "$1")
    for _ in $(seq 1 50); do curl -fs "$url/_sandbox/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    while [ $i -lt "$2" ]; do
        local p="" e="" end=$((i + batch))
        [ $end -gt "$2" ] && end=$2
        for ((k = i; k < end; k++)); do
            p+="{\"id\":\"P-$k\",\"status\":\"paid\",\"amount\":$((1000 + k)),\"currency\":\"USD\",\"beneficiary_id\":\"B-$k\"},"
            e+="{\"type\":\"payout_paid\",\"ref\":\"P-$k\",\"amount\":$((1000 + k)),\"currency\":\"USD\",\"case_id\":\"seed\"},"
        done
        # through stdin: a batch is too long for an argument
        printf '{"payouts":[%s],"entries":[%s]}' "${p%,}" "${e%,}" |
            curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary @- "$url/_sandbox/seed" ||
            return 1
        i=$end
    done
}

# seed_files CONFIG DIR - the sandbox seeded from DIR/seed.payments,
# seed.psp_refunds and seed.entries (one JSON object a line), 500 a request
seed_files() {
    local sbx coll f
    sbx=$(sandbox_url "$1")
    for coll in payments psp_refunds entries; do
        rm -f "$2/part."*
        split -l 500 "$2/seed.$coll" "$2/part."
        for f in "$2/part."*; do
            { printf '{"%s":[' "$coll"; paste -sd, "$f"; printf ']}'; } |
                curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary @- "$sbx/_sandbox/seed" ||
                return 1
        done
    done
}

# load_seeded URL FIRST COUNT - pg-load COUNT signed webhooks for the seeded
# payouts P-FIRST.. at 8 connections; receipts appended to $WORK/receipts.txt
load_seeded() {
    "$BIN/pg-load" --url "$1/webhooks/stripe" --secret-file "$WORK/secret" --count "$3" --seed "$2" \
        --concurrency 8 --out "$WORK/receipts.txt" --duration-max-s 120 >>"$WORK/load.out" 2>&1
}

# up CONFIG - start the group detached, wait until ingest answers and, when
# the group runs its sandbox, the sandbox too (a test that seeds it at once
# must not race its start: sanitizer builds start slower)
up() {
    "$BIN/payguard" up -c "$1" -d || return 1
    wait_ready "$1"
}

# wait_ready CONFIG - until every HTTP port of a group started some other
# way answers (up, or systemd's units: e2e_deb)
wait_ready() {
    # every HTTP port the config names (ingest's, approve's, audit's, the
    # console's, the sandbox's), except in a section that says enabled = no:
    # each process serves only once its state is recovered, so a port that
    # answers is a stage that is ready
    local ports
    ports=$(awk '/^[^ #]/ {sec = $1}
                 sec != "" && ($1 == "http_port" || (sec == "sandbox" && $1 == "port")) {p[sec] = $3}
                 sec != "" && $1 == "enabled" && $3 == "no" {off[sec] = 1}
                 END {for (s in p) if (!off[s]) print p[s] (s == "sandbox" ? "/_sandbox/healthz" : "/healthz")}' "$1")
    for _ in $(seq 1 300); do
        local p all=1
        for p in $ports; do
            curl -fs "http://127.0.0.1:$p" >/dev/null 2>&1 || { all=0; break; }
        done
        [ "$all" = 1 ] && return 0
        sleep 0.1
    done
    echo "group did not come up (waited for: $ports)" >&2
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

# wait_stat CONFIG INSTANCE KEY MIN [SECONDS] - until the instance's status
# file says KEY >= MIN (e.g. "in": events it has taken since it started)
wait_stat() {
    local f v
    f=$(dirname "$1")/run/$2.stat
    for _ in $(seq 1 $((${5:-60} * 5))); do
        v=$(awk -F= -v k="$3" '$1 == k {print $2}' "$f" 2>/dev/null)
        [ -n "$v" ] && [ "$v" -ge "$4" ] && return 0
        sleep 0.2
    done
    return 1
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
