/* The correlation window: secrets issued to an identity, destinations it
 * used for the first time and tool bigrams (parent_tool->tool) new for it and
 * rare in the partition, kept while they can still pair (correlation window
 * of event time), and the compromise signal they make together.
 *
 * Score in [0, 1], in the verdict's correlation reason: 0.7 for new
 * secret(s) and new destination(s) or unusual tool chain(s) within the
 * window, plus the weight of each amplifier of the current event (the score
 * of its reason), capped at 1:
 *   +0.3 a tool call used one of the new secrets (credential_id) against a
 *        new destination or in the unusual tool chain; a destination on the
 *        policy's known-bad list
 *   +0.1 a destination rare in the partition, an unusual tool chain, a volume
 *        burst, a new scope
 * Which secrets pair: a novelty that a tool call reached with a new secret
 * of the window as its credential_id is "named": only such used secrets pair
 * with it, so the identity's routine rotations in the same window are not
 * revoked with the attacker's key. A novelty without that evidence (usage
 * events carry no credential) pairs with every new secret of its window: the
 * identity is treated as compromised until validated (README, "How decisions
 * are made").
 *
 * Persistence (bg_corr_persist_visit): a destination first used after the
 * learning period and rare in the partition is watched for the class's
 * persistent_destination.window; tool calls with side effects to it in
 * persistent_destination.visits distinct buckets, spread over at least
 * persistent_destination.spread, are ANOMALOUS (REVIEW; REVOKE of the new
 * secrets within the correlation window, if any): slow, low-volume
 * exfiltration stays under every rate limit and pairs with no secret. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "hash.h"

static bg_recent *recent_get(bg_ident *id) {
    if (!id->recent)
        id->recent = calloc(1, sizeof *id->recent);
    return id->recent;
}

static char *dup_str(bg_str s) {
    char *d = malloc((size_t)s.len + 1);
    if (d) {
        if (s.len)
            memcpy(d, s.ptr, s.len);
        d[s.len] = 0;
    }
    return d;
}

bg_err bg_corr_remember_secret(bg_ident *id, bg_str secret_id, int64_t t, int64_t offset) {
    uint64_t h = bg_hash64(secret_id.ptr, secret_id.len, BG_SEED_NOVELTY);
    bg_recent *r = recent_get(id);
    if (!r)
        return BG_ERR_NOMEM;
    for (uint32_t i = 0; i < r->n_secrets; i++)
        if (r->secrets[i].hash == h)
            return BG_OK; /* a re-delivered issuance */
    bg_recent_secret *s;
    if (r->n_secrets < BG_RECENT_MAX) {
        s = &r->secrets[r->n_secrets++];
    } else { /* replace the oldest */
        s = &r->secrets[0];
        for (uint32_t i = 1; i < BG_RECENT_MAX; i++)
            if (r->secrets[i].t < s->t)
                s = &r->secrets[i];
        free(s->id);
    }
    *s = (bg_recent_secret){h, dup_str(secret_id), t, offset, false, false};
    return s->id ? BG_OK : BG_ERR_NOMEM;
}

bg_err bg_corr_remember_dest(bg_ident *id, bg_str dest, int64_t t) {
    bg_recent *r = recent_get(id);
    if (!r)
        return BG_ERR_NOMEM;
    bg_recent_dest *d;
    if (r->n_dests < BG_RECENT_MAX) {
        d = &r->dests[r->n_dests++];
    } else {
        d = &r->dests[0];
        for (uint32_t i = 1; i < BG_RECENT_MAX; i++)
            if (r->dests[i].t < d->t)
                d = &r->dests[i];
        free(d->dest);
    }
    *d = (bg_recent_dest){bg_hash64(dest.ptr, dest.len, BG_SEED_NOVELTY), dup_str(dest), t, false};
    return d->dest ? BG_OK : BG_ERR_NOMEM;
}

bg_err bg_corr_remember_bigram(bg_ident *id, const char *name, size_t len, uint64_t hash,
                               uint32_t users, int64_t t) {
    bg_recent *r = recent_get(id);
    if (!r)
        return BG_ERR_NOMEM;
    bg_recent_bigram *b;
    if (r->n_bigrams < BG_RECENT_BIGRAMS) {
        b = &r->bigrams[r->n_bigrams++];
    } else { /* replace the oldest */
        b = &r->bigrams[0];
        for (uint32_t i = 1; i < BG_RECENT_BIGRAMS; i++)
            if (r->bigrams[i].t < b->t)
                b = &r->bigrams[i];
        free(b->name);
    }
    *b = (bg_recent_bigram){hash, dup_str((bg_str){name, (uint32_t)len}), t, users, false};
    return b->name ? BG_OK : BG_ERR_NOMEM;
}

bg_err bg_corr_watch_dest(bg_ident *id, bg_str dest, uint64_t dest_hash, int64_t t) {
    bg_recent *r = recent_get(id);
    if (!r)
        return BG_ERR_NOMEM;
    bg_recent_persist *p;
    if (r->n_persist < BG_RECENT_PERSIST) {
        p = &r->persist[r->n_persist++];
    } else { /* replace the least visited, then the oldest: a burst of one-off new
              * destinations cannot push out one that keeps being visited */
        p = &r->persist[0];
        for (uint32_t i = 1; i < BG_RECENT_PERSIST; i++) {
            const bg_recent_persist *q = &r->persist[i];
            if (q->visits < p->visits || (q->visits == p->visits && q->t < p->t))
                p = &r->persist[i];
        }
        free(p->dest);
    }
    *p = (bg_recent_persist){dest_hash, dup_str(dest), t, -1, -1, 0, 0, 0};
    return p->dest ? BG_OK : BG_ERR_NOMEM;
}

bool bg_corr_credential_toward(bg_ident *id, bg_str secret_id, bg_str dest, uint64_t dest_hash,
                               uint64_t bigram_hash, int64_t t, int64_t window) {
    bg_recent *r = id->recent;
    if (!r || !secret_id.ptr)
        return false;
    uint64_t h = bg_hash64(secret_id.ptr, secret_id.len, BG_SEED_NOVELTY);
    bg_recent_secret *s = NULL;
    for (uint32_t i = 0; i < r->n_secrets && !s; i++)
        if (r->secrets[i].hash == h && t - r->secrets[i].t <= window &&
            r->secrets[i].t - t <= window)
            s = &r->secrets[i];
    if (!s)
        return false;
    bool toward = false;
    if (dest.ptr) {
        uint64_t dh = bg_hash64(dest.ptr, dest.len, BG_SEED_NOVELTY);
        for (uint32_t i = 0; i < r->n_dests; i++)
            if (r->dests[i].hash == dh)
                toward = r->dests[i].named = true;
        for (uint32_t i = 0; i < r->n_persist; i++)
            if (r->persist[i].hash == dest_hash)
                r->persist[i].named = 1;
    }
    if (bigram_hash)
        for (uint32_t i = 0; i < r->n_bigrams; i++)
            if (r->bigrams[i].hash == bigram_hash)
                toward = r->bigrams[i].named = true;
    if (toward)
        s->used = true;
    return toward;
}

void bg_corr_free(bg_ident *id) {
    bg_recent *r = id->recent;
    if (!r)
        return;
    for (uint32_t i = 0; i < r->n_secrets; i++)
        free(r->secrets[i].id);
    for (uint32_t i = 0; i < r->n_dests; i++)
        free(r->dests[i].dest);
    for (uint32_t i = 0; i < r->n_bigrams; i++)
        free(r->bigrams[i].name);
    for (uint32_t i = 0; i < r->n_persist; i++)
        free(r->persist[i].dest);
    free(r);
    id->recent = NULL;
}

/* Drop the entries of arr[0..n) first seen more than w before t, freeing
 * their string field (order is not kept). */
#define PRUNE(arr, n, field, w)                                                                  \
    for (uint32_t i = 0; i < (n);) {                                                             \
        if (t - (arr)[i].t > (w)) {                                                              \
            free((arr)[i].field);                                                                \
            (arr)[i] = (arr)[--(n)];                                                             \
        } else {                                                                                 \
            i++;                                                                                 \
        }                                                                                        \
    }

void bg_corr_prune(bg_ident *id, int64_t t, int64_t window, int64_t persist_window) {
    bg_recent *r = id->recent;
    if (!r)
        return;
    PRUNE(r->secrets, r->n_secrets, id, window);
    PRUNE(r->dests, r->n_dests, dest, window);
    PRUNE(r->bigrams, r->n_bigrams, name, window);
    PRUNE(r->persist, r->n_persist, dest, persist_window);
    if (!r->n_secrets && !r->n_dests && !r->n_bigrams && !r->n_persist)
        bg_corr_free(id);
}
#undef PRUNE

static bool near(int64_t a, int64_t b, int64_t w) { return (a > b ? a - b : b - a) <= w; }

/* Whether secret s can pair with a novelty first seen at t that a tool call
 * did (named) or did not reach with a new secret of the window. */
static bool can_pair(const bg_recent_secret *s, int64_t t, bool named, int64_t w) {
    return near(s->t, t, w) && (!named || s->used);
}

/* The reasons a burst had so far, other than the correlation's own. */
static void keep_burst_reasons(const bg_ident *id, bg_reason *rs, uint32_t *nr) {
    if (id->burst)
        for (uint32_t i = 0; i < id->burst->n_reasons; i++)
            if (strcmp(id->burst->reasons[i].detector, "correlation"))
                bg_reason_add(rs, nr, id->burst->reasons[i].code, id->burst->reasons[i].detector,
                              id->burst->reasons[i].observed, id->burst->reasons[i].baseline,
                              id->burst->reasons[i].threshold, id->burst->reasons[i].score);
}

/* Raise an ANOMALOUS signal and revoke the paired secrets. */
static bg_err raise_and_revoke(bg_engine *e, bg_ident *id, bg_signal *sig,
                               bg_recent_secret **paired, uint32_t n_paired, int64_t t,
                               bg_outputs *out) {
    bg_err err = bg_burst_raise(e, id, sig, out);
    if (err)
        return err;
    id->burst->last_hot = t;
    id->b_hot = 1;
    /* secrets paired later in an ANOMALOUS burst refer to its latest verdict */
    for (uint32_t i = 0; i < n_paired; i++) {
        err = bg_burst_revoke(e, id, paired[i]->id, t, out);
        if (err)
            return err;
        paired[i]->revoked = true;
    }
    return BG_OK;
}

bg_err bg_corr_check(bg_engine *e, bg_ident *id, const bg_class_policy *klass,
                     const bg_envelope *env, int64_t t, const bg_reason *extra, uint32_t n_extra,
                     bg_outputs *out) {
    bg_recent *r = id->recent;
    if (!r || !r->n_secrets || (!r->n_dests && !r->n_bigrams))
        return BG_OK;
    const int64_t w = e->policy->correlation_window_ms;
    const char *ns[BG_RECENT_MAX], *nd[BG_RECENT_MAX];
    bg_recent_secret *paired[BG_RECENT_MAX];
    const bg_recent_bigram *nb[BG_RECENT_BIGRAMS];
    uint32_t n_ns = 0, n_nd = 0, n_nb = 0;
    for (uint32_t i = 0; i < r->n_secrets; i++) {
        bg_recent_secret *s = &r->secrets[i];
        if (s->revoked)
            continue;
        bool pairs = false;
        for (uint32_t j = 0; j < r->n_dests && !pairs; j++)
            pairs = can_pair(s, r->dests[j].t, r->dests[j].named, w);
        for (uint32_t j = 0; j < r->n_bigrams && !pairs; j++)
            pairs = can_pair(s, r->bigrams[j].t, r->bigrams[j].named, w);
        if (pairs) {
            paired[n_ns] = s;
            ns[n_ns++] = s->id;
        }
    }
    if (!n_ns)
        return BG_OK;
    for (uint32_t j = 0; j < r->n_dests; j++)
        for (uint32_t i = 0; i < n_ns; i++)
            if (can_pair(paired[i], r->dests[j].t, r->dests[j].named, w)) {
                nd[n_nd++] = r->dests[j].dest;
                break;
            }
    for (uint32_t j = 0; j < r->n_bigrams; j++)
        for (uint32_t i = 0; i < n_ns; i++)
            if (can_pair(paired[i], r->bigrams[j].t, r->bigrams[j].named, w)) {
                nb[n_nb++] = &r->bigrams[j];
                break;
            }
    double score = 0.7;
    for (uint32_t i = 0; i < n_extra; i++)
        score += extra[i].score; /* each amplifier carries its weight */
    if (score > 1.0)
        score = 1.0;
    bg_reason rs[BG_MAX_REASONS];
    uint32_t nr = 0;
    if (n_nd)
        bg_reason_add(rs, &nr, "new_secret_new_destination", "correlation", (double)n_ns,
                      (double)id->seen.n, (double)w / 60000.0, score);
    if (n_nb && !n_nd)
        bg_reason_add(rs, &nr, "new_secret_unusual_tool_chain", "correlation", (double)n_ns,
                      (double)id->seen.n, (double)w / 60000.0, score);
    for (uint32_t i = 0; i < n_extra; i++)
        bg_reason_add(rs, &nr, extra[i].code, extra[i].detector, extra[i].observed,
                      extra[i].baseline, extra[i].threshold, extra[i].score);
    if (n_nb && n_nd)
        bg_reason_add(rs, &nr, "new_secret_unusual_tool_chain", "correlation", (double)n_ns,
                      (double)id->seen.n, (double)w / 60000.0, score);
    /* name the tool chains: "tool_chain:parent->tool", observed = identities of
     * the partition that used it, baseline = identities of the partition */
    for (uint32_t j = 0; j < n_nb && j < 2; j++) {
        char code[96];
        int n = snprintf(code, sizeof code, "tool_chain:%s", nb[j]->name);
        size_t len = n < 0 ? 0 : (size_t)n < sizeof code ? (size_t)n : sizeof code - 1;
        const char *c = len ? bg_engine_intern(e, code, len) : NULL;
        /* past the engine's cap on interned strings the chain goes unnamed */
        bg_reason_add(rs, &nr, c ? c : "tool_chain", "novelty", nb[j]->users, (double)e->count, 0,
                      0);
    }
    keep_burst_reasons(id, rs, &nr);
    int64_t offs[BG_RECENT_MAX];
    for (uint32_t i = 0; i < n_ns; i++)
        offs[i] = paired[i]->offset;
    bg_signal sig = {.cls = BG_CLASS_ANOMALOUS,
                     .action = BG_ACT_REVOKE,
                     .klass = klass,
                     .env = env,
                     .reasons = rs,
                     .n_reasons = nr,
                     .t = t,
                     .new_secrets = ns,
                     .n_new_secrets = n_ns,
                     .new_dests = nd,
                     .n_new_dests = n_nd,
                     .secret_offsets = offs,
                     .n_secret_offsets = n_ns};
    return raise_and_revoke(e, id, &sig, paired, n_ns, t, out);
}

bg_err bg_corr_persist_visit(bg_engine *e, bg_ident *id, const bg_class_policy *klass,
                             const bg_envelope *env, uint64_t dest_hash, int64_t t,
                             bg_outputs *out) {
    bg_recent *r = id->recent;
    if (!r || !r->n_persist || !klass->persist_visits)
        return BG_OK;
    bg_recent_persist *p = NULL;
    for (uint32_t i = 0; i < r->n_persist && !p; i++)
        if (r->persist[i].hash == dest_hash)
            p = &r->persist[i];
    if (!p || p->fired)
        return BG_OK;
    const int64_t bw = e->policy->bucket_ms;
    int64_t b = t - (t % bw + bw) % bw; /* the event's bucket */
    if (p->last_bucket != b) {
        p->last_bucket = b;
        if (p->visits < UINT16_MAX)
            p->visits++;
        if (p->first_visit < 0)
            p->first_visit = t;
    }
    if (p->visits < klass->persist_visits || t - p->first_visit < klass->persist_spread_ms)
        return BG_OK;
    p->fired = 1;
    /* new secrets within the correlation window of this visit pair with it */
    const int64_t w = e->policy->correlation_window_ms;
    const char *ns[BG_RECENT_MAX];
    bg_recent_secret *paired[BG_RECENT_MAX];
    int64_t offs[BG_RECENT_MAX];
    uint32_t n_ns = 0;
    for (uint32_t i = 0; i < r->n_secrets; i++) {
        bg_recent_secret *s = &r->secrets[i];
        if (!s->revoked && can_pair(s, t, p->named, w)) {
            offs[n_ns] = s->offset;
            paired[n_ns] = s;
            ns[n_ns++] = s->id;
        }
    }
    bg_reason rs[BG_MAX_REASONS];
    uint32_t nr = 0;
    uint32_t users = bg_cms_query_hash(e->dest_pop, dest_hash);
    bg_reason_add(rs, &nr, "persistent_rare_destination", "persistence", p->visits, users,
                  klass->persist_visits, (double)p->visits / (double)klass->persist_visits);
    bg_reason_add(rs, &nr, "persistent_destination_spread_min", "persistence",
                  (double)(t - p->first_visit) / 60000.0, 0,
                  (double)klass->persist_spread_ms / 60000.0,
                  (double)(t - p->first_visit) / (double)klass->persist_spread_ms);
    if (n_ns)
        bg_reason_add(rs, &nr, "new_secret_persistent_destination", "correlation", n_ns, 0,
                      (double)w / 60000.0, 0.8);
    keep_burst_reasons(id, rs, &nr);
    const char *nd[1] = {p->dest};
    bg_signal sig = {.cls = BG_CLASS_ANOMALOUS,
                     .action = n_ns ? BG_ACT_REVOKE : BG_ACT_REVIEW,
                     .klass = klass,
                     .env = env,
                     .reasons = rs,
                     .n_reasons = nr,
                     .t = t,
                     .new_secrets = ns,
                     .n_new_secrets = n_ns,
                     .new_dests = nd,
                     .n_new_dests = 1,
                     .secret_offsets = offs,
                     .n_secret_offsets = n_ns};
    return raise_and_revoke(e, id, &sig, paired, n_ns, t, out);
}
