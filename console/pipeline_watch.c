/* pipeline_watch - the console's samples of the group's files, for GET /api/pipeline (see pipeline.h) */
#include "pipeline.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define PIPELINE_FILE_MAX (1024 * 1024) /* a .prom file, at most (metrics.c reads as much) */

struct pipeline_watch_t {
    char run_dir[4096];
    long sample_s;
    size_t samples;
    int64_t last_ms; /* monotonic, of the last sample; 0: none yet */
    pthread_mutex_t mu;
    pipeline_snap_t *cur; /* the newest sample (under mu), against which the next one's rates go */
    bool have;
    pipeline_hist_t *hist; /* under mu */
};

/* pipeline_watch_new - see pipeline.h */
pipeline_watch_t *pipeline_watch_new(const char *run_dir, long sample_s, long samples)
{
    assert(run_dir && sample_s > 0 && samples > 1);
    pipeline_watch_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    snprintf(w->run_dir, sizeof w->run_dir, "%s", run_dir);
    w->sample_s = sample_s;
    w->samples = (size_t) samples;
    pthread_mutex_init(&w->mu, NULL);
    w->cur = calloc(1, sizeof *w->cur);
    w->hist = pipeline_hist_new(w->samples, PIPELINE_MAX_SERIES);
    if (!w->cur || !w->hist)
        pipeline_watch_destroy(&w);
    return w;
}

/* pipeline_watch_destroy - see pipeline.h */
void pipeline_watch_destroy(pipeline_watch_t **self_p)
{
    pipeline_watch_t *w = *self_p;
    if (!w)
        return;
    pipeline_hist_destroy(&w->hist);
    free(w->cur);
    pthread_mutex_destroy(&w->mu);
    free(w);
    *self_p = NULL;
}

/* s_read - run_dir/name's text (at most PIPELINE_FILE_MAX bytes), the
 * caller's to free; its age in *age_s when not NULL; NULL if missing */
static char *s_read(const pipeline_watch_t *w, const char *name, double *age_s)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", w->run_dir, name);
    FILE *f = fopen(path, "r");
    struct stat sb;
    if (!f)
        return NULL;
    char *text = NULL;
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size <= PIPELINE_FILE_MAX &&
        (text = malloc((size_t) sb.st_size + 1)) != NULL) {
        size_t n = fread(text, 1, (size_t) sb.st_size, f);
        text[n] = '\0';
        if (age_s) {
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            *age_s = (double) (now.tv_sec - sb.st_mtim.tv_sec) + (double) (now.tv_nsec - sb.st_mtim.tv_nsec) / 1e9;
        }
    }
    fclose(f);
    return text;
}

/* s_units - without a master (systemd's units): the instances whose status
 * files are in run_dir, alive when the pid each names is (kill 0; another
 * user's process, EPERM, is alive too) */
static void s_units(pipeline_watch_t *w, pipeline_snap_t *snap)
{
    DIR *d = opendir(w->run_dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 6 || n - 5 >= PIPELINE_NAME_MAX || strcmp(e->d_name + n - 5, ".stat") != 0 ||
            strcmp(e->d_name, "catchup.stat") == 0)
            continue;
        char inst[PIPELINE_NAME_MAX];
        memcpy(inst, e->d_name, n - 5);
        inst[n - 5] = '\0';
        char *text = s_read(w, e->d_name, NULL);
        int pid = text && strncmp(text, "pid=", 4) == 0 ? atoi(text + 4) : 0;
        free(text);
        bool alive = pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
        if (!pipeline_snap_unit(snap, inst, pid, alive))
            break;
    }
    if (d)
        closedir(d);
}

/* s_sample - a new sample of the group into w->cur, its rates against the
 * last one, and into the history */
static void s_sample(pipeline_watch_t *w)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t t_ms = (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    pipeline_snap_t *snap = calloc(1, sizeof *snap);
    if (!snap)
        return;
    char *master = s_read(w, "master.state", NULL);
    pipeline_snap_master(snap, master ? master : "", t_ms);
    free(master);
    if (!master)
        s_units(w, snap);
    for (size_t i = 0; i < snap->ninst; i++) {
        char name[PIPELINE_NAME_MAX + 8];
        double age = 0;
        snprintf(name, sizeof name, "%s.stat", snap->inst[i].inst);
        char *stat = s_read(w, name, &age);
        pipeline_state(snap, i, stat, age);
        free(stat);
        snprintf(name, sizeof name, "%s.prom", snap->inst[i].inst);
        char *prom = snap->inst[i].pid ? s_read(w, name, NULL) : NULL;
        if (prom)
            pipeline_snap_prom(snap, i, prom);
        free(prom);
    }
    pthread_mutex_lock(&w->mu);
    pipeline_snap_rates(snap, w->have ? w->cur : NULL);
    pipeline_snap_t *old = w->cur;
    w->cur = snap;
    w->have = true;
    pipeline_hist_record(w->hist, snap);
    pthread_mutex_unlock(&w->mu);
    free(old);
}

/* pipeline_watch_tick - see pipeline.h */
void pipeline_watch_tick(pipeline_watch_t *self, int64_t now_ms)
{
    if (self->last_ms && now_ms - self->last_ms < self->sample_s * 1000 - 100) /* a loop turn may come early */
        return;
    self->last_ms = now_ms;
    s_sample(self);
}

/* pipeline_watch_json - see pipeline.h */
json_t *pipeline_watch_json(pipeline_watch_t *self, int64_t since_ms)
{
    pthread_mutex_lock(&self->mu);
    json_t *now = self->have ? pipeline_snap_json(self->cur) : json_null();
    json_t *hist = pipeline_hist_json(self->hist, since_ms);
    pthread_mutex_unlock(&self->mu);
    return json_pack("{s:i,s:I,s:o,s:o}", "sample_s", (int) self->sample_s, "samples", (json_int_t) self->samples,
                     "now", now, "history", hist);
}
