#include "err.h"

static const struct {
    const char *name;
    const char *desc;
} err_table[] = {
    [BG_OK] = {"ok", "success"},
    [BG_ERR_NOMEM] = {"nomem", "out of memory or memory cap reached"},
    [BG_ERR_INVALID] = {"invalid", "invalid argument"},
    [BG_ERR_TRUNCATED] = {"truncated", "message truncated"},
    [BG_ERR_BAD_MAGIC] = {"bad_magic", "wrong magic byte (expected Confluent framing, magic 0)"},
    [BG_ERR_UNKNOWN_SCHEMA] = {"unknown_schema", "unknown schema id"},
    [BG_ERR_OVERSIZED] = {"oversized", "size exceeds its cap"},
    [BG_ERR_MISSING_FIELD] = {"missing_field", "required field missing from the writer schema"},
    [BG_ERR_SCHEMA] = {"schema", "schema invalid or not resolvable"},
    [BG_ERR_MALFORMED] = {"malformed", "malformed Avro data"},
    [BG_ERR_WRONG_TYPE] = {"wrong_type", "record type does not belong on this topic"},
    [BG_ERR_NO_KEY] = {"no_key", "message has no key"},
    [BG_ERR_KEY_MISMATCH] = {"key_mismatch", "message key differs from the event identity"},
    [BG_ERR_CONFIG] = {"config", "configuration error"},
    [BG_ERR_IO] = {"io", "I/O error"},
    [BG_ERR_KAFKA] = {"kafka", "Kafka error"},
    [BG_ERR_FULL] = {"full", "container full"},
    [BG_ERR_BAD_VALUE] = {"bad_value", "value out of range"},
    [BG_ERR_UNSIGNED] = {"unsigned", "record is not signed but approver keys are configured"},
    [BG_ERR_BAD_SIGNATURE] = {"bad_signature", "signature does not verify"},
    [BG_ERR_UNTRUSTED_KEY] = {"untrusted_key", "signed by a key that is not trusted"},
    [BG_ERR_KEY_SCOPE] = {"key_scope", "the signing key may not authorise this selector"},
    [BG_ERR_SNAPSHOT] = {"snapshot", "a state snapshot is corrupt or of an unknown format version"},
};

const char *bg_err_str(bg_err err) {
    unsigned i = (unsigned)err;
    if (i >= sizeof err_table / sizeof err_table[0] || !err_table[i].desc)
        return "unknown error";
    return err_table[i].desc;
}

const char *bg_err_name(bg_err err) {
    unsigned i = (unsigned)err;
    if (i >= sizeof err_table / sizeof err_table[0] || !err_table[i].name)
        return "unknown";
    return err_table[i].name;
}
