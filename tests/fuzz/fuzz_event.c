/* fuzz_event - libFuzzer target for the msgpack event envelope (common/event.h).
 *
 * Input: the bytes of one envelope, exactly as a stage takes them off a
 * socket or out of a journal record; inputs over FZ_MAX_BYTES are ignored
 * (the decoder's own 1 MiB bound is a unit test's business, not worth
 * mutating megabytes for).
 *
 * Properties checked besides the sanitizers':
 *   - a refusal writes a reason: NUL-terminated, one line;
 *   - what decodes respects event.h: id, stage, cause charsets and
 *     lengths, a registered type, seq >= 1, time_ms >= 0;
 *   - round trip: the decoded head plus event_body_copy() re-encodes
 *     (event_encode never refuses what event_decode accepted), no longer
 *     than the input (msgpack-c packs minimally), to an event with the
 *     same head, the same number of body keys and the same JSON; encoding
 *     that one again gives the same bytes (the canonical form is a fixed
 *     point);
 *   - the getters agree with event_body_to_json() on every key: ints,
 *     bools, strs and bins where the JSON says so, event_get_map_str()
 *     inside maps, event_get_strdup() only for strs without NUL;
 *   - event_body_raw() is the tail of the input and nests as a value;
 *   - approve's reading of a triaged body (policy_input_from_json) and
 *     a route under the default policy stay within their fields.
 *
 *   make bin/fuzz_event && mkdir -p build-fuzz/corpus/event &&
 *   ./bin/fuzz_event -max_total_time=10 build-fuzz/corpus/event tests/fuzz/event
 * (new finds go to the first directory; the seeds stay as they are)
 */
#include "policy.h"
#include "event.h"
#include "log.h"

#include <assert.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef NDEBUG
#error "the properties are asserts: build fuzz targets without NDEBUG"
#endif

#define FZ_MAX_BYTES (64u * 1024u)

static policy_t s_policy; /* the default policy, from the embedded config */

/* LLVMFuzzerInitialize - quiet logs and the default policy, once */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    log_init("fuzz_event", "error", NULL);
    char err[256];
    config_t *c = config_load(NULL, err, sizeof err);
    if (!c || policy_load(c, &s_policy, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_event: %s\n", err);
        abort();
    }
    config_destroy(&c);
    return 0;
}

/* s_check_text - a reason: written, NUL-terminated, one line */
static void s_check_text(const char *text, size_t cap)
{
    assert(memchr(text, '\0', cap) != NULL);
    assert(text[0] != '\0');
    assert(strchr(text, '\n') == NULL);
}

/* s_charset - every byte of s is in set */
static bool s_charset(const char *s, const char *set)
{
    return strspn(s, set) == strlen(s);
}

/* s_check_head - what event.h promises about a decoded head */
static void s_check_head(const event_head_t *h)
{
    static const char id_set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-";
    static const char stage_set[] = "abcdefghijklmnopqrstuvwxyz0123456789._-";
    size_t id_len = strnlen(h->id, sizeof h->id), stage_len = strnlen(h->stage, sizeof h->stage);
    assert(id_len >= 1 && id_len <= EVENT_ID_MAX && s_charset(h->id, id_set));
    assert(event_type_known(h->type));
    assert(strnlen(h->case_key, sizeof h->case_key) <= EVENT_KEY_MAX);
    for (const char *p = h->case_key; *p; p++)
        assert(*p >= 0x20 && *p <= 0x7e);
    assert(stage_len >= 1 && stage_len <= EVENT_STAGE_MAX && s_charset(h->stage, stage_set));
    assert(h->seq >= 1 && h->seq <= INT64_MAX);
    assert(strnlen(h->cause, sizeof h->cause) <= EVENT_ID_MAX && s_charset(h->cause, id_set));
    assert(h->time_ms >= 0);
}

/* s_same_head - two heads carry the same fields */
static void s_same_head(const event_head_t *a, const event_head_t *b)
{
    assert(strcmp(a->id, b->id) == 0);
    assert(strcmp(a->type, b->type) == 0);
    assert(strcmp(a->case_key, b->case_key) == 0);
    assert(strcmp(a->stage, b->stage) == 0);
    assert(a->seq == b->seq);
    assert(strcmp(a->cause, b->cause) == 0);
    assert(a->time_ms == b->time_ms);
}

/* s_reencode - head + a copy of the body, encoded; must succeed */
static void *s_reencode(const event_t *ev, size_t *len)
{
    event_body_t *body = event_body_new();
    assert(body);
    event_body_copy(body, ev);
    char err[256];
    void *enc = event_encode(event_head(ev), body, len, err, sizeof err);
    if (!enc) {
        fprintf(stderr, "fuzz_event: re-encoding a decoded event failed: %s\n", err);
        abort();
    }
    event_body_destroy(&body);
    return enc;
}

/* s_round_trip - decoded -> encoded -> decoded keeps everything, and the
 * re-encoding is canonical (encoding it again changes nothing) */
static void s_round_trip(const event_t *ev, size_t in_len)
{
    size_t len1 = 0, len2 = 0;
    void *enc1 = s_reencode(ev, &len1);
    assert(len1 <= in_len);
    char err[256];
    event_t *ev1 = event_decode(enc1, len1, err, sizeof err);
    assert(ev1);
    s_same_head(event_head(ev), event_head(ev1));
    assert(event_body_count(ev) == event_body_count(ev1));
    char *j0 = event_to_json(ev), *j1 = event_to_json(ev1);
    assert(j0 && j1 && strcmp(j0, j1) == 0);
    free(j0);
    free(j1);
    void *enc2 = s_reencode(ev1, &len2);
    assert(len2 == len1 && memcmp(enc1, enc2, len1) == 0);
    free(enc2);
    event_destroy(&ev1);
    free(enc1);
}

/* s_same_text - a JSON string holds exactly these bytes */
static bool s_same_text(const json_t *v, const char *s, size_t n)
{
    return json_is_string(v) && json_string_length(v) == n && memcmp(json_string_value(v), s, n) == 0;
}

/* s_check_map_field - event_get_map_str inside the map under key, against
 * its JSON: a str found must be the JSON's text (or its $bin form) */
static void s_check_map_field(const event_t *ev, const char *key, const json_t *obj)
{
    const char *ik;
    size_t iklen;
    json_t *iv;
    json_object_keylen_foreach((json_t *) obj, ik, iklen, iv)
    {
        if (iklen != strlen(ik) || strncmp(ik, "$b64:", 5) == 0)
            continue;
        const char *s = NULL;
        size_t n = 0;
        if (event_get_map_str(ev, key, ik, &s, &n) == 0)
            assert(s_same_text(iv, s, n) || json_object_get(iv, "$bin"));
    }
    assert(event_get_map_str(ev, key, "\x01not-a-key", NULL, NULL) == -1);
}

/* s_check_field - the getters on one body key against its JSON rendering */
static void s_check_field(const event_t *ev, const char *key, const json_t *v)
{
    int64_t i = 0;
    bool b = false;
    const char *s = NULL;
    const void *bin = NULL;
    size_t n = 0, bn = 0;
    int got_int = event_get_int(ev, key, &i);
    int got_bool = event_get_bool(ev, key, &b);
    int got_str = event_get_str(ev, key, &s, &n);
    int got_bin = event_get_bin(ev, key, &bin, &bn);
    /* at most one getter answers for a key */
    assert((got_int == 0) + (got_bool == 0) + (got_str == 0) + (got_bin == 0) <= 1);
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        assert(got_int == 0 && i == json_integer_value(v));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        assert(got_bool == 0 && b == json_is_true(v));
        break;
    case JSON_STRING:
        assert((got_str == 0 && s_same_text(v, s, n)) || (got_bin == 0 && s_same_text(v, bin, bn)));
        break;
    case JSON_OBJECT:
        if (got_str == 0 || got_bin == 0)
            assert(json_object_size(v) == 1 && json_is_string(json_object_get(v, "$bin")));
        else
            s_check_map_field(ev, key, v);
        break;
    case JSON_NULL:
    case JSON_ARRAY:
        assert(got_int && got_bool && got_str && got_bin);
        break;
    case JSON_REAL:
        assert(0 && "events hold no floats");
        break;
    }
    char *dup = event_get_strdup(ev, key);
    assert((dup != NULL) == (got_str == 0 && memchr(s, '\0', n) == NULL));
    if (dup)
        assert(strlen(dup) == n && memcmp(dup, s, n) == 0);
    free(dup);
}

/* s_getters - every plain key through the getters, plus keys stages read
 * that may be absent; keys that JSON renamed ("$b64:", non-UTF-8 or with
 * a NUL) are left out, as a collision could hide which value is which */
static void s_getters(const event_t *ev, const json_t *body)
{
    const char *key;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach((json_t *) body, key, klen, v)
    {
        if (klen == strlen(key) && strncmp(key, "$b64:", 5) != 0)
            s_check_field(ev, key, v);
    }
    static const char *const known[] = {"amount", "currency", "body", "headers", "kind", "status", "ref", "who", "x"};
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
        (void) event_get_str(ev, known[k], NULL, NULL);
        (void) event_get_int(ev, known[k], NULL);
        (void) event_get_bin(ev, known[k], NULL, NULL);
        (void) event_get_bool(ev, known[k], NULL);
        (void) event_get_map_str(ev, known[k], "content-type", NULL, NULL);
    }
    assert(json_object_size(body) <= event_body_count(ev));
}

/* s_raw_body - the raw body is the input's tail and nests as a value one
 * level down (unless that takes it past EVENT_MAX_DEPTH) */
static void s_raw_body(const event_t *ev, const uint8_t *data, size_t size)
{
    size_t rlen = 0;
    const uint8_t *raw = event_body_raw(ev, &rlen);
    assert(rlen >= 1 && rlen < size && memcmp(raw, data + size - rlen, rlen) == 0);
    event_body_t *nested = event_body_new();
    assert(nested);
    event_body_raw_value(nested, "inner", raw, rlen);
    size_t len = 0;
    void *enc = event_encode(event_head(ev), nested, &len, NULL, 0);
    free(enc);
    event_body_destroy(&nested);
}

/* s_policy_read - what approve reads from a triaged body and the route it
 * takes under the default policy: fields stay NUL-terminated and bounded */
static void s_policy_read(const json_t *body)
{
    policy_input_t in;
    policy_input_from_json(body, &in);
    assert(memchr(in.kind, '\0', sizeof in.kind) && memchr(in.currency, '\0', sizeof in.currency));
    route_t r;
    memset(&r, 0, sizeof r);
    policy_route(&s_policy, &in, &r);
    assert(r.kind == ROUTE_NO_ACTION || r.kind == ROUTE_AUTO || r.kind == ROUTE_HUMANS);
    assert(r.kind != ROUTE_HUMANS || (r.tier >= 1 && r.tier <= POLICY_TIERS && r.nroles >= 1));
    assert(memchr(r.reason, '\0', sizeof r.reason) && memchr(r.rule, '\0', sizeof r.rule));
    assert(r.rule[0] != '\0');
    (void) policy_amount_tier(&s_policy, in.amount, in.currency);
}

/* LLVMFuzzerTestOneInput - decode; on success, every property above */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FZ_MAX_BYTES)
        return 0;
    char err[256];
    memset(err, 'Z', sizeof err); /* no NUL: a refusal must write its reason */
    event_t *ev = event_decode(data, size, err, sizeof err);
    if (!ev) {
        s_check_text(err, sizeof err);
        return 0;
    }
    s_check_head(event_head(ev));
    s_round_trip(ev, size);
    json_t *body = event_body_to_json(ev);
    assert(json_is_object(body));
    s_getters(ev, body);
    s_policy_read(body);
    json_decref(body);
    s_raw_body(ev, data, size);
    event_destroy(&ev);
    return 0;
}
