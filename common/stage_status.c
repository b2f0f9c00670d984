/* stage_status - counters and gauges, the status file `payguard status` reads, the /metrics text (see stage_priv.h) */
#include "stage_priv.h"

/* stage_gauge - see stage.h: a series whose value is set, not added */
void stage_gauge(stage_t *st, const char *name, int64_t value)
{
    stage_gauge_label(st, name, NULL, NULL, value);
}

/* stage_gauge_label - see stage.h */
void stage_gauge_label(stage_t *st, const char *name, const char *label, const char *lvalue, int64_t value)
{
    label = label ? label : "";
    char kept[METRICS_LABEL_MAX]; /* the value as stage_count keeps it */
    snprintf(kept, sizeof kept, "%s", lvalue ? lvalue : "");
    stage_count(st, name, label, kept, 0); /* make sure the series exists */
    size_t count = atomic_load(&st->ncounters);
    for (size_t i = 0; i < count; i++)
        if (strcmp(st->counters[i].name, name) == 0 && strcmp(st->counters[i].label, label) == 0 &&
            strcmp(st->counters[i].value, kept) == 0) {
            atomic_store(&st->counters[i].n, (uint64_t) (value < 0 ? 0 : value));
            return;
        }
}

/* stage_count - see stage.h */
void stage_count(stage_t *st, const char *name, const char *label, const char *lvalue, uint64_t n)
{
    label = label ? label : "";
    char value[METRICS_LABEL_MAX]; /* the series' key: the value as it will be kept */
    snprintf(value, sizeof value, "%s", lvalue ? lvalue : "");
    size_t count = atomic_load(&st->ncounters);
    for (size_t i = 0; i < count; i++) {
        counter_t *c = &st->counters[i];
        if (strcmp(c->name, name) == 0 && strcmp(c->label, label) == 0 && strcmp(c->value, value) == 0) {
            atomic_fetch_add(&c->n, n);
            return;
        }
    }
    pthread_mutex_lock(&st->counters_mu);
    count = atomic_load(&st->ncounters);
    size_t i = 0;
    for (; i < count; i++) {
        counter_t *c = &st->counters[i];
        if (strcmp(c->name, name) == 0 && strcmp(c->label, label) == 0 && strcmp(c->value, value) == 0)
            break;
    }
    if (i == count && count < STAGE_MAX_COUNTERS - 1) {
        counter_t *c = &st->counters[count];
        snprintf(c->name, sizeof c->name, "%s", name);
        snprintf(c->label, sizeof c->label, "%s", label);
        memcpy(c->value, value, sizeof c->value);
        atomic_store(&st->ncounters, count + 1);
    } else if (i == count) {
        i = STAGE_MAX_COUNTERS - 1; /* the overflow series */
        counter_t *c = &st->counters[i];
        if (!c->name[0]) {
            snprintf(c->name, sizeof c->name, "payguard_counter_overflow_total");
        }
    }
    atomic_fetch_add(&st->counters[i].n, n);
    pthread_mutex_unlock(&st->counters_mu);
}

/* the histogram buckets' upper bounds (ms), exported in seconds */
const int64_t sk_hist_bounds_ms[STAGE_HIST_BUCKETS] = {1,   2,    5,    10,   25,    50,    100,   250,
                                                       500, 1000, 2500, 5000, 10000, 30000, 60000, INT64_MAX};

/* stage_observe_ms - see stage.h */
void stage_observe_ms(stage_t *st, const char *name, const char *labels, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    labels = labels ? labels : "";
    pthread_mutex_lock(&st->counters_mu);
    hist_t *h = NULL;
    for (size_t i = 0; i < st->nhists && !h; i++)
        if (strcmp(st->hists[i].name, name) == 0 && strcmp(st->hists[i].labels, labels) == 0)
            h = &st->hists[i];
    if (!h && st->nhists < STAGE_MAX_HISTOGRAMS) {
        h = &st->hists[st->nhists++];
        snprintf(h->name, sizeof h->name, "%s", name);
        snprintf(h->labels, sizeof h->labels, "%s", labels);
    } else if (!h) {
        static bool told;
        if (!told)
            log_warn("more than %d histogram series: %s{%s} and later ones are not kept", STAGE_MAX_HISTOGRAMS, name,
                     labels);
        told = true;
    }
    if (h) {
        size_t b = 0;
        while (ms > sk_hist_bounds_ms[b])
            b++;
        h->b[b]++;
        h->count++;
        h->sum_ms += (uint64_t) ms;
    }
    pthread_mutex_unlock(&st->counters_mu);
}

/* s_hist_text - every histogram series in the exposition format */
static void s_hist_text(stage_t *st, FILE *f)
{
    pthread_mutex_lock(&st->counters_mu);
    for (size_t i = 0; i < st->nhists; i++) {
        const hist_t *h = &st->hists[i];
        const char *sep = h->labels[0] ? "," : "";
        uint64_t cum = 0;
        for (size_t b = 0; b < STAGE_HIST_BUCKETS; b++) {
            cum += h->b[b];
            char le[32];
            if (sk_hist_bounds_ms[b] == INT64_MAX)
                snprintf(le, sizeof le, "+Inf");
            else
                snprintf(le, sizeof le, "%g", (double) sk_hist_bounds_ms[b] / 1000.0);
            fprintf(f, "%s_bucket{instance=\"%s\"%s%s,le=\"%s\"} %llu\n", h->name, st->inst, sep, h->labels, le,
                    (unsigned long long) cum);
        }
        fprintf(f, "%s_sum{instance=\"%s\"%s%s} %.3f\n", h->name, st->inst, sep, h->labels,
                (double) h->sum_ms / 1000.0);
        fprintf(f, "%s_count{instance=\"%s\"%s%s} %llu\n", h->name, st->inst, sep, h->labels,
                (unsigned long long) h->count);
    }
    pthread_mutex_unlock(&st->counters_mu);
}

/* stage_ready - see stage.h */
bool stage_ready(stage_t *st, char *why, size_t whylen)
{
    assert(st && why && whylen > 0);
    why[0] = '\0';
    if (atomic_load(&st->disk_low)) {
        snprintf(why, whylen,
                 "its journal's disk is nearly full (%lld MiB free, under payguard/journal/min_free_mb %ld)",
                 atomic_load(&st->disk_free_mb), st->min_free_mb);
        return false;
    }
    int64_t now = sk_mono_ms(),
            silence = st->resend_ms * 3 > STAGE_READY_SILENCE_MS ? st->resend_ms * 3 : STAGE_READY_SILENCE_MS;
    for (int d = 0; d < NDEST; d++) {
        window_t *w = &st->win[d];
        const char *to = d == DEST_AUDIT ? "audit" : st->next ? st->next : "its consumer";
        size_t n = atomic_load(&w->count_shared), bytes = atomic_load(&w->bytes_shared);
        int64_t quiet = now - atomic_load(&w->heard_ms);
        if (n >= (size_t) st->max_inflight || bytes >= (size_t) st->max_inflight_bytes)
            snprintf(why, whylen, "its delivery window to %s is full (%zu events, %zu bytes unacknowledged)", to, n,
                     bytes);
        else if (n > 0 && quiet > silence)
            snprintf(why, whylen, "%s has acknowledged nothing for %lld s (%zu events waiting)", to,
                     (long long) (quiet / 1000), n);
        if (why[0])
            return false;
    }
    return true;
}

/* stage_status_ready - see stage.h */
stage_readiness_t stage_status_ready(const char *text, int pid, char *why, size_t whylen)
{
    assert(text && why && whylen > 0);
    char want[32];
    snprintf(want, sizeof want, "pid=%d\n", pid);
    const char *r = strstr(text, "\nready=");
    why[0] = '\0';
    if (strncmp(text, want, strlen(want)) != 0 || !r)
        return STAGE_STARTING;
    if (strncmp(r + 7, "yes", 3) == 0)
        return STAGE_READY;
    const char *w = strncmp(r + 7, "no: ", 4) == 0 ? r + 11 : r + 7;
    snprintf(why, whylen, "%.*s", (int) strcspn(w, "\n"), w);
    return STAGE_NOT_READY;
}

/* sk_write_status - <run_dir>/<inst>.stat for `payguard status` (atomic rename) */
void sk_write_status(stage_t *st)
{
    char path[CONFIG_PATH_MAX + 64], tmp[CONFIG_PATH_MAX + 72];
    snprintf(path, sizeof path, "%s/%s.stat", config_run_dir(st->config), st->inst);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(
        f,
        "pid=%d\nin=%llu\nout=%llu\nduplicates=%llu\nbad=%llu\nresent=%llu\nunacked_next=%zu\nunacked_audit=%zu\njournal_seq=%llu\n",
        (int) getpid(), (unsigned long long) st->c_in, (unsigned long long) st->c_out, (unsigned long long) st->c_dup,
        (unsigned long long) st->c_bad, (unsigned long long) st->c_resent, st->win[DEST_NEXT].count,
        st->win[DEST_AUDIT].count, (unsigned long long) journal_last_seq(st->journal));
    int64_t now = sk_mono_ms();
    for (int d = 0; d < NDEST; d++) /* the loop's own windows: their oldest event's age, for /metrics */
        atomic_store(&st->oldest_unacked_ms[d], st->win[d].count ? now - sk_win_at(&st->win[d], 0)->pushed_ms : 0);
    dedup_stats_t ds; /* the loop's own: copied for /metrics, which other threads serve */
    dedup_stats(st->dedup, &ds);
    atomic_store(&st->dedup_seqs, ds.seqs);
    atomic_store(&st->dedup_recent, ds.recent);
    atomic_store(&st->dedup_forgotten, ds.forgotten);
    fprintf(f, "dedup_producers=%zu\ndedup_seqs=%zu\ndedup_recent_ids=%zu\n", ds.links, ds.seqs, ds.recent);
    long long free_mb = atomic_load(&st->disk_free_mb);
    if (free_mb >= 0)
        fprintf(f, "disk_free_mb=%lld\n", free_mb);
    if (atomic_load(&st->disk_low))
        fprintf(f, "waiting=disk nearly full: %lld MiB free, under payguard/journal/min_free_mb %ld\n", free_mb,
                st->min_free_mb);
    char why[256];
    if (stage_ready(st, why, sizeof why))
        fprintf(f, "ready=yes\n");
    else
        fprintf(f, "ready=no: %s\n", why);
    sk_http_status(st, f);
    sk_trace_status(st);
    if (st->def->status)
        st->def->status(st, f, st->def->arg);
    fclose(f);
    rename(tmp, path);
    /* the metrics too, for the group's /metrics (metrics_collect) */
    snprintf(path, sizeof path, "%s/%s.prom", config_run_dir(st->config), st->inst);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    char *text = stage_metrics_text(st);
    f = fopen(tmp, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
        rename(tmp, path);
    }
    free(text);
}

/* s_window_text - each delivery window's unacknowledged events and the
 * age of its oldest, in the exposition format */
static void s_window_text(stage_t *st, FILE *f)
{
    const char *i = st->inst;
    fprintf(f,
            "# TYPE payguard_unacked gauge\npayguard_unacked{instance=\"%s\",dest=\"next\"} %zu\n"
            "payguard_unacked{instance=\"%s\",dest=\"audit\"} %zu\n",
            i, atomic_load(&st->win[DEST_NEXT].count_shared), i, atomic_load(&st->win[DEST_AUDIT].count_shared));
    fprintf(
        f,
        "# TYPE payguard_unacked_oldest_seconds gauge\npayguard_unacked_oldest_seconds{instance=\"%s\",dest=\"next\"} "
        "%.3f\npayguard_unacked_oldest_seconds{instance=\"%s\",dest=\"audit\"} %.3f\n",
        i, (double) atomic_load(&st->oldest_unacked_ms[DEST_NEXT]) / 1000.0, i,
        (double) atomic_load(&st->oldest_unacked_ms[DEST_AUDIT]) / 1000.0);
}

/* stage_metrics_text - see stage.h */
char *stage_metrics_text(stage_t *st)
{
    journal_stats_t js;
    journal_stats(st->journal, &js);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert(f);
    const char *i = st->inst;
    fprintf(f, "# TYPE payguard_events_in_total counter\npayguard_events_in_total{instance=\"%s\"} %llu\n", i,
            (unsigned long long) st->c_in);
    fprintf(f, "# TYPE payguard_events_out_total counter\npayguard_events_out_total{instance=\"%s\"} %llu\n", i,
            (unsigned long long) st->c_out);
    fprintf(f,
            "# TYPE payguard_input_duplicates_total counter\npayguard_input_duplicates_total{instance=\"%s\"} %llu\n",
            i, (unsigned long long) st->c_dup);
    fprintf(f, "# TYPE payguard_bad_messages_total counter\npayguard_bad_messages_total{instance=\"%s\"} %llu\n", i,
            (unsigned long long) st->c_bad);
    fprintf(f, "# TYPE payguard_resent_total counter\npayguard_resent_total{instance=\"%s\"} %llu\n", i,
            (unsigned long long) st->c_resent);
    fprintf(f, "# TYPE payguard_backpressure_total counter\npayguard_backpressure_total{instance=\"%s\"} %llu\n", i,
            (unsigned long long) st->c_busy);
    s_window_text(st, f);
    fprintf(f, "# TYPE payguard_journal_appends_total counter\npayguard_journal_appends_total{instance=\"%s\"} %llu\n",
            i, (unsigned long long) js.appends);
    fprintf(f, "# TYPE payguard_journal_fsyncs_total counter\npayguard_journal_fsyncs_total{instance=\"%s\"} %llu\n", i,
            (unsigned long long) js.syncs);
    fprintf(
        f,
        "# TYPE payguard_journal_fsync_seconds_total counter\npayguard_journal_fsync_seconds_total{instance=\"%s\"} %.6f\n",
        i, (double) js.sync_ns_total / 1e9);
    fprintf(
        f,
        "# TYPE payguard_journal_fsync_seconds_max gauge\npayguard_journal_fsync_seconds_max{instance=\"%s\"} %.6f\n",
        i, (double) js.sync_ns_max / 1e9);
    long long free_mb = atomic_load(&st->disk_free_mb);
    if (free_mb >= 0)
        fprintf(f, "# TYPE payguard_disk_free_bytes gauge\npayguard_disk_free_bytes{instance=\"%s\"} %lld\n", i,
                free_mb * 1024 * 1024);
    fprintf(f, "# TYPE payguard_disk_low gauge\npayguard_disk_low{instance=\"%s\"} %d\n", i,
            atomic_load(&st->disk_low) ? 1 : 0);
    fprintf(f, "# TYPE payguard_dedup_seqs gauge\npayguard_dedup_seqs{instance=\"%s\"} %zu\n", i,
            atomic_load(&st->dedup_seqs));
    fprintf(f, "# TYPE payguard_dedup_recent_ids gauge\npayguard_dedup_recent_ids{instance=\"%s\"} %zu\n", i,
            atomic_load(&st->dedup_recent));
    fprintf(f, "# TYPE payguard_dedup_forgotten_total counter\npayguard_dedup_forgotten_total{instance=\"%s\"} %llu\n",
            i, (unsigned long long) atomic_load(&st->dedup_forgotten));
    size_t nc = atomic_load(&st->ncounters);
    for (size_t k = 0; k < STAGE_MAX_COUNTERS; k++) {
        counter_t *c = &st->counters[k];
        if (k >= nc && k != STAGE_MAX_COUNTERS - 1)
            continue;
        if (!c->name[0])
            continue;
        char esc[4 * METRICS_LABEL_MAX]; /* label values come from data: escaped */
        metrics_escape_label(c->value, esc, sizeof esc);
        if (c->label[0])
            fprintf(f, "%s{instance=\"%s\",%s=\"%s\"} %llu\n", c->name, i, c->label, esc,
                    (unsigned long long) atomic_load(&c->n));
        else
            fprintf(f, "%s{instance=\"%s\"} %llu\n", c->name, i, (unsigned long long) atomic_load(&c->n));
    }
    s_hist_text(st, f);
    fclose(f);
    return out;
}
