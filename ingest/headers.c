/* headers - judge and merge a request's header fields (see headers.h) */
#include "headers.h"
#include "hex.h"

#include <assert.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* s_named - is f the field name (lower-case), compared case-insensitively? */
static bool s_named(const header_field_t *f, const char *name)
{
    return f->name_len == strlen(name) && strncasecmp(f->name, name, f->name_len) == 0;
}

/* s_token - an HTTP field name: one or more tchar (RFC 9110 §5.6.2) */
static bool s_token(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        if (!c || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    strchr("!#$%&'*+-.^_`|~", c)))
            return false;
    }
    return n > 0;
}

/* headers_init - see headers.h */
void headers_init(headers_t *self)
{
    assert(self);
    memset(self, 0, sizeof *self);
}

/* headers_add - see headers.h: every field counts toward the bounds, the
 * first HEADERS_MAX_FIELDS are kept (a request past that is refused) */
void headers_add(headers_t *self, const char *name, const char *value)
{
    assert(self && name);
    size_t nlen = strlen(name), vlen = value ? strlen(value) : 0;
    self->seen++;
    self->bytes += nlen + vlen;
    if (nlen > self->longest_name)
        self->longest_name = nlen;
    if (!s_token(name, nlen))
        self->bad_name = true;
    if (self->count == HEADERS_MAX_FIELDS)
        return;
    self->field[self->count++] = (header_field_t){name, nlen, value ? value : "", vlen};
    assert(self->count <= HEADERS_MAX_FIELDS);
}

/* headers_verdict - see headers.h */
unsigned headers_verdict(const headers_t *self, const char **why)
{
    assert(self && why);
    *why = NULL;
    if (self->seen > HEADERS_MAX_FIELDS)
        *why = "more than 64 header fields";
    else if (self->bytes > HEADERS_MAX_BYTES)
        *why = "header field names and values over 8192 bytes in all";
    else if (self->longest_name > HEADERS_MAX_NAME)
        *why = "a header field name over 128 bytes";
    if (*why)
        return 431;
    if (self->bad_name) {
        *why = "a header field name that is not an HTTP token (empty, or with a space or separator)";
        return 400;
    }
    /* framing (RFC 9112 §6.3): one body length, said one way */
    const header_field_t *length = NULL;
    bool differ = false, coding = false;
    for (size_t i = 0; i < self->count; i++) {
        const header_field_t *f = &self->field[i];
        if (s_named(f, "content-length")) {
            differ |= length && (length->value_len != f->value_len || memcmp(length->value, f->value, f->value_len));
            length = length ? length : f;
        }
        coding |= s_named(f, "transfer-encoding");
    }
    if (differ || (length && coding)) {
        *why = differ ? "Content-Length fields that disagree" : "both Content-Length and Transfer-Encoding";
        return 400;
    }
    return 0;
}

/* s_first_of - is field i the first of its name (case-insensitive)? */
static bool s_first_of(const headers_t *self, size_t i)
{
    const header_field_t *f = &self->field[i];
    for (size_t j = 0; j < i; j++)
        if (self->field[j].name_len == f->name_len && strncasecmp(self->field[j].name, f->name, f->name_len) == 0)
            return false;
    return true;
}

/* headers_distinct - see headers.h */
size_t headers_distinct(const headers_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < self->count; i++)
        n += s_first_of(self, i);
    assert(n <= self->count);
    return n;
}

/* s_listed - is name (lower-case, len bytes) one of list? */
static bool s_listed(const char *name, size_t len, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (len == strlen(list[i]) && memcmp(name, list[i], len) == 0)
            return true;
    return false;
}

/* headers_is_credential - see headers.h */
bool headers_is_credential(const char *name, size_t len)
{
    static const char *const secret[] = {"authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token"};
    return s_listed(name, len, secret, sizeof secret / sizeof secret[0]);
}

/* headers_is_kept - see headers.h: HTTP's own framing and negotiation,
 * what proxies add, trace ids, and what validate reads to check a
 * signature and a source (signatures are MACs of the body, not secrets) */
bool headers_is_kept(const char *name, size_t len)
{
    static const char *const kept[] = {"host",
                                       "content-type",
                                       "content-length",
                                       "content-encoding",
                                       "transfer-encoding",
                                       "expect",
                                       "connection",
                                       "te",
                                       "accept",
                                       "accept-encoding",
                                       "accept-charset",
                                       "accept-language",
                                       "user-agent",
                                       "date",
                                       "cache-control",
                                       "pragma",
                                       "via",
                                       "forwarded",
                                       "x-forwarded-for",
                                       "x-forwarded-proto",
                                       "x-forwarded-host",
                                       "x-forwarded-port",
                                       "x-real-ip",
                                       "traceparent",
                                       "tracestate",
                                       "x-request-id",
                                       "stripe-signature",
                                       "webhook-id",
                                       "webhook-timestamp",
                                       "webhook-signature"};
    return s_listed(name, len, kept, sizeof kept / sizeof kept[0]);
}

/* headers_hash - see headers.h */
void headers_hash(const unsigned char key[HEADERS_KEY_BYTES], const char *value, size_t len, char out[HEADERS_HASH_MAX])
{
    assert(key && out && (value || len == 0));
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    unsigned char *ok =
        HMAC(EVP_sha256(), key, HEADERS_KEY_BYTES, (const unsigned char *) (value ? value : ""), len, mac, &maclen);
    assert(ok && maclen >= HEADERS_HASH_HEX / 2);
    size_t o = strlen(HEADERS_HASH_PREFIX);
    memcpy(out, HEADERS_HASH_PREFIX, o);
    hex_encode(mac, HEADERS_HASH_HEX / 2, out + o);
    assert(o + HEADERS_HASH_HEX < HEADERS_HASH_MAX);
}

/* s_merged - the values of every field named as field i from i on, in the
 * order received, joined with ", " into out (at most HEADERS_MERGED_MAX
 * bytes: the fields' bytes are bounded); the length */
static size_t s_merged(const headers_t *self, size_t i, char *out)
{
    const header_field_t *f = &self->field[i];
    size_t n = 0;
    for (size_t j = i; j < self->count; j++) {
        const header_field_t *g = &self->field[j];
        if (g->name_len != f->name_len || strncasecmp(g->name, f->name, f->name_len) != 0)
            continue;
        assert(n + 2 + g->value_len <= HEADERS_MERGED_MAX);
        if (j != i) {
            memcpy(out + n, ", ", 2);
            n += 2;
        }
        memcpy(out + n, g->value, g->value_len);
        n += g->value_len;
    }
    return n;
}

/* s_pack_merged - field i's lower-case name and its merged value: as sent
 * for a kept header, "[redacted]" for a credential, else its keyed hash */
static void s_pack_merged(const headers_t *self, size_t i, const unsigned char *key, msgpack_packer *pk)
{
    const header_field_t *f = &self->field[i];
    char lower[HEADERS_MAX_NAME];
    assert(f->name_len <= sizeof lower);
    for (size_t k = 0; k < f->name_len; k++)
        lower[k] = (char) ((f->name[k] >= 'A' && f->name[k] <= 'Z') ? f->name[k] + 32 : f->name[k]);
    msgpack_pack_str_with_body(pk, lower, f->name_len);
    if (headers_is_credential(lower, f->name_len)) { /* credentials never reach a journal or the trail */
        msgpack_pack_str_with_body(pk, HEADERS_REDACTED, strlen(HEADERS_REDACTED));
        return;
    }
    char *merged = malloc(HEADERS_MERGED_MAX);
    assert(merged);
    size_t n = s_merged(self, i, merged);
    if (headers_is_kept(lower, f->name_len)) {
        msgpack_pack_str_with_body(pk, merged, n);
    } else { /* nobody vouched for it: it may be a credential under another name */
        char hash[HEADERS_HASH_MAX];
        headers_hash(key, merged, n, hash);
        msgpack_pack_str_with_body(pk, hash, strlen(hash));
    }
    free(merged);
}

/* headers_pack - see headers.h */
void headers_pack(const headers_t *self, const unsigned char key[HEADERS_KEY_BYTES], msgpack_packer *pk)
{
    const char *why;
    assert(key && headers_verdict(self, &why) == 0);
    msgpack_pack_map(pk, headers_distinct(self));
    for (size_t i = 0; i < self->count; i++)
        if (s_first_of(self, i))
            s_pack_merged(self, i, key, pk);
}
