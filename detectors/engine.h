/* The engine of one task (one partition of the co-partitioned inputs): per
 * identity event-time buckets, the policy's static limits, envelopes, the
 * new-secret x new-destination correlation rule and the burst state machine
 * that turns them into verdicts and revocation commands.
 *
 * Pure: a function of (state, event, policy). No I/O, no clocks: time is the
 * events' own, and the watermark (stream time - allowed lateness) only moves
 * forward with them, so a replay of the same input yields the same outputs.
 *
 * Ownership: the engine copies what it keeps from an event (the event's
 * strings borrow from a message buffer). It reads the policy passed to
 * bg_engine_new(), which must outlive it. Outputs are appended to a
 * caller-owned bg_outputs. */
#ifndef BG_ENGINE_H
#define BG_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "envset.h"
#include "err.h"
#include "event.h"
#include "policy.h"
#include "verdict.h"

typedef struct bg_engine bg_engine;

typedef struct bg_engine_stats {
    uint64_t events;          /* observed */
    uint64_t late_events;     /* older than the watermark; applied to the current bucket */
    uint64_t identities;      /* live identity states */
    uint64_t bursts;          /* bursts started (ONSET verdicts) */
    uint64_t verdicts;        /* all phases */
    uint64_t revocations;     /* commands issued */
    int64_t stream_time;      /* max event time seen, ms (INT64_MIN before any) */
    int64_t watermark;        /* stream_time - allowed lateness */
} bg_engine_stats;

/* partition: the task's partition, copied into verdict sources. */
bg_err bg_engine_new(const bg_policy *policy, int32_t partition, bg_engine **out);
void bg_engine_free(bg_engine *e); /* NULL is a no-op */

/* Apply one input event read at `offset` of the event kind's topic. Appends
 * any verdicts / revocation commands it causes to out. Errors: BG_ERR_INVALID
 * (no identity), BG_ERR_NOMEM. */
bg_err bg_engine_observe(bg_engine *e, const bg_event *ev, int64_t offset, bg_outputs *out);

/* Close what the watermark has passed: ends bursts of identities that went
 * quiet. Call after each batch; cost is proportional to the active bursts. */
bg_err bg_engine_tick(bg_engine *e, bg_outputs *out);

/* Swap in a new policy (a reload). Open bursts and identities keep their
 * state; their classes are looked up again by name (a class that is gone
 * becomes the new default class). The old policy may be freed afterwards;
 * the new one must outlive the engine or the next swap. */
void bg_engine_set_policy(bg_engine *e, const bg_policy *p);

/* Envelopes from nhi.envelopes.v1, consulted after the policy's own; NULL
 * for none. The set must outlive the engine (or be replaced first). */
void bg_engine_set_envelopes(bg_engine *e, const bg_envset *live);

void bg_engine_stats_get(const bg_engine *e, bg_engine_stats *st);
/* Bytes of identity state held (structs, strings, sets, windows, bursts);
 * walks every identity, so it is for reports, not the hot path. */
size_t bg_engine_state_bytes(const bg_engine *e);

#endif
