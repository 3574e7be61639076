/* The burst state machine and the outputs it emits.
 *
 * NORMAL -> ONSET -> ESCALATED* -> ENDED. A burst starts with the first
 * signal (one ONSET verdict), escalates only when its class or action gets
 * worse (class PLANNED < UNEXPECTED < ANOMALOUS, then action
 * ALLOW < THROTTLE < REVIEW < REVOKE), and ends once the engine has seen
 * quiet_buckets closed buckets without a signal (one ENDED verdict).
 *
 * Ids: verdict_id = XXH3-128(identity, burst start, escalation number,
 * phase), command_id = XXH3-128(verdict_id, secret id), as 32 hex digits, so
 * a replay of the same input yields the same ids. */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "engine_int.h"
#include "hash.h"

void bg_reason_add(bg_reason *r, uint32_t *n, const char *code, const char *detector,
                   double observed, double baseline, double threshold, double score) {
    if (*n >= BG_MAX_REASONS)
        return;
    r[(*n)++] = (bg_reason){code, detector, observed, baseline, threshold, score};
}

static void hex_id(char out[BG_ID_LEN], const void *buf, size_t n) {
    XXH128_hash_t h = XXH3_128bits_withSeed(buf, n, BG_SEED_IDENTITY);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        uint64_t w = i < 8 ? h.high64 : h.low64;
        uint8_t b = (uint8_t)(w >> ((7 - (i % 8)) * 8));
        out[2 * i] = hex[b >> 4];
        out[2 * i + 1] = hex[b & 15];
    }
    out[32] = '\0';
}

/* Little-endian, so ids are the same on every machine. */
static size_t put_le64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
    return 8;
}

static void verdict_id(char out[BG_ID_LEN], const bg_ident *id, const bg_burst *b,
                       bg_phase phase) {
    unsigned char buf[BG_MAX_STRING + 32];
    size_t n = strlen(id->identity);
    if (n > BG_MAX_STRING)
        n = BG_MAX_STRING;
    memcpy(buf, id->identity, n);
    buf[n++] = 0;
    n += put_le64(buf + n, (uint64_t)b->start);
    n += put_le64(buf + n, phase == BG_PHASE_ESCALATED ? b->escalations : 0);
    buf[n++] = (unsigned char)phase;
    hex_id(out, buf, n);
}

static int severity(const bg_burst *b, bg_phase phase) {
    double worst = 1.0;
    for (uint32_t i = 0; i < b->n_reasons; i++)
        if (b->reasons[i].score > worst)
            worst = b->reasons[i].score;
    int s;
    switch (b->cls) {
    case BG_CLASS_PLANNED:
        s = 10;
        break;
    case BG_CLASS_UNEXPECTED: { /* 40 at the limit, 70 at 4x */
        double v = 40.0 + (worst - 1.0) * 10.0;
        s = (int)(v > 70.0 ? 70.0 : v);
        break;
    }
    default: { /* 80 + up to 20 from the correlation score in [0, 1] */
        double best = 0;
        for (uint32_t i = 0; i < b->n_reasons; i++)
            if (!strcmp(b->reasons[i].detector, "correlation") && b->reasons[i].score > best)
                best = b->reasons[i].score;
        s = 80 + (int)(20.0 * (best > 1.0 ? 1.0 : best) + 0.5);
        break;
    }
    }
    return phase == BG_PHASE_ENDED ? s / 2 : s;
}

static bool add_route(bg_outputs *out, bg_verdict *v, const char *route, const char *owner) {
    char buf[BG_MAX_STRING + 8];
    const char *r = route;
    if (!strcmp(route, "app:{owner}")) {
        if (!owner)
            return true;
        size_t n = strlen(owner);
        if (n > BG_MAX_STRING)
            n = BG_MAX_STRING;
        memcpy(buf, "app:", 4);
        memcpy(buf + 4, owner, n);
        buf[4 + n] = 0;
        r = buf;
    }
    for (uint32_t i = 0; i < v->n_review_routes; i++)
        if (!strcmp(v->review_routes[i], r))
            return true;
    if (v->n_review_routes >= BG_MAX_LIST)
        return true;
    const char *d = bg_outputs_strdup(out, r, strlen(r));
    if (!d)
        return false;
    v->review_routes[v->n_review_routes++] = d;
    return true;
}

static const char *arena_dup(bg_outputs *out, const char *s, bool *oom) {
    if (!s)
        return NULL;
    const char *d = bg_outputs_strdup(out, s, strlen(s));
    if (!d)
        *oom = true;
    return d;
}

static bg_err emit(bg_engine *e, bg_ident *id, bg_phase phase, int64_t decided_at,
                   int64_t window_end, const bg_signal *s, bg_outputs *out) {
    bg_burst *b = id->burst;
    bg_verdict *v = bg_outputs_add_verdict(out);
    if (!v)
        return BG_ERR_NOMEM;
    bool oom = false;
    const char *owner = bg_engine_owner(e, id);
    verdict_id(v->verdict_id, id, b, phase);
    b->last_phase = phase;
    v->identity = arena_dup(out, id->identity, &oom);
    v->owner = arena_dup(out, owner, &oom);
    v->workload_class = arena_dup(out, b->klass->name, &oom);
    v->classification = b->cls;
    v->phase = phase;
    v->action = b->action;
    v->window_start = b->start;
    v->window_end = window_end;
    v->decided_at = decided_at;
    v->n_reasons = b->n_reasons;
    memcpy(v->reasons, b->reasons, sizeof v->reasons[0] * b->n_reasons);
    v->severity = severity(b, phase);
    v->envelope_id = arena_dup(out, b->envelope_id, &oom);
    for (uint32_t i = 0; s && i < s->n_new_secrets && v->n_new_secret_ids < BG_MAX_LIST; i++)
        v->new_secret_ids[v->n_new_secret_ids++] = arena_dup(out, s->new_secrets[i], &oom);
    for (uint32_t i = 0; s && i < s->n_new_dests && v->n_new_destinations < BG_MAX_LIST; i++)
        v->new_destinations[v->n_new_destinations++] = arena_dup(out, s->new_dests[i], &oom);
    if (b->cls == BG_CLASS_ANOMALOUS)
        oom |= !add_route(out, v, "security", NULL) || !add_route(out, v, "app:{owner}", owner);
    if (b->cls != BG_CLASS_PLANNED)
        for (uint32_t i = 0; i < b->klass->n_review_routes; i++)
            oom |= !add_route(out, v, b->klass->review_routes[i], owner);
    v->policy_version = e->policy->version;
    for (int k = 0; k < BG_EV_KIND_COUNT; k++) {
        if (b->src[k].first < 0)
            continue;
        bg_source_range *r = &v->source[v->n_source++];
        r->topic = (bg_event_kind)k;
        r->partition = e->partition;
        r->first_offset = b->src[k].first;
        r->last_offset = b->src[k].last;
    }
    if (oom)
        return BG_ERR_NOMEM;
    e->st.verdicts++;
    return BG_OK;
}

void bg_burst_src_add(bg_ident *id, bg_event_kind kind, int64_t offset) {
    bg_burst *b = id->burst;
    if (!b || offset < 0 || (unsigned)kind >= BG_EV_KIND_COUNT)
        return;
    bg_src_range *r = &b->src[kind];
    if (r->first < 0 || offset < r->first)
        r->first = offset;
    if (offset > r->last)
        r->last = offset;
}

static int rank(bg_class c, bg_action a) { return (int)c * 8 + (int)a; }

bg_err bg_burst_raise(bg_engine *e, bg_ident *id, const bg_signal *s, bg_outputs *out) {
    bg_burst *b = id->burst;
    bg_phase phase;
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b)
            return BG_ERR_NOMEM;
        b->owner_ident = id;
        b->seq = ++e->burst_seq;
        b->cls = s->cls;
        b->action = s->action;
        b->start = s->t;
        b->klass = s->klass;
        if (s->env) {
            b->envelope_id = strdup(s->env->envelope_id);
            if (!b->envelope_id) {
                free(b);
                return BG_ERR_NOMEM;
            }
        }
        /* the bucket that triggered it is its first source */
        for (int k = 0; k < 3; k++) {
            b->src[k].first = id->src_first[k];
            b->src[k].last = id->src_first[k] < 0 ? -1 : id->src_first[k] + id->src_span[k];
        }
        b->src[BG_EV_ENVELOPE].first = b->src[BG_EV_ENVELOPE].last = -1;
        if (bg_hll_init(&b->dests, BG_HLL_P_DEFAULT) || bg_hll_init(&b->traces, BG_HLL_P_DEFAULT)) {
            free(b->envelope_id);
            free(b);
            return BG_ERR_INVALID;
        }
        b->next = e->bursts;
        if (e->bursts)
            e->bursts->prev = b;
        e->bursts = b;
        id->burst = b;
        e->st.bursts++;
        phase = BG_PHASE_ONSET;
    } else if (rank(s->cls, s->action) > rank(b->cls, b->action)) {
        b->cls = s->cls;
        b->action = s->action;
        b->escalations++;
        phase = BG_PHASE_ESCALATED;
    } else {
        return BG_OK;
    }
    b->last_hot = s->t;
    for (uint32_t i = 0; i < s->n_secret_offsets; i++)
        bg_burst_src_add(id, BG_EV_SECRET, s->secret_offsets[i]);
    b->n_reasons = s->n_reasons < BG_MAX_REASONS ? s->n_reasons : BG_MAX_REASONS;
    memcpy(b->reasons, s->reasons, sizeof *s->reasons * b->n_reasons);
    return emit(e, id, phase, s->t, s->t, s, out);
}

void bg_burst_free(bg_engine *e, bg_ident *id) {
    bg_burst *b = id->burst;
    if (!b)
        return;
    if (b->prev)
        b->prev->next = b->next;
    else
        e->bursts = b->next;
    if (b->next)
        b->next->prev = b->prev;
    bg_hll_clear(&b->dests);
    bg_hll_clear(&b->traces);
    free(b->envelope_id);
    free(b);
    id->burst = NULL;
}

void bg_burst_note(bg_ident *id, uint64_t dest_hash, bg_str trace) {
    bg_burst *b = id->burst;
    if (!b)
        return;
    /* a full sketch only loses precision: errors here are not the event's */
    if (dest_hash)
        (void)bg_hll_add_hash(&b->dests, dest_hash);
    if (trace.ptr && trace.len)
        (void)bg_hll_add_hash(&b->traces, bg_hash64(trace.ptr, trace.len, BG_SEED_SKETCH));
}

bg_err bg_burst_end(bg_engine *e, bg_ident *id, int64_t decided_at, bg_outputs *out) {
    bg_burst *b = id->burst;
    int64_t end = b->last_hot;
    /* how wide the burst went: its distinct destinations and actions */
    double nd = bg_hll_estimate(&b->dests), nt = bg_hll_estimate(&b->traces);
    if (nd > 0)
        bg_reason_add(b->reasons, &b->n_reasons, "distinct_destinations", "hll", nd,
                      (double)id->seen.n, 0, 0);
    if (nt > 0)
        bg_reason_add(b->reasons, &b->n_reasons, "distinct_traces", "hll", nt, 0, 0, 0);
    bg_err err = emit(e, id, BG_PHASE_ENDED, decided_at < end ? end : decided_at, end, NULL, out);
    bg_burst_free(e, id);
    return err;
}

bg_err bg_burst_revoke(bg_engine *e, bg_ident *id, const char *secret_id, int64_t t,
                       bg_outputs *out) {
    bg_burst *b = id->burst;
    bg_revocation *r = bg_outputs_add_revocation(out);
    if (!r || !b)
        return r ? BG_ERR_INVALID : BG_ERR_NOMEM;
    verdict_id(r->verdict_id, id, b, b->last_phase);
    unsigned char buf[BG_ID_LEN + BG_MAX_STRING + 1];
    const char *target = secret_id ? secret_id : "";
    size_t n = strlen(target);
    if (n > BG_MAX_STRING)
        n = BG_MAX_STRING;
    memcpy(buf, r->verdict_id, 32);
    buf[32] = 0;
    memcpy(buf + 33, target, n);
    hex_id(r->command_id, buf, 33 + n);
    r->identity = bg_outputs_strdup(out, id->identity, strlen(id->identity));
    r->target = secret_id ? BG_TARGET_SECRET : BG_TARGET_IDENTITY;
    r->secret_id = secret_id ? bg_outputs_strdup(out, secret_id, n) : NULL;
    r->reason = secret_id ? "new secret correlated with a new destination"
                          : "identity sprawl: the identity minted grants beyond its class";
    r->issued_at = t;
    r->dry_run = !b->klass->enforce;
    if (!r->identity || (secret_id && !r->secret_id))
        return BG_ERR_NOMEM;
    e->st.revocations++;
    return BG_OK;
}
