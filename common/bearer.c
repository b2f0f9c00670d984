/* bearer - a Bearer token known by its SHA-256 (see bearer.h).
 *
 * Why a token and not a signature for ingest's POST /fetched/stripe: an
 * event `payguard catch-up` hands in was read from Stripe's Events API over
 * an authenticated call, so no Stripe-Signature exists for it; what ingest
 * must know is that the request comes from the operator's own tool. Only
 * the hash is configured, as for the approvers' tokens.
 */
#include "bearer.h"
#include "hex.h"

#include <assert.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define BEARER_DEMO_SHA256 "acf8cb4f9ff3b96ba257263cb7e74b548b2f9a592bdb8873e00bb05852ecff9e"

/* bearer_parse - see bearer.h */
int bearer_parse(const char *key, const char *hex, bearer_t *out, char *err, size_t errlen)
{
    assert(key && out && err);
    memset(out, 0, sizeof *out);
    snprintf(out->key, sizeof out->key, "%s", key);
    if (!hex || !*hex)
        return 0;
    if (strlen(hex) != 64) {
        snprintf(err, errlen, "%s: 64 hex digits (the SHA-256 of the token), or \"\" for off", key);
        return -1;
    }
    size_t n;
    if (hex_decode(hex, 64, out->sha, sizeof out->sha, &n) != 0) {
        snprintf(err, errlen, "%s: not hex at character %zu", key, strspn(hex, "0123456789abcdefABCDEF") + 1);
        return -1;
    }
    out->enabled = true;
    assert(out->enabled);
    return 0;
}

/* bearer_check - see bearer.h */
int bearer_check(const bearer_t *self, const char *authorization, char *why, size_t whylen)
{
    assert(self && why && whylen > 0);
    why[0] = '\0';
    if (!self->enabled) {
        snprintf(why, whylen, "off (%s is empty)", self->key);
        return -1;
    }
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0) {
        snprintf(why, whylen, "no Bearer token (Authorization: Bearer <the token %s hashes>)", self->key);
        return -1;
    }
    const char *tok = authorization + 7;
    size_t len = strnlen(tok, BEARER_TOKEN_MAX + 1);
    assert(len <= BEARER_TOKEN_MAX + 1);
    if (len == 0 || len > BEARER_TOKEN_MAX) {
        snprintf(why, whylen, "the Bearer token is empty or too long (%s)", self->key);
        return -1;
    }
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *) tok, len, md);
    if (CRYPTO_memcmp(md, self->sha, sizeof md) != 0) {
        snprintf(why, whylen, "the Bearer token does not match %s", self->key);
        return -1;
    }
    return 0;
}

/* bearer_is_demo - see bearer.h */
bool bearer_is_demo(const char *hex)
{
    return hex && strcasecmp(hex, BEARER_DEMO_SHA256) == 0;
}
