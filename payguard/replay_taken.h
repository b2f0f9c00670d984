/* replay_taken - which events of a producer instance a stage has already
 * taken, from that stage's journals on this host (replay_taken.c) */
#ifndef PG_REPLAY_TAKEN_H
#define PG_REPLAY_TAKEN_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct journal_reader_t;

typedef struct {
    uint8_t *bits; /* bit seq: taken */
    uint64_t nbits;
    uint64_t count; /* seqs taken */
    int read, away; /* instances whose journal was read; not on this host */
    char from[32];
    uint64_t epoch;
    struct journal_reader_t *r[CONFIG_MAX_INSTANCES]; /* kept open to follow */
    uint64_t heard[CONFIG_MAX_INSTANCES];             /* from's epoch as each instance last heard it */
} taken_t;

/* taken_scan - the seqs of from's journal (epoch: its journal's; 0: none
 * known, nothing is read) that any instance of into took; 0, or -1 and err */
int taken_scan(const config_t *c, const char *into, const char *from, uint64_t epoch, taken_t *t, char *err,
               size_t errlen);
/* taken_follow - read what into's instances journaled since; 0, or -1 and err */
int taken_follow(taken_t *t, char *err, size_t errlen);
bool taken_has(const taken_t *t, uint64_t seq);
void taken_free(taken_t *t);

#endif
