/* peers - approve's instances answer as one approvals API.
 *
 * With approve/instances > 1 each instance holds the cases it owns
 * (common/route.h: by case key), and every instance accepts on the one
 * approvals port (the master's socket, common/listenfd.h). A request
 * reaches any of them; the one it reaches authenticates the person, then:
 *   - a request about one case (GET /approvals/<case>, POST
 *     /approvals/<case>/decisions, POST /reviews/<case>/retry|close) is
 *     passed on to the owner's own listener, approve/peer_bind port
 *     approve/peer_port + <owner's index>, with the person's token and
 *     address, and the console's when the person came through it
 *     (X-Payguard-Client: <address>;via=<console>, common/relay.h), and
 *     the owner's answer is the answer;
 *   - GET /approvals gathers every instance's list and answers with all of
 *     it, newest first; if an instance does not answer, the list would be
 *     incomplete, so the answer is 502 naming it.
 * A request from a peer is never passed on again. One attempt each: a
 * decision is not sent twice (the person may retry; a repeat is refused by
 * segregation of duties, never recorded twice).
 *
 * Who a request came from (peers_client): the peer listener is believed
 * (it is the instances' own, on approve/peer_bind); on the public port an
 * X-Payguard-Client counts only with the console's seal of the address and
 * the request's Authorization (relay.h): the console passes the person's
 * address on that way, and nobody else holds its key.
 */
#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "approve.h"
#include "httpc.h"
#include "httpd.h"
#include "listenfd.h"
#include "log.h"
#include "relay.h"
#include "route.h"
#include "sealkey.h"

#define PEERS_TIMEOUT_MS 5000

/* peers_owner - see approve.h */
int peers_owner(const approve_t *a, const char *case_id)
{
    return route_target_key(stage_config(a->st), "approve", case_id);
}

/* peers_relay_init - see approve.h */
int peers_relay_init(approve_t *a, char *err, size_t errlen)
{
    const config_t *c = stage_config(a->st);
    a->relay_on = strcmp(config_get(c, "console/enabled"), "yes") == 0;
    if (!a->relay_on)
        return 0;
    char *path = config_expand(c, config_get(c, "console/relay_key_file"), "console", 0);
    int rc = sealkey_file(path, "relay key (console/relay_key_file)", a->relay_key, err, errlen);
    free(path);
    return rc;
}

/* peers_client - see approve.h */
void peers_client(approve_t *a, struct MHD_Connection *conn, bool via_peer, char client[RELAY_ADDR_MAX],
                  char via[RELAY_ADDR_MAX])
{
    char tcp[RELAY_ADDR_MAX];
    httpd_peer(conn, tcp, sizeof tcp);
    snprintf(client, RELAY_ADDR_MAX, "%s", tcp);
    via[0] = '\0';
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, RELAY_HEADER);
    if (!h)
        return;
    relay_t r;
    bool parsed = relay_parse(h, &r) == 0;
    if (via_peer && parsed) { /* an instance of ours says so */
        snprintf(client, RELAY_ADDR_MAX, "%s", r.client);
        snprintf(via, RELAY_ADDR_MAX, "%s", r.via);
    } else if (!via_peer && parsed && a->relay_on && !r.via[0] &&
               relay_check(a->relay_key, &r, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"))) {
        snprintf(client, RELAY_ADDR_MAX, "%s", r.client); /* the console, for this person's request */
        snprintf(via, RELAY_ADDR_MAX, "%s", tcp);
    } else {
        stage_count(a->st, "payguard_approve_client_claims_ignored_total", NULL, NULL, 1);
        log_debug("%s from %s ignored: %s", RELAY_HEADER, tcp,
                  via_peer || parsed ? "not sealed by the console" : "malformed");
    }
}

/* s_client - a client for instance n, as the person (their bearer token),
 * with their address and the console's (via, "" if none) */
static httpc_t *s_client(approve_t *a, int n, struct MHD_Connection *conn, const char *client, const char *via)
{
    char base[128];
    snprintf(base, sizeof base, "http://%s:%ld", a->peer_bind, a->peer_port + n);
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    const char *token = auth && strncmp(auth, "Bearer ", 7) == 0 ? auth + 7 : NULL;
    httpc_t *h = httpc_new(base, token, PEERS_TIMEOUT_MS);
    relay_t r = {.client = ""};
    snprintf(r.client, sizeof r.client, "%s", client);
    snprintf(r.via, sizeof r.via, "%s", via);
    char value[RELAY_VALUE_MAX];
    relay_format(&r, value);
    if (h && httpc_set_header(h, RELAY_HEADER, value) != 0)
        httpc_destroy(&h);
    return h;
}

/* peers_forward - see approve.h */
enum MHD_Result peers_forward(approve_t *a, struct MHD_Connection *conn, int owner, const char *method,
                              const char *prefix, const char *case_id, const char *suffix, const char *body,
                              const char *client, const char *via)
{
    httpc_t *h = s_client(a, owner, conn, client, via);
    char *esc = httpc_escape(case_id);
    size_t n = strlen(prefix) + strlen(esc) + strlen(suffix) + 1;
    char *path = malloc(n);
    assert(h && path);
    snprintf(path, n, "%s%s%s", prefix, esc, suffix);
    httpc_resp_t resp = {0};
    int rc = httpc_do(h, method, path, body, NULL, &resp);
    free(path);
    free(esc);
    httpc_destroy(&h);
    stage_count(a->st, "payguard_approve_forwarded_total", "status", rc == 0 ? "answered" : "failed", 1);
    if (rc != 0 || !resp.body) {
        char why[400];
        snprintf(why, sizeof why, "approve.%d, which holds this case, did not answer: %s", owner,
                 rc != 0 ? resp.error : "an empty answer");
        httpc_resp_free(&resp);
        return httpd_error(conn, MHD_HTTP_BAD_GATEWAY, why);
    }
    char *text = resp.body;
    resp.body = NULL;
    unsigned status = (unsigned) resp.status;
    httpc_resp_free(&resp);
    return httpd_reply_text(conn, status, text);
}

/* s_newest_first - qsort order of approvals: created_ms descending */
static int s_newest_first(const void *x, const void *y)
{
    json_int_t a = json_integer_value(json_object_get(*(json_t *const *) x, "created_ms"));
    json_int_t b = json_integer_value(json_object_get(*(json_t *const *) y, "created_ms"));
    return a < b ? 1 : a > b ? -1 : 0;
}

/* peers_list - see approve.h */
int peers_list(approve_t *a, struct MHD_Connection *conn, const char *status, const char *client, json_t **list,
               char *err, size_t errlen)
{
    int self = stage_index(a->st), n = config_instances(stage_config(a->st), "approve");
    for (int i = 0; i < n; i++) {
        if (i == self)
            continue;
        httpc_t *h = s_client(a, i, conn, client, "");
        char path[64];
        snprintf(path, sizeof path, "/approvals?status=%s", status);
        httpc_resp_t resp = {0};
        int rc = httpc_do(h, "GET", path, NULL, NULL, &resp);
        httpc_destroy(&h);
        json_t *j = rc == 0 && resp.status == 200 ? json_loads(resp.body, 0, NULL) : NULL;
        json_t *items = json_object_get(j, "approvals");
        bool ok = json_is_array(items);
        if (ok)
            json_array_extend(*list, items);
        else if (rc != 0)
            snprintf(err, errlen, "approve.%d did not answer (%s): the list would be incomplete", i, resp.error);
        else
            snprintf(err, errlen, "approve.%d answered %ld, not its approvals: the list would be incomplete", i,
                     resp.status);
        json_decref(j);
        httpc_resp_free(&resp);
        if (!ok)
            return -1;
    }
    size_t k = json_array_size(*list);
    json_t **v = malloc((k ? k : 1) * sizeof *v);
    assert(v);
    for (size_t i = 0; i < k; i++)
        v[i] = json_incref(json_array_get(*list, i));
    qsort(v, k, sizeof *v, s_newest_first);
    json_array_clear(*list);
    for (size_t i = 0; i < k; i++)
        json_array_append_new(*list, v[i]);
    free(v);
    return 0;
}

/* peers_start - see approve.h */
int peers_start(approve_t *a)
{
    const config_t *c = stage_config(a->st);
    char err[256];
    int n = config_instances(c, "approve");
    snprintf(a->peer_bind, sizeof a->peer_bind, "%s", config_get(c, "approve/peer_bind"));
    if (config_int(c, "approve/peer_port", 1, 65535 - (n - 1), &a->peer_port, err, sizeof err) != 0) {
        log_error("%s", err);
        return -1;
    }
    if (n == 1)
        return 0; /* nobody to pass anything on */
    long port = a->peer_port + stage_index(a->st);
    int fd = listenfd_bind(a->peer_bind, port, err, sizeof err);
    if (fd >= 0)
        a->peer_httpd = api_serve(a, fd, true, err, sizeof err);
    if (!a->peer_httpd) {
        log_error("config: approve/peer_bind, peer_port: cannot serve the other instances on %s:%ld: %s", a->peer_bind,
                  port, err);
        return -1;
    }
    log_info("requests for the cases this instance owns, from the other instances: http://%s:%ld", a->peer_bind, port);
    return 0;
}
