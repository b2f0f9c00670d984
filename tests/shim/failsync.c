/*++
 * NAME
 *	libpgfailsync.so - test builds of fdatasync(2), fsync(2) and statvfs(3)
 *	that fail, or see a full disk, on demand
 * SYNOPSIS
 *	LD_PRELOAD=bin/libpgfailsync.so PG_FAILSYNC_FILE=/path/trigger payguard up ...
 *	LD_PRELOAD=bin/libpgfailsync.so PG_LOWDISK_FILE=/path/trigger payguard up ...
 * DESCRIPTION
 *	While the file named by PG_FAILSYNC_FILE exists and names the calling
 *	program (e.g. "ingest" or "validate", as in
 *	program_invocation_short_name; several names separated by blanks),
 *	fdatasync and fsync fail with EIO without syncing. While the file
 *	named by PG_LOWDISK_FILE names it, statvfs and fstatvfs report the
 *	file system full (no block available to it). Otherwise they are the C
 *	library's. It lets a test show what docs/ARCHITECTURE.md promises of a
 *	failed sync (the stage exits without acknowledging anything, and after
 *	the restart nothing acknowledged is lost: tests/e2e/e2e_fsync.sh) and of
 *	a nearly full disk (no input taken, ingest answers 503, and everything
 *	resumes once space is back: tests/e2e/e2e_disk.sh). Test use only:
 *	never in a product build.
 *--*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* s_named - does the trigger file the variable env names list this
 * program? (read each call: a test creates and removes it while the group
 * runs) */
static int s_named(const char *env)
{
    const char *path = getenv(env);
    if (!path || !*path)
        return 0;
    int saved = errno;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        errno = saved;
        return 0;
    }
    char names[256] = {0};
    ssize_t n = read(fd, names, sizeof names - 1);
    close(fd);
    errno = saved;
    if (n <= 0)
        return 0;
    for (char *save = NULL, *w = strtok_r(names, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save))
        if (strcmp(w, program_invocation_short_name) == 0)
            return 1;
    return 0;
}

/* s_failing - are this program's syncs to fail? */
static int s_failing(void)
{
    return s_named("PG_FAILSYNC_FILE");
}

/* s_full - does this program see its disk full? */
static void s_full(struct statvfs *sv)
{
    if (s_named("PG_LOWDISK_FILE"))
        sv->f_bavail = sv->f_bfree = 0;
}

/* statvfs - the C library's, full while triggered for this program */
int statvfs(const char *path, struct statvfs *sv)
{
    int (*real)(const char *, struct statvfs *) = (int (*)(const char *, struct statvfs *)) dlsym(RTLD_NEXT, "statvfs");
    int rc = real(path, sv);
    if (rc == 0)
        s_full(sv);
    return rc;
}

/* fstatvfs - likewise */
int fstatvfs(int fd, struct statvfs *sv)
{
    int (*real)(int, struct statvfs *) = (int (*)(int, struct statvfs *)) dlsym(RTLD_NEXT, "fstatvfs");
    int rc = real(fd, sv);
    if (rc == 0)
        s_full(sv);
    return rc;
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
