/* trace - W3C traceparent: parse, format, new spans (see trace.h) */
#include "trace.h"

#include <assert.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "log.h"

/* s_lower_hex - n lower-case hex digits at s into out (n / 2 bytes) */
static bool s_lower_hex(const char *s, size_t n, unsigned char *out)
{
    assert(n % 2 == 0);
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    size_t got = 0;
    return hex_decode(s, n, out, n / 2, &got) == 0 && got == n / 2;
}

static bool s_zero(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

/* trace_parse - see trace.h */
int trace_parse(const char *s, size_t len, trace_t *out)
{
    assert(out);
    if (!s)
        return -1;
    while (len > 0 && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    unsigned char version = 0;
    if (len < TRACE_HEADER_LEN || !s_lower_hex(s, 2, &version) || version == 0xff)
        return -1;
    if (version == 0 ? len != TRACE_HEADER_LEN : (len > TRACE_HEADER_LEN && s[TRACE_HEADER_LEN] != '-'))
        return -1;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-')
        return -1;
    trace_t t;
    if (!s_lower_hex(s + 3, 32, t.trace_id) || !s_lower_hex(s + 36, 16, t.span_id) || !s_lower_hex(s + 53, 2, &t.flags))
        return -1;
    if (s_zero(t.trace_id, sizeof t.trace_id) || s_zero(t.span_id, sizeof t.span_id))
        return -1;
    *out = t;
    return 0;
}

/* trace_format - see trace.h */
void trace_format(const trace_t *t, char out[TRACE_HEADER_LEN + 1])
{
    assert(t && out);
    char tid[33], sid[17], fl[3];
    hex_encode(t->trace_id, sizeof t->trace_id, tid);
    hex_encode(t->span_id, sizeof t->span_id, sid);
    hex_encode(&t->flags, 1, fl);
    snprintf(out, TRACE_HEADER_LEN + 1, "00-%s-%s-%s", tid, sid, fl);
    assert(strlen(out) == TRACE_HEADER_LEN);
}

/* s_random - n random bytes, never all zero */
static void s_random(unsigned char *out, size_t n)
{
    do {
        if (RAND_bytes(out, (int) n) != 1) {
            log_error("trace: RAND_bytes failed; no entropy");
            exit(EXIT_FAILURE);
        }
    } while (s_zero(out, n));
}

/* trace_mint - see trace.h */
void trace_mint(trace_t *out)
{
    assert(out);
    s_random(out->trace_id, sizeof out->trace_id);
    s_random(out->span_id, sizeof out->span_id);
    out->flags = TRACE_FLAG_SAMPLED;
}

/* trace_child - see trace.h */
void trace_child(const trace_t *parent, trace_t *out)
{
    assert(parent && out);
    memcpy(out->trace_id, parent->trace_id, sizeof out->trace_id);
    out->flags = parent->flags;
    s_random(out->span_id, sizeof out->span_id);
}

/* trace_derive - see trace.h (one digest of one buffer, as event_derive_id) */
void trace_derive(const trace_t *parent, const char *stage, const char *id, trace_t *out)
{
    assert(parent && stage && id && out);
    static const char tag[] = "payguard-span-1";
    size_t slen = strlen(stage), ilen = strlen(id);
    unsigned char input[sizeof tag + 2 * 256];
    assert(slen < 256 && ilen < 256);
    memcpy(input, tag, sizeof tag); /* with its NUL */
    memcpy(input + sizeof tag, stage, slen + 1);
    memcpy(input + sizeof tag + slen + 1, id, ilen + 1);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(input, sizeof tag + slen + 1 + ilen + 1, md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen < TRACE_SPAN_BYTES) {
        log_error("trace: SHA-256 failed; libcrypto is broken");
        exit(EXIT_FAILURE);
    }
    memcpy(out->trace_id, parent->trace_id, sizeof out->trace_id);
    out->flags = parent->flags;
    memcpy(out->span_id, md, TRACE_SPAN_BYTES);
    if (s_zero(out->span_id, TRACE_SPAN_BYTES)) /* one chance in 2^64; the format forbids it */
        out->span_id[TRACE_SPAN_BYTES - 1] = 1;
}

void trace_id_hex(const trace_t *t, char out[2 * TRACE_ID_BYTES + 1])
{
    hex_encode(t->trace_id, TRACE_ID_BYTES, out);
}

void trace_span_hex(const unsigned char span[TRACE_SPAN_BYTES], char out[2 * TRACE_SPAN_BYTES + 1])
{
    hex_encode(span, TRACE_SPAN_BYTES, out);
}
