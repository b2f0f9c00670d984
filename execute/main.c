/*++
 * NAME
 *	execute - runbooks, exactly once
 * SYNOPSIS
 *	execute [-c CONFIG] [-i INDEX]	(started by `payguard up`)
 * DESCRIPTION
 *	The only stage that changes other systems: runs the fixed runbook of an
 *	approved case, each step exactly once.
 *
 *	This release: "notice" events (Adaptive Cards from approve) are posted
 *	to the Teams Workflows URL (outside/teams) as CONTRACT.md §2.5 says,
 *	with retries; the outcome is recorded as a "step" event. Every other
 *	input (approved, denied) is answered by one "executed" event carrying
 *	its facts: the runbooks of CONTRACT.md §5 arrive with the execute
 *	issue. The delivery guarantees below are already those of the
 *	finished stage.
 * INPUT
 *	PULL at execute/endpoint (default ipc://{run}/execute.{n}.in): msgpack events
 *	from approve, strictly decoded (common/event.h).
 * OUTPUT
 *	Journal <data_dir>/execute.<n>/ first, then PUSH to audit; acks back to the producer instance once durable.
 * FAILURE
 *	Malformed input is logged and counted, never forwarded. A journal
 *	write or fsync failure exits (75) for the supervisor to restart; on
 *	restart the journal is recovered, already-journaled inputs are dropped
 *	when re-delivered, and everything unacknowledged is re-sent.
 *	SIGTERM: stop taking input, wait up to payguard/drain_ms for acks, exit 0.
 * SECURITY
 *	The only stage that writes to other systems: it alone holds their
 *	credentials (here: the Teams URL, which carries its own signature).
 * CONFIGURATION
 *	payguard/... (journal, delivery, drain_ms), execute/instances, execute/endpoint.
 *--*/
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "httpc.h"
#include "log.h"
#include "stage.h"

typedef struct {
    stage_t *st;
    httpc_t *teams;   /* NULL: no Teams configured */
} execute_t;

/* s_teams - post an Adaptive Card notice (CONTRACT.md §2.5); record the outcome */
static void s_teams(execute_t *x, const event_t *in)
{
    char *text = event_to_json(in);
    json_t *root = json_loads(text, 0, NULL);
    free(text);
    json_t *card = json_object_get(json_object_get(root, "body"), "card");
    event_body_t *b = event_body_new();
    event_body_str(b, "step", "teams_notice");
    if (!x->teams || !json_is_object(card)) {
        event_body_str(b, "status", x->teams ? "skipped: notice without a card" : "skipped: outside/teams not set");
    } else {
        json_t *msg = json_pack("{s:s, s:[{s:s, s:O}]}", "type", "message", "attachments", "contentType",
                                "application/vnd.microsoft.card.adaptive", "content", card);
        char *payload = json_dumps(msg, JSON_COMPACT);
        httpc_resp_t resp = {0};
        int rc = httpc_call(x->teams, "POST", "", payload, NULL, NULL, &resp);
        bool ok = rc == 0 && resp.status >= 200 && resp.status < 300;
        event_body_str(b, "status", ok ? "done" : "failed");
        event_body_int(b, "http_status", resp.status);
        event_body_int(b, "attempts", resp.attempts);
        if (!ok)
            event_body_str(b, "error", resp.status ? "Teams refused the card" : resp.error);
        stage_count(x->st, "payguard_execute_notices_total", "status", ok ? "done" : "failed", 1);
        httpc_resp_free(&resp);
        free(payload);
        json_decref(msg);
    }
    stage_emit(x->st, "step", event_head(in)->case_key, b, STAGE_TO_AUDIT);
    event_body_destroy(&b);
    json_decref(root);
}

/* s_handle - notices now; the runbooks with the execute issue */
static int s_handle(stage_t *st, const event_t *in, void *arg)
{
    execute_t *x = arg;
    if (strcmp(event_head(in)->type, "notice") == 0)
        s_teams(x, in);
    else
        stage_forward(st, in, "executed", STAGE_TO_BOTH);
    return STAGE_DONE;
}

/* s_init - the outside systems execute writes to */
static int s_init(stage_t *st, void *arg)
{
    execute_t *x = arg;
    x->st = st;
    const config_t *c = stage_config(st);
    const char *teams = config_get(c, "outside/teams");
    long timeout_ms = 5000;
    char err[256];
    config_int(c, "outside/timeout_ms", 100, 600000, &timeout_ms, err, sizeof err);
    if (teams && *teams && !(x->teams = httpc_new(teams, NULL, timeout_ms))) {
        log_error("config: outside/teams is not a usable URL");
        return -1;
    }
    return 0;
}

/* s_fini - release the clients */
static void s_fini(stage_t *st, void *arg)
{
    (void) st;
    httpc_destroy(&((execute_t *) arg)->teams);
}

int main(int argc, char **argv)
{
    static execute_t x;
    static const stage_def_t def = {.name = "execute", .init = s_init, .handle = s_handle, .fini = s_fini, .arg = &x};
    return stage_main(argc, argv, &def);
}
