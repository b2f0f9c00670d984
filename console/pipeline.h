/* pipeline - the numbers of the console's Pipeline page, and their last hour.
 *
 * Where they come from: the files the group writes in its run_dir, read
 * where the console runs (it is started by the same master, with the same
 * config):
 *   master.state	each instance: pid (0: down), start time, restarts
 *   <inst>.stat	its process's pid and ready=yes|no: why (stage_ready)
 *   <inst>.prom	its samples, every second: the same numbers its /metrics
 *			serves (events in and out, unacknowledged events and the
 *			age of the oldest per link, journal size and retention,
 *			outside calls by system with their latency histogram,
 *			breaker, calls in flight, approvals pending, ops review)
 * Only the files hold every number asked: most stages serve no HTTP port
 * of their own, and uptime and restarts are the master's alone.
 *
 * A sample (pipeline_snap_t) is built from those texts by pure functions
 * (unit-tested: tests/unit/test_pipeline.c); rates come from the counters'
 * difference with the previous sample (a counter that went down is a
 * restarted process: its new value is the difference). The history
 * (pipeline_hist_t) keeps a fixed number of samples of a fixed number of
 * series in one ring: its memory is samples x series x 8 bytes, set at
 * start, never more.
 */
#ifndef PG_PIPELINE_H
#define PG_PIPELINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PIPELINE_MAX_INSTANCES 128 /* CONFIG_NSTAGES x CONFIG_MAX_INSTANCES, the sandbox and the console */
#define PIPELINE_MAX_SYSTEMS 16    /* outside systems (outside/...: payments, psp, ledger, jira, teams, llm, ...) */
#define PIPELINE_MAX_BUCKETS 24    /* latency histogram buckets of a system (stage_status.c has 16) */
#define PIPELINE_NAME_MAX 32
#define PIPELINE_WHY_MAX 200
#define PIPELINE_MAX_SERIES 128 /* charted: 4 per stage (and up for 2 more), 4 per system, 4 end to end */
#define PIPELINE_STALE_S 5      /* a status file older than this: its process stopped answering */

/* one instance of the group, as the master and its files see it */
typedef struct {
    char inst[PIPELINE_NAME_MAX];  /* triage.1, sandbox.0, console.0 */
    char stage[PIPELINE_NAME_MAX]; /* triage */
    int pid;                       /* 0: down (the master restarts it) */
    long long started_unix;
    unsigned restarts;
    const char *state; /* "up", "not ready", "starting", "not answering", "down" (pipeline_state) */
    char why[PIPELINE_WHY_MAX];
    bool has_stat; /* a stage: it writes status files */
    double in_total, out_total, in_per_s, out_per_s;
    double unacked_next, unacked_audit, oldest_next_s, oldest_audit_s;
    double journal_bytes, journal_segments, retention_s, retired_segments;
} pipeline_inst_t;

/* one outside system, summed over every instance that calls it */
typedef struct {
    char name[PIPELINE_NAME_MAX];
    double calls_total, errors_total; /* errors: 5xx and no answer */
    double le[PIPELINE_MAX_BUCKETS];  /* the buckets' upper bounds, seconds (last: +Inf) */
    double cum[PIPELINE_MAX_BUCKETS]; /* cumulative counts, as exposed */
    size_t nbuckets;
    double inflight, queued;
    int breaker;                                  /* the worst of its callers': 0 closed, 1 open, 2 half-open */
    double calls_per_s, error_rate, p50_s, p99_s; /* since the previous sample; NAN: no call */
} pipeline_system_t;

/* one sample of the whole group */
typedef struct {
    int64_t t_ms; /* unix ms */
    pipeline_inst_t inst[PIPELINE_MAX_INSTANCES];
    size_t ninst;
    pipeline_system_t sys[PIPELINE_MAX_SYSTEMS];
    size_t nsys;
    double receipts_total, webhooks_per_s; /* ingest's recorded webhook requests */
    double approvals_pending, ops_review, oldest_unacked_s;
    bool have_pending, have_ops_review;
    bool no_master; /* none runs here (systemd's units): instances from their status files, uptime and restarts
                       unknown (systemctl knows them) */
} pipeline_snap_t;

/* pipeline_snap_master - the instances of master.state's text (lines
 * "inst pid started_unix restarts"), at most PIPELINE_MAX_INSTANCES; the
 * rest of *snap zeroed, t_ms set */
void pipeline_snap_master(pipeline_snap_t *snap, const char *text, int64_t t_ms);

/* pipeline_snap_unit - one more instance of a group with no master (its
 * instances are systemd's units): inst, the pid its status file names and
 * whether that process is alive (else down); sets no_master. false when
 * full or inst is no instance name */
bool pipeline_snap_unit(pipeline_snap_t *snap, const char *inst, int pid, bool alive);

/* pipeline_state - instance i's state from its status file's text (NULL:
 * none) written age_s ago: "down" (no process), "starting" (the file is not
 * its current process's yet), "not answering" (older than
 * PIPELINE_STALE_S), "not ready" (ready=no, why set), "up" */
void pipeline_state(pipeline_snap_t *snap, size_t i, const char *stat_text, double age_s);

/* pipeline_prom_line - one sample line of the exposition format split:
 * its family name, its labels' text (between the braces, "" if none) and
 * its value; false for comments, blank or malformed lines */
bool pipeline_prom_line(const char *line, char *name, size_t namelen, char *labels, size_t labelslen, double *value);

/* pipeline_label - the value of label key in labels' text (unescaped), or
 * false when absent */
bool pipeline_label(const char *labels, const char *key, char *out, size_t outlen);

/* pipeline_snap_prom - fold instance i's .prom text into snap */
void pipeline_snap_prom(pipeline_snap_t *snap, size_t i, const char *text);

/* pipeline_quantile - the q quantile (0..1) of a histogram's cumulative
 * bucket counts (le ascending, the last +Inf), interpolated within its
 * bucket as Prometheus' histogram_quantile does; the +Inf bucket answers
 * the last finite bound; NAN when the counts are all 0 */
double pipeline_quantile(const double *le, const double *cum, size_t n, double q);

/* pipeline_snap_rates - cur's rates against prev (NULL: the first sample:
 * no rates, NAN), over the time between them: events in and out per
 * instance (matched by name; another pid counts from 0), calls, error rate
 * and p50/p99 latency per system, webhooks per second */
void pipeline_snap_rates(pipeline_snap_t *cur, const pipeline_snap_t *prev);

/* pipeline_snap_json - the sample as the Pipeline page reads it */
json_t *pipeline_snap_json(const pipeline_snap_t *snap);

/* ------------------------------------------------------------ history */

typedef struct pipeline_hist_t pipeline_hist_t;

/* pipeline_hist_new - room for samples samples of max_series series; NULL
 * without memory */
pipeline_hist_t *pipeline_hist_new(size_t samples, size_t max_series);
/* pipeline_hist_destroy - free, NULL the pointer */
void pipeline_hist_destroy(pipeline_hist_t **self_p);
/* pipeline_hist_begin - a new sample at t_ms: the oldest goes when full;
 * every series is NAN there until set */
void pipeline_hist_begin(pipeline_hist_t *self, int64_t t_ms);
/* pipeline_hist_set - series' value in the newest sample (a new series
 * starts NAN before it); -1 when max_series series exist already or no
 * sample was begun */
int pipeline_hist_set(pipeline_hist_t *self, const char *series, double value);
/* pipeline_hist_count - the samples held (at most samples) */
size_t pipeline_hist_count(const pipeline_hist_t *self);
/* pipeline_hist_json - {"t":[unix ms...], "series":{name:[value|null...]}},
 * oldest first, the samples after since_ms only (0: all; a page that has
 * the rest asks for what is new) */
json_t *pipeline_hist_json(const pipeline_hist_t *self, int64_t since_ms);
/* pipeline_hist_record - snap's charted series into a new sample: per
 * stage (summed over its instances) events in/s and out/s, unacknowledged
 * events, instances up; per system calls/s, error rate, p50 and p99 (ms);
 * webhooks/s, cases waiting for people, in ops review, the oldest
 * unacknowledged event's age */
void pipeline_hist_record(pipeline_hist_t *self, const pipeline_snap_t *snap);

/* ------------------------------------------------------------ the watch (pipeline_watch.c) */

typedef struct pipeline_watch_t pipeline_watch_t;

/* pipeline_watch_new - the Pipeline page's memory: a sample of run_dir's
 * files every sample_s seconds, samples of them kept (console/
 * pipeline_sample_s, pipeline_samples); NULL without memory */
pipeline_watch_t *pipeline_watch_new(const char *run_dir, long sample_s, long samples);
/* pipeline_watch_destroy - free, NULL the pointer */
void pipeline_watch_destroy(pipeline_watch_t **self_p);
/* pipeline_watch_tick - take a sample when sample_s has passed since the
 * last (now_ms: monotonic); called once a second by the console's loop */
void pipeline_watch_tick(pipeline_watch_t *self, int64_t now_ms);
/* pipeline_watch_json - {"sample_s", "samples", "now": the newest sample
 * (null before the first), "history": the ring's samples after since_ms
 * (0: all)}; any thread */
json_t *pipeline_watch_json(pipeline_watch_t *self, int64_t since_ms);

#endif
