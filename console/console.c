/* console - routing, assets and CSRF of the ops console (see console.h) */
#include "console.h"

#include <assert.h>
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpc.h"

#define CONSOLE_ID_MAX 200

/* s_take_id - the id segment at p (up to '/' or the end) into id; its end
 * in *rest; -1 if empty, too long or holding a control character */
static int s_take_id(const char *p, char id[CONSOLE_ID_MAX + 1], const char **rest)
{
    size_t n = strcspn(p, "/");
    if (n == 0 || n > CONSOLE_ID_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char) p[i] < 0x20 || p[i] == 0x7f)
            return -1;
    memcpy(id, p, n);
    id[n] = '\0';
    *rest = p + n;
    return 0;
}

/* s_set - fill a route: backend, path = prefix + encoded id + suffix */
static int s_set(console_route_t *out, console_backend_t b, const char *prefix, const char *id, const char *suffix)
{
    char *enc = id ? httpc_escape(id) : NULL;
    if (id && !enc)
        return -1;
    int n = snprintf(out->path, sizeof out->path, "%s%s%s", prefix, enc ? enc : "", suffix);
    free(enc);
    if (n < 0 || (size_t) n >= sizeof out->path)
        return -1;
    out->backend = b;
    return 0;
}

/* s_no - an unroutable request: status and why */
static int s_no(int status, char *why, size_t whylen, const char *text)
{
    snprintf(why, whylen, "%s", text);
    return status;
}

/* console_api_route - see console.h */
int console_api_route(const char *method, const char *path, console_route_t *out, char *why, size_t whylen)
{
    assert(method && path && out);
    memset(out, 0, sizeof *out);
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    char id[CONSOLE_ID_MAX + 1];
    const char *rest;
    if (strncmp(path, "/api/", 5) != 0)
        return s_no(404, why, whylen, "not an API path");
    const char *p = path + 5;
    if (strcmp(p, "session") == 0) {
        if (!get)
            return s_no(405, why, whylen, "GET /api/session");
        out->session = true;
        return s_set(out, CONSOLE_APPROVE, "/whoami", NULL, "") ? s_no(404, why, whylen, "path too long") : 0;
    }
    if (strcmp(p, "approvals") == 0 || strcmp(p, "cases") == 0) {
        if (!get)
            return s_no(405, why, whylen, "lists are read with GET");
        return s_set(out, *p == 'a' ? CONSOLE_APPROVE : CONSOLE_AUDIT, *p == 'a' ? "/approvals" : "/cases", NULL, "")
                   ? s_no(404, why, whylen, "path too long")
                   : 0;
    }
    if (strcmp(p, "audit/verify") == 0) {
        if (!get && !post)
            return s_no(405, why, whylen, "GET or POST /api/audit/verify");
        return s_set(out, CONSOLE_AUDIT, "/audit/verify", NULL, "") ? s_no(404, why, whylen, "path too long") : 0;
    }
    if (strncmp(p, "approvals/", 10) == 0 && s_take_id(p + 10, id, &rest) == 0) {
        if (*rest == '\0') {
            if (!get)
                return s_no(405, why, whylen, "GET /api/approvals/{case_id}");
            return s_set(out, CONSOLE_APPROVE, "/approvals/", id, "") ? s_no(404, why, whylen, "path too long") : 0;
        }
        if (strcmp(rest, "/decisions") == 0) {
            if (!post)
                return s_no(405, why, whylen, "POST /api/approvals/{case_id}/decisions");
            return s_set(out, CONSOLE_APPROVE, "/approvals/", id, "/decisions")
                       ? s_no(404, why, whylen, "path too long")
                       : 0;
        }
    }
    if (strncmp(p, "reviews/", 8) == 0 && s_take_id(p + 8, id, &rest) == 0 &&
        (strcmp(rest, "/retry") == 0 || strcmp(rest, "/close") == 0)) {
        if (!post)
            return s_no(405, why, whylen, "POST /api/reviews/{case_id}/retry or /close");
        return s_set(out, CONSOLE_APPROVE, "/reviews/", id, rest) ? s_no(404, why, whylen, "path too long") : 0;
    }
    if (strncmp(p, "cases/", 6) == 0 && s_take_id(p + 6, id, &rest) == 0 && *rest == '\0') {
        if (!get)
            return s_no(405, why, whylen, "GET /api/cases/{case_id}");
        return s_set(out, CONSOLE_AUDIT, "/cases/", id, "") ? s_no(404, why, whylen, "path too long") : 0;
    }
    return s_no(404, why, whylen, "unknown API path");
}

/* console_query_key_ok - see console.h */
bool console_query_key_ok(const char *key)
{
    static const char *const keys[] = {"state", "status", "kind", "tier", "max_age_s", "limit", "q"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(key, keys[i]) == 0)
            return true;
    return false;
}

/* console_page - see console.h */
bool console_page(const char *path, char name[CONSOLE_ASSET_NAME_MAX])
{
    if (strcmp(path, "/") == 0 || strcmp(path, "/signin") == 0 || strcmp(path, "/ops") == 0 ||
        strcmp(path, "/audit") == 0 || strcmp(path, "/pipeline") == 0 ||
        (strncmp(path, "/case/", 6) == 0 && path[6] && !strchr(path + 6, '/'))) {
        snprintf(name, CONSOLE_ASSET_NAME_MAX, "index.html");
        return true;
    }
    if (strncmp(path, "/static/", 8) != 0)
        return false;
    const char *n = path + 8;
    size_t len = strlen(n);
    if (len == 0 || len >= CONSOLE_ASSET_NAME_MAX || n[0] == '.' || strstr(n, ".."))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') || n[i] == '.' || n[i] == '_' ||
              n[i] == '-'))
            return false;
    if (!console_content_type(n))
        return false;
    snprintf(name, CONSOLE_ASSET_NAME_MAX, "%s", n);
    return true;
}

/* console_content_type - see console.h */
const char *console_content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {{".html", "text/html; charset=utf-8"},
                 {".js", "text/javascript; charset=utf-8"},
                 {".css", "text/css; charset=utf-8"},
                 {".svg", "image/svg+xml"},
                 {".png", "image/png"},
                 {".ico", "image/x-icon"}};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return NULL;
}

/* console_csrf - see console.h */
void console_csrf(const unsigned char secret[CONSOLE_SECRET_BYTES], const char *authorization,
                  char out[CONSOLE_CSRF_HEX + 1])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    const char *a = authorization ? authorization : "";
    unsigned char *ok =
        HMAC(EVP_sha256(), secret, CONSOLE_SECRET_BYTES, (const unsigned char *) a, strlen(a), mac, &len);
    assert(ok && len == CONSOLE_CSRF_HEX / 2);
    (void) ok;
    for (unsigned i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
    out[CONSOLE_CSRF_HEX] = '\0';
}

/* console_csrf_ok - see console.h */
bool console_csrf_ok(const unsigned char secret[CONSOLE_SECRET_BYTES], const char *authorization, const char *token)
{
    if (!token || strlen(token) != CONSOLE_CSRF_HEX)
        return false;
    char want[CONSOLE_CSRF_HEX + 1];
    console_csrf(secret, authorization, want);
    return CRYPTO_memcmp(want, token, CONSOLE_CSRF_HEX) == 0;
}

/* console_bearer - see console.h */
const char *console_bearer(const char *authorization)
{
    if (!authorization || strncmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    const char *t = authorization + 7;
    size_t n = 0;
    while (n <= CONSOLE_TOKEN_MAX && t[n] && (isalnum((unsigned char) t[n]) || strchr("-._~+/", t[n])))
        n++;
    size_t eq = n;
    while (eq <= CONSOLE_TOKEN_MAX && t[eq] == '=')
        eq++;
    if (n == 0 || t[eq] || eq > CONSOLE_TOKEN_MAX)
        return NULL;
    assert(eq <= CONSOLE_TOKEN_MAX && t[eq] == '\0');
    return t;
}

/* console_same_origin - see console.h */
bool console_same_origin(const char *origin, const char *host, const char *sec_fetch_site)
{
    if (sec_fetch_site && strcmp(sec_fetch_site, "same-origin") != 0 && strcmp(sec_fetch_site, "none") != 0)
        return false;
    if (!origin)
        return true;
    if (!host || !*host)
        return false;
    const char *rest = strncmp(origin, "http://", 7) == 0    ? origin + 7
                       : strncmp(origin, "https://", 8) == 0 ? origin + 8
                                                             : NULL;
    return rest && strcmp(rest, host) == 0;
}

/* s_known_at - the index of token's hash in k (its hash in h), or k->n */
static size_t s_known_at(const console_known_t *k, const char *token, unsigned char h[32])
{
    unsigned int len = 0;
    EVP_Digest(token, strlen(token), h, &len, EVP_sha256(), NULL);
    assert(len == 32);
    size_t i = 0;
    while (i < k->n && CRYPTO_memcmp(k->hash[i], h, 32) != 0)
        i++;
    return i;
}

/* console_known_note - see console.h */
void console_known_note(console_known_t *k, const char *token, int64_t now_ms)
{
    unsigned char h[32];
    size_t i = s_known_at(k, token, h);
    if (i == k->n && k->n < CONSOLE_KNOWN_MAX)
        k->n++;
    else if (i == k->n) /* full: the one heard from longest ago goes */
        for (size_t j = i = 0; j < k->n; j++)
            if (k->at_ms[j] < k->at_ms[i])
                i = j;
    memcpy(k->hash[i], h, 32);
    k->at_ms[i] = now_ms;
}

/* console_known_recent - see console.h */
bool console_known_recent(const console_known_t *k, const char *token, int64_t now_ms, int64_t grace_ms)
{
    unsigned char h[32];
    size_t i = s_known_at(k, token, h);
    return i < k->n && now_ms - k->at_ms[i] <= grace_ms;
}

/* console_known_forget - see console.h */
void console_known_forget(console_known_t *k, const char *token)
{
    unsigned char h[32];
    size_t i = s_known_at(k, token, h);
    if (i == k->n)
        return;
    k->n--;
    memcpy(k->hash[i], k->hash[k->n], 32);
    k->at_ms[i] = k->at_ms[k->n];
}
