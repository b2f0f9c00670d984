/* state - validate's reads of the operator's own systems (CONTRACT.md §2,
 * §5.1, §5.2): does the payout or payment exist, do amount and currency
 * match, what do the ledger and the PSP say. The answers travel on with the
 * event, so later stages decide from recorded state, not from fresh reads.
 *
 * Only a 404 (or a mismatch) rejects a webhook. Every other failure —
 * 5xx, 429, timeouts, refused connections, and also 401/403 (our
 * credentials, not the webhook, are wrong) — is CHECK_TRANSIENT: the
 * receipt is retried later and never turned into a rejection.
 */
#ifndef PG_VALIDATE_STATE_H
#define PG_VALIDATE_STATE_H

#include <jansson.h>

#include "httpc.h"
#include "validate.h"

typedef enum { CHECK_OK = 0, CHECK_REJECT, CHECK_TRANSIENT } check_t;

typedef struct {
    httpc_t *payments;
    httpc_t *ledger;
    httpc_t *psp;
    httpc_retry_t retry;
} outside_t;

/* state_t - what was read, as JSON (owned; state_clear frees) */
typedef struct {
    json_t *payout;     /* payments: GET /payouts/{id} */
    json_t *payment;    /* payments: GET /payments/{id} */
    json_t *psp_refund; /* PSP: GET /v1/refunds/{id} */
    json_t *ledger;     /* ledger: GET /entries?ref= ({"entries":[...]}) */
} state_t;

/* state_check - read and compare; on CHECK_REJECT code is a metric label
 * (unknown_payout, unknown_payment, unknown_refund, currency_mismatch,
 * amount_mismatch, refund_exceeds_payment) and reason one precise line;
 * on CHECK_TRANSIENT reason says what failed */
check_t state_check(outside_t *out, const wh_item_t *item, state_t *st, char code[40], char *reason, size_t reasonlen);
void state_clear(state_t *st);

/* state_fetch_psp_refund - the PSP's refund object (sweep); NULL + reason */
json_t *state_fetch_psp_refund(outside_t *out, const char *refund_id, check_t *verdict, char *reason, size_t reasonlen);

#endif
