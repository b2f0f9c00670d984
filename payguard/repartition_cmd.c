/* repartition_cmd - `payguard repartition [-c CONFIG]`: move the state of
 * validate, approve and execute to the owners the configuration routes to
 * (common/route.h), after their instances or payguard/partitions changed.
 *
 * With the group stopped (every journal is locked by its writer: a running
 * instance makes the command refuse), for each stage whose layout differs
 * (common/layout.h):
 *   0. every old journal must be whole: one whose oldest segments retention
 *      removed (approve: their cases live in its case store, which this
 *      command does not move) makes the command refuse, saying so;
 *   1. every event the old instances emitted must be acknowledged by its
 *      consumers (the journals' watermarks): an unacknowledged event names
 *      its producer instance and position, which would no longer exist, so
 *      the command refuses and says to start the group with the old values
 *      until `payguard status` shows nothing waiting;
 *   2. the old journals are merged in event time order into new ones under
 *      <data_dir>/repartition.tmp/, each event to the journal of the owner
 *      of its case key (an event with none - a rejected receipt - to
 *      instance 0), re-stamped with its new instance and position; ids are
 *      kept, so consumers still drop what they have seen; the records of
 *      inputs taken ('I', and 'C' of older journals) and of producers'
 *      floors ('F') go to every new journal (dedup state: every new owner
 *      knows what any old one took); the new journals have new epochs, so
 *      consumers start their links to them afresh (dedup.h);
 *      each new journal ends with a watermark (all acknowledged);
 *   3. an intent file is written, the old journal directories are moved to
 *      <data_dir>/retired/<stage>.<n>.<unix time>/, the new ones into
 *      place, and validate's state store files are removed (a projection:
 *      rebuilt from the journal at start);
 *   4. the layout file is written and the intent removed.
 * Killed at any point, the state is whole: before the intent nothing moved;
 * after it, the command run again finishes the moves (layout_check refuses
 * to start meanwhile). Producers re-route what they still hold by the new
 * layout when they start.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "journal.h"
#include "layout.h"
#include "route.h"
#include "stage.h"

/* one old instance's journal being merged */
typedef struct {
    journal_t *lock; /* opened as writer: no stage runs on it meanwhile */
    journal_reader_t *r;
    event_t *ev; /* the current event record, or NULL at the end */
    unsigned char mask;
    uint64_t seq;
} source_t;

typedef struct {
    const config_t *c;
    const char *stage;
    int from, to; /* instance counts */
    char tmp[CONFIG_PATH_MAX + 64];
    source_t src[CONFIG_MAX_INSTANCES];
    journal_t *dst[CONFIG_MAX_INSTANCES];
    uint64_t moved[CONFIG_MAX_INSTANCES], consumed;
} move_t;

/* s_rm_rf - remove a directory tree of plain files (a journal directory) */
static void s_rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            char path[CONFIG_PATH_MAX + 400];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
}

/* s_unacked - events of an old journal its consumers have not acknowledged:
 * every 'E' record above the last watermark of a destination it has */
static int s_unacked(const char *dir, uint64_t *count, char *err, size_t errlen)
{
    uint64_t wm[2] = {0, 0}, top[2] = {0, 0};
    journal_reader_t *r = journal_reader_new(dir, 1, err, errlen);
    if (!r)
        return -1;
    const void *data;
    size_t len;
    uint64_t seq;
    int rc;
    while ((rc = journal_reader_next(r, &data, &len, &seq)) == 1) {
        const unsigned char *p = data;
        for (int d = 0; d < 2; d++) {
            if (p[0] == STAGE_REC_EVENT && len > 2 && (p[1] & (1u << d)))
                top[d] = seq;
            uint64_t v = 0;
            for (int b = 7; p[0] == STAGE_REC_WATERMARK && len == 17 && b >= 0; b--)
                v = (v << 8) | p[1 + d * 8 + b];
            wm[d] = v > wm[d] ? v : wm[d];
        }
    }
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", dir, journal_reader_error(r));
    journal_reader_destroy(&r);
    *count = (top[0] > wm[0]) + (top[1] > wm[1]);
    return rc < 0 ? -1 : 0;
}

/* s_next - advance a source to its next event record; dedup records
 * ('I', 'F', 'C') met on the way go to every new journal */
static int s_next(move_t *m, source_t *s, char *err, size_t errlen)
{
    event_destroy(&s->ev);
    const void *data;
    size_t len;
    uint64_t seq;
    int rc;
    while ((rc = journal_reader_next(s->r, &data, &len, &seq)) == 1) {
        const unsigned char *p = data;
        if (p[0] == STAGE_REC_EVENT && len > 2) {
            s->ev = event_decode(p + 2, len - 2, err, errlen);
            if (!s->ev)
                return -1;
            s->mask = p[1];
            s->seq = seq;
            return 0;
        }
        if (p[0] == STAGE_REC_CONSUMED || p[0] == STAGE_REC_TAKEN || p[0] == STAGE_REC_FLOOR) {
            for (int n = 0; n < m->to; n++)
                journal_append(m->dst[n], data, len, NULL);
            m->consumed++;
        } else if (p[0] != STAGE_REC_WATERMARK) {
            snprintf(err, errlen, "record %llu: kind 0x%02x has no place in %s's journal", (unsigned long long) seq,
                     p[0], m->stage);
            return -1;
        }
    }
    if (rc < 0)
        snprintf(err, errlen, "%s", journal_reader_error(s->r));
    return rc < 0 ? -1 : 0;
}

/* s_copy_event - one event into the journal of its key's owner, re-stamped */
static int s_copy_event(move_t *m, const source_t *s, char *err, size_t errlen)
{
    event_head_t h = *event_head(s->ev);
    int n = h.case_key[0] ? route_target_key(m->c, m->stage, h.case_key) : 0;
    snprintf(h.stage, sizeof h.stage, "%s.%d", m->stage, n);
    h.seq = journal_last_seq(m->dst[n]) + 1;
    event_body_t *b = event_body_new();
    event_body_copy(b, s->ev);
    size_t len;
    unsigned char *env = event_encode(&h, b, &len, err, errlen);
    event_body_destroy(&b);
    if (!env)
        return -1;
    unsigned char *rec = malloc(len + 2);
    rec[0] = STAGE_REC_EVENT;
    rec[1] = s->mask;
    memcpy(rec + 2, env, len);
    uint64_t seq = 0;
    int rc = journal_append(m->dst[n], rec, len + 2, &seq);
    free(rec);
    free(env);
    if (rc != 0 || seq != h.seq) {
        snprintf(err, errlen, "cannot append to the new %s.%d: %s", m->stage, n, strerror(errno));
        return -1;
    }
    m->moved[n]++;
    return 0;
}

/* s_merge - every old journal's events, oldest first, into the new ones */
static int s_merge(move_t *m, char *err, size_t errlen)
{
    for (int j = 0; j < m->from; j++)
        if (m->src[j].r && s_next(m, &m->src[j], err, errlen) != 0)
            return -1;
    while (true) {
        source_t *best = NULL;
        for (int j = 0; j < m->from; j++)
            if (m->src[j].ev && (!best || event_head(m->src[j].ev)->time_ms < event_head(best->ev)->time_ms))
                best = &m->src[j];
        if (!best)
            return 0;
        if (s_copy_event(m, best, err, errlen) != 0 || s_next(m, best, err, errlen) != 0)
            return -1;
    }
}

/* s_open_old - lock old journal j, check it is whole and all acknowledged, read it */
static int s_open_old(move_t *m, int j, char *err, size_t errlen)
{
    char *dir = config_journal_dir(m->c, m->stage, j);
    struct stat sb;
    uint64_t unacked = 0;
    int rc = 0;
    if (stat(dir, &sb) != 0) { /* an instance that never wrote */
        free(dir);
        return 0;
    }
    m->src[j].lock = journal_open(dir, NULL, err, errlen);
    if (!m->src[j].lock) {
        size_t l = strlen(err);
        snprintf(err + l, errlen - l, " (is an instance of the group still running?)");
        rc = -1;
    } else if (journal_first_live_seq(m->src[j].lock) > 1) { /* retention removed its start */
        snprintf(err, errlen,
                 "%s.%d's journal no longer holds its first records (%s/retention_s removed old segments; the "
                 "cases in them live in its case store): repartition moves journals and cannot move those yet. "
                 "Keep %s's instances as they are (README, Retention)",
                 m->stage, j, m->stage, m->stage);
        rc = -1;
    } else if ((rc = s_unacked(dir, &unacked, err, errlen)) == 0 && unacked) {
        snprintf(err, errlen,
                 "%s.%d has events its consumers have not acknowledged: start the group with its old instances "
                 "and partitions until `payguard status` shows nothing unacknowledged, stop it, then repartition",
                 m->stage, j);
        rc = -1;
    } else if (rc == 0) {
        m->src[j].r = journal_reader_new(dir, 1, err, errlen);
        rc = m->src[j].r ? 0 : -1;
    }
    free(dir);
    return rc;
}

/* s_open - lock and read the old journals, create the new ones in tmp */
static int s_open(move_t *m, char *err, size_t errlen)
{
    for (int j = 0; j < m->from; j++)
        if (s_open_old(m, j, err, errlen) != 0)
            return -1;
    for (int n = 0; n < m->to; n++) {
        char dir[CONFIG_PATH_MAX + 96];
        snprintf(dir, sizeof dir, "%s/%s.%d", m->tmp, m->stage, n);
        s_rm_rf(dir); /* left by an attempt that failed before its intent */
        m->dst[n] = journal_open(dir, NULL, err, errlen);
        if (!m->dst[n])
            return -1;
    }
    return 0;
}

/* s_close - release everything; the new journals end with a watermark */
static void s_close(move_t *m)
{
    for (int j = 0; j < m->from; j++) {
        event_destroy(&m->src[j].ev);
        journal_reader_destroy(&m->src[j].r);
        journal_close(&m->src[j].lock);
    }
    for (int n = 0; n < m->to; n++) {
        if (!m->dst[n])
            continue;
        uint64_t last = journal_last_seq(m->dst[n]);
        unsigned char w[17] = {STAGE_REC_WATERMARK};
        for (int d = 0; d < 2; d++)
            for (int b = 0; b < 8; b++)
                w[1 + d * 8 + b] = (unsigned char) (last >> (8 * b));
        if (last)
            journal_append(m->dst[n], w, sizeof w, NULL);
        journal_close(&m->dst[n]);
    }
}

/* s_install - retire the old journal directories, put the new ones in
 * place, drop validate's store files; idempotent (a second run finishes an
 * interrupted one) */
static int s_install(const config_t *c, const char *stage, int from, int to, long long stamp, char *err, size_t errlen)
{
    char retired[CONFIG_PATH_MAX + 16], tmp[CONFIG_PATH_MAX + 32];
    snprintf(retired, sizeof retired, "%s/retired", config_data_dir(c));
    snprintf(tmp, sizeof tmp, "%s/repartition.tmp", config_data_dir(c));
    mkdir(retired, 0750);
    for (int j = 0; j < CONFIG_MAX_INSTANCES; j++) {
        char *dir = config_journal_dir(c, stage, j), to_dir[CONFIG_PATH_MAX + 96], fresh[CONFIG_PATH_MAX + 96];
        snprintf(to_dir, sizeof to_dir, "%s/%s.%d.%lld", retired, stage, j, stamp);
        snprintf(fresh, sizeof fresh, "%s/%s.%d", tmp, stage, j);
        struct stat sb;
        bool old = j < from && stat(dir, &sb) == 0 && stat(to_dir, &sb) != 0;
        int rc = old ? rename(dir, to_dir) : 0;
        if (rc == 0 && j < to && stat(fresh, &sb) == 0)
            rc = rename(fresh, dir);
        if (rc == 0 && strcmp(stage, "validate") == 0) {
            char *db = config_expand(c, config_get(c, "validate/state_db"), stage, j);
            unlink(db);
            free(db);
        }
        if (rc != 0)
            snprintf(err, errlen, "cannot move %s: %s", dir, strerror(errno));
        free(dir);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* s_move - build the new journals of one stage in tmp (nothing moved yet) */
static int s_move(const config_t *c, const char *stage, int from, char *err, size_t errlen)
{
    static move_t m;
    memset(&m, 0, sizeof m);
    m.c = c;
    m.stage = stage;
    m.from = from;
    m.to = config_instances(c, stage);
    snprintf(m.tmp, sizeof m.tmp, "%s/repartition.tmp", config_data_dir(c));
    mkdir(m.tmp, 0750);
    int rc = s_open(&m, err, errlen) == 0 && s_merge(&m, err, errlen) == 0 ? 0 : -1;
    s_close(&m);
    if (rc != 0)
        return -1;
    printf("%s: %d instance(s) -> %d, %u partitions:", stage, from, m.to, config_partitions(c));
    for (int n = 0; n < m.to; n++)
        printf(" %s.%d %llu", stage, n, (unsigned long long) m.moved[n]);
    printf(" events; %llu dedup records copied to each\n", (unsigned long long) m.consumed);
    return 0;
}

/* s_finish - the moves the intent file lists, then the layout; the file
 * holds one line per stage: "<stage> <old instances> <unix time>" */
static int s_finish(const config_t *c, const char *intent, char *err, size_t errlen)
{
    FILE *f = fopen(intent, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", intent, strerror(errno));
        return -1;
    }
    char stage[32];
    int from;
    long long stamp;
    int rc = 0;
    while (rc == 0 && fscanf(f, "%31s %d %lld", stage, &from, &stamp) == 3)
        rc = route_partitioned(stage) ? s_install(c, stage, from, config_instances(c, stage), stamp, err, errlen) : -1;
    fclose(f);
    if (rc == 0 && layout_write(c, err, errlen) == 0 && unlink(intent) == 0) {
        char tmp[CONFIG_PATH_MAX + 32];
        snprintf(tmp, sizeof tmp, "%s/repartition.tmp", config_data_dir(c));
        rmdir(tmp);
        return 0;
    }
    if (!err[0])
        snprintf(err, errlen, "%s: not a repartition intent", intent);
    return -1;
}

/* s_plan - build the new journals of every stage whose layout differs and
 * write the intent naming them; 0 with *n stages to move */
static int s_plan(const config_t *c, const char *intent, int *n, char *err, size_t errlen)
{
    layout_t l;
    if (layout_read(c, &l, err, errlen) != 0)
        return -1;
    char lines[LAYOUT_NSTAGES * 64] = "";
    long long stamp = (long long) time(NULL);
    *n = 0;
    for (int i = 0; i < LAYOUT_NSTAGES; i++) {
        if (!layout_differs(c, &l, i))
            continue;
        int from = l.instances[i] > l.with_state[i] ? l.instances[i] : l.with_state[i];
        if (s_move(c, layout_stages[i], from, err, errlen) != 0)
            return -1;
        size_t k = strlen(lines);
        snprintf(lines + k, sizeof lines - k, "%s %d %lld\n", layout_stages[i], from, stamp);
        (*n)++;
    }
    if (!*n)
        return 0;
    FILE *f = fopen(intent, "w");
    bool ok = f && fputs(lines, f) >= 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f)
        ok = fclose(f) == 0 && ok;
    if (!ok)
        snprintf(err, errlen, "cannot write %s: %s", intent, strerror(errno));
    return ok ? 0 : -1;
}

/* cmd_repartition - see the top of this file */
int cmd_repartition(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-c") != 0 || ++i >= argc) {
            fprintf(stderr, "usage: payguard repartition [-c CONFIG]\n");
            return 2;
        }
    config_t *c;
    if (cli_load_config(cli_opt_config(argc, argv), &c) != 0)
        return 2;
    char err[1024] = "", intent[CONFIG_PATH_MAX + 32];
    int rc = 0, n = 0;
    pid_t pid = cli_master_pid(c);
    layout_intent_path(c, intent, sizeof intent);
    if (pid) {
        snprintf(err, sizeof err, "the group is running (master pid %d): stop it with `payguard down` first",
                 (int) pid);
        rc = -1;
    } else if (access(intent, F_OK) == 0) {
        rc = s_finish(c, intent, err, sizeof err);
        if (rc == 0)
            printf("finished the repartition that was interrupted\n");
    } else if ((rc = s_plan(c, intent, &n, err, sizeof err)) == 0 && n) {
        rc = s_finish(c, intent, err, sizeof err);
    } else if (rc == 0) {
        rc = layout_write(c, err, sizeof err);
        printf("nothing to move: the data directory's state is already split as the configuration routes\n");
    }
    if (rc != 0)
        fprintf(stderr, "payguard: repartition: %s\n", err);
    else if (n)
        printf("repartitioned: %d stage(s); the old journals are in %s/retired/\n", n, config_data_dir(c));
    config_destroy(&c);
    return rc == 0 ? 0 : 1;
}
