/* CLI helpers (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int bg_cli_config_args(const char *cmd, const char *usage, bool with_group, int argc,
                       char **argv, bg_cli_args *a) {
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"brokers", required_argument, NULL, 'b'},
                                         {"group", required_argument, NULL, 'g'},
                                         {"set", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    memset(a, 0, sizeof *a);
    int c;
    optind = 1;
    opterr = 0; /* one line per error: ours, naming the option */
    while ((c = getopt_long(argc, argv, with_group ? "c:b:g:s:h" : "c:b:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            a->config = optarg;
            break;
        case 'g':
            if (!with_group)
                return bg_cli_usage_error("%s: unknown option (see burstguard %s --help)", cmd, cmd);
            a->group = optarg;
            break;
        case 'b':
        case 's':
            if (a->n_sets == BG_CLI_MAX_SETS)
                return bg_cli_usage_error("%s: too many --set options", cmd);
            if (c == 'b') {
                snprintf(a->brokers_set, sizeof a->brokers_set, "kafka.bootstrap.servers=%s",
                         optarg);
                a->sets[a->n_sets++] = a->brokers_set;
            } else {
                a->sets[a->n_sets++] = optarg;
            }
            break;
        case 'h':
            printf("%s\n", usage);
            return 0;
        default:
            return bg_cli_usage_error("%s: unknown option or missing value '%s' (see burstguard %s "
                                      "--help)",
                                      cmd, argv[optind - 1], cmd);
        }
    }
    if (optind < argc)
        return bg_cli_usage_error("%s: unexpected argument '%s'", cmd, argv[optind]);
    if (!a->config)
        return bg_cli_usage_error("%s: --config FILE is required", cmd);
    return -1;
}
