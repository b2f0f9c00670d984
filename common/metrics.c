/* metrics - merge the instances' .prom files (see metrics.h) */
#include "metrics.h"

#include <assert.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_MAX_LINES 20000
#define METRICS_MAX_FILE_BYTES (1024 * 1024)

/* family - one metric family payguard emits */
typedef struct {
    const char *name;
    const char *type;
    const char *help;
} family_t;

/* the catalogue: every family, once (tests/unit/test_metrics.c holds the code to it) */
static const family_t s_families[] = {
    /* every stage instance (common/stage.c) */
    {"payguard_events_in_total", "counter", "Input events this instance took from its upstream."},
    {"payguard_events_out_total", "counter", "Events this instance journaled and emitted."},
    {"payguard_input_duplicates_total", "counter", "Input events dropped as already journaled (re-sends)."},
    {"payguard_bad_messages_total", "counter", "Input messages that failed strict decoding."},
    {"payguard_bad_input_events_total", "counter", "Malformed input events rejected by the stage skeleton."},
    {"payguard_resent_total", "counter", "Events re-sent because their ack did not come in time."},
    {"payguard_backpressure_total", "counter", "Times the delivery window was full and input waited."},
    {"payguard_unacked", "gauge", "Events sent and not yet acknowledged, per destination."},
    {"payguard_unacked_oldest_seconds", "gauge",
     "Age of the oldest event sent and not yet acknowledged, per destination (since it entered the window; a restart "
     "enters it again), 0 when none waits."},
    {"payguard_journal_bytes", "gauge",
     "Bytes of this instance's live journal segments (archived ones aside), every 10 s."},
    {"payguard_journal_segments", "gauge", "Live segments of this instance's journal, every 10 s."},
    {"payguard_journal_retention_seconds", "gauge",
     "The stage's retention_s: acknowledged segments older than this are removed (0: the journal is kept whole)."},
    {"payguard_journal_appends_total", "counter", "Records appended to this instance's journal."},
    {"payguard_journal_fsyncs_total", "counter", "fdatasync calls on this instance's journal."},
    {"payguard_journal_fsync_seconds_total", "counter", "Seconds spent in fdatasync on this instance's journal."},
    {"payguard_journal_fsync_seconds_max", "gauge", "Longest single fdatasync on this instance's journal, seconds."},
    {"payguard_disk_free_bytes", "gauge",
     "Free space on the file system of this instance's journal (a multiple of 1 MiB)."},
    {"payguard_journal_retired_segments_total", "counter",
     "Journal segments removed: every record acknowledged and older than the stage's retention_s."},
    {"payguard_journal_retired_bytes_total", "counter", "Bytes of the journal segments removed."},
    {"payguard_dedup_seqs", "gauge",
     "Input positions this instance remembers above its producers' floors (dedup.h; bounded by max_inflight)."},
    {"payguard_dedup_recent_ids", "gauge",
     "Ids of inputs taken last that this instance remembers (payguard/delivery/recent_ids at most)."},
    {"payguard_dedup_forgotten_total", "counter",
     "Input positions dropped over a producer's bound (a producer configured otherwise): a re-send of one is taken again."},
    {"payguard_heap_in_use_bytes", "gauge",
     "Bytes of the heap the process uses (malloc's arenas and its mapped blocks), every 10 s."},
    {"payguard_heap_held_bytes", "gauge",
     "Bytes of address space the allocator's heaps span; their free pages are given back every 10 s (malloc_trim), so "
     "less is resident."},
    {"payguard_disk_low", "gauge",
     "1 while that free space is under payguard/journal/min_free_mb and no input is taken."},
    {"payguard_counter_overflow_total", "counter", "Increments of series past the per-instance series limit."},
    /* every HTTP server (common/httpd.c) */
    {"payguard_http_deadline_closed_total", "counter",
     "Connections shut down because a request was not received and answered within the port's http_deadline_s."},
    {"payguard_http_limit_refused_total", "counter",
     "Connections closed on accept: over http_max_per_address from one address, or the port's connection limit."},
    /* refused requests to approve, audit and the console (common/refusals.h) */
    {"payguard_refusals_throttled_total", "counter",
     "Requests answered 429 because their source was throttled after repeated 401 or 403 answers "
     "(payguard/refusals/throttle_after within window_s)."},
    {"payguard_refusals_aggregated_total", "counter",
     "Refused requests recorded only within a summary of their source's window (\"N refusals from X between T1 and "
     "T2\"): on the trail by approve and audit, in the log by the console."},
    {"payguard_refusals_sources_throttled", "gauge", "Source addresses throttled now."},
    /* ingest */
    {"payguard_ingest_receipts_total", "counter", "Webhook requests recorded durably, per endpoint."},
    {"payguard_ingest_refused_total", "counter", "Webhook requests refused before recording, per reason."},
    {"payguard_ingest_rate_limited_total", "counter", "Requests answered 429 because their source was over its rate."},
    {"payguard_ingest_budget_refused_total", "counter",
     "Requests answered 429 because their source spent its budget of rejected requests or bytes."},
    {"payguard_ingest_budget_sources", "gauge", "Source addresses over their budget of rejected requests now."},
    {"payguard_ingest_http_errors_total", "counter", "Messages of the HTTP server library (refused framing, sockets)."},
    /* validate */
    {"payguard_validate_accepted_total", "counter", "Webhook items validated and passed on, per kind."},
    {"payguard_validate_rejections_total", "counter", "Webhook items rejected by validation, per reason."},
    {"payguard_validate_duplicates_total", "counter", "Webhook items whose idempotency key was seen before."},
    {"payguard_validate_out_of_order_total", "counter", "Webhook items older than the state already known."},
    {"payguard_validate_ignored_total", "counter", "Webhook items of event types payguard does not handle."},
    {"payguard_validate_deferred_total", "counter", "Receipts put back because an outside system was unavailable."},
    {"payguard_validate_checks_in_flight", "gauge", "Receipts whose state reads are in progress, waiting or held."},
    {"payguard_validate_sweep_events_total", "counter", "Events the pending-refund sweep re-read from the PSP."},
    {"payguard_validate_fetched_total", "counter",
     "Receipts of Stripe events payguard catch-up read from the Events API (POST /fetched/stripe)."},
    {"payguard_validate_notes_dropped_total", "counter",
     "Rejections ingest could not be told of (its ack channel busy): not charged to the source's budget."},
    /* the master's periodic catch-up (payguard/catchup_job.c) */
    {"payguard_catchup_runs_total", "counter",
     "Periodic `payguard catch-up stripe` runs the master started, per outcome (ok: exit 0)."},
    {"payguard_catchup_last_exit_status", "gauge", "Exit status of the last periodic catch-up (-1: none yet)."},
    /* triage */
    {"payguard_triage_advice_total", "counter", "Advice given, per source (model, rules, rules fallback)."},
    {"payguard_triage_classification_total", "counter", "Advice given, per classification."},
    /* approve */
    {"payguard_approve_full_total", "counter", "New cases held back because approve/max_cases cases await people."},
    {"payguard_approve_routes_total", "counter", "Cases routed by policy, per rule."},
    {"payguard_approve_decisions_total", "counter", "Decisions recorded, per decision."},
    {"payguard_approve_refusals_total", "counter", "Approval API requests refused, per reason."},
    {"payguard_approve_forwarded_total", "counter",
     "Approval API requests passed on to the approve instance that owns the case, per outcome."},
    {"payguard_approve_reviews_total", "counter", "Ops-review actions taken, per action."},
    {"payguard_approvers_reloads_total", "counter",
     "Approvers read again from the configuration file (SIGHUP or a change), per outcome: reloaded, or invalid "
     "(the set in force kept)."},
    {"payguard_approve_client_claims_ignored_total", "counter",
     "X-Payguard-Client headers ignored on approve's port: not sealed by the console for the request's token."},
    {"payguard_approve_expiries_total", "counter", "Pending approvals that expired."},
    {"payguard_approvals_pending", "gauge", "Cases waiting for people's decisions."},
    {"payguard_approve_cases_held", "gauge",
     "Cases approve holds in memory: those in flight (awaiting people, or decided with the outcome not yet sent) and "
     "those being looked at; the rest are in approve/case_db."},
    /* execute */
    {"payguard_execute_steps_total", "counter", "Runbook steps finished, per status."},
    {"payguard_execute_retries_total", "counter", "Retries of runbook step calls."},
    {"payguard_execute_ticket_lookups_total", "counter",
     "Ticket and comment lookups made before a create, per result (found: it existed already, none: created)."},
    {"payguard_execute_reviews_total", "counter", "Cases sent to the ops-review queue."},
    {"payguard_execute_notices_total", "counter", "Teams notices sent, per status."},
    {"payguard_execute_unsealed_total", "counter",
     "Events refused because approve had not sealed them (forged or altered)."},
    {"payguard_curve_refused_total", "counter",
     "Connections refused because their CURVE key is not one of the group's."},
    {"payguard_executions_total", "counter", "Runbooks finished, per outcome."},
    {"payguard_ops_review_queue", "gauge", "Cases in the ops-review queue."},
    /* outside calls (common/httpc_multi.c through stage_http.c), every stage that makes them */
    {"payguard_outside_call_seconds", "histogram",
     "Outside-call attempts by system and status class, and how long each took."},
    {"payguard_outside_inflight", "gauge", "Requests on the wire to an outside system."},
    {"payguard_outside_queued", "gauge", "Calls waiting for a slot, a rate token, a backoff or a breaker, per system."},
    {"payguard_outside_breaker", "gauge", "An outside system's circuit breaker: 0 closed, 1 open, 2 half-open."},
    {"payguard_outside_breaker_opened_total", "counter", "Times an outside system's circuit breaker opened."},
    /* trace export */
    {"payguard_otlp_spans_total", "counter",
     "Spans this process gave the OTLP collector (outcome=sent) or dropped (outcome=dropped: buffer full, or the "
     "collector did not take them)."},
    {"payguard_otlp_failed_posts_total", "counter", "Posts of spans the OTLP collector did not take."},
    /* time */
    {"payguard_stage_seconds", "histogram", "From an input's emission upstream to this stage's answer to it."},
    {"payguard_case_seconds", "histogram",
     "From a webhook's receipt to its case's final state in execute, per outcome."},
    /* audit */
    {"payguard_audit_records_total", "counter", "Records added to the audit trail, per event type."},
    {"payguard_audit_checkpoints_total", "counter", "Signed checkpoints written."},
    {"payguard_audit_index_lag", "gauge", "Durable trail records the case index has not applied and committed yet."},
    {"payguard_audit_archived_segments_total", "counter",
     "Sealed trail segments moved to the archive (audit/archive_dir)."},
    {"payguard_audit_archived_bytes_total", "counter", "Bytes of the trail segments archived, as they were live."},
    {"payguard_audit_archive_bytes_total", "counter", "Bytes the archived trail segments take compressed."},
    {"payguard_audit_archive_failures_total", "counter", "Moves to the archive that failed (the segment stayed live)."},
    {"payguard_audit_case_ids_dropped_total", "counter",
     "Ids not indexed for finding a case (GET /cases?q=): the case already had audit/case_ids_max."},
    {"payguard_audit_verifications_total", "counter", "Audit chain verifications run, per outcome."},
    {"payguard_audit_refusals_total", "counter", "Cases API requests refused, per reason."},
    {"payguard_cases", "gauge", "Cases in the case index, per state."},
};

/* s_family - the catalogue entry of a family, NULL if none */
static const family_t *s_family(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof s_families / sizeof s_families[0]; i++)
        if (strlen(s_families[i].name) == len && memcmp(s_families[i].name, name, len) == 0)
            return &s_families[i];
    return NULL;
}

/* metrics_help - see metrics.h */
const char *metrics_help(const char *family)
{
    const family_t *f = s_family(family, strlen(family));
    return f ? f->help : NULL;
}

/* metrics_type - see metrics.h */
const char *metrics_type(const char *family)
{
    const family_t *f = s_family(family, strlen(family));
    if (f)
        return f->type;
    size_t n = strlen(family);
    return n > 6 && strcmp(family + n - 6, "_total") == 0 ? "counter" : "gauge";
}

/* s_utf8_len - bytes of the UTF-8 character at s (at most n), 0 if not one */
static size_t s_utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80             ? 1
                 : (s[0] & 0xE0) == 0xC0 ? 2
                 : (s[0] & 0xF0) == 0xE0 ? 3
                 : (s[0] & 0xF8) == 0xF0 ? 4
                                         : 0;
    if (len == 0 || len > n || (len == 2 && s[0] < 0xC2) || (len == 4 && s[0] > 0xF4))
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((len == 3 && s[0] == 0xE0 && s[1] < 0xA0) || (len == 3 && s[0] == 0xED && s[1] >= 0xA0) ||
        (len == 4 && s[0] == 0xF0 && s[1] < 0x90) || (len == 4 && s[0] == 0xF4 && s[1] >= 0x90))
        return 0; /* overlong, surrogate, past U+10FFFF */
    return len;
}

/* metrics_escape_label - see metrics.h */
void metrics_escape_label(const char *value, char *out, size_t outlen)
{
    assert(out && outlen > 0);
    const unsigned char *s = (const unsigned char *) (value ? value : "");
    size_t n = strlen((const char *) s), o = 0;
    for (size_t i = 0; i < n;) {
        char esc[2] = {0, 0};
        size_t take = s_utf8_len(s + i, n - i);
        if (s[i] == '\\' || s[i] == '"' || s[i] == '\n') {
            esc[0] = '\\';
            esc[1] = s[i] == '\n' ? 'n' : (char) s[i];
            take = 1;
        }
        size_t need = esc[0] ? 2 : take ? take : 1;
        if (o + need >= outlen)
            break;
        if (esc[0])
            memcpy(out + o, esc, 2);
        else if (take == 0 || (take == 1 && s[i] < 0x20) || s[i] == 0x7F)
            out[o] = '_';
        else
            memcpy(out + o, s + i, take);
        o += need;
        i += take ? take : 1;
    }
    out[o] = '\0';
    assert(o < outlen);
}

/* s_family_len - length of the family name a sample line belongs to: its
 * metric name, less _bucket, _sum or _count for a catalogued histogram */
static size_t s_family_len(const char *line)
{
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    size_t n = strcspn(line, "{ ");
    for (size_t k = 0; k < 3; k++) {
        size_t sl = strlen(suffixes[k]);
        if (n > sl && strncmp(line + n - sl, suffixes[k], sl) == 0) {
            const family_t *f = s_family(line, n - sl);
            if (f && strcmp(f->type, "histogram") == 0)
                return n - sl;
        }
    }
    return n;
}

/* sample_t - one sample line and where it was read (the sort keeps a
 * histogram's buckets, sum and count in the order they were written) */
typedef struct {
    char *text;
    size_t order;
} sample_t;

/* s_cmp_family - order samples by family, then as read */
static int s_cmp_family(const void *a, const void *b)
{
    const sample_t *sx = a, *sy = b;
    const char *x = sx->text, *y = sy->text;
    size_t lx = s_family_len(x), ly = s_family_len(y);
    int c = strncmp(x, y, lx < ly ? lx : ly);
    if (c)
        return c;
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return sx->order < sy->order ? -1 : sx->order > sy->order;
}

/* s_read_lines - append the sample lines of one file to lines[] */
static void s_read_lines(const char *path, sample_t *lines, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0, total = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0 && *n < METRICS_MAX_LINES && total < METRICS_MAX_FILE_BYTES) {
        total += (size_t) len;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (line[len - 1] == '\n')
            line[len - 1] = '\0';
        lines[*n].text = strdup(line);
        lines[*n].order = *n;
        (*n)++;
    }
    free(line);
    fclose(f);
}

/* s_read_dir - every sample line of run_dir's .prom files, sorted by family */
static sample_t *s_read_dir(const char *run_dir, size_t *n)
{
    sample_t *lines = calloc(METRICS_MAX_LINES, sizeof *lines);
    assert(lines);
    *n = 0;
    DIR *d = opendir(run_dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 5 && strcmp(de->d_name + l - 5, ".prom") == 0) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", run_dir, de->d_name);
            s_read_lines(path, lines, n);
        }
    }
    if (d)
        closedir(d);
    qsort(lines, *n, sizeof *lines, s_cmp_family);
    return lines;
}

/* metrics_collect - see metrics.h: one HELP and one TYPE line before the
 * first sample of each family (samples of a family are adjacent, sorted) */
char *metrics_collect(const char *run_dir)
{
    size_t n;
    sample_t *lines = s_read_dir(run_dir, &n);
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    assert(f);
    char family[128] = "";
    for (size_t i = 0; i < n; i++) {
        const char *text = lines[i].text;
        size_t fl = s_family_len(text);
        if (fl >= sizeof family)
            fl = sizeof family - 1; /* not a name we write; served as found */
        if (strlen(family) != fl || strncmp(family, text, fl) != 0) {
            memcpy(family, text, fl);
            family[fl] = '\0';
            const char *help = metrics_help(family);
            fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", family, help ? help : "A payguard metric (undocumented).",
                    family, metrics_type(family));
        }
        fprintf(f, "%s\n", text);
        free(lines[i].text);
    }
    fclose(f);
    free(lines);
    return out;
}
