/* log - structured one-line logs on stderr (see log.h) */
#include "log.h"
#include "jsonw.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char s_instance[32] = "payguard";
static log_level_t s_level = PGLOG_INFO;
static log_format_t s_format = PGLOG_LOGFMT;
static int s_level_set = 0;
static const char *s_names[] = {"debug", "info", "warn", "error"};
static const char *s_formats[] = {"logfmt", "json"};

/* log_level_of - see log.h */
int log_level_of(const char *name)
{
    for (int i = 0; name && i < 4; i++)
        if (strcmp(name, s_names[i]) == 0)
            return i;
    return -1;
}

/* log_format_of - see log.h */
int log_format_of(const char *name)
{
    for (int i = 0; name && i < 2; i++)
        if (strcmp(name, s_formats[i]) == 0)
            return i;
    return -1;
}

/* log_init - remember who we are, how much to say and how; the environment
 * overrides the configured level and format (tests quiet the logs) */
void log_init(const char *instance, const char *level, const char *format)
{
    if (instance)
        snprintf(s_instance, sizeof s_instance, "%s", instance);
    int env = log_level_of(getenv(LOG_LEVEL_ENV));
    int lvl = env >= 0 ? env : log_level_of(level);
    if (lvl >= 0)
        s_level = (log_level_t) lvl;
    const char *fenv = getenv(LOG_FORMAT_ENV);
    int fmt = log_format_of(fenv);
    if (fmt < 0)
        fmt = log_format_of(format);
    if (fmt >= 0)
        s_format = (log_format_t) fmt;
    s_level_set = 1;
    if (fenv && *fenv && log_format_of(fenv) < 0)
        log_warn("%s='%.32s' is neither logfmt nor json: ignored", LOG_FORMAT_ENV, fenv);
}

/* s_logfmt_escape - msg quoted for logfmt: '"' and '\' escaped, newline as
 * \n, other control bytes as '?'; into out (at least 2 * LOG_MSG_MAX + 1) */
static void s_logfmt_escape(const char *msg, char *out, size_t outlen)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *) msg; *p && n < outlen - 3; p++) {
        if (*p == '"' || *p == '\\') {
            out[n++] = '\\';
            out[n++] = (char) *p;
        } else if (*p == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else if (*p < 0x20 || *p == 0x7f) {
            out[n++] = '?';
        } else {
            out[n++] = (char) *p;
        }
    }
    out[n] = '\0';
}

/* s_utf8_clean - msg with each byte that does not start a valid UTF-8
 * sequence replaced by U+FFFD (what JSON can carry); into out (at least
 * 3 * LOG_MSG_MAX + 1), its length */
static size_t s_utf8_clean(const char *msg, char *out, size_t outlen)
{
    const unsigned char *p = (const unsigned char *) msg;
    size_t n = 0;
    while (*p && n + 4 < outlen) {
        size_t len = *p < 0x80                  ? 1
                     : *p >= 0xc2 && *p <= 0xdf ? 2
                     : *p >= 0xe0 && *p <= 0xef ? 3
                     : *p >= 0xf0 && *p <= 0xf4 ? 4
                                                : 0;
        if (len && strnlen((const char *) p, len) == len && jsonw_utf8_valid(p, len, false)) {
            memcpy(out + n, p, len);
            n += len;
            p += len;
        } else {
            memcpy(out + n, "\xef\xbf\xbd", 3);
            n += 3;
            p++;
        }
    }
    out[n] = '\0';
    return n;
}

/* s_json_line - the JSON object of one line (without its newline), malloc'd */
static char *s_json_line(const char *ts, log_level_t level, const char *inst, const char *msg)
{
    char clean[3 * LOG_MSG_MAX + 1];
    char name[sizeof s_instance];
    s_utf8_clean(inst, name, sizeof name);
    size_t len = s_utf8_clean(msg, clean, sizeof clean);
    jsonw_t w;
    jsonw_init(&w);
    jsonw_open(&w, '{');
    jsonw_kv_str(&w, "ts", ts);
    jsonw_kv_str(&w, "level", s_names[level]);
    jsonw_kv_str(&w, "inst", name);
    jsonw_key(&w, "msg", 3);
    jsonw_str(&w, clean, len);
    jsonw_close(&w, '}');
    return jsonw_take(&w);
}

/* log_line - see log.h */
size_t log_line(char *out, size_t outlen, log_format_t fmt, const struct timespec *ts, log_level_t level,
                const char *inst, const char *msg)
{
    assert(out && outlen >= LOG_LINE_MAX && ts && inst && msg);
    assert(level >= PGLOG_DEBUG && level <= PGLOG_ERROR && (fmt == PGLOG_LOGFMT || fmt == PGLOG_JSON));
    char text[LOG_MSG_MAX];
    snprintf(text, sizeof text, "%s", msg);
    struct tm tm;
    gmtime_r(&ts->tv_sec, &tm);
    char when[96]; /* room for any int the compiler cannot rule out */
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, ts->tv_nsec / 1000000);
    int len;
    if (fmt == PGLOG_JSON) {
        char *obj = s_json_line(when, level, inst, text);
        len = snprintf(out, outlen, "%s\n", obj);
        free(obj);
    } else {
        char esc[2 * LOG_MSG_MAX + 1];
        s_logfmt_escape(text, esc, sizeof esc);
        len = snprintf(out, outlen, "ts=%s level=%s inst=%s msg=\"%s\"\n", when, s_names[level], inst, esc);
    }
    assert(len > 0 && (size_t) len < outlen); /* LOG_LINE_MAX holds the worst case */
    return (size_t) len;
}

/* log_msg - format, make one line, write it with one write */
void log_msg(log_level_t level, const char *fmt, ...)
{
    if (!s_level_set)
        log_init(NULL, NULL, NULL);
    if (level < s_level)
        return;
    char text[LOG_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char line[LOG_LINE_MAX];
    size_t len = log_line(line, sizeof line, s_format, &ts, level, s_instance, text);
    fwrite(line, 1, len, stderr);
}
