/* The pipeline: consume -> decode -> route to identity -> detect/decide ->
 * emit -> commit, composed in one loop (pipeline.c). Each stage lives in its
 * own file: consume.c, codec.c, the engine in detectors/, emit.c.
 *
 * One batch at a time: poll up to worker.batch_max_messages (or
 * worker.batch_max_ms), decode and apply every message, emit the outputs and
 * wait for their acknowledgement; offsets are committed once per
 * worker.commit_interval_ms, after the changelog (pipeline.c).
 *
 * Policy reload: on *reload (SIGHUP) or when the policy file changes (checked
 * once a second: mtime, inode, size, so a Kubernetes ConfigMap's symlink swap
 * counts), the file is loaded and validated; a valid policy replaces the old
 * one between batches in every task, an invalid one is rejected with a log
 * line and the old one stays.
 *
 * Schema Registry: before a message is decoded, an id the codec does not know
 * is fetched from the registry (when one is configured). While the registry
 * is unreachable the fetch is retried with backoff and the batch waits:
 * nothing is dead-lettered and no offset moves; SIGTERM still stops it (the
 * batch is then not committed). An id the registry does not have, or whose
 * schema is invalid, is a dead letter (unknown_schema, schema). */
#ifndef BG_PIPELINE_H
#define BG_PIPELINE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "../detectors/policy.h"
#include "codec.h"
#include "config.h"
#include "metrics.h"
#include "registry.h"

typedef struct bg_pipeline_opts {
    const bg_config *cfg;
    const bg_policy *policy;
    bg_codec *codec;
    bg_registry *registry;             /* writer schemas of unknown ids; NULL: local map only */
    const char *group_id;              /* NULL: kafka.group.id */
    volatile sig_atomic_t *stop;       /* set asynchronously to stop after the current batch */
    volatile sig_atomic_t *reload;     /* set asynchronously (SIGHUP) to reload the policy; may be NULL */
    int64_t idle_exit_ms;              /* > 0: return once no input arrived for this long */
    int startup_timeout_ms;            /* broker reachability check */
    bg_metrics *metrics;               /* updated after each batch; NULL for none */
} bg_pipeline_opts;

#define BG_DL_REASONS 32 /* dead letters counted by bg_err value */

typedef struct bg_pipeline_stats {
    uint64_t events[BG_EV_KIND_COUNT]; /* decoded and applied */
    uint64_t deadletters[BG_DL_REASONS];
    uint64_t deadletters_total;
    uint64_t verdicts[3];              /* by bg_class */
    uint64_t verdicts_by[3][4];        /* by bg_class x bg_action */
    uint64_t revocations;
    uint64_t batches;
    uint64_t restored;                 /* identities restored from the changelog */
    uint64_t snapshots_refused;        /* changelog records refused */
    uint64_t replay_skipped;           /* input a restored snapshot already held */
    uint64_t changelog_snapshots, changelog_tombstones;
    uint64_t txn_commits, txn_aborts;
    double busy_s;                     /* wall time from the first to the last message */
} bg_pipeline_stats;

/* Runs until *stop, idle exit or a fatal error. Returns BG_OK after a clean
 * shutdown (outputs flushed, offsets committed); otherwise the error with one
 * line in errstr. */
bg_err bg_pipeline_run(const bg_pipeline_opts *o, bg_pipeline_stats *st, char *errstr,
                       size_t errstr_size);

#endif
