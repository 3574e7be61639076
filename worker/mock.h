/* librdkafka's mock cluster (rdkafka_mock.h) with the contract topics, for
 * `burstguard mock-broker`, the demo and the tests: a real Kafka protocol peer
 * on localhost that other processes and tools (kcat) can reach. */
#ifndef BG_MOCK_H
#define BG_MOCK_H

#include <stdint.h>

#include "../detectors/err.h"
#include "config.h"

typedef struct bg_mock bg_mock;

/* Start brokers brokers and create every topic of topics (config names) with
 * partitions partitions. */
bg_err bg_mock_new(int brokers, int partitions, const char *const topics[BG_TOPIC_COUNT],
                   bg_mock **out, char *errstr, size_t errstr_size);
const char *bg_mock_bootstrap(const bg_mock *m);
/* The librdkafka mock cluster itself (tests inject errors through it). */
struct rd_kafka_mock_cluster_s;
struct rd_kafka_mock_cluster_s *bg_mock_cluster(bg_mock *m);
void bg_mock_free(bg_mock *m);

/* `burstguard mock-broker [--brokers N] [--partitions N]`: prints the bootstrap
 * address on its first line and runs until SIGTERM/SIGINT. */
int bg_mock_main(int argc, char **argv);

#endif
