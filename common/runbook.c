/* runbook - the planner: a decided case -> the exact calls of CONTRACT.md §2,
 * in the order of the runbooks of §5 (see runbook.h).
 *
 * Input is approve's record of the decision (case_id, kind, ref, amount,
 * currency, tier, action, rule, reason, decisions, "recommendation": the
 * advice) with "facts": the triaged case, which carries what validate read
 * (payout_state, ledger_state, ...). Nothing is fetched here: a plan is a
 * pure function of (type, record, options), so planning the same case twice
 * gives the same steps, bodies and Idempotency-Keys ("<case_id>:<step>").
 *
 * SECURITY: the PSP's failure_message is untrusted free text. It is never
 * copied into a body; event_type and failure_code enter only as short
 * machine words. Every other text we pass on (approvers' comments, the AI's
 * advice) is cleaned of control characters, bounded, and withheld when it
 * quotes the failure message (a model may have been talked into echoing it).
 * Ids in paths are percent-encoded (RFC 3986 unreserved set); "." and ".."
 * are refused as ids.
 *
 * Missing data a step needs is an error naming it, never a guess: no
 * payout id, no beneficiary id, no ledger state to decide a ledger entry
 * from, no ticket system configured when a ticket is due.
 *
 * customer_facing: notify_teams only. The Teams notice states what was done,
 * so it must never go out after an earlier step failed (§5.3). block_comms
 * protects customers (it holds messages back) and is an ordinary write. The
 * failure plan's notice reports the failure itself: not customer-facing, it
 * must run after a failed step.
 *
 * Money is int64 minor units; amounts in texts are formatted with integer
 * arithmetic and the currency's ISO 4217 decimals.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "runbook.h"
#include "money.h"
#include "ticket.h"
#include "utf8.h"

#define RB_ID_MAX 128           /* ids the systems accept (payments, ledger: 128) */
#define RB_SUMMARY_MAX 160      /* ServiceNow short_description (Jira allows 255) */
#define RB_DESCRIPTION_MAX 4000 /* ticket descriptions and comments */
#define RB_PIECE_MAX 300        /* one passed-on text: a comment, an advice field */
#define RB_FACT_MAX 600         /* one card fact */
#define RB_DECISIONS_MAX 8      /* decisions listed in a ticket */
#define RB_CORRELATION_MAX 100  /* ServiceNow correlation_id */
#define RB_WITHHOLD_MIN 8       /* a failure message shorter than this is not searched for */

/* rb_ctx_t - what the planner read from one decision record */
typedef struct {
    event_type_t decision; /* EV_APPROVED | EV_DENIED */
    const json_t *body;    /* the approval record */
    const json_t *facts;   /* the triaged case */
    const json_t *advice;  /* the AI's advice (may be NULL) */
    const rb_opts_t *opts;
    char *err;
    size_t errlen;
    const char *case_id;
    const char *kind;        /* payout | refund | "" */
    const char *withhold;    /* the PSP's failure_message: never copied ("" if none) */
    json_int_t amount;       /* minor units, > 0 */
    char currency[4];        /* upper-case */
    char money[64];          /* "12,500.00 USD" */
    int tier;                /* 0 (policy) .. 3 */
    char url[RB_URL_MAX];    /* the case's approval page */
    char ref[RB_ID_MAX + 1]; /* payout or refund id */
    char beneficiary_id[RB_ID_MAX + 1];
    char event_type[40];      /* a machine word, or "" */
    char failure_code[40];    /* a machine word, or "" */
    char internal_status[24]; /* payments API status, a machine word, or "" */
    char title[200];          /* the card's title */
    char summary[RB_SUMMARY_MAX + 1];
    char what[400];               /* the case in one sentence, for the ticket */
    int ticket_level;             /* 1 Highest, 2 High, 3 Medium */
    char done[RB_MAX_STEPS][160]; /* what each planned step does, in words */
    json_t *owned[4];             /* state fields parsed from JSON text */
    const char *owned_key[4];
    size_t nowned;
} rb_ctx_t;

static const char *const s_step_names[] = {"hold_payout",
                                           "hold_beneficiary",
                                           "ledger_payout_reversal",
                                           "ledger_refund_succeeded",
                                           "ledger_refund_failed",
                                           "ledger_refund_reversal",
                                           "block_comms",
                                           "open_ticket",
                                           "ticket_comment",
                                           "notify_teams",
                                           "release_hold",
                                           NULL};
static const char *const s_systems[] = {"payments", "ledger", "jira", "servicenow", "teams", NULL};
static const char *const s_runbooks[] = {"payout_exception",
                                         "refund_post_succeeded",
                                         "refund_post_failed",
                                         "refund_failed_after_success",
                                         "ops_review_ticket",
                                         "denied",
                                         "none",
                                         NULL};

/* ------------------------------------------------------------ helpers */

/* s_clean - (below) a passed-on text made one bounded line of valid UTF-8 */
static void s_clean(char *dst, size_t dstlen, const char *src, size_t max, const char *withhold);

/* s_fail - write an error (one line of valid UTF-8: callers may pass it on) and return -1 */
__attribute__((format(printf, 3, 4))) static int s_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return -1;
    char *text = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    assert(n >= 0 && text);
    if (errlen > 4)
        s_clean(err, errlen, text, errlen - 1, NULL);
    else
        err[0] = '\0';
    free(text);
    return -1;
}

/* s_in - whether s is one of a NULL-terminated list */
static bool s_in(const char *s, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

/* s_str - obj.key as a string, or NULL */
static const char *s_str(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* s_utf8_char - the length of the valid UTF-8 character at p (as jansson
 * judges: no overlongs, no surrogates, at most U+10FFFF), 0 if invalid */
static size_t s_utf8_char(const unsigned char *p)
{
    if (p[0] < 0x80)
        return 1;
    size_t n = (p[0] & 0xE0) == 0xC0 ? 2 : (p[0] & 0xF0) == 0xE0 ? 3 : (p[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || p[0] == 0xC0 || p[0] == 0xC1 || p[0] > 0xF4)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) /* a NUL stops here too */
            return 0;
    if ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] >= 0xA0) || (p[0] == 0xF0 && p[1] < 0x90) ||
        (p[0] == 0xF4 && p[1] >= 0x90))
        return 0;
    return n;
}

/* s_clean - src as one line of valid UTF-8 of at most max bytes (and <
 * dstlen): control characters become spaces, invalid bytes '?', a cut ends
 * in "..."; a text that quotes the withheld failure message is replaced by
 * a fixed sentence */
static void s_clean(char *dst, size_t dstlen, const char *src, size_t max, const char *withhold)
{
    assert(dstlen > 4 && max > 3);
    if (max > dstlen - 1)
        max = dstlen - 1;
    if (!src)
        src = "";
    if (withhold && strlen(withhold) >= RB_WITHHOLD_MIN && strcasestr(src, withhold)) {
        utf8_fmt(dst, dstlen, "%s", "(withheld: it quotes the PSP's failure message)");
        return;
    }
    size_t len = strlen(src), o = 0;
    char *line = malloc(len + 1);
    assert(line);
    for (const unsigned char *p = (const unsigned char *) src; *p;) {
        size_t n = s_utf8_char(p);
        if (n == 0) {
            line[o++] = '?';
            p++;
        } else if (n == 1) {
            line[o++] = (*p < 0x20 || *p == 0x7f) ? ' ' : (char) *p;
            p++;
        } else {
            memcpy(line + o, p, n);
            o += n;
            p += n;
        }
    }
    line[o] = '\0';
    size_t keep = o <= max ? o : utf8_cut(line, o, max - 3);
    memcpy(dst, line, keep);
    if (keep < o) {
        memcpy(dst + keep, "...", 3);
        keep += 3;
    }
    dst[keep] = '\0';
    free(line);
}

/* s_word - src when it is a short machine word ([a-z0-9_.-], as PSP codes
 * and event types are), else "": such fields never carry free text onward */
static void s_word(char *dst, size_t dstlen, const char *src)
{
    dst[0] = '\0';
    if (!src || !*src || strlen(src) >= dstlen)
        return;
    for (const char *p = src; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-'))
            return;
    snprintf(dst, dstlen, "%s", src);
}

/* s_pct - src percent-encoded outside RFC 3986's unreserved set; -1 if it does not fit */
static int s_pct(char *dst, size_t dstlen, const char *src)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *) src; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                     *p == '.' || *p == '_' || *p == '~';
        if (o + (plain ? 1 : 3) >= dstlen)
            return -1;
        if (plain) {
            dst[o++] = (char) *p;
        } else {
            dst[o++] = '%';
            dst[o++] = hex[*p >> 4];
            dst[o++] = hex[*p & 15];
        }
    }
    dst[o] = '\0';
    return 0;
}

/* s_dump - a body as compact JSON (steals j) */
static char *s_dump(json_t *j)
{
    assert(j); /* every text we pack is valid UTF-8 by construction */
    char *text = json_dumps(j, JSON_COMPACT);
    assert(text);
    json_decref(j);
    return text;
}

/* ------------------------------------------------------------ bounded text */

/* rb_buf_t - a bounded text under construction */
typedef struct {
    char *p;
    size_t cap; /* bytes including the terminator */
    size_t len;
} rb_buf_t;

/* s_put - append formatted text; what does not fit is cut on a character boundary */
__attribute__((format(printf, 2, 3))) static void s_put(rb_buf_t *b, const char *fmt, ...)
{
    char *text = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    assert(n >= 0 && text);
    assert(b->len < b->cap);
    size_t keep = utf8_cut(text, (size_t) n, b->cap - 1 - b->len);
    memcpy(b->p + b->len, text, keep);
    b->len += keep;
    b->p[b->len] = '\0';
    free(text);
}

/* ------------------------------------------------------------ plan building */

/* s_note - record a planned-but-skipped step and why */
__attribute__((format(printf, 2, 3))) static void s_note(rb_plan_t *out, const char *fmt, ...)
{
    assert(out->nnotes < RB_MAX_STEPS);
    va_list ap;
    va_start(ap, fmt);
    utf8_vfmt(out->notes[out->nnotes], sizeof out->notes[0], fmt, ap);
    va_end(ap);
    out->nnotes++;
}

/* s_add - append a step; body (stolen) may be NULL for a body s_finish builds */
static rb_step_t *s_add(rb_plan_t *out, const char *key_suffix, const char *name, const char *system, const char *path,
                        json_t *body)
{
    assert(out->n < RB_MAX_STEPS);
    assert(s_in(name, s_step_names) && s_in(system, s_systems));
    rb_step_t *s = &out->steps[out->n++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->system, sizeof s->system, "%s", system);
    snprintf(s->method, sizeof s->method, "POST");
    assert(strlen(path) < sizeof s->path);
    snprintf(s->path, sizeof s->path, "%s", path);
    size_t cl = strlen(out->case_id), kl = strlen(key_suffix);
    assert(cl > 0 && cl + 1 + kl < sizeof s->idem_key); /* case_id < 160, names < 40 */
    memcpy(s->idem_key, out->case_id, cl);
    s->idem_key[cl] = ':';
    memcpy(s->idem_key + cl + 1, key_suffix, kl + 1);
    s->customer_facing = strcmp(name, "notify_teams") == 0 && strcmp(key_suffix, "notify_teams") == 0;
    s->body = body ? s_dump(body) : NULL;
    return s;
}

/* s_id_path - prefix + the percent-encoded id + suffix; -1 + err if too long */
static int s_id_path(rb_ctx_t *c, char path[300], const char *prefix, const char *id, const char *suffix,
                     const char *what)
{
    char enc[300];
    if (s_pct(enc, sizeof enc, id) != 0 || strlen(prefix) + strlen(enc) + strlen(suffix) >= 300)
        return s_fail(c->err, c->errlen, "%s is too long for a request path", what);
    snprintf(path, 300, "%s%s%s", prefix, enc, suffix);
    return 0;
}

/* s_id - a required id: a non-empty string of at most RB_ID_MAX bytes, no
 * control characters, not "." or ".." (a path segment must name a thing) */
static int s_id(rb_ctx_t *c, const json_t *obj, const char *key, const char *where, char *dst, size_t dstlen)
{
    const char *v = s_str(obj, key);
    if (!v || !*v)
        return s_fail(c->err, c->errlen, "%s.%s is missing: the runbook needs it", where, key);
    if (strlen(v) > RB_ID_MAX || strlen(v) >= dstlen)
        return s_fail(c->err, c->errlen, "%s.%s is longer than %d bytes", where, key, RB_ID_MAX);
    if (strcmp(v, ".") == 0 || strcmp(v, "..") == 0)
        return s_fail(c->err, c->errlen, "%s.%s is not an id", where, key);
    for (const unsigned char *p = (const unsigned char *) v; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return s_fail(c->err, c->errlen, "%s.%s holds control characters", where, key);
    snprintf(dst, dstlen, "%s", v);
    return 0;
}

/* s_state - facts.<key> as an object (validate stores an answer holding reals
 * as its JSON text: parsed here), or NULL */
static const json_t *s_state(rb_ctx_t *c, const char *key)
{
    json_t *v = json_object_get(c->facts, key);
    if (json_is_object(v))
        return v;
    for (size_t i = 0; i < c->nowned; i++)
        if (strcmp(c->owned_key[i], key) == 0)
            return c->owned[i];
    if (!json_is_string(v) || c->nowned == sizeof c->owned / sizeof c->owned[0])
        return NULL;
    json_t *parsed = json_loads(json_string_value(v), JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(parsed)) {
        json_decref(parsed);
        return NULL;
    }
    c->owned_key[c->nowned] = key;
    c->owned[c->nowned++] = parsed;
    return parsed;
}

/* s_ledger_count - entries of a type for ref in facts.ledger_state; -1 + err
 * when the ledger state is missing (a ledger step is never decided blind) */
static int s_ledger_count(rb_ctx_t *c, const char *type, const char *ref)
{
    const json_t *ls = s_state(c, "ledger_state");
    json_t *entries = json_object_get(ls, "entries");
    if (!json_is_array(entries))
        return s_fail(c->err, c->errlen,
                      "facts.ledger_state.entries is missing: cannot tell which entries the ledger holds for %s", ref);
    int n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e)
    {
        const char *t = s_str(e, "type"), *r = s_str(e, "ref");
        n += t && r && strcmp(t, type) == 0 && strcmp(r, ref) == 0;
    }
    return n;
}

/* s_text - a passed-on text, cleaned and bounded (withheld if it quotes the failure message) */
static void s_text(const rb_ctx_t *c, char *dst, size_t dstlen, const char *src, size_t max)
{
    s_clean(dst, dstlen, src, max, c->withhold);
}

/* s_advice_line - "AI advice (advisory): <recommendation> — <summary>" */
static void s_advice_line(const rb_ctx_t *c, char *dst, size_t dstlen)
{
    char rec[RB_PIECE_MAX + 1], sum[RB_PIECE_MAX + 1];
    s_text(c, rec, sizeof rec, s_str(c->advice, "recommendation"), RB_PIECE_MAX);
    s_text(c, sum, sizeof sum, s_str(c->advice, "summary"), RB_PIECE_MAX);
    if (!rec[0] && !sum[0])
        snprintf(dst, dstlen, "AI advice (advisory): none recorded");
    else
        snprintf(dst, dstlen, "AI advice (advisory): %s \xe2\x80\x94 %s", rec[0] ? rec : "(no recommendation)",
                 sum[0] ? sum : "(no summary)");
}

/* s_decisions - the decisions, one line each: who, role, what, when, comment */
static void s_decisions(const rb_ctx_t *c, rb_buf_t *b)
{
    json_t *ds = json_object_get(c->body, "decisions");
    if (json_array_size(ds) == 0) {
        const char *by = s_str(c->body, "decided_by");
        s_put(b, "Decisions: %s\n",
              by && strcmp(by, "policy") == 0 ? "approved by policy (no person needed)" : "none recorded");
        return;
    }
    s_put(b, "Decisions:\n");
    size_t i;
    json_t *d;
    json_array_foreach(ds, i, d)
    {
        if (i == RB_DECISIONS_MAX) {
            s_put(b, "- and %zu more (see the case page)\n", json_array_size(ds) - i);
            break;
        }
        char who[80], role[48], what[16], at[40], comment[RB_PIECE_MAX + 1];
        s_text(c, who, sizeof who, s_str(d, "approver"), 64);
        s_text(c, role, sizeof role, s_str(d, "role"), 40);
        s_text(c, what, sizeof what, s_str(d, "decision"), 10);
        s_text(c, at, sizeof at, s_str(d, "at"), 32);
        s_text(c, comment, sizeof comment, s_str(d, "comment"), 200);
        s_put(b, "- %s (%s): %s at %s%s%s%s\n", who, role, what, at, comment[0] ? ": \"" : "", comment,
              comment[0] ? "\"" : "");
    }
}

/* s_done_list - the plan's steps in words, joined by "; " (bounded) */
static void s_done_list(const rb_ctx_t *c, const rb_plan_t *out, bool with_notify, char *dst, size_t dstlen)
{
    rb_buf_t b = {dst, dstlen, 0};
    dst[0] = '\0';
    for (size_t i = 0; i < out->n; i++) {
        if (!with_notify && strcmp(out->steps[i].name, "notify_teams") == 0)
            continue;
        s_put(&b, "%s%s", b.len ? "; " : "", c->done[i]);
    }
    if (!b.len)
        s_put(&b, "nothing was changed");
}

/* s_notes_list - the notes joined by "; " (bounded), "" if none */
static void s_notes_list(const rb_plan_t *out, char *dst, size_t dstlen)
{
    rb_buf_t b = {dst, dstlen, 0};
    dst[0] = '\0';
    for (size_t i = 0; i < out->nnotes; i++)
        s_put(&b, "%s%s", i ? "; " : "", out->notes[i]);
}

/* ------------------------------------------------------------ tickets and cards */

/* s_ticket_body - the ticket in the configured system's shape (CONTRACT.md
 * §2.4), carrying what its step's lookup searches for (ticket.h): the
 * labels payguard-<case id> and payguard-<step> (Jira), correlation_id and
 * correlation_display (ServiceNow). step: "open_ticket" or "failure_ticket" */
static json_t *s_ticket_body(const rb_opts_t *o, const char *runbook, const char *label, int level, const char *summary,
                             const char *description, const char *case_id, const char *step)
{
    static const char *const priority[] = {"", "Highest", "High", "Medium"};
    static const char *const urgency[] = {"", "1", "2", "3"};
    char case_label[TICKET_LABEL_MAX], tag[64];
    assert(level >= 1 && level <= 3);
    int lrc = ticket_case_label(case_id, case_label, sizeof case_label);
    int trc = ticket_step_tag(step, tag, sizeof tag);
    assert(lrc == 0 && trc == 0); /* s_ticket_lookup checked both */
    if (strcmp(o->ticket_system, "servicenow") == 0)
        return json_pack("{s:s, s:s, s:s, s:s, s:s}", "short_description", summary, "description", description,
                         "urgency", urgency[level], "correlation_id", case_id, "correlation_display", tag);
    return json_pack("{s:{s:{s:s}, s:s, s:s, s:{s:s}, s:{s:s}, s:[s, s, s, s, s]}}", "fields", "project", "key",
                     o->jira_project, "summary", summary, "description", description, "issuetype", "name", "Task",
                     "priority", "name", priority[level], "labels", "payguard", runbook, label, case_label, tag);
}

/* s_ticket_lookup - the search a ticket step makes before its create (ticket.h); -1 + err */
static int s_ticket_lookup(const rb_opts_t *o, const char *case_id, const char *step, char lookup[300], char *err,
                           size_t errlen)
{
    char why[200];
    char tag[64];
    if (ticket_step_tag(step, tag, sizeof tag) != 0 ||
        ticket_search_path(o->ticket_system, case_id, lookup, 300, why, sizeof why) != 0)
        return s_fail(err, errlen, "case %s: no ticket can be searched for: %s", case_id, why);
    return 0;
}

/* s_ticket_ok - the options name a ticket system we can speak; -1 + err */
static int s_ticket_ok(const rb_opts_t *o, const char *case_id, char *err, size_t errlen)
{
    if (!o->ticket_system || !*o->ticket_system)
        return s_fail(err, errlen,
                      "a ticket is due but no ticket system is configured (outside/jira or "
                      "outside/servicenow)");
    if (strcmp(o->ticket_system, "servicenow") == 0) {
        if (strlen(case_id) > RB_CORRELATION_MAX)
            return s_fail(err, errlen, "case id %s is longer than ServiceNow's correlation_id (%d)", case_id,
                          RB_CORRELATION_MAX);
        return 0;
    }
    if (strcmp(o->ticket_system, "jira") != 0)
        return s_fail(err, errlen, "unknown ticket system \"%.32s\" (jira or servicenow)", o->ticket_system);
    const char *k = o->jira_project;
    bool ok = k && k[0] >= 'A' && k[0] <= 'Z' && strlen(k) <= 32;
    for (const char *p = k; ok && *p; p++)
        ok = (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_';
    if (!ok)
        return s_fail(err, errlen, "execute/jira_project \"%.40s\" is not a Jira project key (A-Z, then A-Z 0-9 _)",
                      k ? k : "");
    return 0;
}

/* s_ticket_path - where a new ticket is posted */
static const char *s_ticket_path(const rb_opts_t *o)
{
    return strcmp(o->ticket_system, "servicenow") == 0 ? "/api/now/table/incident" : "/rest/api/2/issue";
}

/* s_ticket_system - the system name of a ticket step */
static const char *s_ticket_system(const rb_opts_t *o)
{
    return strcmp(o->ticket_system, "servicenow") == 0 ? "servicenow" : "jira";
}

/* runbook_case_url - see runbook.h */
int runbook_case_url(const rb_opts_t *o, const char *case_id, char url[RB_URL_MAX], char *err, size_t errlen)
{
    const char *base = o->public_url;
    if (!base || !*base)
        return s_fail(err, errlen, "approve/public_url is not set: tickets and cards link to the case");
    size_t blen = strlen(base);
    for (const unsigned char *p = (const unsigned char *) base; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return s_fail(err, errlen, "approve/public_url holds a character a URL cannot");
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    char enc[RB_URL_MAX];
    if (s_pct(enc, sizeof enc, case_id) != 0 ||
        snprintf(url, RB_URL_MAX, "%.*s/case/%s", (int) blen, base, enc) >= RB_URL_MAX)
        return s_fail(err, errlen, "approve/public_url plus the case id is longer than %d bytes", RB_URL_MAX - 1);
    return 0;
}

/* s_card - a Teams message with one Adaptive Card 1.4 (CONTRACT.md §2.5):
 * title, facts (steals facts), the advice line, a link to the case */
static json_t *s_card(const char *title, json_t *facts, const char *advice_line, const char *url)
{
    json_t *card = json_pack("{s:s, s:s, s:s, s:[{s:s, s:s, s:s, s:s, s:b}, {s:s, s:o}, {s:s, s:s, s:b}], "
                             "s:[{s:s, s:s, s:s}]}",
                             "type", "AdaptiveCard", "version", "1.4", "$schema",
                             "http://adaptivecards.io/schemas/adaptive-card.json", "body", "type", "TextBlock", "size",
                             "Medium", "weight", "Bolder", "text", title, "wrap", 1, "type", "FactSet", "facts", facts,
                             "type", "TextBlock", "text", advice_line, "wrap", 1, "actions", "type", "Action.OpenUrl",
                             "title", "Open the case", "url", url);
    assert(card);
    return json_pack("{s:s, s:[{s:s, s:o}]}", "type", "message", "attachments", "contentType",
                     "application/vnd.microsoft.card.adaptive", "content", card);
}

/* s_fact - append {"title","value"} to a FactSet's facts */
static void s_fact(json_t *facts, const char *title, const char *value)
{
    json_t *f = json_pack("{s:s, s:s}", "title", title, "value", value);
    assert(f);
    json_array_append_new(facts, f);
}

/* s_tier_text - the tier as a card shows it */
static void s_tier_text(int tier, char *dst, size_t dstlen)
{
    if (tier == 0)
        snprintf(dst, dstlen, "auto-approved by policy");
    else
        snprintf(dst, dstlen, "%d", tier);
}

/* s_denial_line - "denied by bob (compliance)": who denied, from the decisions */
static void s_denial_line(const rb_ctx_t *c, char *dst, size_t dstlen)
{
    rb_buf_t b = {dst, dstlen, 0};
    dst[0] = '\0';
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(c->body, "decisions"), i, d)
    {
        const char *what = s_str(d, "decision");
        if (!what || strncmp(what, "den", 3) != 0)
            continue;
        char who[80], role[48];
        s_text(c, who, sizeof who, s_str(d, "approver"), 64);
        s_text(c, role, sizeof role, s_str(d, "role"), 40);
        s_put(&b, "%s%s (%s)", b.len ? ", " : "denied by ", who, role);
    }
    if (!b.len)
        s_put(&b, "denied");
}

/* s_case_card - the notify_teams body of a normal plan: what was done */
static json_t *s_case_card(const rb_ctx_t *c, const rb_plan_t *out)
{
    char tier[32], done[RB_FACT_MAX + 1], notes[RB_FACT_MAX + 1], advice[2 * RB_PIECE_MAX + 64];
    s_tier_text(c->tier, tier, sizeof tier);
    s_done_list(c, out, false, done, sizeof done);
    s_notes_list(out, notes, sizeof notes);
    s_advice_line(c, advice, sizeof advice);
    json_t *facts = json_array();
    s_fact(facts, "Case", c->case_id);
    s_fact(facts, "Amount", c->money);
    s_fact(facts, "Tier", tier);
    s_fact(facts, "Runbook", out->runbook);
    if (strcmp(out->runbook, "denied") == 0) {
        char denial[RB_FACT_MAX + 1];
        s_denial_line(c, denial, sizeof denial);
        s_fact(facts, "Decision", denial);
    }
    s_fact(facts, "Done", done);
    if (notes[0])
        s_fact(facts, "Not done", notes);
    return s_card(c->title, facts, advice, c->url);
}

/* s_case_description - the ticket's description: the case, the link, the
 * decisions, this runbook's steps, the advice marked advisory */
static void s_case_description(const rb_ctx_t *c, const rb_plan_t *out, char *dst, size_t dstlen)
{
    rb_buf_t b = {dst, dstlen, 0};
    char reason[RB_PIECE_MAX + 1], rule[80], advice[2 * RB_PIECE_MAX + 64], cls[48], src[24];
    dst[0] = '\0';
    s_put(&b, "payguard case %s: %s\n", c->case_id, c->what);
    s_put(&b, "Case page: %s\n", c->url);
    s_put(&b, "Amount: %s (%" JSON_INTEGER_FORMAT " minor units)\n", c->money, c->amount);
    s_text(c, rule, sizeof rule, s_str(c->body, "rule"), 64);
    s_text(c, reason, sizeof reason, s_str(c->body, "reason"), RB_PIECE_MAX);
    if (c->tier)
        s_put(&b, "Tier %d; rule %s%s%s\n", c->tier, rule[0] ? rule : "(none)", reason[0] ? ": " : "", reason);
    else
        s_put(&b, "Approved by policy; rule %s%s%s\n", rule[0] ? rule : "(none)", reason[0] ? ": " : "", reason);
    s_decisions(c, &b);
    /* the ticket runs only after the steps before it succeeded */
    s_put(&b, "Runbook %s, in order:\n", out->runbook);
    bool after = false;
    for (size_t i = 0; i < out->n; i++) {
        bool ticket = strcmp(out->steps[i].name, "open_ticket") == 0;
        s_put(&b, "%zu. %s%s\n", i + 1, ticket ? "this ticket" : c->done[i],
              ticket  ? ""
              : after ? " (to follow)"
                      : " (done)");
        after |= ticket;
    }
    for (size_t i = 0; i < out->nnotes; i++)
        s_put(&b, "Not done: %s\n", out->notes[i]);
    s_advice_line(c, advice, sizeof advice);
    s_word(cls, sizeof cls, s_str(c->advice, "classification"));
    s_word(src, sizeof src, s_str(c->advice, "source"));
    json_t *conf = json_object_get(c->advice, "confidence_permille");
    s_put(&b, "%s", advice);
    if (cls[0] || src[0] || json_is_integer(conf)) {
        s_put(&b, " [classification %s, confidence %" JSON_INTEGER_FORMAT "/1000, source %s]", cls[0] ? cls : "-",
              json_is_integer(conf) ? json_integer_value(conf) : 0, src[0] ? src : "-");
    }
    s_put(&b, "\nThe advice is advisory only: people and policy decided this case.\n");
}

/* s_finish - build the bodies that describe the whole plan (ticket, card) */
static void s_finish(rb_ctx_t *c, rb_plan_t *out)
{
    for (size_t i = 0; i < out->n; i++) {
        rb_step_t *s = &out->steps[i];
        if (s->body)
            continue;
        if (strcmp(s->name, "open_ticket") == 0) {
            char description[RB_DESCRIPTION_MAX + 1], label[16];
            s_case_description(c, out, description, sizeof description);
            snprintf(label, sizeof label, "tier-%d", c->tier);
            s->body = s_dump(s_ticket_body(c->opts, out->runbook, label, c->ticket_level, c->summary, description,
                                           c->case_id, "open_ticket"));
        } else {
            assert(strcmp(s->name, "notify_teams") == 0);
            s->body = s_dump(s_case_card(c, out));
        }
    }
}

/* ------------------------------------------------------------ steps */

/* s_ticket - plan open_ticket at a level (1 Highest .. 3 Medium); body at s_finish */
static int s_ticket(rb_ctx_t *c, rb_plan_t *out, int level)
{
    if (s_ticket_ok(c->opts, c->case_id, c->err, c->errlen) != 0)
        return -1;
    static const char *const words[] = {"", "Highest", "High", "Medium"};
    c->ticket_level = level;
    utf8_fmt(c->done[out->n], sizeof c->done[0], "a %s ticket opened (%s)", words[level],
             strcmp(c->opts->ticket_system, "servicenow") == 0 ? "ServiceNow" : "Jira");
    char lookup[300];
    if (s_ticket_lookup(c->opts, c->case_id, "open_ticket", lookup, c->err, c->errlen) != 0)
        return -1;
    s_add(out, "open_ticket", "open_ticket", s_ticket_system(c->opts), s_ticket_path(c->opts), NULL);
    return 0;
}

/* s_notify - plan notify_teams (the base URL is the Workflows URL itself); body at s_finish */
static void s_notify(rb_ctx_t *c, rb_plan_t *out)
{
    utf8_fmt(c->done[out->n], sizeof c->done[0], "a Teams notice of what was done");
    s_add(out, "notify_teams", "notify_teams", "teams", "", NULL);
}

/* s_ledger - plan a ledger entry for the case's amount and currency */
static void s_ledger(rb_ctx_t *c, rb_plan_t *out, const char *name, const char *type, const char *memo)
{
    char text[200];
    utf8_fmt(text, sizeof text, "payguard case %s: %s", c->case_id, memo);
    utf8_fmt(c->done[out->n], sizeof c->done[0], "ledger %s of %s posted for %s", type, c->money, c->ref);
    s_add(out, name, name, "ledger", "/entries",
          json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "type", type, "ref", c->ref, "amount", c->amount, "currency",
                    c->currency, "case_id", c->case_id, "memo", text));
}

/* s_payout_exception - CONTRACT.md §5.1 once approved */
static int s_payout_exception(rb_ctx_t *c, rb_plan_t *out)
{
    if (strcmp(c->kind, "payout") != 0)
        return s_fail(c->err, c->errlen, "action payout_exception on a case of kind \"%s\"", c->kind);
    if (c->tier < 1)
        return s_fail(c->err, c->errlen, "a payout exception needs its tier (1..3) for the ticket's priority");
    if (s_id(c, c->facts, "payout_id", "facts", c->ref, sizeof c->ref) != 0)
        return -1;
    const json_t *ps = s_state(c, "payout_state");
    if (!ps)
        return s_fail(c->err, c->errlen, "facts.payout_state is missing: the beneficiary to hold is unknown");
    if (s_id(c, ps, "beneficiary_id", "facts.payout_state", c->beneficiary_id, sizeof c->beneficiary_id) != 0)
        return -1;
    const char *psid = s_str(ps, "id");
    if (psid && strcmp(psid, c->ref) != 0)
        return s_fail(c->err, c->errlen, "facts.payout_state is about another payout than %s", c->ref);
    s_word(c->internal_status, sizeof c->internal_status, s_str(ps, "status"));
    int paid = s_ledger_count(c, "payout_paid", c->ref);
    int reversed = paid < 0 ? -1 : s_ledger_count(c, "payout_reversal", c->ref);
    if (reversed < 0)
        return -1;

    char why[160], reason[300], path[300];
    utf8_fmt(why, sizeof why, "%s %s%s: %s", c->event_type[0] ? c->event_type : "payout event",
             strcmp(c->internal_status, "paid") == 0 ? "after " : "while internally ",
             c->internal_status[0] ? c->internal_status : "unknown",
             c->failure_code[0] ? c->failure_code : "no failure code");
    utf8_fmt(c->what, sizeof c->what, "payout %s, %s", c->ref, why);
    utf8_fmt(c->summary, sizeof c->summary, "payguard: payout exception %s, %s: %s", c->ref, c->money,
             c->failure_code[0] ? c->failure_code : "no failure code");
    utf8_fmt(c->title, sizeof c->title, "payguard: payout exception handled: %s", c->ref);

    utf8_fmt(reason, sizeof reason, "%s (payguard case %s)", why, c->case_id);
    if (s_id_path(c, path, "/payouts/", c->ref, "/hold", "the payout id") != 0)
        return -1;
    utf8_fmt(c->done[out->n], sizeof c->done[0], "payout %s put on hold", c->ref);
    s_add(out, "hold_payout", "hold_payout", "payments", path,
          json_pack("{s:s, s:s}", "case_id", c->case_id, "reason", reason));

    utf8_fmt(reason, sizeof reason, "payout %s to this beneficiary: %s (payguard case %s)", c->ref, why, c->case_id);
    if (s_id_path(c, path, "/beneficiaries/", c->beneficiary_id, "/hold", "the beneficiary id") != 0)
        return -1;
    utf8_fmt(c->done[out->n], sizeof c->done[0], "beneficiary %s put on hold", c->beneficiary_id);
    s_add(out, "hold_beneficiary", "hold_beneficiary", "payments", path,
          json_pack("{s:s, s:s}", "case_id", c->case_id, "reason", reason));

    if (paid > 0 && reversed == 0)
        s_ledger(c, out, "ledger_payout_reversal", "payout_reversal",
                 "reverses the payout the PSP reports failed after it was paid (approved)");
    else if (reversed > 0)
        s_note(out, "no ledger_payout_reversal: the ledger already holds a payout_reversal for %s", c->ref);
    else
        s_note(out, "no ledger_payout_reversal: the ledger holds no payout_paid for %s", c->ref);

    if (s_ticket(c, out, 4 - c->tier) != 0)
        return -1;
    s_notify(c, out);
    return 0;
}

/* s_refund_id - the refund's id from the facts (the record's ref must agree) */
static int s_refund_id(rb_ctx_t *c, const char *action)
{
    if (strcmp(c->kind, "refund") != 0)
        return s_fail(c->err, c->errlen, "action %s on a case of kind \"%s\"", action, c->kind);
    if (s_id(c, c->facts, "refund_id", "facts", c->ref, sizeof c->ref) != 0)
        return -1;
    const char *ref = s_str(c->body, "ref");
    if (ref && *ref && strcmp(ref, c->ref) != 0)
        return s_fail(c->err, c->errlen, "the record's ref and facts.refund_id differ");
    return 0;
}

/* s_refund_post - refund_post_succeeded / refund_post_failed (§5.2): the
 * final ledger entry the ledger lacks (no money moves), then the notice */
static int s_refund_post(rb_ctx_t *c, rb_plan_t *out, bool succeeded)
{
    const char *type = succeeded ? "refund_succeeded" : "refund_failed";
    if (s_refund_id(c, out->runbook) != 0)
        return -1;
    int have = s_ledger_count(c, type, c->ref);
    if (have < 0)
        return -1;
    utf8_fmt(c->title, sizeof c->title, "payguard: ledger corrected: refund %s %s", c->ref,
             succeeded ? "succeeded" : "failed");
    if (have > 0)
        s_note(out, "no ledger_%s: the ledger already holds a %s for %s", type, type, c->ref);
    else
        s_ledger(c, out, succeeded ? "ledger_refund_succeeded" : "ledger_refund_failed", type,
                 succeeded ? "the PSP reports the refund succeeded; ledger correction, no money moves"
                           : "the PSP reports the refund failed; ledger correction, no money moves");
    s_notify(c, out);
    return 0;
}

/* s_refund_failed_after_success - §5.2: block the customer's "refund
 * complete" messages, open an exception ticket, reverse the ledger's
 * refund_succeeded (a human approved), notify */
static int s_refund_failed_after_success(rb_ctx_t *c, rb_plan_t *out)
{
    if (s_refund_id(c, out->runbook) != 0)
        return -1;
    int succeeded = s_ledger_count(c, "refund_succeeded", c->ref);
    int reversed = succeeded < 0 ? -1 : s_ledger_count(c, "refund_reversal", c->ref);
    if (reversed < 0)
        return -1;
    utf8_fmt(c->what, sizeof c->what, "refund %s: the PSP reports it failed after the ledger recorded it succeeded",
             c->ref);
    utf8_fmt(c->summary, sizeof c->summary, "payguard: refund %s failed after success, %s", c->ref, c->money);
    utf8_fmt(c->title, sizeof c->title, "payguard: refund failed after success: %s", c->ref);

    char reason[300];
    utf8_fmt(reason, sizeof reason,
             "the PSP reports refund %s failed after the ledger recorded it succeeded: hold \"refund complete\" "
             "messages (payguard case %s)",
             c->ref, c->case_id);
    utf8_fmt(c->done[out->n], sizeof c->done[0], "customer \"refund complete\" messages for %s blocked", c->ref);
    s_add(out, "block_comms", "block_comms", "payments", "/comms/blocks",
          json_pack("{s:s, s:s, s:s}", "ref", c->ref, "case_id", c->case_id, "reason", reason));
    if (s_ticket(c, out, 2) != 0)
        return -1;
    if (succeeded > 0 && reversed == 0)
        s_ledger(c, out, "ledger_refund_reversal", "refund_reversal",
                 "reverses the refund_succeeded the PSP contradicts (the refund failed; approved)");
    else if (reversed > 0)
        s_note(out, "no ledger_refund_reversal: the ledger already holds a refund_reversal for %s", c->ref);
    else
        s_note(out, "no ledger_refund_reversal: the ledger holds no refund_succeeded for %s", c->ref);
    s_notify(c, out);
    return 0;
}

/* s_ops_review - a Medium ticket for people to look at the case, and the notice */
static int s_ops_review(rb_ctx_t *c, rb_plan_t *out)
{
    if (s_id(c, c->body, "ref", "the record", c->ref, sizeof c->ref) != 0)
        return -1;
    char status[24];
    const json_t *psp = s_state(c, "psp_state");
    s_word(status, sizeof status, psp ? s_str(psp, "status") : s_str(c->facts, "status"));
    const char *kind = c->kind[0] ? c->kind : "case";
    utf8_fmt(c->what, sizeof c->what, "%s %s needs an ops review (the PSP's status: %s)", kind, c->ref,
             status[0] ? status : "unknown");
    utf8_fmt(c->summary, sizeof c->summary, "payguard: ops review of %s %s, %s", kind, c->ref, c->money);
    utf8_fmt(c->title, sizeof c->title, "payguard: ops review opened: %s %s", kind, c->ref);
    if (s_ticket(c, out, 3) != 0)
        return -1;
    s_notify(c, out);
    return 0;
}

/* s_denied - §5.1: no write but a comment on the case's ticket (Jira; when
 * it has one) and the notice of the denial */
static int s_denied(rb_ctx_t *c, rb_plan_t *out)
{
    utf8_fmt(c->title, sizeof c->title, "payguard: case %s denied; nothing was changed", c->case_id);
    json_t *tk = json_object_get(c->body, "ticket_key");
    if (tk) {
        const char *key = json_string_value(tk);
        if (!key || !*key || strlen(key) > 64)
            return s_fail(c->err, c->errlen, "ticket_key is not a ticket key");
        const char *sys = c->opts->ticket_system;
        if (!sys || (strcmp(sys, "jira") != 0 && strcmp(sys, "servicenow") != 0))
            return s_fail(c->err, c->errlen,
                          "the case has ticket %s but no ticket system is configured (outside/jira "
                          "or outside/servicenow)",
                          key);
        if (strcmp(sys, "servicenow") == 0) {
            s_note(out, "no ticket_comment on %s: CONTRACT.md §2.4 has no ServiceNow comment call", key);
        } else {
            char path[300], denial[RB_PIECE_MAX + 1], text[RB_DESCRIPTION_MAX + 1], marker[TICKET_MARKER_MAX];
            if (s_id_path(c, path, "/rest/api/2/issue/", key, "/comment", "ticket_key") != 0)
                return -1;
            if (ticket_marker(c->case_id, "ticket_comment", marker, sizeof marker) != 0)
                return s_fail(c->err, c->errlen, "case %s cannot be named in a comment marker", c->case_id);
            s_denial_line(c, denial, sizeof denial);
            rb_buf_t b = {text, sizeof text, 0};
            /* the marker first: the lookup finds it, however the rest is cut */
            s_put(&b, "%s payguard case %s was %s. Nothing was changed: no hold, no ledger entry.\n", marker,
                  c->case_id, denial);
            s_decisions(c, &b);
            s_put(&b, "Case page: %s", c->url);
            utf8_fmt(c->done[out->n], sizeof c->done[0], "a comment on ticket %s", key);
            s_add(out, "ticket_comment", "ticket_comment", "jira", path, json_pack("{s:s}", "body", text));
            char lookup[RB_LOOKUP_MAX];
            int lrc = ticket_comments_path(path, lookup, sizeof lookup);
            assert(lrc == 0); /* s_id_path made it */
        }
    }
    s_notify(c, out);
    return 0;
}

/* ------------------------------------------------------------ the record */

/* s_money_of - the record's amount (> 0) and currency (three letters) */
static int s_money_of(rb_ctx_t *c)
{
    json_t *a = json_object_get(c->body, "amount");
    const char *cur = s_str(c->body, "currency");
    if (!json_is_integer(a) || json_integer_value(a) <= 0)
        return s_fail(c->err, c->errlen, "the record's amount is missing or not a positive integer of minor units");
    if (!cur || strlen(cur) != 3)
        return s_fail(c->err, c->errlen, "the record's currency is missing or not a three-letter code");
    for (int i = 0; i < 3; i++) {
        char ch = cur[i];
        if (ch >= 'a' && ch <= 'z')
            ch = (char) (ch - 'a' + 'A');
        if (ch < 'A' || ch > 'Z')
            return s_fail(c->err, c->errlen, "the record's currency is not a three-letter code");
        c->currency[i] = ch;
    }
    c->currency[3] = '\0';
    c->amount = json_integer_value(a);
    json_t *fa = json_object_get(c->facts, "amount");
    if (json_is_integer(fa) && json_integer_value(fa) != c->amount)
        return s_fail(c->err, c->errlen, "the record's amount and the facts' amount differ");
    money_format(c->amount, c->currency, c->money, sizeof c->money);
    return 0;
}

/* s_record - the parts of the record every runbook reads; -1 + err */
static int s_record(rb_ctx_t *c)
{
    c->facts = json_object_get(c->body, "facts");
    if (!json_is_object(c->facts))
        return s_fail(c->err, c->errlen, "the record has no facts object");
    const char *fcase = s_str(c->facts, "case_id");
    if (fcase && strcmp(fcase, c->case_id) != 0)
        return s_fail(c->err, c->errlen, "the record's case_id and the facts' case_id differ");
    c->kind = s_str(c->body, "kind");
    if (!c->kind)
        c->kind = "";
    c->advice = json_object_get(c->body, "recommendation");
    if (!json_is_object(c->advice))
        c->advice = json_object_get(c->facts, "advice");
    if (!json_is_object(c->advice))
        c->advice = NULL;
    c->withhold = s_str(c->facts, "failure_message");
    if (!c->withhold)
        c->withhold = "";
    json_t *tier = json_object_get(c->body, "tier");
    if (!json_is_integer(tier) || json_integer_value(tier) < 0 || json_integer_value(tier) > 3)
        return s_fail(c->err, c->errlen, "the record's tier is missing or not 0..3");
    c->tier = (int) json_integer_value(tier);
    s_word(c->event_type, sizeof c->event_type, s_str(c->facts, "event_type"));
    s_word(c->failure_code, sizeof c->failure_code, s_str(c->facts, "failure_code"));
    if (s_money_of(c) != 0)
        return -1;
    return runbook_case_url(c->opts, c->case_id, c->url, c->err, c->errlen);
}

/* s_plan - choose and plan the runbook; -1 + err */
static int s_plan(rb_ctx_t *c, rb_plan_t *out)
{
    const char *action = s_str(c->body, "action");
    if (c->decision == EV_DENIED) {
        snprintf(out->runbook, sizeof out->runbook, "denied");
    } else if (c->decision == EV_APPROVED) {
        if (!action || !s_in(action, s_runbooks) || strcmp(action, "denied") == 0)
            return s_fail(c->err, c->errlen, "unknown action \"%.48s\" in an approved record",
                          action ? action : "(missing)");
        snprintf(out->runbook, sizeof out->runbook, "%s", action);
    } else {
        return s_fail(c->err, c->errlen, "a %.32s event has no runbook (approved or denied)",
                      event_type_name(c->decision));
    }
    if (strcmp(out->runbook, "none") == 0) {
        s_note(out, "no steps: the approved action is none (nothing to change)");
        return 0;
    }
    if (s_record(c) != 0)
        return -1;
    int rc;
    if (strcmp(out->runbook, "payout_exception") == 0)
        rc = s_payout_exception(c, out);
    else if (strcmp(out->runbook, "refund_post_succeeded") == 0)
        rc = s_refund_post(c, out, true);
    else if (strcmp(out->runbook, "refund_post_failed") == 0)
        rc = s_refund_post(c, out, false);
    else if (strcmp(out->runbook, "refund_failed_after_success") == 0)
        rc = s_refund_failed_after_success(c, out);
    else if (strcmp(out->runbook, "ops_review_ticket") == 0)
        rc = s_ops_review(c, out);
    else
        rc = s_denied(c, out);
    if (rc == 0)
        s_finish(c, out);
    return rc;
}

/* runbook_plan - the runbook of a decided case (see runbook.h); the plan is cleared on -1 */
int runbook_plan(event_type_t decision, const json_t *body, const rb_opts_t *opts, rb_plan_t *out, char *err,
                 size_t errlen)
{
    assert(opts && out);
    memset(out, 0, sizeof *out);
    const char *case_id = s_str(body, "case_id");
    if (!json_is_object(body) || !case_id || !*case_id)
        return s_fail(err, errlen, "the decision record has no case_id");
    if (strlen(case_id) >= sizeof out->case_id)
        return s_fail(err, errlen, "case_id is longer than %zu bytes", sizeof out->case_id - 1);
    for (const unsigned char *p = (const unsigned char *) case_id; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return s_fail(err, errlen, "case_id holds spaces or control characters");
    snprintf(out->case_id, sizeof out->case_id, "%s", case_id);

    rb_ctx_t *c = calloc(1, sizeof *c);
    assert(c);
    c->decision = decision;
    c->body = body;
    c->opts = opts;
    c->err = err;
    c->errlen = errlen;
    c->case_id = out->case_id;
    int rc = s_plan(c, out);
    for (size_t i = 0; i < c->nowned; i++)
        json_decref(c->owned[i]);
    free(c);
    if (rc != 0) {
        runbook_plan_clear(out);
        return -1;
    }
    for (size_t i = 0; i < out->n; i++)
        assert(out->steps[i].body);
    return 0;
}

/* ------------------------------------------------------------ failures */

/* s_failure_description - the failure ticket's text: what failed, what ran, what did not */
static void s_failure_description(const rb_plan_t *plan, size_t failed, const char *error, const char *url, char *dst,
                                  size_t dstlen)
{
    const rb_step_t *f = &plan->steps[failed];
    rb_buf_t b = {dst, dstlen, 0};
    dst[0] = '\0';
    s_put(&b, "payguard case %s: runbook %s stopped at step %zu of %zu, %s (%s %s %s).\n", plan->case_id, plan->runbook,
          failed + 1, plan->n, f->name, f->system, f->method, f->path[0] ? f->path : "(base URL)");
    s_put(&b, "Case page: %s\n", url);
    s_put(&b, "Error: %s\n", error);
    s_put(&b, "Completed before it:");
    for (size_t i = 0; i < failed; i++)
        s_put(&b, "%s %s", i ? "," : "", plan->steps[i].name);
    s_put(&b, "%s\nNot run:", failed ? "" : " none");
    for (size_t i = failed + 1; i < plan->n; i++)
        s_put(&b, "%s %s", i > failed + 1 ? "," : "", plan->steps[i].name);
    s_put(&b, "%s\n", failed + 1 < plan->n ? "" : " none");
    for (size_t i = 0; i < plan->nnotes; i++)
        s_put(&b, "Not planned: %s\n", plan->notes[i]);
    bool held = false;
    for (size_t i = 0; i < failed; i++)
        held |= strncmp(plan->steps[i].name, "hold_", 5) == 0;
    s_put(&b, "No later step runs after a failed one.%s A person decides what comes next.\n",
          held ? " The holds already placed stay (policy default: keep the hold)." : "");
}

/* runbook_failure_plan - the ticket and notice after a step failed for good (§5.3) */
int runbook_failure_plan(const rb_plan_t *plan, size_t failed_step, const char *error, const rb_opts_t *opts,
                         rb_plan_t *out, char *err, size_t errlen)
{
    assert(plan && opts && out && plan != out);
    memset(out, 0, sizeof *out);
    if (!plan->case_id[0] || failed_step >= plan->n)
        return s_fail(err, errlen, "no step %zu in the plan of case \"%.60s\"", failed_step, plan->case_id);
    snprintf(out->case_id, sizeof out->case_id, "%s", plan->case_id);
    snprintf(out->runbook, sizeof out->runbook, "%s", plan->runbook);
    char url[RB_URL_MAX], why[RB_PIECE_MAX + 1];
    char lookup[300];
    if (runbook_case_url(opts, plan->case_id, url, err, errlen) != 0 ||
        s_ticket_ok(opts, plan->case_id, err, errlen) != 0 ||
        s_ticket_lookup(opts, plan->case_id, "failure_ticket", lookup, err, errlen) != 0)
        return -1;
    s_clean(why, sizeof why, error && *error ? error : "(no error text)", RB_PIECE_MAX, NULL);
    const rb_step_t *f = &plan->steps[failed_step];

    char summary[RB_SUMMARY_MAX + 1], description[RB_DESCRIPTION_MAX + 1];
    utf8_fmt(summary, sizeof summary, "payguard: step %s failed for case %s", f->name, plan->case_id);
    s_failure_description(plan, failed_step, why, url, description, sizeof description);
    s_add(out, "failure_ticket", "open_ticket", s_ticket_system(opts), s_ticket_path(opts),
          s_ticket_body(opts, plan->runbook, "runbook-failure", 1, summary, description, plan->case_id,
                        "failure_ticket"));

    char title[200], done[RB_FACT_MAX + 1], notrun[RB_FACT_MAX + 1];
    utf8_fmt(title, sizeof title, "payguard: runbook step %s failed for case %s", f->name, plan->case_id);
    rb_buf_t d = {done, sizeof done, 0}, n = {notrun, sizeof notrun, 0};
    done[0] = notrun[0] = '\0';
    for (size_t i = 0; i < failed_step; i++)
        s_put(&d, "%s%s", i ? ", " : "", plan->steps[i].name);
    for (size_t i = failed_step + 1; i < plan->n; i++)
        s_put(&n, "%s%s", i > failed_step + 1 ? ", " : "", plan->steps[i].name);
    json_t *facts = json_array();
    s_fact(facts, "Case", plan->case_id);
    s_fact(facts, "Runbook", plan->runbook);
    s_fact(facts, "Failed step", f->name);
    s_fact(facts, "Error", why);
    s_fact(facts, "Done before it", d.len ? done : "nothing");
    s_fact(facts, "Not run", n.len ? notrun : "nothing");
    s_fact(facts, "Follow-up", "a Highest priority ticket; no later step of this runbook runs");
    s_add(out, "failure_notice", "notify_teams", "teams", "",
          s_card(title, facts, "AI advice (advisory): not consulted for a failed runbook step", url));
    return 0;
}

/* runbook_step_lookup - see runbook.h */
int runbook_step_lookup(const char *case_id, const rb_step_t *s, char out[RB_LOOKUP_MAX])
{
    assert(case_id && s && out);
    out[0] = '\0';
    bool ticket_system = strcmp(s->system, "jira") == 0 || strcmp(s->system, "servicenow") == 0;
    if (!ticket_system)
        return 0;
    if (strcmp(s->name, "open_ticket") == 0)
        return ticket_search_path(s->system, case_id, out, RB_LOOKUP_MAX, NULL, 0);
    if (strcmp(s->name, "ticket_comment") == 0)
        return ticket_comments_path(s->path, out, RB_LOOKUP_MAX);
    assert(out[0] == '\0');
    return 0;
}

/* runbook_plan_clear - free the bodies; the plan is empty (and may be reused) */
void runbook_plan_clear(rb_plan_t *plan)
{
    if (!plan)
        return;
    for (size_t i = 0; i < plan->n && i < RB_MAX_STEPS; i++) {
        free(plan->steps[i].body);
        plan->steps[i].body = NULL;
    }
    plan->n = 0;
    plan->nnotes = 0;
}

/* ------------------------------------------------------------ JSON */

/* runbook_plan_json - the plan as the journal records it (bodies as JSON objects) */
json_t *runbook_plan_json(const rb_plan_t *plan)
{
    assert(plan && plan->n <= RB_MAX_STEPS && plan->nnotes <= RB_MAX_STEPS);
    json_t *steps = json_array(), *notes = json_array();
    for (size_t i = 0; i < plan->n; i++) {
        const rb_step_t *s = &plan->steps[i];
        json_t *body = json_loads(s->body, JSON_REJECT_DUPLICATES, NULL);
        assert(json_is_object(body)); /* the planner wrote it */
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:o}", "name", s->name, "system", s->system, "method",
                              s->method, "path", s->path, "idempotency_key", s->idem_key, "customer_facing",
                              s->customer_facing, "body", body);
        assert(j);
        char lookup[RB_LOOKUP_MAX];
        if (runbook_step_lookup(plan->case_id, s, lookup) == 0 && lookup[0])
            json_object_set_new(j, "lookup", json_string(lookup)); /* for people: computed again when run */
        json_array_append_new(steps, j);
    }
    for (size_t i = 0; i < plan->nnotes; i++)
        json_array_append_new(notes, json_string(plan->notes[i]));
    json_t *j = json_pack("{s:s, s:s, s:o, s:o}", "case_id", plan->case_id, "runbook", plan->runbook, "steps", steps,
                          "notes", notes);
    assert(j);
    return j;
}

/* s_copy - a string member into a fixed buffer; -1 if missing, not a string or too long */
static int s_copy(const json_t *obj, const char *key, char *dst, size_t dstlen, bool nonempty)
{
    const char *v = s_str(obj, key);
    if (!v || strlen(v) >= dstlen || (nonempty && !*v))
        return -1;
    snprintf(dst, dstlen, "%s", v);
    return 0;
}

/* s_only - obj is an object with exactly the listed members */
static bool s_only(const json_t *obj, const char *const *keys)
{
    if (!json_is_object(obj))
        return false;
    size_t n = 0;
    for (size_t i = 0; keys[i]; i++) {
        if (!json_object_get(obj, keys[i]))
            return false;
        n++;
    }
    return json_object_size(obj) == n;
}

/* s_step_from_json - one journaled step back; -1 if malformed */
static int s_step_from_json(const json_t *j, const char *case_id, rb_step_t *s)
{
    static const char *const keys[] = {"name", "system", "method", "path", "idempotency_key", "customer_facing",
                                       "body", NULL};
    static const char *const with_lookup[] = {"name", "system", "method", "path", "idempotency_key", "customer_facing",
                                              "body", "lookup", NULL};
    bool has_lookup = json_object_get(j, "lookup") != NULL;
    char lookup[RB_LOOKUP_MAX], want[RB_LOOKUP_MAX];
    if (!s_only(j, has_lookup ? with_lookup : keys) || s_copy(j, "name", s->name, sizeof s->name, true) ||
        (has_lookup && s_copy(j, "lookup", lookup, sizeof lookup, true)) ||
        s_copy(j, "system", s->system, sizeof s->system, true) ||
        s_copy(j, "method", s->method, sizeof s->method, true) || s_copy(j, "path", s->path, sizeof s->path, false) ||
        s_copy(j, "idempotency_key", s->idem_key, sizeof s->idem_key, true))
        return -1;
    json_t *cf = json_object_get(j, "customer_facing"), *body = json_object_get(j, "body");
    size_t cl = strlen(case_id);
    if (!json_is_boolean(cf) || !json_is_object(body) || !s_in(s->name, s_step_names) || !s_in(s->system, s_systems) ||
        strcmp(s->method, "POST") != 0 || strncmp(s->idem_key, case_id, cl) != 0 || s->idem_key[cl] != ':')
        return -1;
    if (has_lookup && (runbook_step_lookup(case_id, s, want) != 0 || strcmp(lookup, want) != 0))
        return -1; /* a lookup is the one the step makes (only ticket steps have one) */
    s->customer_facing = json_is_true(cf);
    s->body = json_dumps(body, JSON_COMPACT);
    return s->body ? 0 : -1;
}

/* runbook_plan_from_json - a journaled plan back, strictly: unknown members, foreign keys, unknown steps: -1 */
int runbook_plan_from_json(const json_t *j, rb_plan_t *out)
{
    static const char *const keys[] = {"case_id", "runbook", "steps", "notes", NULL};
    assert(out);
    memset(out, 0, sizeof *out);
    json_t *steps = json_object_get(j, "steps"), *notes = json_object_get(j, "notes");
    if (!s_only(j, keys) || s_copy(j, "case_id", out->case_id, sizeof out->case_id, true) ||
        s_copy(j, "runbook", out->runbook, sizeof out->runbook, true) || !s_in(out->runbook, s_runbooks) ||
        !json_is_array(steps) || json_array_size(steps) > RB_MAX_STEPS || !json_is_array(notes) ||
        json_array_size(notes) > RB_MAX_STEPS)
        return -1;
    size_t i;
    json_t *v;
    json_array_foreach(steps, i, v)
    {
        if (s_step_from_json(v, out->case_id, &out->steps[i]) != 0) {
            free(out->steps[i].body);
            out->steps[i].body = NULL;
            runbook_plan_clear(out);
            return -1;
        }
        out->n = i + 1;
    }
    json_array_foreach(notes, i, v)
    {
        const char *t = json_string_value(v);
        if (!t || strlen(t) >= sizeof out->notes[0]) {
            runbook_plan_clear(out);
            return -1;
        }
        snprintf(out->notes[i], sizeof out->notes[0], "%s", t);
        out->nnotes = i + 1;
    }
    return 0;
}
