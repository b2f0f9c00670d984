/* journal_cmd - `payguard journal dump` and `payguard replay --from`: the
 * journals are the system of record; these read them (read-only, beside
 * live writers). `payguard replay --stage ... --dry-run` is dryrun_cmd.c. */
#include <czmq.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "curve.h"
#include "journal.h"
#include "route.h"
#include "stage.h"
#include "trail.h"

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

/* cmd_replay - re-feed an instance's journaled events into a stage; with
 * --stage (or --dry-run), re-run a stage's decisions instead (dryrun_cmd.c) */
int cmd_replay(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--stage") == 0 || strcmp(argv[i], "--dry-run") == 0)
            return cmd_replay_dry_run(argc, argv);
    range_t r = {1, UINT64_MAX};
    const char *from = NULL, *into = NULL;
    int rest_start = 1;
    char *args[64];
    int nargs = 0;
    for (int i = rest_start; i < argc && nargs < 60; i++) {
        if (strcmp(argv[i], "--from") == 0 && i + 1 < argc)
            from = argv[++i];
        else if (strcmp(argv[i], "--into") == 0 && i + 1 < argc)
            into = argv[++i];
        else
            args[nargs++] = argv[i];
    }
    args[nargs] = NULL;
    char *rargv[66] = {"replay"};
    for (int i = 0; i < nargs; i++)
        rargv[i + 1] = args[i];
    if (!from || s_parse_range(nargs + 1, rargv, 1, &r, NULL)) {
        fprintf(stderr, "usage: payguard replay --from INSTANCE [--first SEQ] [--last SEQ] [--into STAGE] [-c CONFIG]\n"
                        "       payguard replay --stage triage|approve --dry-run [-c CONFIG]\n");
        return 2;
    }
    config_t *c;
    if (cli_load_config(cli_opt_config(argc, argv), &c) != 0)
        return 2;
    char stage[32];
    int index;
    if (config_parse_instance(from, stage, &index) != 0) {
        fprintf(stderr, "payguard: --from wants an instance name like validate.0, not '%s'\n", from);
        config_destroy(&c);
        return 2;
    }
    if (!into)
        into = config_next_stage(stage);
    unsigned want = 0;
    if (into && config_next_stage(stage) && strcmp(into, config_next_stage(stage)) == 0)
        want = STAGE_TO_NEXT;
    else if (into && strcmp(into, "audit") == 0 && strcmp(stage, "audit") != 0)
        want = STAGE_TO_AUDIT;
    if (!want) {
        fprintf(stderr, "payguard: %s's events go to %s and audit, not to '%s'\n", from,
                config_next_stage(stage) ? config_next_stage(stage) : "(no next stage)", into ? into : "");
        config_destroy(&c);
        return 2;
    }
    zsys_handler_set(NULL);
    /* the stages' own routing (route.h): a partitioned stage gets each event
     * at the owner of its key, through a PUSH per instance */
    int n = config_instances(c, into);
    bool routed = route_partitioned(into);
    zsock_t *push[CONFIG_MAX_INSTANCES] = {NULL};
    char err[512];
    zcert_t *cert = curve_enabled(c) ? curve_cert(c, "payguard", false, err, sizeof err) : NULL; /* curve.h */
    if (curve_enabled(c) && !cert) {
        fprintf(stderr, "payguard: %s\n", err);
        config_destroy(&c);
        return 1;
    }
    for (int i = 0; i < (routed ? n : 1); i++) {
        push[i] = zsock_new(ZMQ_PUSH);
        zsock_set_immediate(push[i], 1);
        zsock_set_sndtimeo(push[i], 10000);
        for (int k = routed ? i : 0; k < (routed ? i + 1 : n); k++) {
            char *ep = config_input_endpoint(c, into, k), target[48];
            snprintf(target, sizeof target, "%s.%d", into, k);
            if (!cert || curve_client(c, push[i], cert, target, err, sizeof err) == 0)
                zsock_connect(push[i], "%s", ep);
            else
                fprintf(stderr, "payguard: %s\n", err);
            free(ep);
        }
    }
    zcert_destroy(&cert);
    char *dir = config_journal_dir(c, stage, index);
    journal_reader_t *jr = journal_reader_new(dir, r.first, err, sizeof err);
    free(dir);
    if (!jr) {
        fprintf(stderr, "payguard: %s\n", err);
        for (int i = 0; i < n; i++)
            zsock_destroy(&push[i]);
        config_destroy(&c);
        return 1;
    }
    const void *data;
    size_t len;
    uint64_t seq, sent = 0, lo = 0, hi = 0;
    int rc, status = 0;
    while ((rc = journal_reader_next(jr, &data, &len, &seq)) == 1 && seq <= r.last) {
        const unsigned char *p = data;
        if (p[0] != STAGE_REC_EVENT || len <= 2 || !(p[1] & want))
            continue;
        int t = 0;
        if (routed) {
            event_t *ev = event_decode(p + 2, len - 2, err, sizeof err);
            t = ev ? route_target(c, into, ev) : -1;
            event_destroy(&ev);
            if (t < 0) {
                fprintf(stderr, "payguard: %s record %llu: %s\n", from, (unsigned long long) seq, err);
                status = 1;
                break;
            }
        }
        if (zmq_send(zsock_resolve(push[t]), p + 2, len - 2, 0) < 0) {
            fprintf(stderr, "payguard: cannot send to %s (is it running?): %s\n", into, zmq_strerror(zmq_errno()));
            status = 1;
            break;
        }
        if (!lo)
            lo = seq;
        hi = seq;
        sent++;
    }
    if (rc < 0) {
        fprintf(stderr, "payguard: %s\n", journal_reader_error(jr));
        status = 1;
    }
    journal_reader_destroy(&jr);
    for (int i = 0; i < n; i++)
        if (push[i]) {
            zsock_set_linger(push[i], 10000); /* let the queued events leave */
            zsock_destroy(&push[i]);
        }
    printf("replayed %llu events from %s (seq %llu..%llu) into %s (%d instance%s); "
           "ids it already journaled are dropped there\n",
           (unsigned long long) sent, from, (unsigned long long) lo, (unsigned long long) hi, into, n,
           n == 1 ? "" : "s");
    config_destroy(&c);
    return status;
}
