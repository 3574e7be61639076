/* The pipeline loop (see pipeline.h).
 *
 * Tasks: partition p of the co-partitioned input topics is task p, with its
 * own engine. A task exists while at least one of its topic-partitions is
 * assigned; when the last one is revoked its engine is dropped (until the
 * changelog restores state, a re-assigned task starts cold), and messages of
 * the current batch from revoked partitions are skipped without storing their
 * offsets, so their new owner reads them. */
#include "pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../detectors/engine.h"
#include "consume.h"
#include "emit.h"
#include "envelopes.h"
#include "log.h"
#include "policy_load.h"

#define MAX_TASKS 4096 /* partitions per input topic */

#define FIFO_PAUSE 20000      /* buffered messages per input partition before it is paused */
#define TASK_IDLE_MS 500      /* how long a task waits for an input with nothing buffered */

typedef struct item {
    rd_kafka_message_t *m;
    int64_t t; /* event time; INT64_MIN when undecodable (handled at once) */
} item;

/* Messages of one input topic-partition waiting for the event-time merge. */
typedef struct fifo {
    item *v;
    size_t head, len, cap;
    int64_t next_offset;  /* offset after the last message received, -1 before any */
    double empty_since;   /* when it last ran dry (monotonic s) */
    bool paused;
} fifo;

typedef struct task {
    bg_engine *engine;
    uint8_t assigned_mask; /* bit per input kind */
    fifo in[3];            /* by input kind */
} task;

typedef struct pipe {
    const bg_pipeline_opts *o;
    task *tasks; /* indexed by partition */
    int32_t n_tasks;
    bg_consumer *consumer;
    bg_emitter *emitter;
    bg_envtable *envelopes;
    bg_outputs out;
    bg_pipeline_stats *st;
    bg_err fatal;
    size_t applied; /* messages applied in the current batch */
    const bg_policy *policy; /* in force: the caller's, or one reloaded */
    bg_policy *reloaded;     /* owned: the latest reloaded policy, or NULL */
    struct stat policy_stat; /* of the policy file when last loaded or tried */
    uint64_t reloads_ok, reloads_rejected;
    double policy_checked;   /* monotonic s of the last stat */
} pipe_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fifo_clear(fifo *f) {
    for (size_t i = 0; i < f->len; i++)
        rd_kafka_message_destroy(f->v[(f->head + i) % f->cap].m);
    free(f->v);
    memset(f, 0, sizeof *f);
    f->next_offset = -1;
}

static void on_assign(void *opaque, int kind, int32_t partition) {
    pipe_t *p = opaque;
    if (partition < 0 || partition >= p->n_tasks) {
        bg_error("partition %d beyond the %d checked at start", partition, p->n_tasks);
        return;
    }
    task *t = &p->tasks[partition];
    if (!t->engine) {
        bg_err err = bg_engine_new(p->policy, partition, &t->engine);
        if (err) {
            bg_error("cannot create the engine of task %d: %s", partition, bg_err_str(err));
            p->fatal = err;
            return;
        }
        bg_engine_set_envelopes(t->engine, bg_envtable_set(p->envelopes));
    }
    t->assigned_mask |= (uint8_t)(1u << kind);
    fifo_clear(&t->in[kind]);
    t->in[kind].empty_since = now_s();
}

static void on_revoke(void *opaque, int kind, int32_t partition, bool lost) {
    pipe_t *p = opaque;
    (void)lost;
    if (partition < 0 || partition >= p->n_tasks)
        return;
    task *t = &p->tasks[partition];
    t->assigned_mask &= (uint8_t)~(1u << kind);
    /* buffered messages are not ours any more: their offsets were not stored,
     * so the new owner reads them */
    fifo_clear(&t->in[kind]);
    if (!t->assigned_mask) {
        bg_engine_free(t->engine);
        t->engine = NULL;
    }
}

/* Add (topic, partition, offset + 1) to the store list, keeping the highest. */
static void note_offset(rd_kafka_topic_partition_list_t *l, const rd_kafka_message_t *m) {
    const char *topic = rd_kafka_topic_name(m->rkt);
    rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(l, topic, m->partition);
    if (!tp)
        tp = rd_kafka_topic_partition_list_add(l, topic, m->partition);
    if (m->offset + 1 > tp->offset)
        tp->offset = m->offset + 1;
}

static bool key_matches(const rd_kafka_message_t *m, bg_str identity) {
    return m->key_len == identity.len && memcmp(m->key, identity.ptr, identity.len) == 0;
}

/* Make the message's schema id known to the codec (a Schema Registry fetch,
 * waiting out an unreachable registry). BG_OK when decoding can go ahead,
 * which includes framing errors that decoding reports itself;
 * BG_ERR_UNKNOWN_SCHEMA or BG_ERR_SCHEMA with why for a dead letter; any
 * other error is fatal for the batch (stopped while waiting). */
static bg_err ensure_schema(pipe_t *p, const rd_kafka_message_t *m, char *why, size_t ws) {
    int32_t id;
    if (!p->o->registry || bg_codec_frame_id(m->payload, m->len, &id) ||
        bg_codec_has_schema(p->o->codec, id))
        return BG_OK;
    bg_err err = bg_registry_resolve(p->o->registry, p->o->codec, id, p->o->stop, why, ws);
    if (err && err != BG_ERR_UNKNOWN_SCHEMA && err != BG_ERR_SCHEMA)
        bg_error("%s schema id %d (%s); the batch is not committed",
                 err == BG_ERR_NOMEM ? "out of memory resolving" : "stopped while waiting for",
                 (int)id, why);
    return err;
}

/* Decode and apply one message; dead-letter it when it cannot be. */
static bg_err process(pipe_t *p, int kind, rd_kafka_message_t *m,
                      rd_kafka_topic_partition_list_t *store) {
    bg_event ev;
    char why[256];
    bg_err err = ensure_schema(p, m, why, sizeof why);
    if (err && err != BG_ERR_UNKNOWN_SCHEMA && err != BG_ERR_SCHEMA)
        return err;
    note_offset(store, m);
    if (!err)
        err = bg_codec_decode_event(p->o->codec, (bg_event_kind)kind, m->payload, m->len, &ev,
                                    why, sizeof why);
    if (!err && !m->key) {
        err = BG_ERR_NO_KEY;
        snprintf(why, sizeof why, "message has no key (expected the identity)");
    } else if (!err && !key_matches(m, ev.identity)) {
        err = BG_ERR_KEY_MISMATCH;
        snprintf(why, sizeof why, "key (%zu bytes) differs from identity '%.*s'", m->key_len,
                 (int)(ev.identity.len > 200 ? 200 : ev.identity.len), ev.identity.ptr);
    }
    if (!err) {
        err = bg_engine_observe(p->tasks[m->partition].engine, &ev, m->offset, &p->out);
        if (!err) {
            p->st->events[kind]++;
            return BG_OK;
        }
        if (err == BG_ERR_NOMEM)
            return err;
        snprintf(why, sizeof why, "engine refused the event: %s", bg_err_str(err));
    }
    unsigned r = (unsigned)err < BG_DL_REASONS ? (unsigned)err : BG_DL_REASONS - 1;
    p->st->deadletters[r]++;
    p->st->deadletters_total++;
    bg_debug("dead letter %s[%d]@%lld: %s", rd_kafka_topic_name(m->rkt), m->partition,
             (long long)m->offset, why);
    return bg_emitter_deadletter(p->emitter, m, err, why);
}

static bool fifo_push(fifo *f, rd_kafka_message_t *m, int64_t t) {
    if (f->len == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 256;
        item *nv = malloc(ncap * sizeof *nv);
        if (!nv)
            return false;
        for (size_t i = 0; i < f->len; i++)
            nv[i] = f->v[(f->head + i) % f->cap];
        free(f->v);
        f->v = nv;
        f->head = 0;
        f->cap = ncap;
    }
    f->v[(f->head + f->len++) % f->cap] = (item){m, t};
    f->next_offset = m->offset + 1;
    return true;
}

static item fifo_pop(fifo *f) {
    item it = f->v[f->head];
    f->head = (f->head + 1) % f->cap;
    f->len--;
    return it;
}

/* Route one consumed message into its task's input buffer. The event time is
 * read by a first decode; undecodable messages are handled as soon as they
 * reach the head of their buffer (they still keep their partition's order). */
static bg_err route(pipe_t *p, rd_kafka_message_t *m) {
    int kind = bg_consumer_kind(p->consumer, m);
    if (kind < 0 || m->partition < 0 || m->partition >= p->n_tasks ||
        !p->tasks[m->partition].engine || !(p->tasks[m->partition].assigned_mask & (1u << kind))) {
        rd_kafka_message_destroy(m); /* revoked meanwhile: not ours, not stored */
        return BG_OK;
    }
    bg_event ev;
    char why[256];
    int64_t t = INT64_MIN;
    bg_err serr = ensure_schema(p, m, why, sizeof why);
    if (serr && serr != BG_ERR_UNKNOWN_SCHEMA && serr != BG_ERR_SCHEMA) {
        rd_kafka_message_destroy(m); /* not stored: read again after a restart */
        return serr;
    }
    if (!serr && !bg_codec_decode_event(p->o->codec, (bg_event_kind)kind, m->payload, m->len,
                                        &ev, why, sizeof why))
        t = ev.event_time;
    fifo *f = &p->tasks[m->partition].in[kind];
    if (!fifo_push(f, m, t)) {
        rd_kafka_message_destroy(m);
        return BG_ERR_NOMEM;
    }
    if (!f->paused && f->len >= FIFO_PAUSE) {
        bg_consumer_pause(p->consumer, kind, m->partition, true);
        f->paused = true;
    }
    return BG_OK;
}

/* The event-time merge of one task: always apply the buffered message with
 * the smallest event time; when an input has nothing buffered and is not
 * known to be caught up, wait up to TASK_IDLE_MS for it before moving on. */
static bg_err drain(pipe_t *p, int32_t part, rd_kafka_topic_partition_list_t *store,
                    double now) {
    task *t = &p->tasks[part];
    for (;;) {
        int best = -1;
        bool wait = false;
        for (int k = 0; k < 3; k++) {
            fifo *f = &t->in[k];
            if (f->len == 0) {
                if ((t->assigned_mask & (1u << k)) &&
                    !bg_consumer_caught_up(p->consumer, k, part, f->next_offset) &&
                    (now - f->empty_since) * 1000.0 < TASK_IDLE_MS)
                    wait = true;
                continue;
            }
            if (best < 0 || f->v[f->head].t < t->in[best].v[t->in[best].head].t)
                best = k;
        }
        if (best < 0)
            return BG_OK;
        /* an undecodable head goes at once; otherwise respect a waiting input */
        if (wait && t->in[best].v[t->in[best].head].t != INT64_MIN)
            return BG_OK;
        fifo *f = &t->in[best];
        item it = fifo_pop(f);
        if (f->len == 0)
            f->empty_since = now;
        if (f->paused && f->len < FIFO_PAUSE / 2) {
            bg_consumer_pause(p->consumer, best, part, false);
            f->paused = false;
        }
        bg_err err = process(p, best, it.m, store);
        rd_kafka_message_destroy(it.m);
        if (err)
            return err;
        p->applied++;
    }
}

static size_t buffered(const pipe_t *p) {
    size_t n = 0;
    for (int32_t i = 0; i < p->n_tasks; i++)
        for (int k = 0; k < 3; k++)
            n += p->tasks[i].in[k].len;
    return n;
}

static void envelope_rejected(void *opaque, const rd_kafka_message_t *m, bg_err reason,
                              const char *why) {
    pipe_t *p = opaque;
    unsigned r = (unsigned)reason < BG_DL_REASONS ? (unsigned)reason : BG_DL_REASONS - 1;
    p->st->deadletters[r]++;
    p->st->deadletters_total++;
    if (bg_emitter_deadletter(p->emitter, m, reason, why) && !p->fatal)
        p->fatal = BG_ERR_KAFKA;
}

static bool same_file(const struct stat *a, const struct stat *b) {
    return a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Reload the policy when asked (SIGHUP) or when its file changed. */
static void maybe_reload(pipe_t *p, double now) {
    const char *path = p->o->cfg->policy_path;
    if (!path)
        return;
    bool asked = p->o->reload && *p->o->reload;
    if (!asked && now - p->policy_checked < 1.0)
        return;
    p->policy_checked = now;
    struct stat st;
    if (stat(path, &st) != 0) {
        if (asked)
            bg_error("policy reload: cannot read '%s'; keeping version %s", path,
                     p->policy->version);
        if (p->o->reload)
            *p->o->reload = 0;
        return;
    }
    if (!asked && same_file(&st, &p->policy_stat))
        return;
    if (p->o->reload)
        *p->o->reload = 0;
    p->policy_stat = st;
    bg_policy *np = malloc(sizeof *np);
    char errstr[1024];
    if (!np) {
        bg_error("policy reload: out of memory; keeping version %s", p->policy->version);
        return;
    }
    if (bg_policy_load(path, np, errstr, sizeof errstr)) {
        bg_error("policy reload rejected, keeping version %s: %s", p->policy->version, errstr);
        p->reloads_rejected++;
        free(np);
        return;
    }
    if (!strcmp(np->version, p->policy->version)) {
        bg_policy_free(np);
        free(np);
        return;
    }
    for (int32_t t = 0; t < p->n_tasks; t++)
        if (p->tasks[t].engine)
            bg_engine_set_policy(p->tasks[t].engine, np);
    bg_envtable_set_policy(p->envelopes, np);
    bg_info("policy reloaded from %s: version %s -> %s", path, p->policy->version, np->version);
    p->reloads_ok++;
    if (p->reloaded) {
        bg_policy_free(p->reloaded);
        free(p->reloaded);
    }
    p->reloaded = np;
    p->policy = np;
}

/* Publish the batch's effect to the metrics (once per batch). */
static void update_metrics(pipe_t *p, double batch_s, double now) {
    bg_metrics *m = p->o->metrics;
    if (!m)
        return;
    static double bytes_at;
    bool bytes = now - bytes_at >= 10.0;
    uint64_t state_bytes = 0;
    bg_engine_stats es;
    uint64_t ids = 0, late = 0;
    for (int32_t t = 0; t < p->n_tasks; t++)
        if (p->tasks[t].engine) {
            bg_engine_stats_get(p->tasks[t].engine, &es);
            ids += es.identities;
            late += es.late_events;
            if (bytes)
                state_bytes += bg_engine_state_bytes(p->tasks[t].engine);
        }
    bg_envtable_stats ets;
    bg_envtable_stats_get(p->envelopes, &ets);
    pthread_mutex_lock(&m->mu);
    memcpy(m->events, p->st->events, sizeof m->events);
    for (int r = 0; r < BG_DL_REASONS && r < BG_METRICS_DL_REASONS; r++)
        m->deadletters[r] = p->st->deadletters[r];
    memcpy(m->verdicts, p->st->verdicts_by, sizeof m->verdicts);
    m->revocations = p->st->revocations;
    m->batches = p->st->batches;
    if (batch_s >= 0)
        bg_metrics_observe_batch(m, batch_s);
    m->identities = ids;
    m->late_events += late > m->late_events ? late - m->late_events : 0;
    if (bytes) {
        m->state_bytes = state_bytes;
        bytes_at = now;
    }
    m->envelopes_live = bg_envset_count(bg_envtable_set(p->envelopes));
    m->envelopes_applied = ets.applied;
    m->envelopes_rejected = ets.rejected;
    memcpy(m->policy_version, p->policy->version, sizeof m->policy_version);
    m->unsigned_envelopes = p->policy->n_approvers == 0; /* follows reloads */
    m->reloads_ok = p->reloads_ok;
    m->reloads_rejected = p->reloads_rejected;
    m->n_lag = 0;
    uint32_t assigned = 0;
    for (int32_t t = 0; t < p->n_tasks; t++)
        for (int k = 0; k < 3; k++) {
            if (!(p->tasks[t].assigned_mask & (1u << k)))
                continue;
            assigned++;
            int64_t lag = bg_consumer_lag(p->consumer, k, t, p->tasks[t].in[k].next_offset);
            if (lag >= 0 && m->n_lag < BG_METRICS_MAX_LAG)
                m->lag[m->n_lag++] = (bg_lag){(uint8_t)k, t, lag};
        }
    m->assigned = assigned;
    m->ready = bg_consumer_joined(p->consumer); /* the envelopes were read before subscribing */
    m->last_poll = now;
    pthread_mutex_unlock(&m->mu);
}

/* Wait for the batch's outputs. BG_OK when delivered; an error when a
 * delivery failed or stop came while the broker was unreachable. */
static bg_err sync_outputs(pipe_t *p) {
    for (;;) {
        bg_err err = bg_emitter_sync(p->emitter, 1000);
        if (err != BG_ERR_FULL)
            return err;
        bg_warn("waiting for output acknowledgements (broker slow or unreachable)");
        if (*p->o->stop)
            return BG_ERR_KAFKA;
    }
}

bg_err bg_pipeline_run(const bg_pipeline_opts *o, bg_pipeline_stats *st, char *errstr,
                       size_t errstr_size) {
    pipe_t p = {.o = o, .st = st, .policy = o->policy};
    if (o->cfg->policy_path && stat(o->cfg->policy_path, &p.policy_stat) != 0)
        memset(&p.policy_stat, 0, sizeof p.policy_stat);
    memset(st, 0, sizeof *st);
    bg_outputs_init(&p.out);
    bg_consumer_hooks hooks = {.opaque = &p, .on_assign = on_assign, .on_revoke = on_revoke};
    size_t max = (size_t)o->cfg->batch_max_messages;
    rd_kafka_message_t **msgs = calloc(max, sizeof *msgs);
    rd_kafka_topic_partition_list_t *store = NULL;
    bg_err err = msgs ? BG_OK : BG_ERR_NOMEM;
    if (!err)
        err = bg_consumer_new(o->cfg, o->group_id, &hooks, &p.consumer, errstr, errstr_size);
    if (!err)
        err = bg_consumer_check_topics(p.consumer, o->startup_timeout_ms, &p.n_tasks, errstr,
                                       errstr_size);
    if (!err && p.n_tasks > MAX_TASKS) {
        snprintf(errstr, errstr_size, "input topics have %d partitions, more than %d", p.n_tasks,
                 MAX_TASKS);
        err = BG_ERR_KAFKA;
    }
    if (!err) {
        p.tasks = calloc((size_t)p.n_tasks, sizeof *p.tasks);
        if (!p.tasks)
            err = BG_ERR_NOMEM;
    }
    if (!err)
        err = bg_emitter_new(o->cfg, o->codec, false, &p.emitter, errstr, errstr_size);
    if (!err)
        err = bg_envtable_new(o->cfg, o->codec, envelope_rejected, &p, &p.envelopes, errstr,
                              errstr_size);
    if (!err) {
        bg_envtable_set_policy(p.envelopes, o->policy);
        err = bg_envtable_sync(p.envelopes, o->startup_timeout_ms, errstr, errstr_size);
    }
    if (!err && o->policy->n_approvers == 0)
        bg_warn("envelopes are accepted unsigned: no approver keys are configured");
    if (!err)
        err = bg_consumer_subscribe(p.consumer, errstr, errstr_size);
    if (!err)
        bg_info("consuming %s, %s, %s (%d partitions each)", o->cfg->topics[BG_TOPIC_USAGE],
                o->cfg->topics[BG_TOPIC_SECRETS], o->cfg->topics[BG_TOPIC_TOOLCALLS], p.n_tasks);

    double first = 0, last = 0, idle_since = now_s();
    bool started = false, received = false;
    while (!err && !*o->stop) {
        bg_envtable_poll(p.envelopes);
        maybe_reload(&p, now_s());
        size_t n = bg_consumer_poll_batch(p.consumer, msgs, max, (int)o->cfg->batch_max_ms);
        double polled = now_s();
        if (n && !received) {
            received = true;
            first = now_s(); /* the rate counts from the first message received */
        }
        if (p.fatal) {
            err = p.fatal;
            snprintf(errstr, errstr_size, "task setup failed: %s", bg_err_str(err));
        }
        char fe[256];
        if (!err && bg_consumer_fatal(p.consumer, fe, sizeof fe)) {
            snprintf(errstr, errstr_size, "fatal consumer error: %s", fe);
            err = BG_ERR_KAFKA;
        }
        store = rd_kafka_topic_partition_list_new(64);
        for (size_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            if (err || m->err) {
                if (!err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    bg_warn("consumer: %s", rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                continue;
            }
            bg_err rerr = route(&p, m);
            if (rerr && !err) {
                err = rerr;
                if (rerr == BG_ERR_NOMEM)
                    snprintf(errstr, errstr_size, "buffering input: %s", bg_err_str(rerr));
                else
                    snprintf(errstr, errstr_size,
                             "stopped while waiting for the schema registry: offsets not committed");
            }
        }
        p.applied = 0;
        double tnow = now_s();
        for (int32_t t = 0; t < p.n_tasks && !err; t++) {
            if (!p.tasks[t].engine)
                continue;
            bg_err perr = drain(&p, t, store, tnow);
            if (perr) {
                err = perr;
                snprintf(errstr, errstr_size, "processing failed: %s", bg_err_str(perr));
            }
        }
        size_t applied = p.applied;
        if (n)
            bg_debug("batch: %zu polled, %zu applied, %zu buffered", n, applied, buffered(&p));
        if (!err) {
            for (int32_t t = 0; t < p.n_tasks && !err; t++)
                if (p.tasks[t].engine)
                    err = bg_engine_tick(p.tasks[t].engine, &p.out);
            for (size_t i = 0; i < p.out.n_verdicts; i++)
            {
                st->verdicts[p.out.verdicts[i].classification]++;
                st->verdicts_by[p.out.verdicts[i].classification][p.out.verdicts[i].action]++;
            }
            st->revocations += p.out.n_revocations;
            if (!err)
                err = bg_emitter_outputs(p.emitter, &p.out);
            bg_outputs_reset(&p.out);
            if (!err)
                err = sync_outputs(&p);
            if (err)
                snprintf(errstr, errstr_size, "outputs not delivered (%s): offsets not committed",
                         bg_err_str(err));
            else
                bg_consumer_store(p.consumer, store);
        }
        rd_kafka_topic_partition_list_destroy(store);
        store = NULL;
        double now = now_s();
        if (applied) {
            started = true;
            last = now;
            idle_since = now;
            st->batches++;
        }
        update_metrics(&p, applied ? now - polled : -1.0, now);
        if (o->idle_exit_ms > 0 && started && !buffered(&p) &&
            (now - idle_since) * 1000.0 > (double)o->idle_exit_ms)
            break;
    }
    st->busy_s = last - first;
    if (!err)
        bg_info("stopping: flushing outputs and committing offsets");
    bg_emitter_free(p.emitter);
    /* buffered messages go back unprocessed (their offsets were not stored);
     * they must be destroyed before the consumer is */
    if (p.tasks)
        for (int32_t t = 0; t < p.n_tasks; t++)
            for (int k = 0; k < 3; k++)
                fifo_clear(&p.tasks[t].in[k]);
    bg_consumer_free(p.consumer);
    if (p.tasks)
        for (int32_t t = 0; t < p.n_tasks; t++)
            bg_engine_free(p.tasks[t].engine);
    bg_envtable_free(p.envelopes);
    if (p.reloaded) {
        bg_policy_free(p.reloaded);
        free(p.reloaded);
    }
    free(p.tasks);
    free(msgs);
    bg_outputs_free(&p.out);
    return err;
}
