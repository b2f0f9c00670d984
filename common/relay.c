/* relay - the person's address passed on, and its seal (see relay.h) */
#include "relay.h"
#include "hex.h"

#include <assert.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* relay_addr_ok - see relay.h */
bool relay_addr_ok(const char *addr)
{
    if (!addr)
        return false;
    size_t n = strlen(addr);
    if (n == 0 || n >= RELAY_ADDR_MAX)
        return false;
    for (const char *p = addr; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr(".:%-_", *p)))
            return false;
    return true;
}

/* s_part - the part of value from p up to ';' or the end into out
 * (at most outlen - 1 bytes); the position after it, NULL if too long */
static const char *s_part(const char *p, char *out, size_t outlen)
{
    size_t n = strcspn(p, ";");
    if (n >= outlen)
        return NULL;
    memcpy(out, p, n);
    out[n] = '\0';
    return p + n;
}

/* relay_parse - see relay.h */
int relay_parse(const char *value, relay_t *out)
{
    assert(out);
    memset(out, 0, sizeof *out);
    if (!value)
        return -1;
    const char *p = s_part(value, out->client, sizeof out->client);
    if (!p || !relay_addr_ok(out->client))
        return -1;
    while (*p == ';') {
        p++;
        char *dst = NULL;
        size_t dstlen = 0;
        if (strncmp(p, "via=", 4) == 0 && !out->via[0])
            dst = out->via, dstlen = sizeof out->via;
        else if (strncmp(p, "seal=", 5) == 0 && !out->seal[0])
            dst = out->seal, dstlen = sizeof out->seal;
        if (!dst)
            return -1;
        p = s_part(strchr(p, '=') + 1, dst, dstlen);
        if (!p || !*dst)
            return -1;
    }
    if (out->via[0] && !relay_addr_ok(out->via))
        return -1;
    if (out->seal[0] &&
        (strlen(out->seal) != RELAY_SEAL_HEX || strspn(out->seal, "0123456789abcdef") != RELAY_SEAL_HEX))
        return -1;
    return 0;
}

/* relay_format - see relay.h */
void relay_format(const relay_t *r, char out[RELAY_VALUE_MAX])
{
    assert(r && relay_addr_ok(r->client) && (!r->via[0] || relay_addr_ok(r->via)));
    int n = snprintf(out, RELAY_VALUE_MAX, "%s%s%s%s%s", r->client, r->via[0] ? ";via=" : "", r->via,
                     r->seal[0] ? ";seal=" : "", r->seal);
    assert(n > 0 && n < RELAY_VALUE_MAX);
}

/* relay_seal - see relay.h: HMAC-SHA256 over "<client>\n<authorization>" */
void relay_seal(const unsigned char key[SEALKEY_BYTES], const char *client, const char *authorization,
                char out[RELAY_SEAL_HEX + 1])
{
    assert(key && client && out);
    if (!authorization)
        authorization = "";
    size_t cl = strlen(client), al = strlen(authorization);
    unsigned char *msg = malloc(cl + 1 + al);
    assert(msg);
    memcpy(msg, client, cl);
    msg[cl] = '\n';
    memcpy(msg + cl + 1, authorization, al);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    unsigned char *ok = HMAC(EVP_sha256(), key, SEALKEY_BYTES, msg, cl + 1 + al, mac, &maclen);
    free(msg);
    assert(ok && maclen * 2 == RELAY_SEAL_HEX);
    hex_encode(mac, maclen, out);
}

/* relay_check - see relay.h */
bool relay_check(const unsigned char key[SEALKEY_BYTES], const relay_t *r, const char *authorization)
{
    assert(key && r);
    if (!r->seal[0] || !relay_addr_ok(r->client))
        return false;
    char want[RELAY_SEAL_HEX + 1];
    relay_seal(key, r->client, authorization, want);
    return CRYPTO_memcmp(want, r->seal, RELAY_SEAL_HEX) == 0;
}
