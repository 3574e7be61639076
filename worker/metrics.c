/* Metrics (see metrics.h): one table of names, types and help texts; the
 * renderer walks it. */
#include "metrics.h"

#include <string.h>
#include <time.h>

#include "../detectors/err.h"
#include "../detectors/verdict.h"

static const double lat_bounds[BG_METRICS_LAT_BUCKETS - 1] = {0.001, 0.005, 0.01, 0.025, 0.05,
                                                              0.1,   0.25,  0.5,  1.0,   2.5};

typedef enum metric_id {
    M_EVENTS, M_DEADLETTERS, M_VERDICTS, M_REVOCATIONS, M_BATCHES, M_BATCH_SECONDS,
    M_LATE, M_LAG, M_ASSIGNED, M_IDENTITIES, M_STATE_BYTES, M_ENV_LIVE, M_ENV_APPLIED,
    M_ENV_REJECTED, M_ENV_UNSIGNED, M_POLICY, M_RELOADS, M_READY, M_RESTORE_REMAINING,
    M_RESTORED, M_REFUSED, M_EVICTIONS, M_CHANGELOG, M_REPLAY_SKIPPED, M_TXN, M_COUNT
} metric_id;

static const struct {
    const char *name, *type, *help;
} table[M_COUNT] = {
    [M_EVENTS] = {"burstguard_events_total", "counter", "input events decoded and applied, by topic"},
    [M_DEADLETTERS] = {"burstguard_dead_letters_total", "counter",
                       "messages sent to the dead-letter topic, by reason"},
    [M_VERDICTS] = {"burstguard_verdicts_total", "counter",
                    "verdicts published, by classification and action"},
    [M_REVOCATIONS] = {"burstguard_revocations_total", "counter", "revocation commands published"},
    [M_BATCHES] = {"burstguard_batches_total", "counter", "batches processed"},
    [M_BATCH_SECONDS] = {"burstguard_batch_seconds", "histogram",
                         "time from a batch's poll to its outputs acknowledged"},
    [M_LATE] = {"burstguard_late_events_total", "counter",
                "events older than the watermark (applied to the current bucket)"},
    [M_LAG] = {"burstguard_consumer_lag", "gauge",
               "messages between the last one received and the high watermark, by partition"},
    [M_ASSIGNED] = {"burstguard_assigned_partitions", "gauge", "input topic-partitions assigned"},
    [M_IDENTITIES] = {"burstguard_identities", "gauge", "identities held in the stores"},
    [M_STATE_BYTES] = {"burstguard_state_bytes", "gauge",
                       "bytes of identity state (refreshed every 10 s)"},
    [M_ENV_LIVE] = {"burstguard_envelopes_live", "gauge", "envelopes from the envelopes topic"},
    [M_ENV_APPLIED] = {"burstguard_envelopes_applied_total", "counter",
                       "envelope records applied"},
    [M_ENV_REJECTED] = {"burstguard_envelopes_rejected_total", "counter",
                        "envelope records refused (dead-lettered)"},
    [M_ENV_UNSIGNED] = {"burstguard_envelopes_unsigned_accepted", "gauge",
                        "1 when envelopes are accepted without approver signatures"},
    [M_POLICY] = {"burstguard_policy_info", "gauge", "the policy in force"},
    [M_RELOADS] = {"burstguard_policy_reloads_total", "counter", "policy reloads, by result"},
    [M_READY] = {"burstguard_ready", "gauge",
                 "1 once the member has its assignment, every task is restored and it consumes"},
    [M_RESTORE_REMAINING] = {"burstguard_restore_remaining_records", "gauge",
                             "changelog records still to read before the task consumes, by partition (0: restored)"},
    [M_RESTORED] = {"burstguard_restored_identities_total", "counter",
                    "identities restored from the changelog"},
    [M_REFUSED] = {"burstguard_snapshots_refused_total", "counter",
                   "changelog records refused as corrupt or of an unknown format (skipped)"},
    [M_EVICTIONS] = {"burstguard_evictions_total", "counter",
                     "identities evicted from the stores, by reason (bound: max_identities/max_bytes, idle: idle_ttl)"},
    [M_CHANGELOG] = {"burstguard_changelog_records_total", "counter",
                     "changelog records produced, by kind (snapshot, tombstone)"},
    [M_REPLAY_SKIPPED] = {"burstguard_replay_skipped_total", "counter",
                          "input events read again that a restored snapshot already held (not applied twice)"},
    [M_TXN] = {"burstguard_transactions_total", "counter",
               "exactly-once transactions, by result (commit, abort)"},
};

double bg_metrics_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bg_metrics_init(bg_metrics *m, const char *const topic_names[BG_EV_KIND_COUNT]) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    for (int k = 0; k < BG_EV_KIND_COUNT; k++)
        m->topic_names[k] = topic_names[k];
    m->last_poll = bg_metrics_now();
}

void bg_metrics_destroy(bg_metrics *m) { pthread_mutex_destroy(&m->mu); }

void bg_metrics_observe_batch(bg_metrics *m, double seconds) {
    for (int i = 0; i < BG_METRICS_LAT_BUCKETS; i++)
        if (i == BG_METRICS_LAT_BUCKETS - 1 || seconds <= lat_bounds[i])
            m->lat_buckets[i]++;
    m->lat_sum += seconds;
}

static void head(FILE *f, metric_id id) {
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", table[id].name, table[id].help, table[id].name,
            table[id].type);
}

void bg_metrics_render(bg_metrics *m, FILE *f) {
    pthread_mutex_lock(&m->mu);
    head(f, M_EVENTS);
    for (int k = 0; k < 3; k++)
        fprintf(f, "%s{topic=\"%s\"} %llu\n", table[M_EVENTS].name, m->topic_names[k],
                (unsigned long long)m->events[k]);
    head(f, M_DEADLETTERS);
    for (int r = 0; r < BG_METRICS_DL_REASONS; r++)
        if (m->deadletters[r])
            fprintf(f, "%s{reason=\"%s\"} %llu\n", table[M_DEADLETTERS].name,
                    bg_err_name((bg_err)r), (unsigned long long)m->deadletters[r]);
    head(f, M_VERDICTS);
    for (int c = 0; c < 3; c++)
        for (int a = 0; a < 4; a++)
            fprintf(f, "%s{classification=\"%s\",action=\"%s\"} %llu\n", table[M_VERDICTS].name,
                    bg_class_name((bg_class)c), bg_action_name((bg_action)a),
                    (unsigned long long)m->verdicts[c][a]);
    head(f, M_REVOCATIONS);
    fprintf(f, "%s %llu\n", table[M_REVOCATIONS].name, (unsigned long long)m->revocations);
    head(f, M_BATCHES);
    fprintf(f, "%s %llu\n", table[M_BATCHES].name, (unsigned long long)m->batches);
    head(f, M_BATCH_SECONDS);
    for (int i = 0; i < BG_METRICS_LAT_BUCKETS; i++) {
        if (i < BG_METRICS_LAT_BUCKETS - 1)
            fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", table[M_BATCH_SECONDS].name, lat_bounds[i],
                    (unsigned long long)m->lat_buckets[i]);
        else
            fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", table[M_BATCH_SECONDS].name,
                    (unsigned long long)m->lat_buckets[i]);
    }
    fprintf(f, "%s_sum %.6f\n%s_count %llu\n", table[M_BATCH_SECONDS].name, m->lat_sum,
            table[M_BATCH_SECONDS].name,
            (unsigned long long)m->lat_buckets[BG_METRICS_LAT_BUCKETS - 1]);
    head(f, M_LATE);
    fprintf(f, "%s %llu\n", table[M_LATE].name, (unsigned long long)m->late_events);
    head(f, M_LAG);
    for (size_t i = 0; i < m->n_lag; i++)
        fprintf(f, "%s{topic=\"%s\",partition=\"%d\"} %lld\n", table[M_LAG].name,
                m->topic_names[m->lag[i].kind], m->lag[i].partition, (long long)m->lag[i].lag);
    head(f, M_ASSIGNED);
    fprintf(f, "%s %u\n", table[M_ASSIGNED].name, m->assigned);
    head(f, M_IDENTITIES);
    fprintf(f, "%s %llu\n", table[M_IDENTITIES].name, (unsigned long long)m->identities);
    head(f, M_STATE_BYTES);
    fprintf(f, "%s %llu\n", table[M_STATE_BYTES].name, (unsigned long long)m->state_bytes);
    head(f, M_ENV_LIVE);
    fprintf(f, "%s %llu\n", table[M_ENV_LIVE].name, (unsigned long long)m->envelopes_live);
    head(f, M_ENV_APPLIED);
    fprintf(f, "%s %llu\n", table[M_ENV_APPLIED].name, (unsigned long long)m->envelopes_applied);
    head(f, M_ENV_REJECTED);
    fprintf(f, "%s %llu\n", table[M_ENV_REJECTED].name, (unsigned long long)m->envelopes_rejected);
    head(f, M_ENV_UNSIGNED);
    fprintf(f, "%s %d\n", table[M_ENV_UNSIGNED].name, m->unsigned_envelopes ? 1 : 0);
    head(f, M_POLICY);
    fprintf(f, "%s{version=\"%s\"} 1\n", table[M_POLICY].name, m->policy_version);
    head(f, M_RELOADS);
    fprintf(f, "%s{result=\"ok\"} %llu\n%s{result=\"rejected\"} %llu\n", table[M_RELOADS].name,
            (unsigned long long)m->reloads_ok, table[M_RELOADS].name,
            (unsigned long long)m->reloads_rejected);
    head(f, M_READY);
    fprintf(f, "%s %d\n", table[M_READY].name, m->ready ? 1 : 0);
    head(f, M_RESTORE_REMAINING);
    for (size_t i = 0; i < m->n_restore; i++)
        fprintf(f, "%s{partition=\"%d\"} %lld\n", table[M_RESTORE_REMAINING].name,
                m->restore[i].partition, (long long)m->restore[i].remaining);
    head(f, M_RESTORED);
    fprintf(f, "%s %llu\n", table[M_RESTORED].name, (unsigned long long)m->restored_identities);
    head(f, M_REFUSED);
    fprintf(f, "%s %llu\n", table[M_REFUSED].name, (unsigned long long)m->snapshots_refused);
    head(f, M_EVICTIONS);
    fprintf(f, "%s{reason=\"bound\"} %llu\n%s{reason=\"idle\"} %llu\n", table[M_EVICTIONS].name,
            (unsigned long long)m->evicted_bound, table[M_EVICTIONS].name,
            (unsigned long long)m->evicted_idle);
    head(f, M_CHANGELOG);
    fprintf(f, "%s{kind=\"snapshot\"} %llu\n%s{kind=\"tombstone\"} %llu\n",
            table[M_CHANGELOG].name, (unsigned long long)m->changelog_snapshots,
            table[M_CHANGELOG].name, (unsigned long long)m->changelog_tombstones);
    head(f, M_REPLAY_SKIPPED);
    fprintf(f, "%s %llu\n", table[M_REPLAY_SKIPPED].name, (unsigned long long)m->replay_skipped);
    head(f, M_TXN);
    fprintf(f, "%s{result=\"commit\"} %llu\n%s{result=\"abort\"} %llu\n", table[M_TXN].name,
            (unsigned long long)m->txn_commits, table[M_TXN].name,
            (unsigned long long)m->txn_aborts);
    pthread_mutex_unlock(&m->mu);
}
