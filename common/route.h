/* route - which instance of a stage takes an event: the partitioning
 * rule every producer, `payguard replay` and `payguard repartition` share.
 *
 * The stages that keep state about a case - validate (idempotency keys,
 * case order), approve (pending approvals), execute (runbook progress) -
 * are PARTITIONED: every event is sent to the one instance that owns its
 * key, so every event about one object meets the same state:
 *
 *   key        the event's case key ("payout-<id>", "refund-<id>"); a
 *              receipt, which has no case yet, is keyed by the object its
 *              webhook names, read from the unverified body with the same
 *              case-key rule (route_receipt_key); a receipt naming no
 *              object (forged, broken, an ignored type) by its own id
 *   partition  mix(crc32c(key)) mod payguard/partitions    (default 64;
 *              mix: MurmurHash3's 32-bit finalizer, route_mix)
 *   owner      partition mod <stage>/instances
 *
 * The functions are pure: the same event and configuration give the same
 * instance in every process and after every restart. Changing partitions or
 * a partitioned stage's instances changes owners, so the group refuses to
 * start until `payguard repartition` has moved the state (layout.h).
 * triage (stateless) and audit (one instance) are not partitioned: their
 * producers spread events over every instance (ZeroMQ round-robin).
 */
#ifndef PG_ROUTE_H
#define PG_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "event.h"

#define ROUTE_KEY_MAX 160 /* a case key: "<kind>-<id of at most 100 bytes>" */

/* route_partitioned - true for the stages whose inputs are routed by key */
bool route_partitioned(const char *stage);

/* route_mix - MurmurHash3's fmix32: spreads CRC-32C's linear bits */
uint32_t route_mix(uint32_t h);

/* route_partition - the partition of a key: route_mix(crc32c(key)) mod partitions */
unsigned route_partition(const char *key, size_t len, unsigned partitions);

/* route_owner - the instance that owns a partition */
int route_owner(unsigned partition, int instances);

/* route_case_key - a case's key from its kind ("payout", "refund") and the
 * object's id: "<kind>-<id>", or "<kind>-h" + 24 hex digits of SHA-256(id)
 * when the id is empty, over 100 bytes or not [A-Za-z0-9._-] */
void route_case_key(const char *kind, const char *id, char out[ROUTE_KEY_MAX]);

/* route_adyen_kind - what an Adyen notification item is about, from its
 * eventCode and success ("true" | "false"), the one table validate and
 * routing share (CONTRACT.md §1.5): REFUND (success true: refund
 * "succeeded", false: "failed"), REFUND_FAILED and REFUNDED_REVERSED (refund
 * "failed"), PAYOUT_DECLINE and PAYOUT_EXPIRE (payout "failed"),
 * PAYOUT_THIRDPARTY with success false (payout "failed"). *kind "payout" or
 * "refund", *status, and *failure_code (a payout's, for triage's rules: ""
 * when none fits) are set and 0 returned; -1 for anything else (ignored). */
int route_adyen_kind(const char *event_code, const char *success, const char **kind, const char **status,
                     const char **failure_code);

/* route_receipt_key - the case key of the object a webhook body names, for
 * routing only (nothing is believed before validate checks it): a Stripe
 * payout (metadata.payout_id, else its id), refund, or charge (its first
 * listed refund); a standard webhook's "payout" or "refund"; the first
 * Adyen notification item whose eventCode route_adyen_kind knows (its
 * merchantReference). "" when the body names none. endpoint: "stripe",
 * "stripe_fetched" (an event payguard catch-up read from the Events API),
 * "standard" or "adyen". */
void route_receipt_key(const char *endpoint, const void *body, size_t len, char out[ROUTE_KEY_MAX]);

/* route_event_key - the key an event is routed by: its case key; for a
 * receipt, route_receipt_key of its body, else its id */
void route_event_key(const event_t *ev, char out[ROUTE_KEY_MAX]);

/* route_target - the instance of stage that takes ev: its owner when the
 * stage is partitioned, -1 (any: round-robin) when not */
int route_target(const config_t *config, const char *stage, const event_t *ev);
/* route_target_key - the same for an event whose key is known */
int route_target_key(const config_t *config, const char *stage, const char *key);

#endif
