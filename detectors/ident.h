/* Per-identity state of the engine (internal to detectors/).
 *
 * Budget: the resident struct is 216 bytes on LP64 (a static assert in
 * engine.c keeps it so), plus the identity string itself; an identity with a
 * handful of destinations needs nothing else. What only some identities need
 * lives behind pointers that are NULL otherwise:
 *
 *   bg_ident, 216 bytes
 *     hash, identity*, owner, first_seen      24   owner interned per engine
 *     bucket_start + bucket counters          32   calls, actions, tokens, cost,
 *                                                  secrets, tools, new dests, hot
 *     hour and day counters, dense, class    32   cost, day cost, secrets, grants, new dests,
 *                                                  flags (dirty)
 *     traces[2]                                8   fan-out under one trace counts once
 *     envelope usage, last_ms                 16   last_ms: the latest event in the bucket
 *     seen (bg_novel)                         40   <= 8 items inline, then <= 1 KiB heap
 *     src_first[3], src_span[3], dirty_at     40   the current bucket's input offsets
 *     recent*, burst*, det*                   24
 *   heap, when needed:
 *     det: the change-point stacks of 7 metrics, once the identity has been
 *     active in BG_DETECT_AFTER buckets in a row (a quiet identity never pays) 560 B
 *     seen beyond 8 items                 64 B .. 1 KiB
 *     recent (secrets, novel destinations and tool bigrams in the window,
 *     rare destinations watched for persistence)           928 B
 *     burst (while open)                      ~600 B + its two HyperLogLogs
 * A busy identity (detectors, hundreds of destinations, recent secrets)
 * stays under 2.8 KiB, plus ~0.6 KiB while a burst is open. */
#ifndef BG_IDENT_H
#define BG_IDENT_H

#include <stdbool.h>
#include <stdint.h>

#include "hll.h"
#include "novelty.h"
#include "policy.h"
#include "series_stack.h"
#include "verdict.h"

#define BG_RECENT_MAX 8u /* secrets / novel destinations kept per identity within the window */
#define BG_RECENT_BIGRAMS 4u /* novel rare tool bigrams kept within the window */
#define BG_RECENT_PERSIST 4u /* rare new destinations watched for persistent use */

/* Metrics with a baseline + change-point stack, per bucket. */
typedef enum bg_metric {
    BG_M_ACTIONS,      /* usage events, a trace's fan-out counted once (distinct traces) */
    BG_M_API_CALLS,    /* sum of api_calls */
    BG_M_TOKENS,       /* tokens in + out */
    BG_M_COST,         /* micro-dollars */
    BG_M_SECRETS,      /* secret issuances */
    BG_M_TOOLCALLS,    /* tool calls */
    BG_M_DESTINATIONS, /* destinations used for the first time */
    BG_METRIC_COUNT
} bg_metric;

/* The detectors of an identity that is active often enough to have a per-bucket
 * baseline: BG_DETECT_AFTER buckets in a row with events, at most 2 buckets
 * apart; allocated then, 560 bytes. Rarer identities are judged by the
 * limits and the correlation alone. */
typedef struct bg_detect {
    bg_stack_metric m[BG_METRIC_COUNT];
} bg_detect;

/* bg_ident.flags */
#define BG_IDENT_DIRTY 1u /* changed since its last snapshot; listed in the engine's dirty list */

#define BG_DETECT_AFTER 3u /* dense buckets in a row before an identity gets its detectors */

typedef struct bg_recent_secret {
    uint64_t hash;  /* of secret_id */
    char *id;       /* heap */
    int64_t t;      /* issued, event time ms */
    int64_t offset; /* input offset of the issuance */
    bool revoked;   /* a command was already issued for it */
    bool used;      /* a tool call used it (credential_id) toward a novelty of the window */
} bg_recent_secret;

typedef struct bg_recent_dest {
    uint64_t hash; /* of the destination */
    char *dest;    /* heap */
    int64_t t;     /* first use, event time ms */
    bool named;    /* a tool call reached it with a new secret of the window: only such
                      used secrets pair with it */
} bg_recent_dest;

/* A tool bigram (parent_tool->tool) new for the identity and rare in the
 * partition: a novelty that pairs with a new secret like a new destination. */
typedef struct bg_recent_bigram {
    uint64_t hash;  /* bg_novel_hash(BG_NOVEL_TOOL_BIGRAM, "parent->tool") */
    char *name;     /* heap, "parent->tool" */
    int64_t t;      /* first use, event time ms */
    uint32_t users; /* identities of the partition that used it, at first use */
    bool named;     /* used with a new secret of the window (as bg_recent_dest.named) */
} bg_recent_bigram;

/* A destination first used after the learning period and rare in the
 * partition, watched for persistent use with side effects (the slow,
 * low-volume exfiltration that never trips a rate limit). Kept for the class's
 * persistent_destination.window from its first use. */
typedef struct bg_recent_persist {
    uint64_t hash;       /* bg_novel_hash(BG_NOVEL_DESTINATION, dest) */
    char *dest;          /* heap */
    int64_t t;           /* first use, event time ms */
    int64_t first_visit; /* first tool call with side effects, event time ms; -1 = none yet */
    int64_t last_bucket; /* start of the bucket of the latest counted visit, -1 = none */
    uint16_t visits;     /* buckets with a tool call with side effects to it, saturating */
    uint8_t fired;       /* the persistent_rare_destination signal was raised for it */
    uint8_t named;       /* reached with a new secret of the window (bg_recent_dest.named) */
} bg_recent_persist;

/* What happened within the correlation window (and the rare destinations
 * watched for persistence); allocated while non-empty. */
typedef struct bg_recent {
    bg_recent_secret secrets[BG_RECENT_MAX];
    uint32_t n_secrets;
    bg_recent_dest dests[BG_RECENT_MAX];
    uint32_t n_dests;
    bg_recent_bigram bigrams[BG_RECENT_BIGRAMS];
    uint32_t n_bigrams;
    bg_recent_persist persist[BG_RECENT_PERSIST];
    uint32_t n_persist;
} bg_recent;

typedef struct bg_src_range {
    int64_t first, last; /* input offsets, -1 when none */
} bg_src_range;

/* An open burst; allocated at ONSET, freed at ENDED. */
typedef struct bg_burst {
    struct bg_ident *owner_ident;     /* back pointer */
    uint64_t seq;                     /* the engine's ONSET count at creation: the list is
                                         newest first, and a restore sorts it back */
    struct bg_burst *next, *prev;     /* the engine's list of open bursts */
    bg_class cls;
    bg_action action;
    int64_t start;                    /* event time of the ONSET */
    int64_t last_hot;                 /* event time of the latest signal */
    uint32_t quiet;                   /* closed buckets without a signal */
    uint32_t escalations;
    bg_phase last_phase;              /* of the latest verdict, for its id */
    const bg_class_policy *klass;     /* class at ONSET (policy outlives the engine) */
    char *envelope_id;                /* heap, NULL when none applied */
    bg_src_range src[BG_EV_KIND_COUNT];
    bg_reason reasons[BG_MAX_REASONS];
    uint32_t n_reasons;
    bg_hll dests;                     /* distinct destinations during the burst (p = 10) */
    bg_hll traces;                    /* distinct trace ids during the burst (p = 10) */
} bg_burst;

typedef struct bg_ident {
    uint64_t hash;          /* XXH3 of the identity string */
    char *identity;         /* heap, NUL-terminated */
    uint32_t owner;         /* index into the engine's owner table + 1, 0 = unknown */
    uint32_t first_seen_min; /* event time of the first event, minutes since the epoch */
    int64_t bucket_start;   /* current bucket, event time ms */
    /* the current bucket (saturating) */
    uint32_t b_calls;       /* api_calls */
    uint32_t b_actions;     /* usage events, one trace's fan-out counted once */
    uint32_t b_tokens;      /* tokens in + out */
    uint32_t b_cost;        /* micro-dollars */
    uint16_t b_secrets;     /* secret issuances */
    uint16_t b_tools;       /* tool calls */
    uint16_t b_new_dests;   /* destinations used for the first time */
    uint8_t b_hot;          /* a limit signal fired in this bucket */
    uint8_t metrics_seen;   /* bit per bg_metric that has ever been non-zero */
    /* the current clock hour and UTC day of event time */
    uint64_t h_cost;        /* micro-dollars this hour */
    uint64_t d_cost;        /* micro-dollars today */
    uint16_t h_secrets;     /* issuances */
    uint16_t h_grants;      /* SERVICE_IDENTITY / OAUTH_GRANT issuances */
    uint16_t h_new_dests;   /* destinations used for the first time */
    uint16_t flags;         /* BG_IDENT_* bits */
    uint16_t dense;         /* buckets in a row that had events, at most 2 apart, saturating */
    uint16_t klass;         /* index of the class of the latest event */
    uint32_t traces[2];     /* fingerprints of the latest trace ids, 0 = empty */
    /* usage under the envelope that applies now */
    uint32_t env_hash;      /* of its envelope_id, 0 = none */
    uint16_t env_new_secrets, env_new_dests;
    uint32_t last_ms;       /* event time of the latest event - bucket_start, ms (0 after a
                               tick moved the bucket on); fills what was padding */
    int64_t env_cost;       /* micro-dollars */
    bg_novel seen;          /* first-seen destinations, scopes, tool bigrams */
    int64_t src_first[3];   /* first input offset of the current bucket per input, -1 = none */
    uint32_t src_span[3];   /* last - first, saturating */
    uint32_t dirty_at;      /* index in the engine's dirty list while BG_IDENT_DIRTY; fills
                               what was padding */
    bg_recent *recent;      /* NULL unless something is within the correlation window */
    bg_burst *burst;        /* NULL unless a burst is open */
    bg_detect *det;         /* NULL until the identity has been dense BG_DETECT_AFTER buckets */
} bg_ident;

#endif
