/* The alert sink (see alert.h). Stages, in file order:
 *
 *   sinks file   YAML (alert.file) -> bg_alert_sinks, strict: unknown keys and
 *                bad values are FILE:LINE:COL errors, as in policy_load.c;
 *   decode       framed Verdict -> the generic JSON object, with Avro-C's
 *                generic reader against the embedded schema (readback.c does
 *                the same for tests; this is not a hot path);
 *   filter       classification / action / min_severity / owner;
 *   payload      json | slack | pagerduty bodies built from that object;
 *   dedup        a bounded FIFO set of verdict_ids per sink;
 *   deliver      POST with retries (webhook.c), then store the offset.
 *
 * Why the offset is stored only after every matching sink is done: stored
 * offsets are what auto-commit commits, so a crash before delivery replays the
 * verdict (at least once), and the dedup set plus Idempotency-Key keep the
 * replay from reaching a receiver twice. A sink that exhausts max_attempts
 * does not skip the verdict: the loop holds it, pauses and tries again (only
 * the sinks that still lack it), so the sink stalls visibly (an error per
 * pause) rather than losing alerts. While it holds a verdict it does not poll:
 * a stall longer than kafka.max.poll.interval.ms (default 5 min) costs the
 * member its partitions, and the verdict, whose offset was never stored, is
 * delivered again after the rebalance: still not dropped. */
#include "alert.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <avro.h>
#include <curl/curl.h>
#include <librdkafka/rdkafka.h>

#include "cli.h"
#include "codec.h"
#include "config.h"
#include "log.h"
#include "webhook.h"
#include "yaml_doc.h"

#define ALERT_FILE_MAX_BYTES (256u * 1024u)
#define ALERT_DEDUP_CAP 100000u    /* verdict_ids remembered per sink */
#define ALERT_MAX_BACKOFF_MS 60000 /* cap on one retry delay, Retry-After included */
#define ALERT_MAX_VERDICT_BYTES (1u << 20)

static const char *const class_names[] = {"PLANNED", "UNEXPECTED", "ANOMALOUS"};
static const char *const action_names[] = {"ALLOW", "THROTTLE", "REVIEW", "REVOKE"};
static const char *const format_names[] = {"json", "slack", "pagerduty"};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static int name_index(const char *const *names, size_t n, const char *s) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], s))
            return (int)i;
    return -1;
}

/* ========================================================================== */
/* Sinks file                                                                 */
/* ========================================================================== */

static char *sdup(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

static bg_err seq_check(bg_yaml *y, const yaml_node_t *n, const char *what, size_t max,
                        size_t *len) {
    if (n->type != YAML_SEQUENCE_NODE)
        return bg_yaml_fail(y, n, "'%s' must be a list, not a %s", what, bg_yaml_kind(n));
    *len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (*len > max)
        return bg_yaml_fail(y, n, "'%s' has more than %zu entries", what, max);
    return BG_OK;
}

/* A list of enum symbols into a bit mask. */
static bg_err load_mask(bg_yaml *y, const yaml_node_t *n, const char *what,
                        const char *const *names, size_t n_names, int *mask) {
    size_t len = 0;
    bg_err e = seq_check(y, n, what, BG_ALERT_MAX_FILTER, &len);
    if (e)
        return e;
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = bg_yaml_node(y, n->data.sequence.items.start[i]);
        const char *s;
        if ((e = bg_yaml_scalar(y, it, what, &s)))
            return e;
        int idx = name_index(names, n_names, s);
        if (idx < 0) {
            char allowed[128] = "";
            for (size_t k = 0; k < n_names; k++)
                snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s%s",
                         k ? ", " : "", names[k]);
            return bg_yaml_fail(y, it, "'%s' in %s is not one of %s", s, what, allowed);
        }
        *mask |= 1 << idx;
    }
    return BG_OK;
}

static bg_err load_filters(bg_yaml *y, const yaml_node_t *n, bg_alert_filter *f) {
    static const char *const keys[] = {"classifications", "actions", "min_severity", "owners",
                                       NULL};
    bg_err e = bg_yaml_map_check(y, n, "filters", keys);
    if (e)
        return e;
    yaml_node_t *v;
    if ((v = bg_yaml_map_get(y, n, "classifications")) &&
        (e = load_mask(y, v, "classifications", class_names, N_OF(class_names),
                       &f->classifications)))
        return e;
    if ((v = bg_yaml_map_get(y, n, "actions")) &&
        (e = load_mask(y, v, "actions", action_names, N_OF(action_names), &f->actions)))
        return e;
    if ((v = bg_yaml_map_get(y, n, "min_severity"))) {
        const char *s;
        int64_t x;
        if ((e = bg_yaml_scalar(y, v, "min_severity", &s)))
            return e;
        if (!bg_yaml_parse_int(s, &x) || x < 0 || x > 100)
            return bg_yaml_fail(y, v, "min_severity '%s' is not an integer in 0..100", s);
        f->min_severity = (int32_t)x;
    }
    if ((v = bg_yaml_map_get(y, n, "owners"))) {
        size_t len = 0;
        if ((e = seq_check(y, v, "owners", BG_ALERT_MAX_FILTER, &len)))
            return e;
        for (size_t i = 0; i < len; i++) {
            const char *s;
            if ((e = bg_yaml_scalar(y, bg_yaml_node(y, v->data.sequence.items.start[i]), "owners",
                                    &s)))
                return e;
            if (!(f->owners[f->n_owners] = sdup(s)))
                return BG_ERR_NOMEM;
            f->n_owners++;
        }
    }
    return BG_OK;
}

static bg_err load_duration(bg_yaml *y, const yaml_node_t *v, const char *what, int64_t min,
                            int64_t max, int64_t *out) {
    const char *s;
    bg_err e = bg_yaml_scalar(y, v, what, &s);
    if (e)
        return e;
    if (!bg_yaml_parse_duration(s, out) || *out < min || *out > max)
        return bg_yaml_fail(y, v, "%s '%s' is not a duration in %lldms..%llds", what, s,
                            (long long)min, (long long)(max / 1000));
    return BG_OK;
}

static bg_err read_routing_key(bg_yaml *y, const yaml_node_t *at, const char *dir, const char *file,
                               char **out) {
    char path[4096];
    snprintf(path, sizeof path, "%s%s", file[0] == '/' ? "" : dir, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return bg_yaml_fail(y, at, "cannot read routing_key_file '%s': %s", path, strerror(errno));
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    while (n &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        buf[--n] = 0;
    if (!n || strpbrk(buf, "\r\n\t \""))
        return bg_yaml_fail(y, at, "routing_key_file '%s' must hold one key on one line", path);
    return (*out = sdup(buf)) ? BG_OK : BG_ERR_NOMEM;
}

static bg_err load_sink(bg_yaml *y, const yaml_node_t *n, const char *dir, bg_alert_sink *s) {
    static const char *const keys[] = {
        "name",         "url",     "format", "filters",          "timeout",
        "max_attempts", "backoff", "pause",  "routing_key_file", NULL};
    bg_err e = bg_yaml_map_check(y, n, "sink", keys);
    if (e)
        return e;
    s->timeout_ms = 5000;
    s->max_attempts = 5;
    s->backoff_ms = 500;
    s->pause_ms = 30000;
    const char *v;
    yaml_node_t *node;
    if (!(node = bg_yaml_map_get(y, n, "name")))
        return bg_yaml_fail(y, n, "sink without 'name'");
    if ((e = bg_yaml_scalar(y, node, "name", &v)))
        return e;
    if (!*v)
        return bg_yaml_fail(y, node, "empty sink name");
    if (!(s->name = sdup(v)))
        return BG_ERR_NOMEM;
    if (!(node = bg_yaml_map_get(y, n, "url")))
        return bg_yaml_fail(y, n, "sink '%s' without 'url'", s->name);
    if ((e = bg_yaml_scalar(y, node, "url", &v)))
        return e;
    if (!((!strncmp(v, "http://", 7) && v[7]) || (!strncmp(v, "https://", 8) && v[8])))
        return bg_yaml_fail(y, node, "sink '%s': url '%s' is not an http:// or https:// URL",
                            s->name, v);
    if (!(s->url = sdup(v)))
        return BG_ERR_NOMEM;
    s->format = BG_ALERT_JSON;
    if ((node = bg_yaml_map_get(y, n, "format"))) {
        if ((e = bg_yaml_scalar(y, node, "format", &v)))
            return e;
        int f = name_index(format_names, N_OF(format_names), v);
        if (f < 0)
            return bg_yaml_fail(y, node, "format '%s' is not json, slack or pagerduty", v);
        s->format = (bg_alert_format)f;
    }
    if ((node = bg_yaml_map_get(y, n, "filters")) && (e = load_filters(y, node, &s->filter)))
        return e;
    if ((node = bg_yaml_map_get(y, n, "timeout")) &&
        (e = load_duration(y, node, "timeout", 1, 600000, &s->timeout_ms)))
        return e;
    if ((node = bg_yaml_map_get(y, n, "backoff")) &&
        (e = load_duration(y, node, "backoff", 1, ALERT_MAX_BACKOFF_MS, &s->backoff_ms)))
        return e;
    if ((node = bg_yaml_map_get(y, n, "pause")) &&
        (e = load_duration(y, node, "pause", 1, 3600000, &s->pause_ms)))
        return e;
    if ((node = bg_yaml_map_get(y, n, "max_attempts"))) {
        if ((e = bg_yaml_scalar(y, node, "max_attempts", &v)))
            return e;
        if (!bg_yaml_parse_int(v, &s->max_attempts) || s->max_attempts < 1 || s->max_attempts > 100)
            return bg_yaml_fail(y, node, "max_attempts '%s' is not an integer in 1..100", v);
    }
    node = bg_yaml_map_get(y, n, "routing_key_file");
    if (s->format == BG_ALERT_PAGERDUTY) {
        if (!node)
            return bg_yaml_fail(y, n, "pagerduty sink '%s' needs routing_key_file", s->name);
        if ((e = bg_yaml_scalar(y, node, "routing_key_file", &v)))
            return e;
        if ((e = read_routing_key(y, node, dir, v, &s->routing_key)))
            return e;
    } else if (node) {
        return bg_yaml_fail(y, node, "routing_key_file is only for format pagerduty");
    }
    return BG_OK;
}

bg_err bg_alert_sinks_load(const char *path, bg_alert_sinks *out, char *errstr,
                           size_t errstr_size) {
    memset(out, 0, sizeof *out);
    char *text;
    size_t len = 0;
    bg_err e = bg_yaml_read_file("alert file", path, ALERT_FILE_MAX_BYTES, &text, &len, errstr,
                                 errstr_size);
    if (e)
        return e;
    char dir[4096] = "";
    const char *slash = strrchr(path, '/');
    if (slash && (size_t)(slash - path) + 2 < sizeof dir) {
        memcpy(dir, path, (size_t)(slash - path) + 1);
        dir[slash - path + 1] = 0;
    }
    bg_yaml y;
    e = bg_yaml_load(&y, path, text, len, true, errstr, errstr_size);
    free(text);
    if (e)
        return e;
    yaml_node_t *root = bg_yaml_root(&y);
    static const char *const keys[] = {"sinks", NULL};
    if (!root)
        e = bg_yaml_fail(&y, NULL, "empty alert file: expected 'sinks:'");
    else if (!(e = bg_yaml_map_check(&y, root, "alert file", keys))) {
        yaml_node_t *sinks = bg_yaml_map_get(&y, root, "sinks");
        size_t n = 0;
        if (!sinks)
            e = bg_yaml_fail(&y, root, "no 'sinks' list");
        else if (!(e = seq_check(&y, sinks, "sinks", BG_ALERT_MAX_SINKS, &n)) && n == 0)
            e = bg_yaml_fail(&y, sinks, "'sinks' is empty");
        for (size_t i = 0; !e && i < n; i++) {
            yaml_node_t *it = bg_yaml_node(&y, sinks->data.sequence.items.start[i]);
            e = load_sink(&y, it, dir, &out->sinks[i]);
            out->n = i + 1;
            for (size_t k = 0; !e && k < i; k++)
                if (!strcmp(out->sinks[k].name, out->sinks[i].name))
                    e = bg_yaml_fail(&y, it, "duplicate sink name '%s'", out->sinks[i].name);
        }
    }
    bg_yaml_free(&y);
    if (e)
        bg_alert_sinks_free(out);
    return e;
}

void bg_alert_sinks_free(bg_alert_sinks *s) {
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        bg_alert_sink *k = &s->sinks[i];
        free(k->name);
        free(k->url);
        free(k->routing_key);
        for (size_t j = 0; j < k->filter.n_owners; j++)
            free(k->filter.owners[j]);
    }
    memset(s, 0, sizeof *s);
}

/* ========================================================================== */
/* Decode                                                                     */
/* ========================================================================== */

static json_t *field_json(avro_value_t *v);

static json_t *str_json(avro_value_t *v) {
    const char *s;
    size_t n;
    if (avro_value_get_string(v, &s, &n))
        return json_null();
    return json_stringn(s, n ? n - 1 : 0);
}

/* Avro value -> JSON, for the shapes the Verdict schema uses. */
static json_t *field_json(avro_value_t *v) {
    switch (avro_value_get_type(v)) {
    case AVRO_STRING:
        return str_json(v);
    case AVRO_INT32: {
        int32_t x = 0;
        avro_value_get_int(v, &x);
        return json_integer(x);
    }
    case AVRO_INT64: {
        int64_t x = 0;
        avro_value_get_long(v, &x);
        return json_integer(x);
    }
    case AVRO_DOUBLE: {
        double x = 0;
        avro_value_get_double(v, &x);
        return json_real(x);
    }
    case AVRO_BOOLEAN: {
        int x = 0;
        avro_value_get_boolean(v, &x);
        return json_boolean(x);
    }
    case AVRO_NULL:
        return json_null();
    case AVRO_ENUM: {
        int x = -1;
        avro_value_get_enum(v, &x);
        avro_schema_t sc = avro_value_get_schema(v);
        const char *sym = x >= 0 ? avro_schema_enum_get(sc, x) : NULL;
        return sym ? json_string(sym) : json_null();
    }
    case AVRO_UNION: {
        avro_value_t b;
        if (avro_value_get_current_branch(v, &b))
            return json_null();
        return field_json(&b);
    }
    case AVRO_ARRAY: {
        json_t *a = json_array();
        size_t n = 0;
        avro_value_get_size(v, &n);
        for (size_t i = 0; a && i < n; i++) {
            avro_value_t el;
            if (!avro_value_get_by_index(v, i, &el, NULL))
                json_array_append_new(a, field_json(&el));
        }
        return a;
    }
    case AVRO_RECORD: {
        json_t *o = json_object();
        size_t n = 0;
        avro_value_get_size(v, &n);
        for (size_t i = 0; o && i < n; i++) {
            avro_value_t el;
            const char *name;
            if (!avro_value_get_by_index(v, i, &el, &name))
                json_object_set_new(o, name, field_json(&el));
        }
        return o;
    }
    default:
        return json_null();
    }
}

bg_err bg_alert_verdict_json(const void *buf, size_t len, json_t **out) {
    static const char *const fields[] = {
        "verdict_id",    "identity",      "owner",       "workload_class", "classification",
        "phase",         "action",        "severity",    "window_start",   "window_end",
        "decided_at",    "reasons",       "envelope_id", "new_secret_ids", "new_destinations",
        "review_routes", "policy_version"};
    const uint8_t *b = buf;
    *out = NULL;
    if (len < 5)
        return BG_ERR_TRUNCATED;
    if (b[0] != 0)
        return BG_ERR_BAD_MAGIC;
    if (len > ALERT_MAX_VERDICT_BYTES)
        return BG_ERR_OVERSIZED;
    const char *text = bg_codec_reader_schema(BG_REC_VERDICT);
    avro_schema_t schema;
    if (avro_schema_from_json_length(text, strlen(text), &schema))
        return BG_ERR_SCHEMA;
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    avro_value_t val;
    if (!iface || avro_generic_value_new(iface, &val)) {
        if (iface)
            avro_value_iface_decref(iface);
        avro_schema_decref(schema);
        return BG_ERR_NOMEM;
    }
    avro_reader_t r = avro_reader_memory((const char *)b + 5, (int64_t)(len - 5));
    int rc = avro_value_read(r, &val);
    avro_reader_free(r);
    bg_err err = rc ? BG_ERR_MALFORMED : BG_OK;
    json_t *o = NULL;
    if (!err && !(o = json_object()))
        err = BG_ERR_NOMEM;
    for (size_t i = 0; !err && i < N_OF(fields); i++) {
        avro_value_t f;
        if (avro_value_get_by_name(&val, fields[i], &f, NULL))
            err = BG_ERR_MISSING_FIELD;
        else
            json_object_set_new(o, fields[i], field_json(&f));
    }
    if (!err && !json_is_string(json_object_get(o, "verdict_id")))
        err = BG_ERR_MALFORMED;
    avro_value_decref(&val);
    avro_value_iface_decref(iface);
    avro_schema_decref(schema);
    if (err)
        json_decref(o);
    else
        *out = o;
    return err;
}

/* ========================================================================== */
/* Filters and payloads                                                       */
/* ========================================================================== */

static const char *jstr(const json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static int32_t jsev(const json_t *v) {
    return (int32_t)json_integer_value(json_object_get(v, "severity"));
}

bool bg_alert_match(const bg_alert_filter *f, const json_t *v) {
    int c = name_index(class_names, N_OF(class_names), jstr(v, "classification"));
    int a = name_index(action_names, N_OF(action_names), jstr(v, "action"));
    if (f->classifications && (c < 0 || !(f->classifications & (1 << c))))
        return false;
    if (f->actions && (a < 0 || !(f->actions & (1 << a))))
        return false;
    if (jsev(v) < f->min_severity)
        return false;
    if (f->n_owners) {
        const char *owner = json_string_value(json_object_get(v, "owner"));
        bool any = false;
        for (size_t i = 0; owner && i < f->n_owners && !any; i++)
            any = !strcmp(owner, f->owners[i]);
        if (!any)
            return false;
    }
    return true;
}

/* Base from severity; ANOMALOUS is at least "error", PLANNED at most "warning". */
const char *bg_alert_pd_severity(const json_t *v) {
    static const char *const levels[] = {"info", "warning", "error", "critical"};
    int32_t s = jsev(v);
    int l = s >= 80 ? 3 : s >= 60 ? 2 : s >= 30 ? 1 : 0;
    const char *c = jstr(v, "classification");
    if (!strcmp(c, "ANOMALOUS") && l < 2)
        l = 2;
    if (!strcmp(c, "PLANNED") && l > 1)
        l = 1;
    return levels[l];
}

static void summary(const json_t *v, char *buf, size_t size) {
    const char *owner = json_string_value(json_object_get(v, "owner"));
    snprintf(buf, size, "burstguard: %s %s burst by %s%s%s (%s, severity %d)",
             jstr(v, "classification"), jstr(v, "phase"), jstr(v, "identity"),
             owner ? ", owner " : "", owner ? owner : "", jstr(v, "action"), (int)jsev(v));
}

static json_t *slack_payload(const json_t *v) {
    char line[1024];
    summary(v, line, sizeof line);
    json_t *fields = json_array();
    static const char *const keys[] = {"identity", "owner",      "workload_class", "action",
                                       "severity", "verdict_id", "policy_version"};
    for (size_t i = 0; i < N_OF(keys); i++) {
        json_t *x = json_object_get(v, keys[i]);
        char text[512];
        if (json_is_string(x))
            snprintf(text, sizeof text, "*%s*\n%s", keys[i], json_string_value(x));
        else if (json_is_integer(x))
            snprintf(text, sizeof text, "*%s*\n%lld", keys[i], (long long)json_integer_value(x));
        else
            continue;
        json_array_append_new(fields, json_pack("{s:s, s:s}", "type", "mrkdwn", "text", text));
    }
    char reasons[1024] = "";
    json_t *rs = json_object_get(v, "reasons");
    size_t i;
    json_t *r;
    json_array_foreach(rs, i, r) {
        size_t used = strlen(reasons);
        snprintf(reasons + used, sizeof reasons - used, "%s%s (%s): observed %g, threshold %g",
                 used ? "\n" : "", jstr(r, "code"), jstr(r, "detector"),
                 json_number_value(json_object_get(r, "observed")),
                 json_number_value(json_object_get(r, "threshold")));
    }
    json_t *blocks = json_array();
    json_array_append_new(blocks, json_pack("{s:s, s:{s:s, s:s}}", "type", "section", "text",
                                            "type", "mrkdwn", "text", line));
    json_array_append_new(blocks, json_pack("{s:s, s:o}", "type", "section", "fields", fields));
    if (reasons[0])
        json_array_append_new(blocks, json_pack("{s:s, s:{s:s, s:s}}", "type", "section", "text",
                                                "type", "mrkdwn", "text", reasons));
    return json_pack("{s:s, s:o}", "text", line, "blocks", blocks);
}

static json_t *pagerduty_payload(const bg_alert_sink *s, const json_t *v) {
    char line[1024];
    summary(v, line, sizeof line);
    return json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:O}}", "routing_key",
                     s->routing_key ? s->routing_key : "", "event_action", "trigger", "dedup_key",
                     jstr(v, "verdict_id"), "payload", "summary", line, "source",
                     jstr(v, "identity"), "severity", bg_alert_pd_severity(v), "custom_details", v);
}

bg_err bg_alert_payload(const bg_alert_sink *s, const json_t *v, char **body) {
    json_t *p = s->format == BG_ALERT_JSON    ? json_incref((json_t *)(uintptr_t)v)
                : s->format == BG_ALERT_SLACK ? slack_payload(v)
                                              : pagerduty_payload(s, v);
    *body = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    return *body ? BG_OK : BG_ERR_NOMEM;
}

/* ========================================================================== */
/* Dedup: open-addressing hash set + FIFO ring of the same ids                */
/* ========================================================================== */

struct bg_alert_dedup {
    size_t cap;  /* ids kept */
    char **ring; /* cap slots, oldest at head */
    size_t head, n;
    char **slots; /* hash table of pointers into ring's strings; nslots = power of 2 */
    size_t nslots;
    size_t tombs; /* evicted slots not yet reclaimed; a rebuild clears them */
};

#define TOMB ((char *)(uintptr_t)1)

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

bg_err bg_alert_dedup_new(size_t cap, bg_alert_dedup **out) {
    *out = NULL;
    if (cap == 0 || cap > (1u << 24))
        return BG_ERR_INVALID;
    bg_alert_dedup *d = calloc(1, sizeof *d);
    if (!d)
        return BG_ERR_NOMEM;
    d->cap = cap;
    d->nslots = 16;
    while (d->nslots < cap * 2)
        d->nslots <<= 1;
    d->ring = calloc(cap, sizeof *d->ring);
    d->slots = calloc(d->nslots, sizeof *d->slots);
    if (!d->ring || !d->slots) {
        bg_alert_dedup_free(d);
        return BG_ERR_NOMEM;
    }
    *out = d;
    return BG_OK;
}

void bg_alert_dedup_free(bg_alert_dedup *d) {
    if (!d)
        return;
    for (size_t i = 0; d->ring && i < d->n; i++)
        free(d->ring[(d->head + i) % d->cap]);
    free(d->ring);
    free(d->slots);
    free(d);
}

/* Slot holding id, or SIZE_MAX. */
static size_t find(const bg_alert_dedup *d, const char *id) {
    size_t mask = d->nslots - 1;
    for (size_t i = (size_t)hash_str(id) & mask, k = 0; k < d->nslots; i = (i + 1) & mask, k++) {
        if (!d->slots[i])
            return SIZE_MAX;
        if (d->slots[i] != TOMB && !strcmp(d->slots[i], id))
            return i;
    }
    return SIZE_MAX;
}

bool bg_alert_dedup_has(const bg_alert_dedup *d, const char *id) {
    return find(d, id) != SIZE_MAX;
}

size_t bg_alert_dedup_size(const bg_alert_dedup *d) {
    return d->n;
}

static void rehash(bg_alert_dedup *d) {
    /* tombstones accumulate under eviction: rebuild from the ring */
    memset(d->slots, 0, d->nslots * sizeof *d->slots);
    size_t mask = d->nslots - 1;
    for (size_t k = 0; k < d->n; k++) {
        char *s = d->ring[(d->head + k) % d->cap];
        size_t i = (size_t)hash_str(s) & mask;
        while (d->slots[i])
            i = (i + 1) & mask;
        d->slots[i] = s;
    }
}

bg_err bg_alert_dedup_add(bg_alert_dedup *d, const char *id) {
    if (bg_alert_dedup_has(d, id))
        return BG_OK;
    char *copy = sdup(id);
    if (!copy)
        return BG_ERR_NOMEM;
    if (d->n == d->cap) {
        char *old = d->ring[d->head];
        size_t at = find(d, old);
        if (at != SIZE_MAX) {
            d->slots[at] = TOMB;
            d->tombs++;
        }
        free(old);
        d->head = (d->head + 1) % d->cap;
        d->n--;
    }
    d->ring[(d->head + d->n) % d->cap] = copy;
    d->n++;
    size_t mask = d->nslots - 1, i = (size_t)hash_str(copy) & mask;
    while (d->slots[i] && d->slots[i] != TOMB)
        i = (i + 1) & mask;
    if (d->slots[i] == TOMB)
        d->tombs--;
    d->slots[i] = copy;
    if (d->tombs > d->nslots / 4) { /* keep empty slots so a miss ends its probe early */
        rehash(d);
        d->tombs = 0;
    }
    return BG_OK;
}

/* ========================================================================== */
/* Delivery                                                                   */
/* ========================================================================== */

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

static int64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Sleep ms, waking early on SIGTERM. Returns false when stopping. */
static bool nap(int64_t ms) {
    int64_t end = now_ms() + ms;
    while (!stop_flag) {
        int64_t left = end - now_ms();
        if (left <= 0)
            return true;
        usleep((useconds_t)(left > 50 ? 50000 : left * 1000));
    }
    return false;
}

typedef struct sink_state {
    bg_alert_dedup *seen;
    uint64_t delivered, permanent_failures, exhausted, duplicates;
} sink_state;

typedef enum outcome { OUT_DONE, OUT_RETRY_LATER, OUT_STOPPED } outcome;

/* Post one body with retries. OUT_DONE on 2xx or a permanent refusal. */
static outcome deliver(const bg_alert_sink *s, sink_state *st, const char *id, const char *body) {
    int64_t delay = s->backoff_ms;
    for (int64_t attempt = 1;; attempt++) {
        bg_webhook_result res;
        char why[CURL_ERROR_SIZE + 64];
        bg_err e = bg_webhook_post(s->url, id, body, s->timeout_ms, &res, why, sizeof why);
        if (!e && res.status >= 200 && res.status < 300) {
            st->delivered++;
            bg_debug("sink %s: verdict %s delivered (HTTP %ld, attempt %lld)", s->name, id,
                     res.status, (long long)attempt);
            return OUT_DONE;
        }
        if (!e && res.status >= 400 && res.status < 500 && res.status != 408 && res.status != 429) {
            st->permanent_failures++;
            bg_error("sink %s: verdict %s refused with HTTP %ld: skipped", s->name, id, res.status);
            return OUT_DONE;
        }
        if (e)
            bg_warn("sink %s: verdict %s attempt %lld/%lld: %s", s->name, id, (long long)attempt,
                    (long long)s->max_attempts, why);
        else
            bg_warn("sink %s: verdict %s attempt %lld/%lld: HTTP %ld", s->name, id,
                    (long long)attempt, (long long)s->max_attempts, res.status);
        if (attempt >= s->max_attempts) {
            st->exhausted++;
            bg_error("sink %s: verdict %s not delivered after %lld attempts: pausing %lld ms, "
                     "then retrying (offset not committed)",
                     s->name, id, (long long)attempt, (long long)s->pause_ms);
            return OUT_RETRY_LATER;
        }
        int64_t wait = (!e && res.retry_after_ms >= 0) ? res.retry_after_ms : delay;
        if (wait > ALERT_MAX_BACKOFF_MS)
            wait = ALERT_MAX_BACKOFF_MS;
        if (!nap(wait))
            return OUT_STOPPED;
        delay = delay * 2 > ALERT_MAX_BACKOFF_MS ? ALERT_MAX_BACKOFF_MS : delay * 2;
    }
}

/* Every matching sink in turn; a sink that already has the id is skipped, so
 * a verdict fetched again after a pause only goes to the sinks that lack it. */
static outcome handle(const bg_alert_sinks *sinks, sink_state *st, const json_t *v,
                      int64_t *pause_ms) {
    const char *id = jstr(v, "verdict_id");
    for (size_t i = 0; i < sinks->n; i++) {
        const bg_alert_sink *s = &sinks->sinks[i];
        if (!bg_alert_match(&s->filter, v))
            continue;
        if (bg_alert_dedup_has(st[i].seen, id)) {
            st[i].duplicates++;
            continue;
        }
        *pause_ms = s->pause_ms; /* of the sink that stops us, if one does */
        char *body;
        if (bg_alert_payload(s, v, &body))
            return OUT_RETRY_LATER;
        outcome o = deliver(s, &st[i], id, body);
        free(body);
        if (o != OUT_DONE)
            return o;
        if (bg_alert_dedup_add(st[i].seen, id))
            return OUT_RETRY_LATER;
    }
    return OUT_DONE;
}

static rd_kafka_t *make_consumer(const bg_config *cfg, char *err, size_t errsz) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (size_t i = 0; i < cfg->n_kafka; i++)
        if (rd_kafka_conf_set(conf, cfg->kafka[i].key, cfg->kafka[i].value, err, errsz)) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    /* what the sink's semantics rest on: set last, so kafka.* cannot undo them */
    static const char *const fixed[][2] = {{"enable.auto.offset.store", "false"},
                                           {"enable.auto.commit", "true"},
                                           {"isolation.level", "read_committed"},
                                           {"enable.partition.eof", "false"}};
    if (rd_kafka_conf_set(conf, "group.id", cfg->alert_group, err, errsz)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (!bg_config_kafka(cfg, "auto.offset.reset") &&
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, errsz)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    for (size_t i = 0; i < N_OF(fixed); i++)
        if (rd_kafka_conf_set(conf, fixed[i][0], fixed[i][1], err, errsz)) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errsz);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* Store m's offset + 1: what auto-commit will commit next. */
static void store_offset(rd_kafka_t *rk, const rd_kafka_message_t *m) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset =
        m->offset + 1;
    rd_kafka_resp_err_t e = rd_kafka_offsets_store(rk, l);
    if (e) /* the partition was revoked meanwhile: its new owner redelivers */
        bg_warn("cannot store offset %lld: %s", (long long)m->offset, rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
}

static int run_sink(const bg_config *cfg, const bg_alert_sinks *sinks) {
    char err[512];
    sink_state st[BG_ALERT_MAX_SINKS];
    memset(st, 0, sizeof st);
    for (size_t i = 0; i < sinks->n; i++)
        if (bg_alert_dedup_new(ALERT_DEDUP_CAP, &st[i].seen)) {
            for (size_t k = 0; k < i; k++)
                bg_alert_dedup_free(st[k].seen);
            bg_error("out of memory");
            return 1;
        }
    int rc = 0;
    rd_kafka_t *rk = make_consumer(cfg, err, sizeof err);
    if (!rk) {
        bg_error("cannot create the consumer: %s", err);
        rc = 1;
        goto out;
    }
    const char *topic = cfg->topics[BG_TOPIC_VERDICTS];
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t kerr = rd_kafka_subscribe(rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (kerr) {
        bg_error("cannot subscribe to %s: %s", topic, rd_kafka_err2str(kerr));
        rd_kafka_destroy(rk);
        rc = 1;
        goto out;
    }
    bg_info("alert sink: group %s, topic %s, %zu sink(s)", cfg->alert_group, topic, sinks->n);
    uint64_t bad = 0;
    while (!stop_flag) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                bg_warn("consumer: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        json_t *v = NULL;
        bg_err de = bg_alert_verdict_json(m->payload, m->len, &v);
        outcome o = OUT_DONE;
        if (de) {
            bad++;
            bg_error("verdict at %s[%d]@%lld cannot be decoded (%s): skipped", topic,
                     (int)m->partition, (long long)m->offset, bg_err_str(de));
        } else {
            /* hold this verdict until every matching sink is done with it */
            int64_t pause = 0;
            while ((o = handle(sinks, st, v, &pause)) == OUT_RETRY_LATER && nap(pause))
                ;
            json_decref(v);
        }
        if (o == OUT_DONE)
            store_offset(rk, m);
        rd_kafka_message_destroy(m);
    }
    bg_info("alert sink stopping: committing stored offsets");
    kerr = rd_kafka_commit(rk, NULL, 0);
    if (kerr && kerr != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        bg_error("final commit failed: %s", rd_kafka_err2str(kerr));
        rc = 1;
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    for (size_t i = 0; i < sinks->n; i++)
        bg_info("sink %s: delivered %llu, duplicates %llu, refused %llu, exhausted %llu",
                sinks->sinks[i].name, (unsigned long long)st[i].delivered,
                (unsigned long long)st[i].duplicates, (unsigned long long)st[i].permanent_failures,
                (unsigned long long)st[i].exhausted);
    if (bad)
        bg_info("undecodable verdicts skipped: %llu", (unsigned long long)bad);
out:
    for (size_t i = 0; i < sinks->n; i++)
        bg_alert_dedup_free(st[i].seen);
    return rc;
}

int bg_alert_main(int argc, char **argv) {
    bg_cli_args args;
    int rc0 = bg_cli_config_args(
        "alert", "usage: burstguard alert --config FILE [--brokers LIST] [--set key=value]...",
        false, argc, argv, &args);
    if (rc0 >= 0)
        return rc0;
    char errstr[1024];
    bg_config cfg;
    bg_err err = bg_config_load(args.config, args.sets, args.n_sets, &cfg, errstr, sizeof errstr);
    if (err) {
        fprintf(stderr, "burstguard: %s\n", errstr);
        return 2;
    }
    if (!cfg.alert_file) {
        fprintf(stderr, "burstguard: alert: alert.file is not set (the YAML file of sinks)\n");
        bg_config_free(&cfg);
        return 2;
    }
    if (!cfg.alert_group || !*cfg.alert_group) {
        fprintf(stderr, "burstguard: alert: alert.group_id is empty\n");
        bg_config_free(&cfg);
        return 2;
    }
    bg_alert_sinks sinks;
    err = bg_alert_sinks_load(cfg.alert_file, &sinks, errstr, sizeof errstr);
    if (err) {
        bg_yaml_one_line(errstr);
        fprintf(stderr, "burstguard: %s\n", errstr);
        bg_config_free(&cfg);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = run_sink(&cfg, &sinks);
    curl_global_cleanup();
    bg_alert_sinks_free(&sinks);
    bg_config_free(&cfg);
    return rc;
}
