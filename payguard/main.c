/*++
 * NAME
 *	payguard - supervise the payguard process group; operator commands
 * SYNOPSIS
 *	payguard up [-c CONFIG] [-d] [--host NAME]
 *	payguard keygen [-c CONFIG]
 *	payguard down [-c CONFIG]
 *	payguard repartition [-c CONFIG]
 *	payguard status [-c CONFIG]
 *	payguard replay --from INSTANCE [--first SEQ] [--last SEQ] [--since TIME] [--until TIME]
 *		[--case ID] [--into STAGE] [--unchecked] [--rebuild] [-c CONFIG]
 *	payguard replay --stage triage|approve --dry-run [-c CONFIG]
 *	payguard journal dump DIR|INSTANCE [--first SEQ] [--last SEQ] [-c CONFIG]
 *	payguard approvals [--status pending|approved|denied|expired|all] [--token-file F] [-c CONFIG]
 *	payguard approve CASE --as NAME [--deny] [--comment TEXT] [--token-file F] [-c CONFIG]
 *	payguard plan CASE [-c CONFIG]
 *	payguard review [-c CONFIG]
 *	payguard review retry|close CASE --as NAME [--comment TEXT] [--token-file F] [-c CONFIG]
 *	payguard case show CASE [--json] [-c CONFIG]
 *	payguard audit verify [--pubkey FILE] [-c CONFIG]
 *	payguard audit export [--case ID] [--since TIME] [-c CONFIG]
 *	payguard catch-up stripe --since TIME [--until TIME] [--quiet] [-c CONFIG]
 *	payguard units [-c CONFIG]
 *	payguard config
 * DESCRIPTION
 *	up	starts every stage instance of the configuration (embedded
 *		defaults without -c) and supervises them: a crashed stage is
 *		restarted with backoff; SIGTERM/SIGINT stop the group in order,
 *		ingest first and audit last, each draining into the next.
 *		-d detaches and logs to <run_dir>/payguard.log, and returns once
 *		every process is ready (0) or after payguard/ready_timeout_s (1,
 *		naming the process that is not ready and why).
 *	down	asks the running master to stop the group and waits for it.
 *	keygen	makes the CURVE key pairs of every instance and of the
 *		operator's tools in payguard/keys_dir, keeping those that
 *		exist (keygen_cmd.c); with payguard/curve = yes every link is
 *		authenticated with them (required across hosts). --host NAME,
 *		for every command: which host of a group spread over several
 *		this is (hosts/<name>; up starts that host's share).
 *	repartition
 *		with the group stopped, moves the state of validate, approve
 *		and execute to the instances that own its keys after their
 *		instances or payguard/partitions changed (`up` refuses to start
 *		on state split otherwise than the configuration routes); the
 *		old journals are kept under <data_dir>/retired/
 *		(repartition_cmd.c).
 *	status	each process, its pid, uptime, restarts, counters and queue
 *		depth (unacknowledged events) and journal position.
 *	replay	re-feeds the events an instance journaled into a stage
 *		(default: the instance's next stage; or audit): all of them, a
 *		seq range, those of one case (--case), or those whose event
 *		time is in [--since, --until) (TIME: 2026-11-21T08:03:56Z,
 *		2026-11-21 for its midnight UTC, or unix seconds). It does
 *		not send what the receiving stage's journals on this host say
 *		it took (--unchecked: it sends all), and the receiving stage
 *		drops what it took by its own dedup, so replay is always safe:
 *		it only fills in what a consumer lacks. After a consumer lost
 *		its journal (or it was restored from an older backup), add
 *		--rebuild: what its producer's floor says it took long ago is
 *		then taken again.
 *		With --stage triage|approve --dry-run, an incident replay
 *		instead: the stage's decisions are re-run over the inputs it
 *		recorded, with this build's code and CONFIG (e.g. a changed
 *		policy), and one line is printed per decision that now differs
 *		(recorded and now), then a summary (cases re-run, decisions
 *		when a case had several, how many differ); exit 0 whatever
 *		differs.
 *		approve: each recorded route (kind, tier, required roles,
 *		rule, action) against policy_route on the triaged event it
 *		answered, under the policy in CONFIG; a newer event for a case
 *		awaiting people, which approve did not route, is not re-run.
 *		triage: each recorded advice (classification, root cause,
 *		recommendation, confidence) against the rules on the validate
 *		event it answered; when a model gave the advice, against the
 *		rules baseline recorded beside it. The model is never called.
 *		Reads journals only, read-only, with the group up or down:
 *		nothing is journaled, sent or called. --stage without
 *		--dry-run is refused: a real re-run is --from.
 *	journal dump
 *		prints a journal's records as JSON lines.
 *	approvals  lists approvals through approve's API (CONTRACT.md §3.1).
 *	approve	records a decision (approve, or deny with --deny) as the person
 *		whose token is read from --token-file or, not echoed, from the
 *		terminal (never from the command line).
 *	plan	prints the exact calls the case's runbook makes (or would make once
 *		approved), with bodies and Idempotency-Keys, without making them.
 *	review	lists the ops-review queue: runbooks that failed for good and
 *		approvals that expired past the top tier, each with why.
 *		review retry asks for the failed runbook to run again from its
 *		failed step: a new approval round, the requester as its raiser,
 *		so others must approve. review close takes the case out of the
 *		queue. Both are recorded in the audit trail with who and why.
 *	case show  prints a case from audit's case index as a timeline:
 *		receipts (duplicates counted), verdicts, the AI's advice marked
 *		advisory, decisions with who and when, each runbook step with its
 *		answer, the final state (--json: what GET /cases/{id} answers).
 *	audit verify  recomputes the trail's hash chain from the first
 *		record and checks every signed checkpoint against it (with
 *		audit/verify_key_file, or the auditors' copy given by --pubkey);
 *		names the first bad record (edited, deleted, swapped, truncated
 *		after a checkpoint, chain rewritten). Exit 0 intact, 1 not.
 *	audit export  prints trail records as JSON lines (each with its who,
 *		what, when, outcome, origin, resource, hashes and the event),
 *		optionally only one case's (its receipts included) and only
 *		events at or after TIME (2026-11-21T08:00:00Z, 2026-11-21, or
 *		unix seconds).
 *	catch-up stripe  lists the Stripe events created in [--since,
 *		--until] (TIME as for replay, or now-<seconds>) of the types
 *		validate handles from Stripe's Events API (catchup/api, else
 *		outside/psp; the read-only key in catchup/key_file) and hands
 *		each one validate has not seen to ingest's POST /fetched/stripe
 *		(catchup/token_file): what a long outage lost becomes cases; a
 *		line a page (--quiet: none), then "fetched N, new N, duplicates
 *		N, failed N". Stops at the first event ingest does not take; a
 *		re-run of the same range goes on after the last one handed in
 *		(catchup/state_file). Exit 0 done, 1 failed (catchup_cmd.c).
 *	units	prints the systemd units of the instances the configuration
 *		runs here, one a line (payguard-validate@0.service ...): under
 *		systemd each instance is a unit of its own instead of a child
 *		of `payguard up` (units_cmd.c; README, "Running under systemd").
 *	config	prints the embedded default configuration.
 *
 *	Relative run_dir/data_dir resolve against the current directory: run
 *	every command from the same directory, or use absolute paths.
 * EXIT STATUS
 *	0 success; 1 failure; 2 usage or configuration error; 3 (status) not running.
 *--*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"

/* cli_opt - the value after an option anywhere in argv */
const char *cli_opt(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

/* cli_opt_config - find -c CONFIG anywhere in argv */
const char *cli_opt_config(int argc, char **argv)
{
    return cli_opt(argc, argv, "-c");
}

/* cli_load_config - load, or say exactly why not */
int cli_load_config(const char *path, config_t **out)
{
    char err[512];
    *out = config_load(path, err, sizeof err);
    if (!*out) {
        fprintf(stderr, "payguard: %s\n", err);
        return -1;
    }
    log_init(NULL, NULL, config_get(*out, "payguard/log_format")); /* the group's log format, here too */
    return 0;
}

/* s_usage - the synopsis */
static int s_usage(FILE *f)
{
    fprintf(f, "usage: payguard up [-c CONFIG] [-d] [--host NAME]\n"
               "       payguard down [-c CONFIG]\n"
               "       payguard repartition [-c CONFIG]\n"
               "       payguard keygen [-c CONFIG]\n"
               "       payguard status [-c CONFIG]\n"
               "       payguard replay --from INSTANCE [--first SEQ] [--last SEQ] [--since TIME] [--until TIME]\n"
               "                       [--case ID] [--into STAGE] [--unchecked] [--rebuild] [-c CONFIG]\n"
               "       payguard replay --stage triage|approve --dry-run [-c CONFIG]\n"
               "       payguard journal dump DIR|INSTANCE [--first SEQ] [--last SEQ] [-c CONFIG]\n"
               "       payguard approvals [--status S] [--token-file F] [-c CONFIG]\n"
               "       payguard approve CASE --as NAME [--deny] [--comment TEXT] [--token-file F] [-c CONFIG]\n"
               "       payguard plan CASE [-c CONFIG]\n"
               "       payguard review [-c CONFIG]\n"
               "       payguard review retry|close CASE --as NAME [--comment TEXT] [--token-file F] [-c CONFIG]\n"
               "       payguard case show CASE [--json] [-c CONFIG]\n"
               "       payguard audit verify [--pubkey FILE] [-c CONFIG]\n"
               "       payguard audit export [--case ID] [--since TIME] [-c CONFIG]\n"
               "       payguard catch-up stripe --since TIME [--until TIME] [--quiet] [-c CONFIG]\n"
               "       payguard units [-c CONFIG]\n"
               "       payguard config\n");
    return f == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
    log_init("payguard", "info", NULL);
    /* --host NAME, for every command: which host of a group spread over
     * several this is (config.h, HOSTS); passed on to what up starts */
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--host") == 0) {
            setenv(CONFIG_HOST_ENV, argv[i + 1], 1);
            memmove(&argv[i], &argv[i + 2], (size_t) (argc - i - 1) * sizeof *argv); /* argv[argc] NULL too */
            argc -= 2;
            break;
        }
    if (argc < 2)
        return s_usage(stderr);
    const char *cmd = argv[1];
    if (strcmp(cmd, "keygen") == 0)
        return cmd_keygen(argc - 1, argv + 1);
    if (strcmp(cmd, "repartition") == 0)
        return cmd_repartition(argc - 1, argv + 1);
    if (strcmp(cmd, "up") == 0)
        return cmd_up(argc - 1, argv + 1);
    if (strcmp(cmd, "down") == 0)
        return cmd_down(argc - 1, argv + 1);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(argc - 1, argv + 1);
    if (strcmp(cmd, "replay") == 0)
        return cmd_replay(argc - 1, argv + 1);
    if (strcmp(cmd, "journal") == 0)
        return cmd_journal(argc - 1, argv + 1);
    if (strcmp(cmd, "approvals") == 0)
        return cmd_approvals(argc - 1, argv + 1);
    if (strcmp(cmd, "approve") == 0)
        return cmd_approve(argc - 1, argv + 1);
    if (strcmp(cmd, "plan") == 0)
        return cmd_plan(argc - 1, argv + 1);
    if (strcmp(cmd, "review") == 0)
        return cmd_review(argc - 1, argv + 1);
    if (strcmp(cmd, "audit") == 0)
        return cmd_audit(argc - 1, argv + 1);
    if (strcmp(cmd, "case") == 0)
        return cmd_case(argc - 1, argv + 1);
    if (strcmp(cmd, "catch-up") == 0)
        return cmd_catchup(argc - 1, argv + 1);
    if (strcmp(cmd, "units") == 0)
        return cmd_units(argc - 1, argv + 1);
    if (strcmp(cmd, "config") == 0) {
        fputs(config_defaults_text(), stdout);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0)
        return s_usage(stdout);
    fprintf(stderr, "payguard: unknown command '%s'\n", cmd);
    return s_usage(stderr);
}
