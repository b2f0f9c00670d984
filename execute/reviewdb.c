/* reviewdb - execute's ops-review queue on disk (see reviewdb.h) */
#include "reviewdb.h"

#include <assert.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sqlx.h"

struct reviewdb_t {
    sqlite3 *db;
    bool fresh; /* created by this open */
    char path[512];
};

/* s_exec - SQL without results; 0, or -1 (logged) */
static int s_exec(reviewdb_t *self, const char *sql)
{
    return sqlx_exec(self->db, "execute's review store", self->path, sql);
}

/* reviewdb_open - see reviewdb.h */
reviewdb_t *reviewdb_open(const char *path, char *err, size_t errlen)
{
    assert(path && err);
    reviewdb_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "execute's review store: out of memory");
        return NULL;
    }
    snprintf(self->path, sizeof self->path, "%s", path);
    if (sqlite3_open_v2(path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
            SQLITE_OK ||
        s_exec(self, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;") != 0) {
        snprintf(err, errlen, "execute's review store %s: %s", path,
                 self->db ? sqlite3_errmsg(self->db) : "cannot open");
        reviewdb_close(&self);
        return NULL;
    }
    sqlite3_stmt *st;
    self->fresh = sqlite3_prepare_v2(self->db, "SELECT 1 FROM sqlite_master WHERE name = 'reviews'", -1, &st, NULL) ==
                      SQLITE_OK &&
                  sqlite3_step(st) != SQLITE_ROW;
    sqlite3_finalize(st);
    if (s_exec(self, "CREATE TABLE IF NOT EXISTS reviews(case_id TEXT PRIMARY KEY, plan_json TEXT NOT NULL,"
                     " failed_step TEXT NOT NULL, error TEXT NOT NULL, at_ms INTEGER NOT NULL,"
                     " added INTEGER NOT NULL);") != 0) {
        snprintf(err, errlen, "execute's review store %s: %s", path, sqlite3_errmsg(self->db));
        reviewdb_close(&self);
        return NULL;
    }
    return self;
}

/* reviewdb_close - see reviewdb.h */
void reviewdb_close(reviewdb_t **self_p)
{
    assert(self_p);
    if (!*self_p)
        return;
    sqlite3_close((*self_p)->db);
    free(*self_p);
    *self_p = NULL;
}

/* s_step - prepare sql, bind texts (NULL ends them) and at most one int64
 * after them, step once; 0 or -1 (logged) */
static int s_step(reviewdb_t *self, const char *sql, const char *const *texts, const int64_t *num)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(self->db, sql, -1, &st, NULL) != SQLITE_OK) {
        log_error("execute's review store %s: %s", self->path, sqlite3_errmsg(self->db));
        return -1;
    }
    int i = 0;
    for (; texts[i]; i++)
        sqlite3_bind_text(st, i + 1, texts[i], -1, SQLITE_STATIC);
    if (num)
        sqlite3_bind_int64(st, i + 1, *num);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        log_error("execute's review store %s: %s", self->path, sqlite3_errmsg(self->db));
        return -1;
    }
    return 0;
}

/* reviewdb_put - see reviewdb.h */
int reviewdb_put(reviewdb_t *self, const review_row_t *r)
{
    assert(self && r && r->case_id && r->plan_json && r->failed_step && r->error);
    const char *texts[] = {r->case_id, r->plan_json, r->failed_step, r->error, NULL};
    return s_step(self,
                  "INSERT OR REPLACE INTO reviews(case_id, plan_json, failed_step, error, at_ms, added)"
                  " VALUES(?, ?, ?, ?, ?, (SELECT COALESCE(MAX(added), 0) + 1 FROM reviews))",
                  texts, &r->at_ms);
}

/* reviewdb_drop - see reviewdb.h */
int reviewdb_drop(reviewdb_t *self, const char *case_id)
{
    assert(self && case_id);
    const char *texts[] = {case_id, NULL};
    return s_step(self, "DELETE FROM reviews WHERE case_id = ?", texts, NULL);
}

/* reviewdb_each - see reviewdb.h */
size_t reviewdb_each(reviewdb_t *self, void (*fn)(const review_row_t *r, void *arg), void *arg)
{
    assert(self && fn);
    sqlite3_stmt *st;
    size_t n = 0;
    if (sqlite3_prepare_v2(self->db, "SELECT case_id, plan_json, failed_step, error, at_ms FROM reviews ORDER BY added",
                           -1, &st, NULL) != SQLITE_OK)
        return 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        review_row_t r = {(const char *) sqlite3_column_text(st, 0), (const char *) sqlite3_column_text(st, 1),
                          (const char *) sqlite3_column_text(st, 2), (const char *) sqlite3_column_text(st, 3),
                          sqlite3_column_int64(st, 4)};
        fn(&r, arg);
        n++;
    }
    sqlite3_finalize(st);
    return n;
}

/* reviewdb_is_new - see reviewdb.h */
int reviewdb_is_new(reviewdb_t *self)
{
    return self->fresh;
}
