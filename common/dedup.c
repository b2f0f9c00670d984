/* dedup - which inputs a stage instance has taken already (see dedup.h).
 *
 * A link's seqs are a sorted ring: inputs arrive mostly in seq order, so
 * an add is an append, a raised floor pops the front, and a lookup is a
 * binary search; a re-send out of order is inserted by shifting the tail
 * (at most link_cap entries). Links are found by a linear scan of at most
 * DEDUP_MAX_LINKS names, from the last one found.
 */
#include "dedup.h"

#include "idset.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char producer[DEDUP_PRODUCER_MAX + 1];
    uint64_t epoch, floor;
    uint64_t first; /* the first floor heard in this epoch (0: none yet) */
    uint64_t *v;    /* ring of seqs >= floor, ascending */
    size_t cap;     /* a power of two */
    size_t head, n;
    uint64_t heard; /* dedup's clock at the last meet: the least recent goes first */
    bool dirty;     /* epoch or floor moved since dedup_dirty returned it */
} s_link_t;

struct dedup_t {
    s_link_t links[DEDUP_MAX_LINKS];
    size_t nlinks;
    size_t last; /* index of the last link found */
    size_t link_cap;
    uint64_t clock;
    uint64_t forgotten;
    idset_t *recent[2]; /* [0]: newer; [1]: older */
};

/* s_at - the i-th seq of a link from its front */
static uint64_t *s_at(s_link_t *l, size_t i)
{
    assert(i < l->n);
    return &l->v[(l->head + i) & (l->cap - 1)];
}

/* s_find - the link of producer, NULL if none */
static s_link_t *s_find(dedup_t *self, const char *producer)
{
    if (self->last < self->nlinks && strcmp(self->links[self->last].producer, producer) == 0)
        return &self->links[self->last];
    for (size_t i = 0; i < self->nlinks; i++)
        if (strcmp(self->links[i].producer, producer) == 0) {
            self->last = i;
            return &self->links[i];
        }
    return NULL;
}

/* s_lower - index of the first seq >= seq on a link (n if none) */
static size_t s_lower(s_link_t *l, uint64_t seq)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (*s_at(l, mid) < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* s_raise - the floor to floor: seqs below it go */
static void s_raise(s_link_t *l, uint64_t floor)
{
    if (floor <= l->floor)
        return;
    if (l->first == 0)
        l->first = floor;
    l->floor = floor;
    l->dirty = true;
    while (l->n && *s_at(l, 0) < floor) {
        l->head = (l->head + 1) & (l->cap - 1);
        l->n--;
    }
}

/* s_reset - the link starts afresh at epoch */
static void s_reset(s_link_t *l, uint64_t epoch)
{
    l->epoch = epoch;
    l->floor = l->first = 0;
    l->head = l->n = 0;
    l->dirty = true;
}

/* s_new_link - a link for producer: a free slot, else the least recently heard one */
static s_link_t *s_new_link(dedup_t *self, const char *producer)
{
    s_link_t *l;
    if (self->nlinks < DEDUP_MAX_LINKS) {
        l = &self->links[self->nlinks++];
    } else {
        l = &self->links[0];
        for (size_t i = 1; i < DEDUP_MAX_LINKS; i++)
            if (self->links[i].heard < l->heard)
                l = &self->links[i];
        self->forgotten += 1 + l->n;
    }
    snprintf(l->producer, sizeof l->producer, "%s", producer);
    s_reset(l, 0);
    self->last = (size_t) (l - self->links);
    return l;
}

/* dedup_new - see dedup.h */
dedup_t *dedup_new(size_t link_cap, size_t recent_ids)
{
    assert(link_cap >= 1 && recent_ids >= 2);
    dedup_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->link_cap = link_cap;
    self->recent[0] = idset_new(recent_ids / 2);
    self->recent[1] = idset_new(recent_ids / 2);
    if (!self->recent[0] || !self->recent[1])
        dedup_destroy(&self);
    return self;
}

/* dedup_destroy - free it; NULL the pointer */
void dedup_destroy(dedup_t **self_p)
{
    assert(self_p);
    dedup_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->nlinks; i++)
        free(self->links[i].v);
    idset_destroy(&self->recent[0]);
    idset_destroy(&self->recent[1]);
    free(self);
    *self_p = NULL;
}

/* dedup_meet - see dedup.h */
int dedup_meet(dedup_t *self, const char *producer, uint64_t epoch, uint64_t floor)
{
    assert(self && producer && strlen(producer) <= DEDUP_PRODUCER_MAX);
    s_link_t *l = s_find(self, producer);
    int fresh = 0;
    if (!l) {
        l = s_new_link(self, producer);
        fresh = 1;
    }
    l->heard = ++self->clock;
    if (epoch == 0)
        return fresh; /* the sender did not say: neither epoch nor floor moves */
    if (l->epoch != epoch) {
        if (l->epoch != 0) /* another life of the producer's journal */
            s_reset(l, epoch);
        l->epoch = epoch;
        l->dirty = true;
        fresh = 1;
    }
    s_raise(l, floor);
    return fresh;
}

/* dedup_seen - see dedup.h */
int dedup_seen(dedup_t *self, const char *producer, uint64_t seq, const char *id, bool rebuild)
{
    assert(self && id);
    s_link_t *l = producer ? s_find(self, producer) : NULL;
    if (l && seq < l->floor && (!rebuild || seq >= l->first))
        return DEDUP_BY_POSITION;
    if (l) {
        size_t i = s_lower(l, seq);
        if (i < l->n && *s_at(l, i) == seq)
            return DEDUP_BY_POSITION;
    }
    if (idset_has(self->recent[0], id) || idset_has(self->recent[1], id))
        return DEDUP_BY_ID;
    return DEDUP_NEW;
}

/* s_insert - seq onto a link in order; over link_cap the lowest goes */
static void s_insert(dedup_t *self, s_link_t *l, uint64_t seq)
{
    if (seq < l->floor)
        return;
    size_t i = s_lower(l, seq);
    if (i < l->n && *s_at(l, i) == seq)
        return;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 64;
        uint64_t *nv = malloc(ncap * sizeof *nv);
        assert(nv);
        for (size_t k = 0; k < l->n; k++)
            nv[k] = *s_at(l, k);
        free(l->v);
        l->v = nv;
        l->cap = ncap;
        l->head = 0;
    }
    l->n++;
    for (size_t k = l->n - 1; k > i; k--)
        *s_at(l, k) = *s_at(l, k - 1);
    *s_at(l, i) = seq;
    if (l->n > self->link_cap) {
        l->head = (l->head + 1) & (l->cap - 1);
        l->n--;
        self->forgotten++;
    }
}

/* dedup_add - see dedup.h */
void dedup_add(dedup_t *self, const char *producer, uint64_t seq, const char *id)
{
    assert(self && (producer || id));
    if (id && idset_add(self->recent[0], id) < 0) { /* the newer generation is full: the older goes */
        idset_t *older = self->recent[1];
        idset_clear(older);
        self->recent[1] = self->recent[0];
        self->recent[0] = older;
        int rc = idset_add(self->recent[0], id);
        assert(rc == 1);
        (void) rc;
    }
    s_link_t *l = producer ? s_find(self, producer) : NULL;
    if (l)
        s_insert(self, l, seq);
}

/* dedup_dirty - see dedup.h */
bool dedup_dirty(dedup_t *self, size_t *it, const char **producer, uint64_t *epoch, uint64_t *floor, uint64_t *first)
{
    assert(self && it);
    for (; *it < self->nlinks; ++*it) {
        s_link_t *l = &self->links[*it];
        if (!l->dirty)
            continue;
        l->dirty = false;
        *producer = l->producer;
        *epoch = l->epoch;
        *floor = l->floor;
        *first = l->first;
        ++*it;
        return true;
    }
    return false;
}

/* dedup_link_at - see dedup.h */
bool dedup_link_at(const dedup_t *self, size_t i, dedup_link_t *out)
{
    if (i >= self->nlinks)
        return false;
    const s_link_t *l = &self->links[i];
    *out = (dedup_link_t){l->producer, l->epoch, l->floor, l->first, l->n};
    return true;
}

/* dedup_link_seq - see dedup.h */
uint64_t dedup_link_seq(const dedup_t *self, size_t i, size_t k)
{
    assert(i < self->nlinks);
    const s_link_t *l = &self->links[i];
    assert(k < l->n);
    return l->v[(l->head + k) & (l->cap - 1)];
}

/* dedup_link_size - see dedup.h */
size_t dedup_link_size(const dedup_t *self, const char *producer)
{
    for (size_t i = 0; i < self->nlinks; i++)
        if (strcmp(self->links[i].producer, producer) == 0)
            return self->links[i].n;
    return 0;
}

/* dedup_stats - see dedup.h */
void dedup_stats(const dedup_t *self, dedup_stats_t *out)
{
    assert(self && out);
    *out = (dedup_stats_t){.links = self->nlinks, .forgotten = self->forgotten};
    for (size_t i = 0; i < self->nlinks; i++)
        out->seqs += self->links[i].n;
    out->recent = idset_size(self->recent[0]) + idset_size(self->recent[1]);
}
