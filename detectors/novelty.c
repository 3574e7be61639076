/* First-seen sets (see novelty.h): inline -> table -> bloom. */
#include "novelty.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define BLOOM_WORDS (BG_NOVEL_BLOOM_BITS / 64u)
#define BLOOM_AT 192u /* items at which the table gives way to the bloom filter */

uint64_t bg_novel_hash(bg_novel_kind kind, const void *p, size_t n) {
    return bg_hash64(p, n, BG_SEED_NOVELTY + (uint64_t)kind);
}

static uint32_t fingerprint(uint64_t h) {
    uint32_t f = (uint32_t)(h >> 32);
    return f ? f : 1u;
}

void bg_novel_init(bg_novel *s) { memset(s, 0, sizeof *s); }

void bg_novel_free(bg_novel *s) {
    if (s->form == BG_NOVEL_FORM_TABLE)
        free(s->u.table);
    else if (s->form == BG_NOVEL_FORM_BLOOM)
        free(s->u.bloom);
    bg_novel_init(s);
}

size_t bg_novel_heap_bytes(const bg_novel *s) {
    if (s->form == BG_NOVEL_FORM_TABLE)
        return (size_t)s->slots * sizeof(uint32_t);
    if (s->form == BG_NOVEL_FORM_BLOOM)
        return BLOOM_WORDS * sizeof(uint64_t);
    return 0;
}

/* ---- table ------------------------------------------------------------- */

static bool table_has(const uint32_t *t, uint32_t slots, uint32_t f) {
    for (uint32_t j = f & (slots - 1);; j = (j + 1) & (slots - 1)) {
        if (t[j] == f)
            return true;
        if (!t[j])
            return false;
    }
}

static void table_put(uint32_t *t, uint32_t slots, uint32_t f) {
    uint32_t j = f & (slots - 1);
    while (t[j] && t[j] != f)
        j = (j + 1) & (slots - 1);
    t[j] = f;
}

/* ---- bloom --------------------------------------------------------------- */

/* k probes from two halves of the 64-bit hash (Kirsch-Mitzenmacher). */
static bool bloom_probe(uint64_t *b, uint64_t h, bool set) {
    uint32_t h1 = (uint32_t)h, h2 = (uint32_t)(h >> 32) | 1u;
    bool all = true;
    for (uint32_t i = 0; i < BG_NOVEL_BLOOM_K; i++) {
        uint32_t bit = (h1 + i * h2) & (BG_NOVEL_BLOOM_BITS - 1);
        uint64_t m = 1ull << (bit & 63);
        if (!(b[bit >> 6] & m)) {
            all = false;
            if (set)
                b[bit >> 6] |= m;
        }
    }
    return all;
}

/* The bloom form cannot rebuild from 32-bit fingerprints alone, so they are
 * re-hashed: the fingerprint is the input of the probes from then on. */
static uint64_t bloom_key(uint32_t f) { return bg_hash64(&f, sizeof f, BG_SEED_NOVELTY); }

bool bg_novel_contains(const bg_novel *s, uint64_t h) {
    uint32_t f = fingerprint(h);
    switch (s->form) {
    case BG_NOVEL_FORM_INLINE:
        for (uint32_t i = 0; i < BG_NOVEL_INLINE; i++)
            if (s->u.fp[i] == f)
                return true;
        return false;
    case BG_NOVEL_FORM_TABLE:
        return table_has(s->u.table, s->slots, f);
    default:
        return bloom_probe(s->u.bloom, bloom_key(f), false);
    }
}

static bg_err to_bloom(bg_novel *s) {
    uint64_t *b = calloc(BLOOM_WORDS, sizeof *b);
    if (!b)
        return BG_ERR_NOMEM;
    for (uint32_t i = 0; i < s->slots; i++)
        if (s->u.table[i])
            bloom_probe(b, bloom_key(s->u.table[i]), true);
    free(s->u.table);
    s->u.bloom = b;
    s->form = BG_NOVEL_FORM_BLOOM;
    s->slots = 0;
    return BG_OK;
}

static bg_err table_grow(bg_novel *s) {
    uint32_t nslots = s->form == BG_NOVEL_FORM_INLINE ? 16u : (uint32_t)s->slots * 2u;
    uint32_t *t = calloc(nslots, sizeof *t);
    if (!t)
        return BG_ERR_NOMEM;
    if (s->form == BG_NOVEL_FORM_INLINE) {
        for (uint32_t i = 0; i < BG_NOVEL_INLINE; i++)
            if (s->u.fp[i])
                table_put(t, nslots, s->u.fp[i]);
    } else {
        for (uint32_t i = 0; i < s->slots; i++)
            if (s->u.table[i])
                table_put(t, nslots, s->u.table[i]);
        free(s->u.table);
    }
    s->u.table = t;
    s->slots = (uint16_t)nslots;
    s->form = BG_NOVEL_FORM_TABLE;
    return BG_OK;
}

bg_err bg_novel_insert(bg_novel *s, uint64_t h, bool *is_new) {
    *is_new = false;
    if (bg_novel_contains(s, h))
        return BG_OK;
    uint32_t f = fingerprint(h);
    if (s->form == BG_NOVEL_FORM_INLINE) {
        for (uint32_t i = 0; i < BG_NOVEL_INLINE; i++)
            if (!s->u.fp[i]) {
                s->u.fp[i] = f;
                s->n++;
                *is_new = true;
                return BG_OK;
            }
        bg_err err = table_grow(s);
        if (err)
            return err;
    }
    if (s->form == BG_NOVEL_FORM_TABLE && (s->n + 1) * 4 > (uint32_t)s->slots * 3) {
        bg_err err = s->n + 1 >= BLOOM_AT || s->slots >= BG_NOVEL_TABLE_MAX ? to_bloom(s)
                                                                             : table_grow(s);
        if (err)
            return err;
    }
    if (s->form == BG_NOVEL_FORM_TABLE)
        table_put(s->u.table, s->slots, f);
    else
        bloom_probe(s->u.bloom, bloom_key(f), true);
    if (s->n < UINT32_MAX)
        s->n++;
    *is_new = true;
    return BG_OK;
}
