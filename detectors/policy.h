/* The compiled policy: workload classes, their static limits, envelopes and
 * the engine's windows. Built by the worker from policy YAML (worker/policy_load.c)
 * and then read-only: the engine only reads it.
 *
 * Limits use -1 for "no limit". Times are event-time milliseconds.
 * Ownership: a bg_policy owns all its strings; bg_policy_free() releases them. */
#ifndef BG_POLICY_H
#define BG_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "verdict.h"

#define BG_POLICY_MAX_CLASSES 64u
#define BG_POLICY_MAX_ENVELOPES 1024u
#define BG_POLICY_MAX_ROUTES 8u

typedef struct bg_class_policy {
    char *name; /* class name, unique */
    /* selectors, tried in policy order after an explicit event workload_class
     * that names this class; NULL = not used. A class with no selector only
     * matches explicitly. */
    char *match_identity_prefix; /* identity starts with this */
    char *match_identity_glob;   /* identity matches this fnmatch(3) pattern ('*' spans '/') */
    char *match_owner;           /* owner equals this */
    int64_t max_api_calls_per_min;    /* per 60 s bucket, -1 = none */
    int64_t max_tokens_per_min;       /* tokens_in + tokens_out per bucket */
    int64_t max_cost_micros_per_hour; /* per clock hour of event time */
    int64_t max_cost_micros_per_day;  /* per UTC day of event time */
    int64_t approval_cost_micros_per_hour; /* spend above this in an hour needs approval (an
                                            * envelope): REVIEW, -1 = none */
    int64_t max_new_destinations_per_hour; /* destinations used for the first time, -1 = none */
    int64_t max_secrets_per_hour;     /* secret issuances per clock hour */
    int64_t max_identity_grants_per_hour; /* SERVICE_IDENTITY / OAUTH_GRANT issuances per clock
                                           * hour: more is identity sprawl, -1 = none */
    int64_t max_owner_grants_per_hour; /* the same, summed over an owner's identities in one
                                        * partition, -1 = none */
    int64_t max_secret_ttl_seconds;   /* a secret issued with a longer TTL is a signal, -1 = none */
    double sensitivity;               /* detector sensitivity, 0.25..4 (default 1): change-point
                                       * thresholds are divided by it */
    uint32_t persist_visits;          /* persistent_destination.visits: a rare destination
                                       * first used after the learning period and reached by
                                       * tool calls with side effects in this many distinct
                                       * buckets is ANOMALOUS; 0 = off, default 3 */
    int64_t persist_spread_ms;        /* persistent_destination.spread: ... spread over at least
                                       * this much event time, default 20 min */
    int64_t persist_window_ms;        /* persistent_destination.window: how long after its first
                                       * use a destination is watched, default 2 h */
    bool sprawl_revokes_identity;     /* sprawl is ANOMALOUS with a RevocationCommand targeting
                                       * the IDENTITY (else UNEXPECTED) */
    bg_action unexpected_action;      /* BG_ACT_THROTTLE or BG_ACT_REVIEW */
    char *review_routes[BG_POLICY_MAX_ROUTES]; /* "security", "platform", "app:<owner>" */
    uint32_t n_review_routes;
    bool enforce; /* false: revocations are dry runs */
} bg_class_policy;

typedef struct bg_envelope {
    char *envelope_id;
    char *identity;       /* selector, NULL = any */
    char *workload_class; /* selector, NULL = any */
    char *owner;          /* selector, NULL = any; at least one selector set */
    int64_t not_before, not_after; /* ms, inclusive / exclusive */
    int64_t max_tokens_per_min;    /* -1 = not raised by this envelope (class limit applies) */
    int64_t max_api_calls_per_min;
    int64_t max_cost_micros;       /* over the envelope's window, -1 = none */
    int64_t max_new_secrets;       /* -1 = none */
    int64_t max_new_destinations;  /* -1 = none */
    char **allowed_destinations;   /* NULL/0 = any */
    uint32_t n_allowed_destinations;
    char *approved_by;
    char *ticket;
    bool revoked;
} bg_envelope;

/* A category of destinations with a risk weight. */
typedef struct bg_dest_category {
    char *name;
    double risk;   /* 0..1: added to the correlation score when a new destination is in it */
    char **dests;  /* exact host names */
    uint32_t n_dests;
} bg_dest_category;

#define BG_POLICY_MAX_CATEGORIES 64u

/* Destination lists: exact host names. */
typedef struct bg_dest_lists {
    char **trusted;   /* a first use of one of these is not novelty */
    uint32_t n_trusted;
    char **known_bad; /* any use is a signal; with a new secret, strong evidence */
    uint32_t n_known_bad;
    bg_dest_category *categories;
    uint32_t n_categories;
} bg_dest_lists;

#define BG_POLICY_MAX_DESTS 4096u /* per list */

/* A trusted approver of live envelopes (nhi.envelopes.v1). The worker checks
 * an envelope's Ed25519 signature against public_key when its key_id names
 * this approver; the detectors never verify anything themselves. */
#define BG_POLICY_MAX_APPROVERS 256u
#define BG_POLICY_MAX_SCOPE 64u /* owners or workload classes per approver */
typedef struct bg_approver {
    char *key_id;              /* unique among approvers */
    uint8_t public_key[32];    /* raw Ed25519 public key */
    char **owners;             /* NULL/0: any owner; else the envelope's owner must be listed */
    uint32_t n_owners;
    char **workload_classes;   /* NULL/0: any class; else the envelope's class must be listed */
    uint32_t n_workload_classes;
} bg_approver;

typedef struct bg_policy {
    char version[17];            /* 16 hex digits of a hash of the policy text */
    int64_t bucket_ms;           /* rate bucket width, default 60000 */
    int64_t correlation_window_ms; /* new secret x new destination, default 900000 */
    int64_t learning_period_ms;  /* an identity's first destinations are its baseline, default 3600000 */
    int64_t allowed_lateness_ms; /* watermark = stream time - this, default 30000 */
    uint32_t quiet_buckets;      /* closed buckets under all limits that end a burst, default 2 */
    bg_class_policy classes[BG_POLICY_MAX_CLASSES];
    uint32_t n_classes;
    uint32_t default_class; /* index into classes */
    bg_envelope *envelopes;
    uint32_t n_envelopes;
    bg_dest_lists destinations;
    bg_approver *approvers;    /* empty: envelopes are accepted unsigned */
    uint32_t n_approvers;
} bg_policy;

/* Whether dest is on a list (exact match). */
bool bg_policy_dest_listed(char *const *list, uint32_t n, bg_str dest);
/* The riskiest category dest belongs to, or NULL. */
const bg_dest_category *bg_policy_dest_category(const bg_policy *p, bg_str dest);

/* A policy with one class "default", no limits, no envelopes and the default
 * windows. Returns BG_ERR_NOMEM on allocation failure. */
bg_err bg_policy_init_default(bg_policy *p);
void bg_policy_free(bg_policy *p);

/* The class for an event: an explicit workload_class naming a class wins,
 * then the first class whose selectors match, then the default class. */
const bg_class_policy *bg_policy_class_for(const bg_policy *p, bg_str identity, bg_str owner,
                                           bg_str workload_class);

/* Whether envelope e covers (identity, class, owner) at time t: not revoked,
 * not_before <= t < not_after, and every selector it sets matches. */
bool bg_envelope_covers(const bg_envelope *e, bg_str identity, const char *class_name,
                        bg_str owner, int64_t t);

/* The first envelope that covers (identity, class, owner) at time t and is not
 * revoked, or NULL. */
const bg_envelope *bg_policy_envelope_for(const bg_policy *p, bg_str identity,
                                          const char *class_name, bg_str owner, int64_t t);

#endif
