/* cli - the payguard command: supervisor and operator commands */
#ifndef PG_CLI_H
#define PG_CLI_H

#include "config.h"

/* cli_opt - the value after option name in argv, or NULL */
const char *cli_opt(int argc, char **argv, const char *name);
/* cli_opt_config - the value of -c in argv, or NULL */
const char *cli_opt_config(int argc, char **argv);
/* cli_load_config - load path (NULL: embedded defaults) or print why not */
int cli_load_config(const char *path, config_t **out);

struct httpc_t;
/* cli_api_client - the API stage ("approve": approvals, "audit": cases)
 * serves, with the operator's token (from token_file, or typed without
 * echo); NULL and a message if none */
struct httpc_t *cli_api_client(const config_t *c, const char *stage, const char *token_file, const char *who);
/* cli_post_case - POST body (a json_t *, stolen) to /<section>/<case>/<action>
 * of the approvals API; prints the answer; destroys the client; the exit status */
int cli_post_case(struct httpc_t **h, const char *section, const char *case_id, const char *action, void *body);

/* cli_master_pid - the running master's pid (it holds run_dir/master.pid
 * locked), or 0 */
int cli_master_pid(const config_t *c);

int cmd_up(int argc, char **argv);
/* cmd_keygen - the group's CURVE key pairs (keygen_cmd.c) */
int cmd_keygen(int argc, char **argv);
/* cmd_repartition - move partitioned state to the configured layout (repartition_cmd.c) */
int cmd_repartition(int argc, char **argv);
int cmd_down(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_journal(int argc, char **argv);
int cmd_replay(int argc, char **argv);
/* cmd_replay_dry_run - `payguard replay --stage triage|approve --dry-run`:
 * re-run a stage over its recorded inputs, print what now differs (dryrun_cmd.c) */
int cmd_replay_dry_run(int argc, char **argv);
int cmd_approvals(int argc, char **argv);
int cmd_approve(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_review(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_case(int argc, char **argv);
/* cmd_catchup - `payguard catch-up stripe`: missed Stripe events from the Events API (catchup_cmd.c) */
int cmd_catchup(int argc, char **argv);
/* cmd_units - `payguard units`: the systemd units of this host's instances (units_cmd.c) */
int cmd_units(int argc, char **argv);

#endif
