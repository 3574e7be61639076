/* Engine throughput and memory on pre-decoded events (no Kafka, no Avro).
 *
 * Throughput: for each identity count (10 k, 1 M and 10 M by default; argv
 * overrides) it builds a stream of usage, secret and tool-call events over the
 * identities (a Zipf-like mix: half the events from 1 % of the identities, a
 * long tail), each identity with 2-4 destinations, and feeds it to one engine:
 * a warm-up pass that creates every identity, then the timed passes (median of
 * 5; 3 at 10 M). Events are kept as 8-byte descriptors (identity index, kind,
 * destination) and expanded into a bg_event just before bg_engine_observe, so
 * that 10 M identities fit in a few GB; the expansion is a handful of stores.
 * It prints events/s, ns/event, bytes per identity as the engine counts them
 * and, where the binary runs on jemalloc, as the allocator counts them
 * (stats.allocated delta), and a checksum of the outputs.
 *
 * Memory (`--memory`, also part of the default run): bytes per identity by
 * jemalloc's stats.allocated for
 *   quiet  200 k identities that each made 2 calls to one destination in the
 *          hour (the long tail of a real fleet), and
 *   busy   10 k identities that each, over 3 h, called 20 destinations through
 *          8 tools in chains, were issued a secret every hour with scopes, and
 *          fanned out under trace ids (every detector's state materialised).
 *
 * Usage: bench_engine [--memory] [--passes N] [--events N] [identities ...]
 * (--events: events per pass instead of 4 per identity, for profiling runs) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_util.h"
#include "detectors/engine.h"

static const char *dests[] = {"api.openai.com", "github.com", "s3.eu-west-1.amazonaws.com",
                              "warehouse.internal", "vector-db.internal", "pypi.org"};

#define NAME_LEN 48 /* storage; every name is 31 bytes ("spiffe://prod/agent/bot-0000000") */

/* One event as stored: expanded by expand(). */
typedef struct desc {
    uint32_t who;
    uint8_t kind;
    uint8_t dest;
    uint16_t pad;
} desc;

static void expand(const desc *d, const char (*names)[NAME_LEN], int64_t t, bg_event *e) {
    e->kind = (bg_event_kind)d->kind;
    e->identity = (bg_str){names[d->who], 31};
    e->event_time = t;
    const char *ds = dests[d->dest];
    bg_str dest = {ds, (uint32_t)strlen(ds)};
    if (d->kind == BG_EV_USAGE) {
        e->u.usage.destination = dest;
        e->u.usage.api = (bg_str){"chat", 4};
        e->u.usage.api_calls = 1;
        e->u.usage.tokens_in = 500;
        e->u.usage.tokens_out = 0;
        e->u.usage.cost_micros = 300;
    } else if (d->kind == BG_EV_SECRET) {
        memset(&e->u.secret, 0, sizeof e->u.secret);
        e->u.secret.secret_id = (bg_str){"sec-rotated", 11};
        e->u.secret.issuer = (bg_str){"vault", 5};
        e->u.secret.ttl_seconds = 3600;
    } else {
        memset(&e->u.tool, 0, sizeof e->u.tool);
        e->u.tool.destination = dest;
        e->u.tool.tool = (bg_str){"search", 6};
        e->u.tool.parent_tool = (bg_str){"planner", 7};
    }
}

/* One pass over the events. */
__attribute__((noinline)) static double feed(bg_engine *eng, const desc *ds, size_t n,
                                                   const char (*names)[NAME_LEN], int64_t t0,
                                                   bg_outputs *out) {
    bg_event e;
    memset(&e, 0, sizeof e);
    e.event_id = (bg_str){"e", 1};
    double s = now();
    for (size_t i = 0; i < n; i++) {
        expand(&ds[i], names, t0 + (int64_t)(i * 3600000 / n), &e);
        bg_engine_observe(eng, &e, (int64_t)i, out);
    }
    return (double)n / (now() - s);
}

/* The warm-up and the timed passes, apart so that a profiler can select the
 * latter (valgrind --toggle-collect=timed_pass). */
static volatile unsigned warm_passes; /* keeps warm_pass distinct from timed_pass */
__attribute__((noinline)) static double warm_pass(bg_engine *eng, const desc *ds, size_t n,
                                                  const char (*names)[NAME_LEN], int64_t t0,
                                                  bg_outputs *out) {
    warm_passes++;
    return feed(eng, ds, n, names, t0, out);
}
__attribute__((noinline)) static double timed_pass(bg_engine *eng, const desc *ds, size_t n,
                                                   const char (*names)[NAME_LEN], int64_t t0,
                                                   bg_outputs *out) {
    return feed(eng, ds, n, names, t0, out);
}

static void run(size_t n_ident, size_t n_events, int passes) {
    char (*names)[NAME_LEN] = malloc(n_ident * sizeof *names);
    desc *ds = malloc(n_events * sizeof *ds);
    if (!names || !ds) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n_ident; i++)
        snprintf(names[i], sizeof names[i], "spiffe://prod/agent/bot-%07zu", i);
    for (size_t i = 0; i < n_events; i++) {
        /* half the events from 1% of the identities */
        size_t who = (next() % 2) ? next() % (n_ident / 100 + 1) : next() % n_ident;
        uint64_t r = next() % 100;
        ds[i] = (desc){(uint32_t)who,
                       (uint8_t)(r < 80 ? BG_EV_USAGE : r < 81 ? BG_EV_SECRET : BG_EV_TOOLCALL),
                       (uint8_t)((who + next() % 3) % 6), 0};
    }
    /* the first pass must create every identity: put each one's first event up front */
    for (size_t i = 0; i < n_ident && i < n_events; i++)
        ds[i].who = (uint32_t)i;
    bg_policy p;
    bg_policy_init_default(&p);
    size_t a0 = allocated();
    bg_engine *eng;
    bg_engine_new(&p, 0, &eng);
    bg_outputs out;
    bg_outputs_init(&out);
    const int64_t t0 = 1795996800000;
    warm_pass(eng, ds, n_events, (const char (*)[NAME_LEN])names, t0, &out);
    bg_outputs_reset(&out);
    bg_engine_stats st;
    bg_engine_stats_get(eng, &st);
    size_t a1 = allocated();
    size_t counted = bg_engine_state_bytes(eng);
    double rates[16];
    uint64_t check = 0;
    if (passes > 16)
        passes = 16;
    for (int rep = 0; rep < passes; rep++) {
        /* later hours: buckets keep closing */
        rates[rep] = timed_pass(eng, ds, n_events, (const char (*)[NAME_LEN])names,
                                t0 + (int64_t)(rep + 1) * 3600000, &out);
        check = check * 31 + out.n_verdicts + st.identities;
        bg_outputs_reset(&out);
    }
    qsort(rates, (size_t)passes, sizeof rates[0], cmp_d);
    double med = rates[passes / 2];
    printf("%10zu %10" PRIu64 " %10zu %12.0f %10.1f %14.1f %14.1f  %016" PRIx64 "\n", n_ident,
           st.identities, n_events, med, 1e9 / med, (double)counted / (double)st.identities,
           a1 > a0 ? (double)(a1 - a0) / (double)st.identities : 0.0, check);
    fflush(stdout);
    bg_outputs_free(&out);
    bg_engine_free(eng);
    bg_policy_free(&p);
    free(ds);
    free(names);
}

/* ---- bytes per quiet and per busy identity ------------------------------------------- */

static void memory(void) {
    static const char *tools[] = {"planner", "search", "fetch", "summarize",
                                  "sql.query", "http.post", "code.exec", "vector.upsert"};
    bg_policy p;
    bg_policy_init_default(&p);
    const int64_t t0 = 1795996800000;
    printf("\n%-6s %10s %10s %14s %14s  %s\n", "kind", "identities", "events", "bytes/id(eng)",
           "bytes/id(jem)", "checksum");
    for (int busy = 0; busy < 2; busy++) {
        const size_t n = busy ? 10000 : 200000;
        char (*names)[NAME_LEN] = malloc(n * sizeof *names);
        for (size_t i = 0; i < n; i++)
            snprintf(names[i], sizeof names[i], "spiffe://prod/agent/%s-%07zu", busy ? "bsy" : "bot", i);
        size_t a0 = allocated();
        bg_engine *eng;
        bg_engine_new(&p, 0, &eng);
        bg_outputs out;
        bg_outputs_init(&out);
        uint64_t events = 0, check = 0;
        char dst[64], sid[64], trace[40], scope[32];
        bg_event e;
        memset(&e, 0, sizeof e);
        e.event_id = (bg_str){"0b6c2a8e-5d7f-4f1e-9a43-2f6f3c1d9e70", 36};
        if (!busy) {
            /* two calls each, 20 min apart, to one destination */
            for (int rep = 0; rep < 2; rep++)
                for (size_t i = 0; i < n; i++) {
                    e.kind = BG_EV_USAGE;
                    e.identity = (bg_str){names[i], (uint32_t)strlen(names[i])};
                    e.event_time = t0 + rep * 1200000 + (int64_t)(i * 600000 / n);
                    const char *d = dests[i % 6];
                    e.u.usage = (bg_usage){.api = {"chat", 4},
                                           .destination = {d, (uint32_t)strlen(d)},
                                           .api_calls = 1, .tokens_in = 500, .cost_micros = 300};
                    bg_engine_observe(eng, &e, (int64_t)events++, &out);
                }
        } else {
            /* 3 h, one event per identity every 15 s on average, round robin */
            const int64_t span = 3 * 3600000LL, step = 15000;
            for (int64_t t = 0; t < span; t += step)
                for (size_t i = 0; i < n; i++) {
                    uint64_t r = next();
                    int64_t et = t0 + t + (int64_t)(i * (size_t)step / n);
                    e.identity = (bg_str){names[i], (uint32_t)strlen(names[i])};
                    e.event_time = et;
                    snprintf(trace, sizeof trace, "%032" PRIx64, r >> 8);
                    e.trace_id = (bg_str){trace, 32};
                    snprintf(dst, sizeof dst, "svc-%02u.internal.example", (unsigned)(r % 20));
                    if ((t / step) % 240 == 0) { /* a new secret every hour */
                        e.kind = BG_EV_SECRET;
                        snprintf(sid, sizeof sid, "sec-%zu-%" PRId64, i, t / 3600000);
                        snprintf(scope, sizeof scope, "scope-%u", (unsigned)(r % 4));
                        memset(&e.u.secret, 0, sizeof e.u.secret);
                        e.u.secret.secret_id = (bg_str){sid, (uint32_t)strlen(sid)};
                        e.u.secret.secret_kind = BG_SK_API_KEY;
                        e.u.secret.issuer = (bg_str){"vault", 5};
                        e.u.secret.scopes[0] = (bg_str){scope, (uint32_t)strlen(scope)};
                        e.u.secret.n_scopes = 1;
                        e.u.secret.ttl_seconds = 3600;
                    } else if (r % 4 == 0) {
                        e.kind = BG_EV_TOOLCALL;
                        memset(&e.u.tool, 0, sizeof e.u.tool);
                        const char *tl = tools[(r >> 20) % 8], *pt = tools[(r >> 24) % 8];
                        e.u.tool.tool = (bg_str){tl, (uint32_t)strlen(tl)};
                        e.u.tool.parent_tool = (bg_str){pt, (uint32_t)strlen(pt)};
                        e.u.tool.destination = (bg_str){dst, (uint32_t)strlen(dst)};
                        e.u.tool.operation = (bg_str){"call", 4};
                        e.u.tool.bytes_out = 2000;
                    } else {
                        e.kind = BG_EV_USAGE;
                        e.u.usage = (bg_usage){.api = {"chat", 4},
                                               .destination = {dst, (uint32_t)strlen(dst)},
                                               .api_calls = 1 + (int32_t)(r % 3),
                                               .tokens_in = 500, .tokens_out = 100,
                                               .cost_micros = 300};
                    }
                    bg_engine_observe(eng, &e, (int64_t)events++, &out);
                }
            e.trace_id = (bg_str){NULL, 0};
        }
        check = check * 31 + out.n_verdicts + out.n_revocations + events;
        bg_outputs_free(&out); /* outputs are not identity state */
        size_t a1 = allocated();
        bg_engine_stats st;
        bg_engine_stats_get(eng, &st);
        size_t counted = bg_engine_state_bytes(eng);
        check = check * 31 + counted;
        printf("%-6s %10" PRIu64 " %10" PRIu64 " %14.1f %14.1f  %016" PRIx64 "\n",
               busy ? "busy" : "quiet", st.identities, events,
               (double)counted / (double)st.identities,
               a1 > a0 ? (double)(a1 - a0) / (double)st.identities : 0.0, check);
        fflush(stdout);
        bg_engine_free(eng);
        free(names);
    }
    bg_policy_free(&p);
}

int main(int argc, char **argv) {
    int passes = 0;
    size_t events = 0;
    bool mem_only = false;
    size_t counts[16];
    int n_counts = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--memory"))
            mem_only = true;
        else if (!strcmp(argv[i], "--passes") && i + 1 < argc)
            passes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--events") && i + 1 < argc)
            events = (size_t)strtoull(argv[++i], NULL, 10);
        else if (n_counts < 16)
            counts[n_counts++] = (size_t)strtoull(argv[i], NULL, 10);
    }
    if (!mem_only) {
        if (!n_counts) {
            counts[0] = 10000;
            counts[1] = 1000000;
            counts[2] = 10000000;
            n_counts = 3;
        }
        printf("%10s %10s %10s %12s %10s %14s %14s  %s\n", "identities", "live", "events",
               "events/s", "ns/event", "bytes/id(eng)", "bytes/id(jem)", "checksum");
        for (int i = 0; i < n_counts; i++) {
            size_t n = counts[i] ? counts[i] : 1;
            /* 4 events per identity, at least 2 M, at most 20 M (2 per identity at 10 M) */
            size_t ev = n * 4 < 2000000 ? 2000000 : n * 4 > 20000000 ? 20000000 : n * 4;
            if (events)
                ev = events;
            run(n, ev, passes > 0 ? passes : n >= 5000000 ? 3 : 5);
        }
    }
    if (mem_only || argc == 1)
        memory();
    return 0;
}
