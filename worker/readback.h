/* Reading burstguard's own outputs back (demo summary, tests): Verdict and
 * RevocationCommand in the Confluent framing, decoded with Avro-C's generic
 * reader against the embedded schemas, and a helper that drains topics.
 * Not on the hot path. Ownership: bg_rb_* structs own their strings; free
 * them with bg_rb_verdict_clear / bg_rb_revocation_clear. */
#ifndef BG_READBACK_H
#define BG_READBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../detectors/verdict.h"

typedef struct bg_rb_verdict {
    char *verdict_id, *identity, *workload_class, *envelope_id, *policy_version;
    int classification, phase, action; /* bg_class, bg_phase, bg_action */
    int32_t severity;
    int64_t window_start, window_end, decided_at, emitted_at;
    char *reasons; /* codes, comma-separated */
    char *reason_details; /* "code (detector): observed X, baseline B, threshold T, score S" per
                           * reason, one a line */
    char *new_secret_ids, *new_destinations, *review_routes; /* comma-separated */
    int n_source;
    bool replay;
} bg_rb_verdict;

typedef struct bg_rb_revocation {
    char *command_id, *verdict_id, *identity, *secret_id, *reason;
    int target; /* bg_target */
    int64_t issued_at;
    bool dry_run;
} bg_rb_revocation;

/* BG_ERR_BAD_MAGIC / TRUNCATED / MALFORMED on bad input. */
bg_err bg_rb_verdict_decode(const void *buf, size_t len, bg_rb_verdict *v);
void bg_rb_verdict_clear(bg_rb_verdict *v);
bg_err bg_rb_revocation_decode(const void *buf, size_t len, bg_rb_revocation *r);
void bg_rb_revocation_clear(bg_rb_revocation *r);

/* One message read back from a topic. */
typedef struct bg_rb_msg {
    void *key, *value;
    size_t key_len, value_len;
    int32_t partition;
    int64_t offset;
    char *headers; /* "name=value\n" per header */
} bg_rb_msg;

/* Read every partition of topic from the beginning to its end (as of the
 * call) with a group-less consumer. Returns the messages in *msgs (caller
 * frees with bg_rb_msgs_free). */
bg_err bg_rb_drain(const char *bootstrap, const char *topic, int timeout_ms, bg_rb_msg **msgs,
                   size_t *n, char *errstr, size_t errstr_size);
void bg_rb_msgs_free(bg_rb_msg *msgs, size_t n);
/* Value of a header in m->headers, or NULL (static buffer). */
const char *bg_rb_header(const bg_rb_msg *m, const char *name);

#endif
