/* listenfd - the listening sockets of the stages that serve HTTP (see listenfd.h) */
#include "listenfd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { LISTEN = 1, REUSEPORT = 2, REUSEADDR = 4 };

/* s_socket - a TCP socket bound to addr:port with the options how names,
 * listening if LISTEN */
static int s_socket(const char *addr, long port, int how, char *err, size_t errlen)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *in4 = (struct sockaddr_in *) &ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;
    socklen_t len;
    if (port < 1 || port > 65535) {
        snprintf(err, errlen, "port %ld out of range", port);
        return -1;
    }
    if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t) port);
        len = sizeof *in4;
    } else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t) port);
        len = sizeof *in6;
    } else {
        snprintf(err, errlen, "'%s' is not an IPv4 or IPv6 address", addr);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || ((how & REUSEADDR) && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) ||
        ((how & REUSEPORT) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
        bind(fd, (struct sockaddr *) &ss, len) != 0 || ((how & LISTEN) && listen(fd, LISTENFD_BACKLOG) != 0)) {
        int e = errno;
        snprintf(err, errlen, "cannot listen on %s port %ld: %s", addr, port, strerror(e));
        if (fd >= 0)
            close(fd);
        errno = e; /* for listenfd_reserve */
        return -1;
    }
    return fd;
}

/* listenfd_bind - see listenfd.h */
int listenfd_bind(const char *addr, long port, char *err, size_t errlen)
{
    return s_socket(addr, port, LISTEN | REUSEADDR, err, errlen);
}

/* listenfd_bind_shared - see listenfd.h */
int listenfd_bind_shared(const char *addr, long port, char *err, size_t errlen)
{
    return s_socket(addr, port, LISTEN | REUSEPORT | REUSEADDR, err, errlen);
}

/* listenfd_reserve - see listenfd.h */
int listenfd_reserve(const char *addr, long port, char *err, size_t errlen)
{
    /* without SO_REUSEADDR, so that only SO_REUSEPORT sockets of this user
     * can share the port while no instance listens; with it only when
     * connections of an earlier run in TIME_WAIT hold the port (its
     * sockets were not SO_REUSEPORT: one instance then) */
    int fd = s_socket(addr, port, REUSEPORT, err, errlen);
    return fd >= 0 || errno != EADDRINUSE ? fd : s_socket(addr, port, REUSEPORT | REUSEADDR, err, errlen);
}

/* listenfd_inherited - see listenfd.h */
int listenfd_inherited(void)
{
    const char *v = getenv(LISTENFD_ENV);
    if (!v || !*v)
        return -1;
    char *end;
    long fd = strtol(v, &end, 10);
    int type = 0;
    socklen_t tl = sizeof type;
    if (*end || fd < 3 || fd > 1023 || getsockopt((int) fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 ||
        type != SOCK_STREAM)
        return -1;
    unsetenv(LISTENFD_ENV); /* not for what this process may start */
    fcntl((int) fd, F_SETFD, FD_CLOEXEC);
    return (int) fd;
}

/* listenfd_get - see listenfd.h */
int listenfd_get(const char *addr, long port, bool shared, char *err, size_t errlen)
{
    int fd = listenfd_inherited();
    if (fd >= 0)
        return fd;
    return shared ? listenfd_bind_shared(addr, port, err, errlen) : listenfd_bind(addr, port, err, errlen);
}
