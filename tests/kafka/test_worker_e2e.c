/* End to end through real processes and the Kafka protocol: `burstguard
 * mock-broker`, `burstguard run`, Avro events from a librdkafka producer and
 * from kcat, and the verdicts, revocation commands and dead letters read back
 * from the output topics. Then SIGTERM mid-stream and a restart: every
 * expected verdict appears at least once. */
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
static pid_t worker = -1; /* killed by teardown when a test fails midway */

static const char *policy_yaml =
    "windows: {bucket: 60s, correlation: 15m, learning_period: 1h}\n"
    "classes:\n"
    "  - name: svc\n"
    "    match: {identity_prefix: \"spiffe://t/svc/\"}\n"
    "    limits: {api_calls_per_min: 100}\n"
    "    unexpected_action: THROTTLE\n"
    "    review_routes: [platform]\n"
    "envelopes:\n"
    "  - id: env-planned\n"
    "    identity: spiffe://t/svc/planned\n"
    "    not_before: 2026-11-30T01:30:00Z\n"
    "    not_after: 2026-11-30T02:00:00Z\n"
    "    limits: {api_calls_per_min: 1000}\n"
    "    approved_by: alice\n";

/* UsageEvent as an old producer wrote it: without the required `api`. */
static const char *schema_missing_api =
    "{\"type\":\"record\",\"name\":\"UsageEvent\",\"namespace\":\"burstguard.v1\",\"fields\":["
    "{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"identity\",\"type\":\"string\"},"
    "{\"name\":\"event_time\",\"type\":\"long\"},{\"name\":\"destination\",\"type\":\"string\"},"
    "{\"name\":\"api_calls\",\"type\":\"int\"},{\"name\":\"tokens_in\",\"type\":\"long\"},"
    "{\"name\":\"tokens_out\",\"type\":\"long\"},{\"name\":\"cost_micros\",\"type\":\"long\"}]}";

/* UsageEvent from a newer producer: an extra field the worker does not know,
 * and none of the optional ones. */
static const char *schema_newer =
    "{\"type\":\"record\",\"name\":\"UsageEvent\",\"namespace\":\"burstguard.v1\",\"fields\":["
    "{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"identity\",\"type\":\"string\"},"
    "{\"name\":\"region\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
    "{\"name\":\"event_time\",\"type\":\"long\"},{\"name\":\"api\",\"type\":\"string\"},"
    "{\"name\":\"destination\",\"type\":\"string\"},{\"name\":\"api_calls\",\"type\":\"int\"},"
    "{\"name\":\"tokens_in\",\"type\":\"long\"},{\"name\":\"tokens_out\",\"type\":\"long\"},"
    "{\"name\":\"cost_micros\",\"type\":\"long\"},{\"name\":\"sdk\",\"type\":\"string\"}]}";

static bg_event usage(const char *who, double at_min, const char *dest, int calls) {
    return h_usage_event("e", who, "team-t", T0 + (int64_t)(at_min * (double)MIN), dest, calls);
}

static bg_event secret(const char *who, double at_min, const char *id) {
    return h_secret_event("s", who, T0 + (int64_t)(at_min * (double)MIN), id);
}

static pid_t start_worker(const char *log) {
    char *argv[] = {(char *)h_bin(), "run", "--config", "config.yaml", NULL};
    worker = h_spawn(argv, -1, log);
    return worker;
}

static int setup(void **state) {
    (void)state;
    h_tmpdir(dir, sizeof dir, "e2e");
    if (h_mock_start(&mock, 2))
        return -1;
    h_write_file("policy.yaml", policy_yaml);
    h_write_file("missing_api.avsc", schema_missing_api);
    h_write_file("newer.avsc", schema_newer);
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "kafka:\n  bootstrap.servers: %s\n  group.id: e2e\n  session.timeout.ms: 6000\n"
             "  auto.commit.interval.ms: 200\n"
             "schema_registry:\n  local:\n    50: missing_api.avsc\n    51: newer.avsc\n"
             "policy: policy.yaml\nhttp:\n  listen: \"\"\n"
             "worker:\n  shutdown_timeout_ms: 5000\n",
             mock.bootstrap);
    h_write_file("config.yaml", cfg);
    char e[256];
    if (bg_codec_new(&codec, e, sizeof e) || bg_codec_add_defaults(codec, e, sizeof e) ||
        bg_codec_add_schema(codec, 50, schema_missing_api, strlen(schema_missing_api), e, sizeof e) ||
        bg_codec_add_schema(codec, 51, schema_newer, strlen(schema_newer), e, sizeof e)) {
        fprintf(stderr, "codec: %s\n", e);
        return -1;
    }
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

/* ---- verdicts, revocations, dead letters ------------------------------------ */

typedef struct want_verdicts {
    const char *ids[8];
    int classes[8];
    int n;
} want_verdicts;

static int has_verdicts(const bg_rb_msg *m, size_t n, void *arg) {
    want_verdicts *w = arg;
    int found = 0;
    for (int k = 0; k < w->n; k++) {
        for (size_t i = 0; i < n; i++) {
            bg_rb_verdict v;
            if (bg_rb_verdict_decode(m[i].value, m[i].value_len, &v))
                continue;
            bool ok = !strcmp(v.identity, w->ids[k]) && v.classification == w->classes[k] &&
                      v.phase == BG_PHASE_ONSET;
            bg_rb_verdict_clear(&v);
            if (ok) {
                found++;
                break;
            }
        }
    }
    return found == w->n;
}

static int at_least(const bg_rb_msg *m, size_t n, void *arg) {
    (void)m;
    return n >= *(size_t *)arg;
}

static bg_envelope_msg envelope(const char *id, const char *who) {
    bg_envelope_msg e;
    memset(&e, 0, sizeof e);
    e.envelope_id = h_s(id);
    if (who)
        e.identity = h_s(who);
    e.not_before = T0 + 80 * MIN;
    e.not_after = T0 + 120 * MIN;
    e.max_api_calls_per_min = (bg_opt_i64){true, 1000};
    e.approved_by = h_s("bob");
    return e;
}

static void produce_envelope(rd_kafka_t *p, const bg_envelope_msg *e) {
    bg_buf b = {0};
    assert_int_equal(bg_codec_encode_envelope(codec, 4, e, &b), BG_OK);
    assert_int_equal(h_produce(p, "nhi.envelopes.v1", e->envelope_id.ptr, e->envelope_id.len,
                               b.data, b.len),
                     0);
    bg_buf_free(&b);
}

static void test_verdicts_revocations_deadletters(void **state) {
    (void)state;
    rd_kafka_t *p = h_producer(mock.bootstrap);
    assert_non_null(p);
    /* the envelopes table, read in full before any input is judged:
     * D has a live envelope; E's is revoked; F's is withdrawn by a tombstone;
     * one record has no selector and is refused */
    const char *D = "spiffe://t/svc/live-env", *E = "spiffe://t/svc/revoked-env",
               *F = "spiffe://t/svc/withdrawn-env";
    bg_envelope_msg en = envelope("env-live-1", D);
    produce_envelope(p, &en);
    en = envelope("env-revoked-1", E);
    en.revoked = true;
    produce_envelope(p, &en);
    en = envelope("env-withdrawn-1", F);
    produce_envelope(p, &en);
    assert_int_equal(h_produce(p, "nhi.envelopes.v1", "env-withdrawn-1", 15, NULL, 0), 0);
    en = envelope("env-no-selector", NULL);
    produce_envelope(p, &en);
    assert_int_equal(rd_kafka_flush(p, 10000), 0);
    pid_t w = start_worker("worker1.log");
    const char *A = "spiffe://t/svc/agent", *B = "spiffe://t/svc/runner",
               *C = "spiffe://t/svc/planned", *N = "spiffe://t/svc/near-miss";
    const char *all[] = {A, B, C, N};
    /* learning period: every identity uses a.example and b.example */
    for (int m = 0; m < 80; m += 4)
        for (int i = 0; i < 4; i++) {
            bg_event ev = usage(all[i], m, m % 8 ? "a.example" : "b.example", 5);
            assert_int_equal(h_produce_event(p, codec, 1, &ev), 0);
        }
    /* A: new secret, then a destination it never used -> ANOMALOUS + revoke */
    bg_event ev = secret(A, 90, "sec-A-1");
    assert_int_equal(h_produce_event(p, codec, 2, &ev), 0);
    ev = usage(A, 93, "evil.example", 1);
    assert_int_equal(h_produce_event(p, codec, 1, &ev), 0);
    /* B: 3x its class limit, no envelope -> UNEXPECTED (from a newer producer's schema) */
    for (int k = 0; k < 3; k++) {
        ev = usage(B, 95 + k * 0.2, "a.example", 100);
        assert_int_equal(h_produce_event(p, codec, 51, &ev), 0);
    }
    /* C: the same burst inside its envelope -> PLANNED */
    for (int k = 0; k < 3; k++) {
        ev = usage(C, 95 + k * 0.2, "b.example", 100);
        assert_int_equal(h_produce_event(p, codec, 1, &ev), 0);
    }
    /* N: near-misses: a rotation on known destinations, later a new destination alone */
    ev = secret(N, 90, "sec-N-rotated");
    assert_int_equal(h_produce_event(p, codec, 2, &ev), 0);
    ev = usage(N, 91, "a.example", 1);
    assert_int_equal(h_produce_event(p, codec, 1, &ev), 0);
    ev = usage(N, 120, "new.example", 1);
    assert_int_equal(h_produce_event(p, codec, 1, &ev), 0);
    /* D, E, F: the same burst; only D's envelope still holds */
    const char *env_ids[] = {D, E, F};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++) {
            ev = usage(env_ids[i], 95 + k * 0.2, "a.example", 100);
            assert_int_equal(h_produce_event(p, codec, 1, &ev), 0);
        }
    /* a time-keeper far ahead so every burst's bucket closes */
    ev = usage("spiffe://t/other/clock", 200, "a.example", 1);
    assert_int_equal(h_produce_event(p, codec, 1, &ev), 0);

    /* malformed input, one per reason */
    bg_buf b = {0};
    ev = usage(B, 96, "a.example", 1);
    assert_int_equal(bg_codec_encode_event(codec, 1, &ev, &b), BG_OK);
    assert_int_equal(h_produce(p, "nhi.usage.v1", B, strlen(B), b.data, b.len / 2), 0); /* truncated */
    assert_int_equal(h_produce(p, "nhi.usage.v1", NULL, 0, b.data, b.len), 0);         /* no key */
    assert_int_equal(h_produce(p, "nhi.usage.v1", A, strlen(A), b.data, b.len), 0);    /* key != identity */
    b.data[4] = 99; /* unknown schema id */
    assert_int_equal(h_produce(p, "nhi.usage.v1", B, strlen(B), b.data, b.len), 0);
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    ev = usage(B, 96, big, 1); /* destination longer than BG_MAX_STRING */
    assert_int_equal(bg_codec_encode_event(codec, 1, &ev, &b), BG_OK);
    assert_int_equal(h_produce(p, "nhi.usage.v1", B, strlen(B), b.data, b.len), 0); /* oversized */
    ev = secret(B, 96, "sec-wrong-topic");
    assert_int_equal(bg_codec_encode_event(codec, 2, &ev, &b), BG_OK);
    assert_int_equal(h_produce(p, "nhi.usage.v1", B, strlen(B), b.data, b.len), 0); /* wrong type */
    ev = usage(B, 96, "a.example", 1);
    assert_int_equal(bg_codec_encode_event(codec, 50, &ev, &b), BG_OK);
    assert_int_equal(h_produce(p, "nhi.usage.v1", B, strlen(B), b.data, b.len), 0); /* missing field */
    bg_buf_free(&b);
    assert_int_equal(rd_kafka_flush(p, 10000), 0);

    /* an outside client: kcat produces a valid Avro secret issuance and a non-Avro message */
    ev = secret(C, 96, "sec-C-via-kcat");
    bg_buf kb = {0};
    assert_int_equal(bg_codec_encode_event(codec, 2, &ev, &kb), BG_OK);
    FILE *f = fopen("kcat-secret.bin", "wb");
    fwrite(kb.data, 1, kb.len, f);
    fclose(f);
    bg_buf_free(&kb);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "kcat -P -b %s -t nhi.secrets.v1 -k %s kcat-secret.bin", mock.bootstrap, C);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "printf 'not avro' | kcat -P -b %s -t nhi.usage.v1 -k %s", mock.bootstrap, C);
    assert_int_equal(system(cmd), 0);

    want_verdicts want = {.ids = {A, B, C, D, E, F},
                          .classes = {BG_CLASS_ANOMALOUS, BG_CLASS_UNEXPECTED, BG_CLASS_PLANNED,
                                      BG_CLASS_PLANNED, BG_CLASS_UNEXPECTED, BG_CLASS_UNEXPECTED},
                          .n = 6};
    bg_rb_msg *vm;
    size_t nv;
    assert_true(h_read_until(mock.bootstrap, "nhi.verdicts.v1", has_verdicts, &want, 60, &vm, &nv));
    for (size_t i = 0; i < nv; i++) {
        bg_rb_verdict v;
        assert_int_equal(bg_rb_verdict_decode(vm[i].value, vm[i].value_len, &v), BG_OK);
        /* keyed by identity; the near-miss identity never gets a verdict */
        assert_memory_equal(vm[i].key, v.identity, vm[i].key_len);
        assert_string_not_equal(v.identity, N);
        assert_int_equal(strlen(v.verdict_id), 32);
        assert_false(v.replay);
        assert_true(v.n_source >= 1);
        if (!strcmp(v.identity, C) && v.phase == BG_PHASE_ONSET) {
            assert_string_equal(v.envelope_id, "env-planned");
            assert_int_equal(v.action, BG_ACT_ALLOW);
        }
        if (!strcmp(v.identity, D) && v.phase == BG_PHASE_ONSET)
            assert_string_equal(v.envelope_id, "env-live-1");
        if ((!strcmp(v.identity, E) || !strcmp(v.identity, F)) && v.phase == BG_PHASE_ONSET)
            assert_null(v.envelope_id);
        if (!strcmp(v.identity, B) && v.phase == BG_PHASE_ONSET) {
            assert_int_equal(v.action, BG_ACT_THROTTLE);
            assert_string_equal(v.reasons, "api_calls_per_min");
            assert_string_equal(v.review_routes, "platform");
        }
        if (!strcmp(v.identity, A) && v.phase == BG_PHASE_ONSET) {
            assert_int_equal(v.action, BG_ACT_REVOKE);
            assert_string_equal(v.new_secret_ids, "sec-A-1");
            assert_string_equal(v.new_destinations, "evil.example");
        }
        bg_rb_verdict_clear(&v);
    }
    bg_rb_msgs_free(vm, nv);

    size_t one = 1;
    bg_rb_msg *rm;
    size_t nr;
    assert_true(h_read_until(mock.bootstrap, "nhi.revocations.v1", at_least, &one, 30, &rm, &nr));
    assert_int_equal(nr, 1); /* exactly the compromised secret */
    bg_rb_revocation r;
    assert_int_equal(bg_rb_revocation_decode(rm[0].value, rm[0].value_len, &r), BG_OK);
    assert_string_equal(r.secret_id, "sec-A-1");
    assert_string_equal(r.identity, A);
    assert_int_equal(r.target, BG_TARGET_SECRET);
    assert_false(r.dry_run);
    bg_rb_revocation_clear(&r);
    bg_rb_msgs_free(rm, nr);

    size_t eight = 9; /* eight kinds of bad input, and the envelope without a selector */
    bg_rb_msg *dm;
    size_t nd;
    bool got8 = h_read_until(mock.bootstrap, "nhi.deadletter.v1", at_least, &eight, 30, &dm, &nd);
    for (size_t i = 0; !got8 && i < nd; i++)
        print_error("dead letter %zu: %s\n", i, dm[i].headers);
    assert_true(got8);
    assert_int_equal(nd, 9);
    const char *reasons[] = {"truncated",     "no_key",     "key_mismatch",
                             "unknown_schema", "oversized", "wrong_type",
                             "missing_field",  "bad_magic", "bad_value"};
    for (size_t k = 0; k < sizeof reasons / sizeof reasons[0]; k++) {
        bool found = false;
        for (size_t i = 0; i < nd; i++) {
            const char *rs = bg_rb_header(&dm[i], "bg.reason");
            if (rs && !strcmp(rs, reasons[k]))
                found = true;
        }
        if (!found)
            print_error("no dead letter with reason %s\n", reasons[k]);
        assert_true(found);
    }
    for (size_t i = 0; i < nd; i++) {
        bool envelope_dl = !strcmp(bg_rb_header(&dm[i], "bg.reason"), "bad_value");
        assert_string_equal(bg_rb_header(&dm[i], "bg.topic"),
                            envelope_dl ? "nhi.envelopes.v1" : "nhi.usage.v1");
        assert_non_null(bg_rb_header(&dm[i], "bg.offset"));
        assert_non_null(bg_rb_header(&dm[i], "bg.partition"));
        assert_non_null(bg_rb_header(&dm[i], "bg.error"));
        if (!strcmp(bg_rb_header(&dm[i], "bg.reason"), "bad_magic") ||
            !strcmp(bg_rb_header(&dm[i], "bg.reason"), "truncated")) {
            /* the original bytes, unchanged */
            assert_true(dm[i].value_len > 0);
        }
    }
    bool kcat_bytes = false;
    for (size_t i = 0; i < nd; i++)
        kcat_bytes |= dm[i].value_len == 8 && !memcmp(dm[i].value, "not avro", 8);
    assert_true(kcat_bytes);
    bg_rb_msgs_free(dm, nd);

    kill(w, SIGTERM);
    assert_int_equal(h_wait(w, 20), 0);
    rd_kafka_destroy(p);
}

/* ---- SIGTERM mid-stream and restart: nothing lost ------------------------------ */

typedef struct want_bursts {
    int n;
    char ids[40][64];
} want_bursts;

static int all_bursts(const bg_rb_msg *m, size_t n, void *arg) {
    want_bursts *w = arg;
    int found = 0;
    for (int k = 0; k < w->n; k++)
        for (size_t i = 0; i < n; i++) {
            if (m[i].key_len == strlen(w->ids[k]) && !memcmp(m[i].key, w->ids[k], m[i].key_len)) {
                found++;
                break;
            }
        }
    return found == w->n;
}

static void test_sigterm_restart_loses_nothing(void **state) {
    (void)state;
    /* own group and identities: the first test's verdicts are on the same topic */
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "kafka:\n  bootstrap.servers: %s\n  group.id: restart\n  session.timeout.ms: 6000\n"
             "  auto.commit.interval.ms: 200\n"
             "policy: policy.yaml\nhttp:\n  listen: \"\"\n"
             "worker:\n  shutdown_timeout_ms: 5000\n  batch_max_messages: 50\n",
             mock.bootstrap);
    h_write_file("config.yaml", cfg);
    want_bursts want = {.n = 40};
    for (int i = 0; i < want.n; i++)
        snprintf(want.ids[i], sizeof want.ids[i], "spiffe://t/svc/restart-%02d", i);
    rd_kafka_t *p = h_producer(mock.bootstrap);
    pid_t w = start_worker("worker2.log");
    /* identity i bursts in minute 300 + i; background traffic in between */
    for (int i = 0; i < want.n; i++) {
        for (int k = 0; k < 30; k++) {
            bg_event ev = usage(want.ids[(i + k) % want.n], 300 + i + k / 30.0, "a.example", 1);
            assert_int_equal(h_produce_event(p, codec, 1, &ev), 0);
        }
        for (int k = 0; k < 3; k++) {
            bg_event ev = usage(want.ids[i], 300 + i + 0.5 + k * 0.1, "a.example", 60);
            assert_int_equal(h_produce_event(p, codec, 1, &ev), 0);
        }
        rd_kafka_flush(p, 5000);
        if (i == want.n / 2) {
            /* stop the worker mid-stream: it finishes its batch, flushes, commits */
            usleep(300000);
            double t0 = h_now();
            kill(w, SIGTERM);
            assert_int_equal(h_wait(w, 20), 0);
            assert_true(h_now() - t0 < 15.0);
        }
    }
    w = start_worker("worker3.log");
    bg_rb_msg *vm;
    size_t nv;
    int ok = h_read_until(mock.bootstrap, "nhi.verdicts.v1", all_bursts, &want, 90, &vm, &nv);
    if (!ok) {
        for (int k = 0; k < want.n; k++) {
            bool f = false;
            for (size_t i = 0; i < nv; i++)
                f |= vm[i].key_len == strlen(want.ids[k]) && !memcmp(vm[i].key, want.ids[k], vm[i].key_len);
            if (!f)
                print_error("no verdict for %s\n", want.ids[k]);
        }
    }
    bg_rb_msgs_free(vm, nv);
    assert_true(ok);
    kill(w, SIGTERM);
    assert_int_equal(h_wait(w, 20), 0);
    rd_kafka_destroy(p);
}

int main(void) {
    if (system("command -v kcat >/dev/null 2>&1") != 0) {
        fprintf(stderr, "kcat not installed\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verdicts_revocations_deadletters),
        cmocka_unit_test(test_sigterm_restart_loses_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
