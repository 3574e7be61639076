/* Worker configuration: YAML file + `--set key=value` overrides -> bg_config.
 *
 * One typed table (cfg_keys below) is the whole schema, in the manner of
 * Fluent Bit's config map: each row names a dotted key, its type, its default
 * (as text, parsed by the same code as a user's value, so defaults live in
 * exactly one place), where it lands in bg_config, its range and a sentence
 * of documentation. The YAML walker, the --set parser, the defaults and
 * bg_config_print_defaults() all read that table; nothing else knows a key.
 *
 * Two rows are maps rather than values: `kafka` (librdkafka properties whose
 * own names contain dots, passed through verbatim) and
 * `schema_registry.local` (schema id -> .avsc path). A key under them is the
 * rest of the dotted path: `kafka.bootstrap.servers`,
 * `schema_registry.local.9`.
 *
 * Order of application: table defaults, then the file, then each --set in
 * order. Checks that depend on the final values (paths exist, topics are
 * distinct) run once at the end, so an override can fix a bad file value;
 * their messages still point at where the final value came from.
 *
 * Paths in the file are relative to the file's directory; paths given with
 * --set are relative to the working directory, like any command-line path. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "yaml_doc.h"

#define CONFIG_MAX_BYTES (1u << 20) /* a config file is hand-written; refuse bigger */
#define CONFIG_MAX_KEY 256u         /* longest dotted key we build or accept */
#define CONFIG_MAX_KAFKA 1024u      /* librdkafka has ~200 properties */
#define CONFIG_MAX_LOCAL 4096u      /* local schema map entries */
#define WHERE_SIZE 192u

/* Default topic names: the single definition, used by the table and exported. */
#define TOPIC_USAGE "nhi.usage.v1"
#define TOPIC_SECRETS "nhi.secrets.v1"
#define TOPIC_TOOLCALLS "nhi.toolcalls.v1"
#define TOPIC_ENVELOPES "nhi.envelopes.v1"
#define TOPIC_VERDICTS "nhi.verdicts.v1"
#define TOPIC_REVOCATIONS "nhi.revocations.v1"
#define TOPIC_DEADLETTER "nhi.deadletter.v1"
#define TOPIC_STATE "burstguard.state.v1"

const char *const bg_topic_defaults[BG_TOPIC_COUNT] = {
    [BG_TOPIC_USAGE] = TOPIC_USAGE,           [BG_TOPIC_SECRETS] = TOPIC_SECRETS,
    [BG_TOPIC_TOOLCALLS] = TOPIC_TOOLCALLS,   [BG_TOPIC_ENVELOPES] = TOPIC_ENVELOPES,
    [BG_TOPIC_VERDICTS] = TOPIC_VERDICTS,     [BG_TOPIC_REVOCATIONS] = TOPIC_REVOCATIONS,
    [BG_TOPIC_DEADLETTER] = TOPIC_DEADLETTER, [BG_TOPIC_STATE] = TOPIC_STATE,
};

/* ========================================================================== */
/* The table                                                                  */
/* ========================================================================== */

typedef enum cfg_type {
    CT_STRING,   /* char *; default NULL means the key may be unset (null) */
    CT_INT,      /* int64_t in [min, max] */
    CT_DURATION, /* int64_t milliseconds in [min, max]; "500ms", "30s" or integer ms */
    CT_BOOL,     /* bool */
    CT_PATH,     /* char *, resolved, must name a readable file; unset = NULL */
    CT_KAFKA,    /* map: kafka.<property> -> string, passed through */
    CT_SCHEMAS,  /* map: schema_registry.local.<id> -> path */
} cfg_type;

/* Extra validation of a string value; writes why it is bad. */
typedef bool (*cfg_check_fn)(const char *v, char *why, size_t why_size);

typedef struct cfg_key {
    const char *name;   /* dotted key */
    cfg_type type;
    const char *def;    /* default as the user would write it; NULL = unset */
    size_t offset;      /* into bg_config (value rows only) */
    int64_t min, max;   /* CT_INT, CT_DURATION */
    cfg_check_fn check; /* CT_STRING, optional */
    const char *desc;
} cfg_key;

static bool check_topic(const char *v, char *why, size_t why_size);
static bool check_url(const char *v, char *why, size_t why_size);
static bool check_listen(const char *v, char *why, size_t why_size);
static bool check_guarantee(const char *v, char *why, size_t why_size);
static bool check_env_name(const char *v, char *why, size_t why_size);

#define OFF(field) offsetof(bg_config, field)
#define TOPIC_ROW(key, idx, def, desc)                                                      \
    { "topics." key, CT_STRING, def, OFF(topics[idx]), 0, 0, check_topic, desc }

static const cfg_key cfg_keys[] = {
    {"kafka", CT_KAFKA, NULL, 0, 0, 0, NULL,
     "librdkafka property kafka.<name> (e.g. kafka.bootstrap.servers), passed through as-is"},
    TOPIC_ROW("usage", BG_TOPIC_USAGE, TOPIC_USAGE, "input: UsageEvent records"),
    TOPIC_ROW("secrets", BG_TOPIC_SECRETS, TOPIC_SECRETS, "input: SecretIssued records"),
    TOPIC_ROW("toolcalls", BG_TOPIC_TOOLCALLS, TOPIC_TOOLCALLS, "input: ToolCall records"),
    TOPIC_ROW("envelopes", BG_TOPIC_ENVELOPES, TOPIC_ENVELOPES,
              "input: Envelope records (compacted, keyed by envelope_id)"),
    TOPIC_ROW("verdicts", BG_TOPIC_VERDICTS, TOPIC_VERDICTS, "output: Verdict records"),
    TOPIC_ROW("revocations", BG_TOPIC_REVOCATIONS, TOPIC_REVOCATIONS,
              "output: RevocationCommand records"),
    TOPIC_ROW("deadletter", BG_TOPIC_DEADLETTER, TOPIC_DEADLETTER,
              "output: input messages that could not be processed"),
    TOPIC_ROW("state", BG_TOPIC_STATE, TOPIC_STATE,
              "changelog of per-identity state snapshots (compacted)"),
    {"schema_registry.url", CT_STRING, NULL, OFF(registry_url), 0, 0, check_url,
     "Confluent-compatible Schema Registry base URL (http:// or https://); writer schemas of ids not in schema_registry.local are fetched from it"},
    {"schema_registry.username", CT_STRING, NULL, OFF(registry_username), 0, 0, NULL,
     "basic-auth user for the Schema Registry (with schema_registry.password_file)"},
    {"schema_registry.password_file", CT_PATH, NULL, OFF(registry_password_file), 0, 0, NULL,
     "file whose first line is the Schema Registry password (e.g. a mounted Secret); never the password itself"},
    {"schema_registry.ca_file", CT_PATH, NULL, OFF(registry_ca_file), 0, 0, NULL,
     "PEM CA bundle for an https:// registry; unset = the system's; certificates are always verified"},
    {"schema_registry.timeout_ms", CT_DURATION, "5s", OFF(registry_timeout_ms), 100, 60000, NULL,
     "bound on one Schema Registry request, connect included"},
    {"schema_registry.retry_max_ms", CT_DURATION, "30s", OFF(registry_retry_max_ms), 100, 600000,
     NULL, "longest backoff between retries while the registry is unreachable (messages wait, never dead-lettered)"},
    {"schema_registry.local", CT_SCHEMAS, NULL, 0, 0, 0, NULL,
     "offline schema map schema_registry.local.<id> = path of an .avsc file"},
    {"policy", CT_PATH, NULL, OFF(policy_path), 0, 0, NULL,
     "policy file (see `burstguard policy check`); unset = built-in default policy"},
    {"http.listen", CT_STRING, "0.0.0.0:9100", OFF(http_listen), 0, 0, check_listen,
     "HOST:PORT for /metrics /healthz /readyz; port 0 picks a free one (logged); empty disables the endpoint"},
    {"worker.batch_max_messages", CT_INT, "10000", OFF(batch_max_messages), 1, 1000000, NULL,
     "most messages consumed per batch (one transaction)"},
    {"worker.batch_max_ms", CT_DURATION, "100ms", OFF(batch_max_ms), 1, 60000, NULL,
     "longest a batch stays open before it is committed"},
    {"worker.shutdown_timeout_ms", CT_DURATION, "10s", OFF(shutdown_timeout_ms), 0, 600000,
     NULL, "how long shutdown waits to flush and commit before giving up"},
    {"worker.dry_run", CT_BOOL, "false", OFF(dry_run), 0, 0, NULL,
     "every revocation command is published as a dry run"},
    {"worker.guarantee", CT_STRING, "at_least_once", OFF(guarantee), 0, 0, check_guarantee,
     "exactly_once: outputs, changelog and input offsets commit in one transaction per commit interval (needs brokers with transactions; the Helm chart sets it); at_least_once: outputs acknowledged, then offsets committed"},
    {"worker.commit_interval_ms", CT_DURATION, "1s", OFF(commit_interval_ms), 10, 600000, NULL,
     "how often the work done is committed (one transaction each in exactly_once mode)"},
    {"worker.transactional_id", CT_STRING, NULL, OFF(transactional_id), 0, 0, NULL,
     "transactional.id of the exactly_once producer; unset = <group.id>-<group.instance.id>, or <group.id>-<host>-<pid> without one"},
    {"worker.instance_id_env", CT_STRING, "BURSTGUARD_INSTANCE_ID", OFF(instance_id_env), 0, 0,
     check_env_name,
     "environment variable whose value becomes group.instance.id (static membership) when kafka.group.instance.id is unset; the Helm chart sets it to the pod name; empty disables"},
    {"state.max_identities", CT_INT, "1000000", OFF(state_max_identities), 0, 1000000000, NULL,
     "most identities one task (partition) keeps; the least recently active are evicted; 0 = unbounded"},
    {"state.max_bytes", CT_INT, "536870912", OFF(state_max_bytes), 0, INT64_C(1) << 40, NULL,
     "most bytes of identity state one task keeps (LRU eviction beyond); 0 = unbounded"},
    {"state.idle_ttl", CT_DURATION, "7d", OFF(state_idle_ttl_ms), 0, INT64_C(3650) * 86400000,
     NULL, "identities idle this long in event time are evicted; 0 = never"},
    {"state.changelog", CT_BOOL, "true", OFF(state_changelog), 0, 0, NULL,
     "snapshot changed identities to topics.state at each commit and restore a task from it on assignment"},
    {"signing.key_file", CT_PATH, NULL, OFF(signing_key_file), 0, 0, NULL,
     "Ed25519 secret key (from `burstguard keygen`, mode 0600) that signs revocation commands; unset = unsigned"},
    {"signing.key_id", CT_STRING, NULL, OFF(signing_key_id), 0, 0, NULL,
     "key_id written into signed revocation commands (required with signing.key_file)"},
    {"alert.file", CT_PATH, NULL, OFF(alert_file), 0, 0, NULL,
     "`burstguard alert`: YAML file listing the webhook sinks (see README, Alert sink)"},
    {"alert.group_id", CT_STRING, "burstguard-alert", OFF(alert_group), 0, 0, NULL,
     "`burstguard alert`: consumer group of the alert sink"},
};

#define N_KEYS (sizeof cfg_keys / sizeof cfg_keys[0])

static bool is_map_row(const cfg_key *k) {
    return k->type == CT_KAFKA || k->type == CT_SCHEMAS;
}

/* ========================================================================== */
/* Validators                                                                 */
/* ========================================================================== */

static bool check_topic(const char *v, char *why, size_t why_size) {
    size_t n = strlen(v);
    if (n == 0) {
        snprintf(why, why_size, "empty topic name");
        return false;
    }
    /* Kafka's own rule: [a-zA-Z0-9._-]{1,249}, not "." or "..". */
    if (n > 249) {
        snprintf(why, why_size, "topic name longer than 249 characters");
        return false;
    }
    if (strcmp(v, ".") == 0 || strcmp(v, "..") == 0) {
        snprintf(why, why_size, "'%s' is not a valid topic name", v);
        return false;
    }
    for (const char *p = v; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-')) {
            snprintf(why, why_size, "topic name '%s' has '%c'; allowed are letters, digits, . _ -",
                     v, ch);
            return false;
        }
    }
    return true;
}

static bool check_url(const char *v, char *why, size_t why_size) {
    if ((strncmp(v, "http://", 7) == 0 && v[7]) || (strncmp(v, "https://", 8) == 0 && v[8]))
        return true;
    snprintf(why, why_size, "'%s' is not an http:// or https:// URL", v);
    return false;
}

static bool check_listen(const char *v, char *why, size_t why_size) {
    if (!*v)
        return true; /* disabled */
    const char *colon = strrchr(v, ':');
    int64_t port;
    if (!colon || !bg_yaml_parse_int(colon + 1, &port) || colon[1] == '+' || colon[1] == '-' ||
        port < 0 || port > 65535) {
        snprintf(why, why_size, "'%s' is not HOST:PORT with a port in 0..65535", v);
        return false;
    }
    return true;
}

static bool check_guarantee(const char *v, char *why, size_t why_size) {
    if (!strcmp(v, "exactly_once") || !strcmp(v, "at_least_once"))
        return true;
    snprintf(why, why_size, "'%s' is not exactly_once or at_least_once", v);
    return false;
}

static bool check_env_name(const char *v, char *why, size_t why_size) {
    for (const char *p = v; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_' ||
              (p > v && *p >= '0' && *p <= '9'))) {
            snprintf(why, why_size, "'%s' is not an environment variable name", v);
            return false;
        }
    return true;
}

/* ========================================================================== */
/* Loader state and errors                                                    */
/* ========================================================================== */

typedef struct loader {
    bg_config *c;
    char *err;
    size_t errsz;
    const char *file;           /* config file name for messages, NULL when none */
    char *dir;                  /* file's directory with trailing '/', or "" */
    bool in_file;               /* applying file values (vs defaults or --set) */
    bool from_file[N_KEYS];     /* row already set by the file: a second time is a duplicate */
    char where[N_KEYS][WHERE_SIZE]; /* origin of each row's current value */
    char (*local_where)[WHERE_SIZE]; /* origin of each c->local entry */
    size_t cap_kafka, cap_local;
} loader;

static bg_err failf(loader *L, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bg_err failf(loader *L, const char *where, const char *fmt, ...) {
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(L->err, L->errsz, "%s: %s", where, msg);
    bg_yaml_one_line(L->err);
    return BG_ERR_CONFIG;
}

static bg_err nomem(loader *L) {
    snprintf(L->err, L->errsz, "out of memory while loading the configuration");
    return BG_ERR_NOMEM;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* A path from the file is relative to the file's directory. */
static char *resolve_path(const loader *L, const char *p) {
    if (p[0] == '/' || !L->in_file || !L->dir[0])
        return dup_str(p);
    size_t a = strlen(L->dir), b = strlen(p);
    char *r = malloc(a + b + 1);
    if (r) {
        memcpy(r, L->dir, a);
        memcpy(r + a, p, b + 1);
    }
    return r;
}

/* Row for a dotted key. Value rows match exactly; for map rows *sub is set to
 * the part after "row." ("" when the key names the map itself). */
static int find_key(const char *name, const char **sub) {
    *sub = NULL;
    for (size_t i = 0; i < N_KEYS; i++) {
        const char *k = cfg_keys[i].name;
        size_t n = strlen(k);
        if (strcmp(name, k) == 0) {
            if (is_map_row(&cfg_keys[i]))
                *sub = "";
            return (int)i;
        }
        if (is_map_row(&cfg_keys[i]) && strncmp(name, k, n) == 0 && name[n] == '.') {
            *sub = name + n + 1;
            return (int)i;
        }
    }
    return -1;
}

/* Some key lives below `prefix` (e.g. "topics" for "topics.usage"). */
static bool is_section(const char *prefix) {
    size_t n = strlen(prefix);
    for (size_t i = 0; i < N_KEYS; i++)
        if (strncmp(cfg_keys[i].name, prefix, n) == 0 && cfg_keys[i].name[n] == '.')
            return true;
    return false;
}

/* Edit distance, for "did you mean"; inputs are short key names. */
static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 64;
    size_t prev[64], cur[64];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
    }
    return prev[lb];
}

static bg_err unknown_key(loader *L, const char *where, const char *name) {
    const char *best = NULL;
    size_t best_d = 3; /* suggest only close misspellings */
    for (size_t i = 0; i < N_KEYS; i++) {
        size_t d = edit_distance(name, cfg_keys[i].name);
        if (d < best_d) {
            best_d = d;
            best = cfg_keys[i].name;
        }
    }
    if (best)
        return failf(L, where, "unknown key '%s' (did you mean '%s'?)", name, best);
    return failf(L, where, "unknown key '%s'", name);
}

/* ========================================================================== */
/* Setting one value                                                          */
/* ========================================================================== */

static bg_err set_kafka(loader *L, const char *where, const char *prop, const char *val,
                        bool is_null) {
    bg_config *c = L->c;
    if (!*prop)
        return failf(L, where, "kafka: expected kafka.<property> = value");
    if (is_null)
        return failf(L, where, "kafka.%s: expected a value", prop);
    for (size_t i = 0; i < c->n_kafka; i++) {
        if (strcmp(c->kafka[i].key, prop) != 0)
            continue;
        /* Defaults hold no kafka properties, so one seen while reading the
         * file came from the file itself. */
        if (L->in_file)
            return failf(L, where, "duplicate key 'kafka.%s'", prop);
        char *v = dup_str(val);
        if (!v)
            return nomem(L);
        free(c->kafka[i].value);
        c->kafka[i].value = v;
        return BG_OK;
    }
    if (c->n_kafka == CONFIG_MAX_KAFKA)
        return failf(L, where, "more than %u kafka properties", CONFIG_MAX_KAFKA);
    if (c->n_kafka == L->cap_kafka) {
        size_t cap = L->cap_kafka ? L->cap_kafka * 2 : 16;
        bg_kv *nk = realloc(c->kafka, cap * sizeof *nk);
        if (!nk)
            return nomem(L);
        c->kafka = nk;
        L->cap_kafka = cap;
    }
    char *k = dup_str(prop), *v = dup_str(val);
    if (!k || !v) {
        free(k);
        free(v);
        return nomem(L);
    }
    c->kafka[c->n_kafka].key = k;
    c->kafka[c->n_kafka].value = v;
    c->n_kafka++;
    return BG_OK;
}

static bg_err set_schema(loader *L, const char *where, const char *idtext, const char *val,
                         bool is_null) {
    bg_config *c = L->c;
    int64_t id;
    if (!*idtext)
        return failf(L, where, "schema_registry.local: expected schema_registry.local.<id> = path");
    if (!bg_yaml_parse_int(idtext, &id) || id < 0 || id > INT32_MAX)
        return failf(L, where,
                     "schema_registry.local: schema id must be an integer in 0..%d, got '%s'",
                     INT32_MAX, idtext);
    if (is_null || !*val)
        return failf(L, where, "schema_registry.local.%s: expected the path of an .avsc file",
                     idtext);
    char *path = resolve_path(L, val);
    if (!path)
        return nomem(L);
    for (size_t i = 0; i < c->n_local; i++) {
        if (c->local[i].id != (int32_t)id)
            continue;
        if (L->in_file) {
            free(path);
            return failf(L, where, "duplicate schema id %lld in schema_registry.local",
                         (long long)id);
        }
        free(c->local[i].path);
        c->local[i].path = path;
        snprintf(L->local_where[i], WHERE_SIZE, "%s", where);
        return BG_OK;
    }
    if (c->n_local == CONFIG_MAX_LOCAL) {
        free(path);
        return failf(L, where, "more than %u entries in schema_registry.local", CONFIG_MAX_LOCAL);
    }
    if (c->n_local == L->cap_local) {
        size_t cap = L->cap_local ? L->cap_local * 2 : 8;
        bg_local_schema *nl = realloc(c->local, cap * sizeof *nl);
        if (!nl) {
            free(path);
            return nomem(L);
        }
        c->local = nl;
        char (*nw)[WHERE_SIZE] = realloc(L->local_where, cap * sizeof *nw);
        if (!nw) {
            free(path);
            return nomem(L);
        }
        L->local_where = nw;
        L->cap_local = cap;
    }
    c->local[c->n_local].id = (int32_t)id;
    c->local[c->n_local].path = path;
    snprintf(L->local_where[c->n_local], WHERE_SIZE, "%s", where);
    c->n_local++;
    return BG_OK;
}

static bg_err replace_str(loader *L, char **slot, const char *v) {
    char *d = NULL;
    if (v && !(d = dup_str(v)))
        return nomem(L);
    free(*slot);
    *slot = d;
    return BG_OK;
}

/* Apply `val` (a null YAML value when is_null) to row idx; `sub` is the key
 * below a map row. `where` prefixes any error. */
static bg_err set_value(loader *L, size_t idx, const char *sub, const char *val, bool is_null,
                        const char *where) {
    const cfg_key *k = &cfg_keys[idx];
    char *base = (char *)L->c;
    char why[320];
    int64_t v;
    bg_err e = BG_OK;

    switch (k->type) {
    case CT_KAFKA:
        return set_kafka(L, where, sub, val, is_null);
    case CT_SCHEMAS:
        return set_schema(L, where, sub, val, is_null);
    case CT_STRING: {
        char **slot = (char **)(void *)(base + k->offset);
        if (is_null && !k->def) {
            e = replace_str(L, slot, NULL);
            break;
        }
        const char *s = is_null ? "" : val;
        if (k->check && !k->check(s, why, sizeof why))
            return failf(L, where, "%s: %s", k->name, why);
        e = replace_str(L, slot, s);
        break;
    }
    case CT_PATH: {
        char **slot = (char **)(void *)(base + k->offset);
        if (is_null) {
            e = replace_str(L, slot, NULL);
            break;
        }
        if (!*val)
            return failf(L, where, "%s: empty path", k->name);
        char *p = resolve_path(L, val);
        if (!p)
            return nomem(L);
        free(*slot);
        *slot = p;
        break;
    }
    case CT_INT:
        if (is_null || !bg_yaml_parse_int(val, &v))
            return failf(L, where, "%s: expected an integer, got '%s'", k->name,
                         is_null ? "" : val);
        if (v < k->min || v > k->max)
            return failf(L, where, "%s: %lld is out of range (%lld..%lld)", k->name,
                         (long long)v, (long long)k->min, (long long)k->max);
        *(int64_t *)(void *)(base + k->offset) = v;
        break;
    case CT_DURATION:
        if (is_null || !bg_yaml_parse_duration(val, &v))
            return failf(L, where,
                         "%s: expected a duration such as 500ms, 30s, 15m, 1h or integer "
                         "milliseconds, got '%s'",
                         k->name, is_null ? "" : val);
        if (v < k->min || v > k->max) {
            char a[32], b[32], c[32];
            bg_yaml_format_duration(v, a, sizeof a);
            bg_yaml_format_duration(k->min, b, sizeof b);
            bg_yaml_format_duration(k->max, c, sizeof c);
            return failf(L, where, "%s: %s is out of range (%s..%s)", k->name, a, b, c);
        }
        *(int64_t *)(void *)(base + k->offset) = v;
        break;
    case CT_BOOL: {
        bool b;
        if (is_null || !bg_yaml_parse_bool(val, &b))
            return failf(L, where, "%s: expected true or false, got '%s'", k->name,
                         is_null ? "" : val);
        *(bool *)(void *)(base + k->offset) = b;
        break;
    }
    }
    if (e == BG_OK)
        snprintf(L->where[idx], WHERE_SIZE, "%s", where);
    return e;
}

/* ========================================================================== */
/* The file                                                                   */
/* ========================================================================== */

static bg_err walk_map(loader *L, bg_yaml *y, const yaml_node_t *map, const char *prefix);

/* Every pair of a map row's mapping (kafka:, schema_registry.local:). */
static bg_err walk_map_row(loader *L, bg_yaml *y, size_t idx, const yaml_node_t *map) {
    if (bg_yaml_is_null(map))
        return BG_OK;
    bg_err e = bg_yaml_map_check(y, map, cfg_keys[idx].name, NULL);
    if (e)
        return e;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = bg_yaml_node(y, p->key), *vn = bg_yaml_node(y, p->value);
        const char *ks, *vs;
        char where[WHERE_SIZE], name[CONFIG_MAX_KEY];
        snprintf(where, sizeof where, "%s:%lu", L->file, bg_yaml_line(kn));
        if ((e = bg_yaml_scalar(y, kn, cfg_keys[idx].name, &ks)))
            return e;
        snprintf(name, sizeof name, "%s.%s", cfg_keys[idx].name, ks);
        if ((e = bg_yaml_scalar(y, vn, name, &vs)))
            return e;
        if ((e = set_value(L, idx, ks, vs, bg_yaml_is_null(vn), where)))
            return e;
    }
    return BG_OK;
}

static bg_err walk_map(loader *L, bg_yaml *y, const yaml_node_t *map, const char *prefix) {
    bg_err e = bg_yaml_map_check(y, map, prefix ? prefix : "the configuration", NULL);
    if (e)
        return e;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = bg_yaml_node(y, p->key), *vn = bg_yaml_node(y, p->value);
        const char *ks, *sub;
        char where[WHERE_SIZE], name[CONFIG_MAX_KEY];
        snprintf(where, sizeof where, "%s:%lu", L->file, bg_yaml_line(kn));
        if ((e = bg_yaml_scalar(y, kn, "key", &ks)))
            return e;
        int m = snprintf(name, sizeof name, "%s%s%s", prefix ? prefix : "", prefix ? "." : "", ks);
        if (m < 0 || (size_t)m >= sizeof name)
            return failf(L, where, "key '%.40s...' is too long", ks);

        int idx = find_key(name, &sub);
        if (idx >= 0) {
            size_t i = (size_t)idx;
            if (sub && !*sub) {
                if ((e = walk_map_row(L, y, i, vn)))
                    return e;
                continue;
            }
            if (!sub) {
                if (L->from_file[i])
                    return failf(L, where, "duplicate key '%s'", name);
                L->from_file[i] = true;
            }
            const char *vs;
            if (!vn || vn->type != YAML_SCALAR_NODE)
                return failf(L, where, "%s: expected a single value, found %s", name,
                             bg_yaml_kind(vn));
            if ((e = bg_yaml_scalar(y, vn, name, &vs)))
                return e;
            if ((e = set_value(L, i, sub, vs, bg_yaml_is_null(vn), where)))
                return e;
            continue;
        }
        if (is_section(name)) {
            if (bg_yaml_is_null(vn))
                continue; /* an empty section, e.g. "topics:" */
            if (!vn || vn->type != YAML_MAPPING_NODE)
                return failf(L, where, "%s: expected a mapping, found %s", name,
                             bg_yaml_kind(vn));
            if ((e = walk_map(L, y, vn, name)))
                return e;
            continue;
        }
        return unknown_key(L, where, name);
    }
    return BG_OK;
}

static bg_err load_file(loader *L, const char *path) {
    char *text;
    size_t len;
    bg_err e = bg_yaml_read_file("config", path, CONFIG_MAX_BYTES, &text, &len, L->err, L->errsz);
    if (e)
        return e;
    bg_yaml y;
    e = bg_yaml_load(&y, path, text, len, false, L->err, L->errsz);
    if (e == BG_OK) {
        yaml_node_t *root = bg_yaml_root(&y);
        L->in_file = true;
        if (root && !bg_yaml_is_null(root)) {
            if (root->type != YAML_MAPPING_NODE)
                e = bg_yaml_fail(&y, root, "expected a mapping of keys at the top level, found %s",
                                 bg_yaml_kind(root));
            else
                e = walk_map(L, &y, root, NULL);
        }
        L->in_file = false;
        bg_yaml_free(&y);
    }
    free(text);
    return e;
}

/* ========================================================================== */
/* --set and final checks                                                     */
/* ========================================================================== */

/* Keys whose values are credentials: an error names the key, never the value. */
static bool secret_key(const char *key, size_t len) {
    static const char *const words[] = {"password", "secret", "token", "key.pem", "sasl.oauthbearer"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t wl = strlen(words[i]);
        for (size_t j = 0; j + wl <= len; j++)
            if (!strncasecmp(key + j, words[i], wl))
                return true;
    }
    return false;
}

static bg_err apply_set(loader *L, const char *arg) {
    char where[WHERE_SIZE], key[CONFIG_MAX_KEY];
    const char *eq = strchr(arg, '=');
    if (eq && secret_key(arg, (size_t)(eq - arg)))
        snprintf(where, sizeof where, "--set %.*s=(redacted)", (int)(eq - arg), arg);
    else
        snprintf(where, sizeof where, "--set %s", arg);
    if (!eq)
        return failf(L, where, "expected key=value");
    size_t klen = (size_t)(eq - arg);
    if (klen == 0)
        return failf(L, where, "empty key");
    if (klen >= sizeof key)
        return failf(L, where, "key too long");
    memcpy(key, arg, klen);
    key[klen] = '\0';
    const char *sub;
    int idx = find_key(key, &sub);
    if (idx < 0) {
        if (is_section(key))
            return failf(L, where, "'%s' is a section; set one of its keys, e.g. %s.<key>=value",
                         key, key);
        return unknown_key(L, where, key);
    }
    /* On the command line an empty value is the way to unset an optional key. */
    const char *val = eq + 1;
    return set_value(L, (size_t)idx, sub, val, !*val && !is_map_row(&cfg_keys[idx]), where);
}

static bg_err check_readable(loader *L, const char *where, const char *key, const char *path) {
    if (access(path, R_OK) != 0)
        return failf(L, where, "%s: cannot read '%s': %s", key, path, strerror(errno));
    return BG_OK;
}

static bg_err final_checks(loader *L) {
    bg_config *c = L->c;
    bg_err e;
    for (size_t i = 0; i < N_KEYS; i++) {
        const cfg_key *k = &cfg_keys[i];
        if (k->type != CT_PATH)
            continue;
        const char *p = *(char *const *)(const void *)((const char *)c + k->offset);
        if (p && (e = check_readable(L, L->where[i], k->name, p)))
            return e;
    }
    for (size_t i = 0; i < c->n_local; i++) {
        char key[64];
        snprintf(key, sizeof key, "schema_registry.local.%d", (int)c->local[i].id);
        if ((e = check_readable(L, L->local_where[i], key, c->local[i].path)))
            return e;
    }
    /* Writing verdicts onto an input topic would feed the worker its own output. */
    for (size_t i = 0; i < N_KEYS; i++) {
        if (cfg_keys[i].check != check_topic)
            continue;
        const char *ti = *(char *const *)(const void *)((const char *)c + cfg_keys[i].offset);
        for (size_t j = 0; j < i; j++) {
            if (cfg_keys[j].check != check_topic)
                continue;
            const char *tj = *(char *const *)(const void *)((const char *)c + cfg_keys[j].offset);
            if (strcmp(ti, tj) == 0)
                return failf(L, L->where[i], "%s: '%s' is also %s; every topic must be distinct",
                             cfg_keys[i].name, ti, cfg_keys[j].name);
        }
    }
    return BG_OK;
}

/* ========================================================================== */
/* Public API                                                                 */
/* ========================================================================== */

bg_err bg_config_load(const char *path, const char *const *sets, size_t n_sets, bg_config *out,
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

    loader L;
    memset(&L, 0, sizeof L);
    L.c = out;
    L.err = errstr;
    L.errsz = errstr_size;
    L.file = path;
    bg_err e = BG_OK;

    if (path) {
        const char *slash = strrchr(path, '/');
        size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
        L.dir = malloc(dlen + 1);
        out->path = dup_str(path);
        if (!L.dir || !out->path) {
            e = nomem(&L);
            goto done;
        }
        memcpy(L.dir, path, dlen);
        L.dir[dlen] = '\0';
    }

    for (size_t i = 0; i < N_KEYS && !e; i++)
        if (!is_map_row(&cfg_keys[i]))
            e = set_value(&L, i, NULL, cfg_keys[i].def ? cfg_keys[i].def : "", !cfg_keys[i].def,
                          "default");
    if (!e && path)
        e = load_file(&L, path);
    for (size_t i = 0; i < n_sets && !e; i++)
        e = sets[i] ? apply_set(&L, sets[i]) : BG_ERR_INVALID;
    if (!e)
        e = final_checks(&L);
    if (!e)
        out->exactly_once = !strcmp(out->guarantee, "exactly_once");

done:
    free(L.dir);
    free(L.local_where);
    if (e)
        bg_config_free(out);
    return e;
}

void bg_config_free(bg_config *c) {
    if (!c)
        return;
    free(c->path);
    for (size_t i = 0; i < c->n_kafka; i++) {
        free(c->kafka[i].key);
        free(c->kafka[i].value);
    }
    free(c->kafka);
    for (size_t i = 0; i < BG_TOPIC_COUNT; i++)
        free(c->topics[i]);
    free(c->registry_url);
    free(c->registry_username);
    free(c->registry_password_file);
    free(c->registry_ca_file);
    for (size_t i = 0; i < c->n_local; i++)
        free(c->local[i].path);
    free(c->local);
    free(c->policy_path);
    free(c->http_listen);
    free(c->guarantee);
    free(c->transactional_id);
    free(c->instance_id_env);
    free(c->signing_key_file);
    free(c->signing_key_id);
    free(c->alert_file);
    free(c->alert_group);
    memset(c, 0, sizeof *c);
}

const char *bg_config_kafka(const bg_config *c, const char *key) {
    if (!c || !key)
        return NULL;
    for (size_t i = 0; i < c->n_kafka; i++)
        if (strcmp(c->kafka[i].key, key) == 0)
            return c->kafka[i].value;
    return NULL;
}

const char *bg_config_instance_id(const bg_config *c) {
    const char *v = bg_config_kafka(c, "group.instance.id");
    if (v && *v)
        return v;
    if (c->instance_id_env && *c->instance_id_env) {
        v = getenv(c->instance_id_env);
        if (v && *v)
            return v;
    }
    return NULL;
}

void bg_config_print_defaults(FILE *f) {
    static const char *const type_names[] = {
        [CT_STRING] = "string", [CT_INT] = "int",   [CT_DURATION] = "duration",
        [CT_BOOL] = "bool",     [CT_PATH] = "path", [CT_KAFKA] = "map",
        [CT_SCHEMAS] = "map",
    };
    fprintf(f, "%-30s %-10s %-22s %s\n", "KEY", "TYPE", "DEFAULT", "DESCRIPTION");
    for (size_t i = 0; i < N_KEYS; i++) {
        const cfg_key *k = &cfg_keys[i];
        char name[CONFIG_MAX_KEY], range[96] = "";
        snprintf(name, sizeof name, "%s%s", k->name,
                 k->type == CT_KAFKA ? ".<property>" : k->type == CT_SCHEMAS ? ".<id>" : "");
        if (k->type == CT_INT) {
            snprintf(range, sizeof range, " (%lld..%lld)", (long long)k->min, (long long)k->max);
        } else if (k->type == CT_DURATION) {
            char a[32], b[32];
            bg_yaml_format_duration(k->min, a, sizeof a);
            bg_yaml_format_duration(k->max, b, sizeof b);
            snprintf(range, sizeof range, " (%s..%s)", a, b);
        }
        const char *def = k->def ? (*k->def ? k->def : "\"\"") : "(unset)";
        fprintf(f, "%-30s %-10s %-22s %s%s\n", name, type_names[k->type], def, k->desc, range);
    }
}
