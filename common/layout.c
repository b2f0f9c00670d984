/* layout - the data directory's split of partitioned state (see layout.h) */
#include "layout.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const layout_stages[LAYOUT_NSTAGES] = {"validate", "approve", "execute"};

/* s_has_records - true if a journal directory holds a segment with bytes */
static bool s_has_records(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool any = false;
    struct dirent *e;
    while (!any && (e = readdir(d))) {
        char path[CONFIG_PATH_MAX + 300];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        any = e->d_name[0] != '.' && stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0;
    }
    closedir(d);
    return any;
}

/* s_path - <data_dir>/<name> */
static void s_path(const config_t *config, const char *name, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", config_data_dir(config), name);
}

/* s_parse - the layout file's lines into l; -1 and err on a bad line */
static int s_parse(FILE *f, const char *path, layout_t *l, char *err, size_t errlen)
{
    char line[256];
    int no = 0;
    while (fgets(line, sizeof line, f)) {
        no++;
        char name[32];
        long v;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (sscanf(line, "%31s %ld", name, &v) != 2 || v < 1 || v > CONFIG_MAX_PARTITIONS) {
            snprintf(err, errlen, "%s line %d: want '<name> <count>'", path, no);
            return -1;
        }
        int i = 0;
        while (i < LAYOUT_NSTAGES && strcmp(layout_stages[i], name) != 0)
            i++;
        if (strcmp(name, "partitions") == 0)
            l->partitions = (unsigned) v;
        else if (i < LAYOUT_NSTAGES && v <= CONFIG_MAX_INSTANCES)
            l->instances[i] = (int) v;
        else {
            snprintf(err, errlen, "%s line %d: unknown '%s' or count out of range", path, no, name);
            return -1;
        }
    }
    return 0;
}

/* layout_read - see layout.h */
int layout_read(const config_t *config, layout_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < LAYOUT_NSTAGES; i++)
        for (int n = 0; n < CONFIG_MAX_INSTANCES; n++) {
            char *dir = config_journal_dir(config, layout_stages[i], n);
            if (s_has_records(dir))
                out->with_state[i] = n + 1; /* the highest instance with state, plus one */
            free(dir);
        }
    char path[CONFIG_PATH_MAX + 16];
    s_path(config, "layout", path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) {
        for (int i = 0; i < LAYOUT_NSTAGES; i++)
            out->instances[i] = out->with_state[i];
        return 0;
    }
    int rc = s_parse(f, path, out, err, errlen);
    fclose(f);
    return rc;
}

/* layout_differs - see layout.h */
bool layout_differs(const config_t *config, const layout_t *l, int i)
{
    assert(i >= 0 && i < LAYOUT_NSTAGES);
    int want = config_instances(config, layout_stages[i]);
    if (!l->with_state[i])
        return false; /* nothing to move */
    if (l->instances[i] != want || l->with_state[i] > want)
        return true;
    return want > 1 && l->partitions != config_partitions(config);
}

/* layout_intent_path - see layout.h */
void layout_intent_path(const config_t *config, char *out, size_t outlen)
{
    s_path(config, "repartition.intent", out, outlen);
}

/* layout_check - see layout.h */
int layout_check(const config_t *config, char *err, size_t errlen)
{
    char intent[CONFIG_PATH_MAX + 32];
    layout_intent_path(config, intent, sizeof intent);
    if (access(intent, F_OK) == 0) {
        snprintf(err, errlen,
                 "%s: a repartition was interrupted; run `payguard repartition` again to finish it before starting",
                 intent);
        return -1;
    }
    layout_t l;
    if (layout_read(config, &l, err, errlen) != 0)
        return -1;
    for (int i = 0; i < LAYOUT_NSTAGES; i++)
        if (layout_differs(config, &l, i)) {
            snprintf(err, errlen,
                     "%s: the data directory holds its state for %d instance(s) and %u partitions, the configuration "
                     "says instances = %d and partitions = %u; with the group stopped, run `payguard repartition` to "
                     "move each partition's state to its new owner (or put the old values back)",
                     layout_stages[i], l.instances[i], l.partitions ? l.partitions : config_partitions(config),
                     config_instances(config, layout_stages[i]), config_partitions(config));
            return -1;
        }
    return layout_write(config, err, errlen);
}

/* layout_write - see layout.h */
int layout_write(const config_t *config, char *err, size_t errlen)
{
    char path[CONFIG_PATH_MAX + 16], tmp[CONFIG_PATH_MAX + 48];
    s_path(config, "layout", path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int) getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "# how validate, approve and execute keep their state (payguard repartition changes it)\n");
    fprintf(f, "partitions %u\n", config_partitions(config));
    for (int i = 0; i < LAYOUT_NSTAGES; i++)
        fprintf(f, "%s %d\n", layout_stages[i], config_instances(config, layout_stages[i]));
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}
