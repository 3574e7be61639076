/* Static membership through real processes: member a with
 * kafka.group.instance.id, member b with the id taken from the environment
 * variable named by worker.instance_id_env (the Helm chart's pod name). b
 * is SIGKILLed and restarted within session.timeout.ms. Asserted: both
 * members join with the group.instance.id they were given (logged, and
 * the exactly-once transactional.id derived from it), the restarted member
 * gets an assignment again and both stop cleanly. Printed: whether the
 * other member saw a rebalance.
 *
 * librdkafka 2.0.2's mock cluster does not implement static membership
 * (measured: a restarted member triggers a rebalance, and the other member
 * may lose and regain partitions, even when the restart takes under a
 * second); so "no reassignment" cannot be shown here. On a real cluster
 * the restarted member gets its assignment back without a rebalance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_state_common.h"

static h_mock mock;
static char dir[256];
static pid_t pids[2] = {-1, -1};

static int setup(void **state) {
    (void)state;
    h_tmpdir(dir, sizeof dir, "group-static");
    if (h_mock_start(&mock, 4))
        return -1;
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "kafka:\n  bootstrap.servers: %s\n  group.id: static\n  session.timeout.ms: 6000\n"
             "  heartbeat.interval.ms: 500\nhttp:\n  listen: \"\"\n"
             "worker:\n  shutdown_timeout_ms: 5000\n  instance_id_env: BG_TEST_POD_NAME\n"
             "  guarantee: exactly_once\n",
             mock.bootstrap);
    h_write_file("static.yaml", cfg);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++)
        if (pids[i] > 0 && kill(pids[i], SIGKILL) == 0)
            h_wait(pids[i], 5);
    h_mock_stop(&mock);
    return 0;
}

static size_t wait_count(const char *log, const char *needle, size_t at_least, double timeout_s) {
    double end = h_now() + timeout_s;
    size_t c = 0;
    while (h_now() < end && (c = s_grep_count(log, needle)) < at_least)
        usleep(100000);
    return c;
}

static void test_restart_within_session_timeout(void **state) {
    (void)state;
    pids[0] = s_worker("static.yaml", "a.log", "burstguard-0");
    setenv("BG_TEST_POD_NAME", "burstguard-1", 1); /* b: from the environment variable */
    pids[1] = s_worker("static.yaml", "b.log", NULL);
    assert_true(wait_count("a.log", "assigned", 1, 30) >= 1);
    assert_true(wait_count("b.log", "assigned", 1, 30) >= 1);
    assert_int_equal(s_grep_count("a.log", "static membership: group.instance.id=burstguard-0"), 1);
    assert_int_equal(s_grep_count("b.log", "static membership: group.instance.id=burstguard-1"), 1);
    assert_int_equal(s_grep_count("a.log", "exactly-once: transactional.id static-burstguard-0"), 1);
    assert_int_equal(s_grep_count("b.log", "exactly-once: transactional.id static-burstguard-1"), 1);
    usleep(3000000); /* settled */
    size_t a_assigned = s_grep_count("a.log", "assigned"),
           a_revoked = s_grep_count("a.log", "revoked") + s_grep_count("a.log", "lost");
    kill(pids[1], SIGKILL);
    h_wait(pids[1], 5);
    double killed = h_now();
    pids[1] = s_worker("static.yaml", "b2.log", NULL);
    assert_true(wait_count("b2.log", "consuming", 1, 20) >= 1);
    double rejoined = h_now() - killed; /* b2 has joined the group (its JoinGroup is out) */
    assert_true(wait_count("b2.log", "assigned", 1, 40) >= 1);
    usleep(8000000); /* longer than the session timeout */
    size_t a_assigned2 = s_grep_count("a.log", "assigned"),
           a_revoked2 = s_grep_count("a.log", "revoked") + s_grep_count("a.log", "lost");
    fprintf(stderr, "member a: assignments %zu -> %zu, revocations %zu -> %zu\n", a_assigned,
            a_assigned2, a_revoked, a_revoked2);
    fprintf(stderr, "rebalance seen by a: %s\n", a_assigned2 == a_assigned ? "no" : "yes (mock)");
    fprintf(stderr, "b rejoined %.1f s after the kill (session timeout 6 s)\n", rejoined);
    /* not asserted: the mock rebalances a restarted static member anyway
     * (measured: a loses and regains partitions even when b rejoins within a
     * second); on a real cluster a_revoked2 == a_revoked */
    (void)a_revoked2;
    /* which tasks came back to the restarted b (the same as b's when it
     * rejoins before the mock rebalances; printed, not asserted) */
    for (int t = 0; t < 4; t++) {
        char needle[64];
        snprintf(needle, sizeof needle, "task %d: ", t);
        fprintf(stderr, "task %d: b %s, restarted b %s\n", t,
                s_grep_count("b.log", needle) ? "yes" : "no",
                s_grep_count("b2.log", needle) ? "yes" : "no");
    }
    for (int i = 0; i < 2; i++) {
        kill(pids[i], SIGTERM);
        assert_int_equal(h_wait(pids[i], 20), 0);
        pids[i] = -1;
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_within_session_timeout),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
