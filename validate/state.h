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
    struct httpc_multi_t *http; /* the stage's engine (stage_http) */
    int sys_payments, sys_ledger, sys_psp;
} outside_t;

/* state_t - what was read, as JSON (owned; state_clear frees) */
typedef struct {
    json_t *payout;     /* payments: GET /payouts/{id} */
    json_t *payment;    /* payments: GET /payments/{id} */
    json_t *psp_refund; /* PSP: GET /v1/refunds/{id} */
    json_t *ledger;     /* ledger: GET /entries?ref= ({"entries":[...]}) */
} state_t;

/* state_read_t - the reads one item needs, all in flight at once: a payout
 * reads the payments API and the ledger; a refund the payments API, the
 * PSP and the ledger. state_judge then applies the checks in their fixed
 * order to the answers, so the verdict is the one sequential reads would
 * give (a read whose answer the first failing check makes moot is simply
 * not looked at). */
typedef struct state_read_t state_read_t;
typedef void(state_done_fn)(void *user);

/* state_read_start - start the reads of item; fn(user) once every answer
 * is back. NULL (and reason) if they cannot be started. */
state_read_t *state_read_start(outside_t *out, const wh_item_t *item, state_done_fn *fn, void *user, char *reason,
                               size_t reasonlen);
/* state_read_done - every answer is back */
bool state_read_done(const state_read_t *r);
/* state_judge - the checks of CONTRACT.md §5.1/§5.2 on the answers: on
 * CHECK_REJECT code is a metric label (unknown_payout, unknown_payment,
 * unknown_refund, currency_mismatch, amount_mismatch,
 * refund_exceeds_payment) and reason one precise line; on CHECK_TRANSIENT
 * reason says what failed. The JSON read moves into st. */
check_t state_judge(state_read_t *r, const wh_item_t *item, state_t *st, char code[40], char *reason, size_t reasonlen);
/* state_read_free - NULL-safe; reads still in flight are abandoned (their
 * answers are dropped when they come) */
void state_read_free(state_read_t **r_p);
void state_clear(state_t *st);

/* state_psp_refund_start - the sweep's read of one PSP refund: fn(user, obj
 * or NULL, reason) on the loop thread; obj is the callee's */
typedef void(state_refund_fn)(void *user, json_t *obj, const char *reason);
int state_psp_refund_start(outside_t *out, const char *refund_id, state_refund_fn *fn, void *user);

#endif
