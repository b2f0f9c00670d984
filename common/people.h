/* people - the approvers of CONTRACT.md §3: names, roles, the SHA-256 of
 * each one's token (a token itself is never stored) and an optional expiry,
 * from the group configuration (approvers/<name>/{roles,token_sha256,
 * expires}); who a Bearer token belongs to. Used by every server of §3
 * that checks tokens (approve, audit; the console asks approve).
 *
 * RELOAD: a server holds its approvers in a people_live_t (for a stage,
 * the skeleton does: stage_def_t.people, stage_people), which its HTTP
 * threads read and its loop replaces whole: people_live_reload reads the
 * configuration file again on SIGHUP (force) and when the file changed
 * (its mtime, size or inode, looked at every PEOPLE_CHECK_MS). Only the
 * approvers are taken from it (every other setting needs a restart); a
 * file that does not load, or whose approvers do not, leaves the set in
 * force unchanged, and says why in the log.
 *
 * EXPIRY: approvers/<name>/expires = 2027-01-31T00:00:00Z (or a date, or
 * unix seconds: utc_parse): from then on the token is refused, with the
 * reason "token of <name> expired at <time>".
 */
#ifndef PG_PEOPLE_H
#define PG_PEOPLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "config.h"

#define PEOPLE_MAX 64
#define PEOPLE_NAME_MAX 32
#define PEOPLE_MAX_ROLES 8
#define PEOPLE_ROLE_MAX 32
#define PEOPLE_CHECK_MS 2000 /* how often a server looks at its configuration file */
#define PEOPLE_WHY_MAX 128   /* a refusal's reason */

typedef struct {
    char name[PEOPLE_NAME_MAX];
    char roles[PEOPLE_MAX_ROLES][PEOPLE_ROLE_MAX];
    size_t nroles;
    unsigned char hash[32];
    int64_t expires_ms; /* unix ms from which the token is refused; 0: never */
} person_t;

typedef struct {
    person_t people[PEOPLE_MAX];
    size_t n;
    bool demo; /* the embedded demo approvers (none listed in the file) */
} people_t;

/* people_live_t - the approvers in force for one server */
typedef struct {
    pthread_mutex_t mu;
    people_t set;               /* under mu: read by HTTP threads, replaced by reloads */
    char path[CONFIG_PATH_MAX]; /* the configuration file; "" for the embedded defaults */
    struct stat seen;           /* the file as last read (or tried) */
    int64_t next_check_ms;      /* monotonic: the next look at the file */
} people_live_t;

/* people_load - from the configuration; -1 and a message naming the key */
int people_load(const config_t *c, people_t *out, char *err, size_t errlen);
/* people_by_auth - the person whose token an Authorization header bears
 * ("Bearer <token>"), or NULL; every hash compared in constant time; no
 * expiry (people_live_auth checks it) */
const person_t *people_by_auth(const people_t *p, const char *authorization);
/* people_holds - does the person hold role? */
bool people_holds(const person_t *p, const char *role);

/* people_live_init - the approvers of c, and c's file to reload them from;
 * 0, or -1 and err */
int people_live_init(people_live_t *l, const config_t *c, char *err, size_t errlen);
void people_live_fini(people_live_t *l);
/* people_live_auth - the person an Authorization header bears, copied into
 * out, when their token has not expired at now_ms: true. Else false and
 * why: "unknown or missing token", or "token of <name> expired at <time>"
 * (out then names them) */
bool people_live_auth(people_live_t *l, const char *authorization, int64_t now_ms, person_t *out,
                      char why[PEOPLE_WHY_MAX]);
/* people_live_reload - read the approvers again from the file when force,
 * or when mono_ms is past the next check and the file changed; logged.
 * 1 reloaded, 0 nothing to do, -1 not reloaded (the file or its approvers
 * are invalid: the set in force stays) */
int people_live_reload(people_live_t *l, bool force, int64_t mono_ms);
/* people_live_count - how many approvers are in force; *demo: the embedded ones */
size_t people_live_count(people_live_t *l, bool *demo);

#endif
