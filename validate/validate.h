/* validate.h - the gates of the validate stage, shared by its modules.
 *
 *   signature.c  Stripe and Standard Webhooks signatures, secret rotation
 *   source.c     source-address allowlist (CIDR, IPv4/IPv6), trusted proxies
 *   schema.c     webhook JSON -> normalized items, strict, with reasons
 *   adyen.c      Adyen notification batches: signing string, items one by one (adyen.h)
 *   main.c       the stage: gates in order, idempotency, cases, state checks
 *
 * Every function that judges input returns a verdict and writes a precise,
 * one-line reason (no secrets, no raw body) that goes to the audit trail.
 */
#ifndef PG_VALIDATE_H
#define PG_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ signatures */

#define SIG_MAX_SECRETS 16
#define SIG_MAX_SECRET_BYTES 256

typedef enum {
    SIG_OK = 0,
    SIG_MISSING,   /* no signature header (or webhook-id / -timestamp) */
    SIG_MALFORMED, /* header present but unparseable */
    SIG_STALE,     /* timestamp older than the tolerance */
    SIG_FUTURE,    /* timestamp further ahead than the tolerance */
    SIG_MISMATCH,  /* no v1 matched any live secret */
    SIG_NO_SECRETS /* nothing configured: every webhook fails closed */
} sig_verdict_t;

typedef enum { SIG_STRIPE, SIG_STANDARD, SIG_ADYEN } sig_scheme_t;

typedef struct sigkeys_t sigkeys_t;

/* sigkeys_load - the live secrets of one provider. From file (one secret a
 * line, optional " expires=<unix seconds>" after it, '#' comments) and/or
 * from the environment variable env_name (secrets separated by whitespace
 * or commas; no expiry). Either source may be NULL/empty/absent; having no
 * secret at all is allowed (every signature then fails closed with
 * SIG_NO_SECRETS). Standard Webhooks secrets are "whsec_<base64 key>" and
 * Adyen HMAC keys are hex (an even number of digits, at most 512): both
 * are decoded here (a bad one is an error). NULL + err on error; err never
 * contains a secret. */
sigkeys_t *sigkeys_load(sig_scheme_t scheme, const char *file, const char *env_name, char *err, size_t errlen);
void sigkeys_destroy(sigkeys_t **self_p);
/* sigkeys_reload - re-read the file if its mtime changed: rotation without
 * restart. 1 reloaded, 0 unchanged, -1 error (old secrets kept, err set) */
int sigkeys_reload(sigkeys_t *self, char *err, size_t errlen);
/* sigkeys_live - secrets not expired at now */
size_t sigkeys_live(const sigkeys_t *self, int64_t now);

/* sig_verify_stripe - header "t=<unix>,v1=<hex>[,v1=<hex>...]" (other
 * schemes like v0 ignored); HMAC-SHA256(secret, "<t>.<body>"); any v1
 * against any live secret passes; |now - t| <= tolerance_s; constant time. */
sig_verdict_t sig_verify_stripe(const sigkeys_t *keys, const char *header, const void *body, size_t len, int64_t now,
                                int64_t tolerance_s, char *reason, size_t reasonlen);

/* sig_verify_standard - Standard Webhooks 1.0: webhook-id, webhook-timestamp,
 * webhook-signature "v1,<base64>[ v1,<base64>...]" (space separated);
 * base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>")). */
sig_verdict_t sig_verify_standard(const sigkeys_t *keys, const char *id, const char *timestamp, const char *sig_header,
                                  const void *body, size_t len, int64_t now, int64_t tolerance_s, char *reason,
                                  size_t reasonlen);

/* sig_verify_adyen - one Adyen notification item: hmac_b64 (its
 * additionalData.hmacSignature, NULL if absent) must be base64 of
 * HMAC-SHA256(key, signing) for some live key; signing is the item's
 * signing string (adyen.h). No timestamp: Adyen signs none. */
sig_verdict_t sig_verify_adyen(const sigkeys_t *keys, const char *signing, size_t len, const char *hmac_b64,
                               int64_t now, char *reason, size_t reasonlen);

/* sig_verdict_name - "ok", "missing", "malformed", "stale", "future", "mismatch", "no_secrets" */
const char *sig_verdict_name(sig_verdict_t v);

/* signing, for tests, the demo and load tools */
void sig_sign_stripe(const char *secret, int64_t t, const void *body, size_t len, char out_hex[65]);
/* sig_sign_standard - secret is "whsec_<base64>"; -1 if it is not */
int sig_sign_standard(const char *secret, const char *id, const char *timestamp, const void *body, size_t len,
                      char out_b64[64]);
/* sig_sign_adyen - hex_key is an Adyen HMAC key (hex); -1 if it is not */
int sig_sign_adyen(const char *hex_key, const char *signing, size_t len, char out_b64[64]);

/* ----------------------------------------------------------- source IPs */

typedef struct netlist_t netlist_t;

/* netlist_parse - CIDRs or bare addresses (IPv4 /0-32, IPv6 /0-128),
 * separated by whitespace or commas; "" is an empty list. NULL + err naming
 * the bad entry. */
netlist_t *netlist_parse(const char *spec, char *err, size_t errlen);
void netlist_destroy(netlist_t **self_p);
bool netlist_contains(const netlist_t *self, const char *ip);
size_t netlist_size(const netlist_t *self);

/* source_client_ip - the address to judge. If peer is not a trusted proxy,
 * the peer itself (an X-Forwarded-For from it is ignored: *spoofed = true
 * when one was present). If it is, walk X-Forwarded-For from the right,
 * skipping trusted proxies; the first untrusted address is the client.
 * -1 with a reason if a believed X-Forwarded-For entry is not an address. */
int source_client_ip(const netlist_t *trusted, const char *peer, const char *xff, char out[64], bool *spoofed,
                     char *reason, size_t reasonlen);

/* --------------------------------------------------------------- schema */

#define WH_ID_MAX 128
#define WH_TEXT_MAX 512
#define WH_MAX_ITEMS 16

/* WH_REJECTED: one item of a batch (Adyen) that failed its own signature
 * or schema check; the batch's other items go on (reject_* say why) */
typedef enum { WH_PAYOUT = 1, WH_REFUND, WH_IGNORED, WH_REJECTED } wh_kind_t;

/* wh_item_t - one payout or refund fact a webhook states */
typedef struct {
    wh_kind_t kind;
    char provider[16];            /* "stripe" | "standard" | "adyen" */
    char event_type[64];          /* as sent, e.g. "payout.failed" */
    char psp_event_id[WH_ID_MAX]; /* Stripe event id / webhook-id ("" if none) */
    int64_t psp_time;             /* the PSP's own event time, unix seconds */
    char status[32];              /* payout: failed|canceled|settlement_failed|reversed;
                                     refund: succeeded|failed|pending|canceled|requires_action */
    char object_id[WH_ID_MAX];    /* PSP object id (po_..., re_..., rf_...) */
    char payout_id[WH_ID_MAX];    /* internal payout id (metadata.payout_id, else object id) */
    char refund_id[WH_ID_MAX];    /* refund id */
    char payment_id[WH_ID_MAX];   /* internal payment id (metadata.payment_id / refund.payment_id) */
    char payment_intent[WH_ID_MAX];
    int64_t amount;   /* minor units, >= 0 */
    char currency[4]; /* ISO 4217, upper-case */
    char failure_code[64];
    char failure_message[WH_TEXT_MAX]; /* untrusted text, truncated */
    char raised_by[64];                /* payouts: metadata.raised_by, the person who
                                          initiated the payout ("" if none); that person
                                          may not approve the case (CONTRACT.md §4) */
    char reject_gate[16];              /* WH_REJECTED: "signature" | "schema" */
    char reject_code[40];              /* WH_REJECTED: signature_mismatch, schema_invalid, ... */
    char reject_reason[WH_TEXT_MAX];   /* WH_REJECTED: "notification item 2 of 3: ..." */
} wh_item_t;

/* schema_parse - parse a webhook body of provider "stripe" or "standard"
 * (webhook_id: the webhook-id header for standard, else NULL) into items.
 * Unknown event types give one WH_IGNORED item (type and id filled), not an
 * error. charge.refunded gives one item per refund in refunds.data[].
 * 0 on success; -1 with a precise reason: "invalid JSON at line 1 column 7:
 * ...", "data.object.amount: expected an integer (minor units), got real",
 * "payout.currency: unknown ISO 4217 code \"USX\"", "missing field payout.id", ... */
int schema_parse(const char *provider, const char *body, size_t len, const char *webhook_id, wh_item_t *items,
                 size_t max_items, size_t *n_items, char *reason, size_t reasonlen);

/* schema_field_* - the field readers schema_parse uses, for a provider
 * parsed in its own module (adyen.c): the same rules (ids, integer minor
 * units, ISO 4217, untrusted text) and reasons naming "<prefix>.<key>".
 * 0, or -1 with the reason. */
int schema_field_id(const json_t *obj, const char *prefix, const char *key, bool required, char *out, size_t outcap,
                    char *reason, size_t reasonlen);
int schema_field_amount(const json_t *obj, const char *prefix, const char *key, int64_t *out, char *reason,
                        size_t reasonlen);
int schema_field_currency(const json_t *obj, const char *prefix, const char *key, char out[4], char *reason,
                          size_t reasonlen);
int schema_field_text(const json_t *obj, const char *prefix, const char *key, char *out, size_t outcap, char *reason,
                      size_t reasonlen);
/* schema_time - RFC 3339 "YYYY-MM-DDTHH:MM:SS[.frac](Z|+00:00)" to unix
 * seconds; with offsets, any "+HH:MM" / "-HH:MM" zone too (Adyen's
 * eventDate). 0, or -1 */
int schema_time(const char *s, size_t n, bool offsets, int64_t *out);

/* iso4217_known - an active ISO 4217 code (upper-case, 3 letters) */
bool iso4217_known(const char *code);
/* iso4217_minor_units - decimals of a currency (USD 2, JPY 0, KWD 3); -1 unknown */
int iso4217_minor_units(const char *code);

/* idempotency_key - CONTRACT.md §1.4: payout: "<psp_event_id>:<payout_id>";
 * refund: "<psp_event_id>", or without one "<refund_id>:<status>:<amount>";
 * adyen: "<eventCode>:<pspReference>:<success>", which is its psp_event_id */
void idempotency_key(const wh_item_t *item, char *out, size_t outlen);

#endif
