/* Decoded input events: the contract records of DESIGN.md as C structs.
 *
 * Ownership: every bg_str in these structs is a view into the buffer the event
 * was decoded from (a Kafka message payload). They are valid only while that
 * buffer is; the engine copies whatever it keeps. A null Avro value is
 * {ptr = NULL, len = 0}; an empty string is {ptr != NULL, len = 0}.
 * Strings are not NUL-terminated. */
#ifndef BG_EVENT_H
#define BG_EVENT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct bg_str {
    const char *ptr; /* NULL for an Avro null */
    uint32_t len;    /* bytes, <= BG_MAX_STRING */
} bg_str;

/* Caps applied by the decoder to every size read from the wire. */
#define BG_MAX_STRING 4096u       /* one string or bytes value */
#define BG_MAX_SCOPES 64u         /* SecretIssued.scopes */
#define BG_MAX_ALLOWED_DESTS 64u  /* Envelope.allowed_destinations */
#define BG_MAX_MESSAGE (1u << 20) /* one framed message, bytes */

typedef enum bg_event_kind {
    BG_EV_USAGE = 0,    /* nhi.usage.v1, UsageEvent */
    BG_EV_SECRET = 1,   /* nhi.secrets.v1, SecretIssued */
    BG_EV_TOOLCALL = 2, /* nhi.toolcalls.v1, ToolCall */
    BG_EV_ENVELOPE = 3, /* nhi.envelopes.v1, Envelope */
    BG_EV_KIND_COUNT = 4
} bg_event_kind;

/* Symbol order is the reader schema's (schemas/secret_issued.avsc). */
typedef enum bg_secret_kind {
    BG_SK_API_KEY, BG_SK_OAUTH_GRANT, BG_SK_OIDC_TOKEN, BG_SK_X509_SVID, BG_SK_JWT_SVID,
    BG_SK_CLOUD_SESSION, BG_SK_DB_CREDENTIAL, BG_SK_SSH_CERT, BG_SK_SERVICE_IDENTITY, BG_SK_OTHER
} bg_secret_kind;

typedef enum bg_tool_status { BG_TS_OK, BG_TS_ERROR, BG_TS_DENIED } bg_tool_status;

typedef struct bg_usage {
    bg_str api;
    bg_str destination;
    int32_t api_calls;
    int64_t tokens_in;
    int64_t tokens_out;
    int64_t cost_micros; /* micro-dollars */
} bg_usage;

typedef struct bg_secret {
    bg_str secret_id;
    int32_t secret_kind; /* bg_secret_kind */
    bg_str issuer;
    bg_str scopes[BG_MAX_SCOPES];
    uint32_t n_scopes;
    int64_t ttl_seconds;
    bg_str subject; /* nullable */
} bg_secret;

typedef struct bg_toolcall {
    bg_str tool;
    bg_str destination;
    bg_str operation;
    bg_str credential_id; /* nullable */
    bg_str parent_tool;   /* nullable */
    bool side_effect;
    int32_t status; /* bg_tool_status */
    int64_t bytes_out;
} bg_toolcall;

/* One input event (usage, secret issuance or tool call). */
typedef struct bg_event {
    bg_event_kind kind;
    bg_str event_id;
    bg_str identity;
    bg_str owner;          /* nullable */
    bg_str workload_class; /* nullable */
    int64_t event_time;    /* ms since epoch, event time */
    bg_str trace_id;       /* nullable */
    union {
        bg_usage usage;
        bg_secret secret;
        bg_toolcall tool;
    } u;
} bg_event;

typedef struct bg_opt_i64 {
    bool set;
    int64_t v;
} bg_opt_i64;

/* nhi.envelopes.v1 record. */
typedef struct bg_envelope_msg {
    bg_str envelope_id;
    bg_str identity;       /* nullable */
    bg_str workload_class; /* nullable */
    bg_str owner;          /* nullable */
    int64_t not_before;    /* ms */
    int64_t not_after;     /* ms */
    bg_opt_i64 max_tokens_per_min;
    bg_opt_i64 max_api_calls_per_min;
    bg_opt_i64 max_cost_micros;
    bg_opt_i64 max_new_secrets;
    bg_opt_i64 max_new_destinations;
    bg_str allowed_destinations[BG_MAX_ALLOWED_DESTS];
    uint32_t n_allowed_destinations;
    bg_str approved_by;
    bg_str ticket; /* nullable */
    bool revoked;
    bg_str key_id;    /* nullable */
    bg_str signature; /* nullable bytes */
} bg_envelope_msg;

#endif
