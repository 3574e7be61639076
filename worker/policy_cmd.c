/* `burstguard policy check FILE`: validate a policy and print what it means. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "policy_load.h"

int bg_policy_main(int argc, char **argv) {
    if (argc != 3 || strcmp(argv[1], "check") != 0)
        return bg_cli_usage_error("usage: burstguard policy check FILE");
    bg_policy p;
    char errstr[1024];
    bg_err err = bg_policy_load(argv[2], &p, errstr, sizeof errstr);
    if (err) {
        fprintf(stderr, "burstguard: %s\n", errstr);
        return 2;
    }
    bg_policy_print(&p, stdout);
    bg_policy_free(&p);
    return 0;
}
