/* HyperLogLog with exact, sparse and dense forms; see hll.h for the algorithm,
 * the estimator and the byte layout.
 *
 * Sections: low-level helpers -> scalar kernels and dispatch -> estimator ->
 * forms and promotion -> public updates -> queries -> serialization. */
#include "hll.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

/* ======================================================================== */
/* Low-level helpers                                                        */
/* ======================================================================== */

#define M(p) ((size_t)1 << (p))
/* The sparse form never holds more than m/4 entries (4 bytes each = m bytes,
 * the dense size); p >= 4 makes that >= 4 > BG_HLL_EXACT_MAX. */
#define SPARSE_MAX(p) ((uint32_t)1 << ((p)-2))
#define SPARSE_CAP0 8u

#define ENTRY(idx, rank) ((uint32_t)(idx) << 8 | (uint32_t)(rank))
#define ENTRY_IDX(e) ((e) >> 8)
#define ENTRY_RANK(e) ((uint8_t)((e)&0xffu))

static inline uint32_t hash_idx(uint64_t h, unsigned p) { return (uint32_t)(h >> (64 - p)); }
static inline uint8_t hash_rank(uint64_t h, unsigned p) {
    /* the guard bit at q = 64 - p caps the rank at q + 1 and makes ctz defined */
    return (uint8_t)(__builtin_ctzll(h | (1ull << (64 - p))) + 1);
}

/* ======================================================================== */
/* Scalar kernels (the reference) and dispatch                              */
/* ======================================================================== */

static void add_scalar(uint8_t *regs, unsigned p, const uint64_t *hashes, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t idx = hash_idx(hashes[i], p);
        uint8_t r = hash_rank(hashes[i], p);
        if (regs[idx] < r)
            regs[idx] = r;
    }
}

static void merge_scalar(uint8_t *dst, const uint8_t *src, size_t m) {
    for (size_t i = 0; i < m; i++)
        if (dst[i] < src[i])
            dst[i] = src[i];
}

static void regsum_scalar(const uint8_t *regs, size_t m, unsigned q, bg_hll_regsum *out) {
    uint32_t zeros = 0, top = 0;
    uint64_t sum = 0;
    for (size_t i = 0; i < m; i++) {
        unsigned r = regs[i];
        if (r == 0)
            zeros++;
        else if (r <= q)
            sum += 1ull << (q - r);
        else if (r == q + 1)
            top++;
    }
    out->zeros = zeros;
    out->top = top;
    out->sum = sum;
}

const bg_hll_kernels bg_hll_kernels_scalar = {"scalar", add_scalar, merge_scalar, regsum_scalar};

const bg_hll_kernels *bg_hll_kernels_for(bg_simd_isa isa) {
    switch (isa) {
    case BG_SIMD_SCALAR:
        return &bg_hll_kernels_scalar;
    case BG_SIMD_AVX2:
        return &bg_hll_kernels_avx2;
    default:
        return NULL;
    }
}

/* Best table at or below the active level. */
static const bg_hll_kernels *kern(void) {
    for (int l = (int)bg_simd_level(); l > 0; l--) {
        const bg_hll_kernels *k = bg_hll_kernels_for((bg_simd_isa)l);
        if (k)
            return k;
    }
    return &bg_hll_kernels_scalar;
}

/* ======================================================================== */
/* Estimator (Ertl 2017; sigma and tau as in redis hyperloglog.c)           */
/* ======================================================================== */

/* sigma(x) = x + sum_{k>=1} x^(2^k) 2^(k-1), for x in [0, 1) */
static double sigma(double x) {
    if (x == 1.0)
        return INFINITY;
    double y = 1.0, z = x, zp;
    do {
        x *= x;
        zp = z;
        z += x * y;
        y += y;
    } while (zp != z);
    return z;
}

/* tau(x) = (1 - x - sum_{k>=1} (1 - x^(2^-k))^2 2^-k) / 3, for x in [0, 1] */
static double tau(double x) {
    if (x == 0.0 || x == 1.0)
        return 0.0;
    double y = 1.0, z = 1.0 - x, zp;
    do {
        x = sqrt(x);
        zp = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
    } while (zp != z);
    return z / 3.0;
}

double bg_hll_estimate_regsum(const bg_hll_regsum *rs, unsigned p) {
    double m = (double)M(p);
    int q = 64 - (int)p;
    if ((double)rs->zeros >= m)
        return 0.0;
    double z = ldexp(m * tau((m - (double)rs->top) / m) + (double)rs->sum, -q) +
               m * sigma((double)rs->zeros / m);
    return 0.5 / log(2.0) * m * m / z;
}

double bg_hll_sigma(unsigned p) { return 1.04 / sqrt((double)M(p)); }

/* ======================================================================== */
/* Forms and promotion                                                      */
/* ======================================================================== */

bg_err bg_hll_init(bg_hll *h, unsigned p) {
    if (!h || p < BG_HLL_P_MIN || p > BG_HLL_P_MAX)
        return BG_ERR_INVALID;
    memset(h, 0, sizeof *h);
    h->p = (uint8_t)p;
    h->form = BG_HLL_EXACT;
    return BG_OK;
}

void bg_hll_clear(bg_hll *h) {
    if (!h)
        return;
    if (h->p && h->form == BG_HLL_SPARSE)
        free(h->u.sparse);
    else if (h->p && h->form == BG_HLL_DENSE)
        free(h->u.dense);
    uint8_t p = h->p;
    memset(h, 0, sizeof *h);
    h->p = p;
}

bg_err bg_hll_new(unsigned p, bg_hll **out) {
    if (!out || p < BG_HLL_P_MIN || p > BG_HLL_P_MAX)
        return BG_ERR_INVALID;
    bg_hll *h = malloc(sizeof *h);
    if (!h)
        return BG_ERR_NOMEM;
    bg_hll_init(h, p);
    *out = h;
    return BG_OK;
}

void bg_hll_free(bg_hll *h) {
    if (!h)
        return;
    bg_hll_clear(h);
    free(h);
}

bg_err bg_hll_copy(bg_hll *dst, const bg_hll *src) {
    if (!dst || !src)
        return BG_ERR_INVALID;
    if (dst == src)
        return BG_OK;
    bg_hll t = *src;
    if (src->p && src->form == BG_HLL_SPARSE) {
        t.u.sparse = malloc((size_t)src->cap * sizeof(uint32_t));
        if (t.u.sparse)
            memcpy(t.u.sparse, src->u.sparse, (size_t)src->n * sizeof(uint32_t));
    } else if (src->p && src->form == BG_HLL_DENSE) {
        t.u.dense = malloc(M(src->p));
        if (t.u.dense)
            memcpy(t.u.dense, src->u.dense, M(src->p));
    }
    bg_hll_clear(dst);
    if (src->p && src->form != BG_HLL_EXACT && !t.u.sparse && !t.u.dense) {
        bg_hll_init(dst, src->p);
        return BG_ERR_NOMEM;
    }
    *dst = t;
    return BG_OK;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* EXACT -> SPARSE, with `extra` as one more hash when has_extra. Without it
 * the result may briefly hold 0 entries (merge adds at least one next). */
static bg_err exact_to_sparse(bg_hll *h, int has_extra, uint64_t extra) {
    unsigned p = h->p;
    uint32_t cap = SPARSE_CAP0 < SPARSE_MAX(p) ? SPARSE_CAP0 : SPARSE_MAX(p);
    uint32_t *v = malloc((size_t)cap * sizeof *v);
    if (!v)
        return BG_ERR_NOMEM;
    uint32_t k = 0;
    unsigned k_in = h->n + (has_extra ? 1u : 0u);
    for (unsigned i = 0; i < k_in; i++) {
        uint64_t x = i < h->n ? h->u.exact[i] : extra;
        v[k++] = ENTRY(hash_idx(x, p), hash_rank(x, p));
    }
    qsort(v, k, sizeof *v, cmp_u32);
    /* one entry per register, the highest rank (the last after sorting) */
    uint32_t w = 0;
    for (uint32_t i = 0; i < k; i++) {
        if (w && ENTRY_IDX(v[w - 1]) == ENTRY_IDX(v[i]))
            v[w - 1] = v[i];
        else
            v[w++] = v[i];
    }
    assert(w <= SPARSE_MAX(p));
    h->form = BG_HLL_SPARSE;
    h->n = (uint16_t)w;
    h->cap = (uint16_t)cap;
    h->u.sparse = v;
    return BG_OK;
}

/* Fills regs[0..m) from any form. */
static void to_registers(const bg_hll *h, uint8_t *regs) {
    unsigned p = h->p;
    switch ((bg_hll_form)h->form) {
    case BG_HLL_EXACT:
        memset(regs, 0, M(p));
        add_scalar(regs, p, h->u.exact, h->n);
        break;
    case BG_HLL_SPARSE:
        memset(regs, 0, M(p));
        for (uint32_t i = 0; i < h->n; i++)
            regs[ENTRY_IDX(h->u.sparse[i])] = ENTRY_RANK(h->u.sparse[i]);
        break;
    case BG_HLL_DENSE:
        memcpy(regs, h->u.dense, M(p));
        break;
    }
}

/* any form -> DENSE */
static bg_err to_dense(bg_hll *h) {
    if (h->form == BG_HLL_DENSE)
        return BG_OK;
    uint8_t *regs = malloc(M(h->p));
    if (!regs)
        return BG_ERR_NOMEM;
    to_registers(h, regs);
    bg_hll_clear(h);
    h->form = BG_HLL_DENSE;
    h->u.dense = regs;
    return BG_OK;
}

/* Sets register idx to at least rank in a SPARSE sketch, growing it or
 * promoting it to DENSE when it runs out of room. */
static bg_err sparse_set(bg_hll *h, uint32_t idx, uint8_t rank) {
    uint32_t *v = h->u.sparse;
    uint32_t lo = 0, hi = h->n; /* first entry with ENTRY_IDX >= idx */
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (ENTRY_IDX(v[mid]) < idx)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < h->n && ENTRY_IDX(v[lo]) == idx) {
        if (ENTRY_RANK(v[lo]) < rank)
            v[lo] = ENTRY(idx, rank);
        return BG_OK;
    }
    if (h->n == SPARSE_MAX(h->p)) {
        bg_err e = to_dense(h);
        if (e == BG_OK && h->u.dense[idx] < rank)
            h->u.dense[idx] = rank;
        return e;
    }
    if (h->n == h->cap) {
        uint32_t cap = 2u * h->cap;
        if (cap > SPARSE_MAX(h->p))
            cap = SPARSE_MAX(h->p);
        v = realloc(v, (size_t)cap * sizeof *v);
        if (!v)
            return BG_ERR_NOMEM;
        h->u.sparse = v;
        h->cap = (uint16_t)cap;
    }
    memmove(v + lo + 1, v + lo, (size_t)(h->n - lo) * sizeof *v);
    v[lo] = ENTRY(idx, rank);
    h->n++;
    return BG_OK;
}

/* ======================================================================== */
/* Updates                                                                  */
/* ======================================================================== */

bg_err bg_hll_add_hash(bg_hll *h, uint64_t hash) {
    if (!h || !h->p)
        return BG_ERR_INVALID;
    unsigned p = h->p;
    switch ((bg_hll_form)h->form) {
    case BG_HLL_EXACT:
        for (unsigned i = 0; i < h->n; i++)
            if (h->u.exact[i] == hash)
                return BG_OK;
        if (h->n < BG_HLL_EXACT_MAX) {
            h->u.exact[h->n++] = hash;
            return BG_OK;
        }
        return exact_to_sparse(h, 1, hash);
    case BG_HLL_SPARSE:
        return sparse_set(h, hash_idx(hash, p), hash_rank(hash, p));
    case BG_HLL_DENSE: {
        uint32_t idx = hash_idx(hash, p);
        uint8_t r = hash_rank(hash, p);
        if (h->u.dense[idx] < r)
            h->u.dense[idx] = r;
        return BG_OK;
    }
    }
    return BG_ERR_INVALID;
}

bg_err bg_hll_add(bg_hll *h, const void *data, size_t len) {
    if (!data && len)
        return BG_ERR_INVALID;
    return bg_hll_add_hash(h, bg_hash64(data, len, BG_SEED_SKETCH));
}

bg_err bg_hll_add_hashes(bg_hll *h, const uint64_t *hashes, size_t n) {
    if (!h || !h->p || (!hashes && n))
        return BG_ERR_INVALID;
    size_t i = 0;
    for (; i < n && h->form != BG_HLL_DENSE; i++) {
        bg_err e = bg_hll_add_hash(h, hashes[i]);
        if (e != BG_OK)
            return e;
    }
    if (i < n)
        kern()->add(h->u.dense, h->p, hashes + i, n - i);
    return BG_OK;
}

bg_err bg_hll_merge(bg_hll *dst, const bg_hll *src) {
    if (!dst || !src || !dst->p || dst->p != src->p)
        return BG_ERR_INVALID;
    if (dst == src)
        return BG_OK;
    unsigned p = dst->p;
    if (src->form == BG_HLL_DENSE) {
        bg_err e = to_dense(dst);
        if (e != BG_OK)
            return e;
        kern()->merge(dst->u.dense, src->u.dense, M(p));
        return BG_OK;
    }
    if (dst->form == BG_HLL_DENSE) { /* no allocation: cannot fail */
        if (src->form == BG_HLL_EXACT)
            add_scalar(dst->u.dense, p, src->u.exact, src->n);
        else
            for (uint32_t i = 0; i < src->n; i++) {
                uint32_t e = src->u.sparse[i];
                if (dst->u.dense[ENTRY_IDX(e)] < ENTRY_RANK(e))
                    dst->u.dense[ENTRY_IDX(e)] = ENTRY_RANK(e);
            }
        return BG_OK;
    }
    /* small into small: apply to a copy, so that a failure changes nothing */
    bg_hll t = {0};
    bg_err e = bg_hll_copy(&t, dst);
    if (e == BG_OK && src->form == BG_HLL_SPARSE && t.form == BG_HLL_EXACT)
        e = exact_to_sparse(&t, 0, 0); /* src holds > 3 distinct hashes */
    for (uint32_t i = 0; e == BG_OK && i < src->n; i++) {
        if (src->form == BG_HLL_EXACT) {
            e = bg_hll_add_hash(&t, src->u.exact[i]);
        } else if (t.form == BG_HLL_DENSE) {
            uint32_t en = src->u.sparse[i];
            if (t.u.dense[ENTRY_IDX(en)] < ENTRY_RANK(en))
                t.u.dense[ENTRY_IDX(en)] = ENTRY_RANK(en);
        } else {
            e = sparse_set(&t, ENTRY_IDX(src->u.sparse[i]), ENTRY_RANK(src->u.sparse[i]));
        }
    }
    if (e != BG_OK) {
        bg_hll_clear(&t);
        return e;
    }
    bg_hll_clear(dst);
    *dst = t;
    return BG_OK;
}

/* ======================================================================== */
/* Queries                                                                  */
/* ======================================================================== */

double bg_hll_estimate(const bg_hll *h) {
    if (!h || !h->p)
        return 0.0;
    unsigned p = h->p, q = 64 - p;
    bg_hll_regsum rs = {0, 0, 0};
    switch ((bg_hll_form)h->form) {
    case BG_HLL_EXACT:
        return (double)h->n;
    case BG_HLL_SPARSE:
        rs.zeros = (uint32_t)(M(p) - h->n);
        for (uint32_t i = 0; i < h->n; i++) {
            unsigned r = ENTRY_RANK(h->u.sparse[i]);
            if (r <= q)
                rs.sum += 1ull << (q - r);
            else
                rs.top++;
        }
        break;
    case BG_HLL_DENSE:
        kern()->regsum(h->u.dense, M(p), q, &rs);
        break;
    }
    return bg_hll_estimate_regsum(&rs, p);
}

void bg_hll_registers(const bg_hll *h, uint8_t *regs) {
    if (h && h->p && regs)
        to_registers(h, regs);
}

size_t bg_hll_bytes(const bg_hll *h) {
    if (!h || !h->p)
        return sizeof(bg_hll);
    if (h->form == BG_HLL_SPARSE)
        return sizeof(bg_hll) + (size_t)h->cap * sizeof(uint32_t);
    if (h->form == BG_HLL_DENSE)
        return sizeof(bg_hll) + M(h->p);
    return sizeof(bg_hll);
}

/* ======================================================================== */
/* Serialization                                                            */
/* ======================================================================== */

#define SER_VERSION 1
#define SPARSE_ENTRY_BYTES 3 /* u16 idx, u8 rank */

static void put16(uint8_t *b, uint16_t v) {
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
}
static uint16_t get16(const uint8_t *b) { return (uint16_t)(b[0] | b[1] << 8); }
static void put64(uint8_t *b, uint64_t v) {
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get64(const uint8_t *b) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

static size_t body_size(unsigned p, unsigned form, size_t n) {
    switch (form) {
    case BG_HLL_EXACT:
        return n * 8;
    case BG_HLL_SPARSE:
        return n * SPARSE_ENTRY_BYTES;
    default:
        return M(p);
    }
}

size_t bg_hll_serialized_size(const bg_hll *h) {
    if (!h || !h->p)
        return 0;
    return BG_HLL_SER_HEADER + body_size(h->p, h->form, h->n);
}

bg_err bg_hll_serialize(const bg_hll *h, uint8_t *buf, size_t cap, size_t *len) {
    if (!h || !h->p || !len)
        return BG_ERR_INVALID;
    size_t need = bg_hll_serialized_size(h);
    *len = need;
    if (!buf || cap < need)
        return BG_ERR_FULL;
    buf[0] = 'B';
    buf[1] = 'H';
    buf[2] = SER_VERSION;
    buf[3] = h->p;
    buf[4] = h->form;
    buf[5] = 0;
    put16(buf + 6, h->form == BG_HLL_DENSE ? 0 : h->n);
    uint8_t *b = buf + BG_HLL_SER_HEADER;
    switch ((bg_hll_form)h->form) {
    case BG_HLL_EXACT:
        for (unsigned i = 0; i < h->n; i++)
            put64(b + 8 * i, h->u.exact[i]);
        break;
    case BG_HLL_SPARSE:
        for (unsigned i = 0; i < h->n; i++) {
            put16(b + 3 * i, (uint16_t)ENTRY_IDX(h->u.sparse[i]));
            b[3 * i + 2] = ENTRY_RANK(h->u.sparse[i]);
        }
        break;
    case BG_HLL_DENSE:
        memcpy(b, h->u.dense, M(h->p));
        break;
    }
    return BG_OK;
}

bg_err bg_hll_deserialize(bg_hll *h, const uint8_t *buf, size_t len) {
    if (!h || (!buf && len))
        return BG_ERR_INVALID;
    if (len < BG_HLL_SER_HEADER)
        return BG_ERR_TRUNCATED;
    if (buf[0] != 'B' || buf[1] != 'H')
        return BG_ERR_MALFORMED;
    if (buf[2] != SER_VERSION)
        return BG_ERR_BAD_VALUE;
    unsigned p = buf[3], form = buf[4], n = get16(buf + 6);
    if (p < BG_HLL_P_MIN || p > BG_HLL_P_MAX || form > BG_HLL_DENSE)
        return BG_ERR_BAD_VALUE;
    if (buf[5] != 0)
        return BG_ERR_MALFORMED;
    unsigned q = 64 - p;
    if ((form == BG_HLL_EXACT && n > BG_HLL_EXACT_MAX) ||
        (form == BG_HLL_SPARSE && (n == 0 || n > SPARSE_MAX(p))) ||
        (form == BG_HLL_DENSE && n != 0))
        return BG_ERR_BAD_VALUE;
    size_t body = body_size(p, form, n); /* <= 2^16: n and p are capped above */
    if (len - BG_HLL_SER_HEADER < body)
        return BG_ERR_TRUNCATED;
    if (len - BG_HLL_SER_HEADER > body)
        return BG_ERR_MALFORMED;
    const uint8_t *b = buf + BG_HLL_SER_HEADER;

    bg_hll t;
    bg_hll_init(&t, p);
    switch (form) {
    case BG_HLL_EXACT:
        for (unsigned i = 0; i < n; i++) {
            uint64_t x = get64(b + 8 * i);
            for (unsigned j = 0; j < i; j++)
                if (t.u.exact[j] == x)
                    return BG_ERR_MALFORMED;
            t.u.exact[i] = x;
        }
        t.n = (uint16_t)n;
        break;
    case BG_HLL_SPARSE: {
        for (unsigned i = 0; i < n; i++) {
            unsigned idx = get16(b + 3 * i), r = b[3 * i + 2];
            if (idx >= M(p) || r < 1 || r > q + 1)
                return BG_ERR_BAD_VALUE;
            if (i && idx <= get16(b + 3 * (i - 1)))
                return BG_ERR_MALFORMED;
        }
        uint32_t *v = malloc((size_t)n * sizeof *v);
        if (!v)
            return BG_ERR_NOMEM;
        for (unsigned i = 0; i < n; i++)
            v[i] = ENTRY(get16(b + 3 * i), b[3 * i + 2]);
        t.form = BG_HLL_SPARSE;
        t.n = t.cap = (uint16_t)n;
        t.u.sparse = v;
        break;
    }
    case BG_HLL_DENSE: {
        for (size_t i = 0; i < M(p); i++)
            if (b[i] > q + 1)
                return BG_ERR_BAD_VALUE;
        uint8_t *regs = malloc(M(p));
        if (!regs)
            return BG_ERR_NOMEM;
        memcpy(regs, b, M(p));
        t.form = BG_HLL_DENSE;
        t.u.dense = regs;
        break;
    }
    }
    bg_hll_clear(h);
    *h = t;
    return BG_OK;
}
