/* flow - when to re-send an unacknowledged event, learned from the acks of
 * one link (a producer's socket to one consumer instance, or to a stage).
 *
 * A producer re-sends what its consumer has not acknowledged, because an
 * event in a ZeroMQ queue dies with the process that held it. A fixed timer
 * (resend_ms) cannot tell "lost" from "still queued": under a burst a
 * consumer's input queue holds seconds of work, every event in it outlives
 * the timer, is sent again, and the copies double the consumer's work and
 * its queue (congestion collapse; measured: 2,732 re-sends for 3,000
 * webhooks, and the same pipeline slower with two instances than with one).
 * So an unacked event is re-sent only when both hold:
 *   1. its timeout has passed. As TCP does (RFC 6298), every ack of an event
 *      sent once gives a round-trip sample (Karn: an event sent twice, or one
 *      the consumer asked to wait for, gives none); srtt and rttvar follow
 *      them; the timeout is srtt + 4 * rttvar, never under resend_ms, and
 *      doubles with each re-send of that event (back-off), never over
 *      FLOW_RTO_MAX_X times resend_ms;
 *   2. the consumer either went past it or went quiet. A link is FIFO: an
 *      ack of an event sent at time T, or a wait for one (the consumer holds
 *      it, working on it), means everything sent before T reached the
 *      consumer (or was lost with an earlier process of it). An event sent
 *      at or after the last acked or waited one's send time (one loop turn
 *      sends many in the same millisecond) is still queued ahead of the
 *      consumer's work while acks or waits keep coming: it is not re-sent.
 *      A consumer at its bound of deferred work (execute's runbooks waiting
 *      on outside calls) may ack nothing for seconds while it says "wait"
 *      every third of resend_ms: it is alive, and its queue is not lost. A
 *      link with neither an ack nor a wait for resend_ms (the consumer
 *      stopped, restarted, or never answered) re-sends on the timer alone.
 * A lost event is re-sent at most FLOW_RTO_MAX_X * resend_ms late (30 s at
 * the default 3 s): a delay, never a loss. Pure and clock-free: the caller
 * passes the times (monotonic ms, > 0).
 */
#ifndef PG_FLOW_H
#define PG_FLOW_H

#include <stdbool.h>
#include <stdint.h>

#define FLOW_RTO_MAX_X 10 /* the timeout's ceiling, in resend_ms */

typedef struct {
    int64_t floor_ms;      /* resend_ms */
    int64_t srtt_ms;       /* smoothed round trip, 0 until the first sample */
    int64_t rttvar_ms;     /* its mean deviation */
    uint64_t samples;      /* round trips measured */
    int64_t last_heard_ms; /* when the last ack or wait came (0: none yet) */
    int64_t passed_ms;     /* the latest send time among acked or waited events */
} flow_t;

/* flow_init - no ack yet: the timeout is resend_ms (> 0) */
void flow_init(flow_t *self, int64_t resend_ms);
/* flow_ack - an event last sent at sent_ms (its send, never a wait's time:
 * the link's order is the sends'), sent 1 + resends times (sample: false
 * when the consumer asked us to wait for it), was acked at now */
void flow_ack(flow_t *self, int64_t sent_ms, unsigned resends, bool sample, int64_t now);
/* flow_heard - the consumer said "wait" for an event last sent at sent_ms,
 * sent 1 + resends times (it holds it): alive, and past everything sent
 * before it. Only an event sent once moves the passed mark (which copy it
 * holds is unknown otherwise); no round-trip sample */
void flow_heard(flow_t *self, int64_t sent_ms, unsigned resends, int64_t now);
/* flow_rto - how long after its last send an event sent 1 + resends times
 * may be re-sent */
int64_t flow_rto(const flow_t *self, unsigned resends);
/* flow_due - whether an unacked event last sent at sent_ms, 1 + resends
 * times, is to be sent again now (both conditions above); its timeout runs
 * from since_ms: sent_ms, or the consumer's last "wait" for it (a lease) */
bool flow_due(const flow_t *self, int64_t sent_ms, int64_t since_ms, unsigned resends, int64_t now);

#endif
