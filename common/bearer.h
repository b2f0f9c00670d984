/* bearer - a Bearer token of which only the SHA-256 is configured:
 * ingest's POST /fetched/stripe (payguard catch-up, ingest/fetch_token_sha256)
 * and GET /metrics on every served port (payguard/metrics_token_sha256).
 *
 * The configuration holds no secret: a setting is 64 hex digits, the
 * token's SHA-256, and a request's "Authorization: Bearer <token>" is
 * hashed and compared in constant time. An empty setting means off (what
 * off means is the caller's: /fetched/stripe is not served, /metrics is
 * open).
 */
#ifndef PG_BEARER_H
#define PG_BEARER_H

#include <stdbool.h>
#include <stddef.h>

#define BEARER_TOKEN_MAX 512 /* a longer Authorization value is refused unread */
#define BEARER_KEY_MAX 64    /* the setting's name, for messages */

typedef struct {
    bool enabled;
    unsigned char sha[32];
    char key[BEARER_KEY_MAX]; /* the setting it came from, e.g. "ingest/fetch_token_sha256" */
} bearer_t;

/* bearer_parse - the value hex of setting key: "" or NULL (off) or 64 hex
 * digits; -1 + err naming key */
int bearer_parse(const char *key, const char *hex, bearer_t *out, char *err, size_t errlen);

/* bearer_check - does the Authorization header value carry the token?
 * 0 yes; -1 and why in why (never the token) */
int bearer_check(const bearer_t *self, const char *authorization, char *why, size_t whylen);

/* bearer_is_demo - the setting is the sandbox demo token's hash
 * (config/sandbox/fetch.token): say so in the log, never in production */
bool bearer_is_demo(const char *hex);

#endif
