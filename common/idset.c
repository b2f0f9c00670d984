/* idset - a set of short strings (event ids), open addressing (see idset.h).
 *
 * Linear probing over a power-of-two table of {hash, copy of the string};
 * the table doubles before the load factor passes 0.7, so probes stay
 * short, and never holds more than max_entries strings. Nothing is ever
 * removed (a dedup memory only grows), so there are no tombstones.
 *
 * The hash is FNV-1a seeded per set from RAND_bytes and finished with a
 * 64-bit mixer: some ids (PSP idempotency keys) come from outside, and a
 * fixed hash would let a sender line them up into one long probe run.
 */
#include "idset.h"

#include <assert.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IDSET_INITIAL_CAP 16

typedef struct {
    uint64_t hash;
    char *id;                   /* NULL: empty slot */
} s_slot_t;

struct idset_t {
    s_slot_t *slots;
    size_t cap;                 /* a power of two */
    size_t size;
    size_t max_entries;
    uint64_t seed;
};

/* s_hash - seeded FNV-1a with a final avalanche, so the low bits used for
 * the slot index depend on every byte */
static uint64_t s_hash(uint64_t seed, const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* s_find - the slot holding id, or the empty slot where it would go; the
 * load factor guarantees an empty slot exists */
static s_slot_t *s_find(const idset_t *self, const char *id, uint64_t hash)
{
    size_t mask = self->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        s_slot_t *slot = &self->slots[i];
        if (!slot->id || (slot->hash == hash && strcmp(slot->id, id) == 0))
            return slot;
    }
}

/* s_grow - double the table and re-place every string; -1 on out of memory */
static int s_grow(idset_t *self)
{
    if (self->cap > SIZE_MAX / 2 / sizeof(s_slot_t))
        return -1;
    size_t new_cap = self->cap * 2;
    s_slot_t *slots = calloc(new_cap, sizeof *slots);
    if (!slots)
        return -1;
    s_slot_t *old = self->slots;
    size_t old_cap = self->cap;
    self->slots = slots;
    self->cap = new_cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].id) {
            s_slot_t *slot = s_find(self, old[i].id, old[i].hash);
            assert(!slot->id);
            *slot = old[i];
        }
    }
    free(old);
    return 0;
}

/* idset_new - an empty set that will hold at most max_entries ids */
idset_t *idset_new(size_t max_entries)
{
    idset_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cap = IDSET_INITIAL_CAP;
    self->slots = calloc(self->cap, sizeof *self->slots);
    if (!self->slots) {
        free(self);
        return NULL;
    }
    self->max_entries = max_entries;
    if (RAND_bytes((unsigned char *) &self->seed, sizeof self->seed) != 1)
        self->seed = 0; /* still correct, only predictable */
    return self;
}

/* idset_destroy - free the set and its strings; NULL the pointer */
void idset_destroy(idset_t **self_p)
{
    assert(self_p);
    idset_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->cap; i++)
        free(self->slots[i].id);
    free(self->slots);
    free(self);
    *self_p = NULL;
}

/* idset_add - remember id: 1 if new, 0 if known, -1 if the set is full
 * (max_entries reached, or out of memory) so the caller stops taking
 * input rather than forget what it has seen */
int idset_add(idset_t *self, const char *id)
{
    assert(self && id);
    uint64_t hash = s_hash(self->seed, id);
    s_slot_t *slot = s_find(self, id, hash);
    if (slot->id)
        return 0;
    if (self->size >= self->max_entries)
        return -1;
    /* keep (size + 1) / cap <= 0.7 */
    if ((self->size + 1) * 10 > self->cap * 7) {
        if (s_grow(self))
            return -1;
        slot = s_find(self, id, hash);
    }
    char *copy = strdup(id);
    if (!copy)
        return -1;
    slot->hash = hash;
    slot->id = copy;
    self->size++;
    assert(self->size * 10 <= self->cap * 7);
    return 1;
}

/* idset_has - true if id was added */
bool idset_has(const idset_t *self, const char *id)
{
    assert(self && id);
    return s_find(self, id, s_hash(self->seed, id))->id != NULL;
}

/* idset_size - how many ids the set holds */
size_t idset_size(const idset_t *self)
{
    assert(self);
    return self->size;
}
