/* stage_socket - the ZeroMQ sockets: input PULL, output PUSH per destination, acks (see stage_priv.h) */
#include "stage_priv.h"

#include "route.h"

/* sk_connect_push - a PUSH connected to every endpoint given */
zsock_t *sk_connect_push(stage_t *st, char **endpoints, int n)
{
    zsock_t *s = zsock_new(ZMQ_PUSH);
    assert(s);
    long hwm = 1000;
    char err[128];
    config_int(st->config, "payguard/delivery/sndhwm", 1, 1000000, &hwm, err, sizeof err);
    zsock_set_sndhwm(s, (int) hwm);
    zsock_set_immediate(s, 1); /* only queue to peers that are there */
    zsock_set_linger(s, 0);
    for (int i = 0; i < n; i++)
        if (zsock_connect(s, "%s", endpoints[i]) != 0) {
            log_error("cannot connect to %s: %s", endpoints[i], zmq_strerror(zmq_errno()));
            zsock_destroy(&s);
            return NULL;
        }
    return s;
}

/* s_bind_pull - a PULL bound at endpoint, replacing a stale ipc file */
static zsock_t *s_bind_pull(const char *endpoint)
{
    if (strncmp(endpoint, "ipc://", 6) == 0)
        unlink(endpoint + 6); /* left by a killed predecessor */
    zsock_t *s = zsock_new(ZMQ_PULL);
    assert(s);
    zsock_set_rcvhwm(s, STAGE_RCVHWM);
    zsock_set_linger(s, 0);
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
    char *eps[CONFIG_MAX_INSTANCES];
    assert(n >= 1 && n <= CONFIG_MAX_INSTANCES);
    for (int i = 0; i < n; i++)
        eps[i] = config_input_endpoint(st->config, st->next, i);
    int rc = 0;
    if (route_partitioned(st->next)) {
        for (int i = 0; i < n && rc == 0; i++) {
            st->outp[i] = sk_connect_push(st, &eps[i], 1);
            rc = st->outp[i] ? 0 : -1;
            st->noutp = st->outp[i] ? i + 1 : st->noutp;
        }
    } else {
        st->out[DEST_NEXT] = sk_connect_push(st, eps, n);
        rc = st->out[DEST_NEXT] ? 0 : -1;
    }
    for (int i = 0; i < n; i++)
        free(eps[i]);
    return rc;
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
    char *ep = config_ack_endpoint(st->config, st->name, st->index);
    st->ackin = s_bind_pull(ep);
    free(ep);
    if (!st->ackin)
        return -1;
    if (strcmp(st->name, "ingest") != 0) {
        ep = config_input_endpoint(st->config, st->name, st->index);
        st->in = s_bind_pull(ep);
        free(ep);
        if (!st->in)
            return -1;
    }
    if (st->next && s_open_next(st) != 0)
        return -1;
    if (strcmp(st->name, "audit") != 0) {
        char *eps[1] = {config_input_endpoint(st->config, "audit", 0)};
        st->out[DEST_AUDIT] = sk_connect_push(st, eps, 1);
        free(eps[0]);
        if (!st->out[DEST_AUDIT])
            return -1;
    }
    return 0;
}
