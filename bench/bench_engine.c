/* Engine throughput and memory on pre-decoded events (no Kafka, no Avro).
 *
 * For each identity count (10 k, 1 M by default; argv overrides) it builds a
 * stream of usage, secret and tool-call events over the identities (a Zipf-
 * like mix: a few busy identities, a long tail), each identity with 2-4
 * destinations, and feeds it to one engine twice: a warm-up pass that creates
 * every identity, then the timed passes. It prints events/s (median of 5),
 * ns/event, bytes per identity as the engine counts them and, where the
 * binary runs on jemalloc, as the allocator counts them (stats.allocated
 * delta), and a checksum of the outputs. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef BG_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "detectors/engine.h"

static uint64_t rng = 42;
static uint64_t next(void) {
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t allocated(void) {
#ifdef BG_HAVE_JEMALLOC
    uint64_t epoch = 1;
    size_t sz = sizeof epoch;
    mallctl("epoch", &epoch, &sz, &epoch, sz);
    size_t a = 0;
    sz = sizeof a;
    if (mallctl("stats.allocated", &a, &sz, NULL, 0) == 0)
        return a;
#endif
    return 0;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run(size_t n_ident, size_t n_events) {
    char (*names)[48] = malloc(n_ident * sizeof *names);
    static const char *dests[] = {"api.openai.com", "github.com", "s3.eu-west-1.amazonaws.com",
                                  "warehouse.internal", "vector-db.internal", "pypi.org"};
    bg_event *evs = malloc(n_events * sizeof *evs);
    if (!names || !evs) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n_ident; i++)
        snprintf(names[i], sizeof names[i], "spiffe://prod/agent/bot-%07zu", i);
    const int64_t t0 = 1795996800000;
    for (size_t i = 0; i < n_events; i++) {
        /* half the events from 1% of the identities */
        size_t who = (next() % 2) ? next() % (n_ident / 100 + 1) : next() % n_ident;
        bg_event *e = &evs[i];
        memset(e, 0, offsetof(bg_event, u));
        uint64_t r = next() % 100;
        e->kind = r < 80 ? BG_EV_USAGE : r < 81 ? BG_EV_SECRET : BG_EV_TOOLCALL;
        e->event_id = (bg_str){"e", 1};
        e->identity = (bg_str){names[who], (uint32_t)strlen(names[who])};
        e->event_time = t0 + (int64_t)(i * 3600000 / n_events);
        const char *d = dests[(who + next() % 3) % 6];
        if (e->kind == BG_EV_USAGE) {
            e->u.usage.destination = (bg_str){d, (uint32_t)strlen(d)};
            e->u.usage.api = (bg_str){"chat", 4};
            e->u.usage.api_calls = 1;
            e->u.usage.tokens_in = 500;
            e->u.usage.cost_micros = 300;
        } else if (e->kind == BG_EV_SECRET) {
            e->u.secret.secret_id = (bg_str){"sec-rotated", 11};
            e->u.secret.issuer = (bg_str){"vault", 5};
            e->u.secret.ttl_seconds = 3600;
        } else {
            e->u.tool.destination = (bg_str){d, (uint32_t)strlen(d)};
            e->u.tool.tool = (bg_str){"search", 6};
            e->u.tool.parent_tool = (bg_str){"planner", 7};
        }
    }
    bg_policy p;
    bg_policy_init_default(&p);
    size_t a0 = allocated();
    bg_engine *eng;
    bg_engine_new(&p, 0, &eng);
    bg_outputs out;
    bg_outputs_init(&out);
    for (size_t i = 0; i < n_events; i++) /* warm-up: every identity exists afterwards */
        bg_engine_observe(eng, &evs[i], (int64_t)i, &out);
    bg_outputs_reset(&out);
    bg_engine_stats st;
    bg_engine_stats_get(eng, &st);
    size_t a1 = allocated();
    size_t counted = bg_engine_state_bytes(eng);
    double rates[5];
    uint64_t check = 0;
    for (int rep = 0; rep < 5; rep++) {
        double s = now();
        for (size_t i = 0; i < n_events; i++) {
            bg_event e = evs[i];
            e.event_time += (int64_t)(rep + 1) * 3600000; /* later hours: buckets keep closing */
            bg_engine_observe(eng, &e, (int64_t)i, &out);
        }
        rates[rep] = (double)n_events / (now() - s);
        check = check * 31 + out.n_verdicts + st.identities;
        bg_outputs_reset(&out);
    }
    qsort(rates, 5, sizeof rates[0], cmp_d);
    printf("%10zu %10" PRIu64 " %12.0f %10.1f %14.1f %14.1f  %016" PRIx64 "\n", n_ident,
           st.identities, rates[2], 1e9 / rates[2], (double)counted / (double)st.identities,
           a1 > a0 ? (double)(a1 - a0) / (double)st.identities : 0.0, check);
    bg_outputs_free(&out);
    bg_engine_free(eng);
    bg_policy_free(&p);
    free(evs);
    free(names);
}

int main(int argc, char **argv) {
    printf("%10s %10s %12s %10s %14s %14s  %s\n", "identities", "live", "events/s", "ns/event",
           "bytes/id(eng)", "bytes/id(jem)", "checksum");
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            size_t n = (size_t)strtoull(argv[i], NULL, 10);
            run(n, n * 4 < 2000000 ? 2000000 : n * 4);
        }
        return 0;
    }
    run(10000, 2000000);
    run(1000000, 4000000);
    return 0;
}
