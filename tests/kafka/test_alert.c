/* `burstguard alert` end to end: Verdict records produced to the mock
 * cluster, two sinks (json for everything, pagerduty for ANOMALOUS only)
 * pointed at tests/kafka/webhook_double.py, which fails the first two
 * requests with 500 and then answers one with 429 + Retry-After. Every
 * matching verdict must arrive exactly once per sink (a redelivered record
 * included), non-matching ones never; PagerDuty's dedup_key is the
 * verdict_id. A restarted sink posts nothing again (offsets were committed
 * after delivery) but does post what is new. Configuration errors exit 2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"

#define N_VERDICTS 8

static h_mock mock;
static pid_t dbl = -1, dbl2 = -1, sink = -1;
static int port;
static char dir[256];
static bg_codec *codec;

static int start_double(char *const *extra, pid_t *pid_out, int *port_out) {
    const char *src = getenv("BG_SOURCE_DIR");
    char script[1024];
    snprintf(script, sizeof script, "%s/tests/kafka/webhook_double.py", src ? src : ".");
    int fds[2];
    if (pipe(fds))
        return -1;
    char *argv[16] = {"/usr/bin/python3", script};
    int argc = 2;
    for (; *extra && argc < 15; extra++)
        argv[argc++] = *extra;
    argv[argc] = NULL;
    *pid_out = h_spawn(argv, fds[1], "double.log");
    close(fds[1]);
    char buf[32];
    size_t n = 0;
    while (n < sizeof buf - 1) {
        ssize_t r = read(fds[0], buf + n, 1);
        if (r <= 0 || buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = 0;
    close(fds[0]);
    *port_out = atoi(buf);
    return *port_out > 0 ? 0 : -1;
}

static int setup(void **state) {
    (void)state;
    h_tmpdir(dir, sizeof dir, "alert");
    char *extra[] = {"--out", "posts.jsonl", "--fail-first", "2", "--retry-after-once", "1", NULL};
    if (h_mock_start(&mock, 3) || start_double(extra, &dbl, &port))
        return -1;
    char text[2048];
    snprintf(text, sizeof text,
             "kafka:\n  bootstrap.servers: %s\n  session.timeout.ms: 6000\n"
             "  auto.commit.interval.ms: 200\n"
             "alert:\n  file: sinks.yaml\n  group_id: alert-test\n",
             mock.bootstrap);
    h_write_file("config.yaml", text);
    snprintf(text, sizeof text,
             "sinks:\n"
             "  - name: everything\n"
             "    url: http://127.0.0.1:%d/all\n"
             "    format: json\n"
             "    backoff: 50ms\n"
             "    max_attempts: 5\n"
             "    timeout: 5s\n"
             "  - name: pager\n"
             "    url: http://127.0.0.1:%d/pd\n"
             "    format: pagerduty\n"
             "    routing_key_file: pd.key\n"
             "    backoff: 50ms\n"
             "    filters:\n"
             "      classifications: [ANOMALOUS]\n",
             port, port);
    h_write_file("sinks.yaml", text);
    h_write_file("pd.key", "PDKEY123\n");
    char e[256];
    if (bg_codec_new(&codec, e, sizeof e) || bg_codec_add_defaults(codec, e, sizeof e))
        return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    if (sink > 0 && kill(sink, SIGKILL) == 0)
        h_wait(sink, 5);
    if (dbl > 0) {
        kill(dbl, SIGTERM);
        h_wait(dbl, 5);
    }
    if (dbl2 > 0) {
        kill(dbl2, SIGTERM);
        h_wait(dbl2, 5);
    }
    h_mock_stop(&mock);
    bg_codec_free(codec);
    return 0;
}

static void vid(int i, char *out) {
    snprintf(out, BG_ID_LEN, "verdict-%04d", i);
}

static void produce_verdict(rd_kafka_t *p, int i) {
    bg_verdict v;
    memset(&v, 0, sizeof v);
    vid(i, v.verdict_id);
    char ident[32];
    snprintf(ident, sizeof ident, "agent-%d", i);
    v.identity = ident;
    v.owner = "team-a";
    v.workload_class = "agent";
    v.classification = i % 2 ? BG_CLASS_ANOMALOUS : BG_CLASS_UNEXPECTED;
    v.phase = BG_PHASE_ONSET;
    v.action = i % 2 ? BG_ACT_REVOKE : BG_ACT_REVIEW;
    v.severity = 50 + i;
    v.window_start = 1000;
    v.window_end = 2000;
    v.decided_at = 1500;
    v.n_reasons = 1;
    v.reasons[0] = (bg_reason){"rate_limit_api_calls", "static_limit", 90, 0, 60, 1.5};
    v.policy_version = "p-1";
    const char *topics[] = {"nhi.usage.v1", "nhi.secrets.v1", "nhi.toolcalls.v1",
                            "nhi.envelopes.v1"};
    bg_emit_meta m = {.emitted_at = 1, .worker_version = "test", .topic_names = topics};
    bg_buf b = {0};
    assert_int_equal(bg_codec_encode_verdict(codec, &v, &m, &b), BG_OK);
    assert_int_equal(h_produce(p, "nhi.verdicts.v1", ident, strlen(ident), b.data, b.len), 0);
    bg_buf_free(&b);
}

static pid_t start_sink(void) {
    char *argv[] = {(char *)h_bin(), "alert", "--config", "config.yaml", NULL};
    return h_spawn(argv, -1, "alert.log");
}

/* Successful posts (status 200) to path, counted per verdict id; total lines. */
typedef struct tally {
    int all[N_VERDICTS + 1], pd[N_VERDICTS + 1];
    int ok_all, ok_pd, lines;
    bool bad; /* a field did not check out */
} tally;

static int id_index(const char *id) {
    int i;
    if (!id || sscanf(id, "verdict-%d", &i) != 1 || i < 0 || i > N_VERDICTS)
        return -1;
    return i;
}

static void read_posts(tally *t) {
    memset(t, 0, sizeof *t);
    FILE *f = fopen("posts.jsonl", "r");
    if (!f)
        return;
    char line[65536];
    while (fgets(line, sizeof line, f)) {
        t->lines++;
        json_t *rec = json_loads(line, 0, NULL);
        if (!rec) {
            t->bad = true;
            continue;
        }
        json_t *body = json_loads(json_string_value(json_object_get(rec, "body")), 0, NULL);
        const char *path = json_string_value(json_object_get(rec, "path"));
        const char *idem =
            json_string_value(json_object_get(json_object_get(rec, "headers"), "Idempotency-Key"));
        long status = (long)json_integer_value(json_object_get(rec, "status"));
        if (!body || !path) {
            t->bad = true;
        } else if (!strcmp(path, "/all")) {
            const char *id = json_string_value(json_object_get(body, "verdict_id"));
            int i = id_index(id);
            if (i < 0 || !idem || strcmp(idem, id))
                t->bad = true;
            else if (status == 200) {
                t->all[i]++;
                t->ok_all++;
            }
        } else if (!strcmp(path, "/pd")) {
            const char *id = json_string_value(json_object_get(body, "dedup_key"));
            int i = id_index(id);
            const char *rk = json_string_value(json_object_get(body, "routing_key"));
            json_t *pl = json_object_get(body, "payload");
            const char *cls = json_string_value(
                json_object_get(json_object_get(pl, "custom_details"), "classification"));
            if (i < 0 || !idem || strcmp(idem, id) || !rk || strcmp(rk, "PDKEY123") || !cls ||
                strcmp(cls, "ANOMALOUS") ||
                strcmp(json_string_value(json_object_get(body, "event_action")), "trigger"))
                t->bad = true;
            else if (status == 200) {
                t->pd[i]++;
                t->ok_pd++;
            }
        } else {
            t->bad = true;
        }
        json_decref(body);
        json_decref(rec);
    }
    fclose(f);
}

static bool wait_posts(int want_all, int want_pd, double timeout_s, tally *t) {
    double end = h_now() + timeout_s;
    for (;;) {
        read_posts(t);
        if (t->ok_all >= want_all && t->ok_pd >= want_pd)
            return true;
        if (h_now() > end)
            return false;
        usleep(100000);
    }
}

static void test_deliver_dedup_restart(void **state) {
    (void)state;
    rd_kafka_t *p = h_producer(mock.bootstrap);
    assert_non_null(p);
    for (int i = 0; i < N_VERDICTS; i++)
        produce_verdict(p, i);
    produce_verdict(p, 3); /* a redelivered verdict: same verdict_id, later offset */
    produce_verdict(p, 4);
    assert_int_equal(rd_kafka_flush(p, 10000), 0);

    sink = start_sink();
    tally t;
    /* json: all 8; pagerduty: the 4 ANOMALOUS (odd) ones */
    assert_true(wait_posts(N_VERDICTS, N_VERDICTS / 2, 60, &t));
    usleep(1500000); /* time for any duplicate to show up */
    read_posts(&t);
    assert_false(t.bad);
    assert_int_equal(t.ok_all, N_VERDICTS);
    assert_int_equal(t.ok_pd, N_VERDICTS / 2);
    for (int i = 0; i < N_VERDICTS; i++) {
        assert_int_equal(t.all[i], 1);
        assert_int_equal(t.pd[i], i % 2);
    }
    /* the two 500s and the 429 were retried, not lost */
    assert_int_equal(t.lines, N_VERDICTS + N_VERDICTS / 2 + 3);
    kill(sink, SIGTERM);
    assert_int_equal(h_wait(sink, 20), 0);
    sink = -1;

    /* restart: nothing again, but a new verdict is delivered (so the sink did run) */
    int before = t.lines;
    sink = start_sink();
    produce_verdict(p, N_VERDICTS); /* even: json only */
    assert_int_equal(rd_kafka_flush(p, 10000), 0);
    assert_true(wait_posts(N_VERDICTS + 1, N_VERDICTS / 2, 60, &t));
    usleep(1500000);
    read_posts(&t);
    assert_false(t.bad);
    assert_int_equal(t.lines, before + 1);
    assert_int_equal(t.all[N_VERDICTS], 1);
    for (int i = 0; i < N_VERDICTS; i++)
        assert_int_equal(t.all[i], 1);
    kill(sink, SIGTERM);
    assert_int_equal(h_wait(sink, 20), 0);
    sink = -1;
    rd_kafka_destroy(p);
}

/* A sink that exhausts max_attempts pauses and gets the verdict again (never
 * dropped); a 404 is permanent: logged, skipped, and the offset moves on.
 * Runs after the test above: the topic holds verdicts 0..8 plus 2 repeats. */
static void test_pause_and_permanent_failure(void **state) {
    (void)state;
    int port2;
    char *extra[] = {"--out", "posts2.jsonl", "--fail-first", "2", "--status-for", "/gone=404",
                     NULL};
    assert_int_equal(start_double(extra, &dbl2, &port2), 0);
    char text[1024];
    snprintf(text, sizeof text,
             "sinks:\n"
             "  - name: flaky\n    url: http://127.0.0.1:%d/flaky\n"
             "    max_attempts: 1\n    pause: 200ms\n"
             "  - name: gone\n    url: http://127.0.0.1:%d/gone\n",
             port2, port2);
    h_write_file("sinks2.yaml", text);
    char *argv[] = {(char *)h_bin(),
                    "alert",
                    "--config",
                    "config.yaml",
                    "--set",
                    "alert.file=sinks2.yaml",
                    "--set",
                    "alert.group_id=alert-test-2",
                    NULL};
    sink = h_spawn(argv, -1, "alert2.log");
    int flaky[N_VERDICTS + 1], gone[N_VERDICTS + 1], lines = 0, fails = 0;
    double end = h_now() + 150; /* generous: sanitizer builds on a shared machine are slow */
    for (;;) {
        memset(flaky, 0, sizeof flaky);
        memset(gone, 0, sizeof gone);
        lines = fails = 0;
        int ok = 0, refused = 0;
        FILE *f = fopen("posts2.jsonl", "r");
        char line[65536];
        while (f && fgets(line, sizeof line, f)) {
            lines++;
            json_t *rec = json_loads(line, 0, NULL);
            json_t *body =
                rec ? json_loads(json_string_value(json_object_get(rec, "body")), 0, NULL) : NULL;
            const char *path = json_string_value(json_object_get(rec, "path"));
            long status = (long)json_integer_value(json_object_get(rec, "status"));
            int i = id_index(json_string_value(json_object_get(body, "verdict_id")));
            assert_true(i >= 0 && path);
            if (!strcmp(path, "/flaky") && status == 200) {
                flaky[i]++;
                ok++;
            } else if (!strcmp(path, "/flaky") && status == 500) {
                fails++;
            } else if (!strcmp(path, "/gone") && status == 404) {
                gone[i]++;
                refused++;
            } else {
                fail_msg("unexpected post %s %ld", path, status);
            }
            json_decref(body);
            json_decref(rec);
        }
        if (f)
            fclose(f);
        if (ok == N_VERDICTS + 1 && refused == N_VERDICTS + 1)
            break;
        assert_true(h_now() < end);
        usleep(100000);
    }
    usleep(1000000);
    kill(sink, SIGTERM);
    assert_int_equal(h_wait(sink, 20), 0);
    sink = -1;
    assert_int_equal(fails, 2);
    for (int i = 0; i <= N_VERDICTS; i++) {
        assert_int_equal(flaky[i], 1);
        assert_int_equal(gone[i], 1);
    }
    assert_int_equal(lines, 2 * (N_VERDICTS + 1) + 2);
    char log[1 << 16];
    FILE *f = fopen("alert2.log", "r");
    assert_non_null(f);
    size_t r = fread(log, 1, sizeof log - 1, f);
    log[r] = 0;
    fclose(f);
    assert_non_null(strstr(log, "not delivered after 1 attempts: pausing"));
    assert_non_null(strstr(log, "refused with HTTP 404: skipped"));
}

static int run_alert(const char *config, const char *set) {
    char *argv[8];
    int n = 0;
    argv[n++] = (char *)h_bin();
    argv[n++] = "alert";
    if (config) {
        argv[n++] = "--config";
        argv[n++] = (char *)config;
    }
    if (set) {
        argv[n++] = "--set";
        argv[n++] = (char *)set;
    }
    argv[n] = NULL;
    unlink("cli.err");
    return h_wait(h_spawn(argv, -1, "cli.err"), 20);
}

static bool err_has(const char *what) {
    char buf[4096];
    FILE *f = fopen("cli.err", "r");
    size_t r = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[r] = 0;
    if (f)
        fclose(f);
    if (!strstr(buf, what)) {
        fprintf(stderr, "stderr was: %s\n", buf);
        return false;
    }
    return true;
}

static void test_cli_errors(void **state) {
    (void)state;
    assert_int_equal(run_alert(NULL, NULL), 2);
    assert_true(err_has("--config"));
    assert_int_equal(run_alert("missing.yaml", NULL), 2);
    assert_true(err_has("missing.yaml"));
    assert_int_equal(run_alert("config.yaml", "alert.fiel=sinks.yaml"), 2);
    assert_true(err_has("alert.fiel"));
    h_write_file("badurl.yaml", "sinks:\n  - name: x\n    url: htp://nowhere\n");
    assert_int_equal(run_alert("config.yaml", "alert.file=badurl.yaml"), 2);
    assert_true(err_has("badurl.yaml:3:10: "));
    h_write_file("unknown.yaml", "sinks:\n  - name: x\n    url: http://h/\n    retries: 3\n");
    assert_int_equal(run_alert("config.yaml", "alert.file=unknown.yaml"), 2);
    assert_true(err_has("retries"));
    h_write_file("nofile.yaml", "kafka:\n  bootstrap.servers: 127.0.0.1:1\n");
    assert_int_equal(run_alert("nofile.yaml", NULL), 2);
    assert_true(err_has("alert.file"));
}

int main(void) {
    if (access("/usr/bin/python3", X_OK) != 0) {
        fprintf(stderr, "/usr/bin/python3 not installed\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deliver_dedup_restart),
        cmocka_unit_test(test_pause_and_permanent_failure),
        cmocka_unit_test(test_cli_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
