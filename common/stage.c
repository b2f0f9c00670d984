/* stage - the skeleton every payguard stage runs in (see stage.h).
 *
 * One loop thread owns the sockets, the delivery windows and the dedup set.
 * Other threads (ingest's HTTP workers) only touch the journal (under
 * append_mu) and the publish queue (under pub_mu), then wake the loop
 * through a pipe.
 *
 * DELIVERY CONTRACT (docs/ARCHITECTURE.md §4)
 *   1. An event is appended to the journal, then made durable (one
 *      fdatasync per loop turn covers every append of that turn: group
 *      commit), and only then sent. Nothing is sent that a crash could
 *      un-write.
 *   2. An input is acknowledged only after what it caused is durable.
 *   3. A sent event stays in its destination's window until acked; when it
 *      looks lost it is sent again (flow.h: its timeout, at least resend_ms,
 *      has run, and its consumer went past it or sent neither an ack nor a
 *      wait for resend_ms; never while it is only queued behind a busy
 *      consumer's work). A restart re-sends every 'E' record above
 *      the last journaled watermark. Consumers drop ids they already
 *      journaled, so re-sending is always safe; not re-sending never is.
 *   4. Windows are bounded by max_inflight: when one is full, the loop
 *      stops reading input and stage_publish answers EBUSY.
 */
#include "stage_priv.h"

#include <malloc.h>

#include "httpc_multi.h"
#include "layout.h"
#include "route.h"
#include "sealkey.h"

volatile sig_atomic_t sk_stop = 0;
static volatile sig_atomic_t s_hup = 0; /* SIGHUP: def->reload on the next loop turn */
int sk_signal_pipe = -1;

/* stage_now_ms - wall clock in ms, the time of events */
int64_t stage_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* sk_mono_ms - monotonic ms, for timers that must not jump */
int64_t sk_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t stage_mono_ms(void)
{
    return sk_mono_ms();
}

/* s_on_signal - async-signal-safe: set the flag (SIGHUP: reload, else
 * stop), poke the loop */
static void s_on_signal(int sig)
{
    if (sig == SIGHUP)
        s_hup = 1;
    else
        sk_stop = 1;
    if (sk_signal_pipe >= 0) {
        int saved = errno;
        ssize_t rc = write(sk_signal_pipe, "x", 1);
        (void) rc;
        errno = saved;
    }
}

/* ---------------------------------------------------------------- blobs */

/* -------------------------------------------------------------- windows */

/* ------------------------------------------------------------- journal */

/* ------------------------------------------------------------- recovery */

/* --------------------------------------------------------------- sockets */

/* ------------------------------------------------------------------ acks */

/* ----------------------------------------------------------------- send */

/* ---------------------------------------------------------------- input */

/* accessors */
uint64_t stage_last_emit_seq(const stage_t *st)
{
    return st->last_emit_seq;
}

const char *stage_last_emit_id(const stage_t *st)
{
    return st->last_emit_id;
}

const char *stage_journal_dir(const stage_t *st)
{
    return journal_dir(st->journal);
}

uint64_t stage_journal_last_seq(const stage_t *st)
{
    return journal_last_seq(st->journal);
}

uint64_t stage_journal_durable_seq(const stage_t *st)
{
    return journal_durable_seq(st->journal);
}

bool stage_journal_trimmed(stage_t *st)
{
    return journal_first_live_seq(st->journal) > 1;
}

uint64_t stage_checkpoint_dedup(stage_t *st)
{
    uint64_t before = journal_last_seq(st->journal);
    sk_checkpoint_dedup(st);
    journal_sync(st->journal);
    return before;
}

int stage_journal_archive(stage_t *st, const char *archive, uint64_t upto, int64_t older_than_s, uint64_t *bytes,
                          uint64_t *zbytes, char *err, size_t errlen)
{
    return journal_archive(st->journal, archive, upto, older_than_s, bytes, zbytes, err, errlen);
}

const config_t *stage_config(const stage_t *st)
{
    return st->config;
}

const char *stage_instance(const stage_t *st)
{
    return st->inst;
}

const char *stage_name(const stage_t *st)
{
    return st->name;
}

int stage_index(const stage_t *st)
{
    return st->index;
}

/* s_take_one - one input message: the event, and its producer's epoch and
 * floor in a second frame (stage.h STAGE_META; none: epoch 0). A message
 * of other frames is refused whole as malformed. -1 when none is waiting */
static int s_take_one(stage_t *st, zmq_msg_t *msg)
{
    void *in = zsock_resolve(st->in);
    if (zmq_msg_recv(msg, in, ZMQ_DONTWAIT) < 0)
        return -1;
    sk_meta_t meta = {0, 0};
    bool ok = true;
    if (zmq_msg_more(msg)) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        int rc = zmq_msg_recv(&part, in, 0); /* a multipart message arrives whole */
        ok = rc >= 0 && !zmq_msg_more(&part) &&
             stage_meta_decode(zmq_msg_data(&part), zmq_msg_size(&part), &meta.epoch, &meta.floor) == 0;
        while (rc >= 0 && zmq_msg_more(&part))
            rc = zmq_msg_recv(&part, in, 0);
        zmq_msg_close(&part);
    }
    if (!ok) {
        atomic_fetch_add(&st->c_in, 1);
        atomic_fetch_add(&st->c_bad, 1);
        stage_count(st, "payguard_bad_input_events_total", NULL, NULL, 1);
        log_error("rejected an input message of %zu bytes: its second frame is not a version-%d epoch and floor",
                  zmq_msg_size(msg), STAGE_META_VERSION);
        return 0;
    }
    sk_on_input(st, zmq_msg_data(msg), zmq_msg_size(msg), &meta);
    return 0;
}

/* s_trim_heap - every STAGE_TRIM_MS: give the free pages inside the heap
 * back to the system (malloc_trim), and say how much is in use and how
 * much the allocator holds. Without it a stage's resident memory crept up
 * with history though what it used did not (the soak: execute's heap 5.9
 * MB in use, 11.5 MB held, and growing; bench/results-soak.md): glibc
 * returns only the top of the heap, and a long-lived allocation above a
 * hole keeps the hole resident. Idle curl handles go first: a burst of
 * outside calls leaves up to HM_POOL of them. */
static void s_trim_heap(stage_t *st)
{
    if (st->http)
        httpc_multi_trim(st->http); /* curl handles idle since the last trim */
    malloc_trim(0);
    struct mallinfo2 mi = mallinfo2();
    stage_gauge(st, "payguard_heap_in_use_bytes", (int64_t) (mi.uordblks + mi.hblkhd));
    stage_gauge(st, "payguard_heap_held_bytes", (int64_t) (mi.arena + mi.hblkhd));
}

/* s_people - the approvers again when the configuration file changed, or
 * at once after a SIGHUP (people.h, RELOAD), counted by outcome */
static void s_people(stage_t *st)
{
    bool hup = s_hup;
    s_hup = 0;
    if (!st->people_ready) {
        if (hup)
            log_info("SIGHUP: %s has nothing to reload", st->def->name);
        return;
    }
    int rc = people_live_reload(&st->people, hup, sk_mono_ms());
    if (rc != 0)
        stage_count(st, "payguard_approvers_reloads_total", "outcome", rc > 0 ? "reloaded" : "invalid", 1);
}

/* stage_people - see stage.h */
people_live_t *stage_people(stage_t *st)
{
    return st->people_ready ? &st->people : NULL;
}

/* s_chores - each turn, before input: the approvers (when the stage holds
 * them), the disk's free space, retention, the journal's size */
static void s_chores(stage_t *st)
{
    s_people(st);
    int64_t mono = sk_mono_ms();
    sk_check_disk(st, mono);
    sk_retire(st, mono);
    sk_journal_usage(st, mono);
}

/* s_loop - the one event loop: acks, wake-ups, input, commit, send */
static void s_loop(stage_t *st)
{
    int64_t drain_deadline = 0;
    int64_t last_status = 0, last_trim = sk_mono_ms();
    char buf[64];
    while (true) {
        if (sk_stop && !drain_deadline) {
            drain_deadline = sk_mono_ms() + st->drain_ms;
            log_info("stopping: no more input, draining for up to %ld ms", st->drain_ms);
            sdnotify_send("STOPPING=1"); /* under systemd: it waits for us (TimeoutStopSec) */
            if (st->def->drain)
                st->def->drain(st, st->def->arg);
        }
        if (drain_deadline) {
            bool busy = st->def->busy && st->def->busy(st, st->def->arg);
            bool empty = !st->win[0].count && !st->win[1].count && !atomic_load(&st->pub_pending) && !st->ndeferred;
            if ((!busy && empty) || sk_mono_ms() > drain_deadline) {
                if (!empty)
                    log_warn("drain timeout: %zu/%zu events unacked stay in the journal for re-send at start",
                             st->win[0].count, st->win[1].count);
                break;
            }
        }
        s_chores(st);
        bool take_input = st->in && !drain_deadline && sk_window_room(st);
        bool unsent = false;
        for (int d = 0; d < NDEST; d++)
            unsent |= st->win[d].next_send < st->win[d].count;
        /* deferred inputs waiting on outside calls wake the loop through
         * the engine's sockets and timers; others (triage's model) are polled */
        long timeout = unsent || drain_deadline || (st->ndeferred && !st->http) ? 5 : 100;
        size_t nitems = sk_poll_items(st, take_input, &timeout);
        int rc = zmq_poll(st->items, (int) nitems, timeout);
        if (rc < 0 && zmq_errno() != EINTR) {
            log_error("zmq_poll: %s", zmq_strerror(zmq_errno()));
            break;
        }
        if (st->items[1].revents & ZMQ_POLLIN)
            while (read(st->wake_pipe[0], buf, sizeof buf) > 0)
                ;
        sk_poll_done(st, nitems);
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        while (zmq_msg_recv(&msg, zsock_resolve(st->ackin), ZMQ_DONTWAIT) >= 0)
            sk_on_ack(st, zmq_msg_data(&msg), zmq_msg_size(&msg));
        if (st->mon[0])
            sk_curve_refusals(st);
        for (int n = 0; take_input && n < STAGE_BATCH && sk_window_room(st); n++)
            if (s_take_one(st, &msg) < 0)
                break;
        zmq_msg_close(&msg);
        if (st->def->tick)
            st->def->tick(st, st->def->arg);
        sk_commit_turn(st);
        sk_send_waits(st);
        for (int d = 0; d < NDEST; d++)
            sk_send_window(st, d);
        sk_write_watermark(st, false);
        sk_write_floors(st, false);
        int64_t now = sk_mono_ms();
        sdnotify_watchdog_tick(&st->watchdog, now); /* the loop turns: alive (sdnotify.h) */
        if (now - last_status >= 1000) {
            sk_write_status(st);
            last_status = now;
        }
        if (now - last_trim >= STAGE_TRIM_MS) {
            s_trim_heap(st);
            last_trim = now;
        }
    }
}

/* s_mkdirs - create run and data directories (one level each) */
static int s_mkdirs(const config_t *c)
{
    const char *dirs[2] = {config_run_dir(c), config_data_dir(c)};
    for (int i = 0; i < 2; i++)
        if (mkdir(dirs[i], i == 0 ? 0700 : 0750) != 0 && errno != EEXIST) { /* run: private (ipc sockets) */
            log_error("cannot create %s: %s", dirs[i], strerror(errno));
            return -1;
        }
    return 0;
}

/* s_free - everything a stage made, however far its start got (every
 * destructor takes NULL), so that a stage that cannot start leaks nothing */
static void s_free(stage_t *st)
{
    sk_trace_close(st); /* its last spans, posted once */
    if (st->people_ready)
        people_live_fini(&st->people);
    for (int d = 0; d < NDEST; d++) {
        while (st->win[d].count) {
            entry_t *e = sk_win_at(&st->win[d], 0);
            sk_blob_unref(&e->blob);
            st->win[d].head = (st->win[d].head + 1) & (st->win[d].cap - 1);
            st->win[d].count--;
        }
        free(st->win[d].v);
        zsock_destroy(&st->out[d]);
    }
    for (int i = 0; i < st->noutp; i++)
        zsock_destroy(&st->outp[i]);
    for (int k = 0; k < 2; k++)
        zsock_destroy(&st->mon[k]);
    zactor_destroy(&st->auth);
    zcert_destroy(&st->cert);
    for (size_t i = 0; i < st->nup; i++) {
        zsock_destroy(&st->up[i].push);
        free(st->up[i].seqs);
        free(st->up[i].notes);
    }
    for (size_t i = 0; i < st->ndeferred; i++) { /* unanswered: they come again after a restart */
        event_destroy(&st->deferred[i]->ev);
        free(st->deferred[i]);
    }
    zsock_destroy(&st->in);
    zsock_destroy(&st->ackin);
    journal_close(&st->journal);
    dedup_destroy(&st->dedup);
    free(st->staged);
    config_destroy(&st->config);
    free(st);
}

/* s_open - signals, the dedup memory, the journal, recovery, sockets, init */
static int s_open(stage_t *st, const journal_opts_t *jo, size_t recent_ids)
{
    char err[512];
    zsys_handler_set(NULL); /* our signals, not czmq's */
    zsys_set_linger(0);
    /* Each received message in its own block. By default libzmq decodes a
     * read into an 8 KiB buffer and hands out its messages in place, so one
     * message still queued or held keeps the whole buffer: under load that
     * was most of a stage's memory (approve: 33 MiB of them for 2 MiB of
     * events queued; heaptrack, bench/results.md's Memory section). The
     * option is libzmq's (4.3, ctx.cpp), named only in its draft API. */
    if (zmq_ctx_set(zsys_init(), STAGE_ZMQ_ZERO_COPY_RECV, 0) != 0)
        log_warn("libzmq refused ZMQ_ZERO_COPY_RECV = 0 (%s): received messages share buffers", zmq_strerror(errno));
    if (pipe2(st->wake_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        log_error("pipe: %s", strerror(errno));
        return 1;
    }
    sk_signal_pipe = st->wake_pipe[1];
    struct sigaction sa = {0};
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    for (int d = 0; d < NDEST; d++) {
        for (int i = 0; i < CONFIG_MAX_INSTANCES; i++)
            flow_init(&st->win[d].flow[i], st->resend_ms);
        atomic_store(&st->win[d].heard_ms, sk_mono_ms()); /* a consumer gets its silence allowance from now */
    }
    pthread_mutex_init(&st->append_mu, NULL);
    pthread_mutex_init(&st->pub_mu, NULL);
    pthread_mutex_init(&st->counters_mu, NULL);
    /* a link's seqs: the producer's window and what its restart re-sends (dedup.h) */
    st->recent_ids = recent_ids;
    st->dedup = dedup_new(3 * (size_t) st->max_inflight + DEDUP_LINK_CAP_EXTRA, recent_ids);
    if (!st->dedup) {
        log_error("cannot make the dedup memory (out of memory, or no random key from OpenSSL)");
        return 1;
    }
    char *jdir = config_journal_dir(st->config, st->name, st->index);
    st->journal = journal_open(jdir, jo, err, sizeof err);
    free(jdir);
    if (!st->journal) {
        log_error("%s", err);
        return 1;
    }
    if (sk_recover(st) != 0 || sk_open_sockets(st) != 0)
        return 1;
    if (st->def->people) {
        if (people_live_init(&st->people, st->config, err, sizeof err) != 0) {
            log_error("%s", err);
            return 1;
        }
        st->people_ready = true;
    }
    if (st->def->init && st->def->init(st, st->def->arg) != 0) {
        log_error("stage initialisation failed");
        return 1;
    }
    return 0;
}

/* s_start - read the config, check it, open the journal, recover, open the
 * sockets and run the stage's init: 0, or the exit status to stop with */
static int s_start(stage_t *st, const char *cfg_path)
{
    const stage_def_t *def = st->def;
    char err[512];
    st->config = config_load(cfg_path, err, sizeof err);
    if (!st->config) {
        log_error("%s", err);
        return 2;
    }
    log_init(st->inst, config_get(st->config, "payguard/log_level"), config_get(st->config, "payguard/log_format"));
    if (st->index < 0 || st->index >= config_instances(st->config, st->name)) {
        log_error("instance index %d out of range: %s/instances = %d", st->index, st->name,
                  config_instances(st->config, st->name));
        return 2;
    }
    st->next = config_next_stage(st->name);
    long seg = 0, recent_ids = 0;
    journal_opts_t jo = {0};
    if (journal_sync_parse(config_get(st->config, "payguard/journal/fsync"), &jo.sync) != 0) {
        log_error("config: payguard/journal/fsync must be always, batch or none");
        return 2;
    }
    const config_t *c = st->config; /* ranges: config.h, checked at load too */
    if (config_bounded(c, "payguard/journal/segment_bytes", &seg, err, sizeof err) ||
        config_bounded(c, "payguard/delivery/max_inflight", &st->max_inflight, err, sizeof err) ||
        config_bounded(c, "payguard/delivery/max_inflight_bytes", &st->max_inflight_bytes, err, sizeof err) ||
        config_bounded(c, "payguard/delivery/resend_ms", &st->resend_ms, err, sizeof err) ||
        config_bounded(c, "payguard/delivery/recent_ids", &recent_ids, err, sizeof err) ||
        config_bounded(c, "payguard/drain_ms", &st->drain_ms, err, sizeof err) ||
        config_bounded(st->config, "payguard/journal/min_free_mb", &st->min_free_mb, err, sizeof err)) {
        log_error("%s", err);
        return 2;
    }
    jo.segment_bytes = (size_t) seg;
    char key[64];
    snprintf(key, sizeof key, "%s/retention_s", st->name);
    if (def->retire_journal && config_bounded(st->config, key, &st->retention_s, err, sizeof err)) {
        log_error("%s", err);
        return 2;
    }
    if (s_mkdirs(st->config) != 0)
        return 1;
    if (sk_trace_open(st) != 0)
        return 78; /* EX_CONFIG */
    /* never start on state split otherwise than we route (layout.h) */
    if (route_partitioned(st->name) && layout_check(st->config, err, sizeof err) != 0) {
        log_error("%s", err);
        return 78; /* EX_CONFIG */
    }
    if (def->seal && sealkey_load(st->config, st->seal_key, err, sizeof err) != 0) {
        log_error("%s", err);
        return 78;
    }
    return s_open(st, &jo, (size_t) recent_ids);
}

/* stage_main - see stage.h */
int stage_main(int argc, char **argv, const stage_def_t *def)
{
    const char *cfg_path;
    int index, status;
    if (!config_main_opts(argc, argv, def->name, false, &cfg_path, &index, &status))
        return status;
    /* A fixed mmap threshold: blocks of 64 KiB and more (journal read
     * buffers, curl's receive buffers, big events) get their own mapping
     * and go back to the system when freed. glibc otherwise raises the
     * threshold to the largest block freed so far, after which such
     * blocks land in the brk heap, where a small long-lived allocation
     * above them keeps their pages resident (the soak: validate and
     * execute grew 4-5 MiB in their first 15 minutes, bench/results-soak.md). */
    mallopt(M_MMAP_THRESHOLD, STAGE_MMAP_THRESHOLD);
    stage_t *st = calloc(1, sizeof *st);
    assert(st);
    st->def = def;
    st->index = index;
    st->disk_free_mb = -1; /* not looked at yet */
    snprintf(st->name, sizeof st->name, "%s", def->name);
    snprintf(st->inst, sizeof st->inst, "%s.%d", def->name, index);
    log_init(st->inst, "info", NULL);
    int rc = s_start(st, cfg_path);
    if (rc == 0) {
        log_info("started pid=%d journal=%llu records next=%s", (int) getpid(),
                 (unsigned long long) journal_last_seq(st->journal), st->next ? st->next : "-");
        sdnotify_send("READY=1"); /* recovered, sockets bound, init done: systemd starts what comes After= */
        sdnotify_watchdog_init(&st->watchdog, sk_mono_ms());
        s_loop(st);
        sk_commit_turn(st);
        sk_write_watermark(st, true);
        sk_write_floors(st, true);
        sk_http_destroy(st); /* calls in flight end as cancelled, before fini frees what they point to */
        if (def->fini)
            def->fini(st, def->arg);
        journal_sync(st->journal);
        sk_write_status(st);
        log_info("stopped cleanly");
    }
    s_free(st);
    return rc;
}

/* stage_seal_key - see stage.h */
const unsigned char *stage_seal_key(const stage_t *st)
{
    return st->def->seal ? st->seal_key : NULL;
}
