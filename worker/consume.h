/* Consume stage: the group member. A librdkafka high-level consumer with the
 * cooperative-sticky assignor, subscribed to the three input topics, offsets
 * stored by the pipeline only after the outputs they caused are acknowledged
 * (enable.auto.offset.store=false) and committed by librdkafka's auto-commit,
 * on revocation and on close.
 *
 * Partition p of the co-partitioned inputs is one task; the consumer tells the
 * pipeline through on_assign / on_revoke which tasks it gained or lost.
 * Ownership: the consumer owns its handle; the config must outlive it. */
#ifndef BG_CONSUME_H
#define BG_CONSUME_H

#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "config.h"

typedef struct bg_consumer bg_consumer;

typedef struct bg_consumer_hooks {
    void *opaque;
    /* a topic-partition of kind (bg_event_kind) was assigned / revoked or lost */
    void (*on_assign)(void *opaque, int kind, int32_t partition);
    void (*on_revoke)(void *opaque, int kind, int32_t partition, bool lost);
    /* once per revocation, before its on_revoke calls and before the
     * partitions are unassigned: the pipeline commits (or, lost, aborts)
     * what it has pending; may be NULL */
    void (*before_revoke)(void *opaque, bool lost);
} bg_consumer_hooks;

/* group_id overrides kafka.group.id when not NULL. */
bg_err bg_consumer_new(const bg_config *cfg, const char *group_id, const bg_consumer_hooks *hooks,
                       bg_consumer **out, char *errstr, size_t errstr_size);
void bg_consumer_free(bg_consumer *c); /* closes (final commit) then destroys; NULL is a no-op */

/* Check, before subscribing, that the brokers answer, that the input topics
 * exist and are co-partitioned, and that the output topics exist; with
 * state.changelog, that topics.state exists with the inputs' partition
 * count (a task's changelog is the partition of the same number). Writes
 * the input partition count. */
bg_err bg_consumer_check_topics(bg_consumer *c, int timeout_ms, int32_t *partitions,
                                char *errstr, size_t errstr_size);
bg_err bg_consumer_subscribe(bg_consumer *c, char *errstr, size_t errstr_size);

/* Up to max messages: waits at most timeout_ms for the first, then takes
 * what is already queued. Serves rebalance callbacks. Returns the count. */
size_t bg_consumer_poll_batch(bg_consumer *c, rd_kafka_message_t **msgs, size_t max,
                              int timeout_ms);
/* The input kind of a message's topic, or -1. */
int bg_consumer_kind(bg_consumer *c, const rd_kafka_message_t *m);
/* Store next offsets (offset + 1) for the last message of each topic-partition. */
void bg_consumer_store(bg_consumer *c, rd_kafka_topic_partition_list_t *offsets);
/* Pause or resume one input topic-partition (back-pressure of the merge). */
void bg_consumer_pause(bg_consumer *c, int kind, int32_t partition, bool pause);
/* Messages between next_offset and the high watermark last reported by the
 * broker, or -1 when unknown. */
int64_t bg_consumer_lag(bg_consumer *c, int kind, int32_t partition, int64_t next_offset);
/* True once the group has given this member an assignment (possibly empty):
 * a member with more peers than partitions is still a ready member. */
bool bg_consumer_joined(bg_consumer *c);
/* The librdkafka handle (group metadata for transactions). */
rd_kafka_t *bg_consumer_rk(bg_consumer *c);
/* Seek every input topic-partition of the given tasks (mask per partition,
 * NULL = all assigned) back to its committed offset (the beginning when none). */
bg_err bg_consumer_rewind(bg_consumer *c, const int32_t *partitions, size_t n, char *errstr,
                          size_t errstr_size);
/* Non-zero fatal error from librdkafka, with its reason. */
bool bg_consumer_fatal(bg_consumer *c, char *errstr, size_t errstr_size);

#endif
