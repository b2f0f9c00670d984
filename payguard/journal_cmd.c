/* journal_cmd - `payguard journal dump` and `payguard replay --from`: the
 * journals are the system of record; these read them (read-only, beside
 * live writers). `payguard replay --stage ... --dry-run` is dryrun_cmd.c. */
#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "curve.h"
#include "journal.h"
#include "replay_taken.h"
#include "route.h"
#include "stage.h"
#include "trail.h"
#include "utc.h"

/* range - the common --first/--last options */
typedef struct {
    uint64_t first;
    uint64_t last;
} range_t;

/* s_parse_seq - a positive decimal sequence number */
static int s_parse_seq(const char *text, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || !*text || *end || v == 0)
        return -1;
    *out = v;
    return 0;
}

/* s_journal_dir - DIR as given, or an instance name's journal directory */
static char *s_journal_dir(const config_t *c, const char *what)
{
    struct stat sb;
    if (strchr(what, '/') || (stat(what, &sb) == 0 && S_ISDIR(sb.st_mode)))
        return strdup(what);
    char stage[32];
    int index;
    if (config_parse_instance(what, stage, &index) != 0)
        return NULL;
    return config_journal_dir(c, stage, index);
}

/* s_record_json - one journal record as a JSON object (caller decrefs) */
static json_t *s_record_json(uint64_t seq, const unsigned char *p, size_t len)
{
    char err[256];
    json_t *o = json_pack("{s:I}", "seq", (json_int_t) seq);
    stage_taken_t t;
    stage_floor_t f;
    const void *env = NULL;
    size_t envlen = 0;
    unsigned mask;
    if (p[0] != TRAIL_REC && stage_record_envelope(p, len, &env, &envlen, &mask) == 1) {
        json_object_set_new(o, "kind", json_string(p[0] == STAGE_REC_EVENT ? "event" : "stored"));
        if (p[0] == STAGE_REC_EVENT) {
            json_t *dest = json_array();
            if (mask & STAGE_TO_NEXT)
                json_array_append_new(dest, json_string("next"));
            if (mask & STAGE_TO_AUDIT)
                json_array_append_new(dest, json_string("audit"));
            json_object_set_new(o, "dest", dest);
        }
    } else if (p[0] == TRAIL_REC) {
        trail_view_t v;
        json_t *t = trail_record_parse(p, len, &v) == 0 ? trail_record_json(&v) : NULL;
        json_object_set_new(o, "kind", json_string("trail"));
        if (t)
            json_object_update(o, t);
        else
            json_object_set_new(o, "error", json_string("not a well-formed trail record"));
        json_decref(t);
    } else if (p[0] == STAGE_REC_TAKEN && stage_record_taken(p, len, &t) == 0) {
        json_object_set_new(o, "kind", json_string("taken"));
        json_object_set_new(o, "producer", json_string(t.producer));
        json_object_set_new(o, "producer_seq", json_integer((json_int_t) t.seq));
        json_object_set_new(o, "id", json_string(t.id));
        json_object_set_new(o, "output", json_boolean(!(t.flags & STAGE_TAKEN_NO_OUTPUT)));
    } else if (p[0] == STAGE_REC_FLOOR && stage_record_floor(p, len, &f) == 0) {
        char epoch[17];
        snprintf(epoch, sizeof epoch, "%016llx", (unsigned long long) f.epoch);
        json_object_set_new(o, "kind", json_string("floor"));
        json_object_set_new(o, "producer", json_string(f.producer));
        json_object_set_new(o, "epoch", json_string(epoch));
        json_object_set_new(o, "floor", json_integer((json_int_t) f.floor));
        json_object_set_new(o, "first", json_integer((json_int_t) f.first));
    } else if (p[0] == STAGE_REC_CONSUMED) {
        json_object_set_new(o, "kind", json_string("consumed"));
        json_object_set_new(o, "id", json_stringn((const char *) p + 1, len - 1));
    } else if (p[0] == STAGE_REC_WATERMARK && len == 17) {
        uint64_t wm[2] = {0, 0};
        for (int d = 0; d < 2; d++)
            for (int b = 7; b >= 0; b--)
                wm[d] = (wm[d] << 8) | p[1 + d * 8 + b];
        json_object_set_new(o, "kind", json_string("watermark"));
        json_object_set_new(o, "next", json_integer((json_int_t) wm[0]));
        json_object_set_new(o, "audit", json_integer((json_int_t) wm[1]));
    } else {
        json_object_set_new(o, "kind", json_string("unknown"));
    }
    if (env) {
        event_t *ev = event_decode(env, envlen, err, sizeof err);
        if (ev) {
            char *text = event_to_json(ev);
            json_object_set_new(o, "event", json_loads(text, 0, NULL));
            free(text);
            event_destroy(&ev);
        } else {
            json_object_set_new(o, "error", json_string(err));
        }
    }
    return o;
}

/* s_parse_range - --first/--last from argv[start..]; the non-option left in *rest */
static int s_parse_range(int argc, char **argv, int start, range_t *r, const char **rest)
{
    r->first = 1;
    r->last = UINT64_MAX;
    for (int i = start; i < argc; i++) {
        if (strcmp(argv[i], "--first") == 0 && i + 1 < argc) {
            if (s_parse_seq(argv[++i], &r->first))
                return -1;
        } else if (strcmp(argv[i], "--last") == 0 && i + 1 < argc) {
            if (s_parse_seq(argv[++i], &r->last))
                return -1;
        } else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            i++;
        } else if (rest && !*rest && argv[i][0] != '-') {
            *rest = argv[i];
        } else {
            return -1;
        }
    }
    return r->first <= r->last ? 0 : -1;
}

/* cmd_journal - `payguard journal dump DIR|INSTANCE [--first N] [--last N]` */
int cmd_journal(int argc, char **argv)
{
    range_t r;
    const char *what = NULL;
    if (argc < 2 || strcmp(argv[1], "dump") != 0 || s_parse_range(argc, argv, 2, &r, &what) || !what) {
        fprintf(stderr, "usage: payguard journal dump DIR|INSTANCE [--first SEQ] [--last SEQ] [-c CONFIG]\n");
        return 2;
    }
    config_t *c;
    if (cli_load_config(cli_opt_config(argc, argv), &c) != 0)
        return 2;
    char *dir = s_journal_dir(c, what);
    config_destroy(&c);
    if (!dir) {
        fprintf(stderr, "payguard: '%s' is neither a directory nor an instance name like validate.0\n", what);
        return 2;
    }
    char err[512];
    journal_reader_t *jr = journal_reader_new(dir, r.first, err, sizeof err);
    free(dir);
    if (!jr) {
        fprintf(stderr, "payguard: %s\n", err);
        return 1;
    }
    const void *data;
    size_t len;
    uint64_t seq;
    int rc;
    while ((rc = journal_reader_next(jr, &data, &len, &seq)) == 1 && seq <= r.last) {
        json_t *o = s_record_json(seq, data, len);
        char *text = json_dumps(o, JSON_COMPACT);
        puts(text);
        free(text);
        json_decref(o);
    }
    if (rc < 0)
        fprintf(stderr, "payguard: %s\n", journal_reader_error(jr));
    journal_reader_destroy(&jr);
    return rc < 0 ? 1 : 0;
}

/* pend - an event replay sent and has not yet seen taken */
struct pend {
    uint64_t seq;
    int64_t sent_ms; /* its last send (monotonic) */
    int t;           /* the socket it went by */
    size_t len;
    unsigned char env[];
};

#define REPLAY_WINDOW 8192 /* events sent and not yet seen taken, at most (below a stage's RCVHWM) */
#define REPLAY_ROUNDS 5    /* resend_ms periods with none seen taken before giving up on the rest */

/* replay_t - what `payguard replay` re-feeds, and where */
typedef struct {
    const char *from, *into;    /* an instance; a stage */
    range_t r;                  /* --first/--last: journal seqs */
    int64_t since_ms, until_ms; /* --since/--until: event times, [since, until) */
    const char *case_id;        /* --case: that case's events only (NULL: all) */
    char stage[32];             /* from's stage and index */
    int index;
    unsigned want;  /* STAGE_TO_NEXT or STAGE_TO_AUDIT: the records for into */
    int n;          /* into's instances */
    bool routed;    /* into is partitioned: each event to its owner */
    uint64_t epoch; /* from's journal's (journal.h), sent with each event */
    taken_t taken;  /* what into's instances on this host took already: not sent */
    uint64_t skipped;
    /* the delivery window: sent, not yet seen taken in into's journals */
    bool confirm; /* every instance of into is on this host */
    long resend_ms;
    long max_bytes; /* payguard/delivery/max_inflight_bytes: the window's payloads, at most */
    struct pend **pend;
    size_t npend, pend_bytes;
    uint64_t resent, unconfirmed;
    bool unchecked; /* --unchecked: into's journals are not read */
    bool rebuild;   /* --rebuild: into lost its journal; what its producer's floor covers is taken again */
    zsock_t *push[CONFIG_MAX_INSTANCES];
} replay_t;

#define REPLAY_USAGE                                                                                                   \
    "usage: payguard replay --from INSTANCE [--first SEQ] [--last SEQ] [--since TIME] [--until TIME] [--case ID]\n"    \
    "                       [--into STAGE] [--unchecked] [--rebuild] [-c CONFIG]\n"                                    \
    "       payguard replay --stage triage|approve --dry-run [-c CONFIG]\n"                                            \
    "TIME: 2026-11-21T08:03:56Z, 2026-11-21 (midnight UTC) or unix seconds\n"

/* s_replay_opts - the command line into x; 0, or -1 and why on stderr */
static int s_replay_opts(int argc, char **argv, replay_t *x)
{
    x->since_ms = 0;
    x->until_ms = INT64_MAX;
    char *rargv[66] = {"replay"};
    int nr = 1;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--from") == 0 && v)
            x->from = argv[++i];
        else if (strcmp(argv[i], "--into") == 0 && v)
            x->into = argv[++i];
        else if (strcmp(argv[i], "--case") == 0 && v)
            x->case_id = argv[++i];
        else if (strcmp(argv[i], "--unchecked") == 0)
            x->unchecked = true;
        else if (strcmp(argv[i], "--rebuild") == 0)
            x->rebuild = true;
        else if ((strcmp(argv[i], "--since") == 0 || strcmp(argv[i], "--until") == 0) && v) {
            if (utc_parse(v, argv[i][2] == 's' ? &x->since_ms : &x->until_ms) != 0) {
                fprintf(stderr, "payguard: %s '%s' is not a time\n" REPLAY_USAGE, argv[i], v);
                return -1;
            }
            i++;
        } else if (nr < 64)
            rargv[nr++] = argv[i];
    }
    if (!x->from || s_parse_range(nr, rargv, 1, &x->r, NULL) || x->since_ms >= x->until_ms) {
        fprintf(stderr, "%s" REPLAY_USAGE,
                x->since_ms >= x->until_ms ? "payguard: --since must be before --until\n" : "");
        return -1;
    }
    if (config_parse_instance(x->from, x->stage, &x->index) != 0) {
        fprintf(stderr, "payguard: --from wants an instance name like validate.0, not '%s'\n", x->from);
        return -1;
    }
    return 0;
}

/* s_replay_target - where the events go: into (default: from's next
 * stage) must be from's next stage or audit; 0, or -1 and why */
static int s_replay_target(const config_t *c, replay_t *x)
{
    const char *next = config_next_stage(x->stage);
    if (!x->into)
        x->into = next;
    if (x->into && next && strcmp(x->into, next) == 0)
        x->want = STAGE_TO_NEXT;
    else if (x->into && strcmp(x->into, "audit") == 0 && strcmp(x->stage, "audit") != 0)
        x->want = STAGE_TO_AUDIT;
    if (!x->want) {
        fprintf(stderr, "payguard: %s's events go to %s and audit, not to '%s'\n", x->from,
                next ? next : "(no next stage)", x->into ? x->into : "");
        return -1;
    }
    x->n = config_instances(c, x->into);
    x->routed = route_partitioned(x->into);
    return 0;
}

/* s_replay_connect - the stages' own routing (route.h): a partitioned stage
 * gets each event at the owner of its key, through a PUSH per instance; 0,
 * or -1 and why */
static int s_replay_connect(const config_t *c, replay_t *x)
{
    char err[512];
    zcert_t *cert = curve_enabled(c) ? curve_cert(c, "payguard", false, err, sizeof err) : NULL; /* curve.h */
    if (curve_enabled(c) && !cert) {
        fprintf(stderr, "payguard: %s\n", err);
        return -1;
    }
    for (int i = 0; i < (x->routed ? x->n : 1); i++) {
        x->push[i] = zsock_new(ZMQ_PUSH);
        zsock_set_immediate(x->push[i], 1);
        zsock_set_sndtimeo(x->push[i], 10000);
        for (int k = x->routed ? i : 0; k < (x->routed ? i + 1 : x->n); k++) {
            char *ep = config_input_endpoint(c, x->into, k), target[48];
            snprintf(target, sizeof target, "%s.%d", x->into, k);
            if (!cert || curve_client(c, x->push[i], cert, target, err, sizeof err) == 0)
                zsock_connect(x->push[i], "%s", ep);
            else
                fprintf(stderr, "payguard: %s\n", err);
            free(ep);
        }
    }
    zcert_destroy(&cert);
    return 0;
}

/* s_replay_pick - is this 'E' record one to re-feed, and to which socket
 * (*t)? 1 yes, 0 not selected, -1 undecodable (err) */
static int s_replay_pick(const config_t *c, const replay_t *x, const unsigned char *p, size_t len, int *t, char *err,
                         size_t errlen)
{
    *t = 0;
    if (p[0] != STAGE_REC_EVENT || len <= 2 || !(p[1] & x->want))
        return 0;
    bool filtered = x->case_id || x->since_ms > 0 || x->until_ms < INT64_MAX;
    if (!x->routed && !filtered)
        return 1;
    event_t *ev = event_decode(p + 2, len - 2, err, errlen);
    if (!ev)
        return -1;
    const event_head_t *h = event_head(ev);
    bool selected =
        (!x->case_id || strcmp(h->case_key, x->case_id) == 0) && h->time_ms >= x->since_ms && h->time_ms < x->until_ms;
    *t = selected && x->routed ? route_target(c, x->into, ev) : 0;
    event_destroy(&ev);
    if (*t < 0) {
        snprintf(err, errlen, "no owner for its key in %s", x->into);
        return -1;
    }
    return selected ? 1 : 0;
}

/* s_replay_one - an event and its second frame: from's epoch, no floor
 * (stage.h STAGE_META; with --rebuild the rebuild mark), so the consumer's
 * dedup knows which life of from's journal the seq is in; -1 if it cannot
 * be sent */
static int s_replay_one(const replay_t *x, int t, const void *env, size_t len)
{
    unsigned char meta[STAGE_META_BYTES];
    stage_meta_encode(meta, x->epoch, x->rebuild ? STAGE_META_REBUILD : 0);
    void *sock = zsock_resolve(x->push[t]);
    if (zmq_send(sock, env, len, ZMQ_SNDMORE) < 0)
        return -1;
    return zmq_send(sock, meta, sizeof meta, 0) < 0 ? -1 : 0;
}

/* s_replay_taken - from's epoch, and what into's instances on this host
 * already took of its events (replay_taken.h); 0, or 1 and why */
static int s_replay_taken(const config_t *c, replay_t *x)
{
    char err[512];
    char *dir = config_journal_dir(c, x->stage, x->index);
    if (journal_dir_epoch(dir, &x->epoch) != 0)
        x->epoch = 0; /* a journal older than epochs: the consumer's own dedup decides */
    free(dir);
    if (!x->unchecked && taken_scan(c, x->into, x->from, x->epoch, &x->taken, err, sizeof err) != 0) {
        fprintf(stderr, "payguard: reading %s's journals: %s\n", x->into, err);
        return 1;
    }
    x->confirm = !x->unchecked && x->epoch && x->taken.away == 0;
    x->pend = x->confirm ? calloc(REPLAY_WINDOW, sizeof *x->pend) : NULL;
    if (config_bounded(c, "payguard/delivery/resend_ms", &x->resend_ms, err, sizeof err) != 0 ||
        config_bounded(c, "payguard/delivery/max_inflight_bytes", &x->max_bytes, err, sizeof err) != 0 ||
        (x->confirm && !x->pend)) {
        fprintf(stderr, "payguard: %s\n", x->pend || !x->confirm ? err : "out of memory");
        return 1;
    }
    return 0;
}

/* s_replay_reap - drop from the window what into's journals now show
 * taken; -1 when they cannot be read */
static int s_replay_reap(replay_t *x)
{
    char err[512];
    if (taken_follow(&x->taken, err, sizeof err) != 0) {
        fprintf(stderr, "payguard: reading %s's journals: %s\n", x->into, err);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < x->npend; i++)
        if (taken_has(&x->taken, x->pend[i]->seq)) {
            assert(x->pend_bytes >= x->pend[i]->len);
            x->pend_bytes -= x->pend[i]->len;
            free(x->pend[i]);
        } else
            x->pend[k++] = x->pend[i];
    x->npend = k;
    return 0;
}

/* s_replay_full - the window holds REPLAY_WINDOW events or max_bytes of
 * them: what the consumer's input queue holds too, so its memory is bounded
 * as a stage's own producers bound it */
static bool s_replay_full(const replay_t *x)
{
    return x->npend >= REPLAY_WINDOW || x->pend_bytes >= (size_t) x->max_bytes;
}

/* s_replay_wait - the window (a sliding one): until it has room (drain:
 * until it is empty), reap what was taken and send again what has waited
 * resend_ms; after REPLAY_ROUNDS periods with nothing taken the rest count
 * as unconfirmed (dropped there as taken by id, or lost). 0, or 1 when a
 * journal cannot be read */
static int s_replay_wait(replay_t *x, bool drain)
{
    int64_t progress = stage_mono_ms();
    while (x->npend && (drain || s_replay_full(x))) {
        size_t before = x->npend;
        if (s_replay_reap(x) != 0)
            return 1;
        int64_t now = stage_mono_ms();
        if (x->npend < before)
            progress = now;
        if (now - progress > REPLAY_ROUNDS * x->resend_ms)
            break;
        for (size_t i = 0; i < x->npend; i++)
            if (now - x->pend[i]->sent_ms >= x->resend_ms) {
                s_replay_one(x, x->pend[i]->t, x->pend[i]->env, x->pend[i]->len);
                x->pend[i]->sent_ms = now;
                x->resent++;
            }
        if (x->npend)
            usleep(5 * 1000);
    }
    if (x->npend && (drain || s_replay_full(x))) { /* given up */
        for (size_t i = 0; i < x->npend; i++)
            free(x->pend[i]);
        x->unconfirmed += x->npend;
        x->npend = 0;
        x->pend_bytes = 0;
    }
    return 0;
}

/* s_replay_sent - keep a sent event in the window; a full one waits */
static int s_replay_sent(replay_t *x, uint64_t seq, int t, const void *env, size_t len)
{
    if (!x->confirm)
        return 0;
    struct pend *p = malloc(sizeof *p + len);
    if (!p)
        return 0; /* not kept: its consumer's dedup still has it */
    *p = (struct pend){.seq = seq, .sent_ms = stage_mono_ms(), .t = t, .len = len};
    memcpy(p->env, env, len);
    x->pend[x->npend++] = p;
    x->pend_bytes += len;
    if (x->npend % 256 == 0 && s_replay_reap(x) != 0) /* now and then: the window slides */
        return 1;
    return s_replay_full(x) ? s_replay_wait(x, false) : 0;
}

/* s_replay_send - read from's journal and send what is selected; 0 or 1 */
static int s_replay_send(const config_t *c, replay_t *x, uint64_t *sent, uint64_t *lo, uint64_t *hi)
{
    char err[512];
    char *dir = config_journal_dir(c, x->stage, x->index);
    journal_reader_t *jr = journal_reader_new(dir, x->r.first, err, sizeof err);
    free(dir);
    if (!jr) {
        fprintf(stderr, "payguard: %s\n", err);
        return 1;
    }
    const void *data;
    size_t len;
    uint64_t seq;
    int rc, t, status = 0;
    while (status == 0 && (rc = journal_reader_next(jr, &data, &len, &seq)) == 1 && seq <= x->r.last) {
        int pick = s_replay_pick(c, x, data, len, &t, err, sizeof err);
        if (pick > 0 && taken_has(&x->taken, seq)) {
            x->skipped++;
            continue;
        }
        if (pick < 0) {
            fprintf(stderr, "payguard: %s record %llu: %s\n", x->from, (unsigned long long) seq, err);
            status = 1;
        } else if (pick && s_replay_one(x, t, (const char *) data + 2, len - 2) < 0) {
            fprintf(stderr, "payguard: cannot send to %s (is it running?): %s\n", x->into, zmq_strerror(zmq_errno()));
            status = 1;
        } else if (pick) {
            *lo = *lo ? *lo : seq;
            *hi = seq;
            ++*sent;
            status = s_replay_sent(x, seq, t, (const char *) data + 2, len - 2);
        }
    }
    if (status == 0 && x->confirm)
        status = s_replay_wait(x, true);
    if (status == 0 && rc < 0) {
        fprintf(stderr, "payguard: %s\n", journal_reader_error(jr));
        status = 1;
    }
    journal_reader_destroy(&jr);
    return status;
}

/* s_replay_summary - the closing lines: what was sent, skipped, confirmed */
static void s_replay_summary(const replay_t *x, uint64_t sent, uint64_t lo, uint64_t hi)
{
    printf("replayed %llu events from %s (seq %llu..%llu) into %s (%d instance%s); %llu more selected, already "
           "taken there, not sent (%s's journals read on this host: %d of %d)%s\n",
           (unsigned long long) sent, x->from, (unsigned long long) lo, (unsigned long long) hi, x->into, x->n,
           x->n == 1 ? "" : "s", (unsigned long long) x->skipped, x->into, x->taken.read, x->n,
           x->unchecked ? "; --unchecked: its own dedup drops what it took" : "");
    if (x->confirm)
        printf("confirmed: %llu of %llu sent seen taken in %s's journals (%llu sent again)\n",
               (unsigned long long) (sent - x->unconfirmed), (unsigned long long) sent, x->into,
               (unsigned long long) x->resent);
    else
        printf("not confirmed: %s\n", x->unchecked ? "--unchecked"
                                      : !x->epoch  ? "the replayed journal has no epoch (older than epochs)"
                                                   : "some of its instances keep their journals on other hosts");
    if (x->unconfirmed)
        fprintf(stderr,
                "payguard: %llu events sent were never seen taken in %s's journals: it dropped them as taken "
                "(by id) or lost them; run the same replay again (what it took is not sent twice)\n",
                (unsigned long long) x->unconfirmed, x->into);
}

/* cmd_replay - re-feed an instance's journaled events (by seq, time and
 * case) into a stage; with --stage (or --dry-run), re-run a stage's
 * decisions instead (dryrun_cmd.c) */
int cmd_replay(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--stage") == 0 || strcmp(argv[i], "--dry-run") == 0)
            return cmd_replay_dry_run(argc, argv);
    replay_t x = {0};
    if (s_replay_opts(argc, argv, &x) != 0)
        return 2;
    config_t *c;
    if (cli_load_config(cli_opt_config(argc, argv), &c) != 0)
        return 2;
    if (s_replay_target(c, &x) != 0) {
        config_destroy(&c);
        return 2;
    }
    zsys_handler_set(NULL);
    uint64_t sent = 0, lo = 0, hi = 0;
    int status = s_replay_taken(c, &x) != 0 || s_replay_connect(c, &x) != 0 ? 1 : s_replay_send(c, &x, &sent, &lo, &hi);
    for (int i = 0; i < CONFIG_MAX_INSTANCES; i++)
        if (x.push[i]) {
            zsock_set_linger(x.push[i], 10000); /* let the queued events leave */
            zsock_destroy(&x.push[i]);
        }
    s_replay_summary(&x, sent, lo, hi);
    status |= x.unconfirmed > 0;
    free(x.pend);
    taken_free(&x.taken);
    config_destroy(&c);
    return status;
}
