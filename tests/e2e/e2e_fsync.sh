#!/usr/bin/env bash
# e2e_fsync - a failed fsync is fatal and acknowledges nothing (docs/ARCHITECTURE.md §15),
# through the real group run with a test build of fdatasync/fsync that fails
# on demand (bin/libpgfailsync.so, tests/shim/failsync.c):
#   1. 200 webhooks accepted normally;
#   2. ingest's syncs fail: the webhook posted then gets no 202, and ingest
#      exits with 75 (the supervisor's log says so); restarted while the disk
#      is still "broken", it again answers no 202;
#   3. the disk heals: ingest is back, 200 more webhooks are accepted;
#   4. validate's syncs fail under load: it exits without acknowledging, comes
#      back when they heal, and what it had not acknowledged is re-sent;
#   5. every receipt that was answered 202 reached validate, every stage and
#      the audit trail (pg-check), and the trail verifies.
set -u
. "$(dirname "$0")/lib_e2e.sh"

PORT=$(free_port)
CFG=$(write_config fs "$PORT")
D=$WORK/fs
URL=http://127.0.0.1:$PORT
TRIGGER=$WORK/failsync
export LD_PRELOAD=$BIN/libpgfailsync.so PG_FAILSYNC_FILE=$TRIGGER
ok "group starts (with the failing-fsync test build preloaded)" up "$CFG"
unset LD_PRELOAD # the group has it; the test's own tools do not need it
seed_load_payouts "$CFG" 400
load() { load_seeded "$URL" "$@"; } # FIRST COUNT
ok "200 webhooks accepted" load 1 200
restarts_before=$(restarts "$CFG" ingest.0)

# ---- ingest's disk breaks
echo ingest >"$TRIGGER"
body='{"id":"evt_fsync_1","type":"payout.failed","created":'$(date +%s)',"data":{"object":{"id":"po_1","object":"payout","amount":1001,"currency":"usd","status":"failed","failure_code":"account_closed","metadata":{"payout_id":"P-1"}}}}'
t=$(date +%s)
sig=$(printf '%s' "$t.$body" | openssl dgst -sha256 -hmac "$(cat "$WORK/secret")" -r | cut -d' ' -f1)
st=$(curl -s -o "$WORK/answer" -w '%{http_code}' -m 10 -X POST "$URL/webhooks/stripe" -H 'Content-Type: application/json' \
    -H "Stripe-Signature: t=$t,v1=$sig" --data-binary "$body")
ok "a webhook posted while ingest's fsync fails gets no 202 (got '$st')" test "$st" != 202
# the supervisor logs the exit a moment after the connection dropped
for _ in $(seq 1 50); do grep -q 'ingest.0.*status 75' "$D/run/payguard.log" && break; sleep 0.1; done
ok "ingest said why and exited 75" bash -c "grep -q 'inst=ingest.0.*sync failed\|inst=ingest.0.*fdatasync' '$D/run/payguard.log' && grep -q 'ingest.0.*exit.*75\|ingest.0.*status 75\|ingest.0.*code 75' '$D/run/payguard.log'"
for _ in $(seq 1 50); do curl -fs "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
st=$(curl -s -o /dev/null -w '%{http_code}' -m 10 -X POST "$URL/webhooks/stripe" -H 'Content-Type: application/json' \
    -H "Stripe-Signature: t=$t,v1=$sig" --data-binary "$body")
ok "restarted while the disk stays broken, it still answers no 202 (got '$st')" test "$st" != 202

# ---- the disk heals
rm -f "$TRIGGER"
for _ in $(seq 1 100); do curl -fs "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
ok "ingest is back (restarted by the supervisor)" test "$(restarts "$CFG" ingest.0)" -gt "$restarts_before"
ok "200 more webhooks accepted" load 1000 200

# ---- validate's disk breaks under load
restarts_before=$(restarts "$CFG" validate.0)
echo validate >"$TRIGGER"
ok "200 webhooks during validate's failure: all 202 (ingest keeps its own promise)" load 2000 200
sleep 2
rm -f "$TRIGGER"
ok "validate exited and was restarted" test "$(restarts "$CFG" validate.0)" -gt "$restarts_before"
ok "validate said why" grep -q 'inst=validate.0.*sync' "$D/run/payguard.log"
ok "the group drains" quiesce "$CFG" 60
down "$CFG"
"$BIN/pg-check" --data "$D/data" --receipts "$WORK/receipts.txt" --quiet >"$WORK/check.out" 2>&1
ok "every 202 receipt reached validate, every stage and the trail ($(tail -1 "$WORK/check.out"))" grep -q ' 0 failed$' "$WORK/check.out"
ok "all 600 deliveries of pg-load were acknowledged in the end" test "$(wc -l <"$WORK/receipts.txt")" = 600
ok "the trail verifies" "$BIN/payguard" audit verify -c "$CFG"
finish
