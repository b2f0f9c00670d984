/* archiver - the trail's sealed segments moved to the archive (see archiver.h) */
#include "archiver.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "stage.h"

#define ARCHIVER_COPY_BYTES (64u * 1024u)

struct archiver_t {
    archiver_move_fn *move;
    char archive[PATH_MAX];
    char checkpoints[PATH_MAX];
    char copy[PATH_MAX]; /* <archive>/checkpoints */
    long after_s;
    archiver_sealed_fn *sealed;
    void *arg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;              /* under mu */
    archiver_stats_t stats; /* under mu */
    char last_error[512];   /* the thread's: logged once until it changes */
};

/* s_wait - until stopping or ms have passed; true when stopping */
static bool s_wait(archiver_t *x, long ms)
{
    int64_t deadline = stage_mono_ms() + ms;
    struct timespec ts = {.tv_sec = deadline / 1000, .tv_nsec = (long) (deadline % 1000) * 1000000L};
    pthread_mutex_lock(&x->mu);
    while (!x->stop && stage_mono_ms() < deadline)
        pthread_cond_timedwait(&x->cv, &x->mu, &ts);
    bool stop = x->stop;
    pthread_mutex_unlock(&x->mu);
    return stop;
}

/* s_say - format into err (paths may be long; cut to errlen) */
__attribute__((format(printf, 3, 4))) static void s_say(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* s_copy_checkpoints - append to <archive>/checkpoints the whole lines of
 * the checkpoints file it lacks; 0, or -1 and err */
static int s_copy_checkpoints(archiver_t *x, char *err, size_t errlen)
{
    int in = open(x->checkpoints, O_RDONLY | O_CLOEXEC);
    int out = open(x->copy, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    struct stat si, so;
    int rc = in >= 0 && out >= 0 && fstat(in, &si) == 0 && fstat(out, &so) == 0 ? 0 : -1;
    if (rc == 0 && so.st_size > si.st_size) {
        s_say(err, errlen, "%s is longer than %s: not the same trail's", x->copy, x->checkpoints);
        rc = -2;
    }
    char buf[ARCHIVER_COPY_BYTES];
    for (off_t off = rc == 0 ? so.st_size : si.st_size; rc == 0 && off < si.st_size;) {
        ssize_t n = pread(in, buf, sizeof buf, off);
        char *nl = n > 0 ? memrchr(buf, '\n', (size_t) n) : NULL;
        if (!nl)
            break; /* no whole line yet (or a line longer than the buffer: never written) */
        size_t whole = (size_t) (nl - buf) + 1;
        if (write(out, buf, whole) != (ssize_t) whole)
            rc = -1;
        off += (off_t) whole;
    }
    if (rc == 0 && fdatasync(out) != 0)
        rc = -1;
    if (rc == -1)
        s_say(err, errlen, "copying %s to %s: %s", x->checkpoints, x->copy, strerror(errno));
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return rc == 0 ? 0 : -1;
}

/* s_problem - log a failure once until it changes, and count it */
static void s_problem(archiver_t *x, const char *err)
{
    if (strcmp(err, x->last_error) != 0)
        log_warn("trail archive: %s (the segment stays live; trying again every %d s)", err, ARCHIVER_POLL_MS / 1000);
    snprintf(x->last_error, sizeof x->last_error, "%s", err);
    pthread_mutex_lock(&x->mu);
    x->stats.failures++;
    pthread_mutex_unlock(&x->mu);
}

/* s_pass - move every segment that may go now, one at a time; stop early
 * when asked */
static void s_pass(archiver_t *x)
{
    char err[512];
    uint64_t upto = x->sealed(x->arg), moved = 0;
    for (;;) {
        uint64_t bytes = 0, zbytes = 0;
        int64_t older = (int64_t) time(NULL) - x->after_s;
        int rc = x->move(x->arg, x->archive, upto, older, &bytes, &zbytes, err, sizeof err);
        if (rc < 0)
            s_problem(x, err);
        if (rc != 1)
            break;
        moved++;
        x->last_error[0] = '\0';
        log_info("trail segment archived: %llu bytes as %llu in %s (sealed up to #%llu)", (unsigned long long) bytes,
                 (unsigned long long) zbytes, x->archive, (unsigned long long) upto);
        pthread_mutex_lock(&x->mu);
        x->stats.segments++;
        x->stats.bytes += bytes;
        x->stats.zbytes += zbytes;
        bool stop = x->stop;
        pthread_mutex_unlock(&x->mu);
        if (stop)
            break;
    }
    if (moved && s_copy_checkpoints(x, err, sizeof err) != 0)
        s_problem(x, err);
}

/* s_run - the thread: a pass every ARCHIVER_POLL_MS until stopped */
static void *s_run(void *arg)
{
    archiver_t *x = arg;
    do
        s_pass(x);
    while (!s_wait(x, ARCHIVER_POLL_MS));
    return NULL;
}

/* archiver_new - see archiver.h */
archiver_t *archiver_new(const char *archive, const char *checkpoints_path, long after_s, archiver_move_fn *move,
                         archiver_sealed_fn *sealed, void *arg, char *err, size_t errlen)
{
    assert(archive && checkpoints_path && move && sealed);
    if (archive[0] != '/' || after_s < 0 || strlen(archive) + 16 > PATH_MAX || strlen(checkpoints_path) >= PATH_MAX) {
        snprintf(err, errlen, "trail archive %s: not an absolute path, or too long", archive);
        return NULL;
    }
    archiver_t *x = calloc(1, sizeof *x);
    if (!x) {
        snprintf(err, errlen, "trail archive: out of memory");
        return NULL;
    }
    x->move = move;
    snprintf(x->archive, sizeof x->archive, "%s", archive);
    snprintf(x->checkpoints, sizeof x->checkpoints, "%s", checkpoints_path);
    snprintf(x->copy, sizeof x->copy, "%s/checkpoints", archive);
    x->after_s = after_s;
    x->sealed = sealed;
    x->arg = arg;
    pthread_mutex_init(&x->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&x->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&x->thread, NULL, s_run, x) != 0) {
        snprintf(err, errlen, "trail archive: cannot start a thread");
        pthread_cond_destroy(&x->cv);
        pthread_mutex_destroy(&x->mu);
        free(x);
        return NULL;
    }
    return x;
}

/* archiver_stats - see archiver.h */
void archiver_stats(archiver_t *self, archiver_stats_t *out)
{
    assert(self && out);
    pthread_mutex_lock(&self->mu);
    *out = self->stats;
    pthread_mutex_unlock(&self->mu);
}

/* archiver_destroy - see archiver.h */
void archiver_destroy(archiver_t **self_p)
{
    assert(self_p);
    archiver_t *x = *self_p;
    if (!x)
        return;
    pthread_mutex_lock(&x->mu);
    x->stop = true;
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
    pthread_join(x->thread, NULL);
    pthread_cond_destroy(&x->cv);
    pthread_mutex_destroy(&x->mu);
    free(x);
    *self_p = NULL;
}
