#!/usr/bin/env bash
# demo.sh - what `make run` does after building: start the whole group on its
# embedded defaults (run/ and data/ in this directory), send it one signed
# webhook, and show the receipt travelling through every stage's journal
# into the audit trail. The group keeps running; `bin/payguard down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
PG=bin/payguard
PORT=$(awk '$1 == "http_port" {print $3}' config/payguard.cfg)

if $PG status >/dev/null 2>&1; then
    echo "payguard is already running here:"
else
    $PG up -d
    for _ in $(seq 1 100); do
        curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    echo "payguard is up (logs: run/payguard.log):"
fi
$PG status
echo

# A Stripe-style signed payout.failed, as a PSP would send it.
SECRET=whsec_demo_only
now=$(date +%s)
body='{"id":"evt_demo_'$now'","type":"payout.failed","created":'$now',"data":{"object":{"id":"po_demo","object":"payout","amount":1250000,"currency":"usd","status":"failed","failure_code":"account_closed","failure_message":"The bank account has been closed","metadata":{"payout_id":"P-10492"}}}}'
sig=$(printf '%s' "$now.$body" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
echo "POST /webhooks/stripe  (payout.failed for P-10492, 12,500.00 USD)"
answer=$(curl -s -X POST "http://127.0.0.1:$PORT/webhooks/stripe" \
    -H 'Content-Type: application/json' -H "Stripe-Signature: t=$now,v1=$sig" -d "$body")
echo "  -> $answer"
rid=$(sed -n 's/.*"receipt_id":"\([^"]*\)".*/\1/p' <<<"$answer")
[ -n "$rid" ] || { echo "no receipt id: is ingest healthy? see run/payguard.log"; exit 1; }

sleep 1
echo
echo "The audit trail (data/audit.0) now holds its journey, each event caused by the one before:"
$PG journal dump audit.0 >run/demo-audit.jsonl
id=$rid
for _ in 1 2 3 4 5 6; do
    line=$(grep -F "\"id\":\"$id\"" run/demo-audit.jsonl | head -1 || true)
    [ -n "$line" ] || break
    sed -n 's/.*"id":"\([^"]*\)","type":"\([^"]*\)".*"stage":"\([^"]*\)".*/  \3  \2  \1/p' <<<"$line"
    next=$(grep -F "\"cause\":\"$id\"" run/demo-audit.jsonl | head -1 || true)
    id=$(sed -n 's/.*"event":{"id":"\([^"]*\)".*/\1/p' <<<"$next")
    [ -n "$id" ] || break
done
rm -f run/demo-audit.jsonl
cat <<MSG

Send your own webhook:
  curl -X POST http://127.0.0.1:$PORT/webhooks/stripe -H 'Content-Type: application/json' \\
       -H 'Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>' -d @event.json
Look around:  bin/payguard status | bin/payguard journal dump audit.0 | curl http://127.0.0.1:$PORT/metrics
Stop it:      bin/payguard down
MSG
