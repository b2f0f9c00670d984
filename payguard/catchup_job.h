/* catchup_job - the master's periodic catch-up: with catchup/every_s > 0,
 * `payguard catch-up stripe --since now-<catchup/window_s> --quiet` every
 * every_s seconds, as a child of the master that is not a stage: never
 * restarted (the next period runs it again), at most one at a time, its
 * exit status logged and kept in run/catchup.stat (payguard status) and
 * run/catchup.prom (payguard_catchup_runs_total{outcome}, /metrics).
 */
#ifndef PG_CATCHUP_JOB_H
#define PG_CATCHUP_JOB_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

typedef struct {
    long every_s, window_s; /* every_s 0: off */
    char bin[PATH_MAX];     /* the payguard binary */
    const char *cfg_path;   /* -c for the child, NULL: embedded defaults */
    char run_dir[CONFIG_PATH_MAX];
    sigset_t child_mask; /* the signal mask the child starts with */
    pid_t pid;           /* running now, 0: none */
    int64_t next_ms, started_ms;
    unsigned long runs, failures;
    int last_status; /* exit status, 128 + signal when killed; -1: none yet */
    int64_t last_unix;
} catchup_job_t;

/* catchup_job_init - read catchup/every_s and window_s; 0, or -1 and err */
int catchup_job_init(catchup_job_t *j, const config_t *c, const char *bindir, const char *cfg_path,
                     const sigset_t *child_mask, char *err, size_t errlen);
/* catchup_job_tick - start a run when one is due and none runs (now: monotonic ms) */
void catchup_job_tick(catchup_job_t *j, int64_t now_ms);
/* catchup_job_reaped - pid exited with status: true if it was the job's run (then logged and recorded) */
bool catchup_job_reaped(catchup_job_t *j, pid_t pid, int status, int64_t now_ms);
/* catchup_job_stop - end a run in progress (SIGTERM, then SIGKILL after 5 s) and wait for it */
void catchup_job_stop(catchup_job_t *j);
/* catchup_job_print_status - the line `payguard status` shows from run_dir/catchup.stat (nothing when off) */
void catchup_job_print_status(const char *run_dir);

#endif
