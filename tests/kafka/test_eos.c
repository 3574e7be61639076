/* The exactly-once path against librdkafka's mock cluster, run in this
 * process so that its error API is reachable: a `burstguard run` process
 * with worker.guarantee=exactly_once commits one transaction per commit
 * interval (counted in /metrics); an abortable error injected into
 * AddPartitionsToTxn aborts a transaction, the worker rewinds and restores
 * its tasks, and the deduplicated outputs are still complete and free of
 * spurious verdicts; a fencing error ends the worker with exit code 1 and
 * one line naming the fencing.
 *
 * What the mock cannot show (measured on librdkafka 2.0.2): it accepts
 * every transactional call but read_committed readers still see aborted and
 * open transactions' messages, and transactional offsets are not kept. So
 * duplicates are expected and counted here; that aborted outputs stay
 * invisible is what test_eos_real checks against a real cluster. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_state_common.h"
#include <librdkafka/rdkafka_mock.h>

#include "worker/mock.h"

#define N_IDS 40
#define API_ADD_PARTITIONS_TO_TXN 24
#define API_END_TXN 26

static bg_mock *mock;
static char dir[256];
static bg_codec *codec;
static pid_t worker = -1;

static int setup(void **state) {
    (void)state;
    h_tmpdir(dir, sizeof dir, "eos");
    char e[256];
    if (bg_mock_new(1, 4, bg_topic_defaults, &mock, e, sizeof e)) {
        fprintf(stderr, "mock: %s\n", e);
        return -1;
    }
    h_write_file("policy.yaml", s_policy_yaml);
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "kafka:\n  bootstrap.servers: %s\n  group.id: eos\n  session.timeout.ms: 6000\n"
             "policy: policy.yaml\nhttp:\n  listen: 127.0.0.1:0\n"
             "worker:\n  guarantee: exactly_once\n  commit_interval_ms: 300\n"
             "  shutdown_timeout_ms: 5000\n  transactional_id: eos-test-1\n",
             bg_mock_bootstrap(mock));
    h_write_file("eos.yaml", cfg);
    if (bg_codec_new(&codec, e, sizeof e) || bg_codec_add_defaults(codec, e, sizeof e))
        return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    if (worker > 0 && kill(worker, SIGKILL) == 0)
        h_wait(worker, 5);
    bg_mock_free(mock);
    bg_codec_free(codec);
    return 0;
}

static double wait_metric(unsigned port, const char *series, double at_least, double timeout_s) {
    double end = h_now() + timeout_s, v = -1;
    while (h_now() < end && (v = s_metric(port, series)) < at_least)
        usleep(200000);
    return v;
}

static void test_commits_aborts_fencing(void **state) {
    (void)state;
    rd_kafka_mock_cluster_t *mc = bg_mock_cluster(mock);
    rd_kafka_t *p = h_producer(bg_mock_bootstrap(mock));
    assert_non_null(p);
    worker = s_worker("eos.yaml", "eos1.log", NULL);
    unsigned port = s_port_from_log("eos1.log");
    assert_true(port > 0);
    assert_int_equal(s_produce_phase(&p, 1, codec, 1, N_IDS), 0);

    /* transactions commit, one per interval, and phase 1 reaches the changelog */
    assert_true(wait_metric(port, "burstguard_transactions_total{result=\"commit\"} ", 3, 30) >= 3);
    double end = h_now() + 30;
    while (h_now() < end && s_distinct_keys(bg_mock_bootstrap(mock), "burstguard.state.v1") < N_IDS)
        usleep(300000);
    assert_true(s_distinct_keys(bg_mock_bootstrap(mock), "burstguard.state.v1") >= N_IDS);
    assert_true(s_grep_count("eos1.log", "exactly-once: transactional.id eos-test-1") == 1);

    /* an abortable error: the next transaction that adds a partition aborts */
    rd_kafka_mock_push_request_errors(mc, API_ADD_PARTITIONS_TO_TXN, 2,
                                      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                                      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    assert_int_equal(s_produce_phase(&p, 1, codec, 2, N_IDS), 0);
    double aborts = wait_metric(port, "burstguard_transactions_total{result=\"abort\"} ", 1, 30);
    fprintf(stderr, "aborted transactions: %.0f\n", aborts);
    assert_true(aborts >= 1);
    assert_true(s_grep_count("eos1.log", "input rewound to the committed offsets") >= 1);
    assert_int_equal(s_produce_phase(&p, 1, codec, 3, N_IDS), 0);

    /* nothing lost, nothing spurious (distinct outputs; the mock shows
     * aborted ones too, so raw duplicates are expected here) */
    s_outs v = {0}, r = {0};
    end = h_now() + 40;
    while (h_now() < end) {
        assert_int_equal(s_read(bg_mock_bootstrap(mock), "nhi.verdicts.v1", true, &v), 0);
        assert_int_equal(s_read(bg_mock_bootstrap(mock), "nhi.revocations.v1", false, &r), 0);
        if (v.anomalous_onsets == N_IDS / 2 && v.unexpected_onsets == N_IDS / 2 && v.n >= 80 &&
            r.n >= N_IDS / 2)
            break;
        usleep(500000);
    }
    fprintf(stderr, "exactly-once on the mock: %zu distinct verdicts (%zu raw), %zu distinct "
                    "revocations (%zu raw)\n",
            v.n, v.raw, r.n, r.raw);
    /* the same stream gives a single at-least-once worker 80 verdicts and 20
     * revocations (test_state_takeover's reference) */
    assert_int_equal(v.anomalous_onsets, N_IDS / 2);
    assert_int_equal(v.unexpected_onsets, N_IDS / 2);
    assert_int_equal(v.n, 80);
    assert_int_equal(r.n, N_IDS / 2);
    s_body b;
    assert_int_equal(s_get(port, "/readyz", &b), 200);
    free(b.p);
    s_outs_free(&v);
    s_outs_free(&r);

    /* fencing: a newer producer epoch took over; the worker must stop */
    rd_kafka_mock_push_request_errors(mc, API_END_TXN, 1, RD_KAFKA_RESP_ERR_PRODUCER_FENCED);
    char idb[64];
    bg_event ev = s_usage(s_ident(0), 131, "known.example", 1, idb);
    assert_int_equal(h_produce_event(p, codec, 1, &ev), 0);
    assert_int_equal(rd_kafka_flush(p, 10000), 0);
    int rc = h_wait(worker, 30);
    worker = -1;
    assert_int_equal(rc, 1);
    assert_true(s_grep_count("eos1.log", "burstguard: transactional producer eos-test-1 fenced") ==
                1);
    rd_kafka_destroy(p);
}

/* The changelog must be co-partitioned with the inputs: a state topic with
 * another partition count, or none, is refused at start (exit 2, one line). */
static void test_state_topic_checked(void **state) {
    (void)state;
    assert_int_equal(rd_kafka_mock_topic_create(bg_mock_cluster(mock), "bad.state", 3, 1), 0);
    char *argv[] = {(char *)h_bin(), "run", "--config", "eos.yaml", "--set",
                    "topics.state=bad.state", NULL};
    assert_int_equal(h_wait(h_spawn(argv, -1, "bad1.log"), 30), 2);
    assert_int_equal(s_grep_count("bad1.log", "burstguard: state topic 'bad.state' has 3 "
                                              "partitions but the input topics have 4"),
                     1);
    argv[5] = "topics.state=no.such.state";
    assert_int_equal(h_wait(h_spawn(argv, -1, "bad2.log"), 30), 2);
    assert_int_equal(s_grep_count("bad2.log", "burstguard: state topic 'no.such.state' does not "
                                              "exist"),
                     1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_topic_checked),
        cmocka_unit_test(test_commits_aborts_fencing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
