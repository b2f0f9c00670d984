/*++
 * NAME
 *	pg-journal-cut - cut a journal back to a sequence number (tests only)
 * SYNOPSIS
 *	pg-journal-cut DIR SEQ
 * DESCRIPTION
 *	Keeps the records of the journal at DIR whose seq is at most SEQ and
 *	removes the rest, as if the process had died just after writing
 *	record SEQ: the segment holding SEQ is truncated after it and later
 *	segments are deleted. For crash tests that need a crash at one exact
 *	point between two appends (tests/e2e/e2e_approve.sh). The journal must
 *	not be open in a running process.
 * EXIT STATUS
 *	0 cut; 1 the journal cannot be read or SEQ is not in it; 2 usage.
 *--*/
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal.h"

#define CUT_MAGIC_BYTES 8

/* s_cmp - segment file names in order (their names are the zero-padded first seq) */
static int s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

int main(int argc, char **argv)
{
    char *end = NULL;
    if (argc != 3)
        return fprintf(stderr, "usage: pg-journal-cut DIR SEQ\n"), 2;
    uint64_t keep = strtoull(argv[2], &end, 10);
    if (!*argv[2] || *end)
        return fprintf(stderr, "pg-journal-cut: SEQ must be a number\n"), 2;
    DIR *d = opendir(argv[1]);
    if (!d)
        return fprintf(stderr, "pg-journal-cut: %s: %s\n", argv[1], strerror(errno)), 1;
    char *names[4096];
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 4096;)
        if (strlen(e->d_name) == 24 && strcmp(e->d_name + 20, ".seg") == 0)
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof *names, s_cmp);
    int rc = 1;
    for (size_t i = n; i-- > 0;) {
        uint64_t first = strtoull(names[i], NULL, 10);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], names[i]);
        if (first > keep) { /* a later segment: gone */
            unlink(path);
            continue;
        }
        /* the segment holding keep: its records' sizes up to keep */
        char err[256];
        journal_reader_t *r = journal_reader_new(argv[1], first, err, sizeof err);
        if (!r) {
            fprintf(stderr, "pg-journal-cut: %s\n", err);
            break;
        }
        const void *data;
        size_t len;
        uint64_t seq;
        off_t off = CUT_MAGIC_BYTES;
        bool found = false;
        while (journal_reader_next(r, &data, &len, &seq) == 1 && seq <= keep) {
            off += (off_t) (JOURNAL_HEADER_BYTES + len);
            found = seq == keep;
        }
        journal_reader_destroy(&r);
        if (!found) {
            fprintf(stderr, "pg-journal-cut: record %" PRIu64 " is not in %s\n", keep, path);
            break;
        }
        if (truncate(path, off) != 0) {
            fprintf(stderr, "pg-journal-cut: %s: %s\n", path, strerror(errno));
            break;
        }
        rc = 0;
        break;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    return rc;
}
