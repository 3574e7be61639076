/* Labeled synthetic traffic: identities across workload classes (ci, agent,
 * etl) with normal usage, tool chains and hourly secret rotation, plus planted
 * bursts whose expected classification is known:
 *   PLANNED     an etl job far above its class limit inside a signed-off envelope
 *   UNEXPECTED  a CI runner at 3x its class's api-call limit, no envelope
 *   ANOMALOUS   an agent issued a new cloud session that it uses against a
 *               destination it has never reached (the secret must be revoked)
 * and benign near-misses that must not be ANOMALOUS: secret rotations against
 * known destinations, and an agent adopting a new destination with no new secret.
 *
 * With opts.full (the quality benchmark's set; the demo keeps the classic
 * one above), the steady traffic gets daily cycles, fan-out traces and
 * retries after errors, and every n/300 identities get one instance each of:
 * an UNEXPECTED CI call burst and agent token burst, a PLANNED etl burst
 * inside its envelope, three compromises (new secret + new destination; new
 * key + unusual tool chain; a recent credential on a new destination),
 * identity sprawl, slow low-volume exfiltration (ANOMALOUS), and benign
 * novelty: a rotation storm, a new trusted destination, a third-party
 * integration touching many destinations.
 *
 * Deterministic for a seed. Events come out in event-time order. All events
 * are held in memory, compactly (about 0.25 KB each with their strings). */
#ifndef BG_GEN_H
#define BG_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../detectors/event.h"
#include "../detectors/verdict.h"

typedef struct bg_gen bg_gen;

typedef struct bg_gen_opts {
    uint64_t seed;
    int identities;      /* normal identities, >= 60 (the planted ones are among them) */
    int64_t start_ms;    /* event time of the first event */
    int64_t duration_ms; /* >= 3 h, so the planted bursts come after the learning period */
    bool full;           /* the extended scenario set (needs identities >= 300) */
} bg_gen_opts;

typedef struct bg_gen_label {
    const char *identity;
    bool benign;                  /* a near-miss: must not be ANOMALOUS (expected unused) */
    bg_class expected;
    int64_t start_ms, end_ms;     /* the planted behaviour; for a compromise, from its first
                                   * observable use (a secret alone is not yet one) */
    const char *revoke_secret_id; /* the secret that must be revoked, or NULL */
    const char *what;             /* one line for the summary */
} bg_gen_label;

/* Defaults: seed 42, 300 identities, 2026-11-30T00:00Z, 3 h. */
void bg_gen_opts_default(bg_gen_opts *o);
bg_err bg_gen_new(const bg_gen_opts *o, bg_gen **out);
void bg_gen_free(bg_gen *g);

/* Number of events, and event i: a view into the generator's memory, valid
 * until the next call of bg_gen_event (one event is expanded at a time). */
size_t bg_gen_count(const bg_gen *g);
const bg_event *bg_gen_event(const bg_gen *g, size_t i);
/* Planted bursts and benign near-misses (expected != ANOMALOUS for those). */
size_t bg_gen_labels(const bg_gen *g, const bg_gen_label **labels);
/* The policy (YAML) the workload is meant to be judged by: its classes' limits
 * and the planned burst's envelope. Owned by the generator. */
const char *bg_gen_policy_yaml(const bg_gen *g);

#endif
