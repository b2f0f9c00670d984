/* test_credential - "credential:<name>" is $CREDENTIALS_DIRECTORY/<name>,
 * a plain path is itself, and what cannot be resolved is refused, saying why */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "credential.h"

Test(credential, a_plain_path_is_itself)
{
    char out[64], err[256];
    unsetenv(CREDENTIAL_DIR_ENV);
    cr_assert_eq(credential_path("/etc/payguard/write.token", out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(out, "/etc/payguard/write.token");
    cr_assert_eq(credential_path("config/sandbox/read.token", out, sizeof out, err, sizeof err), 0);
    cr_expect_str_eq(out, "config/sandbox/read.token", "relative, as before");
    cr_expect_not(credential_is("/x"));
    cr_expect_not(credential_is("credentials:x"));
    cr_expect(credential_is("credential:x"));
}

Test(credential, a_credential_is_a_file_of_the_units_directory)
{
    char out[128], err[256];
    setenv(CREDENTIAL_DIR_ENV, "/run/credentials/payguard-execute@0.service", 1);
    cr_assert_eq(credential_path("credential:write-token", out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(out, "/run/credentials/payguard-execute@0.service/write-token");
}

Test(credential, without_systemd_it_says_so)
{
    char out[128], err[256];
    unsetenv(CREDENTIAL_DIR_ENV);
    cr_assert_eq(credential_path("credential:write-token", out, sizeof out, err, sizeof err), -1);
    cr_expect_str_eq(err, "'credential:write-token': $CREDENTIALS_DIRECTORY is not set: systemd sets it for a unit "
                          "with LoadCredential=write-token:<file> (outside systemd, name the file itself)");
    setenv(CREDENTIAL_DIR_ENV, "", 1);
    cr_expect_eq(credential_path("credential:write-token", out, sizeof out, err, sizeof err), -1);
    cr_expect(strstr(err, "is not set") != NULL, "%s", err);
    setenv(CREDENTIAL_DIR_ENV, "run/creds", 1);
    cr_expect_eq(credential_path("credential:write-token", out, sizeof out, err, sizeof err), -1);
    cr_expect(strstr(err, "not an absolute path") != NULL, "%s", err);
}

Test(credential, names_that_leave_the_directory_are_refused)
{
    char out[128], err[256];
    setenv(CREDENTIAL_DIR_ENV, "/run/credentials/u", 1);
    const char *bad[] = {"credential:", "credential:../etc/shadow", "credential:a/b", "credential:.", "credential:.."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(credential_path(bad[i], out, sizeof out, err, sizeof err), -1, "%s", bad[i]);
        cr_expect(strstr(err, "want credential:<name>") != NULL, "%s: %s", bad[i], err);
    }
    char longname[300] = "credential:";
    memset(longname + 11, 'a', 256);
    longname[267] = '\0';
    cr_expect_eq(credential_path(longname, out, sizeof out, err, sizeof err), -1, "a name over 255 bytes");
}

Test(credential, paths_that_do_not_fit_are_refused)
{
    char out[24], err[256];
    setenv(CREDENTIAL_DIR_ENV, "/run/credentials/payguard-validate@0.service", 1);
    cr_expect_eq(credential_path("credential:stripe-secrets", out, sizeof out, err, sizeof err), -1);
    cr_expect(strstr(err, "longer than 23 bytes") != NULL, "%s", err);
    cr_expect_eq(credential_path("/a/path/that/is/too/long/for/out", out, sizeof out, err, sizeof err), -1);
}
