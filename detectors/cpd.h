/* Change-point detectors on a standardised residual z (value minus baseline,
 * in sigmas): two-sided CUSUM, two-sided Page-Hinkley, and Bayesian online
 * change-point detection (Adams & MacKay 2007).
 *
 * Each takes a `sens` argument, the per-class sensitivity knob: thresholds
 * are divided by it, so 2 alarms on half the evidence and 0.5 needs twice as
 * much. Valid range [0.25, 4]; 1 is the default.
 *
 *   CUSUM  S+ = max(0, S+ + z - k), S- = max(0, S- - z - k); alarm when
 *          S+ or S- exceeds h / sens, then both reset to 0. Defaults k = 0.5,
 *          h = 8 (average run length between false alarms of order 10^4
 *          updates for in-control Normal z; a 3-sigma shift is caught after
 *          about 4 updates, a 5-sigma one after about 2). State 8 bytes.
 *   PH     Page-Hinkley against the running mean of z since the last reset:
 *          m+ accumulates z - mean - delta and alarms when m+ - min(m+)
 *          exceeds lambda / sens (and mirrored downwards). Unlike CUSUM it
 *          compares with the segment's own mean, so it also sees a drift the
 *          baseline is slowly absorbing. Defaults delta = 0.5, lambda = 15.
 *          State 24 bytes.
 *   BOCPD  run-length posterior P(r_t | z_1..t) with a constant hazard
 *          1/hazard_len and a Normal model of unknown mean and variance
 *          (Normal-Gamma prior mu0 = 0, kappa0 = 1, alpha0 = 1, beta0 = 1,
 *          fitting standardised input), Student-t predictive. The distribution
 *          is truncated to max_run run lengths: mass that would grow past the
 *          last one stays in it (its statistics are kept), so memory is
 *          bounded. Reported change probability = P(r_t < min(recent, updates since reset)); alarm when
 *          it exceeds threshold (raised towards 1 for sens < 1, lowered for
 *          sens > 1, see bg_bocpd_threshold()). Defaults hazard_len = 200,
 *          max_run = 64, recent = 5, threshold = 0.6. State
 *          bg_bocpd_state_bytes(max_run) bytes (heap).
 *
 * Pure: no I/O. Non-finite input returns BG_ERR_INVALID and changes nothing. */
#ifndef BG_CPD_H
#define BG_CPD_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define BG_CPD_SENS_MIN 0.25f
#define BG_CPD_SENS_MAX 4.0f

/* Which way an alarm points. */
typedef enum bg_cpd_dir { BG_CPD_NONE = 0, BG_CPD_UP = 1, BG_CPD_DOWN = -1 } bg_cpd_dir;

/* ---- CUSUM ----------------------------------------------------------------- */
typedef struct bg_cusum_params {
    float k; /* allowance (half the shift to detect), sigmas, >= 0; default 0.5 */
    float h; /* decision threshold at sens 1, sigmas, > 0; default 8 */
} bg_cusum_params;

typedef struct bg_cusum {
    float pos; /* upper statistic S+, sigmas, >= 0 */
    float neg; /* lower statistic S-, sigmas, >= 0 */
} bg_cusum;

void bg_cusum_params_default(bg_cusum_params *p);
bg_err bg_cusum_params_check(const bg_cusum_params *p);
void bg_cusum_init(bg_cusum *c);
/* One update; *alarm gets the direction (statistics reset on alarm). */
bg_err bg_cusum_update(bg_cusum *c, const bg_cusum_params *p, float sens, double z,
                       bg_cpd_dir *alarm);
/* max(S+, S-) / (h / sens): 1 at the threshold. */
double bg_cusum_level(const bg_cusum *c, const bg_cusum_params *p, float sens);

/* ---- Page-Hinkley ------------------------------------------------------------ */
typedef struct bg_ph_params {
    float delta;  /* tolerated drift per update, sigmas, >= 0; default 0.5 */
    float lambda; /* threshold at sens 1, sigmas, > 0; default 15 */
} bg_ph_params;

typedef struct bg_ph {
    float mean;   /* running mean of z since reset, sigmas */
    float up;     /* cumulative sum of z - mean - delta, sigmas */
    float up_min; /* minimum of up since reset, sigmas */
    float dn;     /* cumulative sum of z - mean + delta, sigmas */
    float dn_max; /* maximum of dn since reset, sigmas */
    uint32_t n;   /* updates since reset, saturating */
} bg_ph;

void bg_ph_params_default(bg_ph_params *p);
bg_err bg_ph_params_check(const bg_ph_params *p);
void bg_ph_init(bg_ph *h);
bg_err bg_ph_update(bg_ph *h, const bg_ph_params *p, float sens, double z, bg_cpd_dir *alarm);
double bg_ph_level(const bg_ph *h, const bg_ph_params *p, float sens);

/* ---- BOCPD ---------------------------------------------------------------------- */
typedef struct bg_bocpd_params {
    float hazard_len;  /* expected run length 1/H, updates, >= 2; default 200 */
    uint32_t max_run;  /* run lengths kept, 2..4096; default 64 */
    uint32_t recent;   /* "a change happened" = run length < recent, 1..max_run-1; default 5 */
    float threshold;   /* alarm probability at sens 1, (0, 1); default 0.6 */
    float mu0, kappa0, alpha0, beta0; /* Normal-Gamma prior; defaults 0, 1, 1, 1 */
} bg_bocpd_params;

typedef struct bg_bocpd bg_bocpd;

void bg_bocpd_params_default(bg_bocpd_params *p);
bg_err bg_bocpd_params_check(const bg_bocpd_params *p);
/* Bytes a detector with this truncation holds (struct + arrays). */
size_t bg_bocpd_state_bytes(uint32_t max_run);
/* Copies params. BG_ERR_INVALID for bad params, BG_ERR_NOMEM. */
bg_err bg_bocpd_new(const bg_bocpd_params *p, bg_bocpd **out);
void bg_bocpd_free(bg_bocpd *b); /* NULL is a no-op */
/* Forget everything: P(r = 0) = 1. */
void bg_bocpd_reset(bg_bocpd *b);
/* One update. *p_change = P(r_t < recent); *alarm when it crosses the
 * threshold for sens (edge-triggered: once until it falls below again). */
bg_err bg_bocpd_update(bg_bocpd *b, float sens, double z, double *p_change, int *alarm);
/* Run-length distribution after the last update: n entries, sum 1. */
const double *bg_bocpd_runlength(const bg_bocpd *b, uint32_t *n);
/* Most probable run length. */
uint32_t bg_bocpd_map_run(const bg_bocpd *b);
/* The alarm threshold used for sens: 1 - (1 - threshold) * sens, within [0.05, 0.99]. */
double bg_bocpd_threshold(const bg_bocpd_params *p, float sens);

#endif
