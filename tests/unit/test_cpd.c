/* CUSUM, Page-Hinkley and BOCPD properties: in-control quiet, a shift
 * alarms within a stated delay and resets, sensitivity scales, the BOCPD
 * run-length distribution sums to 1 and stays within its truncation. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "detectors/cpd.h"

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

static void test_cusum(void **state) {
    (void)state;
    rng = 11;
    bg_cusum_params p;
    bg_cusum_params_default(&p);
    assert_int_equal(bg_cusum_params_check(&p), BG_OK);
    bg_cusum c;
    bg_cusum_init(&c);
    bg_cpd_dir a;
    int alarms = 0;
    for (int i = 0; i < 2000; i++) {
        bg_cusum_update(&c, &p, 1.0f, gauss(), &a);
        alarms += a != BG_CPD_NONE;
    }
    /* in control: ARL0 at k = 0.5, h = 8 is about 9800 (simulated, two-sided),
     * so 0.2 alarms are expected in 2000 updates; P(more than 2) < 0.2% */
    assert_true(alarms <= 2);
    /* a +3 sigma shift: alarm within 6 updates (expected ~ h/(3-k) + 1 = 4.2) */
    int at = -1;
    for (int i = 0; i < 20 && at < 0; i++) {
        bg_cusum_update(&c, &p, 1.0f, 3.0 + gauss() * 0.1, &a);
        if (a != BG_CPD_NONE) {
            assert_int_equal(a, BG_CPD_UP);
            at = i;
        }
    }
    assert_true(at >= 0 && at <= 6);
    assert_true(c.pos == 0.0f && c.neg == 0.0f); /* reset on alarm */
    /* downward, and sensitivity 2 halves the delay */
    bg_cusum_init(&c);
    int n1 = 0, n2 = 0;
    for (a = BG_CPD_NONE; a == BG_CPD_NONE; n1++)
        bg_cusum_update(&c, &p, 1.0f, -1.5, &a);
    assert_int_equal(a, BG_CPD_DOWN);
    bg_cusum_init(&c);
    for (a = BG_CPD_NONE; a == BG_CPD_NONE; n2++)
        bg_cusum_update(&c, &p, 2.0f, -1.5, &a);
    assert_true(n2 * 2 <= n1 + 1);
    assert_int_equal(bg_cusum_update(&c, &p, 1.0f, NAN, &a), BG_ERR_INVALID);
    assert_int_equal(bg_cusum_update(&c, &p, 10.0f, 0.0, &a), BG_ERR_INVALID);
}

static void test_ph(void **state) {
    (void)state;
    rng = 12;
    bg_ph_params p;
    bg_ph_params_default(&p);
    bg_ph h;
    bg_ph_init(&h);
    bg_cpd_dir a;
    int alarms = 0;
    for (int i = 0; i < 2000; i++) {
        bg_ph_update(&h, &p, 1.0f, gauss(), &a);
        alarms += a != BG_CPD_NONE;
    }
    assert_int_equal(alarms, 0);
    /* a +2 sigma drift relative to the segment mean alarms within 20 steps */
    int at = -1;
    for (int i = 0; i < 40 && at < 0; i++) {
        bg_ph_update(&h, &p, 1.0f, 2.0 + 0.1 * gauss(), &a);
        if (a != BG_CPD_NONE)
            at = i;
    }
    assert_true(at >= 0 && at < 20);
    assert_int_equal(a, BG_CPD_UP);
    assert_int_equal(h.n, 0); /* reset */
    assert_true(bg_ph_level(&h, &p, 1.0f) == 0.0);
}

static void test_bocpd(void **state) {
    (void)state;
    rng = 13;
    bg_bocpd_params p;
    bg_bocpd_params_default(&p);
    p.max_run = 32;
    bg_bocpd *b;
    assert_int_equal(bg_bocpd_new(&p, &b), BG_OK);
    uint32_t n;
    double pc;
    int alarm, alarms_quiet = 0, at = -1;
    for (int i = 0; i < 300; i++) {
        double z = i < 200 ? gauss() : 4.0 + gauss();
        assert_int_equal(bg_bocpd_update(b, 1.0f, z, &pc, &alarm), BG_OK);
        const double *rl = bg_bocpd_runlength(b, &n);
        assert_true(n >= 1 && n <= p.max_run); /* truncation bounds the support */
        double sum = 0.0;
        for (uint32_t r = 0; r < n; r++) {
            assert_true(rl[r] >= 0.0);
            sum += rl[r];
        }
        assert_true(fabs(sum - 1.0) < 1e-9);
        assert_true(pc >= 0.0 && pc <= 1.0 + 1e-12);
        if (i >= 20 && i < 200)
            alarms_quiet += alarm;
        if (i >= 200 && alarm && at < 0)
            at = i - 200;
    }
    assert_true(alarms_quiet <= 1);
    assert_true(at >= 0 && at <= 5); /* a 4-sigma shift seen within 5 steps */
    assert_true(bg_bocpd_map_run(b) > 50 || bg_bocpd_map_run(b) == p.max_run - 1 ||
                bg_bocpd_map_run(b) >= 20);
    bg_bocpd_reset(b);
    const double *rl = bg_bocpd_runlength(b, &n);
    assert_int_equal(n, 1);
    assert_true(rl[0] == 1.0);
    assert_int_equal(bg_bocpd_update(b, 1.0f, NAN, &pc, &alarm), BG_ERR_INVALID);
    assert_true(bg_bocpd_state_bytes(32) > 32 * 5 * sizeof(double));
    bg_bocpd_free(b);
    bg_bocpd_free(NULL);
    p.recent = p.max_run;
    assert_int_equal(bg_bocpd_new(&p, &b), BG_ERR_INVALID);
    assert_null(b);
    /* thresholds move with sensitivity, within their bounds */
    bg_bocpd_params_default(&p);
    assert_true(bg_bocpd_threshold(&p, 2.0f) < bg_bocpd_threshold(&p, 1.0f));
    assert_true(bg_bocpd_threshold(&p, 0.25f) <= 0.99);
    assert_true(bg_bocpd_threshold(&p, 4.0f) >= 0.05);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cusum),
        cmocka_unit_test(test_ph),
        cmocka_unit_test(test_bocpd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
