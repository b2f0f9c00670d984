#!/usr/bin/env bash
# e2e_adyen - POST /webhooks/adyen through the real processes, driven by the
# sandbox playing Adyen (POST /_sandbox/adyen/notify signs and sends):
#   1. a batch of three items (a refund that succeeded, a payout declined,
#      and a refund whose HMAC is wrong): 200 "[accepted]" once on disk; the
#      two good items become cases and run like Stripe's (the refund is
#      auto-approved and its ledger entry posted, the payout awaits people);
#      the bad one is rejected alone, its reason naming it, on the trail;
#   2. the same batch again: the two good items are duplicates;
#   3. basic auth: none or wrong -> 401 + WWW-Authenticate: Basic, nothing
#      recorded; right -> 200;
#   4. an eventCode payguard does not handle: ignored;
#   5. a refund in JPY (0 decimals) and one failed (success false);
#   6. more than 16 items: the whole request rejected as schema_invalid;
#   7. key rotation: an item signed with the second live key verifies.
set -u
. "$(dirname "$0")/lib_e2e.sh"

PORT=$(free_port)
UPORT=$(free_port)
CFG=$(write_config a "$PORT")
SBXURL=$(sandbox_url "$CFG")
D=$WORK/a
KEY_OLD=$(openssl rand -hex 32 | tr a-f A-F)
KEY_NEW=$(openssl rand -hex 32)
printf '# validate: both live during the rotation\n%s\n%s\n' "$KEY_OLD" "$KEY_NEW" >"$D/adyen.hmac"
cp "$D/adyen.hmac" "$D/sandbox-adyen.hmac" # the sandbox's own copy
BA_USER=adyen-e2e
BA_PASS='e2e pass: with a colon'
BA_SHA=$(printf '%s' "$BA_PASS" | sha256sum | cut -d' ' -f1)
cfg_merge "$CFG" <<CFG
sandbox
    adyen_hmac_file = $D/sandbox-adyen.hmac
ingest
    adyen_basic_user = $BA_USER
    adyen_basic_password_sha256 = $BA_SHA
validate
    adyen_secrets_file = $D/adyen.hmac
CFG
URL=http://127.0.0.1:$PORT
AUD=http://127.0.0.1:$UPORT
ok "group and sandbox start" up "$CFG"
ok "the config holds the password's SHA-256, never the password" bash -c "! grep -qF '$BA_PASS' '$CFG'"

seed='{"payments":[{"id":"pay_jp","amount":50000,"currency":"JPY","customer_id":"cus_jp","customer_risk":"low","flagged":false,"refunded_amount":0}],
 "psp_refunds":[{"id":"rf_jp","amount":1200,"currency":"jpy","status":"succeeded","payment_intent":"pi_jp","metadata":{"payment_id":"pay_jp"}}],
 "entries":[{"type":"refund_initiated","ref":"rf_jp","amount":1200,"currency":"JPY","case_id":"seed"}]}'
ok "the sandbox takes the JPY test data" test "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data-binary "$seed" "$SBXURL/_sandbox/seed")" = 200

AUTH='"basic_auth":{"user":"'$BA_USER'","password":"'$BA_PASS'"}'
# notify JSON_ITEMS [EXTRA] - the sandbox signs and sends; prints its answer
notify() {
    curl -s -X POST -H 'Content-Type: application/json' --data-binary "{\"items\":[$1]${2:+,$2}}" \
        "$SBXURL/_sandbox/adyen/notify"
}
field() { sed -n "s/.*\"$1\":\"\\{0,1\\}\\([^\",}]*\\).*/\\1/p" <<<"$2" | head -1; }

# ---- 1. three items, the third with a bad HMAC
REFUND_OK='{"eventCode":"REFUND","success":"true","pspReference":"ADYRF000000123","originalReference":"ADYPAY00000009","merchantReference":"rf_123","amount":{"value":1850,"currency":"USD"},"additionalData":{"metadata.payment_id":"pay_9"}}'
PAYOUT_DECLINE='{"eventCode":"PAYOUT_DECLINE","success":"true","pspReference":"ADYPO000010492","merchantReference":"P-10492","amount":{"value":1250000,"currency":"USD"},"reason":"Declined by the bank"}'
REFUND_BAD='{"eventCode":"REFUND","success":"false","pspReference":"ADYRF000000456","merchantReference":"rf_456","amount":{"value":12000,"currency":"USD"},"additionalData":{"metadata.payment_id":"pay_12"},"sign":"bad"}'
BATCH="$REFUND_OK,$PAYOUT_DECLINE,$REFUND_BAD"
a1=$(notify "$BATCH" "$AUTH")
r1=$(field receipt_id "$a1")
ok "a batch of three: 200 [accepted] with a receipt id ($r1)" \
    test "$(field status "$a1")" = 200 -a "$(field answer "$a1")" = "[accepted]" -a "${r1:0:5}" = rcpt_

# ---- 2. the same batch again
a2=$(notify "$BATCH" "$AUTH")
r2=$(field receipt_id "$a2")
ok "the batch re-sent: 200 [accepted] again" test "$(field status "$a2")" = 200 -a -n "$r2"

# ---- 3. basic auth, straight to ingest
raw='{"live":"false","notificationItems":[]}'
hdrs=$(curl -s -D - -o "$D/noauth.body" -X POST -H 'Content-Type: application/json' --data-binary "$raw" "$URL/webhooks/adyen")
ok "no basic auth: 401 with WWW-Authenticate: Basic realm" \
    bash -c "grep -q '^HTTP/1.1 401' <<<'$hdrs' && grep -qi '^WWW-Authenticate: Basic realm=' <<<'$hdrs'"
a3=$(notify "$REFUND_OK" '"basic_auth":{"user":"'$BA_USER'","password":"not it"}')
ok "a wrong password: 401, no receipt" test "$(field status "$a3")" = 401 -a -z "$(field receipt_id "$a3")"
a3u=$(notify "$REFUND_OK" '"basic_auth":{"user":"someone","password":"'"$BA_PASS"'"}')
ok "a wrong user with the right password: 401" test "$(field status "$a3u")" = 401
hdrs=$(curl -s -D - -o "$D/auth.body" -u "$BA_USER:$BA_PASS" -X POST -H 'Content-Type: application/json' \
    --data-binary "$raw" "$URL/webhooks/adyen")
ok "the right user and password: 200, text/plain [accepted], Payguard-Receipt-Id" \
    bash -c "grep -q '^HTTP/1.1 200' <<<'$hdrs' && grep -qi '^Content-Type: text/plain' <<<'$hdrs' &&
             grep -qi '^Payguard-Receipt-Id: rcpt_' <<<'$hdrs' && test \"\$(cat '$D/auth.body')\" = '[accepted]'"
r_empty=$(sed -n 's/^[Pp]ayguard-[Rr]eceipt-[Ii]d: \(rcpt_[0-9a-f]*\).*/\1/p' <<<"$hdrs" | tr -d '\r')

# ---- 4. an eventCode payguard does not handle
a4=$(notify '{"eventCode":"AUTHORISATION","success":"true","merchantReference":"order-77","amount":{"value":1130,"currency":"EUR"}}' "$AUTH")
r4=$(field receipt_id "$a4")

# ---- 5. JPY, and a refund that failed
a5=$(notify '{"eventCode":"REFUND","success":"true","pspReference":"ADYRFJP0000001","merchantReference":"rf_jp","amount":{"value":1200,"currency":"JPY"},"additionalData":{"metadata.payment_id":"pay_jp"}}' "$AUTH")
r5=$(field receipt_id "$a5")
a5f=$(notify '{"eventCode":"REFUND_FAILED","success":"true","pspReference":"ADYRF456FAILED","merchantReference":"rf_456","amount":{"value":12000,"currency":"USD"},"additionalData":{"metadata.payment_id":"pay_12"}}' "$AUTH")
r5f=$(field receipt_id "$a5f")

# ---- 6. 17 items
many=""
for i in $(seq 1 17); do many="$many{\"eventCode\":\"AUTHORISATION\",\"merchantReference\":\"o-$i\",\"amount\":{\"value\":$i,\"currency\":\"EUR\"}},"; done
a6=$(notify "${many%,}" "$AUTH")
r6=$(field receipt_id "$a6")
ok "17 items: still 200 [accepted] (recorded first, judged by validate)" test "$(field status "$a6")" = 200 -a -n "$r6"

# ---- 7. the second live key
a7=$(notify '{"eventCode":"PAYOUT_EXPIRE","success":"true","pspReference":"ADYPO000000417","merchantReference":"P-00417","amount":{"value":180000,"currency":"USD"},"key":1}' "$AUTH")
r7=$(field receipt_id "$a7")

ok "everything drains" quiesce "$CFG" 60
"$BIN/pg-verdicts" "$D/data/audit.0" >"$D/verdicts"
verdicts_of() { awk -v r="$1" '$2 == r {print $3 ($4 == "-" ? "" : ":" $4)}' "$D/verdicts" | sort | tr '\n' ' ' | sed 's/ $//'; }
"$BIN/payguard" journal dump -c "$CFG" audit.0 >"$D/trail.jsonl"

# 1.
ok "batch 1: two items validated, the third rejected for its signature" \
    test "$(verdicts_of "$r1")" = "rejected:signature_mismatch validated validated"
ok "the good items are the cases refund-rf_123 and payout-P-10492 (the ids Stripe's events get)" \
    test "$(awk -v r="$r1" '$2 == r && $3 == "validated" {print $5}' "$D/verdicts" | sort | tr '\n' ' ')" = "payout-P-10492 refund-rf_123 "
ok "the rejection names the item and why, on the audit trail" \
    bash -c "grep -F '\"cause\":\"$r1\"' '$D/trail.jsonl' | grep -F '\"type\":\"rejected\"' |
             grep -qF 'notification item 3 of 3: signature_mismatch: adyen signature: hmacSignature matches none of 2 live keys'"
ok "the validated item carries Adyen's facts (provider adyen, event REFUND, key REFUND:ADYRF000000123:true)" \
    bash -c "'$BIN/payguard' journal dump -c '$CFG' validate.0 | grep -F '\"cause\":\"$r1\"' | grep -F '\"case_key\":\"refund-rf_123\"' |
             grep -F '\"provider\":\"adyen\"' | grep -F '\"event_type\":\"REFUND\"' | grep -qF '\"key\":\"REFUND:ADYRF000000123:true\"'"
case_state() { curl -s -H "Authorization: Bearer $(tok ops_lead)" "$AUD/cases/$1" | grep -o '"state":"[^"]*"' | head -1 | cut -d'"' -f4; }
for _ in $(seq 1 100); do [ "$(case_state refund-rf_123)" = executed ] && break; sleep 0.2; done
ok "refund-rf_123 ran like a Stripe refund: auto-approved and executed" test "$(case_state refund-rf_123)" = executed
ok "its runbook posted refund_succeeded to the ledger for that case" \
    bash -c "curl -s '$SBXURL/_sandbox/state' | grep -o '{[^{}]*\"type\":\"refund_succeeded\"[^{}]*}' | grep -F '\"ref\":\"rf_123\"' | grep -qF '\"case_id\":\"refund-rf_123\"'"
ok "payout-P-10492 awaits its approvers (tier 2), like a Stripe payout.failed" test "$(case_state payout-P-10492)" = awaiting_approval
# 2.
ok "the re-sent batch: the two good items are duplicates, the bad one rejected again" \
    test "$(verdicts_of "$r2")" = "duplicate duplicate rejected:signature_mismatch"
# 3.
ok "the 401s are on the trail as HTTP refusals (gate http, unauthorized), nothing recorded" \
    test "$(grep -F '"type":"rejected"' "$D/trail.jsonl" | grep -F '"code":"unauthorized"' | grep -c '"path":"/webhooks/adyen"')" -ge 3
ok "an empty notificationItems (authorised) is recorded, then rejected as schema_invalid" \
    test "$(verdicts_of "$r_empty")" = "rejected:schema_invalid"
# 4.
ok "an unknown eventCode (AUTHORISATION) is recorded and closed as ignored" test "$(verdicts_of "$r4")" = ignored
# 5.
ok "a JPY refund is validated" test "$(verdicts_of "$r5")" = validated
ok "its case shows 1,200 JPY (0 decimals)" \
    bash -c "curl -s -H 'Authorization: Bearer $(tok ops_lead)' '$AUD/cases/refund-rf_jp' | grep -qF '\"amount_text\":\"1,200 JPY\"'"
ok "REFUND_FAILED is a failed refund on refund-rf_456" \
    bash -c "'$BIN/payguard' journal dump -c '$CFG' validate.0 | grep -F '\"cause\":\"$r5f\"' | grep -F '\"type\":\"validated\"' |
             grep -F '\"case_key\":\"refund-rf_456\"' | grep -qF '\"status\":\"failed\"'"
# 6.
ok "17 items: the whole request rejected as schema_invalid, saying the limit" \
    bash -c "test '$(verdicts_of "$r6")' = rejected:schema_invalid &&
             grep -F '\"cause\":\"$r6\"' '$D/trail.jsonl' | grep -qF 'notificationItems: 17 items (limit 16 a request)'"
# 7.
ok "an item signed with the second live key verifies (rotation)" test "$(verdicts_of "$r7")" = validated
ok "Adyen receipts are counted by endpoint in /metrics" \
    bash -c "curl -s '$URL/metrics' | grep -q 'payguard_ingest_receipts_total{instance=\"ingest.0\",endpoint=\"adyen\"}'"

finish
