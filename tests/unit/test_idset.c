/* test_idset - the ids of a stage dedup's recent generations (dedup.h) */
#include "idset.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

Test(idset, add_then_has)
{
    idset_t *set = idset_new(100);
    cr_assert_not_null(set);
    cr_expect_eq(idset_size(set), 0);
    cr_expect_not(idset_has(set, "rcpt_1"));

    cr_expect_eq(idset_add(set, "rcpt_1"), 1, "new: 1");
    cr_expect_eq(idset_add(set, "triage.0-00ff"), 1);
    cr_expect_eq(idset_add(set, ""), 1, "the empty string is a member like any other");
    cr_expect(idset_has(set, "rcpt_1"));
    cr_expect(idset_has(set, "triage.0-00ff"));
    cr_expect(idset_has(set, ""));
    cr_expect_not(idset_has(set, "rcpt_2"));
    cr_expect_not(idset_has(set, "rcpt_"));
    cr_expect_eq(idset_size(set), 3);

    idset_destroy(&set);
    cr_expect_null(set, "destroy NULLs the pointer");
    idset_destroy(&set);
}

Test(idset, a_duplicate_returns_0)
{
    idset_t *set = idset_new(10);
    cr_assert_eq(idset_add(set, "ev_1"), 1);
    cr_expect_eq(idset_add(set, "ev_1"), 0, "seen before: drop it");
    cr_expect_eq(idset_add(set, "ev_1"), 0);
    cr_expect_eq(idset_size(set), 1);

    /* the set keeps its own copy: the caller's buffer may change */
    char buf[16];
    strcpy(buf, "ev_2");
    cr_expect_eq(idset_add(set, buf), 1);
    strcpy(buf, "ev_3");
    cr_expect(idset_has(set, "ev_2"));
    cr_expect_not(idset_has(set, "ev_3"));
    idset_destroy(&set);
}

Test(idset, grows_past_its_first_table_and_keeps_everything)
{
    enum { N = 20000 };
    idset_t *set = idset_new(N);
    char id[64];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "validate.0-%024x", i);
        cr_assert_eq(idset_add(set, id), 1, "%s", id);
    }
    cr_expect_eq(idset_size(set), N);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "validate.0-%024x", i);
        cr_expect(idset_has(set, id), "lost %s", id);
        cr_expect_eq(idset_add(set, id), 0);
    }
    for (int i = N; i < N + 1000; i++) {
        snprintf(id, sizeof id, "validate.0-%024x", i);
        cr_expect_not(idset_has(set, id), "phantom %s", id);
    }
    cr_expect_eq(idset_size(set), N);
    idset_destroy(&set);
}

Test(idset, full_returns_minus_1)
{
    idset_t *set = idset_new(3);
    cr_expect_eq(idset_add(set, "a"), 1);
    cr_expect_eq(idset_add(set, "b"), 1);
    cr_expect_eq(idset_add(set, "c"), 1);
    cr_expect_eq(idset_add(set, "d"), -1, "full: the caller stops taking input rather than forget");
    cr_expect_not(idset_has(set, "d"));
    cr_expect_eq(idset_add(set, "a"), 0, "a known id is still recognised when full");
    cr_expect_eq(idset_size(set), 3);
    idset_destroy(&set);

    set = idset_new(0);
    cr_expect_eq(idset_add(set, "a"), -1);
    cr_expect_eq(idset_size(set), 0);
    idset_destroy(&set);
}

Test(idset, ids_that_differ_only_late_or_in_length_are_different)
{
    /* digests, not strings: a long common prefix, a one-byte tail, and ids
     * longer than the stack buffer the digest is taken from */
    idset_t *set = idset_new(100);
    char a[600], b[600];
    memset(a, 'x', sizeof a - 1);
    a[sizeof a - 1] = '\0';
    memcpy(b, a, sizeof b);
    b[sizeof b - 2] = 'y';
    cr_expect_eq(idset_add(set, a), 1);
    cr_expect_not(idset_has(set, b), "differs in its last byte only");
    cr_expect_eq(idset_add(set, b), 1);
    a[300] = '\0';
    cr_expect_not(idset_has(set, a), "a prefix of a member is not a member");
    cr_expect_eq(idset_add(set, "ev_1"), 1);
    cr_expect_not(idset_has(set, "ev_1 "));
    cr_expect_not(idset_has(set, "ev_"));
    cr_expect_eq(idset_size(set), 3);
    idset_destroy(&set);
}

Test(idset, two_sets_key_their_digests_independently)
{
    /* each set draws its own key: both answer for their own members only */
    idset_t *s1 = idset_new(10), *s2 = idset_new(10);
    cr_assert_not_null(s1);
    cr_assert_not_null(s2);
    cr_expect_eq(idset_add(s1, "rcpt_a"), 1);
    cr_expect_eq(idset_add(s2, "rcpt_b"), 1);
    cr_expect(idset_has(s1, "rcpt_a"));
    cr_expect_not(idset_has(s1, "rcpt_b"));
    cr_expect(idset_has(s2, "rcpt_b"));
    cr_expect_not(idset_has(s2, "rcpt_a"));
    idset_destroy(&s1);
    idset_destroy(&s2);
}

Test(idset, clear_forgets_every_id_and_takes_new_ones)
{
    idset_t *set = idset_new(4);
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof id, "ev_%d", i);
        cr_assert_eq(idset_add(set, id), 1);
    }
    cr_expect_eq(idset_add(set, "ev_9"), -1, "full");
    idset_clear(set);
    cr_expect_eq(idset_size(set), 0);
    cr_expect_not(idset_has(set, "ev_0"), "forgotten");
    cr_expect_eq(idset_add(set, "ev_9"), 1, "room again");
    cr_expect(idset_has(set, "ev_9"));
    idset_destroy(&set);
}
