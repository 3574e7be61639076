/* The bounded store under an identity flood, through a real worker process:
 * with state.max_identities=100 per task, 3000 distinct identities leave at
 * most 200 in the two tasks' stores (the burstguard_identities gauge), the
 * evictions are counted in /metrics, every evicted identity gets a
 * tombstone in the changelog and the process's memory stays bounded. Then a
 * restart restores from that changelog, where two corrupt records were
 * added: they are counted in burstguard_snapshots_refused_total and skipped,
 * the worker keeps running and /readyz turns 200 once both tasks are
 * restored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_state_common.h"

#define FLOOD 3000

static h_mock mock;
static char dir[256];
static bg_codec *codec;
static pid_t worker = -1;

static int setup(void **state) {
    (void)state;
    h_tmpdir(dir, sizeof dir, "state-bounds");
    if (h_mock_start(&mock, 2))
        return -1;
    h_write_file("policy.yaml", s_policy_yaml);
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "kafka:\n  bootstrap.servers: %s\n  group.id: bounds\n  session.timeout.ms: 6000\n"
             "policy: policy.yaml\nhttp:\n  listen: 127.0.0.1:0\n"
             "state:\n  max_identities: 100\n"
             "worker:\n  commit_interval_ms: 300\n  shutdown_timeout_ms: 5000\n",
             mock.bootstrap);
    h_write_file("bounds.yaml", cfg);
    char e[256];
    if (bg_codec_new(&codec, e, sizeof e) || bg_codec_add_defaults(codec, e, sizeof e))
        return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    if (worker > 0 && kill(worker, SIGKILL) == 0)
        h_wait(worker, 5);
    h_mock_stop(&mock);
    bg_codec_free(codec);
    return 0;
}

static long rss_kb(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

static double wait_metric(unsigned port, const char *series, double at_least, double timeout_s) {
    double end = h_now() + timeout_s, v = -1;
    while (h_now() < end && (v = s_metric(port, series)) < at_least)
        usleep(200000);
    return v;
}

static void test_flood_then_restore(void **state) {
    (void)state;
    rd_kafka_t *p = h_producer(mock.bootstrap);
    assert_non_null(p);
    worker = s_worker("bounds.yaml", "w1.log", NULL);
    unsigned port = s_port_from_log("w1.log");
    assert_true(port > 0);
    char idb[64], who[64];
    for (int i = 0; i < FLOOD; i++) {
        snprintf(who, sizeof who, "spiffe://t/svc/flood-%05d", i);
        bg_event ev = s_usage(who, i * 0.01, "known.example", 1, idb);
        assert_int_equal(s_produce_event(p, codec, 1, &ev), 0);
    }
    assert_int_equal(rd_kafka_flush(p, 20000), 0);

    double ev = wait_metric(port, "burstguard_evictions_total{reason=\"bound\"} ", FLOOD - 200, 40);
    usleep(1000000); /* a commit interval or two: the last tombstones are written */
    double ids = s_metric(port, "burstguard_identities ");
    double bytes = s_metric(port, "burstguard_state_bytes ");
    double tomb = s_metric(port, "burstguard_changelog_records_total{kind=\"tombstone\"} ");
    long rss = rss_kb(worker);
    fprintf(stderr, "flood of %d: %.0f identities held, %.0f evicted, %.0f state bytes, %.0f "
                    "tombstones, RSS %ld KiB\n",
            FLOOD, ids, ev, bytes, tomb, rss);
    assert_true(ev >= FLOOD - 200);
    assert_true(ids > 0 && ids <= 200);
    assert_true(bytes > 0 && bytes < 200.0 * 64 * 1024);
    assert_true(tomb >= ev);
    assert_true(rss > 0 && rss < 512 * 1024);

    /* the changelog holds the tombstones (null values) */
    bg_rb_msg *m;
    size_t n, nulls = 0;
    char err[256];
    assert_int_equal(bg_rb_drain(mock.bootstrap, "burstguard.state.v1", 10000, &m, &n, err,
                                 sizeof err),
                     BG_OK);
    for (size_t i = 0; i < n; i++)
        nulls += m[i].value_len == 0;
    bg_rb_msgs_free(m, n);
    fprintf(stderr, "changelog: %zu records, %zu tombstones\n", n, nulls);
    assert_true(nulls >= (size_t)ev);

    kill(worker, SIGTERM);
    assert_int_equal(h_wait(worker, 20), 0);

    /* two corrupt snapshots, one per partition: garbage, and a framed
     * record whose LZ4 size prefix lies */
    static const uint8_t garbage[] = {0, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff, 0x0f};
    static const uint8_t liar[] = {0, 0, 0, 0, 7, 2, 'x', 0, 2, 16, 0, 0x10, 0, 0,
                                   0x40, 'a', 'b', 'c', 10, 2, 'v'};
    for (int part = 0; part < 2; part++) {
        const uint8_t *v = part ? liar : garbage;
        size_t len = part ? sizeof liar : sizeof garbage;
        assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("burstguard.state.v1"),
                                           RD_KAFKA_V_PARTITION(part), RD_KAFKA_V_KEY("x", 1),
                                           RD_KAFKA_V_VALUE((void *)(uintptr_t)v, len),
                                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                           RD_KAFKA_V_END),
                         0);
    }
    assert_int_equal(rd_kafka_flush(p, 10000), 0);

    worker = s_worker("bounds.yaml", "w2.log", NULL);
    port = s_port_from_log("w2.log");
    assert_true(port > 0);
    s_body b;
    double end = h_now() + 40;
    long code = 0;
    while (h_now() < end && (code = s_get(port, "/readyz", &b)) != 200) {
        free(b.p);
        usleep(200000);
    }
    free(b.p);
    assert_int_equal(code, 200);
    double restored = s_metric(port, "burstguard_restored_identities_total ");
    double refused = s_metric(port, "burstguard_snapshots_refused_total ");
    fprintf(stderr, "restart: %.0f identities restored, %.0f snapshots refused\n", restored,
            refused);
    /* a snapshot written before its identity's eviction is restored, then
     * forgotten by the tombstone that follows it: only the survivors stay */
    double held = s_metric(port, "burstguard_identities ");
    fprintf(stderr, "restart: %.0f identities held after the restore\n", held);
    assert_true(restored >= 1);
    assert_true(held >= 1 && held <= 200);
    assert_true(refused >= 2);
    assert_int_equal(s_metric(port, "burstguard_restore_remaining_records{partition=\"0\"} "), 0);
    assert_int_equal(s_metric(port, "burstguard_restore_remaining_records{partition=\"1\"} "), 0);
    assert_true(s_grep_count("w2.log", "refused") >= 2);
    kill(worker, SIGTERM);
    assert_int_equal(h_wait(worker, 20), 0);
    worker = -1;
    rd_kafka_destroy(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flood_then_restore),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
