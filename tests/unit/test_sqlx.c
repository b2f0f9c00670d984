/* test_sqlx - the SQLite helpers the stores share */
#include <criterion/criterion.h>
#include <sqlite3.h>

#include "sqlx.h"

Test(sqlx, exec_runs_sql_and_says_when_it_cannot)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    cr_assert_eq(sqlx_exec(db, "test store", ":memory:", "CREATE TABLE t(v INTEGER); INSERT INTO t VALUES(41), (1);"),
                 0);
    cr_assert_eq(sqlx_exec(db, "test store", ":memory:", "INSERT INTO nowhere VALUES(1);"), -1, "no such table");
    cr_assert_eq(sqlx_int(db, "SELECT SUM(v) FROM t", -1), 42);
    cr_assert_eq(sqlx_int(db, "SELECT v FROM t WHERE v > 100", -1), -1, "no row: the default");
    cr_assert_eq(sqlx_int(db, "SELECT NULL", 7), 7, "a NULL: the default");
    cr_assert_eq(sqlx_int(db, "SELEKT 1", 9), 9, "a statement that does not prepare: the default");
    sqlite3_close(db);
}
