/* The envelopes table (see envelopes.h). */
#include "envelopes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "sign.h"

struct bg_envtable {
    rd_kafka_t *rk;
    bg_codec *codec;
    const bg_config *cfg;
    bg_envset *set;
    bg_envtable_reject_fn reject;
    void *opaque;
    int partitions;
    bg_envtable_stats st;
    const bg_policy *policy; /* approvers in force; NULL = none (set by the pipeline) */
    bg_buf scratch;          /* canonical bytes being verified */
};

bg_err bg_envtable_new(const bg_config *cfg, bg_codec *codec, bg_envtable_reject_fn reject,
                       void *opaque, bg_envtable **out, char *errstr, size_t errstr_size) {
    bg_envtable *t = calloc(1, sizeof *t);
    if (!t || bg_envset_new(&t->set)) {
        free(t);
        return BG_ERR_NOMEM;
    }
    t->codec = codec;
    t->cfg = cfg;
    t->reject = reject;
    t->opaque = opaque;
    char e[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* the brokers and security settings of the worker; no group membership */
    for (size_t i = 0; i < cfg->n_kafka; i++) {
        const char *k = cfg->kafka[i].key;
        if (!strcmp(k, "bootstrap.servers") || !strncmp(k, "security.", 9) ||
            !strncmp(k, "sasl.", 5) || !strncmp(k, "ssl.", 4) || !strcmp(k, "client.id"))
            rd_kafka_conf_set(conf, k, cfg->kafka[i].value, e, sizeof e);
    }
    rd_kafka_conf_set(conf, "group.id", "burstguard-envelopes", e, sizeof e);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", e, sizeof e);
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", e, sizeof e);
    rd_kafka_conf_set(conf, "isolation.level", "read_committed", e, sizeof e);
    t->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    if (!t->rk) {
        snprintf(errstr, errstr_size, "envelopes consumer: %s", e);
        bg_envset_free(t->set);
        free(t);
        return BG_ERR_KAFKA;
    }
    *out = t;
    return BG_OK;
}

void bg_envtable_free(bg_envtable *t) {
    if (!t)
        return;
    rd_kafka_consumer_close(t->rk);
    rd_kafka_destroy(t->rk);
    bg_envset_free(t->set);
    bg_buf_free(&t->scratch);
    free(t);
}

void bg_envtable_set_policy(bg_envtable *t, const bg_policy *p) { t->policy = p; }

const bg_envset *bg_envtable_set(const bg_envtable *t) { return t->set; }
void bg_envtable_stats_get(const bg_envtable *t, bg_envtable_stats *st) { *st = t->st; }

static void apply(bg_envtable *t, const rd_kafka_message_t *m) {
    char why[256];
    if (!m->payload) { /* tombstone: the envelope is withdrawn */
        if (m->key) {
            bg_envset_remove(t->set, m->key, m->key_len);
            t->st.removed++;
        }
        return;
    }
    bg_envelope_msg env;
    bg_err err = bg_codec_decode_envelope(t->codec, m->payload, m->len, &env, why, sizeof why);
    if (!err && (!m->key || m->key_len != env.envelope_id.len ||
                 memcmp(m->key, env.envelope_id.ptr, m->key_len))) {
        err = BG_ERR_KEY_MISMATCH;
        snprintf(why, sizeof why, "envelope key differs from its envelope_id");
    }
    /* the signature is checked before anything of the record is used */
    if (!err && t->policy && t->policy->n_approvers)
        err = bg_sign_check_envelope(t->codec, t->policy->approvers, t->policy->n_approvers, &env,
                                     &t->scratch, why, sizeof why);
    if (!err)
        err = bg_envset_put(t->set, &env, why, sizeof why);
    if (err) {
        t->st.rejected++;
        bg_warn("envelope at %s[%d]@%lld refused: %s", rd_kafka_topic_name(m->rkt), m->partition,
                (long long)m->offset, why);
        if (t->reject)
            t->reject(t->opaque, m, err, why);
        return;
    }
    t->st.applied++;
    bg_info("envelope %.*s %s (approved by %.*s)", (int)env.envelope_id.len, env.envelope_id.ptr,
            env.revoked ? "revoked" : "applied", (int)env.approved_by.len, env.approved_by.ptr);
}

bg_err bg_envtable_sync(bg_envtable *t, int timeout_ms, char *errstr, size_t errstr_size) {
    const char *topic = t->cfg->topics[BG_TOPIC_ENVELOPES];
    const rd_kafka_metadata_t *md;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(t->rk, topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(t->rk, 0, rkt, &md, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    if (err) {
        snprintf(errstr, errstr_size, "envelopes topic '%s': %s", topic, rd_kafka_err2str(err));
        return BG_ERR_KAFKA;
    }
    if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt <= 0) {
        snprintf(errstr, errstr_size, "envelopes topic '%s' does not exist", topic);
        rd_kafka_metadata_destroy(md);
        return BG_ERR_KAFKA;
    }
    t->partitions = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(t->partitions);
    for (int p = 0; p < t->partitions; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    err = rd_kafka_assign(t->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        snprintf(errstr, errstr_size, "envelopes topic '%s': %s", topic, rd_kafka_err2str(err));
        return BG_ERR_KAFKA;
    }
    int eof = 0;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (eof < t->partitions) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms) {
            snprintf(errstr, errstr_size, "envelopes topic '%s' not read to its end within %d ms",
                     topic, timeout_ms);
            return BG_ERR_KAFKA;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(t->rk, 100);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            eof++;
        else if (!m->err)
            apply(t, m);
        else
            bg_warn("envelopes consumer: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
    }
    bg_info("envelopes: %zu live after reading %s", bg_envset_count(t->set), topic);
    return BG_OK;
}

size_t bg_envtable_poll(bg_envtable *t) {
    size_t n = 0;
    rd_kafka_message_t *m;
    while ((m = rd_kafka_consumer_poll(t->rk, 0)) != NULL) {
        if (!m->err) {
            apply(t, m);
            n++;
        }
        rd_kafka_message_destroy(m);
    }
    return n;
}
