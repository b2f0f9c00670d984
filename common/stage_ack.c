/* stage_ack - acks: owed to our producers (batched per turn), and received from consumers (see stage_priv.h) */
#include "stage_priv.h"

/* s_upstream - the ack slot of a producer instance, connecting on first use */
static upstream_t *s_upstream(stage_t *st, const char *inst)
{
    for (size_t i = 0; i < st->nup; i++)
        if (strcmp(st->up[i].inst, inst) == 0)
            return &st->up[i];
    char stage[32];
    int index;
    if (config_parse_instance(inst, stage, &index) != 0 || index >= config_instances(st->config, stage)) {
        log_warn("input from unknown producer instance '%s': cannot ack it", inst);
        return NULL;
    }
    if (st->nup == STAGE_MAX_UPSTREAMS)
        return NULL;
    upstream_t *u = &st->up[st->nup];
    u->push = sk_connect_push(st, stage, index, index + 1, true);
    if (!u->push)
        return NULL;
    snprintf(u->inst, sizeof u->inst, "%s", inst);
    u->seqs = malloc(STAGE_MAX_PENDING_ACKS * sizeof *u->seqs);
    assert(u->seqs);
    u->n = 0;
    u->notes = NULL;
    u->nnotes = 0;
    st->nup++;
    return u;
}

/* s_msg_begin - a message on the ack channel: [<kind>, <our stage>, ...]
 * begun in buf, its third element for the caller to pack */
static void s_msg_begin(msgpack_sbuffer *buf, msgpack_packer *pk, const char *kind, const char *stage)
{
    msgpack_sbuffer_init(buf);
    msgpack_packer_init(pk, buf, msgpack_sbuffer_write);
    msgpack_pack_array(pk, 3);
    msgpack_pack_str_with_body(pk, kind, strlen(kind));
    msgpack_pack_str_with_body(pk, stage, strlen(stage));
}

static void s_flush_notes(stage_t *st, upstream_t *u);

/* sk_ack_later - owe the producer of ev an ack (sent after the turn's sync) */
void sk_ack_later(stage_t *st, const event_head_t *h)
{
    upstream_t *u = s_upstream(st, h->stage);
    if (!u)
        return;
    if (u->n == STAGE_MAX_PENDING_ACKS) {
        /* dropping an ack only causes a re-send, which we dedup */
        memmove(u->seqs, u->seqs + 1, (u->n - 1) * sizeof *u->seqs);
        u->n--;
    }
    u->seqs[u->n++] = h->seq;
}

/* sk_flush_acks - send owed acks: ["ack", <our stage>, [seq...]] */
void sk_flush_acks(stage_t *st)
{
    for (size_t i = 0; i < st->nup; i++) {
        upstream_t *u = &st->up[i];
        while (u->n) {
            size_t n = u->n > 4096 ? 4096 : u->n;
            msgpack_sbuffer buf;
            msgpack_packer pk;
            s_msg_begin(&buf, &pk, "ack", st->name);
            msgpack_pack_array(&pk, (uint32_t) n);
            for (size_t k = 0; k < n; k++)
                msgpack_pack_uint64(&pk, u->seqs[k]);
            int rc = zmq_send(zsock_resolve(u->push), buf.data, buf.size, ZMQ_DONTWAIT);
            msgpack_sbuffer_destroy(&buf);
            if (rc < 0)
                break; /* producer away or busy: try next turn */
            memmove(u->seqs, u->seqs + n, (u->n - n) * sizeof *u->seqs);
            u->n -= n;
        }
        if (u->nnotes)
            s_flush_notes(st, u);
    }
}

/* s_waits_to - the wait message for one producer: the inputs from it that
 * are deferred (only those not yet announced, unless all) */
static void s_waits_to(stage_t *st, upstream_t *up, bool all)
{
    uint32_t n = 0;
    for (size_t i = 0; i < st->ndeferred; i++) {
        stage_pending_t *p = st->deferred[i];
        n += p->from_producer && (all || !p->announced) && strcmp(event_head(p->ev)->stage, up->inst) == 0;
    }
    if (!n)
        return;
    msgpack_sbuffer buf;
    msgpack_packer pk;
    s_msg_begin(&buf, &pk, "wait", st->name);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < st->ndeferred; i++) {
        stage_pending_t *p = st->deferred[i];
        if (p->from_producer && (all || !p->announced) && strcmp(event_head(p->ev)->stage, up->inst) == 0)
            msgpack_pack_uint64(&pk, event_head(p->ev)->seq);
    }
    /* announced only once sent: a socket made this turn may not be
     * connected yet (immediate), and then the next turn tries again */
    bool sent = zmq_send(zsock_resolve(up->push), buf.data, buf.size, ZMQ_DONTWAIT) >= 0;
    msgpack_sbuffer_destroy(&buf);
    for (size_t i = 0; sent && i < st->ndeferred; i++) {
        stage_pending_t *p = st->deferred[i];
        if (p->from_producer && strcmp(event_head(p->ev)->stage, up->inst) == 0)
            p->announced = true;
    }
}

/* sk_send_waits - for inputs still deferred, tell their producers we are
 * working on them: ["wait", <our stage>, [seq...]]. Newly deferred ones at
 * the end of the turn that deferred them (an input that waited in our
 * queue may be near its producer's re-send timeout: flow.h), all of them a
 * few times per resend period (best effort: a lost wait only risks a
 * second worker) */
void sk_send_waits(stage_t *st)
{
    if (!st->ndeferred)
        return;
    int64_t now = sk_mono_ms();
    bool all = now - st->last_wait_ms >= st->resend_ms / 3;
    bool fresh = false;
    for (size_t i = 0; i < st->ndeferred && !all && !fresh; i++)
        fresh = st->deferred[i]->from_producer && !st->deferred[i]->announced;
    if (!all && !fresh)
        return;
    if (all)
        st->last_wait_ms = now;
    /* a producer we owe no ack yet has no slot: make it, or the waits for
     * its inputs would wait for our first ack to it (a runbook's end) */
    for (size_t i = 0; i < st->ndeferred; i++)
        if (st->deferred[i]->from_producer && !st->deferred[i]->announced &&
            !s_upstream(st, event_head(st->deferred[i]->ev)->stage))
            st->deferred[i]->announced = true; /* no way to tell that producer */
    for (size_t u = 0; u < st->nup; u++)
        s_waits_to(st, &st->up[u], all);
}

/* stage_note - see stage.h: held with the acks owed to that producer and
 * sent with them after the turn (sk_flush_acks), when the input's
 * answers are durable */
int stage_note(stage_t *st, const char *what, const char *subject, uint64_t n)
{
    assert(st->current && what && subject);
    const event_head_t *h = event_head(st->current);
    char stage[32];
    int index;
    if (config_parse_instance(h->stage, stage, &index) != 0 || strcmp(stage, st->name) == 0)
        return -1; /* our own injection: no producer to tell */
    upstream_t *u = s_upstream(st, h->stage);
    if (!u)
        return -1;
    if (!u->notes) {
        u->notes = malloc(STAGE_MAX_NOTES * sizeof *u->notes);
        assert(u->notes);
    }
    if (u->nnotes == STAGE_MAX_NOTES)
        return -1;
    note_t *note = &u->notes[u->nnotes++];
    snprintf(note->what, sizeof note->what, "%s", what);
    snprintf(note->subject, sizeof note->subject, "%s", subject);
    note->n = n;
    return 0;
}

/* s_flush_notes - the notes held for u: ["note", <our stage>, [what,
 * subject, n]] each; those the socket does not take wait for next turn */
static void s_flush_notes(stage_t *st, upstream_t *u)
{
    size_t sent = 0;
    for (; sent < u->nnotes; sent++) {
        const note_t *note = &u->notes[sent];
        msgpack_sbuffer buf;
        msgpack_packer pk;
        s_msg_begin(&buf, &pk, "note", st->name);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_str_with_body(&pk, note->what, strlen(note->what));
        msgpack_pack_str_with_body(&pk, note->subject, strlen(note->subject));
        msgpack_pack_uint64(&pk, note->n);
        int rc = zmq_send(zsock_resolve(u->push), buf.data, buf.size, ZMQ_DONTWAIT);
        msgpack_sbuffer_destroy(&buf);
        if (rc < 0)
            break;
    }
    memmove(u->notes, u->notes + sent, (u->nnotes - sent) * sizeof *u->notes);
    u->nnotes -= sent;
}

/* s_on_note - a decoded ["note", <stage>, [what, subject, n]] to the
 * stage's on_note; anything else in it is counted as bad */
static void s_on_note(stage_t *st, const msgpack_object *a)
{
    const msgpack_object *f = a[2].via.array.ptr;
    char from[32], what[STAGE_NOTE_MAX + 1], subject[STAGE_NOTE_MAX + 1];
    if (a[2].via.array.size != 3 || f[0].type != MSGPACK_OBJECT_STR || f[1].type != MSGPACK_OBJECT_STR ||
        f[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[0].via.str.size > STAGE_NOTE_MAX ||
        f[1].via.str.size > STAGE_NOTE_MAX || a[1].via.str.size >= sizeof from) {
        log_warn("dropped note message: not [what, subject, n] within %d bytes", STAGE_NOTE_MAX);
        atomic_fetch_add(&st->c_bad, 1);
        return;
    }
    snprintf(from, sizeof from, "%.*s", (int) a[1].via.str.size, a[1].via.str.ptr);
    snprintf(what, sizeof what, "%.*s", (int) f[0].via.str.size, f[0].via.str.ptr);
    snprintf(subject, sizeof subject, "%.*s", (int) f[1].via.str.size, f[1].via.str.ptr);
    if (st->def->on_note)
        st->def->on_note(st, from, what, subject, f[2].via.u64, st->def->arg);
}

/* sk_on_ack - strictly decode an ack message and apply it */
void sk_on_ack(stage_t *st, const void *data, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    const char *why = NULL;
    if (len > STAGE_ACK_MAX_BYTES)
        why = "too large";
    else if (msgpack_unpack_next(&u, data, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len)
        why = "not one msgpack value";
    else if (u.data.type != MSGPACK_OBJECT_ARRAY || u.data.via.array.size != 3)
        why = "not a 3-element array";
    msgpack_object *a = why ? NULL : u.data.via.array.ptr;
    bool wait =
        !why && a[0].type == MSGPACK_OBJECT_STR && a[0].via.str.size == 4 && memcmp(a[0].via.str.ptr, "wait", 4) == 0;
    bool note =
        !why && a[0].type == MSGPACK_OBJECT_STR && a[0].via.str.size == 4 && memcmp(a[0].via.str.ptr, "note", 4) == 0;
    if (!why && !wait && !note &&
        (a[0].type != MSGPACK_OBJECT_STR || a[0].via.str.size != 3 || memcmp(a[0].via.str.ptr, "ack", 3)))
        why = "neither an ack, a wait nor a note";
    else if (!why && (a[1].type != MSGPACK_OBJECT_STR || a[2].type != MSGPACK_OBJECT_ARRAY))
        why = "bad field types";
    int d = -1;
    if (!why) {
        size_t n = a[1].via.str.size;
        if (st->next && n == strlen(st->next) && memcmp(a[1].via.str.ptr, st->next, n) == 0)
            d = DEST_NEXT;
        else if (n == 5 && memcmp(a[1].via.str.ptr, "audit", 5) == 0)
            d = DEST_AUDIT;
        else
            why = "from a stage that is not our consumer";
    }
    if (why) {
        log_warn("dropped ack message: %s", why);
        atomic_fetch_add(&st->c_bad, 1);
        msgpack_unpacked_destroy(&u);
        return;
    }
    if (note) {
        s_on_note(st, a);
        msgpack_unpacked_destroy(&u);
        return;
    }
    int64_t now = sk_mono_ms();
    atomic_store(&st->win[d].heard_ms, now); /* the consumer is alive (stage_ready) */
    for (uint32_t i = 0; i < a[2].via.array.size; i++) {
        msgpack_object *o = &a[2].via.array.ptr[i];
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            continue;
        if (wait)
            sk_win_extend(&st->win[d], o->via.u64);
        else if (sk_win_ack(&st->win[d], o->via.u64, now))
            atomic_fetch_add(&st->c_acks, 1);
    }
    msgpack_unpacked_destroy(&u);
}
