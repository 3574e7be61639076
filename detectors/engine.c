/* The engine of one task: identities, buckets and the signals they raise.
 *
 * Per event: find (or create) the identity, close the buckets the event
 * moves past, add the event to the current bucket and hour, update the
 * first-seen sets, then check the signals, strongest first:
 *   correlation  a new secret and a destination never used before, within the
 *                correlation window (correlate.c): ANOMALOUS + revocations.
 *                Amplified by a tool call that uses the new secret against the
 *                new destination, an unusual tool chain, a volume burst. A tool
 *                bigram new for the identity and rare in the partition pairs
 *                with a new secret like a new destination.
 *   persistence  a rare destination first used after the learning period,
 *                reached by tool calls with side effects in several buckets
 *                over a long enough span (correlate.c): ANOMALOUS, REVIEW.
 *   limits       the bucket or hour beyond a class limit: UNEXPECTED, or
 *                PLANNED when an envelope covering the identity raises the
 *                limit far enough; inside an envelope, exceeding its own
 *                limits or reaching a destination outside its
 *                allowed_destinations is UNEXPECTED.
 *   sprawl       more SERVICE_IDENTITY / OAUTH_GRANT issuances in an hour than
 *                the class allows: UNEXPECTED.
 *   ttl          a secret issued with a TTL beyond the class maximum: UNEXPECTED.
 * The burst state machine (burst.c) turns signals into verdicts.
 *
 * Destinations, scopes and tool bigrams used during an identity's first
 * learning_period_ms are its baseline: novelty counts only after that, so a
 * new identity does not look compromised. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "hash.h"

_Static_assert(sizeof(bg_ident) <= 216, "bg_ident grew beyond its stated 216 bytes");

/* A change-point alarm becomes a signal only when the change is material:
 * the bucket holds at least 3x what the baseline expects and exceeds it by at
 * least this much (divided by the class sensitivity). Per identity and metric
 * the detectors alarm about once per ~10 000 buckets in control; across a
 * fleet that would still be a steady trickle of verdicts about nothing. */
static const double material_abs[BG_METRIC_COUNT] = {
    [BG_M_ACTIONS] = 20,      [BG_M_API_CALLS] = 100, [BG_M_TOKENS] = 50000,
    [BG_M_COST] = 50000,      [BG_M_SECRETS] = 5,     [BG_M_TOOLCALLS] = 20,
    [BG_M_DESTINATIONS] = 5,
};
static const char *const metric_code[BG_METRIC_COUNT] = {
    [BG_M_ACTIONS] = "rate_change_actions",     [BG_M_API_CALLS] = "rate_change_api_calls",
    [BG_M_TOKENS] = "rate_change_tokens",       [BG_M_COST] = "rate_change_cost",
    [BG_M_SECRETS] = "rate_change_secrets",     [BG_M_TOOLCALLS] = "rate_change_toolcalls",
    [BG_M_DESTINATIONS] = "rate_change_new_destinations",
};
#define GAP_STEPS 2 /* empty buckets fed to the detectors after a pause; the rest are skipped */

#define HOUR_MS 3600000
#define DAY_MS 86400000

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static uint32_t add_sat32(uint32_t a, int64_t v) {
    if (v <= 0)
        return a;
    uint64_t s = (uint64_t)a + (uint64_t)v;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

static uint16_t inc_sat16(uint16_t a) { return a == UINT16_MAX ? a : (uint16_t)(a + 1); }

static bool str_is(bg_str s, const char *c) {
    size_t n = strlen(c);
    return s.ptr && s.len == n && !memcmp(s.ptr, c, n);
}

/* ---- owners, interned ------------------------------------------------------ */

const char *bg_engine_owner(const bg_engine *e, const bg_ident *id) {
    return id->owner ? e->owners[id->owner - 1] : NULL;
}

/* Owners are found through a small open-addressing index of their hashes
 * (slot = owner index + 1, 0 = empty, load <= 1/2), so interning costs the
 * same with ten owners or ten thousand (a restore interns one per identity). */
static void owner_index_put(bg_engine *e, uint32_t k) {
    const char *o = e->owners[k];
    size_t j = (size_t)bg_hash64(o, strlen(o), BG_SEED_IDENTITY) & (e->cap_owner_idx - 1);
    while (e->owner_idx[j])
        j = (j + 1) & (e->cap_owner_idx - 1);
    e->owner_idx[j] = k + 1;
}

static bg_err owner_intern(bg_engine *e, bg_str owner, uint32_t *out) {
    uint64_t h = bg_hash64(owner.ptr, owner.len, BG_SEED_IDENTITY);
    if (e->cap_owner_idx)
        for (size_t j = (size_t)h & (e->cap_owner_idx - 1); e->owner_idx[j];
             j = (j + 1) & (e->cap_owner_idx - 1))
            if (str_is(owner, e->owners[e->owner_idx[j] - 1])) {
                *out = e->owner_idx[j];
                return BG_OK;
            }
    if (e->n_owners == e->cap_owners) {
        uint32_t nc = e->cap_owners ? e->cap_owners * 2 : 16;
        char **no = realloc(e->owners, nc * sizeof *no);
        if (!no)
            return BG_ERR_NOMEM;
        e->owners = no;
        int64_t *nh = realloc(e->owner_hour, nc * sizeof *nh);
        if (!nh)
            return BG_ERR_NOMEM;
        e->owner_hour = nh;
        uint32_t *ng = realloc(e->owner_grants, nc * sizeof *ng);
        if (!ng)
            return BG_ERR_NOMEM;
        e->owner_grants = ng;
        e->cap_owners = nc;
    }
    if ((e->n_owners + 1) * 2 > e->cap_owner_idx) {
        uint32_t nc = e->cap_owner_idx ? e->cap_owner_idx * 2 : 32;
        uint32_t *ni = calloc(nc, sizeof *ni);
        if (!ni)
            return BG_ERR_NOMEM;
        free(e->owner_idx);
        e->owner_idx = ni;
        e->cap_owner_idx = nc;
        for (uint32_t k = 0; k < e->n_owners; k++)
            owner_index_put(e, k);
    }
    e->owner_hour[e->n_owners] = INT64_MIN;
    e->owner_grants[e->n_owners] = 0;
    char *d = malloc((size_t)owner.len + 1);
    if (!d)
        return BG_ERR_NOMEM;
    memcpy(d, owner.ptr, owner.len);
    d[owner.len] = 0;
    e->owners[e->n_owners++] = d;
    owner_index_put(e, e->n_owners - 1);
    *out = e->n_owners;
    return BG_OK;
}

/* ---- identity table ------------------------------------------------------- */

static bg_err table_grow(bg_engine *e) {
    size_t ncap = e->cap ? e->cap * 2 : 1024;
    bg_ident **ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return BG_ERR_NOMEM;
    for (size_t i = 0; i < e->cap; i++) {
        bg_ident *id = e->slots[i];
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

static void src_reset(bg_ident *id) {
    for (int k = 0; k < 3; k++) {
        id->src_first[k] = -1;
        id->src_span[k] = 0;
    }
}

/* The slot holding the identity, or the empty slot that ends its probe
 * sequence (where an insert goes); *found tells which. e->cap > 0. */
static size_t probe(const bg_engine *e, const char *name, size_t len, uint64_t h,
                    bg_ident **found) {
    size_t j = (size_t)h & (e->cap - 1);
    for (bg_ident *id; (id = e->slots[j]) != NULL; j = (j + 1) & (e->cap - 1))
        if (id->hash == h && !strncmp(id->identity, name, len) && id->identity[len] == 0) {
            *found = id;
            return j;
        }
    *found = NULL;
    return j;
}

static bg_ident *ident_find(const bg_engine *e, const char *name, size_t len, uint64_t h) {
    bg_ident *id = NULL;
    if (e->cap)
        (void)probe(e, name, len, h, &id);
    return id;
}

/* Bytes an identity holds besides its struct and name (what events change). */
static size_t ident_var_bytes(const bg_ident *id) {
    size_t n = bg_novel_heap_bytes(&id->seen);
    if (id->recent) {
        n += sizeof *id->recent;
        for (uint32_t i = 0; i < id->recent->n_secrets; i++)
            n += strlen(id->recent->secrets[i].id) + 1;
        for (uint32_t i = 0; i < id->recent->n_dests; i++)
            n += strlen(id->recent->dests[i].dest) + 1;
        for (uint32_t i = 0; i < id->recent->n_bigrams; i++)
            n += strlen(id->recent->bigrams[i].name) + 1;
        for (uint32_t i = 0; i < id->recent->n_persist; i++)
            n += strlen(id->recent->persist[i].dest) + 1;
    }
    if (id->det)
        n += sizeof *id->det;
    if (id->burst) {
        n += sizeof *id->burst + bg_hll_bytes(&id->burst->dests) +
             bg_hll_bytes(&id->burst->traces) - 2 * sizeof(bg_hll);
        if (id->burst->envelope_id)
            n += strlen(id->burst->envelope_id) + 1;
    }
    return n;
}

static size_t ident_fixed_bytes(const bg_ident *id) {
    return sizeof *id + strlen(id->identity) + 1;
}

static bg_err ident_get(bg_engine *e, bg_str identity, int64_t t, bg_ident **out) {
    uint64_t h = bg_hash64(identity.ptr, identity.len, BG_SEED_IDENTITY);
    if ((e->count + 1) * 10 > e->cap * 7) {
        bg_err err = table_grow(e);
        if (err)
            return err;
    }
    bg_ident *found;
    size_t slot = probe(e, identity.ptr, identity.len, h, &found);
    if (found) {
        *out = found;
        return BG_OK;
    }
    bg_ident *id = calloc(1, sizeof *id);
    if (!id)
        return BG_ERR_NOMEM;
    id->identity = malloc((size_t)identity.len + 1);
    if (!id->identity) {
        free(id);
        return BG_ERR_NOMEM;
    }
    memcpy(id->identity, identity.ptr, identity.len);
    id->identity[identity.len] = 0;
    id->hash = h;
    int64_t min = floor_div(t, 60000);
    id->first_seen_min = min < 0 ? 0 : min > UINT32_MAX ? UINT32_MAX : (uint32_t)min;
    id->bucket_start = floor_div(t, e->policy->bucket_ms) * e->policy->bucket_ms;
    src_reset(id);
    e->slots[slot] = id;
    e->count++;
    e->id_bytes += sizeof *id + (size_t)identity.len + 1;
    *out = id;
    return BG_OK;
}

static void ident_free(bg_engine *e, bg_ident *id) {
    free(id->det);
    bg_burst_free(e, id);
    bg_corr_free(id);
    bg_novel_free(&id->seen);
    free(id->identity);
    free(id);
}

/* Linear probing with backward-shift deletion: the entries after the hole
 * that may live there (their home is not cyclically within (hole, j]) move
 * back, so every probe sequence stays unbroken without tombstones. */
static void table_delete(bg_engine *e, const bg_ident *id) {
    const size_t mask = e->cap - 1;
    size_t i = (size_t)id->hash & mask;
    while (e->slots[i] != id)
        i = (i + 1) & mask;
    e->slots[i] = NULL;
    for (size_t j = (i + 1) & mask; e->slots[j]; j = (j + 1) & mask) {
        size_t home = (size_t)e->slots[j]->hash & mask;
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        e->slots[i] = e->slots[j];
        e->slots[j] = NULL;
        i = j;
    }
}

/* Removes id from the store and frees it; its name goes to *name when
 * asked for (the caller owns it then). Open bursts end silently. */
static void ident_drop(bg_engine *e, bg_ident *id, char **name) {
    table_delete(e, id);
    e->count--;
    e->id_bytes -= ident_fixed_bytes(id) + ident_var_bytes(id);
    if (id->flags & BG_IDENT_DIRTY) {
        e->dirty[id->dirty_at] = NULL;
        e->n_dirty_ids--;
    }
    if (name) {
        *name = id->identity;
        id->identity = NULL;
    }
    ident_free(e, id);
}

/* ---- store: bounds, eviction, dirty list -------------------------------------- */

#define EVICTED_MAX (1u << 20) /* tombstones held for the worker; older ones are dropped */
#define HIST_BINS 1024u
#define REASON_STRINGS_MAX 256u

static size_t total_bytes(const bg_engine *e) {
    return (size_t)e->id_bytes + e->cap * sizeof *e->slots + bg_cms_bytes(e->dest_pop) +
           bg_cms_bytes(e->bigram_pop);
}

/* Last activity: the event time of the latest event (or the bucket a tick
 * moved the identity's state to). */
static int64_t last_active(const bg_ident *id) { return id->bucket_start + (int64_t)id->last_ms; }

/* Squeezes out the entries of identities dropped while dirty. */
static void dirty_compact(bg_engine *e) {
    size_t w = 0;
    for (size_t i = 0; i < e->n_dirty; i++)
        if (e->dirty[i]) {
            e->dirty[w] = e->dirty[i];
            e->dirty[w]->dirty_at = (uint32_t)w;
            w++;
        }
    e->n_dirty = w;
}

static bg_err mark_dirty(bg_engine *e, bg_ident *id) {
    if ((id->flags & BG_IDENT_DIRTY) || e->no_dirty)
        return BG_OK;
    if (e->n_dirty == e->cap_dirty && e->n_dirty > 2 * e->n_dirty_ids + 1024)
        dirty_compact(e); /* at least half the entries were dropped ones */
    if (e->n_dirty == e->cap_dirty) {
        size_t nc = e->cap_dirty ? e->cap_dirty * 2 : 1024;
        if (nc > UINT32_MAX)
            return BG_ERR_NOMEM;
        bg_ident **nd = realloc(e->dirty, nc * sizeof *nd);
        if (!nd)
            return BG_ERR_NOMEM;
        e->dirty = nd;
        e->cap_dirty = nc;
    }
    id->dirty_at = (uint32_t)e->n_dirty;
    e->dirty[e->n_dirty++] = id;
    id->flags |= BG_IDENT_DIRTY;
    e->n_dirty_ids++;
    return BG_OK;
}

/* Queues an evicted identity's name for its tombstone (takes ownership). */
static void evicted_push(bg_engine *e, char *name) {
    if (e->ev_count == e->ev_cap && e->ev_cap < EVICTED_MAX) {
        size_t nc = e->ev_cap ? e->ev_cap * 2 : 256;
        char **nr = malloc(nc * sizeof *nr);
        if (nr) {
            for (size_t i = 0; i < e->ev_count; i++)
                nr[i] = e->evicted[(e->ev_head + i) % e->ev_cap];
            free(e->evicted);
            e->evicted = nr;
            e->ev_cap = nc;
            e->ev_head = 0;
        }
    }
    if (e->ev_count == e->ev_cap) { /* full (or no memory): the oldest goes untold */
        if (!e->ev_cap) {
            free(name);
            e->sst.tombstones_dropped++;
            return;
        }
        free(e->evicted[e->ev_head]);
        e->ev_head = (e->ev_head + 1) % e->ev_cap;
        e->ev_count--;
        e->sst.tombstones_dropped++;
    }
    e->evicted[(e->ev_head + e->ev_count) % e->ev_cap] = name;
    e->ev_count++;
}

static void evict(bg_engine *e, bg_ident *id) {
    char *name = NULL;
    ident_drop(e, id, &name);
    evicted_push(e, name);
}

static int cmp_victim(const void *a, const void *b) {
    const bg_ident *x = *(const bg_ident *const *)a, *y = *(const bg_ident *const *)b;
    int64_t tx = last_active(x), ty = last_active(y);
    if (tx != ty)
        return tx < ty ? -1 : 1;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return strcmp(x->identity, y->identity);
}

/* Appends to v up to want identities (with or without an open burst) that
 * were least recently active: a histogram of last activity, HIST_BINS bins
 * over the candidates' span (exact while the span is under HIST_BINS ms),
 * gives the cutoff; the bin at the cutoff gives up its identities in table
 * order. Three passes over the table, no allocation. */
static size_t pick_victims(bg_engine *e, bool with_burst, size_t want, bg_ident **v, size_t nv) {
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    size_t cand = 0;
    for (size_t i = 0; i < e->cap; i++) {
        const bg_ident *id = e->slots[i];
        if (!id || (id->burst != NULL) != with_burst)
            continue;
        int64_t t = last_active(id);
        lo = t < lo ? t : lo;
        hi = t > hi ? t : hi;
        cand++;
    }
    if (!cand || !want)
        return nv;
    const uint64_t width = ((uint64_t)hi - (uint64_t)lo) / HIST_BINS + 1;
#define BIN(id) ((size_t)(((uint64_t)last_active(id) - (uint64_t)lo) / width))
    size_t cut = HIST_BINS, at_cut = 0; /* take bins < cut, and at_cut from bin cut */
    if (cand > want) {
        uint32_t hist[HIST_BINS] = {0};
        for (size_t i = 0; i < e->cap; i++) {
            const bg_ident *id = e->slots[i];
            if (id && (id->burst != NULL) == with_burst)
                hist[BIN(id)]++;
        }
        size_t cum = 0;
        for (cut = 0; cut < HIST_BINS && cum + hist[cut] < want; cut++)
            cum += hist[cut];
        at_cut = want - cum;
    }
    for (size_t i = 0; i < e->cap && want; i++) {
        bg_ident *id = e->slots[i];
        if (!id || (id->burst != NULL) != with_burst)
            continue;
        size_t bin = BIN(id);
        if (bin < cut || (bin == cut && at_cut)) {
            if (bin == cut)
                at_cut--;
            v[nv++] = id;
            want--;
        }
    }
#undef BIN
    return nv;
}

/* Evicts want identities: the least recently active without an open burst
 * first, then (only when those are not enough) the least recently active
 * with one; their bursts end without an ENDED verdict. */
static bg_err evict_batch(bg_engine *e, size_t want) {
    if (want > e->count)
        want = e->count;
    bg_ident **v = malloc((want ? want : 1) * sizeof *v);
    if (!v)
        return BG_ERR_NOMEM;
    size_t n = pick_victims(e, false, want, v, 0);
    if (n < want)
        n = pick_victims(e, true, want - n, v, n);
    qsort(v, n, sizeof *v, cmp_victim);
    for (size_t i = 0; i < n; i++)
        evict(e, v[i]);
    e->sst.evicted_bound += n;
    free(v);
    return BG_OK;
}

static bool over_bounds(const bg_engine *e) {
    return (e->lim.max_identities && e->count > e->lim.max_identities) ||
           (e->lim.max_bytes && total_bytes(e) > e->lim.max_bytes);
}

/* A sixteenth of the store at once (at least what the identity bound
 * needs), so the passes over the table cost O(16) slots per new identity. */
static bg_err enforce_bounds(bg_engine *e) {
    while (e->count && over_bounds(e)) {
        size_t want = e->count / 16;
        if (e->lim.max_identities && e->count > e->lim.max_identities &&
            want < e->count - e->lim.max_identities)
            want = e->count - e->lim.max_identities;
        bg_err err = evict_batch(e, want ? want : 1);
        if (err)
            return err;
    }
    return BG_OK;
}

/* Idle eviction in event time: visits up to the credit the events since the
 * last tick earned (4 slots each, plus 64), from a cursor that wraps around
 * the table. Backward-shift deletion moves entries only into the hole at
 * the cursor or after it, so re-reading the cursor's slot misses nothing. */
static void sweep_idle(bg_engine *e) {
    if (!e->cap || e->lim.idle_ttl_ms <= 0 || e->st.watermark < INT64_MIN + e->lim.idle_ttl_ms)
        return; /* nothing can be that far behind yet */
    uint64_t budget = e->sweep_credit + 64;
    e->sweep_credit = 0;
    if (budget > e->cap)
        budget = e->cap;
    const int64_t cutoff = e->st.watermark - e->lim.idle_ttl_ms;
    for (; budget; budget--) {
        if (e->sweep >= e->cap)
            e->sweep = 0;
        bg_ident *id = e->slots[e->sweep];
        if (id && !id->burst && last_active(id) < cutoff) {
            evict(e, id);
            e->sst.evicted_idle++;
            continue;
        }
        e->sweep++;
    }
}

static bool learned(const bg_engine *e, const bg_ident *id, int64_t t) {
    return t - (int64_t)id->first_seen_min * 60000 >= e->policy->learning_period_ms;
}

/* ---- buckets ------------------------------------------------------------------ */

/* The policy's envelopes first, then the live ones. */
static const bg_envelope *envelope_for(const bg_engine *e, bg_str identity, const char *class_name,
                                       bg_str owner, int64_t t) {
    const bg_envelope *env = bg_policy_envelope_for(e->policy, identity, class_name, owner, t);
    if (!env && e->live)
        env = bg_envset_find(e->live, identity, class_name, owner, t);
    return env;
}

void bg_engine_set_envelopes(bg_engine *e, const bg_envset *live) { e->live = live; }

static uint16_t class_in(const bg_policy *p, const char *name) {
    for (uint32_t i = 0; i < p->n_classes; i++)
        if (!strcmp(p->classes[i].name, name))
            return (uint16_t)i;
    return (uint16_t)p->default_class;
}

void bg_engine_set_policy(bg_engine *e, const bg_policy *p) {
    const bg_policy *old = e->policy;
    for (size_t i = 0; i < e->cap; i++) {
        bg_ident *id = e->slots[i];
        if (id && id->klass < old->n_classes)
            id->klass = class_in(p, old->classes[id->klass].name);
    }
    for (bg_burst *b = e->bursts; b; b = b->next)
        b->klass = &p->classes[class_in(p, b->klass->name)];
    e->policy = p;
}

static const char *detector_name(unsigned fired) {
    if (fired & BG_STACK_FIRED_SPIKE)
        return "spike";
    if (fired & BG_STACK_FIRED_CUSUM)
        return "cusum";
    if (fired & BG_STACK_FIRED_PH)
        return "page_hinkley";
    return "bocpd";
}

/* Feed the closing bucket (then up to GAP_STEPS empty ones) to the
 * identity's detectors. *hot: a metric is inside a detected burst. Material
 * onsets are written as reasons into r. */
static void detect(bg_engine *e, bg_ident *id, int64_t closed, const bg_class_policy *k,
                   bg_reason r[BG_MAX_REASONS], uint32_t *nr, bool *hot) {
    const double x[BG_METRIC_COUNT] = {
        [BG_M_ACTIONS] = id->b_actions, [BG_M_API_CALLS] = id->b_calls,
        [BG_M_TOKENS] = id->b_tokens,   [BG_M_COST] = id->b_cost,
        [BG_M_SECRETS] = id->b_secrets, [BG_M_TOOLCALLS] = id->b_tools,
        [BG_M_DESTINATIONS] = id->b_new_dests,
    };
    bg_stack_params sp = e->stack;
    sp.sensitivity = (float)k->sensitivity;
    for (int m = 0; m < BG_METRIC_COUNT; m++)
        if (x[m] > 0)
            id->metrics_seen |= (uint8_t)(1u << m);
    int64_t steps = closed < 1 + GAP_STEPS ? closed : 1 + GAP_STEPS;
    for (int64_t s = 0; s < steps; s++) {
        int64_t ts = (id->bucket_start + s * e->policy->bucket_ms) / 1000;
        for (int m = 0; m < BG_METRIC_COUNT; m++) {
            /* a metric that was always zero has nothing to learn yet */
            if (!(id->metrics_seen & (1u << m)))
                continue;
            bg_stack_out o;
            if (bg_stack_metric_step(&id->det->m[m], &sp, NULL, ts, s ? 0.0 : x[m], &o))
                continue;
            if (s || o.dir != BG_CPD_UP)
                continue;
            if (o.phase == BG_STACK_ONSET || o.phase == BG_STACK_PEAK)
                *hot = true;
            double floor_abs = material_abs[m] / k->sensitivity;
            if (o.phase == BG_STACK_ONSET && x[m] >= 3.0 * o.expected &&
                x[m] - o.expected >= floor_abs)
                bg_reason_add(r, nr, metric_code[m], detector_name(o.fired), x[m], o.expected,
                              o.expected + floor_abs, o.score);
        }
    }
}

/* Close the buckets before the one holding t. */
static bg_err roll_to(bg_engine *e, bg_ident *id, int64_t t, bg_outputs *out) {
    const bg_policy *p = e->policy;
    int64_t b = floor_div(t, p->bucket_ms) * p->bucket_ms;
    if (b <= id->bucket_start)
        return BG_OK;
    int64_t closed = (b - id->bucket_start) / p->bucket_ms;
    const bg_class_policy *k = &p->classes[id->klass < p->n_classes ? id->klass : p->default_class];
    bool had_events = id->b_actions || id->b_secrets || id->b_tools || id->b_calls;
    if (had_events && closed <= 2 && id->dense < UINT16_MAX)
        id->dense++;
    else if (!had_events || closed > 2)
        id->dense = 0;
    if (!id->det && id->dense >= BG_DETECT_AFTER) {
        id->det = malloc(sizeof *id->det);
        if (!id->det)
            return BG_ERR_NOMEM;
        for (int m = 0; m < BG_METRIC_COUNT; m++)
            bg_stack_metric_init(&id->det->m[m]);
    }
    bg_reason dr[BG_MAX_REASONS];
    uint32_t ndr = 0;
    bool det_hot = false;
    if (id->det)
        detect(e, id, closed, k, dr, &ndr, &det_hot);
    if (det_hot)
        id->b_hot = 1;
    if (ndr) {
        /* a material rate change, decided when its bucket closed; part of the
         * open burst, if any, before the quiet buckets are counted */
        int64_t at = id->bucket_start + p->bucket_ms;
        const char *owner = bg_engine_owner(e, id);
        bg_str ids = {id->identity, (uint32_t)strlen(id->identity)};
        bg_str own = {owner, owner ? (uint32_t)strlen(owner) : 0};
        const bg_envelope *env = envelope_for(e, ids, k->name, own, at - 1);
        bg_signal sig = {.cls = env ? BG_CLASS_PLANNED : BG_CLASS_UNEXPECTED,
                         .action = env ? BG_ACT_ALLOW : k->unexpected_action,
                         .klass = k,
                         .env = env,
                         .reasons = dr,
                         .n_reasons = ndr,
                         .t = at - 1};
        bg_err err = bg_burst_raise(e, id, &sig, out);
        if (err)
            return err;
        if (id->burst && id->burst->last_hot < at - 1)
            id->burst->last_hot = at - 1;
    }
    if (id->burst) {
        bg_burst *bu = id->burst;
        /* the current bucket, then the empty ones up to t */
        int64_t quiet = id->b_hot ? closed - 1 : (int64_t)bu->quiet + closed;
        bu->quiet = quiet > UINT32_MAX ? UINT32_MAX : (uint32_t)quiet;
        if (bu->quiet >= p->quiet_buckets) {
            int64_t decided = id->bucket_start + p->bucket_ms * (int64_t)p->quiet_buckets;
            bg_err err = bg_burst_end(e, id, decided, out);
            if (err)
                return err;
        }
    }
    if (floor_div(b, HOUR_MS) != floor_div(id->bucket_start, HOUR_MS)) {
        id->h_cost = 0;
        id->h_secrets = id->h_grants = id->h_new_dests = 0;
    }
    if (floor_div(b, DAY_MS) != floor_div(id->bucket_start, DAY_MS))
        id->d_cost = 0;
    id->b_calls = id->b_actions = id->b_tokens = id->b_cost = 0;
    id->b_secrets = id->b_tools = id->b_new_dests = 0;
    id->b_hot = 0;
    id->bucket_start = b;
    id->last_ms = 0;
    src_reset(id);
    return BG_OK;
}

static void src_note(bg_ident *id, bg_event_kind kind, int64_t offset) {
    if (offset < 0 || (unsigned)kind >= 3)
        return;
    if (id->src_first[kind] < 0 || offset < id->src_first[kind]) {
        id->src_first[kind] = offset;
    } else {
        int64_t span = offset - id->src_first[kind];
        if (span > (int64_t)id->src_span[kind])
            id->src_span[kind] = span > UINT32_MAX ? UINT32_MAX : (uint32_t)span;
    }
    bg_burst_src_add(id, kind, offset);
}

/* Fan-out: consecutive events under one trace_id count as one action. */
static void count_action(bg_ident *id, bg_str trace) {
    if (trace.ptr && trace.len) {
        uint32_t f = (uint32_t)(bg_hash64(trace.ptr, trace.len, BG_SEED_SKETCH) >> 32) | 1u;
        if (id->traces[0] == f || id->traces[1] == f)
            return;
        id->traces[1] = id->traces[0];
        id->traces[0] = f;
    }
    id->b_actions = add_sat32(id->b_actions, 1);
}

/* ---- engine --------------------------------------------------------------------- */

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
    bg_stack_params_default(&e->stack);
    /* eps 0.001, delta 0.01: 2719 x 5 counters, 54 KiB per sketch */
    if (bg_cms_new(0.001, 0.01, &e->dest_pop) || bg_cms_new(0.001, 0.01, &e->bigram_pop)) {
        bg_engine_free(e);
        return BG_ERR_NOMEM;
    }
    *out = e;
    return BG_OK;
}

void bg_engine_free(bg_engine *e) {
    if (!e)
        return;
    for (size_t i = 0; i < e->cap; i++)
        if (e->slots[i])
            ident_free(e, e->slots[i]);
    for (uint32_t i = 0; i < e->n_owners; i++)
        free(e->owners[i]);
    free(e->owners);
    free(e->owner_idx);
    free(e->owner_hour);
    free(e->owner_grants);
    free(e->slots);
    bg_cms_free(e->dest_pop);
    bg_cms_free(e->bigram_pop);
    free(e->dirty);
    for (size_t i = 0; i < e->ev_count; i++)
        free(e->evicted[(e->ev_head + i) % e->ev_cap]);
    free(e->evicted);
    for (uint32_t i = 0; i < e->n_rstr; i++)
        free(e->rstr[i]);
    free(e->rstr);
    bg_snap_buf_free(&e->sbuf);
    free(e);
}

void bg_engine_stats_get(const bg_engine *e, bg_engine_stats *st) {
    *st = e->st;
    st->identities = e->count;
}

size_t bg_engine_state_bytes(const bg_engine *e) {
    size_t n = e->cap * sizeof *e->slots + bg_cms_bytes(e->dest_pop) + bg_cms_bytes(e->bigram_pop);
    for (size_t i = 0; i < e->cap; i++)
        if (e->slots[i])
            n += ident_fixed_bytes(e->slots[i]) + ident_var_bytes(e->slots[i]);
    return n;
}

static bool over(int64_t v, int64_t limit) { return limit >= 0 && v > limit; }

/* Rare in the partition: used by at most max(2, 0.5% of its identities). The
 * Count-Min estimate never undercounts, so "rare" is never a sketch artefact. */
static bool rare(const bg_engine *e, const bg_cms *pop, uint64_t h, uint32_t *users) {
    *users = bg_cms_query_hash(pop, h);
    uint64_t limit = e->count / 200;
    return *users <= (limit < 2 ? 2 : limit);
}

static bool dest_allowed(const bg_envelope *env, bg_str d) {
    if (!env->n_allowed_destinations || !d.ptr)
        return true;
    for (uint32_t i = 0; i < env->n_allowed_destinations; i++)
        if (str_is(d, env->allowed_destinations[i]))
            return true;
    return false;
}

/* Limits, sprawl and TTL: the non-correlation signal of this event, if any,
 * into *s (its reasons in r). *volume: the bucket is beyond a class limit. */
static bool limit_signal(const bg_policy *pol, bg_ident *id, const bg_event *ev,
                         const bg_class_policy *k, const bg_envelope *env, bg_str dest,
                         uint32_t owner_grants, bg_reason r[BG_MAX_REASONS], bg_signal *s,
                         bool *volume) {
    uint32_t nr = 0;
    const int64_t calls = id->b_calls, tok = id->b_tokens;
    const int64_t hcost = (int64_t)(id->h_cost > INT64_MAX ? INT64_MAX : id->h_cost);
    const int64_t dcost = (int64_t)(id->d_cost > INT64_MAX ? INT64_MAX : id->d_cost);
    bool class_over = over(calls, k->max_api_calls_per_min) || over(tok, k->max_tokens_per_min) ||
                      over(hcost, k->max_cost_micros_per_hour) ||
                      over(dcost, k->max_cost_micros_per_day) ||
                      over(hcost, k->approval_cost_micros_per_hour) ||
                      over(id->h_new_dests, k->max_new_destinations_per_hour) ||
                      over(id->h_secrets, k->max_secrets_per_hour);
    bg_action action = k->unexpected_action;
    *volume = class_over;
    bg_class cls = BG_CLASS_UNEXPECTED;
    const char *det = env ? "envelope" : "static_limit";
    if (class_over) {
        int64_t lc = k->max_api_calls_per_min, lt = k->max_tokens_per_min;
        if (env && env->max_api_calls_per_min >= 0)
            lc = env->max_api_calls_per_min;
        if (env && env->max_tokens_per_min >= 0)
            lt = env->max_tokens_per_min;
        if (over(calls, lc))
            bg_reason_add(r, &nr, "api_calls_per_min", det, (double)calls, 0, (double)lc,
                          (double)calls / (double)(lc ? lc : 1));
        if (over(tok, lt))
            bg_reason_add(r, &nr, "tokens_per_min", det, (double)tok, 0, (double)lt,
                          (double)tok / (double)(lt ? lt : 1));
        if (over(hcost, k->max_cost_micros_per_hour) && (!env || over(id->env_cost, env->max_cost_micros)))
            bg_reason_add(r, &nr, "cost_micros_per_hour", det, (double)hcost, 0,
                          (double)k->max_cost_micros_per_hour,
                          (double)hcost / (double)(k->max_cost_micros_per_hour ? k->max_cost_micros_per_hour : 1));
        bool env_cost_over = !env || over(id->env_cost, env->max_cost_micros);
        if (over(dcost, k->max_cost_micros_per_day) && env_cost_over)
            bg_reason_add(r, &nr, "cost_micros_per_day", det, (double)dcost, 0,
                          (double)k->max_cost_micros_per_day,
                          (double)dcost / (double)(k->max_cost_micros_per_day ? k->max_cost_micros_per_day : 1));
        if (over(hcost, k->approval_cost_micros_per_hour) && env_cost_over) {
            /* spend that needs an approval nobody gave: a person decides */
            action = BG_ACT_REVIEW;
            bg_reason_add(r, &nr, "spend_needs_approval", det, (double)hcost, 0,
                          (double)k->approval_cost_micros_per_hour,
                          (double)hcost / (double)(k->approval_cost_micros_per_hour ? k->approval_cost_micros_per_hour : 1));
        }
        if (over(id->h_new_dests, k->max_new_destinations_per_hour) &&
            (!env || over(id->env_new_dests, env->max_new_destinations)))
            bg_reason_add(r, &nr, "new_destinations_per_hour", det, id->h_new_dests, 0,
                          (double)k->max_new_destinations_per_hour,
                          (double)id->h_new_dests / (double)(k->max_new_destinations_per_hour ? k->max_new_destinations_per_hour : 1));
        if (over(id->h_secrets, k->max_secrets_per_hour) &&
            (!env || over(id->env_new_secrets, env->max_new_secrets)))
            bg_reason_add(r, &nr, "secrets_per_hour", det, id->h_secrets, 0,
                          (double)k->max_secrets_per_hour,
                          (double)id->h_secrets / (double)(k->max_secrets_per_hour ? k->max_secrets_per_hour : 1));
        if (env) {
            if (over(id->env_new_dests, env->max_new_destinations))
                bg_reason_add(r, &nr, "new_destinations", "envelope", id->env_new_dests, 0,
                              (double)env->max_new_destinations, 1.0);
            if (!dest_allowed(env, dest))
                bg_reason_add(r, &nr, "destination_not_allowed", "envelope", 1, 0, 0, 1.0);
        }
        if (!nr && env) {
            /* inside the envelope: record which class limits it lifted */
            cls = BG_CLASS_PLANNED;
            if (over(calls, k->max_api_calls_per_min))
                bg_reason_add(r, &nr, "api_calls_per_min", "envelope", (double)calls, 0,
                              (double)k->max_api_calls_per_min, 1.0);
            if (over(tok, k->max_tokens_per_min))
                bg_reason_add(r, &nr, "tokens_per_min", "envelope", (double)tok, 0,
                              (double)k->max_tokens_per_min, 1.0);
            if (over(hcost, k->max_cost_micros_per_hour))
                bg_reason_add(r, &nr, "cost_micros_per_hour", "envelope", (double)hcost, 0,
                              (double)k->max_cost_micros_per_hour, 1.0);
            if (over(id->h_secrets, k->max_secrets_per_hour))
                bg_reason_add(r, &nr, "secrets_per_hour", "envelope", id->h_secrets, 0,
                              (double)k->max_secrets_per_hour, 1.0);
            if (over(dcost, k->max_cost_micros_per_day) || over(hcost, k->approval_cost_micros_per_hour))
                bg_reason_add(r, &nr, "spend_approved", "envelope", (double)hcost, 0,
                              (double)env->max_cost_micros, 1.0);
            if (over(id->h_new_dests, k->max_new_destinations_per_hour))
                bg_reason_add(r, &nr, "new_destinations_per_hour", "envelope", id->h_new_dests, 0,
                              (double)k->max_new_destinations_per_hour, 1.0);
        }
    }
    if (dest.ptr && bg_policy_dest_listed(pol->destinations.known_bad,
                                          pol->destinations.n_known_bad, dest)) {
        cls = BG_CLASS_UNEXPECTED;
        action = BG_ACT_REVIEW;
        bg_reason_add(r, &nr, "known_bad_destination", "destination_list", 1, 0, 0, 1.0);
    }
    if (ev->kind == BG_EV_SECRET) {
        if (over(id->h_grants, k->max_identity_grants_per_hour)) {
            cls = k->sprawl_revokes_identity ? BG_CLASS_ANOMALOUS : BG_CLASS_UNEXPECTED;
            bg_reason_add(r, &nr, "identity_sprawl", "static_limit", id->h_grants, 0,
                          (double)k->max_identity_grants_per_hour,
                          (double)id->h_grants / (double)(k->max_identity_grants_per_hour ? k->max_identity_grants_per_hour : 1));
        }
        if (over(owner_grants, k->max_owner_grants_per_hour)) {
            cls = BG_CLASS_UNEXPECTED;
            bg_reason_add(r, &nr, "owner_identity_sprawl", "static_limit", owner_grants, 0,
                          (double)k->max_owner_grants_per_hour,
                          (double)owner_grants / (double)(k->max_owner_grants_per_hour ? k->max_owner_grants_per_hour : 1));
        }
        if (over(ev->u.secret.ttl_seconds, k->max_secret_ttl_seconds)) {
            cls = BG_CLASS_UNEXPECTED;
            bg_reason_add(r, &nr, "secret_ttl_above_max", "static_limit",
                          (double)ev->u.secret.ttl_seconds, 0, (double)k->max_secret_ttl_seconds,
                          (double)ev->u.secret.ttl_seconds /
                              (double)(k->max_secret_ttl_seconds ? k->max_secret_ttl_seconds : 1));
        }
    }
    if (!nr)
        return false;
    if (cls == BG_CLASS_PLANNED)
        action = BG_ACT_ALLOW;
    else if (cls == BG_CLASS_ANOMALOUS)
        action = BG_ACT_REVOKE;
    *s = (bg_signal){.cls = cls,
                     .action = action,
                     .klass = k,
                     .env = env,
                     .reasons = r,
                     .n_reasons = nr,
                     .t = ev->event_time};
    return true;
}

static bool is_partition_key(const char *s, size_t n) {
    return n == sizeof BG_ENGINE_PARTITION_KEY - 1 && !memcmp(s, BG_ENGINE_PARTITION_KEY, n);
}

static bg_err observe_ident(bg_engine *e, bg_ident *id, const bg_event *ev, int64_t offset,
                            bg_outputs *out);

bg_err bg_engine_observe(bg_engine *e, const bg_event *ev, int64_t offset, bg_outputs *out) {
    const bg_policy *p = e->policy;
    if (!ev->identity.ptr || ev->identity.len == 0 || (unsigned)ev->kind >= BG_EV_ENVELOPE ||
        is_partition_key(ev->identity.ptr, ev->identity.len))
        return BG_ERR_INVALID;
    const int64_t t = ev->event_time;
    e->st.events++;
    e->sweep_credit += 4;
    if (t > e->st.stream_time) {
        e->st.stream_time = t;
        e->st.watermark = t - p->allowed_lateness_ms;
    }
    bg_ident *id;
    bg_err err = ident_get(e, ev->identity, t, &id);
    if (err)
        return err;
    if ((err = mark_dirty(e, id)))
        return err;
    size_t before = ident_var_bytes(id);
    err = observe_ident(e, id, ev, offset, out);
    e->id_bytes = e->id_bytes - before + ident_var_bytes(id);
    if (!err && (e->lim.max_identities || e->lim.max_bytes))
        err = enforce_bounds(e);
    return err;
}

static bg_err observe_ident(bg_engine *e, bg_ident *id, const bg_event *ev, int64_t offset,
                            bg_outputs *out) {
    const bg_policy *p = e->policy;
    const int64_t t = ev->event_time;
    bg_err err;
    if (!id->owner && ev->owner.ptr && ev->owner.len) {
        if ((err = owner_intern(e, ev->owner, &id->owner)))
            return err;
        e->part_dirty = true;
    }
    if (t < e->st.watermark)
        e->st.late_events++;
    if (t >= id->bucket_start && (err = roll_to(e, id, t, out)))
        return err; /* late events go to the current bucket */
    if (t >= id->bucket_start) {
        int64_t off = t - id->bucket_start;
        uint32_t o = off > UINT32_MAX ? UINT32_MAX : (uint32_t)off;
        if (o > id->last_ms)
            id->last_ms = o;
    }

    const char *owner = bg_engine_owner(e, id);
    bg_str own = ev->owner.ptr ? ev->owner : (bg_str){owner, owner ? (uint32_t)strlen(owner) : 0};
    const bg_class_policy *k = bg_policy_class_for(p, ev->identity, own, ev->workload_class);
    id->klass = (uint16_t)(k - p->classes);
    const bg_envelope *env = envelope_for(e, ev->identity, k->name, own, t);
    uint32_t eh = env ? (uint32_t)bg_hash64(env->envelope_id, strlen(env->envelope_id), 0) | 1u : 0;
    if (eh != id->env_hash) {
        id->env_hash = eh;
        id->env_cost = 0;
        id->env_new_secrets = id->env_new_dests = 0;
    }
    src_note(id, ev->kind, offset);
    const int64_t w = p->correlation_window_ms;
    const bool mature = learned(e, id, t);
    bg_reason extra[BG_MAX_REASONS]; /* bg_reason_add stops at BG_MAX_REASONS */
    uint32_t n_extra = 0;
    bg_str dest = {NULL, 0};
    bool new_secret = false, novel = false, novel_chain = false;
    uint64_t chain_hash = 0; /* the tool call's bigram, 0 = none */
    uint32_t owner_grants = 0;
    switch (ev->kind) {
    case BG_EV_USAGE: {
        const bg_usage *u = &ev->u.usage;
        id->b_calls = add_sat32(id->b_calls, u->api_calls);
        id->b_tokens = add_sat32(id->b_tokens, u->tokens_in);
        id->b_tokens = add_sat32(id->b_tokens, u->tokens_out);
        id->b_cost = add_sat32(id->b_cost, u->cost_micros);
        if (u->cost_micros > 0) {
            id->h_cost += (uint64_t)u->cost_micros;
            id->d_cost += (uint64_t)u->cost_micros;
            if (env)
                id->env_cost += u->cost_micros;
        }
        count_action(id, ev->trace_id);
        dest = u->destination;
        break;
    }
    case BG_EV_SECRET: {
        const bg_secret *s = &ev->u.secret;
        id->b_secrets = inc_sat16(id->b_secrets);
        id->h_secrets = inc_sat16(id->h_secrets);
        if (s->secret_kind == BG_SK_SERVICE_IDENTITY || s->secret_kind == BG_SK_OAUTH_GRANT) {
            id->h_grants = inc_sat16(id->h_grants);
            if (id->owner) {
                uint32_t o = id->owner - 1;
                int64_t hour = floor_div(t, HOUR_MS);
                if (e->owner_hour[o] != hour) {
                    e->owner_hour[o] = hour;
                    e->owner_grants[o] = 0;
                }
                owner_grants = ++e->owner_grants[o];
                e->part_dirty = true;
            }
        }
        if (env)
            id->env_new_secrets = inc_sat16(id->env_new_secrets);
        for (uint32_t i = 0; i < s->n_scopes; i++) {
            bool fresh;
            if ((err = bg_novel_insert(&id->seen, bg_novel_hash(BG_NOVEL_SCOPE, s->scopes[i].ptr, s->scopes[i].len), &fresh)))
                return err;
            if (fresh && mature)
                bg_reason_add(extra, &n_extra, "new_scope", "novelty", 1, 0, 0, 0.1);
        }
        if ((err = bg_corr_remember_secret(id, s->secret_id, t, offset)))
            return err;
        new_secret = true;
        break;
    }
    case BG_EV_TOOLCALL: {
        const bg_toolcall *tc = &ev->u.tool;
        id->b_tools = inc_sat16(id->b_tools);
        dest = tc->destination;
        if (tc->parent_tool.ptr) {
            char big[2 * BG_MAX_STRING + 4];
            size_t n = 0;
            memcpy(big, tc->parent_tool.ptr, tc->parent_tool.len);
            n += tc->parent_tool.len;
            memcpy(big + n, "->", 2);
            n += 2;
            memcpy(big + n, tc->tool.ptr, tc->tool.len);
            n += tc->tool.len;
            bool fresh;
            uint64_t bh = bg_novel_hash(BG_NOVEL_TOOL_BIGRAM, big, n);
            if ((err = bg_novel_insert(&id->seen, bh, &fresh)))
                return err;
            uint32_t users;
            if (fresh) {
                bg_cms_add_hash(e->bigram_pop, bh, 1);
                e->part_dirty = true;
            }
            if (fresh && mature && rare(e, e->bigram_pop, bh, &users)) {
                bg_reason_add(extra, &n_extra, "unusual_tool_chain", "novelty", users,
                              (double)e->count, 0, 0.1);
                /* a novelty of its own: it pairs with a new secret in the window */
                if ((err = bg_corr_remember_bigram(id, big, n, bh, users, t)))
                    return err;
                novel_chain = true;
            }
            chain_hash = bh;
        }
        break;
    }
    default:
        break;
    }
    uint64_t dh = 0;
    if (dest.ptr && dest.len) {
        bool fresh;
        dh = bg_novel_hash(BG_NOVEL_DESTINATION, dest.ptr, dest.len);
        if ((err = bg_novel_insert(&id->seen, dh, &fresh)))
            return err;
        if (fresh) {
            bg_cms_add_hash(e->dest_pop, dh, 1);
            e->part_dirty = true;
        }
        uint32_t users;
        if (fresh && mature && rare(e, e->dest_pop, dh, &users))
            bg_reason_add(extra, &n_extra, "rare_destination", "rarity", users, (double)e->count,
                          0, 0.1);
        bool trusted = bg_policy_dest_listed(p->destinations.trusted, p->destinations.n_trusted, dest);
        if (fresh && mature && !trusted) {
            novel = true;
            id->b_new_dests = inc_sat16(id->b_new_dests);
            id->h_new_dests = inc_sat16(id->h_new_dests);
            if (bg_policy_dest_listed(p->destinations.known_bad, p->destinations.n_known_bad, dest))
                bg_reason_add(extra, &n_extra, "known_bad_destination", "destination_list", 1, 0,
                              0, 0.3);
            const bg_dest_category *cat = bg_policy_dest_category(p, dest);
            if (cat && cat->risk > 0)
                bg_reason_add(extra, &n_extra, "risky_destination_category", "destination_list",
                              cat->risk, 0, 0, cat->risk);
            if (env)
                id->env_new_dests = inc_sat16(id->env_new_dests);
            if ((err = bg_corr_remember_dest(id, dest, t)))
                return err;
            /* watched unless an envelope in force names it among its allowed
             * destinations (pre-authorised) */
            bool env_listed = env && env->n_allowed_destinations && dest_allowed(env, dest);
            if (k->persist_visits && !env_listed && rare(e, e->dest_pop, dh, &users) &&
                (err = bg_corr_watch_dest(id, dest, dh, t)))
                return err;
        }
    }
    /* a new secret used toward a novelty of the window names it */
    if (ev->kind == BG_EV_TOOLCALL && ev->u.tool.credential_id.ptr && id->recent &&
        bg_corr_credential_toward(id, ev->u.tool.credential_id, dest, dh, chain_hash, t, w)) {
        if (novel)
            bg_reason_add(extra, &n_extra, "new_credential_on_new_destination", "correlation", 1, 0,
                          0, 0.3);
        if (novel_chain)
            bg_reason_add(extra, &n_extra, "new_credential_in_unusual_tool_chain", "correlation", 1,
                          0, 0, 0.3);
    }
    /* keep what a late event (within the allowed lateness) can still pair with */
    bg_corr_prune(id, (t < id->bucket_start ? id->bucket_start : t) - p->allowed_lateness_ms, w,
                  k->persist_window_ms);
    bg_burst_note(id, dh, ev->trace_id);

    /* correlation before the limits: one event that does both goes straight
     * to ANOMALOUS, and a volume burst amplifies the correlation */
    bool volume;
    bg_reason lr[BG_MAX_REASONS];
    bg_signal ls;
    bool limited = limit_signal(p, id, ev, k, env, dest, owner_grants, lr, &ls, &volume);
    if (limited)
        id->b_hot = 1;
    if ((novel || new_secret || novel_chain) && id->recent) {
        if (volume)
            bg_reason_add(extra, &n_extra, "volume_burst", "static_limit", 1, 0, 0, 0.1);
        if ((err = bg_corr_check(e, id, k, env, t, extra, n_extra, out)))
            return err;
    }
    /* a tool call with side effects to a watched rare destination */
    if (ev->kind == BG_EV_TOOLCALL && dh && id->recent &&
        (ev->u.tool.side_effect || ev->u.tool.bytes_out > 0) && ev->u.tool.status != BG_TS_DENIED &&
        (err = bg_corr_persist_visit(e, id, k, env, dh, t, out)))
        return err;
    if (limited) {
        bool was_anomalous = id->burst && id->burst->cls == BG_CLASS_ANOMALOUS;
        if ((err = bg_burst_raise(e, id, &ls, out)))
            return err;
        id->burst->last_hot = t < id->bucket_start ? id->bucket_start : t;
        /* sprawl that the class treats as compromise: revoke the identity, once */
        if (ls.cls == BG_CLASS_ANOMALOUS && !was_anomalous &&
            (err = bg_burst_revoke(e, id, NULL, t, out)))
            return err;
    }
    return BG_OK;
}

static int cmp_burst_seq(const void *a, const void *b) {
    uint64_t x = (*(const bg_burst *const *)a)->seq, y = (*(const bg_burst *const *)b)->seq;
    return x > y ? -1 : x < y; /* newest first, as ONSETs push them */
}

/* Restored bursts were linked in restore order; the list is newest first by
 * ONSET sequence, which is the order ticks end bursts in. */
static bg_err sort_bursts(bg_engine *e) {
    size_t n = 0;
    for (bg_burst *b = e->bursts; b; b = b->next)
        n++;
    bg_burst **v = malloc((n ? n : 1) * sizeof *v);
    if (!v)
        return BG_ERR_NOMEM;
    n = 0;
    for (bg_burst *b = e->bursts; b; b = b->next)
        v[n++] = b;
    qsort(v, n, sizeof *v, cmp_burst_seq);
    e->bursts = n ? v[0] : NULL;
    for (size_t i = 0; i < n; i++) {
        v[i]->prev = i ? v[i - 1] : NULL;
        v[i]->next = i + 1 < n ? v[i + 1] : NULL;
    }
    free(v);
    e->bursts_unsorted = false;
    return BG_OK;
}

bg_err bg_engine_tick(bg_engine *e, bg_outputs *out) {
    if (e->st.watermark == INT64_MIN)
        return BG_OK;
    bg_err err;
    if (e->bursts_unsorted && (err = sort_bursts(e)))
        return err;
    /* identities with an open burst that sent nothing since: close their
     * buckets as of the watermark */
    for (bg_burst *b = e->bursts; b;) {
        bg_burst *next = b->next;
        bg_ident *id = b->owner_ident;
        if (e->st.watermark >= id->bucket_start + e->policy->bucket_ms) {
            if ((err = mark_dirty(e, id)))
                return err;
            size_t before = ident_var_bytes(id);
            err = roll_to(e, id, e->st.watermark, out);
            e->id_bytes = e->id_bytes - before + ident_var_bytes(id);
            if (err)
                return err;
        }
        b = next;
    }
    sweep_idle(e);
    return BG_OK;
}

/* ---- state that survives: the API ------------------------------------------------ */

void bg_engine_set_limits(bg_engine *e, const bg_engine_limits *l) {
    e->lim = *l;
    (void)enforce_bounds(e); /* a failed batch is retried on the next event */
}

void bg_engine_set_dirty_tracking(bg_engine *e, bool on) { e->no_dirty = !on; }

void bg_engine_state_stats_get(const bg_engine *e, bg_engine_state_stats *st) {
    *st = e->sst;
    st->dirty = e->n_dirty_ids;
    st->bytes = total_bytes(e);
}

bg_err bg_engine_take_evicted(bg_engine *e, bg_engine_evicted_fn fn, void *opaque) {
    while (e->ev_count) {
        char *name = e->evicted[e->ev_head];
        size_t n = strlen(name);
        /* seen again since: its new state is dirty and replaces the old record */
        if (!ident_find(e, name, n, bg_hash64(name, n, BG_SEED_IDENTITY))) {
            bg_err err = fn(opaque, name, n);
            if (err)
                return err;
        }
        free(name);
        e->ev_head = (e->ev_head + 1) % e->ev_cap;
        e->ev_count--;
    }
    e->ev_head = 0;
    return BG_OK;
}

static const char *class_name_of(const bg_engine *e, uint16_t k) {
    const bg_policy *p = e->policy;
    return p->classes[k < p->n_classes ? k : p->default_class].name;
}

static bg_err encode_ident(bg_engine *e, const bg_ident *id) {
    return bg_snapshot_encode_ident(id, bg_engine_owner(e, id), class_name_of(e, id->klass),
                                    id->burst ? id->burst->klass->name : NULL, &e->sbuf);
}

static const char *const cms_magic = "BGSP";

static void put_cms(bg_snap_buf *b, const bg_cms *c) {
    uint32_t w = bg_cms_width(c), d = bg_cms_depth(c);
    const uint32_t *k = bg_cms_counters(c);
    bg_snap_u32(b, w);
    bg_snap_u32(b, d);
    bg_snap_u64(b, bg_cms_total(c));
    uint8_t *p = bg_snap_reserve(b, (size_t)w * d * 4);
    for (size_t i = 0; p && i < (size_t)w * d; i++, p += 4) {
        p[0] = (uint8_t)k[i];
        p[1] = (uint8_t)(k[i] >> 8);
        p[2] = (uint8_t)(k[i] >> 16);
        p[3] = (uint8_t)(k[i] >> 24);
    }
}

static bg_err encode_partition(bg_engine *e) {
    bg_snap_buf *b = &e->sbuf;
    bg_snap_begin(b, cms_magic, 0);
    bg_snap_u64(b, (uint64_t)e->st.stream_time);
    bg_snap_u64(b, (uint64_t)e->st.watermark);
    bg_snap_u64(b, e->burst_seq);
    /* only owners with grants count: the rest restart at 0 anyway; and no
     * more than fit in half the record's cap (a flood of owners loses its
     * counts, which then restart within the hour) */
    size_t at = b->len;
    bg_snap_u32(b, 0);
    uint32_t n = 0;
    for (uint32_t i = 0; i < e->n_owners && n < BG_SNAPSHOT_MAX_OWNERS; i++) {
        if (!e->owner_grants[i])
            continue;
        if (b->len > BG_SNAPSHOT_MAX / 2)
            break;
        bg_snap_str16(b, e->owners[i]);
        bg_snap_u64(b, (uint64_t)e->owner_hour[i]);
        bg_snap_u32(b, e->owner_grants[i]);
        n++;
    }
    if (!b->oom)
        for (int k = 0; k < 4; k++)
            b->p[at + (size_t)k] = (uint8_t)(n >> (8 * k));
    put_cms(b, e->dest_pop);
    put_cms(b, e->bigram_pop);
    return bg_snap_finish(b);
}

bg_err bg_engine_snapshot_dirty(bg_engine *e, bg_engine_snapshot_fn fn, void *opaque) {
    bg_err err = BG_OK;
    size_t i = 0;
    for (; i < e->n_dirty; i++) {
        bg_ident *id = e->dirty[i];
        if (!id) /* dropped since it became dirty */
            continue;
        if ((err = encode_ident(e, id)) ||
            (err = fn(opaque, id->identity, strlen(id->identity), e->sbuf.p, e->sbuf.len,
                      last_active(id))))
            break;
        id->flags &= (uint16_t)~BG_IDENT_DIRTY;
        e->n_dirty_ids--;
    }
    if (err) { /* the rest stays listed, in order */
        memmove(e->dirty, e->dirty + i, (e->n_dirty - i) * sizeof *e->dirty);
        e->n_dirty -= i;
        for (size_t k = 0; k < e->n_dirty; k++)
            if (e->dirty[k])
                e->dirty[k]->dirty_at = (uint32_t)k;
        return err;
    }
    e->n_dirty = 0;
    if (e->part_dirty) {
        if ((err = encode_partition(e)) ||
            (err = fn(opaque, BG_ENGINE_PARTITION_KEY, sizeof BG_ENGINE_PARTITION_KEY - 1,
                      e->sbuf.p, e->sbuf.len, e->st.stream_time)))
            return err;
        e->part_dirty = false;
    }
    return BG_OK;
}

static const char *intern_reason(void *ctx, const char *s, size_t n) {
    return bg_engine_intern(ctx, s, n);
}

const char *bg_engine_intern(bg_engine *e, const char *s, size_t n) {
    for (uint32_t i = 0; i < e->n_rstr; i++)
        if (!strncmp(e->rstr[i], s, n) && e->rstr[i][n] == 0)
            return e->rstr[i];
    if (e->n_rstr >= REASON_STRINGS_MAX)
        return NULL;
    char **nr = realloc(e->rstr, (e->n_rstr + 1) * sizeof *nr);
    if (!nr)
        return NULL;
    e->rstr = nr;
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    e->rstr[e->n_rstr++] = d;
    return d;
}

static uint16_t class_by_view(const bg_policy *p, bg_str name) {
    for (uint32_t i = 0; i < p->n_classes; i++)
        if (str_is(name, p->classes[i].name))
            return (uint16_t)i;
    return (uint16_t)p->default_class;
}

static void advance_stream_time(bg_engine *e, int64_t t) {
    if (e->st.stream_time == INT64_MIN || t > e->st.stream_time) {
        e->st.stream_time = t;
        e->st.watermark = t - e->policy->allowed_lateness_ms;
    }
}

static bg_err refuse(bg_engine *e, char *why, size_t why_size, const char *msg) {
    if (why && why_size)
        snprintf(why, why_size, "%s", msg);
    e->sst.snapshots_refused++;
    return BG_ERR_SNAPSHOT;
}

static bool get_cms_view(bg_snap_rd *r, const bg_cms *like, const uint8_t **counters,
                         uint64_t *total) {
    uint32_t w = bg_snap_get_u32(r), d = bg_snap_get_u32(r);
    *total = bg_snap_get_u64(r);
    if (r->err)
        return false;
    if (w != bg_cms_width(like) || d != bg_cms_depth(like)) {
        r->err = "popularity sketch dimensions differ from this engine's";
        return false;
    }
    size_t n = (size_t)w * d * 4;
    if (n > r->n - r->off) {
        r->err = "ends early";
        return false;
    }
    *counters = r->p + r->off;
    r->off += n;
    return true;
}

static bg_err load_cms(bg_cms *c, const uint8_t *p, uint64_t total) {
    size_t n = (size_t)bg_cms_width(c) * bg_cms_depth(c);
    uint32_t *k = malloc(n * sizeof *k);
    if (!k)
        return BG_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        k[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
               (uint32_t)p[4 * i + 3] << 24;
    bg_err err = bg_cms_load(c, k, n, total);
    free(k);
    return err;
}

/* The partition record: validated whole before anything is applied. */
static bg_err restore_partition(bg_engine *e, int32_t version, const uint8_t *buf, size_t len,
                                char *why, size_t why_size) {
    char tmp[160];
    bg_err err = bg_snapshot_check(buf, len, version, cms_magic, tmp, sizeof tmp);
    if (err)
        return refuse(e, why, why_size, tmp);
    if (buf[6] || buf[7])
        return refuse(e, why, why_size, "partition record has unknown flags");
    bg_snap_rd r = {buf + BG_SNAPSHOT_HEADER, len - BG_SNAPSHOT_HEADER - BG_SNAPSHOT_TRAILER, 0,
                    NULL};
    int64_t stream = bg_snap_get_i64(&r), wm = bg_snap_get_i64(&r);
    uint64_t seq = bg_snap_get_u64(&r);
    uint32_t n_owners = bg_snap_get_u32(&r);
    if (!r.err && n_owners > BG_SNAPSHOT_MAX_OWNERS)
        r.err = "too many owners";
    size_t owners_at = r.off;
    for (uint32_t i = 0; i < n_owners && !r.err; i++) {
        bg_str o = bg_snap_get_str16(&r, BG_MAX_STRING);
        (void)bg_snap_get_i64(&r);
        (void)bg_snap_get_u32(&r);
        if (!r.err && !o.len)
            r.err = "empty owner";
    }
    const uint8_t *dk = NULL, *bk = NULL;
    uint64_t dt = 0, bt = 0;
    if (!r.err && get_cms_view(&r, e->dest_pop, &dk, &dt))
        (void)get_cms_view(&r, e->bigram_pop, &bk, &bt);
    if (!r.err && r.off != r.n)
        r.err = "trailing bytes";
    if (!r.err && (stream < wm || wm < -1000000000000000LL || stream > 1000000000000000LL))
        r.err = "stream time out of range";
    if (r.err) {
        snprintf(tmp, sizeof tmp, "partition record refused: %s at body byte %zu", r.err, r.off);
        return refuse(e, why, why_size, tmp);
    }
    if ((err = load_cms(e->dest_pop, dk, dt)) || (err = load_cms(e->bigram_pop, bk, bt)))
        return err;
    r.off = owners_at;
    for (uint32_t i = 0; i < n_owners; i++) {
        bg_str o = bg_snap_get_str16(&r, BG_MAX_STRING);
        int64_t hour = bg_snap_get_i64(&r);
        uint32_t grants = bg_snap_get_u32(&r);
        uint32_t k;
        if ((err = owner_intern(e, o, &k)))
            return err;
        e->owner_hour[k - 1] = hour;
        e->owner_grants[k - 1] = grants;
    }
    if (stream != INT64_MIN && (e->st.stream_time == INT64_MIN || stream > e->st.stream_time)) {
        e->st.stream_time = stream;
        e->st.watermark = wm;
    }
    if (seq > e->burst_seq)
        e->burst_seq = seq;
    e->part_dirty = false;
    return BG_OK;
}

bg_err bg_engine_restore(bg_engine *e, const char *identity, size_t identity_len,
                         int32_t format_version, const uint8_t *state, size_t state_len,
                         char *why, size_t why_size) {
    if (why && why_size)
        why[0] = 0;
    if (!identity || !identity_len || identity_len > BG_MAX_STRING)
        return BG_ERR_INVALID;
    if (is_partition_key(identity, identity_len))
        return restore_partition(e, format_version, state, state_len, why, why_size);
    bg_ident *id;
    bg_snapshot_names nm;
    uint64_t seq;
    char tmp[160];
    bg_err err = bg_snapshot_decode_ident(state, state_len, format_version, intern_reason, e, &id,
                                          &nm, &seq, tmp, sizeof tmp);
    if (err == BG_ERR_SNAPSHOT)
        return refuse(e, why, why_size, tmp);
    if (err)
        return err;
    if (nm.identity.len != identity_len || memcmp(nm.identity.ptr, identity, identity_len)) {
        bg_snapshot_ident_free(id);
        return refuse(e, why, why_size, "snapshot is of another identity than its key");
    }
    if (nm.owner.len && (err = owner_intern(e, nm.owner, &id->owner))) {
        bg_snapshot_ident_free(id);
        return err;
    }
    if ((e->count + 1) * 10 > e->cap * 7 && (err = table_grow(e))) {
        bg_snapshot_ident_free(id);
        return err;
    }
    bg_ident *old;
    size_t slot = probe(e, identity, identity_len, id->hash, &old);
    if (old) {
        ident_drop(e, old, NULL); /* moves entries: probe again for the hole */
        slot = probe(e, identity, identity_len, id->hash, &old);
    }
    id->klass = class_by_view(e->policy, nm.klass);
    if (id->burst) {
        bg_burst *b = id->burst;
        b->klass = &e->policy->classes[class_by_view(e->policy, nm.burst_klass)];
        b->prev = NULL;
        b->next = e->bursts;
        if (e->bursts)
            e->bursts->prev = b;
        e->bursts = b;
        e->bursts_unsorted = true;
        if (seq > e->burst_seq)
            e->burst_seq = seq;
    }
    e->slots[slot] = id;
    e->count++;
    e->id_bytes += ident_fixed_bytes(id) + ident_var_bytes(id);
    e->sst.restored++;
    advance_stream_time(e, last_active(id));
    return enforce_bounds(e);
}

void bg_engine_forget(bg_engine *e, const char *identity, size_t identity_len) {
    if (!identity || !identity_len)
        return;
    bg_ident *id = ident_find(e, identity, identity_len,
                              bg_hash64(identity, identity_len, BG_SEED_IDENTITY));
    if (id)
        ident_drop(e, id, NULL);
}
