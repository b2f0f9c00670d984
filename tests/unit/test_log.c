/* test_log - the log's two line formats: logfmt as before, and JSON lines
 * that parse whatever the message held (quotes, newlines, control bytes,
 * bytes that are not UTF-8), one object a line */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const struct timespec s_ts = {.tv_sec = 1700000000, .tv_nsec = 123456789};

/* parse_line - a JSON line: exactly one '\n', at its end; the object, with
 * exactly the members ts, level, inst and msg */
static json_t *parse_line(const char *line)
{
    size_t len = strlen(line);
    cr_assert(len > 1 && line[len - 1] == '\n', "a line ends with its newline: %s", line);
    cr_assert_null(memchr(line, '\n', len - 1), "one line: %s", line);
    json_error_t e;
    json_t *o = json_loadb(line, len - 1, 0, &e); /* jansson checks UTF-8 too */
    cr_assert_not_null(o, "not JSON (%s): %s", e.text, line);
    cr_assert(json_is_object(o));
    cr_expect_eq(json_object_size(o), 4, "%s", line);
    cr_expect_str_eq(json_string_value(json_object_get(o, "ts")), "2023-11-14T22:13:20.123Z");
    return o;
}

Test(log, json_escapes_quotes_newlines_and_control_bytes)
{
    char out[LOG_LINE_MAX];
    const char *msg = "say \"hi\" \\ back\nsecond line\r\ttab \x01\x1b[31m del\x7f end";
    size_t n = log_line(out, sizeof out, PGLOG_JSON, &s_ts, PGLOG_WARN, "validate.0", msg);
    cr_assert_eq(n, strlen(out));
    json_t *o = parse_line(out);
    cr_expect_str_eq(json_string_value(json_object_get(o, "level")), "warn");
    cr_expect_str_eq(json_string_value(json_object_get(o, "inst")), "validate.0");
    cr_expect_str_eq(json_string_value(json_object_get(o, "msg")), msg, "the message comes back byte for byte");
    cr_expect_not_null(strstr(out, "\\\"hi\\\" \\\\ back\\nsecond line\\r\\ttab \\u0001\\u001B[31m"), "%s", out);
    json_decref(o);
}

Test(log, json_keeps_utf8_and_replaces_bytes_that_are_not)
{
    char out[LOG_LINE_MAX];
    /* valid: é, €, an emoji; not: a lone 0xff, an overlong '/', a surrogate,
     * a sequence cut short by a space, and a lead byte cut off at the end */
    const char *msg = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 | \xff | \xc0\xaf | \xed\xa0\x80 | \xe2\x82 x | \xc3";
    log_line(out, sizeof out, PGLOG_JSON, &s_ts, PGLOG_INFO, "ingest.0", msg);
    json_t *o = parse_line(out);
    const char *want = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 | \xef\xbf\xbd | \xef\xbf\xbd\xef\xbf\xbd | "
                       "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd | \xef\xbf\xbd\xef\xbf\xbd x | \xef\xbf\xbd";
    cr_expect_str_eq(json_string_value(json_object_get(o, "msg")), want);
    json_decref(o);
}

Test(log, json_worst_cases_fit_one_line)
{
    char msg[LOG_MSG_MAX + 100], out[LOG_LINE_MAX];
    const unsigned char worst[] = {0x01, 0xff, '"'}; /* \u0001 (6 bytes), U+FFFD (3), \" (2) */
    for (size_t w = 0; w < sizeof worst; w++) {
        memset(msg, worst[w], sizeof msg - 1);
        msg[sizeof msg - 1] = '\0';
        log_line(out, sizeof out, PGLOG_JSON, &s_ts, PGLOG_ERROR, "audit.0", msg);
        json_t *o = parse_line(out);
        cr_expect_eq(json_string_length(json_object_get(o, "msg")),
                     worst[w] == 0xff ? 3 * (LOG_MSG_MAX - 1) : LOG_MSG_MAX - 1, "cut at %d bytes of message",
                     LOG_MSG_MAX - 1);
        json_decref(o);
    }
}

Test(log, logfmt_lines_are_as_before)
{
    char out[LOG_LINE_MAX];
    log_line(out, sizeof out, PGLOG_LOGFMT, &s_ts, PGLOG_INFO, "triage.1",
             "a \"q\" b\\ c\nd\x01"
             "e");
    cr_expect_str_eq(out, "ts=2023-11-14T22:13:20.123Z level=info inst=triage.1 msg=\"a \\\"q\\\" b\\\\ c\\nd?e\"\n");
}

Test(log, names_of_levels_and_formats)
{
    cr_expect_eq(log_format_of("logfmt"), PGLOG_LOGFMT);
    cr_expect_eq(log_format_of("json"), PGLOG_JSON);
    cr_expect_eq(log_format_of("JSON"), -1);
    cr_expect_eq(log_format_of(NULL), -1);
    cr_expect_eq(log_level_of("warn"), PGLOG_WARN);
    cr_expect_eq(log_level_of("warning"), -1);
}

/* the process's own lines, as the environment and the configuration ask */
Test(log, json_from_the_configuration, .init = cr_redirect_stderr)
{
    unsetenv(LOG_FORMAT_ENV);
    unsetenv(LOG_LEVEL_ENV);
    log_init("execute.0", "info", "json");
    log_debug("not at info");
    log_info("step \"hold\" done\nnext");
    fflush(stderr);
    char buf[LOG_LINE_MAX] = "";
    FILE *f = cr_get_redirected_stderr();
    cr_assert_not_null(fgets(buf, sizeof buf, f));
    json_t *o = json_loads(buf, 0, NULL);
    cr_assert_not_null(o, "%s", buf);
    cr_expect_str_eq(json_string_value(json_object_get(o, "inst")), "execute.0");
    cr_expect_str_eq(json_string_value(json_object_get(o, "msg")), "step \"hold\" done\nnext");
    cr_expect_null(fgets(buf, sizeof buf, f), "one line: %s", buf);
    json_decref(o);
}

Test(log, the_environment_wins, .init = cr_redirect_stderr)
{
    setenv(LOG_FORMAT_ENV, "json", 1);
    unsetenv(LOG_LEVEL_ENV);
    log_init("approve.0", "info", "logfmt");
    log_warn("from the environment");
    fflush(stderr);
    char buf[LOG_LINE_MAX] = "";
    cr_assert_not_null(fgets(buf, sizeof buf, cr_get_redirected_stderr()));
    json_t *o = json_loads(buf, 0, NULL);
    cr_assert_not_null(o, "PAYGUARD_LOG_FORMAT=json wins over the configured logfmt: %s", buf);
    cr_expect_str_eq(json_string_value(json_object_get(o, "level")), "warn");
    json_decref(o);
    unsetenv(LOG_FORMAT_ENV);
}
