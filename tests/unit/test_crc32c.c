/* test_crc32c - known answers for CRC-32C and how to chain it */
#include "crc32c.h"

#include <criterion/criterion.h>
#include <string.h>

/* the check value every CRC-32C implementation publishes */
Test(crc32c, check_value)
{
    cr_assert_eq(crc32c_update(0, "123456789", 9), 0xE3069283u);
}

/* nothing in, nothing changed: 0 stays 0 and any crc passes through */
Test(crc32c, empty_input)
{
    cr_assert_eq(crc32c_update(0, "", 0), 0u);
    cr_assert_eq(crc32c_update(0, NULL, 0), 0u);
    cr_assert_eq(crc32c_update(0xE3069283u, NULL, 0), 0xE3069283u);
}

/* vectors from RFC 3720 (iSCSI) appendix B.4 */
Test(crc32c, rfc3720_vectors)
{
    unsigned char buf[32];
    memset(buf, 0, sizeof buf);
    cr_assert_eq(crc32c_update(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xff, sizeof buf);
    cr_assert_eq(crc32c_update(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char) i;
    cr_assert_eq(crc32c_update(0, buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char) (31 - i);
    cr_assert_eq(crc32c_update(0, buf, 32), 0x113FDB5Cu);
    cr_assert_eq(crc32c_update(0, "a", 1), 0xC1D04330u);
}

/* feeding a finished crc back in continues it: crc(a) then b == crc(a||b),
 * at every split point and every alignment (the 8-byte path and the
 * byte-at-a-time edges must agree) */
Test(crc32c, chaining_and_alignment)
{
    unsigned char data[300];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char) (i * 37 + 11);
    for (size_t start = 0; start < 9; start++) {
        size_t n = sizeof data - start;
        uint32_t whole = crc32c_update(0, data + start, n);
        /* reference: one byte at a time */
        uint32_t bytewise = 0;
        for (size_t i = 0; i < n; i++)
            bytewise = crc32c_update(bytewise, data + start + i, 1);
        cr_assert_eq(whole, bytewise, "start %zu", start);
        for (size_t split = 0; split <= n; split += 7) {
            uint32_t c = crc32c_update(0, data + start, split);
            c = crc32c_update(c, data + start + split, n - split);
            cr_assert_eq(c, whole, "start %zu split %zu", start, split);
        }
    }
    uint32_t c = crc32c_update(0, "1234", 4);
    cr_assert_eq(crc32c_update(c, "56789", 5), 0xE3069283u);
}

/* the portable tables give the published values too (the fallback on a
 * CPU without the crc32 instruction) */
Test(crc32c, portable_known_answers)
{
    cr_assert_eq(crc32c_update_portable(0, "123456789", 9), 0xE3069283u);
    cr_assert_eq(crc32c_update_portable(0, "a", 1), 0xC1D04330u);
    unsigned char buf[32];
    memset(buf, 0xff, sizeof buf);
    cr_assert_eq(crc32c_update_portable(0, buf, 32), 0x62A8AB43u);
}

/* the dispatched crc (the instruction on this machine, when it has one)
 * and the tables agree on every length 0..600 at every alignment 0..7 and
 * chained from a non-zero crc */
Test(crc32c, instruction_and_tables_agree)
{
    unsigned char data[608];
    uint32_t x = 2463534242u; /* xorshift32: varied bytes, reproducible */
    for (size_t i = 0; i < sizeof data; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data[i] = (unsigned char) x;
    }
    for (size_t start = 0; start < 8; start++)
        for (size_t n = 0; n + start <= 600; n++) {
            uint32_t seed = (uint32_t) (n * 2654435761u);
            cr_assert_eq(crc32c_update(seed, data + start, n), crc32c_update_portable(seed, data + start, n),
                         "start %zu length %zu", start, n);
        }
}
