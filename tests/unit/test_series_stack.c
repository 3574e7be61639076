/* The composed stack on the change-point cases of tests/data/cpd/cases.txt
 * (series + expected change-point windows), plus the burst phases: one ONSET
 * and one ENDED per burst, scores in [0, 1], the compact state size. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "detectors/series_stack.h"

#define MAXN 4096

typedef struct run {
    int n;
    double x[MAXN];
    bg_stack_out o[MAXN];
} run;

static run R;

static const char *src_dir(void) {
    const char *d = getenv("BG_SOURCE_DIR");
    return d ? d : ".";
}

static void load_and_run(const char *file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/cpd/%s", src_dir(), file);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s", path);
    char line[256];
    assert_non_null(fgets(line, sizeof line, f)); /* header */
    bg_stack_params p;
    bg_stack_params_default(&p);
    bg_stack *s;
    assert_int_equal(bg_stack_new(&p, &s), BG_OK);
    R.n = 0;
    long long t;
    double v;
    while (R.n < MAXN && fgets(line, sizeof line, f) && sscanf(line, "%lld,%lf", &t, &v) == 2) {
        R.x[R.n] = v;
        assert_int_equal(bg_stack_step(s, (int64_t)t, v, &R.o[R.n]), BG_OK);
        assert_true(R.o[R.n].score >= 0.0 && R.o[R.n].score <= 1.0);
        R.n++;
    }
    fclose(f);
    bg_stack_free(s);
    assert_true(R.n > 0);
}

static void test_cases(void **state) {
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/cpd/cases.txt", src_dir());
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
        load_and_run(file);
        int cps = 0, onsets = 0, ends = 0;
        for (int i = 0; i < R.n; i++) {
            if (R.o[i].changepoint) {
                cps++;
                if (i < lo || i > hi)
                    fail_msg("%s: change point at %d outside [%d, %d]", file, i, lo, hi);
            }
            onsets += R.o[i].phase == BG_STACK_ONSET;
            ends += R.o[i].phase == BG_STACK_ENDED;
        }
        if (cps < mn || cps > mx)
            fail_msg("%s: %d change points, want %d..%d", file, cps, mn, mx);
        /* every burst that started has ended, or is the last one */
        assert_true(ends == onsets || ends == onsets - 1);
        cases++;
    }
    fclose(f);
    assert_int_equal(cases, 6);
}

/* a one-bucket spike: exactly one short burst (ONSET at the spike, ENDED
 * within quiet + 1 buckets), score 1 at the spike, no change point */
static void test_spike_one_burst(void **state) {
    (void)state;
    load_and_run("spike.csv");
    int onsets = 0, ends = 0, onset_at = -1, end_at = -1;
    for (int i = 0; i < R.n; i++) {
        if (R.o[i].phase == BG_STACK_ONSET) {
            onsets++;
            onset_at = i;
        }
        if (R.o[i].phase == BG_STACK_ENDED) {
            ends++;
            end_at = i;
        }
    }
    assert_int_equal(onsets, 1);
    assert_int_equal(ends, 1);
    assert_int_equal(onset_at, 100);
    assert_true(end_at > 100 && end_at <= 103);
    assert_true(R.o[100].score == 1.0);
    assert_true(R.o[100].fired & BG_STACK_FIRED_SPIKE);
    assert_true(R.o[110].score < 0.5);
}

/* a lasting change: one burst, ENDED as lasting after adapt_after buckets,
 * then no burst and |z| < 4 from 30 buckets after the change */
static void test_lasting_change_adapts(void **state) {
    (void)state;
    load_and_run("level_change.csv");
    int onsets = 0, lasting = 0;
    for (int i = 0; i < R.n; i++) {
        onsets += R.o[i].phase == BG_STACK_ONSET;
        lasting += R.o[i].lasting;
        if (i >= 130) {
            assert_true(R.o[i].phase == BG_STACK_NONE);
            assert_true(fabs(R.o[i].z) < 4.0);
        }
    }
    assert_int_equal(onsets, 1);
    assert_int_equal(lasting, 1);
}

/* the step: an upward burst, caught within 5 buckets */
static void test_step_direction(void **state) {
    (void)state;
    load_and_run("step.csv");
    int first = -1;
    for (int i = 0; i < R.n && first < 0; i++)
        if (R.o[i].phase == BG_STACK_ONSET)
            first = i;
    assert_true(first >= 120 && first <= 125);
    assert_int_equal(R.o[first].dir, BG_CPD_UP);
}

static void test_params_and_sizes(void **state) {
    (void)state;
    assert_int_equal(sizeof(bg_stack_metric), 80);
    bg_stack_params p;
    bg_stack_params_default(&p);
    assert_int_equal(bg_stack_params_check(&p), BG_OK);
    p.sensitivity = 5.0f;
    bg_stack *s = NULL;
    assert_int_equal(bg_stack_new(&p, &s), BG_ERR_INVALID);
    assert_null(s);
    bg_stack_free(NULL);
    /* with BOCPD, and a NaN leaves the state as it was */
    bg_stack_params_default(&p);
    p.use_bocpd = 1;
    assert_int_equal(bg_stack_new(&p, &s), BG_OK);
    bg_stack_out o;
    for (int i = 0; i < 50; i++)
        assert_int_equal(bg_stack_step(s, i, 5.0 + (i % 3), &o), BG_OK);
    assert_int_equal(bg_stack_step(s, 50, NAN, &o), BG_ERR_INVALID);
    assert_int_equal(bg_stack_step(s, 51, 1e308, &o), BG_OK);
    assert_true(o.score >= 0.0 && o.score <= 1.0);
    bg_stack_free(s);
    /* the compact form without a BOCPD */
    bg_stack_metric m;
    bg_stack_params_default(&p);
    bg_stack_metric_init(&m);
    for (int i = 0; i < 50; i++)
        assert_int_equal(bg_stack_metric_step(&m, &p, NULL, 60 * i, 3.0, &o), BG_OK);
    assert_int_equal(o.changepoint, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_spike_one_burst),
        cmocka_unit_test(test_lasting_change_adapts),
        cmocka_unit_test(test_step_direction),
        cmocka_unit_test(test_params_and_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
