/* Small helpers shared by the subcommands: usage errors (exit code 2) and
 * argument parsing. Exit codes: 0 success, 1 runtime failure, 2 usage or
 * configuration error; every error is one line on stderr. */
#ifndef BG_CLI_H
#define BG_CLI_H

#include <stdbool.h>
#include <stddef.h>

/* Print "burstguard: <message>" and return 2. */
int bg_cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parse a decimal integer in [min, max]; on failure print why and return 2. */
int bg_cli_parse_long(const char *what, const char *s, long min, long max, long *out);

#define BG_CLI_MAX_SETS 256

/* The options of the commands that load the worker configuration. */
typedef struct bg_cli_args {
    const char *config;                  /* --config FILE, required */
    const char *group;                   /* --group ID, when the command takes it */
    const char *sets[BG_CLI_MAX_SETS];   /* --set key=value and --brokers, in order */
    size_t n_sets;
    char brokers_set[1024];              /* "kafka.bootstrap.servers=LIST" for --brokers */
} bg_cli_args;

/* Parse `CMD --config FILE [--brokers LIST] [--group ID] [--set key=value]...`
 * (--group only with_group). Returns -1 when the command should go on,
 * otherwise its exit code: 0 after --help (usage printed), 2 on a usage error. */
int bg_cli_config_args(const char *cmd, const char *usage, bool with_group, int argc,
                       char **argv, bg_cli_args *a);

int bg_run_main(int argc, char **argv);
int bg_demo_main(int argc, char **argv);
int bg_policy_main(int argc, char **argv);
int bg_series_main(int argc, char **argv);
int bg_keygen_main(int argc, char **argv);         /* envelope_cmd.c */
int bg_envelope_main(int argc, char **argv);
int bg_verify_command_main(int argc, char **argv);
int bg_alert_main(int argc, char **argv);           /* alert.c */

#endif
