/* Shared by the state / exactly-once / group tests: a labeled stream built
 * from plain events, worker processes, and the verdicts and revocation
 * commands read back, deduplicated on verdict_id / command_id. */
#ifndef BG_TEST_STATE_COMMON_H
#define BG_TEST_STATE_COMMON_H

#include "harness.h"

#define S_T0 1795996800000LL
#define S_MIN 60000LL

static const char *const s_policy_yaml __attribute__((unused)) =
    "windows: {bucket: 60s, correlation: 15m, learning_period: 1h}\n"
    "classes:\n"
    "  - name: svc\n"
    "    match: {identity_prefix: \"spiffe://t/svc/\"}\n"
    "    limits: {api_calls_per_min: 100}\n"
    "    unexpected_action: THROTTLE\n"
    "    review_routes: [platform]\n";

static inline bg_event s_usage(const char *who, double at_min, const char *dest, int calls,
                               char *idbuf) {
    snprintf(idbuf, 64, "u-%.24s-%.2f-%.16s", who + 15, at_min, dest);
    return h_usage_event(idbuf, who, "team-t", S_T0 + (int64_t)(at_min * (double)S_MIN), dest,
                         calls);
}

static inline bg_event s_secret(const char *who, double at_min, const char *id) {
    return h_secret_event(id, who, S_T0 + (int64_t)(at_min * (double)S_MIN), id);
}

/* A producer that reconnects quickly after an outage. */
static inline rd_kafka_t *s_producer(const char *bootstrap) {
    char e[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, e, sizeof e);
    rd_kafka_conf_set(c, "partitioner", "murmur2_random", e, sizeof e);
    rd_kafka_conf_set(c, "linger.ms", "5", e, sizeof e);
    rd_kafka_conf_set(c, "enable.idempotence", "true", e, sizeof e);
    rd_kafka_conf_set(c, "reconnect.backoff.max.ms", "500", e, sizeof e);
    return rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof e);
}

/* Topic names are prefixed with this (the real-broker test uses fresh topics). */
static char s_prefix[64] __attribute__((unused));

static inline int s_produce_event(rd_kafka_t *p, bg_codec *c, int32_t id, const bg_event *ev) {
    static const char *topics[] = {"nhi.usage.v1", "nhi.secrets.v1", "nhi.toolcalls.v1"};
    char topic[128];
    snprintf(topic, sizeof topic, "%s%s", s_prefix, topics[ev->kind]);
    bg_buf b = {0};
    if (bg_codec_encode_event(c, id, ev, &b))
        return -1;
    int r = h_produce(p, topic, ev->identity.ptr, ev->identity.len, b.data, b.len);
    bg_buf_free(&b);
    return r;
}

static inline const char *s_ident(int i) {
    static char names[256][48];
    snprintf(names[i & 255], sizeof names[0], "spiffe://t/svc/id-%03d", i);
    return names[i & 255];
}

/* Phases of the labeled stream, for n identities:
 *  1: minutes 0..94 usage to known.example every 2 minutes (past the 1 h
 *     learning period), then at minute 95 a new secret for every identity;
 *  2: minute 100: even identities use a destination they never used (with
 *     the secret from phase 1 -> ANOMALOUS, the secret revoked); odd ones
 *     burst to 3x their class limit (UNEXPECTED); normal usage to 110;
 *  3: normal usage from 111 to 130, so the bursts end. */
static inline int s_produce_phase(rd_kafka_t **ps, int nps, bg_codec *codec, int phase, int n) {
    char idb[64];
    for (int q = 0; q < nps; q++) {
        rd_kafka_t *p = ps[q];
        if (phase == 1) {
            for (int m = 0; m < 95; m += 2)
                for (int i = 0; i < n; i++) {
                    bg_event ev = s_usage(s_ident(i), m, "known.example", 5, idb);
                    if (s_produce_event(p, codec, 1, &ev))
                        return -1;
                }
            for (int i = 0; i < n; i++) {
                char sid[64];
                snprintf(sid, sizeof sid, "sec-%03d", i);
                bg_event ev = s_secret(s_ident(i), 95, sid);
                if (s_produce_event(p, codec, 2, &ev))
                    return -1;
            }
        } else if (phase == 2) {
            for (int i = 0; i < n; i++) {
                bg_event ev;
                if (i % 2 == 0) {
                    ev = s_usage(s_ident(i), 100, "exfil.example", 1, idb);
                    if (s_produce_event(p, codec, 1, &ev))
                        return -1;
                } else {
                    for (int k = 0; k < 3; k++) {
                        ev = s_usage(s_ident(i), 100 + k * 0.2, "known.example", 100, idb);
                        if (s_produce_event(p, codec, 1, &ev))
                            return -1;
                    }
                }
            }
            for (int m = 102; m <= 110; m += 2)
                for (int i = 0; i < n; i++) {
                    bg_event ev = s_usage(s_ident(i), m, "known.example", 5, idb);
                    if (s_produce_event(p, codec, 1, &ev))
                        return -1;
                }
        } else {
            for (int m = 112; m <= 130; m += 2)
                for (int i = 0; i < n; i++) {
                    bg_event ev = s_usage(s_ident(i), m, "known.example", 5, idb);
                    if (s_produce_event(p, codec, 1, &ev))
                        return -1;
                }
        }
        if (rd_kafka_flush(p, 60000))
            return -1;
    }
    return 0;
}

/* Distinct outputs: "verdict_id|class|phase|action" and "command_id|secret". */
typedef struct s_outs {
    char **v;
    size_t n, raw;
    uint64_t anomalous_onsets, unexpected_onsets;
} s_outs;

static inline void s_outs_free(s_outs *o) {
    for (size_t i = 0; i < o->n; i++)
        free(o->v[i]);
    free(o->v);
    memset(o, 0, sizeof *o);
}

static inline int s_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read topic and collect distinct outputs (sorted). */
static inline int s_read(const char *bootstrap, const char *topic, bool verdicts, s_outs *o) {
    bg_rb_msg *m;
    size_t n;
    char err[256];
    s_outs_free(o);
    if (bg_rb_drain(bootstrap, topic, 10000, &m, &n, err, sizeof err))
        return -1;
    o->v = calloc(n + 1, sizeof *o->v);
    for (size_t i = 0; i < n; i++) {
        char line[512];
        if (verdicts) {
            bg_rb_verdict v;
            if (bg_rb_verdict_decode(m[i].value, m[i].value_len, &v))
                continue;
            snprintf(line, sizeof line, "%s|%d|%d|%d|%s", v.verdict_id, v.classification, v.phase,
                     v.action, v.identity);
            bg_rb_verdict_clear(&v);
        } else {
            bg_rb_revocation r;
            if (bg_rb_revocation_decode(m[i].value, m[i].value_len, &r))
                continue;
            snprintf(line, sizeof line, "%s|%s|%s", r.command_id, r.secret_id ? r.secret_id : "-",
                     r.identity);
            bg_rb_revocation_clear(&r);
        }
        o->raw++;
        bool dup = false;
        for (size_t j = 0; j < o->n && !dup; j++)
            dup = !strcmp(o->v[j], line);
        if (!dup)
            o->v[o->n++] = strdup(line);
    }
    bg_rb_msgs_free(m, n);
    qsort(o->v, o->n, sizeof *o->v, s_cmp);
    o->anomalous_onsets = o->unexpected_onsets = 0;
    for (size_t i = 0; verdicts && i < o->n; i++) {
        if (strstr(o->v[i], "|2|0|"))
            o->anomalous_onsets++;
        if (strstr(o->v[i], "|1|0|"))
            o->unexpected_onsets++;
    }
    return 0;
}

/* Print what differs between two output sets; returns the count. */
static inline size_t s_diff(const char *what, const s_outs *want, const s_outs *got) {
    size_t d = 0;
    for (size_t i = 0; i < want->n; i++)
        if (!bsearch(&want->v[i], got->v, got->n, sizeof *got->v, s_cmp)) {
            if (d++ < 10)
                fprintf(stderr, "  %s missing: %s\n", what, want->v[i]);
        }
    for (size_t i = 0; i < got->n; i++)
        if (!bsearch(&got->v[i], want->v, want->n, sizeof *want->v, s_cmp)) {
            if (d++ < 20)
                fprintf(stderr, "  %s spurious: %s\n", what, got->v[i]);
        }
    return d;
}

static inline pid_t s_worker(const char *config, const char *log, const char *instance) {
    char *argv[] = {(char *)h_bin(), "run", "--config", (char *)config, NULL, NULL, NULL};
    char set[128];
    if (instance) {
        snprintf(set, sizeof set, "kafka.group.instance.id=%s", instance);
        argv[4] = "--set";
        argv[5] = set;
    }
    return h_spawn(argv, -1, log);
}

/* Count of distinct keys in topic (the changelog's identities). */
static inline size_t s_distinct_keys(const char *bootstrap, const char *topic) {
    bg_rb_msg *m;
    size_t n, d = 0;
    char err[256];
    if (bg_rb_drain(bootstrap, topic, 10000, &m, &n, err, sizeof err))
        return 0;
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = m[j].key_len == m[i].key_len && !memcmp(m[j].key, m[i].key, m[i].key_len);
        d += !seen;
    }
    bg_rb_msgs_free(m, n);
    return d;
}

static inline size_t s_grep_count(const char *file, const char *needle) {
    FILE *f = fopen(file, "r");
    if (!f)
        return 0;
    char line[4096];
    size_t c = 0;
    while (fgets(line, sizeof line, f))
        c += strstr(line, needle) != NULL;
    fclose(f);
    return c;
}

#endif

/* ---- the HTTP endpoint ---- */
#include <curl/curl.h>

typedef struct s_body {
    char *p;
    size_t n;
} s_body;

static inline size_t s_on_data(char *d, size_t sz, size_t nm, void *u) {
    s_body *b = u;
    char *np = realloc(b->p, b->n + sz * nm + 1);
    if (!np)
        return 0;
    b->p = np;
    memcpy(b->p + b->n, d, sz * nm);
    b->n += sz * nm;
    b->p[b->n] = 0;
    return sz * nm;
}

/* GET path; the body in b (caller frees b->p). Returns the status, 0 on failure. */
static inline long s_get(unsigned port, const char *path, s_body *b) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    CURL *c = curl_easy_init();
    memset(b, 0, sizeof *b);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    return code;
}

/* Value of one series ("name{labels} ") in a /metrics body, or -1. */
static inline double s_sample(const char *text, const char *series) {
    const char *at = text ? strstr(text, series) : NULL;
    while (at && at != text && at[-1] != '\n')
        at = strstr(at + 1, series);
    return at ? strtod(at + strlen(series), NULL) : -1;
}

static inline double s_metric(unsigned port, const char *series) {
    s_body b;
    double v = -1;
    if (s_get(port, "/metrics", &b) == 200)
        v = s_sample(b.p, series);
    free(b.p);
    return v;
}

static inline unsigned s_port_from_log(const char *log) {
    for (int i = 0; i < 150; i++) {
        FILE *f = fopen(log, "r");
        char line[2048];
        while (f && fgets(line, sizeof line, f)) {
            const char *m = strstr(line, "serving /metrics /healthz /readyz on port ");
            if (m) {
                fclose(f);
                return (unsigned)strtoul(m + 42, NULL, 10);
            }
        }
        if (f)
            fclose(f);
        usleep(100000);
    }
    return 0;
}
