/* test_catchup - the pure parts of `payguard catch-up stripe`: the times it
 * takes, the Events API query of a page, the check of a page's answer, and
 * the state file an interrupted run goes on from */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../payguard/catchup.h"

Test(catchup, times)
{
    int64_t t;
    char err[256];
    cr_assert_eq(catchup_time("2026-11-21T08:00:00Z", 0, &t, err, sizeof err), 0);
    cr_assert_eq(t, 1795248000);
    cr_assert_eq(catchup_time("1795248000", 0, &t, err, sizeof err), 0);
    cr_assert_eq(t, 1795248000);
    cr_assert_eq(catchup_time("2026-11-21", 0, &t, err, sizeof err), 0);
    cr_assert_eq(t, 1795219200);
    cr_assert_eq(catchup_time("now-21600", 1000000, &t, err, sizeof err), 0);
    cr_assert_eq(t, 1000000 - 21600);
    cr_assert_eq(catchup_time("now-", 0, &t, err, sizeof err), -1);
    cr_assert_eq(catchup_time("now-1h", 0, &t, err, sizeof err), -1);
    cr_assert_eq(catchup_time("2026-11-21T08:00:00+01:00", 0, &t, err, sizeof err), -1, "UTC only");
    cr_assert(strstr(err, "is not a time"), "%s", err);
    cr_assert_eq(catchup_time("yesterday", 0, &t, err, sizeof err), -1);
}

Test(catchup, query_first_and_next_page)
{
    char q[CATCHUP_QUERY_MAX];
    cr_assert_eq(catchup_query(100, 200, NULL, q, sizeof q), 0);
    cr_assert_str_eq(q, "/v1/events?created%5Bgte%5D=100&created%5Blte%5D=200&limit=100"
                        "&types%5B%5D=payout.failed&types%5B%5D=payout.canceled&types%5B%5D=refund.updated"
                        "&types%5B%5D=refund.failed&types%5B%5D=charge.refund.updated&types%5B%5D=charge.refunded");
    cr_assert_eq(catchup_query(100, CATCHUP_OPEN_UNTIL, "evt_1Nx", q, sizeof q), 0);
    cr_assert_null(strstr(q, "lte"), "an open range has no upper bound");
    cr_assert(strstr(q, "&starting_after=evt_1Nx") && q[strlen(q) - 1] == 'x', "%s", q);
    cr_assert_eq(catchup_query(100, 200, "evt&limit=1", q, sizeof q), -1, "an id is never pasted into a query");
    char small[40];
    cr_assert_eq(catchup_query(100, 200, NULL, small, sizeof small), -1, "too small a buffer is an error");
}

Test(catchup, page_appends_events_in_order)
{
    const char *body = "{\"object\":\"list\",\"url\":\"/v1/events\",\"has_more\":true,\"data\":["
                       "{\"id\":\"evt_2\",\"type\":\"payout.failed\",\"created\":20,\"data\":{\"object\":{}}},"
                       "{\"id\":\"evt_1\",\"type\":\"refund.updated\",\"created\":10,\"data\":{\"object\":{}}}]}";
    json_t *events = json_array();
    bool more = false;
    char err[256];
    cr_assert_eq(catchup_page(body, strlen(body), events, &more, err, sizeof err), 2, "%s", err);
    cr_assert(more);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(events, 0), "id")), "evt_2");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(events, 1), "id")), "evt_1");
    const char *last = "{\"object\":\"list\",\"has_more\":false,\"data\":[]}";
    cr_assert_eq(catchup_page(last, strlen(last), events, &more, err, sizeof err), 0);
    cr_assert_not(more);
    cr_assert_eq(json_array_size(events), 2);
    json_decref(events);
}

/* s_bad - a page that must be refused, appending nothing; its reason */
static const char *s_bad(const char *body)
{
    static char err[256];
    json_t *events = json_array();
    bool more = false;
    cr_assert_eq(catchup_page(body, strlen(body), events, &more, err, sizeof err), -1, "accepted: %s", body);
    cr_assert_eq(json_array_size(events), 0, "nothing appended from a bad page");
    json_decref(events);
    return err;
}

Test(catchup, page_refuses_what_is_not_a_list_of_events)
{
    cr_assert(strstr(s_bad("not json"), "not JSON"));
    cr_assert(strstr(s_bad("{\"object\":\"event\",\"data\":[],\"has_more\":false}"), "not a list"));
    cr_assert(strstr(s_bad("{\"object\":\"list\",\"data\":[]}"), "not a list"), "has_more is required");
    cr_assert(strstr(s_bad("{\"object\":\"list\",\"has_more\":false,\"data\":[{\"id\":\"e 1\",\"type\":\"t\","
                           "\"created\":1}]}"),
                     "data[0].id"));
    cr_assert(strstr(s_bad("{\"object\":\"list\",\"has_more\":false,\"data\":[{\"id\":\"e1\",\"type\":\"t\","
                           "\"created\":1},{\"id\":\"e2\",\"type\":\"t\",\"created\":\"x\"}]}"),
                     "data[1] (e2)"),
              "a good event before a bad one is not kept");
    char big[16384] = "{\"object\":\"list\",\"has_more\":true,\"data\":[";
    for (int i = 0; i <= CATCHUP_PAGE_LIMIT; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "%s{\"id\":\"e%d\",\"type\":\"t\",\"created\":1}",
                 i ? "," : "", i);
    strcat(big, "]}");
    cr_assert(strstr(s_bad(big), "more than the 100 asked for"));
}

/* s_state_path - a fresh state file's path */
static const char *s_state_path(void)
{
    static char path[] = "/tmp/pg-catchup-XXXXXX";
    static char file[64];
    cr_assert_not_null(mkdtemp(path));
    snprintf(file, sizeof file, "%s/catchup.state", path);
    return file;
}

Test(catchup, state_file_keeps_each_range)
{
    const char *path = s_state_path();
    char err[256];
    catchup_run_t r;
    cr_assert_eq(catchup_state_get(path, 1, 2, &r, err, sizeof err), 0, "no file: no run");
    catchup_run_t a = {
        .since = 100, .until = CATCHUP_OPEN_UNTIL, .eff_until = 900, .fetched = 3, .fresh = 2, .dups = 1};
    snprintf(a.last_id, sizeof a.last_id, "evt_a");
    catchup_run_t b = {.since = 100, .until = 500, .eff_until = 500, .done = true};
    cr_assert_eq(catchup_state_put(path, &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(catchup_state_put(path, &b, err, sizeof err), 0, "%s", err);
    cr_assert_eq(catchup_state_get(path, 100, CATCHUP_OPEN_UNTIL, &r, err, sizeof err), 1);
    cr_assert_str_eq(r.last_id, "evt_a");
    cr_assert_eq(r.eff_until, 900, "an open range keeps the bound its first run used");
    cr_assert(r.fetched == 3 && r.fresh == 2 && r.dups == 1 && !r.done);
    cr_assert_eq(catchup_state_get(path, 100, 500, &r, err, sizeof err), 1);
    cr_assert(r.done && r.last_id[0] == '\0');
    a.fetched = 4;
    snprintf(a.last_id, sizeof a.last_id, "evt_b");
    cr_assert_eq(catchup_state_put(path, &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(catchup_state_get(path, 100, CATCHUP_OPEN_UNTIL, &r, err, sizeof err), 1);
    cr_assert(r.fetched == 4 && strcmp(r.last_id, "evt_b") == 0, "a range's line is replaced");
    char tmp[80];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert_neq(access(tmp, F_OK), 0, "the temporary file was renamed into place");
}

Test(catchup, state_file_is_bounded_and_checked)
{
    const char *path = s_state_path();
    char err[256];
    catchup_run_t r;
    for (int i = 0; i < CATCHUP_STATE_MAX_RUNS + 10; i++) {
        catchup_run_t x = {.since = i, .until = i + 1, .eff_until = i + 1, .done = true};
        cr_assert_eq(catchup_state_put(path, &x, err, sizeof err), 0, "%s", err);
    }
    cr_assert_eq(catchup_state_get(path, 0, 1, &r, err, sizeof err), 0, "the oldest runs went");
    cr_assert_eq(catchup_state_get(path, CATCHUP_STATE_MAX_RUNS + 9, CATCHUP_STATE_MAX_RUNS + 10, &r, err, sizeof err),
                 1);
    FILE *f = fopen(path, "r");
    int lines = 0;
    char line[CATCHUP_STATE_LINE_MAX];
    while (fgets(line, sizeof line, f))
        lines += line[0] != '#';
    fclose(f);
    cr_assert_eq(lines, CATCHUP_STATE_MAX_RUNS);
    f = fopen(path, "a");
    fputs("garbage\n", f);
    fclose(f);
    cr_assert_eq(catchup_state_get(path, 5, 6, &r, err, sizeof err), -1, "a damaged file is an error");
    cr_assert(strstr(err, "is not a catch-up run"), "%s", err);
    catchup_run_t y = {.since = 1, .until = 2};
    cr_assert_eq(catchup_state_put(path, &y, err, sizeof err), -1, "and is not overwritten");
}
