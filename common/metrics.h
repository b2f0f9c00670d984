/* metrics - the group's metrics, for GET /metrics on every served port.
 *
 * Each stage instance writes its counters every second to
 * <run_dir>/<inst>.prom (stage.c); metrics_collect merges those files into
 * one Prometheus text exposition: samples grouped by metric family, one
 * "# TYPE" line per family (counter for *_total, gauge otherwise). The
 * textfile-collector pattern: no stage needs to know who serves metrics.
 */
#ifndef PG_METRICS_H
#define PG_METRICS_H

/* metrics_collect - the merged exposition; the caller's to free */
char *metrics_collect(const char *run_dir);

#endif
