/* policy - the route a case takes: nothing to do, auto-approved by policy,
 * or which human roles must agree (CONTRACT.md §4), and the policy input
 * read from a triaged event. Pure (no I/O): approve routes with it, and
 * `payguard replay --dry-run` shows what it would decide.
 *
 * Policy reads only recorded facts and the advice's closed-set labels and
 * confidence (policy_input_t): free text, a model's included, cannot reach it.
 */
#ifndef PG_POLICY_H
#define PG_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define POLICY_MAX_ROLES 8
#define POLICY_ROLE_MAX 32
#define POLICY_MAX_CURRENCIES 64
#define POLICY_TIERS 3

/* policy_currency_t - one currency's thresholds, in its minor units */
typedef struct {
    char currency[4];
    int64_t tier2_from;      /* amount >= this: tier 2 (USD 500000 = 5,000.00) */
    int64_t tier3_above;     /* amount > this: tier 3 (USD 5000000 = 50,000.00) */
    int64_t refund_auto_max; /* refunds <= this may be auto-approved (USD 5000 = 50.00) */
} policy_currency_t;

typedef struct {
    policy_currency_t currencies[POLICY_MAX_CURRENCIES];
    size_t ncurrencies;
    int confidence_min_permille; /* below: a human decides (700) */
    char tier_roles[POLICY_TIERS][POLICY_MAX_ROLES][POLICY_ROLE_MAX];
    size_t ntier_roles[POLICY_TIERS];
} policy_t;

/* policy_load - from the group configuration:
 *   approve/confidence_min   permille, default 700
 *   approve/tier1_roles      "payments_ops_lead"
 *   approve/tier2_roles      "finance_manager compliance"
 *   approve/tier3_roles      "treasury finance_manager compliance"
 *   approve/thresholds/<CUR> "<tier2_from> <tier3_above> <refund_auto_max>"
 *                            (minor units; default USD = 500000 5000000 5000)
 * NULL-safe err; -1 with a message naming the key on a bad value. */
int policy_load(const config_t *c, policy_t *out, char *err, size_t errlen);

typedef enum { ROUTE_NO_ACTION = 0, ROUTE_AUTO, ROUTE_HUMANS } route_kind_t;

/* policy_input_t - everything policy may read */
typedef struct {
    char kind[16];           /* payout | refund */
    char classification[48]; /* the advice's label (closed set) */
    int confidence_permille; /* the advice's confidence */
    int64_t amount;
    char currency[4];
    char psp_status[32]; /* refunds: the PSP's word */
    int ledger_refund_initiated, ledger_refund_succeeded, ledger_refund_failed;
    int ledger_payout_paid, ledger_payout_reversal;
    char internal_status[32]; /* payouts: payments API status */
    char customer_risk[16];   /* low | medium | high | "" */
    bool flagged;
} policy_input_t;

/* route_t - what policy decided, and why */
typedef struct {
    route_kind_t kind;
    int tier;                                      /* 1..3 when humans decide, else 0 */
    char roles[POLICY_MAX_ROLES][POLICY_ROLE_MAX]; /* distinct people, one per role */
    size_t nroles;
    char action[48];  /* what execution will do: payout_exception, refund_post_succeeded,
                         refund_post_failed, refund_failed_after_success, ops_review_ticket, none */
    char rule[64];    /* the rule that chose the route, e.g. "payout_tier_2",
                         "refund_auto_approve", "refund_human:customer_flagged",
                         "low_confidence", "unconfigured_currency", "already_consistent" */
    char reason[256]; /* one human-readable line */
} route_t;

struct json_t;
/* policy_input_from_json - what policy may read, from the body of a
 * "triaged" event (kind, amount, currency, the state validate read, the
 * advice's classification and confidence); absent fields read as ""/0.
 * One reading for approve and for `payguard replay --stage approve --dry-run`. */
void policy_input_from_json(const struct json_t *body, policy_input_t *in);

/* policy_route - CONTRACT.md §4 (defaults configurable):
 *   payouts (payout_exception): by amount per currency: < tier2_from one
 *     tier 1 role; tier2_from..tier3_above tier 2 roles; > tier3_above tier 3
 *     roles (which include tier 2's); an unconfigured currency: tier 3.
 *     classification consistent: ROUTE_NO_ACTION ("already_consistent").
 *   refunds: auto-approved only when all hold: amount <= refund_auto_max,
 *     customer risk low and not flagged, the PSP says succeeded, and the
 *     ledger lacks only the final refund_succeeded entry (refund_initiated
 *     present, no refund_succeeded/refund_failed) — and the confidence is at
 *     least confidence_min. Otherwise humans, by the amount tiers. consistent
 *     (and nothing to correct): ROUTE_NO_ACTION.
 *   Any case whose confidence is below confidence_min goes to humans, rule
 *   "low_confidence", whatever else would hold. */
void policy_route(const policy_t *p, const policy_input_t *in, route_t *out);

/* policy_tier - set out's tier, roles and kind ROUTE_HUMANS for tier t
 * (escalation moves a pending case to the next tier); -1 if t > 3 */
int policy_tier(const policy_t *p, int t, route_t *out);

/* policy_amount_tier - the tier an amount falls in (3 for an unconfigured currency) */
int policy_amount_tier(const policy_t *p, int64_t amount, const char *currency);

#endif
