/* rules - triage's deterministic classifier (see triage.h).
 *
 * The default advice for every case, and the fallback whenever the LLM is
 * absent or answers badly, so it must never fail and must only ever return
 * labels from the closed sets. Each decision is one small named function:
 *
 *   every case   duplicate delivery, out-of-order delivery (no_action)
 *   payout       root cause from Stripe's payout failure code, then
 *                "consistent" (CONTRACT §5.1: already failed and reversed)
 *                or "payout_exception" with a next step by root cause
 *   refund       the PSP's word against the ledger's entries for the
 *                refund (CONTRACT §5.2's table, plus double refunds and
 *                refunds the sweep found pending too long)
 *
 * Payout failure codes (https://docs.stripe.com/api/payouts/failures):
 *
 *   code                               root cause                   next step
 *   account_closed                     bank_rejection               request_updated_bank_details
 *   bank_ownership_changed             bank_rejection               request_updated_bank_details
 *   unsupported_card                   bank_rejection               request_updated_bank_details
 *   declined                           bank_rejection               reissue_after_verification
 *   could_not_process                  bank_rejection               reissue_after_verification
 *   debit_not_authorized               bank_rejection               reissue_after_verification
 *   invalid_account_number, no_account invalid_beneficiary_details  request_updated_bank_details
 *   invalid_currency                   invalid_beneficiary_details  request_updated_bank_details
 *   incorrect_account_holder_name,
 *     _address, _tax_id                invalid_beneficiary_details  request_updated_bank_details
 *   expired_card                       invalid_beneficiary_details  request_updated_bank_details
 *   insufficient_funds                 insufficient_funds           hold
 *   account_frozen                     compliance_hold              escalate
 *   bank_account_restricted            compliance_hold              escalate
 *   anything else, or none             unknown                      escalate
 *
 * The line between the first two causes: bank_rejection is the bank
 * refusing details that are right (the account exists, or existed, and is
 * the beneficiary's); invalid_beneficiary_details is the details on file
 * being wrong or stale, so only the beneficiary can fix them. Among bank
 * rejections, a destination that is gone for good (closed, re-homed branch,
 * card no longer served) needs new details; the others may succeed once the
 * beneficiary and their bank confirm, hence a re-issue after verification.
 *
 * SECURITY: failure_message and every other webhook string are untrusted.
 * The summary never copies free text: webhook fields appear only when they
 * are plain tokens (identifier characters, bounded length), the failure
 * code only when it is [a-z0-9_]{1,63}, and the failure message never. The
 * summary is therefore plain ASCII, and truncating it cannot split a
 * character. No floats: amounts are formatted from minor units with
 * integer arithmetic.
 */
#include "money.h"
#include "rules.h"

#include <assert.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* the closed sets, exactly as in triage.h */
const char *const triage_refund_classes[] = {
    "webhook_duplicate",  "out_of_order_event",      "ledger_write_failed", "psp_failed_customer_expects_refund",
    "double_refund_risk", "refund_pending_too_long", "consistent",          NULL};
const char *const triage_payout_classes[] = {"payout_exception", "webhook_duplicate", "out_of_order_event",
                                             "consistent", NULL};
const char *const triage_root_causes[] = {"bank_rejection",
                                          "insufficient_funds",
                                          "compliance_hold",
                                          "invalid_beneficiary_details",
                                          "ledger_mismatch",
                                          "psp_delay",
                                          "duplicate_delivery",
                                          "none",
                                          "unknown",
                                          NULL};
const char *const triage_recommendations[] = {"reissue_after_verification",
                                              "hold",
                                              "request_updated_bank_details",
                                              "escalate",
                                              "ledger_correction",
                                              "no_action",
                                              NULL};

/* ledger entry type names, in the enum's order (CONTRACT §2.2) */
static const char *const s_ledger_names[LEDGER_NTYPES] = {"payout_paid",      "payout_reversal", "refund_initiated",
                                                          "refund_succeeded", "refund_failed",   "refund_reversal"};

#define RULES_CODE_MAX 63   /* a failure code longer than this is not one */
#define RULES_REF_MAX 127   /* sizeof triage_case_t.ref - 1 */
#define RULES_STATUS_MAX 31 /* sizeof triage_case_t.status - 1 */
_Static_assert(RULES_REF_MAX == sizeof((triage_case_t *) 0)->ref - 1, "ref bound follows triage.h");
_Static_assert(RULES_STATUS_MAX == sizeof((triage_case_t *) 0)->status - 1, "status bound follows triage.h");
_Static_assert(RULES_CODE_MAX == sizeof((triage_case_t *) 0)->failure_code - 1, "code bound follows triage.h");

/* confidences (permille), named so the tests and the reasons agree */
#define CONF_DUPLICATE 990
#define CONF_OUT_OF_ORDER 980
#define CONF_PAYOUT_CONSISTENT 950
#define CONF_PAYOUT_KNOWN 900
#define CONF_PAYOUT_UNKNOWN 400
#define CONF_PAYOUT_NO_PAID 600
#define CONF_UNRECOGNISED 300
#define CONF_UNKNOWN_KIND 0

/* ------------------------------------------------------------ labels */

/* triage_label_in - membership in a closed set; NULL is in no set */
bool triage_label_in(const char *const *set, const char *value)
{
    if (!set || !value)
        return false;
    for (; *set; set++)
        if (strcmp(*set, value) == 0)
            return true;
    return false;
}

/* s_set_labels - fill the four labels; the caller's sets are asserted at the end */
static void s_set_labels(advice_t *out, const char *classification, const char *root_cause, const char *recommendation,
                         int confidence_permille)
{
    assert(confidence_permille >= 0 && confidence_permille <= 1000);
    snprintf(out->classification, sizeof out->classification, "%s", classification);
    snprintf(out->root_cause, sizeof out->root_cause, "%s", root_cause);
    snprintf(out->recommendation, sizeof out->recommendation, "%s", recommendation);
    out->confidence_permille = confidence_permille;
}

/* ------------------------------------------------------------ summary text */

/* summary_t - an appending writer into advice_t.summary that truncates
 * instead of overflowing, and marks a truncation with "..." */
typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    bool truncated;
} summary_t;

/* s_sum_init - start an empty summary in buf */
static void s_sum_init(summary_t *s, char *buf, size_t cap)
{
    assert(buf && cap > 3);
    s->buf = buf;
    s->cap = cap;
    s->len = 0;
    s->truncated = false;
    buf[0] = '\0';
}

/* s_sum_add - append formatted text; what does not fit is dropped */
__attribute__((format(printf, 2, 3))) static void s_sum_add(summary_t *s, const char *fmt, ...)
{
    if (s->truncated)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->buf + s->len, s->cap - s->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        s->buf[s->len] = '\0';
        return;
    }
    if ((size_t) n >= s->cap - s->len) {
        s->len = s->cap - 1;
        s->truncated = true;
        return;
    }
    s->len += (size_t) n;
}

/* s_sum_finish - mark a cut summary, so a reader knows text is missing.
 * Safe to cut anywhere: everything written is ASCII (see SECURITY). */
static void s_sum_finish(summary_t *s)
{
    if (s->truncated)
        memcpy(s->buf + s->cap - 4, "...", 4);
    assert(strlen(s->buf) <= s->cap - 1);
}

/* s_is_token - is s a plain token: 1..max bytes, each alphanumeric or in
 * extra? Only such webhook strings may enter the summary. */
static bool s_is_token(const char *s, size_t max, bool upper_ok, const char *extra)
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char ch = (unsigned char) s[n];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || (upper_ok && ch >= 'A' && ch <= 'Z') ||
                  (ch != '\0' && strchr(extra, ch) != NULL);
        if (!ok || n >= max)
            return false;
    }
    return n > 0;
}

/* s_token - s when it is a plain token, else the fallback text */
static const char *s_token(const char *s, size_t max, bool upper_ok, const char *extra, const char *fallback)
{
    return s_is_token(s, max, upper_ok, extra) ? s : fallback;
}

/* s_code_shown - the failure code as the summary may show it */
static const char *s_code_shown(const char *code)
{
    if (code[0] == '\0')
        return "no failure code";
    return s_token(code, RULES_CODE_MAX, false, "_", "unrecognised code");
}

/* s_ref_shown - the payout or refund id as the summary may show it */
static const char *s_ref_shown(const char *ref)
{
    return s_token(ref, RULES_REF_MAX, true, "_-.:", "an unrecognised ref");
}

/* s_status_shown - a status word (PSP, payments API) as the summary may show it */
static const char *s_status_shown(const char *status)
{
    if (status[0] == '\0')
        return "unknown";
    return s_token(status, RULES_STATUS_MAX, false, "_", "unrecognised");
}

/* s_add_head - the timeline's first line: when, who, what, for which ref */
static void s_add_head(summary_t *s, const triage_case_t *c)
{
    char when[32] = "time unknown";
    struct tm tm;
    time_t t = (time_t) c->psp_time;
    if (c->psp_time > 0 && gmtime_r(&t, &tm) && tm.tm_year + 1900 <= 9999)
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char amount[64];
    money_format(c->amount, c->currency, amount, sizeof amount);
    s_sum_add(s, "%s %s %s for %s (%s)", when, s_token(c->provider, 15, false, "_", "unknown provider"),
              s_token(c->event_type, 63, true, "_.", "event"), s_ref_shown(c->ref), amount); /* Adyen: REFUND */
}

/* s_add_ledger - "Ledger: 1 payout_paid, 1 payout_reversal." (first..last types) */
static void s_add_ledger(summary_t *s, const triage_case_t *c, int first, int last)
{
    s_sum_add(s, " Ledger:");
    bool any = false;
    for (int i = first; i <= last; i++) {
        if (c->ledger_count[i] == 0)
            continue;
        s_sum_add(s, "%s %d %s", any ? "," : "", c->ledger_count[i], s_ledger_names[i]);
        any = true;
    }
    s_sum_add(s, "%s.", any ? "" : " no entries");
}

/* s_add_history - "12 receipts (11 duplicates, 1 out of order)." */
static void s_add_history(summary_t *s, const triage_case_t *c)
{
    if (c->receipts <= 0)
        return;
    s_sum_add(s, " %d receipt%s", c->receipts, c->receipts == 1 ? "" : "s");
    if (c->duplicates > 0 && c->out_of_order > 0)
        s_sum_add(s, " (%d duplicate%s, %d out of order)", c->duplicates, c->duplicates == 1 ? "" : "s",
                  c->out_of_order);
    else if (c->duplicates > 0)
        s_sum_add(s, " (%d duplicate%s)", c->duplicates, c->duplicates == 1 ? "" : "s");
    else if (c->out_of_order > 0)
        s_sum_add(s, " (%d out of order)", c->out_of_order);
    s_sum_add(s, ".");
}

/* ------------------------------------------------------------ every case */

/* s_rule_duplicate - a second delivery of an event already handled: the
 * PSP retries until acknowledged, so nothing happened twice */
static void s_rule_duplicate(const triage_case_t *c, advice_t *out, summary_t *s)
{
    s_set_labels(out, "webhook_duplicate", "duplicate_delivery", "no_action", CONF_DUPLICATE);
    s_add_head(s, c);
    s_sum_add(s, ": delivered again.");
    s_add_history(s, c);
    s_sum_add(s, " Duplicate delivery: the PSP re-sent an event already handled; nothing to do.");
}

/* s_rule_out_of_order - an event older than the state the case already
 * has: the PSP delivered it late, and the newer state stands */
static void s_rule_out_of_order(const triage_case_t *c, advice_t *out, summary_t *s)
{
    s_set_labels(out, "out_of_order_event", "psp_delay", "no_action", CONF_OUT_OF_ORDER);
    s_add_head(s, c);
    s_sum_add(s, ": says %s, but the case already stood at %s.", s_status_shown(c->status),
              s_status_shown(c->previous_status));
    s_add_history(s, c);
    s_sum_add(s, " Out of order: the PSP delivered an older event late; the newer state stands, nothing to do.");
}

/* ------------------------------------------------------------ payouts */

/* payout_code_t - what a Stripe payout failure code means (file comment) */
typedef struct {
    const char *code;
    const char *root_cause;
    bool destination_gone; /* bank_rejection only: the details can never work again */
    const char *why;       /* our words, never the webhook's */
} payout_code_t;

static const payout_code_t s_payout_codes[] = {
    {"account_closed", "bank_rejection", true,
     "the beneficiary's bank closed the account; ask for updated bank details before any re-issue"},
    {"bank_ownership_changed", "bank_rejection", true,
     "the account's branch changed ownership and the details on file no longer route; ask for updated bank "
     "details"},
    {"unsupported_card", "bank_rejection", true,
     "the bank no longer accepts payouts to this card; ask for another destination"},
    {"declined", "bank_rejection", false,
     "the bank declined the transfer; verify with the beneficiary and their bank before a re-issue"},
    {"could_not_process", "bank_rejection", false,
     "the bank could not process the payout; verify the details before a re-issue"},
    {"debit_not_authorized", "bank_rejection", false,
     "the account refuses the debits payouts need; the beneficiary must have their bank allow them, then "
     "verify and re-issue"},
    {"invalid_account_number", "invalid_beneficiary_details", false,
     "the account number on file is invalid; ask for updated bank details"},
    {"no_account", "invalid_beneficiary_details", false,
     "no account matches the details on file; ask for updated bank details"},
    {"invalid_currency", "invalid_beneficiary_details", false,
     "the account cannot receive this currency; ask for an account that can"},
    {"incorrect_account_holder_name", "invalid_beneficiary_details", false,
     "the bank says the account holder's name on file is wrong; ask for corrected details"},
    {"incorrect_account_holder_address", "invalid_beneficiary_details", false,
     "the bank says the account holder's address on file is wrong; ask for corrected details"},
    {"incorrect_account_holder_tax_id", "invalid_beneficiary_details", false,
     "the bank says the account holder's tax ID on file is wrong; ask for corrected details"},
    {"expired_card", "invalid_beneficiary_details", false, "the card on file has expired; ask for current details"},
    {"insufficient_funds", "insufficient_funds", false,
     "the platform's balance could not cover the payout; hold it until the balance is funded"},
    {"account_frozen", "compliance_hold", false,
     "the beneficiary's account is frozen; compliance decides before anything else"},
    {"bank_account_restricted", "compliance_hold", false,
     "the account restricts the payouts it accepts; compliance reviews before anything else"},
};

/* s_payout_code - the table row for a failure code, or NULL */
static const payout_code_t *s_payout_code(const char *failure_code)
{
    if (!failure_code || !s_is_token(failure_code, RULES_CODE_MAX, false, "_"))
        return NULL;
    for (size_t i = 0; i < sizeof s_payout_codes / sizeof s_payout_codes[0]; i++)
        if (strcmp(s_payout_codes[i].code, failure_code) == 0)
            return &s_payout_codes[i];
    return NULL;
}

/* triage_payout_root_cause - the root cause of a code (file comment's table) */
const char *triage_payout_root_cause(const char *failure_code)
{
    const payout_code_t *row = s_payout_code(failure_code);
    return row ? row->root_cause : "unknown";
}

/* s_payout_recommendation - the next step for an exception, by root cause:
 * a re-issue only where the same details may work once verified */
static const char *s_payout_recommendation(const payout_code_t *row)
{
    if (!row)
        return "escalate"; /* unknown: a person looks first */
    if (strcmp(row->root_cause, "bank_rejection") == 0)
        return row->destination_gone ? "request_updated_bank_details" : "reissue_after_verification";
    if (strcmp(row->root_cause, "invalid_beneficiary_details") == 0)
        return "request_updated_bank_details";
    if (strcmp(row->root_cause, "insufficient_funds") == 0)
        return "hold";
    assert(strcmp(row->root_cause, "compliance_hold") == 0);
    return "escalate";
}

/* s_payout_already_consistent - CONTRACT §5.1: the payments API already
 * says the payout did not stand and the ledger holds its reversal */
static bool s_payout_already_consistent(const triage_case_t *c)
{
    static const char *const settled[] = {"failed", "reversed", "on_hold", NULL};
    return triage_label_in(settled, c->internal_status) && c->ledger_count[LEDGER_PAYOUT_REVERSAL] > 0;
}

/* s_rule_payout - a payout failure: root cause from the code, then either
 * nothing to do or an exception with its next step */
static void s_rule_payout(const triage_case_t *c, advice_t *out, summary_t *s)
{
    const payout_code_t *row = s_payout_code(c->failure_code);
    const char *root = row ? row->root_cause : "unknown";

    s_add_head(s, c);
    s_sum_add(s, ": %s. Payments API: %s.", s_code_shown(c->failure_code), s_status_shown(c->internal_status));
    s_add_ledger(s, c, LEDGER_PAYOUT_PAID, LEDGER_PAYOUT_REVERSAL);
    s_add_history(s, c);

    if (s_payout_already_consistent(c)) {
        s_set_labels(out, "consistent", root, "no_action", CONF_PAYOUT_CONSISTENT);
        s_sum_add(s, " Already consistent: the payout is marked %s and the reversal is posted; nothing to do.",
                  s_status_shown(c->internal_status));
        return;
    }
    int confidence = row ? CONF_PAYOUT_KNOWN : CONF_PAYOUT_UNKNOWN;
    s_sum_add(s, " Root cause %s: %s.", root,
              row ? row->why : "no recognised failure code; a person must look before any re-issue");
    if (c->ledger_count[LEDGER_PAYOUT_PAID] == 0) {
        /* §5.1 step 3 posts a reversal only against a payout_paid */
        if (confidence > CONF_PAYOUT_NO_PAID)
            confidence = CONF_PAYOUT_NO_PAID;
        s_sum_add(s, " The ledger holds no payout_paid, so the runbook would post no reversal; check the ledger.");
    }
    s_set_labels(out, "payout_exception", root, s_payout_recommendation(row), confidence);
}

/* ------------------------------------------------------------ refunds */

typedef enum { PSP_SUCCEEDED, PSP_FAILED, PSP_PENDING, PSP_UNRECOGNISED } psp_word_t;

/* s_psp_said - the PSP's status for the refund: what validate read from
 * the PSP, else what the event stated */
static const char *s_psp_said(const triage_case_t *c)
{
    return c->psp_status[0] ? c->psp_status : c->status;
}

/* s_psp_word - a Stripe refund status as one of four: canceled is final
 * and moved no money, so it counts as failed; requires_action is not final */
static psp_word_t s_psp_word(const char *status)
{
    static const char *const failed[] = {"failed", "canceled", NULL};
    static const char *const pending[] = {"pending", "requires_action", NULL};
    if (strcmp(status, "succeeded") == 0)
        return PSP_SUCCEEDED;
    if (triage_label_in(failed, status))
        return PSP_FAILED;
    if (triage_label_in(pending, status))
        return PSP_PENDING;
    return PSP_UNRECOGNISED;
}

/* s_ledger_final - does the ledger hold a final entry for the refund? */
static bool s_ledger_final(const triage_case_t *c)
{
    return c->ledger_count[LEDGER_REFUND_SUCCEEDED] > 0 || c->ledger_count[LEDGER_REFUND_FAILED] > 0;
}

/* s_refund_verdict - labels and the reason sentence for a refund case */
typedef struct {
    const char *classification, *root_cause, *recommendation;
    int confidence;
    const char *why;
} refund_verdict_t;

/* s_refund_unrecognised - a combination no rule covers. Never "consistent
 * with no_action": a person looks. The classification says the ledger is
 * missing its final entry only when it is; otherwise "consistent" with a
 * low confidence and escalate, which adds no label to the sets. */
static refund_verdict_t s_refund_unrecognised(const triage_case_t *c)
{
    if (!s_ledger_final(c))
        return (refund_verdict_t){"ledger_write_failed", "unknown", "escalate", CONF_UNRECOGNISED,
                                  "no rule covers what the PSP says against a ledger without a final entry; "
                                  "a person must look"};
    return (refund_verdict_t){"consistent", "unknown", "escalate", CONF_UNRECOGNISED,
                              "no rule covers what the PSP says against the ledger's final entry; a person must "
                              "look"};
}

/* s_refund_succeeded - the PSP refunded: the ledger must say so too */
static refund_verdict_t s_refund_succeeded(const triage_case_t *c)
{
    const int *n = c->ledger_count;
    if (n[LEDGER_REFUND_FAILED] > 0)
        return (refund_verdict_t){"ledger_write_failed", "ledger_mismatch", "escalate", 800,
                                  "the ledger says failed but the PSP refunded; a wrong entry needs a "
                                  "compensating one, which a person decides"};
    if (n[LEDGER_REFUND_SUCCEEDED] > 0)
        return (refund_verdict_t){"consistent", "none", "no_action", 950,
                                  "the PSP and the ledger agree the refund succeeded; nothing to do"};
    if (n[LEDGER_REFUND_INITIATED] > 0)
        return (refund_verdict_t){"ledger_write_failed", "ledger_mismatch", "ledger_correction", 950,
                                  "the PSP refunded but the ledger never recorded the outcome; post "
                                  "refund_succeeded (no money moves)"};
    return s_refund_unrecognised(c);
}

/* s_refund_failed - the PSP did not refund: the ledger must not say it did */
static refund_verdict_t s_refund_failed(const triage_case_t *c)
{
    const int *n = c->ledger_count;
    if (n[LEDGER_REFUND_SUCCEEDED] > 0)
        return (refund_verdict_t){"psp_failed_customer_expects_refund", "ledger_mismatch", "escalate", 950,
                                  "the ledger recorded a refund the PSP never made, so the customer expects "
                                  "money that is not coming; block comms and let a person decide the reversal"};
    if (n[LEDGER_REFUND_FAILED] > 0)
        return (refund_verdict_t){"consistent", "none", "no_action", 950,
                                  "the PSP and the ledger agree the refund failed; nothing to do"};
    if (n[LEDGER_REFUND_INITIATED] > 0)
        return (refund_verdict_t){"ledger_write_failed", "ledger_mismatch", "ledger_correction", 900,
                                  "the refund failed at the PSP but the ledger never recorded the outcome; "
                                  "post refund_failed"};
    return s_refund_unrecognised(c);
}

/* s_refund_pending - not final yet: only the sweep's word means too long */
static refund_verdict_t s_refund_pending(const triage_case_t *c)
{
    if (strcmp(c->provider, "sweep") == 0)
        return (refund_verdict_t){"refund_pending_too_long", "psp_delay", "escalate", 850,
                                  "the sweep found the refund still pending past the sweep age; ops review"};
    return (refund_verdict_t){"consistent", "none", "no_action", 700,
                              "the refund is still pending at the PSP; nothing is final yet"};
}

/* s_refund_verdict - the PSP's word against the ledger (CONTRACT §5.2);
 * two refund_succeeded entries come first, whatever the PSP says */
static refund_verdict_t s_refund_verdict(const triage_case_t *c)
{
    if (c->ledger_count[LEDGER_REFUND_SUCCEEDED] >= 2)
        return (refund_verdict_t){"double_refund_risk", "ledger_mismatch", "escalate", 900,
                                  "the ledger records this refund as succeeded more than once; the customer may "
                                  "be refunded twice"};
    switch (s_psp_word(s_psp_said(c))) {
    case PSP_SUCCEEDED:
        return s_refund_succeeded(c);
    case PSP_FAILED:
        return s_refund_failed(c);
    case PSP_PENDING:
        return s_refund_pending(c);
    case PSP_UNRECOGNISED:
        break;
    }
    return s_refund_unrecognised(c);
}

/* s_add_refund_facts - the PSP's word, the payment, the ledger, the history */
static void s_add_refund_facts(summary_t *s, const triage_case_t *c)
{
    s_sum_add(s, ": PSP says %s", s_status_shown(s_psp_said(c)));
    if (c->psp_status[0] && c->status[0] && strcmp(c->psp_status, c->status) != 0)
        s_sum_add(s, " (the event said %s)", s_status_shown(c->status));
    s_sum_add(s, ".");
    if (c->payment_amount >= 0) {
        char amount[64];
        money_format(c->payment_amount, c->currency, amount, sizeof amount);
        s_sum_add(s, " Payment %s", amount);
        if (c->refunded_amount >= 0) {
            money_format(c->refunded_amount, c->currency, amount, sizeof amount);
            s_sum_add(s, ", %s refunded before", amount);
        }
        s_sum_add(s, ".");
    }
    s_add_ledger(s, c, LEDGER_REFUND_INITIATED, LEDGER_REFUND_REVERSAL);
    s_add_history(s, c);
}

/* s_add_customer_note - a flagged or high-risk customer changes who
 * approves (policy), not what triage thinks happened */
static void s_add_customer_note(summary_t *s, const triage_case_t *c)
{
    bool high = strcmp(c->customer_risk, "high") == 0;
    if (!c->flagged && !high)
        return;
    s_sum_add(s, " Customer %s%s%s: a person approves any correction (policy).", c->flagged ? "flagged" : "",
              c->flagged && high ? ", " : "", high ? "risk high" : "");
}

/* s_rule_refund - a refund outcome reconciled against the ledger */
static void s_rule_refund(const triage_case_t *c, advice_t *out, summary_t *s)
{
    refund_verdict_t v = s_refund_verdict(c);
    s_set_labels(out, v.classification, v.root_cause, v.recommendation, v.confidence);
    s_add_head(s, c);
    s_add_refund_facts(s, c);
    s_sum_add(s, " %s: %s.", v.classification, v.why);
    s_add_customer_note(s, c);
}

/* s_rule_unknown_kind - neither payout nor refund: validate never sends
 * one, but triage never fails, so a person looks (confidence 0) */
static void s_rule_unknown_kind(const triage_case_t *c, advice_t *out, summary_t *s)
{
    s_set_labels(out, "consistent", "unknown", "escalate", CONF_UNKNOWN_KIND);
    s_add_head(s, c);
    s_sum_add(s, ": unrecognised case kind; a person must look.");
}

/* ------------------------------------------------------------- input */

/* s_json_str - copy a string member into a bounded buffer ("" if absent) */
static void s_json_str(const json_t *o, const char *key, char *out, size_t outlen)
{
    json_t *v = json_object_get(o, key);
    snprintf(out, outlen, "%s", json_is_string(v) ? json_string_value(v) : "");
}

/* s_json_int - an integer member, or dflt */
static int64_t s_json_int(const json_t *o, const char *key, int64_t dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t) json_integer_value(v) : dflt;
}

/* s_ledger_index - an entry type's index, -1 if not one of the six */
static int s_ledger_index(const char *type)
{
    static const char *types[LEDGER_NTYPES] = {"payout_paid",      "payout_reversal", "refund_initiated",
                                               "refund_succeeded", "refund_failed",   "refund_reversal"};
    for (int i = 0; i < LEDGER_NTYPES; i++)
        if (strcmp(type, types[i]) == 0)
            return i;
    return -1;
}

/* triage_case_from_event - see triage.h: triage reads each input with it,
 * and `payguard replay --stage triage --dry-run` re-reads recorded inputs
 * with it, so both see a case the same way */
void triage_case_from_event(const event_t *in, triage_case_t *c)
{
    memset(c, 0, sizeof *c);
    c->payment_amount = c->refunded_amount = -1;
    snprintf(c->event, sizeof c->event, "%.15s", event_head(in)->type);
    json_t *b = event_body_to_json(in);
    s_json_str(b, "kind", c->kind, sizeof c->kind);
    s_json_str(b, "case_id", c->case_id, sizeof c->case_id);
    s_json_str(b, "ref", c->ref, sizeof c->ref);
    s_json_str(b, "provider", c->provider, sizeof c->provider);
    s_json_str(b, "event_type", c->event_type, sizeof c->event_type);
    s_json_str(b, "status", c->status, sizeof c->status);
    s_json_str(b, "currency", c->currency, sizeof c->currency);
    s_json_str(b, "failure_code", c->failure_code, sizeof c->failure_code);
    s_json_str(b, "failure_message", c->failure_message, sizeof c->failure_message);
    s_json_str(b, "previous_status", c->previous_status, sizeof c->previous_status);
    c->amount = s_json_int(b, "amount", 0);
    c->psp_time = s_json_int(b, "psp_time", 0);
    c->receipts = (int) s_json_int(b, "receipts", 1);
    c->duplicates = (int) s_json_int(b, "duplicates", 0);
    c->out_of_order = (int) s_json_int(b, "out_of_order", 0);
    s_json_str(json_object_get(b, "payout_state"), "status", c->internal_status, sizeof c->internal_status);
    s_json_str(json_object_get(b, "psp_state"), "status", c->psp_status, sizeof c->psp_status);
    json_t *pay = json_object_get(b, "payment_state");
    if (pay) {
        c->payment_amount = s_json_int(pay, "amount", -1);
        c->refunded_amount = s_json_int(pay, "refunded_amount", -1);
        s_json_str(pay, "customer_risk", c->customer_risk, sizeof c->customer_risk);
        c->flagged = json_is_true(json_object_get(pay, "flagged"));
    }
    json_t *entries = json_object_get(json_object_get(b, "ledger_state"), "entries");
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e)
    {
        json_t *t = json_object_get(e, "type");
        int k = json_is_string(t) ? s_ledger_index(json_string_value(t)) : -1;
        if (k >= 0)
            c->ledger_count[k]++;
    }
    json_decref(b);
}

/* ------------------------------------------------------------ entry point */

/* triage_rules - dispatch on the event, then the kind. Any event but
 * duplicate and out_of_order is treated as validated. */
void triage_rules(const triage_case_t *c, advice_t *out)
{
    assert(c && out);
    memset(out, 0, sizeof *out);
    summary_t s;
    s_sum_init(&s, out->summary, sizeof out->summary);

    bool payout = strcmp(c->kind, "payout") == 0, refund = strcmp(c->kind, "refund") == 0;
    if (strcmp(c->event, "duplicate") == 0)
        s_rule_duplicate(c, out, &s);
    else if (strcmp(c->event, "out_of_order") == 0)
        s_rule_out_of_order(c, out, &s);
    else if (payout)
        s_rule_payout(c, out, &s);
    else if (refund)
        s_rule_refund(c, out, &s);
    else
        s_rule_unknown_kind(c, out, &s);
    s_sum_finish(&s);

    const char *const *classes = refund ? triage_refund_classes : triage_payout_classes;
    assert(triage_label_in(classes, out->classification));
    assert(triage_label_in(triage_root_causes, out->root_cause));
    assert(triage_label_in(triage_recommendations, out->recommendation));
    (void) classes;
}
