/* headers - a webhook request's header fields, as received, judged and
 * merged for its receipt.
 *
 * HTTP lets a field appear several times (two proxies each add a Via; a
 * sender splits X-Forwarded-For). RFC 9110 §5.3: a recipient may combine
 * them into one field whose value is the values in the order received,
 * joined with ", ", without changing the message's meaning. A receipt keeps
 * one map entry per name (lower-cased: names are case-insensitive), with
 * every value of that name merged that way, so nothing sent is dropped.
 *
 * Bounds (on the fields as received, before merging): at most
 * HEADERS_MAX_FIELDS fields, names of at most HEADERS_MAX_NAME bytes, and
 * HEADERS_MAX_BYTES bytes of names and values together. A request past any
 * bound is refused whole with 431 (headers_verdict says which); it is never
 * recorded with some of its fields left out.
 *
 * Values: a receipt keeps the value of a header only when its name is on
 * a fixed list of harmless ones (headers_is_kept: HTTP's framing and
 * negotiation, what proxies add, trace ids, and the signature and source
 * headers validate checks: Stripe-Signature, webhook-id/-timestamp/
 * -signature, X-Forwarded-For; a signature is a MAC of the body, not a
 * secret). Credential headers (Authorization, Proxy-Authorization, Cookie,
 * X-Api-Key, X-Auth-Token) are recorded as "[redacted]". Every other value
 * (X-Access-Token, Api-Key, anything a relay adds) is recorded only as
 * "hmac-sha256:<16 hex digits>", the first 8 bytes of its HMAC-SHA256
 * under ingest's header key (ingest/header_key_file): equal values hash
 * equal, so they can be correlated on the trail, and none is stored.
 *
 * Not thread-safe; one headers_t per request. The caller keeps the names
 * and values it added alive until headers_pack (libmicrohttpd keeps them
 * for the request's life).
 */
#ifndef PG_INGEST_HEADERS_H
#define PG_INGEST_HEADERS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#define HEADERS_MAX_FIELDS 64
#define HEADERS_MAX_BYTES 8192
#define HEADERS_MAX_NAME 128 /* = EVENT_KEY_MAX: a name is a receipt map key */
#define HEADERS_REDACTED "[redacted]"
#define HEADERS_KEY_BYTES 32 /* ingest's header key (sealkey.h's key files) */
#define HEADERS_HASH_PREFIX "hmac-sha256:"
#define HEADERS_HASH_HEX 16                                              /* hex digits of the HMAC kept */
#define HEADERS_HASH_MAX (sizeof HEADERS_HASH_PREFIX + HEADERS_HASH_HEX) /* with the NUL */
#define HEADERS_MERGED_MAX (HEADERS_MAX_BYTES + 2 * HEADERS_MAX_FIELDS)  /* one name's values, joined */

typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} header_field_t;

typedef struct {
    header_field_t field[HEADERS_MAX_FIELDS];
    size_t count; /* fields kept (at most HEADERS_MAX_FIELDS) */
    size_t seen;  /* fields offered, kept or not */
    size_t bytes; /* names and values of every field offered */
    size_t longest_name;
    bool bad_name; /* a name that is not an HTTP token */
} headers_t;

/* headers_init - an empty set */
void headers_init(headers_t *self);
/* headers_add - one field as received (value NULL: empty) */
void headers_add(headers_t *self, const char *name, const char *value);
/* headers_verdict - 0 when the fields may be recorded whole; else the HTTP
 * status to refuse them with and *why, a static sentence: 431 past a
 * bound; 400 for a name that is not an HTTP token, for Content-Length
 * fields that disagree, or for both Content-Length and Transfer-Encoding
 * (RFC 9112 §6.3: framing a server must not guess at) */
unsigned headers_verdict(const headers_t *self, const char **why);
/* headers_distinct - how many distinct names (the receipt map's size) */
size_t headers_distinct(const headers_t *self);
/* headers_pack - the merged map {lower-case name: values joined ", "},
 * each value as sent only for a kept name, "[redacted]" for a credential,
 * else its headers_hash under key; only when headers_verdict is 0 */
void headers_pack(const headers_t *self, const unsigned char key[HEADERS_KEY_BYTES], msgpack_packer *pk);
/* headers_is_credential - a lower-case name whose value is redacted */
bool headers_is_credential(const char *name, size_t len);
/* headers_is_kept - a lower-case name whose value is recorded as sent */
bool headers_is_kept(const char *name, size_t len);
/* headers_hash - "hmac-sha256:" and the first HEADERS_HASH_HEX hex digits
 * of the HMAC-SHA256 of value (len bytes) under key */
void headers_hash(const unsigned char key[HEADERS_KEY_BYTES], const char *value, size_t len,
                  char out[HEADERS_HASH_MAX]);

#endif
