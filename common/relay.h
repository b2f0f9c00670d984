/* relay - who a call passed on came from: the person's address, carried
 * from the console to approve, and between approve's instances, in one
 * header:
 *
 *	X-Payguard-Client: <address>[;via=<address>][;seal=<64 hex>]
 *
 * approve's instances pass requests to each other on their peer listener
 * (approve/peer_bind) with the person's address, and the console's address
 * as via when the person came through it; approve believes that listener.
 * On approve's public port anyone can send the header, so there it counts
 * only with a seal: the console's HMAC-SHA256, under the relay key
 * (console/relay_key_file, a key file as sealkey.h makes it), over the
 * address and the request's Authorization value. Then the person's address
 * is the header's and via is the TCP peer (the console); without a seal,
 * or with a wrong one, the header is ignored and the TCP peer is the
 * person. The seal binds the address to the token the person sent, so a
 * header copied from one request cannot lend its address to another token.
 */
#ifndef PG_RELAY_H
#define PG_RELAY_H

#include <stdbool.h>
#include <stddef.h>

#include "sealkey.h"

#define RELAY_HEADER "X-Payguard-Client"
#define RELAY_ADDR_MAX 64 /* an address with its NUL: IPv6 text is at most 45 bytes */
#define RELAY_SEAL_HEX 64
#define RELAY_VALUE_MAX (RELAY_ADDR_MAX * 2 + RELAY_SEAL_HEX + 16)

/* relay_t - what the header says */
typedef struct {
    char client[RELAY_ADDR_MAX];   /* the person's address */
    char via[RELAY_ADDR_MAX];      /* the console's, when the person came through it ("" if not) */
    char seal[RELAY_SEAL_HEX + 1]; /* the console's seal ("" if none) */
} relay_t;

/* relay_addr_ok - an address as text: 1..63 bytes of letters, digits and
 * ". : % - _" (IPv4, IPv6 with a zone, "unknown") */
bool relay_addr_ok(const char *addr);
/* relay_parse - a header value into out; -1 if it is not one (an address
 * that is not one, an unknown or repeated part, a seal that is not 64 hex
 * digits) */
int relay_parse(const char *value, relay_t *out);
/* relay_format - r as a header value (r's addresses relay_addr_ok) */
void relay_format(const relay_t *r, char out[RELAY_VALUE_MAX]);
/* relay_seal - the console's seal of client for a request bearing
 * authorization (NULL: none) */
void relay_seal(const unsigned char key[SEALKEY_BYTES], const char *client, const char *authorization,
                char out[RELAY_SEAL_HEX + 1]);
/* relay_check - does r carry a seal of its client for this authorization? (constant time) */
bool relay_check(const unsigned char key[SEALKEY_BYTES], const relay_t *r, const char *authorization);

#endif
