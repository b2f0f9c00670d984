#!/usr/bin/env bash
# soak.sh - payguard at a steady rate for a long time (make soak; not in
# make test): does anything grow with history? Writes bench/results-soak.md.
#
#   SOAK_MINUTES=30 SOAK_RATE=150 bash scripts/soak.sh
#
# One group on its defaults as the e2e tests run it (the sandbox for the
# outside systems, rule-based triage), fed refund webhooks the default
# policy fixes on its own (auto-approved, executed: ledger entry, Teams
# notice), as make bench-scale's; every stage's retention_s and audit's
# archive_after_s of SOAK_RETENTION_S (120) and 4 MiB segments, so
# retention and the trail's archive act within the run, and
# payguard/delivery/recent_ids of SOAK_RECENT_IDS (8192), so each stage's
# set of the ids it took last is full before the first sample (at the
# default 65,536 a triage worker's fills in about 15 minutes at 150
# cases a second: growth until then is that bound filling, not history). pg-load sends SOAK_RATE webhooks a second for SOAK_MINUTES
# minutes. At 10%, 50% and 100% of the run it records, per stage instance:
#   - resident memory (VmRSS), the heap in use (the stage's own
#     payguard_heap_in_use_bytes) and private memory (RssAnon: without the
#     shared library pages every process maps);
#   - restart-to-ready of audit and approve: from SIGTERM to the new
#     process answering /healthz (it serves once its state is recovered;
#     the supervisor's restart backoff is included);
#   - disk: each stage's journal directory, the state stores (validate's,
#     approve's, execute's), audit's live trail, its archive and its case
#     index, all of data_dir; per case, and the stage journals without
#     audit's trail (what retention bounds).
# The goals: memory and restart time flat within 10% from 10% to
# 100% of the run, stage journals after retention at most 5 KB a case.
# The last line says which held; the exit status is 0 either way (a
# measurement, not a test) unless the run itself failed.
set -u
cd "$(dirname "$0")/.."
MIN=${SOAK_MINUTES:-30}
RATE=${SOAK_RATE:-150}
RET=${SOAK_RETENTION_S:-120}
RIDS=${SOAK_RECENT_IDS:-8192}
OUT=${SOAK_OUT:-bench/results-soak.md}
export PG_BIN=${PG_BIN:-$PWD/bin}
. tests/e2e/lib_e2e.sh

TOTAL=$((MIN * 60 * RATE))
PORT=$(free_port)
CFG=$(write_config soak "$PORT")
D=$WORK/soak
cfg_merge "$CFG" <<CFG
payguard
    journal
        segment_bytes = 4194304
ingest
    retention_s = $RET
validate
    retention_s = $RET
triage
    retention_s = $RET
approve
    retention_s = $RET
execute
    token_file = $PWD/config/sandbox/write.token
    retention_s = $RET
audit
    archive_after_s = $RET
CFG
sed -i "/^        max_inflight = /a\\        recent_ids = $RIDS" "$CFG" # payguard/delivery, which write_config began
say() { echo "soak: $*" >&2; }
up "$CFG" || { say "the group did not start"; exit 1; }
# the refunds, their payments and ledger entries, and the plan pg-load sends
awk -v n="$TOTAL" -v now="$(date +%s)" -v w="$WORK" 'BEGIN {
    for (i = 1; i <= n; i++) {
        a = 500 + i % 4000
        printf "{\"id\":\"pay_s%d\",\"amount\":50000,\"currency\":\"USD\",\"customer_id\":\"cus_s\",\"customer_risk\":\"low\",\"flagged\":false,\"refunded_amount\":0}\n", i > (w "/seed.payments")
        printf "{\"id\":\"rf_s%d\",\"amount\":%d,\"currency\":\"usd\",\"status\":\"succeeded\",\"payment_intent\":\"pi_s\",\"metadata\":{\"payment_id\":\"pay_s%d\"}}\n", i, a, i > (w "/seed.psp_refunds")
        printf "{\"type\":\"refund_initiated\",\"ref\":\"rf_s%d\",\"amount\":%d,\"currency\":\"USD\",\"case_id\":\"seed\"}\n", i, a > (w "/seed.entries")
        printf "good {\"id\":\"evt_s%d\",\"type\":\"refund.updated\",\"created\":%d,\"data\":{\"object\":{\"id\":\"rf_s%d\",\"object\":\"refund\",\"amount\":%d,\"currency\":\"usd\",\"status\":\"succeeded\",\"payment_intent\":\"pi_s\",\"metadata\":{\"payment_id\":\"pay_s%d\"}}}}\n", i, now - 60, i, a, i > (w "/plan.txt")
    }
}'
say "seeding the sandbox with $TOTAL refunds"
seed_files "$CFG" "$WORK" || { say "seeding failed"; exit 1; }
stat_of() { awk -F= -v k="$2" '$1 == k {print $2}' "$D/run/$1.stat" 2>/dev/null; }
kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null; }
insts="ingest.0 validate.0 triage.0 triage.1 approve.0 execute.0 audit.0"

# s_ready_ms INST PORT - SIGTERM it, ms until a new process answers /healthz
s_ready_ms() {
    local old t0 t
    old=$(inst_pid "$CFG" "$1")
    t0=$(date +%s%3N)
    kill -TERM "$old"
    for _ in $(seq 1 3000); do
        local now
        now=$(inst_pid "$CFG" "$1")
        if [ -n "$now" ] && [ "$now" != 0 ] && [ "$now" != "$old" ] &&
            curl -fs -o /dev/null "http://127.0.0.1:$2/healthz"; then
            t=$(date +%s%3N)
            echo $((t - t0))
            return
        fi
        sleep 0.01
    done
    echo -1
}

# s_sample LABEL - one row of numbers into $WORK/samples
s_sample() {
    local cases row aport uport
    cases=$(wc -l <"$WORK/receipts.txt" 2>/dev/null || echo 0)
    row="$1 cases=$cases"
    for i in $insts; do row="$row rss_$i=$(kb "$(inst_pid "$CFG" "$i")" VmRSS)"; done
    for i in $insts; do row="$row anon_$i=$(kb "$(inst_pid "$CFG" "$i")" RssAnon)"; done
    for i in $insts; do
        row="$row heap_$i=$(awk '$1 ~ /^payguard_heap_in_use_bytes/ {print int($2 / 1024)}' "$D/run/$i.prom" 2>/dev/null)"
    done
    for i in ingest.0 validate.0 triage.0 triage.1 approve.0 execute.0 audit.0; do
        row="$row disk_$i=$(du -sk "$D/data/$i" | cut -f1)"
    done
    row="$row disk_index=$(du -sk "$D/data/audit.0.cases.sqlite"* 2>/dev/null | awk '{s += $1} END {print s + 0}')"
    row="$row disk_stores=$(du -sk "$D/data/validate.0.sqlite"* "$D/data/approve.0.cases.sqlite"* \
        "$D/data/execute.0.reviews.sqlite"* 2>/dev/null | awk '{s += $1} END {print s + 0}')"
    row="$row disk_archive=$(du -sk "$D/data/audit.0.archive" 2>/dev/null | cut -f1)"
    row="$row disk_all=$(du -sk "$D/data" | cut -f1)"
    aport=$(awk '/^audit/ {s = 1} s && $1 == "http_port" {print $3; exit}' "$CFG")
    uport=$(awk '/^approve/ {s = 1} s && $1 == "http_port" {print $3; exit}' "$CFG")
    row="$row ready_audit=$(s_ready_ms audit.0 "$aport") ready_approve=$(s_ready_ms approve.0 "$uport")"
    echo "$row" >>"$WORK/samples"
    say "$row"
}

say "$TOTAL webhooks at $RATE a second for $MIN minutes"
"$BIN/pg-load" --url "http://127.0.0.1:$PORT/webhooks/stripe" --secret-file "$WORK/secret" --plan "$WORK/plan.txt" \
    --rate "$RATE" --concurrency 16 --out "$WORK/receipts.txt" --duration-max-s $((MIN * 60 + 600)) \
    >"$WORK/load.out" 2>&1 &
LOAD=$!
start=$(date +%s)
for pct in 10 50; do
    while [ $(($(date +%s) - start)) -lt $((MIN * 60 * pct / 100)) ] && kill -0 $LOAD 2>/dev/null; do sleep 1; done
    s_sample "$pct%"
done
wait $LOAD
load_rc=$?
quiesce "$CFG" 300
s_sample "100%"
restarted=""
for i in $insts; do
    n=$(restarts "$CFG" "$i")
    case $i in audit.0 | approve.0) [ "$n" -le 3 ] || restarted="$restarted $i($n)" ;; *) [ "$n" = 0 ] || restarted="$restarted $i($n)" ;; esac
done
down "$CFG"
"$BIN/pg-check" --data "$D/data" --receipts "$WORK/receipts.txt" --quiet >"$WORK/check.out" 2>&1
check=$(tail -1 "$WORK/check.out")

# the report
v() { awk -v l="$1" -v k="$2" '$1 == l {for (i = 2; i <= NF; i++) {split($i, a, "="); if (a[1] == k) print a[2]}}' "$WORK/samples"; }
# mib_table KEY - a table of KEY_<instance> (KiB) in MiB at 10%, 50%, 100%
mib_table() {
    echo "| at | $(for i in $insts; do printf '%s | ' "$i"; done)"
    echo "|---|$(for _ in $insts; do printf -- '---|'; done)"
    for l in 10% 50% 100%; do
        printf '| %s | ' "$l"
        for i in $insts; do printf '%s | ' "$(awk -v k="$(v $l "${1}_$i")" 'BEGIN {printf "%.1f", k / 1024}')"; done
        echo
    done
    echo
}
flat() { awk -v a="$1" -v b="$2" 'BEGIN {print ((a > 0 && b <= a * 1.10) ? "yes" : "no")}'; }
{
    echo "# payguard soak: does anything grow with history?"
    echo
    echo "Made by \`make soak\` (scripts/soak.sh) on $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null),"
    echo "$(getconf _NPROCESSORS_ONLN) CPUs, $MIN minutes at $RATE webhooks a second ($TOTAL refund cases the policy fixes on its own;"
    echo "$(v 100% cases) answered 202), journal segments of 4 MiB, every stage's retention and the trail's archive after $RET s,"
    echo "recent_ids $RIDS;"
    echo "pg-load exit $load_rc."
    echo "Restarts other than the measured ones:${restarted:- none}. pg-check at the end: $check."
    echo
    echo "| at | cases | $(for i in $insts; do printf '%s MiB | ' "$i"; done)audit ready ms | approve ready ms |"
    echo "|---|---|$(for _ in $insts; do printf -- '---|'; done)---|---|"
    for l in 10% 50% 100%; do
        printf '| %s | %s | ' "$l" "$(v $l cases)"
        for i in $insts; do printf '%s | ' "$(awk -v k="$(v $l "rss_$i")" 'BEGIN {printf "%.1f", k / 1024}')"; done
        printf '%s | %s |\n' "$(v $l ready_audit)" "$(v $l ready_approve)"
    done
    echo
    echo "Private memory (RssAnon: without the shared library pages VmRSS counts), MiB:"
    echo
    mib_table anon
    echo "Heap in use (payguard_heap_in_use_bytes, the stage's own reading every 10 s), MiB:"
    echo
    mib_table heap
    echo "Disk, KB per case (cases answered 202 so far):"
    echo
    echo "| at | stage journals but audit | state stores | audit's live trail | its archive | case index | all of data_dir | $(for i in ingest.0 validate.0 triage.0 approve.0 execute.0; do printf '%s | ' "$i"; done)"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for l in 10% 50% 100%; do
        c=$(v $l cases)
        stages=0
        for i in ingest.0 validate.0 triage.0 triage.1 approve.0 execute.0; do stages=$((stages + $(v $l "disk_$i"))); done
        per() { awk -v k="$1" -v c="$c" 'BEGIN {printf "%.2f", (c > 0 ? k / c : 0)}'; }
        printf '| %s | %s | %s | %s | %s | %s | %s | ' "$l" "$(per $stages)" "$(per "$(v $l disk_stores)")" "$(per "$(v $l disk_audit.0)")" \
            "$(per "$(v $l disk_archive)")" "$(per "$(v $l disk_index)")" "$(per "$(v $l disk_all)")"
        for i in ingest.0 validate.0 triage.0 approve.0 execute.0; do printf '%s | ' "$(per "$(v $l "disk_$i")")"; done
        echo
    done
    echo
    grew=""
    for i in $insts; do [ "$(flat "$(v 10% "rss_$i")" "$(v 100% "rss_$i")")" = yes ] || grew="$grew $i"; done
    mem_flat=${grew:+no (grew:$grew)}
    mem_flat=${mem_flat:-yes}
    # from 50% on too: by then the sets configuration sizes (recent_ids) are full
    grew=""
    for i in $insts; do [ "$(flat "$(v 50% "rss_$i")" "$(v 100% "rss_$i")")" = yes ] || grew="$grew $i"; done
    late_flat=${grew:+no (grew:$grew)}
    late_flat=${late_flat:-yes}
    ready_flat=$(flat "$(v 10% ready_audit)" "$(v 100% ready_audit)")/$(flat "$(v 10% ready_approve)" "$(v 100% ready_approve)")
    per_case=$(awk -v c="$(v 100% cases)" -v s="$(for i in ingest.0 validate.0 triage.0 triage.1 approve.0 execute.0; do v 100% "disk_$i"; done | awk '{s += $1} END {print s}')" 'BEGIN {printf "%.2f", (c > 0 ? s / c : 0)}')
    echo "Goals: memory flat within 10% from 10% to 100%: $mem_flat (from 50% to 100%: $late_flat); restart-to-ready flat within 10% (audit/approve): $ready_flat;"
    echo "stage journals (not audit's trail) at most 5 KB a case: $per_case KB ($(awk -v p="$per_case" 'BEGIN {print ((p <= 5) ? "yes" : "no")}'));"
    echo "the trail's archive: $(awk -v c="$(v 100% cases)" -v k="$(v 100% disk_archive)" 'BEGIN {printf "%.2f", (c > 0 ? k / c : 0)}') KB a case."
} >"$OUT"
cat "$OUT"
finish >/dev/null
exit 0
