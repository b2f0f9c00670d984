#!/usr/bin/env bash
# e2e_scale - every stage scaled out: the same outcomes, exactly once.
#
# The group runs ingest with 2 instances (one port, the master's socket:
# common/listenfd.h), validate and execute with 3 each and approve with 2
# (partitioned by key: common/route.h). 100 refunds the policy fixes on its own are each
# posted 5 times at once (a provider's retry storm), so the copies of one
# webhook race through different connections. Then:
#   - every case is executed, and the sandbox saw exactly one ledger POST and
#     one Teams notice per case (not "one per copy that slipped through");
#   - every validate and execute instance took part (the keys spread);
#   - 20 payouts waiting for people: GET /approvals on the one approvals
#     port lists all of them, whichever approve instance holds each, and
#     every decision POSTed there is taken and executed once;
#   - each case's events were handled by one instance of each stage: the
#     instance that owns its key (pg-check's journal view: no case in two
#     instances' journals of one stage);
#   - resized to 2 and 2, the group refuses to start until `payguard
#     repartition` has moved the state; then the same storm again changes
#     nothing (every copy a duplicate where its case now lives);
#   - `payguard audit verify` passes.
set -u
. "$(dirname "$0")/lib_e2e.sh"
. "$(dirname "$0")/lib_corpus.sh"

N=${SCALE_N:-100}
COPIES=5
PORT=$(free_port)
UPORT=$(free_port)
APORT=$(free_port)
PPORT=$(free_port)
CFG=$(write_config sc "$PORT")
D=$WORK/sc
cfg_merge "$CFG" <<CFG
ingest
    instances = 2
validate
    instances = 3
approve
    instances = 2
    peer_port = $PPORT
execute
    instances = 3
    token_file = $ROOT/config/sandbox/write.token
CFG
SBX=$(sandbox_url "$CFG")
AUD=http://127.0.0.1:$UPORT
now=$(date +%s)

# the plan: each refund's webhook COPIES times in a row (in flight together)
for i in $(seq 1 "$N"); do
    rf=rf_sc$i pay=pay_sc$i amt=$((500 + i))
    printf '{"id":"%s","amount":50000,"currency":"USD","customer_id":"cus_sc","customer_risk":"low","flagged":false,"refunded_amount":0}\n' "$pay" >>"$WORK/seed.payments"
    printf '{"id":"%s","amount":%d,"currency":"usd","status":"succeeded","payment_intent":"pi_sc","metadata":{"payment_id":"%s"}}\n' "$rf" "$amt" "$pay" >>"$WORK/seed.psp_refunds"
    printf '{"type":"refund_initiated","ref":"%s","amount":%d,"currency":"USD","case_id":"seed"}\n' "$rf" "$amt" >>"$WORK/seed.entries"
    body=$(printf '{"id":"evt_sc%d","type":"refund.updated","created":%d,"data":{"object":{"id":"%s","object":"refund","amount":%d,"currency":"usd","status":"succeeded","payment_intent":"pi_sc","metadata":{"payment_id":"%s"}}}}' "$i" "$((now - 60))" "$rf" "$amt" "$pay")
    for _ in $(seq 1 $COPIES); do echo "good $body"; done >>"$WORK/plan.txt"
done

ok "group starts (ingest 2 on one port, validate 3, approve 2, execute 3)" up "$CFG"
# the one port answers once either ingest instance serves; the load starts
# when both do (each writes its status file from its loop, after its HTTP
# server is up), or its keep-alive connections all land on the first
for _ in $(seq 1 100); do
    [ -e "$D/run/ingest.0.stat" ] && [ -e "$D/run/ingest.1.stat" ] && break
    sleep 0.1
done
ok "the run directory (ipc sockets) is private to the service user: $(stat -c %a "$D/run")" test "$(stat -c %a "$D/run")" = 700
seeded=0
for coll in payments psp_refunds entries; do
    { printf '{"%s":[' "$coll"; paste -sd, "$WORK/seed.$coll"; printf ']}'; } |
        curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary @- "$SBX/_sandbox/seed" &&
        seeded=$((seeded + 1))
done
ok "the sandbox holds the payments, PSP refunds and ledger entries" test "$seeded" = 3

"$BIN/pg-load" --url "http://127.0.0.1:$PORT/webhooks/stripe" --secret-file "$WORK/secret" --plan "$WORK/plan.txt" \
    --concurrency 20 --out "$WORK/receipts.txt" >"$WORK/load.out" 2>"$WORK/load.err"
ok "every copy got its 202 ($(tail -1 "$WORK/load.out" | cut -d' ' -f1-5))" test $? = 0

executed() { curl -s "$AUD/metrics" | awk '$1 == "payguard_cases{instance=\"audit.0\",state=\"executed\"}" {print $2}'; }
for _ in $(seq 1 120); do
    [ "$(executed)" = "$N" ] && quiesce "$CFG" 2 && break
    sleep 0.5
done
ok "every case is executed ($(executed) of $N)" test "$(executed)" = "$N"

calls() { curl -s "$SBX/_sandbox/calls?system=$1&limit=100000"; }
ledger_posts=$(calls ledger | grep -o '"method":"POST"' | wc -l)
teams_posts=$(calls teams | grep -o '"method":"POST"' | wc -l)
ok "one ledger POST per case ($ledger_posts for $N cases, $((N * COPIES)) deliveries)" test "$ledger_posts" = "$N"
ok "one Teams notice per case ($teams_posts for $N cases)" test "$teams_posts" = "$N"

spread() { # STAGE INSTANCES KEY: every instance's status file says KEY > 0
    local s=$1 i v all=1 out=""
    for i in $(seq 0 $(($2 - 1))); do
        v=$(awk -F= -v k="$3" '$1 == k {print $2}' "$D/run/$s.$i.stat" 2>/dev/null)
        out="$out $s.$i=${v:-0}"
        [ "${v:-0}" -gt 0 ] || all=0
    done
    echo "#$out"
    [ "$all" = 1 ]
}
ok "both ingest instances took webhooks on the one port" spread ingest 2 out
ok "every validate instance took its share of the receipts" spread validate 3 in
ok "every execute instance took its share of the cases" spread execute 3 in

# ---- approvals through the one port, whichever approve instance holds the case
API=http://127.0.0.1:$APORT
URL=http://127.0.0.1:$PORT
OPS=$(cat "$ROOT/config/sandbox/ops_lead.token")
seed_load_payouts "$CFG" 20
for k in $(seq 0 19); do
    send_stripe "$(stripe_payout_body "evt_scp$k" "P-$k" $((1000 + k)) usd)" "$E2E_SECRET" >/dev/null
done
pending() { curl -s -H "Authorization: Bearer $OPS" "$API/approvals?status=pending" | grep -o '"case_id":"payout-P-[0-9]*"' | sort -u | wc -l; }
for _ in $(seq 1 100); do [ "$(pending)" = 20 ] && break; sleep 0.2; done
ok "GET /approvals lists the pending payouts of both approve instances ($(pending) of 20)" test "$(pending)" = 20
ok "both approve instances hold some" spread approve 2 in
one=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $OPS" "$API/approvals/payout-P-7")
ok "GET /approvals/<case> answers for a case on either instance ($one)" test "$one" = 200
codes=""
for k in $(seq 0 19); do
    codes="$codes$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.2 -X POST -H "Authorization: Bearer $OPS" -d '{"decision":"approve","comment":"scale"}' "$API/approvals/payout-P-$k/decisions") "
done
ok "every decision through the one port is taken (200 x 20: $(echo "$codes" | tr ' ' '\n' | sort | uniq -c | tr -s ' \n' ' '))" \
    test "$(echo "$codes" | tr ' ' '\n' | grep -c '^200$')" = 20
for _ in $(seq 1 100); do [ "$(executed)" = "$((N + 20))" ] && break; sleep 0.2; done
ok "...and every approved payout is executed ($(executed) of $((N + 20)) cases)" test "$(executed)" = "$((N + 20))"
ok "no approval is left pending ($(pending))" test "$(pending)" = 0
dec=$("$BIN/payguard" audit export -c "$CFG" 2>/dev/null | grep '"type":"decision"' | grep -c 'payout-P-')
ok "each decision recorded once, by the instance that owns the case ($dec)" test "$dec" = 20
ok "...with the person's address, also where an instance passed it on (X-Payguard-Client)" \
    test "$("$BIN/payguard" audit export -c "$CFG" 2>/dev/null | grep '"type":"decision"' | grep 'payout-P-' | grep -c '"client_ip":"127.0.0.2"')" = 20
down "$CFG"

# each case's events, in each stage, in one instance's journal only
for s in validate approve execute; do
    for i in 0 1 2; do
        "$BIN/payguard" journal dump "$s.$i" -c "$CFG" 2>/dev/null | grep -o '"case_key":"refund-[^"]*"' | sort -u |
            sed "s/\$/ $s.$i/"
    done
done >"$WORK/owners"
split=$(awk '{split($2, a, "."); k = $1 " " a[1]; if (k in seen && seen[k] != $2) n++; seen[k] = $2} END {print n + 0}' "$WORK/owners")
ok "no case was handled by two instances of one stage ($split were)" test "$split" = 0

# ---- resize: validate 3 -> 2, execute 3 -> 2
sed -i '/^validate$/,/^[^ ]/ s/^    instances = 3$/    instances = 2/; /^execute$/,/^[^ ]/ s/^    instances = 3$/    instances = 2/' "$CFG"
"$BIN/payguard" up -c "$CFG" -d >"$WORK/refused.out" 2>&1
ok "with other instance counts the group refuses to start on the old split ($(head -c 90 "$WORK/refused.out"))" \
    grep -q 'payguard repartition' "$WORK/refused.out"
ok "payguard repartition moves the partitions' state" "$BIN/payguard" repartition -c "$CFG"
ok "the old journals are kept" test -d "$D/data/retired"
ok "the group starts on the new split (validate 2, execute 2)" up "$CFG"
posts() { calls "$1" | grep -o '"method":"POST"' | wc -l; }
ledger_before=$(posts ledger) teams_before=$(posts teams)
# the same 500 deliveries again: every one a duplicate where its state now lives
"$BIN/pg-load" --url "http://127.0.0.1:$PORT/webhooks/stripe" --secret-file "$WORK/secret" --plan "$WORK/plan.txt" \
    --concurrency 20 --out "$WORK/receipts2.txt" >"$WORK/load2.out" 2>&1
ok "the storm again: every copy got its 202" test $? = 0
quiesce "$CFG" 30
sleep 1.2 # a status period: the counters are written every second
vsum() { cat "$D/run/validate.0.prom" "$D/run/validate.1.prom" | awk -v m="$1" 'index($1, m "{") == 1 {s += $2} END {print s + 0}'; }
ok "the storm again: every copy a duplicate where its case now lives (accepted $(vsum payguard_validate_accepted_total), duplicates $(vsum payguard_validate_duplicates_total))" \
    test "$(vsum payguard_validate_accepted_total)" = 0 -a "$(vsum payguard_validate_duplicates_total)" = "$((N * COPIES))"
ok "after the move nothing is done again: no ledger POST ($ledger_before before, $(posts ledger) after)" \
    test "$(posts ledger)" = "$ledger_before"
ok "...and no Teams notice ($teams_before before, $(posts teams) after)" test "$(posts teams)" = "$teams_before"
ok "still $((N + 20)) cases executed ($(executed))" test "$(executed)" = "$((N + 20))"
down "$CFG"
ok "payguard audit verify passes" "$BIN/payguard" audit verify -c "$CFG"
finish
