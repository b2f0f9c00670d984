#!/usr/bin/env bash
# e2e_ingest - ingest's per-source rate limit (CONTRACT.md §1.3: 429 +
# Retry-After): one source over its bucket is refused while another source is
# not, the refusal is counted (and, being a flood response, not journaled),
# and the bucket refills.
# Then what rejected input costs: a forged webhook's body is not on the
# trail (its hash and size are; ingest's journal keeps the body until its
# retention), a genuine one's is (validate's verdict carries it); and each
# source's budget of rejected requests and body bytes: spent, its requests
# get 429 + Retry-After (one trail record per window), other sources are
# not affected, and the window's end lets it send again. Last, every stage
# reports its heap (it gives free pages back every 10 s).
set -u
. "$(dirname "$0")/lib_e2e.sh"
. "$(dirname "$0")/lib_corpus.sh"
PORT=$(free_port)
CFG=$(write_config rl "$PORT")
sed -i 's/    rate_per_s = 1000000/    rate_per_s = 2/; s/    rate_burst = 1000000/    rate_burst = 3/' "$CFG"
ok "group starts with 2 requests/s and a burst of 3 per source" up "$CFG"
URL=http://127.0.0.1:$PORT/webhooks/stripe
code() { curl -s -o /dev/null -D "$WORK/h" -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{}' "$@" "$URL"; }
codes=""
for _ in 1 2 3 4; do codes="$codes $(code)"; done
ok "the burst of 3 is accepted, the 4th is 429 ($codes)" test "$codes" = " 202 202 202 429"
ok "the 429 carries Retry-After" grep -qi '^Retry-After: [1-9]' "$WORK/h"
ok "another source address is not affected" test "$(code --interface 127.0.0.2)" = 202
sleep 1.2
ok "after the bucket refills the first source is accepted again" test "$(code)" = 202
sleep 1.1 # metrics files are written every second
ok "the refusal is counted in /metrics" bash -c "curl -s http://127.0.0.1:$PORT/metrics | grep -q '^payguard_ingest_rate_limited_total{instance=\"ingest.0\"} [1-9]'"
down "$CFG"
"$BIN/pg-verdicts" "$WORK/rl/data/audit.0" >"$WORK/verdicts"
ok "a 429 leaves no record (a flood cannot make payguard write)" test "$(grep -c ' ingest.0$' "$WORK/verdicts")" = 0

# ---- rejected input costs little
PORT=$(free_port)
CFG=$(write_config budget "$PORT")
cfg_merge "$CFG" <<'CFG'
ingest
    reject_budget = 3
    reject_budget_bytes = 100000
    reject_window_s = 12
CFG
ok "group starts with a budget of 3 rejected requests or 100,000 bytes per 12 s and source" up "$CFG"
seed_load_payouts "$CFG" 2
URL=http://127.0.0.1:$PORT/webhooks/stripe
D=$WORK/budget/data
# post SOURCE BODY [SECRET] - the status of one Stripe webhook from SOURCE, signed with SECRET
post() {
    local t
    t=$(date +%s)
    curl -s -o /dev/null -D "$WORK/h" -w '%{http_code}' --interface "$1" -X POST -H 'Content-Type: application/json' \
        -H "Stripe-Signature: t=$t,v1=$(stripe_sig "${3:-whsec_forged}" "$t" "$2")" --data-binary "$2" "$URL"
}
gauge() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v k="$1{instance=\"ingest.0\"}" '$1 == k {print $2}'; }
forged=$(stripe_payout_body evt_forged_1 P-FORGED-MARK 999 usd)
codes=""
for i in 1 2 3; do codes="$codes $(post 127.0.0.3 "${forged/evt_forged_1/evt_forged_$i}")"; done
ok "3 forged webhooks from 127.0.0.3 are recorded ($codes)" test "$codes" = " 202 202 202"
for _ in $(seq 1 50); do [ "$(gauge payguard_ingest_budget_sources)" = 1 ] && break; sleep 0.2; done
ok "validate's rejections reach ingest: one source over its budget" test "$(gauge payguard_ingest_budget_sources)" = 1
codes=""
for _ in 1 2 3; do codes="$codes $(post 127.0.0.3 "$forged")"; done
ok "then that source gets 429 ($codes)" test "$codes" = " 429 429 429"
ok "...with Retry-After within the window ($(grep -i '^Retry-After' "$WORK/h" | tr -d '\r'))" \
    grep -qiE '^Retry-After: ([1-9]|1[0-2])\s*$' "$WORK/h"
genuine=$(stripe_payout_body evt_genuine_1 P-1 1001 usd)
ok "a genuine webhook from another source is accepted" test "$(post 127.0.0.1 "$genuine" "$E2E_SECRET")" = 202
big=$(stripe_payout_body evt_big_1 "P-$(head -c 30000 /dev/zero | tr '\0' x)" 1 usd)
codes="$(post 127.0.0.4 "$big") $(post 127.0.0.4 "${big/evt_big_1/evt_big_2}")"
for _ in $(seq 1 50); do [ "$(gauge payguard_ingest_budget_sources)" = 2 ] && break; sleep 0.2; done
codes="$codes $(post 127.0.0.4 "$forged")"
ok "2 forged bodies of 60 KB spend the byte budget: the third request is 429 ($codes)" test "$codes" = "202 202 429"
for _ in $(seq 1 60); do [ "$(post 127.0.0.3 "$forged")" = 202 ] && break; sleep 0.5; done
ok "once the window is over, 127.0.0.3 may send again" test "$(post 127.0.0.3 "${forged/evt_forged_1/evt_forged_9}")" = 202
ok "the 429s are counted" test "$(gauge payguard_ingest_budget_refused_total)" -ge 4
quiesce "$CFG" >/dev/null 2>&1
"$BIN/payguard" audit export -c "$CFG" >"$WORK/trail.jsonl" 2>"$WORK/export.err"
ok "one trail record per source and window for the 429s ($(grep -c reject_budget_spent "$WORK/trail.jsonl"))" \
    test "$(grep -c '"code":"reject_budget_spent"' "$WORK/trail.jsonl")" = 2
ok "...saying which source spent what" grep -q 'source 127.0.0.3 spent its budget of rejected requests (3 requests' "$WORK/trail.jsonl"
sha=$(printf '%s' "$forged" | sha256sum | cut -d' ' -f1)
ok "a forged receipt is on the trail as its hash and size" \
    grep -q "\"body_sha256\":\"$sha\",\"body_bytes\":${#forged}}" "$WORK/trail.jsonl"
ok "...and so is its rejection" grep -q "\"type\":\"rejected\".*\"body_sha256\":\"$sha\"" "$WORK/trail.jsonl"
ok "no forged body is on the trail" test "$(grep -c P-FORGED-MARK "$WORK/trail.jsonl")" = 0
ok "...nor in audit's journal files" test "$(cat "$D"/audit.0/* 2>/dev/null | grep -ac P-FORGED-MARK)" = 0
ok "ingest's journal keeps it (until ingest/retention_s)" test "$(cat "$D"/ingest.0/* | grep -ac P-FORGED-MARK)" -ge 1
ok "a genuine webhook's body is on the trail, in its validated verdict" \
    grep -q '"type":"validated".*"payload":"{\\"id\\":\\"evt_genuine_1\\"' "$WORK/trail.jsonl"
# every stage trims its heap every 10 s and says what it uses (the group has
# run longer); under the sanitizers malloc is ASan's, and glibc's mallinfo2 says 0
least=1
case $BIN in *asan*) least=0 ;; esac
heaps=$(grep -h '^payguard_heap_in_use_bytes{' "$WORK/budget/run/"*.prom | awk -v l="$least" '$2 >= l' | wc -l)
ok "every stage instance reports the heap it uses ($heaps of 7)" test "$heaps" = 7
down "$CFG"
finish
