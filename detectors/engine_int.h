/* Internals shared by the engine's files (engine.c: identities, buckets and
 * signals; burst.c: the burst state machine and its outputs; correlate.c:
 * the correlation window). Not part of the public API. */
#ifndef BG_ENGINE_INT_H
#define BG_ENGINE_INT_H

#include "cms.h"
#include "engine.h"
#include "ident.h"
#include "snapshot.h"

struct bg_engine {
    const bg_policy *policy;
    int32_t partition;
    bg_ident **slots; /* open addressing by identity hash */
    size_t cap, count;
    char **owners; /* interned owner strings; bg_ident.owner is index + 1 */
    int64_t *owner_hour;    /* per owner: the clock hour its grant count is for */
    uint32_t *owner_grants; /* per owner: SERVICE_IDENTITY / OAUTH_GRANT issuances that hour */
    uint32_t n_owners, cap_owners;
    uint32_t *owner_idx;    /* hash index of owners: owner index + 1, 0 = empty */
    uint32_t cap_owner_idx; /* power of two, >= 2 * n_owners */
    bg_burst *bursts; /* open bursts */
    bg_cms *dest_pop;   /* identities per destination in this partition (rarity) */
    bg_cms *bigram_pop; /* identities per parent_tool->tool bigram */
    bg_stack_params stack; /* change-point stack defaults (series_stack.h) */
    const bg_envset *live; /* envelopes from the envelopes topic, or NULL */
    bg_engine_stats st;
    /* state that survives (engine.c, "store") */
    bg_engine_limits lim;
    uint64_t id_bytes;       /* identity state: structs, names, heap parts (tracked) */
    bg_ident **dirty;        /* identities as they became dirty, oldest first; NULL where one
                                was dropped since (bg_ident.dirty_at is its index) */
    size_t n_dirty, cap_dirty;
    uint64_t n_dirty_ids;    /* identities with BG_IDENT_DIRTY set (the non-NULL entries) */
    bool part_dirty;         /* sketches or owner grants changed since the partition record */
    bool no_dirty;           /* dirty tracking off (bg_engine_set_dirty_tracking) */
    char **evicted;          /* ring of evicted identity names awaiting their tombstones */
    size_t ev_head, ev_count, ev_cap;
    size_t sweep;            /* idle-TTL cursor into slots */
    uint64_t sweep_credit;   /* slots the next tick may visit */
    uint64_t burst_seq;      /* ONSETs so far: bg_burst.seq */
    bool bursts_unsorted;    /* a restore linked bursts out of seq order */
    char **rstr;             /* reason strings interned for restored bursts */
    uint32_t n_rstr;
    bg_snap_buf sbuf;        /* the snapshot being handed out */
    bg_engine_state_stats sst;
};

/* A signal for the burst state machine. */
typedef struct bg_signal {
    bg_class cls;
    bg_action action;
    const bg_class_policy *klass;
    const bg_envelope *env; /* the envelope that applied, or NULL */
    const bg_reason *reasons;
    uint32_t n_reasons;
    int64_t t; /* event time */
    const char *const *new_secrets; /* for the verdict */
    uint32_t n_new_secrets;
    const char *const *new_dests;
    uint32_t n_new_dests;
    const int64_t *secret_offsets; /* input offsets of the secrets it pairs, for the sources */
    uint32_t n_secret_offsets;
} bg_signal;

const char *bg_engine_owner(const bg_engine *e, const bg_ident *id);
/* s[0..n) as a NUL-terminated string that lives as long as the engine (for
 * reason codes that name something); NULL when out of memory or beyond the
 * engine's cap on such strings. */
const char *bg_engine_intern(bg_engine *e, const char *s, size_t n);

/* ONSET or ESCALATED when the signal is new or worse; nothing otherwise. */
bg_err bg_burst_raise(bg_engine *e, bg_ident *id, const bg_signal *s, bg_outputs *out);
/* ENDED verdict, then the burst is freed. */
bg_err bg_burst_end(bg_engine *e, bg_ident *id, int64_t decided_at, bg_outputs *out);
/* Note a destination / trace of an event in the open burst's distinct counts. */
void bg_burst_note(bg_ident *id, uint64_t dest_hash, bg_str trace);
/* A revocation command for secret_id under the burst's latest verdict;
 * secret_id NULL revokes the identity itself (target IDENTITY). */
bg_err bg_burst_revoke(bg_engine *e, bg_ident *id, const char *secret_id, int64_t t,
                       bg_outputs *out);
void bg_burst_src_add(bg_ident *id, bg_event_kind kind, int64_t offset);
void bg_burst_free(bg_engine *e, bg_ident *id);

/* Correlation window. */
bg_err bg_corr_remember_secret(bg_ident *id, bg_str secret_id, int64_t t, int64_t offset);
bg_err bg_corr_remember_dest(bg_ident *id, bg_str dest, int64_t t);
/* A tool bigram new for the identity and rare in the partition (name
 * "parent->tool", copied); pairs with new secrets like a new destination. */
bg_err bg_corr_remember_bigram(bg_ident *id, const char *name, size_t len, uint64_t hash,
                               uint32_t users, int64_t t);
/* Watch a rare destination first used after the learning period for
 * persistent use (bg_corr_persist_visit); dest_hash is its
 * bg_novel_hash(BG_NOVEL_DESTINATION, ...). */
bg_err bg_corr_watch_dest(bg_ident *id, bg_str dest, uint64_t dest_hash, int64_t t);
/* A tool call with side effects to a destination: counts a visit when it is
 * watched, and raises persistent_rare_destination (ANOMALOUS, REVIEW; REVOKE
 * of the new secrets within the correlation window) once the class's
 * persistent_destination visits and spread are reached. */
bg_err bg_corr_persist_visit(bg_engine *e, bg_ident *id, const bg_class_policy *klass,
                             const bg_envelope *env, uint64_t dest_hash, int64_t t,
                             bg_outputs *out);
/* A tool call with credential secret_id to dest (dest_hash: its
 * bg_novel_hash) in tool bigram bigram_hash (0 = none): when the credential is
 * a new secret of the window and the destination or the bigram a novelty of
 * the window, the novelty is named (only used secrets pair with it from then
 * on) and the secret marked used. Returns whether it was. */
bool bg_corr_credential_toward(bg_ident *id, bg_str secret_id, bg_str dest, uint64_t dest_hash,
                               uint64_t bigram_hash, int64_t t, int64_t window);
/* Drop what is older than window (secrets, destinations, bigrams) or
 * persist_window (watched destinations) at t; frees the struct when empty. */
void bg_corr_prune(bg_ident *id, int64_t t, int64_t window, int64_t persist_window);
/* Pair unrevoked secrets with novel destinations or tool bigrams within the window: an
 * ANOMALOUS signal plus one revocation per paired secret. extra holds the
 * amplifying reasons of the current event (credential use, tool chain, volume). */
bg_err bg_corr_check(bg_engine *e, bg_ident *id, const bg_class_policy *klass,
                     const bg_envelope *env, int64_t t, const bg_reason *extra, uint32_t n_extra,
                     bg_outputs *out);
void bg_corr_free(bg_ident *id);

/* Reason helper: appends when there is room. */
void bg_reason_add(bg_reason *r, uint32_t *n, const char *code, const char *detector,
                   double observed, double baseline, double threshold, double score);

#endif
