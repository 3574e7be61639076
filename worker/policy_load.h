/* Policy YAML -> bg_policy (detectors/policy.h), and its readable printout.
 *
 * Format (every key optional unless marked; unknown keys are errors):
 *
 *   windows:
 *     bucket: 60s              # durations: 500ms, 30s, 15m, 1h, 1d, or integer ms
 *     correlation: 15m
 *     learning_period: 1h
 *     allowed_lateness: 30s
 *     quiet_buckets: 2
 *   default_class: general     # name of a class below; else a built-in "default"
 *   classes:
 *     - name: ci               # required, unique
 *       match:
 *         identity_prefix: "spiffe://prod/ci/"
 *         identity_glob: "*ci-runner-[0-9]*"   # fnmatch(3) pattern
 *         owner: team-ci
 *       limits:
 *         api_calls_per_min: 600
 *         tokens_per_min: 200000
 *         cost_micros_per_hour: 5000000
 *         cost_micros_per_day: 50000000
 *         approval_cost_micros_per_hour: 2000000  # above: REVIEW unless an envelope covers it
 *         new_destinations_per_hour: 10
 *         secrets_per_hour: 20
 *         identity_grants_per_hour: 5   # SERVICE_IDENTITY / OAUTH_GRANT issuances (sprawl)
 *         owner_grants_per_hour: 20     # the same over all of an owner's identities
 *         secret_ttl_seconds: 86400     # longest TTL a secret may be issued with
 *       unexpected_action: THROTTLE     # or REVIEW
 *       sensitivity: 1.0                # change-point detectors, 0.25..4
 *       sprawl_action: REVIEW           # or REVOKE_IDENTITY: sprawl is ANOMALOUS
 *       persistent_destination:         # slow exfiltration: a rare destination first used
 *         visits: 3                     #   after the learning period, tool calls with side
 *         spread: 20m                   #   effects in 3 buckets over >= 20 min, within 2 h of
 *         window: 2h                    #   its first use: ANOMALOUS; visits: 0 = off
 *       review_routes: [platform, "app:{owner}"]
 *       enforce: true
 *   destinations:              # exact host names
 *     trusted: [api.openai.com]        # a first use is not novelty
 *     known_bad: [paste.exfil.example] # any use is a signal
 *     categories:                      # a first use adds `risk` (0..1) to a correlation
 *       - {name: paste-sites, risk: 0.2, destinations: [pastebin.com, hastebin.com]}
 *   envelopes:
 *     - id: chg-1042           # required, unique
 *       identity: spiffe://prod/etl/nightly   # selectors: at least one of
 *       workload_class: etl                   #   identity, workload_class, owner
 *       owner: data-eng
 *       not_before: 2026-12-01T00:00:00Z      # required; ISO-8601 (UTC 'Z' or +hh:mm) or epoch ms
 *       not_after: 2026-12-01T06:00:00Z       # required, after not_before
 *       limits: {api_calls_per_min: 5000, tokens_per_min: 1000000, cost_micros: 90000000,
 *                new_secrets: 2, new_destinations: 3}
 *       allowed_destinations: [api.openai.com, s3.eu-west-1.amazonaws.com]
 *       approved_by: alice     # required
 *       ticket: CHG-1042
 *       revoked: false         # a revoked envelope never matches
 *   approvers:                 # trusted signers of live envelopes (nhi.envelopes.v1)
 *     - key_id: alice-2026     # required, unique; the envelope's key_id names it
 *       public_key: BASE64     # required: 32-byte Ed25519 key, standard base64 (keygen's .pub)
 *       owners: [data-eng]     # optional: may only authorise envelopes with one of these owners
 *       workload_classes: [etl] # optional: ... whose workload_class is one of these
 *   With approvers listed, a live envelope must be signed by one of them
 *   (worker/sign.h has the canonical bytes); without, unsigned ones are accepted.
 *
 * The policy version is the first 16 hex digits of XXH3-64 of the file bytes.
 * Ownership: on success *out owns everything; on failure *out is freed. */
#ifndef BG_POLICY_LOAD_H
#define BG_POLICY_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "../detectors/policy.h"

/* errstr gets "FILE:LINE:COL: what is wrong". */
bg_err bg_policy_load(const char *path, bg_policy *out, char *errstr, size_t errstr_size);
bg_err bg_policy_load_text(const char *name, const char *text, size_t len, bg_policy *out,
                           char *errstr, size_t errstr_size);
/* A time as the policy writes it: YYYY-MM-DDTHH:MM:SS[.fff](Z|+hh:mm|-hh:mm)
 * or integer epoch ms, between 1970 and 9999. */
bool bg_policy_parse_time(const char *s, int64_t *out_ms);
/* What the policy means, in plain words (for `burstguard policy check`). */
void bg_policy_print(const bg_policy *p, FILE *f);

#endif
