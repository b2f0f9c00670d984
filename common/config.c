/* config - the group configuration (see config.h) */
#include "config.h"
#include "bearer.h"
#include "httpc_multi.h"
#include "log.h"
#include "refusals.h"

#define CONFIG_MAX_FILE_BYTES (1024 * 1024) /* a configuration file, at most */

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const config_stages[CONFIG_NSTAGES] = {"ingest", "validate", "triage", "approve", "execute", "audit"};

/* The embedded defaults. Keep config/payguard.cfg identical to this text
 * (tests/unit/test_config.c checks it). */
static const char s_defaults[] =
    "#   payguard group configuration (ZPL: czmq zconfig, 4-space indents).\n"
    "#   These are the embedded defaults; `payguard config` prints them.\n"
    "#   {run} {data} {inst} {n} expand to the run and data directories, the\n"
    "#   instance name (e.g. triage.1) and the instance index.\n"
    "payguard\n"
    "    run_dir = run                       # sockets, pid and status files\n"
    "    data_dir = data                     # journals, one directory per instance\n"
    "    log_level = info                    # debug | info | warn | error (PAYGUARD_LOG_LEVEL wins)\n"
    "    log_format = logfmt                 # logfmt | json: one JSON object a line (PAYGUARD_LOG_FORMAT wins)\n"
    "    seal_key_file = {data}/seal.key     # approve seals decisions with it, execute checks (created if missing;\n"
    "                                        # on several hosts, the same file on each)\n"
    "    curve = no                          # yes: every ZeroMQ link authenticated and encrypted (CURVE); needed with hosts\n"
    "    keys_dir = {data}/keys              # each instance's key pair (payguard keygen); the same files on every host\n"
    "    partitions = 64                     # keys of validate, approve, execute spread over their instances\n"
    "                                        # (changing it, or their instances: payguard repartition)\n"
    "    metrics_token_sha256 = \"\"           # SHA-256 (hex) of the Bearer token GET /metrics then requires on every\n"
    "                                        # port (else 401); \"\": /metrics open to anyone who reaches a port\n"
    "    trace                               # W3C trace context: kept in every event (traceparent), sent on outside calls\n"
    "        otlp_endpoint = \"\"              # an OpenTelemetry collector's OTLP/HTTP base URL (http://host:4318): each\n"
    "                                        # process posts its spans to <it>/v1/traces as JSON; \"\": no export\n"
    "        otlp_max_spans = 2048           # spans a process buffers for the collector at most (~1.1 KiB each);\n"
    "                                        # past it, or when the collector fails, spans are dropped and counted\n"
    "        otlp_timeout_ms = 2000          # one post's limit (one attempt a second, on a thread of its own)\n"
    "    journal\n"
    "        fsync = batch                   # always | batch (group commit) | none\n"
    "        segment_bytes = 67108864        # start a new segment file past this\n"
    "        min_free_mb = 64                # below this much free space, take no input (ingest: 503)\n"
    "    delivery\n"
    "        max_inflight = 10000            # unacked events per destination; then back-pressure\n"
    "        max_inflight_bytes = 2097152    # and their bytes, at most: what a stage holds for each destination,\n"
    "                                        # and its consumer in its queue (memory; README, \"Sizing\")\n"
    "        resend_ms = 3000                # least wait before re-sending an unacked event (common/flow.h)\n"
    "        recent_ids = 65536              # ids of inputs taken last, remembered per instance (duplicates\n"
    "                                        # from a sibling instance; memory: ~32 bytes each)\n"
    "        sndhwm = 1000                   # ZeroMQ send high-water mark\n"
    "    refusals                            # refused requests to approve, audit and the console (common/refusals.h)\n"
    "        window_s = 60                   # a source's first refusal is on the trail at once, its repeats in one\n"
    "                                        # record a window: \"N refusals from X between T1 and T2\"\n"
    "        throttle_after = 20             # 401 or 403 answers to one source within window_s; then it gets 429\n"
    "        throttle_s = 60                 #   with Retry-After for this long\n"
    "        exempt = 127.0.0.1              # addresses never throttled (still recorded): the console's, as approve and\n"
    "                                        # audit see it (it passes on everyone's requests and throttles its own sources)\n"
    "    drain_ms = 5000                     # on SIGTERM, wait this long for acks\n"
    "    restart_max_ms = 10000              # supervisor restart backoff ceiling\n"
    "    ready_timeout_s = 120               # payguard up -d waits this long for every process to be ready\n"
    "hosts                                  # one group on several hosts: a section per host (README, \"Several hosts\")\n"
    "outside                                # the operator's systems (CONTRACT.md §2)\n"
    "    payments = http://127.0.0.1:8090/payments\n"
    "    ledger = http://127.0.0.1:8090/ledger\n"
    "    psp = http://127.0.0.1:8090/psp\n"
    "    jira = http://127.0.0.1:8090/jira\n"
    "    servicenow = \"\"                     # set instead of jira to use ServiceNow\n"
    "    teams = http://127.0.0.1:8090/teams/webhook\n"
    "    llm = \"\"                            # empty: rule-based triage only\n"
    "    timeout_ms = 5000                   # each attempt of a call\n"
    "    max_inflight = 512                  # requests on the wire to one system at once, per stage instance\n"
    "    rate_per_s = 0                      # requests a second to one system, per stage instance (0: no limit)\n"
    "    breaker_failures = 3                # consecutive failures (5xx, 429, timeouts, refused) that open a system's breaker (0: none; keep it <= execute/max_attempts)\n"
    "    breaker_cooldown_ms = 5000          # an open breaker lets one probe through after this long\n"
    "    limits                              # per system: <system> = \"<max_inflight> [<rate_per_s>]\" (payments ledger psp jira servicenow teams)\n"
    "sandbox                                # a local stand-in for all of them (make run, tests)\n"
    "    enabled = yes                       # started by `payguard up`; set no against real systems\n"
    "    bind = 127.0.0.1\n"
    "    port = 8090\n"
    "    db = {data}/sandbox.sqlite\n"
    "    tokens_file = config/sandbox/tokens # lines: read|write <token>\n"
    "    adyen_hmac_file = config/sandbox/adyen-sandbox.hmac   # its own copy of the Adyen HMAC keys, to sign what it sends\n"
    "    adyen_notify_url = \"\"               # where POST /_sandbox/adyen/notify sends (empty: ingest's /webhooks/adyen)\n"
    "ingest\n"
    "    instances = 1\n"
    "    http_bind = 127.0.0.1\n"
    "    http_port = 8080\n"
    "    http_threads = 4\n"
    "    http_max_per_address = 256          # connections from one address, of 1024 in all (PSPs send from few\n"
    "                                        # addresses, many connections each: keep it high); more are closed at once\n"
    "    http_deadline_s = 30                # a request not received and answered within this is cut, however slowly\n"
    "                                        # it trickles (each port's http_deadline_s)\n"
    "    max_body_bytes = 262144             # 413 above this (at most 983040: a receipt is one event)\n"
    "    retry_after_s = 1                   # Retry-After on 503\n"
    "    ack_endpoint = ipc://{run}/ack-{inst}   # where this stage's instances receive acks\n"
    "    rate_per_s = 1000                   # per source address; then 429\n"
    "    rate_burst = 2000\n"
    "    reject_budget = 1000                # per source address and window: requests rejected before their\n"
    "    reject_budget_bytes = 8388608       #   sender was proven (HTTP refusals; validate's source and\n"
    "    reject_window_s = 3600              #   signature gates) and their body bytes; then 429\n"
    "    retention_s = 604800                # journal segments validate and audit acknowledged: removed after 7 days\n"
    "    adyen_basic_user = \"\"               # optional HTTP basic auth on /webhooks/adyen, as set in Adyen's Customer Area:\n"
    "    adyen_basic_password_sha256 = \"\"    #   the user, and the SHA-256 (hex) of the password, never the password (both or neither)\n"
    "    fetch_token_sha256 = acf8cb4f9ff3b96ba257263cb7e74b548b2f9a592bdb8873e00bb05852ecff9e  # SHA-256 of the Bearer token of\n"
    "                                        # POST /fetched/stripe (payguard catch-up; demo: config/sandbox/fetch.token); \"\": not served\n"
    "    header_key_file = {data}/ingest.header.key  # key of the hashes that stand for header values not kept (created if\n"
    "                                        # missing; mode 0600): equal values hash equal, none is stored\n"
    "validate\n"
    "    instances = 1\n"
    "    endpoint = ipc://{run}/validate.{n}.in    # input PULL of instance {n}\n"
    "    ack_endpoint = ipc://{run}/ack-{inst}\n"
    "    state_db = {data}/validate.{n}.sqlite   # idempotency keys and cases as of a journal position (rebuilt from the journal if lost, while it is whole)\n"
    "    retention_s = 604800                # journal segments triage and audit acknowledged and the state store holds: removed after 7 days\n"
    "    allow_sources = 127.0.0.0/8 ::1     # CIDRs webhooks may come from\n"
    "    trusted_proxies = \"\"                # CIDRs whose X-Forwarded-For is believed\n"
    "    tolerance_s = 300                   # signature timestamp tolerance\n"
    "    stripe_secrets_file = config/sandbox/stripe.secrets   # one secret a line, optional expires=<unix>\n"
    "    stripe_secrets_env = PAYGUARD_STRIPE_SECRETS          # or secrets in this variable\n"
    "    standard_secrets_file = config/sandbox/standard.secrets\n"
    "    standard_secrets_env = PAYGUARD_STANDARD_SECRETS\n"
    "    adyen_secrets_file = config/sandbox/adyen.hmac      # Adyen HMAC keys (hex), one a line, optional expires=<unix>\n"
    "    adyen_secrets_env = PAYGUARD_ADYEN_SECRETS\n"
    "    token_file = config/sandbox/read.token  # Bearer token for payments, ledger, PSP reads\n"
    "    sweep_every_s = 900                 # re-read refunds pending too long\n"
    "    sweep_age_s = 1800\n"
    "    max_checks_in_flight = 128          # receipts being checked at once (reads in flight); then input waits\n"
    "                                        # (memory under load: ~50 KB each; README, \"Sizing\")\n"
    "triage\n"
    "    instances = 2\n"
    "    llm_model = payguard-triage          # the model name sent to outside/llm\n"
    "    llm_key_file = \"\"                  # Bearer key for outside/llm (empty: none)\n"
    "    llm_timeout_ms = 10000\n"
    "    llm_attempts = 2                    # 5xx, 429, timeouts retried\n"
    "    llm_max_inflight = 16               # model requests at once, per worker\n"
    "    llm_rate_per_s = 0                  # model requests a second, per worker (0: no limit); breaker: outside/breaker_*\n"
    "    retention_s = 604800                # journal segments approve and audit acknowledged: removed after 7 days\n"
    "    endpoint = ipc://{run}/triage.{n}.in    # input PULL of instance {n}\n"
    "    ack_endpoint = ipc://{run}/ack-{inst}\n"
    "approve\n"
    "    instances = 1\n"
    "    endpoint = ipc://{run}/approve.{n}.in    # input PULL of instance {n}\n"
    "    ack_endpoint = ipc://{run}/ack-{inst}\n"
    "    http_bind = 127.0.0.1\n"
    "    http_port = 8081                    # the approvals API (CONTRACT.md §3.1)\n"
    "    http_max_per_address = 64           # connections from one address, of 256 in all (and on peer_port); the console\n"
    "                                        # calls from its own address: keep it at least console/http_max_per_address\n"
    "    http_deadline_s = 30\n"
    "    peer_bind = 127.0.0.1               # with instances > 1: instance n takes the requests the others pass on\n"
    "    peer_port = 8181                    # on peer_port + n (the cases it owns)\n"
    "    public_url = http://127.0.0.1:8083  # the ops console as people reach it: Teams cards and tickets\n"
    "                                        # link to {public_url}/case/{case_id}\n"
    "    expiry_s = 86400                    # a pending approval expires and escalates\n"
    "    max_cases = 100000                  # cases in flight held in memory; all awaiting people: new ones wait (back-pressure)\n"
    "    case_db = {data}/approve.{n}.cases.sqlite  # every case, as of a journal position; only cases in flight stay in memory\n"
    "    retention_s = 604800                # journal segments execute and audit acknowledged and the case store holds: removed after 7 days\n"
    "    confidence_min = 700                # permille; advice below it: a human decides\n"
    "    tier1_roles = payments_ops_lead\n"
    "    tier2_roles = \"finance_manager compliance\"\n"
    "    tier3_roles = \"treasury finance_manager compliance\"\n"
    "    thresholds                          # <CUR> = tier2_from tier3_above refund_auto_max (minor units)\n"
    "        USD = \"500000 5000000 5000\"\n"
    "approvers                              # name: roles and the SHA-256 of their token (never the token); optional\n"
    "                                        # expires = 2027-01-31T00:00:00Z (refused from then on). Reloaded by approve\n"
    "                                        # and audit on SIGHUP and when this file changes; no restart\n"
    "    ops_lead                            # the demo approvers: tokens in config/sandbox/<name>.token\n"
    "        roles = payments_ops_lead\n"
    "        token_sha256 = 6fb110b213d302512a767f105125e04e26752f1dbaff4eee804e96b6f232668c\n"
    "    ops_lead_2                          # a second ops lead: a tier-1 retry is asked by one, approved by the other\n"
    "        roles = payments_ops_lead\n"
    "        token_sha256 = c7f3cfe481ef42d1b053bc703df207861d97f3d158b758187b59f6a7ffc138d1\n"
    "    fin_mgr\n"
    "        roles = finance_manager\n"
    "        token_sha256 = 3b2b7c79e5ab978d41a2b6c1872ca3d72274739ce8a87865c92a9d3c957b052a\n"
    "    compliance_officer\n"
    "        roles = compliance\n"
    "        token_sha256 = c273552b624f9370c943c6fab768968e43e1f78d80ee18ce8183d406493217d7\n"
    "    treasurer\n"
    "        roles = treasury\n"
    "        token_sha256 = c543280940ce970b7df8fdf7993e9a5ed5b0482d79f173589cd801474c5c26f2\n"
    "    risk_lead                           # holds two roles: still counts once per case\n"
    "        roles = \"finance_manager compliance\"\n"
    "        token_sha256 = 1418a6264e78f8c9fc261f92a7aacdd15e55534be3db537e03fab52111397324\n"
    "execute\n"
    "    instances = 1\n"
    "    endpoint = ipc://{run}/execute.{n}.in    # input PULL of instance {n}\n"
    "    ack_endpoint = ipc://{run}/ack-{inst}\n"
    "    token_file = config/sandbox/write.token # Bearer token for the writes (payments, ledger, tickets)\n"
    "    jira_project = PAY                  # the Jira project tickets go to\n"
    "    max_attempts = 4                    # per step: 5xx, 429, timeouts, refused retried\n"
    "    retry_base_ms = 200                 # backoff (doubling, full jitter, Retry-After honoured)\n"
    "    retry_max_ms = 5000\n"
    "    ticket_settle_ms = 3000             # after a ticket create whose answer was lost (or a restart), wait this long\n"
    "                                        # before searching for it again (Jira's search index lags its creates)\n"
    "    max_runs_in_flight = 128            # runbooks running at once (calls in flight); then input waits\n"
    "    release_hold_on_failure = no        # yes: a failed ledger step releases the payout hold to its previous status\n"
    "    review_db = {data}/execute.{n}.reviews.sqlite  # the ops-review queue (the failed plans a retry re-runs)\n"
    "    retention_s = 604800                # journal segments audit acknowledged, of no runbook in flight: removed after 7 days\n"
    "audit\n"
    "    instances = 1\n"
    "    endpoint = ipc://{run}/audit.{n}.in    # input PULL of instance {n}\n"
    "    ack_endpoint = ipc://{run}/ack-{inst}\n"
    "    http_bind = 127.0.0.1\n"
    "    http_port = 8082                    # cases and metrics (CONTRACT.md §3.2)\n"
    "    http_max_per_address = 64           # as approve's (the console calls from its own address)\n"
    "    http_deadline_s = 30\n"
    "    case_db = {data}/audit.{n}.cases.sqlite  # the case index (rebuilt from the trail if lost)\n"
    "    checkpoints_file = {data}/audit.{n}.checkpoints  # signed chain heads, outside the trail\n"
    "    checkpoint_every_s = 10             # sign the head this often when it moved (and at stop)\n"
    "    signing_key_file = {data}/audit-signing.key    # Ed25519 private key (PEM); keep it away from the trail in production\n"
    "    verify_key_file = {data}/audit-signing.pub     # its public key: what `payguard audit verify` checks with\n"
    "    generate_key = yes                  # no key file yet: create one (set no in production)\n"
    "    archive_dir = {data}/audit.{n}.archive  # sealed trail segments, zstd-compressed, kept for good (may be a mounted remote)\n"
    "    archive_after_s = 86400             # a sealed segment moves there a day after it was last written\n"
    "    case_ids_max = 64                   # ids one case is found by (GET /cases?q=): its PSP events, payment, ... (8..4096)\n"
    "catchup                                # `payguard catch-up stripe`: Stripe events missed, listed from its Events API\n"
    "    api = \"\"                            # Stripe's API base URL (\"\": outside/psp, the PSP API of CONTRACT.md §2.3)\n"
    "    key_file = config/sandbox/read.token    # a restricted, read-only Stripe key (Events: read); never in argv or logs\n"
    "    token_file = config/sandbox/fetch.token # the token ingest/fetch_token_sha256 hashes: hands the events to ingest\n"
    "    ingest = \"\"                         # ingest's base URL (\"\": http://<ingest/http_bind>:<ingest/http_port>)\n"
    "    state_file = {data}/catchup.state   # the last event handed in, per --since/--until: a re-run continues after it\n"
    "    every_s = 0                         # the master runs `catch-up stripe --since now-window_s --quiet` this often (0: off)\n"
    "    window_s = 21600                    # how far back a periodic run looks (6 h)\n"
    "console                                # the ops console: the page people decide on (console/main.c)\n"
    "    enabled = yes                       # started by `payguard up`\n"
    "    http_bind = 127.0.0.1\n"
    "    http_port = 8083                    # approve/public_url should name it as people reach it\n"
    "    http_max_per_address = 32           # connections from one address, of 256 in all (behind a proxy or NAT\n"
    "                                        # everyone shares its address: raise it)\n"
    "    http_deadline_s = 30                # more than timeout_ms: a request waits for approve or audit\n"
    "    www_dir = console/www               # index.html, app.js, app.css (relative: to where payguard starts)\n"
    "    timeout_ms = 10000                  # for each call passed on to approve or audit\n"
    "    pipeline_sample_s = 5               # the Pipeline page: a sample of the group's files this often\n"
    "    pipeline_samples = 720              # ...and this many kept for its charts (720 x 5 s: the last hour)\n"
    "    pipeline_grace_s = 600              # ...still shown to a person approve knew this long ago while approve is silent\n"
    "    chart_dir = console/vendor/node_modules/uplot/dist  # uPlot's files (npm ci in console/vendor: install-deps.sh);\n"
    "                                        # missing: the Pipeline page shows its numbers without charts\n"
    "    relay_key_file = {data}/console.relay.key  # the console seals the person's address it passes on to approve\n"
    "                                        # with it, approve believes nothing else (created if missing; mode 0600)\n";

struct config_t {
    zconfig_t *defaults;
    zconfig_t *file;
    char *path;
    char run_dir[CONFIG_PATH_MAX];
    char data_dir[CONFIG_PATH_MAX];
    char host[CONFIG_HOST_MAX]; /* PAYGUARD_HOST: the host this process runs on ("" without hosts) */
};

/* s_check_known - every key in the file must be a plain name, written once
 * at its level, and (unless named_freely: below a section the operator names
 * freely) exist in the defaults; prefix is the path of node ("" at the root) */
static int s_check_known(config_t *self, zconfig_t *node, const char *prefix, bool named_freely, char *err,
                         size_t errlen)
{
    zhashx_t *seen = zhashx_new(); /* the names met so far at this level */
    assert(seen);
    int rc = 0;
    for (zconfig_t *c = zconfig_child(node); c && rc == 0; c = zconfig_next(c)) {
        const char *name = zconfig_name(c);
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "/" : "", name);
        /* approvers/<name>/... and approve/thresholds/<CUR> are named by the
         * operator: approve validates them, the defaults cannot */
        bool free_below = named_freely || strncmp(path, "approvers/", 10) == 0 || strncmp(path, "hosts/", 6) == 0 ||
                          strncmp(path, "approve/thresholds/", 19) == 0 || strncmp(path, "outside/limits/", 15) == 0;
        if (strchr(name, '/')) {
            /* ZPL takes "payguard/log_level = debug" as one name, but every
             * lookup splits a path at '/': it would be accepted and never
             * read (found by tests/fuzz/fuzz_config.c) */
            snprintf(err, errlen, "config %s: '%s': a name may not contain '/' (one level per line)", self->path, path);
            rc = -1;
        } else if (zhashx_insert(seen, name, c) != 0) {
            /* a lookup finds the first of two entries of the same name: the
             * second, key or whole section, would be silently ignored (found
             * by tests/fuzz/fuzz_config.c) */
            snprintf(err, errlen, "config %s: '%s' is set twice", self->path, path);
            rc = -1;
        } else if (strcmp(path, "payguard/delivery/max_seen") == 0) {
            snprintf(err, errlen,
                     "config %s: '%s' is gone: dedup no longer grows with history (it keeps each producer's "
                     "floor and its window, and payguard/delivery/recent_ids ids); remove the line",
                     self->path, path);
            rc = -1;
        } else if (!free_below && !zconfig_locate(self->defaults, path)) {
            snprintf(err, errlen, "config %s: unknown setting '%s'", self->path, path);
            rc = -1;
        } else {
            rc = s_check_known(self, c, path, free_below, err, errlen);
        }
    }
    zhashx_destroy(&seen);
    return rc;
}

/* s_absolute - make a directory setting absolute against the cwd */
static int s_absolute(const char *value, char *out, size_t outlen)
{
    if (value[0] == '/')
        return snprintf(out, outlen, "%s", value) < (int) outlen ? 0 : -1;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return -1;
    return snprintf(out, outlen, "%s/%s", cwd, value) < (int) outlen ? 0 : -1;
}

/* config_main_opts - see config.h */
bool config_main_opts(int argc, char **argv, const char *prog, bool single, const char **cfg_path, int *index,
                      int *status)
{
    int opt;
    *cfg_path = NULL;
    *index = 0;
    *status = 2;
    while ((opt = getopt(argc, argv, "c:i:h")) != -1) {
        if (opt == 'c')
            *cfg_path = optarg;
        else if (opt == 'i')
            *index = atoi(optarg);
        else {
            if (opt == 'h')
                *status = 0;
            break;
        }
    }
    if (opt == -1 && (!single || (*index == 0 && optind == argc)))
        return true;
    fprintf(stderr, "usage: %s [-c CONFIG] [-i %s]\n  (normally started by `payguard up`)\n", prog,
            single ? "0" : "INDEX");
    return false;
}

/* the outside systems a limits line may name */
static const char *const s_outside_systems[] = {"payments", "ledger", "psp", "jira", "servicenow", "teams", NULL};

/* config_outside_limits - see config.h */
int config_outside_limits(const config_t *self, const char *system, long out[4], char *err, size_t errlen)
{
    if (config_int(self, "outside/max_inflight", 1, HTTPC_MULTI_MAX_INFLIGHT, &out[0], err, errlen) ||
        config_int(self, "outside/rate_per_s", 0, HTTPC_MULTI_MAX_RATE, &out[1], err, errlen) ||
        config_int(self, "outside/breaker_failures", 0, 1000, &out[2], err, errlen) ||
        config_int(self, "outside/breaker_cooldown_ms", 1, 3600000, &out[3], err, errlen))
        return -1;
    const char *line = system ? config_child_get(self, "outside/limits", system, NULL) : NULL;
    if (!line)
        return 0;
    char *end = NULL;
    errno = 0;
    long n = strtol(line, &end, 10), r = out[1];
    bool ok = end != line && !errno && n >= 1 && n <= HTTPC_MULTI_MAX_INFLIGHT;
    if (ok && *end) {
        const char *p = end;
        r = strtol(p, &end, 10);
        ok = end != p && !errno && r >= 0 && r <= HTTPC_MULTI_MAX_RATE;
    }
    while (ok && (*end == ' ' || *end == '\t'))
        end++;
    if (!ok || *end) {
        snprintf(err, errlen, "config: outside/limits/%s = '%s': want \"<max_inflight 1..%d> [<rate_per_s 0..%d>]\"",
                 system, line, HTTPC_MULTI_MAX_INFLIGHT, HTTPC_MULTI_MAX_RATE);
        return -1;
    }
    out[0] = n;
    out[1] = r;
    return 0;
}

/* s_check_limits - every outside/limits line names a known system and parses */
static int s_check_limits(const config_t *self, char *err, size_t errlen)
{
    const char *names[32];
    size_t n = config_children(self, "outside/limits", names, 32, NULL);
    long lim[4];
    if (config_outside_limits(self, NULL, lim, err, errlen))
        return -1;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (s_outside_systems[k] && strcmp(s_outside_systems[k], names[i]) != 0)
            k++;
        if (!s_outside_systems[k]) {
            snprintf(err, errlen,
                     "config: outside/limits/%s: not an outside system (payments ledger psp jira servicenow teams)",
                     names[i]);
            return -1;
        }
        if (config_outside_limits(self, names[i], lim, err, errlen))
            return -1;
    }
    return 0;
}

/* s_runs - true if a host's run list ("ingest.0 validate.* execute
 * sandbox") names inst ("validate.2", or "sandbox.0" for the sandbox) */
static bool s_runs(const char *list, const char *inst)
{
    char stage[32];
    const char *dot = strchr(inst, '.');
    snprintf(stage, sizeof stage, "%.*s", dot ? (int) (dot - inst) : (int) strlen(inst), inst);
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", list ? list : "");
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        size_t l = strlen(t);
        if (strcmp(t, inst) == 0 || strcmp(t, stage) == 0 ||
            (l > 2 && strcmp(t + l - 2, ".*") == 0 && strncmp(t, stage, l - 2) == 0 && stage[l - 2] == '\0'))
            return true;
    }
    return false;
}

/* config_host_of - see config.h */
const char *config_host_of(const config_t *self, const char *stage, int index)
{
    const char *names[CONFIG_MAX_HOSTS];
    size_t n = config_children(self, "hosts", names, CONFIG_MAX_HOSTS, NULL);
    char inst[48];
    snprintf(inst, sizeof inst, "%s.%d", stage, index);
    for (size_t i = 0; i < n; i++)
        if (s_runs(config_child_get(self, "hosts", names[i], "run"), inst))
            return names[i];
    return NULL;
}

/* config_multi_host - see config.h */
bool config_multi_host(const config_t *self)
{
    const char *names[1];
    return config_children(self, "hosts", names, 1, NULL) > 0;
}

/* config_host - see config.h */
const char *config_host(const config_t *self)
{
    return self->host[0] ? self->host : NULL;
}

/* config_runs_here - see config.h */
bool config_runs_here(const config_t *self, const char *stage, int index)
{
    if (!config_multi_host(self))
        return true;
    const char *h = config_host_of(self, stage, index);
    return h && self->host[0] && strcmp(h, self->host) == 0;
}

/* s_check_host_links - across hosts every link is tcp:// and authenticated,
 * and approve's instances share one host (they pass requests on locally) */
static int s_check_host_links(const config_t *self, char *err, size_t errlen)
{
    if (strcmp(config_get(self, "payguard/curve"), "yes") != 0) {
        snprintf(err, errlen,
                 "config: hosts: links between hosts must be authenticated: set payguard/curve = yes "
                 "and make the keys with payguard keygen");
        return -1;
    }
    for (int s = 0; s < CONFIG_NSTAGES; s++) {
        const char *keys[2] = {"endpoint", "ack_endpoint"};
        for (int k = 0; k < 2; k++) {
            char key[64];
            snprintf(key, sizeof key, "%s/%s", config_stages[s], keys[k]);
            const char *v = config_get(self, key);
            if (v && strncmp(v, "ipc://", 6) == 0) {
                snprintf(err, errlen, "config: %s: ipc:// does not cross hosts: use tcp://{host}:<port>", key);
                return -1;
            }
        }
    }
    const char *a0 = config_host_of(self, "approve", 0);
    for (int i = 1; i < config_instances(self, "approve"); i++)
        if (a0 && config_host_of(self, "approve", i) && strcmp(a0, config_host_of(self, "approve", i)) != 0) {
            snprintf(err, errlen,
                     "config: hosts: approve's instances must run on one host (each passes requests "
                     "on to the others over approve/peer_bind)");
            return -1;
        }
    return 0;
}

/* s_check_hosts - with a hosts section: every instance run by exactly one
 * host, PAYGUARD_HOST one of them, links that can cross hosts */
static int s_check_hosts(const config_t *self, char *err, size_t errlen)
{
    const char *names[CONFIG_MAX_HOSTS];
    size_t n = config_children(self, "hosts", names, CONFIG_MAX_HOSTS, NULL);
    if (!n)
        return 0;
    if (self->host[0] && !config_child_get(self, "hosts", self->host, "run")) {
        snprintf(err, errlen, "config: host '%s' (%s) is not under hosts", self->host, CONFIG_HOST_ENV);
        return -1;
    }
    for (int s = -2; s < CONFIG_NSTAGES; s++) {
        const char *stage = s == -2 ? "sandbox" : s == -1 ? "console" : config_stages[s];
        int count = s < 0 ? (strcmp(config_get(self, s == -2 ? "sandbox/enabled" : "console/enabled"), "yes") == 0)
                          : config_instances(self, stage);
        for (int i = 0; i < count; i++) {
            char inst[48];
            snprintf(inst, sizeof inst, "%s.%d", stage, i);
            int runs = 0;
            for (size_t h = 0; h < n; h++)
                runs += s_runs(config_child_get(self, "hosts", names[h], "run"), inst);
            if (runs != 1) {
                snprintf(err, errlen, "config: hosts: %s is run by %d hosts: name it in exactly one host's run list",
                         inst, runs);
                return -1;
            }
        }
    }
    return s_check_host_links(self, err, errlen);
}

/* config_load - defaults, then the file's overrides, then checks */
/* s_load_file - the file's ZPL tree, read here and parsed from memory:
 * czmq 4.2.1's zconfig_load leaks its zfile_t on text that is not ZPL.
 * NULL when it does not parse (err left empty) or cannot be read (err set). */
static zconfig_t *s_load_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "config %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(CONFIG_MAX_FILE_BYTES);
    assert(buf);
    size_t n = fread(buf, 1, CONFIG_MAX_FILE_BYTES, f);
    bool too_big = n == CONFIG_MAX_FILE_BYTES, failed = ferror(f);
    fclose(f);
    zconfig_t *tree = NULL;
    if (too_big || failed) {
        snprintf(err, errlen, "config %s: %s", path, failed ? "read error" : "over 1 MiB");
    } else {
        zchunk_t *chunk = zchunk_new(buf, n);
        assert(chunk);
        tree = zconfig_chunk_load(chunk);
        zchunk_destroy(&chunk);
    }
    free(buf);
    return tree;
}

/* s_bounds - the range of every integer setting a program reads with
 * config_bounded (one table: the stages and config_load agree) */
static const struct {
    const char *key;
    long min, max;
} s_bounds[] = {
    {"payguard/journal/segment_bytes", CONFIG_SEGMENT_BYTES_MIN, CONFIG_SEGMENT_BYTES_MAX},
    {"payguard/journal/min_free_mb", 1, CONFIG_MIN_FREE_MB_MAX},
    {"payguard/delivery/max_inflight", 1, CONFIG_MAX_INFLIGHT_MAX},
    {"payguard/delivery/max_inflight_bytes", CONFIG_INFLIGHT_BYTES_MIN, CONFIG_INFLIGHT_BYTES_MAX},
    {"payguard/delivery/resend_ms", CONFIG_RESEND_MS_MIN, CONFIG_RESEND_MS_MAX},
    {"payguard/delivery/recent_ids", CONFIG_RECENT_IDS_MIN, CONFIG_RECENT_IDS_MAX},
    {"payguard/delivery/sndhwm", 1, CONFIG_SNDHWM_MAX},
    {"payguard/drain_ms", 0, CONFIG_DRAIN_MS_MAX},
    {"payguard/restart_max_ms", 100, 600000},
    {"payguard/ready_timeout_s", 1, 3600},
    {"payguard/trace/otlp_max_spans", 2, 65536},
    {"payguard/trace/otlp_timeout_ms", 100, 60000},
    {"payguard/refusals/window_s", 1, 86400},
    {"payguard/refusals/throttle_after", 1, 1000000},
    {"payguard/refusals/throttle_s", 1, 86400},
    {"outside/timeout_ms", 100, 600000},
    {"outside/breaker_failures", 0, 1000},
    {"outside/breaker_cooldown_ms", 1, 3600000},
    {"ingest/http_port", 1, 65535},
    {"ingest/http_threads", 1, 64},
    {"ingest/http_max_per_address", 1, CONFIG_INGEST_HTTP_CONNECTIONS},
    {"ingest/http_deadline_s", 1, CONFIG_HTTP_DEADLINE_S_MAX},
    {"ingest/max_body_bytes", 1, 960L << 10}, /* EVENT_MAX_BYTES less room for headers and fields */
    {"ingest/reject_budget", 1, 1000000},
    {"ingest/reject_budget_bytes", 1024, 1L << 40},
    {"ingest/reject_window_s", 1, 86400},
    {"ingest/retry_after_s", 1, 3600},
    {"ingest/rate_per_s", 1, 1000000},
    {"ingest/rate_burst", 1, 10000000},
    {"ingest/retention_s", 1, CONFIG_RETENTION_S_MAX},
    {"validate/tolerance_s", 1, 86400},
    {"validate/sweep_every_s", 1, 86400},
    {"validate/sweep_age_s", 0, 30L * 86400},
    {"validate/max_checks_in_flight", 1, 1024}, /* STAGE_MAX_DEFERRED */
    {"triage/llm_timeout_ms", 100, 600000},
    {"triage/llm_attempts", 1, 10},
    {"triage/llm_max_inflight", 1, 256},
    {"triage/llm_rate_per_s", 0, 100000},
    {"triage/retention_s", 1, CONFIG_RETENTION_S_MAX},
    {"approve/retention_s", 1, CONFIG_RETENTION_S_MAX},
    {"validate/retention_s", 1, CONFIG_RETENTION_S_MAX},
    {"execute/retention_s", 1, CONFIG_RETENTION_S_MAX},
    {"approve/http_port", 1, 65535},
    {"approve/http_max_per_address", 1, CONFIG_HTTP_CONNECTIONS},
    {"approve/http_deadline_s", 1, CONFIG_HTTP_DEADLINE_S_MAX},
    {"approve/expiry_s", 1, 30L * 86400},
    {"approve/max_cases", CONFIG_APPROVE_CASES_MIN, CONFIG_APPROVE_CASES_MAX},
    {"approve/confidence_min", 0, 1000}, /* permille (policy.c) */
    {"execute/max_attempts", 1, 20},
    {"execute/max_runs_in_flight", 1, 512}, /* EXECUTE_MAX_RUNS */
    {"execute/retry_base_ms", 1, 60000},
    {"execute/retry_max_ms", 1, 600000},
    {"execute/ticket_settle_ms", 0, 600000},
    {"audit/http_port", 1, 65535},
    {"audit/http_max_per_address", 1, CONFIG_HTTP_CONNECTIONS},
    {"audit/http_deadline_s", 1, CONFIG_HTTP_DEADLINE_S_MAX},
    {"audit/checkpoint_every_s", 1, 86400},
    {"audit/archive_after_s", 0, CONFIG_RETENTION_S_MAX},
    {"audit/case_ids_max", 8, 4096},
    {"console/http_port", 1, 65535},
    {"console/timeout_ms", 100, 600000},
    {"console/http_max_per_address", 1, CONFIG_HTTP_CONNECTIONS},
    {"console/http_deadline_s", 1, CONFIG_HTTP_DEADLINE_S_MAX},
    {"console/pipeline_sample_s", 1, 60},
    {"console/pipeline_samples", 2, 17280}, /* a day at 5 s; at most 17,280 x 128 series x 8 bytes, 17 MiB */
    {"console/pipeline_grace_s", 0, 86400},
    {"sandbox/port", 1, 65535},
    {"catchup/every_s", 0, 30L * 86400},
    {"catchup/window_s", 60, 30L * 86400}, /* Stripe's Events API keeps 30 days */
};

/* config_bounded - see config.h */
int config_bounded(const config_t *self, const char *path, long *out, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof s_bounds / sizeof s_bounds[0]; i++)
        if (strcmp(s_bounds[i].key, path) == 0)
            return config_int(self, path, s_bounds[i].min, s_bounds[i].max, out, err, errlen);
    assert(!"config_bounded: a setting not in s_bounds");
    return -1;
}

/* s_check_log - payguard/log_level and log_format name what log.h knows */
static int s_check_log(const config_t *self, char *err, size_t errlen)
{
    const char *level = config_get(self, "payguard/log_level"), *format = config_get(self, "payguard/log_format");
    if (log_level_of(level) < 0) {
        snprintf(err, errlen, "config: payguard/log_level = '%s': want debug, info, warn or error", level);
        return -1;
    }
    if (log_format_of(format) < 0) {
        snprintf(err, errlen, "config: payguard/log_format = '%s': want logfmt or json", format);
        return -1;
    }
    return 0;
}

/* s_check_trace - the collector's address is a URL without credentials
 * or query (it is logged), or "" */
static int s_check_trace(const config_t *self, char *err, size_t errlen)
{
    const char *url = config_get(self, "payguard/trace/otlp_endpoint");
    if (!url[0])
        return 0;
    bool scheme = strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0;
    const char *host = scheme ? strstr(url, "//") + 2 : url;
    if (!scheme || !host[0] || host[0] == '/' || strpbrk(url, "?#@ ") || strlen(url) > 512) {
        snprintf(err, errlen,
                 "config: payguard/trace/otlp_endpoint = '%.80s': want an http:// or https:// base URL such as "
                 "http://127.0.0.1:4318, with no user, query or spaces (\"\": no export)",
                 url);
        return -1;
    }
    return 0;
}

/* s_check_bounds - every setting of s_bounds is in range: refused at load
 * (payguard up), not by a stage that then exits and restarts for ever */
static int s_check_bounds(const config_t *self, char *err, size_t errlen)
{
    long v;
    for (size_t i = 0; i < sizeof s_bounds / sizeof s_bounds[0]; i++)
        if (config_int(self, s_bounds[i].key, s_bounds[i].min, s_bounds[i].max, &v, err, errlen))
            return -1;
    return 0;
}

/* s_check_http - what the HTTP servers need beyond s_bounds: a token hash
 * that parses, a console deadline its backend calls fit in */
static int s_check_http(const config_t *self, char *err, size_t errlen)
{
    bearer_t b;
    if (bearer_parse("payguard/metrics_token_sha256", config_get(self, "payguard/metrics_token_sha256"), &b, err,
                     errlen) != 0)
        return -1;
    long timeout_ms, deadline_s;
    if (config_bounded(self, "console/timeout_ms", &timeout_ms, err, errlen) ||
        config_bounded(self, "console/http_deadline_s", &deadline_s, err, errlen))
        return -1;
    if (timeout_ms >= deadline_s * 1000) {
        snprintf(err, errlen,
                 "config: console/timeout_ms = %ld is not under console/http_deadline_s = %ld s: a request waiting "
                 "that long for approve or audit would be cut first",
                 timeout_ms, deadline_s);
        return -1;
    }
    return 0;
}

config_t *config_load(const char *path, char *err, size_t errlen)
{
    config_t *self = calloc(1, sizeof *self);
    assert(self);
    self->defaults = zconfig_str_load(s_defaults);
    assert(self->defaults);
    if (path) {
        self->path = strdup(path);
        if (access(path, R_OK) != 0) {
            snprintf(err, errlen, "config %s: %s", path, strerror(errno));
            config_destroy(&self);
            return NULL;
        }
        err[0] = '\0';
        self->file = s_load_file(path, err, errlen);
        if (!self->file) {
            if (!err[0])
                snprintf(err, errlen, "config %s: not valid ZPL (4-space indents, 'key = value')", path);
            config_destroy(&self);
            return NULL;
        }
        if (s_check_known(self, self->file, "", false, err, errlen)) {
            config_destroy(&self);
            return NULL;
        }
    }
    const char *host = getenv(CONFIG_HOST_ENV);
    snprintf(self->host, sizeof self->host, "%s", host ? host : "");
    const char *run = self->host[0] ? config_child_get(self, "hosts", self->host, "run_dir") : NULL;
    const char *data = self->host[0] ? config_child_get(self, "hosts", self->host, "data_dir") : NULL;
    if (s_absolute(run ? run : config_get(self, "payguard/run_dir"), self->run_dir, sizeof self->run_dir) ||
        s_absolute(data ? data : config_get(self, "payguard/data_dir"), self->data_dir, sizeof self->data_dir)) {
        snprintf(err, errlen, "config: run_dir or data_dir path too long");
        config_destroy(&self);
        return NULL;
    }
    if (s_check_limits(self, err, errlen)) {
        config_destroy(&self);
        return NULL;
    }
    long parts;
    if (config_int(self, "payguard/partitions", CONFIG_MAX_INSTANCES, CONFIG_MAX_PARTITIONS, &parts, err, errlen)) {
        config_destroy(&self);
        return NULL;
    }
    for (int i = 0; i < CONFIG_NSTAGES; i++) {
        char key[64];
        long n;
        snprintf(key, sizeof key, "%s/instances", config_stages[i]);
        long max = i == CONFIG_NSTAGES - 1 ? 1 : CONFIG_MAX_INSTANCES; /* audit: one writer of the chain */
        if (config_int(self, key, 1, max, &n, err, errlen)) {
            config_destroy(&self);
            return NULL;
        }
    }
    if (s_check_hosts(self, err, errlen) || s_check_bounds(self, err, errlen) || s_check_log(self, err, errlen) ||
        refusals_exempt_check(config_get(self, "payguard/refusals/exempt"), err, errlen) ||
        s_check_http(self, err, errlen) || s_check_trace(self, err, errlen)) {
        config_destroy(&self);
        return NULL;
    }
    return self;
}

/* config_destroy - free and NULL */
void config_destroy(config_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    config_t *self = *self_p;
    zconfig_destroy(&self->defaults);
    zconfig_destroy(&self->file);
    free(self->path);
    free(self);
    *self_p = NULL;
}

const char *config_defaults_text(void)
{
    return s_defaults;
}
const char *config_path(const config_t *self)
{
    return self->path;
}
const char *config_run_dir(const config_t *self)
{
    return self->run_dir;
}
const char *config_data_dir(const config_t *self)
{
    return self->data_dir;
}

/* config_api_url - see config.h */
int config_api_url(const config_t *self, const char *stage, char *out, size_t outlen, char *err, size_t errlen)
{
    assert(self && stage && out && outlen > 0);
    char key[64];
    long port;
    snprintf(key, sizeof key, "%s/http_port", stage);
    if (config_int(self, key, 1, 65535, &port, err, errlen) != 0)
        return -1;
    snprintf(key, sizeof key, "%s/http_bind", stage);
    const char *host = config_get(self, key);
    if (!host || !*host || strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        host = "::1";
    if ((size_t) snprintf(out, outlen, strchr(host, ':') ? "http://[%s]:%ld" : "http://%s:%ld", host, port) >= outlen) {
        snprintf(err, errlen, "%s: the address of its API is too long", key);
        return -1;
    }
    return 0;
}

/* config_get - the file's value, else the default's, else NULL */
const char *config_get(const config_t *self, const char *path)
{
    if (self->file) {
        zconfig_t *node = zconfig_locate(self->file, path);
        if (node && zconfig_value(node))
            return zconfig_value(node); /* "" too: a file may empty a default */
    }
    zconfig_t *node = zconfig_locate(self->defaults, path);
    return node ? zconfig_value(node) : NULL;
}

/* s_section - the file's section at path if the file has it, else the default's */
static zconfig_t *s_section(const config_t *self, const char *path, bool *from_file)
{
    zconfig_t *node = self->file ? zconfig_locate(self->file, path) : NULL;
    if (from_file)
        *from_file = node != NULL;
    return node ? node : zconfig_locate(self->defaults, path);
}

/* config_children - see config.h */
size_t config_children(const config_t *self, const char *path, const char **names, size_t max, bool *from_file)
{
    zconfig_t *sec = s_section(self, path, from_file);
    size_t n = 0;
    for (zconfig_t *c = sec ? zconfig_child(sec) : NULL; c && n < max; c = zconfig_next(c))
        names[n++] = zconfig_name(c);
    return n;
}

/* config_child_get - a value below a freely named section, same source */
const char *config_child_get(const config_t *self, const char *path, const char *name, const char *key)
{
    zconfig_t *sec = s_section(self, path, NULL);
    char sub[256];
    snprintf(sub, sizeof sub, "%s%s%s", name, key && *key ? "/" : "", key ? key : "");
    zconfig_t *node = sec ? zconfig_locate(sec, sub) : NULL;
    return node ? zconfig_value(node) : NULL;
}

/* config_int - parse an integer setting and check its range */
int config_int(const config_t *self, const char *path, long min, long max, long *out, char *err, size_t errlen)
{
    const char *v = config_get(self, path);
    char *end = NULL;
    errno = 0;
    long n = v ? strtol(v, &end, 10) : 0;
    if (!v || !*v || errno || *end || n < min || n > max) {
        snprintf(err, errlen, "config: %s = '%s': want an integer in [%ld, %ld]", path, v ? v : "", min, max);
        return -1;
    }
    *out = n;
    return 0;
}

/* config_stage_index - position of a stage in the pipeline */
int config_stage_index(const char *stage)
{
    for (int i = 0; i < CONFIG_NSTAGES; i++)
        if (stage && strcmp(stage, config_stages[i]) == 0)
            return i;
    return -1;
}

/* config_next_stage - ingest->validate->triage->approve->execute, then none */
const char *config_next_stage(const char *stage)
{
    int i = config_stage_index(stage);
    return (i >= 0 && i < CONFIG_NSTAGES - 2) ? config_stages[i + 1] : NULL;
}

/* config_prev_stage - the producer feeding this stage's input */
const char *config_prev_stage(const char *stage)
{
    int i = config_stage_index(stage);
    return (i >= 1 && i < CONFIG_NSTAGES - 1) ? config_stages[i - 1] : NULL;
}

/* config_instances - how many instances of stage the group runs */
int config_instances(const config_t *self, const char *stage)
{
    char key[64];
    snprintf(key, sizeof key, "%s/instances", stage);
    const char *v = config_get(self, key);
    return v ? atoi(v) : 0;
}

/* config_partitions - payguard/partitions (checked by config_load) */
unsigned config_partitions(const config_t *self)
{
    return (unsigned) atoi(config_get(self, "payguard/partitions"));
}

/* config_expand - substitute {run} {data} {inst} {n} */
char *config_expand(const config_t *self, const char *tmpl, const char *stage, int index)
{
    char inst[48] = "";
    if (stage)
        snprintf(inst, sizeof inst, "%s.%d", stage, index);
    char num[16];
    snprintf(num, sizeof num, "%d", index);
    size_t cap = strlen(tmpl) + 1;
    const char *host = stage ? config_host_of(self, stage, index) : NULL;
    const char *addr = host ? config_child_get(self, "hosts", host, "address") : NULL;
    const char *names[] = {"{run}", "{data}", "{inst}", "{n}", "{host}"};
    const char *vals[] = {self->run_dir, self->data_dir, inst, num, addr ? addr : "127.0.0.1"};
    for (int i = 0; i < 5; i++)
        cap += strlen(vals[i]) * 4;
    char *out = malloc(cap + 64);
    assert(out);
    size_t n = 0;
    for (const char *p = tmpl; *p;) {
        int hit = -1;
        for (int i = 0; i < 5 && hit < 0; i++)
            if (strncmp(p, names[i], strlen(names[i])) == 0)
                hit = i;
        if (hit >= 0) {
            size_t l = strlen(vals[hit]);
            if (n + l >= cap)
                break;
            memcpy(out + n, vals[hit], l);
            n += l;
            p += strlen(names[hit]);
        } else {
            if (n + 1 >= cap)
                break;
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    return out;
}

/* config_input_endpoint - where instance index of stage binds its PULL */
char *config_input_endpoint(const config_t *self, const char *stage, int index)
{
    char key[64];
    snprintf(key, sizeof key, "%s/endpoint", stage);
    const char *t = config_get(self, key);
    return t ? config_expand(self, t, stage, index) : NULL;
}

/* config_ack_endpoint - where instance index of stage binds its ack PULL */
char *config_ack_endpoint(const config_t *self, const char *stage, int index)
{
    char key[64];
    snprintf(key, sizeof key, "%s/ack_endpoint", stage);
    return config_expand(self, config_get(self, key), stage, index);
}

/* config_journal_dir - <data_dir>/<stage>.<n> */
char *config_journal_dir(const config_t *self, const char *stage, int index)
{
    return config_expand(self, "{data}/{inst}", stage, index);
}

/* config_parse_instance - split "stage.N" */
int config_parse_instance(const char *inst, char stage[32], int *index)
{
    const char *dot = strrchr(inst, '.');
    if (!dot || dot == inst || (size_t) (dot - inst) >= 32 || !dot[1])
        return -1;
    char *end = NULL;
    long n = strtol(dot + 1, &end, 10);
    if (*end || n < 0 || n >= CONFIG_MAX_INSTANCES)
        return -1;
    memcpy(stage, inst, (size_t) (dot - inst));
    stage[dot - inst] = '\0';
    if (config_stage_index(stage) < 0)
        return -1;
    *index = (int) n;
    return 0;
}
