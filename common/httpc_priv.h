/* httpc_priv - what the blocking client (httpc.c) and the asynchronous
 * engine (httpc_multi.c) share: the client itself and one attempt's
 * pieces. Not for callers: they see httpc.h and httpc_multi.h.
 */
#ifndef PG_HTTPC_PRIV_H
#define PG_HTTPC_PRIV_H

#include "httpc.h"

#include <curl/curl.h>
#include <stdint.h>

#define HTTPC_MAX_URL_LEN 4096

struct httpc_t {
    CURL *curl;     /* the blocking client's handle (httpc_do) */
    char *base_url; /* trailing slashes removed */
    char *token;    /* NULL: no Authorization header */
    char *header;   /* one more header line ("Name: value"), NULL: none (httpc_set_header) */
    long timeout_ms;
    uint64_t rng; /* splitmix64 state for the backoff jitter */
};

/* hc_xfer_t - what the curl callbacks collect during one attempt */
typedef struct {
    char *buf;
    size_t len;
    size_t cap;
    bool too_big;        /* the body passed HTTPC_MAX_RESPONSE_BYTES */
    bool oom;            /* the body buffer could not grow */
    long retry_after_ms; /* of the latest response head, -1 if none */
} hc_xfer_t;

/* hc_curl_ready - curl_global_init once per process; false if it failed */
bool hc_curl_ready(void);

/* hc_set_error - format resp->error (never with the token in it) */
void hc_set_error(httpc_resp_t *resp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* hc_check_request - refuse, before any request, what cannot be sent safely */
int hc_check_request(const httpc_t *self, const char *method, const char *path, const char *json_body,
                     const char *idem_key, httpc_resp_t *resp);

/* hc_make_url - base URL + path; false if it did not fit */
bool hc_make_url(const httpc_t *self, const char *path, char *out, size_t outlen);

/* hc_redact_url - the URL as errors may show it: no user info, no query */
void hc_redact_url(const char *url, char *out, size_t outlen);

/* hc_build_headers - one attempt's request headers; NULL on out of memory */
struct curl_slist *hc_build_headers(const httpc_t *self, bool has_body, const char *idem_key);

/* hc_slist_wipe_free - wipe (the token is in one line) and free */
void hc_slist_wipe_free(struct curl_slist *list);

/* hc_set_options - every option of one attempt on a fresh or reset handle c */
bool hc_set_options(const httpc_t *self, CURL *c, const char *method, const char *url, const char *json_body,
                    struct curl_slist *headers, hc_xfer_t *xfer);

/* hc_result - an attempt's outcome into resp (0: an answer; -1: none) */
int hc_result(int curl_rc, long status, hc_xfer_t *xfer, const char *method, const char *shown, httpc_resp_t *resp);

/* hc_backoff_ms - the wait before attempt k >= 2 (full jitter, Retry-After) */
long hc_backoff_ms(httpc_t *self, const httpc_retry_t *policy, int attempt, long retry_after_ms);

/* hc_policy_ok - a retry policy within the limits */
bool hc_policy_ok(const httpc_retry_t *policy);

#endif
