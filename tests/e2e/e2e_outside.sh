#!/usr/bin/env bash
# e2e_outside - outside calls that never block a stage (common/httpc_multi),
# through the real processes and the sandbox:
#   A. slow outside systems and SIGKILLs: every payments, ledger and PSP
#      answer is held back 300 ms (the ledger's posts 1500 ms) while N auto-fixable refund cases go
#      through (validate checks many receipts at once, execute runs many
#      runbooks at once); validate.0 is SIGKILLed while its checks are in
#      flight and execute.0 while its ledger posts are. Every case ends
#      executed, the ledger holds exactly one refund_succeeded per refund,
#      one Teams notice per case went out (distinct Idempotency-Keys),
#      nothing is rejected, and the audit trail verifies;
#   B. the circuit breaker (outside/breaker_failures = 3, breaker_cooldown_ms
#      = 1000): with the ledger answering 503 to everything, M refund cases
#      are posted; `payguard status` and /metrics show a ledger breaker open,
#      no case is rejected or sent to ops review; once the ledger is back
#      every case ends executed with one entry each and the breaker closes;
#  B2. the same with only the ledger's writes failing (validate's reads pass):
#      execute's breaker opens, its steps wait through more failed probes
#      than execute/max_attempts, none goes to ops review, all end executed;
#   C. the configuration refuses unsafe outside limits (outside/max_inflight
#      = 0, outside/limits/<unknown system>, outside/limits/ledger = "abc")
#      with a message naming the setting, and starts nothing.
# Sizes: E2E_OUTSIDE_N cases in A (default 200; 60 against bin-asan/), 20 in B,
# 10 in B2.
set -u
. "$(dirname "$0")/lib_e2e.sh"

if [ -n "${E2E_OUTSIDE_N:-}" ]; then
    N=$E2E_OUTSIDE_N
elif [ "$(basename "$BIN")" = bin-asan ]; then
    N=60 # sanitized programs are several times slower
else
    N=200
fi
M=20
M2=10

# ---- the group (one for A, B and B2): audit's and approve's ports, execute's write token, and a
# breaker that opens after 3 consecutive failures and probes after 1 s
PORT=$(free_port)
UPORT=$(free_port)
CFG=$(write_config out "$PORT")
sed -i 's/^outside$/outside\n    breaker_failures = 3\n    breaker_cooldown_ms = 1000/' "$CFG"
cfg_merge "$CFG" <<CFG
execute
    token_file = $ROOT/config/sandbox/write.token
    retry_base_ms = 50
    retry_max_ms = 500
CFG
SBX=$(sandbox_url "$CFG")
URL=http://127.0.0.1:$PORT
AUD=http://127.0.0.1:$UPORT
OPS=$(cat "$ROOT/config/sandbox/ops_lead.token")
echo "# N=$N (E2E_OUTSIDE_N), M=$M, M2=$M2, programs from $BIN"

# sandbox METHOD PATH [BODY] - the sandbox's control API
sandbox() { curl -s -o /dev/null -X "$1" -H 'Content-Type: application/json' --data-binary "${3:-}" "$SBX/_sandbox/$2"; }
# metrics - audit's /metrics page
metrics() { curl -s "$AUD/metrics"; }
# cases_metric STATE - audit's gauge of cases in STATE (0 when absent)
cases_metric() { metrics | awk -v m="payguard_cases{instance=\"audit.0\",state=\"$1\"}" '$1 == m {v = $2} END {print v + 0}'; }
# final_cases - cases in a final state, all of the group's
final_cases() {
    local s n=0
    for s in executed ops_review already_consistent rejected; do n=$((n + $(cases_metric "$s"))); done
    echo "$n"
}
# wait_final COUNT SECONDS - until COUNT cases are final (audit's gauges)
wait_final() {
    local deadline=$(($(date +%s) + $2))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        [ "$(final_cases)" -ge "$1" ] && return 0
        sleep 0.5
    done
    return 1
}
# cases_in STATE PREFIX - how many cases in STATE have an id starting with PREFIX (audit's cases API)
cases_in() {
    curl -s -H "Authorization: Bearer $OPS" "$AUD/cases?state=$1&limit=1000" |
        grep -o '"case_id":"[^"]*"' | cut -d'"' -f4 | grep -c "^$2"
}
# rejections - validate's rejections so far, every reason
rejections() { metrics | awk '/^payguard_validate_rejections_total\{/ {s += $2} END {print s + 0}'; }
# ledger_entries PREFIX - the sandbox ledger's entries for refs starting with PREFIX, as "type ref"
ledger_entries() {
    curl -s "$SBX/_sandbox/state" | grep -o '{"id":"le_[^}]*}' |
        sed -n 's/.*"type":"\([a-z_]*\)".*"ref":"\([^"]*\)".*/\1 \2/p' | awk -v p="$1" 'index($2, p) == 1' | sort
}
# posts SYSTEM PREFIX - "idempotency_key status" of every POST to SYSTEM whose key starts with PREFIX
posts() {
    curl -s "$SBX/_sandbox/calls?system=$1&limit=100000" |
        grep -o '"method":"POST"[^{]*"idempotency_key":"[^"]*"[^{]*"status":[0-9]*' |
        sed -n 's/.*"idempotency_key":"\([^"]*\)".*"status":\([0-9]*\)/\1 \2/p' | awk -v p="$2" 'index($1, p) == 1'
}
now_ms() { date +%s%3N; }
# calls_at SYSTEM METHOD - "time_ms" of every METHOD call the sandbox logged for SYSTEM
calls_at() {
    curl -s "$SBX/_sandbox/calls?system=$1&limit=100000" | grep -o "\"time_ms\":[0-9]*,\"system\":\"$1\",\"method\":\"$2\"" |
        cut -d: -f2 | cut -d, -f1
}
# wait_mid_call SYSTEM METHOD MIN [AGE] - until SYSTEM has taken at least MIN
# METHOD calls and the newest was taken less than AGE ms ago (default 150):
# its answer, held back longer (300 ms; ledger posts 1500 ms), is still due
# (60 s at most; each look reads only the calls since the last)
wait_mid_call() {
    local seq=0 n=0 t1 last chunk deadline=$(($(date +%s) + 60)) age=${4:-150}
    while [ "$(date +%s)" -lt "$deadline" ]; do
        chunk=$(curl -s "$SBX/_sandbox/calls?system=$1&since=$seq&limit=100000" |
            grep -o '"seq":[0-9]*,"time_ms":[0-9]*,"system":"[a-z]*","method":"[A-Z]*"')
        t1=$(now_ms)
        if [ -n "$chunk" ]; then
            seq=$(tail -1 <<<"$chunk" | sed 's/^"seq":\([0-9]*\),.*/\1/')
            n=$((n + $(grep -c "\"method\":\"$2\"" <<<"$chunk")))
            last=$(grep "\"method\":\"$2\"" <<<"$chunk" | tail -1 | sed 's/.*"time_ms":\([0-9]*\),.*/\1/')
            [ "$n" -ge "$3" ] && [ -n "$last" ] && [ $((t1 - last)) -lt "$age" ] && return 0
        fi
        sleep 0.02
    done
    return 1
}
# on_wire_at SYSTEM METHOD T [HELD] - METHOD calls SYSTEM took in the HELD ms
# (default 300) before T (answered, by that delay, only after T)
on_wire_at() { calls_at "$1" "$2" | awk -v t="$3" -v h="${4:-300}" '$1 > t - h && $1 <= t' | wc -l; }
# kill_stage INSTANCE - SIGKILL it (when: KILL_MS) and wait until the supervisor started it again
KILL_MS=0
kill_stage() {
    local pid new
    pid=$(inst_pid "$CFG" "$1")
    [ -n "$pid" ] && [ "$pid" != 0 ] || return 1
    KILL_MS=$(now_ms)
    kill -9 "$pid" || return 1
    for _ in $(seq 1 300); do
        new=$(inst_pid "$CFG" "$1")
        [ -n "$new" ] && [ "$new" != 0 ] && [ "$new" != "$pid" ] && return 0
        sleep 0.1
    done
    return 1
}
# seed_refunds TAG COUNT - COUNT auto-fixable refunds rf_<TAG>_<k> in the
# sandbox (the payment, the PSP's succeeded refund, the ledger's
# refund_initiated) and a plan of one refund.updated webhook each
# ($WORK/plan_TAG.txt); amounts under refund_auto_max (USD 50.00)
seed_refunds() {
    local tag=$1 n=$2 coll f
    awk -v n="$n" -v tag="$tag" -v now="$(date +%s)" -v dir="$WORK" 'BEGIN {
        for (k = 1; k <= n; k++) {
            rf = "rf_" tag "_" k; pay = "pay_" tag "_" k; amt = 500 + (k * 37) % 4500
            printf "{\"id\":\"%s\",\"amount\":50000,\"currency\":\"USD\",\"customer_id\":\"cus_out\",\"customer_risk\":\"low\",\"flagged\":false,\"refunded_amount\":0}\n", pay > (dir "/seed_" tag ".payments")
            printf "{\"id\":\"%s\",\"amount\":%d,\"currency\":\"usd\",\"status\":\"succeeded\",\"payment_intent\":\"pi_out\",\"metadata\":{\"payment_id\":\"%s\"}}\n", rf, amt, pay > (dir "/seed_" tag ".psp_refunds")
            printf "{\"type\":\"refund_initiated\",\"ref\":\"%s\",\"amount\":%d,\"currency\":\"USD\",\"case_id\":\"seed\"}\n", rf, amt > (dir "/seed_" tag ".entries")
            printf "good {\"id\":\"evt_%s_%d\",\"type\":\"refund.updated\",\"created\":%d,\"data\":{\"object\":{\"id\":\"%s\",\"object\":\"refund\",\"amount\":%d,\"currency\":\"usd\",\"status\":\"succeeded\",\"payment_intent\":\"pi_out\",\"metadata\":{\"payment_id\":\"%s\"}}}}\n", tag, k, now - 60, rf, amt, pay > (dir "/plan_" tag ".txt")
        }
    }'
    for coll in payments psp_refunds entries; do
        split -l 500 "$WORK/seed_$tag.$coll" "$WORK/part_$tag.$coll."
        for f in "$WORK/part_$tag.$coll."*; do
            { printf '{"%s":[' "$coll"; paste -sd, "$f"; printf ']}'; } |
                curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary @- "$SBX/_sandbox/seed" ||
                return 1
        done
    done
}
# load TAG [ARGS...] - post plan_TAG.txt through pg-load (receipts in receipts_TAG.txt)
load() {
    local tag=$1
    shift
    "$BIN/pg-load" --url "$URL/webhooks/stripe" --secret-file "$WORK/secret" --plan "$WORK/plan_$tag.txt" \
        --concurrency 16 --out "$WORK/receipts_$tag.txt" --duration-max-s 600 "$@" >"$WORK/load_$tag.out" 2>"$WORK/load_$tag.err"
}

ok "group starts" up "$CFG"

# ===================================================================== A.
echo "# A. slow outside systems (300 ms a call), validate.0 and execute.0 SIGKILLed mid-flight"
ok "A: the sandbox holds $N refunds (payment, PSP refund, ledger refund_initiated)" seed_refunds oa "$N"
# the ledger's posts (execute's runbook step) are held 1.5 s: the posts of a
# burst are then still on the wire when execute.0 is killed, even on a slow
# (sanitized, busy) machine where the kill comes a few hundred ms after the
# look that chose its moment. Faults apply oldest first: this one before
# the ledger's 300 ms for every other call.
sandbox POST faults '{"system":"ledger","method":"POST","status":0,"delay_ms":1500,"count":1000000}'
for sys in payments ledger psp; do
    sandbox POST faults "{\"system\":\"$sys\",\"status\":0,\"delay_ms\":300,\"count\":1000000}"
done
ok "A: every payments, ledger and PSP answer is held back 300 ms" \
    test "$(curl -s "$SBX/_sandbox/faults" | grep -o '"delay_ms":300' | wc -l)" = 3
rate=$((N / 4))
[ "$rate" -ge 10 ] || rate=10
# about 4 s of deliveries: the kills land while work is in flight (the exit
# status goes to a file: bash forgets a background job's among many children)
{
    load oa --rate "$rate"
    echo $? >"$WORK/load_oa.rc"
} &
LOAD=$!
vr0=$(restarts "$CFG" validate.0)
er0=$(restarts "$CFG" execute.0)
# validate.0: once it has read the PSP for an eighth of the receipts, at a
# moment when the sandbox took a PSP read less than 150 ms ago (its answer is
# held back 150 ms more: validate is waiting for it)
wait_mid_call psp GET $((N / 8))
ok "A: validate.0 SIGKILLed while its checks were in flight, and restarted" kill_stage validate.0
kv=$KILL_MS
echo "# A: validate.0 SIGKILLed after $(calls_at psp GET | awk -v t="$kv" '$1 <= t' | wc -l) PSP reads"
# execute.0: the same, once a third of the cases' ledger posts were made
wait_mid_call ledger POST $((N / 3)) 750
ok "A: execute.0 SIGKILLed while its runbooks were in flight, and restarted" kill_stage execute.0
ke=$KILL_MS
echo "# A: execute.0 SIGKILLed after $(calls_at ledger POST | awk -v t="$ke" '$1 <= t' | wc -l) ledger posts (of $N)"
wait $LOAD 2>/dev/null
load_rc=$(cat "$WORK/load_oa.rc" 2>/dev/null)
ok "A: every webhook was answered 202 ($(tail -1 "$WORK/load_oa.out" | cut -d' ' -f1-5))" test "$load_rc" = 0
vw=$(on_wire_at psp GET "$kv")
ew=$(on_wire_at ledger POST "$ke" 1500)
echo "# A: when validate.0 died $vw PSP reads were awaiting their answers; when execute.0 died $ew ledger posts were"
ok "A: validate.0 died with reads on the wire ($vw PSP reads awaiting their answers)" test "$vw" -ge 1
ok "A: execute.0 died with ledger posts on the wire ($ew awaiting their answers)" test "$ew" -ge 1
ok "A: every case reaches a final state" wait_final "$N" $((180 + N / 2))
echo "# A: cases: executed=$(cases_metric executed) ops_review=$(cases_metric ops_review) rejected=$(cases_metric rejected) already_consistent=$(cases_metric already_consistent)"
ok "A: the supervisor restarted validate.0 and execute.0 (restarts $vr0 -> $(restarts "$CFG" validate.0), $er0 -> $(restarts "$CFG" execute.0))" \
    test "$(restarts "$CFG" validate.0)" -gt "$vr0" -a "$(restarts "$CFG" execute.0)" -gt "$er0"
# (audit's gauge: A's cases are all the group has so far, and there may be more than the cases API lists at once)
ok "A: every case reached executed ($(cases_metric executed) of $N)" test "$(cases_metric executed)" = "$N"
ok "A: no case was rejected or sent to ops review" \
    test "$(cases_metric rejected)/$(cases_metric ops_review)/$(rejections)" = "0/0/0"
ledger_entries rf_oa_ >"$WORK/entries_oa"
ok "A: the ledger holds exactly one refund_succeeded per refund ($(grep -c '^refund_succeeded ' "$WORK/entries_oa") entries, $(grep '^refund_succeeded ' "$WORK/entries_oa" | sort -u | wc -l) distinct refunds)" \
    test "$(grep -c '^refund_succeeded ' "$WORK/entries_oa")" = "$N" -a "$(grep '^refund_succeeded ' "$WORK/entries_oa" | sort -u | wc -l)" = "$N"
ok "A: and no other entry was written for them (only the seeded refund_initiated)" \
    test "$(grep -vc '^refund_succeeded \|^refund_initiated ' "$WORK/entries_oa")" = 0
posts ledger refund-rf_oa_ >"$WORK/ledger_posts_oa"
ok "A: every ledger post carried its case's key (distinct keys: $(cut -d' ' -f1 "$WORK/ledger_posts_oa" | sort -u | wc -l), posts: $(wc -l <"$WORK/ledger_posts_oa"))" \
    test "$(awk '$2 ~ /^20[01]$/ {print $1}' "$WORK/ledger_posts_oa" | sort -u | wc -l)" = "$N" -a \
    "$(cut -d' ' -f1 "$WORK/ledger_posts_oa" | sort -u | grep -vc ':ledger_refund_succeeded$')" = 0
again=$(cut -d' ' -f1 "$WORK/ledger_posts_oa" | sort | uniq -d | wc -l)
ok "A: the posts execute.0 did not see answered were made again with the same key ($again keys posted twice) and answered with their first result" \
    test "$again" -ge 1 -a "$(awk '$2 !~ /^20[01]$/' "$WORK/ledger_posts_oa" | wc -l)" = 0
posts teams refund-rf_oa_ >"$WORK/teams_posts_oa"
ok "A: one Teams notice per case accepted (distinct keys: $(awk '$2 == 202 {print $1}' "$WORK/teams_posts_oa" | sort -u | wc -l); notices posted: $(wc -l <"$WORK/teams_posts_oa"))" \
    test "$(awk '$2 == 202 {print $1}' "$WORK/teams_posts_oa" | sort -u | wc -l)" = "$N"
sandbox DELETE faults

# ===================================================================== B.
echo "# B. the ledger down (503 to everything): the breaker opens, cases wait, then all go through"
ok "B: the sandbox holds $M more refunds" seed_refunds ob "$M"
base_final=$(final_cases)
base_rej=$(rejections)
sandbox POST faults '{"system":"ledger","status":503,"count":1000000}'
ok "B: every webhook was answered 202" load ob
# breaker_lines - the status's ledger lines of validate.0 and execute.0 (as "INSTANCE ledger breaker STATE ...")
breaker_lines() {
    "$BIN/payguard" status -c "$CFG" 2>/dev/null | awk '
        /^[^ ]/ || /^  [^ ]/ {inst = ""; for (i = 1; i <= NF; i++) if ($i ~ /^(validate|execute)\.[0-9]+$/) inst = $i}
        inst != "" && $1 == "ledger" && $2 == "breaker" {print inst, $0}'
}
# wait_breaker INSTANCE_RE STATE_RE SECONDS - until the status shows such a ledger breaker
wait_breaker() {
    for _ in $(seq 1 $(($3 * 2))); do
        breaker_lines | grep -qE "^($1) +ledger +breaker +($2) " && return 0
        sleep 0.5
    done
    return 1
}
# wait_closed - until the status shows every ledger breaker closed (20 s at most)
wait_closed() {
    for _ in $(seq 1 40); do
        breaker_lines >"$WORK/breakers"
        [ -s "$WORK/breakers" ] && ! grep -qv ' breaker closed ' "$WORK/breakers" && return 0
        sleep 0.5
    done
    return 1
}
ok "B: payguard status shows a ledger breaker open (validate.0 or execute.0)" wait_breaker '(validate|execute)\.0' 'open|half_open' 30
breaker_lines >"$WORK/breakers_down"
sed 's/^/# while down: /' "$WORK/breakers_down"
ok "B: the calls behind it wait in its queue (payguard status)" \
    test "$(awk '$4 ~ /^(open|half_open)$/ && $8 > 0' "$WORK/breakers_down" | wc -l)" -ge 1
metrics >"$WORK/metrics_down"
ok "B: /metrics shows the ledger breaker not closed" \
    grep -qE '^payguard_outside_breaker\{instance="(validate|execute)\.0",system="ledger"\} [12]$' "$WORK/metrics_down"
ok "B: /metrics counts the breaker's openings" \
    grep -qE '^payguard_outside_breaker_opened_total\{instance="(validate|execute)\.0",system="ledger"\} [1-9]' "$WORK/metrics_down"
sleep 3 # a few cool-downs: probes fail, the breaker opens again, nothing is given up
ok "B: while the ledger is down no case is rejected, in ops review or executed" \
    test "$(rejections)/$(cases_metric rejected)/$(cases_in ops_review refund-rf_ob_)/$(cases_in executed refund-rf_ob_)" = "$base_rej/0/0/0"
ok "B: and none is final yet" test "$(final_cases)" = "$base_final"
sandbox DELETE faults
ok "B: once the ledger is back every case reaches a final state" wait_final $((base_final + M)) $((120 + M))
ok "B: every case reached executed ($(cases_in executed refund-rf_ob_) of $M)" test "$(cases_in executed refund-rf_ob_)" = "$M"
ok "B: none was rejected or sent to ops review" \
    test "$(rejections)/$(cases_metric rejected)/$(cases_metric ops_review)" = "$base_rej/0/0"
ledger_entries rf_ob_ >"$WORK/entries_ob"
ok "B: the ledger holds exactly one refund_succeeded per refund" \
    test "$(grep -c '^refund_succeeded ' "$WORK/entries_ob")" = "$M" -a "$(grep '^refund_succeeded ' "$WORK/entries_ob" | sort -u | wc -l)" = "$M"
ok "B: the ledger breakers closed again (payguard status)" wait_closed
breaker_lines | sed 's/^/# after: /'
ok "B: and /metrics says so" bash -c "! curl -s '$AUD/metrics' | grep -qE '^payguard_outside_breaker\\{[^}]*system=\"ledger\"\\} [12]\$'"

# ===================================================================== B2.
echo "# B2. only the ledger's writes fail: execute's breaker opens, its steps wait, none goes to ops review"
ok "B2: the sandbox holds $M2 more refunds" seed_refunds oc "$M2"
base_final=$(final_cases)
sandbox POST faults '{"system":"ledger","method":"POST","status":503,"count":1000000}'
ok "B2: every webhook was answered 202" load oc
ok "B2: payguard status shows execute.0's ledger breaker open" wait_breaker 'execute\.0' 'open|half_open' 30
breaker_lines | sed 's/^/# while down: /'
ok "B2: /metrics shows it not closed" \
    bash -c "curl -s '$AUD/metrics' | grep -qE '^payguard_outside_breaker\\{instance=\"execute\\.0\",system=\"ledger\"\\} [12]\$'"
# more cool-downs than execute/max_attempts (4): each lets one probe fail
sleep 6
posts ledger refund-rf_oc_ >"$WORK/ledger_posts_oc"
most=$(awk '$2 == 503 {n[$1]++} END {for (k in n) if (n[k] > m) m = n[k]; print m + 0}' "$WORK/ledger_posts_oc")
ok "B2: the posts met 503s ($(awk '$2 == 503' "$WORK/ledger_posts_oc" | wc -l)), one of them (the probe) $most times: more than execute/max_attempts (4)" \
    test "$most" -gt 4
ok "B2: and still no case is in ops review, executed or final" \
    test "$(cases_in ops_review refund-rf_oc_)/$(cases_in executed refund-rf_oc_)/$(final_cases)" = "0/0/$base_final"
sandbox DELETE faults
ok "B2: once the ledger takes writes again every case reaches a final state" wait_final $((base_final + M2)) $((120 + M2))
ok "B2: every case reached executed ($(cases_in executed refund-rf_oc_) of $M2), none in ops review" \
    test "$(cases_in executed refund-rf_oc_)/$(cases_metric ops_review)/$(cases_metric rejected)" = "$M2/0/0"
ledger_entries rf_oc_ >"$WORK/entries_oc"
ok "B2: the ledger holds exactly one refund_succeeded per refund" \
    test "$(grep -c '^refund_succeeded ' "$WORK/entries_oc")" = "$M2" -a "$(grep '^refund_succeeded ' "$WORK/entries_oc" | sort -u | wc -l)" = "$M2"
ok "B2: the ledger breakers closed again" wait_closed
metrics >"$WORK/metrics_end"
# hist FAMILY LABELS - the histogram's _count for these labels is above 0
hist() { grep -qF "${1}_count{$2} " "$WORK/metrics_end" && grep -F "${1}_count{$2} " "$WORK/metrics_end" | awk '{exit !($2 > 0)}'; }
ok "the latency histograms are served: calls per system and answer class, time per stage, webhook to final state" \
    bash -c "$(declare -f hist); WORK='$WORK'
        hist payguard_outside_call_seconds 'instance=\"validate.0\",system=\"psp\",class=\"2xx\"' &&
        hist payguard_outside_call_seconds 'instance=\"execute.0\",system=\"ledger\",class=\"2xx\"' &&
        hist payguard_outside_call_seconds 'instance=\"execute.0\",system=\"ledger\",class=\"5xx\"' &&
        hist payguard_stage_seconds 'instance=\"execute.0\"' &&
        hist payguard_case_seconds 'instance=\"execute.0\",outcome=\"done\"'"

ok "payguard audit verify passes" "$BIN/payguard" audit verify -c "$CFG"
down "$CFG"

# ===================================================================== C.
echo "# C. unsafe outside limits are refused"
# refused NAME SETTING_LINES EXPECTED_TEXT - `payguard up` with these outside
# lines fails, says EXPECTED_TEXT, and starts nothing
refused() {
    local dir=$WORK/c_$1
    mkdir -p "$dir"
    printf 'payguard\n    run_dir = %s/run\n    data_dir = %s/data\noutside\n%s\n' "$dir" "$dir" "$2" >"$dir/payguard.cfg"
    "$BIN/payguard" up -c "$dir/payguard.cfg" -d >"$dir/out" 2>&1
    local rc=$?
    sed 's/^/# /' "$dir/out"
    [ "$rc" -ne 0 ] && grep -qF "$3" "$dir/out" && [ ! -e "$dir/run/master.state" ]
}
ok "C: outside/max_inflight = 0 is refused, naming the setting" \
    refused inflight0 '    max_inflight = 0' "outside/max_inflight"
ok "C: outside/limits/unknownsys is refused, naming the setting" \
    refused unknownsys "$(printf '    limits\n        unknownsys = "4"')" "outside/limits/unknownsys"
ok "C: outside/limits/ledger = \"abc\" is refused, naming the setting" \
    refused ledgerabc "$(printf '    limits\n        ledger = "abc"')" "outside/limits/ledger"

finish
