/* rules - a case's deterministic advice: the classifier triage runs by
 * default and falls back to, and the case as an input event states it.
 * Pure (no I/O): triage runs it, and so does `payguard replay --dry-run`.
 *
 * The advice is ADVISORY. Nothing here acts; approve reads only the labels
 * and the confidence, which come from the closed sets below, so nothing a
 * model writes in free text can change a route or an action.
 */
#ifndef PG_RULES_H
#define PG_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

#define TRIAGE_ID_MAX 160
#define TRIAGE_TEXT_MAX 1024     /* summary / timeline */
#define TRIAGE_UNTRUSTED_MAX 300 /* webhook text put in a prompt */

/* ledger entry types, in CONTRACT.md §2.2 order; index into ledger_count */
enum {
    LEDGER_PAYOUT_PAID = 0,
    LEDGER_PAYOUT_REVERSAL,
    LEDGER_REFUND_INITIATED,
    LEDGER_REFUND_SUCCEEDED,
    LEDGER_REFUND_FAILED,
    LEDGER_REFUND_REVERSAL,
    LEDGER_NTYPES
};

/* triage_case_t - everything triage knows of a case: the event that brought
 * it (validated, duplicate or out_of_order), the state validate read, and
 * the case's history so far. Strings are "" when unknown. */
typedef struct {
    char event[16]; /* "validated" | "duplicate" | "out_of_order" */
    char kind[16];  /* "payout" | "refund" */
    char case_id[TRIAGE_ID_MAX];
    char ref[128];       /* payout id / refund id */
    char provider[16];   /* stripe | standard | sweep */
    char event_type[64]; /* e.g. payout.failed, refund.succeeded, sweep */
    char status[32];     /* what the PSP event states */
    int64_t amount;      /* minor units */
    char currency[4];
    int64_t psp_time; /* unix seconds */
    char failure_code[64];
    char failure_message[512]; /* UNTRUSTED webhook text */
    /* state read by validate */
    char internal_status[32]; /* payments API payout status: pending|paid|failed|reversed|on_hold */
    char psp_status[32];      /* PSP's refund status */
    int ledger_count[LEDGER_NTYPES];
    int64_t payment_amount;  /* -1 unknown */
    int64_t refunded_amount; /* -1 unknown */
    char customer_risk[16];  /* low|medium|high */
    bool flagged;
    /* history of the case (counts include this event) */
    int receipts;
    int duplicates;
    int out_of_order;
    char previous_status[32]; /* the status the case had before this event ("" if new) */
} triage_case_t;

/* advice_t - a recommendation; every label from the closed sets below */
typedef struct {
    char classification[48];
    char root_cause[40];
    char recommendation[40];
    int confidence_permille;       /* 0..1000 (events carry no floats) */
    char summary[TRIAGE_TEXT_MAX]; /* a short human-readable timeline and why */
} advice_t;

/* The closed sets (NULL-terminated):
 * classification, refund cases: webhook_duplicate, out_of_order_event,
 *   ledger_write_failed, psp_failed_customer_expects_refund,
 *   double_refund_risk, refund_pending_too_long, consistent
 * classification, payout cases: payout_exception, webhook_duplicate,
 *   out_of_order_event, consistent
 * root_cause: bank_rejection, insufficient_funds, compliance_hold,
 *   invalid_beneficiary_details, ledger_mismatch, psp_delay, duplicate_delivery,
 *   none, unknown
 * recommendation: reissue_after_verification, hold,
 *   request_updated_bank_details, escalate, ledger_correction, no_action */
extern const char *const triage_refund_classes[];
extern const char *const triage_payout_classes[];
extern const char *const triage_root_causes[];
extern const char *const triage_recommendations[];

/* triage_label_in - is value one of the NULL-terminated set? */
bool triage_label_in(const char *const *set, const char *value);

/* triage_case_from_event - the case as an input event (validated, duplicate
 * or out_of_order) states it: facts, the state validate read, the history.
 * Absent fields read as ""/0 (amounts of the payment as -1, receipts as 1).
 * One reading for triage and `payguard replay --stage triage --dry-run`. */
void triage_case_from_event(const event_t *in, triage_case_t *c);

/* triage_rules - the deterministic advice for a case (never fails).
 * Payout root cause from the PSP failure code (Stripe's payout failure
 * codes); refund classification from the PSP's word against the ledger. */
void triage_rules(const triage_case_t *c, advice_t *out);

/* triage_payout_root_cause - Stripe payout failure code -> root cause */
const char *triage_payout_root_cause(const char *failure_code);

#endif
