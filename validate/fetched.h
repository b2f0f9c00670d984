/* fetched - receipts of Stripe events `payguard catch-up stripe` read from
 * Stripe's Events API and handed to ingest's POST /fetched/stripe.
 *
 * Such a receipt has no Stripe-Signature and does not come from Stripe's
 * webhook addresses: it was authenticated by the API call (a read-only key
 * the operator holds) and by ingest's Bearer token. So validate judges it
 * like a Stripe webhook without the source and signature gates: the same
 * schema, idempotency (a fetched copy of an event received by webhook is a
 * duplicate, and the other way round: the keys of CONTRACT.md §1.4 are the
 * event's), order and state gates, and every verdict on it says
 * "via":"fetched".
 */
#ifndef PG_VALIDATE_FETCHED_H
#define PG_VALIDATE_FETCHED_H

#include <stdbool.h>

#include "event.h"

#define FETCHED_ENDPOINT "stripe_fetched" /* ingest's endpoint name for POST /fetched/stripe */
#define FETCHED_PROVIDER "stripe"         /* the body is a Stripe event: its schema */
#define FETCHED_SOURCE_VERDICT "fetched: handed in by payguard catch-up with ingest's fetch token (no source gate)"
#define FETCHED_SIGNATURE_VERDICT                                                                                      \
    "fetched: read from Stripe's Events API with the read-only key; authenticated by that call, no webhook signature"

/* fetched_receipt - did this receipt come through POST /fetched/stripe? */
bool fetched_receipt(const event_t *in);

#endif
