/* utf8 - people's text cut to fit on a character boundary (see utf8.h) */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* utf8_cut - see utf8.h */
size_t utf8_cut(const char *s, size_t len, size_t max)
{
    assert(s);
    if (len <= max)
        return len;
    const unsigned char *p = (const unsigned char *) s;
    size_t n = max;
    /* s[max] is the first byte left out: a continuation byte there means
     * the character it belongs to started before the cut; drop it whole
     * (at most 3 bytes back: no character is longer than 4) */
    for (size_t back = 0; back < 3 && n > 0 && (p[n] & 0xC0) == 0x80; back++)
        n--;
    if ((p[n] & 0xC0) == 0x80) /* not UTF-8 at all: cut where asked */
        return max;
    return n;
}

/* utf8_vfmt - see utf8.h */
size_t utf8_vfmt(char *dst, size_t dstlen, const char *fmt, va_list ap)
{
    assert(dst && dstlen > 0 && fmt);
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(dst, dstlen, fmt, ap);
    if (n < 0) {
        va_end(again);
        dst[0] = '\0';
        return 0;
    }
    if ((size_t) n < dstlen) {
        va_end(again);
        return (size_t) n;
    }
    char *text = malloc((size_t) n + 1); /* whole, to see what follows the cut */
    assert(text);
    vsnprintf(text, (size_t) n + 1, fmt, again);
    va_end(again);
    size_t keep = utf8_cut(text, (size_t) n, dstlen - 1);
    memcpy(dst, text, keep);
    dst[keep] = '\0';
    free(text);
    return keep;
}

/* utf8_fmt - see utf8.h */
size_t utf8_fmt(char *dst, size_t dstlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = utf8_vfmt(dst, dstlen, fmt, ap);
    va_end(ap);
    return n;
}
