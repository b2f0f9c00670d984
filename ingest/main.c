/*++
 * NAME
 *	ingest - receive PSP webhooks and record every receipt durably
 * SYNOPSIS
 *	ingest [-c CONFIG] [-i 0]	(started by `payguard up`, or systemd: payguard-ingest@0.service)
 * DESCRIPTION
 *	Serves, with libmicrohttpd (epoll, a thread pool, started by
 *	common/httpd.c with the limits every port has: at most
 *	ingest/http_max_per_address connections from one address, more are
 *	closed unanswered as they are accepted; each request received and
 *	answered within ingest/http_deadline_s, else its connection is cut):
 *	  POST /webhooks/stripe     Stripe events (Stripe-Signature header)
 *	  POST /webhooks/standard   Standard Webhooks (webhook-id/-timestamp/-signature)
 *	  POST /webhooks/adyen      Adyen standard notifications (JSON batches,
 *	                            each item HMAC-signed inside the body; optional
 *	                            HTTP basic auth: ingest/httpauth.c)
 *	  POST /fetched/stripe      a Stripe event `payguard catch-up stripe` read from
 *	                            Stripe's Events API (Authorization: Bearer, the
 *	                            token ingest/fetch_token_sha256 hashes; common/bearer.c):
 *	                            recorded like a webhook, endpoint "stripe_fetched"
 *	  GET  /metrics             the group's Prometheus counters (common/httpd.c;
 *	                            with payguard/metrics_token_sha256 set, only
 *	                            for that Bearer token, else 401)
 *	  GET  /healthz             200 while the instance runs
 *	Each accepted POST becomes one "receipt" event: the raw body (bytes as
 *	received), every request header field (names lower-cased; a field sent
 *	several times merged into one, values joined with ", " in the order
 *	received, RFC 9110 §5.3; a value kept, redacted or hashed: SECURITY),
 *	the peer address, the endpoint and the receive time. A request is recorded whole or refused: never with some
 *	of its fields left out. The receipt is appended to the journal and the request is
 *	suspended; the stage loop fdatasyncs once for every receipt appended
 *	since its last sync (group commit), then resumes each request with
 *	202 {"receipt_id":"rcpt_..."} (Adyen: 200, text/plain "[accepted]", as
 *	Adyen requires, with the receipt id in a Payguard-Receipt-Id header)
 *	and sends the receipts on to validate and audit. A 2xx therefore
 *	always means "on disk". The port's socket is the master's, handed
 *	down; under systemd the instance binds it itself, with SO_REUSEPORT
 *	when several run (common/listenfd.h).
 *
 *	ingest judges nothing about the content: signature, source address,
 *	schema and idempotency verdicts are validate's, visible in the audit
 *	trail and metrics, never as an HTTP status (no oracle for forgers).
 * RESPONSES (CONTRACT.md §1.3)
 *	202 recorded (duplicates and events validate will reject included);
 *	404 unknown path (and /fetched/stripe while ingest/fetch_token_sha256 is
 *	empty); 401 /fetched/stripe without the right Bearer token; 405 not
 *	POST on a webhook path; 431 more than 64
 *	header fields, more than 8,192 bytes of field names and values, or a
 *	name over 128 bytes (ingest/headers.c); 400 a name that is not an HTTP
 *	token, Content-Length fields that disagree, Content-Length with
 *	Transfer-Encoding (and, from libmicrohttpd itself, a bad chunk or
 *	HTTP/1.1 without Host); 401 + WWW-Authenticate: Basic on
 *	/webhooks/adyen when ingest/adyen_basic_user is set and the request's
 *	user or password is not it (only the password's SHA-256 is
 *	configured; compared in constant time); 411 neither Content-Length nor
 *	Transfer-Encoding; 413 body over ingest/max_body_bytes (the body is
 *	read to the end first, up to 64 MiB, unless the client waits on
 *	Expect: 100-continue); 415 Content-Type not application/json;
 *	429 + Retry-After when the TCP peer address is over its token bucket
 *	(ingest/rate_per_s sustained, ingest/rate_burst at once; behind a
 *	proxy that is the proxy: size the bucket for it), and when it has
 *	spent its budget of rejected requests: ingest/reject_budget
 *	requests, or ingest/reject_budget_bytes of their bodies, in
 *	ingest/reject_window_s. Rejected means refused here (the 4xx below)
 *	or rejected by validate before the sender was proven (source,
 *	signature: validate notes each to ingest on the ack channel,
 *	stage_note); what an authenticated PSP sends wrong is never charged.
 *	Retry-After is the rest of the window; the window's first such 429
 *	of a source is one "rejected" record on the trail (code
 *	reject_budget_spent: what it spent), the others are counted
 *	(payguard_ingest_budget_refused_total; sources over budget now:
 *	payguard_ingest_budget_sources). One table of 4,096 sources holds
 *	both bucket and budget;
 *	503 + Retry-After when receipts cannot be recorded right now: the
 *	delivery window to validate is full (back-pressure), the disk has
 *	less than payguard/journal/min_free_mb free, or we are stopping.
 *	Error bodies are {"error":"..."}. Each 400/401/404/405/411/413/415/431 is
 *	also recorded in the audit trail as a "rejected" event (gate "http": method, path,
 *	client address, reason; never the refused body); a 429 is only counted.
 * TRACE CONTEXT
 *	Each receipt's body holds "traceparent" (common/trace.h): a child span
 *	of the webhook's own traceparent header (its first), or, without a
 *	valid one, the root of a new trace. The stages carry it through every
 *	event and outside call of the case (common/stage.h); with
 *	payguard/trace/otlp_endpoint set, "ingest webhook" is this span, from
 *	the header section's arrival to the 202.
 * FAILURE
 *	A journal write or fsync failure exits (75) before any 202 for the
 *	records it covered: the PSP retries, nothing acknowledged is lost.
 *	SIGTERM: stop accepting connections, answer the requests in flight,
 *	wait up to payguard/drain_ms for validate and audit to acknowledge.
 * SECURITY
 *	Holds one secret of its own: the header key (ingest/header_key_file,
 *	32 random bytes made at first start, mode 0600). A receipt keeps a
 *	header's value only for a fixed list of harmless names (HTTP's
 *	framing, what proxies add, trace ids, and the signature and source
 *	headers validate checks; signatures are MACs of the body, not
 *	secrets: ingest/headers.c, headers_is_kept); credential headers
 *	(Authorization, Proxy-Authorization, Cookie, X-Api-Key, X-Auth-Token)
 *	are recorded as "[redacted]", and every other value (X-Access-Token,
 *	Api-Key, ...) only as "hmac-sha256:<16 hex>" under the header key, so
 *	equal values can be correlated on the trail and none is stored.
 *	Bodies are bounded before they are buffered. For
 *	/fetched/stripe only the token's SHA-256 is configured (the sandbox
 *	demo token's is warned about at start).
 * CONFIGURATION
 *	ingest/http_bind, http_port, http_threads, http_max_per_address,
 *	http_deadline_s, max_body_bytes,
 *	retry_after_s, rate_per_s, rate_burst, reject_budget,
 *	reject_budget_bytes, reject_window_s, retention_s,
 *	adyen_basic_user, adyen_basic_password_sha256, fetch_token_sha256,
 *	header_key_file;
 *	payguard/...
 *	(journal, delivery, metrics_token_sha256).
 * RETENTION
 *	ingest's journal holds every request body it answered 202. Its own
 *	start needs only what validate and audit have not acknowledged (it
 *	has no inputs and no state), so segments every record of which both
 *	acknowledged (the journaled watermarks), and older than
 *	ingest/retention_s (7 days), are removed (stage_def_t.retire_journal,
 *	journal_retire). The trail keeps every receipt for good, but not its
 *	body (its SHA-256 and size; audit, trail_receipt_view): a body lives
 *	here, and on the trail only inside validate's verdict on an
 *	authenticated receipt. So a forged or broken webhook's bytes are gone
 *	after ingest/retention_s.
 *--*/
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bearer.h"
#include "headers.h"
#include "httpauth.h"
#include "httpd.h"
#include "listenfd.h"
#include "log.h"
#include "sealkey.h"
#include "stage.h"

#define INGEST_DRAIN_MAX (64L << 20) /* bytes of an oversized body read to answer 413 */
#define INGEST_RATE_SLOTS 4096       /* sources tracked at once */
#define INGEST_RATE_PROBE 8

/* bucket - one source address: its token bucket (milli-tokens) and its
 * budget of rejected requests in the current window */
typedef struct {
    char addr[INET6_ADDRSTRLEN + 1];
    int64_t milli;
    int64_t last_ms;
    int64_t rej_since_ms; /* the budget's window began (0: nothing rejected) */
    uint64_t rej_n, rej_bytes;
    bool rej_recorded; /* the window's first 429 is on the trail */
} bucket_t;

typedef struct {
    stage_t *st;
    httpd_t *httpd;
    long max_body;
    long retry_after_s;
    _Atomic long waiting; /* requests suspended until durable */
    long rate_per_s, rate_burst;
    long reject_budget, reject_budget_bytes, reject_window_s;
    pthread_mutex_t rate_mu;
    bucket_t *buckets; /* INGEST_RATE_SLOTS, open addressing */
    _Atomic unsigned long long c_accepted, c_503;
    int64_t last_gauge_ms;                       /* loop thread */
    httpauth_t adyen_auth;                       /* basic auth of /webhooks/adyen (enabled: configured) */
    bearer_t fetch;                              /* POST /fetched/stripe's token hash (bearer.h) */
    unsigned char header_key[HEADERS_KEY_BYTES]; /* the key of the hashes of header values not kept (headers.h) */
} ingest_t;

/* refusal - why a request is refused before anything is recorded */
typedef struct {
    unsigned status;
    const char *code;
    char why[200];
} refusal_t;

/* request - one webhook POST in progress */
typedef struct {
    ingest_t *ing;
    struct MHD_Connection *conn;
    char *body;
    size_t len;
    headers_t headers;    /* every field as received */
    refusal_t refusal;    /* status 0: none; else drain the body, then refuse */
    size_t drained;       /* body bytes read and dropped */
    const char *endpoint; /* "stripe" | "standard" | "adyen" | "stripe_fetched" */
    pthread_mutex_t mu;
    enum { REQ_READING, REQ_WAITING, REQ_DURABLE, REQ_ANSWERED } state;
    bool suspended;
    char receipt_id[EVENT_ID_MAX + 1];
    int64_t started_ms; /* its header section arrived (the ingest span's start) */
    trace_t span;       /* the ingest span: a child of the webhook's traceparent, or a new trace's root */
    trace_t parent;
    bool has_parent;
} request_t;

/* s_healthz - 200 "ok" in plain text: the process answers */
static enum MHD_Result s_healthz(struct MHD_Connection *conn)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(3, (void *) "ok\n", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "text/plain");
    enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

static void s_budget_charge(ingest_t *ing, const char *addr, uint64_t n, uint64_t bytes);

/* s_record_refusal - an HTTP-level refusal on the audit trail (what was
 * asked, by whom, why; never the refused body; method and url NULL when
 * the HTTP library refused before they were known) and counted. A record
 * that cannot be made (back-pressure) is only counted. */
static void s_record_refusal(ingest_t *ing, unsigned status, const char *code, const char *why, const char *method,
                             const char *url, const char *peer)
{
    event_body_t *b = event_body_new();
    event_body_str(b, "gate", "http");
    event_body_str(b, EK_CODE, code);
    event_body_str(b, EK_REASON, why);
    event_body_int(b, EK_STATUS, status);
    if (method)
        event_body_str(b, "method", method);
    if (url)
        event_body_strn(b, "path", url, strnlen(url, 256));
    event_body_str(b, "client_ip", peer);
    char id[EVENT_ID_MAX + 1];
    stage_publish(ing->st, "http", EV_REJECTED, "", b, STAGE_TO_AUDIT, id, NULL, NULL);
    event_body_destroy(&b);
    stage_count(ing->st, "payguard_ingest_refused_total", "reason", code, 1);
}

/* s_refuse - answer an HTTP-level refusal and record it (s_record_refusal) */
static enum MHD_Result s_refuse(ingest_t *ing, struct MHD_Connection *conn, unsigned status, const char *code,
                                const char *why, const char *method, const char *url)
{
    char peer[INET6_ADDRSTRLEN + 1];
    httpd_peer(conn, peer, sizeof peer);
    s_record_refusal(ing, status, code, why, method, url, peer);
    s_budget_charge(ing, peer, 1, 0); /* a trail record each: charged to the source's budget */
    if (status == MHD_HTTP_UNAUTHORIZED)
        return httpd_reply_header(conn, status, json_pack("{s:s}", "error", why), "WWW-Authenticate",
                                  "Basic realm=\"" HTTPAUTH_REALM "\", charset=\"UTF-8\"");
    return httpd_error(conn, status, why);
}

/* s_busy - 503 + Retry-After: we could not record it durably right now */
static enum MHD_Result s_busy(ingest_t *ing, struct MHD_Connection *conn, const char *why)
{
    atomic_fetch_add(&ing->c_503, 1);
    char ra[16];
    snprintf(ra, sizeof ra, "%ld", ing->retry_after_s);
    return httpd_reply_header(conn, MHD_HTTP_SERVICE_UNAVAILABLE, json_pack("{s:s}", "error", why), "Retry-After", ra);
}

/* s_slot - addr's entry (caller holds rate_mu). The table is bounded: a
 * new source evicts the least recently seen in its probe window. */
static bucket_t *s_slot(ingest_t *ing, const char *addr, int64_t now)
{
    uint32_t h = 2166136261u;
    for (const char *p = addr; *p; p++)
        h = (h ^ (unsigned char) *p) * 16777619u;
    bucket_t *b = NULL, *oldest = NULL;
    for (int i = 0; i < INGEST_RATE_PROBE && !b; i++) {
        bucket_t *c = &ing->buckets[(h + (uint32_t) i) % INGEST_RATE_SLOTS];
        if (strcmp(c->addr, addr) == 0)
            b = c;
        else if (!oldest || c->last_ms < oldest->last_ms)
            oldest = c;
    }
    if (!b) {
        b = oldest;
        *b = (bucket_t){.milli = ing->rate_burst * 1000, .last_ms = now};
        snprintf(b->addr, sizeof b->addr, "%s", addr);
    }
    return b;
}

/* s_budget_charge - n more rejected requests of bytes body bytes from
 * addr, in its current window (a new one when the last has ended) */
static void s_budget_charge(ingest_t *ing, const char *addr, uint64_t n, uint64_t bytes)
{
    int64_t now = stage_mono_ms();
    pthread_mutex_lock(&ing->rate_mu);
    bucket_t *b = s_slot(ing, addr, now);
    if (!b->rej_since_ms || now - b->rej_since_ms >= ing->reject_window_s * 1000) {
        b->rej_since_ms = now;
        b->rej_n = b->rej_bytes = 0;
        b->rej_recorded = false;
    }
    b->rej_n += n;
    b->rej_bytes += bytes;
    pthread_mutex_unlock(&ing->rate_mu);
}

/* s_over - has b spent its budget in a window still running at now? */
static bool s_over(const ingest_t *ing, const bucket_t *b, int64_t now)
{
    return b->rej_since_ms && now - b->rej_since_ms < ing->reject_window_s * 1000 &&
           (b->rej_n >= (uint64_t) ing->reject_budget || b->rej_bytes >= (uint64_t) ing->reject_budget_bytes);
}

/* s_budget_wait - 0 if addr may send, else the seconds until its window
 * ends (for Retry-After); *record set for the window's first refusal
 * (one trail record per source and window), with what it spent */
static long s_budget_wait(ingest_t *ing, const char *addr, bool *record, uint64_t *n, uint64_t *bytes)
{
    int64_t now = stage_mono_ms();
    long wait_s = 0;
    *record = false;
    pthread_mutex_lock(&ing->rate_mu);
    bucket_t *b = s_slot(ing, addr, now);
    if (s_over(ing, b, now)) {
        wait_s = (long) ((b->rej_since_ms + ing->reject_window_s * 1000 - now + 999) / 1000);
        *record = !b->rej_recorded;
        b->rej_recorded = true;
        *n = b->rej_n;
        *bytes = b->rej_bytes;
    }
    pthread_mutex_unlock(&ing->rate_mu);
    return wait_s;
}

/* s_rate_take - take one token from addr's bucket; 0 if allowed, else the
 * seconds until a token is back (for Retry-After) */
static long s_rate_take(ingest_t *ing, const char *addr)
{
    int64_t now = stage_mono_ms();
    pthread_mutex_lock(&ing->rate_mu);
    bucket_t *b = s_slot(ing, addr, now);
    b->milli += (now - b->last_ms) * ing->rate_per_s;
    if (b->milli > ing->rate_burst * 1000)
        b->milli = ing->rate_burst * 1000;
    b->last_ms = now;
    long wait_s = 0;
    if (b->milli >= 1000)
        b->milli -= 1000;
    else
        wait_s = (long) ((1000 - b->milli) / ing->rate_per_s / 1000) + 1;
    pthread_mutex_unlock(&ing->rate_mu);
    return wait_s;
}

/* s_is_json - Content-Type application/json, parameters allowed */
static bool s_is_json(const char *ct)
{
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* s_collect_header - libmicrohttpd's header iterator: every field, in
 * the order received, repeated names included */
static enum MHD_Result s_collect_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void) kind;
    headers_add(cls, key ? key : "", value);
    return MHD_YES;
}

/* s_on_durable - loop thread: the receipt is on disk; wake its request */
static void s_on_durable(void *arg, int status)
{
    request_t *req = arg;
    (void) status;
    pthread_mutex_lock(&req->mu);
    req->state = REQ_DURABLE;
    bool resume = req->suspended;
    req->suspended = false;
    pthread_mutex_unlock(&req->mu);
    if (resume)
        MHD_resume_connection(req->conn);
}

/* s_trace - the receipt's trace context: the webhook's traceparent (its
 * first) continued, or, without a valid one, a new trace (trace.h) */
static void s_trace(request_t *req, event_body_t *body)
{
    const char *tp = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, TRACE_KEY);
    req->has_parent = tp && trace_parse(tp, strlen(tp), &req->parent) == 0;
    if (req->has_parent)
        trace_child(&req->parent, &req->span);
    else
        trace_mint(&req->span);
    char text[TRACE_HEADER_LEN + 1];
    trace_format(&req->span, text);
    event_body_str(body, TRACE_KEY, text);
}

/* s_record - build the receipt event and publish it; -1 if busy */
static int s_record(ingest_t *ing, request_t *req)
{
    char peer[INET6_ADDRSTRLEN + 1];
    httpd_peer(req->conn, peer, sizeof peer);

    msgpack_sbuffer hb;
    msgpack_sbuffer_init(&hb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &hb, msgpack_sbuffer_write);
    headers_pack(&req->headers, ing->header_key, &pk); /* judged whole when the request began */

    event_body_t *body = event_body_new();
    event_body_str(body, EK_ENDPOINT, req->endpoint);
    event_body_str(body, EK_PEER, peer);
    event_body_int(body, "received_ms", stage_now_ms());
    event_body_raw_value(body, EK_HEADERS, hb.data, hb.size);
    event_body_bin(body, EK_BODY, req->body ? req->body : "", req->len);
    msgpack_sbuffer_destroy(&hb);
    s_trace(req, body);

    req->state = REQ_WAITING;
    atomic_fetch_add(&ing->waiting, 1);
    int rc = stage_publish(ing->st, "rcpt", EV_RECEIPT, "", body, STAGE_TO_BOTH, req->receipt_id, s_on_durable, req);
    event_body_destroy(&body);
    if (rc != 0) {
        req->state = REQ_READING;
        atomic_fetch_sub(&ing->waiting, 1);
    } else {
        stage_count(ing->st, "payguard_ingest_receipts_total", "endpoint", req->endpoint, 1);
    }
    return rc;
}

/* s_judge - route and bounds of a webhook request whose header section has
 * arrived: 0 and *endpoint, or the refusal (nothing recorded yet) */
static int s_judge(const ingest_t *ing, struct MHD_Connection *conn, const char *url, const char *method,
                   const headers_t *hdrs, const char **endpoint, refusal_t *r)
{
    const char *why = NULL;
    unsigned hs;
    *endpoint = strcmp(url, "/webhooks/stripe") == 0     ? "stripe"
                : strcmp(url, "/webhooks/standard") == 0 ? "standard"
                : strcmp(url, "/webhooks/adyen") == 0    ? "adyen"
                                                         : NULL;
    if (!*endpoint && strcmp(url, "/fetched/stripe") == 0 && ing->fetch.enabled) /* payguard catch-up (bearer.h) */
        *endpoint = "stripe_fetched";
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (!*endpoint)
        *r = (refusal_t){MHD_HTTP_NOT_FOUND, "not_found", "unknown path"};
    else if (strcmp(method, "POST") != 0)
        *r = (refusal_t){MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", "webhooks are POSTed"};
    else if ((hs = headers_verdict(hdrs, &why)) != 0) {
        *r = (refusal_t){hs, hs == 431 ? "header_fields_too_large" : "bad_request", ""};
        snprintf(r->why, sizeof r->why, "%s (this request: %zu fields, %zu bytes of names and values)", why, hdrs->seen,
                 hdrs->bytes);
    } else if (strcmp(*endpoint, "adyen") == 0 &&
               !httpauth_check(&ing->adyen_auth, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"))) {
        *r = (refusal_t){MHD_HTTP_UNAUTHORIZED, "unauthorized",
                         "basic auth on /webhooks/adyen: missing or wrong user and password"};
    } else if (strcmp(*endpoint, "stripe_fetched") == 0 &&
               bearer_check(&ing->fetch, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"), r->why,
                            sizeof r->why)) {
        r->status = MHD_HTTP_UNAUTHORIZED;
        r->code = "fetch_unauthorized";
    } else if (!cl && !MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding"))
        /* no body length at all: nothing to verify, and a header section
         * libmicrohttpd found no length in is not to be trusted (a field
         * line with an empty name ends it early, the rest read as a body) */
        *r = (refusal_t){MHD_HTTP_LENGTH_REQUIRED, "length_required",
                         "a webhook needs Content-Length or Transfer-Encoding: chunked"};
    else if (!s_is_json(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type")))
        *r = (refusal_t){MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                         "Content-Type must be application/json"};
    else if (cl && strtoull(cl, NULL, 10) > (unsigned long long) ing->max_body)
        *r = (refusal_t){MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large", "body over the size limit"};
    else
        return 0;
    return -1;
}

/* s_drainable - may a refused request's body be read (and dropped) before
 * the answer, so that a client still sending reads it instead of a reset?
 * Not when the client waits for 100 Continue (it has sent nothing), nor
 * past INGEST_DRAIN_MAX (then the connection closes after the answer). */
static bool s_drainable(struct MHD_Connection *conn)
{
    const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Expect");
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
    if (expect && strcasecmp(expect, "100-continue") == 0)
        return false;
    if (cl)
        return strtoull(cl, NULL, 10) > 0 && strtoull(cl, NULL, 10) <= (unsigned long long) INGEST_DRAIN_MAX;
    return te != NULL;
}

/* s_budget_refuse - 429 + Retry-After when peer spent its budget of
 * rejected requests or bytes in the window (true, and the answer's *rc;
 * false: go on). The window's first refusal of a source is recorded on
 * the trail (code reject_budget_spent), the others only counted. */
static bool s_budget_refuse(ingest_t *ing, struct MHD_Connection *conn, const char *peer, enum MHD_Result *rc)
{
    bool record;
    uint64_t n = 0, bytes = 0;
    long wait_s = s_budget_wait(ing, peer, &record, &n, &bytes);
    if (wait_s == 0)
        return false;
    stage_count(ing->st, "payguard_ingest_budget_refused_total", NULL, NULL, 1);
    char why[300];
    snprintf(why, sizeof why,
             "source %s spent its budget of rejected requests (%" PRIu64 " requests, %" PRIu64
             " body bytes in this window; ingest/reject_budget %ld, reject_budget_bytes %ld per %ld s):"
             " 429 for %ld s",
             peer, n, bytes, ing->reject_budget, ing->reject_budget_bytes, ing->reject_window_s, wait_s);
    if (record) {
        log_warn("%s", why);
        s_record_refusal(ing, MHD_HTTP_TOO_MANY_REQUESTS, "reject_budget_spent", why, NULL, NULL, peer);
    }
    char ra[24];
    snprintf(ra, sizeof ra, "%ld", wait_s);
    *rc = httpd_reply_header(conn, MHD_HTTP_TOO_MANY_REQUESTS,
                             json_pack("{s:s}", "error", "too many rejected requests from this source"), "Retry-After",
                             ra);
    return true;
}

/* s_begin - the first call of a request (its header section is in):
 * health, rate limit, then a request state that reads the body;
 * a refused webhook request drains its body before the refusal */
static enum MHD_Result s_begin(ingest_t *ing, struct MHD_Connection *conn, const char *url, const char *method,
                               void **con_cls)
{
    if (strcmp(method, "GET") == 0 && strcmp(url, "/healthz") == 0)
        return s_healthz(conn);
    if (strcmp(method, "GET") == 0 && strcmp(url, "/readyz") == 0) {
        char why[256];
        bool ready = stage_ready(ing->st, why, sizeof why);
        return httpd_readyz(conn, ready, why);
    }
    /* the bucket first: a flood of anything gets 429, and is only counted */
    char peer[INET6_ADDRSTRLEN + 1];
    httpd_peer(conn, peer, sizeof peer);
    long wait_s = s_rate_take(ing, peer);
    if (wait_s > 0) {
        stage_count(ing->st, "payguard_ingest_rate_limited_total", NULL, NULL, 1);
        char ra[24];
        snprintf(ra, sizeof ra, "%ld", wait_s);
        return httpd_reply_header(conn, MHD_HTTP_TOO_MANY_REQUESTS,
                                  json_pack("{s:s}", "error", "rate limit for this source exceeded"), "Retry-After",
                                  ra);
    }
    enum MHD_Result rc;
    if (s_budget_refuse(ing, conn, peer, &rc))
        return rc;
    request_t *req = calloc(1, sizeof *req);
    assert(req);
    headers_init(&req->headers);
    MHD_get_connection_values(conn, MHD_HEADER_KIND, s_collect_header, &req->headers);
    if (s_judge(ing, conn, url, method, &req->headers, &req->endpoint, &req->refusal) != 0 && !s_drainable(conn)) {
        refusal_t r = req->refusal;
        free(req);
        return s_refuse(ing, conn, r.status, r.code, r.why, method, url);
    }
    req->ing = ing;
    req->conn = conn;
    req->started_ms = stage_now_ms();
    pthread_mutex_init(&req->mu, NULL);
    *con_cls = req;
    return MHD_YES;
}

/* s_take_body - a piece of the body: kept up to max_body, else dropped
 * (and counted, up to INGEST_DRAIN_MAX) so the refusal can be read */
static void s_take_body(ingest_t *ing, request_t *req, const char *data, size_t n)
{
    if (!req->refusal.status && req->len + n <= (size_t) ing->max_body) {
        char *nb = realloc(req->body, req->len + n);
        assert(nb);
        req->body = nb;
        memcpy(req->body + req->len, data, n);
        req->len += n;
        return;
    }
    if (!req->refusal.status)
        req->refusal = (refusal_t){MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large", "body over the size limit"};
    req->drained += n;
}

/* s_accepted_adyen - Adyen's rule: 200 with the body "[accepted]" (once
 * the receipt is on disk); the receipt id in a header */
static enum MHD_Result s_accepted_adyen(struct MHD_Connection *conn, const char *receipt_id)
{
    static const char body[] = "[accepted]";
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *) body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "text/plain");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "Payguard-Receipt-Id", receipt_id);
    enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

/* s_answer - libmicrohttpd's access handler: route, bound, record, reply */
static enum MHD_Result s_answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void) version;
    ingest_t *ing = cls;
    request_t *req = *con_cls;
    if (!req)
        return s_begin(ing, conn, url, method, con_cls);

    if (req->state == REQ_READING && *upload_data_size) {
        s_take_body(ing, req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        if (req->drained <= (size_t) INGEST_DRAIN_MAX)
            return MHD_YES;
        /* past the drain bound: answer now; the connection then closes */
    }

    if (req->state == REQ_READING) {
        if (req->refusal.status)
            return s_refuse(ing, conn, req->refusal.status, req->refusal.code, req->refusal.why, method, url);
        if (s_record(ing, req) != 0)
            return s_busy(ing, conn,
                          errno != EBUSY            ? "cannot record this request"
                          : stage_disk_low(ing->st) ? "disk nearly full: cannot record durably right now"
                                                    : "back-pressure: cannot record durably right now");
        pthread_mutex_lock(&req->mu);
        if (req->state == REQ_WAITING) {
            req->suspended = true;
            MHD_suspend_connection(conn);
        }
        pthread_mutex_unlock(&req->mu);
        if (req->suspended)
            return MHD_YES;
    }

    /* REQ_DURABLE: called again after resume (or durable already) */
    if (req->state == REQ_DURABLE) {
        atomic_fetch_sub(&ing->waiting, 1);
        atomic_fetch_add(&ing->c_accepted, 1);
        req->state = REQ_ANSWERED;
        stage_span(ing->st, "ingest webhook", OTLP_SERVER, &req->span, req->has_parent ? &req->parent : NULL,
                   req->started_ms, false, NULL, req->receipt_id);
        if (strcmp(req->endpoint, "adyen") == 0)
            return s_accepted_adyen(conn, req->receipt_id);
        return httpd_reply_header(conn, MHD_HTTP_ACCEPTED, json_pack("{s:s}", "receipt_id", req->receipt_id), NULL,
                                  NULL);
    }
    return MHD_NO;
}

/* s_completed - free a request's state when libmicrohttpd is done with it */
static void s_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void) cls;
    (void) conn;
    (void) toe;
    request_t *req = *con_cls;
    if (!req)
        return;
    pthread_mutex_destroy(&req->mu);
    free(req->body);
    free(req);
    *con_cls = NULL;
}

/* s_http_log - what libmicrohttpd itself says. It refuses some requests
 * before s_answer sees them (malformed framing: 400; a header section over
 * its memory: 431; HTTP/1.1 without Host: 400) and says so as "Error
 * processing request (HTTP response code is N ('<html><head><title>WHY</title>
 * ..."; those are recorded in the audit trail like s_refuse's (without a
 * client address: the library does not say it). Everything is logged and
 * counted. */
static void s_http_log(void *cls, const char *fmt, va_list ap)
{
    ingest_t *ing = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\r\n")] = '\0';
    log_warn("http: %s", msg);
    if (!ing->st)
        return;
    stage_count(ing->st, "payguard_ingest_http_errors_total", NULL, NULL, 1);
    const char *code = strstr(msg, "HTTP response code is ");
    unsigned status = code ? (unsigned) strtoul(code + 22, NULL, 10) : 0;
    if (status < 400 || status > 499)
        return;
    char why[160] = "refused by the HTTP server";
    const char *t = strstr(msg, "<title>"), *te = t ? strstr(t, "</title>") : NULL;
    if (t && te)
        snprintf(why, sizeof why, "%.*s", (int) (te - t - 7), t + 7);
    s_record_refusal(ing, status, status == 431 ? "header_fields_too_large" : "malformed_request", why, NULL, NULL,
                     "unknown");
}

/* s_serve - the webhooks server on the master's socket, else one of its
 * own (httpd.h: the limits every port has; GET /metrics) */
static int s_serve(ingest_t *ing, const config_t *c, long port, long threads)
{
    char err[256];
    const char *bind_addr = config_get(c, "ingest/http_bind");
    int lfd = listenfd_get(bind_addr, port, config_instances(c, "ingest") > 1, err, sizeof err); /* the master's */
    if (lfd < 0) {
        log_error("config: ingest/http_bind, http_port: %s", err);
        return -1;
    }
    httpd_opts_t o = {.name = "webhooks",
                      .listen_fd = lfd,
                      .threads = (unsigned) threads,
                      .max_connections = CONFIG_INGEST_HTTP_CONNECTIONS,
                      .memory_limit = (size_t) 64 * 1024,
                      .strict = true, /* 400 for HTTP/1.1 without Host */
                      .answer = s_answer,
                      .completed = s_completed,
                      .cls = ing,
                      .log = s_http_log,
                      .log_cls = ing,
                      .st = ing->st};
    if (!(ing->httpd = httpd_serve(c, "ingest", &o, err, sizeof err))) {
        log_error("cannot serve HTTP on %s:%ld: %s", bind_addr, port, err);
        return -1;
    }
    log_info("listening on http://%s:%ld (POST /webhooks/stripe, /webhooks/standard, /webhooks/adyen%s; at most %u "
             "connections from one address, each request within %u s)",
             bind_addr, port, ing->adyen_auth.enabled ? " with basic auth" : "", o.max_per_address, o.deadline_s);
    return 0;
}

/* s_init - start the HTTP server once the journal and sockets are up */
static int s_init(stage_t *st, void *arg)
{
    ingest_t *ing = arg;
    ing->st = st;
    const config_t *c = stage_config(st);
    char err[256];
    long port, threads;
    if (config_bounded(c, "ingest/http_port", &port, err, sizeof err) ||
        config_bounded(c, "ingest/http_threads", &threads, err, sizeof err) ||
        config_bounded(c, "ingest/max_body_bytes", &ing->max_body, err, sizeof err) ||
        config_bounded(c, "ingest/retry_after_s", &ing->retry_after_s, err, sizeof err) ||
        config_bounded(c, "ingest/rate_per_s", &ing->rate_per_s, err, sizeof err) ||
        config_bounded(c, "ingest/rate_burst", &ing->rate_burst, err, sizeof err) ||
        config_bounded(c, "ingest/reject_budget", &ing->reject_budget, err, sizeof err) ||
        config_bounded(c, "ingest/reject_budget_bytes", &ing->reject_budget_bytes, err, sizeof err) ||
        config_bounded(c, "ingest/reject_window_s", &ing->reject_window_s, err, sizeof err)) {
        log_error("%s", err);
        return -1;
    }
    if (httpauth_init(&ing->adyen_auth, config_get(c, "ingest/adyen_basic_user"),
                      config_get(c, "ingest/adyen_basic_password_sha256"), err, sizeof err) != 0) {
        log_error("config: ingest/adyen_basic_user, adyen_basic_password_sha256: %s", err);
        return -1;
    }
    if (bearer_parse("ingest/fetch_token_sha256", config_get(c, "ingest/fetch_token_sha256"), &ing->fetch, err,
                     sizeof err) != 0) {
        log_error("config: %s", err);
        return -1;
    }
    if (bearer_is_demo(config_get(c, "ingest/fetch_token_sha256")))
        log_warn("ingest/fetch_token_sha256 is the sandbox demo token's (config/sandbox/fetch.token): set your own");
    char *key_path = config_expand(c, config_get(c, "ingest/header_key_file"), "ingest", stage_index(st));
    int krc = sealkey_file(key_path, "header key (ingest/header_key_file)", ing->header_key, err, sizeof err);
    free(key_path);
    if (krc != 0) {
        log_error("%s", err);
        return -1;
    }
    pthread_mutex_init(&ing->rate_mu, NULL);
    ing->buckets = calloc(INGEST_RATE_SLOTS, sizeof *ing->buckets);
    assert(ing->buckets);
    if (s_serve(ing, c, port, threads) != 0)
        return -1;
    if (ing->fetch.enabled)
        log_info("and POST /fetched/stripe, for payguard catch-up (ingest/fetch_token_sha256)");
    return 0;
}

/* s_on_note - validate rejected one of our receipts before its sender was
 * proven: charge the TCP peer's budget with it and its body bytes */
static void s_on_note(stage_t *st, const char *from, const char *what, const char *subject, uint64_t n, void *arg)
{
    (void) st;
    ingest_t *ing = arg;
    if (strcmp(from, "validate") != 0 || strcmp(what, "rejected") != 0) {
        log_warn("ignoring a note '%s' from %s: ingest takes validate's rejections", what, from);
        return;
    }
    s_budget_charge(ing, subject, 1, n);
}

/* s_tick - once a second: how many sources are over their budget now */
static void s_tick(stage_t *st, void *arg)
{
    ingest_t *ing = arg;
    int64_t now = stage_mono_ms();
    if (now - ing->last_gauge_ms < 1000)
        return;
    ing->last_gauge_ms = now;
    int64_t over = 0;
    pthread_mutex_lock(&ing->rate_mu);
    for (size_t i = 0; i < INGEST_RATE_SLOTS; i++)
        over += ing->buckets[i].addr[0] && s_over(ing, &ing->buckets[i], now);
    pthread_mutex_unlock(&ing->rate_mu);
    stage_gauge(st, "payguard_ingest_budget_sources", over);
}

/* s_drain - SIGTERM: accept no new connections; in-flight ones finish */
static void s_drain(stage_t *st, void *arg)
{
    (void) st;
    ingest_t *ing = arg;
    if (ing->httpd)
        httpd_quiesce(ing->httpd);
}

/* s_busy_requests - requests still waiting for their durable 202 */
static bool s_busy_requests(stage_t *st, void *arg)
{
    (void) st;
    ingest_t *ing = arg;
    return atomic_load(&ing->waiting) > 0;
}

/* s_fini - stop the HTTP server (every request has been answered) */
static void s_fini(stage_t *st, void *arg)
{
    (void) st;
    ingest_t *ing = arg;
    httpd_stop(&ing->httpd);
}

int main(int argc, char **argv)
{
    static ingest_t ing;
    static const stage_def_t def = {.name = "ingest",
                                    .init = s_init,
                                    .tick = s_tick,
                                    .on_note = s_on_note,
                                    .drain = s_drain,
                                    .busy = s_busy_requests,
                                    .fini = s_fini,
                                    .arg = &ing,
                                    .retire_journal = true};
    return stage_main(argc, argv, &def);
}
