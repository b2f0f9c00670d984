/* metrics - the group's metrics, for GET /metrics on every served port.
 *
 * Each stage instance writes its samples every second to
 * <run_dir>/<inst>.prom (stage.c: sample lines only); metrics_collect merges
 * those files into one Prometheus text exposition (format 0.0.4): samples
 * grouped by metric family, each family once, led by exactly one "# HELP"
 * and one "# TYPE" line. The textfile-collector pattern: no stage needs to
 * know who serves metrics.
 *
 * Every family payguard emits is described once, in the catalogue in
 * metrics.c (name, type, help); tests/unit/test_metrics.c fails when the code
 * names a family the catalogue lacks. A family found in a .prom file but not
 * in the catalogue is still served (help says it is undocumented), so a
 * newer instance never breaks an older server's page.
 */
#ifndef PG_METRICS_H
#define PG_METRICS_H

#include <stddef.h>

#define METRICS_LABEL_MAX 64 /* bytes of a label value as kept, before escaping */

/* metrics_collect - the merged exposition; the caller's to free */
char *metrics_collect(const char *run_dir);

/* metrics_help - the catalogue's help text of a family, NULL if unknown */
const char *metrics_help(const char *family);
/* metrics_type - "counter" or "gauge" for a family (catalogue, else by name) */
const char *metrics_type(const char *family);

/* metrics_escape_label - value as a label value of the exposition format:
 * backslash, double quote and line feed escaped (\\ \" \n), other control
 * bytes and bytes that are not UTF-8 as '_'; cut at a character boundary
 * to fit outlen (NUL included) */
void metrics_escape_label(const char *value, char *out, size_t outlen);

#endif
