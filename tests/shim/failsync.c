/*++
 * NAME
 *	libpgfailsync.so - a test build of fdatasync(2) and fsync(2) that fail
 * SYNOPSIS
 *	LD_PRELOAD=bin/libpgfailsync.so PG_FAILSYNC_FILE=/path/trigger payguard up ...
 * DESCRIPTION
 *	While the file named by PG_FAILSYNC_FILE exists and holds the name of
 *	the calling program (e.g. "ingest" or "validate", as in
 *	program_invocation_short_name), fdatasync and fsync fail with EIO
 *	without syncing; otherwise they are the C library's. It lets a test
 *	show what docs/ARCHITECTURE.md promises of a failed sync: the stage exits without
 *	acknowledging anything, and after the restart nothing acknowledged is
 *	lost (tests/e2e/e2e_fsync.sh). Test use only: never in a product build.
 *--*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* s_failing - does the trigger file name this program? (read each call: a
 * test creates and removes it while the group runs) */
static int s_failing(void)
{
    const char *path = getenv("PG_FAILSYNC_FILE");
    if (!path || !*path)
        return 0;
    int saved = errno;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        errno = saved;
        return 0;
    }
    char name[64] = {0};
    ssize_t n = read(fd, name, sizeof name - 1);
    close(fd);
    errno = saved;
    if (n <= 0)
        return 0;
    name[strcspn(name, "\r\n")] = '\0';
    return strcmp(name, program_invocation_short_name) == 0;
}

/* fdatasync - fails with EIO while triggered for this program */
int fdatasync(int fd)
{
    if (s_failing()) {
        errno = EIO;
        return -1;
    }
    int (*real)(int) = (int (*)(int)) dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}

/* fsync - fails with EIO while triggered for this program */
int fsync(int fd)
{
    if (s_failing()) {
        errno = EIO;
        return -1;
    }
    int (*real)(int) = (int (*)(int)) dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}
