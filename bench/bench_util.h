/* What the benchmark programs share: a monotonic clock, a seeded splitmix64
 * generator, jemalloc's allocated bytes and a comparison for medians. Each
 * bench_*.c is one program, so the generator's state is per program. */
#ifndef BG_BENCH_UTIL_H
#define BG_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef BG_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

static inline double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 42; /* reseed by assignment */
static inline uint64_t next(void) {
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Bytes allocated by the application, from jemalloc's statistics; 0 without it. */
static inline size_t allocated(void) {
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

/* qsort comparison of doubles, ascending. */
static inline int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
