/* httpc_multi - many outside calls at once on libcurl's multi interface,
 * driven by the caller's loop (see httpc_multi.h).
 *
 * A CALL (hm_call_t) is always in exactly one place:
 *   incoming   started since the last httpc_multi_run: not sendable yet
 *              (the ordering guarantee: the caller's journal sync comes first)
 *   queue      its system's FIFO: waiting for a slot (max_inflight), a rate
 *              token, or a breaker that is not closed
 *   waiting    a backoff timer after a transient failure (not_before)
 *   wire       an easy handle in the multi handle
 * and it ends in its callback. Each attempt gets a fresh easy handle with
 * the blocking client's options (httpc_priv.h); connections live in the
 * multi handle's cache, so they outlive the handles and are reused.
 *
 * SOCKETS AND TIMERS: curl tells us which sockets to watch for what
 * (CURLMOPT_SOCKETFUNCTION) and when to call it back without activity
 * (CURLMOPT_TIMERFUNCTION: timer_at). The sockets go into one epoll set of
 * the engine's own (level-triggered; curl_multi_assign marks a socket as
 * added), and the caller's poll watches only that set's descriptor
 * (httpc_multi_fds): a loop turn costs what is ready, not what is open. With
 * 512 calls on the wire to each of two systems, handing every socket to
 * zmq_poll each turn, and finding a socket in a table on each of curl's
 * callbacks, was a share of validate's and execute's CPU that grew with
 * the concurrency. httpc_multi_run reads the ready sockets off the set
 * (epoll_wait, no waiting) and gives them to curl (curl_multi_socket_action).
 */
#include "httpc_multi.h"

#include "httpc_priv.h"
#include "log.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>
#include <time.h>

#define HM_NAME_MAX 32
#define HM_MAX_COOLDOWN_MS 3600000L
#define HM_MAX_BREAKER_FAILURES 1000
#define HM_POOL 256         /* idle easy handles kept for reuse */
#define HM_RECV_BUFFER 4096 /* curl's receive buffer per handle */
#define HM_FD_RESERVE 256   /* descriptors a stage needs beside its connections */
#define HM_READY_BATCH 256  /* ready sockets taken off the epoll set at once */
#define HM_READY_MAX 16     /* rounds of them in one httpc_multi_run */

typedef enum { HM_INCOMING, HM_QUEUE, HM_WAITING, HM_WIRE } hm_where_t;

typedef struct hm_call_t hm_call_t;
struct hm_call_t {
    hm_call_t *prev, *next;
    hm_where_t where;
    int sys;
    httpc_t *client;
    char method[8];
    char *path, *body, *idem;
    httpc_retry_t policy;
    int counted;        /* attempts counted against policy.max_attempts */
    int made;           /* attempts put on the wire */
    int64_t not_before; /* HM_WAITING: when it may be queued again */
    int64_t sent_ms;    /* HM_WIRE: when the attempt started */
    bool probe;         /* the half-open breaker's one request */
    CURL *easy;
    struct curl_slist *headers;
    hc_xfer_t xfer;
    httpc_resp_t last; /* the latest transient answer, reported if it stays the last */
    httpc_done_fn *fn;
    void *user;
    bool traced; /* it carries a traceparent: span, a child of parent */
    trace_t span, parent;
    int64_t started_ms; /* httpc_multi_start, on the engine's clock */
};

typedef struct {
    hm_call_t *head, *tail;
    size_t n;
} hm_list_t;

typedef struct {
    char name[HM_NAME_MAX];
    httpc_limits_t lim;
    hm_list_t queue;
    size_t active;
    httpc_breaker_t breaker;
    int consecutive;
    int64_t open_until;
    bool probe_out;
    double tokens;
    int64_t refill_ms;
    uint64_t opened;
} hm_system_t;

struct httpc_multi_t {
    CURLM *multi;
    CURLSH *share;
    int64_t (*clock)(void);
    hm_system_t sys[HTTPC_MULTI_MAX_SYSTEMS];
    size_t nsys;
    hm_list_t incoming, waiting, wire;
    size_t ncalls;
    int epfd;         /* the epoll set of curl's sockets */
    int64_t timer_at; /* -1: no curl timer */
    httpc_observe_fn *observe;
    void *observe_arg;
    httpc_trace_fn *trace;    /* the caller's current span, asked at each start */
    httpc_span_fn *span_done; /* a traced call ended */
    void *trace_arg;
    const trace_t *in_callback; /* while a traced call's callback runs: its parent */
    bool closing;               /* destroy is ending calls: no new ones */
    CURL *pool[HM_POOL];        /* easy handles of finished calls, reset and reused */
    size_t npool;
    size_t pool_low; /* the fewest handles the pool held since the last httpc_multi_trim */
};

/* s_mono_ms - the default clock */
static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------- lists */

static void s_push(hm_list_t *l, hm_call_t *c, bool front)
{
    c->prev = front ? NULL : l->tail;
    c->next = front ? l->head : NULL;
    if (front) {
        if (l->head)
            l->head->prev = c;
        else
            l->tail = c;
        l->head = c;
    } else {
        if (l->tail)
            l->tail->next = c;
        else
            l->head = c;
        l->tail = c;
    }
    l->n++;
}

static void s_unlink(hm_list_t *l, hm_call_t *c)
{
    assert(l->n > 0);
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
    l->n--;
}

/* s_list_of - the list a call is in */
static hm_list_t *s_list_of(httpc_multi_t *m, hm_call_t *c)
{
    switch (c->where) {
    case HM_INCOMING:
        return &m->incoming;
    case HM_QUEUE:
        return &m->sys[c->sys].queue;
    case HM_WAITING:
        return &m->waiting;
    case HM_WIRE:
        return &m->wire;
    }
    return NULL;
}

/* s_move - take c out of its list and put it in another */
static void s_move(httpc_multi_t *m, hm_call_t *c, hm_where_t to, bool front)
{
    s_unlink(s_list_of(m, c), c);
    c->where = to;
    s_push(s_list_of(m, c), c, front);
}

/* ----------------------------------------------------- curl callbacks */

/* s_on_socket - curl: watch s for what (or stop watching it); socketp is
 * non-NULL once s is in the epoll set (curl_multi_assign) */
static int s_on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void) easy;
    httpc_multi_t *m = userp;
    assert(m && m->epfd >= 0);
    if (what == CURL_POLL_REMOVE) {
        /* curl may have closed s already: then the kernel dropped it */
        if (socketp && epoll_ctl(m->epfd, EPOLL_CTL_DEL, s, NULL) != 0 && errno != EBADF && errno != ENOENT)
            log_warn("httpc: cannot stop watching socket %d: %s", (int) s, strerror(errno));
        return 0;
    }
    struct epoll_event ev = {
        .events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u), .data.fd = s};
    int op = socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    int rc = epoll_ctl(m->epfd, op, s, &ev);
    if (rc != 0 && errno == (op == EPOLL_CTL_ADD ? EEXIST : ENOENT)) /* a reused descriptor number */
        rc = epoll_ctl(m->epfd, op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev);
    if (rc != 0) {
        log_error("httpc: cannot watch socket %d: %s", (int) s, strerror(errno));
        return -1;
    }
    if (!socketp)
        curl_multi_assign(m->multi, s, m);
    return 0;
}

/* s_on_timer - curl: call socket_action(TIMEOUT) in timeout_ms (-1: never) */
static int s_on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void) multi;
    httpc_multi_t *m = userp;
    m->timer_at = timeout_ms < 0 ? -1 : m->clock() + timeout_ms;
    return 0;
}

/* ------------------------------------------------------------ lifetime */

/* httpc_multi_new - see httpc_multi.h */
httpc_multi_t *httpc_multi_new(int64_t (*clock_ms)(void))
{
    if (!hc_curl_ready())
        return NULL;
    httpc_multi_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->clock = clock_ms ? clock_ms : s_mono_ms;
    m->timer_at = -1;
    m->epfd = epoll_create1(EPOLL_CLOEXEC);
    m->multi = curl_multi_init();
    m->share = curl_share_init();
    if (m->epfd < 0 || !m->multi || !m->share) {
        httpc_multi_destroy(&m);
        return NULL;
    }
    /* TLS sessions and DNS answers shared by every transfer (one thread:
     * no lock callbacks needed) */
    curl_share_setopt(m->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(m->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, s_on_socket);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, s_on_timer);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_PIPELINING, (long) CURLPIPE_MULTIPLEX);
    return m;
}

/* s_free_call - release a call's memory (not its place in a list); its
 * easy handle goes back to the pool */
static void s_free_call(httpc_multi_t *m, hm_call_t *c)
{
    if (c->easy && m && m->npool < HM_POOL && !m->closing)
        m->pool[m->npool++] = c->easy;
    else if (c->easy)
        curl_easy_cleanup(c->easy);
    hc_slist_wipe_free(c->headers);
    free(c->xfer.buf);
    free(c->path);
    free(c->body);
    free(c->idem);
    httpc_resp_free(&c->last);
    free(c);
}

/* s_drop_list - end every call of a list as cancelled: its callback is
 * told (resp.cancelled) so that it can let go of what it holds */
static void s_drop_list(httpc_multi_t *m, hm_list_t *l)
{
    while (l->head) {
        hm_call_t *c = l->head;
        s_unlink(l, c);
        if (c->where == HM_WIRE)
            curl_multi_remove_handle(m->multi, c->easy);
        m->ncalls--;
        httpc_resp_t resp = {.retry_after_ms = -1, .cancelled = true, .attempts = c->made};
        hc_set_error(&resp, "httpc: cancelled (the stage is stopping)");
        c->fn(c->user, -1, &resp);
        s_free_call(m, c);
    }
}

/* httpc_multi_trim - see httpc_multi.h */
size_t httpc_multi_trim(httpc_multi_t *self)
{
    assert(self);
    assert(self->pool_low <= self->npool);
    size_t idle = self->pool_low;
    for (size_t i = 0; i < idle; i++)
        curl_easy_cleanup(self->pool[--self->npool]);
    self->pool_low = self->npool;
    return idle;
}

/* httpc_multi_destroy - see httpc_multi.h */
void httpc_multi_destroy(httpc_multi_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    httpc_multi_t *m = *self_p;
    m->closing = true;
    s_drop_list(m, &m->wire);
    s_drop_list(m, &m->incoming);
    s_drop_list(m, &m->waiting);
    for (size_t i = 0; i < m->nsys; i++)
        s_drop_list(m, &m->sys[i].queue);
    while (m->npool)
        curl_easy_cleanup(m->pool[--m->npool]);
    if (m->multi)
        curl_multi_cleanup(m->multi);
    if (m->share)
        curl_share_cleanup(m->share);
    if (m->epfd >= 0)
        close(m->epfd);
    free(m);
    *self_p = NULL;
}

/* httpc_limits_check - see httpc_multi.h */
int httpc_limits_check(const httpc_limits_t *lim, char *err, size_t errlen)
{
    if (lim->max_inflight < 1 || lim->max_inflight > HTTPC_MULTI_MAX_INFLIGHT)
        snprintf(err, errlen, "max_inflight must be 1..%d", HTTPC_MULTI_MAX_INFLIGHT);
    else if (lim->rate_per_s < 0 || lim->rate_per_s > HTTPC_MULTI_MAX_RATE)
        snprintf(err, errlen, "rate_per_s must be 0 (no limit) or 1..%d", HTTPC_MULTI_MAX_RATE);
    else if (lim->breaker_failures < 0 || lim->breaker_failures > HM_MAX_BREAKER_FAILURES)
        snprintf(err, errlen, "breaker_failures must be 0 (no breaker) or 1..%d", HM_MAX_BREAKER_FAILURES);
    else if (lim->breaker_cooldown_ms < 1 || lim->breaker_cooldown_ms > HM_MAX_COOLDOWN_MS)
        snprintf(err, errlen, "breaker_cooldown_ms must be 1..%ld", HM_MAX_COOLDOWN_MS);
    else
        return 0;
    return -1;
}

/* s_fd_budget - room for conns connections beside the process's other
 * descriptors: within what the loop polls, and under the open-file limit
 * (the soft limit is raised toward the hard one when it is too low, as a
 * server does at start) */
static int s_fd_budget(long conns, char *why, size_t whylen)
{
    assert(conns > 0);
    if (conns > HTTPC_MULTI_MAX_FDS) {
        snprintf(why, whylen, "the systems' max_inflight add up to %ld connections, more than the %d one stage polls",
                 conns, HTTPC_MULTI_MAX_FDS);
        return -1;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0; /* cannot tell: curl reports a refused socket per call */
    rlim_t need = (rlim_t) conns + HM_FD_RESERVE;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
        struct rlimit up = {.rlim_cur = want, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl.rlim_cur = want;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        snprintf(why, whylen,
                 "the systems' max_inflight add up to %ld connections; with %d descriptors for the rest that needs an "
                 "open-file limit of %llu, and this process may have %llu (ulimit -n; LimitNOFILE= under systemd): "
                 "lower outside/max_inflight or raise the limit",
                 conns, HM_FD_RESERVE, (unsigned long long) need, (unsigned long long) rl.rlim_cur);
        return -1;
    }
    return 0;
}

/* httpc_multi_system - see httpc_multi.h */
int httpc_multi_system(httpc_multi_t *m, const char *name, const httpc_limits_t *lim, char *err, size_t errlen)
{
    if (!name || !*name || strlen(name) >= HM_NAME_MAX) {
        snprintf(err, errlen, "httpc: a system needs a name of 1..%d bytes", HM_NAME_MAX - 1);
        return -1;
    }
    if (httpc_multi_system_index(m, name) >= 0) {
        snprintf(err, errlen, "httpc: system %s registered twice", name);
        return -1;
    }
    if (m->nsys == HTTPC_MULTI_MAX_SYSTEMS) {
        snprintf(err, errlen, "httpc: more than %d outside systems", HTTPC_MULTI_MAX_SYSTEMS);
        return -1;
    }
    char why[512];
    if (httpc_limits_check(lim, why, sizeof why) != 0) {
        snprintf(err, errlen, "outside system %s: %s", name, why);
        return -1;
    }
    long keep = lim->max_inflight; /* connections at once: every system's slots */
    for (size_t i = 0; i < m->nsys; i++)
        keep += m->sys[i].lim.max_inflight;
    if (s_fd_budget(keep, why, sizeof why) != 0) {
        snprintf(err, errlen, "outside system %s: %s", name, why);
        return -1;
    }
    hm_system_t *s = &m->sys[m->nsys];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->lim = *lim;
    s->tokens = lim->rate_per_s > 0 ? (double) lim->rate_per_s : 0;
    s->refill_ms = m->clock();
    curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, keep);
    return (int) m->nsys++;
}

/* httpc_multi_system_index - see httpc_multi.h */
int httpc_multi_system_index(const httpc_multi_t *m, const char *name)
{
    for (size_t i = 0; i < m->nsys; i++)
        if (strcmp(m->sys[i].name, name) == 0)
            return (int) i;
    return -1;
}

/* httpc_multi_set_observer - see httpc_multi.h */
void httpc_multi_set_observer(httpc_multi_t *m, httpc_observe_fn *fn, void *arg)
{
    m->observe = fn;
    m->observe_arg = arg;
}

/* httpc_multi_set_tracer - see httpc_multi.h */
void httpc_multi_set_tracer(httpc_multi_t *m, httpc_trace_fn *current, httpc_span_fn *done, void *arg)
{
    assert(m);
    m->trace = current;
    m->span_done = done;
    m->trace_arg = arg;
}

/* s_trace_start - a new call's span: a child of the caller's current one,
 * or, inside a traced call's callback, of that call's parent */
static void s_trace_start(httpc_multi_t *m, hm_call_t *c)
{
    assert(c);
    if (m->trace && m->trace(m->trace_arg, &c->parent) == 0)
        c->traced = true;
    else if (m->in_callback) {
        c->parent = *m->in_callback;
        c->traced = true;
    }
    if (c->traced)
        trace_child(&c->parent, &c->span);
}

/* httpc_multi_start - see httpc_multi.h */
int httpc_multi_start(httpc_multi_t *m, int sys, httpc_t *client, const char *method, const char *path,
                      const char *json_body, const char *idem_key, const httpc_retry_t *policy, httpc_done_fn *fn,
                      void *user, char *err, size_t errlen)
{
    static const httpc_retry_t defaults = {.max_attempts = 5, .base_delay_ms = 200, .max_delay_ms = 10000};
    httpc_resp_t why = {0};
    if (sys < 0 || (size_t) sys >= m->nsys || !fn)
        hc_set_error(&why, "httpc: no such outside system, or no callback");
    else if (m->closing)
        hc_set_error(&why, "httpc: the engine is closing");
    else if (m->ncalls >= HTTPC_MULTI_MAX_CALLS)
        hc_set_error(&why, "httpc: %d calls in progress already", HTTPC_MULTI_MAX_CALLS);
    else if (policy && !hc_policy_ok(policy))
        hc_set_error(&why, "httpc: retry policy out of range");
    else
        hc_check_request(client, method, path, json_body, idem_key, &why);
    if (why.error[0]) {
        snprintf(err, errlen, "%s", why.error);
        return -1;
    }
    hm_call_t *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path)) || (json_body && !(c->body = strdup(json_body))) ||
        (idem_key && !(c->idem = strdup(idem_key)))) {
        if (c)
            s_free_call(NULL, c);
        snprintf(err, errlen, "httpc: out of memory");
        return -1;
    }
    c->sys = sys;
    c->client = client;
    snprintf(c->method, sizeof c->method, "%s", method);
    c->policy = policy ? *policy : defaults;
    c->fn = fn;
    c->user = user;
    c->last.retry_after_ms = -1;
    c->started_ms = m->clock();
    s_trace_start(m, c);
    c->where = HM_INCOMING;
    s_push(&m->incoming, c, false);
    m->ncalls++;
    return 0;
}

/* ---------------------------------------------------------- one attempt */

/* s_shown - the call's URL as logs may show it */
static void s_shown(const hm_call_t *c, char *out, size_t outlen)
{
    char url[HTTPC_MAX_URL_LEN + 2];
    hc_make_url(c->client, c->path, url, sizeof url);
    hc_redact_url(url, out, outlen);
}

/* s_finish - the call is over: out of its list, its callback, freed */
static void s_finish(httpc_multi_t *m, hm_call_t *c, int rc, httpc_resp_t *resp)
{
    s_unlink(s_list_of(m, c), c);
    m->ncalls--;
    resp->attempts = c->made;
    if (c->traced && m->span_done) {
        httpc_span_t sp = {.span = c->span,
                           .parent = c->parent,
                           .system = m->sys[c->sys].name,
                           .method = c->method,
                           .status = resp->status,
                           .failed = rc != 0,
                           .attempts = c->made,
                           .ms = m->clock() - c->started_ms};
        m->span_done(m->trace_arg, &sp);
    }
    const trace_t *outer = m->in_callback;
    m->in_callback = c->traced ? &c->parent : NULL;
    c->fn(c->user, rc, resp);
    m->in_callback = outer;
    s_free_call(m, c);
}

/* s_send - put a queued call on the wire (false: it finished at once, failed) */
static bool s_send(httpc_multi_t *m, hm_call_t *c)
{
    char url[HTTPC_MAX_URL_LEN + 2];
    hc_make_url(c->client, c->path, url, sizeof url);
    hc_slist_wipe_free(c->headers);
    c->headers = hc_build_headers(c->client, c->body != NULL, c->idem);
    if (c->headers && c->traced) {
        char line[sizeof TRACE_KEY ": " + TRACE_HEADER_LEN];
        memcpy(line, TRACE_KEY ": ", sizeof TRACE_KEY + 1);
        trace_format(&c->span, line + sizeof TRACE_KEY + 1);
        struct curl_slist *more = curl_slist_append(c->headers, line);
        if (!more) {
            hc_slist_wipe_free(c->headers);
            c->headers = NULL; /* out of memory: failed below */
        }
    }
    if (!c->easy && m->npool) {
        c->easy = m->pool[--m->npool];
        if (m->npool < m->pool_low)
            m->pool_low = m->npool;
    }
    if (c->easy)
        curl_easy_reset(c->easy);
    else
        c->easy = curl_easy_init();
    free(c->xfer.buf);
    memset(&c->xfer, 0, sizeof c->xfer);
    c->xfer.retry_after_ms = -1;
    bool ok =
        c->headers && c->easy && hc_set_options(c->client, c->easy, c->method, url, c->body, c->headers, &c->xfer);
    if (ok) {
        ok &= curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c) == CURLE_OK;
        ok &= curl_easy_setopt(c->easy, CURLOPT_SHARE, m->share) == CURLE_OK;
        /* wait for a connection being set up only where it may multiplex
         * (HTTP/2 over TLS): on plain http curl would hold every other
         * request until the first one's answer */
        if (strncasecmp(url, "https://", 8) == 0)
            ok &= curl_easy_setopt(c->easy, CURLOPT_PIPEWAIT, 1L) == CURLE_OK;
        ok &= curl_easy_setopt(c->easy, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_2TLS) == CURLE_OK;
        /* the answers are small JSON: a 4 KiB receive buffer instead of
         * 16 KiB, held by every handle in flight and in the pool */
        ok &= curl_easy_setopt(c->easy, CURLOPT_BUFFERSIZE, (long) HM_RECV_BUFFER) == CURLE_OK;
        ok = ok && curl_multi_add_handle(m->multi, c->easy) == CURLM_OK;
    }
    if (!ok) {
        httpc_resp_t resp = {.retry_after_ms = -1};
        hc_set_error(&resp, "httpc: could not set up the request (out of memory)");
        s_finish(m, c, -1, &resp);
        return false;
    }
    c->sent_ms = m->clock();
    m->sys[c->sys].active++;
    s_move(m, c, HM_WIRE, false);
    return true;
}

/* s_open - a breaker opens (again) for its cool-down */
static void s_open(httpc_multi_t *m, hm_system_t *s, const char *why)
{
    if (s->breaker != HTTPC_BREAKER_OPEN)
        s->opened++;
    bool was_closed = s->breaker == HTTPC_BREAKER_CLOSED;
    s->breaker = HTTPC_BREAKER_OPEN;
    s->open_until = m->clock() + s->lim.breaker_cooldown_ms;
    if (was_closed)
        log_warn(
            "outside system %s: breaker open after %d consecutive failures (%s); its calls wait, a probe in %ld ms",
            s->name, s->consecutive, why, s->lim.breaker_cooldown_ms);
}

/* s_breaker_note - an attempt's outcome, as the breaker counts it */
static void s_breaker_note(httpc_multi_t *m, hm_system_t *s, bool failed, bool was_probe, const char *why)
{
    if (!s->lim.breaker_failures)
        return;
    if (!failed) {
        s->consecutive = 0;
        if (s->breaker != HTTPC_BREAKER_CLOSED)
            log_info("outside system %s: breaker closed (%s answered)", s->name, was_probe ? "the probe" : "a call");
        s->breaker = HTTPC_BREAKER_CLOSED;
        return;
    }
    s->consecutive++;
    if (was_probe || (s->breaker == HTTPC_BREAKER_CLOSED && s->consecutive >= s->lim.breaker_failures))
        s_open(m, s, why);
}

/* s_status_class - "2xx" ... "5xx", or "error" when nothing came back */
static const char *s_status_class(long status)
{
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    return status >= 100 && status <= 599 ? classes[status / 100 - 1] : "error";
}

/* s_on_done - curl finished an attempt: answer, retry later, or park */
static void s_on_done(httpc_multi_t *m, CURL *easy, CURLcode result)
{
    hm_call_t *c = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &c);
    assert(c && c->easy == easy && c->where == HM_WIRE);
    curl_multi_remove_handle(m->multi, easy);
    hm_system_t *s = &m->sys[c->sys];
    s->active--;
    bool was_probe = c->probe;
    if (was_probe)
        s->probe_out = false;
    c->probe = false;
    c->made++;
    hc_slist_wipe_free(c->headers);
    c->headers = NULL;
    long status = 0;
    if (result == CURLE_OK)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    char shown[HTTPC_MAX_URL_LEN + 8];
    s_shown(c, shown, sizeof shown);
    httpc_resp_t resp = {.retry_after_ms = -1};
    int rc = hc_result(result, status, &c->xfer, c->method, shown, &resp);
    int64_t now = m->clock();
    if (m->observe)
        m->observe(m->observe_arg, s->name, s_status_class(resp.status), now - c->sent_ms);
    s_breaker_note(m, s, resp.transient, was_probe, resp.status ? "HTTP error" : resp.error);
    if (!resp.transient) {
        s_finish(m, c, rc, &resp);
        return;
    }
    if (s->breaker != HTTPC_BREAKER_CLOSED) { /* the system is down: wait for it, attempt not counted */
        httpc_resp_free(&c->last);
        c->last = resp;
        s_move(m, c, HM_QUEUE, true);
        return;
    }
    if (++c->counted >= c->policy.max_attempts) {
        httpc_resp_free(&c->last);
        s_finish(m, c, -1, &resp);
        return;
    }
    long delay = hc_backoff_ms(c->client, &c->policy, c->counted + 1, resp.retry_after_ms);
    if (resp.status)
        log_warn("httpc: %s %s answered %ld; attempt %d/%d in %ld ms", c->method, shown, resp.status, c->counted + 1,
                 c->policy.max_attempts, delay);
    else
        log_warn("httpc: %s; attempt %d/%d in %ld ms", resp.error, c->counted + 1, c->policy.max_attempts, delay);
    httpc_resp_free(&c->last);
    c->last = resp;
    c->not_before = now + delay;
    s_move(m, c, HM_WAITING, false);
}

/* s_refill - a system's rate tokens now */
static void s_refill(hm_system_t *s, int64_t now)
{
    if (s->lim.rate_per_s <= 0)
        return;
    double cap = (double) s->lim.rate_per_s;
    s->tokens += (double) (now - s->refill_ms) * cap / 1000.0;
    if (s->tokens > cap)
        s->tokens = cap;
    s->refill_ms = now;
}

/* s_dispatch - due backoffs back to their queues; then send what each
 * system's slots, tokens and breaker allow, oldest first */
static void s_dispatch(httpc_multi_t *m)
{
    int64_t now = m->clock();
    for (hm_call_t *c = m->waiting.head, *next; c; c = next) {
        next = c->next;
        if (c->not_before <= now)
            s_move(m, c, HM_QUEUE, false);
    }
    for (size_t i = 0; i < m->nsys; i++) {
        hm_system_t *s = &m->sys[i];
        if (s->breaker == HTTPC_BREAKER_OPEN && now >= s->open_until && s->queue.n) {
            s->breaker = HTTPC_BREAKER_HALF_OPEN;
            log_info("outside system %s: breaker half-open, one probe goes out", s->name);
        }
        s_refill(s, now);
        while (s->queue.head && s->active < (size_t) s->lim.max_inflight) {
            if (s->breaker == HTTPC_BREAKER_OPEN || (s->breaker == HTTPC_BREAKER_HALF_OPEN && s->probe_out))
                break;
            if (s->lim.rate_per_s > 0) {
                if (s->tokens < 1.0)
                    break;
                s->tokens -= 1.0;
            }
            hm_call_t *c = s->queue.head;
            if (s->breaker == HTTPC_BREAKER_HALF_OPEN) {
                c->probe = true;
                s->probe_out = true;
            }
            s_send(m, c); /* on a failure it finished at once: out of the queue either way */
        }
    }
}

/* s_read_done - every finished transfer curl reports */
static void s_read_done(httpc_multi_t *m)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE)
            s_on_done(m, msg->easy_handle, msg->data.result);
}

/* s_sockets_ready - what the epoll set says is ready, to curl; at most
 * HM_READY_MAX rounds of HM_READY_BATCH (level-triggered: what is left
 * keeps the set readable for the next turn) */
static void s_sockets_ready(httpc_multi_t *m)
{
    struct epoll_event evs[HM_READY_BATCH];
    int running;
    for (int round = 0; round < HM_READY_MAX; round++) {
        int k = epoll_wait(m->epfd, evs, HM_READY_BATCH, 0);
        if (k < 0 && errno != EINTR)
            log_error("httpc: epoll_wait: %s", strerror(errno));
        for (int i = 0; i < k; i++) {
            uint32_t e = evs[i].events;
            int ev = ((e & EPOLLIN) ? CURL_CSELECT_IN : 0) | ((e & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                     ((e & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
            curl_multi_socket_action(m->multi, evs[i].data.fd, ev, &running);
        }
        if (k < HM_READY_BATCH)
            return;
    }
}

/* httpc_multi_run - see httpc_multi.h */
void httpc_multi_run(httpc_multi_t *m, const struct pollfd *fds, size_t n)
{
    int running;
    while (m->incoming.head) /* started before this run: sendable now */
        s_move(m, m->incoming.head, HM_QUEUE, false);
    /* calls started by the callbacks below land in incoming: next run */
    bool ready = false;
    for (size_t i = 0; i < n; i++)
        ready |= fds[i].fd == m->epfd && fds[i].revents;
    if (ready)
        s_sockets_ready(m);
    if (m->timer_at >= 0 && m->clock() >= m->timer_at) {
        m->timer_at = -1;
        curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    s_read_done(m);
    size_t before = m->wire.n;
    s_dispatch(m);
    if (m->wire.n != before || (m->timer_at >= 0 && m->clock() >= m->timer_at)) {
        /* start what was just added now rather than a loop turn later */
        m->timer_at = -1;
        curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        s_read_done(m);
    }
}

/* httpc_multi_fds - see httpc_multi.h: the epoll set's descriptor (an
 * empty set is never readable) */
size_t httpc_multi_fds(const httpc_multi_t *m, struct pollfd *fds, size_t max)
{
    assert(m);
    if (max < 1)
        return 0;
    fds[0] = (struct pollfd){.fd = m->epfd, .events = POLLIN, .revents = 0};
    return 1;
}

/* s_min_wait - fold a deadline into the soonest one */
static void s_min_wait(long *t, int64_t at, int64_t now)
{
    long d = at <= now ? 0 : (long) (at - now);
    if (*t < 0 || d < *t)
        *t = d;
}

/* httpc_multi_timeout - see httpc_multi.h */
long httpc_multi_timeout(const httpc_multi_t *m)
{
    int64_t now = m->clock();
    long t = -1;
    if (m->incoming.head)
        t = 0;
    if (m->timer_at >= 0)
        s_min_wait(&t, m->timer_at, now);
    for (hm_call_t *c = m->waiting.head; c; c = c->next)
        s_min_wait(&t, c->not_before, now);
    for (size_t i = 0; i < m->nsys; i++) {
        const hm_system_t *s = &m->sys[i];
        if (!s->queue.head || s->active >= (size_t) s->lim.max_inflight)
            continue;
        if (s->breaker == HTTPC_BREAKER_OPEN)
            s_min_wait(&t, s->open_until, now);
        else if (s->lim.rate_per_s > 0 && s->tokens < 1.0)
            s_min_wait(&t, s->refill_ms + (int64_t) ((1.0 - s->tokens) * 1000.0 / (double) s->lim.rate_per_s) + 1, now);
        else if (s->breaker == HTTPC_BREAKER_CLOSED)
            t = 0;
    }
    return t;
}

/* ------------------------------------------------------------- status */

size_t httpc_multi_nsystems(const httpc_multi_t *m)
{
    return m->nsys;
}

const char *httpc_multi_system_name(const httpc_multi_t *m, int sys)
{
    return sys >= 0 && (size_t) sys < m->nsys ? m->sys[sys].name : "";
}

size_t httpc_multi_inflight(const httpc_multi_t *m, int sys)
{
    return sys >= 0 && (size_t) sys < m->nsys ? m->sys[sys].active : 0;
}

size_t httpc_multi_queued(const httpc_multi_t *m, int sys)
{
    if (sys < 0 || (size_t) sys >= m->nsys)
        return 0;
    size_t n = m->sys[sys].queue.n;
    for (const hm_call_t *c = m->incoming.head; c; c = c->next)
        n += c->sys == sys;
    for (const hm_call_t *c = m->waiting.head; c; c = c->next)
        n += c->sys == sys;
    return n;
}

httpc_breaker_t httpc_multi_breaker(const httpc_multi_t *m, int sys)
{
    return sys >= 0 && (size_t) sys < m->nsys ? m->sys[sys].breaker : HTTPC_BREAKER_CLOSED;
}

uint64_t httpc_multi_breaker_opened(const httpc_multi_t *m, int sys)
{
    return sys >= 0 && (size_t) sys < m->nsys ? m->sys[sys].opened : 0;
}

const char *httpc_breaker_name(httpc_breaker_t b)
{
    return b == HTTPC_BREAKER_OPEN ? "open" : b == HTTPC_BREAKER_HALF_OPEN ? "half_open" : "closed";
}

size_t httpc_multi_calls(const httpc_multi_t *m)
{
    return m->ncalls;
}
