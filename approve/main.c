/*++
 * NAME
 *	approve - policy routing, people, segregation of duties
 * SYNOPSIS
 *	approve [-c CONFIG] [-i 0]	(started by `payguard up`, or systemd: payguard-approve@0.service)
 * DESCRIPTION
 *	For each triaged case, policy (common/policy.c, CONTRACT.md §4) picks
 *	the route and records the rule that chose it:
 *	  no action     the systems already agree ("already_consistent");
 *	  auto          policy approves (refund corrections within the limits,
 *	                tickets) and the case goes to execute;
 *	  humans        the roles of the amount tier must each be covered by a
 *	                distinct person before execute may act.
 *	Policy reads recorded facts, the advice's closed-set labels and its
 *	confidence; nothing else the advice says.
 *
 *	People decide through the approvals API (CONTRACT.md §3.1), served here
 *	with libmicrohttpd, or `payguard approve`:
 *	  GET  /approvals?status=pending|approved|denied|expired|all[&limit=N]
 *	       (newest first, N 1..1000, default 1000; decided cases from disk)
 *	  GET  /approvals/{case_id}
 *	  POST /approvals/{case_id}/decisions {"decision":"approve|deny","comment"}
 *	  POST /reviews/{case_id}/retry|close {"comment"}  (ops review, below)
 *	  GET  /metrics, GET /healthz (no token; /metrics: the Bearer token
 *	       payguard/metrics_token_sha256 hashes, when set: common/httpd.c)
 *	The server (and the peer listener, peers.c) is common/httpd.c's, with
 *	the limits every port has: approve/http_max_per_address connections
 *	from one address (the console's calls all come from one), each request
 *	received and answered within approve/http_deadline_s.
 *	The port's socket is the one the master hands down (under systemd, one
 *	the instance binds itself: SO_REUSEPORT when several run;
 *	common/listenfd.h).
 *	Every request needs Authorization: Bearer <token> of a configured
 *	approver (approvers/<name>/token_sha256: the SHA-256 of the token, never
 *	the token; compared in constant time). 401 unknown token, or one past
 *	its approvers/<name>/expires ("token of <name> expired at <time>", on
 *	the trail too); 403 lacking a
 *	required role, deciding twice, or approving a case one raised; 409 not
 *	awaiting a decision (decided or expired); 404 unknown case. Every
 *	refusal is recorded in the audit trail (access_denied, decision_refused);
 *	its case key is the case only when approve holds it, else the id is
 *	data (requested_case, escaped to printable ASCII) and no case is made
 *	of it.
 *
 *	REFUSALS (common/refusals.h): a source address's first unknown-token
 *	refusal in payguard/refusals/window_s is recorded at once, its repeats
 *	as one access_denied summary when the window ends ("N refusals from X
 *	between T1 and T2"; a refusal the delivery window cannot take goes
 *	into it too). A person's refusals (403, 404, 409) are recorded one by
 *	one. throttle_after 401s and 403s from one address within window_s
 *	throttle it for throttle_s: every request it sends is answered 429
 *	with Retry-After before its token is looked at, and counted into its
 *	summary. payguard/refusals/exempt (the console's address) is never
 *	throttled. Each instance keeps its own table (of what it refused).
 *
 *	SEGREGATION OF DUTIES: a person counts once per case whatever roles they
 *	hold; each required role needs its own person; the person who raised the
 *	case (metadata.raised_by of the payout) cannot approve it; a deny from a
 *	person holding a required role denies the case.
 *
 *	A decision is journaled, and durable, before it is answered 200: a 200
 *	is never lost. The decision that settles a case is followed by its
 *	approved/denied event (what execute acts on) as a record of its own;
 *	until that record is journaled the outcome is pending, and each loop
 *	turn emits pending outcomes, so neither a full delivery window nor a
 *	crash between the two records strands a decided case (at start the
 *	case store and the journal show which decisions lack their outcome).
 *	Pending approvals expire after approve/expiry_s and escalate to the
 *	next tier's roles (past tier 3 they stay expired, for ops review);
 *	expiry never approves. Pending approvals survive a restart (STATE).
 *
 *	OPS REVIEW: a person may close a case whose runbook failed (a "closed"
 *	event: execute stops listing it), or ask for a retry: that opens a new
 *	approval round for the case with the requester as its raiser, so the
 *	same roles, held by others, must approve before execute tries again.
 *	Either needs a role of the case's tier, and a case approve handed to
 *	execute must be in ops_review by audit's cases API (asked with the
 *	person's own token: review.c); otherwise 403 or 409, recorded.
 *
 *	Teams: when a case awaits people, and when it is decided, expires or
 *	escalates, an Adaptive Card notice goes to execute, which alone posts to
 *	outside/teams (least privilege: approve holds no credential of another
 *	system).
 * INPUT
 *	"triaged" events from triage (facts, state, advice).
 * OUTPUT
 *	"routed" (audit), "approved" and "denied" (execute and audit),
 *	"decision", "decision_refused", "access_denied", "escalated", "expired"
 *	(audit), "notice" (execute: a Teams card). Metrics:
 *	payguard_approve_refusals_total, payguard_refusals_throttled_total,
 *	payguard_refusals_aggregated_total, payguard_refusals_sources_throttled.
 * SECURITY
 *	Holds token hashes only. Case text is data: the API answers JSON.
 *	Who a request came from is its TCP peer, recorded as client_ip, except
 *	(approve/peers.c, common/relay.h): from another instance on the peer
 *	listener, the person's address and via as it passes them on in
 *	X-Payguard-Client; from the console (console/enabled), the address the
 *	console puts in X-Payguard-Client when it is sealed, with the relay
 *	key (console/relay_key_file), for that request's Authorization: then
 *	client_ip is the person's and via the console's, on decision and
 *	closed records. Anyone else's X-Payguard-Client is ignored (counted in
 *	payguard_approve_client_claims_ignored_total).
 *	Seals every event it sends to execute with the group's seal key
 *	(payguard/seal_key_file; common/event.h, SEALS): execute acts on
 *	nothing else.
 * CONFIGURATION
 *	approve/http_bind, http_port, http_max_per_address, http_deadline_s,
 *	public_url, expiry_s, confidence_min,
 *	max_cases, case_db, retention_s, tier{1,2,3}_roles, thresholds/<CUR>;
 *	approvers/<name>/{roles,token_sha256,expires}; console/enabled,
 *	relay_key_file; payguard/refusals/window_s, throttle_after,
 *	throttle_s, exempt. The approvers are read again, without a restart, on
 *	SIGHUP and when the configuration file changes (looked at every 2 s);
 *	a file whose approvers do not load leaves those in force, logged and
 *	counted (payguard_approvers_reloads_total{outcome}). Other settings
 *	need a restart.
 * STATE (casedb.h)
 *	Every case is in approve/case_db (SQLite) as of a journal position:
 *	once a second the loop syncs the journal and commits the cases that
 *	changed with that position, then forgets from memory those no longer
 *	in flight. Memory holds the cases awaiting people, those decided whose
 *	outcome is not yet sent, and those someone is looking at; any other
 *	case is read back from disk when asked for (GET, a late decision's 409,
 *	an ops-review retry or close). A restart loads the cases in flight and
 *	replays only the journal after the store's position. Retention
 *	(approve/retention_s) removes journal segments execute and audit
 *	acknowledged and the store holds; a store that is lost after that
 *	stops approve at start, saying so (restore it from its backup).
 * BOUNDS
 *	At most approve/max_cases cases in memory: a new one makes room by
 *	writing the oldest decided case whose outcome was sent to disk. When
 *	every case held awaits people, a new case is not taken (STAGE_RETRY:
 *	not acknowledged, its producer sends it again later), so back-pressure
 *	reaches ingest rather than approve aborting or dropping a case.
 *--*/
#include <arpa/inet.h>
#include <assert.h>
#include <czmq.h>
#include <stdatomic.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "approve.h"
#include "casedb.h"
#include "policy.h"
#include "runbook.h"
#include "journal.h"
#include "listenfd.h"
#include "log.h"
#include "httpd.h"
#include "people.h"
#include "money.h"
#include "stage.h"
#include "utc.h"

/* ----------------------------------------------------------- state */

#define APPROVE_FLUSH_MS 1000       /* the loop commits the case store this often */
#define APPROVE_REPLAY_FLUSH 10000u /* and a rebuild every this many events */

static void s_flush(approve_t *a, stage_t *st);

/* ------------------------------------------------------------- routing */

/* s_takes - the input approve routes: triaged cases (the switch names every
 * type, so a new one must be placed here) */
static bool s_takes(event_type_t type)
{
    switch (type) {
    case EV_TRIAGED:
        return true;
    case EV_RECEIPT:
    case EV_VALIDATED:
    case EV_REJECTED:
    case EV_DUPLICATE:
    case EV_IGNORED:
    case EV_OUT_OF_ORDER:
    case EV_SWEEP:
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
        return false;
    }
    return false;
}

/* s_handle - route a triaged case */
/* s_new_approval - the approval a triaged case starts, routed by the policy */
static approval_t *s_new_approval(approve_t *a, const event_t *in, json_t *body)
{
    policy_input_t pin;
    policy_input_from_json(body, &pin);
    approval_t *c = calloc(1, sizeof *c);
    assert(c);
    snprintf(c->case_id, sizeof c->case_id, "%s", event_head(in)->case_key);
    snprintf(c->kind, sizeof c->kind, "%s", pin.kind);
    snprintf(c->ref, sizeof c->ref, "%s",
             json_is_string(json_object_get(body, "ref")) ? json_string_value(json_object_get(body, "ref")) : "");
    snprintf(c->raised_by, sizeof c->raised_by, "%s",
             json_is_string(json_object_get(body, "raised_by")) ? json_string_value(json_object_get(body, "raised_by"))
                                                                : "");
    c->amount = pin.amount;
    snprintf(c->currency, sizeof c->currency, "%s", pin.currency);
    snprintf(c->triaged_id, sizeof c->triaged_id, "%s", event_head(in)->id);
    trace_t span;
    if (stage_trace(a->st, &span) == 0)
        trace_format(&span, c->trace);
    /* times from validate's decision, not the clock: a replay of this stage
     * over the same input, from whichever triage worker, reaches the same record */
    json_t *vms = json_object_get(body, "validated_ms");
    c->created_ms = json_is_integer(vms) ? json_integer_value(vms) : event_head(in)->time_ms;
    c->expires_ms = c->created_ms + a->expiry_s * 1000;
    c->advice = approve_json_text(json_object_get(body, "advice"));
    c->facts = json_dumps(body, JSON_COMPACT);
    policy_route(&a->policy, &pin, &c->route);
    c->state = c->route.kind == ROUTE_NO_ACTION ? APR_NO_ACTION
               : c->route.kind == ROUTE_AUTO    ? APR_AUTO_APPROVED
                                                : APR_PENDING;
    return c;
}

/* s_full - approve/max_cases cases await people and none can make room:
 * a new case waits (back-pressure), said once a minute */
static bool s_full(approve_t *a, stage_t *st, const char *case_id)
{
    pthread_mutex_lock(&a->mu);
    bool full = !cases_find(a, case_id) && cases_full(a);
    pthread_mutex_unlock(&a->mu);
    if (!full)
        return false;
    int64_t now = stage_mono_ms();
    if (now - a->full_logged_ms >= 60000) {
        log_warn("%ld cases await people (approve/max_cases): taking no new case until some are decided", a->max_cases);
        a->full_logged_ms = now;
    }
    stage_count(st, "payguard_approve_full_total", NULL, NULL, 1);
    return true;
}

static int s_handle(stage_t *st, const event_t *in, void *arg)
{
    approve_t *a = arg;
    if (!s_takes(event_head(in)->kind)) {
        if (event_head(in)->kind != EV_ACCESS_DENIED) /* else our own refusal summary (refusals_trail_flush) */
            log_warn("ignoring a %s event: approve takes triaged cases", event_head(in)->type);
        return STAGE_DONE;
    }
    if (s_full(a, st, event_head(in)->case_key))
        return STAGE_RETRY; /* not acknowledged: its producer sends it again later */
    json_t *body = event_body_to_json(in);
    approval_t *c = s_new_approval(a, in, body);

    pthread_mutex_lock(&a->mu);
    approval_t *prior = cases_find(a, c->case_id);
    bool busy = prior && prior->state == APR_PENDING;
    pthread_mutex_unlock(&a->mu);
    if (busy) {
        /* a newer fact about a case already awaiting people: on the
         * timeline; the pending decision stands (they see the case page) */
        event_body_t *b = event_body_new();
        event_body_str(b, EK_CASE_ID, c->case_id);
        event_body_str(b, "note", "a new event for a case already awaiting a decision; the pending approval stands");
        stage_emit(st, EV_ROUTED, c->case_id, b, STAGE_TO_AUDIT);
        event_body_destroy(&b);
        cases_free(c);
        json_decref(body);
        return STAGE_DONE;
    }
    /* the route, with the rule that chose it */
    event_body_t *b = cases_body(c); /* with the facts execute will act on */
    stage_emit(st, EV_ROUTED, c->case_id, b, STAGE_TO_AUDIT);
    event_body_destroy(&b);
    if (c->route.kind == ROUTE_AUTO) {
        b = cases_body(c);
        event_body_str(b, "decided_by", "policy");
        stage_emit(st, EV_APPROVED, c->case_id, b, STAGE_TO_BOTH);
        event_body_destroy(&b);
    } else if (c->route.kind == ROUTE_HUMANS) {
        b = cards_card(a, c, "A payguard case awaits your decision");
        stage_emit(st, EV_NOTICE, c->case_id, b, STAGE_TO_BOTH);
        event_body_destroy(&b);
    }
    stage_count(st, "payguard_approve_routes_total", "rule", c->route.rule, 1);
    cases_settle(c); /* auto-approved or nothing to do: decided already */
    pthread_mutex_lock(&a->mu);
    cases_store(a, c);
    pthread_mutex_unlock(&a->mu);
    json_decref(body);
    return STAGE_DONE;
}

/* ---------------------------------------------------------- people */

/* ------------------------------------------------------------- HTTP */

/* ----------------------------------------------------------- time */

/* s_refusals - the refusal summaries due onto the trail (every one once
 * stopping), and the sources throttled now */
static void s_refusals(approve_t *a, stage_t *st)
{
    refusals_trail_flush(a->refusals, st, a->draining);
    refusals_stats_t rs;
    refusals_stats(a->refusals, &rs);
    stage_gauge(st, "payguard_refusals_sources_throttled", (int64_t) rs.throttled_now);
}

/* s_tick - expiry and escalation: expiry never approves */
static void s_tick(stage_t *st, void *arg)
{
    approve_t *a = arg;
    int64_t now = stage_now_ms();
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; a->outcomes_pending && i < a->ncases; i++)
        if (a->cases[i]->outcome_pending && api_emit_outcome(a, a->cases[i]) != 0)
            break; /* the window is still full: next turn */
    if (now < a->next_scan_ms) {
        pthread_mutex_unlock(&a->mu);
        return;
    }
    if (now >= a->next_flush_ms) {
        pthread_mutex_unlock(&a->mu);
        s_flush(a, st);
        a->next_flush_ms = now + APPROVE_FLUSH_MS;
        pthread_mutex_lock(&a->mu);
    }
    a->next_scan_ms = now + 200;
    cases_expire(a, now);
    size_t pending = 0, held = a->ncases;
    for (size_t i = 0; i < a->ncases; i++)
        pending += a->cases[i]->state == APR_PENDING;
    pthread_mutex_unlock(&a->mu);
    stage_gauge(st, "payguard_approvals_pending", (int64_t) pending);
    stage_gauge(st, "payguard_approve_cases_held", (int64_t) held);
    s_refusals(a, st);
}

/* ------------------------------------------------------------ start */

/* s_retain_after - the case store's position: retention keeps what follows */
static uint64_t s_retain_after(stage_t *st, void *arg)
{
    (void) st;
    approve_t *a = arg;
    return a->db ? casedb_applied(a->db) : 0;
}

/* s_db_open - approve/case_db, once; emptied when it is ahead of the
 * journal (casedb.h). 0, or -1 (logged) */
static int s_db_open(approve_t *a, stage_t *st)
{
    if (a->db)
        return 0;
    const config_t *c = stage_config(st);
    char *path = config_expand(c, config_get(c, "approve/case_db"), "approve", stage_index(st));
    char err[512];
    uint64_t epoch = 0;
    if (journal_dir_epoch(stage_journal_dir(st), &epoch) != 0)
        log_warn("approve's journal has no epoch file: its case store is rebuilt");
    a->db = path ? casedb_open(path, epoch, err, sizeof err) : NULL;
    if (!a->db)
        log_error("%s", path ? err : "approve/case_db: not set");
    uint64_t last = stage_journal_last_seq(st);
    if (a->db && casedb_applied(a->db) > last) {
        log_warn("approve's case store %s is ahead of the journal (#%llu, the journal ends at #%llu): rebuilding it "
                 "from the journal",
                 path, (unsigned long long) casedb_applied(a->db), (unsigned long long) last);
        if (casedb_wipe(a->db) != 0)
            casedb_close(&a->db);
    }
    if (a->db && casedb_applied(a->db) == 0 && stage_journal_trimmed(st)) {
        log_error("approve's case store %s is new, reset or of another journal, and approve's journal no longer "
                  "holds its first records (<journal>/retired): the cases decided before cannot be rebuilt. Restore "
                  "the file from its backup (it is approve's state; the trail keeps every event)",
                  path);
        casedb_close(&a->db);
    }
    free(path);
    if (a->db)
        cases_load(a);
    return a->db ? 0 : -1;
}

/* s_replay - pending approvals survive a restart: each of our journaled
 * events past what the case store holds, as the skeleton's recovery reads
 * it, rebuilds the state */
static void s_replay(stage_t *st, const event_t *ev, void *arg)
{
    approve_t *a = arg;
    if (s_db_open(a, st) != 0)
        exit(1); /* said why; the supervisor's restarts show it */
    uint64_t seq = event_head(ev)->seq;
    if (seq <= casedb_applied(a->db))
        return; /* in the store already */
    event_type_t type = event_head(ev)->kind;
    switch (type) {
    case EV_ROUTED:
    case EV_DECISION:
    case EV_APPROVED:
    case EV_DENIED:
    case EV_ESCALATED:
    case EV_EXPIRED:
    case EV_CLOSED:
        break; /* what approve's state is made of */
    case EV_RECEIPT:
    case EV_VALIDATED:
    case EV_REJECTED:
    case EV_DUPLICATE:
    case EV_IGNORED:
    case EV_OUT_OF_ORDER:
    case EV_SWEEP:
    case EV_TRIAGED:
    case EV_EXECUTED:
    case EV_RUNBOOK:
    case EV_STEP:
    case EV_REVIEW:
    case EV_NOTICE:
    case EV_ACCESS_DENIED:
    case EV_DECISION_REFUSED:
    case EV_AUDIT_VERIFIED:
    case EV_NONE:
    case EV_NTYPES:
        return; /* cards, refusals: nothing to rebuild */
    }
    json_t *b = event_body_to_json(ev);
    cases_apply(a, type, b, event_head(ev)->case_key);
    json_decref(b);
    if (++a->replayed % APPROVE_REPLAY_FLUSH == 0 && cases_flush(a, seq) != 0)
        exit(1); /* a store that cannot be written: logged */
}

/* s_flush - commit the case store at the journal's end, made durable
 * first; the loop thread only, between inputs (so memory holds every
 * change of every record journaled: casedb.h) */
static void s_flush(approve_t *a, stage_t *st)
{
    pthread_mutex_lock(&a->mu);
    uint64_t jseq = stage_journal_last_seq(st);
    stage_flush(st);
    if (cases_flush(a, jseq) != 0)
        log_warn("approve's case store: commit failed (cases stay in memory; trying again)");
    pthread_mutex_unlock(&a->mu);
}

/* s_init - policy, people, state, the API */
static int s_init(stage_t *st, void *arg)
{
    approve_t *a = arg;
    a->st = st;
    pthread_mutex_init(&a->mu, NULL);
    const config_t *c = stage_config(st);
    char err[512];
    long port;
    if (policy_load(c, &a->policy, err, sizeof err) != 0 ||
        config_bounded(c, "approve/http_port", &port, err, sizeof err) ||
        config_bounded(c, "approve/expiry_s", &a->expiry_s, err, sizeof err) ||
        config_bounded(c, "approve/max_cases", &a->max_cases, err, sizeof err) ||
        config_api_url(c, "audit", a->audit_url, sizeof a->audit_url, err, sizeof err)) {
        log_error("%s", err);
        return -1;
    }
    snprintf(a->public_url, sizeof a->public_url, "%s", config_get(c, "approve/public_url"));
    const char *sn = config_get(c, "outside/servicenow");
    snprintf(a->ticket_system, sizeof a->ticket_system, "%s", sn && *sn ? "servicenow" : "jira");
    a->rb_opts = (rb_opts_t){.ticket_system = a->ticket_system,
                             .jira_project = config_get(c, "execute/jira_project"),
                             .public_url = a->public_url};
    a->people = stage_people(st);
    if (peers_relay_init(a, err, sizeof err) != 0) {
        log_error("%s", err);
        return -1;
    }
    bool demo;
    size_t npeople = people_live_count(a->people, &demo);
    if (demo)
        log_warn("using the embedded DEMO approvers (tokens in config/sandbox/): list your own under approvers");
    refusals_opts_t ro;
    if (refusals_config(c, &ro, err, sizeof err) != 0 ||
        !(a->refusals = refusals_new(&ro, NULL, NULL, err, sizeof err))) {
        log_error("%s", err);
        return -1;
    }
    if (s_db_open(a, st) != 0)
        return -1;
    uint64_t from = casedb_applied(a->db);
    for (size_t i = 0; i < a->ncases; i++) /* rebuilt from the journal: decided ones keep no facts */
        cases_settle(a->cases[i]);
    log_info("%zu approvers configured", npeople);
    s_flush(a, st);
    size_t pending = 0;
    for (size_t i = 0; i < a->ncases; i++)
        pending += a->cases[i]->state == APR_PENDING;
    log_info("approvals: %llu journaled events replayed after #%llu, the case store's position; %zu cases in flight "
             "(%zu pending), %lld on disk",
             (unsigned long long) a->replayed, (unsigned long long) from, a->ncases, pending,
             (long long) casedb_count(a->db));
    int lfd = listenfd_get(config_get(c, "approve/http_bind"), port, config_instances(c, "approve") > 1, err,
                           sizeof err); /* the master's, else one of each instance's (systemd) */
    if (lfd < 0) {
        log_error("config: approve/http_bind, http_port: %s", err);
        return -1;
    }
    a->httpd = api_serve(a, lfd, false, err, sizeof err);
    if (!a->httpd) {
        log_error("cannot serve the approvals API on port %ld: %s", port, err);
        return -1;
    }
    log_info("approvals API on http://%s:%ld", config_get(c, "approve/http_bind"), port);
    return peers_start(a);
}

/* s_drain - stop taking requests; the refusals not yet on the trail go
 * now (and the rest with each tick until the stage stops) */
static void s_drain(stage_t *st, void *arg)
{
    approve_t *a = arg;
    if (a->httpd)
        httpd_quiesce(a->httpd);
    if (a->peer_httpd)
        httpd_quiesce(a->peer_httpd);
    a->draining = true;
    if (a->refusals)
        refusals_trail_flush(a->refusals, st, true);
}

/* s_busy - decisions still waiting for the journal */
static bool s_busy(stage_t *st, void *arg)
{
    (void) st;
    return atomic_load(&((approve_t *) arg)->waiting) > 0;
}

/* s_fini - stop the API, free the state */
static void s_fini(stage_t *st, void *arg)
{
    approve_t *a = arg;
    httpd_stop(&a->httpd);
    httpd_stop(&a->peer_httpd);
    if (a->db)
        s_flush(a, st); /* a restart then replays nothing */
    refusals_destroy(&a->refusals);
    casedb_close(&a->db);
    zhashx_destroy(&a->index);
    for (size_t i = 0; i < a->ncases; i++)
        cases_free(a->cases[i]);
    free(a->cases);
}

int main(int argc, char **argv)
{
    static approve_t a;
    static const stage_def_t def = {.name = "approve",
                                    .replay = s_replay,
                                    .init = s_init,
                                    .handle = s_handle,
                                    .tick = s_tick,
                                    .drain = s_drain,
                                    .busy = s_busy,
                                    .fini = s_fini,
                                    .people = true, /* the skeleton holds and reloads the approvers */
                                    .arg = &a,
                                    .seal = STAGE_SEAL_OUT, /* execute acts only on what approve seals */
                                    .retire_journal = true,
                                    .retain_after = s_retain_after};
    return stage_main(argc, argv, &def);
}
