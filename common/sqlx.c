/* sqlx - the few SQLite helpers every store repeats (see sqlx.h) */
#include "sqlx.h"

#include <assert.h>
#include <stddef.h>

#include "log.h"

/* sqlx_exec - see sqlx.h */
int sqlx_exec(sqlite3 *db, const char *what, const char *path, const char *sql)
{
    assert(db && what && path && sql);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error("%s %s: %s", what, path, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* sqlx_int - see sqlx.h */
int64_t sqlx_int(sqlite3 *db, const char *sql, int64_t dflt)
{
    assert(db && sql);
    sqlite3_stmt *st;
    int64_t v = dflt;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return dflt;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}
