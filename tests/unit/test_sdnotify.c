/* test_sdnotify - systemd's notifications as datagrams on an AF_UNIX
 * socket: a path or an abstract name, the watchdog's period and pings */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdnotify.h"

/* listener - a datagram socket bound at name ("@x": abstract), as systemd's */
static int listener(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    memcpy(sa.sun_path, name, len);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    cr_assert_eq(bind(fd, (struct sockaddr *) &sa, (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len)), 0,
                 "bind %s: %s", name, strerror(errno));
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* received - the next datagram, as a string ("" if none came in 2 s) */
static const char *received(int fd)
{
    static char buf[512];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

/* nothing_waiting - no datagram is queued */
static bool nothing_waiting(int fd)
{
    char b[8];
    return recv(fd, b, sizeof b, MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

Test(sdnotify, to_a_socket_path)
{
    char dir[] = "/tmp/pg-sdnotify-XXXXXX", path[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/notify", dir);
    int fd = listener(path);
    cr_assert_eq(sdnotify_send_to(path, "READY=1"), 0, "%s", strerror(errno));
    cr_expect_str_eq(received(fd), "READY=1");
    cr_assert_eq(sdnotify_send_to(path, "STOPPING=1\nSTATUS=draining"), 0);
    cr_expect_str_eq(received(fd), "STOPPING=1\nSTATUS=draining", "several assignments in one datagram");
    close(fd);
    unlink(path);
    rmdir(dir);
}

Test(sdnotify, to_an_abstract_name_written_with_at)
{
    char name[64];
    snprintf(name, sizeof name, "@pg-sdnotify-test-%d", (int) getpid());
    int fd = listener(name);
    cr_assert_eq(sdnotify_send_to(name, "READY=1"), 0, "%s", strerror(errno));
    cr_expect_str_eq(received(fd), "READY=1");
    close(fd);
}

Test(sdnotify, from_the_environment_or_not_at_all)
{
    char name[64];
    snprintf(name, sizeof name, "@pg-sdnotify-env-%d", (int) getpid());
    int fd = listener(name);
    setenv(SDNOTIFY_SOCKET_ENV, name, 1);
    cr_expect_eq(sdnotify_send("READY=1"), 0);
    cr_expect_str_eq(received(fd), "READY=1");
    sdnotify_forget();
    cr_expect_null(getenv(SDNOTIFY_SOCKET_ENV));
    cr_expect_eq(sdnotify_send("READY=1"), 1, "not under systemd: nothing sent, no error");
    cr_expect(nothing_waiting(fd));
    close(fd);
}

Test(sdnotify, bad_addresses_are_refused)
{
    char longp[200];
    memset(longp, 'a', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    errno = 0;
    cr_expect_eq(sdnotify_send_to(longp, "READY=1"), -1);
    cr_expect_eq(errno, EINVAL, "longer than sockaddr_un holds");
    cr_expect_eq(sdnotify_send_to("relative/notify", "READY=1"), -1, "neither a path nor an abstract name");
    cr_expect_eq(sdnotify_send_to("@", "READY=1"), -1, "an empty abstract name");
    errno = 0;
    cr_expect_eq(sdnotify_send_to("/nonexistent-pg-dir/notify", "READY=1"), -1);
    cr_expect_eq(errno, ENOENT, "%s", strerror(errno));
}

Test(sdnotify, watchdog_period_is_half_the_interval)
{
    cr_expect_eq(sdnotify_watchdog_every_ms("30000000", NULL, 42), 15000, "WatchdogSec=30s: every 15 s");
    cr_expect_eq(sdnotify_watchdog_every_ms("30000000", "42", 42), 15000, "meant for us");
    cr_expect_eq(sdnotify_watchdog_every_ms("30000000", "43", 42), 0, "meant for another process");
    cr_expect_eq(sdnotify_watchdog_every_ms("1000", NULL, 42), 1, "at least 1 ms");
    cr_expect_eq(sdnotify_watchdog_every_ms(NULL, NULL, 42), 0);
    cr_expect_eq(sdnotify_watchdog_every_ms("0", NULL, 42), 0);
    cr_expect_eq(sdnotify_watchdog_every_ms("-5", NULL, 42), 0);
    cr_expect_eq(sdnotify_watchdog_every_ms("30s", NULL, 42), 0);
}

Test(sdnotify, watchdog_pings_only_when_due)
{
    char name[64], pid[16];
    snprintf(name, sizeof name, "@pg-sdnotify-wd-%d", (int) getpid());
    snprintf(pid, sizeof pid, "%d", (int) getpid());
    int fd = listener(name);
    setenv(SDNOTIFY_SOCKET_ENV, name, 1);
    setenv(SDNOTIFY_WATCHDOG_USEC_ENV, "200000", 1);
    setenv(SDNOTIFY_WATCHDOG_PID_ENV, pid, 1);
    sdnotify_watchdog_t w;
    sdnotify_watchdog_init(&w, 1000);
    cr_assert_eq(w.every_ms, 100);
    cr_expect_eq(sdnotify_watchdog_tick(&w, 1050), 0);
    cr_expect(nothing_waiting(fd));
    cr_expect_eq(sdnotify_watchdog_tick(&w, 1100), 1);
    cr_expect_str_eq(received(fd), "WATCHDOG=1");
    cr_expect_eq(sdnotify_watchdog_tick(&w, 1150), 0, "the period starts again at each ping");
    cr_expect_eq(sdnotify_watchdog_tick(&w, 1230), 1);
    cr_expect_str_eq(received(fd), "WATCHDOG=1");
    setenv(SDNOTIFY_WATCHDOG_PID_ENV, "1", 1);
    sdnotify_watchdog_init(&w, 2000);
    cr_expect_eq(sdnotify_watchdog_tick(&w, 9000), 0, "WATCHDOG_PID names another process: no pings");
    sdnotify_forget();
    sdnotify_watchdog_init(&w, 2000);
    cr_expect_eq(w.every_ms, 0, "not under systemd: no watchdog");
    cr_expect(nothing_waiting(fd));
    close(fd);
}
