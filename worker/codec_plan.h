/* The resolving decoder behind bg_codec (internal to worker/codec*.c).
 *
 * A reader (bg_codec_reader) is one of our input records: its schema text,
 * the table that maps each reader field to a slot of bg_event or
 * bg_envelope_msg, and each field's default parsed from the text. A plan
 * (bg_codec_plan) is one writer schema compiled against one reader: a flat
 * list of read / skip / default steps that bg_codec_plan_run interprets over
 * an Avro body without allocating.
 *
 * Ownership: a plan borrows its reader and the writer avro_schema_t (for
 * symbol names in error messages); both must outlive it. */
#ifndef BG_CODEC_PLAN_H
#define BG_CODEC_PLAN_H

#include <avro.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"

/* What a reader field is in C, and so which writer types can feed it. */
typedef enum bg_codec_slot_kind {
    BG_SLOT_STR,     /* string -> bg_str */
    BG_SLOT_NSTR,    /* ["null","string"] -> bg_str, {NULL,0} for null */
    BG_SLOT_NBYTES,  /* ["null","bytes"] -> bg_str, {NULL,0} for null */
    BG_SLOT_LONG,    /* long -> int64_t */
    BG_SLOT_NLONG,   /* ["null","long"] -> bg_opt_i64 */
    BG_SLOT_INT,     /* int -> int32_t */
    BG_SLOT_BOOL,    /* boolean -> bool */
    BG_SLOT_ENUM,    /* enum -> int32_t, the reader's symbol index */
    BG_SLOT_ARR_STR, /* array<string> -> bg_str[cap] + uint32_t count */
} bg_codec_slot_kind;

typedef struct bg_codec_slot {
    const char *name;   /* reader field name */
    uint8_t kind;       /* bg_codec_slot_kind */
    uint32_t off;       /* offset of the value in the decoded struct */
    uint32_t count_off; /* BG_SLOT_ARR_STR: offset of the uint32_t count */
    uint32_t cap;       /* BG_SLOT_ARR_STR: capacity of the array */
} bg_codec_slot;

typedef struct bg_codec_reader bg_codec_reader;
typedef struct bg_codec_plan bg_codec_plan;

/* Build the reader of an input record (usage, secret, toolcall, envelope)
 * from its schema text; checks that the text and the slot table agree. */
bg_err bg_codec_reader_new(bg_codec_reader **out, bg_record rec, const char *text, size_t len,
                           char *why, size_t why_size);
void bg_codec_reader_free(bg_codec_reader *r);
/* The slot table, in reader field order, and the reader's enum symbol
 * (NULL when out of range) for encoders that go by name. */
const bg_codec_slot *bg_codec_reader_slots(const bg_codec_reader *r, size_t *n);
const char *bg_codec_reader_symbol(const bg_codec_reader *r, size_t slot, int32_t index);

/* Compile writer (a record, already checked to carry the reader's full name)
 * against reader. BG_ERR_MISSING_FIELD names the field; BG_ERR_SCHEMA names
 * the field whose types do not resolve. */
bg_err bg_codec_plan_compile(bg_codec_plan **out, const bg_codec_reader *reader,
                             avro_schema_t writer, char *why, size_t why_size);
void bg_codec_plan_free(bg_codec_plan *p);
/* Decode one Avro body (the framing already removed) into dst, a bg_event or
 * bg_envelope_msg. The whole body must be consumed. dst is unspecified on
 * error. */
bg_err bg_codec_plan_run(const bg_codec_plan *p, const uint8_t *body, size_t len, void *dst,
                         char *why, size_t why_size);

#endif
