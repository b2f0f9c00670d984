/* segzst - a closed journal segment to a zstd file and back (see segzst.h) */
#include "segzst.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define SEGZST_PATH_MAX 4096
#define SEGZST_FRAME_HEADER_MAX 18 /* ZSTD_FRAMEHEADERSIZE_MAX, which zstd.h shows only to static linking */

/* s_err - format into err (may be NULL) */
__attribute__((format(printf, 3, 4))) static int s_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* s_write_all - write n bytes or fail */
static int s_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t) w;
    }
    return 0;
}

/* s_fsync_parent - make path's directory entry durable */
static int s_fsync_parent(const char *path)
{
    char copy[SEGZST_PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* s_stream - compress in_fd (size bytes) to out_fd as one frame */
static int s_stream(ZSTD_CCtx *c, int in_fd, uint64_t size, int out_fd, char *err, size_t errlen)
{
    size_t icap = ZSTD_CStreamInSize(), ocap = ZSTD_CStreamOutSize();
    char *ib = malloc(icap), *ob = malloc(ocap);
    int rc = ib && ob ? 0 : s_err(err, errlen, "out of memory");
    ZSTD_CCtx_setPledgedSrcSize(c, size);
    for (uint64_t done = 0; rc == 0;) {
        ssize_t n = read(in_fd, ib, icap);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = s_err(err, errlen, "read: %s", strerror(errno));
            break;
        }
        done += (uint64_t) n;
        bool last = n == 0 || done == size;
        ZSTD_inBuffer in = {ib, (size_t) n, 0};
        size_t left;
        do {
            ZSTD_outBuffer out = {ob, ocap, 0};
            left = ZSTD_compressStream2(c, &out, &in, last ? ZSTD_e_end : ZSTD_e_continue);
            if (ZSTD_isError(left))
                rc = s_err(err, errlen, "zstd: %s", ZSTD_getErrorName(left));
            else if (s_write_all(out_fd, ob, out.pos) != 0)
                rc = s_err(err, errlen, "write: %s", strerror(errno));
        } while (rc == 0 && (last ? left != 0 : in.pos < in.size));
        if (last)
            break;
    }
    free(ib);
    free(ob);
    return rc;
}

/* segzst_compress - see segzst.h */
int segzst_compress(const char *src, const char *path, uint64_t *out_bytes, char *err, size_t errlen)
{
    assert(src && path && out_bytes);
    *out_bytes = 0;
    char tmp[SEGZST_PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int) sizeof tmp)
        return s_err(err, errlen, "%s: path too long", path);
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return s_err(err, errlen, "%s: cannot open: %s", src, strerror(errno));
    struct stat st;
    if (fstat(in, &st) != 0 || (uint64_t) st.st_size > SEGZST_MAX_BYTES) {
        close(in);
        return s_err(err, errlen, "%s: cannot stat, or larger than %llu bytes", src, SEGZST_MAX_BYTES);
    }
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (out < 0) {
        close(in);
        return s_err(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
    }
    ZSTD_CCtx *c = ZSTD_createCCtx();
    int rc = c ? 0 : s_err(err, errlen, "zstd: out of memory");
    if (rc == 0) {
        ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, SEGZST_LEVEL);
        ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
        ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
        rc = s_stream(c, in, (uint64_t) st.st_size, out, err, errlen);
    }
    ZSTD_freeCCtx(c);
    close(in);
    struct stat ost;
    if (rc == 0 && (fdatasync(out) != 0 || fstat(out, &ost) != 0))
        rc = s_err(err, errlen, "%s: cannot sync: %s", tmp, strerror(errno));
    close(out);
    if (rc == 0 && (rename(tmp, path) != 0 || s_fsync_parent(path) != 0))
        rc = s_err(err, errlen, "%s: cannot rename into place: %s", path, strerror(errno));
    if (rc != 0) {
        unlink(tmp);
        return -1;
    }
    *out_bytes = (uint64_t) ost.st_size;
    return 0;
}

/* s_content_size - the frame's declared size, checked against the limit */
static int s_content_size(int fd, const char *path, uint64_t *size, char *err, size_t errlen)
{
    unsigned char head[SEGZST_FRAME_HEADER_MAX];
    ssize_t n = pread(fd, head, sizeof head, 0);
    unsigned long long cs = n > 0 ? ZSTD_getFrameContentSize(head, (size_t) n) : ZSTD_CONTENTSIZE_ERROR;
    if (cs == ZSTD_CONTENTSIZE_ERROR || cs == ZSTD_CONTENTSIZE_UNKNOWN)
        return s_err(err, errlen, "%s: not a zstd frame with its size", path);
    if (cs > SEGZST_MAX_BYTES)
        return s_err(err, errlen, "%s: claims %llu bytes, more than %llu", path, cs, SEGZST_MAX_BYTES);
    *size = cs;
    return 0;
}

/* s_expand - decompress in_fd into out_fd; exactly size bytes, one frame */
static int s_expand(ZSTD_DCtx *d, int in_fd, int out_fd, uint64_t size, const char *path, char *err, size_t errlen)
{
    size_t icap = ZSTD_DStreamInSize(), ocap = ZSTD_DStreamOutSize();
    char *ib = malloc(icap), *ob = malloc(ocap);
    int rc = ib && ob ? 0 : s_err(err, errlen, "out of memory");
    uint64_t got = 0;
    size_t left = 1; /* 0 once a whole frame is decoded and its checksum checked */
    while (rc == 0) {
        ssize_t n = read(in_fd, ib, icap);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = s_err(err, errlen, "%s: read: %s", path, strerror(errno));
        if (n <= 0)
            break;
        if (left == 0)
            rc = s_err(err, errlen, "%s: bytes after the frame", path);
        ZSTD_inBuffer in = {ib, (size_t) n, 0};
        while (rc == 0 && in.pos < in.size) {
            ZSTD_outBuffer out = {ob, ocap, 0};
            left = ZSTD_decompressStream(d, &out, &in);
            if (ZSTD_isError(left))
                rc = s_err(err, errlen, "%s: %s", path, ZSTD_getErrorName(left));
            else if ((got += out.pos) > size || s_write_all(out_fd, ob, out.pos) != 0)
                rc = s_err(err, errlen, "%s: more than the %llu bytes it claims, or memory full", path,
                           (unsigned long long) size);
            if (rc == 0 && left == 0 && in.pos < in.size)
                rc = s_err(err, errlen, "%s: bytes after the frame", path);
        }
    }
    if (rc == 0 && (left != 0 || got != size))
        rc = s_err(err, errlen, "%s: cut short (%llu of %llu bytes)", path, (unsigned long long) got,
                   (unsigned long long) size);
    free(ib);
    free(ob);
    return rc;
}

/* segzst_expand - see segzst.h */
int segzst_expand(const char *path, char *err, size_t errlen)
{
    assert(path);
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return s_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    uint64_t size = 0;
    if (s_content_size(in, path, &size, err, errlen) != 0) {
        close(in);
        return -1;
    }
    int out = memfd_create("payguard-segment", MFD_CLOEXEC);
    ZSTD_DCtx *d = out >= 0 ? ZSTD_createDCtx() : NULL;
    int rc = d ? s_expand(d, in, out, size, path, err, errlen)
               : s_err(err, errlen, "%s: no memory file: %s", path, strerror(errno));
    ZSTD_freeDCtx(d);
    close(in);
    if (rc != 0 || lseek(out, 0, SEEK_SET) != 0) {
        if (out >= 0)
            close(out);
        return rc != 0 ? -1 : s_err(err, errlen, "%s: lseek: %s", path, strerror(errno));
    }
    return out;
}
