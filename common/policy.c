/* policy - the route a case takes: nothing to do, auto-approved by policy, or
 * which human roles must agree (CONTRACT.md §4, §5; see policy.h).
 *
 * The route is decided from recorded facts (amount, currency, the PSP's word,
 * the ledger's entries, the customer's risk and flag) and two things from the
 * advice: its closed-set classification and its confidence. Nothing here
 * reads or repeats free text: route.rule is a stable machine label and
 * route.reason is built only from numbers and fixed words.
 *
 * Payouts (payout_exception): people at the amount's tier; "consistent"
 * closes with no action only when the facts say so too (CONTRACT §5.1: the
 * payments API says failed/reversed/on_hold and the ledger holds the
 * reversal) - a label alone never skips people.
 *
 * Refunds: the action comes from the PSP's word against the ledger
 * (CONTRACT §5.2), whatever the label says; then
 *   refund_post_succeeded  auto-approved only when every condition holds,
 *                          else people with "refund_human:<first failing>"
 *   ops_review_ticket      for a pending refund (a ticket moves no money):
 *                          auto-approved when the same conditions hold bar
 *                          the PSP's word, which is the ticket's reason
 *   anything else          people (a failing condition always names why)
 * A confidence below confidence_min turns what would be auto-approved into
 * people with rule "low_confidence"; it leaves "no action" alone.
 *
 * Money is int64 minor units throughout; reasons format it with integer
 * arithmetic and the currency's decimals.
 */
#include "policy.h"
#include "money.h"

#include <assert.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POLICY_CONFIDENCE_MAX 1000
_Static_assert(POLICY_CONFIDENCE_MAX == 1000, "approve/confidence_min's range in config.c's s_bounds is 0..1000");

/* ------------------------------------------------------------ small helpers */

/* s_is - a fixed-size field equals a word (bounded: the field may be full) */
static bool s_is(const char *field, size_t size, const char *word)
{
    size_t n = strnlen(field, size);
    return n == strlen(word) && memcmp(field, word, n) == 0;
}

#define FIELD_IS(field, word) s_is((field), sizeof(field), (word))

/* s_say - append to out->reason; vsnprintf truncates a too-long line safely */
__attribute__((format(printf, 2, 3))) static void s_say(route_t *out, const char *fmt, ...)
{
    size_t used = strnlen(out->reason, sizeof out->reason);
    if (used + 1 >= sizeof out->reason)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->reason + used, sizeof out->reason - used, fmt, ap);
    va_end(ap);
}

/* s_set - copy a label into a route field, which must be large enough (the
 * labels are this file's constants, so a truncation is a bug) */
static void s_set(char *field, size_t size, const char *label)
{
    int n = snprintf(field, size, "%s", label);
    assert(n >= 0 && (size_t) n < size);
    (void) n;
}

#define SET(field, label) s_set((field), sizeof(field), (label))

/* s_currency_shown - the currency as a reason may show it: three letters,
 * upper-cased, or "???" (the field is data, not text to repeat) */
static void s_currency_shown(const char currency[4], char shown[4])
{
    for (int i = 0; i < 3; i++) {
        char ch = currency[i];
        if (ch >= 'a' && ch <= 'z')
            ch = (char) (ch - 'a' + 'A');
        if (ch < 'A' || ch > 'Z') {
            memcpy(shown, "???", 4);
            return;
        }
        shown[i] = ch;
    }
    shown[3] = '\0';
}

/* ------------------------------------------------------------ amounts */

/* ------------------------------------------------------------ loading */

/* s_fail - write a load error (err may be NULL) and return -1 */
__attribute__((format(printf, 3, 4))) static int s_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* s_next_int64 - one non-negative decimal integer after optional blanks;
 * advances *s; -1 on a sign, a non-digit or an overflow */
static int s_next_int64(const char **s, int64_t *out)
{
    const char *p = *s;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p < '0' || *p > '9')
        return -1;
    int64_t n = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        int digit = *p - '0';
        if (n > (INT64_MAX - digit) / 10)
            return -1;
        n = n * 10 + digit;
    }
    *s = p;
    *out = n;
    return 0;
}

/* s_parse_thresholds - "<tier2_from> <tier3_above> <refund_auto_max>":
 * exactly three non-negative integers, tier2_from <= tier3_above */
static int s_parse_thresholds(const char *value, policy_currency_t *cur)
{
    const char *p = value;
    if (s_next_int64(&p, &cur->tier2_from) || (*p != ' ' && *p != '\t') || s_next_int64(&p, &cur->tier3_above) ||
        (*p != ' ' && *p != '\t') || s_next_int64(&p, &cur->refund_auto_max))
        return -1;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p)
        return -1;
    return cur->tier2_from <= cur->tier3_above ? 0 : -1;
}

/* s_currency_name_ok - a configured currency is three upper-case letters */
static bool s_currency_name_ok(const char *name)
{
    if (!name || strlen(name) != 3)
        return false;
    for (int i = 0; i < 3; i++)
        if (name[i] < 'A' || name[i] > 'Z')
            return false;
    return true;
}

/* s_load_currency - one approve/thresholds/<CUR> entry into out */
static int s_load_currency(const config_t *c, const char *name, policy_t *out, char *err, size_t errlen)
{
    if (!s_currency_name_ok(name))
        return s_fail(err, errlen, "config: approve/thresholds/%s: a currency is three upper-case letters (USD)",
                      name ? name : "");
    for (size_t i = 0; i < out->ncurrencies; i++)
        if (strcmp(out->currencies[i].currency, name) == 0)
            return s_fail(err, errlen, "config: approve/thresholds/%s: configured twice", name);
    const char *value = config_child_get(c, "approve/thresholds", name, NULL);
    policy_currency_t *cur = &out->currencies[out->ncurrencies];
    memset(cur, 0, sizeof *cur);
    if (!value || s_parse_thresholds(value, cur))
        return s_fail(err, errlen,
                      "config: approve/thresholds/%s = '%s': want \"<tier2_from> <tier3_above> "
                      "<refund_auto_max>\", non-negative integers in minor units, tier2_from <= tier3_above",
                      name, value ? value : "");
    memcpy(cur->currency, name, 4);
    out->ncurrencies++;
    return 0;
}

/* s_load_thresholds - every currency the thresholds section names (the
 * file's section replaces the default one, see config_children) */
static int s_load_thresholds(const config_t *c, policy_t *out, char *err, size_t errlen)
{
    const char *names[POLICY_MAX_CURRENCIES + 1];
    size_t n = config_children(c, "approve/thresholds", names, POLICY_MAX_CURRENCIES + 1, NULL);
    if (n > POLICY_MAX_CURRENCIES)
        return s_fail(err, errlen, "config: approve/thresholds: at most %d currencies", POLICY_MAX_CURRENCIES);
    for (size_t i = 0; i < n; i++)
        if (s_load_currency(c, names[i], out, err, errlen))
            return -1;
    return 0;
}

/* s_role_name_ok - a role is [a-z_]{1,31}: it names people's duties and
 * appears in reasons and approval records */
static bool s_role_name_ok(const char *name, size_t len)
{
    if (len == 0 || len >= POLICY_ROLE_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || name[i] == '_'))
            return false;
    return true;
}

/* s_has_role - is name (len bytes) already among the tier's roles? */
static bool s_has_role(char roles[][POLICY_ROLE_MAX], size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(roles[i]) == len && memcmp(roles[i], name, len) == 0)
            return true;
    return false;
}

/* s_load_roles - approve/tier<t>_roles: 1..POLICY_MAX_ROLES distinct role
 * names, whitespace-separated (one person per role must agree) */
static int s_load_roles(const config_t *c, int t, policy_t *out, char *err, size_t errlen)
{
    char key[32];
    snprintf(key, sizeof key, "approve/tier%d_roles", t);
    const char *value = config_get(c, key);
    const char *p = value ? value : "";
    size_t *n = &out->ntier_roles[t - 1];
    for (;;) {
        p += strspn(p, " \t");
        if (!*p)
            break;
        size_t len = strcspn(p, " \t");
        if (!s_role_name_ok(p, len))
            return s_fail(err, errlen, "config: %s = '%s': a role is 1 to %d of a-z and _", key, value,
                          POLICY_ROLE_MAX - 1);
        if (s_has_role(out->tier_roles[t - 1], *n, p, len))
            return s_fail(err, errlen, "config: %s = '%s': role '%.*s' named twice", key, value, (int) len, p);
        if (*n == POLICY_MAX_ROLES)
            return s_fail(err, errlen, "config: %s = '%s': at most %d roles", key, value, POLICY_MAX_ROLES);
        memcpy(out->tier_roles[t - 1][*n], p, len);
        out->tier_roles[t - 1][*n][len] = '\0';
        (*n)++;
        p += len;
    }
    if (*n == 0)
        return s_fail(err, errlen, "config: %s: a tier needs at least one role", key);
    return 0;
}

/* s_load_confidence - approve/confidence_min, permille 0..1000 */
static int s_load_confidence(const config_t *c, policy_t *out, char *err, size_t errlen)
{
    char why[256];
    long v;
    if (config_bounded(c, "approve/confidence_min", &v, why, sizeof why))
        return s_fail(err, errlen, "%s", why);
    out->confidence_min_permille = (int) v;
    return 0;
}

/* policy_load - see policy.h; on failure *out is left zeroed */
int policy_load(const config_t *c, policy_t *out, char *err, size_t errlen)
{
    assert(c && out);
    memset(out, 0, sizeof *out);
    int rc = s_load_confidence(c, out, err, errlen);
    for (int t = 1; rc == 0 && t <= POLICY_TIERS; t++)
        rc = s_load_roles(c, t, out, err, errlen);
    if (rc == 0)
        rc = s_load_thresholds(c, out, err, errlen);
    if (rc)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ------------------------------------------------------------ tiers */

/* s_currency - the thresholds of a currency (case-insensitive), or NULL */
static const policy_currency_t *s_currency(const policy_t *p, const char *currency)
{
    if (!currency || strnlen(currency, 4) != 3)
        return NULL;
    for (size_t i = 0; i < p->ncurrencies; i++)
        if (strcasecmp(p->currencies[i].currency, currency) == 0)
            return &p->currencies[i];
    return NULL;
}

/* s_tier_of - the tier an amount falls in under a currency's thresholds */
static int s_tier_of(const policy_currency_t *cur, int64_t amount)
{
    if (!cur)
        return 3;
    if (amount < cur->tier2_from)
        return 1;
    return amount <= cur->tier3_above ? 2 : 3;
}

/* policy_amount_tier - see policy.h */
int policy_amount_tier(const policy_t *p, int64_t amount, const char *currency)
{
    assert(p);
    return s_tier_of(s_currency(p, currency), amount);
}

/* policy_tier - see policy.h; a loaded policy has roles in every tier */
int policy_tier(const policy_t *p, int t, route_t *out)
{
    assert(p && out);
    if (t < 1 || t > POLICY_TIERS)
        return -1;
    size_t n = p->ntier_roles[t - 1];
    assert(n >= 1 && n <= POLICY_MAX_ROLES);
    out->kind = ROUTE_HUMANS;
    out->tier = t;
    out->nroles = n;
    memset(out->roles, 0, sizeof out->roles);
    for (size_t i = 0; i < n; i++)
        SET(out->roles[i], p->tier_roles[t - 1][i]);
    return 0;
}

/* s_say_roles - "one treasury, one finance_manager and one compliance" */
static void s_say_roles(route_t *out)
{
    for (size_t i = 0; i < out->nroles; i++)
        s_say(out, "%sone %s", i == 0 ? "" : i + 1 == out->nroles ? " and " : ", ", out->roles[i]);
}

/* s_say_tier - "<amount> <CUR> is in tier 2 (5,000.00 to 50,000.00): one
 * finance_manager and one compliance", for the tier already set in out */
static void s_say_tier(const policy_input_t *in, const policy_currency_t *cur, route_t *out)
{
    char shown[4], amount[48], from[48], above[48];
    s_currency_shown(in->currency, shown);
    money_number(in->amount, shown, amount, sizeof amount);
    s_say(out, "%s %s is in tier %d ", amount, shown, out->tier);
    if (!cur) {
        s_say(out, "(no thresholds configured for %s)", shown);
    } else {
        money_number(cur->tier2_from, shown, from, sizeof from);
        money_number(cur->tier3_above, shown, above, sizeof above);
        if (out->tier == 1)
            s_say(out, "(below %s)", from);
        else if (out->tier == 2)
            s_say(out, "(%s to %s)", from, above);
        else
            s_say(out, "(above %s)", above);
    }
    s_say(out, ": ");
    s_say_roles(out);
}

/* s_to_humans - people at the amount's tier decide; reason ends with the tier */
static void s_to_humans(const policy_t *p, const policy_input_t *in, route_t *out)
{
    const policy_currency_t *cur = s_currency(p, in->currency);
    int rc = policy_tier(p, s_tier_of(cur, in->amount), out);
    assert(rc == 0);
    (void) rc;
    s_say_tier(in, cur, out);
}

/* s_no_action - nothing to do: no people, no tier */
static void s_no_action(route_t *out, const char *why)
{
    out->kind = ROUTE_NO_ACTION;
    SET(out->action, "none");
    SET(out->rule, "already_consistent");
    s_say(out, "%s", why);
}

/* s_confident - is the advice's confidence at least the policy's minimum? */
static bool s_confident(const policy_t *p, const policy_input_t *in)
{
    return in->confidence_permille >= p->confidence_min_permille;
}

/* s_low_confidence - what would be auto-approved goes to people instead:
 * a low confidence never approves anything by itself */
static void s_low_confidence(const policy_t *p, const policy_input_t *in, route_t *out)
{
    SET(out->rule, "low_confidence");
    s_say(out, "%s would be auto-approved but the advice's confidence %d is below %d permille; ", out->action,
          in->confidence_permille, p->confidence_min_permille);
    s_to_humans(p, in, out);
}

/* ------------------------------------------------------------ payouts */

/* s_payout_facts_consistent - CONTRACT §5.1: the payments API says the
 * payout did not stand and the ledger already holds its reversal */
static bool s_payout_facts_consistent(const policy_input_t *in)
{
    bool not_standing = FIELD_IS(in->internal_status, "failed") || FIELD_IS(in->internal_status, "reversed") ||
                        FIELD_IS(in->internal_status, "on_hold");
    return not_standing && in->ledger_payout_reversal > 0;
}

/* s_route_payout - a payout exception goes to people by amount; the advice's
 * "consistent" closes it only when the recorded facts agree */
static void s_route_payout(const policy_t *p, const policy_input_t *in, route_t *out)
{
    if (FIELD_IS(in->classification, "consistent") && s_payout_facts_consistent(in)) {
        s_no_action(out, "the payout is already marked as not paid and its payout_reversal is posted; nothing to do");
        return;
    }
    SET(out->action, "payout_exception");
    const policy_currency_t *cur = s_currency(p, in->currency);
    if (cur)
        snprintf(out->rule, sizeof out->rule, "payout_tier_%d", s_tier_of(cur, in->amount));
    else
        SET(out->rule, "unconfigured_currency");
    if (FIELD_IS(in->classification, "consistent"))
        s_say(out, "the advice says consistent but the payments API and ledger do not; ");
    if (!s_confident(p, in))
        s_say(out, "confidence %d is below %d permille; ", in->confidence_permille, p->confidence_min_permille);
    s_to_humans(p, in, out);
}

/* ------------------------------------------------------------ refunds */

typedef enum { PSP_SUCCEEDED, PSP_FAILED, PSP_PENDING, PSP_UNRECOGNISED } psp_word_t;

/* s_psp_word - the PSP's refund status as one of four: canceled is final
 * and moved no money, so it counts as failed; requires_action is not final */
static psp_word_t s_psp_word(const policy_input_t *in)
{
    if (FIELD_IS(in->psp_status, "succeeded"))
        return PSP_SUCCEEDED;
    if (FIELD_IS(in->psp_status, "failed") || FIELD_IS(in->psp_status, "canceled"))
        return PSP_FAILED;
    if (FIELD_IS(in->psp_status, "pending") || FIELD_IS(in->psp_status, "requires_action"))
        return PSP_PENDING;
    return PSP_UNRECOGNISED;
}

/* s_psp_shown - the PSP's status as a reason may show it (a known word) */
static const char *s_psp_shown(const policy_input_t *in)
{
    static const char *const known[] = {"succeeded", "failed", "canceled", "pending", "requires_action", NULL};
    for (size_t i = 0; known[i]; i++)
        if (FIELD_IS(in->psp_status, known[i]))
            return known[i];
    return "an unrecognised status";
}

/* s_ledger_final - does the ledger hold a final entry for the refund? */
static bool s_ledger_final(const policy_input_t *in)
{
    return in->ledger_refund_succeeded > 0 || in->ledger_refund_failed > 0;
}

/* s_ledger_missing_only_final - refund_initiated is there and nothing else:
 * posting the outcome completes the record, it moves no money */
static bool s_ledger_missing_only_final(const policy_input_t *in)
{
    return in->ledger_refund_initiated > 0 && !s_ledger_final(in);
}

/* refund_facts_t - what the PSP's word against the ledger calls for */
typedef enum {
    REFUND_AGREE_SUCCEEDED,      /* both final, both succeeded: nothing to do */
    REFUND_AGREE_FAILED,         /* both final, both failed: nothing to do */
    REFUND_PENDING_QUIET,        /* not final, the advice sees nothing to correct */
    REFUND_POST_SUCCEEDED,       /* PSP succeeded, ledger lacks the outcome */
    REFUND_POST_FAILED,          /* PSP failed, ledger lacks the outcome */
    REFUND_FAILED_AFTER_SUCCESS, /* PSP failed, ledger says succeeded */
    REFUND_PENDING_TICKET,       /* not final: ops review */
    REFUND_OTHER                 /* no runbook row: people look (a ticket) */
} refund_facts_t;

/* s_refund_succeeded_facts - the PSP refunded: the ledger must say so once */
static refund_facts_t s_refund_succeeded_facts(const policy_input_t *in)
{
    if (in->ledger_refund_succeeded == 1 && in->ledger_refund_failed <= 0)
        return REFUND_AGREE_SUCCEEDED;
    return s_ledger_missing_only_final(in) ? REFUND_POST_SUCCEEDED : REFUND_OTHER;
}

/* s_refund_failed_facts - the PSP did not refund: the ledger must not say it did */
static refund_facts_t s_refund_failed_facts(const policy_input_t *in)
{
    if (in->ledger_refund_succeeded == 1 && in->ledger_refund_failed <= 0)
        return REFUND_FAILED_AFTER_SUCCESS;
    if (in->ledger_refund_failed == 1 && in->ledger_refund_succeeded <= 0)
        return REFUND_AGREE_FAILED;
    return s_ledger_missing_only_final(in) ? REFUND_POST_FAILED : REFUND_OTHER;
}

/* s_refund_facts - CONTRACT §5.2's table; two refund_succeeded entries (a
 * possible double refund) fit no row, whatever the PSP says */
static refund_facts_t s_refund_facts(const policy_input_t *in)
{
    if (in->ledger_refund_succeeded > 1)
        return REFUND_OTHER;
    switch (s_psp_word(in)) {
    case PSP_SUCCEEDED:
        return s_refund_succeeded_facts(in);
    case PSP_FAILED:
        return s_refund_failed_facts(in);
    case PSP_PENDING:
        if (!s_ledger_final(in) && FIELD_IS(in->classification, "consistent"))
            return REFUND_PENDING_QUIET;
        return REFUND_PENDING_TICKET;
    case PSP_UNRECOGNISED:
        break;
    }
    return REFUND_OTHER;
}

/* s_refund_action - the runbook action the facts call for */
static const char *s_refund_action(refund_facts_t f)
{
    switch (f) {
    case REFUND_POST_SUCCEEDED:
        return "refund_post_succeeded";
    case REFUND_POST_FAILED:
        return "refund_post_failed";
    case REFUND_FAILED_AFTER_SUCCESS:
        return "refund_failed_after_success";
    case REFUND_PENDING_TICKET:
    case REFUND_OTHER:
        return "ops_review_ticket";
    case REFUND_AGREE_SUCCEEDED:
    case REFUND_AGREE_FAILED:
    case REFUND_PENDING_QUIET:
        break;
    }
    return "none";
}

/* refund_ctx_t - what the auto-approval conditions read */
typedef struct {
    const policy_t *p;
    const policy_input_t *in;
    const policy_currency_t *cur;
} refund_ctx_t;

/* refund_check_fn - one auto-approval condition: when it does not hold,
 * writes the rule and the why into out and returns true */
typedef bool (*refund_check_fn)(const refund_ctx_t *x, route_t *out);

/* s_fails_amount - above the currency's refund auto-approval limit */
static bool s_fails_amount(const refund_ctx_t *x, route_t *out)
{
    if (!x->cur || x->in->amount <= x->cur->refund_auto_max)
        return false;
    char shown[4], amount[48], max[48];
    s_currency_shown(x->in->currency, shown);
    money_number(x->in->amount, shown, amount, sizeof amount);
    money_number(x->cur->refund_auto_max, shown, max, sizeof max);
    SET(out->rule, "refund_human:amount_over_limit");
    s_say(out, "%s %s is above the refund auto-approval limit of %s", amount, shown, max);
    return true;
}

/* s_fails_risk - the customer's risk is not low (unknown counts as not low) */
static bool s_fails_risk(const refund_ctx_t *x, route_t *out)
{
    if (FIELD_IS(x->in->customer_risk, "low"))
        return false;
    const char *risk = FIELD_IS(x->in->customer_risk, "medium") ? "medium"
                       : FIELD_IS(x->in->customer_risk, "high") ? "high"
                                                                : "unknown";
    snprintf(out->rule, sizeof out->rule, "refund_human:customer_risk_%s", risk);
    s_say(out, "customer risk is %s, not low", risk);
    return true;
}

/* s_fails_flag - a flagged customer always has a person decide */
static bool s_fails_flag(const refund_ctx_t *x, route_t *out)
{
    if (!x->in->flagged)
        return false;
    SET(out->rule, "refund_human:customer_flagged");
    s_say(out, "the customer is flagged");
    return true;
}

/* s_fails_psp - the PSP has not said succeeded */
static bool s_fails_psp(const refund_ctx_t *x, route_t *out)
{
    if (s_psp_word(x->in) == PSP_SUCCEEDED)
        return false;
    SET(out->rule, "refund_human:psp_not_succeeded");
    s_say(out, "the PSP says %s, not succeeded", s_psp_shown(x->in));
    return true;
}

/* s_fails_ledger - the ledger holds more (or less) than refund_initiated */
static bool s_fails_ledger(const refund_ctx_t *x, route_t *out)
{
    if (s_ledger_missing_only_final(x->in))
        return false;
    SET(out->rule, "refund_human:ledger_not_only_missing_final");
    s_say(out,
          "the ledger holds %d refund_initiated, %d refund_succeeded, %d refund_failed, not only a missing outcome",
          x->in->ledger_refund_initiated, x->in->ledger_refund_succeeded, x->in->ledger_refund_failed);
    return true;
}

/* s_fails_currency - no thresholds, so no auto-approval limit */
static bool s_fails_currency(const refund_ctx_t *x, route_t *out)
{
    if (x->cur)
        return false;
    char shown[4];
    s_currency_shown(x->in->currency, shown);
    SET(out->rule, "refund_human:unconfigured_currency");
    s_say(out, "no refund auto-approval limit is configured for %s", shown);
    return true;
}

/* s_refund_first_failing - run the auto-approval conditions in the policy's
 * order (the PSP's word skipped for a pending ticket, where it is the
 * reason for the ticket); true when one fails (rule and why written) */
static bool s_refund_first_failing(const refund_ctx_t *x, bool skip_psp, route_t *out)
{
    static const refund_check_fn checks[] = {s_fails_amount, s_fails_risk,   s_fails_flag,
                                             s_fails_psp,    s_fails_ledger, s_fails_currency};
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        if (skip_psp && checks[i] == s_fails_psp)
            continue;
        if (checks[i](x, out))
            return true;
    }
    return false;
}

/* s_refund_no_action - the PSP and the ledger agree, or nothing is final yet */
static void s_refund_no_action(refund_facts_t f, route_t *out)
{
    if (f == REFUND_AGREE_SUCCEEDED)
        s_no_action(out, "the PSP and the ledger agree the refund succeeded; nothing to do");
    else if (f == REFUND_AGREE_FAILED)
        s_no_action(out, "the PSP and the ledger agree the refund failed; nothing to do");
    else
        s_no_action(out, "the refund is still pending at the PSP and the ledger holds no outcome; nothing to do yet");
}

/* s_refund_auto - every condition holds: policy approves (a ledger
 * correction or a ticket; neither moves money) */
static void s_refund_auto(const policy_t *p, const refund_ctx_t *x, refund_facts_t f, route_t *out)
{
    char shown[4], amount[48], max[48];
    s_currency_shown(x->in->currency, shown);
    money_number(x->in->amount, shown, amount, sizeof amount);
    money_number(x->cur->refund_auto_max, shown, max, sizeof max);
    out->kind = ROUTE_AUTO;
    if (f == REFUND_POST_SUCCEEDED) {
        SET(out->rule, "refund_auto_approve");
        s_say(out, "the PSP says succeeded and the ledger lacks only refund_succeeded (no money moves); ");
    } else {
        SET(out->rule, "ops_review_ticket");
        s_say(out, "the PSP says %s: an ops-review ticket (no money moves); ", s_psp_shown(x->in));
    }
    s_say(out, "%s %s is within the auto-approval limit of %s, customer risk low, not flagged, confidence %d >= %d",
          amount, shown, max, x->in->confidence_permille, p->confidence_min_permille);
}

/* s_route_refund - the action from the facts, then who approves it */
static void s_route_refund(const policy_t *p, const policy_input_t *in, route_t *out)
{
    refund_facts_t f = s_refund_facts(in);
    if (f == REFUND_AGREE_SUCCEEDED || f == REFUND_AGREE_FAILED || f == REFUND_PENDING_QUIET) {
        s_refund_no_action(f, out);
        return;
    }
    SET(out->action, s_refund_action(f));
    refund_ctx_t x = {p, in, s_currency(p, in->currency)};
    bool auto_candidate = f == REFUND_POST_SUCCEEDED || f == REFUND_PENDING_TICKET;
    if (s_refund_first_failing(&x, f == REFUND_PENDING_TICKET, out)) {
        s_say(out, "; ");
        s_to_humans(p, in, out);
        return;
    }
    /* every other action fails the PSP or the ledger condition */
    assert(auto_candidate);
    (void) auto_candidate;
    if (!s_confident(p, in)) {
        s_low_confidence(p, in, out);
        return;
    }
    s_refund_auto(p, &x, f, out);
}

/* -------------------------------------------------------------- input */

/* s_copy_str - a string member of obj into a bounded field ("" if absent
 * or not a string; obj may be NULL) */
static void s_copy_str(char *field, size_t size, const json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));
    snprintf(field, size, "%s", v ? v : "");
}

/* policy_input_from_json - what policy may read, from a triaged event's
 * body: approve routes with it, and `payguard replay --stage approve
 * --dry-run` re-routes with it, so both read a case the same way */
void policy_input_from_json(const json_t *body, policy_input_t *in)
{
    memset(in, 0, sizeof *in);
    const json_t *adv = json_object_get(body, "advice");
    s_copy_str(in->kind, sizeof in->kind, body, "kind");
    s_copy_str(in->classification, sizeof in->classification, adv, "classification");
    s_copy_str(in->currency, sizeof in->currency, body, "currency");
    s_copy_str(in->psp_status, sizeof in->psp_status, json_object_get(body, "psp_state"), "status");
    if (!in->psp_status[0])
        s_copy_str(in->psp_status, sizeof in->psp_status, body, "status");
    s_copy_str(in->internal_status, sizeof in->internal_status, json_object_get(body, "payout_state"), "status");
    const json_t *pay = json_object_get(body, "payment_state");
    s_copy_str(in->customer_risk, sizeof in->customer_risk, pay, "customer_risk");
    in->flagged = json_is_true(json_object_get(pay, "flagged"));
    in->confidence_permille = (int) json_integer_value(json_object_get(adv, "confidence_permille"));
    in->amount = json_integer_value(json_object_get(body, "amount"));
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(json_object_get(body, "ledger_state"), "entries"), i, e)
    {
        const char *t = json_string_value(json_object_get(e, "type"));
        if (!t)
            continue;
        in->ledger_payout_paid += strcmp(t, "payout_paid") == 0;
        in->ledger_payout_reversal += strcmp(t, "payout_reversal") == 0;
        in->ledger_refund_initiated += strcmp(t, "refund_initiated") == 0;
        in->ledger_refund_succeeded += strcmp(t, "refund_succeeded") == 0;
        in->ledger_refund_failed += strcmp(t, "refund_failed") == 0;
    }
}

/* ------------------------------------------------------------ routing */

/* s_route_unknown_kind - neither payout nor refund: validate never sends
 * one, so the highest tier looks */
static void s_route_unknown_kind(const policy_t *p, route_t *out)
{
    SET(out->action, "ops_review_ticket");
    SET(out->rule, "unknown_kind");
    s_say(out, "neither a payout nor a refund; ");
    int rc = policy_tier(p, POLICY_TIERS, out);
    assert(rc == 0);
    (void) rc;
    s_say(out, "tier %d: ", out->tier);
    s_say_roles(out);
}

/* s_route_ok - the invariants of every route policy returns */
__attribute__((unused)) static bool s_route_ok(const route_t *r)
{
    if (!r->action[0] || !r->rule[0] || !r->reason[0])
        return false;
    if (r->kind == ROUTE_HUMANS)
        return r->tier >= 1 && r->tier <= POLICY_TIERS && r->nroles >= 1 && r->nroles <= POLICY_MAX_ROLES;
    bool none = strcmp(r->action, "none") == 0;
    return r->tier == 0 && r->nroles == 0 && (r->kind == ROUTE_NO_ACTION) == none;
}

/* policy_route - see policy.h and the file comment */
void policy_route(const policy_t *p, const policy_input_t *in, route_t *out)
{
    assert(p && in && out);
    memset(out, 0, sizeof *out);
    if (FIELD_IS(in->kind, "payout"))
        s_route_payout(p, in, out);
    else if (FIELD_IS(in->kind, "refund"))
        s_route_refund(p, in, out);
    else
        s_route_unknown_kind(p, out);
    assert(s_route_ok(out));
}
