/* test_stage - the stage skeleton's delivery promises, over its real ZeroMQ
 * sockets in a temporary directory. A child process runs stage_main as
 * "triage" instance 0 with a handler that answers each input with one
 * "triaged" event; the test plays its producer (validate.0: sends inputs,
 * receives acks) and its consumers (approve.0 and audit.0: receive what it
 * emits, ack it or not). The stage is bin/pg-stage-echo (tests/tools), run
 * from the repository root as make does:
 *   - an input is acked once what it caused is durable;
 *   - what is sent stays unacked in a window and is re-sent after resend_ms;
 *     an ack stops the re-sends;
 *   - a full window (max_inflight events, or max_inflight_bytes of them)
 *     stops taking input, and an ack lets the rest through;
 *   - after a kill -9, a restart re-sends what was never acked, same ids;
 *   - an input seen before is acked again but causes nothing new;
 *   - an input the stage defers (a runbook waiting on outside calls) gets
 *     its producer a "wait" at once, though no ack is owed to it yet;
 *   - a note (stage_note) about an input reaches its producer on the ack
 *     channel, and a note from a consumer reaches on_note; one from a
 *     stage that is not a consumer does not;
 *   - run as approve with execute partitioned over 3 instances, each answer reaches the
 *     owner of its case key (route.h), and an instance that is away holds
 *     back only its own;
 *   - under systemd it says READY=1, pings the watchdog from its loop and
 *     says STOPPING=1 on SIGTERM.
 * Waits have generous timeouts; nothing here measures speed. */
#include <criterion/criterion.h>
#include <czmq.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "event.h"
#include "route.h"
#include "stage.h"

#define RESEND_MS 300
#define WAIT_MS 15000

static char s_dir[] = "/tmp/pg-stage-XXXXXX";
static char s_cfg[300];
static config_t *s_config;
static pid_t s_child;
static zsock_t *s_in;                  /* we push inputs to triage.0 */
static zsock_t *s_acks_to_us;          /* validate.0's ack endpoint: triage's acks */
static zsock_t *s_next0;               /* the next stage's instance 0 input: our output */
static zsock_t *s_audit;               /* audit.0's input */
static zsock_t *s_ack_out;             /* triage.0's ack endpoint: our acks as approve and audit */
static const char *s_stage = "triage"; /* the stage under test: approve in the routed suite */
static const char *s_next = "approve"; /* its next stage: execute there, partitioned */
static int s_nnext = 1;                /* the next stage's instances: 3 in the routed suite */
static zsock_t *s_next_more[2];        /* its instances 1 and 2 there */
static unsigned s_id_base;             /* input n has id validate-<n + this> */
static int s_inflight_bytes;           /* max_inflight_bytes when set (the bytes suite) */
static int s_pad;                      /* bytes of padding in each answer (PG_ECHO_PAD) */

/* s_start - the stage in a fresh process (bin/pg-stage-echo: a process
 * forked with a live ZeroMQ context cannot use it) */
static void s_start(void)
{
    s_child = fork();
    cr_assert_geq(s_child, 0);
    if (s_child == 0) {
        setenv("PG_ECHO_STAGE", s_stage, 1);
        if (s_pad > 0) {
            char pad[16];
            snprintf(pad, sizeof pad, "%d", s_pad);
            setenv("PG_ECHO_PAD", pad, 1);
        }
        execl("bin/pg-stage-echo", "pg-stage-echo", "-c", s_cfg, "-i", "0", (char *) NULL);
        _exit(127);
    }
}

/* s_endpoint - a configured endpoint of instance index (caller frees) */
static char *s_endpoint(bool ack, const char *stage, int index)
{
    return ack ? config_ack_endpoint(s_config, stage, index) : config_input_endpoint(s_config, stage, index);
}

/* s_pull_at - bind a PULL where instance index of stage has its input or ack endpoint */
static zsock_t *s_pull_at(bool ack, const char *stage, int index)
{
    char *ep = s_endpoint(ack, stage, index);
    zsock_t *s = zsock_new(ZMQ_PULL);
    cr_assert_not_null(s);
    cr_assert_eq(zsock_bind(s, "%s", ep), 0, "bind %s", ep);
    zsock_set_rcvtimeo(s, WAIT_MS);
    free(ep);
    return s;
}

/* s_pull - s_pull_at instance 0 */
static zsock_t *s_pull(bool ack, const char *stage)
{
    return s_pull_at(ack, stage, 0);
}

/* s_push - connect a PUSH to stage's input or ack endpoint */
static zsock_t *s_push(bool ack, const char *stage)
{
    char *ep = s_endpoint(ack, stage, 0);
    zsock_t *s = zsock_new(ZMQ_PUSH);
    cr_assert_not_null(s);
    cr_assert_eq(zsock_connect(s, "%s", ep), 0, "connect %s", ep);
    zsock_set_sndtimeo(s, WAIT_MS);
    free(ep);
    return s;
}

static void s_setup(void)
{
    cr_assert_not_null(mkdtemp(s_dir));
    s_id_base = 0;
    snprintf(s_cfg, sizeof s_cfg, "%s/payguard.cfg", s_dir);
    FILE *f = fopen(s_cfg, "w");
    cr_assert_not_null(f);
    fprintf(
        f,
        "payguard\n    run_dir = %s/run\n    data_dir = %s/data\n    drain_ms = 500\n    delivery\n"
        "        resend_ms = %d\n        max_inflight = %d\n        max_inflight_bytes = %d\n%s\n    instances = %d\n",
        s_dir, s_dir, RESEND_MS, s_nnext > 1 || s_inflight_bytes ? 100 : 3,
        s_inflight_bytes ? s_inflight_bytes : 1 << 20, s_next, s_nnext);
    fclose(f);
    char err[256];
    s_config = config_load(s_cfg, err, sizeof err);
    cr_assert_not_null(s_config, "%s", err);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/run %s/data", s_dir, s_dir);
    cr_assert_eq(system(cmd), 0);
    setenv("PAYGUARD_LOG_LEVEL", "error", 1);
    /* the test's own ends first, so the child's connects find them */
    s_acks_to_us = s_pull(true, "validate");
    s_next0 = s_pull(false, s_next);
    for (int i = 1; i < s_nnext; i++)
        s_next_more[i - 1] = s_pull_at(false, s_next, i);
    s_audit = s_pull(false, "audit");
    s_start();
    s_in = s_push(false, s_stage);
    s_ack_out = s_push(true, s_stage);
}

/* s_stop_child - SIGTERM, then SIGKILL if it has not exited in 10 s (a
 * stage drains for drain_ms first; sanitizer builds exit slower) */
static void s_stop_child(void)
{
    if (s_child <= 0)
        return;
    kill(s_child, SIGTERM);
    for (int i = 0; i < 1000; i++) {
        if (waitpid(s_child, NULL, WNOHANG) == s_child) {
            s_child = 0;
            return;
        }
        usleep(10000);
    }
    kill(s_child, SIGKILL);
    waitpid(s_child, NULL, 0);
    s_child = 0;
}

static void s_teardown(void)
{
    s_stop_child();
    zsock_destroy(&s_in);
    zsock_destroy(&s_ack_out);
    zsock_destroy(&s_acks_to_us);
    zsock_destroy(&s_next0);
    for (int i = 0; i < 2; i++)
        zsock_destroy(&s_next_more[i]);
    zsock_destroy(&s_audit);
    config_destroy(&s_config);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    cr_assert_eq(system(cmd), 0);
}

#define TEST_EPOCH 0x5eed0001ULL /* validate.0's journal, as the test plays it */
static uint64_t s_last_floor;    /* the floor of the last event received */

/* s_encode_input - input n as validate.0 would emit it, its seq n, its id
 * validate-<n + s_id_base> (caller frees) */
static void *s_encode_input(unsigned n, size_t *len)
{
    event_head_t h = {.seq = n, .time_ms = 1700000000000LL + n};
    snprintf(h.id, sizeof h.id, "validate-%024u", n + s_id_base);
    snprintf(h.type, sizeof h.type, "validated");
    snprintf(h.case_key, sizeof h.case_key, "payout-P-%u", n);
    snprintf(h.stage, sizeof h.stage, "validate.0");
    snprintf(h.cause, sizeof h.cause, "rcpt_%u", n);
    event_body_t *b = event_body_new();
    event_body_str(b, "case_id", h.case_key);
    char err[256];
    void *data = event_encode(&h, b, len, err, sizeof err);
    event_body_destroy(&b);
    cr_assert_not_null(data, "%s", err);
    return data;
}

/* s_send_input_at - input n, with its producer's journal epoch and floor
 * (stage.h STAGE_META) as second frame */
static void s_send_input_at(unsigned n, uint64_t epoch, uint64_t floor)
{
    size_t len;
    void *data = s_encode_input(n, &len);
    unsigned char meta[STAGE_META_BYTES];
    stage_meta_encode(meta, epoch, floor);
    cr_assert_eq(zmq_send(zsock_resolve(s_in), data, len, ZMQ_SNDMORE), (int) len);
    cr_assert_eq(zmq_send(zsock_resolve(s_in), meta, sizeof meta, 0), (int) sizeof meta);
    free(data);
}

/* s_send_input - s_send_input_at with the floor at 1: nothing acked yet */
static void s_send_input(unsigned n)
{
    s_send_input_at(n, TEST_EPOCH, 1);
}

/* s_recv_head - the head of the next event on a consumer socket, false on timeout */
static bool s_recv_head(zsock_t *s, event_head_t *head, int timeout_ms)
{
    zsock_set_rcvtimeo(s, timeout_ms);
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, zsock_resolve(s), 0) < 0) {
        zmq_msg_close(&msg);
        return false;
    }
    char err[256];
    event_t *ev = event_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), err, sizeof err);
    cr_assert_not_null(ev, "the stage sent what does not decode: %s", err);
    cr_assert(zmq_msg_more(&msg), "every event comes with its producer's epoch and floor");
    cr_assert_geq(zmq_msg_recv(&msg, zsock_resolve(s), 0), 0);
    uint64_t epoch, floor;
    cr_assert_eq(stage_meta_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), &epoch, &floor), 0);
    cr_expect_neq(epoch, 0);
    cr_expect_leq(floor, event_head(ev)->seq, "the floor is never past an event still unacked");
    cr_expect_geq(floor, 1);
    s_last_floor = floor;
    zmq_msg_close(&msg);
    cr_expect_eq(event_head(ev)->kind, EV_TRIAGED);
    *head = *event_head(ev);
    event_destroy(&ev);
    return true;
}

/* s_recv_event - the next event on a consumer socket (id and journal seq), false on timeout */
static bool s_recv_event(zsock_t *s, char id[EVENT_ID_MAX + 1], uint64_t *seq, int timeout_ms)
{
    event_head_t h;
    if (!s_recv_head(s, &h, timeout_ms))
        return false;
    snprintf(id, EVENT_ID_MAX + 1, "%s", h.id);
    *seq = h.seq;
    return true;
}

/* s_recv_kind - the seqs of the next message to validate.0 if it is of
 * kind ("ack" or "wait"; count returned, 0 on timeout or another kind) */
static size_t s_recv_kind(const char *kind, uint64_t *seqs, size_t max)
{
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, zsock_resolve(s_acks_to_us), 0) < 0) {
        zmq_msg_close(&msg);
        return 0;
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    cr_assert_eq(msgpack_unpack_next(&u, zmq_msg_data(&msg), zmq_msg_size(&msg), NULL), MSGPACK_UNPACK_SUCCESS);
    msgpack_object *a = u.data.via.array.ptr;
    cr_assert_eq(u.data.via.array.size, 3);
    size_t n = 0;
    if (a[0].via.str.size == strlen(kind) && memcmp(a[0].via.str.ptr, kind, strlen(kind)) == 0) {
        cr_expect_eq(a[1].via.str.size, strlen(s_stage));
        cr_expect_eq(memcmp(a[1].via.str.ptr, s_stage, strlen(s_stage)), 0, "acks and waits name the consumer stage");
        for (uint32_t i = 0; i < a[2].via.array.size && n < max; i++)
            seqs[n++] = a[2].via.array.ptr[i].via.u64;
    }
    msgpack_unpacked_destroy(&u);
    zmq_msg_close(&msg);
    return n;
}

/* s_recv_ack - the seqs of the next ack to validate.0 (count returned, 0 on timeout) */
static size_t s_recv_ack(uint64_t *seqs, size_t max)
{
    return s_recv_kind("ack", seqs, max);
}

/* s_ack - ack seq as consumer stage (s_next or "audit") */
static void s_ack(const char *as, uint64_t seq)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "ack", 3);
    msgpack_pack_str_with_body(&pk, as, strlen(as));
    msgpack_pack_array(&pk, 1);
    msgpack_pack_uint64(&pk, seq);
    cr_assert_eq(zmq_send(zsock_resolve(s_ack_out), b.data, b.size, 0), (int) b.size);
    msgpack_sbuffer_destroy(&b);
}

TestSuite(stage, .init = s_setup, .fini = s_teardown, .timeout = 120);

Test(stage, an_input_is_acked_once_its_answer_is_durable_and_sent_to_both)
{
    s_send_input(1);
    uint64_t acked[8];
    cr_assert_eq(s_recv_ack(acked, 8), 1, "the producer gets its ack");
    cr_expect_eq(acked[0], 1);
    char id[EVENT_ID_MAX + 1], id2[EVENT_ID_MAX + 1];
    uint64_t seq, seq2;
    cr_assert(s_recv_event(s_next0, id, &seq, WAIT_MS), "the answer reaches the next stage");
    cr_assert(s_recv_event(s_audit, id2, &seq2, WAIT_MS), "and audit");
    cr_expect_str_eq(id, id2, "one event, two destinations");
    cr_expect_eq(seq, seq2);
    cr_expect_eq(strncmp(id, "triage-", 7), 0, "its id is derived from the input: %s", id);
}

Test(stage, unacked_events_are_resent_until_acked)
{
    s_send_input(1);
    char id[EVENT_ID_MAX + 1], again[EVENT_ID_MAX + 1];
    uint64_t seq, seq2;
    cr_assert(s_recv_event(s_next0, id, &seq, WAIT_MS));
    cr_assert(s_recv_event(s_next0, again, &seq2, WAIT_MS), "no ack: sent again after resend_ms");
    cr_expect_str_eq(again, id, "the same event, the same id");
    cr_expect_eq(seq2, seq);
    s_ack(s_next, seq);
    s_ack("audit", seq);
    /* drain what was in flight before the ack landed, then nothing more */
    int extra = 0;
    while (s_recv_event(s_next0, again, &seq2, 3 * RESEND_MS) && extra < 10)
        extra++;
    cr_expect_lt(extra, 3, "re-sends stop once acked (%d more after the ack)", extra);
}

/* s_take_distinct - receive the next stage's events into ids/seqs (n of
 * cap used), a re-send counted once: at most max_recv events, until want
 * new ids were seen (0: until none came for quiet_ms; the first may take
 * WAIT_MS, a stage starting under ASan). How many new ids */
static size_t s_take_distinct(char ids[][EVENT_ID_MAX + 1], uint64_t *seqs, size_t *n, size_t cap, int max_recv,
                              size_t want, int quiet_ms)
{
    char id[EVENT_ID_MAX + 1];
    uint64_t seq;
    size_t more = 0;
    for (int got = 0; got < max_recv && (!want || more < want); got++) {
        if (!s_recv_event(s_next0, id, &seq, got ? quiet_ms : WAIT_MS))
            break;
        bool seen = false;
        for (size_t i = 0; i < *n; i++)
            seen |= strcmp(ids[i], id) == 0;
        if (!seen && *n < cap) {
            snprintf(ids[*n], sizeof ids[0], "%s", id);
            seqs[(*n)++] = seq;
            more++;
        }
    }
    return more;
}

/* s_ack_all - ack ids' seqs as the next stage and as audit */
static void s_ack_all(const uint64_t *seqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        s_ack(s_next, seqs[i]);
        s_ack("audit", seqs[i]);
    }
}

/* s_ready_line - the ready= line of the stage's status file once it
 * starts with want (the file is rewritten every second), else the last one
 * read, in out */
static void s_ready_line(const char *want, char *out, size_t outlen)
{
    char path[256];
    snprintf(path, sizeof path, "%s/run/%s.0.stat", s_dir, s_stage);
    out[0] = '\0';
    for (int i = 0; i < 60 && strncmp(out, want, strlen(want)) != 0; i++) {
        FILE *f = fopen(path, "r");
        char line[512];
        while (f && fgets(line, sizeof line, f))
            if (strncmp(line, "ready=", 6) == 0)
                snprintf(out, outlen, "%s", line);
        if (f)
            fclose(f);
        if (strncmp(out, want, strlen(want)) != 0)
            zclock_sleep(100);
    }
}

Test(stage, a_full_window_stops_input_and_an_ack_lets_the_rest_through)
{
    char ready[512];
    s_ready_line("ready=yes", ready, sizeof ready);
    cr_assert_str_eq(ready, "ready=yes\n", "a stage with room in its windows is ready: %s", ready);
    for (unsigned n = 1; n <= 5; n++)
        s_send_input(n);
    /* max_inflight = 3: three distinct answers, then only re-sends of them */
    char ids[8][EVENT_ID_MAX + 1];
    uint64_t seqs[8];
    size_t distinct = 0;
    s_take_distinct(ids, seqs, &distinct, 8, 12, 0, 2 * RESEND_MS);
    cr_assert_eq(distinct, 3, "a window of 3 holds 3 unacked events (%zu seen)", distinct);
    s_ready_line("ready=no", ready, sizeof ready);
    cr_expect(strstr(ready, "ready=no: its delivery window to ") && strstr(ready, " is full (3 events"),
              "a full window is not ready, and says so: %s", ready);
    s_ack_all(seqs, distinct);
    size_t more = s_take_distinct(ids, seqs, &distinct, 8, 20, 2, WAIT_MS);
    cr_expect_eq(more, 2, "after the acks the last two inputs are answered");
    s_ack_all(seqs, distinct);
    s_ready_line("ready=yes", ready, sizeof ready);
    cr_expect_str_eq(ready, "ready=yes\n", "ready again once acknowledged: %s", ready);
}

Test(stage, a_restart_after_kill_9_resends_what_was_never_acked)
{
    s_send_input(1);
    s_send_input(2);
    char first[2][EVENT_ID_MAX + 1], id[EVENT_ID_MAX + 1];
    uint64_t seq;
    size_t n = 0;
    while (n < 2 && s_recv_event(s_next0, id, &seq, WAIT_MS))
        if (n == 0 || strcmp(first[0], id) != 0)
            snprintf(first[n++], sizeof first[0], "%s", id);
    cr_assert_eq(n, 2);
    kill(s_child, SIGKILL);
    waitpid(s_child, NULL, 0);
    s_child = 0;
    while (s_recv_event(s_next0, id, &seq, RESEND_MS)) /* what was already queued */
        ;
    s_start();
    bool again[2] = {false, false};
    for (int k = 0; k < 10 && !(again[0] && again[1]) && s_recv_event(s_next0, id, &seq, WAIT_MS); k++)
        for (size_t i = 0; i < 2; i++)
            again[i] |= strcmp(first[i], id) == 0;
    cr_expect(again[0] && again[1], "both unacked events are re-sent from the journal, with their ids");
}

Test(stage, an_input_seen_before_is_acked_again_and_causes_nothing)
{
    s_send_input(7);
    uint64_t acked[8];
    cr_assert_eq(s_recv_ack(acked, 8), 1);
    char id[EVENT_ID_MAX + 1], other[EVENT_ID_MAX + 1];
    uint64_t seq;
    cr_assert(s_recv_event(s_next0, id, &seq, WAIT_MS));
    s_ack(s_next, seq);
    s_ack("audit", seq);
    s_send_input(7); /* the producer re-sends it (our ack was "lost") */
    cr_assert_eq(s_recv_ack(acked, 8), 1, "a duplicate is acked again");
    cr_expect_eq(acked[0], 7);
    int fresh = 0;
    while (s_recv_event(s_next0, other, &seq, 3 * RESEND_MS))
        fresh += strcmp(other, id) != 0;
    cr_expect_eq(fresh, 0, "no second answer for the same input");
}

/* s_no_answer - nothing new reaches the next stage within a few resend periods */
static bool s_no_answer(void)
{
    char id[EVENT_ID_MAX + 1];
    uint64_t seq;
    return !s_recv_event(s_next0, id, &seq, 3 * RESEND_MS);
}

Test(stage, an_input_below_its_producers_floor_was_taken_even_after_a_kill_9)
{
    uint64_t acked[8], seq;
    char id[EVENT_ID_MAX + 1], first[EVENT_ID_MAX + 1];
    s_send_input_at(5, TEST_EPOCH, 1);
    cr_assert_eq(s_recv_ack(acked, 8), 1);
    cr_assert(s_recv_event(s_next0, first, &seq, WAIT_MS));
    s_ack(s_next, seq);
    s_ack("audit", seq);
    s_send_input_at(3, TEST_EPOCH, 10); /* validate.0: every seq below 10 was acked by a triage instance */
    cr_assert_eq(s_recv_ack(acked, 8), 1, "below the floor: acked as taken");
    cr_expect_eq(acked[0], 3);
    cr_expect(s_no_answer(), "and not taken again");
    usleep(2500 * 1000); /* the floor is journaled within a second */
    kill(s_child, SIGKILL);
    waitpid(s_child, NULL, 0);
    s_start();
    s_send_input_at(8, TEST_EPOCH, 1); /* validate.0 restarted from an older watermark */
    cr_assert_eq(s_recv_ack(acked, 8), 1);
    cr_expect_eq(acked[0], 8, "8 < 10: the restarted stage still knows the floor");
    s_send_input_at(5, TEST_EPOCH, 1);
    cr_assert_eq(s_recv_ack(acked, 8), 1, "5 was taken before the kill ('I')");
    cr_expect_eq(acked[0], 5);
    while (s_recv_event(s_next0, id, &seq, 3 * RESEND_MS)) /* a re-send of 5's answer, if its ack was not journaled */
        cr_expect_str_eq(id, first, "no new answer to 5");
    s_send_input_at(12, TEST_EPOCH, 1);
    cr_assert_eq(s_recv_ack(acked, 8), 1);
    cr_expect_eq(acked[0], 12);
    cr_expect(s_recv_event(s_next0, id, &seq, WAIT_MS), "12 is new: answered");
}

Test(stage, another_epoch_of_the_producer_is_another_journal)
{
    uint64_t acked[8], seq;
    char id[EVENT_ID_MAX + 1];
    s_send_input_at(4, TEST_EPOCH, 1);
    cr_assert_eq(s_recv_ack(acked, 8), 1);
    cr_assert(s_recv_event(s_next0, id, &seq, WAIT_MS));
    s_ack(s_next, seq);
    s_send_input_at(4, TEST_EPOCH, 1);
    cr_assert_eq(s_recv_ack(acked, 8), 1);
    cr_expect(s_no_answer(), "the same epoch: a duplicate");
    /* validate.0's journal was removed and started again: its seq 4 is
     * another input, with another id (a new receipt's) */
    s_id_base = 1000;
    s_send_input_at(4, TEST_EPOCH + 1, 1);
    cr_assert_eq(s_recv_ack(acked, 8), 1);
    cr_expect_not(s_no_answer(), "a new epoch: not mistaken for the old seq 4");
}

Test(stage, the_floor_it_sends_is_its_lowest_unacked_event)
{
    uint64_t acked[8], s1, s2, s3;
    char id[EVENT_ID_MAX + 1];
    s_send_input(1);
    cr_assert_eq(s_recv_ack(acked, 8), 1);
    cr_assert(s_recv_event(s_next0, id, &s1, WAIT_MS));
    cr_expect_eq(s_last_floor, s1, "nothing acked yet: the floor is the event itself");
    s_send_input(2);
    cr_assert_eq(s_recv_ack(acked, 8), 1);
    cr_assert(s_recv_event(s_next0, id, &s2, WAIT_MS));
    cr_expect_eq(s_last_floor, s1, "%llu still unacked", (unsigned long long) s1);
    s_ack(s_next, s1);
    s_ack(s_next, s2);
    usleep(300 * 1000);
    s_send_input(3);
    cr_assert_eq(s_recv_ack(acked, 8), 1);
    bool got = false;
    while (!got && s_recv_event(s_next0, id, &s3, WAIT_MS))
        got = s3 > s2; /* skip re-sends */
    cr_assert(got);
    cr_expect_gt(s_last_floor, s2, "both acked: the floor moved past them");
}

Test(stage, a_replayed_event_from_before_this_journal_is_taken_to_rebuild_it)
{
    /* this journal is new (as after a loss) while validate.0 has long been
     * acknowledged up to 40: payguard replay --rebuild re-feeds the events
     * below that, which only the lost journal had taken */
    uint64_t acked[8], seq;
    char id[EVENT_ID_MAX + 1];
    s_send_input_at(50, TEST_EPOCH, 40);
    cr_assert_eq(s_recv_ack(acked, 8), 1);
    cr_assert(s_recv_event(s_next0, id, &seq, WAIT_MS));
    s_ack(s_next, seq);
    s_ack("audit", seq);
    s_send_input_at(60, TEST_EPOCH, 55);
    cr_assert_eq(s_recv_ack(acked, 8), 1);
    cr_assert(s_recv_event(s_next0, id, &seq, WAIT_MS));
    s_ack(s_next, seq);
    s_ack("audit", seq);
    s_send_input_at(11, TEST_EPOCH, 0); /* replayed (not to rebuild): below the floor */
    cr_assert_eq(s_recv_ack(acked, 8), 1);
    cr_expect(s_no_answer(), "a plain replay below the floor: taken (by this journal's past, or a sibling)");
    s_send_input_at(45, TEST_EPOCH, STAGE_META_REBUILD); /* acknowledged since this journal began */
    cr_assert_eq(s_recv_ack(acked, 8), 1);
    cr_expect(s_no_answer(), "45 was taken by this journal's life: a duplicate");
    s_send_input_at(10, TEST_EPOCH, STAGE_META_REBUILD); /* from before this journal */
    cr_assert_eq(s_recv_ack(acked, 8), 1);
    cr_expect_eq(acked[0], 10);
    cr_assert(s_recv_event(s_next0, id, &seq, WAIT_MS), "10 is rebuilt: answered");
    s_ack(s_next, seq);
    s_ack("audit", seq);
    s_send_input_at(10, TEST_EPOCH, STAGE_META_REBUILD);
    cr_assert_eq(s_recv_ack(acked, 8), 1);
    cr_expect(s_no_answer(), "replayed twice: the second is a duplicate");
}

Test(stage, an_event_of_one_frame_is_known_by_its_id_only)
{
    uint64_t acked[8], seq;
    char id[EVENT_ID_MAX + 1];
    s_send_input_at(20, TEST_EPOCH, 10); /* validate.0: everything below 10 acked */
    cr_assert_eq(s_recv_ack(acked, 8), 1);
    cr_assert(s_recv_event(s_next0, id, &seq, WAIT_MS));
    s_ack(s_next, seq);
    s_ack("audit", seq);
    /* one frame, claiming validate.0's seq 3: below the floor, but without
     * the producer's epoch its claimed position proves nothing either way */
    s_id_base = 500;
    size_t len;
    void *data = s_encode_input(3, &len);
    cr_assert_eq(zmq_send(zsock_resolve(s_in), data, len, 0), (int) len);
    cr_assert_eq(s_recv_ack(acked, 8), 1);
    cr_expect_eq(acked[0], 3);
    cr_expect(s_recv_event(s_next0, id, &seq, WAIT_MS), "taken: answered");
    s_ack(s_next, seq);
    s_ack("audit", seq);
    cr_assert_eq(zmq_send(zsock_resolve(s_in), data, len, 0), (int) len);
    cr_assert_eq(s_recv_ack(acked, 8), 1);
    cr_expect(s_no_answer(), "the same id again: a duplicate");
    free(data);
}

Test(stage, a_second_frame_that_is_not_epoch_and_floor_is_refused)
{
    uint64_t acked[8];
    size_t len;
    void *data = s_encode_input(9, &len);
    cr_assert_eq(zmq_send(zsock_resolve(s_in), data, len, ZMQ_SNDMORE), (int) len);
    cr_assert_eq(zmq_send(zsock_resolve(s_in), "junk", 4, 0), 4);
    free(data);
    s_send_input(10); /* a good one after it still passes */
    cr_assert_eq(s_recv_ack(acked, 8), 1);
    cr_expect_eq(acked[0], 10, "9 was refused, not acked");
}

/* the bytes suite: room for 100 events, but 64 KiB of them, and each
 * answer carries 20,000 bytes of padding */
static void s_setup_bytes(void)
{
    s_inflight_bytes = 65536;
    s_pad = 20000;
    s_setup();
}

static void s_teardown_bytes(void)
{
    s_teardown();
    s_inflight_bytes = 0;
    s_pad = 0;
}

TestSuite(stage_bytes, .init = s_setup_bytes, .fini = s_teardown_bytes, .timeout = 120);

Test(stage_bytes, a_window_full_of_bytes_stops_input_and_an_ack_lets_the_rest_through)
{
    for (unsigned n = 1; n <= 8; n++)
        s_send_input(n);
    /* three answers of ~20 KB (60 KB) leave room under 64 KiB, the fourth
     * fills it: four distinct answers, then only re-sends of them, though
     * max_inflight (100) would take all eight */
    char ids[8][EVENT_ID_MAX + 1];
    uint64_t seqs[8];
    size_t distinct = 0;
    s_take_distinct(ids, seqs, &distinct, 8, 16, 0, 2 * RESEND_MS);
    cr_assert_eq(distinct, 4, "a window of 64 KiB holds 4 answers of 20 KB (%zu seen)", distinct);
    s_ack_all(seqs, distinct);
    size_t more = s_take_distinct(ids, seqs, &distinct, 8, 40, 4, WAIT_MS);
    cr_expect_eq(more, 4, "after the acks the other four inputs are answered (%zu)", more);
}

/* the routed suite: the stage runs as approve, and execute has 3
 * instances, so its answers are partitioned by case key */
static void s_setup_routed(void)
{
    s_stage = "approve";
    s_next = "execute";
    s_nnext = 3;
    s_setup();
}

TestSuite(stage_routed, .init = s_setup_routed, .fini = s_teardown, .timeout = 120);

/* s_owner - the execute instance that owns input n's case (route.h) */
static int s_owner(unsigned n)
{
    char key[64];
    snprintf(key, sizeof key, "payout-P-%u", n);
    return route_target_key(s_config, "execute", key);
}

/* s_collect - receive on execute.i until want more distinct inputs were
 * answered or wait_ms passed with nothing; each must be owned by i. Counts
 * per instance into got[] (a re-send counts once). */
static void s_collect(int got[3], int want, int wait_ms)
{
    static bool seen[64];
    zsock_t *socks[3] = {s_next0, s_next_more[0], s_next_more[1]};
    int total = 0, idle = 0;
    while (total < want && idle < wait_ms / 50) {
        bool any = false;
        for (int i = 0; i < 3; i++) {
            event_head_t h;
            if (!socks[i] || !s_recv_head(socks[i], &h, 50))
                continue;
            unsigned n = 0;
            cr_assert_eq(sscanf(h.case_key, "payout-P-%u", &n), 1, "%s", h.case_key);
            cr_assert_eq(s_owner(n), i, "%s reached execute.%d, not its owner execute.%d", h.case_key, i, s_owner(n));
            s_ack(s_next, h.seq);
            s_ack("audit", h.seq);
            any = true;
            if (n < 64 && !seen[n]) {
                seen[n] = true;
                got[i]++;
                total++;
            }
        }
        idle = any ? 0 : idle + 1;
    }
}

Test(stage_routed, each_answer_reaches_the_owner_of_its_case)
{
    int want[3] = {0, 0, 0}, got[3] = {0, 0, 0};
    for (unsigned n = 1; n <= 60; n++) {
        s_send_input(n);
        want[s_owner(n)]++;
    }
    cr_assert(want[0] && want[1] && want[2], "the 60 keys fall on every instance");
    s_collect(got, 60, WAIT_MS);
    for (int i = 0; i < 3; i++)
        cr_expect_geq(got[i], want[i], "execute.%d: %d of its %d", i, got[i], want[i]);
}

Test(stage_routed, an_instance_away_holds_back_only_its_own)
{
    zsock_destroy(&s_next_more[1]); /* execute.2 stops */
    usleep(200 * 1000);
    int want[3] = {0, 0, 0}, got[3] = {0, 0, 0};
    for (unsigned n = 1; n <= 60; n++) {
        s_send_input(n);
        want[s_owner(n)]++;
    }
    s_collect(got, want[0] + want[1], WAIT_MS);
    cr_assert_geq(got[0], want[0], "execute.0 gets its %d while execute.2 is away (%d)", want[0], got[0]);
    cr_assert_geq(got[1], want[1], "execute.1 gets its %d while execute.2 is away (%d)", want[1], got[1]);
    s_next_more[1] = s_pull_at(false, "execute", 2); /* back */
    s_collect(got, want[2], WAIT_MS);
    cr_expect_geq(got[2], want[2], "execute.2's %d arrive once it is back (%d)", want[2], got[2]);
}

static void s_setup_defer(void)
{
    setenv("PG_ECHO_DEFER", "1", 1);
    s_setup();
    unsetenv("PG_ECHO_DEFER");
}

TestSuite(stage_defer, .init = s_setup_defer, .fini = s_teardown, .timeout = 120);

/* the stage has never acked validate.0 (nothing it took is finished), so
 * it had no socket to validate.0 yet: the wait must not wait for the first
 * ack (a runbook's end under load: seconds, and meanwhile its producer
 * re-sends everything to it) */
Test(stage_defer, a_deferred_input_gets_a_wait_before_any_ack_is_owed)
{
    s_send_input(1);
    s_send_input(2);
    uint64_t seqs[8];
    bool waited[3] = {false, false, false};
    for (int m = 0; m < 4 && !(waited[1] && waited[2]); m++) {
        size_t n = s_recv_kind("wait", seqs, 8);
        cr_assert_gt(n, 0, "validate.0 hears a wait for what the stage holds (no wait in %d ms)", WAIT_MS);
        for (size_t i = 0; i < n; i++)
            if (seqs[i] == 1 || seqs[i] == 2)
                waited[seqs[i]] = true;
    }
    cr_assert(waited[1] && waited[2], "both inputs are announced");
}

static char s_notes[300];

static void s_setup_note(void)
{
    char dir[] = "/tmp/pg-notes-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    snprintf(s_notes, sizeof s_notes, "%s/notes", dir);
    setenv("PG_ECHO_NOTE", s_notes, 1);
    s_setup();
    unsetenv("PG_ECHO_NOTE");
}

static void s_teardown_note(void)
{
    s_teardown();
    unlink(s_notes);
    *strrchr(s_notes, '/') = '\0';
    rmdir(s_notes);
}

/* s_note_as - send ["note", as, [what, subject, n]] to the stage */
static void s_note_as(const char *as, const char *what, const char *subject, uint64_t n)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "note", 4);
    msgpack_pack_str_with_body(&pk, as, strlen(as));
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, what, strlen(what));
    msgpack_pack_str_with_body(&pk, subject, strlen(subject));
    msgpack_pack_uint64(&pk, n);
    cr_assert_eq(zmq_send(zsock_resolve(s_ack_out), b.data, b.size, 0), (int) b.size);
    msgpack_sbuffer_destroy(&b);
}

TestSuite(stage_note, .init = s_setup_note, .fini = s_teardown_note, .timeout = 120);

Test(stage_note, a_note_reaches_the_producer_of_the_input_it_is_about)
{
    s_send_input(7);
    bool noted = false;
    for (int m = 0; m < 4 && !noted; m++) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        cr_assert_geq(zmq_msg_recv(&msg, zsock_resolve(s_acks_to_us), 0), 0, "validate.0 hears from the stage");
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        cr_assert_eq(msgpack_unpack_next(&u, zmq_msg_data(&msg), zmq_msg_size(&msg), NULL), MSGPACK_UNPACK_SUCCESS);
        msgpack_object *a = u.data.via.array.ptr;
        if (a[0].via.str.size == 4 && memcmp(a[0].via.str.ptr, "note", 4) == 0) {
            noted = true;
            cr_assert_eq(a[2].type, MSGPACK_OBJECT_ARRAY);
            msgpack_object *f = a[2].via.array.ptr;
            cr_assert_eq(a[2].via.array.size, 3);
            cr_expect_eq(f[0].via.str.size, 8);
            cr_expect_eq(memcmp(f[0].via.str.ptr, "rejected", 8), 0);
            cr_expect_eq(f[1].via.str.size, strlen("payout-P-7"));
            cr_expect_eq(memcmp(f[1].via.str.ptr, "payout-P-7", f[1].via.str.size), 0, "the subject as noted");
            cr_expect_eq(f[2].via.u64, 7, "the number as noted");
            cr_expect_eq(memcmp(a[1].via.str.ptr, s_stage, strlen(s_stage)), 0, "the note names the consumer");
        }
        msgpack_unpacked_destroy(&u);
        zmq_msg_close(&msg);
    }
    cr_assert(noted, "a note came with the ack");
}

Test(stage_note, notes_from_consumers_reach_on_note_and_others_do_not)
{
    s_note_as("execute", "rejected", "198.51.100.1", 5); /* not triage's consumer: dropped */
    s_note_as(s_next, "rejected", "198.51.100.2", 9);
    s_note_as("audit", "other", "x", 1);
    char text[512] = "";
    for (int i = 0; i < 1500; i++) { /* the stage appends as it reads them */
        FILE *f = fopen(s_notes, "r");
        size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
        text[n] = '\0';
        if (f)
            fclose(f);
        if (strstr(text, "audit other"))
            break;
        usleep(10000);
    }
    char want[100];
    snprintf(want, sizeof want, "%s rejected 198.51.100.2 9\n", s_next);
    cr_expect_not_null(strstr(text, want), "the consumer's note, whole: %s", text);
    cr_expect_not_null(strstr(text, "audit other x 1\n"), "audit is a consumer too: %s", text);
    cr_expect_null(strstr(text, "198.51.100.1"), "a stage that is not a consumer is not heard: %s", text);
}

/* under systemd (Type=notify, WatchdogSec=): the stage says READY=1 once it
 * runs, pings WATCHDOG=1 from its loop at half of WATCHDOG_USEC, and says
 * STOPPING=1 when SIGTERM starts its drain (common/sdnotify.h) */
static int s_notify_fd = -1;

static void s_setup_notify(void)
{
    char name[64];
    snprintf(name, sizeof name, "@pg-stage-notify-%d", (int) getpid());
    s_notify_fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    cr_assert_geq(s_notify_fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path + 1, name + 1, strlen(name) - 1);
    cr_assert_eq(
        bind(s_notify_fd, (struct sockaddr *) &sa, (socklen_t) (offsetof(struct sockaddr_un, sun_path) + strlen(name))),
        0);
    struct timeval tv = {.tv_sec = WAIT_MS / 1000};
    setsockopt(s_notify_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setenv("NOTIFY_SOCKET", name, 1); /* the child inherits them, as from systemd */
    setenv("WATCHDOG_USEC", "200000", 1);
    s_setup();
}

static void s_teardown_notify(void)
{
    s_teardown();
    close(s_notify_fd);
}

/* s_notified - the next notification, "" if none came in WAIT_MS */
static const char *s_notified(void)
{
    static char buf[256];
    ssize_t n = recv(s_notify_fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

TestSuite(stage_notify, .init = s_setup_notify, .fini = s_teardown_notify, .timeout = 120);

Test(stage_notify, ready_then_watchdog_pings_then_stopping)
{
    cr_assert_str_eq(s_notified(), "READY=1", "the first notification: it runs");
    int64_t t0 = zclock_mono();
    cr_expect_str_eq(s_notified(), "WATCHDOG=1");
    cr_expect_str_eq(s_notified(), "WATCHDOG=1");
    int64_t took = zclock_mono() - t0;
    cr_expect(took >= 150 && took < 2000, "two pings 100 ms apart (WATCHDOG_USEC 200 ms): %lld ms", (long long) took);
    kill(s_child, SIGTERM);
    const char *n = s_notified();
    for (int i = 0; i < 100 && strcmp(n, "WATCHDOG=1") == 0; i++) /* pings sent before it saw the signal */
        n = s_notified();
    cr_expect_str_eq(n, "STOPPING=1", "SIGTERM: it says it is stopping");
}

Test(stage, a_status_file_read_for_readiness)
{
    char why[64];
    cr_expect_eq(stage_status_ready("pid=7\nin=1\nready=yes\n", 7, why, sizeof why), STAGE_READY);
    cr_expect_str_eq(why, "");
    cr_expect_eq(stage_status_ready("pid=7\nready=no: disk nearly full\nin=1\n", 7, why, sizeof why), STAGE_NOT_READY);
    cr_expect_str_eq(why, "disk nearly full");
    cr_expect_eq(stage_status_ready("pid=6\nready=yes\n", 7, why, sizeof why), STAGE_STARTING,
                 "an earlier process's file says nothing of this one");
    cr_expect_eq(stage_status_ready("pid=7\nin=0\n", 7, why, sizeof why), STAGE_STARTING, "no ready line yet");
    cr_expect_eq(stage_status_ready("", 7, why, sizeof why), STAGE_STARTING);
}
