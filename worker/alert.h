/* The alert sink (`burstguard alert`): consumes nhi.verdicts.v1 as its own
 * consumer group and posts the verdicts that match each sink's filters to
 * that sink's webhook, as generic JSON, a Slack message or a PagerDuty
 * Events v2 trigger.
 *
 * Delivery is at least once towards the webhook and at most once per process
 * per sink: a bounded set of recent verdict_ids suppresses redeliveries, and
 * every POST carries the verdict_id as Idempotency-Key so receivers can
 * dedup across restarts. A verdict's offset is stored (and auto-committed)
 * only after every matching sink accepted it (2xx) or refused it permanently
 * (4xx other than 408/429: logged, counted, skipped). Network errors, 5xx,
 * 408 and 429 are retried with exponential backoff (Retry-After honoured);
 * after max_attempts the sink logs an error, pauses and tries the same
 * verdict again: it is never silently dropped.
 *
 * Ownership: bg_alert_sinks owns everything it holds; json_t values follow
 * jansson's reference counting (functions returning one give a new
 * reference). The command itself, bg_alert_main, is declared in cli.h. */
#ifndef BG_ALERT_H
#define BG_ALERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "../detectors/err.h"

/* --- sinks file ------------------------------------------------------------- */

typedef enum bg_alert_format { BG_ALERT_JSON, BG_ALERT_SLACK, BG_ALERT_PAGERDUTY } bg_alert_format;

#define BG_ALERT_MAX_SINKS 32u
#define BG_ALERT_MAX_FILTER 64u /* entries per filter list */

typedef struct bg_alert_filter {
    int classifications;               /* bit mask of bg_class; 0 = any */
    int actions;                       /* bit mask of bg_action; 0 = any */
    int32_t min_severity;              /* 0..100; 0 = any */
    char *owners[BG_ALERT_MAX_FILTER]; /* empty = any; otherwise owner must be one of them */
    size_t n_owners;
} bg_alert_filter;

typedef struct bg_alert_sink {
    char *name;
    char *url;
    bg_alert_format format;
    bg_alert_filter filter;
    char *routing_key;    /* pagerduty only: read from routing_key_file */
    int64_t timeout_ms;   /* per request, default 5s */
    int64_t max_attempts; /* before the sink pauses, default 5 */
    int64_t backoff_ms;   /* first retry delay, doubled per attempt, default 500ms */
    int64_t pause_ms;     /* pause after max_attempts, default 30s */
} bg_alert_sink;

typedef struct bg_alert_sinks {
    bg_alert_sink sinks[BG_ALERT_MAX_SINKS];
    size_t n;
} bg_alert_sinks;

/* Parse the sinks file (YAML, see README "Alert sink"). Unknown keys, bad
 * values and missing required keys -> BG_ERR_CONFIG with "FILE:LINE:COL:
 * message" in errstr; unreadable files -> BG_ERR_IO. routing_key_file paths
 * are relative to the file's directory. */
bg_err bg_alert_sinks_load(const char *path, bg_alert_sinks *out, char *errstr, size_t errstr_size);
void bg_alert_sinks_free(bg_alert_sinks *s);

/* --- verdicts and payloads ---------------------------------------------------- */

/* Decode a framed Verdict into the generic JSON object (the payload of the
 * json format). BG_ERR_BAD_MAGIC / TRUNCATED / MALFORMED on bad input. */
bg_err bg_alert_verdict_json(const void *buf, size_t len, json_t **out);
bool bg_alert_match(const bg_alert_filter *f, const json_t *verdict);
/* The body to POST for sink s (malloc'd, NUL-terminated). */
bg_err bg_alert_payload(const bg_alert_sink *s, const json_t *verdict, char **body);
/* PagerDuty severity for a verdict: critical, error, warning or info. */
const char *bg_alert_pd_severity(const json_t *verdict);

/* --- dedup -------------------------------------------------------------------- */

/* A set of the last `cap` ids added (FIFO eviction). */
typedef struct bg_alert_dedup bg_alert_dedup;
bg_err bg_alert_dedup_new(size_t cap, bg_alert_dedup **out);
void bg_alert_dedup_free(bg_alert_dedup *d);
bool bg_alert_dedup_has(const bg_alert_dedup *d, const char *id);
/* Add id (no-op when present); evicts the oldest id when full. */
bg_err bg_alert_dedup_add(bg_alert_dedup *d, const char *id);
size_t bg_alert_dedup_size(const bg_alert_dedup *d);

#endif
