/*++
 * NAME
 *	triage - advisory root cause and next step for a case
 * SYNOPSIS
 *	triage [-c CONFIG] [-i INDEX]	(started by `payguard up`)
 * DESCRIPTION
 *	Classifies a validated case and recommends a next step (advice only;
 *	rules by default, an LLM when configured).
 *
 *	Backbone behaviour (this release): every input event is answered by
 *	one "triaged" event carrying the same case key and body, sent to approve and to
 *	audit. The stage's own checks arrive with its issue; the delivery
 *	guarantees below are already those of the finished stage.
 * INPUT
 *	PULL at triage/endpoint (default ipc://{run}/triage.{n}.in): msgpack events
 *	from validate, strictly decoded (common/event.h).
 * OUTPUT
 *	Journal <data_dir>/triage.<n>/ first, then PUSH to every instance of
 *	approve and to audit; acks back to the producer instance once durable.
 * FAILURE
 *	Malformed input is logged and counted, never forwarded. A journal
 *	write or fsync failure exits (75) for the supervisor to restart; on
 *	restart the journal is recovered, already-journaled inputs are dropped
 *	when re-delivered, and everything unacknowledged is re-sent.
 *	SIGTERM: stop taking input, wait up to payguard/drain_ms for acks, exit 0.
 * SECURITY
 *	Holds no secrets.
 * CONFIGURATION
 *	payguard/... (journal, delivery, drain_ms), triage/instances, triage/endpoint.
 *--*/
#include "stage.h"

/* s_handle - pass the event on (the backbone's triage) */
static int s_handle(stage_t *st, const event_t *in, void *arg)
{
    (void) arg;
    stage_forward(st, in, "triaged", STAGE_TO_BOTH);
    return STAGE_DONE;
}

int main(int argc, char **argv)
{
    static const stage_def_t def = {.name = "triage", .handle = s_handle};
    return stage_main(argc, argv, &def);
}
