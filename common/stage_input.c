/* stage_input - one input event: dedup, the stage's handler, deferral and adoption (see stage_priv.h) */
#include "stage_priv.h"

/* s_observe_answer - time from the input's emission upstream to its answer here */
static void s_observe_answer(stage_t *st, const event_head_t *h)
{
    stage_observe_ms(st, "payguard_stage_seconds", "", stage_now_ms() - h->time_ms);
}

/* sk_journal_taken - see stage_priv.h */
void sk_journal_taken(stage_t *st, const char *producer, uint64_t seq, const char *id, unsigned flags)
{
    unsigned char rec[2 + 8 + 1 + EVENT_STAGE_MAX + EVENT_ID_MAX];
    size_t plen = strlen(producer), idlen = id ? strlen(id) : 0, n = 0;
    assert(plen >= 1 && plen <= EVENT_STAGE_MAX && idlen <= EVENT_ID_MAX && (idlen || (flags & STAGE_TAKEN_POSITION)));
    rec[n++] = STAGE_REC_TAKEN;
    rec[n++] = (unsigned char) flags;
    for (int b = 0; b < 8; b++)
        rec[n++] = (unsigned char) (seq >> (8 * b));
    rec[n++] = (unsigned char) plen;
    memcpy(rec + n, producer, plen);
    if (idlen) /* a checkpoint's has none (memcpy from NULL is undefined even for 0 bytes) */
        memcpy(rec + n + plen, id, idlen);
    sk_append_small(st, rec, n + plen + idlen);
}

/* s_store - a storing stage (audit) journals the input itself: its 'S' or
 * the stage's own record (a trail record), which also marks it taken */
static void s_store(stage_t *st, event_t *ev, const void *raw, size_t rawlen)
{
    if (st->def->store) {
        size_t reclen;
        void *rec = st->def->store(st, ev, raw, rawlen, &reclen, st->def->arg);
        assert(rec); /* bounded events make bounded records */
        sk_append_small(st, rec, reclen);
        free(rec);
    } else {
        unsigned char kind = STAGE_REC_STORED;
        blob_t *rec = sk_blob_new(&kind, 1, raw, rawlen);
        sk_append_small(st, rec->data, rec->len);
        sk_blob_unref(&rec);
    }
    sk_taken(st, event_head(ev), st->current_from_producer, st->current_linked, false);
}

/* s_duplicate - was this input taken before (dedup.h)? Its producer's
 * epoch and floor are learnt first; a new epoch is journaled at once, so
 * a restart knows which life of the producer the seqs after it belong to.
 * An input without an epoch (one frame: a test tool, or someone who can
 * reach the socket) is known by its id only: the position it claims
 * neither answers for it nor is remembered for a real producer's */
static bool s_duplicate(stage_t *st, const event_head_t *h, const sk_meta_t *meta)
{
    bool linked = meta && meta->epoch != 0;
    bool rebuild = linked && meta->floor == STAGE_META_REBUILD;
    bool replayed = linked && (meta->floor == 0 || rebuild);
    if (linked && dedup_meet(st->dedup, h->stage, meta->epoch, replayed ? 0 : meta->floor) == 1)
        sk_write_floors(st, true);
    int seen = dedup_seen(st->dedup, linked ? h->stage : NULL, h->seq, h->id, rebuild);
    if (linked && (seen == DEDUP_BY_ID || (seen == DEDUP_BY_POSITION && replayed))) {
        /* journaled as taken by its position, like an input answered with
         * nothing: a sibling's copy (same id, a position new here), so a
         * re-send of it or a restart knows it by position; a replayed one,
         * so payguard replay sees it taken (its window, replay_taken.c) */
        sk_journal_taken(st, h->stage, h->seq, h->id, STAGE_TAKEN_NO_OUTPUT);
        dedup_add(st->dedup, h->stage, h->seq, h->id);
    }
    return seen != DEDUP_NEW;
}

/* sk_handle_event - dedup and handle one decoded event; meta: it came
 * from a producer, which is acked (NULL: injected, no producer) */
void sk_handle_event(stage_t *st, event_t *ev, const void *raw, size_t rawlen, const sk_meta_t *meta)
{
    const event_head_t *h = event_head(ev);
    bool from_producer = meta != NULL;
    for (size_t i = 0; i < st->ndeferred; i++)
        if (strcmp(event_head(st->deferred[i]->ev)->id, h->id) == 0)
            return; /* still being worked on: its ack comes with stage_finish */
    if (s_duplicate(st, h, meta)) {
        atomic_fetch_add(&st->c_dup, 1);
        if (from_producer)
            sk_ack_later(st, h);
        return;
    }
    st->current = ev;
    st->current_owned = ev;
    st->current_from_producer = from_producer;
    st->current_linked = meta && meta->epoch != 0;
    st->emit_index = 0;
    st->emitted = false;
    st->current_started_ms = stage_now_ms();
    int rc = STAGE_DONE;
    if (st->def->store_inputs)
        s_store(st, ev, raw, rawlen); /* its own record marks it taken */
    if (st->def->handle)
        rc = st->def->handle(st, ev, st->def->arg);
    if (rc == STAGE_DEFERRED) {
        assert(!st->current_owned); /* stage_defer took it */
    } else if (rc == STAGE_RETRY) {
        assert(!st->emitted && !st->def->store_inputs);
        atomic_fetch_add(&st->c_retry, 1);
    } else {
        sk_taken(st, h, from_producer, st->current_linked, !st->emitted); /* after its answers: see sk_taken */
        if (from_producer) {
            sk_ack_later(st, h);
            s_observe_answer(st, h);
        }
        sk_trace_input_done(st, ev, st->current_started_ms);
    }
    st->current = NULL;
    st->current_owned = NULL;
}

/* sk_taken - see stage_priv.h */
void sk_taken(stage_t *st, const event_head_t *h, bool from_producer, bool linked, bool no_output)
{
    if (!from_producer) { /* injected, or adopted from our own journal: no producer to remember */
        dedup_add(st->dedup, NULL, 0, h->id);
        return;
    }
    if (!st->def->store_inputs)
        sk_journal_taken(st, h->stage, h->seq, h->id,
                         (no_output ? STAGE_TAKEN_NO_OUTPUT : 0) | (linked ? 0 : STAGE_TAKEN_ID_ONLY));
    dedup_add(st->dedup, linked ? h->stage : NULL, h->seq, h->id);
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
    p->linked = st->current_linked;
    p->emitted = st->emitted; /* what it emitted before deferring stays its answer */
    p->emit_index = st->emit_index;
    p->started_ms = st->current_started_ms;
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
    st->current_from_producer = p->from_producer;
    st->current_linked = p->linked;
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
    p->started_ms = stage_now_ms();
    st->deferred[st->ndeferred++] = p;
    return p;
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
    sk_trace_input_done(st, p->ev, p->started_ms);
    sk_taken(st, h, p->from_producer, p->linked, !p->emitted);
    if (p->from_producer) {
        sk_ack_later(st, h);
        s_observe_answer(st, h);
    }
    for (size_t i = 0; i < st->ndeferred; i++)
        if (st->deferred[i] == p) {
            st->deferred[i] = st->deferred[--st->ndeferred];
            break;
        }
    event_destroy(&p->ev);
    free(p);
    *p_p = NULL;
}

/* sk_on_input - decode strictly, then handle one input event */
void sk_on_input(stage_t *st, const void *data, size_t len, const sk_meta_t *meta)
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
    sk_handle_event(st, ev, data, len, meta);
    bool deferred = false;
    for (size_t i = 0; i < st->ndeferred && !deferred; i++)
        deferred = st->deferred[i]->ev == ev;
    if (!deferred)
        event_destroy(&ev);
}
