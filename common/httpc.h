/* httpc - the JSON HTTP client payguard uses to talk to the outside systems.
 *
 * libcurl underneath. Every call: JSON body, Authorization: Bearer <token>
 * (when configured), a total timeout, and on writes an Idempotency-Key
 * header the caller derives from (case id, runbook step), so a retry or a
 * call after a restart carries the same key (CONTRACT.md §2).
 *
 * Failure classes (CONTRACT.md §2): a 5xx, 429, timeout or connection
 * failure is transient: httpc_call retries it with exponential backoff and
 * full jitter, honouring Retry-After (seconds or an HTTP date), up to
 * max_attempts. Any other 4xx is permanent and returned at once.
 * The token never appears in errors or logs.
 */
#ifndef PG_HTTPC_H
#define PG_HTTPC_H

#include <stdbool.h>
#include <stddef.h>

#define HTTPC_MAX_RESPONSE_BYTES (4u * 1024u * 1024u)

typedef struct httpc_t httpc_t;

typedef struct {
    long status; /* HTTP status; 0 if no answer was received */
    char *body;  /* NUL-terminated response body (or NULL) */
    size_t len;
    long retry_after_ms; /* from Retry-After, -1 if absent */
    bool transient;      /* 5xx, 429, timeout, connection failure */
    int attempts;        /* how many requests httpc_call made */
    bool cancelled;      /* httpc_multi: the engine was destroyed first; nothing is known */
    char error[256];     /* transport error text when status == 0 */
} httpc_resp_t;

typedef struct {
    int max_attempts;   /* >= 1; default 5 */
    long base_delay_ms; /* first backoff; default 200 */
    long max_delay_ms;  /* cap, Retry-After included; default 10000 */
} httpc_retry_t;

/* httpc_new - base_url like "http://127.0.0.1:8090/ledger" (no trailing
 * slash needed); token may be NULL; timeout_ms for each attempt */
httpc_t *httpc_new(const char *base_url, const char *token, long timeout_ms);
void httpc_destroy(httpc_t **self_p);
const char *httpc_base_url(const httpc_t *self);
/* httpc_set_header - send one more header "name: value" with every call
 * (replacing an earlier one); -1 if value holds a control character */
int httpc_set_header(httpc_t *self, const char *name, const char *value);

/* httpc_do - one attempt: method "GET"/"POST", path appended to the base
 * URL (callers URL-encode ids with httpc_escape), json_body may be NULL,
 * idem_key may be NULL. 0 if an HTTP answer came back (any status), -1 on
 * transport failure (resp->error says why, resp->transient true). */
int httpc_do(httpc_t *self, const char *method, const char *path, const char *json_body, const char *idem_key,
             httpc_resp_t *resp);

/* httpc_call - httpc_do with the retry policy (NULL: defaults). 0 when a
 * final answer came back (2xx or a permanent 4xx: check resp->status), -1
 * when every attempt failed transiently. */
int httpc_call(httpc_t *self, const char *method, const char *path, const char *json_body, const char *idem_key,
               const httpc_retry_t *policy, httpc_resp_t *resp);

void httpc_resp_free(httpc_resp_t *resp);

/* httpc_buf_append - append n bytes to a NUL-terminated buffer that may
 * not grow past max bytes (curl write callbacks: a short count stops the
 * transfer). n on success; 0 and *too_big or *oom set otherwise. */
size_t httpc_buf_append(char **buf, size_t *len, size_t *cap, size_t max, const void *data, size_t n, bool *too_big,
                        bool *oom);

/* httpc_curl_transient - whether a libcurl error code (a CURLcode) may go
 * away by itself (timeouts, refused, reset, DNS, TLS handshakes) rather than
 * fail the same way every time (a malformed URL, an unsupported protocol,
 * certificate problems, our own write callback refusing, out of memory) */
bool httpc_curl_transient(int curl_code);

/* httpc_escape - percent-encode one path segment or query value; caller frees */
char *httpc_escape(const char *text);

/* httpc_read_token - first line of a token file, trimmed; NULL + err if
 * unreadable or empty; the caller frees (and should wipe) it. path may be
 * "credential:<name>": the file systemd gave the unit (credential.h) */
char *httpc_read_token(const char *path, char *err, size_t errlen);

#endif
