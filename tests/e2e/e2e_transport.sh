#!/usr/bin/env bash
# e2e_transport - the same pipeline over tcp:// (as across hosts), stopped
# with `payguard down` in the middle of a load and started again: every
# 202-acknowledged webhook still reaches every stage and audit, once. The
# group logs in JSON (payguard/log_format = json): every line of its log
# is one JSON object.
set -u
. "$(dirname "$0")/lib_e2e.sh"
N=${E2E_TRANSPORT_WEBHOOKS:-3000}

# ports: X<k><n> for link k and instance n, e.g. 34531 = triage.1's input
X=$((200 + RANDOM % 100)) # ports 20000..30109: below the ephemeral range
Y=$((X + 1))
PORT=$(free_port)
mkdir -p "$WORK/tcp"
CFG=$WORK/tcp/payguard.cfg
SBX=$(free_port)
{
cat <<CFG
payguard
    run_dir = $WORK/tcp/run
    data_dir = $WORK/tcp/data
    log_format = json
    drain_ms = 3000
    restart_max_ms = 500
    delivery
        resend_ms = 1000
ingest
    http_port = $PORT
    rate_per_s = 1000000
    rate_burst = 1000000
    ack_endpoint = tcp://127.0.0.1:${X}0{n}
triage
    instances = 2
    endpoint = tcp://127.0.0.1:${X}3{n}
    ack_endpoint = tcp://127.0.0.1:${X}4{n}
console
    enabled = no
approve
    http_port = $(free_port)
    endpoint = tcp://127.0.0.1:${X}5{n}
    ack_endpoint = tcp://127.0.0.1:${X}6{n}
execute
    endpoint = tcp://127.0.0.1:${X}7{n}
    ack_endpoint = tcp://127.0.0.1:${X}8{n}
audit
    http_port = $(free_port)
    endpoint = tcp://127.0.0.1:${X}9{n}
    ack_endpoint = tcp://127.0.0.1:${Y}0{n}
CFG
# validate's links, and where it finds the outside systems
outside_config "$SBX" "$WORK/tcp" | sed "/^validate/a\\    endpoint = tcp://127.0.0.1:${X}1{n}\\n    ack_endpoint = tcp://127.0.0.1:${X}2{n}"
} >"$CFG"

ok "group starts with every link on tcp://" up "$CFG"
ok "no ipc socket files were created" bash -c "! ls '$WORK/tcp/run' | grep -q '\\.in\$'"
ok "the sandbox knows the payouts the load will report" seed_load_payouts "$CFG" "$N"
"$BIN/pg-load" --url "http://127.0.0.1:$PORT/webhooks/stripe" --secret-file "$WORK/secret" --count "$N" \
    --concurrency 16 --dup-every 10 --out "$WORK/receipts.txt" --duration-max-s 120 >"$WORK/load.out" 2>&1 &
LOAD=$!
for _ in $(seq 1 200); do
    [ "$(wc -l 2>/dev/null <"$WORK/receipts.txt" || echo 0)" -ge $((N / 3)) ] && break
    sleep 0.05
done
at=$(wc -l <"$WORK/receipts.txt")
down "$CFG"
ok "payguard down in the middle of the load (after $at receipts) stops the group" test $? = 0
ok "it was really mid-load" kill -0 $LOAD
sleep 1
ok "the group starts again over its journals" up "$CFG"
wait $LOAD
ok "the load generator got a 202 for every webhook, retrying while the group was down" test $? = 0
sed "s/^/# /" "$WORK/load.out"
ok "the pipeline drains" quiesce "$CFG" 60
down "$CFG"
"$BIN/pg-check" --data "$WORK/tcp/data" --receipts "$WORK/receipts.txt" >"$WORK/check.out" 2>&1
ok "every receipt reached every stage and audit, with no id handled twice" test $? = 0
sed "s/^/# /" "$WORK/check.out"

# json_log LOG - every line is one JSON object with the strings ts, level,
# inst and msg (jq stops at the first line that is not JSON); prints the
# instances that logged
json_log() {
    local lines insts
    lines=$(wc -l <"$1")
    insts=$(jq -R -r 'fromjson | select(type == "object" and ([.ts, .level, .inst, .msg] | map(type) | unique)
        == ["string"]) | .inst' "$1") || return 1
    [ "$lines" -gt 0 ] && [ "$(printf '%s\n' "$insts" | wc -l)" = "$lines" ] || return 1
    printf '%s\n' "$insts" | sort -u | tr '\n' ' '
}
# logged_all INSTS - every process of this group is in INSTS
logged_all() {
    local i
    for i in master sandbox.0 ingest.0 validate.0 triage.0 triage.1 approve.0 execute.0 audit.0; do
        [[ " $1" == *" $i "* ]] || return 1
    done
}
LOG=$WORK/tcp/run/payguard.log
insts=$(json_log "$LOG")
ok "log_format = json: each of the log's $(wc -l <"$LOG") lines is one JSON object (jq)" test -n "$insts"
ok "master, sandbox and every stage logged in JSON ($insts)" logged_all "$insts"
grep -v '^{' "$LOG" | head -5 | sed 's/^/# not JSON: /'

finish
