/* Emit stage (see emit.h). */
#include "emit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sign.h"

/* Counts of what was produced and acknowledged. */
typedef struct bg_emit_stats {
    uint64_t verdicts, revocations, deadletters; /* produced */
    uint64_t delivered, failed;                  /* delivery reports */
} bg_emit_stats;

struct bg_emitter {
    rd_kafka_t *rk;
    bg_codec *codec;
    const bg_config *cfg;
    bool replay;
    bg_buf buf;
    bg_emit_stats st;
    uint64_t failed_seen; /* failures already reported by sync */
    const char *topic_names[BG_EV_KIND_COUNT];
    bool signing;                         /* signing.key_file configured */
    uint8_t sk[BG_SIGN_SECRET_BYTES];     /* the worker's secret key; wiped on free */
    bg_buf canon;                         /* canonical bytes of the command being signed */
    bool txn;                             /* transactional (exactly_once) */
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    bg_emitter *em = opaque;
    if (m->err) {
        em->st.failed++;
        bg_error("delivery to %s failed: %s", rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
    } else {
        em->st.delivered++;
    }
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void bg_emitter_transactional_id(const bg_config *cfg, const char *group_id, char *buf,
                                 size_t size) {
    if (cfg->transactional_id && *cfg->transactional_id) {
        snprintf(buf, size, "%s", cfg->transactional_id);
        return;
    }
    const char *g = group_id ? group_id : bg_config_kafka(cfg, "group.id");
    if (!g)
        g = "burstguard";
    const char *inst = bg_config_instance_id(cfg);
    if (inst) {
        snprintf(buf, size, "%s-%s", g, inst);
        return;
    }
    char host[128] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    snprintf(buf, size, "%s-%s-%ld", g, host, (long)getpid());
}

static bg_err emitter_new(const bg_config *cfg, bg_codec *codec, bool replay, const char *group_id,
                          bool transactional, bg_emitter **out, char *errstr,
                          size_t errstr_size);

bg_err bg_emitter_new(const bg_config *cfg, bg_codec *codec, bool replay, bg_emitter **out,
                      char *errstr, size_t errstr_size) {
    return emitter_new(cfg, codec, replay, NULL, false, out, errstr, errstr_size);
}

bg_err bg_emitter_new_txn(const bg_config *cfg, bg_codec *codec, const char *group_id,
                          bool transactional, bg_emitter **out, char *errstr,
                          size_t errstr_size) {
    return emitter_new(cfg, codec, false, group_id, transactional, out, errstr, errstr_size);
}

static bg_err emitter_new(const bg_config *cfg, bg_codec *codec, bool replay, const char *group_id,
                          bool transactional, bg_emitter **out, char *errstr,
                          size_t errstr_size) {
    bg_emitter *em = calloc(1, sizeof *em);
    if (!em)
        return BG_ERR_NOMEM;
    em->codec = codec;
    em->cfg = cfg;
    em->replay = replay;
    em->topic_names[BG_EV_USAGE] = cfg->topics[BG_TOPIC_USAGE];
    em->topic_names[BG_EV_SECRET] = cfg->topics[BG_TOPIC_SECRETS];
    em->topic_names[BG_EV_TOOLCALL] = cfg->topics[BG_TOPIC_TOOLCALLS];
    em->topic_names[BG_EV_ENVELOPE] = cfg->topics[BG_TOPIC_ENVELOPES];
    if (cfg->signing_key_file) {
        bg_err serr = BG_OK;
        if (!cfg->signing_key_id || !*cfg->signing_key_id) {
            snprintf(errstr, errstr_size, "signing.key_id is required with signing.key_file");
            serr = BG_ERR_CONFIG;
        } else if ((serr = bg_sign_load_secret(cfg->signing_key_file, em->sk, errstr,
                                               errstr_size)) == BG_ERR_IO) {
            serr = BG_ERR_CONFIG; /* a missing key is a configuration error (exit 2) */
        }
        if (serr) {
            bg_sign_wipe(em->sk, sizeof em->sk);
            free(em);
            return serr;
        }
        em->signing = true;
        bg_info("revocation commands are signed with key '%s'", cfg->signing_key_id);
    }

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char e[512];
    /* producer defaults first, so the config file can override them */
    static const char *defaults[][2] = {
        {"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "5"},
        {"partitioner", "murmur2_random"}, /* the Java client's partitioner: same key, same partition */
    };
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], e, sizeof e);
    for (size_t i = 0; i < cfg->n_kafka; i++) {
        const char *k = cfg->kafka[i].key;
        /* consumer-only properties are for the consumer */
        if (!strncmp(k, "group.", 6) || !strcmp(k, "auto.offset.reset") ||
            !strcmp(k, "session.timeout.ms") || !strcmp(k, "partition.assignment.strategy") ||
            !strncmp(k, "enable.auto.", 12) || !strcmp(k, "auto.commit.interval.ms") ||
            !strcmp(k, "max.poll.interval.ms") || !strcmp(k, "heartbeat.interval.ms") ||
            !strcmp(k, "isolation.level") || !strncmp(k, "queued.", 7) ||
            !strncmp(k, "fetch.", 6) || !strcmp(k, "enable.partition.eof"))
            continue;
        if (rd_kafka_conf_set(conf, k, cfg->kafka[i].value, e, sizeof e) != RD_KAFKA_CONF_OK) {
            snprintf(errstr, errstr_size, "kafka.%s: %s", k, e);
            rd_kafka_conf_destroy(conf);
            bg_sign_wipe(em->sk, sizeof em->sk);
            free(em);
            return BG_ERR_CONFIG;
        }
    }
    char tid[512];
    if (transactional) {
        bg_emitter_transactional_id(cfg, group_id, tid, sizeof tid);
        if (rd_kafka_conf_set(conf, "transactional.id", tid, e, sizeof e) != RD_KAFKA_CONF_OK) {
            snprintf(errstr, errstr_size, "transactional.id '%s': %s", tid, e);
            rd_kafka_conf_destroy(conf);
            bg_sign_wipe(em->sk, sizeof em->sk);
            free(em);
            return BG_ERR_CONFIG;
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, em);
    em->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    if (!em->rk) {
        snprintf(errstr, errstr_size, "cannot create producer: %s", e);
        bg_sign_wipe(em->sk, sizeof em->sk);
        free(em);
        return BG_ERR_KAFKA;
    }
    if (transactional) {
        rd_kafka_error_t *terr = rd_kafka_init_transactions(em->rk, 30000);
        if (!terr)
            terr = rd_kafka_begin_transaction(em->rk);
        if (terr) {
            snprintf(errstr, errstr_size, "cannot start transactions (transactional.id %s): %s",
                     tid, rd_kafka_error_string(terr));
            rd_kafka_error_destroy(terr);
            rd_kafka_destroy(em->rk);
            bg_sign_wipe(em->sk, sizeof em->sk);
            free(em);
            return BG_ERR_KAFKA;
        }
        em->txn = true;
        bg_info("exactly-once: transactional.id %s", tid);
    }
    /* learn the output topics' leaders now, so the first verdict of a burst
     * does not wait for a metadata round trip */
    static const bg_topic outs[] = {BG_TOPIC_VERDICTS, BG_TOPIC_REVOCATIONS, BG_TOPIC_DEADLETTER,
                                    BG_TOPIC_STATE};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(em->rk, cfg->topics[outs[i]], NULL);
        const rd_kafka_metadata_t *md;
        if (rkt && !rd_kafka_metadata(em->rk, 0, rkt, &md, 5000))
            rd_kafka_metadata_destroy(md);
        if (rkt)
            rd_kafka_topic_destroy(rkt);
    }
    *out = em;
    return BG_OK;
}

void bg_emitter_free(bg_emitter *em) {
    if (!em)
        return;
    if (em->txn && !rd_kafka_fatal_error(em->rk, NULL, 0)) {
        /* whatever the caller did not commit is not ours to publish */
        rd_kafka_error_t *e = rd_kafka_abort_transaction(em->rk, (int)em->cfg->shutdown_timeout_ms);
        if (e)
            rd_kafka_error_destroy(e);
    }
    rd_kafka_flush(em->rk, (int)em->cfg->shutdown_timeout_ms);
    if (rd_kafka_outq_len(em->rk) > 0)
        bg_warn("%d output message(s) not delivered at shutdown", rd_kafka_outq_len(em->rk));
    rd_kafka_destroy(em->rk);
    bg_buf_free(&em->buf);
    bg_buf_free(&em->canon);
    bg_sign_wipe(em->sk, sizeof em->sk);
    free(em);
}


static bg_err produce_part(bg_emitter *em, const char *topic, int32_t part, const void *key,
                           size_t key_len, const void *val, size_t val_len,
                           rd_kafka_headers_t *hdrs);

static bg_err produce(bg_emitter *em, const char *topic, const void *key, size_t key_len,
                      const void *val, size_t val_len, rd_kafka_headers_t *hdrs) {
    return produce_part(em, topic, RD_KAFKA_PARTITION_UA, key, key_len, val, val_len, hdrs);
}

static bg_err produce_part(bg_emitter *em, const char *topic, int32_t part, const void *key,
                           size_t key_len, const void *val, size_t val_len,
                           rd_kafka_headers_t *hdrs) {
    for (int attempt = 0;; attempt++) {
        rd_kafka_resp_err_t err;
        if (hdrs) {
            rd_kafka_headers_t *h = rd_kafka_headers_copy(hdrs);
            err = rd_kafka_producev(em->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
                                    RD_KAFKA_V_KEY(key, key_len),
                                    RD_KAFKA_V_VALUE((void *)(uintptr_t)val, val_len),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
            if (err)
                rd_kafka_headers_destroy(h);
        } else {
            err = rd_kafka_producev(em->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
                                    RD_KAFKA_V_KEY(key, key_len),
                                    RD_KAFKA_V_VALUE((void *)(uintptr_t)val, val_len),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        }
        if (!err)
            return BG_OK;
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && attempt < 600) {
            rd_kafka_poll(em->rk, 100); /* back-pressure: wait for deliveries */
            continue;
        }
        bg_error("cannot produce to %s: %s", topic, rd_kafka_err2str(err));
        return BG_ERR_KAFKA;
    }
}

bg_err bg_emitter_outputs(bg_emitter *em, const bg_outputs *o) {
    bg_emit_meta meta = {
        .emitted_at = wall_ms(),
        .worker_version = BG_VERSION,
        .replay = em->replay,
        .topic_names = em->topic_names,
    };
    for (size_t i = 0; i < o->n_verdicts; i++) {
        const bg_verdict *v = &o->verdicts[i];
        bg_err err = bg_codec_encode_verdict(em->codec, v, &meta, &em->buf);
        if (err) {
            bg_error("cannot encode verdict %s: %s", v->verdict_id, bg_err_str(err));
            return err;
        }
        err = produce(em, em->cfg->topics[BG_TOPIC_VERDICTS], v->identity, strlen(v->identity),
                      em->buf.data, em->buf.len, NULL);
        if (err)
            return err;
        em->st.verdicts++;
    }
    for (size_t i = 0; i < o->n_revocations; i++) {
        const bg_revocation *r = &o->revocations[i];
        bg_revocation rr = *r;
        if (em->cfg->dry_run)
            rr.dry_run = true;
        bg_emit_meta rmeta = meta;
        uint8_t sig[BG_SIGN_BYTES];
        bg_err err = BG_OK;
        if (em->signing) {
            /* sign exactly what a secret manager will check: the canonical
             * bytes of this command (dry_run included) with signature null */
            err = bg_codec_canonical_revocation(em->codec, &rr, em->cfg->signing_key_id,
                                                &em->canon);
            if (err) {
                bg_error("cannot sign revocation %s: %s", r->command_id, bg_err_str(err));
                return err;
            }
            bg_sign_detached(em->canon.data, em->canon.len, em->sk, sig);
            rmeta.key_id = em->cfg->signing_key_id;
            rmeta.signature = sig;
            rmeta.signature_len = sizeof sig;
        }
        err = bg_codec_encode_revocation(em->codec, &rr, &rmeta, &em->buf);
        if (err) {
            bg_error("cannot encode revocation %s: %s", r->command_id, bg_err_str(err));
            return err;
        }
        err = produce(em, em->cfg->topics[BG_TOPIC_REVOCATIONS], r->identity, strlen(r->identity),
                      em->buf.data, em->buf.len, NULL);
        if (err)
            return err;
        em->st.revocations++;
    }
    return BG_OK;
}

bg_err bg_emitter_deadletter(bg_emitter *em, const rd_kafka_message_t *m, bg_err reason,
                             const char *why) {
    rd_kafka_headers_t *h = rd_kafka_headers_new(6);
    char num[32];
    const char *reason_name = bg_err_name(reason);
    rd_kafka_header_add(h, "bg.reason", -1, reason_name, -1);
    rd_kafka_header_add(h, "bg.error", -1, why, -1);
    rd_kafka_header_add(h, "bg.topic", -1, rd_kafka_topic_name(m->rkt), -1);
    snprintf(num, sizeof num, "%" PRId32, m->partition);
    rd_kafka_header_add(h, "bg.partition", -1, num, -1);
    snprintf(num, sizeof num, "%" PRId64, m->offset);
    rd_kafka_header_add(h, "bg.offset", -1, num, -1);
    snprintf(num, sizeof num, "%" PRId64, rd_kafka_message_timestamp(m, NULL));
    rd_kafka_header_add(h, "bg.timestamp", -1, num, -1);
    bg_err err = produce(em, em->cfg->topics[BG_TOPIC_DEADLETTER], m->key, m->key_len, m->payload,
                         m->len, h);
    rd_kafka_headers_destroy(h);
    if (!err)
        em->st.deadletters++;
    return err;
}

bg_err bg_emitter_sync(bg_emitter *em, int timeout_ms) {
    rd_kafka_resp_err_t err = rd_kafka_flush(em->rk, timeout_ms);
    if (em->st.failed != em->failed_seen) {
        em->failed_seen = em->st.failed;
        return BG_ERR_KAFKA;
    }
    return err ? BG_ERR_FULL : BG_OK;
}


bg_err bg_emitter_changelog(bg_emitter *em, int32_t partition, const char *identity,
                            size_t identity_len, const void *value, size_t len,
                            const char *offsets) {
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, "bg.offsets", -1, offsets, -1);
    bg_err err = produce_part(em, em->cfg->topics[BG_TOPIC_STATE], partition, identity,
                              identity_len, value, value ? len : 0, h);
    rd_kafka_headers_destroy(h);
    return err;
}

bool bg_emitter_transactional(const bg_emitter *em) { return em->txn; }

bool bg_emitter_fatal(bg_emitter *em, char *why, size_t why_size) {
    return rd_kafka_fatal_error(em->rk, why, why_size) != RD_KAFKA_RESP_ERR_NO_ERROR;
}

static bg_txn_result txn_fail(bg_emitter *em, rd_kafka_error_t *e, const char *what, char *why,
                              size_t why_size) {
    bool fatal = rd_kafka_error_is_fatal(e) || !rd_kafka_error_txn_requires_abort(e);
    char fe[256] = "";
    if (rd_kafka_fatal_error(em->rk, fe, sizeof fe))
        fatal = true;
    snprintf(why, why_size, "%s: %s%s%s", what, rd_kafka_error_string(e), fe[0] ? "; " : "", fe);
    rd_kafka_error_destroy(e);
    return fatal ? BG_TXN_FATAL : BG_TXN_ABORTED;
}

bg_txn_result bg_emitter_abort(bg_emitter *em, char *why, size_t why_size) {
    for (int attempt = 0;; attempt++) {
        rd_kafka_error_t *e = rd_kafka_abort_transaction(em->rk, 30000);
        if (!e)
            break;
        if (rd_kafka_error_is_retriable(e) && attempt < 5) {
            rd_kafka_error_destroy(e);
            continue;
        }
        snprintf(why, why_size, "abort_transaction: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return BG_TXN_FATAL;
    }
    em->failed_seen = em->st.failed; /* aborted deliveries are expected */
    rd_kafka_error_t *e = rd_kafka_begin_transaction(em->rk);
    if (e) {
        snprintf(why, why_size, "begin_transaction: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return BG_TXN_FATAL;
    }
    return BG_TXN_ABORTED;
}

bg_txn_result bg_emitter_commit(bg_emitter *em, rd_kafka_t *consumer,
                                rd_kafka_topic_partition_list_t *offsets, char *why,
                                size_t why_size) {
    rd_kafka_error_t *e = NULL;
    if (offsets && offsets->cnt > 0) {
        rd_kafka_consumer_group_metadata_t *gm = rd_kafka_consumer_group_metadata(consumer);
        for (int attempt = 0;; attempt++) {
            e = rd_kafka_send_offsets_to_transaction(em->rk, offsets, gm, 30000);
            if (e && rd_kafka_error_is_retriable(e) && attempt < 5) {
                rd_kafka_error_destroy(e);
                continue;
            }
            break;
        }
        rd_kafka_consumer_group_metadata_destroy(gm);
        if (e) {
            bg_txn_result r = txn_fail(em, e, "send_offsets_to_transaction", why, why_size);
            if (r == BG_TXN_FATAL)
                return r;
            char w2[256];
            return bg_emitter_abort(em, w2, sizeof w2) == BG_TXN_FATAL ? BG_TXN_FATAL : r;
        }
    }
    for (int attempt = 0;; attempt++) {
        e = rd_kafka_commit_transaction(em->rk, 30000);
        if (e && rd_kafka_error_is_retriable(e) && attempt < 5) {
            rd_kafka_error_destroy(e);
            continue;
        }
        break;
    }
    if (e) {
        bg_txn_result r = txn_fail(em, e, "commit_transaction", why, why_size);
        if (r == BG_TXN_FATAL)
            return r;
        char w2[256];
        return bg_emitter_abort(em, w2, sizeof w2) == BG_TXN_FATAL ? BG_TXN_FATAL : r;
    }
    e = rd_kafka_begin_transaction(em->rk);
    if (e) {
        snprintf(why, why_size, "begin_transaction: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return BG_TXN_FATAL;
    }
    return BG_TXN_OK;
}
