/* JSON-lines logger. One write(2) per line so lines from threads do not interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static int min_level = -1;


static int level_from_env(void) {
    const char *s = getenv("BURSTGUARD_LOG_LEVEL");
    if (!s)
        return BG_LOG_INFO;
    if (!strcasecmp(s, "debug"))
        return BG_LOG_DEBUG;
    if (!strcasecmp(s, "warn"))
        return BG_LOG_WARN;
    if (!strcasecmp(s, "error"))
        return BG_LOG_ERROR;
    return BG_LOG_INFO;
}

void bg_log(bg_log_level level, const char *fmt, ...) {
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (min_level < 0)
        min_level = level_from_env();
    if ((int)level < min_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[4608];
    int n = snprintf(line, sizeof line,
                     "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"msg\":\"",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
    size_t o = (size_t)n;
    for (const unsigned char *p = (const unsigned char *)msg; *p && o < sizeof line - 8; p++) {
        if (*p == '"' || *p == '\\') {
            line[o++] = '\\';
            line[o++] = (char)*p;
        } else if (*p < 0x20) {
            o += (size_t)snprintf(line + o, sizeof line - o, "\\u%04x", *p);
        } else {
            line[o++] = (char)*p;
        }
    }
    memcpy(line + o, "\"}\n", 3);
    o += 3;
    ssize_t w = write(STDERR_FILENO, line, o);
    (void)w;
}
