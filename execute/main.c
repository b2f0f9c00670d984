/*++
 * NAME
 *	execute - runbooks, exactly once
 * SYNOPSIS
 *	execute [-c CONFIG] [-i INDEX]	(started by `payguard up`)
 * DESCRIPTION
 *	The only stage that changes other systems: runs the fixed runbook of an
 *	approved case, each step exactly once.
 *
 *	Backbone behaviour (this release): every input event is answered by
 *	one "executed" event carrying the same case key and body, sent to
 *	audit (execute is the last stage). The stage's own checks arrive with its issue; the delivery
 *	guarantees below are already those of the finished stage.
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
 *	Holds no secrets.
 * CONFIGURATION
 *	payguard/... (journal, delivery, drain_ms), execute/instances, execute/endpoint.
 *--*/
#include "stage.h"

/* s_handle - pass the event on (the backbone's execute) */
static int s_handle(stage_t *st, const event_t *in, void *arg)
{
    (void) arg;
    stage_forward(st, in, "executed", STAGE_TO_BOTH);
    return STAGE_DONE;
}

int main(int argc, char **argv)
{
    static const stage_def_t def = {.name = "execute", .handle = s_handle};
    return stage_main(argc, argv, &def);
}
