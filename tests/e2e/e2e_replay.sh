#!/usr/bin/env bash
# e2e_replay - incident replay: `payguard replay --stage triage|approve
# --dry-run` re-runs a stage over what it recorded and lists where its
# decisions now differ, acting on nothing (issue: incident replay):
#   1. payouts on both sides of the USD tier-2 threshold, a refund, a
#      re-sent webhook, a second event for a case awaiting people (not
#      routed again) and one for a decided case (routed again) go through
#      the real group (triage advised by the sandbox's model);
#   2. with the configuration they ran under, neither stage's dry run lists
#      a case; triage's says it re-ran the rules only and compared the
#      model's cases with their recorded rules baseline;
#   3. with tier2_from lowered from 5,000.00 to 2,000.00 USD, approve's dry
#      run lists exactly the cases whose route changes, recorded and now;
#   4. it works with the group down as well, and writes nothing: every
#      journal file is byte for byte the same afterwards;
#   5. bad input: an unknown stage, --stage without --dry-run, a data_dir
#      with no journals; and `replay --from` still re-feeds a journal, all
#      of it or by case (--case) and by time (--since, --until).
set -u
. "$(dirname "$0")/lib_e2e.sh"
. "$(dirname "$0")/lib_corpus.sh"

PORT=$(free_port)
APORT=$(free_port)
CFG=$(write_config rp "$PORT")
SBXURL=$(sandbox_url "$CFG")
# the LLM settings go into the existing sections (a second section of the
# same name is refused by config_load)
sed -i "s|^    teams = \(.*\)|    teams = \1\n    llm = $SBXURL/llm|" "$CFG"
sed -i "s|^    instances = 2$|    instances = 2\n    llm_model = sandbox-model\n    llm_key_file = $ROOT/config/sandbox/read.token|" "$CFG"
cfg_merge "$CFG" <<CFG
approve
    public_url = http://127.0.0.1:$APORT
    thresholds
        USD = "500000 5000000 5000"
CFG
# the same group with one policy change: tier 2 from 2,000.00 USD
NEWCFG=$WORK/rp/lowered.cfg
sed 's|^        USD = "500000 5000000 5000"$|        USD = "200000 5000000 5000"|' "$CFG" >"$NEWCFG"
D=$WORK/rp
URL=http://127.0.0.1:$PORT
STRIPE_A=$E2E_SECRET
STD_KEY=$(grep -v '^#' "$ROOT/config/sandbox/standard.secrets" | head -1 | sed 's/^whsec_//')
sandbox() { curl -s -o /dev/null -X "$1" -H 'Content-Type: application/json' --data-binary "${3:-}" "$SBXURL/_sandbox/$2"; }
ok "the two configurations differ in the USD thresholds only" \
    test "$(diff "$CFG" "$NEWCFG" | grep -c '^[<>]')" = 2
ok "group starts" up "$CFG"

# payouts around tier2_from (500000 now, 200000 in NEWCFG), one above
# tier3_above, one in a currency with no thresholds (tier 3 either way)
CASES="P-R1:150000:USD P-R2:199999:USD P-R3:200000:USD P-R4:350000:USD P-R5:499999:USD P-R6:500000:USD P-R7:6000000:USD P-R8:300000:GBP"
payouts="" entries=""
for c in $CASES; do
    IFS=: read -r id amt cur <<<"$c"
    payouts+="{\"id\":\"$id\",\"status\":\"paid\",\"amount\":$amt,\"currency\":\"$cur\",\"beneficiary_id\":\"B-$id\"},"
    entries+="{\"type\":\"payout_paid\",\"ref\":\"$id\",\"amount\":$amt,\"currency\":\"$cur\",\"case_id\":\"seed\"},"
done
sandbox POST seed "{\"payouts\":[${payouts%,}],\"entries\":[${entries%,}]}"
for c in $CASES; do
    IFS=: read -r id amt cur <<<"$c"
    send_stripe "$(stripe_payout_body "evt_$id" "$id" "$amt" "$(tr 'A-Z' 'a-z' <<<"$cur")")" "$STRIPE_A" >/dev/null
done
# a refund (1,850.00 USD below refund_auto_max: its route does not move)
send_standard "$(std_refund_body evt_rf123 refund.succeeded rf_123 pay_9 1850 USD)" msg_rf123 "$(date +%s)" >/dev/null
sleep 1
# the same webhook again (a duplicate: advised on, never routed), and a new
# event for a case awaiting people (its pending approval stands)
send_stripe "$(stripe_payout_body evt_P-R3 P-R3 200000 usd)" "$STRIPE_A" >/dev/null
send_stripe "$(stripe_payout_body evt_P-R4-again P-R4 350000 usd)" "$STRIPE_A" >/dev/null
ok "the group settles" quiesce "$CFG" 60
# a decided case that hears of something new is routed again: two decisions
ok "ops_lead approves P-R1" bash -c "'$BIN/payguard' approve payout-P-R1 --as ops_lead \
    --token-file '$ROOT/config/sandbox/ops_lead.token' -c '$CFG' >/dev/null"
quiesce "$CFG" 30
send_stripe "$(stripe_payout_body evt_P-R1-again P-R1 150000 usd)" "$STRIPE_A" >/dev/null
ok "the group settles again" quiesce "$CFG" 60
dump() { "$BIN/payguard" journal dump -c "$CFG" "$1"; }
routes=$(dump approve.0 | grep '"type":"routed"' | grep -c '"state":')
ok "approve routed the nine cases, P-R1 twice, P-R4 once ($routes routes)" test "$routes" = 10
triaged=$( (dump triage.0; dump triage.1) | grep '"type":"triaged"')
ok "the re-sent webhook was advised on" grep -q '"classification":"webhook_duplicate"' <<<"$triaged"
models=$(grep -c '"source":"llm:sandbox-model"' <<<"$triaged")
ok "the model advised on the eleven validated events ($models)" test "$models" = 11

# diffs OUT - the case lines of a dry run's output
diffs() { grep '  recorded' "$1" | cut -d' ' -f1 | sort | tr '\n' ' '; }

# ---- the configuration the cases ran under: nothing differs
"$BIN/payguard" replay --stage approve --dry-run -c "$CFG" >"$WORK/same.out" 2>"$WORK/same.err"
ok "approve's dry run with the same policy: exit 0" test $? = 0
ok "... lists no case" test -z "$(diffs "$WORK/same.out")"
ok "... and says what it re-ran: 9 cases (10 routes), 0 differ, the policy's file" \
    grep -qxF "replay approve --dry-run: 9 cases re-run (10 decisions), 0 differ (policy from $CFG)" "$WORK/same.out"
"$BIN/payguard" replay --stage triage --dry-run -c "$CFG" >"$WORK/tri.out" 2>"$WORK/tri.err"
ok "triage's dry run with the same configuration: exit 0" test $? = 0
ok "... lists no case" test -z "$(diffs "$WORK/tri.out")"
ok "... says the model is not called, the rules are re-run" grep -q '^note: outside/llm is configured, but a dry run re-runs the deterministic rules only' "$WORK/tri.out"
tri_summary=$(tail -1 "$WORK/tri.out")
ok "... counts the advice re-run, and the model's compared with their rules baseline ($tri_summary)" \
    bash -c "grep -qE '^replay triage --dry-run: 9 cases re-run \(12 decisions\), 0 differ \(the deterministic rules of this build; 11 advised by a model: compared with the rules baseline recorded beside each\)$' <<<'$tri_summary'"

# ---- tier 2 from 2,000.00 USD: exactly the cases between the two thresholds move
"$BIN/payguard" replay --stage approve --dry-run -c "$NEWCFG" >"$WORK/new.out" 2>"$WORK/new.err"
ok "approve's dry run with tier2_from lowered: exit 0 (differences are the answer)" test $? = 0
cat "$WORK/new.out"
ok "it lists exactly P-R3, P-R4 and P-R5 (2,000.00 .. 4,999.99 USD)" \
    test "$(diffs "$WORK/new.out")" = "payout-P-R3 payout-P-R4 payout-P-R5 "
ok "each line says the route recorded and the route now" \
    grep -qxF "payout-P-R4  recorded: humans tier 1 (payments_ops_lead) rule payout_tier_1  now: humans tier 2 (finance_manager compliance) rule payout_tier_2" "$WORK/new.out"
ok "the boundary case 2,000.00 moves too" \
    grep -qxF "payout-P-R3  recorded: humans tier 1 (payments_ops_lead) rule payout_tier_1  now: humans tier 2 (finance_manager compliance) rule payout_tier_2" "$WORK/new.out"
ok "the summary: 9 re-run (10 routes), 3 differ, the new policy's file" \
    grep -qxF "replay approve --dry-run: 9 cases re-run (10 decisions), 3 differ (policy from $NEWCFG)" "$WORK/new.out"
ok "nothing on stderr" test ! -s "$WORK/new.err"
"$BIN/payguard" replay --stage triage --dry-run -c "$NEWCFG" >"$WORK/tri2.out" 2>&1
ok "triage's dry run under the new policy lists none (policy is not triage's)" \
    bash -c "test -z \"\$(grep '  recorded' '$WORK/tri2.out')\" && grep -q ', 0 differ' '$WORK/tri2.out'"
ok "the dry runs approved nothing: approve's journal holds no approval for the moved cases" \
    bash -c "! '$BIN/payguard' journal dump -c '$CFG' approve.0 | grep '\"type\":\"approved\"' | grep -q 'payout-P-R[345]'"

# ---- replay --from still re-feeds a journal (the receivers drop what they have)
ok "replay --from validate.0 sends nothing triage's journals say it took" \
    bash -c "'$BIN/payguard' replay --from validate.0 -c '$CFG' | grep -q '^replayed 0 events from validate.0 .*; [1-9][0-9]* more selected, already taken there, not sent (triage.s journals read on this host: 2 of 2)'"
ok "replay --from validate.0 --unchecked re-feeds it all (triage's own dedup decides)" \
    bash -c "'$BIN/payguard' replay --from validate.0 --unchecked -c '$CFG' | grep -q '^replayed [1-9][0-9]* events from validate.0.*; 0 more selected'"
quiesce "$CFG" 30
ok "... and approve routed nothing again" test "$(dump approve.0 | grep '"type":"routed"' | grep -c '"state":')" = 10
# by case and by time: exactly the records the journal holds for them
# (selected: those sent and those not sent because approve's journal says it took them)
replayed() {
    "$BIN/payguard" replay --from validate.0 -c "$CFG" "$@" |
        sed -n 's/^replayed \([0-9]*\) events.*; \([0-9]*\) more selected.*/\1 \2/p' | awk '{print $1 + $2}'
}
want=$(dump validate.0 | grep '"case_key":"payout-P-R4"' | grep -c '"dest":\["next"')
ok "replay --case re-feeds that case's events only ($(replayed --case payout-P-R4) of the journal's $want)" \
    test "$(replayed --case payout-P-R4)" = "$want"
all=$(replayed)
ok "replay --since before the run re-feeds all of it ($all)" test "$(replayed --since 2020-01-01)" = "$all"
ok "replay --since tomorrow re-feeds nothing" test "$(replayed --since "$(date -u -d tomorrow +%Y-%m-%d)")" = 0
ok "replay --until 1970-01-02T00:00:00Z re-feeds nothing" test "$(replayed --until 1970-01-02T00:00:00Z)" = 0
mid=$(dump validate.0 | grep '"dest":\["next"' | sed -n 's/.*"time_ms":\([0-9]*\).*/\1/p' | sort -n | awk '{t[NR] = $1} END {print int(t[int((NR + 1) / 2)] / 1000) + 1}')
before=$(dump validate.0 | grep '"dest":\["next"' | sed -n 's/.*"time_ms":\([0-9]*\).*/\1/p' | awk -v m="$mid" '$1 < m * 1000' | wc -l)
ok "--until and --since split the journal at a second ($(replayed --until "$mid") + $(replayed --since "$mid") = $all)" \
    test "$(($(replayed --until "$mid") + $(replayed --since "$mid")))" = "$all" -a "$(replayed --until "$mid")" = "$before"
"$BIN/payguard" replay --from validate.0 -c "$CFG" --since yesterday >/dev/null 2>"$WORK/bad.err"
ok "a time it cannot read is refused, saying so" bash -c "test $? = 2 && grep -q \"since 'yesterday' is not a time\" '$WORK/bad.err'"
quiesce "$CFG" 30
ok "... and approve still routed nothing again" test "$(dump approve.0 | grep '"type":"routed"' | grep -c '"state":')" = 10

# ---- with the group down: the same answer, and not a byte written
down "$CFG"
sums() { find "$D/data" -type f -print0 | sort -z | xargs -0 md5sum; }
sums >"$WORK/before.md5"
"$BIN/payguard" replay --stage approve --dry-run -c "$NEWCFG" >"$WORK/down.out" 2>&1
ok "with the group down: exit 0, the same answer" \
    bash -c "test $? = 0 && diff '$WORK/new.out' '$WORK/down.out' >/dev/null"
"$BIN/payguard" replay --stage triage --dry-run -c "$CFG" >/dev/null 2>&1
sums >"$WORK/after.md5"
ok "the dry runs wrote nothing: every file under data_dir is unchanged" diff -q "$WORK/before.md5" "$WORK/after.md5"

# ---- bad input
"$BIN/payguard" replay --stage execute --dry-run -c "$CFG" >/dev/null 2>"$WORK/bad.err"
ok "an unknown stage: exit 2" test $? = 2
ok "... with a message naming it" grep -q "re-runs triage or approve, not 'execute'" "$WORK/bad.err"
"$BIN/payguard" replay --stage approve -c "$CFG" >/dev/null 2>"$WORK/bad.err"
ok "--stage without --dry-run: exit 2, only dry runs (a real re-run is --from)" \
    bash -c "test $? = 2 && grep -q 'only does dry runs' '$WORK/bad.err' && grep -q 'replay --from' '$WORK/bad.err'"
sed "s|data_dir = .*|data_dir = $WORK/nowhere|" "$CFG" >"$WORK/empty.cfg"
"$BIN/payguard" replay --stage approve --dry-run -c "$WORK/empty.cfg" >/dev/null 2>"$WORK/bad.err"
ok "no journals: exit 1, saying which it could not read" \
    bash -c "test $? = 1 && grep -q \"cannot read approve.0's journal\" '$WORK/bad.err'"
ok "... and created nothing" test ! -e "$WORK/nowhere"
finish
