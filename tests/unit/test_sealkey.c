/* test_sealkey - a key file: made once (mode 0600) when missing, read back
 * the same by every later process, and a broken one refused, never replaced */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sealkey.h"

static char s_dir[64];

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/pg-sealkey-XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
}

static void s_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(sealkey, .init = s_setup, .fini = s_teardown);

Test(sealkey, a_missing_file_is_made_private_and_read_back_the_same)
{
    char path[96], err[256];
    snprintf(path, sizeof path, "%s/header.key", s_dir);
    unsigned char a[SEALKEY_BYTES], b[SEALKEY_BYTES], zero[SEALKEY_BYTES] = {0};
    cr_assert_eq(sealkey_file(path, "header key", a, err, sizeof err), 0, "%s", err);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
    cr_expect_eq(st.st_size, 2 * SEALKEY_BYTES + 1, "64 hex digits and a newline");
    cr_expect_neq(memcmp(a, zero, sizeof a), 0);
    cr_assert_eq(sealkey_file(path, "header key", b, err, sizeof err), 0, "%s", err);
    cr_expect_eq(memcmp(a, b, sizeof a), 0, "the second process reads the first one's key");
}

Test(sealkey, a_broken_file_is_refused_and_kept)
{
    char path[96], err[256];
    snprintf(path, sizeof path, "%s/header.key", s_dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s\n", "zz11223344556677889900aabbccddeeff00112233445566778899aabbccddee");
    fclose(f);
    unsigned char k[SEALKEY_BYTES];
    cr_expect_eq(sealkey_file(path, "header key", k, err, sizeof err), -1);
    cr_expect(strstr(err, "header key") && strstr(err, path) && strstr(err, "64 hex digits"), "%s", err);
    f = fopen(path, "r");
    char line[80] = "";
    cr_assert_not_null(f);
    cr_expect_not_null(fgets(line, sizeof line, f));
    fclose(f);
    cr_expect_eq(strncmp(line, "zz11", 4), 0, "never replaced");
    snprintf(path, sizeof path, "%s/no-such-dir/header.key", s_dir);
    cr_expect_eq(sealkey_file(path, "header key", k, err, sizeof err), -1);
    cr_expect(strstr(err, "cannot create the header key"), "%s", err);
}
