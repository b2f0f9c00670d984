/* layout - how the partitioned stages' state is split over instances, as
 * the data directory holds it: never start with state split another way.
 *
 * A partitioned stage (route.h) keeps each key's state in the journal of
 * the instance that owns the key. An owner is a function of the key,
 * payguard/partitions and the stage's instances, so a group restarted with
 * another count would route a case to an instance that has never seen it:
 * duplicates accepted again, approvals and runbooks lost or done twice.
 *
 * FILE <data_dir>/layout (text, written atomically by `payguard up`, the
 * stages and `payguard repartition`):
 *   partitions <P>
 *   <stage> <instances>          for validate, approve, execute
 * Without the file (a new data directory, or one from before partitions),
 * the layout is what the journals show: instances = the number of
 * <stage>.<n> journal directories holding records.
 *
 * layout_check compares it with the configuration: a stage with state
 * whose instance count differs (or, with more than one instance, whose
 * partitions differ) refuses, naming the command that moves the state.
 * An interrupted `payguard repartition` (its intent file is there)
 * refuses too, until the command is run again to finish it.
 */
#ifndef PG_LAYOUT_H
#define PG_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define LAYOUT_NSTAGES 3 /* validate, approve, execute */

typedef struct {
    unsigned partitions;            /* 0: not recorded (no layout file) */
    int instances[LAYOUT_NSTAGES];  /* as recorded, or as the journals show */
    int with_state[LAYOUT_NSTAGES]; /* journal directories holding records */
} layout_t;

/* layout_stage - the partitioned stages, in pipeline order */
extern const char *const layout_stages[LAYOUT_NSTAGES];

/* layout_read - the data directory's layout (file, else journals); -1 and
 * err if the file is there and malformed */
int layout_read(const config_t *config, layout_t *out, char *err, size_t errlen);

/* layout_differs - true if stage i's state is split otherwise than the
 * configuration would route it */
bool layout_differs(const config_t *config, const layout_t *l, int i);

/* layout_check - 0 if the data directory's state is split as the
 * configuration routes (and then records the layout if it was not);
 * -1 and a message naming what differs and the command that moves it */
int layout_check(const config_t *config, char *err, size_t errlen);

/* layout_write - record the configuration's layout (tmp file + rename) */
int layout_write(const config_t *config, char *err, size_t errlen);

/* layout_intent_path - the file an interrupted repartition leaves */
void layout_intent_path(const config_t *config, char *out, size_t outlen);

#endif
