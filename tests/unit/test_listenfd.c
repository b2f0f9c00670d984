/* test_listenfd - the listening sockets the master hands to a stage's instances */
#include "listenfd.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* s_free_port - a port nobody listens on now (bound to 0, read, closed) */
static long s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof in;
    cr_assert_eq(bind(fd, (struct sockaddr *) &in, sizeof in), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *) &in, &len), 0);
    close(fd);
    return ntohs(in.sin_port);
}

/* s_connect - a connected client socket to 127.0.0.1:port, or -1 and errno */
static int s_connect(long port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in in = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t) port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *) &in, sizeof in) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* s_accept_all - how many connections wait on a listening socket (accepted and closed) */
static int s_accept_all(int lfd)
{
    int n = 0, c;
    while ((c = accept(lfd, NULL, NULL)) >= 0) {
        close(c);
        n++;
    }
    cr_assert(errno == EAGAIN || errno == EWOULDBLOCK, "accept: %s", strerror(errno));
    return n;
}

/* two instances' sockets on one port: the kernel gives each a share of new
 * connections (64 connections all on one of two sockets: chance 2^-63) */
Test(listenfd, shared_sockets_split_the_connections)
{
    char err[256] = "";
    long port = s_free_port();
    int a = listenfd_bind_shared("127.0.0.1", port, err, sizeof err);
    int b = listenfd_bind_shared("127.0.0.1", port, err, sizeof err);
    cr_assert(a >= 0 && b >= 0, "%s", err);
    int clients[64];
    for (int i = 0; i < 64; i++) {
        clients[i] = s_connect(port);
        cr_assert_geq(clients[i], 0, "connect %d: %s", i, strerror(errno));
    }
    int na = s_accept_all(a), nb = s_accept_all(b);
    cr_assert_eq(na + nb, 64);
    cr_assert(na > 0 && nb > 0, "a took %d, b took %d", na, nb);
    for (int i = 0; i < 64; i++)
        close(clients[i]);
    close(a);
    close(b);
}

/* the master's reservation holds the port and takes no connection: with
 * no instance listening a client is refused, not queued; with one, that
 * one takes every connection; a plain bind by anyone else fails */
Test(listenfd, reservation_holds_the_port_and_takes_nothing)
{
    char err[256] = "";
    long port = s_free_port();
    int r = listenfd_reserve("127.0.0.1", port, err, sizeof err);
    cr_assert_geq(r, 0, "%s", err);
    cr_assert_eq(s_connect(port), -1);
    cr_assert_eq(errno, ECONNREFUSED);

    cr_assert_eq(listenfd_bind("127.0.0.1", port, err, sizeof err), -1);
    cr_assert(strstr(err, "cannot listen on 127.0.0.1 port") != NULL, "%s", err);

    int a = listenfd_bind_shared("127.0.0.1", port, err, sizeof err);
    cr_assert_geq(a, 0, "%s", err);
    int clients[8];
    for (int i = 0; i < 8; i++)
        cr_assert_geq(clients[i] = s_connect(port), 0);
    cr_assert_eq(s_accept_all(a), 8);
    for (int i = 0; i < 8; i++)
        close(clients[i]);
    close(a);
    cr_assert_eq(s_connect(port), -1, "the instance's socket closed: refused again");
    close(r);
}

/* one socket for all (one instance): a second plain or shared bind fails */
Test(listenfd, plain_socket_is_exclusive)
{
    char err[256] = "";
    long port = s_free_port();
    int a = listenfd_bind("127.0.0.1", port, err, sizeof err);
    cr_assert_geq(a, 0, "%s", err);
    cr_assert_eq(listenfd_bind("127.0.0.1", port, err, sizeof err), -1);
    cr_assert_eq(listenfd_bind_shared("127.0.0.1", port, err, sizeof err), -1);
    cr_assert(strstr(err, "Address already in use") != NULL, "%s", err);
    close(a);
}

/* no master (systemd starts each instance): an instance of a stage that
 * runs several here binds a socket of its own beside the others', one that
 * runs alone holds the port alone */
Test(listenfd, without_a_master_each_instance_binds)
{
    char err[256] = "";
    unsetenv(LISTENFD_ENV);
    long port = s_free_port();
    int a = listenfd_get("127.0.0.1", port, true, err, sizeof err);
    cr_assert_geq(a, 0, "%s", err);
    int b = listenfd_get("127.0.0.1", port, true, err, sizeof err);
    cr_assert_geq(b, 0, "a second instance beside the first: %s", err);
    cr_expect_eq(listenfd_get("127.0.0.1", port, false, err, sizeof err), -1, "alone: the port is taken");
    close(a);
    close(b);
    a = listenfd_get("127.0.0.1", port, false, err, sizeof err);
    cr_assert_geq(a, 0, "%s", err);
    cr_expect_eq(listenfd_get("127.0.0.1", port, true, err, sizeof err), -1, "nobody shares a port held alone");
    close(a);
}

/* bad addresses and ports are named in the error */
Test(listenfd, bad_input_is_refused)
{
    char err[256] = "";
    cr_assert_eq(listenfd_bind("localhost", 8080, err, sizeof err), -1);
    cr_assert_str_eq(err, "'localhost' is not an IPv4 or IPv6 address");
    cr_assert_eq(listenfd_reserve("127.0.0.1", 0, err, sizeof err), -1);
    cr_assert_str_eq(err, "port 0 out of range");
    cr_assert_eq(listenfd_bind_shared("127.0.0.1", 65536, err, sizeof err), -1);
    cr_assert_str_eq(err, "port 65536 out of range");
}

/* the inherited descriptor: none, not a number, not a socket -> -1; a
 * stream socket -> itself, and the variable is gone for what this process
 * starts */
Test(listenfd, inherited_descriptor)
{
    unsetenv(LISTENFD_ENV);
    cr_assert_eq(listenfd_inherited(), -1);
    setenv(LISTENFD_ENV, "abc", 1);
    cr_assert_eq(listenfd_inherited(), -1);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    char v[16];
    snprintf(v, sizeof v, "%d", p[0]);
    setenv(LISTENFD_ENV, v, 1);
    cr_assert_eq(listenfd_inherited(), -1, "a pipe is not a listening socket");
    char err[256] = "";
    int fd = listenfd_bind("127.0.0.1", s_free_port(), err, sizeof err);
    cr_assert_geq(fd, 0, "%s", err);
    snprintf(v, sizeof v, "%d", fd);
    setenv(LISTENFD_ENV, v, 1);
    cr_assert_eq(listenfd_inherited(), fd);
    cr_assert_null(getenv(LISTENFD_ENV));
    close(fd);
    close(p[0]);
    close(p[1]);
}
