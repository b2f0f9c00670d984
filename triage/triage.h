/* triage.h - advice for a case: deterministic rules (common/rules.h), and
 * an optional LLM.
 *
 *   llm.c    an OpenAI-compatible chat-completions client (libcurl multi,
 *            json_schema response format), its prompt and its strict
 *            validation of the answer
 *   main.c   the stage
 *
 * The advice is ADVISORY. Nothing here acts; approve reads only the labels
 * and the confidence, which come from closed sets (rules.h), so nothing a
 * model writes in free text can change a route or an action.
 */
#ifndef PG_TRIAGE_H
#define PG_TRIAGE_H

#include "rules.h"

/* ------------------------------------------------------------------ LLM */

typedef struct llm_t llm_t;
typedef struct llm_req_t llm_req_t;

/* llm_observe_fn - an attempt ended after ms: the system ("llm") and the
 * status class ("2xx".."5xx", "error") */
typedef void(llm_observe_fn)(void *arg, const char *system, const char *status_class, int64_t ms);

typedef struct {
    const char *base_url; /* e.g. http://127.0.0.1:8090/llm (POSTs {base}/v1/chat/completions) */
    const char *model;
    const char *api_key;      /* Bearer; may be NULL (llama-server, Ollama) */
    long timeout_ms;          /* per attempt */
    int max_attempts;         /* transient failures (5xx, 429, timeout, refused) retried */
    int max_inflight;         /* concurrent requests; llm_start refuses beyond */
    int breaker_failures;     /* consecutive transient failures that open the breaker; 0: none */
    long breaker_cooldown_ms; /* then one probe */
    long rate_per_s;          /* attempts a second; 0: no limit */
    llm_observe_fn *observe;  /* each attempt's latency (may be NULL) */
    void *observe_arg;
} llm_opts_t;

typedef enum { LLM_BREAKER_CLOSED = 0, LLM_BREAKER_OPEN = 1, LLM_BREAKER_HALF_OPEN = 2 } llm_breaker_t;

/* llm_breaker - closed, open, or half-open (the cool-down is over: the next
 * request probes); llm_breaker_opened - how many times it opened;
 * llm_waiting - requests waiting for a retry or a rate token */
llm_breaker_t llm_breaker(const llm_t *self);
uint64_t llm_breaker_opened(const llm_t *self);
size_t llm_waiting(const llm_t *self);

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
/* llm_start_traced - llm_start whose every attempt carries the header
 * "traceparent: <traceparent>" (the call's own span; NULL or "": none) */
llm_req_t *llm_start_traced(llm_t *self, const triage_case_t *c, const advice_t *rules, void *user,
                            const char *traceparent);

/* llm_poll - drive transfers and retry timers without blocking; the next
 * finished request, or NULL. Call it every loop turn. */
llm_req_t *llm_poll(llm_t *self);

/* llm_result - 0 and validated advice in out; -1 and the fallback reason
 * ("llm: HTTP 500 after 2 attempts", "llm: timeout", "llm: answer is not
 * JSON", "llm: classification \"approve\" is not one of ...",
 * "llm: confidence 1.7 outside [0, 1]", "llm: empty answer", ...) */
int llm_result(const llm_req_t *req, advice_t *out, char *reason, size_t reasonlen);
void *llm_req_user(const llm_req_t *req);
const char *llm_req_prompt_sha256(const llm_req_t *req); /* hex of the request body sent */
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
