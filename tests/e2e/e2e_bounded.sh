#!/usr/bin/env bash
# e2e_bounded - no stage stops or grows for having processed a lot: the
# dedup memory (common/dedup.h) is set by configuration, not by history.
# With tiny bounds (max_inflight 40, so at most 3 x 40 + 1,024 positions a
# producer; recent_ids 1,024) and 3,000 webhooks (E2E_BOUNDED_WEBHOOKS; 1,500
# in the sanitized pass), far past every bound:
#   1. every webhook is answered 202 while validate.0 and audit.0 are
#      SIGKILLed mid-load; the pipeline drains;
#   2. no other instance was ever restarted (before, a stage whose set of
#      every id it had taken was full exited, and again after each restart);
#   3. every instance's dedup memory stays within its bounds (status files);
#   4. exactly once and complete (pg-check): every receipt through every
#      stage and into the trail, no event id with two effects;
#   5. `payguard replay` of validate.0's journal into triage sends nothing
#      (triage's journals say it took every event); `--unchecked` replay of
#      ingest.0's whole journal into validate, long past its recent ids: each
#      is dropped by its producer's floor and position, nothing new emitted;
#   6. a stage restarted (clean) recovers its dedup memory from the journal
#      within the same bounds;
#   7. audit moves its sealed trail segments to its archive (compressed,
#      archive_after_s 0 here): audit verify, export and pg-check read
#      across archived and live segments, and audit restarts on them;
#   8. approve, whose case store holds its state as of a journal position,
#      removes what neither follows that position nor waits for an ack; its
#      pending cases survive the restart, and repartition refuses to resize
#      approve once its journal lost segments (validate's retention:
#      e2e_validate);
#   9. triage (stateless) removes its segments approve and audit
#      acknowledged once older than triage/retention_s (2 s here), after a
#      checkpoint of its dedup memory: pg-check finds what it removed in
#      audit's trail, and replay into triage after a restart still sends
#      nothing it took.
set -u
. "$(dirname "$0")/lib_e2e.sh"
N=${E2E_BOUNDED_WEBHOOKS:-3000}

PORT=$(free_port)
CFG=$(write_config bd "$PORT" 40)
D=$WORK/bd
sed -i 's/^        max_inflight = 40$/&\n        recent_ids = 1024/' "$CFG"
cfg_merge "$CFG" <<CFG
payguard
    journal
        segment_bytes = 65536
triage
    retention_s = 2
approve
    retention_s = 2
audit
    checkpoint_every_s = 1
    archive_after_s = 0
CFG
ok "group starts with max_inflight 40, recent_ids 1024, triage retention 2 s, the trail archived at once" up "$CFG"
[ "$FAILED" = 0 ] || finish
ok "the sandbox knows the $N payouts" seed_load_payouts "$CFG" "$N"
URL=http://127.0.0.1:$PORT
stat_of() { awk -F= -v k="$2" '$1 == k {print $2}' "$D/run/$1.stat" 2>/dev/null; }
insts="ingest.0 validate.0 triage.0 triage.1 approve.0 execute.0 audit.0"
APPROVE_URL=http://127.0.0.1:$(awk '/^approve$/ {a=1} a && /http_port/ {print $3; exit}' "$CFG")
# pending_count - how many cases await people (approve's gauge, refreshed
# every 200 ms: the list answers at most 1,000)
pending_count() {
    sleep 1.2
    curl -s "$APPROVE_URL/metrics" | sed -n 's/^payguard_approvals_pending{[^}]*} \([0-9]*\)$/\1/p'
}

# ---- 1. load with SIGKILLs
"$BIN/pg-load" --url "$URL/webhooks/stripe" --secret-file "$WORK/secret" --count "$N" --concurrency 16 \
    --out "$WORK/receipts.txt" --duration-max-s 300 >"$WORK/load.out" 2>&1 &
LOAD=$!
killed=""
for inst in validate.0 audit.0; do
    target=$(($(wc -l 2>/dev/null <"$WORK/receipts.txt" || echo 0) + N / 3))
    for _ in $(seq 1 600); do
        [ "$(wc -l 2>/dev/null <"$WORK/receipts.txt" || echo 0)" -ge "$target" ] && break
        kill -0 $LOAD 2>/dev/null || break
        sleep 0.1
    done
    pid=$(inst_pid "$CFG" $inst)
    [ -n "$pid" ] && [ "$pid" != 0 ] && kill -9 "$pid" && killed="$killed $inst"
done
wait $LOAD
load_rc=$?
sed "s/^/# /" "$WORK/load.out"
ok "all $N webhooks answered 202" test $load_rc = 0
ok "validate.0 and audit.0 were SIGKILLed mid-load" test "$killed" = " validate.0 audit.0"
ok "the pipeline drains" quiesce "$CFG" 180

# ---- 2. nobody else restarted
others=""
for inst in $insts; do
    case " $killed " in *" $inst "*) continue ;; esac
    [ "$(restarts "$CFG" "$inst")" = 0 ] || others="$others $inst"
done
ok "no instance but the killed ones ever restarted (restarted:${others:- none})" test -z "$others"
audit_in=$(stat_of audit.0 in)
ok "audit took more events than it may remember ids ($audit_in > 2 x 1024)" test "${audit_in:-0}" -gt 2048

# ---- 3. bounded memory
over=""
for inst in $insts; do
    p=$(stat_of "$inst" dedup_producers) s=$(stat_of "$inst" dedup_seqs) r=$(stat_of "$inst" dedup_recent_ids)
    echo "# $inst: dedup producers=$p seqs=$s recent_ids=$r"
    [ "${r:-0}" -le 1024 ] && [ "${s:-0}" -le $((${p:-0} * 1144)) ] || over="$over $inst"
done
ok "every instance's dedup memory is within its bounds (over:${over:- none})" test -z "$over"

# ---- 3b. triage removed what approve and audit acknowledged, after a
# checkpoint of its dedup memory (it keeps no other state)
first_seg() { ls "$D/data/$1/" | grep '\.seg$' | head -1; }
for _ in $(seq 1 150); do
    [ -f "$D/data/triage.0/retired" ] && [ -f "$D/data/triage.1/retired" ] && break
    sleep 0.2
done
ok "both triage workers removed acknowledged segments ($(first_seg triage.0), $(first_seg triage.1))" \
    test -f "$D/data/triage.0/retired" -a -f "$D/data/triage.1/retired" -a \
    "$(first_seg triage.0)" != 00000000000000000001.seg -a "$(first_seg triage.1)" != 00000000000000000001.seg
ok "...and said so" grep -q 'inst=triage.[01].*retired [0-9]* journal segment' "$D/run/payguard.log"
# approve too: its case store (approve/case_db) holds its state as of a
# journal position, and what follows that position stays
for _ in $(seq 1 150); do [ -f "$D/data/approve.0/retired" ] && break; sleep 0.2; done
ok "approve removed acknowledged segments its case store holds ($(first_seg approve.0))" \
    test -f "$D/data/approve.0/retired" -a "$(first_seg approve.0)" != 00000000000000000001.seg
pending_before=$(pending_count)

# ---- 3c. audit moved its sealed trail segments to the archive, compressed,
# with a copy of the checkpoints; every reader still reads them (pg-check
# below reads the whole trail)
A=$D/data/audit.0.archive
for _ in $(seq 1 150); do
    [ "$(ls "$A" 2>/dev/null | grep -c '\.seg\.zst$')" -ge 2 ] && [ -s "$A/checkpoints" ] && break
    sleep 0.2
done
nz=$(ls "$A" 2>/dev/null | grep -c '\.seg\.zst$')
ok "audit moved $nz sealed trail segments to its archive, with a copy of the checkpoints" test "$nz" -ge 2 -a -s "$A/checkpoints"
ok "the live trail starts after them ($(first_seg audit.0))" \
    test "$(first_seg audit.0)" != 00000000000000000001.seg -a -f "$D/data/audit.0/archive" -a -f "$D/data/audit.0/retired"
zb=$(cat "$A"/*.seg.zst | wc -c)
ok "compressed: $nz segments of up to 64 KiB take $zb bytes" test "$zb" -lt $((nz * 65536 / 2))
m=$(curl -s "http://127.0.0.1:$(awk '/^audit$/ {a=1} a && /http_port/ {print $3; exit}' "$CFG")/metrics")
ok "audit's /metrics counts what it archived" grep -qE '^payguard_audit_archived_segments_total\{[^}]*\} [1-9]' <<<"$m"
"$BIN/payguard" audit verify -c "$CFG" >"$WORK/verify.out" 2>&1
ok "payguard audit verify passes across archived and live segments" test $? = 0
sed "s/^/# /" "$WORK/verify.out"
ok "payguard audit export reads the archived records too (every receipt)" \
    test "$("$BIN/payguard" audit export -c "$CFG" 2>/dev/null | grep -c '"what":"receipt"')" -ge "$N"

# ---- 4. exactly once, complete (what triage retired is found in audit's trail)
"$BIN/pg-check" --data "$D/data" --receipts "$WORK/receipts.txt" --quiet >"$WORK/check.out" 2>&1
sed "s/^/# /" "$WORK/check.out"
ok "every receipt reached every stage and the trail, no id with two effects" grep -q ' 0 failed$' "$WORK/check.out"

# ---- 5. replay far past the recent ids
# triage's journals no longer hold what it retired: replay sends those, and
# triage drops each by validate.0's floor (journaling it as taken, so the
# replay sees it taken); it answers none again
tout=$(($(stat_of triage.0 out) + $(stat_of triage.1 out)))
"$BIN/payguard" replay -c "$CFG" --from validate.0 --into triage >"$WORK/replay.out" 2>&1
ok "payguard replay of validate.0 into triage: exit 0" test $? = 0
sed "s/^/# /" "$WORK/replay.out"
sent=$(awk '/^replayed/ {print $2}' "$WORK/replay.out")
skipped=$(sed -n 's/^replayed .*; \([0-9]*\) more selected.*/\1/p' "$WORK/replay.out")
kept=$("$BIN/payguard" journal dump -c "$CFG" validate.0 | grep -c '"type":"validated"')
ok "every one of the $kept events left in validate.0's journal either not sent (taken, per triage's journals: $skipped) or sent ($sent)" \
    test $((sent + skipped)) = "$kept" -a "$kept" -gt 0
ok "...and every one sent was seen taken" grep -q "^confirmed: $sent of $sent sent seen taken" "$WORK/replay.out"
ok "...and triage answered none of them again" test $(($(stat_of triage.0 out) + $(stat_of triage.1 out))) = "$tout"
"$BIN/payguard" replay -c "$CFG" --from validate.0 --into triage >"$WORK/replay1.out" 2>&1
sed "s/^/# /" "$WORK/replay1.out"
# triage's retention (2 s) may have removed the records of what it took
# meanwhile, so the replay may send some again: triage must answer none
ok "a second replay: every event either seen taken or sent, and each sent one seen taken" \
    bash -c "grep -q '^replayed [0-9]* events .*; [0-9]* more selected, already taken there' '$WORK/replay1.out' &&
             grep -Eq '^confirmed: ([0-9]+) of \\1 sent seen taken' '$WORK/replay1.out'"
ok "...and triage answered none of them again" test $(($(stat_of triage.0 out) + $(stat_of triage.1 out))) = "$tout"
# unchecked, each event reaches validate (partitioned: its owner), whose own
# dedup must drop it by ingest.0's floor and positions: far past recent_ids
in0=$(stat_of validate.0 in) out0=$(stat_of validate.0 out) dup0=$(stat_of validate.0 duplicates)
"$BIN/payguard" replay -c "$CFG" --from ingest.0 --unchecked >"$WORK/replay2.out" 2>&1
ok "payguard replay --unchecked re-feeds ingest.0's whole journal into validate" test $? = 0
sed "s/^/# /" "$WORK/replay2.out"
sent=$(awk '/^replayed/ {print $2}' "$WORK/replay2.out")
for _ in $(seq 1 300); do [ $(($(stat_of validate.0 in) - in0)) -ge "${sent:-1}" ] && break; sleep 0.2; done
ok "validate took the $sent replayed receipts" test $(($(stat_of validate.0 in) - in0)) -ge "${sent:-1}"
ok "...dropped every one as taken ($(($(stat_of validate.0 duplicates) - dup0)))" \
    test $(($(stat_of validate.0 duplicates) - dup0)) -ge "${sent:-1}"
ok "...and answered none of them again" test "$(stat_of validate.0 out)" = "$out0"
ok "the pipeline drains after replay" quiesce "$CFG" 60

# ---- 6. a restart recovers the same bounded memory
down "$CFG"
ok "the group restarts" up "$CFG"
wait_stat "$CFG" audit.0 dedup_recent_ids 1 30
r=$(stat_of audit.0 dedup_recent_ids) s=$(stat_of audit.0 dedup_seqs) p=$(stat_of audit.0 dedup_producers)
# audit archives at once here (archive_after_s 0), so its live tail is
# short: the producers' floors and positions come from its dedup checkpoint,
# and its recovery reads back into the archive only as far as recent_ids
# records, for the recent ids
ok "audit recovered its dedup memory within bounds (producers=$p seqs=$s recent=$r)" \
    test "${p:-0}" -ge 5 -a "${r:-0}" -ge 512 -a "${r:-0}" -le 1024 -a "${s:-0}" -le $((${p:-0} * 1144))
ok "audit's start-up log says what it recovered" \
    grep -q 'inst=audit.0.*recovered [0-9]* journal records; dedup: [0-9]* producers' "$D/run/payguard.log"
rec=$(grep 'inst=audit.0 msg="recovered ' "$D/run/payguard.log" | tail -1 | sed 's/.*recovered \([0-9]*\) journal records.*/\1/')
ok "audit's restart read its live tail and recent_ids records back, not the archive's history ($rec of $(stat_of audit.0 journal_seq) records)" \
    test "${rec:-0}" -gt 0 -a "${rec:-0}" -lt "$(stat_of audit.0 journal_seq)"
wait_stat "$CFG" triage.0 dedup_producers 1 30
ok "approve restarted from its case store, replaying only what followed its position" \
    bash -c "grep 'inst=approve.0 msg=\"approvals: ' '$D/run/payguard.log' | tail -1 | grep -q 'events replayed after #[1-9]'"
pending_after=$(pending_count)
ok "every pending approval survived retention and the restart ($pending_after of $pending_before)" \
    test "$pending_after" = "$pending_before" -a "$pending_before" -gt 0
ok "triage.0 recovered its producer's floor from what retention left ($(stat_of triage.0 dedup_producers) producer)" \
    test "$(stat_of triage.0 dedup_producers)" -ge 1
# unchecked, the second quarter of validate.0's journal (well below its
# floor, well above the first floor each worker heard: below that, a worker
# cannot tell what its sibling took before it, README "Replay"): triage's own
# dedup drops each by the floor its checkpoint kept
half=$(($(stat_of validate.0 journal_seq) / 2))
"$BIN/payguard" replay -c "$CFG" --from validate.0 --into triage --unchecked --first $((half / 2)) --last "$half" \
    >"$WORK/replay3.out" 2>&1
sed "s/^/# /" "$WORK/replay3.out"
sent=$(awk '/^replayed/ {print $2}' "$WORK/replay3.out")
for _ in $(seq 1 300); do [ $(($(stat_of triage.0 in) + $(stat_of triage.1 in))) -ge "${sent:-1}" ] && break; sleep 0.2; done
ok "after the restart, an unchecked replay of $sent events into triage: all taken in, none answered" \
    test "${sent:-0}" -gt 0 -a $(($(stat_of triage.0 in) + $(stat_of triage.1 in))) -ge "${sent:-1}" -a \
    $(($(stat_of triage.0 out) + $(stat_of triage.1 out))) = 0
ok "the pipeline drains" quiesce "$CFG" 60
down "$CFG"
"$BIN/pg-check" --data "$D/data" --receipts "$WORK/receipts.txt" --quiet >"$WORK/check2.out" 2>&1
ok "still exactly once after replay and restart" grep -q ' 0 failed$' "$WORK/check2.out"
# approve's journal lost its first segments to retention: repartition, which
# moves journals, must refuse to resize approve rather than drop those cases
sed -i 's/^approve$/approve\n    instances = 2/' "$CFG"
"$BIN/payguard" repartition -c "$CFG" >"$WORK/repart.out" 2>&1
rc=$?
sed "s/^/# /" "$WORK/repart.out"
ok "payguard repartition refuses to resize approve after its retention removed segments (exit $rc)" \
    test "$rc" != 0 -a -n "$(grep 'approve.0.s journal no longer holds its first records' "$WORK/repart.out")"
ok "...and moved nothing" test -d "$D/data/approve.0" -a ! -d "$D/data/approve.1"
db=$D/data/audit.0.cases.sqlite
echo "# case index: $(($(stat -c %s "$db") / N)) bytes a case ($N cases; a summary and the trail's place per event)"
finish
