/* stage_disk - a stage takes no input while its disk is nearly full (see stage.h, DISK SPACE) */
#include "stage_priv.h"

#include <sys/statvfs.h>

#define DISK_CHECK_MS 1000          /* how often statvfs is asked */
#define STAGE_RETIRE_EVERY_MS 10000 /* how often old segments are looked for */

/* sk_check_disk - see stage_priv.h */
void sk_check_disk(stage_t *st, int64_t now)
{
    if (now - st->last_disk_check_ms < DISK_CHECK_MS)
        return;
    st->last_disk_check_ms = now;
    struct statvfs sv;
    if (statvfs(journal_dir(st->journal), &sv) != 0) {
        if (atomic_load(&st->disk_free_mb) != -1)
            log_warn("cannot tell the free space under %s: %s (taking input as usual)", journal_dir(st->journal),
                     strerror(errno));
        atomic_store(&st->disk_free_mb, -1);
        atomic_store(&st->disk_low, false);
        return;
    }
    long long free_mb = (long long) ((unsigned long long) sv.f_bavail * sv.f_frsize / (1024 * 1024));
    bool low = free_mb < st->min_free_mb, was = atomic_load(&st->disk_low);
    atomic_store(&st->disk_free_mb, free_mb);
    atomic_store(&st->disk_low, low);
    if (low && !was)
        log_warn("disk nearly full: %lld MiB free under %s, below payguard/journal/min_free_mb = %ld: taking no "
                 "input until space is freed (producers wait; ingest answers 503)",
                 free_mb, journal_dir(st->journal), st->min_free_mb);
    else if (!low && was)
        log_info("disk space back: %lld MiB free under %s: taking input again", free_mb, journal_dir(st->journal));
}

/* stage_disk_low - see stage.h */
bool stage_disk_low(const stage_t *st)
{
    return atomic_load(&st->disk_low);
}

/* sk_retire - see stage_priv.h */
void sk_retire(stage_t *st, int64_t now)
{
    if (!st->def->retire_journal || now - st->last_retire_ms < STAGE_RETIRE_EVERY_MS)
        return;
    st->last_retire_ms = now;
    /* the watermarks a restart reads (journaled), not the windows' newer ones */
    uint64_t upto = st->wm_written[DEST_AUDIT];
    if (st->next && st->wm_written[DEST_NEXT] < upto)
        upto = st->wm_written[DEST_NEXT];
    if (st->def->retain_after) { /* and its snapshot needs what follows its position */
        uint64_t snap = st->def->retain_after(st, st->def->arg);
        upto = snap < upto ? snap : upto;
    }
    uint64_t bytes = 0;
    char err[256];
    int64_t older = (int64_t) time(NULL) - st->retention_s;
    if (st->in) { /* a stage with inputs keeps its dedup memory: a checkpoint after what goes */
        int k = journal_retirable(st->journal, upto, older, err, sizeof err);
        if (k <= 0) {
            if (k < 0)
                log_warn("journal retirement: %s (segments kept)", err);
            return;
        }
        sk_checkpoint_dedup(st);
        journal_sync(st->journal); /* durable before anything it replaces is removed */
    }
    int n = journal_retire(st->journal, upto, older, &bytes, err, sizeof err);
    if (n < 0) {
        log_warn("journal retirement: %s (segments kept; trying again in %d s)", err, STAGE_RETIRE_EVERY_MS / 1000);
        return;
    }
    if (n == 0)
        return;
    log_info("retired %d journal segment(s), %llu bytes: every record up to #%llu acknowledged, older than %ld s", n,
             (unsigned long long) bytes, (unsigned long long) upto, st->retention_s);
    stage_count(st, "payguard_journal_retired_segments_total", NULL, NULL, (uint64_t) n);
    stage_count(st, "payguard_journal_retired_bytes_total", NULL, NULL, bytes);
}

/* sk_journal_usage - see stage_priv.h */
void sk_journal_usage(stage_t *st, int64_t now)
{
    if (st->last_usage_ms && now - st->last_usage_ms < STAGE_RETIRE_EVERY_MS)
        return;
    st->last_usage_ms = now;
    size_t segments;
    uint64_t bytes;
    char err[256];
    if (journal_usage(st->journal, &segments, &bytes, err, sizeof err) != 0) {
        log_warn("journal size: %s", err);
        return;
    }
    stage_gauge(st, "payguard_journal_bytes", (int64_t) bytes);
    stage_gauge(st, "payguard_journal_segments", (int64_t) segments);
    stage_gauge(st, "payguard_journal_retention_seconds", st->def->retire_journal ? st->retention_s : 0);
}
