/* Decode throughput of the UsageEvent hot path: burstguard's resolving
 * decoder (worker/codec_plan.c) against Avro-C 1.11.1's generic decoder, on
 * the same framed messages, same run, one core.
 *
 * Messages have realistic sizes (UUID event ids, SPIFFE identities, 32-hex
 * trace ids, half of them with a workload class), encoded by bg_codec with
 * the reader schema (id 1) and with an evolved writer that adds a map, an
 * array and a nested record (id 100, decoded by skipping them). Each figure
 * is the median of 5 passes over all messages; each decoder folds what it
 * decoded into a checksum that is printed, so the work cannot be optimised
 * away and both can be compared.
 *
 * Usage: bench_codec [messages]   (default 200000) */
#include <avro.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "worker/codec.h"

static const char evolved[] =
    "{\"type\":\"record\",\"name\":\"UsageEvent\",\"namespace\":\"burstguard.v1\",\"fields\":["
    "{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"identity\",\"type\":\"string\"},"
    "{\"name\":\"labels\",\"type\":{\"type\":\"map\",\"values\":\"string\"},\"default\":{\"env\":\"prod\",\"region\":\"eu-west-1\"}},"
    "{\"name\":\"owner\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"workload_class\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"event_time\",\"type\":\"long\"},"
    "{\"name\":\"trace_id\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"hops\",\"type\":{\"type\":\"array\",\"items\":\"long\"},\"default\":[1,2,3]},"
    "{\"name\":\"api\",\"type\":\"string\"},{\"name\":\"destination\",\"type\":\"string\"},"
    "{\"name\":\"client\",\"type\":{\"type\":\"record\",\"name\":\"Client\",\"fields\":["
    "{\"name\":\"sdk\",\"type\":\"string\"},{\"name\":\"latency_ms\",\"type\":\"double\"}]},"
    "\"default\":{\"sdk\":\"python/1.2\",\"latency_ms\":12.5}},"
    "{\"name\":\"api_calls\",\"type\":\"int\"},{\"name\":\"tokens_in\",\"type\":\"long\"},"
    "{\"name\":\"tokens_out\",\"type\":\"long\"},{\"name\":\"cost_micros\",\"type\":\"long\"}]}";

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint64_t rng = 88172645463325252u;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

typedef struct msgs {
    uint8_t *data;
    size_t *off, *len, n, used;
} msgs;

static double run_ours(bg_codec *c, const msgs *m, uint64_t *sum) {
    bg_event ev;
    uint64_t s = 0;
    double t0 = now();
    for (size_t i = 0; i < m->n; i++) {
        if (bg_codec_decode_event(c, BG_EV_USAGE, m->data + m->off[i], m->len[i], &ev, NULL, 0) !=
            BG_OK)
            abort();
        s += (uint64_t)ev.u.usage.tokens_in + ev.identity.len + ev.u.usage.api.len +
             (ev.workload_class.ptr ? 1u : 0u) + (uint64_t)ev.event_time;
    }
    double dt = now() - t0;
    *sum = s;
    return (double)m->n / dt;
}

static double run_avro(avro_value_t *val, const msgs *m, uint64_t *sum) {
    uint64_t s = 0;
    avro_reader_t r = avro_reader_memory("", 0);
    double t0 = now();
    for (size_t i = 0; i < m->n; i++) {
        avro_reader_memory_set_source(r, (const char *)m->data + m->off[i] + 5,
                                      (int64_t)m->len[i] - 5);
        if (avro_value_read(r, val))
            abort();
        avro_value_t f, b;
        int64_t l;
        const char *p;
        size_t n;
        avro_value_get_by_name(val, "tokens_in", &f, NULL);
        avro_value_get_long(&f, &l);
        s += (uint64_t)l;
        avro_value_get_by_name(val, "identity", &f, NULL);
        avro_value_get_string(&f, &p, &n);
        s += n - 1;
        avro_value_get_by_name(val, "api", &f, NULL);
        avro_value_get_string(&f, &p, &n);
        s += n - 1;
        avro_value_get_by_name(val, "workload_class", &f, NULL);
        avro_value_get_current_branch(&f, &b);
        s += avro_value_get_type(&b) == AVRO_NULL ? 0u : 1u;
        avro_value_get_by_name(val, "event_time", &f, NULL);
        avro_value_get_long(&f, &l);
        s += (uint64_t)l;
    }
    double dt = now() - t0;
    avro_reader_free(r);
    *sum = s;
    return (double)m->n / dt;
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 200000;
    if (n == 0)
        n = 1;
    bg_codec *c;
    char err[256];
    if (bg_codec_new(&c, err, sizeof err) || bg_codec_add_defaults(c, err, sizeof err) ||
        bg_codec_add_schema(c, 100, evolved, sizeof evolved - 1, err, sizeof err)) {
        fprintf(stderr, "bench_codec: %s\n", err);
        return 1;
    }
    int32_t ids[2] = {1, 100};
    const char *names[2] = {"reader schema (id 1)", "evolved writer (id 100)"};
    printf("%-26s %-10s %14s %14s %8s  %s\n", "writer", "decoder", "records/s", "ns/record",
           "bytes", "checksum");
    for (int w = 0; w < 2; w++) {
        msgs m = {malloc(n * 400), malloc(n * sizeof(size_t)), malloc(n * sizeof(size_t)), n, 0};
        char strs[8][64];
        bg_buf b = {0};
        for (size_t i = 0; i < n; i++) {
            bg_event ev;
            memset(&ev, 0, sizeof ev);
            ev.kind = BG_EV_USAGE;
            uint64_t r1 = rnd(), r2 = rnd();
            int l0 = snprintf(strs[0], 64, "%08" PRIx64 "-%04x-4%03x-a%03x-%012" PRIx64,
                              r1 & 0xffffffffu, (unsigned)(r1 >> 32) & 0xffff,
                              (unsigned)(r1 >> 48) & 0xfff, (unsigned)r2 & 0xfff,
                              r2 >> 16 & 0xffffffffffffu);
            int l1 = snprintf(strs[1], 64, "spiffe://prod.acme/ns/team%u/sa/svc-%u",
                              (unsigned)(r1 % 40), (unsigned)(r2 % 1000));
            int l2 = snprintf(strs[2], 64, "team-%u", (unsigned)(r1 % 40));
            int l3 = snprintf(strs[3], 64, "%016" PRIx64 "%016" PRIx64, r1, r2);
            ev.event_id = (bg_str){strs[0], (uint32_t)l0};
            ev.identity = (bg_str){strs[1], (uint32_t)l1};
            ev.owner = (bg_str){strs[2], (uint32_t)l2};
            ev.workload_class = r2 & 1 ? (bg_str){"batch", 5} : (bg_str){NULL, 0};
            ev.event_time = 1718000000000 + (int64_t)i * 13;
            ev.trace_id = (bg_str){strs[3], (uint32_t)l3};
            ev.u.usage.api = (bg_str){"chat.completions", 16};
            ev.u.usage.destination = (bg_str){"api.openai.com", 14};
            ev.u.usage.api_calls = (int32_t)(r1 % 20);
            ev.u.usage.tokens_in = (int64_t)(r2 % 100000);
            ev.u.usage.tokens_out = (int64_t)(r1 % 5000);
            ev.u.usage.cost_micros = (int64_t)(r2 % 1000000);
            if (bg_codec_encode_event(c, ids[w], &ev, &b) != BG_OK || b.len > 400)
                return 1;
            m.off[i] = m.used;
            m.len[i] = b.len;
            memcpy(m.data + m.used, b.data, b.len);
            m.used += b.len;
        }
        bg_buf_free(&b);
        avro_schema_t sch;
        const char *text = w == 0 ? bg_codec_reader_schema(BG_REC_USAGE) : evolved;
        avro_schema_from_json_length(text, strlen(text), &sch);
        avro_value_iface_t *iface = avro_generic_class_from_schema(sch);
        avro_value_t val;
        avro_generic_value_new(iface, &val);
        double ours[5], theirs[5];
        uint64_t s1 = 0, s2 = 0;
        run_ours(c, &m, &s1); /* warm up, compiles the plan */
        for (int k = 0; k < 5; k++) {
            ours[k] = run_ours(c, &m, &s1);
            theirs[k] = run_avro(&val, &m, &s2);
        }
        qsort(ours, 5, sizeof ours[0], cmp);
        qsort(theirs, 5, sizeof theirs[0], cmp);
        double avg = (double)m.used / (double)n;
        printf("%-26s %-10s %14.0f %14.1f %8.1f  %016" PRIx64 "\n", names[w], "burstguard", ours[2],
               1e9 / ours[2], avg, s1);
        printf("%-26s %-10s %14.0f %14.1f %8.1f  %016" PRIx64 "\n", names[w], "avro-c", theirs[2],
               1e9 / theirs[2], avg, s2);
        printf("%-26s speedup %.1fx, checksums %s\n", names[w], ours[2] / theirs[2],
               s1 == s2 ? "equal" : "DIFFER");
        avro_value_decref(&val);
        avro_value_iface_decref(iface);
        avro_schema_decref(sch);
        free(m.data);
        free(m.off);
        free(m.len);
    }
    bg_codec_free(c);
    return 0;
}
