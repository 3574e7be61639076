/* AVX2 kernels of the Count-Min sketch (see cms.h, bg_cms_kernels). Compiled
 * with -mavx2 -mbmi2 -mpopcnt (CMake, this file only). Byte-identical to the
 * scalar reference in cms.c, which handles the tails.
 *
 * update: one key at a time (conservative update is order dependent): the
 *         depth columns in one vector (lane = row), a masked gather of the
 *         counters, a horizontal min, then d scalar stores of
 *         max(counter, new) (AVX2 has no scatter; unconditional stores beat
 *         the unpredictable "is this row below" branch).
 * query:  eight keys at a time, lane = key: per row, columns by vpmuludq,
 *         a gather and a running vpminud; no horizontal work.
 * merge:  saturating add, a + b | (a + b < a), via vpmaxud. */
#include <immintrin.h>

#include "cms.h"

/* ((uint64)g * w) >> 32 in each 32-bit lane */
static inline __m256i range32(__m256i g, __m256i w) {
    __m256i even = _mm256_srli_epi64(_mm256_mul_epu32(g, w), 32);
    __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(g, 32), w);
    return _mm256_blend_epi32(even, odd, 0xAA);
}

static inline uint32_t hmin(__m256i v) {
    __m128i m = _mm_min_epu32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    m = _mm_min_epu32(m, _mm_shuffle_epi32(m, 0x4E));
    m = _mm_min_epu32(m, _mm_shuffle_epi32(m, 0xB1));
    return (uint32_t)_mm_cvtsi128_si32(m);
}

static void update_avx2(uint32_t *c, uint32_t width, uint32_t depth, const uint64_t *hashes,
                        const uint32_t *counts, size_t n) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i wv = _mm256_set1_epi32((int)width);
    const __m256i rowoff = _mm256_mullo_epi32(lanes, wv);
    const __m256i valid = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)depth), lanes);
    const __m256i ones = _mm256_set1_epi32(-1);
    uint32_t pos[8];
    for (size_t k = 0; k < n; k++) {
        uint64_t h = hashes[k];
        __m256i a = _mm256_set1_epi32((int)(uint32_t)h);
        __m256i b = _mm256_set1_epi32((int)((uint32_t)(h >> 32) | 1u));
        __m256i g = _mm256_add_epi32(a, _mm256_mullo_epi32(lanes, b));
        __m256i p = _mm256_add_epi32(range32(g, wv), rowoff);
        __m256i v = _mm256_mask_i32gather_epi32(ones, (const int *)(const void *)c, p, valid, 4);
        uint32_t min = hmin(v);
        uint32_t cnt = counts ? counts[k] : 1u;
        uint32_t nv = min + cnt < min ? UINT32_MAX : min + cnt;
        /* raise every row to max(counter, nv), stores unconditional (which
         * rows are below nv is unpredictable; AVX2 has no scatter) */
        uint32_t nvs[8];
        _mm256_storeu_si256((__m256i *)(void *)nvs, _mm256_max_epu32(v, _mm256_set1_epi32((int)nv)));
        _mm256_storeu_si256((__m256i *)(void *)pos, p);
        for (uint32_t i = 0; i < depth; i++)
            c[pos[i]] = nvs[i];
    }
}

static void query_avx2(const uint32_t *c, uint32_t width, uint32_t depth, const uint64_t *hashes,
                       size_t n, uint32_t *out) {
    const __m256i wv = _mm256_set1_epi32((int)width);
    const __m256i odd1 = _mm256_set1_epi32(1);
    /* lo halves to lanes 0-3, hi halves to lanes 4-7, of each 4-hash load */
    const __m256i split = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256i x = _mm256_permutevar8x32_epi32(
            _mm256_loadu_si256((const __m256i *)(const void *)(hashes + k)), split);
        __m256i y = _mm256_permutevar8x32_epi32(
            _mm256_loadu_si256((const __m256i *)(const void *)(hashes + k + 4)), split);
        __m256i a = _mm256_permute2x128_si256(x, y, 0x20); /* lo of h0..h7 */
        __m256i b = _mm256_or_si256(_mm256_permute2x128_si256(x, y, 0x31), odd1);
        __m256i g = a, off = _mm256_setzero_si256();
        __m256i min = _mm256_set1_epi32(-1);
        for (uint32_t i = 0; i < depth; i++) {
            __m256i p = _mm256_add_epi32(range32(g, wv), off);
            min = _mm256_min_epu32(min, _mm256_i32gather_epi32((const int *)(const void *)c, p, 4));
            g = _mm256_add_epi32(g, b);
            off = _mm256_add_epi32(off, wv);
        }
        _mm256_storeu_si256((__m256i *)(void *)(out + k), min);
    }
    bg_cms_kernels_scalar.query(c, width, depth, hashes + k, n - k, out + k);
}

static void merge_avx2(uint32_t *dst, const uint32_t *src, size_t len) {
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(dst + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
        __m256i s = _mm256_add_epi32(a, b);
        __m256i ok = _mm256_cmpeq_epi32(_mm256_max_epu32(s, a), s); /* s >= a: no wrap */
        s = _mm256_or_si256(s, _mm256_xor_si256(ok, _mm256_set1_epi32(-1)));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), s);
    }
    bg_cms_kernels_scalar.merge(dst + i, src + i, len - i);
}

const bg_cms_kernels bg_cms_kernels_avx2 = {"avx2", update_avx2, query_avx2, merge_avx2};
