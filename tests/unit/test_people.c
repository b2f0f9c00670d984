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
