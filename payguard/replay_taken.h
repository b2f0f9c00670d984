/* replay_taken - which events of a producer instance a stage has already
 * taken, from that stage's journals on this host (replay_taken.c) */
#ifndef PG_REPLAY_TAKEN_H
#define PG_REPLAY_TAKEN_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

typedef struct {
    uint8_t *bits; /* bit seq: taken */
    uint64_t nbits;
    uint64_t count; /* seqs taken */
    int read, away; /* instances whose journal was read; not on this host */
} taken_t;

/* taken_scan - the seqs of from's journal (epoch: its journal's; 0: none
 * known, nothing is read) that any instance of into took; 0, or -1 and err */
int taken_scan(const config_t *c, const char *into, const char *from, uint64_t epoch, taken_t *t, char *err,
               size_t errlen);
bool taken_has(const taken_t *t, uint64_t seq);
void taken_free(taken_t *t);

#endif
