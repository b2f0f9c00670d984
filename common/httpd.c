/* httpd - payguard's HTTP servers: one start, the same limits, the same
 * answers (see httpd.h) */
#include "httpd.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "bearer.h"
#include "listenfd.h"
#include "log.h"
#include "metrics.h"
#include "stage.h"

#define HTTPD_PEER_MAX 48 /* INET6_ADDRSTRLEN and a NUL */

/* slot - a connection the watchdog watches (its socket context) */
typedef struct {
    int fd;           /* -1: a free slot */
    int64_t start_ms; /* its request began: accepted, or the previous answer done */
    bool cut;         /* shut down past the deadline */
    char peer[HTTPD_PEER_MAX];
} slot_t;

struct httpd_t {
    httpd_opts_t o;
    struct MHD_Daemon *d;
    bearer_t metrics;
    pthread_mutex_t mu; /* the slots, the counts, the report */
    pthread_cond_t cv;
    pthread_t watchdog;
    bool watching, stopping;
    slot_t *slots; /* o.max_connections: one per connection the library holds */
    size_t next;   /* where the search for a free slot starts */
    uint64_t cut, refused, cut_unreported, refused_unreported;
    int64_t reported_ms;
    char last_cut[HTTPD_PEER_MAX];
};

static enum MHD_Result s_reply(struct MHD_Connection *conn, unsigned status, char *text, const char *hname,
                               const char *hvalue);

/* httpd_reply - see httpd.h */
enum MHD_Result httpd_reply(struct MHD_Connection *conn, unsigned status, void *obj)
{
    return httpd_reply_header(conn, status, obj, NULL, NULL);
}

/* httpd_reply_header - see httpd.h */
enum MHD_Result httpd_reply_header(struct MHD_Connection *conn, unsigned status, void *obj, const char *hname,
                                   const char *hvalue)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    return s_reply(conn, status, text, hname, hvalue);
}

/* httpd_reply_text - see httpd.h */
enum MHD_Result httpd_reply_text(struct MHD_Connection *conn, unsigned status, char *text)
{
    return s_reply(conn, status, text, NULL, NULL);
}

/* s_reply - JSON text (stolen) as the answer, not cached, one extra header optional */
static enum MHD_Result s_reply(struct MHD_Connection *conn, unsigned status, char *text, const char *hname,
                               const char *hvalue)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (hname)
        MHD_add_response_header(r, hname, hvalue);
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* httpd_error - see httpd.h */
enum MHD_Result httpd_error(struct MHD_Connection *conn, unsigned status, const char *why)
{
    return httpd_reply(conn, status, json_pack("{s:s}", "error", why));
}

/* httpd_unauthorized - see httpd.h */
enum MHD_Result httpd_unauthorized(struct MHD_Connection *conn)
{
    static const char body[] = "{\"error\":\"unknown or missing token\"}";
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *) body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_UNAUTHORIZED, r);
    MHD_destroy_response(r);
    return rc;
}

/* httpd_token_refused - see httpd.h */
enum MHD_Result httpd_token_refused(struct MHD_Connection *conn, const char *why)
{
    return httpd_reply_header(conn, MHD_HTTP_UNAUTHORIZED, json_pack("{s:s}", "error", why), "WWW-Authenticate",
                              "Bearer");
}

/* httpd_readyz - see httpd.h */
enum MHD_Result httpd_readyz(struct MHD_Connection *conn, bool ready, const char *why)
{
    if (ready)
        return httpd_reply(conn, MHD_HTTP_OK, json_pack("{s:b}", "ready", 1));
    return httpd_reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                       json_pack("{s:b, s:s}", "ready", 0, "why", why && *why ? why : "not ready"));
}

/* httpd_throttled - see httpd.h */
enum MHD_Result httpd_throttled(struct MHD_Connection *conn, long retry_after_s)
{
    char ra[24], why[128];
    snprintf(ra, sizeof ra, "%ld", retry_after_s);
    snprintf(why, sizeof why, "too many refused requests from this address: try again in %ld s", retry_after_s);
    return httpd_reply_header(conn, MHD_HTTP_TOO_MANY_REQUESTS, json_pack("{s:s}", "error", why), "Retry-After", ra);
}

/* s_metrics - GET /metrics: the group's metrics, with the Bearer token
 * when payguard/metrics_token_sha256 is set */
static enum MHD_Result s_metrics(httpd_t *h, struct MHD_Connection *conn)
{
    char why[160];
    if (h->metrics.enabled &&
        bearer_check(&h->metrics, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"), why,
                     sizeof why) != 0)
        return httpd_unauthorized(conn);
    char *text = metrics_collect(h->o.run_dir);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
    enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

/* httpd_peer - see httpd.h */
void httpd_peer(struct MHD_Connection *conn, char *out, size_t outlen)
{
    snprintf(out, outlen, "unknown");
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *) ci->client_addr)->sin_addr, out, (socklen_t) outlen);
    else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *) ci->client_addr)->sin6_addr, out, (socklen_t) outlen);
}

/* ------------------------------------------------------------ the server */

/* s_now_ms - monotonic milliseconds */
static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* s_report - under mu: what was cut or refused since the last report, in
 * one line each, at most every HTTPD_REPORT_MS */
static void s_report(httpd_t *h, int64_t now)
{
    if ((!h->cut_unreported && !h->refused_unreported) || now - h->reported_ms < HTTPD_REPORT_MS)
        return;
    if (h->cut_unreported)
        log_warn("%s: closed %llu connection(s) whose request was not received and answered within %u s "
                 "(%s/http_deadline_s; the last from %s)",
                 h->o.name, (unsigned long long) h->cut_unreported, h->o.deadline_s, h->o.section, h->last_cut);
    if (h->refused_unreported)
        log_warn("%s: refused %llu connection(s) over the connection limits (%s/http_max_per_address: %u from one "
                 "address; %u in all)",
                 h->o.name, (unsigned long long) h->refused_unreported, h->o.section, h->o.max_per_address,
                 h->o.max_connections);
    h->cut_unreported = h->refused_unreported = 0;
    h->reported_ms = now;
}

/* s_sweep - under mu: shut down every connection past its deadline */
static void s_sweep(httpd_t *h, int64_t now)
{
    int64_t limit = (int64_t) h->o.deadline_s * 1000;
    uint64_t n = 0;
    for (size_t i = 0; i < h->o.max_connections; i++) {
        slot_t *s = &h->slots[i];
        if (s->fd < 0 || s->cut || now - s->start_ms < limit)
            continue;
        shutdown(s->fd, SHUT_RDWR); /* registered: still this connection's socket */
        s->cut = true;
        memcpy(h->last_cut, s->peer, sizeof h->last_cut);
        n++;
    }
    h->cut += n;
    h->cut_unreported += n;
    if (n && h->o.st)
        stage_count(h->o.st, "payguard_http_deadline_closed_total", NULL, NULL, n);
    s_report(h, now);
}

/* s_watch - the watchdog thread: a sweep every HTTPD_SWEEP_MS */
static void *s_watch(void *arg)
{
    httpd_t *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += HTTPD_SWEEP_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
        s_sweep(h, s_now_ms());
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* s_notify - libmicrohttpd's notify-connection callback: a connection is
 * registered with its socket and start when accepted, and unregistered
 * before the library closes its socket */
static void s_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                     enum MHD_ConnectionNotificationCode code)
{
    httpd_t *h = cls;
    slot_t *s = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (s) {
            pthread_mutex_lock(&h->mu);
            s->fd = -1;
            pthread_mutex_unlock(&h->mu);
        }
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    char peer[HTTPD_PEER_MAX];
    httpd_peer(conn, peer, sizeof peer);
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->o.max_connections && ci && !s; i++) {
        slot_t *t = &h->slots[(h->next + i) % h->o.max_connections];
        if (t->fd < 0)
            s = t;
    }
    if (s) {
        *s = (slot_t){.fd = ci->connect_fd, .start_ms = s_now_ms()};
        memcpy(s->peer, peer, sizeof s->peer);
        h->next = (size_t) (s - h->slots + 1) % h->o.max_connections;
    } else if (ci) { /* the library holds more than its limit: not served unwatched */
        log_error("%s: no slot for a connection from %s: closed", h->o.name, peer);
        shutdown(ci->connect_fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&h->mu);
    *socket_context = s;
}

/* s_completed - a request is done: the stage's callback, and the
 * connection's next request starts its deadline now */
static void s_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    httpd_t *h = cls;
    if (h->o.completed)
        h->o.completed(h->o.cls, conn, con_cls, toe);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    slot_t *s = ci ? ci->socket_context : NULL;
    if (s) {
        pthread_mutex_lock(&h->mu);
        s->start_ms = s_now_ms();
        pthread_mutex_unlock(&h->mu);
    }
}

/* s_log - libmicrohttpd's messages: a connection refused over a limit is
 * counted (and reported by s_report), the others go to the stage's logger */
static void s_log(void *cls, const char *fmt, va_list ap)
{
    httpd_t *h = cls;
    char msg[256];
    va_list copy;
    va_copy(copy, ap);
    vsnprintf(msg, sizeof msg, fmt, copy);
    va_end(copy);
    if (!strstr(msg, "reached connection limit")) {
        if (h->o.log)
            h->o.log(h->o.log_cls, fmt, ap);
        return;
    }
    if (h->o.st)
        stage_count(h->o.st, "payguard_http_limit_refused_total", NULL, NULL, 1);
    pthread_mutex_lock(&h->mu);
    h->refused++;
    h->refused_unreported++;
    s_report(h, s_now_ms());
    pthread_mutex_unlock(&h->mu);
}

/* s_access - GET /metrics here, everything else to the stage's handler */
static enum MHD_Result s_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    httpd_t *h = cls;
    if (!*con_cls && strcmp(method, "GET") == 0 && strcmp(url, "/metrics") == 0)
        return s_metrics(h, conn);
    return h->o.answer(h->o.cls, conn, url, method, version, upload, upload_size, con_cls);
}

/* s_check - the options' ranges; -1 and err */
static int s_check(const httpd_opts_t *o, char *err, size_t errlen)
{
    if (o->listen_fd < 0)
        snprintf(err, errlen, "%s: no listening socket", o->name);
    else if (o->threads > HTTPD_MAX_THREADS)
        snprintf(err, errlen, "%s: %u threads (at most %d)", o->name, o->threads, HTTPD_MAX_THREADS);
    else if (o->max_connections < 1 || o->max_connections > HTTPD_MAX_CONNECTIONS)
        snprintf(err, errlen, "%s: %u connections (1..%d)", o->name, o->max_connections, HTTPD_MAX_CONNECTIONS);
    else if (o->max_per_address < 1 || o->max_per_address > o->max_connections)
        snprintf(err, errlen, "%s/http_max_per_address = %u: want 1..%u, the most connections it serves in all",
                 o->section, o->max_per_address, o->max_connections);
    else if (o->deadline_s < 1 || o->deadline_s > HTTPD_MAX_DEADLINE_S)
        snprintf(err, errlen, "%s/http_deadline_s = %u: want 1..%d", o->section, o->deadline_s, HTTPD_MAX_DEADLINE_S);
    else
        return 0;
    return -1;
}

/* s_daemon - the library's daemon on h's options */
static struct MHD_Daemon *s_daemon(httpd_t *h)
{
    const httpd_opts_t *o = &h->o;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    flags |= o->threads ? MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME : MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
    struct MHD_OptionItem extra[4];
    size_t n = 0;
    if (o->threads)
        extra[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, (intptr_t) o->threads, NULL};
    if (o->memory_limit)
        extra[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t) o->memory_limit, NULL};
    if (o->strict)
        extra[n++] = (struct MHD_OptionItem){MHD_OPTION_STRICT_FOR_CLIENT, 1, NULL};
    extra[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    return MHD_start_daemon(flags, 0, NULL, NULL, s_access, h, MHD_OPTION_EXTERNAL_LOGGER, s_log,
                            h, /* first: it sees every message */
                            MHD_OPTION_LISTEN_SOCKET, o->listen_fd, MHD_OPTION_CONNECTION_LIMIT, o->max_connections,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->max_per_address, MHD_OPTION_CONNECTION_TIMEOUT,
                            o->deadline_s, MHD_OPTION_NOTIFY_CONNECTION, s_notify, h, MHD_OPTION_NOTIFY_COMPLETED,
                            s_completed, h, MHD_OPTION_ARRAY, extra, MHD_OPTION_END);
}

/* s_free - what httpd_start allocated */
static void s_free(httpd_t *h)
{
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h->slots);
    free(h);
}

/* httpd_start - see httpd.h */
httpd_t *httpd_start(const httpd_opts_t *opts, char *err, size_t errlen)
{
    assert(opts && opts->name && opts->section && opts->answer && opts->run_dir && err);
    if (s_check(opts, err, errlen) != 0)
        return NULL;
    httpd_t *h = calloc(1, sizeof *h);
    assert(h);
    h->o = *opts;
    if (bearer_parse("payguard/metrics_token_sha256", opts->metrics_token_sha256, &h->metrics, err, errlen) != 0) {
        free(h);
        return NULL;
    }
    h->slots = calloc(opts->max_connections, sizeof *h->slots);
    assert(h->slots);
    for (size_t i = 0; i < opts->max_connections; i++)
        h->slots[i].fd = -1;
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cv, &ca);
    pthread_condattr_destroy(&ca);
    h->reported_ms = INT64_MIN / 2;
    h->d = s_daemon(h);
    if (!h->d) {
        snprintf(err, errlen, "%s: libmicrohttpd refused to serve the socket: %s", opts->name, strerror(errno));
        s_free(h);
        return NULL;
    }
    int rc = pthread_create(&h->watchdog, NULL, s_watch, h);
    if (rc != 0) {
        snprintf(err, errlen, "%s: no watchdog thread: %s", opts->name, strerror(rc));
        MHD_stop_daemon(h->d);
        s_free(h);
        return NULL;
    }
    h->watching = true;
    return h;
}

/* httpd_quiesce - see httpd.h */
void httpd_quiesce(httpd_t *self)
{
    assert(self);
    MHD_quiesce_daemon(self->d); /* the listening socket stays open until exit */
}

/* httpd_stop - see httpd.h */
void httpd_stop(httpd_t **self_p)
{
    assert(self_p);
    httpd_t *h = *self_p;
    if (!h)
        return;
    MHD_stop_daemon(h->d); /* unregisters every connection */
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    h->reported_ms = INT64_MIN / 2;
    s_report(h, s_now_ms());
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    if (h->watching)
        pthread_join(h->watchdog, NULL);
    s_free(h);
    *self_p = NULL;
}

/* httpd_stats - see httpd.h */
void httpd_stats(httpd_t *self, uint64_t *cut, uint64_t *refused)
{
    assert(self && cut && refused);
    pthread_mutex_lock(&self->mu);
    *cut = self->cut;
    *refused = self->refused;
    pthread_mutex_unlock(&self->mu);
}

/* httpd_serve - see httpd.h */
httpd_t *httpd_serve(const config_t *c, const char *section, httpd_opts_t *opts, char *err, size_t errlen)
{
    assert(c && section && opts && err);
    char key[64], bind_key[64];
    long per, deadline, port;
    snprintf(key, sizeof key, "%s/http_max_per_address", section);
    if (config_bounded(c, key, &per, err, errlen) != 0)
        return NULL;
    snprintf(key, sizeof key, "%s/http_deadline_s", section);
    if (config_bounded(c, key, &deadline, err, errlen) != 0)
        return NULL;
    opts->section = section;
    opts->max_per_address = (unsigned) per;
    opts->deadline_s = (unsigned) deadline;
    opts->metrics_token_sha256 = config_get(c, "payguard/metrics_token_sha256");
    opts->run_dir = config_run_dir(c);
    if (opts->listen_fd < 0) {
        snprintf(key, sizeof key, "%s/http_port", section);
        snprintf(bind_key, sizeof bind_key, "%s/http_bind", section);
        if (config_bounded(c, key, &port, err, errlen) != 0 ||
            (opts->listen_fd = listenfd_bind(config_get(c, bind_key), port, err, errlen)) < 0)
            return NULL;
    }
    return httpd_start(opts, err, errlen);
}
