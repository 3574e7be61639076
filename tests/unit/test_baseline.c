/* bg_baseline: compact size, cold start, robustness to a spike, the daily
 * profile, adaptation after a re-anchor, bad input. Fixed seeds; bounds are
 * stated in sigmas of the injected noise. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "detectors/baseline.h"

/* xorshift64* + Box-Muller: a fixed, portable noise source */
static uint64_t rng = 88172645463325252ull;
static double urand(void) {
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (double)((rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}
static double gauss(void) {
    double u = urand(), v = urand();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(2.0 * M_PI * v);
}

static void test_size_and_defaults(void **state) {
    (void)state;
    assert_int_equal(sizeof(bg_baseline), 32);
    bg_baseline_params p;
    bg_baseline_params_default(&p);
    assert_int_equal(bg_baseline_params_check(&p), BG_OK);
    p.alpha = 0.0f;
    assert_int_equal(bg_baseline_params_check(&p), BG_ERR_INVALID);
    bg_baseline_params_default(&p);
    p.clip = NAN;
    assert_int_equal(bg_baseline_params_check(&p), BG_ERR_INVALID);
}

/* cold start: after warm-up the level is within 3 sigma/sqrt(n) of the mean
 * and the spread within a factor 2 of the true sigma */
static void test_cold_start(void **state) {
    (void)state;
    rng = 1;
    bg_baseline_params p;
    bg_baseline_params_default(&p);
    bg_baseline b;
    bg_baseline_init(&b);
    bg_baseline_obs o;
    for (int i = 0; i < 200; i++)
        assert_int_equal(bg_baseline_update(&b, &p, 60 * i, 100.0 + 4.0 * gauss(), &o), BG_OK);
    double e, s;
    bg_baseline_predict(&b, &p, 60 * 200, &e, &s);
    assert_true(fabs(e - 100.0) < 3.0 * 4.0); /* EWMA with alpha .3: sd of level ~ 0.42 sigma */
    assert_true(s > 2.0 && s < 8.0);
    assert_true(o.warm);
}

/* a single spike of 100 sigma moves the level by at most alpha*clip sigma */
static void test_spike_is_clipped(void **state) {
    (void)state;
    rng = 2;
    bg_baseline_params p;
    bg_baseline_params_default(&p);
    bg_baseline b;
    bg_baseline_init(&b);
    for (int i = 0; i < 300; i++)
        bg_baseline_update(&b, &p, 60 * i, 50.0 + gauss(), NULL);
    double e0, s0, e1, s1;
    bg_baseline_predict(&b, &p, 60 * 300, &e0, &s0);
    bg_baseline_obs o;
    bg_baseline_update(&b, &p, 60 * 300, 50.0 + 100.0 * s0, &o);
    assert_true(o.z > 90.0);
    bg_baseline_predict(&b, &p, 60 * 301, &e1, &s1);
    assert_true(e1 - e0 < (double)(p.alpha * p.clip) * s0 * 1.6); /* + the slope's share */
    assert_true(s1 < s0 * 1.2);
}

/* daily profile: hourly data with a +-50 cycle and noise sigma 5; from day 3
 * on every hour is forecast within 4 of the baseline's own sigmas, and that
 * sigma shrinks towards the noise (below 4x it by day 7) */
static void test_daily_profile(void **state) {
    (void)state;
    rng = 3;
    bg_baseline_params p;
    bg_baseline_params_default(&p);
    bg_baseline b;
    bg_baseline_init(&b);
    int64_t t0 = 1700006400;
    for (int i = 0; i < 24 * 7; i++) {
        double v = 100.0 + 50.0 * sin(2.0 * M_PI * (i % 24) / 24.0) + 5.0 * gauss();
        bg_baseline_obs o;
        bg_baseline_update(&b, &p, t0 + 3600 * i, v, &o);
        if (i >= 24 * 2)
            assert_true(fabs(o.z) < 4.0);
        if (i == 24 * 7 - 1)
            assert_true(o.sigma < 4.0 * 5.0);
    }
    assert_true(b.turns >= BG_BASELINE_SLOTS);
    assert_true(b.season_unit > 0.0f);
}

/* re-anchor: the level jumps to the new value and warm-up restarts */
static void test_reanchor(void **state) {
    (void)state;
    rng = 4;
    bg_baseline_params p;
    bg_baseline_params_default(&p);
    bg_baseline b;
    bg_baseline_init(&b);
    for (int i = 0; i < 100; i++)
        bg_baseline_update(&b, &p, 60 * i, 10.0 + gauss(), NULL);
    bg_baseline_reanchor(&b, &p, 6000, 40.0, 1);
    assert_int_equal(b.n, 1);
    for (int i = 0; i < 10; i++)
        bg_baseline_update(&b, &p, 6060 + 60 * i, 40.0 + gauss(), NULL);
    double e, s;
    bg_baseline_predict(&b, &p, 7000, &e, &s);
    assert_true(fabs(e - 40.0) < 3.0);
}

static void test_bad_input(void **state) {
    (void)state;
    bg_baseline_params p;
    bg_baseline_params_default(&p);
    bg_baseline b;
    bg_baseline_init(&b);
    bg_baseline_update(&b, &p, 0, 1.0, NULL);
    bg_baseline before = b;
    assert_int_equal(bg_baseline_update(&b, &p, 60, NAN, NULL), BG_ERR_INVALID);
    assert_int_equal(bg_baseline_update(&b, &p, 60, INFINITY, NULL), BG_ERR_INVALID);
    assert_memory_equal(&b, &before, sizeof b);
    /* negative timestamps and huge values do not break the profile */
    assert_int_equal(bg_baseline_update(&b, &p, -123456789, 1e30, NULL), BG_OK);
    double e, s;
    bg_baseline_predict(&b, &p, -1, &e, &s);
    assert_true(isfinite(s) && s > 0.0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size_and_defaults), cmocka_unit_test(test_cold_start),
        cmocka_unit_test(test_spike_is_clipped),  cmocka_unit_test(test_daily_profile),
        cmocka_unit_test(test_reanchor),          cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
