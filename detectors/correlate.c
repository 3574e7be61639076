/* The correlation window: secrets issued to an identity and destinations it
 * used for the first time, kept while they can still pair (correlation
 * window of event time), and the compromise signal they make together.
 *
 * Score in [0, 1], in the verdict's correlation reason: 0.7 for new
 * secret(s) and new destination(s) within the window, plus the weight of each
 * amplifier of the current event (the score of its reason), capped at 1:
 *   +0.3 a tool call used one of the new secrets (credential_id) against a
 *        new destination; a destination on the policy's known-bad list
 *   +0.1 a destination rare in the partition, an unusual tool chain, a volume
 *        burst, a new scope */
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
    *s = (bg_recent_secret){h, dup_str(secret_id), t, offset, false};
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
    *d = (bg_recent_dest){bg_hash64(dest.ptr, dest.len, BG_SEED_NOVELTY), dup_str(dest), t};
    return d->dest ? BG_OK : BG_ERR_NOMEM;
}

bool bg_corr_is_recent_secret(const bg_ident *id, bg_str secret_id, int64_t t, int64_t window) {
    if (!id->recent || !secret_id.ptr)
        return false;
    uint64_t h = bg_hash64(secret_id.ptr, secret_id.len, BG_SEED_NOVELTY);
    for (uint32_t i = 0; i < id->recent->n_secrets; i++) {
        const bg_recent_secret *s = &id->recent->secrets[i];
        if (s->hash == h && t - s->t <= window && s->t - t <= window)
            return true;
    }
    return false;
}

void bg_corr_free(bg_ident *id) {
    bg_recent *r = id->recent;
    if (!r)
        return;
    for (uint32_t i = 0; i < r->n_secrets; i++)
        free(r->secrets[i].id);
    for (uint32_t i = 0; i < r->n_dests; i++)
        free(r->dests[i].dest);
    free(r);
    id->recent = NULL;
}

void bg_corr_prune(bg_ident *id, int64_t t, int64_t window) {
    bg_recent *r = id->recent;
    if (!r)
        return;
    for (uint32_t i = 0; i < r->n_secrets;) {
        if (t - r->secrets[i].t > window) {
            free(r->secrets[i].id);
            r->secrets[i] = r->secrets[--r->n_secrets];
        } else {
            i++;
        }
    }
    for (uint32_t i = 0; i < r->n_dests;) {
        if (t - r->dests[i].t > window) {
            free(r->dests[i].dest);
            r->dests[i] = r->dests[--r->n_dests];
        } else {
            i++;
        }
    }
    if (!r->n_secrets && !r->n_dests)
        bg_corr_free(id);
}

static bool near(int64_t a, int64_t b, int64_t w) { return (a > b ? a - b : b - a) <= w; }

bg_err bg_corr_check(bg_engine *e, bg_ident *id, const bg_class_policy *klass,
                     const bg_envelope *env, int64_t t, const bg_reason *extra, uint32_t n_extra,
                     bg_outputs *out) {
    bg_recent *r = id->recent;
    if (!r || !r->n_secrets || !r->n_dests)
        return BG_OK;
    const int64_t w = e->policy->correlation_window_ms;
    const char *ns[BG_RECENT_MAX], *nd[BG_RECENT_MAX];
    bg_recent_secret *paired[BG_RECENT_MAX];
    uint32_t n_ns = 0, n_nd = 0;
    for (uint32_t i = 0; i < r->n_secrets; i++) {
        bg_recent_secret *s = &r->secrets[i];
        if (s->revoked)
            continue;
        for (uint32_t j = 0; j < r->n_dests; j++)
            if (near(s->t, r->dests[j].t, w)) {
                paired[n_ns] = s;
                ns[n_ns++] = s->id;
                break;
            }
    }
    if (!n_ns)
        return BG_OK;
    for (uint32_t j = 0; j < r->n_dests; j++)
        for (uint32_t i = 0; i < n_ns; i++)
            if (near(paired[i]->t, r->dests[j].t, w)) {
                nd[n_nd++] = r->dests[j].dest;
                break;
            }
    double score = 0.7;
    for (uint32_t i = 0; i < n_extra; i++)
        score += extra[i].score; /* each amplifier carries its weight */
    if (score > 1.0)
        score = 1.0;
    bg_reason rs[BG_MAX_REASONS];
    uint32_t nr = 0;
    bg_reason_add(rs, &nr, "new_secret_new_destination", "correlation", (double)n_ns,
                  (double)id->seen.n, (double)w / 60000.0, score);
    for (uint32_t i = 0; i < n_extra; i++)
        bg_reason_add(rs, &nr, extra[i].code, extra[i].detector, extra[i].observed,
                      extra[i].baseline, extra[i].threshold, extra[i].score);
    /* keep what made the burst so far */
    if (id->burst)
        for (uint32_t i = 0; i < id->burst->n_reasons; i++)
            if (strcmp(id->burst->reasons[i].detector, "correlation"))
                bg_reason_add(rs, &nr, id->burst->reasons[i].code, id->burst->reasons[i].detector,
                              id->burst->reasons[i].observed, id->burst->reasons[i].baseline,
                              id->burst->reasons[i].threshold, id->burst->reasons[i].score);
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
    bg_err err = bg_burst_raise(e, id, &sig, out);
    if (err)
        return err;
    id->burst->last_hot = t;
    id->b_hot = 1;
    /* secrets paired later in an ANOMALOUS burst refer to its latest verdict */
    for (uint32_t i = 0; i < n_ns; i++) {
        err = bg_burst_revoke(e, id, paired[i]->id, t, out);
        if (err)
            return err;
        paired[i]->revoked = true;
    }
    return BG_OK;
}
