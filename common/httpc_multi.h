/* httpc_multi - many calls to the outside systems at once, none blocking.
 *
 * The asynchronous side of httpc: libcurl's multi interface driven by the
 * caller's own event loop (the stage loop: curl's sockets, gathered in one
 * epoll set, and its timer in the same zmq_poll as the ZeroMQ sockets). A
 * call is started with
 * httpc_multi_start and finished later by a callback on the loop thread;
 * nothing here sleeps or waits on the network.
 *
 * EACH CALL: the blocking client's attempt (httpc.h: the same headers,
 * Bearer token, Idempotency-Key, timeouts, caps and failure classes) and its
 * retry policy (exponential backoff with full jitter, Retry-After honoured),
 * except that a backoff is a timer, not a sleep.
 *
 * EACH OUTSIDE SYSTEM ("payments", "ledger", ...: httpc_multi_system) has:
 *   max_inflight   requests on the wire at once; more wait in a FIFO queue;
 *   rate_per_s     an optional token bucket (burst: one second's worth);
 *   a breaker      CLOSED; after breaker_failures consecutive transient
 *                  failures (5xx, 429, timeout, refused) OPEN for
 *                  breaker_cooldown_ms; then HALF_OPEN: one request goes out
 *                  as a probe; its success closes the breaker, its failure
 *                  opens it again. While a breaker is not closed, requests
 *                  wait in the queue: a transient failure that finds the
 *                  breaker open does not count against the call's attempts.
 *                  A call therefore fails for want of answers only while its
 *                  system otherwise answers; a system that is down holds its
 *                  calls until it is back (the caller's own bound on work in
 *                  flight turns that into back-pressure).
 *
 * CONNECTIONS: one multi handle per process holds the connection cache, so
 * connections to a system stay alive and are reused; HTTP/2 is negotiated on
 * https (ALPN) and requests are multiplexed over one connection where the
 * server allows (CURLMOPT_PIPELINING, CURLOPT_PIPEWAIT); TLS sessions and DNS
 * answers are shared by every transfer (a curl share handle).
 *
 * ORDERING GUARANTEE: a request is never put on the wire by the
 * httpc_multi_run call during which, or before which in the same loop turn,
 * it was started: it goes out at the earliest in the next httpc_multi_run.
 * The stage loop syncs its journal between the two, so whatever a stage
 * journaled before starting a call is durable before the call is sent.
 *
 * LIMITS: HTTPC_MULTI_MAX_SYSTEMS systems, HTTPC_MULTI_MAX_INFLIGHT
 * requests on the wire per system, HTTPC_MULTI_MAX_CALLS calls started and
 * not finished at once (httpc_multi_start refuses beyond).
 */
#ifndef PG_HTTPC_MULTI_H
#define PG_HTTPC_MULTI_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "httpc.h"
#include "trace.h"

#define HTTPC_MULTI_MAX_SYSTEMS 8
#define HTTPC_MULTI_MAX_INFLIGHT 1024
#define HTTPC_MULTI_MAX_CALLS 8192
#define HTTPC_MULTI_MAX_RATE 100000
#define HTTPC_MULTI_MAX_FDS 4096 /* connections of one engine: 4 systems at the most max_inflight */

typedef struct httpc_multi_t httpc_multi_t;

typedef struct {
    int max_inflight;         /* 1..HTTPC_MULTI_MAX_INFLIGHT */
    long rate_per_s;          /* 0: no rate limit; else 1..HTTPC_MULTI_MAX_RATE */
    int breaker_failures;     /* consecutive transient failures that open it; 0: no breaker */
    long breaker_cooldown_ms; /* 1..3,600,000 */
} httpc_limits_t;

typedef enum { HTTPC_BREAKER_CLOSED = 0, HTTPC_BREAKER_OPEN = 1, HTTPC_BREAKER_HALF_OPEN = 2 } httpc_breaker_t;

/* httpc_done_fn - a call finished: rc and resp as httpc_call returns them
 * (0: a final answer, 2xx or a permanent 4xx, in resp->status; -1: every
 * attempt failed transiently, or a permanent failure without an answer).
 * The callee owns resp's body (httpc_resp_free). Runs on the loop thread,
 * inside httpc_multi_run; it may start new calls. */
typedef void(httpc_done_fn)(void *user, int rc, httpc_resp_t *resp);

/* httpc_observe_fn - one attempt ended after ms: system and status class
 * ("2xx", "3xx", "4xx", "5xx", "error") for latency histograms */
typedef void(httpc_observe_fn)(void *arg, const char *system, const char *status_class, int64_t ms);

/* TRACE CONTEXT (trace.h): with a tracer set, each call started while
 * current() answers 0 (the caller's span), or from the callback of a call
 * that was traced, gets a span of its own, a child of that span: every
 * attempt carries it as the "traceparent" header, and done() is told when
 * the call ends (on the loop thread, before the call's own callback). */
typedef int(httpc_trace_fn)(void *arg, trace_t *current);
typedef struct {
    trace_t span, parent;
    const char *system, *method;
    long status;  /* the last answer's, 0 if none */
    bool failed;  /* rc -1 */
    int attempts; /* put on the wire */
    int64_t ms;   /* from start to end, on the engine's clock */
} httpc_span_t;
typedef void(httpc_span_fn)(void *arg, const httpc_span_t *span);
void httpc_multi_set_tracer(httpc_multi_t *self, httpc_trace_fn *current, httpc_span_fn *done, void *arg);

/* httpc_multi_new - clock_ms: monotonic milliseconds (NULL: CLOCK_MONOTONIC;
 * tests inject their own); NULL if curl cannot start */
httpc_multi_t *httpc_multi_new(int64_t (*clock_ms)(void));

/* httpc_multi_destroy - calls not finished end with rc -1 and
 * resp->cancelled: their callbacks run (and must not start calls) */
void httpc_multi_destroy(httpc_multi_t **self_p);

/* httpc_multi_system - register an outside system by name; its index, or
 * -1 and err (a bad limit, too many systems, a name registered twice, or
 * the systems' max_inflight together more connections than
 * HTTPC_MULTI_MAX_FDS or than the open-file limit allows, after raising
 * the soft limit toward the hard one) */
int httpc_multi_system(httpc_multi_t *self, const char *name, const httpc_limits_t *limits, char *err, size_t errlen);

/* httpc_multi_system_index - the index of a registered system, -1 if none */
int httpc_multi_system_index(const httpc_multi_t *self, const char *name);

/* httpc_multi_start - begin a call to system sys through client (its base
 * URL, token, timeout); body and key are copied. 0, or -1 and resp-style
 * reason in err when the call cannot be taken (bad arguments, or
 * HTTPC_MULTI_MAX_CALLS in progress): then fn is never called. policy NULL:
 * httpc_call's defaults. */
int httpc_multi_start(httpc_multi_t *self, int sys, httpc_t *client, const char *method, const char *path,
                      const char *json_body, const char *idem_key, const httpc_retry_t *policy, httpc_done_fn *fn,
                      void *user, char *err, size_t errlen);

/* httpc_multi_fds - what the caller's poll watches for the engine, as
 * pollfd entries (at most max): the one descriptor of the epoll set that
 * holds curl's sockets (POLLIN: some are ready); how many (1, or 0 when
 * max is 0) */
size_t httpc_multi_fds(const httpc_multi_t *self, struct pollfd *fds, size_t max);

/* httpc_multi_timeout - ms until the engine needs httpc_multi_run without
 * socket activity (a curl timer, a backoff, a cool-down, a rate token): 0
 * now, -1 nothing pending */
long httpc_multi_timeout(const httpc_multi_t *self);

/* httpc_multi_run - act on the sockets poll found ready (revents set; n
 * entries, may be 0) and on due timers; send what may be sent; call the
 * callbacks of finished calls */
void httpc_multi_run(httpc_multi_t *self, const struct pollfd *fds, size_t n);

/* httpc_multi_set_observer - latency of every attempt (NULL: none) */
void httpc_multi_set_observer(httpc_multi_t *self, httpc_observe_fn *fn, void *arg);

/* state of one system, for status and metrics */
size_t httpc_multi_nsystems(const httpc_multi_t *self);
const char *httpc_multi_system_name(const httpc_multi_t *self, int sys);
size_t httpc_multi_inflight(const httpc_multi_t *self, int sys); /* on the wire */
size_t httpc_multi_queued(const httpc_multi_t *self, int sys);   /* waiting for a slot, token, breaker or backoff */
httpc_breaker_t httpc_multi_breaker(const httpc_multi_t *self, int sys);
uint64_t httpc_multi_breaker_opened(const httpc_multi_t *self, int sys); /* times it opened */
const char *httpc_breaker_name(httpc_breaker_t b);                       /* "closed", "open", "half_open" */

/* httpc_multi_calls - calls started and not yet finished */
size_t httpc_multi_calls(const httpc_multi_t *self);

/* httpc_multi_trim - free the idle easy handles no call needed since the
 * previous trim (the fewest the pool held in between): a burst's handles
 * are kept while calls keep coming, and given back one trim after the
 * burst. Returns how many were freed. The stage calls it every
 * STAGE_TRIM_MS. */
size_t httpc_multi_trim(httpc_multi_t *self);

/* httpc_limits_check - 0, or -1 and which limit is out of range */
int httpc_limits_check(const httpc_limits_t *limits, char *err, size_t errlen);

#endif
