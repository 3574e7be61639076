/* Mock cluster wrapper and the mock-broker command (see mock.h). */
#include "mock.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "cli.h"
#include "log.h"

struct bg_mock {
    rd_kafka_t *rk; /* the mock cluster lives in this handle's threads */
    rd_kafka_mock_cluster_t *mc;
};

bg_err bg_mock_new(int brokers, int partitions, const char *const topics[BG_TOPIC_COUNT],
                   bg_mock **out, char *errstr, size_t errstr_size) {
    bg_mock *m = calloc(1, sizeof *m);
    if (!m)
        return BG_ERR_NOMEM;
    char e[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", e, sizeof e);
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    if (!m->rk) {
        snprintf(errstr, errstr_size, "cannot create the mock cluster's handle: %s", e);
        free(m);
        return BG_ERR_KAFKA;
    }
    m->mc = rd_kafka_mock_cluster_new(m->rk, brokers);
    if (!m->mc) {
        snprintf(errstr, errstr_size, "cannot start a mock cluster of %d broker(s)", brokers);
        rd_kafka_destroy(m->rk);
        free(m);
        return BG_ERR_KAFKA;
    }
    for (int t = 0; t < BG_TOPIC_COUNT; t++) {
        /* the envelopes topic is a table read in full: one partition is enough */
        int np = t == BG_TOPIC_ENVELOPES ? 1 : partitions;
        rd_kafka_resp_err_t err =
            rd_kafka_mock_topic_create(m->mc, topics[t], np, brokers < 3 ? brokers : 3);
        if (err) {
            snprintf(errstr, errstr_size, "cannot create topic %s: %s", topics[t],
                     rd_kafka_err2str(err));
            bg_mock_free(m);
            return BG_ERR_KAFKA;
        }
    }
    *out = m;
    return BG_OK;
}

const char *bg_mock_bootstrap(const bg_mock *m) { return rd_kafka_mock_cluster_bootstraps(m->mc); }

rd_kafka_mock_cluster_t *bg_mock_cluster(bg_mock *m) { return m->mc; }

void bg_mock_free(bg_mock *m) {
    if (!m)
        return;
    rd_kafka_mock_cluster_destroy(m->mc);
    rd_kafka_destroy(m->rk);
    free(m);
}

static volatile sig_atomic_t mock_stop;
static void on_signal(int sig) {
    (void)sig;
    mock_stop = 1;
}

int bg_mock_main(int argc, char **argv) {
    static const struct option opts[] = {{"brokers", required_argument, NULL, 'b'},
                                         {"partitions", required_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    long brokers = 1, partitions = 4;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "b:p:h", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (bg_cli_parse_long("--brokers", optarg, 1, 16, &brokers))
                return 2;
            break;
        case 'p':
            if (bg_cli_parse_long("--partitions", optarg, 1, 256, &partitions))
                return 2;
            break;
        case 'h':
            printf("usage: burstguard mock-broker [--brokers N] [--partitions N]\n"
                   "Starts a librdkafka mock cluster with the contract topics, prints its\n"
                   "bootstrap address on the first line and runs until SIGTERM.\n");
            return 0;
        default:
            return bg_cli_usage_error("mock-broker: unknown option (see --help)");
        }
    }
    if (optind < argc)
        return bg_cli_usage_error("mock-broker: unexpected argument '%s'", argv[optind]);
    bg_mock *m;
    char errstr[512];
    if (bg_mock_new((int)brokers, (int)partitions, bg_topic_defaults, &m, errstr, sizeof errstr)) {
        fprintf(stderr, "burstguard mock-broker: %s\n", errstr);
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("%s\n", bg_mock_bootstrap(m));
    fflush(stdout);
    bg_info("mock cluster: %ld broker(s), %ld partition(s) per topic at %s", brokers, partitions,
            bg_mock_bootstrap(m));
    while (!mock_stop)
        usleep(100000);
    bg_mock_free(m);
    return 0;
}
