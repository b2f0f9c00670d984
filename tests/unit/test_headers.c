/* test_headers - a webhook request's header fields: bounds judged on what
 * was received, repeated fields merged as RFC 9110 §5.3 says, credentials
 * redacted, values not on the allowlist kept only as a keyed hash, framing
 * that cannot be trusted refused */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdio.h>
#include <string.h>

#include "../../ingest/headers.h"

static const unsigned char s_key[HEADERS_KEY_BYTES] = "an install's header key, 32 B..";

/* s_packed_with - headers_pack under key into a fresh unpacked map */
static msgpack_object s_packed_with(const headers_t *h, const unsigned char *key, msgpack_sbuffer *sb,
                                    msgpack_unpacked *up)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    headers_pack(h, key, &pk);
    msgpack_unpacked_init(up);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(up, sb->data, sb->size, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(off, sb->size, "one map, nothing after it");
    cr_assert_eq(up->data.type, MSGPACK_OBJECT_MAP);
    return up->data;
}

/* s_packed - headers_pack under s_key */
static msgpack_object s_packed(const headers_t *h, msgpack_sbuffer *sb, msgpack_unpacked *up)
{
    return s_packed_with(h, s_key, sb, up);
}

/* s_value - the packed value of name ("" terminated copy), NULL if absent */
static const char *s_value(msgpack_object map, const char *name)
{
    static char out[16384];
    for (uint32_t i = 0; i < map.via.map.size; i++) {
        msgpack_object k = map.via.map.ptr[i].key, v = map.via.map.ptr[i].val;
        if (k.via.str.size == strlen(name) && memcmp(k.via.str.ptr, name, k.via.str.size) == 0) {
            cr_assert_eq(v.type, MSGPACK_OBJECT_STR);
            snprintf(out, sizeof out, "%.*s", (int) v.via.str.size, v.via.str.ptr);
            return out;
        }
    }
    return NULL;
}

Test(headers, repeated_fields_merge_in_order_with_comma_space)
{
    headers_t h;
    headers_init(&h);
    headers_add(&h, "Host", "payguard.example");
    headers_add(&h, "Via", "1.1 edge-a");
    headers_add(&h, "Content-Type", "application/json");
    headers_add(&h, "via", "1.1 edge-b");
    headers_add(&h, "X-Forwarded-For", "203.0.113.9");
    headers_add(&h, "X-FORWARDED-FOR", "198.51.100.7, 10.0.0.2");
    const char *why;
    cr_assert_eq(headers_verdict(&h, &why), 0);
    cr_assert_eq(headers_distinct(&h), 4, "host, via, content-type, x-forwarded-for");
    msgpack_sbuffer sb;
    msgpack_unpacked up;
    msgpack_object m = s_packed(&h, &sb, &up);
    cr_assert_eq(m.via.map.size, 4);
    cr_expect_str_eq(s_value(m, "via"), "1.1 edge-a, 1.1 edge-b");
    cr_expect_str_eq(s_value(m, "x-forwarded-for"), "203.0.113.9, 198.51.100.7, 10.0.0.2");
    cr_expect_str_eq(s_value(m, "host"), "payguard.example", "names are recorded lower-case");
    cr_expect_null(s_value(m, "Host"));
    /* first appearance sets the map's order: host, via, content-type, x-forwarded-for */
    cr_expect_eq(m.via.map.ptr[1].key.via.str.size, 3);
    cr_expect_eq(memcmp(m.via.map.ptr[1].key.via.str.ptr, "via", 3), 0);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
}

Test(headers, empty_values_keep_their_place)
{
    headers_t h;
    headers_init(&h);
    headers_add(&h, "Via", "");
    headers_add(&h, "Via", "b");
    headers_add(&h, "Accept", NULL);
    const char *why;
    cr_assert_eq(headers_verdict(&h, &why), 0);
    msgpack_sbuffer sb;
    msgpack_unpacked up;
    msgpack_object m = s_packed(&h, &sb, &up);
    cr_expect_str_eq(s_value(m, "via"), ", b");
    cr_expect_str_eq(s_value(m, "accept"), "");
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
}

Test(headers, credentials_are_redacted_once_whatever_the_case)
{
    headers_t h;
    headers_init(&h);
    headers_add(&h, "Authorization", "Bearer s3cret");
    headers_add(&h, "COOKIE", "a=1");
    headers_add(&h, "cookie", "b=2");
    headers_add(&h, "X-Api-Key", "k");
    const char *why;
    cr_assert_eq(headers_verdict(&h, &why), 0);
    msgpack_sbuffer sb;
    msgpack_unpacked up;
    msgpack_object m = s_packed(&h, &sb, &up);
    cr_expect_str_eq(s_value(m, "authorization"), HEADERS_REDACTED);
    cr_expect_str_eq(s_value(m, "cookie"), HEADERS_REDACTED);
    cr_expect_str_eq(s_value(m, "x-api-key"), HEADERS_REDACTED);
    cr_expect_null(memmem(sb.data, sb.size, "s3cret", 6), "a credential never reaches the receipt");
    cr_expect_null(memmem(sb.data, sb.size, "a=1", 3));
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
}

/* s_two - a request with X-Access-Token and Api-Key, packed under key */
static msgpack_object s_two(headers_t *h, const unsigned char *key, const char *token, const char *api_key,
                            msgpack_sbuffer *sb, msgpack_unpacked *up)
{
    headers_init(h);
    headers_add(h, "Host", "payguard.example");
    headers_add(h, "X-Access-Token", token);
    headers_add(h, "Api-Key", api_key);
    headers_add(h, "Stripe-Signature", "t=1,v1=abc");
    const char *why;
    cr_assert_eq(headers_verdict(h, &why), 0);
    return s_packed_with(h, key, sb, up);
}

Test(headers, values_not_on_the_allowlist_are_stored_only_as_a_keyed_hash)
{
    headers_t h;
    msgpack_sbuffer sb[3];
    msgpack_unpacked up[3];
    msgpack_object a = s_two(&h, s_key, "s3cr3t", "k3y", &sb[0], &up[0]);
    cr_expect_null(memmem(sb[0].data, sb[0].size, "s3cr3t", 6), "the token never reaches the receipt");
    cr_expect_null(memmem(sb[0].data, sb[0].size, "k3y", 3), "nor the key");
    /* HMAC-SHA256(s_key, "s3cr3t") = 267b156c93931b8d... (openssl dgst -sha256 -mac HMAC) */
    char token_hash[HEADERS_HASH_MAX], key_hash[HEADERS_HASH_MAX];
    snprintf(token_hash, sizeof token_hash, "%s", s_value(a, "x-access-token"));
    snprintf(key_hash, sizeof key_hash, "%s", s_value(a, "api-key"));
    cr_expect_str_eq(token_hash, "hmac-sha256:267b156c93931b8d");
    cr_expect_str_eq(s_value(a, "host"), "payguard.example", "a harmless header is kept as sent");
    cr_expect_str_eq(s_value(a, "stripe-signature"), "t=1,v1=abc", "validate checks it: kept as sent");
    msgpack_object b = s_two(&h, s_key, "s3cr3t", "another", &sb[1], &up[1]);
    cr_expect_str_eq(s_value(b, "x-access-token"), token_hash, "equal values hash equal");
    cr_expect_str_neq(s_value(b, "api-key"), key_hash, "different values differ");
    static const unsigned char other[HEADERS_KEY_BYTES] = "another install's key, 32 bytes";
    msgpack_object c = s_two(&h, other, "s3cr3t", "k3y", &sb[2], &up[2]);
    cr_expect_str_neq(s_value(c, "x-access-token"), token_hash, "the hash is keyed: another key, another hash");
    for (int i = 0; i < 3; i++) {
        msgpack_unpacked_destroy(&up[i]);
        msgpack_sbuffer_destroy(&sb[i]);
    }
}

Test(headers, what_validate_reads_is_kept)
{
    const char *kept[] = {
        "stripe-signature", "webhook-id", "webhook-timestamp", "webhook-signature", "x-forwarded-for", "via", "host",
        "content-type",     "user-agent", "traceparent"};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        cr_expect(headers_is_kept(kept[i], strlen(kept[i])), "%s", kept[i]);
    const char *hashed[] = {"x-access-token", "api-key", "x-secret", "x-amz-security-token", "authorization"};
    for (size_t i = 0; i < sizeof hashed / sizeof hashed[0]; i++)
        cr_expect(!headers_is_kept(hashed[i], strlen(hashed[i])), "%s", hashed[i]);
}

/* s_fields - n fields named x-h<i> with one-byte values */
static void s_fields(headers_t *h, size_t n)
{
    static char names[80][32];
    cr_assert_leq(n, 80);
    headers_init(h);
    for (unsigned i = 0; i < (unsigned) n; i++) {
        snprintf(names[i], sizeof names[i], "x-h%u", i % 1000);
        headers_add(h, names[i], "v");
    }
}

Test(headers, field_count_bound_is_64)
{
    headers_t h;
    const char *why;
    s_fields(&h, 63);
    cr_expect_eq(headers_verdict(&h, &why), 0);
    s_fields(&h, 64);
    cr_expect_eq(headers_verdict(&h, &why), 0);
    s_fields(&h, 65);
    cr_expect_eq(headers_verdict(&h, &why), 431);
    cr_expect_str_eq(why, "more than 64 header fields");
    cr_expect_eq(h.seen, 65, "every field offered is counted");
    cr_expect_eq(h.count, 64, "no more than the bound is kept");
    s_fields(&h, 80);
    cr_expect_eq(headers_verdict(&h, &why), 431);
}

Test(headers, byte_bound_is_8192_of_names_and_values)
{
    static char value[HEADERS_MAX_BYTES + 2];
    headers_t h;
    const char *why;
    /* "x-big" (5 bytes) + a value: exactly 8192, then one byte more */
    memset(value, 'a', sizeof value - 1);
    value[HEADERS_MAX_BYTES - 5] = '\0';
    headers_init(&h);
    headers_add(&h, "x-big", value);
    cr_expect_eq(h.bytes, 8192);
    cr_expect_eq(headers_verdict(&h, &why), 0);
    memset(value, 'a', sizeof value - 1);
    value[HEADERS_MAX_BYTES - 4] = '\0';
    headers_init(&h);
    headers_add(&h, "x-big", value);
    cr_expect_eq(h.bytes, 8193);
    cr_expect_eq(headers_verdict(&h, &why), 431);
    cr_expect_str_eq(why, "header field names and values over 8192 bytes in all");
}

Test(headers, a_name_over_128_bytes_is_refused_not_dropped)
{
    char name[HEADERS_MAX_NAME + 2];
    headers_t h;
    const char *why;
    memset(name, 'n', sizeof name - 1);
    name[HEADERS_MAX_NAME] = '\0';
    headers_init(&h);
    headers_add(&h, name, "v");
    cr_expect_eq(headers_verdict(&h, &why), 0, "128 bytes is a name a receipt can key");
    name[HEADERS_MAX_NAME] = 'n';
    name[HEADERS_MAX_NAME + 1] = '\0';
    headers_init(&h);
    headers_add(&h, name, "v");
    cr_expect_eq(headers_verdict(&h, &why), 431);
    cr_expect_str_eq(why, "a header field name over 128 bytes");
}

Test(headers, names_must_be_tokens)
{
    static const char *const bad[] = {"", "X Y", "X-Y ", "a:b", "a\tb", "\x80x", "a\"b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        headers_t h;
        const char *why;
        headers_init(&h);
        headers_add(&h, "Host", "x");
        headers_add(&h, bad[i], "v");
        cr_expect_eq(headers_verdict(&h, &why), 400, "name #%zu", i);
    }
    headers_t h;
    const char *why;
    headers_init(&h);
    headers_add(&h, "X-Weird!#$%&'*+-.^_`|~0", "v");
    cr_expect_eq(headers_verdict(&h, &why), 0, "every tchar is allowed");
}

Test(headers, framing_that_disagrees_is_refused)
{
    headers_t h;
    const char *why;
    headers_init(&h);
    headers_add(&h, "Content-Length", "2");
    headers_add(&h, "content-length", "3");
    cr_expect_eq(headers_verdict(&h, &why), 400);
    cr_expect_str_eq(why, "Content-Length fields that disagree");
    headers_init(&h);
    headers_add(&h, "Content-Length", "2");
    headers_add(&h, "Content-Length", "2");
    cr_expect_eq(headers_verdict(&h, &why), 0, "the same length twice is one length");
    headers_init(&h);
    headers_add(&h, "Content-Length", "2");
    headers_add(&h, "Transfer-Encoding", "chunked");
    cr_expect_eq(headers_verdict(&h, &why), 400);
    cr_expect_str_eq(why, "both Content-Length and Transfer-Encoding");
}
