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
    config_int(st->config, "payguard/delivery/sndhwm", 1, 1000000, &hwm, err, sizeof err);
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
    if (st->next && s_open_next(st) != 0)
        return -1;
    if (strcmp(st->name, "audit") != 0) {
        st->out[DEST_AUDIT] = sk_connect_push(st, "audit", 0, 1, false);
        if (!st->out[DEST_AUDIT])
            return -1;
    }
    return 0;
}
