/* Count-Min sketch with conservative update; see cms.h.
 *
 * Sections: column hashing -> scalar kernels and dispatch -> life cycle ->
 * updates and queries. */
#include "cms.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct bg_cms {
    uint32_t width;     /* counters per row, 1..BG_CMS_MAX_WIDTH */
    uint32_t depth;     /* rows, 1..BG_CMS_MAX_DEPTH */
    uint64_t total;     /* sum of counts added, saturating at UINT64_MAX */
    uint32_t *counters; /* depth x width, row-major, owned */
};

/* ======================================================================== */
/* Column hashing (the contract every kernel reproduces)                    */
/* ======================================================================== */

static inline uint32_t col(uint64_t h, uint32_t row, uint32_t width) {
    uint32_t a = (uint32_t)h, b = (uint32_t)(h >> 32) | 1u;
    return (uint32_t)(((uint64_t)(uint32_t)(a + row * b) * width) >> 32);
}

static inline uint32_t sat_add32(uint32_t x, uint32_t y) {
    uint32_t s = x + y;
    return s < x ? UINT32_MAX : s;
}

/* ======================================================================== */
/* Scalar kernels (the reference) and dispatch                              */
/* ======================================================================== */

static void update_scalar(uint32_t *c, uint32_t width, uint32_t depth, const uint64_t *hashes,
                          const uint32_t *counts, size_t n) {
    uint32_t pos[BG_CMS_MAX_DEPTH];
    for (size_t k = 0; k < n; k++) {
        uint32_t min = UINT32_MAX;
        for (uint32_t i = 0; i < depth; i++) {
            pos[i] = i * width + col(hashes[k], i, width);
            if (c[pos[i]] < min)
                min = c[pos[i]];
        }
        uint32_t nv = sat_add32(min, counts ? counts[k] : 1u);
        /* branch-free raise: which rows are below nv is a coin flip */
        for (uint32_t i = 0; i < depth; i++) {
            uint32_t v = c[pos[i]];
            c[pos[i]] = v < nv ? nv : v;
        }
    }
}

static void query_scalar(const uint32_t *c, uint32_t width, uint32_t depth, const uint64_t *hashes,
                         size_t n, uint32_t *out) {
    for (size_t k = 0; k < n; k++) {
        uint32_t min = UINT32_MAX;
        for (uint32_t i = 0; i < depth; i++) {
            uint32_t v = c[i * width + col(hashes[k], i, width)];
            if (v < min)
                min = v;
        }
        out[k] = min;
    }
}

static void merge_scalar(uint32_t *dst, const uint32_t *src, size_t len) {
    for (size_t i = 0; i < len; i++)
        dst[i] = sat_add32(dst[i], src[i]);
}

const bg_cms_kernels bg_cms_kernels_scalar = {"scalar", update_scalar, query_scalar,
                                              merge_scalar};

const bg_cms_kernels *bg_cms_kernels_for(bg_simd_isa isa) {
    switch (isa) {
    case BG_SIMD_SCALAR:
        return &bg_cms_kernels_scalar;
    case BG_SIMD_AVX2:
        return &bg_cms_kernels_avx2;
    default:
        return NULL;
    }
}

static const bg_cms_kernels *kern(void) {
    for (int l = (int)bg_simd_level(); l > 0; l--) {
        const bg_cms_kernels *k = bg_cms_kernels_for((bg_simd_isa)l);
        if (k)
            return k;
    }
    return &bg_cms_kernels_scalar;
}

/* ======================================================================== */
/* Life cycle                                                               */
/* ======================================================================== */

bg_err bg_cms_new_dims(uint32_t width, uint32_t depth, bg_cms **out) {
    if (!out || width < 1 || width > BG_CMS_MAX_WIDTH || depth < 1 || depth > BG_CMS_MAX_DEPTH)
        return BG_ERR_INVALID;
    bg_cms *c = malloc(sizeof *c);
    if (!c)
        return BG_ERR_NOMEM;
    c->counters = calloc((size_t)width * depth, sizeof *c->counters);
    if (!c->counters) {
        free(c);
        return BG_ERR_NOMEM;
    }
    c->width = width;
    c->depth = depth;
    c->total = 0;
    *out = c;
    return BG_OK;
}

bg_err bg_cms_new(double eps, double delta, bg_cms **out) {
    if (!(eps > 0.0 && eps < 1.0) || !(delta > 0.0 && delta < 1.0))
        return BG_ERR_INVALID;
    double w = ceil(exp(1.0) / eps), d = ceil(log(1.0 / delta));
    if (w > BG_CMS_MAX_WIDTH || d > BG_CMS_MAX_DEPTH)
        return BG_ERR_INVALID;
    return bg_cms_new_dims((uint32_t)w, d < 1.0 ? 1u : (uint32_t)d, out);
}

void bg_cms_free(bg_cms *c) {
    if (!c)
        return;
    free(c->counters);
    free(c);
}

void bg_cms_reset(bg_cms *c) {
    if (!c)
        return;
    memset(c->counters, 0, (size_t)c->width * c->depth * sizeof *c->counters);
    c->total = 0;
}

/* ======================================================================== */
/* Updates and queries                                                      */
/* ======================================================================== */

static void add_total(bg_cms *c, uint64_t n) {
    c->total = c->total + n < c->total ? UINT64_MAX : c->total + n;
}

void bg_cms_add_hash(bg_cms *c, uint64_t h, uint32_t count) {
    if (!c)
        return;
    update_scalar(c->counters, c->width, c->depth, &h, &count, 1);
    add_total(c, count);
}

void bg_cms_add(bg_cms *c, const void *data, size_t len, uint32_t count) {
    if (data || !len)
        bg_cms_add_hash(c, bg_hash64(data, len, BG_SEED_SKETCH), count);
}

void bg_cms_add_batch(bg_cms *c, const uint64_t *hashes, const uint32_t *counts, size_t n) {
    if (!c || !hashes || !n)
        return;
    kern()->update(c->counters, c->width, c->depth, hashes, counts, n);
    uint64_t sum = 0;
    if (!counts)
        sum = n;
    else
        for (size_t i = 0; i < n; i++)
            sum += counts[i]; /* n * 2^32 cannot wrap 64 bits for any n that fits memory */
    add_total(c, sum);
}

bg_err bg_cms_merge(bg_cms *dst, const bg_cms *src) {
    if (!dst || !src || dst->width != src->width || dst->depth != src->depth)
        return BG_ERR_INVALID;
    uint64_t t = src->total;
    kern()->merge(dst->counters, src->counters, (size_t)dst->width * dst->depth);
    add_total(dst, t);
    return BG_OK;
}

uint32_t bg_cms_query_hash(const bg_cms *c, uint64_t h) {
    if (!c)
        return 0;
    uint32_t v;
    query_scalar(c->counters, c->width, c->depth, &h, 1, &v);
    return v;
}

uint32_t bg_cms_query(const bg_cms *c, const void *data, size_t len) {
    if (!data && len)
        return 0;
    return bg_cms_query_hash(c, bg_hash64(data, len, BG_SEED_SKETCH));
}

void bg_cms_query_batch(const bg_cms *c, const uint64_t *hashes, size_t n, uint32_t *out) {
    if (!c || !hashes || !out || !n)
        return;
    kern()->query(c->counters, c->width, c->depth, hashes, n, out);
}

double bg_cms_rarity(const bg_cms *c, uint64_t h) {
    if (!c || c->total == 0)
        return 0.0;
    double r = (double)bg_cms_query_hash(c, h) / (double)c->total;
    return r > 1.0 ? 1.0 : r;
}

uint64_t bg_cms_total(const bg_cms *c) { return c ? c->total : 0; }
uint32_t bg_cms_width(const bg_cms *c) { return c ? c->width : 0; }
uint32_t bg_cms_depth(const bg_cms *c) { return c ? c->depth : 0; }
size_t bg_cms_bytes(const bg_cms *c) {
    return c ? sizeof *c + (size_t)c->width * c->depth * sizeof *c->counters : 0;
}
const uint32_t *bg_cms_counters(const bg_cms *c) { return c ? c->counters : NULL; }

bg_err bg_cms_load(bg_cms *c, const uint32_t *counters, size_t n, uint64_t total) {
    if (!c || !counters || n != (size_t)c->width * c->depth)
        return BG_ERR_INVALID;
    memcpy(c->counters, counters, n * sizeof *c->counters);
    c->total = total;
    return BG_OK;
}
