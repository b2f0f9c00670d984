/* credential - secret files systemd hands to one unit (see credential.h) */
#include "credential.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* credential_is - see credential.h */
bool credential_is(const char *value)
{
    return value && strncmp(value, CREDENTIAL_PREFIX, strlen(CREDENTIAL_PREFIX)) == 0;
}

/* credential_path - see credential.h */
int credential_path(const char *value, char *out, size_t outlen, char *err, size_t errlen)
{
    assert(value && out && outlen > 0 && err && errlen > 0);
    if (!credential_is(value)) {
        if ((size_t) snprintf(out, outlen, "%s", value) < outlen)
            return 0;
        snprintf(err, errlen, "'%.64s...': path longer than %zu bytes", value, outlen - 1);
        return -1;
    }
    const char *name = value + strlen(CREDENTIAL_PREFIX);
    size_t len = strnlen(name, CREDENTIAL_NAME_MAX + 1);
    if (len == 0 || len > CREDENTIAL_NAME_MAX || strchr(name, '/') || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0) {
        snprintf(err, errlen, "'%.80s': want credential:<name>, a file name of 1 to %d bytes without '/'", value,
                 CREDENTIAL_NAME_MAX);
        return -1;
    }
    const char *dir = getenv(CREDENTIAL_DIR_ENV);
    if (!dir || dir[0] != '/') {
        snprintf(err, errlen,
                 "'%s': $%s is %s: systemd sets it for a unit with LoadCredential=%s:<file> (outside systemd, name "
                 "the file itself)",
                 value, CREDENTIAL_DIR_ENV, !dir || !*dir ? "not set" : "not an absolute path", name);
        return -1;
    }
    if ((size_t) snprintf(out, outlen, "%s/%s", dir, name) >= outlen) {
        snprintf(err, errlen, "'%s': $%s/%s is longer than %zu bytes", value, CREDENTIAL_DIR_ENV, name, outlen - 1);
        return -1;
    }
    return 0;
}
