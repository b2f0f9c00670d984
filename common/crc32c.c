/* crc32c - CRC-32C (Castagnoli): the CPU's crc32 instruction where it has
 * one (x86-64 with SSE4.2), else slicing-by-8 (see crc32c.h).
 *
 * Reflected polynomial 0x82F63B78, initial value ~0, final xor ~0. Because
 * the complement is applied on the way in and again on the way out, a
 * finished value can be fed back as the starting crc:
 *   crc32c_update(crc32c_update(0, a, na), b, nb) == crc32c(a || b).
 *
 * The eight 256-entry tables are built once, at first use (pthread_once),
 * so the file has no 8 KiB literal to get wrong. Words are assembled from
 * bytes explicitly, so the code gives the same answer on any byte order
 * (compilers turn the byte loads into one load on little-endian machines).
 */
#include "crc32c.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <nmmintrin.h>
#define CRC32C_HW 1
#endif

#define CRC32C_POLY 0x82F63B78u

static uint32_t s_table[8][256];
static pthread_once_t s_table_once = PTHREAD_ONCE_INIT;
static bool s_hw; /* the crc32 instruction is there (set once, with the tables) */

/* s_table_init - build the byte table and the seven slicing tables from it */
static void s_table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t crc = i;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc & 1u) ? (crc >> 1) ^ CRC32C_POLY : crc >> 1;
        s_table[0][i] = crc;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int k = 1; k < 8; k++)
            s_table[k][i] = (s_table[k - 1][i] >> 8) ^ s_table[0][s_table[k - 1][i] & 0xffu];
#ifdef CRC32C_HW
    __builtin_cpu_init();
    s_hw = __builtin_cpu_supports("sse4.2");
#endif
}

#ifdef CRC32C_HW
/* s_hw_update - the same CRC with SSE4.2's crc32 instruction (same
 * polynomial, same reflected bit order): eight bytes an instruction,
 * about ten times the tables' speed; the journal checksums every record
 * it writes and reads with it */
__attribute__((target("sse4.2"))) static uint32_t s_hw_update(uint32_t crc, const unsigned char *p, size_t len)
{
    uint64_t c = ~crc;
    while (len > 0 && ((uintptr_t) p & 7u) != 0) {
        c = _mm_crc32_u8((uint32_t) c, *p++);
        len--;
    }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        c = _mm_crc32_u8((uint32_t) c, *p++);
        len--;
    }
    return ~(uint32_t) c;
}
#endif

/* crc32c_update - see crc32c.h: the instruction when the CPU has it */
uint32_t crc32c_update(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&s_table_once, s_table_init);
#ifdef CRC32C_HW
    if (s_hw)
        return s_hw_update(crc, data, len);
#endif
    return crc32c_update_portable(crc, data, len);
}

/* crc32c_update_portable - see crc32c.h: slicing-by-8 */
uint32_t crc32c_update_portable(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&s_table_once, s_table_init);
    const unsigned char *p = data;
    crc = ~crc;

    /* byte at a time until p is 8-aligned: keeps the wide loads aligned */
    while (len > 0 && ((uintptr_t) p & 7u) != 0) {
        crc = (crc >> 8) ^ s_table[0][(crc ^ *p++) & 0xffu];
        len--;
    }
    /* eight bytes per step: the low four are folded into crc, the high
     * four looked up directly, each in the table for its distance from the
     * end of the block */
    while (len >= 8) {
        uint32_t lo = crc ^ ((uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24);
        crc = s_table[7][lo & 0xffu] ^ s_table[6][(lo >> 8) & 0xffu] ^ s_table[5][(lo >> 16) & 0xffu] ^
              s_table[4][lo >> 24] ^ s_table[3][p[4]] ^ s_table[2][p[5]] ^ s_table[1][p[6]] ^ s_table[0][p[7]];
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        crc = (crc >> 8) ^ s_table[0][(crc ^ *p++) & 0xffu];
        len--;
    }
    return ~crc;
}
