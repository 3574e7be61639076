/* Change-point detectors: CUSUM, Page-Hinkley, BOCPD. See cpd.h for the
 * definitions and defaults; this file is the arithmetic.
 *
 * BOCPD (R. P. Adams, D. J. C. MacKay, "Bayesian Online Changepoint
 * Detection", 2007), per update with hazard H:
 *   pred_r   = Student-t(z; mu_r, beta_r (kappa_r + 1) / (alpha_r kappa_r), 2 alpha_r)
 *   P'(r+1)  = P(r) pred_r (1 - H)          growth
 *   P'(0)    = sum_r P(r) pred_r H          change
 *   P'       /= sum P'
 * and the Normal-Gamma statistics of run r+1 are those of run r updated with
 * z; run 0 restarts from the prior. Truncation: growth out of the last kept
 * run length is added back to it, keeping that entry's statistics. The
 * predictive is evaluated in log space and shifted by its maximum, so very
 * unlikely inputs do not underflow the whole distribution. */
#include "cpd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int sens_ok(float sens) {
    return isfinite(sens) && sens >= BG_CPD_SENS_MIN && sens <= BG_CPD_SENS_MAX;
}

/* ------------------------------------------------------------------------ */
/* CUSUM                                                                     */

void bg_cusum_params_default(bg_cusum_params *p) {
    p->k = 0.5f;
    p->h = 8.0f;
}

bg_err bg_cusum_params_check(const bg_cusum_params *p) {
    if (!p || !isfinite(p->k) || p->k < 0.0f || !isfinite(p->h) || p->h <= 0.0f)
        return BG_ERR_INVALID;
    return BG_OK;
}

void bg_cusum_init(bg_cusum *c) {
    c->pos = 0.0f;
    c->neg = 0.0f;
}

bg_err bg_cusum_update(bg_cusum *c, const bg_cusum_params *p, float sens, double z,
                       bg_cpd_dir *alarm) {
    *alarm = BG_CPD_NONE;
    if (!isfinite(z) || !sens_ok(sens))
        return BG_ERR_INVALID;
    double h = (double)p->h / (double)sens;
    double pos = fmax(0.0, (double)c->pos + z - (double)p->k);
    double neg = fmax(0.0, (double)c->neg - z - (double)p->k);
    if (pos > h || neg > h) {
        *alarm = pos >= neg ? BG_CPD_UP : BG_CPD_DOWN;
        pos = neg = 0.0;
    }
    c->pos = (float)pos;
    c->neg = (float)neg;
    return BG_OK;
}

double bg_cusum_level(const bg_cusum *c, const bg_cusum_params *p, float sens) {
    return fmax((double)c->pos, (double)c->neg) * (double)sens / (double)p->h;
}

/* ------------------------------------------------------------------------ */
/* Page-Hinkley                                                              */

void bg_ph_params_default(bg_ph_params *p) {
    p->delta = 0.5f;
    p->lambda = 15.0f;
}

bg_err bg_ph_params_check(const bg_ph_params *p) {
    if (!p || !isfinite(p->delta) || p->delta < 0.0f || !isfinite(p->lambda) || p->lambda <= 0.0f)
        return BG_ERR_INVALID;
    return BG_OK;
}

void bg_ph_init(bg_ph *h) {
    memset(h, 0, sizeof *h);
}

bg_err bg_ph_update(bg_ph *h, const bg_ph_params *p, float sens, double z, bg_cpd_dir *alarm) {
    *alarm = BG_CPD_NONE;
    if (!isfinite(z) || !sens_ok(sens))
        return BG_ERR_INVALID;
    if (h->n < UINT32_MAX)
        h->n++;
    double mean = (double)h->mean + (z - (double)h->mean) / (double)h->n;
    double up = (double)h->up + z - mean - (double)p->delta;
    double dn = (double)h->dn + z - mean + (double)p->delta;
    double up_min = fmin((double)h->up_min, up);
    double dn_max = fmax((double)h->dn_max, dn);
    double lam = (double)p->lambda / (double)sens;
    double su = up - up_min, sd = dn_max - dn;
    if (su > lam || sd > lam) {
        *alarm = su >= sd ? BG_CPD_UP : BG_CPD_DOWN;
        bg_ph_init(h);
        return BG_OK;
    }
    h->mean = (float)mean;
    h->up = (float)up;
    h->up_min = (float)up_min;
    h->dn = (float)dn;
    h->dn_max = (float)dn_max;
    return BG_OK;
}

double bg_ph_level(const bg_ph *h, const bg_ph_params *p, float sens) {
    double su = (double)h->up - (double)h->up_min, sd = (double)h->dn_max - (double)h->dn;
    return fmax(su, sd) * (double)sens / (double)p->lambda;
}

/* ------------------------------------------------------------------------ */
/* BOCPD                                                                     */

#define BOCPD_MAX_RUN 4096u

struct bg_bocpd {
    bg_bocpd_params p; /* copied at creation */
    uint32_t n;        /* run lengths currently in use, 1..p.max_run */
    int armed;         /* 1 when the next crossing of the threshold is an alarm */
    double *prob;      /* [max_run] P(r_t = r), sums to 1 over [0, n) */
    double *mu;        /* [max_run] posterior mean of run r */
    double *kappa;     /* [max_run] pseudo-observations of the mean */
    double *alpha;     /* [max_run] Gamma shape of the precision */
    double *beta;      /* [max_run] Gamma rate of the precision */
    double *work;      /* [max_run] scratch: log predictive */
};

void bg_bocpd_params_default(bg_bocpd_params *p) {
    p->hazard_len = 200.0f;
    p->max_run = 64;
    p->recent = 5;
    p->threshold = 0.6f;
    p->mu0 = 0.0f;
    p->kappa0 = 1.0f;
    p->alpha0 = 1.0f;
    p->beta0 = 1.0f;
}

bg_err bg_bocpd_params_check(const bg_bocpd_params *p) {
    if (!p || !isfinite(p->hazard_len) || p->hazard_len < 2.0f || p->max_run < 2 ||
        p->max_run > BOCPD_MAX_RUN || p->recent < 1 || p->recent >= p->max_run ||
        !isfinite(p->threshold) || p->threshold <= 0.0f || p->threshold >= 1.0f ||
        !isfinite(p->mu0) || !isfinite(p->kappa0) || p->kappa0 <= 0.0f ||
        !isfinite(p->alpha0) || p->alpha0 <= 0.0f || !isfinite(p->beta0) || p->beta0 <= 0.0f)
        return BG_ERR_INVALID;
    return BG_OK;
}

size_t bg_bocpd_state_bytes(uint32_t max_run) {
    return sizeof(bg_bocpd) + 6u * (size_t)max_run * sizeof(double);
}

static void set_prior(bg_bocpd *b, uint32_t r) {
    b->mu[r] = (double)b->p.mu0;
    b->kappa[r] = (double)b->p.kappa0;
    b->alpha[r] = (double)b->p.alpha0;
    b->beta[r] = (double)b->p.beta0;
}

void bg_bocpd_reset(bg_bocpd *b) {
    b->n = 1;
    b->armed = 1;
    b->prob[0] = 1.0;
    set_prior(b, 0);
}

bg_err bg_bocpd_new(const bg_bocpd_params *p, bg_bocpd **out) {
    *out = NULL;
    if (bg_bocpd_params_check(p) != BG_OK)
        return BG_ERR_INVALID;
    bg_bocpd *b = calloc(1, sizeof *b);
    double *arr = calloc(6u * (size_t)p->max_run, sizeof(double));
    if (!b || !arr) {
        free(b);
        free(arr);
        return BG_ERR_NOMEM;
    }
    b->p = *p;
    size_t m = p->max_run;
    b->prob = arr;
    b->mu = arr + m;
    b->kappa = arr + 2 * m;
    b->alpha = arr + 3 * m;
    b->beta = arr + 4 * m;
    b->work = arr + 5 * m;
    bg_bocpd_reset(b);
    *out = b;
    return BG_OK;
}

void bg_bocpd_free(bg_bocpd *b) {
    if (!b)
        return;
    free(b->prob);
    free(b);
}

double bg_bocpd_threshold(const bg_bocpd_params *p, float sens) {
    double t = 1.0 - (1.0 - (double)p->threshold) * (double)sens;
    return fmin(0.99, fmax(0.05, t));
}

static double log_student_t(double x, double mu, double kappa, double alpha, double beta) {
    double nu = 2.0 * alpha;
    double s2 = beta * (kappa + 1.0) / (alpha * kappa);
    double d = x - mu;
    return lgamma(0.5 * (nu + 1.0)) - lgamma(0.5 * nu) - 0.5 * log(nu * M_PI * s2) -
           0.5 * (nu + 1.0) * log1p(d * d / (nu * s2));
}

bg_err bg_bocpd_update(bg_bocpd *b, float sens, double z, double *p_change, int *alarm) {
    *alarm = 0;
    *p_change = 0.0;
    if (!isfinite(z) || !sens_ok(sens))
        return BG_ERR_INVALID;
    uint32_t n = b->n, m = b->p.max_run;
    double hz = 1.0 / (double)b->p.hazard_len;
    double lmax = -INFINITY;
    for (uint32_t r = 0; r < n; r++) {
        b->work[r] = log_student_t(z, b->mu[r], b->kappa[r], b->alpha[r], b->beta[r]);
        lmax = fmax(lmax, b->work[r]);
    }
    double cp = 0.0;
    for (uint32_t r = 0; r < n; r++) {
        b->work[r] = b->prob[r] * exp(b->work[r] - lmax); /* P(r) * pred_r, rescaled */
        cp += b->work[r];
    }
    cp *= hz;
    uint32_t nn = n < m ? n + 1 : m;
    /* growth, from the oldest down so each slot is read before it is written */
    if (n == m) {
        /* the last kept run absorbs its own growth and that of run m-2 */
        double keep = b->work[m - 1] * (1.0 - hz);
        double from = b->work[m - 2] * (1.0 - hz);
        b->prob[m - 1] = keep + from;
        /* statistics: the longer run's, updated with z */
    }
    for (uint32_t r = (n == m ? m - 1 : n); r-- > 0;) {
        uint32_t dst = r + 1;
        if (dst == m - 1 && n == m) {
            /* prob already set above; statistics of the old last run */
            continue;
        }
        b->prob[dst] = b->work[r] * (1.0 - hz);
        b->mu[dst] = b->mu[r];
        b->kappa[dst] = b->kappa[r];
        b->alpha[dst] = b->alpha[r];
        b->beta[dst] = b->beta[r];
    }
    /* Normal-Gamma update of every grown run (1..nn-1) with z */
    for (uint32_t r = 1; r < nn; r++) {
        double k = b->kappa[r], mu = b->mu[r], d = z - mu;
        b->mu[r] = (k * mu + z) / (k + 1.0);
        b->kappa[r] = k + 1.0;
        b->alpha[r] += 0.5;
        b->beta[r] += k * d * d / (2.0 * (k + 1.0));
    }
    b->prob[0] = cp;
    set_prior(b, 0);
    b->n = nn;
    double total = 0.0;
    for (uint32_t r = 0; r < nn; r++)
        total += b->prob[r];
    if (!(total > 0.0) || !isfinite(total)) {
        /* every run gave zero weight (cannot happen with finite z, kept as a guard) */
        bg_bocpd_reset(b);
        total = 1.0;
    }
    /* a "recent change" is a run shorter than `recent` that is also shorter
     * than the time since the reset: the reset itself is not a change */
    uint32_t lim = b->p.recent < b->n - 1 ? b->p.recent : b->n - 1;
    double pc = 0.0;
    for (uint32_t r = 0; r < b->n; r++) {
        b->prob[r] /= total;
        if (r < lim)
            pc += b->prob[r];
    }
    *p_change = pc;
    double thr = bg_bocpd_threshold(&b->p, sens);
    if (pc >= thr && b->armed) {
        *alarm = 1;
        b->armed = 0;
    } else if (pc < thr) {
        b->armed = 1;
    }
    return BG_OK;
}

const double *bg_bocpd_runlength(const bg_bocpd *b, uint32_t *n) {
    *n = b->n;
    return b->prob;
}

uint32_t bg_bocpd_map_run(const bg_bocpd *b) {
    uint32_t best = 0;
    for (uint32_t r = 1; r < b->n; r++)
        if (b->prob[r] > b->prob[best])
            best = r;
    return best;
}
