/* HyperLogLog (detectors/hll.c): accuracy against theory, form transitions,
 * merge = union, serialization and its rejection of hostile bytes.
 *
 * Statistical checks use fixed seeds and k-sigma bounds with
 * sigma = 1.04/sqrt(m): a single estimate within 3 sigma at every
 * (cardinality, precision); over 40 independent sketches the RMSE within
 * [0.6, 1.4] sigma (its sampling spread is ~sigma/sqrt(80) = 0.11 sigma) and
 * the mean error within 3 sigma/sqrt(40). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <math.h>

#include "detectors/hash.h"
#include "detectors/hll.h"

static uint64_t key(uint64_t i, uint64_t seed) { return bg_hash64(&i, sizeof i, seed); }

/* feeds values [lo, hi) of stream `seed`, in batches */
static void feed(bg_hll *h, uint64_t lo, uint64_t hi, uint64_t seed) {
    uint64_t buf[512];
    while (lo < hi) {
        size_t n = 0;
        while (n < 512 && lo < hi)
            buf[n++] = key(lo++, seed);
        assert_int_equal(bg_hll_add_hashes(h, buf, n), BG_OK);
    }
}

static void test_accuracy(void **state) {
    (void)state;
    static const unsigned ps[] = {4, 6, 8, 10, 12, 14, 16};
    static const uint64_t ns[] = {10, 100, 1000, 10000, 100000, 1000000};
    for (size_t pi = 0; pi < sizeof ps / sizeof ps[0]; pi++) {
        bg_hll h;
        assert_int_equal(bg_hll_init(&h, ps[pi]), BG_OK);
        uint64_t done = 0;
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            feed(&h, done, ns[ni], 1000 + ps[pi]); /* the same stream, growing */
            done = ns[ni];
            double e = bg_hll_estimate(&h), rel = fabs(e - (double)ns[ni]) / (double)ns[ni];
            if (rel > 3 * bg_hll_sigma(ps[pi]))
                fail_msg("p=%u n=%llu: estimate %.1f, error %.4f > 3 sigma %.4f", ps[pi],
                         (unsigned long long)ns[ni], e, rel, 3 * bg_hll_sigma(ps[pi]));
        }
        bg_hll_clear(&h);
    }
}

static void test_rmse(void **state) {
    (void)state;
    static const unsigned ps[] = {6, 10};
    static const uint64_t ns[] = {50, 3000, 200000};
    for (size_t pi = 0; pi < 2; pi++)
        for (size_t ni = 0; ni < 3; ni++) {
            unsigned p = ps[pi];
            double s = bg_hll_sigma(p), se = 0, sum = 0;
            const int T = 40;
            for (int t = 0; t < T; t++) {
                bg_hll h;
                bg_hll_init(&h, p);
                feed(&h, 0, ns[ni], 77 + (uint64_t)t * 1000 + p);
                double rel = (bg_hll_estimate(&h) - (double)ns[ni]) / (double)ns[ni];
                se += rel * rel;
                sum += rel;
                bg_hll_clear(&h);
            }
            double rmse = sqrt(se / T), mean = sum / T;
            /* at n << m the estimator (linear counting) is far better than sigma */
            double lo = (double)ns[ni] < 5.0 * (double)(1u << p) ? 0.0 : 0.6;
            if (rmse > 1.4 * s || rmse < lo * s || fabs(mean) > 3 * s / sqrt(T))
                fail_msg("p=%u n=%llu: rmse %.4f mean %.4f, sigma %.4f", p,
                         (unsigned long long)ns[ni], rmse, mean, s);
        }
}

/* the registers of `h` equal those of a plain dense array fed the same hashes,
 * and its estimate equals the one computed from those registers */
static void check_against_reference(const bg_hll *h, const uint8_t *ref) {
    size_t m = (size_t)1 << h->p;
    uint8_t *regs = malloc(m);
    bg_hll_registers(h, regs);
    assert_memory_equal(regs, ref, m);
    if (h->form != BG_HLL_EXACT) {
        bg_hll_regsum rs;
        bg_hll_kernels_scalar.regsum(ref, m, 64u - h->p, &rs);
        assert_true(bg_hll_estimate(h) == bg_hll_estimate_regsum(&rs, h->p));
    }
    free(regs);
}

static void test_forms(void **state) {
    (void)state;
    for (unsigned p = BG_HLL_P_MIN; p <= BG_HLL_P_MAX; p += 2) {
        size_t m = (size_t)1 << p;
        uint8_t *ref = calloc(m, 1);
        bg_hll h;
        assert_int_equal(bg_hll_init(&h, p), BG_OK);
        assert_true(bg_hll_estimate(&h) == 0.0);
        assert_int_equal(bg_hll_bytes(&h), sizeof(bg_hll));
        unsigned seen_sparse = 0;
        for (uint64_t i = 0; i < 2 * m; i++) {
            uint64_t x = key(i, p);
            assert_int_equal(bg_hll_add_hash(&h, x), BG_OK);
            assert_int_equal(bg_hll_add_hash(&h, x), BG_OK); /* duplicates change nothing */
            bg_hll_kernels_scalar.add(ref, p, &x, 1);
            if (i < BG_HLL_EXACT_MAX) {
                assert_int_equal(h.form, BG_HLL_EXACT);
                assert_true(bg_hll_estimate(&h) == (double)(i + 1));
            } else {
                assert_int_not_equal(h.form, BG_HLL_EXACT);
            }
            if (h.form == BG_HLL_SPARSE) {
                seen_sparse = 1;
                assert_true(h.n <= m / 4);
                assert_true(bg_hll_bytes(&h) <= sizeof(bg_hll) + m);
            }
            if (i < 300 || i % 97 == 0)
                check_against_reference(&h, ref);
        }
        assert_true(seen_sparse);
        assert_int_equal(h.form, BG_HLL_DENSE);
        assert_int_equal(bg_hll_bytes(&h), sizeof(bg_hll) + m);
        check_against_reference(&h, ref);
        bg_hll_clear(&h);
        assert_int_equal(h.p, p);
        assert_int_equal(h.form, BG_HLL_EXACT);
        free(ref);
    }
}

static void test_memory_budget(void **state) {
    (void)state;
    assert_int_equal(sizeof(bg_hll), 32);
    bg_hll h;
    bg_hll_init(&h, BG_HLL_P_DEFAULT);
    feed(&h, 0, 3, 5);
    assert_int_equal(bg_hll_bytes(&h), 32); /* a handful: inline */
    feed(&h, 3, 8, 5);
    assert_true(bg_hll_bytes(&h) <= 32 + 8 * 4);
    feed(&h, 8, 16, 5);
    assert_true(bg_hll_bytes(&h) <= 32 + 16 * 4);
    feed(&h, 16, 100000, 5);
    assert_int_equal(bg_hll_bytes(&h), 32 + 1024); /* busy: capped */
    bg_hll_clear(&h);
}

static void test_merge_union(void **state) {
    (void)state;
    static const uint64_t sizes[] = {0, 2, 3, 4, 5, 50, 255, 256, 300, 5000};
    const unsigned p = 10;
    const size_t m = 1024;
    uint8_t ru[1024], rm[1024];
    for (size_t a = 0; a < sizeof sizes / sizeof sizes[0]; a++)
        for (size_t b = 0; b < sizeof sizes / sizeof sizes[0]; b++) {
            /* A = [0, na), B = [na/2, na/2 + nb): overlapping halves */
            uint64_t na = sizes[a], nb = sizes[b], b0 = na / 2;
            bg_hll A, B, U;
            bg_hll_init(&A, p);
            bg_hll_init(&B, p);
            bg_hll_init(&U, p);
            feed(&A, 0, na, 9);
            feed(&B, b0, b0 + nb, 9);
            feed(&U, 0, na > b0 + nb ? na : b0 + nb, 9);
            assert_int_equal(bg_hll_merge(&A, &B), BG_OK);
            bg_hll_registers(&A, rm);
            bg_hll_registers(&U, ru);
            assert_memory_equal(rm, ru, m);
            assert_int_equal(A.form, U.form);
            assert_true(bg_hll_estimate(&A) == bg_hll_estimate(&U));
            assert_int_equal(bg_hll_merge(&A, &A), BG_OK);
            assert_true(bg_hll_estimate(&A) == bg_hll_estimate(&U));
            bg_hll_clear(&A);
            bg_hll_clear(&B);
            bg_hll_clear(&U);
        }
    bg_hll x, y;
    bg_hll_init(&x, 10);
    bg_hll_init(&y, 11);
    assert_int_equal(bg_hll_merge(&x, &y), BG_ERR_INVALID);
}

static void roundtrip(const bg_hll *h) {
    uint8_t buf[BG_HLL_SER_MAX + 1], buf2[BG_HLL_SER_MAX]; /* +1: the trailing-byte case */
    size_t len = 0, len2 = 0;
    assert_int_equal(bg_hll_serialize(h, buf, 3, &len), BG_ERR_FULL);
    assert_int_equal(len, bg_hll_serialized_size(h));
    assert_int_equal(bg_hll_serialize(h, buf, sizeof buf, &len), BG_OK);
    bg_hll t = {0};
    assert_int_equal(bg_hll_deserialize(&t, buf, len), BG_OK);
    assert_int_equal(t.form, h->form);
    assert_true(bg_hll_estimate(&t) == bg_hll_estimate(h));
    assert_int_equal(bg_hll_serialize(&t, buf2, sizeof buf2, &len2), BG_OK);
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
    /* every truncation and one trailing byte are rejected, t unchanged */
    for (size_t k = 0; k < len; k++)
        assert_int_not_equal(bg_hll_deserialize(&t, buf, k), BG_OK);
    buf[len] = 0;
    assert_int_equal(bg_hll_deserialize(&t, buf, len + 1), BG_ERR_MALFORMED);
    assert_true(bg_hll_estimate(&t) == bg_hll_estimate(h));
    bg_hll_clear(&t);
}

static void test_serialize(void **state) {
    (void)state;
    for (unsigned p = BG_HLL_P_MIN; p <= BG_HLL_P_MAX; p += 3) {
        static const uint64_t ns[] = {0, 1, 3, 4, 20, 100000};
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
            bg_hll h;
            bg_hll_init(&h, p);
            feed(&h, 0, ns[i], 3);
            roundtrip(&h);
            bg_hll_clear(&h);
        }
    }
}

/* If deserialize accepts bytes, they are canonical: serializing gives them back. */
static void accept_or_reject(const uint8_t *b, size_t len) {
    bg_hll t = {0};
    if (bg_hll_deserialize(&t, b, len) != BG_OK)
        return;
    uint8_t out[BG_HLL_SER_MAX];
    size_t n = 0;
    assert_int_equal(bg_hll_serialize(&t, out, sizeof out, &n), BG_OK);
    assert_int_equal(n, len);
    assert_memory_equal(out, b, len);
    (void)bg_hll_estimate(&t);
    bg_hll_clear(&t);
}

static void test_hostile(void **state) {
    (void)state;
    uint64_t r = 12345;
    uint8_t *buf = malloc(BG_HLL_SER_MAX);
    /* mutations of valid encodings of each form */
    for (int form = 0; form < 3; form++) {
        bg_hll h;
        bg_hll_init(&h, 6);
        feed(&h, 0, form == 0 ? 2 : form == 1 ? 9 : 1000, 4);
        size_t len = 0;
        assert_int_equal(bg_hll_serialize(&h, buf, BG_HLL_SER_MAX, &len), BG_OK);
        uint8_t *copy = malloc(len);
        for (int it = 0; it < 20000; it++) {
            memcpy(copy, buf, len);
            for (int k = 0; k < 1 + it % 3; k++) {
                r = r * 6364136223846793005ull + 1442695040888963407ull;
                copy[(r >> 33) % len] = (uint8_t)(r >> 17);
            }
            accept_or_reject(copy, len); /* ASan: exact-size heap copy */
        }
        free(copy);
        bg_hll_clear(&h);
    }
    /* random garbage of random lengths */
    for (int it = 0; it < 20000; it++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        size_t len = (r >> 40) % 80;
        uint8_t *g = malloc(len ? len : 1);
        for (size_t k = 0; k < len; k++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            g[k] = (uint8_t)(r >> 29);
        }
        if (len >= 2 && it % 2) { /* past the magic, to reach deeper checks */
            g[0] = 'B';
            g[1] = 'H';
            if (len > 3) {
                g[2] = 1;
                g[3] = (uint8_t)(4 + g[3] % 13);
            }
        }
        accept_or_reject(g, len);
        free(g);
    }
    /* specific rejections */
    uint8_t hdr[BG_HLL_SER_HEADER + 16] = {'B', 'H', 1, 10, 1, 0, 2, 0};
    hdr[8] = 5, hdr[9] = 0, hdr[10] = 3, hdr[11] = 5, hdr[12] = 0, hdr[13] = 4; /* dup idx */
    bg_hll t = {0};
    assert_int_equal(bg_hll_deserialize(&t, hdr, 14), BG_ERR_MALFORMED);
    hdr[11] = 4;                                                         /* descending */
    assert_int_equal(bg_hll_deserialize(&t, hdr, 14), BG_ERR_MALFORMED);
    hdr[11] = 6, hdr[13] = 56;                                           /* rank > q+1 = 55 */
    assert_int_equal(bg_hll_deserialize(&t, hdr, 14), BG_ERR_BAD_VALUE);
    hdr[13] = 55;
    assert_int_equal(bg_hll_deserialize(&t, hdr, 14), BG_OK);
    assert_true(bg_hll_estimate(&t) > 1.5 && bg_hll_estimate(&t) < 2.5);
    hdr[2] = 2;
    assert_int_equal(bg_hll_deserialize(&t, hdr, 14), BG_ERR_BAD_VALUE); /* version */
    hdr[2] = 1, hdr[3] = 17;
    assert_int_equal(bg_hll_deserialize(&t, hdr, 14), BG_ERR_BAD_VALUE); /* p */
    hdr[3] = 10, hdr[6] = 0xff, hdr[7] = 0xff;
    assert_int_equal(bg_hll_deserialize(&t, hdr, 14), BG_ERR_BAD_VALUE); /* n > m/4 */
    hdr[6] = 200, hdr[7] = 0;
    assert_int_equal(bg_hll_deserialize(&t, hdr, 14), BG_ERR_TRUNCATED);
    hdr[0] = 'X';
    assert_int_equal(bg_hll_deserialize(&t, hdr, 14), BG_ERR_MALFORMED);
    assert_int_equal(bg_hll_deserialize(&t, NULL, 0), BG_ERR_TRUNCATED);
    bg_hll_clear(&t);
    free(buf);
}

static void test_api(void **state) {
    (void)state;
    bg_hll h, z = {0};
    assert_int_equal(bg_hll_init(&h, 3), BG_ERR_INVALID);
    assert_int_equal(bg_hll_init(&h, 17), BG_ERR_INVALID);
    assert_int_equal(bg_hll_add_hash(&z, 1), BG_ERR_INVALID); /* zeroed: not initialised */
    assert_true(bg_hll_estimate(&z) == 0.0);
    bg_hll_clear(&z);
    bg_hll_clear(NULL);
    bg_hll_free(NULL);
    bg_hll *p = NULL;
    assert_int_equal(bg_hll_new(12, &p), BG_OK);
    assert_int_equal(bg_hll_add(p, "api.openai.com", 14), BG_OK);
    assert_int_equal(bg_hll_add(p, "api.openai.com", 14), BG_OK);
    assert_int_equal(bg_hll_add(p, "paste.exfil.example", 19), BG_OK);
    assert_true(bg_hll_estimate(p) == 2.0);
    feed(p, 0, 10000, 8);
    bg_hll c = {0};
    assert_int_equal(bg_hll_copy(&c, p), BG_OK);
    assert_true(bg_hll_estimate(&c) == bg_hll_estimate(p));
    bg_hll_free(p);
    bg_hll_clear(&c);
    /* every SIMD level the CPU has gives the same estimate */
    double first = -1;
    for (int l = 0; l < BG_SIMD_COUNT; l++) {
        if (!bg_simd_supported((bg_simd_isa)l))
            continue;
        assert_int_equal(bg_simd_force((bg_simd_isa)l), BG_OK);
        bg_hll d;
        bg_hll_init(&d, 14);
        feed(&d, 0, 200000, 2);
        bg_hll e;
        bg_hll_init(&e, 14);
        feed(&e, 100000, 300000, 2);
        assert_int_equal(bg_hll_merge(&d, &e), BG_OK);
        double est = bg_hll_estimate(&d);
        if (first < 0)
            first = est;
        assert_true(est == first);
        bg_hll_clear(&d);
        bg_hll_clear(&e);
    }
    assert_int_equal(bg_simd_force(bg_simd_detect()), BG_OK);
    assert_int_equal(bg_simd_force((bg_simd_isa)7), BG_ERR_INVALID);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accuracy),  cmocka_unit_test(test_rmse),
        cmocka_unit_test(test_forms),     cmocka_unit_test(test_memory_budget),
        cmocka_unit_test(test_merge_union), cmocka_unit_test(test_serialize),
        cmocka_unit_test(test_hostile),   cmocka_unit_test(test_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
