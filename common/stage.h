/* stage - the skeleton every payguard stage runs in.
 *
 * A stage's main.c fills in a stage_def_t and calls stage_main(); the
 * skeleton owns everything else (Postfix's *_server_main):
 *   - configuration: the group file given with -c (embedded defaults without),
 *     the instance index given with -i;
 *   - the instance's journal, <data_dir>/<stage>.<n>/, opened and recovered;
 *   - sockets: a PULL bound at the instance's input endpoint; a PUSH connected
 *     to every instance of the next stage (ZeroMQ round-robins among them);
 *     a PUSH connected to audit; a PULL bound at the instance's ack endpoint;
 *     a PUSH per upstream instance for the acks this instance sends;
 *   - delivery: every emitted event is journaled, made durable, then sent;
 *     it stays in a window until its consumer acknowledges it, is re-sent
 *     when it looks lost (flow.h: timed out, and its consumer went past it or
 *     went quiet), and after a restart everything past the journaled
 *     ack watermark is re-sent. Inputs are acknowledged once what they caused
 *     is durable. An input already taken is dropped (and re-acked), so a
 *     re-sent event has one effect: each event leaves with a second frame,
 *     its producer's journal epoch and floor (STAGE_META), and dedup.h
 *     remembers, per producer, the floor and the seqs taken above it, and
 *     the last recent_ids input ids: memory set by configuration, not by
 *     history. A full window stops input:
 *     back-pressure travels upstream to ingest, which answers 503;
 *   - signals: SIGTERM/SIGINT stop input, wait up to drain_ms for acks,
 *     write the watermark, sync and exit 0;
 *   - logs (logfmt or JSON lines on stderr: log.h), counters (stage_metrics_text), and a status
 *     file <run_dir>/<stage>.<n>.stat for `payguard status`;
 *   - disk space: while the journal's file system has less than
 *     payguard/journal/min_free_mb free (looked at once a second), the
 *     stage takes no input and stage_publish answers EBUSY (ingest: 503
 *     with Retry-After): producers keep what they sent in their windows,
 *     nothing acknowledged is lost, and input resumes by itself once space
 *     is freed. A write that fails anyway (the disk filled within a second)
 *     is fatal as before (journal.h): the restarted stage waits the same way.
 *
 * JOURNAL RECORDS (payload of each journal record; see journal.h)
 *   'E' <u8 dest mask> <event envelope>   an event this instance emitted
 *   'I' <u8 flags> <u64 seq> <u8 n> <producer: n bytes> <input id>
 *                                         an input taken from a producer,
 *                                         written once it is answered (after
 *                                         its last 'E'); flags bit 0: no
 *                                         output; bit 1: it came without an
 *                                         epoch (known by id only); bit 2: a
 *                                         checkpoint's, no id (before a
 *                                         retirement, below)
 *   'F' <u64 epoch> <u64 floor> <u64 first> <producer>
 *                                         a producer's epoch, floor and
 *                                         first floor (dedup.h) as last
 *                                         heard; written
 *                                         before the first input of a new
 *                                         epoch, else at most once a second
 *   'C' <input id>                        an input consumed with no output
 *                                         (journals older than 'I')
 *   'S' <event envelope>                  an input stored verbatim
 *   'A' <trail record>                    an input stored in audit's hash
 *                                         chain (trail.h), the envelope inside
 *   'W' <u64 wm next> <u64 wm audit>      ack watermarks (little endian):
 *                                         every 'E' record at or below them
 *                                         was acknowledged by that consumer
 */
#ifndef PG_STAGE_H
#define PG_STAGE_H

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "event.h"
#include "otlp.h"
#include "people.h"
#include "trace.h"

#define STAGE_TO_NEXT 1u
#define STAGE_TO_AUDIT 2u
#define STAGE_TO_BOTH (STAGE_TO_NEXT | STAGE_TO_AUDIT)

/* handle() results */
#define STAGE_DONE 0
#define STAGE_RETRY 1    /* not now: the input is not acked and comes back; only before any emit */
#define STAGE_DEFERRED 2 /* handle() called stage_defer(): finished later with stage_finish() */

#define STAGE_REC_EVENT 'E'
#define STAGE_REC_CONSUMED 'C'
#define STAGE_REC_STORED 'S'
#define STAGE_REC_WATERMARK 'W'
#define STAGE_REC_TAKEN 'I'
#define STAGE_REC_FLOOR 'F'
#define STAGE_TAKEN_NO_OUTPUT 1u /* 'I' flags: it emitted nothing */
#define STAGE_TAKEN_ID_ONLY 2u   /* ... it came without its producer's epoch: known by id only */
#define STAGE_TAKEN_POSITION 4u  /* ... a checkpoint's: position only, no id (sk_checkpoint_dedup) */

/* stage_taken_t - an 'I' record, decoded */
typedef struct {
    unsigned flags; /* STAGE_TAKEN_NO_OUTPUT */
    uint64_t seq;   /* in the producer's journal */
    char producer[EVENT_STAGE_MAX + 1];
    char id[EVENT_ID_MAX + 1];
} stage_taken_t;
/* stage_record_taken - 0 and the fields of an 'I' record, -1 if malformed */
int stage_record_taken(const void *rec, size_t len, stage_taken_t *out);

/* stage_floor_t - an 'F' record, decoded */
typedef struct {
    uint64_t epoch, floor, first;
    char producer[EVENT_STAGE_MAX + 1];
} stage_floor_t;
/* stage_record_floor - 0 and the fields of an 'F' record, -1 if malformed */
int stage_record_floor(const void *rec, size_t len, stage_floor_t *out);

/* STAGE_META - the second frame of every event a producer sends:
 * <u8 version = 1> <u64 epoch> <u64 floor>, little endian: its journal's
 * epoch (journal.h) and the lowest seq it still waits an ack of from this
 * stage (0: none said, as payguard replay sends; STAGE_META_REBUILD: none,
 * and the receiver's journal is being rebuilt, payguard replay --rebuild).
 * An event of one frame has epoch 0 (dedup.h) */
#define STAGE_META_VERSION 1
#define STAGE_META_BYTES 17
#define STAGE_META_REBUILD UINT64_MAX
void stage_meta_encode(unsigned char out[STAGE_META_BYTES], uint64_t epoch, uint64_t floor);
/* stage_meta_decode - 0 and the values, -1 if not a version-1 frame */
int stage_meta_decode(const void *data, size_t len, uint64_t *epoch, uint64_t *floor);

typedef struct stage_t stage_t;

typedef struct {
    const char *name;  /* "validate": one of config_stages */
    bool store_inputs; /* audit: journal every input verbatim ('S') */
    void *(*store)(stage_t *st, const event_t *in, const void *raw, size_t rawlen, size_t *len_out,
                   void *arg); /* with store_inputs: the record to journal instead of 'S' (malloc'd) */
    void (*replay)(stage_t *st, const event_t *ev, void *arg); /* at start, each event this
                                                               instance journaled, in order:
                                                               rebuild state in one pass */
    int (*init)(stage_t *st, void *arg);                       /* after journal + sockets */
    int (*handle)(stage_t *st, const event_t *in, void *arg);  /* STAGE_DONE | STAGE_RETRY */
    void (*tick)(stage_t *st, void *arg);                      /* every loop turn */
    void (*drain)(stage_t *st, void *arg);                     /* SIGTERM: stop taking work */
    bool (*busy)(stage_t *st, void *arg);                      /* while draining: work left? */
    void (*fini)(stage_t *st, void *arg);
    void (*status)(stage_t *st, FILE *f, void *arg); /* once a second on the loop thread, and after fini:
                                                        extra lines for `payguard status` (outside_<system>=...) */
    void *arg;
    unsigned max_deferred; /* inputs that may wait in stage_defer at once (0: none); input stops at the bound */
    unsigned seal;         /* STAGE_SEAL_OUT: seal what goes to the next stage (approve); STAGE_SEAL_IN: hold the
                              key to check inputs with stage_seal_key (execute); event.h, SEALS */
    bool retire_journal;   /* its recovery needs only what its consumers have not acknowledged and its dedup
                              memory (ingest, triage: no projection): segments both consumers acknowledged (the
                              journaled watermarks) and older than <stage>/retention_s are removed
                              (journal_retire), after a checkpoint of the dedup memory (sk_checkpoint_dedup) */
    uint64_t (*retain_after)(stage_t *st, void *arg); /* with retire_journal, for a stage whose projection is a
                                                         snapshot at a journal seq (approve's case store): the
                                                         records after it are never retired (0: keep all) */
    void (*on_note)(stage_t *st, const char *from, const char *what, const char *subject, uint64_t n,
                    void *arg); /* on the loop thread: a consumer stage's stage_note about one of our events
                                   (ingest: validate's rejections, for the per-source budget) */
    bool people; /* approve, audit: the skeleton holds the approvers (stage_people), read before init and again
                    on SIGHUP and when the configuration file changes (people.h, RELOAD; counted in
                    payguard_approvers_reloads_total); without it SIGHUP is ignored */
} stage_def_t;

#define STAGE_SEAL_OUT 1u
#define STAGE_SEAL_IN 2u

/* a deferred input: handle() may start slow work (an LLM call) and return
 * STAGE_DEFERRED after stage_defer(); the input stays unacknowledged (so a
 * crash re-delivers it) until stage_finish(), and a re-delivery meanwhile is
 * ignored, and the producer is told "wait" a few times per resend period so
 * that it does not hand the input to another worker meanwhile (a lease).
 * Events emitted before stage_defer() count as part of the answer.
 * Between stage_resume() and stage_finish(), stage_emit() emits in
 * answer to that input, with the ids it would have had synchronously. */
typedef struct stage_pending_t stage_pending_t;
#define STAGE_MAX_DEFERRED 1024 /* the most max_deferred may be */
stage_pending_t *stage_defer(stage_t *st);
const event_t *stage_pending_event(const stage_pending_t *p);
void stage_resume(stage_t *st, stage_pending_t *p);
void stage_finish(stage_t *st, stage_pending_t **p_p);
/* stage_yield - leave a resumed input unfinished until a later tick */
void stage_yield(stage_t *st, stage_pending_t *p);
/* stage_adopt - after a restart: an input whose answer was started before
 * the crash (its id is already seen, so it will not be delivered again) is
 * taken up again; emits continue at emit_index with the ids they would have
 * had. Finish it with stage_finish like a deferred input. */
stage_pending_t *stage_adopt(stage_t *st, const char *input_id, const char *case_key, unsigned emit_index);
size_t stage_deferred_count(const stage_t *st);
/* stage_pending_trace - an adopted input's span (its traceparent, as the
 * events it answered with before the restart carry it; "" or an invalid
 * one: none): while it is resumed, its emits and calls stay in that trace.
 * (Its own span, begun before the crash, is not exported again.) */
void stage_pending_trace(stage_pending_t *p, const char *traceparent);
/* stage_trace_calls - outside calls started from now until
 * stage_trace_calls(st, NULL) are in p's span, whatever input is current
 * (for a stage that starts a deferred input's calls from tick) */
void stage_trace_calls(stage_t *st, const stage_pending_t *p);

/* stage_read_event - the next event of a journal read with journal_reader_*:
 * an 'E' record (what an instance emitted; *dest its destinations) or an
 * 'S' record (what audit stored; *dest 0), decoded; other records are
 * skipped, an undecodable one with a log line. NULL at the end or on
 * corruption (see journal_reader_error). seq and dest may be NULL. */
struct journal_reader_t;
event_t *stage_read_event(struct journal_reader_t *r, uint64_t *seq, unsigned *dest);

/* stage_record_event - the event a journal record carries ('E', 'S' or
 * 'A'), decoded; NULL for a record that carries none, or one that does not
 * decode (logged with its seq). dest as for stage_record_envelope */
event_t *stage_record_event(const void *rec, size_t len, uint64_t seq, unsigned *dest);

/* stage_record_envelope - the event envelope a journal record carries: an
 * 'E' record (its destination mask in *dest), an 'S' record or an 'A'
 * trail record (*dest 0). 1 and the envelope (borrowed from rec); 0 for a
 * record that carries none ('C', 'W', or too short to); -1 for an 'A'
 * record that is not a well-formed trail record. dest may be NULL. */
int stage_record_envelope(const void *rec, size_t len, const void **env, size_t *envlen, unsigned *dest);

/* stage_flush - make everything journaled so far durable now (before an
 * outbound call that must never happen without its "started" record) */
void stage_flush(stage_t *st);

/* stage_durable_fn - called on the loop thread once a published event is
 * durable (status 0); the event is sent right after */
typedef void(stage_durable_fn)(void *arg, int status);

/* stage_main - parse -c/-i, run the stage until SIGTERM; the exit status */
int stage_main(int argc, char **argv, const stage_def_t *def);

/* stage_emit - from handle(): emit an event caused by the current input;
 * its id is derived from (stage name, input id, emit index). dest is a mask
 * of STAGE_TO_NEXT / STAGE_TO_AUDIT. 0, or -1 and a logged reason. */
int stage_emit(stage_t *st, event_type_t type, const char *case_key, const event_body_t *body, unsigned dest);

/* stage_forward - from handle(): emit one event of type carrying the
 * input's case key and a copy of its body (the backbone's pass-through) */
int stage_forward(stage_t *st, const event_t *in, event_type_t type, unsigned dest);

/* stage_publish - from any thread (ingest): journal a new event with a
 * minted id (prefix_...), call fn (may be NULL) once it is durable, then
 * send it to dest (STAGE_TO_NEXT | STAGE_TO_AUDIT). -1 with errno EBUSY
 * when the delivery window is full (answer 503), EMSGSIZE/EINVAL when the
 * event cannot be encoded. */
int stage_publish(stage_t *st, const char *prefix, event_type_t type, const char *case_key, const event_body_t *body,
                  unsigned dest, char id_out[EVENT_ID_MAX + 1], stage_durable_fn *fn, void *fn_arg);

/* stage_inject - from the loop thread (tick): journal a new root event
 * (minted id prefix_..., no cause, sent to audit) and handle it at once as
 * if it had arrived as input. For work a stage starts itself, e.g.
 * validate's sweep of refunds pending too long. 0, or -1 if not journaled. */
int stage_inject(stage_t *st, const char *prefix, event_type_t type, const char *case_key, const event_body_t *body);

/* stage_count - add n to the counter name{label="value"} (label may be
 * NULL); safe from any thread; at most STAGE_MAX_COUNTERS distinct series,
 * beyond that value is folded into "other". Exported by stage_metrics_text
 * and, every second, in <run_dir>/<inst>.prom for the group's /metrics. */
#define STAGE_MAX_COUNTERS 256
void stage_count(stage_t *st, const char *name, const char *label, const char *value, uint64_t n);

/* stage_note - tell the producer of the current input one fact about it
 * over the ack channel: ["note", <our stage>, [what, subject, n]] (what
 * and subject cut at 128 bytes), handed to its stage_def_t.on_note. Held
 * with the acks owed to that producer and sent with them after the turn.
 * Advice, not delivery: not journaled, lost with a crash; -1 when 1,024
 * notes already wait for that producer, or for an input this stage
 * injected itself. */
int stage_note(stage_t *st, const char *what, const char *subject, uint64_t n);
/* stage_gauge - set the unlabelled gauge name to value (same table) */
void stage_gauge(stage_t *st, const char *name, int64_t value);
/* stage_gauge_label - set the gauge name{label="lvalue"} to value */
void stage_gauge_label(stage_t *st, const char *name, const char *label, const char *lvalue, int64_t value);

/* stage_observe_ms - one observation of the histogram name{labels} in ms
 * (exported in seconds; buckets 1 ms .. 60 s). labels: preformatted
 * `key="value"` pairs from fixed sets, never from data ("" for none); at
 * most STAGE_MAX_HISTOGRAMS (64) series, more are dropped with a log
 * line. Safe from any thread. */
void stage_observe_ms(stage_t *st, const char *name, const char *labels, int64_t ms);
/* stage_observe_call - an outside call's attempt into the histogram
 * payguard_outside_call_seconds{system,class} (arg: the stage_t; the
 * observer signature of httpc_multi and triage's model client) */
void stage_observe_call(void *arg, const char *system, const char *status_class, int64_t ms);
/* stage_outside_status - an outside system's gauges (payguard_outside_inflight,
 * _queued, _breaker, _breaker_opened_total) and, f given, its status line
 * "outside_<system>=<breaker> inflight=N queued=M"; breaker as httpc_breaker_t */
void stage_outside_status(stage_t *st, FILE *f, const char *system, int breaker, size_t inflight, size_t queued,
                          uint64_t opened);

/* stage_http - the stage's engine for outside calls (httpc_multi.h),
 * created on first use: its sockets and timers join the loop's poll, its
 * callbacks run on the loop thread before input is taken, and a call
 * started in one loop turn is sent in the next, after the turn's journal
 * sync. NULL if curl cannot start. */
struct httpc_multi_t;
struct httpc_multi_t *stage_http(stage_t *st);

/* stage_http_system - register outside system name ("payments", ...) with
 * its limits from the configuration (outside/max_inflight, rate_per_s,
 * breaker_failures, breaker_cooldown_ms, and outside/limits/<name>); its
 * index for httpc_multi_start, or -1 and err */
int stage_http_system(stage_t *st, const char *name, char *err, size_t errlen);

/* TRACE CONTEXT (trace.h) - an event's body may carry "traceparent", the
 * W3C context of the span that emitted it (ingest puts the webhook's, or a
 * new trace's, in each receipt). While a stage handles an input that
 * carries one, its span is trace_derive(input's context, stage name, input
 * id): stage_emit writes that span's traceparent into what it emits
 * (replacing one copied from the input), and every outside call started
 * meanwhile, or from the callback of a call started so, carries a
 * traceparent header of its own child span. stage_publish and stage_inject
 * have no input: a caller that wants its event in a trace puts "traceparent"
 * in the body itself. */
/* stage_trace - 0 and the context of the input being handled's span (to
 * keep for later publishes, or to parent a span of the stage's own), -1 if
 * none */
int stage_trace(const stage_t *st, trace_t *out);
/* SPANS: with payguard/trace/otlp_endpoint set, the skeleton exports a span
 * for every input it hands to handle() that carries a trace ("<stage>
 * <type>", from its taking to its answer, deferred or not) and for every
 * traced outside call ("<METHOD> <system>"); a stage adds its own with
 * stage_span. otlp.h: bounded, never blocking, drops counted in
 * payguard_otlp_spans_total{outcome="dropped"}. */
/* stage_span - export one span that ends now: ctx its own context, parent
 * its parent's (NULL: a root), start_ms its start (unix ms), case_key and
 * event_id attributes ("" or NULL: none); nothing without an endpoint.
 * Any thread. */
void stage_span(stage_t *st, const char *name, otlp_kind_t kind, const trace_t *ctx, const trace_t *parent,
                int64_t start_ms, bool error, const char *case_key, const char *event_id);

/* stage_seal_key - the group's seal key (sealkey.h), for a stage whose
 * definition asks for it (.seal); NULL otherwise */
const unsigned char *stage_seal_key(const stage_t *st);
/* stage_people - the approvers in force, with def->people (else NULL):
 * HTTP threads read them with people_live_auth; the loop reloads them */
people_live_t *stage_people(stage_t *st);

/* stage_wake - from any thread: make the loop run a turn now */
void stage_wake(stage_t *st);

/* stage_last_emit_seq - journal seq of the last event stage_emit wrote:
 * a stage that keeps a projection stamps it with this */
uint64_t stage_last_emit_seq(const stage_t *st);
/* stage_last_emit_id - id of the last event stage_emit wrote */
const char *stage_last_emit_id(const stage_t *st);
/* stage_journal_dir - this instance's journal directory (for projections
 * that rebuild themselves by reading it) */
const char *stage_journal_dir(const stage_t *st);
uint64_t stage_journal_last_seq(const stage_t *st);
/* stage_journal_durable_seq - the last record a crash keeps (journal.h); any thread */
uint64_t stage_journal_durable_seq(const stage_t *st);
/* stage_journal_trimmed - did retention or the archive move this
 * instance's oldest segments away (its journal no longer starts at 1)? */
bool stage_journal_trimmed(stage_t *st);
/* stage_checkpoint_dedup - from the loop thread (tick): write the dedup
 * memory at the journal's tail and sync it (as retention does before it
 * removes segments); the journal's last seq before it, which everything
 * recovery needs now follows */
uint64_t stage_checkpoint_dedup(stage_t *st);
/* stage_journal_archive - journal_archive (journal.h) on this instance's
 * journal: one old segment to the archive directory; any thread */
int stage_journal_archive(stage_t *st, const char *archive, uint64_t upto, int64_t older_than_s, uint64_t *bytes,
                          uint64_t *zbytes, char *err, size_t errlen);
/* stage_disk_low - is the journal's disk under payguard/journal/min_free_mb
 * (so no input is taken)? Any thread */
bool stage_disk_low(const stage_t *st);

/* STAGE_READY_SILENCE_MS - the longest a consumer may leave events
 * unacknowledged without a word before the stage is not ready (at least
 * three re-sends: payguard/delivery/resend_ms) */
#define STAGE_READY_SILENCE_MS 10000
/* stage_ready - can this instance take input and pass it on now? true, or
 * false and why: its journal's disk is under min_free_mb, a delivery window
 * is full (max_inflight or max_inflight_bytes), or a consumer holds
 * unacknowledged events and has said nothing for STAGE_READY_SILENCE_MS (or
 * three resend_ms, if longer). What /readyz and the status file's ready=
 * line say (the loop runs, so the stage has recovered). Any thread. */
bool stage_ready(stage_t *st, char *why, size_t whylen);

/* stage_status_ready - what an instance's status file (its text, as
 * written once a second) says of its readiness when pid is the process
 * now running it: STAGE_STARTING when the file is an earlier process's or
 * has no ready line yet (recovering), STAGE_NOT_READY and why (the
 * stage_ready reason), or STAGE_READY. For `payguard up -d`, `payguard
 * status` and the console's Pipeline page */
typedef enum { STAGE_STARTING, STAGE_NOT_READY, STAGE_READY } stage_readiness_t;
stage_readiness_t stage_status_ready(const char *text, int pid, char *why, size_t whylen);

const config_t *stage_config(const stage_t *st);
const char *stage_instance(const stage_t *st); /* "triage.1" */
const char *stage_name(const stage_t *st);     /* "triage" */
int stage_index(const stage_t *st);
int64_t stage_now_ms(void);
int64_t stage_mono_ms(void); /* monotonic: for timers that must not jump with the wall clock */

/* stage_metrics_text - Prometheus text exposition of the counters; the
 * caller's to free. Safe from any thread. */
char *stage_metrics_text(stage_t *st);

#endif
