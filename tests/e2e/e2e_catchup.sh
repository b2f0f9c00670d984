#!/usr/bin/env bash
# e2e_catchup - `payguard catch-up stripe` (issue #20, item 3): the Stripe
# events a long outage lost, read back from the Events API, through the
# real processes and the sandbox (which lists the events it keeps):
#   1. range A: 5 payout.failed events the sandbox sends as signed webhooks
#      (and keeps, as Stripe does), 120 it only keeps (the outage: seeded),
#      one of a type payguard does not handle; catch-up over A lists 2
#      pages: the 120 become cases (fetched receipts, "via":"fetched"), the
#      5 are counted duplicates and not handed in again; summary checked;
#   2. the same range again: all 125 duplicates, nothing handed in;
#   2b. the same keys both ways: a late webhook of a fetched event, and a
#      fetched copy of a delivered one (POSTed to /fetched/stripe with the
#      token), are each a duplicate in validate;
#   3. range B, 150 missed events, the sandbox failing page 2: the run
#      stops after page 1, a re-run says it resumes and finishes: every
#      event handed in exactly once (ingest's and validate's counts);
#   3b. range E, 120 missed events, page 2 delayed 20 s by the sandbox: the
#      run is SIGKILLed while it waits; the re-run resumes after page 1 and
#      finishes, each event handed in once;
#   4. a wrong Stripe key: a clear error naming catchup/key_file, exit 1;
#   5. ingest refuses /fetched/stripe without the right token (401), with
#      a trail record; a catch-up with a wrong token file says why, exit 1;
#   6. the periodic job: with catchup/every_s = 2 the master runs it; the
#      payout and refund events added to the sandbox become cases, and
#      payguard status, /metrics and the log say it ran.
set -u
. "$(dirname "$0")/lib_e2e.sh"

PORT=$(free_port)
URL=http://127.0.0.1:$PORT
CFG=$(write_config cu "$PORT")
D=$WORK/cu
cat <<CFG | cfg_merge "$CFG"
catchup
    key_file = $ROOT/config/sandbox/read.token
    token_file = $ROOT/config/sandbox/fetch.token
    state_file = $D/catchup.state
CFG
SBX=$(sandbox_url "$CFG")
PG=("$BIN/payguard")
catchup() { "${PG[@]}" catch-up stripe -c "$CFG" "$@"; }

# metric NAME [LABELS] - the group's value of a sample on /metrics (0 if none)
metric() {
    curl -s "$URL/metrics" | awk -v n="$1" -v l="${2:-}" 'index($0, n "{") == 1 && (l == "" || index($0, l)) {s += $NF} END {print s + 0}'
}
# wait_metric NAME LABELS MIN - until the metric reaches MIN (60 s)
wait_metric() {
    for _ in $(seq 1 300); do
        [ "$(metric "$1" "$2")" -ge "$3" ] && return 0
        sleep 0.2
    done
    return 1
}
# payout_event EVT PAYOUT AMOUNT CREATED - a Stripe payout.failed event
payout_event() {
    printf '{"id":"%s","object":"event","type":"payout.failed","created":%s,"data":{"object":{"id":"po_%s","object":"payout","amount":%s,"currency":"usd","status":"failed","failure_code":"account_closed","failure_message":"The bank account has been closed","metadata":{"payout_id":"%s"}}}}' \
        "$1" "$4" "$2" "$3" "$2"
}
# seed JSON - a seed document into the sandbox
seed() { curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary @- "$SBX/_sandbox/seed"; }
# seed_range NAME FIRST LAST CREATED_BASE [EVENTS_FROM] - payouts P-NAME-i
# (paid, ledger entry) into the sandbox, and events evt_NAME_i created at
# CREATED_BASE + i for i >= EVENTS_FROM (default FIRST): webhooks never sent
seed_range() {
    local p="" e="" v="" i
    for i in $(seq "$2" "$3"); do
        p+="{\"id\":\"P-$1-$i\",\"status\":\"paid\",\"amount\":$((5000 + i)),\"currency\":\"USD\",\"beneficiary_id\":\"B-$1-$i\"},"
        e+="{\"type\":\"payout_paid\",\"ref\":\"P-$1-$i\",\"amount\":$((5000 + i)),\"currency\":\"USD\",\"case_id\":\"seed\"},"
        [ "$i" -ge "${5:-$2}" ] && v+="$(payout_event "evt_$1_$i" "P-$1-$i" $((5000 + i)) $(($4 + i))),"
    done
    printf '{"payouts":[%s],"entries":[%s],"events":[%s]}' "${p%,}" "${e%,}" "${v%,}" | seed
}
# deliver NAME I CREATED_BASE - the sandbox keeps event evt_NAME_I and sends
# it to ingest as a signed webhook; prints ingest's status
deliver() {
    printf '{"event":%s,"url":"%s/webhooks/stripe","secret":"%s"}' \
        "$(payout_event "evt_$1_$2" "P-$1-$2" $((5000 + $2)) $(($3 + $2)))" "$URL" "$E2E_SECRET" |
        curl -s -X POST -H 'Content-Type: application/json' --data-binary @- "$SBX/_sandbox/stripe/send" |
        sed -n 's/.*"status": *\([0-9]*\).*/\1/p'
}

ok "group and sandbox start" up "$CFG"
NOW=$(date +%s)
A0=$((NOW - 20000)) # range A: created A0+1 .. A0+125
B0=$((NOW - 10000)) # range B: created B0+1 .. B0+150
ok "the sandbox takes range A's payouts and the events never sent" seed_range A 1 125 "$A0" 6
ok "and range B's" seed_range B 1 150 "$B0"
ok "and an event of a type payguard does not handle, in range A" bash -c "printf '%s' '{\"events\":[{\"id\":\"evt_A_cus\",\"type\":\"customer.created\",\"created\":$((A0 + 50)),\"data\":{\"object\":{\"id\":\"cus_1\",\"object\":\"customer\"}}}]}' |
    curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary @- '$SBX/_sandbox/seed'"

# ---- 1. five delivered by webhook, 120 only in the sandbox (the outage)
codes=""
for i in 1 2 3 4 5; do codes+="$(deliver A "$i" "$A0") "; done
ok "the sandbox sent 5 webhooks of range A, ingest answered 202 each" test "$codes" = "202 202 202 202 202 "
ok "validate accepted the 5" wait_metric payguard_validate_accepted_total 'kind="payout"' 5
sleep 1.5 # validate commits its store once a second
catchup --since "$(date -u -d "@$A0" +%Y-%m-%dT%H:%M:%SZ)" --until $((A0 + 1000)) >"$WORK/run1.out" 2>&1
rc=$?
cat "$WORK/run1.out" | sed 's/^/#   /'
ok "catch-up over range A exits 0" test "$rc" = 0
ok "it lists two pages" test "$(grep -c '^page ' "$WORK/run1.out")" = 2
ok "summary: fetched 125 (the sent ones listed too, the unhandled type not), new 120, duplicates 5, failed 0" grep -qx 'fetched 125, new 120, duplicates 5, failed 0' "$WORK/run1.out"
ok "ingest recorded 120 fetched receipts" wait_metric payguard_ingest_receipts_total 'endpoint="stripe_fetched"' 120
ok "validate took 120 fetched receipts and accepted them: 125 cases" wait_metric payguard_validate_accepted_total 'kind="payout"' 125
ok "none of them a duplicate (the 5 delivered ones were not handed in again)" test "$(metric payguard_validate_duplicates_total)" = 0
ok "validate counted 120 fetched receipts" test "$(metric payguard_validate_fetched_total)" = 120
ok "the Events API was called with the read-only key only" \
    test "$(curl -s "$SBX/_sandbox/calls?system=psp" | grep -o '"auth":[^,]*' | sort -u)" = '"auth":"read"'
ok "with the handled types and created[gte]/[lte]" \
    bash -c "curl -s '$SBX/_sandbox/calls?system=psp' | grep -o '\"query\":\"[^\"]*\"' | head -1 |
             grep -q 'created\[gte\]=$A0&created\[lte\]=$((A0 + 1000))&limit=100&types\[\]=payout.failed&types\[\]=payout.canceled&types\[\]=refund.updated&types\[\]=refund.failed&types\[\]=charge.refund.updated&types\[\]=charge.refunded'"
ok "the second page asked starting_after the first page's last event" \
    bash -c "curl -s '$SBX/_sandbox/calls?system=psp' | grep -q 'starting_after=evt_A_26\"'"
quiesce "$CFG" 60
ok "a missed event's case is on the trail, its verdict marked via fetched" \
    bash -c "'$BIN/payguard' audit export -c '$CFG' 2>/dev/null | grep '\"payout_id\":\"P-A-60\"' | grep -q '\"via\":\"fetched\"'"
ok "a delivered event's verdict is not marked fetched" \
    bash -c "! '$BIN/payguard' audit export -c '$CFG' 2>/dev/null | grep '\"payout_id\":\"P-A-3\"' | grep -q '\"via\":\"fetched\"'"

RT=$(cat "$ROOT/config/sandbox/read.token")
ok "the sandbox's GET /v1/events/{id} answers one event (a sent one)" \
    bash -c "curl -fs -H 'Authorization: Bearer $RT' '$SBX/psp/v1/events/evt_A_3' | grep -q '\"id\":\"evt_A_3\"'"
ok "404 for an unknown event, 401 without the key" \
    test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $RT" "$SBX/psp/v1/events/evt_nope") $(curl -s -o /dev/null -w '%{http_code}' "$SBX/psp/v1/events/evt_A_3")" = "404 401"

# ---- 2. the same range again: all duplicates
catchup --since "$A0" --until $((A0 + 1000)) >"$WORK/run2.out" 2>&1
rc=$?
sed 's/^/#   /' "$WORK/run2.out"
ok "the second run exits 0" test "$rc" = 0
ok "summary: fetched 125, new 0, duplicates 125, failed 0" grep -qx 'fetched 125, new 0, duplicates 125, failed 0' "$WORK/run2.out"
ok "it handed in nothing" test "$(metric payguard_ingest_receipts_total 'endpoint="stripe_fetched"')" = 120

# ---- 2b. the same idempotency keys both ways
ok "a late webhook of evt_A_60 (fetched before) is taken (202)" test "$(deliver A 60 "$A0")" = 202
ok "and validate judges it a duplicate" wait_metric payguard_validate_duplicates_total "" 1
st=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/fetched/stripe" -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $(cat "$ROOT/config/sandbox/fetch.token")" --data-binary "$(payout_event evt_A_3 P-A-3 5003 $((A0 + 3)))")
ok "a fetched copy of evt_A_3 (delivered by webhook) is taken (202)" test "$st" = 202
ok "and validate judges it a duplicate too" wait_metric payguard_validate_duplicates_total "" 2
quiesce "$CFG" 30
ok "that duplicate verdict says via fetched" \
    bash -c "'$BIN/payguard' audit export -c '$CFG' 2>/dev/null | grep '\"what\":\"duplicate\"' | grep '\"payout_id\":\"P-A-3\"' | grep -q '\"via\":\"fetched\"'"

# ---- 3. range B, the sandbox failing page 2: stop, resume, finish
curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' "$SBX/_sandbox/faults" \
    --data '{"system":"psp","method":"GET","path_prefix":"/v1/events","query_has":"starting_after","status":400,"count":1}'
catchup --since "$B0" --until $((B0 + 1000)) --quiet >"$WORK/run3.out" 2>&1
rc=$?
sed 's/^/#   /' "$WORK/run3.out"
ok "a fault on page 2 stops the run with exit 1" test "$rc" = 1
ok "it says the Events API failed and how to go on" \
    bash -c "grep -q 'Events API.*HTTP 400' '$WORK/run3.out' && grep -q 'run the same command again' '$WORK/run3.out'"
ok "page 1's 100 events were handed in before it stopped" grep -q '^fetched 100, new 100, duplicates 0, failed 0' "$WORK/run3.out"
ok "the state file names the last event handed in" grep -q "^$B0 $((B0 + 1000)) $((B0 + 1000)) evt_B_51 100 100 0 open" "$D/catchup.state"
catchup --since "$B0" --until $((B0 + 1000)) --quiet >"$WORK/run4.out" 2>&1
rc=$?
sed 's/^/#   /' "$WORK/run4.out"
ok "the re-run exits 0" test "$rc" = 0
ok "it says it resumes after the last event handed in" grep -q 'resuming the interrupted run.*after evt_B_51' "$WORK/run4.out"
ok "and finishes the range: fetched 150, new 150, duplicates 0, failed 0" grep -qx 'fetched 150, new 150, duplicates 0, failed 0' "$WORK/run4.out"
ok "ingest recorded each of range B's events once (120 + 1 + 150 fetched receipts)" \
    wait_metric payguard_ingest_receipts_total 'endpoint="stripe_fetched"' 271
ok "validate accepted 275 cases" wait_metric payguard_validate_accepted_total 'kind="payout"' 275
sleep 1
ok "nothing doubled: 271 fetched receipts (270 and 2b's copy), still 2 duplicates (2b's)" \
    test "$(metric payguard_ingest_receipts_total 'endpoint="stripe_fetched"') $(metric payguard_validate_duplicates_total)" = "271 2"

# ---- 3b. SIGKILLed between pages: the state file is written after each event
E0=$((NOW - 8000))
ok "the sandbox takes range E" seed_range E 1 120 "$E0"
curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' "$SBX/_sandbox/faults" \
    --data '{"system":"psp","method":"GET","path_prefix":"/v1/events","query_has":"starting_after=evt_E_21","status":0,"delay_ms":20000,"count":1}'
"${PG[@]}" catch-up stripe -c "$CFG" --since "$E0" --until $((E0 + 1000)) --quiet >"$WORK/run7.out" 2>&1 &
cpid=$! # the payguard process itself (not a subshell): SIGKILL reaches it
for _ in $(seq 1 300); do grep -q "^$E0 .* evt_E_21 100 100 0 open" "$D/catchup.state" 2>/dev/null && break; sleep 0.1; done
"${PG[@]}" catch-up stripe -c "$CFG" --since "$A0" --until $((A0 + 10)) --quiet >"$WORK/run7b.out" 2>&1
rc=$?
ok "meanwhile a second catch-up is refused: one at a time (exit 1)" \
    bash -c "test $rc = 1 && grep -q 'another catch-up is running' '$WORK/run7b.out'"
kill -9 "$cpid" 2>/dev/null
wait "$cpid" 2>/dev/null
ok "killed while page 2 was delayed, after page 1's 100 hand-ins" \
    bash -c "! kill -0 $cpid 2>/dev/null && grep -q '^$E0 .* evt_E_21 100 100 0 open' '$D/catchup.state'"
catchup --since "$E0" --until $((E0 + 1000)) --quiet >"$WORK/run8.out" 2>&1
rc=$?
sed 's/^/#   /' "$WORK/run8.out"
ok "the re-run after the kill resumes after evt_E_21 and finishes: fetched 120, new 120" \
    bash -c "test $rc = 0 && grep -q 'after evt_E_21' '$WORK/run8.out' && grep -qx 'fetched 120, new 120, duplicates 0, failed 0' '$WORK/run8.out'"
wait_metric payguard_validate_accepted_total 'kind="payout"' 395
sleep 1
ok "each of range E's events was handed in once (391 fetched receipts), 395 cases, no new duplicate" \
    test "$(metric payguard_ingest_receipts_total 'endpoint="stripe_fetched"') $(metric payguard_validate_accepted_total 'kind="payout"') $(metric payguard_validate_duplicates_total)" = "391 395 2"
curl -fs -o /dev/null -X DELETE "$SBX/_sandbox/faults"

# ---- 4. a wrong Stripe key
printf 'sk_test_wrong\n' >"$WORK/bad.key"
sed "s|key_file = .*|key_file = $WORK/bad.key|" "$CFG" >"$WORK/badkey.cfg"
"${PG[@]}" catch-up stripe -c "$WORK/badkey.cfg" --since "$A0" --until $((A0 + 10)) >"$WORK/run5.out" 2>&1
rc=$?
sed 's/^/#   /' "$WORK/run5.out"
ok "a wrong key: exit 1" test "$rc" = 1
ok "with a clear error (401, catchup/key_file)" grep -q 'HTTP 401.*catchup/key_file' "$WORK/run5.out"
ok "the key is in no output" bash -c "! grep -q sk_test_wrong '$WORK/run5.out'"
"${PG[@]}" catch-up stripe -c "$CFG" --since yesterday >"$WORK/args.out" 2>&1
rc=$?
ok "bad arguments are refused with exit 2 and a reason" \
    bash -c "test $rc = 2 && grep -q \"'yesterday' is not a time\" '$WORK/args.out'"
ok "--since is required" bash -c "'$BIN/payguard' catch-up stripe -c '$CFG' 2>&1 | grep -q 'since TIME is required'"

# ---- 5. ingest's token
body=$(payout_event evt_forged P-A-1 5001 "$A0")
st=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/fetched/stripe" -H 'Content-Type: application/json' \
    -H 'Authorization: Bearer not-the-token' --data-binary "$body")
ok "POST /fetched/stripe with a wrong token: 401" test "$st" = 401
st=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/fetched/stripe" -H 'Content-Type: application/json' --data-binary "$body")
ok "without a token: 401" test "$st" = 401
quiesce "$CFG" 30
ok "each refusal is on the trail (fetch_unauthorized)" \
    bash -c "test \$('$BIN/payguard' audit export -c '$CFG' 2>/dev/null | grep -c '\"code\":\"fetch_unauthorized\"') = 2"
ok "and the token is not" bash -c "! '$BIN/payguard' audit export -c '$CFG' 2>/dev/null | grep -q not-the-token"
printf 'wrong-fetch-token\n' >"$WORK/bad.token"
sed "s|token_file = $ROOT/config/sandbox/fetch.token|token_file = $WORK/bad.token|" "$CFG" >"$WORK/badtok.cfg"
seed_range C 1 1 "$((NOW - 500))"
"${PG[@]}" catch-up stripe -c "$WORK/badtok.cfg" --since $((NOW - 600)) --until $((NOW - 400)) >"$WORK/run6.out" 2>&1
rc=$?
sed 's/^/#   /' "$WORK/run6.out"
ok "a catch-up with a wrong token stops at the first hand-in: exit 1, failed 1" \
    bash -c "test $rc = 1 && grep -q '^fetched 1, new 0, duplicates 0, failed 1' '$WORK/run6.out'"
ok "saying ingest answered 401 and which setting is wrong" grep -q 'HTTP 401.*catchup/token_file' "$WORK/run6.out"

# ---- 6. the periodic job
down "$CFG"
cat <<CFG | cfg_merge "$CFG"
catchup
    every_s = 2
    window_s = 3600
CFG
ok "the group starts again with catchup/every_s = 2" up "$CFG"
seed_range D 1 3 "$((NOW - 300))"
seed <<JSON
{"payments":[{"id":"pay_cu_1","amount":10000,"currency":"USD","customer_id":"cus_cu","customer_risk":"low","flagged":false,"refunded_amount":0}],
 "psp_refunds":[{"id":"rf_cu_1","amount":2500,"currency":"usd","status":"succeeded","payment_intent":"pi_cu","metadata":{"payment_id":"pay_cu_1"}}],
 "entries":[{"type":"refund_initiated","ref":"rf_cu_1","amount":2500,"currency":"USD"}],
 "events":[{"id":"evt_R_1","object":"event","type":"refund.updated","created":$((NOW - 200)),"data":{"object":{"id":"rf_cu_1","object":"refund","amount":2500,"currency":"usd","status":"succeeded","payment_intent":"pi_cu","metadata":{"payment_id":"pay_cu_1"}}}}]}
JSON
ok "the periodic catch-up hands in what the window holds (C-1 and D-1..3): 4 more payout cases" \
    wait_metric payguard_validate_accepted_total 'kind="payout"' 4
ok "and the refund.updated of rf_cu_1: a refund case (the PSP and the ledger read)" \
    wait_metric payguard_validate_accepted_total 'kind="refund"' 1
ok "the master ran it and it exited 0" \
    bash -c "for _ in \$(seq 1 50); do grep -q '^last_exit=0' '$D/run/catchup.stat' 2>/dev/null && exit 0; sleep 0.2; done; exit 1"
ok "payguard status shows the periodic catch-up" bash -c "'$BIN/payguard' status -c '$CFG' | grep -q 'catch-up (stripe) every 2 s: .* runs'"
ok "/metrics counts its runs" wait_metric payguard_catchup_runs_total 'outcome="ok"' 1
curl -s "$URL/metrics" >"$WORK/metrics.txt"
ok "that /metrics page passes promtool check metrics" \
    bash -c "out=\$(promtool check metrics <'$WORK/metrics.txt' 2>&1) && test -z \"\$out\" || { echo \"\$out\" | head -5; false; }"
ok "its log says it started and finished" bash -c "grep -q 'catch-up: started pid=' '$D/run/payguard.log' && grep -q 'catch-up: pid=.* done' '$D/run/payguard.log'"
sleep 3
ok "later runs find nothing new: still 4 cases since the restart" test "$(metric payguard_validate_accepted_total 'kind="payout"')" = 4
finish
