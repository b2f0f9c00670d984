/* stage_http - a stage's outside calls: one httpc_multi engine per
 * instance, its sockets (one epoll set) and timers in the loop's poll (see
 * stage_priv.h).
 *
 * Why in the loop and not on an I/O thread: the callbacks that finish a
 * call journal what it returned and emit events, which the loop thread
 * owns; on the loop they need no locks and no hand-over queue, and the
 * engine's ordering guarantee (a call goes out in the turn after it was
 * started, after that turn's journal sync) falls out of the loop's order:
 * poll, finish calls, take input, tick, sync, send.
 */
#include "stage_priv.h"

#include "httpc_multi.h"

/* stage_observe_call - see stage.h */
void stage_observe_call(void *arg, const char *system, const char *status_class, int64_t ms)
{
    char labels[96];
    snprintf(labels, sizeof labels, "system=\"%s\",class=\"%s\"", system, status_class);
    stage_observe_ms(arg, "payguard_outside_call_seconds", labels, ms);
}

/* stage_http - see stage.h */
httpc_multi_t *stage_http(stage_t *st)
{
    if (!st->http) {
        st->http = httpc_multi_new(NULL);
        if (!st->http) {
            log_error("cannot start libcurl's multi interface");
            return NULL;
        }
        httpc_multi_set_observer(st->http, stage_observe_call, st);
        httpc_multi_set_tracer(st->http, sk_trace_current, sk_trace_call_done, st);
    }
    return st->http;
}

/* stage_http_system - see stage.h */
int stage_http_system(stage_t *st, const char *name, char *err, size_t errlen)
{
    httpc_multi_t *m = stage_http(st);
    if (!m) {
        snprintf(err, errlen, "libcurl's multi interface did not start");
        return -1;
    }
    int sys = httpc_multi_system_index(m, name);
    if (sys >= 0)
        return sys;
    long lim[4];
    if (config_outside_limits(st->config, name, lim, err, errlen) != 0)
        return -1;
    httpc_limits_t l = {.max_inflight = (int) lim[0],
                        .rate_per_s = lim[1],
                        .breaker_failures = (int) lim[2],
                        .breaker_cooldown_ms = lim[3]};
    return httpc_multi_system(m, name, &l, err, errlen);
}

/* s_grow - room for n poll entries */
static void s_grow(stage_t *st, size_t n)
{
    if (n <= st->capio)
        return;
    size_t cap = st->capio ? st->capio : 16;
    while (cap < n)
        cap *= 2;
    st->items = realloc(st->items, cap * sizeof *st->items);
    st->hfds = realloc(st->hfds, cap * sizeof *st->hfds);
    assert(st->items && st->hfds);
    st->capio = cap;
}

/* sk_poll_items - see stage_priv.h */
size_t sk_poll_items(stage_t *st, bool take_input, long *timeout)
{
    size_t nh = 0;
    s_grow(st, 3);
    if (st->http) {
        size_t want = 1; /* the engine's epoll set: httpc_multi_fds */
        s_grow(st, 3 + want);
        nh = httpc_multi_fds(st->http, st->hfds, want);
        long t = httpc_multi_timeout(st->http);
        if (t >= 0 && t < *timeout)
            *timeout = t;
    }
    zmq_pollitem_t *it = st->items;
    it[0] = (zmq_pollitem_t){zsock_resolve(st->ackin), 0, ZMQ_POLLIN, 0};
    it[1] = (zmq_pollitem_t){NULL, st->wake_pipe[0], ZMQ_POLLIN, 0};
    for (size_t i = 0; i < nh; i++)
        it[2 + i] = (zmq_pollitem_t){NULL, st->hfds[i].fd,
                                     (short) (((st->hfds[i].events & POLLIN) ? ZMQ_POLLIN : 0) |
                                              ((st->hfds[i].events & POLLOUT) ? ZMQ_POLLOUT : 0)),
                                     0};
    size_t n = 2 + nh;
    if (take_input)
        it[n++] = (zmq_pollitem_t){zsock_resolve(st->in), 0, ZMQ_POLLIN, 0};
    return n;
}

/* sk_poll_done - see stage_priv.h */
void sk_poll_done(stage_t *st, size_t nitems)
{
    if (!st->http)
        return;
    size_t nh = 0;
    for (size_t i = 2; i < nitems && st->items[i].socket == NULL; i++, nh++) {
        short r = st->items[i].revents;
        st->hfds[nh].revents = (short) (((r & ZMQ_POLLIN) ? POLLIN : 0) | ((r & ZMQ_POLLOUT) ? POLLOUT : 0) |
                                        ((r & ZMQ_POLLERR) ? POLLERR : 0));
    }
    httpc_multi_run(st->http, st->hfds, nh);
}

/* sk_http_status - see stage_priv.h */
void sk_http_status(stage_t *st, FILE *f)
{
    if (!st->http)
        return;
    for (size_t i = 0; i < httpc_multi_nsystems(st->http); i++) {
        int s = (int) i;
        stage_outside_status(st, f, httpc_multi_system_name(st->http, s), (int) httpc_multi_breaker(st->http, s),
                             httpc_multi_inflight(st->http, s), httpc_multi_queued(st->http, s),
                             httpc_multi_breaker_opened(st->http, s));
    }
}

/* stage_outside_status - see stage.h */
void stage_outside_status(stage_t *st, FILE *f, const char *system, int breaker, size_t inflight, size_t queued,
                          uint64_t opened)
{
    stage_gauge_label(st, "payguard_outside_inflight", "system", system, (int64_t) inflight);
    stage_gauge_label(st, "payguard_outside_queued", "system", system, (int64_t) queued);
    stage_gauge_label(st, "payguard_outside_breaker", "system", system, (int64_t) breaker);
    stage_gauge_label(st, "payguard_outside_breaker_opened_total", "system", system, (int64_t) opened);
    if (f)
        fprintf(f, "outside_%s=%s inflight=%zu queued=%zu\n", system, httpc_breaker_name((httpc_breaker_t) breaker),
                inflight, queued);
}

/* sk_http_destroy - see stage_priv.h */
void sk_http_destroy(stage_t *st)
{
    httpc_multi_destroy(&st->http);
    free(st->items);
    free(st->hfds);
    st->items = NULL;
    st->hfds = NULL;
    st->capio = 0;
}
