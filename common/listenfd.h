/* listenfd - the listening TCP socket of a stage that serves HTTP (ingest,
 * approve), bound by the master as Postfix's master does it.
 *
 * `payguard up` binds <stage>/http_bind:http_port before it starts any
 * instance and hands a socket to each instance it starts (the descriptor
 * inherited, its number in the environment variable PAYGUARD_LISTEN_FD).
 * Two ways, by how many instances serve the port on this host:
 *   - one socket for all (listenfd_bind), held by the master: a request
 *     waits in the kernel's backlog while the instance restarts, and no
 *     instance can hold the port alone. approve, and ingest with one
 *     instance.
 *   - one socket per instance (listenfd_bind_shared, SO_REUSEPORT), bound
 *     at each start of that instance and closed in the master: the kernel
 *     spreads new connections over the instances by their addresses. On
 *     one shared socket the instance that wakes first accepts a whole
 *     burst, so a provider's few keep-alive connections could all land on
 *     one instance and the others idle. The master keeps the port
 *     reserved (listenfd_reserve: bound, never listening, so it takes no
 *     connection) while instances come and go. When an instance dies the
 *     connections waiting in its own queue are reset (none was answered,
 *     the sender retries them) and new ones go to the instances that run.
 *     ingest with two or more instances.
 * A stage started otherwise (by hand, or by systemd: one unit per instance,
 * no master) binds the port itself: alone, or when several instances of it
 * run on this host each with a socket of its own (SO_REUSEPORT), as the
 * master's per-instance sockets.
 */
#ifndef PG_LISTENFD_H
#define PG_LISTENFD_H

#include <stdbool.h>
#include <stddef.h>

#define LISTENFD_ENV "PAYGUARD_LISTEN_FD"
#define LISTENFD_BACKLOG 1024

/* listenfd_bind - a non-blocking, close-on-exec TCP socket listening on
 * addr (IPv4 or IPv6 literal) and port; -1 and err */
int listenfd_bind(const char *addr, long port, char *err, size_t errlen);

/* listenfd_bind_shared - as listenfd_bind, with SO_REUSEPORT: one of
 * several listening sockets on the port, each given its share of new
 * connections; -1 and err */
int listenfd_bind_shared(const char *addr, long port, char *err, size_t errlen);

/* listenfd_reserve - a socket bound to addr and port with SO_REUSEPORT and
 * not listening: it keeps the port for listenfd_bind_shared's sockets and
 * takes no connection; -1 and err */
int listenfd_reserve(const char *addr, long port, char *err, size_t errlen);

/* listenfd_inherited - the socket the master handed down, or -1 when this
 * process was not given one (then bind with listenfd_bind) */
int listenfd_inherited(void);

/* listenfd_get - the inherited socket, else one bound here: shared
 * (listenfd_bind_shared) when several instances of the stage serve the
 * port on this host, else alone (listenfd_bind); -1 and err */
int listenfd_get(const char *addr, long port, bool shared, char *err, size_t errlen);

#endif
