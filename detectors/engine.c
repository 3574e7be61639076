/* The first engine: static limits, envelopes and the correlation rule.
 *
 * Per identity it keeps
 *   - the current event-time bucket (policy bucket_ms wide): api calls,
 *     tokens, cost, secret issuances, tool calls;
 *   - the current clock hour: cost and secret issuances;
 *   - the set of destinations it has used (exact, hashed, capped);
 *   - the secrets issued and the novel destinations first used within the
 *     correlation window (small rings);
 *   - its burst: class, action, start, escalation count, contributing offsets.
 *
 * Signals, per event:
 *   limit      the bucket or hour exceeds a limit of the identity's class
 *              -> UNEXPECTED, unless an envelope covering the identity at that
 *              event time raises the limit far enough -> PLANNED. Inside an
 *              envelope, exceeding the envelope's own limits or reaching a
 *              destination outside allowed_destinations is UNEXPECTED.
 *   correlate  a secret issued to the identity and a destination it has never
 *              used, both within correlation_window_ms of each other (either
 *              order) -> ANOMALOUS, with one revocation command per such secret.
 *              Destinations used during the identity's first learning_period_ms
 *              are its baseline, not novelty, so a new identity does not look
 *              compromised. A secret against known destinations (rotation) or a
 *              new destination with no new secret is not ANOMALOUS.
 *
 * Burst state machine: NORMAL -> ONSET -> ESCALATED* -> ENDED. A burst starts
 * with the first signal (one ONSET verdict), escalates only when its class or
 * action gets worse, and ends after quiet_buckets closed buckets without a
 * limit signal (one ENDED verdict). Verdict ids hash (identity, burst start,
 * phase, escalation number); command ids hash (verdict id, target), so a replay
 * yields the same ids. */
#include "engine.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "hash.h"

#define RING 16u               /* recent secrets / novel destinations kept per identity */
#define DEST_SET_MAX 4096u     /* destinations learned per identity; beyond, new ones count as known */
#define HOUR_MS 3600000
#define HASH_SEED BG_SEED_IDENTITY

typedef struct recent_secret {
    uint64_t hash;
    char *id;
    int64_t t;
    bool revoked; /* a command was already issued for it */
    int64_t offset;
} recent_secret;

typedef struct recent_dest {
    char *dest;
    int64_t t;
    bool reported; /* already listed in an ANOMALOUS verdict */
} recent_dest;

typedef struct counters {
    int64_t api_calls, tokens, cost, secrets, toolcalls;
} counters;

typedef struct src_range {
    int64_t first, last; /* -1 when none */
} src_range;

typedef struct ident {
    uint64_t hash;
    char *identity;
    char *owner; /* first non-null owner seen */
    int64_t first_seen;
    int64_t bucket_start; /* current bucket */
    counters bucket;
    bool bucket_hot; /* a limit signal fired in the current bucket */
    int64_t hour_start;
    int64_t hour_cost, hour_secrets;
    /* envelope usage, while under one */
    uint64_t env_hash;
    int64_t env_cost, env_new_secrets, env_new_dests;
    /* destinations used: open addressing set of hashes (0 = empty) */
    uint64_t *dests;
    uint32_t n_dests, cap_dests;
    recent_secret secrets[RING];
    uint32_t n_secrets_ring, secrets_head;
    recent_dest ndests[RING];
    uint32_t n_ndests_ring, ndests_head;
    /* burst */
    bool in_burst;
    bg_class cls;
    bg_action action;
    int64_t burst_start, burst_last_hot; /* event time */
    uint32_t quiet; /* closed quiet buckets */
    uint32_t escalations;
    char verdict_id[BG_ID_LEN]; /* latest verdict of the burst (revocations refer to it) */
    char *envelope_id;
    const bg_class_policy *klass; /* class at burst start */
    src_range src[BG_EV_KIND_COUNT];
    bg_reason last_reasons[BG_MAX_REASONS];
    uint32_t n_last_reasons;
    struct ident *next_active, *prev_active;
} ident;

struct bg_engine {
    const bg_policy *policy;
    int32_t partition;
    ident **slots; /* open addressing by hash */
    size_t cap, count;
    ident *active; /* identities in a burst */
    bg_engine_stats st;
};

/* ---- helpers ---------------------------------------------------------- */

static uint64_t hash_bytes(const void *p, size_t n) { return bg_hash64(p, n, HASH_SEED); }

static char *dup_str(bg_str s) {
    char *d = malloc((size_t)s.len + 1);
    if (!d)
        return NULL;
    if (s.len)
        memcpy(d, s.ptr, s.len);
    d[s.len] = '\0';
    return d;
}

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int class_rank(bg_class c) { return (int)c; }
static int action_rank(bg_action a) { return (int)a; }

/* ---- identity table ----------------------------------------------------- */

static bg_err table_grow(bg_engine *e) {
    size_t ncap = e->cap ? e->cap * 2 : 1024;
    ident **ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return BG_ERR_NOMEM;
    for (size_t i = 0; i < e->cap; i++) {
        ident *id = e->slots[i];
        if (!id)
            continue;
        size_t j = (size_t)id->hash & (ncap - 1);
        while (ns[j])
            j = (j + 1) & (ncap - 1);
        ns[j] = id;
    }
    free(e->slots);
    e->slots = ns;
    e->cap = ncap;
    return BG_OK;
}

static bg_err ident_get(bg_engine *e, bg_str identity, int64_t t, ident **out) {
    uint64_t h = hash_bytes(identity.ptr, identity.len);
    if (e->cap) {
        size_t j = (size_t)h & (e->cap - 1);
        for (ident *id; (id = e->slots[j]) != NULL; j = (j + 1) & (e->cap - 1)) {
            if (id->hash == h && strlen(id->identity) == identity.len &&
                memcmp(id->identity, identity.ptr, identity.len) == 0) {
                *out = id;
                return BG_OK;
            }
        }
    }
    if ((e->count + 1) * 10 > e->cap * 7) {
        bg_err err = table_grow(e);
        if (err)
            return err;
    }
    ident *id = calloc(1, sizeof *id);
    if (!id)
        return BG_ERR_NOMEM;
    id->identity = dup_str(identity);
    if (!id->identity) {
        free(id);
        return BG_ERR_NOMEM;
    }
    id->hash = h;
    id->first_seen = t;
    id->bucket_start = floor_div(t, e->policy->bucket_ms) * e->policy->bucket_ms;
    id->hour_start = floor_div(t, HOUR_MS) * HOUR_MS;
    for (int k = 0; k < BG_EV_KIND_COUNT; k++)
        id->src[k].first = id->src[k].last = -1;
    size_t j = (size_t)h & (e->cap - 1);
    while (e->slots[j])
        j = (j + 1) & (e->cap - 1);
    e->slots[j] = id;
    e->count++;
    *out = id;
    return BG_OK;
}

static void ident_free(ident *id) {
    free(id->identity);
    free(id->owner);
    free(id->dests);
    for (uint32_t i = 0; i < RING; i++) {
        free(id->secrets[i].id);
        free(id->ndests[i].dest);
    }
    free(id->envelope_id);
    free(id);
}

/* ---- destination set ------------------------------------------------------ */

/* Returns true when h was not in the set (and inserts it while there is room). */
static bool dest_insert(bg_engine *e, ident *id, uint64_t h, bool *full) {
    *full = false;
    if (id->cap_dests) {
        uint32_t j = (uint32_t)h & (id->cap_dests - 1);
        for (; id->dests[j]; j = (j + 1) & (id->cap_dests - 1))
            if (id->dests[j] == h)
                return false;
    }
    if (id->n_dests >= DEST_SET_MAX) {
        *full = true;
        e->st.dest_set_full++;
        return false;
    }
    if ((id->n_dests + 1) * 4 > id->cap_dests * 3) {
        uint32_t ncap = id->cap_dests ? id->cap_dests * 2 : 8;
        uint64_t *nd = calloc(ncap, sizeof *nd);
        if (!nd) {
            *full = true;
            return false;
        }
        for (uint32_t i = 0; i < id->cap_dests; i++) {
            uint64_t v = id->dests[i];
            if (!v)
                continue;
            uint32_t j = (uint32_t)v & (ncap - 1);
            while (nd[j])
                j = (j + 1) & (ncap - 1);
            nd[j] = v;
        }
        free(id->dests);
        id->dests = nd;
        id->cap_dests = ncap;
    }
    uint32_t j = (uint32_t)h & (id->cap_dests - 1);
    while (id->dests[j])
        j = (j + 1) & (id->cap_dests - 1);
    id->dests[j] = h;
    id->n_dests++;
    return true;
}

/* ---- bucket bookkeeping ------------------------------------------------------ */

static void src_reset(ident *id) {
    for (int k = 0; k < BG_EV_KIND_COUNT; k++)
        id->src[k].first = id->src[k].last = -1;
}

static void src_add(ident *id, bg_event_kind kind, int64_t offset) {
    src_range *r = &id->src[kind];
    if (offset < 0)
        return;
    if (r->first < 0 || offset < r->first)
        r->first = offset;
    if (offset > r->last)
        r->last = offset;
}

static void active_link(bg_engine *e, ident *id) {
    id->prev_active = NULL;
    id->next_active = e->active;
    if (e->active)
        e->active->prev_active = id;
    e->active = id;
}

static void active_unlink(bg_engine *e, ident *id) {
    if (id->prev_active)
        id->prev_active->next_active = id->next_active;
    else
        e->active = id->next_active;
    if (id->next_active)
        id->next_active->prev_active = id->prev_active;
    id->next_active = id->prev_active = NULL;
}

/* ---- verdicts ---------------------------------------------------------------- */

static void make_id(char out[BG_ID_LEN], const char *a, size_t alen, int64_t n1, uint32_t n2,
                    const char *tag) {
    /* a \0 n1 n2 tag, hashed in one shot; a is an identity or id (<= BG_MAX_STRING) */
    unsigned char buf[BG_MAX_STRING + 1 + sizeof n1 + sizeof n2 + BG_MAX_STRING];
    size_t tlen = strlen(tag);
    if (alen > BG_MAX_STRING)
        alen = BG_MAX_STRING;
    if (tlen > BG_MAX_STRING)
        tlen = BG_MAX_STRING;
    size_t n = 0;
    memcpy(buf, a, alen);
    n += alen;
    buf[n++] = 0;
    memcpy(buf + n, &n1, sizeof n1);
    n += sizeof n1;
    memcpy(buf + n, &n2, sizeof n2);
    n += sizeof n2;
    memcpy(buf + n, tag, tlen);
    n += tlen;
    XXH128_hash_t h = XXH3_128bits_withSeed(buf, n, HASH_SEED);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        uint64_t w = i < 8 ? h.high64 : h.low64;
        int sh = (7 - (i % 8)) * 8;
        uint8_t b = (uint8_t)(w >> sh);
        out[2 * i] = hex[b >> 4];
        out[2 * i + 1] = hex[b & 15];
    }
    out[32] = '\0';
}

static int severity_for(bg_class c, const bg_reason *r, uint32_t n) {
    double worst = 1.0;
    for (uint32_t i = 0; i < n; i++)
        if (r[i].score > worst)
            worst = r[i].score;
    switch (c) {
    case BG_CLASS_PLANNED:
        return 10;
    case BG_CLASS_UNEXPECTED: {
        /* 40 at the limit, up to 70 at 4x the limit */
        double s = 40.0 + (worst - 1.0) * 10.0;
        return (int)(s > 70.0 ? 70.0 : s);
    }
    case BG_CLASS_ANOMALOUS:
    default:
        return 90;
    }
}

static bool add_route(bg_outputs *out, bg_verdict *v, const char *route, const char *owner) {
    char buf[256];
    const char *r = route;
    if (strcmp(route, "app:{owner}") == 0) {
        if (!owner)
            return true;
        size_t n = strlen(owner);
        if (n > sizeof buf - 5)
            n = sizeof buf - 5;
        memcpy(buf, "app:", 4);
        memcpy(buf + 4, owner, n);
        buf[4 + n] = '\0';
        r = buf;
    }
    for (uint32_t i = 0; i < v->n_review_routes; i++)
        if (strcmp(v->review_routes[i], r) == 0)
            return true;
    if (v->n_review_routes >= BG_MAX_LIST)
        return true;
    const char *d = bg_outputs_strdup(out, r, strlen(r));
    if (!d)
        return false;
    v->review_routes[v->n_review_routes++] = d;
    return true;
}

/* Emit a verdict for the identity's burst in its current state. */
static bg_err emit_verdict(bg_engine *e, ident *id, bg_phase phase, int64_t decided_at,
                           int64_t window_end, const char *const *new_secrets, uint32_t n_ns,
                           const char *const *new_dests, uint32_t n_nd, bg_outputs *out) {
    bg_verdict *v = bg_outputs_add_verdict(out);
    if (!v)
        return BG_ERR_NOMEM;
    make_id(v->verdict_id, id->identity, strlen(id->identity), id->burst_start,
            phase == BG_PHASE_ESCALATED ? id->escalations : 0, bg_phase_name(phase));
    memcpy(id->verdict_id, v->verdict_id, BG_ID_LEN);
    v->identity = bg_outputs_strdup(out, id->identity, strlen(id->identity));
    v->owner = id->owner ? bg_outputs_strdup(out, id->owner, strlen(id->owner)) : NULL;
    v->workload_class = bg_outputs_strdup(out, id->klass->name, strlen(id->klass->name));
    v->classification = id->cls;
    v->phase = phase;
    v->action = id->action;
    v->window_start = id->burst_start;
    v->window_end = window_end;
    v->decided_at = decided_at;
    v->n_reasons = id->n_last_reasons;
    memcpy(v->reasons, id->last_reasons, sizeof v->reasons[0] * id->n_last_reasons);
    v->severity = severity_for(id->cls, v->reasons, v->n_reasons);
    if (phase == BG_PHASE_ENDED && v->severity > 0)
        v->severity = v->severity / 2;
    v->envelope_id =
        id->envelope_id ? bg_outputs_strdup(out, id->envelope_id, strlen(id->envelope_id)) : NULL;
    for (uint32_t i = 0; i < n_ns && v->n_new_secret_ids < BG_MAX_LIST; i++)
        v->new_secret_ids[v->n_new_secret_ids++] =
            bg_outputs_strdup(out, new_secrets[i], strlen(new_secrets[i]));
    for (uint32_t i = 0; i < n_nd && v->n_new_destinations < BG_MAX_LIST; i++)
        v->new_destinations[v->n_new_destinations++] =
            bg_outputs_strdup(out, new_dests[i], strlen(new_dests[i]));
    if (id->cls != BG_CLASS_PLANNED) {
        if (id->cls == BG_CLASS_ANOMALOUS) {
            if (!add_route(out, v, "security", NULL) || !add_route(out, v, "app:{owner}", id->owner))
                return BG_ERR_NOMEM;
        }
        for (uint32_t i = 0; i < id->klass->n_review_routes; i++)
            if (!add_route(out, v, id->klass->review_routes[i], id->owner))
                return BG_ERR_NOMEM;
    }
    v->policy_version = e->policy->version;
    for (int k = 0; k < BG_EV_KIND_COUNT; k++) {
        if (id->src[k].first < 0)
            continue;
        bg_source_range *s = &v->source[v->n_source++];
        s->topic = (bg_event_kind)k;
        s->partition = e->partition;
        s->first_offset = id->src[k].first;
        s->last_offset = id->src[k].last;
    }
    if (!v->identity || !v->workload_class)
        return BG_ERR_NOMEM;
    e->st.verdicts++;
    return BG_OK;
}

static bg_err emit_revocation(bg_engine *e, ident *id, const char *secret_id, int64_t t,
                              bg_outputs *out) {
    bg_revocation *r = bg_outputs_add_revocation(out);
    if (!r)
        return BG_ERR_NOMEM;
    memcpy(r->verdict_id, id->verdict_id, BG_ID_LEN);
    make_id(r->command_id, id->verdict_id, strlen(id->verdict_id), 0, 0, secret_id);
    r->identity = bg_outputs_strdup(out, id->identity, strlen(id->identity));
    r->target = BG_TARGET_SECRET;
    r->secret_id = bg_outputs_strdup(out, secret_id, strlen(secret_id));
    r->reason = "new secret correlated with a new destination";
    r->issued_at = t;
    r->dry_run = !id->klass->enforce;
    if (!r->identity || !r->secret_id)
        return BG_ERR_NOMEM;
    e->st.revocations++;
    return BG_OK;
}

/* Close buckets up to (not including) the one that holds t. */
static bg_err roll_to(bg_engine *e, ident *id, int64_t t, bg_outputs *out) {
    const bg_policy *p = e->policy;
    int64_t b = floor_div(t, p->bucket_ms) * p->bucket_ms;
    if (b <= id->bucket_start)
        return BG_OK;
    /* buckets closing: the current one plus any empty ones in between */
    int64_t closed = (b - id->bucket_start) / p->bucket_ms;
    if (id->in_burst) {
        uint32_t quiet_add;
        if (id->bucket_hot)
            quiet_add = (uint32_t)(closed - 1 > UINT32_MAX ? UINT32_MAX : closed - 1);
        else
            quiet_add = (uint32_t)(closed > UINT32_MAX ? UINT32_MAX : closed);
        if (id->bucket_hot)
            id->quiet = 0;
        id->quiet = quiet_add > UINT32_MAX - id->quiet ? UINT32_MAX : id->quiet + quiet_add;
        if (id->quiet >= p->quiet_buckets) {
            int64_t end = id->burst_last_hot;
            int64_t decided = id->bucket_start + p->bucket_ms * (int64_t)p->quiet_buckets;
            if (decided < end)
                decided = end;
            bg_err err = emit_verdict(e, id, BG_PHASE_ENDED, decided, end, NULL, 0, NULL, 0, out);
            if (err)
                return err;
            id->in_burst = false;
            free(id->envelope_id);
            id->envelope_id = NULL;
            active_unlink(e, id);
        }
    }
    memset(&id->bucket, 0, sizeof id->bucket);
    id->bucket_hot = false;
    id->bucket_start = b;
    if (!id->in_burst)
        src_reset(id);
    int64_t h = floor_div(t, HOUR_MS) * HOUR_MS;
    if (h > id->hour_start) {
        id->hour_start = h;
        id->hour_cost = id->hour_secrets = 0;
    }
    return BG_OK;
}

static void add_reason(bg_reason *r, uint32_t *n, const char *code, const char *det,
                       double observed, double threshold) {
    if (*n >= BG_MAX_REASONS)
        return;
    bg_reason *x = &r[(*n)++];
    x->code = code;
    x->detector = det;
    x->observed = observed;
    x->baseline = 0.0;
    x->threshold = threshold;
    x->score = threshold > 0 ? observed / threshold : observed;
}

static bool over(int64_t v, int64_t limit) { return limit >= 0 && v > limit; }

static bool dest_allowed(const bg_envelope *env, bg_str d) {
    if (!env->n_allowed_destinations || !d.ptr)
        return true;
    for (uint32_t i = 0; i < env->n_allowed_destinations; i++)
        if (strlen(env->allowed_destinations[i]) == d.len &&
            memcmp(env->allowed_destinations[i], d.ptr, d.len) == 0)
            return true;
    return false;
}

/* Raise the burst to (cls, action), emitting ONSET or ESCALATED as needed. */
static bg_err raise_burst(bg_engine *e, ident *id, const bg_class_policy *klass, bg_class cls,
                          bg_action action, const bg_envelope *env, const bg_reason *reasons,
                          uint32_t n_reasons, int64_t t, const char *const *ns, uint32_t n_ns,
                          const char *const *nd, uint32_t n_nd, bg_outputs *out) {
    bg_phase phase;
    if (!id->in_burst) {
        id->in_burst = true;
        id->cls = cls;
        id->action = action;
        id->burst_start = t;
        id->escalations = 0;
        id->quiet = 0;
        id->klass = klass;
        free(id->envelope_id);
        id->envelope_id = NULL;
        if (env) {
            id->envelope_id = strdup(env->envelope_id);
            if (!id->envelope_id)
                return BG_ERR_NOMEM;
        }
        active_link(e, id);
        e->st.bursts++;
        phase = BG_PHASE_ONSET;
    } else if (class_rank(cls) > class_rank(id->cls) ||
               (cls == id->cls && action_rank(action) > action_rank(id->action))) {
        id->cls = cls;
        id->action = action;
        id->escalations++;
        phase = BG_PHASE_ESCALATED;
    } else {
        return BG_OK;
    }
    id->n_last_reasons = n_reasons;
    memcpy(id->last_reasons, reasons, sizeof *reasons * n_reasons);
    return emit_verdict(e, id, phase, t, t, ns, n_ns, nd, n_nd, out);
}

/* ---- correlation ------------------------------------------------------------ */

static bool in_window(int64_t a, int64_t b, int64_t w) {
    int64_t d = a > b ? a - b : b - a;
    return d <= w;
}

/* After a novel destination or a new secret: pair every unrevoked secret with
 * every novel destination within the window of each other. */
static bg_err correlate(bg_engine *e, ident *id, const bg_class_policy *klass,
                        const bg_envelope *env, int64_t t, bg_outputs *out) {
    const int64_t w = e->policy->correlation_window_ms;
    const char *ns[RING], *nd[RING];
    recent_secret *sec[RING];
    uint32_t n_ns = 0, n_nd = 0;
    for (uint32_t i = 0; i < id->n_secrets_ring; i++) {
        recent_secret *s = &id->secrets[i];
        if (s->revoked)
            continue;
        bool paired = false;
        for (uint32_t j = 0; j < id->n_ndests_ring; j++)
            if (in_window(s->t, id->ndests[j].t, w))
                paired = true;
        if (paired) {
            sec[n_ns] = s;
            ns[n_ns++] = s->id;
        }
    }
    if (!n_ns)
        return BG_OK;
    for (uint32_t j = 0; j < id->n_ndests_ring; j++) {
        recent_dest *d = &id->ndests[j];
        for (uint32_t i = 0; i < n_ns; i++)
            if (in_window(sec[i]->t, d->t, w)) {
                nd[n_nd++] = d->dest;
                d->reported = true;
                break;
            }
    }
    bg_reason r[BG_MAX_REASONS];
    uint32_t nr = 0;
    add_reason(r, &nr, "new_secret_new_destination", "correlation", (double)n_ns,
               (double)w / 60000.0);
    r[0].score = 1.0;
    r[0].baseline = (double)id->n_dests;
    for (uint32_t i = 0; i < id->n_last_reasons && id->in_burst && nr < BG_MAX_REASONS; i++)
        if (strcmp(id->last_reasons[i].detector, "correlation") != 0)
            r[nr++] = id->last_reasons[i];
    for (uint32_t i = 0; i < n_ns; i++)
        src_add(id, BG_EV_SECRET, sec[i]->offset);
    bg_err err = raise_burst(e, id, klass, BG_CLASS_ANOMALOUS, BG_ACT_REVOKE, env, r, nr, t, ns,
                             n_ns, nd, n_nd, out);
    if (err)
        return err;
    /* secrets correlated later in an ANOMALOUS burst refer to its latest verdict */
    for (uint32_t i = 0; i < n_ns; i++) {
        err = emit_revocation(e, id, sec[i]->id, t, out);
        if (err)
            return err;
        sec[i]->revoked = true;
    }
    return BG_OK;
}

static bg_err remember_secret(ident *id, bg_str secret_id, int64_t t, int64_t offset) {
    uint64_t h = hash_bytes(secret_id.ptr, secret_id.len);
    for (uint32_t i = 0; i < id->n_secrets_ring; i++)
        if (id->secrets[i].hash == h)
            return BG_OK; /* a re-delivered issuance */
    recent_secret *s;
    if (id->n_secrets_ring < RING) {
        s = &id->secrets[id->n_secrets_ring++];
    } else {
        /* replace the oldest */
        s = &id->secrets[0];
        for (uint32_t i = 1; i < RING; i++)
            if (id->secrets[i].t < s->t)
                s = &id->secrets[i];
        free(s->id);
    }
    s->id = dup_str(secret_id);
    if (!s->id) {
        memset(s, 0, sizeof *s);
        return BG_ERR_NOMEM;
    }
    s->hash = h;
    s->t = t;
    s->revoked = false;
    s->offset = offset;
    return BG_OK;
}

static bg_err remember_novel_dest(ident *id, bg_str dest, int64_t t) {
    recent_dest *d;
    if (id->n_ndests_ring < RING) {
        d = &id->ndests[id->n_ndests_ring++];
    } else {
        d = &id->ndests[0];
        for (uint32_t i = 1; i < RING; i++)
            if (id->ndests[i].t < d->t)
                d = &id->ndests[i];
        free(d->dest);
    }
    d->dest = dup_str(dest);
    if (!d->dest) {
        memset(d, 0, sizeof *d);
        return BG_ERR_NOMEM;
    }
    d->t = t;
    d->reported = false;
    return BG_OK;
}

/* Drop ring entries too old to pair with anything at time t. */
static void prune_rings(ident *id, int64_t t, int64_t w) {
    for (uint32_t i = 0; i < id->n_secrets_ring;) {
        if (t - id->secrets[i].t > w) {
            free(id->secrets[i].id);
            id->secrets[i] = id->secrets[--id->n_secrets_ring];
            memset(&id->secrets[id->n_secrets_ring], 0, sizeof id->secrets[0]);
        } else {
            i++;
        }
    }
    for (uint32_t i = 0; i < id->n_ndests_ring;) {
        if (t - id->ndests[i].t > w) {
            free(id->ndests[i].dest);
            id->ndests[i] = id->ndests[--id->n_ndests_ring];
            memset(&id->ndests[id->n_ndests_ring], 0, sizeof id->ndests[0]);
        } else {
            i++;
        }
    }
}

/* ---- observe ------------------------------------------------------------------ */

bg_err bg_engine_new(const bg_policy *policy, int32_t partition, bg_engine **out) {
    if (!policy || !out || policy->n_classes == 0 || policy->bucket_ms <= 0)
        return BG_ERR_INVALID;
    bg_engine *e = calloc(1, sizeof *e);
    if (!e)
        return BG_ERR_NOMEM;
    e->policy = policy;
    e->partition = partition;
    e->st.stream_time = INT64_MIN;
    e->st.watermark = INT64_MIN;
    *out = e;
    return BG_OK;
}

void bg_engine_free(bg_engine *e) {
    if (!e)
        return;
    for (size_t i = 0; i < e->cap; i++)
        if (e->slots[i])
            ident_free(e->slots[i]);
    free(e->slots);
    free(e);
}

void bg_engine_stats_get(const bg_engine *e, bg_engine_stats *st) {
    *st = e->st;
    st->identities = e->count;
}

bg_err bg_engine_observe(bg_engine *e, const bg_event *ev, int64_t offset, bg_outputs *out) {
    const bg_policy *p = e->policy;
    if (!ev->identity.ptr || ev->identity.len == 0 || (unsigned)ev->kind >= BG_EV_ENVELOPE)
        return BG_ERR_INVALID;
    int64_t t = ev->event_time;
    e->st.events++;
    if (t > e->st.stream_time) {
        e->st.stream_time = t;
        e->st.watermark = t - p->allowed_lateness_ms;
    }
    ident *id;
    bg_err err = ident_get(e, ev->identity, t, &id);
    if (err)
        return err;
    if (!id->owner && ev->owner.ptr) {
        id->owner = dup_str(ev->owner);
        if (!id->owner)
            return BG_ERR_NOMEM;
    }
    if (t < e->st.watermark)
        e->st.late_events++;
    /* late events go to the current bucket; otherwise roll forward */
    if (t >= id->bucket_start) {
        err = roll_to(e, id, t, out);
        if (err)
            return err;
    }
    int64_t ta = t < id->bucket_start ? id->bucket_start : t; /* time as applied */

    const bg_class_policy *klass =
        bg_policy_class_for(p, ev->identity, ev->owner, ev->workload_class);
    bg_str owner = ev->owner.ptr ? ev->owner : (bg_str){id->owner, id->owner ? (uint32_t)strlen(id->owner) : 0};
    const bg_envelope *env = bg_policy_envelope_for(p, ev->identity, klass->name, owner, t);
    uint64_t env_hash = env ? hash_bytes(env->envelope_id, strlen(env->envelope_id)) : 0;
    if (env_hash != id->env_hash) {
        id->env_hash = env_hash;
        id->env_cost = id->env_new_secrets = id->env_new_dests = 0;
    }

    src_add(id, ev->kind, offset);
    bg_str dest = {NULL, 0};
    bool new_secret = false;
    switch (ev->kind) {
    case BG_EV_USAGE: {
        const bg_usage *u = &ev->u.usage;
        id->bucket.api_calls += u->api_calls > 0 ? u->api_calls : 0;
        int64_t tok = (u->tokens_in > 0 ? u->tokens_in : 0) + (u->tokens_out > 0 ? u->tokens_out : 0);
        id->bucket.tokens += tok;
        int64_t cost = u->cost_micros > 0 ? u->cost_micros : 0;
        id->bucket.cost += cost;
        id->hour_cost += cost;
        if (env)
            id->env_cost += cost;
        dest = u->destination;
        break;
    }
    case BG_EV_SECRET:
        id->bucket.secrets++;
        id->hour_secrets++;
        new_secret = true;
        if (env)
            id->env_new_secrets++;
        break;
    case BG_EV_TOOLCALL:
        id->bucket.toolcalls++;
        dest = ev->u.tool.destination;
        break;
    default:
        break;
    }

    /* novelty */
    const int64_t w = p->correlation_window_ms;
    prune_rings(id, ta, w);
    bool novel = false;
    if (dest.ptr && dest.len) {
        bool full;
        bool inserted = dest_insert(e, id, hash_bytes(dest.ptr, dest.len), &full);
        if (inserted && t - id->first_seen >= p->learning_period_ms) {
            novel = true;
            if (env)
                id->env_new_dests++;
            err = remember_novel_dest(id, dest, t);
            if (err)
                return err;
        }
    }
    if (new_secret) {
        err = remember_secret(id, ev->u.secret.secret_id, t, offset);
        if (err)
            return err;
    }

    /* correlation first: when one event both exceeds a limit and completes a
     * new-secret x new-destination pair, the burst goes straight to ANOMALOUS */
    if ((novel || new_secret) && id->n_secrets_ring && id->n_ndests_ring) {
        err = correlate(e, id, klass, env, t, out);
        if (err)
            return err;
        if (id->in_burst && id->cls == BG_CLASS_ANOMALOUS) {
            id->bucket_hot = true;
            id->burst_last_hot = ta;
        }
    }

    /* static limits, with envelope */
    bg_reason r[BG_MAX_REASONS];
    uint32_t nr = 0;
    const counters *b = &id->bucket;
    bool class_over = false;
    if (over(b->api_calls, klass->max_api_calls_per_min) ||
        over(b->tokens, klass->max_tokens_per_min) ||
        over(id->hour_cost, klass->max_cost_micros_per_hour) ||
        over(id->hour_secrets, klass->max_secrets_per_hour))
        class_over = true;
    bg_class cls = BG_CLASS_PLANNED;
    bool signal = false;
    if (class_over) {
        signal = true;
        int64_t lim_calls = klass->max_api_calls_per_min, lim_tok = klass->max_tokens_per_min;
        if (env) {
            if (env->max_api_calls_per_min >= 0)
                lim_calls = env->max_api_calls_per_min;
            if (env->max_tokens_per_min >= 0)
                lim_tok = env->max_tokens_per_min;
        }
        /* per-signal: does it exceed what applies (envelope-raised or class)? */
        if (over(b->api_calls, lim_calls))
            add_reason(r, &nr, "api_calls_per_min", env ? "envelope" : "static_limit",
                       (double)b->api_calls, (double)lim_calls);
        if (over(b->tokens, lim_tok))
            add_reason(r, &nr, "tokens_per_min", env ? "envelope" : "static_limit",
                       (double)b->tokens, (double)lim_tok);
        if (over(id->hour_cost, klass->max_cost_micros_per_hour) &&
            (!env || over(id->env_cost, env->max_cost_micros)))
            add_reason(r, &nr, "cost_micros_per_hour", env ? "envelope" : "static_limit",
                       (double)id->hour_cost, (double)klass->max_cost_micros_per_hour);
        if (over(id->hour_secrets, klass->max_secrets_per_hour) &&
            (!env || over(id->env_new_secrets, env->max_new_secrets)))
            add_reason(r, &nr, "secrets_per_hour", env ? "envelope" : "static_limit",
                       (double)id->hour_secrets, (double)klass->max_secrets_per_hour);
        if (env) {
            if (over(id->env_new_dests, env->max_new_destinations))
                add_reason(r, &nr, "new_destinations", "envelope", (double)id->env_new_dests,
                           (double)env->max_new_destinations);
            if (!dest_allowed(env, dest))
                add_reason(r, &nr, "destination_not_allowed", "envelope", 1.0, 0.0);
        }
        if (nr > 0) {
            cls = BG_CLASS_UNEXPECTED;
        } else {
            /* inside the envelope: record which class limits it lifted */
            if (over(b->api_calls, klass->max_api_calls_per_min))
                add_reason(r, &nr, "api_calls_per_min", "envelope", (double)b->api_calls,
                           (double)klass->max_api_calls_per_min);
            if (over(b->tokens, klass->max_tokens_per_min))
                add_reason(r, &nr, "tokens_per_min", "envelope", (double)b->tokens,
                           (double)klass->max_tokens_per_min);
            if (over(id->hour_cost, klass->max_cost_micros_per_hour))
                add_reason(r, &nr, "cost_micros_per_hour", "envelope", (double)id->hour_cost,
                           (double)klass->max_cost_micros_per_hour);
            if (over(id->hour_secrets, klass->max_secrets_per_hour))
                add_reason(r, &nr, "secrets_per_hour", "envelope", (double)id->hour_secrets,
                           (double)klass->max_secrets_per_hour);
        }
    }
    if (signal) {
        id->bucket_hot = true;
        id->burst_last_hot = ta;
        bg_action action = cls == BG_CLASS_PLANNED ? BG_ACT_ALLOW : klass->unexpected_action;
        err = raise_burst(e, id, klass, cls, action, cls == BG_CLASS_PLANNED || env ? env : NULL,
                          r, nr, t, NULL, 0, NULL, 0, out);
        if (err)
            return err;
    }
    return BG_OK;
}

bg_err bg_engine_tick(bg_engine *e, bg_outputs *out) {
    if (e->st.watermark == INT64_MIN)
        return BG_OK;
    const bg_policy *p = e->policy;
    /* an identity whose burst is active but that sent nothing since: close its
     * buckets as of the watermark */
    for (ident *id = e->active; id;) {
        ident *next = id->next_active;
        if (e->st.watermark >= id->bucket_start + p->bucket_ms) {
            bg_err err = roll_to(e, id, e->st.watermark, out);
            if (err)
                return err;
        }
        id = next;
    }
    return BG_OK;
}
