/* `burstguard series --in FILE.csv [--out FILE.csv] [--preset series|engine]
 *  [--sensitivity X]`
 *
 * Runs a change-point scorer over a `timestamp,value` CSV, the format of the
 * public anomaly and change-point benchmarks, and writes
 * `timestamp,value,anomaly_score,changepoint`: a header, then one row per
 * input row, in order, each computed before the next row is read (online).
 * The timestamp and value columns are echoed as written.
 *
 * Presets:
 *   series  (default) the series scorer of detectors/segment.h: Bayesian
 *           online change-point detection with a line per segment, its own
 *           defaults, one change point per change; rows are taken as equally
 *           spaced (timestamps are validated and echoed, not used)
 *   engine  the engine's per-identity baseline + change-point stack
 *           (detectors/series_stack.h) with the engine's defaults, as one
 *           identity's metric would see the series
 * --sensitivity scales either: for `series` it divides the noise scale, for
 * `engine` it divides every threshold.
 *
 * Input: an optional header line (a first line whose value column is not a
 * number); blank lines are skipped; CRLF is accepted; a field may be wrapped
 * in double quotes. Timestamps are `YYYY-MM-DD HH:MM:SS` (or with `T`), read
 * as UTC, or integers (seconds). Values are finite decimal numbers.
 *
 * Errors (exit 2, one line on stderr naming the file and line): missing or
 * unreadable file, a row without exactly two fields, a bad timestamp, a
 * non-numeric, NaN or infinite value, a line over 64 KiB. Rows before the bad
 * one have been written to stdout; an --out file is removed. Exit 1 when the
 * output cannot be written.
 *
 * bg_series_process() (the engine preset) and bg_series_process_preset()
 * are the whole loop over streams; the first is also driven by the fuzz
 * target tests/fuzz/fuzz_series_csv.c. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "yaml_doc.h"
#include "detectors/segment.h"
#include "detectors/series_stack.h"

#define SERIES_LINE_MAX (64 * 1024)

/* Not in a header (the module's only caller outside this file is the fuzz
 * target, which declares it too): 0 ok, 1 write or memory failure, 2 bad
 * input; err gets one line, "LINE: what" or a plain message. */
int bg_series_process(FILE *in, FILE *out, const bg_stack_params *p, char *err, size_t err_size);
/* The same with a choice of scorer: seg != NULL runs the series preset with
 * those parameters, else the engine stack with p. */
int bg_series_process_preset(FILE *in, FILE *out, const bg_stack_params *p,
                             const bg_seg_params *seg, char *err, size_t err_size);

static void set_err(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

/* ---- one field --------------------------------------------------------- */

typedef struct field {
    const char *s; /* start, not NUL-terminated */
    size_t n;      /* length */
} field;

static int is_space(char c) {
    return c == ' ' || c == '\t';
}

static field trim(const char *s, size_t n) {
    while (n && is_space(*s)) {
        s++;
        n--;
    }
    while (n && is_space(s[n - 1]))
        n--;
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s++;
        n -= 2;
    }
    field f = {s, n};
    return f;
}

static int digits(const char *s, size_t n, int *out) {
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}


static int days_in_month(int y, int m) {
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

/* 1 and *t (seconds) on success */
static int parse_time(field f, int64_t *t) {
    const char *s = f.s;
    if (f.n == 19 && s[4] == '-' && s[7] == '-' && (s[10] == ' ' || s[10] == 'T') &&
        s[13] == ':' && s[16] == ':') {
        int y, mo, d, h, mi, se;
        if (!digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) ||
            !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &se))
            return 0;
        if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
            se > 60)
            return 0;
        *t = bg_yaml_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
        return 1;
    }
    size_t i = 0;
    if (f.n && (s[0] == '-' || s[0] == '+'))
        i = 1;
    if (i == f.n || f.n - i > 18) /* 18 digits always fit in int64 */
        return 0;
    int64_t v = 0;
    for (; i < f.n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *t = s[0] == '-' ? -v : v;
    return 1;
}

/* 1 number, 0 not a number, -1 NaN or infinite */
static int parse_value(field f, double *v) {
    char buf[128];
    if (f.n == 0 || f.n >= sizeof buf)
        return 0;
    memcpy(buf, f.s, f.n);
    buf[f.n] = 0;
    for (size_t i = 0; i < f.n; i++) {
        char c = buf[i];
        /* decimal notation only: no hex floats, no "nan(...)" payloads */
        if (!((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' ||
              c == 'E')) {
            char lower[8] = {0};
            for (size_t k = 0; k < f.n && k < 7; k++)
                lower[k] = (char)(buf[k] | 0x20);
            const char *l = lower + (lower[0] == '-' || lower[0] == '+');
            if (!strncmp(l, "nan", 3) || !strncmp(l, "inf", 3))
                return -1;
            return 0;
        }
    }
    char *end;
    errno = 0;
    double d = strtod(buf, &end);
    if (end != buf + f.n)
        return 0;
    if (!isfinite(d))
        return -1; /* overflow to infinity */
    *v = d;
    return 1;
}

/* ---- the loop ------------------------------------------------------------ */

int bg_series_process(FILE *in, FILE *out, const bg_stack_params *p, char *err, size_t err_size) {
    return bg_series_process_preset(in, out, p, NULL, err, err_size);
}

int bg_series_process_preset(FILE *in, FILE *out, const bg_stack_params *p,
                             const bg_seg_params *seg, char *err, size_t err_size) {
    bg_stack *st = NULL;
    bg_seg *sg = NULL;
    bg_err e = seg ? bg_seg_new(seg, &sg) : bg_stack_new(p, &st);
    if (e != BG_OK) {
        set_err(err, err_size, "cannot create the detector stack: %s", bg_err_str(e));
        return e == BG_ERR_NOMEM ? 1 : 2;
    }
    char *line = malloc(SERIES_LINE_MAX + 2);
    if (!line) {
        bg_stack_free(st);
        bg_seg_free(sg);
        set_err(err, err_size, "out of memory");
        return 1;
    }
    int rc = 0;
    unsigned long lineno = 0;
    int seen_row = 0;
    if (fputs("timestamp,value,anomaly_score,changepoint\n", out) < 0)
        rc = 1;
    while (rc == 0) {
        /* read one line by hand: fgets cannot tell an embedded NUL from the end */
        size_t n = 0;
        int c = 0, too_long = 0, nul = 0;
        while ((c = getc(in)) != EOF && c != '\n') {
            if (c == 0)
                nul = 1;
            if (n < SERIES_LINE_MAX)
                line[n++] = (char)c;
            else
                too_long = 1;
        }
        if (c == EOF && n == 0 && !too_long) {
            if (ferror(in)) {
                set_err(err, err_size, "read error: %s", strerror(errno));
                rc = 1;
            }
            break;
        }
        lineno++;
        if (too_long) {
            set_err(err, err_size, "line %lu: longer than %d bytes", lineno, SERIES_LINE_MAX);
            rc = 2;
            break;
        }
        if (nul) {
            set_err(err, err_size, "line %lu: bad row: contains a NUL byte", lineno);
            rc = 2;
            break;
        }
        if (n && line[n - 1] == '\r')
            n--;
        line[n] = 0;
        field whole = trim(line, n);
        if (whole.n == 0)
            continue;
        const char *comma = memchr(line, ',', n);
        if (!comma || memchr(comma + 1, ',', n - (size_t)(comma + 1 - line))) {
            set_err(err, err_size, "line %lu: bad row: expected 2 comma-separated fields "
                                   "(timestamp,value)", lineno);
            rc = 2;
            break;
        }
        field ft = trim(line, (size_t)(comma - line));
        field fv = trim(comma + 1, n - (size_t)(comma + 1 - line));
        double v = 0.0;
        int pv = parse_value(fv, &v);
        int64_t t = 0;
        int pt = parse_time(ft, &t);
        if (!seen_row && lineno == 1 && pv == 0 && !pt) {
            seen_row = 1; /* header */
            continue;
        }
        seen_row = 1;
        if (!pt) {
            set_err(err, err_size,
                    "line %lu: bad timestamp '%.*s' (want YYYY-MM-DD HH:MM:SS or an integer)",
                    lineno, (int)(ft.n > 40 ? 40 : ft.n), ft.s);
            rc = 2;
            break;
        }
        if (pv <= 0) {
            set_err(err, err_size, "line %lu: %s value '%.*s'", lineno,
                    pv < 0 ? "NaN or infinite" : "non-numeric", (int)(fv.n > 40 ? 40 : fv.n),
                    fv.s);
            rc = 2;
            break;
        }
        double score = 0.0;
        int cp = 0;
        if (sg) {
            bg_seg_out o;
            e = bg_seg_step(sg, v, &o);
            score = o.score;
            cp = o.changepoint;
        } else {
            bg_stack_out o;
            e = bg_stack_step(st, t, v, &o);
            score = o.score;
            cp = o.changepoint;
        }
        if (e != BG_OK) {
            set_err(err, err_size, "line %lu: %s", lineno, bg_err_str(e));
            rc = 2;
            break;
        }
        if (fprintf(out, "%.*s,%.*s,%.6f,%d\n", (int)ft.n, ft.s, (int)fv.n, fv.s, score, cp) < 0)
            rc = 1;
    }
    if (rc == 0 && fflush(out) != 0)
        rc = 1;
    if (rc == 1 && !err[0])
        set_err(err, err_size, "cannot write the output: %s", strerror(errno));
    free(line);
    bg_stack_free(st);
    bg_seg_free(sg);
    return rc;
}

/* ---- the series preset's parameters (--param NAME=VALUE) ---------------------- */

typedef enum seg_type { SEG_F32, SEG_U16, SEG_U32 } seg_type;

/* One row per bg_seg_params field; ranges are checked by bg_seg_params_check. */
static const struct seg_key {
    const char *name;
    seg_type type;
    size_t off;
} seg_keys[] = {
    {"hazard_len", SEG_F32, offsetof(bg_seg_params, hazard_len)},
    {"noise_mult", SEG_F32, offsetof(bg_seg_params, noise_mult)},
    {"level_var", SEG_F32, offsetof(bg_seg_params, level_var)},
    {"slope_var", SEG_F32, offsetof(bg_seg_params, slope_var)},
    {"alpha0", SEG_F32, offsetof(bg_seg_params, alpha0)},
    {"max_run", SEG_U32, offsetof(bg_seg_params, max_run)},
    {"scale_window", SEG_U16, offsetof(bg_seg_params, scale_window)},
    {"warmup", SEG_U16, offsetof(bg_seg_params, warmup)},
    {"max_lag", SEG_U16, offsetof(bg_seg_params, max_lag)},
    {"drop", SEG_U16, offsetof(bg_seg_params, drop)},
    {"min_gap", SEG_U16, offsetof(bg_seg_params, min_gap)},
    {"revert_window", SEG_U16, offsetof(bg_seg_params, revert_window)},
    {"revert_frac", SEG_F32, offsetof(bg_seg_params, revert_frac)},
    {"revert_memory", SEG_F32, offsetof(bg_seg_params, revert_memory)},
};

/* "NAME=VALUE" into sp; 0 ok, else a usage error was printed (returns 2). */
static int set_seg_param(bg_seg_params *sp, const char *arg) {
    const char *eq = strchr(arg, '=');
    size_t n = eq ? (size_t)(eq - arg) : 0;
    for (size_t i = 0; eq && i < sizeof seg_keys / sizeof seg_keys[0]; i++) {
        const struct seg_key *k = &seg_keys[i];
        if (strlen(k->name) != n || strncmp(k->name, arg, n))
            continue;
        char *end;
        errno = 0;
        double v = strtod(eq + 1, &end);
        if (errno || end == eq + 1 || *end || !isfinite(v))
            return bg_cli_usage_error("--param %s: expected a number, got '%s'", k->name,
                                      eq + 1);
        char *f = (char *)sp + k->off;
        if (k->type == SEG_F32) {
            float x = (float)v;
            memcpy(f, &x, sizeof x);
        } else {
            double lim = k->type == SEG_U16 ? 65535.0 : 4294967295.0;
            if (v < 0 || v > lim || v != floor(v))
                return bg_cli_usage_error("--param %s: expected a whole number 0..%.0f, got '%s'",
                                          k->name, lim, eq + 1);
            if (k->type == SEG_U16) {
                uint16_t x = (uint16_t)v;
                memcpy(f, &x, sizeof x);
            } else {
                uint32_t x = (uint32_t)v;
                memcpy(f, &x, sizeof x);
            }
        }
        return 0;
    }
    return bg_cli_usage_error("--param: unknown series parameter '%.*s' (see --help)",
                              (int)(eq ? n : strlen(arg)), arg);
}

/* ---- the command ---------------------------------------------------------- */

static const char *series_usage = "usage: burstguard series --in FILE.csv [--out FILE.csv] "
                                  "[--preset series|engine] [--param NAME=VALUE] [--sensitivity X]";

int bg_series_main(int argc, char **argv) {
    const char *in_path = NULL, *out_path = NULL;
    bg_stack_params p;
    bg_stack_params_default(&p);
    bg_seg_params sp;
    bg_seg_params_default(&sp);
    int engine = 0, params_set = 0;
    double sens = 1.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("%s\n"
                   "  reads timestamp,value rows (optional header; timestamps YYYY-MM-DD HH:MM:SS\n"
                   "  or integer seconds) and writes timestamp,value,anomaly_score,changepoint,\n"
                   "  online, one row per input row.\n"
                   "  --preset series  (default) the series scorer: Bayesian online change-point\n"
                   "                   detection, a line per segment, one alarm per change\n"
                   "  --preset engine  the engine's per-identity baseline + change-point stack\n"
                   "  --param NAME=VALUE  sets one parameter of the series preset (repeatable;\n"
                   "                   see detectors/segment.h):",
                   series_usage);
            for (size_t k = 0; k < sizeof seg_keys / sizeof seg_keys[0]; k++)
                printf(" %s", seg_keys[k].name);
            printf("\n  --sensitivity X  0.25..4, default 1; higher alarms earlier\n");
            return 0;
        }
        if (!strcmp(a, "--in") || !strcmp(a, "--out") || !strcmp(a, "--sensitivity") ||
            !strcmp(a, "--preset") || !strcmp(a, "--param")) {
            if (i + 1 >= argc)
                return bg_cli_usage_error("%s needs a value (%s)", a, series_usage);
            const char *v = argv[++i];
            if (!strcmp(a, "--in"))
                in_path = v;
            else if (!strcmp(a, "--out"))
                out_path = v;
            else if (!strcmp(a, "--param")) {
                if (set_seg_param(&sp, v) != 0)
                    return 2;
                params_set = 1;
            } else if (!strcmp(a, "--preset")) {
                if (!strcmp(v, "series"))
                    engine = 0;
                else if (!strcmp(v, "engine"))
                    engine = 1;
                else
                    return bg_cli_usage_error("--preset: expected series or engine, got '%s'", v);
            } else {
                char *end;
                errno = 0;
                double s = strtod(v, &end);
                if (errno || end == v || *end || !(s >= BG_CPD_SENS_MIN && s <= BG_CPD_SENS_MAX))
                    return bg_cli_usage_error(
                        "--sensitivity: expected a number from %.2f to %.0f, got '%s'",
                        (double)BG_CPD_SENS_MIN, (double)BG_CPD_SENS_MAX, v);
                sens = s;
            }
            continue;
        }
        if (a[0] == '-')
            return bg_cli_usage_error("series: unknown option '%s' (%s)", a, series_usage);
        return bg_cli_usage_error("series: unexpected argument '%s' (%s)", a, series_usage);
    }
    if (!in_path)
        return bg_cli_usage_error("series: --in FILE is required (%s)", series_usage);
    if (engine && params_set)
        return bg_cli_usage_error("series: --param sets the series preset, not --preset engine");
    sp.noise_mult = (float)((double)sp.noise_mult / sens);
    if (!engine && bg_seg_params_check(&sp) != BG_OK)
        return bg_cli_usage_error("series: a --param value is out of its range (see "
                                  "detectors/segment.h)");
    FILE *in = fopen(in_path, "r");
    if (!in)
        return bg_cli_usage_error("series: cannot open %s: %s", in_path, strerror(errno));
    FILE *out = stdout;
    if (out_path) {
        out = fopen(out_path, "w");
        if (!out) {
            int en = errno;
            fclose(in);
            fprintf(stderr, "burstguard: series: cannot create %s: %s\n", out_path, strerror(en));
            return 1;
        }
    }
    p.sensitivity = (float)sens;
    char err[512] = "";
    int rc = bg_series_process_preset(in, out, &p, engine ? NULL : &sp, err, sizeof err);
    fclose(in);
    if (out_path) {
        if (fclose(out) != 0 && rc == 0) {
            rc = 1;
            snprintf(err, sizeof err, "cannot write the output: %s", strerror(errno));
        }
        if (rc != 0)
            remove(out_path);
    }
    if (rc != 0)
        fprintf(stderr, "burstguard: series: %s: %s\n",
                rc == 2 ? in_path : (out_path ? out_path : "stdout"), err);
    return rc;
}
