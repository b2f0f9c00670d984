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
 * X(ENUM, "wire name", "emitted by", "meaning", "required body keys")
 * The required keys are what consumers rely on: a stage cannot emit an
 * event of that type without them (event_emit_encode, under stage_emit,
 * stage_publish and stage_inject), so the emitter that forgot one fails
 * where the mistake is.
 */
#ifndef PG_EVENT_TYPES_H
#define PG_EVENT_TYPES_H

#define EVENT_TYPES(X)                                                                                                 \
    X(EV_RECEIPT, "receipt", "ingest", "a webhook as received, durable before the 2xx",                                \
      "endpoint peer received_ms headers body")                                                                        \
    X(EV_VALIDATED, "validated", "validate", "passed signature, schema and freshness gates", "case_id key kind")       \
    X(EV_REJECTED, "rejected", "ingest validate", "failed a gate; the body says which and why", "gate code reason")    \
    X(EV_DUPLICATE, "duplicate", "validate", "idempotency key seen before", "case_id key")                             \
    X(EV_IGNORED, "ignored", "validate", "an event type payguard does not handle, recorded and closed", "")            \
    X(EV_OUT_OF_ORDER, "out_of_order", "validate", "older (by the PSP's time) than what the case already applied",     \
      "case_id key")                                                                                                   \
    X(EV_SWEEP, "sweep", "validate", "a refund pending too long, re-read from the PSP", "")                            \
    X(EV_TRIAGED, "triaged", "triage", "the advisory (AI) recommendation", "case_id advice")                           \
    X(EV_ROUTED, "routed", "approve", "policy route chosen, awaiting a decision", "case_id")                           \
    X(EV_DECISION, "decision", "approve", "a person's decision as submitted", "case_id who decision state")            \
    X(EV_APPROVED, "approved", "approve", "the case may be executed", "case_id decided_by")                            \
    X(EV_DENIED, "denied", "approve", "the case must not be executed", "case_id decided_by")                           \
    X(EV_EXPIRED, "expired", "approve", "no decision before the deadline", "")                                         \
    X(EV_EXECUTED, "executed", "execute", "the runbook finished", "case_id outcome")                                   \
    X(EV_RUNBOOK, "runbook", "execute", "the plan of a decided case, journaled before its first step",                 \
      "case_id plan_json")                                                                                             \
    X(EV_STEP, "step", "execute", "one runbook step started or finished", "step status")                               \
    X(EV_REVIEW, "review", "execute", "handed to ops review", "case_id why")                                           \
    X(EV_NOTICE, "notice", "approve execute", "an operational notice (a Teams card)", "card")                          \
    X(EV_ACCESS_DENIED, "access_denied", "approve audit", "failed authentication", "")                                 \
    X(EV_DECISION_REFUSED, "decision_refused", "approve", "a decision refused (role, segregation of duties, state)",   \
      "reason")                                                                                                        \
    X(EV_ESCALATED, "escalated", "approve", "a pending approval expired and moved to the next tier", "")               \
    X(EV_CLOSED, "closed", "approve", "a person closed a case in ops review", "case_id who")                           \
    X(EV_AUDIT_VERIFIED, "audit_verified", "audit", "a person ran the chain verification; the body says the outcome",  \
      "")

/* event_type_t - EV_NONE (0) is no type: what an unknown name maps to */
typedef enum {
    EV_NONE = 0,
#define EVENT_TYPE_ENUM(e, name, by, meaning, keys) e,
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
/* event_type_required - the body keys every t must carry (space-separated) */
const char *event_type_required(event_type_t t);

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
