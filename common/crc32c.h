/* crc32c - CRC-32C (Castagnoli), the checksum of journal records.
 *
 * Table driven (slicing-by-8), no CPU feature detection needed. The value is
 * the standard one: crc32c_update(0, "123456789", 9) == 0xE3069283.
 */
#ifndef PG_CRC32C_H
#define PG_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* crc32c_update - extend crc (0 to start) over len bytes of data */
uint32_t crc32c_update(uint32_t crc, const void *data, size_t len);

#endif
