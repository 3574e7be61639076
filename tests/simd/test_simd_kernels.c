/* Every SIMD kernel of the sketches (detectors/hll_avx2.c, cms_avx2.c) byte
 * for byte against the scalar reference (hll.c, cms.c), on sweeps of lengths
 * (0..300 and some large), alignments and edge values.
 *
 * Alignments: byte buffers (HLL registers) are offset by 0..63 bytes; arrays
 * of uint64 hashes by 0..7 elements and of uint32 counters by 0..15 elements
 * (0..63 bytes), which covers every phase against a 32- or 64-byte vector
 * without making C pointers misaligned for their type.
 *
 * Exit status: 0 all variants present on this CPU agree, 1 a mismatch, 77
 * (ctest: skipped) when the CPU lacks AVX2. AVX-512 has no variant in this
 * build yet (none measured to pay; AVX-512 CPUs run AVX2); its line says so. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detectors/cms.h"
#include "detectors/hll.h"

static unsigned failures;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void) { /* splitmix64, fixed seed */
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            if (failures++ < 20) {                                                                 \
                printf("FAIL %s:%d: ", __FILE__, __LINE__);                                        \
                printf(__VA_ARGS__);                                                               \
                printf("\n");                                                                      \
            }                                                                                      \
        }                                                                                          \
    } while (0)

static const size_t big_sizes[] = {1000, 1023, 1024, 1025, 4096, 16384 + 7, 65536, 100003};
#define NBIG (sizeof big_sizes / sizeof big_sizes[0])

/* a hash with an edge rank for precision p: kind 0 random, 1 all low bits
 * zero (rank q+1), 2 lowest bit set (rank 1), 3 exactly k trailing zeros,
 * 4 zero, 5 all ones */
static uint64_t edge_hash(unsigned p, unsigned kind) {
    uint64_t h = next();
    unsigned q = 64 - p;
    switch (kind % 6) {
    case 1:
        return h & ~((1ull << q) - 1);
    case 2:
        return h | 1;
    case 3: {
        unsigned k = (unsigned)(next() % (q + 1));
        return (h & ~((1ull << k) - 1)) | (k < 64 ? 1ull << k : 0);
    }
    case 4:
        return 0;
    case 5:
        return UINT64_MAX;
    default:
        return h;
    }
}

/* ------------------------------------------------------------------------ */
/* HLL                                                                      */
/* ------------------------------------------------------------------------ */

static void hll_add(const bg_hll_kernels *k) {
    static const unsigned ps[] = {4, 5, 10, 14, 16};
    uint64_t *hbuf = malloc((100003 + 8) * sizeof *hbuf);
    uint8_t *r0 = malloc(1u << 16), *r1 = malloc(1u << 16);
    for (size_t pi = 0; pi < sizeof ps / sizeof ps[0]; pi++) {
        unsigned p = ps[pi], q = 64 - p;
        size_t m = (size_t)1 << p;
        for (size_t s = 0; s < 301 + NBIG; s++) {
            size_t n = s < 301 ? s : big_sizes[s - 301];
            size_t off = s % 8;
            uint64_t *h = hbuf + off;
            for (size_t i = 0; i < n; i++)
                h[i] = edge_hash(p, (unsigned)(next() % 8));
            for (size_t i = 0; i < m; i++)
                r0[i] = (uint8_t)(s % 3 == 0 ? 0 : next() % (q + 2));
            memcpy(r1, r0, m);
            bg_hll_kernels_scalar.add(r0, p, h, n);
            k->add(r1, p, h, n);
            CHECK(memcmp(r0, r1, m) == 0, "%s add p=%u n=%zu off=%zu", k->name, p, n, off);
        }
    }
    free(hbuf);
    free(r0);
    free(r1);
}

static void fill_regs(uint8_t *r, size_t m, unsigned q, unsigned kind) {
    for (size_t i = 0; i < m; i++)
        switch (kind % 5) {
        case 0: r[i] = (uint8_t)(next() % (q + 2)); break;          /* valid */
        case 1: r[i] = 0; break;                                    /* empty */
        case 2: r[i] = (uint8_t)(q + 1); break;                     /* all top */
        case 3: r[i] = (uint8_t)next(); break;                      /* hostile */
        default: r[i] = (uint8_t)(next() % 4 ? next() % 12 : q); /* typical */
        }
}

static void hll_merge_regsum(const bg_hll_kernels *k) {
    size_t cap = 100003 + 128;
    uint8_t *a0 = malloc(cap), *a1 = malloc(cap), *src = malloc(cap), *d0 = malloc(cap),
            *d1 = malloc(cap);
    for (size_t s = 0; s < 301 + NBIG; s++) {
        size_t m = s < 301 ? s : big_sizes[s - 301];
        size_t noff = s < 301 ? 64 : 4;
        for (size_t off = 0; off < noff; off++) {
            size_t soff = (off * 7 + s) % 64; /* src offset independent of dst's */
            unsigned q = 48 + (unsigned)((s + off) % 13); /* p 16..4 */
            fill_regs(a0 + off, m, q, (unsigned)(s + off));
            fill_regs(src + soff, m, q, (unsigned)(s + off + 1));
            memcpy(a1 + off, a0 + off, m);
            bg_hll_kernels_scalar.merge(a0 + off, src + soff, m);
            k->merge(a1 + off, src + soff, m);
            CHECK(memcmp(a0 + off, a1 + off, m) == 0, "%s merge m=%zu off=%zu/%zu", k->name, m,
                  off, soff);
            bg_hll_regsum x, y;
            memcpy(d0, a0 + off, m); /* keep a copy: the kernel must not write */
            bg_hll_kernels_scalar.regsum(a0 + off, m, q, &x);
            k->regsum(a0 + off, m, q, &y);
            CHECK(x.zeros == y.zeros && x.top == y.top && x.sum == y.sum,
                  "%s regsum m=%zu off=%zu q=%u: %u/%u %u/%u %" PRIu64 "/%" PRIu64, k->name, m,
                  off, q, x.zeros, y.zeros, x.top, y.top, x.sum, y.sum);
            CHECK(memcmp(d0, a0 + off, m) == 0, "%s regsum wrote its input", k->name);
        }
    }
    /* full-size extremes: 65536 registers all 0 (the 2^q terms wrap 2^64) and all 1 */
    for (unsigned v = 0; v < 3; v++) {
        memset(d1, v == 2 ? 49 : (int)v, 65536);
        bg_hll_regsum x, y;
        bg_hll_kernels_scalar.regsum(d1, 65536, 48, &x);
        k->regsum(d1, 65536, 48, &y);
        CHECK(x.zeros == y.zeros && x.top == y.top && x.sum == y.sum, "%s regsum extreme %u",
              k->name, v);
    }
    free(a0);
    free(a1);
    free(src);
    free(d0);
    free(d1);
}

/* ------------------------------------------------------------------------ */
/* CMS                                                                      */
/* ------------------------------------------------------------------------ */

static uint32_t edge_count(unsigned kind) {
    switch (kind % 5) {
    case 0: return 1;
    case 1: return 0;
    case 2: return UINT32_MAX;
    case 3: return UINT32_MAX - (uint32_t)(next() % 4);
    default: return (uint32_t)(next() % 1000);
    }
}

static void cms_update_query(const bg_cms_kernels *k) {
    static const uint32_t widths[] = {1, 2, 3, 7, 64, 1000, 2719};
    size_t maxc = 2719 * 8 + 16;
    uint32_t *c0 = malloc(maxc * 4), *c1 = malloc(maxc * 4), *cnt = malloc(5016 * 4),
             *o0 = malloc(5016 * 4), *o1 = malloc(5016 * 4);
    uint64_t *hbuf = malloc(5016 * 8);
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++)
        for (uint32_t d = 1; d <= BG_CMS_MAX_DEPTH; d++)
            for (size_t s = 0; s < 301 + 2; s += (widths[wi] > 64 ? 3 : 1)) {
                size_t n = s < 301 ? s : (s == 301 ? 1024 : 5000);
                size_t hoff = s % 8, coff = (s / 8 + wi) % 16;
                uint64_t *h = hbuf + hoff;
                uint32_t *a = c0 + coff, *b = c1 + coff;
                size_t len = (size_t)widths[wi] * d;
                int near_sat = s % 7 == 0;
                for (size_t i = 0; i < len; i++)
                    a[i] = near_sat ? UINT32_MAX - (uint32_t)(next() % 8) : (uint32_t)(next() % 50);
                memcpy(b, a, len * 4);
                for (size_t i = 0; i < n; i++) {
                    /* repeated keys, so conservative updates interact */
                    h[i] = i && next() % 3 == 0 ? h[next() % i] : edge_hash(10, (unsigned)next());
                    cnt[i] = edge_count((unsigned)next());
                }
                const uint32_t *cp = s % 2 ? cnt : NULL;
                bg_cms_kernels_scalar.update(a, widths[wi], d, h, cp, n);
                k->update(b, widths[wi], d, h, cp, n);
                CHECK(memcmp(a, b, len * 4) == 0, "%s update w=%u d=%u n=%zu", k->name,
                      widths[wi], d, n);
                bg_cms_kernels_scalar.query(a, widths[wi], d, h, n, o0);
                k->query(a, widths[wi], d, h, n, o1);
                CHECK(memcmp(o0, o1, n * 4) == 0, "%s query w=%u d=%u n=%zu", k->name, widths[wi],
                      d, n);
            }
    free(c0);
    free(c1);
    free(cnt);
    free(o0);
    free(o1);
    free(hbuf);
}

static void cms_merge(const bg_cms_kernels *k) {
    size_t cap = 100003 + 32;
    uint32_t *a0 = malloc(cap * 4), *a1 = malloc(cap * 4), *src = malloc(cap * 4);
    for (size_t s = 0; s < 301 + NBIG; s++) {
        size_t len = s < 301 ? s : big_sizes[s - 301];
        for (size_t off = 0; off < (s < 301 ? 16u : 2u); off++) {
            size_t soff = (off * 5 + s) % 16;
            for (size_t i = 0; i < len; i++) {
                unsigned kind = (unsigned)(next() % 4);
                a0[off + i] = kind == 0 ? UINT32_MAX - (uint32_t)(next() % 3) : (uint32_t)next();
                src[soff + i] = kind == 1 ? UINT32_MAX : kind == 2 ? 0 : (uint32_t)next();
            }
            memcpy(a1 + off, a0 + off, len * 4);
            bg_cms_kernels_scalar.merge(a0 + off, src + soff, len);
            k->merge(a1 + off, src + soff, len);
            CHECK(memcmp(a0 + off, a1 + off, len * 4) == 0, "%s merge len=%zu off=%zu", k->name,
                  len, off);
        }
    }
    free(a0);
    free(a1);
    free(src);
}

int main(void) {
    if (!bg_simd_supported(BG_SIMD_AVX2)) {
        printf("avx2: CPU lacks AVX2: skipped\n");
        return 77;
    }
    for (int isa = BG_SIMD_AVX2; isa < BG_SIMD_COUNT; isa++) {
        const bg_hll_kernels *hk = bg_hll_kernels_for((bg_simd_isa)isa);
        const bg_cms_kernels *ck = bg_cms_kernels_for((bg_simd_isa)isa);
        const char *name = bg_simd_name((bg_simd_isa)isa);
        if (!hk && !ck) {
            printf("%s: no variant in this build: skipped\n", name);
            continue;
        }
        if (!bg_simd_supported((bg_simd_isa)isa)) {
            printf("%s: CPU lacks it: skipped\n", name);
            continue;
        }
        unsigned before = failures;
        if (hk) {
            hll_add(hk);
            hll_merge_regsum(hk);
        }
        if (ck) {
            cms_update_query(ck);
            cms_merge(ck);
        }
        printf("%s: hll add/merge/regsum, cms update/query/merge: %s\n", name,
               failures == before ? "ran, equal to scalar" : "MISMATCH");
    }
    return failures ? 1 : 0;
}
