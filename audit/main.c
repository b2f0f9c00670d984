/*++
 * NAME
 *	audit - the trail: every event of every stage, in one journal
 * SYNOPSIS
 *	audit [-c CONFIG] [-i 0]	(started by `payguard up`; one instance)
 * DESCRIPTION
 *	Every stage instance PUSHes each event it emits to audit as well as
 *	to its next stage. audit stores each event verbatim in its own journal
 *	(an 'S' record), made durable before the event is acknowledged to its
 *	producer, so that the trail holds everything the pipeline did.
 *	An event id already stored is acknowledged again and not stored twice.
 *
 *	Backbone behaviour (this release): storage and acknowledgement. The
 *	hash chain, signed checkpoints, case index, queries and verification
 *	arrive with the audit issue.
 * INPUT
 *	PULL at audit/endpoint (default ipc://{run}/audit.0.in), fan-in from
 *	every instance of every stage.
 * OUTPUT
 *	The journal <data_dir>/audit.0/; acks to each producer instance.
 * FAILURE
 *	Malformed input is logged and counted. A journal write or fsync
 *	failure exits (75) for the supervisor to restart; producers re-send
 *	whatever was not acknowledged, and ids already stored are dropped.
 * SECURITY
 *	Holds no secrets; stores what stages emit, which never contains one.
 * CONFIGURATION
 *	payguard/... (journal, delivery), audit/endpoint.
 *--*/
#include "stage.h"

int main(int argc, char **argv)
{
    static const stage_def_t def = {.name = "audit", .store_inputs = true};
    return stage_main(argc, argv, &def);
}
