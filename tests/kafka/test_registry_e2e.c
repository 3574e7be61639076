/* The worker with a Schema Registry, through real processes: `burstguard
 * mock-broker`, `burstguard run` with schema_registry.url pointing at
 * tests/kafka/registry_double.py, and events written with schema id 100 (an
 * evolved UsageEvent only the registry knows). The registry is unreachable
 * when the events arrive, then answers 500 twice, then works: the messages
 * wait (no dead letter while it fails; SIGTERM still stops the worker, and
 * the restarted one reads them again), then the verdict appears. An id the
 * registry does not know (404/40403) is a dead letter with reason
 * unknown_schema. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "harness.h"
#include "registry_double.h"

#define T0 1795996800000LL
#define MIN 60000LL

static h_mock mock;
static h_reg reg;
static char dir[256];
static bg_codec *codec;
static pid_t worker = -1;
static int port;

static const char *policy_yaml = "windows: {bucket: 60s, correlation: 15m, learning_period: 1h}\n"
                                 "classes:\n"
                                 "  - name: svc\n"
                                 "    match: {identity_prefix: \"spiffe://t/svc/\"}\n"
                                 "    limits: {api_calls_per_min: 100}\n"
                                 "    unexpected_action: THROTTLE\n";

/* schemas/usage_event.avsc with one more field, as a newer producer has it */
static char *evolved_usage(void) {
    char path[1024];
    const char *src = getenv("BG_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/schemas/usage_event.avsc", src ? src : ".");
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *at = strstr(text, "\"fields\": [");
    if (!at)
        return NULL;
    size_t head = (size_t)(at - text) + strlen("\"fields\": [");
    const char *add = "{\"name\": \"region\", \"type\": \"string\", \"default\": \"eu\"},";
    char *out = malloc(n + strlen(add) + 1);
    if (!out)
        return NULL;
    memcpy(out, text, head);
    strcpy(out + head, add);
    strcat(out, text + head);
    return out;
}

static int free_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int p = -1;
    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &al) == 0)
        p = ntohs(a.sin_port);
    if (s >= 0)
        close(s);
    return p;
}

static int setup(void **state) {
    (void)state;
    h_tmpdir(dir, sizeof dir, "registry-e2e");
    if (h_mock_start(&mock, 2))
        return -1;
    char *schema = evolved_usage();
    if (!schema || mkdir("registry", 0755))
        return -1;
    h_write_file("registry/100.avsc", schema);
    h_write_file("policy.yaml", policy_yaml);
    port = free_port();
    if (port <= 0)
        return -1;
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "kafka:\n  bootstrap.servers: %s\n  group.id: reg-e2e\n  session.timeout.ms: 6000\n"
             "  auto.commit.interval.ms: 200\n"
             "schema_registry:\n  url: http://127.0.0.1:%d/\n  timeout_ms: 1s\n"
             "  retry_max_ms: 800ms\n"
             "policy: policy.yaml\nhttp:\n  listen: \"\"\n"
             "worker:\n  shutdown_timeout_ms: 5000\n",
             mock.bootstrap, port);
    h_write_file("config.yaml", cfg);
    char e[256];
    if (bg_codec_new(&codec, e, sizeof e) || bg_codec_add_defaults(codec, e, sizeof e) ||
        bg_codec_add_schema(codec, 100, schema, strlen(schema), e, sizeof e) ||
        bg_codec_add_schema(codec, 200, schema, strlen(schema), e, sizeof e)) {
        fprintf(stderr, "codec: %s\n", e);
        free(schema);
        return -1;
    }
    free(schema);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    if (worker > 0 && kill(worker, SIGKILL) == 0)
        h_wait(worker, 5);
    h_reg_stop(&reg);
    h_mock_stop(&mock);
    bg_codec_free(codec);
    return 0;
}

static bg_event usage(const char *who, double at_min, int calls) {
    bg_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = BG_EV_USAGE;
    ev.event_id = h_s("e");
    ev.identity = h_s(who);
    ev.owner = h_s("team-t");
    ev.event_time = T0 + (int64_t)(at_min * (double)MIN);
    ev.u.usage.api = h_s("chat");
    ev.u.usage.destination = h_s("a.example");
    ev.u.usage.api_calls = calls;
    ev.u.usage.tokens_in = 10;
    return ev;
}

static int unexpected_onset(const bg_rb_msg *m, size_t n, void *arg) {
    const char *who = arg;
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        bg_rb_verdict v;
        if (bg_rb_verdict_decode(m[i].value, m[i].value_len, &v))
            continue;
        if (!strcmp(v.identity, who) && v.classification == BG_CLASS_UNEXPECTED &&
            v.phase == BG_PHASE_ONSET)
            found = 1;
        bg_rb_verdict_clear(&v);
    }
    return found;
}

static int at_least(const bg_rb_msg *m, size_t n, void *arg) {
    (void)m;
    return n >= *(size_t *)arg;
}

static size_t count(const char *topic) {
    bg_rb_msg *m;
    size_t n;
    char e[256];
    if (bg_rb_drain(mock.bootstrap, topic, 10000, &m, &n, e, sizeof e))
        return (size_t)-1;
    bg_rb_msgs_free(m, n);
    return n;
}

static void test_registry_outage_then_verdicts(void **state) {
    (void)state;
    rd_kafka_t *p = h_producer(mock.bootstrap);
    assert_non_null(p);
    const char *B = "spiffe://t/svc/runner";
    for (int m = 0; m < 80; m += 4) {
        bg_event ev = usage(B, m, 5);
        assert_int_equal(h_produce_event(p, codec, 100, &ev), 0);
    }
    for (int k = 0; k < 3; k++) {
        bg_event ev = usage(B, 95 + k * 0.2, 100);
        assert_int_equal(h_produce_event(p, codec, 100, &ev), 0);
    }
    /* an id the registry has never heard of, on another identity */
    bg_event ev = usage("spiffe://t/svc/other", 96, 1);
    assert_int_equal(h_produce_event(p, codec, 200, &ev), 0);
    assert_int_equal(rd_kafka_flush(p, 10000), 0);

    char *argv[] = {(char *)h_bin(), "run", "--config", "config.yaml", NULL};
    worker = h_spawn(argv, -1, "worker.log");
    assert_true(worker > 0);

    /* the registry is down: the worker retries (seen in its log), waits,
     * dead-letters nothing and emits nothing */
    int retries = 0;
    for (double end = h_now() + 30; retries < 3 && h_now() < end; usleep(100000)) {
        char line[4096];
        FILE *lf = fopen("worker.log", "r");
        retries = 0;
        while (lf && fgets(line, sizeof line, lf))
            retries += strstr(line, "Couldn't connect to server; retrying") != NULL;
        if (lf)
            fclose(lf);
    }
    assert_true(retries >= 3);
    assert_int_equal(waitpid(worker, NULL, WNOHANG), 0);
    assert_int_equal(count("nhi.deadletter.v1"), 0);
    assert_int_equal(count("nhi.verdicts.v1"), 0);

    /* SIGTERM still stops it while it waits: promptly, the batch not committed */
    double t0 = h_now();
    kill(worker, SIGTERM);
    assert_int_equal(h_wait(worker, 15), 1);
    assert_true(h_now() - t0 < 10);
    assert_int_equal(count("nhi.deadletter.v1"), 0);
    worker = h_spawn(argv, -1, "worker2.log");
    assert_true(worker > 0);

    /* it comes up on that port, still failing its first two answers */
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    const char *extra[] = {"--port", ps, "--fail-first", "2", NULL};
    assert_int_equal(h_reg_start(&reg, "registry", extra), 0);

    bg_rb_msg *vm;
    size_t nv;
    assert_true(
        h_read_until(mock.bootstrap, "nhi.verdicts.v1", unexpected_onset, (void *)B, 60, &vm, &nv));
    bg_rb_msgs_free(vm, nv);

    /* the unknown id alone is dead-lettered, as unknown_schema */
    size_t one = 1;
    bg_rb_msg *dm;
    size_t nd;
    assert_true(h_read_until(mock.bootstrap, "nhi.deadletter.v1", at_least, &one, 30, &dm, &nd));
    assert_int_equal(nd, 1);
    assert_string_equal(bg_rb_header(&dm[0], "bg.reason"), "unknown_schema");
    assert_memory_equal(dm[0].key, "spiffe://t/svc/other", dm[0].key_len);
    bg_rb_msgs_free(dm, nd);
    /* 2 failures, id 100 once, id 200 once: the cache answered the rest */
    assert_int_equal(h_reg_requests(&reg), 4);

    kill(worker, SIGTERM);
    assert_int_equal(h_wait(worker, 20), 0);
    worker = -1;
    rd_kafka_destroy(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_outage_then_verdicts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
