#!/usr/bin/env bash
# e2e_console - the ops console (console/main.c, console/www) in front of the
# real approve and audit:
#   over HTTP: the page and its assets with the security headers; nothing
#   outside www_dir served; /api/session names the person and hands out the
#   CSRF token; an unknown token is refused by approve and audited; a POST
#   without the token, with another session's, or from another origin is
#   refused before reaching approve; a decision with the right token goes
#   through, recorded with the browser's address and the console's (the
#   console's X-Payguard-Client sent straight to approve is not believed);
#   the cases list filters; GET /api/cases?q= finds a case by its case,
#   payout, refund, payment, PSP event, webhook or receipt id and its ticket
#   key (whole ids first, then prefixes), a bad query is a 400; a failed runbook is in the ops-review
#   queue with why and is closed through the console; the chain verification
#   runs and is on the trail; Teams cards link to the console's case page;
#   refusals (#21 finding 2): an address whose requests keep getting 401 or
#   403 is throttled by the console itself (429, Retry-After) and never
#   reaches approve or audit meanwhile; another address is served, and so
#   is the console at approve and audit (its address is exempt there).
#   in a browser (headless Chromium driven by playwright-core,
#   tests/browser/console.mjs): sign in, approve a 5,000-50,000 payout as
#   finance manager, see compliance still required, approve as compliance,
#   watch it reach executed; a deny; a refused second approval by the same
#   person; webhook text with <script> shown as text; the search box finds
#   each kind of id; the Last column in plain words; times in the viewer's
#   zone with UTC on hover; a case's JSON export and its print view; a
#   phone-sized screen; screenshots in tests/artifacts/.
set -u
. "$(dirname "$0")/lib_e2e.sh"
. "$(dirname "$0")/lib_corpus.sh"

PORT=$(free_port)
CPORT=$(free_port)
CFG=$(write_config co "$PORT")
# the console on: its own port, the page from the tree
sed -i "s|^console$|console\n    http_port = $CPORT\n    www_dir = $ROOT/console/www|; s|^    enabled = no$|    enabled = yes|" "$CFG"
cfg_merge "$CFG" <<CFG
payguard
    refusals
        window_s = 5
approve
    public_url = http://127.0.0.1:$CPORT
CFG
SBXURL=$(sandbox_url "$CFG")
STD_KEY=$(grep -v '^#' "$ROOT/config/sandbox/standard.secrets" | head -1 | sed 's/^whsec_//')
URL=http://127.0.0.1:$PORT
CON=http://127.0.0.1:$CPORT
sandbox() { curl -s -o /dev/null -X "$1" -H 'Content-Type: application/json' --data-binary "${3:-}" "$SBXURL/_sandbox/$2"; }
ok "group starts with the console" up "$CFG"
for _ in $(seq 1 50); do curl -fs "$CON/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
ok "the console answers /healthz" curl -fs "$CON/healthz"
ok "the console is ready: approve and audit answer it (GET /readyz)" \
    test "$(curl -s "$CON/readyz")" = '{"ready":true}'
aport=$(awk '/^[^ #]/ {sec = $1} sec == "approve" && $1 == "http_port" {print $3}' "$CFG")
uport=$(awk '/^[^ #]/ {sec = $1} sec == "audit" && $1 == "http_port" {print $3}' "$CFG")
ok "so are approve, audit and ingest" test "$(curl -s "http://127.0.0.1:$aport/readyz")$(curl -s "http://127.0.0.1:$uport/readyz")$(curl -s "$URL/readyz")" = '{"ready":true}{"ready":true}{"ready":true}'
kill -STOP "$(inst_pid "$CFG" approve.0)" # frozen: it neither answers nor is restarted
st=$(curl -s -o "$WORK/readyz" -w '%{http_code}' -m 10 "$CON/readyz")
kill -CONT "$(inst_pid "$CFG" approve.0)"
ok "approve frozen: the console is not ready, and says why ($(cat "$WORK/readyz"))" \
    test "$st" = 503 -a "$(grep -c '"why":"approve does not answer at http://127.0.0.1:' "$WORK/readyz")" = 1
ok "approve thawed: ready again" test "$(curl -s "$CON/readyz")" = '{"ready":true}' 

# four tier-2 payouts (5,000-50,000 USD: finance_manager and compliance)
seed='{"payouts":['
entries=''
for p in "P-APPROVE 1234500" "P-DENY 2500000" "P-TWICE 760000" "P-XSS 990000" "P-CSRF 600000" "P-RELAY 700000"; do
    read -r id amt <<<"$p"
    seed="$seed{\"id\":\"$id\",\"status\":\"paid\",\"amount\":$amt,\"currency\":\"USD\",\"beneficiary_id\":\"B-$id\"},"
    entries="$entries{\"type\":\"payout_paid\",\"ref\":\"$id\",\"amount\":$amt,\"currency\":\"USD\",\"case_id\":\"seed\"},"
done
sandbox POST seed "${seed%,}],\"entries\":[${entries%,}]}"
for p in "P-APPROVE 1234500" "P-DENY 2500000" "P-TWICE 760000" "P-CSRF 600000" "P-RELAY 700000"; do
    read -r id amt <<<"$p"
    send_stripe "$(stripe_payout_body "evt_$id" "$id" "$amt" usd)" "$E2E_SECRET" >"$WORK/rcpt.$id"
done
RCPT=$(cat "$WORK/rcpt.P-APPROVE")
# the sandbox's refund rf_123 (payment pay_9) as a Standard Webhook: auto-approved, executed
send_standard "$(std_refund_body evt_rf123 refund.succeeded rf_123 pay_9 1850 USD)" msg_rf123 "$(date +%s)" >/dev/null
XSS="<script>window.__pgxss=1</script><img src=x onerror='window.__pgxss=2'>"
send_stripe "$(stripe_payout_body evt_P-XSS P-XSS 990000 usd | sed "s|\"failure_message\":\"[^\"]*\"|\"failure_message\":\"$XSS\"|")" "$E2E_SECRET" >/dev/null
quiesce "$CFG" 30

# ---- over HTTP
hdrs=$(curl -s -D - -o "$WORK/index.html" "$CON/")
ok "/ serves the page" grep -q '<script src="/static/app.js"' "$WORK/index.html"
ok "the page loads no third-party asset" bash -c "! grep -Eo '(src|href)=\"[^\"]*\"' '$WORK/index.html' | grep -q '//'"
ok "the page has no inline script" bash -c "! grep -E '<script>|<script [^>]*>[^<]' '$WORK/index.html' | grep -v 'src=' | grep -q ."
ok "Content-Security-Policy: scripts from this origin only, no framing" \
    grep -qi "^content-security-policy: default-src 'none'; script-src 'self';.*frame-ancestors 'none'" <<<"$hdrs"
for h in "x-content-type-options: nosniff" "x-frame-options: deny" "referrer-policy: no-referrer" "cache-control: no-store"; do
    ok "header $h" grep -qi "^$h" <<<"$hdrs"
done
ok "a case page path serves the page too" test "$(curl -s -o /dev/null -w '%{http_code}' "$CON/case/payout-P-APPROVE")" = 200
ok "/static/app.js is JavaScript" bash -c "curl -s -D - -o /dev/null '$CON/static/app.js' | grep -qi '^content-type: text/javascript'"
for p in /static/../payguard.cfg /static/%2e%2e/Makefile /payguard.cfg /static/.x.js /etc/passwd; do
    ok "nothing outside the page's files: $p is 404" test "$(curl -s --path-as-is -o /dev/null -w '%{http_code}' "$CON$p")" = 404
done

FIN=$(tok fin_mgr)
sess=$(curl -s -H "Authorization: Bearer $FIN" "$CON/api/session")
ok "/api/session names the person and their roles" grep -q '"name":"fin_mgr","roles":\["finance_manager"\]' <<<"$sess"
CSRF=$(sed -n 's/.*"csrf":"\([0-9a-f]*\)".*/\1/p' <<<"$sess")
ok "/api/session hands out a CSRF token" test "${#CSRF}" = 64
ok "an unknown token: 401 from approve" test "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer nope' "$CON/api/session")" = 401
ok "no token: 401" test "$(curl -s -o /dev/null -w '%{http_code}' "$CON/api/cases")" = 401
ok "a token with a space: 401, not 500" test "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer two words' "$CON/api/cases")" = 401

lst=$(curl -s -H "Authorization: Bearer $FIN" "$CON/api/cases?state=awaiting_approval&kind=payout&tier=2")
ok "the cases list filters by state, kind and tier" bash -c "grep -q payout-P-APPROVE <<<'$lst' && grep -q payout-P-XSS <<<'$lst'"
ok "...and by age" bash -c "curl -s -H 'Authorization: Bearer $FIN' '$CON/api/cases?max_age_s=3600' | grep -q payout-P-APPROVE"
ok "a list row carries its latest entry (the why)" grep -q '"last":{"type":' <<<"$lst"
ok "a bad filter is a 400 with the reason" bash -c "curl -s -w '%{http_code}' -H 'Authorization: Bearer $FIN' '$CON/api/cases?tier=9' | grep -q 'tier must be 1, 2 or 3\"}400'"
findq() { curl -s -H "Authorization: Bearer $FIN" "$CON/api/cases?q=$1"; }
found() { # Q CASE FIELD [MATCH] - q finds that one case, matched by that field
    local r
    r=$(findq "$1")
    [ "$(grep -o '"case_id":"[^"]*"' <<<"$r" | sort -u)" = "\"case_id\":\"$2\"" ] &&
        grep -q "\"matched\":\[{\"field\":\"$3\"" <<<"$r" && grep -q "\"match\":\"${4:-exact}\"" <<<"$r"
}
ok "?q= finds a case by its case id" found payout-P-APPROVE payout-P-APPROVE case_id
ok "...by its payout id" found P-APPROVE payout-P-APPROVE payout_id
ok "...by its PSP event id (Stripe)" found evt_P-DENY payout-P-DENY psp_event_id
ok "...by its receipt id ($RCPT)" found "$RCPT" payout-P-APPROVE receipt_id
ok "...by its refund id, ignoring ASCII case" found RF_123 refund-rf_123 refund_id
ok "...by its payment id" found pay_9 refund-rf_123 payment_id
ok "...by its webhook id (Standard Webhooks)" found msg_rf123 refund-rf_123 webhook_id
ok "...by the start of an id when no whole id matches" found evt_P-TWI payout-P-TWICE psp_event_id prefix
ok "...several cases when several match" test "$(findq evt_P- | grep -o '"case_id":"payout-P-[A-Z]*"' | sort -u | wc -l)" -ge 5
ok "...none says so" test "$(findq evt_nothing_here)" = '{"cases":[],"match":"none"}'
ok "...and straight at audit too" \
    bash -c "curl -s -H 'Authorization: Bearer $FIN' 'http://127.0.0.1:$uport/cases?q=P-APPROVE' | grep -q '\"matched\":\[{\"field\":\"payout_id\",\"id\":\"P-APPROVE\"}\]'"
for bad in "q=:q must be 1..128 bytes" "q=%01evt:q must not hold control characters" \
    "q=$(head -c 200 /dev/zero | tr '\0' a):q must be 1..128 bytes" "q=%20P-1:q must not begin or end with a space"; do
    ok "a bad query (${bad%%:*}) is a 400 saying ${bad#*:}" \
        bash -c "curl -s -w '%{http_code}' -H 'Authorization: Bearer $FIN' '$CON/api/cases?${bad%%:*}' | grep -q '{\"error\":\"${bad#*:}.*\"}400\$'"
done
apr=$(curl -s -H "Authorization: Bearer $FIN" "$CON/api/approvals/payout-P-APPROVE")
ok "a waiting case shows the runbook it would run" grep -q '"planned_runbook":{"case_id":"payout-P-APPROVE","runbook":"payout_exception","steps":\[{"name":"hold_payout"' <<<"$apr"
ok "...and which roles are missing" grep -q '"missing_roles":\["finance_manager","compliance"\]' <<<"$apr"

post() { # PATH BODY [CURL ARGS...] -> status
    local p=$1 b=$2
    shift 2
    curl -s -o "$WORK/post.out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' "$@" --data-binary "$b" "$CON$p"
}
D='{"decision":"approve","comment":"csrf check"}'
ok "a POST without the CSRF token: 403" test "$(post /api/approvals/payout-P-CSRF/decisions "$D" -H "Authorization: Bearer $FIN")" = 403
ok "...saying why" grep -q 'csrf' "$WORK/post.out"
COMP=$(tok compliance_officer)
ok "a POST with another session's CSRF token: 403" \
    test "$(post /api/approvals/payout-P-CSRF/decisions "$D" -H "Authorization: Bearer $COMP" -H "X-CSRF-Token: $CSRF")" = 403
ok "a POST from another origin: 403, even with the token" \
    test "$(post /api/approvals/payout-P-CSRF/decisions "$D" -H "Authorization: Bearer $FIN" -H "X-CSRF-Token: $CSRF" -H 'Origin: http://evil.example')" = 403
ok "none of them reached approve: the case has no decision" \
    bash -c "curl -s -H 'Authorization: Bearer $FIN' '$CON/api/approvals/payout-P-CSRF' | grep -q '\"decisions\":\[\]'"
ok "the same POST from the page (token, own origin): 200" \
    test "$(post /api/approvals/payout-P-CSRF/decisions "$D" -H "Authorization: Bearer $FIN" -H "X-CSRF-Token: $CSRF" -H "Origin: $CON")" = 200
ok "a body over 8 KiB: 413" \
    test "$(post /api/approvals/payout-P-CSRF/decisions "{\"comment\":\"$(head -c 9000 /dev/zero | tr '\0' x)\"}" -H "Authorization: Bearer $FIN" -H "X-CSRF-Token: $CSRF")" = 413

# who decided from where: the browser's address (here 127.0.0.2) and the
# console's (127.0.0.1, which calls approve); the header the console sends,
# sent straight to approve by a client (127.0.0.3), is not believed
ok "fin_mgr approves P-RELAY through the console from 127.0.0.2" \
    test "$(post /api/approvals/payout-P-RELAY/decisions "$D" --interface 127.0.0.2 -H "Authorization: Bearer $FIN" -H "X-CSRF-Token: $CSRF")" = 200
APPROVE_URL=http://127.0.0.1:$(awk '/^approve$/ {s = 1; next} /^[^ ]/ {s = 0} s && $1 == "http_port" {print $3}' "$CFG")
FORGED="X-Payguard-Client: 198.51.100.7;seal=$(printf '0%.0s' $(seq 1 64))"
ok "compliance denies it straight at approve from 127.0.0.3, claiming another address" \
    test "$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.3 -X POST -H "Authorization: Bearer $COMP" -H "$FORGED" \
        -d '{"decision":"deny","comment":"claims"}' "$APPROVE_URL/approvals/payout-P-RELAY/decisions")" = 200
decision_of() { # WHO - P-RELAY's decision record by WHO on the trail
    for _ in $(seq 1 50); do
        "$BIN/payguard" audit export -c "$CFG" --case payout-P-RELAY 2>/dev/null | grep '"what":"decision ' | grep "\"who\":\"person:$1\"" && return
        sleep 0.2
    done
}
decision_of fin_mgr >"$WORK/relay.fin"
decision_of compliance_officer >"$WORK/relay.comp"
ok "the console's decision records the browser's address and the console's" \
    bash -c "grep -qF '\"origin\":{\"address\":\"127.0.0.2\",\"instance\":\"approve.0\",\"via\":\"127.0.0.1\"}' '$WORK/relay.fin' &&
             grep -qF '\"client_ip\":\"127.0.0.2\"' '$WORK/relay.fin' && grep -qF '\"via\":\"127.0.0.1\"' '$WORK/relay.fin'"
ok "the direct one records the client's own address, no via" \
    bash -c "grep -qF '\"origin\":{\"address\":\"127.0.0.3\",\"instance\":\"approve.0\"}' '$WORK/relay.comp' &&
             grep -qF '\"client_ip\":\"127.0.0.3\"' '$WORK/relay.comp' && ! grep -q '198.51.100.7\|\"via\"' '$WORK/relay.comp'"

# ops review through the console: the ledger refuses P-CSRF's reversal for good
sandbox POST faults '{"system":"ledger","method":"POST","path_prefix":"/entries","status":400,"count":1}'
CCSRF=$(curl -s -H "Authorization: Bearer $COMP" "$CON/api/session" | sed -n 's/.*"csrf":"\([0-9a-f]*\)".*/\1/p')
ok "compliance completes P-CSRF through the console" \
    test "$(post /api/approvals/payout-P-CSRF/decisions '{"decision":"approve","comment":"go"}' -H "Authorization: Bearer $COMP" -H "X-CSRF-Token: $CCSRF")" = 200
for _ in $(seq 1 100); do
    curl -s -H "Authorization: Bearer $FIN" "$CON/api/cases?state=ops_review" | grep -q payout-P-CSRF && break
    sleep 0.2
done
q=$(curl -s -H "Authorization: Bearer $FIN" "$CON/api/cases?state=ops_review")
ok "the failed runbook puts the case in the ops-review queue, with why" \
    bash -c "grep -o '{\"case_id\":\"payout-P-CSRF\".*' <<<'$q' | grep -q '\"last\":{\"type\":\"[a-z]*\",\"at\":\"[^\"]*\",\"summary\":\"[^\"]\+'"
ok "a close without the CSRF token: 403" \
    test "$(post /api/reviews/payout-P-CSRF/close '{"comment":"x"}' -H "Authorization: Bearer $FIN")" = 403
ok "close through the console: 200" \
    test "$(post /api/reviews/payout-P-CSRF/close '{"comment":"ledger fixed by hand, ticket PAY-1"}' -H "Authorization: Bearer $FIN" -H "X-CSRF-Token: $CSRF")" = 200
for _ in $(seq 1 50); do
    curl -s -H "Authorization: Bearer $FIN" "$CON/api/cases/payout-P-CSRF" | grep -q '"state":"closed"' && break
    sleep 0.2
done
ok "...and the case is closed" bash -c "curl -s -H 'Authorization: Bearer $FIN' '$CON/api/cases/payout-P-CSRF' | grep -q '\"state\":\"closed\"'"
TICKET=$(curl -s -H "Authorization: Bearer $FIN" "$CON/api/cases/payout-P-CSRF" | grep -o '"ticket_key":"[^"]*"' | head -1 | cut -d'"' -f4)
ok "?q= finds a case by its ticket key ($TICKET, the failed runbook's)" found "${TICKET:-none}" payout-P-CSRF ticket_key
ok "a retry of a closed case: approve's 409, passed on" \
    test "$(post /api/reviews/payout-P-CSRF/retry '{"comment":"again"}' -H "Authorization: Bearer $FIN" -H "X-CSRF-Token: $CSRF")" = 409

ok "a chain verification starts: 202" test "$(post /api/audit/verify '{}' -H "Authorization: Bearer $FIN" -H "X-CSRF-Token: $CSRF")" = 202
for _ in $(seq 1 50); do grep -q '"state":"done"' <(curl -s -H "Authorization: Bearer $FIN" "$CON/api/audit/verify") && break; sleep 0.2; done
ver=$(curl -s -H "Authorization: Bearer $FIN" "$CON/api/audit/verify")
ok "...and verifies the trail, saying who ran it" bash -c "grep -q '\"state\":\"done\",\"ok\":true' <<<'$ver' && grep -q '\"by\":\"fin_mgr\"' <<<'$ver'"
sleep 1.5
ok "the verification is on the audit trail" bash -c "'$BIN/payguard' audit export -c '$CFG' | grep -q '\"type\":\"audit_verified\"'"
ok "an unknown token on the console is audited by approve (access_denied)" \
    bash -c "'$BIN/payguard' audit export -c '$CFG' | grep '\"type\":\"access_denied\"' | grep -q 'approve'"
ok "Teams cards link to the console's case page" \
    bash -c "curl -s '$SBXURL/_sandbox/state' | grep -q '$CON/case/payout-P-APPROVE'"

# ---- refusals (#21 finding 2): 127/8 is all this host's, so each address
# below is another source
BAD=127.0.0.2
before=$(refusals_counted "$CFG" 127.0.0.1 audit.0)
ok "100 bad-token requests from one address: 401 (audit's) up to the 20th, then the console's 429" \
    test "$(http_codes 100 --interface $BAD -H 'Authorization: Bearer guess' "$CON/api/cases")" = "401:20 429:80 "
hdr=$(curl -s -D - -o "$WORK/429.json" --interface $BAD -H "Authorization: Bearer $FIN" "$CON/api/cases")
ok "...429 with Retry-After, good token or not" grep -qi '^HTTP/1.1 429.*' <<<"$hdr"
ok "...with the console's security headers and the reason" \
    bash -c "grep -qi '^retry-after: [1-9]' <<<'$hdr' && grep -qi '^content-security-policy:' <<<'$hdr' && grep -q 'too many refused requests' '$WORK/429.json'"
ok "a refused CSRF check counts too (a 403 of the console's own): 429 now" \
    test "$(post /api/approvals/payout-P-TWICE/decisions "$D" --interface $BAD -H "Authorization: Bearer $FIN")" = 429
ok "another address is served" \
    test "$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.3 -H "Authorization: Bearer $FIN" "$CON/api/cases")" = 200
ok "the console is still served by approve and audit (payguard/refusals/exempt)" \
    test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $FIN" "$CON/api/cases")$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $FIN" "$CON/api/session")" = 200200
sleep 1.2 # the counters reach /metrics within a second
ok "the 429s never reached audit: it counts the 20 refusals passed on" wait_refusals "$CFG" 127.0.0.1 audit.0 $((before + 20))
ok "...and no more" test "$(refusals_counted "$CFG" 127.0.0.1 audit.0)" = $((before + 20))
ok "/metrics: the console's 429s" bash -c "curl -s '$CON/metrics' | grep -q '^payguard_refusals_throttled_total{instance=\"console.0\"} 82$'"

# ---- in a browser
if [ -x /usr/bin/chromium ] && [ -d "$ROOT/tests/browser/node_modules/playwright-core" ]; then
    mkdir -p "$ROOT/tests/artifacts"
    CONSOLE_URL=$CON TOKEN_FIN=$FIN TOKEN_COMP=$COMP TOKEN_RISK=$(tok risk_lead) \
        CASE_APPROVE=payout-P-APPROVE CASE_DENY=payout-P-DENY CASE_TWICE=payout-P-TWICE CASE_XSS=payout-P-XSS \
        CASE_REFUND=refund-rf_123 REFUND_ID=rf_123 PAYMENT_ID=pay_9 WEBHOOK_ID=msg_rf123 PSP_EVENT_ID=evt_P-TWICE \
        RECEIPT_ID=$RCPT TICKET_KEY=${TICKET:-none} CASE_TICKET=payout-P-CSRF \
        ARTIFACTS=$ROOT/tests/artifacts node "$ROOT/tests/browser/console.mjs" >"$WORK/browser.out" 2>&1
    brc=$?
    sed 's/^/    browser: /' "$WORK/browser.out"
    read -r bp bf <<<"$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$WORK/browser.out" | tail -1)"
    PASSED=$((PASSED + ${bp:-0}))
    FAILED=$((FAILED + ${bf:-0}))
    ok "the browser tests ran to their end" test "$brc" = 0 -a -n "${bp:-}"
    for s in console-list console-case console-find console-phone-list console-phone-case console-print; do
        ok "screenshot tests/artifacts/$s.png saved" test -s "$ROOT/tests/artifacts/$s.png"
    done
else
    ok "Chromium and playwright-core are installed (sh scripts/install-deps.sh does it)" false
fi
down "$CFG"
ok "the console's log sums up the address's refusals (it has no trail)" \
    grep -q "inst=console.0 .*msg=\"[0-9]* refusals from $BAD between" "$WORK/co/run/payguard.log"
finish
