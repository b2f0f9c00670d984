/* test_event - the event envelope: build, encode, decode, ids, JSON, and a
 * corpus of malformed inputs the decoder must refuse with a clear reason.
 *
 * Read top to bottom as a tour of the API: a stage fills an event_head_t,
 * builds a body with event_body_*(), calls event_encode(); the next stage
 * calls event_decode() and reads fields with event_get_*().
 */
#include "event.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <jansson.h>
#include <msgpack.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* good_head - a head every test starts from: a receipt as ingest makes it */
static event_head_t good_head(void)
{
    event_head_t h;
    memset(&h, 0, sizeof h);
    strcpy(h.id, "rcpt_0123456789abcdef01234567");
    strcpy(h.type, "receipt");
    strcpy(h.case_key, "stripe:pi_3NxYz");
    strcpy(h.stage, "ingest.0");
    h.seq = 42;
    strcpy(h.cause, "");
    h.time_ms = 1700000000123;
    return h;
}

/* decode_exact - decode from a buffer of exactly len bytes, so ASan sees
 * any read past the end */
static event_t *decode_exact(const void *data, size_t len, char *err, size_t errlen)
{
    void *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    if (len)
        memcpy(copy, data, len);
    event_t *ev = event_decode(copy, len, err, errlen);
    free(copy);
    return ev;
}

/* pack_nested_maps - {"a":{"a":...{}}} with levels maps in all */
static void pack_nested_maps(msgpack_packer *pk, int levels)
{
    for (int d = 1; d <= levels; d++) {
        msgpack_pack_map(pk, d < levels ? 1 : 0);
        if (d < levels)
            msgpack_pack_str_with_body(pk, "a", 1);
    }
}

Test(event, round_trip_every_value_kind)
{
    event_head_t head = good_head();
    strcpy(head.type, "validated");
    strcpy(head.case_key, "acct 9/pi_3 ~X");
    strcpy(head.cause, "rcpt_0123456789abcdef01234567");

    /* a nested value arrives already encoded, e.g. the PSP's metadata */
    msgpack_sbuffer nested;
    msgpack_sbuffer_init(&nested);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &nested, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "psp", 3);
    msgpack_pack_str_with_body(&pk, "stripe", 6);
    msgpack_pack_str_with_body(&pk, "attempts", 8);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_int64(&pk, 1);
    msgpack_pack_int64(&pk, 2);
    msgpack_pack_int64(&pk, 3);
    msgpack_pack_str_with_body(&pk, "meta", 4);
    msgpack_pack_nil(&pk);

    static const unsigned char sig[] = {0x00, 0xff, 0x00, 0x10, 0x00};
    event_body_t *body = event_body_new();
    cr_assert_not_null(body);
    event_body_str(body, "currency", "EUR");
    event_body_strn(body, "memo", "a\0b", 3);
    event_body_str(body, "note", "");
    event_body_int(body, "amount_minor", 1250);
    event_body_int(body, "refund_minor", -300);
    event_body_int(body, "min", INT64_MIN);
    event_body_int(body, "max", INT64_MAX);
    event_body_bool(body, "livemode", true);
    event_body_bool(body, "test", false);
    event_body_bin(body, "sig", sig, sizeof sig);
    event_body_raw_value(body, "source", nested.data, nested.size);

    size_t len = 0;
    char err[256] = "";
    void *buf = event_encode(&head, body, &len, err, sizeof err);
    cr_assert_not_null(buf, "encode failed: %s", err);
    cr_assert_gt(len, 0);

    event_t *ev = decode_exact(buf, len, err, sizeof err);
    cr_assert_not_null(ev, "decode failed: %s", err);

    const event_head_t *h = event_head(ev);
    cr_expect_str_eq(h->id, head.id);
    cr_expect_str_eq(h->type, "validated");
    cr_expect_str_eq(h->case_key, "acct 9/pi_3 ~X");
    cr_expect_str_eq(h->stage, "ingest.0");
    cr_expect_eq(h->seq, 42);
    cr_expect_str_eq(h->cause, head.cause);
    cr_expect_eq(h->time_ms, 1700000000123);

    cr_expect_eq(event_body_count(ev), 11);

    const char *s;
    size_t slen;
    cr_assert_eq(event_get_str(ev, "currency", &s, &slen), 0);
    cr_expect_eq(slen, 3);
    cr_expect_eq(memcmp(s, "EUR", 3), 0);
    cr_assert_eq(event_get_str(ev, "memo", &s, &slen), 0);
    cr_expect_eq(slen, 3);
    cr_expect_eq(memcmp(s, "a\0b", 3), 0);
    cr_assert_eq(event_get_str(ev, "note", &s, &slen), 0);
    cr_expect_eq(slen, 0);

    char *cur = event_get_strdup(ev, "currency");
    cr_expect_str_eq(cur, "EUR");
    free(cur);
    cr_expect_null(event_get_strdup(ev, "memo"), "a str with a NUL has no C-string copy");
    char sbuf[4];
    cr_expect_str_eq(event_get_strbuf(ev, "currency", sbuf, sizeof sbuf), "EUR");
    cr_expect_str_eq(event_get_strbuf(ev, "currency", sbuf, 3), "", "too long for the buffer: empty");
    cr_expect_str_eq(event_get_strbuf(ev, "memo", sbuf, sizeof sbuf), "", "a str with a NUL: empty");
    cr_expect_str_eq(event_get_strbuf(ev, "amount_minor", sbuf, sizeof sbuf), "", "not a str: empty");
    cr_expect_str_eq(event_get_strbuf(ev, "absent", sbuf, sizeof sbuf), "");

    int64_t i = 0;
    cr_expect_eq(event_get_int(ev, "amount_minor", &i), 0);
    cr_expect_eq(i, 1250);
    cr_expect_eq(event_get_int(ev, "refund_minor", &i), 0);
    cr_expect_eq(i, -300);
    cr_expect_eq(event_get_int(ev, "min", &i), 0);
    cr_expect_eq(i, INT64_MIN);
    cr_expect_eq(event_get_int(ev, "max", &i), 0);
    cr_expect_eq(i, INT64_MAX);

    bool b = false;
    cr_expect_eq(event_get_bool(ev, "livemode", &b), 0);
    cr_expect(b);
    cr_expect_eq(event_get_bool(ev, "test", &b), 0);
    cr_expect_not(b);

    const void *bin;
    size_t blen;
    cr_assert_eq(event_get_bin(ev, "sig", &bin, &blen), 0);
    cr_expect_eq(blen, sizeof sig);
    cr_expect_eq(memcmp(bin, sig, sizeof sig), 0);

    /* wrong type or absent: -1, outputs untouched */
    i = 7;
    cr_expect_eq(event_get_int(ev, "currency", &i), -1);
    cr_expect_eq(i, 7);
    cr_expect_eq(event_get_str(ev, "amount_minor", &s, &slen), -1);
    cr_expect_eq(event_get_bin(ev, "memo", &bin, &blen), -1);
    cr_expect_eq(event_get_bool(ev, "absent", &b), -1);
    cr_expect_eq(event_get_int(ev, "source", &i), -1);
    cr_expect_null(event_get_strdup(ev, "amount_minor"));

    /* the raw body is the last field: the tail of the encoding */
    size_t rlen = 0;
    const void *raw = event_body_raw(ev, &rlen);
    cr_assert_gt(rlen, nested.size);
    cr_expect_eq(memcmp(raw, (const char *) buf + len - rlen, rlen), 0);
    /* ... and one complete msgpack map of 11 entries */
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&u, raw, rlen, &off), MSGPACK_UNPACK_SUCCESS);
    cr_expect_eq(off, rlen);
    cr_expect_eq(u.data.type, MSGPACK_OBJECT_MAP);
    cr_expect_eq(u.data.via.map.size, 11);
    msgpack_unpacked_destroy(&u);
    /* the nested value went through untouched */
    cr_expect_not_null(memmem(raw, rlen, nested.data, nested.size));

    event_destroy(&ev);
    cr_expect_null(ev, "destroy NULLs the pointer");
    event_destroy(&ev); /* and a second destroy is harmless */
    event_body_destroy(&body);
    cr_expect_null(body);
    msgpack_sbuffer_destroy(&nested);
    free(buf);
}

Test(event, body_copy_carries_a_body_into_the_answer)
{
    /* a receipt ... */
    event_head_t head = good_head();
    event_body_t *body = event_body_new();
    event_body_str(body, "psp_event", "evt_1");
    event_body_int(body, "amount_minor", -4200);
    event_body_bin(body, "raw", "\x00\x01", 2);
    msgpack_sbuffer nested;
    msgpack_sbuffer_init(&nested);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &nested, msgpack_sbuffer_write);
    pack_nested_maps(&pk, 3);
    event_body_raw_value(body, "deep", nested.data, nested.size);
    char err[256] = "";
    size_t len;
    void *buf = event_encode(&head, body, &len, err, sizeof err);
    cr_assert_not_null(buf, "%s", err);
    event_t *receipt = event_decode(buf, len, err, sizeof err);
    cr_assert_not_null(receipt, "%s", err);

    /* ... answered by validate with the same body: ids derived from the cause */
    event_head_t out = good_head();
    strcpy(out.type, "validated");
    strcpy(out.stage, "validate.0");
    strcpy(out.cause, event_head(receipt)->id);
    event_derive_id(out.id, out.stage, out.cause, 0);
    event_body_t *copy = event_body_new();
    event_body_copy(copy, receipt);
    size_t len2;
    void *buf2 = event_encode(&out, copy, &len2, err, sizeof err);
    cr_assert_not_null(buf2, "%s", err);
    event_t *validated = event_decode(buf2, len2, err, sizeof err);
    cr_assert_not_null(validated, "%s", err);

    /* byte for byte the same body */
    size_t r1, r2;
    const void *b1 = event_body_raw(receipt, &r1);
    const void *b2 = event_body_raw(validated, &r2);
    cr_assert_eq(r1, r2);
    cr_expect_eq(memcmp(b1, b2, r1), 0);
    cr_expect_eq(event_body_count(validated), 4);
    int64_t amount = 0;
    cr_expect_eq(event_get_int(validated, "amount_minor", &amount), 0);
    cr_expect_eq(amount, -4200);

    /* a copy can be extended; a key repeated from the copy is refused */
    event_body_bool(copy, "signature_ok", true);
    free(buf2);
    buf2 = event_encode(&out, copy, &len2, err, sizeof err);
    cr_assert_not_null(buf2, "%s", err);
    event_t *extended = event_decode(buf2, len2, err, sizeof err);
    cr_assert_not_null(extended, "%s", err);
    cr_expect_eq(event_body_count(extended), 5);
    event_body_int(copy, "amount_minor", 1);
    size_t len3;
    void *buf3 = event_encode(&out, copy, &len3, err, sizeof err);
    cr_expect_null(buf3);
    cr_expect_str_eq(err, "body: duplicate key \"amount_minor\"");

    /* a copy without one field: the others, in order; the size packed so far */
    event_body_t *less = event_body_new();
    event_body_copy_except(less, receipt, "raw");
    cr_expect_eq(event_body_size(less) + (1 + 3) + (2 + 2), event_body_size(body),
                 "the body less \"raw\" (fixstr) and its two bytes (bin 8)");
    free(buf3);
    buf3 = event_encode(&out, less, &len3, err, sizeof err);
    cr_assert_not_null(buf3, "%s", err);
    event_t *without = event_decode(buf3, len3, err, sizeof err);
    cr_assert_not_null(without, "%s", err);
    const void *gone;
    size_t gonelen;
    cr_expect_eq(event_body_count(without), 3);
    cr_expect_neq(event_get_bin(without, "raw", &gone, &gonelen), 0, "the field left out");
    cr_expect_eq(event_get_int(without, "amount_minor", &amount), 0, "the others kept");
    event_destroy(&without);
    event_body_destroy(&less);
    free(buf3);

    event_destroy(&extended);
    event_destroy(&validated);
    event_destroy(&receipt);
    event_body_destroy(&copy);
    event_body_destroy(&body);
    msgpack_sbuffer_destroy(&nested);
    free(buf);
    free(buf2);
}

Test(event, to_json_renders_every_field)
{
    event_head_t head = good_head();
    event_body_t *body = event_body_new();
    event_body_str(body, "currency", "EUR");
    event_body_int(body, "amount_minor", -1250);
    event_body_bool(body, "livemode", false);
    event_body_bin(body, "text", "h\xc3\xa9llo", 6); /* valid UTF-8: a JSON string */
    event_body_bin(body, "sig", "\x00\xff\x01", 3);  /* not text: {"$bin": base64} */
    msgpack_sbuffer nested;
    msgpack_sbuffer_init(&nested);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &nested, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_nil(&pk);
    msgpack_pack_int64(&pk, 3);
    event_body_raw_value(body, "list", nested.data, nested.size);
    char err[256] = "";
    size_t len;
    void *buf = event_encode(&head, body, &len, err, sizeof err);
    cr_assert_not_null(buf, "%s", err);
    event_t *ev = event_decode(buf, len, err, sizeof err);
    cr_assert_not_null(ev, "%s", err);

    char *text = event_to_json(ev);
    cr_assert_not_null(text);
    cr_expect_null(strchr(text, '\n'), "one line");
    cr_expect_not_null(strstr(text, "\"type\":\"receipt\""), "%s", text);
    cr_expect_not_null(strstr(text, "\"sig\":{\"$bin\":\"AP8B\"}"), "%s", text);
    cr_expect_not_null(strstr(text, "\"list\":[null,3]"), "%s", text);

    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    cr_assert_not_null(root, "%s: %s", text, jerr.text);
    cr_expect_str_eq(json_string_value(json_object_get(root, "id")), head.id);
    cr_expect_str_eq(json_string_value(json_object_get(root, "case_key")), head.case_key);
    cr_expect_str_eq(json_string_value(json_object_get(root, "stage")), "ingest.0");
    cr_expect_str_eq(json_string_value(json_object_get(root, "cause")), "");
    cr_expect_eq(json_integer_value(json_object_get(root, "seq")), 42);
    cr_expect_eq(json_integer_value(json_object_get(root, "time_ms")), 1700000000123);
    json_t *jb = json_object_get(root, "body");
    cr_assert(json_is_object(jb));
    cr_expect_eq(json_object_size(jb), 6);
    cr_expect_str_eq(json_string_value(json_object_get(jb, "currency")), "EUR");
    cr_expect_eq(json_integer_value(json_object_get(jb, "amount_minor")), -1250);
    cr_expect(json_is_false(json_object_get(jb, "livemode")));
    cr_expect_str_eq(json_string_value(json_object_get(jb, "text")), "h\xc3\xa9llo");
    json_decref(root);

    free(text);
    event_destroy(&ev);
    event_body_destroy(&body);
    msgpack_sbuffer_destroy(&nested);
    free(buf);
}

/* event_to_json writes its text directly; it must be byte for byte what
 * jansson makes of the same tree (event_body_to_json under the head), for
 * every kind of value: escapes, control bytes, NUL in a str, UTF-8, text
 * that is not UTF-8, bins, the integer range, nesting */
Test(event, to_json_is_the_jansson_dump_of_the_same_values)
{
    event_head_t head = good_head();
    snprintf(head.cause, sizeof head.cause, "rcpt_1");
    event_body_t *body = event_body_new();
    event_body_str(body, "quote", "say \"hi\" \\ bye / slash");
    event_body_str(body, "controls", "a\bb\fc\nd\re\tf\x01g\x1fh\x7fi");
    event_body_strn(body, "nul", "a\0b", 3);
    event_body_str(body, "utf8", "\xe2\x82\xac \xf0\x9f\x92\xb8 \xc3\xa9");
    event_body_strn(body, "not_utf8", "ab\xff\xfe", 4);
    event_body_strn(body, "surrogate", "\xed\xa0\x80", 3);
    event_body_bin(body, "bin_text", "plain", 5);
    event_body_bin(body, "bin_nul", "a\0b", 3);
    event_body_str(body, "empty", "");
    event_body_int(body, "min", INT64_MIN);
    event_body_int(body, "max", INT64_MAX);
    event_body_int(body, "zero", 0);
    event_body_bool(body, "yes", true);
    msgpack_sbuffer nested;
    msgpack_sbuffer_init(&nested);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &nested, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "arr", 3);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_nil(&pk);
    msgpack_pack_uint64(&pk, (uint64_t) INT64_MAX);
    msgpack_pack_array(&pk, 0);
    msgpack_pack_map(&pk, 0);
    msgpack_pack_str_with_body(&pk, "k\"\n", 3);
    msgpack_pack_false(&pk);
    msgpack_pack_str_with_body(&pk, "\xff", 1); /* a key that is not text */
    msgpack_pack_int64(&pk, -7);
    event_body_raw_value(body, "nested", nested.data, nested.size);
    char err[256] = "";
    size_t len;
    void *buf = event_encode(&head, body, &len, err, sizeof err);
    cr_assert_not_null(buf, "%s", err);
    event_t *ev = event_decode(buf, len, err, sizeof err);
    cr_assert_not_null(ev, "%s", err);

    json_t *tree = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:o}", "id", head.id, "type", head.type, "case_key",
                             head.case_key, "stage", head.stage, "seq", (json_int_t) head.seq, "cause", head.cause,
                             "time_ms", (json_int_t) head.time_ms, "body", (json_t *) event_body_to_json(ev));
    cr_assert_not_null(tree);
    char *want = json_dumps(tree, JSON_COMPACT);
    char *got = event_to_json(ev);
    cr_assert_not_null(got);
    cr_expect_str_eq(got, want);
    cr_expect_not_null(strstr(got, "\"nul\":\"a\\u0000b\""), "%s", got);
    cr_expect_not_null(strstr(got, "\"$b64:/w==\":-7"), "%s", got);
    cr_expect_not_null(strstr(got, "\"surrogate\":{\"$bin\":\"7aCA\"}"), "%s", got);
    free(got);
    free(want);
    json_decref(tree);
    event_destroy(&ev);
    event_body_destroy(&body);
    msgpack_sbuffer_destroy(&nested);
    free(buf);
}

Test(event, derive_id_is_a_pure_function_of_its_cause)
{
    char a[EVENT_ID_MAX + 1], b[EVENT_ID_MAX + 1];
    event_derive_id(a, "triage.1", "rcpt_00ff", 0);
    event_derive_id(b, "triage.1", "rcpt_00ff", 0);
    cr_expect_str_eq(a, b, "same cause, same id: a re-sent event keeps its id");

    /* form: "<stage>-" + 24 lowercase hex digits */
    cr_expect_eq(strlen(a), strlen("triage.1-") + 24);
    cr_expect_eq(strncmp(a, "triage.1-", 9), 0);
    for (const char *p = a + 9; *p; p++)
        cr_expect(strchr("0123456789abcdef", *p) != NULL, "not lowercase hex: %s", a);

    /* the digits are the first 12 bytes of SHA-256(stage NUL cause NUL "0") */
    static const char input[] = "triage.1\0rcpt_00ff\0"
                                "0";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen;
    cr_assert_eq(EVP_Digest(input, sizeof input - 1, md, &mdlen, EVP_sha256(), NULL), 1);
    char want[EVENT_ID_MAX + 1] = "triage.1-";
    for (int i = 0; i < 12; i++)
        sprintf(want + 9 + 2 * i, "%02x", md[i]);
    cr_expect_str_eq(a, want);

    /* every input matters */
    event_derive_id(b, "triage.2", "rcpt_00ff", 0);
    cr_expect_str_neq(a, b);
    event_derive_id(b, "triage.1", "rcpt_00fe", 0);
    cr_expect_str_neq(a, b);
    event_derive_id(b, "triage.1", "rcpt_00ff", 1);
    cr_expect_str_neq(a, b);
    /* the separators keep ("ab", "c") and ("a", "bc") apart */
    event_derive_id(a, "ab", "c", 0);
    event_derive_id(b, "a", "bc", 0);
    cr_expect_str_neq(a + 3, b + 2);

    /* a derived id from the longest stage and cause is a valid event id */
    char stage[EVENT_STAGE_MAX + 1], cause[EVENT_ID_MAX + 1];
    memset(stage, 's', EVENT_STAGE_MAX);
    stage[EVENT_STAGE_MAX] = '\0';
    memset(cause, 'c', EVENT_ID_MAX);
    cause[EVENT_ID_MAX] = '\0';
    event_head_t head = good_head();
    strcpy(head.stage, stage);
    strcpy(head.cause, cause);
    event_derive_id(head.id, stage, cause, 4294967295u);
    char err[256] = "";
    size_t len;
    void *buf = event_encode(&head, NULL, &len, err, sizeof err);
    cr_expect_not_null(buf, "%s", err);
    free(buf);
}

Test(event, mint_id_is_fresh_each_time)
{
    char a[EVENT_ID_MAX + 1], b[EVENT_ID_MAX + 1];
    event_mint_id(a, "rcpt");
    event_mint_id(b, "rcpt");
    cr_expect_str_neq(a, b);
    cr_expect_eq(strlen(a), strlen("rcpt_") + 24);
    cr_expect_eq(strncmp(a, "rcpt_", 5), 0);
    for (const char *p = a + 5; *p; p++)
        cr_expect(strchr("0123456789abcdef", *p) != NULL, "not lowercase hex: %s", a);
}

Test(event, type_registry)
{
    cr_expect(event_type_known("receipt"));
    cr_expect(event_type_known("access_denied"));
    cr_expect(event_type_known("step"));
    cr_expect_not(event_type_known("Receipt"));
    cr_expect_not(event_type_known(""));
    cr_expect_not(event_type_known(NULL));
}

Test(event, accepts_every_limit_exactly)
{
    event_head_t head = good_head();
    memset(head.id, 'i', EVENT_ID_MAX);
    memset(head.case_key, '~', EVENT_KEY_MAX);
    head.case_key[0] = ' ';
    memset(head.stage, 'z', EVENT_STAGE_MAX);
    memset(head.cause, 'C', EVENT_ID_MAX);
    head.seq = INT64_MAX;
    head.time_ms = 0;

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    event_body_t *body = event_body_new();
    /* the body is depth 1, so a value may nest 7 more maps */
    pack_nested_maps(&pk, 7);
    event_body_raw_value(body, "deep", sb.data, sb.size);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_array(&pk, EVENT_MAX_ELEMENTS);
    for (int i = 0; i < EVENT_MAX_ELEMENTS; i++)
        msgpack_pack_int64(&pk, i);
    event_body_raw_value(body, "wide", sb.data, sb.size);
    char key[EVENT_KEY_MAX + 1];
    memset(key, 'k', EVENT_KEY_MAX);
    key[EVENT_KEY_MAX] = '\0';
    event_body_int(body, key, 1);

    char err[256] = "";
    size_t len;
    void *buf = event_encode(&head, body, &len, err, sizeof err);
    cr_assert_not_null(buf, "%s", err);
    event_t *ev = decode_exact(buf, len, err, sizeof err);
    cr_assert_not_null(ev, "%s", err);
    cr_expect_eq(event_head(ev)->seq, (uint64_t) INT64_MAX);
    cr_expect_eq(strlen(event_head(ev)->case_key), EVENT_KEY_MAX);
    int64_t one = 0;
    cr_expect_eq(event_get_int(ev, key, &one), 0);
    cr_expect_eq(one, 1);
    event_destroy(&ev);
    free(buf);
    event_body_destroy(&body);
    msgpack_sbuffer_destroy(&sb);
}

Test(event, encode_refuses_what_decode_would_reject)
{
    char err[256];
    size_t len = 0;

    event_head_t head = good_head();
    strcpy(head.type, "foo");
    cr_expect_null(event_encode(&head, NULL, &len, err, sizeof err));
    cr_expect_str_eq(err, "field 2 (type): unknown event type \"foo\"");

    head = good_head();
    strcpy(head.id, "ev 1");
    cr_expect_null(event_encode(&head, NULL, &len, err, sizeof err));
    cr_expect_str_eq(err, "field 1 (id): bad character 0x20 at byte 2");

    head = good_head();
    head.seq = 0;
    cr_expect_null(event_encode(&head, NULL, &len, err, sizeof err));
    cr_expect_str_eq(err, "field 5 (seq): must be >= 1, got 0");

    head = good_head();
    head.time_ms = -5;
    cr_expect_null(event_encode(&head, NULL, &len, err, sizeof err));
    cr_expect_str_eq(err, "field 7 (time_ms): must be >= 0, got -5");

    /* an unterminated id is read only within its array, then refused */
    head = good_head();
    memset(head.id, 'x', sizeof head.id);
    cr_expect_null(event_encode(&head, NULL, &len, err, sizeof err));
    cr_expect_str_eq(err, "field 1 (id): 65 bytes exceeds 64");

    head = good_head();
    event_body_t *body = event_body_new();
    event_body_int(body, "amount_minor", 1);
    event_body_int(body, "amount_minor", 2);
    cr_expect_null(event_encode(&head, body, &len, err, sizeof err));
    cr_expect_str_eq(err, "body: duplicate key \"amount_minor\"");
    event_body_destroy(&body);

    body = event_body_new();
    event_body_int(body, "", 1);
    cr_expect_null(event_encode(&head, body, &len, err, sizeof err));
    cr_expect_str_eq(err, "body: empty key");
    event_body_destroy(&body);

    /* raw values are checked like everything else */
    body = event_body_new();
    event_body_raw_value(body, "rate", "\xcb\x3f\xf0\0\0\0\0\0\0", 9);
    cr_expect_null(event_encode(&head, body, &len, err, sizeof err));
    cr_expect_str_eq(err, "body.rate: float not allowed (money is integer minor units)");
    event_body_destroy(&body);

    /* a raw value must be exactly one object, or the pairs after it shift */
    body = event_body_new();
    event_body_raw_value(body, "two", "\x01\x02", 2);
    event_body_int(body, "after", 1);
    cr_expect_null(event_encode(&head, body, &len, err, sizeof err));
    cr_expect_str_eq(err, "body.two: trailing bytes after raw value: 1");
    event_body_destroy(&body);

    body = event_body_new();
    event_body_raw_value(body, "cut", "\x92\x01", 2);
    cr_expect_null(event_encode(&head, body, &len, err, sizeof err));
    cr_expect_str_eq(err, "truncated at offset 2 in body.cut[1]");
    event_body_destroy(&body);

    body = event_body_new();
    event_body_raw_value(body, "none", "", 0);
    cr_expect_null(event_encode(&head, body, &len, err, sizeof err));
    cr_expect_str_eq(err, "truncated at offset 0 in body.none");
    event_body_destroy(&body);

    /* a raw container already at body depth 2 may nest 7 levels in all */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_nested_maps(&pk, 8);
    body = event_body_new();
    event_body_raw_value(body, "deep", sb.data, sb.size);
    cr_expect_null(event_encode(&head, body, &len, err, sizeof err));
    cr_expect_str_eq(err, "body.deep.a.a.a.a.a.a.a: depth exceeds 8");
    event_body_destroy(&body);
    msgpack_sbuffer_destroy(&sb);

    /* too big: the builder stops at EVENT_MAX_BYTES rather than grow */
    body = event_body_new();
    void *big = calloc(1, EVENT_MAX_BYTES);
    event_body_bin(body, "blob", big, EVENT_MAX_BYTES);
    cr_expect_null(event_encode(&head, body, &len, err, sizeof err));
    cr_expect_str_eq(err, "body.blob: body would exceed 1048576 bytes");
    free(big);
    event_body_destroy(&body);

    /* and the NULL body is the empty map */
    void *buf = event_encode(&head, NULL, &len, err, sizeof err);
    cr_assert_not_null(buf, "%s", err);
    event_t *ev = event_decode(buf, len, err, sizeof err);
    cr_assert_not_null(ev, "%s", err);
    cr_expect_eq(event_body_count(ev), 0);
    event_destroy(&ev);
    free(buf);
}

/* ---------------------------------------------------------------------
 * The malformed corpus. Each case is a good event with one field
 * replaced, a whole input given as literal msgpack bytes, or an input
 * generated in code; each must be refused with a reason containing want.
 */

typedef struct {
    char kind; /* s str, r repeated char, i int, u uint, d float64, f float32, n nil, b bool, x raw msgpack */
    const char *s;
    size_t n;
    int64_t i;
    uint64_t u;
    double d;
} val_t;

#define STR(x)                                                                                                         \
    {                                                                                                                  \
        .kind = 's', .s = (x), .n = sizeof(x) - 1                                                                      \
    }
#define REP(c, count)                                                                                                  \
    {                                                                                                                  \
        .kind = 'r', .s = (c), .n = (count)                                                                            \
    }
#define INT(x)                                                                                                         \
    {                                                                                                                  \
        .kind = 'i', .i = (x)                                                                                          \
    }
#define UINT(x)                                                                                                        \
    {                                                                                                                  \
        .kind = 'u', .u = (x)                                                                                          \
    }
#define F64(x)                                                                                                         \
    {                                                                                                                  \
        .kind = 'd', .d = (x)                                                                                          \
    }
#define F32(x)                                                                                                         \
    {                                                                                                                  \
        .kind = 'f', .d = (x)                                                                                          \
    }
#define NIL                                                                                                            \
    {                                                                                                                  \
        .kind = 'n'                                                                                                    \
    }
#define BOOL(x)                                                                                                        \
    {                                                                                                                  \
        .kind = 'b', .i = (x)                                                                                          \
    }
#define MP(x)                                                                                                          \
    {                                                                                                                  \
        .kind = 'x', .s = (x), .n = sizeof(x) - 1                                                                      \
    }

#define WHOLE (-1) /* val is the whole input */
#define GEN (-2)   /* gen builds the input */

typedef struct {
    const char *name;
    int field; /* 0..8: replace that field of a good event with val */
    val_t val;
    void (*gen)(msgpack_sbuffer *sb);
    const char *want;
} bad_case_t;

/* pack_val - append one value described by v */
static void pack_val(msgpack_sbuffer *sb, const val_t *v)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    switch (v->kind) {
    case 's':
        msgpack_pack_str_with_body(&pk, v->s, v->n);
        break;
    case 'r': {
        char *s = malloc(v->n);
        memset(s, v->s[0], v->n);
        msgpack_pack_str_with_body(&pk, s, v->n);
        free(s);
        break;
    }
    case 'i':
        msgpack_pack_int64(&pk, v->i);
        break;
    case 'u':
        msgpack_pack_uint64(&pk, v->u);
        break;
    case 'd':
        msgpack_pack_double(&pk, v->d);
        break;
    case 'f':
        msgpack_pack_float(&pk, (float) v->d);
        break;
    case 'n':
        msgpack_pack_nil(&pk);
        break;
    case 'b':
        v->i ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
        break;
    case 'x':
        if (v->n > 0) /* memcpy from NULL is undefined even for 0 bytes */
            msgpack_sbuffer_write(sb, v->s, v->n);
        break;
    default:
        cr_assert_fail("bad val kind %c", v->kind);
    }
}

/* pack_good_field - field i of a good receipt (nil past the 9th) */
static void pack_good_field(msgpack_packer *pk, size_t i)
{
    static const char *strs[] = {NULL, "ev_1", "receipt", "case-1", "ingest.0", NULL, "", NULL, NULL};
    switch (i) {
    case 0:
        msgpack_pack_uint64(pk, EVENT_VERSION);
        break;
    case 5:
        msgpack_pack_uint64(pk, 7);
        break;
    case 7:
        msgpack_pack_int64(pk, 1700000000000);
        break;
    case 8:
        msgpack_pack_map(pk, 1);
        msgpack_pack_str_with_body(pk, "amount_minor", 12);
        msgpack_pack_int64(pk, 1250);
        break;
    case 1:
    case 2:
    case 3:
    case 4:
    case 6:
        msgpack_pack_str_with_body(pk, strs[i], strlen(strs[i]));
        break;
    default:
        msgpack_pack_nil(pk);
    }
}

/* pack_event - an array of n fields, good except field bad (-1: none),
 * with the body written by body_fn when given */
static void pack_event(msgpack_sbuffer *sb, size_t n, int bad, const val_t *v, void (*body_fn)(msgpack_packer *))
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        if ((int) i == bad)
            pack_val(sb, v);
        else if (i == 8 && body_fn)
            body_fn(&pk);
        else
            pack_good_field(&pk, i);
    }
}

static void gen_array_of_8(msgpack_sbuffer *sb)
{
    pack_event(sb, 8, -1, NULL, NULL);
}
static void gen_array_of_10(msgpack_sbuffer *sb)
{
    pack_event(sb, 10, -1, NULL, NULL);
}

static void gen_trailing_byte(msgpack_sbuffer *sb)
{
    pack_event(sb, 9, -1, NULL, NULL);
    msgpack_sbuffer_write(sb, "\x00", 1);
}

static void gen_trailing_event(msgpack_sbuffer *sb)
{
    pack_event(sb, 9, -1, NULL, NULL);
    pack_event(sb, 9, -1, NULL, NULL);
}

static void body_big(msgpack_packer *pk)
{
    void *zeros = calloc(1, EVENT_MAX_BYTES);
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "blob", 4);
    msgpack_pack_bin_with_body(pk, zeros, EVENT_MAX_BYTES);
    free(zeros);
}
static void gen_over_max_bytes(msgpack_sbuffer *sb)
{
    pack_event(sb, 9, -1, NULL, body_big);
}

static void body_key_129(msgpack_packer *pk)
{
    char key[EVENT_KEY_MAX + 1];
    memset(key, 'k', sizeof key);
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, key, sizeof key);
    msgpack_pack_int64(pk, 1);
}
static void gen_key_129(msgpack_sbuffer *sb)
{
    pack_event(sb, 9, -1, NULL, body_key_129);
}

static void body_depth_9_maps(msgpack_packer *pk)
{
    pack_nested_maps(pk, 9);
}
static void gen_depth_9_maps(msgpack_sbuffer *sb)
{
    pack_event(sb, 9, -1, NULL, body_depth_9_maps);
}

static void body_depth_9_arrays(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "a", 1);
    for (int d = 2; d <= 9; d++)
        msgpack_pack_array(pk, d < 9 ? 1 : 0);
}
static void gen_depth_9_arrays(msgpack_sbuffer *sb)
{
    pack_event(sb, 9, -1, NULL, body_depth_9_arrays);
}

static void body_array_1025(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "xs", 2);
    msgpack_pack_array(pk, EVENT_MAX_ELEMENTS + 1);
    for (int i = 0; i <= EVENT_MAX_ELEMENTS; i++)
        msgpack_pack_int64(pk, i);
}
static void gen_array_1025(msgpack_sbuffer *sb)
{
    pack_event(sb, 9, -1, NULL, body_array_1025);
}

static void body_map_1025(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "m", 1);
    msgpack_pack_map(pk, EVENT_MAX_ELEMENTS + 1);
    for (int i = 0; i <= EVENT_MAX_ELEMENTS; i++) {
        char key[16];
        int n = snprintf(key, sizeof key, "k%d", i);
        msgpack_pack_str_with_body(pk, key, (size_t) n);
        msgpack_pack_int64(pk, i);
    }
}
static void gen_map_1025(msgpack_sbuffer *sb)
{
    pack_event(sb, 9, -1, NULL, body_map_1025);
}

static const bad_case_t s_bad[] = {
    /* not an event at all */
    {"empty buffer", WHOLE, MP(""), NULL, "empty input"},
    {"top-level map", WHOLE, MP("\x80"), NULL, "event: expected an array of 9 elements, got map"},
    {"top-level int", WHOLE, MP("\x01"), NULL, "event: expected an array of 9 elements, got int"},
    {"top-level str", WHOLE,
     MP("\xa2"
        "hi"),
     NULL, "got str"},
    {"top-level nil", WHOLE, MP("\xc0"), NULL, "got nil"},
    {"top-level float", WHOLE, MP("\xcb\0\0\0\0\0\0\0\0"), NULL, "got float64"},
    {"empty array", WHOLE, MP("\x90"), NULL, "event: array of 0 elements, expected 9"},
    {"array claiming 2^32-1 elements", WHOLE, MP("\xdd\xff\xff\xff\xff"), NULL,
     "event: array of 4294967295 elements, expected 9"},
    {"reserved byte 0xc1", WHOLE, MP("\xc1"), NULL, "invalid msgpack byte 0xc1 at offset 0"},
    {"array header only", WHOLE, MP("\x99"), NULL, "truncated at offset 1 in field 0"},
    {"array16 length cut", WHOLE, MP("\xdc\x00"), NULL, "truncated at offset 0 in event"},
    {"array of 8", GEN, NIL, gen_array_of_8, "event: array of 8 elements, expected 9"},
    {"array of 10", GEN, NIL, gen_array_of_10, "event: array of 10 elements, expected 9"},
    {"trailing byte", GEN, NIL, gen_trailing_byte, "trailing bytes after event: 1"},
    {"trailing second event", GEN, NIL, gen_trailing_event, "trailing bytes after event: "},
    {"over EVENT_MAX_BYTES", GEN, NIL, gen_over_max_bytes, "exceeds 1048576"},

    /* field 0: version */
    {"version as str", 0, STR("1"), NULL, "field 0 (version): expected int, got str"},
    {"version 2", 0, INT(2), NULL, "field 0 (version): unsupported version 2"},
    {"version 0", 0, INT(0), NULL, "field 0 (version): unsupported version 0"},
    {"version -1", 0, INT(-1), NULL, "field 0 (version): unsupported version -1"},
    {"version nil", 0, NIL, NULL, "field 0 (version): expected int, got nil"},

    /* field 1: id */
    {"id as int", 1, INT(5), NULL, "field 1 (id): expected str, got int"},
    {"id as bin", 1,
     MP("\xc4\x04"
        "ev_1"),
     NULL, "field 1 (id): expected str, got bin"},
    {"id empty", 1, STR(""), NULL, "field 1 (id): empty"},
    {"id 65 bytes", 1, REP("a", 65), NULL, "field 1 (id): 65 bytes exceeds 64"},
    {"id with space", 1, STR("ev 1"), NULL, "field 1 (id): bad character 0x20 at byte 2"},
    {"id with slash", 1, STR("ev/1"), NULL, "field 1 (id): bad character 0x2f"},
    {"id with NUL", 1,
     STR("ev\0"
         "1"),
     NULL, "field 1 (id): bad character 0x00 at byte 2"},
    {"id claiming a 4 GB str", 1,
     MP("\xdb\xff\xff\xff\xff"
        "ev"),
     NULL, "truncated at offset 2 in field 1"},

    /* field 2: type */
    {"type as int", 2, INT(1), NULL, "field 2 (type): expected str, got int"},
    {"type unknown", 2, STR("foo"), NULL, "field 2 (type): unknown event type \"foo\""},
    {"type empty", 2, STR(""), NULL, "field 2 (type): unknown event type \"\""},
    {"type wrong case", 2, STR("RECEIPT"), NULL, "unknown event type \"RECEIPT\""},
    {"type 33 bytes", 2, REP("a", 33), NULL, "field 2 (type): unknown event type"},
    {"type with a trailing NUL", 2, STR("receipt\0"), NULL, "unknown event type \"receipt?\""},

    /* field 3: case_key */
    {"case_key nil", 3, NIL, NULL, "field 3 (case_key): expected str, got nil"},
    {"case_key with newline", 3, STR("a\nb"), NULL, "field 3 (case_key): bad character 0x0a at byte 1"},
    {"case_key with DEL", 3, STR("a\x7f"), NULL, "field 3 (case_key): bad character 0x7f"},
    {"case_key not ASCII", 3, STR("caf\xc3\xa9"), NULL, "field 3 (case_key): bad character 0xc3"},
    {"case_key 129 bytes", 3, REP("k", 129), NULL, "field 3 (case_key): 129 bytes exceeds 128"},

    /* field 4: stage */
    {"stage as bool", 4, BOOL(1), NULL, "field 4 (stage): expected str, got bool"},
    {"stage uppercase", 4, STR("Triage.1"), NULL, "field 4 (stage): bad character 0x54 at byte 0"},
    {"stage with colon", 4, STR("triage:1"), NULL, "field 4 (stage): bad character 0x3a"},
    {"stage empty", 4, STR(""), NULL, "field 4 (stage): empty"},
    {"stage 25 bytes", 4, REP("s", 25), NULL, "field 4 (stage): 25 bytes exceeds 24"},

    /* field 5: seq */
    {"seq as str", 5, STR("7"), NULL, "field 5 (seq): expected int, got str"},
    {"seq 0", 5, INT(0), NULL, "field 5 (seq): must be >= 1, got 0"},
    {"seq negative", 5, INT(-3), NULL, "field 5 (seq): must be >= 1, got -3"},
    {"seq above INT64_MAX", 5, UINT(UINT64_MAX), NULL, "field 5 (seq): 18446744073709551615 exceeds INT64_MAX"},
    {"seq as float", 5, F64(7.0), NULL, "field 5 (seq): expected int, got float64"},

    /* field 6: cause */
    {"cause as int", 6, INT(1), NULL, "field 6 (cause): expected str, got int"},
    {"cause with space", 6, STR("ev 1"), NULL, "field 6 (cause): bad character 0x20"},
    {"cause 65 bytes", 6, REP("c", 65), NULL, "field 6 (cause): 65 bytes exceeds 64"},

    /* field 7: time_ms */
    {"time_ms negative", 7, INT(-1), NULL, "field 7 (time_ms): must be >= 0, got -1"},
    {"time_ms float64", 7, F64(1.7e12), NULL, "field 7 (time_ms): expected int, got float64"},
    {"time_ms float32", 7, F32(1.0), NULL, "field 7 (time_ms): expected int, got float32"},
    {"time_ms as str", 7, STR("1700000000000"), NULL, "field 7 (time_ms): expected int, got str"},
    {"time_ms above INT64_MAX", 7, UINT((uint64_t) INT64_MAX + 1), NULL,
     "field 7 (time_ms): 9223372036854775808 exceeds INT64_MAX"},

    /* field 8: body */
    {"body as array", 8, MP("\x90"), NULL, "field 8 (body): expected map, got array"},
    {"body nil", 8, NIL, NULL, "field 8 (body): expected map, got nil"},
    {"body as str", 8, STR("{}"), NULL, "field 8 (body): expected map, got str"},
    {"float value", 8,
     MP("\x81\xa6"
        "amount"
        "\xcb\x40\x29\0\0\0\0\0\0"),
     NULL, "body.amount: float not allowed (money is integer minor units)"},
    {"float32 value", 8,
     MP("\x81\xa6"
        "amount"
        "\xca\x41\x48\0\0"),
     NULL, "body.amount: float not allowed"},
    {"nested float", 8,
     MP("\x81\xa6"
        "refund"
        "\x81\xa6"
        "amount"
        "\xcb\x3f\xf0\0\0\0\0\0\0"),
     NULL, "body.refund.amount: float not allowed"},
    {"float in an array", 8,
     MP("\x81\xa2"
        "xs"
        "\x92\x01\xcb\x40\0\0\0\0\0\0\0"),
     NULL, "body.xs[1]: float not allowed"},
    {"fixext value", 8,
     MP("\x81\xa1"
        "e"
        "\xd4\x01\x00"),
     NULL, "body.e: ext not allowed"},
    {"ext8 timestamp nested", 8,
     MP("\x81\xa1"
        "m"
        "\x81\xa1"
        "t"
        "\xc7\x04\xff\0\0\0\0"),
     NULL, "body.m.t: ext not allowed"},
    {"duplicate key", 8,
     MP("\x82\xa1"
        "a"
        "\x01\xa1"
        "a"
        "\x02"),
     NULL, "body: duplicate key \"a\""},
    {"duplicate key nested", 8,
     MP("\x81\xa1"
        "m"
        "\x83\xa1"
        "x"
        "\x01\xa1"
        "y"
        "\x02\xa1"
        "x"
        "\x03"),
     NULL, "body.m: duplicate key \"x\""},
    {"int key", 8, MP("\x81\x01\x01"), NULL, "body: key 0 is int, expected str"},
    {"bin key", 8,
     MP("\x81\xc4\x01"
        "a"
        "\x01"),
     NULL, "body: key 0 is bin, expected str"},
    {"nil key", 8,
     MP("\x82\xa1"
        "a"
        "\x01\xc0\x01"),
     NULL, "body: key 1 is nil, expected str"},
    {"empty key", 8, MP("\x81\xa0\x01"), NULL, "body: empty key"},
    {"key 129 bytes", GEN, NIL, gen_key_129, "body: key of 129 bytes exceeds 128"},
    {"depth 9 of maps", GEN, NIL, gen_depth_9_maps, "body.a.a.a.a.a.a.a.a: depth exceeds 8"},
    {"depth 9 of arrays", GEN, NIL, gen_depth_9_arrays, "body.a[0][0][0][0][0][0][0]: depth exceeds 8"},
    {"array of 1025", GEN, NIL, gen_array_1025, "body.xs: array of 1025 elements exceeds 1024"},
    {"map of 1025", GEN, NIL, gen_map_1025, "body.m: map of 1025 entries exceeds 1024"},
    {"array claiming 2^32-1 elements", 8,
     MP("\x81\xa1"
        "x"
        "\xdd\xff\xff\xff\xff"),
     NULL, "body.x: array of 4294967295 elements exceeds 1024"},
    {"map claiming 2^32-1 entries", 8,
     MP("\x81\xa1"
        "x"
        "\xdf\xff\xff\xff\xff"),
     NULL, "body.x: map of 4294967295 entries exceeds 1024"},
    {"body claiming 2^32-1 entries", 8, MP("\xdf\xff\xff\xff\xff"), NULL,
     "body: map of 4294967295 entries exceeds 1024"},
    {"str claiming 4 GB", 8,
     MP("\x81\xa1"
        "x"
        "\xdb\xff\xff\xff\xff"
        "ab"),
     NULL, "in body.x"},
    {"bin claiming 4 GB", 8,
     MP("\x81\xa1"
        "x"
        "\xc6\xff\xff\xff\xff"),
     NULL, "in body.x"},
    {"ext claiming 4 GB", 8,
     MP("\x81\xa1"
        "x"
        "\xc9\xff\xff\xff\xff\x01"),
     NULL, "in body.x"},
    {"int above INT64_MAX", 8,
     MP("\x81\xa1"
        "n"
        "\xcf\xff\xff\xff\xff\xff\xff\xff\xff"),
     NULL, "body.n: integer 18446744073709551615 exceeds INT64_MAX"},
    {"0xc1 in the body", 8,
     MP("\x81\xa1"
        "x"
        "\xc1"),
     NULL, "invalid msgpack byte 0xc1"},
    {"map missing its last value", 8,
     MP("\x82\xa1"
        "a"
        "\x01\xa1"
        "b"),
     NULL, "truncated at offset"},
    {"0xc1 as the case_key", 3, MP("\xc1"), NULL, "invalid msgpack byte 0xc1 at offset"},
};

Test(event_decode, rejects_malformed_corpus)
{
    size_t n = sizeof s_bad / sizeof s_bad[0];
    cr_assert_geq(n, 50, "the corpus has %zu cases", n);
    for (size_t i = 0; i < n; i++) {
        const bad_case_t *c = &s_bad[i];
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        if (c->field == GEN)
            c->gen(&sb);
        else if (c->field == WHOLE)
            pack_val(&sb, &c->val);
        else
            pack_event(&sb, 9, c->field, &c->val, NULL);
        char err[256] = "";
        event_t *ev = decode_exact(sb.data, sb.size, err, sizeof err);
        cr_expect_null(ev, "%s: accepted", c->name);
        event_destroy(&ev);
        cr_expect_neq(err[0], '\0', "%s: no reason", c->name);
        cr_expect_null(strchr(err, '\n'), "%s: reason is not one line", c->name);
        cr_expect_not_null(strstr(err, c->want), "%s: reason \"%s\" lacks \"%s\"", c->name, err, c->want);
        if (getenv("EVENT_TEST_SHOW_REASONS"))
            fprintf(stderr, "%-32s %s\n", c->name, err);
        msgpack_sbuffer_destroy(&sb);
    }
}

Test(event_decode, the_corpus_base_event_is_good)
{
    /* so every rejection above is down to its one change */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_event(&sb, 9, -1, NULL, NULL);
    char err[256] = "";
    event_t *ev = decode_exact(sb.data, sb.size, err, sizeof err);
    cr_assert_not_null(ev, "%s", err);
    cr_expect_str_eq(event_head(ev)->id, "ev_1");
    event_destroy(&ev);
    msgpack_sbuffer_destroy(&sb);
}

Test(event_decode, rejects_every_truncated_prefix)
{
    event_head_t head = good_head();
    event_body_t *body = event_body_new();
    event_body_str(body, "currency", "EUR");
    event_body_int(body, "amount_minor", 123456789);
    event_body_int(body, "fee_minor", -70000);
    event_body_bin(body, "sig", "\x01\x02\x03", 3);
    event_body_bool(body, "ok", true);
    event_body_raw_value(body, "xs",
                         "\x93\xc0\x81\xa1"
                         "k"
                         "\x90\xa0",
                         7);
    char err[256];
    size_t len;
    void *buf = event_encode(&head, body, &len, err, sizeof err);
    cr_assert_not_null(buf, "%s", err);
    for (size_t cut = 1; cut < len; cut++) {
        event_t *ev = decode_exact(buf, cut, err, sizeof err);
        cr_expect_null(ev, "prefix of %zu/%zu bytes accepted", cut, len);
        event_destroy(&ev);
        cr_expect_not_null(strstr(err, "truncated at offset"), "prefix %zu: \"%s\"", cut, err);
    }
    event_t *ev = decode_exact(buf, len, err, sizeof err);
    cr_expect_not_null(ev, "the whole event decodes: %s", err);
    event_destroy(&ev);
    free(buf);
    event_body_destroy(&body);
}

Test(event_decode, lying_sizes_allocate_nothing_big)
{
    /* five bytes claiming 2^32-1 elements, at every level: refused before
     * msgpack-c sizes an allocation by the claim (ASan would abort on a
     * multi-gigabyte malloc) */
    static const struct {
        const char *bytes;
        size_t len;
    } lies[] = {
#define LIE(x) {x, sizeof(x) - 1}
        LIE("\xdd\xff\xff\xff\xff"),
        LIE("\xdf\xff\xff\xff\xff"),
        LIE("\x99\x01\xa1"
            "a"
            "\xa7"
            "receipt"
            "\xa0\xa1"
            "s"
            "\x01\xa0\x00\xdf\xff\xff\xff\xff"),
        LIE("\x99\xdd\xff\xff\xff\xff"),
        LIE("\x99\x01\xa1"
            "a"
            "\xa7"
            "receipt"
            "\xa0\xa1"
            "s"
            "\x01\xa0\x00\x81\xa1"
            "x"
            "\xdb\xff\xff\xff\xff"),
#undef LIE
    };
    for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        char err[256] = "";
        event_t *ev = decode_exact(lies[i].bytes, lies[i].len, err, sizeof err);
        cr_expect_null(ev, "lie %zu accepted", i);
        cr_expect_neq(err[0], '\0');
        event_destroy(&ev);
    }
}

Test(event_decode, a_reason_is_optional)
{
    cr_expect_null(event_decode("\xc1", 1, NULL, 0));
    char one[1] = {'x'};
    cr_expect_null(event_decode("\xc1", 1, one, sizeof one));
    cr_expect_eq(one[0], '\0', "a too-small buffer still gets a terminated (empty) reason");
}

Test(event, map_str_reads_a_value_inside_a_nested_map)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "stripe-signature", 16);
    msgpack_pack_str_with_body(&pk, "t=1,v1=ab", 9);
    msgpack_pack_str_with_body(&pk, "n", 1);
    msgpack_pack_int(&pk, 5);
    event_body_t *b = event_body_new();
    event_body_raw_value(b, "headers", sb.data, sb.size);
    event_head_t h = {.id = "x1", .type = "receipt", .stage = "ingest.0", .seq = 1, .time_ms = 1};
    size_t len;
    char err[128];
    void *enc = event_encode(&h, b, &len, err, sizeof err);
    cr_assert_not_null(enc, "%s", err);
    event_t *ev = event_decode(enc, len, err, sizeof err);
    cr_assert_not_null(ev, "%s", err);
    const char *v;
    size_t vlen;
    cr_assert_eq(event_get_map_str(ev, "headers", "stripe-signature", &v, &vlen), 0);
    cr_assert_eq(vlen, 9);
    cr_assert_eq(memcmp(v, "t=1,v1=ab", 9), 0);
    cr_assert_eq(event_get_map_str(ev, "headers", "n", &v, &vlen), -1, "not a str");
    cr_assert_eq(event_get_map_str(ev, "headers", "absent", &v, &vlen), -1);
    cr_assert_eq(event_get_map_str(ev, "nomap", "x", &v, &vlen), -1);
    event_destroy(&ev);
    free(enc);
    event_body_destroy(&b);
    msgpack_sbuffer_destroy(&sb);
}

Test(event, typed_contract_names_round_trip_and_decode_sets_the_kind)
{
    for (int t = EV_NONE + 1; t < EV_NTYPES; t++) {
        const char *name = event_type_name((event_type_t) t);
        cr_assert(*name, "type %d has a name", t);
        cr_expect_eq(event_type_of(name), t, "%s", name);
        cr_expect(event_type_known(name));
        cr_expect(*event_type_emitter((event_type_t) t), "%s names its emitter", name);
    }
    cr_expect_eq(event_type_of("approve"), EV_NONE, "a near miss is no type");
    cr_expect_eq(event_type_of(""), EV_NONE);
    cr_expect_eq(event_type_of(NULL), EV_NONE);
    cr_expect_str_eq(event_type_name(EV_NONE), "");
    cr_expect_str_eq(event_type_name(EV_NTYPES), "");
    cr_expect_eq(EV_NTYPES - 1, 23, "23 event types: a change here is a contract change (bump EVENT_VERSION)");

    event_head_t head = {.seq = 1, .time_ms = 1};
    snprintf(head.id, sizeof head.id, "dec_1");
    snprintf(head.type, sizeof head.type, "%s", event_type_name(EV_APPROVED));
    snprintf(head.stage, sizeof head.stage, "approve.0");
    size_t len = 0;
    char err[256];
    void *data = event_encode(&head, NULL, &len, err, sizeof err);
    cr_assert_not_null(data, "%s", err);
    event_t *ev = event_decode(data, len, err, sizeof err);
    cr_assert_not_null(ev, "%s", err);
    cr_expect_eq(event_head(ev)->kind, EV_APPROVED, "the decoder names the kind once");
    event_destroy(&ev);
    free(data);
}

Test(event, an_emitted_event_must_carry_the_keys_its_type_requires)
{
    event_head_t head = {.seq = 1, .time_ms = 1};
    snprintf(head.id, sizeof head.id, "rcpt_1");
    snprintf(head.type, sizeof head.type, "%s", event_type_name(EV_RECEIPT));
    snprintf(head.stage, sizeof head.stage, "ingest.0");
    cr_expect_str_eq(event_type_required(EV_RECEIPT), "endpoint peer received_ms headers body");
    event_body_t *b = event_body_new();
    event_body_str(b, "endpoint", "stripe");
    event_body_str(b, "peer", "127.0.0.1");
    event_body_int(b, "received_ms", 1);
    event_body_bin(b, "body", "{}", 2);
    size_t len = 0;
    char err[256];
    void *data = event_emit_encode(&head, b, &len, err, sizeof err);
    cr_expect_null(data, "a receipt without its headers is not emitted");
    cr_expect_str_eq(err, "a receipt event must carry body key \"headers\"");
    free(data);
    data = event_encode(&head, b, &len, err, sizeof err);
    cr_expect_not_null(data, "plain encoding (tests, tools) does not judge the body: %s", err);
    free(data);
    event_body_raw_value(b, "headers", "\x80", 1); /* an empty msgpack map */
    data = event_emit_encode(&head, b, &len, err, sizeof err);
    cr_expect_not_null(data, "with every required key it is: %s", err);
    free(data);
    event_body_destroy(&b);
    for (int t = EV_NONE + 1; t < EV_NTYPES; t++)
        cr_expect_not_null(event_type_required((event_type_t) t));
}

/* s_sealed - an approved event sealed with key, amount as given, decoded */
static event_t *s_sealed(const unsigned char *key, const char *case_key, int64_t amount, size_t *len, void **raw)
{
    event_head_t h = good_head();
    strcpy(h.type, "approved");
    snprintf(h.case_key, sizeof h.case_key, "%s", case_key);
    strcpy(h.stage, "approve.0");
    event_body_t *b = event_body_new();
    event_body_str(b, EK_CASE_ID, case_key);
    event_body_str(b, "decided_by", "policy");
    event_body_int(b, "amount", amount);
    char err[256];
    *raw = event_seal_encode(&h, b, key, len, err, sizeof err);
    event_body_destroy(&b);
    cr_assert_not_null(*raw, "%s", err);
    event_t *ev = event_decode(*raw, *len, err, sizeof err);
    cr_assert_not_null(ev, "a sealed event decodes like any other: %s", err);
    return ev;
}

/* a seal binds the decision to approve's key, its case and every body value */
Test(event, a_seal_covers_the_case_and_the_body)
{
    unsigned char key[EVENT_SEAL_KEY_BYTES], other[EVENT_SEAL_KEY_BYTES];
    memset(key, 7, sizeof key);
    memset(other, 8, sizeof other);
    size_t len, len2;
    void *raw, *raw2;
    event_t *ev = s_sealed(key, "payout-P-1", 1000, &len, &raw);
    cr_assert_eq(event_seal_check(ev, key), 0, "approve's own seal checks");
    cr_assert_eq(event_seal_check(ev, other), -1, "another key's does not");
    char seal[80];
    cr_assert_str_eq(event_get_strbuf(ev, EK_SEAL, seal, sizeof seal), seal);
    cr_assert_eq(strlen(seal), 64, "the seal is the body's last key, 64 hex digits: %s", seal);
    /* a forger who copies a genuine seal onto other values */
    event_t *ev2 = s_sealed(key, "payout-P-1", 9999, &len2, &raw2);
    cr_assert_eq(len, len2);
    memcpy((char *) raw2 + len2 - 64, (char *) raw + len - 64, 64); /* P-1's seal on the other amount */
    event_t *forged = event_decode(raw2, len2, NULL, 0);
    cr_assert_not_null(forged);
    cr_assert_eq(event_seal_check(forged, key), -1, "the seal does not fit another amount");
    event_destroy(&forged);
    event_destroy(&ev2);
    free(raw2);
    /* nor another case */
    ev2 = s_sealed(key, "payout-P-2", 1000, &len2, &raw2);
    memcpy((char *) raw2 + len2 - 64, (char *) raw + len - 64, 64);
    forged = event_decode(raw2, len2, NULL, 0);
    cr_assert_eq(event_seal_check(forged, key), -1, "nor another case");
    event_destroy(&forged);
    event_destroy(&ev2);
    free(raw2);
    /* an event with no seal at all */
    event_head_t h = good_head();
    event_body_t *b = event_body_new();
    event_body_str(b, "x", "y");
    void *plain = event_encode(&h, b, &len2, NULL, 0);
    event_body_destroy(&b);
    event_t *unsealed = event_decode(plain, len2, NULL, 0);
    cr_assert_eq(event_seal_check(unsealed, key), -1, "no seal, no check");
    event_destroy(&unsealed);
    free(plain);
    event_destroy(&ev);
    free(raw);
}

/* a duplicate key is found in a large map too (sorted there, pairwise in
 * small ones), at the start, middle and end */
Test(event, duplicate_key_in_a_large_map)
{
    event_head_t h = good_head();
    char err[256];
    for (int dup = 0; dup < 40; dup += 13) {
        event_body_t *b = event_body_new();
        char key[16];
        for (int i = 0; i < 40; i++) {
            snprintf(key, sizeof key, "k%d", i);
            event_body_int(b, key, i);
        }
        size_t len;
        void *ok = event_encode(&h, b, &len, err, sizeof err);
        cr_assert_not_null(ok, "40 distinct keys: %s", err);
        free(ok);
        snprintf(key, sizeof key, "k%d", dup);
        event_body_int(b, key, -1);
        cr_expect_null(event_encode(&h, b, &len, err, sizeof err));
        char want[64];
        snprintf(want, sizeof want, "body: duplicate key \"k%d\"", dup);
        cr_expect_str_eq(err, want);
        event_body_destroy(&b);
    }
}
