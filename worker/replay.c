/* `burstguard replay` (see replay.h).
 *
 * Reading. One consumer, no group membership: every partition of the chosen
 * input topics is given to rd_kafka_assign() (never subscribe), with
 * enable.auto.commit=false and group.id "burstguard-replay" (never the live
 * group's), and nothing is ever committed or stored. Each partition starts at
 * rd_kafka_offsets_for_times(--from - SEEK_MARGIN); where the broker cannot
 * answer (error or offset -1, which is all that librdkafka 2.0.2's mock
 * cluster returns) it starts at the earliest offset and skips what precedes
 * --from: correct everywhere, only slower. A partition is finished at its
 * high watermark taken at the start, at the first record whose timestamp is
 * past --to + SEEK_MARGIN, or at end-of-partition.
 *
 * Time range. --from / --to select by the event's event_time (the engine's
 * time), both ends inclusive: a record whose event_time is outside [from, to]
 * is skipped. Record timestamps are used only to find where to start and
 * when to stop, with SEEK_MARGIN of slack for producers whose record
 * timestamp is not exactly the event time. Undecodable records carry no
 * event time; they count as dead letters when their record timestamp is in
 * the range.
 *
 * Merge. Partition p of the inputs is task p with its own engine. Because
 * the end of every input partition is known, the merge is exact: a task
 * applies the buffered record with the smallest event time among its
 * inputs' heads (ties: usage, then secrets, then tool calls — the live
 * pipeline's order) and waits for an input only while that input has
 * records left; the result does not depend on fetch timing. Inputs that run
 * ahead are paused so buffers stay bounded. The engine's tick (closing quiet
 * bursts) runs each time a task's events enter a new bucket, and once at the
 * end.
 *
 * Outputs. Verdicts and revocation commands are collected, sorted (verdicts
 * by decided_at, identity, window_start, phase, verdict_id; commands by
 * issued_at, identity, command_id) and written as JSON lines in the Avro
 * schema's field order, with replay: true and emitted_at = decided_at (for
 * commands there is no emitted_at), so two replays of the same range are
 * byte-identical. With --backtest-topic they are also produced, Avro in the
 * Confluent framing, to that topic (which must not be a live topic). Dead
 * letters are counted, never produced. */
#include "replay.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "../detectors/engine.h"
#include "cli.h"
#include "codec.h"
#include "config.h"
#include "envelopes.h"
#include "log.h"
#include "policy_load.h"
#include "registry.h"
#include "report.h"
#include "setup.h"

#define SEEK_MARGIN_MS (15 * 60000LL) /* record timestamp vs event time slack */
#define FIFO_PAUSE 20000              /* buffered records per input partition before a pause */
#define MAX_TASKS 4096
#define BATCH 1000
#define MAX_SERIES_IDS 200000 /* identities with a timeline */
#define SERIES_BUCKETS 400    /* at most, per identity */

static const bg_topic kind_topic[3] = {BG_TOPIC_USAGE, BG_TOPIC_SECRETS, BG_TOPIC_TOOLCALLS};
static const char *kind_word[3] = {"usage", "secrets", "toolcalls"};

typedef struct item {
    rd_kafka_message_t *m;
    bg_event ev;  /* views into m */
    int64_t t;    /* event time; INT64_MIN when undecodable */
    bg_err err;   /* BG_OK, or why it is a dead letter */
} item;

typedef struct stream {
    item *v;
    size_t head, len, cap;
    int64_t start, end; /* offsets: first to read, high watermark at start (exclusive) */
    bool used;          /* topic selected and partition non-empty */
    bool done;          /* nothing more will be buffered */
    bool paused;
} stream;

typedef struct task {
    bg_engine *engine;
    stream in[3];
    int64_t last_tick_bucket;
} task;

typedef struct out_line {
    int64_t k1;
    const char *k2;
    int64_t k3;
    int k4;
    char *id;
    char *json;
} out_line;

/* Per-identity rate series for the HTML timelines: open addressing on the
 * identity string. */
typedef struct series_map {
    bg_rp_series *v;
    size_t cap, n;
    int64_t t0, bucket_ms;
    size_t buckets;
    bool full;
} series_map;

typedef struct replay {
    const bg_config *cfg;
    const bg_policy *policy;
    bg_codec *codec;
    bg_registry *registry;
    rd_kafka_t *rk;
    rd_kafka_t *producer; /* --backtest-topic */
    const char *backtest_topic;
    int32_t n_tasks;
    task *tasks;
    bool kind_on[3];
    int64_t from, to;
    bg_outputs out;
    out_line *vl, *rl;
    size_t n_vl, cap_vl, n_rl, cap_rl;
    uint64_t events[3], skipped, deadletters, read, total;
    uint64_t produced;
    series_map series;
    bg_buf buf;
    const bg_envset *envs; /* the envelopes table's set */
    char fatal_why[512];
} replay;

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- JSON lines ---------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 1024;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}
static void sb_s(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_f(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_f(sbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}
static void sb_str(sbuf *b, const char *s) {
    if (!s) {
        sb_s(b, "null");
        return;
    }
    sb_s(b, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            char e[2] = {'\\', (char)*c};
            sb_put(b, e, 2);
        } else if (*c < 0x20) {
            sb_f(b, "\\u%04x", *c);
        } else {
            sb_put(b, (const char *)c, 1);
        }
    }
    sb_s(b, "\"");
}
static void sb_num(sbuf *b, double d) {
    if (!isfinite(d))
        sb_s(b, "null");
    else
        sb_f(b, "%.17g", d);
}
static void sb_list(sbuf *b, const char *const *v, uint32_t n) {
    sb_s(b, "[");
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            sb_s(b, ",");
        sb_str(b, v[i]);
    }
    sb_s(b, "]");
}

/* A verdict as one JSON line, in the Avro schema's field order. */
static void verdict_json(const replay *r, const bg_verdict *v, sbuf *b) {
    sb_s(b, "{\"verdict_id\":");
    sb_str(b, v->verdict_id);
    sb_s(b, ",\"identity\":");
    sb_str(b, v->identity);
    sb_s(b, ",\"owner\":");
    sb_str(b, v->owner);
    sb_s(b, ",\"workload_class\":");
    sb_str(b, v->workload_class);
    sb_f(b, ",\"classification\":\"%s\",\"phase\":\"%s\",\"action\":\"%s\",\"severity\":%d",
         bg_class_name(v->classification), bg_phase_name(v->phase), bg_action_name(v->action),
         (int)v->severity);
    sb_f(b, ",\"window_start\":%" PRId64 ",\"window_end\":%" PRId64 ",\"decided_at\":%" PRId64
            ",\"emitted_at\":%" PRId64,
         v->window_start, v->window_end, v->decided_at, v->decided_at);
    sb_s(b, ",\"reasons\":[");
    for (uint32_t i = 0; i < v->n_reasons && i < BG_MAX_REASONS; i++) {
        const bg_reason *x = &v->reasons[i];
        sb_s(b, i ? ",{\"code\":" : "{\"code\":");
        sb_str(b, x->code);
        sb_s(b, ",\"detector\":");
        sb_str(b, x->detector);
        sb_s(b, ",\"observed\":");
        sb_num(b, x->observed);
        sb_s(b, ",\"baseline\":");
        sb_num(b, x->baseline);
        sb_s(b, ",\"threshold\":");
        sb_num(b, x->threshold);
        sb_s(b, ",\"score\":");
        sb_num(b, x->score);
        sb_s(b, "}");
    }
    sb_s(b, "],\"envelope_id\":");
    sb_str(b, v->envelope_id);
    sb_s(b, ",\"new_secret_ids\":");
    sb_list(b, v->new_secret_ids, v->n_new_secret_ids < BG_MAX_LIST ? v->n_new_secret_ids : BG_MAX_LIST);
    sb_s(b, ",\"new_destinations\":");
    sb_list(b, v->new_destinations,
            v->n_new_destinations < BG_MAX_LIST ? v->n_new_destinations : BG_MAX_LIST);
    sb_s(b, ",\"review_routes\":");
    sb_list(b, v->review_routes, v->n_review_routes < BG_MAX_LIST ? v->n_review_routes : BG_MAX_LIST);
    sb_s(b, ",\"policy_version\":");
    sb_str(b, v->policy_version);
    sb_s(b, ",\"source\":[");
    for (uint32_t i = 0; i < v->n_source && i < BG_EV_KIND_COUNT; i++) {
        const bg_source_range *s = &v->source[i];
        sb_s(b, i ? ",{\"topic\":" : "{\"topic\":");
        sb_str(b, (unsigned)s->topic < 3 ? r->cfg->topics[kind_topic[s->topic]] : "?");
        sb_f(b, ",\"partition\":%d,\"first_offset\":%" PRId64 ",\"last_offset\":%" PRId64 "}",
             (int)s->partition, s->first_offset, s->last_offset);
    }
    sb_s(b, "],\"worker_version\":");
    sb_str(b, BG_VERSION);
    sb_s(b, ",\"replay\":true}");
}

static void revocation_json(const bg_revocation *c, bool dry_run, sbuf *b) {
    sb_s(b, "{\"command_id\":");
    sb_str(b, c->command_id);
    sb_s(b, ",\"verdict_id\":");
    sb_str(b, c->verdict_id);
    sb_s(b, ",\"identity\":");
    sb_str(b, c->identity);
    sb_f(b, ",\"target\":\"%s\",\"secret_id\":", bg_target_name(c->target));
    sb_str(b, c->secret_id);
    sb_s(b, ",\"reason\":");
    sb_str(b, c->reason);
    sb_f(b, ",\"issued_at\":%" PRId64 ",\"dry_run\":%s,\"key_id\":null,\"signature\":null}",
         c->issued_at, dry_run ? "true" : "false");
}

static bool add_line(out_line **v, size_t *n, size_t *cap, out_line l) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        out_line *nv = realloc(*v, nc * sizeof *nv);
        if (!nv)
            return false;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = l;
    return true;
}

static int cmp_line(const void *a, const void *b) {
    const out_line *x = a, *y = b;
    if (x->k1 != y->k1)
        return x->k1 < y->k1 ? -1 : 1;
    int c = strcmp(x->k2, y->k2);
    if (c)
        return c;
    if (x->k3 != y->k3)
        return x->k3 < y->k3 ? -1 : 1;
    if (x->k4 != y->k4)
        return x->k4 < y->k4 ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* Produce one framed output to the backtest topic. */
static bg_err produce_backtest(replay *r, const char *key, const char *record) {
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, "bg.record", -1, record, -1);
    for (int attempt = 0;; attempt++) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            r->producer, RD_KAFKA_V_TOPIC(r->backtest_topic), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE(r->buf.data, r->buf.len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        if (!err) {
            r->produced++;
            return BG_OK;
        }
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && attempt < 600) {
            rd_kafka_poll(r->producer, 100);
            continue;
        }
        rd_kafka_headers_destroy(h);
        snprintf(r->fatal_why, sizeof r->fatal_why, "cannot produce to %s: %s", r->backtest_topic,
                 rd_kafka_err2str(err));
        return BG_ERR_KAFKA;
    }
}

/* Take the engine's outputs: JSON lines kept for sorting, and the backtest topic. */
static bg_err collect(replay *r) {
    for (size_t i = 0; i < r->out.n_verdicts; i++) {
        const bg_verdict *v = &r->out.verdicts[i];
        sbuf b = {0};
        verdict_json(r, v, &b);
        char *ident = strdup(v->identity ? v->identity : "");
        char *id = strdup(v->verdict_id);
        if (b.oom || !ident || !id ||
            !add_line(&r->vl, &r->n_vl, &r->cap_vl,
                      (out_line){v->decided_at, ident, v->window_start, (int)v->phase, id, b.p})) {
            free(b.p);
            free(ident);
            free(id);
            return BG_ERR_NOMEM;
        }
        if (r->producer) {
            bg_emit_meta meta = {.emitted_at = v->decided_at,
                                 .worker_version = BG_VERSION,
                                 .replay = true,
                                 .topic_names = (const char *const[]){
                                     r->cfg->topics[BG_TOPIC_USAGE], r->cfg->topics[BG_TOPIC_SECRETS],
                                     r->cfg->topics[BG_TOPIC_TOOLCALLS],
                                     r->cfg->topics[BG_TOPIC_ENVELOPES]}};
            bg_err err = bg_codec_encode_verdict(r->codec, v, &meta, &r->buf);
            if (!err)
                err = produce_backtest(r, v->identity, "verdict");
            if (err)
                return err;
        }
    }
    for (size_t i = 0; i < r->out.n_revocations; i++) {
        bg_revocation c = r->out.revocations[i];
        if (r->cfg->dry_run)
            c.dry_run = true;
        sbuf b = {0};
        revocation_json(&c, c.dry_run, &b);
        char *ident = strdup(c.identity ? c.identity : "");
        char *id = strdup(c.command_id);
        if (b.oom || !ident || !id ||
            !add_line(&r->rl, &r->n_rl, &r->cap_rl, (out_line){c.issued_at, ident, 0, 0, id, b.p})) {
            free(b.p);
            free(ident);
            free(id);
            return BG_ERR_NOMEM;
        }
        if (r->producer) {
            bg_emit_meta meta = {.emitted_at = c.issued_at, .worker_version = BG_VERSION,
                                 .replay = true};
            bg_err err = bg_codec_encode_revocation(r->codec, &c, &meta, &r->buf);
            if (!err)
                err = produce_backtest(r, c.identity, "revocation");
            if (err)
                return err;
        }
    }
    bg_outputs_reset(&r->out);
    return BG_OK;
}

/* ---- timelines ----------------------------------------------------------------- */

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static void series_note(series_map *m, const bg_event *ev) {
    if (ev->event_time < m->t0 || !ev->identity.ptr)
        return;
    size_t b = (size_t)((ev->event_time - m->t0) / m->bucket_ms);
    if (b >= m->buckets)
        return;
    if (m->n * 2 >= m->cap) {
        if (m->full)
            goto find_only;
        size_t nc = m->cap ? m->cap * 2 : 1024;
        bg_rp_series *nv = calloc(nc, sizeof *nv);
        if (!nv) {
            m->full = true;
            goto find_only;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->v[i].identity)
                continue;
            size_t j = (size_t)(fnv(m->v[i].identity, strlen(m->v[i].identity)) & (nc - 1));
            while (nv[j].identity)
                j = (j + 1) & (nc - 1);
            nv[j] = m->v[i];
        }
        free(m->v);
        m->v = nv;
        m->cap = nc;
    }
find_only:;
    size_t j = (size_t)(fnv(ev->identity.ptr, ev->identity.len) & (m->cap - 1));
    while (m->v[j].identity) {
        if (strlen(m->v[j].identity) == ev->identity.len &&
            !memcmp(m->v[j].identity, ev->identity.ptr, ev->identity.len))
            break;
        j = (j + 1) & (m->cap - 1);
    }
    bg_rp_series *s = &m->v[j];
    if (!s->identity) {
        if (m->full || m->n >= MAX_SERIES_IDS || m->n * 2 >= m->cap)
            return;
        s->identity = strndup(ev->identity.ptr, ev->identity.len);
        s->rate = calloc(m->buckets, sizeof *s->rate);
        if (!s->identity || !s->rate) {
            free(s->identity);
            free(s->rate);
            memset(s, 0, sizeof *s);
            m->full = true;
            return;
        }
        s->t0 = m->t0;
        s->bucket_ms = m->bucket_ms;
        s->n = m->buckets;
        m->n++;
    }
    double add = ev->kind == BG_EV_USAGE ? (double)ev->u.usage.api_calls
                 : ev->kind == BG_EV_TOOLCALL ? 1.0 : 0.0;
    s->rate[b] += add;
}

/* ---- reading ------------------------------------------------------------------- */

static int kind_of(const replay *r, const char *topic) {
    for (int k = 0; k < 3; k++)
        if (r->kind_on[k] && !strcmp(topic, r->cfg->topics[kind_topic[k]]))
            return k;
    return -1;
}

static void pause_one(replay *r, int kind, int32_t part, bool pause) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, r->cfg->topics[kind_topic[kind]], part);
    if (pause)
        rd_kafka_pause_partitions(r->rk, l);
    else
        rd_kafka_resume_partitions(r->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

static void finish(replay *r, stream *s, int kind, int32_t part) {
    if (s->done)
        return;
    s->done = true;
    if (!s->paused) {
        pause_one(r, kind, part, true); /* stop fetching what we will not use */
        s->paused = true;
    }
}

static bool push(stream *s, const item *it) {
    if (s->len == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        item *nv = malloc(nc * sizeof *nv);
        if (!nv)
            return false;
        for (size_t i = 0; i < s->len; i++)
            nv[i] = s->v[(s->head + i) % s->cap];
        free(s->v);
        s->v = nv;
        s->head = 0;
        s->cap = nc;
    }
    s->v[(s->head + s->len++) % s->cap] = *it;
    return true;
}

static bool key_matches(const rd_kafka_message_t *m, bg_str identity) {
    return m->key && m->key_len == identity.len && memcmp(m->key, identity.ptr, identity.len) == 0;
}

/* Decode one record and buffer it for its task's merge, or drop it (outside
 * the range, beyond the end). */
static bg_err route(replay *r, rd_kafka_message_t *m) {
    if (m->err) {
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            int k = kind_of(r, rd_kafka_topic_name(m->rkt));
            if (k >= 0 && m->partition >= 0 && m->partition < r->n_tasks)
                finish(r, &r->tasks[m->partition].in[k], k, m->partition);
        } else {
            bg_warn("consumer: %s", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
        return BG_OK;
    }
    int k = kind_of(r, rd_kafka_topic_name(m->rkt));
    if (k < 0 || m->partition < 0 || m->partition >= r->n_tasks) {
        rd_kafka_message_destroy(m);
        return BG_OK;
    }
    stream *s = &r->tasks[m->partition].in[k];
    if (s->done || m->offset >= s->end) {
        finish(r, s, k, m->partition);
        rd_kafka_message_destroy(m);
        return BG_OK;
    }
    r->read++;
    if (m->offset + 1 >= s->end)
        finish(r, s, k, m->partition);
    int64_t ts = rd_kafka_message_timestamp(m, NULL);
    if (ts > r->to + SEEK_MARGIN_MS) {
        finish(r, s, k, m->partition);
        rd_kafka_message_destroy(m);
        return BG_OK;
    }
    if (ts >= 0 && ts < r->from - SEEK_MARGIN_MS) {
        r->skipped++; /* the earliest-offset fallback: before the range */
        rd_kafka_message_destroy(m);
        return BG_OK;
    }
    item it = {.m = m, .t = INT64_MIN};
    char why[256];
    int32_t id;
    if (r->registry && !bg_codec_frame_id(m->payload, m->len, &id) &&
        !bg_codec_has_schema(r->codec, id)) {
        bg_err e = bg_registry_resolve(r->registry, r->codec, id, &stop_flag, why, sizeof why);
        if (e && e != BG_ERR_UNKNOWN_SCHEMA && e != BG_ERR_SCHEMA) {
            snprintf(r->fatal_why, sizeof r->fatal_why, "schema id %d: %s", (int)id, why);
            rd_kafka_message_destroy(m);
            return e;
        }
    }
    it.err = bg_codec_decode_event(r->codec, (bg_event_kind)k, m->payload, m->len, &it.ev, why,
                                   sizeof why);
    if (!it.err && !m->key)
        it.err = BG_ERR_NO_KEY;
    else if (!it.err && !key_matches(m, it.ev.identity))
        it.err = BG_ERR_KEY_MISMATCH;
    if (!it.err) {
        if (it.ev.event_time < r->from || it.ev.event_time > r->to) {
            r->skipped++;
            rd_kafka_message_destroy(m);
            return BG_OK;
        }
        it.t = it.ev.event_time;
    } else if (ts >= 0 && (ts < r->from || ts > r->to)) {
        r->skipped++;
        rd_kafka_message_destroy(m);
        return BG_OK;
    }
    if (!push(s, &it)) {
        rd_kafka_message_destroy(m);
        snprintf(r->fatal_why, sizeof r->fatal_why, "buffering input: out of memory");
        return BG_ERR_NOMEM;
    }
    if (!s->paused && s->len >= FIFO_PAUSE) {
        pause_one(r, k, m->partition, true);
        s->paused = true;
    }
    return BG_OK;
}

/* The exact merge of one task (see the file header). */
static bg_err drain(replay *r, int32_t p) {
    task *t = &r->tasks[p];
    for (;;) {
        int best = -1;
        for (int k = 0; k < 3; k++) {
            stream *s = &t->in[k];
            if (!s->used)
                continue;
            if (s->len == 0) {
                if (!s->done)
                    return BG_OK; /* it has records left: wait for them */
                continue;
            }
            if (best < 0 || s->v[s->head].t < t->in[best].v[t->in[best].head].t)
                best = k;
        }
        if (best < 0)
            return BG_OK;
        stream *s = &t->in[best];
        item it = s->v[s->head];
        s->head = (s->head + 1) % s->cap;
        s->len--;
        if (s->paused && !s->done && s->len < FIFO_PAUSE / 2) {
            pause_one(r, best, p, false);
            s->paused = false;
        }
        bg_err err = it.err;
        if (!err) {
            if (!t->engine) {
                err = bg_engine_new(r->policy, p, &t->engine);
                if (err) {
                    rd_kafka_message_destroy(it.m);
                    snprintf(r->fatal_why, sizeof r->fatal_why, "engine of task %d: %s", (int)p,
                             bg_err_str(err));
                    return err;
                }
                bg_engine_set_envelopes(t->engine, r->envs);
            }
            err = bg_engine_observe(t->engine, &it.ev, it.m->offset, &r->out);
            if (!err) {
                r->events[best]++;
                series_note(&r->series, &it.ev);
                int64_t bucket = it.t / r->policy->bucket_ms;
                if (bucket != t->last_tick_bucket) {
                    t->last_tick_bucket = bucket;
                    err = bg_engine_tick(t->engine, &r->out);
                }
            } else if (err != BG_ERR_NOMEM) {
                err = BG_ERR_INVALID; /* the engine refused it: a dead letter */
            }
            if (err == BG_ERR_NOMEM) {
                rd_kafka_message_destroy(it.m);
                snprintf(r->fatal_why, sizeof r->fatal_why, "engine: out of memory");
                return err;
            }
        }
        if (err) {
            r->deadletters++;
            bg_debug("replay dead letter %s[%d]@%" PRId64 ": %s", rd_kafka_topic_name(it.m->rkt),
                     (int)p, it.m->offset, bg_err_str(err));
        }
        rd_kafka_message_destroy(it.m);
        if (r->out.n_verdicts || r->out.n_revocations) {
            bg_err cerr = collect(r);
            if (cerr) {
                if (!r->fatal_why[0])
                    snprintf(r->fatal_why, sizeof r->fatal_why, "collecting outputs: %s",
                             bg_err_str(cerr));
                return cerr;
            }
        }
    }
}

static bool all_done(const replay *r) {
    for (int32_t p = 0; p < r->n_tasks; p++)
        for (int k = 0; k < 3; k++) {
            const stream *s = &r->tasks[p].in[k];
            if (s->used && (!s->done || s->len))
                return false;
        }
    return true;
}

static void progress(const replay *r, double t0, bool last) {
    double dt = mono_s() - t0;
    fprintf(stderr, "\rreplay: %" PRIu64 " / %" PRIu64 " records read, %.0f records/s   %s",
            r->read, r->total, dt > 0 ? (double)r->read / dt : 0.0, last ? "\n" : "");
    fflush(stderr);
}

static void envelope_rejected(void *opaque, const rd_kafka_message_t *m, bg_err reason,
                              const char *why) {
    replay *r = opaque;
    (void)m;
    (void)reason;
    (void)why;
    r->deadletters++;
}

/* Metadata, watermarks and start offsets; assign everything. */
static bg_err assign_all(replay *r, char *errstr, size_t n) {
    int32_t parts = -1;
    for (int k = 0; k < 3; k++) {
        if (!r->kind_on[k])
            continue;
        const char *topic = r->cfg->topics[kind_topic[k]];
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(r->rk, topic, NULL);
        const rd_kafka_metadata_t *md;
        rd_kafka_resp_err_t err = rd_kafka_metadata(r->rk, 0, rkt, &md, 10000);
        rd_kafka_topic_destroy(rkt);
        if (err) {
            snprintf(errstr, n, "metadata for %s: %s", topic, rd_kafka_err2str(err));
            return BG_ERR_KAFKA;
        }
        int32_t pc = md->topic_cnt == 1 && !md->topics[0].err ? md->topics[0].partition_cnt : -1;
        rd_kafka_resp_err_t terr = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        rd_kafka_metadata_destroy(md);
        if (pc <= 0) {
            snprintf(errstr, n, "input topic %s: %s", topic, rd_kafka_err2str(terr));
            return BG_ERR_KAFKA;
        }
        if (parts >= 0 && pc != parts) {
            snprintf(errstr, n,
                     "input topics are not co-partitioned: %s has %d partitions, expected %d",
                     topic, (int)pc, (int)parts);
            return BG_ERR_CONFIG;
        }
        parts = pc;
    }
    if (parts > MAX_TASKS) {
        snprintf(errstr, n, "input topics have %d partitions, more than %d", (int)parts, MAX_TASKS);
        return BG_ERR_KAFKA;
    }
    r->n_tasks = parts;
    r->tasks = calloc((size_t)parts, sizeof *r->tasks);
    if (!r->tasks)
        return BG_ERR_NOMEM;
    rd_kafka_topic_partition_list_t *q = rd_kafka_topic_partition_list_new(parts * 3);
    for (int k = 0; k < 3; k++)
        if (r->kind_on[k])
            for (int32_t p = 0; p < parts; p++)
                rd_kafka_topic_partition_list_add(q, r->cfg->topics[kind_topic[k]], p)->offset =
                    r->from - SEEK_MARGIN_MS;
    rd_kafka_resp_err_t oerr = rd_kafka_offsets_for_times(r->rk, q, 10000);
    if (oerr)
        bg_info("offsets for --from unavailable (%s): reading from the earliest offsets",
                rd_kafka_err2str(oerr));
    rd_kafka_topic_partition_list_t *a = rd_kafka_topic_partition_list_new(parts * 3);
    int fallback = 0;
    for (int i = 0; i < q->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &q->elems[i];
        int k = kind_of(r, tp->topic);
        stream *s = &r->tasks[tp->partition].in[k];
        int64_t lo, hi;
        rd_kafka_resp_err_t werr =
            rd_kafka_query_watermark_offsets(r->rk, tp->topic, tp->partition, &lo, &hi, 10000);
        if (werr) {
            snprintf(errstr, n, "watermarks of %s[%d]: %s", tp->topic, (int)tp->partition,
                     rd_kafka_err2str(werr));
            rd_kafka_topic_partition_list_destroy(q);
            rd_kafka_topic_partition_list_destroy(a);
            return BG_ERR_KAFKA;
        }
        int64_t start = (!oerr && !tp->err && tp->offset >= 0) ? tp->offset : lo;
        if (oerr || tp->err || tp->offset < 0)
            fallback++;
        if (start < lo)
            start = lo;
        s->start = start;
        s->end = hi;
        r->tasks[tp->partition].last_tick_bucket = INT64_MIN;
        if (start >= hi) {
            s->done = true;
            continue;
        }
        s->used = true;
        r->total += (uint64_t)(hi - start);
        rd_kafka_topic_partition_list_add(a, tp->topic, tp->partition)->offset = start;
    }
    if (fallback)
        bg_info("%d partition(s) without a time index answer: reading them from the earliest "
                "offset and skipping records before --from",
                fallback);
    rd_kafka_resp_err_t aerr = rd_kafka_assign(r->rk, a);
    rd_kafka_topic_partition_list_destroy(q);
    rd_kafka_topic_partition_list_destroy(a);
    if (aerr) {
        snprintf(errstr, n, "assign: %s", rd_kafka_err2str(aerr));
        return BG_ERR_KAFKA;
    }
    return BG_OK;
}

static rd_kafka_conf_t *base_conf(const bg_config *cfg) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char e[512];
    for (size_t i = 0; i < cfg->n_kafka; i++) {
        const char *k = cfg->kafka[i].key;
        if (!strcmp(k, "bootstrap.servers") || !strncmp(k, "security.", 9) ||
            !strncmp(k, "sasl.", 5) || !strncmp(k, "ssl.", 4) || !strcmp(k, "client.id"))
            rd_kafka_conf_set(conf, k, cfg->kafka[i].value, e, sizeof e);
    }
    return conf;
}

static bg_err run_replay(replay *r, char *errstr, size_t n) {
    char e[512];
    rd_kafka_conf_t *conf = base_conf(r->cfg);
    /* a group id of its own, only because librdkafka wants one for a
     * consumer; assign() never joins it and nothing is committed */
    rd_kafka_conf_set(conf, "group.id", "burstguard-replay", e, sizeof e);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", e, sizeof e);
    rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", e, sizeof e);
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", e, sizeof e);
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", e, sizeof e);
    rd_kafka_conf_set(conf, "queued.min.messages", "200000", e, sizeof e);
    const char *iso = bg_config_kafka(r->cfg, "isolation.level");
    if (iso)
        rd_kafka_conf_set(conf, "isolation.level", iso, e, sizeof e);
    r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    if (!r->rk) {
        snprintf(errstr, n, "replay consumer: %s", e);
        return BG_ERR_KAFKA;
    }
    rd_kafka_poll_set_consumer(r->rk);
    if (r->backtest_topic) {
        rd_kafka_conf_t *pc = base_conf(r->cfg);
        rd_kafka_conf_set(pc, "enable.idempotence", "true", e, sizeof e);
        rd_kafka_conf_set(pc, "partitioner", "murmur2_random", e, sizeof e);
        rd_kafka_conf_set(pc, "linger.ms", "5", e, sizeof e);
        r->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, e, sizeof e);
        if (!r->producer) {
            snprintf(errstr, n, "backtest producer: %s", e);
            return BG_ERR_KAFKA;
        }
    }
    bg_err err = assign_all(r, errstr, n);
    if (err)
        return err;
    bool tty = isatty(2);
    double t0 = mono_s(), shown = 0;
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(r->rk);
    rd_kafka_message_t *msgs[BATCH];
    while (!all_done(r)) {
        if (stop_flag) {
            rd_kafka_queue_destroy(q);
            snprintf(errstr, n, "interrupted: outputs not written");
            return BG_ERR_KAFKA;
        }
        ssize_t got = rd_kafka_consume_batch_queue(q, 100, msgs, BATCH);
        for (ssize_t i = 0; i < got; i++) {
            if (err) {
                rd_kafka_message_destroy(msgs[i]);
                continue;
            }
            err = route(r, msgs[i]);
        }
        for (int32_t p = 0; p < r->n_tasks && !err; p++)
            err = drain(r, p);
        if (err) {
            rd_kafka_queue_destroy(q);
            snprintf(errstr, n, "%s", r->fatal_why[0] ? r->fatal_why : bg_err_str(err));
            return err;
        }
        if (tty && mono_s() - shown > 0.25) {
            progress(r, t0, false);
            shown = mono_s();
        }
    }
    rd_kafka_queue_destroy(q);
    for (int32_t p = 0; p < r->n_tasks && !err; p++)
        if (r->tasks[p].engine)
            err = bg_engine_tick(r->tasks[p].engine, &r->out);
    if (!err)
        err = collect(r);
    if (tty)
        progress(r, t0, true);
    if (err) {
        snprintf(errstr, n, "%s", r->fatal_why[0] ? r->fatal_why : bg_err_str(err));
        return err;
    }
    if (r->producer && rd_kafka_flush(r->producer, 30000)) {
        snprintf(errstr, n, "backtest topic %s: %d output(s) not delivered", r->backtest_topic,
                 rd_kafka_outq_len(r->producer));
        return BG_ERR_KAFKA;
    }
    return BG_OK;
}

static bg_err write_lines(const char *dir, const char *name, out_line *v, size_t nv, char *errstr,
                          size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(errstr, n, "cannot write %.900s: %s", path, strerror(errno));
        return BG_ERR_IO;
    }
    if (nv)
        qsort(v, nv, sizeof *v, cmp_line);
    for (size_t i = 0; i < nv; i++) {
        fputs(v[i].json, f);
        fputc('\n', f);
    }
    if (fclose(f)) {
        snprintf(errstr, n, "cannot write %.900s: %s", path, strerror(errno));
        return BG_ERR_IO;
    }
    return BG_OK;
}

static void free_lines(out_line *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free((char *)v[i].k2);
        free(v[i].id);
        free(v[i].json);
    }
    free(v);
}

/* ---- CLI ----------------------------------------------------------------------- */

static const char *usage_text =
    "usage: burstguard replay --config FILE --from TIME --to TIME --out DIR [--policy FILE]\n"
    "         [--topics usage,secrets,toolcalls] [--labels FILE] [--compare OTHER_DIR]\n"
    "         [--backtest-topic NAME] [--brokers LIST] [--set key=value]...\n"
    "TIME: ISO-8601 (2026-11-30T00:00:00Z, seconds and fraction optional, Z or +hh:mm) or epoch ms;\n"
    "the range is inclusive and compares with each event's event_time.";

static int mkdir_p(const char *dir) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) && errno != EEXIST)
                return -1;
            *p = '/';
        }
    if (mkdir(tmp, 0755) && errno != EEXIST)
        return -1;
    return 0;
}

int bg_replay_main(int argc, char **argv) {
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"from", required_argument, NULL, 'f'},
                                         {"to", required_argument, NULL, 't'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"policy", required_argument, NULL, 'p'},
                                         {"topics", required_argument, NULL, 'T'},
                                         {"labels", required_argument, NULL, 'l'},
                                         {"compare", required_argument, NULL, 'C'},
                                         {"backtest-topic", required_argument, NULL, 'B'},
                                         {"brokers", required_argument, NULL, 'b'},
                                         {"set", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *from_s = NULL, *to_s = NULL, *outdir = NULL, *policy_path = NULL,
               *topics = NULL, *labels_path = NULL, *compare = NULL, *backtest = NULL;
    const char *sets[BG_CLI_MAX_SETS];
    size_t n_sets = 0;
    char brokers_set[1024];
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "c:f:t:o:p:T:l:C:B:b:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'f': from_s = optarg; break;
        case 't': to_s = optarg; break;
        case 'o': outdir = optarg; break;
        case 'p': policy_path = optarg; break;
        case 'T': topics = optarg; break;
        case 'l': labels_path = optarg; break;
        case 'C': compare = optarg; break;
        case 'B': backtest = optarg; break;
        case 'b':
        case 's':
            if (n_sets == BG_CLI_MAX_SETS)
                return bg_cli_usage_error("replay: too many --set options");
            if (c == 'b') {
                snprintf(brokers_set, sizeof brokers_set, "kafka.bootstrap.servers=%s", optarg);
                sets[n_sets++] = brokers_set;
            } else {
                sets[n_sets++] = optarg;
            }
            break;
        case 'h':
            printf("%s\n", usage_text);
            return 0;
        default:
            return bg_cli_usage_error("replay: unknown option or missing value '%s' (see "
                                      "burstguard replay --help)",
                                      argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bg_cli_usage_error("replay: unexpected argument '%s'", argv[optind]);
    if (!config)
        return bg_cli_usage_error("replay: --config FILE is required");
    if (!from_s || !to_s)
        return bg_cli_usage_error("replay: --from TIME and --to TIME are required");
    if (!outdir || !*outdir)
        return bg_cli_usage_error("replay: --out DIR is required");
    replay r;
    memset(&r, 0, sizeof r);
    if (bg_time_parse(from_s, &r.from))
        return bg_cli_usage_error("replay: --from: not a time (ISO-8601 or epoch ms): '%s'", from_s);
    if (bg_time_parse(to_s, &r.to))
        return bg_cli_usage_error("replay: --to: not a time (ISO-8601 or epoch ms): '%s'", to_s);
    if (r.from > r.to)
        return bg_cli_usage_error("replay: --from (%s) is after --to (%s)", from_s, to_s);
    if (!topics) {
        r.kind_on[0] = r.kind_on[1] = r.kind_on[2] = true;
    } else {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s", topics);
        char *save = NULL;
        for (char *w = strtok_r(tmp, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
            int k = -1;
            for (int i = 0; i < 3; i++)
                if (!strcmp(w, kind_word[i]))
                    k = i;
            if (k < 0)
                return bg_cli_usage_error("replay: --topics: '%s' is not usage, secrets or toolcalls",
                                          w);
            r.kind_on[k] = true;
        }
        if (!r.kind_on[0] && !r.kind_on[1] && !r.kind_on[2])
            return bg_cli_usage_error("replay: --topics names no input");
    }
    char errstr[1024];
    bg_config cfg;
    bg_err err = bg_config_load(config, sets, n_sets, &cfg, errstr, sizeof errstr);
    if (err) {
        fprintf(stderr, "burstguard: %s\n", errstr);
        return 2;
    }
    if (backtest) {
        static const bg_topic live[] = {BG_TOPIC_VERDICTS, BG_TOPIC_REVOCATIONS, BG_TOPIC_DEADLETTER,
                                        BG_TOPIC_STATE, BG_TOPIC_ENVELOPES, BG_TOPIC_USAGE,
                                        BG_TOPIC_SECRETS, BG_TOPIC_TOOLCALLS};
        for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
            if (!strcmp(backtest, cfg.topics[live[i]]) || !strcmp(backtest, bg_topic_defaults[live[i]])) {
                bg_config_free(&cfg);
                return bg_cli_usage_error("replay: --backtest-topic '%s' is a live topic; name a "
                                          "topic of its own",
                                          backtest);
            }
        if (!*backtest) {
            bg_config_free(&cfg);
            return bg_cli_usage_error("replay: --backtest-topic needs a name");
        }
    }
    bg_label *labels = NULL;
    size_t n_labels = 0;
    if (labels_path && bg_labels_load(labels_path, &labels, &n_labels, errstr, sizeof errstr)) {
        bg_config_free(&cfg);
        fprintf(stderr, "burstguard: replay: %s\n", errstr);
        return 2;
    }
    bg_rp_set other = {0};
    if (compare && bg_rp_load(compare, &other, errstr, sizeof errstr)) {
        bg_labels_free(labels, n_labels);
        bg_config_free(&cfg);
        fprintf(stderr, "burstguard: replay: --compare: %s\n", errstr);
        return 2;
    }
    if (mkdir_p(outdir)) {
        fprintf(stderr, "burstguard: replay: cannot create --out '%s': %s\n", outdir,
                strerror(errno));
        bg_rp_set_free(&other);
        bg_labels_free(labels, n_labels);
        bg_config_free(&cfg);
        return 2;
    }
    bg_policy policy;
    err = policy_path ? bg_policy_load(policy_path, &policy, errstr, sizeof errstr)
                      : bg_setup_policy(&cfg, &policy, errstr, sizeof errstr);
    if (err) {
        fprintf(stderr, "burstguard: %s\n", errstr);
        bg_rp_set_free(&other);
        bg_labels_free(labels, n_labels);
        bg_config_free(&cfg);
        return 2;
    }
    int rc = 1;
    bg_envtable *envs = NULL;
    err = bg_setup_codec(&cfg, &r.codec, errstr, sizeof errstr);
    if (!err)
        err = bg_registry_from_config(&cfg, &r.registry, errstr, sizeof errstr);
    if (err) {
        rc = err == BG_ERR_CONFIG || err == BG_ERR_SCHEMA || err == BG_ERR_IO ? 2 : 1;
        fprintf(stderr, "burstguard: %s\n", errstr);
        goto out;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    r.cfg = &cfg;
    r.policy = &policy;
    r.backtest_topic = backtest;
    bg_outputs_init(&r.out);
    /* timelines: SERIES_BUCKETS at most, each a whole number of engine buckets */
    int64_t span = r.to - r.from + 1, bms = policy.bucket_ms > 0 ? policy.bucket_ms : 60000;
    int64_t per = (span / bms + SERIES_BUCKETS - 1) / SERIES_BUCKETS;
    r.series.bucket_ms = bms * (per < 1 ? 1 : per);
    r.series.t0 = r.from - (r.from % bms + bms) % bms;
    r.series.buckets = (size_t)((r.to - r.series.t0) / r.series.bucket_ms + 1);
    if (r.series.buckets > SERIES_BUCKETS + 2)
        r.series.buckets = SERIES_BUCKETS + 2;
    /* envelopes, read in full, as the worker does */
    err = bg_envtable_new(&cfg, r.codec, envelope_rejected, &r, &envs, errstr, sizeof errstr);
    if (!err) {
        bg_envtable_set_policy(envs, &policy);
        err = bg_envtable_sync(envs, 10000, errstr, sizeof errstr);
    }
    if (err) {
        fprintf(stderr, "burstguard: replay: %s\n", errstr);
        goto out;
    }
    bg_info("replay %s .. %s (event time, inclusive), policy %s", from_s, to_s, policy.version);
    r.envs = bg_envtable_set(envs);
    err = run_replay(&r, errstr, sizeof errstr);
    if (err) {
        fprintf(stderr, "burstguard: replay: %s\n", errstr);
        rc = err == BG_ERR_CONFIG ? 2 : 1;
        goto out;
    }
    if (write_lines(outdir, "verdicts.jsonl", r.vl, r.n_vl, errstr, sizeof errstr) ||
        write_lines(outdir, "revocations.jsonl", r.rl, r.n_rl, errstr, sizeof errstr)) {
        fprintf(stderr, "burstguard: replay: %s\n", errstr);
        goto out;
    }
    bg_rp_set mine = {0};
    if (bg_rp_load(outdir, &mine, errstr, sizeof errstr)) {
        fprintf(stderr, "burstguard: replay: reading back: %s\n", errstr);
        goto out;
    }
    bg_rp_series *ser = calloc(r.series.n ? r.series.n : 1, sizeof *ser);
    size_t ns = 0;
    for (size_t i = 0; ser && i < r.series.cap; i++)
        if (r.series.v[i].identity)
            ser[ns++] = r.series.v[i];
    bg_report_in in = {.dir = outdir,
                       .set = &mine,
                       .labels = labels,
                       .n_labels = n_labels,
                       .from = r.from,
                       .to = r.to,
                       .policy_version = policy.version,
                       .events = {r.events[0], r.events[1], r.events[2]},
                       .skipped_out_of_range = r.skipped,
                       .deadletters = r.deadletters,
                       .series = ser,
                       .n_series = ns};
    err = bg_report_write(&in, errstr, sizeof errstr);
    free(ser);
    if (!err && !compare) { /* no stale diff from an earlier run into the same DIR */
        char path[4096];
        snprintf(path, sizeof path, "%s/compare.txt", outdir);
        unlink(path);
    }
    if (!err && compare) {
        char path[4096];
        snprintf(path, sizeof path, "%s/compare.txt", outdir);
        FILE *f = fopen(path, "w");
        if (!f) {
            snprintf(errstr, sizeof errstr, "cannot write %.900s: %s", path, strerror(errno));
            err = BG_ERR_IO;
        } else {
            err = bg_report_compare(&mine, &other, outdir, compare, f, NULL);
            if (fclose(f) && !err) {
                snprintf(errstr, sizeof errstr, "cannot write %.900s", path);
                err = BG_ERR_IO;
            }
        }
    }
    bg_rp_set_free(&mine);
    if (err) {
        fprintf(stderr, "burstguard: replay: %s\n", errstr);
        goto out;
    }
    printf("replay: %" PRIu64 " usage, %" PRIu64 " secrets, %" PRIu64
           " tool calls applied; %" PRIu64 " outside the range; %" PRIu64
           " dead letters; %zu verdicts, %zu revocations -> %s\n",
           r.events[0], r.events[1], r.events[2], r.skipped, r.deadletters, r.n_vl, r.n_rl, outdir);
    rc = 0;
out:
    bg_envtable_free(envs);
    if (r.tasks) {
        for (int32_t p = 0; p < r.n_tasks; p++)
            for (int k = 0; k < 3; k++) {
                stream *s = &r.tasks[p].in[k];
                for (size_t i = 0; i < s->len; i++)
                    rd_kafka_message_destroy(s->v[(s->head + i) % s->cap].m);
                free(s->v);
            }
    }
    if (r.rk) {
        rd_kafka_consumer_close(r.rk);
        rd_kafka_destroy(r.rk);
    }
    if (r.producer)
        rd_kafka_destroy(r.producer);
    if (r.tasks)
        for (int32_t p = 0; p < r.n_tasks; p++)
            bg_engine_free(r.tasks[p].engine);
    free(r.tasks);
    for (size_t i = 0; i < r.series.cap; i++) {
        free(r.series.v[i].identity);
        free(r.series.v[i].rate);
    }
    free(r.series.v);
    free_lines(r.vl, r.n_vl);
    free_lines(r.rl, r.n_rl);
    bg_outputs_free(&r.out);
    bg_buf_free(&r.buf);
    bg_registry_free(r.registry);
    bg_codec_free(r.codec);
    bg_policy_free(&policy);
    bg_rp_set_free(&other);
    bg_labels_free(labels, n_labels);
    bg_config_free(&cfg);
    return rc;
}
