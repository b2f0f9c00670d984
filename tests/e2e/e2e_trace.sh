#!/usr/bin/env bash
# e2e_trace - W3C trace context through the real processes (common/trace.h,
# common/otlp.h), the sandbox playing the outside systems and an
# OpenTelemetry collector (POST /otlp/v1/traces):
#   1. a refund webhook with a traceparent: its receipt continues that trace;
#      every event of the case on audit's journal carries the same trace-id;
#      every call the pipeline made for it (payments, PSP, ledger reads,
#      the ledger post, the Teams notice) carried a traceparent of that
#      trace, each with a span of its own;
#   2. the collector got the spans: ingest's (a child of the webhook's
#      span), one per stage that handled the case, one per outside call,
#      each span's parent another span of the trace (or the webhook's);
#      /metrics counts them sent;
#   3. a webhook without a traceparent, and one with a malformed one, each
#      start a trace of their own;
#   4. a payout decided by two people: the decisions are spans of the
#      case's trace and execute's calls stay in it;
#   5. the configuration refuses an endpoint that is not an http(s) URL.
set -u
. "$(dirname "$0")/lib_e2e.sh"
. "$(dirname "$0")/lib_corpus.sh"

PORT=$(free_port)
UPORT=$(free_port)
CFG=$(write_config t "$PORT")
SBX=$(sandbox_url "$CFG")
cfg_merge "$CFG" <<CFG
payguard
    trace
        otlp_endpoint = $SBX/otlp
execute
    token_file = $ROOT/config/sandbox/write.token
CFG
URL=http://127.0.0.1:$PORT
AUD=http://127.0.0.1:$UPORT
OPS=$(tok ops_lead)
TRACE=4bf92f3577b34da6a3ce929d0e0e4736
PARENT=00f067aa0ba902b7

ok "group and sandbox start, spans going to the sandbox's collector" up "$CFG"

# seed_refund ID PAYMENT AMOUNT - an auto-fixable refund in the sandbox
seed_refund() {
    curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' "$SBX/_sandbox/seed" --data-binary \
        "{\"payments\":[{\"id\":\"$2\",\"amount\":50000,\"currency\":\"USD\",\"customer_id\":\"cus_t\",\"customer_risk\":\"low\",\"flagged\":false,\"refunded_amount\":0}],
          \"psp_refunds\":[{\"id\":\"$1\",\"amount\":$3,\"currency\":\"usd\",\"status\":\"succeeded\",\"payment_intent\":\"pi_t\",\"metadata\":{\"payment_id\":\"$2\"}}],
          \"entries\":[{\"type\":\"refund_initiated\",\"ref\":\"$1\",\"amount\":$3,\"currency\":\"USD\",\"case_id\":\"seed\"}]}"
}
# case_json CASE - audit's GET /cases/{id}
case_json() { curl -s -H "Authorization: Bearer $OPS" "$AUD/cases/$1"; }
# wait_state CASE STATE - until audit says the case is in STATE (30 s)
wait_state() {
    for _ in $(seq 1 150); do
        [ "$(case_json "$1" | jq -r .state)" = "$2" ] && return 0
        sleep 0.2
    done
    return 1
}
# trail_traces CASE - "type traceparent" of every event of CASE on the trail (its receipts too)
trail_traces() {
    "$BIN/payguard" audit export --case "$1" -c "$CFG" 2>/dev/null | jq -r '"\(.event.type) \(.event.body.traceparent // "none")"'
}
# call_traces SYSTEM - "path traceparent" of every call the sandbox logged for SYSTEM
call_traces() {
    curl -s "$SBX/_sandbox/calls?system=$1&limit=100000" | jq -r '.calls[] | "\(.path) \(.traceparent // "none")"'
}
# spans TRACE - the collector's spans of TRACE, one JSON object a line
spans() { curl -s "$SBX/_sandbox/spans?trace_id=$1" | jq -c '.spans[]'; }
# wait_spans TRACE NAME - until the collector has a span NAME in TRACE (10 s: posted once a second)
wait_spans() {
    for _ in $(seq 1 50); do
        spans "$1" | jq -s -e --arg n "$2" 'any(.[]; .name == $n)' >/dev/null && return 0
        sleep 0.2
    done
    return 1
}

# ---- 1. a refund webhook with a traceparent
ok "the sandbox holds the refund rf_t1" seed_refund rf_t1 pay_t1 1200
body=$(stripe_refund_body evt_t1 refund.updated rf_t1 pay_t1 1200 usd succeeded)
r1=$(send_stripe "$body" "$E2E_SECRET" "$(date +%s)" -H "traceparent: 00-$TRACE-$PARENT-01")
ok "1: the webhook with a traceparent is accepted ($r1)" test -n "$r1"
ok "1: the refund case ends executed" wait_state refund-rf_t1 executed
trail_traces refund-rf_t1 >"$WORK/trail1.txt"
ok "1: every event of the case on the trail carries the webhook's trace ($(wc -l <"$WORK/trail1.txt") events)" \
    bash -c "[ \$(wc -l <'$WORK/trail1.txt') -ge 6 ] && ! grep -v ' 00-$TRACE-[0-9a-f]\{16\}-01\$' '$WORK/trail1.txt'"
ok "1: ... from validate's decision to execute's end (validated, triaged, approved, executed)" \
    bash -c "for t in validated triaged approved executed; do grep -q \"^\$t 00-$TRACE\" '$WORK/trail1.txt' || exit 1; done"
# every call so far was made for rf_t1 (nothing else ran)
{ for sys in payments psp ledger teams; do call_traces $sys | sed "s/^/$sys /"; done; } >"$WORK/calls1.txt"
curl -s "$SBX/_sandbox/calls?limit=100000" | jq -r '.calls[] | "\(.system) \(.method) \(.traceparent // "none")"' >"$WORK/calls1m.txt"
ok "1: every call the pipeline made for it carried the trace ($(wc -l <"$WORK/calls1m.txt") calls)" \
    bash -c "[ \$(wc -l <'$WORK/calls1m.txt') -ge 5 ] && ! grep -v ' 00-$TRACE-[0-9a-f]\{16\}-01\$' '$WORK/calls1m.txt'"
ok "1: ... reads of payments, the PSP and the ledger; the ledger post; the Teams notice" \
    bash -c "for c in 'payments GET' 'psp GET' 'ledger GET' 'ledger POST' 'teams POST'; do grep -q \"^\$c \" '$WORK/calls1m.txt' || exit 1; done"
ok "1: ... each call a span of its own" \
    test "$(awk '{print $3}' "$WORK/calls1m.txt" | sort -u | wc -l)" = "$(wc -l <"$WORK/calls1m.txt")"

# ---- 2. the collector's spans
ok "2: the collector got execute's span of the case" wait_spans "$TRACE" "execute approved"
sleep 1.5 # the last posts (a second apart)
spans "$TRACE" >"$WORK/spans1.txt"
names=$(jq -r .name "$WORK/spans1.txt" | sort | uniq -c | awk '{$1 = ""; print substr($0, 2)}' | paste -sd, -)
echo "# spans of the trace: $names"
ok "2: ingest's span is a child of the webhook's" \
    test "$(jq -r 'select(.name == "ingest webhook") | .parent_span_id' "$WORK/spans1.txt")" = "$PARENT"
ok "2: a span from every stage that handled the case (validate, triage, approve, execute, audit)" \
    bash -c "for s in validate triage approve execute audit; do jq -r .service '$WORK/spans1.txt' | grep -qx payguard-\$s || exit 1; done"
ok "2: outside calls are client spans (GET payments, POST ledger, POST teams)" \
    bash -c "for n in 'GET payments' 'POST ledger' 'POST teams'; do jq -s -e --arg n \"\$n\" 'any(.[]; .name == \$n and .kind == 3)' '$WORK/spans1.txt' >/dev/null || exit 1; done"
ok "2: every span's parent is a span of the trace, or the webhook's" \
    bash -c "ids=\$(jq -r .span_id '$WORK/spans1.txt'; echo $PARENT); jq -r .parent_span_id '$WORK/spans1.txt' | while read -r p; do grep -qx \"\$p\" <<<\"\$ids\" || exit 1; done"
ok "2: each call's traceparent names a client span the collector got" \
    bash -c "awk '{print \$3}' '$WORK/calls1m.txt' | cut -d- -f3 | while read -r s; do jq -s -e --arg s \"\$s\" 'any(.[]; .span_id == \$s and .kind == 3)' '$WORK/spans1.txt' >/dev/null || exit 1; done"
ok "2: audit's /metrics counts the spans it sent" \
    bash -c "curl -s '$AUD/metrics' | awk '/^payguard_otlp_spans_total\\{.*outcome=\"sent\"/ {s += \$2} END {exit !(s > 0)}'"

# ---- 3. no traceparent, or a malformed one: a trace of its own
ok "3: the sandbox holds rf_t2 and rf_t3" bash -c "$(declare -f seed_refund); SBX=$SBX; seed_refund rf_t2 pay_t2 1300 && seed_refund rf_t3 pay_t3 1400"
r2=$(send_stripe "$(stripe_refund_body evt_t2 refund.updated rf_t2 pay_t2 1300 usd succeeded)" "$E2E_SECRET")
r3=$(send_stripe "$(stripe_refund_body evt_t3 refund.updated rf_t3 pay_t3 1400 usd succeeded)" "$E2E_SECRET" \
    "$(date +%s)" -H "traceparent: 00-$TRACE-0000000000000000-01")
ok "3: both accepted" test -n "$r2" -a -n "$r3"
ok "3: both cases end executed" bash -c "$(declare -f wait_state case_json); OPS=$OPS AUD=$AUD; wait_state refund-rf_t2 executed && wait_state refund-rf_t3 executed"
t2=$(trail_traces refund-rf_t2 | awk '$1 == "receipt" {print $2}')
t3=$(trail_traces refund-rf_t3 | awk '$1 == "receipt" {print $2}')
ok "3: without a traceparent, the receipt starts a new trace ($t2)" \
    bash -c "[[ '$t2' =~ ^00-[0-9a-f]{32}-[0-9a-f]{16}-01\$ ]] && [[ '$t2' != *$TRACE* ]]"
ok "3: a malformed one (a zero parent-id) is not continued: a new trace ($t3)" \
    bash -c "[[ '$t3' =~ ^00-[0-9a-f]{32}-[0-9a-f]{16}-01\$ ]] && [[ '$t3' != *$TRACE* ]] && [ '$t3' != '$t2' ]"
tid2=$(cut -d- -f2 <<<"$t2")
ok "3: rf_t2's executed event is in its receipt's trace" \
    bash -c "'$BIN/payguard' audit export --case refund-rf_t2 -c '$CFG' 2>/dev/null | jq -r 'select(.event.type == \"executed\") | .event.body.traceparent' | grep -q -- '-$tid2-'"

# ---- 4. people's decisions in the trace
PTRACE=0af7651916cd43dd8448eb211c80319c
# the payments API and the ledger say paid; the PSP says failed
curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' "$SBX/_sandbox/seed" --data-binary \
    '{"payouts":[{"id":"P-T4","status":"paid","amount":1250000,"currency":"USD","beneficiary_id":"B-T4"}],
      "entries":[{"type":"payout_paid","ref":"P-T4","amount":1250000,"currency":"USD","case_id":"seed"}]}'
r4=$(send_stripe "$(stripe_payout_body evt_t4 P-T4 1250000 usd)" "$E2E_SECRET" "$(date +%s)" \
    -H "traceparent: 00-$PTRACE-b7ad6b7169203331-01")
ok "4: a USD 12,500 payout failure is accepted ($r4)" test -n "$r4"
ok "4: it awaits people" wait_state payout-P-T4 awaiting_approval
APORT=$(awk '/^approve$/ {a = 1} a && $1 == "http_port" {print $3; exit}' "$CFG")
decide() {
    curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $(tok "$1")" -H 'Content-Type: application/json' \
        --data-binary '{"decision":"approve","comment":"e2e trace"}' "http://127.0.0.1:$APORT/approvals/payout-P-T4/decisions"
}
ok "4: a finance manager and a compliance officer approve it" bash -c "[ $(decide fin_mgr) = 200 ] && [ $(decide compliance_officer) = 200 ]"
ok "4: the case ends executed" wait_state payout-P-T4 executed
ok "4: the decisions are spans of the payout's trace" wait_spans "$PTRACE" "approve decision approve by fin_mgr"
trail_traces payout-P-T4 >"$WORK/trail4.txt"
ok "4: the decisions, the outcome and execute's events carry the payout's trace" \
    bash -c "for t in decision approved runbook executed; do grep -q \"^\$t 00-$PTRACE-\" '$WORK/trail4.txt' || exit 1; done"
ok "4: execute's hold of the payout carried it" \
    bash -c "curl -s '$SBX/_sandbox/calls?system=payments&limit=100000' | jq -r '.calls[] | select(.method == \"POST\" and (.path | contains(\"P-T4\"))) | .traceparent' | grep -q -- '-$PTRACE-'"

[ -n "${E2E_TRACE_KEEP:-}" ] && { echo "# kept up: $CFG"; exit 0; }
ok "group stops" down "$CFG"

# ---- 5. a bad endpoint
BAD=$(write_config bad "$(free_port)")
cfg_merge "$BAD" <<CFG
payguard
    trace
        otlp_endpoint = ftp://collector.example:4318
CFG
out=$("$BIN/payguard" up -c "$BAD" -d 2>&1)
ok "5: payguard up refuses otlp_endpoint = ftp://...: naming the setting" \
    bash -c "grep -q 'payguard/trace/otlp_endpoint' <<<'$out' && ! '$BIN/payguard' status -c '$BAD' >/dev/null 2>&1"

finish
