/* adyen.h - Adyen standard notifications (JSON) for validate: a batch of
 * items, each signed on its own (CONTRACT.md §1.5; adyen.c says how).
 *
 * A batch is {"live":"false","notificationItems":[{"NotificationRequestItem":
 * {...}}, ...]}: 1 to ADYEN_MAX_ITEMS items. Each item's
 * additionalData.hmacSignature is base64(HMAC-SHA256(hex-decoded key,
 * signing string)), the signing string being
 *   pspReference:originalReference:merchantAccountCode:merchantReference:
 *   value:currency:eventCode:success
 * with absent fields empty and '\' and ':' inside a field escaped as "\\"
 * and "\:". An item that fails its own signature or schema is rejected
 * alone (a WH_REJECTED item naming it: "notification item 2 of 3: ..."),
 * the others go on like any webhook's items.
 */
#ifndef PG_VALIDATE_ADYEN_H
#define PG_VALIDATE_ADYEN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "validate.h"

#define ADYEN_MAX_ITEMS WH_MAX_ITEMS /* items in one batch; more: the whole request is schema_invalid */
#define ADYEN_SIGNING_MAX 1024       /* bytes of one item's signing string, escapes included */
#define ADYEN_MAX_BODY (256 * 1024)  /* a batch's body, as schema_parse's */
#define ADYEN_PSP_REF_MAX 65         /* pspReference, with its NUL (Adyen's are 16 characters) */
#define ADYEN_EVENT_CODE_MAX 41      /* eventCode, with its NUL: the key "<code>:<psp>:<success>" fits WH_ID_MAX */

/* adyen_escape - one field of the signing string: '\' becomes "\\" and ':'
 * becomes "\:". The length written (out NUL-terminated), or -1 if it does
 * not fit in cap bytes. */
int adyen_escape(const char *in, size_t n, char *out, size_t cap);

/* adyen_signing_string - the signing string of one NotificationRequestItem
 * object (nri): its length (out NUL-terminated), or -1 with a reason when a
 * field of it has the wrong type (strings; amount.value an integer;
 * success a string or a boolean) or the string would be over cap bytes */
int adyen_signing_string(const json_t *nri, char *out, size_t cap, char *reason, size_t reasonlen);

/* adyen_parse - a batch into items, one per notification item, in order:
 * WH_PAYOUT / WH_REFUND / WH_IGNORED as the item's eventCode says, or
 * WH_REJECTED for an item that failed its signature (against every live key
 * of keys at now) or its schema; *authentic counts the items whose
 * signature passed. 0 on success; -1 with a reason when the batch itself is
 * not one (not JSON, no notificationItems, more than ADYEN_MAX_ITEMS or
 * max_items items, ...): nothing in it is then believed. */
int adyen_parse(const sigkeys_t *keys, const char *body, size_t len, int64_t now, wh_item_t *items, size_t max_items,
                size_t *n_items, size_t *authentic, char *reason, size_t reasonlen);

#endif
