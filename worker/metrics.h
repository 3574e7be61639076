/* What the worker tells an operator: counters and gauges written by the
 * pipeline after each batch and rendered in the Prometheus text format by the
 * HTTP endpoint (http.c). Every metric name is in the one table in metrics.c.
 *
 * Threading: the pipeline thread writes, the HTTP thread reads; both hold
 * the mutex, the writer once per batch. */
#ifndef BG_METRICS_H
#define BG_METRICS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../detectors/event.h"

#define BG_METRICS_DL_REASONS 32   /* dead letters by bg_err value */
#define BG_METRICS_MAX_LAG 4096    /* topic-partitions whose lag is reported */
#define BG_METRICS_LAT_BUCKETS 11  /* batch latency histogram buckets (+Inf last) */

typedef struct bg_lag {
    uint8_t kind;      /* bg_event_kind of the input topic */
    int32_t partition;
    int64_t lag;       /* messages behind the high watermark */
} bg_lag;

typedef struct bg_restore_gauge {
    int32_t partition;
    int64_t remaining; /* changelog records still to read; 0 once restored */
} bg_restore_gauge;

typedef struct bg_metrics {
    pthread_mutex_t mu;
    /* counters */
    uint64_t events[BG_EV_KIND_COUNT];
    uint64_t deadletters[BG_METRICS_DL_REASONS];
    uint64_t verdicts[3][4]; /* classification x action */
    uint64_t revocations;
    uint64_t batches;
    uint64_t envelopes_applied, envelopes_rejected;
    uint64_t reloads_ok, reloads_rejected;
    uint64_t late_events;
    uint64_t lat_buckets[BG_METRICS_LAT_BUCKETS]; /* cumulative, Prometheus style */
    double lat_sum;                               /* seconds */
    uint64_t restored_identities, snapshots_refused;
    uint64_t evicted_bound, evicted_idle;
    uint64_t changelog_snapshots, changelog_tombstones;
    uint64_t replay_skipped;      /* input already held by a restored snapshot */
    uint64_t txn_commits, txn_aborts;
    /* gauges */
    uint64_t identities;
    uint64_t state_bytes;
    uint32_t assigned;
    uint64_t envelopes_live;
    bool unsigned_envelopes; /* envelopes accepted without approver keys */
    char policy_version[17];
    bg_lag lag[BG_METRICS_MAX_LAG];
    size_t n_lag;
    bg_restore_gauge restore[BG_METRICS_MAX_LAG]; /* per assigned task */
    size_t n_restore;
    /* health */
    double last_poll;  /* monotonic seconds of the latest poll */
    bool ready;        /* joined, the envelopes table read, every assigned task restored */
    const char *topic_names[BG_EV_KIND_COUNT];
} bg_metrics;

void bg_metrics_init(bg_metrics *m, const char *const topic_names[BG_EV_KIND_COUNT]);
void bg_metrics_destroy(bg_metrics *m);
/* Record one batch's processing time, seconds (caller holds the mutex). */
void bg_metrics_observe_batch(bg_metrics *m, double seconds);
/* Render everything in the Prometheus text exposition format. Takes the mutex. */
void bg_metrics_render(bg_metrics *m, FILE *f);
double bg_metrics_now(void);

#endif
