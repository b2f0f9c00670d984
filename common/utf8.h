/* utf8 - people's text cut to fit a buffer on a character boundary.
 * Comments, reasons and summaries end up in JSON, which cannot carry half
 * a UTF-8 character: jansson refuses such a string outright, so a text
 * snprintf cut in the middle of one is lost whole (a retry's reason, a
 * timeline entry) instead of shortened. These cut before the character
 * instead.
 */
#ifndef PG_UTF8_H
#define PG_UTF8_H

#include <stdarg.h>
#include <stddef.h>

/* utf8_cut - the length of the longest prefix of s (len bytes) of at most
 * max bytes that does not end inside a multi-byte character: len when it
 * fits, else max less the lead and continuation bytes of a character the
 * cut would split */
size_t utf8_cut(const char *s, size_t len, size_t max);

/* utf8_vfmt / utf8_fmt - vsnprintf / snprintf into dst (dstlen > 0) that
 * cut what does not fit on a character boundary; the length written */
size_t utf8_vfmt(char *dst, size_t dstlen, const char *fmt, va_list ap);
__attribute__((format(printf, 3, 4))) size_t utf8_fmt(char *dst, size_t dstlen, const char *fmt, ...);

#endif
