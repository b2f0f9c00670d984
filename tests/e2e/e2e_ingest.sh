#!/usr/bin/env bash
# e2e_ingest - ingest's per-source rate limit (CONTRACT.md §1.3: 429 +
# Retry-After): one source over its bucket is refused while another source is
# not, the refusal is counted (and, being a flood response, not journaled),
# and the bucket refills.
set -u
. "$(dirname "$0")/lib_e2e.sh"
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
finish
