/* people - approvers and their tokens' hashes (see people.h) */
#include "people.h"

#include <assert.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "hex.h"
#include "log.h"
#include "utc.h"

/* s_hex32 - 64 hex digits to 32 bytes; -1 if not exactly that */
static int s_hex32(const char *hex, unsigned char out[32])
{
    size_t n;
    return hex && strlen(hex) == 64 && hex_decode(hex, 64, out, 32, &n) == 0 ? 0 : -1;
}

/* s_expiry_and_keys - approvers/<name>/expires into p (none: never), and
 * no key under the person but roles, token_sha256 and expires (a mistyped
 * "expire" must not leave a token valid for ever); -1 and err */
static int s_expiry_and_keys(const config_t *c, const char *name, person_t *p, char *err, size_t errlen)
{
    char path[PEOPLE_NAME_MAX + 16];
    snprintf(path, sizeof path, "approvers/%s", name);
    const char *keys[8];
    size_t n = config_children(c, path, keys, sizeof keys / sizeof keys[0], NULL);
    for (size_t k = 0; k < n; k++)
        if (strcmp(keys[k], "roles") && strcmp(keys[k], "token_sha256") && strcmp(keys[k], "expires")) {
            snprintf(err, errlen, "config: approvers/%s/%s: unknown (an approver has roles, token_sha256, expires)",
                     name, keys[k]);
            return -1;
        }
    if (n == sizeof keys / sizeof keys[0]) {
        snprintf(err, errlen, "config: approvers/%s: too many keys (roles, token_sha256, expires)", name);
        return -1;
    }
    const char *exp = config_child_get(c, "approvers", name, "expires");
    p->expires_ms = 0;
    if (exp && *exp && (utc_parse(exp, &p->expires_ms) != 0 || p->expires_ms <= 0)) { /* "": never */
        snprintf(err, errlen, "config: approvers/%s/expires = '%s': want a time like 2027-01-31T00:00:00Z", name, exp);
        return -1;
    }
    return 0;
}

/* people_load - see people.h */
int people_load(const config_t *c, people_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *names[PEOPLE_MAX + 1];
    bool from_file;
    size_t n = config_children(c, "approvers", names, PEOPLE_MAX + 1, &from_file);
    out->demo = !from_file;
    if (n > PEOPLE_MAX) {
        snprintf(err, errlen, "config: approvers: more than %d people", PEOPLE_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        person_t *p = &out->people[out->n];
        if (strlen(names[i]) >= sizeof p->name) {
            snprintf(err, errlen, "config: approvers/%s: name longer than %d characters", names[i],
                     PEOPLE_NAME_MAX - 1);
            return -1;
        }
        snprintf(p->name, sizeof p->name, "%s", names[i]);
        const char *roles = config_child_get(c, "approvers", names[i], "roles");
        if (s_hex32(config_child_get(c, "approvers", names[i], "token_sha256"), p->hash) != 0 || !roles || !*roles) {
            snprintf(err, errlen, "config: approvers/%s needs roles and token_sha256 (64 hex digits)", names[i]);
            return -1;
        }
        char buf[256];
        snprintf(buf, sizeof buf, "%s", roles);
        for (char *save = NULL, *t = strtok_r(buf, " \t,", &save); t; t = strtok_r(NULL, " \t,", &save)) {
            if (p->nroles == PEOPLE_MAX_ROLES || strlen(t) >= PEOPLE_ROLE_MAX) {
                snprintf(err, errlen, "config: approvers/%s/roles: at most %d roles of at most %d characters", names[i],
                         PEOPLE_MAX_ROLES, PEOPLE_ROLE_MAX - 1);
                return -1;
            }
            snprintf(p->roles[p->nroles++], PEOPLE_ROLE_MAX, "%s", t);
        }
        if (p->nroles == 0) {
            snprintf(err, errlen, "config: approvers/%s/roles names no role", names[i]);
            return -1;
        }
        if (s_expiry_and_keys(c, names[i], p, err, errlen) != 0)
            return -1;
        out->n++;
    }
    return 0;
}

/* people_by_auth - see people.h */
const person_t *people_by_auth(const people_t *p, const char *auth)
{
    if (!auth || strncmp(auth, "Bearer ", 7) != 0)
        return NULL;
    const char *token = auth + 7;
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *) token, strlen(token), h);
    const person_t *who = NULL;
    for (size_t i = 0; i < p->n; i++)
        if (CRYPTO_memcmp(h, p->people[i].hash, sizeof h) == 0)
            who = &p->people[i];
    OPENSSL_cleanse(h, sizeof h);
    return who;
}

/* people_holds - see people.h */
bool people_holds(const person_t *p, const char *role)
{
    for (size_t i = 0; i < p->nroles; i++)
        if (strcmp(p->roles[i], role) == 0)
            return true;
    return false;
}

/* people_live_init - see people.h */
int people_live_init(people_live_t *l, const config_t *c, char *err, size_t errlen)
{
    assert(l && c);
    memset(l, 0, sizeof *l);
    if (people_load(c, &l->set, err, errlen) != 0)
        return -1;
    const char *path = config_path(c);
    if (path && strlen(path) >= sizeof l->path) {
        snprintf(err, errlen, "config: the path %s is too long to reload approvers from", path);
        return -1;
    }
    snprintf(l->path, sizeof l->path, "%s", path ? path : "");
    if (l->path[0] && stat(l->path, &l->seen) != 0)
        memset(&l->seen, 0, sizeof l->seen);
    pthread_mutex_init(&l->mu, NULL);
    return 0;
}

/* people_live_fini - see people.h */
void people_live_fini(people_live_t *l)
{
    pthread_mutex_destroy(&l->mu);
    OPENSSL_cleanse(&l->set, sizeof l->set);
}

/* people_live_auth - see people.h */
bool people_live_auth(people_live_t *l, const char *authorization, int64_t now_ms, person_t *out,
                      char why[PEOPLE_WHY_MAX])
{
    assert(l && out && why);
    pthread_mutex_lock(&l->mu);
    const person_t *p = people_by_auth(&l->set, authorization);
    if (p)
        *out = *p;
    pthread_mutex_unlock(&l->mu);
    if (!p) {
        memset(out, 0, sizeof *out);
        snprintf(why, PEOPLE_WHY_MAX, "unknown or missing token");
        return false;
    }
    if (out->expires_ms && now_ms >= out->expires_ms) {
        char at[UTC_ISO_MAX];
        utc_iso(out->expires_ms, at);
        snprintf(why, PEOPLE_WHY_MAX, "token of %s expired at %s", out->name, at);
        return false;
    }
    why[0] = '\0';
    return true;
}

/* s_changed - has the file changed since it was last read? (seen updated) */
static bool s_changed(people_live_t *l)
{
    struct stat st;
    if (stat(l->path, &st) != 0)
        memset(&st, 0, sizeof st); /* gone: a change when it comes back */
    bool changed = st.st_ino != l->seen.st_ino || st.st_size != l->seen.st_size ||
                   st.st_mtim.tv_sec != l->seen.st_mtim.tv_sec || st.st_mtim.tv_nsec != l->seen.st_mtim.tv_nsec;
    l->seen = st;
    return changed;
}

/* people_live_reload - see people.h */
int people_live_reload(people_live_t *l, bool force, int64_t mono_ms)
{
    assert(l);
    if (!l->path[0]) {
        if (force)
            log_info("approvers: no configuration file (the embedded defaults): nothing to reload");
        return 0;
    }
    if (!force && mono_ms < l->next_check_ms)
        return 0;
    l->next_check_ms = mono_ms + PEOPLE_CHECK_MS;
    if (!s_changed(l) && !force)
        return 0;
    char err[512] = "";
    people_t fresh;
    config_t *c = config_load(l->path, err, sizeof err);
    int rc = c ? people_load(c, &fresh, err, sizeof err) : -1;
    config_destroy(&c);
    size_t was;
    pthread_mutex_lock(&l->mu);
    was = l->set.n;
    if (rc == 0)
        l->set = fresh;
    pthread_mutex_unlock(&l->mu);
    OPENSSL_cleanse(&fresh, sizeof fresh);
    if (rc != 0) {
        log_error("approvers not reloaded from %s, the %zu in force stay: %s", l->path, was, err);
        return -1;
    }
    log_info("approvers reloaded from %s%s: %zu (were %zu)", l->path, force ? " (SIGHUP)" : " (the file changed)",
             l->set.n, was);
    return 1;
}

/* people_live_count - see people.h */
size_t people_live_count(people_live_t *l, bool *demo)
{
    pthread_mutex_lock(&l->mu);
    size_t n = l->set.n;
    if (demo)
        *demo = l->set.demo;
    pthread_mutex_unlock(&l->mu);
    return n;
}
