/* bearer - the token of ingest's POST /fetched/stripe (payguard catch-up).
 *
 * ingest holds no secret: its configuration has the SHA-256 of the token
 * (ingest/fetch_token_sha256, 64 hex digits), and a request's
 * "Authorization: Bearer <token>" is hashed and compared in constant
 * time. An empty setting turns the endpoint off (404, like any unknown
 * path).
 */
#ifndef PG_INGEST_BEARER_H
#define PG_INGEST_BEARER_H

#include <stdbool.h>
#include <stddef.h>

#define BEARER_TOKEN_MAX 512 /* a longer Authorization value is refused unread */

typedef struct {
    bool enabled;
    unsigned char sha[32];
} bearer_t;

/* bearer_parse - the setting's value: "" (off) or 64 hex digits; -1 + err */
int bearer_parse(const char *hex, bearer_t *out, char *err, size_t errlen);

/* bearer_check - does the Authorization header value carry the token?
 * 0 yes; -1 and why (never the token) */
int bearer_check(const bearer_t *self, const char *authorization, const char **why);

/* bearer_is_demo - the setting is the sandbox demo token's hash
 * (config/sandbox/fetch.token): say so in the log, never in production */
bool bearer_is_demo(const char *hex);

#endif
