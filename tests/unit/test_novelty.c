/* First-seen sets: exact while small, bounded memory, stated false-positive
 * rate once a Bloom filter (fixed seeds). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "detectors/novelty.h"

static uint64_t key(bg_novel_kind k, unsigned i) {
    char b[32];
    int n = snprintf(b, sizeof b, "dest-%u.example", i);
    return bg_novel_hash(k, b, (size_t)n);
}

static void test_exact_through_forms(void **state) {
    (void)state;
    bg_novel s;
    bg_novel_init(&s);
    bool is_new;
    for (unsigned i = 0; i < 180; i++) {
        assert_int_equal(bg_novel_insert(&s, key(BG_NOVEL_DESTINATION, i), &is_new), BG_OK);
        assert_true(is_new);
        assert_int_equal(bg_novel_insert(&s, key(BG_NOVEL_DESTINATION, i), &is_new), BG_OK);
        assert_false(is_new);
        if (i + 1 == BG_NOVEL_INLINE) {
            assert_int_equal(s.form, BG_NOVEL_FORM_INLINE);
            assert_int_equal(bg_novel_heap_bytes(&s), 0);
        }
    }
    assert_int_equal(s.form, BG_NOVEL_FORM_TABLE);
    assert_int_equal(s.n, 180);
    assert_true(bg_novel_heap_bytes(&s) <= BG_NOVEL_TABLE_MAX * 4);
    for (unsigned i = 0; i < 180; i++)
        assert_true(bg_novel_contains(&s, key(BG_NOVEL_DESTINATION, i)));
    /* exact: nothing else is "seen", and kinds do not collide */
    for (unsigned i = 180; i < 5000; i++)
        assert_false(bg_novel_contains(&s, key(BG_NOVEL_DESTINATION, i)));
    for (unsigned i = 0; i < 180; i++)
        assert_false(bg_novel_contains(&s, key(BG_NOVEL_SECRET, i)));
    bg_novel_free(&s);
    assert_int_equal(s.n, 0);
}

/* Bloom form: no false negatives; false positives within the theory
 * (1 - e^(-kn/m))^k plus 4 sigma of the binomial sampling error. */
static void check_fp(unsigned n, double theory) {
    bg_novel s;
    bg_novel_init(&s);
    bool is_new;
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(bg_novel_insert(&s, key(BG_NOVEL_DESTINATION, i), &is_new), BG_OK);
    assert_int_equal(s.form, BG_NOVEL_FORM_BLOOM);
    assert_int_equal(bg_novel_heap_bytes(&s), BG_NOVEL_BLOOM_BITS / 8);
    for (unsigned i = 0; i < n; i++)
        assert_true(bg_novel_contains(&s, key(BG_NOVEL_DESTINATION, i)));
    const unsigned trials = 200000;
    unsigned fp = 0;
    for (unsigned i = 0; i < trials; i++)
        fp += bg_novel_contains(&s, key(BG_NOVEL_DESTINATION, 1000000 + i));
    double rate = (double)fp / trials;
    double sigma = __builtin_sqrt(theory * (1 - theory) / trials);
    print_message("n=%u fp=%.4f theory=%.4f\n", n, rate, theory);
    assert_true(rate <= theory + 4 * sigma + 0.002);
    bg_novel_free(&s);
}

static void test_bloom_false_positive_rate(void **state) {
    (void)state;
    check_fp(768, 0.0063);
    check_fp(1200, 0.040);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_through_forms),
        cmocka_unit_test(test_bloom_false_positive_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
