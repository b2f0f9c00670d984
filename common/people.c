/* people - approvers and their tokens' hashes (see people.h) */
#include "people.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "hex.h"

/* s_hex32 - 64 hex digits to 32 bytes; -1 if not exactly that */
static int s_hex32(const char *hex, unsigned char out[32])
{
    size_t n;
    return hex && strlen(hex) == 64 && hex_decode(hex, 64, out, 32, &n) == 0 ? 0 : -1;
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
