/* stage_trace - trace context (trace.h) through a stage: the span of the
 * input being handled, the traceparent of what it emits, and the header of
 * the outside calls it makes (see stage.h, TRACE CONTEXT) */
#include "stage_priv.h"
#include "trace.h"

/* sk_trace_input - 0 and the context an event carries in its body, -1 if none */
int sk_trace_input(const event_t *ev, trace_t *out)
{
    assert(out);
    const char *s = NULL;
    size_t len = 0;
    if (!ev || event_get_str(ev, TRACE_KEY, &s, &len) != 0)
        return -1;
    return trace_parse(s, len, out);
}

/* s_input_span - 0 and this stage's span of input ev (a child of the
 * context ev carries, derived from the stage's name and ev's id) and, in
 * *in, ev's own context; -1 if ev carries none */
static int s_input_span(const stage_t *st, const event_t *ev, trace_t *in, trace_t *out)
{
    if (sk_trace_input(ev, in) != 0)
        return -1;
    trace_derive(in, st->name, event_head(ev)->id, out);
    return 0;
}

/* s_pending_span - 0 and a deferred input's span, -1 if it has no trace */
static int s_pending_span(const stage_t *st, const stage_pending_t *p, trace_t *out)
{
    trace_t in;
    if (p->adopted_span) {
        *out = p->span;
        return 0;
    }
    return s_input_span(st, p->ev, &in, out);
}

/* sk_trace_span - 0 and the span of the input being handled, -1 if there
 * is no input or it carries no trace */
int sk_trace_span(const stage_t *st, trace_t *out)
{
    assert(st && out);
    trace_t in;
    if (st->resumed && st->current == st->resumed->ev)
        return s_pending_span(st, st->resumed, out);
    return st->current ? s_input_span(st, st->current, &in, out) : -1;
}

/* stage_pending_trace - see stage.h */
void stage_pending_trace(stage_pending_t *p, const char *traceparent)
{
    assert(p && traceparent);
    p->adopted_span = trace_parse(traceparent, strlen(traceparent), &p->span) == 0;
}

/* stage_trace - see stage.h */
int stage_trace(const stage_t *st, trace_t *out)
{
    return sk_trace_span(st, out);
}

/* sk_trace_body - the body an emitted event is encoded from: body itself,
 * or, while an input with a trace is handled, a copy whose traceparent is
 * this stage's span (replacing one copied from the input); the copy is
 * *tmp, the caller's to destroy */
const event_body_t *sk_trace_body(const stage_t *st, const event_body_t *body, event_body_t **tmp)
{
    assert(tmp && !*tmp);
    trace_t span;
    char tp[TRACE_HEADER_LEN + 1];
    if (sk_trace_span(st, &span) != 0)
        return body;
    trace_format(&span, tp);
    *tmp = event_body_new();
    if (body)
        event_body_copy_body(*tmp, body, TRACE_KEY);
    event_body_str(*tmp, TRACE_KEY, tp);
    return *tmp;
}

/* sk_trace_open - the span exporter, when payguard/trace/otlp_endpoint is
 * set; -1 and a log line for a setting it cannot use */
int sk_trace_open(stage_t *st)
{
    assert(st && st->config && !st->otlp);
    const char *url = config_get(st->config, "payguard/trace/otlp_endpoint");
    if (!url[0])
        return 0;
    long max = 0, timeout = 0;
    char err[256], service[64];
    if (config_bounded(st->config, "payguard/trace/otlp_max_spans", &max, err, sizeof err) ||
        config_bounded(st->config, "payguard/trace/otlp_timeout_ms", &timeout, err, sizeof err)) {
        log_error("%s", err);
        return -1;
    }
    snprintf(service, sizeof service, "payguard-%s", st->name);
    st->otlp = otlp_new(url, service, st->inst, (size_t) max, timeout, err, sizeof err);
    if (!st->otlp) {
        log_error("%s", err);
        return -1;
    }
    log_info("spans go to the collector at %s (%ld at most buffered)", url, max);
    return 0;
}

/* sk_trace_close - post what is buffered, stop the exporter */
void sk_trace_close(stage_t *st)
{
    otlp_destroy(&st->otlp);
}

/* stage_span - see stage.h */
void stage_span(stage_t *st, const char *name, otlp_kind_t kind, const trace_t *ctx, const trace_t *parent,
                int64_t start_ms, bool error, const char *case_key, const char *event_id)
{
    assert(st && name && ctx);
    if (!st->otlp)
        return;
    otlp_span_t s;
    otlp_span_init(&s, ctx, parent, kind, name, start_ms, stage_now_ms());
    s.error = error;
    if (case_key && case_key[0])
        otlp_span_attr(&s, "payguard.case", case_key);
    if (event_id && event_id[0])
        otlp_span_attr(&s, "payguard.event", event_id);
    otlp_add(st->otlp, &s);
}

/* sk_trace_input_done - the span of an input handled since start_ms */
void sk_trace_input_done(stage_t *st, const event_t *ev, int64_t start_ms)
{
    trace_t in, span;
    if (!st->otlp || s_input_span(st, ev, &in, &span) != 0)
        return;
    const event_head_t *h = event_head(ev);
    char name[OTLP_NAME_MAX + 1];
    snprintf(name, sizeof name, "%.23s %.32s", st->name, h->type);
    otlp_span_t s;
    otlp_span_init(&s, &span, &in, OTLP_CONSUMER, name, start_ms, stage_now_ms());
    if (h->case_key[0])
        otlp_span_attr(&s, "payguard.case", h->case_key);
    otlp_span_attr(&s, "payguard.event", h->id);
    otlp_span_attr(&s, "payguard.producer", h->stage);
    otlp_add(st->otlp, &s);
}

/* stage_trace_calls - see stage.h */
void stage_trace_calls(stage_t *st, const stage_pending_t *p)
{
    assert(st);
    st->trace_pin = p;
}

/* sk_trace_current - httpc_multi's question: the span calls start under */
int sk_trace_current(void *arg, trace_t *out)
{
    stage_t *st = arg;
    if (st->trace_pin)
        return s_pending_span(st, st->trace_pin, out);
    return sk_trace_span(st, out);
}

/* sk_trace_call_done - an outside call's span (httpc_multi's tracer) */
void sk_trace_call_done(void *arg, const httpc_span_t *sp)
{
    stage_t *st = arg;
    if (!st->otlp)
        return;
    int64_t now = stage_now_ms();
    char name[OTLP_NAME_MAX + 1];
    snprintf(name, sizeof name, "%.8s %.32s", sp->method, sp->system);
    otlp_span_t s;
    otlp_span_init(&s, &sp->span, &sp->parent, OTLP_CLIENT, name, now - sp->ms, now);
    s.error = sp->failed;
    char v[24];
    otlp_span_attr(&s, "http.request.method", sp->method);
    otlp_span_attr(&s, "payguard.system", sp->system);
    snprintf(v, sizeof v, "%ld", sp->status);
    if (sp->status)
        otlp_span_attr(&s, "http.response.status_code", v);
    snprintf(v, sizeof v, "%d", sp->attempts);
    otlp_span_attr(&s, "payguard.attempts", v);
    otlp_add(st->otlp, &s);
}

/* sk_trace_status - the exporter's counters as gauges of the stage */
void sk_trace_status(stage_t *st)
{
    if (!st->otlp)
        return;
    uint64_t sent = 0, dropped = 0, failed = 0;
    otlp_stats(st->otlp, &sent, &dropped, &failed);
    stage_gauge_label(st, "payguard_otlp_spans_total", "outcome", "sent", (int64_t) sent);
    stage_gauge_label(st, "payguard_otlp_spans_total", "outcome", "dropped", (int64_t) dropped);
    stage_gauge(st, "payguard_otlp_failed_posts_total", (int64_t) failed);
}
