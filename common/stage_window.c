/* stage_window - delivery windows: sent and not yet acked, re-sent when flow.h says so; the commit of a loop turn
 * (sync, then send) (see stage_priv.h) */
#include "stage_priv.h"

/* sk_blob_new - a record payload with one reference */
blob_t *sk_blob_new(const void *a, size_t alen, const void *b, size_t blen)
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

/* sk_blob_unref - drop a reference, free with the last */
void sk_blob_unref(blob_t **blob_p)
{
    blob_t *blob = *blob_p;
    if (blob && --blob->refs == 0)
        free(blob);
    *blob_p = NULL;
}

/* sk_win_at - i-th entry from the head */
entry_t *sk_win_at(window_t *w, size_t i)
{
    assert(i < w->count);
    return &w->v[(w->head + i) & (w->cap - 1)];
}

/* sk_win_push - add a durable event; seqs arrive in increasing order */
void sk_win_push(window_t *w, uint64_t seq, blob_t *blob, int target)
{
    assert(seq > w->last_pushed);
    if (w->count == w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 1024;
        entry_t *nv = malloc(ncap * sizeof *nv);
        assert(nv);
        for (size_t i = 0; i < w->count; i++)
            nv[i] = *sk_win_at(w, i);
        free(w->v);
        w->v = nv;
        w->cap = ncap;
        w->head = 0;
    }
    blob->refs++;
    w->v[(w->head + w->count) & (w->cap - 1)] =
        (entry_t){.seq = seq, .blob = blob, .target = target, .pushed_ms = sk_mono_ms()};
    w->count++;
    w->bytes += blob->len;
    w->last_pushed = seq;
    atomic_store(&w->count_shared, w->count);
    atomic_store(&w->bytes_shared, w->bytes);
}

/* s_link - the flow (flow.h) of the link an entry leaves by */
static flow_t *s_link(window_t *w, const entry_t *e)
{
    assert(e->target < CONFIG_MAX_INSTANCES);
    return &w->flow[e->target > 0 ? e->target : 0];
}

/* sk_win_ack - mark seq acked; pop acked entries off the front */
bool sk_win_ack(window_t *w, uint64_t seq, int64_t now)
{
    size_t lo = 0, hi = w->count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sk_win_at(w, mid)->seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == w->count || sk_win_at(w, lo)->seq != seq || sk_win_at(w, lo)->acked)
        return false;
    entry_t *acked = sk_win_at(w, lo);
    acked->acked = true;
    if (acked->sent_ms) /* an ack of one the consumer got before our restart was never sent by us */
        flow_ack(s_link(w, acked), acked->sent_ms, acked->resends, !acked->waited, now);
    while (w->count && sk_win_at(w, 0)->acked) {
        entry_t *e = sk_win_at(w, 0);
        assert(w->bytes >= e->blob->len);
        w->bytes -= e->blob->len;
        sk_blob_unref(&e->blob);
        w->head = (w->head + 1) & (w->cap - 1);
        w->count--;
        if (w->next_send)
            w->next_send--;
    }
    atomic_store(&w->count_shared, w->count);
    atomic_store(&w->bytes_shared, w->bytes);
    return true;
}

/* sk_win_extend - a consumer is still working on seq: restart its resend
 * timer (a lease, like a queue's visibility timeout), so a slow answer is
 * not given to a second worker as well */
void sk_win_extend(window_t *w, uint64_t seq)
{
    size_t lo = 0, hi = w->count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sk_win_at(w, mid)->seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    entry_t *e = lo < w->count ? sk_win_at(w, lo) : NULL;
    if (e && e->sent_ms && e->seq == seq && !e->acked) {
        e->wait_ms = sk_mono_ms();
        e->waited = true;
        flow_heard(s_link(w, e), e->sent_ms, e->resends, e->wait_ms); /* alive, and past what was sent before */
    }
}

/* sk_win_watermark - every event for this destination at or below it is acked */
uint64_t sk_win_watermark(window_t *w)
{
    return w->count ? sk_win_at(w, 0)->seq - 1 : w->last_pushed;
}

/* s_sock - the socket an entry leaves by: its target's own PUSH when the
 * next stage is partitioned, else the destination's */
static void *s_sock(stage_t *st, int d, const entry_t *e)
{
    if (d == DEST_NEXT && st->noutp) {
        assert(e->target >= 0 && e->target < st->noutp);
        return zsock_resolve(st->outp[e->target]);
    }
    assert(st->out[d]);
    return zsock_resolve(st->out[d]);
}

/* stage_meta_encode - see stage.h */
void stage_meta_encode(unsigned char out[STAGE_META_BYTES], uint64_t epoch, uint64_t floor)
{
    out[0] = STAGE_META_VERSION;
    for (int b = 0; b < 8; b++) {
        out[1 + b] = (unsigned char) (epoch >> (8 * b));
        out[9 + b] = (unsigned char) (floor >> (8 * b));
    }
}

/* stage_meta_decode - see stage.h */
int stage_meta_decode(const void *data, size_t len, uint64_t *epoch, uint64_t *floor)
{
    const unsigned char *p = data;
    if (len != STAGE_META_BYTES || p[0] != STAGE_META_VERSION)
        return -1;
    *epoch = *floor = 0;
    for (int b = 7; b >= 0; b--) {
        *epoch = (*epoch << 8) | p[1 + b];
        *floor = (*floor << 8) | p[9 + b];
    }
    return 0;
}

/* s_send - an entry and, as its second frame, our epoch and this window's
 * floor (stage.h STAGE_META: what the consumer's dedup forgets below);
 * -1 when the socket cannot take it now. A multipart message is queued
 * whole or not at all, so the second frame cannot fail alone. */
static int s_send(stage_t *st, void *sock, window_t *w, const entry_t *e)
{
    unsigned char meta[STAGE_META_BYTES];
    stage_meta_encode(meta, journal_epoch(st->journal), sk_win_watermark(w) + 1);
    if (zmq_send(sock, e->blob->data, e->blob->len, ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0)
        return -1;
    int rc = zmq_send(sock, meta, sizeof meta, ZMQ_DONTWAIT);
    assert(rc == (int) sizeof meta);
    (void) rc;
    return 0;
}

/* s_send_new - send never-sent entries in order; an instance that cannot
 * take more (its high-water mark, or not there) is skipped for the rest of
 * the turn, so one stopped instance holds back only its own partitions.
 * next_send stays the first entry not yet sent. */
static void s_send_new(stage_t *st, int d, window_t *w, int64_t now)
{
    bool blocked[CONFIG_MAX_INSTANCES] = {false};
    bool partitioned = d == DEST_NEXT && st->noutp;
    size_t nblocked = 0, nsocks = partitioned ? (size_t) st->noutp : 1;
    bool gap = false;
    for (size_t i = w->next_send; i < w->count && nblocked < nsocks; i++) {
        entry_t *e = sk_win_at(w, i);
        if (e->sent_ms) {
            if (!gap)
                w->next_send = i + 1;
            continue;
        }
        size_t b = partitioned ? (size_t) e->target : 0;
        if (blocked[b]) {
            gap = true;
            continue;
        }
        if (s_send(st, s_sock(st, d, e), w, e) < 0) {
            blocked[b] = true; /* HWM or no peer: back-pressure, try next turn */
            nblocked++;
            gap = true;
            continue;
        }
        e->sent_ms = now;
        if (!gap)
            w->next_send = i + 1;
    }
}

/* sk_send_window - send never-sent entries, then re-send overdue ones */
void sk_send_window(stage_t *st, int d)
{
    window_t *w = &st->win[d];
    if (!st->out[d] && !(d == DEST_NEXT && st->noutp))
        return; /* no such destination (ingest: no input; audit: no audit) */
    int64_t now = sk_mono_ms();
    s_send_new(st, d, w, now);
    /* overdue entries are looked for a few times per resend period, not
     * every turn: the scan is linear in the window */
    if (now - w->last_resend_scan_ms < st->resend_ms / 4)
        return;
    w->last_resend_scan_ms = now;
    for (size_t i = 0; i < w->next_send; i++) {
        entry_t *e = sk_win_at(w, i);
        if (e->acked || !e->sent_ms ||
            !flow_due(s_link(w, e), e->sent_ms, e->wait_ms > e->sent_ms ? e->wait_ms : e->sent_ms, e->resends, now))
            continue; /* acked, never sent, or still queued ahead of its consumer's work (flow.h) */
        if (s_send(st, s_sock(st, d, e), w, e) < 0)
            continue; /* that instance is full or away: the others still get theirs */
        e->sent_ms = now;
        if (e->resends < UINT8_MAX)
            e->resends++;
        atomic_fetch_add(&st->c_resent, 1);
    }
}

/* sk_commit_turn - sync this turn's appends, then release them and the acks */
void sk_commit_turn(stage_t *st)
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
    size_t a = 0, b = 0, pq_bytes = 0;
    while (a < st->nstaged || b < npq) {
        bool from_pq = b < npq && (a == st->nstaged || pq[b].seq < st->staged[a].seq);
        staged_t *s = from_pq ? &pq[b++] : &st->staged[a++];
        pq_bytes += from_pq ? s->blob->len : 0;
        blob_t *env = sk_blob_new(s->blob->data + 2, s->blob->len - 2, NULL, 0);
        for (int d = 0; d < NDEST; d++)
            if (s->dest & (1u << d))
                sk_win_push(&st->win[d], s->seq, env, d == DEST_NEXT ? s->target : -1);
        sk_blob_unref(&env);
        sk_blob_unref(&s->blob);
        if (s->fn)
            s->fn(s->fn_arg, 0);
    }
    st->nstaged = 0;
    st->staged_bytes = 0;
    atomic_fetch_sub(&st->pub_pending, npq);
    atomic_fetch_sub(&st->pub_pending_bytes, pq_bytes);
    free(pq);
    sk_flush_acks(st);
}

/* sk_window_room - may we take more input? What this turn already emitted
 * (staged: journaled, not yet in a window until the turn's sync) counts
 * too, so a window holds at most max_inflight events, and at most
 * max_inflight_bytes of payloads, plus the answers of one input, not a
 * whole batch more (tests/unit/test_stage.c). The byte bound is what caps
 * memory: a window's events stay in this process until acked, and the same
 * bytes wait in the consumer's queue */
bool sk_window_room(stage_t *st)
{
    if (atomic_load(&st->disk_low))
        return false; /* nothing new onto a nearly full disk (stage_disk.c) */
    if (st->def->handle && st->ndeferred >= (st->def->max_deferred ? st->def->max_deferred : STAGE_MAX_DEFERRED))
        return false;
    for (int d = 0; d < NDEST; d++)
        if (st->win[d].count + st->nstaged >= (size_t) st->max_inflight ||
            st->win[d].bytes + st->staged_bytes >= (size_t) st->max_inflight_bytes)
            return false;
    return true;
}
