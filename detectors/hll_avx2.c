/* AVX2 kernels of the HyperLogLog dense form (see hll.h, bg_hll_kernels).
 * Compiled with -mavx2 -mbmi2 -mpopcnt (CMake, this file only); called only
 * when bg_simd_level() allows. Each matches the scalar reference in hll.c
 * byte for byte; the scalar code handles the tails.
 *
 * add:    rank = ctz(h | 2^q) + 1 for 8 hashes at a time, as the popcount of
 *         (lowest set bit - 1) with the nibble-table trick (Mula); the
 *         register updates stay scalar (AVX2 has no scatter, and equal indexes
 *         in one batch must still end at the max).
 * merge:  vpmaxub, 128 bytes per iteration.
 * regsum: zero and top counts by compare + movemask + popcnt; the fixed-point
 *         sum as vpsllvq(1, q - r) over 64-bit lanes, where r = 0 adds 2^q
 *         (subtracted once at the end, modulo 2^64) and r > q shifts out. */
#include <immintrin.h>
#include <string.h>

#include "hll.h"

static inline __m256i popcnt64(__m256i v) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2,
                                         1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i nib = _mm256_set1_epi8(0x0f);
    __m256i lo = _mm256_and_si256(v, nib);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
    __m256i c = _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
    return _mm256_sad_epu8(c, _mm256_setzero_si256());
}

/* idx << 8 | rank for 4 hashes */
static inline __m256i idx_rank(__m256i v, __m256i guard, __m128i qsh, __m256i one) {
    __m256i y = _mm256_or_si256(v, guard);
    __m256i low = _mm256_and_si256(y, _mm256_sub_epi64(_mm256_setzero_si256(), y));
    __m256i rank = _mm256_add_epi64(popcnt64(_mm256_sub_epi64(low, one)), one);
    return _mm256_or_si256(_mm256_slli_epi64(_mm256_srl_epi64(v, qsh), 8), rank);
}

static void add_avx2(uint8_t *regs, unsigned p, const uint64_t *hashes, size_t n) {
    unsigned q = 64 - p;
    const __m256i guard = _mm256_set1_epi64x((long long)(1ull << q));
    const __m256i one = _mm256_set1_epi64x(1);
    const __m128i qsh = _mm_cvtsi32_si128((int)q);
    uint64_t tmp[8];
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(hashes + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(hashes + i + 4));
        _mm256_storeu_si256((__m256i *)(void *)tmp, idx_rank(a, guard, qsh, one));
        _mm256_storeu_si256((__m256i *)(void *)(tmp + 4), idx_rank(b, guard, qsh, one));
        for (int j = 0; j < 8; j++) {
            uint32_t idx = (uint32_t)(tmp[j] >> 8);
            uint8_t r = (uint8_t)tmp[j], cur = regs[idx];
            regs[idx] = cur < r ? r : cur; /* branch-free: the test is unpredictable */
        }
    }
    bg_hll_kernels_scalar.add(regs, p, hashes + i, n - i);
}

static void merge_avx2(uint8_t *dst, const uint8_t *src, size_t m) {
    size_t i = 0;
    for (; i + 128 <= m; i += 128)
        for (size_t k = 0; k < 128; k += 32) {
            __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(dst + i + k));
            __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(src + i + k));
            _mm256_storeu_si256((__m256i *)(void *)(dst + i + k), _mm256_max_epu8(a, b));
        }
    for (; i + 32 <= m; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(dst + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), _mm256_max_epu8(a, b));
    }
    bg_hll_kernels_scalar.merge(dst + i, src + i, m - i);
}

static inline __m256i terms4(__m128i four_bytes, __m256i qv, __m256i one) {
    __m256i r = _mm256_cvtepu8_epi64(four_bytes);
    return _mm256_sllv_epi64(one, _mm256_sub_epi64(qv, r));
}

static inline __m256i terms16(__m128i x, __m256i qv, __m256i one) {
    __m256i s = _mm256_add_epi64(terms4(x, qv, one), terms4(_mm_srli_si128(x, 4), qv, one));
    __m256i t = _mm256_add_epi64(terms4(_mm_srli_si128(x, 8), qv, one),
                                 terms4(_mm_srli_si128(x, 12), qv, one));
    return _mm256_add_epi64(s, t);
}

static void regsum_avx2(const uint8_t *regs, size_t m, unsigned q, bg_hll_regsum *out) {
    const __m256i zero = _mm256_setzero_si256();
    const __m256i topv = _mm256_set1_epi8((char)(q + 1));
    const __m256i qv = _mm256_set1_epi64x((long long)q);
    const __m256i one = _mm256_set1_epi64x(1);
    __m256i acc0 = zero, acc1 = zero;
    uint32_t zeros = 0, top = 0;
    size_t i = 0;
    for (; i + 32 <= m; i += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(regs + i));
        zeros += (uint32_t)_mm_popcnt_u32((uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, zero)));
        top += (uint32_t)_mm_popcnt_u32((uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, topv)));
        acc0 = _mm256_add_epi64(acc0, terms16(_mm256_castsi256_si128(v), qv, one));
        acc1 = _mm256_add_epi64(acc1, terms16(_mm256_extracti128_si256(v, 1), qv, one));
    }
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)(void *)lanes, _mm256_add_epi64(acc0, acc1));
    /* the zeros above each added 2^q; q >= 48 and zeros <= 2^16 may wrap: fine modulo 2^64 */
    uint64_t sum = lanes[0] + lanes[1] + lanes[2] + lanes[3] - ((uint64_t)zeros << q);
    bg_hll_regsum tail;
    bg_hll_kernels_scalar.regsum(regs + i, m - i, q, &tail);
    out->zeros = zeros + tail.zeros;
    out->top = top + tail.top;
    out->sum = sum + tail.sum;
}

const bg_hll_kernels bg_hll_kernels_avx2 = {"avx2", add_avx2, merge_avx2, regsum_avx2};
