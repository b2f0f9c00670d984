/* sealkey - the group's key files (see sealkey.h) */
#include "sealkey.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hex.h"

_Static_assert(SEALKEY_BYTES == EVENT_SEAL_KEY_BYTES, "the seal key is a key file's size");

/* s_create - a new key file at path unless one exists (link: no race) */
static int s_create(const char *path, const char *what, char *err, size_t errlen)
{
    unsigned char raw[SEALKEY_BYTES];
    char text[2 * SEALKEY_BYTES + 2], tmp[CONFIG_PATH_MAX + 64];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        snprintf(err, errlen, "no random bytes for a %s", what);
        return -1;
    }
    hex_encode(raw, sizeof raw, text);
    text[2 * sizeof raw] = '\n';
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int) getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, text, sizeof raw * 2 + 1) == (ssize_t) (sizeof raw * 2 + 1) && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    ok = ok && (link(tmp, path) == 0 || errno == EEXIST);
    if (!ok)
        snprintf(err, errlen, "cannot create the %s %s: %s", what, path, strerror(errno));
    unlink(tmp);
    return ok ? 0 : -1;
}

/* sealkey_file - see sealkey.h */
int sealkey_file(const char *path, const char *what, unsigned char key[SEALKEY_BYTES], char *err, size_t errlen)
{
    assert(path && what && key && err);
    int rc = access(path, F_OK) == 0 ? 0 : s_create(path, what, err, errlen);
    FILE *f = rc == 0 ? fopen(path, "r") : NULL;
    char text[2 * SEALKEY_BYTES + 2] = "";
    if (rc == 0 && (!f || !fgets(text, sizeof text, f) || strlen(text) < 2 * SEALKEY_BYTES)) {
        snprintf(err, errlen, "%s %s: want 64 hex digits (%s)", what, path, f ? "too short" : strerror(errno));
        rc = -1;
    }
    size_t n = 0;
    if (rc == 0 && (hex_decode(text, 2 * SEALKEY_BYTES, key, SEALKEY_BYTES, &n) != 0 || n != SEALKEY_BYTES)) {
        snprintf(err, errlen, "%s %s: want 64 hex digits", what, path);
        rc = -1;
    }
    if (f)
        fclose(f);
    return rc;
}

/* sealkey_load - see sealkey.h */
int sealkey_load(const config_t *config, unsigned char key[EVENT_SEAL_KEY_BYTES], char *err, size_t errlen)
{
    char *path = config_expand(config, config_get(config, "payguard/seal_key_file"), "payguard", 0);
    int rc = sealkey_file(path, "seal key", key, err, errlen);
    free(path);
    return rc;
}
