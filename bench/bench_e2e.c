/* End-to-end throughput and verdict latency against librdkafka's mock cluster.
 *
 * Throughput (`bench_e2e [throughput]`): a mock cluster runs in a forked child
 * process (so this process's getrusage counts only the consumer side). The
 * labeled workload of bench/gen.c (default 2 000 identities over 3 h of event
 * time, about 950 k events: usage, secret issuance and tool calls with
 * realistic field sizes, hourly rotation, planted bursts) is encoded with the
 * contract schemas in the Confluent framing and produced once, keyed by
 * identity, to the three input topics (64 partitions each: the mock keeps only
 * ~5 MiB per partition). Then, alternating A B A B ... with a fresh consumer
 * group each run, reading the same topics from the beginning:
 *   A  bare     a librdkafka high-level consumer with the consumer settings of
 *               worker/consume.c (cooperative-sticky, manual offset store,
 *               auto commit, auto.offset.reset=earliest,
 *               queued.min.messages=1000000) and the same poll loop
 *               (rd_kafka_consume_queue, batches of worker.batch_max_messages),
 *               which only counts and destroys the messages;
 *   B  pipeline bg_pipeline_run in this process (consume -> decode -> engine
 *               -> emit -> offset store, verdicts and revocations produced to
 *               the mock and acknowledged before offsets are stored), returning
 *               after 1 s without input (idle_exit_ms).
 * Each rate counts from the first message received to the last one counted
 * (bare) or applied (pipeline's busy_s); CPU is getrusage(RUSAGE_SELF) user +
 * system over the whole run (group join and the idle second included), per
 * million events. Prints every run, the medians and their ratio.
 *
 * Latency (`bench_e2e latency`, also run after the throughput part unless
 * --no-latency): the pipeline runs in a thread against a fresh mock while a
 * producer appends background traffic at a steady rate (default: half the
 * pipeline's median rate just measured; the generator's events, cycled and
 * re-timed to the wall clock) with planted compromise pairs: an
 * agent with an hour of history is issued a new CLOUD_SESSION secret, and 50 ms
 * later a tool call uses it against a destination the agent never reached
 * (the correlation signal, which raises ANOMALOUS on that event, not at a
 * bucket close). A reader consumes nhi.verdicts.v1; for each planted pair the
 * latency is from the triggering tool call's produce call (and from its
 * delivery report: the broker's append acknowledged) to the receipt of its
 * ANOMALOUS verdict by the reader, and to the verdict's own Kafka timestamp
 * (when the pipeline produced it). All times are CLOCK_REALTIME of this one
 * process. Prints p50 / p99 / max and how many pairs were found. The
 * pipeline runs with kafka.fetch.wait.max.ms=10 (and the reader with 5): the
 * mock cluster, unlike a Kafka broker, holds a fetch that finds no data for
 * the whole wait (default 500 ms) even when data arrives meanwhile.
 *
 * Helpers for the scale-out script (bench/bench_scale.sh):
 *   bench_e2e fill --brokers B     produce the workload to an external cluster
 *   bench_e2e bare --brokers B     one bare-consumer run against it
 *
 * Every mode prints a checksum of what it counted or decoded. */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "bench/bench_util.h"
#include "bench/gen.h"
#include "worker/codec.h"
#include "worker/config.h"
#include "worker/log.h"
#include "worker/mock.h"
#include "worker/pipeline.h"
#include "worker/policy_load.h"
#include "worker/readback.h"
#include "worker/setup.h"

/* ---- options ------------------------------------------------------------------ */

typedef struct opts {
    int identities;      /* generator identities */
    int hours;           /* event time covered by the workload */
    int partitions;      /* per input topic */
    int runs;            /* per side, alternating */
    double rate;         /* latency: events/s; 0 = half the measured pipeline median */
    int lat_seconds;     /* latency: live traffic duration */
    int lat_pairs_per_s; /* latency: planted compromise pairs per second */
    bool latency, throughput;
    bool pipeline_only;  /* skip the bare runs (for profiling) */
    const char *brokers; /* external cluster (fill / bare) */
    const char *group;   /* bare: group id */
} opts;

/* --set key=value for the pipeline's configuration (repeatable) */
static const char *extra_sets[8];
static size_t n_extra_sets;

static const bg_topic kind_topic[3] = {BG_TOPIC_USAGE, BG_TOPIC_SECRETS, BG_TOPIC_TOOLCALLS};

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof v[0], cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double pct(const double *sorted, size_t n, double p) {
    if (!n)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

static void die(const char *what, const char *why) {
    fprintf(stderr, "bench_e2e: %s: %s\n", what, why);
    exit(1);
}

/* ---- the mock cluster in a child process ----------------------------------------- */

typedef struct child {
    pid_t pid;
    int ctl; /* write end: closing it stops the child */
    char bootstrap[256];
} child;

/* Fork before any librdkafka thread exists in this process. */
static void mock_start(int partitions, child *c) {
    int up[2], ctl[2];
    if (pipe(up) || pipe(ctl))
        die("pipe", "failed");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", "failed");
    if (pid == 0) {
        close(up[0]);
        close(ctl[1]);
        bg_mock *m;
        char e[512];
        if (bg_mock_new(1, partitions, bg_topic_defaults, &m, e, sizeof e)) {
            fprintf(stderr, "bench_e2e: mock: %s\n", e);
            _exit(1);
        }
        const char *bs = bg_mock_bootstrap(m);
        if (write(up[1], bs, strlen(bs) + 1) < 0)
            _exit(1);
        close(up[1]);
        char b;
        while (read(ctl[0], &b, 1) > 0) /* until the parent closes or exits */
            ;
        bg_mock_free(m);
        _exit(0);
    }
    close(up[1]);
    close(ctl[0]);
    ssize_t n = read(up[0], c->bootstrap, sizeof c->bootstrap - 1);
    close(up[0]);
    if (n <= 0)
        die("mock cluster", "did not start");
    c->bootstrap[n] = 0;
    c->pid = pid;
    c->ctl = ctl[1];
}

/* CPU seconds used so far by the child (utime + stime from /proc). */
static double child_cpu_s(const child *c) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)c->pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void mock_stop(child *c) {
    close(c->ctl);
    waitpid(c->pid, NULL, 0);
}

/* ---- filling the input topics ------------------------------------------------------ */

static rd_kafka_t *producer(const char *bootstrap, const char *linger) {
    char e[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, e, sizeof e);
    rd_kafka_conf_set(conf, "partitioner", "murmur2_random", e, sizeof e);
    rd_kafka_conf_set(conf, "linger.ms", linger, e, sizeof e);
    rd_kafka_conf_set(conf, "queue.buffering.max.messages", "2000000", e, sizeof e);
    rd_kafka_conf_set(conf, "queue.buffering.max.kbytes", "2000000", e, sizeof e);
    rd_kafka_conf_set(conf, "batch.num.messages", "10000", e, sizeof e);
    rd_kafka_conf_set(conf, "log_level", "3", e, sizeof e);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    if (!rk)
        die("producer", e);
    return rk;
}

static void produce(rd_kafka_t *rk, const char *topic, bg_str key, const bg_buf *b, int64_t ts,
                    void *opaque) {
    while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key.ptr, key.len),
                             RD_KAFKA_V_VALUE(b->data, b->len), RD_KAFKA_V_TIMESTAMP(ts),
                             RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(rk, 10);
}

/* Messages retained in the input topics (high - low watermark, summed). */
static int64_t retained(const char *bootstrap, const bg_config *cfg, int64_t *dropped) {
    char e[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, e, sizeof e);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    if (!rk)
        die("watermarks", e);
    const rd_kafka_metadata_t *md;
    if (rd_kafka_metadata(rk, 1, NULL, &md, 10000))
        die("watermarks", "no metadata");
    int64_t total = 0, lost = 0;
    for (int k = 0; k < 3; k++)
        for (int t = 0; t < md->topic_cnt; t++) {
            if (strcmp(md->topics[t].topic, cfg->topics[kind_topic[k]]))
                continue;
            for (int p = 0; p < md->topics[t].partition_cnt; p++) {
                int64_t lo, hi;
                if (rd_kafka_query_watermark_offsets(rk, md->topics[t].topic, p, &lo, &hi, 10000))
                    die("watermarks", md->topics[t].topic);
                total += hi - lo;
                lost += lo;
            }
        }
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    *dropped = lost;
    return total;
}

/* Encode and produce the whole workload; returns the events produced and the
 * framed bytes. */
static size_t fill(const char *bootstrap, const bg_config *cfg, bg_codec *codec, const bg_gen *g,
                   uint64_t *bytes) {
    rd_kafka_t *rk = producer(bootstrap, "50");
    bg_buf b = {0};
    size_t n = bg_gen_count(g);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const bg_event *ev = bg_gen_event(g, i);
        if (bg_codec_encode_event(codec, bg_codec_default_id((bg_record)ev->kind), ev, &b))
            die("encode", "workload event");
        total += b.len;
        produce(rk, cfg->topics[kind_topic[ev->kind]], ev->identity, &b, ev->event_time, NULL);
        rd_kafka_poll(rk, 0);
    }
    if (rd_kafka_flush(rk, 120000))
        die("fill", "not every event was delivered");
    bg_buf_free(&b);
    rd_kafka_destroy(rk);
    *bytes = total;
    return n;
}

/* ---- A: the bare consumer ------------------------------------------------------------ */

typedef struct result {
    double rate, cpu_per_m, busy_s;
    uint64_t events, verdicts, checksum;
} result;

static result bare_run(const char *bootstrap, const char *group, int64_t expect, int64_t batch_max) {
    char e[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* the consumer settings of worker/consume.c, plus the session timeout the
     * pipeline runs get */
    static const char *kv[][2] = {
        {"partition.assignment.strategy", "cooperative-sticky"},
        {"enable.auto.offset.store", "false"},
        {"enable.auto.commit", "true"},
        {"auto.offset.reset", "earliest"},
        {"queued.min.messages", "1000000"},
        {"enable.partition.eof", "true"},
        {"session.timeout.ms", "6000"},
        {"log_level", "3"},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        rd_kafka_conf_set(conf, kv[i][0], kv[i][1], e, sizeof e);
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, e, sizeof e);
    rd_kafka_conf_set(conf, "group.id", group, e, sizeof e);
    double c0 = cpu_s();
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    if (!rk)
        die("bare consumer", e);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(3);
    for (int k = 0; k < 3; k++)
        rd_kafka_topic_partition_list_add(t, bg_topic_defaults[kind_topic[k]], RD_KAFKA_PARTITION_UA);
    if (rd_kafka_subscribe(rk, t))
        die("bare consumer", "subscribe failed");
    rd_kafka_topic_partition_list_destroy(t);
    int64_t got = 0;
    uint64_t sum = 0;
    double first = 0, last = 0, deadline = mono() + 120;
    rd_kafka_message_t **msgs = calloc((size_t)batch_max, sizeof *msgs);
    while (got < expect && mono() < deadline) {
        /* the poll loop of bg_consumer_poll_batch */
        size_t n = 0;
        while (n < (size_t)batch_max) {
            rd_kafka_message_t *m = rd_kafka_consume_queue(q, n ? 0 : 100);
            if (!m)
                break;
            msgs[n++] = m;
        }
        for (size_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            if (!m->err) {
                if (!got)
                    first = mono();
                got++;
                sum += m->len;
            }
            rd_kafka_message_destroy(m);
        }
        if (n)
            last = mono();
    }
    free(msgs);
    rd_kafka_queue_destroy(q);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    result r = {.events = (uint64_t)got, .checksum = sum, .busy_s = last - first};
    r.rate = r.busy_s > 0 ? (double)got / r.busy_s : 0;
    r.cpu_per_m = (cpu_s() - c0) / ((double)got / 1e6);
    if (got < expect)
        fprintf(stderr, "bench_e2e: bare consumer got %" PRId64 " of %" PRId64 " messages\n", got,
                expect);
    return r;
}

/* ---- B: the pipeline ----------------------------------------------------------------- */

typedef struct pipectx {
    bg_config cfg;
    bg_policy policy;
    bg_codec *codec;
} pipectx;

static void pipectx_init(pipectx *px, const char *bootstrap, const char *policy_yaml,
                         const char *extra_set) {
    char e[1024], bs[512];
    snprintf(bs, sizeof bs, "kafka.bootstrap.servers=%s", bootstrap);
    /* state.changelog=false: every run reads the same topics with a fresh
     * group, and a changelog left by the previous run would be restored and
     * its input skipped; bench_eos measures the changelog's cost */
    const char *sets[6 + 8] = {bs,
                               "kafka.session.timeout.ms=6000",
                               "kafka.log_level=3",
                               "http.listen=",
                               "state.changelog=false",
                               extra_set ? extra_set : "worker.batch_max_ms=100ms"};
    size_t n = 6;
    for (size_t i = 0; i < n_extra_sets; i++)
        sets[n++] = extra_sets[i];
    if (bg_config_load(NULL, sets, n, &px->cfg, e, sizeof e))
        die("config", e);
    if (bg_policy_load_text("bench-policy.yaml", policy_yaml, strlen(policy_yaml), &px->policy, e,
                            sizeof e))
        die("policy", e);
    if (bg_setup_codec(&px->cfg, &px->codec, e, sizeof e))
        die("codec", e);
}

static void pipectx_free(pipectx *px) {
    bg_codec_free(px->codec);
    bg_policy_free(&px->policy);
    bg_config_free(&px->cfg);
}

static volatile sig_atomic_t never;

static result pipe_run(pipectx *px, const char *group) {
    char e[1024];
    bg_pipeline_opts o = {.cfg = &px->cfg,
                          .policy = &px->policy,
                          .codec = px->codec,
                          .group_id = group,
                          .stop = &never,
                          .idle_exit_ms = 1000,
                          .startup_timeout_ms = 10000};
    bg_pipeline_stats st;
    double c0 = cpu_s();
    if (bg_pipeline_run(&o, &st, e, sizeof e))
        die("pipeline", e);
    result r = {.busy_s = st.busy_s};
    r.events = st.events[0] + st.events[1] + st.events[2];
    r.verdicts = st.verdicts[0] + st.verdicts[1] + st.verdicts[2];
    r.checksum = r.events * 1000003u + r.verdicts * 31u + st.revocations + st.deadletters_total;
    r.rate = r.busy_s > 0 ? (double)r.events / r.busy_s : 0;
    r.cpu_per_m = (cpu_s() - c0) / ((double)r.events / 1e6);
    return r;
}

/* ---- throughput ------------------------------------------------------------------------ */

static double throughput(const opts *op) {
    child mc;
    mock_start(op->partitions, &mc);
    bg_gen_opts go;
    bg_gen_opts_default(&go);
    go.identities = op->identities;
    go.duration_ms = (int64_t)op->hours * 3600000;
    bg_gen *g;
    if (bg_gen_new(&go, &g))
        die("generator", "failed");
    pipectx px;
    pipectx_init(&px, mc.bootstrap, bg_gen_policy_yaml(g), NULL);
    double t0 = mono();
    uint64_t bytes;
    size_t produced = fill(mc.bootstrap, &px.cfg, px.codec, g, &bytes);
    int64_t dropped;
    int64_t expect = retained(mc.bootstrap, &px.cfg, &dropped);
    printf("workload: %zu events (%d identities, %d h of event time, %.0f B per framed event), "
           "produced in %.1f s to %d partitions per topic; retained %" PRId64
           " (dropped by the mock: %" PRId64 ")\n",
           produced, op->identities, op->hours, (double)bytes / (double)produced, mono() - t0,
           op->partitions, expect, dropped);
    fflush(stdout);
    if (dropped)
        printf("warning: the mock dropped old data; use more --partitions\n");
    printf("\n%-4s %-9s %10s %12s %8s %12s %10s  %s\n", "run", "side", "events", "events/s",
           "busy s", "cpu s/M ev", "verdicts", "checksum");
    double br[64], pr[64], bc[64], pc[64];
    int n = op->runs > 64 ? 64 : op->runs;
    for (int i = 0; i < n; i++) {
        char grp[64];
        snprintf(grp, sizeof grp, "bench-bare-%d-%d", (int)getpid(), i);
        result a = {0};
        if (!op->pipeline_only)
            a = bare_run(mc.bootstrap, grp, expect, px.cfg.batch_max_messages);
        printf("%-4d %-9s %10" PRIu64 " %12.0f %8.2f %12.2f %10s  %016" PRIx64 "\n", i + 1, "bare",
               a.events, a.rate, a.busy_s, a.cpu_per_m, "-", a.checksum);
        snprintf(grp, sizeof grp, "bench-pipe-%d-%d", (int)getpid(), i);
        result b = pipe_run(&px, grp);
        printf("%-4d %-9s %10" PRIu64 " %12.0f %8.2f %12.2f %10" PRIu64 "  %016" PRIx64 "\n", i + 1,
               "pipeline", b.events, b.rate, b.busy_s, b.cpu_per_m, b.verdicts, b.checksum);
        fflush(stdout);
        br[i] = a.rate;
        pr[i] = b.rate;
        bc[i] = a.cpu_per_m;
        pc[i] = b.cpu_per_m;
    }
    double mb = median(br, n), mp = median(pr, n);
    printf("\nmedian of %d: bare consumer %.0f events/s (%.2f cpu s/M), pipeline %.0f events/s "
           "(%.2f cpu s/M); pipeline / bare = %.2f\n",
           n, mb, median(bc, n), mp, median(pc, n), mb > 0 ? mp / mb : 0);
    pipectx_free(&px);
    bg_gen_free(g);
    mock_stop(&mc);
    return mp;
}

/* ---- latency ----------------------------------------------------------------------------- */

typedef struct pair {
    char identity[64];
    int64_t produced_us;  /* produce call of the triggering tool call */
    _Atomic int64_t acked_us;   /* its delivery report */
    _Atomic int64_t verdict_us; /* receipt of its ANOMALOUS verdict by the reader */
    int64_t verdict_ts_ms;      /* the verdict message's Kafka timestamp */
} pair;

typedef struct latctx {
    pipectx px;
    const char *bootstrap;
    pair *pairs;
    int n_pairs;
    volatile sig_atomic_t stop;
    atomic_int reader_stop;
    atomic_int found;
    bg_pipeline_stats st;
    bg_err err;
    char errstr[512];
} latctx;

static void lat_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    pair *p = m->_private;
    if (p && !m->err)
        atomic_store(&p->acked_us, wall_us());
}

static void *lat_pipeline(void *arg) {
    latctx *lc = arg;
    bg_pipeline_opts o = {.cfg = &lc->px.cfg,
                          .policy = &lc->px.policy,
                          .codec = lc->px.codec,
                          .group_id = "bench-latency",
                          .stop = &lc->stop,
                          .startup_timeout_ms = 10000};
    lc->err = bg_pipeline_run(&o, &lc->st, lc->errstr, sizeof lc->errstr);
    return NULL;
}

static void *lat_reader(void *arg) {
    latctx *lc = arg;
    char e[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", lc->bootstrap, e, sizeof e);
    rd_kafka_conf_set(conf, "group.id", "bench-latency-reader", e, sizeof e);
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", e, sizeof e);
    rd_kafka_conf_set(conf, "fetch.wait.max.ms", "5", e, sizeof e);
    rd_kafka_conf_set(conf, "log_level", "3", e, sizeof e);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    if (!rk)
        die("reader", e);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(t, bg_topic_defaults[BG_TOPIC_VERDICTS], RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, t);
    rd_kafka_topic_partition_list_destroy(t);
    while (!atomic_load(&lc->reader_stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
        if (!m)
            continue;
        int64_t now = wall_us();
        bg_rb_verdict v;
        if (!m->err && !bg_rb_verdict_decode(m->payload, m->len, &v)) {
            if (v.classification == BG_CLASS_ANOMALOUS && v.identity &&
                !strncmp(v.identity, "spiffe://prod/agent/lat-", 24)) {
                int i = atoi(v.identity + 24);
                if (i >= 0 && i < lc->n_pairs && !strcmp(lc->pairs[i].identity, v.identity) &&
                    !atomic_load(&lc->pairs[i].verdict_us)) {
                    lc->pairs[i].verdict_ts_ms = rd_kafka_message_timestamp(m, NULL);
                    atomic_store(&lc->pairs[i].verdict_us, now);
                    atomic_fetch_add(&lc->found, 1);
                }
            }
            bg_rb_verdict_clear(&v);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return NULL;
}

static const char lat_policy[] =
    "windows:\n  bucket: 60s\n  correlation: 15m\n  learning_period: 1h\n"
    "  allowed_lateness: 30s\n  quiet_buckets: 2\n"
    "default_class: general\n"
    "classes:\n"
    "  - name: ci\n    match: {identity_prefix: \"spiffe://prod/ci/\"}\n"
    "    limits: {api_calls_per_min: 600, cost_micros_per_hour: 5000000, secrets_per_hour: 10}\n"
    "    unexpected_action: THROTTLE\n    review_routes: [platform]\n"
    "  - name: agent\n    match: {identity_prefix: \"spiffe://prod/agent/\"}\n"
    "    limits: {api_calls_per_min: 120, tokens_per_min: 200000, cost_micros_per_hour: 20000000}\n"
    "    unexpected_action: REVIEW\n    review_routes: [\"app:{owner}\"]\n"
    "  - name: etl\n    match: {identity_prefix: \"spiffe://prod/etl/\"}\n"
    "    limits: {api_calls_per_min: 1000, cost_micros_per_hour: 10000000}\n"
    "    unexpected_action: REVIEW\n    review_routes: [data-platform]\n"
    "  - name: general\n    unexpected_action: REVIEW\n    review_routes: [security]\n";

static void set_common(bg_event *e, bg_str id, int64_t t, uint64_t seq, char *eid, size_t eidn) {
    snprintf(eid, eidn, "%08" PRIx64 "-lat0-4000-8000-%012" PRIx64, seq, seq * 2654435761u);
    e->event_id = (bg_str){eid, (uint32_t)strlen(eid)};
    e->identity = id;
    e->owner = (bg_str){"team-agents", 11};
    e->workload_class = (bg_str){NULL, 0};
    e->trace_id = (bg_str){NULL, 0};
    e->event_time = t;
}

static void latency(const opts *op, double rate) {
    child mc;
    mock_start(op->partitions, &mc);
    latctx lc = {.bootstrap = mc.bootstrap};
    /* librdkafka's mock cluster holds a fetch that finds no data for the whole
     * fetch.wait.max.ms (default 500) instead of answering when data arrives,
     * as a Kafka broker does; a short wait keeps that out of the figure */
    pipectx_init(&lc.px, mc.bootstrap, lat_policy, "kafka.fetch.wait.max.ms=10");
    const int secs = op->lat_seconds;
    lc.n_pairs = op->lat_pairs_per_s * secs;
    lc.pairs = calloc((size_t)lc.n_pairs, sizeof *lc.pairs);
    for (int i = 0; i < lc.n_pairs; i++)
        snprintf(lc.pairs[i].identity, sizeof lc.pairs[i].identity, "spiffe://prod/agent/lat-%05d",
                 i);

    /* background: the generator's events, re-timed to the live clock as they are sent */
    bg_gen_opts go;
    bg_gen_opts_default(&go);
    go.identities = op->identities;
    go.duration_ms = 3 * 3600000LL;
    bg_gen *g;
    if (bg_gen_new(&go, &g))
        die("generator", "failed");
    /* the generator's sequence, cycled as often as the duration needs */
    size_t n_bg = (size_t)(rate * secs), n_gen = bg_gen_count(g);
    /* pre-encode everything with the event time it will be sent at */
    const int64_t start_ms = wall_us() / 1000 + 4000 + 10000; /* after group join */
    bg_buf *enc = calloc(n_bg, sizeof *enc);
    char eid[80];
    for (size_t i = 0; i < n_bg; i++) {
        bg_event ev = *bg_gen_event(g, i % n_gen);
        ev.event_time = start_ms + (int64_t)((double)i * 1000.0 / rate);
        if (bg_codec_encode_event(lc.px.codec, bg_codec_default_id((bg_record)ev.kind), &ev, &enc[i]))
            die("encode", "background");
    }
    rd_kafka_t *rk;
    {
        char e[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "bootstrap.servers", mc.bootstrap, e, sizeof e);
        rd_kafka_conf_set(conf, "partitioner", "murmur2_random", e, sizeof e);
        rd_kafka_conf_set(conf, "linger.ms", "1", e, sizeof e);
        rd_kafka_conf_set(conf, "queue.buffering.max.messages", "2000000", e, sizeof e);
        rd_kafka_conf_set(conf, "log_level", "3", e, sizeof e);
        rd_kafka_conf_set_dr_msg_cb(conf, lat_dr);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
        if (!rk)
            die("producer", e);
    }
    /* history: every planted agent used a known destination two hours ago */
    bg_buf b = {0};
    uint64_t seq = 1;
    for (int i = 0; i < lc.n_pairs; i++) {
        bg_event ev;
        memset(&ev, 0, sizeof ev);
        ev.kind = BG_EV_USAGE;
        bg_str id = {lc.pairs[i].identity, (uint32_t)strlen(lc.pairs[i].identity)};
        set_common(&ev, id, start_ms - 7200000, seq++, eid, sizeof eid);
        ev.u.usage.api = (bg_str){"chat.completions", 16};
        ev.u.usage.destination = (bg_str){"api.openai.com", 14};
        ev.u.usage.api_calls = 1;
        ev.u.usage.tokens_in = 800;
        ev.u.usage.tokens_out = 200;
        ev.u.usage.cost_micros = 900;
        bg_codec_encode_event(lc.px.codec, 1, &ev, &b);
        produce(rk, bg_topic_defaults[BG_TOPIC_USAGE], id, &b, ev.event_time, NULL);
    }
    rd_kafka_flush(rk, 30000);

    pthread_t tp, tr;
    pthread_create(&tr, NULL, lat_reader, &lc);
    pthread_create(&tp, NULL, lat_pipeline, &lc);
    /* wait for the live start, then send at the steady rate */
    while (wall_us() / 1000 < start_ms)
        usleep(1000);
    double c0 = cpu_s(), m0 = child_cpu_s(&mc);
    const int64_t start_us = start_ms * 1000;
    size_t i = 0;
    int next_pair = 0;
    const double pair_gap_us = 1e6 / op->lat_pairs_per_s;
    int secret_sent = -1;
    while (i < n_bg || next_pair < lc.n_pairs) {
        int64_t now = wall_us();
        int64_t el = now - start_us;
        size_t due = (size_t)((double)el * rate / 1e6);
        if (due > n_bg)
            due = n_bg;
        for (; i < due; i++) {
            const bg_event *ev = bg_gen_event(g, i % n_gen);
            produce(rk, bg_topic_defaults[kind_topic[ev->kind]], ev->identity, &enc[i],
                    start_ms + (int64_t)((double)i * 1000.0 / rate), NULL);
        }
        /* pair k: its secret at k * gap, its tool call 50 ms later */
        if (next_pair < lc.n_pairs && secret_sent < next_pair &&
            (double)el >= next_pair * pair_gap_us) {
            pair *p = &lc.pairs[next_pair];
            bg_event ev;
            memset(&ev, 0, sizeof ev);
            ev.kind = BG_EV_SECRET;
            bg_str id = {p->identity, (uint32_t)strlen(p->identity)};
            set_common(&ev, id, now / 1000, seq++, eid, sizeof eid);
            char sid[64];
            snprintf(sid, sizeof sid, "sec-lat-%05d-sts", next_pair);
            ev.u.secret.secret_id = (bg_str){sid, (uint32_t)strlen(sid)};
            ev.u.secret.secret_kind = BG_SK_CLOUD_SESSION;
            ev.u.secret.issuer = (bg_str){"aws-sts", 7};
            ev.u.secret.ttl_seconds = 3600;
            bg_codec_encode_event(lc.px.codec, 2, &ev, &b);
            produce(rk, bg_topic_defaults[BG_TOPIC_SECRETS], id, &b, ev.event_time, NULL);
            secret_sent = next_pair;
        }
        if (secret_sent == next_pair && (double)el >= next_pair * pair_gap_us + 50000) {
            pair *p = &lc.pairs[next_pair];
            bg_event ev;
            memset(&ev, 0, sizeof ev);
            ev.kind = BG_EV_TOOLCALL;
            bg_str id = {p->identity, (uint32_t)strlen(p->identity)};
            set_common(&ev, id, now / 1000, seq++, eid, sizeof eid);
            char sid[64], dst[64];
            snprintf(sid, sizeof sid, "sec-lat-%05d-sts", next_pair);
            snprintf(dst, sizeof dst, "paste-%05d.exfil.example", next_pair);
            ev.u.tool.tool = (bg_str){"http.post", 9};
            ev.u.tool.destination = (bg_str){dst, (uint32_t)strlen(dst)};
            ev.u.tool.operation = (bg_str){"POST", 4};
            ev.u.tool.credential_id = (bg_str){sid, (uint32_t)strlen(sid)};
            ev.u.tool.parent_tool = (bg_str){"search", 6};
            ev.u.tool.side_effect = true;
            ev.u.tool.status = BG_TS_OK;
            ev.u.tool.bytes_out = 48000;
            bg_codec_encode_event(lc.px.codec, 3, &ev, &b);
            p->produced_us = wall_us();
            produce(rk, bg_topic_defaults[BG_TOPIC_TOOLCALLS], id, &b, ev.event_time, p);
            next_pair++;
        }
        rd_kafka_poll(rk, 0);
        usleep(200);
    }
    double sent_s = (double)(wall_us() - start_us) / 1e6;
    rd_kafka_flush(rk, 30000);
    /* wait for the last verdicts */
    for (int w = 0; w < 100 && atomic_load(&lc.found) < lc.n_pairs; w++)
        usleep(50000);
    double cpu = cpu_s() - c0, mcpu = child_cpu_s(&mc) - m0;
    lc.stop = 1;
    pthread_join(tp, NULL);
    atomic_store(&lc.reader_stop, 1);
    pthread_join(tr, NULL);
    if (lc.err)
        die("pipeline", lc.errstr);

    double *lp = calloc((size_t)lc.n_pairs + 1, sizeof *lp), *la = calloc((size_t)lc.n_pairs + 1, sizeof *la),
           *lt = calloc((size_t)lc.n_pairs + 1, sizeof *lt),
           *lw = calloc((size_t)lc.n_pairs + 1, sizeof *lw);
    size_t n = 0;
    uint64_t check = 0;
    for (int k = 0; k < lc.n_pairs; k++) {
        pair *p = &lc.pairs[k];
        int64_t v = atomic_load(&p->verdict_us), a = atomic_load(&p->acked_us);
        if (!v)
            continue;
        lp[n] = (double)(v - p->produced_us) / 1000.0;
        la[n] = a ? (double)(v - a) / 1000.0 : lp[n];
        lt[n] = (double)p->verdict_ts_ms - (double)p->produced_us / 1000.0;
        lw[n] = (double)p->verdict_ts_ms - (double)(a ? a : p->produced_us) / 1000.0;
        check = check * 31 + (uint64_t)k;
        n++;
    }
    qsort(lp, n, sizeof *lp, cmp_d);
    qsort(la, n, sizeof *la, cmp_d);
    qsort(lt, n, sizeof *lt, cmp_d);
    qsort(lw, n, sizeof *lw, cmp_d);
    uint64_t applied = lc.st.events[0] + lc.st.events[1] + lc.st.events[2];
    printf("\nverdict latency at %.0f events/s offered (%zu background events + %d compromise "
           "pairs in %.1f s; %" PRIu64 " applied; cpu s/s: this process %.2f, the mock cluster %.2f)\n",
           rate, n_bg, lc.n_pairs, sent_s, applied, cpu / sent_s, mcpu / sent_s);
    printf("  ANOMALOUS verdicts found for %zu of %d planted pairs\n", n, lc.n_pairs);
    printf("  %-52s %8s %8s %8s\n", "ms, from the triggering tool call ...", "p50", "p99", "max");
    printf("  %-52s %8.1f %8.1f %8.1f\n", "produce call -> verdict read by a consumer", pct(lp, n, .5),
           pct(lp, n, .99), n ? lp[n - 1] : 0);
    printf("  %-52s %8.1f %8.1f %8.1f\n", "append acknowledged -> verdict read by a consumer",
           pct(la, n, .5), pct(la, n, .99), n ? la[n - 1] : 0);
    printf("  %-52s %8.1f %8.1f %8.1f\n", "produce call -> verdict produced (its timestamp)",
           pct(lt, n, .5), pct(lt, n, .99), n ? lt[n - 1] : 0);
    printf("  %-52s %8.1f %8.1f %8.1f\n", "append acknowledged -> verdict produced (timestamp)",
           pct(lw, n, .5), pct(lw, n, .99), n ? lw[n - 1] : 0);
    printf("  checksum %016" PRIx64 "\n", check);
    for (size_t k = 0; k < n_bg; k++)
        bg_buf_free(&enc[k]);
    free(enc);
    free(lp);
    free(la);
    free(lt);
    free(lw);
    bg_buf_free(&b);
    rd_kafka_destroy(rk);
    free(lc.pairs);
    bg_gen_free(g);
    pipectx_free(&lc.px);
    mock_stop(&mc);
}

/* ---- helpers for the scale-out script ------------------------------------------------------ */

static int ext_fill(const opts *op) {
    bg_gen_opts go;
    bg_gen_opts_default(&go);
    go.identities = op->identities;
    go.duration_ms = (int64_t)op->hours * 3600000;
    bg_gen *g;
    if (bg_gen_new(&go, &g))
        die("generator", "failed");
    pipectx px;
    pipectx_init(&px, op->brokers, bg_gen_policy_yaml(g), NULL);
    uint64_t bytes;
    size_t n = fill(op->brokers, &px.cfg, px.codec, g, &bytes);
    int64_t dropped;
    int64_t kept = retained(op->brokers, &px.cfg, &dropped);
    printf("%zu %" PRId64 " %" PRId64 "\n", n, kept, dropped);
    pipectx_free(&px);
    bg_gen_free(g);
    return 0;
}

static int ext_bare(const opts *op) {
    bg_config cfg;
    char e[512], bs[512];
    snprintf(bs, sizeof bs, "kafka.bootstrap.servers=%s", op->brokers);
    const char *sets[] = {bs};
    if (bg_config_load(NULL, sets, 1, &cfg, e, sizeof e))
        die("config", e);
    int64_t dropped;
    int64_t expect = retained(op->brokers, &cfg, &dropped);
    result r = bare_run(op->brokers, op->group ? op->group : "bench-bare-ext", expect,
                        cfg.batch_max_messages);
    printf("bare %" PRIu64 " events %.0f events/s %.2f cpu s/M checksum %016" PRIx64 "\n",
           r.events, r.rate, r.cpu_per_m, r.checksum);
    bg_config_free(&cfg);
    return 0;
}

static void usage(void) {
    printf("usage: bench_e2e [throughput|latency|fill|bare] [options]\n"
           "  --identities N   generator identities (2000)\n"
           "  --hours N        event time of the workload (3)\n"
           "  --partitions N   per input topic (64)\n"
           "  --runs N         runs per side, alternating (5)\n"
           "  --rate R         latency: offered events/s (default half the pipeline median)\n"
           "  --seconds N      latency: live traffic duration (10)\n"
           "  --pairs-per-s N  latency: compromise pairs per second (10)\n"
           "  --no-latency     throughput only\n"
           "  --brokers B      fill / bare: an external cluster\n"
           "  --group G        bare: the group id\n"
           "  --pipeline-only  throughput: skip the bare runs (for profiling)\n"
           "  --set key=value  the pipeline's configuration (repeatable, up to 8)\n");
}

int main(int argc, char **argv) {
    opts op = {.identities = 2000, .hours = 3, .partitions = 64, .runs = 5, .lat_seconds = 10,
               .lat_pairs_per_s = 10, .latency = true, .throughput = true};
    const char *mode = "all";
    if (argc > 1 && argv[1][0] != '-') {
        mode = argv[1];
        argv++;
        argc--;
    }
    static const struct option lo[] = {{"identities", 1, NULL, 'i'}, {"hours", 1, NULL, 'H'},
                                       {"partitions", 1, NULL, 'p'}, {"runs", 1, NULL, 'r'},
                                       {"rate", 1, NULL, 'R'},       {"seconds", 1, NULL, 's'},
                                       {"pairs-per-s", 1, NULL, 'P'}, {"no-latency", 0, NULL, 'n'},
                                       {"brokers", 1, NULL, 'b'},    {"group", 1, NULL, 'g'},
                                       {"pipeline-only", 0, NULL, 'O'}, {"set", 1, NULL, 'S'},
                                       {"help", 0, NULL, 'h'},       {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'i': op.identities = atoi(optarg); break;
        case 'H': op.hours = atoi(optarg); break;
        case 'p': op.partitions = atoi(optarg); break;
        case 'r': op.runs = atoi(optarg); break;
        case 'R': op.rate = atof(optarg); break;
        case 's': op.lat_seconds = atoi(optarg); break;
        case 'P': op.lat_pairs_per_s = atoi(optarg); break;
        case 'n': op.latency = false; break;
        case 'b': op.brokers = optarg; break;
        case 'g': op.group = optarg; break;
        case 'O': op.pipeline_only = true; break;
        case 'S':
            if (n_extra_sets < 8)
                extra_sets[n_extra_sets++] = optarg;
            break;
        case 'h': usage(); return 0;
        default: usage(); return 2;
        }
    }
    if (op.identities < 60 || op.hours < 3 || op.partitions < 1 || op.runs < 1 ||
        op.lat_seconds < 1 || op.lat_pairs_per_s < 1) {
        usage();
        return 2;
    }
    setenv("BURSTGUARD_LOG_LEVEL", "error", 0); /* the worker's warnings are expected here */
    if (!strcmp(mode, "fill") || !strcmp(mode, "bare")) {
        if (!op.brokers)
            die(mode, "--brokers is required");
        return !strcmp(mode, "fill") ? ext_fill(&op) : ext_bare(&op);
    }
    double rate = op.rate;
    if (!strcmp(mode, "all") || !strcmp(mode, "throughput")) {
        double mp = throughput(&op);
        if (rate <= 0)
            rate = mp / 2;
    }
    if ((!strcmp(mode, "all") && op.latency) || !strcmp(mode, "latency")) {
        if (rate <= 0)
            rate = 100000;
        latency(&op, rate);
    }
    return 0;
}
