/* log - structured one-line logs on stderr, logfmt or JSON.
 *
 *   ts=2026-11-21T10:00:00.123Z level=info inst=validate.0 msg="..."
 *   {"ts":"2026-11-21T10:00:00.123Z","level":"info","inst":"validate.0","msg":"..."}
 *
 * payguard/log_format (or PAYGUARD_LOG_FORMAT, which wins) chooses: logfmt
 * (the default) or json, one JSON object a line for a log shipper. Either
 * way a line is one line whatever a webhook contained: logfmt quotes and
 * escapes the message (other control bytes become '?'); JSON escapes it as
 * JSON does and writes each byte that is not UTF-8 as U+FFFD, so every line
 * parses. Secrets must never be passed here.
 */
#ifndef PG_LOG_H
#define PG_LOG_H

#include <stddef.h>
#include <time.h>

typedef enum { PGLOG_DEBUG = 0, PGLOG_INFO, PGLOG_WARN, PGLOG_ERROR } log_level_t;
typedef enum { PGLOG_LOGFMT = 0, PGLOG_JSON } log_format_t;

#define LOG_MSG_MAX 1024  /* a message, at most (longer ones are cut) */
#define LOG_LINE_MAX 8192 /* a line in either format: room for LOG_MSG_MAX bytes escaped */
#define LOG_LEVEL_ENV "PAYGUARD_LOG_LEVEL"
#define LOG_FORMAT_ENV "PAYGUARD_LOG_FORMAT"

/* log_init - name this process in every line; level "debug|info|warn|error",
 * format "logfmt|json" (NULL or unknown: as before; PAYGUARD_LOG_LEVEL and
 * PAYGUARD_LOG_FORMAT in the environment win over both) */
void log_init(const char *instance, const char *level, const char *format);
void log_msg(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* log_level_of, log_format_of - a name to its value, -1 if unknown */
int log_level_of(const char *name);
int log_format_of(const char *name);

/* log_line - one whole line ('\n' included, NUL-terminated) of format fmt
 * into out (at least LOG_LINE_MAX bytes): the time ts, the level, the
 * instance inst and the message msg (cut at LOG_MSG_MAX - 1 bytes); its
 * length */
size_t log_line(char *out, size_t outlen, log_format_t fmt, const struct timespec *ts, log_level_t level,
                const char *inst, const char *msg);

#define log_debug(...) log_msg(PGLOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(PGLOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(PGLOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(PGLOG_ERROR, __VA_ARGS__)

#endif
