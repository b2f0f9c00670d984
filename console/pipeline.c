/* pipeline - the Pipeline page's numbers from the group's files, and their history (see pipeline.h) */
#include "pipeline.h"
#include "stage.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ a sample */

/* pipeline_snap_master - see pipeline.h */
void pipeline_snap_master(pipeline_snap_t *snap, const char *text, int64_t t_ms)
{
    memset(snap, 0, sizeof *snap);
    snap->t_ms = t_ms;
    for (const char *p = text; p && *p && snap->ninst < PIPELINE_MAX_INSTANCES;) {
        pipeline_inst_t *in = &snap->inst[snap->ninst];
        char name[64];
        int pid;
        long long started;
        unsigned restarts;
        if (sscanf(p, "%63s %d %lld %u", name, &pid, &started, &restarts) == 4 && strlen(name) < sizeof in->inst) {
            memcpy(in->inst, name, strlen(name) + 1); /* fits: checked above */
            snprintf(in->stage, sizeof in->stage, "%.*s", (int) strcspn(name, "."), name);
            in->pid = pid > 0 ? pid : 0;
            in->started_unix = started;
            in->restarts = restarts;
            in->state = in->pid ? "up" : "down";
            snap->ninst++;
        }
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
}

/* pipeline_snap_unit - see pipeline.h */
bool pipeline_snap_unit(pipeline_snap_t *snap, const char *inst, int pid, bool alive)
{
    size_t n = strlen(inst), dot = strcspn(inst, ".");
    if (snap->ninst == PIPELINE_MAX_INSTANCES || n == 0 || n >= PIPELINE_NAME_MAX || dot == 0 || dot == n)
        return false;
    pipeline_inst_t *in = &snap->inst[snap->ninst++];
    memset(in, 0, sizeof *in);
    memcpy(in->inst, inst, n + 1);
    memcpy(in->stage, inst, dot);
    in->stage[dot] = '\0';
    in->pid = alive && pid > 0 ? pid : 0;
    in->state = in->pid ? "up" : "down";
    snap->no_master = true;
    return true;
}

/* pipeline_state - see pipeline.h */
void pipeline_state(pipeline_snap_t *snap, size_t i, const char *stat_text, double age_s)
{
    assert(i < snap->ninst);
    pipeline_inst_t *in = &snap->inst[i];
    in->why[0] = '\0';
    in->has_stat = stat_text != NULL;
    if (!in->pid) {
        in->state = "down";
        snprintf(in->why, sizeof in->why, "not running: %s restarts it", snap->no_master ? "systemd" : "the master");
        return;
    }
    if (!stat_text) { /* the sandbox and the console write none: running is up */
        in->state = "up";
        return;
    }
    stage_readiness_t r = stage_status_ready(stat_text, in->pid, in->why, sizeof in->why);
    if (r == STAGE_STARTING) {
        in->state = "starting";
        snprintf(in->why, sizeof in->why, "recovering its state");
    } else if (age_s > PIPELINE_STALE_S) {
        in->state = "not answering";
        snprintf(in->why, sizeof in->why, "no status for %.0f s", age_s);
    } else
        in->state = r == STAGE_NOT_READY ? "not ready" : "up";
}

/* pipeline_prom_line - see pipeline.h */
bool pipeline_prom_line(const char *line, char *name, size_t namelen, char *labels, size_t labelslen, double *value)
{
    size_t n = strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:");
    if (n == 0 || n >= namelen || (line[n] != '{' && line[n] != ' '))
        return false;
    memcpy(name, line, n);
    name[n] = '\0';
    const char *p = line + n;
    labels[0] = '\0';
    if (*p == '{') {
        const char *q = p + 1;
        bool quoted = false;
        for (; *q && *q != '\n' && (quoted || *q != '}'); q++) {
            if (quoted && *q == '\\' && q[1])
                q++;
            else if (*q == '"')
                quoted = !quoted;
        }
        if (*q != '}' || (size_t) (q - p - 1) >= labelslen)
            return false;
        memcpy(labels, p + 1, (size_t) (q - p - 1));
        labels[q - p - 1] = '\0';
        p = q + 1;
    }
    if (*p != ' ')
        return false;
    char *end;
    *value = strtod(p + 1, &end);
    return end != p + 1 && (*end == '\0' || *end == '\n' || *end == ' ');
}

/* pipeline_label - see pipeline.h */
bool pipeline_label(const char *labels, const char *key, char *out, size_t outlen)
{
    size_t kl = strlen(key);
    for (const char *p = labels; p && *p;) {
        const char *eq = strchr(p, '=');
        if (!eq || eq[1] != '"')
            return false;
        bool match = (size_t) (eq - p) == kl && strncmp(p, key, kl) == 0;
        size_t o = 0;
        const char *q = eq + 2;
        for (; *q && *q != '"'; q++) {
            char c = *q;
            if (c == '\\' && q[1]) {
                q++;
                c = *q == 'n' ? '\n' : *q;
            }
            if (match && o + 1 < outlen)
                out[o++] = c;
        }
        if (match) {
            out[o] = '\0';
            return true;
        }
        p = *q == '"' && q[1] == ',' ? q + 2 : NULL;
    }
    return false;
}

/* s_system - the entry of system name, added when new; NULL when full */
static pipeline_system_t *s_system(pipeline_snap_t *snap, const char *name)
{
    for (size_t i = 0; i < snap->nsys; i++)
        if (strcmp(snap->sys[i].name, name) == 0)
            return &snap->sys[i];
    if (snap->nsys == PIPELINE_MAX_SYSTEMS || strlen(name) >= PIPELINE_NAME_MAX)
        return NULL;
    pipeline_system_t *s = &snap->sys[snap->nsys++];
    memset(s, 0, sizeof *s);
    memcpy(s->name, name, strlen(name) + 1); /* fits: checked above */
    s->calls_per_s = s->error_rate = s->p50_s = s->p99_s = NAN;
    return s;
}

/* s_bucket - add one cumulative bucket count (le) to a system's histogram */
static void s_bucket(pipeline_system_t *s, const char *labels, double v)
{
    char le[32];
    if (!pipeline_label(labels, "le", le, sizeof le))
        return;
    double bound = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, NULL);
    size_t b = 0;
    while (b < s->nbuckets && s->le[b] < bound)
        b++;
    if (b < s->nbuckets && s->le[b] == bound) {
        s->cum[b] += v;
        return;
    }
    if (s->nbuckets == PIPELINE_MAX_BUCKETS)
        return;
    memmove(&s->le[b + 1], &s->le[b], (s->nbuckets - b) * sizeof s->le[0]);
    memmove(&s->cum[b + 1], &s->cum[b], (s->nbuckets - b) * sizeof s->cum[0]);
    s->le[b] = bound;
    s->cum[b] = v;
    s->nbuckets++;
}

/* s_outside - one outside-call sample of an instance into its system */
static void s_outside(pipeline_snap_t *snap, const char *name, const char *labels, double v)
{
    char sys[PIPELINE_NAME_MAX + 1], cls[16] = "";
    if (!pipeline_label(labels, "system", sys, sizeof sys))
        return;
    pipeline_system_t *s = s_system(snap, sys);
    if (!s)
        return;
    if (strcmp(name, "payguard_outside_call_seconds_count") == 0) {
        pipeline_label(labels, "class", cls, sizeof cls);
        s->calls_total += v;
        if (strcmp(cls, "5xx") == 0 || strcmp(cls, "error") == 0)
            s->errors_total += v;
    } else if (strcmp(name, "payguard_outside_call_seconds_bucket") == 0)
        s_bucket(s, labels, v);
    else if (strcmp(name, "payguard_outside_inflight") == 0)
        s->inflight += v;
    else if (strcmp(name, "payguard_outside_queued") == 0)
        s->queued += v;
    else if (strcmp(name, "payguard_outside_breaker") == 0 && (int) v != 0 && s->breaker != 1)
        s->breaker = (int) v; /* open beats half-open beats closed */
}

/* s_instance_sample - one of the instance's own samples */
static void s_instance_sample(pipeline_snap_t *snap, pipeline_inst_t *in, const char *name, const char *labels,
                              double v)
{
    char dest[16] = "";
    pipeline_label(labels, "dest", dest, sizeof dest);
    bool next = strcmp(dest, "next") == 0;
    if (strcmp(name, "payguard_events_in_total") == 0)
        in->in_total = v;
    else if (strcmp(name, "payguard_events_out_total") == 0)
        in->out_total = v;
    else if (strcmp(name, "payguard_unacked") == 0)
        *(next ? &in->unacked_next : &in->unacked_audit) = v;
    else if (strcmp(name, "payguard_unacked_oldest_seconds") == 0) {
        *(next ? &in->oldest_next_s : &in->oldest_audit_s) = v;
        if (v > snap->oldest_unacked_s)
            snap->oldest_unacked_s = v;
    } else if (strcmp(name, "payguard_journal_bytes") == 0)
        in->journal_bytes = v;
    else if (strcmp(name, "payguard_journal_segments") == 0)
        in->journal_segments = v;
    else if (strcmp(name, "payguard_journal_retention_seconds") == 0)
        in->retention_s = v;
    else if (strcmp(name, "payguard_journal_retired_segments_total") == 0)
        in->retired_segments = v;
}

/* pipeline_snap_prom - see pipeline.h */
void pipeline_snap_prom(pipeline_snap_t *snap, size_t i, const char *text)
{
    assert(i < snap->ninst);
    pipeline_inst_t *in = &snap->inst[i];
    for (const char *p = text; p && *p;) {
        char name[128], labels[512];
        double v;
        if (pipeline_prom_line(p, name, sizeof name, labels, sizeof labels, &v) && isfinite(v)) {
            if (strncmp(name, "payguard_outside_", 17) == 0)
                s_outside(snap, name, labels, v);
            else if (strcmp(name, "payguard_ingest_receipts_total") == 0)
                snap->receipts_total += v;
            else if (strcmp(name, "payguard_approvals_pending") == 0) {
                snap->approvals_pending += v;
                snap->have_pending = true;
            } else if (strcmp(name, "payguard_ops_review_queue") == 0) {
                snap->ops_review += v;
                snap->have_ops_review = true;
            } else
                s_instance_sample(snap, in, name, labels, v);
        }
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
}

/* pipeline_quantile - see pipeline.h */
double pipeline_quantile(const double *le, const double *cum, size_t n, double q)
{
    if (n == 0 || cum[n - 1] <= 0)
        return NAN;
    double rank = q * cum[n - 1];
    size_t b = 0;
    while (b + 1 < n && cum[b] < rank)
        b++;
    if (isinf(le[b]))
        return b > 0 ? le[b - 1] : NAN;
    double lo = b > 0 ? le[b - 1] : 0, below = b > 0 ? cum[b - 1] : 0, in = cum[b] - below;
    return in > 0 ? lo + (le[b] - lo) * (rank - below) / in : le[b];
}

/* s_delta - a counter's growth from was to now; a restarted process starts again from 0 */
static double s_delta(double now, double was)
{
    return now >= was ? now - was : now;
}

/* s_system_rates - s's rates against its previous sample p (NULL: none) */
static void s_system_rates(pipeline_system_t *s, const pipeline_system_t *p, double dt)
{
    if (!p || dt <= 0)
        return;
    double calls = s_delta(s->calls_total, p->calls_total), errors = s_delta(s->errors_total, p->errors_total);
    s->calls_per_s = calls / dt;
    s->error_rate = calls > 0 ? errors / calls : NAN;
    if (calls <= 0 || p->nbuckets != s->nbuckets)
        return;
    double d[PIPELINE_MAX_BUCKETS];
    for (size_t b = 0; b < s->nbuckets; b++)
        d[b] = s_delta(s->cum[b], p->cum[b]);
    for (size_t b = 1; b < s->nbuckets; b++) /* a restart mid-way: keep it cumulative */
        d[b] = d[b] < d[b - 1] ? d[b - 1] : d[b];
    s->p50_s = pipeline_quantile(s->le, d, s->nbuckets, 0.5);
    s->p99_s = pipeline_quantile(s->le, d, s->nbuckets, 0.99);
}

/* pipeline_snap_rates - see pipeline.h */
void pipeline_snap_rates(pipeline_snap_t *cur, const pipeline_snap_t *prev)
{
    double dt = prev ? (double) (cur->t_ms - prev->t_ms) / 1000.0 : 0;
    bool rates = prev && dt > 0;
    cur->webhooks_per_s = rates ? s_delta(cur->receipts_total, prev->receipts_total) / dt : NAN;
    for (size_t i = 0; i < cur->ninst; i++) {
        pipeline_inst_t *in = &cur->inst[i];
        const pipeline_inst_t *was = NULL;
        for (size_t k = 0; rates && k < prev->ninst && !was; k++)
            if (strcmp(prev->inst[k].inst, in->inst) == 0)
                was = &prev->inst[k];
        bool same = was && was->pid == in->pid && in->pid;
        in->in_per_s = !in->has_stat || !in->pid || !was ? NAN
                       : same                            ? s_delta(in->in_total, was->in_total) / dt
                                                         : in->in_total / dt;
        in->out_per_s = !in->has_stat || !in->pid || !was ? NAN
                        : same                            ? s_delta(in->out_total, was->out_total) / dt
                                                          : in->out_total / dt;
    }
    for (size_t i = 0; i < cur->nsys; i++) {
        const pipeline_system_t *p = NULL;
        for (size_t k = 0; rates && k < prev->nsys && !p; k++)
            if (strcmp(prev->sys[k].name, cur->sys[i].name) == 0)
                p = &prev->sys[k];
        s_system_rates(&cur->sys[i], p, dt);
    }
}

/* s_num - a number for JSON, null when not known */
static json_t *s_num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* s_inst_json - one instance's row */
static json_t *s_inst_json(const pipeline_snap_t *snap, const pipeline_inst_t *in, int64_t now_s)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:i}", "instance", in->inst, "stage", in->stage, "state", in->state, "why",
                          in->why, "pid", in->pid);
    json_object_set_new(o, "restarts", snap->no_master ? json_null() : json_integer((json_int_t) in->restarts));
    json_object_set_new(o, "uptime_s",
                        in->pid && in->started_unix ? json_integer(now_s - in->started_unix) : json_null());
    if (!in->has_stat || !in->pid) /* no stage, or none running: no numbers (its old files are not its) */
        return o;
    json_t *s = json_pack("{s:o,s:o,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "in_per_s", s_num(in->in_per_s), "out_per_s",
                          s_num(in->out_per_s), "in_total", in->in_total, "out_total", in->out_total, "unacked_next",
                          in->unacked_next, "unacked_audit", in->unacked_audit, "oldest_next_s", in->oldest_next_s,
                          "oldest_audit_s", in->oldest_audit_s, "journal_bytes", in->journal_bytes, "journal_segments",
                          in->journal_segments);
    json_object_set_new(s, "retention_s", json_real(in->retention_s));
    json_object_set_new(s, "retired_segments", json_real(in->retired_segments));
    json_object_update(o, s);
    json_decref(s);
    return o;
}

/* pipeline_snap_json - see pipeline.h */
json_t *pipeline_snap_json(const pipeline_snap_t *snap)
{
    static const char *const breakers[] = {"closed", "open", "half-open"};
    json_t *insts = json_array(), *systems = json_array();
    for (size_t i = 0; i < snap->ninst; i++)
        json_array_append_new(insts, s_inst_json(snap, &snap->inst[i], snap->t_ms / 1000));
    for (size_t i = 0; i < snap->nsys; i++) {
        const pipeline_system_t *s = &snap->sys[i];
        json_array_append_new(systems,
                              json_pack("{s:s,s:o,s:o,s:o,s:o,s:s,s:f,s:f,s:f}", "system", s->name, "calls_per_s",
                                        s_num(s->calls_per_s), "error_rate", s_num(s->error_rate), "p50_ms",
                                        s_num(s->p50_s * 1000), "p99_ms", s_num(s->p99_s * 1000), "breaker",
                                        breakers[s->breaker >= 0 && s->breaker <= 2 ? s->breaker : 0], "inflight",
                                        s->inflight, "queued", s->queued, "calls_total", s->calls_total));
    }
    json_t *e2e = json_pack("{s:o,s:o,s:o,s:f}", "webhooks_per_s", s_num(snap->webhooks_per_s), "awaiting_people",
                            snap->have_pending ? json_real(snap->approvals_pending) : json_null(), "ops_review",
                            snap->have_ops_review ? json_real(snap->ops_review) : json_null(), "oldest_unacked_s",
                            snap->oldest_unacked_s);
    return json_pack("{s:I,s:s,s:o,s:o,s:o}", "at_ms", (json_int_t) snap->t_ms, "supervisor",
                     snap->no_master ? "systemd" : "master", "instances", insts, "systems", systems, "end_to_end", e2e);
}

/* ------------------------------------------------------------ history */

struct pipeline_hist_t {
    size_t cap, head, count; /* the ring of samples: oldest at head */
    size_t max_series, nseries;
    int64_t *t;
    char (*names)[64];
    double *v; /* series s, slot k at v[s * cap + k] */
};

/* pipeline_hist_new - see pipeline.h */
pipeline_hist_t *pipeline_hist_new(size_t samples, size_t max_series)
{
    assert(samples > 0 && max_series > 0);
    pipeline_hist_t *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->cap = samples;
    h->max_series = max_series;
    h->t = calloc(samples, sizeof *h->t);
    h->names = calloc(max_series, sizeof *h->names);
    h->v = malloc(samples * max_series * sizeof *h->v);
    if (!h->t || !h->names || !h->v)
        pipeline_hist_destroy(&h);
    return h;
}

/* pipeline_hist_destroy - see pipeline.h */
void pipeline_hist_destroy(pipeline_hist_t **self_p)
{
    pipeline_hist_t *h = *self_p;
    if (!h)
        return;
    free(h->t);
    free(h->names);
    free(h->v);
    free(h);
    *self_p = NULL;
}

/* s_slot - the ring index of the k-th sample from the oldest */
static size_t s_slot(const pipeline_hist_t *h, size_t k)
{
    return (h->head + k) % h->cap;
}

/* pipeline_hist_begin - see pipeline.h */
void pipeline_hist_begin(pipeline_hist_t *self, int64_t t_ms)
{
    if (self->count == self->cap)
        self->head = (self->head + 1) % self->cap;
    else
        self->count++;
    size_t slot = s_slot(self, self->count - 1);
    self->t[slot] = t_ms;
    for (size_t s = 0; s < self->nseries; s++)
        self->v[s * self->cap + slot] = NAN;
}

/* pipeline_hist_set - see pipeline.h */
int pipeline_hist_set(pipeline_hist_t *self, const char *series, double value)
{
    if (!self->count)
        return -1;
    size_t s = 0;
    while (s < self->nseries && strcmp(self->names[s], series) != 0)
        s++;
    if (s == self->nseries) {
        if (s == self->max_series || strlen(series) >= sizeof self->names[0])
            return -1;
        snprintf(self->names[s], sizeof self->names[s], "%s", series);
        for (size_t k = 0; k < self->cap; k++)
            self->v[s * self->cap + k] = NAN;
        self->nseries++;
    }
    self->v[s * self->cap + s_slot(self, self->count - 1)] = value;
    return 0;
}

/* pipeline_hist_count - see pipeline.h */
size_t pipeline_hist_count(const pipeline_hist_t *self)
{
    return self->count;
}

/* pipeline_hist_json - see pipeline.h */
json_t *pipeline_hist_json(const pipeline_hist_t *self, int64_t since_ms)
{
    size_t from = 0;
    while (from < self->count && self->t[s_slot(self, from)] <= since_ms)
        from++;
    json_t *t = json_array(), *series = json_object();
    for (size_t k = from; k < self->count; k++)
        json_array_append_new(t, json_integer((json_int_t) self->t[s_slot(self, k)]));
    for (size_t s = 0; s < self->nseries; s++) {
        json_t *a = json_array();
        for (size_t k = from; k < self->count; k++)
            json_array_append_new(a, s_num(self->v[s * self->cap + s_slot(self, k)]));
        json_object_set_new(series, self->names[s], a);
    }
    return json_pack("{s:o,s:o}", "t", t, "series", series);
}

/* s_add - v onto series name (NAN stays NAN: a sum with no value is none) */
static void s_add(pipeline_hist_t *h, const char *prefix, const char *key, double v)
{
    char name[64];
    snprintf(name, sizeof name, "%s.%s", prefix, key);
    size_t s = 0;
    while (s < h->nseries && strcmp(h->names[s], name) != 0)
        s++;
    double was = s < h->nseries ? h->v[s * h->cap + s_slot(h, h->count - 1)] : NAN;
    pipeline_hist_set(h, name, isnan(was) ? v : isnan(v) ? was : was + v);
}

/* pipeline_hist_record - see pipeline.h */
void pipeline_hist_record(pipeline_hist_t *self, const pipeline_snap_t *snap)
{
    pipeline_hist_begin(self, snap->t_ms);
    for (size_t i = 0; i < snap->ninst; i++) {
        const pipeline_inst_t *in = &snap->inst[i];
        s_add(self, "up", in->stage, strcmp(in->state, "up") == 0 ? 1 : 0);
        if (!in->has_stat)
            continue;
        s_add(self, "in_per_s", in->stage, in->in_per_s);
        s_add(self, "out_per_s", in->stage, in->out_per_s);
        s_add(self, "unacked", in->stage, in->unacked_next + in->unacked_audit);
    }
    for (size_t i = 0; i < snap->nsys; i++) {
        const pipeline_system_t *s = &snap->sys[i];
        s_add(self, "calls_per_s", s->name, s->calls_per_s);
        s_add(self, "error_rate", s->name, s->error_rate);
        s_add(self, "p50_ms", s->name, s->p50_s * 1000);
        s_add(self, "p99_ms", s->name, s->p99_s * 1000);
    }
    pipeline_hist_set(self, "e2e.webhooks_per_s", snap->webhooks_per_s);
    pipeline_hist_set(self, "e2e.awaiting_people", snap->have_pending ? snap->approvals_pending : NAN);
    pipeline_hist_set(self, "e2e.ops_review", snap->have_ops_review ? snap->ops_review : NAN);
    pipeline_hist_set(self, "e2e.oldest_unacked_s", snap->oldest_unacked_s);
}
