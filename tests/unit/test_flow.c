/* test_flow - when an unacknowledged event is re-sent (common/flow.h) */
#include <criterion/criterion.h>

#include "flow.h"

#define T0 1000000 /* a monotonic clock's "now" at the start */

Test(flow, nothing_acked_yet_means_resend_ms_then_resend)
{
    flow_t f;
    flow_init(&f, 3000);
    cr_assert_eq(flow_rto(&f, 0), 3000);
    cr_assert_not(flow_due(&f, T0, T0, 0, T0 + 2999));
    cr_assert(flow_due(&f, T0, T0, 0, T0 + 3000), "a consumer that never answered: the timer alone");
}

Test(flow, quick_acks_keep_the_floor)
{
    flow_t f;
    flow_init(&f, 3000);
    for (int i = 0; i < 100; i++)
        flow_ack(&f, T0 + i, 0, true, T0 + i + 5 + i % 3);
    cr_assert_eq(flow_rto(&f, 0), 3000, "rto %lld", (long long) flow_rto(&f, 0));
}

Test(flow, a_queued_event_is_not_resent_while_the_consumer_works_towards_it)
{
    /* a burst: 2,000 events sent at T0..T0+400 to a consumer working at 500
     * a second; 3.5 s in, it has acked the first 1,750 and acks keep coming:
     * the 250 still queued wait 4 s, past resend_ms, but are not re-sent */
    flow_t f;
    flow_init(&f, 3000);
    for (int i = 0; i < 1750; i++)
        flow_ack(&f, T0 + i / 5, 0, true, T0 + 2 * i);
    int64_t now = T0 + 3500;
    cr_assert_not(flow_due(&f, T0 + 380, T0 + 380, 0, now), "queued behind work in progress");
    cr_assert_not(flow_due(&f, T0 + 400, T0 + 400, 0, T0 + 4000));
}

Test(flow, an_event_the_consumer_went_past_is_resent)
{
    /* the consumer restarted: what was in its queue died with it; it acks
     * what was sent after its restart, so the older events are lost */
    flow_t f;
    flow_init(&f, 3000);
    flow_ack(&f, T0 + 5000, 0, true, T0 + 5010);
    cr_assert(flow_due(&f, T0 + 100, T0 + 100, 0, T0 + 5020), "sent before an acked one, unacked after resend_ms");
    cr_assert_not(flow_due(&f, T0 + 4000, T0 + 4000, 0, T0 + 5020), "younger than resend_ms: not yet");
}

Test(flow, a_quiet_consumer_gets_the_timer)
{
    flow_t f;
    flow_init(&f, 3000);
    flow_ack(&f, T0, 0, true, T0 + 10);
    /* sent later than anything acked, and no ack since: stopped or lost */
    cr_assert_not(flow_due(&f, T0 + 100, T0 + 100, 0, T0 + 3000),
                  "acks came 2.99 s ago and the event is not yet 3 s old");
    cr_assert(flow_due(&f, T0 + 100, T0 + 100, 0, T0 + 3100));
}

Test(flow, a_growing_queue_raises_the_timeout)
{
    flow_t f;
    flow_init(&f, 3000);
    for (int i = 0; i < 200; i++)
        flow_ack(&f, T0 + i, 0, true, T0 + i + (i < 100 ? 10 : 5000));
    cr_assert_gt(flow_rto(&f, 0), 5000, "rto %lld", (long long) flow_rto(&f, 0));
    for (int i = 0; i < 300; i++)
        flow_ack(&f, T0 + 10000 + i, 0, true, T0 + 10000 + i + 10);
    cr_assert_eq(flow_rto(&f, 0), 3000, "back to the floor once the queue drained");
}

Test(flow, resent_or_waited_for_events_give_no_sample)
{
    flow_t f;
    flow_init(&f, 3000);
    flow_ack(&f, T0, 1, true, T0 + 60000);
    flow_ack(&f, T0, 0, false, T0 + 60000);
    cr_assert_eq(f.samples, 0);
    cr_assert_eq(flow_rto(&f, 0), 3000);
    cr_assert_eq(f.last_heard_ms, T0 + 60000, "but they are acks: the consumer is there");
}

Test(flow, each_resend_doubles_up_to_the_ceiling)
{
    flow_t f;
    flow_init(&f, 3000);
    cr_assert_eq(flow_rto(&f, 1), 6000);
    cr_assert_eq(flow_rto(&f, 2), 12000);
    cr_assert_eq(flow_rto(&f, 3), 24000);
    cr_assert_eq(flow_rto(&f, 4), 3000 * FLOW_RTO_MAX_X);
    cr_assert_eq(flow_rto(&f, 60), 3000 * FLOW_RTO_MAX_X, "no overflow however many re-sends");
    cr_assert_not(flow_due(&f, T0, T0, 2, T0 + 11999));
    cr_assert(flow_due(&f, T0, T0, 2, T0 + 12000));
    for (int i = 0; i < 10; i++)
        flow_ack(&f, T0 + i, 0, true, T0 + i + 1000000); /* a consumer stuck for minutes: still the ceiling */
    cr_assert_eq(flow_rto(&f, 0), 3000 * FLOW_RTO_MAX_X);
}

Test(flow, events_sent_in_the_same_turn_as_an_acked_one_are_not_passed)
{
    /* one loop turn sends hundreds at the same millisecond; the consumer
     * acks the first of them and reads the rest later */
    flow_t f;
    flow_init(&f, 3000);
    flow_ack(&f, T0, 0, true, T0 + 5);
    cr_assert_not(flow_due(&f, T0, T0, 0, T0 + 3004), "same send time, acks still coming");
    flow_ack(&f, T0 + 1, 0, true, T0 + 3010);
    int64_t now = T0 + 3020 + flow_rto(&f, 0);
    flow_ack(&f, T0 + 2, 0, false, now - 1); /* acks keep coming: not quiet */
    cr_assert(flow_due(&f, T0, T0, 0, now), "once a later send is acked, it was passed");
}

Test(flow, a_wait_restarts_the_timer_but_not_the_links_order)
{
    /* A was sent at T0 and the consumer waits on it (a slow outside call);
     * B, sent at T0 + 10, is still queued behind. A's ack (its lease renewed
     * at T0 + 2000) must not make B look passed */
    flow_t f;
    flow_init(&f, 3000);
    cr_assert_not(flow_due(&f, T0, T0 + 2000, 0, T0 + 4000), "A's lease runs from its wait");
    cr_assert(flow_due(&f, T0, T0 + 2000, 0, T0 + 5000));
    flow_ack(&f, T0, 0, false, T0 + 4500);
    cr_assert_not(flow_due(&f, T0 + 10, T0 + 10, 0, T0 + 4600), "B: queued, acks coming");
}

Test(flow, a_consumer_that_only_says_wait_is_alive)
{
    /* execute at its bound of runbooks: it acks nothing for seconds but
     * says "wait" for what it holds every third of resend_ms. What sits
     * unread in its queue (sent after the held one) is not re-sent while
     * the waits come, and is once they stop */
    flow_t f;
    flow_init(&f, 3000);
    flow_ack(&f, T0, 0, true, T0 + 5);
    int64_t t = T0 + 5;
    for (; t < T0 + 10000; t += 1000)
        flow_heard(&f, T0 + 100, 0, t); /* the held one was sent at T0 + 100 */
    cr_assert_not(flow_due(&f, T0 + 500, T0 + 500, 0, t), "queued behind held work: not re-sent");
    cr_assert_not(flow_due(&f, T0 + 500, T0 + 500, 0, t + 1999));
    cr_assert(flow_due(&f, T0 + 500, T0 + 500, 0, t - 1000 + 3000), "no wait for resend_ms: quiet");
}

Test(flow, a_wait_passes_what_was_sent_before_it)
{
    flow_t f;
    flow_init(&f, 3000);
    flow_heard(&f, T0 + 200, 1, T0 + 300);
    cr_assert_not(flow_due(&f, T0 + 100, T0 + 100, 0, T0 + 3200),
                  "a wait for a re-sent event: which copy it holds is unknown, nothing passed");
    flow_heard(&f, T0 + 200, 0, T0 + 3100);
    cr_assert(flow_due(&f, T0 + 100, T0 + 100, 0, T0 + 3200), "a wait for an event sent once passes what went before");
    cr_assert_not(flow_due(&f, T0 + 200, T0 + 200, 0, T0 + 3250), "not the held one itself");
}
