/* test_segzst - segments to zstd files and back */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "segzst.h"

static char s_root[64];

/* s_setup - a fresh temporary directory */
static void s_setup(void)
{
    snprintf(s_root, sizeof s_root, "/tmp/pg-segzst-XXXXXX");
    cr_assert_not_null(mkdtemp(s_root));
}

/* s_teardown - remove what the tests made */
static void s_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_root);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(segzst, .init = s_setup, .fini = s_teardown, .timeout = 60);

/* s_write - a file of n bytes: repetitive text with a counter, as records are */
static void s_write(const char *path, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    for (size_t i = 0; i < n; i++)
        fputc(i % 97 < 60 ? "payout.failed "[i % 14] : (int) ('0' + (i / 97) % 10), f);
    cr_assert_eq(fclose(f), 0);
}

/* s_expect_same - the memfd holds exactly the bytes of path */
static void s_expect_same(int fd, const char *path)
{
    struct stat a, b;
    cr_assert_eq(fstat(fd, &a), 0);
    cr_assert_eq(stat(path, &b), 0);
    cr_assert_eq(a.st_size, b.st_size);
    char *x = malloc((size_t) a.st_size + 1), *y = malloc((size_t) b.st_size + 1);
    FILE *f = fopen(path, "rb");
    cr_assert_eq(pread(fd, x, (size_t) a.st_size, 0), a.st_size);
    cr_assert_eq(fread(y, 1, (size_t) b.st_size, f), (size_t) b.st_size);
    fclose(f);
    cr_assert(memcmp(x, y, (size_t) a.st_size) == 0, "bytes differ");
    free(x);
    free(y);
}

Test(segzst, round_trip_small_empty_and_large)
{
    size_t sizes[] = {0, 1, 4096, 3 * 1024 * 1024 + 17};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char src[128], dst[128], err[256];
        snprintf(src, sizeof src, "%s/%zu.seg", s_root, i);
        snprintf(dst, sizeof dst, "%s/%zu.seg.zst", s_root, i);
        s_write(src, sizes[i]);
        uint64_t zbytes = 0;
        cr_assert_eq(segzst_compress(src, dst, &zbytes, err, sizeof err), 0, "%s", err);
        cr_assert_gt(zbytes, 0);
        if (sizes[i] > 4096)
            cr_assert_lt(zbytes * 10, sizes[i], "repetitive text compresses ( %llu of %zu)",
                         (unsigned long long) zbytes, sizes[i]);
        char tmp[160];
        snprintf(tmp, sizeof tmp, "%s.tmp", dst);
        cr_assert_neq(access(tmp, F_OK), 0, "no temporary file left");
        int fd = segzst_expand(dst, err, sizeof err);
        cr_assert_geq(fd, 0, "%s", err);
        s_expect_same(fd, src);
        close(fd);
    }
}

/* s_damage - compress a file, then let fn change the archive's bytes */
static int s_damaged(void (*fn)(unsigned char *z, size_t *len), char *err, size_t errlen)
{
    char src[128], dst[128];
    snprintf(src, sizeof src, "%s/d.seg", s_root);
    snprintf(dst, sizeof dst, "%s/d.seg.zst", s_root);
    s_write(src, 200000);
    uint64_t zbytes = 0;
    cr_assert_eq(segzst_compress(src, dst, &zbytes, err, errlen), 0, "%s", err);
    unsigned char *z = malloc(zbytes + 64);
    FILE *f = fopen(dst, "rb");
    size_t len = fread(z, 1, zbytes, f);
    fclose(f);
    fn(z, &len);
    f = fopen(dst, "wb");
    fwrite(z, 1, len, f);
    fclose(f);
    free(z);
    return segzst_expand(dst, err, errlen);
}

static void s_flip(unsigned char *z, size_t *len)
{
    z[*len / 2] ^= 0x01;
}
static void s_cut(unsigned char *z, size_t *len)
{
    (void) z, *len -= 5;
}
static void s_extra(unsigned char *z, size_t *len)
{
    memcpy(z + *len, "trailing", 8), *len += 8;
}
static void s_notzstd(unsigned char *z, size_t *len)
{
    memcpy(z, "PGJRNL01", 8), (void) len;
}

Test(segzst, damage_is_an_error_never_a_short_segment)
{
    struct {
        void (*fn)(unsigned char *, size_t *);
        const char *says;
    } cases[] = {{s_flip, ""}, {s_cut, ""}, {s_extra, "after the frame"}, {s_notzstd, "not a zstd frame"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        cr_assert_eq(s_damaged(cases[i].fn, err, sizeof err), -1, "case %zu expanded", i);
        cr_assert(strstr(err, cases[i].says) != NULL, "case %zu: %s", i, err);
        cr_assert(strstr(err, "d.seg.zst") != NULL, "the file is named: %s", err);
    }
}

Test(segzst, missing_source_and_unwritable_target)
{
    char err[256];
    uint64_t z;
    cr_assert_eq(segzst_compress("/nonexistent/x.seg", "/tmp/x.zst", &z, err, sizeof err), -1);
    cr_assert(strstr(err, "cannot open") != NULL, "%s", err);
    char src[128];
    snprintf(src, sizeof src, "%s/s.seg", s_root);
    s_write(src, 10);
    cr_assert_eq(segzst_compress(src, "/nonexistent/dir/x.zst", &z, err, sizeof err), -1);
    cr_assert(strstr(err, "cannot create") != NULL, "%s", err);
    cr_assert_eq(segzst_expand("/nonexistent/x.zst", err, sizeof err), -1);
}
