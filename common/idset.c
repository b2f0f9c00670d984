/* idset - a set of short strings (event ids), open addressing (see idset.h).
 *
 * Linear probing over a power-of-two table of 128-bit digests: each id is
 * remembered as the first 16 bytes of SHA-256(key || id), where key is 32
 * random bytes drawn per set (RAND_bytes). The string itself is not kept:
 * a slot is 16 bytes and nothing else is allocated per id, so 65,536 ids
 * (dedup.h's default recent_ids) take 1-2 MiB of table, not that plus a
 * heap copy of every id (about 90 bytes each).
 *
 * Why a digest is safe here: a false "seen" would drop a good event, so
 * two different ids must never share a slot value. With a secret random
 * key the digests are unpredictable to a sender (ids like PSP idempotency
 * keys come from outside, so nobody can line them up into a collision or a
 * long probe run), and an accidental collision among n ids has probability
 * about n^2 / 2^129: 10^-29 at 131,072 ids.
 *
 * The table doubles before the load factor passes 0.7, so probes stay
 * short, and never holds more than max_entries digests. No single id is
 * ever removed (idset_clear forgets them all at once), so there are no
 * tombstones. The
 * all-zero value marks an empty slot; a digest that is all zero (2^-128)
 * is stored with its last bit set.
 */
#include "idset.h"

#include <assert.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IDSET_INITIAL_CAP 16
#define IDSET_KEY_BYTES 32
#define IDSET_SHORT_ID 256 /* ids up to this long are hashed from a stack buffer */

typedef struct {
    uint64_t hi, lo; /* both 0: empty slot */
} s_slot_t;

struct idset_t {
    s_slot_t *slots;
    size_t cap; /* a power of two */
    size_t size;
    size_t max_entries;
    unsigned char key[IDSET_KEY_BYTES];
    EVP_MD *sha256; /* fetched once: an implicit fetch per id costs a lookup under a lock */
};

/* s_digest - the slot value of id: SHA-256(key || id), first 16 bytes */
static s_slot_t s_digest(const idset_t *self, const char *id)
{
    unsigned char md[32];
    size_t len = strlen(id);
    int ok;
    if (len <= IDSET_SHORT_ID) {
        unsigned char buf[IDSET_KEY_BYTES + IDSET_SHORT_ID];
        memcpy(buf, self->key, IDSET_KEY_BYTES);
        memcpy(buf + IDSET_KEY_BYTES, id, len);
        ok = EVP_Digest(buf, IDSET_KEY_BYTES + len, md, NULL, self->sha256, NULL);
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        ok = ctx && EVP_DigestInit_ex(ctx, self->sha256, NULL) && EVP_DigestUpdate(ctx, self->key, IDSET_KEY_BYTES) &&
             EVP_DigestUpdate(ctx, id, len) && EVP_DigestFinal_ex(ctx, md, NULL);
        EVP_MD_CTX_free(ctx);
    }
    assert(ok); /* SHA-256 of memory we own does not fail */
    (void) ok;
    s_slot_t d;
    memcpy(&d.hi, md, 8);
    memcpy(&d.lo, md + 8, 8);
    if (!d.hi && !d.lo)
        d.lo = 1;
    return d;
}

/* s_find - the slot holding d, or the empty slot where it would go; the
 * load factor guarantees an empty slot exists */
static s_slot_t *s_find(const idset_t *self, s_slot_t d)
{
    size_t mask = self->cap - 1;
    for (size_t i = (size_t) d.lo & mask;; i = (i + 1) & mask) {
        s_slot_t *slot = &self->slots[i];
        if ((!slot->hi && !slot->lo) || (slot->hi == d.hi && slot->lo == d.lo))
            return slot;
    }
}

/* s_grow - double the table and re-place every digest; -1 on out of memory */
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
        if (old[i].hi || old[i].lo) {
            s_slot_t *slot = s_find(self, old[i]);
            assert(!slot->hi && !slot->lo);
            *slot = old[i];
        }
    }
    free(old);
    return 0;
}

/* idset_new - an empty set that will hold at most max_entries ids; NULL
 * when out of memory or when no random key can be drawn (a predictable key
 * would let a sender forge a collision, so there is no fallback) */
idset_t *idset_new(size_t max_entries)
{
    idset_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cap = IDSET_INITIAL_CAP;
    self->slots = calloc(self->cap, sizeof *self->slots);
    self->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!self->slots || !self->sha256 || RAND_bytes(self->key, sizeof self->key) != 1) {
        EVP_MD_free(self->sha256);
        free(self->slots);
        free(self);
        return NULL;
    }
    self->max_entries = max_entries;
    return self;
}

/* idset_destroy - free the set; NULL the pointer */
void idset_destroy(idset_t **self_p)
{
    assert(self_p);
    idset_t *self = *self_p;
    if (!self)
        return;
    free(self->slots);
    EVP_MD_free(self->sha256);
    OPENSSL_cleanse(self->key, sizeof self->key);
    free(self);
    *self_p = NULL;
}

/* idset_add - remember id: 1 if new, 0 if known, -1 if the set is full
 * (max_entries reached, or out of memory): the caller decides what to
 * forget (dedup.c drops its older generation) */
int idset_add(idset_t *self, const char *id)
{
    assert(self && id);
    s_slot_t d = s_digest(self, id);
    s_slot_t *slot = s_find(self, d);
    if (slot->hi || slot->lo)
        return 0;
    if (self->size >= self->max_entries)
        return -1;
    /* keep (size + 1) / cap <= 0.7 */
    if ((self->size + 1) * 10 > self->cap * 7) {
        if (s_grow(self))
            return -1;
        slot = s_find(self, d);
    }
    *slot = d;
    self->size++;
    assert(self->size * 10 <= self->cap * 7);
    return 1;
}

/* idset_has - true if id was added */
bool idset_has(const idset_t *self, const char *id)
{
    assert(self && id);
    const s_slot_t *slot = s_find(self, s_digest(self, id));
    return slot->hi || slot->lo;
}

/* idset_size - how many ids the set holds */
size_t idset_size(const idset_t *self)
{
    assert(self);
    return self->size;
}

/* idset_clear - forget every id; the table keeps its size */
void idset_clear(idset_t *self)
{
    assert(self);
    memset(self->slots, 0, self->cap * sizeof *self->slots);
    self->size = 0;
}
