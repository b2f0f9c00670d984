/* idset - a set of short strings (event ids), open addressing.
 *
 * The recent ids of a stage's dedup (dedup.h: two generations, the older
 * cleared when the newer is full). Bounded by max_entries; idset_add
 * beyond it fails with -1 and the caller decides what to forget. Ids are
 * kept as 128-bit keyed digests (16 bytes a slot, see idset.c), not as
 * strings.
 */
#ifndef PG_IDSET_H
#define PG_IDSET_H

#include <stdbool.h>
#include <stddef.h>

typedef struct idset_t idset_t;

/* idset_new - NULL when out of memory or no random key can be drawn */
idset_t *idset_new(size_t max_entries);
void idset_destroy(idset_t **self_p);
/* idset_add - 1 if added, 0 if already present, -1 if full */
int idset_add(idset_t *self, const char *id);
bool idset_has(const idset_t *self, const char *id);
size_t idset_size(const idset_t *self);
/* idset_clear - forget every id; the table keeps its size */
void idset_clear(idset_t *self);

#endif
