/* log - structured one-line logs on stderr.
 *
 *   ts=2026-11-21T10:00:00.123Z level=info inst=validate.0 msg="..."
 *
 * logfmt: the message is quoted and escaped, so a log line is always one
 * line whatever a webhook contained. Secrets must never be passed here.
 */
#ifndef PG_LOG_H
#define PG_LOG_H

typedef enum { PGLOG_DEBUG = 0, PGLOG_INFO, PGLOG_WARN, PGLOG_ERROR } log_level_t;

/* log_init - name this process in every line; level from "debug|info|warn|error" */
void log_init(const char *instance, const char *level);
void log_msg(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(PGLOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(PGLOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(PGLOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(PGLOG_ERROR, __VA_ARGS__)

#endif
