/* The resolving Avro decoder: compile once per (writer, reader), run per message.
 *
 * Why our own: Avro-C 1.11.1's resolver refuses a reader field with a default
 * that the writer lacks, crashes on some evolved shapes and decodes ~10x
 * slower than a specialised decoder (see DESIGN.md "Wire format"). Avro-C
 * still parses and validates every schema; this file only walks them.
 *
 * Reader side. Each input record has a slot table: reader field name -> kind
 * and offset in bg_event / bg_envelope_msg. bg_codec_reader_new checks the
 * table against the embedded reader schema (names, order, types) and parses
 * each field's "default" with jansson, because Avro-C does not expose
 * defaults.
 *
 * Compile (Avro spec, "Schema Resolution"). Writer fields are walked in
 * writer order; a field whose name is a reader slot becomes a read step (with
 * promotions int->long, bytes<->string, union<->non-union, enum by symbol
 * name with the reader's "default" symbol for unknown ones); any other field
 * becomes a skip step over a skip tree compiled from the writer type (every
 * Avro type, recursive named types included). Reader slots the writer lacks
 * get a default step, or the compile fails with BG_ERR_MISSING_FIELD naming
 * the field. A writer union branch that cannot feed the reader slot compiles
 * to a FAIL step, so only messages that use that branch are rejected.
 *
 *   steps[]  top-level ops, writer field order, then defaults
 *   sub[]    union branches and array item ops, referenced by index
 *   skip[]   skip-tree nodes; kids[] holds record fields / union branches
 *   emap[]   writer enum index -> reader enum index (-1: unknown, no default)
 *
 * Run. A switch loop over steps, varints decoded inline, every length
 * checked: negative -> MALFORMED, over its cap (BG_MAX_STRING per read string,
 * slot capacity per read array, BG_MAX_MESSAGE items per message for skipped
 * arrays and maps) -> OVERSIZED, beyond the buffer -> TRUNCATED. Strict where
 * Avro-C is lax (it silently truncates over-long varints and accepts any byte
 * as a boolean): a varint whose value does not fit its type, a boolean byte
 * other than 0/1, or an array block whose byte size disagrees with its items
 * is MALFORMED. Nothing is allocated; bg_str views point into the body. */
#include "codec_plan.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Reader slot tables, in the field order of schemas/NAME.avsc                */
/* ------------------------------------------------------------------------ */

#define EV(f) ((uint32_t)offsetof(bg_event, f))
#define EN(f) ((uint32_t)offsetof(bg_envelope_msg, f))

#define COMMON_SLOTS                                      \
    {"event_id", BG_SLOT_STR, EV(event_id), 0, 0},       \
    {"identity", BG_SLOT_STR, EV(identity), 0, 0},       \
    {"owner", BG_SLOT_NSTR, EV(owner), 0, 0},            \
    {"workload_class", BG_SLOT_NSTR, EV(workload_class), 0, 0}, \
    {"event_time", BG_SLOT_LONG, EV(event_time), 0, 0},  \
    {"trace_id", BG_SLOT_NSTR, EV(trace_id), 0, 0}

static const bg_codec_slot usage_slots[] = {
    COMMON_SLOTS,
    {"api", BG_SLOT_STR, EV(u.usage.api), 0, 0},
    {"destination", BG_SLOT_STR, EV(u.usage.destination), 0, 0},
    {"api_calls", BG_SLOT_INT, EV(u.usage.api_calls), 0, 0},
    {"tokens_in", BG_SLOT_LONG, EV(u.usage.tokens_in), 0, 0},
    {"tokens_out", BG_SLOT_LONG, EV(u.usage.tokens_out), 0, 0},
    {"cost_micros", BG_SLOT_LONG, EV(u.usage.cost_micros), 0, 0},
};

static const bg_codec_slot secret_slots[] = {
    COMMON_SLOTS,
    {"secret_id", BG_SLOT_STR, EV(u.secret.secret_id), 0, 0},
    {"secret_kind", BG_SLOT_ENUM, EV(u.secret.secret_kind), 0, 0},
    {"issuer", BG_SLOT_STR, EV(u.secret.issuer), 0, 0},
    {"scopes", BG_SLOT_ARR_STR, EV(u.secret.scopes), EV(u.secret.n_scopes), BG_MAX_SCOPES},
    {"ttl_seconds", BG_SLOT_LONG, EV(u.secret.ttl_seconds), 0, 0},
    {"subject", BG_SLOT_NSTR, EV(u.secret.subject), 0, 0},
};

static const bg_codec_slot tool_slots[] = {
    COMMON_SLOTS,
    {"tool", BG_SLOT_STR, EV(u.tool.tool), 0, 0},
    {"destination", BG_SLOT_STR, EV(u.tool.destination), 0, 0},
    {"operation", BG_SLOT_STR, EV(u.tool.operation), 0, 0},
    {"credential_id", BG_SLOT_NSTR, EV(u.tool.credential_id), 0, 0},
    {"parent_tool", BG_SLOT_NSTR, EV(u.tool.parent_tool), 0, 0},
    {"side_effect", BG_SLOT_BOOL, EV(u.tool.side_effect), 0, 0},
    {"status", BG_SLOT_ENUM, EV(u.tool.status), 0, 0},
    {"bytes_out", BG_SLOT_LONG, EV(u.tool.bytes_out), 0, 0},
};

static const bg_codec_slot envelope_slots[] = {
    {"envelope_id", BG_SLOT_STR, EN(envelope_id), 0, 0},
    {"identity", BG_SLOT_NSTR, EN(identity), 0, 0},
    {"workload_class", BG_SLOT_NSTR, EN(workload_class), 0, 0},
    {"owner", BG_SLOT_NSTR, EN(owner), 0, 0},
    {"not_before", BG_SLOT_LONG, EN(not_before), 0, 0},
    {"not_after", BG_SLOT_LONG, EN(not_after), 0, 0},
    {"max_tokens_per_min", BG_SLOT_NLONG, EN(max_tokens_per_min), 0, 0},
    {"max_api_calls_per_min", BG_SLOT_NLONG, EN(max_api_calls_per_min), 0, 0},
    {"max_cost_micros", BG_SLOT_NLONG, EN(max_cost_micros), 0, 0},
    {"max_new_secrets", BG_SLOT_NLONG, EN(max_new_secrets), 0, 0},
    {"max_new_destinations", BG_SLOT_NLONG, EN(max_new_destinations), 0, 0},
    {"allowed_destinations", BG_SLOT_ARR_STR, EN(allowed_destinations),
     EN(n_allowed_destinations), BG_MAX_ALLOWED_DESTS},
    {"approved_by", BG_SLOT_STR, EN(approved_by), 0, 0},
    {"ticket", BG_SLOT_NSTR, EN(ticket), 0, 0},
    {"revoked", BG_SLOT_BOOL, EN(revoked), 0, 0},
    {"key_id", BG_SLOT_NSTR, EN(key_id), 0, 0},
    {"signature", BG_SLOT_NBYTES, EN(signature), 0, 0},
};

#define MAX_SLOTS 32u
#define MAX_DEPTH 64u /* nesting of skipped writer values */

static const struct {
    const bg_codec_slot *slots;
    size_t n;
} slot_tables[] = {
    [BG_REC_USAGE] = {usage_slots, sizeof usage_slots / sizeof usage_slots[0]},
    [BG_REC_SECRET] = {secret_slots, sizeof secret_slots / sizeof secret_slots[0]},
    [BG_REC_TOOLCALL] = {tool_slots, sizeof tool_slots / sizeof tool_slots[0]},
    [BG_REC_ENVELOPE] = {envelope_slots, sizeof envelope_slots / sizeof envelope_slots[0]},
};

/* ------------------------------------------------------------------------ */
/* Plan representation                                                      */
/* ------------------------------------------------------------------------ */

enum vop_code {
    V_STR,          /* string|bytes -> bg_str */
    V_NULLSTR,      /* writer null (or default null) -> bg_str {NULL,0} */
    V_I64,          /* long -> int64 */
    V_I32_I64,      /* int -> int64 */
    V_I32,          /* int -> int32 */
    V_OPT_I64,      /* long -> bg_opt_i64 */
    V_OPT_I32_I64,  /* int -> bg_opt_i64 */
    V_OPT_NULL,     /* null (or default null) -> bg_opt_i64 unset */
    V_BOOL,         /* boolean -> bool */
    V_ENUM,         /* enum -> int32 via emap[a..a+b) */
    V_NSTR,         /* fused ["null",string|bytes]: a = null branch index */
    V_NOPT_I64,     /* fused ["null","long"]: a = null branch index */
    V_NOPT_I32_I64, /* fused ["null","int"]: a = null branch index */
    V_ARR,          /* array -> bg_str[k], item op sub[a], count at b */
    V_UNION,        /* n branches at sub[a..a+n) */
    V_SKIP,         /* skip writer value, tree at skip[a] */
    V_FAIL,         /* writer union branch that the reader slot cannot take */
    D_STR,          /* default string of the reader slot */
    D_I64,          /* default k -> int64 */
    D_I32,          /* default k -> int32 (ints and enum indexes) */
    D_OPT_I64,      /* default k -> bg_opt_i64 set */
    D_BOOL,         /* default k -> bool */
    D_ARR,          /* default array of the reader slot */
};

typedef struct vop {
    uint8_t op;    /* vop_code */
    uint8_t n;     /* V_UNION: writer branch count */
    uint16_t slot; /* reader slot index, for messages and defaults */
    uint32_t off;  /* destination offset */
    uint32_t a, b; /* per op, see vop_code */
    int64_t k;     /* V_ARR: capacity; D_*: the constant */
} vop;

enum skip_code { S_NULL, S_BOOL, S_INT, S_LONG, S_FIXED, S_BYTES, S_ENUM, S_ARRAY, S_MAP,
                 S_UNION, S_RECORD };

typedef struct snode {
    uint8_t t;  /* skip_code */
    uint8_t zw; /* 1 when a value of this type may take zero bytes */
    uint32_t n; /* S_FIXED size, S_ENUM symbols, S_UNION branches, S_RECORD fields */
    uint32_t a; /* S_ARRAY/S_MAP child node; S_UNION/S_RECORD first kid index */
} snode;

struct bg_codec_plan {
    const bg_codec_reader *reader;
    vop *steps;
    uint32_t n_steps, cap_steps;
    vop *sub;
    uint32_t n_sub, cap_sub;
    snode *skip;
    uint32_t n_skip, cap_skip;
    uint32_t *kids;
    uint32_t n_kids, cap_kids;
    int32_t *emap;
    uint32_t n_emap, cap_emap;
};

typedef struct rdefault {
    bool has;       /* the reader field declares a default */
    vop op;         /* the step that applies it */
    char *str;      /* D_STR: owned copy */
    uint32_t str_len;
    bg_str *arr;    /* D_ARR: owned views into arr_text */
    char **arr_text;
    uint32_t arr_n;
} rdefault;

struct bg_codec_reader {
    bg_record rec;
    const bg_codec_slot *slots;
    size_t n_slots;
    avro_schema_t schema;            /* owned */
    rdefault def[MAX_SLOTS];
    avro_schema_t enums[MAX_SLOTS];  /* BG_SLOT_ENUM: the reader enum (borrowed from schema) */
    int32_t enum_default[MAX_SLOTS]; /* reader symbol for unknown writer symbols, -1 none */
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

__attribute__((format(printf, 3, 4))) static void say(char *why, size_t n, const char *fmt, ...) {
    if (!why || n == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
}

/* Grow *p (elements of size elem) so that index `need` fits. */
static bool grow(void **p, uint32_t *cap, uint32_t need, size_t elem) {
    if (need < *cap)
        return true;
    uint32_t nc = *cap ? *cap * 2 : 16;
    while (nc <= need)
        nc *= 2;
    void *np = realloc(*p, (size_t)nc * elem);
    if (!np)
        return false;
    *p = np;
    *cap = nc;
    return true;
}

static avro_schema_t deref(avro_schema_t s) {
    /* a chain of links is bounded by the number of named types; 64 is plenty */
    for (int i = 0; i < 64 && s && avro_typeof(s) == AVRO_LINK; i++)
        s = avro_schema_link_target(s);
    return s;
}

static const char *type_name(avro_schema_t s) {
    s = deref(s);
    if (!s)
        return "?";
    switch (avro_typeof(s)) {
    case AVRO_STRING: return "string";
    case AVRO_BYTES: return "bytes";
    case AVRO_INT32: return "int";
    case AVRO_INT64: return "long";
    case AVRO_FLOAT: return "float";
    case AVRO_DOUBLE: return "double";
    case AVRO_BOOLEAN: return "boolean";
    case AVRO_NULL: return "null";
    case AVRO_RECORD: return "record";
    case AVRO_ENUM: return "enum";
    case AVRO_FIXED: return "fixed";
    case AVRO_MAP: return "map";
    case AVRO_ARRAY: return "array";
    case AVRO_UNION: return "union";
    default: return "?";
    }
}

static const char *kind_name(uint8_t kind) {
    static const char *const names[] = {"string", "[null,string]", "[null,bytes]", "long",
                                        "[null,long]", "int", "boolean", "enum", "array<string>"};
    return kind < sizeof names / sizeof names[0] ? names[kind] : "?";
}

/* A union of exactly null and one `t`; *null_idx gets null's branch. */
static bool is_nullable(avro_schema_t s, avro_type_t t, uint32_t *null_idx) {
    s = deref(s);
    if (!s || avro_typeof(s) != AVRO_UNION || avro_schema_union_size(s) != 2)
        return false;
    avro_schema_t b0 = deref(avro_schema_union_branch(s, 0));
    avro_schema_t b1 = deref(avro_schema_union_branch(s, 1));
    if (!b0 || !b1)
        return false;
    if (avro_typeof(b0) == AVRO_NULL && avro_typeof(b1) == t) {
        *null_idx = 0;
        return true;
    }
    if (avro_typeof(b1) == AVRO_NULL && avro_typeof(b0) == t) {
        *null_idx = 1;
        return true;
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* Readers                                                                  */
/* ------------------------------------------------------------------------ */

static bool kind_matches(const bg_codec_slot *sl, avro_schema_t t) {
    uint32_t ni;
    t = deref(t);
    switch (sl->kind) {
    case BG_SLOT_STR: return avro_typeof(t) == AVRO_STRING;
    case BG_SLOT_NSTR: return is_nullable(t, AVRO_STRING, &ni);
    case BG_SLOT_NBYTES: return is_nullable(t, AVRO_BYTES, &ni);
    case BG_SLOT_LONG: return avro_typeof(t) == AVRO_INT64;
    case BG_SLOT_NLONG: return is_nullable(t, AVRO_INT64, &ni);
    case BG_SLOT_INT: return avro_typeof(t) == AVRO_INT32;
    case BG_SLOT_BOOL: return avro_typeof(t) == AVRO_BOOLEAN;
    case BG_SLOT_ENUM: return avro_typeof(t) == AVRO_ENUM;
    case BG_SLOT_ARR_STR:
        return avro_typeof(t) == AVRO_ARRAY &&
               avro_typeof(deref(avro_schema_array_items(t))) == AVRO_STRING;
    default: return false;
    }
}

static int32_t enum_index(avro_schema_t e, const char *sym) {
    int n = avro_schema_enum_number_of_symbols(e);
    for (int i = 0; i < n; i++) {
        const char *s = avro_schema_enum_get(e, i);
        if (s && strcmp(s, sym) == 0)
            return (int32_t)i;
    }
    return -1;
}

/* Parse the JSON default of slot i into r->def[i]. */
static bg_err parse_default(bg_codec_reader *r, size_t i, json_t *dj, char *why, size_t ws) {
    const bg_codec_slot *sl = &r->slots[i];
    rdefault *d = &r->def[i];
    vop *o = &d->op;
    memset(o, 0, sizeof *o);
    o->slot = (uint16_t)i;
    o->off = sl->off;
    d->has = true;
    switch (sl->kind) {
    case BG_SLOT_STR:
    case BG_SLOT_NSTR:
    case BG_SLOT_NBYTES:
        if (json_is_null(dj) && sl->kind != BG_SLOT_STR) {
            o->op = V_NULLSTR;
            return BG_OK;
        }
        if (json_is_string(dj) && json_string_length(dj) <= BG_MAX_STRING) {
            size_t n = json_string_length(dj);
            d->str = malloc(n + 1);
            if (!d->str)
                return BG_ERR_NOMEM;
            memcpy(d->str, json_string_value(dj), n + 1);
            d->str_len = (uint32_t)n;
            o->op = D_STR;
            return BG_OK;
        }
        break;
    case BG_SLOT_LONG:
    case BG_SLOT_INT:
        if (json_is_integer(dj)) {
            json_int_t v = json_integer_value(dj);
            if (sl->kind == BG_SLOT_INT && (v < INT32_MIN || v > INT32_MAX))
                break;
            o->op = sl->kind == BG_SLOT_INT ? D_I32 : D_I64;
            o->k = (int64_t)v;
            return BG_OK;
        }
        break;
    case BG_SLOT_NLONG:
        if (json_is_null(dj)) {
            o->op = V_OPT_NULL;
            return BG_OK;
        }
        if (json_is_integer(dj)) {
            o->op = D_OPT_I64;
            o->k = (int64_t)json_integer_value(dj);
            return BG_OK;
        }
        break;
    case BG_SLOT_BOOL:
        if (json_is_boolean(dj)) {
            o->op = D_BOOL;
            o->k = json_is_true(dj) ? 1 : 0;
            return BG_OK;
        }
        break;
    case BG_SLOT_ENUM:
        if (json_is_string(dj)) {
            int32_t idx = enum_index(r->enums[i], json_string_value(dj));
            if (idx < 0)
                break;
            o->op = D_I32;
            o->k = idx;
            return BG_OK;
        }
        break;
    case BG_SLOT_ARR_STR:
        if (json_is_array(dj) && json_array_size(dj) <= sl->cap) {
            size_t n = json_array_size(dj);
            d->arr = calloc(n ? n : 1, sizeof *d->arr);
            d->arr_text = calloc(n ? n : 1, sizeof *d->arr_text);
            if (!d->arr || !d->arr_text)
                return BG_ERR_NOMEM;
            for (size_t k = 0; k < n; k++) {
                json_t *e = json_array_get(dj, k);
                if (!json_is_string(e) || json_string_length(e) > BG_MAX_STRING)
                    goto bad;
                size_t len = json_string_length(e);
                d->arr_text[k] = malloc(len + 1);
                if (!d->arr_text[k])
                    return BG_ERR_NOMEM;
                memcpy(d->arr_text[k], json_string_value(e), len + 1);
                d->arr[k].ptr = d->arr_text[k];
                d->arr[k].len = (uint32_t)len;
                d->arr_n = (uint32_t)(k + 1);
            }
            o->op = D_ARR;
            o->b = sl->count_off;
            return BG_OK;
        }
        break;
    default:
        break;
    }
bad:
    say(why, ws, "reader field %s: default does not match its type %s", sl->name,
        kind_name(sl->kind));
    return BG_ERR_SCHEMA;
}

bg_err bg_codec_reader_new(bg_codec_reader **out, bg_record rec, const char *text, size_t len,
                           char *why, size_t why_size) {
    *out = NULL;
    if ((unsigned)rec > (unsigned)BG_REC_ENVELOPE) {
        say(why, why_size, "record %d is not an input record", (int)rec);
        return BG_ERR_INVALID;
    }
    bg_codec_reader *r = calloc(1, sizeof *r);
    if (!r)
        return BG_ERR_NOMEM;
    r->rec = rec;
    r->slots = slot_tables[rec].slots;
    r->n_slots = slot_tables[rec].n;
    bg_err err = BG_ERR_SCHEMA;
    json_t *root = NULL;
    if (avro_schema_from_json_length(text, len, &r->schema) != 0) {
        say(why, why_size, "reader schema: %s", avro_strerror());
        goto fail;
    }
    json_error_t je;
    root = json_loadb(text, len, 0, &je);
    json_t *fields = root ? json_object_get(root, "fields") : NULL;
    if (!json_is_array(fields) || avro_typeof(r->schema) != AVRO_RECORD) {
        say(why, why_size, "reader schema is not a record");
        goto fail;
    }
    size_t nf = avro_schema_record_size(r->schema);
    if (nf != r->n_slots || json_array_size(fields) != nf || nf > MAX_SLOTS) {
        say(why, why_size, "reader schema %s has %zu fields, the slot table %zu",
            avro_schema_name(r->schema), nf, r->n_slots);
        goto fail;
    }
    for (size_t i = 0; i < nf; i++) {
        const bg_codec_slot *sl = &r->slots[i];
        const char *fname = avro_schema_record_field_name(r->schema, (int)i);
        avro_schema_t ft = avro_schema_record_field_get_by_index(r->schema, (int)i);
        if (!fname || strcmp(fname, sl->name) != 0 || !kind_matches(sl, ft)) {
            say(why, why_size, "reader field %zu (%s) does not match slot %s of type %s", i,
                fname ? fname : "?", sl->name, kind_name(sl->kind));
            goto fail;
        }
        json_t *fj = json_array_get(fields, i);
        r->enum_default[i] = -1;
        if (sl->kind == BG_SLOT_ENUM) {
            r->enums[i] = deref(ft);
            json_t *ed = json_object_get(json_object_get(fj, "type"), "default");
            if (json_is_string(ed)) {
                r->enum_default[i] = enum_index(r->enums[i], json_string_value(ed));
                if (r->enum_default[i] < 0) {
                    say(why, why_size, "reader enum of %s: default symbol is not a symbol",
                        sl->name);
                    goto fail;
                }
            }
        }
        json_t *dj = json_object_get(fj, "default");
        if (dj) {
            err = parse_default(r, i, dj, why, why_size);
            if (err != BG_OK)
                goto fail;
        }
    }
    json_decref(root);
    *out = r;
    return BG_OK;
fail:
    json_decref(root);
    bg_codec_reader_free(r);
    return err == BG_OK ? BG_ERR_SCHEMA : err;
}

void bg_codec_reader_free(bg_codec_reader *r) {
    if (!r)
        return;
    for (size_t i = 0; i < MAX_SLOTS; i++) {
        free(r->def[i].str);
        if (r->def[i].arr_text)
            for (uint32_t k = 0; k < r->def[i].arr_n; k++)
                free(r->def[i].arr_text[k]);
        free(r->def[i].arr_text);
        free(r->def[i].arr);
    }
    if (r->schema)
        avro_schema_decref(r->schema);
    free(r);
}

const bg_codec_slot *bg_codec_reader_slots(const bg_codec_reader *r, size_t *n) {
    *n = r->n_slots;
    return r->slots;
}

const char *bg_codec_reader_symbol(const bg_codec_reader *r, size_t slot, int32_t index) {
    if (slot >= r->n_slots || r->slots[slot].kind != BG_SLOT_ENUM || index < 0 ||
        index >= avro_schema_enum_number_of_symbols(r->enums[slot]))
        return NULL;
    return avro_schema_enum_get(r->enums[slot], index);
}

/* ------------------------------------------------------------------------ */
/* Compile                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct memo {
    avro_schema_t s[64]; /* writer records already compiled (recursion, reuse) */
    uint32_t node[64];
    unsigned n;
} memo;

static bg_err new_node(bg_codec_plan *p, uint8_t t, uint32_t n, uint32_t a, uint8_t zw,
                       uint32_t *idx) {
    if (!grow((void **)&p->skip, &p->cap_skip, p->n_skip, sizeof *p->skip))
        return BG_ERR_NOMEM;
    p->skip[p->n_skip] = (snode){.t = t, .zw = zw, .n = n, .a = a};
    *idx = p->n_skip++;
    return BG_OK;
}

static bg_err reserve_kids(bg_codec_plan *p, uint32_t n, uint32_t *first) {
    if (n && !grow((void **)&p->kids, &p->cap_kids, p->n_kids + n - 1, sizeof *p->kids))
        return BG_ERR_NOMEM;
    *first = p->n_kids;
    p->n_kids += n;
    return BG_OK;
}

/* Compile a skip tree for writer type s; *idx gets the node. */
static bg_err compile_skip(bg_codec_plan *p, memo *m, avro_schema_t s, unsigned depth,
                           uint32_t *idx, char *why, size_t ws) {
    s = deref(s);
    if (!s || depth > MAX_DEPTH) {
        say(why, ws, "writer schema nests too deep or has a dangling reference");
        return BG_ERR_SCHEMA;
    }
    bg_err e;
    uint32_t child, first;
    switch (avro_typeof(s)) {
    case AVRO_NULL: return new_node(p, S_NULL, 0, 0, 1, idx);
    case AVRO_BOOLEAN: return new_node(p, S_BOOL, 0, 0, 0, idx);
    case AVRO_INT32: return new_node(p, S_INT, 0, 0, 0, idx);
    case AVRO_INT64: return new_node(p, S_LONG, 0, 0, 0, idx);
    case AVRO_FLOAT: return new_node(p, S_FIXED, 4, 0, 0, idx);
    case AVRO_DOUBLE: return new_node(p, S_FIXED, 8, 0, 0, idx);
    case AVRO_STRING:
    case AVRO_BYTES: return new_node(p, S_BYTES, 0, 0, 0, idx);
    case AVRO_FIXED: {
        int64_t sz = avro_schema_fixed_size(s);
        if (sz < 0 || sz > (int64_t)BG_MAX_MESSAGE) {
            say(why, ws, "writer fixed %s has size %lld", avro_schema_name(s), (long long)sz);
            return BG_ERR_SCHEMA;
        }
        return new_node(p, S_FIXED, (uint32_t)sz, 0, sz == 0, idx);
    }
    case AVRO_ENUM: {
        int n = avro_schema_enum_number_of_symbols(s);
        return new_node(p, S_ENUM, n > 0 ? (uint32_t)n : 0, 0, 0, idx);
    }
    case AVRO_ARRAY:
    case AVRO_MAP: {
        avro_schema_t c = avro_typeof(s) == AVRO_ARRAY ? avro_schema_array_items(s)
                                                       : avro_schema_map_values(s);
        if ((e = compile_skip(p, m, c, depth + 1, &child, why, ws)) != BG_OK)
            return e;
        return new_node(p, avro_typeof(s) == AVRO_ARRAY ? S_ARRAY : S_MAP, 0, child, 0, idx);
    }
    case AVRO_UNION: {
        size_t n = avro_schema_union_size(s);
        if (n == 0 || n > 255) {
            say(why, ws, "writer union with %zu branches", n);
            return BG_ERR_SCHEMA;
        }
        if ((e = reserve_kids(p, (uint32_t)n, &first)) != BG_OK)
            return e;
        for (size_t i = 0; i < n; i++) {
            if ((e = compile_skip(p, m, avro_schema_union_branch(s, (int)i), depth + 1, &child,
                                  why, ws)) != BG_OK)
                return e;
            p->kids[first + i] = child;
        }
        return new_node(p, S_UNION, (uint32_t)n, first, 0, idx);
    }
    case AVRO_RECORD: {
        for (unsigned i = 0; i < m->n; i++)
            if (m->s[i] == s) {
                *idx = m->node[i];
                return BG_OK;
            }
        size_t n = avro_schema_record_size(s);
        if (n > 1024) {
            say(why, ws, "writer record %s has %zu fields", avro_schema_name(s), n);
            return BG_ERR_SCHEMA;
        }
        if ((e = reserve_kids(p, (uint32_t)n, &first)) != BG_OK)
            return e;
        /* the node exists before its fields so that a recursive reference finds it */
        if ((e = new_node(p, S_RECORD, (uint32_t)n, first, 0, idx)) != BG_OK)
            return e;
        uint32_t self = *idx;
        if (m->n < sizeof m->s / sizeof m->s[0]) {
            m->s[m->n] = s;
            m->node[m->n++] = self;
        }
        uint8_t zw = 1;
        for (size_t i = 0; i < n; i++) {
            if ((e = compile_skip(p, m, avro_schema_record_field_get_by_index(s, (int)i),
                                  depth + 1, &child, why, ws)) != BG_OK)
                return e;
            p->kids[first + i] = child;
            zw = (uint8_t)(zw & p->skip[child].zw);
        }
        p->skip[self].zw = zw;
        *idx = self;
        return BG_OK;
    }
    default:
        say(why, ws, "writer schema has an unsupported type");
        return BG_ERR_SCHEMA;
    }
}

static bg_err push_sub(bg_codec_plan *p, const vop *v, uint32_t *idx) {
    if (!grow((void **)&p->sub, &p->cap_sub, p->n_sub, sizeof *p->sub))
        return BG_ERR_NOMEM;
    p->sub[p->n_sub] = *v;
    *idx = p->n_sub++;
    return BG_OK;
}

/* Resolve writer type w against a reader slot of `kind` written at `off`.
 * BG_ERR_SCHEMA (with why) when the types do not resolve. */
static bg_err compile_value(bg_codec_plan *p, avro_schema_t w, uint8_t kind, uint32_t off,
                            uint16_t slot, vop *o, char *why, size_t ws) {
    const bg_codec_reader *r = p->reader;
    const bg_codec_slot *sl = &r->slots[slot];
    memset(o, 0, sizeof *o);
    o->off = off;
    o->slot = slot;
    w = deref(w);
    if (!w) {
        say(why, ws, "field %s: dangling writer type", sl->name);
        return BG_ERR_SCHEMA;
    }
    avro_type_t t = avro_typeof(w);
    bg_err e;
    uint32_t ni;

    if (t == AVRO_UNION) {
        /* fused fast paths for the nullable shapes every producer uses */
        if ((kind == BG_SLOT_NSTR || kind == BG_SLOT_NBYTES) &&
            (is_nullable(w, AVRO_STRING, &ni) || is_nullable(w, AVRO_BYTES, &ni))) {
            o->op = V_NSTR;
            o->a = ni;
            return BG_OK;
        }
        if (kind == BG_SLOT_NLONG && is_nullable(w, AVRO_INT64, &ni)) {
            o->op = V_NOPT_I64;
            o->a = ni;
            return BG_OK;
        }
        if (kind == BG_SLOT_NLONG && is_nullable(w, AVRO_INT32, &ni)) {
            o->op = V_NOPT_I32_I64;
            o->a = ni;
            return BG_OK;
        }
        size_t n = avro_schema_union_size(w);
        if (n == 0 || n > 255) {
            say(why, ws, "field %s: writer union with %zu branches", sl->name, n);
            return BG_ERR_SCHEMA;
        }
        /* reserve contiguous branch ops first: branches may push array items */
        uint32_t first = p->n_sub;
        if (!grow((void **)&p->sub, &p->cap_sub, p->n_sub + (uint32_t)n - 1, sizeof *p->sub))
            return BG_ERR_NOMEM;
        p->n_sub += (uint32_t)n;
        unsigned ok = 0;
        for (size_t i = 0; i < n; i++) {
            vop bo;
            e = compile_value(p, avro_schema_union_branch(w, (int)i), kind, off, slot, &bo, why,
                              ws);
            if (e == BG_ERR_SCHEMA) {
                memset(&bo, 0, sizeof bo);
                bo.op = V_FAIL;
                bo.slot = slot;
                bo.a = (uint32_t)i;
            } else if (e != BG_OK) {
                return e;
            } else {
                ok++;
            }
            p->sub[first + i] = bo;
        }
        if (!ok) {
            say(why, ws, "field %s: no branch of the writer union resolves to reader type %s",
                sl->name, kind_name(kind));
            return BG_ERR_SCHEMA;
        }
        o->op = V_UNION;
        o->n = (uint8_t)n;
        o->a = first;
        return BG_OK;
    }

    switch (kind) {
    case BG_SLOT_STR:
        if (t == AVRO_STRING || t == AVRO_BYTES) {
            o->op = V_STR;
            return BG_OK;
        }
        break;
    case BG_SLOT_NSTR:
    case BG_SLOT_NBYTES:
        if (t == AVRO_NULL) {
            o->op = V_NULLSTR;
            return BG_OK;
        }
        if (t == AVRO_STRING || t == AVRO_BYTES) {
            o->op = V_STR;
            return BG_OK;
        }
        break;
    case BG_SLOT_LONG:
        if (t == AVRO_INT64 || t == AVRO_INT32) {
            o->op = t == AVRO_INT64 ? V_I64 : V_I32_I64;
            return BG_OK;
        }
        break;
    case BG_SLOT_NLONG:
        if (t == AVRO_NULL || t == AVRO_INT64 || t == AVRO_INT32) {
            o->op = t == AVRO_NULL ? V_OPT_NULL : t == AVRO_INT64 ? V_OPT_I64 : V_OPT_I32_I64;
            return BG_OK;
        }
        break;
    case BG_SLOT_INT:
        if (t == AVRO_INT32) {
            o->op = V_I32;
            return BG_OK;
        }
        break;
    case BG_SLOT_BOOL:
        if (t == AVRO_BOOLEAN) {
            o->op = V_BOOL;
            return BG_OK;
        }
        break;
    case BG_SLOT_ENUM:
        if (t == AVRO_ENUM) {
            avro_schema_t re = r->enums[slot];
            const char *wn = avro_schema_name(w), *rn = avro_schema_name(re);
            if (!wn || !rn || strcmp(wn, rn) != 0) {
                say(why, ws, "field %s: writer enum %s is not reader enum %s", sl->name,
                    wn ? wn : "?", rn ? rn : "?");
                return BG_ERR_SCHEMA;
            }
            int n = avro_schema_enum_number_of_symbols(w);
            uint32_t first = p->n_emap;
            if (n > 0 && !grow((void **)&p->emap, &p->cap_emap, first + (uint32_t)n - 1,
                               sizeof *p->emap))
                return BG_ERR_NOMEM;
            for (int i = 0; i < n; i++) {
                int32_t ri = enum_index(re, avro_schema_enum_get(w, i));
                p->emap[first + (uint32_t)i] = ri >= 0 ? ri : r->enum_default[slot];
            }
            p->n_emap += n > 0 ? (uint32_t)n : 0;
            o->op = V_ENUM;
            o->a = first;
            o->b = n > 0 ? (uint32_t)n : 0;
            return BG_OK;
        }
        break;
    case BG_SLOT_ARR_STR:
        if (t == AVRO_ARRAY) {
            vop item;
            e = compile_value(p, avro_schema_array_items(w), BG_SLOT_STR, 0, slot, &item, why,
                              ws);
            if (e != BG_OK)
                return e;
            uint32_t ii;
            if ((e = push_sub(p, &item, &ii)) != BG_OK)
                return e;
            o->op = V_ARR;
            o->off = off;
            o->a = ii;
            o->b = sl->count_off;
            o->k = sl->cap;
            return BG_OK;
        }
        break;
    default:
        break;
    }
    say(why, ws, "field %s: writer type %s cannot be read as reader type %s", sl->name,
        type_name(w), kind_name(kind));
    return BG_ERR_SCHEMA;
}

static bg_err push_step(bg_codec_plan *p, const vop *v) {
    if (!grow((void **)&p->steps, &p->cap_steps, p->n_steps, sizeof *p->steps))
        return BG_ERR_NOMEM;
    p->steps[p->n_steps++] = *v;
    return BG_OK;
}

bg_err bg_codec_plan_compile(bg_codec_plan **out, const bg_codec_reader *reader,
                             avro_schema_t writer, char *why, size_t ws) {
    *out = NULL;
    writer = deref(writer);
    if (!writer || avro_typeof(writer) != AVRO_RECORD) {
        say(why, ws, "writer schema is not a record");
        return BG_ERR_WRONG_TYPE;
    }
    bg_codec_plan *p = calloc(1, sizeof *p);
    if (!p)
        return BG_ERR_NOMEM;
    p->reader = reader;
    memo *m = calloc(1, sizeof *m);
    bg_err e = m ? BG_OK : BG_ERR_NOMEM;
    bool seen[MAX_SLOTS] = {false};
    size_t nw = avro_schema_record_size(writer);
    for (size_t i = 0; e == BG_OK && i < nw; i++) {
        const char *fname = avro_schema_record_field_name(writer, (int)i);
        avro_schema_t ft = avro_schema_record_field_get_by_index(writer, (int)i);
        size_t s = reader->n_slots;
        for (size_t k = 0; fname && k < reader->n_slots; k++)
            if (!seen[k] && strcmp(reader->slots[k].name, fname) == 0) {
                s = k;
                break;
            }
        vop v;
        if (s < reader->n_slots) {
            seen[s] = true;
            e = compile_value(p, ft, reader->slots[s].kind, reader->slots[s].off, (uint16_t)s,
                              &v, why, ws);
        } else {
            /* a writer field we do not read (or a second one of the same name) */
            memset(&v, 0, sizeof v);
            v.op = V_SKIP;
            e = compile_skip(p, m, ft, 0, &v.a, why, ws);
        }
        if (e == BG_OK)
            e = push_step(p, &v);
    }
    for (size_t k = 0; e == BG_OK && k < reader->n_slots; k++) {
        if (seen[k])
            continue;
        if (!reader->def[k].has) {
            say(why, ws, "writer schema %s lacks field %s, which has no default in the reader",
                avro_schema_name(writer), reader->slots[k].name);
            e = BG_ERR_MISSING_FIELD;
            break;
        }
        e = push_step(p, &reader->def[k].op);
    }
    free(m);
    if (e != BG_OK) {
        if (e == BG_ERR_NOMEM)
            say(why, ws, "out of memory compiling the decode plan");
        bg_codec_plan_free(p);
        return e;
    }
    *out = p;
    return BG_OK;
}

void bg_codec_plan_free(bg_codec_plan *p) {
    if (!p)
        return;
    free(p->steps);
    free(p->sub);
    free(p->skip);
    free(p->kids);
    free(p->emap);
    free(p);
}

/* ------------------------------------------------------------------------ */
/* Run                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct rd {
    const uint8_t *p, *end;
    uint64_t budget; /* items of skipped arrays and maps still allowed */
    char *why;
    size_t why_size;
} rd;

__attribute__((format(printf, 3, 4), cold, noinline)) static bg_err fail(rd *r, bg_err e,
                                                                       const char *fmt, ...) {
    if (r->why && r->why_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->why, r->why_size, fmt, ap);
        va_end(ap);
    }
    return e;
}

__attribute__((cold, noinline)) static bg_err fail_varint(rd *r, bool truncated) {
    if (truncated)
        return fail(r, BG_ERR_TRUNCATED, "truncated varint");
    return fail(r, BG_ERR_MALFORMED, "varint overflow (too long, or too large for its type)");
}

/* Zigzag varint of at most 10 bytes whose value fits 64 bits. */
static inline bg_err rd_long(rd *r, int64_t *v) {
    const uint8_t *p = r->p, *end = r->end;
    if (__builtin_expect(p < end && *p < 0x80, 1)) {
        *v = (int64_t)(*p >> 1) ^ -(int64_t)(*p & 1);
        r->p = p + 1;
        return BG_OK;
    }
    uint64_t u = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (p + i >= end)
            return fail_varint(r, true);
        uint8_t b = p[i];
        u |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (i == 9 && b > 1)
                break;
            *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
            r->p = p + i + 1;
            return BG_OK;
        }
    }
    return fail_varint(r, false);
}

/* Zigzag varint of at most 5 bytes whose value fits 32 bits (an Avro int). */
static inline bg_err rd_int(rd *r, int32_t *v) {
    const uint8_t *p = r->p, *end = r->end;
    uint32_t u = 0;
    for (unsigned i = 0; i < 5; i++) {
        if (p + i >= end)
            return fail_varint(r, true);
        uint8_t b = p[i];
        u |= (uint32_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (i == 4 && b > 0x0f)
                break;
            *v = (int32_t)(u >> 1) ^ -(int32_t)(u & 1);
            r->p = p + i + 1;
            return BG_OK;
        }
    }
    return fail_varint(r, false);
}

/* A length prefix: negative -> MALFORMED, over cap -> OVERSIZED, beyond the
 * buffer -> TRUNCATED. */
static inline bg_err rd_len(rd *r, uint64_t cap, uint64_t *n) {
    int64_t v = 0;
    bg_err e = rd_long(r, &v);
    if (__builtin_expect(e != BG_OK, 0))
        return e;
    if (__builtin_expect(v < 0, 0))
        return fail(r, BG_ERR_MALFORMED, "negative length %lld", (long long)v);
    if (__builtin_expect((uint64_t)v > cap, 0))
        return fail(r, BG_ERR_OVERSIZED, "length %lld exceeds the cap of %llu", (long long)v,
                    (unsigned long long)cap);
    if (__builtin_expect(v > r->end - r->p, 0))
        return fail(r, BG_ERR_TRUNCATED, "length %lld runs past the end (%td bytes left)",
                    (long long)v, r->end - r->p);
    *n = (uint64_t)v;
    return BG_OK;
}

static inline bg_err rd_str(rd *r, bg_str *s) {
    uint64_t n = 0;
    bg_err e = rd_len(r, BG_MAX_STRING, &n);
    if (__builtin_expect(e != BG_OK, 0))
        return e;
    s->ptr = (const char *)r->p;
    s->len = (uint32_t)n;
    r->p += n;
    return BG_OK;
}

static inline bg_err rd_bool(rd *r, bool *b) {
    if (__builtin_expect(r->p >= r->end, 0))
        return fail(r, BG_ERR_TRUNCATED, "truncated boolean");
    uint8_t v = *r->p;
    if (__builtin_expect(v > 1, 0))
        return fail(r, BG_ERR_MALFORMED, "boolean byte 0x%02x is neither 0 nor 1", v);
    *b = v != 0;
    r->p++;
    return BG_OK;
}

/* Reads the next array/map block header. *count 0 ends the array; *size is
 * the block's byte size when the writer gave one (negative count), else -1. */
static inline bg_err rd_block(rd *r, uint64_t *count, int64_t *size) {
    int64_t c = 0;
    bg_err e = rd_long(r, &c);
    if (e != BG_OK)
        return e;
    *size = -1;
    if (c < 0) {
        if (c == INT64_MIN)
            return fail(r, BG_ERR_MALFORMED, "array block count overflows");
        c = -c;
        uint64_t sz = 0;
        if ((e = rd_len(r, BG_MAX_MESSAGE, &sz)) != BG_OK)
            return e;
        *size = (int64_t)sz;
    }
    *count = (uint64_t)c;
    return BG_OK;
}

static bg_err skip_value(const bg_codec_plan *P, uint32_t node, rd *r, unsigned depth) {
    if (depth > MAX_DEPTH)
        return fail(r, BG_ERR_MALFORMED, "value nests deeper than %u", MAX_DEPTH);
    const snode *s = &P->skip[node];
    bg_err e;
    int64_t l = 0;
    int32_t i32 = 0;
    uint64_t n = 0;
    switch (s->t) {
    case S_NULL: return BG_OK;
    case S_BOOL: {
        bool b;
        return rd_bool(r, &b);
    }
    case S_INT: return rd_int(r, &i32);
    case S_LONG: return rd_long(r, &l);
    case S_FIXED:
        if ((uint64_t)(r->end - r->p) < s->n)
            return fail(r, BG_ERR_TRUNCATED, "fixed of %u bytes runs past the end", s->n);
        r->p += s->n;
        return BG_OK;
    case S_BYTES:
        /* a skipped string's only cap is the message itself */
        if ((e = rd_len(r, BG_MAX_MESSAGE, &n)) != BG_OK)
            return e;
        r->p += n;
        return BG_OK;
    case S_ENUM:
        if ((e = rd_int(r, &i32)) != BG_OK)
            return e;
        if (i32 < 0 || (uint32_t)i32 >= s->n)
            return fail(r, BG_ERR_MALFORMED, "enum index %d out of range (%u symbols)", i32,
                        s->n);
        return BG_OK;
    case S_UNION:
        if ((e = rd_long(r, &l)) != BG_OK)
            return e;
        if (l < 0 || (uint64_t)l >= s->n)
            return fail(r, BG_ERR_MALFORMED, "union index %lld out of range (%u branches)",
                        (long long)l, s->n);
        return skip_value(P, P->kids[s->a + (uint32_t)l], r, depth + 1);
    case S_RECORD:
        for (uint32_t k = 0; k < s->n; k++)
            if ((e = skip_value(P, P->kids[s->a + k], r, depth + 1)) != BG_OK)
                return e;
        return BG_OK;
    case S_ARRAY:
    case S_MAP: {
        uint8_t item_zw = P->skip[s->a].zw && s->t == S_ARRAY;
        for (;;) {
            uint64_t count = 0;
            int64_t size;
            if ((e = rd_block(r, &count, &size)) != BG_OK)
                return e;
            if (count == 0)
                return BG_OK;
            if (count > r->budget)
                return fail(r, BG_ERR_OVERSIZED, "more than %u array or map items in a message",
                            BG_MAX_MESSAGE);
            r->budget -= count;
            if (!item_zw && count > (uint64_t)(r->end - r->p))
                return fail(r, BG_ERR_TRUNCATED, "block of %llu items runs past the end",
                            (unsigned long long)count);
            const uint8_t *start = r->p;
            for (uint64_t k = 0; k < count; k++) {
                if (s->t == S_MAP) {
                    if ((e = rd_len(r, BG_MAX_MESSAGE, &n)) != BG_OK)
                        return e;
                    r->p += n;
                }
                if ((e = skip_value(P, s->a, r, depth + 1)) != BG_OK)
                    return e;
            }
            if (size >= 0 && r->p - start != size)
                return fail(r, BG_ERR_MALFORMED, "block byte size %lld disagrees with its items",
                            (long long)size);
        }
    }
    default:
        return fail(r, BG_ERR_MALFORMED, "corrupt plan");
    }
}

#define AT(T, base, off) (*(T *)(void *)((base) + (off)))

static bg_err run_vop(const bg_codec_plan *P, const vop *v, rd *r, char *dst);

static bg_err run_array(const bg_codec_plan *P, const vop *v, rd *r, char *dst) {
    bg_str *arr = &AT(bg_str, dst, v->off);
    const vop *item = &P->sub[v->a];
    uint64_t cap = (uint64_t)v->k, cnt = 0;
    bg_err e;
    for (;;) {
        uint64_t count = 0;
        int64_t size;
        if ((e = rd_block(r, &count, &size)) != BG_OK)
            return e;
        if (count == 0)
            break;
        if (count > cap - cnt)
            return fail(r, BG_ERR_OVERSIZED, "%s has more than %llu items",
                        P->reader->slots[v->slot].name, (unsigned long long)cap);
        const uint8_t *start = r->p;
        for (uint64_t k = 0; k < count; k++, cnt++)
            if ((e = run_vop(P, item, r, (char *)&arr[cnt])) != BG_OK)
                return e;
        if (size >= 0 && r->p - start != size)
            return fail(r, BG_ERR_MALFORMED, "block byte size %lld disagrees with its items",
                        (long long)size);
    }
    AT(uint32_t, dst, v->b) = (uint32_t)cnt;
    return BG_OK;
}

/* One op. Unions re-dispatch to their branch in a loop, so only arrays and
 * skips recurse. */
static inline bg_err run_vop_inline(const bg_codec_plan *P, const vop *v, rd *r, char *dst) {
    bg_err e;
    int64_t l = 0;
    int32_t i = 0;
    bool b = false;
    for (;;) {
        switch (v->op) {
        case V_STR: return rd_str(r, &AT(bg_str, dst, v->off));
        case V_NULLSTR:
            AT(bg_str, dst, v->off) = (bg_str){NULL, 0};
            return BG_OK;
        case V_I64: return rd_long(r, &AT(int64_t, dst, v->off));
        case V_I32_I64:
            if ((e = rd_int(r, &i)) != BG_OK)
                return e;
            AT(int64_t, dst, v->off) = i;
            return BG_OK;
        case V_I32: return rd_int(r, &AT(int32_t, dst, v->off));
        case V_OPT_I64:
            if ((e = rd_long(r, &l)) != BG_OK)
                return e;
            AT(bg_opt_i64, dst, v->off) = (bg_opt_i64){true, l};
            return BG_OK;
        case V_OPT_I32_I64:
            if ((e = rd_int(r, &i)) != BG_OK)
                return e;
            AT(bg_opt_i64, dst, v->off) = (bg_opt_i64){true, i};
            return BG_OK;
        case V_OPT_NULL:
            AT(bg_opt_i64, dst, v->off) = (bg_opt_i64){false, 0};
            return BG_OK;
        case V_BOOL:
            if ((e = rd_bool(r, &b)) != BG_OK)
                return e;
            AT(bool, dst, v->off) = b;
            return BG_OK;
        case V_ENUM:
            if ((e = rd_int(r, &i)) != BG_OK)
                return e;
            if (i < 0 || (uint32_t)i >= v->b)
                return fail(r, BG_ERR_MALFORMED, "%s: enum index %d out of range (%u symbols)",
                            P->reader->slots[v->slot].name, i, v->b);
            i = P->emap[v->a + (uint32_t)i];
            if (i < 0)
                return fail(r, BG_ERR_MALFORMED,
                            "%s: writer enum symbol unknown to the reader, which has no default",
                            P->reader->slots[v->slot].name);
            AT(int32_t, dst, v->off) = i;
            return BG_OK;
        case V_NSTR:
        case V_NOPT_I64:
        case V_NOPT_I32_I64: {
            /* one byte in practice: zigzag 0 -> 0x00, 1 -> 0x02 */
            uint64_t idx;
            if (__builtin_expect(r->p < r->end && *r->p <= 3, 1)) {
                idx = *r->p & 1 ? UINT64_MAX : (uint64_t)(*r->p >> 1);
                r->p++;
            } else {
                if ((e = rd_long(r, &l)) != BG_OK)
                    return e;
                idx = l < 0 ? UINT64_MAX : (uint64_t)l;
            }
            if (__builtin_expect(idx > 1, 0))
                return fail(r, BG_ERR_MALFORMED, "%s: union index out of range (2 branches)",
                            P->reader->slots[v->slot].name);
            if (idx == v->a) {
                if (v->op == V_NSTR)
                    AT(bg_str, dst, v->off) = (bg_str){NULL, 0};
                else
                    AT(bg_opt_i64, dst, v->off) = (bg_opt_i64){false, 0};
                return BG_OK;
            }
            if (v->op == V_NSTR)
                return rd_str(r, &AT(bg_str, dst, v->off));
            if (v->op == V_NOPT_I64) {
                if ((e = rd_long(r, &l)) != BG_OK)
                    return e;
            } else {
                if ((e = rd_int(r, &i)) != BG_OK)
                    return e;
                l = i;
            }
            AT(bg_opt_i64, dst, v->off) = (bg_opt_i64){true, l};
            return BG_OK;
        }
        case V_UNION:
            if ((e = rd_long(r, &l)) != BG_OK)
                return e;
            if (l < 0 || l >= v->n)
                return fail(r, BG_ERR_MALFORMED, "%s: union index %lld out of range (%u branches)",
                            P->reader->slots[v->slot].name, (long long)l, v->n);
            v = &P->sub[v->a + (uint32_t)l];
            continue;
        case V_ARR: return run_array(P, v, r, dst);
        case V_SKIP: return skip_value(P, v->a, r, 0);
        case V_FAIL:
            return fail(r, BG_ERR_MALFORMED,
                        "%s: writer union branch %u cannot be read as reader type %s",
                        P->reader->slots[v->slot].name, v->a,
                        kind_name(P->reader->slots[v->slot].kind));
        case D_STR: {
            const rdefault *d = &P->reader->def[v->slot];
            AT(bg_str, dst, v->off) = (bg_str){d->str, d->str_len};
            return BG_OK;
        }
        case D_I64: AT(int64_t, dst, v->off) = v->k; return BG_OK;
        case D_I32: AT(int32_t, dst, v->off) = (int32_t)v->k; return BG_OK;
        case D_OPT_I64: AT(bg_opt_i64, dst, v->off) = (bg_opt_i64){true, v->k}; return BG_OK;
        case D_BOOL: AT(bool, dst, v->off) = v->k != 0; return BG_OK;
        case D_ARR: {
            const rdefault *d = &P->reader->def[v->slot];
            if (d->arr_n)
                memcpy(&AT(bg_str, dst, v->off), d->arr, d->arr_n * sizeof *d->arr);
            AT(uint32_t, dst, v->b) = d->arr_n;
            return BG_OK;
        }
        default: return fail(r, BG_ERR_MALFORMED, "corrupt plan");
        }
    }
}

static bg_err run_vop(const bg_codec_plan *P, const vop *v, rd *r, char *dst) {
    return run_vop_inline(P, v, r, dst);
}

bg_err bg_codec_plan_run(const bg_codec_plan *P, const uint8_t *body, size_t len, void *dst,
                         char *why, size_t why_size) {
    rd r = {body, body + len, BG_MAX_MESSAGE, why, why_size};
    char *d = dst;
    const vop *v = P->steps, *end = P->steps + P->n_steps;
    for (; v < end; v++) {
        bg_err e = run_vop_inline(P, v, &r, d);
        if (__builtin_expect(e != BG_OK, 0))
            return e;
    }
    if (r.p != r.end)
        return fail(&r, BG_ERR_MALFORMED, "%td trailing bytes after the record", r.end - r.p);
    return BG_OK;
}
