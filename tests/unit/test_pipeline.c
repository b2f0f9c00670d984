/* test_pipeline - the Pipeline page's numbers: master.state, status and
 * .prom files read into a sample, rates and latency percentiles between two
 * samples, and the bounded history ring */
#include "../../console/pipeline.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char s_master[] = "pg-sandbox.0 0 0 0\n"
                               "triage.0 4242 1700000000 3\n"
                               "triage.1 0 0 7\n"
                               "ingest.0 4300 1700000100 0\n"
                               "garbage line\n"
                               "console.0 4400 1700000200 1\n";

static pipeline_snap_t *s_snap(int64_t t_ms)
{
    pipeline_snap_t *s = malloc(sizeof *s);
    cr_assert(s);
    pipeline_snap_master(s, s_master, t_ms);
    return s;
}

Test(pipeline, master_state_names_every_instance_its_pid_start_and_restarts)
{
    pipeline_snap_t *s = s_snap(1700000300000);
    cr_assert_eq(s->ninst, 5, "the malformed line is skipped");
    cr_expect_str_eq(s->inst[1].inst, "triage.0");
    cr_expect_str_eq(s->inst[1].stage, "triage");
    cr_expect_eq(s->inst[1].pid, 4242);
    cr_expect_eq(s->inst[1].started_unix, 1700000000);
    cr_expect_eq(s->inst[1].restarts, 3);
    cr_expect_str_eq(s->inst[2].state, "down");
    cr_expect_str_eq(s->inst[4].stage, "console");
    free(s);
}

Test(pipeline, state_comes_from_the_master_and_the_status_file)
{
    pipeline_snap_t *s = s_snap(0);
    pipeline_state(s, 1, "pid=4242\nin=1\nready=yes\n", 1.0);
    cr_expect_str_eq(s->inst[1].state, "up");
    pipeline_state(s, 1, "pid=4242\nin=1\nready=no: audit has acknowledged nothing for 9 s (3 events waiting)\n", 1.0);
    cr_expect_str_eq(s->inst[1].state, "not ready");
    cr_expect_str_eq(s->inst[1].why, "audit has acknowledged nothing for 9 s (3 events waiting)");
    pipeline_state(s, 1, "pid=4242\nready=yes\n", PIPELINE_STALE_S + 1.0);
    cr_expect_str_eq(s->inst[1].state, "not answering", "a stopped process writes no status");
    pipeline_state(s, 1, "pid=999\nready=yes\n", 0.5);
    cr_expect_str_eq(s->inst[1].state, "starting", "the file is the process before it's");
    pipeline_state(s, 2, "pid=4242\nready=yes\n", 0.5);
    cr_expect_str_eq(s->inst[2].state, "down", "pid 0: not running, whatever its old file says");
    cr_expect(strstr(s->inst[2].why, "restarts") != NULL);
    pipeline_state(s, 4, NULL, 0);
    cr_expect_str_eq(s->inst[4].state, "up", "the console writes no status file: running is up");
    free(s);
}

Test(pipeline, a_prom_line_splits_into_name_labels_and_value)
{
    char name[64], labels[128];
    double v;
    cr_assert(pipeline_prom_line("payguard_events_in_total{instance=\"triage.0\"} 17\n", name, sizeof name, labels,
                                 sizeof labels, &v));
    cr_expect_str_eq(name, "payguard_events_in_total");
    cr_expect_str_eq(labels, "instance=\"triage.0\"");
    cr_expect_eq(v, 17);
    cr_assert(pipeline_prom_line("up 1", name, sizeof name, labels, sizeof labels, &v));
    cr_expect_str_eq(labels, "");
    cr_assert(pipeline_prom_line("x{a=\"q}\\\"r\"} 2.5", name, sizeof name, labels, sizeof labels, &v),
              "a brace and a quote inside a value");
    cr_expect_eq(v, 2.5);
    char out[16];
    cr_assert(pipeline_label(labels, "a", out, sizeof out));
    cr_expect_str_eq(out, "q}\"r");
    cr_expect_not(pipeline_prom_line("# TYPE x counter", name, sizeof name, labels, sizeof labels, &v));
    cr_expect_not(pipeline_prom_line("x{a=\"1\" 2", name, sizeof name, labels, sizeof labels, &v));
    cr_expect_not(pipeline_prom_line("x{a=\"1\"} notanumber", name, sizeof name, labels, sizeof labels, &v));
    cr_expect_not(pipeline_prom_line("", name, sizeof name, labels, sizeof labels, &v));
}

Test(pipeline, labels_are_found_by_key)
{
    char out[32];
    const char *l = "instance=\"validate.0\",system=\"payments\",class=\"5xx\",le=\"+Inf\"";
    cr_assert(pipeline_label(l, "system", out, sizeof out));
    cr_expect_str_eq(out, "payments");
    cr_assert(pipeline_label(l, "le", out, sizeof out));
    cr_expect_str_eq(out, "+Inf");
    cr_expect_not(pipeline_label(l, "dest", out, sizeof out));
    cr_expect_not(pipeline_label("", "dest", out, sizeof out));
}

/* s_prom - an instance's .prom text: in events in and out, its oldest
 * unacknowledged event, ledger calls (cum: the cumulative counts of
 * stage_status.c's buckets, 1 ms .. 60 s and +Inf; count of them, errors
 * of them 5xx) */
static char *s_prom(double in, double oldest, const double cum[17], double count, double errors)
{
    static const char *const le[17] = {"0.001", "0.002", "0.005", "0.01", "0.025", "0.05", "0.1",  "0.25", "0.5",
                                       "1",     "2.5",   "5",     "10",   "30",    "60",   "+Inf", NULL};
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fprintf(f, "# TYPE payguard_events_in_total counter\npayguard_events_in_total{instance=\"triage.0\"} %g\n", in);
    fprintf(f, "payguard_events_out_total{instance=\"triage.0\"} %g\n", in);
    fprintf(f, "payguard_unacked{instance=\"triage.0\",dest=\"next\"} 4\n");
    fprintf(f, "payguard_unacked{instance=\"triage.0\",dest=\"audit\"} 2\n");
    fprintf(f, "payguard_unacked_oldest_seconds{instance=\"triage.0\",dest=\"next\"} %g\n", oldest);
    fprintf(f, "payguard_journal_bytes{instance=\"triage.0\"} 1048576\n");
    fprintf(f, "payguard_journal_retention_seconds{instance=\"triage.0\"} 86400\n");
    fprintf(f, "payguard_outside_breaker{instance=\"triage.0\",system=\"ledger\"} 1\n");
    fprintf(f, "payguard_outside_inflight{instance=\"triage.0\",system=\"ledger\"} 3\n");
    fprintf(f, "payguard_approvals_pending{instance=\"triage.0\"} 5\n");
    for (int b = 0; le[b]; b++)
        fprintf(
            f,
            "payguard_outside_call_seconds_bucket{instance=\"triage.0\",system=\"ledger\",class=\"2xx\",le=\"%s\"} %g\n",
            le[b], cum[b]);
    fprintf(f, "payguard_outside_call_seconds_count{instance=\"triage.0\",system=\"ledger\",class=\"2xx\"} %g\n",
            count - errors);
    fprintf(f, "payguard_outside_call_seconds_count{instance=\"triage.0\",system=\"ledger\",class=\"5xx\"} %g\n",
            errors);
    fclose(f);
    return text;
}

Test(pipeline, two_samples_give_rates_latency_percentiles_and_error_rate)
{
    /* first: 10 calls, all under 10 ms; then 100 more: 50 at 5-10 ms, 50 at 1-2.5 s */
    double c1[17] = {0, 0, 0, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10};
    double c2[17] = {0, 0, 0, 60, 60, 60, 60, 60, 60, 60, 110, 110, 110, 110, 110, 110};
    pipeline_snap_t *a = s_snap(1000000), *b = s_snap(1010000);
    char *t1 = s_prom(100, 0, c1, 10, 0), *t2 = s_prom(300, 2.5, c2, 110, 11);
    pipeline_snap_prom(a, 1, t1);
    pipeline_snap_prom(b, 1, t2);
    pipeline_state(a, 1, "pid=4242\nready=yes\n", 0);
    pipeline_state(b, 1, "pid=4242\nready=yes\n", 0);
    pipeline_snap_rates(a, NULL);
    cr_expect(isnan(a->inst[1].in_per_s), "no rate before a second sample");
    pipeline_snap_rates(b, a);
    cr_expect_float_eq(b->inst[1].in_per_s, 20.0, 1e-9, "200 events in 10 s");
    cr_expect_eq(b->inst[1].unacked_next, 4);
    cr_expect_eq(b->inst[1].unacked_audit, 2);
    cr_expect_eq(b->inst[1].journal_bytes, 1048576);
    cr_expect_eq(b->inst[1].retention_s, 86400);
    cr_expect_eq(b->oldest_unacked_s, 2.5);
    cr_expect_eq(b->approvals_pending, 5);
    cr_assert_eq(b->nsys, 1);
    pipeline_system_t *s = &b->sys[0];
    cr_expect_str_eq(s->name, "ledger");
    cr_expect_eq(s->breaker, 1);
    cr_expect_eq(s->inflight, 3);
    cr_expect_float_eq(s->calls_per_s, 10.0, 1e-9);
    cr_expect_float_eq(s->error_rate, 0.11, 1e-9);
    cr_expect(s->p50_s > 0.005 && s->p50_s <= 0.01, "p50 in the 5-10 ms bucket: %g", s->p50_s);
    cr_expect(s->p99_s > 1.0 && s->p99_s <= 2.5, "p99 in the 1-2.5 s bucket: %g", s->p99_s);
    json_t *j = pipeline_snap_json(b);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "systems"), 0), "breaker")),
                     "open");
    cr_expect(json_is_real(json_object_get(json_object_get(j, "end_to_end"), "awaiting_people")));
    cr_expect(json_is_null(json_object_get(json_object_get(j, "end_to_end"), "ops_review")), "no execute: unknown");
    json_decref(j);
    free(t1);
    free(t2);
    free(a);
    free(b);
}

Test(pipeline, a_restarted_process_counts_from_zero)
{
    pipeline_snap_t *a = s_snap(0), *b = s_snap(5000);
    pipeline_snap_prom(a, 1, "payguard_events_in_total{instance=\"triage.0\"} 1000\n");
    pipeline_snap_prom(b, 1, "payguard_events_in_total{instance=\"triage.0\"} 50\n");
    b->inst[1].pid = 5151;
    pipeline_state(a, 1, "pid=4242\nready=yes\n", 0);
    pipeline_state(b, 1, "pid=5151\nready=yes\n", 0);
    pipeline_snap_rates(b, a);
    cr_expect_float_eq(b->inst[1].in_per_s, 10.0, 1e-9, "50 since its start, not -950");
    b->inst[1].pid = 0; /* down: its old files say nothing of now */
    pipeline_state(b, 1, "pid=5151\nready=yes\n", 0);
    pipeline_snap_rates(b, a);
    cr_expect(isnan(b->inst[1].in_per_s));
    json_t *j = pipeline_snap_json(b), *row = json_array_get(json_object_get(j, "instances"), 1);
    cr_expect_str_eq(json_string_value(json_object_get(row, "state")), "down");
    cr_expect_null(json_object_get(row, "in_total"), "no numbers for a process that is not there");
    cr_expect(json_is_null(json_object_get(row, "uptime_s")));
    json_decref(j);
    free(a);
    free(b);
}

Test(pipeline, quantiles_of_a_histogram)
{
    double le[4] = {0.1, 0.5, 1, INFINITY};
    double none[4] = {0, 0, 0, 0}, slow[4] = {0, 0, 0, 10}, even[4] = {50, 100, 100, 100};
    cr_expect(isnan(pipeline_quantile(le, none, 4, 0.5)), "no calls: no latency");
    cr_expect_float_eq(pipeline_quantile(le, slow, 4, 0.99), 1.0, 1e-9, "+Inf answers the last finite bound");
    cr_expect_float_eq(pipeline_quantile(le, even, 4, 0.5), 0.1, 1e-9);
    cr_expect_float_eq(pipeline_quantile(le, even, 4, 0.75), 0.3, 1e-9, "interpolated within 0.1-0.5");
}

Test(pipeline, the_history_is_a_bounded_ring)
{
    pipeline_hist_t *h = pipeline_hist_new(3, 2);
    cr_assert(h);
    cr_expect_eq(pipeline_hist_set(h, "a", 1), -1, "no sample begun");
    for (int k = 1; k <= 5; k++) {
        pipeline_hist_begin(h, k * 1000);
        cr_expect_eq(pipeline_hist_set(h, "a", k), 0);
        if (k >= 4)
            cr_expect_eq(pipeline_hist_set(h, "b", k * 10), 0);
    }
    cr_expect_eq(pipeline_hist_set(h, "c", 1), -1, "two series at most");
    cr_expect_eq(pipeline_hist_count(h), 3, "three samples at most");
    json_t *j = pipeline_hist_json(h, 0);
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    cr_expect_str_eq(text, "{\"series\":{\"a\":[3.0,4.0,5.0],\"b\":[null,40.0,50.0]},\"t\":[3000,4000,5000]}");
    free(text);
    json_decref(j);
    j = pipeline_hist_json(h, 4000);
    text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    cr_expect_str_eq(text, "{\"series\":{\"a\":[5.0],\"b\":[50.0]},\"t\":[5000]}", "only what is new after 4000");
    free(text);
    json_decref(j);
    j = pipeline_hist_json(h, 5000);
    cr_expect_eq(json_array_size(json_object_get(j, "t")), 0, "nothing new");
    json_decref(j);
    pipeline_hist_destroy(&h);
    cr_expect_null(h);
}

Test(pipeline, a_sample_is_charted_per_stage_and_system)
{
    pipeline_snap_t *s = s_snap(7000);
    pipeline_state(s, 1, "pid=4242\nready=yes\n", 0);
    pipeline_state(s, 2, NULL, 0);
    pipeline_snap_prom(s, 1,
                       "payguard_unacked{instance=\"triage.0\",dest=\"next\"} 4\n"
                       "payguard_outside_inflight{instance=\"triage.0\",system=\"llm\"} 1\n");
    pipeline_snap_rates(s, NULL);
    pipeline_hist_t *h = pipeline_hist_new(10, PIPELINE_MAX_SERIES);
    pipeline_hist_record(h, s);
    json_t *j = pipeline_hist_json(h, 0), *series = json_object_get(j, "series");
    cr_expect_eq(json_real_value(json_array_get(json_object_get(series, "up.triage"), 0)), 1,
                 "triage.1 is down: one of two up");
    cr_expect_eq(json_real_value(json_array_get(json_object_get(series, "unacked.triage"), 0)), 4);
    cr_expect(json_is_null(json_array_get(json_object_get(series, "p99_ms.llm"), 0)), "no call yet");
    cr_expect(json_is_null(json_array_get(json_object_get(series, "e2e.webhooks_per_s"), 0)));
    json_decref(j);
    pipeline_hist_destroy(&h);
    free(s);
}

Test(pipeline, without_a_master_the_instances_come_from_their_status_files)
{
    pipeline_snap_t *s = malloc(sizeof *s);
    pipeline_snap_master(s, "", 1000);
    cr_expect_eq(s->ninst, 0);
    cr_assert(pipeline_snap_unit(s, "validate.0", 77, true));
    cr_assert(pipeline_snap_unit(s, "audit.0", 78, false));
    cr_expect_not(pipeline_snap_unit(s, "nodot", 79, true), "not an instance's name");
    cr_expect(s->no_master);
    pipeline_state(s, 0, "pid=77\nready=yes\n", 0.5);
    pipeline_state(s, 1, "pid=78\nready=yes\n", 9);
    cr_expect_str_eq(s->inst[0].state, "up");
    cr_expect_str_eq(s->inst[0].stage, "validate");
    cr_expect_str_eq(s->inst[1].state, "down");
    cr_expect(strstr(s->inst[1].why, "systemd") != NULL);
    json_t *j = pipeline_snap_json(s);
    cr_expect_str_eq(json_string_value(json_object_get(j, "supervisor")), "systemd");
    cr_expect(json_is_null(json_object_get(json_array_get(json_object_get(j, "instances"), 0), "restarts")),
              "restarts are systemd's to tell");
    json_decref(j);
    free(s);
}
