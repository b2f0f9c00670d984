/* review_cmd - `payguard review`: the cases waiting for people in ops
 * review, with why: runbooks that failed for good (execute's "review"
 * events) and approvals that expired past the top tier (approve's
 * "expired"). Read from the journals, so it works with the group down. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "httpc.h"
#include "journal.h"
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

/* s_drop - a case that left ops review */
static void s_drop(review_t *v, size_t *n, const char *case_id)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(v[i].case_id, case_id) == 0) {
            v[i] = v[--*n];
            return;
        }
}

/* s_scan - the review-worthy events of one instance's journal */
static void s_scan(const config_t *c, const char *stage, review_t *v, size_t *n)
{
    char *dir = config_journal_dir(c, stage, 0);
    char err[512];
    journal_reader_t *r = journal_reader_new(dir, 1, err, sizeof err);
    free(dir);
    if (!r)
        return;
    event_t *ev;
    while ((ev = stage_read_event(r, NULL, NULL)) != NULL) {
        const event_head_t *h = event_head(ev);
        char why[400];
        if (h->kind == EV_REVIEW) {
            char *step = event_get_strdup(ev, "failed_step"), *e = event_get_strdup(ev, "error");
            char *w = event_get_strdup(ev, "why");
            snprintf(why, sizeof why, "%s%s%s", step ? step : (w ? w : "cannot run"), e ? ": " : "", e ? e : "");
            s_add(v, n, h->case_key, "runbook", why, h->time_ms);
            free(step), free(e), free(w);
        } else if (h->kind == EV_EXPIRED) {
            s_add(v, n, h->case_key, "approval", "no decision before the deadline, past the top tier", h->time_ms);
        } else if (h->kind == EV_CLOSED) {
            s_drop(v, n, h->case_key);
        } else if (h->kind == EV_EXECUTED) {
            char *o = event_get_strdup(ev, "outcome");
            if (o && (strcmp(o, "done") == 0 || strcmp(o, "closed") == 0))
                s_drop(v, n, h->case_key);
            free(o);
        } else if (h->kind == EV_ROUTED) {
            int64_t retry = 0;
            if (event_get_int(ev, EK_RETRY, &retry) == 0 && retry > 0) {
                char *who = event_get_strdup(ev, "raised_by");
                snprintf(why, sizeof why, "retry %lld asked by %s: awaiting approval", (long long) retry,
                         who ? who : "?");
                for (size_t i = 0; i < *n; i++)
                    if (strcmp(v[i].case_id, h->case_key) == 0)
                        snprintf(v[i].why, sizeof v[i].why, "%s", why);
                free(who);
            }
        }
        event_destroy(&ev);
    }
    journal_reader_destroy(&r);
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
    s_scan(c, "execute", v, &n);
    s_scan(c, "approve", v, &n);
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
