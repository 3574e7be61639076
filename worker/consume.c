/* Consume stage (see consume.h). The rebalance callback follows librdkafka's
 * examples/consumer.c: incremental assign/unassign for the cooperative
 * protocol, plain assign otherwise, and no synchronous commit inside it (a
 * commit racing a cooperative rebalance gets the member's partitions declared
 * lost): stored offsets are committed by librdkafka itself. */
#include "consume.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../detectors/event.h"
#include "log.h"

struct bg_consumer {
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    const bg_config *cfg;
    bg_consumer_hooks hooks;
    bool joined; /* an assignment (possibly empty) has been received */
    /* topic handle -> kind cache (handles are stable for the consumer's life) */
    const rd_kafka_topic_t *rkt_cache[8];
    int kind_cache[8];
    int n_cache;
};

static const bg_topic input_topics[3] = {BG_TOPIC_USAGE, BG_TOPIC_SECRETS, BG_TOPIC_TOOLCALLS};

static int kind_of_name(const bg_config *cfg, const char *name) {
    for (int k = 0; k < 3; k++)
        if (!strcmp(name, cfg->topics[input_topics[k]]))
            return k; /* bg_event_kind order equals input_topics order */
    return -1;
}

static void notify(bg_consumer *c, rd_kafka_topic_partition_list_t *parts, bool assign, bool lost) {
    for (int i = 0; i < parts->cnt; i++) {
        int kind = kind_of_name(c->cfg, parts->elems[i].topic);
        if (kind < 0)
            continue;
        if (assign) {
            if (c->hooks.on_assign)
                c->hooks.on_assign(c->hooks.opaque, kind, parts->elems[i].partition);
        } else {
            if (c->hooks.on_revoke)
                c->hooks.on_revoke(c->hooks.opaque, kind, parts->elems[i].partition, lost);
        }
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    bg_consumer *c = opaque;
    bool cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t ret = RD_KAFKA_RESP_ERR_NO_ERROR;
    switch (err) {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        bg_info("assigned %d partition(s)%s", parts->cnt, cooperative ? " (incremental)" : "");
        if (cooperative)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            ret = rd_kafka_assign(rk, parts);
        if (!error && !ret) {
            notify(c, parts, true, false);
            c->joined = true;
        }
        break;
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS: {
        bool lost = rd_kafka_assignment_lost(rk);
        bg_info("%s %d partition(s)", lost ? "lost" : "revoked", parts->cnt);
        if (c->hooks.before_revoke)
            c->hooks.before_revoke(c->hooks.opaque, lost);
        notify(c, parts, false, lost);
        if (cooperative)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            ret = rd_kafka_assign(rk, NULL);
        break;
    }
    default:
        bg_error("rebalance failed: %s", rd_kafka_err2str(err));
        rd_kafka_assign(rk, NULL);
        break;
    }
    if (error) {
        bg_error("incremental (un)assign failed: %s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (ret) {
        bg_error("(un)assign failed: %s", rd_kafka_err2str(ret));
    }
}

bg_err bg_consumer_new(const bg_config *cfg, const char *group_id, const bg_consumer_hooks *hooks,
                       bg_consumer **out, char *errstr, size_t errstr_size) {
    bg_consumer *c = calloc(1, sizeof *c);
    if (!c)
        return BG_ERR_NOMEM;
    c->cfg = cfg;
    if (hooks)
        c->hooks = *hooks;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char e[512];
    static const char *defaults[][2] = {
        {"group.id", "burstguard"},
        {"partition.assignment.strategy", "cooperative-sticky"},
        {"enable.auto.offset.store", "false"},
        {"enable.auto.commit", "true"},
        {"auto.offset.reset", "earliest"},
        {"queued.min.messages", "1000000"}, /* the default 100000 stalls ~1 s whenever the queue fills */
        {"enable.partition.eof", "true"},    /* the event-time merge learns that an input is caught up */
    };
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], e, sizeof e);
    if (cfg->exactly_once) {
        /* offsets travel inside the transaction, never on their own */
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", e, sizeof e);
        rd_kafka_conf_set(conf, "isolation.level", "read_committed", e, sizeof e);
    } else {
        char ms[32];
        snprintf(ms, sizeof ms, "%lld", (long long)cfg->commit_interval_ms);
        rd_kafka_conf_set(conf, "auto.commit.interval.ms", ms, e, sizeof e);
    }
    const char *instance = bg_config_instance_id(cfg);
    if (instance && !bg_config_kafka(cfg, "group.instance.id"))
        rd_kafka_conf_set(conf, "group.instance.id", instance, e, sizeof e);
    if (instance)
        bg_info("static membership: group.instance.id=%s", instance);
    for (size_t i = 0; i < cfg->n_kafka; i++) {
        const char *k = cfg->kafka[i].key;
        /* producer-only properties belong to the emitter */
        if (cfg->exactly_once && !strcmp(k, "enable.auto.commit"))
            continue; /* exactly_once commits offsets in its transactions only */
        if (!strcmp(k, "enable.idempotence") || !strcmp(k, "acks") || !strcmp(k, "linger.ms") ||
            !strcmp(k, "partitioner") || !strncmp(k, "transaction", 11) ||
            !strcmp(k, "compression.type") || !strcmp(k, "message.timeout.ms"))
            continue;
        if (rd_kafka_conf_set(conf, k, cfg->kafka[i].value, e, sizeof e) != RD_KAFKA_CONF_OK) {
            snprintf(errstr, errstr_size, "kafka.%s: %s", k, e);
            rd_kafka_conf_destroy(conf);
            free(c);
            return BG_ERR_CONFIG;
        }
    }
    if (group_id && rd_kafka_conf_set(conf, "group.id", group_id, e, sizeof e)) {
        snprintf(errstr, errstr_size, "--group: %s", e);
        rd_kafka_conf_destroy(conf);
        free(c);
        return BG_ERR_CONFIG;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, c);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    if (!c->rk) {
        snprintf(errstr, errstr_size, "cannot create consumer: %s", e);
        free(c);
        return BG_ERR_KAFKA;
    }
    rd_kafka_poll_set_consumer(c->rk);
    c->q = rd_kafka_queue_get_consumer(c->rk);
    *out = c;
    return BG_OK;
}

void bg_consumer_free(bg_consumer *c) {
    if (!c)
        return;
    rd_kafka_queue_destroy(c->q);
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(c->rk);
    if (err)
        bg_warn("consumer close: %s", rd_kafka_err2str(err));
    rd_kafka_destroy(c->rk);
    free(c);
}

bg_err bg_consumer_check_topics(bg_consumer *c, int timeout_ms, int32_t *partitions,
                                char *errstr, size_t errstr_size) {
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(c->rk, 1, NULL, &md, timeout_ms);
    if (err) {
        const char *bs = bg_config_kafka(c->cfg, "bootstrap.servers");
        snprintf(errstr, errstr_size, "cannot reach Kafka at bootstrap.servers=%s within %d ms: %s",
                 bs ? bs : "(unset)", timeout_ms, rd_kafka_err2str(err));
        return BG_ERR_KAFKA;
    }
    bg_err ret = BG_OK;
    int32_t parts[3] = {-1, -1, -1};
    static const bg_topic outputs[3] = {BG_TOPIC_VERDICTS, BG_TOPIC_REVOCATIONS, BG_TOPIC_DEADLETTER};
    for (int k = 0; k < 3 && !ret; k++) {
        const char *want = c->cfg->topics[input_topics[k]];
        for (int i = 0; i < md->topic_cnt; i++)
            if (!strcmp(md->topics[i].topic, want) && !md->topics[i].err)
                parts[k] = md->topics[i].partition_cnt;
        if (parts[k] <= 0) {
            snprintf(errstr, errstr_size, "input topic '%s' does not exist", want);
            ret = BG_ERR_KAFKA;
        }
    }
    if (!ret && (parts[0] != parts[1] || parts[0] != parts[2])) {
        snprintf(errstr, errstr_size,
                 "input topics are not co-partitioned: %s has %d partitions, %s %d, %s %d "
                 "(they must have the same count, keyed by identity)",
                 c->cfg->topics[BG_TOPIC_USAGE], parts[0], c->cfg->topics[BG_TOPIC_SECRETS],
                 parts[1], c->cfg->topics[BG_TOPIC_TOOLCALLS], parts[2]);
        ret = BG_ERR_KAFKA;
    }
    for (int k = 0; k < 3 && !ret; k++) {
        const char *want = c->cfg->topics[outputs[k]];
        bool found = false;
        for (int i = 0; i < md->topic_cnt; i++)
            if (!strcmp(md->topics[i].topic, want) && !md->topics[i].err)
                found = true;
        if (!found) {
            snprintf(errstr, errstr_size, "output topic '%s' does not exist", want);
            ret = BG_ERR_KAFKA;
        }
    }
    if (!ret && c->cfg->state_changelog) {
        const char *want = c->cfg->topics[BG_TOPIC_STATE];
        int32_t sp = -1;
        for (int i = 0; i < md->topic_cnt; i++)
            if (!strcmp(md->topics[i].topic, want) && !md->topics[i].err)
                sp = md->topics[i].partition_cnt;
        if (sp <= 0) {
            snprintf(errstr, errstr_size,
                     "state topic '%s' does not exist (create it compacted, with %d partitions, "
                     "or set state.changelog=false)",
                     want, parts[0]);
            ret = BG_ERR_CONFIG;
        } else if (sp != parts[0]) {
            snprintf(errstr, errstr_size,
                     "state topic '%s' has %d partitions but the input topics have %d: the "
                     "changelog must be co-partitioned with the inputs",
                     want, sp, parts[0]);
            ret = BG_ERR_CONFIG;
        }
    }
    rd_kafka_metadata_destroy(md);
    if (!ret)
        *partitions = parts[0];
    return ret;
}

bg_err bg_consumer_subscribe(bg_consumer *c, char *errstr, size_t errstr_size) {
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(3);
    for (int k = 0; k < 3; k++)
        rd_kafka_topic_partition_list_add(t, c->cfg->topics[input_topics[k]], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, t);
    rd_kafka_topic_partition_list_destroy(t);
    if (err) {
        snprintf(errstr, errstr_size, "subscribe failed: %s", rd_kafka_err2str(err));
        return BG_ERR_KAFKA;
    }
    return BG_OK;
}

size_t bg_consumer_poll_batch(bg_consumer *c, rd_kafka_message_t **msgs, size_t max,
                              int timeout_ms) {
    /* The first message waits up to timeout_ms; the rest is what the queue
     * holds now, taken in one call (one lock of the queue, not one per
     * message). rd_kafka_consume_batch_queue() with a timeout would wait for
     * a full batch, holding a quiet stream back by batch_max_ms. */
    if (max == 0)
        return 0;
    rd_kafka_message_t *m = rd_kafka_consume_queue(c->q, timeout_ms);
    if (!m)
        return 0;
    msgs[0] = m;
    if (max == 1)
        return 1;
    ssize_t more = rd_kafka_consume_batch_queue(c->q, 0, msgs + 1, max - 1);
    return 1 + (more > 0 ? (size_t)more : 0);
}

int bg_consumer_kind(bg_consumer *c, const rd_kafka_message_t *m) {
    for (int i = 0; i < c->n_cache; i++)
        if (c->rkt_cache[i] == m->rkt)
            return c->kind_cache[i];
    int kind = kind_of_name(c->cfg, rd_kafka_topic_name(m->rkt));
    if (c->n_cache < 8) {
        c->rkt_cache[c->n_cache] = m->rkt;
        c->kind_cache[c->n_cache++] = kind;
    }
    return kind;
}

void bg_consumer_store(bg_consumer *c, rd_kafka_topic_partition_list_t *offsets) {
    if (offsets->cnt == 0)
        return;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->rk, offsets);
    /* a partition revoked meanwhile reports _STATE: its new owner re-reads it */
    if (err && err != RD_KAFKA_RESP_ERR__STATE)
        bg_warn("offset store: %s", rd_kafka_err2str(err));
}

bool bg_consumer_joined(bg_consumer *c) { return c->joined; }

void bg_consumer_pause(bg_consumer *c, int kind, int32_t partition, bool pause) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, c->cfg->topics[input_topics[kind]], partition);
    rd_kafka_resp_err_t err = pause ? rd_kafka_pause_partitions(c->rk, l)
                                    : rd_kafka_resume_partitions(c->rk, l);
    if (err)
        bg_warn("%s %s[%d]: %s", pause ? "pause" : "resume", c->cfg->topics[input_topics[kind]],
                partition, rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}

int64_t bg_consumer_lag(bg_consumer *c, int kind, int32_t partition, int64_t next_offset) {
    int64_t lo = -1, hi = -1;
    if (rd_kafka_get_watermark_offsets(c->rk, c->cfg->topics[input_topics[kind]], partition, &lo,
                                       &hi) ||
        hi < 0)
        return -1;
    if (next_offset < 0)
        return hi - lo; /* nothing received yet */
    return hi > next_offset ? hi - next_offset : 0;
}


bool bg_consumer_fatal(bg_consumer *c, char *errstr, size_t errstr_size) {
    return rd_kafka_fatal_error(c->rk, errstr, errstr_size) != RD_KAFKA_RESP_ERR_NO_ERROR;
}

rd_kafka_t *bg_consumer_rk(bg_consumer *c) { return c->rk; }

bg_err bg_consumer_rewind(bg_consumer *c, const int32_t *partitions, size_t n, char *errstr,
                          size_t errstr_size) {
    rd_kafka_topic_partition_list_t *a = NULL;
    rd_kafka_resp_err_t err = rd_kafka_assignment(c->rk, &a);
    if (err) {
        snprintf(errstr, errstr_size, "rewind: cannot read the assignment: %s",
                 rd_kafka_err2str(err));
        return BG_ERR_KAFKA;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(a->cnt ? a->cnt : 1);
    for (int i = 0; i < a->cnt; i++) {
        bool want = !partitions;
        for (size_t j = 0; partitions && j < n; j++)
            if (partitions[j] == a->elems[i].partition)
                want = true;
        if (want && kind_of_name(c->cfg, a->elems[i].topic) >= 0)
            rd_kafka_topic_partition_list_add(l, a->elems[i].topic, a->elems[i].partition);
    }
    rd_kafka_topic_partition_list_destroy(a);
    bg_err ret = BG_OK;
    if (l->cnt) {
        err = rd_kafka_committed(c->rk, l, 10000);
        if (err) {
            snprintf(errstr, errstr_size, "rewind: cannot read committed offsets: %s",
                     rd_kafka_err2str(err));
            ret = BG_ERR_KAFKA;
        } else {
            for (int i = 0; i < l->cnt; i++)
                if (l->elems[i].offset < 0)
                    l->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
            rd_kafka_error_t *e = rd_kafka_seek_partitions(c->rk, l, 10000);
            if (e) {
                snprintf(errstr, errstr_size, "rewind: seek failed: %s", rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
                ret = BG_ERR_KAFKA;
            }
            for (int i = 0; !ret && i < l->cnt; i++)
                if (l->elems[i].err) {
                    snprintf(errstr, errstr_size, "rewind: seek %s[%d]: %s", l->elems[i].topic,
                             l->elems[i].partition, rd_kafka_err2str(l->elems[i].err));
                    ret = BG_ERR_KAFKA;
                }
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return ret;
}
