/* fetched - receipts of events payguard catch-up fetched (see fetched.h).
 *
 * Kept apart from main.c so the gate order there stays one reading: a
 * fetched receipt is recognised by its endpoint, which only ingest's
 * token-checked route writes (ingest/bearer.c); whatever else could push a
 * receipt into validate's input could forge a webhook's endpoint as well.
 */
#include "fetched.h"

#include <assert.h>
#include <string.h>

/* fetched_receipt - see fetched.h */
bool fetched_receipt(const event_t *in)
{
    assert(in);
    char endpoint[32];
    event_get_strbuf(in, EK_ENDPOINT, endpoint, sizeof endpoint);
    assert(strlen(endpoint) < sizeof endpoint);
    return event_head(in)->kind == EV_RECEIPT && strcmp(endpoint, FETCHED_ENDPOINT) == 0;
}
