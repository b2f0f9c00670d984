/* test_metrics - the group's /metrics page: one HELP and one TYPE per
 * family whatever the number of instances, label values escaped as the
 * Prometheus text format says, and every family the code names described */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"

/* s_write - path's content as text */
static void s_write(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* s_count - occurrences of needle in hay */
static int s_count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

Test(metrics, one_help_and_one_type_per_family_across_instances)
{
    char dir[] = "/tmp/pg-metrics-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    /* three instances, each with samples of the same families, in any order */
    s_write(dir, "approve.0.prom",
            "# TYPE payguard_approve_decisions_total counter\n"
            "payguard_approve_decisions_total{instance=\"approve.0\",decision=\"approve\"} 2\n"
            "payguard_approve_decisions_total{instance=\"approve.0\",decision=\"deny\"} 1\n"
            "payguard_events_in_total{instance=\"approve.0\"} 7\n");
    s_write(dir, "audit.0.prom",
            "payguard_events_in_total{instance=\"audit.0\"} 9\n"
            "payguard_cases{instance=\"audit.0\",state=\"executed\"} 3\n");
    s_write(dir, "triage.0.prom", "payguard_events_in_total{instance=\"triage.0\"} 4\npayguard_new_thing 1\n");
    s_write(dir, "notes.txt", "payguard_events_in_total{instance=\"x\"} 1\n");
    char *page = metrics_collect(dir);
    cr_assert_not_null(page);
    cr_expect_eq(s_count(page, "# TYPE payguard_approve_decisions_total counter\n"), 1, "%s", page);
    cr_expect_eq(s_count(page, "# HELP payguard_approve_decisions_total "), 1);
    cr_expect_eq(s_count(page, "# TYPE payguard_events_in_total counter\n"), 1);
    cr_expect_eq(s_count(page, "# HELP payguard_events_in_total "), 1);
    cr_expect_eq(s_count(page, "# TYPE payguard_cases gauge\n"), 1);
    cr_expect_eq(s_count(page, "# TYPE payguard_new_thing gauge\n"), 1, "an unknown family is still served");
    cr_expect_eq(s_count(page, "# HELP payguard_new_thing A payguard metric (undocumented).\n"), 1);
    cr_expect_eq(s_count(page, "payguard_events_in_total{"), 3, "three instances, only .prom files");
    cr_expect_eq(s_count(page, "# TYPE "), 4);
    cr_expect_eq(s_count(page, "# HELP "), 4);
    /* every HELP is followed by its TYPE, then the family's samples only */
    const char *p = strstr(page, "# HELP payguard_events_in_total ");
    cr_assert_not_null(p);
    p = strchr(p, '\n') + 1;
    cr_expect_eq(strncmp(p, "# TYPE payguard_events_in_total counter\n", 40), 0);
    p = strchr(p, '\n') + 1;
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(strncmp(p, "payguard_events_in_total{", 25), 0, "sample %d: %.40s", i, p);
        p = strchr(p, '\n') + 1;
    }
    free(page);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(metrics, label_values_escaped_as_the_text_format_says)
{
    char out[METRICS_LABEL_MAX * 2];
    metrics_escape_label("a\"b\\c\nd", out, sizeof out);
    cr_expect_str_eq(out, "a\\\"b\\\\c\\nd");
    metrics_escape_label("tab\there\x01", out, sizeof out);
    cr_expect_str_eq(out, "tab_here_", "other control bytes become _");
    metrics_escape_label("caf\xc3\xa9 \xff\xfe ok", out, sizeof out);
    cr_expect_str_eq(out, "caf\xc3\xa9 __ ok", "UTF-8 kept, bytes that are not UTF-8 become _");
    metrics_escape_label("\xed\xa0\x80", out, sizeof out);
    cr_expect_str_eq(out, "___", "a surrogate is not UTF-8");
    metrics_escape_label(NULL, out, sizeof out);
    cr_expect_str_eq(out, "");
    /* cut to fit, never inside a character or an escape */
    char small[6];
    metrics_escape_label("ab\xc3\xa9\xc3\xa9", small, sizeof small);
    cr_expect_str_eq(small, "ab\xc3\xa9");
    metrics_escape_label("abcd\"", small, sizeof small);
    cr_expect_str_eq(small, "abcd");
}

Test(metrics, types_from_the_catalogue_or_the_name)
{
    cr_expect_str_eq(metrics_type("payguard_approvals_pending"), "gauge");
    cr_expect_str_eq(metrics_type("payguard_journal_fsync_seconds_total"), "counter");
    cr_expect_str_eq(metrics_type("something_total"), "counter");
    cr_expect_str_eq(metrics_type("something"), "gauge");
    cr_expect_not_null(metrics_help("payguard_ingest_receipts_total"));
    cr_expect_null(metrics_help("payguard_ingest_receipts"));
}

/* s_check_file - every family a metrics call in path names has a help text */
static int s_check_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[1024];
    int missing = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, "stage_count(") && !strstr(line, "stage_gauge") && !strstr(line, "{instance=") &&
            !strstr(line, "overflow"))
            continue;
        for (const char *p = line; (p = strstr(p, "payguard_")) != NULL;) {
            size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int) n, p);
            if (p[n] == '"' || p[n] == '{' || p[n] == ' ') {
                if (!metrics_help(name)) {
                    fprintf(stderr, "%s: %s is not in common/metrics.c's catalogue\n", path, name);
                    missing++;
                }
            }
            p += n;
        }
    }
    fclose(f);
    return missing;
}

Test(metrics, every_family_the_code_names_is_in_the_catalogue)
{
    static const char *const dirs[] = {"common",  "ingest",  "validate", "triage",
                                       "approve", "execute", "audit",    "console"};
    int missing = 0, files = 0;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        DIR *d = opendir(dirs[i]);
        cr_assert_not_null(d, "run the unit tests from the repository root (%s)", dirs[i]);
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            size_t l = strlen(de->d_name);
            if (l < 3 || strcmp(de->d_name + l - 2, ".c") != 0)
                continue;
            char path[512];
            snprintf(path, sizeof path, "%s/%s", dirs[i], de->d_name);
            missing += s_check_file(path);
            files++;
        }
        closedir(d);
    }
    cr_expect_gt(files, 20);
    cr_expect_eq(missing, 0, "%d families without a description (see stderr)", missing);
}
