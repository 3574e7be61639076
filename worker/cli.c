/* CLI helpers (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int bg_cli_usage_error(const char *fmt, ...) {
    va_list ap;
    fputs("burstguard: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 2;
}

int bg_cli_parse_long(const char *what, const char *s, long min, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return bg_cli_usage_error("%s: expected an integer from %ld to %ld, got '%s'", what, min,
                                  max, s);
    *out = v;
    return 0;
}
