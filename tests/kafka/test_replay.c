/* `burstguard replay` through real processes and the Kafka protocol
 * (`burstguard mock-broker`, which answers offsetsForTimes with -1, so the
 * earliest-offset fallback is what runs here):
 *   - the event-time range is exact at both ends across partitions;
 *   - two replays of one range give byte-identical files;
 *   - a live `burstguard run` over the same stream publishes the same set of
 *     verdict ids, and the replay wrote nothing to the live output topics and
 *     committed nothing for any group;
 *   - --backtest-topic carries the same outputs, Avro, to a topic of its own;
 *   - --compare of two policies that differ in one limit names exactly the
 *     identity whose verdict changed;
 *   - CLI errors exit 2 with one line;
 *   - `burstguard gen --out-dir` writes the same files for a seed, in the
 *     documented record format, with its labels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "worker/report.h"

#define T0 1795996800000LL /* 2026-11-30T00:00:00Z */
#define MIN 60000LL

static h_mock mock;
static char dir[256];
static bg_codec *codec;
static pid_t worker = -1;

static const char *policy_a =
    "windows: {bucket: 60s, correlation: 15m, learning_period: 1h}\n"
    "classes:\n"
    "  - name: svc\n"
    "    match: {identity_prefix: \"spiffe://t/svc/\"}\n"
    "    limits: {api_calls_per_min: 100}\n"
    "    unexpected_action: THROTTLE\n"
    "    review_routes: [platform]\n";
/* the same with one limit raised: B's burst (300/min) is inside it, D's (1500/min) is not */
static const char *policy_b =
    "windows: {bucket: 60s, correlation: 15m, learning_period: 1h}\n"
    "classes:\n"
    "  - name: svc\n"
    "    match: {identity_prefix: \"spiffe://t/svc/\"}\n"
    "    limits: {api_calls_per_min: 400}\n"
    "    unexpected_action: THROTTLE\n"
    "    review_routes: [platform]\n";

static const char *A = "spiffe://t/svc/agent", *B = "spiffe://t/svc/runner",
                  *C = "spiffe://t/svc/quiet", *D = "spiffe://t/svc/loud";

static bg_event usage(const char *who, double at_min, const char *dest, int calls) {
    return h_usage_event("e", who, "team-t", T0 + (int64_t)(at_min * (double)MIN), dest, calls);
}

static bg_event secret(const char *who, double at_min, const char *id) {
    return h_secret_event("s", who, T0 + (int64_t)(at_min * (double)MIN), id);
}

/* Produce ev with its record timestamp = its event time (what producers of
 * these topics do, and what the seek relies on). */
static void produce(rd_kafka_t *p, const bg_event *ev) {
    static const char *topics[] = {"nhi.usage.v1", "nhi.secrets.v1", "nhi.toolcalls.v1"};
    bg_buf b = {0};
    assert_int_equal(bg_codec_encode_event(codec, ev->kind == BG_EV_USAGE ? 1 : 2, ev, &b), BG_OK);
    assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topics[ev->kind]),
                                       RD_KAFKA_V_KEY(ev->identity.ptr, ev->identity.len),
                                       RD_KAFKA_V_VALUE(b.data, b.len),
                                       RD_KAFKA_V_TIMESTAMP(ev->event_time),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     0);
    bg_buf_free(&b);
}

/* A: new secret then a never-seen destination (ANOMALOUS, revoke); B: 300
 * calls/min; D: 1500 calls/min; C: normal. One more event of each at 200 min
 * closes every burst. */
static void produce_workload(void) {
    rd_kafka_t *p = h_producer(mock.bootstrap);
    assert_non_null(p);
    const char *all[] = {A, B, C, D};
    for (int m = 0; m < 80; m += 4)
        for (int i = 0; i < 4; i++) {
            bg_event ev = usage(all[i], m, m % 8 ? "a.example" : "b.example", 5);
            produce(p, &ev);
        }
    bg_event ev = secret(A, 90, "sec-A-1");
    produce(p, &ev);
    ev = usage(A, 93, "evil.example", 1);
    produce(p, &ev);
    for (int k = 0; k < 3; k++) {
        ev = usage(B, 95 + k * 0.2, "a.example", 100);
        produce(p, &ev);
        ev = usage(D, 95 + k * 0.2, "a.example", 500);
        produce(p, &ev);
    }
    ev = usage(C, 100, "a.example", 5);
    produce(p, &ev);
    for (int i = 0; i < 4; i++) { /* every task's stream time moves past the bursts */
        ev = usage(all[i], 200, "a.example", 1);
        produce(p, &ev);
    }
    assert_int_equal(rd_kafka_flush(p, 10000), 0);
    rd_kafka_destroy(p);
}

static void write_config(const char *group) {
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "kafka:\n  bootstrap.servers: %s\n  group.id: %s\n  session.timeout.ms: 6000\n"
             "  auto.commit.interval.ms: 200\n"
             "policy: policy_a.yaml\nhttp:\n  listen: \"\"\n"
             "worker:\n  shutdown_timeout_ms: 5000\n",
             mock.bootstrap, group);
    h_write_file("config.yaml", cfg);
}

static int setup(void **state) {
    (void)state;
    h_tmpdir(dir, sizeof dir, "replay");
    if (h_mock_start(&mock, 3))
        return -1;
    h_write_file("policy_a.yaml", policy_a);
    h_write_file("policy_b.yaml", policy_b);
    write_config("live-grp");
    char e[256];
    if (bg_codec_new(&codec, e, sizeof e) || bg_codec_add_defaults(codec, e, sizeof e))
        return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    if (worker > 0 && kill(worker, SIGKILL) == 0)
        h_wait(worker, 5);
    worker = -1;
    h_mock_stop(&mock);
    bg_codec_free(codec);
    codec = NULL;
    return 0;
}

/* Run `burstguard replay ARGS...`; stderr to errlog (truncated first). */
static int replay(const char *errlog, ...) {
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)h_bin();
    argv[n++] = "replay";
    va_list ap;
    va_start(ap, errlog);
    for (const char *a; n < 31 && (a = va_arg(ap, const char *)) != NULL;)
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    unlink(errlog);
    return h_wait(h_spawn(argv, -1, errlog), 60);
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc(1, (size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    fclose(f);
    if (len)
        *len = (size_t)n;
    return s;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- the time range ------------------------------------------------------------- */

static void test_range_boundaries(void **state) {
    (void)state;
    rd_kafka_t *p = h_producer(mock.bootstrap);
    assert_non_null(p);
    /* eight identities over the three partitions; for each, one event 1 ms
     * before --from, at --from, in the middle, at --to and 1 ms after --to */
    const int64_t from = T0 + 60 * MIN, to = T0 + 120 * MIN;
    const int64_t at[] = {from - 1, from, from + 30 * MIN, to, to + 1};
    for (int i = 0; i < 8; i++) {
        char who[64];
        snprintf(who, sizeof who, "spiffe://t/svc/id-%d", i);
        for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
            bg_event ev = usage(who, 0, "a.example", 1);
            ev.event_time = at[k];
            produce(p, &ev);
            if (i == 0) { /* and on the secrets topic */
                ev = secret(who, 0, "sec-x");
                ev.event_time = at[k];
                produce(p, &ev);
            }
        }
    }
    /* undecodable records: one inside the range (by record timestamp: a dead
     * letter, counted, not produced), one before it (skipped) */
    static const uint8_t truncated[] = {0, 0, 0, 0, 1, 0x10, 'e', 'v'};
    const int64_t bad_at[] = {from + MIN, from - 1};
    for (int i = 0; i < 2; i++)
        assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("nhi.usage.v1"),
                                           RD_KAFKA_V_KEY("spiffe://t/svc/id-1", 19),
                                           RD_KAFKA_V_VALUE((void *)truncated, sizeof truncated),
                                           RD_KAFKA_V_TIMESTAMP(bad_at[i]),
                                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                         0);
    assert_int_equal(rd_kafka_flush(p, 10000), 0);
    rd_kafka_destroy(p);
    char f[32], t[32];
    snprintf(f, sizeof f, "%lld", (long long)from);
    assert_int_equal(replay("r1.log", "--config", "config.yaml", "--from", f, "--to",
                            "2026-11-30T02:00:00.000Z", "--out", "range", NULL),
                     0);
    char *js = slurp("range/report.json", NULL);
    assert_non_null(js);
    /* 8 x 3 usage and 3 secrets in; 8 x 2 + 2 out */
    assert_non_null(strstr(js, "\"usage\": 24"));
    assert_non_null(strstr(js, "\"secrets\": 3"));
    assert_non_null(strstr(js, "\"outside_range\": 19"));
    assert_non_null(strstr(js, "\"dead_letters\": 1"));
    free(js);
    bg_rb_msg *dl;
    size_t ndl;
    char derr[256];
    assert_int_equal(bg_rb_drain(mock.bootstrap, "nhi.deadletter.v1", 10000, &dl, &ndl, derr,
                                 sizeof derr),
                     BG_OK);
    assert_int_equal(ndl, 0);
    bg_rb_msgs_free(dl, ndl);
    /* --topics: only the usage input */
    assert_int_equal(replay("r3.log", "--config", "config.yaml", "--from", f, "--to",
                            "2026-11-30T02:00:00Z", "--out", "usage-only", "--topics", "usage", NULL),
                     0);
    js = slurp("usage-only/report.json", NULL);
    assert_non_null(js);
    assert_non_null(strstr(js, "\"usage\": 24"));
    assert_non_null(strstr(js, "\"secrets\": 0"));
    free(js);
    /* the same range with ISO offsets: 01:00+00:00 is --from; a range 1 ms narrower at each end
     * loses exactly the boundary events */
    snprintf(t, sizeof t, "%lld", (long long)(to - 1));
    assert_int_equal(replay("r2.log", "--config", "config.yaml", "--from",
                            "2026-11-30T02:00:00.001+01:00", "--to", t, "--out", "narrow", NULL),
                     0);
    js = slurp("narrow/report.json", NULL);
    assert_non_null(js);
    assert_non_null(strstr(js, "\"usage\": 8"));
    assert_non_null(strstr(js, "\"secrets\": 1"));
    free(js);
}

/* ---- determinism, live equivalence, isolation from the live group ------------------ */

static bool same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    bool same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

/* the committed offsets of group on every input partition */
static int committed_count(const char *group) {
    char e[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", mock.bootstrap, e, sizeof e);
    rd_kafka_conf_set(c, "group.id", group, e, sizeof e);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, e, sizeof e);
    assert_non_null(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(9);
    const char *topics[] = {"nhi.usage.v1", "nhi.secrets.v1", "nhi.toolcalls.v1"};
    for (int k = 0; k < 3; k++)
        for (int p = 0; p < 3; p++)
            rd_kafka_topic_partition_list_add(l, topics[k], p);
    assert_int_equal(rd_kafka_committed(rk, l, 10000), 0);
    int n = 0;
    for (int i = 0; i < l->cnt; i++)
        n += l->elems[i].offset >= 0;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return n;
}

typedef struct idset {
    char ids[64][33];
    int n;
} idset;

static int idset_has(const idset *s, const char *id) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->ids[i], id))
            return 1;
    return 0;
}

static void idset_from_jsonl(idset *s, const char *path) {
    s->n = 0;
    char *t = slurp(path, NULL);
    assert_non_null(t);
    for (const char *p = t; (p = strstr(p, "{\"verdict_id\":\"")) != NULL; p += 15) {
        assert_true(s->n < 64);
        memcpy(s->ids[s->n], p + 15, 32);
        s->ids[s->n++][32] = 0;
    }
    free(t);
}

static int live_covers(const bg_rb_msg *m, size_t n, void *arg) {
    const idset *want = arg;
    idset got = {.n = 0};
    for (size_t i = 0; i < n && got.n < 64; i++) {
        bg_rb_verdict v;
        if (bg_rb_verdict_decode(m[i].value, m[i].value_len, &v))
            continue;
        snprintf(got.ids[got.n++], 33, "%s", v.verdict_id);
        bg_rb_verdict_clear(&v);
    }
    for (int i = 0; i < want->n; i++)
        if (!idset_has(&got, want->ids[i]))
            return 0;
    return 1;
}

static void test_determinism_and_live_equivalence(void **state) {
    (void)state;
    produce_workload();
    const char *range[] = {"--from", "2026-11-30T00:00:00Z", "--to", "2026-11-30T04:00:00Z"};
    assert_int_equal(replay("r1.log", "--config", "config.yaml", range[0], range[1], range[2],
                            range[3], "--out", "run1", NULL),
                     0);
    assert_int_equal(replay("r2.log", "--config", "config.yaml", range[0], range[1], range[2],
                            range[3], "--out", "run2", NULL),
                     0);
    assert_true(same_file("run1/verdicts.jsonl", "run2/verdicts.jsonl"));
    assert_true(same_file("run1/revocations.jsonl", "run2/revocations.jsonl"));
    assert_true(same_file("run1/report.txt", "run2/report.txt"));
    assert_true(same_file("run1/report.html", "run2/report.html"));
    char *vt = slurp("run1/verdicts.jsonl", NULL), *rt = slurp("run1/revocations.jsonl", NULL);
    assert_non_null(vt);
    assert_non_null(rt);
    /* A (ONSET, ENDED), B and D: each an ONSET and an ENDED at least */
    assert_true(count_lines(vt) >= 6);
    assert_int_equal(count_lines(rt), 1);
    assert_non_null(strstr(rt, "\"secret_id\":\"sec-A-1\""));
    for (const char *p = vt; (p = strchr(p, '{')) != NULL && p[1] == '"'; p = strchr(p, '\n')) {
        assert_non_null(strstr(p, "\"replay\":true}"));
        if (!strchr(p, '\n'))
            break;
    }
    /* emitted_at is decided_at in replay */
    const char *d = strstr(vt, "\"decided_at\":"), *e = strstr(vt, "\"emitted_at\":");
    assert_non_null(d);
    assert_non_null(e);
    assert_memory_equal(d + 13, e + 13, 13);
    free(vt);
    free(rt);
    char *html = slurp("run1/report.html", NULL);
    assert_non_null(html);
    assert_non_null(strstr(html, "<svg"));
    assert_non_null(strstr(html, A)); /* a timeline per flagged identity */
    assert_non_null(strstr(html, D));
    assert_null(strstr(html, C));     /* not flagged: no timeline */
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "http"));  /* self-contained */
    free(html);
    char *rep = slurp("run1/report.txt", NULL);
    assert_non_null(rep);
    assert_non_null(strstr(rep, A));
    assert_non_null(strstr(rep, "ANOMALOUS  REVOKE"));
    free(rep);

    /* --backtest-topic: the same outputs, Avro, on a topic of their own */
    assert_int_equal(replay("r4.log", "--config", "config.yaml", range[0], range[1], range[2],
                            range[3], "--out", "run4", "--backtest-topic", "bt.v1", NULL),
                     0);
    assert_true(same_file("run1/verdicts.jsonl", "run4/verdicts.jsonl"));
    {
        bg_rb_msg *bm;
        size_t bn;
        char berr[256];
        assert_int_equal(bg_rb_drain(mock.bootstrap, "bt.v1", 10000, &bm, &bn, berr, sizeof berr),
                         BG_OK);
        char *v4 = slurp("run4/verdicts.jsonl", NULL);
        int nverd = count_lines(v4), seen_v = 0, seen_r = 0;
        free(v4);
        assert_int_equal((int)bn, nverd + 1);
        for (size_t i = 0; i < bn; i++) {
            const char *rec = bg_rb_header(&bm[i], "bg.record");
            assert_non_null(rec);
            if (!strcmp(rec, "verdict")) {
                bg_rb_verdict v;
                assert_int_equal(bg_rb_verdict_decode(bm[i].value, bm[i].value_len, &v), BG_OK);
                assert_true(v.replay);
                assert_true(v.emitted_at == v.decided_at);
                bg_rb_verdict_clear(&v);
                seen_v++;
            } else {
                bg_rb_revocation r;
                assert_string_equal(rec, "revocation");
                assert_int_equal(bg_rb_revocation_decode(bm[i].value, bm[i].value_len, &r), BG_OK);
                assert_string_equal(r.secret_id, "sec-A-1");
                bg_rb_revocation_clear(&r);
                seen_r++;
            }
        }
        assert_int_equal(seen_v, nverd);
        assert_int_equal(seen_r, 1);
        bg_rb_msgs_free(bm, bn);
    }

    /* nothing reached the live outputs, nothing was committed for any group */
    bg_rb_msg *m;
    size_t n;
    char err[256];
    assert_int_equal(bg_rb_drain(mock.bootstrap, "nhi.verdicts.v1", 10000, &m, &n, err, sizeof err), BG_OK);
    assert_int_equal(n, 0);
    bg_rb_msgs_free(m, n);
    assert_int_equal(bg_rb_drain(mock.bootstrap, "nhi.revocations.v1", 10000, &m, &n, err, sizeof err), BG_OK);
    assert_int_equal(n, 0);
    bg_rb_msgs_free(m, n);
    assert_int_equal(committed_count("live-grp"), 0);
    assert_int_equal(committed_count("burstguard-replay"), 0);

    /* the live worker over the same stream: the same verdict ids */
    idset want;
    idset_from_jsonl(&want, "run1/verdicts.jsonl");
    assert_true(want.n >= 6);
    char *argv[] = {(char *)h_bin(), "run", "--config", "config.yaml", NULL};
    worker = h_spawn(argv, -1, "worker.log");
    int covered = h_read_until(mock.bootstrap, "nhi.verdicts.v1", live_covers, &want, 60, &m, &n);
    if (!covered) { /* say what differs before failing */
        for (int i = 0; i < want.n; i++)
            fprintf(stderr, "replay verdict %s\n", want.ids[i]);
        for (size_t i = 0; i < n; i++) {
            bg_rb_verdict v;
            if (!bg_rb_verdict_decode(m[i].value, m[i].value_len, &v)) {
                fprintf(stderr, "live verdict %s %s %s %s start %lld decided %lld\n", v.verdict_id,
                        v.identity, bg_class_name((bg_class)v.classification),
                        bg_phase_name((bg_phase)v.phase), (long long)v.window_start,
                        (long long)v.decided_at);
                bg_rb_verdict_clear(&v);
            }
        }
        fprintf(stderr, "in %s\n", dir);
    }
    bg_rb_msgs_free(m, n);
    assert_true(covered);
    sleep(1); /* anything extra would have arrived by now */
    assert_int_equal(bg_rb_drain(mock.bootstrap, "nhi.verdicts.v1", 10000, &m, &n, err, sizeof err), BG_OK);
    idset live = {.n = 0};
    for (size_t i = 0; i < n; i++) {
        bg_rb_verdict v;
        assert_int_equal(bg_rb_verdict_decode(m[i].value, m[i].value_len, &v), BG_OK);
        assert_false(v.replay);
        if (!idset_has(&live, v.verdict_id)) {
            assert_true(live.n < 64);
            snprintf(live.ids[live.n++], 33, "%s", v.verdict_id);
        }
        bg_rb_verdict_clear(&v);
    }
    bg_rb_msgs_free(m, n);
    assert_int_equal(live.n, want.n);
    for (int i = 0; i < want.n; i++)
        assert_true(idset_has(&live, want.ids[i]));
    kill(worker, SIGTERM);
    assert_int_equal(h_wait(worker, 30), 0);
    worker = -1;
    /* the live group has committed now; a replay after it still reads everything */
    assert_true(committed_count("live-grp") > 0);
    assert_int_equal(replay("r3.log", "--config", "config.yaml", range[0], range[1], range[2],
                            range[3], "--out", "run3", NULL),
                     0);
    assert_true(same_file("run1/verdicts.jsonl", "run3/verdicts.jsonl"));
}

/* ---- compare ------------------------------------------------------------------- */

static void test_compare_policies(void **state) {
    (void)state;
    produce_workload();
    assert_int_equal(replay("a.log", "--config", "config.yaml", "--from", "2026-11-30T00:00Z",
                            "--to", "2026-11-30T04:00Z", "--out", "pa", NULL),
                     0);
    assert_int_equal(replay("b.log", "--config", "config.yaml", "--policy", "policy_b.yaml",
                            "--from", "2026-11-30T00:00Z", "--to", "2026-11-30T04:00Z", "--out",
                            "pb", "--compare", "pa", NULL),
                     0);
    char *c = slurp("pb/compare.txt", NULL);
    assert_non_null(c);
    assert_non_null(strstr(c, "summary: 0 gained, 1 lost, 0 changed, 2 unchanged"));
    const char *lost = strstr(c, "\nlost ");
    assert_non_null(lost);
    const char *eol = strchr(lost + 1, '\n');
    assert_non_null(eol);
    char line[512];
    snprintf(line, sizeof line, "%.*s", (int)(eol - lost - 1), lost + 1);
    assert_non_null(strstr(line, B));
    assert_null(strstr(c, D)); /* still flagged: unchanged, not listed */
    assert_null(strstr(c, "gained "));
    assert_null(strstr(c, "changed "));
    free(c);
}

/* ---- CLI errors ------------------------------------------------------------------ */

static void expect_usage_error(const char *what, ...) {
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)h_bin();
    argv[n++] = "replay";
    va_list ap;
    va_start(ap, what);
    for (const char *a; n < 31 && (a = va_arg(ap, const char *)) != NULL;)
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    unlink("cli.log");
    int rc = h_wait(h_spawn(argv, -1, "cli.log"), 30);
    char *err = slurp("cli.log", NULL);
    if (rc != 2 || !err || count_lines(err) != 1)
        fprintf(stderr, "%s: rc %d, stderr: %s\n", what, rc, err ? err : "(none)");
    assert_int_equal(rc, 2);
    assert_non_null(err);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "burstguard: replay"));
    free(err);
}

static void test_cli_errors(void **state) {
    (void)state;
    expect_usage_error("bad time", "--config", "config.yaml", "--from", "2026-13-01T00:00Z", "--to",
                       "2026-12-01T00:00Z", "--out", "x", NULL);
    expect_usage_error("no zone", "--config", "config.yaml", "--from", "2026-11-30T00:00", "--to",
                       "2026-12-01T00:00Z", "--out", "x", NULL);
    expect_usage_error("junk", "--config", "config.yaml", "--from", "yesterday", "--to",
                       "2026-12-01T00:00Z", "--out", "x", NULL);
    expect_usage_error("from > to", "--config", "config.yaml", "--from", "2026-12-01T00:00:00Z",
                       "--to", "2026-11-30T23:59:59.999Z", "--out", "x", NULL);
    expect_usage_error("missing out", "--config", "config.yaml", "--from", "2026-11-30T00:00Z",
                       "--to", "2026-12-01T00:00Z", NULL);
    expect_usage_error("live verdicts", "--config", "config.yaml", "--from", "2026-11-30T00:00Z",
                       "--to", "2026-12-01T00:00Z", "--out", "x", "--backtest-topic",
                       "nhi.verdicts.v1", NULL);
    expect_usage_error("live revocations", "--config", "config.yaml", "--from",
                       "2026-11-30T00:00Z", "--to", "2026-12-01T00:00Z", "--out", "x",
                       "--backtest-topic", "nhi.revocations.v1", NULL);
    expect_usage_error("live state", "--config", "config.yaml", "--from", "2026-11-30T00:00Z",
                       "--to", "2026-12-01T00:00Z", "--out", "x", "--backtest-topic",
                       "burstguard.state.v1", NULL);
    expect_usage_error("bad topics", "--config", "config.yaml", "--from", "2026-11-30T00:00Z",
                       "--to", "2026-12-01T00:00Z", "--out", "x", "--topics", "usage,metrics", NULL);
    expect_usage_error("bad labels", "--config", "config.yaml", "--from", "2026-11-30T00:00Z",
                       "--to", "2026-12-01T00:00Z", "--out", "x", "--labels", "missing.csv", NULL);
    struct stat st;
    assert_int_not_equal(stat("x", &st), 0); /* nothing written */
}

/* ---- the generator's files ----------------------------------------------------- */

static size_t count_records(const char *path) {
    size_t len, n = 0, at = 0;
    char *b = slurp(path, &len);
    assert_non_null(b);
    const uint8_t *u = (const uint8_t *)b;
    while (at + 4 <= len) {
        uint32_t kl = (uint32_t)u[at] << 24 | (uint32_t)u[at + 1] << 16 | (uint32_t)u[at + 2] << 8 | u[at + 3];
        at += 4 + kl;
        assert_true(at + 4 <= len);
        uint32_t vl = (uint32_t)u[at] << 24 | (uint32_t)u[at + 1] << 16 | (uint32_t)u[at + 2] << 8 | u[at + 3];
        at += 4;
        assert_true(at + vl + 8 <= len);
        bg_event ev;
        char why[128];
        bg_event_kind kind = strstr(path, "usage") ? BG_EV_USAGE
                             : strstr(path, "secrets") ? BG_EV_SECRET : BG_EV_TOOLCALL;
        assert_int_equal(bg_codec_decode_event(codec, kind, u + at, vl, &ev, why, sizeof why), BG_OK);
        assert_int_equal(ev.identity.len, kl);
        at += vl + 8;
        n++;
    }
    assert_int_equal(at, len);
    free(b);
    return n;
}

static void test_gen_files(void **state) {
    (void)state;
    char *argv[] = {(char *)h_bin(), "gen", "--seed", "5", "--identities", "300", "--hours", "3",
                    "--out-dir", "g1", NULL};
    int fd = open("gen1.out", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_int_equal(h_wait(h_spawn(argv, fd, "gen.log"), 60), 0);
    close(fd);
    argv[9] = "g2";
    assert_int_equal(h_wait(h_spawn(argv, -1, "gen.log"), 60), 0);
    const char *files[] = {"nhi.usage.v1.records", "nhi.secrets.v1.records",
                           "nhi.toolcalls.v1.records", "labels.csv", "policy.yaml"};
    for (size_t i = 0; i < 5; i++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "g1/%s", files[i]);
        snprintf(b, sizeof b, "g2/%s", files[i]);
        assert_true(same_file(a, b)); /* seeded: the same bytes */
    }
    size_t n = count_records("g1/nhi.usage.v1.records") + count_records("g1/nhi.secrets.v1.records") +
               count_records("g1/nhi.toolcalls.v1.records");
    char *out = slurp("gen1.out", NULL);
    assert_non_null(out);
    char want[64];
    snprintf(want, sizeof want, "gen: %zu events", n);
    assert_non_null(strstr(out, want));
    free(out);
    bg_label *l;
    size_t nl;
    char err[256];
    assert_int_equal(bg_labels_load("g1/labels.csv", &l, &nl, err, sizeof err), BG_OK);
    assert_int_equal(nl, 15); /* 4 classic + 11 extended */
    size_t per[4] = {0};
    for (size_t i = 0; i < nl; i++)
        per[l[i].cls]++;
    assert_int_equal(per[BG_CLASS_PLANNED], 2);
    assert_int_equal(per[BG_CLASS_UNEXPECTED], 3);
    assert_int_equal(per[BG_CLASS_ANOMALOUS], 6);
    assert_int_equal(per[BG_LABEL_BENIGN], 4);
    bg_labels_free(l, nl);
    /* usage errors */
    char *bad[] = {(char *)h_bin(), "gen", "--scenarios", "most", "--out-dir", "g3", NULL};
    assert_int_equal(h_wait(h_spawn(bad, -1, "gen.log"), 30), 2);
    char *bad2[] = {(char *)h_bin(), "gen", "--identities", "100", "--out-dir", "g3", NULL};
    assert_int_equal(h_wait(h_spawn(bad2, -1, "gen.log"), 30), 2);
    char *bad3[] = {(char *)h_bin(), "gen", NULL};
    assert_int_equal(h_wait(h_spawn(bad3, -1, "gen.log"), 30), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cli_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_boundaries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_determinism_and_live_equivalence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compare_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gen_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
