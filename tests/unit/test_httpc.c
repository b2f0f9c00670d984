/* test_httpc - the JSON HTTP client against a scripted local server.
 *
 * Each test starts a libmicrohttpd server on 127.0.0.1 (port 0: the kernel
 * picks one) and gives it a script: the answers to send, in order (status,
 * body, Retry-After, a delay before answering, an oversized body), the
 * last one repeating. The server records what it received: method, path,
 * the headers httpc sets, the body and when the request arrived.
 */
#include "httpc.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "tok_s3cret_value"
#define MAX_STEPS 8
#define MAX_SEEN 16

typedef struct {
    unsigned status;
    const char *body;        /* NULL: "{}" */
    const char *retry_after; /* NULL: no Retry-After header */
    const char *location;    /* NULL: no Location header */
    int delay_ms;            /* wait this long before answering */
    size_t big_bytes;        /* > 0: a body of this many 'x' instead */
    bool chunked;            /* big body without Content-Length */
} step_t;

typedef struct {
    char method[16];
    char path[256];
    char authorization[256]; /* "" when absent */
    char idem_key[300];
    char content_type[64];
    char accept[64];
    char user_agent[64];
    char body[1024];
    size_t body_len;
    long at_ms; /* CLOCK_MONOTONIC arrival */
} seen_t;

typedef struct {
    struct MHD_Daemon *daemon;
    pthread_mutex_t lock;
    step_t steps[MAX_STEPS];
    int nsteps;
    seen_t seen[MAX_SEEN];
    int nseen;    /* every request, recorded or not */
    char url[64]; /* http://127.0.0.1:<port> */
} server_t;

/* one request's body as it arrives in pieces */
typedef struct {
    char body[1024];
    size_t len;
} upload_t;

static server_t s_srv;

/* s_now_ms - monotonic milliseconds, to time the gaps between retries */
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

/* s_big_reader - the oversized body, produced on the fly */
static ssize_t s_big_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    size_t total = *(const size_t *) cls;
    if (pos >= total)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = total - (size_t) pos < max ? total - (size_t) pos : max;
    memset(buf, 'x', n);
    return (ssize_t) n;
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

    pthread_mutex_lock(&srv->lock);
    int index = srv->nseen++;
    if (index < MAX_SEEN) {
        seen_t *s = &srv->seen[index];
        snprintf(s->method, sizeof s->method, "%s", method);
        snprintf(s->path, sizeof s->path, "%s", url);
        s_copy_header(conn, "Authorization", s->authorization, sizeof s->authorization);
        s_copy_header(conn, "Idempotency-Key", s->idem_key, sizeof s->idem_key);
        s_copy_header(conn, "Content-Type", s->content_type, sizeof s->content_type);
        s_copy_header(conn, "Accept", s->accept, sizeof s->accept);
        s_copy_header(conn, "User-Agent", s->user_agent, sizeof s->user_agent);
        memcpy(s->body, up->body, up->len + 1);
        s->body_len = up->len;
        s->at_ms = s_now_ms();
    }
    step_t step = srv->steps[index < srv->nsteps ? index : srv->nsteps - 1];
    pthread_mutex_unlock(&srv->lock);

    if (step.delay_ms > 0)
        usleep((useconds_t) step.delay_ms * 1000u);
    static size_t big_total;
    struct MHD_Response *r;
    if (step.big_bytes > 0) {
        big_total = step.big_bytes;
        r = MHD_create_response_from_callback(step.chunked ? MHD_SIZE_UNKNOWN : big_total, 64 * 1024, s_big_reader,
                                              &big_total, NULL);
    } else {
        const char *body = step.body ? step.body : "{}";
        r = MHD_create_response_from_buffer(strlen(body), (void *) body, MHD_RESPMEM_MUST_COPY);
    }
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (step.retry_after)
        MHD_add_response_header(r, "Retry-After", step.retry_after);
    if (step.location)
        MHD_add_response_header(r, "Location", step.location);
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
 * connection, so a deliberately slow answer holds up no other request */
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

/* s_client - a client for the test server under base path "/ledger" */
static httpc_t *s_client(long timeout_ms)
{
    char base[128];
    snprintf(base, sizeof base, "%s/ledger", s_srv.url);
    httpc_t *client = httpc_new(base, TOKEN, timeout_ms);
    cr_assert_not_null(client);
    return client;
}

static const httpc_retry_t s_fast = {.max_attempts = 5, .base_delay_ms = 10, .max_delay_ms = 50};

Test(httpc, get_answers_json_and_sends_the_bearer_token)
{
    step_t steps[] = {{.status = 200, .body = "{\"id\":\"po_1\",\"status\":\"paid\"}"}};
    s_server_start(steps, 1);
    httpc_t *client = s_client(2000);

    httpc_resp_t resp;
    int rc = httpc_call(client, "GET", "/payouts/po_1", NULL, NULL, &s_fast, &resp);
    cr_expect_eq(rc, 0);
    cr_expect_eq(resp.status, 200);
    cr_expect_str_eq(resp.body, "{\"id\":\"po_1\",\"status\":\"paid\"}");
    cr_expect_eq(resp.len, strlen(resp.body));
    cr_expect_not(resp.transient);
    cr_expect_eq(resp.attempts, 1);
    cr_expect_eq(resp.retry_after_ms, -1, "no Retry-After");

    cr_assert_eq(s_requests(), 1);
    seen_t *s = &s_srv.seen[0];
    cr_expect_str_eq(s->method, "GET");
    cr_expect_str_eq(s->path, "/ledger/payouts/po_1", "path appended to the base URL's path");
    cr_expect_str_eq(s->authorization, "Bearer " TOKEN);
    cr_expect_str_eq(s->accept, "application/json");
    cr_expect_str_eq(s->user_agent, "payguard/1");
    cr_expect_str_eq(s->content_type, "", "no body, no Content-Type");
    cr_expect_str_eq(s->idem_key, "", "reads carry no Idempotency-Key");
    cr_expect_eq(s->body_len, 0);

    httpc_resp_free(&resp);
    cr_expect_null(resp.body);
    httpc_destroy(&client);
    cr_expect_null(client, "destroy NULLs the pointer");
    httpc_destroy(&client);
    s_server_stop();
}

Test(httpc, post_sends_the_same_body_and_idempotency_key_on_every_retry)
{
    step_t steps[] = {{.status = 503}, {.status = 500}, {.status = 201, .body = "{\"id\":\"le_9\"}"}};
    s_server_start(steps, 3);
    httpc_t *client = s_client(2000);

    const char *body = "{\"type\":\"payout_reversal\",\"ref\":\"po_1\",\"amount\":1250}";
    httpc_resp_t resp;
    int rc = httpc_call(client, "POST", "/entries", body, "case_42:reverse_ledger", &s_fast, &resp);
    cr_expect_eq(rc, 0);
    cr_expect_eq(resp.status, 201);
    cr_expect_str_eq(resp.body, "{\"id\":\"le_9\"}");
    cr_expect_eq(resp.attempts, 3);

    cr_assert_eq(s_requests(), 3);
    for (int i = 0; i < 3; i++) {
        seen_t *s = &s_srv.seen[i];
        cr_expect_str_eq(s->method, "POST", "attempt %d", i + 1);
        cr_expect_str_eq(s->path, "/ledger/entries");
        cr_expect_str_eq(s->body, body, "attempt %d", i + 1);
        cr_expect_str_eq(s->idem_key, "case_42:reverse_ledger", "attempt %d", i + 1);
        cr_expect_str_eq(s->content_type, "application/json");
        cr_expect_str_eq(s->authorization, "Bearer " TOKEN);
    }
    httpc_resp_free(&resp);
    httpc_destroy(&client);
    s_server_stop();
}

Test(httpc, three_500s_then_201_succeeds_on_the_fourth_attempt)
{
    step_t steps[] = {{.status = 500, .body = "{\"error\":\"boom\"}"},
                      {.status = 500},
                      {.status = 500},
                      {.status = 201, .body = "{\"id\":\"le_1\"}"}};
    s_server_start(steps, 4);
    httpc_t *client = s_client(2000);

    httpc_resp_t resp;
    cr_expect_eq(httpc_call(client, "POST", "/entries", "{}", "case_1:step_2", &s_fast, &resp), 0);
    cr_expect_eq(resp.status, 201);
    cr_expect_eq(resp.attempts, 4);
    cr_expect_not(resp.transient);
    cr_expect_str_eq(resp.body, "{\"id\":\"le_1\"}", "the final answer's body, not a 500's");
    cr_expect_eq(s_requests(), 4);
    httpc_resp_free(&resp);
    httpc_destroy(&client);
    s_server_stop();
}

Test(httpc, a_429_retry_after_delays_the_next_attempt)
{
    step_t steps[] = {{.status = 429, .retry_after = "1"}, {.status = 200}};
    s_server_start(steps, 2);
    httpc_t *client = s_client(2000);

    /* the jitter alone would wait at most 10 ms; Retry-After wins */
    httpc_retry_t policy = {.max_attempts = 3, .base_delay_ms = 10, .max_delay_ms = 5000};
    httpc_resp_t resp;
    cr_expect_eq(httpc_call(client, "GET", "/entries?ref=po_1", NULL, NULL, &policy, &resp), 0);
    cr_expect_eq(resp.status, 200);
    cr_expect_eq(resp.attempts, 2);
    cr_assert_eq(s_requests(), 2);
    long gap_ms = s_srv.seen[1].at_ms - s_srv.seen[0].at_ms;
    cr_expect_geq(gap_ms, 900, "Retry-After: 1 honoured (gap %ld ms)", gap_ms);
    cr_expect_str_eq(s_srv.seen[0].path, "/ledger/entries");
    httpc_resp_free(&resp);
    httpc_destroy(&client);
    s_server_stop();
}

Test(httpc, retry_after_is_capped_at_max_delay)
{
    step_t steps[] = {{.status = 503, .retry_after = "3600"}, {.status = 200}};
    s_server_start(steps, 2);
    httpc_t *client = s_client(2000);

    httpc_retry_t policy = {.max_attempts = 2, .base_delay_ms = 10, .max_delay_ms = 100};
    httpc_resp_t resp;
    long start = s_now_ms();
    cr_expect_eq(httpc_call(client, "GET", "/x", NULL, NULL, &policy, &resp), 0);
    cr_expect_lt(s_now_ms() - start, 3000, "an hour's Retry-After waits only max_delay_ms");
    cr_expect_eq(resp.status, 200);
    httpc_resp_free(&resp);
    httpc_destroy(&client);
    s_server_stop();
}

Test(httpc, a_permanent_400_returns_at_once)
{
    step_t steps[] = {{.status = 400, .body = "{\"error\":\"amount must be positive\"}"}, {.status = 200}};
    s_server_start(steps, 2);
    httpc_t *client = s_client(2000);

    httpc_resp_t resp;
    cr_expect_eq(httpc_call(client, "POST", "/entries", "{\"amount\":-1}", "case_7:ledger", &s_fast, &resp), 0,
                 "a final answer: the caller reads the status");
    cr_expect_eq(resp.status, 400);
    cr_expect_not(resp.transient);
    cr_expect_eq(resp.attempts, 1);
    cr_expect_str_eq(resp.body, "{\"error\":\"amount must be positive\"}");
    cr_expect_eq(s_requests(), 1, "not retried");
    httpc_resp_free(&resp);
    httpc_destroy(&client);
    s_server_stop();
}

Test(httpc, redirects_are_answers_not_followed)
{
    step_t steps[] = {{.status = 302, .location = "http://127.0.0.1:1/elsewhere"}};
    s_server_start(steps, 1);
    httpc_t *client = s_client(2000);

    httpc_resp_t resp;
    cr_expect_eq(httpc_call(client, "GET", "/payouts/po_1", NULL, NULL, &s_fast, &resp), 0);
    cr_expect_eq(resp.status, 302);
    cr_expect_not(resp.transient);
    cr_expect_eq(s_requests(), 1);
    httpc_resp_free(&resp);
    httpc_destroy(&client);
    s_server_stop();
}

Test(httpc, max_attempts_exhausted_on_503)
{
    step_t steps[] = {{.status = 503, .body = "{\"error\":\"maintenance\"}"}};
    s_server_start(steps, 1);
    httpc_t *client = s_client(2000);

    httpc_retry_t policy = {.max_attempts = 3, .base_delay_ms = 10, .max_delay_ms = 50};
    httpc_resp_t resp;
    cr_expect_eq(httpc_call(client, "GET", "/payouts/po_1", NULL, NULL, &policy, &resp), -1);
    cr_expect_eq(resp.status, 503, "the last answer is kept");
    cr_expect(resp.transient);
    cr_expect_eq(resp.attempts, 3);
    cr_expect_str_eq(resp.body, "{\"error\":\"maintenance\"}");
    cr_expect_eq(s_requests(), 3);
    httpc_resp_free(&resp);
    httpc_destroy(&client);
    s_server_stop();
}

Test(httpc, httpc_do_makes_one_attempt_and_classifies_it)
{
    step_t steps[] = {{.status = 503, .retry_after = "7"},
                      {.status = 429, .retry_after = "Wed, 21 Oct 2015 07:28:00 GMT"},
                      {.status = 200, .retry_after = "soon"},
                      {.status = 404, .body = "{\"error\":\"unknown payout\"}"}};
    s_server_start(steps, 4);
    httpc_t *client = s_client(2000);
    httpc_resp_t resp;

    cr_expect_eq(httpc_do(client, "GET", "/a", NULL, NULL, &resp), 0, "an answer came back");
    cr_expect_eq(resp.status, 503);
    cr_expect(resp.transient);
    cr_expect_eq(resp.retry_after_ms, 7000, "delta-seconds");
    cr_expect_eq(resp.attempts, 1);
    httpc_resp_free(&resp);

    cr_expect_eq(httpc_do(client, "GET", "/a", NULL, NULL, &resp), 0);
    cr_expect_eq(resp.status, 429);
    cr_expect(resp.transient);
    cr_expect_eq(resp.retry_after_ms, 0, "an HTTP date in the past: retry now");
    httpc_resp_free(&resp);

    cr_expect_eq(httpc_do(client, "GET", "/a", NULL, NULL, &resp), 0);
    cr_expect_eq(resp.status, 200);
    cr_expect_eq(resp.retry_after_ms, -1, "an unreadable Retry-After is ignored");
    httpc_resp_free(&resp);

    cr_expect_eq(httpc_do(client, "GET", "/a", NULL, NULL, &resp), 0);
    cr_expect_eq(resp.status, 404);
    cr_expect_not(resp.transient);
    httpc_resp_free(&resp);
    httpc_destroy(&client);
    s_server_stop();
}

Test(httpc, retry_after_as_a_future_http_date)
{
    char date[64];
    time_t when = time(NULL) + 60;
    struct tm tm;
    gmtime_r(&when, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    step_t steps[] = {{.status = 503, .retry_after = date}};
    s_server_start(steps, 1);
    httpc_t *client = s_client(2000);

    httpc_resp_t resp;
    cr_expect_eq(httpc_do(client, "GET", "/a", NULL, NULL, &resp), 0);
    cr_expect_geq(resp.retry_after_ms, 58000, "%s -> %ld ms", date, resp.retry_after_ms);
    cr_expect_leq(resp.retry_after_ms, 60000);
    httpc_resp_free(&resp);
    httpc_destroy(&client);
    s_server_stop();
}

Test(httpc, a_slow_answer_is_a_transient_timeout)
{
    step_t steps[] = {{.status = 200, .delay_ms = 600}};
    s_server_start(steps, 1);
    httpc_t *client = s_client(150);

    httpc_retry_t policy = {.max_attempts = 2, .base_delay_ms = 10, .max_delay_ms = 50};
    httpc_resp_t resp;
    long start = s_now_ms();
    cr_expect_eq(httpc_call(client, "GET", "/payouts/po_1", NULL, NULL, &policy, &resp), -1);
    cr_expect_lt(s_now_ms() - start, 550, "each attempt gave up after timeout_ms");
    cr_expect_eq(resp.status, 0, "no answer");
    cr_expect(resp.transient);
    cr_expect_eq(resp.attempts, 2);
    cr_expect_null(resp.body);
    cr_expect_neq(strstr(resp.error, "Timeout"), NULL, "error: %s", resp.error);
    httpc_resp_free(&resp);
    httpc_destroy(&client);
    s_server_stop();
}

Test(httpc, connection_refused_is_transient_and_the_error_hides_the_token)
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
    httpc_retry_t policy = {.max_attempts = 3, .base_delay_ms = 10, .max_delay_ms = 50};
    httpc_resp_t resp;
    cr_expect_eq(httpc_call(client, "POST", "/payouts/po_1/hold", "{}", "case_3:hold", &policy, &resp), -1);
    cr_expect_eq(resp.status, 0);
    cr_expect(resp.transient);
    cr_expect_eq(resp.attempts, 3);
    char url[128];
    snprintf(url, sizeof url, "%s/payouts/po_1/hold", base);
    cr_expect_neq(strstr(resp.error, url), NULL, "error names the URL: %s", resp.error);
    cr_expect_eq(strstr(resp.error, TOKEN), NULL, "error never holds the token");
    cr_expect_eq(strstr(resp.error, "s3cret"), NULL);
    httpc_resp_free(&resp);
    httpc_destroy(&client);
    close(fd);
}

Test(httpc, errors_hide_user_info_and_the_query_string)
{
    /* a Teams Workflows URL carries its signature in the query */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *) &addr, sizeof addr), 0);
    socklen_t alen = sizeof addr;
    cr_assert_eq(getsockname(fd, (struct sockaddr *) &addr, &alen), 0);
    char base[128];
    snprintf(base, sizeof base, "http://bot:pw_hidden@127.0.0.1:%u/workflows/w1/invoke?sp=run&sig=SIG_hidden",
             (unsigned) ntohs(addr.sin_port));

    httpc_t *client = httpc_new(base, NULL, 1000);
    cr_assert_not_null(client);
    httpc_resp_t resp;
    cr_expect_eq(httpc_do(client, "POST", "", "{\"type\":\"message\"}", NULL, &resp), -1);
    cr_expect(resp.transient);
    cr_expect_neq(strstr(resp.error, "127.0.0.1"), NULL, "%s", resp.error);
    cr_expect_neq(strstr(resp.error, "/workflows/w1/invoke?..."), NULL, "%s", resp.error);
    cr_expect_eq(strstr(resp.error, "pw_hidden"), NULL, "%s", resp.error);
    cr_expect_eq(strstr(resp.error, "SIG_hidden"), NULL, "%s", resp.error);
    httpc_destroy(&client);
    close(fd);
}

Test(httpc, a_response_over_the_cap_fails_permanently)
{
    /* once with a Content-Length (refused up front), once chunked (cut off) */
    step_t steps[] = {{.status = 200, .big_bytes = HTTPC_MAX_RESPONSE_BYTES + 1},
                      {.status = 200, .big_bytes = HTTPC_MAX_RESPONSE_BYTES + 1, .chunked = true},
                      {.status = 200, .big_bytes = HTTPC_MAX_RESPONSE_BYTES, .chunked = true}};
    s_server_start(steps, 3);
    httpc_t *client = s_client(5000);

    for (int i = 0; i < 2; i++) {
        httpc_resp_t resp;
        cr_expect_eq(httpc_call(client, "GET", "/entries", NULL, NULL, &s_fast, &resp), -1, "round %d", i);
        cr_expect_eq(resp.status, 0, "no usable answer");
        cr_expect_not(resp.transient, "retrying would not shrink it");
        cr_expect_eq(resp.attempts, 1);
        cr_expect_null(resp.body);
        cr_expect_neq(strstr(resp.error, "larger than"), NULL, "error: %s", resp.error);
        httpc_resp_free(&resp);
    }
    cr_expect_eq(s_requests(), 2);

    httpc_resp_t resp;
    cr_expect_eq(httpc_call(client, "GET", "/entries", NULL, NULL, &s_fast, &resp), 0, "exactly the cap is fine");
    cr_expect_eq(resp.status, 200);
    cr_expect_eq(resp.len, HTTPC_MAX_RESPONSE_BYTES);
    cr_expect_eq(resp.body[resp.len], '\0');
    httpc_resp_free(&resp);
    httpc_destroy(&client);
    s_server_stop();
}

Test(httpc, unsafe_idempotency_keys_are_refused_without_a_request)
{
    step_t steps[] = {{.status = 200}};
    s_server_start(steps, 1);
    httpc_t *client = s_client(2000);

    const char *bad[] = {"case_1\r\nX-Evil: 1", "case_1\n", "case 1", "", "case_\x01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        httpc_resp_t resp;
        cr_expect_eq(httpc_call(client, "POST", "/entries", "{}", bad[i], &s_fast, &resp), -1, "key %zu", i);
        cr_expect_not(resp.transient, "key %zu", i);
        cr_expect_eq(resp.attempts, 0, "key %zu", i);
        cr_expect_neq(resp.error[0], '\0');
        httpc_resp_free(&resp);
    }
    char long_key[300];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    httpc_resp_t resp;
    cr_expect_eq(httpc_do(client, "POST", "/entries", "{}", long_key, &resp), -1, "over 255 bytes");

    cr_expect_eq(httpc_do(client, "GET", "/a b", NULL, NULL, &resp), -1, "unescaped path");
    cr_expect_eq(httpc_do(client, "GET", "/a", "{}", NULL, &resp), -1, "a GET with a body");
    cr_expect_eq(httpc_do(client, "DELETE", "/a", NULL, NULL, &resp), -1, "GET and POST only");
    cr_expect_eq(s_requests(), 0, "nothing was sent");
    httpc_destroy(&client);
    s_server_stop();
}

Test(httpc, unsafe_tokens_and_urls_are_refused_by_httpc_new)
{
    cr_expect_null(httpc_new("http://127.0.0.1:1/x", "tok\r\nX-Evil: 1", 1000));
    cr_expect_null(httpc_new("http://127.0.0.1:1/x", "tok en", 1000));
    cr_expect_null(httpc_new("http://127.0.0.1:1/x", "", 1000));
    cr_expect_null(httpc_new("file:///etc/passwd", NULL, 1000));
    cr_expect_null(httpc_new("ftp://127.0.0.1/x", NULL, 1000));
    cr_expect_null(httpc_new("http://127.0.0.1:1/x", NULL, 0), "timeout must be positive");

    httpc_t *client = httpc_new("http://127.0.0.1:1/ledger/", NULL, 1000);
    cr_assert_not_null(client, "a token is optional");
    cr_expect_str_eq(httpc_base_url(client), "http://127.0.0.1:1/ledger", "trailing slash dropped");
    httpc_destroy(&client);
}

Test(httpc, no_authorization_header_without_a_token)
{
    step_t steps[] = {{.status = 200}};
    s_server_start(steps, 1);
    httpc_t *client = httpc_new(s_srv.url, NULL, 2000);
    cr_assert_not_null(client);
    httpc_resp_t resp;
    cr_expect_eq(httpc_call(client, "POST", "/hook", NULL, "k1", NULL, &resp), 0, "default policy");
    cr_assert_eq(s_requests(), 1);
    cr_expect_str_eq(s_srv.seen[0].authorization, "");
    cr_expect_str_eq(s_srv.seen[0].content_type, "", "no body, no Content-Type");
    cr_expect_str_eq(s_srv.seen[0].path, "/hook");
    httpc_resp_free(&resp);
    httpc_destroy(&client);
    s_server_stop();
}

Test(httpc, escape_encodes_one_path_segment)
{
    char *e = httpc_escape("a b/c");
    cr_assert_not_null(e);
    cr_expect_str_eq(e, "a%20b%2Fc");
    free(e);
    e = httpc_escape("po_1-A.b~c");
    cr_expect_str_eq(e, "po_1-A.b~c", "unreserved characters stay");
    free(e);
    e = httpc_escape("");
    cr_expect_str_eq(e, "");
    free(e);
    cr_expect_null(httpc_escape(NULL));
}

/* s_temp_file - a temporary file holding content; the path in out */
static void s_temp_file(const char *content, char *out, size_t outlen)
{
    snprintf(out, outlen, "/tmp/test_httpc_token_XXXXXX");
    int fd = mkstemp(out);
    cr_assert_geq(fd, 0);
    size_t len = strlen(content);
    cr_assert_eq(write(fd, content, len), (ssize_t) len);
    close(fd);
}

Test(httpc, read_token_takes_the_first_line_trimmed)
{
    char path[64], err[256] = "";
    s_temp_file("  tok_abc123 \r\nsecond line\n", path, sizeof path);
    char *token = httpc_read_token(path, err, sizeof err);
    cr_assert_not_null(token, "%s", err);
    cr_expect_str_eq(token, "tok_abc123");
    free(token);
    unlink(path);

    s_temp_file("tok_no_newline", path, sizeof path);
    token = httpc_read_token(path, err, sizeof err);
    cr_expect_str_eq(token, "tok_no_newline");
    free(token);
    unlink(path);
}

Test(httpc, read_token_refuses_an_empty_file)
{
    char path[64], err[256] = "";
    s_temp_file("", path, sizeof path);
    cr_expect_null(httpc_read_token(path, err, sizeof err));
    cr_expect_neq(strstr(err, path), NULL, "error names the file: %s", err);
    cr_expect_neq(strstr(err, "empty"), NULL, "%s", err);
    unlink(path);

    /* an empty first line is empty too, and the error shows no content */
    s_temp_file("\nhidden_secret\n", path, sizeof path);
    cr_expect_null(httpc_read_token(path, err, sizeof err));
    cr_expect_eq(strstr(err, "hidden_secret"), NULL, "%s", err);
    unlink(path);

    s_temp_file("tok with space\n", path, sizeof path);
    cr_expect_null(httpc_read_token(path, err, sizeof err));
    cr_expect_eq(strstr(err, "tok with"), NULL, "%s", err);
    unlink(path);
}

Test(httpc, read_token_reads_a_credential_of_the_unit)
{
    char dir[] = "/tmp/test_httpc_creds_XXXXXX", path[80], err[256] = "";
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/write-token", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("tok_from_systemd\n", f);
    fclose(f);
    setenv("CREDENTIALS_DIRECTORY", dir, 1);
    char *token = httpc_read_token("credential:write-token", err, sizeof err);
    cr_assert_not_null(token, "%s", err);
    cr_expect_str_eq(token, "tok_from_systemd");
    free(token);
    cr_expect_null(httpc_read_token("credential:read-token", err, sizeof err));
    cr_expect(strstr(err, "/read-token: No such file or directory") != NULL, "names the unit's file: %s", err);
    unsetenv("CREDENTIALS_DIRECTORY");
    cr_expect_null(httpc_read_token("credential:write-token", err, sizeof err));
    cr_expect(strstr(err, "$CREDENTIALS_DIRECTORY is not set") != NULL, "%s", err);
    unlink(path);
    rmdir(dir);
}

Test(httpc, read_token_reports_a_missing_file)
{
    char err[256] = "";
    cr_expect_null(httpc_read_token("/nonexistent/payguard/token", err, sizeof err));
    cr_expect_str_eq(err, "/nonexistent/payguard/token: No such file or directory");
}
