#!/usr/bin/env bash
# e2e_disk - a nearly full disk stops input, loses nothing, and everything
# resumes by itself once space is back (common/stage.h, disk space), through
# the real group run with a test build of statvfs that reports the disk full
# on demand (bin/libpgfailsync.so, PG_LOWDISK_FILE):
#   1. 100 webhooks accepted normally;
#   2. ingest's disk "fills": a webhook gets 503 with Retry-After and says
#      why, `payguard status` says why ingest waits, its gauge says 1, and
#      ingest does not exit (no restart: waiting is not a crash);
#   3. space is back: ingest takes webhooks again (no restart either);
#   4. validate's disk fills under load: ingest still answers 202 (it
#      records the receipts, validate holds off), validate takes nothing
#      while it waits; then space is back and it catches up;
#   5. retention: ingest removes its segments that validate and audit
#      acknowledged once older than ingest/retention_s (2 s here), records
#      that it did, and after a kill -9 starts on what is left;
#   6. every receipt answered 202 reached validate, every stage and the
#      audit trail (pg-check; those of removed segments through the rest),
#      and the trail verifies.
set -u
. "$(dirname "$0")/lib_e2e.sh"
. "$(dirname "$0")/lib_corpus.sh"

PORT=$(free_port)
CFG=$(write_config dk "$PORT")
D=$WORK/dk
cfg_merge "$CFG" <<CFG
payguard
    journal
        segment_bytes = 65536
ingest
    retention_s = 2
CFG
URL=http://127.0.0.1:$PORT
LOW=$WORK/lowdisk
export LD_PRELOAD=$BIN/libpgfailsync.so PG_LOWDISK_FILE=$LOW
ok "group starts (with the full-disk test build of statvfs preloaded)" up "$CFG"
unset LD_PRELOAD # the group has it; the test's own tools do not need it
seed_load_payouts "$CFG" 400
load() { load_seeded "$URL" "$@"; } # FIRST COUNT
stat_of() { awk -F= -v k="$2" '$1 == k {print $2}' "$D/run/$1.stat" 2>/dev/null; }
ok "100 webhooks accepted" load 1 100
ingest_restarts=$(restarts "$CFG" ingest.0) validate_restarts=$(restarts "$CFG" validate.0)

# ---- ingest's disk fills
echo ingest >"$LOW"
for _ in $(seq 1 30); do [ -n "$(stat_of ingest.0 waiting)" ] && break; sleep 0.2; done
ok "ingest notices within seconds ($(stat_of ingest.0 waiting))" test -n "$(stat_of ingest.0 waiting)"
body=$(stripe_payout_body evt_disk_1 P-1 1001 usd)
t=$(date +%s)
st=$(curl -s -o "$WORK/answer" -D "$WORK/headers" -w '%{http_code}' -m 10 -X POST "$URL/webhooks/stripe" \
    -H 'Content-Type: application/json' -H "Stripe-Signature: t=$t,v1=$(stripe_sig "$E2E_SECRET" "$t" "$body")" \
    --data-binary "$body")
ok "a webhook gets 503 while the disk is full (got $st)" test "$st" = 503
ok "...with Retry-After" grep -qi '^Retry-After: [0-9]' "$WORK/headers"
ok "...saying why ($(cat "$WORK/answer"))" grep -q 'disk nearly full' "$WORK/answer"
"$BIN/payguard" status -c "$CFG" >"$WORK/status" 2>&1
ok "payguard status says why ingest waits" grep -q 'waiting: disk nearly full' "$WORK/status"
ok "the gauge says so" grep -q '^payguard_disk_low{instance="ingest.0"} 1$' "$D/run/ingest.0.prom"
ok "...and that ingest is not ready" grep -q "not ready: its journal's disk is nearly full" "$WORK/status"
st=$(curl -s -o "$WORK/readyz" -w '%{http_code}' "$URL/readyz")
ok "GET /readyz: 503, saying why ($(cat "$WORK/readyz"))" \
    test "$st/$(jq -r '.ready' "$WORK/readyz")" = 503/false -a "$(grep -c "disk is nearly full" "$WORK/readyz")" = 1
ok "...while /healthz, liveness, still answers 200" test "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")" = 200
ok "ingest waits, it does not exit" test "$(restarts "$CFG" ingest.0)" = "$ingest_restarts"

# ---- space is back
rm -f "$LOW"
for _ in $(seq 1 30); do [ -z "$(stat_of ingest.0 waiting)" ] && break; sleep 0.2; done
ok "ingest takes input again by itself" test -z "$(stat_of ingest.0 waiting)"
ok "GET /readyz: 200 again" test "$(curl -s -o /dev/null -w '%{http_code}' "$URL/readyz")" = 200
ok "100 more webhooks accepted" load 1000 100
ok "...and ingest was never restarted" test "$(restarts "$CFG" ingest.0)" = "$ingest_restarts"

# ---- validate's disk fills under load
echo validate >"$LOW"
for _ in $(seq 1 30); do [ -n "$(stat_of validate.0 waiting)" ] && break; sleep 0.2; done
ok "validate notices" test -n "$(stat_of validate.0 waiting)"
before=$(stat_of validate.0 in)
ok "100 webhooks while validate waits: all 202 (ingest records them)" load 2000 100
sleep 1.5
ok "validate took nothing while it waited (in: $before, then $(stat_of validate.0 in))" test "$(stat_of validate.0 in)" = "$before"
ok "ingest holds them, unacknowledged ($(stat_of ingest.0 unacked_next))" test "$(stat_of ingest.0 unacked_next)" -gt 0
rm -f "$LOW"
ok "the group drains once space is back" quiesce "$CFG" 60
ok "validate was never restarted" test "$(restarts "$CFG" validate.0)" = "$validate_restarts"

# ---- retention: ingest's acknowledged segments go once older than retention_s
# (the first segment, from seq 1, goes: it may have gone already while the group drained)
first_seg() { ls "$D/data/ingest.0/" | grep '\.seg$' | head -1; }
for _ in $(seq 1 100); do [ -f "$D/data/ingest.0/retired" ] && [ "$(first_seg)" != 00000000000000000001.seg ] && break; sleep 0.2; done
ok "ingest removed its acknowledged segments (the first kept: $(first_seg)) and recorded it ($(cat "$D/data/ingest.0/retired" 2>/dev/null))" \
    test "$(first_seg)" != 00000000000000000001.seg -a -f "$D/data/ingest.0/retired"
ok "...and said so" grep -q 'inst=ingest.0.*retired [0-9]* journal segment' "$D/run/payguard.log"
kill -9 "$(inst_pid "$CFG" ingest.0)"
for _ in $(seq 1 100); do [ "$(restarts "$CFG" ingest.0)" -gt "$ingest_restarts" ] && curl -fs "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
ok "killed, ingest starts again on what is left of its journal" curl -fs -o /dev/null "$URL/healthz"
ok "100 more webhooks accepted" load 3000 100
ok "the group drains" quiesce "$CFG" 60
down "$CFG"
"$BIN/pg-check" --data "$D/data" --receipts "$WORK/receipts.txt" --quiet >"$WORK/check.out" 2>&1
ok "every 202 receipt reached validate, every stage and the trail ($(tail -1 "$WORK/check.out"))" grep -q ' 0 failed$' "$WORK/check.out"
ok "all 400 deliveries of pg-load were acknowledged" test "$(wc -l <"$WORK/receipts.txt")" = 400
ok "the trail verifies" "$BIN/payguard" audit verify -c "$CFG"

# ---- payguard up -d returns once every process is ready, or says which is not
"$BIN/payguard" up -c "$CFG" -d >"$WORK/up.out" 2>&1
rc=$?
ok "up -d: 0 once the group is ready ($(cat "$WORK/up.out"))" test "$rc" = 0 -a "$(grep -c '^payguard: ready: ' "$WORK/up.out")" = 1
ok "...and by then every port answers" curl -fs -o /dev/null "$URL/healthz"
down "$CFG"
printf 'payguard\n    ready_timeout_s = 3\n' | cfg_merge "$CFG"
echo ingest >"$LOW"
t0=$(date +%s)
LD_PRELOAD=$BIN/libpgfailsync.so PG_LOWDISK_FILE=$LOW "$BIN/payguard" up -c "$CFG" -d >"$WORK/up.out" 2>&1
rc=$?
ok "up -d with ingest's disk full: 1 after ready_timeout_s, naming ingest and why ($(cat "$WORK/up.out"))" \
    test "$rc" = 1 -a "$(grep -c "not ready after payguard/ready_timeout_s: ingest.0 is not ready: its journal's disk is nearly full" "$WORK/up.out")" = 1
ok "...in about that time, not at once ($(($(date +%s) - t0)) s)" test "$(($(date +%s) - t0))" -ge 3 -a "$(($(date +%s) - t0))" -lt 30
ok "...and the group keeps running" "$BIN/payguard" status -c "$CFG"
rm -f "$LOW"
down "$CFG"
finish
