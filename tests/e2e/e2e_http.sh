#!/usr/bin/env bash
# e2e_http - what real senders and clients put on the wire, at ingest's door
# and on every /metrics page:
#   1. a corpus of realistic webhook requests, sent byte for byte over TCP
#      (repeated Via, X-Forwarded-For as one list and as several fields,
#      mixed-case names, a signature header sent twice, 63/64/65 fields,
#      header names and values at 8 KiB and one byte over, a long
#      User-Agent, chunked bodies, Expect: 100-continue, HTTP/1.0, several
#      webhooks on one kept-alive connection), on both endpoints. Each gets
#      its expected answer; every 2xx is a genuine webhook that validate then
#      verifies (it saw the headers it needs), and its receipt holds every
#      field as received, repeated ones merged as RFC 9110 §5.3 says;
#   2. what cannot be recorded whole is refused before anything is recorded:
#      431 past the bounds, 413 past the body limit (read to the end, so the
#      client still sending reads the 413), 400 for framing that cannot be
#      trusted, 411 with no body length at all; each refusal is in the audit
#      trail;
#   3. every port's /metrics page passes `promtool check metrics`;
#   4. with payguard/metrics_token_sha256 set, /metrics on every port
#      (ingest, approve, audit, console) is 401 without its Bearer token or
#      with another one;
#   5. on every port, one address past <stage>/http_max_per_address: its
#      next connection is closed unanswered while another address is
#      served (a webhook, the approvals list, a case, a console session);
#   6. a request trickled a byte a second to every port at once is cut at
#      <stage>/http_deadline_s (libmicrohttpd's own timeout is renewed by
#      every byte), while an approval through approve's API and one through
#      the console go through; both are counted in /metrics;
#   7. audit hung (SIGSTOP): eight console calls to audit wait for it, and
#      a console session (a call to approve) is still answered at once;
#      the hung calls end at console/timeout_ms with 502.
set -u
. "$(dirname "$0")/lib_e2e.sh"

PORT=$(free_port)
SBX=$(free_port)
APORT=$(free_port)
UPORT=$(free_port)
CPORT=$(free_port)
D=$WORK/h
mkdir -p "$D"
STRIPE_A=whsec_e2e_http_A
STD_KEY=$(printf 'e2e-standard-webhooks-key-http' | base64 -w0)
printf '%s\n' "$STRIPE_A" >"$D/stripe.secrets"
printf 'whsec_%s\n' "$STD_KEY" >"$D/standard.secrets"
MTOKEN=pg-e2e-metrics-token
MSHA=$(printf '%s' "$MTOKEN" | sha256sum | cut -d' ' -f1)
CFG=$D/payguard.cfg
cat >"$CFG" <<CFG
payguard
    metrics_token_sha256 = $MSHA
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
    http_max_per_address = 8
    http_deadline_s = 3
    rate_per_s = 100000
    rate_burst = 100000
validate
    allow_sources = 127.0.0.1/32 203.0.113.0/24
    trusted_proxies = 127.0.0.1/32
    stripe_secrets_file = $D/stripe.secrets
    standard_secrets_file = $D/standard.secrets
    token_file = $ROOT/config/sandbox/read.token
approve
    http_port = $APORT
    http_max_per_address = 4
    http_deadline_s = 3
audit
    http_port = $UPORT
    http_max_per_address = 4
    http_deadline_s = 3
console
    enabled = yes
    http_port = $CPORT
    www_dir = $ROOT/console/www
    http_max_per_address = 12
    http_deadline_s = 3
    timeout_ms = 2000
CFG
SBXURL=http://127.0.0.1:$SBX
ok "group and sandbox start" up "$CFG"
for _ in $(seq 1 50); do curl -fs "$SBXURL/_sandbox/healthz" >/dev/null && break; sleep 0.1; done
. "$(dirname "$0")/lib_corpus.sh"

payouts="" entries=""
for i in $(seq 1 60); do
    payouts="$payouts{\"id\":\"P-H-$i\",\"status\":\"paid\",\"amount\":$((200000 + i)),\"currency\":\"USD\",\"beneficiary_id\":\"B-H-$i\"},"
    entries="$entries{\"type\":\"payout_paid\",\"ref\":\"P-H-$i\",\"amount\":$((200000 + i)),\"currency\":\"USD\",\"case_id\":\"seed\"},"
done
ok "the sandbox takes the test payouts" test "$(curl -s -o /dev/null -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' --data-binary "{\"payouts\":[${payouts%,}],\"entries\":[${entries%,}]}" \
    "$SBXURL/_sandbox/seed")" -lt 300

# ---- building requests byte for byte

N=0
# next - a fresh seeded payout: sets P (id), A (amount), EVT, BODY (a signed-able Stripe event)
next() {
    N=$((N + 1))
    P=P-H-$N A=$((200000 + N)) EVT=evt_http_$N
    BODY=$(stripe_payout_body "$EVT" "$P" "$A" usd)
}
# std_next - the same payout as a Standard Webhooks body: sets P, A, MSG, BODY
std_next() {
    N=$((N + 1))
    P=P-H-$N A=$((200000 + N)) MSG=msg_http_$N
    BODY=$(std_payout_body "evt_std_$N" payout.failed "$P" "$A" USD)
}
sig_field() { local t; t=$(date +%s); printf 'Stripe-Signature: t=%s,v1=%s' "$t" "$(stripe_sig "$STRIPE_A" "$t" "$BODY")"; }
std_fields() {
    local t
    t=$(date +%s)
    printf 'webhook-id: %s\r\nwebhook-timestamp: %s\r\nwebhook-signature: v1,%s' "$MSG" "$t" "$(std_sig "$STD_KEY" "$MSG" "$t" "$BODY")"
}

# send - write stdin to ingest over one TCP connection, print what comes back
send() { timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; cat >&3; cat <&3" 2>/dev/null; }
# request EP FIELDS... - a POST with these header fields (CRLF added), Host,
# Content-Type, Content-Length and Connection: close, then BODY
request() {
    local ep=$1
    shift
    printf 'POST /webhooks/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' "$ep"
    for f in "$@"; do printf '%s\r\n' "$f"; done
    printf 'Content-Length: %s\r\nConnection: close\r\n\r\n%s' "${#BODY}" "$BODY"
}
# expect NAME STATUS [CASE] - the answer on stdin; record "<status> <receipt> <name> <case>"
expect() {
    local name=$1 want=$2 case=${3:--} resp status rid
    resp=$(cat)
    status=$(printf '%s' "$resp" | head -1 | cut -d' ' -f2)
    rid=$(printf '%s' "$resp" | grep -o '"receipt_id":"[^"]*"' | cut -d'"' -f4)
    echo "${status:-none} ${rid:--} $name $case $want" >>"$D/answers"
}
# pad N - N filler fields x-pad-<i>: v
pad() { for i in $(seq 1 "$1"); do printf 'x-pad-%s: v\n' "$i"; done; }

# ---- 1. genuine webhooks real senders send: each 202, each verified

next; request stripe 'Via: 1.1 proxy-a' "$(sig_field)" 'via: 1.1 proxy-b' | send | expect via_twice 202 "payout-$P"
VIA_CASE=payout-$P
next; request stripe 'X-Forwarded-For: 198.51.100.9, 203.0.113.7' "$(sig_field)" | send | expect xff_list 202 "payout-$P"
next; request stripe 'X-Forwarded-For: 198.51.100.9' "$(sig_field)" 'X-Forwarded-For: 203.0.113.7' | send |
    expect xff_two_fields 202 "payout-$P"
XFF_CASE=payout-$P
next; t=$(date +%s)
printf 'POST /webhooks/stripe HTTP/1.1\r\nhOsT: x\r\nCONTENT-TYPE: application/json\r\nsTrIpE-sIgNaTuRe: t=%s,v1=%s\r\ncontent-LENGTH: %s\r\n\r\n%s' \
    "$t" "$(stripe_sig "$STRIPE_A" "$t" "$BODY")" "${#BODY}" "$BODY" | send | expect mixed_case_names 202 "payout-$P"
next; t=$(date +%s)
request stripe "Stripe-Signature: t=$t,v1=$(stripe_sig whsec_some_other_secret "$t" "$BODY")" \
    "Stripe-Signature: t=$t,v1=$(stripe_sig "$STRIPE_A" "$t" "$BODY")" | send | expect signature_twice 202 "payout-$P"
# 63 and 64 fields in all (Host, Content-Type, Stripe-Signature, Content-Length, Connection + padding)
next; mapfile -t f < <(pad 58); request stripe "${f[@]}" "$(sig_field)" | send | expect fields_63 202 "payout-$P"
next; mapfile -t f < <(pad 59); request stripe "${f[@]}" "$(sig_field)" | send | expect fields_64 202 "payout-$P"
# names and values at exactly 8192 bytes in all, an x-pad filler making up the rest
# filler_for SIG EXTRA - the filler's length: 8192 + EXTRA minus the other fields'
# names and values (Host 4+9, Content-Type 12+16, Stripe-Signature 16+value,
# x-pad 5, Content-Length 14+digits, Connection 10+5)
filler_for() { local len=${#BODY}; echo $((8192 + $2 - (13 + 28 + 16 + ${#1} - 18 + 5 + 14 + ${#len} + 15))); }
next; sig=$(sig_field); filler=$(head -c "$(filler_for "$sig" 0)" /dev/zero | tr '\0' f)
request stripe "$sig" "x-pad: $filler" | send | expect bytes_8192 202 "payout-$P"
next; request stripe "User-Agent: Mozilla/5.0 $(head -c 4000 /dev/zero | tr '\0' u)" "$(sig_field)" | send |
    expect long_user_agent 202 "payout-$P"
next; sig=$(sig_field)
{
    printf 'POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' "$sig"
    printf '%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n' 10 "${BODY:0:10}" $((${#BODY} - 10)) "${BODY:10}"
} | send | expect chunked 202 "payout-$P"
CHUNK_EVT=$EVT
next; t=$(date +%s)
code=$(curl -s -o "$D/expect.json" -w '%{http_code}' -H 'Expect: 100-continue' -H 'Content-Type: application/json' \
    -H "Stripe-Signature: t=$t,v1=$(stripe_sig "$STRIPE_A" "$t" "$BODY")" --data-binary "$BODY" \
    "http://127.0.0.1:$PORT/webhooks/stripe")
printf 'HTTP/1.1 %s x\r\n\r\n%s' "$code" "$(cat "$D/expect.json")" | expect expect_100_continue 202 "payout-$P"
next; t=$(date +%s)
printf 'POST /webhooks/stripe HTTP/1.0\r\nContent-Type: application/json\r\nStripe-Signature: t=%s,v1=%s\r\nContent-Length: %s\r\n\r\n%s' \
    "$t" "$(stripe_sig "$STRIPE_A" "$t" "$BODY")" "${#BODY}" "$BODY" | send | expect http_1_0 202 "payout-$P"
# three webhooks on one kept-alive connection
ka=""
for k in 1 2 3; do
    next; t=$(date +%s)
    conn=""
    [ $k = 3 ] && conn=$'Connection: close\r\n'
    ka+=$(printf 'POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nStripe-Signature: t=%s,v1=%s\r\nContent-Length: %s\r\n%s\r\n%s' \
        "$t" "$(stripe_sig "$STRIPE_A" "$t" "$BODY")" "${#BODY}" "$conn" "$BODY")
    echo "payout-$P" >>"$D/ka_cases"
done
printf '%s' "$ka" | send >"$D/ka.out"
k=0
while read -r rid; do
    k=$((k + 1))
    echo "202 $rid keep_alive_$k $(sed -n "${k}p" "$D/ka_cases") 202" >>"$D/answers"
done < <(grep -o '"receipt_id":"[^"]*"' "$D/ka.out" | cut -d'"' -f4)
ok "three webhooks on one kept-alive connection: three 202s" test "$(grep -o 'HTTP/1.1 202' "$D/ka.out" | wc -l)" = 3

# the standard endpoint
std_next; request standard 'Via: 1.1 proxy-a' "$(std_fields)" 'Via: 1.1 proxy-b' | send | expect std_via_twice 202 "payout-$P"
std_next; t=$(date +%s)
request standard "webhook-id: $MSG" "webhook-timestamp: $t" "webhook-signature: v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" \
    "webhook-signature: v1,$(std_sig "$STD_KEY" "$MSG" "$t" "$BODY")" | send | expect std_signature_twice 202 "payout-$P"
std_next; fields=$(std_fields); mapfile -t f < <(pad 57) # 3 fields in one argument
request standard "${f[@]}" "$fields" | send | expect std_fields_64 202 "payout-$P"
std_next; fields=$(std_fields)
{
    printf 'POST /webhooks/standard HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' "$fields"
    printf '%x\r\n%s\r\n0\r\n\r\n' "${#BODY}" "$BODY"
} | send | expect std_chunked 202 "payout-$P"

# ---- 2. what cannot be recorded whole: refused before anything is recorded

next; mapfile -t f < <(pad 60); request stripe "${f[@]}" "$(sig_field)" | send | expect fields_65 431
next; mapfile -t f < <(pad 75); request stripe "${f[@]}" "$(sig_field)" | send | expect fields_80 431
next; sig=$(sig_field); filler=$(head -c "$(filler_for "$sig" 1)" /dev/zero | tr '\0' f)
request stripe "$sig" "x-pad: $filler" | send | expect bytes_8193 431
next; request stripe "X-Big: $(head -c 100000 /dev/zero | tr '\0' b)" "$(sig_field)" | send | expect header_100k 431
std_next; fields=$(std_fields); mapfile -t f < <(pad 58)
request standard "${f[@]}" "$fields" | send | expect std_fields_65 431
next; request stripe "$(sig_field)" 'Content-Length: 3' | send | expect content_length_disagrees 400
next; sig=$(sig_field)
printf 'POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s\r\nContent-Length: %s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n' \
    "$sig" "${#BODY}" "${#BODY}" "$BODY" | send | expect length_and_chunked 400
next; printf 'POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n%s\r\n0\r\n\r\n' \
    "$(sig_field)" "$BODY" | send | expect bad_chunk_size 400
next; request stripe 'X Bad: name' "$(sig_field)" | send | expect name_with_space 400
next; printf 'POST /webhooks/stripe HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}' |
    send | expect http_1_1_without_host 400
next; printf 'POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s\r\nConnection: close\r\n\r\n' \
    "$(sig_field)" | send | expect no_length_at_all 411
# a body over the limit (256 KiB) from a client that does not wait: it still reads the 413
BODY=$(head -c 300000 /dev/zero | tr '\0' a)
request stripe 'X-Test: big' | send | expect body_over_limit_read_to_the_end 413
printf '%s' "$BODY" >"$D/big.json"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Expect: 100-continue' -H 'Content-Type: application/json' \
    --data-binary @"$D/big.json" "http://127.0.0.1:$PORT/webhooks/stripe")
printf 'HTTP/1.1 %s x\r\n\r\n' "$code" | expect body_over_limit_with_expect 413

# ---- checking

wrong=0
while read -r got rid name case want; do
    [ "$got" = "$want" ] || { echo "# $name: answered $got, expected $want"; wrong=$((wrong + 1)); }
done <"$D/answers"
ok "every corpus request got its expected answer ($(wc -l <"$D/answers") requests)" test $wrong = 0
ok "no refused request got a receipt id" test "$(awk '$5 != 202 && $2 != "-"' "$D/answers" | wc -l)" = 0

ok "the group settles" quiesce "$CFG" 60
"$BIN/pg-verdicts" "$D/data/audit.0" >"$D/verdicts"
bad=0
while read -r got rid name case want; do
    [ "$want" = 202 ] || continue
    v=$(awk -v r="$rid" '$2 == r {print $3 ":" $5}' "$D/verdicts" | head -1)
    [ "$v" = "validated:$case" ] || { echo "# $name: receipt $rid became '${v:-nothing}', expected validated:$case"; bad=$((bad + 1)); }
done <"$D/answers"
ok "every 2xx was verified by validate: signature, source, schema and state ($(grep -c ' 202$' "$D/answers"))" test $bad = 0
refused=$(awk '$5 != 202' "$D/answers" | wc -l)
rejected=$(awk '$2 == "-" && $3 == "rejected" && $6 == "ingest.0"' "$D/verdicts" | wc -l)
ok "every refusal is in the audit trail ($rejected of $refused)" test "$rejected" -ge "$refused"
codes=$(awk '$3 == "rejected" && $6 == "ingest.0" {print $4}' "$D/verdicts" | sort | uniq -c | tr -s ' ' | tr '\n' ';')
ok "the trail names why: header_fields_too_large, bad_request, malformed_request, length_required, body_too_large ($codes)" \
    bash -c "echo '$codes' | grep -q header_fields_too_large && echo '$codes' | grep -q bad_request &&
             echo '$codes' | grep -q malformed_request && echo '$codes' | grep -q length_required &&
             echo '$codes' | grep -q body_too_large"

# the receipts hold what was sent, repeated fields merged in order
"$BIN/payguard" journal dump -c "$CFG" ingest.0 >"$D/ingest.dump"
rid_of() { awk -v n="$1" '$3 == n {print $2}' "$D/answers"; }
receipt() { grep "\"id\":\"$(rid_of "$1")\"" "$D/ingest.dump"; }
ok "two Via fields are recorded as one, in order" bash -c "grep -qF '\"via\":\"1.1 proxy-a, 1.1 proxy-b\"' <<<'$(receipt via_twice)'"
ok "two X-Forwarded-For fields are recorded as one list, in order" \
    bash -c "grep -qF '\"x-forwarded-for\":\"198.51.100.9, 203.0.113.7\"' <<<'$(receipt xff_two_fields)'"
ok "mixed-case names are recorded lower-case" bash -c "grep -qF '\"stripe-signature\":\"t=' <<<'$(receipt mixed_case_names)'"
ok "64 fields: all 64 recorded" test "$(receipt fields_64 | grep -o '"x-pad-[0-9]*":' | wc -l)" = 59
ok "the long User-Agent is recorded whole" test "$(receipt long_user_agent | grep -o '"user-agent":"[^"]*"' | wc -c)" -gt 4000
ok "the chunked body is recorded whole" bash -c "grep -qF '$CHUNK_EVT' <<<'$(receipt chunked)'"
TOKEN=$(cat "$ROOT/config/sandbox/ops_lead.token")
curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$UPORT/cases/$VIA_CASE" >"$D/via_case.json"
ok "audit's case shows the merged Via" grep -qF '1.1 proxy-a, 1.1 proxy-b' "$D/via_case.json"
ok "the case validated through the client behind the proxies (X-Forwarded-For in order)" \
    bash -c "curl -s -H 'Authorization: Bearer $TOKEN' http://127.0.0.1:$UPORT/cases/$XFF_CASE | grep -q '203.0.113.7'"

# ---- 3. every port's /metrics: valid Prometheus text
sleep 1.2 # the instances write their samples every second
for p in "ingest $PORT" "approve $APORT" "audit $UPORT" "console $CPORT"; do
    set -- $p
    curl -s -H "Authorization: Bearer $MTOKEN" "http://127.0.0.1:$2/metrics" >"$D/metrics.$1"
    ok "$1's /metrics passes promtool check metrics (no error, no lint warning)" \
        bash -c "test -s '$D/metrics.$1' && out=\$(promtool check metrics <'$D/metrics.$1' 2>&1) && test -z \"\$out\" || { echo \"\$out\" | head -5; false; }"
done
ok "every family has one HELP and one TYPE" test "$(grep -c '^# HELP ' "$D/metrics.ingest")" = "$(grep -c '^# TYPE ' "$D/metrics.ingest")" -a \
    "$(grep '^# TYPE ' "$D/metrics.ingest" | awk '{print $3}' | sort | uniq -d | wc -l)" = 0
ok "the refusals are counted per reason" grep -q '^payguard_ingest_refused_total{instance="ingest.0",reason="header_fields_too_large"} [1-9]' "$D/metrics.ingest"

# ---- 4. /metrics behind payguard/metrics_token_sha256, on every port
PORTS="ingest:$PORT approve:$APORT audit:$UPORT console:$CPORT"
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
for p in $PORTS; do
    ok "${p%%:*}'s /metrics without the token: 401" test "$(code "http://127.0.0.1:${p#*:}/metrics")" = 401
    ok "${p%%:*}'s /metrics with another token: 401" \
        test "$(code -H 'Authorization: Bearer not-the-token' "http://127.0.0.1:${p#*:}/metrics")" = 401
    ok "${p%%:*}'s /metrics with the token: 200" \
        test "$(code -H "Authorization: Bearer $MTOKEN" "http://127.0.0.1:${p#*:}/metrics")" = 200
done

# ---- 5. connections per address
URL=http://127.0.0.1:$PORT
OPS=$(tok ops_lead)
HELD=()
# hold N PORT - N idle connections to PORT from 127.0.0.1, kept open (HELD)
hold() {
    local i fd
    for ((i = 0; i < $1; i++)); do
        exec {fd}<>"/dev/tcp/127.0.0.1/$2" && HELD+=("$fd")
    done
}
# release - close the held connections
release() {
    local fd
    for fd in "${HELD[@]}"; do exec {fd}>&-; done
    HELD=()
}
# closed_at_once PORT - one more connection from 127.0.0.1 is closed unanswered
closed_at_once() {
    local fd rc
    exec {fd}<>"/dev/tcp/127.0.0.1/$1" || return 0
    read -r -t 2 -u "$fd" _
    rc=$?
    exec {fd}>&-
    [ "$rc" -le 128 ] # EOF or reset, not the 2 s timeout
}
next
hold 8 "$PORT"
ok "ingest: a 9th connection from one address is closed (http_max_per_address 8)" closed_at_once "$PORT"
rid=$(send_stripe "$BODY" "$STRIPE_A" "" --interface 127.0.0.2)
ok "ingest: meanwhile a webhook from another address gets its receipt" test -n "$rid"
release
hold 4 "$APORT"
ok "approve: a 5th connection from one address is closed (http_max_per_address 4)" closed_at_once "$APORT"
ok "approve: meanwhile the approvals list answers another address" test "$(code --interface 127.0.0.2 \
    -H "Authorization: Bearer $OPS" "http://127.0.0.1:$APORT/approvals?status=pending")" = 200
release
hold 4 "$UPORT"
ok "audit: a 5th connection from one address is closed" closed_at_once "$UPORT"
ok "audit: meanwhile a case answers another address" \
    test "$(code --interface 127.0.0.2 -H "Authorization: Bearer $OPS" "http://127.0.0.1:$UPORT/cases/$VIA_CASE")" = 200
release
hold 12 "$CPORT"
ok "console: a 13th connection from one address is closed (http_max_per_address 12)" closed_at_once "$CPORT"
ok "console: meanwhile a session answers another address" \
    test "$(code --interface 127.0.0.2 -H "Authorization: Bearer $OPS" "http://127.0.0.1:$CPORT/api/session")" = 200
release

# ---- 6. a request trickled a byte a second: cut at the deadline (3 s)
# trickle PORT OUT - a request to PORT one byte a second, for up to 12 s;
# OUT gets "cut <ms>" when the server closed the connection, else "not_cut"
trickle() {
    (
        trap '' PIPE
        local req=$'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaa\r\n\r\n' i t0 fd
        exec {fd}<>"/dev/tcp/127.0.0.1/$1" || { echo refused >"$2"; exit; }
        t0=$(date +%s%N)
        for ((i = 0; i < 12; i++)); do
            printf '%s' "${req:i:1}" >&"$fd" 2>/dev/null
            if read -r -t 1 -u "$fd" _ || [ $? -le 128 ]; then
                echo "cut $((($(date +%s%N) - t0) / 1000000))" >"$2"
                exit
            fi
        done
        echo not_cut >"$2"
    ) &
}
pending=$(curl -s -H "Authorization: Bearer $OPS" "http://127.0.0.1:$APORT/approvals?status=pending" |
    grep -o '"case_id":"payout-P-H-[0-9]*"' | cut -d'"' -f4)
C1=$(sed -n 1p <<<"$pending") C2=$(sed -n 2p <<<"$pending")
ok "two tier-1 payouts wait for the ops lead ($C1, $C2)" test -n "$C1" -a -n "$C2"
for p in $PORTS; do trickle "${p#*:}" "$D/trickle.${p%%:*}"; done
sleep 1
t0=$(date +%s%N)
ok "while they trickle, an approval through approve's API goes through" test "$(code -X POST \
    -H "Authorization: Bearer $OPS" -d '{"decision":"approve","comment":"while slow clients trickle"}' \
    "http://127.0.0.1:$APORT/approvals/$C1/decisions")" = 200
CSRF=$(curl -s -H "Authorization: Bearer $OPS" "http://127.0.0.1:$CPORT/api/session" | sed -n 's/.*"csrf":"\([0-9a-f]*\)".*/\1/p')
ok "and one through the console" test "$(code -X POST -H "Authorization: Bearer $OPS" -H "X-CSRF-Token: $CSRF" \
    -H "Origin: http://127.0.0.1:$CPORT" -d '{"decision":"approve","comment":"through the console"}' \
    "http://127.0.0.1:$CPORT/api/approvals/$C2/decisions")" = 200
ok "both at once, not after the trickles ($((($(date +%s%N) - t0) / 1000000)) ms)" \
    test $((($(date +%s%N) - t0) / 1000000)) -lt 1500
wait
# cut_at_deadline RESULT - cut 3 s after it began, give or take a sweep and a byte
cut_at_deadline() { [[ $1 =~ ^cut\ ([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" -ge 2500 ] && [ "${BASH_REMATCH[1]}" -le 4500 ]; }
for p in $PORTS; do
    r=$(cat "$D/trickle.${p%%:*}" 2>/dev/null)
    ok "${p%%:*}: the trickled request is cut at its 3 s deadline ($r)" cut_at_deadline "$r"
done
sleep 1.2 # the instances write their samples every second
curl -s -H "Authorization: Bearer $MTOKEN" "http://127.0.0.1:$UPORT/metrics" >"$D/metrics.limits"
for i in ingest.0 approve.0 audit.0 console.0; do
    ok "$i counts the connection it cut at the deadline" \
        grep -qE "^payguard_http_deadline_closed_total\{instance=\"$i\"\} [1-9]" "$D/metrics.limits"
    ok "$i counts the connection it refused over the limit" \
        grep -qE "^payguard_http_limit_refused_total\{instance=\"$i\"\} [1-9]" "$D/metrics.limits"
done

# ---- 7. audit hung: the console's other calls go on
kill -STOP "$(inst_pid "$CFG" audit.0)"
for i in $(seq 1 8); do
    curl -s -o "$D/hung.$i" -w '%{http_code} %{time_total}\n' -H "Authorization: Bearer $OPS" \
        "http://127.0.0.1:$CPORT/api/cases?state=validated" >"$D/hung.$i.code" &
done
sleep 0.5
t0=$(date +%s%N)
ok "with eight calls waiting on a hung audit, a console session (approve) still answers" \
    test "$(code -H "Authorization: Bearer $OPS" "http://127.0.0.1:$CPORT/api/session")" = 200
ms=$((($(date +%s%N) - t0) / 1000000))
ok "at once ($ms ms), not after them" test "$ms" -lt 1000
wait
kill -CONT "$(inst_pid "$CFG" audit.0)"
ok "the hung calls end at console/timeout_ms (2 s) with 502" \
    bash -c "cat '$D'/hung.*.code | awk '\$1 != 502 || \$2 > 3.5 {bad++} END {exit bad > 0 || NR != 8}'"
ok "saying audit is not answering" grep -q 'audit is not answering' "$D/hung.1"
# said_in_the_log - approve's summary lines (at most one each per 10 s)
said_in_the_log() {
    for _ in $(seq 1 60); do
        grep -q 'approvals API: closed 1 connection(s) whose request was not received and answered within 3 s (approve/http_deadline_s' "$D/run/payguard.log" &&
            grep -q 'approvals API: refused 1 connection(s) over the connection limits (approve/http_max_per_address: 4' "$D/run/payguard.log" &&
            return 0
        sleep 0.2
    done
    return 1
}
ok "the log says what was cut and refused, naming the settings" said_in_the_log
finish
