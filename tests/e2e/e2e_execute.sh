#!/usr/bin/env bash
# e2e_execute - runbooks, exactly once, through the real processes and the
# sandbox (CONTRACT.md §2, §5):
#   1. the seeds' two payout and two refund examples: exactly the calls of
#      §5, once each, with their Idempotency-Keys;
#   2. the ledger answering 500 three times then 201: one entry;
#   3. the ledger answering 400: no later step runs, the case is in ops
#      review with a Highest ticket, and no customer-facing step ran;
#   4. execute SIGKILLed just before and just after each outbound call of the
#      payout runbook: after the restart every effect exists exactly once;
#   5. a storm of 12 identical events and a decision posted twice: one run;
#   6. `payguard plan CASE` prints the calls without making them;
#   7. release_hold_on_failure releases the hold of a failed ledger step;
#   8. with execute/retention_s, the records of a failed runbook go, and
#      after a restart the ops-review queue still holds it (review store):
#      `payguard review` lists it and an approved retry re-runs its plan;
#   9. a retry comment cut inside a UTF-8 character keeps the retry's reason.
set -u
. "$(dirname "$0")/lib_e2e.sh"
. "$(dirname "$0")/lib_corpus.sh"

PORT=$(free_port)
APORT=$(free_port)
CFG=$(write_config ex "$PORT")
SBXURL=$(sandbox_url "$CFG")
D=$WORK/ex
cfg_merge "$CFG" <<CFG
approve
    public_url = http://127.0.0.1:$APORT
execute
    token_file = $ROOT/config/sandbox/write.token
    retry_base_ms = 50
    retry_max_ms = 200
CFG
use_execute_hooks "$D/fault" # execute that can be killed at a named step
URL=http://127.0.0.1:$PORT
API=http://127.0.0.1:$APORT
STRIPE_A=$E2E_SECRET
STD_KEY=$(grep -v '^#' "$ROOT/config/sandbox/standard.secrets" | head -1 | sed 's/^whsec_//')
sandbox() { curl -s -o /dev/null -X "$1" -H 'Content-Type: application/json' --data-binary "${3:-}" "$SBXURL/_sandbox/$2"; }
decide() { curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $(tok "$1")" -d "{\"decision\":\"${3:-approve}\"}" "$API/approvals/$2/decisions"; }
# review WHO CASE retry|close - POST an ops-review action; the HTTP status
review() { curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $(tok "$1")" -d '{"comment":"e2e"}' "$API/reviews/$2/$3"; }
# in_review CASE - wait until the trail's case index has CASE in ops review
# (what approve asks audit before a retry or a close)
in_review() {
    for _ in $(seq 1 50); do
        "$BIN/payguard" case show "$1" -c "$CFG" --token-file "$ROOT/config/sandbox/ops_lead.token" 2>/dev/null |
            grep -q 'state: *ops_review' && return 0
        sleep 0.2
    done
    return 1
}
calls() { curl -s "$SBXURL/_sandbox/calls?system=$1&limit=100000"; }
# key_calls SYSTEM KEY [STATUS] - how many calls carried this Idempotency-Key (with that status)
key_calls() { calls "$1" | grep -o "\"idempotency_key\":\"$2\"[^}]*\"status\":${3:-[0-9]*}" | wc -l; }
# executed CASE - wait until execute recorded the case's outcome; print it
executed() {
    for _ in $(seq 1 150); do
        local o
        o=$("$BIN/payguard" journal dump -c "$CFG" execute.0 2>/dev/null | grep '"type":"executed"' |
            grep -F "\"case_key\":\"$1\"" | grep -o '"outcome":"[^"]*"' | tail -1 | cut -d'"' -f4)
        if [ -n "$o" ]; then
            echo "$o"
            return
        fi
        sleep 0.2
    done
}
# jira_issues CASE - tickets the sandbox holds for a case (the effect, not the calls)
jira_issues() { curl -s "$SBXURL/_sandbox/state" | grep -o '"summary":"[^"]*'"${1#*-}"'[,"][^"]*"' | grep -vc 'failed for case'; }
entries() { curl -s "$SBXURL/ledger/entries?ref=$1" -H "Authorization: Bearer $(tok read)" 2>/dev/null; }
nentries() { entries "$1" | grep -o "\"type\":\"$2\"" | wc -l; }
ok "group starts" up "$CFG"
printf 'sbx_read_demo_token\n' >/dev/null

# ---- 1. the seeds' examples
send_stripe "$(stripe_payout_body evt_x_10492 P-10492 1250000 usd)" "$STRIPE_A" >/dev/null
send_stripe "$(stripe_payout_body evt_x_20931 P-20931 7500000 usd | sed 's/account_closed/insufficient_funds/')" "$STRIPE_A" >/dev/null
send_standard "$(std_refund_body evt_x_rf123 refund.succeeded rf_123 pay_9 1850 USD)" msg_x_rf123 "$(date +%s)" >/dev/null
send_stripe "$(stripe_refund_body evt_x_rf456 refund.failed rf_456 pay_12 12000 usd failed)" "$STRIPE_A" >/dev/null
quiesce "$CFG" 30
ok "P-10492 (tier 2): finance manager approves" test "$(decide fin_mgr payout-P-10492)" = 200
ok "P-10492: compliance approves" test "$(decide compliance_officer payout-P-10492)" = 200
for who in treasurer fin_mgr compliance_officer; do decide "$who" payout-P-20931 >/dev/null; done
ok "rf_456 (tier 1): the ops lead approves" test "$(decide ops_lead refund-rf_456)" = 200
ok "P-10492's runbook ran to the end" test "$(executed payout-P-10492)" = done
ok "P-20931's runbook ran to the end" test "$(executed payout-P-20931)" = done
ok "rf_123 (auto-approved) ran to the end" test "$(executed refund-rf_123)" = done
ok "rf_456 ran to the end" test "$(executed refund-rf_456)" = done
for s in hold_payout hold_beneficiary; do
    ok "P-10492: $s called once with its key" test "$(key_calls payments "payout-P-10492:$s" 200)" = 1
done
ok "P-10492: one payout_reversal posted (201) with its key" test "$(key_calls ledger payout-P-10492:ledger_payout_reversal 201)" = 1
ok "P-10492: the ledger holds exactly one payout_reversal" test "$(nentries P-10492 payout_reversal)" = 1
ok "P-10492: one Jira ticket" test "$(key_calls jira payout-P-10492:open_ticket 201)" = 1
ok "P-10492: one Teams notice of what was done" test "$(key_calls teams payout-P-10492:notify_teams)" = 1
ok "P-20931: held, reversed once, ticketed" test "$(key_calls payments payout-P-20931:hold_payout 200)$(nentries P-20931 payout_reversal)$(key_calls jira payout-P-20931:open_ticket 201)" = 111
ok "rf_123: exactly one refund_succeeded entry, nothing else written" \
    test "$(nentries rf_123 refund_succeeded)/$(key_calls payments 'refund-rf_123:[a-z_]*')/$(key_calls jira 'refund-rf_123:[a-z_]*')" = "1/0/0"
ok "rf_456: comms blocked once, one ticket, one refund_reversal" \
    test "$(key_calls payments refund-rf_456:block_comms 201)$(key_calls jira refund-rf_456:open_ticket 201)$(nentries rf_456 refund_reversal)" = 111
ok "no runbook started a money movement (no payout or refund created)" \
    bash -c "! curl -s '$SBXURL/_sandbox/calls?limit=100000' | grep -q '\"path\":\"/payouts\"\\|\"path\":\"/refunds\"'"

# seeded payouts for the rest: P-0 .. P-39, 10.00+ USD (tier 1)
seed_load_payouts "$CFG" 40
fire() { # N: a payout.failed for P-N, approved by the ops lead
    send_stripe "$(stripe_payout_body "evt_f_$1_$RANDOM" "P-$1" $((1000 + $1)) usd)" "$STRIPE_A" >/dev/null
    for _ in $(seq 1 50); do
        [ "$(decide ops_lead "payout-P-$1")" = 200 ] && return 0
        sleep 0.2
    done
    return 1
}

# ---- 2. 500 x3 then 201
sandbox POST faults '{"system":"ledger","method":"POST","path_prefix":"/entries","status":500,"count":3}'
fire 1
ok "ledger 500 x3 then 201: the runbook finished" test "$(executed payout-P-1)" = done
ok "four calls with the same key: three 500s and one 201" \
    test "$(key_calls ledger payout-P-1:ledger_payout_reversal 500)/$(key_calls ledger payout-P-1:ledger_payout_reversal 201)" = "3/1"
ok "and exactly one entry" test "$(nentries P-1 payout_reversal)" = 1

# ---- 3. a permanent 400
sandbox POST faults '{"system":"ledger","method":"POST","path_prefix":"/entries","status":400,"count":1}'
fire 2
ok "ledger 400: the case went to ops review" test "$(executed payout-P-2)" = ops_review
ok "the review says which step failed and why" bash -c "'$BIN/payguard' journal dump -c '$CFG' execute.0 | grep '\"type\":\"review\"' | grep -F 'payout-P-2' | grep -q 'ledger_payout_reversal'"
ok "no later step ran: no ticket of the runbook, no notice of what was done" \
    test "$(key_calls jira payout-P-2:open_ticket)/$(key_calls teams payout-P-2:notify_teams)" = "0/0"
ok "a Highest-priority failure ticket was opened" bash -c "curl -s '$SBXURL/_sandbox/calls?system=jira&limit=100000' | grep -F 'payout-P-2:failure_ticket' | grep -q Highest"
ok "no entry was written" test "$(nentries P-2 payout_reversal)" = 0
"$BIN/payguard" review -c "$CFG" >"$WORK/review"
ok "payguard review lists the case with the failed step and why" \
    grep -q 'payout-P-2 .*runbook .*ledger_payout_reversal: POST /entries: refused (permanent) (HTTP 400)' "$WORK/review"

# ---- 3b. ops review: a person asks for a retry, others approve it; or closes.
# Either needs a role of the case's tier (P-2 is tier 1: payments_ops_lead),
# and a case approve handed to execute must be in ops review by the trail's account.
ok "fin_mgr (no tier-1 role) may not retry P-2: 403" test "$(review fin_mgr payout-P-2 retry)" = 403
ok "...nor may the treasurer close it: 403" test "$(review treasurer payout-P-2 close)" = 403
ok "...and the refusal is on the trail, naming the tier's roles" \
    bash -c "for i in \$(seq 1 50); do '$BIN/payguard' journal dump -c '$CFG' audit.0 | grep '\"type\":\"decision_refused\"' | grep -F payout-P-2 | grep -q 'holds none of the roles of the case.s tier 1 (payments_ops_lead)' && exit 0; sleep 0.2; done; exit 1"
ok "the ops lead may not retry P-1, whose runbook ran to the end: 409" test "$(review ops_lead payout-P-1 retry)" = 409
ok "...nor close it: 409, and P-1 awaits nobody" \
    test "$(review ops_lead payout-P-1 close)/$(curl -s -H "Authorization: Bearer $(tok ops_lead)" "$API/approvals/payout-P-1" | grep -o '"state":"[a-z_]*"')" = '409/"state":"approved"'
ok "the trail has P-2 in ops review" in_review payout-P-2
ok "the ops lead asks to retry P-2's failed runbook (the ledger is fixed)" \
    "$BIN/payguard" review retry payout-P-2 --as ops_lead --token-file "$ROOT/config/sandbox/ops_lead.token" --comment "ledger fixed" -c "$CFG"
for _ in $(seq 1 30); do # approve commits its case store once a second
    "$BIN/payguard" review -c "$CFG" >"$WORK/review2"
    grep -q 'payout-P-2 .*retry 1 asked by ops_lead: awaiting approval' "$WORK/review2" && break
    sleep 0.2
done
ok "the queue says the retry awaits approval" grep -q 'payout-P-2 .*retry 1 asked by ops_lead: awaiting approval' "$WORK/review2"
ok "who asked for the retry may not approve it: 403" test "$(decide ops_lead payout-P-2)" = 403
ok "the retry needs the case's approvers, others: the second ops lead approves it" test "$(decide ops_lead_2 payout-P-2)" = 200
ok "the retried runbook ran to the end" bash -c "for i in \$(seq 1 100); do '$BIN/payguard' journal dump -c '$CFG' execute.0 | grep '\"type\":\"executed\"' | grep -F 'payout-P-2' | grep -q '\"outcome\":\"done\"' && exit 0; sleep 0.2; done; exit 1"
ok "it resumed at the failed step, with keys of its own (retry1)" \
    test "$(key_calls ledger payout-P-2:ledger_payout_reversal:retry1 201)$(key_calls payments payout-P-2:hold_payout:retry1)" = 10
ok "one payout_reversal now, and the case left the queue" \
    bash -c "test \"\$(curl -s '$SBXURL/ledger/entries?ref=P-2' -H 'Authorization: Bearer $(tok read)' | grep -o '\"type\":\"payout_reversal\"' | wc -l)\" = 1 && ! '$BIN/payguard' review -c '$CFG' | grep -q 'payout-P-2 '"
sandbox POST faults '{"system":"ledger","method":"POST","path_prefix":"/entries","status":400,"count":1}'
fire 3
ok "another case fails to ops review" test "$(executed payout-P-3)" = ops_review
ok "compliance (no tier-1 role) may not close it: 403" test "$(review compliance_officer payout-P-3 close)" = 403
ok "the trail has P-3 in ops review" in_review payout-P-3
ok "an ops lead closes it" "$BIN/payguard" review close payout-P-3 --as ops_lead_2 \
    --token-file "$ROOT/config/sandbox/ops_lead_2.token" --comment "handled by hand" -c "$CFG"
sleep 1
ok "it left the queue" bash -c "! '$BIN/payguard' review -c '$CFG' | grep -q 'payout-P-3 '"
ok "the close is in the audit trail, with who" bash -c "'$BIN/payguard' journal dump -c '$CFG' audit.0 | grep '\"type\":\"closed\"' | grep -F payout-P-3 | grep -q ops_lead_2"

# ---- 4. SIGKILL just before and just after each outbound call
n=10
for step in hold_payout hold_beneficiary ledger_payout_reversal open_ticket notify_teams; do
    for when in before after; do
        n=$((n + 1))
        echo "$when:$step" >"$D/fault"
        r0=$(restarts "$CFG" execute.0)
        fire $n
        out=$(executed "payout-P-$n")
        r1=$(restarts "$CFG" execute.0)
        # a call made just before the kill is made again with the same key
        # after it: the effect (the hold, the entry, the ticket) exists once
        held=$(curl -s -H "Authorization: Bearer $(tok read)" "$SBXURL/payments/payouts/P-$n" | grep -o '"status":"on_hold"' | wc -l)
        once="$held$(nentries "P-$n" payout_reversal)$(jira_issues "payout-P-$n")"
        ok "killed $when $step (restarted: $r0 -> $r1): finished; on hold, one reversal, one ticket" \
            test "$out/$((r1 > r0))/$once" = "done/1/111"
    done
done
tickets=$(curl -s "$SBXURL/_sandbox/state" | grep -o '"key":"PAY-[0-9]*"' | sort -u | wc -l)
ok "one ticket per executed payout case, however often execute died ($tickets)" test "$tickets" -ge 12

# ---- 5. a retry storm and a decision posted twice: one execution
body=$(stripe_payout_body evt_storm P-30 1030 usd)
t=$(date +%s)
for _ in $(seq 1 12); do send_stripe "$body" "$STRIPE_A" "$t" >/dev/null; done
sleep 1
first=$(decide ops_lead payout-P-30)
second=$(decide ops_lead payout-P-30)
ok "the decision posted twice: 200, then refused ($second: already decided / not awaiting a decision)" \
    bash -c "test '$first' = 200 && { test '$second' = 403 || test '$second' = 409; }"
ok "the storm's case ran once" test "$(executed payout-P-30)" = done
quiesce "$CFG" 30
ok "one runbook for the case, one hold, one reversal" \
    test "$("$BIN/payguard" journal dump -c "$CFG" execute.0 | grep '"type":"runbook"' | grep -c '"case_key":"payout-P-30"')$(key_calls payments payout-P-30:hold_payout 200)$(nentries P-30 payout_reversal)" = 111

# ---- 6. the dry run
"$BIN/payguard" plan payout-P-10492 -c "$CFG" >"$WORK/plan1"
ok "payguard plan lists the runbook's calls with their keys" \
    grep -q 'Idempotency-Key: payout-P-10492:ledger_payout_reversal' "$WORK/plan1"
send_stripe "$(stripe_payout_body evt_plan P-35 1035 usd)" "$STRIPE_A" >/dev/null
sleep 1.5
before=$(calls payments | grep -c 'payout-P-35')
"$BIN/payguard" plan payout-P-35 -c "$CFG" >"$WORK/plan2"
after=$(calls payments | grep -c 'payout-P-35')
ok "a pending case's plan says what it would do once approved" grep -q 'not decided yet' "$WORK/plan2"
ok "and planning called nothing" test "$before" = "$after"

# ---- 6b. a forged decision pushed into execute's input: not acted on
# (what someone who can reach its ZeroMQ socket could do; approve seals what it sends)
printf '%064d\n' 7 >"$WORK/other.key"
"$BIN/pg-push" -c "$CFG" --into execute.0 --type approved --case payout-P-35 \
    --body '{"case_id":"payout-P-35","decided_by":"ops_lead","facts":{"payout_id":"P-35","amount":1035,"currency":"USD"}}' >/dev/null
"$BIN/pg-push" -c "$CFG" --into execute.0 --type approved --case payout-P-35 --seal-key "$WORK/other.key" \
    --body '{"case_id":"payout-P-35","decided_by":"ops_lead"}' >/dev/null
for _ in $(seq 1 50); do
    [ "$("$BIN/payguard" journal dump -c "$CFG" execute.0 | grep -c '"code":"unsealed"')" = 2 ] && break
    sleep 0.2
done
ok "an unsealed and a wrongly sealed 'approved' are refused and recorded" \
    test "$("$BIN/payguard" journal dump -c "$CFG" execute.0 | grep '"code":"unsealed"' | grep -c '"claimed_case":"payout-P-35"')" = 2
ok "...as data, not as a case of their own" \
    test "$("$BIN/payguard" journal dump -c "$CFG" execute.0 | grep '"code":"unsealed"' | grep -c '"case_key":""')" = 2
ok "...and nothing ran for the pending case: no call, no runbook" \
    test "$(calls payments | grep -c 'payout-P-35')/$("$BIN/payguard" journal dump -c "$CFG" execute.0 | grep '"type":"runbook"' | grep -c 'payout-P-35')" = "$after/0"

# ---- 7. where policy allows, a failed ledger step releases the hold
ok "by default the hold stayed on the case whose ledger step failed" \
    bash -c "curl -s -H 'Authorization: Bearer $(tok read)' '$SBXURL/payments/payouts/P-3' | grep -q '\"status\":\"on_hold\"'"
down "$CFG"
sed -i "s|^    retry_base_ms = 50|    release_hold_on_failure = yes\n    retry_base_ms = 50|" "$CFG"
ok "the group restarts with release_hold_on_failure = yes" up "$CFG"
sandbox POST faults '{"system":"ledger","method":"POST","path_prefix":"/entries","status":400,"count":1}'
fire 4
ok "the ledger step failed: ops review" test "$(executed payout-P-4)" = ops_review
ok "the hold was released to the payout's previous status (paid)" \
    bash -c "curl -s -H 'Authorization: Bearer $(tok read)' '$SBXURL/payments/payouts/P-4' | grep -q '\"status\":\"paid\"'"
ok "by one release call with its key" test "$(key_calls payments payout-P-4:release_hold 200)" = 1

# ---- 8. retention: the ops-review queue outlives the records it came from
down "$CFG"
cfg_merge "$CFG" <<CFG8
payguard
    journal
        segment_bytes = 16384
execute
    retention_s = 1
CFG8
ok "the group restarts with execute/retention_s = 1 and 16 KiB segments" up "$CFG"
fire 36
ok "a new case runs to the end (P-36)" test "$(executed payout-P-36)" = done
rb4() { "$BIN/payguard" journal dump -c "$CFG" execute.0 2>/dev/null | grep '"type":"runbook"' | grep -c '"case_key":"payout-P-4"'; }
for _ in $(seq 1 150); do
    [ -f "$D/data/execute.0/retired" ] && [ "$(rb4)" = 0 ] && break
    sleep 0.2
done
ok "execute's retention removed the records of P-4's failed runbook" test -f "$D/data/execute.0/retired" -a "$(rb4)" = 0
down "$CFG"
ok "the group restarts" up "$CFG"
ok "approve lists decided cases from its case store with none in memory (P-1, approved long ago)" \
    bash -c "curl -s -H 'Authorization: Bearer $(tok ops_lead)' '$API/approvals?status=approved&limit=1000' | grep -q '\"case_id\":\"payout-P-1\"'"
ok "execute read its ops-review queue back from its review store" \
    grep -q 'inst=execute.0 msg="ops review: [0-9]* cases read back from the review store' "$D/run/payguard.log"
"$BIN/payguard" review -c "$CFG" >"$WORK/review3"
ok "payguard review still lists P-4 with its failed step" grep -q 'payout-P-4 .*runbook .*ledger_payout_reversal' "$WORK/review3"
ok "the ops lead asks to retry it" "$BIN/payguard" review retry payout-P-4 --as ops_lead \
    --token-file "$ROOT/config/sandbox/ops_lead.token" --comment "ledger fixed" -c "$CFG"
ok "the second ops lead approves the retry" test "$(decide ops_lead_2 payout-P-4)" = 200
ok "the retry re-ran the failed plan, which only the review store still held" \
    bash -c "for i in \$(seq 1 100); do '$BIN/payguard' journal dump -c '$CFG' execute.0 | grep '\"type\":\"executed\"' | grep -F 'payout-P-4' | grep -q '\"outcome\":\"done\"' && exit 0; sleep 0.2; done; exit 1"
ok "from its failed step, with the retry's keys" test "$(key_calls ledger payout-P-4:ledger_payout_reversal:retry1 201)" = 1

# ---- 9. a retry comment cut inside a UTF-8 character keeps its reason
sandbox POST faults '{"system":"ledger","method":"POST","path_prefix":"/entries","status":400,"count":1}'
fire 5
ok "P-5's runbook failed: ops review" test "$(executed payout-P-5)" = ops_review
# the reason is "ops_lead asked to retry the failed runbook: <comment>" (44
# bytes, then the comment) in 255: the 2-byte characters start at byte 254
XS=$(printf 'x%.0s' $(seq 1 210))
LONG="$XS$(printf '\xc3\xa9%.0s' $(seq 1 50))"
ok "ops_lead asks to retry it with a 310-byte comment" \
    test "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $(tok ops_lead)" \
        -d "{\"comment\":\"$LONG\"}" "$API/reviews/payout-P-5/retry")" = 200
ok "the retry's route keeps its reason, cut before the split character" \
    bash -c "for i in \$(seq 1 50); do '$BIN/payguard' audit export -c '$CFG' --case payout-P-5 2>/dev/null | grep '\"rule\":\"ops_review_retry\"' |
        grep -q '\"reason\":\"ops_lead asked to retry the failed runbook: $XS\"' && exit 0; sleep 0.2; done; exit 1"

down "$CFG"
finish
