/* log - structured one-line logs on stderr (see log.h) */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char s_instance[32] = "payguard";
static log_level_t s_level = PGLOG_INFO;
static int s_level_set = 0;
static const char *s_names[] = {"debug", "info", "warn", "error"};

/* s_level_of - a level name to its value, -1 if unknown */
static int s_level_of(const char *name)
{
    for (int i = 0; name && i < 4; i++)
        if (strcmp(name, s_names[i]) == 0)
            return i;
    return -1;
}

/* log_init - remember who we are and how much to say; PAYGUARD_LOG_LEVEL
 * in the environment overrides the configured level (tests quiet the logs) */
void log_init(const char *instance, const char *level)
{
    if (instance)
        snprintf(s_instance, sizeof s_instance, "%s", instance);
    int env = s_level_of(getenv("PAYGUARD_LOG_LEVEL"));
    int lvl = env >= 0 ? env : s_level_of(level);
    if (lvl >= 0)
        s_level = (log_level_t) lvl;
    s_level_set = 1;
}

/* log_msg - format, escape into one logfmt line, write it with one write */
void log_msg(log_level_t level, const char *fmt, ...)
{
    if (!s_level_set)
        log_init(NULL, NULL);
    if (level < s_level)
        return;
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);

    char esc[2100];
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *) text; *p && n < sizeof esc - 5; p++) {
        if (*p == '"' || *p == '\\') {
            esc[n++] = '\\';
            esc[n++] = (char) *p;
        } else if (*p == '\n') {
            esc[n++] = '\\';
            esc[n++] = 'n';
        } else if (*p < 0x20 || *p == 0x7f) {
            esc[n++] = '?';
        } else {
            esc[n++] = (char) *p;
        }
    }
    esc[n] = '\0';

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[2300];
    int len = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s inst=%s msg=\"%s\"\n",
                       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                       ts.tv_nsec / 1000000, s_names[level], s_instance, esc);
    if (len > (int) sizeof line - 1)
        len = (int) sizeof line - 1;
    fwrite(line, 1, (size_t) len, stderr);
}
