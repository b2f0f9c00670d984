/* sealkey - the group's seal key: approve seals the decisions it sends to
 * execute with it, execute acts only on what it seals (event.h, SEALS).
 *
 * FILE payguard/seal_key_file (default {data}/seal.key): 64 hex digits and
 * a newline, mode 0600. Created with 32 random bytes when missing (the
 * first process to need it wins; the others read the same file). On
 * several hosts every host must hold the same file (README, "Several
 * hosts"). A key that does not parse is an error, never replaced.
 */
#ifndef PG_SEALKEY_H
#define PG_SEALKEY_H

#include <stddef.h>

#include "config.h"
#include "event.h"

/* sealkey_load - the key, creating the file if it does not exist; -1 and err */
int sealkey_load(const config_t *config, unsigned char key[EVENT_SEAL_KEY_BYTES], char *err, size_t errlen);

#endif
