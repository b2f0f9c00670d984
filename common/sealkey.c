/* sealkey - the group's seal key file (see sealkey.h) */
#include "sealkey.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* s_create - a new key file at path unless one exists (link: no race) */
static int s_create(const char *path, char *err, size_t errlen)
{
    unsigned char raw[EVENT_SEAL_KEY_BYTES];
    char text[2 * EVENT_SEAL_KEY_BYTES + 2], tmp[CONFIG_PATH_MAX + 64];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        snprintf(err, errlen, "no random bytes for a seal key");
        return -1;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(text + 2 * i, 3, "%02x", raw[i]);
    text[2 * sizeof raw] = '\n';
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int) getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, text, sizeof raw * 2 + 1) == (ssize_t) (sizeof raw * 2 + 1) && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    ok = ok && (link(tmp, path) == 0 || errno == EEXIST);
    if (!ok)
        snprintf(err, errlen, "cannot create the seal key %s: %s", path, strerror(errno));
    unlink(tmp);
    return ok ? 0 : -1;
}

/* sealkey_load - see sealkey.h */
int sealkey_load(const config_t *config, unsigned char key[EVENT_SEAL_KEY_BYTES], char *err, size_t errlen)
{
    char *path = config_expand(config, config_get(config, "payguard/seal_key_file"), "payguard", 0);
    int rc = access(path, F_OK) == 0 ? 0 : s_create(path, err, errlen);
    FILE *f = rc == 0 ? fopen(path, "r") : NULL;
    char text[2 * EVENT_SEAL_KEY_BYTES + 2] = "";
    if (rc == 0 && (!f || !fgets(text, sizeof text, f) || strlen(text) < 2 * EVENT_SEAL_KEY_BYTES)) {
        snprintf(err, errlen, "seal key %s: want 64 hex digits (%s)", path, f ? "too short" : strerror(errno));
        rc = -1;
    }
    for (int i = 0; rc == 0 && i < EVENT_SEAL_KEY_BYTES; i++) {
        unsigned v;
        if (sscanf(text + 2 * i, "%2x", &v) != 1 || !strchr("0123456789abcdefABCDEF", text[2 * i]) ||
            !strchr("0123456789abcdefABCDEF", text[2 * i + 1])) {
            snprintf(err, errlen, "seal key %s: want 64 hex digits", path);
            rc = -1;
        }
        key[i] = (unsigned char) v;
    }
    if (f)
        fclose(f);
    free(path);
    return rc;
}
