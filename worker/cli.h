/* Small helpers shared by the subcommands: usage errors (exit code 2) and
 * argument parsing. Exit codes: 0 success, 1 runtime failure, 2 usage or
 * configuration error; every error is one line on stderr. */
#ifndef BG_CLI_H
#define BG_CLI_H

#include <stdbool.h>

/* Print "burstguard: <message>" and return 2. */
int bg_cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parse a decimal integer in [min, max]; on failure print why and return 2. */
int bg_cli_parse_long(const char *what, const char *s, long min, long max, long *out);

int bg_run_main(int argc, char **argv);
int bg_demo_main(int argc, char **argv);
int bg_policy_main(int argc, char **argv);
int bg_series_main(int argc, char **argv);
int bg_keygen_main(int argc, char **argv);         /* envelope_cmd.c */
int bg_envelope_main(int argc, char **argv);
int bg_verify_command_main(int argc, char **argv);
int bg_alert_main(int argc, char **argv);           /* alert.c */

#endif
