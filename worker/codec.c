/* bg_codec: the schema registry of the worker, the framed decode entry points
 * and the Avro-C encoders.
 *
 * Registry. Every writer schema is kept under its id as the verbatim text
 * (Avro-C drops logicalType when printing a schema back), the Avro-C schema
 * parsed from it (validation, and the structure the plan compiler walks), and
 * the jansson tree of the same text (field defaults, which Avro-C does not
 * expose). A schema whose record full name is one of ours is tagged with that
 * record; the first id registered for a record is the id its outputs are
 * encoded with. The registry is a small array with a last-hit shortcut:
 * deployments carry a handful of ids.
 *
 * Decode. Framing checks (magic, id, size), then the record check (the
 * writer's full name against the topic's record: BG_ERR_WRONG_TYPE), then the
 * (writer, reader) plan of codec_plan.c, compiled on first use of an id and
 * cached together with its error, so that a writer lacking a required field
 * is reported with the same reason on every message of that id.
 *
 * Encode. Avro-C generic values, one per writer schema, reused. Fields are
 * filled by name, so any registered writer schema works: a field we know gets
 * our value (adapted to the writer's type: union branch by value, int/long/
 * float/double, string/bytes, enum by symbol), a field we do not know gets its
 * schema default, or the type's zero value when it declares none. */
#include "codec.h"

#include <avro.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_plan.h"

/* Generated from schemas/ by schemas/embed.cmake, in bg_record order. */
extern const char *const bg_schema_texts[];

static const char *const rec_full_names[BG_REC_COUNT] = {
    [BG_REC_USAGE] = "burstguard.v1.UsageEvent",
    [BG_REC_SECRET] = "burstguard.v1.SecretIssued",
    [BG_REC_TOOLCALL] = "burstguard.v1.ToolCall",
    [BG_REC_ENVELOPE] = "burstguard.v1.Envelope",
    [BG_REC_VERDICT] = "burstguard.v1.Verdict",
    [BG_REC_REVOCATION] = "burstguard.v1.RevocationCommand",
    [BG_REC_SNAPSHOT] = "burstguard.v1.StateSnapshot",
};

#define NO_REC (-1)
#define MAX_SCHEMA_TEXT BG_MAX_MESSAGE

typedef struct entry {
    int32_t id;
    char *text; /* verbatim, NUL-terminated */
    size_t len;
    avro_schema_t schema;
    json_t *json;
    int rec;            /* bg_record, or NO_REC */
    char full_name[128];
    bool plan_tried;    /* compile attempted (result cached either way) */
    bg_err plan_err;
    char plan_why[256];
    bg_codec_plan *plan;
    avro_value_iface_t *iface; /* encoder, created on first encode */
    avro_value_t value;
} entry;

struct bg_codec {
    entry *e;
    size_t n, cap;
    size_t last; /* index of the last entry found, the hot path's shortcut */
    bg_codec_reader *readers[BG_REC_ENVELOPE + 1];
    int32_t out_id[BG_REC_COUNT];
    bool has_out[BG_REC_COUNT];
    char *tmp; /* NUL-terminated copies for Avro-C strings */
    size_t tmp_cap;
    entry canon[BG_REC_COUNT]; /* reader schemas, for canonical (signed) bytes; lazily */
    bool has_canon[BG_REC_COUNT];
};

__attribute__((format(printf, 3, 4))) static void say(char *why, size_t n, const char *fmt, ...) {
    if (!why || n == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* Registry                                                                 */
/* ------------------------------------------------------------------------ */

void bg_buf_free(bg_buf *b) {
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

const char *bg_codec_reader_schema(bg_record rec) {
    return (unsigned)rec < BG_REC_COUNT ? bg_schema_texts[rec] : NULL;
}

int32_t bg_codec_default_id(bg_record rec) { return (int32_t)rec + 1; }

bg_err bg_codec_new(bg_codec **out, char *errstr, size_t errstr_size) {
    *out = NULL;
    bg_codec *c = calloc(1, sizeof *c);
    if (!c) {
        say(errstr, errstr_size, "out of memory");
        return BG_ERR_NOMEM;
    }
    for (int r = BG_REC_USAGE; r <= BG_REC_ENVELOPE; r++) {
        char why[256] = "";
        const char *t = bg_schema_texts[r];
        bg_err e = bg_codec_reader_new(&c->readers[r], (bg_record)r, t, strlen(t), why, sizeof why);
        if (e != BG_OK) {
            say(errstr, errstr_size, "reader schema %s: %s", rec_full_names[r], why);
            bg_codec_free(c);
            return e;
        }
    }
    *out = c;
    return BG_OK;
}

void bg_codec_free(bg_codec *c) {
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        entry *e = &c->e[i];
        bg_codec_plan_free(e->plan);
        if (e->iface) {
            avro_value_decref(&e->value);
            avro_value_iface_decref(e->iface);
        }
        json_decref(e->json);
        avro_schema_decref(e->schema);
        free(e->text);
    }
    for (size_t r = 0; r < BG_REC_COUNT; r++) {
        if (!c->has_canon[r])
            continue;
        entry *e = &c->canon[r];
        if (e->iface) {
            avro_value_decref(&e->value);
            avro_value_iface_decref(e->iface);
        }
        json_decref(e->json);
        avro_schema_decref(e->schema);
    }
    for (size_t r = 0; r <= BG_REC_ENVELOPE; r++)
        bg_codec_reader_free(c->readers[r]);
    free(c->e);
    free(c->tmp);
    free(c);
}

static entry *find(bg_codec *c, int32_t id) {
    if (c->last < c->n && c->e[c->last].id == id)
        return &c->e[c->last];
    for (size_t i = 0; i < c->n; i++)
        if (c->e[i].id == id) {
            c->last = i;
            return &c->e[i];
        }
    return NULL;
}

bg_err bg_codec_add_schema(bg_codec *c, int32_t id, const char *json, size_t len, char *errstr,
                           size_t errstr_size) {
    if (!c || !json) {
        say(errstr, errstr_size, "no codec or no schema text");
        return BG_ERR_INVALID;
    }
    entry *old = find(c, id);
    if (old) {
        if (old->len == len && memcmp(old->text, json, len) == 0)
            return BG_OK;
        say(errstr, errstr_size, "schema id %d is already registered with another text", id);
        return BG_ERR_SCHEMA;
    }
    if (len > MAX_SCHEMA_TEXT) {
        say(errstr, errstr_size, "schema id %d: text of %zu bytes is over the cap", id, len);
        return BG_ERR_OVERSIZED;
    }
    entry e;
    memset(&e, 0, sizeof e);
    e.id = id;
    e.rec = NO_REC;
    if (avro_schema_from_json_length(json, len, &e.schema) != 0) {
        say(errstr, errstr_size, "schema id %d: %s", id, avro_strerror());
        return BG_ERR_SCHEMA;
    }
    json_error_t je;
    e.json = json_loadb(json, len, 0, &je);
    e.text = malloc(len + 1);
    if (!e.json || !e.text) {
        say(errstr, errstr_size, "schema id %d: %s", id, e.json ? "out of memory" : je.text);
        json_decref(e.json);
        free(e.text);
        avro_schema_decref(e.schema);
        return e.json ? BG_ERR_NOMEM : BG_ERR_SCHEMA;
    }
    memcpy(e.text, json, len);
    e.text[len] = '\0';
    e.len = len;
    if (avro_typeof(e.schema) == AVRO_RECORD) {
        const char *ns = avro_schema_namespace(e.schema), *nm = avro_schema_name(e.schema);
        snprintf(e.full_name, sizeof e.full_name, "%s%s%s", ns && *ns ? ns : "",
                 ns && *ns ? "." : "", nm ? nm : "");
        for (int r = 0; r < BG_REC_COUNT; r++)
            if (strcmp(e.full_name, rec_full_names[r]) == 0)
                e.rec = r;
    } else {
        snprintf(e.full_name, sizeof e.full_name, "a %s schema", avro_schema_type_name(e.schema));
    }
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 16;
        entry *ne = realloc(c->e, nc * sizeof *ne);
        if (!ne) {
            json_decref(e.json);
            free(e.text);
            avro_schema_decref(e.schema);
            say(errstr, errstr_size, "out of memory");
            return BG_ERR_NOMEM;
        }
        c->e = ne;
        c->cap = nc;
    }
    c->e[c->n++] = e;
    if (e.rec != NO_REC && !c->has_out[e.rec]) {
        c->has_out[e.rec] = true;
        c->out_id[e.rec] = id;
    }
    return BG_OK;
}

bg_err bg_codec_add_defaults(bg_codec *c, char *errstr, size_t errstr_size) {
    for (int r = 0; r < BG_REC_COUNT; r++) {
        const char *t = bg_schema_texts[r];
        bg_err e = bg_codec_add_schema(c, bg_codec_default_id((bg_record)r), t, strlen(t), errstr,
                                       errstr_size);
        if (e != BG_OK)
            return e;
    }
    return BG_OK;
}

/* ------------------------------------------------------------------------ */
/* Decode                                                                   */
/* ------------------------------------------------------------------------ */

bool bg_codec_has_schema(const bg_codec *c, int32_t id) {
    if (!c)
        return false;
    for (size_t i = 0; i < c->n; i++)
        if (c->e[i].id == id)
            return true;
    return false;
}

bg_err bg_codec_frame_id(const void *buf, size_t len, int32_t *id) {
    const uint8_t *b = buf;
    if (!buf || len == 0)
        return BG_ERR_TRUNCATED;
    if (b[0] != 0)
        return BG_ERR_BAD_MAGIC;
    if (len < 5)
        return BG_ERR_TRUNCATED;
    *id = (int32_t)((uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 |
                    (uint32_t)b[4]);
    return BG_OK;
}

static bg_err decode(bg_codec *c, bg_record rec, const void *buf, size_t len, void *dst,
                     char *why, size_t ws) {
    const uint8_t *b = buf;
    if (!c || !dst || (!buf && len)) {
        say(why, ws, "no codec, buffer or destination");
        return BG_ERR_INVALID;
    }
    if (len == 0) {
        say(why, ws, "empty message");
        return BG_ERR_TRUNCATED;
    }
    if (b[0] != 0) {
        say(why, ws, "magic byte 0x%02x, expected 0 (Confluent framing)", b[0]);
        return BG_ERR_BAD_MAGIC;
    }
    if (len < 5) {
        say(why, ws, "message of %zu bytes is shorter than the 5-byte framing", len);
        return BG_ERR_TRUNCATED;
    }
    if (len > BG_MAX_MESSAGE) {
        say(why, ws, "message of %zu bytes exceeds the cap of %u", len, BG_MAX_MESSAGE);
        return BG_ERR_OVERSIZED;
    }
    int32_t id = (int32_t)((uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 |
                           (uint32_t)b[4]);
    entry *e = find(c, id);
    if (!e) {
        say(why, ws, "schema id %d is not registered", id);
        return BG_ERR_UNKNOWN_SCHEMA;
    }
    if (e->rec != (int)rec) {
        say(why, ws, "schema id %d is %s, but this topic carries %s", id, e->full_name,
            rec_full_names[rec]);
        return BG_ERR_WRONG_TYPE;
    }
    if (__builtin_expect(!e->plan_tried, 0)) {
        e->plan_tried = true;
        e->plan_err = bg_codec_plan_compile(&e->plan, c->readers[rec], e->schema, e->plan_why,
                                            sizeof e->plan_why);
    }
    if (!e->plan) {
        say(why, ws, "schema id %d: %s", id, e->plan_why);
        return e->plan_err;
    }
    return bg_codec_plan_run(e->plan, b + 5, len - 5, dst, why, ws);
}

bg_err bg_codec_decode_event(bg_codec *c, bg_event_kind kind, const void *buf, size_t len,
                             bg_event *ev, char *why, size_t why_size) {
    if ((unsigned)kind > (unsigned)BG_EV_TOOLCALL || !ev) {
        say(why, why_size, "event kind %d is not an input event", (int)kind);
        return BG_ERR_INVALID;
    }
    static const bg_record recs[] = {BG_REC_USAGE, BG_REC_SECRET, BG_REC_TOOLCALL};
    ev->kind = kind;
    return decode(c, recs[kind], buf, len, ev, why, why_size);
}

bg_err bg_codec_decode_envelope(bg_codec *c, const void *buf, size_t len, bg_envelope_msg *env,
                                char *why, size_t why_size) {
    return decode(c, BG_REC_ENVELOPE, buf, len, env, why, why_size);
}

/* ------------------------------------------------------------------------ */
/* Encode: setting Avro-C values from ours, adapting to the writer's types  */
/* ------------------------------------------------------------------------ */

typedef enum sv_type { SV_NULL, SV_STR, SV_LONG, SV_DOUBLE, SV_BOOL, SV_ENUM } sv_type;

/* One value of ours, before it meets the writer's type. */
typedef struct sv {
    sv_type t;
    const char *s; /* SV_STR bytes (len), SV_ENUM symbol */
    size_t len;
    int64_t i;
    double d;
} sv;

static sv sv_str(const char *s, size_t len) { return (sv){.t = s ? SV_STR : SV_NULL, .s = s, .len = len}; }
static sv sv_cstr(const char *s) { return sv_str(s, s ? strlen(s) : 0); }
static sv sv_bstr(bg_str s) { return sv_str(s.ptr, s.len); }
static sv sv_long(int64_t i) { return (sv){.t = SV_LONG, .i = i}; }
static sv sv_double(double d) { return (sv){.t = SV_DOUBLE, .d = d}; }
static sv sv_bool(bool b) { return (sv){.t = SV_BOOL, .i = b}; }
static sv sv_enum(const char *sym) { return (sv){.t = sym ? SV_ENUM : SV_NULL, .s = sym}; }

static avro_schema_t deref(avro_schema_t s) {
    for (int i = 0; i < 64 && s && avro_typeof(s) == AVRO_LINK; i++)
        s = avro_schema_link_target(s);
    return s;
}

static bool accepts(avro_type_t t, sv_type v) {
    switch (v) {
    case SV_NULL: return t == AVRO_NULL;
    case SV_STR: return t == AVRO_STRING || t == AVRO_BYTES;
    case SV_LONG:
        return t == AVRO_INT64 || t == AVRO_INT32 || t == AVRO_DOUBLE || t == AVRO_FLOAT;
    case SV_DOUBLE: return t == AVRO_DOUBLE || t == AVRO_FLOAT;
    case SV_BOOL: return t == AVRO_BOOLEAN;
    case SV_ENUM: return t == AVRO_ENUM;
    }
    return false;
}

/* Avro-C copies strings from a NUL-terminated buffer of size len + 1. */
static const char *cstr(bg_codec *c, const char *s, size_t len) {
    if (len + 1 > c->tmp_cap) {
        size_t nc = len + 1 < 256 ? 256 : len + 1;
        char *n = realloc(c->tmp, nc);
        if (!n)
            return NULL;
        c->tmp = n;
        c->tmp_cap = nc;
    }
    if (len)
        memcpy(c->tmp, s, len);
    c->tmp[len] = '\0';
    return c->tmp;
}

static bg_err set_string(bg_codec *c, avro_value_t *v, const char *s, size_t len) {
    const char *t = cstr(c, s ? s : "", s ? len : 0);
    if (!t)
        return BG_ERR_NOMEM;
    return avro_value_set_string_len(v, t, (s ? len : 0) + 1) ? BG_ERR_NOMEM : BG_OK;
}

/* For a union writer type pick the first branch that takes a value of type
 * `want` (an sv_type) or of Avro type `avro_want`; otherwise return v itself. */
static bg_err pick(avro_value_t *v, avro_schema_t s, int want_sv, int avro_want, avro_value_t *ov,
                   avro_schema_t *os) {
    s = deref(s);
    if (avro_typeof(s) != AVRO_UNION) {
        *ov = *v;
        *os = s;
        return BG_OK;
    }
    size_t n = avro_schema_union_size(s);
    for (size_t i = 0; i < n; i++) {
        avro_schema_t b = deref(avro_schema_union_branch(s, (int)i));
        if (!b)
            continue;
        bool ok = want_sv >= 0 ? accepts(avro_typeof(b), (sv_type)want_sv)
                               : (int)avro_typeof(b) == avro_want;
        if (ok) {
            if (avro_value_set_branch(v, (int)i, ov))
                return BG_ERR_INVALID;
            *os = b;
            return BG_OK;
        }
    }
    return BG_ERR_INVALID;
}

static bg_err set_sv(bg_codec *c, avro_value_t *v0, avro_schema_t s0, const sv *x) {
    avro_value_t v;
    avro_schema_t s;
    bg_err e = pick(v0, s0, (int)x->t, -1, &v, &s);
    if (e != BG_OK)
        return e;
    avro_type_t t = avro_typeof(s);
    if (!accepts(t, x->t))
        return BG_ERR_INVALID;
    int rc = 0;
    switch (t) {
    case AVRO_NULL: rc = avro_value_set_null(&v); break;
    case AVRO_STRING: return set_string(c, &v, x->s, x->len);
    case AVRO_BYTES: rc = avro_value_set_bytes(&v, (void *)(x->len ? x->s : ""), x->len); break;
    case AVRO_INT32:
        if (x->i < INT32_MIN || x->i > INT32_MAX)
            return BG_ERR_BAD_VALUE;
        rc = avro_value_set_int(&v, (int32_t)x->i);
        break;
    case AVRO_INT64: rc = avro_value_set_long(&v, x->i); break;
    case AVRO_FLOAT:
        rc = avro_value_set_float(&v, x->t == SV_DOUBLE ? (float)x->d : (float)x->i);
        break;
    case AVRO_DOUBLE:
        rc = avro_value_set_double(&v, x->t == SV_DOUBLE ? x->d : (double)x->i);
        break;
    case AVRO_BOOLEAN: rc = avro_value_set_boolean(&v, x->i != 0); break;
    case AVRO_ENUM: {
        int n = avro_schema_enum_number_of_symbols(s), k;
        for (k = 0; k < n; k++)
            if (strcmp(avro_schema_enum_get(s, k), x->s) == 0)
                break;
        if (k == n)
            return BG_ERR_BAD_VALUE; /* the writer does not know our symbol */
        rc = avro_value_set_enum(&v, k);
        break;
    }
    default: return BG_ERR_INVALID;
    }
    return rc ? BG_ERR_INVALID : BG_OK;
}

/* Bytes and fixed defaults are JSON strings of code points 0..255. */
static size_t json_bytes(const char *s, size_t len, uint8_t *out, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < len && n < cap; i++) {
        uint8_t ch = (uint8_t)s[i];
        if ((ch & 0xe0) == 0xc0 && i + 1 < len) {
            out[n++] = (uint8_t)(((ch & 0x1f) << 6) | ((uint8_t)s[i + 1] & 0x3f));
            i++;
        } else {
            out[n++] = ch;
        }
    }
    return n;
}

/* Set v (of writer type s) from a JSON default, or to the type's zero value
 * when j is NULL. */
static bg_err set_json(bg_codec *c, avro_value_t *v, avro_schema_t s, json_t *j, unsigned depth) {
    s = deref(s);
    if (!s || depth > 32)
        return BG_ERR_SCHEMA;
    int rc = 0;
    switch (avro_typeof(s)) {
    case AVRO_NULL: rc = avro_value_set_null(v); break;
    case AVRO_BOOLEAN: rc = avro_value_set_boolean(v, json_is_true(j)); break;
    case AVRO_INT32: rc = avro_value_set_int(v, (int32_t)json_integer_value(j)); break;
    case AVRO_INT64: rc = avro_value_set_long(v, (int64_t)json_integer_value(j)); break;
    case AVRO_FLOAT: rc = avro_value_set_float(v, (float)json_number_value(j)); break;
    case AVRO_DOUBLE: rc = avro_value_set_double(v, json_number_value(j)); break;
    case AVRO_STRING:
        return set_string(c, v, json_is_string(j) ? json_string_value(j) : "",
                          json_is_string(j) ? json_string_length(j) : 0);
    case AVRO_BYTES:
    case AVRO_FIXED: {
        size_t cap = avro_typeof(s) == AVRO_FIXED ? (size_t)avro_schema_fixed_size(s)
                                                  : (json_is_string(j) ? json_string_length(j) : 0);
        uint8_t *b = calloc(cap ? cap : 1, 1);
        if (!b)
            return BG_ERR_NOMEM;
        size_t n = json_is_string(j) ? json_bytes(json_string_value(j), json_string_length(j), b, cap)
                                     : 0;
        rc = avro_typeof(s) == AVRO_FIXED ? avro_value_set_fixed(v, b, cap)
                                          : avro_value_set_bytes(v, b, n);
        free(b);
        break;
    }
    case AVRO_ENUM: {
        int k = 0;
        if (json_is_string(j)) {
            int n = avro_schema_enum_number_of_symbols(s);
            for (int i = 0; i < n; i++)
                if (strcmp(avro_schema_enum_get(s, i), json_string_value(j)) == 0)
                    k = i;
        }
        rc = avro_value_set_enum(v, k);
        break;
    }
    case AVRO_ARRAY: {
        size_t i;
        json_t *el;
        json_array_foreach(j, i, el) {
            avro_value_t ev;
            if (avro_value_append(v, &ev, NULL))
                return BG_ERR_NOMEM;
            bg_err e = set_json(c, &ev, avro_schema_array_items(s), el, depth + 1);
            if (e != BG_OK)
                return e;
        }
        break;
    }
    case AVRO_MAP: {
        const char *key;
        json_t *el;
        json_object_foreach(j, key, el) {
            avro_value_t ev;
            if (avro_value_add(v, key, &ev, NULL, NULL))
                return BG_ERR_NOMEM;
            bg_err e = set_json(c, &ev, avro_schema_map_values(s), el, depth + 1);
            if (e != BG_OK)
                return e;
        }
        break;
    }
    case AVRO_UNION: {
        /* a union's default belongs to its first branch */
        avro_value_t bv;
        if (avro_value_set_branch(v, 0, &bv))
            return BG_ERR_INVALID;
        return set_json(c, &bv, avro_schema_union_branch(s, 0), j, depth + 1);
    }
    case AVRO_RECORD: {
        size_t n = avro_schema_record_size(s);
        for (size_t i = 0; i < n; i++) {
            avro_value_t fv;
            if (avro_value_get_by_index(v, i, &fv, NULL))
                return BG_ERR_INVALID;
            json_t *fj = json_object_get(j, avro_schema_record_field_name(s, (int)i));
            bg_err e = set_json(c, &fv, avro_schema_record_field_get_by_index(s, (int)i), fj,
                                depth + 1);
            if (e != BG_OK)
                return e;
        }
        break;
    }
    default: return BG_ERR_SCHEMA;
    }
    return rc ? BG_ERR_INVALID : BG_OK;
}

/* An array of strings (arr or cs, n items) into writer type s. */
static bg_err set_str_array(bg_codec *c, avro_value_t *v0, avro_schema_t s0, const bg_str *arr,
                            const char *const *cs, size_t n) {
    avro_value_t v;
    avro_schema_t s;
    if (pick(v0, s0, -1, AVRO_ARRAY, &v, &s) != BG_OK || avro_typeof(s) != AVRO_ARRAY)
        return BG_ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        avro_value_t ev;
        if (avro_value_append(&v, &ev, NULL))
            return BG_ERR_NOMEM;
        sv x = arr ? sv_bstr(arr[i]) : sv_cstr(cs[i]);
        if (x.t == SV_NULL)
            x = sv_str("", 0);
        bg_err e = set_sv(c, &ev, avro_schema_array_items(s), &x);
        if (e != BG_OK)
            return e;
    }
    return BG_OK;
}

/* The JSON default of field i of the writer record described by fields_json. */
static json_t *field_default(json_t *fields_json, size_t i) {
    return json_object_get(json_array_get(fields_json, i), "default");
}

static bg_err prepare(entry *e) {
    if (!e->iface) {
        e->iface = avro_generic_class_from_schema(e->schema);
        if (!e->iface)
            return BG_ERR_SCHEMA;
        if (avro_generic_value_new(e->iface, &e->value)) {
            avro_value_iface_decref(e->iface);
            e->iface = NULL;
            return BG_ERR_NOMEM;
        }
    }
    avro_value_reset(&e->value);
    return BG_OK;
}

/* Write e->value into out: with the 5-byte framing (hdr 5) or bare (hdr 0,
 * the canonical bytes of a signature). */
static bg_err write_value(entry *e, avro_value_t *val, size_t hdr, bg_buf *out) {
    size_t sz = 0;
    if (avro_value_sizeof(val, &sz))
        return BG_ERR_INVALID;
    if (sz + hdr > BG_MAX_MESSAGE)
        return BG_ERR_OVERSIZED;
    if (out->cap < sz + hdr || !out->data) {
        uint8_t *n = realloc(out->data, sz + hdr + 1);
        if (!n)
            return BG_ERR_NOMEM;
        out->data = n;
        out->cap = sz + hdr + 1;
    }
    if (hdr) {
        uint32_t id = (uint32_t)e->id;
        out->data[0] = 0;
        out->data[1] = (uint8_t)(id >> 24);
        out->data[2] = (uint8_t)(id >> 16);
        out->data[3] = (uint8_t)(id >> 8);
        out->data[4] = (uint8_t)id;
    }
    avro_writer_t w = avro_writer_memory((const char *)out->data + hdr, (int64_t)sz);
    if (!w)
        return BG_ERR_NOMEM;
    int rc = avro_value_write(w, val);
    avro_writer_free(w);
    if (rc)
        return BG_ERR_INVALID;
    out->len = sz + hdr;
    return BG_OK;
}

static bg_err frame(entry *e, bg_buf *out) { return write_value(e, &e->value, 5, out); }

/* A record (v, writer type s, its JSON `fields`) filled field by field: fill()
 * returns 1 for a name it does not know, which then gets its default. */
typedef int (*fill_fn)(bg_codec *c, const char *name, avro_value_t *fv, avro_schema_t fs,
                       void *ctx, bg_err *err);

static bg_err fill_record(bg_codec *c, avro_value_t *v, avro_schema_t s, json_t *fields,
                          fill_fn fill, void *ctx) {
    s = deref(s);
    if (!s || avro_typeof(s) != AVRO_RECORD)
        return BG_ERR_SCHEMA;
    size_t n = avro_schema_record_size(s);
    for (size_t i = 0; i < n; i++) {
        avro_value_t fv;
        if (avro_value_get_by_index(v, i, &fv, NULL))
            return BG_ERR_INVALID;
        const char *name = avro_schema_record_field_name(s, (int)i);
        avro_schema_t fs = avro_schema_record_field_get_by_index(s, (int)i);
        bg_err err = BG_OK;
        if (fill(c, name, &fv, fs, ctx, &err) == 1)
            err = set_json(c, &fv, fs, field_default(fields, i), 0);
        if (err != BG_OK)
            return err;
    }
    return BG_OK;
}

/* Inputs: fields by the reader slot table. */
typedef struct slot_ctx {
    const bg_codec_reader *reader;
    const char *base; /* the bg_event or bg_envelope_msg */
} slot_ctx;

static int fill_slot(bg_codec *c, const char *name, avro_value_t *fv, avro_schema_t fs,
                     void *vctx, bg_err *err) {
    const slot_ctx *x = vctx;
    size_t n;
    const bg_codec_slot *sl = bg_codec_reader_slots(x->reader, &n);
    size_t k;
    for (k = 0; k < n; k++)
        if (strcmp(sl[k].name, name) == 0)
            break;
    if (k == n)
        return 1;
    const char *p = x->base + sl[k].off;
    sv v;
    switch (sl[k].kind) {
    case BG_SLOT_STR: {
        bg_str s;
        memcpy(&s, p, sizeof s);
        v = s.ptr ? sv_bstr(s) : sv_str("", 0);
        break;
    }
    case BG_SLOT_NSTR:
    case BG_SLOT_NBYTES: {
        bg_str s;
        memcpy(&s, p, sizeof s);
        v = sv_bstr(s);
        break;
    }
    case BG_SLOT_LONG: {
        int64_t i;
        memcpy(&i, p, sizeof i);
        v = sv_long(i);
        break;
    }
    case BG_SLOT_INT: {
        int32_t i;
        memcpy(&i, p, sizeof i);
        v = sv_long(i);
        break;
    }
    case BG_SLOT_NLONG: {
        bg_opt_i64 o;
        memcpy(&o, p, sizeof o);
        v = o.set ? sv_long(o.v) : (sv){.t = SV_NULL};
        break;
    }
    case BG_SLOT_BOOL: {
        bool b;
        memcpy(&b, p, sizeof b);
        v = sv_bool(b);
        break;
    }
    case BG_SLOT_ENUM: {
        int32_t i;
        memcpy(&i, p, sizeof i);
        const char *sym = bg_codec_reader_symbol(x->reader, k, i);
        if (!sym) {
            *err = BG_ERR_BAD_VALUE;
            return 0;
        }
        v = sv_enum(sym);
        break;
    }
    case BG_SLOT_ARR_STR: {
        uint32_t cnt;
        memcpy(&cnt, x->base + sl[k].count_off, sizeof cnt);
        if (cnt > sl[k].cap)
            cnt = sl[k].cap;
        *err = set_str_array(c, fv, fs, (const bg_str *)(const void *)p, NULL, cnt);
        return 0;
    }
    default: *err = BG_ERR_INVALID; return 0;
    }
    *err = set_sv(c, fv, fs, &v);
    return 0;
}

static bg_err encode_input(bg_codec *c, int32_t schema_id, bg_record rec, const void *src,
                           bg_buf *out) {
    if (!c || !src || !out)
        return BG_ERR_INVALID;
    entry *e = find(c, schema_id);
    if (!e)
        return BG_ERR_UNKNOWN_SCHEMA;
    if (e->rec != (int)rec)
        return BG_ERR_WRONG_TYPE;
    bg_err err = prepare(e);
    if (err != BG_OK)
        return err;
    slot_ctx x = {c->readers[rec], src};
    err = fill_record(c, &e->value, e->schema, json_object_get(e->json, "fields"), fill_slot, &x);
    return err != BG_OK ? err : frame(e, out);
}

bg_err bg_codec_encode_event(bg_codec *c, int32_t schema_id, const bg_event *ev, bg_buf *out) {
    if (!ev || (unsigned)ev->kind > (unsigned)BG_EV_TOOLCALL)
        return BG_ERR_INVALID;
    static const bg_record recs[] = {BG_REC_USAGE, BG_REC_SECRET, BG_REC_TOOLCALL};
    return encode_input(c, schema_id, recs[ev->kind], ev, out);
}

bg_err bg_codec_encode_envelope(bg_codec *c, int32_t schema_id, const bg_envelope_msg *env,
                                bg_buf *out) {
    return encode_input(c, schema_id, BG_REC_ENVELOPE, env, out);
}

/* ------------------------------------------------------------------------ */
/* Encode: outputs                                                          */
/* ------------------------------------------------------------------------ */

typedef struct out_ctx {
    const bg_verdict *v;
    const bg_revocation *r;
    const bg_emit_meta *m;
    const bg_reason *reason;       /* the Reason being filled */
    const bg_source_range *source; /* the SourceRange being filled */
} out_ctx;

#define IS(s) (strcmp(name, s) == 0)

static int fill_reason(bg_codec *c, const char *name, avro_value_t *fv, avro_schema_t fs,
                       void *vctx, bg_err *err) {
    const bg_reason *r = ((const out_ctx *)vctx)->reason;
    sv x;
    if (IS("code")) x = sv_cstr(r->code ? r->code : "");
    else if (IS("detector")) x = sv_cstr(r->detector ? r->detector : "");
    else if (IS("observed")) x = sv_double(r->observed);
    else if (IS("baseline")) x = sv_double(r->baseline);
    else if (IS("threshold")) x = sv_double(r->threshold);
    else if (IS("score")) x = sv_double(r->score);
    else return 1;
    *err = set_sv(c, fv, fs, &x);
    return 0;
}

static int fill_source(bg_codec *c, const char *name, avro_value_t *fv, avro_schema_t fs,
                       void *vctx, bg_err *err) {
    const out_ctx *o = vctx;
    const bg_source_range *s = o->source;
    sv x;
    if (IS("topic")) {
        const char *t = o->m && o->m->topic_names && (unsigned)s->topic < BG_EV_KIND_COUNT
                            ? o->m->topic_names[s->topic]
                            : NULL;
        x = sv_cstr(t ? t : "");
    } else if (IS("partition")) x = sv_long(s->partition);
    else if (IS("first_offset")) x = sv_long(s->first_offset);
    else if (IS("last_offset")) x = sv_long(s->last_offset);
    else return 1;
    *err = set_sv(c, fv, fs, &x);
    return 0;
}

/* An array of records from n items, each filled by fill with ctx pointed at it. */
static bg_err set_record_array(bg_codec *c, avro_value_t *v0, avro_schema_t s0, json_t *field_j,
                               size_t n, fill_fn fill, out_ctx *o, bool reasons) {
    avro_value_t v;
    avro_schema_t s;
    if (pick(v0, s0, -1, AVRO_ARRAY, &v, &s) != BG_OK || avro_typeof(s) != AVRO_ARRAY)
        return BG_ERR_INVALID;
    /* the item record's JSON, for its fields' defaults, when declared inline */
    json_t *items = json_object_get(json_object_get(field_j, "type"), "items");
    json_t *fields = json_object_get(items, "fields");
    for (size_t i = 0; i < n; i++) {
        avro_value_t ev;
        if (avro_value_append(&v, &ev, NULL))
            return BG_ERR_NOMEM;
        if (reasons)
            o->reason = &o->v->reasons[i];
        else
            o->source = &o->v->source[i];
        bg_err e = fill_record(c, &ev, avro_schema_array_items(s), fields, fill, o);
        if (e != BG_OK)
            return e;
    }
    return BG_OK;
}

static json_t *field_json(bg_codec *c, const char *name) {
    /* the field's JSON in the Verdict writer schema (for nested defaults) */
    entry *e = find(c, c->out_id[BG_REC_VERDICT]);
    json_t *fields = e ? json_object_get(e->json, "fields") : NULL;
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f) {
        if (json_is_string(json_object_get(f, "name")) &&
            strcmp(json_string_value(json_object_get(f, "name")), name) == 0)
            return f;
    }
    return NULL;
}

static int fill_verdict(bg_codec *c, const char *name, avro_value_t *fv, avro_schema_t fs,
                        void *vctx, bg_err *err) {
    out_ctx *o = vctx; /* the array fillers move its cursors */
    const bg_verdict *v = o->v;
    const bg_emit_meta *m = o->m;
    sv x;
    if (IS("verdict_id")) x = sv_cstr(v->verdict_id);
    else if (IS("identity")) x = sv_cstr(v->identity ? v->identity : "");
    else if (IS("owner")) x = sv_cstr(v->owner);
    else if (IS("workload_class")) x = sv_cstr(v->workload_class);
    else if (IS("classification")) x = sv_enum(bg_class_name(v->classification));
    else if (IS("phase")) x = sv_enum(bg_phase_name(v->phase));
    else if (IS("action")) x = sv_enum(bg_action_name(v->action));
    else if (IS("severity")) x = sv_long(v->severity);
    else if (IS("window_start")) x = sv_long(v->window_start);
    else if (IS("window_end")) x = sv_long(v->window_end);
    else if (IS("decided_at")) x = sv_long(v->decided_at);
    else if (IS("emitted_at")) x = sv_long(m ? m->emitted_at : 0);
    else if (IS("envelope_id")) x = sv_cstr(v->envelope_id);
    else if (IS("policy_version")) x = sv_cstr(v->policy_version ? v->policy_version : "");
    else if (IS("worker_version"))
        x = sv_cstr(m && m->worker_version ? m->worker_version : BG_VERSION);
    else if (IS("replay")) x = sv_bool(m ? m->replay : false);
    else if (IS("new_secret_ids") || IS("new_destinations") || IS("review_routes")) {
        const char *const *list = IS("new_secret_ids") ? v->new_secret_ids
                                  : IS("new_destinations") ? v->new_destinations
                                                           : v->review_routes;
        uint32_t n = IS("new_secret_ids") ? v->n_new_secret_ids
                     : IS("new_destinations") ? v->n_new_destinations
                                              : v->n_review_routes;
        *err = set_str_array(c, fv, fs, NULL, list, n < BG_MAX_LIST ? n : BG_MAX_LIST);
        return 0;
    } else if (IS("reasons")) {
        uint32_t n = v->n_reasons < BG_MAX_REASONS ? v->n_reasons : BG_MAX_REASONS;
        *err = set_record_array(c, fv, fs, field_json(c, name), n, fill_reason, o, true);
        return 0;
    } else if (IS("source")) {
        uint32_t n = v->n_source < BG_EV_KIND_COUNT ? v->n_source : BG_EV_KIND_COUNT;
        *err = set_record_array(c, fv, fs, field_json(c, name), n, fill_source, o, false);
        return 0;
    } else
        return 1;
    *err = set_sv(c, fv, fs, &x);
    return 0;
}

static int fill_revocation(bg_codec *c, const char *name, avro_value_t *fv, avro_schema_t fs,
                           void *vctx, bg_err *err) {
    const out_ctx *o = vctx;
    const bg_revocation *r = o->r;
    const bg_emit_meta *m = o->m;
    sv x;
    if (IS("command_id")) x = sv_cstr(r->command_id);
    else if (IS("verdict_id")) x = sv_cstr(r->verdict_id);
    else if (IS("identity")) x = sv_cstr(r->identity ? r->identity : "");
    else if (IS("target")) x = sv_enum(bg_target_name(r->target));
    else if (IS("secret_id")) x = sv_cstr(r->secret_id);
    else if (IS("reason")) x = sv_cstr(r->reason ? r->reason : "");
    else if (IS("issued_at")) x = sv_long(r->issued_at);
    else if (IS("dry_run")) x = sv_bool(r->dry_run);
    else if (IS("key_id")) x = sv_cstr(m ? m->key_id : NULL);
    else if (IS("signature"))
        x = m && m->key_id && m->signature ? sv_str((const char *)m->signature, m->signature_len)
                                           : (sv){.t = SV_NULL};
    else return 1;
    *err = set_sv(c, fv, fs, &x);
    return 0;
}

static bg_err encode_output(bg_codec *c, bg_record rec, fill_fn fill, out_ctx *o, bg_buf *out) {
    if (!c || !out)
        return BG_ERR_INVALID;
    if (!c->has_out[rec])
        return BG_ERR_UNKNOWN_SCHEMA;
    entry *e = find(c, c->out_id[rec]);
    if (!e)
        return BG_ERR_UNKNOWN_SCHEMA;
    bg_err err = prepare(e);
    if (err != BG_OK)
        return err;
    err = fill_record(c, &e->value, e->schema, json_object_get(e->json, "fields"), fill, o);
    return err != BG_OK ? err : frame(e, out);
}

bg_err bg_codec_encode_verdict(bg_codec *c, const bg_verdict *v, const bg_emit_meta *m,
                               bg_buf *out) {
    if (!v)
        return BG_ERR_INVALID;
    out_ctx o = {.v = v, .m = m};
    return encode_output(c, BG_REC_VERDICT, fill_verdict, &o, out);
}

bg_err bg_codec_encode_revocation(bg_codec *c, const bg_revocation *r, const bg_emit_meta *m,
                                  bg_buf *out) {
    if (!r)
        return BG_ERR_INVALID;
    out_ctx o = {.r = r, .m = m};
    return encode_output(c, BG_REC_REVOCATION, fill_revocation, &o, out);
}

/* ------------------------------------------------------------------------ */
/* Canonical bytes (what signatures cover, see sign.h)                      */
/* ------------------------------------------------------------------------ */

/* The reader schema of rec as an encoder entry, parsed on first use. */
static entry *canon_entry(bg_codec *c, bg_record rec) {
    if (c->has_canon[rec])
        return &c->canon[rec];
    entry *e = &c->canon[rec];
    memset(e, 0, sizeof *e);
    e->id = -1;
    e->rec = (int)rec;
    const char *t = bg_schema_texts[rec];
    json_error_t je;
    if (avro_schema_from_json_length(t, strlen(t), &e->schema) != 0)
        return NULL;
    e->json = json_loadb(t, strlen(t), 0, &je);
    if (!e->json) {
        avro_schema_decref(e->schema);
        return NULL;
    }
    c->has_canon[rec] = true;
    return e;
}

bg_err bg_codec_canonical_envelope(bg_codec *c, const bg_envelope_msg *env, bg_buf *out) {
    if (!c || !env || !out)
        return BG_ERR_INVALID;
    entry *e = canon_entry(c, BG_REC_ENVELOPE);
    if (!e)
        return BG_ERR_SCHEMA;
    bg_err err = prepare(e);
    if (err != BG_OK)
        return err;
    bg_envelope_msg m = *env;
    m.signature = (bg_str){NULL, 0};
    slot_ctx x = {c->readers[BG_REC_ENVELOPE], (const char *)&m};
    err = fill_record(c, &e->value, e->schema, json_object_get(e->json, "fields"), fill_slot, &x);
    return err != BG_OK ? err : write_value(e, &e->value, 0, out);
}

bg_err bg_codec_canonical_revocation(bg_codec *c, const bg_revocation *r, const char *key_id,
                                     bg_buf *out) {
    if (!c || !r || !out)
        return BG_ERR_INVALID;
    entry *e = canon_entry(c, BG_REC_REVOCATION);
    if (!e)
        return BG_ERR_SCHEMA;
    bg_err err = prepare(e);
    if (err != BG_OK)
        return err;
    bg_emit_meta m = {.key_id = key_id};
    out_ctx o = {.r = r, .m = &m};
    err = fill_record(c, &e->value, e->schema, json_object_get(e->json, "fields"),
                      fill_revocation, &o);
    return err != BG_OK ? err : write_value(e, &e->value, 0, out);
}

/* Walk one Avro value of schema s in b[*pos..len) with every length and index
 * checked, so that Avro-C (which trusts lengths) only ever reads a body known
 * to be well formed. Records, unions, enums and the primitive types only:
 * what the RevocationCommand schema uses. */
static bool walk_varint(const uint8_t *b, size_t len, size_t *pos, int64_t *out) {
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*pos >= len)
            return false;
        uint8_t c = b[(*pos)++];
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return true;
        }
    }
    return false;
}

static bool walk(avro_schema_t s, const uint8_t *b, size_t len, size_t *pos, unsigned depth) {
    int64_t v;
    if (depth > 8)
        return false;
    switch (avro_typeof(s)) {
    case AVRO_NULL: return true;
    case AVRO_BOOLEAN:
        if (*pos >= len || b[*pos] > 1)
            return false;
        (*pos)++;
        return true;
    case AVRO_INT32:
    case AVRO_INT64: return walk_varint(b, len, pos, &v);
    case AVRO_STRING:
    case AVRO_BYTES:
        if (!walk_varint(b, len, pos, &v) || v < 0 || v > (int64_t)BG_MAX_STRING ||
            (size_t)v > len - *pos)
            return false;
        *pos += (size_t)v;
        return true;
    case AVRO_ENUM:
        return walk_varint(b, len, pos, &v) && v >= 0 &&
               v < (int64_t)avro_schema_enum_number_of_symbols(s);
    case AVRO_UNION:
        if (!walk_varint(b, len, pos, &v) || v < 0 || v >= (int64_t)avro_schema_union_size(s))
            return false;
        return walk(avro_schema_union_branch(s, (int)v), b, len, pos, depth + 1);
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            if (!walk(avro_schema_record_field_get_by_index(s, (int)i), b, len, pos, depth + 1))
                return false;
        return true;
    case AVRO_LINK: return walk(avro_schema_link_target(s), b, len, pos, depth + 1);
    default: return false;
    }
}

static bg_err unsign_value(entry *w, avro_value_t *val, const uint8_t *b, size_t len,
                           bg_buf *canon, char *key_id, size_t key_id_size, uint8_t *sig,
                           size_t *sig_len, char *why, size_t why_size);

bg_err bg_codec_revocation_unsign(bg_codec *c, const void *buf, size_t len, bg_buf *canon,
                                  char *key_id, size_t key_id_size, uint8_t *sig,
                                  size_t *sig_len, char *why, size_t why_size) {
    const uint8_t *b = buf;
    if (!c || !buf || !canon || !sig || !sig_len || !key_id || key_id_size == 0)
        return BG_ERR_INVALID;
    if (len < 5) {
        say(why, why_size, "message of %zu bytes is shorter than the 5-byte framing", len);
        return BG_ERR_TRUNCATED;
    }
    if (b[0] != 0) {
        say(why, why_size, "magic byte 0x%02x, expected 0 (Confluent framing)", b[0]);
        return BG_ERR_BAD_MAGIC;
    }
    if (len > BG_MAX_MESSAGE) {
        say(why, why_size, "message of %zu bytes is over the cap", len);
        return BG_ERR_OVERSIZED;
    }
    int32_t id = (int32_t)((uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 |
                           (uint32_t)b[4]);
    entry *w = find(c, id);
    if (!w) {
        say(why, why_size, "schema id %d is not registered", id);
        return BG_ERR_UNKNOWN_SCHEMA;
    }
    if (w->rec != BG_REC_REVOCATION) {
        say(why, why_size, "schema id %d is %s, not a RevocationCommand", id, w->full_name);
        return BG_ERR_WRONG_TYPE;
    }
    /* the canonical bytes are under the reader schema; a writer with another
     * text would need resolution first, which verification does not do */
    if (strcmp(w->text, bg_schema_texts[BG_REC_REVOCATION]) != 0) {
        say(why, why_size, "schema id %d differs from the built-in RevocationCommand schema", id);
        return BG_ERR_SCHEMA;
    }
    size_t pos = 0;
    bool walked = walk(w->schema, b + 5, len - 5, &pos, 0);
    if (!walked || pos != len - 5) {
        say(why, why_size, "body is not a valid RevocationCommand%s",
            walked ? " (trailing bytes)" : "");
        return BG_ERR_MALFORMED;
    }
    bg_err err = prepare(w);
    if (err != BG_OK)
        return err;
    /* a fresh value per call: Avro-C leaks strings read into a reused one */
    avro_value_t val;
    if (avro_generic_value_new(w->iface, &val))
        return BG_ERR_NOMEM;
    err = unsign_value(w, &val, b, len, canon, key_id, key_id_size, sig, sig_len, why, why_size);
    avro_value_decref(&val);
    return err;
}

static bg_err unsign_value(entry *w, avro_value_t *val, const uint8_t *b, size_t len,
                           bg_buf *canon, char *key_id, size_t key_id_size, uint8_t *sig,
                           size_t *sig_len, char *why, size_t why_size) {
    avro_reader_t rd = avro_reader_memory((const char *)b + 5, (int64_t)(len - 5));
    if (!rd)
        return BG_ERR_NOMEM;
    int rc = avro_value_read(rd, val);
    avro_reader_free(rd);
    /* trailing bytes (or a non-minimal encoding) would be outside what the
     * signature covers: the body must be exactly the value's encoding */
    size_t sz = 0;
    bool trailing = !rc && (avro_value_sizeof(val, &sz) || sz != len - 5);
    if (rc || trailing) {
        say(why, why_size, "body is not a valid RevocationCommand%s", trailing ? " (trailing bytes)" : "");
        return BG_ERR_MALFORMED;
    }
    avro_value_t f, br;
    int disc = -1;
    *sig_len = 0;
    key_id[0] = '\0';
    if (avro_value_get_by_name(val, "key_id", &f, NULL) ||
        avro_value_get_discriminant(&f, &disc) || avro_value_get_current_branch(&f, &br))
        return BG_ERR_MALFORMED;
    if (avro_value_get_type(&br) == AVRO_STRING) {
        const char *s = NULL;
        size_t n = 0;
        if (avro_value_get_string(&br, &s, &n) || n == 0 || n > key_id_size) {
            say(why, why_size, "key_id is empty or too long");
            return BG_ERR_BAD_VALUE;
        }
        memcpy(key_id, s, n - 1); /* n counts the NUL */
        key_id[n - 1] = '\0';
    }
    if (avro_value_get_by_name(val, "signature", &f, NULL) ||
        avro_value_get_current_branch(&f, &br))
        return BG_ERR_MALFORMED;
    if (avro_value_get_type(&br) == AVRO_BYTES) {
        const void *p = NULL;
        size_t n = 0;
        if (avro_value_get_bytes(&br, &p, &n))
            return BG_ERR_MALFORMED;
        if (n > 64) {
            say(why, why_size, "signature of %zu bytes, expected 64", n);
            return BG_ERR_BAD_SIGNATURE;
        }
        memcpy(sig, p, n);
        *sig_len = n;
    }
    for (size_t i = 0; i < avro_schema_union_size(avro_schema_record_field_get(w->schema,
                                                                               "signature"));
         i++) {
        avro_schema_t bs = avro_schema_union_branch(
            avro_schema_record_field_get(w->schema, "signature"), (int)i);
        if (avro_typeof(bs) == AVRO_NULL) {
            if (avro_value_set_branch(&f, (int)i, &br) || avro_value_set_null(&br))
                return BG_ERR_MALFORMED;
            return write_value(w, val, 0, canon);
        }
    }
    say(why, why_size, "signature field has no null branch");
    return BG_ERR_SCHEMA;
}
