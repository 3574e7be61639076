/* Live envelopes (see envset.h): an array kept in arrival order, looked up
 * linearly; envelopes are few (change windows), and a lookup stops at the
 * first match, as the policy's own envelopes do. */
#include "envset.h"

#include <stdlib.h>
#include <string.h>

struct bg_envset {
    bg_envelope *v;
    size_t n, cap;
};

bg_err bg_envset_new(bg_envset **out) {
    *out = calloc(1, sizeof **out);
    return *out ? BG_OK : BG_ERR_NOMEM;
}

static void env_clear(bg_envelope *e) {
    free(e->envelope_id);
    free(e->identity);
    free(e->workload_class);
    free(e->owner);
    for (uint32_t i = 0; i < e->n_allowed_destinations; i++)
        free(e->allowed_destinations[i]);
    free(e->allowed_destinations);
    free(e->approved_by);
    free(e->ticket);
    memset(e, 0, sizeof *e);
}

void bg_envset_free(bg_envset *s) {
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        env_clear(&s->v[i]);
    free(s->v);
    free(s);
}

size_t bg_envset_count(const bg_envset *s) { return s->n; }

static char *dup_opt(bg_str s, bool *oom) {
    if (!s.ptr)
        return NULL;
    char *d = malloc((size_t)s.len + 1);
    if (!d) {
        *oom = true;
        return NULL;
    }
    memcpy(d, s.ptr, s.len);
    d[s.len] = 0;
    return d;
}

static ptrdiff_t find_id(const bg_envset *s, const char *id, size_t len) {
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->v[i].envelope_id) == len && !memcmp(s->v[i].envelope_id, id, len))
            return (ptrdiff_t)i;
    return -1;
}

static void fail(char *why, size_t n, const char *msg) {
    size_t l = strlen(msg);
    if (!n)
        return;
    if (l >= n)
        l = n - 1;
    memcpy(why, msg, l);
    why[l] = 0;
}

static int64_t lim(bg_opt_i64 o) { return o.set ? o.v : -1; }

bg_err bg_envset_put(bg_envset *s, const bg_envelope_msg *m, char *why, size_t why_size) {
    if (!m->envelope_id.ptr || !m->envelope_id.len) {
        fail(why, why_size, "envelope_id is empty");
        return BG_ERR_BAD_VALUE;
    }
    if (!m->identity.ptr && !m->workload_class.ptr && !m->owner.ptr) {
        fail(why, why_size, "envelope has no selector (identity, workload_class or owner)");
        return BG_ERR_BAD_VALUE;
    }
    if (m->not_after <= m->not_before) {
        fail(why, why_size, "envelope not_after is not after not_before");
        return BG_ERR_BAD_VALUE;
    }
    const bg_opt_i64 *limits[] = {&m->max_tokens_per_min, &m->max_api_calls_per_min,
                                  &m->max_cost_micros, &m->max_new_secrets,
                                  &m->max_new_destinations};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
        if (limits[i]->set && limits[i]->v < 0) {
            fail(why, why_size, "envelope has a negative limit");
            return BG_ERR_BAD_VALUE;
        }
    if (!m->approved_by.ptr || !m->approved_by.len) {
        fail(why, why_size, "envelope approved_by is empty");
        return BG_ERR_BAD_VALUE;
    }
    bg_envelope e = {0};
    bool oom = false;
    e.envelope_id = dup_opt(m->envelope_id, &oom);
    e.identity = dup_opt(m->identity, &oom);
    e.workload_class = dup_opt(m->workload_class, &oom);
    e.owner = dup_opt(m->owner, &oom);
    e.not_before = m->not_before;
    e.not_after = m->not_after;
    e.max_tokens_per_min = lim(m->max_tokens_per_min);
    e.max_api_calls_per_min = lim(m->max_api_calls_per_min);
    e.max_cost_micros = lim(m->max_cost_micros);
    e.max_new_secrets = lim(m->max_new_secrets);
    e.max_new_destinations = lim(m->max_new_destinations);
    if (m->n_allowed_destinations) {
        e.allowed_destinations = calloc(m->n_allowed_destinations, sizeof(char *));
        if (!e.allowed_destinations)
            oom = true;
        for (uint32_t i = 0; !oom && i < m->n_allowed_destinations; i++) {
            e.allowed_destinations[i] = dup_opt(m->allowed_destinations[i], &oom);
            e.n_allowed_destinations = i + 1;
        }
    }
    e.approved_by = dup_opt(m->approved_by, &oom);
    e.ticket = dup_opt(m->ticket, &oom);
    e.revoked = m->revoked;
    if (oom) {
        env_clear(&e);
        return BG_ERR_NOMEM;
    }
    ptrdiff_t at = find_id(s, m->envelope_id.ptr, m->envelope_id.len);
    if (at >= 0) {
        env_clear(&s->v[at]);
        s->v[at] = e;
        return BG_OK;
    }
    if (s->n >= BG_ENVSET_MAX) {
        env_clear(&e);
        fail(why, why_size, "too many live envelopes");
        return BG_ERR_FULL;
    }
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        bg_envelope *nv = realloc(s->v, nc * sizeof *nv);
        if (!nv) {
            env_clear(&e);
            return BG_ERR_NOMEM;
        }
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n++] = e;
    return BG_OK;
}

void bg_envset_remove(bg_envset *s, const char *id, size_t id_len) {
    ptrdiff_t at = find_id(s, id, id_len);
    if (at < 0)
        return;
    env_clear(&s->v[at]);
    memmove(&s->v[at], &s->v[at + 1], (s->n - (size_t)at - 1) * sizeof *s->v);
    s->n--;
}


const bg_envelope *bg_envset_find(const bg_envset *s, bg_str identity, const char *class_name,
                                  bg_str owner, int64_t t) {
    for (size_t i = 0; i < s->n; i++)
        if (bg_envelope_covers(&s->v[i], identity, class_name, owner, t))
            return &s->v[i];
    return NULL;
}
