/* refusals - refused requests per source: aggregated, throttled (see refusals.h) */
#include "refusals.h"

#include <arpa/inet.h>
#include <assert.h>
#include <czmq.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "utc.h"

/* entry_t - one source address */
typedef struct entry_t {
    char source[REFUSALS_SOURCE_MAX];
    struct entry_t *prev, *next;   /* the table's order: most recently refused first */
    int64_t win_ms;                /* its aggregation window began (0: none open) */
    uint64_t pending, pending_429; /* refusals since, not recorded on their own */
    int64_t first_ms, last_ms;     /* of those */
    int64_t fail_ms;               /* failures counted since (0: none) */
    unsigned long fails;
    int64_t until_ms; /* throttled until (0: not) */
    bool exempt;
} entry_t;

struct refusals_t {
    pthread_mutex_t mu;
    int64_t window_ms, throttle_ms;
    unsigned long throttle_after;
    char exempt[REFUSALS_EXEMPT_MAX][REFUSALS_SOURCE_MAX];
    size_t nexempt;
    refusals_clock_fn *clock;
    void *clock_arg;
    entry_t *entries; /* max_sources of them, nused in use */
    size_t max_sources, nused;
    zhashx_t *index;                          /* source -> its entry */
    entry_t *head, *tail;                     /* most and least recently refused */
    refusals_summary_t due[REFUSALS_DUE_MAX]; /* of evicted sources, until a flush */
    size_t ndue;
    refusals_summary_t overflow; /* evicted past those, merged (count 0: none) */
    uint64_t throttled, aggregated;
};

/* s_exempt_parse - a space-separated list of addresses into out, each as
 * httpd_peer writes it (inet_ntop); 0, or -1 and why */
static int s_exempt_parse(const char *list, char out[REFUSALS_EXEMPT_MAX][REFUSALS_SOURCE_MAX], size_t *n, char *err,
                          size_t errlen)
{
    *n = 0;
    for (const char *p = list ? list : ""; *p;) {
        p += strspn(p, " \t");
        size_t len = strcspn(p, " \t");
        if (!len)
            break;
        char word[REFUSALS_SOURCE_MAX];
        unsigned char bin[16];
        snprintf(word, sizeof word, "%.*s", (int) (len < sizeof word ? len : sizeof word - 1), p);
        int af = len >= sizeof word                    ? 0
                 : inet_pton(AF_INET, word, bin) == 1  ? AF_INET
                 : inet_pton(AF_INET6, word, bin) == 1 ? AF_INET6
                                                       : 0;
        if (!af || *n == REFUSALS_EXEMPT_MAX) {
            snprintf(err, errlen, "config: payguard/refusals/exempt: '%s': %s", word,
                     af ? "more than 16 addresses" : "not an IPv4 or IPv6 address");
            return -1;
        }
        inet_ntop(af, bin, out[(*n)++], REFUSALS_SOURCE_MAX);
        p += len;
    }
    return 0;
}

/* refusals_exempt_check - see refusals.h */
int refusals_exempt_check(const char *list, char *err, size_t errlen)
{
    char out[REFUSALS_EXEMPT_MAX][REFUSALS_SOURCE_MAX];
    size_t n;
    return s_exempt_parse(list, out, &n, err, errlen);
}

/* refusals_config - see refusals.h */
int refusals_config(const config_t *c, refusals_opts_t *opts, char *err, size_t errlen)
{
    assert(c && opts);
    memset(opts, 0, sizeof *opts);
    opts->max_sources = REFUSALS_SOURCES;
    opts->exempt = config_get(c, "payguard/refusals/exempt");
    if (config_bounded(c, "payguard/refusals/window_s", &opts->window_s, err, errlen) ||
        config_bounded(c, "payguard/refusals/throttle_after", &opts->throttle_after, err, errlen) ||
        config_bounded(c, "payguard/refusals/throttle_s", &opts->throttle_s, err, errlen))
        return -1;
    return 0;
}

/* refusals_new - see refusals.h */
refusals_t *refusals_new(const refusals_opts_t *opts, refusals_clock_fn *clock, void *clock_arg, char *err,
                         size_t errlen)
{
    assert(opts);
    if (opts->window_s < 1 || opts->throttle_after < 1 || opts->throttle_s < 1 || opts->max_sources < 1) {
        snprintf(err, errlen, "refusals: window_s, throttle_after, throttle_s and max_sources must be 1 or more");
        return NULL;
    }
    refusals_t *self = calloc(1, sizeof *self);
    assert(self);
    if (s_exempt_parse(opts->exempt, self->exempt, &self->nexempt, err, errlen) != 0) {
        free(self);
        return NULL;
    }
    self->window_ms = (int64_t) opts->window_s * 1000;
    self->throttle_ms = (int64_t) opts->throttle_s * 1000;
    self->throttle_after = (unsigned long) opts->throttle_after;
    self->max_sources = opts->max_sources;
    self->clock = clock;
    self->clock_arg = clock_arg;
    self->entries = calloc(opts->max_sources, sizeof *self->entries);
    self->index = zhashx_new();
    assert(self->entries && self->index);
    pthread_mutex_init(&self->mu, NULL);
    return self;
}

/* refusals_destroy - see refusals.h */
void refusals_destroy(refusals_t **self_p)
{
    assert(self_p);
    refusals_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy(&self->index);
    free(self->entries);
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
}

/* s_now - the table's clock */
static int64_t s_now(const refusals_t *self)
{
    if (self->clock)
        return self->clock(self->clock_arg);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* s_unlink, s_push_front - the order of the table, most recently refused first */
static void s_unlink(refusals_t *self, entry_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        self->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        self->tail = e->prev;
    e->prev = e->next = NULL;
}

static void s_push_front(refusals_t *self, entry_t *e)
{
    e->next = self->head;
    if (self->head)
        self->head->prev = e;
    self->head = e;
    if (!self->tail)
        self->tail = e;
}

/* s_summary - e's pending refusals as a summary, taken out of e */
static refusals_summary_t s_summary(entry_t *e)
{
    refusals_summary_t s = {
        .count = e->pending, .throttled = e->pending_429, .first_ms = e->first_ms, .last_ms = e->last_ms};
    snprintf(s.source, sizeof s.source, "%s", e->source);
    e->pending = e->pending_429 = 0;
    e->win_ms = 0;
    return s;
}

/* s_evict - the least recently refused source leaves the table; what it
 * had not recorded waits for the next flush */
static void s_evict(refusals_t *self, entry_t *e)
{
    s_unlink(self, e);
    zhashx_delete(self->index, e->source);
    if (!e->pending)
        return;
    refusals_summary_t s = s_summary(e);
    if (self->ndue < REFUSALS_DUE_MAX) {
        self->due[self->ndue++] = s;
        return;
    }
    refusals_summary_t *o = &self->overflow; /* a flood of new sources between two flushes */
    if (!o->count) {
        *o = s;
        snprintf(o->source, sizeof o->source, "(evicted sources)");
        return;
    }
    o->count += s.count;
    o->throttled += s.throttled;
    o->first_ms = s.first_ms < o->first_ms ? s.first_ms : o->first_ms;
    o->last_ms = s.last_ms > o->last_ms ? s.last_ms : o->last_ms;
}

/* s_take - source's entry, made (evicting the oldest when full) if new,
 * and first in the table's order (caller holds mu) */
static entry_t *s_take(refusals_t *self, const char *source)
{
    char key[REFUSALS_SOURCE_MAX];
    snprintf(key, sizeof key, "%s", source);
    entry_t *e = zhashx_lookup(self->index, key);
    if (e) {
        s_unlink(self, e);
        s_push_front(self, e);
        return e;
    }
    if (self->nused < self->max_sources) {
        e = &self->entries[self->nused++];
    } else {
        e = self->tail;
        s_evict(self, e);
    }
    memset(e, 0, sizeof *e);
    snprintf(e->source, sizeof e->source, "%s", key);
    for (size_t i = 0; i < self->nexempt && !e->exempt; i++)
        e->exempt = strcmp(self->exempt[i], key) == 0;
    zhashx_insert(self->index, e->source, e);
    s_push_front(self, e);
    return e;
}

/* s_pending - one more refusal of e not recorded on its own */
static void s_pending(entry_t *e, int64_t now, bool throttled)
{
    if (!e->pending)
        e->first_ms = now;
    e->pending++;
    e->pending_429 += throttled;
    e->last_ms = now;
    if (!e->win_ms)
        e->win_ms = now;
}

/* s_ended - e's window has run its time (or the clock went back) */
static bool s_ended(const refusals_t *self, const entry_t *e, int64_t now)
{
    return e->win_ms && (now - e->win_ms >= self->window_ms || now < e->win_ms);
}

/* refusals_throttled - see refusals.h */
long refusals_throttled(refusals_t *self, const char *source)
{
    assert(self && source);
    char key[REFUSALS_SOURCE_MAX];
    snprintf(key, sizeof key, "%s", source);
    long wait_s = 0;
    pthread_mutex_lock(&self->mu);
    int64_t now = s_now(self);
    entry_t *e = zhashx_lookup(self->index, key);
    if (e && e->until_ms && now < e->until_ms && e->until_ms - now <= self->throttle_ms) {
        wait_s = (long) ((e->until_ms - now + 999) / 1000);
        s_pending(e, now, true);
        self->throttled++;
        s_unlink(self, e);
        s_push_front(self, e);
    } else if (e) {
        e->until_ms = 0; /* over (or the clock went back past its start) */
    }
    pthread_mutex_unlock(&self->mu);
    return wait_s;
}

/* s_fail - one more failure of e within its failure window; the one that
 * reaches throttle_after throttles it */
static void s_fail(refusals_t *self, entry_t *e, int64_t now, refusals_verdict_t *v)
{
    if (!e->fail_ms || now - e->fail_ms >= self->window_ms || now < e->fail_ms) {
        e->fail_ms = now;
        e->fails = 0;
    }
    if (++e->fails < self->throttle_after)
        return;
    e->until_ms = now + self->throttle_ms;
    v->throttled = true;
    v->throttle_s = (long) (self->throttle_ms / 1000);
    v->fails = e->fails;
    e->fails = 0;
    e->fail_ms = 0;
}

/* refusals_note - see refusals.h */
refusals_verdict_t refusals_note(refusals_t *self, const char *source, unsigned flags)
{
    assert(self && source);
    refusals_verdict_t v = {0};
    pthread_mutex_lock(&self->mu);
    int64_t now = s_now(self);
    entry_t *e = s_take(self, source);
    if ((flags & REFUSALS_FAILURE) && !e->exempt)
        s_fail(self, e, now, &v);
    /* a window is open until it has run its time and its repeats are out */
    bool open = e->win_ms && (e->pending || !s_ended(self, e, now));
    if (!(flags & REFUSALS_AGGREGATE)) {
        v.record = true; /* a person's refusal: one record each, naming them */
    } else if (open && !v.throttled) {
        s_pending(e, now, false);
    } else {
        v.record = true; /* the first of a window, or the one that starts a throttle */
        if (!open)
            e->win_ms = now;
    }
    pthread_mutex_unlock(&self->mu);
    return v;
}

/* refusals_missed - see refusals.h */
void refusals_missed(refusals_t *self, const char *source)
{
    assert(self && source);
    pthread_mutex_lock(&self->mu);
    s_pending(s_take(self, source), s_now(self), false);
    pthread_mutex_unlock(&self->mu);
}

/* s_flush_due - the summaries of evicted sources; false when emit failed */
static bool s_flush_due(refusals_t *self, refusals_emit_fn *emit, void *arg, size_t *done)
{
    size_t k = 0;
    while (k < self->ndue && emit(&self->due[k], arg) == 0)
        self->aggregated += self->due[k++].count;
    memmove(self->due, self->due + k, (self->ndue - k) * sizeof self->due[0]);
    self->ndue -= k;
    *done += k;
    if (self->ndue)
        return false;
    if (self->overflow.count) {
        if (emit(&self->overflow, arg) != 0)
            return false;
        self->aggregated += self->overflow.count;
        memset(&self->overflow, 0, sizeof self->overflow);
        (*done)++;
    }
    return true;
}

/* refusals_flush - see refusals.h */
size_t refusals_flush(refusals_t *self, bool all, refusals_emit_fn *emit, void *arg)
{
    assert(self && emit);
    size_t done = 0;
    pthread_mutex_lock(&self->mu);
    int64_t now = s_now(self);
    bool ok = s_flush_due(self, emit, arg, &done);
    for (size_t i = 0; ok && i < self->nused; i++) {
        entry_t *e = &self->entries[i];
        bool ended = s_ended(self, e, now);
        if (e->pending && (all || ended)) {
            int64_t win_ms = e->win_ms;
            refusals_summary_t s = s_summary(e);
            if (emit(&s, arg) != 0) { /* kept: the next flush tries again */
                e->pending = s.count;
                e->pending_429 = s.throttled;
                e->win_ms = win_ms;
                ok = false;
                break;
            }
            self->aggregated += s.count;
            done++;
        } else if (!e->pending && (ended || all)) {
            e->win_ms = 0; /* a window of one refusal: nothing to add */
        }
    }
    pthread_mutex_unlock(&self->mu);
    return done;
}

/* refusals_stats - see refusals.h */
void refusals_stats(refusals_t *self, refusals_stats_t *out)
{
    assert(self && out);
    pthread_mutex_lock(&self->mu);
    int64_t now = s_now(self);
    *out = (refusals_stats_t){.sources = self->nused, .throttled = self->throttled, .aggregated = self->aggregated};
    for (size_t i = 0; i < self->nused; i++)
        out->throttled_now += self->entries[i].until_ms > now;
    pthread_mutex_unlock(&self->mu);
}

/* refusals_summary_text - see refusals.h */
void refusals_summary_text(const refusals_summary_t *s, char *out, size_t outlen)
{
    assert(s && out);
    char t1[UTC_ISO_MAX], t2[UTC_ISO_MAX];
    utc_iso(s->first_ms, t1);
    utc_iso(s->last_ms, t2);
    int n = snprintf(out, outlen, "%llu refusal%s from %s between %s and %s", (unsigned long long) s->count,
                     s->count == 1 ? "" : "s", s->source, t1, t2);
    if (s->throttled && n > 0 && (size_t) n < outlen)
        snprintf(out + n, outlen - (size_t) n, " (%llu of them answered 429: the source was throttled)",
                 (unsigned long long) s->throttled);
}

/* refusals_reason - see refusals.h */
void refusals_reason(const refusals_verdict_t *v, const char *why, char out[REFUSALS_REASON_MAX])
{
    assert(why && out);
    if (v && v->throttled)
        snprintf(out, REFUSALS_REASON_MAX,
                 "%s; %lu refused requests from this address within payguard/refusals/window_s: it is answered "
                 "429 for %ld s",
                 why, v->fails, v->throttle_s);
    else
        snprintf(out, REFUSALS_REASON_MAX, "%s", why);
}

/* refusals_body - see refusals.h */
event_body_t *refusals_body(const refusals_verdict_t *v, const char *who, const char *requested, unsigned status,
                            const char *why, const char *peer)
{
    assert(why && peer);
    char reason[REFUSALS_REASON_MAX];
    refusals_reason(v, why, reason);
    event_body_t *b = event_body_new();
    event_body_str(b, EK_WHO, who ? who : "(unknown token)");
    if (requested) { /* data only: an unverified id is no case */
        char esc[REFUSALS_TEXT_MAX];
        refusals_escape(requested, esc, sizeof esc);
        event_body_str(b, "requested_case", esc);
    }
    event_body_int(b, EK_STATUS, status);
    event_body_str(b, EK_REASON, reason);
    event_body_str(b, "client_ip", peer);
    return b;
}

/* s_inject - one summary onto a stage's trail (refusals_trail_flush) */
static int s_inject(const refusals_summary_t *s, void *arg)
{
    stage_t *st = arg;
    char text[REFUSALS_REASON_MAX], t1[UTC_ISO_MAX], t2[UTC_ISO_MAX];
    refusals_summary_text(s, text, sizeof text);
    utc_iso(s->first_ms, t1);
    utc_iso(s->last_ms, t2);
    event_body_t *b = refusals_body(NULL, NULL, NULL, s->throttled == s->count ? 429 : 401, text, s->source);
    event_body_int(b, "refusals", (int64_t) s->count);
    event_body_int(b, "throttled", (int64_t) s->throttled);
    event_body_str(b, "first_at", t1);
    event_body_str(b, "last_at", t2);
    int rc = stage_inject(st, "deny", EV_ACCESS_DENIED, "", b);
    event_body_destroy(&b);
    if (rc == 0)
        stage_count(st, "payguard_refusals_aggregated_total", NULL, NULL, s->count);
    return rc;
}

/* refusals_trail_flush - see refusals.h */
size_t refusals_trail_flush(refusals_t *self, stage_t *st, bool all)
{
    assert(self && st);
    return refusals_flush(self, all, s_inject, st);
}

/* refusals_escape - see refusals.h */
void refusals_escape(const char *in, char *out, size_t outlen)
{
    assert(out && outlen >= 8);
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *) (in ? in : "");
    size_t full = 0;
    for (const unsigned char *q = p; *q; q++)
        full += *q > 0x20 && *q < 0x7f && *q != '%' ? 1 : 3;
    size_t room = full < outlen ? outlen - 1 : outlen - 4, o = 0;
    for (; *p; p++) {
        bool plain = *p > 0x20 && *p < 0x7f && *p != '%';
        if (o + (plain ? 1 : 3) > room)
            break;
        if (plain) {
            out[o++] = (char) *p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    if (full >= outlen) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}
