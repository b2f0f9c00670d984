/* stage - the skeleton every payguard stage runs in (see stage.h).
 *
 * One loop thread owns the sockets, the delivery windows and the dedup set.
 * Other threads (ingest's HTTP workers) only touch the journal (under
 * append_mu) and the publish queue (under pub_mu), then wake the loop
 * through a pipe.
 *
 * DELIVERY CONTRACT (docs/ARCHITECTURE.md §4)
 *   1. An event is appended to the journal, then made durable (one
 *      fdatasync per loop turn covers every append of that turn: group
 *      commit), and only then sent. Nothing is sent that a crash could
 *      un-write.
 *   2. An input is acknowledged only after what it caused is durable.
 *   3. A sent event stays in its destination's window until acked; after
 *      resend_ms it is sent again. A restart re-sends every 'E' record above
 *      the last journaled watermark. Consumers drop ids they already
 *      journaled, so re-sending is always safe; not re-sending never is.
 *   4. Windows are bounded by max_inflight: when one is full, the loop
 *      stops reading input and stage_publish answers EBUSY.
 */
#include "stage.h"
#include "trail.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "idset.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"

#define STAGE_BATCH 256        /* inputs taken per loop turn */
#define STAGE_MAX_UPSTREAMS 64 /* producer instances we ack */
#define STAGE_MAX_PENDING_ACKS 8192
#define STAGE_ACK_MAX_BYTES 65536
#define STAGE_WM_EVERY_MS 1000
#define STAGE_RCVHWM                                                                                                   \
    10000 /* events ZeroMQ queues per upstream pipe. Stage to stage a                                                  \
             smaller queue would do (the sender's window holds every                                                   \
             unacked event and re-sends), but `payguard replay` has no                                                 \
             window: at 1,024 a consumer at its limit when replay exited                                               \
             lost the events still in the socket (e2e_backbone, 3 of                                                   \
             10,000). Memory under load pays for it (bench/results.md). */

enum { DEST_NEXT = 0, DEST_AUDIT = 1, NDEST = 2 };

/* blob - one encoded envelope shared by the windows that carry it */
typedef struct {
    int refs;
    size_t len;
    unsigned char data[];
} blob_t;

/* entry - one event awaiting its consumer's ack */
typedef struct {
    uint64_t seq;
    blob_t *blob;
    int64_t sent_ms; /* 0: never sent */
    bool acked;
} entry_t;

/* window - unacked events of one destination, in seq order (a ring) */
typedef struct {
    entry_t *v;
    size_t cap; /* power of two */
    size_t head;
    size_t count;
    size_t next_send; /* index (from head) of the first never-sent entry */
    uint64_t last_pushed;
    int64_t last_resend_scan_ms;
    _Atomic size_t count_shared;
} window_t;

/* staged - appended this turn, not yet durable, so not yet sendable */
typedef struct {
    uint64_t seq;
    blob_t *blob;
    unsigned dest;
    stage_durable_fn *fn;
    void *fn_arg;
} staged_t;

/* counter - one labelled series of stage_count */
typedef struct {
    char name[64];
    char label[32];
    char value[METRICS_LABEL_MAX]; /* as given (cut to fit); escaped when written */
    _Atomic uint64_t n;
} counter_t;

/* stage_pending_t - an input whose answer comes later (stage_defer) */
struct stage_pending_t {
    event_t *ev;
    bool from_producer;
    bool emitted;
    unsigned emit_index;
};

#define STAGE_MAX_DEFERRED 1024

/* upstream - a producer instance we owe acks to */
typedef struct {
    char inst[EVENT_STAGE_MAX + 1];
    zsock_t *push;
    uint64_t *seqs;
    size_t n;
} upstream_t;

struct stage_t {
    const stage_def_t *def;
    config_t *config;
    char name[32];
    char inst[EVENT_STAGE_MAX + 1];
    int index;
    const char *next; /* next stage name or NULL */

    journal_t *journal;
    pthread_mutex_t append_mu; /* seq prediction + append + staging order */
    idset_t *seen;

    zsock_t *in;
    zsock_t *out[NDEST];
    zsock_t *ackin;
    upstream_t up[STAGE_MAX_UPSTREAMS];
    size_t nup;

    window_t win[NDEST];
    long max_inflight;
    long resend_ms;
    long drain_ms;

    /* loop-thread staging (handle/emit) */
    staged_t *staged;
    size_t nstaged, capstaged;
    const event_t *current;
    event_t *current_owned; /* the input being handled, owned (for stage_defer) */
    bool current_from_producer;
    stage_pending_t *deferred[STAGE_MAX_DEFERRED];
    size_t ndeferred;
    stage_pending_t *resumed;
    int64_t last_wait_ms;
    unsigned emit_index;
    uint64_t last_emit_seq;
    char last_emit_id[EVENT_ID_MAX + 1];
    bool emitted;

    /* publish queue (any thread) */
    pthread_mutex_t pub_mu;
    staged_t *pubq;
    size_t npubq, cappubq;
    _Atomic size_t pub_pending;

    int wake_pipe[2];
    int64_t last_wm_ms;
    uint64_t wm_written[NDEST];

    /* counters */
    pthread_mutex_t counters_mu;
    counter_t counters[STAGE_MAX_COUNTERS];
    _Atomic size_t ncounters;
    _Atomic uint64_t c_in, c_out, c_dup, c_bad, c_acks, c_resent, c_busy, c_retry;
};

static volatile sig_atomic_t s_stop = 0;
static int s_signal_pipe = -1;

/* stage_now_ms - wall clock in ms, the time of events */
int64_t stage_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* s_mono_ms - monotonic ms, for timers that must not jump */
static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* s_on_signal - async-signal-safe: set the flag, poke the loop */
static void s_on_signal(int sig)
{
    (void) sig;
    s_stop = 1;
    if (s_signal_pipe >= 0) {
        int saved = errno;
        ssize_t rc = write(s_signal_pipe, "x", 1);
        (void) rc;
        errno = saved;
    }
}

/* ---------------------------------------------------------------- blobs */

/* s_blob_new - a record payload with one reference */
static blob_t *s_blob_new(const void *a, size_t alen, const void *b, size_t blen)
{
    blob_t *blob = malloc(sizeof *blob + alen + blen);
    assert(blob);
    blob->refs = 1;
    blob->len = alen + blen;
    memcpy(blob->data, a, alen);
    if (blen)
        memcpy(blob->data + alen, b, blen);
    return blob;
}

/* s_blob_unref - drop a reference, free with the last */
static void s_blob_unref(blob_t **blob_p)
{
    blob_t *blob = *blob_p;
    if (blob && --blob->refs == 0)
        free(blob);
    *blob_p = NULL;
}

/* -------------------------------------------------------------- windows */

/* s_win_at - i-th entry from the head */
static entry_t *s_win_at(window_t *w, size_t i)
{
    assert(i < w->count);
    return &w->v[(w->head + i) & (w->cap - 1)];
}

/* s_win_push - add a durable event; seqs arrive in increasing order */
static void s_win_push(window_t *w, uint64_t seq, blob_t *blob)
{
    assert(seq > w->last_pushed);
    if (w->count == w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 1024;
        entry_t *nv = malloc(ncap * sizeof *nv);
        assert(nv);
        for (size_t i = 0; i < w->count; i++)
            nv[i] = *s_win_at(w, i);
        free(w->v);
        w->v = nv;
        w->cap = ncap;
        w->head = 0;
    }
    blob->refs++;
    w->v[(w->head + w->count) & (w->cap - 1)] = (entry_t){.seq = seq, .blob = blob};
    w->count++;
    w->last_pushed = seq;
    atomic_store(&w->count_shared, w->count);
}

/* s_win_ack - mark seq acked; pop acked entries off the front */
static bool s_win_ack(window_t *w, uint64_t seq)
{
    size_t lo = 0, hi = w->count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s_win_at(w, mid)->seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == w->count || s_win_at(w, lo)->seq != seq || s_win_at(w, lo)->acked)
        return false;
    s_win_at(w, lo)->acked = true;
    while (w->count && s_win_at(w, 0)->acked) {
        entry_t *e = s_win_at(w, 0);
        s_blob_unref(&e->blob);
        w->head = (w->head + 1) & (w->cap - 1);
        w->count--;
        if (w->next_send)
            w->next_send--;
    }
    atomic_store(&w->count_shared, w->count);
    return true;
}

/* s_win_extend - a consumer is still working on seq: restart its resend
 * timer (a lease, like a queue's visibility timeout), so a slow answer is
 * not given to a second worker as well */
static void s_win_extend(window_t *w, uint64_t seq)
{
    size_t lo = 0, hi = w->count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s_win_at(w, mid)->seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < w->count && lo < w->next_send && s_win_at(w, lo)->seq == seq && !s_win_at(w, lo)->acked)
        s_win_at(w, lo)->sent_ms = s_mono_ms();
}

/* s_win_watermark - every event for this destination at or below it is acked */
static uint64_t s_win_watermark(window_t *w)
{
    return w->count ? s_win_at(w, 0)->seq - 1 : w->last_pushed;
}

/* ------------------------------------------------------------- journal */

/* s_append - append one record (caller holds append_mu) */
static uint64_t s_append_locked(stage_t *st, const void *data, size_t len)
{
    uint64_t seq = 0;
    if (journal_append(st->journal, data, len, &seq) != 0)
        return 0;
    return seq;
}

/* s_append_event - encode an event with the next seq and journal it as 'E'.
 * Caller holds append_mu, so the predicted seq is the one it gets. */
static blob_t *s_append_event_locked(stage_t *st, event_head_t *head, const event_body_t *body, unsigned dest,
                                     uint64_t *seq_out)
{
    head->seq = journal_last_seq(st->journal) + 1;
    snprintf(head->stage, sizeof head->stage, "%s", st->inst);
    char err[256];
    size_t len = 0;
    void *env = event_encode(head, body, &len, err, sizeof err);
    if (!env) {
        log_error("cannot encode %s event: %s", head->type, err);
        errno = EINVAL;
        return NULL;
    }
    unsigned char hdr[2] = {STAGE_REC_EVENT, (unsigned char) dest};
    blob_t *rec = s_blob_new(hdr, 2, env, len);
    free(env);
    uint64_t seq = s_append_locked(st, rec->data, rec->len);
    if (seq == 0) {
        log_error("cannot journal %s event of %zu bytes: %s", head->type, rec->len, strerror(errno));
        s_blob_unref(&rec);
        return NULL;
    }
    assert(seq == head->seq);
    *seq_out = seq;
    return rec;
}

/* s_stage_push - remember a journaled event until the turn's sync */
static void s_stage_push(staged_t **v, size_t *n, size_t *cap, staged_t item)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *v = realloc(*v, *cap * sizeof **v);
        assert(*v);
    }
    (*v)[(*n)++] = item;
}

/* s_dest_mask - drop destinations this stage does not have */
static unsigned s_dest_mask(stage_t *st, unsigned dest)
{
    if (!st->next)
        dest &= ~STAGE_TO_NEXT;
    if (strcmp(st->name, "audit") == 0)
        dest &= ~STAGE_TO_AUDIT;
    return dest;
}

/* stage_emit - see stage.h */
int stage_emit(stage_t *st, event_type_t type, const char *case_key, const event_body_t *body, unsigned dest)
{
    assert(st->current);
    event_head_t head = {0};
    const event_head_t *in = event_head(st->current);
    event_derive_id(head.id, st->name, in->id, st->emit_index++);
    assert(type > EV_NONE && type < EV_NTYPES);
    snprintf(head.type, sizeof head.type, "%s", event_type_name(type));
    head.kind = type;
    snprintf(head.case_key, sizeof head.case_key, "%s", case_key ? case_key : "");
    snprintf(head.cause, sizeof head.cause, "%s", in->id);
    head.time_ms = stage_now_ms();
    dest = s_dest_mask(st, dest);

    pthread_mutex_lock(&st->append_mu);
    uint64_t seq = 0;
    blob_t *rec = s_append_event_locked(st, &head, body, dest, &seq);
    pthread_mutex_unlock(&st->append_mu);
    if (!rec)
        return -1;
    st->emitted = true;
    st->last_emit_seq = seq;
    snprintf(st->last_emit_id, sizeof st->last_emit_id, "%s", head.id);
    s_stage_push(&st->staged, &st->nstaged, &st->capstaged, (staged_t){.seq = seq, .blob = rec, .dest = dest});
    atomic_fetch_add(&st->c_out, 1);
    return 0;
}

/* stage_forward - see stage.h */
int stage_forward(stage_t *st, const event_t *in, event_type_t type, unsigned dest)
{
    event_body_t *body = event_body_new();
    event_body_copy(body, in);
    int rc = stage_emit(st, type, event_head(in)->case_key, body, dest);
    event_body_destroy(&body);
    return rc;
}

/* stage_publish - see stage.h */
int stage_publish(stage_t *st, const char *prefix, event_type_t type, const char *case_key, const event_body_t *body,
                  unsigned dest, char id_out[EVENT_ID_MAX + 1], stage_durable_fn *fn, void *fn_arg)
{
    size_t inflight = atomic_load(&st->win[DEST_NEXT].count_shared) + atomic_load(&st->pub_pending);
    size_t inflight_audit = atomic_load(&st->win[DEST_AUDIT].count_shared) + atomic_load(&st->pub_pending);
    if (s_stop || inflight >= (size_t) st->max_inflight || inflight_audit >= (size_t) st->max_inflight) {
        atomic_fetch_add(&st->c_busy, 1);
        errno = EBUSY;
        return -1;
    }
    event_head_t head = {0};
    event_mint_id(head.id, prefix);
    assert(type > EV_NONE && type < EV_NTYPES);
    snprintf(head.type, sizeof head.type, "%s", event_type_name(type));
    head.kind = type;
    snprintf(head.case_key, sizeof head.case_key, "%s", case_key ? case_key : "");
    head.time_ms = stage_now_ms();
    dest = s_dest_mask(st, dest);

    pthread_mutex_lock(&st->append_mu);
    uint64_t seq = 0;
    blob_t *rec = s_append_event_locked(st, &head, body, dest, &seq);
    if (rec) {
        /* queued under append_mu so the queue stays in seq order */
        pthread_mutex_lock(&st->pub_mu);
        s_stage_push(&st->pubq, &st->npubq, &st->cappubq,
                     (staged_t){.seq = seq, .blob = rec, .dest = dest, .fn = fn, .fn_arg = fn_arg});
        atomic_fetch_add(&st->pub_pending, 1);
        pthread_mutex_unlock(&st->pub_mu);
    }
    pthread_mutex_unlock(&st->append_mu);
    if (!rec) {
        if (errno != EMSGSIZE)
            errno = EINVAL;
        return -1;
    }
    snprintf(id_out, EVENT_ID_MAX + 1, "%s", head.id);
    atomic_fetch_add(&st->c_out, 1);
    stage_wake(st);
    return 0;
}

/* stage_wake - poke the loop from any thread */
void stage_wake(stage_t *st)
{
    ssize_t rc = write(st->wake_pipe[1], "w", 1);
    (void) rc; /* a full pipe already means "wake up" */
}

/* s_append_small - a 'C' or 'W' record */
static void s_append_small(stage_t *st, const void *data, size_t len)
{
    pthread_mutex_lock(&st->append_mu);
    uint64_t seq = s_append_locked(st, data, len);
    pthread_mutex_unlock(&st->append_mu);
    assert(seq > 0);
}

/* s_write_watermark - journal the ack watermarks if they moved */
static void s_write_watermark(stage_t *st, bool force)
{
    uint64_t wm[NDEST];
    for (int d = 0; d < NDEST; d++)
        wm[d] = s_win_watermark(&st->win[d]);
    if (wm[0] == st->wm_written[0] && wm[1] == st->wm_written[1])
        return;
    int64_t now = s_mono_ms();
    if (!force && now - st->last_wm_ms < STAGE_WM_EVERY_MS)
        return;
    unsigned char rec[17];
    rec[0] = STAGE_REC_WATERMARK;
    for (int d = 0; d < NDEST; d++)
        for (int b = 0; b < 8; b++)
            rec[1 + d * 8 + b] = (unsigned char) (wm[d] >> (8 * b));
    s_append_small(st, rec, sizeof rec);
    st->wm_written[0] = wm[0];
    st->wm_written[1] = wm[1];
    st->last_wm_ms = now;
}

/* ------------------------------------------------------------- recovery */

/* s_recover - rebuild the dedup set and the unacked windows from the journal */
static int s_recover(stage_t *st)
{
    char err[512];
    journal_reader_t *r = journal_reader_new(journal_dir(st->journal), 1, err, sizeof err);
    if (!r) {
        log_error("recovery: %s", err);
        return -1;
    }
    staged_t *cand = NULL;
    size_t ncand = 0, capcand = 0;
    uint64_t wm[NDEST] = {0, 0};
    uint64_t records = 0;
    const void *data;
    size_t len;
    uint64_t seq;
    int rc;
    while ((rc = journal_reader_next(r, &data, &len, &seq)) == 1) {
        const unsigned char *p = data;
        records++;
        const void *env;
        size_t envlen;
        unsigned mask;
        int carries = stage_record_envelope(p, len, &env, &envlen, &mask);
        event_t *ev = carries == 1 ? event_decode(env, envlen, err, sizeof err) : NULL;
        if (carries < 0 || (carries == 1 && !ev)) {
            log_error("recovery: journal record %llu: %s", (unsigned long long) seq,
                      carries < 0 ? "not a trail record" : err);
            rc = -1;
            break;
        }
        if (ev && p[0] == STAGE_REC_EVENT) {
            const event_head_t *h = event_head(ev);
            if (h->cause[0] && idset_add(st->seen, h->cause) < 0) {
                log_error("recovery: dedup set full (max_seen)");
                event_destroy(&ev);
                rc = -1;
                break;
            }
            if (st->def->replay) /* the stage's own projections, from the same pass */
                st->def->replay(st, ev, st->def->arg);
            event_destroy(&ev);
            unsigned dest = s_dest_mask(st, mask);
            if (dest)
                s_stage_push(&cand, &ncand, &capcand,
                             (staged_t){.seq = seq, .blob = s_blob_new(p, len, NULL, 0), .dest = dest});
        } else if (ev) { /* stored: an input this instance took */
            idset_add(st->seen, event_head(ev)->id);
            event_destroy(&ev);
        } else if (p[0] == STAGE_REC_CONSUMED && len > 1 && len <= 1 + EVENT_ID_MAX) {
            char id[EVENT_ID_MAX + 1];
            memcpy(id, p + 1, len - 1);
            id[len - 1] = '\0';
            idset_add(st->seen, id);
        } else if (p[0] == STAGE_REC_WATERMARK && len == 17) {
            for (int d = 0; d < NDEST; d++) {
                uint64_t v = 0;
                for (int b = 7; b >= 0; b--)
                    v = (v << 8) | p[1 + d * 8 + b];
                if (v > wm[d])
                    wm[d] = v;
            }
            /* drop candidates every destination has acknowledged */
            size_t k = 0;
            for (size_t i = 0; i < ncand; i++) {
                if (cand[i].seq <= wm[DEST_NEXT])
                    cand[i].dest &= ~STAGE_TO_NEXT;
                if (cand[i].seq <= wm[DEST_AUDIT])
                    cand[i].dest &= ~STAGE_TO_AUDIT;
                if (cand[i].dest)
                    cand[k++] = cand[i];
                else
                    s_blob_unref(&cand[i].blob);
            }
            ncand = k;
        } else {
            log_error("recovery: journal record %llu: unknown record kind 0x%02x", (unsigned long long) seq, p[0]);
            rc = -1;
            break;
        }
    }
    if (rc < 0 && journal_reader_error(r)[0])
        log_error("recovery: %s", journal_reader_error(r));
    journal_reader_destroy(&r);
    for (int d = 0; d < NDEST; d++) {
        st->win[d].last_pushed = wm[d];
        st->wm_written[d] = wm[d];
    }
    size_t resend[NDEST] = {0, 0};
    for (size_t i = 0; i < ncand; i++) {
        /* the window holds the envelope, without the 2-byte record header */
        blob_t *env = s_blob_new(cand[i].blob->data + 2, cand[i].blob->len - 2, NULL, 0);
        for (int d = 0; d < NDEST; d++)
            if ((cand[i].dest & (1u << d)) && cand[i].seq > st->win[d].last_pushed) {
                s_win_push(&st->win[d], cand[i].seq, env);
                resend[d]++;
            }
        s_blob_unref(&env);
        s_blob_unref(&cand[i].blob);
    }
    free(cand);
    if (rc < 0)
        return -1;
    log_info("recovered %llu journal records, %zu input ids seen, %zu to re-send to %s, %zu to audit",
             (unsigned long long) records, idset_size(st->seen), resend[DEST_NEXT], st->next ? st->next : "-",
             resend[DEST_AUDIT]);
    return 0;
}

/* --------------------------------------------------------------- sockets */

/* s_connect_push - a PUSH connected to every endpoint given */
static zsock_t *s_connect_push(stage_t *st, char **endpoints, int n)
{
    zsock_t *s = zsock_new(ZMQ_PUSH);
    assert(s);
    long hwm = 1000;
    char err[128];
    config_int(st->config, "payguard/delivery/sndhwm", 1, 1000000, &hwm, err, sizeof err);
    zsock_set_sndhwm(s, (int) hwm);
    zsock_set_immediate(s, 1); /* only queue to peers that are there */
    zsock_set_linger(s, 0);
    for (int i = 0; i < n; i++)
        if (zsock_connect(s, "%s", endpoints[i]) != 0) {
            log_error("cannot connect to %s: %s", endpoints[i], zmq_strerror(zmq_errno()));
            zsock_destroy(&s);
            return NULL;
        }
    return s;
}

/* s_bind_pull - a PULL bound at endpoint, replacing a stale ipc file */
static zsock_t *s_bind_pull(const char *endpoint)
{
    if (strncmp(endpoint, "ipc://", 6) == 0)
        unlink(endpoint + 6); /* left by a killed predecessor */
    zsock_t *s = zsock_new(ZMQ_PULL);
    assert(s);
    zsock_set_rcvhwm(s, STAGE_RCVHWM);
    zsock_set_linger(s, 0);
    if (zsock_bind(s, "%s", endpoint) < 0) {
        log_error("cannot bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
        zsock_destroy(&s);
        return NULL;
    }
    return s;
}

/* s_open_sockets - input, outputs, acks per the group configuration */
static int s_open_sockets(stage_t *st)
{
    char *ep = config_ack_endpoint(st->config, st->name, st->index);
    st->ackin = s_bind_pull(ep);
    free(ep);
    if (!st->ackin)
        return -1;
    if (strcmp(st->name, "ingest") != 0) {
        ep = config_input_endpoint(st->config, st->name, st->index);
        st->in = s_bind_pull(ep);
        free(ep);
        if (!st->in)
            return -1;
    }
    if (st->next) {
        int n = config_instances(st->config, st->next);
        char *eps[CONFIG_MAX_INSTANCES];
        for (int i = 0; i < n; i++)
            eps[i] = config_input_endpoint(st->config, st->next, i);
        st->out[DEST_NEXT] = s_connect_push(st, eps, n);
        for (int i = 0; i < n; i++)
            free(eps[i]);
        if (!st->out[DEST_NEXT])
            return -1;
    }
    if (strcmp(st->name, "audit") != 0) {
        char *eps[1] = {config_input_endpoint(st->config, "audit", 0)};
        st->out[DEST_AUDIT] = s_connect_push(st, eps, 1);
        free(eps[0]);
        if (!st->out[DEST_AUDIT])
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ acks */

/* s_upstream - the ack slot of a producer instance, connecting on first use */
static upstream_t *s_upstream(stage_t *st, const char *inst)
{
    for (size_t i = 0; i < st->nup; i++)
        if (strcmp(st->up[i].inst, inst) == 0)
            return &st->up[i];
    char stage[32];
    int index;
    if (config_parse_instance(inst, stage, &index) != 0 || index >= config_instances(st->config, stage)) {
        log_warn("input from unknown producer instance '%s': cannot ack it", inst);
        return NULL;
    }
    if (st->nup == STAGE_MAX_UPSTREAMS)
        return NULL;
    upstream_t *u = &st->up[st->nup];
    char *ep = config_ack_endpoint(st->config, stage, index);
    u->push = s_connect_push(st, &ep, 1);
    free(ep);
    if (!u->push)
        return NULL;
    snprintf(u->inst, sizeof u->inst, "%s", inst);
    u->seqs = malloc(STAGE_MAX_PENDING_ACKS * sizeof *u->seqs);
    assert(u->seqs);
    u->n = 0;
    st->nup++;
    return u;
}

/* s_ack_later - owe the producer of ev an ack (sent after the turn's sync) */
static void s_ack_later(stage_t *st, const event_head_t *h)
{
    upstream_t *u = s_upstream(st, h->stage);
    if (!u)
        return;
    if (u->n == STAGE_MAX_PENDING_ACKS) {
        /* dropping an ack only causes a re-send, which we dedup */
        memmove(u->seqs, u->seqs + 1, (u->n - 1) * sizeof *u->seqs);
        u->n--;
    }
    u->seqs[u->n++] = h->seq;
}

/* s_flush_acks - send owed acks: ["ack", <our stage>, [seq...]] */
static void s_flush_acks(stage_t *st)
{
    for (size_t i = 0; i < st->nup; i++) {
        upstream_t *u = &st->up[i];
        while (u->n) {
            size_t n = u->n > 4096 ? 4096 : u->n;
            msgpack_sbuffer buf;
            msgpack_sbuffer_init(&buf);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
            msgpack_pack_array(&pk, 3);
            msgpack_pack_str_with_body(&pk, "ack", 3);
            msgpack_pack_str_with_body(&pk, st->name, strlen(st->name));
            msgpack_pack_array(&pk, (uint32_t) n);
            for (size_t k = 0; k < n; k++)
                msgpack_pack_uint64(&pk, u->seqs[k]);
            int rc = zmq_send(zsock_resolve(u->push), buf.data, buf.size, ZMQ_DONTWAIT);
            msgpack_sbuffer_destroy(&buf);
            if (rc < 0)
                break; /* producer away or busy: try next turn */
            memmove(u->seqs, u->seqs + n, (u->n - n) * sizeof *u->seqs);
            u->n -= n;
        }
    }
}

/* s_send_waits - for inputs still deferred, tell their producers we are
 * working on them: ["wait", <our stage>, [seq...]], a few times per
 * resend period (best effort: a lost wait only risks a second worker) */
static void s_send_waits(stage_t *st)
{
    int64_t now = s_mono_ms();
    if (!st->ndeferred || now - st->last_wait_ms < st->resend_ms / 3)
        return;
    st->last_wait_ms = now;
    for (size_t u = 0; u < st->nup; u++) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init(&buf);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        uint32_t n = 0;
        for (size_t i = 0; i < st->ndeferred; i++)
            n += st->deferred[i]->from_producer && strcmp(event_head(st->deferred[i]->ev)->stage, st->up[u].inst) == 0;
        if (n) {
            msgpack_pack_array(&pk, 3);
            msgpack_pack_str_with_body(&pk, "wait", 4);
            msgpack_pack_str_with_body(&pk, st->name, strlen(st->name));
            msgpack_pack_array(&pk, n);
            for (size_t i = 0; i < st->ndeferred; i++)
                if (st->deferred[i]->from_producer &&
                    strcmp(event_head(st->deferred[i]->ev)->stage, st->up[u].inst) == 0)
                    msgpack_pack_uint64(&pk, event_head(st->deferred[i]->ev)->seq);
            zmq_send(zsock_resolve(st->up[u].push), buf.data, buf.size, ZMQ_DONTWAIT);
        }
        msgpack_sbuffer_destroy(&buf);
    }
}

/* s_on_ack - strictly decode an ack message and apply it */
static void s_on_ack(stage_t *st, const void *data, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    const char *why = NULL;
    if (len > STAGE_ACK_MAX_BYTES)
        why = "too large";
    else if (msgpack_unpack_next(&u, data, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len)
        why = "not one msgpack value";
    else if (u.data.type != MSGPACK_OBJECT_ARRAY || u.data.via.array.size != 3)
        why = "not a 3-element array";
    msgpack_object *a = why ? NULL : u.data.via.array.ptr;
    bool wait =
        !why && a[0].type == MSGPACK_OBJECT_STR && a[0].via.str.size == 4 && memcmp(a[0].via.str.ptr, "wait", 4) == 0;
    if (!why && !wait &&
        (a[0].type != MSGPACK_OBJECT_STR || a[0].via.str.size != 3 || memcmp(a[0].via.str.ptr, "ack", 3)))
        why = "neither an ack nor a wait";
    else if (!why && (a[1].type != MSGPACK_OBJECT_STR || a[2].type != MSGPACK_OBJECT_ARRAY))
        why = "bad field types";
    int d = -1;
    if (!why) {
        size_t n = a[1].via.str.size;
        if (st->next && n == strlen(st->next) && memcmp(a[1].via.str.ptr, st->next, n) == 0)
            d = DEST_NEXT;
        else if (n == 5 && memcmp(a[1].via.str.ptr, "audit", 5) == 0)
            d = DEST_AUDIT;
        else
            why = "from a stage that is not our consumer";
    }
    if (why) {
        log_warn("dropped ack message: %s", why);
        atomic_fetch_add(&st->c_bad, 1);
        msgpack_unpacked_destroy(&u);
        return;
    }
    for (uint32_t i = 0; i < a[2].via.array.size; i++) {
        msgpack_object *o = &a[2].via.array.ptr[i];
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            continue;
        if (wait)
            s_win_extend(&st->win[d], o->via.u64);
        else if (s_win_ack(&st->win[d], o->via.u64))
            atomic_fetch_add(&st->c_acks, 1);
    }
    msgpack_unpacked_destroy(&u);
}

/* ----------------------------------------------------------------- send */

/* s_send_window - send never-sent entries, then re-send overdue ones */
static void s_send_window(stage_t *st, int d)
{
    window_t *w = &st->win[d];
    if (!st->out[d])
        return;
    void *sock = zsock_resolve(st->out[d]);
    int64_t now = s_mono_ms();
    while (w->next_send < w->count) {
        entry_t *e = s_win_at(w, w->next_send);
        if (zmq_send(sock, e->blob->data, e->blob->len, ZMQ_DONTWAIT) < 0)
            return; /* HWM or no peer: back-pressure, try next turn */
        e->sent_ms = now;
        w->next_send++;
    }
    /* overdue entries are looked for a few times per resend period, not
     * every turn: the scan is linear in the window */
    if (now - w->last_resend_scan_ms < st->resend_ms / 4)
        return;
    w->last_resend_scan_ms = now;
    for (size_t i = 0; i < w->next_send; i++) {
        entry_t *e = s_win_at(w, i);
        if (e->acked || now - e->sent_ms < st->resend_ms)
            continue;
        if (zmq_send(sock, e->blob->data, e->blob->len, ZMQ_DONTWAIT) < 0)
            return;
        e->sent_ms = now;
        atomic_fetch_add(&st->c_resent, 1);
    }
}

/* s_commit_turn - sync this turn's appends, then release them and the acks */
static void s_commit_turn(stage_t *st)
{
    /* take the publish queue first: its records were appended before now */
    pthread_mutex_lock(&st->pub_mu);
    staged_t *pq = st->pubq;
    size_t npq = st->npubq;
    st->pubq = NULL;
    st->npubq = st->cappubq = 0;
    pthread_mutex_unlock(&st->pub_mu);

    bool owe_acks = false;
    for (size_t i = 0; i < st->nup; i++)
        owe_acks |= st->up[i].n > 0;
    if (st->nstaged || npq || owe_acks)
        journal_sync(st->journal);

    /* merge the two lists in seq order into the windows */
    size_t a = 0, b = 0;
    while (a < st->nstaged || b < npq) {
        staged_t *s = (b == npq || (a < st->nstaged && st->staged[a].seq < pq[b].seq)) ? &st->staged[a++] : &pq[b++];
        blob_t *env = s_blob_new(s->blob->data + 2, s->blob->len - 2, NULL, 0);
        for (int d = 0; d < NDEST; d++)
            if (s->dest & (1u << d))
                s_win_push(&st->win[d], s->seq, env);
        s_blob_unref(&env);
        s_blob_unref(&s->blob);
        if (s->fn)
            s->fn(s->fn_arg, 0);
    }
    st->nstaged = 0;
    atomic_fetch_sub(&st->pub_pending, npq);
    free(pq);
    s_flush_acks(st);
}

/* ---------------------------------------------------------------- input */

/* s_handle_event - dedup and handle one decoded event; ack its producer
 * only if it came from one (injected events have none) */
static void s_handle_event(stage_t *st, event_t *ev, const void *raw, size_t rawlen, bool from_producer)
{
    const event_head_t *h = event_head(ev);
    if (idset_has(st->seen, h->id)) {
        atomic_fetch_add(&st->c_dup, 1);
        if (from_producer)
            s_ack_later(st, h);
        return;
    }
    for (size_t i = 0; i < st->ndeferred; i++)
        if (strcmp(event_head(st->deferred[i]->ev)->id, h->id) == 0)
            return; /* still being worked on: its ack comes with stage_finish */
    st->current = ev;
    st->current_owned = ev;
    st->current_from_producer = from_producer;
    st->emit_index = 0;
    st->emitted = false;
    int rc = STAGE_DONE;
    if (st->def->store_inputs && st->def->store) {
        size_t reclen;
        void *rec = st->def->store(st, ev, raw, rawlen, &reclen, st->def->arg);
        assert(rec); /* bounded events make bounded records */
        s_append_small(st, rec, reclen);
        free(rec);
    } else if (st->def->store_inputs) {
        unsigned char kind = STAGE_REC_STORED;
        blob_t *rec = s_blob_new(&kind, 1, raw, rawlen);
        s_append_small(st, rec->data, rec->len);
        s_blob_unref(&rec);
    }
    if (st->def->handle)
        rc = st->def->handle(st, ev, st->def->arg);
    if (rc == STAGE_DEFERRED) {
        assert(!st->current_owned); /* stage_defer took it */
    } else if (rc == STAGE_RETRY) {
        assert(!st->emitted && !st->def->store_inputs);
        atomic_fetch_add(&st->c_retry, 1);
    } else {
        if (!st->emitted && !st->def->store_inputs) {
            unsigned char rec[1 + EVENT_ID_MAX];
            size_t idlen = strlen(h->id);
            rec[0] = STAGE_REC_CONSUMED;
            memcpy(rec + 1, h->id, idlen);
            s_append_small(st, rec, 1 + idlen);
        }
        if (idset_add(st->seen, h->id) < 0) {
            log_error("dedup set full (payguard/delivery/max_seen): exiting rather than forgetting");
            exit(EXIT_FAILURE);
        }
        if (from_producer)
            s_ack_later(st, h);
    }
    st->current = NULL;
    st->current_owned = NULL;
}

/* stage_defer - see stage.h: take the current input out of the turn */
stage_pending_t *stage_defer(stage_t *st)
{
    assert(st->current && st->current_owned);
    assert(st->ndeferred < STAGE_MAX_DEFERRED);
    stage_pending_t *p = calloc(1, sizeof *p);
    assert(p);
    p->ev = st->current_owned;
    p->from_producer = st->current_from_producer;
    p->emitted = st->emitted; /* what it emitted before deferring stays its answer */
    p->emit_index = st->emit_index;
    st->current_owned = NULL;
    st->deferred[st->ndeferred++] = p;
    return p;
}

const event_t *stage_pending_event(const stage_pending_t *p)
{
    return p->ev;
}
size_t stage_deferred_count(const stage_t *st)
{
    return st->ndeferred;
}

/* stage_resume - emits now answer p's input */
void stage_resume(stage_t *st, stage_pending_t *p)
{
    assert(!st->current);
    st->current = p->ev;
    st->emit_index = p->emit_index;
    st->emitted = p->emitted;
    st->resumed = p;
}

/* stage_yield - leave p for a later tick, keeping its emit position */
void stage_yield(stage_t *st, stage_pending_t *p)
{
    assert(st->resumed == p);
    p->emit_index = st->emit_index;
    p->emitted = st->emitted;
    st->current = NULL;
    st->resumed = NULL;
}

/* stage_adopt - see stage.h: a pending input rebuilt from the journal */
stage_pending_t *stage_adopt(stage_t *st, const char *input_id, const char *case_key, unsigned emit_index)
{
    assert(st->ndeferred < STAGE_MAX_DEFERRED);
    event_head_t h = {0};
    snprintf(h.id, sizeof h.id, "%s", input_id);
    snprintf(h.type, sizeof h.type, "notice");
    snprintf(h.case_key, sizeof h.case_key, "%s", case_key);
    snprintf(h.stage, sizeof h.stage, "%s", st->inst);
    h.seq = 1;
    char err[256];
    size_t len;
    void *enc = event_encode(&h, NULL, &len, err, sizeof err);
    if (!enc)
        return NULL;
    stage_pending_t *p = calloc(1, sizeof *p);
    assert(p);
    p->ev = event_decode(enc, len, err, sizeof err);
    free(enc);
    assert(p->ev);
    p->from_producer = false; /* its producer was acknowledged long ago */
    p->emitted = emit_index > 0;
    p->emit_index = emit_index;
    st->deferred[st->ndeferred++] = p;
    return p;
}

/* stage_record_envelope - see stage.h */
int stage_record_envelope(const void *rec, size_t len, const void **env, size_t *envlen, unsigned *dest)
{
    const unsigned char *p = rec;
    if (dest)
        *dest = 0;
    if (len > 2 && p[0] == STAGE_REC_EVENT) {
        if (dest)
            *dest = p[1];
        *env = p + 2;
        *envlen = len - 2;
        return 1;
    }
    if (len > 1 && p[0] == STAGE_REC_STORED) {
        *env = p + 1;
        *envlen = len - 1;
        return 1;
    }
    if (len > 0 && p[0] == TRAIL_REC) { /* audit's chained record: the envelope inside it */
        trail_view_t tv;
        if (trail_record_parse(p, len, &tv) != 0)
            return -1;
        *env = tv.envelope;
        *envlen = tv.envelope_len;
        return 1;
    }
    return 0;
}

/* stage_read_event - see stage.h */
event_t *stage_read_event(journal_reader_t *r, uint64_t *seq_out, unsigned *dest)
{
    const void *data, *env;
    size_t len, envlen;
    uint64_t seq;
    char err[256];
    while (journal_reader_next(r, &data, &len, &seq) == 1) {
        if (stage_record_envelope(data, len, &env, &envlen, dest) != 1)
            continue;
        event_t *ev = event_decode(env, envlen, err, sizeof err);
        if (!ev) {
            log_warn("journal record %llu: %s", (unsigned long long) seq, err);
            continue;
        }
        if (seq_out)
            *seq_out = seq;
        return ev;
    }
    return NULL;
}

/* stage_flush - see stage.h */
void stage_flush(stage_t *st)
{
    journal_sync(st->journal);
}

/* stage_finish - p's input is answered: record it, ack it, forget it */
void stage_finish(stage_t *st, stage_pending_t **p_p)
{
    stage_pending_t *p = *p_p;
    if (st->resumed == p) {
        p->emit_index = st->emit_index;
        p->emitted = st->emitted;
        st->current = NULL;
        st->resumed = NULL;
    }
    const event_head_t *h = event_head(p->ev);
    if (!p->emitted) {
        unsigned char rec[1 + EVENT_ID_MAX];
        size_t idlen = strlen(h->id);
        rec[0] = STAGE_REC_CONSUMED;
        memcpy(rec + 1, h->id, idlen);
        s_append_small(st, rec, 1 + idlen);
    }
    if (idset_add(st->seen, h->id) < 0) {
        log_error("dedup set full (payguard/delivery/max_seen): exiting rather than forgetting");
        exit(EXIT_FAILURE);
    }
    if (p->from_producer)
        s_ack_later(st, h);
    for (size_t i = 0; i < st->ndeferred; i++)
        if (st->deferred[i] == p) {
            st->deferred[i] = st->deferred[--st->ndeferred];
            break;
        }
    event_destroy(&p->ev);
    free(p);
    *p_p = NULL;
}

/* s_on_input - decode strictly, then handle one input event */
static void s_on_input(stage_t *st, const void *data, size_t len)
{
    char err[256];
    event_t *ev = event_decode(data, len, err, sizeof err);
    atomic_fetch_add(&st->c_in, 1);
    if (!ev) {
        atomic_fetch_add(&st->c_bad, 1);
        stage_count(st, "payguard_bad_input_events_total", NULL, NULL, 1);
        log_error("rejected malformed input event (%zu bytes): %s", len, err);
        return;
    }
    s_handle_event(st, ev, data, len, true);
    bool deferred = false;
    for (size_t i = 0; i < st->ndeferred && !deferred; i++)
        deferred = st->deferred[i]->ev == ev;
    if (!deferred)
        event_destroy(&ev);
}

/* stage_inject - see stage.h */
int stage_inject(stage_t *st, const char *prefix, event_type_t type, const char *case_key, const event_body_t *body)
{
    assert(!st->current);
    event_head_t head = {0};
    event_mint_id(head.id, prefix);
    assert(type > EV_NONE && type < EV_NTYPES);
    snprintf(head.type, sizeof head.type, "%s", event_type_name(type));
    head.kind = type;
    snprintf(head.case_key, sizeof head.case_key, "%s", case_key ? case_key : "");
    head.time_ms = stage_now_ms();
    unsigned dest = s_dest_mask(st, STAGE_TO_AUDIT);
    pthread_mutex_lock(&st->append_mu);
    uint64_t seq = 0;
    blob_t *rec = s_append_event_locked(st, &head, body, dest, &seq);
    pthread_mutex_unlock(&st->append_mu);
    if (!rec)
        return -1;
    char err[256];
    event_t *ev = event_decode(rec->data + 2, rec->len - 2, err, sizeof err);
    assert(ev); /* we just encoded it */
    s_stage_push(&st->staged, &st->nstaged, &st->capstaged, (staged_t){.seq = seq, .blob = rec, .dest = dest});
    atomic_fetch_add(&st->c_out, 1);
    s_handle_event(st, ev, rec->data + 2, rec->len - 2, false); /* raw: audit stores what it injects */
    bool deferred = false;
    for (size_t i = 0; i < st->ndeferred && !deferred; i++)
        deferred = st->deferred[i]->ev == ev;
    if (!deferred)
        event_destroy(&ev);
    return 0;
}

/* stage_gauge - see stage.h: a series whose value is set, not added */
void stage_gauge(stage_t *st, const char *name, int64_t value)
{
    stage_gauge_label(st, name, NULL, NULL, value);
}

/* stage_gauge_label - see stage.h */
void stage_gauge_label(stage_t *st, const char *name, const char *label, const char *lvalue, int64_t value)
{
    label = label ? label : "";
    char kept[METRICS_LABEL_MAX]; /* the value as stage_count keeps it */
    snprintf(kept, sizeof kept, "%s", lvalue ? lvalue : "");
    stage_count(st, name, label, kept, 0); /* make sure the series exists */
    size_t count = atomic_load(&st->ncounters);
    for (size_t i = 0; i < count; i++)
        if (strcmp(st->counters[i].name, name) == 0 && strcmp(st->counters[i].label, label) == 0 &&
            strcmp(st->counters[i].value, kept) == 0) {
            atomic_store(&st->counters[i].n, (uint64_t) (value < 0 ? 0 : value));
            return;
        }
}

/* stage_count - see stage.h */
void stage_count(stage_t *st, const char *name, const char *label, const char *lvalue, uint64_t n)
{
    label = label ? label : "";
    char value[METRICS_LABEL_MAX]; /* the series' key: the value as it will be kept */
    snprintf(value, sizeof value, "%s", lvalue ? lvalue : "");
    size_t count = atomic_load(&st->ncounters);
    for (size_t i = 0; i < count; i++) {
        counter_t *c = &st->counters[i];
        if (strcmp(c->name, name) == 0 && strcmp(c->label, label) == 0 && strcmp(c->value, value) == 0) {
            atomic_fetch_add(&c->n, n);
            return;
        }
    }
    pthread_mutex_lock(&st->counters_mu);
    count = atomic_load(&st->ncounters);
    size_t i = 0;
    for (; i < count; i++) {
        counter_t *c = &st->counters[i];
        if (strcmp(c->name, name) == 0 && strcmp(c->label, label) == 0 && strcmp(c->value, value) == 0)
            break;
    }
    if (i == count && count < STAGE_MAX_COUNTERS - 1) {
        counter_t *c = &st->counters[count];
        snprintf(c->name, sizeof c->name, "%s", name);
        snprintf(c->label, sizeof c->label, "%s", label);
        memcpy(c->value, value, sizeof c->value);
        atomic_store(&st->ncounters, count + 1);
    } else if (i == count) {
        i = STAGE_MAX_COUNTERS - 1; /* the overflow series */
        counter_t *c = &st->counters[i];
        if (!c->name[0]) {
            snprintf(c->name, sizeof c->name, "payguard_counter_overflow_total");
        }
    }
    atomic_fetch_add(&st->counters[i].n, n);
    pthread_mutex_unlock(&st->counters_mu);
}

/* s_window_room - may we take more input? */
static bool s_window_room(stage_t *st)
{
    if (st->def->handle && st->ndeferred >= (st->def->max_deferred ? st->def->max_deferred : STAGE_MAX_DEFERRED))
        return false;
    for (int d = 0; d < NDEST; d++)
        if (st->win[d].count >= (size_t) st->max_inflight)
            return false;
    return true;
}

/* s_write_status - <run_dir>/<inst>.stat for `payguard status` (atomic rename) */
static void s_write_status(stage_t *st)
{
    char path[CONFIG_PATH_MAX + 64], tmp[CONFIG_PATH_MAX + 72];
    snprintf(path, sizeof path, "%s/%s.stat", config_run_dir(st->config), st->inst);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(
        f,
        "pid=%d\nin=%llu\nout=%llu\nduplicates=%llu\nbad=%llu\nresent=%llu\nunacked_next=%zu\nunacked_audit=%zu\njournal_seq=%llu\n",
        (int) getpid(), (unsigned long long) st->c_in, (unsigned long long) st->c_out, (unsigned long long) st->c_dup,
        (unsigned long long) st->c_bad, (unsigned long long) st->c_resent, st->win[DEST_NEXT].count,
        st->win[DEST_AUDIT].count, (unsigned long long) journal_last_seq(st->journal));
    fclose(f);
    rename(tmp, path);
    /* the metrics too, for the group's /metrics (metrics_collect) */
    snprintf(path, sizeof path, "%s/%s.prom", config_run_dir(st->config), st->inst);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    char *text = stage_metrics_text(st);
    f = fopen(tmp, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
        rename(tmp, path);
    }
    free(text);
}

/* stage_metrics_text - see stage.h */
char *stage_metrics_text(stage_t *st)
{
    journal_stats_t js;
    journal_stats(st->journal, &js);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert(f);
    const char *i = st->inst;
    fprintf(f, "# TYPE payguard_events_in_total counter\npayguard_events_in_total{instance=\"%s\"} %llu\n", i,
            (unsigned long long) st->c_in);
    fprintf(f, "# TYPE payguard_events_out_total counter\npayguard_events_out_total{instance=\"%s\"} %llu\n", i,
            (unsigned long long) st->c_out);
    fprintf(f,
            "# TYPE payguard_input_duplicates_total counter\npayguard_input_duplicates_total{instance=\"%s\"} %llu\n",
            i, (unsigned long long) st->c_dup);
    fprintf(f, "# TYPE payguard_bad_messages_total counter\npayguard_bad_messages_total{instance=\"%s\"} %llu\n", i,
            (unsigned long long) st->c_bad);
    fprintf(f, "# TYPE payguard_resent_total counter\npayguard_resent_total{instance=\"%s\"} %llu\n", i,
            (unsigned long long) st->c_resent);
    fprintf(f, "# TYPE payguard_backpressure_total counter\npayguard_backpressure_total{instance=\"%s\"} %llu\n", i,
            (unsigned long long) st->c_busy);
    fprintf(f,
            "# TYPE payguard_unacked gauge\npayguard_unacked{instance=\"%s\",dest=\"next\"} %zu\n"
            "payguard_unacked{instance=\"%s\",dest=\"audit\"} %zu\n",
            i, atomic_load(&st->win[DEST_NEXT].count_shared), i, atomic_load(&st->win[DEST_AUDIT].count_shared));
    fprintf(f, "# TYPE payguard_journal_appends_total counter\npayguard_journal_appends_total{instance=\"%s\"} %llu\n",
            i, (unsigned long long) js.appends);
    fprintf(f, "# TYPE payguard_journal_fsyncs_total counter\npayguard_journal_fsyncs_total{instance=\"%s\"} %llu\n", i,
            (unsigned long long) js.syncs);
    fprintf(
        f,
        "# TYPE payguard_journal_fsync_seconds_total counter\npayguard_journal_fsync_seconds_total{instance=\"%s\"} %.6f\n",
        i, (double) js.sync_ns_total / 1e9);
    fprintf(
        f,
        "# TYPE payguard_journal_fsync_seconds_max gauge\npayguard_journal_fsync_seconds_max{instance=\"%s\"} %.6f\n",
        i, (double) js.sync_ns_max / 1e9);
    size_t nc = atomic_load(&st->ncounters);
    for (size_t k = 0; k < STAGE_MAX_COUNTERS; k++) {
        counter_t *c = &st->counters[k];
        if (k >= nc && k != STAGE_MAX_COUNTERS - 1)
            continue;
        if (!c->name[0])
            continue;
        char esc[4 * METRICS_LABEL_MAX]; /* label values come from data: escaped */
        metrics_escape_label(c->value, esc, sizeof esc);
        if (c->label[0])
            fprintf(f, "%s{instance=\"%s\",%s=\"%s\"} %llu\n", c->name, i, c->label, esc,
                    (unsigned long long) atomic_load(&c->n));
        else
            fprintf(f, "%s{instance=\"%s\"} %llu\n", c->name, i, (unsigned long long) atomic_load(&c->n));
    }
    fclose(f);
    return out;
}

/* accessors */
uint64_t stage_last_emit_seq(const stage_t *st)
{
    return st->last_emit_seq;
}
const char *stage_last_emit_id(const stage_t *st)
{
    return st->last_emit_id;
}
const char *stage_journal_dir(const stage_t *st)
{
    return journal_dir(st->journal);
}
uint64_t stage_journal_last_seq(const stage_t *st)
{
    return journal_last_seq(st->journal);
}
const config_t *stage_config(const stage_t *st)
{
    return st->config;
}
const char *stage_instance(const stage_t *st)
{
    return st->inst;
}
const char *stage_name(const stage_t *st)
{
    return st->name;
}
int stage_index(const stage_t *st)
{
    return st->index;
}

/* s_loop - the one event loop: acks, wake-ups, input, commit, send */
static void s_loop(stage_t *st)
{
    int64_t drain_deadline = 0;
    int64_t last_status = 0;
    char buf[64];
    while (true) {
        if (s_stop && !drain_deadline) {
            drain_deadline = s_mono_ms() + st->drain_ms;
            log_info("stopping: no more input, draining for up to %ld ms", st->drain_ms);
            if (st->def->drain)
                st->def->drain(st, st->def->arg);
        }
        if (drain_deadline) {
            bool busy = st->def->busy && st->def->busy(st, st->def->arg);
            bool empty = !st->win[0].count && !st->win[1].count && !atomic_load(&st->pub_pending) && !st->ndeferred;
            if ((!busy && empty) || s_mono_ms() > drain_deadline) {
                if (!empty)
                    log_warn("drain timeout: %zu/%zu events unacked stay in the journal for re-send at start",
                             st->win[0].count, st->win[1].count);
                break;
            }
        }
        bool take_input = st->in && !drain_deadline && s_window_room(st);
        zmq_pollitem_t items[3] = {
            {zsock_resolve(st->ackin), 0, ZMQ_POLLIN, 0},
            {NULL, st->wake_pipe[0], ZMQ_POLLIN, 0},
            {take_input ? zsock_resolve(st->in) : NULL, take_input ? 0 : -1, ZMQ_POLLIN, 0},
        };
        bool unsent = false;
        for (int d = 0; d < NDEST; d++)
            unsent |= st->win[d].next_send < st->win[d].count;
        long timeout = unsent || drain_deadline || st->ndeferred ? 5 : 100;
        int rc = zmq_poll(items, take_input ? 3 : 2, timeout);
        if (rc < 0 && zmq_errno() != EINTR) {
            log_error("zmq_poll: %s", zmq_strerror(zmq_errno()));
            break;
        }
        if (items[1].revents & ZMQ_POLLIN)
            while (read(st->wake_pipe[0], buf, sizeof buf) > 0)
                ;
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        while (zmq_msg_recv(&msg, zsock_resolve(st->ackin), ZMQ_DONTWAIT) >= 0)
            s_on_ack(st, zmq_msg_data(&msg), zmq_msg_size(&msg));
        for (int n = 0; take_input && n < STAGE_BATCH && s_window_room(st); n++) {
            if (zmq_msg_recv(&msg, zsock_resolve(st->in), ZMQ_DONTWAIT) < 0)
                break;
            s_on_input(st, zmq_msg_data(&msg), zmq_msg_size(&msg));
        }
        zmq_msg_close(&msg);
        if (st->def->tick)
            st->def->tick(st, st->def->arg);
        s_commit_turn(st);
        s_send_waits(st);
        for (int d = 0; d < NDEST; d++)
            s_send_window(st, d);
        s_write_watermark(st, false);
        int64_t now = s_mono_ms();
        if (now - last_status >= 1000) {
            s_write_status(st);
            last_status = now;
        }
    }
}

/* s_mkdirs - create run and data directories (one level each) */
static int s_mkdirs(const config_t *c)
{
    const char *dirs[2] = {config_run_dir(c), config_data_dir(c)};
    for (int i = 0; i < 2; i++)
        if (mkdir(dirs[i], 0750) != 0 && errno != EEXIST) {
            log_error("cannot create %s: %s", dirs[i], strerror(errno));
            return -1;
        }
    return 0;
}

/* stage_main - see stage.h */
int stage_main(int argc, char **argv, const stage_def_t *def)
{
    const char *cfg_path;
    int index, status;
    if (!config_main_opts(argc, argv, def->name, false, &cfg_path, &index, &status))
        return status;
    stage_t *st = calloc(1, sizeof *st);
    assert(st);
    st->def = def;
    st->index = index;
    snprintf(st->name, sizeof st->name, "%s", def->name);
    snprintf(st->inst, sizeof st->inst, "%s.%d", def->name, index);
    log_init(st->inst, "info");
    char err[512];
    st->config = config_load(cfg_path, err, sizeof err);
    if (!st->config) {
        log_error("%s", err);
        return 2;
    }
    log_init(st->inst, config_get(st->config, "payguard/log_level"));
    if (index < 0 || index >= config_instances(st->config, st->name)) {
        log_error("instance index %d out of range: %s/instances = %d", index, st->name,
                  config_instances(st->config, st->name));
        return 2;
    }
    st->next = config_next_stage(st->name);
    long seg = 0, max_seen = 0;
    journal_opts_t jo = {0};
    if (journal_sync_parse(config_get(st->config, "payguard/journal/fsync"), &jo.sync) != 0) {
        log_error("config: payguard/journal/fsync must be always, batch or none");
        return 2;
    }
    if (config_int(st->config, "payguard/journal/segment_bytes", 4096, 1L << 34, &seg, err, sizeof err) ||
        config_int(st->config, "payguard/delivery/max_inflight", 1, 10000000, &st->max_inflight, err, sizeof err) ||
        config_int(st->config, "payguard/delivery/resend_ms", 10, 3600000, &st->resend_ms, err, sizeof err) ||
        config_int(st->config, "payguard/delivery/max_seen", 1000, 1L << 31, &max_seen, err, sizeof err) ||
        config_int(st->config, "payguard/drain_ms", 0, 600000, &st->drain_ms, err, sizeof err)) {
        log_error("%s", err);
        return 2;
    }
    jo.segment_bytes = (size_t) seg;
    if (s_mkdirs(st->config) != 0)
        return 1;

    zsys_handler_set(NULL); /* our signals, not czmq's */
    zsys_set_linger(0);
    if (pipe2(st->wake_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        log_error("pipe: %s", strerror(errno));
        return 1;
    }
    s_signal_pipe = st->wake_pipe[1];
    struct sigaction sa = {0};
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    pthread_mutex_init(&st->append_mu, NULL);
    pthread_mutex_init(&st->pub_mu, NULL);
    pthread_mutex_init(&st->counters_mu, NULL);
    st->seen = idset_new((size_t) max_seen);
    if (!st->seen) {
        log_error("cannot make the dedup set (out of memory, or no random key from OpenSSL)");
        return 1;
    }
    char *jdir = config_journal_dir(st->config, st->name, st->index);
    st->journal = journal_open(jdir, &jo, err, sizeof err);
    free(jdir);
    if (!st->journal) {
        log_error("%s", err);
        return 1;
    }
    if (s_recover(st) != 0 || s_open_sockets(st) != 0)
        return 1;
    if (def->init && def->init(st, def->arg) != 0) {
        log_error("stage initialisation failed");
        return 1;
    }
    log_info("started pid=%d journal=%llu records next=%s", (int) getpid(),
             (unsigned long long) journal_last_seq(st->journal), st->next ? st->next : "-");
    s_loop(st);
    s_commit_turn(st);
    s_write_watermark(st, true);
    if (def->fini)
        def->fini(st, def->arg);
    journal_sync(st->journal);
    s_write_status(st);
    log_info("stopped cleanly");

    for (int d = 0; d < NDEST; d++) {
        while (st->win[d].count) {
            entry_t *e = s_win_at(&st->win[d], 0);
            s_blob_unref(&e->blob);
            st->win[d].head = (st->win[d].head + 1) & (st->win[d].cap - 1);
            st->win[d].count--;
        }
        free(st->win[d].v);
        zsock_destroy(&st->out[d]);
    }
    for (size_t i = 0; i < st->nup; i++) {
        zsock_destroy(&st->up[i].push);
        free(st->up[i].seqs);
    }
    zsock_destroy(&st->in);
    zsock_destroy(&st->ackin);
    journal_close(&st->journal);
    idset_destroy(&st->seen);
    free(st->staged);
    config_destroy(&st->config);
    free(st);
    return 0;
}
