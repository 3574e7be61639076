/* Policy hot reload through a real worker process: a changed policy file is
 * picked up between batches (a limit changes mid-stream, verdicts carry the
 * new policy_version); an invalid policy sent with SIGHUP is rejected with a
 * log line and the old one stays in force. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#define T0 1795996800000LL
#define MIN 60000LL

static h_mock mock;
static char dir[256];
static bg_codec *codec;
static pid_t worker = -1;

static void write_policy(int limit) {
    char text[512];
    snprintf(text, sizeof text,
             "classes:\n  - name: svc\n    match: {identity_prefix: \"spiffe://t/svc/\"}\n"
             "    limits: {api_calls_per_min: %d}\n    unexpected_action: THROTTLE\n",
             limit);
    h_write_file("policy.tmp", text);
    if (rename("policy.tmp", "policy.yaml")) /* a new inode, as a ConfigMap update makes */
        abort();
}

static void burst(rd_kafka_t *p, const char *who, int calls_per_event) {
    for (int k = 0; k < 3; k++) {
        bg_event ev;
        memset(&ev, 0, sizeof ev);
        ev.kind = BG_EV_USAGE;
        ev.event_id = h_s("e");
        ev.identity = h_s(who);
        ev.event_time = T0 + 90 * MIN + k * 1000;
        ev.u.usage.api = h_s("chat");
        ev.u.usage.destination = h_s("a.example");
        ev.u.usage.api_calls = calls_per_event;
        assert_int_equal(h_produce_event(p, codec, 1, &ev), 0);
    }
    assert_int_equal(rd_kafka_flush(p, 10000), 0);
}

static bool log_has(const char *needle) {
    FILE *f = fopen("worker.log", "r");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static bool wait_log(const char *needle, double timeout_s) {
    double end = h_now() + timeout_s;
    while (h_now() < end) {
        if (log_has(needle))
            return true;
        usleep(100000);
    }
    return false;
}

typedef struct want {
    const char *who;
    char version[32];
} want;

static int has_onset(const bg_rb_msg *m, size_t n, void *arg) {
    want *w = arg;
    for (size_t i = 0; i < n; i++) {
        bg_rb_verdict v;
        if (bg_rb_verdict_decode(m[i].value, m[i].value_len, &v))
            continue;
        bool ok = !strcmp(v.identity, w->who) && v.phase == BG_PHASE_ONSET;
        if (ok)
            snprintf(w->version, sizeof w->version, "%s", v.policy_version);
        bg_rb_verdict_clear(&v);
        if (ok)
            return 1;
    }
    return 0;
}

static size_t verdicts_for(const char *who) {
    bg_rb_msg *m;
    size_t n, count = 0;
    char err[256];
    assert_int_equal(bg_rb_drain(mock.bootstrap, "nhi.verdicts.v1", 10000, &m, &n, err, sizeof err),
                     BG_OK);
    for (size_t i = 0; i < n; i++)
        count += m[i].key_len == strlen(who) && !memcmp(m[i].key, who, m[i].key_len);
    bg_rb_msgs_free(m, n);
    return count;
}

static void expect_onset(want *w) {
    bg_rb_msg *m;
    size_t n;
    int ok = h_read_until(mock.bootstrap, "nhi.verdicts.v1", has_onset, w, 30, &m, &n);
    bg_rb_msgs_free(m, n);
    if (!ok)
        print_error("no ONSET verdict for %s\n", w->who);
    assert_true(ok);
}

static void test_reload(void **state) {
    (void)state;
    write_policy(100);
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "kafka:\n  bootstrap.servers: %s\n  group.id: reload\n  session.timeout.ms: 6000\n"
             "policy: policy.yaml\nhttp:\n  listen: \"\"\n",
             mock.bootstrap);
    h_write_file("config.yaml", cfg);
    char *argv[] = {(char *)h_bin(), "run", "--config", "config.yaml", NULL};
    worker = h_spawn(argv, -1, "worker.log");
    rd_kafka_t *p = h_producer(mock.bootstrap);

    want r1 = {.who = "spiffe://t/svc/r1"};
    burst(p, r1.who, 50); /* 150 calls, limit 100 */
    expect_onset(&r1);

    write_policy(1000);
    assert_true(wait_log("policy reloaded", 15));
    burst(p, "spiffe://t/svc/r2", 50); /* 150 calls: fine under the new limit */
    want r3 = {.who = "spiffe://t/svc/r3"};
    burst(p, r3.who, 500); /* 1500 calls */
    expect_onset(&r3);
    assert_string_not_equal(r1.version, r3.version);
    assert_int_equal(verdicts_for("spiffe://t/svc/r2"), 0);

    h_write_file("policy.yaml", "classes:\n  - name: svc\n    limits: {api_calls_per_min: -1}\n");
    kill(worker, SIGHUP);
    assert_true(wait_log("policy reload rejected", 15));
    assert_true(wait_log("policy.yaml:3:", 1)); /* the error names the line */
    want r4 = {.who = "spiffe://t/svc/r4"};
    burst(p, r4.who, 500);
    expect_onset(&r4);
    assert_string_equal(r4.version, r3.version); /* the old policy stayed */

    kill(worker, SIGTERM);
    assert_int_equal(h_wait(worker, 20), 0);
    worker = -1;
    rd_kafka_destroy(p);
}

static int setup(void **state) {
    (void)state;
    h_tmpdir(dir, sizeof dir, "reload");
    if (h_mock_start(&mock, 2))
        return -1;
    char e[256];
    return bg_codec_new(&codec, e, sizeof e) || bg_codec_add_defaults(codec, e, sizeof e) ? -1 : 0;
}

static int teardown(void **state) {
    (void)state;
    if (worker > 0 && kill(worker, SIGKILL) == 0)
        h_wait(worker, 5);
    h_mock_stop(&mock);
    bg_codec_free(codec);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_reload)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
