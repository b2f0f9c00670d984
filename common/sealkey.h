/* sealkey - the group's key files: 32 random bytes a process creates when
 * missing and its siblings then read.
 *
 * The seal key: approve seals the decisions it sends to execute with it,
 * execute acts only on what it seals (event.h, SEALS). FILE
 * payguard/seal_key_file (default {data}/seal.key). ingest's header key
 * (ingest/header_key_file) has the same shape: the key of the hashes that
 * stand for header values a receipt does not keep (ingest/headers.h).
 *
 * A key file is 64 hex digits and a newline, mode 0600. Created with 32
 * random bytes when missing (the first process to need it wins; the others
 * read the same file). On several hosts every host must hold the same file
 * (README, "Several hosts"). A key that does not parse is an error, never
 * replaced.
 */
#ifndef PG_SEALKEY_H
#define PG_SEALKEY_H

#include <stddef.h>

#include "config.h"
#include "event.h"

#define SEALKEY_BYTES 32

/* sealkey_load - the seal key, creating the file if it does not exist; -1 and err */
int sealkey_load(const config_t *config, unsigned char key[EVENT_SEAL_KEY_BYTES], char *err, size_t errlen);
/* sealkey_file - the key in path, creating the file if it does not exist;
 * what names the key in errors ("seal key"); -1 and err */
int sealkey_file(const char *path, const char *what, unsigned char key[SEALKEY_BYTES], char *err, size_t errlen);

#endif
