/* test_trace - W3C traceparent parsing, formatting and new spans */
#include <criterion/criterion.h>
#include <string.h>

#include "trace.h"

#define GOOD "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

Test(trace, parses_and_formats_the_recommendations_example)
{
    trace_t t;
    cr_assert_eq(trace_parse(GOOD, strlen(GOOD), &t), 0);
    cr_expect_eq(t.trace_id[0], 0x0a);
    cr_expect_eq(t.span_id[7], 0x31);
    cr_expect_eq(t.flags, TRACE_FLAG_SAMPLED);
    char out[TRACE_HEADER_LEN + 1];
    trace_format(&t, out);
    cr_expect_str_eq(out, GOOD);
    cr_expect_eq(trace_parse("  " GOOD "\t", strlen(GOOD) + 3, &t), 0, "spaces around the value are allowed");
}

Test(trace, refuses_what_the_recommendation_refuses)
{
    trace_t t;
    const char *bad[] = {
        "",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",      /* no flags */
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",   /* upper case */
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",   /* zero trace-id */
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",   /* zero parent-id */
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",   /* version ff */
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x", /* version 00 with more */
        "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",   /* separator */
        "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",   /* not hex */
        "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",    /* short version */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(trace_parse(bad[i], strlen(bad[i]), &t), -1, "accepted %s", bad[i]);
    cr_expect_eq(trace_parse(NULL, 0, &t), -1);
}

Test(trace, a_later_version_is_read_by_its_first_fields)
{
    trace_t t;
    const char *v1 = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-comes-next";
    cr_assert_eq(trace_parse(v1, strlen(v1), &t), 0);
    char out[TRACE_HEADER_LEN + 1];
    trace_format(&t, out);
    cr_expect_str_eq(out, GOOD, "written back as version 00");
    const char *glued = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x";
    cr_expect_eq(trace_parse(glued, strlen(glued), &t), -1, "what follows must start with '-'");
}

Test(trace, children_keep_the_trace_and_get_their_own_span)
{
    trace_t root, a, b;
    trace_mint(&root);
    cr_expect_eq(root.flags, TRACE_FLAG_SAMPLED);
    trace_child(&root, &a);
    trace_child(&root, &b);
    cr_expect_eq(memcmp(a.trace_id, root.trace_id, TRACE_ID_BYTES), 0);
    cr_expect_neq(memcmp(a.span_id, b.span_id, TRACE_SPAN_BYTES), 0, "two children, two span ids");
    cr_expect_neq(memcmp(a.span_id, root.span_id, TRACE_SPAN_BYTES), 0);
    trace_t other;
    trace_mint(&other);
    cr_expect_neq(memcmp(other.trace_id, root.trace_id, TRACE_ID_BYTES), 0, "two traces, two ids");
}

Test(trace, derived_spans_are_a_function_of_stage_and_input)
{
    trace_t p, a, b, c, d;
    cr_assert_eq(trace_parse(GOOD, strlen(GOOD), &p), 0);
    trace_derive(&p, "validate", "rcpt_1", &a);
    trace_derive(&p, "validate", "rcpt_1", &b);
    trace_derive(&p, "triage", "rcpt_1", &c);
    trace_derive(&p, "validate", "rcpt_2", &d);
    cr_expect_eq(memcmp(&a, &b, sizeof a), 0, "the same input, the same context (after a crash too)");
    cr_expect_neq(memcmp(a.span_id, c.span_id, TRACE_SPAN_BYTES), 0);
    cr_expect_neq(memcmp(a.span_id, d.span_id, TRACE_SPAN_BYTES), 0);
    cr_expect_eq(memcmp(a.trace_id, p.trace_id, TRACE_ID_BYTES), 0);
    cr_expect_eq(a.flags, p.flags);
    char hex[2 * TRACE_SPAN_BYTES + 1];
    trace_span_hex(a.span_id, hex);
    cr_expect_eq(strlen(hex), 16);
}
