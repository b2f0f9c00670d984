/* flow - re-send timeouts learned from acks (see flow.h) */
#include "flow.h"

#include <assert.h>

/* flow_init - see flow.h */
void flow_init(flow_t *self, int64_t resend_ms)
{
    assert(self);
    assert(resend_ms > 0);
    *self = (flow_t){.floor_ms = resend_ms};
}

/* flow_ack - see flow.h (samples: RFC 6298 §2, alpha 1/8, beta 1/4) */
void flow_ack(flow_t *self, int64_t sent_ms, unsigned resends, bool sample, int64_t now)
{
    assert(self && self->floor_ms > 0);
    assert(sent_ms > 0 && now > 0);
    self->last_heard_ms = now;
    if (sent_ms > self->passed_ms)
        self->passed_ms = sent_ms;
    if (!sample || resends > 0 || now < sent_ms)
        return;
    int64_t rtt = now - sent_ms;
    if (self->samples++ == 0) {
        self->srtt_ms = rtt;
        self->rttvar_ms = rtt / 2;
        return;
    }
    int64_t dev = self->srtt_ms > rtt ? self->srtt_ms - rtt : rtt - self->srtt_ms;
    self->rttvar_ms = (3 * self->rttvar_ms + dev) / 4;
    self->srtt_ms = (7 * self->srtt_ms + rtt) / 8;
}

/* flow_heard - see flow.h */
void flow_heard(flow_t *self, int64_t sent_ms, unsigned resends, int64_t now)
{
    assert(self && self->floor_ms > 0);
    assert(sent_ms > 0 && now > 0);
    self->last_heard_ms = now;
    if (resends == 0 && sent_ms > self->passed_ms)
        self->passed_ms = sent_ms;
}

/* flow_rto - see flow.h */
int64_t flow_rto(const flow_t *self, unsigned resends)
{
    assert(self && self->floor_ms > 0);
    int64_t ceiling = self->floor_ms * FLOW_RTO_MAX_X;
    int64_t rto = self->srtt_ms + 4 * self->rttvar_ms;
    if (rto < self->floor_ms)
        rto = self->floor_ms;
    for (unsigned i = 0; i < resends && rto < ceiling; i++)
        rto *= 2;
    assert(rto >= self->floor_ms);
    return rto < ceiling ? rto : ceiling;
}

/* flow_due - see flow.h */
bool flow_due(const flow_t *self, int64_t sent_ms, int64_t since_ms, unsigned resends, int64_t now)
{
    assert(self && self->floor_ms > 0);
    assert(sent_ms > 0 && since_ms >= sent_ms);
    if (now - since_ms < flow_rto(self, resends))
        return false;
    bool passed = self->passed_ms > sent_ms; /* not >=: one turn sends many at the same ms */
    bool quiet = now - self->last_heard_ms >= self->floor_ms;
    return passed || quiet;
}
