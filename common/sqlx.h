/* sqlx - the few SQLite helpers every store repeats.
 *
 * payguard's stores (validate's state store, approve's case store,
 * execute's review store, audit's case index) each run bare SQL and read a
 * single number; these do it once, logging a failure with the store's name
 * and path.
 */
#ifndef PG_SQLX_H
#define PG_SQLX_H

#include <sqlite3.h>
#include <stdint.h>

/* sqlx_exec - run sql (no rows); 0, or -1 logged as "<what> <path>: <why>" */
int sqlx_exec(sqlite3 *db, const char *what, const char *path, const char *sql);

/* sqlx_int - the first column of the first row of sql, or dflt (no row, a
 * NULL, or a statement that does not prepare) */
int64_t sqlx_int(sqlite3 *db, const char *sql, int64_t dflt);

#endif
