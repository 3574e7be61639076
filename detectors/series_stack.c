/* The composed per-metric stack: baseline -> z -> CUSUM / PH / BOCPD /
 * spike -> score and burst state machine. The state machine and its
 * guarantees (one ONSET, one ENDED per burst) are described in
 * series_stack.h. */
#include "series_stack.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(bg_stack_metric) == 80, "documented per-metric state size");

void bg_stack_params_default(bg_stack_params *p) {
    memset(p, 0, sizeof *p);
    bg_baseline_params_default(&p->baseline);
    bg_cusum_params_default(&p->cusum);
    bg_ph_params_default(&p->ph);
    bg_bocpd_params_default(&p->bocpd);
    p->use_bocpd = 0;
    p->sensitivity = 1.0f;
    p->spike_z = 12.0f;
    p->z_clip = 4.0f;
    p->exit_z = 2.0f;
    p->quiet = 2;
    p->adapt_after = 6;
    p->refractory = 0;
    p->confirm = 2;
}

static int pos_finite(float v) {
    return isfinite(v) && v > 0.0f;
}

bg_err bg_stack_params_check(const bg_stack_params *p) {
    if (!p || bg_baseline_params_check(&p->baseline) != BG_OK ||
        bg_cusum_params_check(&p->cusum) != BG_OK || bg_ph_params_check(&p->ph) != BG_OK ||
        bg_bocpd_params_check(&p->bocpd) != BG_OK || (p->use_bocpd != 0 && p->use_bocpd != 1) ||
        !isfinite(p->sensitivity) || p->sensitivity < BG_CPD_SENS_MIN ||
        p->sensitivity > BG_CPD_SENS_MAX || !pos_finite(p->spike_z) || !pos_finite(p->z_clip) ||
        !pos_finite(p->exit_z) || p->quiet < 1 || p->adapt_after < 1 ||
        p->confirm < 1)
        return BG_ERR_INVALID;
    return BG_OK;
}

void bg_stack_metric_init(bg_stack_metric *m) {
    memset(m, 0, sizeof *m);
    bg_baseline_init(&m->base);
    bg_cusum_init(&m->cusum);
    bg_ph_init(&m->ph);
    m->phase = BG_STACK_NONE;
}

static double clampd(double v, double lim) {
    return v > lim ? lim : v < -lim ? -lim : v;
}

static void reset_detectors(bg_stack_metric *m, bg_bocpd *bocpd) {
    bg_cusum_init(&m->cusum);
    bg_ph_init(&m->ph);
    if (bocpd)
        bg_bocpd_reset(bocpd);
}

bg_err bg_stack_metric_step(bg_stack_metric *m, const bg_stack_params *p, bg_bocpd *bocpd,
                            int64_t t_s, double x, bg_stack_out *out) {
    bg_stack_out o;
    memset(&o, 0, sizeof o);
    if (!isfinite(x))
        return BG_ERR_INVALID;
    if (!p->use_bocpd)
        bocpd = NULL;
    float sens = p->sensitivity;
    int in_burst = m->phase == BG_STACK_ONSET || m->phase == BG_STACK_PEAK;
    /* the forecast and z come first; the baseline learns x only when x
     * does not start a burst, so an onset value never moves it */
    if (in_burst)
        bg_baseline_coast(&m->base, &p->baseline);
    bg_baseline_predict(&m->base, &p->baseline, t_s, &o.expected, &o.sigma);
    int warm = in_burst || m->base.n >= p->baseline.warmup;
    o.z = warm ? (x - o.expected) / o.sigma : 0.0;
    if (!isfinite(o.z)) /* x finite but so far off that the ratio overflowed */
        o.z = o.z > 0 ? 1e300 : -1e300;

    bg_cpd_dir a_c = BG_CPD_NONE, a_p = BG_CPD_NONE;
    int a_b = 0, spike = 0;
    double score = 0.0;
    if (warm) {
        double zc = clampd(o.z, (double)p->z_clip);
        bg_cusum_update(&m->cusum, &p->cusum, sens, zc, &a_c);
        bg_ph_update(&m->ph, &p->ph, sens, zc, &a_p);
        if (bocpd)
            bg_bocpd_update(bocpd, sens, zc, &o.p_change, &a_b);
        spike = fabs(o.z) >= (double)p->spike_z / (double)sens;
        score = fmax(bg_cusum_level(&m->cusum, &p->cusum, sens),
                     bg_ph_level(&m->ph, &p->ph, sens));
        score = fmax(score, fabs(o.z) * (double)sens / (double)p->spike_z);
        if (bocpd)
            score = fmax(score, o.p_change / bg_bocpd_threshold(&p->bocpd, sens));
    }
    o.fired = (a_c ? BG_STACK_FIRED_CUSUM : 0u) | (a_p ? BG_STACK_FIRED_PH : 0u) |
              (a_b ? BG_STACK_FIRED_BOCPD : 0u) | (spike ? BG_STACK_FIRED_SPIKE : 0u);
    int alarm = o.fired != 0;
    if (alarm)
        score = 1.0;
    o.score = fmin(1.0, fmax(0.0, score));

    bg_cpd_dir dir = a_c ? a_c : a_p ? a_p : o.z >= 0 ? BG_CPD_UP : BG_CPD_DOWN;
    if (!in_burst) {
        if (m->phase == BG_STACK_ENDED)
            m->phase = BG_STACK_NONE;
        int onset = alarm && m->refract == 0;
        if (m->refract > 0)
            m->refract--;
        if (!onset) {
            bg_err e = bg_baseline_update(&m->base, &p->baseline, t_s, x, NULL);
            if (e != BG_OK)
                return e;
        } else {
            m->phase = BG_STACK_ONSET;
            m->dir = (int8_t)dir;
            m->burst_len = 1;
            m->quiet_run = 0;
            m->burst_mean = (float)x;
            m->peak_z = (float)fabs(o.z);
            o.changepoint = p->confirm == 1;
            /* the detectors restart to measure the burst afresh */
            bg_cusum_init(&m->cusum);
        }
    } else {
        m->phase = BG_STACK_PEAK;
        if (m->burst_len < UINT16_MAX)
            m->burst_len++;
        m->burst_mean = (float)((double)m->burst_mean +
                                (x - (double)m->burst_mean) / (double)m->burst_len);
        m->peak_z = (float)fmax((double)m->peak_z, fabs(o.z));
        int elevated = alarm || fabs(o.z) >= (double)p->exit_z / (double)sens;
        m->quiet_run = elevated ? 0 : (uint16_t)(m->quiet_run + 1);
        if (m->burst_len == p->confirm && m->quiet_run == 0)
            o.changepoint = 1;
        if (m->quiet_run >= p->quiet) {
            m->phase = BG_STACK_ENDED;
            m->refract = p->refractory;
            reset_detectors(m, bocpd);
        } else if (m->burst_len >= p->adapt_after) {
            m->phase = BG_STACK_ENDED;
            m->refract = p->refractory;
            bg_baseline_reanchor(&m->base, &p->baseline, t_s, (double)m->burst_mean, 1);
            reset_detectors(m, bocpd);
            o.lasting = 1;
        }
    }
    o.phase = (bg_stack_phase)m->phase;
    o.dir = (bg_cpd_dir)m->dir;
    if (out)
        *out = o;
    return BG_OK;
}

/* ------------------------------------------------------------------------ */
/* owning form                                                               */

struct bg_stack {
    bg_stack_params p;  /* copied at creation */
    bg_stack_metric m;  /* the metric's state */
    bg_bocpd *bocpd;    /* owned; NULL unless p.use_bocpd */
};

bg_err bg_stack_new(const bg_stack_params *p, bg_stack **out) {
    *out = NULL;
    if (bg_stack_params_check(p) != BG_OK)
        return BG_ERR_INVALID;
    bg_stack *s = calloc(1, sizeof *s);
    if (!s)
        return BG_ERR_NOMEM;
    s->p = *p;
    bg_stack_metric_init(&s->m);
    if (p->use_bocpd) {
        bg_err e = bg_bocpd_new(&p->bocpd, &s->bocpd);
        if (e != BG_OK) {
            free(s);
            return e;
        }
    }
    *out = s;
    return BG_OK;
}

void bg_stack_free(bg_stack *s) {
    if (!s)
        return;
    bg_bocpd_free(s->bocpd);
    free(s);
}

bg_err bg_stack_step(bg_stack *s, int64_t t_s, double x, bg_stack_out *out) {
    return bg_stack_metric_step(&s->m, &s->p, s->bocpd, t_s, x, out);
}
