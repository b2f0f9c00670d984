/* test_caseidx - audit's case index: the retry-storm case's timeline, states,
 * lists, and a rebuild from the trail that answers exactly as before. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../audit/caseidx.h"
#include "journal.h"
#include "trail.h"

static char s_root[64], s_dir[96], s_db[96];
static int64_t s_clock;
static size_t s_segment_bytes; /* of the trails s_storm writes (0: the default) */

static void s_setup(void)
{
    snprintf(s_root, sizeof s_root, "/tmp/pg-caseidx-XXXXXX");
    cr_assert_not_null(mkdtemp(s_root));
    snprintf(s_dir, sizeof s_dir, "%s/audit.0", s_root);
    snprintf(s_db, sizeof s_db, "%s/cases.sqlite", s_root);
    s_clock = 1795000000000;
}

static void s_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_root);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(caseidx, .init = s_setup, .fini = s_teardown, .timeout = 30);

typedef struct {
    journal_t *j;
    trail_head_t head;
} trail_w_t;

/* s_store - one event onto the test trail (as audit stores it) */
static void s_store(trail_w_t *w, const char *id, const char *type, const char *case_key, const char *stage,
                    const char *cause, event_body_t *b)
{
    event_head_t h = {.seq = 1, .time_ms = s_clock++};
    snprintf(h.id, sizeof h.id, "%s", id);
    snprintf(h.type, sizeof h.type, "%s", type);
    snprintf(h.case_key, sizeof h.case_key, "%s", case_key);
    snprintf(h.stage, sizeof h.stage, "%s", stage);
    snprintf(h.cause, sizeof h.cause, "%s", cause);
    char err[256];
    size_t len, reclen;
    void *raw = event_encode(&h, b, &len, err, sizeof err);
    cr_assert_not_null(raw, "%s", err);
    event_body_destroy(&b);
    event_t *ev = event_decode(raw, len, err, sizeof err);
    void *rec = trail_record_new(&w->head, ev, raw, len, h.time_ms, &reclen);
    cr_assert_eq(journal_append(w->j, rec, reclen, NULL), 0);
    free(rec);
    free(raw);
    event_destroy(&ev);
}

/* s_facts - the facts validate states about payout P-7 */
static event_body_t *s_facts(const char *key)
{
    event_body_t *b = event_body_new();
    event_body_str(b, "case_id", "payout-P-7");
    event_body_str(b, "kind", "payout");
    event_body_str(b, "ref", "P-7");
    event_body_str(b, "provider", "stripe");
    event_body_str(b, "key", key);
    event_body_int(b, "amount", 1250000);
    event_body_str(b, "currency", "USD");
    return b;
}

/* s_body1 - a body with one str field */
static event_body_t *s_body1(const char *k, const char *v)
{
    event_body_t *b = event_body_new();
    event_body_str(b, k, v);
    return b;
}

/* s_storm - the retry-storm example onto a trail: 12 receipts of one event
 * (some stored before validate's verdict, some after), one validated, 11
 * duplicates, advice, approval by two people, one execution; plus a
 * rejected case and a pending one */
static void s_storm(void)
{
    char err[256];
    journal_opts_t o = {.sync = JOURNAL_SYNC_NONE, .segment_bytes = s_segment_bytes};
    trail_w_t w = {0};
    w.j = journal_open(s_dir, &o, err, sizeof err);
    cr_assert_not_null(w.j, "%s", err);
    char rid[64], vid[64];
    for (int i = 1; i <= 12; i++) {
        snprintf(rid, sizeof rid, "rcpt_%024d", i);
        snprintf(vid, sizeof vid, "validate-%024d", i);
        event_body_t *rb = event_body_new();
        event_body_str(rb, "endpoint", "stripe");
        event_body_str(rb, "peer", "127.0.0.1");
        event_body_bin(rb, "body", "{}", 2);
        if (i % 2) /* odd receipts reach audit before their verdict */
            s_store(&w, rid, "receipt", "", "ingest.0", "", rb);
        if (i == 1)
            s_store(&w, vid, "validated", "payout-P-7", "validate.0", rid, s_facts("evt_7:P-7"));
        else
            s_store(&w, vid, "duplicate", "payout-P-7", "validate.0", rid, s_facts("evt_7:P-7"));
        if (i % 2 == 0)
            s_store(&w, rid, "receipt", "", "ingest.0", "", rb);
    }
    event_body_t *t = event_body_new();
    json_t *advice =
        json_pack("{s:s, s:s, s:s, s:i, s:s}", "classification", "payout_exception", "root_cause", "bank_rejection",
                  "recommendation", "request_updated_bank_details", "confidence_permille", 900, "source", "rules");
    event_body_json(t, "advice", advice);
    json_decref(advice);
    event_body_int(t, "duplicates", 0);
    s_store(&w, "triage-1", "triaged", "payout-P-7", "triage.0", "validate-000000000000000000000001", t);
    event_body_t *r = s_body1("state", "pending");
    event_body_int(r, "tier", 2);
    s_store(&w, "approve-1", "routed", "payout-P-7", "approve.0", "triage-1", r);
    event_body_t *d = s_body1("who", "fin_mgr");
    event_body_str(d, "role", "finance_manager");
    event_body_str(d, "decision", "approve");
    event_body_str(d, "state", "pending");
    s_store(&w, "dec_1", "decision", "payout-P-7", "approve.0", "", d);
    d = s_body1("who", "compliance_officer");
    event_body_str(d, "role", "compliance");
    event_body_str(d, "decision", "approve");
    event_body_str(d, "state", "approved");
    s_store(&w, "dec_2", "decision", "payout-P-7", "approve.0", "", d);
    s_store(&w, "dec_3", "approved", "payout-P-7", "approve.0", "", s_body1("state", "approved"));
    s_store(&w, "execute-1", "runbook", "payout-P-7", "execute.0", "dec_3", s_body1("decision", "approved"));
    event_body_t *s = s_body1("step", "hold_payout");
    event_body_str(s, "status", "done");
    event_body_str(s, "idempotency_key", "payout-P-7:hold_payout");
    event_body_int(s, "http_status", 200);
    s_store(&w, "execute-2", "step", "payout-P-7", "execute.0", "dec_3", s);
    s_store(&w, "execute-3", "executed", "payout-P-7", "execute.0", "dec_3", s_body1("outcome", "done"));
    /* late advice about a duplicate: on the timeline, moves nothing */
    event_body_t *late = event_body_new();
    event_body_int(late, "duplicates", 11);
    s_store(&w, "triage-12", "triaged", "payout-P-7", "triage.1", "validate-000000000000000000000012", late);
    /* two other cases */
    event_body_t *rej = s_body1("gate", "state");
    event_body_str(rej, "reason", "unknown payout P-404");
    s_store(&w, "validate-404", "rejected", "payout-P-404", "validate.0", "rcpt_404", rej);
    s_store(&w, "validate-9", "validated", "payout-P-9", "validate.0", "rcpt_9", s_facts("evt_9:P-9"));
    s_store(&w, "approve-9", "routed", "payout-P-9", "approve.0", "triage-9", s_body1("state", "pending"));
    journal_close(&w.j);
}

/* s_list - the list of one state (NULL: all), at most limit */
static char *s_list(caseidx_t *idx, const char *state, size_t limit)
{
    caseidx_filter_t f = {.state = state, .limit = limit};
    return caseidx_find_json(idx, &f);
}

/* s_build - open the index and bring it up to the trail */
static caseidx_t *s_build(uint64_t *applied)
{
    char err[256];
    caseidx_t *idx = caseidx_open(s_db, s_dir, false, err, sizeof err);
    cr_assert_not_null(idx, "%s", err);
    cr_assert_eq(caseidx_sync(idx, s_dir, applied, err, sizeof err), 0, "%s", err);
    return idx;
}

/* s_count_type - timeline entries of a type */
static size_t s_count_type(json_t *c, const char *type)
{
    size_t i, n = 0;
    json_t *v;
    json_array_foreach(json_object_get(c, "timeline"), i, v) n +=
        strcmp(json_string_value(json_object_get(v, "type")), type) == 0;
    return n;
}

Test(caseidx, storm_case_shows_12_receipts_and_one_execution)
{
    s_storm();
    uint64_t applied;
    caseidx_t *idx = s_build(&applied);
    cr_assert_gt(applied, 30);
    char *text = caseidx_case_json(idx, "payout-P-7");
    cr_assert_not_null(text);
    json_t *c = json_loads(text, 0, NULL);
    free(text);
    cr_assert_str_eq(json_string_value(json_object_get(c, "state")), "executed");
    cr_assert_eq(json_integer_value(json_object_get(c, "receipts")), 12);
    cr_assert_eq(json_integer_value(json_object_get(c, "duplicates")), 11);
    cr_assert_eq(s_count_type(c, "receipt"), 12, "every receipt on the timeline, wherever it arrived");
    cr_assert_eq(s_count_type(c, "duplicate"), 11);
    cr_assert_eq(s_count_type(c, "executed"), 1, "one execution");
    cr_assert_eq(s_count_type(c, "runbook"), 1);
    cr_assert_str_eq(json_string_value(json_object_get(c, "amount_text")), "12,500.00 USD");
    cr_assert_eq(json_integer_value(json_object_get(c, "tier")), 2);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(c, "idempotency_keys"), 0)), "evt_7:P-7");
    json_t *rec = json_object_get(c, "recommendation");
    cr_assert(json_is_true(json_object_get(rec, "advisory")), "the AI's advice is marked advisory");
    cr_assert_eq(json_array_size(json_object_get(c, "decisions")), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(c, "decisions"), 0), "approver")),
                     "fin_mgr");
    json_t *act = json_array_get(json_object_get(c, "actions"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(act, "idempotency_key")), "payout-P-7:hold_payout");
    /* the timeline is in event time: the first receipt first */
    json_t *first = json_array_get(json_object_get(c, "timeline"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(first, "type")), "receipt");
    json_decref(c);
    caseidx_close(&idx);
}

Test(caseidx, lists_by_state_newest_first)
{
    s_storm();
    uint64_t applied;
    caseidx_t *idx = s_build(&applied);
    char *t = s_list(idx, "executed", 10);
    cr_assert(strstr(t, "\"case_id\":\"payout-P-7\"") && strstr(t, "\"ref\":\"P-7\""), "%s", t);
    free(t);
    t = s_list(idx, "pending", 10); /* the alias of awaiting_approval */
    cr_assert(strstr(t, "payout-P-9") && !strstr(t, "payout-P-7"), "%s", t);
    free(t);
    t = s_list(idx, "rejected", 10);
    cr_assert(strstr(t, "payout-P-404"), "%s", t);
    free(t);
    t = s_list(idx, NULL, 10);
    json_t *all = json_loads(t, 0, NULL);
    free(t);
    cr_assert_eq(json_array_size(json_object_get(all, "cases")), 3);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(all, "cases"), 0), "case_id")),
                     "payout-P-9", "newest first");
    json_decref(all);
    cr_assert(caseidx_state_known("pending") && caseidx_state_known("ops_review"));
    cr_assert_not(caseidx_state_known("finished"));
    cr_assert_null(caseidx_case_json(idx, "payout-P-unknown"));
    caseidx_close(&idx);
}

Test(caseidx, deleted_index_is_rebuilt_from_the_trail_and_answers_the_same)
{
    s_storm();
    uint64_t applied;
    caseidx_t *idx = s_build(&applied);
    char *before_case = caseidx_case_json(idx, "payout-P-7");
    char *before_list = s_list(idx, NULL, 100);
    caseidx_close(&idx);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -f %s %s-wal %s-shm", s_db, s_db, s_db);
    cr_assert_eq(system(cmd), 0);
    idx = s_build(&applied);
    char *after_case = caseidx_case_json(idx, "payout-P-7");
    char *after_list = s_list(idx, NULL, 100);
    cr_assert_str_eq(after_case, before_case);
    cr_assert_str_eq(after_list, before_list);
    /* and a second sync applies nothing new */
    char err[256];
    cr_assert_eq(caseidx_sync(idx, s_dir, &applied, err, sizeof err), 0);
    cr_assert_eq(applied, 0);
    free(before_case);
    free(before_list);
    free(after_case);
    free(after_list);
    caseidx_close(&idx);
}

Test(caseidx, an_index_ahead_of_its_trail_is_rebuilt)
{
    s_storm();
    uint64_t applied;
    caseidx_t *idx = s_build(&applied);
    caseidx_close(&idx);
    /* the trail is replaced by a shorter one (restored from a backup) */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    cr_assert_eq(system(cmd), 0);
    char err[256];
    journal_opts_t o = {.sync = JOURNAL_SYNC_NONE};
    trail_w_t w = {0};
    w.j = journal_open(s_dir, &o, err, sizeof err);
    s_store(&w, "validate-9", "validated", "payout-P-9", "validate.0", "rcpt_9", s_facts("evt_9:P-9"));
    journal_close(&w.j);
    idx = s_build(&applied);
    cr_assert_eq(applied, 1);
    char *t = s_list(idx, NULL, 100);
    cr_assert(strstr(t, "payout-P-9") && !strstr(t, "payout-P-7"), "only what the trail holds: %s", t);
    free(t);
    caseidx_close(&idx);
}

Test(caseidx, summaries_mark_advice_as_advisory)
{
    json_t *e = json_pack("{s:s, s:{s:{s:s, s:s, s:s, s:i, s:s}}}", "type", "triaged", "body", "advice",
                          "classification", "payout_exception", "root_cause", "bank_rejection", "recommendation",
                          "hold", "confidence_permille", 850, "source", "llm");
    char line[512];
    caseidx_summary(e, line, sizeof line);
    cr_assert(strstr(line, "advisory") && strstr(line, "llm") && strstr(line, "85%"), "%s", line);
    json_decref(e);
}

Test(caseidx, a_summary_cut_to_fit_stays_valid_utf8)
{
    /* a reason longer than the line, a 2-byte character at the cut: the
     * timeline's JSON cannot carry half of it (jansson refuses the string) */
    char reason[64];
    memset(reason, 'x', sizeof reason);
    memcpy(reason + 6, "\xc3\xa9", 2);
    reason[sizeof reason - 1] = '\0';
    json_t *e = json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "rejected", "body", "gate", "http", "code", "c", "reason",
                          reason);
    char line[39]; /* 31 bytes of "rejected at the http gate (c): " and 7 of the reason: inside its 2-byte character */
    caseidx_summary(e, line, sizeof line);
    json_t *s = json_string(line);
    cr_assert_not_null(s, "valid UTF-8: %s", line);
    cr_expect_str_eq(line, "rejected at the http gate (c): xxxxxx");
    json_decref(s);
    json_decref(e);
}

Test(caseidx, a_later_no_op_does_not_hide_an_execution)
{
    /* the older event was executed first (its newer twin was held up by a
     * crash); the newer one then finds the ledger consistent: still executed */
    char err[256];
    journal_opts_t o = {.sync = JOURNAL_SYNC_NONE};
    trail_w_t w = {0};
    w.j = journal_open(s_dir, &o, err, sizeof err);
    s_store(&w, "validate-1", "validated", "refund-rf_1", "validate.0", "rcpt_1", s_facts("evt_old:rf_1"));
    s_store(&w, "approve-1", "routed", "refund-rf_1", "approve.0", "triage-1", s_body1("state", "auto_approved"));
    s_store(&w, "execute-1", "runbook", "refund-rf_1", "execute.0", "approve-2", s_body1("decision", "approved"));
    s_store(&w, "execute-2", "executed", "refund-rf_1", "execute.0", "approve-2", s_body1("outcome", "done"));
    s_store(&w, "validate-2", "validated", "refund-rf_1", "validate.0", "rcpt_2", s_facts("evt_new:rf_1"));
    s_store(&w, "approve-3", "routed", "refund-rf_1", "approve.0", "triage-2", s_body1("state", "no_action"));
    journal_close(&w.j);
    uint64_t applied;
    caseidx_t *idx = s_build(&applied);
    char *t = s_list(idx, "executed", 10);
    cr_assert(strstr(t, "refund-rf_1"), "%s", t);
    free(t);
    caseidx_close(&idx);
}

/* s_ids - the case ids of a list answer, comma-separated */
static void s_ids(char *text, char *out, size_t outlen)
{
    json_t *l = json_loads(text, 0, NULL);
    free(text);
    out[0] = '\0';
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(l, "cases"), i, c)
        snprintf(out + strlen(out), outlen - strlen(out), "%s%s", i ? "," : "",
                 json_string_value(json_object_get(c, "case_id")));
    json_decref(l);
}

Test(caseidx, lists_filter_by_kind_tier_and_age_with_the_latest_entry)
{
    s_storm();
    uint64_t applied;
    caseidx_t *idx = s_build(&applied);
    char ids[512];
    caseidx_filter_t f = {.tier = 2};
    s_ids(caseidx_find_json(idx, &f), ids, sizeof ids);
    cr_expect_str_eq(ids, "payout-P-7", "only P-7 was routed to tier 2");
    f = (caseidx_filter_t){.kind = "refund"};
    s_ids(caseidx_find_json(idx, &f), ids, sizeof ids);
    cr_expect_str_eq(ids, "", "no refund case");
    f = (caseidx_filter_t){.kind = "payout", .state = "pending"};
    s_ids(caseidx_find_json(idx, &f), ids, sizeof ids);
    cr_expect_str_eq(ids, "payout-P-9");
    f = (caseidx_filter_t){.state = "executed", .tier = 1};
    s_ids(caseidx_find_json(idx, &f), ids, sizeof ids);
    cr_expect_str_eq(ids, "", "both filters apply");
    f = (caseidx_filter_t){.created_after_ms = INT64_MAX / 2};
    s_ids(caseidx_find_json(idx, &f), ids, sizeof ids);
    cr_expect_str_eq(ids, "", "nothing created after the far future");
    f = (caseidx_filter_t){.created_after_ms = 0, .limit = 2};
    s_ids(caseidx_find_json(idx, &f), ids, sizeof ids);
    cr_expect_eq(strlen(ids) > 0 && strchr(ids, ',') && !strchr(strchr(ids, ',') + 1, ','), 1, "limit 2: %s", ids);

    /* each row carries its latest timeline entry: what the ops queue shows as why */
    f = (caseidx_filter_t){.state = "rejected"};
    char *text = caseidx_find_json(idx, &f);
    json_t *l = json_loads(text, 0, NULL);
    free(text);
    json_t *last = json_object_get(json_array_get(json_object_get(l, "cases"), 0), "last");
    cr_assert(json_is_object(last), "rejected case has a last entry");
    cr_expect_str_eq(json_string_value(json_object_get(last, "type")), "rejected");
    cr_expect(strstr(json_string_value(json_object_get(last, "summary")), "unknown payout P-404"), "%s",
              json_string_value(json_object_get(last, "summary")));
    cr_expect(json_is_string(json_object_get(last, "at")));
    json_decref(l);
    caseidx_close(&idx);
}

Test(caseidx, a_duplicates_later_advice_does_not_hide_the_route_that_reaches_audit_after_it)
{
    /* found by e2e_audit: a duplicate delivery's advice (event time t+7)
     * reached audit before the route (event time t+5, approve being slower);
     * the route must still move the case to awaiting_approval */
    char err[256];
    journal_opts_t o = {.sync = JOURNAL_SYNC_NONE};
    trail_w_t w = {0};
    w.j = journal_open(s_dir, &o, err, sizeof err);
    cr_assert_not_null(w.j, "%s", err);
    int64_t t0 = s_clock;
    s_store(&w, "v-1", "validated", "payout-P-7", "validate.0", "r-1", s_facts("evt_7:P-7"));
    s_store(&w, "t-1", "triaged", "payout-P-7", "triage.0", "v-1", s_body1("note", "advice"));
    s_store(&w, "d-2", "duplicate", "payout-P-7", "validate.0", "r-2", s_facts("evt_7:P-7"));
    s_clock = t0 + 7;
    s_store(&w, "t-2", "triaged", "payout-P-7", "triage.1", "d-2", s_body1("note", "advice about the duplicate"));
    s_clock = t0 + 5; /* the route, made before that advice, arrives after it */
    s_store(&w, "a-1", "routed", "payout-P-7", "approve.0", "t-1", s_body1("state", "pending"));
    journal_close(&w.j);
    uint64_t applied;
    caseidx_t *idx = s_build(&applied);
    char *text = caseidx_case_json(idx, "payout-P-7");
    cr_assert(strstr(text, "\"state\":\"awaiting_approval\""), "%.300s", text);
    free(text);
    caseidx_close(&idx);
}

/* s_two - a body with two str fields */
static event_body_t *s_two(const char *k1, const char *v1, const char *k2, const char *v2)
{
    event_body_t *b = s_body1(k1, v1);
    event_body_str(b, k2, v2);
    return b;
}

Test(caseidx, a_denial_stays_denied_when_its_notice_run_reaches_audit_first)
{
    /* approve's denied and execute's executed (the denial's Teams notice) come
     * over two links: audit may store the notice run first (seen on a slow CI
     * machine: the console showed a denied case as executed) */
    char err[256];
    journal_opts_t o = {.sync = JOURNAL_SYNC_NONE};
    trail_w_t w = {0};
    w.j = journal_open(s_dir, &o, err, sizeof err);
    s_store(&w, "validate-1", "validated", "payout-P-9", "validate.0", "rcpt_1", s_facts("evt_9:P-9"));
    s_store(&w, "approve-1", "routed", "payout-P-9", "approve.0", "triage-1", s_body1("state", "pending"));
    int64_t denied_at = s_clock++; /* approve's denied, stamped before the notice run */
    s_store(&w, "execute-1", "executed", "payout-P-9", "execute.0", "approve-2",
            s_two("runbook", "denied", "outcome", "done"));
    int64_t now = s_clock;
    s_clock = denied_at;
    s_store(&w, "approve-2", "denied", "payout-P-9", "approve.0", "approve-1", s_body1("state", "denied"));
    s_clock = now;
    journal_close(&w.j);
    uint64_t applied;
    caseidx_t *idx = s_build(&applied);
    char *t = s_list(idx, "denied", 10);
    cr_assert(strstr(t, "payout-P-9"), "denied list: %s", t);
    free(t);
    t = s_list(idx, "executed", 10);
    cr_assert(!strstr(t, "payout-P-9"), "executed list: %s", t);
    free(t);
    caseidx_close(&idx);
}

/* s_step_detail - the detail of the step entry of payout-P-7's timeline */
static json_t *s_step_entry(caseidx_t *idx)
{
    char *text = caseidx_case_json(idx, "payout-P-7");
    cr_assert_not_null(text);
    json_t *c = json_loads(text, 0, NULL);
    free(text);
    size_t i;
    json_t *v, *found = NULL;
    json_array_foreach(json_object_get(c, "timeline"), i, v) if (strcmp(json_string_value(json_object_get(v, "type")),
                                                                        "step") == 0) found = json_incref(v);
    json_decref(c);
    cr_assert_not_null(found, "a step on the timeline");
    return found;
}

/* the index keeps each event's summary and place, not its body: the case
 * view reads bodies from the trail, live or archived; a record the trail
 * cannot give shows as unreadable, and the rest of the case still shows */
Test(caseidx, timeline_details_come_from_the_trail_live_or_archived)
{
    s_storm();
    uint64_t applied;
    caseidx_t *idx = s_build(&applied);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(s_db, &db), SQLITE_OK);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT * FROM events LIMIT 1", -1, &st, NULL), SQLITE_OK);
    for (int i = 0; i < sqlite3_column_count(st); i++)
        cr_assert_str_neq(sqlite3_column_name(st, i), "json", "no event JSON in the index");
    sqlite3_finalize(st);
    sqlite3_close(db);

    json_t *e = s_step_entry(idx);
    json_t *d = json_object_get(e, "detail");
    cr_assert_eq(json_integer_value(json_object_get(d, "http_status")), 200, "the body, read from the trail");
    cr_assert_str_eq(json_string_value(json_object_get(e, "summary")),
                     "step hold_payout done -> HTTP 200 after 1 attempt(s)");
    json_decref(e);
    caseidx_close(&idx);

    /* archived: the trail in small segments, all but the last moved */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s-wal %s-shm %s", s_dir, s_db, s_db, s_db);
    cr_assert_eq(system(cmd), 0);
    s_clock = 1795000000000;
    s_segment_bytes = 1024;
    s_storm();
    char err[512], archive[128];
    journal_opts_t o = {.sync = JOURNAL_SYNC_NONE, .segment_bytes = 1024};
    journal_t *j;
    idx = s_build(&applied);
    snprintf(archive, sizeof archive, "%s/archive", s_root);
    j = journal_open(s_dir, &o, err, sizeof err);
    uint64_t bytes, zbytes;
    int moved = 0;
    while (journal_archive(j, archive, UINT64_MAX, (int64_t) time(NULL) + 60, &bytes, &zbytes, err, sizeof err) == 1)
        moved++;
    journal_close(&j);
    cr_assert_gt(moved, 10, "the storm's segments archived, all but the last (%s)", err);
    e = s_step_entry(idx);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(e, "detail"), "http_status")), 200,
                 "read from the archive");
    json_decref(e);

    /* damaged: the archived copy no longer expands */
    snprintf(cmd, sizeof cmd,
             "for f in %s/*.seg.zst; do printf 'x' | dd of=$f bs=1 seek=60 conv=notrunc 2>/dev/null; done", archive);
    cr_assert_eq(system(cmd), 0);
    caseidx_close(&idx);
    idx = caseidx_open(s_db, s_dir, true, err, sizeof err);
    e = s_step_entry(idx);
    cr_assert(json_is_null(json_object_get(e, "detail")) && json_is_true(json_object_get(e, "detail_unreadable")));
    cr_assert_str_eq(json_string_value(json_object_get(e, "summary")),
                     "step hold_payout done -> HTTP 200 after 1 attempt(s)", "the summary still shows");
    json_decref(e);
    caseidx_close(&idx);
}

/* ------------------------------------------------------- finding a case */

/* s_verdict - validate's verdict (type) on a receipt about a case, with the
 * ids it names: pairs of key, value, NULL-ended */
static void s_verdict(trail_w_t *w, const char *id, const char *type, const char *case_id, const char *receipt, ...)
{
    event_body_t *b = event_body_new();
    event_body_str(b, "case_id", case_id);
    va_list ap;
    va_start(ap, receipt);
    for (const char *k; (k = va_arg(ap, const char *)) != NULL;)
        event_body_str(b, k, va_arg(ap, const char *));
    va_end(ap);
    s_store(w, id, type, case_id, "validate.0", receipt, b);
}

/* s_find_trail - a Stripe payout, a Stripe refund, a Standard Webhooks
 * refund, an Adyen refund with a ticket, each with its ids */
static void s_find_trail(void)
{
    char err[256];
    journal_opts_t o = {.sync = JOURNAL_SYNC_NONE};
    trail_w_t w = {0};
    w.j = journal_open(s_dir, &o, err, sizeof err);
    cr_assert_not_null(w.j, "%s", err);
    s_verdict(&w, "v-1", "validated", "payout-P-10492", "rcpt_aaaa01", "kind", "payout", "provider", "stripe", "ref",
              "P-10492", "payout_id", "P-10492", "object_id", "P-10492", "psp_event_id", "evt_1NabcDEF", "key",
              "evt_1NabcDEF", NULL);
    s_verdict(&w, "v-2", "duplicate", "payout-P-10492", "rcpt_aaaa02", "kind", "payout", "provider", "stripe",
              "payout_id", "P-10492", "psp_event_id", "evt_1NabcDEF", NULL);
    s_verdict(&w, "v-3", "validated", "payout-P-104", "rcpt_aaaa03", "kind", "payout", "provider", "stripe",
              "payout_id", "P-104", "psp_event_id", "evt_2Q", NULL);
    s_verdict(&w, "v-4", "validated", "refund-rf_123", "rcpt_bbbb01", "kind", "refund", "provider", "stripe",
              "refund_id", "rf_123", "payment_id", "pay_77", "payment_intent", "pi_3Kx", "psp_event_id", "evt_9R",
              NULL);
    s_verdict(&w, "v-5", "validated", "refund-rf_200", "rcpt_cccc01", "kind", "refund", "provider", "standard",
              "refund_id", "rf_200", "payment_id", "pay_200", "psp_event_id", "msg_2Kwebhook", NULL);
    s_verdict(&w, "v-6", "validated", "refund-ORD-9", "rcpt_dddd01", "kind", "refund", "provider", "adyen", "refund_id",
              "ORD-9", "payment_id", "pay_9", "object_id", "QFQTPCQ8HXSKGK82", "psp_event_id",
              "REFUND:QFQTPCQ8HXSKGK82:true", NULL);
    event_body_t *s = s_body1("step", "open_ticket");
    event_body_str(s, "status", "done");
    event_body_str(s, "ticket_key", "OPS-88");
    s_store(&w, "execute-6", "step", "refund-ORD-9", "execute.0", "dec_6", s);
    journal_close(&w.j);
}

/* s_find - the answer to ?q= as JSON (the caller's) */
static json_t *s_find(caseidx_t *idx, const char *q)
{
    caseidx_filter_t f = {.q = q};
    char *text = caseidx_find_json(idx, &f);
    json_t *o = json_loads(text, 0, NULL);
    free(text);
    cr_assert_not_null(o);
    return o;
}

/* s_expect_one - q finds exactly case_id, matched as field */
static void s_expect_one(caseidx_t *idx, const char *q, const char *case_id, const char *field, const char *match)
{
    json_t *o = s_find(idx, q);
    json_t *cases = json_object_get(o, "cases");
    cr_assert_eq(json_array_size(cases), 1, "%s finds one case, not %zu", q, json_array_size(cases));
    json_t *c = json_array_get(cases, 0);
    cr_expect_str_eq(json_string_value(json_object_get(c, "case_id")), case_id, "%s", q);
    json_t *m = json_array_get(json_object_get(c, "matched"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(m, "field")), field, "%s", q);
    cr_expect_str_eq(json_string_value(json_object_get(o, "match")), match, "%s", q);
    json_decref(o);
}

Test(caseidx, finds_a_case_by_each_kind_of_id)
{
    s_find_trail();
    uint64_t applied;
    caseidx_t *idx = s_build(&applied);
    s_expect_one(idx, "payout-P-10492", "payout-P-10492", "case_id", "exact");
    s_expect_one(idx, "P-10492", "payout-P-10492", "payout_id", "exact");
    s_expect_one(idx, "rf_123", "refund-rf_123", "refund_id", "exact");
    s_expect_one(idx, "pay_77", "refund-rf_123", "payment_id", "exact");
    s_expect_one(idx, "pi_3Kx", "refund-rf_123", "payment_id", "exact");
    s_expect_one(idx, "evt_9R", "refund-rf_123", "psp_event_id", "exact");
    s_expect_one(idx, "msg_2Kwebhook", "refund-rf_200", "webhook_id", "exact");
    s_expect_one(idx, "QFQTPCQ8HXSKGK82", "refund-ORD-9", "psp_reference", "exact");
    s_expect_one(idx, "REFUND:QFQTPCQ8HXSKGK82:true", "refund-ORD-9", "psp_event_id", "exact");
    s_expect_one(idx, "OPS-88", "refund-ORD-9", "ticket_key", "exact");
    s_expect_one(idx, "rcpt_bbbb01", "refund-rf_123", "receipt_id", "exact");
    s_expect_one(idx, "rcpt_aaaa02", "payout-P-10492", "receipt_id", "exact");
    caseidx_close(&idx);
}

Test(caseidx, whole_ids_first_then_prefixes_ignoring_ascii_case)
{
    s_find_trail();
    uint64_t applied;
    caseidx_t *idx = s_build(&applied);
    s_expect_one(idx, "P-104", "payout-P-104", "payout_id", "exact"); /* not P-10492 too */
    s_expect_one(idx, "ops-88", "refund-ORD-9", "ticket_key", "exact");
    s_expect_one(idx, "EVT_1NABCDEF", "payout-P-10492", "psp_event_id", "exact");
    s_expect_one(idx, "evt_1N", "payout-P-10492", "psp_event_id", "prefix");
    json_t *o = s_find(idx, "P-1049");
    cr_expect_str_eq(json_string_value(json_object_get(o, "match")), "prefix");
    json_decref(o);
    o = s_find(idx, "rcpt_");
    cr_expect_eq(json_array_size(json_object_get(o, "cases")), 5, "every case with a receipt");
    json_decref(o);
    o = s_find(idx, "P-1"); /* under CASEIDX_PREFIX_MIN: whole ids only */
    cr_expect_eq(json_array_size(json_object_get(o, "cases")), 0);
    cr_expect_str_eq(json_string_value(json_object_get(o, "match")), "none");
    json_decref(o);
    o = s_find(idx, "evt_nothing");
    cr_expect_eq(json_array_size(json_object_get(o, "cases")), 0);
    json_decref(o);
    caseidx_filter_t f = {.q = "rcpt_", .kind = "payout"}; /* with the other filters */
    char *text = caseidx_find_json(idx, &f);
    o = json_loads(text, 0, NULL);
    free(text);
    cr_expect_eq(json_array_size(json_object_get(o, "cases")), 2);
    json_decref(o);
    caseidx_close(&idx);
}

Test(caseidx, a_case_keeps_at_most_ids_max_ids_but_its_own_id_and_tickets)
{
    char err[256];
    journal_opts_t o = {.sync = JOURNAL_SYNC_NONE};
    trail_w_t w = {0};
    w.j = journal_open(s_dir, &o, err, sizeof err);
    cr_assert_not_null(w.j, "%s", err);
    char vid[32], evt[32], rid[32];
    for (int i = 0; i < 20; i++) { /* 20 distinct events about one payout */
        snprintf(vid, sizeof vid, "v-%d", i);
        snprintf(evt, sizeof evt, "evt_many_%02d", i);
        snprintf(rid, sizeof rid, "rcpt_many_%02d", i);
        s_verdict(&w, vid, i ? "duplicate" : "validated", "payout-P-5", rid, "payout_id", "P-5", "psp_event_id", evt,
                  NULL);
    }
    event_body_t *s = s_body1("step", "open_ticket");
    event_body_str(s, "status", "done");
    event_body_str(s, "ticket_key", "PAY-5");
    s_store(&w, "execute-5", "step", "payout-P-5", "execute.0", "dec_5", s);
    journal_close(&w.j);
    caseidx_t *idx = caseidx_open(s_db, s_dir, false, err, sizeof err);
    cr_assert_not_null(idx, "%s", err);
    caseidx_set_ids_max(idx, 8);
    uint64_t applied;
    cr_assert_eq(caseidx_sync(idx, s_dir, &applied, err, sizeof err), 0, "%s", err);
    cr_expect_eq(caseidx_ids_dropped(idx), 14, "8 kept: the case id, P-5 and 6 event ids");
    s_expect_one(idx, "evt_many_05", "payout-P-5", "psp_event_id", "exact");
    json_t *none = s_find(idx, "evt_many_06");
    cr_expect_eq(json_array_size(json_object_get(none, "cases")), 0, "past the bound");
    json_decref(none);
    s_expect_one(idx, "PAY-5", "payout-P-5", "ticket_key", "exact");
    s_expect_one(idx, "rcpt_many_19", "payout-P-5", "receipt_id", "exact"); /* receipts: the timeline's links */
    caseidx_close(&idx);
}

Test(caseidx, a_rebuilt_index_finds_the_same)
{
    s_find_trail();
    uint64_t applied;
    caseidx_t *idx = s_build(&applied);
    caseidx_close(&idx);
    cr_assert_eq(unlink(s_db), 0);
    idx = s_build(&applied);
    s_expect_one(idx, "OPS-88", "refund-ORD-9", "ticket_key", "exact");
    s_expect_one(idx, "msg_2Kwebhook", "refund-rf_200", "webhook_id", "exact");
    caseidx_close(&idx);
}

Test(caseidx, bad_queries_are_refused_with_why)
{
    char why[256], big[CASEIDX_QUERY_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_expect(caseidx_query_ok("evt_1N", why, sizeof why));
    cr_expect(caseidx_query_ok("payout P-1", why, sizeof why), "a space inside is an odd id, not a bad query");
    cr_expect_not(caseidx_query_ok("", why, sizeof why));
    cr_expect(strstr(why, "1..128 bytes") != NULL, "%s", why);
    cr_expect_not(caseidx_query_ok(big, why, sizeof why));
    cr_expect_not(caseidx_query_ok("evt\n1", why, sizeof why));
    cr_expect(strstr(why, "control characters") != NULL, "%s", why);
    cr_expect_not(caseidx_query_ok("evt\x7f", why, sizeof why));
    cr_expect_not(caseidx_query_ok(" P-1", why, sizeof why));
    cr_expect_not(caseidx_query_ok("P-1 ", why, sizeof why));
}

Test(caseidx, a_list_row_in_ops_review_carries_the_entry_that_put_it_there)
{
    char err[256];
    journal_opts_t o = {.sync = JOURNAL_SYNC_NONE};
    trail_w_t w = {0};
    w.j = journal_open(s_dir, &o, err, sizeof err);
    cr_assert_not_null(w.j, "%s", err);
    s_verdict(&w, "v-1", "validated", "payout-P-3", "rcpt_3", "kind", "payout", "payout_id", "P-3", NULL);
    event_body_t *r = s_body1("failed_step", "ledger_payout_reversal");
    event_body_str(r, "why", "step failed");
    event_body_str(r, "error", "HTTP 500 after 3 attempt(s)");
    s_store(&w, "execute-r", "review", "payout-P-3", "execute.0", "dec_3", r);
    event_body_t *s = s_body1("step", "teams_notice");
    event_body_str(s, "status", "done");
    s_store(&w, "execute-n", "step", "payout-P-3", "execute.0", "dec_3", s);
    s_verdict(&w, "v-2", "validated", "payout-P-4", "rcpt_4", "kind", "payout", "payout_id", "P-4", NULL);
    journal_close(&w.j);
    uint64_t applied;
    caseidx_t *idx = s_build(&applied);
    char *text = s_list(idx, NULL, 10);
    json_t *l = json_loads(text, 0, NULL);
    free(text);
    json_t *p4 = json_array_get(json_object_get(l, "cases"), 0), *p3 = json_array_get(json_object_get(l, "cases"), 1);
    cr_assert_str_eq(json_string_value(json_object_get(p3, "state")), "ops_review");
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(p3, "last"), "summary")),
                     "step teams_notice done");
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(p3, "review"), "summary")),
                     "to ops review: step ledger_payout_reversal failed: HTTP 500 after 3 attempt(s)");
    cr_expect_null(json_object_get(p4, "review"), "only a case in ops review");
    json_decref(l);
    caseidx_close(&idx);
}
