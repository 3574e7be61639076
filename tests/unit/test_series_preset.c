/* The series preset (detectors/segment.h): the change-point cases of
 * tests/data/cpd/preset_cases.txt, the online property (truncating the input
 * never changes an earlier output), determinism, scores in [0, 1], bad input
 * and bad parameters. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "detectors/segment.h"

#define MAXN 4096

typedef struct series {
    int n;
    double x[MAXN];
} series;

static series S;
static bg_seg_out O[MAXN], P[MAXN];

static const char *src_dir(void) {
    const char *d = getenv("BG_SOURCE_DIR");
    return d ? d : ".";
}

static void load(const char *file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/cpd/%s", src_dir(), file);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s", path);
    char line[256];
    assert_non_null(fgets(line, sizeof line, f)); /* header */
    S.n = 0;
    long long t;
    double v;
    while (S.n < MAXN && fgets(line, sizeof line, f) && sscanf(line, "%lld,%lf", &t, &v) == 2)
        S.x[S.n++] = v;
    fclose(f);
    assert_true(S.n > 0);
}

/* the default preset over x[0..n) into out */
static void run(const double *x, int n, bg_seg_out *out) {
    bg_seg_params p;
    bg_seg_params_default(&p);
    bg_seg *s;
    assert_int_equal(bg_seg_new(&p, &s), BG_OK);
    for (int i = 0; i < n; i++) {
        assert_int_equal(bg_seg_step(s, x[i], &out[i]), BG_OK);
        assert_true(out[i].score >= 0.0 && out[i].score <= 1.0);
        assert_true(out[i].scale > 0.0);
        assert_true(out[i].changepoint == 0 || out[i].changepoint == 1);
    }
    bg_seg_free(s);
}

static int same(const bg_seg_out *a, const bg_seg_out *b) {
    return a->score == b->score && a->scale == b->scale && a->map_run == b->map_run &&
           a->changepoint == b->changepoint;
}

static void test_cases(void **state) {
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/cpd/preset_cases.txt", src_dir());
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s", path);
    char line[512];
    int cases = 0;
    while (fgets(line, sizeof line, f)) {
        char file[128];
        int mn, mx, lo, hi;
        if (line[0] == '#' || sscanf(line, "%127s %d %d %d %d", file, &mn, &mx, &lo, &hi) != 5)
            continue;
        load(file);
        run(S.x, S.n, O);
        int cps = 0, last = -1000;
        for (int i = 0; i < S.n; i++) {
            if (!O[i].changepoint)
                continue;
            cps++;
            if (i < lo || i > hi)
                fail_msg("%s: change point at %d outside [%d, %d]", file, i, lo, hi);
            if (i - last < 5)
                fail_msg("%s: change points at %d and %d, closer than min_gap", file, last, i);
            last = i;
        }
        if (cps < mn || cps > mx)
            fail_msg("%s: %d change points, want %d..%d", file, cps, mn, mx);
        cases++;
    }
    fclose(f);
    assert_true(cases >= 5);
}

/* Online: the output for row i is the same whether the input stops at i or
 * goes on; and two runs give the same bytes. */
static void test_online_and_deterministic(void **state) {
    (void)state;
    const char *files[] = {"preset_step.csv", "preset_variance.csv", "preset_sawtooth.csv"};
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        load(files[k]);
        run(S.x, S.n, O);
        run(S.x, S.n, P);
        for (int i = 0; i < S.n; i++)
            if (!same(&O[i], &P[i]))
                fail_msg("%s: row %d differs between two runs", files[k], i);
        const int cuts[] = {1, 2, 7, 40, 149, 151, 153, 201, 260};
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
            int n = cuts[c] < S.n ? cuts[c] : S.n;
            run(S.x, n, P);
            for (int i = 0; i < n; i++)
                if (!same(&O[i], &P[i]))
                    fail_msg("%s: row %d changes when the input stops at %d", files[k], i, n);
        }
    }
}

/* A non-finite value is refused and changes nothing; extreme finite values
 * keep everything finite and in range. */
static void test_bad_and_extreme_input(void **state) {
    (void)state;
    load("preset_step.csv");
    run(S.x, S.n, O);
    bg_seg_params p;
    bg_seg_params_default(&p);
    bg_seg *s;
    assert_int_equal(bg_seg_new(&p, &s), BG_OK);
    for (int i = 0; i < S.n; i++) {
        if (i == 100) {
            assert_int_equal(bg_seg_step(s, NAN, &P[i]), BG_ERR_INVALID);
            assert_int_equal(bg_seg_step(s, INFINITY, NULL), BG_ERR_INVALID);
        }
        assert_int_equal(bg_seg_step(s, S.x[i], &P[i]), BG_OK);
        if (!same(&O[i], &P[i]))
            fail_msg("row %d differs after a refused non-finite value", i);
    }
    bg_seg_free(s);

    assert_int_equal(bg_seg_new(&p, &s), BG_OK);
    const double ext[] = {0.0, 1e300, -1e300, 1e-300, 0.0, 1e308, -1e308, 5.0, 5.0, 5.0};
    for (int r = 0; r < 200; r++) {
        bg_seg_out o;
        assert_int_equal(bg_seg_step(s, ext[r % 10], &o), BG_OK);
        assert_true(o.score >= 0.0 && o.score <= 1.0);
        assert_true(o.scale > 0.0 && isfinite(o.scale));
    }
    bg_seg_free(s);
    /* a constant series: no change point, ever */
    assert_int_equal(bg_seg_new(&p, &s), BG_OK);
    for (int r = 0; r < 1000; r++) {
        bg_seg_out o;
        assert_int_equal(bg_seg_step(s, 42.0, &o), BG_OK);
        assert_int_equal(o.changepoint, 0);
    }
    bg_seg_free(s);
}

/* The run-length cap: a series longer than max_run keeps working and still
 * sees a late step once. */
static void test_long_series(void **state) {
    (void)state;
    bg_seg_params p;
    bg_seg_params_default(&p);
    p.max_run = 64;
    bg_seg *s;
    assert_int_equal(bg_seg_new(&p, &s), BG_OK);
    uint64_t r = 88172645463325252ull;
    int cps = 0, at = -1;
    for (int i = 0; i < 3000; i++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        double u = (double)(r >> 11) / 9007199254740992.0; /* uniform [0, 1) */
        double x = (i >= 2500 ? 30.0 : 10.0) + 2.0 * (u - 0.5);
        bg_seg_out o;
        assert_int_equal(bg_seg_step(s, x, &o), BG_OK);
        assert_true(o.map_run < p.max_run);
        if (o.changepoint) {
            cps++;
            at = i;
        }
    }
    bg_seg_free(s);
    assert_int_equal(cps, 1);
    assert_true(at >= 2500 && at <= 2505);
}

static void test_params(void **state) {
    (void)state;
    bg_seg_params p;
    bg_seg_params_default(&p);
    assert_int_equal(bg_seg_params_check(&p), BG_OK);
    assert_true(bg_seg_state_bytes(p.max_run, p.scale_window) > sizeof(double) * p.max_run);
    bg_seg *s = NULL;
    bg_seg_params q = p;
    q.hazard_len = 1.0f;
    assert_int_equal(bg_seg_params_check(&q), BG_ERR_INVALID);
    assert_int_equal(bg_seg_new(&q, &s), BG_ERR_INVALID);
    assert_null(s);
    q = p;
    q.noise_mult = NAN;
    assert_int_equal(bg_seg_params_check(&q), BG_ERR_INVALID);
    q = p;
    q.max_lag = (uint16_t)(p.max_run - 1);
    assert_int_equal(bg_seg_params_check(&q), BG_ERR_INVALID);
    q = p;
    q.scale_window = 1;
    assert_int_equal(bg_seg_params_check(&q), BG_ERR_INVALID);
    q = p;
    q.revert_memory = 0.5f;
    assert_int_equal(bg_seg_params_check(&q), BG_ERR_INVALID);
    assert_int_equal(bg_seg_params_check(NULL), BG_ERR_INVALID);
    bg_seg_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_online_and_deterministic),
        cmocka_unit_test(test_bad_and_extreme_input),
        cmocka_unit_test(test_long_series),
        cmocka_unit_test(test_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
