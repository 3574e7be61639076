/* `burstguard series` as a user meets it: a CSV in gives a header and one
 * row per input row with scores in [0, 1] and 0/1 change points; --out
 * writes the same bytes; both presets see a step once; a row's output does
 * not depend on later rows; bad input and bad options exit 2 with one line.
 * (In tests/kafka so that ctest builds the binary first; no broker used.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

static char out[1 << 20], err[1 << 16];

static int run_series(const char *const *args) {
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)h_bin();
    argv[n++] = "series";
    for (; *args && n < 15; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;
    int fd = open("series.out", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    unlink("series.err");
    pid_t pid = h_spawn(argv, fd, "series.err");
    close(fd);
    int rc = h_wait(pid, 60);
    FILE *f = fopen("series.out", "r");
    size_t r = f ? fread(out, 1, sizeof out - 1, f) : 0;
    out[r] = 0;
    if (f)
        fclose(f);
    f = fopen("series.err", "r");
    r = f ? fread(err, 1, sizeof err - 1, f) : 0;
    err[r] = 0;
    if (f)
        fclose(f);
    return rc;
}

static void write_file(const char *name, const char *text) {
    FILE *f = fopen(name, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void expect_error(const char *file, const char *needle) {
    int rc = run_series((const char *[]){"--in", file, NULL});
    if (rc != 2 || !strstr(err, needle) || strchr(err, '\n') != strrchr(err, '\n'))
        fail_msg("%s: want rc 2 and one line with '%s'; got rc %d: %s", file, needle, rc, err);
}

static void expect_args(const char *const *args, const char *needle) {
    int rc = run_series(args);
    if (rc != 2 || !strstr(err, needle) || strchr(err, '\n') != strrchr(err, '\n'))
        fail_msg("want rc 2 and one line with '%s'; got rc %d: %s", needle, rc, err);
}

static int setup(void **state) {
    (void)state;
    char dir[256];
    h_tmpdir(dir, sizeof dir, "series");
    return 0;
}

static void test_rows_and_scores(void **state) {
    (void)state;
    /* 200 rows with a step, datetime timestamps, header, CRLF on some rows */
    FILE *f = fopen("in.csv", "w");
    assert_non_null(f);
    fputs("timestamp,value\n", f);
    for (int i = 0; i < 200; i++)
        fprintf(f, "2024-01-01 %02d:%02d:00,%d%s\n", i / 60, i % 60, (i >= 120 ? 90 : 50) + i % 3,
                i % 7 ? "" : "\r");
    fclose(f);
    assert_int_equal(run_series((const char *[]){"--in", "in.csv", NULL}), 0);
    char *save, *line = strtok_r(out, "\n", &save);
    assert_string_equal(line, "timestamp,value,anomaly_score,changepoint");
    int rows = 0, cps = 0, cp_at = -1;
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        char ts[64];
        int v, cp;
        double score;
        assert_int_equal(sscanf(line, "%63[^,],%d,%lf,%d", ts, &v, &score, &cp), 4);
        assert_true(score >= 0.0 && score <= 1.0);
        assert_true(cp == 0 || cp == 1);
        if (cp) {
            cps++;
            cp_at = rows;
        }
        rows++;
    }
    assert_int_equal(rows, 200);
    assert_int_equal(cps, 1);
    assert_true(cp_at >= 120 && cp_at <= 125);
    /* --out writes the same, integer timestamps and no header work too */
    assert_int_equal(run_series((const char *[]){"--in", "in.csv", "--out", "o.csv", NULL}), 0);
    assert_int_equal(out[0], 0);
    write_file("int.csv", "1,5\n2,6\n3,5.5\n");
    assert_int_equal(run_series((const char *[]){"--in", "int.csv", NULL}), 0);
    assert_non_null(strstr(out, "\n3,5.5,0.000000,0\n"));
}

/* Both presets: the default (series) and the engine's stack see the same
 * step once; a --param changes the series preset's output; a row's output
 * does not depend on the rows after it. */
static void test_presets(void **state) {
    (void)state;
    FILE *f = fopen("step.csv", "w");
    assert_non_null(f);
    for (int i = 0; i < 300; i++)
        fprintf(f, "%d,%d\n", i, (i >= 150 ? 80 : 50) + (i * 7) % 5);
    fclose(f);
    static char full[1 << 20];
    const char *presets[][4] = {{"--in", "step.csv", NULL, NULL},
                                {"--in", "step.csv", "--preset", "series"},
                                {"--in", "step.csv", "--preset", "engine"}};
    for (int k = 0; k < 3; k++) {
        const char *args[6] = {presets[k][0], presets[k][1], presets[k][2], presets[k][3], NULL};
        assert_int_equal(run_series(args), 0);
        int rows = 0, cps = 0, cp_at = -1;
        char *save, *line = strtok_r(out, "\n", &save);
        assert_string_equal(line, "timestamp,value,anomaly_score,changepoint");
        while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
            int ts, v, cp;
            double score;
            assert_int_equal(sscanf(line, "%d,%d,%lf,%d", &ts, &v, &score, &cp), 4);
            assert_true(score >= 0.0 && score <= 1.0);
            if (cp) {
                cps++;
                cp_at = rows;
            }
            rows++;
        }
        assert_int_equal(rows, 300);
        if (cps != 1 || cp_at < 150 || cp_at > 155)
            fail_msg("preset %d: %d change points, last at %d", k, cps, cp_at);
    }
    /* online: the first 160 rows alone give the first 160 output rows */
    assert_int_equal(run_series((const char *[]){"--in", "step.csv", NULL}), 0);
    strcpy(full, out);
    f = fopen("step.csv", "r");
    FILE *g = fopen("head.csv", "w");
    assert_non_null(f);
    assert_non_null(g);
    char buf[64];
    for (int i = 0; i < 160 && fgets(buf, sizeof buf, f); i++)
        fputs(buf, g);
    fclose(f);
    fclose(g);
    assert_int_equal(run_series((const char *[]){"--in", "head.csv", NULL}), 0);
    assert_int_equal(strncmp(full, out, strlen(out)), 0);
    assert_true(strlen(out) > 1000 && strlen(out) < strlen(full));
    /* a parameter: a huge noise multiplier sees no change */
    assert_int_equal(
        run_series((const char *[]){"--in", "step.csv", "--param", "noise_mult=1000", NULL}), 0);
    assert_null(strstr(out, ",1\n"));
}

static void test_errors(void **state) {
    (void)state;
    expect_error("no-such-file.csv", "no-such-file.csv");
    write_file("bad-row.csv", "timestamp,value\n1,2\n2,3,4\n");
    expect_error("bad-row.csv", "line 3");
    write_file("non-num.csv", "timestamp,value\n1,2\n2,abc\n");
    expect_error("non-num.csv", "line 3: non-numeric value 'abc'");
    write_file("nan.csv", "1,2\n2,NaN\n");
    expect_error("nan.csv", "line 2: NaN");
    write_file("bad-ts.csv", "1,2\n2024-13-01 00:00:00,3\n");
    expect_error("bad-ts.csv", "line 2: bad timestamp");
    write_file("one-col.csv", "1\n");
    expect_error("one-col.csv", "line 1");
    assert_int_equal(run_series((const char *[]){NULL}), 2);
    assert_non_null(strstr(err, "--in FILE is required"));
    assert_int_equal(run_series((const char *[]){"--in", "in.csv", "--sensitivity", "9", NULL}), 2);
    assert_int_equal(run_series((const char *[]){"--in", "in.csv", "--bogus", NULL}), 2);
    assert_int_equal(run_series((const char *[]){"--in", "in.csv", "--preset", "x", NULL}), 2);
    assert_non_null(strstr(err, "--preset"));
    expect_args((const char *[]){"--in", "in.csv", "--param", "hazard_len=abc", NULL},
                "--param hazard_len: expected a number");
    expect_args((const char *[]){"--in", "in.csv", "--param", "bogus=1", NULL},
                "unknown series parameter 'bogus'");
    expect_args((const char *[]){"--in", "in.csv", "--param", "max_lag=0", NULL},
                "out of its range");
    expect_args((const char *[]){"--in", "in.csv", "--param", "warmup=1.5", NULL},
                "whole number");
    expect_args((const char *[]){"--in", "in.csv", "--preset", "engine", "--param",
                                 "hazard_len=100", NULL},
                "not --preset engine");
    /* bad rows are reported the same way by the engine preset */
    assert_int_equal(run_series((const char *[]){"--in", "non-num.csv", "--preset", "engine",
                                                  NULL}),
                     2);
    assert_non_null(strstr(err, "line 3: non-numeric value 'abc'"));
    /* a bad row with --out leaves no half-written file */
    assert_int_equal(run_series((const char *[]){"--in", "nan.csv", "--out", "x.csv", NULL}), 2);
    assert_int_equal(access("x.csv", F_OK), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_and_scores),
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
