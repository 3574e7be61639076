/* Engine outputs: verdicts and revocation commands (schemas/verdict.avsc,
 * schemas/revocation_command.avsc), before the worker stamps the wall-time and
 * deployment fields (emitted_at, worker_version, replay, key_id, signature).
 *
 * Ownership: a bg_outputs owns every verdict and command appended to it and
 * every string they point to (an arena). bg_outputs_reset() drops them all at
 * once; pointers into a bg_outputs are valid until the next reset or free. */
#ifndef BG_VERDICT_H
#define BG_VERDICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "event.h"

typedef enum bg_class { BG_CLASS_PLANNED, BG_CLASS_UNEXPECTED, BG_CLASS_ANOMALOUS } bg_class;
typedef enum bg_phase { BG_PHASE_ONSET, BG_PHASE_ESCALATED, BG_PHASE_ENDED } bg_phase;
typedef enum bg_action { BG_ACT_ALLOW, BG_ACT_THROTTLE, BG_ACT_REVIEW, BG_ACT_REVOKE } bg_action;
typedef enum bg_target { BG_TARGET_SECRET, BG_TARGET_IDENTITY } bg_target;

const char *bg_class_name(bg_class c);
const char *bg_phase_name(bg_phase p);
const char *bg_action_name(bg_action a);
const char *bg_target_name(bg_target t);

#define BG_MAX_REASONS 8u /* reasons per verdict */
#define BG_MAX_LIST 16u   /* new secrets, new destinations, review routes per verdict */
#define BG_ID_LEN 33u     /* 32 hex digits + NUL: verdict_id, command_id */

typedef struct bg_reason {
    const char *code;     /* static string, e.g. "rate_limit_api_calls" */
    const char *detector; /* static string, e.g. "static_limit" */
    double observed;      /* the value that triggered */
    double baseline;      /* what was expected (0 when the detector has none) */
    double threshold;     /* the limit crossed */
    double score;         /* observed / threshold, or detector-specific */
} bg_reason;

typedef struct bg_source_range {
    bg_event_kind topic; /* input topic, by kind */
    int32_t partition;
    int64_t first_offset;
    int64_t last_offset;
} bg_source_range;

typedef struct bg_verdict {
    char verdict_id[BG_ID_LEN];
    const char *identity;       /* NUL-terminated, arena */
    const char *owner;          /* NULL when unknown */
    const char *workload_class; /* the resolved class name */
    bg_class classification;
    bg_phase phase;
    bg_action action;
    int32_t severity; /* 0..100 */
    int64_t window_start, window_end, decided_at; /* event time, ms */
    bg_reason reasons[BG_MAX_REASONS];
    uint32_t n_reasons;
    const char *envelope_id; /* NULL when no envelope applied */
    const char *new_secret_ids[BG_MAX_LIST];
    uint32_t n_new_secret_ids;
    const char *new_destinations[BG_MAX_LIST];
    uint32_t n_new_destinations;
    const char *review_routes[BG_MAX_LIST];
    uint32_t n_review_routes;
    const char *policy_version;
    bg_source_range source[BG_EV_KIND_COUNT];
    uint32_t n_source;
} bg_verdict;

typedef struct bg_revocation {
    char command_id[BG_ID_LEN];
    char verdict_id[BG_ID_LEN];
    const char *identity;
    bg_target target;
    const char *secret_id; /* NULL for target IDENTITY */
    const char *reason;
    int64_t issued_at; /* event time, ms */
    bool dry_run;
} bg_revocation;

typedef struct bg_outputs {
    bg_verdict *verdicts;
    size_t n_verdicts, cap_verdicts;
    bg_revocation *revocations;
    size_t n_revocations, cap_revocations;
    struct bg_arena_block *arena; /* strings */
} bg_outputs;

void bg_outputs_init(bg_outputs *o);
void bg_outputs_reset(bg_outputs *o);
void bg_outputs_free(bg_outputs *o);
/* Append a zeroed verdict / command; NULL when out of memory. */
bg_verdict *bg_outputs_add_verdict(bg_outputs *o);
bg_revocation *bg_outputs_add_revocation(bg_outputs *o);
/* Copy len bytes into the arena, NUL-terminated; NULL when out of memory. */
const char *bg_outputs_strdup(bg_outputs *o, const char *s, size_t len);

#endif
