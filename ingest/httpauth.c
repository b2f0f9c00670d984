/* httpauth - HTTP basic authentication of /webhooks/adyen (see httpauth.h).
 *
 * Why here and not in validate: basic auth is the HTTP layer's check, as
 * Adyen uses it (a wrong password gets 401 and Adyen retries later), so
 * ingest answers it before recording anything; the refusal goes on the
 * trail and is charged to the source's budget of rejected requests like
 * any 4xx (ingest/main.c), which bounds guessing. The password is never
 * stored: only its SHA-256, from the configuration. The comparison hashes
 * what the request sends and compares 32-byte digests with CRYPTO_memcmp,
 * the user name too, and checks both before deciding.
 */
#include "httpauth.h"
#include "hex.h"

#include <assert.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* httpauth_init - see httpauth.h */
int httpauth_init(httpauth_t *self, const char *user, const char *pass_sha256_hex, char *err, size_t errlen)
{
    assert(self && err && errlen > 0);
    assert(HTTPAUTH_USER_MAX < HTTPAUTH_HEADER_MAX);
    memset(self, 0, sizeof *self);
    user = user ? user : "";
    pass_sha256_hex = pass_sha256_hex ? pass_sha256_hex : "";
    if (!*user && !*pass_sha256_hex)
        return 0;
    if (!*user || !*pass_sha256_hex) {
        snprintf(err, errlen, "basic auth needs both a user and the password's SHA-256 (or neither)");
        return -1;
    }
    size_t n = strlen(user);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char) user[i] < 0x20 || user[i] == 0x7f || user[i] == ':') {
            snprintf(err, errlen, "the basic auth user may not hold ':' or control characters");
            return -1;
        }
    if (n > HTTPAUTH_USER_MAX || strlen(pass_sha256_hex) != 64) {
        snprintf(err, errlen, "the basic auth user is 1..%d bytes and the password's SHA-256 64 hex digits",
                 HTTPAUTH_USER_MAX);
        return -1;
    }
    size_t len;
    if (hex_decode(pass_sha256_hex, 64, self->pass_sha, sizeof self->pass_sha, &len) != 0) {
        snprintf(err, errlen, "the password's SHA-256 is not 64 hex digits");
        OPENSSL_cleanse(self, sizeof *self);
        return -1;
    }
    SHA256((const unsigned char *) user, n, self->user_sha);
    self->enabled = true;
    return 0;
}

/* s_b64 - strict standard base64 (padding required, RFC 7617 uses it) of
 * at most HTTPAUTH_HEADER_MAX characters into out; the decoded length or -1 */
static int s_b64(const char *in, size_t n, unsigned char *out, size_t cap)
{
    assert(in && out);
    if (n == 0 || n % 4 || n > HTTPAUTH_HEADER_MAX || n / 4 * 3 > cap)
        return -1;
    size_t pad = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
        if (c == '=' && i >= n - 2)
            pad++;
        else if (!alpha || pad)
            return -1;
    }
    int got = EVP_DecodeBlock(out, (const unsigned char *) in, (int) n);
    assert(got <= (int) cap);
    return got < (int) pad ? -1 : got - (int) pad;
}

/* httpauth_parse - see httpauth.h */
int httpauth_parse(const char *header, char user[HTTPAUTH_USER_MAX + 1], char pass[HTTPAUTH_PASS_MAX + 1])
{
    assert(user && pass);
    assert(HTTPAUTH_HEADER_MAX / 4 * 3 <= HTTPAUTH_HEADER_MAX);
    unsigned char raw[HTTPAUTH_HEADER_MAX];
    user[0] = pass[0] = '\0';
    if (!header || strncasecmp(header, "Basic ", 6) != 0)
        return -1;
    const char *p = header + 6;
    while (*p == ' ')
        p++;
    size_t n = strnlen(p, HTTPAUTH_HEADER_MAX + 1);
    while (n && p[n - 1] == ' ')
        n--;
    int len = s_b64(p, n, raw, sizeof raw);
    const unsigned char *colon = len > 0 ? memchr(raw, ':', (size_t) len) : NULL;
    int rc = -1;
    if (colon) {
        size_t ul = (size_t) (colon - raw), pl = (size_t) len - ul - 1;
        if (ul <= HTTPAUTH_USER_MAX && pl <= HTTPAUTH_PASS_MAX && !memchr(raw, '\0', (size_t) len)) {
            memcpy(user, raw, ul);
            user[ul] = '\0';
            memcpy(pass, colon + 1, pl);
            pass[pl] = '\0';
            rc = 0;
        }
    }
    OPENSSL_cleanse(raw, sizeof raw);
    return rc;
}

/* httpauth_check - see httpauth.h */
bool httpauth_check(const httpauth_t *self, const char *header)
{
    assert(self);
    if (!self->enabled)
        return true;
    char user[HTTPAUTH_USER_MAX + 1], pass[HTTPAUTH_PASS_MAX + 1];
    unsigned char us[32], ps[32];
    bool parsed = httpauth_parse(header, user, pass) == 0;
    assert(strlen(user) <= HTTPAUTH_USER_MAX && strlen(pass) <= HTTPAUTH_PASS_MAX);
    SHA256((const unsigned char *) user, strlen(user), us);
    SHA256((const unsigned char *) pass, strlen(pass), ps);
    int du = CRYPTO_memcmp(us, self->user_sha, sizeof us), dp = CRYPTO_memcmp(ps, self->pass_sha, sizeof ps);
    OPENSSL_cleanse(pass, sizeof pass);
    OPENSSL_cleanse(ps, sizeof ps);
    return parsed && (du | dp) == 0;
}
