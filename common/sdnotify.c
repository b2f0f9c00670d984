/* sdnotify - systemd's notification protocol (see sdnotify.h) */
#include "sdnotify.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* sdnotify_send_to - see sdnotify.h */
int sdnotify_send_to(const char *path, const char *state)
{
    assert(path && state);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t plen = strlen(path), slen = strnlen(state, SDNOTIFY_STATE_MAX + 1);
    if (plen < 2 || plen >= sizeof sa.sun_path || (path[0] != '/' && path[0] != '@') || slen > SDNOTIFY_STATE_MAX) {
        errno = EINVAL;
        return -1;
    }
    memcpy(sa.sun_path, path, plen);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract: the name is the bytes after the NUL, not NUL-terminated */
    socklen_t salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '/'));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    ssize_t n = sendto(fd, state, slen, MSG_NOSIGNAL, (struct sockaddr *) &sa, salen);
    int e = errno;
    close(fd);
    errno = e;
    return n == (ssize_t) slen ? 0 : -1;
}

/* sdnotify_send - see sdnotify.h */
int sdnotify_send(const char *state)
{
    const char *path = getenv(SDNOTIFY_SOCKET_ENV);
    if (!path || !*path)
        return 1;
    return sdnotify_send_to(path, state);
}

/* s_positive - a decimal number > 0 with nothing after it, else 0 */
static long long s_positive(const char *s)
{
    if (!s || !*s)
        return 0;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    return errno || *end || v <= 0 ? 0 : v;
}

/* sdnotify_watchdog_every_ms - see sdnotify.h */
int64_t sdnotify_watchdog_every_ms(const char *usec, const char *pid, pid_t self)
{
    long long us = s_positive(usec);
    if (!us || (pid && *pid && s_positive(pid) != (long long) self))
        return 0;
    int64_t ms = us / 2000;
    return ms > 0 ? ms : 1;
}

/* sdnotify_watchdog_init - see sdnotify.h */
void sdnotify_watchdog_init(sdnotify_watchdog_t *w, int64_t now_ms)
{
    assert(w);
    const char *sock = getenv(SDNOTIFY_SOCKET_ENV);
    w->every_ms = sock && *sock ? sdnotify_watchdog_every_ms(getenv(SDNOTIFY_WATCHDOG_USEC_ENV),
                                                             getenv(SDNOTIFY_WATCHDOG_PID_ENV), getpid())
                                : 0;
    w->last_ms = now_ms;
}

/* sdnotify_watchdog_tick - see sdnotify.h */
int sdnotify_watchdog_tick(sdnotify_watchdog_t *w, int64_t now_ms)
{
    assert(w);
    if (!w->every_ms || now_ms - w->last_ms < w->every_ms)
        return 0;
    w->last_ms = now_ms;
    sdnotify_send("WATCHDOG=1"); /* a lost ping is the next one's to make up */
    return 1;
}

/* sdnotify_forget - see sdnotify.h */
void sdnotify_forget(void)
{
    unsetenv(SDNOTIFY_SOCKET_ENV);
    unsetenv(SDNOTIFY_WATCHDOG_USEC_ENV);
    unsetenv(SDNOTIFY_WATCHDOG_PID_ENV);
}
