/* `burstguard run --config FILE [--brokers LIST] [--group ID] [--set key=value]...`
 *
 * SIGHUP reloads the policy (so does a change of its file); an invalid
 * policy is rejected and the old one stays.
 * SIGTERM/SIGINT stop polling; the current batch is finished, outputs are
 * flushed and offsets committed, then the consumer closes. A watchdog ends
 * the process with exit code 1 if that takes longer than
 * worker.shutdown_timeout_ms plus a grace period, so a stuck broker cannot
 * hang a pod's termination. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "http.h"
#include "log.h"
#include "pipeline.h"
#include "setup.h"

static volatile sig_atomic_t stop_flag, reload_flag;
static void on_signal(int sig) {
    if (sig == SIGHUP)
        reload_flag = 1;
    else
        stop_flag = 1;
}

static void *watchdog(void *arg) {
    int64_t limit_ms = *(int64_t *)arg + 5000;
    while (!stop_flag)
        usleep(50000);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        usleep(50000);
        clock_gettime(CLOCK_MONOTONIC, &t);
        int64_t ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms > limit_ms) {
            bg_error("shutdown took longer than %lld ms: exiting without a clean close",
                     (long long)limit_ms);
            _exit(1);
        }
    }
    return NULL;
}

int bg_run_main(int argc, char **argv) {
    bg_cli_args args;
    int rc0 = bg_cli_config_args("run",
                                 "usage: burstguard run --config FILE [--brokers LIST] [--group ID] "
                                 "[--set key=value]...",
                                 true, argc, argv, &args);
    if (rc0 >= 0)
        return rc0;
    const char *group = args.group;

    char errstr[1024];
    bg_config cfg;
    bg_err err = bg_config_load(args.config, args.sets, args.n_sets, &cfg, errstr, sizeof errstr);
    if (err) {
        fprintf(stderr, "burstguard: %s\n", errstr);
        return 2;
    }
    bg_policy policy;
    err = bg_setup_policy(&cfg, &policy, errstr, sizeof errstr);
    if (err) {
        fprintf(stderr, "burstguard: %s\n", errstr);
        bg_config_free(&cfg);
        return 2;
    }
    bg_codec *codec;
    err = bg_setup_codec(&cfg, &codec, errstr, sizeof errstr);
    if (err) {
        fprintf(stderr, "burstguard: %s\n", errstr);
        bg_policy_free(&policy);
        bg_config_free(&cfg);
        return 2;
    }
    bg_registry *registry;
    err = bg_registry_from_config(&cfg, &registry, errstr, sizeof errstr);
    if (err) {
        fprintf(stderr, "burstguard: %s\n", errstr);
        bg_codec_free(codec);
        bg_policy_free(&policy);
        bg_config_free(&cfg);
        return err == BG_ERR_CONFIG ? 2 : 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    pthread_t wd;
    int64_t limit = cfg.shutdown_timeout_ms;
    pthread_create(&wd, NULL, watchdog, &limit);
    pthread_detach(wd);

    bg_info("burstguard %s starting: policy %s, group %s", BG_VERSION, policy.version,
            group ? group : (bg_config_kafka(&cfg, "group.id") ? bg_config_kafka(&cfg, "group.id")
                                                              : "burstguard"));
    bg_metrics metrics;
    const char *names[BG_EV_KIND_COUNT] = {cfg.topics[BG_TOPIC_USAGE], cfg.topics[BG_TOPIC_SECRETS],
                                           cfg.topics[BG_TOPIC_TOOLCALLS],
                                           cfg.topics[BG_TOPIC_ENVELOPES]};
    bg_metrics_init(&metrics, names);
    metrics.unsigned_envelopes = policy.n_approvers == 0; /* until the first batch updates it */
    bg_http *http = NULL;
    if (cfg.http_listen && *cfg.http_listen) {
        if (bg_http_start(cfg.http_listen, &metrics, &http, errstr, sizeof errstr)) {
            fprintf(stderr, "burstguard: %s\n", errstr);
            bg_metrics_destroy(&metrics);
            bg_registry_free(registry);
            bg_codec_free(codec);
            bg_policy_free(&policy);
            bg_config_free(&cfg);
            return 1;
        }
        bg_info("serving /metrics /healthz /readyz on port %u", bg_http_port(http));
    }
    bg_pipeline_opts o = {.cfg = &cfg,
                          .metrics = &metrics,
                          .policy = &policy,
                          .codec = codec,
                          .registry = registry,
                          .group_id = group,
                          .stop = &stop_flag,
                          .reload = &reload_flag,
                          .startup_timeout_ms = 10000};
    bg_pipeline_stats st;
    err = bg_pipeline_run(&o, &st, errstr, sizeof errstr);
    bg_info("processed usage=%llu secrets=%llu toolcalls=%llu dead_letters=%llu verdicts "
            "planned=%llu unexpected=%llu anomalous=%llu revocations=%llu",
            (unsigned long long)st.events[BG_EV_USAGE], (unsigned long long)st.events[BG_EV_SECRET],
            (unsigned long long)st.events[BG_EV_TOOLCALL],
            (unsigned long long)st.deadletters_total, (unsigned long long)st.verdicts[0],
            (unsigned long long)st.verdicts[1], (unsigned long long)st.verdicts[2],
            (unsigned long long)st.revocations);
    bg_info("state: restored=%llu refused=%llu replay_skipped=%llu snapshots=%llu "
            "tombstones=%llu transactions committed=%llu aborted=%llu",
            (unsigned long long)st.restored, (unsigned long long)st.snapshots_refused,
            (unsigned long long)st.replay_skipped, (unsigned long long)st.changelog_snapshots,
            (unsigned long long)st.changelog_tombstones, (unsigned long long)st.txn_commits,
            (unsigned long long)st.txn_aborts);
    bg_http_stop(http);
    bg_metrics_destroy(&metrics);
    int rc = 0;
    if (err) {
        fprintf(stderr, "burstguard: %s\n", errstr);
        rc = err == BG_ERR_CONFIG ? 2 : 1;
    }
    bg_registry_free(registry);
    bg_codec_free(codec);
    bg_policy_free(&policy);
    bg_config_free(&cfg);
    return rc;
}
