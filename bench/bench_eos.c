/* The cost of state that survives, through librdkafka's mock cluster in
 * this process.
 *
 * 1. Throughput, exactly_once vs at_least_once: the labeled stream of
 *    bench/gen.h (seed 42, 300 identities, 3 h) is produced once to the
 *    input topics; then the pipeline (bg_pipeline_run, the code `burstguard
 *    run` runs) processes all of it, alternately in each mode, RUNS times
 *    each, each run in a fresh consumer group with a fresh changelog topic.
 *    Rate = events / busy time (first to last message applied); medians.
 * 2. Restore rate: IDS identities' snapshots (engine-encoded, LZ4, framed
 *    as on burstguard.state.v1) are produced to PARTS partitions; a
 *    changelog reader (bg_restorer) reads them all back and applies them
 *    (bg_changelog_decode + bg_engine_restore) — identities/s; and the same
 *    decode + restore from memory, without Kafka, to show where the bound is.
 *
 * usage: bench_eos [RUNS=3] [IDS=200000] [PARTS=16]
 * env: BENCH_EOS_NO_THROUGHPUT=1 skips part 1; BENCH_EOS_RESTORE_SET=key=value adds one
 * config override for the changelog reader (e.g. kafka.max.partition.fetch.bytes=16777216).
 * Prints a table and a checksum (verdicts of every run, identities restored). */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "bench/bench_util.h"
#include "bench/gen.h"
#include "detectors/engine.h"
#include "detectors/snapshot.h"
#include "worker/changelog.h"
#include "worker/log.h"
#include "worker/mock.h"
#include "worker/pipeline.h"
#include "worker/policy_load.h"
#include "worker/setup.h"

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void die(const char *what, const char *why) {
    fprintf(stderr, "bench_eos: %s: %s\n", what, why);
    exit(1);
}

static rd_kafka_t *producer(const char *bootstrap) {
    char e[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, e, sizeof e);
    rd_kafka_conf_set(c, "partitioner", "murmur2_random", e, sizeof e);
    rd_kafka_conf_set(c, "linger.ms", "20", e, sizeof e);
    rd_kafka_conf_set(c, "queue.buffering.max.messages", "1000000", e, sizeof e);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof e);
    if (!p)
        die("producer", e);
    return p;
}

static void produce(rd_kafka_t *p, const char *topic, int32_t part, const void *k, size_t kl,
                    const void *v, size_t vl) {
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part), RD_KAFKA_V_KEY(k, kl),
            RD_KAFKA_V_VALUE((void *)(uintptr_t)v, vl), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_END);
        if (!err)
            return;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            die("produce", rd_kafka_err2str(err));
        rd_kafka_poll(p, 50);
    }
}

/* ---- 1. throughput ---------------------------------------------------------- */

static double run_pipeline(const char *bootstrap, const char *policy_path, bool eos, int run,
                           rd_kafka_mock_cluster_t *mc, uint64_t *events, uint64_t *verdicts) {
    char sets[8][160];
    const char *sp[8];
    char state_topic[64];
    snprintf(state_topic, sizeof state_topic, "bench.state.%d", run);
    if (rd_kafka_mock_topic_create(mc, state_topic, 4, 1))
        die("create", state_topic);
    snprintf(sets[0], sizeof sets[0], "kafka.bootstrap.servers=%s", bootstrap);
    snprintf(sets[1], sizeof sets[1], "kafka.group.id=bench-%d", run);
    snprintf(sets[2], sizeof sets[2], "worker.guarantee=%s", eos ? "exactly_once" : "at_least_once");
    snprintf(sets[3], sizeof sets[3], "topics.state=%s", state_topic);
    snprintf(sets[4], sizeof sets[4], "policy=%s", policy_path);
    snprintf(sets[5], sizeof sets[5], "http.listen=");
    snprintf(sets[6], sizeof sets[6], "kafka.session.timeout.ms=6000");
    snprintf(sets[7], sizeof sets[7], "worker.commit_interval_ms=1s");
    for (int i = 0; i < 8; i++)
        sp[i] = sets[i];
    bg_config cfg;
    char errstr[1024];
    if (bg_config_load(NULL, sp, 8, &cfg, errstr, sizeof errstr))
        die("config", errstr);
    bg_policy pol;
    bg_codec *codec;
    if (bg_setup_policy(&cfg, &pol, errstr, sizeof errstr))
        die("policy", errstr);
    if (bg_setup_codec(&cfg, &codec, errstr, sizeof errstr))
        die("codec", errstr);
    volatile sig_atomic_t stop = 0;
    bg_pipeline_opts o = {.cfg = &cfg, .policy = &pol, .codec = codec, .stop = &stop,
                          .idle_exit_ms = 1500, .startup_timeout_ms = 10000};
    bg_pipeline_stats st;
    if (bg_pipeline_run(&o, &st, errstr, sizeof errstr))
        die("pipeline", errstr);
    *events = st.events[0] + st.events[1] + st.events[2];
    *verdicts = st.verdicts[0] + st.verdicts[1] + st.verdicts[2];
    bg_codec_free(codec);
    bg_policy_free(&pol);
    bg_config_free(&cfg);
    return st.busy_s > 0 ? (double)*events / st.busy_s : 0;
}

/* ---- 2. restore --------------------------------------------------------------- */

typedef struct snaps {
    bg_buf *recs; /* framed records */
    char **keys;
    size_t n, cap;
    int32_t partition;
} snaps;

static bg_err collect(void *opaque, const char *id, size_t idl, const uint8_t *st, size_t stl,
                      int64_t at) {
    snaps *s = opaque;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->recs = realloc(s->recs, s->cap * sizeof *s->recs);
        s->keys = realloc(s->keys, s->cap * sizeof *s->keys);
    }
    s->recs[s->n] = (bg_buf){0};
    bg_err err = bg_changelog_encode(7, id, idl, s->partition, BG_SNAPSHOT_VERSION, st, stl, at,
                                     BG_VERSION, &s->recs[s->n]);
    s->keys[s->n] = strndup(id, idl);
    s->n++;
    return err;
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 3;
    int ids = argc > 2 ? atoi(argv[2]) : 200000;
    int parts = argc > 3 ? atoi(argv[3]) : 16;
    if (runs < 1 || ids < 1 || parts < 1 || parts > 256)
        die("usage", "bench_eos [RUNS>=1] [IDS>=1] [PARTS 1..256]");
    setenv("BURSTGUARD_LOG_LEVEL", "warn", 0);
    char e[512];
    bg_mock *mock;
    if (bg_mock_new(1, 4, bg_topic_defaults, &mock, e, sizeof e))
        die("mock", e);
    const char *bs = bg_mock_bootstrap(mock);
    rd_kafka_mock_cluster_t *mc = bg_mock_cluster(mock);

    /* the stream */
    bg_gen_opts go;
    bg_gen_opts_default(&go);
    bg_gen *g;
    if (bg_gen_new(&go, &g))
        die("gen", "cannot build the stream");
    char policy_path[] = "/tmp/bench_eos_policy_XXXXXX";
    int fd = mkstemp(policy_path);
    if (fd < 0 || write(fd, bg_gen_policy_yaml(g), strlen(bg_gen_policy_yaml(g))) < 0)
        die("policy", "cannot write");
    close(fd);
    bg_codec *codec;
    if (bg_codec_new(&codec, e, sizeof e) || bg_codec_add_defaults(codec, e, sizeof e))
        die("codec", e);
    rd_kafka_t *p = producer(bs);
    static const char *topics[] = {"nhi.usage.v1", "nhi.secrets.v1", "nhi.toolcalls.v1"};
    static const int32_t sid[] = {1, 2, 3};
    bg_buf b = {0};
    size_t n_ev = bg_gen_count(g);
    for (size_t i = 0; i < n_ev; i++) {
        const bg_event *ev = bg_gen_event(g, i);
        if (ev->kind > BG_EV_TOOLCALL)
            continue;
        if (bg_codec_encode_event(codec, sid[ev->kind], ev, &b))
            die("encode", "event");
        produce(p, topics[ev->kind], RD_KAFKA_PARTITION_UA, ev->identity.ptr, ev->identity.len,
                b.data, b.len);
    }
    rd_kafka_flush(p, 60000);

    double alo[64], eos[64];
    uint64_t events = 0, verdicts = 0, check = 0;
    if (runs > 32)
        runs = 32;
    for (int r = 0; r < runs && !getenv("BENCH_EOS_NO_THROUGHPUT"); r++) {
        alo[r] = run_pipeline(bs, policy_path, false, 2 * r, mc, &events, &verdicts);
        check += verdicts;
        eos[r] = run_pipeline(bs, policy_path, true, 2 * r + 1, mc, &events, &verdicts);
        check += verdicts;
        fprintf(stderr, "run %d: at_least_once %.0f ev/s, exactly_once %.0f ev/s\n", r, alo[r],
                eos[r]);
    }
    qsort(alo, (size_t)runs, sizeof alo[0], cmpd);
    qsort(eos, (size_t)runs, sizeof eos[0], cmpd);
    double ma = alo[runs / 2], me = eos[runs / 2];

    /* snapshots of ids identities, a few events each */
    snaps *sn = calloc((size_t)parts, sizeof *sn);
    bg_policy pol;
    bg_policy_init_default(&pol);
    bg_outputs out;
    bg_outputs_init(&out);
    size_t state_bytes = 0, rec_bytes = 0;
    for (int q = 0; q < parts; q++) {
        bg_engine *en;
        bg_engine_new(&pol, q, &en);
        sn[q].partition = q;
        for (int i = q; i < ids; i += parts) {
            char who[64];
            snprintf(who, sizeof who, "spiffe://bench/svc/id-%07d", i);
            static const char *dests[] = {"a.example", "b.example", "c.example"};
            for (int k = 0; k < 5; k++) {
                bg_event ev;
                memset(&ev, 0, sizeof ev);
                ev.kind = BG_EV_USAGE;
                ev.identity = (bg_str){who, (uint32_t)strlen(who)};
                ev.event_id = ev.identity;
                ev.event_time = 1795996800000LL + (int64_t)k * 60000;
                ev.u.usage.api = (bg_str){"chat", 4};
                ev.u.usage.destination = (bg_str){dests[k % 3], 9};
                ev.u.usage.api_calls = 3;
                bg_engine_observe(en, &ev, k, &out);
                bg_outputs_reset(&out);
            }
        }
        bg_engine_snapshot_dirty(en, collect, &sn[q]);
        bg_engine_free(en);
    }
    char st_topic[] = "bench.restore";
    if (rd_kafka_mock_topic_create(mc, st_topic, parts, 1))
        die("create", st_topic);
    size_t total = 0;
    for (int q = 0; q < parts; q++)
        for (size_t i = 0; i < sn[q].n; i++) {
            produce(p, st_topic, q, sn[q].keys[i], strlen(sn[q].keys[i]), sn[q].recs[i].data,
                    sn[q].recs[i].len);
            rec_bytes += sn[q].recs[i].len;
            total++;
        }
    rd_kafka_flush(p, 120000);

    /* from Kafka: the changelog reader, decode, restore */
    char set_bs[200], set_topic[80];
    snprintf(set_bs, sizeof set_bs, "kafka.bootstrap.servers=%s", bs);
    snprintf(set_topic, sizeof set_topic, "topics.state=%s", st_topic);
    const char *extra = getenv("BENCH_EOS_RESTORE_SET");
    const char *sets[] = {set_bs, set_topic, extra ? extra : "kafka.client.id=bench"};
    bg_config cfg;
    if (bg_config_load(NULL, sets, 3, &cfg, e, sizeof e))
        die("config", e);
    bg_restorer *rs;
    if (bg_restorer_new(&cfg, &rs, e, sizeof e))
        die("restorer", e);
    bg_engine **en = calloc((size_t)parts, sizeof *en);
    int64_t *high = calloc((size_t)parts, sizeof *high);
    int open = 0;
    double t0 = now();
    for (int q = 0; q < parts; q++) {
        int64_t recs;
        bg_engine_new(&pol, q, &en[q]);
        if (bg_restorer_start(rs, q, &recs, &high[q], e, sizeof e))
            die("restore", e);
        open += recs > 0;
    }
    bg_buf scratch = {0};
    uint64_t restored = 0, refused = 0;
    char why[256];
    while (open > 0 && now() - t0 < 300) {
        rd_kafka_message_t *m = bg_restorer_poll(rs, 1000);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            open--;
        } else if (!m->err) {
            bg_changelog_rec r;
            if (!bg_changelog_decode(m->payload, m->len, &r, &scratch, why, sizeof why) &&
                !bg_engine_restore(en[m->partition], r.identity, r.identity_len, r.format_version,
                                   r.state, r.state_len, why, sizeof why))
                restored++;
            else
                refused++;
        }
        rd_kafka_message_destroy(m);
    }
    double kafka_s = now() - t0;
    /* from memory: decode + restore only */
    t0 = now();
    uint64_t mem_restored = 0;
    for (int q = 0; q < parts; q++) {
        bg_engine *e2;
        bg_engine_new(&pol, q, &e2);
        for (size_t i = 0; i < sn[q].n; i++) {
            bg_changelog_rec r;
            if (!bg_changelog_decode(sn[q].recs[i].data, sn[q].recs[i].len, &r, &scratch, why,
                                     sizeof why) &&
                !bg_engine_restore(e2, r.identity, r.identity_len, r.format_version, r.state,
                                   r.state_len, why, sizeof why))
                mem_restored++;
            state_bytes += r.state_len;
        }
        bg_engine_free(e2);
    }
    double mem_s = now() - t0;
    /* decode alone (Avro framing + LZ4), to split the cost */
    t0 = now();
    uint64_t decoded = 0;
    for (int q = 0; q < parts; q++)
        for (size_t i = 0; i < sn[q].n; i++) {
            bg_changelog_rec r;
            decoded += !bg_changelog_decode(sn[q].recs[i].data, sn[q].recs[i].len, &r, &scratch,
                                            why, sizeof why);
        }
    double dec_s = now() - t0;

    printf("%-44s %14s\n", "measure", "value");
    printf("%-44s %14zu\n", "stream events (bench/gen, seed 42)", n_ev);
    printf("%-44s %14.0f\n", "at_least_once events/s (median)", ma);
    printf("%-44s %14.0f\n", "exactly_once events/s (median)", me);
    printf("%-44s %13.1f%%\n", "exactly_once cost", ma > 0 ? 100.0 * (ma - me) / ma : 0);
    printf("%-44s %14zu\n", "changelog records (identities)", total);
    printf("%-44s %14.1f\n", "mean snapshot bytes (uncompressed)", (double)state_bytes / (double)total);
    printf("%-44s %14.1f\n", "mean record bytes (LZ4 + framing)", (double)rec_bytes / (double)total);
    printf("%-44s %14.0f\n", "restore via mock cluster, identities/s", (double)restored / kafka_s);
    printf("%-44s %14.0f\n", "restore from memory, identities/s", (double)mem_restored / mem_s);
    printf("%-44s %14.0f\n", "decode only (Avro + LZ4), records/s", (double)decoded / dec_s);
    printf("%-44s %14" PRIu64 "\n", "refused", refused);
    printf("checksum %016" PRIx64 "\n", check * 1000003u + restored * 31u + mem_restored);

    bg_buf_free(&scratch);
    for (int q = 0; q < parts; q++) {
        bg_engine_free(en[q]);
        for (size_t i = 0; i < sn[q].n; i++) {
            bg_buf_free(&sn[q].recs[i]);
            free(sn[q].keys[i]);
        }
        free(sn[q].recs);
        free(sn[q].keys);
    }
    free(sn);
    free(en);
    free(high);
    bg_restorer_free(rs);
    bg_config_free(&cfg);
    bg_outputs_free(&out);
    bg_policy_free(&pol);
    bg_buf_free(&b);
    rd_kafka_destroy(p);
    bg_codec_free(codec);
    bg_gen_free(g);
    unlink(policy_path);
    bg_mock_free(mock);
    return 0;
}
