/* crc32c - CRC-32C (Castagnoli), the checksum of journal records.
 *
 * With the CPU's crc32 instruction where it has one (x86-64 with SSE4.2,
 * detected at first use), else table driven (slicing-by-8); both give the
 * standard value: crc32c_update(0, "123456789", 9) == 0xE3069283.
 */
#ifndef PG_CRC32C_H
#define PG_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* crc32c_update - extend crc (0 to start) over len bytes of data */
uint32_t crc32c_update(uint32_t crc, const void *data, size_t len);
/* crc32c_update_portable - the same, by the tables on any CPU (what
 * crc32c_update falls back to; tests compare the two) */
uint32_t crc32c_update_portable(uint32_t crc, const void *data, size_t len);

#endif
