/*++
 * NAME
 *	execute - runbooks, exactly once
 * SYNOPSIS
 *	execute [-c CONFIG] [-i 0]	(started by `payguard up`, or systemd: payguard-execute@0.service)
 * DESCRIPTION
 *	The only stage that changes other systems. For each decided case from
 *	approve it plans the fixed runbook of CONTRACT.md §5 (common/runbook.c)
 *	from the recorded case alone, journals the plan, and runs its steps in
 *	order, one outbound call each. Up to execute/max_runs_in_flight (128,
 *	at most 512) runbooks run at once; no call blocks the stage
 *	(common/httpc_multi.h):
 *	  1. the step is journaled as started, with its Idempotency-Key (a pure
 *	     function of case and step), and the journal is synced (one sync for
 *	     every step started in the same loop turn);
 *	  2. the call is made (transient failures — 5xx, 429, timeouts, refused
 *	     connections — retried with exponential backoff and jitter, honouring
 *	     Retry-After, up to execute/max_attempts; while the system's circuit
 *	     breaker is open the step waits instead of failing);
 *	  3. the step is journaled as finished, with the HTTP status, a SHA-256
 *	     of the response and what it returned (ids, previous status).
 *	After a crash the plan and the steps are read back from the journal:
 *	finished steps are never repeated, a started-but-unfinished step is
 *	retried with the same key (the other system answers the first result
 *	again), and the runbook goes on. The same case delivered twice runs once.
 *
 *	TICKETS: Jira and ServiceNow ignore Idempotency-Key (it is sent all the
 *	same), so a ticket step (open_ticket, failure_ticket, ticket_comment)
 *	is two calls in one step (common/ticket.h): after its one "started"
 *	record, a search for the case's tickets (Jira: label
 *	payguard-<case id>; ServiceNow: correlation_id), in whose answer the
 *	step's own is the one labelled payguard-<step> (ServiceNow:
 *	correlation_display), or for a comment its marker among the ticket's
 *	newest 100 comments; then the create only if nothing was found. Found: "done" with effect "found existing ticket
 *	<key>"; created: "created ticket <key>"; both with ticket_key. The
 *	search is retried like any call; the create is sent as one attempt,
 *	and when it fails transiently (it may have made the ticket all the
 *	same) the step waits (backoff, Retry-After, at least
 *	execute/ticket_settle_ms) and searches again instead of posting again,
 *	up to execute/max_attempts creates. After a restart a step left
 *	"started" waits ticket_settle_ms, then searches again.
 *
 *	A step that fails for good (a 4xx, or retries exhausted) stops the
 *	runbook: no later step runs (so no customer-facing notice follows a
 *	failed ledger write); instead a Highest-priority ticket and a Teams
 *	notice name the step and the error, and the case enters the ops-review
 *	queue ("review" event). The payout hold stays in place unless
 *	execute/release_hold_on_failure = yes, in which case a failed ledger
 *	step is followed by releasing the payout to the status it had before
 *	the hold. No runbook starts a new money movement.
 *
 *	"notice" events from approve (Adaptive Cards) are posted to Teams.
 *	OPS REVIEW: an approved retry (approve's "approved" with retry = n)
 *	re-runs the failed plan from its failed step, with keys
 *	"<case>:<step>:retry<n>"; a "closed" case leaves the queue.
 * INPUT
 *	"approved", "denied", "closed" and "notice" events from approve,
 *	routed by case to the instance that owns it (common/route.h), and
 *	only those approve sealed with the group's seal key (common/event.h,
 *	SEALS): anything else - pushed into the socket by someone who can
 *	reach it, altered, or from a group with another key - is not acted
 *	on, and is recorded on the trail as "rejected" (gate seal, code
 *	unsealed) with the case it claimed as data.
 * OUTPUT
 *	To audit: "runbook" (the plan), "step" (started / done / failed, per
 *	step; a ticket step's also lookup, effect and ticket_key), "review"
 *	(ops review, with why), "executed" (the outcome).
 * STATE
 *	The runbooks in flight are rebuilt from the journal at start, so
 *	retention (execute/retention_s) removes only segments audit
 *	acknowledged from before the oldest in-flight runbook's "runbook"
 *	record. The ops-review queue (each failed plan, its step and error) is
 *	also in execute/review_db (reviewdb.h), written after each journal
 *	record that changes it: loaded at start, then the kept journal is
 *	replayed over it. A new review store beside a journal that lost its
 *	start stops execute, saying so. `payguard review` reads that store.
 * FAILURE
 *	A runbook step failure is not a stage failure: it goes to ops review.
 *	Journal failures exit (75); the supervisor restarts the stage, which
 *	resumes every unfinished runbook from its journal.
 * SECURITY
 *	Holds the write token for the payments API, ledger and tickets
 *	(execute/token_file: a file, or under systemd credential:write-token,
 *	given to execute's units alone: common/credential.h) and the Teams
 *	URL; no other stage does. Reads
 *	the seal key (payguard/seal_key_file) to check approve's seals.
 * TEST HOOK
 *	Only in the test build (-DPG_TEST_HOOKS: bin/hooks/execute, never
 *	bin/execute): when the file named by the environment variable
 *	PG_EXECUTE_FAULT_FILE exists and says before:<step> or after:<step>,
 *	execute deletes it and SIGKILLs itself at that point — how the tests
 *	prove exactly-once across crashes. "before" is the step's first call
 *	(a ticket step's search); "after" is when its last answer is back and
 *	not yet recorded (a ticket step's create, or the search that found it).
 * CONFIGURATION
 *	execute/token_file, jira_project, max_attempts, retry_base_ms,
 *	retry_max_ms, ticket_settle_ms, max_runs_in_flight,
 *	release_hold_on_failure, review_db,
 *	retention_s; outside/payments, ledger, jira or
 *	servicenow, teams, timeout_ms, max_inflight, rate_per_s,
 *	breaker_failures, breaker_cooldown_ms, limits/<system>;
 *	approve/public_url.
 *--*/
#include <assert.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runbook.h"
#include "httpc.h"
#include "ticket.h"
#include "httpc_multi.h"
#include "log.h"
#include "reviewdb.h"
#include "stage.h"

#define EXECUTE_MAX_RUNS 512
_Static_assert(EXECUTE_MAX_RUNS == 512, "execute/max_runs_in_flight's range in config.c's s_bounds is 1..512");
#define EXECUTE_MAX_REVIEWS 4096

/* review_t - a case whose runbook failed for good: what a retry re-runs */
typedef struct {
    char case_id[160];
    char *plan_json; /* the plan that failed (owned) */
    char failed_step[RB_NAME_MAX];
} review_t;

#define EXECUTE_REVIEW_ERROR_MAX 640

/* run_t - one runbook in progress */
typedef struct {
    stage_pending_t *p; /* the decided case's input (deferred, or adopted after a restart) */
    rb_plan_t plan;     /* the normal steps */
    rb_plan_t fail;     /* after a step failed for good: ticket + notice */
    bool failing;       /* running the failure plan */
    size_t next;        /* next step of the current plan */
    char failed_step[RB_NAME_MAX];
    char error[640];
    char held_from[32];  /* hold_payout's previous_status, once it is done */
    int64_t received_ms; /* the webhook's receipt (0: not known, e.g. resumed after a restart) */
    uint64_t first_seq;  /* its "runbook" record: retention keeps it and what follows */
    bool calling;        /* its current step's call is out */
    bool answered;       /* ... and came back: rc and resp, for the next tick */
    int rc;
    httpc_resp_t resp;
    /* a step with a lookup (ticket steps, ticket.h): its GET, then its POST only if nothing was found */
    char lookup[RB_LOOKUP_MAX]; /* its lookup (runbook_step_lookup), "" if none */
    bool looking;               /* the call out (or due) is the lookup */
    bool waiting;               /* the call is due at not_before_ms (backoff, settle) */
    int64_t not_before_ms;      /* monotonic */
    int writes;                 /* its POSTs that failed transiently: each may have made the ticket */
    char effect[TICKET_KEY_MAX + TICKET_MARKER_MAX + 64]; /* what the step found or made, for its "done" record */
    char ticket[TICKET_KEY_MAX];                          /* the ticket key (or number) found or created */
    char lookup_error[TICKET_PATH_MAX + 300];             /* the lookup answered 2xx, but not in its system's shape */
} run_t;

/* notice_t - a Teams notice being posted */
typedef struct {
    stage_pending_t *p;
    bool answered;
    int rc;
    httpc_resp_t resp;
} notice_t;

typedef struct {
    stage_t *st;
    httpc_t *payments, *ledger, *tickets, *teams;
    rb_opts_t opts;
    char ticket_system[16], jira_project[32], public_url[256];
    httpc_retry_t retry;
    bool release_hold_on_failure;
    long settle_ms; /* execute/ticket_settle_ms: before searching again for a ticket a lost answer may have made */
    run_t *runs[EXECUTE_MAX_RUNS];
    size_t nruns;
    notice_t *notices[EXECUTE_MAX_RUNS];
    size_t nnotices;
    struct httpc_multi_t *http;
    int sys_payments, sys_ledger, sys_tickets, sys_teams;
    review_t reviews[EXECUTE_MAX_REVIEWS];
    size_t nreviews;
    struct recovered_t *rec; /* at start: runbooks in flight, from the journal replay */
    size_t nrec;
    reviewdb_t *rdb; /* the ops-review queue on disk (reviewdb.h) */
    bool loading;    /* reading it back: nothing to write */
} execute_t;

/* s_review_find - the ops-review record of a case, or NULL */
static review_t *s_review_find(execute_t *x, const char *case_id)
{
    for (size_t i = 0; i < x->nreviews; i++)
        if (strcmp(x->reviews[i].case_id, case_id) == 0)
            return &x->reviews[i];
    return NULL;
}

/* s_review_drop - the case left ops review */
static void s_review_drop(execute_t *x, const char *case_id)
{
    review_t *r = s_review_find(x, case_id);
    if (!r)
        return;
    if (x->rdb && !x->loading)
        reviewdb_drop(x->rdb, case_id);
    free(r->plan_json);
    *r = x->reviews[--x->nreviews];
}

/* s_review_add - remember a failed runbook (newest wins; bounded: the
 * oldest is forgotten first, its record stays in the journal) */
static void s_review_add(execute_t *x, const review_row_t *row)
{
    const char *case_id = row->case_id, *plan_json = row->plan_json, *failed_step = row->failed_step;
    s_review_drop(x, case_id);
    if (x->nreviews == EXECUTE_MAX_REVIEWS) {
        log_warn("ops review holds %d cases: forgetting the oldest, %s (its failed runbook is on the trail)",
                 EXECUTE_MAX_REVIEWS, x->reviews[0].case_id);
        if (x->rdb && !x->loading)
            reviewdb_drop(x->rdb, x->reviews[0].case_id);
        free(x->reviews[0].plan_json);
        memmove(&x->reviews[0], &x->reviews[1], (x->nreviews - 1) * sizeof x->reviews[0]);
        x->nreviews--;
    }
    review_t *r = &x->reviews[x->nreviews++];
    snprintf(r->case_id, sizeof r->case_id, "%s", case_id);
    r->plan_json = strdup(plan_json ? plan_json : "");
    snprintf(r->failed_step, sizeof r->failed_step, "%s", failed_step);
    if (x->rdb && !x->loading)
        reviewdb_put(x->rdb, &(review_row_t){case_id, r->plan_json, failed_step, row->error, row->at_ms});
}

/* s_review_loaded - one review read back from disk */
static void s_review_loaded(const review_row_t *r, void *arg)
{
    s_review_add(arg, r);
}

/* s_rdb_open - execute/review_db, once, and the queue it holds; a new one
 * beside a journal whose first records retention removed cannot know the
 * reviews they held: -1, saying so */
static int s_rdb_open(execute_t *x, stage_t *st)
{
    if (x->rdb)
        return 0;
    const config_t *c = stage_config(st);
    char *path = config_expand(c, config_get(c, "execute/review_db"), "execute", stage_index(st));
    char err[512];
    x->rdb = path ? reviewdb_open(path, err, sizeof err) : NULL;
    if (!x->rdb)
        log_error("%s", path ? err : "execute/review_db: not set");
    if (x->rdb && reviewdb_is_new(x->rdb) && stage_journal_trimmed(st)) {
        log_error("execute's review store %s is new, and execute's journal no longer holds its first records "
                  "(execute/retention_s removed them): the ops-review queue they held cannot be rebuilt. Restore the "
                  "file from its backup",
                  path);
        reviewdb_close(&x->rdb);
    }
    free(path);
    if (!x->rdb)
        return -1;
    x->loading = true;
    size_t n = reviewdb_each(x->rdb, s_review_loaded, x);
    x->loading = false;
    if (n)
        log_info("ops review: %zu cases read back from the review store", n);
    return 0;
}

static stage_def_t s_def;

/* s_on_notice - the Teams answer is back (engine callback): for the tick */
static void s_on_notice(void *user, int rc, httpc_resp_t *resp)
{
    notice_t *n = user;
    if (resp->cancelled)
        return;
    n->answered = true;
    n->rc = rc;
    n->resp = *resp;
}

/* s_notice_step - the notice's "step" record on the trail */
static void s_notice_step(execute_t *x, const event_t *in, const char *status, const httpc_resp_t *resp)
{
    event_body_t *b = event_body_new();
    event_body_str(b, "step", "teams_notice");
    event_body_str(b, EK_STATUS, status);
    if (resp) {
        bool ok = strcmp(status, "done") == 0;
        event_body_int(b, "http_status", resp->status);
        event_body_int(b, "attempts", resp->attempts);
        if (!ok)
            event_body_str(b, "error", resp->status ? "Teams refused the card" : resp->error);
        stage_count(x->st, "payguard_execute_notices_total", "status", status, 1);
    }
    stage_emit(x->st, EV_STEP, event_head(in)->case_key, b, STAGE_TO_AUDIT);
    event_body_destroy(&b);
}

/* s_teams - post an approve notice (an Adaptive Card, CONTRACT.md §2.5):
 * the input waits (deferred) for the answer */
static int s_teams(execute_t *x, const event_t *in)
{
    json_t *body = event_body_to_json(in);
    json_t *card = json_object_get(body, "card");
    if (!x->teams || !json_is_object(card)) {
        s_notice_step(x, in, x->teams ? "skipped: notice without a card" : "skipped: outside/teams not set", NULL);
        json_decref(body);
        return STAGE_DONE;
    }
    json_t *msg = json_pack("{s:s, s:[{s:s, s:O}]}", "type", "message", "attachments", "contentType",
                            "application/vnd.microsoft.card.adaptive", "content", card);
    char *payload = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    json_decref(body);
    notice_t *n = calloc(1, sizeof *n);
    assert(n);
    char err[256];
    int rc = httpc_multi_start(x->http, x->sys_teams, x->teams, "POST", "", payload, NULL, &x->retry, s_on_notice, n,
                               err, sizeof err);
    free(payload);
    if (rc != 0) {
        log_error("Teams notice not sent: %s", err);
        free(n);
        return STAGE_RETRY;
    }
    n->p = stage_defer(x->st);
    x->notices[x->nnotices++] = n;
    return STAGE_DEFERRED;
}

/* s_notices_tick - answer the notices whose post came back */
static void s_notices_tick(execute_t *x)
{
    for (size_t i = 0; i < x->nnotices;) {
        notice_t *n = x->notices[i];
        if (!n->answered) {
            i++;
            continue;
        }
        bool ok = n->rc == 0 && n->resp.status >= 200 && n->resp.status < 300;
        stage_resume(x->st, n->p);
        s_notice_step(x, stage_pending_event(n->p), ok ? "done" : "failed", &n->resp);
        stage_finish(x->st, &n->p);
        httpc_resp_free(&n->resp);
        free(n);
        x->notices[i] = x->notices[--x->nnotices];
    }
}

/* s_fault - the test hook (test build only): die here once if the file
 * PG_EXECUTE_FAULT_FILE names this point */
static void s_fault(const char *when, const char *step)
{
#ifdef PG_TEST_HOOKS
    const char *path = getenv("PG_EXECUTE_FAULT_FILE");
    FILE *f = path && *path ? fopen(path, "r") : NULL;
    if (!f)
        return;
    char want[128] = "", here[128];
    if (!fgets(want, sizeof want, f))
        want[0] = '\0';
    fclose(f);
    want[strcspn(want, "\r\n")] = '\0';
    snprintf(here, sizeof here, "%s:%s", when, step);
    if (strcmp(want, here) == 0) {
        unlink(path);
        log_warn("fault hook: SIGKILL %s", here);
        raise(SIGKILL);
    }
#else
    (void) when;
    (void) step;
#endif
}

/* s_client - the client for a step's system, and its index in the engine */
static httpc_t *s_client(execute_t *x, const char *system, int *sys)
{
    if (strcmp(system, "payments") == 0)
        return *sys = x->sys_payments, x->payments;
    if (strcmp(system, "ledger") == 0)
        return *sys = x->sys_ledger, x->ledger;
    if (strcmp(system, "teams") == 0)
        return *sys = x->sys_teams, x->teams;
    if (strcmp(system, "jira") == 0 || strcmp(system, "servicenow") == 0)
        return *sys = x->sys_tickets, x->tickets;
    return NULL;
}

/* s_plan_current - the plan the run is on */
static rb_plan_t *s_plan_current(run_t *r)
{
    return r->failing ? &r->fail : &r->plan;
}

/* s_step_event - journal a step's start or end */
static void s_step_event(execute_t *x, run_t *r, const rb_step_t *step, const char *status, const httpc_resp_t *resp,
                         const char *error)
{
    event_body_t *b = event_body_new();
    event_body_str(b, EK_CASE_ID, r->plan.case_id);
    event_body_str(b, "runbook", s_plan_current(r)->runbook);
    event_body_str(b, "step", step->name);
    event_body_str(b, "phase", r->failing ? "failure" : "runbook");
    event_body_str(b, EK_STATUS, status);
    event_body_str(b, "idempotency_key", step->idem_key);
    event_body_str(b, "system", step->system);
    event_body_str(b, "method", step->method);
    event_body_str(b, "path", step->path);
    if (r->lookup[0])
        event_body_str(b, "lookup", r->lookup);
    if (strcmp(status, "started") != 0 && r->effect[0])
        event_body_str(b, "effect", r->effect); /* "found existing ticket PAY-3", "created ticket PAY-4" */
    if (strcmp(status, "done") == 0 && r->ticket[0])
        event_body_str(b, "ticket_key", r->ticket);
    if (resp) {
        event_body_int(b, "http_status", resp->status);
        event_body_int(b, "attempts", resp->attempts);
        if (resp->body) {
            unsigned char md[SHA256_DIGEST_LENGTH];
            char hex[2 * SHA256_DIGEST_LENGTH + 1];
            SHA256((const unsigned char *) resp->body, resp->len, md);
            for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
                snprintf(hex + 2 * i, 3, "%02x", md[i]);
            event_body_str(b, "response_sha256", hex);
            json_t *j = json_loadb(resp->body, resp->len, 0, NULL);
            if (j && event_body_json(b, "response", j) != 0)
                event_body_str(b, "response", "(not representable)");
            json_decref(j);
        }
    }
    if (error)
        event_body_str(b, "error", error);
    stage_emit(x->st, EV_STEP, r->plan.case_id, b, STAGE_TO_AUDIT);
    event_body_destroy(&b);
}

/* s_add_release - where policy allows (execute/release_hold_on_failure),
 * a failed ledger step puts the payout back to the status it had before
 * the hold (CONTRACT.md §5.1); by default the hold stays */
static void s_add_release(execute_t *x, run_t *r, const rb_step_t *failed)
{
    if (!x->release_hold_on_failure || strncmp(failed->name, "ledger_", 7) != 0 || !r->held_from[0] ||
        r->fail.n >= RB_MAX_STEPS)
        return;
    const rb_step_t *hold = NULL;
    for (size_t i = 0; i < r->plan.n && !hold; i++)
        if (strcmp(r->plan.steps[i].name, "hold_payout") == 0)
            hold = &r->plan.steps[i];
    size_t l = hold ? strlen(hold->path) : 0;
    if (!hold || l < 5 || strcmp(hold->path + l - 5, "/hold") != 0)
        return;
    rb_step_t *s = &r->fail.steps[r->fail.n];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "release_hold");
    snprintf(s->system, sizeof s->system, "payments");
    snprintf(s->method, sizeof s->method, "POST");
    snprintf(s->path, sizeof s->path, "%.*s/release", (int) (l - 5), hold->path);
    snprintf(s->idem_key, sizeof s->idem_key, "%s:release_hold", r->plan.case_id);
    json_t *b = json_pack("{s:s, s:s}", "case_id", r->plan.case_id, "to_status", r->held_from);
    s->body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    r->fail.n++;
}

/* s_on_step - a step's answer is back (engine callback): for the tick */
static void s_on_step(void *user, int rc, httpc_resp_t *resp)
{
    run_t *r = user;
    if (resp->cancelled) /* stopping: the step stays "started", re-sent after the restart */
        return;
    r->calling = false;
    r->answered = true;
    r->rc = rc;
    r->resp = *resp;
}

/* s_step_start - journal a run's next step as started; the call goes out
 * after the tick's one sync (s_tick). false: no client for its system */
static void s_step_start(execute_t *x, run_t *r)
{
    rb_step_t *step = &s_plan_current(r)->steps[r->next];
    r->effect[0] = r->ticket[0] = r->lookup_error[0] = '\0';
    r->writes = 0;
    if (runbook_step_lookup(r->plan.case_id, step, r->lookup) != 0) { /* the planner checked: not expected */
        log_warn("case %s: step %s cannot search for what it makes; it creates without looking", r->plan.case_id,
                 step->name);
        r->lookup[0] = '\0';
    }
    r->looking = r->lookup[0] != '\0'; /* a ticket step searches first, every time it starts */
    s_step_event(x, r, step, "started", NULL, NULL);
    r->calling = true;
}

/* s_step_send - after the sync: the call of a started step (a looked-up
 * step's lookup, then maybe its POST); one not due yet waits (s_tick) */
static void s_step_send(execute_t *x, run_t *r)
{
    rb_step_t *step = &s_plan_current(r)->steps[r->next];
    assert(r->calling);
    r->waiting = r->not_before_ms > stage_mono_ms();
    if (r->waiting)
        return;
    r->not_before_ms = 0;
    if (!r->lookup[0] || (r->looking && r->writes == 0)) /* the step's first call */
        s_fault("before", step->name);
    bool write_once = r->lookup[0] && !r->looking;
    httpc_retry_t once = x->retry;
    once.max_attempts = 1; /* a lost answer may hide a ticket: search again rather than repeat it */
    int sys = -1;
    httpc_t *h = s_client(x, step->system, &sys);
    char err[256] = "";
    stage_trace_calls(x->st, r->p); /* in the run's span, whichever input is being handled */
    int started =
        h ? httpc_multi_start(x->http, sys, h, r->looking ? "GET" : step->method, r->looking ? r->lookup : step->path,
                              r->looking ? NULL : step->body, r->looking ? NULL : step->idem_key,
                              write_once ? &once : &x->retry, s_on_step, r, err, sizeof err)
          : -1;
    stage_trace_calls(x->st, NULL);
    if (started == 0)
        return;
    httpc_resp_t resp = {.retry_after_ms = -1};
    snprintf(resp.error, sizeof resp.error, "%s", h ? err : "");
    s_on_step(r, -1, &resp);
    r->resp.attempts = 0;
    r->rc = h ? -1 : -2; /* -2: no client */
}

/* s_uncertain_delay - how long a looked-up step waits before searching
 * again after its writes-th POST failed transiently: the backoff (full
 * jitter, doubling from retry_base_ms up to retry_max_ms), at least the
 * answer's Retry-After and ticket_settle_ms (the search may not show a
 * ticket made a moment ago) */
static long s_uncertain_delay(const execute_t *x, int writes, long retry_after_ms)
{
    assert(writes >= 1 && x->retry.base_delay_ms > 0);
    assert(x->retry.max_delay_ms >= 1 && x->settle_ms >= 0);
    long cap = x->retry.base_delay_ms;
    for (int i = 1; i < writes && cap < x->retry.max_delay_ms; i++)
        cap *= 2;
    if (cap > x->retry.max_delay_ms)
        cap = x->retry.max_delay_ms;
    long d = random() % (cap + 1);
    if (retry_after_ms > d)
        d = retry_after_ms < x->retry.max_delay_ms ? retry_after_ms : x->retry.max_delay_ms;
    return d > x->settle_ms ? d : x->settle_ms;
}

/* s_lookup_answered - a looked-up step's lookup came back: false with the
 * answer kept for s_step_answered when it ends the step (the ticket or
 * comment exists: done with it; the lookup failed or answered outside its
 * system's shape: failed); true when nothing was found and the POST is out */
static bool s_lookup_answered(execute_t *x, run_t *r, const rb_step_t *step)
{
    const httpc_resp_t *resp = &r->resp;
    assert(r->looking && r->lookup[0]);
    assert(!r->calling && r->answered);
    if (r->rc != 0 || resp->status < 200 || resp->status >= 300)
        return false; /* the lookup's own failure: the step fails like any call */
    char key[TICKET_KEY_MAX], id[TICKET_KEY_MAX], marker[TICKET_MARKER_MAX] = "", err[256] = "", tag[RB_NAME_MAX];
    long total = 0;
    int found;
    if (strcmp(step->name, "ticket_comment") == 0)
        found = ticket_marker(r->plan.case_id, step->name, marker, sizeof marker) != 0
                    ? (snprintf(err, sizeof err, "the case cannot be named in a comment marker"), -1)
                    : ticket_comments_marked(resp->body, resp->len, marker, id, err, sizeof err);
    else
        found = ticket_step_of_key(r->plan.case_id, step->idem_key, tag, sizeof tag) != 0
                    ? (snprintf(err, sizeof err, "the step's key does not name its case"), -1)
                    : ticket_search_found(step->system, tag, resp->body, resp->len, key, id, &total, err, sizeof err);
    if (found < 0) {
        snprintf(r->lookup_error, sizeof r->lookup_error, "GET %s: %s", r->lookup, err);
        return false;
    }
    stage_count(x->st, "payguard_execute_ticket_lookups_total", "result", found ? "found" : "none", 1);
    if (found && marker[0]) {
        snprintf(r->effect, sizeof r->effect, "found existing comment %s (marked %s)", id, marker);
    } else if (found) {
        snprintf(r->effect, sizeof r->effect, "found existing ticket %s", key);
        snprintf(r->ticket, sizeof r->ticket, "%s", key);
        if (total > 1)
            log_warn("case %s: %ld tickets are its %s (made before payguard searched); it records %s", r->plan.case_id,
                     total, tag, key);
    }
    if (found)
        return false;
    httpc_resp_free(&r->resp);
    memset(&r->resp, 0, sizeof r->resp);
    r->answered = false;
    r->looking = false;
    r->calling = true;
    s_step_send(x, r);
    return true;
}

/* s_write_uncertain - a looked-up step's POST failed transiently (5xx,
 * 429, timeout, refused): it may have made the ticket all the same. With
 * attempts left, search again after a delay instead of posting again
 * (true); else false: the step failed */
static bool s_write_uncertain(execute_t *x, run_t *r, const rb_step_t *step)
{
    assert(!r->looking && r->lookup[0]);
    assert(r->writes >= 0 && r->writes < x->retry.max_attempts);
    if (r->rc == 0 || !r->resp.transient || r->writes + 1 >= x->retry.max_attempts)
        return false;
    r->writes++;
    long delay = s_uncertain_delay(x, r->writes, r->resp.retry_after_ms);
    log_warn("case %s: %s %s failed (HTTP %ld%s%s) and may have taken effect: searching again in %ld ms before any "
             "new create",
             r->plan.case_id, step->method, step->path, r->resp.status, r->resp.error[0] ? ", " : "", r->resp.error,
             delay);
    httpc_resp_free(&r->resp);
    memset(&r->resp, 0, sizeof r->resp);
    r->answered = false;
    r->looking = true;
    r->calling = true;
    r->not_before_ms = stage_mono_ms() + delay;
    s_step_send(x, r);
    return true;
}

/* s_step_continues - a call of a looked-up step came back: true if the
 * step goes on with another call (its POST, or its lookup again), false if
 * the answer ends it (s_step_answered) */
static bool s_step_continues(execute_t *x, run_t *r)
{
    const rb_step_t *step = &s_plan_current(r)->steps[r->next];
    if (!r->lookup[0] || r->rc == -2)
        return false;
    return r->looking ? s_lookup_answered(x, r, step) : s_write_uncertain(x, r, step);
}

/* s_ticket_made - a looked-up step's POST succeeded: what it made, for the record */
static void s_ticket_made(run_t *r, const rb_step_t *step, const httpc_resp_t *resp)
{
    char key[TICKET_KEY_MAX], id[TICKET_KEY_MAX];
    assert(r->lookup[0] && !r->looking);
    assert(resp->status >= 200 && resp->status < 300);
    json_t *j =
        strcmp(step->name, "ticket_comment") == 0 && resp->body ? json_loadb(resp->body, resp->len, 0, NULL) : NULL;
    if (j) {
        const char *cid = json_string_value(json_object_get(j, "id"));
        snprintf(r->effect, sizeof r->effect, "added comment %s", cid ? cid : "(no id in the answer)");
    } else if (ticket_created(step->system, resp->body, resp->len, key, id) == 0) {
        snprintf(r->effect, sizeof r->effect, "created ticket %s", key);
        snprintf(r->ticket, sizeof r->ticket, "%s", key);
    } else {
        snprintf(r->effect, sizeof r->effect, "created (the answer names no ticket)");
    }
    json_decref(j);
}

/* s_step_answered - a step's answer: journal it finished; the run goes on,
 * or switches to its failure plan. true if the run should go on */
static bool s_step_answered(execute_t *x, run_t *r)
{
    rb_plan_t *plan = s_plan_current(r);
    rb_step_t *step = &plan->steps[r->next];
    r->answered = false;
    s_fault("after", step->name);
    int rc = r->rc;
    bool no_client = rc == -2;
    httpc_resp_t resp = r->resp;
    memset(&r->resp, 0, sizeof r->resp);
    bool ok = rc == 0 && resp.status >= 200 && resp.status < 300 && !r->lookup_error[0];
    const char *method = r->looking ? "GET" : step->method, *path = r->looking ? r->lookup : step->path;
    char error[640] = "";
    if (no_client)
        snprintf(error, sizeof error, "outside/%s is not configured", step->system);
    else if (r->lookup_error[0])
        snprintf(error, sizeof error, "%s (nothing was created)", r->lookup_error);
    else if (!ok)
        snprintf(error, sizeof error, "%s %s: %s", method, path,
                 resp.status ? (rc == 0 ? "refused (permanent)" : "still failing after retries")
                             : (resp.error[0] ? resp.error : "no answer"));
    if (ok && r->lookup[0] && !r->looking)
        s_ticket_made(r, step, &resp);
    resp.attempts += r->writes; /* POSTs that failed before the search found or made it */
    if (!ok && resp.status)
        snprintf(error + strlen(error), sizeof error - strlen(error), " (HTTP %ld)", resp.status);
    s_step_event(x, r, step, ok ? "done" : "failed", no_client ? NULL : &resp, ok ? NULL : error);
    stage_count(x->st, "payguard_execute_steps_total", "status", ok ? "done" : "failed", 1);
    if (resp.attempts > 1)
        stage_count(x->st, "payguard_execute_retries_total", NULL, NULL, (uint64_t) (resp.attempts - 1));
    if (ok && strcmp(step->name, "hold_payout") == 0 && resp.body) {
        json_t *j = json_loads(resp.body, 0, NULL);
        const char *prev = json_string_value(json_object_get(j, "previous_status"));
        snprintf(r->held_from, sizeof r->held_from, "%s", prev ? prev : "");
        json_decref(j);
    }
    httpc_resp_free(&resp);
    if (ok) {
        r->next++;
        return true;
    }
    if (r->failing) /* the failure ticket itself failed: stop, ops review says so */
        return false;
    snprintf(r->failed_step, sizeof r->failed_step, "%s", step->name);
    snprintf(r->error, sizeof r->error, "%s", error);
    char err[256];
    if (runbook_failure_plan(&r->plan, r->next, error, &x->opts, &r->fail, err, sizeof err) != 0)
        log_error("case %s: no failure plan: %s", r->plan.case_id, err);
    s_add_release(x, r, step);
    r->failing = true;
    r->next = 0;
    return true;
}

/* s_finish_run - the outcome on the trail; ack the input; forget the run */
static void s_finish_run(execute_t *x, size_t i)
{
    run_t *r = x->runs[i];
    const char *outcome = r->failed_step[0] ? "ops_review" : "done";
    if (r->failed_step[0]) {
        event_body_t *b = event_body_new();
        event_body_str(b, EK_CASE_ID, r->plan.case_id);
        event_body_str(b, "runbook", r->plan.runbook);
        event_body_str(b, "failed_step", r->failed_step);
        event_body_str(b, "error", r->error);
        event_body_str(b, "why", "a runbook step failed for good; no later step ran");
        stage_emit(x->st, EV_REVIEW, r->plan.case_id, b, STAGE_TO_AUDIT);
        event_body_destroy(&b);
        stage_count(x->st, "payguard_execute_reviews_total", NULL, NULL, 1);
        json_t *pj = runbook_plan_json(&r->plan);
        char *text = json_dumps(pj, JSON_COMPACT);
        s_review_add(x, &(review_row_t){r->plan.case_id, text, r->failed_step, r->error, stage_now_ms()});
        free(text);
        json_decref(pj);
    }
    event_body_t *b = event_body_new();
    event_body_str(b, EK_CASE_ID, r->plan.case_id);
    event_body_str(b, "runbook", r->plan.runbook);
    event_body_str(b, "outcome", outcome);
    event_body_int(b, "steps_done", (int64_t) (r->failed_step[0] ? 0 : r->plan.n));
    stage_emit(x->st, EV_EXECUTED, r->plan.case_id, b, STAGE_TO_AUDIT);
    event_body_destroy(&b);
    stage_count(x->st, "payguard_executions_total", "outcome", outcome, 1);
    if (r->received_ms > 0) {
        char labels[64];
        snprintf(labels, sizeof labels, "outcome=\"%s\"", outcome);
        stage_observe_ms(x->st, "payguard_case_seconds", labels, stage_now_ms() - r->received_ms);
    }
    stage_finish(x->st, &r->p);
    runbook_plan_clear(&r->plan);
    runbook_plan_clear(&r->fail);
    free(r);
    x->runs[i] = x->runs[--x->nruns];
}

/* s_run_done - has the run reached the end of its current plan? */
static bool s_run_done(run_t *r)
{
    return r->next >= s_plan_current(r)->n;
}

/* s_tick - every run whose step came back records it and starts its next
 * one: all the "started" records of the turn made durable by one sync,
 * then the calls (the engine sends them in the next loop turn) */
static void s_tick(stage_t *st, void *arg)
{
    execute_t *x = arg;
    stage_gauge(st, "payguard_ops_review_queue", (int64_t) x->nreviews);
    s_notices_tick(x);
    run_t *starting[EXECUTE_MAX_RUNS];
    size_t nstarting = 0;
    for (size_t i = 0; i < x->nruns;) {
        run_t *r = x->runs[i];
        if (r->calling) {
            if (r->waiting && stage_mono_ms() >= r->not_before_ms) /* started and synced long ago */
                s_step_send(x, r);
            i++;
            continue;
        }
        stage_resume(x->st, r->p);
        if (r->answered && !s_run_done(r) && s_step_continues(x, r)) { /* its POST, or its lookup again */
            stage_yield(x->st, r->p);
            i++;
            continue;
        }
        bool go = !s_run_done(r) && (!r->answered || s_step_answered(x, r));
        if (!go || s_run_done(r)) {
            s_finish_run(x, i);
            continue;
        }
        s_step_start(x, r);
        starting[nstarting++] = r;
        stage_yield(x->st, r->p);
        i++;
    }
    if (!nstarting)
        return;
    stage_flush(x->st); /* never a call without its durable "started" */
    for (size_t i = 0; i < nstarting; i++)
        s_step_send(x, starting[i]);
}

/* s_retry_plan - the failed plan from its failed step on, with keys of
 * this retry round ("<case>:<step>:retry<n>": a pure function of case,
 * step and round, so the retry itself is exactly-once too) */
static int s_retry_plan(const review_t *rv, int round, rb_plan_t *out, char *err, size_t errlen)
{
    json_t *j = json_loads(rv->plan_json, 0, NULL);
    rb_plan_t full;
    int rc = j ? runbook_plan_from_json(j, &full) : -1;
    json_decref(j);
    if (rc != 0) {
        snprintf(err, errlen, "the failed plan of %s is unreadable", rv->case_id);
        return -1;
    }
    size_t from = 0;
    while (from < full.n && strcmp(full.steps[from].name, rv->failed_step) != 0)
        from++;
    memset(out, 0, sizeof *out);
    snprintf(out->case_id, sizeof out->case_id, "%s", full.case_id);
    snprintf(out->runbook, sizeof out->runbook, "%s", full.runbook);
    for (size_t i = from; i < full.n; i++) {
        out->steps[out->n] = full.steps[i];
        full.steps[i].body = NULL; /* moved */
        size_t l = strlen(out->steps[out->n].idem_key);
        snprintf(out->steps[out->n].idem_key + l, sizeof out->steps[0].idem_key - l, ":retry%d", round);
        out->n++;
    }
    runbook_plan_clear(&full);
    return 0;
}

/* s_start_run - plan a decided case (or an approved retry), journal the
 * plan, defer the input */
static int s_start_run(execute_t *x, const event_t *in)
{
    json_t *body = event_body_to_json(in);
    run_t *r = calloc(1, sizeof *r);
    char err[256];
    int round = (int) json_integer_value(json_object_get(body, "retry"));
    int rc;
    if (round > 0 && event_head(in)->kind == EV_APPROVED) {
        review_t *rv = s_review_find(x, event_head(in)->case_key);
        rc = rv ? s_retry_plan(rv, round, &r->plan, err, sizeof err) : -1;
        if (!rv)
            snprintf(err, sizeof err, "a retry was approved, but the case has no failed runbook to retry");
        if (rc == 0)
            s_review_drop(x, event_head(in)->case_key);
    } else {
        rc = runbook_plan(event_head(in)->kind, body, &x->opts, &r->plan, err, sizeof err);
    }
    json_t *rms = json_object_get(json_object_get(body, "facts"), "received_ms");
    r->received_ms = json_is_integer(rms) ? (int64_t) json_integer_value(rms) : 0;
    json_decref(body);
    if (rc != 0 || r->plan.n == 0) {
        event_body_t *b = event_body_new();
        event_body_str(b, EK_CASE_ID, event_head(in)->case_key);
        event_body_str(b, "outcome", rc != 0 ? "ops_review" : "nothing_to_do");
        if (rc != 0)
            event_body_str(b, "why", err);
        stage_emit(x->st, rc != 0 ? EV_REVIEW : EV_EXECUTED, event_head(in)->case_key, b, STAGE_TO_AUDIT);
        event_body_destroy(&b);
        runbook_plan_clear(&r->plan);
        free(r);
        return STAGE_DONE;
    }
    json_t *pj = runbook_plan_json(&r->plan);
    /* the plan as one JSON text: its Teams cards nest deeper than an event
     * body may, and the exact bytes are what recovery must read back */
    char *ptext = json_dumps(pj, JSON_COMPACT);
    event_body_t *b = event_body_new();
    event_body_str(b, EK_CASE_ID, r->plan.case_id);
    event_body_str(b, EK_DECISION, event_head(in)->type);
    event_body_str(b, "plan_json", ptext ? ptext : "");
    free(ptext);
    int erc = stage_emit(x->st, EV_RUNBOOK, r->plan.case_id, b, STAGE_TO_AUDIT);
    event_body_destroy(&b);
    json_decref(pj);
    if (erc != 0) { /* a plan not journaled could not be resumed: run nothing */
        runbook_plan_clear(&r->plan);
        free(r);
        return STAGE_RETRY;
    }
    r->first_seq = stage_last_emit_seq(x->st);
    r->p = stage_defer(x->st);
    x->runs[x->nruns++] = r;
    return STAGE_DEFERRED;
}

/* s_closed - a person closed the case in ops review: out of the queue, and
 * its outcome on the trail */
static int s_closed(execute_t *x, const event_t *in)
{
    s_review_drop(x, event_head(in)->case_key);
    event_body_t *b = event_body_new();
    event_body_str(b, EK_CASE_ID, event_head(in)->case_key);
    event_body_str(b, "outcome", "closed");
    char *who = event_get_strdup(in, EK_WHO);
    event_body_str(b, "closed_by", who ? who : "");
    free(who);
    stage_emit(x->st, EV_EXECUTED, event_head(in)->case_key, b, STAGE_TO_AUDIT);
    event_body_destroy(&b);
    return STAGE_DONE;
}

/* s_unsealed - an input approve did not seal (forged, altered, or from a
 * group with another seal key): nothing is done; the refusal is on the
 * trail with the claimed case as data, never as a case of its own */
static int s_unsealed(execute_t *x, const event_t *in)
{
    const event_head_t *h = event_head(in);
    char why[320];
    snprintf(why, sizeof why, "a %s event claiming to come from %s that approve did not seal: not acted on", h->type,
             h->stage);
    log_warn("refused event %s: %s (case '%s')", h->id, why, h->case_key);
    event_body_t *b = event_body_new();
    event_body_str(b, "gate", "seal");
    event_body_str(b, EK_CODE, "unsealed");
    event_body_str(b, EK_REASON, why);
    event_body_str(b, "claimed_case", h->case_key);
    event_body_str(b, "claimed_id", h->id);
    stage_emit(x->st, EV_REJECTED, "", b, STAGE_TO_AUDIT);
    event_body_destroy(&b);
    stage_count(x->st, "payguard_execute_unsealed_total", NULL, NULL, 1);
    return STAGE_DONE;
}

/* s_handle - the dispatch: notices now, decided cases as runbooks; only
 * what approve sealed (event.h, SEALS) */
static int s_handle(stage_t *st, const event_t *in, void *arg)
{
    execute_t *x = arg;
    event_type_t kind = event_head(in)->kind;
    if ((kind == EV_NOTICE || kind == EV_APPROVED || kind == EV_DENIED || kind == EV_CLOSED) &&
        event_seal_check(in, stage_seal_key(st)) != 0)
        return s_unsealed(x, in);
    switch (kind) {
    case EV_NOTICE:
        return s_teams(x, in);
    case EV_APPROVED:
    case EV_DENIED:
        return s_start_run(x, in);
    case EV_CLOSED: /* a person closed it in ops review */
        return s_closed(x, in);
    case EV_RECEIPT:
    case EV_VALIDATED:
    case EV_REJECTED:
    case EV_DUPLICATE:
    case EV_IGNORED:
    case EV_OUT_OF_ORDER:
    case EV_SWEEP:
    case EV_TRIAGED:
    case EV_ROUTED:
    case EV_DECISION:
    case EV_EXPIRED:
    case EV_EXECUTED:
    case EV_RUNBOOK:
    case EV_STEP:
    case EV_REVIEW:
    case EV_ACCESS_DENIED:
    case EV_DECISION_REFUSED:
    case EV_ESCALATED:
    case EV_AUDIT_VERIFIED:
    case EV_NONE:
    case EV_NTYPES:
        break;
    }
    log_warn("ignoring a %s event from %s: execute takes decisions and notices", event_head(in)->type,
             event_head(in)->stage);
    (void) st;
    return STAGE_DONE;
}

/* recovered - a runbook read back from the journal */
typedef struct recovered_t {
    char cause[EVENT_ID_MAX + 1];
    char trace[TRACE_HEADER_LEN + 1]; /* its span, as its journaled answers carry it ("" none) */
    char case_id[160];
    json_t *plan;
    unsigned emitted; /* events emitted for its input so far */
    bool failing;
    size_t done, fail_done;
    char held_from[32];
    char failed_step[RB_NAME_MAX], error[640];
    uint64_t first_seq; /* its "runbook" record */
    bool started;       /* its last step record says "started": that call may have been made */
} recovered_t;

/* s_replay - each event this instance journaled, as the skeleton's
 * recovery reads it: track the runbooks in flight and the ops-review queue */
static void s_replay(stage_t *st, const event_t *ev, void *arg)
{
    execute_t *x = arg;
    if (s_rdb_open(x, st) != 0)
        exit(1); /* said why; the supervisor's restarts show it */
    if (!x->rec) {
        x->rec = calloc(EXECUTE_MAX_RUNS * 4, sizeof *x->rec);
        assert(x->rec);
    }
    recovered_t *rec = x->rec;
    size_t nrec = x->nrec;
    {
        const event_head_t *h = event_head(ev);
        recovered_t *r = NULL;
        for (size_t i = 0; i < nrec && !r; i++)
            if (strcmp(rec[i].cause, h->cause) == 0)
                r = &rec[i];
        if (!r && h->kind == EV_RUNBOOK) {
            if (nrec == EXECUTE_MAX_RUNS * 4) {
                log_error("recovery: more than %d runbooks unfinished at once", EXECUTE_MAX_RUNS * 4);
                return;
            }
            r = &rec[nrec++];
            memset(r, 0, sizeof *r);
            snprintf(r->cause, sizeof r->cause, "%s", h->cause);
            snprintf(r->case_id, sizeof r->case_id, "%s", h->case_key);
            r->first_seq = h->seq;
            char *ptext = event_get_strdup(ev, "plan_json");
            r->plan = ptext ? json_loads(ptext, 0, NULL) : NULL;
            free(ptext);
            event_get_strbuf(ev, TRACE_KEY, r->trace, sizeof r->trace);
        }
        if (r) {
            r->emitted++;
            if (h->kind == EV_REVIEW) {
                /* its run's plan is the one a retry re-runs */
                char *step = event_get_strdup(ev, "failed_step"), *error = event_get_strdup(ev, "error");
                char *text = r->plan ? json_dumps(r->plan, JSON_COMPACT) : NULL;
                if (step && text)
                    s_review_add(x, &(review_row_t){r->case_id, text, step, error ? error : "", h->time_ms});
                free(step);
                free(error);
                free(text);
            } else if (h->kind == EV_EXECUTED) {
                /* finished: out of the table, so it only ever holds runs in flight */
                char *outcome = event_get_strdup(ev, "outcome");
                if (outcome && strcmp(outcome, "done") == 0)
                    s_review_drop(x, r->case_id);
                free(outcome);
                json_decref(r->plan);
                *r = rec[--nrec];
            } else if (h->kind == EV_STEP) {
                json_t *b = event_body_to_json(ev);
                const char *status = json_string_value(json_object_get(b, "status"));
                const char *phase = json_string_value(json_object_get(b, "phase"));
                bool failure_phase = phase && strcmp(phase, "failure") == 0;
                r->started = status && strcmp(status, "started") == 0;
                if (status && strcmp(status, "done") == 0) {
                    if (failure_phase)
                        r->fail_done++;
                    else
                        r->done++;
                    const char *sname = json_string_value(json_object_get(b, "step"));
                    const char *prev =
                        json_string_value(json_object_get(json_object_get(b, "response"), "previous_status"));
                    if (sname && prev && strcmp(sname, "hold_payout") == 0)
                        snprintf(r->held_from, sizeof r->held_from, "%s", prev);
                } else if (status && strcmp(status, "failed") == 0 && !failure_phase) {
                    const char *step = json_string_value(json_object_get(b, "step"));
                    const char *error = json_string_value(json_object_get(b, "error"));
                    r->failing = true;
                    snprintf(r->failed_step, sizeof r->failed_step, "%s", step ? step : "");
                    snprintf(r->error, sizeof r->error, "%s", error ? error : "");
                }
                json_decref(b);
            }
        } else if (h->kind == EV_EXECUTED) {
            /* a close (no runbook of its own) */
            char *outcome = event_get_strdup(ev, "outcome");
            if (outcome && strcmp(outcome, "closed") == 0)
                s_review_drop(x, h->case_key);
            free(outcome);
        }
    }
    x->nrec = nrec;
}

/* s_recover - after the replay: resume every runbook still in flight */
static int s_recover(execute_t *x)
{
    char err[512];
    recovered_t *rec = x->rec;
    size_t nrec = x->nrec;
    size_t resumed = 0;
    for (size_t i = 0; i < nrec; i++) {
        recovered_t *r = &rec[i];
        if (x->nruns < EXECUTE_MAX_RUNS) {
            run_t *run = calloc(1, sizeof *run);
            if (runbook_plan_from_json(r->plan, &run->plan) != 0 ||
                !(run->p = stage_adopt(x->st, r->cause, r->case_id, r->emitted))) {
                log_error("recovery: the plan of %s is unreadable; it needs ops review", r->case_id);
                runbook_plan_clear(&run->plan);
                free(run);
            } else {
                stage_pending_trace(run->p, r->trace);
                run->failing = r->failing;
                run->first_seq = r->first_seq;
                run->next = r->failing ? r->fail_done : r->done;
                snprintf(run->held_from, sizeof run->held_from, "%s", r->held_from);
                snprintf(run->failed_step, sizeof run->failed_step, "%s", r->failed_step);
                snprintf(run->error, sizeof run->error, "%s", r->error);
                if (r->failing) {
                    size_t k = 0;
                    while (k < run->plan.n && strcmp(run->plan.steps[k].name, r->failed_step) != 0)
                        k++;
                    runbook_failure_plan(&run->plan, k < run->plan.n ? k : 0, r->error, &x->opts, &run->fail, err,
                                         sizeof err);
                    if (k < run->plan.n)
                        s_add_release(x, run, &run->plan.steps[k]);
                }
                const rb_plan_t *cur = run->failing ? &run->fail : &run->plan;
                char lookup[RB_LOOKUP_MAX] = "";
                if (run->next < cur->n)
                    runbook_step_lookup(run->plan.case_id, &cur->steps[run->next], lookup);
                if (r->started && lookup[0])
                    run->not_before_ms = stage_mono_ms() + x->settle_ms; /* a ticket made just before the
                                                                             crash may not show in a search yet */
                x->runs[x->nruns++] = run;
                resumed++;
                log_info("resuming the runbook of %s at %s step %zu", r->case_id, r->failing ? "failure" : "runbook",
                         run->next + 1);
            }
        }
        json_decref(r->plan);
    }
    free(rec);
    x->rec = NULL;
    x->nrec = 0;
    if (resumed)
        log_info("%zu unfinished runbooks resumed from the journal", resumed);
    return 0;
}

/* s_outside - a client for an outside system (NULL if its URL is empty) */
static httpc_t *s_outside(const config_t *c, const char *name, const char *token, long timeout_ms)
{
    char key[64];
    snprintf(key, sizeof key, "outside/%s", name);
    const char *url = config_get(c, key);
    return url && *url ? httpc_new(url, token, timeout_ms) : NULL;
}

/* s_init - credentials, clients, policy knobs, and the runbooks to resume */
static int s_init(stage_t *st, void *arg)
{
    stage_count(st, "payguard_execute_retries_total", NULL, NULL, 0); /* exported from the start, at 0 */
    stage_count(st, "payguard_execute_reviews_total", NULL, NULL, 0); /* exported from the start, at 0 */
    execute_t *x = arg;
    x->st = st;
    const config_t *c = stage_config(st);
    char err[512];
    long timeout_ms, attempts, base, max, runs;
    if (config_bounded(c, "outside/timeout_ms", &timeout_ms, err, sizeof err) ||
        config_bounded(c, "execute/ticket_settle_ms", &x->settle_ms, err, sizeof err) ||
        config_bounded(c, "execute/max_runs_in_flight", &runs, err, sizeof err) ||
        config_bounded(c, "execute/max_attempts", &attempts, err, sizeof err) ||
        config_bounded(c, "execute/retry_base_ms", &base, err, sizeof err) ||
        config_bounded(c, "execute/retry_max_ms", &max, err, sizeof err)) {
        log_error("%s", err);
        return -1;
    }
    x->retry = (httpc_retry_t){.max_attempts = (int) attempts, .base_delay_ms = base, .max_delay_ms = max};
    assert(runs >= 1 && runs <= EXECUTE_MAX_RUNS);
    s_def.max_deferred = (unsigned) runs; /* then input waits: back-pressure */
    char *token = NULL;
    const char *tf = config_get(c, "execute/token_file");
    if (tf && *tf && !(token = httpc_read_token(tf, err, sizeof err))) {
        log_error("execute/token_file: %s", err);
        return -1;
    }
    const char *sn = config_get(c, "outside/servicenow");
    snprintf(x->ticket_system, sizeof x->ticket_system, "%s", sn && *sn ? "servicenow" : "jira");
    x->payments = s_outside(c, "payments", token, timeout_ms);
    x->ledger = s_outside(c, "ledger", token, timeout_ms);
    x->tickets = s_outside(c, x->ticket_system, token, timeout_ms);
    x->teams = s_outside(c, "teams", NULL, timeout_ms);
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    snprintf(x->jira_project, sizeof x->jira_project, "%s", config_get(c, "execute/jira_project"));
    snprintf(x->public_url, sizeof x->public_url, "%s", config_get(c, "approve/public_url"));
    x->release_hold_on_failure = strcmp(config_get(c, "execute/release_hold_on_failure"), "yes") == 0;
    x->opts =
        (rb_opts_t){.ticket_system = x->ticket_system, .jira_project = x->jira_project, .public_url = x->public_url};
    x->http = stage_http(st);
    if (!x->http || (x->sys_payments = stage_http_system(st, "payments", err, sizeof err)) < 0 ||
        (x->sys_ledger = stage_http_system(st, "ledger", err, sizeof err)) < 0 ||
        (x->sys_tickets = stage_http_system(st, x->ticket_system, err, sizeof err)) < 0 ||
        (x->sys_teams = stage_http_system(st, "teams", err, sizeof err)) < 0) {
        log_error("%s", x->http ? err : "cannot start the outside-call engine");
        return -1;
    }
    if (!x->payments || !x->ledger || !x->tickets)
        log_warn(
            "outside/payments, ledger and jira or servicenow should all be set: steps for a missing one fail to ops review");
    if (s_rdb_open(x, st) != 0)
        return -1;
    return s_recover(x);
}

/* s_retain_after - retention keeps every runbook in flight whole: the
 * records from the oldest one's "runbook" record on */
static uint64_t s_retain_after(stage_t *st, void *arg)
{
    execute_t *x = arg;
    uint64_t keep = stage_journal_last_seq(st);
    for (size_t i = 0; i < x->nruns; i++)
        if (x->runs[i]->first_seq && x->runs[i]->first_seq - 1 < keep)
            keep = x->runs[i]->first_seq - 1;
    return keep;
}

/* s_fini - release the clients (unfinished runbooks resume at the next start) */
static void s_fini(stage_t *st, void *arg)
{
    (void) st;
    execute_t *x = arg;
    for (size_t i = 0; i < x->nruns; i++) { /* unfinished: resumed from the journal at the next start */
        httpc_resp_free(&x->runs[i]->resp);
        runbook_plan_clear(&x->runs[i]->plan);
        runbook_plan_clear(&x->runs[i]->fail);
        free(x->runs[i]);
    }
    for (size_t i = 0; i < x->nnotices; i++) {
        httpc_resp_free(&x->notices[i]->resp);
        free(x->notices[i]);
    }
    for (size_t i = 0; i < x->nreviews; i++)
        free(x->reviews[i].plan_json);
    reviewdb_close(&x->rdb);
    httpc_destroy(&x->payments);
    httpc_destroy(&x->ledger);
    httpc_destroy(&x->tickets);
    httpc_destroy(&x->teams);
}

int main(int argc, char **argv)
{
    static execute_t x;
    s_def = (stage_def_t){.name = "execute",
                          .replay = s_replay,
                          .init = s_init,
                          .handle = s_handle,
                          .tick = s_tick,
                          .fini = s_fini,
                          .arg = &x,
                          .max_deferred = EXECUTE_MAX_RUNS,
                          .seal = STAGE_SEAL_IN,
                          .retire_journal = true,
                          .retain_after = s_retain_after};
    return stage_main(argc, argv, &s_def);
}
