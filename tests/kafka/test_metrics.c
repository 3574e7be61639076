/* The HTTP endpoint of a running worker: /metrics parsed as the Prometheus
 * text format while the worker runs (every sample follows its # HELP and
 * # TYPE, names and labels well formed, values numeric) and checked against
 * what was produced; /healthz and /readyz; 404 elsewhere. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "harness.h"

#define T0 1795996800000LL

static h_mock mock;
static char dir[256];
static pid_t worker = -1;

typedef struct body {
    char *p;
    size_t n;
} body;

static size_t on_data(char *d, size_t sz, size_t nm, void *u) {
    body *b = u;
    char *np = realloc(b->p, b->n + sz * nm + 1);
    if (!np)
        return 0;
    b->p = np;
    memcpy(b->p + b->n, d, sz * nm);
    b->n += sz * nm;
    b->p[b->n] = 0;
    return sz * nm;
}

static long get(unsigned port, const char *path, body *b) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    CURL *c = curl_easy_init();
    memset(b, 0, sizeof *b);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    return code;
}

/* A strict reading of the text exposition format: returns the number of
 * samples, fails the test on any malformed line. */
static int parse_prometheus(const char *text) {
    char declared[64][96];
    int n_declared = 0, samples = 0;
    const char *line = text;
    while (*line) {
        const char *eol = strchr(line, '\n');
        assert_non_null(eol);
        char buf[1024];
        size_t len = (size_t)(eol - line);
        assert_true(len < sizeof buf);
        memcpy(buf, line, len);
        buf[len] = 0;
        line = eol + 1;
        if (!strncmp(buf, "# HELP ", 7)) {
            assert_true(n_declared < 64);
            assert_int_equal(sscanf(buf + 7, "%95s", declared[n_declared]), 1);
            continue;
        }
        if (!strncmp(buf, "# TYPE ", 7)) {
            char name[96], type[32];
            assert_int_equal(sscanf(buf + 7, "%95s %31s", name, type), 2);
            assert_string_equal(name, declared[n_declared]);
            assert_true(!strcmp(type, "counter") || !strcmp(type, "gauge") ||
                        !strcmp(type, "histogram"));
            n_declared++;
            continue;
        }
        assert_true(buf[0] != '#');
        /* name[{labels}] value */
        char *p = buf;
        while (isalnum((unsigned char)*p) || *p == '_' || *p == ':')
            p++;
        size_t nl = (size_t)(p - buf);
        assert_true(nl > 0 && n_declared > 0);
        const char *fam = declared[n_declared - 1];
        assert_true(!strncmp(buf, fam, strlen(fam))); /* belongs to the family declared last */
        if (*p == '{') {
            char *close = strchr(p, '}');
            assert_non_null(close);
            for (char *q = p + 1; q < close;) { /* label="value"(,label="value")* */
                char *eq = strchr(q, '=');
                assert_true(eq && eq < close && eq[1] == '"');
                char *endq = strchr(eq + 2, '"');
                assert_true(endq && endq < close);
                q = endq + 1;
                if (*q == ',')
                    q++;
            }
            p = close + 1;
        }
        assert_true(*p == ' ');
        char *end;
        strtod(p + 1, &end);
        assert_true(end != p + 1 && *end == 0);
        samples++;
    }
    return samples;
}

static double sample(const char *text, const char *series) {
    const char *at = strstr(text, series);
    while (at && at != text && at[-1] != '\n')
        at = strstr(at + 1, series);
    assert_non_null(at);
    return strtod(at + strlen(series), NULL);
}

static unsigned port_from_log(void) {
    for (int i = 0; i < 100; i++) {
        FILE *f = fopen("worker.log", "r");
        char line[2048];
        while (f && fgets(line, sizeof line, f)) {
            const char *m = strstr(line, "serving /metrics /healthz /readyz on port ");
            if (m) {
                fclose(f);
                return (unsigned)strtoul(m + 42, NULL, 10);
            }
        }
        if (f)
            fclose(f);
        usleep(100000);
    }
    return 0;
}

static void test_endpoint(void **state) {
    (void)state;
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "kafka:\n  bootstrap.servers: %s\n  group.id: metrics\n  session.timeout.ms: 6000\n"
             "http:\n  listen: 127.0.0.1:0\n",
             mock.bootstrap);
    h_write_file("config.yaml", cfg);
    char *argv[] = {(char *)h_bin(), "run", "--config", "config.yaml", NULL};
    worker = h_spawn(argv, -1, "worker.log");
    unsigned port = port_from_log();
    assert_true(port > 0);
    body b;
    assert_int_equal(get(port, "/healthz", &b), 200);
    free(b.p);

    /* ready once partitions are assigned */
    double end = h_now() + 30;
    long ready = 0;
    while (h_now() < end && (ready = get(port, "/readyz", &b)) != 200) {
        free(b.p);
        usleep(200000);
    }
    free(b.p);
    assert_int_equal(ready, 200);

    bg_codec *codec;
    char e[256];
    assert_int_equal(bg_codec_new(&codec, e, sizeof e), BG_OK);
    assert_int_equal(bg_codec_add_defaults(codec, e, sizeof e), BG_OK);
    rd_kafka_t *p = h_producer(mock.bootstrap);
    for (int i = 0; i < 10; i++) {
        bg_event ev;
        memset(&ev, 0, sizeof ev);
        ev.kind = BG_EV_USAGE;
        ev.event_id = h_s("e");
        ev.identity = h_s("spiffe://t/m/a");
        ev.event_time = T0 + i * 1000;
        ev.u.usage.api = h_s("chat");
        ev.u.usage.destination = h_s("a.example");
        ev.u.usage.api_calls = 1;
        assert_int_equal(h_produce_event(p, codec, 1, &ev), 0);
    }
    assert_int_equal(h_produce(p, "nhi.usage.v1", "k", 1, "not avro", 8), 0);
    assert_int_equal(rd_kafka_flush(p, 10000), 0);

    end = h_now() + 30;
    double events = 0;
    while (h_now() < end) {
        assert_int_equal(get(port, "/metrics", &b), 200);
        int n = parse_prometheus(b.p);
        assert_true(n > 20);
        events = sample(b.p, "burstguard_events_total{topic=\"nhi.usage.v1\"} ");
        bool dl = strstr(b.p, "burstguard_dead_letters_total{reason=\"bad_magic\"} 1\n") != NULL;
        if (events >= 10 && dl) {
            assert_true(sample(b.p, "burstguard_ready ") == 1.0);
            assert_true(sample(b.p, "burstguard_assigned_partitions ") == 6.0);
            assert_true(sample(b.p, "burstguard_identities ") == 1.0);
            assert_true(sample(b.p, "burstguard_batch_seconds_count ") >= 1.0);
            assert_non_null(strstr(b.p, "burstguard_consumer_lag{topic=\"nhi.usage.v1\",partition=\""));
            assert_non_null(strstr(b.p, "burstguard_policy_info{version=\"0000000000000000\"} 1"));
            free(b.p);
            break;
        }
        free(b.p);
        usleep(200000);
    }
    assert_true(events == 10.0);
    assert_int_equal(get(port, "/nope", &b), 404);
    free(b.p);

    kill(worker, SIGTERM);
    assert_int_equal(h_wait(worker, 20), 0);
    worker = -1;
    rd_kafka_destroy(p);
    bg_codec_free(codec);
}

static int setup(void **state) {
    (void)state;
    h_tmpdir(dir, sizeof dir, "metrics");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return h_mock_start(&mock, 2);
}

static int teardown(void **state) {
    (void)state;
    if (worker > 0 && kill(worker, SIGKILL) == 0)
        h_wait(worker, 5);
    h_mock_stop(&mock);
    curl_global_cleanup();
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_endpoint)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
