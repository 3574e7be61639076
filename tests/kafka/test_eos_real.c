/* Exactly-once against a real Kafka cluster (opt-in: set
 * BURSTGUARD_TEST_BROKERS=host:port; skipped otherwise, exit code 77). The
 * mock cluster cannot show this part: read_committed readers must see no
 * output twice and none of an aborted or unfinished transaction.
 *
 * Fresh topics (prefixed, the changelog compacted) are created; a worker
 * with worker.guarantee=exactly_once processes the first phase of the
 * labeled stream and is SIGKILLed mid-stream; a new instance with the same
 * transactional.id takes over (fencing the old one), restores from the
 * changelog and finishes the stream. The verdicts and revocation commands,
 * read with isolation.level=read_committed, must hold every expected one
 * exactly once: raw count == distinct count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_state_common.h"

#define N_IDS 40

static const char *brokers;
static char dir[256];
static bg_codec *codec;
static pid_t worker = -1;
static const char *names[] = {"nhi.usage.v1",    "nhi.secrets.v1",    "nhi.toolcalls.v1",
                              "nhi.envelopes.v1", "nhi.verdicts.v1",   "nhi.revocations.v1",
                              "nhi.deadletter.v1", "burstguard.state.v1"};
static const char *keys[] = {"usage", "secrets", "toolcalls", "envelopes",
                             "verdicts", "revocations", "deadletter", "state"};

static int create_topics(void) {
    char e[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", brokers, e, sizeof e);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof e);
    if (!rk)
        return -1;
    rd_kafka_NewTopic_t *nt[8];
    for (int i = 0; i < 8; i++) {
        char t[128];
        snprintf(t, sizeof t, "%s%s", s_prefix, names[i]);
        nt[i] = rd_kafka_NewTopic_new(t, i == 3 ? 1 : 4, -1, e, sizeof e);
        if (i == 7 || i == 3)
            rd_kafka_NewTopic_set_config(nt[i], "cleanup.policy", "compact");
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, nt, 8, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int rc = ev && !rd_kafka_event_error(ev) ? 0 : -1;
    if (ev) {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t n;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
        for (size_t i = 0; i < n; i++)
            if (rd_kafka_topic_result_error(tr[i])) {
                fprintf(stderr, "create %s: %s\n", rd_kafka_topic_result_name(tr[i]),
                        rd_kafka_topic_result_error_string(tr[i]));
                rc = -1;
            }
        rd_kafka_event_destroy(ev);
    }
    for (int i = 0; i < 8; i++)
        rd_kafka_NewTopic_destroy(nt[i]);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    sleep(2); /* metadata propagation */
    return rc;
}

static int setup(void **state) {
    (void)state;
    h_tmpdir(dir, sizeof dir, "eos-real");
    snprintf(s_prefix, sizeof s_prefix, "bgtest-%ld-%ld.", (long)getpid(), (long)time(NULL));
    if (create_topics())
        return -1;
    h_write_file("policy.yaml", s_policy_yaml);
    char cfg[4096];
    int n = snprintf(cfg, sizeof cfg,
                     "kafka:\n  bootstrap.servers: %s\n  group.id: %seos\n"
                     "  session.timeout.ms: 6000\n  transaction.timeout.ms: 10000\n"
                     "policy: policy.yaml\nhttp:\n  listen: \"\"\n"
                     "worker:\n  guarantee: exactly_once\n  commit_interval_ms: 300\n"
                     "  shutdown_timeout_ms: 5000\n  transactional_id: %seos-1\ntopics:\n",
                     brokers, s_prefix, s_prefix);
    for (int i = 0; i < 8; i++)
        n += snprintf(cfg + n, sizeof cfg - (size_t)n, "  %s: %s%s\n", keys[i], s_prefix, names[i]);
    h_write_file("real.yaml", cfg);
    char e[256];
    if (bg_codec_new(&codec, e, sizeof e) || bg_codec_add_defaults(codec, e, sizeof e))
        return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    if (worker > 0 && kill(worker, SIGKILL) == 0)
        h_wait(worker, 5);
    bg_codec_free(codec);
    return 0;
}

static void test_exactly_once_through_a_kill(void **state) {
    (void)state;
    char topic[160];
    rd_kafka_t *p = h_producer(brokers);
    assert_non_null(p);
    worker = s_worker("real.yaml", "real1.log", NULL);
    assert_int_equal(s_produce_phase(&p, 1, codec, 1, N_IDS), 0);
    snprintf(topic, sizeof topic, "%s%s", s_prefix, names[7]);
    double end = h_now() + 60;
    while (h_now() < end && s_distinct_keys(brokers, topic) < N_IDS)
        usleep(500000);
    assert_true(s_distinct_keys(brokers, topic) >= N_IDS);
    assert_int_equal(s_produce_phase(&p, 1, codec, 2, N_IDS), 0);
    usleep(300000); /* mid-stream: a transaction is open */
    kill(worker, SIGKILL);
    h_wait(worker, 5);
    worker = s_worker("real.yaml", "real2.log", NULL);
    assert_int_equal(s_produce_phase(&p, 1, codec, 3, N_IDS), 0);

    s_outs v = {0}, r = {0};
    char vt[160], rt[160];
    snprintf(vt, sizeof vt, "%s%s", s_prefix, names[4]);
    snprintf(rt, sizeof rt, "%s%s", s_prefix, names[5]);
    end = h_now() + 60;
    while (h_now() < end) {
        assert_int_equal(s_read(brokers, vt, true, &v), 0);
        assert_int_equal(s_read(brokers, rt, false, &r), 0);
        if (v.n >= 80 && r.n >= N_IDS / 2)
            break;
        usleep(1000000);
    }
    usleep(3000000);
    assert_int_equal(s_read(brokers, vt, true, &v), 0);
    assert_int_equal(s_read(brokers, rt, false, &r), 0);
    fprintf(stderr, "real cluster: %zu distinct verdicts (%zu raw), %zu distinct revocations (%zu raw)\n",
            v.n, v.raw, r.n, r.raw);
    assert_int_equal(v.anomalous_onsets, N_IDS / 2);
    assert_int_equal(v.unexpected_onsets, N_IDS / 2);
    assert_int_equal(v.n, 80);
    assert_int_equal(v.raw, v.n); /* exactly once */
    assert_int_equal(r.n, N_IDS / 2);
    assert_int_equal(r.raw, r.n);
    kill(worker, SIGTERM);
    assert_int_equal(h_wait(worker, 20), 0);
    worker = -1;
    s_outs_free(&v);
    s_outs_free(&r);
    rd_kafka_destroy(p);
}

int main(void) {
    brokers = getenv("BURSTGUARD_TEST_BROKERS");
    if (!brokers || !*brokers) {
        printf("skipped: set BURSTGUARD_TEST_BROKERS=host:port to run against a real Kafka\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exactly_once_through_a_kill),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
