/* stage_priv - the stage skeleton's own state and the interfaces between
 * its files (not for stages: they see stage.h only):
 *
 *   stage.c          the loop, signals, start-up, accessors
 *   stage_emit.c     journaling what a stage emits: emit, publish, inject,
 *                    the ack watermark
 *   stage_window.c   delivery windows: what is sent and not yet acked,
 *                    re-sends, the turn's commit (sync, then send)
 *   stage_ack.c      acks: to our producers (batched) and from consumers
 *   stage_input.c    one input: dedup, the handler, deferral
 *   stage_recover.c  recovery from the journal at start
 *   stage_socket.c   the ZeroMQ sockets
 *   stage_status.c   counters, gauges, histograms, the status file,
 *                    /metrics text
 *   stage_http.c     outside calls: the stage's httpc_multi engine, its
 *                    systems and limits from the configuration, its sockets
 *                    in the loop's poll, its state in status and metrics
 */
#ifndef PG_STAGE_PRIV_H
#define PG_STAGE_PRIV_H

#include "sdnotify.h"
#include "httpc_multi.h"
#include "otlp.h"
#include "stage.h"
#include "trace.h"
#include "trail.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "flow.h"
#include "dedup.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"

#define STAGE_BATCH 256        /* inputs taken per loop turn */
#define STAGE_MAX_UPSTREAMS 64 /* producer instances we ack */
#define STAGE_MAX_PENDING_ACKS 8192
#define STAGE_ACK_MAX_BYTES 65536
#define STAGE_TRIM_MS 10000              /* the heap's free pages go back to the system this often (s_trim_heap) */
#define STAGE_MMAP_THRESHOLD (64 * 1024) /* blocks this big get their own mapping (stage_main) */
#define STAGE_NOTE_MAX 128               /* bytes of a note's what and subject (stage_note) */
#define STAGE_MAX_NOTES 1024             /* notes held per producer between flushes; more are dropped */
#define STAGE_WM_EVERY_MS 1000
/* STAGE_RCVHWM - events ZeroMQ queues per upstream pipe, at most. What is
 * queued is bounded by the sender's window (payguard/delivery/max_inflight
 * and max_inflight_bytes; `payguard replay` keeps the same window), so this
 * count is only a backstop; at 1,024, before replay had its window, a
 * consumer at its limit when replay exited lost the events still in the
 * socket (e2e_backbone, 3 of 10,000). */
#define STAGE_RCVHWM 10000
#define STAGE_ZMQ_ZERO_COPY_RECV 10 /* libzmq's context option ZMQ_ZERO_COPY_RECV (draft API, zmq.h) */

enum { DEST_NEXT = 0, DEST_AUDIT = 1, NDEST = 2 };

/* blob - one encoded envelope shared by the windows that carry it */
typedef struct {
    int refs;
    size_t len;
    unsigned char data[];
} blob_t;

/* entry - one event awaiting its consumer's ack */
typedef struct {
    uint64_t seq;
    blob_t *blob;
    int64_t sent_ms;   /* its last send, 0: never sent */
    int64_t wait_ms;   /* its consumer's last "wait" for it (a lease), 0: none */
    int64_t pushed_ms; /* when it entered the window (sk_mono_ms): the age of the oldest one */
    int target;        /* the consumer instance it must reach (route.h), -1: any */
    uint8_t resends;   /* times sent again (flow.h: each doubles its timeout) */
    bool waited;       /* the consumer asked us to wait for it: no round-trip sample */
    bool acked;
} entry_t;

/* window - unacked events of one destination, in seq order (a ring) */
typedef struct {
    entry_t *v;
    size_t cap; /* power of two */
    size_t head;
    size_t count;
    size_t next_send; /* index (from head) of the first never-sent entry */
    uint64_t last_pushed;
    int64_t last_resend_scan_ms;
    flow_t flow[CONFIG_MAX_INSTANCES]; /* per link: target's, or [0] (flow.h) */
    _Atomic size_t count_shared;
    size_t bytes;                /* the entries' payloads: bounded by max_inflight_bytes */
    _Atomic size_t bytes_shared; /* bytes, for stage_publish's threads */
    _Atomic int64_t heard_ms;    /* sk_mono_ms of the consumer's last ack or wait (start: the stage's start):
                                    stage_ready */
} window_t;

/* staged - appended this turn, not yet durable, so not yet sendable */
typedef struct {
    uint64_t seq;
    blob_t *blob;
    unsigned dest;
    int target; /* of the next stage (route.h); -1: any */
    stage_durable_fn *fn;
    void *fn_arg;
} staged_t;

/* counter - one labelled series of stage_count */
typedef struct {
    char name[64];
    char label[32];
    char value[METRICS_LABEL_MAX]; /* as given (cut to fit); escaped when written */
    _Atomic uint64_t n;
} counter_t;

/* hist_t - one histogram series of stage_observe_ms (bounds: sk_hist_bounds_ms) */
#define STAGE_HIST_BUCKETS 16
#define STAGE_MAX_HISTOGRAMS 64
typedef struct {
    char name[64];
    char labels[128];
    uint64_t b[STAGE_HIST_BUCKETS]; /* per bucket, not cumulative */
    uint64_t count;
    uint64_t sum_ms;
} hist_t;
extern const int64_t sk_hist_bounds_ms[STAGE_HIST_BUCKETS];

/* stage_pending_t - an input whose answer comes later (stage_defer) */
struct stage_pending_t {
    event_t *ev;
    bool from_producer;
    bool linked; /* with its producer's epoch: dedup by position too (dedup.h) */
    bool emitted;
    bool announced; /* its producer was told we wait on it (sk_send_waits) */
    unsigned emit_index;
    int64_t started_ms; /* taken (its span's start) */
    bool adopted_span;  /* stage_pending_trace: span is its span, as its journal says */
    trace_t span;
};

struct httpc_multi_t;

/* note - a stage_note waiting for the next flush of acks */
typedef struct {
    char what[STAGE_NOTE_MAX + 1], subject[STAGE_NOTE_MAX + 1];
    uint64_t n;
} note_t;

/* upstream - a producer instance we owe acks (and notes) to */
typedef struct {
    char inst[EVENT_STAGE_MAX + 1];
    zsock_t *push;
    uint64_t *seqs;
    size_t n;
    note_t *notes; /* STAGE_MAX_NOTES, allocated on the first note */
    size_t nnotes;
} upstream_t;

struct stage_t {
    const stage_def_t *def;
    config_t *config;
    char name[32];
    char inst[EVENT_STAGE_MAX + 1];
    int index;
    const char *next; /* next stage name or NULL */

    unsigned char seal_key[EVENT_SEAL_KEY_BYTES]; /* with def->seal (sealkey.h) */

    journal_t *journal;
    pthread_mutex_t append_mu;               /* seq prediction + append + staging order */
    dedup_t *dedup;                          /* inputs taken (dedup.h): the loop thread's */
    _Atomic size_t dedup_seqs, dedup_recent; /* its size, for /metrics (sk_write_status) */
    _Atomic uint64_t dedup_forgotten;
    int64_t last_floors_ms;

    zcert_t *cert;   /* with payguard/curve: this instance's key pair (curve.h) */
    zactor_t *auth;  /* ... and the authenticator of who may connect */
    zsock_t *mon[2]; /* ... and what it refused on ackin and in (sk_curve_refusals) */
    uint64_t refused;
    int64_t refused_ms;
    char refused_at[128];
    zsock_t *in;
    zsock_t *out[NDEST];
    /* a partitioned next stage (route.h): one PUSH per instance, so an
     * event and its re-sends reach the owner of its key */
    zsock_t *outp[CONFIG_MAX_INSTANCES];
    int noutp;
    zsock_t *ackin;
    upstream_t up[STAGE_MAX_UPSTREAMS];
    size_t nup;

    window_t win[NDEST];
    long max_inflight;
    long max_inflight_bytes; /* payguard/delivery/max_inflight_bytes: a window's payloads, at most (+ one input's
                                answers) */
    size_t recent_ids;       /* payguard/delivery/recent_ids: recovery reads at least this many records back */
    long resend_ms;
    long drain_ms;

    /* disk space (stage_disk.c): under min_free_mb free, no input is taken */
    long min_free_mb;
    _Atomic bool disk_low;
    _Atomic long long disk_free_mb; /* -1: not known */
    int64_t last_disk_check_ms;
    long retention_s; /* with def->retire_journal */
    int64_t last_retire_ms;
    int64_t last_usage_ms;                    /* the journal's size, for /metrics (sk_journal_usage) */
    _Atomic int64_t oldest_unacked_ms[NDEST]; /* age of each window's oldest event, 0: none (sk_write_status) */
    sdnotify_watchdog_t watchdog;             /* systemd's, pinged by the loop (sdnotify.h) */

    /* loop-thread staging (handle/emit) */
    staged_t *staged;
    size_t nstaged, capstaged;
    size_t staged_bytes; /* the payloads of staged[] */
    const event_t *current;
    event_t *current_owned; /* the input being handled, owned (for stage_defer) */
    bool current_from_producer;
    bool current_linked; /* it came with its producer's epoch (STAGE_META) */
    stage_pending_t *deferred[STAGE_MAX_DEFERRED];
    size_t ndeferred;
    stage_pending_t *resumed;
    int64_t last_wait_ms;
    unsigned emit_index;
    uint64_t last_emit_seq;
    char last_emit_id[EVENT_ID_MAX + 1];
    bool emitted;

    /* publish queue (any thread) */
    pthread_mutex_t pub_mu;
    staged_t *pubq;
    size_t npubq, cappubq;
    _Atomic size_t pub_pending;
    _Atomic size_t pub_pending_bytes; /* the payloads of pubq[] */

    int wake_pipe[2];
    int64_t last_wm_ms;
    uint64_t wm_written[NDEST];

    /* outside calls (stage_http.c): NULL until a stage asks for them */
    struct httpc_multi_t *http;
    otlp_t *otlp;                     /* spans to a collector (stage_trace.c); NULL: no export */
    int64_t current_started_ms;       /* when the input being handled was taken (its span's start) */
    const stage_pending_t *trace_pin; /* stage_trace_calls: calls started now are in its span */
    struct pollfd *hfds;
    zmq_pollitem_t *items;
    size_t capio;

    /* counters */
    pthread_mutex_t counters_mu;
    hist_t hists[STAGE_MAX_HISTOGRAMS];
    size_t nhists;
    counter_t counters[STAGE_MAX_COUNTERS];
    _Atomic size_t ncounters;
    _Atomic uint64_t c_in, c_out, c_dup, c_bad, c_acks, c_resent, c_busy, c_retry;

    /* the approvers, with def->people (stage.c) */
    people_live_t people;
    bool people_ready;
};

/* set by the signal handler: stop taking work, drain, exit */
extern volatile sig_atomic_t sk_stop;
/* the signal handler's self-pipe (the loop polls its read end) */
extern int sk_signal_pipe;

/* sk_mono_ms - monotonic ms, for timers that must not jump */
int64_t sk_mono_ms(void);

/* sk_blob_new - a record payload with one reference */
blob_t *sk_blob_new(const void *a, size_t alen, const void *b, size_t blen);

/* sk_blob_unref - drop a reference, free with the last */
void sk_blob_unref(blob_t **blob_p);

/* sk_win_at - i-th entry from the head */
entry_t *sk_win_at(window_t *w, size_t i);

/* sk_win_push - add a durable event for target (-1: any instance); seqs
 * arrive in increasing order */
void sk_win_push(window_t *w, uint64_t seq, blob_t *blob, int target);

/* sk_win_ack - mark seq acked (at now, monotonic ms); pop acked entries off
 * the front */
bool sk_win_ack(window_t *w, uint64_t seq, int64_t now);

/* sk_win_extend - a consumer is still working on seq: restart its resend
 * timer (a lease, like a queue's visibility timeout), so a slow answer is
 * not given to a second worker as well */
void sk_win_extend(window_t *w, uint64_t seq);

/* sk_win_watermark - every event for this destination at or below it is acked */
uint64_t sk_win_watermark(window_t *w);

/* sk_stage_push - remember a journaled event until the turn's sync */
void sk_stage_push(staged_t **v, size_t *n, size_t *cap, staged_t item);

/* sk_dest_mask - drop destinations this stage does not have */
unsigned sk_dest_mask(stage_t *st, unsigned dest);

/* trace context (stage_trace.c) */
int sk_trace_input(const event_t *ev, trace_t *out);
int sk_trace_span(const stage_t *st, trace_t *out);
const event_body_t *sk_trace_body(const stage_t *st, const event_body_t *body, event_body_t **tmp);
int sk_trace_open(stage_t *st);
void sk_trace_close(stage_t *st);
void sk_trace_input_done(stage_t *st, const event_t *ev, int64_t start_ms);
int sk_trace_current(void *arg, trace_t *out);
void sk_trace_call_done(void *arg, const httpc_span_t *sp);
void sk_trace_status(stage_t *st);

/* sk_append_small - one of the skeleton's own records ('I', 'F', 'W') or a stored input */
void sk_append_small(stage_t *st, const void *data, size_t len);

/* sk_write_watermark - journal the ack watermarks if they moved */
void sk_write_watermark(stage_t *st, bool force);

/* sk_target - the next stage's instance an event must reach (route.h):
 * -1 when it is not partitioned or the event does not go there */
int sk_target(stage_t *st, const event_head_t *head, const void *env, size_t len, unsigned dest);

/* sk_recover - rebuild the dedup set and the unacked windows from the journal */
int sk_recover(stage_t *st);

/* sk_connect_push - a PUSH connected to instances [from, to) of stage: to
 * their input endpoints, or with ack to their ack endpoints; with CURVE,
 * checking each one's server key (curve.h) */
zsock_t *sk_connect_push(stage_t *st, const char *stage, int from, int to, bool ack);

/* sk_curve_refusals - handshakes refused for an unknown CURVE key: logged,
 * counted, and on the trail as access_denied (one record a second at most) */
void sk_curve_refusals(stage_t *st);

/* sk_open_sockets - input, outputs, acks per the group configuration */
int sk_open_sockets(stage_t *st);

/* sk_ack_later - owe the producer of ev an ack (sent after the turn's sync) */
void sk_ack_later(stage_t *st, const event_head_t *h);

/* sk_flush_acks - send owed acks: ["ack", <our stage>, [seq...]] */
void sk_flush_acks(stage_t *st);

/* sk_send_waits - for inputs still deferred, tell their producers we are
 * working on them: ["wait", <our stage>, [seq...]], a few times per
 * resend period (best effort: a lost wait only risks a second worker) */
void sk_send_waits(stage_t *st);

/* sk_on_ack - strictly decode an ack message and apply it */
void sk_on_ack(stage_t *st, const void *data, size_t len);

/* sk_send_window - send never-sent entries, then re-send overdue ones */
void sk_send_window(stage_t *st, int d);

/* sk_commit_turn - sync this turn's appends, then release them and the acks */
void sk_commit_turn(stage_t *st);

/* sk_meta_t - what came with an input from its producer (STAGE_META) */
typedef struct {
    uint64_t epoch, floor;
} sk_meta_t;

/* sk_handle_event - dedup and handle one decoded event; meta: it came
 * from a producer, which is acked (NULL: injected, no producer) */
void sk_handle_event(stage_t *st, event_t *ev, const void *raw, size_t rawlen, const sk_meta_t *meta);

/* sk_on_input - decode strictly, then handle one input event */
void sk_on_input(stage_t *st, const void *data, size_t len, const sk_meta_t *meta);

/* sk_taken - journal input h as taken ('I') and remember it in dedup
 * (from_producer, linked: as it came, stage_pending_t): once it is
 * answered, after its last emit (no_output: none). Not before: a crash between an 'I' and the answers it promised would
 * leave an input taken and never answered. A crash between its answers and its 'I' leaves answers whose cause ids
 * recovery remembers as recent ids, so the producer's re-send is dropped (and journaled as taken) by id */
void sk_taken(stage_t *st, const event_head_t *h, bool from_producer, bool linked, bool no_output);

/* sk_write_floors - journal the producers' floors that moved ('F'): at
 * most once a second, or now with force */
void sk_write_floors(stage_t *st, bool force);

/* sk_journal_taken - an 'I' record: producer's seq taken, its id (NULL
 * with STAGE_TAKEN_POSITION: a checkpoint's) */
void sk_journal_taken(stage_t *st, const char *producer, uint64_t seq, const char *id, unsigned flags);

/* sk_checkpoint_dedup - the whole dedup memory by position at the
 * journal's tail: every producer's 'F', and its seqs above the floor as
 * position-only 'I's, so the segments before it can be removed and a
 * restart still rebuilds it (recent ids come back from the 'I's and
 * answers kept, which retention keeps for far longer than they matter) */
void sk_checkpoint_dedup(stage_t *st);

/* sk_window_room - may we take more input? */
bool sk_window_room(stage_t *st);
/* sk_journal_usage - every STAGE_RETIRE_EVERY_MS: the journal's live
 * segments and bytes, and its retention, as gauges for /metrics (the
 * console's Pipeline page shows them) */
void sk_journal_usage(stage_t *st, int64_t now);
/* sk_check_disk - at most once a second: the journal's file system's free
 * space against payguard/journal/min_free_mb (stage_disk.c) */
void sk_check_disk(stage_t *st, int64_t now);
/* sk_retire - every STAGE_RETIRE_EVERY_MS, with def->retire_journal: remove
 * the journal segments both consumers acknowledged, past retention_s */
void sk_retire(stage_t *st, int64_t now);

/* sk_poll_items - the loop's poll set: acks, wake pipe, the outside
 * calls' sockets, then input if taken; *timeout lowered to the engine's */
size_t sk_poll_items(stage_t *st, bool take_input, long *timeout);

/* sk_poll_done - hand what poll found on the outside calls' sockets to
 * the engine, which finishes calls (their callbacks run here) */
void sk_poll_done(stage_t *st, size_t nitems);

/* sk_http_status - outside systems' state: gauges, and lines of the status file */
void sk_http_status(stage_t *st, FILE *stat_file);

/* sk_http_destroy - at exit */
void sk_http_destroy(stage_t *st);

/* sk_write_status - <run_dir>/<inst>.stat for `payguard status` (atomic rename) */
void sk_write_status(stage_t *st);

#endif
