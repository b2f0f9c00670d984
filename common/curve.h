/* curve - ZeroMQ CURVE between the group's processes (payguard/curve = yes;
 * required when the group spans hosts: config.h, HOSTS).
 *
 * Every instance has a key pair in payguard/keys_dir, made by `payguard
 * keygen`: <inst>.cert (public) and <inst>.cert_secret (the pair, mode
 * 0600), plus payguard.cert for the operator's tools (`payguard replay`).
 * Every bound socket (inputs, ack endpoints) is a CURVE server with its
 * instance's key, and accepts only clients whose public key is in keys_dir
 * (czmq's zauth, one actor per process): an unknown key never completes
 * the handshake, so nothing it sends is read. Every connecting socket is a
 * CURVE client with its own key, and checks the server's public key (the
 * target instance's .cert). Traffic is encrypted. Rotation: stop the group,
 * delete an instance's files, run `payguard keygen` again, copy keys_dir to
 * every host, start.
 */
#ifndef PG_CURVE_H
#define PG_CURVE_H

#include <czmq.h>
#include <stdbool.h>

#include "config.h"

/* curve_enabled - payguard/curve = yes */
bool curve_enabled(const config_t *c);

/* curve_cert - the key pair (or with public_only the public key) of name
 * ("validate.1", "payguard") from keys_dir; NULL and err */
zcert_t *curve_cert(const config_t *c, const char *name, bool public_only, char *err, size_t errlen);

/* curve_auth - the process's zauth actor, allowing the keys in keys_dir; NULL and err */
zactor_t *curve_auth(const config_t *c, char *err, size_t errlen);

/* curve_server - make sock (before bind) a CURVE server with cert */
void curve_server(zsock_t *sock, zcert_t *cert);

/* curve_client - make sock (before each connect) a CURVE client with cert,
 * for the server instance target; -1 and err if target has no key */
int curve_client(const config_t *c, zsock_t *sock, zcert_t *cert, const char *target, char *err, size_t errlen);

/* curve_keygen - a key pair for every instance of the group and for
 * payguard, in keys_dir, keeping those that exist; prints one line a key
 * made; the count made, or -1 and err */
int curve_keygen(const config_t *c, char *err, size_t errlen);

#endif
