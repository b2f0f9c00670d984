/* http - the sandbox's libmicrohttpd handler: one port, every system.
 *
 * A call to an emulated system goes through, in order:
 *   1. bounds: body <= 1 MiB (413), ids <= 128 characters (400);
 *   2. auth: Bearer token from the tokens file (401), read tokens GET only (403);
 *   3. route: the system's router (404 / 405, in the system's error shape);
 *   4. Idempotency-Key: required on POST (400), <= 255 characters;
 *   --- under the store lock, in one transaction ---
 *   5. faults: the oldest matching fault is used up: its status replaces the
 *      answer (no state change), its delay holds the answer back;
 *   6. replay: a stored key with the same request hash answers the stored
 *      answer (the ledger's 201 as 200), another request with it is 422;
 *   7. the system's handler (inside a savepoint: an error leaves no trace);
 *      a 2xx answer is stored under the Idempotency-Key;
 *   8. the calls log records the call, whatever its outcome.
 * Steps 1-4 record their refusals too, so the log shows every call.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "sandbox.h"

const sbx_system_t *const sbx_systems[] = {&sbx_payments,   &sbx_ledger, &sbx_psp, &sbx_jira,
                                           &sbx_servicenow, &sbx_teams,  &sbx_llm, NULL};

/* ctx_t - one HTTP request in progress */
typedef struct {
    enum { CTX_READING, CTX_WAITING, CTX_DONE } state;
    char *body;
    size_t len;
    bool too_large;
    sbx_resp_t resp;
} ctx_t;

/* sbx_system_by_name - look a system up by its name (faults, calls filter) */
const sbx_system_t *sbx_system_by_name(const char *name)
{
    for (int i = 0; name && sbx_systems[i]; i++)
        if (strcmp(sbx_systems[i]->name, name) == 0)
            return sbx_systems[i];
    return NULL;
}

/* s_system_of - the system whose prefix url is under; *rel gets the rest */
static const sbx_system_t *s_system_of(const char *url, const char **rel)
{
    for (int i = 0; sbx_systems[i]; i++) {
        size_t n = strlen(sbx_systems[i]->prefix);
        if (strncmp(url, sbx_systems[i]->prefix, n) == 0 && (url[n] == '\0' || url[n] == '/')) {
            *rel = url[n] ? url + n : "/";
            return sbx_systems[i];
        }
    }
    return NULL;
}

/* s_token - which kind of token the Authorization header carries */
static sbx_token_kind_t s_token(const sbx_sandbox_t *sb, const char *auth)
{
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return TOKEN_NONE;
    const char *t = auth + 7;
    while (*t == ' ')
        t++;
    size_t n = strlen(t);
    while (n && t[n - 1] == ' ')
        n--;
    for (int i = 0; i < sb->ntokens; i++)
        if (strlen(sb->tokens[i].token) == n && n && CRYPTO_memcmp(sb->tokens[i].token, t, n) == 0)
            return sb->tokens[i].kind;
    return TOKEN_NONE;
}

/* query_t - the query string rebuilt from libmicrohttpd's decoded arguments */
typedef struct {
    char text[2048];
    size_t len;
} query_t;

/* s_query_arg - append one "key=value" (bounded; the log is for people) */
static enum MHD_Result s_query_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void) kind;
    query_t *q = cls;
    int n = snprintf(q->text + q->len, sizeof q->text - q->len, "%s%s%s%s", q->len ? "&" : "", key, value ? "=" : "",
                     value ? value : "");
    if (n > 0 && q->len + (size_t) n < sizeof q->text)
        q->len += (size_t) n;
    else
        q->text[q->len] = '\0';
    return MHD_YES;
}

/* s_emulated - steps 1-8 above for one call to sys */
static long s_emulated(sbx_sandbox_t *sb, const sbx_system_t *sys, const char *rel, const char *method,
                       struct MHD_Connection *conn, ctx_t *ctx)
{
    sbx_resp_t *resp = &ctx->resp;
    sbx_req_t req = {
        .system = sys->name, .method = method, .path = rel, .conn = conn, .body = ctx->body, .len = ctx->len};
    req.host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    query_t q = {.len = 0};
    q.text[0] = '\0';
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, s_query_arg, &q);
    const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
    bool is_post = strcmp(method, "POST") == 0;
    sbx_token_kind_t tok = s_token(sb, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"));
    const char *auth = tok == TOKEN_READ ? "read" : tok == TOKEN_WRITE ? "write" : NULL;
    int route = -1;

    if (ctx->too_large)
        sbx_error(resp, MHD_HTTP_CONTENT_TOO_LARGE, "body over %d bytes", SBX_MAX_BODY);
    else if (sys->auth && tok == TOKEN_NONE)
        sbx_error(resp, MHD_HTTP_UNAUTHORIZED, "unauthorized");
    else if (sys->auth && is_post && tok == TOKEN_READ && !sys->read_token_posts)
        sbx_error(resp, MHD_HTTP_FORBIDDEN, "read-only token");
    else if ((route = sys->route(&req, resp)) < 0)
        ; /* the router answered */
    else if (is_post && sys->idempotent_posts && (!key || !*key))
        sbx_error(resp, MHD_HTTP_BAD_REQUEST, "Idempotency-Key header required");
    else if (is_post && sys->idempotent_posts && strlen(key) > SBX_KEY_MAX)
        sbx_error(resp, MHD_HTTP_BAD_REQUEST, "Idempotency-Key longer than %d characters", SBX_KEY_MAX);

    long delay_ms = 0;
    sbx_fault_t fault = {0};
    sbx_store_lock(sb->store);
    bool in_tx = sbx_store_begin(sb->store) == 0;
    if (!in_tx)
        sbx_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "sandbox storage: %s", sbx_store_error(sb->store));
    if (!resp->status && sbx_store_fault_take(sb->store, sys->name, method, rel, q.text, &fault)) {
        delay_ms = fault.delay_ms;
        resp->retry_after_s = fault.retry_after_s;
        if (fault.status && !fault.after_effect)
            sbx_error(resp, fault.status, "sandbox fault %lld: injected status %u", fault.id, fault.status);
    }
    char hash[65] = "";
    bool idem = !resp->status && is_post && sys->idempotent_posts;
    if (idem) {
        const char *parts[] = {method, rel, q.text, ctx->body ? ctx->body : ""};
        size_t lens[] = {strlen(method), strlen(rel), q.len, ctx->len};
        sbx_sha256_hex(parts, lens, 4, hash);
        char stored_hash[65];
        unsigned status = 0;
        char *body = NULL;
        int found = sbx_store_idem_get(sb->store, sys->name, key, stored_hash, &status, &body);
        if (found < 0) {
            sbx_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "sandbox storage: %s", sbx_store_error(sb->store));
        } else if (found && strcmp(stored_hash, hash) != 0) {
            sbx_error(resp, MHD_HTTP_UNPROCESSABLE_CONTENT, "Idempotency-Key reused with a different request");
        } else if (found) {
            resp->status = (status == MHD_HTTP_CREATED && sys->replay_201_as_200) ? MHD_HTTP_OK : status;
            free(resp->body);
            resp->body = body;
            body = NULL;
            resp->replayed = true;
        }
        free(body);
    }
    if (!resp->status) {
        json_error_t jerr;
        if (is_post) {
            req.json = json_loadb(ctx->body ? ctx->body : "", ctx->len, JSON_REJECT_DUPLICATES, &jerr);
            if (!json_is_object(req.json))
                sbx_error(resp, MHD_HTTP_BAD_REQUEST, "body must be a JSON object: %s",
                          req.json ? "not an object" : jerr.text);
        }
        if (!resp->status) {
            req.route = route;
            sbx_db_exec(sb->store, "SAVEPOINT handler", "");
            sys->handle(sb->store, &req, resp);
            if (resp->status >= 300)
                sbx_db_exec(sb->store, "ROLLBACK TO handler", "");
            else if (idem && sbx_store_idem_put(sb->store, sys->name, key, hash, resp->status, resp->body))
                sbx_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "sandbox storage: %s", sbx_store_error(sb->store));
            sbx_db_exec(sb->store, "RELEASE handler", "");
            if (fault.after_effect && fault.status && resp->status < 300) /* done, but the answer is lost */
                sbx_error(resp, fault.status, "sandbox fault %lld: the call took effect, then answered %u", fault.id,
                          fault.status);
        }
        json_decref(req.json);
    }
    sbx_call_rec_t call = {.system = sys->name,
                           .method = method,
                           .path = rel,
                           .query = q.text,
                           .idempotency_key = key,
                           .auth = auth,
                           .traceparent = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "traceparent"),
                           .status = resp->status,
                           .fault_id = fault.id,
                           .request = ctx->too_large ? NULL : ctx->body,
                           .request_len = ctx->len,
                           .response = resp->body,
                           .response_len = resp->body ? strlen(resp->body) : 0};
    if (in_tx && (sbx_store_call_add(sb->store, &call) != 0 || sbx_store_commit(sb->store) != 0)) {
        log_error("sqlite commit: %s", sbx_store_error(sb->store));
        sbx_store_rollback(sb->store);
        sbx_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "sandbox storage: %s", sbx_store_error(sb->store));
    }
    sbx_store_unlock(sb->store);
    log_debug("%s %s%s -> %u%s", method, sys->prefix, rel, resp->status, fault.id ? " (fault)" : "");
    return delay_ms;
}

/* s_process - answer a complete request: control, an emulated system, or 404;
 * returns how long to hold the answer back */
static long s_process(sbx_sandbox_t *sb, const char *url, const char *method, struct MHD_Connection *conn, ctx_t *ctx)
{
    if (strcmp(url, "/_sandbox") == 0 || strncmp(url, "/_sandbox/", 10) == 0) {
        if (ctx->too_large)
            sbx_error(&ctx->resp, MHD_HTTP_CONTENT_TOO_LARGE, "body over %d bytes", SBX_MAX_BODY);
        else if (strcmp(url, "/_sandbox/adyen/notify") == 0) /* no store: it calls ingest */
            sbx_adyen_notify(sb, method, ctx->body, ctx->len, &ctx->resp);
        else
            sbx_control_handle(sb->store, method, url + 9, conn, ctx->body, ctx->len, &ctx->resp);
        return 0;
    }
    if (strcmp(url, "/otlp/v1/traces") == 0) { /* the collector (otlp.c) */
        if (ctx->too_large)
            sbx_error(&ctx->resp, MHD_HTTP_CONTENT_TOO_LARGE, "body over %d bytes", SBX_MAX_BODY);
        else
            sbx_otlp(sb->store, method, ctx->body, ctx->len, &ctx->resp);
        return 0;
    }
    const char *rel = NULL;
    const sbx_system_t *sys = s_system_of(url, &rel);
    if (sys)
        return s_emulated(sb, sys, rel, method, conn, ctx);
    sbx_error(
        &ctx->resp, MHD_HTTP_NOT_FOUND,
        "unknown path %s (the sandbox serves /payments /ledger /psp /jira /servicenow /teams /llm /otlp /_sandbox)",
        url);
    return 0;
}

/* s_queue - send the answer built in ctx */
static enum MHD_Result s_queue(struct MHD_Connection *conn, ctx_t *ctx)
{
    sbx_resp_t *r = &ctx->resp;
    size_t n = r->body ? strlen(r->body) : 0;
    struct MHD_Response *mr = MHD_create_response_from_buffer(n, r->body ? r->body : "", MHD_RESPMEM_MUST_COPY);
    if (!mr)
        return MHD_NO;
    if (n)
        MHD_add_response_header(mr, "Content-Type", "application/json");
    if (r->retry_after_s > 0) {
        char ra[24];
        snprintf(ra, sizeof ra, "%ld", r->retry_after_s);
        MHD_add_response_header(mr, "Retry-After", ra);
    }
    if (r->replayed)
        MHD_add_response_header(mr, "Idempotent-Replayed", "true");
    if (r->status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(mr, "WWW-Authenticate", "Bearer");
    enum MHD_Result rc = MHD_queue_response(conn, r->status ? r->status : MHD_HTTP_INTERNAL_SERVER_ERROR, mr);
    MHD_destroy_response(mr);
    ctx->state = CTX_DONE;
    return rc;
}

/* http_answer - libmicrohttpd's access handler: read (bounded), process, answer */
enum MHD_Result http_answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                            const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void) version;
    sbx_sandbox_t *sb = cls;
    ctx_t *ctx = *con_cls;
    if (!ctx) {
        ctx = calloc(1, sizeof *ctx);
        if (!ctx)
            return MHD_NO;
        *con_cls = ctx;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > SBX_MAX_BODY) {
            /* refuse before reading: answer now, libmicrohttpd closes the connection */
            ctx->too_large = true;
            s_process(sb, url, method, conn, ctx);
            return s_queue(conn, ctx);
        }
        return MHD_YES;
    }
    if (ctx->state == CTX_READING && *upload_data_size) {
        size_t n = *upload_data_size;
        if (!ctx->too_large && ctx->len + n <= SBX_MAX_BODY) {
            char *nb = realloc(ctx->body, ctx->len + n + 1);
            if (!nb)
                return MHD_NO;
            ctx->body = nb;
            memcpy(ctx->body + ctx->len, upload_data, n);
            ctx->len += n;
            ctx->body[ctx->len] = '\0';
        } else {
            ctx->too_large = true; /* keep reading, discarding, so we can answer */
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (ctx->state == CTX_READING) {
        long delay_ms = s_process(sb, url, method, conn, ctx);
        if (delay_ms > 0 && sbx_delay_suspend(sb->delay, conn, delay_ms)) {
            ctx->state = CTX_WAITING;
            return MHD_YES;
        }
        return s_queue(conn, ctx);
    }
    if (ctx->state == CTX_WAITING) /* resumed after the delay */
        return s_queue(conn, ctx);
    return MHD_YES;
}

/* sbx_http_completed - free a request's state once libmicrohttpd is done with it */
void sbx_http_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void) cls;
    (void) conn;
    (void) toe;
    ctx_t *ctx = *con_cls;
    if (!ctx)
        return;
    free(ctx->body);
    free(ctx->resp.body);
    free(ctx);
    *con_cls = NULL;
}
