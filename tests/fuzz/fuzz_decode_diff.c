/* Differential libFuzzer target: burstguard's resolving decoder
 * (worker/codec_plan.c) against Avro-C 1.11.1's generic decoder, on the same
 * bytes.
 *
 * Input: byte 0 selects the (writer, reader) pair, taken modulo 6; the rest is
 * the Avro binary body (the Confluent framing is added here, so no input is
 * spent on it):
 *   0..2  UsageEvent, SecretIssued, ToolCall written with the reader schema
 *   3..5  the same records written with a writer schema whose fields are in
 *         reverse order, plus a writer-only map field in the middle: reader
 *         schema resolution by field name, with a skipped field.
 * Avro-C's resolver fails on reader fields the writer lacks (DESIGN.md:
 * "fails on added reader fields"), so no pair here has one; the reader-default
 * paths are covered by fuzz_decode.c's round trip instead.
 *
 * Properties (a violation is __builtin_trap):
 *   - ours accepts => Avro-C accepts, consumes exactly the body, and every
 *     reader field is equal (strings byte for byte, null vs empty kept apart,
 *     enum indices, array items);
 *   - Avro-C rejects => ours rejects;
 *   - ours rejects as TRUNCATED => Avro-C rejects, for the pairs without
 *     arrays or maps (0 and 2): where a block carries a byte size, ours
 *     checks it against the bytes left and Avro-C ignores it, so an
 *     overrunning block size is TRUNCATED for us and may decode for Avro-C
 *     (the first divergence this target found; a rejection either way).
 * Ours may reject what Avro-C accepts only for the documented strictness
 * (codec_plan.c's header): over-long or overflowing varints, boolean bytes
 * other than 0/1, trailing bytes, lengths over the caps of detectors/event.h
 * (MALFORMED / OVERSIZED).
 *
 * Avro-C allocates a string's length before it checks that the bytes are
 * there, and leaks on some error paths; so during each Avro-C decode its
 * allocations come from a per-input arena (bounded: a larger request fails
 * as out of memory, which Avro-C reports as an error) that is reset
 * afterwards. */
#include <avro.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- Avro-C's allocator: the heap, or the arena while decoding ----------------- */

#define ARENA_BYTES (8u << 20)
static uint8_t *arena;
static size_t arena_used;
static int arena_on;

static int in_arena(const void *p) {
    return arena && (const uint8_t *)p >= arena && (const uint8_t *)p < arena + ARENA_BYTES;
}

static void *alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud;
    if (nsize == 0) {
        if (ptr && !in_arena(ptr))
            free(ptr);
        return NULL;
    }
    if (!arena_on && !in_arena(ptr))
        return realloc(ptr, nsize);
    size_t need = (nsize + 15) & ~(size_t)15;
    if (need > ARENA_BYTES - arena_used)
        return NULL;
    void *n = arena + arena_used;
    arena_used += need;
    if (ptr) {
        memcpy(n, ptr, osize < nsize ? osize : nsize);
        if (!in_arena(ptr))
            free(ptr);
    }
    return n;
}

/* ---- the schema pairs ------------------------------------------------------------ */

typedef enum ftype { F_STR, F_OPTSTR, F_LONG, F_INT, F_BOOL, F_ENUM, F_STRARR } ftype;
typedef struct fspec {
    const char *name;
    ftype t;
    size_t off, off_n; /* into bg_event; off_n: the count of an array */
} fspec;

#define EO(f) offsetof(bg_event, f)
static const fspec common[] = {
    {"event_id", F_STR, EO(event_id), 0},         {"identity", F_STR, EO(identity), 0},
    {"owner", F_OPTSTR, EO(owner), 0},            {"workload_class", F_OPTSTR, EO(workload_class), 0},
    {"event_time", F_LONG, EO(event_time), 0},    {"trace_id", F_OPTSTR, EO(trace_id), 0},
};
static const fspec usage_f[] = {
    {"api", F_STR, EO(u.usage.api), 0},           {"destination", F_STR, EO(u.usage.destination), 0},
    {"api_calls", F_INT, EO(u.usage.api_calls), 0}, {"tokens_in", F_LONG, EO(u.usage.tokens_in), 0},
    {"tokens_out", F_LONG, EO(u.usage.tokens_out), 0},
    {"cost_micros", F_LONG, EO(u.usage.cost_micros), 0},
};
static const fspec secret_f[] = {
    {"secret_id", F_STR, EO(u.secret.secret_id), 0},
    {"secret_kind", F_ENUM, EO(u.secret.secret_kind), 0},
    {"issuer", F_STR, EO(u.secret.issuer), 0},
    {"scopes", F_STRARR, EO(u.secret.scopes), EO(u.secret.n_scopes)},
    {"ttl_seconds", F_LONG, EO(u.secret.ttl_seconds), 0},
    {"subject", F_OPTSTR, EO(u.secret.subject), 0},
};
static const fspec tool_f[] = {
    {"tool", F_STR, EO(u.tool.tool), 0},
    {"destination", F_STR, EO(u.tool.destination), 0},
    {"operation", F_STR, EO(u.tool.operation), 0},
    {"credential_id", F_OPTSTR, EO(u.tool.credential_id), 0},
    {"parent_tool", F_OPTSTR, EO(u.tool.parent_tool), 0},
    {"side_effect", F_BOOL, EO(u.tool.side_effect), 0},
    {"status", F_ENUM, EO(u.tool.status), 0},
    {"bytes_out", F_LONG, EO(u.tool.bytes_out), 0},
};

typedef struct pairs {
    avro_schema_t reader, writer[2];     /* writer[0] = reader; writer[1] reordered */
    avro_value_iface_t *reader_iface;
    avro_value_iface_t *resolver;        /* writer[1] -> reader */
    int32_t id[2];                        /* ours: schema ids */
} pairs;

static bg_codec *codec;
static pairs kinds[3];

static void teardown(void) { bg_codec_free(codec); }

/* The reader schema's fields reversed, with a writer-only map field between
 * them. */
static char *reordered(const char *reader_json) {
    json_error_t je;
    json_t *s = json_loads(reader_json, 0, &je);
    json_t *f = s ? json_object_get(s, "fields") : NULL;
    if (!f)
        abort();
    json_t *rev = json_array();
    for (size_t i = json_array_size(f); i-- > 0;) {
        json_array_append(rev, json_array_get(f, i));
        if (i == json_array_size(f) / 2)
            json_array_append_new(
                rev, json_pack("{s:s, s:{s:s, s:{s:s, s:s}}}", "name", "x_writer_only", "type",
                               "type", "map", "values", "type", "array", "items", "long"));
    }
    json_object_set_new(s, "fields", rev);
    char *out = json_dumps(s, JSON_COMPACT);
    json_decref(s);
    return out;
}

static void setup(void) {
    avro_set_allocator(alloc_fn, NULL);
    arena = malloc(ARENA_BYTES);
    char err[256];
    if (!arena || bg_codec_new(&codec, err, sizeof err) != BG_OK ||
        bg_codec_add_defaults(codec, err, sizeof err) != BG_OK)
        abort(); /* our own schemas: a setup bug, not an input */
    static const bg_record recs[3] = {BG_REC_USAGE, BG_REC_SECRET, BG_REC_TOOLCALL};
    for (int k = 0; k < 3; k++) {
        pairs *p = &kinds[k];
        const char *rj = bg_codec_reader_schema(recs[k]);
        char *wj = reordered(rj);
        p->id[0] = bg_codec_default_id(recs[k]);
        p->id[1] = 200 + k;
        if (avro_schema_from_json_length(rj, strlen(rj), &p->reader) ||
            avro_schema_from_json_length(wj, strlen(wj), &p->writer[1]) ||
            bg_codec_add_schema(codec, p->id[1], wj, strlen(wj), err, sizeof err) != BG_OK)
            abort();
        free(wj);
        p->writer[0] = p->reader;
        p->reader_iface = avro_generic_class_from_schema(p->reader);
        p->resolver = avro_resolved_writer_new(p->writer[1], p->reader);
        if (!p->reader_iface || !p->resolver)
            abort();
    }
    atexit(teardown);
}

/* ---- comparison -------------------------------------------------------------------- */

static int same_str(const avro_value_t *v, bg_str s) {
    const char *p;
    size_t n; /* Avro-C counts the NUL */
    if (avro_value_get_string(v, &p, &n) || n == 0)
        return 0;
    return s.ptr && s.len == n - 1 && (s.len == 0 || !memcmp(s.ptr, p, s.len));
}

static int same_field(const avro_value_t *rec, const fspec *f, const bg_event *ev) {
    avro_value_t v, b;
    const char *base = (const char *)ev;
    if (avro_value_get_by_name(rec, f->name, &v, NULL))
        return 0;
    switch (f->t) {
    case F_STR:
        return same_str(&v, *(const bg_str *)(base + f->off));
    case F_OPTSTR: {
        const bg_str *s = (const bg_str *)(base + f->off);
        if (avro_value_get_current_branch(&v, &b))
            return 0;
        if (avro_value_get_type(&b) == AVRO_NULL)
            return s->ptr == NULL && s->len == 0;
        return same_str(&b, *s);
    }
    case F_LONG: {
        int64_t x;
        return !avro_value_get_long(&v, &x) && x == *(const int64_t *)(base + f->off);
    }
    case F_INT: {
        int32_t x;
        return !avro_value_get_int(&v, &x) && x == *(const int32_t *)(base + f->off);
    }
    case F_BOOL: {
        int x;
        return !avro_value_get_boolean(&v, &x) && (x != 0) == *(const bool *)(base + f->off);
    }
    case F_ENUM: {
        int x;
        return !avro_value_get_enum(&v, &x) && x == *(const int32_t *)(base + f->off);
    }
    case F_STRARR: {
        size_t n;
        uint32_t ours = *(const uint32_t *)(base + f->off_n);
        if (avro_value_get_size(&v, &n) || n != ours)
            return 0;
        for (size_t i = 0; i < n; i++)
            if (avro_value_get_by_index(&v, i, &b, NULL) ||
                !same_str(&b, ((const bg_str *)(base + f->off))[i]))
                return 0;
        return 1;
    }
    }
    return 0;
}

static int same_event(const avro_value_t *rec, const bg_event *ev, int kind) {
    const fspec *specific = kind == 0 ? usage_f : kind == 1 ? secret_f : tool_f;
    size_t n = kind == 0   ? sizeof usage_f / sizeof usage_f[0]
               : kind == 1 ? sizeof secret_f / sizeof secret_f[0]
                           : sizeof tool_f / sizeof tool_f[0];
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
        if (!same_field(rec, &common[i], ev))
            return 0;
    for (size_t i = 0; i < n; i++)
        if (!same_field(rec, &specific[i], ev))
            return 0;
    return 1;
}

/* One line on stderr before the trap, so that a saved crash explains itself. */
static void diverged(const char *what, unsigned sel, bg_err ours, const char *why, int theirs) {
    fprintf(stderr, "fuzz_decode_diff: %s (pair %u): ours %s (%s), Avro-C %d (%s)\n", what, sel,
            bg_err_str(ours), ours ? why : "-", theirs, theirs ? avro_strerror() : "ok");
    __builtin_trap();
}

/* ---- the target ---------------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!codec)
        setup();
    if (size == 0 || size > BG_MAX_MESSAGE - 5)
        return 0;
    unsigned sel = data[0] % 6u;
    int kind = (int)(sel % 3), w = (int)(sel / 3);
    pairs *p = &kinds[kind];
    const uint8_t *body = data + 1;
    size_t blen = size - 1;

    /* ours, on the framed message */
    uint8_t *framed = malloc(blen + 5);
    if (!framed)
        return 0;
    framed[0] = 0;
    framed[1] = (uint8_t)(p->id[w] >> 24);
    framed[2] = (uint8_t)(p->id[w] >> 16);
    framed[3] = (uint8_t)(p->id[w] >> 8);
    framed[4] = (uint8_t)p->id[w];
    if (blen)
        memcpy(framed + 5, body, blen);
    bg_event ev;
    char why[256];
    bg_err ours = bg_codec_decode_event(codec, (bg_event_kind)kind, framed, blen + 5, &ev, why,
                                        sizeof why);

    /* Avro-C, on the body */
    arena_on = 1;
    arena_used = 0;
    avro_reader_t r = avro_reader_memory((const char *)body, (int64_t)blen);
    avro_value_t val, rv;
    int theirs = -1, trailing = 0;
    if (r && !avro_generic_value_new(p->reader_iface, &val)) {
        if (w == 0) {
            theirs = avro_value_read(r, &val);
        } else if (!avro_resolved_writer_new_value(p->resolver, &rv)) {
            avro_resolved_writer_set_dest(&rv, &val);
            theirs = avro_value_read(r, &rv);
        }
        char c;
        trailing = theirs == 0 && avro_read(r, &c, 1) == 0;
        if (ours == BG_OK) {
            if (theirs != 0)
                diverged("accepted what Avro-C rejects", sel, ours, why, theirs);
            if (trailing)
                diverged("accepted, Avro-C left bytes unread", sel, ours, why, theirs);
            if (!same_event(&val, &ev, kind))
                diverged("accepted with fields that differ from Avro-C's", sel, ours, why, theirs);
        } else if (ours == BG_ERR_TRUNCATED && theirs == 0 && w == 0 && kind != 1) {
            diverged("ran out of bytes where Avro-C did not", sel, ours, why, theirs);
        }
    }
    /* Avro-C's values and reader live in the arena: dropped wholesale */
    arena_on = 0;
    arena_used = 0;
    free(framed);
    return 0;
}
