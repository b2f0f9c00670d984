/* catchup - the pure parts of `payguard catch-up stripe` (see catchup.h).
 *
 * Why a state file of its own rather than asking validate where it got
 * to: validate knows which events it has seen, not which range an
 * operator asked for; a re-run of the same range must go on from the
 * event after the last one handed in (Stripe's starting_after), and only
 * this command knows that event.
 */
#include "catchup.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "utc.h"

const char *const catchup_types[CATCHUP_TYPES_N + 1] = {"payout.failed",
                                                        "payout.canceled",
                                                        "refund.updated",
                                                        "refund.failed",
                                                        "charge.refund.updated",
                                                        "charge.refunded",
                                                        NULL};

/* catchup_time - see catchup.h */
int catchup_time(const char *text, int64_t now, int64_t *out, char *err, size_t errlen)
{
    assert(text && out);
    if (strncmp(text, "now-", 4) == 0) {
        const char *d = text + 4;
        size_t n = strlen(d);
        if (n == 0 || n > 10 || strspn(d, "0123456789") != n) {
            snprintf(err, errlen, "'%.64s': now-<seconds> wants 1 to 10 digits", text);
            return -1;
        }
        *out = now - strtoll(d, NULL, 10);
        return 0;
    }
    int64_t ms;
    if (utc_parse(text, &ms) != 0) {
        snprintf(err, errlen, "'%.64s' is not a time: 2026-11-21T08:00:00Z (UTC), 2026-11-21, unix seconds or now-<s>",
                 text);
        return -1;
    }
    *out = ms / 1000;
    assert(*out >= 0);
    return 0;
}

/* catchup_id_ok - see catchup.h */
bool catchup_id_ok(const char *id)
{
    if (!id)
        return false;
    size_t n = strlen(id);
    return n > 0 && n < CATCHUP_ID_MAX &&
           strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

/* catchup_query - see catchup.h */
int catchup_query(int64_t since, int64_t until, const char *after, char *out, size_t outlen)
{
    assert(out && outlen > 0);
    assert(since >= 0);
    if (after && *after && !catchup_id_ok(after))
        return -1;
    size_t len = 0;
    int n = snprintf(out, outlen, "/v1/events?created%%5Bgte%%5D=%" PRId64, since);
    len = n > 0 ? (size_t) n : outlen;
    if (until != CATCHUP_OPEN_UNTIL && len < outlen)
        len += (size_t) snprintf(out + len, outlen - len, "&created%%5Blte%%5D=%" PRId64, until);
    if (len < outlen)
        len += (size_t) snprintf(out + len, outlen - len, "&limit=%d", CATCHUP_PAGE_LIMIT);
    for (size_t i = 0; catchup_types[i] && len < outlen; i++)
        len += (size_t) snprintf(out + len, outlen - len, "&types%%5B%%5D=%s", catchup_types[i]);
    if (after && *after && len < outlen)
        len += (size_t) snprintf(out + len, outlen - len, "&starting_after=%s", after);
    return len < outlen ? 0 : -1;
}

/* s_event_ok - one listed event: an object with a good id, a type and a created time */
static int s_event_ok(const json_t *e, size_t i, char *err, size_t errlen)
{
    json_t *id = json_object_get(e, "id"), *type = json_object_get(e, "type");
    json_t *created = json_object_get(e, "created");
    if (!json_is_object(e))
        snprintf(err, errlen, "data[%zu] is not an object", i);
    else if (!json_is_string(id) || !catchup_id_ok(json_string_value(id)))
        snprintf(err, errlen, "data[%zu].id is missing or not an event id ([A-Za-z0-9_-], under %d bytes)", i,
                 CATCHUP_ID_MAX);
    else if (!json_is_string(type) || !json_is_integer(created))
        snprintf(err, errlen, "data[%zu] (%s) lacks a string type or an integer created", i, json_string_value(id));
    else
        return 0;
    return -1;
}

/* catchup_page - see catchup.h */
int catchup_page(const char *body, size_t len, json_t *events, bool *has_more, char *err, size_t errlen)
{
    assert(events && json_is_array(events) && has_more);
    json_error_t je;
    json_t *root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
    json_t *data = json_object_get(root, "data"), *more = json_object_get(root, "has_more");
    const char *object = json_string_value(json_object_get(root, "object"));
    int rc = -1;
    if (!root)
        snprintf(err, errlen, "the answer is not JSON: %s", je.text);
    else if (!object || strcmp(object, "list") != 0 || !json_is_array(data) || !json_is_boolean(more))
        snprintf(err, errlen, "the answer is not a list (object \"list\", data [...], has_more)");
    else if (json_array_size(data) > CATCHUP_PAGE_LIMIT)
        snprintf(err, errlen, "a page of %zu events, more than the %d asked for", json_array_size(data),
                 CATCHUP_PAGE_LIMIT);
    else
        rc = 0;
    for (size_t i = 0; rc == 0 && i < json_array_size(data); i++)
        rc = s_event_ok(json_array_get(data, i), i, err, errlen);
    if (rc == 0) {
        *has_more = json_is_true(more);
        rc = (int) json_array_size(data);
        json_array_extend(events, data);
        assert(rc <= CATCHUP_PAGE_LIMIT);
    }
    json_decref(root);
    return rc;
}

/* s_line - a run as one state line */
static void s_line(const catchup_run_t *r, char out[CATCHUP_STATE_LINE_MAX])
{
    char until[24];
    if (r->until == CATCHUP_OPEN_UNTIL)
        snprintf(until, sizeof until, "-");
    else
        snprintf(until, sizeof until, "%" PRId64, r->until);
    snprintf(out, CATCHUP_STATE_LINE_MAX, "%" PRId64 " %s %" PRId64 " %s %" PRId64 " %" PRId64 " %" PRId64 " %s\n",
             r->since, until, r->eff_until, r->last_id[0] ? r->last_id : "-", r->fetched, r->fresh, r->dups,
             r->done ? "done" : "open");
}

/* s_parse - a state line into *r; -1 if it is not one */
static int s_parse(const char *line, catchup_run_t *r)
{
    assert(line && r);
    char until[24], last[CATCHUP_ID_MAX], done[8];
    long long since, eff, f, n, d;
    memset(r, 0, sizeof *r);
    if (sscanf(line, "%lld %23s %lld %127s %lld %lld %lld %7s", &since, until, &eff, last, &f, &n, &d, done) != 8)
        return -1;
    r->since = since;
    r->until = strcmp(until, "-") == 0 ? CATCHUP_OPEN_UNTIL : strtoll(until, NULL, 10);
    r->eff_until = eff;
    if (strcmp(last, "-") != 0) {
        if (!catchup_id_ok(last))
            return -1;
        snprintf(r->last_id, sizeof r->last_id, "%s", last);
    }
    r->fetched = f, r->fresh = n, r->dups = d;
    r->done = strcmp(done, "done") == 0;
    return 0;
}

/* s_load - every run of the state file, oldest first (at most
 * CATCHUP_STATE_MAX_RUNS); the count, or -1 and why (a missing file: 0) */
static int s_load(const char *path, catchup_run_t *runs, char *err, size_t errlen)
{
    assert(path && runs);
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "state file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[CATCHUP_STATE_LINE_MAX];
    int n = 0, lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (s_parse(line, &runs[n % CATCHUP_STATE_MAX_RUNS]) != 0) {
            snprintf(err, errlen, "state file %s: line %d is not a catch-up run (remove the file to start afresh)",
                     path, lineno);
            rc = -1;
        }
        n++;
    }
    assert(n >= 0);
    fclose(f);
    return rc ? -1 : (n > CATCHUP_STATE_MAX_RUNS ? CATCHUP_STATE_MAX_RUNS : n);
}

/* catchup_state_get - see catchup.h */
int catchup_state_get(const char *path, int64_t since, int64_t until, catchup_run_t *run, char *err, size_t errlen)
{
    assert(path && run);
    static catchup_run_t runs[CATCHUP_STATE_MAX_RUNS];
    int n = s_load(path, runs, err, errlen);
    assert(n <= CATCHUP_STATE_MAX_RUNS);
    for (int i = n - 1; i >= 0; i--)
        if (runs[i].since == since && runs[i].until == until) {
            *run = runs[i];
            return 1;
        }
    return n < 0 ? -1 : 0;
}

/* catchup_state_put - see catchup.h */
int catchup_state_put(const char *path, const catchup_run_t *run, char *err, size_t errlen)
{
    assert(path && run);
    static catchup_run_t runs[CATCHUP_STATE_MAX_RUNS];
    int n = s_load(path, runs, err, errlen);
    if (n < 0)
        return -1;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, errlen, "state file %s: %s", tmp, strerror(errno));
        return -1;
    }
    char line[CATCHUP_STATE_LINE_MAX];
    fputs("# payguard catch-up: since until(-: open) until_used last_event fetched new duplicates open|done\n", f);
    int kept = 0, others = 0;
    for (int i = 0; i < n; i++)
        others += !(runs[i].since == run->since && runs[i].until == run->until);
    for (int i = 0; i < n; i++) {
        if (runs[i].since == run->since && runs[i].until == run->until)
            continue;
        if (others - kept++ >= CATCHUP_STATE_MAX_RUNS) /* room for this run: the oldest go */
            continue;
        s_line(&runs[i], line);
        fputs(line, f);
    }
    assert(kept <= n);
    s_line(run, line);
    fputs(line, f);
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "state file %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}
