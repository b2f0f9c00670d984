/* httpc - the JSON HTTP client payguard uses to talk to the outside systems
 * (see httpc.h and CONTRACT.md §2).
 *
 * ONE ATTEMPT (httpc_do)
 *   One libcurl easy handle per client, reused for every call so the
 *   connection to a system stays alive between calls; curl_easy_reset
 *   before each call clears the previous call's options but keeps that
 *   connection. Each attempt sets: the URL (base + path), http/https only,
 *   no redirects followed (a 3xx is an answer like any other), a total
 *   timeout and a connect timeout of min(timeout, 2 s), no signals (the
 *   stages are threaded), and the headers Accept: application/json,
 *   User-Agent: payguard/1, Content-Type: application/json (only with a
 *   body), Authorization: Bearer <token> (when configured) and
 *   Idempotency-Key (when given). The body read back is capped at
 *   HTTPC_MAX_RESPONSE_BYTES; Retry-After (delta-seconds or an HTTP date)
 *   is read from the final response's headers.
 *
 * RETRIES (httpc_call)
 *   Attempt k >= 2 waits a random time in [0, min(max_delay, base * 2^(k-2))]
 *   ("full jitter", so many stages retrying after one outage spread out),
 *   but never less than the answer's Retry-After, itself capped at
 *   max_delay. The PRNG is per client, seeded from RAND_bytes.
 *
 * FAILURE CLASSES
 *   transient  a 5xx or 429 answer, or a transport failure (timeout,
 *              refused, reset, DNS, ...): retried.
 *   final      any other answer (2xx, 3xx, 4xx): returned at once, 0.
 *   permanent  no usable answer and retrying cannot help: bad arguments
 *   failure    (refused before any request), a response over the cap, an
 *              unsupported scheme or malformed URL, a TLS certificate that
 *              does not verify: -1 with resp->transient false, at once.
 *
 * SECURITY
 *   The token only ever goes into the Authorization header: never into an
 *   error or a log line (curl's verbose mode stays off), and the header
 *   strings are wiped after each attempt and the token in httpc_destroy.
 *   Errors name the URL without user info or query string (a Teams
 *   Workflows URL carries its signature in the query). Tokens and
 *   idempotency keys with CR, LF, spaces or non-ASCII bytes are refused, so
 *   no caller-supplied value can add a header.
 *
 * LIMITS
 *   URL (base + path) 4096 bytes, token 4096, idempotency key 255, request
 *   body 4 MiB, response body HTTPC_MAX_RESPONSE_BYTES, timeout 10 min,
 *   100 attempts, 10 min per backoff delay, token file 8 KiB.
 */
#include "httpc_priv.h"

#include "credential.h"
#include "log.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define HTTPC_MAX_TOKEN_LEN 4096
#define HTTPC_MAX_IDEM_KEY_LEN 255
#define HTTPC_MAX_REQUEST_BYTES (4u * 1024u * 1024u)
#define HTTPC_MAX_TIMEOUT_MS 600000L
#define HTTPC_MAX_CONNECT_TIMEOUT_MS 2000L
#define HTTPC_MAX_ATTEMPTS 100
#define HTTPC_MAX_DELAY_MS 600000L
#define HTTPC_MAX_RETRY_AFTER_S 86400L
#define HTTPC_MAX_TOKEN_FILE_BYTES 8192
#define HTTPC_MAX_ESCAPE_INPUT (64u * 1024u)

static pthread_once_t s_curl_once = PTHREAD_ONCE_INIT;
static CURLcode s_curl_init_rc = CURLE_FAILED_INIT;

/* s_curl_global_init - curl_global_init is not thread-safe and must run
 * exactly once per process, before the first handle */
static void s_curl_global_init(void)
{
    s_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* hc_curl_ready - run the one-time global init; false if it failed */
bool hc_curl_ready(void)
{
    pthread_once(&s_curl_once, s_curl_global_init);
    return s_curl_init_rc == CURLE_OK;
}

/* s_header_safe - true if text (1..max_len bytes) is visible ASCII only:
 * no CR/LF (header injection), no space or control byte, nothing a proxy
 * or server might trim or rewrite */
static bool s_header_safe(const char *text, size_t max_len)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *) text; *p; p++, n++)
        if (*p < 0x21 || *p > 0x7e || n >= max_len)
            return false;
    return n > 0;
}

/* hc_set_error - fill resp->error; everything that reaches it is already
 * free of the token */
void hc_set_error(httpc_resp_t *resp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(resp->error, sizeof resp->error, fmt, ap);
    va_end(ap);
}

/* hc_redact_url - the URL as errors and logs may show it: no user:password@
 * and no query string (some webhook URLs carry their secret there) */
void hc_redact_url(const char *url, char *out, size_t outlen)
{
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    size_t auth_len = strcspn(host, "/?#");
    const char *at = memchr(host, '@', auth_len);
    size_t scheme_len = (size_t) (host - url);
    const char *rest = at ? at + 1 : host;
    size_t rest_len = strcspn(rest, "?#");
    bool cut = rest[rest_len] != '\0';
    snprintf(out, outlen, "%.*s%.*s%s", (int) scheme_len, url, (int) rest_len, rest, cut ? "?..." : "");
}

/* hc_make_url - base URL + path, with exactly one slash between them
 * unless the path is empty or starts a query; false if it did not fit */
bool hc_make_url(const httpc_t *self, const char *path, char *out, size_t outlen)
{
    const char *sep = (path[0] == '\0' || path[0] == '/' || path[0] == '?') ? "" : "/";
    int n = snprintf(out, outlen, "%s%s%s", self->base_url, sep, path);
    return n >= 0 && (size_t) n < outlen;
}

/* s_rand - next value of the client's splitmix64 stream: jitter needs to be
 * cheap and unpredictable between processes, not cryptographic */
static uint64_t s_rand(httpc_t *self)
{
    uint64_t z = (self->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* s_seed - seed the jitter so restarted stages do not retry in lockstep */
static uint64_t s_seed(void)
{
    uint64_t seed = 0;
    if (RAND_bytes((unsigned char *) &seed, sizeof seed) == 1)
        return seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == (ssize_t) sizeof seed)
        return seed;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_nsec ^ ((uint64_t) ts.tv_sec << 32) ^ (uint64_t) getpid();
}

/* s_sleep_ms - wait ms on the monotonic clock; an absolute deadline so a
 * signal (EINTR) does not stretch or cut the wait */
static void s_sleep_ms(long ms)
{
    if (ms <= 0)
        return;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
        ;
}

/* s_parse_retry_after - a Retry-After value (delta-seconds or an HTTP
 * date) in ms, capped at a day; -1 if it is neither */
static long s_parse_retry_after(const char *value)
{
    if (*value >= '0' && *value <= '9') {
        long secs = 0;
        const char *p = value;
        for (; *p >= '0' && *p <= '9'; p++)
            if (secs <= HTTPC_MAX_RETRY_AFTER_S)
                secs = secs * 10 + (*p - '0');
        if (*p != '\0')
            return -1;
        return (secs > HTTPC_MAX_RETRY_AFTER_S ? HTTPC_MAX_RETRY_AFTER_S : secs) * 1000L;
    }
    time_t when = curl_getdate(value, NULL);
    if (when == (time_t) -1)
        return -1;
    time_t now = time(NULL);
    if (when <= now)
        return 0;
    long secs = when - now > HTTPC_MAX_RETRY_AFTER_S ? HTTPC_MAX_RETRY_AFTER_S : (long) (when - now);
    return secs * 1000L;
}

/* hc_on_header - curl header callback: note Retry-After; a new status line
 * (after a 100 Continue, say) starts a new response head, so forget it */
size_t hc_on_header(char *data, size_t size, size_t nitems, void *userdata)
{
    hc_xfer_t *xfer = userdata;
    size_t n = size * nitems;
    static const char name[] = "retry-after:";
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        xfer->retry_after_ms = -1;
    } else if (n > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
        char value[128];
        size_t start = sizeof name - 1;
        while (start < n && (data[start] == ' ' || data[start] == '\t'))
            start++;
        size_t end = n;
        while (end > start &&
               (data[end - 1] == '\r' || data[end - 1] == '\n' || data[end - 1] == ' ' || data[end - 1] == '\t'))
            end--;
        if (end - start < sizeof value) {
            memcpy(value, data + start, end - start);
            value[end - start] = '\0';
            xfer->retry_after_ms = s_parse_retry_after(value);
        }
    }
    return n;
}

/* httpc_buf_append - see httpc.h */
size_t httpc_buf_append(char **buf, size_t *len, size_t *cap, size_t max, const void *data, size_t n, bool *too_big,
                        bool *oom)
{
    if (n > max - *len) {
        *too_big = true;
        return 0;
    }
    if (*len + n + 1 > *cap) {
        size_t ncap = *cap ? *cap : 4096;
        while (ncap < *len + n + 1)
            ncap *= 2;
        if (ncap > max + 1)
            ncap = max + 1;
        char *nb = realloc(*buf, ncap);
        if (!nb) {
            *oom = true;
            return 0;
        }
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
    return n;
}

/* hc_on_body - curl write callback: append to the response, capped */
size_t hc_on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    hc_xfer_t *xfer = userdata;
    return httpc_buf_append(&xfer->buf, &xfer->len, &xfer->cap, HTTPC_MAX_RESPONSE_BYTES, data, size * nmemb,
                            &xfer->too_big, &xfer->oom);
}

/* httpc_curl_transient - see httpc.h */
bool httpc_curl_transient(int curl_code)
{
    /* libcurl's own enum has ~100 codes and grows with each release: the
     * permanent ones are listed, everything else is transient (default) */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wswitch-enum"
    switch ((CURLcode) curl_code) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_WRITE_ERROR:
    case CURLE_OUT_OF_MEMORY:
        return false;
    default:
        return true;
    }
#pragma GCC diagnostic pop
}

/* s_slist_add - append one header line; false on out of memory (the list
 * built so far stays the caller's to free) */
static bool s_slist_add(struct curl_slist **list, const char *line)
{
    struct curl_slist *next = curl_slist_append(*list, line);
    if (!next)
        return false;
    *list = next;
    return true;
}

/* hc_slist_wipe_free - free a header list after wiping every line: the
 * Authorization line is a copy of the token */
void hc_slist_wipe_free(struct curl_slist *list)
{
    for (struct curl_slist *item = list; item; item = item->next)
        if (item->data)
            OPENSSL_cleanse(item->data, strlen(item->data));
    curl_slist_free_all(list);
}

/* hc_build_headers - the request headers for one attempt; NULL on out of
 * memory. "Expect:" stops curl from waiting for a 100 Continue on large
 * bodies, which many API servers never send */
struct curl_slist *hc_build_headers(const httpc_t *self, bool has_body, const char *idem_key)
{
    struct curl_slist *list = NULL;
    bool ok = s_slist_add(&list, "Accept: application/json") && s_slist_add(&list, "Expect:");
    /* "Content-Type:" with no value keeps curl's form-urlencoded default
     * off an empty POST */
    if (ok)
        ok = s_slist_add(&list, has_body ? "Content-Type: application/json" : "Content-Type:");
    if (ok && idem_key) {
        char line[sizeof "Idempotency-Key: " + HTTPC_MAX_IDEM_KEY_LEN];
        snprintf(line, sizeof line, "Idempotency-Key: %s", idem_key);
        ok = s_slist_add(&list, line);
    }
    if (ok && self->token) {
        char line[sizeof "Authorization: Bearer " + HTTPC_MAX_TOKEN_LEN];
        snprintf(line, sizeof line, "Authorization: Bearer %s", self->token);
        ok = s_slist_add(&list, line);
        OPENSSL_cleanse(line, sizeof line);
    }
    if (ok && self->header)
        ok = s_slist_add(&list, self->header);
    if (!ok) {
        hc_slist_wipe_free(list);
        return NULL;
    }
    return list;
}

/* httpc_set_header - see httpc.h */
int httpc_set_header(httpc_t *self, const char *name, const char *value)
{
    for (const char *p = value; *p; p++)
        if ((unsigned char) *p < 0x20 || *p == 0x7f)
            return -1; /* no header injection */
    free(self->header);
    size_t n = strlen(name) + strlen(value) + 3;
    self->header = malloc(n);
    if (!self->header)
        return -1;
    snprintf(self->header, n, "%s: %s", name, value);
    return 0;
}

/* hc_check_request - refuse, before any request, what cannot be sent
 * safely; 0 or -1 with resp->error set */
int hc_check_request(const httpc_t *self, const char *method, const char *path, const char *json_body,
                     const char *idem_key, httpc_resp_t *resp)
{
    if (!self || !method || !path) {
        hc_set_error(resp, "httpc: no client, method or path");
        return -1;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0) {
        hc_set_error(resp, "httpc: method must be GET or POST");
        return -1;
    }
    if (json_body && strcmp(method, "GET") == 0) {
        hc_set_error(resp, "httpc: a GET carries no body");
        return -1;
    }
    if (json_body && strlen(json_body) > HTTPC_MAX_REQUEST_BYTES) {
        hc_set_error(resp, "httpc: request body over %u bytes", HTTPC_MAX_REQUEST_BYTES);
        return -1;
    }
    for (const unsigned char *p = (const unsigned char *) path; *p; p++) {
        if (*p < 0x21 || *p > 0x7e) {
            hc_set_error(resp, "httpc: path has a space, control or non-ASCII byte (escape it with httpc_escape)");
            return -1;
        }
    }
    if (strlen(self->base_url) + 1 + strlen(path) > HTTPC_MAX_URL_LEN) {
        hc_set_error(resp, "httpc: URL longer than %d bytes", HTTPC_MAX_URL_LEN);
        return -1;
    }
    if (idem_key && !s_header_safe(idem_key, HTTPC_MAX_IDEM_KEY_LEN)) {
        hc_set_error(resp,
                     "httpc: idempotency key empty, over %d bytes, or has a CR/LF, space, control or "
                     "non-ASCII byte",
                     HTTPC_MAX_IDEM_KEY_LEN);
        return -1;
    }
    return 0;
}

/* httpc_new - a client for one outside system; NULL (logged, without the
 * token) on a bad URL, token or timeout, or when curl cannot start */
httpc_t *httpc_new(const char *base_url, const char *token, long timeout_ms)
{
    if (!base_url || (strncasecmp(base_url, "http://", 7) != 0 && strncasecmp(base_url, "https://", 8) != 0)) {
        log_error("httpc_new: base URL must start with http:// or https://");
        return NULL;
    }
    size_t base_len = strlen(base_url);
    if (base_len > HTTPC_MAX_URL_LEN / 2) {
        log_error("httpc_new: base URL longer than %d bytes", HTTPC_MAX_URL_LEN / 2);
        return NULL;
    }
    for (const unsigned char *p = (const unsigned char *) base_url; *p; p++) {
        if (*p < 0x21 || *p > 0x7e) {
            log_error("httpc_new: base URL has a space, control or non-ASCII byte");
            return NULL;
        }
    }
    if (token && !s_header_safe(token, HTTPC_MAX_TOKEN_LEN)) {
        log_error("httpc_new: token empty, over %d bytes, or has a CR/LF, space, control or non-ASCII byte",
                  HTTPC_MAX_TOKEN_LEN);
        return NULL;
    }
    if (timeout_ms < 1 || timeout_ms > HTTPC_MAX_TIMEOUT_MS) {
        log_error("httpc_new: timeout_ms must be 1..%ld", HTTPC_MAX_TIMEOUT_MS);
        return NULL;
    }
    if (!hc_curl_ready()) {
        log_error("httpc_new: curl_global_init failed");
        return NULL;
    }

    httpc_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->timeout_ms = timeout_ms;
    self->rng = s_seed();
    self->base_url = strdup(base_url);
    self->token = token ? strdup(token) : NULL;
    self->curl = curl_easy_init();
    if (!self->base_url || (token && !self->token) || !self->curl) {
        log_error("httpc_new: out of memory");
        httpc_destroy(&self);
        return NULL;
    }
    size_t len = strlen(self->base_url);
    while (len > 0 && self->base_url[len - 1] == '/')
        self->base_url[--len] = '\0';
    return self;
}

/* httpc_destroy - close the kept-alive connection, wipe the token, NULL
 * the caller's pointer */
void httpc_destroy(httpc_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    httpc_t *self = *self_p;
    if (self->curl)
        curl_easy_cleanup(self->curl);
    if (self->token) {
        OPENSSL_cleanse(self->token, strlen(self->token));
        free(self->token);
    }
    free(self->header);
    free(self->base_url);
    free(self);
    *self_p = NULL;
}

/* httpc_base_url - the base URL as configured, without trailing slashes;
 * may hold a secret in its query (Teams): log it through nothing */
const char *httpc_base_url(const httpc_t *self)
{
    return self ? self->base_url : NULL;
}

/* hc_set_options - every option of one attempt on a freshly reset handle;
 * false if curl refused one */
bool hc_set_options(const httpc_t *self, CURL *c, const char *method, const char *url, const char *json_body,
                    struct curl_slist *headers, hc_xfer_t *xfer)
{
    long connect_ms = self->timeout_ms < HTTPC_MAX_CONNECT_TIMEOUT_MS ? self->timeout_ms : HTTPC_MAX_CONNECT_TIMEOUT_MS;
    bool ok = true;
    ok &= curl_easy_setopt(c, CURLOPT_URL, url) == CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500
    ok &= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
#else
    ok &= curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS)) == CURLE_OK;
#endif
    ok &= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, self->timeout_ms) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_ms) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_USERAGENT, "payguard/1") == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, hc_on_body) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_WRITEDATA, xfer) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, hc_on_header) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_HEADERDATA, xfer) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) HTTPC_MAX_RESPONSE_BYTES) == CURLE_OK;
    if (strcmp(method, "POST") == 0) {
        const char *body = json_body ? json_body : "";
        ok &= curl_easy_setopt(c, CURLOPT_POST, 1L) == CURLE_OK;
        ok &= curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) strlen(body)) == CURLE_OK;
        ok &= curl_easy_setopt(c, CURLOPT_POSTFIELDS, body) == CURLE_OK;
    } else {
        ok &= curl_easy_setopt(c, CURLOPT_HTTPGET, 1L) == CURLE_OK;
    }
    return ok;
}

/* httpc_do - one attempt (see httpc.h). resp is overwritten, not freed:
 * httpc_resp_free a used one first */
int httpc_do(httpc_t *self, const char *method, const char *path, const char *json_body, const char *idem_key,
             httpc_resp_t *resp)
{
    if (!resp)
        return -1;
    memset(resp, 0, sizeof *resp);
    resp->retry_after_ms = -1;
    if (hc_check_request(self, method, path, json_body, idem_key, resp) != 0)
        return -1;

    char url[HTTPC_MAX_URL_LEN + 2];
    hc_make_url(self, path, url, sizeof url);
    char shown[HTTPC_MAX_URL_LEN + 8];
    hc_redact_url(url, shown, sizeof shown);

    struct curl_slist *headers = hc_build_headers(self, json_body != NULL, idem_key);
    if (!headers) {
        hc_set_error(resp, "httpc: out of memory building headers");
        return -1;
    }
    hc_xfer_t xfer = {.retry_after_ms = -1};
    curl_easy_reset(self->curl);
    CURLcode rc = CURLE_BAD_FUNCTION_ARGUMENT;
    if (hc_set_options(self, self->curl, method, url, json_body, headers, &xfer)) {
        rc = curl_easy_perform(self->curl);
        resp->attempts = 1;
    }
    /* the handle must not keep pointers to the headers or the caller's body */
    curl_easy_setopt(self->curl, CURLOPT_HTTPHEADER, (struct curl_slist *) NULL);
    curl_easy_setopt(self->curl, CURLOPT_POSTFIELDS, (char *) NULL);
    hc_slist_wipe_free(headers);

    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(self->curl, CURLINFO_RESPONSE_CODE, &status);
    return hc_result(rc, status, &xfer, method, shown, resp);
}

/* hc_result - an attempt's outcome as httpc_do returns it: the body moves
 * from xfer into resp (0), or xfer's buffer is freed and resp->error and
 * resp->transient say why not (-1) */
int hc_result(int curl_rc, long status, hc_xfer_t *xfer, const char *method, const char *shown, httpc_resp_t *resp)
{
    CURLcode rc = (CURLcode) curl_rc;
    if (rc == CURLE_OK && status >= 100 && status <= 999) {
        if (!xfer->buf && !(xfer->buf = malloc(1))) {
            hc_set_error(resp, "httpc: out of memory");
            resp->transient = true;
            return -1;
        }
        xfer->buf[xfer->len] = '\0';
        resp->status = status;
        resp->body = xfer->buf;
        resp->len = xfer->len;
        resp->retry_after_ms = xfer->retry_after_ms;
        resp->transient = status >= 500 || status == 429;
        xfer->buf = NULL;
        return 0;
    }
    free(xfer->buf);
    xfer->buf = NULL;
    if (xfer->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
        hc_set_error(resp, "%s %.150s: response larger than %u bytes", method, shown, HTTPC_MAX_RESPONSE_BYTES);
        resp->transient = false;
    } else if (xfer->oom) {
        hc_set_error(resp, "%s %.150s: out of memory reading the response", method, shown);
        resp->transient = true;
    } else if (rc == CURLE_OK) {
        hc_set_error(resp, "%s %.150s: no HTTP status in the answer", method, shown);
        resp->transient = true;
    } else {
        hc_set_error(resp, "%s %.150s: %s", method, shown, curl_easy_strerror(rc));
        resp->transient = httpc_curl_transient(rc);
    }
    return -1;
}

/* hc_backoff_ms - the wait before attempt k (k >= 2): full jitter over the
 * exponential window, raised to the server's Retry-After (both capped) */
long hc_backoff_ms(httpc_t *self, const httpc_retry_t *policy, int attempt, long retry_after_ms)
{
    long window = policy->base_delay_ms;
    for (int i = 2; i < attempt && window < policy->max_delay_ms; i++)
        window *= 2;
    if (window > policy->max_delay_ms)
        window = policy->max_delay_ms;
    long delay = window > 0 ? (long) (s_rand(self) % ((uint64_t) window + 1)) : 0;
    if (retry_after_ms >= 0) {
        long floor = retry_after_ms < policy->max_delay_ms ? retry_after_ms : policy->max_delay_ms;
        if (delay < floor)
            delay = floor;
    }
    return delay;
}

/* hc_policy_ok - see httpc_priv.h */
bool hc_policy_ok(const httpc_retry_t *policy)
{
    return policy->max_attempts >= 1 && policy->max_attempts <= HTTPC_MAX_ATTEMPTS && policy->base_delay_ms >= 0 &&
           policy->max_delay_ms >= 0 && policy->base_delay_ms <= HTTPC_MAX_DELAY_MS &&
           policy->max_delay_ms <= HTTPC_MAX_DELAY_MS;
}

/* httpc_call - httpc_do with retries (see httpc.h). Besides the header's
 * two outcomes, a permanent failure without an answer (bad arguments, a
 * response over the cap, a malformed URL) is -1 with resp->transient false,
 * returned without retrying */
int httpc_call(httpc_t *self, const char *method, const char *path, const char *json_body, const char *idem_key,
               const httpc_retry_t *policy, httpc_resp_t *resp)
{
    static const httpc_retry_t defaults = {.max_attempts = 5, .base_delay_ms = 200, .max_delay_ms = 10000};
    if (!resp)
        return -1;
    if (!policy)
        policy = &defaults;
    if (!hc_policy_ok(policy)) {
        memset(resp, 0, sizeof *resp);
        resp->retry_after_ms = -1;
        hc_set_error(resp, "httpc: retry policy needs 1..%d attempts and delays 0..%ld ms", HTTPC_MAX_ATTEMPTS,
                     HTTPC_MAX_DELAY_MS);
        return -1;
    }

    int made = 0;
    long retry_after_ms = -1;
    for (int attempt = 1;; attempt++) {
        if (attempt > 1) {
            long delay = hc_backoff_ms(self, policy, attempt, retry_after_ms);
            if (resp->status) {
                char url[HTTPC_MAX_URL_LEN + 2], shown[HTTPC_MAX_URL_LEN + 8];
                hc_make_url(self, path, url, sizeof url);
                hc_redact_url(url, shown, sizeof shown);
                log_warn("httpc: %s %s answered %ld; attempt %d/%d in %ld ms", method, shown, resp->status, attempt,
                         policy->max_attempts, delay);
            } else {
                log_warn("httpc: %s; attempt %d/%d in %ld ms", resp->error, attempt, policy->max_attempts, delay);
            }
            httpc_resp_free(resp);
            s_sleep_ms(delay);
        }
        int rc = httpc_do(self, method, path, json_body, idem_key, resp);
        made += resp->attempts;
        resp->attempts = made;
        retry_after_ms = resp->retry_after_ms;
        if (!resp->transient)
            return rc;
        if (attempt >= policy->max_attempts)
            return -1;
    }
}

/* httpc_resp_free - release the body; the struct may be reused after */
void httpc_resp_free(httpc_resp_t *resp)
{
    if (!resp)
        return;
    free(resp->body);
    resp->body = NULL;
    resp->len = 0;
}

/* httpc_escape - percent-encode one path segment or query value, so an id
 * from outside cannot add path segments or parameters; NULL if text is
 * NULL, over 64 KiB, or memory runs out */
char *httpc_escape(const char *text)
{
    if (!text || strlen(text) > HTTPC_MAX_ESCAPE_INPUT || !hc_curl_ready())
        return NULL;
#if LIBCURL_VERSION_NUM >= 0x075200
    char *escaped = curl_easy_escape(NULL, text, (int) strlen(text));
#else
    CURL *tmp = curl_easy_init();
    char *escaped = tmp ? curl_easy_escape(tmp, text, (int) strlen(text)) : NULL;
    if (tmp)
        curl_easy_cleanup(tmp);
#endif
    if (!escaped)
        return NULL;
    char *copy = strdup(escaped);
    curl_free(escaped);
    return copy;
}

/* s_errf - format into the caller's optional error buffer */
static void s_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* httpc_read_token - the first line of a token file, trimmed (editors add
 * a newline); errors name the path and the reason, never the content */
char *httpc_read_token(const char *path, char *err, size_t errlen)
{
    char file[PATH_MAX];
    if (!path) {
        s_errf(err, errlen, "token file: no path");
        return NULL;
    }
    if (credential_path(path, file, sizeof file, err, errlen) != 0)
        return NULL;
    path = file; /* "credential:<name>": the unit's copy (credential.h) */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        s_errf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char buf[HTTPC_MAX_TOKEN_FILE_BYTES + 1];
    size_t len = 0;
    int read_errno = 0;
    while (len < sizeof buf - 1) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            read_errno = errno;
        if (n <= 0)
            break;
        len += (size_t) n;
    }
    close(fd);
    char *token = NULL;
    if (read_errno) {
        s_errf(err, errlen, "%s: %s", path, strerror(read_errno));
        goto done;
    }
    buf[len] = '\0';
    char *line_end = memchr(buf, '\n', len);
    if (!line_end && len == sizeof buf - 1) {
        s_errf(err, errlen, "%s: first line longer than %d bytes", path, HTTPC_MAX_TOKEN_FILE_BYTES - 1);
        goto done;
    }
    size_t end = line_end ? (size_t) (line_end - buf) : len;
    size_t start = 0;
    while (start < end && (buf[start] == ' ' || buf[start] == '\t' || buf[start] == '\r'))
        start++;
    while (end > start && (buf[end - 1] == ' ' || buf[end - 1] == '\t' || buf[end - 1] == '\r'))
        end--;
    if (end == start) {
        s_errf(err, errlen, "%s: empty token", path);
        goto done;
    }
    if (end - start > HTTPC_MAX_TOKEN_LEN) {
        s_errf(err, errlen, "%s: token longer than %d bytes", path, HTTPC_MAX_TOKEN_LEN);
        goto done;
    }
    for (size_t i = start; i < end; i++) {
        unsigned char ch = (unsigned char) buf[i];
        if (ch < 0x21 || ch > 0x7e) {
            s_errf(err, errlen, "%s: token has a space, control or non-ASCII byte", path);
            goto done;
        }
    }
    token = strndup(buf + start, end - start);
    if (!token)
        s_errf(err, errlen, "%s: out of memory", path);
done:
    OPENSSL_cleanse(buf, sizeof buf);
    return token;
}
