/* trail - the audit trail: a hash chain over every stored event, signed
 * checkpoints of its head, and verification.
 *
 * RECORD (the payload of one record of audit's journal; see journal.h)
 *   [0]        'A'
 *   [1..32]    hash      SHA-256 of bytes [33..end): everything below
 *   [33..64]   prev      the hash of the trail record before (zeros for #1)
 *   [65..72]   u64 LE    trail seq: 1 for the first record, +1 each
 *   [73..80]   i64 LE    stored_ms: when audit stored it
 *   [81..82]   u16 LE    M, the length of meta
 *   [83..83+M) meta      JSON object (PCI DSS 10.2.2): who, what, at_ms,
 *                        outcome (success|failure), origin {instance,
 *                        address, via: the console a person's call came
 *                        through}, resource {case, payout, refund,
 *                        payment}, payload_sha256 (receipts: the webhook
 *                        body's hash), event_id, cause
 *   [83+M..)   envelope  the event exactly as its producer sent it
 *   Each record carries its own hash (so an edited record is named itself)
 *   and its predecessor's (so a deleted, inserted or moved record breaks
 *   the chain where it happened); the trail seq inside the hashed bytes
 *   names what is missing or out of place.
 *
 * CHECKPOINTS (a file of their own, outside the journal, appended)
 *   one line per checkpoint:
 *     pgcp1 <trail seq> <head hash hex> <time_ms> <Ed25519 signature b64>
 *   the signature covers "payguard-audit-checkpoint:v1:<seq>:<hex>:<ms>".
 *   audit writes one when it first starts, even over an empty trail (seq 0,
 *   a zero head), so a missing checkpoints file is always suspicious.
 *   Records after the last checkpoint are reported as not yet sealed.
 *   A chain recomputed after a rewrite cannot match a signed head without
 *   the private key; a trail cut short of a checkpoint is a truncation.
 *   Keep the private key where the trail's writer cannot reach it in
 *   production; auditors need only the public key.
 *
 * VERIFY
 *   trail_verify() reads the journal from the start and checks every
 *   record's own hash, its link to the one before, its seq, and each
 *   checkpoint's signature and head; it stops at the first bad record and
 *   names it (trail seq, journal seq, segment file), with what it looks
 *   like: edited, deleted, swapped or moved, truncated, chain rewritten.
 */
#ifndef PG_TRAIL_H
#define PG_TRAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "journal.h"

#define TRAIL_REC 'A'
#define TRAIL_HASH_BYTES 32
#define TRAIL_HEADER_BYTES 83u
#define TRAIL_META_MAX 4096u
#define TRAIL_SIG_CONTEXT "payguard-audit-checkpoint:v1"

/* trail_t - the writer's side: the head of the chain */
typedef struct {
    unsigned char head[TRAIL_HASH_BYTES]; /* hash of the last record (zeros: none) */
    uint64_t seq;                         /* trail seq of the last record (0: none) */
} trail_head_t;

/* trail_view_t - a decoded record (pointers borrowed from the payload) */
typedef struct {
    const unsigned char *hash, *prev;
    uint64_t seq;
    int64_t stored_ms;
    const char *meta;
    size_t meta_len;
    const void *envelope;
    size_t envelope_len;
} trail_view_t;

/* trail_meta_json - the meta object for an event (a char * JSON text, the
 * caller's to free): who did it, what, when, success or failure, origin,
 * the resources it concerns. Pure function of the event. */
char *trail_meta_json(const event_t *ev);

/* trail_receipt_view - what the trail stores of a receipt that carries
 * its webhook body: the same event (head, every other field) with "body"
 * replaced by "body_sha256" (hex) and "body_bytes". malloc'd envelope, its
 * length in *len_out; NULL when ev is no receipt or has no body (store it
 * as received). The body itself stays in ingest's journal for
 * ingest/retention_s, and validate's verdicts on an authenticated receipt
 * carry it as "payload" (so the trail keeps what the PSP really sent, and
 * a forger's bytes only as their hash). */
void *trail_receipt_view(const event_t *ev, size_t *len_out);

/* trail_record_new - the record storing envelope (raw, len) after head;
 * advances head. malloc'd, its length in *len_out; NULL if meta is over
 * TRAIL_META_MAX (cannot happen with bounded events: asserted upstream) */
void *trail_record_new(trail_head_t *head, const event_t *ev, const void *raw, size_t rawlen, int64_t stored_ms,
                       size_t *len_out);

/* trail_record_parse - decode a record's fields; -1 if it is not one */
int trail_record_parse(const void *rec, size_t len, trail_view_t *out);

/* trail_record_hash_ok - does the record's content match its own hash? */
bool trail_record_hash_ok(const void *rec, size_t len);

/* trail_record_json - a parsed record as a jansson object (json_t *, as
 * void * so this header needs no jansson): trail_seq, hash, prev,
 * stored_ms, stored_at, meta's fields (who, what, ...), event; the caller
 * decrefs. NULL if the envelope does not decode. */
void *trail_record_json(const trail_view_t *v);

/* trail_head_recover - the head after the last record of journal dir
 * (zeros if none), looking from journal seq hint_from on (1: from the
 * start; it falls back to the start when no record is found after the
 * hint); -1 and a message on a read error */
int trail_head_recover(const char *dir, uint64_t hint_from, trail_head_t *out, char *err, size_t errlen);

/* ----------------------------------------------------------- signing */

typedef struct trail_key_t trail_key_t;

/* trail_key_load - an Ed25519 private key (PEM) from path; if the file does
 * not exist and generate is true, a new key is written there (0600) and its
 * public key beside it at pub_path (0644). NULL and a reason on failure. */
trail_key_t *trail_key_load(const char *path, const char *pub_path, bool generate, char *err, size_t errlen);
/* trail_pubkey_load - a public key (PEM) for verification, or the public
 * half of a private key file */
trail_key_t *trail_pubkey_load(const char *path, char *err, size_t errlen);
void trail_key_destroy(trail_key_t **self_p);

/* trail_checkpoint_append - sign head at time_ms, append the line to path
 * and fdatasync it; -1 and a reason on failure */
int trail_checkpoint_append(const char *path, trail_key_t *key, const trail_head_t *head, int64_t time_ms, char *err,
                            size_t errlen);

/* ------------------------------------------------------------- verify */

typedef struct {
    uint64_t records;         /* trail records checked */
    uint64_t checkpoints;     /* checkpoints checked (signature and head) */
    uint64_t unchained;       /* 'S' records stored before the chain existed: not covered */
    uint64_t last_checkpoint; /* trail seq the last checkpoint seals (0: none) */
    int64_t last_checkpoint_ms;
    unsigned char head[TRAIL_HASH_BYTES];
    uint64_t bad_seq;         /* trail seq of the first bad record (0: none or n/a) */
    uint64_t bad_journal_seq; /* its journal seq */
    char problem[512];        /* empty when the trail verifies */
} trail_report_t;

/* trail_verify - check the journal at dir against the checkpoints file
 * (may be missing only if the trail is empty) and key (a public key; NULL:
 * signatures not checked, and the report says so). 0 when it verifies, 1
 * when it does not (report->problem names the first bad record), -1 when
 * it could not be read (err). */
int trail_verify(const char *dir, const char *checkpoints_path, trail_key_t *key, trail_report_t *report, char *err,
                 size_t errlen);

/* trail_hex - 64 hex digits of a hash into out[65] */
void trail_hex(const unsigned char hash[TRAIL_HASH_BYTES], char out[2 * TRAIL_HASH_BYTES + 1]);

#endif
