/* stage_recover - recovery at start: the journal read back, unacked events re-sent, the dedup memory restored (see
 * stage_priv.h) */
#include "stage_priv.h"

#include "route.h"

/* s_target - where an event to re-send goes: routed again, to the same
 * owner as before, since the configuration is the same (layout.h) */
static int s_target(stage_t *st, const blob_t *env, unsigned dest)
{
    if (!(dest & STAGE_TO_NEXT) || !st->next || !route_partitioned(st->next))
        return -1;
    char err[256];
    event_t *ev = event_decode(env->data, env->len, err, sizeof err);
    assert(ev); /* decoded once already in this pass */
    int t = route_target(st->config, st->next, ev);
    event_destroy(&ev);
    return t;
}

/* pass_t - what one reading of the journal gathers */
typedef struct {
    staged_t *cand; /* 'E' records not yet acknowledged by every destination */
    size_t ncand, capcand;
    uint64_t wm[NDEST];
    uint64_t records;
} pass_t;

/* s_u64 - 8 little-endian bytes */
static uint64_t s_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int b = 7; b >= 0; b--)
        v = (v << 8) | p[b];
    return v;
}

/* s_rec_watermark - a 'W': drop candidates every destination has acknowledged */
static void s_rec_watermark(pass_t *x, const unsigned char *p)
{
    for (int d = 0; d < NDEST; d++)
        if (s_u64(p + 1 + d * 8) > x->wm[d])
            x->wm[d] = s_u64(p + 1 + d * 8);
    size_t k = 0;
    for (size_t i = 0; i < x->ncand; i++) {
        if (x->cand[i].seq <= x->wm[DEST_NEXT])
            x->cand[i].dest &= ~STAGE_TO_NEXT;
        if (x->cand[i].seq <= x->wm[DEST_AUDIT])
            x->cand[i].dest &= ~STAGE_TO_AUDIT;
        if (x->cand[i].dest)
            x->cand[k++] = x->cand[i];
        else
            sk_blob_unref(&x->cand[i].blob);
    }
    x->ncand = k;
}

_Static_assert(DEDUP_PRODUCER_MAX == EVENT_STAGE_MAX, "a producer's name is an event's stage");

/* stage_record_taken - see stage.h */
int stage_record_taken(const void *rec, size_t len, stage_taken_t *out)
{
    const unsigned char *p = rec;
    if (len < 11 || p[0] != STAGE_REC_TAKEN || p[10] < 1 || p[10] > DEDUP_PRODUCER_MAX || len < 11u + p[10] ||
        len > 11u + p[10] + EVENT_ID_MAX || (len == 11u + p[10]) != ((p[1] & STAGE_TAKEN_POSITION) != 0))
        return -1; /* an id, except in a checkpoint's position-only record */
    out->flags = p[1];
    out->seq = s_u64(p + 2);
    memcpy(out->producer, p + 11, p[10]);
    out->producer[p[10]] = '\0';
    size_t idlen = len - 11 - p[10];
    memcpy(out->id, p + 11 + p[10], idlen);
    out->id[idlen] = '\0';
    return memchr(out->producer, '\0', p[10]) || memchr(out->id, '\0', idlen) ? -1 : 0;
}

/* stage_record_floor - see stage.h */
int stage_record_floor(const void *rec, size_t len, stage_floor_t *out)
{
    const unsigned char *p = rec;
    if (len < 26 || len > 25 + DEDUP_PRODUCER_MAX || p[0] != STAGE_REC_FLOOR)
        return -1;
    out->epoch = s_u64(p + 1);
    out->floor = s_u64(p + 9);
    out->first = s_u64(p + 17);
    memcpy(out->producer, p + 25, len - 25);
    out->producer[len - 25] = '\0';
    return memchr(out->producer, '\0', len - 25) || out->first > out->floor ? -1 : 0;
}

/* s_rec_taken - an 'I': the input of a producer at a seq was taken; 0, or -1 if malformed */
static int s_rec_taken(stage_t *st, const unsigned char *p, size_t len)
{
    stage_taken_t t;
    if (stage_record_taken(p, len, &t) != 0)
        return -1;
    if (t.flags & STAGE_TAKEN_ID_ONLY) {
        dedup_add(st->dedup, NULL, 0, t.id);
        return 0;
    }
    dedup_meet(st->dedup, t.producer, 0, 0); /* its 'F' came first; else a link made at epoch 0 */
    dedup_add(st->dedup, t.producer, t.seq, t.id[0] ? t.id : NULL);
    return 0;
}

/* s_rec_floor - an 'F': a producer's epoch and floor; 0, or -1 if malformed */
static int s_rec_floor(stage_t *st, const unsigned char *p, size_t len)
{
    stage_floor_t f;
    if (stage_record_floor(p, len, &f) != 0)
        return -1;
    dedup_meet(st->dedup, f.producer, f.epoch, f.first); /* the first floor first (dedup.h) */
    dedup_meet(st->dedup, f.producer, f.epoch, f.floor);
    return 0;
}

/* s_rec_event - a record carrying an event: 'E' (ours: the stage's own
 * projections, and a candidate to re-send) or stored (an input taken) */
static void s_rec_event(stage_t *st, pass_t *x, const unsigned char *p, size_t len, uint64_t seq, event_t *ev,
                        unsigned mask)
{
    const event_head_t *h = event_head(ev);
    if (p[0] != STAGE_REC_EVENT) { /* stored: an input this instance took, or one it injected */
        bool own = strcmp(h->stage, st->inst) == 0;
        dedup_add(st->dedup, own ? NULL : h->stage, h->seq, h->id);
        return;
    }
    if (h->cause[0]) /* answered: its cause is taken, its 'I' may not have followed before a crash */
        dedup_add(st->dedup, NULL, 0, h->cause);
    if (st->def->replay)
        st->def->replay(st, ev, st->def->arg);
    unsigned dest = sk_dest_mask(st, mask);
    if (dest)
        sk_stage_push(&x->cand, &x->ncand, &x->capcand,
                      (staged_t){.seq = seq, .blob = sk_blob_new(p, len, NULL, 0), .dest = dest});
}

/* s_rec_small - one of the skeleton's own records: NULL, or what is wrong
 * with it (in err when formatted) */
static const char *s_rec_small(stage_t *st, pass_t *x, const unsigned char *p, size_t len, char *err, size_t errlen)
{
    if (p[0] == STAGE_REC_TAKEN || p[0] == STAGE_REC_FLOOR) {
        if (p[0] == STAGE_REC_TAKEN)
            return s_rec_taken(st, p, len) ? "malformed 'I' record" : NULL;
        return s_rec_floor(st, p, len) ? "malformed 'F' record" : NULL;
    }
    if (p[0] == STAGE_REC_CONSUMED && len > 1 && len <= 1 + EVENT_ID_MAX) {
        char id[EVENT_ID_MAX + 1];
        memcpy(id, p + 1, len - 1);
        id[len - 1] = '\0';
        dedup_add(st->dedup, NULL, 0, id);
        return NULL;
    }
    if (p[0] == STAGE_REC_WATERMARK && len == 17) {
        s_rec_watermark(x, p);
        return NULL;
    }
    snprintf(err, errlen, "unknown record kind 0x%02x", p[0]);
    return err;
}

/* s_rec_one - one journal record into the pass; 0, or -1 and why logged */
static int s_rec_one(stage_t *st, pass_t *x, const unsigned char *p, size_t len, uint64_t seq)
{
    char err[512];
    const void *env;
    size_t envlen;
    unsigned mask;
    x->records++;
    int carries = stage_record_envelope(p, len, &env, &envlen, &mask);
    event_t *ev = carries == 1 ? event_decode(env, envlen, err, sizeof err) : NULL;
    const char *bad = carries < 0 ? "not a trail record" : carries == 1 && !ev ? err : NULL;
    if (ev) {
        s_rec_event(st, x, p, len, seq, ev, mask);
        event_destroy(&ev);
    } else if (!bad) {
        bad = s_rec_small(st, x, p, len, err, sizeof err);
    }
    if (bad)
        log_error("recovery: journal record %llu: %s", (unsigned long long) seq, bad);
    return bad ? -1 : 0;
}

/* s_requeue - the candidates into the windows, past the watermarks */
static void s_requeue(stage_t *st, pass_t *x, size_t resend[NDEST])
{
    for (int d = 0; d < NDEST; d++) {
        st->win[d].last_pushed = x->wm[d];
        st->wm_written[d] = x->wm[d];
    }
    for (size_t i = 0; i < x->ncand; i++) {
        /* the window holds the envelope, without the 2-byte record header */
        blob_t *env = sk_blob_new(x->cand[i].blob->data + 2, x->cand[i].blob->len - 2, NULL, 0);
        x->cand[i].target = s_target(st, env, x->cand[i].dest);
        for (int d = 0; d < NDEST; d++)
            if ((x->cand[i].dest & (1u << d)) && x->cand[i].seq > st->win[d].last_pushed) {
                sk_win_push(&st->win[d], x->cand[i].seq, env, d == DEST_NEXT ? x->cand[i].target : -1);
                resend[d]++;
            }
        sk_blob_unref(&env);
        sk_blob_unref(&x->cand[i].blob);
    }
    free(x->cand);
    x->cand = NULL;
}

/* sk_recover - rebuild the dedup memory and the unacked windows from the journal */
int sk_recover(stage_t *st)
{
    char err[512];
    /* the live segments: what retention or the archive moved is not needed
     * (a dedup checkpoint follows it: sk_checkpoint_dedup), except that the
     * recent ids come from the last recent_ids records, which a short live
     * tail may not hold: then the reader goes back into the archive that far
     * (audit; a retired segment is gone, and the reader starts at the first
     * one kept). A bound set by configuration, whatever the history. */
    uint64_t from = journal_first_live_seq(st->journal), last = journal_last_seq(st->journal);
    uint64_t back = last > st->recent_ids ? last - st->recent_ids + 1 : 1;
    journal_reader_t *r = journal_reader_new(journal_dir(st->journal), back < from ? back : from, err, sizeof err);
    if (!r) {
        log_error("recovery: %s", err);
        return -1;
    }
    pass_t x = {0};
    const void *data;
    size_t len;
    uint64_t seq;
    int rc;
    while ((rc = journal_reader_next(r, &data, &len, &seq)) == 1)
        if (s_rec_one(st, &x, data, len, seq) != 0) {
            rc = -1;
            break;
        }
    if (rc < 0 && journal_reader_error(r)[0])
        log_error("recovery: %s", journal_reader_error(r));
    journal_reader_destroy(&r);
    size_t resend[NDEST] = {0, 0}, it = 0;
    s_requeue(st, &x, resend);
    const char *producer;
    uint64_t epoch, floor, first;
    while (dedup_dirty(st->dedup, &it, &producer, &epoch, &floor, &first))
        ; /* as journaled: nothing to write again */
    if (rc < 0)
        return -1;
    dedup_stats_t ds;
    dedup_stats(st->dedup, &ds);
    log_info("recovered %llu journal records; dedup: %zu producers, %zu seqs above their floors, %zu recent ids; "
             "%zu to re-send to %s, %zu to audit",
             (unsigned long long) x.records, ds.links, ds.seqs, ds.recent, resend[DEST_NEXT], st->next ? st->next : "-",
             resend[DEST_AUDIT]);
    return 0;
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

/* stage_record_event - see stage.h */
event_t *stage_record_event(const void *rec, size_t len, uint64_t seq, unsigned *dest)
{
    const void *env;
    size_t envlen;
    char err[256];
    if (stage_record_envelope(rec, len, &env, &envlen, dest) != 1)
        return NULL;
    event_t *ev = event_decode(env, envlen, err, sizeof err);
    if (!ev)
        log_warn("journal record %llu: %s", (unsigned long long) seq, err);
    return ev;
}

/* stage_read_event - see stage.h */
event_t *stage_read_event(journal_reader_t *r, uint64_t *seq_out, unsigned *dest)
{
    const void *data;
    size_t len;
    uint64_t seq;
    while (journal_reader_next(r, &data, &len, &seq) == 1) {
        event_t *ev = stage_record_event(data, len, seq, dest);
        if (!ev)
            continue;
        if (seq_out)
            *seq_out = seq;
        return ev;
    }
    return NULL;
}
