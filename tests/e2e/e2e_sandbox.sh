#!/usr/bin/env bash
# e2e_sandbox - pg-sandbox, the stand-in for every outside system, driven
# with curl the way the pipeline and the other tests use it:
#   auth (401/403), the documented seed, the ledger's idempotency (201, 200
#   replay, 422, 400) and append-only rule (405), faults (500 x3 then
#   success with one effect, 429 + Retry-After, delays, a client timeout
#   whose retry replays, an answer lost after the effect), payout holds, Jira
#   (which, like Jira, ignores Idempotency-Key; its label search and comment
#   pages), ServiceNow (the same; its encoded queries), Teams, the LLM
#   (schema-built answer and raw override), bounds (413), persistence across
#   a restart, and /_sandbox/reset.
set -u
. "$(dirname "$0")/lib_e2e.sh"

PORT=$(free_port)
CFG=$WORK/sandbox.cfg
cat >"$CFG" <<CFG
payguard
    run_dir = $WORK/run
    data_dir = $WORK/data
sandbox
    port = $PORT
    tokens_file = $ROOT/config/sandbox/tokens
CFG
U=http://127.0.0.1:$PORT
RD="Authorization: Bearer sbx_read_demo_token"
WR="Authorization: Bearer sbx_write_demo_token"
SBX_PID=

# start - run the sandbox in the background, wait for its health check
# (E2E_SANDBOX_WRAP, e.g. "valgrind --leak-check=full", runs it under a tool)
start() {
    PAYGUARD_LOG_LEVEL=warn ${E2E_SANDBOX_WRAP:-} "$BIN/pg-sandbox" -c "$CFG" 2>>"$WORK/sandbox.log" &
    SBX_PID=$!
    for _ in $(seq 1 300); do
        curl -fs "$U/_sandbox/healthz" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "# sandbox did not come up" >&2
    sed 's/^/# /' "$WORK/sandbox.log" >&2
    return 1
}

# stop - SIGTERM, and wait for a clean exit (status 0)
stop() {
    kill -TERM "$SBX_PID" 2>/dev/null
    wait "$SBX_PID"
    local rc=$?
    SBX_PID=
    return $rc
}
trap '[ -n "$SBX_PID" ] && kill -TERM $SBX_PID 2>/dev/null' EXIT

code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
# has TEXT PATTERN - fixed-string search, for readable checks
has() { grep -qF -- "$2" <<<"$1"; }
# count TEXT PATTERN - how many times a fixed string occurs
count() { grep -oF -- "$2" <<<"$1" | wc -l; }
# last_seq - the newest calls log sequence number (0 if none)
last_seq() { curl -s "$U/_sandbox/calls" | grep -o '"seq":[0-9]*' | tail -1 | cut -d: -f2 | sed 's/^$/0/'; }
entry() { printf '{"type":"%s","ref":"%s","amount":%s,"currency":"%s","case_id":"%s","memo":"e2e"}' "$@"; }

ok "sandbox starts on a free port" start

# ---- auth
ok "no token is 401" test "$(code "$U/payments/payouts/P-10492")" = 401
ok "an unknown token is 401" test "$(code -H 'Authorization: Bearer nope' "$U/ledger/entries?ref=rf_123")" = 401
b=$(curl -s -H "$RD" -H 'Idempotency-Key: e2e-ro' -d "$(entry refund_succeeded rf_123 1850 USD case-ro)" "$U/ledger/entries")
ok "a read token on a POST is 403 read-only token" test "$b" = '{"error":"read-only token"}'

# ---- the seed, exactly as documented
b=$(curl -s -H "$RD" "$U/payments/payouts/P-10492")
ok "seed payout P-10492" test "$b" = '{"id":"P-10492","status":"paid","amount":1250000,"currency":"USD","beneficiary_id":"B-5521"}'
b=$(curl -s -H "$RD" "$U/psp/v1/payouts/po_10492")
ok "PSP payout po_10492 failed account_closed for P-10492" \
    bash -c 'grep -q "\"status\":\"failed\"" <<<"$0" && grep -q "\"failure_code\":\"account_closed\"" <<<"$0" && grep -q "\"metadata\":{\"payout_id\":\"P-10492\"}" <<<"$0"' "$b"
b=$(curl -s -H "$RD" "$U/ledger/entries?ref=rf_123")
ok "ledger for rf_123: one refund_initiated 1850 USD, no refund_succeeded" \
    bash -c '[ "$(grep -o "\"type\":\"[a-z_]*\"" <<<"$0")" = "\"type\":\"refund_initiated\"" ] && grep -q "\"amount\":1850,\"currency\":\"USD\",\"ref\":\"rf_123\"" <<<"$0" && grep -q "\"created_at\":\"20[0-9-]*T[0-9:]*Z\"" <<<"$0"' "$b"
b=$(curl -s -H "$RD" "$U/psp/v1/refunds/rf_456")
ok "PSP refund rf_456 failed (lower-case currency, metadata.payment_id)" \
    bash -c 'grep -q "\"currency\":\"usd\"" <<<"$0" && grep -q "\"status\":\"failed\"" <<<"$0" && grep -q "\"payment_id\":\"pay_12\"" <<<"$0"' "$b"
ok "PSP 404 has Stripe's shape" test "$(curl -s -H "$RD" "$U/psp/v1/refunds/rf_x")" = \
    '{"error":{"type":"invalid_request_error","message":"No such refund: '"'rf_x'"'"}}'
ok "an unknown payout is 404" test "$(code -H "$RD" "$U/payments/payouts/P-404")" = 404
b=$(curl -s -H "$RD" "$U/payments/payments/pay_44")
ok "seed payment pay_44" test "$b" = '{"id":"pay_44","amount":9900,"currency":"EUR","customer_id":"cus_4","customer_risk":"high","flagged":true,"refunded_amount":2500}'

# ---- ledger idempotency and append-only
E=$(entry refund_succeeded rf_123 1850 USD case-e2e-1)
r1=$(curl -s -w ' %{http_code}' -H "$WR" -H 'Idempotency-Key: case-e2e-1:ledger' -d "$E" "$U/ledger/entries")
id1=$(grep -o '"id":"[^"]*"' <<<"$r1")
ok "POST /entries is 201 with an id" bash -c '[[ "$0" == *" 201" ]] && [ -n "$1" ]' "$r1" "$id1"
r2=$(curl -s -w ' %{http_code}' -H "$WR" -H 'Idempotency-Key: case-e2e-1:ledger' -d "$E" "$U/ledger/entries")
ok "the same key and body again is 200 with the same id" test "$r2" = "{$id1} 200"
E2=$(entry refund_succeeded rf_123 1851 USD case-e2e-1)
ok "the same key with another body is 422" \
    test "$(code -H "$WR" -H 'Idempotency-Key: case-e2e-1:ledger' -d "$E2" "$U/ledger/entries")" = 422
ok "no Idempotency-Key is 400" test "$(curl -s -H "$WR" -d "$E" "$U/ledger/entries")" = \
    '{"error":"Idempotency-Key header required"}'
ok "DELETE /entries is 405 (append-only)" test "$(code -X DELETE -H "$WR" "$U/ledger/entries")" = 405
ok "PUT /entries/{id} is 405 (append-only)" test "$(code -X PUT -H "$WR" -d '{}' "$U/ledger/entries/le_000001")" = 405
b=$(curl -s -H "$WR" -H 'Idempotency-Key: e2e-bad-1' -d "$(entry refund_done rf_123 1850 USD c)" "$U/ledger/entries")
ok "an unknown entry type is 400 with the reason" has "$b" "is not an entry type"
b=$(curl -s -H "$WR" -H 'Idempotency-Key: e2e-bad-2' -d "$(entry refund_failed rf_123 -5 USD c)" "$U/ledger/entries")
ok "a negative amount is 400 with the reason" test "$b" = '{"error":"amount must be a positive integer (minor units)"}'
b=$(curl -s -H "$WR" -H 'Idempotency-Key: e2e-bad-3' -d "$(entry refund_failed rf_123 5 usd c)" "$U/ledger/entries")
ok "a lower-case currency is 400 with the reason" has "$b" "three upper-case letters"
b=$(curl -s -H "$WR" -H 'Idempotency-Key: e2e-bad-4' -d '{"type":"refund_failed","ref":"rf_1","amount":5,"currency":"USD","case_id":"c","extra":1}' "$U/ledger/entries")
ok "an unknown field is 400 with the reason" test "$b" = "{\"error\":\"unknown field 'extra'\"}"
head -c 1100000 /dev/zero | tr '\0' 'a' >"$WORK/big"
ok "a body over 1 MiB is 413" \
    test "$(code -H "$WR" -H 'Idempotency-Key: e2e-big' --data-binary @"$WORK/big" "$U/ledger/entries")" = 413

# ---- faults: 500 x3, then the retry succeeds with exactly one effect
since=$(last_seq)
ok "a 500 x3 fault is accepted" test "$(code -d '{"system":"ledger","method":"POST","path_prefix":"/entries","status":500,"count":3}' "$U/_sandbox/faults")" = 201
E=$(entry refund_failed rf_789 3000 USD case-e2e-2)
codes=""
for _ in 1 2 3 4; do
    codes="$codes $(code -H "$WR" -H 'Idempotency-Key: case-e2e-2:ledger' -d "$E" "$U/ledger/entries")"
done
ok "the client sees 500 500 500 201" test "$codes" = " 500 500 500 201"
calls=$(curl -s "$U/_sandbox/calls?system=ledger&since=$since")
ok "the calls log shows 3 x 500 then 201" \
    test "$(grep -o '"status":[0-9]*' <<<"$calls" | tr '\n' ' ')" = '"status":500 "status":500 "status":500 "status":201 '
ok "faulted calls carry their idempotency key, the three 500s their fault id" \
    bash -c '[ "$(grep -oF "\"idempotency_key\":\"case-e2e-2:ledger\"" <<<"$0" | wc -l)" = 4 ] && [ "$(grep -o "\"fault_id\":[0-9]" <<<"$0" | wc -l)" = 3 ]' "$calls"
state=$(curl -s "$U/_sandbox/state")
ok "state holds exactly one new entry for the faulted call" test "$(count "$state" '"case_id":"case-e2e-2"')" = 1

# ---- 429 with Retry-After
curl -s -o /dev/null -d '{"system":"payments","method":"GET","status":429,"retry_after_s":7}' "$U/_sandbox/faults"
h=$(curl -s -D - -o /dev/null -H "$RD" "$U/payments/payouts/P-20931" | tr -d '\r')
ok "a 429 fault answers 429 with Retry-After: 7" bash -c 'grep -q "^HTTP/1.1 429" <<<"$0" && grep -qi "^Retry-After: 7$" <<<"$0"' "$h"
ok "the next call is normal again" test "$(code -H "$RD" "$U/payments/payouts/P-20931")" = 200

# ---- a slow answer
curl -s -o /dev/null -d '{"system":"psp","status":0,"delay_ms":1200}' "$U/_sandbox/faults"
t=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -H "$RD" "$U/psp/v1/refunds/rf_123")
ok "a delay fault holds a 200 back about 1.2 s (got $t)" awk -v t="$t" 'BEGIN { split(t, a, " "); exit !(a[1] == 200 && a[2] >= 1.15) }'
t=$(curl -s -o /dev/null -w '%{time_total}' -H "$RD" "$U/psp/v1/refunds/rf_123")
ok "other calls are not slowed (got $t s)" awk -v t="$t" 'BEGIN { exit !(t < 0.5) }'

# ---- a client timeout: the write happened; the retry with its key replays it
curl -s -o /dev/null -d '{"system":"ledger","method":"POST","status":0,"delay_ms":1500}' "$U/_sandbox/faults"
E=$(entry refund_succeeded rf_900 2500 EUR case-e2e-3)
curl -s -m 0.4 -o /dev/null -H "$WR" -H 'Idempotency-Key: case-e2e-3:ledger' -d "$E" "$U/ledger/entries"
ok "the client timed out (curl exit 28)" test $? = 28
r=$(curl -s -w ' %{http_code}' -H "$WR" -H 'Idempotency-Key: case-e2e-3:ledger' -d "$E" "$U/ledger/entries")
ok "its retry answers 200 with the entry made before the timeout" bash -c '[[ "$0" == *"\"id\":\"le_"*" 200" ]]' "$r"
ok "one entry for case-e2e-3" test "$(count "$(curl -s "$U/_sandbox/state")" '"case_id":"case-e2e-3"')" = 1

# ---- a lost answer: the write happens, the client is told 503
ok "after_effect needs POST and an error status" \
    test "$(code -d '{"system":"ledger","method":"GET","status":503,"after_effect":true}' "$U/_sandbox/faults")/$(code -d '{"system":"ledger","status":0,"after_effect":true}' "$U/_sandbox/faults")" = 400/400
curl -s -o /dev/null -d '{"system":"ledger","method":"POST","status":503,"after_effect":true}' "$U/_sandbox/faults"
E=$(entry refund_succeeded rf_901 2600 EUR case-e2e-3b)
ok "an after_effect fault answers 503" test "$(code -H "$WR" -H 'Idempotency-Key: case-e2e-3b:ledger' -d "$E" "$U/ledger/entries")" = 503
ok "...though the entry was made" test "$(count "$(curl -s "$U/_sandbox/state")" '"case_id":"case-e2e-3b"')" = 1
ok "...and its retry with the key replays it (200), still one entry" \
    bash -c '[ "$(curl -s -o /dev/null -w "%{http_code}" -H "$1" -H "Idempotency-Key: case-e2e-3b:ledger" -d "$2" "$0/ledger/entries")" = 200 ] && [ "$(curl -s "$0/_sandbox/state" | grep -oF "\"case_id\":\"case-e2e-3b\"" | wc -l)" = 1 ]' "$U" "$WR" "$E"
ok "DELETE /_sandbox/faults clears them" bash -c "curl -s -X DELETE '$U/_sandbox/faults' | grep -q '\"deleted\"'"

# ---- payout hold
b=$(curl -s -H "$WR" -H 'Idempotency-Key: case-e2e-4:hold' -d '{"case_id":"case-e2e-4","reason":"late failure"}' "$U/payments/payouts/P-10492/hold")
ok "hold answers previous_status paid" test "$b" = '{"id":"P-10492","status":"on_hold","previous_status":"paid"}'
ok "GET shows the payout on_hold" has "$(curl -s -H "$RD" "$U/payments/payouts/P-10492")" '"status":"on_hold"'
b=$(curl -s -H "$WR" -H 'Idempotency-Key: case-e2e-4:ben' -d '{"case_id":"case-e2e-4","reason":"late failure"}' "$U/payments/beneficiaries/B-5521/hold")
ok "beneficiary hold answers on_hold" test "$b" = '{"id":"B-5521","status":"on_hold"}'
b=$(curl -s -w ' %{http_code}' -H "$WR" -H 'Idempotency-Key: case-e2e-4:block' -d '{"ref":"rf_456","case_id":"case-e2e-4","reason":"PSP failed"}' "$U/payments/comms/blocks")
ok "comms block is 201 with an id" bash -c '[[ "$0" == "{\"id\":\"cb_"*" 201" ]]' "$b"

# ---- Jira
J='{"fields":{"project":{"key":"OPS"},"summary":"Payout P-10492 failed after paid","description":"held","issuetype":{"name":"Task"},"priority":{"name":"Highest"},"labels":["payguard"]}}'
b=$(curl -s -w ' %{http_code}' -H "$WR" -H 'Idempotency-Key: case-e2e-4:ticket' -d "$J" "$U/jira/rest/api/2/issue")
ok "Jira issue created: 201 OPS-1" bash -c '[[ "$0" == *"\"key\":\"OPS-1\""*" 201" ]]' "$b"
b=$(curl -s -w ' %{http_code}' -H "$WR" -H 'Idempotency-Key: case-e2e-4:comment' -d '{"body":"approved by treasury"}' "$U/jira/rest/api/2/issue/OPS-1/comment")
ok "Jira comment is 201" bash -c '[[ "$0" == *" 201" ]]' "$b"
ok "Jira GET shows the issue with its comment" has "$(curl -s -H "$RD" "$U/jira/rest/api/2/issue/OPS-1")" '"body":"approved by treasury"'
b=$(curl -s -H "$WR" -H 'Idempotency-Key: e2e-jira-bad' -d '{"fields":{"project":{"key":"OPS"},"summary":"x","issuetype":{"name":"Task"},"priority":{"name":"Urgent"}}}' "$U/jira/rest/api/2/issue")
ok "a bad Jira priority is 400 in Jira's error shape" has "$b" '"errors":{"priority":'
# Jira's search and comment list, what payguard's ticket steps read (CONTRACT.md §2.4)
JL='{"fields":{"project":{"key":"OPS"},"summary":"labelled","issuetype":{"name":"Task"},"priority":{"name":"High"},"labels":["payguard-case-e2e-6","payguard-open_ticket"]}}'
for _ in 1 2; do curl -s -o /dev/null -H "$WR" -H 'Idempotency-Key: case-e2e-6:open_ticket' -d "$JL" "$U/jira/rest/api/2/issue"; done
q='jql=labels%20%3D%20%22payguard-case-e2e-6%22%20AND%20labels%20%3D%20%22payguard-open_ticket%22'
b=$(curl -s -H "$RD" "$U/jira/rest/api/2/search?$q&maxResults=1&fields=key")
ok "Jira ignores Idempotency-Key: the create sent twice made two issues; the search counts both, lists one" \
    bash -c '[[ "$0" == *"\"maxResults\":1,\"total\":2,\"issues\":[{"*"\"key\":\"OPS-2\",\"fields\":{}}]}" ]]' "$b"
ok "a label that is not there: total 0" has "$(curl -s -H "$RD" "$U/jira/rest/api/2/search?jql=labels%3Dnope")" '"total":0,"issues":[]'
ok "both labels must match (AND)" has "$(curl -s -H "$RD" "$U/jira/rest/api/2/search?jql=labels%3D%22payguard-case-e2e-6%22%20AND%20labels%3Dother")" '"total":0'
ok "fields=labels returns the labels" has "$(curl -s -H "$RD" "$U/jira/rest/api/2/search?$q&fields=labels")" '"fields":{"labels":["payguard-case-e2e-6","payguard-open_ticket"]}'
ok "JQL the sandbox cannot read is 400 in Jira's shape" \
    has "$(curl -s -w ' %{http_code}' -H "$RD" "$U/jira/rest/api/2/search?jql=project%3DOPS%20ORDER%20BY%20key")" '"errorMessages":["Error in the JQL Query:'
for c in one two three; do curl -s -o /dev/null -H "$WR" -d "{\"body\":\"$c\"}" "$U/jira/rest/api/2/issue/OPS-2/comment"; done
b=$(curl -s -H "$RD" "$U/jira/rest/api/2/issue/OPS-2/comment?orderBy=-created&maxResults=2")
ok "comments newest first, a page of 2 of 3" \
    bash -c '[[ "$0" == "{\"startAt\":0,\"maxResults\":2,\"total\":3,\"comments\":[{"*"\"body\":\"three\""*"\"body\":\"two\""* ]] && [[ "$0" != *"\"one\""* ]]' "$b"
ok "a bad orderBy is 400" test "$(code -H "$RD" "$U/jira/rest/api/2/issue/OPS-2/comment?orderBy=summary")" = 400

# ---- ServiceNow
b=$(curl -s -w ' %{http_code}' -H "$WR" -H 'Idempotency-Key: case-e2e-5:ticket' -d '{"short_description":"Refund rf_456 mismatch","description":"PSP failed, ledger succeeded","urgency":"1","correlation_id":"case-e2e-5"}' "$U/servicenow/api/now/table/incident")
ok "ServiceNow incident: 201 INC0010001 with a sys_id" bash -c '[[ "$0" == *"\"number\":\"INC0010001\""*" 201" ]] && grep -q "\"sys_id\":\"[0-9a-f]\{32\}\"" <<<"$0"' "$b"
SN='{"short_description":"again","urgency":"3","correlation_id":"case-e2e-5","correlation_display":"payguard-failure_ticket"}'
curl -s -o /dev/null -H "$WR" -H 'Idempotency-Key: case-e2e-5:ticket' -d "$SN" "$U/servicenow/api/now/table/incident"
b=$(curl -s -H "$RD" "$U/servicenow/api/now/table/incident?sysparm_query=correlation_id%3Dcase-e2e-5&sysparm_fields=number")
ok "ServiceNow ignores Idempotency-Key: two incidents for the case" test "$b" = '{"result":[{"number":"INC0010001"},{"number":"INC0010002"}]}'
b=$(curl -s -H "$RD" "$U/servicenow/api/now/table/incident?sysparm_query=correlation_id%3Dcase-e2e-5%5Ecorrelation_display%3Dpayguard-failure_ticket&sysparm_limit=1&sysparm_fields=sys_id%2Cnumber")
ok "an encoded query with ^ (AND), a limit and fields" bash -c '[[ "$0" == "{\"result\":[{\"sys_id\":\""*"\",\"number\":\"INC0010002\"}]}" ]]' "$b"
ok "a query on a field the sandbox does not filter is 400" \
    test "$(code -H "$RD" "$U/servicenow/api/now/table/incident?sysparm_query=priority%3D1")" = 400

# ---- Teams
CARD='{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive","content":{"type":"AdaptiveCard","version":"1.4","body":[{"type":"TextBlock","text":"case-e2e-4 held"}],"actions":[{"type":"Action.OpenUrl","title":"Approve","url":"http://127.0.0.1/approvals"}]}}]}'
ok "a Teams card is 202 (no token needed)" test "$(code -H 'Content-Type: application/json' -d "$CARD" "$U/teams/webhook")" = 202
ok "a Teams message without attachments is 400" test "$(code -d '{"type":"message","text":"hi"}' "$U/teams/webhook")" = 400
ok "the card is stored" has "$(curl -s "$U/_sandbox/state")" '"text":"case-e2e-4 held"'

# ---- LLM
SCHEMA='{"type":"object","properties":{"action":{"type":"string","enum":["hold","release"]},"confidence":{"type":"number"},"reasons":{"type":"array","items":{"type":"string"}},"escalate":{"type":"boolean"},"note":{"type":"string"}},"required":["action","confidence","reasons","escalate"],"additionalProperties":false}'
REQ='{"model":"sandbox","messages":[{"role":"system","content":"triage"},{"role":"user","content":"P-10492 failed"}],"response_format":{"type":"json_schema","json_schema":{"name":"triage","strict":true,"schema":'$SCHEMA'}}}'
b=$(curl -s -H "$RD" -d "$REQ" "$U/llm/v1/chat/completions")
ok "LLM answers a chat.completion" bash -c 'grep -q "\"object\":\"chat.completion\"" <<<"$0" && grep -q "\"finish_reason\":\"stop\"" <<<"$0"' "$b"
ok "its content is JSON built from the schema's required properties" \
    has "$b" '"content":"{\"action\":\"hold\",\"confidence\":0.8,\"reasons\":[],\"escalate\":false}"'
ok "the LLM wants a token" test "$(code -d "$REQ" "$U/llm/v1/chat/completions")" = 401
curl -s -o /dev/null -d '{"content":"Sure! {not json"}' "$U/_sandbox/llm"
ok "an override is returned verbatim" has "$(curl -s -H "$RD" -d "$REQ" "$U/llm/v1/chat/completions")" '"content":"Sure! {not json"'
curl -s -o /dev/null -X DELETE "$U/_sandbox/llm"
ok "DELETE /_sandbox/llm restores schema answers" has "$(curl -s -H "$RD" -d "$REQ" "$U/llm/v1/chat/completions")" '"content":"{\"action\":\"hold\"'

# ---- concurrent retries of one write: one effect
E=$(entry refund_failed rf_789 3000 USD case-e2e-6)
seq 1 16 | xargs -P 16 -I{} curl -s -o /dev/null -w '%{http_code}\n' -H "$WR" -H 'Idempotency-Key: case-e2e-6:ledger' \
    -d "$E" "$U/ledger/entries" >"$WORK/concurrent"
ok "16 concurrent same-key POSTs: one 201, fifteen 200" \
    test "$(sort "$WORK/concurrent" | uniq -c | awk '{printf "%s:%s ", $2, $1}')" = "200:15 201:1 "
ok "and one entry" test "$(count "$(curl -s "$U/_sandbox/state")" '"case_id":"case-e2e-6"')" = 1

# ---- more of the systems' edges
ok "a comment on an unknown Jira issue is 404" \
    test "$(code -H "$WR" -H 'Idempotency-Key: e2e-c404' -d '{"body":"x"}' "$U/jira/rest/api/2/issue/NOPE-9/comment")" = 404
b=$(curl -s -H "$RD" -d '{"model":"m","messages":[{"role":"user","content":"hi"}]}' "$U/llm/v1/chat/completions")
ok "an LLM request without a schema gets {}" has "$b" '"content":"{}"'
ok "an LLM request without messages is 400" \
    test "$(code -H "$RD" -d '{"model":"m","messages":[]}' "$U/llm/v1/chat/completions")" = 400
b=$(curl -s -X POST -d '{"payouts":[{"id":"P-E2E","status":"paid","amount":4200,"currency":"usd","beneficiary_id":"B-E2E"}],"entries":[{"type":"payout_paid","ref":"P-E2E","amount":4200,"currency":"USD"}]}' "$U/_sandbox/seed")
ok "POST /_sandbox/seed adds a payout and its entry" test "$b" = '{"payouts":1,"entries":1}'
ok "the seeded payout is served (currency upper-cased)" test "$(curl -s -H "$RD" "$U/payments/payouts/P-E2E")" = \
    '{"id":"P-E2E","status":"paid","amount":4200,"currency":"USD","beneficiary_id":"B-E2E"}'
ok "a bad seed is 400 with the record named, and changes nothing" \
    bash -c '[ "$(curl -s -d "{\"payouts\":[{\"id\":\"P-BAD\",\"status\":\"paid\",\"amount\":1,\"currency\":\"USD\",\"beneficiary_id\":\"B\"},{\"id\":\"P-BAD2\",\"status\":\"lost\"}]}" "$0/_sandbox/seed")" = "{\"error\":\"payouts[1]: status '"'lost'"' is not one of the known values\"}" ] && [ "$(curl -s -o /dev/null -w "%{http_code}" -H "$1" "$0/payments/payouts/P-BAD")" = 404 ]' "$U" "$RD"

# ---- persistence across a restart
ok "SIGTERM stops the sandbox cleanly (exit 0)" stop
ok "it starts again on the same database" start
b=$(curl -s -H "$RD" "$U/ledger/entries?ref=rf_123")
ok "the entry posted before the restart is still there ($id1)" has "$b" "$id1"
ok "the idempotency key survived too (replay 200)" \
    test "$(code -H "$WR" -H 'Idempotency-Key: case-e2e-1:ledger' -d "$(entry refund_succeeded rf_123 1850 USD case-e2e-1)" "$U/ledger/entries")" = 200
ok "the hold survived" has "$(curl -s -H "$RD" "$U/payments/payouts/P-10492")" '"status":"on_hold"'

# ---- reset restores the seed
ok "POST /_sandbox/reset" test "$(code -X POST "$U/_sandbox/reset")" = 200
ok "P-10492 is paid again" test "$(curl -s -H "$RD" "$U/payments/payouts/P-10492")" = \
    '{"id":"P-10492","status":"paid","amount":1250000,"currency":"USD","beneficiary_id":"B-5521"}'
b=$(curl -s -H "$RD" "$U/ledger/entries?ref=rf_123")
ok "rf_123 has only its seeded entry" test "$(count "$b" '"type"')" = 1
state=$(curl -s "$U/_sandbox/state")
ok "the seed's ten ledger entries, no issues, no cards" \
    bash -c '[ "$(grep -o "\"id\":\"le_[0-9]*\"" <<<"$0" | wc -l)" = 10 ] && grep -q "\"jira_issues\":\[\]" <<<"$0" && grep -q "\"teams_cards\":\[\]" <<<"$0"' "$state"
ok "Jira numbering restarts at OPS-1" has "$(curl -s -H "$WR" -H 'Idempotency-Key: e2e-after-reset' -d "$J" "$U/jira/rest/api/2/issue")" '"key":"OPS-1"'
ok "SIGTERM stops the sandbox cleanly again" stop

# ---- the collector (sandbox/otlp.c)
ok "the sandbox is up again for its collector" start
SPAN='{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"payguard-e2e"}}]},"scopeSpans":[{"scope":{"name":"e2e"},"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","name":"e2e span","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2","attributes":[]}]}]}]}'
ok "POST /otlp/v1/traces takes an ExportTraceServiceRequest: 200" test "$(code -H 'Content-Type: application/json' -d "$SPAN" "$U/otlp/v1/traces")" = 200
ok "GET /_sandbox/spans?trace_id= lists it, with its service" \
    has "$(curl -s "$U/_sandbox/spans?trace_id=4bf92f3577b34da6a3ce929d0e0e4736")" '"service":"payguard-e2e"'
ok "a body that is not one: 400" test "$(code -H 'Content-Type: application/json' -d '{"spans":[]}' "$U/otlp/v1/traces")" = 400
ok "a span without its ids: 400" test "$(code -H 'Content-Type: application/json' -d "${SPAN/00f067aa0ba902b7/x}" "$U/otlp/v1/traces")" = 400
ok "GET /otlp/v1/traces: 405" test "$(code "$U/otlp/v1/traces")" = 405
ok "SIGTERM stops it" stop

# ---- a store of an older schema (1: no label index, no correlation_display, no
# after_effect; nor what 3 added: no psp_events, no query_has; nor 4's: no spans,
# no calls.traceparent) is upgraded
DB=$WORK/data/sandbox.sqlite
sqlite3 "$DB" "DROP INDEX sn_incidents_correlation; ALTER TABLE sn_incidents DROP COLUMN correlation_display;
    ALTER TABLE faults DROP COLUMN after_effect; DROP TABLE jira_labels;
    ALTER TABLE faults DROP COLUMN query_has; DROP TABLE psp_events;
    ALTER TABLE calls DROP COLUMN traceparent; DROP TABLE spans; PRAGMA user_version=1;"
ok "a version-1 store starts" start
ok "...upgraded to version 4" test "$(sqlite3 "$DB" 'PRAGMA user_version')" = 4
ok "...with the Events API's table and the faults' query_has" \
    test "$(sqlite3 "$DB" "SELECT COUNT(*) FROM sqlite_master WHERE name = 'psp_events'")$(sqlite3 "$DB" "SELECT COUNT(*) FROM pragma_table_info('faults') WHERE name IN ('query_has', 'after_effect')")" = 12
ok "...with version 4's spans table and the calls' traceparent" \
    test "$(sqlite3 "$DB" "SELECT COUNT(*) FROM sqlite_master WHERE name = 'spans'")$(sqlite3 "$DB" "SELECT COUNT(*) FROM pragma_table_info('calls') WHERE name = 'traceparent'")" = 11
ok "...its issues are found by label (the index was filled)" \
    has "$(curl -s -H "$RD" "$U/jira/rest/api/2/search?jql=labels%3Dpayguard")" '"total":1,'
ok "SIGTERM stops the upgraded sandbox cleanly" stop

finish
