/* The command line as a user meets it: every usage, configuration and broker
 * error gives exit code 2 (usage/config) or 1 (runtime) and one line on
 * stderr that names what is wrong; `burstguard demo` finds what it planted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

static h_mock mock;
static char dir[256];

/* Run the binary with args; capture stderr (and stdout) into buffers. */
static int run_cmd(const char *const *args, char *out, size_t out_n, char *err, size_t err_n,
                   double timeout_s) {
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)h_bin();
    for (; *args && n < 31; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;
    unlink("cmd.out");
    unlink("cmd.err");
    int fd = open("cmd.out", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = h_spawn(argv, fd, "cmd.err");
    close(fd);
    int rc = h_wait(pid, timeout_s);
    FILE *f = fopen("cmd.out", "r");
    size_t r = f ? fread(out, 1, out_n - 1, f) : 0;
    out[r] = 0;
    if (f)
        fclose(f);
    f = fopen("cmd.err", "r");
    r = f ? fread(err, 1, err_n - 1, f) : 0;
    err[r] = 0;
    if (f)
        fclose(f);
    return rc;
}

static char out[1 << 16], err[1 << 16];

static void expect(const char *const *args, int rc, const char *needle) {
    int got = run_cmd(args, out, sizeof out, err, sizeof err, 60);
    if (got != rc || !strstr(err, needle)) {
        print_error("args:");
        for (const char *const *a = args; *a; a++)
            print_error(" %s", *a);
        print_error("\nwant rc %d and stderr containing '%s'\ngot rc %d, stderr:\n%s\n", rc, needle,
                    got, err);
        fail();
    }
}

static int setup(void **state) {
    (void)state;
    h_tmpdir(dir, sizeof dir, "cli");
    if (h_mock_start(&mock, 2))
        return -1;
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "kafka:\n  bootstrap.servers: %s\n  session.timeout.ms: 6000\nhttp:\n  listen: \"\"\n",
             mock.bootstrap);
    h_write_file("ok.yaml", cfg);
    h_write_file("unknown-key.yaml", "kafka:\n  bootstrap.servers: x\ntopics:\n  usgae: a\n");
    h_write_file("bad-yaml.yaml", "kafka: [\n");
    h_write_file("bad-policy.yaml", "classes:\n  - name: a\n    limits: {api_calls_per_min: -5}\n");
    h_write_file("good-policy.yaml",
                 "classes:\n  - name: ci\n    match: {identity_prefix: \"spiffe://ci/\"}\n"
                 "    limits: {api_calls_per_min: 600}\n    unexpected_action: THROTTLE\n");
    snprintf(cfg, sizeof cfg, "kafka:\n  bootstrap.servers: %s\npolicy: bad-policy.yaml\n",
             mock.bootstrap);
    h_write_file("with-bad-policy.yaml", cfg);
    h_write_file("unreachable.yaml",
                 "kafka:\n  bootstrap.servers: 127.0.0.1:1\nhttp:\n  listen: \"\"\n");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    h_mock_stop(&mock);
    return 0;
}

static void test_usage_errors(void **state) {
    (void)state;
    expect((const char *[]){NULL}, 2, "usage: burstguard COMMAND");
    expect((const char *[]){"frobnicate", NULL}, 2, "unknown command 'frobnicate'");
    expect((const char *[]){"run", NULL}, 2, "--config FILE is required");
    expect((const char *[]){"run", "--config", "ok.yaml", "extra", NULL}, 2,
           "unexpected argument 'extra'");
    expect((const char *[]){"run", "--bogus", NULL}, 2, "unknown option");
    expect((const char *[]){"mock-broker", "--partitions", "abc", NULL}, 2,
           "--partitions: expected an integer");
    expect((const char *[]){"policy", NULL}, 2, "usage: burstguard policy check FILE");
    expect((const char *[]){"demo", "extra", NULL}, 2, "unexpected argument 'extra'");
}

static void test_config_errors(void **state) {
    (void)state;
    expect((const char *[]){"run", "--config", "missing.yaml", NULL}, 2, "missing.yaml");
    expect((const char *[]){"run", "--config", "unknown-key.yaml", NULL}, 2,
           "unknown-key.yaml:4");
    expect((const char *[]){"run", "--config", "unknown-key.yaml", NULL}, 2, "topics.usgae");
    expect((const char *[]){"run", "--config", "bad-yaml.yaml", NULL}, 2, "bad-yaml.yaml:");
    expect((const char *[]){"run", "--config", "ok.yaml", "--set", "topics.usgae=x", NULL}, 2,
           "topics.usgae");
    expect((const char *[]){"run", "--config", "ok.yaml", "--set", "worker.batch_max_ms=abc",
                            NULL},
           2, "worker.batch_max_ms");
    expect((const char *[]){"run", "--config", "ok.yaml", "--set", "kafka.no.such.property=1",
                            NULL},
           2, "kafka.no.such.property");
    /* the Schema Registry client refuses what it cannot use, before connecting */
    expect((const char *[]){"run", "--config", "ok.yaml", "--set",
                            "schema_registry.url=http://127.0.0.1:99999", NULL},
           2, "schema_registry.url");
    expect((const char *[]){"run", "--config", "ok.yaml", "--set",
                            "schema_registry.url=http://127.0.0.1:8081", "--set",
                            "schema_registry.username=bg", "--set",
                            "schema_registry.password_file=no-such-password", NULL},
           2, "schema_registry.password_file");
    expect((const char *[]){"run", "--config", "ok.yaml", "--set",
                            "schema_registry.url=http://127.0.0.1:8081", "--set",
                            "schema_registry.username=bg", NULL},
           2, "schema_registry.password_file");
    expect((const char *[]){"run", "--config", "with-bad-policy.yaml", NULL}, 2,
           "bad-policy.yaml:3:");
    expect((const char *[]){"policy", "check", "bad-policy.yaml", NULL}, 2, "bad-policy.yaml:3:");
    /* a good policy is explained */
    int rc = run_cmd((const char *[]){"policy", "check", "good-policy.yaml", NULL}, out, sizeof out,
                     err, sizeof err, 10);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "class ci"));
    assert_non_null(strstr(out, "600 per minute"));
}

static void test_broker_errors(void **state) {
    (void)state;
    double t0 = h_now();
    expect((const char *[]){"run", "--config", "unreachable.yaml", NULL}, 1, "cannot reach Kafka");
    assert_true(h_now() - t0 < 30);
    expect((const char *[]){"run", "--config", "ok.yaml", "--set", "topics.usage=no.such.topic",
                            NULL},
           1, "input topic 'no.such.topic' does not exist");
    expect((const char *[]){"run", "--config", "ok.yaml", "--set",
                            "topics.verdicts=no.such.output", NULL},
           1, "output topic 'no.such.output' does not exist");
    /* the mock cluster auto-creates topics with 4 partitions; the contract
     * topics here have 2 */
    rd_kafka_t *p = h_producer(mock.bootstrap);
    assert_int_equal(h_produce(p, "nhi.usage.auto", "k", 1, "v", 1), 0);
    assert_int_equal(rd_kafka_flush(p, 10000), 0);
    rd_kafka_destroy(p);
    expect((const char *[]){"run", "--config", "ok.yaml", "--set", "topics.usage=nhi.usage.auto",
                            NULL},
           1, "not co-partitioned");
    /* --brokers overrides the file */
    char b[300];
    snprintf(b, sizeof b, "%s", "127.0.0.1:1");
    expect((const char *[]){"run", "--config", "ok.yaml", "--brokers", b, NULL}, 1,
           "bootstrap.servers=127.0.0.1:1");
}

static void test_demo(void **state) {
    (void)state;
    int rc = run_cmd((const char *[]){"demo", NULL}, out, sizeof out, err, sizeof err, 240);
    if (rc != 0)
        print_error("demo rc %d\nstdout:\n%s\nstderr:\n%s\n", rc, out, err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "every planted burst found with its expected class"));
    assert_non_null(strstr(out, "exactly the compromised secret(s) revoked"));
    assert_non_null(strstr(out, "revocations: 1 published (expected 1)"));
    assert_non_null(strstr(out, "verdicts on unplanted identities: 0"));
    assert_non_null(strstr(out, "dead letters: 3"));
    assert_null(strstr(out, "MISSED"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_broker_errors),
        cmocka_unit_test(test_demo),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
