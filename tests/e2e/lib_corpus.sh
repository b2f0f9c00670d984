# lib_corpus.sh - the bad-webhook corpus and its helpers (sourced by
# e2e_validate.sh, which sets URL, STRIPE_A, STRIPE_B, STRIPE_RETIRED,
# STD_KEY and ADYEN_KEY, the hex HMAC key validate trusts for Adyen).
#
# run_corpus FILE posts every case and writes "<receipt id> <expected> <name>"
# lines to FILE. <expected> is a validate rejection code (signature_mismatch,
# schema_invalid, ...), "accepted" for the good webhooks interleaved with the
# bad ones, "ignored" for an event type payguard does not handle, or
# "http:<status>" for what ingest itself refuses (no receipt id then). An
# Adyen batch judges its items one by one: its <expected> lists every
# item's verdict, sorted and joined with commas
# ("rejected:signature_mismatch,validated,validated").
# Each bad webhook is otherwise valid (a real seeded payout, a correct
# signature), so the verdict is caused by the one thing each case breaks.

# ---- building and signing

# iso T - RFC 3339 UTC of unix time T
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

# stripe_payout_body EVT PAYOUT AMOUNT CUR [TYPE] [CREATED]
stripe_payout_body() {
    printf '{"id":"%s","type":"%s","created":%s,"data":{"object":{"id":"po_%s","object":"payout","amount":%s,"currency":"%s","status":"failed","failure_code":"account_closed","failure_message":"The bank account has been closed","metadata":{"payout_id":"%s"}}}}' \
        "$1" "${5:-payout.failed}" "${6:-$(date +%s)}" "$2" "$3" "$4" "$2"
}

# stripe_refund_body EVT TYPE REFUND PAYMENT AMOUNT CUR STATUS
stripe_refund_body() {
    printf '{"id":"%s","type":"%s","created":%s,"data":{"object":{"id":"%s","object":"refund","amount":%s,"currency":"%s","status":"%s","payment_intent":"pi_x","metadata":{"payment_id":"%s"}}}}' \
        "$1" "$2" "$(date +%s)" "$3" "$5" "$6" "$7" "$4"
}

# std_payout_body EVT TYPE PAYOUT AMOUNT CUR [T]
std_payout_body() {
    printf '{"id":"%s","type":"%s","created_at":"%s","payout":{"id":"%s","amount":%s,"currency":"%s","failure_code":"account_closed","failure_message":"closed"}}' \
        "$1" "$2" "$(iso "${6:-$(date +%s)}")" "$3" "$4" "$5"
}

# std_refund_body EVT TYPE REFUND PAYMENT AMOUNT CUR [T]
std_refund_body() {
    printf '{"id":"%s","type":"%s","created_at":"%s","refund":{"id":"%s","payment_id":"%s","amount":%s,"currency":"%s"}}' \
        "$1" "$2" "$(iso "${7:-$(date +%s)}")" "$3" "$4" "$5" "$6"
}

# stripe_sig SECRET T BODY - hex HMAC-SHA256(secret, "t.body")
stripe_sig() { printf '%s' "$2.$3" | openssl dgst -sha256 -hmac "$1" -r | cut -d' ' -f1; }

# std_sig KEY_B64 ID T BODY - base64 HMAC-SHA256(key, "id.t.body")
std_sig() {
    local hex
    hex=$(printf '%s' "$1" | base64 -d | od -An -tx1 | tr -d ' \n')
    printf '%s' "$2.$3.$4" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$hex" -binary | base64 -w0
}

# adyen_item KEY EVENT SUCCESS PSP MREF VALUE CUR [PAYMENT] [MERCHANT_ACCOUNT] -
# one NotificationRequestItem signed with the hex KEY, as Adyen documents:
# base64(HMAC-SHA256(key, "psp:orig:account:mref:value:cur:event:success")),
# '\' and ':' escaped inside a field (computed here with openssl, apart
# from validate's code)
adyen_item() {
    local key=$1 ev=$2 ok=$3 psp=$4 mref=$5 val=$6 cur=$7 pay=${8:-} acct=${9:-PayguardE2E}
    local signing mac
    esc() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/:/\\:/g'; }
    signing="$(esc "$psp")::$(esc "$acct"):$(esc "$mref"):$val:$cur:$ev:$ok"
    mac=$(printf '%s' "$signing" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -binary | base64 -w0)
    local acct_json=${acct//\\/\\\\}
    printf '{"NotificationRequestItem":{"additionalData":{"hmacSignature":"%s"%s},"amount":{"value":%s,"currency":"%s"},"eventCode":"%s","eventDate":"%s","merchantAccountCode":"%s","merchantReference":"%s","pspReference":"%s","success":"%s"}}' \
        "$mac" "${pay:+,\"metadata.payment_id\":\"$pay\"}" "$val" "$cur" "$ev" "$(date -u +%Y-%m-%dT%H:%M:%S+00:00)" "$acct_json" "$mref" "$psp" "$ok"
}

# post EP BODY CURLARGS... - POST and print the receipt id ("" if none)
post() {
    local ep=$1 body=$2
    shift 2
    curl -s -D - -X POST "$URL/webhooks/$ep" -H 'Content-Type: application/json' "$@" --data-binary "$body" |
        sed -n 's/.*"receipt_id":"\([^"]*\)".*/\1/p; s/^[Pp]ayguard-[Rr]eceipt-[Ii]d: \(rcpt_[0-9a-f]*\).*/\1/p'
}

# send_adyen ITEMS... - a batch of the given notification items
send_adyen() {
    local IFS=,
    post adyen "{\"live\":\"false\",\"notificationItems\":[$*]}"
}

# send_stripe BODY SECRET [T] [CURLARGS...] - a Stripe webhook signed with SECRET at T
send_stripe() {
    local body=$1 secret=$2 t=${3:-$(date +%s)}
    shift 3 2>/dev/null || shift $#
    post stripe "$body" -H "Stripe-Signature: t=$t,v1=$(stripe_sig "$secret" "$t" "$body")" "$@"
}

# send_standard BODY ID T [KEY_B64] [CURLARGS...] - a Standard Webhook
send_standard() {
    local body=$1 id=$2 t=$3 key=${4:-$STD_KEY}
    shift 4 2>/dev/null || shift $#
    post standard "$body" -H "webhook-id: $id" -H "webhook-timestamp: $t" \
        -H "webhook-signature: v1,$(std_sig "$key" "$id" "$t" "$body")" "$@"
}

# ---- the corpus

CORPUS_OUT=""
CORPUS_N=0
# next_payout - a fresh seeded payout "P-E2E-n AMOUNT" (n 1..50)
next_payout() {
    CORPUS_N=$((CORPUS_N + 1))
    [ $CORPUS_N -gt 50 ] && CORPUS_N=1
    echo "P-E2E-$CORPUS_N $((100000 + CORPUS_N))"
}
# record EXPECTED NAME RID - one line of the expectations ("-" for no receipt)
record() { echo "${3:--} $1 $2" >>"$CORPUS_OUT"; }

# bad_stripe CODE NAME [HEADER-ARGS...] - a valid payout body, with the given headers
bad_stripe() {
    local code=$1 name=$2
    shift 2
    read -r p a <<<"$(next_payout)"
    record "$code" "$name" "$(post stripe "$(stripe_payout_body "evt_$name" "$p" "$a" usd)" "$@")"
}

# bad_stripe_signed CODE NAME SECRET T_OFFSET [CURLARGS...] - signed, but with this secret/time
bad_stripe_signed() {
    local code=$1 name=$2 secret=$3 off=$4
    shift 4
    read -r p a <<<"$(next_payout)"
    local t=$(($(date +%s) + off))
    record "$code" "$name" "$(send_stripe "$(stripe_payout_body "evt_$name" "$p" "$a" usd)" "$secret" "$t" "$@")"
}

# bad_body EP CODE NAME BODY - a body that is correctly signed but wrong
bad_body() {
    local ep=$1 code=$2 name=$3 body=$4
    if [ "$ep" = stripe ]; then
        record "$code" "$name" "$(send_stripe "$body" "$STRIPE_A" "$(date +%s)")"
    else
        record "$code" "$name" "$(send_standard "$body" "msg_$name" "$(date +%s)")"
    fi
}

# good - valid webhooks between the bad ones (two each time)
GOOD_N=0
good() {
    good_one
    good_one
}
good_one() {
    GOOD_N=$((GOOD_N + 1))
    read -r p a <<<"$(next_payout)"
    if [ $((GOOD_N % 2)) = 0 ]; then
        record accepted "good_$GOOD_N" "$(send_stripe "$(stripe_payout_body "evt_good_$GOOD_N" "$p" "$a" usd)" "$STRIPE_A")"
    else
        record accepted "good_$GOOD_N" "$(send_standard "$(std_payout_body "evt_good_$GOOD_N" payout.failed "$p" "$a" USD)" "msg_good_$GOOD_N" "$(date +%s)")"
    fi
}

# http_case STATUS NAME CURLARGS... - refused by ingest itself
http_case() {
    local status=$1 name=$2
    shift 2
    local got
    got=$(curl -s -o /dev/null -w '%{http_code}' "$@")
    [ "$got" = "$status" ] || echo "# corpus $name: expected HTTP $status, got $got"
    record "http:$status" "$name" ""
}

run_corpus() {
    CORPUS_OUT=$1
    : >"$CORPUS_OUT"
    local now
    now=$(date +%s)
    read -r P A <<<"$(next_payout)"
    local B
    B=$(stripe_payout_body evt_sig_base "$P" "$A" usd)

    # -- Stripe signatures
    bad_stripe signature_missing sig_none
    bad_stripe signature_missing sig_empty -H 'Stripe-Signature;'
    bad_stripe signature_malformed sig_garbage -H 'Stripe-Signature: garbage'
    bad_stripe signature_malformed sig_t_only -H "Stripe-Signature: t=$now"
    bad_stripe signature_malformed sig_v1_only -H "Stripe-Signature: v1=$(stripe_sig "$STRIPE_A" "$now" "$B")"
    bad_stripe signature_malformed sig_t_not_number -H "Stripe-Signature: t=yesterday,v1=$(printf '%064d' 0)"
    bad_stripe signature_malformed sig_v1_odd_hex -H "Stripe-Signature: t=$now,v1=abc"
    bad_stripe signature_malformed sig_v1_not_hex -H "Stripe-Signature: t=$now,v1=$(printf 'z%.0s' $(seq 64))"
    bad_stripe signature_malformed sig_v0_only -H "Stripe-Signature: t=$now,v0=$(printf '%064d' 0)"
    bad_stripe signature_malformed sig_two_t -H "Stripe-Signature: t=$now,t=$((now - 1)),v1=$(printf '%064d' 0)"
    bad_stripe signature_malformed sig_header_huge -H "Stripe-Signature: t=$now,v1=$(printf 'a%.0s' $(seq 5000))"
    good
    bad_stripe signature_mismatch sig_zero -H "Stripe-Signature: t=$now,v1=$(printf '%064d' 0)"
    bad_stripe signature_mismatch sig_other_body -H "Stripe-Signature: t=$now,v1=$(stripe_sig "$STRIPE_A" "$now" "$B")"
    bad_stripe_signed signature_mismatch sig_wrong_secret whsec_nobody_knows 0
    bad_stripe_signed signature_mismatch sig_retired_secret "$STRIPE_RETIRED" 0
    bad_stripe_signed signature_mismatch sig_secret_prefix_only whsec_ 0
    bad_stripe_signed signature_stale sig_stale_301 "$STRIPE_A" -301
    bad_stripe_signed signature_stale sig_stale_hour "$STRIPE_A" -3600
    bad_stripe_signed signature_stale sig_stale_day "$STRIPE_A" -86400
    bad_stripe_signed signature_stale sig_stale_epoch "$STRIPE_A" "-$now"
    # just past the tolerance, with room for a slow validate (its clock runs on)
    bad_stripe_signed signature_future sig_future_330 "$STRIPE_A" 330
    bad_stripe_signed signature_future sig_future_hour "$STRIPE_A" 3600
    bad_stripe_signed signature_future sig_future_year "$STRIPE_A" 31536000
    good
    # signed for one time, sent with another
    read -r p a <<<"$(next_payout)"
    local body
    body=$(stripe_payout_body evt_sig_t_swap "$p" "$a" usd)
    record signature_mismatch sig_t_swapped "$(post stripe "$body" -H "Stripe-Signature: t=$((now + 1)),v1=$(stripe_sig "$STRIPE_A" "$now" "$body")")"
    # the body changed after signing (one amount digit)
    read -r p a <<<"$(next_payout)"
    body=$(stripe_payout_body evt_sig_tamper "$p" "$a" usd)
    record signature_mismatch sig_body_tampered "$(post stripe "${body/\"amount\":$a/\"amount\":$((a + 1))}" -H "Stripe-Signature: t=$now,v1=$(stripe_sig "$STRIPE_A" "$now" "$body")")"
    # a standard-webhooks signature on the stripe endpoint
    read -r p a <<<"$(next_payout)"
    body=$(stripe_payout_body evt_sig_wrong_scheme "$p" "$a" usd)
    record signature_missing sig_wrong_scheme "$(post stripe "$body" -H "webhook-id: m1" -H "webhook-timestamp: $now" -H "webhook-signature: v1,$(std_sig "$STD_KEY" m1 "$now" "$body")")"

    # -- Standard Webhooks signatures
    read -r p a <<<"$(next_payout)"
    body=$(std_payout_body evt_std_base payout.failed "$p" "$a" USD)
    local s
    s=$(std_sig "$STD_KEY" msg_std "$now" "$body")
    record signature_missing std_no_id "$(post standard "$body" -H "webhook-timestamp: $now" -H "webhook-signature: v1,$s")"
    record signature_missing std_no_timestamp "$(post standard "$body" -H "webhook-id: msg_std" -H "webhook-signature: v1,$s")"
    record signature_missing std_no_signature "$(post standard "$body" -H "webhook-id: msg_std" -H "webhook-timestamp: $now")"
    record signature_malformed std_bad_base64 "$(post standard "$body" -H "webhook-id: msg_std" -H "webhook-timestamp: $now" -H "webhook-signature: v1,@@@@")"
    record signature_malformed std_short_mac "$(post standard "$body" -H "webhook-id: msg_std" -H "webhook-timestamp: $now" -H "webhook-signature: v1,AAAA")"
    record signature_malformed std_v1a_only "$(post standard "$body" -H "webhook-id: msg_std" -H "webhook-timestamp: $now" -H "webhook-signature: v1a,$s")"
    record signature_malformed std_no_comma "$(post standard "$body" -H "webhook-id: msg_std" -H "webhook-timestamp: $now" -H "webhook-signature: $s")"
    record signature_malformed std_ts_not_number "$(post standard "$body" -H "webhook-id: msg_std" -H "webhook-timestamp: now" -H "webhook-signature: v1,$s")"
    good
    record signature_mismatch std_wrong_key "$(send_standard "$body" msg_std "$now" "$(printf 'another-key' | base64 -w0)")"
    record signature_mismatch std_id_swapped "$(post standard "$body" -H "webhook-id: msg_other" -H "webhook-timestamp: $now" -H "webhook-signature: v1,$s")"
    record signature_mismatch std_body_tampered "$(post standard "${body/\"amount\":$a/\"amount\":$((a + 1))}" -H "webhook-id: msg_std" -H "webhook-timestamp: $now" -H "webhook-signature: v1,$s")"
    record signature_stale std_stale "$(send_standard "$body" msg_std_stale $((now - 400)))"
    record signature_stale std_stale_day "$(send_standard "$body" msg_std_stale2 $((now - 86400)))"
    record signature_future std_future "$(send_standard "$body" msg_std_future $((now + 400)))"
    record signature_mismatch std_random_mac "$(post standard "$body" -H "webhook-id: msg_std" -H "webhook-timestamp: $now" -H "webhook-signature: v1,$(head -c 32 /dev/urandom | base64 -w0)")"
    good

    # -- source addresses (allow 127.0.0.1 and ::1; 127.0.0.3 is a trusted proxy)
    for i in 1 2 3 4; do
        read -r p a <<<"$(next_payout)"
        body=$(stripe_payout_body "evt_src_$i" "$p" "$a" usd)
        record source_not_allowed "src_127_0_0_2_$i" "$(send_stripe "$body" "$STRIPE_A" "$now" --interface 127.0.0.2)"
    done
    read -r p a <<<"$(next_payout)"
    body=$(stripe_payout_body evt_src_spoof "$p" "$a" usd)
    record source_not_allowed src_spoofed_xff "$(send_stripe "$body" "$STRIPE_A" "$now" --interface 127.0.0.2 -H 'X-Forwarded-For: 127.0.0.1')"
    read -r p a <<<"$(next_payout)"
    body=$(stripe_payout_body evt_src_spoof2 "$p" "$a" usd)
    record source_not_allowed src_spoofed_xff_chain "$(send_stripe "$body" "$STRIPE_A" "$now" --interface 127.0.0.2 -H 'X-Forwarded-For: 127.0.0.1, 127.0.0.1')"
    read -r p a <<<"$(next_payout)"
    body=$(stripe_payout_body evt_src_proxy_bad "$p" "$a" usd)
    record source_not_allowed src_proxy_forwards_outsider "$(send_stripe "$body" "$STRIPE_A" "$now" --interface 127.0.0.3 -H 'X-Forwarded-For: 203.0.113.9')"
    read -r p a <<<"$(next_payout)"
    body=$(stripe_payout_body evt_src_proxy_v6 "$p" "$a" usd)
    record source_not_allowed src_proxy_forwards_v6_outsider "$(send_stripe "$body" "$STRIPE_A" "$now" --interface 127.0.0.3 -H 'X-Forwarded-For: 2001:db8::7')"
    read -r p a <<<"$(next_payout)"
    body=$(stripe_payout_body evt_src_proxy_self "$p" "$a" usd)
    record source_not_allowed src_proxy_without_xff "$(send_stripe "$body" "$STRIPE_A" "$now" --interface 127.0.0.3)"
    read -r p a <<<"$(next_payout)"
    body=$(stripe_payout_body evt_src_proxy_garbage "$p" "$a" usd)
    record bad_forwarded_for src_proxy_garbage_xff "$(send_stripe "$body" "$STRIPE_A" "$now" --interface 127.0.0.3 -H 'X-Forwarded-For: not-an-address')"
    read -r p a <<<"$(next_payout)"
    body=$(stripe_payout_body evt_src_proxy_good "$p" "$a" usd)
    record accepted src_proxy_forwards_allowed "$(send_stripe "$body" "$STRIPE_A" "$now" --interface 127.0.0.3 -H 'X-Forwarded-For: 127.0.0.1')"
    good

    # -- schema: bodies that are signed correctly but wrong
    local ts
    ts=$(date +%s)
    bad_body stripe schema_invalid json_not_json 'this is not json'
    bad_body stripe schema_invalid json_empty_object '{}'
    bad_body stripe schema_invalid json_array '[{"id":"evt_1"}]'
    bad_body stripe schema_invalid json_string '"payout.failed"'
    bad_body stripe schema_invalid json_unclosed '{"id":"evt_x","type":"payout.failed"'
    bad_body stripe schema_invalid json_trailing_comma '{"id":"evt_x","type":"payout.failed",}'
    bad_body stripe schema_invalid json_single_quotes "{'id':'evt_x'}"
    bad_body stripe schema_invalid json_duplicate_keys '{"id":"evt_a","id":"evt_b","type":"payout.failed","created":1,"data":{"object":{}}}'
    read -r p a <<<"$(next_payout)"
    local full
    full=$(stripe_payout_body evt_trunc "$p" "$a" usd)
    for cut in 10 40 80 120 $((${#full} - 1)); do
        bad_body stripe schema_invalid "json_truncated_$cut" "${full:0:$cut}"
    done
    good
    read -r p a <<<"$(next_payout)"
    bad_body stripe schema_invalid stripe_no_id "{\"type\":\"payout.failed\",\"created\":$ts,\"data\":{\"object\":{\"id\":\"po_1\",\"amount\":$a,\"currency\":\"usd\",\"status\":\"failed\",\"metadata\":{\"payout_id\":\"$p\"}}}}"
    bad_body stripe schema_invalid stripe_no_type "{\"id\":\"evt_nt\",\"created\":$ts,\"data\":{\"object\":{\"id\":\"po_1\",\"amount\":$a,\"currency\":\"usd\",\"status\":\"failed\",\"metadata\":{\"payout_id\":\"$p\"}}}}"
    bad_body stripe schema_invalid stripe_no_created "{\"id\":\"evt_nc\",\"type\":\"payout.failed\",\"data\":{\"object\":{\"id\":\"po_1\",\"amount\":$a,\"currency\":\"usd\",\"status\":\"failed\",\"metadata\":{\"payout_id\":\"$p\"}}}}"
    bad_body stripe schema_invalid stripe_created_string "{\"id\":\"evt_cs\",\"type\":\"payout.failed\",\"created\":\"today\",\"data\":{\"object\":{\"id\":\"po_1\",\"amount\":$a,\"currency\":\"usd\",\"status\":\"failed\",\"metadata\":{\"payout_id\":\"$p\"}}}}"
    bad_body stripe schema_invalid stripe_no_data "{\"id\":\"evt_nd\",\"type\":\"payout.failed\",\"created\":$ts}"
    bad_body stripe schema_invalid stripe_no_object "{\"id\":\"evt_no\",\"type\":\"payout.failed\",\"created\":$ts,\"data\":{}}"
    bad_body stripe schema_invalid stripe_object_array "{\"id\":\"evt_oa\",\"type\":\"payout.failed\",\"created\":$ts,\"data\":{\"object\":[]}}"
    amt_case() { # name amount-json currency-json
        bad_body stripe schema_invalid "$1" "{\"id\":\"evt_$1\",\"type\":\"payout.failed\",\"created\":$ts,\"data\":{\"object\":{\"id\":\"po_$1\",\"object\":\"payout\",\"amount\":$2,\"currency\":$3,\"status\":\"failed\",\"metadata\":{\"payout_id\":\"$p\"}}}}"
    }
    amt_case amount_float 1250.5 '"usd"'
    amt_case amount_float_whole 125000.0 '"usd"'
    amt_case amount_exponent 1e5 '"usd"'
    amt_case amount_negative -100 '"usd"'
    amt_case amount_string '"100"' '"usd"'
    amt_case amount_null null '"usd"'
    amt_case amount_huge 100000000000000000000 '"usd"'
    amt_case amount_bool true '"usd"'
    amt_case currency_unknown "$a" '"usx"'
    amt_case currency_two_letters "$a" '"us"'
    amt_case currency_four_letters "$a" '"usdd"'
    amt_case currency_number "$a" '840'
    amt_case currency_null "$a" 'null'
    amt_case currency_fund_code "$a" '"xau"'
    amt_case currency_empty "$a" '""'
    bad_body stripe schema_invalid payout_no_amount "{\"id\":\"evt_pna\",\"type\":\"payout.failed\",\"created\":$ts,\"data\":{\"object\":{\"id\":\"po_x\",\"currency\":\"usd\",\"status\":\"failed\",\"metadata\":{\"payout_id\":\"$p\"}}}}"
    bad_body stripe schema_invalid payout_no_currency "{\"id\":\"evt_pnc\",\"type\":\"payout.failed\",\"created\":$ts,\"data\":{\"object\":{\"id\":\"po_x\",\"amount\":$a,\"status\":\"failed\",\"metadata\":{\"payout_id\":\"$p\"}}}}"
    bad_body stripe schema_invalid payout_no_id "{\"id\":\"evt_pni\",\"type\":\"payout.failed\",\"created\":$ts,\"data\":{\"object\":{\"amount\":$a,\"currency\":\"usd\",\"status\":\"failed\"}}}"
    bad_body stripe schema_invalid payout_id_with_space "{\"id\":\"evt_pis\",\"type\":\"payout.failed\",\"created\":$ts,\"data\":{\"object\":{\"id\":\"po x\",\"amount\":$a,\"currency\":\"usd\",\"status\":\"failed\"}}}"
    bad_body stripe schema_invalid payout_metadata_not_object "{\"id\":\"evt_pmo\",\"type\":\"payout.failed\",\"created\":$ts,\"data\":{\"object\":{\"id\":\"po_x\",\"amount\":$a,\"currency\":\"usd\",\"status\":\"failed\",\"metadata\":\"$p\"}}}"
    good
    bad_body stripe schema_invalid refund_unknown_status "$(stripe_refund_body evt_rus refund.updated rf_123 pay_9 1850 usd exploded)"
    bad_body stripe schema_invalid refund_no_payment "{\"id\":\"evt_rnp\",\"type\":\"refund.updated\",\"created\":$ts,\"data\":{\"object\":{\"id\":\"rf_123\",\"object\":\"refund\",\"amount\":1850,\"currency\":\"usd\",\"status\":\"succeeded\"}}}"
    bad_body stripe schema_invalid refund_amount_float "$(stripe_refund_body evt_raf refund.updated rf_123 pay_9 18.50 usd succeeded)"
    bad_body stripe schema_invalid charge_refunded_no_refunds "{\"id\":\"evt_cr\",\"type\":\"charge.refunded\",\"created\":$ts,\"data\":{\"object\":{\"id\":\"ch_1\",\"object\":\"charge\",\"payment_intent\":\"pi_9\"}}}"
    # standard schema
    bad_body standard schema_invalid std_no_type "{\"id\":\"evt_snt\",\"created_at\":\"$(iso "$ts")\",\"payout\":{\"id\":\"$p\",\"amount\":$a,\"currency\":\"USD\"}}"
    bad_body standard schema_invalid std_no_created_at "{\"id\":\"evt_snc\",\"type\":\"payout.failed\",\"payout\":{\"id\":\"$p\",\"amount\":$a,\"currency\":\"USD\"}}"
    bad_body standard schema_invalid std_created_at_not_rfc3339 "{\"id\":\"evt_scr\",\"type\":\"payout.failed\",\"created_at\":\"21/11/2026 10:00\",\"payout\":{\"id\":\"$p\",\"amount\":$a,\"currency\":\"USD\"}}"
    bad_body standard schema_invalid std_created_at_number "{\"id\":\"evt_scn\",\"type\":\"payout.failed\",\"created_at\":$ts,\"payout\":{\"id\":\"$p\",\"amount\":$a,\"currency\":\"USD\"}}"
    bad_body standard schema_invalid std_both_objects "{\"id\":\"evt_sbo\",\"type\":\"payout.failed\",\"created_at\":\"$(iso "$ts")\",\"payout\":{\"id\":\"$p\",\"amount\":$a,\"currency\":\"USD\"},\"refund\":{\"id\":\"rf_123\",\"payment_id\":\"pay_9\",\"amount\":1850,\"currency\":\"USD\"}}"
    bad_body standard schema_invalid std_neither_object "{\"id\":\"evt_sno\",\"type\":\"payout.failed\",\"created_at\":\"$(iso "$ts")\"}"
    bad_body standard schema_invalid std_wrong_object "{\"id\":\"evt_swo\",\"type\":\"payout.failed\",\"created_at\":\"$(iso "$ts")\",\"refund\":{\"id\":\"rf_123\",\"payment_id\":\"pay_9\",\"amount\":1850,\"currency\":\"USD\"}}"
    bad_body standard schema_invalid std_refund_for_payout_type "{\"id\":\"evt_srp\",\"type\":\"refund.succeeded\",\"created_at\":\"$(iso "$ts")\",\"payout\":{\"id\":\"$p\",\"amount\":$a,\"currency\":\"USD\"}}"
    bad_body standard schema_invalid std_payout_no_id "{\"id\":\"evt_spi\",\"type\":\"payout.failed\",\"created_at\":\"$(iso "$ts")\",\"payout\":{\"amount\":$a,\"currency\":\"USD\"}}"
    bad_body standard schema_invalid std_payout_float "{\"id\":\"evt_spf\",\"type\":\"payout.failed\",\"created_at\":\"$(iso "$ts")\",\"payout\":{\"id\":\"$p\",\"amount\":12500.00,\"currency\":\"USD\"}}"
    bad_body standard schema_invalid std_payout_negative "{\"id\":\"evt_spn\",\"type\":\"payout.failed\",\"created_at\":\"$(iso "$ts")\",\"payout\":{\"id\":\"$p\",\"amount\":-1,\"currency\":\"USD\"}}"
    bad_body standard schema_invalid std_payout_bad_currency "{\"id\":\"evt_spc\",\"type\":\"payout.failed\",\"created_at\":\"$(iso "$ts")\",\"payout\":{\"id\":\"$p\",\"amount\":$a,\"currency\":\"DOLLARS\"}}"
    bad_body standard schema_invalid std_refund_no_payment "{\"id\":\"evt_srn\",\"type\":\"refund.succeeded\",\"created_at\":\"$(iso "$ts")\",\"refund\":{\"id\":\"rf_123\",\"amount\":1850,\"currency\":\"USD\"}}"
    bad_body standard schema_invalid std_refund_amount_string "{\"id\":\"evt_sra\",\"type\":\"refund.succeeded\",\"created_at\":\"$(iso "$ts")\",\"refund\":{\"id\":\"rf_123\",\"payment_id\":\"pay_9\",\"amount\":\"1850\",\"currency\":\"USD\"}}"
    good

    # -- types payguard does not handle: recorded and closed, never an error
    bad_body stripe ignored type_customer_created "{\"id\":\"evt_cc\",\"type\":\"customer.created\",\"created\":$ts,\"data\":{\"object\":{\"id\":\"cus_1\"}}}"
    bad_body stripe ignored type_payout_paid "{\"id\":\"evt_pp\",\"type\":\"payout.paid\",\"created\":$ts,\"data\":{\"object\":{\"id\":\"po_1\"}}}"
    bad_body standard ignored type_std_unknown "{\"id\":\"evt_su\",\"type\":\"dispute.created\",\"created_at\":\"$(iso "$ts")\"}"

    # -- state: well-formed and signed, but not what our systems say
    read -r p a <<<"$(next_payout)"
    bad_body stripe currency_mismatch state_payout_currency "$(stripe_payout_body evt_spcm "$p" "$a" eur)"
    read -r p a <<<"$(next_payout)"
    bad_body stripe amount_mismatch state_payout_amount "$(stripe_payout_body evt_spam "$p" $((a + 1)) usd)"
    read -r p a <<<"$(next_payout)"
    bad_body standard amount_mismatch state_payout_amount_zero "$(std_payout_body evt_spaz payout.reversed "$p" 0 USD)"
    bad_body stripe unknown_payout state_unknown_payout "$(stripe_payout_body evt_sup P-99999 1000 usd)"
    bad_body standard unknown_payout state_unknown_payout_std "$(std_payout_body evt_sups payout.failed P-NOPE-1 1000 USD)"
    bad_body standard unknown_payment state_unknown_payment "$(std_refund_body evt_sunp refund.succeeded rf_123 pay_nope 1850 USD)"
    bad_body stripe unknown_payment state_unknown_payment_stripe "$(stripe_refund_body evt_sunps refund.updated rf_123 pay_missing 1850 usd succeeded)"
    bad_body standard currency_mismatch state_refund_currency "$(std_refund_body evt_srcm refund.succeeded rf_123 pay_9 1850 EUR)"
    bad_body standard unknown_refund state_unknown_refund "$(std_refund_body evt_sunr refund.succeeded rf_nope pay_9 100 USD)"
    bad_body standard amount_mismatch state_refund_amount "$(std_refund_body evt_sram refund.succeeded rf_123 pay_9 1851 USD)"
    bad_body standard refund_exceeds_payment state_refund_too_big "$(std_refund_body evt_srtb refund.succeeded rf_big pay_50 25000 USD)"
    bad_body stripe refund_exceeds_payment state_refund_too_big_stripe "$(stripe_refund_body evt_srtbs refund.updated rf_big pay_50 25000 usd succeeded)"
    good
    # good refunds
    record accepted good_refund_succeeded "$(send_standard "$(std_refund_body evt_good_rf1 refund.succeeded rf_123 pay_9 1850 USD)" msg_good_rf1 "$(date +%s)")"
    record accepted good_refund_failed_stripe "$(send_stripe "$(stripe_refund_body evt_good_rf2 refund.failed rf_456 pay_12 12000 usd failed)" "$STRIPE_B")"

    # -- Adyen: each item of a batch judged alone (CONTRACT.md §1.5)
    local k=$ADYEN_KEY wrong=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff p2 a2 p3 a3
    read -r p a <<<"$(next_payout)"
    read -r p2 a2 <<<"$(next_payout)"
    record "rejected:signature_mismatch,validated,validated" adyen_bad_hmac_one_of_three "$(send_adyen \
        "$(adyen_item "$k" PAYOUT_DECLINE true "ADYC$now"01 "$p" "$a" USD)" \
        "$(adyen_item "$wrong" REFUND false "ADYC$now"02 rf_456 12000 USD pay_12)" \
        "$(adyen_item "$k" REFUND true "ADYC$now"03 rf_123 1850 USD pay_9)")"
    read -r p3 a3 <<<"$(next_payout)"
    record validated adyen_escaped_colons "$(send_adyen "$(adyen_item "$k" PAYOUT_EXPIRE true "ADYC$now"04 "$p3" "$a3" USD "" 'Payguard:EU\Sandbox')")"
    record "ignored,ignored" adyen_unknown_event_codes "$(send_adyen "$(adyen_item "$k" AUTHORISATION true "ADYC$now"05 order-1 1130 EUR)" \
        "$(adyen_item "$k" PAYOUT_THIRDPARTY true "ADYC$now"06 "$p3" "$a3" USD)")"
    record "validated,validated" adyen_jpy_and_kwd "$(send_adyen "$(adyen_item "$k" REFUND true "ADYC$now"07 rf_jpy 1200 JPY pay_jpy)" \
        "$(adyen_item "$k" REFUND true "ADYC$now"08 rf_kwd 12345 KWD pay_kwd)")"
    record amount_mismatch adyen_jpy_amount_in_cents "$(send_adyen "$(adyen_item "$k" REFUND true "ADYC$now"09 rf_jpy 120000 JPY pay_jpy)")"
    record signature_mismatch adyen_wrong_key "$(send_adyen "$(adyen_item "$wrong" REFUND true "ADYC$now"10 rf_123 1850 USD pay_9)")"
    local unsigned
    unsigned=$(adyen_item "$k" REFUND true "ADYC$now"11 rf_123 1850 USD pay_9 | sed 's/"hmacSignature":"[^"]*",//')
    record signature_missing adyen_no_hmac "$(send_adyen "$unsigned")"
    record schema_invalid adyen_unknown_currency "$(send_adyen "$(adyen_item "$k" REFUND true "ADYC$now"12 rf_123 1850 XXY pay_9)")"
    record schema_invalid adyen_refund_without_payment "$(send_adyen "$(adyen_item "$k" REFUND true "ADYC$now"13 rf_123 1850 USD)")"
    record unknown_payout adyen_unknown_payout "$(send_adyen "$(adyen_item "$k" PAYOUT_DECLINE true "ADYC$now"14 P-NOPE-9 1000 USD)")"
    record schema_invalid adyen_not_a_batch "$(post adyen '{"live":"false","items":[]}')"
    local many="" i
    for i in $(seq 1 17); do many="$many$(adyen_item "$k" AUTHORISATION true "ADYM$now$i" "o-$i" "$i" EUR),"; done
    record schema_invalid adyen_17_items "$(post adyen "{\"live\":\"false\",\"notificationItems\":[${many%,}]}")"
    good

    # -- refused by ingest itself (no receipt; recorded by ingest in the audit trail)
    head -c 300000 /dev/zero | tr '\0' ' ' >"$WORK/oversize.json"
    http_case 413 http_oversize -X POST -H 'Content-Type: application/json' --data-binary @"$WORK/oversize.json" "$URL/webhooks/stripe"
    http_case 413 http_oversize_standard -X POST -H 'Content-Type: application/json' --data-binary @"$WORK/oversize.json" "$URL/webhooks/standard"
    http_case 415 http_text_plain -X POST -H 'Content-Type: text/plain' --data-binary '{}' "$URL/webhooks/stripe"
    http_case 415 http_form -X POST --data 'a=b' "$URL/webhooks/stripe"
    http_case 415 http_no_content_type -X POST -H 'Content-Type:' --data-binary '{}' "$URL/webhooks/standard"
    http_case 405 http_get -X GET "$URL/webhooks/stripe"
    http_case 405 http_put -X PUT -H 'Content-Type: application/json' --data-binary '{}' "$URL/webhooks/standard"
    http_case 404 http_unknown_path -X POST -H 'Content-Type: application/json' --data-binary '{}' "$URL/webhooks/paypal"
    http_case 415 http_adyen_form -X POST --data 'a=b' "$URL/webhooks/adyen"
    good
}
