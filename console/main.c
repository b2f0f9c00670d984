/*++
 * NAME
 *	console - the ops console: the page where people see cases and decide
 * SYNOPSIS
 *	console [-c CONFIG] [-i 0]	(started by `payguard up` when console/enabled = yes, or systemd:
 *					payguard-console@0.service)
 * DESCRIPTION
 *	Serves the console's static page (console/www: index.html, app.js,
 *	app.css, pipeline.js, pipeline.css; no build step; one third-party
 *	asset, uPlot, from console/chart_dir) and passes its API calls through
 *	to the processes that own them, so the browser talks to one origin only:
 *	  /, /signin, /case/{id}, /ops, /audit,	index.html (app.js routes; also /?q=ID,
 *	  /pipeline				what the search box found, and
 *						/case/{id}?view=print, the printable
 *						record)
 *	  /static/NAME				an asset of www_dir
 *	  /static/uplot.min.js, uplot.min.css	uPlot's, from chart_dir (when there)
 *	  /api/pipeline				the console's own: PIPELINE below
 *	  /api/session				approve's GET /whoami + a CSRF token
 *	  /api/approvals..., /api/reviews...	approve's API (CONTRACT.md §3.1)
 *	  /api/cases..., /api/audit/verify	audit's API (§3.2; /api/cases?q=ID
 *						finds a case by any of its ids)
 *	  GET /healthz, GET /metrics		(no token; /metrics: the Bearer token
 *						payguard/metrics_token_sha256 hashes,
 *						when set: common/httpd.c)
 *	console/console.h lists every API route. The console holds no state and
 *	no credential of a person: each call carries the person's own Bearer
 *	token, which approve and audit check (an unknown token is their 401 and
 *	their access_denied record on the audit trail). A decision is made, and
 *	recorded, by approve exactly as from curl or `payguard approve`, with
 *	the person's address: each call to approve carries X-Payguard-Client,
 *	the browser's address (this console's TCP peer) sealed with the relay
 *	key for the call's Authorization (common/relay.h), and approve records
 *	it as client_ip and this console as via. approve believes the header
 *	only with that seal: anyone else sending it is recorded with their own
 *	address. Behind a proxy the TCP peer is the proxy.
 * PAGES
 *	Cases (filters, the Last column in plain words), a case (Export
 *	JSON: audit's answer and the last chain verification, downloaded by
 *	the page; Printable record: facts, decisions, actions, timeline in
 *	UTC, the chain), Ops review (its count in the navigation), Audit; a
 *	search box on every page (one match opens the case, several are
 *	listed, none says so). Times in the viewer's zone, UTC on hover.
 *	Tested in headless Chromium (tests/browser/console.mjs), at 375 px too.
 * PIPELINE
 *	GET /api/pipeline[?since=MS]: the Pipeline page's numbers (console/pipeline.h):
 *	every instance (up or down, uptime, restarts, events in and out per
 *	second, unacknowledged events per link and the oldest one's age,
 *	journal size and retention), every outside system (calls per second,
 *	error rate, p50/p99, breaker, in flight) and the end-to-end numbers,
 *	with their history. The console reads them from the group's files in
 *	its run_dir, which the master that started it shares: master.state
 *	(pid, start, restarts: the master's alone) and each instance's .stat
 *	(its pid, ready) and .prom (the samples every /metrics serves: most
 *	stages have no HTTP port to scrape). A sample every
 *	pipeline_sample_s, kept in a ring of pipeline_samples per series (at
 *	most PIPELINE_MAX_SERIES): memory bounded at start; since: only the
 *	samples after it (the page asks for what it lacks). Answered to a
 *	person approve knows (its GET /whoami says 200 for the Bearer token;
 *	401 otherwise, counted as a refusal): operational numbers, not case
 *	data, but the console shows nothing before sign-in. Under systemd,
 *	with no master.state, the instances are those with a .stat in run_dir,
 *	alive when its pid is; uptime and restarts are systemd's. When approve does
 *	not answer (within 1 s), a person it said yes to within
 *	pipeline_grace_s is still answered ("approve": "not answering"): an
 *	on-call engineer sees approve down on this page; anyone else gets
 *	502. Remembered: the SHA-256 of the token, never the token, 64 people
 *	at most (CONSOLE_KNOWN_MAX), in memory. Only this host's instances.
 * SIGN-IN
 *	The person pastes their approver token (approvers/<name>); the page
 *	keeps it in sessionStorage (gone with the tab) and sends it on every
 *	call. GET /api/session answers who they are, their roles and the CSRF
 *	token of the session.
 * SAFETY
 *	Every answer carries Content-Security-Policy (scripts and styles from
 *	this origin only, no inline script, no framing), X-Content-Type-Options,
 *	Referrer-Policy no-referrer, X-Frame-Options DENY and Cache-Control
 *	no-store. Case text is data: app.js renders it with textContent only.
 *	A POST needs X-CSRF-Token: HMAC-SHA256 over the session's Authorization
 *	value under a secret drawn at start (a restart draws a new one; the page
 *	asks again), and an Origin / Sec-Fetch-Site, when the browser sends them
 *	(it does on every POST), naming this server: a page elsewhere cannot
 *	make a signed-in browser decide. Bodies over 8 KiB are refused (413);
 *	only known query parameters are passed on.
 * SYSTEMD
 *	Under systemd (payguard-console@0.service, Type=notify) it says
 *	READY=1 once it serves, pings the watchdog from its signal wait and says
 *	STOPPING=1 at SIGTERM (common/sdnotify.h).
 * REFUSALS (common/refusals.h)
 *	An address whose /api/ requests keep being refused, 401 or 403 by the
 *	console itself (no bearer token, CSRF) or by approve or audit, is
 *	throttled: payguard/refusals/throttle_after of them within window_s,
 *	and every /api/ request from it is answered 429 with Retry-After for
 *	throttle_s, here, without reaching approve or audit (payguard/refusals/
 *	exempt: never). The console has no trail: approve and audit record the
 *	refusals they answered (as the console's address: keep it in exempt
 *	there); the console logs an address's first refusal of a window, the
 *	one that throttles it and a summary of the rest ("N refusals from X
 *	between T1 and T2"), and writes <run_dir>/console.0.prom every second
 *	(payguard_refusals_throttled_total, _aggregated_total,
 *	payguard_refusals_sources_throttled, and its server's
 *	payguard_http_deadline_closed_total, _limit_refused_total).
 * CONNECTIONS
 *	A thread per connection (common/httpd.c): a call waiting for approve
 *	or audit (console/timeout_ms at most, connect to answer) holds its own
 *	connection's thread and no other, so a hung audit does not hold up
 *	the calls to approve. At most console/http_max_per_address
 *	connections from one address (more are closed as they are accepted;
 *	behind a proxy everyone shares its address), 256 in all; a request
 *	not received and answered within console/http_deadline_s is cut.
 * FAILURE
 *	approve or audit not answering: 502 {"error"} naming which; the page
 *	says so and keeps polling. A missing www_dir or index.html stops the
 *	console at start (exit 1).
 * CONFIGURATION
 *	console/enabled, http_bind, http_port (8083), www_dir (console/www,
 *	relative to the directory payguard is started from), chart_dir (uPlot's
 *	uPlot.iife.min.js and uPlot.min.css, npm ci in console/vendor; missing:
 *	a warning, and the Pipeline page shows numbers without charts),
 *	pipeline_sample_s (5), pipeline_samples (720), pipeline_grace_s (600),
 *	timeout_ms (under
 *	http_deadline_s), http_max_per_address, http_deadline_s, relay_key_file
 *	(the key shared with approve, 32 random bytes made at first start with
 *	mode 0600 by whichever of the two starts first);
 *	payguard/refusals/window_s, throttle_after, throttle_s, exempt;
 *	approve/http_bind, http_port and audit/http_bind, http_port say where
 *	the backends are. approve/public_url should name this console as people
 *	reach it: Teams cards and tickets link to {public_url}/case/{id}.
 *--*/
#include <arpa/inet.h>
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "console.h"
#include "httpc.h"
#include "httpd.h"
#include "log.h"
#include "pipeline.h"
#include "relay.h"
#include "sdnotify.h"
#include "refusals.h"
#include "sealkey.h"

#define CONSOLE_MAX_ASSETS 32
#define CONSOLE_MAX_ASSET_BYTES (1024 * 1024)
#define CONSOLE_MAX_BODY 8192

static const char s_csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

typedef struct {
    char name[CONSOLE_ASSET_NAME_MAX];
    const char *type;
    char *data;
    size_t len;
} asset_t;

#define CONSOLE_READY_TIMEOUT_MS 1000 /* /readyz: how long approve or audit may take to answer */

typedef struct {
    asset_t assets[CONSOLE_MAX_ASSETS];
    size_t nassets;
    char approve_url[128], audit_url[128];
    long timeout_ms;
    unsigned char secret[CONSOLE_SECRET_BYTES];
    unsigned char relay_key[SEALKEY_BYTES]; /* seals the person's address for approve (relay.h) */
    const char *run_dir;
    _Atomic unsigned long long refused_csrf, proxied, backend_down;
    refusals_t *refusals;       /* refused requests per source: throttled, summed up in the log (refusals.h) */
    httpd_t *httpd;             /* the server (httpd.h), once it serves */
    pipeline_watch_t *pipeline; /* the Pipeline page's samples (pipeline.h) */
    long pipeline_grace_s;      /* a person approve knew within this long still sees it when approve is silent */
    pthread_mutex_t known_mu;
    console_known_t known; /* those people (console.h), under known_mu */
    bool charts;           /* uPlot's files were found in console/chart_dir */
} console_t;

/* request - a connection's body, gathered before the answer */
typedef struct {
    char *body;
    size_t len, cap;
    bool too_large, oom;
} request_t;

/* ------------------------------------------------------------ assets */

/* s_load_file - the file full into the next asset, served as name; -1
 * (logged) when it is not a regular file of at most 1 MiB or too many */
static int s_load_file(console_t *c, const char *full, const char *name)
{
    if (c->nassets == CONSOLE_MAX_ASSETS) {
        log_error("console: more than %d files to serve (%s)", CONSOLE_MAX_ASSETS, full);
        return -1;
    }
    FILE *f = fopen(full, "rb");
    struct stat sb;
    if (!f || fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > CONSOLE_MAX_ASSET_BYTES) {
        log_error("%s: %s", full, f ? "not a regular file of at most 1 MiB" : strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    asset_t *a = &c->assets[c->nassets];
    a->data = malloc((size_t) sb.st_size + 1);
    assert(a->data);
    a->len = fread(a->data, 1, (size_t) sb.st_size, f);
    fclose(f);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->type = console_content_type(name);
    c->nassets++;
    return 0;
}

/* s_load_assets - every servable file of dir into memory (at start: the
 * page never touches the disk again); -1 without index.html */
static int s_load_assets(console_t *c, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        log_error("console/www_dir %s: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char name[CONSOLE_ASSET_NAME_MAX], path[CONSOLE_ASSET_NAME_MAX];
        if (strlen(e->d_name) >= sizeof name - 8)
            continue;
        snprintf(path, sizeof path, "/static/%.*s", (int) (sizeof path - 9), e->d_name); /* fits: checked above */
        if (!console_page(path, name)) /* the same rule that serves it */
            continue;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", dir, name);
        if (s_load_file(c, full, name) != 0) {
            closedir(d);
            return -1;
        }
    }
    closedir(d);
    for (size_t i = 0; i < c->nassets; i++)
        if (strcmp(c->assets[i].name, "index.html") == 0) {
            log_info("console: %zu files from %s", c->nassets, dir);
            return 0;
        }
    log_error("console/www_dir %s has no index.html", dir);
    return -1;
}

/* s_load_charts - uPlot's script and style from dir (console/chart_dir,
 * npm ci in console/vendor) as /static/uplot.min.js and uplot.min.css;
 * without them the Pipeline page shows its numbers and says charts are
 * unavailable (c->charts false) */
static void s_load_charts(console_t *c, const char *dir)
{
    static const char *const files[2][2] = {{"uPlot.iife.min.js", CONSOLE_CHART_JS},
                                            {"uPlot.min.css", CONSOLE_CHART_CSS}};
    char full[2][4096];
    for (int i = 0; i < 2; i++) {
        snprintf(full[i], sizeof full[i], "%s/%s", dir, files[i][0]);
        if (access(full[i], R_OK) != 0) {
            log_warn("console/chart_dir: no %s (%s): the Pipeline page has no charts (sh scripts/install-deps.sh "
                     "installs uPlot)",
                     full[i], strerror(errno));
            return;
        }
    }
    size_t before = c->nassets;
    for (int i = 0; i < 2; i++)
        if (s_load_file(c, full[i], files[i][1]) != 0) {
            while (c->nassets > before)
                free(c->assets[--c->nassets].data);
            return;
        }
    c->charts = true;
    log_info("console: charts from %s", dir);
}

/* ------------------------------------------------------------ answers */

/* s_send - an answer with the console's security headers (and hname:
 * hvalue when hname is not NULL) */
static enum MHD_Result s_send(struct MHD_Connection *conn, unsigned status, const void *data, size_t len,
                              enum MHD_ResponseMemoryMode mode, const char *type, const char *hname, const char *hvalue)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *) data, mode);
    MHD_add_response_header(r, "Content-Type", type);
    if (hname)
        MHD_add_response_header(r, hname, hvalue);
    MHD_add_response_header(r, "Content-Security-Policy", s_csp);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cross-Origin-Opener-Policy", "same-origin");
    MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* s_json_header - obj (stolen) as the answer, with one more header (hname NULL: none) */
static enum MHD_Result s_json_header(struct MHD_Connection *conn, unsigned status, json_t *obj, const char *hname,
                                     const char *hvalue)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    assert(text);
    return s_send(conn, status, text, strlen(text), MHD_RESPMEM_MUST_FREE, "application/json", hname, hvalue);
}

/* s_json - obj (stolen) as the answer */
static enum MHD_Result s_json(struct MHD_Connection *conn, unsigned status, json_t *obj)
{
    return s_json_header(conn, status, obj, NULL, NULL);
}

/* s_error - {"error": why} */
static enum MHD_Result s_error(struct MHD_Connection *conn, unsigned status, const char *why)
{
    return s_json(conn, status, json_pack("{s:s}", "error", why));
}

/* ------------------------------------------------------------ refusals */

/* s_throttled - 429 + Retry-After: peer is throttled (refusals.h) */
static enum MHD_Result s_throttled(struct MHD_Connection *conn, long wait_s)
{
    char ra[24], why[128];
    snprintf(ra, sizeof ra, "%ld", wait_s);
    snprintf(why, sizeof why, "too many refused requests from this address: try again in %ld s", wait_s);
    return s_json_header(conn, MHD_HTTP_TOO_MANY_REQUESTS, json_pack("{s:s}", "error", why), "Retry-After", ra);
}

/* s_refused - a request of peer's answered 401 or 403 (here, or by approve
 * or audit): one more failure toward its throttle; logged when it is the
 * first of its window or starts the throttle, the rest in the window's
 * summary (s_log_summary) */
static void s_refused(console_t *c, const char *peer, const char *method, const char *url, const char *why)
{
    refusals_verdict_t v = refusals_note(c->refusals, peer, REFUSALS_FAILURE | REFUSALS_AGGREGATE);
    if (!v.record)
        return;
    char reason[REFUSALS_REASON_MAX], path[REFUSALS_TEXT_MAX];
    refusals_reason(&v, why, reason);
    refusals_escape(url, path, sizeof path);
    log_warn("refused %s %s from %s: %s", method, path, peer, reason);
}

/* s_log_summary - a window's repeated refusals, in the log (the console has
 * no trail: approve and audit record the refusals they answered) */
static int s_log_summary(const refusals_summary_t *s, void *arg)
{
    (void) arg;
    char text[REFUSALS_REASON_MAX];
    refusals_summary_text(s, text, sizeof text);
    log_warn("%s", text);
    return 0;
}

/* ------------------------------------------------------------ the API */

/* query - the passed-on query string being built */
typedef struct {
    char text[CONSOLE_PATH_MAX];
    size_t len;
    bool overflow;
} query_t;

/* s_query_arg - one known parameter onto the query (MHD iterator) */
static enum MHD_Result s_query_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void) kind;
    query_t *q = cls;
    if (!key || !value || !console_query_key_ok(key))
        return MHD_YES;
    char *enc = httpc_escape(value);
    int n = enc ? snprintf(q->text + q->len, sizeof q->text - q->len, "%c%s=%s", q->len ? '&' : '?', key, enc) : -1;
    free(enc);
    if (n < 0 || (size_t) n >= sizeof q->text - q->len)
        q->overflow = true;
    else
        q->len += (size_t) n;
    return MHD_YES;
}

/* s_relay - the person's address (peer) for approve, sealed for this
 * request's Authorization (relay.h): approve records it, and this console
 * as via */
static int s_relay(const console_t *c, struct MHD_Connection *conn, const char *peer, httpc_t *h)
{
    relay_t r = {.via = ""};
    snprintf(r.client, sizeof r.client, "%s", peer);
    if (!relay_addr_ok(r.client))
        return 0; /* nothing to say: approve records this console's address */
    relay_seal(c->relay_key, r.client, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"), r.seal);
    char value[RELAY_VALUE_MAX];
    relay_format(&r, value);
    return httpc_set_header(h, RELAY_HEADER, value);
}

/* s_readyz - GET /readyz: ready when approve and audit both answer their
 * /healthz (the console only passes calls on to them); 1 s each at most */
static enum MHD_Result s_readyz(console_t *c, struct MHD_Connection *conn)
{
    const char *urls[2] = {c->approve_url, c->audit_url}, *names[2] = {"approve", "audit"};
    char why[256] = "";
    for (int i = 0; i < 2 && !why[0]; i++) {
        httpc_t *h = httpc_new(urls[i], NULL, CONSOLE_READY_TIMEOUT_MS);
        httpc_resp_t resp = {.retry_after_ms = -1};
        if (!h || httpc_do(h, "GET", "/healthz", NULL, NULL, &resp) != 0 || resp.status != 200)
            snprintf(why, sizeof why, "%s does not answer at %.60s (%.120s)", names[i], urls[i],
                     resp.status     ? "an error status"
                     : resp.error[0] ? resp.error
                                     : "no answer");
        httpc_resp_free(&resp);
        httpc_destroy(&h);
    }
    return httpd_readyz(conn, !why[0], why);
}

/* s_csrf_refused - a POST without this console's origin or the session's
 * CSRF token: 403, counted as a refusal of peer's (s_refused); else NULL
 * and *rc untouched */
static bool s_csrf_refused(console_t *c, struct MHD_Connection *conn, const char *url, const char *auth,
                           const char *peer, enum MHD_Result *rc)
{
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    const char *site = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-Fetch-Site");
    const char *csrf = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-CSRF-Token");
    bool same = console_same_origin(origin, host, site), tok = console_csrf_ok(c->secret, auth, csrf);
    if (same && tok)
        return false;
    atomic_fetch_add(&c->refused_csrf, 1);
    s_refused(c, peer, "POST", url, !same ? "cross-origin" : "missing or wrong CSRF token");
    *rc = s_error(conn, MHD_HTTP_FORBIDDEN,
                  !same ? "csrf: the request did not come from this console's own page"
                        : "csrf: missing or stale X-CSRF-Token (sign in again)");
    return true;
}

/* s_pass_on - the call to route's backend, and its answer as ours (a 401
 * or 403 of the backend's counted as a refusal of peer's) */
static enum MHD_Result s_pass_on(console_t *c, struct MHD_Connection *conn, const console_route_t *route,
                                 const char *method, const char *url, const char *path, const char *token,
                                 const char *body, const char *peer)
{
    const char *base = route->backend == CONSOLE_APPROVE ? c->approve_url : c->audit_url;
    httpc_t *h = httpc_new(base, token, c->timeout_ms);
    if (!h)
        return s_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    if (route->backend == CONSOLE_APPROVE && s_relay(c, conn, peer, h) != 0) {
        httpc_destroy(&h);
        return s_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    httpc_resp_t resp;
    int rc = httpc_do(h, method, path, body, NULL, &resp);
    httpc_destroy(&h);
    atomic_fetch_add(&c->proxied, 1);
    const char *who = route->backend == CONSOLE_APPROVE ? "approve" : "audit";
    if (rc != 0 || resp.status == 0) {
        atomic_fetch_add(&c->backend_down, 1);
        char msg[384];
        snprintf(msg, sizeof msg, "%s is not answering (%s)", who, resp.error);
        httpc_resp_free(&resp);
        return s_error(conn, MHD_HTTP_BAD_GATEWAY, msg);
    }
    json_t *j = resp.body ? json_loadb(resp.body, resp.len, 0, NULL) : NULL;
    unsigned status = (unsigned) resp.status;
    httpc_resp_free(&resp);
    if (status == MHD_HTTP_UNAUTHORIZED || status == MHD_HTTP_FORBIDDEN)
        s_refused(c, peer, method, url,
                  status == MHD_HTTP_UNAUTHORIZED ? "unknown token (401 from the backend)"
                                                  : "refused (403 from the backend)");
    if (!j) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s answered %u without JSON", who, status);
        return s_error(conn, MHD_HTTP_BAD_GATEWAY, msg);
    }
    if (route->session && status == MHD_HTTP_OK) {
        char csrf[CONSOLE_CSRF_HEX + 1];
        console_csrf(c->secret, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"), csrf);
        json_object_set_new(j, "csrf", json_string(csrf));
    }
    return s_json(conn, status, j);
}

/* s_mono_ms - monotonic milliseconds */
static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* s_whoami - approve's status for token's GET /whoami (0: no answer, why
 * in err); a person it knew within pipeline_grace_s is asked with 1 s to
 * answer, not timeout_ms, and is still let in (*known) when it is silent */
static long s_whoami(console_t *c, const char *token, bool *known, char *err, size_t errlen)
{
    int64_t now = s_mono_ms();
    pthread_mutex_lock(&c->known_mu);
    *known = console_known_recent(&c->known, token, now, c->pipeline_grace_s * 1000);
    pthread_mutex_unlock(&c->known_mu);
    long wait_ms = *known && c->timeout_ms > CONSOLE_READY_TIMEOUT_MS ? CONSOLE_READY_TIMEOUT_MS : c->timeout_ms;
    httpc_t *h = httpc_new(c->approve_url, token, wait_ms);
    httpc_resp_t resp = {.retry_after_ms = -1};
    int rc = h ? httpc_do(h, "GET", "/whoami", NULL, NULL, &resp) : -1;
    httpc_destroy(&h);
    long status = rc == 0 ? resp.status : 0;
    snprintf(err, errlen, "%s", resp.error[0] ? resp.error : "no answer");
    httpc_resp_free(&resp);
    pthread_mutex_lock(&c->known_mu);
    if (status == MHD_HTTP_OK)
        console_known_note(&c->known, token, now);
    else if (status == MHD_HTTP_UNAUTHORIZED)
        console_known_forget(&c->known, token);
    pthread_mutex_unlock(&c->known_mu);
    return status;
}

/* s_pipeline - GET /api/pipeline: the group's samples (pipeline.h), for a
 * person approve knows (its GET /whoami answers 200 for the token), or knew
 * within console/pipeline_grace_s when it does not answer ("approve":
 * "not answering" then): the numbers are operational, not case data, but
 * the console shows nothing to someone who has not signed in */
static enum MHD_Result s_pipeline(console_t *c, struct MHD_Connection *conn, const char *method, const char *peer)
{
    if (strcmp(method, "GET") != 0)
        return s_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /api/pipeline");
    const char *token = console_bearer(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"));
    if (!token) {
        s_refused(c, peer, method, "/api/pipeline", "no bearer token");
        return httpd_unauthorized(conn);
    }
    char err[256], msg[384];
    bool known;
    long status = s_whoami(c, token, &known, err, sizeof err);
    if (status == MHD_HTTP_UNAUTHORIZED) {
        s_refused(c, peer, method, "/api/pipeline", "unknown token (401 from the backend)");
        return s_error(conn, MHD_HTTP_UNAUTHORIZED, "unknown token");
    }
    if (status != MHD_HTTP_OK && !(status == 0 && known)) {
        snprintf(msg, sizeof msg, "approve is not answering: cannot check your token (%s)", err);
        return s_error(conn, MHD_HTTP_BAD_GATEWAY, msg);
    }
    const char *since = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "since");
    char *end = NULL;
    long long since_ms = since ? strtoll(since, &end, 10) : 0;
    if (since && (end == since || *end || since_ms < 0))
        return s_error(conn, MHD_HTTP_BAD_REQUEST, "since: the unix milliseconds of the last sample the page has");
    json_t *j = pipeline_watch_json(c->pipeline, since_ms);
    json_object_set_new(j, "charts", json_boolean(c->charts));
    json_object_set_new(j, "approve", json_string(status == MHD_HTTP_OK ? "answering" : "not answering"));
    return s_json(conn, MHD_HTTP_OK, j);
}

/* s_api - pass an /api/ call through to approve or audit; a source
 * throttled after repeated refusals gets 429 first (refusals.h) */
static enum MHD_Result s_api(console_t *c, struct MHD_Connection *conn, const char *url, const char *method,
                             request_t *req)
{
    char peer[REFUSALS_SOURCE_MAX];
    httpd_peer(conn, peer, sizeof peer);
    long wait_s = refusals_throttled(c->refusals, peer);
    if (wait_s)
        return s_throttled(conn, wait_s);
    if (strcmp(url, "/api/pipeline") == 0)
        return s_pipeline(c, conn, method, peer);
    console_route_t route;
    char why[128];
    int rc = console_api_route(method, url, &route, why, sizeof why);
    if (rc != 0)
        return s_error(conn, rc == 405 ? MHD_HTTP_METHOD_NOT_ALLOWED : MHD_HTTP_NOT_FOUND, why);
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    const char *token = console_bearer(auth);
    if (!token) { /* none, or not a token (a space, a control byte): nothing to pass on */
        s_refused(c, peer, method, url, "no bearer token");
        return httpd_unauthorized(conn);
    }
    enum MHD_Result refused;
    if (strcmp(method, "POST") == 0) {
        if (req->too_large)
            return s_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "body over 8 KiB");
        if (s_csrf_refused(c, conn, url, auth, peer, &refused))
            return refused;
    }
    query_t q = {.len = 0};
    if (strcmp(method, "GET") == 0)
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, s_query_arg, &q);
    if (q.overflow)
        return s_error(conn, MHD_HTTP_URI_TOO_LONG, "query too long");
    char path[2 * CONSOLE_PATH_MAX];
    snprintf(path, sizeof path, "%s%s", route.path, q.text);
    const char *body = strcmp(method, "POST") == 0 ? (req->body ? req->body : "{}") : NULL;
    return s_pass_on(c, conn, &route, method, url, path, token, body, peer);
}

/* s_answer - one request */
static enum MHD_Result s_answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void) version;
    console_t *c = cls;
    request_t *req = *con_cls;
    if (!req) {
        req = calloc(1, sizeof *req);
        if (!req)
            return MHD_NO;
        *con_cls = req;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!req->too_large)
            httpc_buf_append(&req->body, &req->len, &req->cap, CONSOLE_MAX_BODY, upload, *upload_size, &req->too_large,
                             &req->oom);
        *upload_size = 0;
        return req->oom ? MHD_NO : MHD_YES;
    }
    if (strcmp(url, "/healthz") == 0)
        return s_json(conn, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
    if (strcmp(url, "/readyz") == 0)
        return s_readyz(c, conn);
    if (strncmp(url, "/api/", 5) == 0)
        return s_api(c, conn, url, method, req);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return s_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "pages are read with GET");
    char name[CONSOLE_ASSET_NAME_MAX];
    if (console_page(url, name))
        for (size_t i = 0; i < c->nassets; i++)
            if (strcmp(c->assets[i].name, name) == 0)
                return s_send(conn, MHD_HTTP_OK, c->assets[i].data, c->assets[i].len, MHD_RESPMEM_PERSISTENT,
                              c->assets[i].type, NULL, NULL);
    return s_error(conn, MHD_HTTP_NOT_FOUND, "no such page");
}

/* s_completed - free a request */
static void s_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void) cls;
    (void) conn;
    (void) toe;
    request_t *req = *con_cls;
    if (req) {
        free(req->body);
        free(req);
        *con_cls = NULL;
    }
}

/* ------------------------------------------------------------ start */

/* s_http - the console on console/http_bind:http_port, a thread per
 * connection: a call waiting on approve or audit (at most timeout_ms)
 * holds its own connection's thread, never the others' (httpd.h: the
 * limits every port has; GET /metrics) */
static httpd_t *s_http(console_t *c, const config_t *cfg)
{
    char err[256];
    httpd_opts_t o = {.name = "console",
                      .listen_fd = -1, /* console/http_bind, http_port */
                      .threads = 0,
                      .max_connections = CONFIG_HTTP_CONNECTIONS,
                      .answer = s_answer,
                      .completed = s_completed,
                      .cls = c};
    httpd_t *h = httpd_serve(cfg, "console", &o, err, sizeof err);
    if (!h) {
        log_error("config: console/http_bind, http_port: cannot serve the console: %s", err);
        return NULL;
    }
    log_info("console: at most %u connections from one address, %u in all, each request within %u s", o.max_per_address,
             o.max_connections, o.deadline_s);
    return h;
}

/* s_write_metrics - <run_dir>/console.0.prom: the console's refusal
 * numbers and its server's cut and refused connections, for the group's
 * /metrics (metrics_collect) */
static void s_write_metrics(console_t *c)
{
    refusals_stats_t rs;
    refusals_stats(c->refusals, &rs);
    uint64_t cut = 0, refused = 0;
    if (c->httpd)
        httpd_stats(c->httpd, &cut, &refused);
    char path[CONFIG_PATH_MAX + 32], tmp[CONFIG_PATH_MAX + 40];
    snprintf(path, sizeof path, "%s/console.0.prom", c->run_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f,
            "payguard_refusals_throttled_total{instance=\"console.0\"} %llu\n"
            "payguard_refusals_aggregated_total{instance=\"console.0\"} %llu\n"
            "payguard_refusals_sources_throttled{instance=\"console.0\"} %zu\n"
            "payguard_http_deadline_closed_total{instance=\"console.0\"} %llu\n"
            "payguard_http_limit_refused_total{instance=\"console.0\"} %llu\n",
            (unsigned long long) rs.throttled, (unsigned long long) rs.aggregated, rs.throttled_now,
            (unsigned long long) cut, (unsigned long long) refused);
    if (fclose(f) == 0)
        rename(tmp, path);
}

/* s_serve - until SIGTERM or SIGINT (in set, blocked): once a second the
 * refusal summaries due into the log and the metrics file (every summary
 * at the signal); under systemd, READY=1 now that the port is served,
 * WATCHDOG=1 at each turn of this loop (at least as often as it must) and
 * STOPPING=1 at the end (sdnotify.h); the signal */
static int s_serve(console_t *c, const sigset_t *set)
{
    sdnotify_send("READY=1");
    sdnotify_watchdog_t wd;
    sdnotify_watchdog_init(&wd, 0);
    int64_t wait_ms = wd.every_ms && wd.every_ms < 1000 ? wd.every_ms : 1000;
    int sig;
    do {
        struct timespec to = {(time_t) (wait_ms / 1000), (long) (wait_ms % 1000) * 1000000L};
        sig = sigtimedwait(set, NULL, &to);
        if (wd.every_ms)
            sdnotify_send("WATCHDOG=1");
        refusals_flush(c->refusals, sig >= 0, s_log_summary, NULL);
        s_write_metrics(c);
        pipeline_watch_tick(c->pipeline, s_mono_ms());
    } while (sig < 0);
    sdnotify_send("STOPPING=1");
    return sig;
}

/* s_load - the page's files, the relay key shared with approve and the
 * CSRF secret; 0, or -1 (logged) */
static int s_load(console_t *c, const config_t *cfg)
{
    char err[512];
    char *www = config_expand(cfg, config_get(cfg, "console/www_dir"), "console", 0);
    int rc = s_load_assets(c, www);
    free(www);
    if (rc != 0)
        return -1;
    char *charts = config_expand(cfg, config_get(cfg, "console/chart_dir"), "console", 0);
    s_load_charts(c, charts);
    free(charts);
    char *rk = config_expand(cfg, config_get(cfg, "console/relay_key_file"), "console", 0);
    rc = sealkey_file(rk, "relay key (console/relay_key_file)", c->relay_key, err, sizeof err);
    free(rk);
    if (rc != 0) {
        log_error("%s", err);
        return -1;
    }
    if (RAND_bytes(c->secret, sizeof c->secret) != 1) {
        log_error("no random bytes for the CSRF secret");
        return -1;
    }
    return 0;
}

/* s_stop - stop serving, say what was done, let go */
static void s_stop(console_t *c, int sig)
{
    log_info("console stopping (signal %d): %llu calls passed on, %llu refused (CSRF or origin), %llu backend failures",
             sig, (unsigned long long) c->proxied, (unsigned long long) c->refused_csrf,
             (unsigned long long) c->backend_down);
    httpd_stop(&c->httpd);
    refusals_flush(c->refusals, true, s_log_summary, NULL); /* what came in while it stopped */
    refusals_destroy(&c->refusals);
    pipeline_watch_destroy(&c->pipeline);
    for (size_t i = 0; i < c->nassets; i++)
        free(c->assets[i].data);
    OPENSSL_cleanse(c->secret, sizeof c->secret);
    OPENSSL_cleanse(c->relay_key, sizeof c->relay_key);
}

int main(int argc, char **argv)
{
    const char *cfg_path;
    int index, status;
    log_init("console.0", "info", NULL);
    if (!config_main_opts(argc, argv, "console", true, &cfg_path, &index, &status))
        return status;
    char err[512] = "";
    config_t *cfg = config_load(cfg_path, err, sizeof err);
    if (!cfg) {
        log_error("%s", err);
        return 2;
    }
    log_init("console.0", config_get(cfg, "payguard/log_level"), config_get(cfg, "payguard/log_format"));
    static console_t c;
    long port;
    refusals_opts_t ro;
    if (config_bounded(cfg, "console/http_port", &port, err, sizeof err) ||
        config_bounded(cfg, "console/timeout_ms", &c.timeout_ms, err, sizeof err) ||
        config_api_url(cfg, "approve", c.approve_url, sizeof c.approve_url, err, sizeof err) ||
        config_api_url(cfg, "audit", c.audit_url, sizeof c.audit_url, err, sizeof err) ||
        refusals_config(cfg, &ro, err, sizeof err) || !(c.refusals = refusals_new(&ro, NULL, NULL, err, sizeof err))) {
        log_error("%s", err);
        config_destroy(&cfg);
        return 2;
    }
    if (s_load(&c, cfg) != 0) {
        config_destroy(&cfg);
        return 1;
    }
    c.run_dir = config_run_dir(cfg);
    long sample_s, samples;
    if (config_bounded(cfg, "console/pipeline_sample_s", &sample_s, err, sizeof err) ||
        config_bounded(cfg, "console/pipeline_samples", &samples, err, sizeof err) ||
        config_bounded(cfg, "console/pipeline_grace_s", &c.pipeline_grace_s, err, sizeof err)) {
        log_error("%s", err);
        config_destroy(&cfg);
        return 2;
    }
    c.pipeline = pipeline_watch_new(c.run_dir, sample_s, samples);
    pthread_mutex_init(&c.known_mu, NULL);
    assert(c.pipeline);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    c.httpd = s_http(&c, cfg);
    if (!c.httpd) {
        config_destroy(&cfg);
        return 1;
    }
    log_info("console on http://%s:%ld/ (approve %s, audit %s)", config_get(cfg, "console/http_bind"), port,
             c.approve_url, c.audit_url);
    s_stop(&c, s_serve(&c, &set));
    config_destroy(&cfg);
    return 0;
}
