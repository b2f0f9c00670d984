/* triage.h - advice for a case: deterministic rules, and an optional LLM.
 *
 *   rules.c  the deterministic classifier: the default, and the fallback;
 *            and the case read from an input event
 *   llm.c    an OpenAI-compatible chat-completions client (libcurl multi,
 *            json_schema response format), its prompt and its strict
 *            validation of the answer
 *   main.c   the stage
 *
 * The advice is ADVISORY. Nothing here acts; approve reads only the labels
 * and the confidence, which come from the closed sets below, so nothing a
 * model writes in free text can change a route or an action.
 */
#ifndef PG_TRIAGE_H
#define PG_TRIAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

#define TRIAGE_ID_MAX 160
#define TRIAGE_TEXT_MAX 1024      /* summary / timeline */
#define TRIAGE_UNTRUSTED_MAX 300  /* webhook text put in a prompt */

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
    char event[16];               /* "validated" | "duplicate" | "out_of_order" */
    char kind[16];                /* "payout" | "refund" */
    char case_id[TRIAGE_ID_MAX];
    char ref[128];                /* payout id / refund id */
    char provider[16];            /* stripe | standard | sweep */
    char event_type[64];          /* e.g. payout.failed, refund.succeeded, sweep */
    char status[32];              /* what the PSP event states */
    int64_t amount;               /* minor units */
    char currency[4];
    int64_t psp_time;             /* unix seconds */
    char failure_code[64];
    char failure_message[512];    /* UNTRUSTED webhook text */
    /* state read by validate */
    char internal_status[32];     /* payments API payout status: pending|paid|failed|reversed|on_hold */
    char psp_status[32];          /* PSP's refund status */
    int ledger_count[LEDGER_NTYPES];
    int64_t payment_amount;       /* -1 unknown */
    int64_t refunded_amount;      /* -1 unknown */
    char customer_risk[16];       /* low|medium|high */
    bool flagged;
    /* history of the case (counts include this event) */
    int receipts;
    int duplicates;
    int out_of_order;
    char previous_status[32];     /* the status the case had before this event ("" if new) */
} triage_case_t;

/* advice_t - a recommendation; every label from the closed sets below */
typedef struct {
    char classification[48];
    char root_cause[40];
    char recommendation[40];
    int confidence_permille;      /* 0..1000 (events carry no floats) */
    char summary[TRIAGE_TEXT_MAX];  /* a short human-readable timeline and why */
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

/* ------------------------------------------------------------------ LLM */

typedef struct llm_t llm_t;
typedef struct llm_req_t llm_req_t;

typedef struct {
    const char *base_url;   /* e.g. http://127.0.0.1:8090/llm (POSTs {base}/v1/chat/completions) */
    const char *model;
    const char *api_key;    /* Bearer; may be NULL (llama-server, Ollama) */
    long timeout_ms;        /* per attempt */
    int max_attempts;       /* transient failures (5xx, 429, timeout, refused) retried */
    int max_inflight;       /* concurrent requests; llm_start refuses beyond */
} llm_opts_t;

/* llm_new - NULL + err if the options are unusable; the key is copied and
 * wiped on destroy, never logged */
llm_t *llm_new(const llm_opts_t *opts, char *err, size_t errlen);
void llm_destroy(llm_t **self_p);
size_t llm_inflight(const llm_t *self);
const char *llm_model(const llm_t *self);

/* llm_start - begin asking about case c (rules: the deterministic advice,
 * given to the model as a baseline). Non-blocking. NULL if at capacity.
 * user is handed back by llm_req_user. */
llm_req_t *llm_start(llm_t *self, const triage_case_t *c, const advice_t *rules, void *user);

/* llm_poll - drive transfers and retry timers without blocking; the next
 * finished request, or NULL. Call it every loop turn. */
llm_req_t *llm_poll(llm_t *self);

/* llm_result - 0 and validated advice in out; -1 and the fallback reason
 * ("llm: HTTP 500 after 2 attempts", "llm: timeout", "llm: answer is not
 * JSON", "llm: classification \"approve\" is not one of ...",
 * "llm: confidence 1.7 outside [0, 1]", "llm: empty answer", ...) */
int llm_result(const llm_req_t *req, advice_t *out, char *reason, size_t reasonlen);
void *llm_req_user(const llm_req_t *req);
const char *llm_req_prompt_sha256(const llm_req_t *req);  /* hex of the request body sent */
int64_t llm_req_latency_ms(const llm_req_t *req);
int llm_req_attempts(const llm_req_t *req);
void llm_req_destroy(llm_req_t **req_p);

/* llm_prompt_json - the request body llm_start would send (for tests; the
 * dry run of `payguard replay --stage triage` calls no model and does not
 * use it); the caller frees */
char *llm_prompt_json(const llm_t *self, const triage_case_t *c, const advice_t *rules);

/* llm_parse_answer - validate a chat-completions response body for case c
 * (exposed for tests); same results as llm_result */
int llm_parse_answer(const char *body, size_t len, const triage_case_t *c, advice_t *out, char *reason,
                     size_t reasonlen);

#endif
