/* adyen - the sandbox playing Adyen: it signs standard notifications and
 * sends them to ingest's /webhooks/adyen, so tests and the demo can drive
 * that endpoint as Adyen would (CONTRACT.md §1.5).
 *
 *   POST /_sandbox/adyen/notify
 *     {"items":[{<NotificationRequestItem fields>, "sign":"good|bad|none", "key":N}, ...],
 *      "live":"false", "basic_auth":{"user","password"}}
 *     -> 200 {"status":<ingest's HTTP status>,"answer":"<its body>","receipt_id":"<its
 *        Payguard-Receipt-Id>","notification":{<what was sent>}}
 *        502 {"error"} when ingest does not answer
 *
 * Each item is sent as given, with what Adyen always sends filled in when
 * absent: merchantAccountCode "PayguardSandbox", pspReference (16
 * characters, unique), eventDate (now, in +01:00 as Adyen writes local
 * time), success "true", additionalData. "sign" says how
 * additionalData.hmacSignature is made: "good" (the default) with key N
 * (0: the first) of sandbox/adyen_hmac_file, read at each call so a test
 * can rotate it; "bad" the good signature with one bit changed; "none"
 * leaves it out. The signing string is built here on its own, from
 * Adyen's documentation, not from validate's code: the two sides agree
 * only if both follow it. Up to SBX_ADYEN_MAX_ITEMS items, so a test can
 * send a batch over validate's bound of 16.
 *
 * The endpoint is sandbox/adyen_notify_url, or when empty
 * http://127.0.0.1:<ingest/http_port>/webhooks/adyen. basic_auth is sent
 * as given and never stored or logged.
 */
#include <assert.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sandbox.h"

#define SBX_ADYEN_MAX_ITEMS 64
#define SBX_ADYEN_SIGNING_MAX 4096
#define SBX_ADYEN_KEY_MAX 256       /* bytes of a key (512 hex digits) */
#define SBX_ADYEN_ANSWER_MAX 4096   /* bytes of ingest's answer kept */
#define SBX_ADYEN_TIMEOUT_MS 10000L /* ingest answers once the batch is on disk */

typedef struct {
    char text[SBX_ADYEN_ANSWER_MAX + 1];
    size_t len;
    char receipt_id[128];
} s_answer_t;

/* s_key - key n (0-based) of the hex key file into key; its length or -1 */
static int s_key(const char *path, long n, unsigned char key[SBX_ADYEN_KEY_MAX], char *err, size_t errlen)
{
    assert(path && key && err);
    assert(errlen > 0);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "sandbox/adyen_hmac_file %.200s: cannot open", path);
        return -1;
    }
    char line[2 * SBX_ADYEN_KEY_MAX + 64];
    long seen = 0;
    int len = -1;
    while (len < 0 && fgets(line, sizeof line, f)) {
        char hex[2 * SBX_ADYEN_KEY_MAX + 2];
        if (line[0] == '#' || sscanf(line, "%513s", hex) != 1 || seen++ != n)
            continue;
        size_t hl = strlen(hex);
        len = hl % 2 || hl > 2 * SBX_ADYEN_KEY_MAX ? -2 : (int) (hl / 2);
        for (int i = 0; i < len; i++) {
            unsigned v;
            if (sscanf(hex + 2 * i, "%2x", &v) != 1)
                len = -2;
            else
                key[i] = (unsigned char) v;
        }
        OPENSSL_cleanse(hex, sizeof hex);
    }
    OPENSSL_cleanse(line, sizeof line);
    fclose(f);
    if (len < 0)
        snprintf(err, errlen, "sandbox/adyen_hmac_file %.200s: %s", path,
                 len == -1 ? "no key at that index" : "a key is not an even number of hex digits");
    return len;
}

/* s_append - one field of the signing string, '\' and ':' escaped */
static void s_append(char *out, size_t *used, const char *text)
{
    for (const char *p = text; *p && *used + 3 < SBX_ADYEN_SIGNING_MAX; p++) {
        if (*p == '\\' || *p == ':')
            out[(*used)++] = '\\';
        out[(*used)++] = *p;
    }
    out[*used] = '\0';
}

/* s_field - a signing-string field of the item as text (integers in decimal) */
static const char *s_field(json_t *o, const char *key, char num[32])
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v)) {
        snprintf(num, 32, "%lld", (long long) json_integer_value(v));
        return num;
    }
    if (json_is_boolean(v))
        return json_is_true(v) ? "true" : "false";
    return json_is_string(v) ? json_string_value(v) : "";
}

/* s_sign - additionalData.hmacSignature of one item, as "sign" asks */
static int s_sign(json_t *item, const char *how, const unsigned char *key, int keylen)
{
    static const char *const top[] = {"pspReference", "originalReference", "merchantAccountCode", "merchantReference"};
    char s[SBX_ADYEN_SIGNING_MAX], num[32];
    size_t used = 0;
    assert(item && how && key);
    assert(keylen > 0 && keylen <= SBX_ADYEN_KEY_MAX);
    json_t *amount = json_object_get(item, "amount");
    s[0] = '\0';
    for (int i = 0; i < 4; i++) {
        s_append(s, &used, s_field(item, top[i], num));
        s[used++] = ':';
    }
    s_append(s, &used, s_field(amount, "value", num));
    s[used++] = ':';
    s_append(s, &used, s_field(amount, "currency", num));
    s[used++] = ':';
    s_append(s, &used, s_field(item, "eventCode", num));
    s[used++] = ':';
    s_append(s, &used, s_field(item, "success", num));
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    if (!HMAC(EVP_sha256(), key, keylen, (const unsigned char *) s, used, mac, &maclen))
        return -1;
    if (strcmp(how, "bad") == 0)
        mac[0] ^= 0x01;
    char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    EVP_EncodeBlock((unsigned char *) b64, mac, (int) maclen);
    json_t *extra = json_object_get(item, "additionalData");
    if (!json_is_object(extra)) {
        extra = json_object();
        json_object_set_new(item, "additionalData", extra);
    }
    json_object_set_new(extra, "hmacSignature", json_string(b64));
    return 0;
}

/* s_defaults - what Adyen always sends, where the caller left it out */
static void s_defaults(json_t *item, size_t i)
{
    static unsigned long counter;
    char psp[32], date[40];
    time_t t = time(NULL) + 3600; /* +01:00 */
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S+01:00", &tm);
    snprintf(psp, sizeof psp, "%010lld%06lu", (long long) (sbx_now_ms() / 1000) % 10000000000LL,
             (__atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) * 100 + i) % 1000000);
    if (!json_object_get(item, "merchantAccountCode"))
        json_object_set_new(item, "merchantAccountCode", json_string("PayguardSandbox"));
    if (!json_object_get(item, "pspReference"))
        json_object_set_new(item, "pspReference", json_string(psp));
    if (!json_object_get(item, "eventDate"))
        json_object_set_new(item, "eventDate", json_string(date));
    if (!json_object_get(item, "success"))
        json_object_set_new(item, "success", json_string("true"));
    if (!json_object_get(item, "additionalData"))
        json_object_set_new(item, "additionalData", json_object());
}

/* s_build - the notification from the request's items; NULL + err */
static json_t *s_build(json_t *req, const char *key_file, char *err, size_t errlen)
{
    assert(req && key_file && err);
    json_t *items = json_object_get(req, "items"), *list = json_array();
    assert(list);
    if (!json_is_array(items) || json_array_size(items) == 0 || json_array_size(items) > SBX_ADYEN_MAX_ITEMS) {
        snprintf(err, errlen, "items: an array of 1 to %d notification items", SBX_ADYEN_MAX_ITEMS);
        json_decref(list);
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *item = json_deep_copy(json_array_get(items, i));
        json_t *sign = json_object_get(item, "sign"), *kn = json_object_get(item, "key");
        char how[8]; /* a copy: "sign" is deleted from the item below */
        snprintf(how, sizeof how, "%s", json_is_string(sign) ? json_string_value(sign) : "good");
        unsigned char key[SBX_ADYEN_KEY_MAX];
        int keylen = 0;
        if (!json_is_object(item) || !sbx_in(how, (const char *const[]){"good", "bad", "none", NULL}) ||
            (kn && !json_is_integer(kn))) {
            snprintf(err, errlen, "items[%zu]: an object; sign is good, bad or none; key an integer", i);
        } else {
            s_defaults(item, i);
            json_object_del(item, "sign");
            json_object_del(item, "key");
            if (strcmp(how, "none") == 0 ||
                ((keylen = s_key(key_file, kn ? (long) json_integer_value(kn) : 0, key, err, errlen)) > 0 &&
                 s_sign(item, how, key, keylen) == 0))
                err[0] = '\0';
            OPENSSL_cleanse(key, sizeof key);
        }
        if (err[0]) {
            json_decref(item);
            json_decref(list);
            return NULL;
        }
        json_array_append_new(list, json_pack("{s:o}", "NotificationRequestItem", item));
    }
    json_t *live = json_object_get(req, "live");
    return json_pack("{s:o, s:o}", "live", live ? json_incref(live) : json_string("false"), "notificationItems", list);
}

/* s_on_body, s_on_header - curl's callbacks: ingest's answer, bounded */
static size_t s_on_body(char *p, size_t size, size_t n, void *user)
{
    s_answer_t *a = user;
    size_t take = size * n;
    if (take > SBX_ADYEN_ANSWER_MAX - a->len)
        take = SBX_ADYEN_ANSWER_MAX - a->len;
    memcpy(a->text + a->len, p, take);
    a->len += take;
    a->text[a->len] = '\0';
    return size * n;
}
static size_t s_on_header(char *p, size_t size, size_t n, void *user)
{
    s_answer_t *a = user;
    static const char name[] = "payguard-receipt-id:";
    size_t len = size * n, nl = strlen(name);
    if (len > nl && strncasecmp(p, name, nl) == 0)
        sscanf(p + nl, " %127s", a->receipt_id);
    return len;
}

/* s_post - the notification to ingest; ingest's HTTP status, or -1 + err */
static long s_post(const char *url, const char *text, json_t *auth, s_answer_t *a, char *err, size_t errlen)
{
    assert(url && text && a);
    assert(err && errlen > 0);
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(err, errlen, "cannot start an HTTP client");
        return -1;
    }
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, SBX_ADYEN_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    const char *user = json_string_value(json_object_get(auth, "user"));
    const char *pass = json_string_value(json_object_get(auth, "password"));
    if (user && pass) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, pass);
    }
    long status = -1;
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        snprintf(err, errlen, "POST %.200s: %s", url, curl_easy_strerror(rc));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

/* sbx_adyen_notify - see sandbox.h */
void sbx_adyen_notify(const sbx_sandbox_t *sb, const char *method, const char *body, size_t len, sbx_resp_t *resp)
{
    assert(sb && method && resp);
    assert(body || len == 0);
    if (strcmp(method, "POST") != 0) {
        sbx_error(resp, MHD_HTTP_METHOD_NOT_ALLOWED, "%s is not allowed on /_sandbox/adyen/notify", method);
        return;
    }
    json_error_t jerr;
    json_t *req = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    char err[512] = "";
    json_t *auth = json_object_get(req, "basic_auth");
    json_t *note = json_is_object(req) ? s_build(req, sb->adyen_key_file, err, sizeof err) : NULL;
    if (!note) {
        sbx_error(resp, MHD_HTTP_BAD_REQUEST, "%s", json_is_object(req) ? err : "body must be a JSON object");
        json_decref(req);
        return;
    }
    if (auth && !(json_is_object(auth) && json_is_string(json_object_get(auth, "user")) &&
                  json_is_string(json_object_get(auth, "password")))) {
        sbx_error(resp, MHD_HTTP_BAD_REQUEST, "basic_auth: {\"user\",\"password\"}");
    } else {
        char *text = json_dumps(note, JSON_COMPACT);
        static s_answer_t zero;
        s_answer_t *a = malloc(sizeof *a);
        if (!a)
            abort();
        *a = zero;
        long status = text ? s_post(sb->adyen_url, text, auth, a, err, sizeof err) : -1;
        if (status < 0)
            sbx_error(resp, MHD_HTTP_BAD_GATEWAY, "%s", text ? err : "cannot serialise the notification");
        else
            sbx_reply(resp, MHD_HTTP_OK,
                      json_pack("{s:I, s:s, s:s, s:O}", "status", (json_int_t) status, "answer", a->text, "receipt_id",
                                a->receipt_id, "notification", note));
        free(text);
        free(a);
    }
    json_decref(note);
    json_decref(req);
}
