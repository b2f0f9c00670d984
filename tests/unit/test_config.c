/* test_config - the group configuration: defaults, overrides, strictness */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* s_write - a config file in a fresh temp dir; the path is static */
static const char *s_write(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/pg-cfg-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
    close(fd);
    return path;
}

Test(config, embedded_defaults_match_the_shipped_example)
{
    FILE *f = fopen("config/payguard.cfg", "r");
    cr_assert_not_null(f, "run from the source tree: config/payguard.cfg");
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    cr_assert_str_eq(text, config_defaults_text(), "config/payguard.cfg must equal `payguard config`");
}

Test(config, defaults_need_no_file)
{
    char err[256];
    config_t *c = config_load(NULL, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(config_get(c, "ingest/http_port"), "8080");
    cr_assert_eq(config_instances(c, "triage"), 2);
    cr_assert_eq(config_run_dir(c)[0], '/', "run_dir is made absolute");
    char *ep = config_input_endpoint(c, "triage", 1);
    cr_assert(strstr(ep, "/triage.1.in") && strncmp(ep, "ipc:///", 7) == 0, "%s", ep);
    free(ep);
    char *ack = config_ack_endpoint(c, "validate", 0);
    cr_assert(strstr(ack, "/ack-validate.0"), "%s", ack);
    free(ack);
    config_destroy(&c);
    cr_assert_null(c);
}

Test(config, file_overrides_key_by_key)
{
    const char *p = s_write("payguard\n    run_dir = /tmp/pgx/run\ningest\n    http_port = 9999\n");
    char err[256];
    config_t *c = config_load(p, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(config_get(c, "ingest/http_port"), "9999");
    cr_assert_str_eq(config_get(c, "ingest/http_bind"), "127.0.0.1", "untouched keys keep defaults");
    cr_assert_str_eq(config_run_dir(c), "/tmp/pgx/run");
    config_destroy(&c);
    unlink(p);
}

Test(config, unknown_key_is_an_error_not_a_silent_default)
{
    const char *p = s_write("ingest\n    http_prot = 9999\n");
    char err[256] = "";
    cr_assert_null(config_load(p, err, sizeof err));
    cr_assert(strstr(err, "unknown setting 'ingest/http_prot'"), "%s", err);
    unlink(p);
}

Test(config, the_retired_max_seen_says_what_replaced_it)
{
    const char *p = s_write("payguard\n    delivery\n        max_seen = 1000\n");
    char err[512] = "";
    cr_assert_null(config_load(p, err, sizeof err));
    cr_expect(strstr(err, "'payguard/delivery/max_seen' is gone") && strstr(err, "recent_ids"), "%s", err);
    unlink(p);
    p = s_write("payguard\n    delivery\n        recent_ids = 100\n");
    cr_assert_null(config_load(p, err, sizeof err), "under its least (1024): refused");
    cr_expect(strstr(err, "recent_ids"), "%s", err);
    unlink(p);
}

Test(config, a_key_or_section_set_twice_is_an_error_not_a_shadow)
{
    /* a lookup finds the first of two same-named entries: the second would
     * be ignored without a word (found by tests/fuzz/fuzz_config.c) */
    static const char *const twice[] = {
        "ingest\n    http_port = 9999\n    http_port = 9998\n",
        "payguard\n    log_level = warn\ningest\n    http_port = 9999\npayguard\n    drain_ms = 1\n",
        "approvers\n    alice\n        roles = treasury\n        token_sha256 = ab\n        token_sha256 = cd\n",
        "approvers\n    alice\n        roles = treasury\n    alice\n        roles = compliance\n",
        "approve\n    thresholds\n        EUR = \"1 2 3\"\n        EUR = \"4 5 6\"\n",
    };
    static const char *const named[] = {"ingest/http_port", "'payguard'", "approvers/alice/token_sha256",
                                        "approvers/alice", "approve/thresholds/EUR"};
    for (size_t i = 0; i < sizeof twice / sizeof twice[0]; i++) {
        const char *p = s_write(twice[i]);
        char err[256] = "";
        cr_assert_null(config_load(p, err, sizeof err), "%s", twice[i]);
        cr_assert(strstr(err, "is set twice") && strstr(err, named[i]), "%s", err);
        unlink(p);
    }
}

Test(config, a_name_holding_a_slash_is_an_error_not_a_silent_default)
{
    /* ZPL reads "payguard/log_level" as one name, which no lookup finds */
    static const char *const slashed[] = {"payguard/log_level = debug\n", "approve/thresholds/EUR = \"1 2 3\"\n",
                                          "approvers\n    alice/bob\n        roles = treasury\n"};
    for (size_t i = 0; i < sizeof slashed / sizeof slashed[0]; i++) {
        const char *p = s_write(slashed[i]);
        char err[256] = "";
        cr_assert_null(config_load(p, err, sizeof err), "%s", slashed[i]);
        cr_assert(strstr(err, "may not contain '/'"), "%s", err);
        unlink(p);
    }
}

Test(config, bad_values_are_refused_with_the_key)
{
    const char *p = s_write("audit\n    instances = 2\n");
    char err[256] = "";
    cr_assert_null(config_load(p, err, sizeof err), "audit is a single instance");
    cr_assert(strstr(err, "audit/instances"), "%s", err);
    unlink(p);
    p = s_write("triage\n    instances = lots\n");
    cr_assert_null(config_load(p, err, sizeof err));
    cr_assert(strstr(err, "triage/instances"), "%s", err);
    unlink(p);
    /* the bounds on what grows with history: refused at load, naming the key */
    const char *bounds[][2] = {
        {"payguard\n    journal\n        min_free_mb = 0\n", "payguard/journal/min_free_mb"},
        {"ingest\n    retention_s = 0\n", "ingest/retention_s"},
        {"approve\n    max_cases = 10\n", "approve/max_cases"},
        {"approve\n    max_cases = 99999999999\n", "approve/max_cases"},
        {"payguard\n    delivery\n        resend_ms = 0\n", "payguard/delivery/resend_ms"},
        {"payguard\n    delivery\n        max_inflight = 0\n", "payguard/delivery/max_inflight"},
        {"payguard\n    delivery\n        sndhwm = -1\n", "payguard/delivery/sndhwm"},
        {"payguard\n    journal\n        segment_bytes = 100\n", "payguard/journal/segment_bytes"},
        {"payguard\n    drain_ms = 9999999\n", "payguard/drain_ms"}};
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
        p = s_write(bounds[i][0]);
        cr_assert_null(config_load(p, err, sizeof err), "%s", bounds[i][0]);
        cr_assert(strstr(err, bounds[i][1]) && strstr(err, "want an integer in"), "%s", err);
        unlink(p);
    }
    cr_assert_null(config_load("/nonexistent/payguard.cfg", err, sizeof err));
    cr_assert(strstr(err, "No such file"), "%s", err);
}

Test(config, the_http_limits_are_refused_at_load_when_unsafe)
{
    char err[512] = "";
    const char *bad[][2] = {
        {"ingest\n    http_max_per_address = 1025\n",
         "ingest/http_max_per_address = '1025': want an integer in [1, 1024]"},
        {"approve\n    http_max_per_address = 0\n", "approve/http_max_per_address = '0': want an integer in [1, 256]"},
        {"console\n    http_max_per_address = 257\n",
         "console/http_max_per_address = '257': want an integer in [1, 256]"},
        {"audit\n    http_deadline_s = 0\n", "audit/http_deadline_s = '0': want an integer in [1, 3600]"},
        {"console\n    http_deadline_s = 3601\n", "console/http_deadline_s = '3601': want an integer in [1, 3600]"},
        {"payguard\n    metrics_token_sha256 = abc\n", "payguard/metrics_token_sha256: 64 hex digits"},
        {"console\n    timeout_ms = 30000\n", "console/timeout_ms = 30000 is not under console/http_deadline_s = 30"},
        {"console\n    http_deadline_s = 5\n", "console/timeout_ms = 10000 is not under console/http_deadline_s = 5"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = s_write(bad[i][0]);
        cr_assert_null(config_load(p, err, sizeof err), "%s", bad[i][0]);
        cr_assert(strstr(err, bad[i][1]), "%s", err);
        unlink(p);
    }
    const char *p = s_write("payguard\n    metrics_token_sha256 = "
                            "acf8cb4f9ff3b96ba257263cb7e74b548b2f9a592bdb8873e00bb05852ecff9e\n"
                            "ingest\n    http_max_per_address = 1024\nconsole\n    timeout_ms = 4999\n"
                            "    http_deadline_s = 5\n");
    config_t *c = config_load(p, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    config_destroy(&c);
    unlink(p);
}

Test(config, pipeline_order_and_instance_names)
{
    cr_assert_str_eq(config_next_stage("ingest"), "validate");
    cr_assert_str_eq(config_next_stage("approve"), "execute");
    cr_assert_null(config_next_stage("execute"));
    cr_assert_null(config_next_stage("audit"));
    cr_assert_str_eq(config_prev_stage("triage"), "validate");
    char stage[32];
    int idx;
    cr_assert_eq(config_parse_instance("triage.1", stage, &idx), 0);
    cr_assert_str_eq(stage, "triage");
    cr_assert_eq(idx, 1);
    cr_assert_eq(config_parse_instance("nosuch.0", stage, &idx), -1);
    cr_assert_eq(config_parse_instance("triage.", stage, &idx), -1);
    cr_assert_eq(config_parse_instance("triage", stage, &idx), -1);
}

Test(config, a_file_can_empty_a_default)
{
    const char *p = s_write("validate\n    allow_sources = \"\"\n");
    char err[256];
    config_t *c = config_load(p, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(config_get(c, "validate/allow_sources"), "");
    cr_assert_str_eq(config_get(c, "validate/tolerance_s"), "300");
    config_destroy(&c);
    unlink(p);
}

Test(config, a_file_section_of_approvers_replaces_the_demo_ones)
{
    char err[256];
    config_t *c = config_load(NULL, err, sizeof err);
    const char *names[16];
    bool from_file = true;
    size_t n = config_children(c, "approvers", names, 16, &from_file);
    cr_assert(n >= 4 && !from_file, "embedded demo approvers");
    config_destroy(&c);

    const char *p = s_write("approvers\n    alice\n        roles = treasury\n        token_sha256 = ab\n"
                            "approve\n    thresholds\n        EUR = \"400000 4000000 4000\"\n");
    c = config_load(p, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    n = config_children(c, "approvers", names, 16, &from_file);
    cr_assert_eq(n, 1, "only the file's approvers: no demo approver survives");
    cr_assert(from_file);
    cr_assert_str_eq(names[0], "alice");
    cr_assert_str_eq(config_child_get(c, "approvers", "alice", "roles"), "treasury");
    n = config_children(c, "approve/thresholds", names, 16, &from_file);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(names[0], "EUR", "the file's thresholds replace the default USD");
    cr_assert_str_eq(config_child_get(c, "approve/thresholds", "EUR", NULL), "400000 4000000 4000");
    config_destroy(&c);
    unlink(p);
}

/* s_load_host - load text as host (PAYGUARD_HOST; NULL: none); NULL and err on refusal */
static config_t *s_load_host(const char *text, const char *host, char *err, size_t errlen)
{
    const char *p = s_write(text);
    if (host)
        setenv(CONFIG_HOST_ENV, host, 1);
    else
        unsetenv(CONFIG_HOST_ENV);
    config_t *c = config_load(p, err, errlen);
    unsetenv(CONFIG_HOST_ENV);
    unlink(p);
    return c;
}

#define HOSTS_OK                                                                                                         \
    "payguard\n    curve = yes\n    run_dir = /tmp/pg-h/run\nhosts\n    a\n        address = 10.0.0.1\n        run = "   \
    "\"ingest validate.* triage approve audit sandbox console\"\n        run_dir = /tmp/pg-h/a\n    b\n        address " \
    "= 10.0.0.2\n        run = \"execute.0 execute.1\"\nexecute\n    instances = 2\n"
#define TCP_LINKS "    endpoint = tcp://{host}:70{n}\n    ack_endpoint = tcp://{host}:71{n}\n"

/* s_all_tcp - HOSTS_OK with every stage's links on tcp:// (sections merged
 * into the text: a section given twice is refused) */
static const char *s_all_tcp(const char *extra)
{
    static char text[4096];
    snprintf(text, sizeof text,
             "%singest\n    ack_endpoint = tcp://{host}:72{n}\nvalidate\n" TCP_LINKS "triage\n" TCP_LINKS
             "approve\n" TCP_LINKS "audit\n" TCP_LINKS "%s",
             HOSTS_OK, extra);
    /* HOSTS_OK's execute section takes the links too */
    char *ex = strstr(text, "execute\n    instances = 2\n");
    memmove(ex + strlen("execute\n    instances = 2\n") + strlen(TCP_LINKS),
            ex + strlen("execute\n    instances = 2\n"), strlen(ex + strlen("execute\n    instances = 2\n")) + 1);
    memcpy(ex + strlen("execute\n    instances = 2\n"), TCP_LINKS, strlen(TCP_LINKS));
    return text;
}

Test(config, hosts_say_who_runs_what_and_where)
{
    char err[512] = "";
    config_t *c = s_load_host(s_all_tcp(""), "b", err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert(config_multi_host(c));
    cr_assert_str_eq(config_host(c), "b");
    cr_assert_str_eq(config_host_of(c, "execute", 1), "b");
    cr_assert_str_eq(config_host_of(c, "validate", 0), "a", "validate.* names every instance");
    cr_assert_str_eq(config_host_of(c, "sandbox", 0), "a");
    cr_assert(config_runs_here(c, "execute", 0) && !config_runs_here(c, "ingest", 0));
    char *ep = config_input_endpoint(c, "execute", 1);
    cr_assert_str_eq(ep, "tcp://10.0.0.2:701", "{host} is the address of the host that runs the instance");
    free(ep);
    ep = config_input_endpoint(c, "validate", 0);
    cr_assert_str_eq(ep, "tcp://10.0.0.1:700");
    free(ep);
    cr_assert_str_eq(config_run_dir(c), "/tmp/pg-h/run", "b has no run_dir of its own");
    config_destroy(&c);
    c = s_load_host(s_all_tcp(""), "a", err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(config_run_dir(c), "/tmp/pg-h/a", "a's own run_dir");
    config_destroy(&c);
}

Test(config, hosts_refuse_what_is_unsafe_or_unclear)
{
    char err[512] = "";
    cr_assert_null(s_load_host(s_all_tcp(""), "c", err, sizeof err));
    cr_assert(strstr(err, "host 'c'"), "%s", err);
    cr_assert_null(s_load_host(HOSTS_OK, "a", err, sizeof err), "ipc:// links across hosts");
    cr_assert(strstr(err, "ipc:// does not cross hosts"), "%s", err);
    char text[4096];
    snprintf(text, sizeof text, "%s", s_all_tcp(""));
    char *y = strstr(text, "curve = yes");
    memcpy(y, "curve = no ", 11);
    cr_assert_null(s_load_host(text, "a", err, sizeof err));
    cr_assert(strstr(err, "must be authenticated"), "%s", err);
    snprintf(text, sizeof text, "%s", s_all_tcp(""));
    y = strstr(text, "execute.0 execute.1");
    memcpy(y, "execute.0          ", 19);
    cr_assert_null(s_load_host(text, "a", err, sizeof err), "execute.1 run by nobody");
    cr_assert(strstr(err, "execute.1 is run by 0 hosts"), "%s", err);
}

Test(config, log_level_and_format_are_checked_at_load)
{
    char err[256];
    config_t *c = config_load(s_write("payguard\n    log_format = json\n"), err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_expect_str_eq(config_get(c, "payguard/log_format"), "json");
    config_destroy(&c);
    c = config_load(NULL, err, sizeof err);
    cr_expect_not_null(c, "the default (logfmt) loads: %s", err);
    config_destroy(&c);
    cr_expect_null(config_load(s_write("payguard\n    log_format = xml\n"), err, sizeof err));
    cr_expect_str_eq(err, "config: payguard/log_format = 'xml': want logfmt or json");
    cr_expect_null(config_load(s_write("payguard\n    log_level = verbose\n"), err, sizeof err));
    cr_expect_str_eq(err, "config: payguard/log_level = 'verbose': want debug, info, warn or error");
}
