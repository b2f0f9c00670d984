/*++
 * NAME
 *	pg-sandbox - one local process standing in for every outside system
 * SYNOPSIS
 *	pg-sandbox [-c CONFIG] [-i 0]	(started by `payguard up` when sandbox/enabled = yes)
 * DESCRIPTION
 *	Serves, on one port, faithful-enough emulations of the systems of
 *	CONTRACT.md §2, so the pipeline and its tests run with nothing else;
 *	a real deployment points the same outside/... URLs at the real systems.
 *	  /payments     payments API (§2.1): payouts, holds, releases,
 *	                beneficiary holds, payments, comms blocks
 *	  /ledger       append-only ledger (§2.2): GET /entries?ref=, POST /entries
 *	  /psp          Stripe-like read API (§2.3): /v1/refunds/{id}, /v1/payouts/{id}
 *	  /jira         Jira REST v2: create issue, comment, get issue, list
 *	                comments, search (JQL: labels = "x" [AND labels = "y"])
 *	  /servicenow   Table API: POST /api/now/table/incident, GET one, query
 *	                (sysparm_query field=value[^field=value], sysparm_limit)
 *	  /teams        Teams Workflows webhook: POST /teams/webhook (Adaptive Cards)
 *	  /llm          OpenAI-compatible POST /v1/chat/completions (json_schema answers)
 *	  /otlp         an OpenTelemetry collector: POST /otlp/v1/traces (OTLP/HTTP
 *	                JSON) keeps the spans, GET /_sandbox/spans lists them (otlp.c)
 *	  /_sandbox     the test fixture: calls log (with each call's traceparent),
 *	                faults, seed, reset, state, LLM override
 *	  /_sandbox/adyen/notify  plays Adyen: signs the notification items it is
 *	                given (HMAC-SHA256, its own copy of the key file) and POSTs
 *	                them to ingest's /webhooks/adyen, optionally with basic
 *	                auth; answers what ingest said (adyen.c)
 *	Each system's file (payments.c, ledger.c, ...) documents its calls and
 *	answers; control.c documents /_sandbox; http.c the order of checks.
 * AUTH AND IDEMPOTENCY
 *	Every call except /teams and /_sandbox needs "Authorization: Bearer
 *	<token>" with a token of sandbox/tokens_file (401 {"error":"unauthorized"});
 *	a read token may only GET (403 {"error":"read-only token"}), except on
 *	/llm. Every POST to /payments, /ledger and /psp needs an Idempotency-Key
 *	(400 without). Jira and ServiceNow, like the real ones, neither require
 *	nor honour it: a create sent twice opens two tickets (payguard searches
 *	before it creates: common/ticket.h). Keys are kept per system with a SHA-256 of method, path,
 *	query and body: the same key with the same request replays the stored
 *	status and body (the ledger's 201 replays as 200, same id; header
 *	Idempotent-Replayed: true); with a different request it is 422 (Stripe's
 *	rule). Only 2xx answers are stored: a refused request may be corrected
 *	and sent again under its key.
 * FAULTS
 *	POST /_sandbox/faults {"system","method","path_prefix","status","count",
 *	"delay_ms","retry_after_s","after_effect"}: the next count matching calls
 *	(oldest fault first) answer status instead (no state change; 0 = answer
 *	normally; with after_effect true, a POST takes effect first and its
 *	answer is replaced by status: an answer lost after the work was done),
 *	after delay_ms (the answer is computed first, then held back: a client
 *	that times out has still caused the effect, as in real life), with
 *	Retry-After when retry_after_s > 0. Faulted calls are in the calls log
 *	with the injected status and their fault_id.
 * SEED (seed.c, loaded when the database is created and on /_sandbox/reset)
 *	payouts   P-10492 paid 1250000 USD B-5521   PSP po_10492 failed account_closed
 *	          P-20931 paid 7500000 USD B-6610   PSP po_20931 failed insufficient_funds
 *	          P-00417 paid  180000 USD B-1203   PSP po_00417 failed invalid_account_number
 *	          P-31000 reversed 250000 EUR B-7788 PSP po_31000 failed account_frozen
 *	payments  pay_9 5000 USD cus_1 low refunded 1850; pay_12 12000 USD cus_2 medium
 *	          refunded 12000; pay_31 8000 USD cus_3 low refunded 3000; pay_44 9900 EUR
 *	          cus_4 high flagged refunded 2500; pay_50 20000 USD cus_5 low refunded 0
 *	refunds   rf_123 pay_9/pi_9 1850 usd succeeded; rf_456 pay_12/pi_12 12000 usd
 *	          failed; rf_789 pay_31/pi_31 3000 usd pending; rf_900 pay_44/pi_44
 *	          2500 eur succeeded
 *	ledger    payout_paid for the four payouts, payout_reversal for P-31000;
 *	          refund_initiated for each refund; refund_succeeded for rf_456 only
 *	          (rf_123 lacks its refund_succeeded; rf_456 contradicts the PSP)
 * PERSISTENCE
 *	One SQLite file (sandbox/db, WAL): state, idempotency keys, faults and
 *	the calls log (newest 100,000 calls) survive restarts.
 * BOUNDS
 *	Bodies <= 1 MiB (413), ids <= 128 characters, Idempotency-Key <= 255,
 *	fault delays <= 10 minutes, calls log bodies kept up to 64 KiB each.
 * FAILURE
 *	Bad input gets a 4xx with a precise reason and the sandbox goes on. A
 *	database error answers 500 and is logged. A bad configuration or
 *	tokens file exits 2 before listening. SIGTERM/SIGINT: answer delayed
 *	calls at once, stop the HTTP server, close the database, exit 0.
 * SECURITY
 *	A test fixture: /_sandbox has no auth, so bind it to loopback only
 *	(the default). Tokens are compared in constant time and never logged.
 * CONFIGURATION
 *	sandbox/bind, port, db ({data} expands), tokens_file (lines "read
 *	<token>" / "write <token>", # comments; a relative path is relative to
 *	the working directory), adyen_hmac_file (the sandbox's own copy of the
 *	Adyen HMAC keys, hex, one a line), adyen_notify_url (empty: ingest's
 *	/webhooks/adyen on loopback, from ingest/http_port); payguard/log_level,
 *	log_format, data_dir.
 *--*/
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "config.h"
#include "log.h"
#include "sandbox.h"

#define SANDBOX_THREADS 4
/* SANDBOX_CONNS - connections at once: the outside systems it stands for
 * take each stage's outside/max_inflight (512 by default) per system and
 * instance: validate reads 3 systems and execute writes to 4, so 3
 * instances of each reach 10,752 at once. Beyond the limit connections wait
 * unaccepted and calls time out (make bench-scale saw a Teams POST time out
 * and its case go to ops review at 8,192) */
#define SANDBOX_CONNS 16384

/* s_raise_nofile - room for SANDBOX_CONNS descriptors, as far as the hard
 * limit allows (MHD refuses connections beyond the soft one) */
static void s_raise_nofile(void)
{
    struct rlimit rl;
    rlim_t need = SANDBOX_CONNS + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        return;
    struct rlimit up = {.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max,
                        .rlim_max = rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &up) == 0)
        rl.rlim_cur = up.rlim_cur;
    if (rl.rlim_cur < need)
        log_warn("open-file limit %llu: fewer than %d connections at once", (unsigned long long) rl.rlim_cur,
                 SANDBOX_CONNS);
}

/* s_load_tokens - read "read <token>" / "write <token>" lines; -1 + err */
static int s_load_tokens(sbx_sandbox_t *sb, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "sandbox/tokens_file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[512];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, errlen, "%s line %d: longer than %zu characters", path, lineno, sizeof line - 2);
            fclose(f);
            return -1;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char kind[16], token[300], extra[2];
        int n = sscanf(line, "%15s %299s %1s", kind, token, extra);
        if (n <= 0)
            continue;
        bool read_kind = strcmp(kind, "read") == 0, write_kind = strcmp(kind, "write") == 0;
        if (n != 2 || (!read_kind && !write_kind) || strlen(token) > 256) {
            snprintf(err, errlen, "%s line %d: want 'read <token>' or 'write <token>' (tokens up to 256 characters)",
                     path, lineno);
            fclose(f);
            return -1;
        }
        if (sb->ntokens == SBX_MAX_TOKENS) {
            snprintf(err, errlen, "%s: more than %d tokens", path, SBX_MAX_TOKENS);
            fclose(f);
            return -1;
        }
        sb->tokens[sb->ntokens].kind = read_kind ? TOKEN_READ : TOKEN_WRITE;
        memcpy(sb->tokens[sb->ntokens].token, token, strlen(token) + 1); /* <= 256, checked above */
        sb->ntokens++;
    }
    fclose(f);
    if (sb->ntokens == 0)
        log_warn("%s holds no tokens: every authenticated call will be 401", path);
    return 0;
}

/* s_sockaddr - bind address and port into ss; -1 if not an IP address */
static int s_sockaddr(const char *addr, long port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *) ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *) ss;
    if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t) port);
        return 0;
    }
    if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t) port);
        return 0;
    }
    return -1;
}

/* s_mkdir - create a directory of the group and its parents if missing */
static int s_mkdir(const char *dir)
{
    char buf[CONFIG_PATH_MAX + 1];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST) {
            log_error("cannot create %s: %s", buf, strerror(errno));
            return -1;
        }
        *p = c;
        if (!c)
            return 0;
    }
}

/* s_adyen_config - where /_sandbox/adyen/notify sends, and its key file:
 * sandbox/adyen_notify_url, or ingest's port on loopback */
static int s_adyen_config(sbx_sandbox_t *sb, const config_t *cfg)
{
    const char *url = config_get(cfg, "sandbox/adyen_notify_url"), *bind = config_get(cfg, "ingest/http_bind");
    char *keys = config_expand(cfg, config_get(cfg, "sandbox/adyen_hmac_file"), "sandbox", 0);
    long port = 0;
    char err[256];
    int rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1; /* before any thread: adyen.c's client */
    if (rc == 0 && url && *url) {
        rc = snprintf(sb->adyen_url, sizeof sb->adyen_url, "%s", url) >= (int) sizeof sb->adyen_url ? -1 : 0;
    } else if (rc == 0 && config_bounded(cfg, "ingest/http_port", &port, err, sizeof err) == 0) {
        bool any = !bind || !*bind || strcmp(bind, "0.0.0.0") == 0 || strcmp(bind, "::") == 0;
        bool v6 = !any && strchr(bind, ':');
        snprintf(sb->adyen_url, sizeof sb->adyen_url, "http://%s%s%s:%ld/webhooks/adyen", v6 ? "[" : "",
                 any ? "127.0.0.1" : bind, v6 ? "]" : "", port);
    } else {
        rc = -1;
    }
    if (!keys || snprintf(sb->adyen_key_file, sizeof sb->adyen_key_file, "%s", keys) >= (int) sizeof sb->adyen_key_file)
        rc = -1;
    free(keys);
    if (rc != 0)
        log_error("config: sandbox/adyen_notify_url or adyen_hmac_file is too long, or ingest/http_port is bad");
    return rc;
}

/* main - configure, open the store, serve until SIGTERM/SIGINT, stop cleanly */
int main(int argc, char **argv)
{
    const char *cfg_path;
    int index, status;
    log_init("sandbox.0", "info", NULL);
    if (!config_main_opts(argc, argv, "pg-sandbox", true, &cfg_path, &index, &status))
        return status;
    char err[512] = "";
    config_t *cfg = config_load(cfg_path, err, sizeof err);
    if (!cfg) {
        log_error("%s", err);
        return 2;
    }
    log_init("sandbox.0", config_get(cfg, "payguard/log_level"), config_get(cfg, "payguard/log_format"));
    long port;
    struct sockaddr_storage ss;
    const char *bind_addr = config_get(cfg, "sandbox/bind");
    if (config_bounded(cfg, "sandbox/port", &port, err, sizeof err)) {
        log_error("%s", err);
        config_destroy(&cfg);
        return 2;
    }
    if (s_sockaddr(bind_addr, port, &ss) != 0) {
        log_error("config: sandbox/bind '%s' is not an IPv4 or IPv6 address", bind_addr);
        config_destroy(&cfg);
        return 2;
    }
    static sbx_sandbox_t sb;
    char *tokens = config_expand(cfg, config_get(cfg, "sandbox/tokens_file"), "sandbox", 0);
    int trc = s_load_tokens(&sb, tokens, err, sizeof err);
    free(tokens);
    if (trc != 0) {
        log_error("%s", err);
        config_destroy(&cfg);
        return 2;
    }
    if (s_adyen_config(&sb, cfg) != 0) {
        config_destroy(&cfg);
        return 2;
    }
    if (s_mkdir(config_data_dir(cfg))) {
        config_destroy(&cfg);
        return 1;
    }
    char *db = config_expand(cfg, config_get(cfg, "sandbox/db"), "sandbox", 0);
    sb.store = sbx_store_open(db, err, sizeof err);
    if (!sb.store) {
        log_error("%s", err);
        free(db);
        config_destroy(&cfg);
        return 1;
    }

    /* signals are taken by sigwait below: block them before any thread starts */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    s_raise_nofile();
    sb.delay = sbx_delay_new();
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_Daemon *httpd =
        sb.delay ? MHD_start_daemon(flags, (uint16_t) port, NULL, NULL, http_answer, &sb, MHD_OPTION_SOCK_ADDR,
                                    (struct sockaddr *) &ss, MHD_OPTION_THREAD_POOL_SIZE, (unsigned) SANDBOX_THREADS,
                                    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) 60, MHD_OPTION_CONNECTION_LIMIT,
                                    (unsigned) SANDBOX_CONNS, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) 64 * 1024,
                                    MHD_OPTION_NOTIFY_COMPLETED, sbx_http_completed, &sb, MHD_OPTION_END)
                 : NULL;
    if (!httpd) {
        log_error("cannot serve HTTP on %s:%ld: %s", bind_addr, port, strerror(errno));
        sbx_delay_destroy(&sb.delay);
        sbx_store_close(&sb.store);
        free(db);
        config_destroy(&cfg);
        return 1;
    }
    log_info("listening on http://%s:%ld (payments ledger psp jira servicenow teams llm _sandbox), db %s, %d tokens",
             bind_addr, port, db, sb.ntokens);
    free(db);

    int sig = 0;
    sigwait(&set, &sig);
    log_info("signal %d: stopping", sig);
    if (sbx_delay_stop(sb.delay) > 0)
        usleep(200 * 1000); /* let the resumed, delayed answers go out */
    MHD_stop_daemon(httpd);
    sbx_delay_destroy(&sb.delay);
    sbx_store_close(&sb.store);
    config_destroy(&cfg);
    log_info("stopped cleanly");
    return 0;
}
