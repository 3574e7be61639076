/* bg_err: the one error enum of burstguard.
 *
 * 0 is success. Numbers are never reused or renumbered: they appear in
 * metrics and dead-letter headers (as bg_err_name()). Add new codes at the end. */
#ifndef BG_ERR_H
#define BG_ERR_H

typedef enum bg_err {
    BG_OK = 0,
    BG_ERR_NOMEM = 1,          /* allocation failed or a memory cap was hit */
    BG_ERR_INVALID = 2,        /* bad argument from the caller */
    BG_ERR_TRUNCATED = 3,      /* message ends before the value it announces */
    BG_ERR_BAD_MAGIC = 4,      /* first byte is not the Confluent magic 0 */
    BG_ERR_UNKNOWN_SCHEMA = 5, /* schema id not known to the registry or local map */
    BG_ERR_OVERSIZED = 6,      /* a length, count or the message exceeds its cap */
    BG_ERR_MISSING_FIELD = 7,  /* a required reader field has no writer field and no default */
    BG_ERR_SCHEMA = 8,         /* a schema is invalid or cannot be resolved against ours */
    BG_ERR_MALFORMED = 9,      /* bad varint, union index, enum index, trailing bytes */
    BG_ERR_WRONG_TYPE = 10,    /* the writer schema is a record of another kind than the topic's */
    BG_ERR_NO_KEY = 11,        /* input message without a key */
    BG_ERR_KEY_MISMATCH = 12,  /* message key differs from the event's identity */
    BG_ERR_CONFIG = 13,        /* configuration or policy error */
    BG_ERR_IO = 14,            /* file or network I/O failed */
    BG_ERR_KAFKA = 15,         /* librdkafka reported an error */
    BG_ERR_FULL = 16,          /* a bounded container is full */
    BG_ERR_BAD_VALUE = 17,     /* a decoded value is out of its allowed range */
    BG_ERR_UNSIGNED = 18,      /* approver keys are configured but the record carries no signature */
    BG_ERR_BAD_SIGNATURE = 19, /* the signature does not verify over the canonical bytes */
    BG_ERR_UNTRUSTED_KEY = 20, /* signed by a key_id that is not a trusted approver */
    BG_ERR_KEY_SCOPE = 21,     /* the approver's key may not authorise this selector */
    BG_ERR_SNAPSHOT = 22,      /* a state snapshot is corrupt or of an unknown format version */
} bg_err;

/* Human-readable one-line description. Never NULL. */
const char *bg_err_str(bg_err err);
/* Stable snake_case name, used as the dead-letter reason and metric label. */
const char *bg_err_name(bg_err err);

#endif
