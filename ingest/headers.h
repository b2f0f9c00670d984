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
 * Values of credential headers (Authorization, Proxy-Authorization, Cookie,
 * X-Api-Key, X-Auth-Token) are recorded as "[redacted]".
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
/* headers_pack - the merged map {lower-case name: values joined ", "};
 * only when headers_verdict is 0 */
void headers_pack(const headers_t *self, msgpack_packer *pk);
/* headers_is_credential - a lower-case name whose value is redacted */
bool headers_is_credential(const char *name, size_t len);

#endif
