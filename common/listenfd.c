/* listenfd - one listening socket for every instance of a stage (see listenfd.h) */
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

/* listenfd_bind - see listenfd.h */
int listenfd_bind(const char *addr, long port, char *err, size_t errlen)
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
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *) &ss, len) != 0 || listen(fd, LISTENFD_BACKLOG) != 0) {
        snprintf(err, errlen, "cannot listen on %s port %ld: %s", addr, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
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
int listenfd_get(const char *addr, long port, char *err, size_t errlen)
{
    int fd = listenfd_inherited();
    return fd >= 0 ? fd : listenfd_bind(addr, port, err, errlen);
}
