/* segzst - a closed journal segment to a zstd file and back.
 *
 * The audit trail is never removed: its sealed segments move to an archive
 * directory as <first seq>.seg.zst (journal_archive in journal.h), and a
 * journal reader that meets one expands it into an anonymous memory file
 * (memfd) and reads that as it would the live segment.
 *
 * FORMAT
 *   One zstd frame (level SEGZST_LEVEL) with its content checksum (XXH64)
 *   and content size: the expander checks both, so a damaged or truncated
 *   archive is an error, never a short segment read as if whole.
 *
 * DURABILITY CONTRACT
 *   segzst_compress writes <path>.tmp, fdatasyncs it, renames it to path
 *   and fsyncs the directory: path exists only whole and durable. The
 *   source segment may be removed only after it returns 0.
 *
 * LIMITS
 *   A segment expands to at most SEGZST_MAX_BYTES (1 GiB, above the
 *   journal's largest segment); a frame that claims more is refused before
 *   anything is allocated.
 */
#ifndef PG_SEGZST_H
#define PG_SEGZST_H

#include <stddef.h>
#include <stdint.h>

#define SEGZST_LEVEL 3
#define SEGZST_MAX_BYTES (1024ull * 1024ull * 1024ull)
#define SEGZST_SUFFIX ".zst"

/* segzst_compress - the file at src to path (see the durability contract);
 * its size in *out_bytes; 0, or -1 and err */
int segzst_compress(const char *src, const char *path, uint64_t *out_bytes, char *err, size_t errlen);

/* segzst_expand - the archive at path expanded into a new memfd, positioned
 * at 0; the fd (the caller closes it), or -1 and err */
int segzst_expand(const char *path, char *err, size_t errlen);

#endif
