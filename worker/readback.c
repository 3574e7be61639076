/* Output read-back (see readback.h). */
#include "readback.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <avro.h>
#include <librdkafka/rdkafka.h>

#include "codec.h"

static char *cdup(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static char *get_str(avro_value_t *rec, const char *name) {
    avro_value_t f, b;
    if (avro_value_get_by_name(rec, name, &f, NULL))
        return NULL;
    if (avro_value_get_type(&f) == AVRO_UNION) {
        if (avro_value_get_current_branch(&f, &b) || avro_value_get_type(&b) == AVRO_NULL)
            return NULL;
        f = b;
    }
    const char *s;
    size_t n;
    if (avro_value_get_string(&f, &s, &n))
        return NULL;
    return cdup(s, n ? n - 1 : 0);
}

static int64_t get_long(avro_value_t *rec, const char *name) {
    avro_value_t f;
    int64_t v = 0;
    if (!avro_value_get_by_name(rec, name, &f, NULL))
        avro_value_get_long(&f, &v);
    return v;
}

static int get_enum(avro_value_t *rec, const char *name) {
    avro_value_t f;
    int v = -1;
    if (!avro_value_get_by_name(rec, name, &f, NULL))
        avro_value_get_enum(&f, &v);
    return v;
}

static bool get_bool(avro_value_t *rec, const char *name) {
    avro_value_t f;
    int v = 0;
    if (!avro_value_get_by_name(rec, name, &f, NULL))
        avro_value_get_boolean(&f, &v);
    return v != 0;
}

/* Array of strings, or of records whose `field` is a string, joined by commas. */
static char *get_joined(avro_value_t *rec, const char *name, const char *field) {
    avro_value_t arr;
    size_t n = 0;
    if (avro_value_get_by_name(rec, name, &arr, NULL) || avro_value_get_size(&arr, &n))
        return cdup("", 0);
    size_t cap = 256, len = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        avro_value_t el, f;
        const char *s;
        size_t sl;
        if (avro_value_get_by_index(&arr, i, &el, NULL))
            continue;
        if (field) {
            if (avro_value_get_by_name(&el, field, &f, NULL))
                continue;
            el = f;
        }
        if (avro_value_get_string(&el, &s, &sl))
            continue;
        sl = sl ? sl - 1 : 0;
        while (len + sl + 2 > cap) {
            cap *= 2;
            char *no = realloc(out, cap);
            if (!no) {
                free(out);
                return NULL;
            }
            out = no;
        }
        if (len)
            out[len++] = ',';
        memcpy(out + len, s, sl);
        len += sl;
        out[len] = 0;
    }
    return out;
}

/* Decode framed bytes with the embedded schema of rec into a fresh value. */
static bg_err decode(bg_record rec, const void *buf, size_t len, avro_schema_t *schema,
                     avro_value_iface_t **iface, avro_value_t *val) {
    const uint8_t *b = buf;
    if (len < 5)
        return BG_ERR_TRUNCATED;
    if (b[0] != 0)
        return BG_ERR_BAD_MAGIC;
    const char *text = bg_codec_reader_schema(rec);
    if (avro_schema_from_json_length(text, strlen(text), schema))
        return BG_ERR_SCHEMA;
    *iface = avro_generic_class_from_schema(*schema);
    if (!*iface || avro_generic_value_new(*iface, val)) {
        if (*iface)
            avro_value_iface_decref(*iface);
        avro_schema_decref(*schema);
        return BG_ERR_NOMEM;
    }
    avro_reader_t r = avro_reader_memory((const char *)b + 5, (int64_t)(len - 5));
    int rc = avro_value_read(r, val);
    avro_reader_free(r);
    if (rc) {
        avro_value_decref(val);
        avro_value_iface_decref(*iface);
        avro_schema_decref(*schema);
        return BG_ERR_MALFORMED;
    }
    return BG_OK;
}

static double get_double(avro_value_t *rec, const char *name) {
    avro_value_t f;
    double v = 0;
    if (!avro_value_get_by_name(rec, name, &f, NULL))
        avro_value_get_double(&f, &v);
    return v;
}

static char *reason_lines(avro_value_t *rec) {
    avro_value_t arr;
    size_t n = 0;
    if (avro_value_get_by_name(rec, "reasons", &arr, NULL) || avro_value_get_size(&arr, &n))
        return cdup("", 0);
    size_t cap = 256 + n * 160, len = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        avro_value_t el;
        if (avro_value_get_by_index(&arr, i, &el, NULL))
            continue;
        char *code = get_str(&el, "code"), *det = get_str(&el, "detector");
        int w = snprintf(out + len, cap - len,
                         "%s (%s): observed %g, baseline %g, threshold %g, score %.2f\n",
                         code ? code : "?", det ? det : "?", get_double(&el, "observed"),
                         get_double(&el, "baseline"), get_double(&el, "threshold"),
                         get_double(&el, "score"));
        free(code);
        free(det);
        if (w > 0 && (size_t)w < cap - len)
            len += (size_t)w;
    }
    return out;
}

static void done(avro_schema_t schema, avro_value_iface_t *iface, avro_value_t *val) {
    avro_value_decref(val);
    avro_value_iface_decref(iface);
    avro_schema_decref(schema);
}

bg_err bg_rb_verdict_decode(const void *buf, size_t len, bg_rb_verdict *v) {
    avro_schema_t s;
    avro_value_iface_t *i;
    avro_value_t val;
    memset(v, 0, sizeof *v);
    bg_err err = decode(BG_REC_VERDICT, buf, len, &s, &i, &val);
    if (err)
        return err;
    v->verdict_id = get_str(&val, "verdict_id");
    v->identity = get_str(&val, "identity");
    v->workload_class = get_str(&val, "workload_class");
    v->envelope_id = get_str(&val, "envelope_id");
    v->policy_version = get_str(&val, "policy_version");
    v->classification = get_enum(&val, "classification");
    v->phase = get_enum(&val, "phase");
    v->action = get_enum(&val, "action");
    v->severity = (int32_t)0;
    avro_value_t f;
    if (!avro_value_get_by_name(&val, "severity", &f, NULL))
        avro_value_get_int(&f, &v->severity);
    v->window_start = get_long(&val, "window_start");
    v->window_end = get_long(&val, "window_end");
    v->decided_at = get_long(&val, "decided_at");
    v->emitted_at = get_long(&val, "emitted_at");
    v->reasons = get_joined(&val, "reasons", "code");
    v->reason_details = reason_lines(&val);
    v->new_secret_ids = get_joined(&val, "new_secret_ids", NULL);
    v->new_destinations = get_joined(&val, "new_destinations", NULL);
    v->review_routes = get_joined(&val, "review_routes", NULL);
    size_t ns = 0;
    if (!avro_value_get_by_name(&val, "source", &f, NULL) && !avro_value_get_size(&f, &ns))
        v->n_source = (int)ns;
    v->replay = get_bool(&val, "replay");
    done(s, i, &val);
    return BG_OK;
}

void bg_rb_verdict_clear(bg_rb_verdict *v) {
    free(v->verdict_id);
    free(v->identity);
    free(v->workload_class);
    free(v->envelope_id);
    free(v->policy_version);
    free(v->reasons);
    free(v->reason_details);
    free(v->new_secret_ids);
    free(v->new_destinations);
    free(v->review_routes);
    memset(v, 0, sizeof *v);
}

bg_err bg_rb_revocation_decode(const void *buf, size_t len, bg_rb_revocation *r) {
    avro_schema_t s;
    avro_value_iface_t *i;
    avro_value_t val;
    memset(r, 0, sizeof *r);
    bg_err err = decode(BG_REC_REVOCATION, buf, len, &s, &i, &val);
    if (err)
        return err;
    r->command_id = get_str(&val, "command_id");
    r->verdict_id = get_str(&val, "verdict_id");
    r->identity = get_str(&val, "identity");
    r->secret_id = get_str(&val, "secret_id");
    r->reason = get_str(&val, "reason");
    r->target = get_enum(&val, "target");
    r->issued_at = get_long(&val, "issued_at");
    r->dry_run = get_bool(&val, "dry_run");
    done(s, i, &val);
    return BG_OK;
}

void bg_rb_revocation_clear(bg_rb_revocation *r) {
    free(r->command_id);
    free(r->verdict_id);
    free(r->identity);
    free(r->secret_id);
    free(r->reason);
    memset(r, 0, sizeof *r);
}

bg_err bg_rb_drain(const char *bootstrap, const char *topic, int timeout_ms, bg_rb_msg **msgs,
                   size_t *n, char *errstr, size_t errstr_size) {
    char e[512];
    *msgs = NULL;
    *n = 0;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, e, sizeof e);
    rd_kafka_conf_set(conf, "group.id", "burstguard-readback", e, sizeof e);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", e, sizeof e);
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", e, sizeof e);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    if (!rk) {
        snprintf(errstr, errstr_size, "readback consumer: %s", e);
        return BG_ERR_KAFKA;
    }
    const rd_kafka_metadata_t *md;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    if (err || md->topic_cnt != 1 || md->topics[0].err) {
        snprintf(errstr, errstr_size, "metadata for %s: %s", topic,
                 rd_kafka_err2str(err ? err : md->topics[0].err));
        if (!err)
            rd_kafka_metadata_destroy(md);
        rd_kafka_destroy(rk);
        return BG_ERR_KAFKA;
    }
    int parts = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
    for (int p = 0; p < parts; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    int eofs = 0;
    size_t cap = 0;
    bg_err ret = BG_OK;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (eofs < parts) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms) {
            snprintf(errstr, errstr_size, "timed out reading %s", topic);
            ret = BG_ERR_KAFKA;
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eofs++;
        } else if (!m->err) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 64;
                bg_rb_msg *nm = realloc(*msgs, cap * sizeof *nm);
                if (!nm) {
                    rd_kafka_message_destroy(m);
                    ret = BG_ERR_NOMEM;
                    break;
                }
                *msgs = nm;
            }
            bg_rb_msg *o = &(*msgs)[(*n)++];
            memset(o, 0, sizeof *o);
            o->key = cdup(m->key ? m->key : "", m->key_len);
            o->key_len = m->key_len;
            o->value = cdup(m->payload ? m->payload : "", m->len);
            o->value_len = m->len;
            o->partition = m->partition;
            o->offset = m->offset;
            rd_kafka_headers_t *h;
            size_t hl = 0;
            char *hs = calloc(1, 1);
            if (!rd_kafka_message_headers(m, &h)) {
                const char *name;
                const void *val;
                size_t sz;
                for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &val, &sz); i++) {
                    size_t add = strlen(name) + sz + 2;
                    char *nh = hs ? realloc(hs, hl + add + 1) : NULL;
                    if (!nh)
                        break;
                    hs = nh;
                    hl += (size_t)sprintf(hs + hl, "%s=%.*s\n", name, (int)sz, (const char *)val);
                }
            }
            o->headers = hs;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return ret;
}

void bg_rb_msgs_free(bg_rb_msg *msgs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(msgs[i].key);
        free(msgs[i].value);
        free(msgs[i].headers);
    }
    free(msgs);
}

const char *bg_rb_header(const bg_rb_msg *m, const char *name) {
    static char buf[1024];
    size_t nl = strlen(name);
    for (const char *p = m->headers; p && *p;) {
        const char *eol = strchr(p, '\n');
        if (!eol)
            break;
        if ((size_t)(eol - p) > nl && !strncmp(p, name, nl) && p[nl] == '=') {
            size_t vl = (size_t)(eol - p) - nl - 1;
            if (vl >= sizeof buf)
                vl = sizeof buf - 1;
            memcpy(buf, p + nl + 1, vl);
            buf[vl] = 0;
            return buf;
        }
        p = eol + 1;
    }
    return NULL;
}
