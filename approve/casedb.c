/* casedb - approve's cases on disk (see casedb.h) */
#include "casedb.h"

#include <assert.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sqlx.h"

#define CASEDB_SCHEMA_VERSION 1

struct casedb_t {
    sqlite3 *db;
    sqlite3_stmt *put, *get;
    char path[512];
    bool in_txn;
    uint64_t applied;
};

static const char s_schema[] =
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta(k, v) VALUES('applied_jseq', 0);"
    "CREATE TABLE IF NOT EXISTS cases(case_id TEXT PRIMARY KEY, state TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    "  in_flight INTEGER NOT NULL, row TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS cases_in_flight ON cases(in_flight) WHERE in_flight = 1;"
    "CREATE INDEX IF NOT EXISTS cases_state ON cases(state, created_ms);"
    "CREATE INDEX IF NOT EXISTS cases_created ON cases(created_ms);"
    "PRAGMA user_version = 1;";

/* s_exec - run SQL without results; 0, or -1 (logged) */
static int s_exec(casedb_t *self, const char *sql)
{
    return sqlx_exec(self->db, "approve's case store", self->path, sql);
}

/* s_int - the first column of a one-row query, or dflt */
static int64_t s_int(casedb_t *self, const char *sql, int64_t dflt)
{
    return sqlx_int(self->db, sql, dflt);
}

/* casedb_open - see casedb.h */
casedb_t *casedb_open(const char *path, uint64_t epoch, char *err, size_t errlen)
{
    assert(path && err);
    casedb_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "approve's case store: out of memory");
        return NULL;
    }
    snprintf(self->path, sizeof self->path, "%s", path);
    int rc = sqlite3_open_v2(path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    int64_t v = rc == SQLITE_OK ? s_int(self, "PRAGMA user_version", -1) : -1;
    if (rc != SQLITE_OK || v < 0 || v > CASEDB_SCHEMA_VERSION ||
        s_exec(self, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;") != 0 || s_exec(self, s_schema) != 0 ||
        sqlite3_prepare_v2(
            self->db, "INSERT OR REPLACE INTO cases(case_id, state, created_ms, in_flight, row) VALUES(?, ?, ?, ?, ?)",
            -1, &self->put, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(self->db, "SELECT row FROM cases WHERE case_id = ?", -1, &self->get, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "approve's case store %s: %s", path,
                 v > CASEDB_SCHEMA_VERSION ? "written by a newer payguard"
                 : self->db                ? sqlite3_errmsg(self->db)
                                           : "cannot open");
        casedb_close(&self);
        return NULL;
    }
    self->applied = (uint64_t) s_int(self, "SELECT v FROM meta WHERE k = 'applied_jseq'", 0);
    uint64_t had = (uint64_t) s_int(self, "SELECT v FROM meta WHERE k = 'epoch'", 0);
    if (had != epoch) { /* another life of the journal (journal.h, EPOCH): its positions mean nothing here */
        char sql[128];
        snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO meta(k, v) VALUES('epoch', %lld);", (long long) epoch);
        if (had || self->applied)
            log_warn("approve's case store %s belongs to another journal (epoch %016llx, now %016llx): rebuilding it",
                     path, (unsigned long long) had, (unsigned long long) epoch);
        if (casedb_wipe(self) != 0 || s_exec(self, sql) != 0) {
            snprintf(err, errlen, "approve's case store %s: cannot reset it", path);
            casedb_close(&self);
            return NULL;
        }
    }
    return self;
}

/* casedb_close - see casedb.h (what was not committed is dropped: the
 * journal replays it) */
void casedb_close(casedb_t **self_p)
{
    assert(self_p);
    casedb_t *self = *self_p;
    if (!self)
        return;
    sqlite3_finalize(self->put);
    sqlite3_finalize(self->get);
    if (self->in_txn)
        sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(self->db);
    free(self);
    *self_p = NULL;
}

uint64_t casedb_applied(casedb_t *self)
{
    return self->applied;
}

/* casedb_wipe - see casedb.h */
int casedb_wipe(casedb_t *self)
{
    assert(self);
    if (self->in_txn && s_exec(self, "ROLLBACK") == 0)
        self->in_txn = false;
    self->applied = 0;
    return s_exec(self, "DELETE FROM cases; UPDATE meta SET v = 0 WHERE k = 'applied_jseq';");
}

/* casedb_put - see casedb.h */
int casedb_put(casedb_t *self, const char *case_id, const char *state, int64_t created_ms, bool in_flight,
               const char *row)
{
    assert(self && case_id && state && row);
    if (!self->in_txn) {
        if (s_exec(self, "BEGIN") != 0)
            return -1;
        self->in_txn = true;
    }
    sqlite3_bind_text(self->put, 1, case_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(self->put, 2, state, -1, SQLITE_STATIC);
    sqlite3_bind_int64(self->put, 3, created_ms);
    sqlite3_bind_int(self->put, 4, in_flight);
    sqlite3_bind_text(self->put, 5, row, -1, SQLITE_STATIC);
    int rc = sqlite3_step(self->put);
    sqlite3_reset(self->put);
    sqlite3_clear_bindings(self->put);
    if (rc != SQLITE_DONE) {
        log_error("approve's case store %s: %s", self->path, sqlite3_errmsg(self->db));
        return -1;
    }
    return 0;
}

/* casedb_commit - see casedb.h */
int casedb_commit(casedb_t *self, uint64_t applied_jseq)
{
    assert(self && applied_jseq >= self->applied);
    if (!self->in_txn && s_exec(self, "BEGIN") != 0)
        return -1;
    self->in_txn = true;
    char sql[96];
    snprintf(sql, sizeof sql, "UPDATE meta SET v = %llu WHERE k = 'applied_jseq';", (unsigned long long) applied_jseq);
    if (s_exec(self, sql) != 0 || s_exec(self, "COMMIT") != 0)
        return -1;
    self->in_txn = false;
    self->applied = applied_jseq;
    return 0;
}

/* casedb_get - see casedb.h */
char *casedb_get(casedb_t *self, const char *case_id)
{
    assert(self && case_id);
    sqlite3_bind_text(self->get, 1, case_id, -1, SQLITE_STATIC);
    char *row = NULL;
    if (sqlite3_step(self->get) == SQLITE_ROW)
        row = strdup((const char *) sqlite3_column_text(self->get, 0));
    sqlite3_reset(self->get);
    sqlite3_clear_bindings(self->get);
    return row;
}

/* s_rows - each row a prepared statement yields, to fn; finalizes it; how many */
static size_t s_rows(sqlite3_stmt *st, void (*fn)(const char *row, void *arg), void *arg)
{
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        fn((const char *) sqlite3_column_text(st, 0), arg);
        n++;
    }
    sqlite3_finalize(st);
    return n;
}

/* casedb_each - see casedb.h */
size_t casedb_each(casedb_t *self, const char *state, size_t limit, void (*fn)(const char *row, void *arg), void *arg)
{
    assert(self && fn);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(self->db,
                           "SELECT row FROM cases WHERE (?1 IS NULL OR state = ?1)"
                           " ORDER BY created_ms DESC, case_id LIMIT ?2",
                           -1, &st, NULL) != SQLITE_OK)
        return 0;
    if (state)
        sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t) (limit > CASEDB_LIST_MAX ? CASEDB_LIST_MAX : limit));
    return s_rows(st, fn, arg);
}

/* casedb_in_flight - see casedb.h */
size_t casedb_in_flight(casedb_t *self, void (*fn)(const char *row, void *arg), void *arg)
{
    assert(self && fn);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(self->db, "SELECT row FROM cases WHERE in_flight = 1 ORDER BY created_ms, case_id", -1, &st,
                           NULL) != SQLITE_OK)
        return 0;
    return s_rows(st, fn, arg);
}

/* casedb_count - see casedb.h */
int64_t casedb_count(casedb_t *self)
{
    return s_int(self, "SELECT COUNT(*) FROM cases", 0);
}
