/* test_route - the partitioning rule: keys, partitions, owners */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event_types.h"
#include "route.h"

/* s_config - the defaults with stage/instances = n for the partitioned stages */
static config_t *s_config(int validate, int approve, int execute)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/pg-route-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    char text[256];
    int len = snprintf(text, sizeof text,
                       "validate\n    instances = %d\napprove\n    instances = %d\nexecute\n    instances = %d\n",
                       validate, approve, execute);
    cr_assert_eq(write(fd, text, (size_t) len), len);
    close(fd);
    char err[256];
    config_t *c = config_load(path, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    unlink(path);
    return c;
}

/* s_event - an event with a case key, or a receipt of endpoint + body */
static event_t *s_event(const char *type, const char *case_key, const char *endpoint, const char *body)
{
    event_head_t h = {.seq = 1, .time_ms = 1};
    snprintf(h.id, sizeof h.id, "rcpt_0123456789abcdef01234567");
    snprintf(h.type, sizeof h.type, "%s", type);
    snprintf(h.case_key, sizeof h.case_key, "%s", case_key);
    snprintf(h.stage, sizeof h.stage, "ingest.0");
    event_body_t *b = event_body_new();
    if (endpoint) {
        event_body_str(b, EK_ENDPOINT, endpoint);
        event_body_bin(b, EK_BODY, body, strlen(body));
    }
    char err[256];
    size_t len;
    void *env = event_encode(&h, b, &len, err, sizeof err);
    cr_assert_not_null(env, "%s", err);
    event_body_destroy(&b);
    event_t *ev = event_decode(env, len, err, sizeof err);
    cr_assert_not_null(ev, "%s", err);
    free(env);
    return ev;
}

/* the documented function: mix(crc32c(key)) mod partitions, owner = partition mod instances */
Test(route, partition_and_owner_are_the_documented_functions)
{
    cr_assert_eq(route_mix(0), 0u, "fmix32 fixes 0");
    cr_assert_eq(route_mix(1), 0x514e28b7u, "MurmurHash3 fmix32(1)");
    cr_assert_eq(route_partition("123456789", 9, 64), route_mix(0xE3069283u) % 64);
    cr_assert_eq(route_partition("123456789", 9, 1000), route_mix(0xE3069283u) % 1000);
    cr_assert_eq(route_owner(7, 3), 1);
    cr_assert_eq(route_owner(7, 1), 0);
    cr_assert_eq(route_owner(63, 16), 15);
    cr_assert(route_partitioned("validate") && route_partitioned("approve") && route_partitioned("execute"));
    cr_assert(!route_partitioned("triage") && !route_partitioned("audit") && !route_partitioned("ingest"));
}

/* case keys: URL-safe ids as they are, anything else hashed (never raw bytes in a key) */
Test(route, case_keys)
{
    char k[ROUTE_KEY_MAX];
    route_case_key("payout", "P-10492", k);
    cr_assert_str_eq(k, "payout-P-10492");
    route_case_key("refund", "rf_1.2", k);
    cr_assert_str_eq(k, "refund-rf_1.2");
    route_case_key("refund", "rf 1/2", k);
    cr_assert_eq(strncmp(k, "refund-h", 8), 0, "%s", k);
    cr_assert_eq(strlen(k), 8 + 24, "%s", k);
    char longid[200];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    route_case_key("payout", longid, k);
    cr_assert_eq(strncmp(k, "payout-h", 8), 0, "%s", k);
    route_case_key("payout", "", k);
    cr_assert_eq(strncmp(k, "payout-h", 8), 0, "an empty id is hashed too: %s", k);
}

/* a receipt is keyed by the case its webhook will become, from the body */
Test(route, receipt_keys_name_the_case)
{
    static const struct {
        const char *endpoint, *body, *key;
    } cases[] = {
        {"stripe", "{\"type\":\"payout.failed\",\"data\":{\"object\":{\"object\":\"payout\",\"id\":\"po_1\"}}}",
         "payout-po_1"},
        {"stripe",
         "{\"data\":{\"object\":{\"object\":\"payout\",\"id\":\"po_1\",\"metadata\":{\"payout_id\":\"P-7\"}}}}",
         "payout-P-7"},
        {"stripe", "{\"data\":{\"object\":{\"object\":\"refund\",\"id\":\"re_9\"}}}", "refund-re_9"},
        {"stripe",
         "{\"data\":{\"object\":{\"object\":\"charge\",\"id\":\"ch_1\",\"refunds\":{\"data\":[{\"id\":\"re_2\"},{\"id\":"
         "\"re_3\"}]}}}}",
         "refund-re_2"},
        {"standard", "{\"type\":\"payout.failed\",\"payout\":{\"id\":\"P-10492\"}}", "payout-P-10492"},
        {"standard", "{\"type\":\"refund.failed\",\"refund\":{\"id\":\"rf_123\",\"payment_id\":\"pay_9\"}}",
         "refund-rf_123"},
        {"stripe", "{\"data\":{\"object\":{\"object\":\"customer\",\"id\":\"cus_1\"}}}", ""},
        {"stripe", "{\"data\":{\"object\":{\"object\":\"payout\",\"id\":17}}}", ""},
        {"stripe", "not json", ""},
        {"standard", "[1,2]", ""},
        {"other", "{\"payout\":{\"id\":\"P-1\"}}", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char k[ROUTE_KEY_MAX];
        route_receipt_key(cases[i].endpoint, cases[i].body, strlen(cases[i].body), k);
        cr_assert_str_eq(k, cases[i].key, "case %zu", i);
    }
}

/* an event's key: its case key; a receipt's the object's; a receipt naming none: its id */
Test(route, event_keys)
{
    char k[ROUTE_KEY_MAX];
    event_t *ev = s_event("triaged", "refund-rf_1", NULL, NULL);
    route_event_key(ev, k);
    cr_assert_str_eq(k, "refund-rf_1");
    event_destroy(&ev);
    ev = s_event("receipt", "", "standard", "{\"refund\":{\"id\":\"rf_1\"}}");
    route_event_key(ev, k);
    cr_assert_str_eq(k, "refund-rf_1");
    event_destroy(&ev);
    ev = s_event("receipt", "", "stripe", "{}");
    route_event_key(ev, k);
    cr_assert_str_eq(k, "rcpt_0123456789abcdef01234567");
    event_destroy(&ev);
}

/* every webhook about one object meets the instance that owns its case, and
 * the keys spread over every instance */
Test(route, targets_follow_the_key_and_spread)
{
    config_t *c = s_config(3, 1, 2);
    cr_assert_eq(config_partitions(c), 64);
    int seen[3] = {0, 0, 0};
    for (int i = 0; i < 300; i++) {
        char id[32], body[128], key[ROUTE_KEY_MAX];
        snprintf(id, sizeof id, "P-%d", i);
        snprintf(body, sizeof body, "{\"type\":\"payout.failed\",\"payout\":{\"id\":\"%s\"}}", id);
        route_case_key("payout", id, key);
        event_t *rcpt = s_event("receipt", "", "standard", body);
        event_t *later = s_event("validated", key, NULL, NULL);
        int t = route_target(c, "validate", rcpt);
        cr_assert(t >= 0 && t < 3);
        cr_assert_eq(t, route_target(c, "validate", later), "%s", id);
        cr_assert_eq(t, route_owner(route_partition(key, strlen(key), 64), 3));
        cr_assert_eq(route_target(c, "execute", later), route_owner(route_partition(key, strlen(key), 64), 2));
        cr_assert_eq(route_target(c, "approve", later), 0, "one instance owns every partition");
        cr_assert_eq(route_target(c, "triage", later), -1, "triage is not partitioned");
        cr_assert_eq(route_target_key(c, "validate", key), t);
        seen[t]++;
        event_destroy(&rcpt);
        event_destroy(&later);
    }
    for (int i = 0; i < 3; i++) /* 100 each if even; sequential ids must not cluster */
        cr_assert_gt(seen[i], 70, "instance %d got %d of 300 keys", i, seen[i]);
    config_destroy(&c);
}
