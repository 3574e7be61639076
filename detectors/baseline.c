/* Online baseline of one metric: damped Holt level/slope + interpolated
 * seasonal profile, robust updates, warm-up schedule. See baseline.h for the
 * model; this file is the arithmetic.
 *
 * Sections: parameters -> seasonal profile (slots, int8 codec) -> forecast ->
 * update -> re-anchor. */
#include "baseline.h"

#include <math.h>
#include <string.h>

_Static_assert(sizeof(bg_baseline) == 32, "bg_baseline is the per-metric compact state: 32 bytes");

/* sigma of a Normal from its mean absolute deviation */
#define SQRT_HALF_PI 1.2533141373155003

/* ------------------------------------------------------------------------ */
/* parameters                                                                */

void bg_baseline_params_default(bg_baseline_params *p) {
    p->alpha = 0.3f;
    p->beta = 0.3f;
    p->phi = 0.95f;
    p->alpha_scale = 0.02f;
    p->alpha_seasonal = 0.05f;
    p->gamma = 0.20f;
    p->clip = 3.0f;
    p->rel_floor = 0.002f;
    p->abs_floor = 1e-9f;
    p->warmup = 8;
    p->period_s = 86400;
}

static int in01(float v, int open_low) {
    return isfinite(v) && (open_low ? v > 0.0f : v >= 0.0f) && v <= 1.0f;
}

bg_err bg_baseline_params_check(const bg_baseline_params *p) {
    if (!p || !in01(p->alpha, 1) || !in01(p->beta, 0) || !in01(p->phi, 0) ||
        !in01(p->alpha_scale, 1) || !in01(p->alpha_seasonal, 1) || !in01(p->gamma, 0) || !isfinite(p->clip) || p->clip <= 0.0f ||
        !isfinite(p->rel_floor) || p->rel_floor < 0.0f || !isfinite(p->abs_floor) ||
        p->abs_floor <= 0.0f || p->warmup < 1)
        return BG_ERR_INVALID;
    return BG_OK;
}

/* ------------------------------------------------------------------------ */
/* seasonal profile                                                          */

typedef struct slot_pos {
    int i0, i1;   /* the two slot centres around t */
    double w1;    /* weight of i1, [0, 1) */
    int nearest;  /* slot containing t */
} slot_pos;

static slot_pos slot_of(uint32_t period_s, int64_t t_s) {
    slot_pos s;
    int64_t per = (int64_t)period_s;
    int64_t tm = ((t_s % per) + per) % per;
    double pos = (double)tm / (double)per * BG_BASELINE_SLOTS - 0.5;
    double fl = floor(pos);
    s.i0 = ((int)fl + BG_BASELINE_SLOTS) % BG_BASELINE_SLOTS;
    s.i1 = (s.i0 + 1) % BG_BASELINE_SLOTS;
    s.w1 = pos - fl;
    s.nearest = (int)(tm * BG_BASELINE_SLOTS / per);
    return s;
}

static int season_learning(const bg_baseline_params *p) {
    return p->period_s > 0 && p->gamma > 0.0f;
}

static int season_active(const bg_baseline *b, const bg_baseline_params *p) {
    return season_learning(p) && b->turns >= BG_BASELINE_SLOTS && b->season_unit > 0.0f;
}

static double season_at(const bg_baseline *b, slot_pos s) {
    return ((1.0 - s.w1) * b->season[s.i0] + s.w1 * b->season[s.i1]) * (double)b->season_unit;
}

static int8_t quantise(double v, double dither) {
    double q = floor(v + dither);
    if (q > 127.0)
        q = 127.0;
    if (q < -127.0)
        q = -127.0;
    return (int8_t)q;
}

/* Add d0 to slot i0 and d1 to slot i1. Only those two are re-rounded (with
 * the dither) unless the unit has to grow, when all are re-rounded to the
 * nearest step of the new unit. */
static void season_add(bg_baseline *b, const bg_baseline_params *p, int i0, double d0, int i1,
                       double d1) {
    double off[BG_BASELINE_SLOTS];
    double unit = (double)b->season_unit;
    for (int k = 0; k < BG_BASELINE_SLOTS; k++)
        off[k] = b->season[k] * unit;
    off[i0] += d0;
    off[i1] += d1;
    double maxabs = 0.0;
    for (int k = 0; k < BG_BASELINE_SLOTS; k++)
        maxabs = fmax(maxabs, fabs(off[k]));
    if (maxabs <= 0.0)
        return;
    if (unit <= 0.0)
        unit = fmax(maxabs / 64.0, (double)p->abs_floor);
    if (maxabs / unit > 127.0) {
        unit = maxabs / 126.0;
        for (int k = 0; k < BG_BASELINE_SLOTS; k++)
            b->season[k] = quantise(off[k] / unit, 0.5);
        b->season_unit = (float)unit;
        return;
    }
    b->season_unit = (float)unit;
    /* golden-ratio sequence: deterministic, equidistributed in [0, 1) */
    double dither = fmod((double)b->n * 0.6180339887498949, 1.0);
    b->season[i0] = quantise(off[i0] / unit, dither);
    if (i1 != i0)
        b->season[i1] = quantise(off[i1] / unit, dither);
}

/* ------------------------------------------------------------------------ */
/* forecast                                                                  */

static double sigma_of(const bg_baseline *b, const bg_baseline_params *p) {
    double s = (double)b->scale * SQRT_HALF_PI;
    s = fmax(s, (double)p->rel_floor * fabs((double)b->level));
    return fmax(s, (double)p->abs_floor);
}

void bg_baseline_init(bg_baseline *b) {
    memset(b, 0, sizeof *b);
    b->last_slot = 255;
}

void bg_baseline_predict(const bg_baseline *b, const bg_baseline_params *p, int64_t t_s,
                         double *expected, double *sigma) {
    double e = (double)b->level + (double)p->phi * (double)b->slope;
    if (season_active(b, p))
        e += season_at(b, slot_of(p->period_s, t_s));
    *expected = e;
    *sigma = sigma_of(b, p);
}

/* ------------------------------------------------------------------------ */
/* update                                                                    */

static double clampd(double v, double lim) {
    return v > lim ? lim : v < -lim ? -lim : v;
}

bg_err bg_baseline_update(bg_baseline *b, const bg_baseline_params *p, int64_t t_s, double x,
                          bg_baseline_obs *obs) {
    bg_baseline_obs o;
    if (!isfinite(x))
        return BG_ERR_INVALID;
    int learn_season = season_learning(p);
    slot_pos sp = {0, 0, 0.0, 0};
    if (learn_season)
        sp = slot_of(p->period_s, t_s);
    if (b->n == 0) {
        double s0 = learn_season && season_active(b, p) ? season_at(b, sp) : 0.0;
        b->level = (float)(x - s0);
        b->slope = 0.0f;
        b->n = 1;
        if (learn_season)
            b->last_slot = (uint8_t)sp.nearest;
        o.expected = x;
        o.sigma = sigma_of(b, p);
        o.z = 0.0;
        o.warm = 0;
        if (obs)
            *obs = o;
        return BG_OK;
    }
    int active = season_active(b, p);
    double s_now = active ? season_at(b, sp) : 0.0;
    double lp = (double)b->level + (double)p->phi * (double)b->slope;
    o.expected = lp + s_now;
    o.sigma = sigma_of(b, p);
    o.warm = b->n >= p->warmup;
    double r = x - o.expected;
    o.z = r / o.sigma;
    double rc = o.warm ? clampd(r, (double)p->clip * o.sigma) : r;

    double a = fmax(active ? (double)p->alpha_seasonal : (double)p->alpha,
                    1.0 / ((double)b->n + 1.0));
    double level = lp + a * rc;
    /* with a seasonal profile in use the slope only decays: a trend term
     * would otherwise chase the cycle and fight the profile */
    double beta = active ? 0.0 : (double)p->beta;
    b->slope = (float)((double)p->phi * (double)b->slope + beta * a * rc);
    b->level = (float)level;
    double as = fmax((double)p->alpha_scale, 1.0 / (double)b->n);
    b->scale = (float)((double)b->scale + as * (fabs(rc) - (double)b->scale));

    if (learn_season) {
        if (b->last_slot != 255 && sp.nearest != b->last_slot && b->turns < 255) {
            b->turns++;
            /* the profile becomes active: the spread learnt so far holds the
             * unmodelled cycle, so the warm-up restarts on the deseasonalised
             * series */
            if (b->turns == BG_BASELINE_SLOTS)
                b->n = 0;
        }
        b->last_slot = (uint8_t)sp.nearest;
        double cycles = (double)(b->turns / BG_BASELINE_SLOTS);
        double g = fmax((double)p->gamma, 1.0 / (1.0 + cycles));
        double cur = b->season_unit > 0.0f ? season_at(b, sp) : 0.0;
        /* against the forecast level (before this update), so a level that
         * chases the cycle before the profile is active does not hide it */
        double e = x - lp - cur;
        if (o.warm)
            e = clampd(e, (double)p->clip * o.sigma);
        season_add(b, p, sp.i0, g * (1.0 - sp.w1) * e, sp.i1, g * sp.w1 * e);
    }
    if (b->n < UINT16_MAX)
        b->n++;
    if (b->n == 1) /* restarted above: the spread relearns from the next residual */
        b->scale = 0.0f;
    if (obs)
        *obs = o;
    return BG_OK;
}

void bg_baseline_coast(bg_baseline *b, const bg_baseline_params *p) {
    b->level = (float)((double)b->level + (double)p->phi * (double)b->slope);
    b->slope = (float)((double)p->phi * (double)b->slope);
}

/* ------------------------------------------------------------------------ */
/* re-anchor                                                                 */

void bg_baseline_reanchor(bg_baseline *b, const bg_baseline_params *p, int64_t t_s, double x,
                          int drop_slope) {
    double s = season_active(b, p) ? season_at(b, slot_of(p->period_s, t_s)) : 0.0;
    if (isfinite(x))
        b->level = (float)(x - s);
    if (drop_slope)
        b->slope = 0.0f;
    b->n = 1;
}
