/* catchup_job - the master's periodic catch-up (see catchup_job.h).
 *
 * Why a child process and not a thread of the master: the master only
 * forks, waits and restarts (Postfix's master), and a catch-up does
 * network calls and SQLite reads that may take minutes; a child that
 * crashes costs one period, never the supervisor. Why not a stage: it has
 * no input and no journal of its own, and restarting it at once after a
 * failure (Stripe down) would only hammer the API; the next period is its
 * retry, and a run interrupted there goes on from the state file only when
 * it is the same range (a periodic run's range moves with the clock, so
 * each run lists its window afresh, and what validate has seen is counted,
 * not handed in again).
 */
#include "catchup_job.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "utc.h"

/* catchup_job_init - see catchup_job.h */
int catchup_job_init(catchup_job_t *j, const config_t *c, const char *bindir, const char *cfg_path,
                     const sigset_t *child_mask, char *err, size_t errlen)
{
    assert(j && c && bindir && child_mask);
    memset(j, 0, sizeof *j);
    j->last_status = -1;
    if (config_bounded(c, "catchup/every_s", &j->every_s, err, errlen) != 0 ||
        config_bounded(c, "catchup/window_s", &j->window_s, err, errlen) != 0)
        return -1;
    snprintf(j->bin, sizeof j->bin, "%s/payguard", bindir);
    snprintf(j->run_dir, sizeof j->run_dir, "%s", config_run_dir(c));
    j->cfg_path = cfg_path;
    j->child_mask = *child_mask;
    assert(j->every_s >= 0 && j->window_s > 0);
    if (j->every_s == 0) { /* off: no status line or metrics left from when it was on */
        char path[CONFIG_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/catchup.stat", j->run_dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/catchup.prom", j->run_dir);
        unlink(path);
    }
    return 0;
}

/* s_record - run/catchup.stat and run/catchup.prom, each through a rename */
static void s_record(const catchup_job_t *j)
{
    char path[CONFIG_PATH_MAX + 32], tmp[CONFIG_PATH_MAX + 40];
    snprintf(path, sizeof path, "%s/catchup.stat", j->run_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f) {
        fprintf(f, "every_s=%ld\nwindow_s=%ld\nruns=%lu\nfailures=%lu\nlast_exit=%d\nlast_unix=%lld\nrunning=%d\n",
                j->every_s, j->window_s, j->runs, j->failures, j->last_status, (long long) j->last_unix,
                j->pid ? 1 : 0);
        if (fclose(f) == 0)
            rename(tmp, path);
    }
    snprintf(path, sizeof path, "%s/catchup.prom", j->run_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f) {
        fprintf(f,
                "payguard_catchup_runs_total{instance=\"master\",outcome=\"ok\"} %lu\n"
                "payguard_catchup_runs_total{instance=\"master\",outcome=\"failed\"} %lu\n"
                "payguard_catchup_last_exit_status{instance=\"master\"} %d\n",
                j->runs - j->failures, j->failures, j->last_status);
        if (fclose(f) == 0)
            rename(tmp, path);
    }
}

/* catchup_job_tick - see catchup_job.h */
void catchup_job_tick(catchup_job_t *j, int64_t now_ms)
{
    assert(j);
    if (j->every_s <= 0 || j->pid || now_ms < j->next_ms)
        return;
    if (!j->next_ms) { /* the first period begins when the group is up */
        j->next_ms = now_ms + j->every_s * 1000;
        s_record(j);
        return;
    }
    j->next_ms = now_ms + j->every_s * 1000;
    char since[32];
    snprintf(since, sizeof since, "now-%ld", j->window_s);
    pid_t pid = fork();
    if (pid < 0) {
        log_error("catch-up: fork: %s; trying again in %ld s", strerror(errno), j->every_s);
        return;
    }
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        sigprocmask(SIG_SETMASK, &j->child_mask, NULL);
        char *argv[10] = {"payguard", "catch-up", "stripe", "--since", since, "--quiet", NULL, NULL, NULL};
        if (j->cfg_path) {
            argv[6] = "-c";
            argv[7] = (char *) j->cfg_path;
        }
        execv(j->bin, argv);
        fprintf(stderr, "payguard: cannot exec %s: %s\n", j->bin, strerror(errno));
        _exit(127);
    }
    j->pid = pid;
    j->started_ms = now_ms;
    assert(j->pid > 0);
    log_info("catch-up: started pid=%d (payguard catch-up stripe --since %s --quiet)", (int) pid, since);
    s_record(j);
}

/* catchup_job_reaped - see catchup_job.h */
bool catchup_job_reaped(catchup_job_t *j, pid_t pid, int status, int64_t now_ms)
{
    assert(j && pid > 0);
    if (pid != j->pid)
        return false;
    j->pid = 0;
    j->runs++;
    assert(j->failures < j->runs);
    j->last_unix = (int64_t) time(NULL);
    j->last_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (j->last_status != 0) {
        j->failures++;
        log_warn("catch-up: pid=%d %s %d after %lld ms; the next run in %ld s", (int) pid,
                 WIFEXITED(status) ? "exited with status" : "killed by signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), (long long) (now_ms - j->started_ms),
                 j->every_s);
    } else {
        log_info("catch-up: pid=%d done in %lld ms", (int) pid, (long long) (now_ms - j->started_ms));
    }
    s_record(j);
    return true;
}

/* catchup_job_stop - see catchup_job.h */
void catchup_job_stop(catchup_job_t *j)
{
    assert(j);
    if (!j->pid)
        return;
    assert(j->pid > 0);
    kill(j->pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 250; i++) { /* 5 s */
        if (waitpid(j->pid, &status, WNOHANG) == j->pid) {
            j->pid = 0;
            return;
        }
        usleep(20000);
    }
    log_warn("catch-up: pid=%d did not stop in 5 s: SIGKILL (its state file keeps what it handed in)", (int) j->pid);
    kill(j->pid, SIGKILL);
    waitpid(j->pid, &status, 0);
    j->pid = 0;
}

/* catchup_job_print_status - see catchup_job.h */
void catchup_job_print_status(const char *run_dir)
{
    assert(run_dir);
    char path[CONFIG_PATH_MAX + 32], text[512] = "";
    snprintf(path, sizeof path, "%s/catchup.stat", run_dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    assert(n < sizeof text);
    long every = 0;
    unsigned long runs = 0, failures = 0;
    int last = -1, running = 0;
    long long at = 0;
    if (sscanf(text, "every_s=%ld\nwindow_s=%*d\nruns=%lu\nfailures=%lu\nlast_exit=%d\nlast_unix=%lld\nrunning=%d",
               &every, &runs, &failures, &last, &at, &running) != 6 ||
        every <= 0)
        return;
    char when[UTC_ISO_MAX] = "never";
    if (at > 0)
        utc_iso((int64_t) at * 1000, when);
    printf("catch-up (stripe) every %ld s: %lu runs, %lu failed; last %s, exit %d%s\n", every, runs, failures, when,
           last, running ? "; running now" : "");
}
