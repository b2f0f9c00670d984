/* approve.h - approve's own state, shared by its modules (not by other
 * programs):
 *
 *   main.c   wiring: the stage's handler (routes triaged cases with
 *            common/policy.c), its tick (expiry, pending outcomes), recovery
 *   cases.c  the case table: approvals by case id, as JSON and event
 *            bodies, rebuilt from the journal, escalated and expired
 *   api.c    the approvals API (list, decide, review, whoami)
 *   peers.c  the instances as one API: requests passed on to the owner
 *            of their case, lists gathered from every instance
 *   cards.c  Teams cards
 *   sod.c    segregation of duties: may this person make this decision on
 *            this case, and what does it settle (pure)
 */
#ifndef PG_APPROVE_H
#define PG_APPROVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <czmq.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#include "event.h"
#include "httpd.h"
#include "people.h"
#include "policy.h"
#include "refusals.h"
#include "relay.h"
#include "runbook.h"
#include "stage.h"

/* approval states: X(ENUM, "name on the wire and in the API") */
#define APPROVAL_STATES(X)                                                                                             \
    X(APR_PENDING, "pending")                                                                                          \
    X(APR_APPROVED, "approved")                                                                                        \
    X(APR_DENIED, "denied")                                                                                            \
    X(APR_EXPIRED, "expired")                                                                                          \
    X(APR_AUTO_APPROVED, "auto_approved")                                                                              \
    X(APR_NO_ACTION, "no_action")                                                                                      \
    X(APR_CLOSED, "closed")

/* approval_state_t - where a case stands in approve */
typedef enum {
#define APPROVAL_STATE_ENUM(e, name) e,
    APPROVAL_STATES(APPROVAL_STATE_ENUM)
#undef APPROVAL_STATE_ENUM
        APR_NSTATES
} approval_state_t;

/* approval_state_name - the state's name ("?" out of range) */
const char *approval_state_name(approval_state_t s);
/* approval_state_of - the state named name; false (out untouched) if none */
bool approval_state_of(const char *name, approval_state_t *out);

/* decided_t - one person's recorded decision on a case */
typedef struct {
    char who[32];
    char role[POLICY_ROLE_MAX]; /* the required role this approval covered ("" for a deny) */
    char decision[8];
    char comment[512];
    int64_t at_ms;
} decided_t;

/* approval_t - a case as approve holds it */
typedef struct {
    char case_id[160];
    char kind[16];
    char ref[128];
    int64_t amount;
    char currency[4];
    approval_state_t state;
    route_t route;
    decided_t *decisions; /* ndecisions of them (malloc'd: most cases have one or two) */
    size_t ndecisions;
    int64_t created_ms, expires_ms;
    char raised_by[64];
    char triaged_id[EVENT_ID_MAX + 1];
    char *advice;                     /* the recommendation, compact JSON text, for GET and cards
                                         (text, not a jansson tree: kept for every case held) */
    char *facts;                      /* the triaged case as recorded, compact JSON text: what execute
                                         acts on (text, not a jansson tree: a tenth of the memory) */
    int retry;                        /* 0, or the ops-review retry round this approval is for */
    bool outcome_pending;             /* the deciding decision is journaled, its approved/denied event
                                         not yet: emitted by s_tick (after a full window or a crash
                                         between the two) */
    char outcome_by[32];              /* who made the deciding decision */
    char trace[TRACE_HEADER_LEN + 1]; /* approve's span of the triaged case (trace.h): what it publishes about
                                         the case carries it; "" if the case came without a trace */
    bool dirty;                       /* changed since it was last written to disk (casedb) */
} approval_t;

/* sod_judge - segregation of duties for one decision (a pure function of
 * the case, the person, the decision and the time): 0 and in role the
 * required role an approval covers ("" for a deny); else the HTTP status
 * to refuse with and why: 404 no case (c NULL), 409 not pending or
 * expired, 403 the person raised the case, decided it already (one person
 * counts once, whatever roles they hold), holds none of the roles it still
 * needs, or (approving) only roles others already cover */
unsigned sod_judge(const approval_t *c, const person_t *who, bool approve, int64_t now_ms, char role[POLICY_ROLE_MAX],
                   char *why, size_t whylen);

/* sod_review - may who ask for a retry of, or close, a case in ops review
 * (a pure function of the case's tier and the person)? 0, or 403 and why:
 * who must hold one of the roles of the case's tier (tier: policy_tier's
 * route for it). The separation of the asker from the approvers of the
 * retry is sod_judge's (the asker becomes the case's raiser). */
unsigned sod_review(const route_t *tier, const person_t *who, const char *what, char *why, size_t whylen);

/* review_judge - audit's answer to GET /cases/{id} (status, body) read for
 * ops review: 0 when the case is in ops_review; 409 and why for any other
 * state (executed, executing, closed, ...); 503 and why when it says
 * nothing usable (no answer, an error status, a body without a state) */
unsigned review_judge(long status, const char *body, char *why, size_t whylen);

/* review_in_ops - ask audit (audit_url, with the person's own Authorization
 * header) whether case_id is in ops review; review_judge's answer. Blocks
 * for at most REVIEW_TIMEOUT_MS: called from an HTTP thread, without mu. */
unsigned review_in_ops(const char *audit_url, const char *case_id, const char *authorization, char *why, size_t whylen);

/* sod_outcome - what the case's decisions so far settle: APR_DENIED once a
 * required approver denied, APR_APPROVED once every required role is
 * covered, else APR_PENDING */
approval_state_t sod_outcome(const approval_t *c, bool last_was_deny);

#define APPROVE_MAX_DECISIONS 16
#define APPROVE_MAX_BODY 8192

/* approve_t - the stage's state (loop thread and HTTP threads, under mu) */
typedef struct {
    stage_t *st;
    httpd_t *httpd;
    policy_t policy;
    people_live_t *people; /* the approvers in force (the skeleton's: stage_people), reloaded without a restart */
    char public_url[256];
    char ticket_system[16]; /* for the planned runbook shown while a case waits */
    rb_opts_t rb_opts;
    long expiry_s;
    int64_t full_logged_ms; /* when "cases full" was last said (loop thread) */
    long max_cases;         /* approve/max_cases: cases held at once (0 until init: a rebuild keeps all) */
    pthread_mutex_t mu;     /* approvals: loop thread and HTTP threads */
    approval_t **cases;
    size_t ncases;
    _Atomic long waiting;
    size_t outcomes_pending; /* approvals with outcome_pending (under mu) */
    zhashx_t *index;         /* case_id -> approval_t * (borrowed from cases) */
    struct casedb_t *db;     /* every case, as of a journal seq (casedb.h); in memory: those in flight */
    int64_t next_flush_ms;   /* the loop's next casedb commit */
    uint64_t replayed;       /* journaled events applied at start */
    int64_t next_scan_ms;    /* expiry is looked for a few times a second, not every turn */
    httpd_t *peer_httpd;     /* with instances > 1: requests the other instances pass on (peers.c) */
    char peer_bind[64];
    long peer_port;                         /* instance n listens on peer_port + n */
    char audit_url[128];                    /* audit's cases API: is an approved case in ops review? (review.c) */
    refusals_t *refusals;                   /* refused requests per source: aggregated, throttled (refusals.h) */
    bool draining;                          /* stopping: every refusal summary goes out at once */
    bool relay_on;                          /* console/enabled: a sealed X-Payguard-Client is believed */
    unsigned char relay_key[SEALKEY_BYTES]; /* console/relay_key_file (relay.h) */
} approve_t;

/* request - one API request whose answer waits for the journal */
typedef struct {
    struct MHD_Connection *conn;
    char *body;
    size_t len;
    bool too_large;
    pthread_mutex_t mu;
    bool suspended, durable, answered;
    unsigned status;
    char case_id[160];
    char state[16];
    char via[RELAY_ADDR_MAX]; /* the console's address when the person came through it, else "" (peers_client) */
} request_t;

/* approve_js - a string member of o, or "" */
const char *approve_js(json_t *o, const char *key);
/* approve_json_text - v as compact JSON text (NULL for NULL); caller frees */
char *approve_json_text(const json_t *v);

/* cases_full - are approve/max_cases cases held and none of them decided
 * (so none can make room)? Then no new case is taken (caller holds mu) */
bool cases_full(const approve_t *a);

/* cases_find - the approval of case_id, NULL if none (caller holds mu) */
approval_t *cases_find(approve_t *a, const char *case_id);
/* cases_store - add or replace c in the table (caller holds mu) */
void cases_store(approve_t *a, approval_t *c);
/* cases_free - an approval and what it owns */
void cases_free(approval_t *c);
/* cases_settle - a decided case keeps only what a retry or the API needs */
void cases_settle(approval_t *c);
/* cases_decision_add - room for one more decision on c */
decided_t *cases_decision_add(approval_t *c);
/* cases_json - the approval as GET /approvals shows it */
json_t *cases_json(const approval_t *c);
/* approve_traced - b with c's traceparent (replacing one b has), when c
 * has one: what approve publishes about a case stays in its trace. Takes
 * b, returns the body to use */
event_body_t *approve_traced(const approval_t *c, event_body_t *b);
/* cases_body - the approval as an event body (routed, approved, ...) */
event_body_t *cases_body(const approval_t *c);
/* cases_record - the facts execute acts on, as recorded */
json_t *cases_record(const approval_t *c);
/* cases_row - an approval as casedb stores it (malloc'd JSON text) */
char *cases_row(const approval_t *c);
/* cases_from_row - an approval read back from casedb, NULL if unreadable */
approval_t *cases_from_row(const char *row);
/* cases_flush - write every changed case to casedb and commit it as the
 * state at journal seq jseq (durable in the journal, every change up to it
 * applied: casedb.h); then forget from memory the cases no longer in
 * flight. 0, or -1 and nothing forgotten (caller holds mu) */
int cases_flush(approve_t *a, uint64_t jseq);
/* cases_load - at start, the cases in flight from casedb into memory
 * (before the journal after its position is replayed); how many */
size_t cases_load(approve_t *a);
/* cases_apply - one of approve's journaled events, applied to the table
 * (recovery after a restart) */
void cases_apply(approve_t *a, event_type_t type, json_t *b, const char *case_id);

/* cases_expire - escalate or expire pending approvals past their deadline
 * (caller holds mu) */
void cases_expire(approve_t *a, int64_t now);

/* cards_card - a Teams card body about c, titled */
event_body_t *cards_card(approve_t *a, const approval_t *c, const char *title);

/* api_answer, api_completed - libmicrohttpd's access and completion handlers */
enum MHD_Result api_answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls);
void api_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe);
/* api_answer_peer - the same API on the listener for the other instances:
 * the client's address from X-Payguard-Client, nothing passed on again */
enum MHD_Result api_answer_peer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls);
/* api_serve - the API (via_peer: for the other instances) on the listening
 * socket fd, with approve's HTTP limits (httpd.h); NULL and err */
httpd_t *api_serve(approve_t *a, int fd, bool via_peer, char *err, size_t errlen);

/* peers_start - with more than one instance: this instance's listener for
 * what the others pass on (approve/peer_bind, peer_port + index); 0 or -1 */
int peers_start(approve_t *a);
/* peers_owner - the instance that owns case_id (route.h) */
int peers_owner(const approve_t *a, const char *case_id);
/* peers_forward - pass a request about case_id on to its owner (path
 * prefix + escaped case + suffix), with the person's address and the
 * console's (via, "" if none), and answer with the owner's answer */
enum MHD_Result peers_forward(approve_t *a, struct MHD_Connection *conn, int owner, const char *method,
                              const char *prefix, const char *case_id, const char *suffix, const char *body,
                              const char *client, const char *via);
/* peers_relay_init - the relay key when the console runs (console/enabled:
 * console/relay_key_file, made if missing), so peers_client believes a
 * sealed X-Payguard-Client; 0, or -1 and err */
int peers_relay_init(approve_t *a, char *err, size_t errlen);
/* peers_client - who a request came from: from a peer instance, the
 * person's address and via as the peer says (X-Payguard-Client); on the
 * public port, the header's address with the TCP peer as via when the
 * console sealed it for this request's token, else the TCP peer and no
 * via (an unsealed or badly sealed header is ignored and counted) */
void peers_client(approve_t *a, struct MHD_Connection *conn, bool via_peer, char client[RELAY_ADDR_MAX],
                  char via[RELAY_ADDR_MAX]);
/* peers_list - the other instances' approvals of status added to *list, all
 * sorted newest first; -1 and err if one did not answer */
int peers_list(approve_t *a, struct MHD_Connection *conn, const char *status, const char *client, json_t **list,
               char *err, size_t errlen);
/* api_emit_outcome - the approved/denied event of a decided case and its
 * card; 0, or -1 and it stays pending for the tick (caller holds mu) */
int api_emit_outcome(approve_t *a, approval_t *c);
/* api_audit_refusal - a refused request, on the trail (who, what, why);
 * case_id is its case key only when known (a case approve holds), else
 * data ("requested_case", escaped: refusals_escape). A 401 or 403 counts
 * toward the source's throttle; an unknown token's repeats go into the
 * source's summary (refusals.h) */
void api_audit_refusal(approve_t *a, event_type_t type, const char *who, const char *case_id, bool known,
                       unsigned status, const char *why, const char *peer);

#endif
