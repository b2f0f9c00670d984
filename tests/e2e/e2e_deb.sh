#!/usr/bin/env bash
# e2e_deb - the Debian package (make deb, scripts/deb.sh) on this machine:
# built, installed with dpkg -i, its files, user and permissions checked, the
# group started from the installed programs and configuration, a webhook sent
# and seen on the trail, the group stopped, and dpkg --purge leaving nothing
# behind (files, enable links, data, the payguard user and group).
#
# Where systemd runs ([ -d /run/systemd/system ]) the group starts through its
# units (payguard.target; the configuration the units read named in
# /etc/default/payguard) and the test checks each unit active, its watchdog
# and which unit holds which credential. Elsewhere (CI: a Debian 12
# container without systemd as PID 1, like this machine) it runs `payguard up`
# as the payguard user, with the secrets as systemd would hand them
# (CREDENTIALS_DIRECTORY; the configuration's credential:<name> paths). The
# sandbox comes from the build tree ($BIN/pg-sandbox): it is not packaged.
# If systemd-analyze is there, it verifies the installed units.
#
# Needs root (it skips itself, saying so, otherwise); refuses to run where
# payguard is installed already (it would replace and purge it). It leaves
# the machine as it found it, also when it fails or is interrupted (trap).
set -u
. "$(dirname "$0")/lib_e2e.sh"
PROGS="payguard ingest validate triage approve execute audit console"
D=""              # the group's directory, the payguard user's
SBX_PID=""        # the sandbox, from the build tree
DEFAULTS_MADE=""  # /etc/default/payguard, written for the units (systemd)

if [ "$(id -u)" != 0 ]; then
    echo "# e2e_deb skipped: installing a package and a system user needs root (run it as root)"
    finish
    exit
fi
installed() { dpkg-query -W -f='${Status}' payguard 2>/dev/null | grep -qE 'ok (installed|config-files|half)'; }
if installed || getent passwd payguard >/dev/null || getent group payguard >/dev/null ||
    [ -e /etc/payguard ] || [ -e /var/lib/payguard ] || [ -e /usr/lib/payguard ] || [ -e /etc/default/payguard ]; then
    echo "# e2e_deb: payguard is on this machine already (package, user, group or files): the test would" \
        "replace and purge it; remove it first (dpkg --purge payguard)"
    ok "no payguard on this machine before the test" false
    finish
    exit
fi

# cleanup - whatever the test got to, undone (also on failure or interrupt)
cleanup() {
    if [ -n "$D" ] && [ -f "$D/payguard.cfg" ] && [ -x /usr/bin/payguard ]; then
        runuser -u payguard -- /usr/bin/payguard down -c "$D/payguard.cfg" >/dev/null 2>&1
    fi
    if [ -d /run/systemd/system ] && [ -f /lib/systemd/system/payguard.target ]; then
        systemctl stop payguard.target 'payguard-*@*.service' >/dev/null 2>&1
    fi
    if [ -n "$SBX_PID" ]; then
        kill "$SBX_PID" 2>/dev/null && wait "$SBX_PID" 2>/dev/null
        SBX_PID=""
    fi
    [ -n "$DEFAULTS_MADE" ] && rm -f /etc/default/payguard
    [ -n "$D" ] && rm -rf "$D"
    installed && dpkg --purge payguard >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- the package
PKG=$(make -C "$ROOT" --no-print-directory deb 2>"$WORK/deb.err" | tail -1)
ok "make deb builds the package ($PKG)" test -f "$ROOT/$PKG"
sed 's/^/# /' "$WORK/deb.err"
PKG=$ROOT/$PKG
ok "it is payguard's, for this architecture" \
    test "$(dpkg-deb -f "$PKG" Package Architecture | tr '\n' ' ')" = "Package: payguard Architecture: $(dpkg --print-architecture) "
ok "it depends on the runtime libraries (libzmq5 libczmq4 libssl3 ...)" bash -c \
    "dpkg-deb -f '$PKG' Depends | tr -d ' ' | tr , '\n' | sort | tr '\n' ' ' | grep -q 'libc6 libcurl4 libczmq4 libjansson4 libmicrohttpd12 libmsgpackc2 libsqlite3-0 libssl3 libzmq5 libzstd1 passwd'"
ok "the sandbox and the test tools are not in it" bash -c "! dpkg-deb -c '$PKG' | grep -E 'pg-|sandbox|/bin/hooks'"
dpkg -i "$PKG" >"$WORK/dpkg-i.out" 2>&1
ok "dpkg -i installs it" test $? = 0
sed 's/^/# /' "$WORK/dpkg-i.out"

# ---- what it installed
for p in $PROGS; do
    ok "/usr/lib/payguard/$p is installed, executable" test -x "/usr/lib/payguard/$p" -a -f "/usr/lib/payguard/$p"
done
ok "/usr/bin/payguard is the master beside the programs it starts" \
    test "$(readlink -f /usr/bin/payguard)" = /usr/lib/payguard/payguard
ok "every installed program finds its libraries" bash -c "! ldd /usr/lib/payguard/* | grep -q 'not found'"
ok "the configuration is /etc/payguard/payguard.cfg, a conffile" \
    bash -c "dpkg-query -W -f='\${Conffiles}' payguard | grep -q '^ /etc/payguard/payguard.cfg '"
ok "the console's page is under /usr/share/payguard" test -f /usr/share/payguard/console/www/index.html
ok "...and uPlot, its Pipeline charts (console/chart_dir)" test -f /usr/share/payguard/console/uplot/uPlot.iife.min.js
UNITS="payguard-audit@0.service payguard-execute@0.service payguard-approve@0.service payguard-triage@0.service \
payguard-triage@1.service payguard-validate@0.service payguard-ingest@0.service payguard-console@0.service"
ok "payguard units names each instance the installed configuration runs" \
    test "$(/usr/bin/payguard units -c /etc/payguard/payguard.cfg | tr '\n' ' ')" = "$UNITS "
for s in ingest validate triage approve execute audit console; do
    ok "payguard-$s@.service: Type=notify, a watchdog, hardened" bash -c "f=/lib/systemd/system/payguard-$s@.service
        grep -qx 'Type=notify' \$f && grep -qx 'WatchdogSec=30' \$f && grep -qx 'ProtectSystem=strict' \$f &&
        grep -qx 'NoNewPrivileges=yes' \$f && grep -qx 'PrivateTmp=yes' \$f && grep -qx 'ProtectHome=yes' \$f &&
        grep -qx 'User=payguard' \$f && grep -qx 'ExecStart=/usr/lib/payguard/$s -c \${PAYGUARD_CONFIG} -i %i' \$f"
done
ok "approve and audit reload their approvers on systemctl reload (SIGHUP), the others have no reload" \
    bash -c "for s in approve audit; do grep -qx 'ExecReload=/bin/kill -HUP \$MAINPID' /lib/systemd/system/payguard-\$s@.service || exit 1; done
             ! grep -l '^ExecReload=' /lib/systemd/system/payguard-{ingest,validate,triage,execute,console}@.service"
ok "payguard.target is installed" test -f /lib/systemd/system/payguard.target
creds() { sed -n 's/^LoadCredential=\([^:]*\):.*/\1/p' "/lib/systemd/system/payguard-$1@.service" | tr '\n' ' '; }
ok "validate alone is given the webhook secrets and the read token" \
    test "$(creds validate)" = "stripe-secrets standard-secrets adyen-secrets read-token "
ok "execute alone is given the write token" test "$(creds execute)" = "write-token "
ok "no other unit is given a credential (approve none)" \
    test -z "$(creds ingest)$(creds triage)$(creds approve)$(creds audit)$(creds console)"
pw=$(getent passwd payguard)
ok "postinst made the payguard system user ($pw)" bash -c \
    "IFS=: read -r _ _ uid _ _ home shell <<<'$pw'; [ \"\$uid\" -lt 1000 ] && [ \$home = /var/lib/payguard ] && [ \$shell = /usr/sbin/nologin ]"
ok "and its group" bash -c "getent group payguard >/dev/null"
ok "/var/lib/payguard is payguard's alone (0750)" test "$(stat -c '%U:%G %a' /var/lib/payguard)" = "payguard:payguard 750"
ok "/etc/payguard/credentials is root's alone (0700)" test "$(stat -c '%U:%G %a' /etc/payguard/credentials)" = "root:root 700"
if command -v systemctl >/dev/null 2>&1; then
    ok "postinst enabled payguard.target" test -L /etc/systemd/system/multi-user.target.wants/payguard.target
    for u in $UNITS; do
        ok "postinst enabled $u" test -L "/etc/systemd/system/payguard.target.wants/$u"
    done
fi
if command -v systemd-analyze >/dev/null 2>&1; then
    # shellcheck disable=SC2086
    (cd / && systemd-analyze verify payguard.target $UNITS) >"$WORK/verify.out" 2>&1
    rc=$?
    ok "systemd-analyze verify accepts the target and every unit (exit $rc)" \
        bash -c "[ $rc = 0 ] && ! grep -q payguard '$WORK/verify.out'"
    sed 's/^/# /' "$WORK/verify.out"
fi

# ---- the group, from the installed programs and configuration
D=$(mktemp -d /tmp/pg-deb.XXXXXX)
chown payguard:payguard "$D"
chmod 0750 "$D"
CFG=$D/payguard.cfg
PORT=$(free_port)
SBX=$(free_port)
CPORT=$(free_port)

# derive CONFIG - the installed configuration, on this test's ports, its
# outside systems the build tree's sandbox
derive() {
    local s
    cp /etc/payguard/payguard.cfg "$1"
    for s in payments ledger psp jira; do cfg_set "$1" outside "$s" "http://127.0.0.1:$SBX/$s"; done
    cfg_set "$1" outside teams "http://127.0.0.1:$SBX/teams/webhook"
    cfg_set "$1" sandbox port "$SBX"
    cfg_set "$1" sandbox db "$D/sandbox.sqlite"
    cfg_set "$1" sandbox tokens_file "$ROOT/config/sandbox/tokens"
    cfg_set "$1" sandbox adyen_hmac_file "$ROOT/config/sandbox/adyen-sandbox.hmac"
    cfg_set "$1" ingest http_port "$PORT"
    cfg_set "$1" approve http_port "$(free_port)"
    cfg_set "$1" approve peer_port "$(free_port)"
    cfg_set "$1" audit http_port "$(free_port)"
    cfg_set "$1" console http_port "$CPORT"
    cfg_set "$1" payguard drain_ms 3000
    chmod 0644 "$1"
}

# put_creds DIR OWNER - the secrets as systemd hands them: one file each, the
# names the installed configuration gives them (credential:<name>)
put_creds() {
    install -d -o "$2" -m 0500 "$1"
    printf '%s\n' "$E2E_SECRET" >"$1/stripe-secrets"
    cp "$ROOT/config/sandbox/standard.secrets" "$1/standard-secrets"
    cp "$ROOT/config/sandbox/adyen.hmac" "$1/adyen-secrets"
    cp "$ROOT/config/sandbox/read.token" "$1/read-token"
    cp "$ROOT/config/sandbox/write.token" "$1/write-token"
    chown "$2" "$1"/*
    chmod 0400 "$1"/*
}

# start_sandbox CONFIG - the build tree's sandbox (as root: it is not the group's)
start_sandbox() {
    "$BIN/pg-sandbox" -c "$1" -i 0 >"$WORK/sandbox.log" 2>&1 &
    SBX_PID=$!
}

# webhook_on_trail CONFIG - one signed payout.failed through the group, and its
# receipt and validate's verdict on it in the trail (payguard audit export)
webhook_on_trail() {
    local rcpt
    seed_load_payouts "$1" 1 || return 1
    load_seeded "http://127.0.0.1:$PORT" 0 1 || return 1
    rcpt=$(awk 'NR == 1 {print $2}' "$WORK/receipts.txt")
    [ -n "$rcpt" ] || return 1
    for _ in $(seq 1 150); do
        runuser -u payguard -- /usr/bin/payguard audit export -c "$1" >"$WORK/trail.jsonl" 2>/dev/null
        grep "$rcpt" "$WORK/trail.jsonl" | grep -q '"validated"' && return 0
        sleep 0.2
    done
    return 1
}

if [ -d /run/systemd/system ]; then
    # the units read /etc/default/payguard's PAYGUARD_CONFIG; they write only to
    # /var/lib/payguard and /run/payguard, and see a /tmp of their own: the
    # configuration goes to /etc/payguard (purge removes it), the data stays put
    CFG=/etc/payguard/e2e.cfg
    derive "$CFG"
    put_creds /etc/payguard/credentials root
    chmod 0700 /etc/payguard/credentials
    printf 'PAYGUARD_CONFIG=%s\n' "$CFG" >/etc/default/payguard
    DEFAULTS_MADE=1
    start_sandbox "$CFG"
    systemctl daemon-reload
    ok "systemctl start payguard.target" systemctl start payguard.target
    ok "every instance answers" wait_ready "$CFG"
    for u in $UNITS; do
        ok "$u is active, as payguard, with a watchdog" bash -c "systemctl is-active --quiet $u &&
            [ \"\$(ps -o user= -p \$(systemctl show -p MainPID --value $u))\" = payguard ] &&
            [ \"\$(systemctl show -p WatchdogUSec --value $u)\" = 30s ]"
    done
    ok "execute's unit alone holds the write token" bash -c "[ -f /run/credentials/payguard-execute@0.service/write-token ] &&
        [ ! -e /run/credentials/payguard-validate@0.service/write-token ] &&
        [ ! -e /run/credentials/payguard-approve@0.service ]"
    ok "validate's unit holds the webhook secrets" test -f /run/credentials/payguard-validate@0.service/stripe-secrets
    ok "a signed webhook reaches the trail, validated with the secret systemd handed validate" webhook_on_trail "$CFG"
    ok "systemctl stop payguard.target stops every instance" systemctl stop payguard.target
    for u in $UNITS; do
        ok "$u stopped cleanly" bash -c "! systemctl is-active --quiet $u && ! systemctl is-failed --quiet $u"
    done
else
    echo "# no systemd running here: the group runs under payguard up, as the payguard user"
    derive "$CFG"
    cfg_set "$CFG" payguard run_dir "$D/run"
    cfg_set "$CFG" payguard data_dir "$D/data"
    # audit's signing key as a credential too (read-only: generate_key = no)
    cfg_set "$CFG" audit signing_key_file credential:audit-signing-key
    cfg_set "$CFG" audit generate_key no
    cfg_set "$CFG" audit verify_key_file "$D/audit-signing.pub"
    put_creds "$D/creds" payguard
    chmod u+w "$D/creds"
    openssl genpkey -algorithm ed25519 -out "$D/creds/audit-signing-key" 2>/dev/null
    openssl pkey -in "$D/creds/audit-signing-key" -pubout -out "$D/audit-signing.pub"
    chown payguard "$D/creds/audit-signing-key"
    chmod 0400 "$D/creds/audit-signing-key"
    chmod 0500 "$D/creds"
    as_payguard() { (cd "$D" && runuser -u payguard -- "$@"); }

    as_payguard env -u CREDENTIALS_DIRECTORY /usr/lib/payguard/validate -c "$CFG" -i 0 >/dev/null 2>"$WORK/nocreds.err"
    rc=$?
    why="validate/stripe_secrets_file: 'credential:stripe-secrets': \$CREDENTIALS_DIRECTORY is not set"
    ok "outside systemd a credential:<name> is refused, saying why (exit $rc)" \
        bash -c "[ $rc != 0 ] && grep -qF \"\$1\" '$WORK/nocreds.err'" _ "$why"
    sed 's/^/# /' "$WORK/nocreds.err"
    start_sandbox "$CFG"
    as_payguard env CREDENTIALS_DIRECTORY="$D/creds" /usr/bin/payguard up -c "$CFG" -d >"$WORK/up.out" 2>&1
    ok "payguard up (as payguard) starts the installed programs" test $? = 0
    sed 's/^/# /' "$WORK/up.out"
    ok "every instance answers" wait_ready "$CFG"
    pids=$(awk '$2 > 0 {print $2}' "$D/run/master.state" 2>/dev/null | paste -sd, -)
    ok "every process runs as payguard ($pids)" test "$(ps -o user= -p "$pids" | sort -u | tr -d ' ')" = payguard
    ok "the console serves the installed page" bash -c "curl -fs http://127.0.0.1:$CPORT/ | grep -qi '<html'"
    ok "a signed webhook reaches the trail, validated with the secret from the credentials directory" \
        webhook_on_trail "$CFG"
    ok "payguard down stops the group" bash -c "cd '$D' && runuser -u payguard -- /usr/bin/payguard down -c '$CFG' | grep -q stopped"
    as_payguard /usr/bin/payguard audit verify -c "$CFG" >"$WORK/verify.out" 2>&1
    ok "the trail verifies with the public half of audit's credential key" test $? = 0
    sed 's/^/# /' "$WORK/verify.out"
fi
kill "$SBX_PID" 2>/dev/null && wait "$SBX_PID" 2>/dev/null
SBX_PID=""
[ -n "$DEFAULTS_MADE" ] && rm -f /etc/default/payguard && DEFAULTS_MADE=""
rm -rf "$D"
D=""

# ---- and gone
dpkg --purge payguard >"$WORK/purge.out" 2>&1
ok "dpkg --purge removes it" test $? = 0
sed 's/^/# /' "$WORK/purge.out"
ok "dpkg knows nothing of it" bash -c "! dpkg-query -W payguard >/dev/null 2>&1"
for f in /usr/lib/payguard /usr/bin/payguard /usr/share/payguard /usr/share/doc/payguard /etc/payguard \
    /var/lib/payguard /run/payguard /lib/systemd/system/payguard.target /lib/systemd/system/payguard-ingest@.service \
    /etc/systemd/system/payguard.target.wants /etc/systemd/system/multi-user.target.wants/payguard.target; do
    ok "$f is gone" bash -c "! [ -e '$f' ] && ! [ -L '$f' ]"
done
ok "the payguard user is gone" bash -c "! getent passwd payguard"
ok "the payguard group is gone" bash -c "! getent group payguard"

finish
