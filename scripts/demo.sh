#!/usr/bin/env bash
# demo.sh - what `make run` does after building: start the whole group on its
# embedded defaults (run/ and data/ in this directory; the sandbox of the
# outside systems on 127.0.0.1:8090), then show it working:
#   1. a signed Stripe payout.failed for payout P-10492, which the (sandbox)
#      payments API says is paid: validated, with the state it read, and on
#      through every stage into the audit trail;
#   2. the same event delivered again: recorded as a duplicate, nothing more;
#   3. a forged one (wrong secret): recorded as rejected, with its reason;
#   4. an Adyen notification (POST /webhooks/adyen), signed and sent by the
#      sandbox playing Adyen: a REFUND that succeeded for rf_123, whose
#      ledger lacks its refund_succeeded entry; its case, auto-approved by
#      policy and executed like a Stripe refund's;
#   5. the first one awaiting its approvers (tier 2), and how to decide it;
#   6. its case timeline from audit's case index;
#   7. the audit trail's hash chain and signed checkpoints verified.
# The group keeps running; `bin/payguard down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
PG=bin/payguard
PORT=$(awk '$1 == "http_port" {print $3; exit}' config/payguard.cfg)
URL=http://127.0.0.1:$PORT

if $PG status >/dev/null 2>&1; then
    echo "payguard is already running here:"
else
    $PG up -d
    for _ in $(seq 1 100); do
        curl -fs "$URL/healthz" >/dev/null 2>&1 && curl -fs http://127.0.0.1:8090/_sandbox/healthz >/dev/null 2>&1 && break
        sleep 0.1
    done
    sleep 0.5
    echo "payguard is up (logs: run/payguard.log):"
fi
$PG status
echo

# post_stripe SECRET BODY - sign as Stripe does and POST; print the answer
post_stripe() {
    local t sig
    t=$(date +%s)
    sig=$(printf '%s' "$t.$2" | openssl dgst -sha256 -hmac "$1" -r | cut -d' ' -f1)
    curl -s -X POST "$URL/webhooks/stripe" -H 'Content-Type: application/json' \
        -H "Stripe-Signature: t=$t,v1=$sig" --data-binary "$2"
}
receipt_of() { sed -n 's/.*"receipt_id":"\([^"]*\)".*/\1/p' <<<"$1"; }

SECRET=$(grep -v '^#' config/sandbox/stripe.secrets | head -1) # the demo secret validate trusts
now=$(date +%s)
body='{"id":"evt_demo_'$now'","type":"payout.failed","created":'$now',"data":{"object":{"id":"po_10492","object":"payout","amount":1250000,"currency":"usd","status":"failed","failure_code":"account_closed","failure_message":"The bank account has been closed","metadata":{"payout_id":"P-10492"}}}}'

echo "1. POST /webhooks/stripe  payout.failed for P-10492, 12,500.00 USD (the payments API says: paid)"
a1=$(post_stripe "$SECRET" "$body")
echo "   -> $a1"
echo "2. the same event again, as PSPs do"
a2=$(post_stripe "$SECRET" "$body")
echo "   -> $a2"
echo "3. the same event signed with a secret we do not know"
a3=$(post_stripe whsec_not_ours "$body")
echo "   -> $a3"
r1=$(receipt_of "$a1") r2=$(receipt_of "$a2") r3=$(receipt_of "$a3")
[ -n "$r1" ] || { echo "no receipt id: is ingest healthy? see run/payguard.log"; exit 1; }
sleep 1.5

$PG journal dump audit.0 >run/demo-audit.jsonl
verdict() { # the event validate made of a receipt, as "type: code or reason"
    local line
    line=$(grep -F "\"cause\":\"$1\"" run/demo-audit.jsonl | grep -F '"stage":"validate.0"' | head -1 || true)
    sed -n 's/.*"type":"\([^"]*\)","case_key":"\([^"]*\)".*/\1 (case \2)/p' <<<"$line" | sed 's/ (case )//' | tr -d '\n'
    sed -n 's/.*"reason":"\([^"]*\)".*/: \1/p' <<<"$line"
    echo
}
echo
echo "What validate decided (the audit trail, data/audit.0):"
echo "   1. $(verdict "$r1")"
echo "   2. $(verdict "$r2")"
echo "   3. $(verdict "$r3")"
echo
echo "The first one's journey, each event caused by the one before:"
id=$r1
for _ in 1 2 3 4 5 6; do
    line=$(grep -F "\"id\":\"$id\"" run/demo-audit.jsonl | head -1 || true)
    [ -n "$line" ] || break
    sed -n 's/.*"id":"\([^"]*\)","type":"\([^"]*\)".*"stage":"\([^"]*\)".*/   \3  \2  \1/p' <<<"$line"
    next=$(grep -F "\"cause\":\"$id\"" run/demo-audit.jsonl | head -1 || true)
    id=$(sed -n 's/.*"event":{"id":"\([^"]*\)".*/\1/p' <<<"$next")
    [ -n "$id" ] || break
done
rm -f run/demo-audit.jsonl
APORT=$(awk '$1 == "http_port" {print $3}' config/payguard.cfg | sed -n 2p)
echo
echo "4. POST /webhooks/adyen  an Adyen REFUND notification for rf_123 (18.50 USD), signed with the sandbox's copy of"
echo "   config/sandbox/adyen.hmac (config/sandbox/adyen-sandbox.hmac) and sent by the sandbox playing Adyen (POST /_sandbox/adyen/notify):"
item='{"eventCode":"REFUND","success":"true","merchantReference":"rf_123","amount":{"value":1850,"currency":"USD"},"additionalData":{"metadata.payment_id":"pay_9"}}'
a4=$(curl -s -X POST -H 'Content-Type: application/json' --data-binary "{\"items\":[$item]}" http://127.0.0.1:8090/_sandbox/adyen/notify)
echo "   -> ingest answered HTTP $(sed -n 's/.*"status":\([0-9]*\).*/\1/p' <<<"$a4") $(sed -n 's/.*"answer":"\([^"]*\)".*/\1/p' <<<"$a4"), receipt $(sed -n 's/.*"receipt_id":"\([^"]*\)".*/\1/p' <<<"$a4")"
for _ in $(seq 1 50); do
    $PG case show refund-rf_123 --token-file config/sandbox/ops_lead.token 2>/dev/null | grep -q 'state: *executed' && break
    sleep 0.2
done
echo "   its case, refund-rf_123 (bin/payguard case show refund-rf_123 --token-file config/sandbox/ops_lead.token):"
$PG case show refund-rf_123 --token-file config/sandbox/ops_lead.token | sed 's/^/   /'
echo
echo "5. The Stripe payout awaits people (12,500.00 USD is tier 2: a finance_manager and a compliance officer):"
$PG approvals --token-file config/sandbox/ops_lead.token | sed 's/^/   /'
cat <<MSG

Decide it as the demo approvers (their tokens are in config/sandbox/):
  bin/payguard approve payout-P-10492 --as fin_mgr --token-file config/sandbox/fin_mgr.token
  bin/payguard approve payout-P-10492 --as compliance_officer --token-file config/sandbox/compliance_officer.token
or through the API: curl -H "Authorization: Bearer \$(cat config/sandbox/fin_mgr.token)" http://127.0.0.1:$APORT/approvals
MSG
UPORT=$(awk '$1 == "http_port" {print $3}' config/payguard.cfg | sed -n 3p)
CPORT=$(awk '$1 == "http_port" {print $3}' config/payguard.cfg | sed -n 4p)
echo
echo "6. The case as audit sees it (bin/payguard case show payout-P-10492 --token-file config/sandbox/ops_lead.token):"
$PG case show payout-P-10492 --token-file config/sandbox/ops_lead.token | sed 's/^/   /'
echo
echo "7. The audit trail, checked end to end (bin/payguard audit verify):"
$PG audit verify | sed 's/^/   /'
cat <<MSG

After approving, \`bin/payguard case show payout-P-10492 --token-file config/sandbox/ops_lead.token\` shows every runbook step;
the same as JSON: curl -H "Authorization: Bearer \$(cat config/sandbox/ops_lead.token)" http://127.0.0.1:$UPORT/cases/payout-P-10492
MSG
cat <<MSG

Send your own (the sandbox knows payouts P-10492 P-20931 P-00417 P-31000 and refunds
rf_123 rf_456 rf_789 rf_900; the demo Stripe secret is in config/sandbox/stripe.secrets):
  curl -X POST $URL/webhooks/stripe -H 'Content-Type: application/json' \\
       -H 'Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>' -d @event.json
or an Adyen notification, signed by the sandbox (sign "bad" to see a forged item rejected alone):
  curl -X POST http://127.0.0.1:8090/_sandbox/adyen/notify -H 'Content-Type: application/json' \\
       -d '{"items":[{"eventCode":"PAYOUT_DECLINE","merchantReference":"P-20931","amount":{"value":7500000,"currency":"USD"}},
                     {"eventCode":"REFUND","success":"false","merchantReference":"rf_456","amount":{"value":12000,"currency":"USD"},
                      "additionalData":{"metadata.payment_id":"pay_12"},"sign":"bad"}]}'
The ops console: http://127.0.0.1:$CPORT/  (sign in with a demo approver's token, e.g.
              the contents of config/sandbox/fin_mgr.token; decide payout-P-10492 there)
Look around:  bin/payguard status    bin/payguard journal dump audit.0    curl $URL/metrics
              curl http://127.0.0.1:8090/_sandbox/calls   (what payguard asked the outside systems)
Stop it:      bin/payguard down
MSG
