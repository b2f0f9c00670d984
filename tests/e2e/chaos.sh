#!/usr/bin/env bash
# chaos - a seeded run of the whole group under failure (`make chaos`; a short
# one runs in `make test` as tests/e2e/e2e_chaos.sh).
#
#   CHAOS_N=20000 CHAOS_SEED=S bash tests/e2e/chaos.sh
#
# CHAOS_SCALE (e.g. "ingest=2 validate=3 execute=3") runs the group with
# those instances. Posts CHAOS_N signed Stripe webhooks (default 20,000) at the group through
# pg-load: refund cases the policy auto-approves and payout cases a scripted
# approver approves, with about 20% of the cases delivered again (2 to 12
# copies), 10% followed by an older event for the same object (out of order)
# and 5% bad deliveries (forged signatures, unknown payouts, broken JSON).
# Meanwhile the sandbox injects 5xx, 429 and slow answers into every outside
# system, and a random stage instance is SIGKILLed every 2 to 4 s (for the
# load's duration, and at least CHAOS_MIN_S = 20 s).
# Then it checks:
#   - every 202-acknowledged receipt is in the audit trail, and every stage's
#     journal shows each event answered exactly once (pg-check);
#   - every good case reached a final state (executed, ops_review,
#     already_consistent), none is left validated, triaged, awaiting
#     approval, approved or executing, and every bad one is rejected;
#   - every ledger entry payguard made exists exactly once per case (type,
#     ref), and every executed case has its entry;
#   - every Jira ticket payguard opened exists once per case and step (the
#     sandbox's Jira, like Jira, ignores Idempotency-Key: execute searches
#     by label before it creates);
#   - `payguard audit verify` passes.
# The seed is printed first and last: the same seed replays the same plan,
# fault schedule and kill schedule (timing differs from run to run).
set -u
. "$(dirname "$0")/lib_e2e.sh"

N=${CHAOS_N:-20000}
SEED=${CHAOS_SEED:-$(((RANDOM << 15 | RANDOM) % 1000000000))}
SETTLE_S=${CHAOS_SETTLE_S:-180}
MIN_S=${CHAOS_MIN_S:-20} # faults and kills go on at least this long, load or not
RATE=${CHAOS_RATE:-0}    # deliveries started a second (0: as fast as ingest takes them)
echo "# chaos: seed=$SEED N=$N${CHAOS_SCALE:+ scale: $CHAOS_SCALE}   (again: CHAOS_SEED=$SEED CHAOS_N=$N${CHAOS_SCALE:+ CHAOS_SCALE=\"$CHAOS_SCALE\"} bash tests/e2e/chaos.sh)"

PORT=$(free_port)
APORT=$(free_port)
UPORT=$(free_port)
CFG=$(write_config ch "$PORT" 4000)
D=$WORK/ch
# CHAOS_SCALE="ingest=2 validate=3 execute=3": the group scaled out (partitioned stages)
for si in ${CHAOS_SCALE:-}; do
    printf '%s\n    instances = %s\n' "${si%=*}" "${si#*=}"
    [ "${si%=*}" = approve ] && printf '    peer_port = %s\n' "$(free_port)"
done | cfg_merge "$CFG"
cfg_merge "$CFG" <<CFG
audit
    checkpoint_every_s = 2
execute
    token_file = $ROOT/config/sandbox/write.token
    max_attempts = 8
    retry_base_ms = 20
    retry_max_ms = 500
CFG
SBX=$(sandbox_url "$CFG")
URL=http://127.0.0.1:$PORT
API=http://127.0.0.1:$APORT
AUD=http://127.0.0.1:$UPORT
OPS=$(cat "$ROOT/config/sandbox/ops_lead.token")
TREAS=$(cat "$ROOT/config/sandbox/treasurer.token")

# ---- the plan: cases, their sandbox state, and the deliveries (seeded awk)
awk -v seed="$SEED" -v n="$N" -v now="$(date +%s)" -v dir="$WORK" '
function shuffle(a, m,    i, j, t) { for (i = m; i > 1; i--) { j = int(rand() * i) + 1; t = a[i]; a[i] = a[j]; a[j] = t } }
BEGIN {
    srand(seed); nm = 0; nl = 0; k = 0; total = 0; bad = 0
    casesf = dir "/cases.txt"
    while (total < n) {
        if (rand() < 0.05 * 20 / 19 && total + 1 <= n) { # a bad delivery (5% of them all)
            r = rand(); bad++
            if (r < 0.4)
                late[++nl] = sprintf("forged {\"id\":\"evt_f%d_%d\",\"type\":\"payout.failed\",\"created\":%d,\"data\":{\"object\":{\"id\":\"po_x\",\"object\":\"payout\",\"amount\":1000,\"currency\":\"usd\",\"status\":\"failed\",\"failure_code\":\"account_closed\",\"metadata\":{\"payout_id\":\"P-CH%d-0\"}}}}", seed, bad, now, seed)
            else if (r < 0.7) {
                late[++nl] = sprintf("good {\"id\":\"evt_u%d_%d\",\"type\":\"payout.failed\",\"created\":%d,\"data\":{\"object\":{\"id\":\"po_u%d\",\"object\":\"payout\",\"amount\":1000,\"currency\":\"usd\",\"status\":\"failed\",\"failure_code\":\"account_closed\",\"metadata\":{\"payout_id\":\"P-NONE%d-%d\"}}}}", seed, bad, now, bad, seed, bad)
                printf "payout-P-NONE%d-%d bad\n", seed, bad > casesf
            } else
                late[++nl] = sprintf("good {\"id\":\"evt_b%d_%d\",\"type\":", seed, bad)
            total++
            continue
        }
        k++
        created = now - 7200 + k
        if (rand() < 0.7) { # a refund the policy auto-approves
            amt = 500 + int(rand() * 4500); rf = sprintf("rf_ch%d_%d", seed, k); pay = sprintf("pay_ch%d_%d", seed, k)
            printf "{\"id\":\"%s\",\"amount\":50000,\"currency\":\"USD\",\"customer_id\":\"cus_ch\",\"customer_risk\":\"low\",\"flagged\":false,\"refunded_amount\":0}\n", pay > (dir "/seed.payments")
            printf "{\"id\":\"%s\",\"amount\":%d,\"currency\":\"usd\",\"status\":\"succeeded\",\"payment_intent\":\"pi_ch\",\"metadata\":{\"payment_id\":\"%s\"}}\n", rf, amt, pay > (dir "/seed.psp_refunds")
            printf "{\"type\":\"refund_initiated\",\"ref\":\"%s\",\"amount\":%d,\"currency\":\"USD\",\"case_id\":\"seed\"}\n", rf, amt > (dir "/seed.entries")
            body = sprintf("{\"id\":\"evt_r%d_%d%%s\",\"type\":\"refund.updated\",\"created\":%%d,\"data\":{\"object\":{\"id\":\"%s\",\"object\":\"refund\",\"amount\":%d,\"currency\":\"usd\",\"status\":\"succeeded\",\"payment_intent\":\"pi_ch\",\"metadata\":{\"payment_id\":\"%s\"}}}}", seed, k, rf, amt, pay)
            printf "refund-%s refund\n", rf > casesf
        } else { # a payout that failed after it was paid: tier 1, people approve
            amt = 1000 + k; po = sprintf("P-CH%d-%d", seed, k)
            printf "{\"id\":\"%s\",\"status\":\"paid\",\"amount\":%d,\"currency\":\"USD\",\"beneficiary_id\":\"B-CH%d\"}\n", po, amt, k > (dir "/seed.payouts")
            printf "{\"type\":\"payout_paid\",\"ref\":\"%s\",\"amount\":%d,\"currency\":\"USD\",\"case_id\":\"seed\"}\n", po, amt > (dir "/seed.entries")
            body = sprintf("{\"id\":\"evt_p%d_%d%%s\",\"type\":\"payout.failed\",\"created\":%%d,\"data\":{\"object\":{\"id\":\"po_ch%d\",\"object\":\"payout\",\"amount\":%d,\"currency\":\"usd\",\"status\":\"failed\",\"failure_code\":\"account_closed\",\"failure_message\":\"The bank account has been closed\",\"metadata\":{\"payout_id\":\"%s\"}}}}", seed, k, k, amt, po)
            printf "payout-%s payout\n", po > casesf
        }
        main[++nm] = "good " sprintf(body, "", created); total++
        if (rand() < 0.2) { # re-delivered: 2 to 12 copies in all
            c = 1 + int(rand() * 11)
            for (i = 0; i < c && total < n; i++) { late[++nl] = main[nm]; total++ }
        }
        if (rand() < 0.1 && total < n) { # an older event about the same object, delivered after
            late[++nl] = "good " sprintf(body, "_old", created - 3600); total++
        }
    }
    shuffle(main, nm); shuffle(late, nl)
    for (i = 1; i <= nm; i++) print main[i] > (dir "/plan.txt")
    for (i = 1; i <= nl; i++) print late[i] > (dir "/plan.txt")
    printf "cases=%d bad=%d deliveries=%d\n", k, bad, total > (dir "/plan.summary")
}'
echo "# plan: $(cat "$WORK/plan.summary")"

ok "group starts" up "$CFG"
for _ in $(seq 1 50); do curl -fs "$SBX/_sandbox/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
# the sandbox's state, 500 records a request, entries last
seeded=0 parts=0
for coll in payouts payments psp_refunds entries; do
    [ -f "$WORK/seed.$coll" ] || continue
    split -l 500 "$WORK/seed.$coll" "$WORK/part.$coll."
    for f in "$WORK/part.$coll."*; do
        parts=$((parts + 1))
        { printf '{"%s":[' "$coll"; paste -sd, "$f"; printf ']}'; } |
            curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary @- "$SBX/_sandbox/seed" &&
            seeded=$((seeded + 1))
    done
done
ok "the sandbox holds every case's payout or payment, PSP refund and ledger entry" test "$seeded" = "$parts"

# ---- the trouble makers (each seeded)
# faults: 5xx, 429 and slow answers in every outside system, every second
(
    RANDOM=$SEED
    while [ ! -f "$WORK/stop" ]; do
        for sys in payments ledger psp jira teams; do
            case $((RANDOM % 4)) in
            0) f='"status":503' ;;
            1) f='"status":429,"retry_after_s":1' ;;
            2) f='"status":0,"delay_ms":400' ;;
            3) f='"status":500' ;;
            esac
            curl -s -o /dev/null -X POST -H 'Content-Type: application/json' -d "{\"system\":\"$sys\",$f,\"count\":1}" "$SBX/_sandbox/faults"
        done
        sleep 1
    done
) &
FAULTS=$!
# the killer: a random stage instance, SIGKILL, every 2-4 s
(
    RANDOM=$((SEED + 1))
    while [ ! -f "$WORK/stop" ]; do
        sleep $((2 + RANDOM % 3))
        mapfile -t insts < <(awk '$1 ~ /^(ingest|validate|triage|approve|execute|audit)\.[0-9]+$/ && $2 > 0 {print $1, $2}' "$D/run/master.state" 2>/dev/null)
        [ "${#insts[@]}" -gt 0 ] || continue
        pick=${insts[$((RANDOM % ${#insts[@]}))]}
        kill -9 "${pick#* }" 2>/dev/null && echo "${pick% *}" >>"$WORK/kills"
    done
) &
KILLER=$!
# the approver: approves the pending payouts as the ops lead, as people would
approver() {
    while [ ! -f "$WORK/stop-approver" ]; do
        curl -s -m 5 -H "Authorization: Bearer $OPS" "$API/approvals?status=pending" 2>/dev/null |
            grep -o '"case_id":"[^"]*"' | cut -d'"' -f4 | while read -r c; do
            curl -s -m 5 -o /dev/null -X POST -H "Authorization: Bearer $OPS" -d '{"decision":"approve","comment":"chaos"}' "$API/approvals/$c/decisions"
        done
        sleep 1
    done
}
approver &
APPROVER=$!

# ---- the load
SECONDS=0
"$BIN/pg-load" --url "$URL/webhooks/stripe" --secret-file "$WORK/secret" --plan "$WORK/plan.txt" \
    --concurrency 16 --out "$WORK/receipts.txt" --duration-max-s 1800 ${RATE:+$([ "$RATE" -gt 0 ] && echo --rate "$RATE")} >"$WORK/load.out" 2>"$WORK/load.err"
ok "every delivery got its 202 (pg-load: $(tail -1 "$WORK/load.out" | cut -d' ' -f1-5))" test $? = 0
while [ $SECONDS -lt "$MIN_S" ]; do sleep 1; done # the pipeline works on under fire
touch "$WORK/stop"
wait "$FAULTS" "$KILLER" 2>/dev/null
echo "# killed: $(wc -l <"$WORK/kills" 2>/dev/null || echo 0) times ($(sort "$WORK/kills" 2>/dev/null | uniq -c | awk '{printf "%s %s, ", $2, $1}'))"
curl -s -o /dev/null -X DELETE "$SBX/_sandbox/faults"

# ---- settle: everything acknowledged, every good case final
metric() { curl -s "$AUD/metrics" | awk -v m="payguard_cases{instance=\"audit.0\",state=\"$1\"}" '$1 == m {print $2}'; }
unsettled() {
    local s v n=0
    for s in validated triaged awaiting_approval approved executing; do
        v=$(metric "$s")
        n=$((n + ${v:-1})) # no answer (audit restarting): not settled
    done
    echo "$n"
}
settled=no
for _ in $(seq 1 $((SETTLE_S / 2))); do
    if quiesce "$CFG" 2 && [ "$(unsettled)" = 0 ]; then
        sleep 2.5 # a gauge period and a loop turn more: still nothing moving?
        [ "$(unsettled)" = 0 ] && quiesce "$CFG" 2 && settled=yes && break
    fi
    sleep 2
done
touch "$WORK/stop-approver"
wait "$APPROVER" 2>/dev/null
ok "the group settles: nothing unacknowledged, no case left in between" test "$settled" = yes
for s in validated triaged awaiting_approval approved executing executed ops_review already_consistent rejected denied expired closed; do
    printf '%s=%s ' "$s" "$(metric "$s")"
done >"$WORK/states"
echo "# cases by state: $(cat "$WORK/states")"
# the sandbox's ledger: payguard's entries as "type ref"
curl -s "$SBX/_sandbox/state" | grep -o '{"id":"le_[^}]*}' | grep '"case_id":"\(payout\|refund\)-' |
    sed -n 's/.*"type":"\([a-z_]*\)".*"ref":"\([^"]*\)".*/\1 \2/p' | sort >"$WORK/entries"
# the sandbox's Jira (which, like Jira, ignores Idempotency-Key): payguard's tickets as "case step"
curl -s "$SBX/_sandbox/state" | grep -o '"payguard-[^"]*","payguard-[a-z_]*_ticket"' | sed 's/"payguard-//g; s/",/ /; s/"$//' |
    sort >"$WORK/tickets"
down "$CFG"

# ---- the checks
"$BIN/pg-check" --data "$D/data" --receipts "$WORK/receipts.txt" --quiet >"$WORK/check.out" 2>&1
ok "pg-check: every 202 receipt reached the trail and every stage answered each event once ($(tail -1 "$WORK/check.out"))" \
    grep -q ' 0 failed$' "$WORK/check.out"
good=$(awk '$2 != "bad"' "$WORK/cases.txt" | wc -l)
final=$(tr ' ' '\n' <"$WORK/states" | awk -F= '$1 ~ /^(executed|ops_review|already_consistent)$/ {s += $2} END {print s + 0}')
ok "every good case reached a final state ($final of $good)" test "$final" = "$good"
rejected=$(tr ' ' '\n' <"$WORK/states" | awk -F= '$1 == "rejected" {print $2 + 0}')
ok "every webhook for an unknown payout is a rejected case ($rejected of $(grep -c ' bad$' "$WORK/cases.txt"))" \
    test "$rejected" = "$(grep -c ' bad$' "$WORK/cases.txt")"
dups=$(uniq -d "$WORK/entries" | wc -l)
ok "every ledger entry payguard made exists once per case ($(wc -l <"$WORK/entries") entries, $dups twice)" test "$dups" = 0
tdups=$(uniq -d "$WORK/tickets" | wc -l)
ok "every ticket payguard opened exists once per case and step, killed as execute was ($(wc -l <"$WORK/tickets") tickets, $tdups twice)" \
    test "$tdups" = 0
made=$(grep -c '^\(refund_succeeded\|payout_reversal\) ' "$WORK/entries")
executed=$(tr ' ' '\n' <"$WORK/states" | awk -F= '$1 == "executed" {print $2 + 0}')
in_review=$(tr ' ' '\n' <"$WORK/states" | awk -F= '$1 == "ops_review" {print $2 + 0}')
# every executed case posted its entry; a case in ops review may have (its ledger step ran, a later one failed)
ok "every executed case has its ledger entry ($made entries; executed $executed, in ops review $in_review)" \
    test "$made" -ge "$executed" -a "$made" -le "$((executed + in_review))"
ok "payguard audit verify passes" "$BIN/payguard" audit verify -c "$CFG"
# why cases went to ops review (a failure under faults is allowed; say what it was)
"$BIN/payguard" audit export -c "$CFG" 2>/dev/null | grep '"what":"review"' | grep -o '"failed_step":"[^"]*","error":"[^"]*"' |
    sort | uniq -c | sort -rn | head -5 | sed 's/^/# ops review: /'

echo "# chaos: seed=$SEED"
finish
