/* route - which instance of a stage takes an event (see route.h) */
#include "route.h"

#include <assert.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "event_types.h"

#define ROUTE_ADYEN_SCAN 16 /* items of an Adyen batch looked at (validate takes at most 16) */

/* route_partitioned - see route.h */
bool route_partitioned(const char *stage)
{
    return strcmp(stage, "validate") == 0 || strcmp(stage, "approve") == 0 || strcmp(stage, "execute") == 0;
}

/* route_mix - MurmurHash3's 32-bit finalizer: CRC-32C is linear, so keys
 * that differ in a few characters ("refund-rf_1", "refund-rf_2", ...) have
 * related low bits and fell unevenly on 3 instances (13 of 100 on one);
 * mixed, every output bit depends on every input bit */
uint32_t route_mix(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

/* route_partition - see route.h */
unsigned route_partition(const char *key, size_t len, unsigned partitions)
{
    assert(partitions > 0);
    return route_mix(crc32c_update(0, key, len)) % partitions;
}

/* route_owner - see route.h */
int route_owner(unsigned partition, int instances)
{
    assert(instances > 0);
    return (int) (partition % (unsigned) instances);
}

/* route_case_key - see route.h */
void route_case_key(const char *kind, const char *id, char out[ROUTE_KEY_MAX])
{
    size_t n = strlen(id);
    bool safe = n > 0 && n <= 100;
    for (const char *p = id; safe && *p; p++)
        safe = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("._-", *p);
    if (safe) {
        snprintf(out, ROUTE_KEY_MAX, "%s-%s", kind, id);
        return;
    }
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *) id, n, md);
    int w = snprintf(out, ROUTE_KEY_MAX, "%s-h", kind);
    for (int i = 0; i < 12; i++)
        w += snprintf(out + w, ROUTE_KEY_MAX - (size_t) w, "%02x", md[i]);
}

/* s_str - obj.key when it is a non-empty string, else NULL */
static const char *s_str(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

/* s_stripe_key - the case a Stripe event's data.object is about */
static void s_stripe_key(const json_t *root, char out[ROUTE_KEY_MAX])
{
    const json_t *data = json_object_get(root, "data");
    const json_t *obj = json_object_get(data, "object");
    const char *what = s_str(obj, "object");
    if (!what)
        return;
    if (strcmp(what, "payout") == 0) {
        const char *id = s_str(json_object_get(obj, "metadata"), "payout_id");
        if (!id)
            id = s_str(obj, "id");
        if (id)
            route_case_key("payout", id, out);
    } else if (strcmp(what, "refund") == 0 || strcmp(what, "charge") == 0) {
        const json_t *refund = obj;
        if (strcmp(what, "charge") == 0)
            refund = json_array_get(json_object_get(json_object_get(obj, "refunds"), "data"), 0);
        const char *id = s_str(refund, "id");
        if (id)
            route_case_key("refund", id, out);
    }
}

/* route_adyen_kind - see route.h */
int route_adyen_kind(const char *event_code, const char *success, const char **kind, const char **status,
                     const char **failure_code)
{
    static const struct {
        const char *code, *success, *kind, *status, *failure_code; /* success NULL: either */
    } table[] = {
        {"REFUND", "true", "refund", "succeeded", ""},
        {"REFUND", "false", "refund", "failed", ""},
        {"REFUND_FAILED", NULL, "refund", "failed", ""},
        {"REFUNDED_REVERSED", NULL, "refund", "failed", ""},
        {"PAYOUT_DECLINE", NULL, "payout", "failed", "declined"},
        {"PAYOUT_EXPIRE", NULL, "payout", "failed", ""},
        {"PAYOUT_THIRDPARTY", "false", "payout", "failed", "could_not_process"},
    };
    assert(kind && status && failure_code);
    assert(sizeof table / sizeof table[0] == 7); /* CONTRACT.md §1.5's table */
    for (size_t i = 0; event_code && success && i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].code, event_code) == 0 && (!table[i].success || strcmp(table[i].success, success) == 0)) {
            *kind = table[i].kind;
            *status = table[i].status;
            *failure_code = table[i].failure_code;
            return 0;
        }
    return -1;
}

/* s_adyen_key - the case the first handled item of an Adyen batch is about */
static void s_adyen_key(const json_t *root, char out[ROUTE_KEY_MAX])
{
    const json_t *list = json_object_get(root, "notificationItems");
    for (size_t i = 0; i < json_array_size(list) && i < ROUTE_ADYEN_SCAN; i++) {
        const json_t *nri = json_object_get(json_array_get(list, i), "NotificationRequestItem");
        const json_t *ok = json_object_get(nri, "success");
        const char *kind, *status, *fc, *id = s_str(nri, "merchantReference");
        const char *success = json_is_string(ok) ? json_string_value(ok) : json_is_true(ok) ? "true" : "false";
        if (id && route_adyen_kind(s_str(nri, "eventCode"), success, &kind, &status, &fc) == 0) {
            route_case_key(kind, id, out);
            return;
        }
    }
}

/* route_receipt_key - see route.h */
void route_receipt_key(const char *endpoint, const void *body, size_t len, char out[ROUTE_KEY_MAX])
{
    out[0] = '\0';
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return;
    }
    if (strcmp(endpoint, "stripe") == 0 || strcmp(endpoint, "stripe_fetched") == 0) { /* fetched: payguard catch-up */
        s_stripe_key(root, out);
    } else if (strcmp(endpoint, "standard") == 0) {
        const char *payout = s_str(json_object_get(root, "payout"), "id");
        const char *refund = s_str(json_object_get(root, "refund"), "id");
        if (payout)
            route_case_key("payout", payout, out);
        else if (refund)
            route_case_key("refund", refund, out);
    } else if (strcmp(endpoint, "adyen") == 0) {
        s_adyen_key(root, out);
    }
    json_decref(root);
}

/* route_event_key - see route.h */
void route_event_key(const event_t *ev, char out[ROUTE_KEY_MAX])
{
    const event_head_t *h = event_head(ev);
    out[0] = '\0';
    if (h->case_key[0]) {
        snprintf(out, ROUTE_KEY_MAX, "%s", h->case_key);
        return;
    }
    if (h->kind == EV_RECEIPT) {
        char endpoint[16];
        const void *body;
        size_t len;
        if (event_get_bin(ev, EK_BODY, &body, &len) == 0)
            route_receipt_key(event_get_strbuf(ev, EK_ENDPOINT, endpoint, sizeof endpoint), body, len, out);
    }
    if (!out[0])
        snprintf(out, ROUTE_KEY_MAX, "%s", h->id);
}

/* route_target_key - see route.h */
int route_target_key(const config_t *config, const char *stage, const char *key)
{
    if (!route_partitioned(stage))
        return -1;
    int n = config_instances(config, stage);
    return n <= 1 ? 0 : route_owner(route_partition(key, strlen(key), config_partitions(config)), n);
}

/* route_target - see route.h */
int route_target(const config_t *config, const char *stage, const event_t *ev)
{
    if (!route_partitioned(stage) || config_instances(config, stage) <= 1)
        return route_target_key(config, stage, "");
    char key[ROUTE_KEY_MAX];
    route_event_key(ev, key);
    return route_target_key(config, stage, key);
}
