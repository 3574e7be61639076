/* `burstguard demo`: the embedded default. In one process: a mock cluster
 * with the contract topics, the labeled synthetic workload of bench/gen.c
 * produced as Avro to the input topics (plus three malformed messages), the
 * worker pipeline consuming it as a group member, and a summary built from
 * what the worker actually published (read back from the output topics). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "../bench/gen.h"
#include "cli.h"
#include "log.h"
#include "mock.h"
#include "pipeline.h"
#include "policy_load.h"
#include "readback.h"
#include "setup.h"

static const bg_topic kind_topic[3] = {BG_TOPIC_USAGE, BG_TOPIC_SECRETS, BG_TOPIC_TOOLCALLS};

static bg_err produce_workload(const char *bootstrap, const bg_config *cfg, bg_codec *codec,
                               const bg_gen *g, char *errstr, size_t n) {
    char e[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, e, sizeof e);
    rd_kafka_conf_set(conf, "partitioner", "murmur2_random", e, sizeof e);
    rd_kafka_conf_set(conf, "linger.ms", "20", e, sizeof e);
    rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", e, sizeof e);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    if (!rk) {
        snprintf(errstr, n, "demo producer: %s", e);
        return BG_ERR_KAFKA;
    }
    bg_buf buf = {0};
    bg_err ret = BG_OK;
    for (size_t i = 0; i < bg_gen_count(g) && !ret; i++) {
        const bg_event *ev = bg_gen_event(g, i);
        ret = bg_codec_encode_event(codec, bg_codec_default_id((bg_record)ev->kind), ev, &buf);
        if (ret) {
            snprintf(errstr, n, "encoding event %zu: %s", i, bg_err_str(ret));
            break;
        }
        while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(cfg->topics[kind_topic[ev->kind]]),
                                 RD_KAFKA_V_KEY(ev->identity.ptr, ev->identity.len),
                                 RD_KAFKA_V_VALUE(buf.data, buf.len),
                                 RD_KAFKA_V_TIMESTAMP(ev->event_time),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 50);
        rd_kafka_poll(rk, 0);
    }
    /* malformed input: the worker must dead-letter these and go on */
    static const char not_avro[] = "{\"identity\":\"spiffe://prod/ci/runner-001\"}";
    static const uint8_t truncated[] = {0, 0, 0, 0, 1, 0x10, 'e', 'v'};
    const char *key = "spiffe://prod/ci/runner-001";
    rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(cfg->topics[BG_TOPIC_USAGE]),
                      RD_KAFKA_V_KEY(key, strlen(key)),
                      RD_KAFKA_V_VALUE((void *)not_avro, sizeof not_avro - 1),
                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(cfg->topics[BG_TOPIC_USAGE]),
                      RD_KAFKA_V_KEY(key, strlen(key)),
                      RD_KAFKA_V_VALUE((void *)truncated, sizeof truncated),
                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (!ret && !bg_codec_encode_event(codec, 1, bg_gen_event(g, 0), &buf))
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(cfg->topics[BG_TOPIC_USAGE]),
                          RD_KAFKA_V_VALUE(buf.data, buf.len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END); /* no key */
    if (rd_kafka_flush(rk, 60000) && !ret) {
        snprintf(errstr, n, "demo producer: %d events not delivered", rd_kafka_outq_len(rk));
        ret = BG_ERR_KAFKA;
    }
    bg_buf_free(&buf);
    rd_kafka_destroy(rk);
    return ret;
}

static int summarize(const char *bootstrap, const bg_config *cfg, const bg_gen *g,
                     const bg_pipeline_stats *st) {
    char errstr[512];
    bg_rb_msg *vm = NULL, *rm = NULL, *dm = NULL;
    size_t nv = 0, nr = 0, nd = 0;
    if (bg_rb_drain(bootstrap, cfg->topics[BG_TOPIC_VERDICTS], 30000, &vm, &nv, errstr, sizeof errstr) ||
        bg_rb_drain(bootstrap, cfg->topics[BG_TOPIC_REVOCATIONS], 30000, &rm, &nr, errstr, sizeof errstr) ||
        bg_rb_drain(bootstrap, cfg->topics[BG_TOPIC_DEADLETTER], 30000, &dm, &nd, errstr, sizeof errstr)) {
        fprintf(stderr, "burstguard demo: reading the outputs back: %s\n", errstr);
        bg_rb_msgs_free(vm, nv);
        bg_rb_msgs_free(rm, nr);
        bg_rb_msgs_free(dm, nd);
        return 1;
    }
    bg_rb_verdict *v = calloc(nv ? nv : 1, sizeof *v);
    bg_rb_revocation *r = calloc(nr ? nr : 1, sizeof *r);
    bool *matched = calloc(nv ? nv : 1, sizeof *matched);
    if (!v || !r || !matched) {
        free(v);
        free(r);
        free(matched);
        return 1;
    }
    for (size_t i = 0; i < nv; i++)
        bg_rb_verdict_decode(vm[i].value, vm[i].value_len, &v[i]);
    for (size_t i = 0; i < nr; i++)
        bg_rb_revocation_decode(rm[i].value, rm[i].value_len, &r[i]);

    uint64_t total = st->events[0] + st->events[1] + st->events[2];
    printf("\n== burstguard demo ==\n");
    printf("workload : %zu events from bench/gen.c (seed 42, 300 identities, 3 h of event time)\n",
           bg_gen_count(g));
    printf("worker   : %llu events applied (usage %llu, secrets %llu, tool calls %llu) in %.2f s "
           "= %.0f events/s\n",
           (unsigned long long)total, (unsigned long long)st->events[0],
           (unsigned long long)st->events[1], (unsigned long long)st->events[2], st->busy_s,
           st->busy_s > 0 ? (double)total / st->busy_s : 0.0);
    printf("dead letters: %zu:", nd);
    for (size_t i = 0; i < nd; i++) {
        const char *reason = bg_rb_header(&dm[i], "bg.reason");
        printf(" %s", reason ? reason : "?");
    }
    printf("\n\nplanted behaviour, expected vs found:\n");
    const bg_gen_label *labels;
    size_t nl = bg_gen_labels(g, &labels);
    int found_all = 1;
    for (size_t l = 0; l < nl; l++) {
        const bg_gen_label *lb = &labels[l];
        int worst = -1;
        char phases[256] = "";
        for (size_t i = 0; i < nv; i++) {
            if (!v[i].identity || strcmp(v[i].identity, lb->identity))
                continue;
            matched[i] = true;
            if (v[i].phase != BG_PHASE_ENDED && v[i].classification > worst)
                worst = v[i].classification;
            size_t o = strlen(phases);
            snprintf(phases + o, sizeof phases - o, "%s%s/%s/%s", o ? ", " : "",
                     bg_phase_name((bg_phase)v[i].phase), bg_class_name((bg_class)v[i].classification),
                     bg_action_name((bg_action)v[i].action));
        }
        bool ok = lb->benign ? worst != BG_CLASS_ANOMALOUS : worst == (int)lb->expected;
        if (!ok)
            found_all = 0;
        printf("  %-11s %-28s %s\n      -> %s%s\n", lb->benign ? "not ANOMAL." : bg_class_name(lb->expected),
               lb->identity, lb->what, ok ? (lb->benign ? "ok, " : "FOUND, ") : "MISSED, ",
               phases[0] ? phases : "no verdict");
    }
    size_t others = 0;
    for (size_t i = 0; i < nv; i++)
        if (!matched[i]) {
            if (others++ < 10)
                printf("  unplanted verdict: %s %s %s (%s)\n", v[i].identity,
                       bg_class_name((bg_class)v[i].classification),
                       bg_phase_name((bg_phase)v[i].phase), v[i].reasons);
        }
    printf("  verdicts on unplanted identities: %zu\n", others);

    for (size_t i = 0; i < nv; i++) {
        const bg_rb_verdict *x = &v[i];
        if (x->classification != BG_CLASS_ANOMALOUS || x->phase != BG_PHASE_ONSET)
            continue;
        printf("\nsample verdict (the compromise's ONSET):\n"
               "  verdict_id %s, identity %s, workload class %s: %s, action %s, severity %d\n"
               "  new secrets [%s], new destinations [%s], review routes [%s]\n"
               "  policy_version %s, %d source range(s)\n  reasons:\n",
               x->verdict_id, x->identity, x->workload_class ? x->workload_class : "-",
               bg_class_name((bg_class)x->classification), bg_action_name((bg_action)x->action),
               x->severity, x->new_secret_ids, x->new_destinations, x->review_routes,
               x->policy_version, x->n_source);
        for (const char *line = x->reason_details; line && *line;) {
            const char *eol = strchr(line, '\n');
            int len = eol ? (int)(eol - line) : (int)strlen(line);
            printf("    %.*s\n", len, line);
            line = eol ? eol + 1 : NULL;
        }
        break;
    }

    size_t expected_rev = 0, correct_rev = 0;
    for (size_t l = 0; l < nl; l++)
        if (labels[l].revoke_secret_id)
            expected_rev++;
    printf("\nrevocations: %zu published (expected %zu)\n", nr, expected_rev);
    for (size_t i = 0; i < nr; i++) {
        bool expected = false;
        for (size_t l = 0; l < nl; l++)
            if (labels[l].revoke_secret_id && r[i].secret_id &&
                !strcmp(labels[l].revoke_secret_id, r[i].secret_id) &&
                !strcmp(labels[l].identity, r[i].identity))
                expected = true;
        correct_rev += expected;
        printf("  %s %s of %s (%s)\n", expected ? "ok   " : "WRONG",
               r[i].secret_id ? r[i].secret_id : "-", r[i].identity,
               r[i].dry_run ? "dry run" : "enforced");
    }
    bool rev_exact = correct_rev == expected_rev && nr == expected_rev;
    printf("\nresult: %s; %s\n",
           found_all ? "every planted burst found with its expected class"
                     : "some planted behaviour was NOT classified as expected",
           rev_exact ? "exactly the compromised secret(s) revoked"
                     : "revocations differ from the compromised secret(s)");
    for (size_t i = 0; i < nv; i++)
        bg_rb_verdict_clear(&v[i]);
    for (size_t i = 0; i < nr; i++)
        bg_rb_revocation_clear(&r[i]);
    free(v);
    free(r);
    free(matched);
    bg_rb_msgs_free(vm, nv);
    bg_rb_msgs_free(rm, nr);
    bg_rb_msgs_free(dm, nd);
    return 0;
}

static volatile sig_atomic_t demo_stop;
static void on_signal(int sig) {
    (void)sig;
    demo_stop = 1;
}

int bg_demo_main(int argc, char **argv) {
    if (argc > 1) {
        if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
            printf("usage: burstguard demo\nRuns a mock cluster, a labeled synthetic workload and "
                   "the worker in one process, then summarizes what the worker published.\n");
            return 0;
        }
        return bg_cli_usage_error("demo: unexpected argument '%s'", argv[1]);
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    char errstr[1024];
    bg_gen_opts go;
    bg_gen_opts_default(&go);
    bg_gen *g = NULL;
    bg_mock *mock = NULL;
    bg_codec *codec = NULL;
    bg_policy policy;
    bool have_policy = false, have_cfg = false;
    bg_config cfg;
    int rc = 1;
    bg_err err = bg_gen_new(&go, &g);
    if (err) {
        fprintf(stderr, "burstguard demo: workload generator: %s\n", bg_err_str(err));
        goto out;
    }
    if (bg_mock_new(1, 8, bg_topic_defaults, &mock, errstr, sizeof errstr)) {
        fprintf(stderr, "burstguard demo: %s\n", errstr);
        goto out;
    }
    char bs[512];
    snprintf(bs, sizeof bs, "kafka.bootstrap.servers=%s", bg_mock_bootstrap(mock));
    const char *sets[] = {bs, "kafka.group.id=burstguard-demo", "kafka.session.timeout.ms=6000",
                          "http.listen="};
    if (bg_config_load(NULL, sets, sizeof sets / sizeof sets[0], &cfg, errstr, sizeof errstr)) {
        fprintf(stderr, "burstguard demo: %s\n", errstr);
        goto out;
    }
    have_cfg = true;
    const char *pol = bg_gen_policy_yaml(g);
    if (bg_policy_load_text("demo-policy.yaml", pol, strlen(pol), &policy, errstr, sizeof errstr)) {
        fprintf(stderr, "burstguard demo: %s\n", errstr);
        goto out;
    }
    have_policy = true;
    if (bg_setup_codec(&cfg, &codec, errstr, sizeof errstr)) {
        fprintf(stderr, "burstguard demo: %s\n", errstr);
        goto out;
    }
    bg_info("demo: producing %zu events to the mock cluster at %s", bg_gen_count(g),
            bg_mock_bootstrap(mock));
    if (produce_workload(bg_mock_bootstrap(mock), &cfg, codec, g, errstr, sizeof errstr)) {
        fprintf(stderr, "burstguard demo: %s\n", errstr);
        goto out;
    }
    bg_pipeline_opts o = {.cfg = &cfg,
                          .policy = &policy,
                          .codec = codec,
                          .stop = &demo_stop,
                          .idle_exit_ms = 2000,
                          .startup_timeout_ms = 10000};
    bg_pipeline_stats st;
    if (bg_pipeline_run(&o, &st, errstr, sizeof errstr)) {
        fprintf(stderr, "burstguard demo: worker: %s\n", errstr);
        goto out;
    }
    rc = summarize(bg_mock_bootstrap(mock), &cfg, g, &st);
out:
    bg_codec_free(codec);
    if (have_policy)
        bg_policy_free(&policy);
    if (have_cfg)
        bg_config_free(&cfg);
    bg_mock_free(mock);
    bg_gen_free(g);
    return rc;
}
