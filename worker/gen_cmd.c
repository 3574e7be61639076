/* `burstguard gen` (see gen_cmd.h).
 *
 *   burstguard gen [--seed N] [--identities N] [--hours H]
 *                  (--brokers LIST | --out-dir DIR) [--labels FILE] [--policy-out FILE]
 *                  [--scenarios full|classic]
 *
 * --scenarios: full (default; needs --identities >= 300) or classic (the
 * demo's four planted behaviours).
 * --brokers: every event is produced, Avro in the Confluent framing with the
 * built-in schema ids, keyed by identity, with the record timestamp set to
 * its event time, to the contract input topics (murmur2 partitioner, like
 * the Java client). --out-dir: one file per input topic, DIR/<topic>.records,
 * each record as [u32 BE key length][key][u32 BE value length][value]
 * [i64 BE timestamp ms], in event-time order. The labels (report.h format)
 * go to --labels (default DIR/labels.csv with --out-dir, else labels.csv) and
 * the policy the workload is meant to be judged by to --policy-out (default
 * next to the labels, policy.yaml). */
#include "gen_cmd.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <librdkafka/rdkafka.h>

#include "../bench/gen.h"
#include "cli.h"
#include "codec.h"
#include "config.h"
#include "report.h"

static const bg_topic kind_topic[3] = {BG_TOPIC_USAGE, BG_TOPIC_SECRETS, BG_TOPIC_TOOLCALLS};

static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static int write_labels(const bg_gen *g, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "# burstguard labels: identity,class,start,end,secret_ids,description\n");
    const bg_gen_label *l;
    size_t n = bg_gen_labels(g, &l);
    for (size_t i = 0; i < n; i++) {
        char a[40], b[40];
        bg_time_iso(l[i].start_ms, a, sizeof a);
        bg_time_iso(l[i].end_ms, b, sizeof b);
        fprintf(f, "%s,%s,%s,%s,%s,%s\n", l[i].identity,
                l[i].benign ? "BENIGN" : bg_label_class_name((int)l[i].expected), a, b,
                l[i].revoke_secret_id ? l[i].revoke_secret_id : "", l[i].what);
    }
    return fclose(f);
}

int bg_gen_main(int argc, char **argv) {
    static const struct option opts[] = {{"seed", required_argument, NULL, 's'},
                                         {"identities", required_argument, NULL, 'i'},
                                         {"hours", required_argument, NULL, 'H'},
                                         {"out-dir", required_argument, NULL, 'o'},
                                         {"brokers", required_argument, NULL, 'b'},
                                         {"labels", required_argument, NULL, 'l'},
                                         {"policy-out", required_argument, NULL, 'p'},
                                         {"scenarios", required_argument, NULL, 'S'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    bg_gen_opts go;
    bg_gen_opts_default(&go);
    go.full = true;
    const char *outdir = NULL, *brokers = NULL, *labels = NULL, *policy_out = NULL;
    long v;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "s:i:H:o:b:l:p:S:h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (bg_cli_parse_long("gen: --seed", optarg, 0, 0x7fffffffL, &v))
                return 2;
            go.seed = (uint64_t)v;
            break;
        case 'i':
            if (bg_cli_parse_long("gen: --identities", optarg, 60, 5000000, &v))
                return 2;
            go.identities = (int)v;
            break;
        case 'H':
            if (bg_cli_parse_long("gen: --hours", optarg, 3, 24 * 31, &v))
                return 2;
            go.duration_ms = (int64_t)v * 3600000;
            break;
        case 'o': outdir = optarg; break;
        case 'b': brokers = optarg; break;
        case 'l': labels = optarg; break;
        case 'p': policy_out = optarg; break;
        case 'S':
            if (strcmp(optarg, "full") && strcmp(optarg, "classic"))
                return bg_cli_usage_error("gen: --scenarios must be full or classic, not '%s'",
                                          optarg);
            go.full = !strcmp(optarg, "full");
            break;
        case 'h':
            printf("usage: burstguard gen [--seed N] [--identities N] [--hours H] (--brokers LIST | "
                   "--out-dir DIR) [--labels FILE] [--policy-out FILE] [--scenarios full|classic]\n");
            return 0;
        default:
            return bg_cli_usage_error("gen: unknown option or missing value '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bg_cli_usage_error("gen: unexpected argument '%s'", argv[optind]);
    if (go.full && go.identities < 300)
        return bg_cli_usage_error("gen: --scenarios full needs --identities 300 or more");
    if (!outdir == !brokers)
        return bg_cli_usage_error("gen: give exactly one of --brokers LIST and --out-dir DIR");
    if (outdir && mkdir(outdir, 0755) && errno != EEXIST) {
        fprintf(stderr, "burstguard: gen: cannot create '%s': %s\n", outdir, strerror(errno));
        return 2;
    }
    char lpath[4096], ppath[4096];
    if (labels)
        snprintf(lpath, sizeof lpath, "%s", labels);
    else
        snprintf(lpath, sizeof lpath, "%s%slabels.csv", outdir ? outdir : "", outdir ? "/" : "");
    if (policy_out) {
        snprintf(ppath, sizeof ppath, "%s", policy_out);
    } else {
        snprintf(ppath, sizeof ppath, "%s", lpath);
        char *slash = strrchr(ppath, '/');
        snprintf(slash ? slash + 1 : ppath, sizeof ppath - (size_t)(slash ? slash + 1 - ppath : 0),
                 "policy.yaml");
    }
    bg_gen *g;
    bg_err err = bg_gen_new(&go, &g);
    if (err) {
        fprintf(stderr, "burstguard: gen: %s\n", bg_err_str(err));
        return 1;
    }
    char errstr[512];
    bg_codec *codec = NULL;
    if (bg_codec_new(&codec, errstr, sizeof errstr) ||
        bg_codec_add_defaults(codec, errstr, sizeof errstr)) {
        fprintf(stderr, "burstguard: gen: %s\n", errstr);
        bg_gen_free(g);
        return 1;
    }
    int rc = 0;
    bg_buf buf = {0};
    FILE *files[3] = {NULL, NULL, NULL};
    rd_kafka_t *rk = NULL;
    if (brokers) {
        char e[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "bootstrap.servers", brokers, e, sizeof e);
        rd_kafka_conf_set(conf, "partitioner", "murmur2_random", e, sizeof e);
        rd_kafka_conf_set(conf, "linger.ms", "20", e, sizeof e);
        rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", e, sizeof e);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
        if (!rk) {
            fprintf(stderr, "burstguard: gen: producer: %s\n", e);
            rc = 1;
            goto out;
        }
    } else {
        for (int k = 0; k < 3; k++) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s.records", outdir, bg_topic_defaults[kind_topic[k]]);
            files[k] = fopen(p, "wb");
            if (!files[k]) {
                fprintf(stderr, "burstguard: gen: cannot write %.900s: %s\n", p, strerror(errno));
                rc = 1;
                goto out;
            }
        }
    }
    for (size_t i = 0; i < bg_gen_count(g); i++) {
        const bg_event *ev = bg_gen_event(g, i);
        if (bg_codec_encode_event(codec, bg_codec_default_id((bg_record)ev->kind), ev, &buf)) {
            fprintf(stderr, "burstguard: gen: cannot encode event %zu\n", i);
            rc = 1;
            goto out;
        }
        const char *topic = bg_topic_defaults[kind_topic[ev->kind]];
        if (rk) {
            while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                     RD_KAFKA_V_KEY(ev->identity.ptr, ev->identity.len),
                                     RD_KAFKA_V_VALUE(buf.data, buf.len),
                                     RD_KAFKA_V_TIMESTAMP(ev->event_time),
                                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                     RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 50);
            rd_kafka_poll(rk, 0);
        } else {
            uint8_t h[8];
            FILE *f = files[ev->kind];
            be32(h, ev->identity.len);
            fwrite(h, 1, 4, f);
            fwrite(ev->identity.ptr, 1, ev->identity.len, f);
            be32(h, (uint32_t)buf.len);
            fwrite(h, 1, 4, f);
            fwrite(buf.data, 1, buf.len, f);
            be32(h, (uint32_t)((uint64_t)ev->event_time >> 32));
            be32(h + 4, (uint32_t)ev->event_time);
            fwrite(h, 1, 8, f);
        }
    }
    if (rk && rd_kafka_flush(rk, 120000)) {
        fprintf(stderr, "burstguard: gen: %d events not delivered\n", rd_kafka_outq_len(rk));
        rc = 1;
        goto out;
    }
    if (write_labels(g, lpath)) {
        fprintf(stderr, "burstguard: gen: cannot write labels %.900s: %s\n", lpath, strerror(errno));
        rc = 1;
        goto out;
    }
    FILE *pf = fopen(ppath, "w");
    if (!pf || fputs(bg_gen_policy_yaml(g), pf) < 0 || fclose(pf)) {
        fprintf(stderr, "burstguard: gen: cannot write policy %.900s\n", ppath);
        rc = 1;
        goto out;
    }
    {
        const bg_gen_label *l;
        size_t nl = bg_gen_labels(g, &l);
        char a[40], b[40];
        bg_time_iso(go.start_ms, a, sizeof a);
        bg_time_iso(go.start_ms + go.duration_ms, b, sizeof b);
        printf("gen: %zu events, %d identities, %s .. %s, %zu labels -> %s, policy -> %s\n",
               bg_gen_count(g), go.identities, a, b, nl, lpath, ppath);
    }
out:
    for (int k = 0; k < 3; k++)
        if (files[k] && fclose(files[k]) && !rc) {
            fprintf(stderr, "burstguard: gen: write error\n");
            rc = 1;
        }
    if (rk)
        rd_kafka_destroy(rk);
    bg_buf_free(&buf);
    bg_codec_free(codec);
    bg_gen_free(g);
    return rc;
}
