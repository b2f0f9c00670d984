/* stage_emit - journaling what a stage emits (emit, publish, inject) and the ack watermark (see stage_priv.h) */
#include "stage_priv.h"

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
                                     uint64_t *seq_out, int *target)
{
    head->seq = journal_last_seq(st->journal) + 1;
    snprintf(head->stage, sizeof head->stage, "%s", st->inst);
    char err[256];
    size_t len = 0;
    bool seal = (st->def->seal & STAGE_SEAL_OUT) && (dest & STAGE_TO_NEXT);
    void *env = seal ? event_seal_encode(head, body, st->seal_key, &len, err, sizeof err)
                     : event_emit_encode(head, body, &len, err, sizeof err);
    if (!env) {
        log_error("cannot encode %s event: %s", head->type, err);
        errno = EINVAL;
        return NULL;
    }
    *target = sk_target(st, head, env, len, dest);
    unsigned char hdr[2] = {STAGE_REC_EVENT, (unsigned char) dest};
    blob_t *rec = sk_blob_new(hdr, 2, env, len);
    free(env);
    uint64_t seq = s_append_locked(st, rec->data, rec->len);
    if (seq == 0) {
        log_error("cannot journal %s event of %zu bytes: %s", head->type, rec->len, strerror(errno));
        sk_blob_unref(&rec);
        return NULL;
    }
    assert(seq == head->seq);
    *seq_out = seq;
    return rec;
}

/* sk_stage_push - remember a journaled event until the turn's sync */
void sk_stage_push(staged_t **v, size_t *n, size_t *cap, staged_t item)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *v = realloc(*v, *cap * sizeof **v);
        assert(*v);
    }
    (*v)[(*n)++] = item;
}

/* sk_dest_mask - drop destinations this stage does not have */
unsigned sk_dest_mask(stage_t *st, unsigned dest)
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
    dest = sk_dest_mask(st, dest);

    event_body_t *traced = NULL;
    const event_body_t *out = sk_trace_body(st, body, &traced);
    pthread_mutex_lock(&st->append_mu);
    uint64_t seq = 0;
    int target = -1;
    blob_t *rec = s_append_event_locked(st, &head, out, dest, &seq, &target);
    pthread_mutex_unlock(&st->append_mu);
    event_body_destroy(&traced);
    if (!rec)
        return -1;
    st->emitted = true;
    st->last_emit_seq = seq;
    snprintf(st->last_emit_id, sizeof st->last_emit_id, "%s", head.id);
    st->staged_bytes += rec->len;
    sk_stage_push(&st->staged, &st->nstaged, &st->capstaged,
                  (staged_t){.seq = seq, .blob = rec, .dest = dest, .target = target});
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

/* s_publish_room - sk_window_room for stage_publish's threads: the
 * windows' counts and bytes (their shared copies) plus what waits in pubq */
static bool s_publish_room(stage_t *st)
{
    size_t pending = atomic_load(&st->pub_pending), pending_bytes = atomic_load(&st->pub_pending_bytes);
    for (int d = 0; d < NDEST; d++) {
        if (atomic_load(&st->win[d].count_shared) + pending >= (size_t) st->max_inflight)
            return false;
        if (atomic_load(&st->win[d].bytes_shared) + pending_bytes >= (size_t) st->max_inflight_bytes)
            return false;
    }
    return true;
}

/* stage_publish - see stage.h */
int stage_publish(stage_t *st, const char *prefix, event_type_t type, const char *case_key, const event_body_t *body,
                  unsigned dest, char id_out[EVENT_ID_MAX + 1], stage_durable_fn *fn, void *fn_arg)
{
    if (sk_stop || !s_publish_room(st) || atomic_load(&st->disk_low)) {
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
    dest = sk_dest_mask(st, dest);

    pthread_mutex_lock(&st->append_mu);
    uint64_t seq = 0;
    int target = -1;
    blob_t *rec = s_append_event_locked(st, &head, body, dest, &seq, &target);
    if (rec) {
        /* queued under append_mu so the queue stays in seq order */
        pthread_mutex_lock(&st->pub_mu);
        sk_stage_push(&st->pubq, &st->npubq, &st->cappubq,
                      (staged_t){.seq = seq, .blob = rec, .dest = dest, .target = target, .fn = fn, .fn_arg = fn_arg});
        atomic_fetch_add(&st->pub_pending_bytes, rec->len);
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

/* sk_append_small - one of the skeleton's own records ('I', 'F', 'W') or a stored input */
void sk_append_small(stage_t *st, const void *data, size_t len)
{
    pthread_mutex_lock(&st->append_mu);
    uint64_t seq = s_append_locked(st, data, len);
    pthread_mutex_unlock(&st->append_mu);
    assert(seq > 0);
}

/* sk_write_watermark - journal the ack watermarks if they moved */
void sk_write_watermark(stage_t *st, bool force)
{
    uint64_t wm[NDEST];
    for (int d = 0; d < NDEST; d++)
        wm[d] = sk_win_watermark(&st->win[d]);
    if (wm[0] == st->wm_written[0] && wm[1] == st->wm_written[1])
        return;
    int64_t now = sk_mono_ms();
    /* at most once a second, and at least every max_inflight seqs: what a
     * restart re-sends past it stays within 2 x max_inflight (dedup.h) */
    bool far = wm[0] - st->wm_written[0] >= (uint64_t) st->max_inflight ||
               wm[1] - st->wm_written[1] >= (uint64_t) st->max_inflight;
    if (!force && !far && now - st->last_wm_ms < STAGE_WM_EVERY_MS)
        return;
    unsigned char rec[17];
    rec[0] = STAGE_REC_WATERMARK;
    for (int d = 0; d < NDEST; d++)
        for (int b = 0; b < 8; b++)
            rec[1 + d * 8 + b] = (unsigned char) (wm[d] >> (8 * b));
    sk_append_small(st, rec, sizeof rec);
    st->wm_written[0] = wm[0];
    st->wm_written[1] = wm[1];
    st->last_wm_ms = now;
}

/* s_floor_record - an 'F' record (stage.h) */
static void s_floor_record(stage_t *st, const char *producer, uint64_t epoch, uint64_t floor, uint64_t first)
{
    unsigned char rec[1 + 24 + DEDUP_PRODUCER_MAX];
    uint64_t v[3] = {epoch, floor, first};
    size_t plen = strlen(producer), n = 0;
    rec[n++] = STAGE_REC_FLOOR;
    for (int k = 0; k < 3; k++)
        for (int b = 0; b < 8; b++)
            rec[n++] = (unsigned char) (v[k] >> (8 * b));
    memcpy(rec + n, producer, plen);
    sk_append_small(st, rec, n + plen);
}

/* sk_write_floors - see stage_priv.h */
void sk_write_floors(stage_t *st, bool force)
{
    int64_t now = sk_mono_ms();
    if (!force && now - st->last_floors_ms < STAGE_WM_EVERY_MS)
        return;
    st->last_floors_ms = now;
    size_t it = 0;
    const char *producer;
    uint64_t epoch, floor, first;
    while (dedup_dirty(st->dedup, &it, &producer, &epoch, &floor, &first))
        s_floor_record(st, producer, epoch, floor, first);
}

/* sk_checkpoint_dedup - see stage_priv.h */
void sk_checkpoint_dedup(stage_t *st)
{
    dedup_link_t l;
    for (size_t i = 0; dedup_link_at(st->dedup, i, &l); i++) {
        s_floor_record(st, l.producer, l.epoch, l.floor, l.first);
        for (size_t k = 0; k < l.nseqs; k++)
            sk_journal_taken(st, l.producer, dedup_link_seq(st->dedup, i, k), NULL, STAGE_TAKEN_POSITION);
    }
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
    unsigned dest = sk_dest_mask(st, STAGE_TO_AUDIT);
    pthread_mutex_lock(&st->append_mu);
    uint64_t seq = 0;
    int target = -1;
    blob_t *rec = s_append_event_locked(st, &head, body, dest, &seq, &target);
    pthread_mutex_unlock(&st->append_mu);
    if (!rec)
        return -1;
    char err[256];
    event_t *ev = event_decode(rec->data + 2, rec->len - 2, err, sizeof err);
    assert(ev); /* we just encoded it */
    st->staged_bytes += rec->len;
    sk_stage_push(&st->staged, &st->nstaged, &st->capstaged,
                  (staged_t){.seq = seq, .blob = rec, .dest = dest, .target = target});
    atomic_fetch_add(&st->c_out, 1);
    sk_handle_event(st, ev, rec->data + 2, rec->len - 2, NULL); /* raw: audit stores what it injects */
    bool deferred = false;
    for (size_t i = 0; i < st->ndeferred && !deferred; i++)
        deferred = st->deferred[i]->ev == ev;
    if (!deferred)
        event_destroy(&ev);
    return 0;
}
