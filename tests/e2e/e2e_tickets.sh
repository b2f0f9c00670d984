#!/usr/bin/env bash
# e2e_tickets - tickets exactly once against a Jira and a ServiceNow that,
# like the real ones, ignore Idempotency-Key (CONTRACT.md §2.4,
# common/ticket.h): a ticket step searches for the case's ticket first and
# creates one only when none is found.
#   1. the sandbox's Jira and ServiceNow open a second ticket for a create
#      sent twice with the same key (what payguard has to cope with);
#   2. Jira, a normal case: a search, then one create (`payguard plan` says
#      so); the ticket carries payguard-<case id> and payguard-open_ticket;
#      recorded "created";
#   3. execute SIGKILLed after the create answered and before its record,
#      and before the call: after the restart still one ticket, recorded
#      "found existing ticket" in the first case (journal, trail, and the
#      case's timeline in audit's cases API);
#   4. the create answers 500 after making the ticket (a lost answer): no
#      second create is sent, one ticket; a create that fails without
#      making one (500 twice) is made once after a new search; a search
#      answering 503 is retried; a search answering 400 fails the step to
#      ops review (no ticket of the runbook, the failure ticket is opened);
#   5. an ops-review retry of a case whose failure ticket exists opens the
#      runbook's own ticket (the search is by step, not only by case);
#   6. a denial's comment on the case's ticket carries its marker and is
#      added once, even when execute is killed after adding it;
#   7. the same with ServiceNow (outside/servicenow): correlation_id and
#      correlation_display, one incident across a kill and a lost answer.
set -u
. "$(dirname "$0")/lib_e2e.sh"
. "$(dirname "$0")/lib_corpus.sh"

PORT=$(free_port)
APORT=$(free_port)
CFG=$(write_config tk "$PORT")
SBXURL=$(sandbox_url "$CFG")
D=$WORK/tk
cfg_merge "$CFG" <<CFG
approve
    public_url = http://127.0.0.1:$APORT
execute
    token_file = $ROOT/config/sandbox/write.token
    retry_base_ms = 50
    retry_max_ms = 200
    ticket_settle_ms = 300
CFG
use_execute_hooks "$D/fault" # execute that can be killed at a named step
URL=http://127.0.0.1:$PORT
API=http://127.0.0.1:$APORT
STRIPE_A=$E2E_SECRET
fault() { curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary "$1" "$SBXURL/_sandbox/faults"; }
decide() { curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $(tok "$1")" -d "{\"decision\":\"${3:-approve}\"}" "$API/approvals/$2/decisions"; }
calls() { curl -s "$SBXURL/_sandbox/calls?system=$1&limit=100000"; }
state() { curl -s "$SBXURL/_sandbox/state"; }
jdump() { "$BIN/payguard" journal dump -c "$CFG" "$1" 2>/dev/null; }
# executed CASE - wait until execute recorded the case's outcome; print it
executed() {
    for _ in $(seq 1 150); do
        local o
        o=$(jdump execute.0 | grep '"type":"executed"' | grep -F "\"case_key\":\"$1\"" | grep -o '"outcome":"[^"]*"' | tail -1 | cut -d'"' -f4)
        if [ -n "$o" ]; then
            echo "$o"
            return
        fi
        sleep 0.2
    done
}
# jira_tickets CASE [STEP] - issues in the sandbox carrying the case's label (and the step's)
jira_tickets() { state | grep -o "\"payguard-$1\",\"payguard-${2:-open_ticket}\"" | wc -l; }
# sn_tickets CASE [STEP] - incidents with the case as correlation_id (and the step's correlation_display)
sn_tickets() { state | grep -o "\"correlation_id\":\"$1\",\"correlation_display\":\"payguard-${2:-open_ticket}\"" | wc -l; }
# creates SYSTEM PATH CASE [STATUS] - create calls (POST PATH) of the case's ticket steps seen by the sandbox
creates() { calls "$1" | grep -o "\"method\":\"POST\",\"path\":\"$2\",\"query\":\"\",\"idempotency_key\":\"$3:[a-z_]*\"[^}]*\"status\":${4:-[0-9]*}" | wc -l; }
# effect CASE - the "effect" of the case's last finished ticket step ("created ticket PAY-3", ...)
effect() { jdump execute.0 | grep '"type":"step"' | grep -F "\"case_key\":\"$1\"" | grep -o '"effect":"[^"]*"' | tail -1 | cut -d'"' -f4; }
fire() { # N: a payout.failed for P-N, approved by the ops lead
    send_stripe "$(stripe_payout_body "evt_t_$1_$RANDOM" "P-$1" $((1000 + $1)) usd)" "$STRIPE_A" >/dev/null
    for _ in $(seq 1 50); do
        [ "$(decide ops_lead "payout-P-$1")" = 200 ] && return 0
        sleep 0.2
    done
    return 1
}

ok "group starts" up "$CFG"
seed_load_payouts "$CFG" 40

# ---- 1. what the real systems do: Idempotency-Key is not honoured
JBODY='{"fields":{"project":{"key":"PAY"},"summary":"twice","issuetype":{"name":"Task"},"priority":{"name":"High"},"labels":["payguard-by-hand"]}}'
for _ in 1 2; do
    curl -s -o /dev/null -X POST -H "Authorization: Bearer $(tok write)" -H 'Content-Type: application/json' \
        -H 'Idempotency-Key: same-key' --data-binary "$JBODY" "$SBXURL/jira/rest/api/2/issue"
done
ok "the sandbox's Jira opens two issues for one create sent twice with one Idempotency-Key" \
    test "$(state | grep -o '"labels":\["payguard-by-hand"\]' | wc -l)" = 2
SBODY='{"short_description":"twice","urgency":"3","correlation_id":"by-hand"}'
for _ in 1 2; do
    curl -s -o /dev/null -X POST -H "Authorization: Bearer $(tok write)" -H 'Content-Type: application/json' \
        -H 'Idempotency-Key: same-key' --data-binary "$SBODY" "$SBXURL/servicenow/api/now/table/incident"
done
ok "...and its ServiceNow two incidents" test "$(state | grep -o '"correlation_id":"by-hand"' | wc -l)" = 2
found=$(curl -s -H "Authorization: Bearer $(tok read)" "$SBXURL/jira/rest/api/2/search?jql=labels%20%3D%20%22payguard-by-hand%22&maxResults=1")
ok "the sandbox's Jira search answers Jira's shape (total 2, one issue listed)" \
    bash -c "echo '$found' | grep -q '\"total\":2,\"issues\":\[{\"expand\":\"\",\"id\":\"[0-9]*\",\"self\":\"[^\"]*\",\"key\":\"PAY-[0-9]*\"'"

# ---- 2. a normal case: search, then one create
fire 1
ok "P-1's runbook ran to the end" test "$(executed payout-P-1)" = done
ok "one Jira ticket labelled payguard-payout-P-1 and payguard-open_ticket" test "$(jira_tickets payout-P-1)" = 1
# the case's calls in order: its search (by query) and its create (by key)
order=$(calls jira | grep -o '"seq":[0-9]*,[^{]*\(jql=labels=\\"payguard-payout-P-1\\"&\|"idempotency_key":"payout-P-1:open_ticket"\)' |
    grep -o '"method":"[A-Z]*","path":"[^"]*"' | cut -d'"' -f4,8 --output-delimiter=' ' | paste -sd,)
ok "the search came first, by the case's label (CONTRACT.md §2.4), then the create ($order)" \
    test "$order" = "GET /rest/api/2/search,POST /rest/api/2/issue"
ok "one create call" test "$(creates jira /rest/api/2/issue payout-P-1)" = 1
ok "the step is recorded as having created the ticket" bash -c "[[ '$(effect payout-P-1)' == 'created ticket PAY-'* ]]"

"$BIN/payguard" plan payout-P-1 -c "$CFG" >"$WORK/plan1"
ok "payguard plan shows the search before the create" \
    bash -c "grep -A1 'open_ticket  *GET http://127.0.0.1:[0-9]*/jira/rest/api/2/search?jql=labels%3D%22payguard-payout-P-1%22&' '$WORK/plan1' | grep -q 'then, only if that finds nothing'"

# ---- 3. killed between the create and its record; and before the call
echo "after:open_ticket" >"$D/fault"
r0=$(restarts "$CFG" execute.0)
fire 2
ok "killed after the create answered: the runbook still finished" test "$(executed payout-P-2)" = done
ok "execute was restarted ($r0 -> $(restarts "$CFG" execute.0))" test "$(restarts "$CFG" execute.0)" -gt "$r0"
ok "still exactly one ticket for the case" test "$(jira_tickets payout-P-2)" = 1
ok "one create call; the restarted step found the ticket" \
    test "$(creates jira /rest/api/2/issue payout-P-2)/$(effect payout-P-2 | cut -d' ' -f1-3)" = "1/found existing ticket"
ok "the trail records what was found" \
    bash -c "'$BIN/payguard' journal dump -c '$CFG' audit.0 | grep '\"type\":\"step\"' | grep -F payout-P-2 | grep -q 'found existing ticket PAY-'"
UPORT=$(awk '/^audit/ {a = 1} a && $1 == "http_port" {print $3; exit}' "$CFG")
for _ in $(seq 1 50); do # audit's case index commits once a second
    curl -s -H "Authorization: Bearer $(tok ops_lead)" "http://127.0.0.1:$UPORT/cases/payout-P-2" >"$WORK/case2"
    grep -q 'found existing ticket' "$WORK/case2" && break
    sleep 0.2
done
ok "the case's timeline (audit's cases API) says the ticket was found, not created" \
    grep -q '"summary":"step open_ticket done: jira POST /rest/api/2/issue -> HTTP 200 after [0-9]* attempt(s): found existing ticket PAY-[0-9]*"' "$WORK/case2"
echo "before:open_ticket" >"$D/fault"
fire 3
ok "killed before the call: finished, one ticket" test "$(executed payout-P-3)/$(jira_tickets payout-P-3)" = "done/1"

# ---- 4. lost answers and failing calls
ok "fault: the next create takes effect, then answers 500" \
    test "$(fault '{"system":"jira","method":"POST","path_prefix":"/rest/api/2/issue","status":500,"count":1,"after_effect":true}')" = 201
fire 4
ok "lost answer: the runbook finished" test "$(executed payout-P-4)" = done
ok "lost answer: one ticket, from one create (answered 500); the new search found it" \
    test "$(jira_tickets payout-P-4)/$(creates jira /rest/api/2/issue payout-P-4)/$(creates jira /rest/api/2/issue payout-P-4 500)/$(effect payout-P-4 | cut -d' ' -f1-3)" = "1/1/1/found existing ticket"
fault '{"system":"jira","method":"POST","path_prefix":"/rest/api/2/issue","status":500,"count":2}' >/dev/null
fire 5
ok "a create failing twice without effect: finished, one ticket, made by the third create" \
    test "$(executed payout-P-5)/$(jira_tickets payout-P-5)/$(creates jira /rest/api/2/issue payout-P-5 500)/$(creates jira /rest/api/2/issue payout-P-5 201)" = "done/1/2/1"
fault '{"system":"jira","method":"GET","path_prefix":"/rest/api/2/search","status":503,"count":2}' >/dev/null
fire 6
ok "a search answering 503 twice is retried: finished, one ticket" test "$(executed payout-P-6)/$(jira_tickets payout-P-6)" = "done/1"
fault '{"system":"jira","method":"GET","path_prefix":"/rest/api/2/search","status":400,"count":1}' >/dev/null
fire 7
ok "a search refused (400): the step failed for good, to ops review" test "$(executed payout-P-7)" = ops_review
ok "...no ticket of the runbook, no create for it; the failure ticket was opened once" \
    test "$(jira_tickets payout-P-7)/$(jira_tickets payout-P-7 failure_ticket)/$(creates jira /rest/api/2/issue payout-P-7)" = "0/1/1"
ok "...and the review names the search" \
    bash -c "'$BIN/payguard' journal dump -c '$CFG' execute.0 | grep '\"type\":\"review\"' | grep -F payout-P-7 | grep -q 'GET /rest/api/2/search'"

# ---- 5. a retry after ops review: the runbook's ticket, beside the failure ticket
# (a retry is asked by one ops lead and approved by the other, once the
# trail has the case in ops review)
asked=no
for _ in $(seq 1 50); do
    "$BIN/payguard" review retry payout-P-7 --as ops_lead --token-file "$ROOT/config/sandbox/ops_lead.token" \
        --comment "Jira fixed" -c "$CFG" >/dev/null 2>&1 && asked=yes && break
    sleep 0.2
done
ok "the ops lead asks to retry P-7" test "$asked" = yes
for _ in $(seq 1 30); do
    [ "$(decide ops_lead_2 payout-P-7)" = 200 ] && break
    sleep 0.2
done
for _ in $(seq 1 100); do
    jdump execute.0 | grep '"type":"executed"' | grep -F 'payout-P-7' | grep -q '"outcome":"done"' && break
    sleep 0.2
done
ok "the retried open_ticket opened the runbook's own ticket (the failure ticket is another step's)" \
    test "$(jira_tickets payout-P-7)/$(jira_tickets payout-P-7 failure_ticket)" = "1/1"

# ---- 6. a denial's comment on the case's ticket, once, across a kill
key=$(effect payout-P-1 | sed 's/^created ticket //')
# approve's record of the case (the journal line's event body, without approve's seal), with a ticket_key
rec=$(jdump approve.0 | grep '"type":"approved"' | grep -F '"case_key":"payout-P-1"' | head -1 | grep -o '"body":{.*}' |
    sed 's/^"body"://; s/}}$//; s/,"seal":"[0-9a-f]*"}$/}/')
body=$(printf '%s' "$rec" | sed "s/^{/{\"ticket_key\":\"$key\",/")
echo "after:ticket_comment" >"$D/fault"
r0=$(restarts "$CFG" execute.0)
"$BIN/pg-push" -c "$CFG" --into execute.0 --type denied --case payout-P-1 --seal-key "$D/data/seal.key" --body "$body" >/dev/null
for _ in $(seq 1 100); do
    [ "$(jdump execute.0 | grep '"type":"executed"' | grep -cF '"case_key":"payout-P-1"')" -ge 2 ] && break
    sleep 0.2
done
comments=$(curl -s -H "Authorization: Bearer $(tok read)" "$SBXURL/jira/rest/api/2/issue/$key/comment")
ok "the denial's comment is on $key once, with its marker, though execute died after adding it" \
    test "$(echo "$comments" | grep -o '\[payguard:payout-P-1:ticket_comment\]' | wc -l)" = 1
ok "execute was killed after the comment answered, and restarted" test ! -f "$D/fault" -a "$(restarts "$CFG" execute.0)" -gt "$r0"
ok "the step after the restart found it" bash -c "jdump() { '$BIN/payguard' journal dump -c '$CFG' execute.0; }; jdump | grep '\"type\":\"step\"' | grep -F payout-P-1 | grep -q 'found existing comment'"

# ---- 7. ServiceNow
down "$CFG"
sed -i "s|^    jira = \(.*\)/jira$|    jira = \1/jira\n    servicenow = \1/servicenow|" "$CFG"
ok "the group restarts with outside/servicenow" up "$CFG"
fire 11
ok "ServiceNow: finished, one incident with correlation_id and correlation_display" \
    test "$(executed payout-P-11)/$(sn_tickets payout-P-11)" = "done/1"
ok "ServiceNow: searched by correlation_id first, then one create" \
    test "$(calls servicenow | grep -o 'sysparm_query=correlation_id=payout-P-11&sysparm_limit=20' | wc -l)/$(creates servicenow /api/now/table/incident payout-P-11)" = "1/1"
ok "ServiceNow: recorded as created" bash -c "[[ '$(effect payout-P-11)' == 'created ticket INC'* ]]"
echo "after:open_ticket" >"$D/fault"
fire 12
ok "ServiceNow, killed after the create answered: finished, one incident, found after the restart" \
    test "$(executed payout-P-12)/$(sn_tickets payout-P-12)/$(creates servicenow /api/now/table/incident payout-P-12)/$(effect payout-P-12 | cut -d' ' -f1-3)" = "done/1/1/found existing ticket"
fault '{"system":"servicenow","method":"POST","path_prefix":"/api/now/table/incident","status":502,"count":1,"after_effect":true}' >/dev/null
fire 13
ok "ServiceNow, a lost answer: finished, one incident, one create" \
    test "$(executed payout-P-13)/$(sn_tickets payout-P-13)/$(creates servicenow /api/now/table/incident payout-P-13)" = "done/1/1"
ok "no Jira call for the ServiceNow cases" test "$(calls jira | grep -o 'payout-P-1[123]' | wc -l)" = 0

down "$CFG"
finish
