/* util - small helpers shared by the sandbox's emulated systems */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sandbox.h"

/* sbx_reply - serialise obj as the answer (compact, key order kept) */
int sbx_reply(sbx_resp_t *resp, unsigned status, json_t *obj)
{
    free(resp->body);
    resp->body = NULL;
    resp->status = status;
    if (obj) {
        resp->body = json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
        json_decref(obj);
    }
    return 0;
}

/* sbx_error - the operator-API error shape {"error": "<reason>"} */
int sbx_error(sbx_resp_t *resp, unsigned status, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    sbx_reply(resp, status, json_pack("{s:s}", "error", why));
    return -1;
}

/* sbx_query - the (decoded) query argument name of this call */
const char *sbx_query(const sbx_req_t *req, const char *name)
{
    return req->conn ? MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name) : NULL;
}

/* sbx_path_match - segment-wise match; "*" captures a non-empty segment */
int sbx_path_match(const char *pattern, const char *path, char ids[][SBX_ID_MAX + 1], int max_ids)
{
    int n = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return 0;
        p++;
        s++;
        const char *pe = strchrnul(p, '/'), *se = strchrnul(s, '/');
        size_t pl = (size_t) (pe - p), sl = (size_t) (se - s);
        if (pl == 1 && *p == '*') {
            if (sl == 0 || n >= max_ids)
                return 0;
            if (sl > SBX_ID_MAX)
                return -1;
            memcpy(ids[n], s, sl);
            ids[n][sl] = '\0';
            n++;
        } else if (pl != sl || memcmp(p, s, pl) != 0) {
            return 0;
        }
        p = pe;
        s = se;
    }
    if (*s == '/' && s[1] == '\0') /* one trailing slash is the same resource */
        s++;
    return *p == '\0' && *s == '\0';
}

/* sbx_only_fields - strict decoding: name the first unexpected key */
int sbx_only_fields(json_t *obj, const char *const *allowed, char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (!sbx_in(key, allowed)) {
            snprintf(err, errlen, "unknown field '%.64s'", key);
            return -1;
        }
    }
    return 0;
}

/* sbx_str - a string field, checked for presence, type, emptiness, length */
const char *sbx_str(json_t *obj, const char *key, bool required, bool nonempty, size_t max, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (!required)
            return "";
        snprintf(err, errlen, "%s is required", key);
        return NULL;
    }
    if (!json_is_string(v)) {
        snprintf(err, errlen, "%s must be a string", key);
        return NULL;
    }
    const char *s = json_string_value(v);
    if (nonempty && !*s) {
        snprintf(err, errlen, "%s must not be empty", key);
        return NULL;
    }
    if (json_string_length(v) > max) {
        snprintf(err, errlen, "%s is longer than %zu characters", key, max);
        return NULL;
    }
    if (strlen(s) != json_string_length(v)) {
        snprintf(err, errlen, "%s contains a NUL character", key);
        return NULL;
    }
    return s;
}

/* sbx_amount - money is a positive integer count of minor units, never a float */
int sbx_amount(json_t *obj, const char *key, long long *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        snprintf(err, errlen, "%s is required", key);
        return -1;
    }
    if (!json_is_integer(v) || json_integer_value(v) <= 0) {
        snprintf(err, errlen, "%s must be a positive integer (minor units)", key);
        return -1;
    }
    *out = (long long) json_integer_value(v);
    return 0;
}

/* sbx_currency_ok - ISO 4217 shape: three letters of one case */
bool sbx_currency_ok(const char *s, bool lower)
{
    char lo = lower ? 'a' : 'A', hi = lower ? 'z' : 'Z';
    if (!s || strlen(s) != 3)
        return false;
    for (int i = 0; i < 3; i++)
        if (s[i] < lo || s[i] > hi)
            return false;
    return true;
}

/* sbx_now_rfc3339 - UTC, second precision, as the ledger answers */
void sbx_now_rfc3339(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* sbx_now_ms - wall clock, for the calls log */
long long sbx_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* sbx_sha256_hex - fingerprint of a request for idempotency checks */
void sbx_sha256_hex(const char *const *parts, const size_t *lens, int n, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (int i = 0; i < n; i++) {
        /* length-prefixed, so ("ab","c") and ("a","bc") differ */
        char len[24];
        int l = snprintf(len, sizeof len, "%zu:", lens[i]);
        EVP_DigestUpdate(ctx, len, (size_t) l);
        if (lens[i])
            EVP_DigestUpdate(ctx, parts[i], lens[i]);
    }
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* sbx_json_or_string - bodies in the calls log: JSON when they are JSON;
 * otherwise a string with bytes that are not valid text replaced by '?' */
json_t *sbx_json_or_string(const char *text, size_t len)
{
    if (!text || !len)
        return json_null();
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (v)
        return v;
    v = json_stringn(text, len);
    if (v)
        return v;
    char *copy = malloc(len);
    if (!copy)
        return json_null();
    for (size_t i = 0; i < len; i++)
        copy[i] = ((unsigned char) text[i] >= 0x80 || text[i] == '\0') ? '?' : text[i];
    v = json_stringn(copy, len);
    free(copy);
    return v ? v : json_null();
}

/* sbx_in - membership in a small NULL-terminated set of strings */
bool sbx_in(const char *s, const char *const *set)
{
    for (int i = 0; s && set[i]; i++)
        if (strcmp(s, set[i]) == 0)
            return true;
    return false;
}

/* sbx_route - first route whose pattern and method match; remember a
 * pattern that matched with another method, for a 405 */
int sbx_route(sbx_req_t *req, const sbx_route_t *routes)
{
    int rc = SBX_NO_PATH;
    for (int i = 0; routes[i].pattern; i++) {
        char ids[2][SBX_ID_MAX + 1];
        int m = sbx_path_match(routes[i].pattern, req->path, ids, 2);
        if (m < 0)
            return SBX_ID_TOO_LONG;
        if (m == 0)
            continue;
        if (strcmp(routes[i].method, req->method) == 0) {
            memcpy(req->ids, ids, sizeof ids);
            return i;
        }
        rc = SBX_NO_METHOD;
    }
    return rc;
}

/* sbx_route_error - 404, 405 or 400 in the operator-API error shape */
int sbx_route_error(int rc, const sbx_req_t *req, sbx_resp_t *resp)
{
    if (rc == SBX_ID_TOO_LONG)
        sbx_error(resp, MHD_HTTP_BAD_REQUEST, "id longer than %d characters", SBX_ID_MAX);
    else if (rc == SBX_NO_METHOD)
        sbx_error(resp, MHD_HTTP_METHOD_NOT_ALLOWED, "%s is not allowed on %s", req->method, req->path);
    else
        sbx_error(resp, MHD_HTTP_NOT_FOUND, "no such resource: %s", req->path);
    return -1;
}
