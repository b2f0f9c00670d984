/* replay_taken - which events of a producer instance a stage has already
 * taken, read from that stage's journals on this host, so `payguard
 * replay` sends only the others.
 *
 * A consumer's own dedup (common/dedup.h) drops what it took by its
 * producer's floor, its recent positions and recent ids; that memory is
 * bounded, so it cannot tell which instance of a round-robin stage
 * (triage) took an event from the last window of its producer. The
 * journals can: every input taken is an 'I' record (producer, seq), or,
 * in audit, a stored record whose envelope names them. Only those of the
 * producer's current epoch count: the 'F' records before them say which.
 * Instances whose journal directory is not on this host are counted as
 * away; what replay sends them is still checked by their own dedup. The
 * readers stay open: taken_follow reads what the instances journal next,
 * so replay can see each event it sent taken (its delivery window).
 * A set bit per seq of the producer's journal: 125 KB per million.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "journal.h"
#include "replay_taken.h"
#include "stage.h"

/* s_set - mark seq taken, growing the bitmap */
static void s_set(taken_t *t, uint64_t seq)
{
    if (seq >= t->nbits) {
        uint64_t nbits = t->nbits ? t->nbits : 65536;
        while (nbits <= seq)
            nbits *= 2;
        uint8_t *bits = realloc(t->bits, nbits / 8);
        if (!bits)
            return; /* not marked: sent, and the consumer's dedup decides */
        memset(bits + t->nbits / 8, 0, (nbits - t->nbits) / 8);
        t->bits = bits;
        t->nbits = nbits;
    }
    if (!(t->bits[seq / 8] & (1u << (seq % 8))))
        t->count++;
    t->bits[seq / 8] |= (uint8_t) (1u << (seq % 8));
}

/* taken_has - see replay_taken.h */
bool taken_has(const taken_t *t, uint64_t seq)
{
    return seq < t->nbits && (t->bits[seq / 8] & (1u << (seq % 8)));
}

/* s_record - one record of a consumer's journal; *epoch: from's epoch as
 * the consumer last heard it (0: not yet) */
static void s_record(taken_t *t, const char *from, uint64_t want, uint64_t *epoch, const void *rec, size_t len)
{
    const unsigned char *p = rec;
    stage_floor_t f;
    stage_taken_t k;
    if (p[0] == STAGE_REC_FLOOR && stage_record_floor(rec, len, &f) == 0) {
        if (strcmp(f.producer, from) == 0 && f.epoch)
            *epoch = f.epoch;
    } else if (p[0] == STAGE_REC_TAKEN && stage_record_taken(rec, len, &k) == 0) {
        if (strcmp(k.producer, from) == 0 && !(k.flags & STAGE_TAKEN_ID_ONLY) && *epoch == want)
            s_set(t, k.seq);
    } else if (p[0] != STAGE_REC_EVENT && *epoch == want) { /* a stored input (audit) */
        event_t *ev = stage_record_event(rec, len, 0, NULL);
        if (ev && strcmp(event_head(ev)->stage, from) == 0)
            s_set(t, event_head(ev)->seq);
        event_destroy(&ev);
    }
}

/* taken_follow - see replay_taken.h */
int taken_follow(taken_t *t, char *err, size_t errlen)
{
    for (int i = 0; i < CONFIG_MAX_INSTANCES; i++) {
        const void *data;
        size_t len;
        uint64_t seq;
        int rc = 0;
        while (t->r[i] && (rc = journal_reader_next(t->r[i], &data, &len, &seq)) == 1)
            s_record(t, t->from, t->epoch, &t->heard[i], data, len);
        if (t->r[i] && rc < 0) {
            snprintf(err, errlen, "%s", journal_reader_error(t->r[i]));
            return -1;
        }
    }
    return 0;
}

/* taken_scan - see replay_taken.h */
int taken_scan(const config_t *c, const char *into, const char *from, uint64_t epoch, taken_t *t, char *err,
               size_t errlen)
{
    memset(t, 0, sizeof *t);
    snprintf(t->from, sizeof t->from, "%s", from);
    t->epoch = epoch;
    for (int i = 0; epoch && i < config_instances(c, into); i++) {
        char *dir = config_journal_dir(c, into, i);
        struct stat sb;
        if (stat(dir, &sb) != 0) {
            free(dir);
            t->away++;
            continue;
        }
        t->r[i] = journal_reader_new(dir, 1, err, errlen);
        free(dir);
        if (!t->r[i])
            return -1;
        t->read++;
    }
    return taken_follow(t, err, errlen);
}

/* taken_free - see replay_taken.h */
void taken_free(taken_t *t)
{
    for (int i = 0; i < CONFIG_MAX_INSTANCES; i++)
        journal_reader_destroy(&t->r[i]);
    free(t->bits);
    memset(t, 0, sizeof *t);
}
