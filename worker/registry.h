/* Schema Registry client: writer schemas by id from a Confluent-compatible
 * registry (`GET {url}/schemas/ids/{id}`, answer {"schema": "<text>"}), over
 * libcurl, with optional basic auth (username + a password read from a file)
 * and TLS (certificates verified; an optional CA file).
 *
 * Ids are immutable in a registry, so every answer is cached for the life of
 * the process: a schema's text, and "does not exist" (404 with error_code
 * 40403) or "is not a valid Avro schema" as a negative entry. Anything else
 * (unreachable, timeout, 5xx, 401/403, a 404 without 40403: a wrong base URL)
 * is transient and never cached: bg_registry_resolve retries it with
 * exponential backoff, so a message waits for its schema instead of being
 * dead-lettered while the registry is down.
 *
 * Not thread-safe: one handle per thread (the worker has one).
 *
 * Ownership: bg_registry owns the cached texts; a text returned by
 * bg_registry_fetch stays valid until bg_registry_free. */
#ifndef BG_REGISTRY_H
#define BG_REGISTRY_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "../detectors/err.h"
#include "codec.h"
#include "config.h"

typedef struct bg_registry bg_registry;

typedef struct bg_registry_opts {
    const char *url;           /* base URL, http:// or https://; required */
    const char *username;      /* basic auth user; NULL = no auth */
    const char *password_file; /* its password (first line); required with username */
    const char *ca_file;       /* PEM bundle for https; NULL = the system's */
    int64_t timeout_ms;        /* per request, connect included; >= 1 */
    int64_t retry_max_ms;      /* backoff cap between attempts of bg_registry_resolve */
    int max_attempts;          /* bg_registry_resolve gives up after this many; 0 = until stop */
} bg_registry_opts;

/* The options of a worker config (schema_registry.*); *out is NULL when no
 * URL is configured. BG_ERR_CONFIG with one line in errstr for a bad URL, an
 * unreadable password file or a username without a password file. */
bg_err bg_registry_from_config(const bg_config *cfg, bg_registry **out, char *errstr,
                               size_t errstr_size);
bg_err bg_registry_new(const bg_registry_opts *o, bg_registry **out, char *errstr,
                       size_t errstr_size);
void bg_registry_free(bg_registry *r); /* NULL is a no-op */

/* One lookup, from the cache or with one request. BG_OK with the schema text
 * in *text / *len; BG_ERR_UNKNOWN_SCHEMA when the registry says the id does
 * not exist; BG_ERR_SCHEMA when it is not an Avro schema; BG_ERR_CONFIG when
 * the registry refuses the credentials (401, 403); BG_ERR_IO when it is
 * unreachable, too slow, answers 5xx or something unexpected. why gets one
 * line (never the password). */
bg_err bg_registry_fetch(bg_registry *r, int32_t id, const char **text, size_t *len, char *why,
                         size_t why_size);

/* Make id known to codec: fetch it (retrying transient failures with backoff
 * from 200 ms doubling to retry_max_ms, a warning per failure, until success,
 * max_attempts or *stop) and register it with bg_codec_add_schema. Returns
 * BG_OK, BG_ERR_UNKNOWN_SCHEMA or BG_ERR_SCHEMA (the id's final answer, cached:
 * the message is a dead letter), or the last transient error when stopped or
 * out of attempts (the message must not be dead-lettered). */
bg_err bg_registry_resolve(bg_registry *r, bg_codec *codec, int32_t id, volatile sig_atomic_t *stop,
                           char *why, size_t why_size);

/* Requests sent to the registry so far (for tests and logs). */
uint64_t bg_registry_requests(const bg_registry *r);

#endif
