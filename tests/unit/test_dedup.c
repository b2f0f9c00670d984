/* test_dedup - a stage's memory of the inputs it took: per producer, a
 * floor and the seqs above it; the recent ids; all bounded */
#include "dedup.h"

#include <criterion/criterion.h>
#include <stdio.h>

#define EPOCH 0x1234abcdULL

static void s_take(dedup_t *d, const char *producer, uint64_t seq)
{
    char id[32];
    snprintf(id, sizeof id, "%s-%llu", producer, (unsigned long long) seq);
    dedup_add(d, producer, seq, id);
}

static bool s_seen(dedup_t *d, const char *producer, uint64_t seq)
{
    char id[32];
    snprintf(id, sizeof id, "other-%s-%llu", producer, (unsigned long long) seq); /* not among the recent ids */
    return dedup_seen(d, producer, seq, id, false);
}

Test(dedup, a_taken_seq_is_seen_and_others_are_not)
{
    dedup_t *d = dedup_new(100, 1000);
    cr_assert_not_null(d);
    cr_expect_eq(dedup_meet(d, "validate.0", EPOCH, 1), 1, "a new link: journal its floor first");
    cr_expect_eq(dedup_meet(d, "validate.0", EPOCH, 1), 0);
    cr_expect_not(s_seen(d, "validate.0", 5));
    s_take(d, "validate.0", 5);
    s_take(d, "validate.0", 3); /* out of order: a re-send */
    cr_expect(s_seen(d, "validate.0", 5));
    cr_expect(s_seen(d, "validate.0", 3));
    cr_expect_not(s_seen(d, "validate.0", 4));
    cr_expect_not(s_seen(d, "validate.1", 5), "another producer's seq 5 is another input");
    cr_expect_eq(dedup_seen(d, "validate.1", 99, "validate.0-5", false), DEDUP_BY_ID,
                 "the same id from another producer: a sibling's copy");
    cr_expect_eq(dedup_seen(d, "validate.0", 5, "validate.0-5", false), DEDUP_BY_POSITION, "by position first");
    dedup_destroy(&d);
    cr_expect_null(d);
}

Test(dedup, the_floor_answers_below_it_and_drops_what_it_passed)
{
    dedup_t *d = dedup_new(100, 1000);
    dedup_meet(d, "triage.1", EPOCH, 1);
    for (uint64_t s = 10; s < 20; s++)
        s_take(d, "triage.1", s);
    cr_expect_eq(dedup_link_size(d, "triage.1"), 10);
    cr_expect_eq(dedup_meet(d, "triage.1", EPOCH, 15), 0);
    cr_expect_eq(dedup_link_size(d, "triage.1"), 5, "10..14 are below the floor now");
    cr_expect(s_seen(d, "triage.1", 2), "below the floor: acknowledged by some instance, so taken");
    cr_expect(s_seen(d, "triage.1", 17));
    cr_expect_not(s_seen(d, "triage.1", 20));
    dedup_meet(d, "triage.1", EPOCH, 3); /* the producer restarted from an older watermark */
    cr_expect(s_seen(d, "triage.1", 12), "a floor never goes down");
    dedup_meet(d, "triage.1", EPOCH, 0); /* payguard replay: no floor */
    cr_expect(s_seen(d, "triage.1", 14));
    dedup_destroy(&d);
}

Test(dedup, another_epoch_starts_the_link_afresh)
{
    dedup_t *d = dedup_new(100, 1000);
    dedup_meet(d, "approve.0", EPOCH, 50);
    s_take(d, "approve.0", 60);
    cr_expect(s_seen(d, "approve.0", 7));
    cr_expect_eq(dedup_meet(d, "approve.0", EPOCH + 1, 1), 1, "the journal started again: journal the new epoch");
    cr_expect_not(s_seen(d, "approve.0", 7), "seq 7 of the new journal is a new input");
    cr_expect_not(s_seen(d, "approve.0", 60));
    dedup_destroy(&d);
}

Test(dedup, epoch_0_moves_nothing_and_its_link_takes_the_first_real_epoch)
{
    dedup_t *d = dedup_new(100, 1000);
    cr_expect_eq(dedup_meet(d, "ingest.0", 0, 0), 1);
    s_take(d, "ingest.0", 4);
    cr_expect_eq(dedup_meet(d, "ingest.0", EPOCH, 2), 1, "the epoch is learnt");
    cr_expect(s_seen(d, "ingest.0", 4), "without starting afresh");
    cr_expect_eq(dedup_meet(d, "ingest.0", 0, 100), 0);
    cr_expect_not(s_seen(d, "ingest.0", 50), "epoch 0 raised no floor");
    dedup_destroy(&d);
}

Test(dedup, memory_is_bounded_whatever_the_history)
{
    dedup_t *d = dedup_new(64, 1000);
    dedup_meet(d, "validate.0", EPOCH, 1);
    for (uint64_t s = 1; s <= 1000000; s++) {
        if (s % 20 == 0)
            dedup_meet(d, "validate.0", EPOCH, s - 20); /* acks follow 20-40 behind */
        s_take(d, "validate.0", s);
    }
    dedup_stats_t st;
    dedup_stats(d, &st);
    cr_expect_leq(st.seqs, 64, "%zu seqs held", st.seqs);
    cr_expect_leq(st.recent, 1000, "%zu recent ids held", st.recent);
    cr_expect_geq(st.recent, 500);
    cr_expect_eq(st.forgotten, 0, "the floor kept the link under its cap");
    cr_expect(s_seen(d, "validate.0", 5), "a million inputs later, an old one is still known");
    cr_expect(s_seen(d, "validate.0", 1000000));
    cr_expect_not(s_seen(d, "validate.0", 1000001));
    dedup_destroy(&d);
}

Test(dedup, a_link_over_its_cap_forgets_its_lowest_seq_and_counts_it)
{
    dedup_t *d = dedup_new(4, 100);
    dedup_meet(d, "triage.0", EPOCH, 1);
    for (uint64_t s = 10; s < 16; s++)
        s_take(d, "triage.0", s);
    dedup_stats_t st;
    dedup_stats(d, &st);
    cr_expect_eq(st.seqs, 4);
    cr_expect_eq(st.forgotten, 2);
    cr_expect_not(s_seen(d, "triage.0", 10), "forgotten: a re-send would be taken again, never dropped");
    cr_expect(s_seen(d, "triage.0", 12));
    cr_expect(dedup_seen(d, "triage.0", 10, "triage.0-10", false), "its id is still among the recent ones");
    dedup_destroy(&d);
}

Test(dedup, recent_ids_keep_between_half_and_all_of_the_bound)
{
    dedup_t *d = dedup_new(16, 100);
    for (int i = 0; i < 1000; i++) {
        char id[16];
        snprintf(id, sizeof id, "ev-%d", i);
        dedup_add(d, NULL, 0, id);
    }
    cr_expect(dedup_seen(d, NULL, 0, "ev-999", false));
    cr_expect(dedup_seen(d, NULL, 0, "ev-950", false), "the last 50 are always there");
    cr_expect_not(dedup_seen(d, NULL, 0, "ev-100", false), "old ones are gone");
    dedup_stats_t st;
    dedup_stats(d, &st);
    cr_expect_leq(st.recent, 100);
    cr_expect_eq(st.links, 0, "no producer: no link");
    dedup_destroy(&d);
}

Test(dedup, dirty_returns_each_moved_link_once)
{
    dedup_t *d = dedup_new(16, 100);
    dedup_meet(d, "a.0", EPOCH, 5);
    dedup_meet(d, "b.1", EPOCH, 7);
    size_t it = 0, n = 0;
    const char *p;
    uint64_t e, f, first;
    while (dedup_dirty(d, &it, &p, &e, &f, &first)) {
        n++;
        cr_expect_eq(e, EPOCH);
        cr_expect(f == 5 || f == 7);
    }
    cr_expect_eq(n, 2);
    it = 0;
    cr_expect_not(dedup_dirty(d, &it, &p, &e, &f, &first), "nothing moved since");
    dedup_meet(d, "b.1", EPOCH, 7);
    it = 0;
    cr_expect_not(dedup_dirty(d, &it, &p, &e, &f, &first), "the same floor again is no move");
    dedup_meet(d, "b.1", EPOCH, 9);
    it = 0;
    cr_assert(dedup_dirty(d, &it, &p, &e, &f, &first));
    cr_expect_str_eq(p, "b.1");
    cr_expect_eq(f, 9);
    dedup_destroy(&d);
}

Test(dedup, producers_past_the_limit_replace_the_least_recently_heard)
{
    dedup_t *d = dedup_new(16, 100);
    char name[16];
    for (int i = 0; i < DEDUP_MAX_LINKS; i++) {
        snprintf(name, sizeof name, "p.%d", i);
        dedup_meet(d, name, EPOCH, 10);
    }
    dedup_meet(d, "p.0", EPOCH, 10); /* heard again: p.1 is now the least recent */
    cr_expect_eq(dedup_meet(d, "x.0", EPOCH, 3), 1);
    cr_expect(s_seen(d, "p.0", 2));
    cr_expect_not(s_seen(d, "p.1", 2), "p.1 was replaced");
    dedup_stats_t st;
    dedup_stats(d, &st);
    cr_expect_eq(st.links, DEDUP_MAX_LINKS);
    cr_expect_eq(st.forgotten, 1);
    dedup_destroy(&d);
}

Test(dedup, a_seq_replayed_to_rebuild_below_the_first_floor_heard_is_known_only_if_remembered)
{
    /* this instance's journal was lost and started again: the producer's
     * floor covers what the old journal took, which replay must rebuild */
    dedup_t *d = dedup_new(100, 1000);
    dedup_meet(d, "triage.0", EPOCH, 40);
    dedup_meet(d, "triage.0", EPOCH, 55);
    char id[32];
    snprintf(id, sizeof id, "never-seen");
    cr_expect(dedup_seen(d, "triage.0", 45, id, true), "45: acknowledged since this journal heard the floor");
    cr_expect_not(dedup_seen(d, "triage.0", 10, id, true), "10: before it; replay rebuilds it");
    cr_expect(dedup_seen(d, "triage.0", 10, id, false), "a live re-send of 10 is a duplicate all the same");
    s_take(d, "triage.0", 70);
    cr_expect(dedup_seen(d, "triage.0", 70, id, true));
    size_t it = 0;
    const char *p;
    uint64_t e, f, first;
    cr_assert(dedup_dirty(d, &it, &p, &e, &f, &first));
    cr_expect_eq(first, 40);
    cr_expect_eq(f, 55);
    /* what a restart does with the journaled values */
    dedup_t *r = dedup_new(100, 1000);
    dedup_meet(r, p, e, first);
    dedup_meet(r, p, e, f);
    cr_expect(dedup_seen(r, "triage.0", 45, id, true));
    cr_expect_not(dedup_seen(r, "triage.0", 10, id, true));
    dedup_destroy(&r);
    dedup_destroy(&d);
}
