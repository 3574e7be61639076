/* Policy YAML -> bg_policy, and the plain-words printout of a policy.
 *
 * The format is documented in policy_load.h. The loader walks the libyaml
 * document in a fixed order (windows, classes, default_class, envelopes)
 * whatever the order of keys in the file, because envelopes refer to classes
 * and the default class depends on the list of classes.
 *
 * Every failure names "FILE:LINE:COL" of the offending node and what is
 * wrong; the partially built policy is freed before returning, so callers
 * never see a half-filled bg_policy. Field defaults (the engine's windows,
 * a class's action and mode) come from bg_policy_init_default() in
 * detectors/policy.c, so they are written down once.
 *
 * Limits: a missing or null limit is -1 ("no limit" for a class, "not raised"
 * for an envelope); present limits are integers >= 0. Strings are capped at
 * BG_MAX_STRING bytes, the longest value the decoder accepts from the wire,
 * since a longer selector could never match an event. */
#include "policy_load.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <xxhash.h>

#include "yaml_doc.h"

#define POLICY_MAX_BYTES (4u << 20) /* 1024 envelopes fit many times over */
/* Times are ms since the epoch, from 1970-01-01 to 9999-12-31T23:59:59.999Z:
 * the range an ISO-8601 date with four year digits can name. */
#define POLICY_MAX_TIME_MS INT64_C(253402300799999)

typedef struct ploader {
    bg_yaml y;
    bg_policy *p;
    bg_class_policy class_template; /* defaults of a class, from bg_policy_init_default */
} ploader;

static bg_err nomem(ploader *L) {
    snprintf(L->y.err, L->y.errsz, "%s: out of memory while loading the policy", L->y.name);
    return BG_ERR_NOMEM;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* ========================================================================== */
/* Scalars                                                                    */
/* ========================================================================== */

/* Optional string: absent or null leaves *out NULL; present must be non-empty. */
static bg_err get_str(ploader *L, const yaml_node_t *n, const char *what, char **out) {
    *out = NULL;
    if (!n || bg_yaml_is_null(n))
        return BG_OK;
    const char *s;
    bg_err e = bg_yaml_scalar(&L->y, n, what, &s);
    if (e)
        return e;
    if (!*s)
        return bg_yaml_fail(&L->y, n, "%s must not be empty", what);
    if (strlen(s) > BG_MAX_STRING)
        return bg_yaml_fail(&L->y, n, "%s is longer than %u bytes", what, BG_MAX_STRING);
    if (!(*out = dup_str(s)))
        return nomem(L);
    return BG_OK;
}

/* Missing or null -> -1; else an integer >= 0. */
static bg_err get_limit(ploader *L, const yaml_node_t *n, const char *what, int64_t *out) {
    *out = -1;
    if (!n || bg_yaml_is_null(n))
        return BG_OK;
    const char *s;
    int64_t v;
    bg_err e = bg_yaml_scalar(&L->y, n, what, &s);
    if (e)
        return e;
    if (!bg_yaml_parse_int(s, &v))
        return bg_yaml_fail(&L->y, n, "%s: expected a whole number, got '%s'", what, s);
    if (v < 0)
        return bg_yaml_fail(&L->y, n, "%s: a limit cannot be negative (%" PRId64 ")", what, v);
    *out = v;
    return BG_OK;
}

static bg_err get_bool(ploader *L, const yaml_node_t *n, const char *what, bool *out) {
    const char *s;
    bg_err e = bg_yaml_scalar(&L->y, n, what, &s);
    if (e)
        return e;
    if (!bg_yaml_parse_bool(s, out))
        return bg_yaml_fail(&L->y, n, "%s: expected true or false, got '%s'", what, s);
    return BG_OK;
}

static bg_err get_duration(ploader *L, const yaml_node_t *n, const char *what, int64_t lo,
                           int64_t hi, int64_t *out) {
    const char *s;
    int64_t v;
    bg_err e = bg_yaml_scalar(&L->y, n, what, &s);
    if (e)
        return e;
    if (!bg_yaml_parse_duration(s, &v))
        return bg_yaml_fail(&L->y, n,
                            "%s: expected a duration such as 500ms, 30s, 15m, 1h, 1d or integer "
                            "milliseconds, got '%s'",
                            what, s);
    if (v < lo || v > hi) {
        char a[32], b[32];
        bg_yaml_format_duration(lo, a, sizeof a);
        bg_yaml_format_duration(hi, b, sizeof b);
        return bg_yaml_fail(&L->y, n, "%s: %s is out of range (%s..%s)", what, s, a, b);
    }
    *out = v;
    return BG_OK;
}


static void civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

/* Exactly n digits at *p. */
static bool fixed_digits(const char **p, int n, int64_t *out) {
    int64_t v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* YYYY-MM-DDTHH:MM:SS[.fff](Z|+hh:mm|-hh:mm), or integer epoch ms. */
bool bg_policy_parse_time(const char *s, int64_t *out_ms) {
    int64_t v;
    if (bg_yaml_parse_int(s, &v)) {
        if (v < 0 || v > POLICY_MAX_TIME_MS)
            return false;
        *out_ms = v;
        return true;
    }
    const char *p = s;
    int64_t Y, M, D, h, mi, sec, frac = 0;
    if (!fixed_digits(&p, 4, &Y) || *p++ != '-' || !fixed_digits(&p, 2, &M) || *p++ != '-' ||
        !fixed_digits(&p, 2, &D) || (*p != 'T' && *p != 't'))
        return false;
    p++;
    if (!fixed_digits(&p, 2, &h) || *p++ != ':' || !fixed_digits(&p, 2, &mi) || *p++ != ':' ||
        !fixed_digits(&p, 2, &sec))
        return false;
    if (*p == '.') {
        /* keep milliseconds, ignore finer digits (but they must be digits) */
        p++;
        int n = 0;
        while (*p >= '0' && *p <= '9') {
            if (n < 3)
                frac = frac * 10 + (*p - '0');
            n++;
            p++;
        }
        if (n == 0 || n > 9)
            return false;
        for (int i = n; i < 3; i++)
            frac *= 10;
    }
    int64_t offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1;
        int64_t oh, om;
        if (!fixed_digits(&p, 2, &oh) || *p++ != ':' || !fixed_digits(&p, 2, &om) || oh > 23 ||
            om > 59)
            return false;
        offset_min = sign * (oh * 60 + om);
    } else {
        return false; /* a time without zone is ambiguous */
    }
    if (*p)
        return false;
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (M < 1 || M > 12 || D < 1 || h > 23 || mi > 59 || sec > 59)
        return false;
    bool leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
    if (D > mdays[M - 1] + (M == 2 && leap))
        return false;
    int64_t ms = ((bg_yaml_days_from_civil(Y, M, D) * 24 + h) * 60 + mi) * 60000 + sec * 1000 + frac -
                 offset_min * 60000;
    if (ms < 0 || ms > POLICY_MAX_TIME_MS)
        return false;
    *out_ms = ms;
    return true;
}

static bg_err get_time(ploader *L, const yaml_node_t *n, const char *what, int64_t *out) {
    const char *s;
    bg_err e = bg_yaml_scalar(&L->y, n, what, &s);
    if (e)
        return e;
    if (!bg_policy_parse_time(s, out))
        return bg_yaml_fail(&L->y, n,
                            "%s: expected an ISO-8601 time such as 2026-12-01T06:00:00Z (or "
                            "+hh:mm), or epoch milliseconds, between 1970 and 9999; got '%s'",
                            what, s);
    return BG_OK;
}

/* A list of non-empty strings into a fresh array (NULL when empty). */
static bg_err get_str_list(ploader *L, const yaml_node_t *n, const char *what, uint32_t max,
                           char ***items, uint32_t *count) {
    *items = NULL;
    *count = 0;
    if (!n || bg_yaml_is_null(n))
        return BG_OK;
    if (n->type != YAML_SEQUENCE_NODE)
        return bg_yaml_fail(&L->y, n, "%s: expected a list, found %s", what, bg_yaml_kind(n));
    size_t len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (len == 0)
        return BG_OK;
    if (len > max) {
        yaml_node_t *extra = bg_yaml_node(&L->y, n->data.sequence.items.start[max]);
        return bg_yaml_fail(&L->y, extra ? extra : n, "%s: more than %u entries", what, max);
    }
    char **arr = calloc(len, sizeof *arr);
    if (!arr)
        return nomem(L);
    *items = arr;
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = bg_yaml_node(&L->y, n->data.sequence.items.start[i]);
        char item_what[96];
        snprintf(item_what, sizeof item_what, "%s[%zu]", what, i);
        if (!it || bg_yaml_is_null(it))
            return bg_yaml_fail(&L->y, it ? it : n, "%s must not be empty", item_what);
        bg_err e = get_str(L, it, item_what, &arr[i]);
        (*count)++; /* counted even on error so the caller frees what is there */
        if (e)
            return e;
    }
    return BG_OK;
}

/* ========================================================================== */
/* Sections                                                                   */
/* ========================================================================== */

static bg_err load_windows(ploader *L, const yaml_node_t *n) {
    static const char *const keys[] = {"bucket",           "correlation",   "learning_period",
                                       "allowed_lateness", "quiet_buckets", NULL};
    if (!n || bg_yaml_is_null(n))
        return BG_OK;
    bg_err e = bg_yaml_map_check(&L->y, n, "windows", keys);
    if (e)
        return e;
    bg_policy *p = L->p;
    yaml_node_t *v;
    if ((v = bg_yaml_map_get(&L->y, n, "bucket")) &&
        (e = get_duration(L, v, "windows.bucket", 1000, 3600000, &p->bucket_ms)))
        return e;
    if ((v = bg_yaml_map_get(&L->y, n, "correlation")) &&
        (e = get_duration(L, v, "windows.correlation", 1000, 7 * 86400000LL,
                          &p->correlation_window_ms)))
        return e;
    if ((v = bg_yaml_map_get(&L->y, n, "learning_period")) &&
        (e = get_duration(L, v, "windows.learning_period", 0, 30 * 86400000LL,
                          &p->learning_period_ms)))
        return e;
    if ((v = bg_yaml_map_get(&L->y, n, "allowed_lateness")) &&
        (e = get_duration(L, v, "windows.allowed_lateness", 0, 86400000LL,
                          &p->allowed_lateness_ms)))
        return e;
    if ((v = bg_yaml_map_get(&L->y, n, "quiet_buckets"))) {
        const char *s;
        int64_t q;
        if ((e = bg_yaml_scalar(&L->y, v, "windows.quiet_buckets", &s)))
            return e;
        if (!bg_yaml_parse_int(s, &q) || q < 1 || q > 1000)
            return bg_yaml_fail(&L->y, v,
                                "windows.quiet_buckets: expected a whole number in 1..1000, "
                                "got '%s'",
                                s);
        p->quiet_buckets = (uint32_t)q;
    }
    return BG_OK;
}

/* One row per limit key: where its value lands. */
typedef struct limit_row {
    const char *key;
    size_t offset;
} limit_row;

static const limit_row class_limits[] = {
    {"api_calls_per_min", offsetof(bg_class_policy, max_api_calls_per_min)},
    {"tokens_per_min", offsetof(bg_class_policy, max_tokens_per_min)},
    {"cost_micros_per_hour", offsetof(bg_class_policy, max_cost_micros_per_hour)},
    {"cost_micros_per_day", offsetof(bg_class_policy, max_cost_micros_per_day)},
    {"approval_cost_micros_per_hour", offsetof(bg_class_policy, approval_cost_micros_per_hour)},
    {"new_destinations_per_hour", offsetof(bg_class_policy, max_new_destinations_per_hour)},
    {"secrets_per_hour", offsetof(bg_class_policy, max_secrets_per_hour)},
    {"identity_grants_per_hour", offsetof(bg_class_policy, max_identity_grants_per_hour)},
    {"owner_grants_per_hour", offsetof(bg_class_policy, max_owner_grants_per_hour)},
    {"secret_ttl_seconds", offsetof(bg_class_policy, max_secret_ttl_seconds)},
};
static const char *const class_limit_keys[] = {"api_calls_per_min",    "tokens_per_min",
                                               "cost_micros_per_hour", "cost_micros_per_day",
                                               "approval_cost_micros_per_hour",
                                               "new_destinations_per_hour", "secrets_per_hour",
                                               "identity_grants_per_hour", "owner_grants_per_hour",
                                               "secret_ttl_seconds", NULL};

static const limit_row envelope_limits[] = {
    {"api_calls_per_min", offsetof(bg_envelope, max_api_calls_per_min)},
    {"tokens_per_min", offsetof(bg_envelope, max_tokens_per_min)},
    {"cost_micros", offsetof(bg_envelope, max_cost_micros)},
    {"new_secrets", offsetof(bg_envelope, max_new_secrets)},
    {"new_destinations", offsetof(bg_envelope, max_new_destinations)},
};
static const char *const envelope_limit_keys[] = {
    "api_calls_per_min", "tokens_per_min", "cost_micros", "new_secrets", "new_destinations", NULL};

static bg_err load_limits(ploader *L, const yaml_node_t *n, const char *what,
                          const limit_row *rows, size_t n_rows, const char *const *keys,
                          void *target) {
    char lw[160];
    for (size_t i = 0; i < n_rows; i++)
        *(int64_t *)(void *)((char *)target + rows[i].offset) = -1;
    if (!n || bg_yaml_is_null(n))
        return BG_OK;
    snprintf(lw, sizeof lw, "%s limits", what);
    bg_err e = bg_yaml_map_check(&L->y, n, lw, keys);
    if (e)
        return e;
    for (size_t i = 0; i < n_rows; i++) {
        snprintf(lw, sizeof lw, "%s: limits.%s", what, rows[i].key);
        e = get_limit(L, bg_yaml_map_get(&L->y, n, rows[i].key), lw,
                      (int64_t *)(void *)((char *)target + rows[i].offset));
        if (e)
            return e;
    }
    return BG_OK;
}

static bg_err load_class(ploader *L, const yaml_node_t *n, size_t index) {
    static const char *const keys[] = {
        "name",    "match",       "limits",        "unexpected_action",      "review_routes",
        "enforce", "sensitivity", "sprawl_action", "persistent_destination", NULL};
    static const char *const persist_keys[] = {"visits", "spread", "window", NULL};
    static const char *const match_keys[] = {"identity_prefix", "identity_glob", "owner", NULL};
    bg_policy *p = L->p;
    char what[96], sub[160];
    snprintf(what, sizeof what, "classes[%zu]", index);
    bg_err e = bg_yaml_map_check(&L->y, n, what, keys);
    if (e)
        return e;

    bg_class_policy *c = &p->classes[p->n_classes];
    *c = L->class_template;
    c->name = NULL;
    p->n_classes++; /* from here on bg_policy_free owns what c holds */

    yaml_node_t *v = bg_yaml_map_get(&L->y, n, "name");
    snprintf(sub, sizeof sub, "%s: name", what);
    if (!v || bg_yaml_is_null(v))
        return bg_yaml_fail(&L->y, v ? v : n, "%s: a class needs a name", what);
    if ((e = get_str(L, v, sub, &c->name)))
        return e;
    for (uint32_t i = 0; i + 1 < p->n_classes; i++)
        if (strcmp(p->classes[i].name, c->name) == 0)
            return bg_yaml_fail(&L->y, v, "class name '%s' is used twice", c->name);
    snprintf(what, sizeof what, "class '%.60s'", c->name);

    if ((v = bg_yaml_map_get(&L->y, n, "match")) && !bg_yaml_is_null(v)) {
        snprintf(sub, sizeof sub, "%s match", what);
        if ((e = bg_yaml_map_check(&L->y, v, sub, match_keys)))
            return e;
        snprintf(sub, sizeof sub, "%s: match.identity_prefix", what);
        if ((e = get_str(L, bg_yaml_map_get(&L->y, v, "identity_prefix"), sub,
                         &c->match_identity_prefix)))
            return e;
        snprintf(sub, sizeof sub, "%s: match.identity_glob", what);
        if ((e = get_str(L, bg_yaml_map_get(&L->y, v, "identity_glob"), sub,
                         &c->match_identity_glob)))
            return e;
        snprintf(sub, sizeof sub, "%s: match.owner", what);
        if ((e = get_str(L, bg_yaml_map_get(&L->y, v, "owner"), sub, &c->match_owner)))
            return e;
    }
    if ((e = load_limits(L, bg_yaml_map_get(&L->y, n, "limits"), what, class_limits,
                         sizeof class_limits / sizeof class_limits[0], class_limit_keys, c)))
        return e;
    if ((v = bg_yaml_map_get(&L->y, n, "unexpected_action"))) {
        const char *s;
        snprintf(sub, sizeof sub, "%s: unexpected_action", what);
        if ((e = bg_yaml_scalar(&L->y, v, sub, &s)))
            return e;
        if (strcmp(s, "THROTTLE") == 0)
            c->unexpected_action = BG_ACT_THROTTLE;
        else if (strcmp(s, "REVIEW") == 0)
            c->unexpected_action = BG_ACT_REVIEW;
        else
            return bg_yaml_fail(&L->y, v, "%s must be THROTTLE or REVIEW, not '%s'", sub, s);
    }
    if ((v = bg_yaml_map_get(&L->y, n, "review_routes"))) {
        char **routes;
        uint32_t nr;
        snprintf(sub, sizeof sub, "%s: review_routes", what);
        e = get_str_list(L, v, sub, BG_POLICY_MAX_ROUTES, &routes, &nr);
        for (uint32_t i = 0; i < nr; i++)
            c->review_routes[i] = routes[i];
        c->n_review_routes = nr;
        free(routes);
        if (e)
            return e;
    }
    if ((v = bg_yaml_map_get(&L->y, n, "enforce"))) {
        snprintf(sub, sizeof sub, "%s: enforce", what);
        if ((e = get_bool(L, v, sub, &c->enforce)))
            return e;
    }
    if ((v = bg_yaml_map_get(&L->y, n, "sprawl_action"))) {
        const char *s;
        snprintf(sub, sizeof sub, "%s: sprawl_action", what);
        if ((e = bg_yaml_scalar(&L->y, v, sub, &s)))
            return e;
        if (strcmp(s, "REVOKE_IDENTITY") == 0)
            c->sprawl_revokes_identity = true;
        else if (strcmp(s, "REVIEW") != 0)
            return bg_yaml_fail(&L->y, v, "%s must be REVIEW or REVOKE_IDENTITY, not '%s'", sub, s);
    }
    if ((v = bg_yaml_map_get(&L->y, n, "sensitivity"))) {
        const char *s;
        snprintf(sub, sizeof sub, "%s: sensitivity", what);
        if ((e = bg_yaml_scalar(&L->y, v, sub, &s)))
            return e;
        char *end;
        errno = 0;
        double d = strtod(s, &end);
        if (errno || end == s || *end || !(d >= 0.25 && d <= 4.0))
            return bg_yaml_fail(&L->y, v, "%s: expected a number in 0.25..4, got '%s'", sub, s);
        c->sensitivity = d;
    }
    if ((v = bg_yaml_map_get(&L->y, n, "persistent_destination")) && !bg_yaml_is_null(v)) {
        snprintf(sub, sizeof sub, "%s persistent_destination", what);
        if ((e = bg_yaml_map_check(&L->y, v, sub, persist_keys)))
            return e;
        yaml_node_t *x;
        if ((x = bg_yaml_map_get(&L->y, v, "visits"))) {
            const char *s;
            int64_t q;
            snprintf(sub, sizeof sub, "%s: persistent_destination.visits", what);
            if ((e = bg_yaml_scalar(&L->y, x, sub, &s)))
                return e;
            if (!bg_yaml_parse_int(s, &q) || q < 0 || q > 1000)
                return bg_yaml_fail(
                    &L->y, x, "%s: expected a whole number in 0..1000 (0 = off), got '%s'", sub, s);
            c->persist_visits = (uint32_t)q;
        }
        snprintf(sub, sizeof sub, "%s: persistent_destination.spread", what);
        if ((x = bg_yaml_map_get(&L->y, v, "spread")) &&
            (e = get_duration(L, x, sub, 0, 7 * 86400000LL, &c->persist_spread_ms)))
            return e;
        snprintf(sub, sizeof sub, "%s: persistent_destination.window", what);
        if ((x = bg_yaml_map_get(&L->y, v, "window")) &&
            (e = get_duration(L, x, sub, 60000, 7 * 86400000LL, &c->persist_window_ms)))
            return e;
        if (c->persist_visits && c->persist_spread_ms >= c->persist_window_ms)
            return bg_yaml_fail(&L->y, v,
                                "%s: persistent_destination.spread must be shorter than its window",
                                what);
    }
    return BG_OK;
}

static bg_err load_classes(ploader *L, const yaml_node_t *n) {
    if (!n || bg_yaml_is_null(n))
        return BG_OK;
    if (n->type != YAML_SEQUENCE_NODE)
        return bg_yaml_fail(&L->y, n, "classes: expected a list of classes, found %s",
                            bg_yaml_kind(n));
    size_t len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = bg_yaml_node(&L->y, n->data.sequence.items.start[i]);
        if (i == BG_POLICY_MAX_CLASSES)
            return bg_yaml_fail(&L->y, it ? it : n, "classes: more than %u classes",
                                BG_POLICY_MAX_CLASSES);
        bg_err e = load_class(L, it, i);
        if (e)
            return e;
    }
    return BG_OK;
}

static int find_class(const bg_policy *p, const char *name) {
    for (uint32_t i = 0; i < p->n_classes; i++)
        if (strcmp(p->classes[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* default_class names a class; without it, a class called "default"; without
 * that, a built-in "default" class with no limits is appended. */
static bg_err resolve_default(ploader *L, const yaml_node_t *n, const yaml_node_t *classes,
                              bg_class_policy *builtin) {
    bg_policy *p = L->p;
    char *name = NULL;
    bg_err e = get_str(L, n, "default_class", &name);
    if (e)
        return e;
    if (name) {
        int i = find_class(p, name);
        if (i < 0) {
            e = bg_yaml_fail(&L->y, n, "default_class '%s' is not one of the classes", name);
            free(name);
            return e;
        }
        free(name);
        p->default_class = (uint32_t)i;
        return BG_OK;
    }
    int i = find_class(p, "default");
    if (i >= 0) {
        p->default_class = (uint32_t)i;
        return BG_OK;
    }
    if (p->n_classes == BG_POLICY_MAX_CLASSES)
        return bg_yaml_fail(&L->y, classes,
                            "%u classes and none is the default: name one with default_class",
                            BG_POLICY_MAX_CLASSES);
    p->classes[p->n_classes] = *builtin;
    memset(builtin, 0, sizeof *builtin); /* ownership of its name moved */
    p->default_class = p->n_classes++;
    return BG_OK;
}

static bg_err load_envelope(ploader *L, const yaml_node_t *n, size_t index) {
    static const char *const keys[] = {"id",        "identity",  "workload_class",
                                       "owner",     "not_before", "not_after",
                                       "limits",    "allowed_destinations",
                                       "approved_by", "ticket",  "revoked", NULL};
    bg_policy *p = L->p;
    char what[96], sub[160];
    snprintf(what, sizeof what, "envelopes[%zu]", index);
    bg_err e = bg_yaml_map_check(&L->y, n, what, keys);
    if (e)
        return e;
    bg_envelope *env = &p->envelopes[p->n_envelopes++];
    memset(env, 0, sizeof *env);

    yaml_node_t *v = bg_yaml_map_get(&L->y, n, "id");
    snprintf(sub, sizeof sub, "%s: id", what);
    if (!v || bg_yaml_is_null(v))
        return bg_yaml_fail(&L->y, v ? v : n, "%s: an envelope needs an id", what);
    if ((e = get_str(L, v, sub, &env->envelope_id)))
        return e;
    for (uint32_t i = 0; i + 1 < p->n_envelopes; i++)
        if (strcmp(p->envelopes[i].envelope_id, env->envelope_id) == 0)
            return bg_yaml_fail(&L->y, v, "envelope id '%s' is used twice", env->envelope_id);
    snprintf(what, sizeof what, "envelope '%.60s'", env->envelope_id);

    snprintf(sub, sizeof sub, "%s: identity", what);
    if ((e = get_str(L, bg_yaml_map_get(&L->y, n, "identity"), sub, &env->identity)))
        return e;
    snprintf(sub, sizeof sub, "%s: owner", what);
    if ((e = get_str(L, bg_yaml_map_get(&L->y, n, "owner"), sub, &env->owner)))
        return e;
    v = bg_yaml_map_get(&L->y, n, "workload_class");
    snprintf(sub, sizeof sub, "%s: workload_class", what);
    if ((e = get_str(L, v, sub, &env->workload_class)))
        return e;
    if (env->workload_class && find_class(p, env->workload_class) < 0)
        return bg_yaml_fail(&L->y, v, "%s: workload_class '%s' is not one of the classes", what,
                            env->workload_class);
    if (!env->identity && !env->workload_class && !env->owner)
        return bg_yaml_fail(&L->y, n,
                            "%s: needs at least one selector (identity, workload_class or owner)",
                            what);

    yaml_node_t *nb = bg_yaml_map_get(&L->y, n, "not_before");
    yaml_node_t *na = bg_yaml_map_get(&L->y, n, "not_after");
    if (!nb || bg_yaml_is_null(nb))
        return bg_yaml_fail(&L->y, nb ? nb : n, "%s: not_before is required", what);
    if (!na || bg_yaml_is_null(na))
        return bg_yaml_fail(&L->y, na ? na : n, "%s: not_after is required", what);
    snprintf(sub, sizeof sub, "%s: not_before", what);
    if ((e = get_time(L, nb, sub, &env->not_before)))
        return e;
    snprintf(sub, sizeof sub, "%s: not_after", what);
    if ((e = get_time(L, na, sub, &env->not_after)))
        return e;
    if (env->not_after <= env->not_before)
        return bg_yaml_fail(&L->y, na, "%s: not_after must be later than not_before", what);

    if ((e = load_limits(L, bg_yaml_map_get(&L->y, n, "limits"), what, envelope_limits,
                         sizeof envelope_limits / sizeof envelope_limits[0], envelope_limit_keys,
                         env)))
        return e;
    snprintf(sub, sizeof sub, "%s: allowed_destinations", what);
    if ((e = get_str_list(L, bg_yaml_map_get(&L->y, n, "allowed_destinations"), sub,
                          BG_MAX_ALLOWED_DESTS, &env->allowed_destinations,
                          &env->n_allowed_destinations)))
        return e;

    v = bg_yaml_map_get(&L->y, n, "approved_by");
    snprintf(sub, sizeof sub, "%s: approved_by", what);
    if (!v || bg_yaml_is_null(v))
        return bg_yaml_fail(&L->y, v ? v : n, "%s: approved_by is required", what);
    if ((e = get_str(L, v, sub, &env->approved_by)))
        return e;
    snprintf(sub, sizeof sub, "%s: ticket", what);
    if ((e = get_str(L, bg_yaml_map_get(&L->y, n, "ticket"), sub, &env->ticket)))
        return e;
    if ((v = bg_yaml_map_get(&L->y, n, "revoked"))) {
        snprintf(sub, sizeof sub, "%s: revoked", what);
        if ((e = get_bool(L, v, sub, &env->revoked)))
            return e;
    }
    return BG_OK;
}

static bg_err load_envelopes(ploader *L, const yaml_node_t *n) {
    if (!n || bg_yaml_is_null(n))
        return BG_OK;
    if (n->type != YAML_SEQUENCE_NODE)
        return bg_yaml_fail(&L->y, n, "envelopes: expected a list of envelopes, found %s",
                            bg_yaml_kind(n));
    size_t len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (len == 0)
        return BG_OK;
    if (len > BG_POLICY_MAX_ENVELOPES) {
        yaml_node_t *it = bg_yaml_node(&L->y, n->data.sequence.items.start[BG_POLICY_MAX_ENVELOPES]);
        return bg_yaml_fail(&L->y, it ? it : n, "envelopes: more than %u envelopes",
                            BG_POLICY_MAX_ENVELOPES);
    }
    L->p->envelopes = calloc(len, sizeof *L->p->envelopes);
    if (!L->p->envelopes)
        return nomem(L);
    for (size_t i = 0; i < len; i++) {
        bg_err e = load_envelope(L, bg_yaml_node(&L->y, n->data.sequence.items.start[i]), i);
        if (e)
            return e;
    }
    return BG_OK;
}

static bg_err load_category(ploader *L, const yaml_node_t *n, size_t index) {
    static const char *const keys[] = {"name", "risk", "destinations", NULL};
    char what[96], sub[160];
    snprintf(what, sizeof what, "destinations.categories[%zu]", index);
    bg_err e = bg_yaml_map_check(&L->y, n, what, keys);
    if (e)
        return e;
    bg_dest_lists *d = &L->p->destinations;
    bg_dest_category *c = &d->categories[d->n_categories++]; /* owned by the policy from here */
    yaml_node_t *v = bg_yaml_map_get(&L->y, n, "name");
    snprintf(sub, sizeof sub, "%s: name", what);
    if (!v || bg_yaml_is_null(v))
        return bg_yaml_fail(&L->y, n, "%s: a category needs a name", what);
    if ((e = get_str(L, v, sub, &c->name)))
        return e;
    if ((v = bg_yaml_map_get(&L->y, n, "risk"))) {
        const char *s;
        snprintf(sub, sizeof sub, "%s: risk", what);
        if ((e = bg_yaml_scalar(&L->y, v, sub, &s)))
            return e;
        char *end;
        errno = 0;
        double r = strtod(s, &end);
        if (errno || end == s || *end || !(r >= 0.0 && r <= 1.0))
            return bg_yaml_fail(&L->y, v, "%s: expected a number in 0..1, got '%s'", sub, s);
        c->risk = r;
    }
    snprintf(sub, sizeof sub, "%s: destinations", what);
    return get_str_list(L, bg_yaml_map_get(&L->y, n, "destinations"), sub, BG_POLICY_MAX_DESTS,
                        &c->dests, &c->n_dests);
}

static bg_err load_destinations(ploader *L, const yaml_node_t *n) {
    static const char *const keys[] = {"trusted", "known_bad", "categories", NULL};
    if (!n || bg_yaml_is_null(n))
        return BG_OK;
    bg_err e = bg_yaml_map_check(&L->y, n, "destinations", keys);
    if (e)
        return e;
    bg_dest_lists *d = &L->p->destinations;
    if ((e = get_str_list(L, bg_yaml_map_get(&L->y, n, "trusted"), "destinations.trusted",
                          BG_POLICY_MAX_DESTS, &d->trusted, &d->n_trusted)))
        return e;
    if ((e = get_str_list(L, bg_yaml_map_get(&L->y, n, "known_bad"), "destinations.known_bad",
                          BG_POLICY_MAX_DESTS, &d->known_bad, &d->n_known_bad)))
        return e;
    yaml_node_t *cats = bg_yaml_map_get(&L->y, n, "categories");
    if (!cats || bg_yaml_is_null(cats))
        return BG_OK;
    if (cats->type != YAML_SEQUENCE_NODE)
        return bg_yaml_fail(&L->y, cats, "destinations.categories: expected a list, found %s",
                            bg_yaml_kind(cats));
    size_t len = (size_t)(cats->data.sequence.items.top - cats->data.sequence.items.start);
    if (len > BG_POLICY_MAX_CATEGORIES)
        return bg_yaml_fail(&L->y, cats, "destinations.categories: more than %u",
                            BG_POLICY_MAX_CATEGORIES);
    if (!len)
        return BG_OK;
    d->categories = calloc(len, sizeof *d->categories);
    if (!d->categories)
        return nomem(L);
    for (size_t i = 0; i < len; i++)
        if ((e = load_category(L, bg_yaml_node(&L->y, cats->data.sequence.items.start[i]), i)))
            return e;
    return BG_OK;
}

/* approvers: key ids unique, public keys 32 bytes of standard base64, scopes
 * naming classes that exist. */
static bg_err load_approver(ploader *L, const yaml_node_t *n, size_t index) {
    static const char *const keys[] = {"key_id", "public_key", "owners", "workload_classes",
                                       NULL};
    bg_policy *p = L->p;
    char what[96], sub[160];
    snprintf(what, sizeof what, "approvers[%zu]", index);
    bg_err e = bg_yaml_map_check(&L->y, n, what, keys);
    if (e)
        return e;
    bg_approver *a = &p->approvers[p->n_approvers++];
    memset(a, 0, sizeof *a);
    yaml_node_t *v = bg_yaml_map_get(&L->y, n, "key_id");
    snprintf(sub, sizeof sub, "%s: key_id", what);
    if (!v || bg_yaml_is_null(v))
        return bg_yaml_fail(&L->y, v ? v : n, "%s: an approver needs a key_id", what);
    if ((e = get_str(L, v, sub, &a->key_id)))
        return e;
    for (uint32_t i = 0; i + 1 < p->n_approvers; i++)
        if (strcmp(p->approvers[i].key_id, a->key_id) == 0)
            return bg_yaml_fail(&L->y, v, "approver key_id '%s' is used twice", a->key_id);
    snprintf(what, sizeof what, "approver '%.60s'", a->key_id);

    v = bg_yaml_map_get(&L->y, n, "public_key");
    if (!v || bg_yaml_is_null(v))
        return bg_yaml_fail(&L->y, v ? v : n, "%s: public_key is required", what);
    const char *b64;
    snprintf(sub, sizeof sub, "%s: public_key", what);
    if ((e = bg_yaml_scalar(&L->y, v, sub, &b64)))
        return e;
    size_t bin_len = 0;
    if (sodium_base642bin(a->public_key, sizeof a->public_key, b64, strlen(b64), " \n", &bin_len,
                          NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        bin_len != sizeof a->public_key)
        return bg_yaml_fail(&L->y, v,
                            "%s: public_key must be the 32-byte Ed25519 public key in standard "
                            "base64 (44 characters, as in the .pub file of `burstguard keygen`)",
                            what);
    snprintf(sub, sizeof sub, "%s: owners", what);
    if ((e = get_str_list(L, bg_yaml_map_get(&L->y, n, "owners"), sub, BG_POLICY_MAX_SCOPE,
                          &a->owners, &a->n_owners)))
        return e;
    v = bg_yaml_map_get(&L->y, n, "workload_classes");
    snprintf(sub, sizeof sub, "%s: workload_classes", what);
    if ((e = get_str_list(L, v, sub, BG_POLICY_MAX_SCOPE, &a->workload_classes,
                          &a->n_workload_classes)))
        return e;
    for (uint32_t i = 0; i < a->n_workload_classes; i++)
        if (find_class(p, a->workload_classes[i]) < 0)
            return bg_yaml_fail(&L->y, v, "%s: workload_class '%s' is not one of the classes",
                                what, a->workload_classes[i]);
    return BG_OK;
}

static bg_err load_approvers(ploader *L, const yaml_node_t *n) {
    if (!n || bg_yaml_is_null(n))
        return BG_OK;
    if (n->type != YAML_SEQUENCE_NODE)
        return bg_yaml_fail(&L->y, n, "approvers: expected a list of approvers, found %s",
                            bg_yaml_kind(n));
    size_t len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (len == 0)
        return BG_OK;
    if (len > BG_POLICY_MAX_APPROVERS) {
        yaml_node_t *it = bg_yaml_node(&L->y, n->data.sequence.items.start[BG_POLICY_MAX_APPROVERS]);
        return bg_yaml_fail(&L->y, it ? it : n, "approvers: more than %u approvers",
                            BG_POLICY_MAX_APPROVERS);
    }
    L->p->approvers = calloc(len, sizeof *L->p->approvers);
    if (!L->p->approvers)
        return nomem(L);
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = bg_yaml_node(&L->y, n->data.sequence.items.start[i]);
        if (!it)
            return bg_yaml_fail(&L->y, n, "approvers[%zu]: missing", i);
        bg_err e = load_approver(L, it, i);
        if (e)
            return e;
    }
    return BG_OK;
}

static bg_err load_doc(ploader *L, bg_class_policy *builtin) {
    static const char *const keys[] = {"windows", "default_class", "classes", "envelopes",
                                       "destinations", "approvers", NULL};
    yaml_node_t *root = bg_yaml_root(&L->y);
    bg_err e;
    if (root && !bg_yaml_is_null(root)) {
        if ((e = bg_yaml_map_check(&L->y, root, "the policy", keys)))
            return e;
        if ((e = load_windows(L, bg_yaml_map_get(&L->y, root, "windows"))))
            return e;
        if ((e = load_classes(L, bg_yaml_map_get(&L->y, root, "classes"))))
            return e;
        if ((e = load_destinations(L, bg_yaml_map_get(&L->y, root, "destinations"))))
            return e;
        if ((e = load_approvers(L, bg_yaml_map_get(&L->y, root, "approvers"))))
            return e;
    } else {
        root = NULL;
    }
    if ((e = resolve_default(L, bg_yaml_map_get(&L->y, root, "default_class"),
                             bg_yaml_map_get(&L->y, root, "classes"), builtin)))
        return e;
    return load_envelopes(L, bg_yaml_map_get(&L->y, root, "envelopes"));
}

/* ========================================================================== */
/* Public API                                                                 */
/* ========================================================================== */

bg_err bg_policy_load_text(const char *name, const char *text, size_t len, bg_policy *out,
                           char *errstr, size_t errstr_size) {
    static char scratch[1];
    if (!errstr || errstr_size == 0) {
        errstr = scratch;
        errstr_size = sizeof scratch;
    }
    errstr[0] = '\0';
    if (!out)
        return BG_ERR_INVALID;
    memset(out, 0, sizeof *out);
    if (!name)
        name = "<policy>";
    if (!text && len) {
        snprintf(errstr, errstr_size, "%s: no policy text", name);
        return BG_ERR_INVALID;
    }

    /* The built-in default supplies the windows, the defaults of every class,
     * and the class appended when the file names no default. */
    bg_policy def;
    if (bg_policy_init_default(&def) != BG_OK) {
        bg_policy_free(&def);
        snprintf(errstr, errstr_size, "%s: out of memory", name);
        return BG_ERR_NOMEM;
    }
    out->bucket_ms = def.bucket_ms;
    out->correlation_window_ms = def.correlation_window_ms;
    out->learning_period_ms = def.learning_period_ms;
    out->allowed_lateness_ms = def.allowed_lateness_ms;
    out->quiet_buckets = def.quiet_buckets;
    snprintf(out->version, sizeof out->version, "%016" PRIx64,
             (uint64_t)XXH3_64bits(text ? text : "", len));

    ploader L;
    memset(&L, 0, sizeof L);
    L.p = out;
    L.class_template = def.classes[0];
    bg_err e = bg_yaml_load(&L.y, name, text ? text : "", len, true, errstr, errstr_size);
    if (e == BG_OK)
        e = load_doc(&L, &def.classes[0]);
    bg_yaml_free(&L.y);
    bg_policy_free(&def);
    if (e)
        bg_policy_free(out);
    return e;
}

bg_err bg_policy_load(const char *path, bg_policy *out, char *errstr, size_t errstr_size) {
    static char scratch[1];
    if (!errstr || errstr_size == 0) {
        errstr = scratch;
        errstr_size = sizeof scratch;
    }
    if (!out || !path)
        return BG_ERR_INVALID;
    memset(out, 0, sizeof *out);
    char *text;
    size_t len;
    bg_err e = bg_yaml_read_file("policy", path, POLICY_MAX_BYTES, &text, &len, errstr,
                                 errstr_size);
    if (e)
        return e;
    e = bg_policy_load_text(path, text, len, out, errstr, errstr_size);
    free(text);
    return e;
}

/* ========================================================================== */
/* Printing                                                                   */
/* ========================================================================== */

static void format_time(int64_t ms, char *buf, size_t size) {
    int64_t days = ms / 86400000, rem = ms % 86400000;
    if (rem < 0) {
        rem += 86400000;
        days--;
    }
    int64_t y, m, d;
    civil_from_days(days, &y, &m, &d);
    int64_t h = rem / 3600000, mi = rem / 60000 % 60, s = rem / 1000 % 60, f = rem % 1000;
    if (f)
        snprintf(buf, size, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03lldZ", (long long)y,
                 (long long)m, (long long)d, (long long)h, (long long)mi, (long long)s,
                 (long long)f);
    else
        snprintf(buf, size, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ", (long long)y,
                 (long long)m, (long long)d, (long long)h, (long long)mi, (long long)s);
}

/* Micro-dollars as "$12.50" (cents when exact, else all six decimals). */
static void format_money(int64_t micros, char *buf, size_t size) {
    long long whole = (long long)(micros / 1000000), frac = (long long)(micros % 1000000);
    if (frac % 10000 == 0)
        snprintf(buf, size, "$%lld.%02lld", whole, frac / 10000);
    else
        snprintf(buf, size, "$%lld.%06lld", whole, frac);
}

static void print_limit(FILE *f, const char *label, int64_t v, const char *unit) {
    if (v < 0)
        fprintf(f, "    %-22s no limit\n", label);
    else
        fprintf(f, "    %-22s %" PRId64 " %s\n", label, v, unit);
}

static void print_money_limit(FILE *f, const char *label, int64_t v, const char *per) {
    char money[48];
    if (v < 0) {
        fprintf(f, "    %-22s no limit\n", label);
        return;
    }
    format_money(v, money, sizeof money);
    fprintf(f, "    %-22s %s%s (%" PRId64 " micro-dollars)\n", label, money, per, v);
}

static void print_class(const bg_policy *p, uint32_t i, FILE *f) {
    const bg_class_policy *c = &p->classes[i];
    fprintf(f, "\nclass %s%s\n", c->name, i == p->default_class ? " (the default class)" : "");
    if (c->match_identity_prefix || c->match_identity_glob || c->match_owner) {
        fprintf(f, "  applies to identities");
        if (c->match_identity_prefix)
            fprintf(f, " starting with \"%s\"", c->match_identity_prefix);
        if (c->match_identity_glob)
            fprintf(f, "%s matching \"%s\"", c->match_identity_prefix ? " and" : "",
                    c->match_identity_glob);
        if ((c->match_identity_prefix || c->match_identity_glob) && c->match_owner)
            fprintf(f, " and");
        if (c->match_owner)
            fprintf(f, " owned by \"%s\"", c->match_owner);
        fprintf(f, ", and to events that name class %s\n", c->name);
    } else if (i == p->default_class) {
        fprintf(f, "  applies to every identity no other class matches, and to events that "
                   "name class %s\n",
                c->name);
    } else {
        fprintf(f, "  applies only to events that name class %s (no selectors)\n", c->name);
    }
    fprintf(f, "  limits:\n");
    print_limit(f, "API calls:", c->max_api_calls_per_min, "per minute");
    print_limit(f, "tokens (in + out):", c->max_tokens_per_min, "per minute");
    print_money_limit(f, "cost:", c->max_cost_micros_per_hour, " per hour");
    print_money_limit(f, "cost per day:", c->max_cost_micros_per_day, " per day (UTC)");
    print_money_limit(f, "approval above:", c->approval_cost_micros_per_hour,
                      " per hour without an envelope: REVIEW");
    print_limit(f, "new destinations:", c->max_new_destinations_per_hour, "per hour");
    print_limit(f, "secret issuances:", c->max_secrets_per_hour, "per hour");
    print_limit(f, "identity grants:", c->max_identity_grants_per_hour, "per hour");
    print_limit(f, "grants per owner:", c->max_owner_grants_per_hour, "per hour (one partition)");
    print_limit(f, "secret TTL:", c->max_secret_ttl_seconds, "seconds at most");
    fprintf(f, "  sprawl: %s\n", c->sprawl_revokes_identity
                                      ? "ANOMALOUS, the identity itself is revoked"
                                      : "UNEXPECTED, routed to review");
    fprintf(f, "  detector sensitivity: %.2f (1 = default; higher alarms earlier)\n", c->sensitivity);
    if (c->persist_visits) {
        char sp[32], wn[32];
        bg_yaml_format_duration(c->persist_spread_ms, sp, sizeof sp);
        bg_yaml_format_duration(c->persist_window_ms, wn, sizeof wn);
        fprintf(f,
                "  persistent destination: a rare destination first used after the learning "
                "period, reached by tool calls with side effects in %u buckets over at least %s "
                "within %s of its first use: ANOMALOUS (REVIEW)\n",
                c->persist_visits, sp, wn);
    } else {
        fprintf(f, "  persistent destination: off\n");
    }
    fprintf(f, "  a burst beyond these limits outside any envelope: %s",
            c->unexpected_action == BG_ACT_THROTTLE ? "THROTTLE" : "REVIEW");
    if (c->n_review_routes) {
        fprintf(f, ", reviews routed to ");
        for (uint32_t r = 0; r < c->n_review_routes; r++)
            fprintf(f, "%s%s", r ? ", " : "", c->review_routes[r]);
    } else {
        fprintf(f, ", no review routes");
    }
    fprintf(f, "\n  mode: %s\n",
            c->enforce ? "enforce (revocations are carried out)"
                       : "dry run (revocations are published as dry runs only)");
}

static void print_envelope(const bg_envelope *e, FILE *f) {
    char a[64], b[64], d[32];
    fprintf(f, "\nenvelope %s%s\n", e->envelope_id, e->revoked ? " (REVOKED: never matches)" : "");
    fprintf(f, "  who:");
    if (e->identity)
        fprintf(f, " identity %s", e->identity);
    if (e->workload_class)
        fprintf(f, "%s class %s", e->identity ? "," : "", e->workload_class);
    if (e->owner)
        fprintf(f, "%s owned by %s", (e->identity || e->workload_class) ? "," : "", e->owner);
    fprintf(f, "\n");
    format_time(e->not_before, a, sizeof a);
    format_time(e->not_after, b, sizeof b);
    /* not_after > not_before, both in [0, POLICY_MAX_TIME_MS]: no overflow. */
    bg_yaml_format_duration(e->not_after - e->not_before, d, sizeof d);
    fprintf(f, "  when: from %s (inclusive) to %s (exclusive), %s\n", a, b, d);
    fprintf(f, "  raises:\n");
    bool any = false;
    if (e->max_api_calls_per_min >= 0) {
        fprintf(f, "    %-22s %" PRId64 " per minute\n", "API calls:", e->max_api_calls_per_min);
        any = true;
    }
    if (e->max_tokens_per_min >= 0) {
        fprintf(f, "    %-22s %" PRId64 " per minute\n", "tokens (in + out):",
                e->max_tokens_per_min);
        any = true;
    }
    if (e->max_cost_micros >= 0) {
        print_money_limit(f, "cost:", e->max_cost_micros, " over the whole window");
        any = true;
    }
    if (e->max_new_secrets >= 0) {
        fprintf(f, "    %-22s %" PRId64 "\n", "new secrets:", e->max_new_secrets);
        any = true;
    }
    if (e->max_new_destinations >= 0) {
        fprintf(f, "    %-22s %" PRId64 "\n", "new destinations:", e->max_new_destinations);
        any = true;
    }
    if (!any)
        fprintf(f, "    nothing: the class limits still apply\n");
    if (e->n_allowed_destinations) {
        fprintf(f, "  allowed destinations:");
        for (uint32_t i = 0; i < e->n_allowed_destinations; i++)
            fprintf(f, "%s %s", i ? "," : "", e->allowed_destinations[i]);
        fprintf(f, "\n");
    } else {
        fprintf(f, "  allowed destinations: any\n");
    }
    fprintf(f, "  approved by %s, ticket %s\n", e->approved_by ? e->approved_by : "(nobody)",
            e->ticket ? e->ticket : "(none)");
}

void bg_policy_print(const bg_policy *p, FILE *f) {
    char b[32], c[32], l[32], a[32];
    bg_yaml_format_duration(p->bucket_ms, b, sizeof b);
    bg_yaml_format_duration(p->correlation_window_ms, c, sizeof c);
    bg_yaml_format_duration(p->learning_period_ms, l, sizeof l);
    bg_yaml_format_duration(p->allowed_lateness_ms, a, sizeof a);
    fprintf(f, "policy version %s\n", p->version);
    fprintf(f, "windows:\n");
    fprintf(f, "  rates are counted in buckets of %s\n", b);
    fprintf(f, "  a new secret and a new destination within %s of each other are correlated\n", c);
    fprintf(f, "  an identity's destinations in its first %s are its baseline\n", l);
    fprintf(f, "  events up to %s late are placed in their bucket\n", a);
    fprintf(f, "  a burst ends after %u quiet bucket%s\n", p->quiet_buckets,
            p->quiet_buckets == 1 ? "" : "s");
    fprintf(f, "%u class%s, %u envelope%s\n", p->n_classes, p->n_classes == 1 ? "" : "es",
            p->n_envelopes, p->n_envelopes == 1 ? "" : "s");
    fprintf(f, "an event that names its class gets that class; otherwise the classes below are\n"
               "tried in this order and the first whose selectors all match wins\n");
    for (uint32_t i = 0; i < p->n_classes; i++)
        print_class(p, i, f);
    for (uint32_t i = 0; i < p->n_envelopes; i++)
        print_envelope(&p->envelopes[i], f);
    const bg_dest_lists *d = &p->destinations;
    fprintf(f, "\ndestinations: %u trusted (a first use is not novelty), %u known bad (any use "
               "is a signal)\n",
            d->n_trusted, d->n_known_bad);
    for (uint32_t i = 0; i < d->n_known_bad; i++)
        fprintf(f, "  known bad: %s\n", d->known_bad[i]);
    for (uint32_t i = 0; i < d->n_categories; i++)
        fprintf(f, "  category %s (%u destinations): a first use adds %.2f to a correlation's score\n",
                d->categories[i].name, d->categories[i].n_dests, d->categories[i].risk);
    if (p->n_approvers == 0) {
        fprintf(f, "\napprovers: none: live envelopes are accepted unsigned\n");
        return;
    }
    fprintf(f, "\napprovers: %u; a live envelope must carry a valid signature of one of them\n",
            p->n_approvers);
    for (uint32_t i = 0; i < p->n_approvers; i++) {
        const bg_approver *ap = &p->approvers[i];
        fprintf(f, "  %s may authorise", ap->key_id);
        if (!ap->n_owners && !ap->n_workload_classes)
            fprintf(f, " any envelope");
        for (uint32_t k = 0; k < ap->n_owners; k++)
            fprintf(f, "%s%s", k ? ", " : " envelopes of owner ", ap->owners[k]);
        if (ap->n_owners && ap->n_workload_classes)
            fprintf(f, ";");
        for (uint32_t k = 0; k < ap->n_workload_classes; k++)
            fprintf(f, "%s%s", k ? ", " : " envelopes of class ", ap->workload_classes[k]);
        fprintf(f, "\n");
    }
}
