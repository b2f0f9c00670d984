/*++
 * NAME
 *	triage - advisory root cause and next step for a case
 * SYNOPSIS
 *	triage [-c CONFIG] [-i INDEX]	(started by `payguard up`, or systemd:
 *					payguard-triage@INDEX.service; N workers)
 * DESCRIPTION
 *	Reads what validate decided about a case and recommends, as ADVICE
 *	ONLY: a classification, a root cause, a next step, a confidence and a
 *	short human-readable timeline.
 *
 *	The deterministic rules (triage/rules.c) always run: they are the
 *	default, the fallback, and the baseline recorded beside any model's
 *	answer. When outside/llm is set, a validated case is also put to an
 *	OpenAI-compatible model (triage/llm.c: chat completions with a strict
 *	json_schema). The model's answer is used only if it is valid field by
 *	field (labels from the closed sets, confidence in [0, 1], bounded
 *	text); otherwise, and on any failure (HTTP error, 429, timeout, no
 *	answer), the rules' advice is used and the reason recorded.
 *
 *	A slow model never stalls the worker: requests run concurrently (libcurl
 *	multi), up to triage/llm_max_inflight per worker; cases beyond that wait
 *	in a queue in arrival order (up to STAGE_MAX_DEFERRED per worker, then
 *	input stops: back-pressure). Every waiting input is reported to its
 *	producer as in progress ("wait"), so a busy worker's cases are not sent
 *	again to another worker; the input stays unacknowledged until its advice
 *	is journaled, so a crash re-delivers it.
 *	Several workers share one stage (triage/instances): they keep no state,
 *	everything they judge arrives in the event. So a worker's journal
 *	needs only what approve and audit have not acknowledged, and its dedup
 *	memory: segments both acknowledged and older than triage/retention_s
 *	(7 days) are removed, after a checkpoint of that memory.
 * INPUT
 *	"validated", "duplicate" and "out_of_order" events from validate (the
 *	facts, the state validate read, the case's history).
 * OUTPUT
 *	"triaged": the input's facts plus "advice" {advisory: true,
 *	classification, root_cause, recommendation, confidence_permille,
 *	summary, source: "rules" | "llm:<model>", fallback_reason,
 *	prompt_sha256, latency_ms, attempts} and "rules_advice" (the baseline).
 *	For a validated case it goes to approve and audit; for a duplicate or an
 *	out-of-order event to audit only: advice on the timeline, nothing acts.
 * SECURITY
 *	Holds the LLM API key (triage/llm_key_file, a file or, under systemd,
 *	credential:<name>: common/credential.h; never logged or sent
 *	elsewhere). Webhook text reaches the model only inside a delimited
 *	UNTRUSTED block, truncated; nothing the model writes is executed, and
 *	only the closed-set labels and the confidence are read by policy.
 * FAILURE
 *	A model failure is a fallback, never an error. After
 *	outside/breaker_failures consecutive failures (5xx, 429, timeouts) the
 *	model's breaker opens: for outside/breaker_cooldown_ms the rules answer
 *	at once, without asking, then one probe decides (triage/llm.c). Its
 *	state is in `payguard status` and /metrics (system "llm"). Journal
 *	failures exit (75).
 * CONFIGURATION
 *	outside/llm, triage/llm_model, llm_key_file, llm_timeout_ms,
 *	llm_attempts, llm_max_inflight, llm_rate_per_s, instances, retention_s;
 *	outside/breaker_failures, breaker_cooldown_ms (the model's breaker).
 *--*/
#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpc.h"
#include "log.h"
#include "stage.h"
#include "triage.h"

static stage_def_t s_def; /* file-static: s_init sets max_deferred from config */

/* pend - a case waiting for the model */
typedef struct {
    stage_pending_t *p;
    triage_case_t c;
    advice_t rules;
    bool traced;          /* the case has a trace: the model call is a span of it */
    trace_t parent, span; /* triage's span of the case, the call's own */
    int64_t asked_ms;     /* the call started (its span's start) */
} pend_t;

typedef struct {
    stage_t *st;
    llm_t *llm;                        /* NULL: rules only */
    char source[80];                   /* "llm:<model>" */
    pend_t *queue[STAGE_MAX_DEFERRED]; /* cases waiting for a model slot, a ring */
    size_t qhead, qn;
} triage_t;

/* s_ask - start pd's model call (in its trace, if any); false at capacity */
static bool s_ask(triage_t *t, pend_t *pd)
{
    char tp[TRACE_HEADER_LEN + 1] = "";
    if (pd->traced)
        trace_format(&pd->span, tp);
    pd->asked_ms = stage_now_ms();
    return llm_start_traced(t->llm, &pd->c, &pd->rules, pd, tp) != NULL;
}

/* s_traced - pd in the trace of the input being handled, if it has one */
static void s_traced(triage_t *t, pend_t *pd)
{
    pd->traced = stage_trace(t->st, &pd->parent) == 0;
    if (pd->traced)
        trace_child(&pd->parent, &pd->span);
}

/* s_advice_json - an advice as a JSON object (no floats: permille) */
static json_t *s_advice_json(const advice_t *a)
{
    return json_pack("{s:s, s:s, s:s, s:i, s:s}", "classification", a->classification, "root_cause", a->root_cause,
                     "recommendation", a->recommendation, "confidence_permille", a->confidence_permille, "summary",
                     a->summary);
}

/* s_emit - journal the advice with the input's facts; validated cases go
 * on to approve, duplicates and out-of-order events only to the timeline */
static void s_emit(triage_t *t, const event_t *in, const advice_t *advice, const advice_t *rules, const char *source,
                   const char *fallback, const llm_req_t *req)
{
    json_t *a = s_advice_json(advice);
    json_object_set_new(a, "advisory", json_true());
    json_object_set_new(a, "source", json_string(source));
    if (fallback)
        json_object_set_new(a, "fallback_reason", json_string(fallback));
    if (req) {
        json_object_set_new(a, "prompt_sha256", json_string(llm_req_prompt_sha256(req)));
        json_object_set_new(a, "latency_ms", json_integer(llm_req_latency_ms(req)));
        json_object_set_new(a, "attempts", json_integer(llm_req_attempts(req)));
    }
    json_t *r = s_advice_json(rules);
    event_body_t *b = event_body_new();
    event_body_copy(b, in);
    /* validate's time, the same whichever worker advises: stages after
     * triage derive their clocks from it, so a re-run reaches the same record */
    event_body_int(b, "validated_ms", event_head(in)->time_ms);
    event_body_json(b, "advice", a);
    event_body_json(b, "rules_advice", r);
    bool act = event_head(in)->kind == EV_VALIDATED;
    stage_emit(t->st, EV_TRIAGED, event_head(in)->case_key, b, act ? STAGE_TO_BOTH : STAGE_TO_AUDIT);
    event_body_destroy(&b);
    json_decref(a);
    json_decref(r);
    stage_count(t->st, "payguard_triage_advice_total", "source", fallback ? "rules_fallback" : source, 1);
    stage_count(t->st, "payguard_triage_classification_total", "classification", advice->classification, 1);
}

/* s_handle - rules now; the model, when configured, for validated cases */
static int s_handle(stage_t *st, const event_t *in, void *arg)
{
    (void) st;
    triage_t *t = arg;
    event_type_t type = event_head(in)->kind;
    switch (type) {
    case EV_VALIDATED:
    case EV_DUPLICATE:
    case EV_OUT_OF_ORDER:
        break; /* validate's decisions: advised below */
    case EV_RECEIPT:
    case EV_REJECTED:
    case EV_IGNORED:
    case EV_SWEEP:
    case EV_TRIAGED:
    case EV_ROUTED:
    case EV_DECISION:
    case EV_APPROVED:
    case EV_DENIED:
    case EV_EXPIRED:
    case EV_EXECUTED:
    case EV_RUNBOOK:
    case EV_STEP:
    case EV_REVIEW:
    case EV_NOTICE:
    case EV_ACCESS_DENIED:
    case EV_DECISION_REFUSED:
    case EV_ESCALATED:
    case EV_CLOSED:
    case EV_AUDIT_VERIFIED:
    case EV_NONE:
    case EV_NTYPES:
        log_warn("ignoring a %s event from %s: triage takes validate's decisions", event_head(in)->type,
                 event_head(in)->stage);
        return STAGE_DONE;
    }
    pend_t *pd = calloc(1, sizeof *pd);
    triage_case_from_event(in, &pd->c);
    triage_rules(&pd->c, &pd->rules);
    if (t->llm && type == EV_VALIDATED) {
        /* in arrival order: a case waits if others wait before it */
        s_traced(t, pd);
        if (t->qn || !s_ask(t, pd)) {
            assert(t->qn < STAGE_MAX_DEFERRED); /* the skeleton stops input at max_deferred */
            t->queue[(t->qhead + t->qn++) % STAGE_MAX_DEFERRED] = pd;
        }
        pd->p = stage_defer(t->st);
        return STAGE_DEFERRED;
    } else {
        s_emit(t, in, &pd->rules, &pd->rules, "rules", NULL, NULL);
    }
    free(pd);
    return STAGE_DONE;
}

/* s_tick - finish the cases whose model answer (or failure) came back */
static void s_tick(stage_t *st, void *arg)
{
    (void) st;
    triage_t *t = arg;
    if (!t->llm)
        return;
    llm_req_t *req;
    while ((req = llm_poll(t->llm)) != NULL) {
        pend_t *pd = llm_req_user(req);
        advice_t advice;
        char reason[512];
        stage_resume(t->st, pd->p);
        int got = llm_result(req, &advice, reason, sizeof reason);
        if (pd->traced)
            stage_span(t->st, "POST llm", OTLP_CLIENT, &pd->span, &pd->parent, pd->asked_ms, got != 0, pd->c.case_id,
                       NULL);
        if (got == 0) {
            s_emit(t, stage_pending_event(pd->p), &advice, &pd->rules, t->source, NULL, req);
        } else { /* llm.c has logged why */
            s_emit(t, stage_pending_event(pd->p), &pd->rules, &pd->rules, "rules", reason, req);
        }
        stage_finish(t->st, &pd->p);
        llm_req_destroy(&req);
        free(pd);
    }
    /* slots freed: start the waiting cases, oldest first */
    while (t->qn && s_ask(t, t->queue[t->qhead])) {
        t->qhead = (t->qhead + 1) % STAGE_MAX_DEFERRED;
        t->qn--;
    }
}

/* s_status - the model as an outside system: breaker, requests out, cases
 * waiting (for a slot, a retry or a rate token), in `payguard status` and
 * /metrics like validate's and execute's systems */
static void s_status(stage_t *st, FILE *f, void *arg)
{
    triage_t *t = arg;
    if (!t->llm)
        return;
    size_t waiting = llm_waiting(t->llm), out = llm_inflight(t->llm) - waiting;
    stage_outside_status(st, f, "llm", (int) llm_breaker(t->llm), out, waiting + t->qn, llm_breaker_opened(t->llm));
}

/* s_init - the model, if one is configured */
static int s_init(stage_t *st, void *arg)
{
    triage_t *t = arg;
    t->st = st;
    const config_t *c = stage_config(st);
    const char *url = config_get(c, "outside/llm");
    if (!url || !*url) {
        log_info("no outside/llm: advice from the deterministic rules");
        return 0;
    }
    char err[512];
    long timeout_ms, attempts, inflight, rate, failures, cooldown;
    if (config_bounded(c, "triage/llm_timeout_ms", &timeout_ms, err, sizeof err) ||
        config_bounded(c, "triage/llm_attempts", &attempts, err, sizeof err) ||
        config_bounded(c, "triage/llm_max_inflight", &inflight, err, sizeof err) ||
        config_bounded(c, "triage/llm_rate_per_s", &rate, err, sizeof err) ||
        config_bounded(c, "outside/breaker_failures", &failures, err, sizeof err) ||
        config_bounded(c, "outside/breaker_cooldown_ms", &cooldown, err, sizeof err)) {
        log_error("%s", err);
        return -1;
    }
    char *key = NULL;
    const char *kf = config_get(c, "triage/llm_key_file");
    if (kf && *kf && !(key = httpc_read_token(kf, err, sizeof err))) {
        log_error("triage/llm_key_file: %s", err);
        return -1;
    }
    llm_opts_t o = {.base_url = url,
                    .model = config_get(c, "triage/llm_model"),
                    .api_key = key,
                    .timeout_ms = timeout_ms,
                    .max_attempts = (int) attempts,
                    .max_inflight = (int) inflight,
                    .breaker_failures = (int) failures,
                    .breaker_cooldown_ms = cooldown,
                    .rate_per_s = rate,
                    .observe = stage_observe_call,
                    .observe_arg = st};
    t->llm = llm_new(&o, err, sizeof err);
    if (key) {
        memset(key, 0, strlen(key));
        free(key);
    }
    if (!t->llm) {
        log_error("outside/llm: %s", err);
        return -1;
    }
    snprintf(t->source, sizeof t->source, "llm:%s", llm_model(t->llm));
    s_def.max_deferred = STAGE_MAX_DEFERRED; /* in flight or queued; then input stops */
    log_info("advice from %s (rules as fallback), up to %ld requests at once, %d cases queued", t->source, inflight,
             STAGE_MAX_DEFERRED);
    return 0;
}

/* s_fini - release the model client */
static void s_fini(stage_t *st, void *arg)
{
    (void) st;
    triage_t *t = arg;
    for (; t->qn; t->qn--, t->qhead = (t->qhead + 1) % STAGE_MAX_DEFERRED)
        free(t->queue[t->qhead]); /* their inputs are re-delivered after restart */
    llm_destroy(&t->llm);
}

int main(int argc, char **argv)
{
    static triage_t t;
    s_def = (stage_def_t){.name = "triage",
                          .init = s_init,
                          .handle = s_handle,
                          .tick = s_tick,
                          .fini = s_fini,
                          .status = s_status,
                          .retire_journal = true, /* stateless: its dedup is checkpointed first */
                          .arg = &t};
    return stage_main(argc, argv, &s_def);
}
