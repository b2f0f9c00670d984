#!/usr/bin/env bash
# e2e_audit - the audit trail, through the real processes (CONTRACT.md §3.2):
#   1. the retry-storm example: one Stripe event delivered 12 times, approved,
#      executed: GET /cases/{id} and `payguard case show` show all 12
#      receipts (11 duplicates) and one execution;
#   2. GET /cases?state= lists, newest first; bad state 400; no token 401 and
#      an access_denied record on the trail; a rejected webhook is a case too;
#      refusals (#21 finding 2): 100 bad-token requests from one address are
#      a few records that count them all, 401 until payguard/refusals/
#      throttle_after (20), then 429 with Retry-After, good token or not,
#      while another address is served; a non-ASCII id refused is on the
#      trail, escaped;
#   3. `payguard audit verify` passes on the live trail and after a stop (the
#      stop seals the head); export as JSON lines, by case and since a time;
#      a credential header posted with a webhook never reaches the trail;
#   4. GET /metrics on every served port carries the group's numbers;
#   5. the case index deleted and rebuilt from the trail answers the same;
#   6. tampering with a copy of the trail: a flipped byte and a tail cut
#      after a checkpoint are caught and located (every kind of tampering,
#      located exactly, is in tests/unit/test_trail.c).
set -u
. "$(dirname "$0")/lib_e2e.sh"
. "$(dirname "$0")/lib_corpus.sh"

PORT=$(free_port)
APORT=$(free_port)
UPORT=$(free_port)
CFG=$(write_config au "$PORT")
D=$WORK/au
cfg_merge "$CFG" <<CFG
payguard
    refusals
        window_s = 5
approve
    public_url = http://127.0.0.1:$APORT
audit
    checkpoint_every_s = 1
execute
    token_file = $ROOT/config/sandbox/write.token
    retry_base_ms = 50
CFG
URL=http://127.0.0.1:$PORT
API=http://127.0.0.1:$APORT
AUD=http://127.0.0.1:$UPORT
PG="$BIN/payguard"
get() { curl -s -H "Authorization: Bearer $(tok "$1")" "$AUD$2"; }
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
# case_state CASE - the state GET /cases/{id} answers
case_state() { get ops_lead "/cases/$1" | grep -o '"state":"[^"]*"' | head -1 | cut -d'"' -f4; }
# wait_state CASE STATE - until the case index says so (15 s)
wait_state() {
    for _ in $(seq 1 75); do
        [ "$(case_state "$1")" = "$2" ] && return 0
        sleep 0.2
    done
    return 1
}

ok "group starts" up "$CFG"
seed_load_payouts "$CFG" 4 # P-0..P-3: paid, 10.00 USD and up: tier 1

# ---- 1. the retry storm: the same event 12 times
body=$(stripe_payout_body evt_storm_1 P-1 1001 usd)
t=$(date +%s)
n=0
for _ in $(seq 1 12); do
    r=$(send_stripe "$body" "$E2E_SECRET" "$t")
    [ -n "$r" ] && n=$((n + 1))
done
ok "12 deliveries of one event: 12 receipts (202)" test "$n" = 12
# a webhook carrying a credential header (a misconfigured PSP relay)
send_stripe "$(stripe_payout_body evt_cred_2 P-2 1002 usd)" "$E2E_SECRET" "$t" -H 'Authorization: Bearer sk_live_do_not_store' >/dev/null
send_stripe "$(stripe_payout_body evt_unknown_1 P-UNKNOWN 5000 usd)" "$E2E_SECRET" >/dev/null
ok "the storm's case awaits its approver" wait_state payout-P-1 awaiting_approval
ok "the ops lead approves it" test "$(code -X POST -H "Authorization: Bearer $(tok ops_lead)" -d '{"decision":"approve","comment":"storm"}' "$API/approvals/payout-P-1/decisions")" = 200
ok "the case reaches executed" wait_state payout-P-1 executed
quiesce "$CFG" 30
get fin_mgr /cases/payout-P-1 >"$WORK/case.json"
count() { grep -o "\"type\":\"$1\"" "$WORK/case.json" | wc -l; }
ok "GET /cases/{id}: 12 receipts on the timeline" test "$(count receipt)" = 12
ok "... counted: receipts 12, duplicates 11" grep -q '"receipts":12,"duplicates":11' "$WORK/case.json"
ok "... one validation, 11 duplicates" test "$(count validated) $(count duplicate)" = "1 11"
ok "... one execution (one runbook, one executed)" test "$(count runbook) $(count executed)" = "1 1"
ok "... the AI recommendation marked advisory" grep -q '"recommendation":{[^}]*"advisory":true' "$WORK/case.json"
ok "... the decision with who and when" grep -q '"decisions":\[{"approver":"ops_lead","role":"payments_ops_lead","decision":"approve","comment":"storm","at":"20' "$WORK/case.json"
ok "... each action with its response" grep -q '"actions":\[.*{"step":"hold_payout","status":"done","idempotency_key":"payout-P-1:hold_payout","http_status":200,"response":{' "$WORK/case.json"
ok "... its idempotency key" grep -q '"idempotency_keys":\["evt_storm_1:P-1"\]' "$WORK/case.json"
"$PG" case show payout-P-1 -c "$CFG" --token-file "$ROOT/config/sandbox/ops_lead.token" >"$WORK/show.txt"
ok "payguard case show: state and receipts" grep -q 'state: executed .*receipts: 12 (11 duplicate)' "$WORK/show.txt"
ok "payguard case show: 12 receipt lines, one runbook finished" test "$(grep -c ' receipt ' "$WORK/show.txt") $(grep -c 'runbook finished: done' "$WORK/show.txt")" = "12 1"
ok "payguard case show: the advice marked advisory" grep -q 'AI recommendation (ADVISORY ONLY' "$WORK/show.txt"
ok "payguard case show of an unknown case: exit 1" bash -c "! '$PG' case show payout-NOPE -c '$CFG' --token-file '$ROOT/config/sandbox/ops_lead.token' 2>/dev/null"

# ---- 2. lists, refusals
ok "GET /cases?state=executed lists it" bash -c "curl -s -H 'Authorization: Bearer $(tok treasurer)' '$AUD/cases?state=executed' | grep -q '^{\"cases\":\[{\"case_id\":\"payout-P-1\",\"kind\":\"payout\",\"state\":\"executed\",\"ref\":\"P-1\"'"
ok "a webhook for an unknown payout: a case in state rejected" bash -c "curl -s -H 'Authorization: Bearer $(tok treasurer)' '$AUD/cases?state=rejected' | grep -q '\"case_id\":\"payout-P-UNKNOWN\"'"
ok "GET /cases?state=pending (alias of awaiting_approval) lists P-2" bash -c "curl -s -H 'Authorization: Bearer $(tok treasurer)' '$AUD/cases?state=pending' | grep -q '\"case_id\":\"payout-P-2\"'"
ok "GET /cases?state=bogus: 400" test "$(code -H "Authorization: Bearer $(tok treasurer)" "$AUD/cases?state=bogus")" = 400
ok "GET /cases/unknown: 404" test "$(code -H "Authorization: Bearer $(tok treasurer)" "$AUD/cases/payout-NOPE")" = 404
ok "GET /cases without a token: 401" test "$(code "$AUD/cases")" = 401
ok "GET /cases/{id} with a wrong token: 401" test "$(code -H 'Authorization: Bearer nope' "$AUD/cases/payout-P-1")" = 401
ok "POST /cases: 405" test "$(code -X POST -H "Authorization: Bearer $(tok treasurer)" "$AUD/cases")" = 405
# (from an address of its own: the first refusal of its window, a record of its own)
ok "GET /cases/{id} of a made-up id without a token: 401" test "$(code --interface 127.0.0.5 "$AUD/cases/refund-FORGED-1")" = 401
ok "a decision on a made-up case: 404 from approve" \
    test "$(code -X POST -H "Authorization: Bearer $(tok ops_lead)" -d '{"decision":"approve"}' "$API/approvals/refund-FORGED-2/decisions")" = 404
sleep 1.5
# an id from a refused request is data on the trail, never a case (#21)
ok "...and those ids are no cases afterwards: 404 with a token" \
    test "$(code -H "Authorization: Bearer $(tok treasurer)" "$AUD/cases/refund-FORGED-1")$(code -H "Authorization: Bearer $(tok treasurer)" "$AUD/cases/refund-FORGED-2")" = 404404
ok "...nor in the case list" bash -c "! curl -s -H 'Authorization: Bearer $(tok treasurer)' '$AUD/cases?limit=1000' | grep -q 'FORGED'"

# refusals, aggregated and throttled (#21 finding 2); 127/8 is all this
# host's, so each address below is another source (127.0.0.1 is exempt)
BAD=127.0.0.2
t0=$(date +%s)
ok "100 bad-token requests from one address: 401 up to the 20th refusal, then 429" \
    test "$(http_codes 100 --interface $BAD -H 'Authorization: Bearer guess' "$AUD/cases/payout-P-1")" = "401:20 429:80 "
t1=$(date +%s)
ok "a good token from another address is served" \
    test "$(code --interface 127.0.0.3 -H "Authorization: Bearer $(tok treasurer)" "$AUD/cases")" = 200
ok "a non-ASCII id without a token: 401" test "$(code --interface 127.0.0.4 "$AUD/cases/refund-%C3%A9X%FF%0A")" = 401
ok "the trail counts all 100 (the window's repeats in a summary once it ends)" wait_refusals "$CFG" $BAD audit.0 100
most=$((2 + (t1 - t0 + 1) / 5 + 1)) # the first, the one that throttled, a summary per window (5 s) they took
ok "...in at most $most records (the first, the one that throttled, a summary a window)" \
    test "$(refusals_counted "$CFG" $BAD audit.0) $(refusals_records "$CFG" $BAD audit.0 | awk -v m=$most '{print ($1 <= m)}')" = "100 1"
ok "...the summary says how many, from where, between when" bash -c "'$PG' audit export -c '$CFG' | grep -q \
    '\"reason\":\"[0-9]* refusals from $BAD between 20[0-9T:-]*Z and 20[0-9T:-]*Z ([0-9]* of them answered 429'"
ok "...the refusal that throttled says so" bash -c "'$PG' audit export -c '$CFG' | grep -q \
    '\"reason\":\"unknown or missing token (cases API); 20 refused requests from this address within payguard/refusals/window_s: it is answered 429 for 60 s\",\"client_ip\":\"$BAD\"'"
ok "the non-ASCII id is on the trail, escaped, as data" bash -c "'$PG' audit export -c '$CFG' | grep '\"client_ip\":\"127.0.0.4\"' | \
    grep -q '\"case_key\":\"\".*\"requested_case\":\"refund-%C3%A9X%FF%0A\"'"
hdr=$(curl -s -D - -o /dev/null --interface $BAD "$AUD/cases")
ok "the throttled address gets 429 with Retry-After" grep -qi '^retry-after: [1-9][0-9]*' <<<"$hdr"
ok "...good token or not" test "$(code --interface $BAD -H "Authorization: Bearer $(tok treasurer)" "$AUD/cases")" = 429
ok "127.0.0.1 (payguard/refusals/exempt, the console's) is never throttled" \
    test "$(http_codes 25 -H 'Authorization: Bearer guess' "$AUD/cases")$(code -H "Authorization: Bearer $(tok treasurer)" "$AUD/cases")" = "401:25 200"
sleep 1.2 # the counters reach /metrics within a second
curl -s "$AUD/metrics" >"$WORK/refusals.metrics"
ok "/metrics: the 429s and the refusals summed up" bash -c "grep -q '^payguard_refusals_throttled_total{instance=\"audit.0\"} 8[0-9]$' '$WORK/refusals.metrics' &&
    grep -q '^payguard_refusals_aggregated_total{instance=\"audit.0\"} [1-9][0-9]*$' '$WORK/refusals.metrics' &&
    grep -q '^payguard_refusals_sources_throttled{instance=\"audit.0\"} 1$' '$WORK/refusals.metrics'"

# ---- 3. verify, export, secrets
ok "payguard audit verify passes on the live trail" "$PG" audit verify -c "$CFG"
"$PG" audit export -c "$CFG" >"$WORK/all.jsonl" 2>/dev/null
ok "the refused reads are on the trail (access_denied from audit)" test "$(grep -c '"what":"access_denied"' "$WORK/all.jsonl")" -ge 2
ok "...the made-up id as requested_case, in no case" \
    bash -c "grep '\"what\":\"access_denied\"' '$WORK/all.jsonl' | grep '\"requested_case\":\"refund-FORGED-1\"' | grep -q '\"resource\":{}'"
# lacking FIELD_REGEX - how many exported records lack it
lacking() { grep -vc "$1" "$WORK/all.jsonl"; }
ok "every record answers who, what, when, outcome, origin, resource" \
    test "$(lacking '"who":"[a-z]*:')$(lacking '"what":"')$(lacking '"at_ms":[0-9]')$(lacking '"outcome":"\(success\|failure\)"')$(lacking '"origin":{"')$(lacking '"resource":{')" = 000000
ok "decisions name the person" grep -q '"what":"decision approve","who":"person:ops_lead"' "$WORK/all.jsonl"
ok "receipts carry the payload's SHA-256" test "$(grep '"what":"receipt"' "$WORK/all.jsonl" | grep -c '"payload_sha256":"[0-9a-f]\{64\}"')" -ge 14
ok "a rejected webhook is a failure on the trail" grep -q '"outcome":"failure".*"what":"rejected"' "$WORK/all.jsonl"
ok "the credential header never reached the trail" bash -c "! grep -q sk_live_do_not_store '$WORK/all.jsonl' && grep -q '\"authorization\":\"\[redacted\]\"' '$WORK/all.jsonl'"
"$PG" audit export --case payout-P-1 -c "$CFG" >"$WORK/p1.jsonl" 2>/dev/null
ok "export --case: the case's records, its 12 receipts included" test "$(grep -c '"what":"receipt"' "$WORK/p1.jsonl")" = 12
ok "export --case: nothing of other cases" bash -c "! grep -q 'payout-P-2\|payout-P-UNKNOWN' '$WORK/p1.jsonl'"
ok "export --since tomorrow: nothing" test "$("$PG" audit export --since "$(date -u -d tomorrow +%Y-%m-%d)" -c "$CFG" 2>/dev/null | wc -l)" = 0
ok "export --since a bad time: exit 2" bash -c "'$PG' audit export --since yesterday-ish -c '$CFG' 2>/dev/null; test \$? = 2"

# ---- 4. metrics on every served port
m=$(curl -s "$AUD/metrics")
for metric in 'payguard_ingest_receipts_total{' 'payguard_validate_rejections_total{' 'payguard_validate_duplicates_total{' \
    'payguard_cases{instance="audit.0",state="executed"} 1' 'payguard_approvals_pending{' 'payguard_executions_total{' \
    'payguard_execute_retries_total{' 'payguard_ops_review_queue{' 'payguard_journal_fsync_seconds_total{'; do
    ok "audit's /metrics: $metric" grep -qF "$metric" <<<"$m"
done
ok "ingest's /metrics too" bash -c "curl -s '$URL/metrics' | grep -q '^payguard_cases{'"
ok "approve's /metrics too" bash -c "curl -s '$API/metrics' | grep -q '^payguard_cases{'"

# ---- 5. the case index, deleted and rebuilt
get ops_lead /cases/payout-P-1 >"$WORK/before-case.json"
get ops_lead '/cases?limit=1000' >"$WORK/before-list.json"
down "$CFG"
ok "after a stop the trail verifies, every record sealed" bash -c "'$PG' audit verify -c '$CFG' | grep -q ' 0 record(s) after it not yet sealed'"
rm -f "$D"/data/audit.0.cases.sqlite*
ok "group restarts without its case index" up "$CFG"
for _ in $(seq 1 50); do [ "$(code -H "Authorization: Bearer $(tok ops_lead)" "$AUD/cases/payout-P-1")" = 200 ] && break; sleep 0.2; done
get ops_lead /cases/payout-P-1 >"$WORK/after-case.json"
get ops_lead '/cases?limit=1000' >"$WORK/after-list.json"
ok "the rebuilt index answers GET /cases/{id} the same" cmp -s "$WORK/before-case.json" "$WORK/after-case.json"
ok "... and GET /cases the same" cmp -s "$WORK/before-list.json" "$WORK/after-list.json"

down "$CFG"

# ---- 6. tampering, on a copy
cp -a "$D/data" "$WORK/copy"
seg=$(ls "$WORK/copy/audit.0/"*.seg | head -1)
size=$(stat -c %s "$seg")
verify_copy() { "$PG" audit verify -c "$CFG" --pubkey "$D/data/audit-signing.pub" 2>&1 | tee "$WORK/verify.out"; }
swap_in() { rm -rf "$D/data.real" && mv "$D/data" "$D/data.real" && cp -a "$WORK/copy" "$D/data"; }
swap_back() { rm -rf "$D/data" && mv "$D/data.real" "$D/data"; }
printf '\x00' | dd of="$seg" bs=1 seek=$((size / 2)) conv=notrunc status=none
swap_in
verify_copy >/dev/null
ok "a byte flipped in the trail: verify fails" grep -q '^audit verify: FAILED' "$WORK/verify.out"
ok "... and names the first bad record" grep -q 'first bad record: #[0-9]' "$WORK/verify.out"
swap_back
rm -rf "$WORK/copy" && cp -a "$D/data" "$WORK/copy"
seg=$(ls "$WORK/copy/audit.0/"*.seg | tail -1)
truncate -s $(($(stat -c %s "$seg") * 2 / 3)) "$seg"
swap_in
verify_copy >/dev/null
ok "the trail's tail cut after a checkpoint: verify fails, says truncated" grep -q 'FAILED: the trail ends at #[0-9]* but the checkpoint .* seals #[0-9]*: records #[0-9]*\.\.#[0-9]* were truncated' "$WORK/verify.out"
swap_back
ok "the untouched trail still verifies" "$PG" audit verify -c "$CFG"

finish
