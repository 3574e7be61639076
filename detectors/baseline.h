/* bg_baseline: an online baseline of one bucketed metric (one identity's api
 * calls per bucket, tokens, cost, ...), small enough to keep one per metric
 * per identity.
 *
 * Model: damped Holt (level + slope) plus an additive seasonal profile of
 * BG_BASELINE_SLOTS slots over a period (default one day, so 2-hour slots),
 * read by linear interpolation between slot centres so that a smooth daily
 * cycle is not a staircase. Updates are robust: once warm, a residual is
 * clipped to +-clip sigma before it moves the level, slope, spread or profile,
 * so a spike barely moves the baseline. Cold start follows a warm-up schedule
 * (smoothing weight max(alpha, 1/(n+1))), so the first buckets are learnt
 * almost as a running mean. The profile is used for prediction only after one
 * full period of slot changes has been seen; before that it learns with weight
 * max(gamma, 1/cycles). While the profile is in use the slope only decays
 * (a trend term would chase the cycle), and when it comes into use the
 * warm-up restarts, since the spread learnt until then holds the cycle.
 *
 * The spread is an EWMA of |clipped residual| times sqrt(pi/2) (sigma for a
 * Normal residual), with floors (absolute, relative to |level|), so a flat
 * metric does not turn every wiggle into infinity sigma.
 *
 * State: 32 bytes (sizeof(bg_baseline), checked at compile time). The
 * seasonal offsets are int8 in units of season_unit (auto-ranged: the unit
 * grows when an offset would not fit, so resolution is max|offset|/254).
 * Rounding uses a deterministic dither so slow updates are not lost.
 *
 * A lasting change is handled by the caller (series_stack): it calls
 * bg_baseline_reanchor(), which moves the level to the new value and restarts
 * the warm-up so the baseline relearns within a few buckets.
 *
 * Pure: no I/O, no clock; time is the caller's timestamp in seconds. */
#ifndef BG_BASELINE_H
#define BG_BASELINE_H

#include <stdint.h>

#include "err.h"

#define BG_BASELINE_SLOTS 12

/* ---- parameters (shared by every metric of a class; not per-metric state) ---- */
typedef struct bg_baseline_params {
    float alpha;       /* level smoothing per update, (0, 1]; default 0.3 */
    float beta;        /* slope smoothing (fraction of the level correction), [0, 1];
                          default 0.3; 0 disables the trend */
    float phi;         /* slope damping per update, [0, 1]; default 0.95 */
    float alpha_scale; /* spread smoothing per update, (0, 1]; default 0.02 */
    float alpha_seasonal; /* level smoothing while the profile is in use, (0, 1]; default
                             0.05 (slow, so the profile, not the level, follows the cycle) */
    float gamma;       /* seasonal smoothing per update, [0, 1]; default 0.20; 0 disables */
    float clip;        /* residual clip in updates, in sigmas, > 0; default 3 */
    float rel_floor;   /* sigma >= rel_floor * |level|, >= 0; default 0.002 */
    float abs_floor;   /* sigma >= abs_floor, metric units, > 0; default 1e-9 */
    uint16_t warmup;   /* updates before residuals are clipped and z trusted, >= 1; default 8 */
    uint32_t period_s; /* seasonal period in seconds; default 86400; 0 disables the profile */
} bg_baseline_params;

/* ---- per-metric state: 32 bytes ---- */
typedef struct bg_baseline {
    float level;         /* deseasonalised level, metric units */
    float slope;         /* level change per update, metric units (damped by phi) */
    float scale;         /* EWMA of |clipped residual|, metric units, >= 0 */
    float season_unit;   /* metric units per step of season[], > 0 once the profile learnt */
    uint16_t n;          /* updates seen since init or re-anchor, saturating at 65535 */
    uint8_t turns;       /* slot changes seen, saturating at 255; profile used at >= SLOTS */
    uint8_t last_slot;   /* nearest slot of the previous update, 0..SLOTS-1; 255 = none */
    int8_t season[BG_BASELINE_SLOTS]; /* seasonal offset at slot centres, season_unit each */
} bg_baseline;

/* What one update saw, for the caller and for explanations. */
typedef struct bg_baseline_obs {
    double expected; /* forecast before the update, metric units */
    double sigma;    /* spread used for z, metric units, > 0 */
    double z;        /* (value - expected) / sigma; 0 while cold (n == 0) */
    int warm;        /* 1 when n >= warmup before this update (z meaningful) */
} bg_baseline_obs;

/* Defaults as documented on the fields above. */
void bg_baseline_params_default(bg_baseline_params *p);
/* BG_OK, or BG_ERR_INVALID when a parameter is out of its range. */
bg_err bg_baseline_params_check(const bg_baseline_params *p);

/* A cold baseline (all zero but last_slot = 255). */
void bg_baseline_init(bg_baseline *b);
/* Forecast for time t_s (seconds) without updating. */
void bg_baseline_predict(const bg_baseline *b, const bg_baseline_params *p, int64_t t_s,
                         double *expected, double *sigma);
/* Observe value x at time t_s. BG_ERR_INVALID for a non-finite x (state
 * unchanged). obs may be NULL. */
bg_err bg_baseline_update(bg_baseline *b, const bg_baseline_params *p, int64_t t_s, double x,
                          bg_baseline_obs *obs);
/* Advance the forecast one update without learning (the damped trend moves
 * the level on), used while a burst holds the baseline frozen. */
void bg_baseline_coast(bg_baseline *b, const bg_baseline_params *p);
/* After a lasting change: level := x (deseasonalised), slope := 0 when
 * drop_slope, warm-up restarted (n := 1); the spread and profile are kept. */
void bg_baseline_reanchor(bg_baseline *b, const bg_baseline_params *p, int64_t t_s, double x,
                          int drop_slope);

#endif
