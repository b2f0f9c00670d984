/* event - the one msgpack envelope every payguard event travels in (see event.h).
 *
 * Decoding happens in two passes over the bytes:
 *   1. s_scan, our own bounded walk of the raw msgpack: it finds truncation,
 *      the reserved byte 0xc1, trailing bytes, containers deeper than
 *      EVENT_MAX_DEPTH or larger than EVENT_MAX_ELEMENTS, and an envelope
 *      that is not an array of 9, all before msgpack-c allocates anything.
 *      msgpack-c sizes its allocations by the declared element count, so
 *      without this pass five bytes claiming a 2^32-1 element array would
 *      make it ask for ~100 GB.
 *   2. msgpack_unpack_next into a zone, then a typed check of every field
 *      and a recursive walk of the body (key types, key uniqueness, no
 *      floats, no ext, ints within int64).
 * Every rejection is one line naming where the problem is: "field 1 (id):
 * ...", "body.refund.amount: ...", "truncated at offset 17 in field 4".
 *
 * Integers are int64 throughout: a positive int above INT64_MAX is
 * rejected in the body and in seq/time_ms, so every int a stage reads
 * fits event_get_int, SQLite and JSON.
 */
#include "event.h"
#include "hex.h"
#include "jsonw.h"
#include "log.h"

#include <assert.h>
#include <inttypes.h>
#include <jansson.h>
#include <msgpack.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The registered event types: common/event_types.h's list. Anything not in
 * it is rejected by event_decode and event_encode. */
static const struct {
    const char *name;
    const char *emitter;
    const char *meaning;
    const char *required; /* body keys, space-separated */
} s_types[EV_NTYPES] = {[EV_NONE] = {"", "", "no type", ""},
#define EVENT_ZONE_SLACK 64 /* bytes beyond the objects in a decoded event's zone: alignment */
#define EVENT_TYPE_ROW(e, name, by, meaning, keys) [e] = {name, by, meaning, keys},
                        EVENT_TYPES(EVENT_TYPE_ROW)
#undef EVENT_TYPE_ROW
};

struct event_t {
    event_head_t head;
    char *data; /* our copy of the input: strs and bins point into it */
    size_t len;
    msgpack_unpacked unpacked; /* owns the zone the objects live in */
    const msgpack_object_map *body;
    size_t body_off; /* the body map's encoding is data[body_off..len) */
};

struct event_body_t {
    msgpack_sbuffer sbuf; /* packed key/value pairs, no map header */
    msgpack_packer pk;
    size_t count;    /* pairs in sbuf */
    char error[200]; /* first problem met while building; event_encode reports it */
};

/* s_fail - write a one-line reason (if the caller wants one) and return -1 */
__attribute__((format(printf, 3, 4))) static int s_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* s_sanitize - render untrusted bytes for a reason: printable ASCII kept,
 * the rest as '?', cut at max bytes so a reason stays one short line */
static void s_sanitize(char *out, size_t outlen, const void *data, size_t len, size_t max)
{
    assert(outlen >= max + 4);
    const unsigned char *p = data;
    size_t n = 0;
    for (size_t i = 0; i < len && i < max; i++)
        out[n++] = (p[i] >= 0x20 && p[i] <= 0x7e) ? (char) p[i] : '?';
    if (len > max) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

/* ---------------------------------------------------------------------
 * Pass 1: bounded scan of raw msgpack
 */

typedef struct {
    bool is_map;
    uint64_t items_left;      /* items still to read; a map pair is two */
    uint64_t pos;             /* index of the item being read */
    const unsigned char *key; /* map: the current pair's key, when a str */
    uint32_t key_len;
} s_frame_t;

typedef struct {
    const unsigned char *p;
    size_t len;
    size_t off;
    bool envelope;    /* the root must be the 9-element event array */
    const char *root; /* name of the root item in reasons */
    int root_depth;   /* body depth a container at the root would have */
    s_frame_t stack[EVENT_MAX_DEPTH + 1];
    int depth;       /* open containers */
    size_t body_off; /* envelope: where field 8 starts */
    size_t items;    /* items read: the decoded objects, root included */
    char *err;
    size_t errlen;
} s_scan_t;

/* s_scan_path - name the item being read ("body.refund[2]") for a reason */
static const char *s_scan_path(const s_scan_t *sc, char *buf, size_t cap)
{
    size_t n = (size_t) snprintf(buf, cap, "%s", sc->depth == 0 || !sc->envelope ? sc->root : "");
    for (int i = 0; i < sc->depth && n < cap; i++) {
        const s_frame_t *f = &sc->stack[i];
        char key[48];
        if (sc->envelope && i == 0) {
            if (f->pos == 8)
                n += (size_t) snprintf(buf + n, cap - n, "body");
            else
                n += (size_t) snprintf(buf + n, cap - n, "field %" PRIu64, f->pos);
        } else if (!f->is_map) {
            n += (size_t) snprintf(buf + n, cap - n, "[%" PRIu64 "]", f->pos);
        } else if (f->pos % 2 == 0) {
            n += (size_t) snprintf(buf + n, cap - n, "<key %" PRIu64 ">", f->pos / 2);
        } else {
            if (f->key)
                s_sanitize(key, sizeof key, f->key, f->key_len, 40);
            else
                snprintf(key, sizeof key, "?");
            n += (size_t) snprintf(buf + n, cap - n, ".%s", key);
        }
    }
    return buf;
}

/* s_scan_truncated - the input ended inside an item */
static int s_scan_truncated(const s_scan_t *sc, size_t at)
{
    char path[256];
    return s_fail(sc->err, sc->errlen, "truncated at offset %zu in %s", at, s_scan_path(sc, path, sizeof path));
}

/* s_be - a big-endian unsigned of n bytes */
static uint64_t s_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* s_byte_kind - what a msgpack lead byte starts, for "got X" reasons */
static const char *s_byte_kind(unsigned char b)
{
    if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3))
        return "int";
    if (b <= 0x8f || b == 0xde || b == 0xdf)
        return "map";
    if (b <= 0x9f || b == 0xdc || b == 0xdd)
        return "array";
    if (b <= 0xbf || (b >= 0xd9 && b <= 0xdb))
        return "str";
    switch (b) {
    case 0xc0:
        return "nil";
    case 0xc2:
    case 0xc3:
        return "bool";
    case 0xc4:
    case 0xc5:
    case 0xc6:
        return "bin";
    case 0xca:
        return "float32";
    case 0xcb:
        return "float64";
    case 0xc1:
        return "invalid byte 0xc1";
    default:
        return "ext";
    }
}

/* s_scan - walk one complete msgpack object from sc->off without building
 * it; 0 and its end offset, or -1 and a reason. Checks sizes before
 * anything is allocated. */
static int s_scan(s_scan_t *sc, size_t *end_out)
{
    enum { SCALAR, ARRAY, MAP };
    char path[256];
    for (;;) {
        s_frame_t *top = sc->depth > 0 ? &sc->stack[sc->depth - 1] : NULL;
        if (sc->envelope && sc->depth == 1 && top->pos == 8)
            sc->body_off = sc->off;
        bool at_key = top && top->is_map && top->pos % 2 == 0;
        if (at_key)
            top->key = NULL;

        size_t start = sc->off;
        if (sc->off >= sc->len)
            return s_scan_truncated(sc, start);
        unsigned char b = sc->p[sc->off++];
        sc->items++;
        int kind = SCALAR;
        bool is_str = false;
        uint64_t n = 0;       /* container entries */
        uint64_t payload = 0; /* bytes after the header */
        size_t len_bytes = 0; /* size of a length field that follows */
        uint64_t extra = 0;   /* bytes besides the length-counted ones (ext type) */

        if (b <= 0x7f || b >= 0xe0) {
            /* fixint */
        } else if (b <= 0x8f) {
            kind = MAP;
            n = b & 0x0f;
        } else if (b <= 0x9f) {
            kind = ARRAY;
            n = b & 0x0f;
        } else if (b <= 0xbf) {
            is_str = true;
            payload = b & 0x1f;
        } else {
            switch (b) {
            case 0xc0:
            case 0xc2:
            case 0xc3:
                break;
            case 0xc1:
                return s_fail(sc->err, sc->errlen, "invalid msgpack byte 0xc1 at offset %zu", start);
            case 0xc4:
                len_bytes = 1;
                break;
            case 0xc5:
                len_bytes = 2;
                break;
            case 0xc6:
                len_bytes = 4;
                break;
            case 0xc7:
                len_bytes = 1;
                extra = 1;
                break;
            case 0xc8:
                len_bytes = 2;
                extra = 1;
                break;
            case 0xc9:
                len_bytes = 4;
                extra = 1;
                break;
            case 0xca:
                payload = 4;
                break;
            case 0xcb:
                payload = 8;
                break;
            case 0xcc:
            case 0xd0:
                payload = 1;
                break;
            case 0xcd:
            case 0xd1:
                payload = 2;
                break;
            case 0xce:
            case 0xd2:
                payload = 4;
                break;
            case 0xcf:
            case 0xd3:
                payload = 8;
                break;
            case 0xd4:
                payload = 2;
                break;
            case 0xd5:
                payload = 3;
                break;
            case 0xd6:
                payload = 5;
                break;
            case 0xd7:
                payload = 9;
                break;
            case 0xd8:
                payload = 17;
                break;
            case 0xd9:
                len_bytes = 1;
                is_str = true;
                break;
            case 0xda:
                len_bytes = 2;
                is_str = true;
                break;
            case 0xdb:
                len_bytes = 4;
                is_str = true;
                break;
            case 0xdc:
                len_bytes = 2;
                kind = ARRAY;
                break;
            case 0xdd:
                len_bytes = 4;
                kind = ARRAY;
                break;
            case 0xde:
                len_bytes = 2;
                kind = MAP;
                break;
            case 0xdf:
                len_bytes = 4;
                kind = MAP;
                break;
            default:
                assert(0 && "every lead byte is covered");
            }
        }
        if (sc->envelope && sc->depth == 0 && kind != ARRAY)
            return s_fail(sc->err, sc->errlen, "event: expected an array of 9 elements, got %s", s_byte_kind(b));
        if (len_bytes > 0) {
            if (sc->len - sc->off < len_bytes)
                return s_scan_truncated(sc, start);
            uint64_t v = s_be(sc->p + sc->off, len_bytes);
            sc->off += len_bytes;
            if (kind == SCALAR)
                payload = v + extra;
            else
                n = v;
        }
        if (payload > sc->len - sc->off)
            return s_scan_truncated(sc, start);
        if (is_str && at_key) {
            top->key = sc->p + sc->off;
            top->key_len = (uint32_t) payload;
        }
        sc->off += (size_t) payload;

        if (kind != SCALAR) {
            if (sc->envelope && sc->depth == 0 && n != 9)
                return s_fail(sc->err, sc->errlen, "event: array of %" PRIu64 " elements, expected 9", n);
            if (n > EVENT_MAX_ELEMENTS)
                return s_fail(sc->err, sc->errlen, "%s: %s of %" PRIu64 " %s exceeds %d",
                              s_scan_path(sc, path, sizeof path), kind == MAP ? "map" : "array", n,
                              kind == MAP ? "entries" : "elements", EVENT_MAX_ELEMENTS);
            if (sc->root_depth + sc->depth > EVENT_MAX_DEPTH)
                return s_fail(sc->err, sc->errlen, "%s: depth exceeds %d", s_scan_path(sc, path, sizeof path),
                              EVENT_MAX_DEPTH);
            if (n > 0) {
                assert(sc->depth < (int) (sizeof sc->stack / sizeof sc->stack[0]));
                sc->stack[sc->depth++] =
                    (s_frame_t){.is_map = kind == MAP, .items_left = kind == MAP ? 2 * n : n, .pos = 0, .key = NULL};
                continue;
            }
        }
        /* an item is complete: close every container it completes */
        while (sc->depth > 0) {
            s_frame_t *f = &sc->stack[sc->depth - 1];
            f->pos++;
            if (--f->items_left > 0)
                break;
            sc->depth--;
        }
        if (sc->depth == 0) {
            *end_out = sc->off;
            return 0;
        }
    }
}

/* ---------------------------------------------------------------------
 * Pass 2: typed checks of the unpacked objects
 */

/* s_kind - a msgpack object type in words, for "got X" reasons */
static const char *s_kind(msgpack_object_type type)
{
    switch (type) {
    case MSGPACK_OBJECT_NIL:
        return "nil";
    case MSGPACK_OBJECT_BOOLEAN:
        return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return "int";
    case MSGPACK_OBJECT_FLOAT32:
        return "float32";
    case MSGPACK_OBJECT_FLOAT64:
        return "float64";
    case MSGPACK_OBJECT_STR:
        return "str";
    case MSGPACK_OBJECT_BIN:
        return "bin";
    case MSGPACK_OBJECT_ARRAY:
        return "array";
    case MSGPACK_OBJECT_MAP:
        return "map";
    case MSGPACK_OBJECT_EXT:
        return "ext";
    }
    return "unknown";
}

static const char *s_field_names[9] = {"version", "id", "type", "case_key", "stage", "seq", "cause", "time_ms", "body"};

/* s_id_char - the id/cause charset [A-Za-z0-9._:-] */
static bool s_id_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == ':' || c == '-';
}

/* s_stage_char - the stage charset [a-z0-9._-] */
static bool s_stage_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* s_printable - the case_key charset, printable ASCII 0x20..0x7e */
static bool s_printable(unsigned char c)
{
    return c >= 0x20 && c <= 0x7e;
}

/* s_check_str - field idx must be a str of min..max bytes from a charset;
 * copied NUL-terminated into out (which holds max + 1) */
static int s_check_str(const msgpack_object *f, int idx, size_t min, size_t max, bool (*ok)(unsigned char), char *out,
                       char *err, size_t errlen)
{
    const char *name = s_field_names[idx];
    if (f->type != MSGPACK_OBJECT_STR)
        return s_fail(err, errlen, "field %d (%s): expected str, got %s", idx, name, s_kind(f->type));
    uint32_t size = f->via.str.size;
    if (size < min)
        return s_fail(err, errlen, "field %d (%s): empty", idx, name);
    if (size > max)
        return s_fail(err, errlen, "field %d (%s): %" PRIu32 " bytes exceeds %zu", idx, name, size, max);
    for (uint32_t i = 0; ok && i < size; i++) {
        unsigned char c = (unsigned char) f->via.str.ptr[i];
        if (!ok(c))
            return s_fail(err, errlen, "field %d (%s): bad character 0x%02x at byte %" PRIu32, idx, name, c, i);
    }
    memcpy(out, f->via.str.ptr, size);
    out[size] = '\0';
    return 0;
}

/* s_check_int - field idx must be an int in min..INT64_MAX */
static int s_check_int(const msgpack_object *f, int idx, int64_t min, int64_t *out, char *err, size_t errlen)
{
    const char *name = s_field_names[idx];
    if (f->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        if (f->via.i64 < min)
            return s_fail(err, errlen, "field %d (%s): must be >= %" PRId64 ", got %" PRId64, idx, name, min,
                          f->via.i64);
        *out = f->via.i64;
        return 0;
    }
    if (f->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return s_fail(err, errlen, "field %d (%s): expected int, got %s", idx, name, s_kind(f->type));
    if (f->via.u64 > INT64_MAX)
        return s_fail(err, errlen, "field %d (%s): %" PRIu64 " exceeds INT64_MAX", idx, name, f->via.u64);
    if ((int64_t) f->via.u64 < min)
        return s_fail(err, errlen, "field %d (%s): must be >= %" PRId64 ", got %" PRIu64, idx, name, min, f->via.u64);
    *out = (int64_t) f->via.u64;
    return 0;
}

/* path_t - where in the body a value sits, for a reason: a chain of frames
 * on the checker's stack, formatted only when a check fails (formatting
 * every key on the way down was a tenth of audit's CPU) */
typedef struct path_t {
    const struct path_t *up; /* NULL: the body itself */
    const char *key;         /* a map key (untrusted bytes), or NULL: an array index */
    size_t key_len, index;
} path_t;

/* s_path_format - "body.key[3].other" into out */
static void s_path_format(const path_t *p, char *out, size_t cap)
{
    if (!p->up) {
        snprintf(out, cap, "body");
        return;
    }
    s_path_format(p->up, out, cap);
    size_t n = strlen(out);
    if (p->key) {
        char clean[48];
        s_sanitize(clean, sizeof clean, p->key, p->key_len, 40);
        snprintf(out + n, cap - n, ".%s", clean);
    } else {
        snprintf(out + n, cap - n, "[%zu]", p->index);
    }
}

/* s_fail_at - s_fail with the path in front: "<path>: <reason>" */
__attribute__((format(printf, 4, 5))) static int s_fail_at(const path_t *p, char *err, size_t errlen, const char *fmt,
                                                           ...)
{
    if (err && errlen > 0) {
        char path[1024], why[256];
        s_path_format(p, path, sizeof path);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof why, fmt, ap);
        va_end(ap);
        snprintf(err, errlen, "%s: %s", path, why);
    }
    return -1;
}

static int s_check_value(const msgpack_object *o, int depth, const path_t *path, char *err, size_t errlen);

/* s_key_cmp - order map keys by length then bytes, so duplicates sit together */
static int s_key_cmp(const void *a, const void *b)
{
    const msgpack_object_str *x = *(const msgpack_object_str *const *) a;
    const msgpack_object_str *y = *(const msgpack_object_str *const *) b;
    if (x->size != y->size)
        return x->size < y->size ? -1 : 1;
    return memcmp(x->ptr, y->ptr, x->size);
}

/* s_duplicate_key - a key that appears twice in map (NULL: none): pairwise
 * for the small maps events carry, sorted for large ones */
static const msgpack_object_str *s_duplicate_key(const msgpack_object_map *map, bool *oom)
{
    const msgpack_object_str *dup = NULL;
    *oom = false;
    if (map->size <= 16) {
        for (uint32_t i = 1; i < map->size && !dup; i++)
            for (uint32_t j = 0; j < i && !dup; j++) {
                const msgpack_object_str *x = &map->ptr[i].key.via.str, *y = &map->ptr[j].key.via.str;
                if (x->size == y->size && memcmp(x->ptr, y->ptr, x->size) == 0)
                    dup = x;
            }
        return dup;
    }
    const msgpack_object_str **keys = malloc(map->size * sizeof *keys);
    if (!keys) {
        *oom = true;
        return NULL;
    }
    for (uint32_t i = 0; i < map->size; i++)
        keys[i] = &map->ptr[i].key.via.str;
    qsort(keys, map->size, sizeof *keys, s_key_cmp);
    for (uint32_t i = 1; i < map->size && !dup; i++)
        if (s_key_cmp(&keys[i - 1], &keys[i]) == 0)
            dup = keys[i];
    free(keys);
    return dup;
}

/* s_check_map - a body map at depth: str keys of 1..EVENT_KEY_MAX bytes,
 * unique, and every value allowed */
static int s_check_map(const msgpack_object_map *map, int depth, const path_t *path, char *err, size_t errlen)
{
    assert(depth <= EVENT_MAX_DEPTH);        /* s_scan enforced it */
    assert(map->size <= EVENT_MAX_ELEMENTS); /* likewise */
    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object *k = &map->ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR)
            return s_fail_at(path, err, errlen, "key %" PRIu32 " is %s, expected str", i, s_kind(k->type));
        if (k->via.str.size == 0)
            return s_fail_at(path, err, errlen, "empty key");
        if (k->via.str.size > EVENT_KEY_MAX)
            return s_fail_at(path, err, errlen, "key of %" PRIu32 " bytes exceeds %d", k->via.str.size, EVENT_KEY_MAX);
    }
    bool oom;
    const msgpack_object_str *dup = s_duplicate_key(map, &oom);
    if (oom)
        return s_fail(err, errlen, "out of memory");
    if (dup) {
        char clean[48];
        s_sanitize(clean, sizeof clean, dup->ptr, dup->size, 40);
        return s_fail_at(path, err, errlen, "duplicate key \"%s\"", clean);
    }
    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object_str *k = &map->ptr[i].key.via.str;
        path_t here = {.up = path, .key = k->ptr, .key_len = k->size};
        if (s_check_value(&map->ptr[i].val, depth, &here, err, errlen))
            return -1;
    }
    return 0;
}

/* s_check_value - a value inside a container at depth: no floats (money is
 * integer minor units), no ext, ints within int64 */
static int s_check_value(const msgpack_object *o, int depth, const path_t *path, char *err, size_t errlen)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
    case MSGPACK_OBJECT_BOOLEAN:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN:
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > INT64_MAX)
            return s_fail_at(path, err, errlen, "integer %" PRIu64 " exceeds INT64_MAX", o->via.u64);
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return s_fail_at(path, err, errlen, "float not allowed (money is integer minor units)");
    case MSGPACK_OBJECT_EXT:
        return s_fail_at(path, err, errlen, "ext not allowed");
    case MSGPACK_OBJECT_MAP:
        return s_check_map(&o->via.map, depth + 1, path, err, errlen);
    case MSGPACK_OBJECT_ARRAY:
        assert(depth + 1 <= EVENT_MAX_DEPTH && o->via.array.size <= EVENT_MAX_ELEMENTS);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            path_t here = {.up = path, .index = i};
            if (s_check_value(&o->via.array.ptr[i], depth + 1, &here, err, errlen))
                return -1;
        }
        return 0;
    }
    return s_fail_at(path, err, errlen, "unknown msgpack type %d", (int) o->type);
}

/* s_check_event - type-check the 9 envelope fields into head and walk the body */
static int s_check_event(const msgpack_object *root, event_head_t *head, char *err, size_t errlen)
{
    assert(root->type == MSGPACK_OBJECT_ARRAY && root->via.array.size == 9); /* s_scan enforced it */
    const msgpack_object *f = root->via.array.ptr;
    memset(head, 0, sizeof *head);

    int64_t version = 0;
    if (f[0].type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return s_fail(err, errlen, "field 0 (version): unsupported version %" PRId64, f[0].via.i64);
    if (s_check_int(&f[0], 0, 0, &version, err, errlen))
        return -1;
    if (version != EVENT_VERSION)
        return s_fail(err, errlen, "field 0 (version): unsupported version %" PRId64, version);
    if (s_check_str(&f[1], 1, 1, EVENT_ID_MAX, s_id_char, head->id, err, errlen))
        return -1;
    if (f[2].type != MSGPACK_OBJECT_STR)
        return s_fail(err, errlen, "field 2 (type): expected str, got %s", s_kind(f[2].type));
    char type[EVENT_TYPE_MAX + 1];
    if (f[2].via.str.size <= EVENT_TYPE_MAX) {
        memcpy(type, f[2].via.str.ptr, f[2].via.str.size);
        type[f[2].via.str.size] = '\0';
    }
    if (f[2].via.str.size > EVENT_TYPE_MAX || memchr(type, '\0', f[2].via.str.size) || !event_type_known(type)) {
        char clean[48];
        s_sanitize(clean, sizeof clean, f[2].via.str.ptr, f[2].via.str.size, EVENT_TYPE_MAX);
        return s_fail(err, errlen, "field 2 (type): unknown event type \"%s\"", clean);
    }
    memcpy(head->type, type, sizeof type);
    head->kind = event_type_of(type);
    assert(head->kind != EV_NONE);
    if (s_check_str(&f[3], 3, 0, EVENT_KEY_MAX, s_printable, head->case_key, err, errlen))
        return -1;
    if (s_check_str(&f[4], 4, 1, EVENT_STAGE_MAX, s_stage_char, head->stage, err, errlen))
        return -1;
    int64_t seq = 0;
    if (s_check_int(&f[5], 5, 1, &seq, err, errlen))
        return -1;
    head->seq = (uint64_t) seq;
    if (s_check_str(&f[6], 6, 0, EVENT_ID_MAX, s_id_char, head->cause, err, errlen))
        return -1;
    if (s_check_int(&f[7], 7, 0, &head->time_ms, err, errlen))
        return -1;
    if (f[8].type != MSGPACK_OBJECT_MAP)
        return s_fail(err, errlen, "field 8 (body): expected map, got %s", s_kind(f[8].type));
    const path_t body = {.up = NULL};
    return s_check_map(&f[8].via.map, 1, &body, err, errlen);
}

/* ---------------------------------------------------------------------
 * Decoded events
 */

/* event_type_of - see event_types.h */
event_type_t event_type_of(const char *name)
{
    if (!name || !*name)
        return EV_NONE;
    for (int t = EV_NONE + 1; t < EV_NTYPES; t++)
        if (strcmp(name, s_types[t].name) == 0)
            return (event_type_t) t;
    return EV_NONE;
}

/* event_type_name - see event_types.h */
const char *event_type_name(event_type_t t)
{
    return t > EV_NONE && t < EV_NTYPES ? s_types[t].name : "";
}

/* event_type_emitter - see event_types.h */
const char *event_type_emitter(event_type_t t)
{
    return t > EV_NONE && t < EV_NTYPES ? s_types[t].emitter : "";
}

/* event_type_required - see event_types.h */
const char *event_type_required(event_type_t t)
{
    return t > EV_NONE && t < EV_NTYPES ? s_types[t].required : "";
}

/* event_type_known - true if type is one of the registered event types */
bool event_type_known(const char *type)
{
    return event_type_of(type) != EV_NONE;
}

/* event_decode - strictly decode len bytes: bounded scan first so nothing
 * is allocated for what lies, then unpack and check every field */
static const msgpack_object *s_find(const event_t *self, const char *key);

/* s_unpack - self->data's objects into a zone of their own (pass 2's
 * input); 0, or -1 and err.
 * A zone sized to the event, not msgpack's 8 KiB default chunk: a stage
 * holds one decoded event per input in flight (validate: 128 checks), and
 * 8 KiB each was a megabyte of validate's heap under load (heaptrack).
 * Every item but the root is one msgpack_object in an array or map the
 * zone holds (strings stay in self->data), so one chunk of that size
 * (items counted by the scan) takes them all. */
static int s_unpack(event_t *self, size_t items, char *err, size_t errlen)
{
    assert(self && self->data && items > 0);
    msgpack_unpacked_init(&self->unpacked);
    self->unpacked.zone = msgpack_zone_new(EVENT_ZONE_SLACK + items * sizeof(msgpack_object));
    if (!self->unpacked.zone)
        return s_fail(err, errlen, "out of memory");
    size_t off = 0;
    msgpack_unpack_return ret = msgpack_unpack(self->data, self->len, &off, self->unpacked.zone, &self->unpacked.data);
    if (ret == MSGPACK_UNPACK_NOMEM_ERROR)
        return s_fail(err, errlen, "out of memory");
    if (ret == MSGPACK_UNPACK_CONTINUE)
        return s_fail(err, errlen, "truncated");
    if (ret != MSGPACK_UNPACK_SUCCESS && ret != MSGPACK_UNPACK_EXTRA_BYTES)
        return s_fail(err, errlen, "msgpack parse error");
    if (off != self->len)
        return s_fail(err, errlen, "trailing bytes after event: %zu", self->len - off);
    return 0;
}

/* s_check_required - the body carries every key its type requires
 * (event_types.h): consumers rely on them */
static int s_check_required(const event_t *self, char *err, size_t errlen)
{
    const char *keys = event_type_required(self->head.kind);
    for (const char *p = keys; *p;) {
        size_t n = strcspn(p, " ");
        char key[EVENT_KEY_MAX + 1];
        assert(n > 0 && n <= EVENT_KEY_MAX);
        memcpy(key, p, n);
        key[n] = '\0';
        if (!s_find(self, key))
            return s_fail(err, errlen, "a %s event must carry body key \"%s\"", self->head.type, key);
        p += n + (p[n] == ' ');
    }
    return 0;
}

event_t *event_decode(const void *data, size_t len, char *err, size_t errlen)
{
    if (err && errlen > 0)
        err[0] = '\0';
    if (len == 0 || !data) {
        s_fail(err, errlen, "empty input");
        return NULL;
    }
    if (len > EVENT_MAX_BYTES) {
        s_fail(err, errlen, "event of %zu bytes exceeds %u", len, EVENT_MAX_BYTES);
        return NULL;
    }
    s_scan_t sc = {
        .p = data, .len = len, .envelope = true, .root = "event", .root_depth = 0, .err = err, .errlen = errlen};
    size_t end = 0;
    if (s_scan(&sc, &end))
        return NULL;
    if (end != len) {
        s_fail(err, errlen, "trailing bytes after event: %zu", len - end);
        return NULL;
    }
    assert(sc.body_off > 0 && sc.body_off < len);
    size_t items = sc.items;

    event_t *self = calloc(1, sizeof *self);
    if (!self || !(self->data = malloc(len))) {
        free(self);
        s_fail(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(self->data, data, len);
    self->len = len;
    self->body_off = sc.body_off;
    if (s_unpack(self, items, err, errlen) != 0) {
        event_destroy(&self);
        return NULL;
    }
    const msgpack_object *root = &self->unpacked.data;
    if (s_check_event(root, &self->head, err, errlen)) {
        event_destroy(&self);
        return NULL;
    }
    self->body = &root->via.array.ptr[8].via.map;
    return self;
}

/* event_destroy - free the event, its zone and its copy of the bytes; NULL the pointer */
void event_destroy(event_t **self_p)
{
    assert(self_p);
    event_t *self = *self_p;
    if (!self)
        return;
    msgpack_unpacked_destroy(&self->unpacked);
    free(self->data);
    free(self);
    *self_p = NULL;
}

/* event_head - the envelope fields, decoded once */
const event_head_t *event_head(const event_t *self)
{
    assert(self);
    return &self->head;
}

/* s_find - the body value under key, or NULL; bodies are small, so a linear scan */
static const msgpack_object *s_find(const event_t *self, const char *key)
{
    assert(self && key);
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < self->body->size; i++) {
        const msgpack_object_str *k = &self->body->ptr[i].key.via.str;
        if (k->size == klen && memcmp(k->ptr, key, klen) == 0)
            return &self->body->ptr[i].val;
    }
    return NULL;
}

/* event_get_str - a str field, borrowed and not NUL-terminated */
int event_get_str(const event_t *self, const char *key, const char **s, size_t *len)
{
    const msgpack_object *o = s_find(self, key);
    if (!o || o->type != MSGPACK_OBJECT_STR)
        return -1;
    if (s)
        *s = o->via.str.ptr;
    if (len)
        *len = o->via.str.size;
    return 0;
}

/* event_get_map_str - a str value inside a map field of the body */
int event_get_map_str(const event_t *self, const char *map_key, const char *key, const char **s, size_t *len)
{
    const msgpack_object *m = s_find(self, map_key);
    if (!m || m->type != MSGPACK_OBJECT_MAP)
        return -1;
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object_kv *kv = &m->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == klen &&
            memcmp(kv->key.via.str.ptr, key, klen) == 0) {
            if (kv->val.type != MSGPACK_OBJECT_STR)
                return -1;
            if (s)
                *s = kv->val.via.str.ptr;
            if (len)
                *len = kv->val.via.str.size;
            return 0;
        }
    }
    return -1;
}

/* event_get_int - an int field (decoding guaranteed it fits int64) */
int event_get_int(const event_t *self, const char *key, int64_t *out)
{
    const msgpack_object *o = s_find(self, key);
    if (!o)
        return -1;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        if (out)
            *out = o->via.i64;
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return -1;
    assert(o->via.u64 <= INT64_MAX);
    if (out)
        *out = (int64_t) o->via.u64;
    return 0;
}

/* event_get_bin - a bin field, borrowed */
int event_get_bin(const event_t *self, const char *key, const void **data, size_t *len)
{
    const msgpack_object *o = s_find(self, key);
    if (!o || o->type != MSGPACK_OBJECT_BIN)
        return -1;
    if (data)
        *data = o->via.bin.ptr;
    if (len)
        *len = o->via.bin.size;
    return 0;
}

/* event_get_bool - a bool field */
int event_get_bool(const event_t *self, const char *key, bool *out)
{
    const msgpack_object *o = s_find(self, key);
    if (!o || o->type != MSGPACK_OBJECT_BOOLEAN)
        return -1;
    if (out)
        *out = o->via.boolean;
    return 0;
}

/* event_get_strbuf - see event.h */
const char *event_get_strbuf(const event_t *self, const char *key, char *buf, size_t buflen)
{
    const char *s;
    size_t len;
    if (buflen == 0)
        return "";
    if (event_get_str(self, key, &s, &len) != 0 || len >= buflen || memchr(s, '\0', len))
        len = 0;
    else
        memcpy(buf, s, len);
    buf[len] = '\0';
    return buf;
}

/* event_get_strdup - a C string copy of a str field; NULL if it holds a
 * NUL, which would silently cut it short */
char *event_get_strdup(const event_t *self, const char *key)
{
    const char *s;
    size_t len;
    if (event_get_str(self, key, &s, &len) || memchr(s, '\0', len))
        return NULL;
    char *copy = malloc(len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

/* event_body_count - number of keys in the body */
size_t event_body_count(const event_t *self)
{
    assert(self);
    return self->body->size;
}

/* event_body_raw - the body map exactly as it arrived (the last field,
 * so it runs to the end of the event) */
const void *event_body_raw(const event_t *self, size_t *len)
{
    assert(self && self->body_off < self->len);
    if (len)
        *len = self->len - self->body_off;
    return self->data + self->body_off;
}

/* ---------------------------------------------------------------------
 * Body builder
 */

/* event_body_new - an empty body */
event_body_t *event_body_new(void)
{
    event_body_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    msgpack_sbuffer_init(&self->sbuf);
    msgpack_packer_init(&self->pk, &self->sbuf, msgpack_sbuffer_write);
    return self;
}

/* event_body_destroy - free the body; NULL the pointer */
void event_body_destroy(event_body_t **self_p)
{
    assert(self_p);
    event_body_t *self = *self_p;
    if (!self)
        return;
    msgpack_sbuffer_destroy(&self->sbuf);
    free(self);
    *self_p = NULL;
}

/* s_body_key - start a pair if the body is still good and value_len more
 * bytes keep it within EVENT_MAX_BYTES; false to skip the value. A problem
 * is remembered, not returned, so callers can add fields without a check
 * per call and learn the outcome from event_encode. */
static bool s_body_key(event_body_t *self, const char *key, size_t value_len)
{
    assert(self && key);
    if (self->error[0])
        return false;
    size_t klen = strlen(key);
    if (self->sbuf.size + klen + value_len + 16 > EVENT_MAX_BYTES) {
        char clean[48];
        s_sanitize(clean, sizeof clean, key, klen, 40);
        s_fail(self->error, sizeof self->error, "body.%s: body would exceed %u bytes", clean, EVENT_MAX_BYTES);
        return false;
    }
    if (msgpack_pack_str_with_body(&self->pk, key, klen)) {
        s_fail(self->error, sizeof self->error, "out of memory");
        return false;
    }
    self->count++;
    return true;
}

/* s_body_done - note a failed pack (out of memory) after the key went in */
static void s_body_done(event_body_t *self, int rc)
{
    if (rc && !self->error[0])
        s_fail(self->error, sizeof self->error, "out of memory");
}

/* event_body_str - add a C string value */
void event_body_str(event_body_t *self, const char *key, const char *value)
{
    assert(value);
    event_body_strn(self, key, value, strlen(value));
}

/* event_body_strn - add a str value of len bytes (may hold any bytes) */
void event_body_strn(event_body_t *self, const char *key, const char *value, size_t len)
{
    assert(value || len == 0);
    if (s_body_key(self, key, len))
        s_body_done(self, msgpack_pack_str_with_body(&self->pk, len ? value : "", len));
}

/* event_body_int - add an int (money: integer minor units) */
void event_body_int(event_body_t *self, const char *key, int64_t value)
{
    if (s_body_key(self, key, 9))
        s_body_done(self, msgpack_pack_int64(&self->pk, value));
}

/* event_body_bool - add a bool */
void event_body_bool(event_body_t *self, const char *key, bool value)
{
    if (s_body_key(self, key, 1))
        s_body_done(self, value ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk));
}

/* event_body_bin - add raw bytes */
void event_body_bin(event_body_t *self, const char *key, const void *data, size_t len)
{
    assert(data || len == 0);
    if (s_body_key(self, key, len))
        s_body_done(self, msgpack_pack_bin_with_body(&self->pk, len ? data : "", len));
}

/* event_body_raw_value - add a value already encoded; it must be exactly
 * one complete msgpack object, else the pairs after it would shift */
void event_body_raw_value(event_body_t *self, const char *key, const void *msgpack, size_t len)
{
    assert(self && key && (msgpack || len == 0));
    if (self->error[0])
        return;
    char root[64];
    char clean[48];
    s_sanitize(clean, sizeof clean, key, strlen(key), 40);
    snprintf(root, sizeof root, "body.%s", clean);
    s_scan_t sc = {.p = msgpack,
                   .len = len,
                   .envelope = false,
                   .root = root,
                   .root_depth = 2,
                   .err = self->error,
                   .errlen = sizeof self->error};
    size_t end = 0;
    if (len > EVENT_MAX_BYTES) {
        s_fail(self->error, sizeof self->error, "%s: raw value of %zu bytes exceeds %u", root, len, EVENT_MAX_BYTES);
        return;
    }
    if (s_scan(&sc, &end))
        return;
    if (end != len) {
        s_fail(self->error, sizeof self->error, "%s: trailing bytes after raw value: %zu", root, len - end);
        return;
    }
    if (s_body_key(self, key, len))
        s_body_done(self, msgpack_sbuffer_write(&self->sbuf, msgpack, len));
}

/* s_pack_json - pack a jansson value; -1 on reals or beyond the limits */
static int s_pack_json(msgpack_packer *pk, const json_t *v, int depth)
{
    if (depth > EVENT_MAX_DEPTH)
        return -1;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (json_object_size(v) > EVENT_MAX_ELEMENTS)
            return -1;
        msgpack_pack_map(pk, (uint32_t) json_object_size(v));
        const char *k;
        json_t *val;
        json_object_foreach((json_t *) v, k, val)
        {
            size_t kl = strlen(k);
            if (kl == 0 || kl > EVENT_KEY_MAX)
                return -1;
            msgpack_pack_str_with_body(pk, k, kl);
            if (s_pack_json(pk, val, depth + 1))
                return -1;
        }
        return 0;
    }
    case JSON_ARRAY:
        if (json_array_size(v) > EVENT_MAX_ELEMENTS)
            return -1;
        msgpack_pack_array(pk, (uint32_t) json_array_size(v));
        for (size_t i = 0; i < json_array_size(v); i++)
            if (s_pack_json(pk, json_array_get(v, i), depth + 1))
                return -1;
        return 0;
    case JSON_STRING:
        msgpack_pack_str_with_body(pk, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, (int64_t) json_integer_value(v));
        return 0;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        return 0;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        return 0;
    case JSON_NULL:
        msgpack_pack_nil(pk);
        return 0;
    case JSON_REAL:
        return -1; /* no floats in events: money is integer minor units */
    }
    return -1;
}

/* event_body_json - see event.h */
int event_body_json(event_body_t *self, const char *key, const void *json)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = s_pack_json(&pk, json, 2);
    if (rc == 0)
        event_body_raw_value(self, key, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* event_body_size - see event.h */
size_t event_body_size(const event_body_t *self)
{
    assert(self);
    return self->sbuf.size;
}

/* event_body_copy - copy every field of a decoded event's body, e.g. to
 * carry a receipt's payload into the event that answers it */
void event_body_copy(event_body_t *self, const event_t *from)
{
    event_body_copy_except(self, from, NULL);
}

/* event_body_copy_except - see event.h */
void event_body_copy_except(event_body_t *self, const event_t *from, const char *skip)
{
    assert(self && from);
    size_t skiplen = skip ? strlen(skip) : 0;
    for (uint32_t i = 0; i < from->body->size && !self->error[0]; i++) {
        const msgpack_object_kv *kv = &from->body->ptr[i];
        if (skip && kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == skiplen &&
            memcmp(kv->key.via.str.ptr, skip, skiplen) == 0)
            continue;
        int rc = msgpack_pack_object(&self->pk, kv->key);
        rc |= msgpack_pack_object(&self->pk, kv->val);
        self->count++;
        s_body_done(self, rc);
        if (self->sbuf.size > EVENT_MAX_BYTES && !self->error[0])
            s_fail(self->error, sizeof self->error, "body would exceed %u bytes", EVENT_MAX_BYTES);
    }
}

/* event_body_copy_body - see event.h: the builder's pairs are whole msgpack
 * objects back to back, read one at a time (key, then value) */
void event_body_copy_body(event_body_t *self, const event_body_t *from, const char *skip)
{
    assert(self && from && self != from);
    if (from->error[0] && !self->error[0])
        snprintf(self->error, sizeof self->error, "%s", from->error);
    size_t skiplen = skip ? strlen(skip) : 0, off = 0;
    msgpack_unpacked key, val;
    msgpack_unpacked_init(&key);
    msgpack_unpacked_init(&val);
    for (size_t i = 0; i < from->count && !self->error[0]; i++) {
        if (msgpack_unpack_next(&key, from->sbuf.data, from->sbuf.size, &off) != MSGPACK_UNPACK_SUCCESS ||
            msgpack_unpack_next(&val, from->sbuf.data, from->sbuf.size, &off) != MSGPACK_UNPACK_SUCCESS) {
            s_fail(self->error, sizeof self->error, "body: cannot read back pair %zu", i);
            break;
        }
        const msgpack_object *k = &key.data;
        if (skip && k->type == MSGPACK_OBJECT_STR && k->via.str.size == skiplen &&
            memcmp(k->via.str.ptr, skip, skiplen) == 0)
            continue;
        int rc = msgpack_pack_object(&self->pk, *k) | msgpack_pack_object(&self->pk, val.data);
        self->count++;
        s_body_done(self, rc);
    }
    msgpack_unpacked_destroy(&key);
    msgpack_unpacked_destroy(&val);
}

/* event_encode - pack head + body, then decode the result so the encoder
 * can never produce what the decoder rejects */
/* s_seal_hex - the seal of an event: hex HMAC-SHA256(key, "payguard-seal-1"
 * NUL id NUL type NUL case_key NUL cause NUL <its body's packed pairs>) */
static void s_seal_hex(const unsigned char key[EVENT_SEAL_KEY_BYTES], const event_head_t *h, const void *pairs,
                       size_t n, char out[2 * EVENT_SEAL_BYTES + 1])
{
    const char *parts[5] = {"payguard-seal-1", h->id, h->type, h->case_key, h->cause};
    size_t total = n;
    for (int i = 0; i < 5; i++)
        total += strlen(parts[i]) + 1;
    unsigned char *buf = malloc(total ? total : 1), md[EVENT_SEAL_BYTES];
    assert(buf);
    size_t off = 0;
    for (int i = 0; i < 5; i++) {
        size_t l = strlen(parts[i]) + 1;
        memcpy(buf + off, parts[i], l);
        off += l;
    }
    if (n)
        memcpy(buf + off, pairs, n);
    unsigned mdlen = 0;
    unsigned char *ok = HMAC(EVP_sha256(), key, EVENT_SEAL_KEY_BYTES, buf, total, md, &mdlen);
    assert(ok && mdlen == EVENT_SEAL_BYTES);
    free(buf);
    hex_encode(md, EVENT_SEAL_BYTES, out);
}

/* the seal pair as it ends a sealed body: fixstr "seal", str8 of 64 */
#define SEAL_PAIR_BYTES (1 + 4 + 2 + 2 * EVENT_SEAL_BYTES)

/* event_seal_check - see event.h */
int event_seal_check(const event_t *ev, const unsigned char key[EVENT_SEAL_KEY_BYTES])
{
    size_t len;
    const unsigned char *raw = event_body_raw(ev, &len);
    size_t hdr = (raw[0] & 0xf0) == 0x80 ? 1 : raw[0] == 0xde ? 3 : raw[0] == 0xdf ? 5 : 0;
    if (!hdr || len < hdr + SEAL_PAIR_BYTES)
        return -1;
    const unsigned char *tail = raw + len - SEAL_PAIR_BYTES;
    if (memcmp(tail,
               "\xa4"
               "seal"
               "\xd9\x40",
               7) != 0)
        return -1;
    char want[2 * EVENT_SEAL_BYTES + 1];
    s_seal_hex(key, event_head(ev), raw + hdr, len - hdr - SEAL_PAIR_BYTES, want);
    return CRYPTO_memcmp(want, tail + 7, 2 * EVENT_SEAL_BYTES) == 0 ? 0 : -1;
}

static void *s_encode(const event_head_t *head, const event_body_t *body, const unsigned char *seal_key,
                      size_t *len_out, bool required, char *err, size_t errlen)
{
    assert(head && len_out);
    if (err && errlen > 0)
        err[0] = '\0';
    if (body && body->error[0]) {
        s_fail(err, errlen, "%s", body->error);
        return NULL;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = msgpack_pack_array(&pk, 9);
    rc |= msgpack_pack_uint64(&pk, EVENT_VERSION);
    rc |= msgpack_pack_str_with_body(&pk, head->id, strnlen(head->id, sizeof head->id));
    rc |= msgpack_pack_str_with_body(&pk, head->type, strnlen(head->type, sizeof head->type));
    rc |= msgpack_pack_str_with_body(&pk, head->case_key, strnlen(head->case_key, sizeof head->case_key));
    rc |= msgpack_pack_str_with_body(&pk, head->stage, strnlen(head->stage, sizeof head->stage));
    rc |= msgpack_pack_uint64(&pk, head->seq);
    rc |= msgpack_pack_str_with_body(&pk, head->cause, strnlen(head->cause, sizeof head->cause));
    rc |= msgpack_pack_int64(&pk, head->time_ms);
    rc |= msgpack_pack_map(&pk, (body ? body->count : 0) + (seal_key ? 1 : 0));
    if (body && body->sbuf.size > 0)
        rc |= msgpack_sbuffer_write(&sb, body->sbuf.data, body->sbuf.size);
    if (seal_key) { /* last, so that the checker finds the pairs it covers before it */
        char hex[2 * EVENT_SEAL_BYTES + 1];
        s_seal_hex(seal_key, head, body ? body->sbuf.data : NULL, body ? body->sbuf.size : 0, hex);
        rc |= msgpack_pack_str_with_body(&pk, EK_SEAL, 4);
        rc |= msgpack_pack_str(&pk, 2 * EVENT_SEAL_BYTES);
        rc |= msgpack_pack_str_body(&pk, hex, 2 * EVENT_SEAL_BYTES);
    }
    if (rc) {
        msgpack_sbuffer_destroy(&sb);
        s_fail(err, errlen, "out of memory");
        return NULL;
    }
    event_t *check = event_decode(sb.data, sb.size, err, errlen);
    if (!check || (required && s_check_required(check, err, errlen))) {
        event_destroy(&check);
        msgpack_sbuffer_destroy(&sb);
        return NULL;
    }
    event_destroy(&check);
    *len_out = sb.size;
    return msgpack_sbuffer_release(&sb);
}

/* event_encode - see event.h */
void *event_encode(const event_head_t *head, const event_body_t *body, size_t *len_out, char *err, size_t errlen)
{
    return s_encode(head, body, NULL, len_out, false, err, errlen);
}

/* event_emit_encode - see event.h */
void *event_emit_encode(const event_head_t *head, const event_body_t *body, size_t *len_out, char *err, size_t errlen)
{
    return s_encode(head, body, NULL, len_out, true, err, errlen);
}

/* event_seal_encode - see event.h */
void *event_seal_encode(const event_head_t *head, const event_body_t *body,
                        const unsigned char key[EVENT_SEAL_KEY_BYTES], size_t *len_out, char *err, size_t errlen)
{
    assert(key);
    return s_encode(head, body, key, len_out, true, err, errlen);
}

/* ---------------------------------------------------------------------
 * Ids
 */

/* event_derive_id - a pure function of (stage, cause, index), so a re-sent
 * event and everything it causes keep their ids on any worker */
void event_derive_id(char out[EVENT_ID_MAX + 1], const char *stage, const char *cause, unsigned index)
{
    assert(out && stage && cause);
    size_t slen = strlen(stage);
    size_t clen = strlen(cause);
    assert(slen >= 1 && slen <= EVENT_STAGE_MAX);
    assert(clen <= EVENT_ID_MAX);
    unsigned char input[EVENT_STAGE_MAX + 1 + EVENT_ID_MAX + 1 + 16];
    size_t n = 0;
    memcpy(input + n, stage, slen);
    n += slen;
    input[n++] = 0;
    memcpy(input + n, cause, clen);
    n += clen;
    input[n++] = 0;
    n += (size_t) snprintf((char *) input + n, sizeof input - n, "%u", index);

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(input, n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < 12) {
        log_error("event_derive_id: SHA-256 failed; libcrypto is broken");
        exit(EXIT_FAILURE);
    }
    char hex[25];
    hex_encode(md, 12, hex);
    snprintf(out, EVENT_ID_MAX + 1, "%s-%s", stage, hex);
}

/* event_mint_id - a fresh random id for an event with no cause (a receipt) */
void event_mint_id(char out[EVENT_ID_MAX + 1], const char *prefix)
{
    assert(out && prefix);
    assert(strlen(prefix) + 1 + 24 <= EVENT_ID_MAX);
    unsigned char rnd[12];
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        log_error("event_mint_id: RAND_bytes failed; no entropy");
        exit(EXIT_FAILURE);
    }
    char hex[25];
    hex_encode(rnd, sizeof rnd, hex);
    snprintf(out, EVENT_ID_MAX + 1, "%s_%s", prefix, hex);
}

/* ---------------------------------------------------------------------
 * JSON for operators
 */

/* s_b64 - prefix then the base64 of len bytes, NUL-terminated, malloc'd
 * (running out of memory aborts); the one encoder of bytes that are not text */
static char *s_b64(const char *prefix, const void *data, size_t len)
{
    size_t plen = strlen(prefix);
    char *b64 = malloc(plen + 4 * ((len + 2) / 3) + 1);
    if (!b64)
        abort();
    memcpy(b64, prefix, plen);
    int n = EVP_EncodeBlock((unsigned char *) b64 + plen, data, (int) len);
    assert(n >= 0 && b64[plen + (size_t) n] == '\0');
    return b64;
}

/* s_json_b64 - {"$bin":"<base64>"} for bytes that are not text */
static json_t *s_json_b64(const void *data, size_t len)
{
    char *b64 = s_b64("", data, len);
    json_t *obj = json_pack("{s:s}", "$bin", b64);
    free(b64);
    return obj;
}

/* s_json_value - a msgpack value as JSON, natural mapping; strs that are
 * not valid UTF-8 go out as {"$bin":...} since JSON cannot carry them */
static json_t *s_json_value(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return json_integer((json_int_t) o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t) o->via.i64);
    case MSGPACK_OBJECT_STR:
        if (jsonw_utf8_valid((const unsigned char *) o->via.str.ptr, o->via.str.size, true))
            return json_stringn(o->via.str.ptr, o->via.str.size);
        return s_json_b64(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN:
        if (jsonw_utf8_valid((const unsigned char *) o->via.bin.ptr, o->via.bin.size, false))
            return json_stringn(o->via.bin.ptr, o->via.bin.size);
        return s_json_b64(o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *arr = json_array();
        for (uint32_t i = 0; arr && i < o->via.array.size; i++)
            if (json_array_append_new(arr, s_json_value(&o->via.array.ptr[i]))) {
                json_decref(arr);
                return NULL;
            }
        return arr;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *obj = json_object();
        for (uint32_t i = 0; obj && i < o->via.map.size; i++) {
            const msgpack_object_str *k = &o->via.map.ptr[i].key.via.str;
            json_t *val = s_json_value(&o->via.map.ptr[i].val);
            int rc;
            if (jsonw_utf8_valid((const unsigned char *) k->ptr, k->size, true)) {
                rc = json_object_setn_new(obj, k->ptr, k->size, val);
            } else {
                /* not text: name it by its base64 so it still shows */
                char *b64 = s_b64("$b64:", k->ptr, k->size);
                rc = json_object_set_new(obj, b64, val);
                free(b64);
            }
            if (rc) {
                json_decref(obj);
                return NULL;
            }
        }
        return obj;
    }
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
    case MSGPACK_OBJECT_EXT:
        break;
    }
    assert(0 && "event_decode admits no floats or ext");
    return json_null();
}

/* s_jsonw_text - a str or bin as a JSON string, or {"$bin":...} when it is
 * not text: the same mapping as s_json_value, written directly */
static void s_jsonw_text(jsonw_t *w, const char *p, size_t n, bool allow_nul)
{
    if (jsonw_utf8_valid((const unsigned char *) p, n, allow_nul)) {
        jsonw_str(w, p, n);
        return;
    }
    char *b64 = s_b64("", p, n);
    jsonw_open(w, '{');
    jsonw_key(w, "$bin", 4);
    jsonw_str(w, b64, strlen(b64));
    jsonw_close(w, '}');
    free(b64);
}

/* s_jsonw_value - s_json_value's JSON, without building a tree: the same
 * text json_dumps(JSON_COMPACT) makes of it (tests/unit/test_event.c) */
static void s_jsonw_value(jsonw_t *w, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        jsonw_null(w);
        return;
    case MSGPACK_OBJECT_BOOLEAN:
        jsonw_bool(w, o->via.boolean);
        return;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        jsonw_uint(w, o->via.u64);
        return;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        jsonw_int(w, o->via.i64);
        return;
    case MSGPACK_OBJECT_STR:
        s_jsonw_text(w, o->via.str.ptr, o->via.str.size, true);
        return;
    case MSGPACK_OBJECT_BIN:
        s_jsonw_text(w, o->via.bin.ptr, o->via.bin.size, false);
        return;
    case MSGPACK_OBJECT_ARRAY:
        jsonw_open(w, '[');
        for (uint32_t i = 0; i < o->via.array.size; i++)
            s_jsonw_value(w, &o->via.array.ptr[i]);
        jsonw_close(w, ']');
        return;
    case MSGPACK_OBJECT_MAP:
        jsonw_open(w, '{');
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_str *k = &o->via.map.ptr[i].key.via.str;
            if (jsonw_utf8_valid((const unsigned char *) k->ptr, k->size, true)) {
                jsonw_key(w, k->ptr, k->size);
            } else { /* not text: named by its base64 so it still shows */
                char *b64 = s_b64("$b64:", k->ptr, k->size);
                jsonw_key(w, b64, strlen(b64));
                free(b64);
            }
            s_jsonw_value(w, &o->via.map.ptr[i].val);
        }
        jsonw_close(w, '}');
        return;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
    case MSGPACK_OBJECT_EXT:
        break;
    }
    assert(0 && "event_decode admits no floats or ext");
    jsonw_null(w);
}

/* event_body_to_json - see event.h: the body straight from msgpack */
void *event_body_to_json(const event_t *self)
{
    assert(self);
    return s_json_value(&self->unpacked.data.via.array.ptr[8]);
}

/* event_to_json - one compact line for operators, logs and the case index,
 * written directly (a tree per event cost the audit stage a quarter of its
 * CPU); never NULL */
_Static_assert(EVENT_MAX_DEPTH + 2 <= JSONW_MAX_DEPTH, "an event body and its $bin wrapper fit the writer");
char *event_to_json(const event_t *self)
{
    assert(self);
    const event_head_t *h = &self->head;
    jsonw_t w;
    jsonw_init(&w);
    jsonw_open(&w, '{');
    jsonw_kv_str(&w, "id", h->id);
    jsonw_kv_str(&w, "type", h->type);
    jsonw_kv_str(&w, "case_key", h->case_key);
    jsonw_kv_str(&w, "stage", h->stage);
    jsonw_key(&w, "seq", 3);
    jsonw_uint(&w, h->seq);
    jsonw_kv_str(&w, "cause", h->cause);
    jsonw_key(&w, "time_ms", 7);
    jsonw_int(&w, h->time_ms);
    jsonw_key(&w, "body", 4);
    s_jsonw_value(&w, &self->unpacked.data.via.array.ptr[8]);
    jsonw_close(&w, '}');
    return jsonw_take(&w);
}
