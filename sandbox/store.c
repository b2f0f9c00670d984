/* store - the sandbox's state in one SQLite file, behind one mutex.
 *
 * One connection (WAL, synchronous=NORMAL: a sandbox may lose the last
 * moments before a power cut, never its consistency). Every HTTP thread
 * takes the lock for a whole call, so a call is one transaction and calls
 * are serialised: the calls log order is the order of effects.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "sandbox.h"

#define STORE_SCHEMA_VERSION                                                                                           \
    4 /* 2: jira_labels, sn_incidents.correlation_display, faults.after_effect;                                        \
         3: psp_events, faults.query_has; 4: calls.traceparent, spans (older ones are upgraded) */

struct sbx_store_t {
    sqlite3 *db;
    pthread_mutex_t mu;
};

/* the PSP's events (psp.c's Events API; seed.c's "events"), seq the listing order's tie-break */
#define S_EVENTS_TABLE                                                                                                 \
    "CREATE TABLE psp_events(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"                          \
    "  type TEXT NOT NULL, created INTEGER NOT NULL, body TEXT NOT NULL);\n"                                           \
    "CREATE INDEX psp_events_created ON psp_events(created, seq);\n"
/* the spans the collector (otlp.c) took */
#define S_SPANS_TABLE                                                                                                  \
    "CREATE TABLE spans(seq INTEGER PRIMARY KEY AUTOINCREMENT, service TEXT NOT NULL, trace_id TEXT NOT NULL,"         \
    "  span_id TEXT NOT NULL, parent_span_id TEXT, name TEXT NOT NULL, kind INTEGER NOT NULL,"                         \
    "  start_ns TEXT NOT NULL, end_ns TEXT NOT NULL, attributes TEXT NOT NULL);\n"                                     \
    "CREATE INDEX spans_trace ON spans(trace_id, seq);\n"

static const char *s_schema =
    "CREATE TABLE payouts(id TEXT PRIMARY KEY, status TEXT NOT NULL, amount INTEGER NOT NULL,"
    "  currency TEXT NOT NULL, beneficiary_id TEXT NOT NULL,"
    "  held_from TEXT, hold_case_id TEXT, hold_reason TEXT);\n"
    "CREATE TABLE beneficiaries(id TEXT PRIMARY KEY, status TEXT NOT NULL, case_id TEXT, reason TEXT);\n"
    "CREATE TABLE payments(id TEXT PRIMARY KEY, amount INTEGER NOT NULL, currency TEXT NOT NULL,"
    "  customer_id TEXT NOT NULL, customer_risk TEXT NOT NULL, flagged INTEGER NOT NULL,"
    "  refunded_amount INTEGER NOT NULL);\n"
    "CREATE TABLE psp_refunds(id TEXT PRIMARY KEY, amount INTEGER NOT NULL, currency TEXT NOT NULL,"
    "  status TEXT NOT NULL, payment_intent TEXT, payment_id TEXT, created INTEGER NOT NULL);\n"
    "CREATE TABLE psp_payouts(id TEXT PRIMARY KEY, amount INTEGER NOT NULL, currency TEXT NOT NULL,"
    "  status TEXT NOT NULL, failure_code TEXT, failure_message TEXT, payout_id TEXT,"
    "  created INTEGER NOT NULL);\n"
    "CREATE TABLE entries(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    "  type TEXT NOT NULL, ref TEXT NOT NULL, amount INTEGER NOT NULL, currency TEXT NOT NULL,"
    "  case_id TEXT, memo TEXT, created_at TEXT NOT NULL);\n"
    "CREATE INDEX entries_ref ON entries(ref);\n"
    "CREATE TABLE comms_blocks(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    "  ref TEXT NOT NULL, case_id TEXT NOT NULL, reason TEXT, created_at TEXT NOT NULL);\n"
    "CREATE TABLE jira_issues(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    "  key TEXT NOT NULL UNIQUE, project TEXT NOT NULL, summary TEXT NOT NULL, description TEXT,"
    "  issuetype TEXT NOT NULL, priority TEXT NOT NULL, labels TEXT NOT NULL, created TEXT NOT NULL);\n"
    "CREATE TABLE jira_labels(issue_key TEXT NOT NULL, label TEXT NOT NULL);\n"
    "CREATE INDEX jira_labels_label ON jira_labels(label);\n"
    "CREATE TABLE jira_comments(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    "  issue_key TEXT NOT NULL, body TEXT NOT NULL, created TEXT NOT NULL);\n"
    "CREATE TABLE sn_incidents(seq INTEGER PRIMARY KEY AUTOINCREMENT, sys_id TEXT NOT NULL UNIQUE,"
    "  number TEXT NOT NULL UNIQUE, short_description TEXT NOT NULL, description TEXT,"
    "  urgency TEXT NOT NULL, correlation_id TEXT, created TEXT NOT NULL, correlation_display TEXT);\n"
    "CREATE INDEX sn_incidents_correlation ON sn_incidents(correlation_id);\n"
    "CREATE TABLE teams_cards(seq INTEGER PRIMARY KEY AUTOINCREMENT, message TEXT NOT NULL,"
    "  received_at TEXT NOT NULL);\n"
    "CREATE TABLE idempotency(system TEXT NOT NULL, key TEXT NOT NULL, hash TEXT NOT NULL,"
    "  status INTEGER NOT NULL, body BLOB, created_ms INTEGER NOT NULL, PRIMARY KEY(system, key));\n"
    "CREATE TABLE faults(id INTEGER PRIMARY KEY AUTOINCREMENT, system TEXT NOT NULL, method TEXT,"
    "  path_prefix TEXT, status INTEGER NOT NULL, remaining INTEGER NOT NULL,"
    "  delay_ms INTEGER NOT NULL, retry_after_s INTEGER NOT NULL, after_effect INTEGER NOT NULL DEFAULT 0,"
    "  query_has TEXT);\n" S_EVENTS_TABLE
    "CREATE TABLE calls(seq INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL,"
    "  system TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, query TEXT NOT NULL,"
    "  idempotency_key TEXT, auth TEXT, status INTEGER NOT NULL, fault_id INTEGER,"
    "  request BLOB, response BLOB, traceparent TEXT);\n" S_SPANS_TABLE
    "CREATE INDEX calls_system ON calls(system, seq);\n"
    "CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);\n";

/* what version 2 added to version 1 */
static const char s_migrate_1_2[] =
    "ALTER TABLE sn_incidents ADD COLUMN correlation_display TEXT;"
    " CREATE TABLE jira_labels(issue_key TEXT NOT NULL, label TEXT NOT NULL);"
    " CREATE INDEX jira_labels_label ON jira_labels(label);"
    " CREATE INDEX sn_incidents_correlation ON sn_incidents(correlation_id);"
    " INSERT INTO jira_labels SELECT jira_issues.key, j.value FROM jira_issues, json_each(jira_issues.labels) AS j;"
    " ALTER TABLE faults ADD COLUMN after_effect INTEGER NOT NULL DEFAULT 0;";
/* what version 3 added to version 2 */
static const char s_migrate_2_3[] = "ALTER TABLE faults ADD COLUMN query_has TEXT;\n" S_EVENTS_TABLE;
/* what version 4 added to version 3 */
static const char s_migrate_3_4[] = "ALTER TABLE calls ADD COLUMN traceparent TEXT;\n" S_SPANS_TABLE;

/* every table reset wipes, in an order that needs no foreign keys */
static const char *const s_tables[] = {
    "payouts",     "beneficiaries", "payments",    "psp_refunds",  "psp_payouts", "entries",     "comms_blocks",
    "jira_issues", "jira_comments", "jira_labels", "sn_incidents", "teams_cards", "idempotency", "faults",
    "calls",       "settings",      "psp_events",  "spans",        NULL};

/* s_mkdirs - create the directories above path, like mkdir -p */
static int s_mkdirs(const char *path, char *err, size_t errlen)
{
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int) sizeof buf) {
        snprintf(err, errlen, "path too long: %s", path);
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create %s: %s", buf, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    return 0;
}

/* s_exec_script - run SQL without parameters; -1 + err */
static int s_exec_script(sbx_store_t *self, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(self->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite: %s", msg ? msg : sqlite3_errmsg(self->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* s_seed_default - load the built-in demo data (inside a transaction) */
static int s_seed_default(sbx_store_t *self, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *doc = json_loads(sbx_seed_default_json(), JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) { /* a broken invariant: the seed is compiled in */
        snprintf(err, errlen, "built-in seed is not JSON: %s (line %d)", jerr.text, jerr.line);
        return -1;
    }
    json_t *counts = json_object();
    int rc = sbx_seed_apply(self, doc, counts, err, errlen);
    json_decref(counts);
    json_decref(doc);
    return rc;
}

/* s_upgrade - a store of an earlier version (1 or 2) gains what the later
 * ones added, one version at a time, each in its own transaction; 0 or -1 */
static int s_upgrade(sbx_store_t *self, long long version, const char *path, char *err, size_t errlen)
{
    assert(self && version >= 1 && version < STORE_SCHEMA_VERSION);
    static const char *const steps[] = {NULL, s_migrate_1_2, s_migrate_2_3, s_migrate_3_4};
    for (long long v = version; v < STORE_SCHEMA_VERSION; v++) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version=%lld; COMMIT;", v + 1);
        if (s_exec_script(self, "BEGIN IMMEDIATE;", err, errlen) != 0 ||
            s_exec_script(self, steps[v], err, errlen) != 0 || s_exec_script(self, sql, err, errlen) != 0) {
            sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
        log_info("%s: schema upgraded from version %lld to %lld", path, v, v + 1);
    }
    assert(sbx_db_int(self, -1, "PRAGMA user_version", "") == STORE_SCHEMA_VERSION);
    return 0;
}

/* sbx_store_open - open, configure, create the schema and seed on first use */
sbx_store_t *sbx_store_open(const char *path, char *err, size_t errlen)
{
    if (s_mkdirs(path, err, errlen) != 0)
        return NULL;
    sbx_store_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&self->mu, NULL);
    if (sqlite3_open_v2(path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "sqlite %s: %s", path, self->db ? sqlite3_errmsg(self->db) : "cannot open");
        sbx_store_close(&self);
        return NULL;
    }
    sqlite3_busy_timeout(self->db, 5000);
    if (s_exec_script(self, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", err, errlen) != 0) {
        sbx_store_close(&self);
        return NULL;
    }
    long long version = sbx_db_int(self, -1, "PRAGMA user_version", "");
    if (version == 0) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d;", STORE_SCHEMA_VERSION);
        if (s_exec_script(self, "BEGIN IMMEDIATE;", err, errlen) != 0 ||
            s_exec_script(self, s_schema, err, errlen) != 0 || s_seed_default(self, err, errlen) != 0 ||
            s_exec_script(self, sql, err, errlen) != 0 || s_exec_script(self, "COMMIT;", err, errlen) != 0) {
            sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
            sbx_store_close(&self);
            return NULL;
        }
        log_info("created %s and loaded the built-in seed", path);
    } else if (version >= 1 && version < STORE_SCHEMA_VERSION && s_upgrade(self, version, path, err, errlen) != 0) {
        sbx_store_close(&self);
        return NULL;
    } else if (version < 1 || version > STORE_SCHEMA_VERSION) {
        snprintf(err, errlen, "%s: schema version %lld, this sandbox knows %d (remove the file to start over)", path,
                 version, STORE_SCHEMA_VERSION);
        sbx_store_close(&self);
        return NULL;
    }
    return self;
}

/* sbx_store_close - checkpoint and close the connection; NULL the pointer */
void sbx_store_close(sbx_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sbx_store_t *self = *self_p;
    if (self->db && sqlite3_close(self->db) != SQLITE_OK)
        log_warn("sqlite close: %s", sqlite3_errmsg(self->db));
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
}

/* sbx_store_lock - one call at a time touches the database */
void sbx_store_lock(sbx_store_t *self)
{
    pthread_mutex_lock(&self->mu);
}
/* sbx_store_unlock - the call is done */
void sbx_store_unlock(sbx_store_t *self)
{
    pthread_mutex_unlock(&self->mu);
}

/* sbx_store_begin - a write transaction for one call */
int sbx_store_begin(sbx_store_t *self)
{
    return sqlite3_exec(self->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}
/* sbx_store_commit - make the call's effects durable (as WAL/NORMAL allows) */
int sbx_store_commit(sbx_store_t *self)
{
    return sqlite3_exec(self->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}
/* sbx_store_rollback - undo a call that failed half way */
void sbx_store_rollback(sbx_store_t *self)
{
    sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
}
/* sbx_store_error - what SQLite last complained about */
const char *sbx_store_error(sbx_store_t *self)
{
    return sqlite3_errmsg(self->db);
}

/* s_prepare - compile sql and bind the parameters described by fmt */
static sqlite3_stmt *s_prepare(sbx_store_t *self, const char *sql, const char *fmt, va_list ap)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(self->db, sql, -1, &st, NULL) != SQLITE_OK) {
        log_error("sqlite prepare: %s: %s", sqlite3_errmsg(self->db), sql);
        return NULL;
    }
    for (int i = 0; fmt[i]; i++) {
        int rc;
        if (fmt[i] == 's') {
            const char *s = va_arg(ap, const char *);
            rc = s ? sqlite3_bind_text(st, i + 1, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i + 1);
        } else if (fmt[i] == 'i') {
            rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, long long));
        } else {
            rc = sqlite3_bind_null(st, i + 1);
        }
        if (rc != SQLITE_OK) {
            log_error("sqlite bind %d: %s", i + 1, sqlite3_errmsg(self->db));
            sqlite3_finalize(st);
            return NULL;
        }
    }
    return st;
}

/* s_row_json - the current row as an object, shaped by column name prefixes */
static json_t *s_row_json(sqlite3_stmt *st)
{
    json_t *obj = json_object();
    int n = sqlite3_column_count(st);
    for (int i = 0; i < n; i++) {
        const char *name = sqlite3_column_name(st, i);
        int type = sqlite3_column_type(st, i);
        json_t *v = NULL;
        if (strncmp(name, "opt:", 4) == 0) {
            name += 4;
            if (type == SQLITE_NULL)
                continue;
        }
        if (strncmp(name, "json:", 5) == 0) {
            name += 5;
            const char *text = (const char *) sqlite3_column_text(st, i);
            v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
            if (!v)
                v = json_null();
        } else if (strncmp(name, "bool:", 5) == 0) {
            name += 5;
            v = json_boolean(sqlite3_column_int64(st, i) != 0);
        } else if (type == SQLITE_INTEGER) {
            v = json_integer((json_int_t) sqlite3_column_int64(st, i));
        } else if (type == SQLITE_FLOAT) {
            v = json_real(sqlite3_column_double(st, i));
        } else if (type == SQLITE_NULL) {
            v = json_null();
        } else {
            const char *text = (const char *) sqlite3_column_text(st, i);
            v = json_stringn(text, (size_t) sqlite3_column_bytes(st, i));
            if (!v)
                v = json_string("");
        }
        json_object_set_new(obj, name, v);
    }
    return obj;
}

/* sbx_db_exec - one statement, no rows wanted */
int sbx_db_exec(sbx_store_t *self, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = s_prepare(self, sql, fmt, ap);
    va_end(ap);
    if (!st)
        return -1;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        log_error("sqlite: %s", sqlite3_errmsg(self->db));
    sqlite3_finalize(st);
    return (rc == SQLITE_DONE || rc == SQLITE_ROW) ? 0 : -1;
}

/* sbx_db_int - a single number (counts, ids, pragmas) */
long long sbx_db_int(sbx_store_t *self, long long dflt, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = s_prepare(self, sql, fmt, ap);
    va_end(ap);
    if (!st)
        return dflt;
    long long v = dflt;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* s_rows - shared body of sbx_db_rows and sbx_db_row */
static json_t *s_rows(sbx_store_t *self, int max, const char *sql, const char *fmt, va_list ap)
{
    json_t *arr = json_array();
    sqlite3_stmt *st = s_prepare(self, sql, fmt, ap);
    if (!st)
        return arr;
    while ((max < 0 || (int) json_array_size(arr) < max) && sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(arr, s_row_json(st));
    sqlite3_finalize(st);
    return arr;
}

/* sbx_db_rows - a query's rows as JSON objects */
json_t *sbx_db_rows(sbx_store_t *self, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *arr = s_rows(self, -1, sql, fmt, ap);
    va_end(ap);
    return arr;
}

/* sbx_db_row - a query's first row, NULL when there is none */
json_t *sbx_db_row(sbx_store_t *self, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *arr = s_rows(self, 1, sql, fmt, ap);
    va_end(ap);
    json_t *row = json_array_get(arr, 0);
    json_incref(row);
    json_decref(arr);
    return row;
}

/* sbx_db_last_id - the rowid just inserted (AUTOINCREMENT tables: their seq) */
long long sbx_db_last_id(sbx_store_t *self)
{
    return (long long) sqlite3_last_insert_rowid(self->db);
}

/* sbx_store_reset - back to the seed; sequences restart except the calls log's,
 * so a reader's "since" stays meaningful across a reset */
int sbx_store_reset(sbx_store_t *self, char *err, size_t errlen)
{
    if (sbx_store_begin(self) != 0) {
        snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(self->db));
        return -1;
    }
    for (int i = 0; s_tables[i]; i++) {
        char sql[96];
        snprintf(sql, sizeof sql, "DELETE FROM %s", s_tables[i]);
        if (sbx_db_exec(self, sql, "") != 0) {
            snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(self->db));
            sbx_store_rollback(self);
            return -1;
        }
    }
    if (sbx_db_exec(self, "DELETE FROM sqlite_sequence WHERE name <> 'calls'", "") != 0 ||
        s_seed_default(self, err, errlen) != 0) {
        if (!*err)
            snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(self->db));
        sbx_store_rollback(self);
        return -1;
    }
    if (sbx_store_commit(self) != 0) {
        snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(self->db));
        sbx_store_rollback(self);
        return -1;
    }
    return 0;
}

/* s_bind_blob - a possibly NULL body, truncated to what the log keeps */
static void s_bind_blob(sqlite3_stmt *st, int i, const char *p, size_t len)
{
    if (!p)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_blob(st, i, p, (int) (len > SBX_LOG_BODY_MAX ? SBX_LOG_BODY_MAX : len), SQLITE_TRANSIENT);
}

/* sbx_store_call_add - append to the calls log; trim it every 1000 calls */
int sbx_store_call_add(sbx_store_t *self, const sbx_call_rec_t *c)
{
    sqlite3_stmt *st = NULL;
    const char *sql = "INSERT INTO calls(time_ms, system, method, path, query, idempotency_key, auth, status,"
                      " fault_id, request, response, traceparent) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)";
    if (sqlite3_prepare_v2(self->db, sql, -1, &st, NULL) != SQLITE_OK) {
        log_error("sqlite prepare: %s", sqlite3_errmsg(self->db));
        return -1;
    }
    sqlite3_bind_int64(st, 1, sbx_now_ms());
    sqlite3_bind_text(st, 2, c->system, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, c->method, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, c->path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, c->query ? c->query : "", -1, SQLITE_STATIC);
    if (c->idempotency_key)
        sqlite3_bind_text(st, 6, c->idempotency_key, -1, SQLITE_STATIC);
    if (c->auth)
        sqlite3_bind_text(st, 7, c->auth, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, c->status);
    if (c->fault_id)
        sqlite3_bind_int64(st, 9, c->fault_id);
    s_bind_blob(st, 10, c->request, c->request_len);
    s_bind_blob(st, 11, c->response, c->response_len);
    if (c->traceparent)
        sqlite3_bind_text(st, 12, c->traceparent, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        log_error("sqlite calls log: %s", sqlite3_errmsg(self->db));
        return -1;
    }
    long long seq = sbx_db_last_id(self);
    if (seq % 1000 == 0 && seq > SBX_CALLS_KEEP)
        return sbx_db_exec(self, "DELETE FROM calls WHERE seq <= ?", "i", seq - SBX_CALLS_KEEP);
    return 0;
}

/* sbx_store_calls - the calls log as JSON, bodies shown as JSON when they are */
json_t *sbx_store_calls(sbx_store_t *self, const char *system, long long since, long long limit)
{
    json_t *arr = json_array();
    sqlite3_stmt *st = NULL;
    const char *sql = "SELECT seq, time_ms, system, method, path, query, idempotency_key, auth, status,"
                      " fault_id, request, response, traceparent FROM calls"
                      " WHERE seq > ?1 AND (?2 IS NULL OR system = ?2) ORDER BY seq LIMIT ?3";
    if (sqlite3_prepare_v2(self->db, sql, -1, &st, NULL) != SQLITE_OK) {
        log_error("sqlite prepare: %s", sqlite3_errmsg(self->db));
        return arr;
    }
    sqlite3_bind_int64(st, 1, since);
    if (system)
        sqlite3_bind_text(st, 2, system, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, limit);
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_t *o = json_object();
        json_object_set_new(o, "seq", json_integer(sqlite3_column_int64(st, 0)));
        json_object_set_new(o, "time_ms", json_integer(sqlite3_column_int64(st, 1)));
        const char *names[] = {"system", "method", "path", "query", "idempotency_key", "auth"};
        for (int i = 0; i < 6; i++) {
            const char *v = (const char *) sqlite3_column_text(st, 2 + i);
            json_object_set_new(o, names[i], v ? json_string(v) : json_null());
        }
        json_object_set_new(o, "status", json_integer(sqlite3_column_int64(st, 8)));
        json_object_set_new(o, "fault_id",
                            sqlite3_column_type(st, 9) == SQLITE_NULL ? json_null()
                                                                      : json_integer(sqlite3_column_int64(st, 9)));
        json_object_set_new(o, "request",
                            sbx_json_or_string(sqlite3_column_blob(st, 10), (size_t) sqlite3_column_bytes(st, 10)));
        json_object_set_new(o, "response",
                            sbx_json_or_string(sqlite3_column_blob(st, 11), (size_t) sqlite3_column_bytes(st, 11)));
        const char *tp = (const char *) sqlite3_column_text(st, 12);
        json_object_set_new(o, "traceparent", tp ? json_string(tp) : json_null());
        json_array_append_new(arr, o);
    }
    sqlite3_finalize(st);
    return arr;
}

/* sbx_store_idem_get - the stored answer for (system, key) and its request hash */
int sbx_store_idem_get(sbx_store_t *self, const char *system, const char *key, char hash[65], unsigned *status,
                       char **body)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(self->db, "SELECT hash, status, body FROM idempotency WHERE system = ? AND key = ?", -1, &st,
                           NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, system, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(hash, 65, "%s", (const char *) sqlite3_column_text(st, 0));
        *status = (unsigned) sqlite3_column_int(st, 1);
        int n = sqlite3_column_bytes(st, 2);
        *body = NULL;
        if (sqlite3_column_type(st, 2) != SQLITE_NULL) {
            *body = malloc((size_t) n + 1);
            if (*body) {
                memcpy(*body, sqlite3_column_blob(st, 2), (size_t) n);
                (*body)[n] = '\0';
            }
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* sbx_store_idem_put - remember a completed call's answer under its key */
int sbx_store_idem_put(sbx_store_t *self, const char *system, const char *key, const char *hash, unsigned status,
                       const char *body)
{
    return sbx_db_exec(self, "INSERT INTO idempotency(system, key, hash, status, body, created_ms) VALUES(?,?,?,?,?,?)",
                       "sssisi", system, key, hash, (long long) status, body, sbx_now_ms());
}

/* sbx_store_fault_take - faults apply oldest first; each use counts down */
int sbx_store_fault_take(sbx_store_t *self, const char *system, const char *method, const char *path, const char *query,
                         sbx_fault_t *out)
{
    json_t *row = sbx_db_row(self,
                             "SELECT id, status, delay_ms, retry_after_s, after_effect FROM faults WHERE system = ?1"
                             " AND remaining > 0"
                             " AND (method IS NULL OR method = ?2)"
                             " AND (path_prefix IS NULL OR substr(?3, 1, length(path_prefix)) = path_prefix)"
                             " AND (query_has IS NULL OR instr(?4, query_has) > 0)"
                             " ORDER BY id LIMIT 1",
                             "ssss", system, method, path, query ? query : "");
    if (!row)
        return 0;
    out->id = (long long) json_integer_value(json_object_get(row, "id"));
    out->status = (unsigned) json_integer_value(json_object_get(row, "status"));
    out->delay_ms = (long) json_integer_value(json_object_get(row, "delay_ms"));
    out->retry_after_s = (long) json_integer_value(json_object_get(row, "retry_after_s"));
    out->after_effect = json_integer_value(json_object_get(row, "after_effect")) != 0;
    json_decref(row);
    sbx_db_exec(self, "UPDATE faults SET remaining = remaining - 1 WHERE id = ?", "i", out->id);
    sbx_db_exec(self, "DELETE FROM faults WHERE remaining <= 0", "");
    return 1;
}

/* sbx_store_setting_get - a named value (caller frees), NULL if unset */
char *sbx_store_setting_get(sbx_store_t *self, const char *key)
{
    json_t *row = sbx_db_row(self, "SELECT value FROM settings WHERE key = ?", "s", key);
    char *v = row ? strdup(json_string_value(json_object_get(row, "value"))) : NULL;
    json_decref(row);
    return v;
}

/* sbx_store_setting_set - set (value) or clear (NULL) a named value */
int sbx_store_setting_set(sbx_store_t *self, const char *key, const char *value)
{
    if (!value)
        return sbx_db_exec(self, "DELETE FROM settings WHERE key = ?", "s", key);
    return sbx_db_exec(self, "INSERT OR REPLACE INTO settings(key, value) VALUES(?, ?)", "ss", key, value);
}
