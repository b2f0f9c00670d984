/* event_types - the contract between payguard's processes: every event
 * type, the stage that emits it, and what it means. One X-macro list
 * generates the enum (event_type_t), the names on the wire, and the check
 * that rejects any other type (event.c). Stages decode the type once
 * (event_head(ev)->kind) and switch on it; the compiler's -Wswitch-enum
 * names every case a switch forgets.
 *
 * RULE: bump EVENT_VERSION (event.h) whenever this list changes (a type
 * added, removed or renamed) or a body key some consumer requires changes
 * (the key constants below): a process must never take an event written
 * under another contract for one of its own.
 *
 * X(ENUM, "wire name", "emitted by", "meaning")
 */
#ifndef PG_EVENT_TYPES_H
#define PG_EVENT_TYPES_H

#define EVENT_TYPES(X)                                                                                                 \
    X(EV_RECEIPT, "receipt", "ingest", "a webhook as received, durable before the 2xx")                                \
    X(EV_VALIDATED, "validated", "validate", "passed signature, schema and freshness gates")                           \
    X(EV_REJECTED, "rejected", "ingest validate", "failed a gate; the body says which and why")                        \
    X(EV_DUPLICATE, "duplicate", "validate", "idempotency key seen before")                                            \
    X(EV_IGNORED, "ignored", "validate", "an event type payguard does not handle, recorded and closed")                \
    X(EV_OUT_OF_ORDER, "out_of_order", "validate", "older (by the PSP's time) than what the case already applied")     \
    X(EV_SWEEP, "sweep", "validate", "a refund pending too long, re-read from the PSP")                                \
    X(EV_TRIAGED, "triaged", "triage", "the advisory (AI) recommendation")                                             \
    X(EV_ROUTED, "routed", "approve", "policy route chosen, awaiting a decision")                                      \
    X(EV_DECISION, "decision", "approve", "a person's decision as submitted")                                          \
    X(EV_APPROVED, "approved", "approve", "the case may be executed")                                                  \
    X(EV_DENIED, "denied", "approve", "the case must not be executed")                                                 \
    X(EV_EXPIRED, "expired", "approve", "no decision before the deadline")                                             \
    X(EV_EXECUTED, "executed", "execute", "the runbook finished")                                                      \
    X(EV_RUNBOOK, "runbook", "execute", "the plan of a decided case, journaled before its first step")                 \
    X(EV_STEP, "step", "execute", "one runbook step started or finished")                                              \
    X(EV_REVIEW, "review", "execute", "handed to ops review")                                                          \
    X(EV_NOTICE, "notice", "approve execute", "an operational notice (a Teams card)")                                  \
    X(EV_ACCESS_DENIED, "access_denied", "approve audit", "failed authentication")                                     \
    X(EV_DECISION_REFUSED, "decision_refused", "approve", "a decision refused (role, segregation of duties, state)")   \
    X(EV_ESCALATED, "escalated", "approve", "a pending approval expired and moved to the next tier")                   \
    X(EV_CLOSED, "closed", "approve", "a person closed a case in ops review")                                          \
    X(EV_AUDIT_VERIFIED, "audit_verified", "audit", "a person ran the chain verification; the body says the outcome")

/* event_type_t - EV_NONE (0) is no type: what an unknown name maps to */
typedef enum {
    EV_NONE = 0,
#define EVENT_TYPE_ENUM(e, name, by, meaning) e,
    EVENT_TYPES(EVENT_TYPE_ENUM)
#undef EVENT_TYPE_ENUM
        EV_NTYPES
} event_type_t;

/* event_type_name - the wire name of t ("" for EV_NONE or out of range) */
const char *event_type_name(event_type_t t);
/* event_type_of - the type named name, EV_NONE if there is none */
event_type_t event_type_of(const char *name);
/* event_type_emitter - the stages that emit t (space-separated) */
const char *event_type_emitter(event_type_t t);

/* Body keys more than one program reads, named once. */
#define EK_CASE_ID "case_id"
#define EK_STATE "state"
#define EK_DECISION "decision"
#define EK_WHO "who"
#define EK_ROLE "role"
#define EK_COMMENT "comment"
#define EK_REASON "reason"
#define EK_CODE "code"
#define EK_STATUS "status"
#define EK_HEADERS "headers"
#define EK_BODY "body"
#define EK_ENDPOINT "endpoint"
#define EK_PEER "peer"
#define EK_KEY "key"
#define EK_RETRY "retry"

#endif
