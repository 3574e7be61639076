/* Worker configuration: one YAML file plus `--set key=value` overrides.
 *
 * Keys are described once, in the typed table in config.c (name, type,
 * default, description): the same rows parse, validate (unknown key,
 * duplicate, wrong type, out of range -> error naming file, line and key),
 * apply defaults and print documentation (bg_config_print_defaults).
 * `kafka.*` is passed through to librdkafka as-is (string values);
 * `schema_registry.local` maps schema ids to .avsc paths (relative paths are
 * resolved against the config file's directory, as is `policy`).
 *
 * Ownership: bg_config owns all its strings; bg_config_free() releases them. */
#ifndef BG_CONFIG_H
#define BG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../detectors/err.h"

typedef enum bg_topic {
    BG_TOPIC_USAGE, BG_TOPIC_SECRETS, BG_TOPIC_TOOLCALLS, BG_TOPIC_ENVELOPES,
    BG_TOPIC_VERDICTS, BG_TOPIC_REVOCATIONS, BG_TOPIC_DEADLETTER, BG_TOPIC_STATE,
    BG_TOPIC_COUNT
} bg_topic;

/* Default topic names (DESIGN.md), indexed by bg_topic. */
extern const char *const bg_topic_defaults[BG_TOPIC_COUNT];

typedef struct bg_kv {
    char *key;
    char *value;
} bg_kv;

typedef struct bg_local_schema {
    int32_t id;
    char *path; /* resolved */
} bg_local_schema;

typedef struct bg_config {
    char *path;                    /* the file loaded, NULL when none */
    bg_kv *kafka;                  /* librdkafka properties, in file order, overrides last */
    size_t n_kafka;
    char *topics[BG_TOPIC_COUNT];
    char *registry_url;            /* schema_registry.url, NULL when unset */
    char *registry_username;       /* schema_registry.username (basic auth), NULL when unset */
    char *registry_password_file;  /* schema_registry.password_file, resolved; NULL when unset */
    char *registry_ca_file;        /* schema_registry.ca_file, resolved; NULL = system CAs */
    int64_t registry_timeout_ms;   /* schema_registry.timeout_ms per request, default 5000 */
    int64_t registry_retry_max_ms; /* schema_registry.retry_max_ms backoff cap, default 30000 */
    bg_local_schema *local;        /* schema_registry.local */
    size_t n_local;
    char *policy_path;             /* policy, resolved; NULL = built-in default policy */
    char *http_listen;             /* http.listen, default "0.0.0.0:9100"; "" disables */
    /* worker.* */
    int64_t batch_max_messages;    /* worker.batch_max_messages, default 10000 */
    int64_t batch_max_ms;          /* worker.batch_max_ms, default 100 */
    int64_t shutdown_timeout_ms;   /* worker.shutdown_timeout_ms, default 10000 */
    bool dry_run;                  /* worker.dry_run: every revocation is a dry run, default false */
    char *guarantee;               /* worker.guarantee as written */
    bool exactly_once;             /* worker.guarantee: exactly_once | at_least_once (default) */
    int64_t commit_interval_ms;    /* worker.commit_interval_ms: one transaction / commit, default 1000 */
    char *transactional_id;        /* worker.transactional_id, NULL = derived (group + instance) */
    char *instance_id_env;         /* worker.instance_id_env: env var naming group.instance.id */
    /* state.* (per task: one partition of the co-partitioned inputs) */
    int64_t state_max_identities;  /* state.max_identities, 0 = unbounded */
    int64_t state_max_bytes;       /* state.max_bytes, 0 = unbounded */
    int64_t state_idle_ttl_ms;     /* state.idle_ttl, event time; 0 = never */
    bool state_changelog;          /* state.changelog: snapshots to topics.state, restore on assign */
    char *signing_key_file;        /* signing.key_file, resolved; NULL = commands unsigned */
    char *signing_key_id;          /* signing.key_id, NULL when unset */
    /* alert.* (burstguard alert) */
    char *alert_file;              /* alert.file, resolved: the sinks file; NULL when unset */
    char *alert_group;             /* alert.group_id, default "burstguard-alert" */
} bg_config;

/* Load path (NULL: defaults only), then apply each "key=value" of sets in
 * order. On error returns BG_ERR_CONFIG (or BG_ERR_IO) with one line in errstr,
 * e.g. "config.yaml:12: unknown key 'topics.usgae'". */
bg_err bg_config_load(const char *path, const char *const *sets, size_t n_sets, bg_config *out,
                      char *errstr, size_t errstr_size);
void bg_config_free(bg_config *c);
/* Value of a kafka.* property, or NULL. */
const char *bg_config_kafka(const bg_config *c, const char *key);
/* The group.instance.id in force: kafka.group.instance.id, else the value of
 * the environment variable named by worker.instance_id_env, else NULL. */
const char *bg_config_instance_id(const bg_config *c);
/* Print every key with its type, default and description. */
void bg_config_print_defaults(FILE *f);

#endif
