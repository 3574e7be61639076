/* Policy lookups: class resolution and envelope matching. Pure. */
#include "policy.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

static char *dup_cstr(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

bg_err bg_policy_init_default(bg_policy *p) {
    memset(p, 0, sizeof *p);
    memcpy(p->version, "0000000000000000", 17);
    p->bucket_ms = 60000;
    p->correlation_window_ms = 15 * 60000;
    p->learning_period_ms = 60 * 60000;
    p->allowed_lateness_ms = 30000;
    p->quiet_buckets = 2;
    bg_class_policy *c = &p->classes[0];
    c->name = dup_cstr("default");
    if (!c->name)
        return BG_ERR_NOMEM;
    c->max_api_calls_per_min = -1;
    c->max_tokens_per_min = -1;
    c->max_cost_micros_per_hour = -1;
    c->max_cost_micros_per_day = -1;
    c->approval_cost_micros_per_hour = -1;
    c->max_new_destinations_per_hour = -1;
    c->max_secrets_per_hour = -1;
    c->max_identity_grants_per_hour = -1;
    c->max_owner_grants_per_hour = -1;
    c->max_secret_ttl_seconds = -1;
    c->sensitivity = 1.0;
    c->persist_visits = 3;
    c->persist_spread_ms = 20 * 60000;
    c->persist_window_ms = 2 * 60 * 60000;
    c->unexpected_action = BG_ACT_REVIEW;
    c->enforce = true;
    p->n_classes = 1;
    p->default_class = 0;
    return BG_OK;
}

void bg_policy_free(bg_policy *p) {
    if (!p)
        return;
    for (uint32_t i = 0; i < p->n_classes; i++) {
        bg_class_policy *c = &p->classes[i];
        free(c->name);
        free(c->match_identity_prefix);
        free(c->match_identity_glob);
        free(c->match_owner);
        for (uint32_t r = 0; r < c->n_review_routes; r++)
            free(c->review_routes[r]);
    }
    for (uint32_t i = 0; i < p->n_envelopes; i++) {
        bg_envelope *e = &p->envelopes[i];
        free(e->envelope_id);
        free(e->identity);
        free(e->workload_class);
        free(e->owner);
        for (uint32_t d = 0; d < e->n_allowed_destinations; d++)
            free(e->allowed_destinations[d]);
        free(e->allowed_destinations);
        free(e->approved_by);
        free(e->ticket);
    }
    free(p->envelopes);
    for (uint32_t i = 0; i < p->destinations.n_trusted; i++)
        free(p->destinations.trusted[i]);
    free(p->destinations.trusted);
    for (uint32_t i = 0; i < p->destinations.n_known_bad; i++)
        free(p->destinations.known_bad[i]);
    free(p->destinations.known_bad);
    for (uint32_t i = 0; i < p->destinations.n_categories; i++) {
        bg_dest_category *c = &p->destinations.categories[i];
        free(c->name);
        for (uint32_t d = 0; d < c->n_dests; d++)
            free(c->dests[d]);
        free(c->dests);
    }
    free(p->destinations.categories);
    for (uint32_t i = 0; i < p->n_approvers; i++) {
        bg_approver *a = &p->approvers[i];
        free(a->key_id);
        for (uint32_t k = 0; k < a->n_owners; k++)
            free(a->owners[k]);
        free(a->owners);
        for (uint32_t k = 0; k < a->n_workload_classes; k++)
            free(a->workload_classes[k]);
        free(a->workload_classes);
    }
    free(p->approvers);
    memset(p, 0, sizeof *p);
}

static bool str_eq(bg_str s, const char *c) {
    size_t n = strlen(c);
    return s.ptr && s.len == n && memcmp(s.ptr, c, n) == 0;
}

static bool str_prefix(bg_str s, const char *prefix) {
    size_t n = strlen(prefix);
    return s.ptr && s.len >= n && memcmp(s.ptr, prefix, n) == 0;
}

const bg_class_policy *bg_policy_class_for(const bg_policy *p, bg_str identity, bg_str owner,
                                           bg_str workload_class) {
    if (workload_class.ptr) {
        for (uint32_t i = 0; i < p->n_classes; i++)
            if (str_eq(workload_class, p->classes[i].name))
                return &p->classes[i];
    }
    for (uint32_t i = 0; i < p->n_classes; i++) {
        const bg_class_policy *c = &p->classes[i];
        if (!c->match_identity_prefix && !c->match_identity_glob && !c->match_owner)
            continue;
        if (c->match_identity_prefix && !str_prefix(identity, c->match_identity_prefix))
            continue;
        if (c->match_identity_glob) {
            char buf[BG_MAX_STRING + 1];
            if (!identity.ptr || identity.len > BG_MAX_STRING)
                continue;
            memcpy(buf, identity.ptr, identity.len);
            buf[identity.len] = 0;
            if (fnmatch(c->match_identity_glob, buf, 0) != 0)
                continue;
        }
        if (c->match_owner && !str_eq(owner, c->match_owner))
            continue;
        return c;
    }
    return &p->classes[p->default_class];
}

bool bg_policy_dest_listed(char *const *list, uint32_t n, bg_str dest) {
    for (uint32_t i = 0; i < n; i++)
        if (str_eq(dest, list[i]))
            return true;
    return false;
}

const bg_dest_category *bg_policy_dest_category(const bg_policy *p, bg_str dest) {
    const bg_dest_category *best = NULL;
    for (uint32_t i = 0; i < p->destinations.n_categories; i++) {
        const bg_dest_category *c = &p->destinations.categories[i];
        if ((!best || c->risk > best->risk) && bg_policy_dest_listed(c->dests, c->n_dests, dest))
            best = c;
    }
    return best;
}

bool bg_envelope_covers(const bg_envelope *e, bg_str identity, const char *class_name,
                        bg_str owner, int64_t t) {
    if (e->revoked || t < e->not_before || t >= e->not_after)
        return false;
    if (e->identity && !str_eq(identity, e->identity))
        return false;
    if (e->workload_class && (!class_name || strcmp(class_name, e->workload_class) != 0))
        return false;
    return !e->owner || str_eq(owner, e->owner);
}

const bg_envelope *bg_policy_envelope_for(const bg_policy *p, bg_str identity,
                                          const char *class_name, bg_str owner, int64_t t) {
    for (uint32_t i = 0; i < p->n_envelopes; i++)
        if (bg_envelope_covers(&p->envelopes[i], identity, class_name, owner, t))
            return &p->envelopes[i];
    return NULL;
}
