/* event - the one msgpack envelope every payguard event travels in.
 *
 * WIRE FORMAT (msgpack, nothing before or after it)
 *   an array of exactly 9 elements:
 *     [0] version   positive int, must be EVENT_VERSION
 *     [1] id        str, 1..EVENT_ID_MAX bytes of [A-Za-z0-9._:-]
 *     [2] type      str, one of the known types (event_type_known)
 *     [3] case_key  str, 0..EVENT_KEY_MAX bytes, printable ASCII
 *     [4] stage     str, producing stage instance, e.g. "triage.1",
 *                   1..EVENT_STAGE_MAX bytes of [a-z0-9._-]
 *     [5] seq       positive int, the producer's journal seq
 *     [6] cause     str, id of the event this one answers ("" for receipts)
 *     [7] time_ms   int, unix time in milliseconds, >= 0
 *     [8] body      map, str keys (1..EVENT_KEY_MAX bytes, unique), values
 *                   nil | bool | int | str | bin | array | map; no floats
 *                   (money is integer minor units); nesting at most
 *                   EVENT_MAX_DEPTH, each container at most
 *                   EVENT_MAX_ELEMENTS entries
 *   The whole encoding is at most EVENT_MAX_BYTES. Decoding is strict:
 *   every field type-checked, unknown types and trailing bytes rejected,
 *   each rejection with a one-line reason.
 *
 * IDS
 *   Ids are derived from their cause: event_derive_id(stage, cause, index)
 *   is a pure function, so an event re-sent after a crash, and whatever it
 *   causes on whichever worker, keeps its id. Receipts (no cause) get a
 *   random id minted by ingest (event_mint_id).
 */
#ifndef PG_EVENT_H
#define PG_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event_types.h"

#define EVENT_VERSION 1
#define EVENT_ID_MAX 64
#define EVENT_TYPE_MAX 32
#define EVENT_KEY_MAX 128
#define EVENT_STAGE_MAX 24
#define EVENT_MAX_BYTES (1024u * 1024u)
#define EVENT_MAX_DEPTH 8
#define EVENT_MAX_ELEMENTS 1024

typedef struct {
    char id[EVENT_ID_MAX + 1];
    char type[EVENT_TYPE_MAX + 1];
    event_type_t kind; /* type, decoded once (event_types.h) */
    char case_key[EVENT_KEY_MAX + 1];
    char stage[EVENT_STAGE_MAX + 1];
    uint64_t seq;
    char cause[EVENT_ID_MAX + 1];
    int64_t time_ms;
} event_head_t;

typedef struct event_t event_t;           /* a decoded event */
typedef struct event_body_t event_body_t; /* a body being built */

/* event_type_known - true if type is one of the registered event types */
bool event_type_known(const char *type);

/* event_decode - strictly decode len bytes; NULL and a reason in err */
event_t *event_decode(const void *data, size_t len, char *err, size_t errlen);
void event_destroy(event_t **self_p);

/* event_head - the envelope fields of a decoded event (borrowed) */
const event_head_t *event_head(const event_t *self);

/* body accessors: 0 and the value when key is present with that type,
 * -1 otherwise. Strings and bins are borrowed from the event and are NOT
 * NUL-terminated; use len. */
int event_get_str(const event_t *self, const char *key, const char **s, size_t *len);
int event_get_int(const event_t *self, const char *key, int64_t *out);
int event_get_bin(const event_t *self, const char *key, const void **data, size_t *len);
int event_get_bool(const event_t *self, const char *key, bool *out);
/* event_get_map_str - a str value under key inside the map field map_key
 * (e.g. a header of a receipt's "headers"); borrowed, not NUL-terminated */
int event_get_map_str(const event_t *self, const char *map_key, const char *key, const char **s, size_t *len);
/* event_get_strdup - a NUL-terminated copy of a str field, the caller's to
 * free; NULL if absent, not a str, or containing NUL bytes */
char *event_get_strdup(const event_t *self, const char *key);
/* event_get_strbuf - a str field NUL-terminated in buf (borrowed back:
 * returns buf); "" when absent, not a str, holding a NUL, or not fitting */
const char *event_get_strbuf(const event_t *self, const char *key, char *buf, size_t buflen);
/* event_body_count - number of keys in the body */
size_t event_body_count(const event_t *self);
/* event_body_raw - the encoded body map (borrowed) */
const void *event_body_raw(const event_t *self, size_t *len);

/* body builder: add key/value pairs, then event_encode. Keys must be unique
 * (a repeated key makes event_encode fail). */
event_body_t *event_body_new(void);
void event_body_destroy(event_body_t **self_p);
void event_body_str(event_body_t *self, const char *key, const char *value);
void event_body_strn(event_body_t *self, const char *key, const char *value, size_t len);
void event_body_int(event_body_t *self, const char *key, int64_t value);
void event_body_bool(event_body_t *self, const char *key, bool value);
void event_body_bin(event_body_t *self, const char *key, const void *data, size_t len);
/* event_body_raw_value - a value already encoded as msgpack (e.g. a nested
 * map); it is validated by event_encode like everything else */
void event_body_raw_value(event_body_t *self, const char *key, const void *msgpack, size_t len);
/* event_body_json - a JSON value (jansson json_t, passed as void * so this
 * header needs no jansson) as a nested msgpack value. -1 and nothing added
 * if it holds a real number (no floats in events) or is too deep/large. */
int event_body_json(event_body_t *self, const char *key, const void *json);
/* event_body_copy - copy every field of a decoded event's body */
void event_body_copy(event_body_t *self, const event_t *from);
/* event_body_size - bytes of the fields packed so far (the whole event
 * adds its head, under 1 KiB; EVENT_MAX_BYTES bounds the sum) */
size_t event_body_size(const event_body_t *self);
/* event_body_copy_except - the same without the field named skip (NULL: none) */
void event_body_copy_except(event_body_t *self, const event_t *from, const char *skip);

/* event_body_copy_body - append every pair of another builder except the
 * key skip (NULL: none); a problem of from's becomes self's */
void event_body_copy_body(event_body_t *self, const event_body_t *from, const char *skip);

/* event_encode - encode head + body (body may be NULL: empty map).
 * Returns a malloc'd buffer (the caller's to free) and its length, or NULL
 * and a reason in err if a field is out of bounds or the result would not
 * decode (the encoder never produces what the decoder rejects). */
void *event_encode(const event_head_t *head, const event_body_t *body, size_t *len_out, char *err, size_t errlen);
/* event_emit_encode - event_encode for what a stage emits: also refuses a
 * body that lacks a key its type requires (event_types.h), so the emitter
 * that forgot it fails where the mistake is, never its consumers */
void *event_emit_encode(const event_head_t *head, const event_body_t *body, size_t *len_out, char *err, size_t errlen);

/* SEALS - what approve decides, execute acts on only if approve sealed it:
 * the last body key "seal" holds hex HMAC-SHA256(key, "payguard-seal-1" NUL
 * id NUL type NUL case_key NUL cause NUL <the packed pairs of every other
 * body key, in order>), key the group's seal key (common/sealkey.h). The
 * producer's instance and journal position are not covered: they change
 * when `payguard repartition` moves an event. */
#define EVENT_SEAL_KEY_BYTES 32
#define EVENT_SEAL_BYTES 32
#define EK_SEAL "seal"
/* event_seal_encode - event_emit_encode, with the seal appended */
void *event_seal_encode(const event_head_t *head, const event_body_t *body,
                        const unsigned char key[EVENT_SEAL_KEY_BYTES], size_t *len_out, char *err, size_t errlen);
/* event_seal_check - 0 if ev ends with a seal made with key over exactly
 * what it carries, -1 if it has none or another */
int event_seal_check(const event_t *ev, const unsigned char key[EVENT_SEAL_KEY_BYTES]);

/* event_derive_id - the id of the index-th event that stage emits in answer
 * to cause: "<stage>-" + 24 hex digits of SHA-256(stage NUL cause NUL index) */
void event_derive_id(char out[EVENT_ID_MAX + 1], const char *stage, const char *cause, unsigned index);

/* event_mint_id - a fresh random id "<prefix>_" + 24 hex digits */
void event_mint_id(char out[EVENT_ID_MAX + 1], const char *prefix);

/* event_body_to_json - the body as a jansson object (a json_t *, passed as
 * void * so this header needs no jansson), rendered like event_to_json;
 * the caller decrefs. For stages that read nested bodies: no text round trip. */
void *event_body_to_json(const event_t *self);

/* event_to_json - a one-line JSON rendering of the event for operators
 * (bins as {"$bin":"<base64>"}, or as a str when they are valid UTF-8 text);
 * the caller's to free; never NULL (running out of memory aborts) */
char *event_to_json(const event_t *self);

#endif
