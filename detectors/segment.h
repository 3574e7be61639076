/* bg_seg: online change-point detection for one series, the scorer behind
 * `burstguard series` (its `series` preset). Separate from the engine's
 * per-identity stack (series_stack.h), whose defaults and state layout the
 * engine and its snapshots depend on.
 *
 * Model. The series is a sequence of segments; inside a segment it is a
 * straight line (level + slope per point) plus Normal noise of unknown
 * variance. Bayesian online change-point detection (Adams & MacKay 2007)
 * keeps the posterior over the run length r (points since the last change)
 * with a constant hazard 1/hazard_len; each run length carries the
 * Normal-inverse-Gamma posterior of its line, so its predictive for the next
 * point is a Student-t. A trend is therefore one segment, not a string of
 * level shifts; a change of level, of slope or of noise is a new segment.
 *
 * Scale. A new segment's prior is stated in units of the series' current
 * noise scale s = noise_mult * median(|x_t - x_t-1|) / (0.6745 sqrt 2) over
 * the last scale_window steps (when more than half of those steps are 0,
 * as in quantised or sticky series, the mean |step| replaces the median).
 * The run born after point t is anchored at x_t (its level prior is
 * centred there, variance level_var s^2; slope prior 0, variance
 * slope_var s^2 per point; noise variance InvGamma(alpha0, alpha0 s^2))
 * and keeps that s; its statistics are sums of (x - anchor) / s, so
 * large values do not lose precision.
 *
 * Decision (one change, one alarm). After each point the most probable run
 * length r* is read. A change point is raised on the point where r* falls
 * to max_lag or less from more than r* + drop (the posterior has switched
 * to a segment that began at most max_lag points ago), at least warmup
 * points into the series and at least min_gap points after the previous
 * change point. The row raised is the one where the switch is seen; the
 * change itself began r* points earlier. The score is the posterior
 * probability that the current segment began within the last max_lag
 * points (after the first point; 0 during the warm-up).
 *
 * Excursions. A series can jump and come back as its normal behaviour (a
 * bank balance's monthly sawtooth, a burst): each jump is a real change of
 * a line-per-segment model, yet no change of the series. So a change point
 * whose series returns to within half the jump of the level before it
 * (the mean of the two points before the new segment) within revert_window
 * points marks that jump size as ordinary: every segment's predictive
 * spread, and the scale of new segments, is then at least revert_frac times
 * the largest such jump, a floor that fades by 1/revert_memory per point
 * (so the pattern has to recur to stay ordinary). The first excursion
 * still alarms; later ones of the same size do not, while a larger change
 * does. (Watched only when the change began at most 7 points back.)
 *
 * Online and deterministic: a point's output depends only on it and the
 * points before it. Memory is bounded: max_run run lengths are kept (mass
 * that would grow past the last merges into it) and scale_window steps.
 * State bytes: bg_seg_state_bytes(max_run, scale_window).
 *
 * Pure: no I/O, no clock. Time is the point's index; timestamps are not used
 * (the public benchmarks are regularly sampled). */
#ifndef BG_SEGMENT_H
#define BG_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Defaults (bg_seg_params_default) and why. They were chosen on the 25 TCPD
 * series of bench/tcpd_bench.py (which also reports a held-out check of
 * that choice), as round values inside a plateau where every one-at-a-time
 * neighbour scores about the same:
 *   hazard_len   10000 changes are rare events; the evidence for one has to
 *                      come from the data, not from the prior (1/100..1/1000
 *                      splits random-walk-like series into many segments)
 *   noise_mult   2     the per-step scale understates the noise around a
 *                      fitted line in autocorrelated series; 2 halves the
 *                      evidence a wiggle gives
 *   level_var    100   a new segment's level is weakly known (+-10 s)
 *   slope_var    0.001 a new segment starts flat (+-0.03 s per point) and
 *                      earns its slope from its data, so a few points do not
 *                      make a trend and a trend needs no change points
 *   alpha0       1     weak noise-variance prior (Student-t with 2 degrees
 *                      of freedom at the start of a segment)
 *   max_run      512   run lengths kept
 *   scale_window 128   steps in the scale estimate
 *   warmup       5     points before a change point may be raised
 *   max_lag      5     a switch may point at most 5 points back: the
 *                      benchmark's margin; a later recognition is no alarm
 *   drop         3     r* must fall by more than this: dithering of r* is not
 *                      a change
 *   min_gap      5     points between two change points (hysteresis)
 *   revert_window 30   a sawtooth's tooth or a burst is over within 30 points
 *   revert_frac   1    a jump the size of a past excursion is one sigma
 *   revert_memory 100  the floor halves in about 70 points without another */
typedef struct bg_seg_params {
    float hazard_len;      /* expected segment length, points, >= 2 */
    float noise_mult;      /* prior noise scale / per-step scale, > 0 */
    float level_var;       /* prior variance of a segment's level, in s^2, > 0 */
    float slope_var;       /* prior variance of its slope, s^2 per point^2, > 0 */
    float alpha0;          /* noise-variance prior shape, > 0 */
    uint32_t max_run;      /* run lengths kept, 8..65536 */
    uint16_t scale_window; /* steps in the scale estimate, 2..4096 */
    uint16_t warmup;       /* points before the first change point, >= 1 */
    uint16_t max_lag;      /* largest r* that raises a change point, 1..max_run-2 */
    uint16_t drop;         /* r* must fall by more than this, >= 0 */
    uint16_t min_gap;      /* points between change points, >= 1 */
    uint16_t revert_window; /* points after a change point within which a return to
                               the old level makes it an excursion; 0 = off */
    float revert_frac;     /* scale floor = revert_frac * largest excursion jump, >= 0 */
    float revert_memory;   /* the floor decays by 1/revert_memory per point, >= 1 */
} bg_seg_params;

typedef struct bg_seg bg_seg;

/* What one point produced. */
typedef struct bg_seg_out {
    double score;     /* P(the current segment began within max_lag points), [0, 1];
                         0 during the warm-up */
    double scale;     /* the noise scale s after this point, series units, > 0 */
    uint32_t map_run; /* most probable run length r* after this point */
    int changepoint;  /* 1 when this point raises a change point */
} bg_seg_out;

void bg_seg_params_default(bg_seg_params *p);
/* BG_OK or BG_ERR_INVALID. */
bg_err bg_seg_params_check(const bg_seg_params *p);
size_t bg_seg_state_bytes(uint32_t max_run, uint16_t scale_window);

/* Copies params. BG_ERR_INVALID for bad params, BG_ERR_NOMEM. */
bg_err bg_seg_new(const bg_seg_params *p, bg_seg **out);
void bg_seg_free(bg_seg *s); /* NULL is a no-op */
/* One point. A non-finite x returns BG_ERR_INVALID and changes nothing.
 * out may be NULL. */
bg_err bg_seg_step(bg_seg *s, double x, bg_seg_out *out);

#endif
