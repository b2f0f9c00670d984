/* test_httpc_multi - the asynchronous HTTP engine against a scripted local
 * server, driven the way a stage loop drives it.
 *
 * Each test starts a libmicrohttpd server on 127.0.0.1 (port 0: the kernel
 * picks one; a thread per connection) with a script: the answers to send,
 * in order (status, body, a delay before answering), the last one
 * repeating. The server records what it received (method, path, the
 * headers httpc sets, the body, when it arrived) and how many requests it
 * held at once. The engine is driven by s_drive: httpc_multi_fds, poll()
 * for at most httpc_multi_timeout (capped at 50 ms), httpc_multi_run, until
 * the callbacks a test waits for have fired or a deadline passes.
 */
#include "httpc_multi.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "tok_multi_s3cret"
#define MAX_STEPS 8
#define MAX_SEEN 32
#define MAX_DONE 32
#define DEADLINE_MS 10000

typedef struct {
    unsigned status;
    const char *body; /* NULL: "{}" */
    int delay_ms;     /* wait this long before answering */
} step_t;

typedef struct {
    char method[16];
    char path[256];
    char authorization[256]; /* "" when absent */
    char idem_key[300];
    char traceparent[64]; /* "" when absent */
    char body[1024];
    long at_ms; /* CLOCK_MONOTONIC arrival */
} seen_t;

typedef struct {
    struct MHD_Daemon *daemon;
    pthread_mutex_t lock;
    step_t steps[MAX_STEPS];
    int nsteps;
    seen_t seen[MAX_SEEN];
    int nseen;      /* every request, recorded or not */
    int active;     /* requests being answered right now */
    int max_active; /* the most at once */
    char url[64];   /* http://127.0.0.1:<port> */
} server_t;

/* one request's body as it arrives in pieces */
typedef struct {
    char body[1024];
    size_t len;
} upload_t;

/* what one call's callback was told */
typedef struct {
    int calls; /* how many times the callback ran */
    int rc;
    long status;
    int attempts;
    bool cancelled;
    bool transient;
    char body[256];
    char error[256];
} done_t;

static server_t s_srv;
static done_t s_done[MAX_DONE];
static int s_finished; /* callbacks run so far, every call */

/* s_now_ms - monotonic milliseconds */
static long s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* s_copy_header - one request header into a record field, "" if absent */
static void s_copy_header(struct MHD_Connection *conn, const char *name, char *out, size_t outlen)
{
    const char *value = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
    snprintf(out, outlen, "%s", value ? value : "");
}

/* s_record - count the request in and record it; the step to answer */
static step_t s_record(server_t *srv, struct MHD_Connection *conn, const char *url, const char *method,
                       const upload_t *up)
{
    pthread_mutex_lock(&srv->lock);
    int index = srv->nseen++;
    if (++srv->active > srv->max_active)
        srv->max_active = srv->active;
    if (index < MAX_SEEN) {
        seen_t *s = &srv->seen[index];
        snprintf(s->method, sizeof s->method, "%s", method);
        snprintf(s->path, sizeof s->path, "%s", url);
        s_copy_header(conn, "Authorization", s->authorization, sizeof s->authorization);
        s_copy_header(conn, "Idempotency-Key", s->idem_key, sizeof s->idem_key);
        s_copy_header(conn, "traceparent", s->traceparent, sizeof s->traceparent);
        memcpy(s->body, up->body, up->len + 1);
        s->at_ms = s_now_ms();
    }
    step_t step = srv->steps[index < srv->nsteps ? index : srv->nsteps - 1];
    pthread_mutex_unlock(&srv->lock);
    return step;
}

/* s_handler - collect the body, record the request, answer the next step */
static enum MHD_Result s_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void) version;
    server_t *srv = cls;
    upload_t *up = *con_cls;
    if (!up) {
        up = calloc(1, sizeof *up);
        if (!up)
            return MHD_NO;
        *con_cls = up;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t room = sizeof up->body - 1 - up->len;
        size_t n = *upload_data_size < room ? *upload_data_size : room;
        memcpy(up->body + up->len, upload_data, n);
        up->len += n;
        *upload_data_size = 0;
        return MHD_YES;
    }

    step_t step = s_record(srv, conn, url, method, up);
    if (step.delay_ms > 0)
        usleep((useconds_t) step.delay_ms * 1000u);
    const char *body = step.body ? step.body : "{}";
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *) body, MHD_RESPMEM_MUST_COPY);
    pthread_mutex_lock(&srv->lock);
    srv->active--;
    pthread_mutex_unlock(&srv->lock);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, step.status, r);
    MHD_destroy_response(r);
    return ret;
}

/* s_completed - free the request's upload buffer, however it ended */
static void s_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void) cls;
    (void) conn;
    (void) toe;
    free(*con_cls);
    *con_cls = NULL;
}

/* s_server_start - serve the script on a fresh loopback port. A thread per
 * connection, so a slow answer holds up no other request */
static void s_server_start(const step_t *steps, int nsteps)
{
    cr_assert(nsteps >= 1 && nsteps <= MAX_STEPS);
    memset(&s_srv, 0, sizeof s_srv);
    pthread_mutex_init(&s_srv.lock, NULL);
    memcpy(s_srv.steps, steps, (size_t) nsteps * sizeof *steps);
    s_srv.nsteps = nsteps;

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s_srv.daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
                                    s_handler, &s_srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &addr,
                                    MHD_OPTION_NOTIFY_COMPLETED, s_completed, NULL, MHD_OPTION_END);
    cr_assert_not_null(s_srv.daemon, "the test server starts");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s_srv.daemon, MHD_DAEMON_INFO_BIND_PORT);
    cr_assert_not_null(info);
    cr_assert_gt(info->port, 0);
    snprintf(s_srv.url, sizeof s_srv.url, "http://127.0.0.1:%u", (unsigned) info->port);
}

/* s_server_stop - stop the server (waits for its connection threads) */
static void s_server_stop(void)
{
    if (s_srv.daemon)
        MHD_stop_daemon(s_srv.daemon);
    s_srv.daemon = NULL;
    pthread_mutex_destroy(&s_srv.lock);
}

/* s_requests - how many requests the server has received so far */
static int s_requests(void)
{
    pthread_mutex_lock(&s_srv.lock);
    int n = s_srv.nseen;
    pthread_mutex_unlock(&s_srv.lock);
    return n;
}

/* s_max_active - the most requests the server held at once */
static int s_max_active(void)
{
    pthread_mutex_lock(&s_srv.lock);
    int n = s_srv.max_active;
    pthread_mutex_unlock(&s_srv.lock);
    return n;
}

/* s_client - a client for the test server under base path "/ledger" */
static httpc_t *s_client(long timeout_ms)
{
    char base[128];
    snprintf(base, sizeof base, "%s/ledger", s_srv.url);
    httpc_t *client = httpc_new(base, TOKEN, timeout_ms);
    cr_assert_not_null(client);
    return client;
}

/* s_engine - a fresh engine with one system "ledger" under lim; its index in *sys */
static httpc_multi_t *s_engine(const httpc_limits_t *lim, int *sys)
{
    memset(s_done, 0, sizeof s_done);
    s_finished = 0;
    httpc_multi_t *m = httpc_multi_new(NULL);
    cr_assert_not_null(m);
    char err[256] = "";
    *sys = httpc_multi_system(m, "ledger", lim, err, sizeof err);
    cr_assert_eq(*sys, 0, "system registered: %s", err);
    return m;
}

/* s_on_done - the callback: record what it was told into its done_t */
static void s_on_done(void *user, int rc, httpc_resp_t *resp)
{
    done_t *d = user;
    d->calls++;
    d->rc = rc;
    d->status = resp->status;
    d->attempts = resp->attempts;
    d->cancelled = resp->cancelled;
    d->transient = resp->transient;
    snprintf(d->body, sizeof d->body, "%s", resp->body ? resp->body : "");
    snprintf(d->error, sizeof d->error, "%s", resp->error);
    httpc_resp_free(resp);
    s_finished++;
}

/* s_start - start call i (its callback records into s_done[i]) */
static void s_start(httpc_multi_t *m, int sys, httpc_t *client, const char *method, const char *path, const char *body,
                    const char *key, const httpc_retry_t *policy, int i)
{
    cr_assert_lt(i, MAX_DONE);
    char err[256] = "";
    int rc = httpc_multi_start(m, sys, client, method, path, body, key, policy, s_on_done, &s_done[i], err, sizeof err);
    cr_assert_eq(rc, 0, "call %d started: %s", i, err);
}

typedef bool(until_fn)(httpc_multi_t *m, void *arg);

/* s_most_fds - the most descriptors httpc_multi_fds handed to one poll */
static size_t s_most_fds;

/* s_drive - a stage loop's turns (fds, poll, run) until until() holds;
 * false if deadline_ms passed first */
static bool s_drive(httpc_multi_t *m, until_fn *until, void *arg, long deadline_ms)
{
    long end = s_now_ms() + deadline_ms;
    struct pollfd fds[64];
    while (!until(m, arg)) {
        if (s_now_ms() >= end)
            return false;
        size_t n = httpc_multi_fds(m, fds, sizeof fds / sizeof fds[0]);
        if (n > s_most_fds)
            s_most_fds = n;
        long t = httpc_multi_timeout(m);
        if (t < 0 || t > 50)
            t = 50;
        if (poll(fds, (nfds_t) n, (int) t) < 0)
            return false;
        httpc_multi_run(m, fds, n);
    }
    return true;
}

/* s_finished_at_least - until: *(int *) arg callbacks have run */
static bool s_finished_at_least(httpc_multi_t *m, void *arg)
{
    (void) m;
    return s_finished >= *(const int *) arg;
}

/* s_wait_done - drive until want callbacks have run; asserts they did */
static void s_wait_done(httpc_multi_t *m, int want)
{
    cr_assert(s_drive(m, s_finished_at_least, &want, DEADLINE_MS), "%d of %d callbacks within %d ms", s_finished, want,
              DEADLINE_MS);
}

static const httpc_retry_t s_fast = {.max_attempts = 5, .base_delay_ms = 10, .max_delay_ms = 50};
static const httpc_limits_t s_plain = {.max_inflight = 8, .breaker_cooldown_ms = 1000};

Test(httpc_multi, get_answers_through_the_callback)
{
    step_t steps[] = {{.status = 200, .body = "{\"id\":\"po_1\",\"status\":\"paid\"}"}};
    s_server_start(steps, 1);
    httpc_t *client = s_client(2000);
    int sys;
    httpc_multi_t *m = s_engine(&s_plain, &sys);

    s_start(m, sys, client, "GET", "/payouts/po_1", NULL, NULL, &s_fast, 0);
    cr_expect_eq(httpc_multi_calls(m), 1);
    s_wait_done(m, 1);

    done_t *d = &s_done[0];
    cr_expect_eq(d->calls, 1, "the callback runs once");
    cr_expect_eq(d->rc, 0);
    cr_expect_eq(d->status, 200);
    cr_expect_str_eq(d->body, "{\"id\":\"po_1\",\"status\":\"paid\"}");
    cr_expect_eq(d->attempts, 1);
    cr_expect_not(d->cancelled);
    cr_expect_eq(httpc_multi_calls(m), 0, "nothing left in progress");
    cr_expect_eq(httpc_multi_inflight(m, sys), 0);
    cr_expect_eq(httpc_multi_queued(m, sys), 0);

    cr_assert_eq(s_requests(), 1);
    cr_expect_str_eq(s_srv.seen[0].method, "GET");
    cr_expect_str_eq(s_srv.seen[0].path, "/ledger/payouts/po_1");
    cr_expect_str_eq(s_srv.seen[0].authorization, "Bearer " TOKEN);
    cr_expect_str_eq(s_srv.seen[0].idem_key, "", "reads carry no Idempotency-Key");

    httpc_multi_destroy(&m);
    cr_expect_null(m, "destroy NULLs the pointer");
    cr_expect_eq(s_done[0].calls, 1, "a finished call is not cancelled again");
    httpc_destroy(&client);
    s_server_stop();
}

/* s_concurrency - n calls through max_inflight against a slow server: the
 * most requests the server held at once; asserts all n answered 200 */
static int s_concurrency(int max_inflight, int n)
{
    step_t steps[] = {{.status = 200, .delay_ms = 500}};
    s_server_start(steps, 1);
    httpc_t *client = s_client(5000);
    httpc_limits_t lim = {.max_inflight = max_inflight, .breaker_cooldown_ms = 1000};
    int sys;
    httpc_multi_t *m = s_engine(&lim, &sys);

    for (int i = 0; i < n; i++)
        s_start(m, sys, client, "GET", "/payouts/po_1", NULL, NULL, &s_fast, i);
    s_wait_done(m, n);
    for (int i = 0; i < n; i++) {
        cr_expect_eq(s_done[i].rc, 0, "call %d", i);
        cr_expect_eq(s_done[i].status, 200, "call %d", i);
        cr_expect_eq(s_done[i].calls, 1, "call %d", i);
    }
    cr_expect_eq(s_requests(), n, "one request per call");
    int most = s_max_active();
    httpc_multi_destroy(&m);
    httpc_destroy(&client);
    s_server_stop();
    return most;
}

Test(httpc_multi, many_calls_at_once_are_all_on_the_wire)
{
    s_most_fds = 0;
    int most = s_concurrency(8, 8);
    cr_expect_eq(most, 8, "8 requests on the wire before any answer (at most %d at once)", most);
    cr_expect_eq(s_most_fds, 1, "8 connections, and the caller's poll watches one descriptor (the epoll set): %zu",
                 s_most_fds);
    most = s_concurrency(2, 6);
    cr_expect_eq(most, 2, "max_inflight 2: never more than 2 at once (%d)", most);
}

/* s_second_started - the first call's callback: start a second call from
 * inside httpc_multi_run, and note what the engine holds right then */
typedef struct {
    httpc_multi_t *m;
    httpc_t *client;
    int sys;
    size_t inflight_after; /* of the run that started the second call */
    size_t queued_after;
} chain_t;

static chain_t s_chain;

static void s_on_first(void *user, int rc, httpc_resp_t *resp)
{
    s_on_done(user, rc, resp);
    s_start(s_chain.m, s_chain.sys, s_chain.client, "GET", "/second", NULL, NULL, &s_fast, 1);
}

Test(httpc_multi, not_sent_in_the_run_that_started_it)
{
    step_t steps[] = {{.status = 200}};
    s_server_start(steps, 1);
    httpc_t *client = s_client(2000);
    int sys;
    httpc_multi_t *m = s_engine(&s_plain, &sys);
    s_chain = (chain_t){.m = m, .client = client, .sys = sys};

    char err[256] = "";
    cr_assert_eq(httpc_multi_start(m, sys, client, "GET", "/first", NULL, NULL, &s_fast, s_on_first, &s_done[0], err,
                                   sizeof err),
                 0, "%s", err);
    usleep(100 * 1000);
    cr_expect_eq(s_requests(), 0, "nothing goes out before the first httpc_multi_run");
    cr_expect_eq(httpc_multi_inflight(m, sys), 0);
    cr_expect_eq(httpc_multi_queued(m, sys), 1, "the started call waits");
    cr_expect_eq(httpc_multi_timeout(m), 0, "a started call wants a run at once");

    /* drive turn by turn until the first callback, then look at once */
    s_wait_done(m, 1);
    cr_expect_eq(s_requests(), 1, "the first call went out");
    cr_expect_eq(httpc_multi_inflight(m, sys), 0, "the call started in that run is not on the wire");
    cr_expect_eq(httpc_multi_queued(m, sys), 1, "it waits for the next run");
    usleep(100 * 1000);
    cr_expect_eq(s_requests(), 1, "nor was it sent");

    s_wait_done(m, 2);
    cr_expect_eq(s_requests(), 2, "the next runs send it");
    cr_expect_str_eq(s_srv.seen[1].path, "/ledger/second");
    cr_expect_eq(s_done[1].rc, 0);
    cr_expect_eq(s_done[1].status, 200);
    httpc_multi_destroy(&m);
    httpc_destroy(&client);
    s_server_stop();
}

Test(httpc_multi, transient_then_success_retries_with_the_same_idempotency_key)
{
    step_t steps[] = {{.status = 500}, {.status = 500}, {.status = 201, .body = "{\"id\":\"le_9\"}"}};
    s_server_start(steps, 3);
    httpc_t *client = s_client(2000);
    int sys;
    httpc_multi_t *m = s_engine(&s_plain, &sys);

    const char *body = "{\"type\":\"payout_reversal\",\"ref\":\"po_1\",\"amount\":1250}";
    s_start(m, sys, client, "POST", "/entries", body, "case_42:reverse_ledger", &s_fast, 0);
    s_wait_done(m, 1);

    cr_expect_eq(s_done[0].rc, 0);
    cr_expect_eq(s_done[0].status, 201);
    cr_expect_str_eq(s_done[0].body, "{\"id\":\"le_9\"}", "the final answer's body");
    cr_expect_eq(s_done[0].attempts, 3);
    cr_assert_eq(s_requests(), 3);
    for (int i = 0; i < 3; i++) {
        cr_expect_str_eq(s_srv.seen[i].method, "POST", "attempt %d", i + 1);
        cr_expect_str_eq(s_srv.seen[i].path, "/ledger/entries", "attempt %d", i + 1);
        cr_expect_str_eq(s_srv.seen[i].body, body, "attempt %d", i + 1);
        cr_expect_str_eq(s_srv.seen[i].idem_key, "case_42:reverse_ledger", "attempt %d", i + 1);
        cr_expect_str_eq(s_srv.seen[i].authorization, "Bearer " TOKEN, "attempt %d", i + 1);
    }
    cr_expect_eq(httpc_multi_breaker(m, sys), HTTPC_BREAKER_CLOSED, "no breaker configured");
    httpc_multi_destroy(&m);
    httpc_destroy(&client);
    s_server_stop();
}

Test(httpc_multi, permanent_4xx_is_not_retried)
{
    step_t steps[] = {{.status = 404, .body = "{\"error\":\"unknown payout\"}"}, {.status = 200}};
    s_server_start(steps, 2);
    httpc_t *client = s_client(2000);
    int sys;
    httpc_multi_t *m = s_engine(&s_plain, &sys);

    s_start(m, sys, client, "GET", "/payouts/po_404", NULL, NULL, &s_fast, 0);
    s_wait_done(m, 1);
    cr_expect_eq(s_done[0].rc, 0, "a final answer");
    cr_expect_eq(s_done[0].status, 404);
    cr_expect_not(s_done[0].transient);
    cr_expect_str_eq(s_done[0].body, "{\"error\":\"unknown payout\"}");
    cr_expect_eq(s_done[0].attempts, 1);
    /* a few more turns: a retry would show up at the server */
    int never = MAX_DONE + 1;
    s_drive(m, s_finished_at_least, &never, 200);
    cr_expect_eq(s_requests(), 1, "not retried");
    httpc_multi_destroy(&m);
    httpc_destroy(&client);
    s_server_stop();
}

/* what the breaker test watches on every turn */
typedef struct {
    int sys;
    int want;
    bool saw_open;
} breaker_watch_t;

static bool s_watch_breaker(httpc_multi_t *m, void *arg)
{
    breaker_watch_t *w = arg;
    httpc_breaker_t b = httpc_multi_breaker(m, w->sys);
    w->saw_open |= b == HTTPC_BREAKER_OPEN;
    return s_finished >= w->want;
}

Test(httpc_multi, breaker_opens_holds_calls_and_closes_on_a_probe)
{
    step_t steps[] = {{.status = 503}, {.status = 503}, {.status = 503}, {.status = 503}, {.status = 200}};
    s_server_start(steps, 5);
    httpc_t *client = s_client(2000);
    httpc_limits_t lim = {.max_inflight = 1, .breaker_failures = 3, .breaker_cooldown_ms = 200};
    httpc_retry_t policy = {.max_attempts = 2, .base_delay_ms = 5, .max_delay_ms = 20};
    int sys;
    httpc_multi_t *m = s_engine(&lim, &sys);

    for (int i = 0; i < 3; i++)
        s_start(m, sys, client, "GET", "/payouts/po_1", NULL, NULL, &policy, i);
    breaker_watch_t w = {.sys = sys, .want = 3};
    cr_assert(s_drive(m, s_watch_breaker, &w, DEADLINE_MS), "%d of 3 callbacks", s_finished);

    cr_expect(w.saw_open, "the breaker opened");
    /* 3 failures open it, the first probe's 503 opens it again */
    cr_expect_eq(httpc_multi_breaker_opened(m, sys), 2);
    int attempts = 0;
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(s_done[i].calls, 1, "call %d", i);
        cr_expect_eq(s_done[i].rc, 0, "call %d: held while the breaker was open, not failed (%s)", i, s_done[i].error);
        cr_expect_eq(s_done[i].status, 200, "call %d", i);
        attempts += s_done[i].attempts;
    }
    cr_expect_eq(s_requests(), 7, "3 failures, a failed probe, a good probe, 2 more");
    cr_expect_eq(attempts, 7, "every request is some call's attempt");
    cr_expect_eq(httpc_multi_breaker(m, sys), HTTPC_BREAKER_CLOSED, "closed at the end");
    cr_expect_str_eq(httpc_breaker_name(httpc_multi_breaker(m, sys)), "closed");
    cr_expect_eq(httpc_multi_queued(m, sys), 0);
    httpc_multi_destroy(&m);
    httpc_destroy(&client);
    s_server_stop();
}

/* a lone call against a dead system: with breaker_failures at most its
 * attempts, the failure that opens the breaker parks it; it waits through
 * failed probes and ends with the answer, never failed for want of one */
Test(httpc_multi, lone_call_waits_while_its_system_is_down)
{
    step_t steps[] = {{.status = 503}, {.status = 503}, {.status = 503},
                      {.status = 503}, {.status = 503}, {.status = 200}};
    s_server_start(steps, 6);
    httpc_t *client = s_client(2000);
    httpc_limits_t lim = {.max_inflight = 4, .breaker_failures = 3, .breaker_cooldown_ms = 50};
    httpc_retry_t policy = {.max_attempts = 3, .base_delay_ms = 5, .max_delay_ms = 20};
    int sys;
    httpc_multi_t *m = s_engine(&lim, &sys);
    s_start(m, sys, client, "POST", "/ledger/entries", "{}", "key-1", &policy, 0);
    breaker_watch_t w = {.sys = sys, .want = 1};
    cr_assert(s_drive(m, s_watch_breaker, &w, DEADLINE_MS), "the call finished");
    cr_expect(w.saw_open, "the breaker opened");
    cr_expect_eq(s_done[0].rc, 0, "held while its system was down, not failed (%s)", s_done[0].error);
    cr_expect_eq(s_done[0].status, 200);
    cr_expect_eq(s_requests(), 6, "2 counted failures, the one that opened the breaker, 2 failed probes, the answer");
    cr_expect_eq(httpc_multi_breaker_opened(m, sys), 3);
    httpc_multi_destroy(&m);
    httpc_destroy(&client);
    s_server_stop();
}

Test(httpc_multi, rate_limit_spaces_requests)
{
    step_t steps[] = {{.status = 200}};
    s_server_start(steps, 1);
    httpc_t *client = s_client(2000);
    httpc_limits_t lim = {.max_inflight = 16, .rate_per_s = 10, .breaker_cooldown_ms = 1000};
    int sys;
    httpc_multi_t *m = s_engine(&lim, &sys);

    for (int i = 0; i < 15; i++)
        s_start(m, sys, client, "GET", "/payouts/po_1", NULL, NULL, &s_fast, i);
    /* the calls become sendable in the first run; measured from then, not
     * from the first arrival, which a loaded machine may delay while it
     * sets up ten connections */
    long start = s_now_ms();
    s_wait_done(m, 15);
    for (int i = 0; i < 15; i++) {
        cr_expect_eq(s_done[i].rc, 0, "call %d", i);
        cr_expect_eq(s_done[i].status, 200, "call %d", i);
    }
    cr_assert_eq(s_requests(), 15);
    /* a burst of 10 tokens, then one every 100 ms: the 11th no sooner than
     * 100 ms after the first run, the 15th no sooner than 500 ms */
    for (int i = 0; i < 15; i++)
        cr_expect_geq(s_srv.seen[i].at_ms, start, "request %d", i + 1);
    for (int i = 10; i < 15; i++)
        cr_expect_geq(s_srv.seen[i].at_ms - start, 80, "request %d came %ld ms after the first run", i + 1,
                      s_srv.seen[i].at_ms - start);
    cr_expect_geq(s_srv.seen[14].at_ms - start, 400, "5 tokens beyond the burst take ~500 ms (%ld)",
                  s_srv.seen[14].at_ms - start);
    httpc_multi_destroy(&m);
    httpc_destroy(&client);
    s_server_stop();
}

/* s_refused - limits refused by both httpc_limits_check and httpc_multi_system, naming what */
static void s_refused(httpc_multi_t *m, httpc_limits_t lim, const char *what)
{
    char err[256] = "";
    cr_expect_eq(httpc_limits_check(&lim, err, sizeof err), -1, "%s", what);
    cr_expect_neq(strstr(err, what), NULL, "the error names %s: %s", what, err);
    err[0] = '\0';
    cr_expect_eq(httpc_multi_system(m, "payments", &lim, err, sizeof err), -1, "%s", what);
    cr_expect_neq(strstr(err, what), NULL, "the error names %s: %s", what, err);
    cr_expect_neq(strstr(err, "payments"), NULL, "the error names the system: %s", err);
}

Test(httpc_multi, limits_check_refuses_out_of_range)
{
    httpc_multi_t *m = httpc_multi_new(NULL);
    cr_assert_not_null(m);
    httpc_limits_t ok = {.max_inflight = 4, .rate_per_s = 0, .breaker_failures = 0, .breaker_cooldown_ms = 1};
    char err[256] = "";
    cr_expect_eq(httpc_limits_check(&ok, err, sizeof err), 0, "%s", err);

    httpc_limits_t bad = ok;
    bad.max_inflight = 0;
    s_refused(m, bad, "max_inflight");
    bad.max_inflight = HTTPC_MULTI_MAX_INFLIGHT + 1;
    s_refused(m, bad, "max_inflight");
    bad = ok;
    bad.rate_per_s = -1;
    s_refused(m, bad, "rate_per_s");
    bad = ok;
    bad.breaker_failures = -1;
    s_refused(m, bad, "breaker_failures");
    bad = ok;
    bad.breaker_cooldown_ms = 0;
    s_refused(m, bad, "breaker_cooldown_ms");
    cr_expect_eq(httpc_multi_nsystems(m), 0, "nothing registered");
    cr_expect_eq(httpc_multi_system_index(m, "payments"), -1);

    cr_expect_eq(httpc_multi_system(m, "payments", &ok, err, sizeof err), 0, "%s", err);
    err[0] = '\0';
    cr_expect_eq(httpc_multi_system(m, "payments", &ok, err, sizeof err), -1, "a name registered twice");
    cr_expect_neq(strstr(err, "payments"), NULL, "%s", err);
    cr_expect_eq(httpc_multi_system(m, "ledger", &ok, err, sizeof err), 1, "%s", err);
    cr_expect_eq(httpc_multi_nsystems(m), 2);
    cr_expect_eq(httpc_multi_system_index(m, "ledger"), 1);
    cr_expect_str_eq(httpc_multi_system_name(m, 0), "payments");
    httpc_multi_destroy(&m);
}

/* connections: the systems' max_inflight together must fit what one stage
 * polls and its open-file limit; a too-low soft limit is raised toward the
 * hard one, a hard limit too low is refused with a way out */
Test(httpc_multi, systems_must_fit_the_descriptors)
{
    httpc_multi_t *m = httpc_multi_new(NULL);
    cr_assert_not_null(m);
    httpc_limits_t big = {
        .max_inflight = HTTPC_MULTI_MAX_INFLIGHT, .rate_per_s = 0, .breaker_failures = 0, .breaker_cooldown_ms = 1};
    const char *names[] = {"payments", "ledger", "psp", "jira", "teams"};
    char err[512] = "";
    int refused = -1;
    for (int i = 0; i < 5 && refused < 0; i++)
        if (httpc_multi_system(m, names[i], &big, err, sizeof err) < 0)
            refused = i;
    /* HTTPC_MULTI_MAX_FDS / HTTPC_MULTI_MAX_INFLIGHT systems fit the poll;
     * one more does not (earlier where the hard open-file limit is lower) */
    cr_assert(refused >= 0 && refused <= HTTPC_MULTI_MAX_FDS / HTTPC_MULTI_MAX_INFLIGHT,
              "a system beyond what one stage polls is refused (refused: %d)", refused);
    cr_expect_neq(strstr(err, "connections"), NULL, "%s", err);
    cr_expect_neq(strstr(err, names[refused]), NULL, "the error names the system: %s", err);
    if (refused == HTTPC_MULTI_MAX_FDS / HTTPC_MULTI_MAX_INFLIGHT)
        cr_expect_neq(strstr(err, "one stage polls"), NULL, "%s", err);
    cr_expect_eq(httpc_multi_nsystems(m), (size_t) refused, "the refused system is not registered");
    httpc_multi_destroy(&m);

    /* a soft limit of 64 with room above: raised, accepted */
    struct rlimit rl = {.rlim_cur = 64, .rlim_max = 1024};
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0, "this test lowers its own limits (its own process)");
    m = httpc_multi_new(NULL);
    cr_assert_not_null(m);
    httpc_limits_t some = big;
    some.max_inflight = 300;
    cr_expect_eq(httpc_multi_system(m, "payments", &some, err, sizeof err), 0, "%s", err);
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    cr_expect_geq(rl.rlim_cur, 300 + 256, "the soft limit was raised to room for 300 connections");
    /* the hard limit is the end: 1024 - 256 left for the rest */
    some.max_inflight = 600;
    err[0] = '\0';
    cr_expect_eq(httpc_multi_system(m, "ledger", &some, err, sizeof err), -1, "900 connections do not fit 1024");
    cr_expect_neq(strstr(err, "ulimit -n"), NULL, "the error says what to change: %s", err);
    cr_expect_neq(strstr(err, "outside/max_inflight"), NULL, "%s", err);
    httpc_multi_destroy(&m);
}

/* s_inflight_seen - until: the call is on the wire and the server has it */
static bool s_inflight_seen(httpc_multi_t *m, void *arg)
{
    return httpc_multi_inflight(m, *(const int *) arg) == 1 && s_requests() == 1;
}

Test(httpc_multi, destroy_cancels_calls_in_flight)
{
    step_t steps[] = {{.status = 200, .delay_ms = 400}};
    s_server_start(steps, 1);
    httpc_t *client = s_client(5000);
    int sys;
    httpc_multi_t *m = s_engine(&s_plain, &sys);

    s_start(m, sys, client, "POST", "/entries", "{}", "case_9:ledger", &s_fast, 0);
    cr_assert(s_drive(m, s_inflight_seen, &sys, DEADLINE_MS), "the call reaches the server");
    cr_expect_eq(s_done[0].calls, 0, "not answered yet");
    httpc_multi_destroy(&m);
    cr_expect_null(m);
    cr_expect_eq(s_done[0].calls, 1, "the callback ran once");
    cr_expect_eq(s_done[0].rc, -1);
    cr_expect(s_done[0].cancelled);
    cr_expect_eq(s_done[0].status, 0, "nothing is known");
    cr_expect_neq(s_done[0].error[0], '\0');
    httpc_destroy(&client);
    s_server_stop();
}

Test(httpc_multi, connection_refused_is_transient_and_counted)
{
    /* a bound socket that never listens: connecting to it is refused */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *) &addr, sizeof addr), 0);
    socklen_t alen = sizeof addr;
    cr_assert_eq(getsockname(fd, (struct sockaddr *) &addr, &alen), 0);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%u/payments", (unsigned) ntohs(addr.sin_port));
    httpc_t *client = httpc_new(base, TOKEN, 1000);
    cr_assert_not_null(client);

    httpc_limits_t lim = {.max_inflight = 4, .breaker_failures = 0, .breaker_cooldown_ms = 1000};
    httpc_retry_t policy = {.max_attempts = 2, .base_delay_ms = 10, .max_delay_ms = 50};
    int sys;
    httpc_multi_t *m = s_engine(&lim, &sys);
    s_start(m, sys, client, "POST", "/payouts/po_1/hold", "{}", "case_3:hold", &policy, 0);
    s_wait_done(m, 1);

    cr_expect_eq(s_done[0].calls, 1);
    cr_expect_eq(s_done[0].rc, -1);
    cr_expect_eq(s_done[0].status, 0, "no answer");
    cr_expect(s_done[0].transient);
    cr_expect_neq(s_done[0].error[0], '\0');
    cr_expect_eq(strstr(s_done[0].error, TOKEN), NULL, "the error never holds the token");
    cr_expect_eq(s_done[0].attempts, 2);
    cr_expect_not(s_done[0].cancelled);
    cr_expect_eq(httpc_multi_breaker(m, sys), HTTPC_BREAKER_CLOSED, "no breaker");
    cr_expect_eq(httpc_multi_breaker_opened(m, sys), 0);
    httpc_multi_destroy(&m);
    httpc_destroy(&client);
    close(fd);
}

Test(httpc_multi, trim_gives_back_handles_a_burst_left_idle)
{
    step_t steps[] = {{.status = 200, .delay_ms = 200}};
    s_server_start(steps, 1);
    httpc_t *client = s_client(5000);
    int sys;
    httpc_multi_t *m = s_engine(&s_plain, &sys);

    for (int i = 0; i < 6; i++) /* a burst: six handles on the wire at once */
        s_start(m, sys, client, "GET", "/payouts/po_1", NULL, NULL, &s_fast, i);
    s_wait_done(m, 6);
    cr_expect_eq(httpc_multi_trim(m), 0, "the burst's handles came back after this trim period began: kept");

    for (int i = 6; i < 8; i++) /* two calls at once reuse two pooled handles */
        s_start(m, sys, client, "GET", "/payouts/po_1", NULL, NULL, &s_fast, i);
    s_wait_done(m, 8);
    cr_expect_eq(httpc_multi_trim(m), 4, "four handles no call needed since the last trim are freed");
    cr_expect_eq(httpc_multi_trim(m), 2, "then the two the last calls used, idle a whole period");
    cr_expect_eq(httpc_multi_trim(m), 0, "nothing left to free");

    s_start(m, sys, client, "GET", "/payouts/po_1", NULL, NULL, &s_fast, 8);
    s_wait_done(m, 9);
    cr_expect_eq(s_done[8].status, 200, "a call after the pool was emptied gets a new handle");
    cr_expect_eq(s_requests(), 9);
    httpc_multi_destroy(&m);
    httpc_destroy(&client);
    s_server_stop();
}

/* the tracer: the caller's span is s_current (or none), every span reported */
#define TP_CALLER "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
static trace_t s_current;
static bool s_has_current;
static httpc_span_t s_spans[4];
static int s_nspans;

static int s_trace_now(void *arg, trace_t *out)
{
    (void) arg;
    if (!s_has_current)
        return -1;
    *out = s_current;
    return 0;
}

static void s_span_done(void *arg, const httpc_span_t *sp)
{
    (void) arg;
    if (s_nspans < 4)
        s_spans[s_nspans++] = *sp;
}

static void s_on_first_untraced(void *user, int rc, httpc_resp_t *resp)
{
    s_has_current = false; /* the loop has no input now: the callback's call inherits */
    s_on_first(user, rc, resp);
}

Test(httpc_multi, calls_carry_a_child_span_of_the_callers_and_their_callbacks_calls_too)
{
    step_t steps[] = {{.status = 503}, {.status = 200}};
    s_server_start(steps, 2);
    httpc_t *client = s_client(2000);
    int sys;
    httpc_multi_t *m = s_engine(&s_plain, &sys);
    httpc_multi_set_tracer(m, s_trace_now, s_span_done, NULL);
    cr_assert_eq(trace_parse(TP_CALLER, strlen(TP_CALLER), &s_current), 0);
    s_has_current = true;
    s_nspans = 0;
    s_chain = (chain_t){.m = m, .client = client, .sys = sys};
    char err[256] = "";
    cr_assert_eq(httpc_multi_start(m, sys, client, "GET", "/first", NULL, NULL, &s_fast, s_on_first_untraced,
                                   &s_done[0], err, sizeof err),
                 0, "%s", err);
    s_wait_done(m, 2);
    cr_assert_eq(s_requests(), 3, "the first call twice (503, then 200), the second once");
    trace_t a1, a2, b;
    cr_assert_eq(trace_parse(s_srv.seen[0].traceparent, strlen(s_srv.seen[0].traceparent), &a1), 0, "sent: '%s'",
                 s_srv.seen[0].traceparent);
    cr_assert_eq(trace_parse(s_srv.seen[1].traceparent, strlen(s_srv.seen[1].traceparent), &a2), 0);
    cr_assert_eq(trace_parse(s_srv.seen[2].traceparent, strlen(s_srv.seen[2].traceparent), &b), 0);
    cr_expect_eq(memcmp(a1.trace_id, s_current.trace_id, TRACE_ID_BYTES), 0, "the caller's trace");
    cr_expect_neq(memcmp(a1.span_id, s_current.span_id, TRACE_SPAN_BYTES), 0, "a span of its own");
    cr_expect_eq(memcmp(&a1, &a2, sizeof a1), 0, "a retry is the same call: the same span");
    cr_expect_eq(memcmp(b.trace_id, s_current.trace_id, TRACE_ID_BYTES), 0,
                 "a call started from a traced call's callback stays in the trace");
    cr_expect_neq(memcmp(b.span_id, a1.span_id, TRACE_SPAN_BYTES), 0);
    cr_assert_eq(s_nspans, 2, "each call's span is reported once");
    cr_expect_eq(memcmp(s_spans[0].span.span_id, a1.span_id, TRACE_SPAN_BYTES), 0);
    cr_expect_eq(memcmp(s_spans[0].parent.span_id, s_current.span_id, TRACE_SPAN_BYTES), 0, "its parent: the caller");
    cr_expect_eq(s_spans[0].attempts, 2);
    cr_expect_eq(s_spans[0].status, 200);
    cr_expect_str_eq(s_spans[0].system, "ledger");
    cr_expect_eq(memcmp(s_spans[1].parent.span_id, s_current.span_id, TRACE_SPAN_BYTES), 0,
                 "the second call's parent: the first's caller");
    httpc_multi_destroy(&m);
    httpc_destroy(&client);
    s_server_stop();
}

Test(httpc_multi, no_trace_no_header)
{
    step_t steps[] = {{.status = 200}};
    s_server_start(steps, 1);
    httpc_t *client = s_client(2000);
    int sys;
    httpc_multi_t *m = s_engine(&s_plain, &sys);
    httpc_multi_set_tracer(m, s_trace_now, s_span_done, NULL);
    s_has_current = false;
    s_nspans = 0;
    s_start(m, sys, client, "GET", "/x", NULL, NULL, &s_fast, 0);
    s_wait_done(m, 1);
    cr_expect_str_eq(s_srv.seen[0].traceparent, "", "no caller's span: no traceparent");
    cr_expect_eq(s_nspans, 0);
    httpc_multi_destroy(&m);
    httpc_destroy(&client);
    s_server_stop();
}
