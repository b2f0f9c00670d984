/* people - the approvers of CONTRACT.md §3: names, roles, and the SHA-256
 * of each one's token (a token itself is never stored), from the group
 * configuration (approvers/<name>/{roles,token_sha256}); who a Bearer
 * token belongs to. Used by every server of §3 (approve, audit). */
#ifndef PG_PEOPLE_H
#define PG_PEOPLE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define PEOPLE_MAX 64
#define PEOPLE_NAME_MAX 32
#define PEOPLE_MAX_ROLES 8
#define PEOPLE_ROLE_MAX 32

typedef struct {
    char name[PEOPLE_NAME_MAX];
    char roles[PEOPLE_MAX_ROLES][PEOPLE_ROLE_MAX];
    size_t nroles;
    unsigned char hash[32];
} person_t;

typedef struct {
    person_t people[PEOPLE_MAX];
    size_t n;
    bool demo; /* the embedded demo approvers (none listed in the file) */
} people_t;

/* people_load - from the configuration; -1 and a message naming the key */
int people_load(const config_t *c, people_t *out, char *err, size_t errlen);
/* people_by_auth - the person whose token an Authorization header bears
 * ("Bearer <token>"), or NULL; every hash compared in constant time */
const person_t *people_by_auth(const people_t *p, const char *authorization);
/* people_holds - does the person hold role? */
bool people_holds(const person_t *p, const char *role);

#endif
