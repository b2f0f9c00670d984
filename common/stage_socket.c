/* stage_socket - the ZeroMQ sockets: input PULL, output PUSH per destination, acks (see stage_priv.h) */
#include "stage_priv.h"

#include "curve.h"
#include "route.h"

/* sk_connect_push - see stage_priv.h */
zsock_t *sk_connect_push(stage_t *st, const char *stage, int from, int to, bool ack)
{
    zsock_t *s = zsock_new(ZMQ_PUSH);
    assert(s && from >= 0 && from < to);
    long hwm = 1000;
    char err[256];
    config_bounded(st->config, "payguard/delivery/sndhwm", &hwm, err, sizeof err); /* checked at load */
    zsock_set_sndhwm(s, (int) hwm);
    zsock_set_immediate(s, 1); /* only queue to peers that are there */
    zsock_set_linger(s, 0);
    for (int i = from; i < to && s; i++) {
        char *ep = ack ? config_ack_endpoint(st->config, stage, i) : config_input_endpoint(st->config, stage, i);
        char target[48];
        snprintf(target, sizeof target, "%s.%d", stage, i);
        /* CURVE: the server key of each instance, set before its connect (curve.h) */
        if (st->cert && curve_client(st->config, s, st->cert, target, err, sizeof err) != 0) {
            log_error("%s", err);
            zsock_destroy(&s);
        } else if (zsock_connect(s, "%s", ep) != 0) {
            log_error("cannot connect to %s: %s", ep, zmq_strerror(zmq_errno()));
            zsock_destroy(&s);
        }
        free(ep);
    }
    return s;
}

/* s_bind_pull - a PULL bound at endpoint, replacing a stale ipc file; a
 * CURVE server when the group uses CURVE */
static zsock_t *s_bind_pull(stage_t *st, const char *endpoint)
{
    if (strncmp(endpoint, "ipc://", 6) == 0)
        unlink(endpoint + 6); /* left by a killed predecessor */
    zsock_t *s = zsock_new(ZMQ_PULL);
    assert(s);
    zsock_set_rcvhwm(s, STAGE_RCVHWM);
    zsock_set_linger(s, 0);
    if (st->cert)
        curve_server(s, st->cert);
    if (zsock_bind(s, "%s", endpoint) < 0) {
        log_error("cannot bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
        zsock_destroy(&s);
        return NULL;
    }
    return s;
}

/* s_open_next - the PUSH to the next stage: one connected to every
 * instance (ZeroMQ round-robins), or for a partitioned stage one per
 * instance (route.h: each event goes to the owner of its key) */
static int s_open_next(stage_t *st)
{
    int n = config_instances(st->config, st->next);
    assert(n >= 1 && n <= CONFIG_MAX_INSTANCES);
    if (!route_partitioned(st->next)) {
        st->out[DEST_NEXT] = sk_connect_push(st, st->next, 0, n, false);
        return st->out[DEST_NEXT] ? 0 : -1;
    }
    for (int i = 0; i < n; i++) {
        st->outp[i] = sk_connect_push(st, st->next, i, i + 1, false);
        if (!st->outp[i])
            return -1;
        st->noutp = i + 1;
    }
    return 0;
}

/* sk_target - see stage_priv.h */
int sk_target(stage_t *st, const event_head_t *head, const void *env, size_t len, unsigned dest)
{
    if (!(dest & STAGE_TO_NEXT) || !st->next || !route_partitioned(st->next))
        return -1;
    if (head->case_key[0] || config_instances(st->config, st->next) == 1)
        return route_target_key(st->config, st->next, head->case_key);
    char err[256];
    event_t *ev = event_decode(env, len, err, sizeof err);
    assert(ev); /* we just encoded it */
    int t = route_target(st->config, st->next, ev);
    event_destroy(&ev);
    return t;
}

/* s_monitor - with CURVE: a PAIR that hears of every handshake sock refused
 * (a key not the group's; ZAP's verdict), read by sk_curve_refusals */
static zsock_t *s_monitor(zsock_t *sock, const char *which)
{
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://pg-refused-%s", which);
    if (zmq_socket_monitor(zsock_resolve(sock), ep, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0)
        return NULL;
    zsock_t *pair = zsock_new(ZMQ_PAIR);
    if (pair && zsock_connect(pair, "%s", ep) != 0)
        zsock_destroy(&pair);
    return pair;
}

/* sk_curve_refusals - see stage_priv.h */
void sk_curve_refusals(stage_t *st)
{
    for (int k = 0; k < 2; k++)
        for (zmsg_t *m; st->mon[k] && (m = zmsg_recv_nowait(st->mon[k]));) {
            zframe_t *ep = zmsg_last(m);
            if (ep)
                snprintf(st->refused_at, sizeof st->refused_at, "%.*s", (int) zframe_size(ep),
                         (const char *) zframe_data(ep));
            st->refused++;
            zmsg_destroy(&m);
        }
    int64_t now = sk_mono_ms();
    if (!st->refused || now - st->refused_ms < 1000)
        return;
    char why[300];
    snprintf(why, sizeof why, "%llu connection(s) to %s refused: their CURVE key is not one of the group's",
             (unsigned long long) st->refused, st->refused_at);
    log_warn("%s", why);
    stage_count(st, "payguard_curve_refused_total", NULL, NULL, st->refused);
    event_body_t *b = event_body_new();
    event_body_str(b, EK_REASON, why);
    event_body_int(b, "count", (int64_t) st->refused);
    event_body_str(b, "endpoint", st->refused_at);
    char id[EVENT_ID_MAX + 1];
    int rc = strcmp(st->name, "audit") == 0
                 ? stage_inject(st, "curve", EV_ACCESS_DENIED, "", b)
                 : stage_publish(st, "curve", EV_ACCESS_DENIED, "", b, STAGE_TO_AUDIT, id, NULL, NULL);
    event_body_destroy(&b);
    st->refused_ms = now;
    if (rc == 0) /* one record per second at most, however many were refused */
        st->refused = 0;
}

/* sk_open_sockets - input, outputs, acks per the group configuration */
int sk_open_sockets(stage_t *st)
{
    char err[512];
    if (curve_enabled(st->config)) { /* curve.h: our key pair, and whose keys we accept */
        st->cert = curve_cert(st->config, st->inst, false, err, sizeof err);
        st->auth = st->cert ? curve_auth(st->config, err, sizeof err) : NULL;
        if (!st->auth) {
            log_error("%s", err);
            return -1;
        }
    }
    char *ep = config_ack_endpoint(st->config, st->name, st->index);
    st->ackin = s_bind_pull(st, ep);
    free(ep);
    if (!st->ackin)
        return -1;
    if (strcmp(st->name, "ingest") != 0) {
        ep = config_input_endpoint(st->config, st->name, st->index);
        st->in = s_bind_pull(st, ep);
        free(ep);
        if (!st->in)
            return -1;
    }
    if (st->cert) {
        st->mon[0] = s_monitor(st->ackin, "ack");
        st->mon[1] = st->in ? s_monitor(st->in, "in") : NULL;
    }
    if (st->next && s_open_next(st) != 0)
        return -1;
    if (strcmp(st->name, "audit") != 0) {
        st->out[DEST_AUDIT] = sk_connect_push(st, "audit", 0, 1, false);
        if (!st->out[DEST_AUDIT])
            return -1;
    }
    return 0;
}
