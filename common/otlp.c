/* otlp - spans to an OpenTelemetry collector, OTLP/HTTP JSON (see otlp.h) */
#include "otlp.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpc.h"
#include "log.h"
#include "utf8.h"

#define OTLP_PATH "/v1/traces"

struct otlp_t {
    httpc_t *client;
    char service[64], instance[64];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    otlp_span_t *buf; /* max spans; n of them filled */
    size_t n, max;
    bool stop;
    bool failing; /* the last post failed: said once until one succeeds */
    uint64_t sent, dropped, failed;
};

/* s_attr - {"key": k, "value": {"stringValue": v}}, NULL if v is not UTF-8 */
static json_t *s_attr(const char *k, const char *v)
{
    json_t *value = json_stringn(v, strlen(v));
    if (!value)
        return NULL;
    return json_pack("{s:s, s:{s:o}}", "key", k, "value", "stringValue", value);
}

/* s_span_json - one span in OTLP's JSON mapping (ids as hex, times as
 * decimal strings of nanoseconds) */
static json_t *s_span_json(const otlp_span_t *s)
{
    assert(s && s->kind >= OTLP_INTERNAL && s->kind <= OTLP_CONSUMER);
    char tid[2 * TRACE_ID_BYTES + 1], sid[2 * TRACE_SPAN_BYTES + 1], pid[2 * TRACE_SPAN_BYTES + 1];
    char start[24], end[24];
    trace_id_hex(&s->ctx, tid);
    trace_span_hex(s->ctx.span_id, sid);
    trace_span_hex(s->parent, pid);
    snprintf(start, sizeof start, "%lld000000", (long long) s->start_ms);
    snprintf(end, sizeof end, "%lld000000", (long long) (s->end_ms < s->start_ms ? s->start_ms : s->end_ms));
    json_t *attrs = json_array();
    for (size_t i = 0; i < s->nattrs && i < OTLP_ATTRS; i++) {
        json_t *a = s_attr(s->attrs[i].key, s->attrs[i].value);
        if (a)
            json_array_append_new(attrs, a);
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:o, s:{s:i}}", "traceId", tid, "spanId", sid, "name",
                          s->name, "kind", (int) s->kind, "startTimeUnixNano", start, "endTimeUnixNano", end,
                          "attributes", attrs, "status", "code", s->error ? 2 : 1);
    assert(o);
    static const unsigned char zero[TRACE_SPAN_BYTES];
    if (memcmp(s->parent, zero, sizeof zero) != 0)
        json_object_set_new(o, "parentSpanId", json_string(pid));
    return o;
}

/* otlp_json - see otlp.h */
char *otlp_json(const otlp_span_t *spans, size_t n, const char *service, const char *instance)
{
    assert(service && instance);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, s_span_json(&spans[i]));
    json_t *resource =
        json_pack("{s:[o,o]}", "attributes", s_attr("service.name", service), s_attr("service.instance.id", instance));
    json_t *req = json_pack("{s:[{s:o, s:[{s:{s:s}, s:o}]}]}", "resourceSpans", "resource", resource, "scopeSpans",
                            "scope", "name", "payguard", "spans", list);
    assert(req);
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    assert(text);
    return text;
}

/* otlp_span_init - see otlp.h */
void otlp_span_init(otlp_span_t *s, const trace_t *ctx, const trace_t *parent, otlp_kind_t kind, const char *name,
                    int64_t start_ms, int64_t end_ms)
{
    assert(s && ctx && name);
    assert(kind >= OTLP_INTERNAL && kind <= OTLP_CONSUMER);
    memset(s, 0, sizeof *s);
    s->ctx = *ctx;
    if (parent)
        memcpy(s->parent, parent->span_id, sizeof s->parent);
    s->kind = kind;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->start_ms = start_ms;
    s->end_ms = end_ms;
}

/* otlp_span_attr - see otlp.h */
void otlp_span_attr(otlp_span_t *s, const char *key, const char *value)
{
    assert(s && key && value);
    if (s->nattrs >= OTLP_ATTRS)
        return;
    snprintf(s->attrs[s->nattrs].key, sizeof s->attrs[s->nattrs].key, "%s", key);
    size_t n = utf8_cut(value, strlen(value), OTLP_VALUE_MAX);
    memcpy(s->attrs[s->nattrs].value, value, n);
    s->attrs[s->nattrs].value[n] = '\0';
    s->nattrs++;
}

/* s_post - one batch to the collector, one attempt; true if it took it */
static bool s_post(otlp_t *self, const otlp_span_t *spans, size_t n)
{
    char *body = otlp_json(spans, n, self->service, self->instance);
    httpc_resp_t resp = {0};
    int rc = httpc_do(self->client, "POST", OTLP_PATH, body, NULL, &resp);
    free(body);
    bool ok = rc == 0 && resp.status >= 200 && resp.status < 300;
    if (!ok && !self->failing)
        log_warn("otlp: the collector at %s did not take %zu spans (%s%ld): spans are dropped until it does",
                 httpc_base_url(self->client), n, rc == 0 ? "HTTP " : resp.error, rc == 0 ? resp.status : 0L);
    else if (ok && self->failing)
        log_info("otlp: the collector at %s takes spans again", httpc_base_url(self->client));
    self->failing = !ok;
    httpc_resp_free(&resp);
    return ok;
}

/* s_take - wait up to a second (or for half a buffer, or stop), then take
 * what is buffered into out; how many */
static size_t s_take(otlp_t *self, otlp_span_t *out, bool *stop)
{
    pthread_mutex_lock(&self->mu);
    if (!self->stop && self->n < self->max / 2) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&self->cv, &self->mu, &until);
    }
    size_t n = self->n;
    memcpy(out, self->buf, n * sizeof *out);
    self->n = 0;
    *stop = self->stop;
    pthread_mutex_unlock(&self->mu);
    return n;
}

static void *s_run(void *arg)
{
    otlp_t *self = arg;
    otlp_span_t *batch = malloc(self->max * sizeof *batch);
    assert(batch);
    bool stop = false;
    while (!stop) {
        size_t n = s_take(self, batch, &stop);
        if (n == 0)
            continue;
        bool ok = s_post(self, batch, n);
        pthread_mutex_lock(&self->mu);
        if (ok)
            self->sent += n;
        else {
            self->dropped += n;
            self->failed++;
        }
        pthread_mutex_unlock(&self->mu);
    }
    free(batch);
    return NULL;
}

/* otlp_new - see otlp.h */
otlp_t *otlp_new(const char *endpoint, const char *service, const char *instance, size_t max_spans, long timeout_ms,
                 char *err, size_t errlen)
{
    assert(endpoint && service && instance);
    if (max_spans < 2 || max_spans > OTLP_MAX_SPANS) {
        snprintf(err, errlen, "otlp: max_spans %zu out of 2..%d", max_spans, OTLP_MAX_SPANS);
        return NULL;
    }
    if (strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0) {
        snprintf(err, errlen, "otlp endpoint '%.64s' is not an http:// or https:// URL", endpoint);
        return NULL;
    }
    otlp_t *self = calloc(1, sizeof *self);
    assert(self);
    self->client = httpc_new(endpoint, NULL, timeout_ms);
    if (!self->client) {
        snprintf(err, errlen, "otlp endpoint '%.64s' is not a URL payguard can call", endpoint);
        free(self);
        return NULL;
    }
    snprintf(self->service, sizeof self->service, "%s", service);
    snprintf(self->instance, sizeof self->instance, "%s", instance);
    self->max = max_spans;
    self->buf = calloc(max_spans, sizeof *self->buf);
    assert(self->buf);
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cv, NULL);
    if ((errno = pthread_create(&self->thread, NULL, s_run, self)) != 0) {
        snprintf(err, errlen, "otlp: cannot start its thread: %s", strerror(errno));
        httpc_destroy(&self->client);
        free(self->buf);
        free(self);
        return NULL;
    }
    return self;
}

/* otlp_add - see otlp.h */
bool otlp_add(otlp_t *self, const otlp_span_t *span)
{
    assert(self && span);
    pthread_mutex_lock(&self->mu);
    bool room = self->n < self->max;
    if (room)
        self->buf[self->n++] = *span;
    else
        self->dropped++;
    if (self->n == self->max / 2)
        pthread_cond_signal(&self->cv);
    pthread_mutex_unlock(&self->mu);
    return room;
}

/* otlp_stats - see otlp.h */
void otlp_stats(otlp_t *self, uint64_t *sent, uint64_t *dropped, uint64_t *failed_posts)
{
    assert(self);
    pthread_mutex_lock(&self->mu);
    *sent = self->sent;
    *dropped = self->dropped;
    *failed_posts = self->failed;
    pthread_mutex_unlock(&self->mu);
}

/* otlp_destroy - see otlp.h */
void otlp_destroy(otlp_t **self_p)
{
    otlp_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock(&self->mu);
    self->stop = true;
    pthread_cond_signal(&self->cv);
    pthread_mutex_unlock(&self->mu);
    pthread_join(self->thread, NULL);
    httpc_destroy(&self->client);
    pthread_cond_destroy(&self->cv);
    pthread_mutex_destroy(&self->mu);
    free(self->buf);
    free(self);
    *self_p = NULL;
}
