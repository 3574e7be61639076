/* The pipeline loop (see pipeline.h).
 *
 * Tasks: partition p of the co-partitioned input topics is task p, with its
 * own engine. A task exists while at least one of its topic-partitions is
 * assigned; when the last one is revoked its engine is dropped, and messages
 * of the current batch from revoked partitions are skipped without storing
 * their offsets, so their new owner reads them.
 *
 * State that survives (state.changelog): at each commit the dirty identities
 * of every task are snapshotted to partition p of topics.state (and evicted
 * ones get a tombstone). A newly assigned task first restores: the changelog
 * reader reads its partition to the end, between batches, while the input
 * it receives meanwhile waits in its buffers (paused past FIFO_PAUSE) and
 * the other tasks keep running.
 *
 * Each snapshot carries the task's input offsets when it was taken
 * (bg.offsets); after a restore, an event of an identity at an offset its
 * snapshot already covers is skipped, so input read again from an older
 * committed offset is not applied twice.
 *
 * Commit: at_least_once, every batch the outputs are acknowledged, and every
 * worker.commit_interval_ms (and before a revocation, and at shutdown) the
 * changelog is produced and acknowledged, then the offsets applied since are
 * stored (librdkafka commits them). exactly_once, every worker.commit_interval_ms
 * (and before a revocation): changelog records produced, then offsets sent
 * to the transaction, then one commit. An aborted transaction drops every
 * task's state, rewinds the input to the committed offsets and restores the
 * tasks from the changelog, so state and input position match again. */
#include "pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../detectors/engine.h"
#include "../detectors/snapshot.h"
#include "changelog.h"
#include "consume.h"
#include "emit.h"
#include "envelopes.h"
#include "log.h"
#include "policy_load.h"

#define MAX_TASKS 4096 /* partitions per input topic */

#define FIFO_PAUSE 20000      /* buffered messages per input partition before it is paused */
/* How long a task waits for an input with nothing buffered, by what is known
 * of that input: nothing yet (just assigned; the first message or the
 * partition's end-of-file event settles it), or more records on the broker
 * than received (they are on their way). An input known to be caught up is
 * not waited for. */
#define TASK_WAIT_UNKNOWN_MS 5000
#define TASK_WAIT_BACKLOG_MS 30000

typedef struct item {
    rd_kafka_message_t *m;
    int64_t t; /* event time; INT64_MIN when undecodable (handled at once) */
} item;

/* Messages of one input topic-partition waiting for the event-time merge. */
typedef struct fifo {
    item *v;
    size_t head, len, cap;
    int64_t next_offset;  /* offset after the last message received, -1 before any */
    int64_t store_next;   /* offset after the last message applied in this batch, 0 = none */
    double empty_since;   /* when it last ran dry (monotonic s) */
    bool paused;
} fifo;

/* Identities whose restored snapshot already covers input up to off[kind]
 * (exclusive): open addressing, keys owned. */
typedef struct skip_ent {
    char *id; /* NULL = empty slot */
    uint32_t len;
    uint64_t h;
    int64_t off[3];
} skip_ent;

typedef struct skipmap {
    skip_ent *v;
    size_t n, cap;
    int64_t max[3]; /* highest off per kind: past them the map is dropped */
} skipmap;

enum { RESTORE_DONE, RESTORE_PENDING, RESTORE_RUNNING };

typedef struct task {
    bg_engine *engine;
    uint8_t assigned_mask; /* bit per input kind */
    fifo in[3];            /* by input kind */
    int restore;           /* RESTORE_* */
    int64_t restore_high;  /* changelog end to read to */
    int64_t restore_records, restore_read;
    uint64_t restored, refused;
    double restore_t0;
    int64_t applied_next[3]; /* offset after the last input message applied, -1 none */
    skipmap skip;
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
    bg_restorer *restorer;   /* state.changelog: reads changelog partitions */
    bool changelog;
    bool eos;                /* exactly_once */
    /* next offsets applied since the last commit: of the open transaction
     * (eos), or waiting for the changelog before they are stored (at least
     * once); both commit once per worker.commit_interval_ms */
    rd_kafka_topic_partition_list_t *txn_offsets;
    double txn_t0;           /* when the commit interval began (monotonic s) */
    bool rebuild;            /* eos: a transaction was aborted: rewind and restore */
    bg_buf snap, scratch;    /* changelog encoding / decoding */
    /* totals of engines dropped (revocation, rebuild) plus the live ones' */
    uint64_t gone_evicted_bound, gone_evicted_idle, gone_restored, gone_refused;
    uint64_t snapshots_written, tombstones_written, replay_skipped, restore_refused;
    uint64_t txn_commits, txn_aborts;
    char fatal_msg[1024];    /* why p->fatal was set inside a callback */
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

/* ---- skip map ---------------------------------------------------------------- */

static uint64_t hash_id(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ULL;
    return h | 1;
}

static void skip_clear(skipmap *m) {
    for (size_t i = 0; i < m->cap; i++)
        free(m->v[i].id);
    free(m->v);
    memset(m, 0, sizeof *m);
}

static skip_ent *skip_find(const skipmap *m, const char *id, size_t len, uint64_t h) {
    if (!m->cap)
        return NULL;
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        skip_ent *e = &m->v[i];
        if (!e->id)
            return NULL;
        if (e->h == h && e->len == len && !memcmp(e->id, id, len))
            return e;
    }
}

static bool skip_put(skipmap *m, const char *id, size_t len, const int64_t off[3]) {
    uint64_t h = hash_id(id, len);
    skip_ent *e = skip_find(m, id, len, h);
    if (!e) {
        if ((m->n + 1) * 2 > m->cap) {
            size_t ncap = m->cap ? m->cap * 2 : 1024;
            skip_ent *nv = calloc(ncap, sizeof *nv);
            if (!nv)
                return false;
            for (size_t i = 0; i < m->cap; i++)
                if (m->v[i].id) {
                    size_t j = m->v[i].h & (ncap - 1);
                    while (nv[j].id)
                        j = (j + 1) & (ncap - 1);
                    nv[j] = m->v[i];
                }
            free(m->v);
            m->v = nv;
            m->cap = ncap;
        }
        size_t j = h & (m->cap - 1);
        while (m->v[j].id)
            j = (j + 1) & (m->cap - 1);
        e = &m->v[j];
        e->id = malloc(len ? len : 1);
        if (!e->id)
            return false;
        memcpy(e->id, id, len);
        e->len = (uint32_t)len;
        e->h = h;
        m->n++;
    }
    for (int k = 0; k < 3; k++) {
        e->off[k] = off[k];
        if (off[k] > m->max[k])
            m->max[k] = off[k];
    }
    return true;
}

/* ---- tasks -------------------------------------------------------------------- */

static bg_err task_engine_new(pipe_t *p, int32_t partition) {
    task *t = &p->tasks[partition];
    bg_err err = bg_engine_new(p->policy, partition, &t->engine);
    if (err)
        return err;
    bg_engine_set_envelopes(t->engine, bg_envtable_set(p->envelopes));
    const bg_config *c = p->o->cfg;
    bg_engine_limits l = {.max_identities = (uint64_t)c->state_max_identities,
                          .max_bytes = (uint64_t)c->state_max_bytes,
                          .idle_ttl_ms = c->state_idle_ttl_ms};
    bg_engine_set_limits(t->engine, &l);
    for (int k = 0; k < 3; k++)
        t->applied_next[k] = -1;
    t->restore = p->changelog ? RESTORE_PENDING : RESTORE_DONE;
    t->restored = t->refused = 0;
    t->restore_read = t->restore_records = 0;
    return BG_OK;
}

/* Drop a task's engine (its counters go to the pipeline's totals). */
static void task_engine_drop(pipe_t *p, int32_t partition) {
    task *t = &p->tasks[partition];
    if (t->engine) {
        bg_engine_state_stats ss;
        bg_engine_state_stats_get(t->engine, &ss);
        p->gone_evicted_bound += ss.evicted_bound;
        p->gone_evicted_idle += ss.evicted_idle;
        p->gone_restored += ss.restored;
        p->gone_refused += ss.snapshots_refused;
    }
    bg_engine_free(t->engine);
    t->engine = NULL;
    if (t->restore == RESTORE_RUNNING && p->restorer)
        bg_restorer_stop(p->restorer, partition);
    t->restore = RESTORE_DONE;
    skip_clear(&t->skip);
}

static void on_assign(void *opaque, int kind, int32_t partition) {
    pipe_t *p = opaque;
    if (partition < 0 || partition >= p->n_tasks) {
        bg_error("partition %d beyond the %d checked at start", partition, p->n_tasks);
        return;
    }
    task *t = &p->tasks[partition];
    if (!t->engine) {
        bg_err err = task_engine_new(p, partition);
        if (err) {
            bg_error("cannot create the engine of task %d: %s", partition, bg_err_str(err));
            p->fatal = err;
            return;
        }
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
    if (!t->assigned_mask)
        task_engine_drop(p, partition);
}

static void before_revoke(void *opaque, bool lost);

/* The batch's offsets to store: (topic, partition, offset after the last
 * applied message) of every input that applied one; built once per batch,
 * not per message. */
static rd_kafka_topic_partition_list_t *batch_offsets(pipe_t *p) {
    static const bg_topic input_topics[3] = {BG_TOPIC_USAGE, BG_TOPIC_SECRETS, BG_TOPIC_TOOLCALLS};
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(64);
    for (int32_t t = 0; t < p->n_tasks; t++)
        for (int k = 0; k < 3; k++) {
            fifo *f = &p->tasks[t].in[k];
            if (!f->store_next)
                continue;
            rd_kafka_topic_partition_list_add(l, p->o->cfg->topics[input_topics[k]], t)->offset =
                f->store_next;
            f->store_next = 0;
        }
    return l;
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
static bg_err process(pipe_t *p, int kind, rd_kafka_message_t *m) {
    bg_event ev;
    char why[256];
    bg_err err = ensure_schema(p, m, why, sizeof why);
    if (err && err != BG_ERR_UNKNOWN_SCHEMA && err != BG_ERR_SCHEMA)
        return err;
    fifo *in = &p->tasks[m->partition].in[kind];
    if (m->offset + 1 > in->store_next)
        in->store_next = m->offset + 1;
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
    task *t = &p->tasks[m->partition];
    if (m->offset + 1 > t->applied_next[kind])
        t->applied_next[kind] = m->offset + 1;
    if (!err && t->skip.n) {
        skip_ent *se = skip_find(&t->skip, ev.identity.ptr, ev.identity.len,
                                 hash_id(ev.identity.ptr, ev.identity.len));
        if (se && m->offset < se->off[kind]) {
            p->replay_skipped++; /* its restored snapshot already holds it */
            return BG_OK;
        }
    }
    if (!err) {
        err = bg_engine_observe(t->engine, &ev, m->offset, &p->out);
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

/* An input partition reached its end: everything before m->offset was
 * received, so the merge knows the input is caught up. */
static void note_eof(pipe_t *p, const rd_kafka_message_t *m) {
    int kind = bg_consumer_kind(p->consumer, m);
    if (kind < 0 || m->partition < 0 || m->partition >= p->n_tasks ||
        !(p->tasks[m->partition].assigned_mask & (1u << kind)))
        return;
    fifo *f = &p->tasks[m->partition].in[kind];
    if (m->offset > f->next_offset)
        f->next_offset = m->offset;
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
 * known to be caught up, wait for it (TASK_WAIT_*) before moving on. */
static bg_err drain(pipe_t *p, int32_t part, double now) {
    task *t = &p->tasks[part];
    if (t->restore != RESTORE_DONE)
        return BG_OK; /* its input waits until the changelog is read */
    if (t->skip.n && t->applied_next[0] >= t->skip.max[0] && t->applied_next[1] >= t->skip.max[1] &&
        t->applied_next[2] >= t->skip.max[2])
        skip_clear(&t->skip); /* the input is past every restored snapshot */
    for (;;) {
        int best = -1;
        bool wait = false;
        for (int k = 0; k < 3; k++) {
            fifo *f = &t->in[k];
            if (f->len == 0) {
                if (t->assigned_mask & (1u << k)) {
                    int64_t lag = f->next_offset < 0
                                      ? -1
                                      : bg_consumer_lag(p->consumer, k, part, f->next_offset);
                    double limit = lag < 0 ? TASK_WAIT_UNKNOWN_MS : TASK_WAIT_BACKLOG_MS;
                    if (lag != 0 && (now - f->empty_since) * 1000.0 < limit)
                        wait = true;
                }
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
        bg_err err = process(p, best, it.m);
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
    uint64_t state_bytes = 0;
    bg_engine_stats es;
    bg_engine_state_stats ss;
    uint64_t ids = 0, late = 0, ev_bound = p->gone_evicted_bound, ev_idle = p->gone_evicted_idle,
             restored = p->gone_restored, refused = p->gone_refused;
    for (int32_t t = 0; t < p->n_tasks; t++)
        if (p->tasks[t].engine) {
            bg_engine_stats_get(p->tasks[t].engine, &es);
            bg_engine_state_stats_get(p->tasks[t].engine, &ss);
            ids += es.identities;
            late += es.late_events;
            state_bytes += ss.bytes; /* tracked incrementally: no walk */
            ev_bound += ss.evicted_bound;
            ev_idle += ss.evicted_idle;
            restored += ss.restored;
            refused += ss.snapshots_refused;
        }
    refused += p->restore_refused; /* refused before reaching an engine */
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
    m->state_bytes = state_bytes;
    m->evicted_bound = ev_bound;
    m->evicted_idle = ev_idle;
    m->restored_identities = restored;
    m->snapshots_refused = refused;
    m->changelog_snapshots = p->snapshots_written;
    m->changelog_tombstones = p->tombstones_written;
    m->replay_skipped = p->replay_skipped;
    m->txn_commits = p->txn_commits;
    m->txn_aborts = p->txn_aborts;
    m->n_restore = 0;
    bool all_restored = true;
    for (int32_t t = 0; t < p->n_tasks; t++) {
        const task *tk = &p->tasks[t];
        if (!tk->engine || m->n_restore >= BG_METRICS_MAX_LAG)
            continue;
        int64_t rem = tk->restore == RESTORE_DONE ? 0
                      : tk->restore == RESTORE_PENDING
                          ? -1
                          : (tk->restore_records > tk->restore_read
                                 ? tk->restore_records - tk->restore_read
                                 : 0);
        if (tk->restore != RESTORE_DONE)
            all_restored = false;
        m->restore[m->n_restore++] = (bg_restore_gauge){t, rem};
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
    /* the envelopes were read before subscribing */
    m->ready = bg_consumer_joined(p->consumer) && all_restored;
    m->last_poll = now;
    pthread_mutex_unlock(&m->mu);
}


/* ---- changelog: write ------------------------------------------------------------ */

typedef struct snap_ctx {
    pipe_t *p;
    task *t;
    int32_t partition;
    char offsets[80];
} snap_ctx;

static bg_err write_tombstone(void *opaque, const char *identity, size_t len) {
    snap_ctx *c = opaque;
    bg_err err = bg_emitter_changelog(c->p->emitter, c->partition, identity, len, NULL, 0,
                                      c->offsets);
    if (!err)
        c->p->tombstones_written++;
    return err;
}

static bg_err write_snapshot(void *opaque, const char *identity, size_t identity_len,
                             const uint8_t *state, size_t state_len, int64_t updated_at) {
    snap_ctx *c = opaque;
    pipe_t *p = c->p;
    bg_err err = bg_changelog_encode(bg_codec_default_id(BG_REC_SNAPSHOT), identity, identity_len,
                                     c->partition, BG_SNAPSHOT_VERSION, state, state_len,
                                     updated_at, BG_VERSION, &p->snap);
    if (err) {
        bg_error("cannot encode the snapshot of '%.*s' (task %d): %s",
                 (int)(identity_len > 200 ? 200 : identity_len), identity, c->partition,
                 bg_err_str(err));
        return err;
    }
    /* An identity restored in this incarnation holds its events below its
     * snapshot's offsets even on inputs this task has not read yet */
    const char *offsets = c->offsets;
    char own[80];
    skip_ent *se = c->t->skip.n ? skip_find(&c->t->skip, identity, identity_len,
                                            hash_id(identity, identity_len))
                                : NULL;
    if (se) {
        int64_t o[3];
        for (int k = 0; k < 3; k++)
            o[k] = se->off[k] > c->t->applied_next[k] ? se->off[k] : c->t->applied_next[k];
        snprintf(own, sizeof own, "%lld,%lld,%lld", (long long)o[0], (long long)o[1],
                 (long long)o[2]);
        offsets = own;
    }
    err = bg_emitter_changelog(p->emitter, c->partition, identity, identity_len, p->snap.data,
                               p->snap.len, offsets);
    if (!err)
        p->snapshots_written++;
    return err;
}

/* Produce the changelog of every running task: tombstones of the evicted,
 * snapshots of the dirty. */
static bg_err write_changelog(pipe_t *p) {
    if (!p->changelog)
        return BG_OK;
    for (int32_t t = 0; t < p->n_tasks; t++) {
        task *tk = &p->tasks[t];
        if (!tk->engine || tk->restore != RESTORE_DONE)
            continue;
        snap_ctx c = {.p = p, .t = tk, .partition = t};
        snprintf(c.offsets, sizeof c.offsets, "%lld,%lld,%lld", (long long)tk->applied_next[0],
                 (long long)tk->applied_next[1], (long long)tk->applied_next[2]);
        bg_err err = bg_engine_take_evicted(tk->engine, write_tombstone, &c);
        if (!err)
            err = bg_engine_snapshot_dirty(tk->engine, write_snapshot, &c);
        if (err)
            return err;
    }
    return BG_OK;
}

/* ---- changelog: restore ------------------------------------------------------------ */

static void restore_done(pipe_t *p, int32_t part) {
    task *t = &p->tasks[part];
    if (t->restore == RESTORE_RUNNING)
        bg_restorer_stop(p->restorer, part);
    t->restore = RESTORE_DONE;
    double s = now_s() - t->restore_t0;
    bg_info("task %d restored: %llu identities from %lld changelog records in %.2f s "
            "(%llu refused)",
            part, (unsigned long long)t->restored, (long long)t->restore_read, s,
            (unsigned long long)t->refused);
}

/* Apply one changelog record to its task. */
static void restore_apply(pipe_t *p, task *t, const rd_kafka_message_t *m) {
    t->restore_read++;
    if (!m->key || !m->key_len) {
        t->refused++;
        p->restore_refused++;
        bg_warn("changelog [%d]@%lld: record without a key skipped", m->partition,
                (long long)m->offset);
        return;
    }
    const char *key = m->key;
    if (!m->payload) { /* tombstone: the identity was evicted */
        bg_engine_forget(t->engine, key, m->key_len);
        skip_ent *se = skip_find(&t->skip, key, m->key_len, hash_id(key, m->key_len));
        if (se)
            se->off[0] = se->off[1] = se->off[2] = -1;
        return;
    }
    bg_changelog_rec r;
    char why[256];
    bg_err err = bg_changelog_decode(m->payload, m->len, &r, &p->scratch, why, sizeof why);
    if (!err && (r.identity_len != m->key_len || memcmp(r.identity, key, m->key_len))) {
        err = BG_ERR_KEY_MISMATCH;
        snprintf(why, sizeof why, "record's identity differs from its key");
    }
    if (!err && r.partition != m->partition) {
        err = BG_ERR_SNAPSHOT;
        snprintf(why, sizeof why, "record names partition %d", (int)r.partition);
    }
    if (!err)
        err = bg_engine_restore(t->engine, r.identity, r.identity_len, r.format_version, r.state,
                                r.state_len, why, sizeof why);
    if (err) {
        t->refused++;
        p->restore_refused++;
        bg_warn("changelog [%d]@%lld: snapshot of '%.*s' refused (%s): %s", m->partition,
                (long long)m->offset, (int)(m->key_len > 200 ? 200 : m->key_len), key,
                bg_err_name(err), why);
        return;
    }
    t->restored++;
    rd_kafka_headers_t *h = NULL;
    const void *hv;
    size_t hl;
    int64_t off[3];
    if (!rd_kafka_message_headers(m, &h) &&
        !rd_kafka_header_get_last(h, BG_CHANGELOG_OFFSETS_HEADER, &hv, &hl) &&
        bg_changelog_parse_offsets(hv, hl, off) && !skip_put(&t->skip, key, m->key_len, off))
        bg_warn("out of memory noting restored offsets; input may be applied twice");
}

/* Start pending restores and read what the changelog reader has. */
static bg_err restore_step(pipe_t *p, char *errstr, size_t errstr_size) {
    int running = 0;
    for (int32_t i = 0; i < p->n_tasks; i++) {
        task *t = &p->tasks[i];
        if (!t->engine || t->restore != RESTORE_PENDING)
            continue;
        t->restore_t0 = now_s();
        bg_err err = bg_restorer_start(p->restorer, i, &t->restore_records, &t->restore_high,
                                       errstr, errstr_size);
        if (err)
            return err;
        t->restore = RESTORE_RUNNING;
        bg_info("task %d: restoring from %s[%d] (%lld records)", i,
                p->o->cfg->topics[BG_TOPIC_STATE], i, (long long)t->restore_records);
        if (t->restore_records == 0) {
            t->restore = RESTORE_PENDING; /* nothing was assigned: not RUNNING */
            t->restore = RESTORE_DONE;
            bg_info("task %d: changelog empty, starting cold", i);
        }
    }
    for (int32_t i = 0; i < p->n_tasks; i++)
        running += p->tasks[i].restore == RESTORE_RUNNING;
    if (!running)
        return BG_OK;
    double end = now_s() + 0.2;
    int timeout = (int)p->o->cfg->batch_max_ms;
    static double logged;
    if (end - logged >= 5.0) { /* progress of long restores */
        logged = end;
        for (int32_t i = 0; i < p->n_tasks; i++) {
            const task *t = &p->tasks[i];
            if (t->restore == RESTORE_RUNNING && end - t->restore_t0 >= 5.0)
                bg_info("task %d: restoring, %lld of %lld changelog records read, %llu "
                        "identities, %.0f s",
                        i, (long long)t->restore_read, (long long)t->restore_records,
                        (unsigned long long)t->restored, end - t->restore_t0);
        }
    }
    for (size_t n = 0; n < 200000; n++) {
        rd_kafka_message_t *m = bg_restorer_poll(p->restorer, n ? 0 : timeout);
        if (!m)
            break;
        int32_t part = m->partition;
        task *t = part >= 0 && part < p->n_tasks ? &p->tasks[part] : NULL;
        if (t && t->restore == RESTORE_RUNNING) {
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                restore_done(p, part);
            } else if (m->err) {
                bg_warn("changelog reader: %s", rd_kafka_message_errstr(m));
            } else {
                restore_apply(p, t, m);
                if (m->offset + 1 >= t->restore_high)
                    restore_done(p, part);
            }
        }
        rd_kafka_message_destroy(m);
        if ((n & 1023) == 1023 && now_s() > end)
            break;
    }
    return BG_OK;
}

static bool restoring(const pipe_t *p) {
    for (int32_t i = 0; i < p->n_tasks; i++)
        if (p->tasks[i].engine && p->tasks[i].restore != RESTORE_DONE)
            return true;
    return false;
}

/* ---- exactly-once -------------------------------------------------------------- */

static void merge_offsets(rd_kafka_topic_partition_list_t *into,
                          const rd_kafka_topic_partition_list_t *from) {
    for (int i = 0; i < from->cnt; i++) {
        const rd_kafka_topic_partition_t *f = &from->elems[i];
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(into, f->topic, f->partition);
        if (!tp)
            tp = rd_kafka_topic_partition_list_add(into, f->topic, f->partition);
        if (f->offset > tp->offset)
            tp->offset = f->offset;
    }
}

/* Drop every task's state and buffers, rewind the input to the committed
 * offsets and restore the tasks from the changelog: after an aborted
 * transaction, what was applied but not committed is forgotten. */
static bg_err rebuild_all(pipe_t *p, char *errstr, size_t errstr_size) {
    p->rebuild = false;
    rd_kafka_topic_partition_list_destroy(p->txn_offsets);
    p->txn_offsets = rd_kafka_topic_partition_list_new(64);
    bg_outputs_reset(&p->out);
    for (int32_t i = 0; i < p->n_tasks; i++) {
        task *t = &p->tasks[i];
        if (!t->engine)
            continue;
        for (int k = 0; k < 3; k++) {
            if (t->in[k].paused && (t->assigned_mask & (1u << k)))
                bg_consumer_pause(p->consumer, k, i, false);
            fifo_clear(&t->in[k]);
            t->in[k].empty_since = now_s();
        }
        task_engine_drop(p, i);
        bg_err err = task_engine_new(p, i);
        if (err) {
            snprintf(errstr, errstr_size, "cannot recreate the engine of task %d: %s", i,
                     bg_err_str(err));
            return err;
        }
    }
    bg_warn("transaction aborted: input rewound to the committed offsets, tasks restored from "
            "the changelog");
    return bg_consumer_rewind(p->consumer, NULL, 0, errstr, errstr_size);
}

static bg_err fenced(pipe_t *p, const char *why, char *errstr, size_t errstr_size) {
    char tid[256];
    bg_emitter_transactional_id(p->o->cfg, p->o->group_id, tid, sizeof tid);
    snprintf(errstr, errstr_size,
             "transactional producer %s fenced or failed (another instance has taken over): %s",
             tid, why);
    return BG_ERR_KAFKA;
}

/* exactly_once: producing failed inside the open transaction. An abortable
 * state aborts it and rebuilds; a fatal one (fenced) ends the worker. */
static bg_err recover_produce(pipe_t *p, char *errstr, size_t errstr_size) {
    char why[512];
    if (bg_emitter_fatal(p->emitter, why, sizeof why))
        return fenced(p, why, errstr, errstr_size);
    bg_warn("producing failed inside the transaction (%s): aborting it", errstr);
    if (bg_emitter_abort(p->emitter, why, sizeof why) == BG_TXN_FATAL)
        return fenced(p, why, errstr, errstr_size);
    p->txn_aborts++;
    p->txn_t0 = now_s();
    return rebuild_all(p, errstr, errstr_size);
}

/* Commit the open transaction: changelog, offsets, commit. */
static bg_err commit_txn(pipe_t *p, char *errstr, size_t errstr_size) {
    bg_err err = write_changelog(p);
    char why[512];
    bg_txn_result r;
    if (err) {
        snprintf(why, sizeof why, "changelog not produced: %s", bg_err_str(err));
        r = bg_emitter_abort(p->emitter, why, sizeof why);
    } else {
        r = bg_emitter_commit(p->emitter, bg_consumer_rk(p->consumer), p->txn_offsets, why,
                              sizeof why);
    }
    p->txn_t0 = now_s();
    if (r == BG_TXN_OK) {
        p->txn_commits++;
        rd_kafka_topic_partition_list_destroy(p->txn_offsets);
        p->txn_offsets = rd_kafka_topic_partition_list_new(64);
        return BG_OK;
    }
    if (r == BG_TXN_ABORTED) {
        p->txn_aborts++;
        bg_warn("transaction aborted: %s", why);
        p->rebuild = true;
        return BG_OK;
    }
    return fenced(p, why, errstr, errstr_size);
}

static bg_err sync_outputs(pipe_t *p);

/* At least once: the changelog of what was applied since the last commit,
 * acknowledged, then the input offsets stored (librdkafka commits them). */
static bg_err alo_commit(pipe_t *p, char *errstr, size_t errstr_size) {
    bg_err err = write_changelog(p);
    if (!err)
        err = sync_outputs(p);
    p->txn_t0 = now_s();
    if (err) {
        snprintf(errstr, errstr_size, "changelog not delivered (%s): offsets not committed",
                 bg_err_str(err));
        return err;
    }
    if (p->txn_offsets->cnt)
        bg_consumer_store(p->consumer, p->txn_offsets);
    rd_kafka_topic_partition_list_destroy(p->txn_offsets);
    p->txn_offsets = rd_kafka_topic_partition_list_new(64);
    return BG_OK;
}

static void before_revoke(void *opaque, bool lost) {
    pipe_t *p = opaque;
    if (p->fatal || !p->emitter)
        return; /* failed, or shutting down: the last commit is behind us */
    char errstr[1024];
    if (!p->eos) {
        if (lost) { /* someone else's already: their offsets are not ours to store */
            rd_kafka_topic_partition_list_destroy(p->txn_offsets);
            p->txn_offsets = rd_kafka_topic_partition_list_new(64);
        } else if (alo_commit(p, errstr, sizeof errstr)) {
            snprintf(p->fatal_msg, sizeof p->fatal_msg, "%s", errstr);
            p->fatal = BG_ERR_KAFKA;
        }
        return;
    }
    if (lost) {
        /* the partitions are someone else's already: nothing of this
         * transaction may be published */
        char why[256];
        if (bg_emitter_abort(p->emitter, why, sizeof why) == BG_TXN_FATAL) {
            snprintf(p->fatal_msg, sizeof p->fatal_msg, "%s", why);
            p->fatal = BG_ERR_KAFKA;
            return;
        }
        p->txn_aborts++;
        p->rebuild = true;
        return;
    }
    if (commit_txn(p, errstr, sizeof errstr)) {
        snprintf(p->fatal_msg, sizeof p->fatal_msg, "%s", errstr);
        p->fatal = BG_ERR_KAFKA;
    }
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
    bg_consumer_hooks hooks = {.opaque = &p, .on_assign = on_assign, .on_revoke = on_revoke,
                               .before_revoke = before_revoke};
    p.changelog = o->cfg->state_changelog;
    p.eos = o->cfg->exactly_once;
    p.txn_offsets = rd_kafka_topic_partition_list_new(64);
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
        err = bg_emitter_new_txn(o->cfg, o->codec, o->group_id, p.eos, &p.emitter, errstr,
                                 errstr_size);
    if (!err && p.changelog)
        err = bg_restorer_new(o->cfg, &p.restorer, errstr, errstr_size);
    p.txn_t0 = now_s();
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
        if (p.changelog && restoring(&p)) {
            err = restore_step(&p, errstr, errstr_size);
            if (err)
                break;
        }
        size_t n = bg_consumer_poll_batch(p.consumer, msgs, max,
                                          restoring(&p) ? 0 : (int)o->cfg->batch_max_ms);
        double polled = now_s();
        if (p.rebuild) {
            /* an abort during the rebalance: what was polled predates the rewind */
            for (size_t i = 0; i < n; i++)
                rd_kafka_message_destroy(msgs[i]);
            n = 0;
            if (!p.fatal)
                err = rebuild_all(&p, errstr, errstr_size);
            if (err)
                break;
        }
        if (n && !received) {
            received = true;
            first = now_s(); /* the rate counts from the first message received */
        }
        if (p.fatal) {
            err = p.fatal;
            if (p.fatal_msg[0])
                snprintf(errstr, errstr_size, "%s", p.fatal_msg);
            else
                snprintf(errstr, errstr_size, "task setup failed: %s", bg_err_str(err));
        }
        char fe[256];
        if (!err && bg_consumer_fatal(p.consumer, fe, sizeof fe)) {
            snprintf(errstr, errstr_size, "fatal consumer error: %s", fe);
            err = BG_ERR_KAFKA;
        }
        for (size_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            if (!err && m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                note_eof(&p, m);
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
            bg_err perr = drain(&p, t, tnow);
            if (perr) {
                err = perr;
                snprintf(errstr, errstr_size, "processing failed: %s", bg_err_str(perr));
            }
        }
        store = batch_offsets(&p);
        size_t applied = p.applied;
        if (n)
            bg_debug("batch: %zu polled, %zu applied, %zu buffered", n, applied, buffered(&p));
        if (!err) {
            for (int32_t t = 0; t < p.n_tasks && !err; t++)
                if (p.tasks[t].engine && p.tasks[t].restore == RESTORE_DONE)
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
            if (p.eos) {
                if (err) {
                    snprintf(errstr, errstr_size, "outputs not produced (%s): transaction aborted",
                             bg_err_str(err));
                } else {
                    merge_offsets(p.txn_offsets, store);
                    if ((now_s() - p.txn_t0) * 1000.0 >= (double)o->cfg->commit_interval_ms)
                        err = commit_txn(&p, errstr, errstr_size);
                    if (!err && p.rebuild)
                        err = rebuild_all(&p, errstr, errstr_size);
                }
            } else {
                if (!err)
                    err = sync_outputs(&p);
                if (!err) {
                    merge_offsets(p.txn_offsets, store);
                    if ((now_s() - p.txn_t0) * 1000.0 >= (double)o->cfg->commit_interval_ms)
                        err = alo_commit(&p, errstr, errstr_size);
                } else {
                    snprintf(errstr, errstr_size,
                             "outputs not delivered (%s): offsets not committed", bg_err_str(err));
                }
            }
        }
        if (err == BG_ERR_KAFKA && p.eos)
            err = recover_produce(&p, errstr, errstr_size);
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
        if (o->idle_exit_ms > 0 && started && !buffered(&p) && !restoring(&p) &&
            (now - idle_since) * 1000.0 > (double)o->idle_exit_ms)
            break;
    }
    st->busy_s = last - first;
    {
        uint64_t restored = p.gone_restored, refused = p.gone_refused + p.restore_refused;
        for (int32_t t = 0; p.tasks && t < p.n_tasks; t++)
            if (p.tasks[t].engine) {
                bg_engine_state_stats ss;
                bg_engine_state_stats_get(p.tasks[t].engine, &ss);
                restored += ss.restored;
                refused += ss.snapshots_refused;
            }
        st->restored = restored;
        st->snapshots_refused = refused;
        st->replay_skipped = p.replay_skipped;
        st->changelog_snapshots = p.snapshots_written;
        st->changelog_tombstones = p.tombstones_written;
    }
    if (!err)
        bg_info("stopping: flushing outputs and committing offsets");
    if (!err && p.eos && p.emitter) {
        err = commit_txn(&p, errstr, errstr_size);
        if (!err && p.rebuild)
            bg_warn("the last transaction was aborted: its input is read again after a restart");
    } else if (!err && p.emitter) {
        err = alo_commit(&p, errstr, errstr_size);
    }
    p.eos = false; /* the consumer's close revokes: nothing is left to commit */
    bg_emitter_free(p.emitter);
    p.emitter = NULL;
    /* buffered messages go back unprocessed (their offsets were not stored);
     * they must be destroyed before the consumer is */
    if (p.tasks)
        for (int32_t t = 0; t < p.n_tasks; t++)
            for (int k = 0; k < 3; k++)
                fifo_clear(&p.tasks[t].in[k]);
    st->txn_commits = p.txn_commits;
    st->txn_aborts = p.txn_aborts;
    bg_restorer_free(p.restorer);
    p.restorer = NULL;
    bg_consumer_free(p.consumer);
    if (p.tasks)
        for (int32_t t = 0; t < p.n_tasks; t++) {
            bg_engine_free(p.tasks[t].engine);
            skip_clear(&p.tasks[t].skip);
        }
    rd_kafka_topic_partition_list_destroy(p.txn_offsets);
    bg_buf_free(&p.snap);
    bg_buf_free(&p.scratch);
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
