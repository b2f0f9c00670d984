/* stage_recover - recovery at start: the journal read back, unacked events re-sent, seen ids restored (see
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

/* sk_recover - rebuild the dedup set and the unacked windows from the journal */
int sk_recover(stage_t *st)
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
            unsigned dest = sk_dest_mask(st, mask);
            if (dest)
                sk_stage_push(&cand, &ncand, &capcand,
                              (staged_t){.seq = seq, .blob = sk_blob_new(p, len, NULL, 0), .dest = dest});
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
                    sk_blob_unref(&cand[i].blob);
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
        blob_t *env = sk_blob_new(cand[i].blob->data + 2, cand[i].blob->len - 2, NULL, 0);
        cand[i].target = s_target(st, env, cand[i].dest);
        for (int d = 0; d < NDEST; d++)
            if ((cand[i].dest & (1u << d)) && cand[i].seq > st->win[d].last_pushed) {
                sk_win_push(&st->win[d], cand[i].seq, env, d == DEST_NEXT ? cand[i].target : -1);
                resend[d]++;
            }
        sk_blob_unref(&env);
        sk_blob_unref(&cand[i].blob);
    }
    free(cand);
    if (rc < 0)
        return -1;
    log_info("recovered %llu journal records, %zu input ids seen, %zu to re-send to %s, %zu to audit",
             (unsigned long long) records, idset_size(st->seen), resend[DEST_NEXT], st->next ? st->next : "-",
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
