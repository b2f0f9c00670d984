/* curve - ZeroMQ CURVE between the group's processes (see curve.h) */
#include "curve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* curve_enabled - see curve.h */
bool curve_enabled(const config_t *c)
{
    return strcmp(config_get(c, "payguard/curve"), "yes") == 0;
}

/* s_path - <keys_dir>/<name>.cert */
static void s_path(const config_t *c, const char *name, char *out, size_t outlen)
{
    char *dir = config_expand(c, config_get(c, "payguard/keys_dir"), NULL, 0);
    snprintf(out, outlen, "%s/%s.cert", dir, name);
    free(dir);
}

/* curve_cert - see curve.h */
zcert_t *curve_cert(const config_t *c, const char *name, bool public_only, char *err, size_t errlen)
{
    char path[CONFIG_PATH_MAX + 64], secret[CONFIG_PATH_MAX + 72];
    s_path(c, name, path, sizeof path);
    snprintf(secret, sizeof secret, "%s_secret", path);
    if (access(path, R_OK) != 0 || (!public_only && access(secret, R_OK) != 0)) {
        snprintf(err, errlen, "no CURVE key%s for %s (%s): run payguard keygen, and copy keys_dir to every host",
                 public_only ? "" : " pair", name, public_only ? path : secret);
        return NULL;
    }
    zcert_t *cert = zcert_load(path); /* and path_secret, when there */
    if (!cert)
        snprintf(err, errlen, "%s: not a CURVE certificate", path);
    return cert;
}

/* curve_auth - see curve.h */
zactor_t *curve_auth(const config_t *c, char *err, size_t errlen)
{
    char *dir = config_expand(c, config_get(c, "payguard/keys_dir"), NULL, 0);
    zactor_t *auth = zactor_new(zauth, NULL);
    if (auth) {
        zstr_sendx(auth, "CURVE", dir, NULL);
        zsock_wait(auth);
    } else {
        snprintf(err, errlen, "cannot start the CURVE authenticator");
    }
    free(dir);
    return auth;
}

/* curve_server - see curve.h */
void curve_server(zsock_t *sock, zcert_t *cert)
{
    zcert_apply(cert, sock);
    zsock_set_curve_server(sock, 1);
    zsock_set_zap_domain(sock, "payguard");
}

/* curve_client - see curve.h */
int curve_client(const config_t *c, zsock_t *sock, zcert_t *cert, const char *target, char *err, size_t errlen)
{
    zcert_t *server = curve_cert(c, target, true, err, errlen);
    if (!server)
        return -1;
    zcert_apply(cert, sock);
    zsock_set_curve_serverkey(sock, zcert_public_txt(server));
    zcert_destroy(&server);
    return 0;
}

/* s_make - a key pair for name unless it has one; 1 made, 0 kept, -1 */
static int s_make(const config_t *c, const char *name, char *err, size_t errlen)
{
    char path[CONFIG_PATH_MAX + 64], secret[CONFIG_PATH_MAX + 72];
    s_path(c, name, path, sizeof path);
    snprintf(secret, sizeof secret, "%s_secret", path);
    if (access(path, F_OK) == 0 && access(secret, F_OK) == 0)
        return 0;
    zcert_t *cert = zcert_new();
    zcert_set_meta(cert, "name", "%s", name);
    mode_t old = umask(077);
    int rc = zcert_save(cert, path);
    umask(old);
    chmod(path, 0644); /* the public half may be read by anyone */
    if (rc == 0)
        printf("made the CURVE key pair of %s: %s (public %s)\n", name, secret, zcert_public_txt(cert));
    else
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    zcert_destroy(&cert);
    return rc == 0 ? 1 : -1;
}

/* curve_keygen - see curve.h */
int curve_keygen(const config_t *c, char *err, size_t errlen)
{
    char *dir = config_expand(c, config_get(c, "payguard/keys_dir"), NULL, 0);
    int rc = mkdir(dir, 0700) == 0 || errno == EEXIST ? 0 : -1;
    if (rc != 0)
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
    free(dir);
    int made = 0;
    for (int s = 0; rc >= 0 && s < CONFIG_NSTAGES; s++)
        for (int i = 0; rc >= 0 && i < config_instances(c, config_stages[s]); i++) {
            char inst[48];
            snprintf(inst, sizeof inst, "%s.%d", config_stages[s], i);
            rc = s_make(c, inst, err, errlen);
            made += rc > 0;
        }
    if (rc >= 0)
        rc = s_make(c, "payguard", err, errlen);
    return rc < 0 ? -1 : made + (rc > 0);
}
