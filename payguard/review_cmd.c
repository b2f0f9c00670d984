/* review_cmd - `payguard review`: the cases waiting for people in ops
 * review, with why: runbooks that failed for good (each execute instance's
 * ops-review queue, execute/review_db) and approvals that expired past the
 * top tier (each approve instance's case store, approve/case_db). Read from
 * those files, not the journals retention trims, so it works with the
 * group down and costs what the queue holds, not the history; with the
 * group up a change shows within a second (approve commits its store once
 * a second). */
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "httpc.h"
#include "stage.h"

#define REVIEW_MAX 4096

typedef struct {
    char case_id[160];
    char source[16];
    char why[400];
    int64_t at_ms;
} review_t;

/* s_add - one waiting case (the newest reason wins) */
static void s_add(review_t *v, size_t *n, const char *case_id, const char *source, const char *why, int64_t at)
{
    size_t i = 0;
    while (i < *n && strcmp(v[i].case_id, case_id) != 0)
        i++;
    if (i == *n) {
        if (*n == REVIEW_MAX)
            return;
        (*n)++;
    }
    snprintf(v[i].case_id, sizeof v[i].case_id, "%s", case_id);
    snprintf(v[i].source, sizeof v[i].source, "%s", source);
    snprintf(v[i].why, sizeof v[i].why, "%s", why);
    v[i].at_ms = at;
}

/* s_db - an instance's store (path from key), read-only; NULL if it has none */
static sqlite3 *s_db(const config_t *c, const char *key, const char *stage, int i)
{
    char *path = config_expand(c, config_get(c, key), stage, i);
    sqlite3 *db = NULL;
    if (path && sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        db = NULL;
    }
    free(path);
    if (db)
        sqlite3_busy_timeout(db, 2000);
    return db;
}

/* s_read_execute - the runbooks that failed for good: each execute
 * instance's ops-review queue (execute/review_db, execute/reviewdb.h) */
static void s_read_execute(const config_t *c, review_t *v, size_t *n)
{
    for (int i = 0; i < config_instances(c, "execute"); i++) {
        sqlite3 *db = s_db(c, "execute/review_db", "execute", i);
        sqlite3_stmt *st = NULL;
        if (db && sqlite3_prepare_v2(db, "SELECT case_id, failed_step, error, at_ms FROM reviews ORDER BY added", -1,
                                     &st, NULL) == SQLITE_OK)
            while (sqlite3_step(st) == SQLITE_ROW) {
                char why[400];
                const char *e = (const char *) sqlite3_column_text(st, 2);
                snprintf(why, sizeof why, "%s%s%s", (const char *) sqlite3_column_text(st, 1), *e ? ": " : "", e);
                s_add(v, n, (const char *) sqlite3_column_text(st, 0), "runbook", why, sqlite3_column_int64(st, 3));
            }
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
}

/* s_read_approve - from each approve instance's case store
 * (approve/case_db, approve/casedb.h): approvals that expired past the top
 * tier, and the retry rounds people asked for and others must approve */
static void s_read_approve(const config_t *c, review_t *v, size_t *n)
{
    for (int i = 0; i < config_instances(c, "approve"); i++) {
        sqlite3 *db = s_db(c, "approve/case_db", "approve", i);
        sqlite3_stmt *st = NULL;
        if (db && sqlite3_prepare_v2(db,
                                     "SELECT row FROM cases WHERE state = 'expired'"
                                     " OR (state = 'pending' AND json_extract(row, '$.retry') > 0) ORDER BY created_ms",
                                     -1, &st, NULL) == SQLITE_OK)
            while (sqlite3_step(st) == SQLITE_ROW) {
                json_t *r = json_loads((const char *) sqlite3_column_text(st, 0), 0, NULL);
                const char *id = json_string_value(json_object_get(r, "case_id")), *state;
                state = json_string_value(json_object_get(r, "state"));
                json_int_t retry = json_integer_value(json_object_get(r, "retry"));
                const char *who = json_string_value(json_object_get(r, "raised_by"));
                char why[400];
                if (id && state && strcmp(state, "expired") == 0) {
                    s_add(v, n, id, "approval", "no decision before the deadline, past the top tier",
                          json_integer_value(json_object_get(r, "expires_ms")));
                } else if (id) {
                    snprintf(why, sizeof why, "retry %lld asked by %s: awaiting approval", (long long) retry,
                             who ? who : "?");
                    for (size_t k = 0; k < *n; k++)
                        if (strcmp(v[k].case_id, id) == 0)
                            snprintf(v[k].why, sizeof v[k].why, "%s", why);
                }
                json_decref(r);
            }
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
}

/* s_act - `payguard review retry|close CASE --as NAME`: through approve's
 * API, as the person whose token it is (audited there) */
static int s_act(int argc, char **argv, config_t *c)
{
    const char *what = argv[1], *case_id = argc > 2 ? argv[2] : NULL, *who = cli_opt(argc, argv, "--as");
    if (!case_id || case_id[0] == '-' || !who) {
        fprintf(stderr, "usage: payguard review %s CASE --as NAME [--comment TEXT] [--token-file FILE] [-c CONFIG]\n",
                what);
        return 2;
    }
    httpc_t *h = cli_api_client(c, "approve", cli_opt(argc, argv, "--token-file"), who);
    if (!h)
        return 2;
    const char *comment = cli_opt(argc, argv, "--comment");
    return cli_post_case(&h, "reviews", case_id, what, json_pack("{s:s}", "comment", comment ? comment : ""));
}

/* cmd_review - list the ops-review queue, or retry / close a case in it */
int cmd_review(int argc, char **argv)
{
    config_t *c;
    if (cli_load_config(cli_opt_config(argc, argv), &c) != 0)
        return 2;
    if (argc > 1 && (strcmp(argv[1], "retry") == 0 || strcmp(argv[1], "close") == 0)) {
        int rc = s_act(argc, argv, c);
        config_destroy(&c);
        return rc;
    }
    review_t *v = calloc(REVIEW_MAX, sizeof *v);
    size_t n = 0;
    /* execute's failures first; then what people did about them in approve */
    s_read_execute(c, v, &n);
    s_read_approve(c, v, &n);
    config_destroy(&c);
    printf("%-30s %-9s %-20s %s\n", "CASE", "FROM", "SINCE", "WHY");
    for (size_t i = 0; i < n; i++) {
        time_t t = (time_t) (v[i].at_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        char at[32];
        strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("%-30s %-9s %-20s %s\n", v[i].case_id, v[i].source, at, v[i].why);
    }
    if (!n)
        printf("(nothing waiting for ops review)\n");
    free(v);
    return 0;
}
