/* test_refusals - refused requests per source: aggregated for the trail,
 * throttled after repeated failures (common/refusals.h), on a clock the
 * tests move */
#include "refusals.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T0 1796000000000LL /* 2026-11-30T00:53:20Z: any fixed time */

static int64_t s_ms;

static int64_t s_clock(void *arg)
{
    (void) arg;
    return s_ms;
}

/* s_table - window 60 s, throttle after 5 failures for 30 s, sources as given */
static refusals_t *s_table(size_t max_sources, const char *exempt)
{
    s_ms = T0;
    refusals_opts_t o = {
        .window_s = 60, .throttle_after = 5, .throttle_s = 30, .max_sources = max_sources, .exempt = exempt};
    char err[256] = "";
    refusals_t *r = refusals_new(&o, s_clock, NULL, err, sizeof err);
    cr_assert_not_null(r, "%s", err);
    return r;
}

/* what the summaries handed out say, gathered by s_keep */
typedef struct {
    refusals_summary_t s[16];
    size_t n;
    int fail; /* answer -1 this many times first */
} got_t;

static int s_keep(const refusals_summary_t *s, void *arg)
{
    got_t *g = arg;
    if (g->fail > 0) {
        g->fail--;
        return -1;
    }
    cr_assert_lt(g->n, 16);
    g->s[g->n++] = *s;
    return 0;
}

static const unsigned UNAUTH = REFUSALS_FAILURE | REFUSALS_AGGREGATE;

Test(refusals, the_first_is_recorded_at_once_the_repeats_in_one_summary_when_the_window_ends)
{
    refusals_t *r = s_table(16, NULL);
    cr_expect(refusals_note(r, "10.0.0.9", UNAUTH).record, "the first: on the trail at once");
    for (int i = 0; i < 3; i++) {
        s_ms += 1000;
        cr_expect_not(refusals_note(r, "10.0.0.9", UNAUTH).record, "a repeat: counted");
    }
    got_t g = {0};
    s_ms = T0 + 59999;
    cr_expect_eq(refusals_flush(r, false, s_keep, &g), 0, "the window runs 60 s");
    s_ms = T0 + 60000;
    cr_expect_eq(refusals_flush(r, false, s_keep, &g), 1);
    cr_assert_eq(g.n, 1);
    cr_expect_str_eq(g.s[0].source, "10.0.0.9");
    cr_expect_eq(g.s[0].count, 3, "the three repeats (the first has its own record)");
    cr_expect_eq(g.s[0].first_ms, T0 + 1000);
    cr_expect_eq(g.s[0].last_ms, T0 + 3000);
    cr_expect_eq(refusals_flush(r, false, s_keep, &g), 0, "handed out once");
    char text[REFUSALS_REASON_MAX];
    refusals_summary_text(&g.s[0], text, sizeof text);
    cr_expect_str_eq(text, "3 refusals from 10.0.0.9 between 2026-11-30T00:53:21Z and 2026-11-30T00:53:23Z");
    /* the next refusal opens a new window: recorded at once again */
    s_ms += 5000;
    cr_expect(refusals_note(r, "10.0.0.9", UNAUTH).record);
    cr_expect_not(refusals_note(r, "10.0.0.9", UNAUTH).record);
    refusals_stats_t st;
    refusals_stats(r, &st);
    cr_expect_eq(st.aggregated, 3);
    cr_expect_eq(st.sources, 1);
    refusals_destroy(&r);
    cr_expect_null(r);
    refusals_destroy(&r);
}

Test(refusals, a_lone_refusal_makes_no_summary_and_sources_are_apart)
{
    refusals_t *r = s_table(16, NULL);
    cr_expect(refusals_note(r, "10.0.0.1", UNAUTH).record);
    cr_expect(refusals_note(r, "10.0.0.2", UNAUTH).record, "another source: its own window");
    cr_expect_not(refusals_note(r, "10.0.0.2", UNAUTH).record);
    s_ms += 61000;
    got_t g = {0};
    cr_expect_eq(refusals_flush(r, false, s_keep, &g), 1, "10.0.0.1 had nothing beyond its first");
    cr_expect_str_eq(g.s[0].source, "10.0.0.2");
    cr_expect(refusals_note(r, "10.0.0.1", UNAUTH).record, "its quiet window closed: a new first");
    refusals_destroy(&r);
}

Test(refusals, throttled_after_the_failures_then_429_until_it_ends)
{
    refusals_t *r = s_table(16, NULL);
    cr_expect_eq(refusals_throttled(r, "10.0.0.7"), 0, "never refused: served");
    refusals_verdict_t v = {0};
    for (int i = 1; i <= 4; i++) {
        v = refusals_note(r, "10.0.0.7", UNAUTH);
        cr_expect_not(v.throttled, "failure %d of 5", i);
        cr_expect_eq(refusals_throttled(r, "10.0.0.7"), 0);
    }
    s_ms += 2000;
    v = refusals_note(r, "10.0.0.7", UNAUTH);
    cr_expect(v.throttled, "the fifth throttles it");
    cr_expect(v.record, "and is recorded on its own, saying so");
    cr_expect_eq(v.throttle_s, 30);
    cr_expect_eq(v.fails, 5);
    char why[REFUSALS_REASON_MAX];
    refusals_reason(&v, "unknown or missing token", why);
    cr_expect_str_eq(why, "unknown or missing token; 5 refused requests from this address within "
                          "payguard/refusals/window_s: it is answered 429 for 30 s");
    cr_expect_eq(refusals_throttled(r, "10.0.0.7"), 30, "Retry-After: the whole throttle");
    s_ms += 10500;
    cr_expect_eq(refusals_throttled(r, "10.0.0.7"), 20, "rounded up");
    cr_expect_eq(refusals_throttled(r, "10.0.0.8"), 0, "another source is served");
    s_ms += 19499;
    cr_expect_eq(refusals_throttled(r, "10.0.0.7"), 1);
    s_ms += 1;
    cr_expect_eq(refusals_throttled(r, "10.0.0.7"), 0, "30 s later it is served again");
    cr_expect_not(refusals_note(r, "10.0.0.7", UNAUTH).throttled, "and counts its failures afresh");
    refusals_stats_t st;
    refusals_stats(r, &st);
    cr_expect_eq(st.throttled, 3, "the 429s");
    /* the 429s are refusals too: in the summary, counted apart */
    got_t g = {0};
    refusals_flush(r, true, s_keep, &g);
    cr_assert_eq(g.n, 1);
    cr_expect_eq(g.s[0].count, 3 + 3 + 1, "repeats 2-4, three 429s, the last failure");
    cr_expect_eq(g.s[0].throttled, 3);
    char text[REFUSALS_REASON_MAX];
    refusals_summary_text(&g.s[0], text, sizeof text);
    cr_expect(strstr(text, "(3 of them answered 429: the source was throttled)"), "%s", text);
    refusals_destroy(&r);
}

Test(refusals, failures_spread_beyond_the_window_do_not_throttle)
{
    refusals_t *r = s_table(16, NULL);
    for (int i = 0; i < 20; i++) {
        cr_expect_not(refusals_note(r, "10.0.0.3", UNAUTH).throttled, "failure %d", i);
        s_ms += 15000; /* four a minute, the window 60 s: never five in one */
    }
    refusals_destroy(&r);
}

Test(refusals, an_exempt_address_is_never_throttled_but_still_aggregated)
{
    refusals_t *r = s_table(16, "127.0.0.1  ::1");
    for (int i = 0; i < 50; i++)
        cr_expect_not(refusals_note(r, "127.0.0.1", UNAUTH).throttled);
    cr_expect_eq(refusals_throttled(r, "127.0.0.1"), 0);
    for (int i = 0; i < 5; i++)
        refusals_note(r, "::1", UNAUTH);
    cr_expect_eq(refusals_throttled(r, "::1"), 0, "IPv6 as inet_ntop writes it");
    for (int i = 0; i < 5; i++)
        refusals_note(r, "127.0.0.2", UNAUTH);
    cr_expect_gt(refusals_throttled(r, "127.0.0.2"), 0, "only the addresses listed");
    got_t g = {0};
    refusals_flush(r, true, s_keep, &g);
    cr_expect_eq(g.n, 3);
    cr_expect_eq(g.s[0].count, 49, "the exempt one's repeats are summed up like any other's");
    refusals_destroy(&r);
}

Test(refusals, a_person_refusal_is_recorded_each_time_and_counts_toward_the_throttle)
{
    refusals_t *r = s_table(16, NULL);
    for (int i = 1; i <= 5; i++) {
        refusals_verdict_t v = refusals_note(r, "10.1.1.1", REFUSALS_FAILURE); /* a 403 naming the person */
        cr_expect(v.record, "one record each");
        cr_expect_eq(v.throttled, i == 5);
    }
    cr_expect_gt(refusals_throttled(r, "10.1.1.1"), 0);
    cr_expect(refusals_note(r, "10.1.1.2", 0).record, "a 404 or 409: recorded, not a failure");
    for (int i = 0; i < 10; i++)
        refusals_note(r, "10.1.1.2", 0);
    cr_expect_eq(refusals_throttled(r, "10.1.1.2"), 0);
    refusals_destroy(&r);
}

Test(refusals, what_could_not_be_recorded_goes_into_the_summary)
{
    refusals_t *r = s_table(16, NULL);
    cr_expect(refusals_note(r, "10.0.0.5", UNAUTH).record);
    refusals_missed(r, "10.0.0.5"); /* the trail's window was full */
    refusals_missed(r, "10.0.0.6"); /* a source not seen before */
    s_ms += 60000;
    got_t g = {.fail = 1};
    cr_expect_eq(refusals_flush(r, false, s_keep, &g), 0, "a failed emit stops the flush");
    cr_expect_eq(refusals_flush(r, false, s_keep, &g), 2, "and the next one hands it out again");
    cr_expect_eq(g.s[0].count + g.s[1].count, 2);
    refusals_destroy(&r);
}

Test(refusals, a_full_table_evicts_the_oldest_and_keeps_what_it_had_not_recorded)
{
    refusals_t *r = s_table(2, NULL);
    refusals_note(r, "10.0.0.1", UNAUTH);
    refusals_note(r, "10.0.0.1", UNAUTH); /* 1 repeat */
    s_ms += 1;
    refusals_note(r, "10.0.0.2", UNAUTH);
    for (int i = 0; i < 3; i++)
        refusals_note(r, "10.0.0.2", UNAUTH); /* 3 repeats; 4 failures, one short of the throttle */
    s_ms += 1;
    refusals_note(r, "10.0.0.1", UNAUTH); /* 2 repeats; the most recently refused again: 10.0.0.2 is the oldest */
    cr_expect(refusals_note(r, "10.0.0.3", UNAUTH).record, "a new source takes 10.0.0.2's place");
    refusals_stats_t st;
    refusals_stats(r, &st);
    cr_expect_eq(st.sources, 2);
    cr_expect_not(refusals_note(r, "10.0.0.2", UNAUTH).throttled,
                  "back (evicting 10.0.0.1): its failures were forgotten with it");
    got_t g = {0};
    cr_expect_eq(refusals_flush(r, false, s_keep, &g), 2, "the evicted sources' repeats, before their windows end");
    cr_expect_str_eq(g.s[0].source, "10.0.0.2");
    cr_expect_eq(g.s[0].count, 3);
    cr_expect_str_eq(g.s[1].source, "10.0.0.1");
    cr_expect_eq(g.s[1].count, 2);
    refusals_destroy(&r);
}

/* s_sum - every summary's count added up (evictions: *(uint64_t[2]) total, merged) */
static int s_sum(const refusals_summary_t *s, void *arg)
{
    uint64_t *n = arg;
    n[0] += s->count;
    if (strcmp(s->source, "(evicted sources)") == 0)
        n[1] += s->count;
    return 0;
}

Test(refusals, evictions_past_the_held_summaries_are_merged_not_lost)
{
    refusals_t *r = s_table(1, NULL);
    char src[32];
    int sources = REFUSALS_DUE_MAX + 10;
    for (int i = 0; i < sources; i++) {
        snprintf(src, sizeof src, "10.2.%d.%d", i / 256, i % 256);
        refusals_note(r, src, UNAUTH);
        refusals_note(r, src, UNAUTH); /* one repeat each, then evicted by the next source */
        s_ms += 1;
    }
    uint64_t n[2] = {0, 0};
    cr_expect_eq(refusals_flush(r, true, s_sum, n), REFUSALS_DUE_MAX + 2,
                 "the summaries held, the merged one, the source still in the table");
    cr_expect_eq(n[0], (uint64_t) sources, "every repeat is in a summary");
    cr_expect_eq(n[1], 9, "the evictions beyond the summaries held, in one");
    refusals_destroy(&r);
}

Test(refusals, stopping_hands_out_every_open_window)
{
    refusals_t *r = s_table(16, NULL);
    refusals_note(r, "10.0.0.4", UNAUTH);
    refusals_note(r, "10.0.0.4", UNAUTH);
    got_t g = {0};
    cr_expect_eq(refusals_flush(r, false, s_keep, &g), 0);
    cr_expect_eq(refusals_flush(r, true, s_keep, &g), 1);
    cr_expect_eq(g.s[0].count, 1);
    refusals_destroy(&r);
}

Test(refusals, a_clock_that_goes_back_ends_windows_and_throttles)
{
    refusals_t *r = s_table(16, NULL);
    for (int i = 0; i < 5; i++)
        refusals_note(r, "10.0.0.8", UNAUTH);
    cr_expect_gt(refusals_throttled(r, "10.0.0.8"), 0);
    s_ms -= 3600000;
    cr_expect_eq(refusals_throttled(r, "10.0.0.8"), 0, "no throttle longer than throttle_s");
    got_t g = {0};
    cr_expect_eq(refusals_flush(r, false, s_keep, &g), 1, "the window is over");
    refusals_destroy(&r);
}

/* s_hammer - 1000 refusals of one source from a thread */
static void *s_hammer(void *arg)
{
    for (int i = 0; i < 1000; i++)
        if (refusals_note(arg, "10.9.9.9", REFUSALS_AGGREGATE).record)
            refusals_missed(arg, "10.9.9.9"); /* as if it could not be recorded: all in summaries */
    return NULL;
}

Test(refusals, safe_from_many_threads)
{
    refusals_t *r = s_table(16, NULL);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, s_hammer, r);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    got_t g = {0};
    refusals_flush(r, true, s_keep, &g);
    cr_assert_eq(g.n, 1);
    cr_expect_eq(g.s[0].count, 4000, "not one lost or counted twice");
    refusals_destroy(&r);
}

Test(refusals, ids_are_recorded_as_printable_ascii)
{
    char out[REFUSALS_TEXT_MAX];
    refusals_escape("payout-P-10492", out, sizeof out);
    cr_expect_str_eq(out, "payout-P-10492", "an ordinary id as it is");
    refusals_escape("refund-\xc3\xa9\xff\n \x7f%", out, sizeof out);
    cr_expect_str_eq(out, "refund-%C3%A9%FF%0A%20%7F%25", "anything else as %XX, '%' too");
    refusals_escape(NULL, out, sizeof out);
    cr_expect_str_eq(out, "");
    char small[10];
    refusals_escape("abcdefghi", small, sizeof small);
    cr_expect_str_eq(small, "abcdefghi", "fits exactly");
    refusals_escape("abcdefghij", small, sizeof small);
    cr_expect_str_eq(small, "abcdef...", "cut, and says so");
    refusals_escape("ab\xff\xff\xff", small, sizeof small);
    cr_expect_str_eq(small, "ab%FF...", "never half an escape");
}

Test(refusals, a_record_of_its_own_carries_the_id_as_data)
{
    refusals_verdict_t v = {.record = true};
    event_body_t *b = refusals_body(&v, NULL, "payout-\xff", 401, "unknown or missing token", "10.0.0.1");
    event_head_t h = {.id = "deny_1", .type = "access_denied", .stage = "audit.0", .seq = 1, .time_ms = T0};
    size_t len;
    char err[256];
    void *env = event_encode(&h, b, &len, err, sizeof err);
    cr_assert_not_null(env, "%s", err);
    event_t *ev = event_decode(env, len, err, sizeof err);
    cr_assert_not_null(ev, "%s", err);
    char buf[128];
    cr_expect_str_eq(event_get_strbuf(ev, "requested_case", buf, sizeof buf), "payout-%FF");
    cr_expect_str_eq(event_get_strbuf(ev, "who", buf, sizeof buf), "(unknown token)");
    cr_expect_str_eq(event_head(ev)->case_key, "", "never a case key");
    event_destroy(&ev);
    free(env);
    event_body_destroy(&b);
}

Test(refusals, settings_from_the_configuration)
{
    char err[256];
    config_t *c = config_load(NULL, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    refusals_opts_t o;
    cr_assert_eq(refusals_config(c, &o, err, sizeof err), 0, "%s", err);
    cr_expect_eq(o.window_s, 60);
    cr_expect_eq(o.throttle_after, 20);
    cr_expect_eq(o.throttle_s, 60);
    cr_expect_str_eq(o.exempt, "127.0.0.1");
    cr_expect_eq(o.max_sources, REFUSALS_SOURCES);
    config_destroy(&c);
    cr_expect_eq(refusals_exempt_check("10.0.0.1 fe80::1", err, sizeof err), 0);
    cr_expect_eq(refusals_exempt_check("", err, sizeof err), 0, "none");
    cr_expect_eq(refusals_exempt_check("10.0.0.0/8", err, sizeof err), -1);
    cr_expect_str_eq(err, "config: payguard/refusals/exempt: '10.0.0.0/8': not an IPv4 or IPv6 address");
    cr_expect_eq(refusals_exempt_check("1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4 1.1.1.5 1.1.1.6 1.1.1.7 1.1.1.8 1.1.1.9 "
                                       "1.1.1.10 1.1.1.11 1.1.1.12 1.1.1.13 1.1.1.14 1.1.1.15 1.1.1.16 1.1.1.17",
                                       err, sizeof err),
                 -1);
    refusals_opts_t bad = {.window_s = 0, .throttle_after = 1, .throttle_s = 1, .max_sources = 1};
    cr_expect_null(refusals_new(&bad, NULL, NULL, err, sizeof err));
    bad = (refusals_opts_t){.window_s = 1, .throttle_after = 1, .throttle_s = 1, .max_sources = 1, .exempt = "x"};
    cr_expect_null(refusals_new(&bad, NULL, NULL, err, sizeof err));
}

Test(refusals, a_bad_exempt_list_is_refused_at_load)
{
    char path[] = "/tmp/test_refusals_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs("payguard\n    refusals\n        exempt = \"127.0.0.1 console\"\n", f);
    fclose(f);
    char err[256];
    config_t *c = config_load(path, err, sizeof err);
    unlink(path);
    cr_expect_null(c);
    cr_expect(strstr(err, "payguard/refusals/exempt: 'console'"), "%s", err);
    config_destroy(&c);
}
