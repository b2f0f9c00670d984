/*++
 * NAME
 *	validate - the gate: source, signature, schema, idempotency, state
 * SYNOPSIS
 *	validate [-c CONFIG] [-i INDEX]	(started by `payguard up`, or systemd: payguard-validate@INDEX.service)
 * DESCRIPTION
 *	Decides whether a webhook receipt is genuine and consistent with the
 *	operator's own systems before anything acts on it. Gates, in order;
 *	the first that fails rejects the receipt:
 *	  source     the client address (the TCP peer; X-Forwarded-For only when
 *	             the peer is in validate/trusted_proxies) must be in
 *	             validate/allow_sources (CIDRs, IPv4 and IPv6);
 *	  signature  Stripe-Signature (t=,v1=) or Standard Webhooks
 *	             (webhook-id/-timestamp/-signature) against every live
 *	             secret (rotation), |now - t| <= validate/tolerance_s,
 *	             constant-time comparison; an Adyen batch
 *	             (/webhooks/adyen) instead item by item (validate/adyen.c):
 *	             each item's additionalData.hmacSignature against every
 *	             live hex HMAC key over its signing string, then its
 *	             schema; a bad item is rejected alone, its reason naming it
 *	             ("notification item 2 of 3: signature_mismatch: ..."), the
 *	             others go on through the gates below (a batch that is not
 *	             one, or over 16 items, is rejected whole: schema_invalid);
 *	  schema     required fields by type, integer minor-unit amounts, ISO
 *	             4217 currencies (Stripe's lower case normalised);
 *	             event types payguard does not handle are recorded and
 *	             closed as "ignored", never an error;
 *	  idempotency  the key of CONTRACT.md §1.4 seen before: a "duplicate"
 *	             on the case timeline, nothing more (a charge.refunded
 *	             listing several refunds keys each "<event id>:<refund id>";
 *	             an Adyen item "<eventCode>:<pspReference>:<success>");
 *	  order      an event older, by the PSP's own time, than one the case
 *	             already applied: "out_of_order" on the timeline, the case
 *	             does not move backwards;
 *	  state      payouts: GET /payouts/{id} (unknown, currency or amount
 *	             mismatch reject) and the ledger's entries; refunds: GET
 *	             /payments/{id} (unknown, currency mismatch, refund plus
 *	             what was already refunded over the payment reject), the
 *	             PSP's refund (unknown, mismatch reject) and the ledger.
 *	FETCHED: a receipt of ingest's POST /fetched/stripe (endpoint
 *	"stripe_fetched": an event `payguard catch-up stripe` read from
 *	Stripe's Events API) was authenticated by that API call and ingest's
 *	token, so it skips the source and signature gates; every other gate is
 *	a Stripe webhook's, its idempotency keys the same (a fetched copy of
 *	an event received by webhook is a duplicate, and the other way round),
 *	and its verdicts say "via":"fetched" (validate/fetched.c). Counted in
 *	payguard_validate_fetched_total.
 *	Each case (one per payout or refund: case key "payout-<id>" or
 *	"refund-<id>") gets every event about it on its timeline.
 *
 *	SWEEP: every validate/sweep_every_s, refund cases still pending after
 *	validate/sweep_age_s are re-read from the PSP; what it now says enters
 *	as a "sweep" event and goes through the same idempotency, order and
 *	state gates as a webhook (once per new PSP status).
 * INPUT
 *	"receipt" events from ingest (raw body, headers, peer address; the
 *	endpoint: stripe, standard or stripe_fetched).
 * OUTPUT
 *	To triage and audit: "validated" with the normalised facts, the state
 *	read (payout or payment, PSP refund, ledger entries), the verdict of
 *	each gate passed and the case's history (receipts, duplicates,
 *	out_of_order, previous_status); "duplicate" and "out_of_order" with the
 *	same facts and history (triage advises on them; nothing acts on them).
 *	Every verdict on a receipt names its body's SHA-256 (body_sha256);
 *	the first verdict of an authenticated receipt that is not a
 *	duplicate (validated, out_of_order or ignored) carries the body
 *	itself as "payload": the trail stores receipts without their bodies,
 *	so this is how it keeps what a PSP really sent, and never a forger's
 *	bytes. A receipt rejected before its sender was proven (source,
 *	signature, endpoint) is also noted to ingest (stage_note), which
 *	charges the sender's budget of rejected requests and bytes.
 *	To audit only: "rejected" {gate, code, reason}, "ignored", "sweep". Counters: payguard_validate_rejections_total
 *	{reason=code}, payguard_validate_{accepted,duplicates,ignored,
 *	out_of_order}_total.
 * CONCURRENCY
 *	The first gates are CPU work. A receipt that needs the state gate waits
 *	(its input unacknowledged) while its reads - payments, PSP and ledger -
 *	go out together; up to validate/max_checks_in_flight receipts at once,
 *	then input stops and back-pressure reaches ingest. Receipts about the
 *	same case or with the same idempotency key keep their arrival order.
 * FAILURE
 *	Bad input is rejected with a precise reason (never as an HTTP status:
 *	no oracle for forgers). A transient failure of a read (5xx, 429,
 *	timeout, refused, and 401/403 which mean our configuration is wrong)
 *	is retried with backoff, then the receipt is held and checked again
 *	(1 s doubling to 30 s): it never becomes a rejection. While an outside
 *	system's circuit breaker is open its reads wait. The state store
 *	(validate/state_db, SQLite) is a projection of this stage's journal as
 *	of a position: committed once a second after a journal sync (store.h),
 *	so a restart replays only what followed, and retention
 *	(validate/retention_s) removes the segments triage and audit
 *	acknowledged at or below it. A store lost while the journal is whole is
 *	rebuilt from it; lost after retention removed segments, validate stops
 *	at start saying so (restore it from its backup). Journal failures exit
 *	(75).
 * SECURITY
 *	Holds the webhook secrets and Adyen HMAC keys (files or environment,
 *	never argv, never logged) and a read-only token for the payments,
 *	ledger and PSP APIs. Under systemd each file may be credential:<name>,
 *	a copy systemd makes for validate's units alone (LoadCredential=;
 *	common/credential.h); without $CREDENTIALS_DIRECTORY it refuses to
 *	start, saying so.
 *	Webhook text is carried as data, never interpreted.
 * CONFIGURATION
 *	validate/allow_sources, trusted_proxies, tolerance_s,
 *	stripe_secrets_file, stripe_secrets_env, standard_secrets_file,
 *	standard_secrets_env, adyen_secrets_file, adyen_secrets_env,
 *	token_file, state_db, retention_s, sweep_every_s, sweep_age_s,
 *	max_checks_in_flight; outside/payments, ledger, psp,
 *	timeout_ms, max_inflight, rate_per_s, breaker_failures,
 *	breaker_cooldown_ms, limits/<system>.
 *--*/
#include <errno.h>
#include <assert.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "credential.h"
#include "fetched.h"
#include "httpc_multi.h"
#include "journal.h"
#include "adyen.h"
#include "log.h"
#include "route.h"
#include "stage.h"
#include "state.h"
#include "store.h"
#include "validate.h"

_Static_assert(STAGE_MAX_DEFERRED == 1024, "validate/max_checks_in_flight's range in config.c's s_bounds is 1..1024");
#define VALIDATE_SWEEP_BATCH 100
#define VALIDATE_MAX_KEYS (2 * WH_MAX_ITEMS)
#define VALIDATE_HOLD_MIN_MS 1000
#define VALIDATE_HOLD_MAX_MS 30000
#define VALIDATE_RELOAD_MS 5000
#define VALIDATE_COMMIT_MS 1000 /* the state store commits this often, after a journal sync (store.h) */
/* ingest records at most 8 KiB of names and values, in at most 64 fields;
 * a repeated field is merged with ", " (2 bytes per repeat) */
#define VALIDATE_HEADER_MAX (8192 + 2 * 64 + 1)

typedef struct {
    stage_t *st;
    netlist_t *allow;
    netlist_t *trusted;
    sigkeys_t *keys[3]; /* SIG_STRIPE, SIG_STANDARD, SIG_ADYEN */
    long tolerance_s;
    outside_t out;
    store_t *store;
    long sweep_every_s, sweep_age_s;
    int64_t last_sweep_ms, last_reload_ms, last_commit_ms;
    uint64_t committed_seq;       /* the store's committed position (retention keeps what follows) */
    int64_t received_ms;          /* the receipt being decided: when ingest recorded it */
    struct vcheck_t *head, *tail; /* receipts in progress, in arrival order */
    size_t nchecks;
    size_t sweep_reads; /* sweep reads in flight */
    json_t *swept;      /* sweep answers to inject, in arrival order */
    bool fetched;       /* the receipt being decided came through /fetched/stripe (fetched.h) */
} validate_t;

/* decision - what one webhook item comes to */
typedef enum { D_ACCEPT, D_REJECT, D_DUPLICATE, D_OUT_OF_ORDER, D_IGNORED } decision_kind_t;

typedef struct {
    decision_kind_t kind;
    char key[2 * WH_ID_MAX + 64];
    char case_id[STORE_CASE_ID_MAX];
    char code[40];
    char reason[512];
    char gate[16]; /* D_REJECT: the gate that rejected it ("": state) */
    state_t state;
    case_row_t prior;     /* the case as it was (out of order) */
    char first_event[80]; /* duplicate: the event that first had the key */
    int64_t count;
} decision_t;

/* evidence - the webhook body behind a receipt's verdicts: every verdict
 * names its SHA-256; the first verdict of an authenticated receipt (not
 * a duplicate, not a rejection) carries the body itself as "payload",
 * which is how the trail keeps what the PSP sent (audit stores a receipt
 * without its body: trail_receipt_view) */
typedef struct {
    const void *raw;
    size_t len;
    char sha[65];
    bool carry; /* the payload is still to be carried */
} evidence_t;

static stage_def_t s_def; /* file-static: s_init sets max_deferred from the configuration */

/* s_mono_ms - monotonic ms for the sweep and reload timers */
static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* s_header - a recorded request header (lower-case name) as a C string */
static const char *s_header(const event_t *in, const char *name, char *buf, size_t buflen)
{
    const char *v;
    size_t len;
    if (event_get_map_str(in, EK_HEADERS, name, &v, &len) != 0 || len >= buflen || memchr(v, '\0', len))
        return NULL;
    memcpy(buf, v, len);
    buf[len] = '\0';
    return buf;
}

/* s_case_id - the case key of an item: the routing rule's (route.h), so
 * every webhook about one object reaches the instance that owns its case */
static void s_case_id(const wh_item_t *item, char out[STORE_CASE_ID_MAX])
{
    static_assert(STORE_CASE_ID_MAX >= ROUTE_KEY_MAX, "a case key fits the store");
    route_case_key(item->kind == WH_PAYOUT ? "payout" : "refund",
                   item->kind == WH_PAYOUT ? item->payout_id : item->refund_id, out);
}

/* s_item_key - an item's idempotency key (CONTRACT.md §1.4); one event
 * that lists several refunds (charge.refunded) states several facts, so
 * each refund's key also names the refund */
static void s_item_key(const wh_item_t *it, size_t nrefunds, char *key, size_t keylen)
{
    idempotency_key(it, key, keylen);
    if (it->kind == WH_REFUND && nrefunds > 1 && it->psp_event_id[0] && strcmp(it->provider, "adyen") != 0) {
        size_t l = strlen(key);
        snprintf(key + l, keylen - l, ":%s", it->refund_id);
    }
}

/* s_sha256_hex - the trigger payload's hash, for the audit trail */
static void s_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(data, len, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* s_reject - a receipt failed a gate: audit it with its reason, count it */
static int s_reject(validate_t *v, const char *case_id, const char *gate, const char *code, const char *reason,
                    const char *provider, const char *client, const void *raw, size_t rawlen)
{
    char sha[65];
    s_sha256_hex(raw, rawlen, sha);
    event_body_t *b = event_body_new();
    event_body_str(b, "gate", gate);
    event_body_str(b, EK_CODE, code);
    event_body_str(b, EK_REASON, reason);
    event_body_str(b, "provider", provider ? provider : "");
    event_body_str(b, "client_ip", client ? client : "");
    event_body_str(b, "body_sha256", sha);
    if (v->fetched)
        event_body_str(b, "via", "fetched");
    if (case_id && *case_id)
        event_body_str(b, EK_CASE_ID, case_id);
    stage_emit(v->st, EV_REJECTED, case_id, b, STAGE_TO_AUDIT);
    event_body_destroy(&b);
    stage_count(v->st, "payguard_validate_rejections_total", "reason", code, 1);
    log_info("rejected a receipt at the %s gate: %s", gate, reason);
    return STAGE_DONE;
}

/* s_reject_unproven - a receipt that failed before its sender was proven
 * (source, signature, endpoint): rejected, and ingest told, so that it
 * charges the TCP peer's budget of rejected requests and bytes
 * (ingest/reject_*: then 429). What an authenticated sender sends wrong
 * (schema, state) is never charged: it is the PSP, and its webhook is
 * recorded whatever it says. */
static int s_reject_unproven(validate_t *v, const event_t *in, const char *gate, const char *code, const char *reason,
                             const char *provider, const char *client, const void *raw, size_t rawlen)
{
    char peer[64];
    event_get_strbuf(in, EK_PEER, peer, sizeof peer);
    if (stage_note(v->st, "rejected", peer, rawlen) != 0)
        stage_count(v->st, "payguard_validate_notes_dropped_total", NULL, NULL, 1);
    return s_reject(v, "", gate, code, reason, provider, client, raw, rawlen);
}

/* s_item_fields - the normalised facts of an item into an event body */
static void s_item_fields(event_body_t *b, const wh_item_t *it)
{
    event_body_str(b, "kind", it->kind == WH_PAYOUT ? "payout" : "refund");
    event_body_str(b, "ref", it->kind == WH_PAYOUT ? it->payout_id : it->refund_id);
    event_body_str(b, "provider", it->provider);
    event_body_str(b, "event_type", it->event_type);
    event_body_str(b, "psp_event_id", it->psp_event_id);
    event_body_int(b, "psp_time", it->psp_time);
    event_body_str(b, EK_STATUS, it->status);
    event_body_int(b, "amount", it->amount);
    event_body_str(b, "currency", it->currency);
    event_body_str(b, "object_id", it->object_id);
    if (it->kind == WH_PAYOUT) {
        event_body_str(b, "payout_id", it->payout_id);
        event_body_str(b, "failure_code", it->failure_code);
        event_body_str(b, "failure_message", it->failure_message);
        event_body_str(b, "raised_by", it->raised_by);
    } else {
        event_body_str(b, "refund_id", it->refund_id);
        event_body_str(b, "payment_id", it->payment_id);
        event_body_str(b, "payment_intent", it->payment_intent);
    }
}

/* s_state_field - a JSON answer as a nested value (or its text if it holds reals) */
static void s_state_field(event_body_t *b, const char *key, json_t *j)
{
    if (!j)
        return;
    if (event_body_json(b, key, j) != 0) {
        char *text = json_dumps(j, JSON_COMPACT);
        event_body_str(b, key, text ? text : "");
        free(text);
    }
}

/* s_row_of - the case row an accepted item makes */
static void s_row_of(const wh_item_t *it, const char *case_id, case_row_t *row)
{
    memset(row, 0, sizeof *row);
    snprintf(row->case_id, sizeof row->case_id, "%s", case_id);
    snprintf(row->kind, sizeof row->kind, "%s", it->kind == WH_PAYOUT ? "payout" : "refund");
    snprintf(row->ref, sizeof row->ref, "%s", it->kind == WH_PAYOUT ? it->payout_id : it->refund_id);
    row->psp_time = it->psp_time;
    snprintf(row->status, sizeof row->status, "%s", it->status);
    row->amount = it->amount;
    snprintf(row->currency, sizeof row->currency, "%s", it->currency);
    snprintf(row->payment_id, sizeof row->payment_id, "%s", it->payment_id);
    row->updated_ms = stage_now_ms();
}

/* s_decide - the idempotency and order gates for one item (no emits):
 * D_IGNORED, D_DUPLICATE or D_OUT_OF_ORDER decide it; D_ACCEPT means "the
 * state gate decides" (s_judge, once its reads are back) */
static void s_decide(validate_t *v, const wh_item_t *it, size_t nrefunds, decision_t *d, const decision_t *earlier,
                     size_t nearlier)
{
    memset(d, 0, sizeof *d);
    if (it->kind == WH_IGNORED) {
        d->kind = D_IGNORED;
        return;
    }
    if (it->kind == WH_REJECTED) { /* one item of a batch, rejected alone (adyen.c) */
        d->kind = D_REJECT;
        snprintf(d->gate, sizeof d->gate, "%s", it->reject_gate);
        snprintf(d->code, sizeof d->code, "%s", it->reject_code);
        snprintf(d->reason, sizeof d->reason, "%s", it->reject_reason);
        return;
    }
    s_item_key(it, nrefunds, d->key, sizeof d->key);
    s_case_id(it, d->case_id);
    for (size_t i = 0; i < nearlier; i++)
        if (earlier[i].kind != D_IGNORED && strcmp(earlier[i].key, d->key) == 0) {
            d->kind = D_DUPLICATE;
            snprintf(d->first_event, sizeof d->first_event, "(this webhook)");
            d->count = 2;
            return;
        }
    char case_id[STORE_CASE_ID_MAX];
    if (store_key_find(v->store, d->key, case_id, d->first_event, &d->count) == 1) {
        d->kind = D_DUPLICATE;
        d->count++;
        return;
    }
    if (store_case_get(v->store, d->case_id, &d->prior) == 1 && d->prior.psp_time > it->psp_time) {
        d->kind = D_OUT_OF_ORDER;
        return;
    }
    d->kind = D_ACCEPT;
}

/* s_history - the case's counts as they will be with this receipt, for
 * triage (stateless: it learns the case's history from the event) */
static void s_history(event_body_t *b, const case_row_t *prior, bool known, char which)
{
    event_body_int(b, "receipts", (known ? prior->receipts : 0) + 1);
    event_body_int(b, "duplicates", (known ? prior->duplicates : 0) + (which == 'd'));
    event_body_int(b, "out_of_order", (known ? prior->out_of_order : 0) + (which == 'o'));
    event_body_str(b, "previous_status", known ? prior->status : "");
}

/* s_evidence - the body's hash on every verdict; the body itself, last,
 * on the first that may carry it, when the event stays within
 * EVENT_MAX_BYTES (else "payload_omitted": the body is in ingest's
 * journal for ingest/retention_s) */
static void s_evidence(event_body_t *b, evidence_t *e, bool may_carry)
{
    event_body_str(b, "body_sha256", e->sha);
    if (!may_carry || !e->carry)
        return;
    e->carry = false;
    if (event_body_size(b) + e->len + 4096 <= EVENT_MAX_BYTES)
        event_body_bin(b, "payload", e->raw, e->len);
    else
        event_body_int(b, "payload_omitted_bytes", (int64_t) e->len);
}

/* s_emit_validated - the fields of an accepted item's "validated" event:
 * the facts, each gate's verdict line, the state read, the case's history
 * (prior NULL: a new case) */
static void s_emit_validated(const validate_t *v, event_body_t *b, const wh_item_t *it, const decision_t *d,
                             const char *client, const char *gates[2], const case_row_t *prior)
{
    event_body_str(b, EK_CASE_ID, d->case_id);
    event_body_str(b, EK_KEY, d->key);
    event_body_str(b, "client_ip", client ? client : "");
    event_body_int(b, "received_ms", v->received_ms); /* for webhook-to-final-state times */
    event_body_str(b, "source_verdict", gates[0]);
    event_body_str(b, "signature_verdict", gates[1]);
    event_body_str(b, "state_verdict", "payments, PSP and ledger read; amounts and currencies match");
    s_item_fields(b, it);
    s_history(b, prior, prior != NULL, 'v');
    s_state_field(b, "payout_state", d->state.payout);
    s_state_field(b, "payment_state", d->state.payment);
    s_state_field(b, "psp_state", d->state.psp_refund);
    s_state_field(b, "ledger_state", d->state.ledger);
}

/* s_emit_decision - journal and send what an item came to; then update the
 * store (after the journal record, so the store never runs ahead of it) */
static void s_emit_decision(validate_t *v, const wh_item_t *it, decision_t *d, const char *client, const char *gates[2],
                            evidence_t *e)
{
    const void *raw = e->raw;
    size_t rawlen = e->len;
    event_body_t *b = event_body_new();
    case_row_t prior;
    if (v->fetched)
        event_body_str(b, "via", "fetched"); /* read from the Events API by payguard catch-up */
    bool known = d->kind != D_IGNORED && d->kind != D_REJECT && store_case_get(v->store, d->case_id, &prior) == 1;
    switch (d->kind) {
    case D_IGNORED:
        event_body_str(b, "event_type", it->event_type);
        event_body_str(b, "psp_event_id", it->psp_event_id);
        event_body_str(b, "provider", it->provider);
        s_evidence(b, e, true);
        stage_emit(v->st, EV_IGNORED, "", b, STAGE_TO_AUDIT);
        stage_count(v->st, "payguard_validate_ignored_total", NULL, NULL, 1);
        break;
    case D_DUPLICATE:
        event_body_str(b, EK_KEY, d->key);
        event_body_str(b, EK_CASE_ID, d->case_id);
        event_body_str(b, "first_event", d->first_event);
        event_body_int(b, "times_seen", d->count);
        s_item_fields(b, it);
        s_history(b, &prior, known, 'd');
        s_evidence(b, e, false);
        if (stage_emit(v->st, EV_DUPLICATE, d->case_id, b, STAGE_TO_BOTH) == 0) {
            store_key_seen_again(v->store, d->key);
            store_case_bump(v->store, d->case_id, 'd');
        }
        stage_count(v->st, "payguard_validate_duplicates_total", NULL, NULL, 1);
        break;
    case D_OUT_OF_ORDER:
        event_body_str(b, EK_KEY, d->key);
        event_body_str(b, EK_CASE_ID, d->case_id);
        event_body_int(b, "applied_psp_time", d->prior.psp_time);
        event_body_str(b, "applied_status", d->prior.status);
        s_item_fields(b, it);
        s_history(b, &prior, known, 'o');
        s_evidence(b, e, true);
        if (stage_emit(v->st, EV_OUT_OF_ORDER, d->case_id, b, STAGE_TO_BOTH) == 0) {
            store_key_add(v->store, d->key, d->case_id, stage_last_emit_id(v->st));
            store_case_bump(v->store, d->case_id, 'o');
        }
        stage_count(v->st, "payguard_validate_out_of_order_total", NULL, NULL, 1);
        break;
    case D_REJECT:
        event_body_destroy(&b);
        s_reject(v, d->case_id, d->gate[0] ? d->gate : "state", d->code, d->reason, it->provider, client, raw, rawlen);
        return;
    case D_ACCEPT:
        s_emit_validated(v, b, it, d, client, gates, known ? &prior : NULL);
        s_evidence(b, e, true);
        if (stage_emit(v->st, EV_VALIDATED, d->case_id, b, STAGE_TO_BOTH) == 0) {
            case_row_t row;
            s_row_of(it, d->case_id, &row);
            store_key_add(v->store, d->key, d->case_id, stage_last_emit_id(v->st));
            store_case_put(v->store, &row);
        }
        stage_count(v->st, "payguard_validate_accepted_total", "kind", it->kind == WH_PAYOUT ? "payout" : "refund", 1);
        break;
    }
    event_body_destroy(&b);
    store_set_applied(v->store, stage_last_emit_seq(v->st));
}

/* s_emit_all - journal what every item came to, in order, one store transaction */
static void s_emit_all(validate_t *v, const wh_item_t *items, size_t n, decision_t *d, const char *client,
                       const char *gates[2], const void *raw, size_t rawlen)
{
    store_begin(v->store); /* committed by s_commit, once the journal is durable */
    /* a sweep's "body" is validate's own read of the PSP: the sweep event has it */
    evidence_t e = {.raw = raw, .len = rawlen, .carry = n > 0 && strcmp(items[0].provider, "sweep") != 0};
    s_sha256_hex(raw, rawlen, e.sha);
    for (size_t i = 0; i < n; i++) {
        s_emit_decision(v, &items[i], &d[i], client, gates, &e);
        state_clear(&d[i].state);
    }
}

/* s_commit - the store's open transaction, once the journal holds every
 * record it reflects durably (store.h, SNAPSHOT CONTRACT); the loop thread
 * only, between inputs */
static void s_commit(validate_t *v)
{
    stage_flush(v->st);
    if (store_commit(v->store) != 0) {
        log_error("state store: commit failed: exiting for the supervisor (the journal replays it)");
        exit(JOURNAL_EXIT_SYNC_FAILED);
    }
    v->committed_seq = store_applied_seq(v->store);
}

/* s_retain_after - the store's committed position: retention keeps what follows */
static uint64_t s_retain_after(stage_t *st, void *arg)
{
    (void) st;
    return ((validate_t *) arg)->committed_seq;
}

/* ---------------------------------------------------------------- checks
 *
 * A receipt whose items need the state gate becomes a check: its input is
 * deferred (unacknowledged: a crash re-delivers it), the reads of every
 * item go out at once, and when the last answer is back the gates are
 * judged and the decisions emitted. Many checks run at once, up to
 * validate/max_checks_in_flight (then the skeleton stops taking input and
 * back-pressure reaches ingest). Receipts about the same case or with the
 * same idempotency key keep their arrival order: a check whose keys meet an
 * earlier check's waits for it, because its idempotency and order gates
 * must see what the earlier one decided. A read that fails transiently
 * (the system down, a 5xx after retries) holds the check and tries again
 * later (1 s, doubling to 30 s): never a rejection.
 */
typedef enum { CK_WAITING, CK_READING, CK_HELD } ck_state_t;

typedef struct vcheck_t {
    struct vcheck_t *prev, *next;
    validate_t *v;
    ck_state_t state;
    stage_pending_t *p;
    wh_item_t *items;
    size_t n;
    decision_t *d;
    state_read_t *reads[WH_MAX_ITEMS];
    size_t reads_out; /* items whose answers are not all back */
    char client[64];
    char gates[2][560];
    const void *raw; /* in p's event: alive while p is */
    size_t rawlen;
    uint64_t keys[VALIDATE_MAX_KEYS]; /* hashes of case ids and idempotency keys */
    size_t nkeys;
    int64_t hold_until;
    long hold_ms;
} vcheck_t;

typedef struct {
    validate_t *v;
    char case_id[STORE_CASE_ID_MAX];
} sweep_ctx_t;

/* s_hash - FNV-1a of a key: equal keys meet; a collision only orders two
 * receipts that need not be */
static uint64_t s_hash(const char *text)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *) text; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

/* s_item_keys - the case ids and idempotency keys a webhook's items touch */
static size_t s_item_keys(const wh_item_t *items, size_t n, uint64_t keys[VALIDATE_MAX_KEYS])
{
    size_t nk = 0, nrefunds = 0;
    for (size_t i = 0; i < n; i++)
        nrefunds += items[i].kind == WH_REFUND;
    for (size_t i = 0; i < n && nk + 2 <= VALIDATE_MAX_KEYS; i++) {
        if (items[i].kind == WH_IGNORED || items[i].kind == WH_REJECTED)
            continue;
        char key[2 * WH_ID_MAX + 64], cid[STORE_CASE_ID_MAX];
        s_item_key(&items[i], nrefunds, key, sizeof key);
        s_case_id(&items[i], cid);
        keys[nk++] = s_hash(key);
        keys[nk++] = s_hash(cid);
    }
    return nk;
}

/* s_conflicts - does a check before upto (NULL: any check) share a key? */
static bool s_conflicts(const validate_t *v, const vcheck_t *upto, const uint64_t *keys, size_t nkeys)
{
    for (const vcheck_t *c = v->head; c && c != upto; c = c->next)
        for (size_t i = 0; i < c->nkeys; i++)
            for (size_t k = 0; k < nkeys; k++)
                if (c->keys[i] == keys[k])
                    return true;
    return false;
}

/* s_check_new - a check at the end of the list, waiting */
static vcheck_t *s_check_new(validate_t *v, const wh_item_t *items, size_t n, const char *client, const char *gates[2],
                             const void *raw, size_t rawlen, const uint64_t *keys, size_t nkeys)
{
    vcheck_t *c = calloc(1, sizeof *c);
    assert(c);
    c->v = v;
    c->items = malloc(n * sizeof *items);
    c->d = calloc(n, sizeof *c->d);
    assert(c->items && c->d);
    memcpy(c->items, items, n * sizeof *items);
    c->n = n;
    snprintf(c->client, sizeof c->client, "%s", client ? client : "");
    snprintf(c->gates[0], sizeof c->gates[0], "%s", gates[0]);
    snprintf(c->gates[1], sizeof c->gates[1], "%s", gates[1]);
    c->raw = raw;
    c->rawlen = rawlen;
    memcpy(c->keys, keys, nkeys * sizeof *keys);
    c->nkeys = nkeys;
    c->prev = v->tail;
    if (v->tail)
        v->tail->next = c;
    else
        v->head = c;
    v->tail = c;
    v->nchecks++;
    return c;
}

/* s_check_free - out of the list, reads abandoned, memory freed */
static void s_check_free(validate_t *v, vcheck_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        v->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        v->tail = c->prev;
    v->nchecks--;
    for (size_t i = 0; i < c->n; i++) {
        state_read_free(&c->reads[i]);
        state_clear(&c->d[i].state);
    }
    free(c->items);
    free(c->d);
    free(c);
}

/* s_check_hold - a read failed transiently: try the whole receipt again later */
static void s_check_hold(validate_t *v, vcheck_t *c, const char *reason)
{
    for (size_t i = 0; i < c->n; i++) {
        state_read_free(&c->reads[i]);
        state_clear(&c->d[i].state);
    }
    c->reads_out = 0;
    c->hold_ms = c->hold_ms ? (c->hold_ms * 2 > VALIDATE_HOLD_MAX_MS ? VALIDATE_HOLD_MAX_MS : c->hold_ms * 2)
                            : VALIDATE_HOLD_MIN_MS;
    c->hold_until = s_mono_ms() + c->hold_ms;
    c->state = CK_HELD;
    log_warn("state check held for %ld ms, the receipt is checked again then: %s", c->hold_ms, reason);
    stage_count(v->st, "payguard_validate_deferred_total", NULL, NULL, 1);
}

/* s_check_done - the check is decided: emit, answer its input, forget it */
static void s_check_done(validate_t *v, vcheck_t *c)
{
    const char *gates[2] = {c->gates[0], c->gates[1]};
    stage_resume(v->st, c->p);
    v->received_ms = event_head(stage_pending_event(c->p))->time_ms;
    v->fetched = fetched_receipt(stage_pending_event(c->p));
    s_emit_all(v, c->items, c->n, c->d, c->client, gates, c->raw, c->rawlen);
    stage_finish(v->st, &c->p);
    s_check_free(v, c);
}

/* s_judge - every answer is back: the state gate of each item */
static void s_judge(validate_t *v, vcheck_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        decision_t *d = &c->d[i];
        if (!c->reads[i])
            continue;
        check_t verdict = state_judge(c->reads[i], &c->items[i], &d->state, d->code, d->reason, sizeof d->reason);
        state_read_free(&c->reads[i]);
        if (verdict == CHECK_TRANSIENT) {
            s_check_hold(v, c, d->reason);
            return;
        }
        d->kind = verdict == CHECK_OK ? D_ACCEPT : D_REJECT;
    }
    s_check_done(v, c);
}

static void s_checks_kick(validate_t *v);

/* s_on_reads - one item's answers are all back (the engine's callback) */
static void s_on_reads(void *user)
{
    vcheck_t *c = user;
    validate_t *v = c->v;
    if (--c->reads_out > 0)
        return;
    s_judge(v, c);
    s_checks_kick(v); /* checks waiting behind it may go now */
}

/* s_check_read - the reads of every item the state gate decides */
static void s_check_read(validate_t *v, vcheck_t *c)
{
    c->state = CK_READING;
    c->reads_out = 1; /* held until every read is started */
    for (size_t i = 0; i < c->n; i++) {
        if (c->d[i].kind != D_ACCEPT)
            continue;
        char reason[512];
        c->reads[i] = state_read_start(&v->out, &c->items[i], s_on_reads, c, reason, sizeof reason);
        if (!c->reads[i]) {
            c->reads_out = 0;
            s_check_hold(v, c, reason);
            return;
        }
        c->reads_out++;
    }
    if (--c->reads_out == 0) /* the guard above: nothing needed reading */
        s_judge(v, c);
}

/* s_check_advance - a waiting check starts when nothing earlier shares its
 * keys: the idempotency and order gates now, then the reads */
static void s_check_advance(validate_t *v, vcheck_t *c)
{
    if (c->state != CK_WAITING || s_conflicts(v, c, c->keys, c->nkeys))
        return;
    size_t nrefunds = 0;
    for (size_t i = 0; i < c->n; i++)
        nrefunds += c->items[i].kind == WH_REFUND;
    for (size_t i = 0; i < c->n; i++)
        s_decide(v, &c->items[i], nrefunds, &c->d[i], c->d, i);
    s_check_read(v, c);
}

/* s_checks_kick - start every waiting check that may go now, in order */
static void s_checks_kick(validate_t *v)
{
    for (vcheck_t *c = v->head, *next; c; c = next) {
        next = c->next;
        if (c->state == CK_WAITING)
            s_check_advance(v, c);
    }
}

/* s_checks_tick - held checks whose time has come wait again for their turn */
static void s_checks_tick(validate_t *v)
{
    int64_t now = s_mono_ms();
    bool any = false;
    for (vcheck_t *c = v->head; c; c = c->next)
        if (c->state == CK_HELD && c->hold_until <= now) {
            c->state = CK_WAITING;
            any = true;
        }
    if (any)
        s_checks_kick(v);
    stage_gauge(v->st, "payguard_validate_checks_in_flight", (int64_t) v->nchecks);
}

/* s_run_items - decide a webhook's items: at once when no state read is
 * needed and nothing earlier about the same case or key is in progress;
 * otherwise as a check (checks.c's order: reads in flight, then emit) */
static int s_run_items(validate_t *v, const wh_item_t *items, size_t n, const char *client, const char *gates[2],
                       const void *raw, size_t rawlen)
{
    uint64_t keys[VALIDATE_MAX_KEYS];
    size_t nkeys = s_item_keys(items, n, keys);
    vcheck_t *c = s_check_new(v, items, n, client, gates, raw, rawlen, keys, nkeys);
    if (s_conflicts(v, c, keys, nkeys)) { /* after an earlier receipt about the same case or key */
        c->p = stage_defer(v->st);
        return STAGE_DEFERRED;
    }
    size_t nrefunds = 0, reads = 0;
    for (size_t i = 0; i < n; i++)
        nrefunds += items[i].kind == WH_REFUND;
    for (size_t i = 0; i < n; i++) {
        s_decide(v, &items[i], nrefunds, &c->d[i], c->d, i);
        reads += c->d[i].kind == D_ACCEPT;
    }
    if (!reads) { /* ignored, duplicates, out of order: nothing to read, decided now */
        s_emit_all(v, items, n, c->d, client, gates, raw, rawlen);
        s_check_free(v, c);
        return STAGE_DONE;
    }
    c->p = stage_defer(v->st);
    s_check_read(v, c);
    return STAGE_DEFERRED;
}

/* s_handle_adyen - an Adyen batch past the source gate: each item's
 * signature and schema are judged alone (adyen.c), a bad item is rejected
 * naming it, the others go on like any webhook's items. A batch that is not
 * one, or whose items none is authentic, is charged to the sender's
 * budget as an unproven sender's. */
static int s_handle_adyen(validate_t *v, const event_t *in, const char *client, const char *source_verdict,
                          const void *raw, size_t rawlen)
{
    wh_item_t *items = calloc(ADYEN_MAX_ITEMS, sizeof *items); /* 16 items of ~1.5 KB: not on the stack */
    assert(items);
    size_t n = 0, authentic = 0;
    char reason[512], signature_verdict[160];
    if (adyen_parse(v->keys[SIG_ADYEN], raw, rawlen, (int64_t) time(NULL), items, ADYEN_MAX_ITEMS, &n, &authentic,
                    reason, sizeof reason) != 0) {
        free(items);
        return s_reject_unproven(v, in, "schema", "schema_invalid", reason, "adyen", client, raw, rawlen);
    }
    assert(n >= 1 && n <= ADYEN_MAX_ITEMS);
    if (authentic == 0) { /* nobody proven: the source's budget pays, as for a bad Stripe signature */
        char peer[64];
        event_get_strbuf(in, EK_PEER, peer, sizeof peer);
        if (stage_note(v->st, "rejected", peer, rawlen) != 0)
            stage_count(v->st, "payguard_validate_notes_dropped_total", NULL, NULL, 1);
    }
    snprintf(signature_verdict, sizeof signature_verdict,
             "adyen signature: each notification item's hmacSignature checked alone: %zu of %zu authentic", authentic,
             n);
    const char *gates[2] = {source_verdict, signature_verdict};
    int rc = s_run_items(v, items, n, client, gates, raw, rawlen);
    free(items);
    return rc;
}

/* s_handle_fetched - a Stripe event payguard catch-up read from the Events
 * API (fetched.h): no source or signature gate, the others as a webhook's */
static int s_handle_fetched(validate_t *v, const char *peer, const void *raw, size_t rawlen)
{
    wh_item_t items[WH_MAX_ITEMS];
    size_t n = 0;
    char reason[512];
    v->fetched = true;
    stage_count(v->st, "payguard_validate_fetched_total", NULL, NULL, 1);
    if (schema_parse(FETCHED_PROVIDER, raw, rawlen, NULL, items, WH_MAX_ITEMS, &n, reason, sizeof reason) != 0)
        return s_reject(v, "", "schema", "schema_invalid", reason, FETCHED_PROVIDER, peer, raw, rawlen);
    const char *gates[2] = {FETCHED_SOURCE_VERDICT, FETCHED_SIGNATURE_VERDICT};
    return s_run_items(v, items, n, peer, gates, raw, rawlen);
}

/* s_handle_receipt - the gates for one webhook as received */
static int s_handle_receipt(validate_t *v, const event_t *in)
{
    char provider[16] = "", peer[64] = "", client[64] = "";
    const void *raw = "";
    size_t rawlen = 0;
    event_get_strbuf(in, EK_ENDPOINT, provider, sizeof provider);
    event_get_strbuf(in, EK_PEER, peer, sizeof peer);
    event_get_bin(in, EK_BODY, &raw, &rawlen);
    if (fetched_receipt(in))
        return s_handle_fetched(v, peer, raw, rawlen);
    if (strcmp(provider, "stripe") != 0 && strcmp(provider, "standard") != 0 && strcmp(provider, "adyen") != 0)
        return s_reject_unproven(v, in, "schema", "unknown_endpoint", "receipt names no known webhook endpoint",
                                 provider, peer, raw, rawlen);

    /* source */
    char xff_buf[VALIDATE_HEADER_MAX], reason[512], source_verdict[560];
    const char *xff = s_header(in, "x-forwarded-for", xff_buf, sizeof xff_buf);
    bool spoofed = false;
    if (source_client_ip(v->trusted, peer, xff, client, &spoofed, reason, sizeof reason) != 0)
        return s_reject_unproven(v, in, "source", "bad_forwarded_for", reason, provider, peer, raw, rawlen);
    if (!netlist_contains(v->allow, client)) {
        snprintf(reason, sizeof reason, "source address %s is not in validate/allow_sources%s", client,
                 spoofed ? " (an X-Forwarded-For from this untrusted peer was ignored)" : "");
        return s_reject_unproven(v, in, "source", "source_not_allowed", reason, provider, client, raw, rawlen);
    }
    snprintf(source_verdict, sizeof source_verdict, "%s; in validate/allow_sources", reason);
    if (strcmp(provider, "adyen") == 0) /* signed item by item, inside the body */
        return s_handle_adyen(v, in, client, source_verdict, raw, rawlen);

    /* signature */
    int64_t now = (int64_t) time(NULL);
    sig_verdict_t sv;
    char h1[VALIDATE_HEADER_MAX], h2[VALIDATE_HEADER_MAX], h3[VALIDATE_HEADER_MAX];
    const char *webhook_id = NULL;
    if (strcmp(provider, "stripe") == 0) {
        sv = sig_verify_stripe(v->keys[SIG_STRIPE], s_header(in, "stripe-signature", h1, sizeof h1), raw, rawlen, now,
                               v->tolerance_s, reason, sizeof reason);
    } else {
        webhook_id = s_header(in, "webhook-id", h1, sizeof h1);
        sv = sig_verify_standard(v->keys[SIG_STANDARD], webhook_id, s_header(in, "webhook-timestamp", h2, sizeof h2),
                                 s_header(in, "webhook-signature", h3, sizeof h3), raw, rawlen, now, v->tolerance_s,
                                 reason, sizeof reason);
    }
    if (sv != SIG_OK) {
        char code[40];
        snprintf(code, sizeof code, "signature_%s", sig_verdict_name(sv));
        return s_reject_unproven(v, in, "signature", code, reason, provider, client, raw, rawlen);
    }

    /* schema */
    wh_item_t items[WH_MAX_ITEMS];
    size_t n = 0;
    char signature_verdict[512];
    snprintf(signature_verdict, sizeof signature_verdict, "%s", reason);
    if (schema_parse(provider, raw, rawlen, webhook_id, items, WH_MAX_ITEMS, &n, reason, sizeof reason) != 0)
        return s_reject(v, "", "schema", "schema_invalid", reason, provider, client, raw, rawlen);
    const char *gates[2] = {source_verdict, signature_verdict};
    return s_run_items(v, items, n, client, gates, raw, rawlen);
}

/* s_item_from_psp_refund - a sweep's PSP answer as a webhook item */
static int s_item_from_psp_refund(const json_t *r, wh_item_t *it, char *reason, size_t reasonlen)
{
    memset(it, 0, sizeof *it);
    it->kind = WH_REFUND;
    snprintf(it->provider, sizeof it->provider, "sweep");
    snprintf(it->event_type, sizeof it->event_type, "sweep");
    it->psp_time = (int64_t) time(NULL);
    json_t *id = json_object_get(r, "id"), *amount = json_object_get(r, "amount");
    json_t *cur = json_object_get(r, "currency"), *status = json_object_get(r, "status");
    json_t *md = json_object_get(r, "metadata");
    json_t *pay = json_object_get(md, "payment_id"), *pi = json_object_get(r, "payment_intent");
    if (!json_is_string(id) || !json_is_integer(amount) || !json_is_string(cur) || !json_is_string(status) ||
        strlen(json_string_value(cur)) != 3) {
        snprintf(reason, reasonlen, "PSP refund object lacks id, amount, currency or status");
        return -1;
    }
    snprintf(it->refund_id, sizeof it->refund_id, "%s", json_string_value(id));
    snprintf(it->object_id, sizeof it->object_id, "%s", json_string_value(id));
    snprintf(it->status, sizeof it->status, "%s", json_string_value(status));
    it->amount = (int64_t) json_integer_value(amount);
    for (int i = 0; i < 3; i++)
        it->currency[i] = (char) ((json_string_value(cur)[i] >= 'a' && json_string_value(cur)[i] <= 'z')
                                      ? json_string_value(cur)[i] - 32
                                      : json_string_value(cur)[i]);
    if (json_is_string(pi))
        snprintf(it->payment_intent, sizeof it->payment_intent, "%s", json_string_value(pi));
    snprintf(it->payment_id, sizeof it->payment_id, "%s",
             json_is_string(pay) ? json_string_value(pay) : it->payment_intent);
    return 0;
}

/* s_handle_sweep - a refund re-read from the PSP enters like a webhook */
static int s_handle_sweep(validate_t *v, const event_t *in)
{
    const char *text;
    size_t len;
    char reason[512];
    if (event_get_str(in, "psp_refund_json", &text, &len) != 0)
        return s_reject(v, event_head(in)->case_key, "schema", "schema_invalid", "sweep event without the PSP refund",
                        "sweep", "", "", 0);
    json_error_t je;
    json_t *r = json_loadb(text, len, 0, &je);
    wh_item_t it;
    const char *gates[2] = {"sweep: read by validate from outside/psp", "sweep: no webhook, nothing to verify"};
    int rc = (r && s_item_from_psp_refund(r, &it, reason, sizeof reason) == 0)
                 ? s_run_items(v, &it, 1, "", gates, text, len)
                 : s_reject(v, event_head(in)->case_key, "schema", "schema_invalid",
                            r ? reason : "PSP refund is not JSON", "sweep", "", text, len);
    json_decref(r);
    return rc;
}

/* s_handle - the stage's dispatch: one switch on the input's type */
static int s_handle(stage_t *st, const event_t *in, void *arg)
{
    (void) st;
    validate_t *v = arg;
    v->received_ms = event_head(in)->time_ms;
    v->fetched = false;
    switch (event_head(in)->kind) {
    case EV_RECEIPT:
        return s_handle_receipt(v, in);
    case EV_SWEEP:
        return s_handle_sweep(v, in);
    case EV_VALIDATED:
    case EV_REJECTED:
    case EV_DUPLICATE:
    case EV_IGNORED:
    case EV_OUT_OF_ORDER:
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
        break;
    }
    log_warn("ignoring a %s event from %s: validate takes receipts", event_head(in)->type, event_head(in)->stage);
    return STAGE_DONE;
}

/* s_on_swept - a sweep read is back: news are kept for the tick to inject */
static void s_on_swept(void *user, json_t *r, const char *reason)
{
    sweep_ctx_t *sc = user;
    validate_t *v = sc->v;
    v->sweep_reads--;
    if (!r) {
        log_warn("sweep of %s: %s", sc->case_id, reason);
        free(sc);
        return;
    }
    wh_item_t it;
    char key[2 * WH_ID_MAX + 64], cid[STORE_CASE_ID_MAX], first[80], why[512];
    if (s_item_from_psp_refund(r, &it, why, sizeof why) == 0) {
        idempotency_key(&it, key, sizeof key);
        if (store_key_find(v->store, key, cid, first, NULL) != 1) /* only news enters */
            json_array_append_new(v->swept, json_pack("{s:s, s:O}", "case_id", sc->case_id, "refund", r));
    }
    json_decref(r);
    free(sc);
}

/* s_sweep - refunds pending too long: ask the PSP again (CONTRACT.md §5.4);
 * the reads go out together, the answers enter as they come back */
static void s_sweep(validate_t *v)
{
    case_row_t rows[VALIDATE_SWEEP_BATCH];
    size_t n = store_pending_refunds(v->store, stage_now_ms() - v->sweep_age_s * 1000, rows, VALIDATE_SWEEP_BATCH);
    for (size_t i = 0; i < n; i++) {
        sweep_ctx_t *sc = calloc(1, sizeof *sc);
        assert(sc);
        sc->v = v;
        memcpy(sc->case_id, rows[i].case_id, sizeof sc->case_id); /* same size, NUL-terminated */
        sc->case_id[sizeof sc->case_id - 1] = '\0';
        if (state_psp_refund_start(&v->out, rows[i].ref, s_on_swept, sc) == 0)
            v->sweep_reads++;
        else
            free(sc);
    }
}

/* s_inject_swept - what the sweep found enters like a webhook */
static void s_inject_swept(validate_t *v)
{
    size_t i;
    json_t *e;
    json_array_foreach(v->swept, i, e)
    {
        const char *cid = json_string_value(json_object_get(e, "case_id"));
        char *text = json_dumps(json_object_get(e, "refund"), JSON_COMPACT);
        event_body_t *b = event_body_new();
        event_body_str(b, EK_CASE_ID, cid);
        event_body_str(b, "psp_refund_json", text);
        stage_inject(v->st, "sweep", EV_SWEEP, cid, b);
        event_body_destroy(&b);
        free(text);
        stage_count(v->st, "payguard_validate_sweep_events_total", NULL, NULL, 1);
    }
    json_array_clear(v->swept);
}

/* s_tick - rotation without restart, and the sweep */
static void s_tick(stage_t *st, void *arg)
{
    (void) st;
    validate_t *v = arg;
    int64_t now = s_mono_ms();
    if (now - v->last_reload_ms >= VALIDATE_RELOAD_MS) {
        v->last_reload_ms = now;
        static const char *const names[3] = {"stripe", "standard", "adyen"};
        for (int i = 0; i < 3; i++) {
            char err[256];
            int rc = sigkeys_reload(v->keys[i], err, sizeof err);
            if (rc == 1)
                log_info("%s webhook secrets reloaded: %zu live", names[i],
                         sigkeys_live(v->keys[i], (int64_t) time(NULL)));
            else if (rc < 0)
                log_error("keeping the old secrets: %s", err);
        }
    }
    if (now - v->last_sweep_ms >= v->sweep_every_s * 1000 && !v->sweep_reads) {
        v->last_sweep_ms = now;
        s_sweep(v);
    }
    s_inject_swept(v);
    s_checks_tick(v);
    if (now - v->last_commit_ms >= VALIDATE_COMMIT_MS) {
        v->last_commit_ms = now;
        s_commit(v);
    }
}

/* s_rebuild - bring the store up to the journal (or rebuild it from scratch) */
static int s_rebuild(validate_t *v)
{
    uint64_t applied = store_applied_seq(v->store), last = stage_journal_last_seq(v->st);
    if (applied > last) {
        log_warn("state store is ahead of the journal (%llu > %llu): rebuilding it from the journal",
                 (unsigned long long) applied, (unsigned long long) last);
        store_wipe(v->store);
        applied = 0;
    }
    if (applied == 0 && last > 0 && stage_journal_trimmed(v->st)) {
        log_error("the state store is new or was reset, and validate's journal no longer holds its first records "
                  "(validate/retention_s removed them): the idempotency keys they held cannot be rebuilt. Restore "
                  "validate/state_db from its backup");
        return -1;
    }
    v->committed_seq = applied;
    if (applied == last)
        return 0;
    char err[512];
    journal_reader_t *r = journal_reader_new(stage_journal_dir(v->st), applied + 1, err, sizeof err);
    if (!r) {
        log_error("state rebuild: %s", err);
        return -1;
    }
    uint64_t replayed = 0;
    store_begin(v->store);
    event_t *ev;
    while ((ev = stage_read_event(r, NULL, NULL)) != NULL) {
        event_type_t type = event_head(ev)->kind;
        char *key = event_get_strdup(ev, EK_KEY), *case_id = event_get_strdup(ev, EK_CASE_ID);
        if (key && case_id && (type == EV_VALIDATED || type == EV_OUT_OF_ORDER)) {
            store_key_add(v->store, key, case_id, event_head(ev)->id);
            if (type == EV_OUT_OF_ORDER)
                store_case_bump(v->store, case_id, 'o');
            if (type == EV_VALIDATED) {
                case_row_t row = {0};
                char *kind = event_get_strdup(ev, "kind"), *ref = event_get_strdup(ev, "ref");
                char *status = event_get_strdup(ev, EK_STATUS), *cur = event_get_strdup(ev, "currency");
                char *pay = event_get_strdup(ev, "payment_id");
                snprintf(row.case_id, sizeof row.case_id, "%s", case_id);
                snprintf(row.kind, sizeof row.kind, "%s", kind ? kind : "");
                snprintf(row.ref, sizeof row.ref, "%s", ref ? ref : "");
                snprintf(row.status, sizeof row.status, "%s", status ? status : "");
                snprintf(row.currency, sizeof row.currency, "%s", cur ? cur : "");
                snprintf(row.payment_id, sizeof row.payment_id, "%s", pay ? pay : "");
                event_get_int(ev, "psp_time", &row.psp_time);
                event_get_int(ev, "amount", &row.amount);
                row.updated_ms = event_head(ev)->time_ms;
                store_case_put(v->store, &row);
                free(kind), free(ref), free(status), free(cur), free(pay);
            }
            replayed++;
        } else if (key && case_id && type == EV_DUPLICATE) {
            store_key_seen_again(v->store, key);
            store_case_bump(v->store, case_id, 'd');
        }
        free(key);
        free(case_id);
        event_destroy(&ev);
    }
    store_set_applied(v->store, last);
    store_commit(v->store);
    v->committed_seq = last;
    journal_reader_destroy(&r);
    log_info("state store brought up to journal seq %llu (%llu decisions replayed)", (unsigned long long) last,
             (unsigned long long) replayed);
    return 0;
}

/* s_secrets - one provider's secret set from its file and/or variable */
static sigkeys_t *s_secrets(const config_t *c, sig_scheme_t scheme, const char *name)
{
    char kf[64], ke[64], err[512];
    snprintf(kf, sizeof kf, "validate/%s_secrets_file", name);
    snprintf(ke, sizeof ke, "validate/%s_secrets_env", name);
    const char *file = config_get(c, kf);
    char path[PATH_MAX];
    if (file && *file) { /* "credential:<name>": the unit's copy (credential.h); outside systemd, refused */
        if (credential_path(file, path, sizeof path, err, sizeof err) != 0) {
            log_error("%s: %s", kf, err);
            return NULL;
        }
        file = path;
    }
    if (file && *file && access(file, R_OK) != 0) {
        log_warn("%s = %s: %s; using the environment only", kf, file, strerror(errno));
        file = NULL;
    }
    sigkeys_t *k = sigkeys_load(scheme, file && *file ? file : NULL, config_get(c, ke), err, sizeof err);
    if (!k)
        log_error("%s webhook secrets: %s", name, err);
    else if (!sigkeys_live(k, (int64_t) time(NULL)))
        log_warn("no live %s webhook secret: every %s webhook will be rejected (fail closed)", name, name);
    return k;
}

/* s_outside - a client for one outside system */
static httpc_t *s_outside(const config_t *c, const char *name, const char *token, long timeout_ms)
{
    char key[64];
    snprintf(key, sizeof key, "outside/%s", name);
    const char *url = config_get(c, key);
    if (!url || !*url) {
        log_error("config: %s is empty: validate reads that system", key);
        return NULL;
    }
    return httpc_new(url, token, timeout_ms);
}

/* s_init - configuration, secrets, clients, state */
static int s_init(stage_t *st, void *arg)
{
    stage_count(st, "payguard_validate_duplicates_total", NULL, NULL, 0);   /* exported from the start, at 0 */
    stage_count(st, "payguard_validate_out_of_order_total", NULL, NULL, 0); /* exported from the start, at 0 */
    validate_t *v = arg;
    v->st = st;
    const config_t *c = stage_config(st);
    char err[512];
    long timeout_ms;
    if (config_bounded(c, "validate/tolerance_s", &v->tolerance_s, err, sizeof err) ||
        config_bounded(c, "validate/sweep_every_s", &v->sweep_every_s, err, sizeof err) ||
        config_bounded(c, "validate/sweep_age_s", &v->sweep_age_s, err, sizeof err) ||
        config_bounded(c, "outside/timeout_ms", &timeout_ms, err, sizeof err)) {
        log_error("%s", err);
        return -1;
    }
    if (!(v->allow = netlist_parse(config_get(c, "validate/allow_sources"), err, sizeof err)) ||
        !(v->trusted = netlist_parse(config_get(c, "validate/trusted_proxies"), err, sizeof err))) {
        log_error("config: validate/allow_sources or trusted_proxies: %s", err);
        return -1;
    }
    if (!(v->keys[SIG_STRIPE] = s_secrets(c, SIG_STRIPE, "stripe")) ||
        !(v->keys[SIG_STANDARD] = s_secrets(c, SIG_STANDARD, "standard")) ||
        !(v->keys[SIG_ADYEN] = s_secrets(c, SIG_ADYEN, "adyen")))
        return -1;
    char *token = NULL;
    const char *tf = config_get(c, "validate/token_file");
    if (tf && *tf && !(token = httpc_read_token(tf, err, sizeof err))) {
        log_error("validate/token_file: %s", err);
        return -1;
    }
    v->out.payments = s_outside(c, "payments", token, timeout_ms);
    v->out.ledger = s_outside(c, "ledger", token, timeout_ms);
    v->out.psp = s_outside(c, "psp", token, timeout_ms);
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    if (!v->out.payments || !v->out.ledger || !v->out.psp)
        return -1;
    long max_checks;
    v->out.http = stage_http(st);
    if (!v->out.http || (v->out.sys_payments = stage_http_system(st, "payments", err, sizeof err)) < 0 ||
        (v->out.sys_ledger = stage_http_system(st, "ledger", err, sizeof err)) < 0 ||
        (v->out.sys_psp = stage_http_system(st, "psp", err, sizeof err)) < 0 ||
        config_bounded(c, "validate/max_checks_in_flight", &max_checks, err, sizeof err)) {
        log_error("%s", v->out.http ? err : "cannot start the outside-call engine");
        return -1;
    }
    s_def.max_deferred = (unsigned) max_checks; /* then input waits: back-pressure */
    v->swept = json_array();
    v->out.retry = (httpc_retry_t){.max_attempts = 3, .base_delay_ms = 100, .max_delay_ms = 1000};
    char *db = config_expand(c, config_get(c, "validate/state_db"), "validate", stage_index(st));
    v->store = store_open(db, err, sizeof err);
    free(db);
    if (!v->store) {
        log_error("%s", err);
        return -1;
    }
    v->last_sweep_ms = s_mono_ms();
    v->last_reload_ms = s_mono_ms();
    return s_rebuild(v);
}

/* s_fini - release everything */
static void s_fini(stage_t *st, void *arg)
{
    (void) st;
    validate_t *v = arg;
    while (v->head) /* checks not finished: their inputs come again after a restart */
        s_check_free(v, v->head);
    if (v->store)
        s_commit(v); /* a restart then replays nothing */
    json_decref(v->swept);
    store_close(&v->store);
    httpc_destroy(&v->out.payments);
    httpc_destroy(&v->out.ledger);
    httpc_destroy(&v->out.psp);
    sigkeys_destroy(&v->keys[0]);
    sigkeys_destroy(&v->keys[1]);
    sigkeys_destroy(&v->keys[2]);
    netlist_destroy(&v->allow);
    netlist_destroy(&v->trusted);
}

int main(int argc, char **argv)
{
    static validate_t v;
    s_def = (stage_def_t){.name = "validate",
                          .init = s_init,
                          .handle = s_handle,
                          .tick = s_tick,
                          .fini = s_fini,
                          .arg = &v,
                          .retire_journal = true,
                          .retain_after = s_retain_after};
    return stage_main(argc, argv, &s_def);
}
