/* burstguard: one binary, subcommands (DESIGN.md "Commands"). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "../detectors/simd.h"
#include "mock.h"
#include "replay.h"
#include "gen_cmd.h"

static void usage(FILE *f) {
    fprintf(f, "usage: burstguard COMMAND [options]\n"
               "\n"
               "commands:\n"
               "  run --config FILE [--brokers LIST] [--group ID] [--set key=value]...\n"
               "                      the consumer-group worker\n"
               "  demo                mock cluster + labeled synthetic workload + worker + summary\n"
               "  mock-broker [--brokers N] [--partitions N]\n"
               "                      a standalone mock Kafka cluster with the contract topics\n"
               "  replay --config FILE --from TIME --to TIME --out DIR [--policy FILE]\n"
               "         [--topics usage,secrets,toolcalls] [--labels FILE] [--compare DIR]\n"
               "         [--backtest-topic NAME] [--brokers LIST]\n"
               "                      backtest: verdicts, revocations and a report to DIR\n"
               "  gen [--seed N] [--identities N] [--hours H] (--out-dir DIR | --brokers LIST)\n"
               "         [--labels FILE] [--policy-out FILE]\n"
               "                      labeled synthetic traffic (Avro) with ground-truth labels\n"
               "  policy check FILE   validate a policy file and print what it means\n"
               "  series --in FILE.csv [--out FILE.csv] [--sensitivity X]\n"
               "                      one metric's baseline + change-point stack over a CSV\n"
               "  config defaults     every configuration key with its type, default and meaning\n"
               "  keygen --out PREFIX write an Ed25519 key pair: PREFIX.key (0600) and PREFIX.pub\n"
               "  envelope create --identity ID|--workload-class C|--owner O --from T --to T\n"
               "           [--max-api-calls-per-min N]... --approved-by NAME --key FILE --key-id ID\n"
               "                      sign and produce an envelope to nhi.envelopes.v1\n"
               "  envelope revoke ID (the same flags)  produce it again, signed, revoked\n"
               "  verify-command --pub FILE [--in FILE|-]\n"
               "                      check a RevocationCommand's signature (0 ok, 1 not)\n"
               "  alert --config FILE [--brokers LIST] [--set key=value]...\n"
               "                      post matching verdicts to webhooks (json, slack, pagerduty)\n"
               "  version             print the version\n"
               "\n"
               "exit codes: 0 success, 1 runtime failure, 2 usage or configuration error\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (bg_simd_init_from_env() != BG_OK) {
        fprintf(stderr, "burstguard: BG_SIMD must be scalar, avx2 or avx512 (and supported by this CPU)\n");
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "run"))
        return bg_run_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "demo"))
        return bg_demo_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "mock-broker"))
        return bg_mock_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "replay"))
        return bg_replay_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "gen"))
        return bg_gen_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "policy"))
        return bg_policy_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "series"))
        return bg_series_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "keygen"))
        return bg_keygen_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "envelope"))
        return bg_envelope_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "verify-command"))
        return bg_verify_command_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "alert"))
        return bg_alert_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "config")) {
        if (argc != 3 || strcmp(argv[2], "defaults") != 0)
            return bg_cli_usage_error("usage: burstguard config defaults");
        bg_config_print_defaults(stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("burstguard %s\n", BG_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "burstguard: unknown command '%s' (see burstguard --help)\n", cmd);
    return 2;
}
