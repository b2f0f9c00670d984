#!/usr/bin/env bash
# e2e_hosts - one group on two hosts (two masters on this machine, each with
# its own run and data directories), every link tcp:// with CURVE:
#   - host a runs ingest, validate, triage, approve, audit and the sandbox;
#     host b runs execute's 2 instances (`payguard up --host NAME`);
#   - the config refuses hosts without CURVE, and ipc:// links across hosts;
#   - 40 auto-approved refunds cross from a to b and back (audit): every case
#     executed, one ledger POST each;
#   - host b stopped: 20 more refunds wait on host a (back-pressure, nothing
#     lost); b started again: all of them complete, once;
#   - an event from a key the group does not know is never read: execute
#     records nothing of it, and the refused connection is on the trail.
set -u
. "$(dirname "$0")/lib_e2e.sh"

N=40
# ports X<k><n>: link k, instance n (20000..30109); the block X00..(X+1)09 is
# put in free_port's record first, so no port picked after it (the sandbox's,
# ingest's) or by a test beside this one can be one of the links' (it was once)
rec=${E2E_PORTS:-$WORK/.ports}
touch "$rec"
for _ in $(seq 1 50); do
    X=$((200 + RANDOM % 100))
    grep -qxE "${X}[0-9][0-9]|$((X + 1))0[0-9]" "$rec" || break
done
seq "${X}00" "$((X + 1))09" >>"$rec"
PORT=$(free_port)
UPORT=$(free_port)
APORT=$(free_port)
CFG=$(write_config hs "$PORT")
D=$WORK/hs
mkdir -p "$D/a" "$D/b"
cfg_merge "$CFG" <<CFG
payguard
    curve = yes
    keys_dir = $D/keys
    seal_key_file = $D/seal.key
hosts
    a
        address = 127.0.0.1
        run = "ingest validate triage approve audit sandbox"
        run_dir = $D/a/run
        data_dir = $D/a/data
    b
        address = 127.0.0.1
        run = execute.*
        run_dir = $D/b/run
        data_dir = $D/b/data
ingest
    ack_endpoint = tcp://{host}:${X}0{n}
validate
    endpoint = tcp://{host}:${X}1{n}
    ack_endpoint = tcp://{host}:${X}2{n}
triage
    endpoint = tcp://{host}:${X}3{n}
    ack_endpoint = tcp://{host}:${X}4{n}
approve
    endpoint = tcp://{host}:${X}5{n}
    ack_endpoint = tcp://{host}:${X}6{n}
execute
    instances = 2
    endpoint = tcp://{host}:${X}7{n}
    ack_endpoint = tcp://{host}:${X}8{n}
    token_file = $ROOT/config/sandbox/write.token
audit
    endpoint = tcp://{host}:${X}9{n}
    ack_endpoint = tcp://{host}:$((X + 1))0{n}
CFG
SBX=$(sandbox_url "$CFG")
AUD=http://127.0.0.1:$UPORT

# ---- the config refuses what cannot be safe across hosts
sed 's/^    curve = yes$/    curve = no/' "$CFG" >"$D/nocurve.cfg"
ok "hosts without CURVE are refused" bash -c "'$BIN/payguard' up -c '$D/nocurve.cfg' --host a 2>&1 | grep -q 'must be authenticated'"
sed "s|^    endpoint = tcp://{host}:${X}7{n}|    endpoint = ipc://{run}/execute.{n}.in|" "$CFG" >"$D/ipc.cfg"
ok "an ipc:// link is refused across hosts" bash -c "'$BIN/payguard' up -c '$D/ipc.cfg' --host a 2>&1 | grep -q 'ipc:// does not cross hosts'"
ok "up without --host says which is missing" bash -c "'$BIN/payguard' up -c '$CFG' 2>&1 | grep -q -- '--host'"
ok "payguard keygen makes a key pair per instance" "$BIN/payguard" keygen -c "$CFG"
ok "...the secret halves private" test "$(stat -c %a "$D/keys/execute.1.cert_secret")" = 600

# ---- two hosts
upq() { # HOST: start that host's share, wait for its ports
    "$BIN/payguard" up -c "$CFG" --host "$1" -d || return 1
    [ "$1" = b ] && return 0
    for _ in $(seq 1 300); do
        curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && curl -fs "$SBX/_sandbox/healthz" >/dev/null 2>&1 &&
            return 0
        sleep 0.1
    done
    return 1
}
ok "host b starts (execute.0, execute.1)" upq b
ok "host a starts (the rest)" upq a
ok "each host runs its own share" bash -c "grep -q '^execute.1 ' '$D/b/run/master.state' && ! grep -q '^execute' '$D/a/run/master.state' && grep -q '^validate.0 ' '$D/a/run/master.state'"

refunds() { # FROM TO: seed and post auto-approved refunds FROM..TO
    local i now p="" y="" e="" plan=$WORK/plan.$1
    now=$(date +%s)
    for i in $(seq "$1" "$2"); do
        p+="{\"id\":\"pay_h$i\",\"amount\":50000,\"currency\":\"USD\",\"customer_id\":\"cus_h\",\"customer_risk\":\"low\",\"flagged\":false,\"refunded_amount\":0},"
        y+="{\"id\":\"rf_h$i\",\"amount\":$((500 + i)),\"currency\":\"usd\",\"status\":\"succeeded\",\"payment_intent\":\"pi_h\",\"metadata\":{\"payment_id\":\"pay_h$i\"}},"
        e+="{\"type\":\"refund_initiated\",\"ref\":\"rf_h$i\",\"amount\":$((500 + i)),\"currency\":\"USD\",\"case_id\":\"seed\"},"
        printf 'good {"id":"evt_h%d","type":"refund.updated","created":%d,"data":{"object":{"id":"rf_h%d","object":"refund","amount":%d,"currency":"usd","status":"succeeded","payment_intent":"pi_h","metadata":{"payment_id":"pay_h%d"}}}}\n' \
            "$i" "$((now - 60))" "$i" $((500 + i)) "$i"
    done >"$plan"
    printf '{"payments":[%s],"psp_refunds":[%s],"entries":[%s]}' "${p%,}" "${y%,}" "${e%,}" |
        curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary @- "$SBX/_sandbox/seed" || return 1
    "$BIN/pg-load" --url "http://127.0.0.1:$PORT/webhooks/stripe" --secret-file "$WORK/secret" --plan "$plan" \
        --concurrency 8 >"$WORK/load.$1" 2>&1
}
executed() { curl -s "$AUD/metrics" | awk '$1 == "payguard_cases{instance=\"audit.0\",state=\"executed\"}" {print $2 + 0}'; }
wait_executed() { for _ in $(seq 1 300); do [ "$(executed)" = "$1" ] && return 0; sleep 0.2; done; return 1; }
posts() { curl -s "$SBX/_sandbox/calls?system=ledger&limit=100000" | grep -o '"method":"POST"' | wc -l; }

ok "$N refunds posted on host a" refunds 1 $N
wait_executed $N
ok "every case executed on host b, over tcp:// and CURVE ($(executed) of $N)" test "$(executed)" = $N
ok "one ledger POST per case ($(posts))" test "$(posts)" = $N

"$BIN/payguard" down -c "$CFG" --host b >/dev/null
ok "with host b stopped, 20 more refunds are still taken (202)" refunds 41 60
sleep 2
ok "...and wait: none executed meanwhile ($(executed))" test "$(executed)" = $N
ok "...held in approve's window for execute" bash -c "awk -F= '\$1 == \"unacked_next\" {s += \$2} END {exit !(s >= 1)}' '$D/a/run/approve.0.stat'"
ok "host b starts again" upq b
wait_executed 60
ok "every waiting case completes ($(executed) of 60)" test "$(executed)" = 60
ok "still one ledger POST per case ($(posts))" test "$(posts)" = 60

# ---- a key the group does not know
"$BIN/pg-push" -c "$CFG" --into execute.0 --type approved --case refund-rf_h1 --body '{"case_id":"refund-rf_h1","decided_by":"x"}' >/dev/null
sleep 2.5
dump() { "$BIN/payguard" journal dump -c "$CFG" --host b execute.0 2>/dev/null; }
ok "an event from an unknown CURVE key is never read (execute has no record of it)" \
    test "$(dump | grep -c '"claimed_case":"refund-rf_h1"')" = 0
ok "...and the refused connection is on the trail (access_denied: $(dump | grep -o '"reason":"[^"]*CURVE[^"]*"' | head -1))" \
    bash -c "'$BIN/payguard' audit export -c '$CFG' --host a | grep '\"type\":\"access_denied\"' | grep -q 'not one of the group'"
# the control: the same push with a key the group knows is read (and refused by execute: approve did not seal it)
"$BIN/pg-push" -c "$CFG" --into execute.0 --type approved --case refund-rf_h1 --cert "$D/keys/payguard.cert" \
    --body '{"case_id":"refund-rf_h1","decided_by":"x"}' >/dev/null
sleep 2
ok "...while with a known key it is read (and refused as unsealed)" \
    bash -c "'$BIN/payguard' journal dump -c '$CFG' --host b execute.0 | grep -q '\"code\":\"unsealed\"'"
"$BIN/payguard" down -c "$CFG" --host a >/dev/null
"$BIN/payguard" down -c "$CFG" --host b >/dev/null
ok "payguard audit verify passes on host a" "$BIN/payguard" audit verify -c "$CFG" --host a
finish
