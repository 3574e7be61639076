/* Faults injected through the mock cluster's error API while the labeled
 * stream runs through a `burstguard run` process (exactly_once): retriable Produce, Fetch, TxnOffsetCommit and EndTxn errors and
 * the broker down for 3 s in the middle of the stream. Afterwards the
 * deduplicated verdicts and revocation commands are the complete set a
 * single undisturbed worker gives for this stream (80 and 20, see
 * test_state_takeover): nothing lost, nothing spurious. The mock runs in
 * this process so its error API is reachable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_state_common.h"
#include <librdkafka/rdkafka_mock.h>

#include "worker/mock.h"

#define N_IDS 40
#define API_PRODUCE 0
#define API_FETCH 1
#define API_END_TXN 26
#define API_TXN_OFFSET_COMMIT 28

static bg_mock *mock;
static char dir[256];
static bg_codec *codec;
static pid_t worker = -1;

static int setup(void **state) {
    (void)state;
    h_tmpdir(dir, sizeof dir, "group-faults");
    char e[256];
    if (bg_mock_new(1, 4, bg_topic_defaults, &mock, e, sizeof e))
        return -1;
    h_write_file("policy.yaml", s_policy_yaml);
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "kafka:\n  bootstrap.servers: %s\n  group.id: faults\n  session.timeout.ms: 6000\n"
             "policy: policy.yaml\nhttp:\n  listen: \"\"\n"
             "worker:\n  guarantee: exactly_once\n  commit_interval_ms: 300\n"
             "  shutdown_timeout_ms: 5000\n",
             bg_mock_bootstrap(mock));
    h_write_file("faults.yaml", cfg);
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

static void test_faults_lose_nothing(void **state) {
    (void)state;
    rd_kafka_mock_cluster_t *mc = bg_mock_cluster(mock);
    rd_kafka_t *p = s_producer(bg_mock_bootstrap(mock));
    assert_non_null(p);
    worker = s_worker("faults.yaml", "w.log", NULL);
    assert_int_equal(s_produce_phase(&p, 1, codec, 1, N_IDS), 0);
    /* the stream is running: phase 1 applied and in the changelog */
    double end = h_now() + 40;
    while (h_now() < end && s_distinct_keys(bg_mock_bootstrap(mock), "burstguard.state.v1") < N_IDS)
        usleep(300000);
    assert_true(s_distinct_keys(bg_mock_bootstrap(mock), "burstguard.state.v1") >= N_IDS);
    rd_kafka_mock_push_request_errors(mc, API_PRODUCE, 3, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
    rd_kafka_mock_push_request_errors(mc, API_FETCH, 2, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    rd_kafka_mock_push_request_errors(mc, API_TXN_OFFSET_COMMIT, 1,
                                      RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
    rd_kafka_mock_push_request_errors(mc, API_END_TXN, 1, RD_KAFKA_RESP_ERR_NOT_COORDINATOR);
    assert_int_equal(s_produce_phase(&p, 1, codec, 2, N_IDS), 0);
    rd_kafka_mock_broker_set_down(mc, 1);
    usleep(3000000);
    rd_kafka_mock_broker_set_up(mc, 1);
    assert_int_equal(s_produce_phase(&p, 1, codec, 3, N_IDS), 0);

    s_outs v = {0}, r = {0};
    end = h_now() + 45;
    while (h_now() < end) {
        /* a read may fail while clients reconnect after the outage: retry */
        if (s_read(bg_mock_bootstrap(mock), "nhi.verdicts.v1", true, &v) ||
            s_read(bg_mock_bootstrap(mock), "nhi.revocations.v1", false, &r)) {
            usleep(500000);
            continue;
        }
        if (v.n >= 80 && r.n >= N_IDS / 2)
            break;
        usleep(500000);
    }
    usleep(1500000);
    assert_int_equal(s_read(bg_mock_bootstrap(mock), "nhi.verdicts.v1", true, &v), 0);
    assert_int_equal(s_read(bg_mock_bootstrap(mock), "nhi.revocations.v1", false, &r), 0);
    fprintf(stderr, "under faults: %zu distinct verdicts (%zu raw), %zu distinct revocations "
                    "(%zu raw); worker alive: %s\n",
            v.n, v.raw, r.n, r.raw, kill(worker, 0) == 0 ? "yes" : "no");
    assert_int_equal(v.anomalous_onsets, N_IDS / 2);
    assert_int_equal(v.unexpected_onsets, N_IDS / 2);
    assert_int_equal(v.n, 80);
    assert_int_equal(r.n, N_IDS / 2);
    kill(worker, SIGTERM);
    assert_int_equal(h_wait(worker, 20), 0);
    worker = -1;
    s_outs_free(&v);
    s_outs_free(&r);
    rd_kafka_destroy(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faults_lose_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
