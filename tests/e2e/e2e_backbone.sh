#!/usr/bin/env bash
# e2e_backbone - the backbone's promises, with the real processes:
#   1. HTTP edge statuses of CONTRACT.md §1.3 (404 405 413 415 202);
#   2. 10,000 signed webhooks while validate, one triage worker and audit are
#      SIGKILLed and restarted by the supervisor: every receipt reaches every
#      stage's journal and audit, and no event id has two effects;
#   3. back-pressure: with validate stopped (SIGSTOP), ingest answers 503 +
#      Retry-After once its window is full, and every 202'd receipt is
#      delivered after validate resumes;
#   4. replay: approve's journal lost, `payguard replay` from triage rebuilds
#      it though approve is SIGKILLed meanwhile (replay watches approve's
#      journal and sends again what it did not take), and execute (which
#      already has everything) does nothing twice.
set -u
. "$(dirname "$0")/lib_e2e.sh"
N=${E2E_WEBHOOKS:-10000}


# ---- 1. the HTTP edge
PORT=$(free_port)
CFG=$(write_config main "$PORT")
# step 4 rebuilds approve's lost journal: approve answers the replayed
# events again, with a new journal epoch, so execute and audit know those
# answers by id only (common/dedup.h): recent_ids must cover them (audit
# takes about 6 events a case)
sed -i 's/^        max_inflight = 10000$/&\n        recent_ids = 262144/' "$CFG"
ok "group starts from a config file" up "$CFG"
ok "the sandbox knows the $N payouts the load will report" seed_load_payouts "$CFG" "$N"
URL=http://127.0.0.1:$PORT
status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
ok "unknown path is 404" test "$(status -X POST -H 'Content-Type: application/json' -d '{}' "$URL/nope")" = 404
ok "GET on a webhook path is 405" test "$(status "$URL/webhooks/stripe")" = 405
ok "non-JSON content type is 415" test "$(status -X POST -H 'Content-Type: text/plain' -d 'x' "$URL/webhooks/stripe")" = 415
head -c 300000 /dev/zero | tr '\0' 'a' >"$WORK/big"
ok "body over 256 KiB is 413" test "$(status -X POST -H 'Content-Type: application/json' --data-binary @"$WORK/big" "$URL/webhooks/standard")" = 413
body=$(curl -s -X POST -H 'Content-Type: application/json; charset=utf-8' -d '{"id":"evt_x"}' "$URL/webhooks/standard")
ok "a JSON POST is 202 with a receipt id" grep -q '"receipt_id":"rcpt_' <<<"$body"
ok "metrics are served in Prometheus text format" bash -c "curl -s $URL/metrics | grep -q '^payguard_journal_fsyncs_total{instance=\"ingest.0\"}'"

# ---- 2. load with SIGKILLs
"$BIN/pg-load" --url "$URL/webhooks/stripe" --secret-file "$WORK/secret" --count "$N" --concurrency 32 \
    --out "$WORK/receipts.txt" --duration-max-s 300 >"$WORK/load.out" 2>&1 &
LOAD=$!
killed=""
for inst in validate.0 triage.0 audit.0; do
    # wait until the load is well under way, then kill mid-stream
    target=$(($(wc -l 2>/dev/null <"$WORK/receipts.txt" || echo 0) + N / 6))
    for _ in $(seq 1 300); do
        [ "$(wc -l 2>/dev/null <"$WORK/receipts.txt" || echo 0)" -ge "$target" ] && break
        kill -0 $LOAD 2>/dev/null || break
        sleep 0.1
    done
    pid=$(inst_pid "$CFG" $inst)
    if [ -n "$pid" ] && [ "$pid" != 0 ]; then
        kill -9 "$pid" && killed="$killed $inst"
        echo "# SIGKILL $inst (pid $pid) after $(wc -l <"$WORK/receipts.txt") of $N receipts"
    fi
done
wait $LOAD
load_rc=$?
sed "s/^/# /" "$WORK/load.out"
ok "every one of $N webhooks was answered 202 (load generator exit 0)" test $load_rc = 0
ok "validate, triage.0 and audit were SIGKILLed mid-load" test "$killed" = " validate.0 triage.0 audit.0"
ok "the pipeline drains (no unacked events anywhere)" quiesce "$CFG" 90
for inst in validate.0 triage.0 audit.0; do
    ok "supervisor restarted $inst" test "$(restarts "$CFG" $inst)" -ge 1
done
ok "payguard status shows every instance" bash -c "'$BIN/payguard' status -c '$CFG' | grep -c 'triage\\.[01]' | grep -q 2"
pids=$(awk '{print $2}' "$WORK/main/run/master.state")
down "$CFG"
alive=0
for p in $pids; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
ok "payguard down stopped every process" test $alive = 0
"$BIN/pg-check" --data "$WORK/main/data" --receipts "$WORK/receipts.txt" >"$WORK/check.out" 2>&1
check_rc=$?
sed "s/^/# /" "$WORK/check.out"
ok "every receipt has its successor in every stage and in audit; no id has two effects" test $check_rc = 0

# ---- 4. replay rebuilds a lost journal (group stopped: a restore scenario)
rm -rf "$WORK/main/data/approve.0"
ok "group restarts with approve's journal gone" up "$CFG"
# approve is SIGKILLed during the first replay: what sat in its socket dies
# with it, and replay's window (it watches approve's journal) sends it again
"$BIN/payguard" replay -c "$CFG" --from triage.0 --rebuild >"$WORK/replay.out" 2>&1 &
REPLAY=$!
wait_stat "$CFG" approve.0 in 1500 60
kill -9 "$(inst_pid "$CFG" approve.0)"
wait $REPLAY && "$BIN/payguard" replay -c "$CFG" --from triage.1 --rebuild >>"$WORK/replay.out" 2>&1
ok "payguard replay re-feeds both triage workers' journals" test $? = 0
sed "s/^/# /" "$WORK/replay.out"
ok "approve was SIGKILLed during the replay and restarted" test "$(restarts "$CFG" approve.0)" -ge 1
ok "replay saw every event it sent taken in approve's journal, though approve was killed" \
    test "$(grep -c '^confirmed: \([0-9]*\) of \1 sent seen taken' "$WORK/replay.out")" = 2
ok "the pipeline drains after replay" quiesce "$CFG" 60
down "$CFG"
"$BIN/pg-check" --data "$WORK/main/data" --receipts "$WORK/receipts.txt" --quiet >"$WORK/check2.out" 2>&1
ok "after replay approve has every successor again and execute did nothing twice" test $? = 0
tail -1 "$WORK/check2.out" | sed "s/^/# pg-check: /"

# ---- 3. back-pressure
PORT2=$(free_port)
CFG2=$(write_config bp "$PORT2" 200)
ok "second group starts with a 200-event window" up "$CFG2"
seed_load_payouts "$CFG2" 1000
kill -STOP "$(inst_pid "$CFG2" validate.0)"
: >"$WORK/bp.receipts"
got503=""
for i in $(seq 1 600); do
    t=$(date +%s)
    b='{"id":"evt_bp_'$i'","type":"payout.failed","created":'$t',"data":{"object":{"id":"po_'$i'","object":"payout","amount":'$((1000 + i))',"currency":"usd","status":"failed","metadata":{"payout_id":"P-'$i'"}}}}'
    sig=$(printf '%s' "$t.$b" | openssl dgst -sha256 -hmac "$E2E_SECRET" -r | cut -d' ' -f1)
    out=$(curl -s -D "$WORK/bp.hdr" -X POST -H 'Content-Type: application/json' -H "Stripe-Signature: t=$t,v1=$sig" \
        -d "$b" "http://127.0.0.1:$PORT2/webhooks/stripe")
    if grep -q '^HTTP/1.1 503' "$WORK/bp.hdr"; then
        got503=$i
        break
    fi
    rid=$(sed -n 's/.*"receipt_id":"\([^"]*\)".*/\1/p' <<<"$out")
    [ -n "$rid" ] && echo "evt_bp_$i $rid" >>"$WORK/bp.receipts"
done
ok "ingest answers 503 once its window is full (after $(wc -l <"$WORK/bp.receipts") receipts)" test -n "$got503"
ok "the 503 carries Retry-After" grep -qi '^Retry-After: [0-9]' "$WORK/bp.hdr"
ok "the window bounded the 202s (200 before the 503)" test "$(wc -l <"$WORK/bp.receipts")" -eq 200
kill -CONT "$(inst_pid "$CFG2" validate.0)"
ok "after validate resumes the pipeline drains" quiesce "$CFG2" 60
down "$CFG2"
"$BIN/pg-check" --data "$WORK/bp/data" --receipts "$WORK/bp.receipts" --quiet >"$WORK/check3.out" 2>&1
ok "every 202-acknowledged receipt was delivered through every stage" test $? = 0
tail -1 "$WORK/check3.out" | sed "s/^/# pg-check: /"

finish
