/*++
 * NAME
 *	approve - policy routing, human approvals, segregation of duties
 * SYNOPSIS
 *	approve [-c CONFIG] [-i INDEX]	(started by `payguard up`)
 * DESCRIPTION
 *	Routes each case by policy to the people who must agree, or
 *	auto-approves where the policy allows.
 *
 *	Backbone behaviour (this release): every input event is answered by
 *	one "routed" event carrying the same case key and body, sent to execute and to
 *	audit. The stage's own checks arrive with its issue; the delivery
 *	guarantees below are already those of the finished stage.
 * INPUT
 *	PULL at approve/endpoint (default ipc://{run}/approve.{n}.in): msgpack events
 *	from triage, strictly decoded (common/event.h).
 * OUTPUT
 *	Journal <data_dir>/approve.<n>/ first, then PUSH to every instance of
 *	execute and to audit; acks back to the producer instance once durable.
 * FAILURE
 *	Malformed input is logged and counted, never forwarded. A journal
 *	write or fsync failure exits (75) for the supervisor to restart; on
 *	restart the journal is recovered, already-journaled inputs are dropped
 *	when re-delivered, and everything unacknowledged is re-sent.
 *	SIGTERM: stop taking input, wait up to payguard/drain_ms for acks, exit 0.
 * SECURITY
 *	Holds no secrets.
 * CONFIGURATION
 *	payguard/... (journal, delivery, drain_ms), approve/instances, approve/endpoint.
 *--*/
#include "stage.h"

/* s_handle - pass the event on (the backbone's approve) */
static int s_handle(stage_t *st, const event_t *in, void *arg)
{
    (void) arg;
    stage_forward(st, in, "routed", STAGE_TO_BOTH);
    return STAGE_DONE;
}

int main(int argc, char **argv)
{
    static const stage_def_t def = {.name = "approve", .handle = s_handle};
    return stage_main(argc, argv, &def);
}
