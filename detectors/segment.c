/* Online Bayesian change-point detection with a line-per-segment model; see
 * segment.h for the model, the defaults and the decision rule. This file is
 * the arithmetic.
 *
 * Per run length (index 0 = the run born after the last point, no data yet),
 * in the run's own units z = (x - anchor) / scale and u = points since the
 * run began, with prior precision diag(1/level_var, 1/slope_var) on
 * (level, slope) and noise variance ~ InvGamma(alpha0, alpha0):
 *   A     = prior precision + sum [1 u; u u^2]
 *   m     = A^-1 [sum z; sum u z]
 *   a_n   = alpha0 + n / 2
 *   b_n   = alpha0 + (sum z^2 - m' [sum z; sum u z]) / 2
 *   pred  = Student-t(z; m0 + m1 u, b_n / a_n (1 + [1 u] A^-1 [1 u]'), 2 a_n)
 * with the squared scale raised to the excursion floor when it is below it,
 * then the usual growth / change-point recursion with hazard H, computed
 * with the predictive shifted by its maximum so nothing underflows. */
#include "segment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SEG_MAX_RUN 65536u
#define SEG_MAX_WINDOW 4096u

typedef struct seg_run {
    double prob;   /* P(run length), sums to 1 over the runs in use */
    double n;      /* points in the run */
    double su;     /* sum u */
    double suu;    /* sum u^2 */
    double sz;     /* sum z */
    double suz;    /* sum u z */
    double szz;    /* sum z^2 */
    double anchor; /* series value the run is measured from */
    double scale;  /* series units per z unit, > 0 */
    int64_t start; /* index of the run's first point */
} seg_run;

struct bg_seg {
    bg_seg_params p;  /* copied at creation */
    int64_t t;        /* points seen */
    double last_x;    /* previous point */
    uint32_t nruns;   /* runs in use, 0 before the first point */
    uint32_t prev_map;/* r* after the previous point */
    int64_t last_cp;  /* index of the last change point (0 before any) */
    uint32_t nsteps;  /* |steps| in the window, <= scale_window */
    uint32_t wpos;    /* next slot of the window ring */
    double *steps;    /* [scale_window] ring of |x_t - x_t-1| */
    double *sorted;   /* [scale_window] scratch for the median */
    double *lpred;    /* [max_run] scratch: log predictive per run */
    double *lgam;     /* [max_run] lgamma((nu+1)/2) - lgamma(nu/2) for a run of n points */
    seg_run *runs;    /* [max_run] */
    double hist[8];   /* the last 8 points, ring by t % 8 */
    int pending;      /* 1 while the last change point is watched for a reversion */
    int64_t pend_t;   /* index of that change point */
    double pend_pre;  /* level before it, series units */
    double pend_jump; /* |x - pend_pre| at the change point, series units */
    double jfloor;    /* largest reverted jump, decaying, series units */
};

void bg_seg_params_default(bg_seg_params *p) {
    p->hazard_len = 10000.0f;
    p->noise_mult = 2.0f;
    p->level_var = 100.0f;
    p->slope_var = 0.001f;
    p->alpha0 = 1.0f;
    p->max_run = 512;
    p->scale_window = 128;
    p->warmup = 5;
    p->max_lag = 5;
    p->drop = 3;
    p->min_gap = 5;
    p->revert_window = 30;
    p->revert_frac = 1.0f;
    p->revert_memory = 100.0f;
}

static int pos_finite(float v) {
    return isfinite(v) && v > 0.0f;
}

bg_err bg_seg_params_check(const bg_seg_params *p) {
    if (!p || !isfinite(p->hazard_len) || p->hazard_len < 2.0f || !pos_finite(p->noise_mult) ||
        !pos_finite(p->level_var) || !pos_finite(p->slope_var) || !pos_finite(p->alpha0) ||
        p->max_run < 8 || p->max_run > SEG_MAX_RUN || p->scale_window < 2 ||
        p->scale_window > SEG_MAX_WINDOW || p->warmup < 1 || p->max_lag < 1 ||
        p->max_lag + 2u > p->max_run || p->min_gap < 1 || !isfinite(p->revert_frac) ||
        p->revert_frac < 0.0f || !isfinite(p->revert_memory) || p->revert_memory < 1.0f)
        return BG_ERR_INVALID;
    return BG_OK;
}

size_t bg_seg_state_bytes(uint32_t max_run, uint16_t scale_window) {
    return sizeof(bg_seg) + (size_t)max_run * (sizeof(seg_run) + 2u * sizeof(double)) +
           2u * (size_t)scale_window * sizeof(double);
}

/* The Student-t's normalising lgamma terms for a run of n points:
 * nu = 2 (alpha0 + n / 2). */
static double student_norm(double alpha0, double n) {
    double nu = 2.0 * (alpha0 + 0.5 * n);
    return lgamma(0.5 * (nu + 1.0)) - lgamma(0.5 * nu);
}

bg_err bg_seg_new(const bg_seg_params *p, bg_seg **out) {
    *out = NULL;
    if (bg_seg_params_check(p) != BG_OK)
        return BG_ERR_INVALID;
    bg_seg *s = calloc(1, sizeof *s);
    if (!s)
        return BG_ERR_NOMEM;
    s->p = *p;
    s->runs = calloc(p->max_run, sizeof *s->runs);
    s->lpred = calloc(p->max_run, sizeof *s->lpred);
    s->lgam = calloc(p->max_run, sizeof *s->lgam);
    s->steps = calloc(p->scale_window, sizeof *s->steps);
    s->sorted = calloc(p->scale_window, sizeof *s->sorted);
    if (!s->runs || !s->lpred || !s->lgam || !s->steps || !s->sorted) {
        bg_seg_free(s);
        return BG_ERR_NOMEM;
    }
    for (uint32_t n = 0; n < p->max_run; n++)
        s->lgam[n] = student_norm((double)p->alpha0, (double)n);
    *out = s;
    return BG_OK;
}

void bg_seg_free(bg_seg *s) {
    if (!s)
        return;
    free(s->runs);
    free(s->lpred);
    free(s->lgam);
    free(s->steps);
    free(s->sorted);
    free(s);
}

/* ---- the scale ------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* noise_mult * robust per-step sigma over the window, floored; x the current
 * point (for the floor when the window is empty or all zero). */
static double current_scale(bg_seg *s, double x) {
    uint32_t n = s->nsteps;
    double sc = 0.0;
    if (n > 0) {
        memcpy(s->sorted, s->steps, n * sizeof(double));
        qsort(s->sorted, n, sizeof(double), cmp_double);
        double med = n % 2 ? s->sorted[n / 2] : 0.5 * (s->sorted[n / 2 - 1] + s->sorted[n / 2]);
        sc = med / (0.6745 * sqrt(2.0));
        if (!(sc > 0.0)) {
            /* sticky or quantised: most steps are exactly 0 */
            double sum = 0.0;
            for (uint32_t i = 0; i < n; i++)
                sum += s->sorted[i];
            sc = sum / (double)n * sqrt(M_PI / 2.0) / sqrt(2.0);
        }
    }
    if (!(sc > 0.0) || !isfinite(sc))
        sc = fmax(1e-9 * fabs(x), 1e-12);
    sc *= (double)s->p.noise_mult;
    return isfinite(sc) ? sc : 1e300;
}

/* ---- one run's predictive ---------------------------------------------------- */

static double log_pred(const bg_seg *s, const seg_run *r, int64_t t, double x, double floor) {
    const bg_seg_params *p = &s->p;
    double u = (double)(t - r->start);
    double a00 = 1.0 / (double)p->level_var + r->n, a01 = r->su;
    double a11 = 1.0 / (double)p->slope_var + r->suu;
    double det = a00 * a11 - a01 * a01;
    double i00 = a11 / det, i01 = -a01 / det, i11 = a00 / det;
    double m0 = i00 * r->sz + i01 * r->suz, m1 = i01 * r->sz + i11 * r->suz;
    double alpha0 = (double)p->alpha0;
    double an = alpha0 + 0.5 * r->n;
    double bn = alpha0 + 0.5 * (r->szz - (m0 * r->sz + m1 * r->suz));
    if (!(bn >= 1e-12 * alpha0)) /* rounding only: the exact value is >= alpha0 */
        bn = alpha0;
    double mu = m0 + m1 * u;
    double v = bn / an * (1.0 + i00 + 2.0 * i01 * u + i11 * u * u);
    if (!(v > 0.0) || !isfinite(v))
        v = bn / an;
    double fl = floor / r->scale; /* the excursion floor, in the run's units */
    if (v < fl * fl)
        v = fl * fl;
    double nu = 2.0 * an;
    double z = (x - r->anchor) / r->scale, d = z - mu;
    double norm = r->n < (double)p->max_run ? s->lgam[(uint32_t)r->n]
                                             : student_norm(alpha0, r->n);
    return norm - 0.5 * log(nu * M_PI * v) - 0.5 * (nu + 1.0) * log1p(d * d / (nu * v));
}

static void fresh_run(seg_run *r, int64_t start, double anchor, double scale, double prob) {
    memset(r, 0, sizeof *r);
    r->prob = prob;
    r->start = start;
    r->anchor = anchor;
    r->scale = scale;
}

/* ---- one point ------------------------------------------------------------------ */

bg_err bg_seg_step(bg_seg *s, double x, bg_seg_out *out) {
    if (!isfinite(x))
        return BG_ERR_INVALID;
    const bg_seg_params *p = &s->p;
    int64_t t = s->t;
    if (t > 0) {
        double d = fabs(x - s->last_x);
        s->steps[s->wpos] = isfinite(d) ? d : 1e300;
        s->wpos = (s->wpos + 1) % p->scale_window;
        if (s->nsteps < p->scale_window)
            s->nsteps++;
    }
    double sc = current_scale(s, x);
    /* excursions: a change that went back where it came from within
     * revert_window points was the series' normal behaviour (a sawtooth, a
     * burst), so jumps of that size set a floor under the scale */
    s->jfloor *= 1.0 - 1.0 / (double)p->revert_memory;
    if (s->pending) {
        if (fabs(x - s->pend_pre) < 0.5 * s->pend_jump) {
            s->jfloor = fmax(s->jfloor, s->pend_jump);
            s->pending = 0;
        } else if (t - s->pend_t > p->revert_window) {
            s->pending = 0;
        }
    }
    double floor = (double)p->revert_frac * s->jfloor;
    sc = fmax(sc, floor);
    bg_seg_out o;
    memset(&o, 0, sizeof o);
    o.scale = sc;

    if (s->nruns == 0) {
        fresh_run(&s->runs[0], t + 1, x, sc, 1.0);
        s->nruns = 1;
    } else {
        uint32_t n = s->nruns;
        double hz = 1.0 / (double)p->hazard_len;
        double lmax = -INFINITY;
        for (uint32_t r = 0; r < n; r++) {
            s->lpred[r] = log_pred(s, &s->runs[r], t, x, floor);
            if (s->lpred[r] > lmax)
                lmax = s->lpred[r];
        }
        double cp = 0.0;
        for (uint32_t r = 0; r < n; r++) {
            seg_run *q = &s->runs[r];
            double w = isfinite(lmax) ? q->prob * exp(s->lpred[r] - lmax) : q->prob;
            cp += w;
            double u = (double)(t - q->start), z = (x - q->anchor) / q->scale;
            q->prob = w * (1.0 - hz);
            q->n += 1.0;
            q->su += u;
            q->suu += u * u;
            q->sz += z;
            q->suz += u * z;
            q->szz += z * z;
        }
        cp *= hz;
        if (n == p->max_run) {
            /* the oldest run merges into the next oldest (whose line is kept) */
            s->runs[n - 2].prob += s->runs[n - 1].prob;
            n--;
        }
        memmove(&s->runs[1], &s->runs[0], n * sizeof *s->runs);
        fresh_run(&s->runs[0], t + 1, x, sc, cp);
        n++;
        double total = 0.0;
        for (uint32_t r = 0; r < n; r++)
            total += s->runs[r].prob;
        if (!(total > 0.0) || !isfinite(total)) {
            /* cannot happen with finite input; start afresh rather than divide by 0 */
            fresh_run(&s->runs[0], t + 1, x, sc, 1.0);
            n = 1;
            total = 1.0;
        }
        uint32_t best = 0;
        double score = 0.0;
        for (uint32_t r = 0; r < n; r++) {
            s->runs[r].prob /= total;
            if (s->runs[r].prob > s->runs[best].prob)
                best = r;
            /* a change within max_lag points; the run as old as the series is none */
            if (r >= 1 && r <= p->max_lag && (int64_t)r < t)
                score += s->runs[r].prob;
        }
        s->nruns = n;
        o.map_run = best;
        o.score = t < p->warmup ? 0.0 : fmin(1.0, fmax(0.0, score));
        if (best + (uint32_t)p->drop < s->prev_map && best <= p->max_lag && t >= p->warmup &&
            t - s->last_cp >= p->min_gap) {
            o.changepoint = 1;
            s->last_cp = t;
            if (p->revert_window > 0 && best >= 1 && best <= 7) {
                /* the level before the new segment began: mean of 2 points before it */
                int64_t b = t - (int64_t)best + 1; /* first point of the new segment */
                if (b >= 2) {
                    s->pending = 1;
                    s->pend_t = t;
                    s->pend_pre = 0.5 * (s->hist[(b - 1) % 8] + s->hist[(b - 2) % 8]);
                    s->pend_jump = fabs(x - s->pend_pre);
                }
            }
        }
        s->prev_map = best;
    }
    s->last_x = x;
    s->hist[t % 8] = x;
    s->t = t + 1;
    if (out)
        *out = o;
    return BG_OK;
}
