/* jsonw - compact JSON written straight into a growing buffer (see jsonw.h).
 *
 * The buffer doubles as it fills (from 256 bytes); a string is copied in runs
 * between the bytes that need an escape, so plain text costs one memcpy. */
#include "jsonw.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* s_room - make room for n more bytes and the NUL */
static void s_room(jsonw_t *w, size_t n)
{
    assert(w->len <= w->cap);
    if (w->len + n + 1 <= w->cap)
        return;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + n + 1)
        cap *= 2;
    char *buf = realloc(w->buf, cap);
    if (!buf)
        abort();
    w->buf = buf;
    w->cap = cap;
}

/* s_put - append n bytes */
static void s_put(jsonw_t *w, const char *s, size_t n)
{
    if (n == 0)
        return;
    s_room(w, n);
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

/* s_item - a value (or a key) begins here: the comma before it, if due */
static void s_item(jsonw_t *w)
{
    assert(w->depth >= 0 && w->depth <= JSONW_MAX_DEPTH);
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (w->has_item[w->depth])
        s_put(w, ",", 1);
    w->has_item[w->depth] = true;
}

/* s_quoted - s as a JSON string, escaped as jansson escapes */
static void s_quoted(jsonw_t *w, const char *s, size_t len)
{
    assert(s || len == 0);
    s_put(w, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        s_put(w, s + run, i - run); /* nothing when i == run */
        run = i + 1;
        char esc[8];
        const char *e = esc;
        switch (c) {
        case '"':
            e = "\\\"";
            break;
        case '\\':
            e = "\\\\";
            break;
        case '\b':
            e = "\\b";
            break;
        case '\f':
            e = "\\f";
            break;
        case '\n':
            e = "\\n";
            break;
        case '\r':
            e = "\\r";
            break;
        case '\t':
            e = "\\t";
            break;
        default:
            snprintf(esc, sizeof esc, "\\u%04X", c);
            break;
        }
        s_put(w, e, strlen(e));
    }
    if (run < len)
        s_put(w, s + run, len - run);
    s_put(w, "\"", 1);
}

void jsonw_init(jsonw_t *w)
{
    assert(w);
    memset(w, 0, sizeof *w);
}

void jsonw_open(jsonw_t *w, char kind)
{
    assert(kind == '{' || kind == '[');
    assert(w->depth < JSONW_MAX_DEPTH);
    s_item(w);
    s_put(w, &kind, 1);
    w->has_item[++w->depth] = false;
}

void jsonw_close(jsonw_t *w, char kind)
{
    assert(kind == '}' || kind == ']');
    assert(w->depth > 0 && !w->after_key);
    w->depth--;
    s_put(w, &kind, 1);
}

void jsonw_key(jsonw_t *w, const char *s, size_t len)
{
    assert(w->depth > 0 && !w->after_key);
    s_item(w);
    s_quoted(w, s, len);
    s_put(w, ":", 1);
    w->after_key = true;
}

void jsonw_str(jsonw_t *w, const char *s, size_t len)
{
    s_item(w);
    s_quoted(w, s, len);
}

void jsonw_kv_str(jsonw_t *w, const char *key, const char *value)
{
    assert(key && value);
    jsonw_key(w, key, strlen(key));
    jsonw_str(w, value, strlen(value));
}

void jsonw_int(jsonw_t *w, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%" PRId64, v);
    assert(n > 0 && (size_t) n < sizeof num);
    s_item(w);
    s_put(w, num, (size_t) n);
}

void jsonw_uint(jsonw_t *w, uint64_t v)
{
    jsonw_int(w, (int64_t) v); /* json_int_t is signed: the same wrap as jansson */
}

void jsonw_bool(jsonw_t *w, bool v)
{
    s_item(w);
    s_put(w, v ? "true" : "false", v ? 4 : 5);
}

void jsonw_null(jsonw_t *w)
{
    s_item(w);
    s_put(w, "null", 4);
}

char *jsonw_take(jsonw_t *w)
{
    assert(w->depth == 0);
    s_room(w, 0);
    w->buf[w->len] = '\0';
    char *text = w->buf;
    jsonw_init(w);
    return text;
}

void jsonw_reset(jsonw_t *w)
{
    free(w->buf);
    jsonw_init(w);
}

/* jsonw_utf8_valid - see jsonw.h: strict UTF-8 (no overlongs, surrogates
 * or > U+10FFFF), optionally without NUL, so a reader sees text */
bool jsonw_utf8_valid(const unsigned char *s, size_t n, bool allow_nul)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            if (c == 0 && !allow_nul)
                return false;
            i++;
            continue;
        }
        size_t need;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i - 1 < need)
            return false;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += need + 1;
    }
    return true;
}
