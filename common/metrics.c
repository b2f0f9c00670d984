/* metrics - merge the instances' .prom files (see metrics.h) */
#include "metrics.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_MAX_LINES 20000
#define METRICS_MAX_FILE_BYTES (1024 * 1024)

/* s_family_len - length of the metric name at the start of a sample line */
static size_t s_family_len(const char *line)
{
    size_t n = strcspn(line, "{ ");
    return n;
}

/* s_cmp_family - order samples by family, stable within one (by text) */
static int s_cmp_family(const void *a, const void *b)
{
    const char *x = *(const char *const *) a, *y = *(const char *const *) b;
    size_t lx = s_family_len(x), ly = s_family_len(y);
    int c = strncmp(x, y, lx < ly ? lx : ly);
    if (c)
        return c;
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return strcmp(x, y);
}

/* s_read_lines - append the sample lines of one file to lines[] */
static void s_read_lines(const char *path, char **lines, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0, total = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0 && *n < METRICS_MAX_LINES && total < METRICS_MAX_FILE_BYTES) {
        total += (size_t) len;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (line[len - 1] == '\n')
            line[len - 1] = '\0';
        lines[(*n)++] = strdup(line);
    }
    free(line);
    fclose(f);
}

/* metrics_collect - see metrics.h */
char *metrics_collect(const char *run_dir)
{
    char **lines = calloc(METRICS_MAX_LINES, sizeof *lines);
    size_t n = 0;
    DIR *d = opendir(run_dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 5 && strcmp(de->d_name + l - 5, ".prom") == 0) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", run_dir, de->d_name);
            s_read_lines(path, lines, &n);
        }
    }
    if (d)
        closedir(d);
    qsort(lines, n, sizeof *lines, s_cmp_family);
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    for (size_t i = 0; i < n; i++) {
        size_t fl = s_family_len(lines[i]);
        if (i == 0 || s_family_len(lines[i - 1]) != fl || strncmp(lines[i - 1], lines[i], fl) != 0) {
            bool counter = fl > 6 && strncmp(lines[i] + fl - 6, "_total", 6) == 0;
            fprintf(f, "# TYPE %.*s %s\n", (int) fl, lines[i], counter ? "counter" : "gauge");
        }
        fprintf(f, "%s\n", lines[i]);
        free(lines[i]);
    }
    fclose(f);
    free(lines);
    return out;
}
