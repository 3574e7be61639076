/* Changelog record encoding and decoding (see changelog.h). The Avro binary
 * of StateSnapshot is six fields of primitive types, so it is written and
 * read here directly (zig-zag varints, length-prefixed bytes) rather than
 * through the resolving codec: the worker is the only writer of this topic,
 * and a record of another shape is refused, never guessed at. */
#include "changelog.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>

static bool reserve(bg_buf *b, size_t extra) {
    if (b->len + extra <= b->cap)
        return true;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < b->len + extra)
        ncap *= 2;
    uint8_t *nd = realloc(b->data, ncap);
    if (!nd)
        return false;
    b->data = nd;
    b->cap = ncap;
    return true;
}

static void put_long(bg_buf *b, int64_t v) {
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z > 0x7f) {
        b->data[b->len++] = (uint8_t)((z & 0x7f) | 0x80);
        z >>= 7;
    }
    b->data[b->len++] = (uint8_t)z;
}

static void put_bytes(bg_buf *b, const void *p, size_t n) {
    put_long(b, (int64_t)n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

bg_err bg_changelog_encode(int32_t schema_id, const char *identity, size_t identity_len,
                           int32_t partition, int32_t format_version, const uint8_t *state,
                           size_t state_len, int64_t updated_at, const char *worker_version,
                           bg_buf *out) {
    if (state_len > BG_CHANGELOG_MAX_STATE || identity_len > (1u << 20))
        return BG_ERR_OVERSIZED;
    size_t vlen = strlen(worker_version);
    int bound = LZ4_compressBound((int)state_len);
    out->len = 0;
    if (bound <= 0 || !reserve(out, 5 + 3 * 10 + identity_len + vlen + 4 + (size_t)bound + 40))
        return BG_ERR_NOMEM;
    out->data[0] = 0;
    for (int i = 0; i < 4; i++)
        out->data[1 + i] = (uint8_t)((uint32_t)schema_id >> (24 - 8 * i));
    out->len = 5;
    put_bytes(out, identity, identity_len);
    put_long(out, partition);
    put_long(out, format_version);
    /* the state bytes: length, then size prefix + LZ4 block written in place */
    uint8_t *lenpos = out->data + out->len;
    size_t room = (size_t)bound + 4;
    /* the Avro length is written after compressing; reserve its maximum (10) */
    size_t state_at = out->len + 10;
    uint8_t *dst = out->data + state_at;
    dst[0] = (uint8_t)(state_len >> 24);
    dst[1] = (uint8_t)(state_len >> 16);
    dst[2] = (uint8_t)(state_len >> 8);
    dst[3] = (uint8_t)state_len;
    int c = state_len ? LZ4_compress_default((const char *)state, (char *)dst + 4, (int)state_len,
                                             bound)
                      : 0;
    if (state_len && c <= 0)
        return BG_ERR_NOMEM;
    size_t blen = 4 + (size_t)c;
    (void)room;
    /* write the length varint, then move the block next to it */
    bg_buf tmp = {lenpos, 0, 10};
    put_long(&tmp, (int64_t)blen);
    memmove(lenpos + tmp.len, dst, blen);
    out->len += tmp.len + blen;
    put_long(out, updated_at);
    put_bytes(out, worker_version, vlen);
    return BG_OK;
}

typedef struct rd {
    const uint8_t *p, *end;
} rd;

static bg_err get_long(rd *r, int64_t *v) {
    uint64_t z = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return BG_ERR_TRUNCATED;
        uint8_t b = *r->p++;
        z |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = (int64_t)((z >> 1) ^ (~(z & 1) + 1));
            return BG_OK;
        }
    }
    return BG_ERR_MALFORMED;
}

static bg_err get_int(rd *r, int32_t *v) {
    int64_t x;
    bg_err e = get_long(r, &x);
    if (e)
        return e;
    if (x < INT32_MIN || x > INT32_MAX)
        return BG_ERR_MALFORMED;
    *v = (int32_t)x;
    return BG_OK;
}

static bg_err get_bytes(rd *r, const uint8_t **p, size_t *n) {
    int64_t x;
    bg_err e = get_long(r, &x);
    if (e)
        return e;
    if (x < 0)
        return BG_ERR_MALFORMED;
    if ((uint64_t)x > (uint64_t)(r->end - r->p))
        return BG_ERR_TRUNCATED;
    *p = r->p;
    *n = (size_t)x;
    r->p += x;
    return BG_OK;
}

bg_err bg_changelog_decode(const void *buf, size_t len, bg_changelog_rec *rec, bg_buf *scratch,
                           char *why, size_t why_size) {
    const uint8_t *b = buf;
    if (!b || len < 5) {
        snprintf(why, why_size, "snapshot record shorter than its 5-byte framing");
        return BG_ERR_TRUNCATED;
    }
    if (b[0] != 0) {
        snprintf(why, why_size, "snapshot record does not start with the Confluent magic byte");
        return BG_ERR_BAD_MAGIC;
    }
    rd r = {b + 5, b + len};
    const uint8_t *id, *st, *ver;
    size_t idn, stn, vern;
    bg_err e;
    memset(rec, 0, sizeof *rec);
    if ((e = get_bytes(&r, &id, &idn)) || (e = get_int(&r, &rec->partition)) ||
        (e = get_int(&r, &rec->format_version)) || (e = get_bytes(&r, &st, &stn)) ||
        (e = get_long(&r, &rec->updated_at)) || (e = get_bytes(&r, &ver, &vern))) {
        snprintf(why, why_size, "snapshot record is %s", e == BG_ERR_TRUNCATED ? "truncated"
                                                                                : "malformed");
        return e;
    }
    (void)ver;
    if (r.p != r.end) {
        snprintf(why, why_size, "snapshot record has %zu trailing bytes", (size_t)(r.end - r.p));
        return BG_ERR_MALFORMED;
    }
    if (idn == 0) {
        snprintf(why, why_size, "snapshot record has an empty identity");
        return BG_ERR_SNAPSHOT;
    }
    if (stn < 4) {
        snprintf(why, why_size, "snapshot state shorter than its size prefix");
        return BG_ERR_SNAPSHOT;
    }
    uint32_t size = (uint32_t)st[0] << 24 | (uint32_t)st[1] << 16 | (uint32_t)st[2] << 8 | st[3];
    if (size > BG_CHANGELOG_MAX_STATE) {
        snprintf(why, why_size, "snapshot declares %u bytes, more than the cap of %u", size,
                 BG_CHANGELOG_MAX_STATE);
        return BG_ERR_SNAPSHOT;
    }
    if (stn - 4 > (size_t)LZ4_compressBound((int)size) + 16) {
        snprintf(why, why_size, "snapshot's compressed block is larger than %u bytes can need",
                 size);
        return BG_ERR_SNAPSHOT;
    }
    if (scratch->cap < (size_t)size + 1) {
        uint8_t *nd = realloc(scratch->data, (size_t)size + 1);
        if (!nd)
            return BG_ERR_NOMEM;
        scratch->data = nd;
        scratch->cap = (size_t)size + 1;
    }
    if (size) {
        int d = LZ4_decompress_safe((const char *)st + 4, (char *)scratch->data, (int)(stn - 4),
                                    (int)size);
        if (d < 0 || (uint32_t)d != size) {
            snprintf(why, why_size, "snapshot's LZ4 block does not decompress to its %u bytes",
                     size);
            return BG_ERR_SNAPSHOT;
        }
    } else if (stn != 4) {
        snprintf(why, why_size, "empty snapshot with a compressed block");
        return BG_ERR_SNAPSHOT;
    }
    scratch->len = size;
    rec->identity = (const char *)id;
    rec->identity_len = idn;
    rec->state = scratch->data;
    rec->state_len = size;
    return BG_OK;
}

bool bg_changelog_parse_offsets(const void *v, size_t len, int64_t next[3]) {
    char s[96];
    if (!v || len == 0 || len >= sizeof s)
        return false;
    memcpy(s, v, len);
    s[len] = 0;
    char *p = s;
    for (int i = 0; i < 3; i++) {
        char *end;
        long long x = strtoll(p, &end, 10);
        if (end == p || x < -1 || (i < 2 ? *end != ',' : *end != 0))
            return false;
        next[i] = x;
        p = end + 1;
    }
    return true;
}

/* ========================================================================== */
/* Restore reader                                                             */
/* ========================================================================== */

#include "log.h"

struct bg_restorer {
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    const bg_config *cfg;
};

bg_err bg_restorer_new(const bg_config *cfg, bg_restorer **out, char *errstr, size_t errstr_size) {
    bg_restorer *r = calloc(1, sizeof *r);
    if (!r)
        return BG_ERR_NOMEM;
    r->cfg = cfg;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char e[512];
    for (size_t i = 0; i < cfg->n_kafka; i++) {
        const char *k = cfg->kafka[i].key;
        /* connection and security settings only: this reader has no group */
        if (!strncmp(k, "group.", 6) || !strncmp(k, "enable.", 7) || !strncmp(k, "auto.", 5) ||
            !strcmp(k, "acks") || !strcmp(k, "linger.ms") || !strcmp(k, "partitioner") ||
            !strncmp(k, "transaction", 11) || !strcmp(k, "compression.type") ||
            !strcmp(k, "message.timeout.ms") || !strcmp(k, "session.timeout.ms") ||
            !strcmp(k, "partition.assignment.strategy") || !strcmp(k, "max.poll.interval.ms") ||
            !strcmp(k, "heartbeat.interval.ms") || !strcmp(k, "isolation.level"))
            continue;
        if (rd_kafka_conf_set(conf, k, cfg->kafka[i].value, e, sizeof e) != RD_KAFKA_CONF_OK) {
            snprintf(errstr, errstr_size, "kafka.%s: %s", k, e);
            rd_kafka_conf_destroy(conf);
            free(r);
            return BG_ERR_CONFIG;
        }
    }
    static const char *defaults[][2] = {
        {"enable.auto.commit", "false"},      {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "true"},     {"isolation.level", "read_committed"},
        {"auto.offset.reset", "earliest"},    {"queued.min.messages", "1000000"},
        {"fetch.max.bytes", "52428800"},
        /* librdkafka wants a group for its consumer queue and incremental
         * assignment; this one never subscribes and never commits */
        {"group.id", "burstguard-changelog-reader"},
    };
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], e, sizeof e);
    r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    if (!r->rk) {
        snprintf(errstr, errstr_size, "cannot create the changelog reader: %s", e);
        free(r);
        return BG_ERR_KAFKA;
    }
    rd_kafka_poll_set_consumer(r->rk);
    r->q = rd_kafka_queue_get_consumer(r->rk);
    if (!r->q) {
        snprintf(errstr, errstr_size, "the changelog reader has no consumer queue");
        bg_restorer_free(r);
        return BG_ERR_KAFKA;
    }
    *out = r;
    return BG_OK;
}

void bg_restorer_free(bg_restorer *r) {
    if (!r)
        return;
    if (r->q)
        rd_kafka_queue_destroy(r->q);
    rd_kafka_consumer_close(r->rk);
    rd_kafka_destroy(r->rk);
    free(r);
}

bg_err bg_restorer_start(bg_restorer *r, int32_t partition, int64_t *records, int64_t *high,
                         char *errstr, size_t errstr_size) {
    int64_t lo = -1, hi = -1;
    const char *topic = r->cfg->topics[BG_TOPIC_STATE];
    rd_kafka_resp_err_t err =
        rd_kafka_query_watermark_offsets(r->rk, topic, partition, &lo, &hi, 10000);
    if (err) {
        snprintf(errstr, errstr_size, "changelog %s[%d]: cannot read its watermarks: %s", topic,
                 partition, rd_kafka_err2str(err));
        return BG_ERR_KAFKA;
    }
    *records = hi > lo ? hi - lo : 0;
    *high = hi;
    if (*records == 0)
        return BG_OK;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = lo;
    rd_kafka_error_t *e = rd_kafka_incremental_assign(r->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(errstr, errstr_size, "changelog %s[%d]: cannot assign: %s", topic, partition,
                 rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return BG_ERR_KAFKA;
    }
    return BG_OK;
}

void bg_restorer_stop(bg_restorer *r, int32_t partition) {
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(r->rk, &a))
        return;
    bool have = rd_kafka_topic_partition_list_find(a, r->cfg->topics[BG_TOPIC_STATE], partition);
    rd_kafka_topic_partition_list_destroy(a);
    if (!have)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, r->cfg->topics[BG_TOPIC_STATE], partition);
    rd_kafka_error_t *e = rd_kafka_incremental_unassign(r->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        bg_warn("changelog reader: unassign [%d]: %s", partition, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

rd_kafka_message_t *bg_restorer_poll(bg_restorer *r, int timeout_ms) {
    return rd_kafka_consume_queue(r->q, timeout_ms);
}
