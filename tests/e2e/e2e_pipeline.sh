#!/usr/bin/env bash
# e2e_pipeline - the console's Pipeline page (#22 item 1; console/pipeline.h,
# console/www/pipeline.js) on a real group with its console, sampling every
# second:
#   over HTTP: GET /api/pipeline is refused without a person's token and
#   with an unknown one; with one it names every instance the master runs
#   (state, uptime, restarts, events in and out, unacknowledged events and
#   the oldest one's age, journal size and retention), the outside systems
#   validate calls (calls/s, p50/p99, breaker) and the end-to-end numbers,
#   with a history of at most console/pipeline_samples samples (?since=:
#   only the newer ones); /metrics with the new families passes promtool;
#   a pipeline_samples over its bound stops the console; a console without
#   uPlot (chart_dir empty: npm never ran) says charts false; uPlot is
#   served as /static/uplot.min.js under the same CSP; with approve frozen
#   it still answers a person approve knew (approve.0 "not answering"),
#   and 502 to anyone else;
#   in a browser (tests/browser/pipeline.mjs): the page shows it all and
#   refreshes in place; triage.0 killed while its program is missing (each
#   restart fails) shows as down with its restarts, then up again once
#   the program is back and the master restarts it; a 400 ms delay on
#   the ledger shows its p99 rising; at 375 px wide it stays readable;
#   without uPlot (its script blocked) it says charts are unavailable
#   and still shows the numbers; screenshots tests/artifacts/
#   console-pipeline*.png.
set -u
. "$(dirname "$0")/lib_e2e.sh"

# the programs from a folder of the test's own: triage can be taken away
# from the master for a while (a restart that fails, like a crash loop)
mkdir -p "$WORK/bin"
for p in payguard ingest validate triage approve execute audit console pg-sandbox pg-load; do
    cp "$BIN/$p" "$WORK/bin/"
done
BIN=$WORK/bin

PORT=$(free_port)
CPORT=$(free_port)
CFG=$(write_config pl "$PORT")
sed -i "s|^console$|console\n    http_port = $CPORT\n    timeout_ms = 2000\n    www_dir = $ROOT/console/www\n    chart_dir = $ROOT/console/vendor/node_modules/uplot/dist\n    pipeline_sample_s = 1\n    pipeline_samples = 600|; s|^    enabled = no$|    enabled = yes|" "$CFG"
CON=http://127.0.0.1:$CPORT
URL=http://127.0.0.1:$PORT
SBXURL=$(sandbox_url "$CFG")
FIN=$(tok fin_mgr)

ok "group starts with the console" up "$CFG"
for _ in $(seq 1 50); do curl -fs "$CON/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
seed_load_payouts "$CFG" 2000
"$BIN/pg-load" --url "$URL/webhooks/stripe" --secret-file "$WORK/secret" --count 20 --seed 0 --concurrency 4 \
    --out "$WORK/receipts.txt" >"$WORK/load0.out" 2>&1
ok "20 webhooks go through" quiesce "$CFG" 30

api() { curl -s -o "$WORK/api.json" -w '%{http_code}' "$@" "$CON/api/pipeline"; }
# three samples after the webhooks: rates and a history
for _ in $(seq 1 50); do
    api -H "Authorization: Bearer $FIN" >/dev/null
    [ "$(jq '.history.t | length' "$WORK/api.json" 2>/dev/null)" -ge 6 ] 2>/dev/null && break
    sleep 0.5
done
ok "/api/pipeline without a token: 401" test "$(api)" = 401
ok "...with an unknown one: 401 (approve does not know it)" test "$(api -H 'Authorization: Bearer nope')" = 401
ok "...with a person's token: 200" test "$(api -H "Authorization: Bearer $FIN")" = 200
J=$WORK/api.json
jqok() { jq -e "$1" "$J" >/dev/null; }
ok "it samples every second, 600 samples kept" jqok '.sample_s == 1 and .samples == 600'
ok "every instance the master runs, up: the sandbox, the stages (triage twice), the console" \
    jqok '[.now.instances[] | select(.state == "up")] | length == 9 and ([.[] | select(.stage == "triage")] | length == 2)'
ok "a stage's row: uptime, restarts, events, unacknowledged per link, journal, retention" \
    jqok '.now.instances[] | select(.instance == "validate.0") | (.uptime_s >= 0) and .restarts == 0 and .in_total >= 20
          and (.unacked_next | type) == "number" and (.oldest_audit_s | type) == "number" and .journal_bytes > 0
          and .journal_segments >= 1 and .retention_s > 0'
ok "the outside systems validate called: ledger and payments, breaker closed" \
    jqok '[.now.systems[] | select(.breaker == "closed") | .system] | index("ledger") != null and index("payments") != null'
ok "the end-to-end numbers" \
    jqok '.now.end_to_end | has("webhooks_per_s") and has("awaiting_people") and has("ops_review") and (.oldest_unacked_s | type) == "number"'
ok "a history: times and series of the same length" \
    jqok '.history.t as $t | ($t | length) >= 2 and ([.history.series[] | length == ($t | length)] | all)
          and (.history.series | has("in_per_s.validate") and has("p99_ms.ledger") and has("e2e.webhooks_per_s"))'
last=$(jq '.history.t[-1]' "$J")
ok "?since= the page's last sample: only what is newer" \
    bash -c "curl -s -H 'Authorization: Bearer $FIN' '$CON/api/pipeline?since=$last' | jq -e '(.history.t | length) <= 2 and all(.history.t[]; . > $last)' >/dev/null"
ok "...a since that is no number: 400" \
    test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $FIN" "$CON/api/pipeline?since=yesterday")" = 400
ok "uPlot is there: charts true" jqok '.charts == true'
curl -s -D "$WORK/uplot.hdrs" -o "$WORK/uplot.js" "$CON/static/uplot.min.js"
ok "/static/uplot.min.js is uPlot, as JavaScript" \
    bash -c "grep -qi '^content-type: text/javascript' '$WORK/uplot.hdrs' && cmp -s '$WORK/uplot.js' '$ROOT/console/vendor/node_modules/uplot/dist/uPlot.iife.min.js'"
ok "...under the console's CSP: scripts from this origin only" \
    grep -qi "^content-security-policy: default-src 'none'; script-src 'self';" "$WORK/uplot.hdrs"
ok "/metrics with the new families (journal size and retention, oldest unacknowledged) passes promtool" \
    bash -c "curl -s '$CON/metrics' | tee '$WORK/metrics.txt' | promtool check metrics && grep -q '^payguard_journal_bytes{instance=\"validate.0\"} [1-9]' '$WORK/metrics.txt' &&
             grep -q '^payguard_unacked_oldest_seconds{instance=\"ingest.0\",dest=\"next\"}' '$WORK/metrics.txt'"
ok "/pipeline serves the page" test "$(curl -s -o /dev/null -w '%{http_code}' "$CON/pipeline")" = 200
sed 's/pipeline_samples = 600/pipeline_samples = 99999/' "$CFG" >"$WORK/big.cfg"
"$BIN/console" -c "$WORK/big.cfg" >"$WORK/big.out" 2>&1
big=$?
ok "the console's memory of it is bounded: pipeline_samples over its bound stops it at start" \
    bash -c "test $big = 2 && grep -q 'pipeline_samples' '$WORK/big.out'"

# a second console without uPlot (npm never ran): numbers, no charts
NPORT=$(free_port)
sed "s|http_port = $CPORT|http_port = $NPORT|; s|chart_dir = .*|chart_dir = $WORK/no-uplot|" "$CFG" >"$WORK/nocharts.cfg"
"$BIN/console" -c "$WORK/nocharts.cfg" >"$WORK/nocharts.log" 2>&1 &
NCON=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$NPORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
sleep 1.2 # its first sample
ok "a console without uPlot starts, saying the page will have no charts" grep -q 'the Pipeline page has no charts' "$WORK/nocharts.log"
ok "...its /api/pipeline says charts false, with the numbers" \
    bash -c "curl -s -H 'Authorization: Bearer $FIN' 'http://127.0.0.1:$NPORT/api/pipeline' | jq -e '.charts == false and (.now.instances | length) == 9' >/dev/null"
ok "...and /static/uplot.min.js is 404" test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$NPORT/static/uplot.min.js")" = 404
kill "$NCON"
wait "$NCON" 2>/dev/null

# approve frozen: the page goes on for a person approve knew, and shows it
kill -STOP "$(inst_pid "$CFG" approve.0)"
sleep 6
ok "approve frozen: /api/pipeline still answers fin_mgr, whom approve knew a moment ago" \
    test "$(api -H "Authorization: Bearer $FIN")" = 200
ok "...saying approve does not answer, and approve.0 not answering (no status for 5 s)" \
    jqok '.approve == "not answering" and (.now.instances[] | select(.instance == "approve.0") | .state == "not answering")'
ok "...and the health of the others" jqok '[.now.instances[] | select(.state == "up")] | length == 8'
ok "a person approve never said yes to: 502, their token cannot be checked" \
    test "$(api -H "Authorization: Bearer $(tok compliance_officer)")" = 502
kill -CONT "$(inst_pid "$CFG" approve.0)"
for _ in $(seq 1 30); do
    api -H "Authorization: Bearer $FIN" >/dev/null
    jqok '.approve == "answering" and ([.now.instances[] | select(.state == "up")] | length == 9)' && break
    sleep 0.5
done
ok "approve thawed: answering, every instance up again" \
    jqok '.approve == "answering" and ([.now.instances[] | select(.state == "up")] | length == 9)'

# ---- in a browser, under a steady load (15 webhooks a second)
if [ -x /usr/bin/chromium ] && [ -d "$ROOT/tests/browser/node_modules/playwright-core" ]; then
    mkdir -p "$ROOT/tests/artifacts"
    "$BIN/pg-load" --url "$URL/webhooks/stripe" --secret-file "$WORK/secret" --count 1500 --seed 20 --concurrency 4 \
        --rate 15 --duration-max-s 100 --out "$WORK/receipts.txt" >"$WORK/load1.out" 2>&1 &
    LOAD=$!
    RUN=$WORK/pl/run
    CONSOLE_URL=$CON TOKEN=$FIN ARTIFACTS=$ROOT/tests/artifacts \
        PIPELINE_BREAK="mv '$BIN/triage' '$BIN/triage.away' && kill -KILL \$(awk '\$1 == \"triage.0\" {print \$2}' '$RUN/master.state')" \
        PIPELINE_MEND="mv '$BIN/triage.away' '$BIN/triage'" \
        PIPELINE_SLOW="curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' --data '{\"system\":\"ledger\",\"status\":0,\"delay_ms\":400,\"count\":1000000}' '$SBXURL/_sandbox/faults'" \
        node "$ROOT/tests/browser/pipeline.mjs" >"$WORK/browser.out" 2>&1
    brc=$?
    kill "$LOAD" 2>/dev/null
    wait "$LOAD" 2>/dev/null
    sed 's/^/    browser: /' "$WORK/browser.out"
    read -r bp bf <<<"$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$WORK/browser.out" | tail -1)"
    PASSED=$((PASSED + ${bp:-0}))
    FAILED=$((FAILED + ${bf:-0}))
    ok "the browser tests ran to their end" test "$brc" = 0 -a -n "${bp:-}"
    ok "triage.0 is back (the master restarted it)" test "$(inst_pid "$CFG" triage.0)" -gt 0
    for s in console-pipeline console-pipeline-phone console-pipeline-nocharts; do
        ok "screenshot tests/artifacts/$s.png saved" test -s "$ROOT/tests/artifacts/$s.png"
    done
else
    ok "Chromium and playwright-core are installed (sh scripts/install-deps.sh test does it)" false
fi
down "$CFG"
finish
