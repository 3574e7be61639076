/* Count-Min sketch with conservative update (detectors/cms.c): never an
 * underestimate; above eps*N for at most a delta share of keys; saturation,
 * merge, batch = sequential on every SIMD level, rarity.
 *
 * The error bound: with width ceil(e/eps) and depth ceil(ln 1/delta), each
 * key's estimate exceeds its count by more than eps*N with probability
 * <= delta. Over K keys (fixed seed) the number of violations is then at most
 * Binomial(K, delta): we allow delta*K + 3 sqrt(K delta (1-delta)). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <math.h>

#include "detectors/cms.h"

static uint64_t rng;
static uint64_t next(void) {
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint64_t key(uint64_t id) { return bg_hash64(&id, sizeof id, BG_SEED_SKETCH); }

/* a stream of N draws over K keys, skewed (skew) or uniform; returns violations */
static unsigned run_bound(double eps, double delta, uint32_t K, uint32_t N, int skew,
                          uint64_t seed, int batch) {
    bg_cms *c = NULL;
    assert_int_equal(bg_cms_new(eps, delta, &c), BG_OK);
    assert_int_equal(bg_cms_width(c), (uint32_t)ceil(exp(1.0) / eps));
    assert_int_equal(bg_cms_depth(c), (uint32_t)ceil(log(1.0 / delta)));
    uint32_t *truth = calloc(K, sizeof *truth);
    uint64_t *hs = malloc(1024 * sizeof *hs);
    uint32_t *cs = malloc(1024 * sizeof *cs);
    rng = seed;
    uint64_t total = 0;
    for (uint32_t i = 0; i < N;) {
        size_t n = 0;
        for (; n < 1024 && i < N; n++, i++) {
            double u = (double)(next() >> 11) / 9007199254740992.0;
            uint32_t id = skew ? (uint32_t)(u * u * u * K) : (uint32_t)(u * K);
            uint32_t cnt = 1 + (uint32_t)(next() % 3);
            truth[id] += cnt;
            total += cnt;
            hs[n] = key(id);
            cs[n] = cnt;
        }
        if (batch)
            bg_cms_add_batch(c, hs, cs, n);
        else
            for (size_t j = 0; j < n; j++)
                bg_cms_add_hash(c, hs[j], cs[j]);
    }
    assert_int_equal(bg_cms_total(c), total);
    unsigned viol = 0;
    for (uint32_t id = 0; id < K; id++) {
        uint32_t e = bg_cms_query_hash(c, key(id));
        assert_true(e >= truth[id]); /* never an underestimate */
        if ((double)(e - truth[id]) > eps * (double)total)
            viol++;
    }
    double allowed = delta * K + 3 * sqrt(K * delta * (1 - delta));
    if (viol > allowed)
        fail_msg("eps=%g delta=%g K=%u N=%u skew=%d: %u violations > %.1f", eps, delta, K, N,
                 skew, viol, allowed);
    free(truth);
    free(hs);
    free(cs);
    bg_cms_free(c);
    return viol;
}

static void test_error_bound(void **state) {
    (void)state;
    run_bound(0.001, 0.01, 50000, 400000, 1, 1, 1);
    run_bound(0.001, 0.01, 50000, 400000, 0, 2, 0);
    run_bound(0.01, 0.05, 20000, 200000, 1, 3, 1);
    run_bound(0.01, 0.05, 20000, 200000, 0, 4, 1);
    /* a sketch far too small for its stream still never underestimates; and the
     * bound is tight enough to see violations (the check above can fail) */
    bg_cms *c;
    assert_int_equal(bg_cms_new_dims(16, 2, &c), BG_OK);
    for (uint64_t id = 0; id < 1000; id++)
        bg_cms_add_hash(c, key(id), 1);
    unsigned over = 0;
    for (uint64_t id = 0; id < 1000; id++) {
        uint32_t e = bg_cms_query_hash(c, key(id));
        assert_true(e >= 1);
        over += e - 1 > 0.01 * 1000;
    }
    assert_true(over > 500);
    bg_cms_free(c);
}

static void test_saturation(void **state) {
    (void)state;
    bg_cms *c;
    assert_int_equal(bg_cms_new_dims(100, 4, &c), BG_OK);
    bg_cms_add_hash(c, 42, UINT32_MAX - 1);
    assert_int_equal(bg_cms_query_hash(c, 42), UINT32_MAX - 1);
    bg_cms_add_hash(c, 42, 5);
    assert_int_equal(bg_cms_query_hash(c, 42), UINT32_MAX);
    bg_cms_add_hash(c, 42, UINT32_MAX);
    assert_int_equal(bg_cms_query_hash(c, 42), UINT32_MAX);
    assert_int_equal(bg_cms_total(c), (uint64_t)UINT32_MAX - 1 + 5 + UINT32_MAX);
    assert_int_equal(bg_cms_merge(c, c), BG_OK); /* doubling saturates too */
    assert_int_equal(bg_cms_query_hash(c, 42), UINT32_MAX);
    assert_true(bg_cms_rarity(c, 42) <= 1.0);
    bg_cms_free(c);
}

static void test_merge(void **state) {
    (void)state;
    bg_cms *a, *b, *u, *w;
    assert_int_equal(bg_cms_new(0.005, 0.02, &a), BG_OK);
    assert_int_equal(bg_cms_new(0.005, 0.02, &b), BG_OK);
    assert_int_equal(bg_cms_new(0.005, 0.02, &u), BG_OK);
    assert_int_equal(bg_cms_new_dims(bg_cms_width(a) + 1, bg_cms_depth(a), &w), BG_OK);
    uint32_t ta[3000] = {0}, tb[3000] = {0};
    rng = 9;
    for (int i = 0; i < 30000; i++) {
        uint32_t id = (uint32_t)(next() % 3000);
        if (i % 2) {
            bg_cms_add_hash(a, key(id), 1);
            ta[id]++;
        } else {
            bg_cms_add_hash(b, key(id), 2);
            tb[id] += 2;
        }
    }
    size_t len = (size_t)bg_cms_width(a) * bg_cms_depth(a);
    uint32_t *expect = malloc(len * 4);
    for (size_t i = 0; i < len; i++) {
        uint64_t s = (uint64_t)bg_cms_counters(a)[i] + bg_cms_counters(b)[i];
        expect[i] = s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
    }
    assert_int_equal(bg_cms_merge(a, w), BG_ERR_INVALID);
    assert_int_equal(bg_cms_merge(a, b), BG_OK);
    assert_memory_equal(bg_cms_counters(a), expect, len * 4);
    assert_int_equal(bg_cms_total(a), 15000 + 30000);
    for (uint32_t id = 0; id < 3000; id++)
        assert_true(bg_cms_query_hash(a, key(id)) >= ta[id] + tb[id]);
    free(expect);
    bg_cms_free(a);
    bg_cms_free(b);
    bg_cms_free(u);
    bg_cms_free(w);
}

static void test_batch_equals_sequential(void **state) {
    (void)state;
    enum { N = 20000 };
    uint64_t *hs = malloc(N * 8);
    uint32_t *cs = malloc(N * 4), *q0 = malloc(N * 4), *q1 = malloc(N * 4);
    rng = 5;
    for (int i = 0; i < N; i++) {
        hs[i] = i && next() % 4 == 0 ? hs[next() % (uint64_t)i] : next();
        cs[i] = (uint32_t)(next() % 7);
    }
    bg_cms *s;
    assert_int_equal(bg_cms_new_dims(997, 7, &s), BG_OK);
    for (int i = 0; i < N; i++)
        bg_cms_add_hash(s, hs[i], cs[i]);
    for (int i = 0; i < N; i++)
        q0[i] = bg_cms_query_hash(s, hs[i]);
    size_t len = 997 * 7;
    for (int l = 0; l < BG_SIMD_COUNT; l++) {
        if (!bg_simd_supported((bg_simd_isa)l))
            continue;
        assert_int_equal(bg_simd_force((bg_simd_isa)l), BG_OK);
        bg_cms *b;
        assert_int_equal(bg_cms_new_dims(997, 7, &b), BG_OK);
        bg_cms_add_batch(b, hs, cs, 777);
        bg_cms_add_batch(b, hs + 777, cs + 777, N - 777);
        assert_memory_equal(bg_cms_counters(b), bg_cms_counters(s), len * 4);
        assert_int_equal(bg_cms_total(b), bg_cms_total(s));
        bg_cms_query_batch(b, hs, N, q1);
        assert_memory_equal(q0, q1, N * 4);
        bg_cms_free(b);
    }
    assert_int_equal(bg_simd_force(bg_simd_detect()), BG_OK);
    bg_cms_free(s);
    free(hs);
    free(cs);
    free(q0);
    free(q1);
}

static void test_rarity_and_api(void **state) {
    (void)state;
    bg_cms *c;
    assert_int_equal(bg_cms_new(0.01, 0.01, &c), BG_OK);
    assert_true(bg_cms_rarity(c, key(1)) == 0.0); /* empty */
    uint64_t bigram = bg_cms_pair(key(100), key(200)); /* parent_tool -> tool */
    assert_int_not_equal(bigram, bg_cms_pair(key(200), key(100)));
    for (int i = 0; i < 900; i++)
        bg_cms_add_hash(c, bigram, 1);
    for (uint64_t i = 0; i < 100; i++)
        bg_cms_add(c, &i, sizeof i, 1);
    double r = bg_cms_rarity(c, bigram);
    assert_true(r >= 0.9 && r <= 1.0);
    assert_true(bg_cms_rarity(c, key(424242)) < 0.05);
    assert_true(bg_cms_query(c, "x", 1) <= 1000);
    assert_int_equal(bg_cms_bytes(c), 24 + (size_t)bg_cms_width(c) * bg_cms_depth(c) * 4);
    bg_cms_reset(c);
    assert_int_equal(bg_cms_total(c), 0);
    assert_int_equal(bg_cms_query_hash(c, bigram), 0);
    bg_cms_free(c);
    bg_cms_free(NULL);
    bg_cms *x = NULL;
    assert_int_equal(bg_cms_new(0.0, 0.1, &x), BG_ERR_INVALID);
    assert_int_equal(bg_cms_new(1.0, 0.1, &x), BG_ERR_INVALID);
    assert_int_equal(bg_cms_new(0.1, 0.0, &x), BG_ERR_INVALID);
    assert_int_equal(bg_cms_new(NAN, 0.1, &x), BG_ERR_INVALID);
    assert_int_equal(bg_cms_new(0.1, 1e-9, &x), BG_ERR_INVALID); /* depth 21 > cap */
    assert_int_equal(bg_cms_new(1e-9, 0.1, &x), BG_ERR_INVALID); /* width over cap */
    assert_int_equal(bg_cms_new_dims(0, 1, &x), BG_ERR_INVALID);
    assert_int_equal(bg_cms_new_dims(1, 9, &x), BG_ERR_INVALID);
    assert_null(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_bound),
        cmocka_unit_test(test_saturation),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_batch_equals_sequential),
        cmocka_unit_test(test_rarity_and_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
