/* store - validate's state in SQLite (see store.h) */
#include "store.h"

#include <assert.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sqlx.h"

/* STORE_STMTS - statements kept prepared: every query below, each a string
 * constant, is prepared once and reset after each use (preparing them per
 * call was a fifth of validate's CPU) */
#define STORE_STMTS 16
/* STORE_CACHE_KIB - SQLite's page cache, in KiB (negative: a size, not a page
 * count): 1 MiB instead of SQLite's 2. Each check touches a few pages of two
 * keyed tables; the pages it misses come from the kernel's cache. The
 * second MiB was an eighth of validate's heap under load (heaptrack). */
#define STORE_CACHE_KIB "-1024"

struct store_t {
    sqlite3 *db;
    char path[512];
    struct {
        const char *sql; /* the caller's string constant: its address is the key */
        sqlite3_stmt *st;
    } stmts[STORE_STMTS];
    int nstmts;
    bool in_txn;
};

/* keys is also read, read-only, by `payguard catch-up` (payguard/catchup_cmd.c,
 * s_seen: a key equal to a Stripe event id or starting "<id>:"): change the
 * table or the keys' shape there too */
static const char s_schema[] =
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS keys(key TEXT PRIMARY KEY, case_id TEXT NOT NULL, first_event TEXT NOT NULL,"
    "  count INTEGER NOT NULL DEFAULT 1);"
    "CREATE TABLE IF NOT EXISTS cases(case_id TEXT PRIMARY KEY, kind TEXT NOT NULL, ref TEXT NOT NULL,"
    "  psp_time INTEGER NOT NULL, status TEXT NOT NULL, amount INTEGER NOT NULL, currency TEXT NOT NULL,"
    "  payment_id TEXT NOT NULL, updated_ms INTEGER NOT NULL, receipts INTEGER NOT NULL DEFAULT 0,"
    "  duplicates INTEGER NOT NULL DEFAULT 0, out_of_order INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS cases_pending ON cases(kind, status, updated_ms);"
    "INSERT OR IGNORE INTO meta(k, v) VALUES('applied_seq', 0);"
    "PRAGMA user_version = 2;";

#define STORE_SCHEMA_VERSION 2

/* s_user_version - the schema version of an opened file (0: new) */
static int s_user_version(sqlite3 *db)
{
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* s_exec - run SQL that returns no rows; log what failed */
static int s_exec(store_t *self, const char *sql)
{
    return sqlx_exec(self->db, "store", self->path, sql);
}

/* s_prep - sql's statement, prepared on first use and kept; NULL (logged)
 * if it does not prepare. Give it back with s_done. */
static sqlite3_stmt *s_prep(store_t *self, const char *sql)
{
    for (int i = 0; i < self->nstmts; i++)
        if (self->stmts[i].sql == sql)
            return self->stmts[i].st;
    assert(self->nstmts < STORE_STMTS); /* a fixed set of constants */
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(self->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        log_error("store %s: %s", self->path, sqlite3_errmsg(self->db));
        return NULL;
    }
    self->stmts[self->nstmts].sql = sql;
    self->stmts[self->nstmts++].st = st;
    return st;
}

/* s_done - a kept statement ready for its next use */
static void s_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* store_open - open or create, WAL, schema */
store_t *store_open(const char *path, char *err, size_t errlen)
{
    store_t *self = calloc(1, sizeof *self);
    snprintf(self->path, sizeof self->path, "%s", path);
    if (sqlite3_open_v2(path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
            SQLITE_OK ||
        s_exec(self, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=" STORE_CACHE_KIB ";") ||
        (s_user_version(self->db) != 0 && s_user_version(self->db) != STORE_SCHEMA_VERSION &&
         s_exec(self, "DROP TABLE IF EXISTS keys; DROP TABLE IF EXISTS cases; DROP TABLE IF EXISTS meta;")) ||
        s_exec(self, s_schema)) {
        snprintf(err, errlen, "state store %s: %s", path, self->db ? sqlite3_errmsg(self->db) : "cannot open");
        store_close(&self);
        return NULL;
    }
    return self;
}

/* store_close - close and NULL */
void store_close(store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    for (int i = 0; i < (*self_p)->nstmts; i++)
        sqlite3_finalize((*self_p)->stmts[i].st);
    sqlite3_close((*self_p)->db);
    free(*self_p);
    *self_p = NULL;
}

/* store_wipe - forget everything; the journal will be replayed */
int store_wipe(store_t *self)
{
    return s_exec(self, "DELETE FROM keys; DELETE FROM cases; UPDATE meta SET v = 0 WHERE k = 'applied_seq';");
}

static int s_run(store_t *self, const char *sql, const char *fmt, ...);

/* store_begin - open a transaction unless one is open */
int store_begin(store_t *self)
{
    if (self->in_txn)
        return 0;
    int rc = s_run(self, "BEGIN", "");
    self->in_txn = rc == 0;
    return rc;
}

/* store_commit - commit the open transaction, if any */
int store_commit(store_t *self)
{
    if (!self->in_txn)
        return 0;
    int rc = s_run(self, "COMMIT", "");
    self->in_txn = rc != 0;
    return rc;
}

/* store_applied_seq - the last journal seq reflected here */
uint64_t store_applied_seq(store_t *self)
{
    sqlite3_stmt *st = s_prep(self, "SELECT v FROM meta WHERE k = 'applied_seq'");
    uint64_t v = 0;
    if (st && sqlite3_step(st) == SQLITE_ROW)
        v = (uint64_t) sqlite3_column_int64(st, 0);
    if (st)
        s_done(st);
    return v;
}

/* s_run - prepare, bind texts/ints by a tiny format, step once */
static int s_run(store_t *self, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st = s_prep(self, sql);
    if (!st)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    for (int i = 0; fmt[i]; i++) {
        if (fmt[i] == 's')
            sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
        else
            sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
    }
    va_end(ap);
    int rc = sqlite3_step(st);
    s_done(st);
    if (rc != SQLITE_DONE) {
        log_error("store %s: %s", self->path, sqlite3_errmsg(self->db));
        return -1;
    }
    return 0;
}

/* store_set_applied - stamp the journal seq this state reflects */
int store_set_applied(store_t *self, uint64_t seq)
{
    return s_run(self, "UPDATE meta SET v = ? WHERE k = 'applied_seq'", "i", (int64_t) seq);
}

/* s_copy_col - a text column into a bounded buffer */
static void s_copy_col(sqlite3_stmt *st, int col, char *out, size_t outlen)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(out, outlen, "%s", t ? (const char *) t : "");
}

/* store_key_find - see store.h */
int store_key_find(store_t *self, const char *key, char case_id[STORE_CASE_ID_MAX], char first_event[80],
                   int64_t *count)
{
    sqlite3_stmt *st = s_prep(self, "SELECT case_id, first_event, count FROM keys WHERE key = ?");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    int found = sqlite3_step(st) == SQLITE_ROW;
    if (found) {
        s_copy_col(st, 0, case_id, STORE_CASE_ID_MAX);
        s_copy_col(st, 1, first_event, 80);
        if (count)
            *count = sqlite3_column_int64(st, 2);
    }
    s_done(st);
    return found;
}

/* store_key_add - remember a key (idempotent) */
int store_key_add(store_t *self, const char *key, const char *case_id, const char *event_id)
{
    return s_run(self, "INSERT OR IGNORE INTO keys(key, case_id, first_event) VALUES(?, ?, ?)", "sss", key, case_id,
                 event_id);
}

/* store_key_seen_again - one more receipt of a known key */
int store_key_seen_again(store_t *self, const char *key)
{
    return s_run(self, "UPDATE keys SET count = count + 1 WHERE key = ?", "s", key);
}

/* s_case_row - a cases row into the struct */
static void s_case_row(sqlite3_stmt *st, case_row_t *r)
{
    s_copy_col(st, 0, r->case_id, sizeof r->case_id);
    s_copy_col(st, 1, r->kind, sizeof r->kind);
    s_copy_col(st, 2, r->ref, sizeof r->ref);
    r->psp_time = sqlite3_column_int64(st, 3);
    s_copy_col(st, 4, r->status, sizeof r->status);
    r->amount = sqlite3_column_int64(st, 5);
    s_copy_col(st, 6, r->currency, sizeof r->currency);
    s_copy_col(st, 7, r->payment_id, sizeof r->payment_id);
    r->updated_ms = sqlite3_column_int64(st, 8);
    r->receipts = sqlite3_column_int(st, 9);
    r->duplicates = sqlite3_column_int(st, 10);
    r->out_of_order = sqlite3_column_int(st, 11);
}

#define CASE_COLS "case_id, kind, ref, psp_time, status, amount, currency, payment_id, updated_ms"
#define CASE_READ_COLS CASE_COLS ", receipts, duplicates, out_of_order"

/* store_case_get - see store.h */
int store_case_get(store_t *self, const char *case_id, case_row_t *out)
{
    sqlite3_stmt *st = s_prep(self, "SELECT " CASE_READ_COLS " FROM cases WHERE case_id = ?");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, case_id, -1, SQLITE_TRANSIENT);
    int found = sqlite3_step(st) == SQLITE_ROW;
    if (found)
        s_case_row(st, out);
    s_done(st);
    return found;
}

/* store_case_put - upsert an accepted event's facts, one more receipt */
int store_case_put(store_t *self, const case_row_t *r)
{
    return s_run(self,
                 "INSERT INTO cases(" CASE_COLS ", receipts) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, 1)"
                 " ON CONFLICT(case_id) DO UPDATE SET kind = excluded.kind, ref = excluded.ref,"
                 " psp_time = excluded.psp_time, status = excluded.status, amount = excluded.amount,"
                 " currency = excluded.currency, payment_id = excluded.payment_id, updated_ms = excluded.updated_ms,"
                 " receipts = receipts + 1",
                 "sssisissi", r->case_id, r->kind, r->ref, r->psp_time, r->status, r->amount, r->currency,
                 r->payment_id, r->updated_ms);
}

/* store_case_bump - a duplicate or out-of-order receipt of a case */
int store_case_bump(store_t *self, const char *case_id, char which)
{
    return s_run(self,
                 which == 'd'
                     ? "UPDATE cases SET receipts = receipts + 1, duplicates = duplicates + 1 WHERE case_id = ?"
                     : "UPDATE cases SET receipts = receipts + 1, out_of_order = out_of_order + 1 WHERE case_id = ?",
                 "s", case_id);
}

/* store_pending_refunds - see store.h */
size_t store_pending_refunds(store_t *self, int64_t older_than_ms, case_row_t *out, size_t max)
{
    sqlite3_stmt *st = s_prep(self, "SELECT " CASE_READ_COLS " FROM cases WHERE kind = 'refund' AND status = 'pending'"
                                    " AND updated_ms < ? ORDER BY updated_ms LIMIT ?");
    if (!st)
        return 0;
    sqlite3_bind_int64(st, 1, older_than_ms);
    sqlite3_bind_int64(st, 2, (int64_t) max);
    size_t n = 0;
    while (n < max && sqlite3_step(st) == SQLITE_ROW)
        s_case_row(st, &out[n++]);
    s_done(st);
    return n;
}
