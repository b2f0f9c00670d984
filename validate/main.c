/*++
 * NAME
 *	validate - the gate: signatures, source, schema, idempotency, internal state
 * SYNOPSIS
 *	validate [-c CONFIG] [-i INDEX]	(started by `payguard up`)
 * DESCRIPTION
 *	Decides whether a webhook receipt is genuine and consistent with the
 *	operator's own systems before anything acts on it.
 *
 *	Backbone behaviour (this release): every input event is answered by
 *	one "validated" event carrying the same case key and body, sent to triage and to
 *	audit. The stage's own checks arrive with its issue; the delivery
 *	guarantees below are already those of the finished stage.
 * INPUT
 *	PULL at validate/endpoint (default ipc://{run}/validate.{n}.in): msgpack events
 *	from ingest, strictly decoded (common/event.h).
 * OUTPUT
 *	Journal <data_dir>/validate.<n>/ first, then PUSH to every instance of
 *	triage and to audit; acks back to the producer instance once durable.
 * FAILURE
 *	Malformed input is logged and counted, never forwarded. A journal
 *	write or fsync failure exits (75) for the supervisor to restart; on
 *	restart the journal is recovered, already-journaled inputs are dropped
 *	when re-delivered, and everything unacknowledged is re-sent.
 *	SIGTERM: stop taking input, wait up to payguard/drain_ms for acks, exit 0.
 * SECURITY
 *	Holds no secrets.
 * CONFIGURATION
 *	payguard/... (journal, delivery, drain_ms), validate/instances, validate/endpoint.
 *--*/
#include "stage.h"

/* s_handle - pass the event on (the backbone's validate) */
static int s_handle(stage_t *st, const event_t *in, void *arg)
{
    (void) arg;
    stage_forward(st, in, "validated", STAGE_TO_BOTH);
    return STAGE_DONE;
}

int main(int argc, char **argv)
{
    static const stage_def_t def = {.name = "validate", .handle = s_handle};
    return stage_main(argc, argv, &def);
}
