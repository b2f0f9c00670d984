/* audit_cmd - `payguard audit verify|export` and `payguard case show`: read
 * the trail (audit's journal, read-only, beside a live audit) and the case
 * index. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "httpc.h"
#include "journal.h"
#include "stage.h"
#include "trail.h"
#include "utc.h"

/* s_audit_path - a configured audit path, {data} etc. expanded (caller frees) */
static char *s_audit_path(const config_t *c, const char *key)
{
    return config_expand(c, config_get(c, key), "audit", 0);
}

/* s_now_s - a monotonic clock in seconds */
static double s_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* s_verify - `payguard audit verify [--pubkey FILE]` */
static int s_verify(const config_t *c, int argc, char **argv)
{
    const char *pub = cli_opt(argc, argv, "--pubkey");
    char *dir = config_journal_dir(c, "audit", 0);
    char *cps = s_audit_path(c, "audit/checkpoints_file");
    char *pubpath = pub ? strdup(pub) : s_audit_path(c, "audit/verify_key_file");
    char err[512];
    int rc = 2;
    trail_key_t *key = trail_pubkey_load(pubpath, err, sizeof err);
    if (!key) {
        fprintf(stderr, "payguard audit verify: public key: %s (give the auditors' copy with --pubkey FILE)\n", err);
        goto done;
    }
    trail_report_t rep;
    double t0 = s_now_s();
    int v = trail_verify(dir, cps, key, &rep, err, sizeof err);
    double secs = s_now_s() - t0;
    if (v < 0) {
        fprintf(stderr, "payguard audit verify: %s\n", err);
        rc = 1;
        goto done;
    }
    char hex[2 * TRAIL_HASH_BYTES + 1], when[UTC_ISO_MAX];
    trail_hex(rep.head, hex);
    if (v == 0) {
        if (rep.last_checkpoint_ms <= 0 || utc_iso(rep.last_checkpoint_ms, when) != 0)
            snprintf(when, sizeof when, "-");
        printf("audit verify: OK: %" PRIu64 " records, chain intact; %" PRIu64 " checkpoint(s) verified", rep.records,
               rep.checkpoints);
        if (rep.checkpoints)
            printf(", the last seals #%" PRIu64 " (signed %s); %" PRIu64 " record(s) after it not yet sealed",
                   rep.last_checkpoint, when, rep.records - rep.last_checkpoint);
        printf("\n  head %s\n  %.3f s, %.0f records/s\n", hex, secs, secs > 0 ? (double) rep.records / secs : 0.0);
        if (rep.unchained)
            printf("  note: %" PRIu64 " older record(s) stored before the trail was chained are not covered\n",
                   rep.unchained);
        rc = 0;
    } else {
        printf("audit verify: FAILED: %s\n", rep.problem);
        if (rep.bad_seq)
            printf("  first bad record: #%" PRIu64 "\n", rep.bad_seq);
        printf("  %" PRIu64 " record(s) before it verified; journal %s; checkpoints %s\n", rep.records, dir, cps);
        rc = 1;
    }
done:
    trail_key_destroy(&key);
    free(dir);
    free(cps);
    free(pubpath);
    return rc;
}

/* s_parse_time - ISO 8601 (2026-11-21T08:00:00Z or 2026-11-21) or unix seconds, to ms */
static int s_parse_time(const char *text, int64_t *ms)
{
    struct tm tm = {0};
    char *end = NULL;
    errno = 0;
    long long secs = strtoll(text, &end, 10);
    if (!errno && end && !*end && *text) {
        *ms = (int64_t) secs * 1000;
        return 0;
    }
    end = strptime(text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end) {
        memset(&tm, 0, sizeof tm);
        end = strptime(text, "%Y-%m-%d", &tm);
        if (!end || *end)
            return -1;
    }
    *ms = (int64_t) timegm(&tm) * 1000;
    return 0;
}

/* s_case_receipts - ids of the receipts whose verdict names the case (a
 * receipt carries no case until validate has read it) */
static json_t *s_case_receipts(const char *dir, const char *case_id, char *err, size_t errlen)
{
    journal_reader_t *r = journal_reader_new(dir, 1, err, errlen);
    if (!r)
        return NULL;
    json_t *ids = json_object();
    const void *data;
    size_t len;
    uint64_t seq;
    while (journal_reader_next(r, &data, &len, &seq) == 1) {
        trail_view_t v;
        if (trail_record_parse(data, len, &v) != 0)
            continue;
        event_t *ev = event_decode(v.envelope, v.envelope_len, err, errlen);
        if (!ev)
            continue;
        const event_head_t *h = event_head(ev);
        if (strcmp(h->case_key, case_id) == 0 && h->cause[0] && strncmp(h->cause, "rcpt_", 5) == 0)
            json_object_set_new(ids, h->cause, json_true());
        event_destroy(&ev);
    }
    journal_reader_destroy(&r);
    return ids;
}

/* s_export - `payguard audit export [--case ID] [--since TIME]`: JSON lines */
static int s_export(const config_t *c, int argc, char **argv)
{
    const char *case_id = cli_opt(argc, argv, "--case"), *since_text = cli_opt(argc, argv, "--since");
    int64_t since = 0;
    if (since_text && s_parse_time(since_text, &since) != 0) {
        fprintf(stderr, "payguard audit export: --since '%s': give 2026-11-21T08:00:00Z, 2026-11-21 or unix seconds\n",
                since_text);
        return 2;
    }
    char *dir = config_journal_dir(c, "audit", 0);
    char err[512];
    json_t *receipts = case_id ? s_case_receipts(dir, case_id, err, sizeof err) : NULL;
    journal_reader_t *r = (!case_id || receipts) ? journal_reader_new(dir, 1, err, sizeof err) : NULL;
    free(dir);
    if (!r) {
        fprintf(stderr, "payguard audit export: %s\n", err);
        json_decref(receipts);
        return 1;
    }
    const void *data;
    size_t len;
    uint64_t seq, n = 0;
    int rc;
    while ((rc = journal_reader_next(r, &data, &len, &seq)) == 1) {
        trail_view_t v;
        if (trail_record_parse(data, len, &v) != 0)
            continue;
        json_t *o = trail_record_json(&v);
        if (!o)
            continue;
        json_t *ev = json_object_get(o, "event");
        const char *key = json_string_value(json_object_get(ev, "case_key"));
        const char *id = json_string_value(json_object_get(ev, "id"));
        bool keep = json_integer_value(json_object_get(ev, "time_ms")) >= since &&
                    (!case_id || (key && strcmp(key, case_id) == 0) || (id && json_object_get(receipts, id)));
        if (keep) {
            char *text = json_dumps(o, JSON_COMPACT);
            puts(text);
            free(text);
            n++;
        }
        json_decref(o);
    }
    if (rc < 0)
        fprintf(stderr, "payguard audit export: %s\n", journal_reader_error(r));
    fprintf(stderr, "exported %" PRIu64 " record(s)\n", n);
    journal_reader_destroy(&r);
    json_decref(receipts);
    return rc < 0 ? 1 : 0;
}

/* cmd_audit - `payguard audit verify|export ...` */
int cmd_audit(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "verify") != 0 && strcmp(argv[1], "export") != 0)) {
        fprintf(stderr, "usage: payguard audit verify [--pubkey FILE] [-c CONFIG]\n"
                        "       payguard audit export [--case ID] [--since TIME] [-c CONFIG]\n");
        return 2;
    }
    config_t *c;
    if (cli_load_config(cli_opt_config(argc, argv), &c) != 0)
        return 2;
    int rc = strcmp(argv[1], "verify") == 0 ? s_verify(c, argc, argv) : s_export(c, argc, argv);
    config_destroy(&c);
    return rc;
}

/* s_safe - untrusted text (webhook fields) for a terminal: control bytes as '?' */
static const char *s_safe(const char *text, char *buf, size_t buflen)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *) (text ? text : ""); *p && n + 1 < buflen; p++)
        buf[n++] = (char) (*p < 0x20 || *p == 0x7f ? '?' : *p);
    buf[n] = '\0';
    return buf;
}

/* s_get - a string member or "" */
static const char *s_get(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* s_print_case - the case as a readable timeline */
static void s_print_case(json_t *c)
{
    char b1[1024], b2[1024];
    printf("case %s: %s %s", s_safe(s_get(c, "case_id"), b1, sizeof b1), s_get(c, "kind"),
           s_safe(s_get(c, "ref"), b2, sizeof b2));
    if (*s_get(c, "amount_text"))
        printf(", %s", s_get(c, "amount_text"));
    if (*s_get(c, "provider"))
        printf(", via %s", s_get(c, "provider"));
    printf("\n  state: %s", s_get(c, "state"));
    if (json_is_integer(json_object_get(c, "tier")))
        printf("   tier %lld", (long long) json_integer_value(json_object_get(c, "tier")));
    printf("   receipts: %lld (%lld duplicate)\n", (long long) json_integer_value(json_object_get(c, "receipts")),
           (long long) json_integer_value(json_object_get(c, "duplicates")));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(c, "idempotency_keys"), i, v)
        printf("  idempotency key: %s\n", s_safe(json_string_value(v), b1, sizeof b1));
    json_t *rec = json_object_get(c, "recommendation");
    if (rec) {
        printf("  AI recommendation (ADVISORY ONLY, from %s): %s -> %s\n", s_get(rec, "source"),
               s_get(rec, "root_cause"), s_get(rec, "recommendation"));
        printf("    %s\n", s_safe(s_get(rec, "summary"), b1, sizeof b1));
    }
    printf("  timeline:\n");
    json_array_foreach(json_object_get(c, "timeline"), i, v)
        printf("    %s  %-10s %-13s %s\n", s_get(v, "at"), s_get(v, "stage"), s_get(v, "type"),
               s_safe(s_get(v, "summary"), b1, sizeof b1));
    printf("  final state: %s\n", s_get(c, "state"));
}

/* cmd_case - `payguard case show ID [--json] [--token-file F]`: the case as
 * audit's cases API answers it (GET /cases/{id}, as the console reads it) */
int cmd_case(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[1], "show") != 0 || argv[2][0] == '-') {
        fprintf(stderr, "usage: payguard case show CASE_ID [--json] [--token-file FILE] [-c CONFIG]\n");
        return 2;
    }
    config_t *c;
    if (cli_load_config(cli_opt_config(argc, argv), &c) != 0)
        return 2;
    httpc_t *h = cli_api_client(c, "audit", cli_opt(argc, argv, "--token-file"), NULL);
    config_destroy(&c);
    if (!h)
        return 2;
    char *id = httpc_escape(argv[2]);
    char path[1024];
    snprintf(path, sizeof path, "/cases/%s", id);
    free(id);
    httpc_resp_t resp;
    int rc = httpc_do(h, "GET", path, NULL, NULL, &resp);
    httpc_destroy(&h);
    if (rc != 0 || resp.status != 200) {
        if (rc != 0)
            fprintf(stderr, "payguard case show: audit's cases API did not answer (is the group up?)\n");
        else if (resp.status == 404)
            fprintf(stderr, "payguard case show: no case %s in the case index\n", argv[2]);
        else
            fprintf(stderr, "payguard case show: audit answered %ld: %s\n", (long) resp.status,
                    resp.body ? resp.body : "");
        httpc_resp_free(&resp);
        return 1;
    }
    bool as_json = false;
    for (int i = 3; i < argc; i++)
        as_json |= strcmp(argv[i], "--json") == 0;
    if (as_json) {
        puts(resp.body);
    } else {
        json_t *j = json_loads(resp.body, 0, NULL);
        s_print_case(j);
        json_decref(j);
    }
    httpc_resp_free(&resp);
    return 0;
}
