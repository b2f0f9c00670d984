/* catchup_cmd - `payguard catch-up stripe --since TIME [--until TIME] [--quiet]`:
 * the Stripe events a long outage lost, read back from Stripe's Events API.
 *
 * Stripe retries a webhook for three days; after a longer outage, or a week
 * with a wrong webhook secret, an event is gone unless someone lists it.
 * This command pages through GET /v1/events (created in the range, the
 * types validate handles, 100 a page, newest first as Stripe lists them,
 * following has_more with starting_after) with a read-only key
 * (catchup/key_file, Authorization: Bearer; never in argv or logs), and
 * hands each event to ingest's POST /fetched/stripe with ingest's token
 * (catchup/token_file). ingest records it like a webhook (endpoint
 * "stripe_fetched"); validate judges it like a Stripe webhook without the
 * source and signature gates (the API call authenticated it) and drops it
 * as a duplicate if the webhook came after all (the idempotency keys are
 * the event's, CONTRACT.md §1.4).
 *
 * COUPLING (documented in ARCHITECTURE.md §7): to count duplicates as
 * validate would, and not to hand in again what validate has seen (each
 * periodic run would otherwise put a duplicate on every case's timeline),
 * it reads each validate instance's state store (validate/state_db),
 * read-only: an event whose id is the start of a recorded idempotency key
 * ("<event id>" or "<event id>:...") is a duplicate and is not handed in.
 * What validate has not committed yet (it commits once a second) is handed
 * in and validate drops it itself; a store it cannot open (another host)
 * leaves the judgement to validate, and is said.
 *
 * Progress: a line per page (listed, new, duplicates so far; --quiet: none),
 * then "fetched N, new N, duplicates N, failed N". It stops at the first
 * hand-in ingest does not answer 202 (after retries of 5xx, 429 and
 * transport failures), saying why. The state file (catchup/state_file)
 * records, per range, the last event handed in or found a duplicate, after
 * each one: a re-run of the same range goes on after it (starting_after)
 * and says so. An open --until is fixed at the first run's start, so the
 * re-run lists the same events. A resumed run's summary counts the whole
 * range, the interrupted attempts included. One catch-up runs at a time
 * (a lock beside the state file): a second says so and exits 1.
 * EXIT STATUS 0 done; 1 the API, ingest or the state file failed; 2 usage
 * or configuration.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "catchup.h"
#include "cli.h"
#include "httpc.h"
#include "utc.h"

#define CATCHUP_MAX_PAGES 100000 /* 10,000,000 events: far beyond Stripe's 30 days at any real rate */
#define CATCHUP_MAX_STORES CONFIG_MAX_INSTANCES
#define CATCHUP_URL_MAX 512
#define CATCHUP_STRIPE_KEEPS_S (30L * 86400) /* the Events API lists the last 30 days */

typedef struct {
    int64_t since, until;
    bool quiet;
    httpc_t *api, *ingest;
    char *state_path;
    int lock_fd;       /* <state_file>.lock, held for the run */
    bool store_warned; /* a store that cannot be asked was said */
    sqlite3 *stores[CATCHUP_MAX_STORES];
    int nstores;
    catchup_run_t run;
    int64_t failed;
} catchup_t;

/* s_usage - the synopsis; 2 */
static int s_usage(const char *why)
{
    if (why)
        fprintf(stderr, "payguard catch-up: %s\n", why);
    fprintf(stderr, "usage: payguard catch-up stripe --since TIME [--until TIME] [--quiet] [-c CONFIG]\n"
                    "       TIME: 2026-11-21T08:00:00Z (UTC), 2026-11-21, unix seconds, or now-<seconds>\n");
    return 2;
}

/* s_args - the command line into cu; 0, or the usage status */
static int s_args(int argc, char **argv, catchup_t *cu, const char **cfg)
{
    assert(argc >= 1 && cu && cfg);
    const char *since = NULL, *until = NULL;
    char err[256];
    if (argc < 2 || strcmp(argv[1], "stripe") != 0)
        return s_usage(argc < 2 ? "which PSP? (stripe)" : "only stripe has an Events API to catch up from");
    for (int i = 2; i < argc; i++) {
        bool val = i + 1 < argc;
        if (strcmp(argv[i], "--since") == 0 && val)
            since = argv[++i];
        else if (strcmp(argv[i], "--until") == 0 && val)
            until = argv[++i];
        else if (strcmp(argv[i], "-c") == 0 && val)
            *cfg = argv[++i];
        else if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0)
            cu->quiet = true;
        else {
            snprintf(err, sizeof err, "unexpected argument '%.64s'%s", argv[i], val ? "" : " (or its value missing)");
            return s_usage(err);
        }
    }
    int64_t now = (int64_t) time(NULL);
    if (!since)
        return s_usage("--since TIME is required (how far back the outage began)");
    if (catchup_time(since, now, &cu->since, err, sizeof err) != 0)
        return s_usage(err);
    cu->until = CATCHUP_OPEN_UNTIL;
    if (until && catchup_time(until, now, &cu->until, err, sizeof err) != 0)
        return s_usage(err);
    if (until && cu->until < cu->since)
        return s_usage("--until is before --since");
    if (cu->since > now)
        return s_usage("--since is in the future");
    if (cu->since < now - CATCHUP_STRIPE_KEEPS_S)
        fprintf(stderr, "payguard catch-up: note: Stripe keeps events 30 days; older ones are not listed\n");
    return 0;
}

/* s_client - an httpc for base with the token of the file named by key */
static httpc_t *s_client(const config_t *c, const char *base, const char *key, long timeout_ms)
{
    assert(c && base && key);
    assert(timeout_ms > 0);
    char err[512];
    const char *file = config_get(c, key);
    char *token = httpc_read_token(file && *file ? file : NULL, err, sizeof err);
    if (!token) {
        fprintf(stderr, "payguard catch-up: %s: %s\n", key, err);
        return NULL;
    }
    httpc_t *h = httpc_new(base, token, timeout_ms);
    memset(token, 0, strlen(token));
    free(token);
    return h;
}

/* s_ingest_url - catchup/ingest, or ingest's own address (config_api_url);
 * 0, or -1 and err */
static int s_ingest_url(const config_t *c, char out[CATCHUP_URL_MAX], char *err, size_t errlen)
{
    assert(c && out);
    const char *set = config_get(c, "catchup/ingest");
    if (!set || !*set)
        return config_api_url(c, "ingest", out, CATCHUP_URL_MAX, err, errlen);
    snprintf(out, CATCHUP_URL_MAX, "%s", set);
    return 0;
}

/* s_stores - each validate instance's state store, read-only */
static void s_stores(const config_t *c, catchup_t *cu)
{
    int n = config_instances(c, "validate");
    assert(n >= 1 && n <= CATCHUP_MAX_STORES);
    for (int i = 0; i < n; i++) {
        char *path = config_expand(c, config_get(c, "validate/state_db"), "validate", i);
        sqlite3 *db = NULL;
        if (!path || sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
            fprintf(stderr,
                    "payguard catch-up: cannot read validate's store %s: every event is handed in, validate drops "
                    "the duplicates (counted new here)\n",
                    path ? path : "?");
            sqlite3_close(db);
        } else {
            sqlite3_busy_timeout(db, 2000);
            cu->stores[cu->nstores++] = db;
        }
        free(path);
    }
    assert(cu->nstores <= n);
}

/* s_setup - configuration, credentials, clients, stores; 0 or an exit status */
static int s_setup(const config_t *c, catchup_t *cu)
{
    assert(c && cu);
    char err[512], ingest[CATCHUP_URL_MAX];
    long timeout_ms;
    if (config_bounded(c, "outside/timeout_ms", &timeout_ms, err, sizeof err) != 0) {
        fprintf(stderr, "payguard catch-up: %s\n", err);
        return 2;
    }
    const char *api = config_get(c, "catchup/api");
    if (!api || !*api)
        api = config_get(c, "outside/psp"); /* Stripe's API is the PSP API (CONTRACT.md §2.3) */
    if (!api || !*api) {
        fprintf(stderr, "payguard catch-up: neither catchup/api nor outside/psp names Stripe's API\n");
        return 2;
    }
    if (s_ingest_url(c, ingest, err, sizeof err) != 0) {
        fprintf(stderr, "payguard catch-up: %s\n", err);
        return 2;
    }
    if (!(cu->api = s_client(c, api, "catchup/key_file", timeout_ms)) ||
        !(cu->ingest = s_client(c, ingest, "catchup/token_file", timeout_ms)))
        return 2;
    cu->state_path = config_expand(c, config_get(c, "catchup/state_file"), "catchup", 0);
    assert(cu->state_path);
    s_stores(c, cu);
    return 0;
}

/* s_seen - does a validate store hold a key of this event? */
static bool s_seen(catchup_t *cu, const char *id)
{
    assert(catchup_id_ok(id));
    static const char sql[] = "SELECT 1 FROM keys WHERE key = ?1 OR (key > ?1 || ':' AND key < ?1 || ';') LIMIT 1";
    bool seen = false;
    assert(cu->nstores >= 0 && cu->nstores <= CATCHUP_MAX_STORES);
    for (int i = 0; i < cu->nstores && !seen; i++) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(cu->stores[i], sql, -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
            seen = sqlite3_step(st) == SQLITE_ROW;
        } else if (!cu->store_warned) { /* another schema than validate/store.c's: say so once */
            cu->store_warned = true;
            fprintf(stderr, "payguard catch-up: validate's store cannot be asked (%s): validate drops the duplicates\n",
                    sqlite3_errmsg(cu->stores[i]));
        }
        sqlite3_finalize(st);
    }
    return seen;
}

/* s_answer_why - a failed answer in a line: Stripe's error message, else the body or transport error */
static void s_answer_why(const httpc_resp_t *r, char *out, size_t outlen)
{
    json_t *j = r->body ? json_loads(r->body, 0, NULL) : NULL;
    json_t *e = json_object_get(j, "error");
    const char *msg = json_is_string(e) ? json_string_value(e) : json_string_value(json_object_get(e, "message"));
    if (r->status == 0)
        snprintf(out, outlen, "no answer after %d attempts: %s", r->attempts, r->error);
    else
        snprintf(out, outlen, "HTTP %ld: %.300s", r->status, msg ? msg : r->body ? r->body : "(empty)");
    json_decref(j);
}

/* s_list - one page after `after` into events; its count, -1 when the API failed (said) */
static int s_list(catchup_t *cu, const char *after, json_t *events, bool *has_more)
{
    char path[CATCHUP_QUERY_MAX], why[512];
    assert(cu && json_is_array(events));
    int rc = catchup_query(cu->since, cu->run.eff_until, after, path, sizeof path);
    assert(rc == 0);
    httpc_retry_t retry = {.max_attempts = 4, .base_delay_ms = 500, .max_delay_ms = 10000};
    httpc_resp_t r = {0};
    rc = httpc_call(cu->api, "GET", path, NULL, NULL, &retry, &r);
    if (rc == 0 && r.status == 200) {
        rc = catchup_page(r.body, r.len, events, has_more, why, sizeof why);
        if (rc < 0)
            fprintf(stderr, "payguard catch-up: Stripe's Events API answered a page that is not one: %s\n", why);
    } else {
        s_answer_why(&r, why, sizeof why);
        fprintf(stderr, "payguard catch-up: Stripe's Events API (GET %s/v1/events): %s%s\n", httpc_base_url(cu->api),
                why,
                r.status == 401 || r.status == 403
                    ? " -- the key in catchup/key_file is wrong or may not read events (a restricted key with "
                      "Events: read)"
                    : "");
        rc = -1;
    }
    httpc_resp_free(&r);
    return rc;
}

/* s_hand_in - POST one event to ingest's /fetched/stripe; 0 on 202, else -1 (said) */
static int s_hand_in(catchup_t *cu, json_t *event)
{
    const char *id = json_string_value(json_object_get(event, "id"));
    char *text = json_dumps(event, JSON_COMPACT);
    assert(id && text);
    httpc_retry_t retry = {.max_attempts = 8, .base_delay_ms = 200, .max_delay_ms = 5000};
    httpc_resp_t r = {0};
    int rc = httpc_call(cu->ingest, "POST", "/fetched/stripe", text, NULL, &retry, &r);
    free(text);
    if (rc != 0 || r.status != 202) {
        char why[512];
        s_answer_why(&r, why, sizeof why);
        fprintf(stderr, "payguard catch-up: ingest did not take %s (POST %s/fetched/stripe): %s%s\n", id,
                httpc_base_url(cu->ingest), why,
                r.status == 401   ? " -- catchup/token_file does not hold the token ingest/fetch_token_sha256 hashes"
                : r.status == 404 ? " -- ingest/fetch_token_sha256 is empty: the endpoint is off"
                                  : "");
        rc = -1;
    }
    assert(rc != 0 || r.status == 202);
    httpc_resp_free(&r);
    return rc;
}

/* s_save - the run's progress in the state file; -1 (said) if it cannot be written */
static int s_save(catchup_t *cu)
{
    char err[512];
    if (catchup_state_put(cu->state_path, &cu->run, err, sizeof err) == 0)
        return 0;
    fprintf(stderr, "payguard catch-up: %s\n", err);
    return -1;
}

/* s_page - hand in what a page listed, in its order; 0, or -1 at the first failure */
static int s_page(catchup_t *cu, json_t *events)
{
    assert(json_is_array(events));
    size_t i;
    json_t *e;
    json_array_foreach(events, i, e)
    {
        const char *id = json_string_value(json_object_get(e, "id"));
        assert(catchup_id_ok(id));
        cu->run.fetched++;
        if (s_seen(cu, id)) {
            cu->run.dups++;
        } else if (s_hand_in(cu, e) == 0) {
            cu->run.fresh++;
        } else {
            cu->failed++;
            return -1;
        }
        snprintf(cu->run.last_id, sizeof cu->run.last_id, "%s", id);
        if (s_save(cu) != 0)
            return -1;
    }
    return 0;
}

/* s_lock - one catch-up at a time: <state_file>.lock, held until exit; -1 (said) if another holds it */
static int s_lock(catchup_t *cu)
{
    assert(cu->state_path);
    char path[4096];
    snprintf(path, sizeof path, "%s.lock", cu->state_path);
    cu->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (cu->lock_fd < 0) {
        fprintf(stderr, "payguard catch-up: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (flock(cu->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "payguard catch-up: another catch-up is running (%s is locked): run this one when it is done\n",
                path);
        return -1;
    }
    assert(cu->lock_fd >= 0);
    return 0;
}

/* s_resume - the state of an earlier run of this range, said */
static int s_resume(catchup_t *cu)
{
    assert(cu && cu->state_path);
    assert(cu->since >= 0);
    char err[512], a[UTC_ISO_MAX], b[UTC_ISO_MAX];
    int found = catchup_state_get(cu->state_path, cu->since, cu->until, &cu->run, err, sizeof err);
    if (found < 0) {
        fprintf(stderr, "payguard catch-up: %s\n", err);
        return -1;
    }
    if (found && !cu->run.done && cu->run.last_id[0]) {
        utc_iso(cu->run.eff_until * 1000, b);
        printf("resuming the interrupted run of this range (until %s): %" PRId64 " events done before; going on "
               "after %s\n",
               b, cu->run.fetched, cu->run.last_id);
        fflush(stdout);
        return 0;
    }
    if (found && cu->run.done && !cu->quiet)
        printf("this range was caught up before (%" PRId64 " events): listing it again\n", cu->run.fetched);
    int64_t until = cu->until;
    cu->run = (catchup_run_t){.since = cu->since, .until = until};
    cu->run.eff_until = until == CATCHUP_OPEN_UNTIL ? (int64_t) time(NULL) : until;
    utc_iso(cu->since * 1000, a);
    utc_iso(cu->run.eff_until * 1000, b);
    if (!cu->quiet)
        printf("catching up Stripe events created from %s to %s\n", a, b);
    fflush(stdout); /* before any error on stderr */
    return 0;
}

/* s_run - page by page until has_more is false; 0, or -1 (said) */
static int s_run(catchup_t *cu)
{
    bool more = true;
    int pages = 0;
    assert(cu && cu->api && cu->ingest);
    assert(cu->run.eff_until != CATCHUP_OPEN_UNTIL);
    while (more && pages < CATCHUP_MAX_PAGES) {
        json_t *events = json_array();
        char after[CATCHUP_ID_MAX];
        snprintf(after, sizeof after, "%s", cu->run.last_id);
        int n = s_list(cu, after, events, &more);
        int rc = n < 0 ? -1 : s_page(cu, events);
        json_decref(events);
        if (rc != 0)
            return -1;
        pages++;
        if (!cu->quiet)
            printf("page %d: %d events; so far fetched %" PRId64 ", new %" PRId64 ", duplicates %" PRId64 "\n", pages,
                   n, cu->run.fetched, cu->run.fresh, cu->run.dups);
        fflush(stdout);
        if (more && n == 0) {
            fprintf(stderr, "payguard catch-up: the API said has_more with an empty page: stopping\n");
            return -1;
        }
    }
    cu->run.done = true;
    return s_save(cu);
}

/* cmd_catchup - see the top of this file */
int cmd_catchup(int argc, char **argv)
{
    static catchup_t cu;
    const char *cfg = NULL;
    assert(argc >= 1 && argv);
    int rc = s_args(argc, argv, &cu, &cfg);
    config_t *c = NULL;
    if (rc != 0)
        return rc;
    if (cli_load_config(cfg, &c) != 0)
        return 2;
    rc = s_setup(c, &cu);
    config_destroy(&c);
    assert(rc != 0 || cu.state_path);
    if (rc == 0)
        rc = s_lock(&cu) == 0 && s_resume(&cu) == 0 && s_run(&cu) == 0 ? 0 : 1;
    if (cu.state_path) /* the summary, also of a run that stopped */
        printf("fetched %" PRId64 ", new %" PRId64 ", duplicates %" PRId64 ", failed %" PRId64 "%s\n", cu.run.fetched,
               cu.run.fresh, cu.run.dups, cu.failed,
               rc == 0             ? ""
               : cu.run.last_id[0] ? " (stopped: run the same command again to go on after the last event handed in)"
                                   : " (stopped)");
    for (int i = 0; i < cu.nstores; i++)
        sqlite3_close(cu.stores[i]);
    httpc_destroy(&cu.api);
    httpc_destroy(&cu.ingest);
    free(cu.state_path);
    if (cu.lock_fd > 0)
        close(cu.lock_fd); /* the lock goes with it */
    return rc;
}
