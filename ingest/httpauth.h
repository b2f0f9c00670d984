/* httpauth.h - HTTP basic authentication of a webhook endpoint (RFC 7617),
 * as Adyen offers it for its notifications (CONTRACT.md §1.5).
 *
 * The configuration holds the user name and the SHA-256 of the password,
 * never the password: a request's password is hashed and the hashes are
 * compared in constant time (so are the user names, hashed too: the time
 * says nothing about either). Nothing here logs or keeps a password.
 */
#ifndef PG_INGEST_HTTPAUTH_H
#define PG_INGEST_HTTPAUTH_H

#include <stdbool.h>
#include <stddef.h>

#define HTTPAUTH_USER_MAX 128    /* bytes of a user name */
#define HTTPAUTH_PASS_MAX 256    /* bytes of a password */
#define HTTPAUTH_HEADER_MAX 1024 /* an Authorization value longer than this is refused unread */
#define HTTPAUTH_REALM "payguard webhooks"

typedef struct {
    bool enabled;
    unsigned char user_sha[32]; /* SHA-256 of the user name */
    unsigned char pass_sha[32]; /* SHA-256 of the password, from the configuration */
} httpauth_t;

/* httpauth_init - from the configuration: user and the password's SHA-256
 * in hex (64 digits). Both empty: no authentication (enabled false). One
 * without the other, a user with ':' or a control character, or a hash that
 * is not 64 hex digits: -1 and err (never quoting the hash). */
int httpauth_init(httpauth_t *self, const char *user, const char *pass_sha256_hex, char *err, size_t errlen);

/* httpauth_parse - an Authorization value "Basic <base64 of user:password>"
 * (the scheme in any case) into user and pass (NUL-terminated); -1 for any
 * other scheme, bad base64, no ':' or parts over the bounds. The caller
 * wipes pass. */
int httpauth_parse(const char *header, char user[HTTPAUTH_USER_MAX + 1], char pass[HTTPAUTH_PASS_MAX + 1]);

/* httpauth_check - does this Authorization value (NULL: none) carry the
 * configured user and password? Always true when not enabled. */
bool httpauth_check(const httpauth_t *self, const char *header);

#endif
