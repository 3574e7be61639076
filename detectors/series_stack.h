/* bg_stack: the composed detector for one metric of one identity (baseline +
 * CUSUM + Page-Hinkley + optional BOCPD + burst state machine). The engine
 * keeps one bg_stack_metric per metric per identity; `burstguard series`
 * runs the owning bg_stack over a CSV. Both call the same step function with
 * the same defaults.
 *
 * Per step, with value x at time t (seconds):
 *   1. outside a burst the baseline learns x and gives z = (x - expected) / sigma;
 *      inside a burst the baseline is frozen (it only coasts along its damped
 *      trend), so z measures the burst against the pre-burst baseline;
 *   2. once the baseline is warm, z clipped to +-z_clip feeds CUSUM, PH and
 *      BOCPD; |z| >= spike_z / sens is a spike;
 *   3. score = max over detectors of (statistic / its threshold), clamped to
 *      [0, 1]: 1 means a detector is at or over its threshold; 0 while cold;
 *   4. burst state machine:
 *        NONE  -> ONSET  on a change-point alarm (cusum, ph, bocpd or spike);
 *                        changepoint = 1 on the `confirm`-th step of the
 *                        burst if it is still elevated then (default the
 *                        second: a one-point spike is a burst with a score
 *                        but not a change point)
 *        ONSET -> PEAK   the following steps while the burst lasts
 *        PEAK  -> ENDED  after `quiet` steps in a row with |z| < exit_z / sens
 *                        and no alarm (the baseline resumes learning), or
 *                        after `adapt_after` steps: a lasting change; the
 *                        baseline re-anchors to the burst's mean and warms up
 *                        again, so later points are judged against the new level
 *        ENDED -> NONE   next step; no new ONSET for `refractory` steps.
 *      So a burst gives exactly one ONSET and one ENDED.
 *
 * Per-metric state: sizeof(bg_stack_metric) = 80 bytes (baseline 32, CUSUM
 * 8, PH 24, burst 16), plus bg_bocpd_state_bytes(max_run) when BOCPD is on
 * (it is off by default; see bg_stack_params.use_bocpd).
 *
 * Pure: no I/O, no clock. */
#ifndef BG_SERIES_STACK_H
#define BG_SERIES_STACK_H

#include <stdint.h>

#include "baseline.h"
#include "cpd.h"
#include "err.h"

typedef enum bg_stack_phase {
    BG_STACK_NONE = 0,  /* no burst */
    BG_STACK_ONSET = 1, /* first step of a burst (changepoint = 1) */
    BG_STACK_PEAK = 2,  /* burst under way */
    BG_STACK_ENDED = 3, /* burst over on this step */
} bg_stack_phase;

/* Detector bits in bg_stack_out.fired */
#define BG_STACK_FIRED_CUSUM 1u
#define BG_STACK_FIRED_PH 2u
#define BG_STACK_FIRED_BOCPD 4u
#define BG_STACK_FIRED_SPIKE 8u

typedef struct bg_stack_params {
    bg_baseline_params baseline; /* see baseline.h */
    bg_cusum_params cusum;       /* see cpd.h */
    bg_ph_params ph;             /* see cpd.h */
    bg_bocpd_params bocpd;       /* see cpd.h; used when use_bocpd */
    int use_bocpd;               /* 0/1; default 0 (the compact per-identity form) */
    float sensitivity;           /* the per-class knob, [0.25, 4]; default 1; divides thresholds */
    float spike_z;               /* |z| at sens 1 that alarms on its own, > 0; default 12 */
    float z_clip;                /* |z| fed to CUSUM/PH/BOCPD is clipped here, > 0; default 4 */
    float exit_z;                /* a burst step is quiet when |z| < exit_z / sens, > 0; default 2 */
    uint16_t quiet;              /* quiet steps in a row that end a burst, >= 1; default 2 */
    uint16_t adapt_after;        /* burst steps after which the change is lasting, >= 1; default 6 */
    uint16_t refractory;         /* steps after ENDED without a new ONSET; default 0 */
    uint16_t confirm;            /* changepoint is raised on the confirm-th step of a burst
                                    (1 = on ONSET); a shorter burst (a spike) raises none,
                                    only its score and phases, >= 1; default 2 */
} bg_stack_params;

/* Per-metric state (the compact form the engine embeds per identity). */
typedef struct bg_stack_metric {
    bg_baseline base;   /* 32 bytes */
    bg_cusum cusum;     /* 8 bytes */
    bg_ph ph;           /* 24 bytes */
    float burst_mean;   /* running mean of x during the burst, metric units */
    float peak_z;       /* largest |z| in the current or last burst, sigmas */
    uint16_t burst_len; /* steps since ONSET, saturating */
    uint16_t quiet_run; /* quiet steps in a row inside the burst */
    uint16_t refract;   /* steps left without ONSET */
    uint8_t phase;      /* bg_stack_phase of the last step */
    int8_t dir;         /* bg_cpd_dir of the burst: +1 up, -1 down */
} bg_stack_metric;

/* What one step produced. */
typedef struct bg_stack_out {
    double expected;      /* baseline forecast, metric units */
    double sigma;         /* baseline spread, metric units, > 0 */
    double z;             /* (x - expected) / sigma; 0 while cold */
    double score;         /* anomaly score, [0, 1] */
    double p_change;      /* BOCPD P(recent change), [0, 1]; 0 without BOCPD */
    int changepoint;      /* 1 on the confirm-th step of a burst, else 0 */
    bg_stack_phase phase; /* phase after this step */
    bg_cpd_dir dir;       /* direction of the current burst */
    unsigned fired;       /* BG_STACK_FIRED_* bits of detectors that alarmed on this step */
    int lasting;          /* 1 on the ENDED step of a lasting change (baseline re-anchored) */
} bg_stack_out;

void bg_stack_params_default(bg_stack_params *p);
/* BG_OK or BG_ERR_INVALID (any sub-parameter out of range). */
bg_err bg_stack_params_check(const bg_stack_params *p);

/* ---- compact form: caller-owned state, optional caller-owned BOCPD -------- */
void bg_stack_metric_init(bg_stack_metric *m);
/* One step. bocpd may be NULL (then p->use_bocpd is ignored). A non-finite x
 * returns BG_ERR_INVALID and changes nothing. */
bg_err bg_stack_metric_step(bg_stack_metric *m, const bg_stack_params *p, bg_bocpd *bocpd,
                            int64_t t_s, double x, bg_stack_out *out);

/* ---- owning form, for `burstguard series` ------------------------------------- */
typedef struct bg_stack bg_stack;
/* Copies params; creates the BOCPD when p->use_bocpd. */
bg_err bg_stack_new(const bg_stack_params *p, bg_stack **out);
void bg_stack_free(bg_stack *s); /* NULL is a no-op */
bg_err bg_stack_step(bg_stack *s, int64_t t_s, double x, bg_stack_out *out);

#endif
