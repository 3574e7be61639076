/* Snapshots of identity state (see snapshot.h for the layout).
 *
 * Sections: byte writer -> bounds-checked reader -> header and checksum ->
 * identity encoder -> identity decoder. The decoder builds into a fresh
 * bg_ident and frees it whole on the first refusal, so a caller only ever
 * sees a complete state or none. */
#include "snapshot.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define TIME_MAX 1000000000000000LL /* |event time| cap, ms (~31 700 years) */
#define OFFSET_MAX (1LL << 62)
/* Detector floats are written saturated to +-FLOAT_MAX (NaN as 0) and read
 * back only within it, so whatever the engine writes it reads back. Real
 * state never comes near: metrics are < 2^32 a bucket and sigma floors at
 * 1e-9, so |z| < 5e18; state near the cap can only have been forged. */
#define FLOAT_MAX 1e30f
#define REASON_STR_MAX 64u
#define BLOOM_WORDS (BG_NOVEL_BLOOM_BITS / 64u)

/* ======================================================================== */
/* Byte writer                                                              */
/* ======================================================================== */

void bg_snap_buf_free(bg_snap_buf *b) {
    if (!b)
        return;
    free(b->p);
    memset(b, 0, sizeof *b);
}

void bg_snap_put(bg_snap_buf *b, const void *p, size_t n) {
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap : 1024;
        while (nc < b->len + n)
            nc *= 2;
        uint8_t *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void put_le(bg_snap_buf *b, uint64_t v, size_t n) {
    uint8_t t[8];
    for (size_t i = 0; i < n; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    bg_snap_put(b, t, n);
}

void bg_snap_u8(bg_snap_buf *b, uint8_t v) {
    bg_snap_put(b, &v, 1);
}
void bg_snap_u16(bg_snap_buf *b, uint16_t v) {
    put_le(b, v, 2);
}
void bg_snap_u32(bg_snap_buf *b, uint32_t v) {
    put_le(b, v, 4);
}
void bg_snap_u64(bg_snap_buf *b, uint64_t v) {
    put_le(b, v, 8);
}
static void put_i64(bg_snap_buf *b, int64_t v) {
    put_le(b, (uint64_t)v, 8);
}

static void put_f64(bg_snap_buf *b, double f) {
    if (!isfinite(f)) /* never in real state; written so that it reads back */
        f = f != f ? 0.0 : f > 0 ? 1e300 : -1e300;
    uint64_t u;
    memcpy(&u, &f, sizeof u);
    bg_snap_u64(b, u);
}

/* Fixed-size runs are written through a cursor into space reserved at
 * once: one capacity check per run instead of one per field. */
uint8_t *bg_snap_reserve(bg_snap_buf *b, size_t n) {
    if (b->oom)
        return NULL;
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap : 1024;
        while (nc < b->len + n)
            nc *= 2;
        uint8_t *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return NULL;
        }
        b->p = np;
        b->cap = nc;
    }
    b->len += n;
    return b->p + b->len - n;
}

static inline uint8_t *w8(uint8_t *p, uint8_t v) {
    *p = v;
    return p + 1;
}
static inline uint8_t *w16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    return p + 2;
}
static inline uint8_t *w32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return p + 4;
}
static inline uint8_t *w64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return p + 8;
}
static inline uint8_t *wf32(uint8_t *p, float f) {
    if (f != f)
        f = 0.0f;
    else if (f > FLOAT_MAX)
        f = FLOAT_MAX;
    else if (f < -FLOAT_MAX)
        f = -FLOAT_MAX;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return w32(p, u);
}

void bg_snap_str16(bg_snap_buf *b, const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n > BG_MAX_STRING)
        n = BG_MAX_STRING; /* the engine never keeps longer strings */
    bg_snap_u16(b, (uint16_t)n);
    bg_snap_put(b, s, n);
}

static void put_str8(bg_snap_buf *b, const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n > REASON_STR_MAX)
        n = REASON_STR_MAX;
    bg_snap_u8(b, (uint8_t)n);
    bg_snap_put(b, s, n);
}

static void patch_le(uint8_t *p, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void bg_snap_begin(bg_snap_buf *b, const char magic[4], uint16_t flags) {
    b->len = 0;
    b->oom = 0;
    bg_snap_put(b, magic, 4);
    bg_snap_u16(b, BG_SNAPSHOT_VERSION);
    bg_snap_u16(b, flags);
    bg_snap_u32(b, 0); /* body_len, patched */
    bg_snap_u32(b, 0); /* reserved */
}

bg_err bg_snap_finish(bg_snap_buf *b) {
    if (b->oom)
        return BG_ERR_NOMEM;
    if (b->len + BG_SNAPSHOT_TRAILER > BG_SNAPSHOT_MAX)
        return BG_ERR_OVERSIZED;
    patch_le(b->p + 8, b->len - BG_SNAPSHOT_HEADER, 4);
    uint64_t h = XXH3_64bits_withSeed(b->p, b->len, BG_SNAPSHOT_SEED);
    bg_snap_u64(b, h);
    return b->oom ? BG_ERR_NOMEM : BG_OK;
}

/* ======================================================================== */
/* Bounds-checked reader                                                    */
/* ======================================================================== */

int bg_snap_get(bg_snap_rd *r, void *dst, size_t n) {
    if (r->err)
        return 0;
    if (n > r->n - r->off) {
        r->err = "ends early";
        return 0;
    }
    if (n)
        memcpy(dst, r->p + r->off, n);
    r->off += n;
    return 1;
}

static uint64_t get_le(bg_snap_rd *r, size_t n) {
    uint8_t t[8];
    if (!bg_snap_get(r, t, n))
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)t[i] << (8 * i);
    return v;
}

uint8_t bg_snap_get_u8(bg_snap_rd *r) {
    return (uint8_t)get_le(r, 1);
}
uint16_t bg_snap_get_u16(bg_snap_rd *r) {
    return (uint16_t)get_le(r, 2);
}
uint32_t bg_snap_get_u32(bg_snap_rd *r) {
    return (uint32_t)get_le(r, 4);
}
uint64_t bg_snap_get_u64(bg_snap_rd *r) {
    return get_le(r, 8);
}
int64_t bg_snap_get_i64(bg_snap_rd *r) {
    return (int64_t)get_le(r, 8);
}

static void fail(bg_snap_rd *r, const char *why) {
    if (!r->err)
        r->err = why;
}

bg_str bg_snap_get_str16(bg_snap_rd *r, size_t max) {
    bg_str s = {NULL, 0};
    uint16_t n = bg_snap_get_u16(r);
    if (r->err)
        return s;
    if (n > max || n > r->n - r->off) {
        fail(r, n > max ? "string longer than its cap" : "ends early");
        return s;
    }
    s.ptr = (const char *)r->p + r->off;
    s.len = n;
    if (memchr(s.ptr, 0, n)) {
        fail(r, "string holds a NUL byte");
        s.ptr = NULL;
        s.len = 0;
        return s;
    }
    r->off += n;
    return s;
}

static bg_str get_str8(bg_snap_rd *r) {
    bg_str s = {NULL, 0};
    uint8_t n = bg_snap_get_u8(r);
    if (r->err)
        return s;
    if (n == 0 || n > REASON_STR_MAX || n > r->n - r->off) {
        fail(r, n > r->n - r->off ? "ends early" : "reason string empty or too long");
        return s;
    }
    s.ptr = (const char *)r->p + r->off;
    s.len = n;
    if (memchr(s.ptr, 0, n)) {
        fail(r, "string holds a NUL byte");
        return (bg_str){NULL, 0};
    }
    r->off += n;
    return s;
}

static float get_f32(bg_snap_rd *r) {
    uint32_t u = bg_snap_get_u32(r);
    float f;
    memcpy(&f, &u, sizeof f);
    if (!isfinite(f) || fabsf(f) > FLOAT_MAX) {
        fail(r, "detector value not finite or out of range");
        return 0.0f;
    }
    return f;
}

static double get_f64(bg_snap_rd *r) {
    uint64_t u = bg_snap_get_u64(r);
    double f;
    memcpy(&f, &u, sizeof f);
    if (!isfinite(f)) {
        fail(r, "reason value not finite");
        return 0.0;
    }
    return f;
}

static int64_t get_time(bg_snap_rd *r) {
    int64_t t = bg_snap_get_i64(r);
    if (t > TIME_MAX || t < -TIME_MAX) {
        fail(r, "event time out of range");
        return 0;
    }
    return t;
}

static int64_t get_offset(bg_snap_rd *r) {
    int64_t o = bg_snap_get_i64(r);
    if (o < -1 || o > OFFSET_MAX) {
        fail(r, "input offset out of range");
        return -1;
    }
    return o;
}

/* ======================================================================== */
/* Header and checksum                                                      */
/* ======================================================================== */

static uint64_t rd_le(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

bg_err bg_snapshot_check(const uint8_t *buf, size_t len, int32_t format_version,
                         const char magic[4], char *why, size_t why_size) {
    char dummy[8];
    if (!why || !why_size) {
        why = dummy;
        why_size = sizeof dummy;
    }
    why[0] = 0;
    if (format_version != BG_SNAPSHOT_VERSION) {
        snprintf(why, why_size, "snapshot format %d is %s this build reads (%d)", format_version,
                 format_version > BG_SNAPSHOT_VERSION ? "newer than" : "not one",
                 BG_SNAPSHOT_VERSION);
        return BG_ERR_SNAPSHOT;
    }
    if (!buf || len < BG_SNAPSHOT_HEADER + BG_SNAPSHOT_TRAILER) {
        snprintf(why, why_size, "snapshot of %zu bytes is shorter than its header", len);
        return BG_ERR_SNAPSHOT;
    }
    if (memcmp(buf, magic, 4)) {
        snprintf(why, why_size, "snapshot has a bad magic (not a %.4s record)", magic);
        return BG_ERR_SNAPSHOT;
    }
    uint64_t v = rd_le(buf + 4, 2);
    if (v != BG_SNAPSHOT_VERSION) {
        snprintf(why, why_size, "snapshot bytes are format %u, the record says %d", (unsigned)v,
                 format_version);
        return BG_ERR_SNAPSHOT;
    }
    if (len > BG_SNAPSHOT_MAX) {
        snprintf(why, why_size, "snapshot of %zu bytes exceeds the cap of %u", len,
                 BG_SNAPSHOT_MAX);
        return BG_ERR_SNAPSHOT;
    }
    uint64_t body = rd_le(buf + 8, 4);
    if (body != len - BG_SNAPSHOT_HEADER - BG_SNAPSHOT_TRAILER) {
        snprintf(why, why_size, "snapshot body length %u does not match its %zu bytes",
                 (unsigned)body, len);
        return BG_ERR_SNAPSHOT;
    }
    if (rd_le(buf + 12, 4) != 0) {
        snprintf(why, why_size, "snapshot reserved header field is not 0");
        return BG_ERR_SNAPSHOT;
    }
    uint64_t want = rd_le(buf + len - BG_SNAPSHOT_TRAILER, 8);
    if (XXH3_64bits_withSeed(buf, len - BG_SNAPSHOT_TRAILER, BG_SNAPSHOT_SEED) != want) {
        snprintf(why, why_size, "snapshot checksum mismatch (corrupt)");
        return BG_ERR_SNAPSHOT;
    }
    return BG_OK;
}

/* ======================================================================== */
/* Identity encoder                                                         */
/* ======================================================================== */

static void put_novel(bg_snap_buf *b, const bg_novel *s) {
    size_t items = s->form == BG_NOVEL_FORM_INLINE  ? BG_NOVEL_INLINE * 4u
                   : s->form == BG_NOVEL_FORM_TABLE ? (size_t)s->slots * 4u
                                                    : BLOOM_WORDS * 8u;
    uint8_t *p = bg_snap_reserve(b, 7 + items), *const start = p;
    if (!p)
        return;
    p = w8(p, (uint8_t)s->form);
    p = w16(p, s->slots);
    p = w32(p, s->n);
    switch (s->form) {
    case BG_NOVEL_FORM_INLINE:
        for (uint32_t i = 0; i < BG_NOVEL_INLINE; i++)
            p = w32(p, s->u.fp[i]);
        break;
    case BG_NOVEL_FORM_TABLE:
        for (uint32_t i = 0; i < s->slots; i++)
            p = w32(p, s->u.table[i]);
        break;
    default:
        for (uint32_t i = 0; i < BLOOM_WORDS; i++)
            p = w64(p, s->u.bloom[i]);
        break;
    }
    assert(p == start + 7 + items);
    (void)start;
}

#define METRIC_BYTES 80u

static uint8_t *put_metric(uint8_t *p, const bg_stack_metric *m) {
    uint8_t *const start = p;
    const bg_baseline *bl = &m->base;
    p = wf32(p, bl->level);
    p = wf32(p, bl->slope);
    p = wf32(p, bl->scale);
    p = wf32(p, bl->season_unit);
    p = w16(p, bl->n);
    p = w8(p, bl->turns);
    p = w8(p, bl->last_slot);
    for (int i = 0; i < BG_BASELINE_SLOTS; i++)
        p = w8(p, (uint8_t)bl->season[i]);
    p = wf32(p, m->cusum.pos);
    p = wf32(p, m->cusum.neg);
    p = wf32(p, m->ph.mean);
    p = wf32(p, m->ph.up);
    p = wf32(p, m->ph.up_min);
    p = wf32(p, m->ph.dn);
    p = wf32(p, m->ph.dn_max);
    p = w32(p, m->ph.n);
    p = wf32(p, m->burst_mean);
    p = wf32(p, m->peak_z);
    p = w16(p, m->burst_len);
    p = w16(p, m->quiet_run);
    p = w16(p, m->refract);
    p = w8(p, m->phase);
    p = w8(p, (uint8_t)m->dir);
    assert(p == start + METRIC_BYTES);
    (void)start;
    return p;
}

/* n bytes at the end of b to write into, or NULL (b->oom set). */
static uint8_t *reserve(bg_snap_buf *b, size_t n) {
    static const uint8_t zero[256];
    size_t at = b->len;
    for (size_t left = n; left && !b->oom;) {
        size_t k = left < sizeof zero ? left : sizeof zero;
        bg_snap_put(b, zero, k);
        left -= k;
    }
    return b->oom ? NULL : b->p + at;
}

static void put_hll(bg_snap_buf *b, const bg_hll *h) {
    size_t n = bg_hll_serialized_size(h);
    bg_snap_u32(b, (uint32_t)n);
    uint8_t *p = reserve(b, n);
    size_t w = 0;
    if (p && (bg_hll_serialize(h, p, n, &w) != BG_OK || w != n))
        b->oom = 1; /* cannot happen for an initialised sketch */
}

#define IDENT_FIXED_BYTES 124u

bg_err bg_snapshot_encode_ident(const bg_ident *id, const char *owner, const char *klass,
                                const char *burst_klass, bg_snap_buf *b) {
    uint16_t flags =
        (uint16_t)((id->det ? BG_SNAP_F_DET : 0) | (id->recent ? BG_SNAP_F_RECENT : 0) |
                   (id->burst ? BG_SNAP_F_BURST : 0));
    bg_snap_begin(b, "BGSI", flags);
    bg_snap_str16(b, id->identity);
    bg_snap_str16(b, owner);
    bg_snap_str16(b, klass);
    uint8_t *p = bg_snap_reserve(b, IDENT_FIXED_BYTES), *const start = p;
    if (p) {
        p = w32(p, id->first_seen_min);
        p = w64(p, (uint64_t)id->bucket_start);
        p = w32(p, id->last_ms);
        p = w32(p, id->b_calls);
        p = w32(p, id->b_actions);
        p = w32(p, id->b_tokens);
        p = w32(p, id->b_cost);
        p = w16(p, id->b_secrets);
        p = w16(p, id->b_tools);
        p = w16(p, id->b_new_dests);
        p = w8(p, id->b_hot);
        p = w8(p, id->metrics_seen);
        p = w64(p, id->h_cost);
        p = w64(p, id->d_cost);
        p = w16(p, id->h_secrets);
        p = w16(p, id->h_grants);
        p = w16(p, id->h_new_dests);
        p = w16(p, id->dense);
        p = w32(p, id->traces[0]);
        p = w32(p, id->traces[1]);
        p = w32(p, id->env_hash);
        p = w16(p, id->env_new_secrets);
        p = w16(p, id->env_new_dests);
        p = w64(p, (uint64_t)id->env_cost);
        for (int k = 0; k < 3; k++)
            p = w64(p, (uint64_t)id->src_first[k]);
        for (int k = 0; k < 3; k++)
            p = w32(p, id->src_span[k]);
        assert(p == start + IDENT_FIXED_BYTES);
        (void)start;
    }
    put_novel(b, &id->seen);
    if (id->det && (p = bg_snap_reserve(b, BG_METRIC_COUNT * METRIC_BYTES)) != NULL)
        for (int m = 0; m < BG_METRIC_COUNT; m++)
            p = put_metric(p, &id->det->m[m]);
    if (id->recent) {
        const bg_recent *r = id->recent;
        bg_snap_u8(b, (uint8_t)r->n_secrets);
        for (uint32_t i = 0; i < r->n_secrets; i++) {
            bg_snap_str16(b, r->secrets[i].id);
            put_i64(b, r->secrets[i].t);
            put_i64(b, r->secrets[i].offset);
            bg_snap_u8(b, (uint8_t)(r->secrets[i].revoked | r->secrets[i].used << 1));
        }
        bg_snap_u8(b, (uint8_t)r->n_dests);
        for (uint32_t i = 0; i < r->n_dests; i++) {
            bg_snap_str16(b, r->dests[i].dest);
            put_i64(b, r->dests[i].t);
            bg_snap_u8(b, r->dests[i].named);
        }
        bg_snap_u8(b, (uint8_t)r->n_bigrams);
        for (uint32_t i = 0; i < r->n_bigrams; i++) {
            bg_snap_str16(b, r->bigrams[i].name);
            put_i64(b, r->bigrams[i].t);
            bg_snap_u32(b, r->bigrams[i].users);
            bg_snap_u8(b, r->bigrams[i].named);
        }
        bg_snap_u8(b, (uint8_t)r->n_persist);
        for (uint32_t i = 0; i < r->n_persist; i++) {
            const bg_recent_persist *q = &r->persist[i];
            bg_snap_str16(b, q->dest);
            put_i64(b, q->t);
            put_i64(b, q->first_visit);
            put_i64(b, q->last_bucket);
            bg_snap_u16(b, q->visits);
            bg_snap_u8(b, q->fired);
            bg_snap_u8(b, q->named);
        }
    }
    if (id->burst) {
        const bg_burst *u = id->burst;
        bg_snap_u64(b, u->seq);
        bg_snap_u8(b, (uint8_t)u->cls);
        bg_snap_u8(b, (uint8_t)u->action);
        bg_snap_u8(b, (uint8_t)u->last_phase);
        put_i64(b, u->start);
        put_i64(b, u->last_hot);
        bg_snap_u32(b, u->quiet);
        bg_snap_u32(b, u->escalations);
        bg_snap_str16(b, burst_klass);
        bg_snap_u8(b, u->envelope_id != NULL);
        if (u->envelope_id)
            bg_snap_str16(b, u->envelope_id);
        for (int k = 0; k < BG_EV_KIND_COUNT; k++) {
            put_i64(b, u->src[k].first);
            put_i64(b, u->src[k].last);
        }
        bg_snap_u8(b, (uint8_t)u->n_reasons);
        for (uint32_t i = 0; i < u->n_reasons; i++) {
            put_str8(b, u->reasons[i].code);
            put_str8(b, u->reasons[i].detector);
            put_f64(b, u->reasons[i].observed);
            put_f64(b, u->reasons[i].baseline);
            put_f64(b, u->reasons[i].threshold);
            put_f64(b, u->reasons[i].score);
        }
        put_hll(b, &u->dests);
        put_hll(b, &u->traces);
    }
    return bg_snap_finish(b);
}

/* ======================================================================== */
/* Identity decoder                                                         */
/* ======================================================================== */

void bg_snapshot_ident_free(bg_ident *id) {
    if (!id)
        return;
    free(id->det);
    if (id->recent) {
        for (uint32_t i = 0; i < id->recent->n_secrets; i++)
            free(id->recent->secrets[i].id);
        for (uint32_t i = 0; i < id->recent->n_dests; i++)
            free(id->recent->dests[i].dest);
        for (uint32_t i = 0; i < id->recent->n_bigrams; i++)
            free(id->recent->bigrams[i].name);
        for (uint32_t i = 0; i < id->recent->n_persist; i++)
            free(id->recent->persist[i].dest);
        free(id->recent);
    }
    if (id->burst) {
        bg_hll_clear(&id->burst->dests);
        bg_hll_clear(&id->burst->traces);
        free(id->burst->envelope_id);
        free(id->burst);
    }
    bg_novel_free(&id->seen);
    free(id->identity);
    free(id);
}

static char *dup_view(bg_str s) {
    char *d = malloc((size_t)s.len + 1);
    if (d) {
        if (s.len)
            memcpy(d, s.ptr, s.len);
        d[s.len] = 0;
    }
    return d;
}

/* Each fingerprint is where a probe from its home finds it first: no
 * duplicates and no gaps, as inserts leave a table. */
static int table_canonical(const uint32_t *t, uint32_t slots) {
    for (uint32_t i = 0; i < slots; i++) {
        if (!t[i])
            continue;
        uint32_t j = t[i] & (slots - 1);
        while (j != i) {
            if (!t[j] || t[j] == t[i])
                return 0;
            j = (j + 1) & (slots - 1);
        }
    }
    return 1;
}

static int get_novel(bg_snap_rd *r, bg_novel *s) {
    uint8_t form = bg_snap_get_u8(r);
    uint16_t slots = bg_snap_get_u16(r);
    uint32_t n = bg_snap_get_u32(r);
    if (r->err)
        return 0;
    uint32_t used = 0;
    switch (form) {
    case BG_NOVEL_FORM_INLINE:
        if (slots) {
            fail(r, "novelty set: inline form with slots");
            return 0;
        }
        for (uint32_t i = 0; i < BG_NOVEL_INLINE; i++) {
            s->u.fp[i] = bg_snap_get_u32(r);
            used += s->u.fp[i] != 0;
        }
        if (!r->err && used != n)
            fail(r, "novelty set: count does not match its items");
        for (uint32_t i = 0; i < BG_NOVEL_INLINE && !r->err; i++)
            for (uint32_t j = i + 1; j < BG_NOVEL_INLINE; j++)
                if (s->u.fp[i] && s->u.fp[i] == s->u.fp[j])
                    fail(r, "novelty set: duplicate item");
        break;
    case BG_NOVEL_FORM_TABLE: {
        if (slots < 16 || slots > BG_NOVEL_TABLE_MAX || (slots & (slots - 1))) {
            fail(r, "novelty set: bad table size");
            return 0;
        }
        if ((size_t)slots * 4 > r->n - r->off) {
            fail(r, "ends early");
            return 0;
        }
        uint32_t *t = malloc((size_t)slots * sizeof *t);
        if (!t) {
            fail(r, "out of memory");
            return 0;
        }
        for (uint32_t i = 0; i < slots; i++) {
            t[i] = bg_snap_get_u32(r);
            used += t[i] != 0;
        }
        /* the load invariant keeps an empty slot, so probes end */
        if (!r->err &&
            (used != n || (uint64_t)n * 4 > (uint64_t)slots * 3 || !table_canonical(t, slots))) {
            free(t);
            fail(r, "novelty set: table count or load out of range");
            return 0;
        }
        s->u.table = t;
        break;
    }
    case BG_NOVEL_FORM_BLOOM: {
        if (slots) {
            fail(r, "novelty set: bloom form with slots");
            return 0;
        }
        if ((size_t)BLOOM_WORDS * 8 > r->n - r->off) {
            fail(r, "ends early");
            return 0;
        }
        uint64_t *w = malloc(BLOOM_WORDS * sizeof *w);
        if (!w) {
            fail(r, "out of memory");
            return 0;
        }
        for (uint32_t i = 0; i < BLOOM_WORDS; i++)
            w[i] = bg_snap_get_u64(r);
        s->u.bloom = w;
        break;
    }
    default:
        fail(r, "novelty set: unknown form");
        return 0;
    }
    s->form = form;
    s->slots = slots;
    s->n = n;
    return !r->err;
}

static void get_metric(bg_snap_rd *r, bg_stack_metric *m) {
    bg_baseline *bl = &m->base;
    bl->level = get_f32(r);
    bl->slope = get_f32(r);
    bl->scale = get_f32(r);
    bl->season_unit = get_f32(r);
    bl->n = bg_snap_get_u16(r);
    bl->turns = bg_snap_get_u8(r);
    bl->last_slot = bg_snap_get_u8(r);
    for (int i = 0; i < BG_BASELINE_SLOTS; i++)
        bl->season[i] = (int8_t)bg_snap_get_u8(r);
    m->cusum.pos = get_f32(r);
    m->cusum.neg = get_f32(r);
    m->ph.mean = get_f32(r);
    m->ph.up = get_f32(r);
    m->ph.up_min = get_f32(r);
    m->ph.dn = get_f32(r);
    m->ph.dn_max = get_f32(r);
    m->ph.n = bg_snap_get_u32(r);
    m->burst_mean = get_f32(r);
    m->peak_z = get_f32(r);
    m->burst_len = bg_snap_get_u16(r);
    m->quiet_run = bg_snap_get_u16(r);
    m->refract = bg_snap_get_u16(r);
    m->phase = bg_snap_get_u8(r);
    m->dir = (int8_t)bg_snap_get_u8(r);
    if (r->err)
        return;
    if (bl->scale < 0 || bl->season_unit < 0 || m->cusum.pos < 0 || m->cusum.neg < 0)
        fail(r, "detector spread or statistic negative");
    else if (bl->last_slot >= BG_BASELINE_SLOTS && bl->last_slot != 255)
        fail(r, "baseline slot out of range");
    else if (m->phase > BG_STACK_ENDED || m->dir < -1 || m->dir > 1)
        fail(r, "detector phase or direction out of range");
}

static int get_recent(bg_snap_rd *r, bg_ident *id) {
    bg_recent *rc = calloc(1, sizeof *rc);
    if (!rc) {
        fail(r, "out of memory");
        return 0;
    }
    id->recent = rc;
    uint8_t ns = bg_snap_get_u8(r);
    if (ns > BG_RECENT_MAX) {
        fail(r, "too many recent secrets");
        return 0;
    }
    for (uint32_t i = 0; i < ns && !r->err; i++) {
        bg_str s = bg_snap_get_str16(r, BG_MAX_STRING);
        int64_t t = get_time(r), off = get_offset(r);
        uint8_t rev = bg_snap_get_u8(r);
        if (r->err)
            break;
        if (rev > 3) {
            fail(r, "bad secret flags");
            break;
        }
        char *d = dup_view(s);
        if (!d) {
            fail(r, "out of memory");
            break;
        }
        rc->secrets[rc->n_secrets++] = (bg_recent_secret){
            bg_hash64(s.ptr ? s.ptr : "", s.len, BG_SEED_NOVELTY), d, t, off, (rev & 1) != 0,
            (rev & 2) != 0};
    }
    uint8_t nd = bg_snap_get_u8(r);
    if (!r->err && nd > BG_RECENT_MAX)
        fail(r, "too many recent destinations");
    for (uint32_t i = 0; i < nd && !r->err; i++) {
        bg_str s = bg_snap_get_str16(r, BG_MAX_STRING);
        int64_t t = get_time(r);
        uint8_t named = bg_snap_get_u8(r);
        if (r->err)
            break;
        if (named > 1) {
            fail(r, "bad boolean");
            break;
        }
        char *d = dup_view(s);
        if (!d) {
            fail(r, "out of memory");
            break;
        }
        rc->dests[rc->n_dests++] = (bg_recent_dest){
            bg_hash64(s.ptr ? s.ptr : "", s.len, BG_SEED_NOVELTY), d, t, named != 0};
    }
    uint8_t nb = r->err ? 0 : bg_snap_get_u8(r);
    if (!r->err && nb > BG_RECENT_BIGRAMS)
        fail(r, "too many recent tool bigrams");
    for (uint32_t i = 0; i < nb && !r->err; i++) {
        bg_str s = bg_snap_get_str16(r, 2 * BG_MAX_STRING + 2);
        int64_t t = get_time(r);
        uint32_t users = bg_snap_get_u32(r);
        uint8_t named = bg_snap_get_u8(r);
        if (r->err)
            break;
        if (named > 1) {
            fail(r, "bad boolean");
            break;
        }
        char *d = dup_view(s);
        if (!d) {
            fail(r, "out of memory");
            break;
        }
        rc->bigrams[rc->n_bigrams++] = (bg_recent_bigram){
            bg_novel_hash(BG_NOVEL_TOOL_BIGRAM, s.ptr ? s.ptr : "", s.len), d, t, users,
            named != 0};
    }
    uint8_t np = r->err ? 0 : bg_snap_get_u8(r);
    if (!r->err && np > BG_RECENT_PERSIST)
        fail(r, "too many watched destinations");
    for (uint32_t i = 0; i < np && !r->err; i++) {
        bg_str s = bg_snap_get_str16(r, BG_MAX_STRING);
        int64_t t = get_time(r), fv = get_time(r), lb = get_time(r);
        uint16_t visits = bg_snap_get_u16(r);
        uint8_t fired = bg_snap_get_u8(r), named = bg_snap_get_u8(r);
        if (r->err)
            break;
        if (fired > 1 || named > 1) {
            fail(r, "bad boolean");
            break;
        }
        char *d = dup_view(s);
        if (!d) {
            fail(r, "out of memory");
            break;
        }
        rc->persist[rc->n_persist++] = (bg_recent_persist){
            bg_novel_hash(BG_NOVEL_DESTINATION, s.ptr ? s.ptr : "", s.len), d, t, fv, lb, visits,
            fired, named};
    }
    return !r->err;
}

static int get_hll(bg_snap_rd *r, bg_hll *h) {
    uint32_t n = bg_snap_get_u32(r);
    if (r->err)
        return 0;
    if (n > BG_HLL_SER_MAX || n > r->n - r->off) {
        fail(r, n > BG_HLL_SER_MAX ? "sketch longer than its cap" : "ends early");
        return 0;
    }
    bg_err err = bg_hll_deserialize(h, r->p + r->off, n);
    if (err) {
        fail(r, err == BG_ERR_NOMEM ? "out of memory" : "sketch malformed");
        return 0;
    }
    if (h->p != BG_HLL_P_DEFAULT) {
        fail(r, "sketch precision is not the engine's");
        return 0;
    }
    r->off += n;
    return 1;
}

static int get_burst(bg_snap_rd *r, bg_ident *id, bg_str *klass, uint64_t *seq,
                     bg_snapshot_intern_fn intern, void *ctx) {
    bg_burst *b = calloc(1, sizeof *b);
    if (!b) {
        fail(r, "out of memory");
        return 0;
    }
    id->burst = b; /* zeroed sketches own nothing: freeing is safe at any point */
    b->owner_ident = id;
    *seq = b->seq = bg_snap_get_u64(r);
    uint8_t cls = bg_snap_get_u8(r), act = bg_snap_get_u8(r), ph = bg_snap_get_u8(r);
    b->start = get_time(r);
    b->last_hot = get_time(r);
    b->quiet = bg_snap_get_u32(r);
    b->escalations = bg_snap_get_u32(r);
    *klass = bg_snap_get_str16(r, BG_MAX_STRING);
    uint8_t has_env = bg_snap_get_u8(r);
    if (r->err)
        return 0;
    if (cls > BG_CLASS_ANOMALOUS || act > BG_ACT_REVOKE || ph > BG_PHASE_ENDED || has_env > 1) {
        fail(r, "burst class, action, phase or flag out of range");
        return 0;
    }
    b->cls = (bg_class)cls;
    b->action = (bg_action)act;
    b->last_phase = (bg_phase)ph;
    if (has_env) {
        bg_str env = bg_snap_get_str16(r, BG_MAX_STRING);
        if (r->err)
            return 0;
        if (!(b->envelope_id = dup_view(env))) {
            fail(r, "out of memory");
            return 0;
        }
    }
    for (int k = 0; k < BG_EV_KIND_COUNT; k++) {
        b->src[k].first = get_offset(r);
        b->src[k].last = get_offset(r);
    }
    uint8_t nr = bg_snap_get_u8(r);
    if (!r->err && nr > BG_MAX_REASONS)
        fail(r, "too many reasons");
    for (uint32_t i = 0; i < nr && !r->err; i++) {
        bg_str code = get_str8(r), det = get_str8(r);
        bg_reason *x = &b->reasons[i];
        x->observed = get_f64(r);
        x->baseline = get_f64(r);
        x->threshold = get_f64(r);
        x->score = get_f64(r);
        if (r->err)
            break;
        x->code = intern(ctx, code.ptr, code.len);
        x->detector = intern(ctx, det.ptr, det.len);
        if (!x->code || !x->detector) {
            fail(r, "too many distinct reason codes");
            break;
        }
        b->n_reasons = i + 1;
    }
    if (r->err)
        return 0;
    return get_hll(r, &b->dests) && get_hll(r, &b->traces);
}

bg_err bg_snapshot_decode_ident(const uint8_t *buf, size_t len, int32_t format_version,
                                bg_snapshot_intern_fn intern, void *ctx, bg_ident **out,
                                bg_snapshot_names *names, uint64_t *burst_seq, char *why,
                                size_t why_size) {
    char dummy[8];
    if (!why || !why_size) {
        why = dummy;
        why_size = sizeof dummy;
    }
    *out = NULL;
    memset(names, 0, sizeof *names);
    *burst_seq = 0;
    bg_err err = bg_snapshot_check(buf, len, format_version, "BGSI", why, why_size);
    if (err)
        return err;
    uint16_t flags = (uint16_t)rd_le(buf + 6, 2);
    if (flags & ~(BG_SNAP_F_DET | BG_SNAP_F_RECENT | BG_SNAP_F_BURST)) {
        snprintf(why, why_size, "snapshot has unknown flags 0x%x", flags);
        return BG_ERR_SNAPSHOT;
    }
    bg_snap_rd r = {buf + BG_SNAPSHOT_HEADER, len - BG_SNAPSHOT_HEADER - BG_SNAPSHOT_TRAILER, 0,
                    NULL};
    bg_ident *id = calloc(1, sizeof *id);
    if (!id) {
        snprintf(why, why_size, "snapshot: out of memory");
        return BG_ERR_NOMEM;
    }
    names->identity = bg_snap_get_str16(&r, BG_MAX_STRING);
    names->owner = bg_snap_get_str16(&r, BG_MAX_STRING);
    names->klass = bg_snap_get_str16(&r, BG_MAX_STRING);
    if (!r.err && names->identity.len == 0)
        fail(&r, "empty identity");
    if (!r.err && !(id->identity = dup_view(names->identity)))
        fail(&r, "out of memory");
    id->first_seen_min = bg_snap_get_u32(&r);
    id->bucket_start = get_time(&r);
    id->last_ms = bg_snap_get_u32(&r);
    id->b_calls = bg_snap_get_u32(&r);
    id->b_actions = bg_snap_get_u32(&r);
    id->b_tokens = bg_snap_get_u32(&r);
    id->b_cost = bg_snap_get_u32(&r);
    id->b_secrets = bg_snap_get_u16(&r);
    id->b_tools = bg_snap_get_u16(&r);
    id->b_new_dests = bg_snap_get_u16(&r);
    id->b_hot = bg_snap_get_u8(&r);
    id->metrics_seen = bg_snap_get_u8(&r);
    id->h_cost = bg_snap_get_u64(&r);
    id->d_cost = bg_snap_get_u64(&r);
    id->h_secrets = bg_snap_get_u16(&r);
    id->h_grants = bg_snap_get_u16(&r);
    id->h_new_dests = bg_snap_get_u16(&r);
    id->dense = bg_snap_get_u16(&r);
    id->traces[0] = bg_snap_get_u32(&r);
    id->traces[1] = bg_snap_get_u32(&r);
    id->env_hash = bg_snap_get_u32(&r);
    id->env_new_secrets = bg_snap_get_u16(&r);
    id->env_new_dests = bg_snap_get_u16(&r);
    id->env_cost = bg_snap_get_i64(&r);
    for (int k = 0; k < 3; k++)
        id->src_first[k] = get_offset(&r);
    for (int k = 0; k < 3; k++)
        id->src_span[k] = bg_snap_get_u32(&r);
    if (!r.err && (id->env_cost < 0 || id->env_cost > OFFSET_MAX))
        fail(&r, "envelope cost out of range");
    if (!r.err && id->metrics_seen >= (1u << BG_METRIC_COUNT))
        fail(&r, "unknown metric bits");
    if (!r.err)
        get_novel(&r, &id->seen);
    if (!r.err && (flags & BG_SNAP_F_DET)) {
        if (!(id->det = calloc(1, sizeof *id->det)))
            fail(&r, "out of memory");
        for (int m = 0; m < BG_METRIC_COUNT && !r.err; m++)
            get_metric(&r, &id->det->m[m]);
    }
    if (!r.err && (flags & BG_SNAP_F_RECENT))
        get_recent(&r, id);
    if (!r.err && (flags & BG_SNAP_F_BURST))
        get_burst(&r, id, &names->burst_klass, burst_seq, intern, ctx);
    if (!r.err && r.off != r.n)
        fail(&r, "trailing bytes");
    if (r.err) {
        snprintf(why, why_size, "snapshot refused: %s at body byte %zu", r.err, r.off);
        bg_snapshot_ident_free(id);
        memset(names, 0, sizeof *names);
        return BG_ERR_SNAPSHOT;
    }
    id->hash = bg_hash64(names->identity.ptr, names->identity.len, BG_SEED_IDENTITY);
    *out = id;
    return BG_OK;
}
