/* HyperLogLog: approximate count of distinct values (destinations, tools,
 * traces) per identity and window, in a few dozen bytes while small.
 *
 * Algorithm. A value's 64-bit hash h (bg_hash64, seed BG_SEED_SKETCH) picks
 * register idx = h >> (64 - p) (top p bits) and a rank
 *     rank = ctz(h | 2^q) + 1,  q = 64 - p,  so 1 <= rank <= q + 1
 * (position of the lowest set bit of the other q bits). Each of the m = 2^p
 * registers keeps the largest rank it saw. The cardinality is read with Ertl's
 * improved estimator (O. Ertl, "New cardinality estimation algorithms for
 * HyperLogLog sketches", 2017, eq. (11); also what redis uses since 5.0):
 *
 *     E = alpha_inf m^2 / ( m sigma(C_0/m) + sum_{k=1..q} C_k 2^-k
 *                           + m tau(1 - C_{q+1}/m) 2^-q )
 *
 * with C_k the number of registers equal to k and alpha_inf = 1 / (2 ln 2).
 * sigma and tau fold linear counting and the large-range correction into one
 * formula, so there are no bias tables and no thresholds; the relative
 * standard error is about 1.04 / sqrt(m) at every cardinality, and far less
 * while most registers are zero. The sum over k is computed exactly in 64-bit
 * fixed point (sum of 2^(q-k), at most m 2^(q-1) = 2^63), so every kernel
 * variant gives the same estimate to the last bit.
 *
 * Forms. A sketch starts EXACT (up to BG_HLL_EXACT_MAX distinct hashes held
 * inline, estimate = their number, no heap), becomes SPARSE (a sorted heap
 * array of (idx, rank) entries, 4 bytes each, at most m/4 entries so it never
 * outweighs the dense form), then DENSE (m one-byte registers on the heap).
 * Promotion is one way and depends only on the content, so a sketch fed a set
 * and the merge of sketches fed its parts hold the same registers.
 *
 *   struct bg_hll, 32 bytes, held inline by its owner (or bg_hll_new()):
 *   +----+------+-------+-------+-------+-------------------------------+
 *   | p  | form |   n   |  cap  | rsvd  | u (24 bytes)                  |
 *   | u8 |  u8  |  u16  |  u16  |  u16  |                               |
 *   +----+------+-------+-------+-------+-------------------------------+
 *   EXACT : u.exact[0..n)  distinct 64-bit hashes, insertion order
 *   SPARSE: u.sparse -> u32[cap], n used, ascending:  idx << 8 | rank
 *              31            8 7      0
 *             +---------------+--------+
 *             |  idx (0..m-1) |  rank  |      rank 1..q+1, idx unique
 *             +---------------+--------+
 *   DENSE : u.dense  -> u8[m], register i = max rank seen (0 = none)
 *
 *   Memory (struct + heap, heap rounded to the allocation): 32 B up to 3
 *   distinct values; 32 + 4*cap B sparse (cap doubles from 8); 32 + m B dense.
 *   p = 10 (the default): 32 B, <= 32+64 B for 16 values, <= 1056 B always.
 *   p = 8: <= 288 B always, sigma 6.5%.  p = 12: <= 4128 B, sigma 1.6%.
 *
 * Ownership: a sketch owns its heap array; bg_hll_clear() releases it (and
 * leaves an empty sketch of the same p). Copying the struct copies the pointer:
 * use bg_hll_copy(). A zero-filled bg_hll (p = 0) owns nothing: it may be
 * cleared or deserialized into, but must be bg_hll_init()ed before use.
 * Not thread-safe: one sketch, one writer (the engine task owning it). */
#ifndef BG_HLL_H
#define BG_HLL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "simd.h"

#define BG_HLL_P_MIN 4
#define BG_HLL_P_MAX 16
#define BG_HLL_P_DEFAULT 10 /* m = 1024, sigma = 1.04/32 = 3.25%, dense 1 KiB */
#define BG_HLL_EXACT_MAX 3  /* hashes held inline before the sparse form */

typedef enum bg_hll_form {
    BG_HLL_EXACT = 0,  /* u.exact: n distinct hashes, no heap */
    BG_HLL_SPARSE = 1, /* u.sparse: n sorted entries on the heap */
    BG_HLL_DENSE = 2,  /* u.dense: m registers on the heap */
} bg_hll_form;

typedef struct bg_hll {
    uint8_t p;         /* precision BG_HLL_P_MIN..MAX, m = 2^p registers; 0: zeroed, unusable */
    uint8_t form;      /* a bg_hll_form */
    uint16_t n;        /* EXACT: hashes used (0..3); SPARSE: entries used (1..m/4); DENSE: 0 */
    uint16_t cap;      /* SPARSE: entries allocated (n..m/4); otherwise 0 */
    uint16_t reserved; /* 0 */
    union {
        uint64_t exact[BG_HLL_EXACT_MAX]; /* EXACT: distinct hashes */
        uint32_t *sparse;                 /* SPARSE: heap, cap entries idx << 8 | rank */
        uint8_t *dense;                   /* DENSE: heap, m bytes */
    } u;
} bg_hll;

/* --- Life cycle --------------------------------------------------------------- */

/* An empty EXACT sketch of precision p. BG_ERR_INVALID when p is out of
 * BG_HLL_P_MIN..MAX (h untouched). Allocates nothing. */
bg_err bg_hll_init(bg_hll *h, unsigned p);
/* Releases the heap array and leaves an empty sketch of the same p (a zeroed
 * sketch stays zeroed). NULL is a no-op. */
void bg_hll_clear(bg_hll *h);
/* For owners that hold a pointer: a heap sketch, freed by bg_hll_free(). */
bg_err bg_hll_new(unsigned p, bg_hll **out);
void bg_hll_free(bg_hll *h); /* NULL is a no-op */
/* dst = a deep copy of src. dst's former content is cleared first (dst must
 * be initialised or zeroed). BG_ERR_NOMEM leaves dst empty. */
bg_err bg_hll_copy(bg_hll *dst, const bg_hll *src);

/* --- Updates -------------------------------------------------------------------- */

/* Adds a value (hashed with bg_hash64(data, len, BG_SEED_SKETCH)). */
bg_err bg_hll_add(bg_hll *h, const void *data, size_t len);
/* Adds a hash computed by the caller (any 64-bit value, 0 included). On
 * BG_ERR_NOMEM (promotion failed) the sketch is unchanged. */
bg_err bg_hll_add_hash(bg_hll *h, uint64_t hash);
/* Adds n hashes; the dense part runs on the active SIMD kernel. On
 * BG_ERR_NOMEM the hashes before the failing one are in. */
bg_err bg_hll_add_hashes(bg_hll *h, const uint64_t *hashes, size_t n);
/* dst |= src: afterwards dst estimates the union. Both must have the same p
 * (BG_ERR_INVALID otherwise, dst unchanged). dst may be promoted;
 * BG_ERR_NOMEM leaves dst unchanged. src == dst is allowed (no-op). */
bg_err bg_hll_merge(bg_hll *dst, const bg_hll *src);

/* --- Queries -------------------------------------------------------------------- */

/* Estimated number of distinct values (exact in the EXACT form). 0 for an
 * empty or zeroed sketch. */
double bg_hll_estimate(const bg_hll *h);
/* Writes the m registers the sketch stands for (any form) to regs[0..m). */
void bg_hll_registers(const bg_hll *h, uint8_t *regs);
/* Bytes held: sizeof(bg_hll) + heap array. */
size_t bg_hll_bytes(const bg_hll *h);
/* The standard error the estimator is built for: 1.04 / sqrt(2^p). */
double bg_hll_sigma(unsigned p);

/* --- Serialization ------------------------------------------------------------ */

/* Version 1 layout, little endian, canonical (equal sketches, equal bytes):
 *   0 'B' 'H'   magic
 *   2 u8        version (1)
 *   3 u8        p (4..16)
 *   4 u8        form (0 exact, 1 sparse, 2 dense)
 *   5 u8        0
 *   6 u16       n: exact 0..3 hashes, sparse 1..m/4 entries, dense 0
 *   8 body      exact: n x u64 hash (distinct)
 *               sparse: n x { u16 idx, u8 rank } (idx ascending, rank 1..q+1)
 *               dense: m x u8 register (0..q+1)
 * Decoding checks every length, range and ordering: a hostile byte string
 * yields an error, never a read past len nor a sketch that breaks an invariant. */
#define BG_HLL_SER_HEADER 8
#define BG_HLL_SER_MAX (BG_HLL_SER_HEADER + (1u << BG_HLL_P_MAX))

/* Exact size bg_hll_serialize() writes. */
size_t bg_hll_serialized_size(const bg_hll *h);
/* Writes the sketch to buf[0..cap) and its length to *len. BG_ERR_FULL when
 * cap is too small (nothing written, *len = size needed); BG_ERR_INVALID for
 * a zeroed sketch. */
bg_err bg_hll_serialize(const bg_hll *h, uint8_t *buf, size_t cap, size_t *len);
/* Replaces *h (initialised or zeroed) with the sketch in buf[0..len).
 * Errors, with *h unchanged: BG_ERR_TRUNCATED (ends early), BG_ERR_MALFORMED
 * (magic, reserved byte, trailing bytes, order, duplicates),
 * BG_ERR_BAD_VALUE (version, p, form, n, rank out of range), BG_ERR_NOMEM. */
bg_err bg_hll_deserialize(bg_hll *h, const uint8_t *buf, size_t len);

/* --- Kernels ---------------------------------------------------------------------
 * The hot loops over dense registers, one table per instruction set. The API
 * above dispatches on bg_simd_level(); tests and benchmarks call variants
 * directly to compare them with the scalar reference. All take unaligned
 * pointers and any length, 0 included. */

/* Register-sum of Ertl's estimator over regs[0..m), q = 64 - p:
 * zeros = C_0, top = C_{q+1}, sum = sum over registers with 1 <= r <= q of
 * 2^(q-r). Bytes above q+1 (never in a valid sketch) count nowhere. */
typedef struct bg_hll_regsum {
    uint32_t zeros; /* registers equal to 0, 0..m */
    uint32_t top;   /* registers equal to q+1, 0..m */
    uint64_t sum;   /* fixed point 2^-q, <= m 2^(q-1) <= 2^63 */
} bg_hll_regsum;

typedef struct bg_hll_kernels {
    const char *name; /* "scalar", "avx2", ... */
    /* regs[h >> (64-p)] = max(itself, ctz(h | 2^(64-p)) + 1) for each hash */
    void (*add)(uint8_t *regs, unsigned p, const uint64_t *hashes, size_t n);
    /* dst[i] = max(dst[i], src[i]) for i < m */
    void (*merge)(uint8_t *dst, const uint8_t *src, size_t m);
    /* *out = register sums of regs[0..m), see bg_hll_regsum */
    void (*regsum)(const uint8_t *regs, size_t m, unsigned q, bg_hll_regsum *out);
} bg_hll_kernels;

/* The table for isa, or NULL when this build has none for it (no AVX-512
 * variant yet: the development CPU lacks AVX-512, so none could be shown to
 * pay; AVX-512 CPUs run the AVX2 table). Does not check the CPU:
 * calling a table the CPU lacks raises SIGILL; ask bg_simd_supported(). */
const bg_hll_kernels *bg_hll_kernels_for(bg_simd_isa isa);
/* The variants themselves (scalar in hll.c, avx2 in hll_avx2.c). */
extern const bg_hll_kernels bg_hll_kernels_scalar;
extern const bg_hll_kernels bg_hll_kernels_avx2;
/* Ertl's estimate from a register sum (the formula above). */
double bg_hll_estimate_regsum(const bg_hll_regsum *rs, unsigned p);

#endif
