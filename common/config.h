/* config - the group configuration: one ZPL file (czmq zconfig) for all stages.
 *
 * Every setting has an embedded default (config_defaults_text, printed by
 * `payguard config`), so the group runs with no file at all. A file given
 * with -c overrides defaults key by key; a key the defaults do not know is
 * an error (a typo must not silently fall back to a default), and so is a
 * name written twice at one level or holding '/', which no lookup reaches.
 *
 * Values may use {run} and {data} (the absolute run and data directories),
 * {inst} (the instance name, e.g. "triage.1"), {n} (the instance index) and
 * {host} (the address of the host that runs the instance: hosts/<name>/
 * address; 127.0.0.1 without hosts).
 *
 * HOSTS: one file describes a group spread over several hosts: hosts/<name>
 * with address, run (instances: "validate.0", "validate.*" or "validate",
 * and "sandbox", "console") and optional run_dir, data_dir. A process learns
 * its host from PAYGUARD_HOST (payguard up --host NAME sets it). config_load
 * refuses an instance run by no host or by two, ipc:// endpoints, links
 * without CURVE, and approve's instances on more than one host.
 * Relative run_dir/data_dir are made absolute against the current directory
 * when the file is loaded, so every process of the group agrees on them.
 */
#ifndef PG_CONFIG_H
#define PG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define CONFIG_NSTAGES 6
#define CONFIG_MAX_INSTANCES 16
#define CONFIG_PATH_MAX 256
#define CONFIG_MAX_PARTITIONS 4096
/* the ranges of the bounds below, checked at load (so `payguard up` refuses
 * them) and where each is used */
#define CONFIG_SEGMENT_BYTES_MIN 4096L /* payguard/journal/segment_bytes */
#define CONFIG_SEGMENT_BYTES_MAX (1L << 34)
#define CONFIG_MAX_INFLIGHT_MAX 10000000L /* payguard/delivery/max_inflight: 1.. */
#define CONFIG_INFLIGHT_BYTES_MIN 65536L  /* payguard/delivery/max_inflight_bytes */
#define CONFIG_INFLIGHT_BYTES_MAX (1L << 36)
#define CONFIG_RESEND_MS_MIN 10L /* payguard/delivery/resend_ms */
#define CONFIG_RESEND_MS_MAX 3600000L
#define CONFIG_RECENT_IDS_MIN 1024L /* payguard/delivery/recent_ids */
#define CONFIG_RECENT_IDS_MAX (1L << 24)
#define CONFIG_SNDHWM_MAX 1000000L        /* payguard/delivery/sndhwm: 1.. */
#define CONFIG_DRAIN_MS_MAX 600000L       /* payguard/drain_ms: 0.. */
#define CONFIG_MIN_FREE_MB_MAX 1048576L   /* payguard/journal/min_free_mb: 1..1 TiB */
#define CONFIG_RETENTION_S_MAX 315360000L /* <stage>/retention_s: 1 s..10 years */
#define CONFIG_APPROVE_CASES_MIN 100L     /* approve/max_cases */
#define CONFIG_APPROVE_CASES_MAX 10000000L
#define CONFIG_HTTP_CONNECTIONS 256         /* connections of approve's, audit's, the console's server */
#define CONFIG_INGEST_HTTP_CONNECTIONS 1024 /* of ingest's: <stage>/http_max_per_address at most this */
#define CONFIG_HTTP_DEADLINE_S_MAX 3600L    /* <stage>/http_deadline_s: 1.. */
#define CONFIG_MAX_HOSTS 32
#define CONFIG_HOST_MAX 32
#define CONFIG_HOST_ENV "PAYGUARD_HOST" /* the host this process runs on (payguard up --host) */

typedef struct config_t config_t;

/* the pipeline, in order; audit last (it consumes from every stage) */
extern const char *const config_stages[CONFIG_NSTAGES];

/* config_main_opts - the options every payguard process `payguard up` starts
 * takes: -c CONFIG, -i INDEX (-h: usage). single: the program runs as one
 * instance (index 0, no other argument). true to go on; false after printing
 * the usage line, with *status the exit code (0 for -h, else 2). */
bool config_main_opts(int argc, char **argv, const char *prog, bool single, const char **cfg_path, int *index,
                      int *status);

/* config_load - defaults, then path (NULL: defaults only); NULL + err on failure */
config_t *config_load(const char *path, char *err, size_t errlen);
void config_destroy(config_t **self_p);
const char *config_defaults_text(void);

/* config_path - the file loaded, or NULL for embedded defaults */
const char *config_path(const config_t *self);

/* config_get - value at "section/key[/key...]" (the file's, else the default's) */
const char *config_get(const config_t *self, const char *path);
/* config_int - integer value; -1 and err if not an integer in [min,max] */
int config_int(const config_t *self, const char *path, long min, long max, long *out, char *err, size_t errlen);
/* config_bounded - config_int with the setting's range from the one table
 * of ranges (config.c), which config_load checks for every setting in it:
 * a value out of range is refused by `payguard up`, not by a stage that
 * would then exit and restart for ever. path must be in the table. */
int config_bounded(const config_t *self, const char *path, long *out, char *err, size_t errlen);

/* config_children - the names below a section the operator names freely
 * (approvers, approve/thresholds): the file's section REPLACES the
 * default one when the file has it (so no demo approver survives in a
 * configuration that lists its own). Up to max names into names[] (borrowed);
 * the count. *from_file says whose they are. */
size_t config_children(const config_t *self, const char *path, const char **names, size_t max, bool *from_file);
/* config_child_get - "<path>/<name>/<key>" from the same source config_children used */
const char *config_child_get(const config_t *self, const char *path, const char *name, const char *key);

/* config_outside_limits - one outside system's limits into out: max
 * in flight, rate per second (0: none), breaker failures (0: none),
 * breaker cool-down ms; from outside/max_inflight, rate_per_s,
 * breaker_failures, breaker_cooldown_ms and the system's line in
 * outside/limits ("<max_inflight> [<rate_per_s>]"); system NULL: the
 * defaults only. 0, or -1 and err. config_load checks every line. */
int config_outside_limits(const config_t *self, const char *system, long out[4], char *err, size_t errlen);

const char *config_run_dir(const config_t *self);
const char *config_data_dir(const config_t *self);

/* config_api_url - "http://host:port" of a stage's HTTP API from
 * <stage>/http_bind and http_port (a wildcard or empty bind is reached on
 * loopback, an IPv6 address in brackets): how the console reaches approve
 * and audit, approve audit, and the CLI and catch-up the stages.
 * 0, or -1 and err. */
int config_api_url(const config_t *self, const char *stage, char *out, size_t outlen, char *err, size_t errlen);

/* config_stage_index - 0..5 for a stage name, -1 if not a stage */
int config_stage_index(const char *stage);
/* config_next_stage - the stage after this one in the pipeline, or NULL */
const char *config_next_stage(const char *stage);
/* config_prev_stage - the stage before this one, or NULL */
const char *config_prev_stage(const char *stage);
int config_instances(const config_t *self, const char *stage);
/* config_host_of - the host whose run list names stage.index, or NULL */
const char *config_host_of(const config_t *self, const char *stage, int index);
/* config_multi_host - true when the file has a hosts section */
bool config_multi_host(const config_t *self);
/* config_host - this process's host (PAYGUARD_HOST), NULL if none */
const char *config_host(const config_t *self);
/* config_runs_here - true if stage.index runs on this process's host
 * (always without hosts; sandbox and console count as index 0) */
bool config_runs_here(const config_t *self, const char *stage, int index);
/* config_partitions - how many partitions the keys of a partitioned stage
 * fall into (payguard/partitions; at least CONFIG_MAX_INSTANCES, so every
 * instance owns some; see route.h) */
unsigned config_partitions(const config_t *self);

/* config_expand - template with {run} {data} {inst} {n} replaced; the
 * caller's to free; inst may be NULL when the template does not use it */
char *config_expand(const config_t *self, const char *tmpl, const char *stage, int index);
/* config_input_endpoint - the PULL endpoint instance index of stage binds */
char *config_input_endpoint(const config_t *self, const char *stage, int index);
/* config_ack_endpoint - where instance index of stage receives acks */
char *config_ack_endpoint(const config_t *self, const char *stage, int index);
/* config_journal_dir - the instance's journal directory under data_dir */
char *config_journal_dir(const config_t *self, const char *stage, int index);

/* config_parse_instance - "triage.1" -> "triage", 1; -1 if malformed */
int config_parse_instance(const char *inst, char stage[32], int *index);

#endif
