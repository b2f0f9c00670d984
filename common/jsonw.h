/* jsonw - a compact JSON text written straight into a growing buffer.
 *
 * For the hot paths that turn a record into one line of JSON (an event for
 * the case index and `journal dump`, a trail record's meta) without
 * building a jansson tree first: no node per value, no second pass. The
 * output is byte for byte what jansson's json_dumps(JSON_COMPACT) writes for
 * the same values in the same order (tests/unit/test_jsonw.c checks it):
 * '"' and '\' escaped, \b \f \n \r \t short, other bytes below 0x20 as
 * \u00XX, everything else (UTF-8 included) as it is. Strings must be valid
 * UTF-8: the caller checks (jsonw_utf8_valid), as jansson would refuse them.
 *
 * Commas are the writer's business: jsonw_key and every value put one in
 * when the container already holds something. Memory runs out only by
 * abort(), as everywhere in payguard (bounded inputs).
 *
 *	jsonw_t w;
 *	jsonw_init(&w);
 *	jsonw_open(&w, '{');
 *	jsonw_key(&w, "id", 2); jsonw_str(&w, id, strlen(id));
 *	jsonw_key(&w, "n", 1);  jsonw_int(&w, 42);
 *	jsonw_close(&w, '}');
 *	char *text = jsonw_take(&w);	// malloc'd, NUL-terminated; free() it
 */
#ifndef PG_JSONW_H
#define PG_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSONW_MAX_DEPTH 32 /* deeper than any event body may nest */

typedef struct {
    char *buf;
    size_t len, cap;
    int depth;
    bool has_item[JSONW_MAX_DEPTH + 1]; /* per open container: a comma is due */
    bool after_key;                     /* the next value follows a key */
} jsonw_t;

/* jsonw_init - an empty writer */
void jsonw_init(jsonw_t *w);
/* jsonw_open - start an object ('{') or an array ('[') */
void jsonw_open(jsonw_t *w, char kind);
/* jsonw_close - end the innermost container ('}' or ']') */
void jsonw_close(jsonw_t *w, char kind);
/* jsonw_key - an object member's name (valid UTF-8, len bytes) */
void jsonw_key(jsonw_t *w, const char *s, size_t len);
/* jsonw_str - a string value (valid UTF-8, len bytes) */
void jsonw_str(jsonw_t *w, const char *s, size_t len);
/* jsonw_kv_str - an object member "key":"value", both NUL-terminated valid UTF-8 */
void jsonw_kv_str(jsonw_t *w, const char *key, const char *value);
/* jsonw_int - an integer value */
void jsonw_int(jsonw_t *w, int64_t v);
/* jsonw_uint - an unsigned integer value, as jansson would write it (as int64) */
void jsonw_uint(jsonw_t *w, uint64_t v);
/* jsonw_bool - true or false */
void jsonw_bool(jsonw_t *w, bool v);
/* jsonw_null - null */
void jsonw_null(jsonw_t *w);
/* jsonw_take - the text (NUL-terminated, the caller frees it); the writer is empty again */
char *jsonw_take(jsonw_t *w);
/* jsonw_reset - drop what was written */
void jsonw_reset(jsonw_t *w);

/* jsonw_utf8_valid - len bytes are UTF-8 that JSON can carry (no overlong
 * forms, no surrogates, nothing past U+10FFFF; NUL only if allow_nul) */
bool jsonw_utf8_valid(const unsigned char *s, size_t len, bool allow_nul);

#endif
