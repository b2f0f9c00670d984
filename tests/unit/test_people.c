/* test_people - approvers from the configuration: who a Bearer token is,
 * and the strictness of what the operator writes for them */
#include <criterion/criterion.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "people.h"

/* s_load - a config holding text, then its approvers; rc of people_load */
static int s_load(const char *text, people_t *out, char *err, size_t errlen)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/pg-people-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
    close(fd);
    config_t *c = config_load(path, err, errlen);
    unlink(path);
    cr_assert_not_null(c, "%s", err);
    int rc = people_load(c, out, err, errlen);
    config_destroy(&c);
    return rc;
}

/* s_sha256_hex - the token_sha256 an operator writes for token */
static void s_sha256_hex(const char *token, char hex[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *) token, strlen(token), d);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

Test(people, a_bearer_token_names_its_approver)
{
    char hex[65], text[512], err[256];
    s_sha256_hex("alice-secret-token", hex);
    snprintf(text, sizeof text,
             "approvers\n    alice\n        roles = \"treasury, compliance\"\n"
             "        token_sha256 = %s\n",
             hex);
    static people_t p;
    cr_assert_eq(s_load(text, &p, err, sizeof err), 0, "%s", err);
    cr_assert_eq(p.n, 1);
    cr_assert(!p.demo, "the file's approvers, not the demo ones");
    const person_t *who = people_by_auth(&p, "Bearer alice-secret-token");
    cr_assert_not_null(who);
    cr_assert_str_eq(who->name, "alice");
    cr_assert(people_holds(who, "treasury") && people_holds(who, "compliance"));
    cr_assert(!people_holds(who, "finance_manager"));
    cr_assert_null(people_by_auth(&p, "Bearer alice-secret-tokeN"));
    cr_assert_null(people_by_auth(&p, "alice-secret-token"), "only a Bearer header");
}

Test(people, token_sha256_must_be_exactly_64_hex_digits)
{
    /* sscanf's "%2x" took "5?" as 0x05, " f" as 0x0f and "-1" as 0xff: a
     * mistyped hash loaded as another one (found by tests/fuzz/fuzz_config.c) */
    char good[65];
    s_sha256_hex("t", good);
    static const struct {
        int at;
        const char *pair;
    } bad[] = {{0, "5?"}, {10, "5\xa4"}, {20, " f"}, {30, "-1"}, {62, "+f"}, {0, "0x"}, {40, "g0"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char hex[65], text[512], err[256] = "";
        memcpy(hex, good, sizeof hex);
        memcpy(hex + bad[i].at, bad[i].pair, 2);
        snprintf(text, sizeof text, "approvers\n    bob\n        roles = treasury\n        token_sha256 = %s\n", hex);
        static people_t p;
        cr_assert_eq(s_load(text, &p, err, sizeof err), -1, "accepted '%s'", hex);
        cr_assert(strstr(err, "approvers/bob needs roles and token_sha256 (64 hex digits)"), "%s", err);
    }
    /* upper case is hex too */
    char upper[65], text[512], err[256];
    for (int i = 0; i < 65; i++)
        upper[i] = (char) (good[i] >= 'a' && good[i] <= 'f' ? good[i] - 32 : good[i]);
    snprintf(text, sizeof text, "approvers\n    bob\n        roles = treasury\n        token_sha256 = %s\n", upper);
    static people_t p;
    cr_assert_eq(s_load(text, &p, err, sizeof err), 0, "%s", err);
    cr_assert_not_null(people_by_auth(&p, "Bearer t"));
}

Test(people, roles_must_name_at_least_one_bounded_role)
{
    char err[256];
    people_t p;
    const char *hash = "6fb110b213d302512a767f105125e04e26752f1dbaff4eee804e96b6f232668c";
    char text[512];
    snprintf(text, sizeof text, "approvers\n    eve\n        roles = \",\"\n        token_sha256 = %s\n", hash);
    cr_assert_eq(s_load(text, &p, err, sizeof err), -1);
    cr_assert(strstr(err, "approvers/eve/roles names no role"), "%s", err);
    snprintf(
        text, sizeof text,
        "approvers\n    eve\n        roles = a_role_name_that_is_far_too_long_to_keep\n        token_sha256 = %s\n",
        hash);
    cr_assert_eq(s_load(text, &p, err, sizeof err), -1);
    cr_assert(strstr(err, "at most 31 characters"), "%s", err);
}

/* s_person - an approver's lines in a config file */
static void s_person(char *out, size_t outlen, const char *name, const char *token, const char *extra)
{
    char hex[65];
    s_sha256_hex(token, hex);
    snprintf(out, outlen, "    %s\n        roles = treasury\n        token_sha256 = %s\n%s", name, hex, extra);
}

Test(people, an_expired_token_is_refused_naming_whose_and_when)
{
    char alice[256], bob[256], text[1024], err[256] = "";
    s_person(alice, sizeof alice, "alice", "alice-token", "        expires = 2027-01-31T00:00:00Z\n");
    s_person(bob, sizeof bob, "bob", "bob-token", "");
    snprintf(text, sizeof text, "approvers\n%s%s", alice, bob);
    static people_t p;
    cr_assert_eq(s_load(text, &p, err, sizeof err), 0, "%s", err);
    cr_expect_eq(p.people[0].expires_ms, 1801353600000LL);
    cr_expect_eq(p.people[1].expires_ms, 0, "no expires: never");
    people_live_t l = {.set = p};
    pthread_mutex_init(&l.mu, NULL);
    person_t who;
    char why[PEOPLE_WHY_MAX];
    int64_t before = 1801353600000LL - 1, at = 1801353600000LL;
    cr_expect(people_live_auth(&l, "Bearer alice-token", before, &who, why), "a millisecond before: valid");
    cr_expect_str_eq(who.name, "alice");
    cr_expect_not(people_live_auth(&l, "Bearer alice-token", at, &who, why), "from its expiry on: refused");
    cr_expect_str_eq(why, "token of alice expired at 2027-01-31T00:00:00Z");
    cr_expect_str_eq(who.name, "alice", "the refusal names the person");
    cr_expect(people_live_auth(&l, "Bearer bob-token", INT64_MAX / 2, &who, why), "bob's never expires");
    cr_expect_not(people_live_auth(&l, "Bearer nobody", before, &who, why));
    cr_expect_str_eq(why, "unknown or missing token");
    cr_expect_str_eq(who.name, "");
    pthread_mutex_destroy(&l.mu);
}

Test(people, expires_must_be_a_time_and_no_other_key_is_taken)
{
    char alice[256], text[512], err[256] = "";
    static people_t p;
    s_person(alice, sizeof alice, "alice", "t", "        expires = next tuesday\n");
    snprintf(text, sizeof text, "approvers\n%s", alice);
    cr_assert_eq(s_load(text, &p, err, sizeof err), -1);
    cr_expect(strstr(err, "approvers/alice/expires = 'next tuesday': want a time like 2027-01-31T00:00:00Z"), "%s",
              err);
    s_person(alice, sizeof alice, "alice", "t", "        expire = 2027-01-31\n");
    snprintf(text, sizeof text, "approvers\n%s", alice);
    cr_assert_eq(s_load(text, &p, err, sizeof err), -1, "a mistyped expires would leave the token valid for ever");
    cr_expect(strstr(err, "approvers/alice/expire: unknown"), "%s", err);
    s_person(alice, sizeof alice, "alice", "t", "        expires = 2027-01-31\n");
    snprintf(text, sizeof text, "approvers\n%s", alice);
    cr_assert_eq(s_load(text, &p, err, sizeof err), 0, "a date is its midnight, UTC: %s", err);
    cr_expect_eq(p.people[0].expires_ms, 1801353600000LL);
}

/* s_write - text as the config file at path (replaced whole, as an editor saves) */
static void s_write(const char *path, const char *text)
{
    char tmp[96];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    FILE *f = fopen(tmp, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fputs(text, f) >= 0, true);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(rename(tmp, path), 0);
}

Test(people, a_reload_takes_a_new_approver_and_keeps_the_old_set_on_a_bad_file)
{
    char path[64], alice[256], bob[256], text[1024], err[256] = "";
    snprintf(path, sizeof path, "/tmp/pg-people-live-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    s_person(alice, sizeof alice, "alice", "alice-token", "");
    snprintf(text, sizeof text, "approvers\n%s", alice);
    s_write(path, text);
    config_t *c = config_load(path, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    static people_live_t l;
    cr_assert_eq(people_live_init(&l, c, err, sizeof err), 0, "%s", err);
    config_destroy(&c);
    person_t who;
    char why[PEOPLE_WHY_MAX];
    cr_expect_eq(people_live_reload(&l, false, 0), 0, "the file has not changed");
    cr_expect_not(people_live_auth(&l, "Bearer bob-token", 0, &who, why));

    s_person(bob, sizeof bob, "bob", "bob-token", "");
    snprintf(text, sizeof text, "approvers\n%s%s", alice, bob);
    s_write(path, text);
    cr_expect_eq(people_live_reload(&l, false, 1), 0, "not looked at again before PEOPLE_CHECK_MS");
    cr_expect_eq(people_live_reload(&l, false, PEOPLE_CHECK_MS), 1, "the file changed: reloaded");
    cr_expect(people_live_auth(&l, "Bearer bob-token", 0, &who, why), "the new approver's token works");
    cr_expect_eq(people_live_count(&l, NULL), 2);

    snprintf(text, sizeof text, "approvers\n    carol\n        roles = treasury\n        token_sha256 = nope\n");
    s_write(path, text);
    cr_expect_eq(people_live_reload(&l, false, 2 * PEOPLE_CHECK_MS), -1, "invalid approvers: not reloaded");
    cr_expect(people_live_auth(&l, "Bearer bob-token", 0, &who, why), "the old set stays in force");
    cr_expect(people_live_auth(&l, "Bearer alice-token", 0, &who, why));
    cr_expect_eq(people_live_count(&l, NULL), 2);
    s_write(path, "approvers\n    dave\n        roles = treasury\n        unknown_key = 1\n   bad indent\n");
    cr_expect_eq(people_live_reload(&l, true, 2 * PEOPLE_CHECK_MS), -1, "a file that does not load: not reloaded");
    cr_expect_eq(people_live_count(&l, NULL), 2);

    snprintf(text, sizeof text, "approvers\n%s", bob);
    s_write(path, text);
    cr_expect_eq(people_live_reload(&l, true, 2 * PEOPLE_CHECK_MS), 1, "SIGHUP: reloaded at once");
    cr_expect_not(people_live_auth(&l, "Bearer alice-token", 0, &who, why), "alice was removed");
    cr_expect(people_live_auth(&l, "Bearer bob-token", 0, &who, why));
    people_live_fini(&l);
    unlink(path);
}
