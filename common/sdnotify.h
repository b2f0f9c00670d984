/* sdnotify - systemd's service notification protocol, without libsystemd.
 *
 * A unit of Type=notify starts its process with NOTIFY_SOCKET naming an
 * AF_UNIX datagram socket (a path, or an abstract name written with a
 * leading '@'); the process sends it newline-separated assignments, one
 * datagram each time:
 *	READY=1		start-up is done: the unit is active (After= units start)
 *	WATCHDOG=1	still alive; with WatchdogSec=, systemd passes WATCHDOG_USEC
 *			(and WATCHDOG_PID, the process meant) and kills and restarts
 *			a process that does not send this within that time
 *	STOPPING=1	it is stopping (draining)
 * Outside systemd (no NOTIFY_SOCKET) every call does nothing, so the same
 * program runs under `payguard up` or by hand. The stage loop pings the
 * watchdog at half the interval, from the loop itself: a loop that stops
 * turning (a deadlock, a blocked call) stops the pings and systemd restarts
 * the instance (common/stage.c).
 */
#ifndef PG_SDNOTIFY_H
#define PG_SDNOTIFY_H

#include <stdint.h>
#include <sys/types.h>

#define SDNOTIFY_SOCKET_ENV "NOTIFY_SOCKET"
#define SDNOTIFY_WATCHDOG_USEC_ENV "WATCHDOG_USEC"
#define SDNOTIFY_WATCHDOG_PID_ENV "WATCHDOG_PID"
#define SDNOTIFY_STATE_MAX 256 /* one message, at most */

/* sdnotify_send_to - state as one datagram to the socket at path ("@name":
 * the abstract name); 0, or -1 with errno (EINVAL: a path too long for
 * sockaddr_un, or a state longer than SDNOTIFY_STATE_MAX) */
int sdnotify_send_to(const char *path, const char *state);

/* sdnotify_send - state to $NOTIFY_SOCKET; 0 sent, 1 not under systemd (no
 * variable), -1 with errno */
int sdnotify_send(const char *state);

/* sdnotify_watchdog_every_ms - how often to ping: half of usec (the value of
 * WATCHDOG_USEC), at least 1 ms; 0 when there is no watchdog: usec NULL or
 * not a positive number, or pid (WATCHDOG_PID, may be NULL) naming another
 * process than self */
int64_t sdnotify_watchdog_every_ms(const char *usec, const char *pid, pid_t self);

/* sdnotify_watchdog_t - a pinger, for a loop that turns at least as often
 * as it must ping */
typedef struct {
    int64_t every_ms; /* 0: no watchdog */
    int64_t last_ms;  /* when it last pinged (monotonic) */
} sdnotify_watchdog_t;

/* sdnotify_watchdog_init - from this process's environment, now_ms the
 * monotonic time now */
void sdnotify_watchdog_init(sdnotify_watchdog_t *w, int64_t now_ms);

/* sdnotify_watchdog_tick - from the loop: WATCHDOG=1 when every_ms has
 * passed since the last ping; 1 if it pinged, 0 if not due (or none) */
int sdnotify_watchdog_tick(sdnotify_watchdog_t *w, int64_t now_ms);

/* sdnotify_forget - remove NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID
 * from the environment: for a process that starts others (payguard up's
 * children are not what systemd started) */
void sdnotify_forget(void);

#endif
