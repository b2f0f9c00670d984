#!/usr/bin/env bash
# e2e_validate - the webhook gateway, through the real processes and the
# sandbox of the outside systems (issue: ingest and validate):
#   1. the brief's examples: a settlement failure for a payout the payments
#      API says is paid opens one case with the state read attached; the same
#      event delivered 12 times gives 12 receipts, one case, one forward event;
#   2. a corpus of bad webhooks (tests/e2e/lib_corpus.sh), each with its
#      expected verdict, interleaved with good ones: every bad one is recorded
#      with its reason and none goes past validate; every good one passes;
#   3. out of order: refund.succeeded then an older refund.pending leaves
#      the case succeeded;
#   4. secret rotation: both secrets verify during the overlap, the retired
#      one fails after it is removed (no restart);
#   5. the sweep: a refund pending too long is re-read from the PSP.
set -u
. "$(dirname "$0")/lib_e2e.sh"

PORT=$(free_port)
SBX=$(free_port)
D=$WORK/v
mkdir -p "$D"
STRIPE_A=whsec_e2e_rotation_A
STRIPE_B=whsec_e2e_rotation_B
STRIPE_RETIRED=whsec_e2e_retired
STD_KEY=$(printf 'e2e-standard-webhooks-key-0001' | base64 -w0)
ADYEN_KEY=$(openssl rand -hex 32)
printf '%s\n' "$ADYEN_KEY" >"$D/adyen.hmac"
printf '%s\n%s\n' "$STRIPE_A" "$STRIPE_B" >"$D/stripe.secrets"
printf 'whsec_%s\n' "$STD_KEY" >"$D/standard.secrets"
CFG=$D/payguard.cfg
cat >"$CFG" <<CFG
payguard
    run_dir = $D/run
    data_dir = $D/data
    drain_ms = 2000
    restart_max_ms = 500
    delivery
        resend_ms = 1000
outside
    payments = http://127.0.0.1:$SBX/payments
    ledger = http://127.0.0.1:$SBX/ledger
    psp = http://127.0.0.1:$SBX/psp
    jira = http://127.0.0.1:$SBX/jira
    teams = http://127.0.0.1:$SBX/teams/webhook
sandbox
    port = $SBX
    tokens_file = $ROOT/config/sandbox/tokens
ingest
    http_port = $PORT
    rate_per_s = 100000
    rate_burst = 100000
validate
    allow_sources = 127.0.0.1/32 ::1
    trusted_proxies = 127.0.0.3/32
    stripe_secrets_file = $D/stripe.secrets
    standard_secrets_file = $D/standard.secrets
    adyen_secrets_file = $D/adyen.hmac
    token_file = $ROOT/config/sandbox/read.token
    sweep_every_s = 2
    sweep_age_s = 1
approve
    http_port = $(free_port)
audit
    http_port = $(free_port)
console
    enabled = no
CFG
URL=http://127.0.0.1:$PORT
SBXURL=http://127.0.0.1:$SBX
ok "group and sandbox start" up "$CFG"
for _ in $(seq 1 50); do curl -fs "$SBXURL/_sandbox/healthz" >/dev/null && break; sleep 0.1; done

. "$(dirname "$0")/lib_corpus.sh"

# extra sandbox data for the good webhooks of the corpus and the refund cases
payouts="" entries=""
for i in $(seq 1 60); do
    payouts="$payouts{\"id\":\"P-E2E-$i\",\"status\":\"paid\",\"amount\":$((100000 + i)),\"currency\":\"USD\",\"beneficiary_id\":\"B-E2E-$i\"},"
    entries="$entries{\"type\":\"payout_paid\",\"ref\":\"P-E2E-$i\",\"amount\":$((100000 + i)),\"currency\":\"USD\",\"case_id\":\"seed\"},"
done
seed='{"payouts":['${payouts%,}'],"entries":['${entries%,}'],
 "payments":[{"id":"pay_e2e_1","amount":10000,"currency":"USD","customer_id":"cus_e","customer_risk":"low","flagged":false,"refunded_amount":0},
             {"id":"pay_e2e_2","amount":10000,"currency":"USD","customer_id":"cus_f","customer_risk":"low","flagged":false,"refunded_amount":0},
             {"id":"pay_jpy","amount":50000,"currency":"JPY","customer_id":"cus_j","customer_risk":"low","flagged":false,"refunded_amount":0},
             {"id":"pay_kwd","amount":100000,"currency":"KWD","customer_id":"cus_k","customer_risk":"low","flagged":false,"refunded_amount":0}],
 "psp_refunds":[{"id":"rf_big","amount":25000,"currency":"usd","status":"succeeded","payment_intent":"pi_50","metadata":{"payment_id":"pay_50"}},
                {"id":"rf_ooo","amount":4000,"currency":"usd","status":"succeeded","payment_intent":"pi_e1","metadata":{"payment_id":"pay_e2e_1"}},
                {"id":"rf_c1","amount":2000,"currency":"usd","status":"succeeded","payment_intent":"pi_e2","metadata":{"payment_id":"pay_e2e_2"}},
                {"id":"rf_c2","amount":3000,"currency":"usd","status":"succeeded","payment_intent":"pi_e2","metadata":{"payment_id":"pay_e2e_2"}},
                {"id":"rf_jpy","amount":1200,"currency":"jpy","status":"succeeded","payment_intent":"pi_j","metadata":{"payment_id":"pay_jpy"}},
                {"id":"rf_kwd","amount":12345,"currency":"kwd","status":"succeeded","payment_intent":"pi_k","metadata":{"payment_id":"pay_kwd"}}]}'
ok "the sandbox takes the test data" test "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data-binary "$seed" "$SBXURL/_sandbox/seed")" -lt 300

# ---- 1. the brief's examples
now=$(date +%s)
body=$(std_payout_body evt_brief_1 payout.settlement_failed P-10492 1250000 USD)
rid_first=$(send_standard "$body" msg_brief_1 "$now")
ok "a settlement failure for a paid payout gets a receipt" test -n "$rid_first"
for i in $(seq 2 12); do
    r=$(send_standard "$body" msg_brief_1 "$now")
    [ -n "$r" ] && echo "$r" >>"$D/dups"
done
ok "the same event re-delivered 11 more times: 11 more receipts" test "$(wc -l <"$D/dups")" = 11

# ---- 2. the corpus, interleaved with good webhooks
run_corpus "$D/expected"
nbad=$(grep -vc ' accepted ' "$D/expected")
ngood=$(grep -c ' accepted ' "$D/expected")
ok "the corpus has at least 100 bad webhooks ($nbad) and good ones among them ($ngood)" test "$nbad" -ge 100 -a "$ngood" -ge 20

# ---- 3. out of order: succeeded, then an older pending
t0=$(date +%s)
send_standard "$(std_refund_body evt_ooo_1 refund.succeeded rf_ooo pay_e2e_1 4000 USD "$t0")" msg_ooo_1 "$t0" >"$D/ooo1"
send_standard "$(std_refund_body evt_ooo_2 refund.pending rf_ooo pay_e2e_1 4000 USD $((t0 - 60)))" msg_ooo_2 "$t0" >"$D/ooo2"

# ---- 3b. one charge.refunded event listing two refunds: two facts, two cases
charge='{"id":"evt_charge_two","type":"charge.refunded","created":'$(date +%s)',"data":{"object":{"id":"ch_2","object":"charge","payment_intent":"pi_e2","metadata":{"payment_id":"pay_e2e_2"},"refunds":{"data":[
 {"id":"rf_c1","object":"refund","amount":2000,"currency":"usd","status":"succeeded","payment_intent":"pi_e2","metadata":{"payment_id":"pay_e2e_2"}},
 {"id":"rf_c2","object":"refund","amount":3000,"currency":"usd","status":"succeeded","payment_intent":"pi_e2","metadata":{"payment_id":"pay_e2e_2"}}]}}}}'
charge_rid=$(send_stripe "$charge" "$STRIPE_A")

# ---- 4. rotation: A and B both verify; retire A by rewriting the file
rot_a=$(send_stripe "$(stripe_payout_body evt_rot_a P-E2E-51 100051 usd)" "$STRIPE_A")
rot_b=$(send_stripe "$(stripe_payout_body evt_rot_b P-E2E-52 100052 usd)" "$STRIPE_B")
printf '%s\n' "$STRIPE_B" >"$D/stripe.secrets.new" && mv "$D/stripe.secrets.new" "$D/stripe.secrets"
sleep 6 # validate re-reads changed secret files every 5 s
rot_a2=$(send_stripe "$(stripe_payout_body evt_rot_a2 P-E2E-53 100053 usd)" "$STRIPE_A")
rot_b2=$(send_stripe "$(stripe_payout_body evt_rot_b2 P-E2E-54 100054 usd)" "$STRIPE_B")

# ---- 4b. transient failures of our own systems: retried, never a rejection
fault() { curl -s -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary "$1" "$SBXURL/_sandbox/faults"; }
fault '{"system":"payments","method":"GET","path_prefix":"/payouts/P-E2E-55","status":503,"count":5}'
fault '{"system":"ledger","method":"GET","status":429,"retry_after_s":1,"count":1}'
tr_rid=$(send_stripe "$(stripe_payout_body evt_transient P-E2E-55 100055 usd)" "$STRIPE_B") # A is retired by now

# ---- 5. the sweep: rf_789 is pending at the PSP; tell us so, then the PSP moves on
send_standard "$(std_refund_body evt_sweep_1 refund.pending rf_789 pay_31 3000 USD "$(date +%s)")" msg_sweep_1 "$(date +%s)" >"$D/sweep1"
sleep 1
curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
    --data-binary '{"psp_refunds":[{"id":"rf_789","amount":3000,"currency":"usd","status":"succeeded","payment_intent":"pi_31","metadata":{"payment_id":"pay_31"}}]}' \
    "$SBXURL/_sandbox/seed"

ok "everything drains" quiesce "$CFG" 60
sleep 4 # at least one sweep period after the PSP changed its mind
quiesce "$CFG" 30
"$BIN/pg-verdicts" "$D/data/audit.0" >"$D/verdicts"
verdict_of() { awk -v r="$1" '$2 == r {print $3 ($4 == "-" ? "" : ":" $4)}' "$D/verdicts" | sort -u | tr '\n' ' ' | sed 's/ $//'; }
# verdicts_of RID - every verdict of a receipt, sorted, with repeats (an Adyen batch's items)
verdicts_of() { awk -v r="$1" '$2 == r {print $3 ($4 == "-" ? "" : ":" $4)}' "$D/verdicts" | sort | tr '\n' ' ' | sed 's/ $//'; }

# 1. examples
ok "the settlement failure was validated" test "$(verdict_of "$rid_first")" = "validated"
case_p=$(awk -v r="$rid_first" '$2 == r {print $5}' "$D/verdicts")
ok "its case is payout-P-10492" test "$case_p" = "payout-P-10492"
ok "the validated event carries the state read (payout status paid, the ledger's payout_paid)" \
    bash -c "'$BIN/payguard' journal dump -c '$CFG' validate.0 | grep -F '\"cause\":\"$rid_first\"' | grep -q '\"payout_state\":{[^}]*\"status\":\"paid\"' && \
             '$BIN/payguard' journal dump -c '$CFG' validate.0 | grep -F '\"cause\":\"$rid_first\"' | grep -q '\"type\":\"payout_paid\"'"
ok "the validated event records each gate's verdict (source, signature)" \
    bash -c "'$BIN/payguard' journal dump -c '$CFG' validate.0 | grep -F '\"cause\":\"$rid_first\"' |
             grep -F '\"source_verdict\":\"source: client 127.0.0.1 (direct); in validate/allow_sources\"' |
             grep -qF '\"signature_verdict\":\"standard signature: v1 #1 of 1 matches secret #1\"'"
dupv=$(while read -r r; do verdict_of "$r"; echo; done <"$D/dups" | sort | uniq -c | awk '{print $1, $2}')
ok "the 11 re-deliveries are duplicates on the same case" test "$dupv" = "11 duplicate"
ok "one forward event for the case: one validated event, 12 receipts on its timeline" \
    test "$(awk '$5 == "payout-P-10492" && $3 == "validated"' "$D/verdicts" | wc -l)" = 1 -a \
    "$(awk '$5 == "payout-P-10492" && ($3 == "validated" || $3 == "duplicate")' "$D/verdicts" | wc -l)" = 12
approve_events=$("$BIN/payguard" journal dump -c "$CFG" approve.0 | grep '"type":"routed"' | grep -c '"case_key":"payout-P-10492"')
ok "one event went on to approve for the case (duplicates stop at advice)" test "$approve_events" = 1

# 2. the corpus
wrong=0
while read -r rid code name; do
    got=$(verdict_of "$rid")
    want=$code
    [ "$code" = accepted ] && want=validated
    case "$code" in *,*) got=$(verdicts_of "$rid") want=${code//,/ } ;; esac
    case "$code" in http:*) continue ;; esac
    if [ "$got" != "$want" ] && [ "$got" != "rejected:$code" ] && [ "$got" != "$code" ]; then
        echo "# corpus $name: expected $code, got '${got:-nothing}' (receipt ${rid:-none})"
        wrong=$((wrong + 1))
    fi
done <"$D/expected"
ok "every corpus webhook got its expected verdict" test $wrong = 0
http_refusals=$(awk '$2 == "-" && $3 == "rejected" && $6 == "ingest.0"' "$D/verdicts" | wc -l)
ok "HTTP-level refusals (413, 415, 405, 404) are in the audit trail too ($http_refusals)" test "$http_refusals" -ge "$(grep -c ' http:' "$D/expected")"
passed_bad=0
while read -r rid code name; do
    case "$code" in accepted | *validated*) continue ;; esac # an Adyen batch's good items pass
    [ -z "$rid" ] && continue
    # no rejected receipt may have caused anything in triage
    vid=$(awk -v r="$rid" '$2 == r && $3 == "validated" {print $1}' "$D/verdicts")
    [ -n "$vid" ] && passed_bad=$((passed_bad + 1))
done <"$D/expected"
ok "no bad webhook went past validate" test $passed_bad = 0
ok "the rejection reasons are counted in /metrics" bash -c "curl -s $URL/metrics | grep -q 'payguard_validate_rejections_total{instance=\"validate.0\",reason=\"signature_mismatch\"}'"

# 3. out of order
ok "refund.succeeded for rf_ooo validated" test "$(verdict_of "$(cat "$D/ooo1")")" = validated
ok "the older refund.pending after it is out of order" test "$(verdict_of "$(cat "$D/ooo2")")" = out_of_order
ok "the case stays succeeded" bash -c "sqlite3 '$D/data/validate.0.sqlite' \"select status from cases where case_id='refund-rf_ooo'\" | grep -qx succeeded"

# 3b. charge.refunded with two refunds
ok "a charge.refunded listing two refunds validates both, one case each" \
    test "$(awk -v r="$charge_rid" '$2 == r && $3 == "validated" {print $5}' "$D/verdicts" | sort | tr '\n' ' ')" = "refund-rf_c1 refund-rf_c2 "

# 4. rotation
ok "secret A verifies during the overlap" test "$(verdict_of "$rot_a")" = validated
ok "secret B verifies during the overlap" test "$(verdict_of "$rot_b")" = validated
ok "after A is retired it fails" test "$(verdict_of "$rot_a2")" = "rejected:signature_mismatch"
ok "B still verifies" test "$(verdict_of "$rot_b2")" = validated

# 4b. transient
ok "a webhook whose checks met 503s and a 429 was validated, not rejected" test "$(verdict_of "$tr_rid")" = validated
calls503=$(curl -s "$SBXURL/_sandbox/calls?system=payments" | grep -o '"path":"/payouts/P-E2E-55"[^}]*"status":503' | wc -l)
ok "the payments API was retried through its 5 failures ($calls503 seen)" test "$calls503" = 5
# five 503s in a row: either the read ran out of attempts and the check was
# held (a deferral), or the payments breaker (3 failures) opened and the
# read waited for it; which one depends on the other reads in between
ok "the wait is counted (a held check, or the payments breaker opened)" bash -c "curl -s $URL/metrics |
    grep -qE '^(payguard_validate_deferred_total\{instance=\"validate.0\"\}|payguard_outside_breaker_opened_total\{instance=\"validate.0\",system=\"payments\"\}) [1-9]'"

# 5. sweep
ok "the pending refund was validated as pending" test "$(verdict_of "$(cat "$D/sweep1")")" = validated
ok "the sweep re-read it and the PSP's new word (succeeded) entered as an event" \
    bash -c "awk '\$3 == \"sweep\" && \$5 == \"refund-rf_789\"' '$D/verdicts' | grep -q . && \
             sqlite3 '$D/data/validate.0.sqlite' \"select status from cases where case_id='refund-rf_789'\" | grep -qx succeeded"

# restart: the key set survives, and is rebuilt if its store is lost
down "$CFG"
rm -f "$D"/data/validate.0.sqlite*
ok "group restarts with validate's state store deleted" up "$CFG"
r=$(send_standard "$body" msg_brief_1 "$now")
quiesce "$CFG" 30
"$BIN/pg-verdicts" "$D/data/audit.0" >"$D/verdicts"
ok "the rebuilt key set still knows the brief's event: a 13th delivery is a duplicate" test "$(verdict_of "$r")" = duplicate

# ---- 6. retention: validate removes the segments triage and audit
# acknowledged that its state store holds; the keys outlive them
down "$CFG"
cfg_merge "$CFG" <<CFG6
payguard
    journal
        segment_bytes = 16384
validate
    retention_s = 1
CFG6
ok "group restarts with validate/retention_s = 1 and 16 KiB segments" up "$CFG"
brief_in_journal() { "$BIN/payguard" journal dump -c "$CFG" validate.0 2>/dev/null | grep -cF "\"cause\":\"$rid_first\""; }
for _ in $(seq 1 150); do
    send_standard "$body" msg_brief_1 "$now" >/dev/null # duplicates: records enough to fill segments
    [ -f "$D/data/validate.0/retired" ] && [ "$(brief_in_journal)" = 0 ] && break
    sleep 0.2
done
ok "validate removed the segments holding the brief's first verdict" \
    test -f "$D/data/validate.0/retired" -a "$(brief_in_journal)" = 0
down "$CFG"
ok "the group restarts on the shortened journal" up "$CFG"
r=$(send_standard "$body" msg_brief_1 "$now")
quiesce "$CFG" 30
"$BIN/pg-verdicts" "$D/data/audit.0" >"$D/verdicts"
ok "the state store still knows the brief's event: one more delivery is a duplicate" test "$(verdict_of "$r")" = duplicate
down "$CFG"
rm -f "$D"/data/validate.0.sqlite*
cfg_set "$CFG" payguard ready_timeout_s 5 # validate will not be ready: say so after 5 s, not 120
"$BIN/payguard" up -c "$CFG" -d >"$D/up.out" 2>&1
up_rc=$?
ok "a state store lost after retention: validate refuses to start, saying why (not a silent empty key set)" \
    grep -q 'inst=validate.0.*state store is new or was reset, and validate.s journal no longer holds its first records' \
    "$D/run/payguard.log"
ok "... and payguard up -d exits 1 naming validate.0 as not ready" \
    bash -c "[ $up_rc = 1 ] && grep -q 'validate.0' '$D/up.out'"
down "$CFG"

finish
