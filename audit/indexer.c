/* indexer - the case index follows the trail on its own thread (see indexer.h) */
#include "indexer.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event.h"
#include "journal.h"
#include "log.h"
#include "stage.h"

#define INDEXER_STOP_CHECK 256u /* records applied between looks at the stop flag */

struct indexer_t {
    caseidx_t *idx; /* the writer: this thread's */
    journal_reader_t *r;
    indexer_durable_fn *durable;
    void *arg;
    long commit_ms;
    uint64_t read;              /* the last journal record read (any kind): the thread's */
    _Atomic uint64_t committed; /* every record up to here is in a committed transaction */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, failed; /* under mu */
    char error[512];   /* under mu, once failed */
};

/* s_wait - until stopping or the monotonic deadline (stage_mono_ms, the
 * condition variable's clock: CLOCK_MONOTONIC); true when stopping */
static bool s_wait(indexer_t *x, int64_t deadline_ms)
{
    struct timespec ts = {.tv_sec = deadline_ms / 1000, .tv_nsec = (long) (deadline_ms % 1000) * 1000000L};
    pthread_mutex_lock(&x->mu);
    while (!x->stop && stage_mono_ms() < deadline_ms)
        pthread_cond_timedwait(&x->cv, &x->mu, &ts);
    bool stop = x->stop;
    pthread_mutex_unlock(&x->mu);
    return stop;
}

/* s_stopping - has indexer_destroy asked the thread to stop? */
static bool s_stopping(indexer_t *x)
{
    pthread_mutex_lock(&x->mu);
    bool stop = x->stop;
    pthread_mutex_unlock(&x->mu);
    return stop;
}

/* s_fail - the reader cannot go on: remember why (indexer_failed) */
static void s_fail(indexer_t *x, const char *why)
{
    log_error("case index: cannot follow the trail: %s", why);
    pthread_mutex_lock(&x->mu);
    x->failed = true;
    snprintf(x->error, sizeof x->error, "%s", why);
    pthread_mutex_unlock(&x->mu);
}

/* s_apply_upto - apply the trail records after x->read up to seq upto
 * (never a record past it: it may not be durable yet); 0, or -1 when the
 * journal cannot be read */
static int s_apply_upto(indexer_t *x, uint64_t upto)
{
    unsigned n = 0;
    while (x->read < upto) {
        if (++n % INDEXER_STOP_CHECK == 0 && s_stopping(x))
            return 0;
        const void *data;
        size_t len;
        uint64_t seq;
        int rc = journal_reader_next(x->r, &data, &len, &seq);
        if (rc < 0) {
            s_fail(x, journal_reader_error(x->r));
            return -1;
        }
        if (rc == 0)
            return 0; /* written, not yet visible to this reader: the next look finds it */
        x->read = seq;
        event_t *ev = stage_record_event(data, len, seq, NULL); /* NULL: none carried, or logged */
        if (!ev)
            continue;
        caseidx_pos_t at = {.jseq = seq};
        journal_reader_where(x->r, &at.seg, &at.off);
        if (caseidx_apply(x->idx, ev, &at) != 0)
            log_warn("case index: event %s not indexed (the trail has it)", event_head(ev)->id);
        event_destroy(&ev);
    }
    return 0;
}

/* s_commit - commit what was applied, if anything */
static void s_commit(indexer_t *x)
{
    if (x->read > atomic_load(&x->committed)) {
        caseidx_commit(x->idx);
        atomic_store(&x->committed, x->read);
    }
}

/* s_thread - follow the journal: apply what is durable, at once while
 * there is more, else look again after INDEXER_POLL_MS; commit at most
 * every commit_ms, and when asked to stop */
static void *s_thread(void *arg)
{
    indexer_t *x = arg;
    int64_t last_commit = stage_mono_ms();
    bool stop = false;
    while (!stop) {
        uint64_t before = x->read;
        if (s_apply_upto(x, x->durable(x->arg)) != 0)
            break;
        int64_t now = stage_mono_ms();
        if (now - last_commit >= x->commit_ms) {
            s_commit(x);
            last_commit = now;
        }
        if (x->read != before) {
            stop = s_stopping(x);
            continue;
        }
        int64_t poll = now + INDEXER_POLL_MS, due = last_commit + x->commit_ms;
        bool pending = x->read > atomic_load(&x->committed);
        stop = s_wait(x, pending && due < poll ? due : poll);
    }
    s_commit(x);
    return NULL;
}

/* indexer_new - see indexer.h */
indexer_t *indexer_new(caseidx_t *idx, const char *dir, indexer_durable_fn *durable, void *arg, long commit_ms,
                       char *err, size_t errlen)
{
    assert(idx && dir && durable);
    assert(commit_ms >= 1 && commit_ms <= INDEXER_COMMIT_MS_MAX);
    indexer_t *x = calloc(1, sizeof *x);
    if (!x) {
        snprintf(err, errlen, "case index: out of memory");
        return NULL;
    }
    x->idx = idx;
    x->durable = durable;
    x->arg = arg;
    x->commit_ms = commit_ms;
    x->read = caseidx_applied_jseq(idx);
    atomic_init(&x->committed, x->read);
    x->r = journal_reader_new(dir, x->read + 1, err, errlen);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&x->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&x->mu, NULL);
    if (!x->r || pthread_create(&x->thread, NULL, s_thread, x) != 0) {
        if (x->r)
            snprintf(err, errlen, "case index: cannot start its thread");
        journal_reader_destroy(&x->r);
        pthread_cond_destroy(&x->cv);
        pthread_mutex_destroy(&x->mu);
        free(x);
        return NULL;
    }
    return x;
}

/* indexer_lag - see indexer.h */
uint64_t indexer_lag(indexer_t *self)
{
    uint64_t durable = self->durable(self->arg), done = atomic_load(&self->committed);
    return durable > done ? durable - done : 0;
}

/* indexer_failed - see indexer.h */
bool indexer_failed(indexer_t *self, char *err, size_t errlen)
{
    pthread_mutex_lock(&self->mu);
    bool failed = self->failed;
    if (failed)
        snprintf(err, errlen, "%s", self->error);
    pthread_mutex_unlock(&self->mu);
    return failed;
}

/* indexer_destroy - see indexer.h */
void indexer_destroy(indexer_t **self_p)
{
    indexer_t *x = *self_p;
    if (!x)
        return;
    pthread_mutex_lock(&x->mu);
    x->stop = true;
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
    pthread_join(x->thread, NULL);
    journal_reader_destroy(&x->r);
    pthread_cond_destroy(&x->cv);
    pthread_mutex_destroy(&x->mu);
    free(x);
    *self_p = NULL;
}
