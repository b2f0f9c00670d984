/*++
 * NAME
 *	audit - the tamper-evident trail, the case index, and the cases API
 * SYNOPSIS
 *	audit [-c CONFIG] [-i 0]	(started by `payguard up`, or systemd: payguard-audit@0.service)
 * DESCRIPTION
 *	Every stage instance PUSHes each event it emits to audit as well as
 *	to its next stage. audit stores each one in its journal as a trail
 *	record (common/trail.h): the event as sent (a receipt's webhook
 *	body replaced by its SHA-256 and size: validate's verdicts on an
 *	authenticated receipt carry the body as "payload", so a forger's
 *	bytes never stay on the trail; trail_receipt_view), what PCI DSS
 *	10.2.2 asks of an audit record (who: the stage, the PSP, or the
 *	person who decided; what; when; success or failure; origin: stage
 *	instance and client address; which case, payout, refund, payment;
 *	for receipts the webhook payload's SHA-256), the SHA-256 of the
 *	record before it and its own. The record is durable before the event
 *	is acknowledged to its producer; an event id already stored is
 *	acknowledged again and not stored twice.
 *
 *	Checkpoints: every audit/checkpoint_every_s when the chain grew, at
 *	start and at stop, audit signs the chain head (Ed25519, key from
 *	audit/signing_key_file) and appends it, fdatasync'd, to
 *	audit/checkpoints_file, outside the journal: a chain recomputed over a
 *	rewritten trail, or a trail cut short, no longer matches a signed
 *	head. `payguard audit verify` checks all of it.
 *
 *	Archive (archiver.h): the trail is never removed. A segment every
 *	record of which a checkpoint seals moves, once audit/archive_after_s
 *	has passed since it was last written, to audit/archive_dir as a zstd
 *	file (read back and compared before the live copy goes), on a thread
 *	of its own, with a copy of the checkpoints file, once a dedup
 *	checkpoint follows it (written every half of archive_after_s, 1 s to
 *	60 s, while the trail grows: audit's restart reads the live segments,
 *	and the archive only as far back as payguard/delivery/recent_ids
 *	records, for the recent ids).
 *	Every reader of the trail reads archived segments as if they were live
 *	(journal.h).
 *
 *	The case index (audit/case_db, SQLite) is a projection of the trail:
 *	each case's facts, state and timeline. At start audit applies what
 *	the trail holds past the index's position; a missing or stale index
 *	is rebuilt from the trail. Then the indexer (indexer.h) keeps it up
 *	on a thread of its own: it follows the journal, applies each record
 *	once it is durable and commits at most every AUDIT_INDEX_COMMIT_MS
 *	(100 ms), so the loop thread stores and acknowledges records without
 *	waiting for SQLite (about 2.5x the records a second). The cases API
 *	shows an event about that much later than the trail holds it
 *	(payguard_audit_index_lag: records not yet indexed).
 * HTTP (audit/http_bind:http_port, CONTRACT.md §3.2)
 *	GET /cases/{case_id}	the case: state, kind, amounts, idempotency
 *				keys, recommendation (advisory), decisions,
 *				actions and the whole timeline; 404 if unknown
 *	GET /cases?state=S[&limit=N]
 *				{"cases":[...]} newest first (N <= 1000,
 *				default 100); an unknown state is a 400
 *	GET /cases?q=ID	the cases known by ID (case, payout, refund,
 *				payment, PSP event, webhook, receipt id, ticket
 *				key: caseidx.h FINDING A CASE), each with what
 *				it matched; "match": exact, prefix or none; a
 *				bad query (empty, over 128 bytes, control
 *				characters, spaces at an end) is a 400
 *	GET /metrics, GET /healthz	(no token; /metrics: the Bearer token
 *				payguard/metrics_token_sha256 hashes, when set)
 *	Served by common/httpd.c with the limits every port has:
 *	audit/http_max_per_address connections from one address, each request
 *	received and answered within audit/http_deadline_s.
 *	Every /cases request needs Authorization: Bearer <token> of a
 *	configured approver (approvers/...); an unknown or missing token is
 *	a 401 (before anything is said about the id) and an access_denied
 *	record on the trail, the requested id in it as data (requested_case,
 *	escaped to printable ASCII), never as a case: an unverified id does
 *	not become a case in the index, the console or the metrics.
 *	Refusals (common/refusals.h): a source address's first in
 *	payguard/refusals/window_s is recorded at once, its repeats as one
 *	access_denied summary when the window ends ("N refusals from X between
 *	T1 and T2"); one the refusal queue or the journal cannot take goes
 *	into that summary, never lost. throttle_after of them within window_s
 *	throttle the address for throttle_s: every request but /healthz and
 *	/metrics is answered 429 with Retry-After, and counted into its
 *	summary; payguard/refusals/exempt (the console's address) never is.
 * INPUT
 *	PULL at audit/endpoint (default ipc://{run}/audit.0.in), fan-in from
 *	every instance of every stage.
 * OUTPUT
 *	The trail: journal <data_dir>/audit.0/ and its archive; checkpoints file; case index;
 *	acks to each producer instance. Metrics: payguard_audit_records_total,
 *	payguard_cases{state=...}, payguard_audit_checkpoints_total,
 *	payguard_audit_index_lag, payguard_audit_case_ids_dropped_total,
 *	payguard_audit_archived_segments_total,
 *	_archived_bytes_total, _archive_bytes_total, _archive_failures_total,
 *	payguard_audit_refusals_total, payguard_refusals_throttled_total,
 *	payguard_refusals_aggregated_total, payguard_refusals_sources_throttled.
 * FAILURE
 *	Malformed input is logged and counted. A journal write or fsync
 *	failure, or a checkpoint that cannot be written, exits (75) for the
 *	supervisor to restart; producers re-send whatever was not
 *	acknowledged, and ids already stored are dropped. A trail the
 *	indexer cannot read exits (75) too. A signing key that
 *	cannot be read stops audit at start (exit 1): a trail without
 *	checkpoints would be weaker than the one promised.
 * SECURITY
 *	Holds the checkpoint signing key (keep it readable by audit only, on
 *	another volume than the trail in production; under systemd it may be
 *	credential:<name> with generate_key = no: common/credential.h). Stores what stages
 *	emit, which never contains a secret (ingest redacts credential
 *	headers). Tokens are compared by SHA-256, never stored or logged.
 * CONFIGURATION
 *	payguard/... (journal, delivery, metrics_token_sha256), audit/endpoint,
 *	http_bind, http_port, http_max_per_address, http_deadline_s, case_db,
 *	case_ids_max, checkpoints_file, checkpoint_every_s,
 *	signing_key_file, verify_key_file, generate_key, archive_dir,
 *	archive_after_s; approvers/... (read again on SIGHUP and when the
 *	configuration file changes, looked at every 2 s: a token added works
 *	without a restart, one past its expires gets 401 and "token of <name>
 *	expired at <time>" on the trail; a file whose approvers do not load
 *	leaves those in force, logged and counted in
 *	payguard_approvers_reloads_total{outcome}); payguard/refusals/window_s,
 *	throttle_after, throttle_s, exempt.
 *--*/
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archiver.h"
#include "caseidx.h"
#include "credential.h"
#include "httpd.h"
#include "indexer.h"
#include "journal.h"
#include "log.h"
#include "people.h"
#include "refusals.h"
#include "stage.h"
#include "trail.h"
#include "utc.h"

#define AUDIT_REFUSALS_MAX 256 /* refusals queued for the loop between turns */
#define AUDIT_LIST_DEFAULT 100
#define AUDIT_INDEX_COMMIT_MS 100 /* the case index commits at most this often (indexer.h) */
#define AUDIT_DEDUP_CKPT_MS 60000 /* a dedup checkpoint at most this often, so old segments may be archived */

/* refusal_t - a refusal to record on its own, from an HTTP thread to the loop */
typedef struct {
    char case_id[REFUSALS_TEXT_MAX]; /* the id asked for, escaped (refusals_escape) */
    char peer[REFUSALS_SOURCE_MAX];
    char who[PEOPLE_NAME_MAX];        /* an expired token's person, else "" */
    char reason[PEOPLE_WHY_MAX + 16]; /* why, e.g. "token of alice expired at ... (cases API)" */
    refusals_verdict_t verdict;
} refusal_t;

/* verify_t - the chain verification people start from the console
 * (POST /audit/verify): one at a time, on its own thread, reading the trail
 * as `payguard audit verify` does (checkpoints first, then the journal, so
 * a checkpoint written meanwhile never seals a record it did not read) */
typedef struct {
    pthread_mutex_t mu;
    pthread_t thread;
    bool running, joinable, unrecorded; /* unrecorded: finished, not yet on the trail */
    bool ran;                           /* at least once since audit started */
    int result;                         /* 0 verified, 1 a bad record, -1 unreadable */
    trail_report_t rep;
    char err[512];
    char by[64]; /* who asked */
    char peer[64];
    int64_t started_ms, finished_ms;
} verify_t;

typedef struct {
    stage_t *st;
    trail_head_t head;            /* the chain's head (loop thread) */
    uint64_t sealed_seq;          /* trail seq of the last checkpoint */
    _Atomic uint64_t sealed_jseq; /* the journal's last seq then: the archiver's bound (any thread) */
    _Atomic uint64_t dedup_jseq;  /* the last seq before the latest dedup checkpoint: the archiver's other bound */
    int64_t next_dedup_ms;        /* the loop's next dedup checkpoint */
    int64_t dedup_every_ms;       /* half of archive_after_s, 1 s..AUDIT_DEDUP_CKPT_MS */
    uint64_t dedup_tail;          /* the journal's last seq after that checkpoint (loop thread) */
    archiver_t *archiver;
    archiver_stats_t archived; /* what the metrics were last told */
    uint64_t ids_dropped;      /* caseidx_ids_dropped, as the metrics were last told */
    int64_t next_checkpoint_ms;
    long checkpoint_every_s;
    trail_key_t *key;
    char *checkpoints_path;
    caseidx_t *idx; /* the writer (the indexer's thread while it runs) */
    indexer_t *indexer;
    caseidx_t *ridx; /* the reader (HTTP threads, under rmu) */
    pthread_mutex_t rmu;
    people_live_t *people; /* the skeleton's (stage_people): reloaded on SIGHUP and when the file changes */
    httpd_t *httpd;
    pthread_mutex_t qmu; /* refusals from HTTP threads to the loop */
    refusal_t queue[AUDIT_REFUSALS_MAX];
    size_t nqueue;
    refusals_t *refusals; /* refused requests per source: aggregated, throttled (refusals.h) */
    int64_t next_gauges_ms;
    char *journal_dir; /* this instance's trail, for verification */
    char *verify_key_path;
    verify_t verify;
} audit_t;

/* s_store - the trail record for an input (the skeleton journals it) */
static void *s_store(stage_t *st, const event_t *in, const void *raw, size_t rawlen, size_t *len_out, void *arg)
{
    (void) st;
    audit_t *a = arg;
    size_t vlen = 0;
    void *view = trail_receipt_view(in, &vlen); /* a receipt's body only as its hash and size */
    void *rec = trail_record_new(&a->head, in, view ? view : raw, view ? vlen : rawlen, stage_now_ms(), len_out);
    free(view);
    return rec;
}

/* s_handle - the record is journaled: count it (the indexer indexes it
 * once it is durable) */
static int s_handle(stage_t *st, const event_t *in, void *arg)
{
    (void) arg;
    stage_count(st, "payguard_audit_records_total", "type", event_head(in)->type, 1);
    return STAGE_DONE;
}

/* s_verify_thread - one verification of the whole trail */
static void *s_verify_thread(void *arg)
{
    audit_t *a = arg;
    trail_report_t rep;
    memset(&rep, 0, sizeof rep);
    char err[512] = "";
    int rc = -1;
    trail_key_t *key = trail_pubkey_load(a->verify_key_path, err, sizeof err);
    if (key) {
        rc = trail_verify(a->journal_dir, a->checkpoints_path, key, &rep, err, sizeof err);
        trail_key_destroy(&key);
    }
    pthread_mutex_lock(&a->verify.mu);
    a->verify.rep = rep;
    a->verify.result = rc;
    snprintf(a->verify.err, sizeof a->verify.err, "%s", err);
    a->verify.finished_ms = stage_now_ms();
    a->verify.running = false;
    a->verify.unrecorded = true;
    pthread_mutex_unlock(&a->verify.mu);
    stage_wake(a->st);
    return NULL;
}

/* s_verify_json - the last verification as the console shows it (caller holds verify.mu) */
static json_t *s_verify_json(const verify_t *v)
{
    char at[UTC_ISO_MAX] = "", fin[UTC_ISO_MAX] = "";
    if (v->started_ms)
        utc_iso(v->started_ms, at);
    if (v->finished_ms)
        utc_iso(v->finished_ms, fin);
    const char *state = v->running ? "running" : v->ran ? "done" : "never";
    const char *problem = v->result < 0 ? v->err : v->rep.problem;
    return json_pack(
        "{s:s, s:b, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s, s:s}", "state", state, "ok",
        !v->running && v->ran && v->result == 0, "started_at", at, "finished_at", fin, "records",
        (json_int_t) v->rep.records, "checkpoints", (json_int_t) v->rep.checkpoints, "last_checkpoint_seq",
        (json_int_t) v->rep.last_checkpoint, "unsealed",
        (json_int_t) (v->rep.records > v->rep.last_checkpoint ? v->rep.records - v->rep.last_checkpoint : 0), "bad_seq",
        (json_int_t) v->rep.bad_seq, "problem", v->ran && !v->running ? problem : "", "by", v->by);
}

/* s_verify_record - from the loop thread: a finished verification onto the
 * trail (who asked, the outcome), and its thread joined */
static void s_verify_record(audit_t *a)
{
    pthread_mutex_lock(&a->verify.mu);
    if (!a->verify.unrecorded) {
        pthread_mutex_unlock(&a->verify.mu);
        return;
    }
    a->verify.unrecorded = false;
    pthread_t t = a->verify.thread;
    bool join = a->verify.joinable;
    a->verify.joinable = false;
    event_body_t *b = event_body_new();
    event_body_str(b, EK_WHO, a->verify.by);
    event_body_str(b, "client_ip", a->verify.peer);
    event_body_str(b, "outcome", a->verify.result == 0 ? "verified" : a->verify.result > 0 ? "failed" : "unreadable");
    event_body_int(b, "records", (int64_t) a->verify.rep.records);
    event_body_int(b, "checkpoints", (int64_t) a->verify.rep.checkpoints);
    event_body_str(b, "problem", a->verify.result < 0 ? a->verify.err : a->verify.rep.problem);
    int rc = a->verify.result;
    pthread_mutex_unlock(&a->verify.mu);
    if (join)
        pthread_join(t, NULL);
    if (stage_inject(a->st, "verify", EV_AUDIT_VERIFIED, "", b) != 0)
        log_warn("the chain verification's outcome was not recorded on the trail");
    event_body_destroy(&b);
    stage_count(a->st, "payguard_audit_verifications_total", "outcome",
                rc == 0  ? "verified"
                : rc > 0 ? "failed"
                         : "unreadable",
                1);
}

/* s_verify_http - GET /audit/verify (the last result), POST (start one;
 * 202, or the running one's state) */
static enum MHD_Result s_verify_http(audit_t *a, struct MHD_Connection *conn, const char *method, const char *who)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        return httpd_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET or POST /audit/verify");
    unsigned status = MHD_HTTP_OK;
    pthread_mutex_lock(&a->verify.mu);
    if (strcmp(method, "POST") == 0) {
        status = MHD_HTTP_ACCEPTED;
        if (!a->verify.running && !a->verify.joinable) {
            a->verify.running = true;
            a->verify.ran = true;
            a->verify.started_ms = stage_now_ms();
            a->verify.finished_ms = 0;
            memset(&a->verify.rep, 0, sizeof a->verify.rep);
            snprintf(a->verify.by, sizeof a->verify.by, "%s", who);
            httpd_peer(conn, a->verify.peer, sizeof a->verify.peer);
            if (pthread_create(&a->verify.thread, NULL, s_verify_thread, a) == 0) {
                a->verify.joinable = true;
            } else {
                a->verify.running = false;
                a->verify.result = -1;
                snprintf(a->verify.err, sizeof a->verify.err, "cannot start a thread: %s", strerror(errno));
                status = MHD_HTTP_SERVICE_UNAVAILABLE;
            }
        }
    }
    json_t *j = s_verify_json(&a->verify);
    pthread_mutex_unlock(&a->verify.mu);
    return httpd_reply(conn, status, j);
}

/* s_path - a configured path with {data} {n} ... expanded (caller frees) */
static char *s_path(stage_t *st, const char *key)
{
    return config_expand(stage_config(st), config_get(stage_config(st), key), "audit", stage_index(st));
}

/* s_checkpoint - sign the head if it moved since the last checkpoint */
static void s_checkpoint(audit_t *a, bool force)
{
    if (a->head.seq == a->sealed_seq && !force)
        return;
    stage_flush(a->st); /* sign only what is on disk */
    char err[512];
    if (trail_checkpoint_append(a->checkpoints_path, a->key, &a->head, stage_now_ms(), err, sizeof err) != 0) {
        log_error("checkpoint: %s: exiting for the supervisor", err);
        exit(JOURNAL_EXIT_SYNC_FAILED);
    }
    a->sealed_seq = a->head.seq;
    atomic_store(&a->sealed_jseq, stage_journal_last_seq(a->st));
    stage_count(a->st, "payguard_audit_checkpoints_total", NULL, NULL, 1);
}

/* s_sealed - for the archiver's thread: the journal records that may move,
 * those a signed checkpoint covers and that a dedup checkpoint follows
 * (recovery reads the live segments, and recent_ids records at most) */
static uint64_t s_sealed(void *arg)
{
    audit_t *a = arg;
    uint64_t sealed = atomic_load(&a->sealed_jseq), dedup = atomic_load(&a->dedup_jseq);
    return sealed < dedup ? sealed : dedup;
}

/* s_dedup_checkpoint - every dedup_every_ms while the trail grows, the
 * dedup memory at the journal's tail, so the segments before it may move
 * to the archive without recovery needing them */
static void s_dedup_checkpoint(audit_t *a, int64_t now)
{
    if (now < a->next_dedup_ms || stage_journal_last_seq(a->st) == a->dedup_tail)
        return; /* nothing stored since the last one */
    a->next_dedup_ms = now + a->dedup_every_ms;
    atomic_store(&a->dedup_jseq, stage_checkpoint_dedup(a->st));
    a->dedup_tail = stage_journal_last_seq(a->st);
}

/* s_move - for the archiver's thread: one old trail segment to the archive */
static int s_move(void *arg, const char *archive, uint64_t upto, int64_t older_than_s, uint64_t *bytes,
                  uint64_t *zbytes, char *err, size_t errlen)
{
    audit_t *a = arg;
    return stage_journal_archive(a->st, archive, upto, older_than_s, bytes, zbytes, err, errlen);
}

/* s_archive_metrics - what the archiver moved since the last look */
static void s_archive_metrics(audit_t *a)
{
    archiver_stats_t now;
    archiver_stats(a->archiver, &now);
    stage_count(a->st, "payguard_audit_archived_segments_total", NULL, NULL, now.segments - a->archived.segments);
    stage_count(a->st, "payguard_audit_archived_bytes_total", NULL, NULL, now.bytes - a->archived.bytes);
    stage_count(a->st, "payguard_audit_archive_bytes_total", NULL, NULL, now.zbytes - a->archived.zbytes);
    stage_count(a->st, "payguard_audit_archive_failures_total", NULL, NULL, now.failures - a->archived.failures);
    a->archived = now;
    uint64_t dropped = caseidx_ids_dropped(a->idx);
    stage_count(a->st, "payguard_audit_case_ids_dropped_total", NULL, NULL, (int64_t) (dropped - a->ids_dropped));
    a->ids_dropped = dropped;
}

/* s_start_archiver - audit/archive_dir (created, made absolute) and the
 * archiver's thread; -1 on a bad setting */
static int s_start_archiver(audit_t *a)
{
    const config_t *c = stage_config(a->st);
    char err[512], abs[PATH_MAX];
    long after_s = 0;
    char *dir = s_path(a->st, "audit/archive_dir");
    int rc = config_bounded(c, "audit/archive_after_s", &after_s, err, sizeof err);
    if (rc == 0 && (!dir || !*dir || (mkdir(dir, 0750) != 0 && errno != EEXIST) || !realpath(dir, abs))) {
        snprintf(err, sizeof err, "audit/archive_dir %s: cannot create or resolve: %s", dir ? dir : "(unset)",
                 strerror(errno));
        rc = -1;
    }
    free(dir);
    int64_t half_ms = (int64_t) after_s * 500;
    a->dedup_every_ms = half_ms < 1000 ? 1000 : half_ms > AUDIT_DEDUP_CKPT_MS ? AUDIT_DEDUP_CKPT_MS : half_ms;
    if (rc == 0 &&
        !(a->archiver = archiver_new(abs, a->checkpoints_path, after_s, s_move, s_sealed, a, err, sizeof err)))
        rc = -1;
    if (rc != 0)
        log_error("%s", err);
    return rc;
}

/* s_gauge_state - one cases-by-state gauge */
static void s_gauge_state(const char *state, int64_t n, void *arg)
{
    stage_gauge_label(arg, "payguard_cases", "state", state, n);
}

/* s_refusals_out - the queued refusals onto the trail, each on its own
 * (one the journal cannot take goes into its source's summary), then the
 * summaries due (all: every one, stopping) */
static void s_refusals_out(audit_t *a, bool all)
{
    refusal_t q[AUDIT_REFUSALS_MAX];
    pthread_mutex_lock(&a->qmu);
    size_t n = a->nqueue;
    memcpy(q, a->queue, n * sizeof q[0]);
    a->nqueue = 0;
    pthread_mutex_unlock(&a->qmu);
    for (size_t i = 0; i < n; i++) {
        event_body_t *b = refusals_body(&q[i].verdict, q[i].who[0] ? q[i].who : NULL, NULL, MHD_HTTP_UNAUTHORIZED,
                                        q[i].reason, q[i].peer);
        event_body_str(b, "requested_case", q[i].case_id); /* escaped already; data only: an unverified id is no case */
        if (stage_inject(a->st, "deny", EV_ACCESS_DENIED, "", b) != 0)
            refusals_missed(a->refusals, q[i].peer);
        event_body_destroy(&b);
    }
    refusals_trail_flush(a->refusals, a->st, all);
}

/* s_tick - refusals onto the trail, checkpoint, gauges; exit when the
 * indexer cannot follow the trail */
static void s_tick(stage_t *st, void *arg)
{
    audit_t *a = arg;
    s_refusals_out(a, false);
    s_verify_record(a);
    char err[512];
    if (indexer_failed(a->indexer, err, sizeof err)) {
        log_error("the case index cannot follow the trail (%s): exiting for the supervisor", err);
        exit(JOURNAL_EXIT_SYNC_FAILED);
    }
    int64_t now = stage_now_ms();
    if (now >= a->next_checkpoint_ms) {
        s_checkpoint(a, false);
        a->next_checkpoint_ms = now + a->checkpoint_every_s * 1000;
    }
    s_dedup_checkpoint(a, now);
    if (now >= a->next_gauges_ms) {
        pthread_mutex_lock(&a->rmu);
        caseidx_counts(a->ridx, s_gauge_state, st);
        pthread_mutex_unlock(&a->rmu);
        stage_gauge(st, "payguard_audit_index_lag", (int64_t) indexer_lag(a->indexer));
        refusals_stats_t rs;
        refusals_stats(a->refusals, &rs);
        stage_gauge(st, "payguard_refusals_sources_throttled", (int64_t) rs.throttled_now);
        s_archive_metrics(a);
        a->next_gauges_ms = now + 1000;
    }
}

/* ------------------------------------------------------------- HTTP */

/* s_refuse - 401, and the refusal on the trail: the first of its source's
 * window queued for the loop (s_refusals_out), a repeat counted in the
 * source's summary (refusals.h); so is one the full queue cannot take. An
 * expired token (who names the person) is recorded on its own, saying whose
 * and when (why: people_live_auth) */
static enum MHD_Result s_refuse(audit_t *a, struct MHD_Connection *conn, const char *case_id, const char *peer,
                                const person_t *who, const char *why)
{
    bool known = who->name[0] != '\0';
    refusals_verdict_t v = refusals_note(a->refusals, peer, REFUSALS_FAILURE | (known ? 0 : REFUSALS_AGGREGATE));
    bool queued = !v.record;
    if (v.record) {
        pthread_mutex_lock(&a->qmu);
        if (a->nqueue < AUDIT_REFUSALS_MAX) {
            refusal_t *r = &a->queue[a->nqueue++];
            refusals_escape(case_id, r->case_id, sizeof r->case_id);
            snprintf(r->peer, sizeof r->peer, "%s", peer);
            snprintf(r->who, sizeof r->who, "%s", who->name);
            snprintf(r->reason, sizeof r->reason, "%s (cases API)", why);
            r->verdict = v;
            queued = true;
        }
        pthread_mutex_unlock(&a->qmu);
    }
    if (!queued)
        refusals_missed(a->refusals, peer);
    stage_count(a->st, "payguard_audit_refusals_total", "reason", "access_denied", 1);
    stage_wake(a->st);
    return known ? httpd_token_refused(conn, why) : httpd_unauthorized(conn);
}

/* s_number - a whole number in [lo, hi] from a query value; -1 if not */
static int s_number(const char *v, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!*v || *end || errno || n < lo || n > hi)
        return -1;
    *out = n;
    return 0;
}

/* s_list_filter - GET /cases?q=&state=&kind=&tier=&max_age_s=&limit= into f;
 * -1 and why for a value out of its set or range */
static int s_list_filter(struct MHD_Connection *conn, caseidx_filter_t *f, char *why, size_t whylen)
{
    const char *state = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "state");
    const char *kind = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "kind");
    const char *tier = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "tier");
    const char *age = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "max_age_s");
    const char *lim = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
    const char *q = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "q");
    long n;
    if (q && !caseidx_query_ok(q, why, whylen))
        return -1;
    f->q = q;
    if (state && *state && strcmp(state, "all") != 0) {
        if (!caseidx_state_known(state)) {
            snprintf(why, whylen,
                     "state must be one of rejected, validated, triaged, awaiting_approval (pending), "
                     "approved, denied, expired, executing, executed, ops_review, already_consistent, "
                     "closed, all");
            return -1;
        }
        f->state = state;
    }
    if (kind && *kind) {
        if (strcmp(kind, "payout") != 0 && strcmp(kind, "refund") != 0) {
            snprintf(why, whylen, "kind must be payout or refund");
            return -1;
        }
        f->kind = kind;
    }
    if (tier && *tier) {
        if (s_number(tier, 1, 3, &n) != 0) {
            snprintf(why, whylen, "tier must be 1, 2 or 3");
            return -1;
        }
        f->tier = (int) n;
    }
    if (age && *age) {
        if (s_number(age, 1, 100L * 366 * 86400, &n) != 0) {
            snprintf(why, whylen, "max_age_s must be a whole number of seconds, 1 or more");
            return -1;
        }
        f->created_after_ms = stage_now_ms() - (int64_t) n * 1000;
    }
    if (lim) {
        if (s_number(lim, 1, CASEIDX_LIST_MAX, &n) != 0) {
            snprintf(why, whylen, "limit must be 1..1000");
            return -1;
        }
        f->limit = (size_t) n;
    }
    return 0;
}

/* s_answer - the cases API */
static enum MHD_Result s_answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void) version;
    (void) upload;
    audit_t *a = cls;
    if (!*con_cls) { /* first call: headers only */
        *con_cls = (void *) 1;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* no body is read: everything here is a GET */
        return MHD_YES;
    }
    if (strcmp(url, "/healthz") == 0)
        return httpd_reply(conn, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
    if (strcmp(url, "/readyz") == 0) {
        char why[256];
        bool ready = stage_ready(a->st, why, sizeof why);
        return httpd_readyz(conn, ready, why);
    }
    char peer[REFUSALS_SOURCE_MAX];
    httpd_peer(conn, peer, sizeof peer);
    long wait_s = refusals_throttled(a->refusals, peer);
    if (wait_s) {
        stage_count(a->st, "payguard_refusals_throttled_total", NULL, NULL, 1);
        return httpd_throttled(conn, wait_s);
    }
    person_t who; /* a copy: a reload may replace the set meanwhile */
    char why[PEOPLE_WHY_MAX];
    bool ok = people_live_auth(a->people, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"),
                               stage_now_ms(), &who, why);
    if (strcmp(url, "/audit/verify") == 0)
        return ok ? s_verify_http(a, conn, method, who.name) : s_refuse(a, conn, "", peer, &who, why);
    bool cases = strcmp(url, "/cases") == 0, one = strncmp(url, "/cases/", 7) == 0;
    if (!cases && !one)
        return httpd_error(conn, MHD_HTTP_NOT_FOUND,
                           "unknown path: GET /cases, /cases/{case_id}, GET|POST /audit/verify");
    const char *case_id = one ? url + 7 : "";
    if (!ok) /* before anything about the id is said (404 for one too long): every refusal is recorded */
        return s_refuse(a, conn, case_id, peer, &who, why);
    if (strlen(case_id) > EVENT_KEY_MAX)
        return httpd_error(conn, MHD_HTTP_NOT_FOUND, "no such case");
    if (strcmp(method, "GET") != 0)
        return httpd_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "the cases API is read-only: GET");
    char *text = NULL;
    if (one) {
        if (!*case_id || strchr(case_id, '/'))
            return httpd_error(conn, MHD_HTTP_NOT_FOUND, "no such case");
        pthread_mutex_lock(&a->rmu);
        text = caseidx_case_json(a->ridx, case_id);
        pthread_mutex_unlock(&a->rmu);
        if (!text)
            return httpd_error(conn, MHD_HTTP_NOT_FOUND, "no such case");
    } else {
        caseidx_filter_t f = {.limit = AUDIT_LIST_DEFAULT};
        char why[256];
        if (s_list_filter(conn, &f, why, sizeof why) != 0)
            return httpd_error(conn, MHD_HTTP_BAD_REQUEST, why);
        pthread_mutex_lock(&a->rmu);
        text = caseidx_find_json(a->ridx, &f);
        pthread_mutex_unlock(&a->rmu);
    }
    return httpd_reply_text(conn, MHD_HTTP_OK, text);
}

/* ------------------------------------------------------------ lifecycle */

/* s_serve - the cases API on http_bind:http_port */
static int s_serve(audit_t *a)
{
    char err[256];
    httpd_opts_t o = {.name = "cases API",
                      .listen_fd = -1, /* audit/http_bind, http_port */
                      .threads = 2,
                      .max_connections = CONFIG_HTTP_CONNECTIONS,
                      .answer = s_answer,
                      .cls = a,
                      .st = a->st};
    if (!(a->httpd = httpd_serve(stage_config(a->st), "audit", &o, err, sizeof err))) {
        log_error("config: audit/http_bind, http_port: cannot serve the cases API: %s", err);
        return -1;
    }
    return 0;
}

/* s_load_key - the checkpoint signing key: audit/signing_key_file, a path or
 * "credential:<name>" (credential.h: read-only, so generate_key must be no);
 * 0, or -1 and err */
static int s_load_key(audit_t *a, stage_t *st, char *err, size_t errlen)
{
    char *key_path = s_path(st, "audit/signing_key_file"), *pub_path = s_path(st, "audit/verify_key_file");
    bool gen = strcmp(config_get(stage_config(st), "audit/generate_key"), "yes") == 0;
    char file[PATH_MAX];
    if (credential_is(key_path) && gen)
        snprintf(err, errlen,
                 "audit/signing_key_file = %s: a credential is never generated: set audit/generate_key = no", key_path);
    else if (credential_path(key_path, file, sizeof file, err, errlen) == 0)
        a->key = trail_key_load(file, pub_path, gen, err, errlen);
    free(key_path);
    free(pub_path);
    return a->key ? 0 : -1;
}

/* s_durable - the trail's durable seq, for the indexer's thread */
static uint64_t s_durable(void *arg)
{
    return stage_journal_durable_seq(arg);
}

/* s_init - the chain head, the key, the case index and its indexer, the API */
static int s_init(stage_t *st, void *arg)
{
    audit_t *a = arg;
    a->st = st;
    const config_t *c = stage_config(st);
    char err[512];
    uint64_t last = stage_journal_last_seq(st);
    if (trail_head_recover(stage_journal_dir(st), last > 64 ? last - 64 : 1, &a->head, err, sizeof err) != 0) {
        log_error("trail: %s", err);
        return -1;
    }
    if (s_load_key(a, st, err, sizeof err) != 0) {
        log_error("checkpoint signing key: %s", err);
        return -1;
    }
    a->checkpoints_path = s_path(st, "audit/checkpoints_file");
    a->verify_key_path = s_path(st, "audit/verify_key_file");
    a->journal_dir = strdup(stage_journal_dir(st));
    pthread_mutex_init(&a->verify.mu, NULL);
    a->people = stage_people(st);
    long ids_max;
    if (config_bounded(c, "audit/checkpoint_every_s", &a->checkpoint_every_s, err, sizeof err) != 0 ||
        config_bounded(c, "audit/case_ids_max", &ids_max, err, sizeof err) != 0) {
        log_error("%s", err);
        return -1;
    }
    char *db = s_path(st, "audit/case_db");
    a->idx = caseidx_open(db, stage_journal_dir(st), false, err, sizeof err);
    uint64_t applied = 0;
    if (a->idx)
        caseidx_set_ids_max(a->idx, (size_t) ids_max);
    if (!a->idx || caseidx_sync(a->idx, stage_journal_dir(st), &applied, err, sizeof err) != 0) {
        log_error("%s", err);
        free(db);
        return -1;
    }
    a->ridx = caseidx_open(db, stage_journal_dir(st), true, err, sizeof err);
    free(db);
    if (!a->ridx) {
        log_error("%s", err);
        return -1;
    }
    pthread_mutex_init(&a->rmu, NULL);
    pthread_mutex_init(&a->qmu, NULL);
    refusals_opts_t ro;
    if (refusals_config(c, &ro, err, sizeof err) != 0 ||
        !(a->refusals = refusals_new(&ro, NULL, NULL, err, sizeof err))) {
        log_error("%s", err);
        return -1;
    }
    a->indexer = indexer_new(a->idx, stage_journal_dir(st), s_durable, st, AUDIT_INDEX_COMMIT_MS, err, sizeof err);
    if (!a->indexer) {
        log_error("%s", err);
        return -1;
    }
    log_info("trail at #%llu; case index caught up (%llu records applied)", (unsigned long long) a->head.seq,
             (unsigned long long) applied);
    /* the first start seals the empty trail (so a missing file is suspicious);
     * later starts seal what the last run left if it stopped unsealed */
    s_checkpoint(a, access(a->checkpoints_path, F_OK) != 0);
    a->sealed_seq = a->head.seq;
    atomic_store(&a->sealed_jseq, stage_journal_last_seq(st));
    a->next_checkpoint_ms = stage_now_ms() + a->checkpoint_every_s * 1000;
    if (s_start_archiver(a) != 0)
        return -1;
    return s_serve(a);
}

/* s_drain - SIGTERM: stop serving; every refusal not yet on the trail
 * goes on it now (the loop may stop before its next tick) */
static void s_drain(stage_t *st, void *arg)
{
    (void) st;
    audit_t *a = arg;
    httpd_stop(&a->httpd);
    if (a->refusals)
        s_refusals_out(a, true);
}

/* s_fini - commit the index, seal the trail, let go */
static void s_fini(stage_t *st, void *arg)
{
    audit_t *a = arg;
    s_drain(st, arg);
    pthread_mutex_lock(&a->verify.mu);
    bool join = a->verify.joinable;
    a->verify.joinable = false;
    pthread_mutex_unlock(&a->verify.mu);
    if (join)
        pthread_join(a->verify.thread, NULL); /* a verification under way finishes (it only reads) */
    archiver_destroy(&a->archiver);           /* after the segment it is moving, if any */
    indexer_destroy(&a->indexer);             /* commits what it applied; the next start applies the rest */
    s_checkpoint(a, false);
    caseidx_close(&a->ridx);
    caseidx_close(&a->idx);
    refusals_destroy(&a->refusals);
    trail_key_destroy(&a->key);
    free(a->checkpoints_path);
    a->checkpoints_path = NULL;
    free(a->verify_key_path);
    a->verify_key_path = NULL;
    free(a->journal_dir);
    a->journal_dir = NULL;
}

int main(int argc, char **argv)
{
    static audit_t audit;
    static const stage_def_t def = {.name = "audit",
                                    .store_inputs = true,
                                    .store = s_store,
                                    .init = s_init,
                                    .handle = s_handle,
                                    .tick = s_tick,
                                    .drain = s_drain,
                                    .fini = s_fini,
                                    .people = true, /* the skeleton holds and reloads the approvers */
                                    .arg = &audit};
    return stage_main(argc, argv, &def);
}
