/* Backtest reports: what a replay (or two) found, scored against ground
 * truth.
 *
 *   times     ISO-8601 / epoch-millisecond parsing shared by replay and labels
 *   outputs   a replay directory's verdicts.jsonl and revocations.jsonl, read
 *             back (jansson) into plain structs
 *   bursts    verdicts grouped by (identity, burst onset = window_start)
 *   labels    the ground-truth file (format below), as written by
 *             `burstguard gen` and read by `replay --labels`
 *   scoring   precision, recall and detection delay per class, false and
 *             missed revocations
 *   writers   report.txt, report.json, report.html (timelines), compare.txt
 *
 * Labels file (CSV, UTF-8, one label a line; '#' lines and blank lines are
 * comments; fields split on the first five commas, so the description may
 * contain commas):
 *
 *   identity,class,start,end,secret_ids,description
 *
 *   class       PLANNED | UNEXPECTED | ANOMALOUS | BENIGN (benign novelty that
 *               must not be ANOMALOUS and whose secrets must not be revoked)
 *   start, end  event time of the planted behaviour: ISO-8601 or epoch ms
 *   secret_ids  secrets that must be revoked, ';'-separated, may be empty
 *
 * Scoring rules (also in README "Backtesting"):
 *   - a detected burst is the set of verdicts of one (identity, window_start);
 *     its class and action are the highest of its ONSET/ESCALATED verdicts;
 *   - a burst matches a label when the identity is the same and
 *     [window_start, window_end] overlaps [start - slack, end + slack];
 *   - recall(C) = labels of class C matched by a burst of class C / labels of C;
 *   - precision(C) = bursts of class C matching a label of class C / bursts of
 *     class C; a non-ANOMALOUS burst on a BENIGN label counts neither way;
 *   - delay = decided_at of the first verdict of class C in the matching
 *     burst - label start (>= 0), median and p95 by nearest rank;
 *   - a revocation is right when an ANOMALOUS label of its identity lists
 *     its secret (or, for target IDENTITY, when the identity has an
 *     ANOMALOUS label that lists no secret); collateral when it is another
 *     secret of an identity with an ANOMALOUS label overlapping issued_at
 *     (+- slack); false otherwise: a benign secret revoked. A missed
 *     revocation is a listed secret never revoked.
 *
 * Ownership: every struct here owns its strings; free with the matching
 * *_free function. */
#ifndef BG_REPORT_H
#define BG_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../detectors/err.h"

/* ---- times ----------------------------------------------------------------- */

/* "2026-11-30T00:00:00Z", "2026-11-30T00:00Z", "2026-11-30T00:00:00.250+01:00",
 * or epoch milliseconds ("1795996800000"). BG_ERR_INVALID for anything else. */
bg_err bg_time_parse(const char *s, int64_t *ms);
/* "2026-11-30T00:00:00.000Z" (always with milliseconds). */
void bg_time_iso(int64_t ms, char *buf, size_t n);

/* ---- outputs read back ----------------------------------------------------- */

typedef struct bg_rp_verdict {
    char *verdict_id, *identity, *workload_class, *envelope_id;
    int cls, phase, action; /* bg_class, bg_phase, bg_action */
    int severity;
    int64_t window_start, window_end, decided_at;
    char *reasons;         /* codes, comma-separated */
    char *new_secret_ids;  /* comma-separated */
    char *new_destinations;
} bg_rp_verdict;

typedef struct bg_rp_revocation {
    char *command_id, *verdict_id, *identity, *secret_id; /* secret_id "" for IDENTITY */
    int64_t issued_at;
} bg_rp_revocation;

typedef struct bg_rp_set {
    bg_rp_verdict *v;
    size_t n_v;
    bg_rp_revocation *r;
    size_t n_r;
} bg_rp_set;

/* Read DIR/verdicts.jsonl and DIR/revocations.jsonl. A malformed line is an
 * error naming file and line. */
bg_err bg_rp_load(const char *dir, bg_rp_set *s, char *errstr, size_t errstr_size);
/* Parse one verdict / revocation JSON line (as replay writes them). */
bg_err bg_rp_parse_verdict(const char *line, bg_rp_verdict *v);
bg_err bg_rp_parse_revocation(const char *line, bg_rp_revocation *r);
void bg_rp_set_free(bg_rp_set *s);

/* ---- bursts ---------------------------------------------------------------- */

typedef struct bg_rp_burst {
    const char *identity;       /* borrowed from the set */
    int64_t onset, end;         /* window_start, max window_end */
    int cls, action;            /* highest of ONSET/ESCALATED (ENDED if only that) */
    int64_t first_decided[3];   /* first decided_at of a verdict of each class; INT64_MAX none */
    char reasons[256];          /* union of reason codes, comma-separated */
    const char *onset_verdict_id; /* of the first verdict */
    size_t n_verdicts;
} bg_rp_burst;

/* Group s's verdicts into bursts, sorted by (identity, onset). */
bg_err bg_rp_bursts(const bg_rp_set *s, bg_rp_burst **out, size_t *n);

/* ---- labels ---------------------------------------------------------------- */

#define BG_LABEL_BENIGN 3 /* class value of a BENIGN label (after the bg_class values) */

typedef struct bg_label {
    char *identity;
    int cls;              /* bg_class, or BG_LABEL_BENIGN */
    int64_t start, end;
    char *secret_ids;     /* ';'-separated, "" for none */
    char *what;
} bg_label;

bg_err bg_labels_load(const char *path, bg_label **out, size_t *n, char *errstr,
                      size_t errstr_size);
/* One label line (no newline). BG_ERR_INVALID with why on a bad line. */
bg_err bg_label_parse(const char *line, bg_label *l, char *why, size_t why_size);
void bg_labels_free(bg_label *l, size_t n);
const char *bg_label_class_name(int cls);

/* ---- scoring --------------------------------------------------------------- */

#define BG_SCORE_MAX_LIST 256

typedef struct bg_class_score {
    size_t labels, detected;   /* labels of the class; bursts of the class */
    size_t tp_labels;          /* labels matched (recall numerator) */
    size_t tp_bursts, fp_bursts;
    double precision, recall;  /* -1 when undefined (0/0) */
    int64_t delay_median_ms, delay_p95_ms; /* -1 when no match */
    size_t n_delays;
} bg_class_score;

typedef struct bg_score {
    bg_class_score c[3];
    int64_t slack_ms;
    size_t false_revocations;  /* indices into the set's revocations */
    size_t false_rev_idx[BG_SCORE_MAX_LIST];
    size_t collateral_revocations; /* unlisted secrets of an identity under an ANOMALOUS label */
    size_t collateral_idx[BG_SCORE_MAX_LIST];
    size_t missed_revocations; /* label secrets never revoked */
    char missed[BG_SCORE_MAX_LIST][160];
    size_t benign_flagged;     /* ANOMALOUS bursts on BENIGN labels */
    size_t missed_labels;      /* labels (not BENIGN) with no burst of their class */
    size_t missed_idx[BG_SCORE_MAX_LIST];
} bg_score;

void bg_score_compute(const bg_rp_set *s, const bg_rp_burst *b, size_t nb, const bg_label *l,
                      size_t nl, int64_t slack_ms, bg_score *out);

/* ---- writers --------------------------------------------------------------- */

/* Per-identity activity for the HTML timelines (filled by replay). */
typedef struct bg_rp_series {
    char *identity;
    int64_t t0, bucket_ms;
    size_t n;
    double *rate; /* api calls (+ tool calls) per bucket */
} bg_rp_series;

typedef struct bg_report_in {
    const char *dir;              /* where to write */
    const bg_rp_set *set;
    const bg_label *labels;       /* NULL: no scoring */
    size_t n_labels;
    int64_t from, to;
    const char *policy_version;
    uint64_t events[3];           /* applied, by kind */
    uint64_t skipped_out_of_range;
    uint64_t deadletters;
    const bg_rp_series *series;   /* NULL: timelines without rates */
    size_t n_series;
} bg_report_in;

/* Write DIR/report.txt, report.json and report.html. */
bg_err bg_report_write(const bg_report_in *in, char *errstr, size_t errstr_size);

/* Diff two backtests: bursts matched on (identity, onset), else on a shared
 * verdict id. Writes `out` (compare.txt); fills counts when not NULL. */
typedef struct bg_compare_counts {
    size_t gained, lost, changed, same;
} bg_compare_counts;
bg_err bg_report_compare(const bg_rp_set *mine, const bg_rp_set *other, const char *mine_name,
                         const char *other_name, FILE *out, bg_compare_counts *counts);

#endif
