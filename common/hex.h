/* hex - hex digits (either case) to bytes, strictly: an even number of
 * digits and nothing else; and bytes to lower-case hex digits. Hashes and keys in configuration (approvers'
 * token_sha256, ingest's token and password hashes, validate's Adyen keys
 * and Stripe signatures) are read through it, so a mistyped one is refused
 * rather than loaded as some other value.
 */
#ifndef PG_HEX_H
#define PG_HEX_H

#include <stddef.h>

/* hex_decode - the n characters at s, an even number (2..2*cap) of hex
 * digits, into out; 0 and *outlen = n / 2, or -1 (out then undefined) */
int hex_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *outlen);
/* hex_encode - the n bytes at in as 2n lower-case hex digits and a NUL into out */
void hex_encode(const unsigned char *in, size_t n, char *out);

#endif
