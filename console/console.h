/* console - the pure parts of the ops console (console/main.c serves them):
 * which page or asset answers a path, which backend an /api/ path goes to,
 * the CSRF token of a session, and the same-origin check of a POST. No I/O,
 * so each is unit-tested (tests/unit/test_console.c). */
#ifndef PG_CONSOLE_H
#define PG_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONSOLE_SECRET_BYTES 32
#define CONSOLE_CSRF_HEX 64
#define CONSOLE_PATH_MAX 1024 /* a backend path with its query, at most */
#define CONSOLE_ASSET_NAME_MAX 64
#define CONSOLE_CHART_JS "uplot.min.js" /* uPlot's, served from console/chart_dir (console/main.c) */
#define CONSOLE_CHART_CSS "uplot.min.css"

/* the process behind an /api/ path */
typedef enum { CONSOLE_NONE = 0, CONSOLE_APPROVE, CONSOLE_AUDIT } console_backend_t;

/* console_route_t - where an /api/ request goes */
typedef struct {
    console_backend_t backend;
    char path[CONSOLE_PATH_MAX]; /* on the backend, ids percent-encoded, no query */
    bool session;                /* GET /api/session: approve's /whoami plus the CSRF token */
} console_route_t;

/* console_api_route - map method + path (as libmicrohttpd hands it:
 * percent-decoded) under /api/ to a backend path:
 *   GET  /api/session                      approve  /whoami
 *   GET  /api/approvals                    approve  /approvals
 *   GET  /api/approvals/{id}               approve  /approvals/{id}
 *   POST /api/approvals/{id}/decisions     approve  /approvals/{id}/decisions
 *   POST /api/reviews/{id}/retry|close     approve  /reviews/{id}/retry|close
 *   GET  /api/cases                        audit    /cases
 *   GET  /api/cases/{id}                   audit    /cases/{id}
 *   GET|POST /api/audit/verify             audit    /audit/verify
 * 0 when routed; 404 for an unknown path, 405 for a known path with another
 * method (why says which). An id is one non-empty segment of at most 200
 * bytes and is re-encoded for the backend. */
int console_api_route(const char *method, const char *path, console_route_t *out, char *why, size_t whylen);

/* console_query_key_ok - whether a query parameter is passed on to a backend
 * (state, status, kind, tier, max_age_s, limit, q); others are dropped */
bool console_query_key_ok(const char *key);

/* console_page - for a GET of a non-API path: the asset name that answers
 * it into name ("index.html" for the pages /, /signin, /ops, /audit,
 * /pipeline and /case/{id}; NAME for /static/NAME when NAME is [a-z0-9._-] without "..")
 * and true; false for anything else (404) */
bool console_page(const char *path, char name[CONSOLE_ASSET_NAME_MAX]);

/* console_content_type - by the asset's extension; NULL if not served */
const char *console_content_type(const char *name);

/* console_csrf - the CSRF token of a session: hex HMAC-SHA256(secret, the
 * Authorization header's value), so it is bound to the person's token and
 * to this console process (a restart draws a new secret) */
void console_csrf(const unsigned char secret[CONSOLE_SECRET_BYTES], const char *authorization,
                  char out[CONSOLE_CSRF_HEX + 1]);

/* console_csrf_ok - token (the X-CSRF-Token header, may be NULL) is the
 * session's token; compared in constant time */
bool console_csrf_ok(const unsigned char secret[CONSOLE_SECRET_BYTES], const char *authorization, const char *token);

/* console_bearer - the token of an "Authorization: Bearer <token>" value
 * when it is one (RFC 6750's b64token: letters, digits, -._~+/ then any
 * '=', at most CONSOLE_TOKEN_MAX bytes), else NULL: a value that cannot be
 * any approver's token is a 401 here, not passed on */
#define CONSOLE_TOKEN_MAX 4096
const char *console_bearer(const char *authorization);

/* console_same_origin - a state-changing request's Origin (may be NULL:
 * browsers send it on every POST, other clients need not) names this
 * server (Host), and Sec-Fetch-Site (may be NULL) is same-origin or none */
bool console_same_origin(const char *origin, const char *host, const char *sec_fetch_site);

/* console_known_t - the people approve said yes to lately (GET /whoami
 * 200), by the SHA-256 of their token (never the token): the Pipeline page
 * (GET /api/pipeline) stays served to them for console/pipeline_grace_s
 * while approve does not answer, which is when it is needed most. At most
 * CONSOLE_KNOWN_MAX; one more replaces the one heard from longest ago. The
 * caller locks. */
#define CONSOLE_KNOWN_MAX 64
typedef struct {
    unsigned char hash[CONSOLE_KNOWN_MAX][32];
    int64_t at_ms[CONSOLE_KNOWN_MAX];
    size_t n;
} console_known_t;

/* console_known_note - approve knows token now (now_ms: any clock, the same for all calls) */
void console_known_note(console_known_t *k, const char *token, int64_t now_ms);
/* console_known_recent - approve knew token within grace_ms of now_ms */
bool console_known_recent(const console_known_t *k, const char *token, int64_t now_ms, int64_t grace_ms);
/* console_known_forget - approve no longer knows token (its 401) */
void console_known_forget(console_known_t *k, const char *token);

#endif
