/* fuzz_util - what the file-backed fuzz targets share: one scratch
 * directory for every input (in /dev/shm when it is writable: no disk I/O
 * per run), and writing an input to a file there. */
#ifndef PG_FUZZ_UTIL_H
#define PG_FUZZ_UTIL_H

#include <assert.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* fz_tempdir - make <shm or TMPDIR or /tmp>/<name>.XXXXXX into dir; aborts on failure */
static inline void fz_tempdir(const char *name, char *dir, size_t dirlen)
{
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                       : getenv("TMPDIR") ? getenv("TMPDIR")
                                          : "/tmp";
    snprintf(dir, dirlen, "%s/%s.XXXXXX", base, name);
    if (!mkdtemp(dir)) {
        perror(name);
        abort();
    }
}

/* fz_write_file - the input as the whole content of path */
static inline void fz_write_file(const char *path, const uint8_t *data, size_t size, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert(fd >= 0);
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        assert(n > 0);
        done += (size_t) n;
    }
    close(fd);
}

#endif
