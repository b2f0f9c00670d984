/* sandbox - one process standing in for every outside system (see main.c).
 *
 * Modules:
 *   main.c        the manual, configuration, signals, start and stop
 *   http.c        libmicrohttpd handler: bounds, routing, auth, faults,
 *                 idempotency, the calls log, delayed answers
 *   delay.c       a timer thread that resumes suspended (delayed) answers
 *   store.c       SQLite: schema, one connection behind one mutex, helpers
 *   seed.c        the built-in demo data and the loader of seed documents
 *   util.c        small helpers: JSON field checks, path matching, time
 *   payments.c ledger.c psp.c jira.c servicenow.c teams.c llm.c
 *                 the emulated systems (CONTRACT.md §2)
 *   control.c     the /_sandbox test-fixture API
 *   adyen.c       /_sandbox/adyen/notify: signed Adyen notifications sent to ingest
 *   stripe.c      Stripe's sending side: keep an event, send it as a signed webhook
 */
#ifndef PG_SANDBOX_H
#define PG_SANDBOX_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SBX_MAX_BODY (1024 * 1024)   /* request bodies above: 413 */
#define SBX_ID_MAX 128               /* ids in paths and bodies */
#define SBX_KEY_MAX 255              /* Idempotency-Key length (Stripe's) */
#define SBX_CALLS_KEEP 100000        /* the calls log keeps the newest N */
#define SBX_SPANS_KEEP 100000        /* the collector keeps the newest N spans (otlp.c) */
#define SBX_LOG_BODY_MAX (64 * 1024) /* bodies logged in /calls, truncated above */
#define SBX_MAX_DELAY_MS 600000      /* a fault delays at most 10 minutes */
#define SBX_MAX_TOKENS 64

/* ------------------------------------------------------------------ store */

typedef struct sbx_store_t sbx_store_t;

/* sbx_store_open - open or create the database; seeds it when created; NULL + err */
sbx_store_t *sbx_store_open(const char *path, char *err, size_t errlen);
void sbx_store_close(sbx_store_t **self_p);

/* every store_* / db_* call below needs the lock (one connection, one writer) */
void sbx_store_lock(sbx_store_t *self);
void sbx_store_unlock(sbx_store_t *self);

/* transactions: begin (IMMEDIATE), commit, rollback; 0 / -1 */
int sbx_store_begin(sbx_store_t *self);
int sbx_store_commit(sbx_store_t *self);
void sbx_store_rollback(sbx_store_t *self);
/* sbx_store_error - the last SQLite error message */
const char *sbx_store_error(sbx_store_t *self);

/* Parameter formats for the db_* helpers, one char per '?':
 *   's' const char * (NULL binds SQL NULL)   'i' long long   'n' NULL
 * Column names drive the JSON shape of rows: a name "json:x" parses the
 * text as JSON into key x; "bool:x" turns an integer into true/false;
 * "opt:x" leaves out x when the value is NULL. */
int sbx_db_exec(sbx_store_t *self, const char *sql, const char *fmt, ...);
/* sbx_db_int - first column of the first row, or dflt if none */
long long sbx_db_int(sbx_store_t *self, long long dflt, const char *sql, const char *fmt, ...);
/* sbx_db_rows - every row as a JSON object; a new array (never NULL) */
json_t *sbx_db_rows(sbx_store_t *self, const char *sql, const char *fmt, ...);
/* sbx_db_row - the first row as a JSON object, or NULL */
json_t *sbx_db_row(sbx_store_t *self, const char *sql, const char *fmt, ...);
/* sbx_db_last_id - rowid of the last insert */
long long sbx_db_last_id(sbx_store_t *self);

/* sbx_store_reset - wipe every table (the calls log keeps counting) and re-seed */
int sbx_store_reset(sbx_store_t *self, char *err, size_t errlen);

/* the calls log */
typedef struct {
    const char *system, *method, *path, *query, *idempotency_key, *auth;
    const char *traceparent; /* the header as sent, NULL if none */
    unsigned status;
    long long fault_id;  /* 0: none */
    const char *request; /* raw body, may be NULL */
    size_t request_len;
    const char *response; /* raw answer, may be NULL */
    size_t response_len;
} sbx_call_rec_t;
int sbx_store_call_add(sbx_store_t *self, const sbx_call_rec_t *call);
/* sbx_store_calls - calls after since, optionally of one system, oldest first */
json_t *sbx_store_calls(sbx_store_t *self, const char *system, long long since, long long limit);

/* idempotency: 1 found (status, body set; body the caller's), 0 not found, -1 error */
int sbx_store_idem_get(sbx_store_t *self, const char *system, const char *key, char hash[65], unsigned *status,
                       char **body);
int sbx_store_idem_put(sbx_store_t *self, const char *system, const char *key, const char *hash, unsigned status,
                       const char *body);

/* SBX_NEXT_SEQ - SQL for the seq the next row of table will get (under the
 * store lock, one call at a time): rows are named in the statement that
 * inserts them, never in a second one (a row left half-named would refuse
 * every later insert: the chaos runs found it twice) */
#define SBX_NEXT_SEQ(table) "(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '" table "'), 0) + 1)"
#define SBX_NEXT_ENTRY_SEQ SBX_NEXT_SEQ("entries")

/* faults */
typedef struct {
    long long id;
    unsigned status; /* 0: answer normally */
    long delay_ms;
    long retry_after_s;
    bool after_effect; /* the call takes effect, then status is answered (a lost answer) */
} sbx_fault_t;
/* sbx_store_fault_take - consume one use of the oldest matching fault (method,
 * path prefix, and a text the query must contain); 1 taken, 0 none */
int sbx_store_fault_take(sbx_store_t *self, const char *system, const char *method, const char *path, const char *query,
                         sbx_fault_t *out);

/* store_setting_* - small named values (the LLM override) */
char *sbx_store_setting_get(sbx_store_t *self, const char *key);
int sbx_store_setting_set(sbx_store_t *self, const char *key, const char *value);

/* ------------------------------------------------------------------- seed */

/* sbx_seed_default_json - the built-in demo data, as a JSON document */
const char *sbx_seed_default_json(void);
/* sbx_seed_entry_types - the ledger's entry types, NULL-terminated */
const char *const *sbx_seed_entry_types(void);
/* sbx_seed_apply - add or replace the records of a seed document; 0 / -1 + err
 * (runs inside the caller's transaction) */
int sbx_seed_apply(sbx_store_t *store, json_t *doc, json_t *counts, char *err, size_t errlen);

/* --------------------------------------------------------- request/answer */

/* sbx_req_t - one call to an emulated system, as its handler sees it */
typedef struct {
    const char *system; /* "ledger" */
    const char *method; /* "POST" */
    const char *path;   /* relative to the system's prefix: "/entries" */
    const char *host;   /* Host header, may be NULL */
    struct MHD_Connection *conn;
    const char *body;
    size_t len;
    json_t *json;                /* the body parsed (POST), borrowed; else NULL */
    int route;                   /* what the system's router chose */
    char ids[2][SBX_ID_MAX + 1]; /* path parameters */
} sbx_req_t;

/* sbx_resp_t - an answer being built */
typedef struct {
    unsigned status;
    char *body;         /* malloc'd text, NULL: empty */
    long retry_after_s; /* > 0: a Retry-After header */
    bool replayed;      /* an idempotent replay (Idempotent-Replayed header) */
} sbx_resp_t;

/* otlp.c: the collector */
void sbx_otlp(sbx_store_t *st, const char *method, const char *body, size_t len, sbx_resp_t *resp);
json_t *sbx_otlp_spans(sbx_store_t *st, const char *trace_id);

/* sbx_reply - answer with status and obj (reference stolen; NULL: empty body); 0 */
int sbx_reply(sbx_resp_t *resp, unsigned status, json_t *obj);
/* sbx_error - {"error": "..."}; -1 */
int sbx_error(sbx_resp_t *resp, unsigned status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* sbx_query - a query-string argument, or NULL */
const char *sbx_query(const sbx_req_t *req, const char *name);

/* ------------------------------------------------------------------- util */

/* sbx_path_match - match path against pattern where "*" is one segment;
 * captures go to ids; 1 match, 0 no match, -1 a segment longer than SBX_ID_MAX */
int sbx_path_match(const char *pattern, const char *path, char ids[][SBX_ID_MAX + 1], int max_ids);
/* sbx_route - pick the route of req (fills req->ids) from a table ended by
 * a NULL pattern; the index, or SBX_NO_PATH, SBX_NO_METHOD, SBX_ID_TOO_LONG */
typedef struct {
    const char *method;
    const char *pattern;
} sbx_route_t;
#define SBX_NO_PATH (-1)
#define SBX_NO_METHOD (-2)
#define SBX_ID_TOO_LONG (-3)
int sbx_route(sbx_req_t *req, const sbx_route_t *routes);
/* sbx_route_error - the generic answer for a negative sbx_route result; -1 */
int sbx_route_error(int rc, const sbx_req_t *req, sbx_resp_t *resp);
/* sbx_only_fields - -1 + err if obj has a key not in allowed (NULL-terminated) */
int sbx_only_fields(json_t *obj, const char *const *allowed, char *err, size_t errlen);
/* sbx_str - string field: NULL + err when missing (if required), not a
 * string, empty (if nonempty) or longer than max; "" when optional and absent */
const char *sbx_str(json_t *obj, const char *key, bool required, bool nonempty, size_t max, char *err, size_t errlen);
/* sbx_amount - positive integer field into out; -1 + err */
int sbx_amount(json_t *obj, const char *key, long long *out, char *err, size_t errlen);
/* sbx_currency_ok - three letters A-Z (or a-z when lower) */
bool sbx_currency_ok(const char *s, bool lower);
/* sbx_now_rfc3339 - "2026-11-21T10:00:00Z" into out[32] */
void sbx_now_rfc3339(char out[32]);
/* sbx_now_ms - wall clock in ms */
long long sbx_now_ms(void);
/* sbx_sha256_hex - hex SHA-256 of the concatenated parts */
void sbx_sha256_hex(const char *const *parts, const size_t *lens, int n, char out[65]);
/* sbx_json_or_string - text as JSON if it parses, else as a (sanitised) string; NULL/"" -> null */
json_t *sbx_json_or_string(const char *text, size_t len);
/* sbx_in - is s one of the NULL-terminated set */
bool sbx_in(const char *s, const char *const *set);

/* ---------------------------------------------------------------- systems */

/* A system answers under its prefix. route() picks a handler for
 * (method, path) without looking at state: -1 with resp filled (404/405/400)
 * when nothing matches. handle() runs under the store lock inside a
 * transaction; it never sees faulted or replayed calls. */
typedef struct {
    const char *name;
    const char *prefix;
    bool auth;              /* a Bearer token from the tokens file is required */
    bool read_token_posts;  /* a read token may POST (the LLM) */
    bool idempotent_posts;  /* POSTs need an Idempotency-Key (and replay) */
    bool replay_201_as_200; /* the ledger's replay answers 200 */
    int (*route)(sbx_req_t *req, sbx_resp_t *resp);
    int (*handle)(sbx_store_t *store, sbx_req_t *req, sbx_resp_t *resp);
} sbx_system_t;

extern const sbx_system_t sbx_payments, sbx_ledger, sbx_psp, sbx_jira, sbx_servicenow, sbx_teams, sbx_llm;
/* sbx_systems - every emulated system, NULL-terminated */
extern const sbx_system_t *const sbx_systems[];
/* sbx_system_by_name - NULL if unknown */
const sbx_system_t *sbx_system_by_name(const char *name);

/* sbx_llm_content - the deterministic answer for a chat completion request (caller frees) */
char *sbx_llm_content(json_t *request);

/* ---------------------------------------------------------------- control */

/* sbx_control_handle - a /_sandbox call (path after "/_sandbox"); answers into resp */
void sbx_control_handle(sbx_store_t *store, const char *method, const char *path, struct MHD_Connection *conn,
                        const char *body, size_t len, sbx_resp_t *resp);

/* sbx_stripe_send - POST /_sandbox/stripe/send: keep a Stripe event, send it
 * signed as a webhook when a url is given (stripe.c); answers into resp */
int sbx_stripe_send(sbx_store_t *st, json_t *doc, sbx_resp_t *resp);

/* ------------------------------------------------------------------ delay */

typedef struct sbx_delay_t sbx_delay_t;
sbx_delay_t *sbx_delay_new(void);
/* sbx_delay_suspend - suspend conn and resume it after ms; false (not suspended)
 * once stopping: the caller answers at once */
bool sbx_delay_suspend(sbx_delay_t *self, struct MHD_Connection *conn, long ms);
/* sbx_delay_stop - resume everything waiting, accept no more, join the thread; how many resumed */
int sbx_delay_stop(sbx_delay_t *self);
void sbx_delay_destroy(sbx_delay_t **self_p);

/* ------------------------------------------------------------------- http */

typedef enum { TOKEN_NONE = 0, TOKEN_READ, TOKEN_WRITE } sbx_token_kind_t;

typedef struct {
    sbx_store_t *store;
    sbx_delay_t *delay;
    int ntokens;
    struct {
        sbx_token_kind_t kind;
        char token[257];
    } tokens[SBX_MAX_TOKENS];
    char adyen_url[512];      /* where /_sandbox/adyen/notify sends (ingest's /webhooks/adyen) */
    char adyen_key_file[512]; /* the sandbox's own copy of the Adyen HMAC keys (hex) */
} sbx_sandbox_t;

/* sbx_adyen_notify - POST /_sandbox/adyen/notify: sign the items given as
 * Adyen does and send them to ingest; the answer says what ingest said
 * (adyen.c) */
void sbx_adyen_notify(const sbx_sandbox_t *sb, const char *method, const char *body, size_t len, sbx_resp_t *resp);

/* http_answer / sbx_http_completed - libmicrohttpd callbacks (cls: sbx_sandbox_t) */
enum MHD_Result http_answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                            const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls);
void sbx_http_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe);

#endif
