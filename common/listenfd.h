/* listenfd - one listening TCP socket shared by every instance of a stage
 * that serves HTTP (ingest, approve), as Postfix's master does it.
 *
 * `payguard up` binds <stage>/http_bind:http_port once, before it starts
 * any instance, and hands the socket to each instance it starts (the
 * descriptor inherited, its number in the environment variable
 * PAYGUARD_LISTEN_FD). The instances accept from the one queue, so a
 * request waits in the kernel's backlog while an instance restarts, and
 * no instance can hold the port alone. A stage started by hand (no
 * variable) binds the port itself.
 */
#ifndef PG_LISTENFD_H
#define PG_LISTENFD_H

#include <stddef.h>

#define LISTENFD_ENV "PAYGUARD_LISTEN_FD"
#define LISTENFD_BACKLOG 1024

/* listenfd_bind - a non-blocking, close-on-exec TCP socket listening on
 * addr (IPv4 or IPv6 literal) and port; -1 and err */
int listenfd_bind(const char *addr, long port, char *err, size_t errlen);

/* listenfd_inherited - the socket the master handed down, or -1 when this
 * process was not given one (then bind with listenfd_bind) */
int listenfd_inherited(void);

/* listenfd_get - the inherited socket, else one bound here; -1 and err */
int listenfd_get(const char *addr, long port, char *err, size_t errlen);

#endif
