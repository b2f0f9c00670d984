/* test_httpd - every payguard HTTP server's limits, over real sockets:
 * connections over the per-address limit are closed while another address
 * is served, a request trickled in a byte at a time is cut at the deadline
 * (libmicrohttpd's own timeout is renewed by every byte), a kept-alive
 * connection's deadline starts again with each request, a handler that
 * blocks holds only its own connection (a thread per connection), and GET
 * /metrics needs the Bearer token whose SHA-256 is configured */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "httpd.h"

static char s_run_dir[] = "/tmp/pg-httpd-XXXXXX";
static int s_port;

/* s_cleanup - each test's run directory goes with it */
static void s_cleanup(void)
{
    if (!strstr(s_run_dir, "XXXXXX"))
        rmdir(s_run_dir);
}

TestSuite(httpd, .fini = s_cleanup);

/* s_mono_ms - monotonic milliseconds */
static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* s_answer - 200 {"ok":true}; /slow first sleeps a second */
static enum MHD_Result s_answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void) cls, (void) method, (void) version, (void) upload, (void) upload_size;
    if (!*con_cls) {
        *con_cls = (void *) 1;
        return MHD_YES;
    }
    if (strcmp(url, "/slow") == 0)
        sleep(1);
    return httpd_reply_text(conn, MHD_HTTP_OK, strdup("{\"ok\":true}"));
}

/* s_listen - a listening loopback socket on a free port (s_port) */
static int s_listen(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *) &sin, sizeof sin) == 0 && listen(fd, 64) == 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *) &sin, &len), 0);
    s_port = ntohs(sin.sin_port);
    return fd;
}

/* s_opts - a server of threads (0: a thread per connection) with these
 * limits; its run directory made once per test (each runs in a process
 * of its own) */
static httpd_opts_t s_opts(unsigned threads, unsigned per_address, unsigned deadline_s, const char *token_sha)
{
    if (strstr(s_run_dir, "XXXXXX"))
        cr_assert_not_null(mkdtemp(s_run_dir));
    return (httpd_opts_t){.name = "test server",
                          .section = "test",
                          .listen_fd = s_listen(),
                          .threads = threads,
                          .max_connections = 16,
                          .max_per_address = per_address,
                          .deadline_s = deadline_s,
                          .answer = s_answer,
                          .run_dir = s_run_dir,
                          .metrics_token_sha256 = token_sha};
}

/* s_start - a server of s_opts's */
static httpd_t *s_start(unsigned threads, unsigned per_address, unsigned deadline_s, const char *token_sha)
{
    char err[256];
    httpd_opts_t o = s_opts(threads, per_address, deadline_s, token_sha);
    httpd_t *h = httpd_start(&o, err, sizeof err);
    cr_assert_not_null(h, "%s", err);
    return h;
}

/* s_connect - a connection to the server from the loopback address src */
static int s_connect(const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in me = {.sin_family = AF_INET}, to = {.sin_family = AF_INET, .sin_port = htons(s_port)};
    inet_pton(AF_INET, src, &me.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *) &me, sizeof me) == 0);
    cr_assert_eq(connect(fd, (struct sockaddr *) &to, sizeof to), 0);
    return fd;
}

/* s_closed_within - does the server close fd within ms (EOF or reset)? */
static bool s_closed_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char c;
    return poll(&p, 1, ms) == 1 && recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

/* s_exchange - send a GET of path (extra header lines, CRLF each, may be
 * "") on fd and read one answer; its status, 0 if none within 3 s */
static int s_exchange(int fd, const char *path, const char *extra, char *body, size_t bodylen)
{
    char req[512], buf[8192];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n", path, extra);
    if (send(fd, req, (size_t) n, MSG_NOSIGNAL) != n)
        return 0;
    size_t got = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (got < sizeof buf - 1 && poll(&p, 1, 3000) == 1) {
        ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t) r;
        buf[got] = '\0';
        const char *end = strstr(buf, "\r\n\r\n"), *cl = strcasestr(buf, "Content-Length: ");
        if (end && cl && got >= (size_t) (end + 4 - buf) + strtoul(cl + 16, NULL, 10))
            break;
    }
    buf[got] = '\0';
    const char *end = strstr(buf, "\r\n\r\n");
    if (body)
        snprintf(body, bodylen, "%s", end ? end + 4 : "");
    return strncmp(buf, "HTTP/1.1 ", 9) == 0 ? atoi(buf + 9) : 0;
}

/* s_get - one request on a new connection from src; its status */
static int s_get(const char *src, const char *path, const char *extra)
{
    int fd = s_connect(src);
    int status = s_exchange(fd, path, extra, NULL, 0);
    close(fd);
    return status;
}

Test(httpd, connections_over_the_per_address_limit_are_closed_while_another_address_is_served)
{
    httpd_t *h = s_start(2, 2, 30, "");
    int a = s_connect("127.0.0.1"), b = s_connect("127.0.0.1");
    cr_assert_not(s_closed_within(a, 200), "two connections from one address are served");
    cr_assert_not(s_closed_within(b, 10));
    int c = s_connect("127.0.0.1");
    cr_assert(s_closed_within(c, 2000), "the third from 127.0.0.1 is closed at once");
    cr_assert_eq(s_get("127.0.0.2", "/x", ""), 200, "another address is still served");
    cr_assert_eq(s_exchange(a, "/x", "", NULL, 0), 200, "and so are the two that were in");
    uint64_t cut, refused;
    httpd_stats(h, &cut, &refused);
    cr_assert_eq(refused, 1);
    cr_assert_eq(cut, 0);
    close(a), close(b), close(c);
    int status = 0;
    for (int i = 0; i < 20 && status != 200; i++) { /* once the server has seen them go */
        usleep(50 * 1000);
        int fd = s_connect("127.0.0.1");
        status = s_closed_within(fd, 50) ? 0 : s_exchange(fd, "/x", "", NULL, 0);
        close(fd);
    }
    cr_assert_eq(status, 200, "once they are gone the address is served again");
    httpd_stop(&h);
    cr_assert_null(h);
}

Test(httpd, a_request_trickled_a_byte_at_a_time_is_cut_at_the_deadline)
{
    httpd_t *h = s_start(2, 8, 1, "");
    const char req[] =
        "GET /trickle HTTP/1.1\r\nHost: t\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    int fd = s_connect("127.0.0.1");
    int64_t t0 = s_mono_ms(), closed_ms = -1;
    for (size_t i = 0; i < sizeof req - 1 && closed_ms < 0; i++) {
        /* one byte every 100 ms: libmicrohttpd's idle timeout (1 s) never fires */
        if (send(fd, req + i, 1, MSG_NOSIGNAL) != 1 || s_closed_within(fd, 100))
            closed_ms = s_mono_ms() - t0;
        if (i == 5)
            cr_assert_eq(s_get("127.0.0.2", "/x", ""), 200, "others are served meanwhile");
    }
    close(fd);
    cr_assert_geq(closed_ms, 900, "cut at the deadline (1 s), not before: %lld ms", (long long) closed_ms);
    cr_assert_leq(closed_ms, 2000, "cut soon after the deadline (a sweep is 250 ms): %lld ms", (long long) closed_ms);
    uint64_t cut, refused;
    httpd_stats(h, &cut, &refused);
    cr_assert_eq(cut, 1);
    httpd_stop(&h);
}

Test(httpd, each_request_on_a_kept_alive_connection_has_a_deadline_of_its_own)
{
    httpd_t *h = s_start(2, 8, 1, "");
    int fd = s_connect("127.0.0.1");
    for (int i = 0; i < 4; i++) { /* 4 x 0.6 s on one connection: past 1 s in all, each well within it */
        cr_assert_eq(s_exchange(fd, "/x", "", NULL, 0), 200, "request %d", i + 1);
        usleep(600 * 1000);
    }
    cr_assert(s_closed_within(fd, 1500), "an idle connection is closed once the deadline passes");
    close(fd);
    httpd_stop(&h);
}

/* s_slow - a request to /slow (the handler sleeps 1 s) */
static void *s_slow(void *arg)
{
    (void) arg;
    s_get("127.0.0.1", "/slow", "");
    return NULL;
}

Test(httpd, a_blocking_handler_holds_only_its_own_connection_with_a_thread_each)
{
    httpd_t *h = s_start(0, 16, 30, "");
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, s_slow, NULL);
    usleep(200 * 1000); /* all eight are in the handler */
    int64_t t0 = s_mono_ms();
    cr_assert_eq(s_get("127.0.0.1", "/x", ""), 200);
    cr_assert_lt(s_mono_ms() - t0, 700, "answered while eight slow ones wait: %lld ms", (long long) (s_mono_ms() - t0));
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    httpd_stop(&h);
}

Test(httpd, metrics_needs_the_bearer_token_whose_sha256_is_configured)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    char hex[2 * SHA256_DIGEST_LENGTH + 1], body[4096];
    SHA256((const unsigned char *) "s3cret-metrics", 14, md);
    for (size_t i = 0; i < sizeof md; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    httpd_t *h = s_start(2, 8, 30, hex);
    char prom[300];
    snprintf(prom, sizeof prom, "%s/ingest.0.prom", s_run_dir);
    FILE *f = fopen(prom, "w");
    cr_assert_not_null(f);
    fputs("# TYPE payguard_events_in_total counter\npayguard_events_in_total{instance=\"ingest.0\"} 7\n", f);
    fclose(f);
    int fd = s_connect("127.0.0.1");
    cr_assert_eq(s_exchange(fd, "/metrics", "", body, sizeof body), 401, "no token: 401");
    cr_assert_not(strstr(body, "payguard_"), "and no metrics");
    close(fd);
    cr_assert_eq(s_get("127.0.0.1", "/metrics", "Authorization: Bearer wrong\r\n"), 401, "a wrong one: 401");
    cr_assert_eq(s_get("127.0.0.1", "/metrics", "Authorization: Basic czNjcmV0\r\n"), 401, "not a Bearer one: 401");
    fd = s_connect("127.0.0.1");
    cr_assert_eq(s_exchange(fd, "/metrics", "Authorization: Bearer s3cret-metrics\r\n", body, sizeof body), 200);
    cr_assert(strstr(body, "payguard_events_in_total{instance=\"ingest.0\"} 7"), "%s", body);
    close(fd);
    cr_assert_eq(s_get("127.0.0.1", "/other", ""), 200, "other paths are the handler's, token or not");
    httpd_stop(&h);

    h = s_start(2, 8, 30, "");
    cr_assert_eq(s_get("127.0.0.1", "/metrics", ""), 200, "no token configured: open");
    httpd_stop(&h);
    unlink(prom);
}

Test(httpd, limits_out_of_range_are_refused_naming_the_setting)
{
    char err[256];
    httpd_opts_t o = s_opts(2, 17, 30, "");
    cr_assert_null(httpd_start(&o, err, sizeof err));
    cr_assert(strstr(err, "test/http_max_per_address = 17: want 1..16"), "%s", err);
    o.max_per_address = 4;
    o.deadline_s = 0;
    cr_assert_null(httpd_start(&o, err, sizeof err));
    cr_assert(strstr(err, "test/http_deadline_s = 0"), "%s", err);
    o.deadline_s = 30;
    o.metrics_token_sha256 = "abc";
    cr_assert_null(httpd_start(&o, err, sizeof err));
    cr_assert(strstr(err, "payguard/metrics_token_sha256: 64 hex digits"), "%s", err);
    close(o.listen_fd);
}
