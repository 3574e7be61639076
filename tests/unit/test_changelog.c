/* Unit tests for worker/changelog.c: round trips of StateSnapshot records
 * (empty, small, compressible and incompressible states), and hostile
 * records: every truncation, every single-byte corruption, a declared size
 * beyond the cap, a size prefix that lies, trailing bytes. A hostile record
 * is refused with an error and a reason; it never crashes or reads out of
 * bounds (run under ASan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>

#include "worker/changelog.h"

static void roundtrip(const uint8_t *st, size_t n) {
    bg_buf b = {0}, s = {0};
    assert_int_equal(bg_changelog_encode(7, "spiffe://a/b", 12, 3, 2, st, n, 1234567890123LL,
                                         "0.1.0", &b),
                     BG_OK);
    bg_changelog_rec r;
    char why[256];
    assert_int_equal(bg_changelog_decode(b.data, b.len, &r, &s, why, sizeof why), BG_OK);
    assert_int_equal(r.identity_len, 12);
    assert_memory_equal(r.identity, "spiffe://a/b", 12);
    assert_int_equal(r.partition, 3);
    assert_int_equal(r.format_version, 2);
    assert_int_equal(r.updated_at, 1234567890123LL);
    assert_int_equal(r.state_len, n);
    if (n)
        assert_memory_equal(r.state, st, n);
    bg_buf_free(&b);
    bg_buf_free(&s);
}

static void test_roundtrip(void **state) {
    (void)state;
    roundtrip(NULL, 0);
    uint8_t small[5] = {1, 2, 3, 4, 5};
    roundtrip(small, sizeof small);
    size_t n = 100000;
    uint8_t *big = calloc(n, 1);
    for (size_t i = 0; i < n; i += 97)
        big[i] = (uint8_t)i;
    roundtrip(big, n);
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < n; i++) { /* incompressible */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        big[i] = (uint8_t)x;
    }
    roundtrip(big, n);
    free(big);
}

static void test_hostile(void **state) {
    (void)state;
    uint8_t st[600];
    for (size_t i = 0; i < sizeof st; i++)
        st[i] = (uint8_t)(i % 13);
    bg_buf b = {0}, s = {0};
    assert_int_equal(
        bg_changelog_encode(7, "id", 2, 0, 1, st, sizeof st, 5, "v", &b), BG_OK);
    bg_changelog_rec r;
    char why[256];
    /* every truncation is refused */
    for (size_t n = 0; n < b.len; n++) {
        why[0] = 0;
        assert_int_not_equal(bg_changelog_decode(b.data, n, &r, &s, why, sizeof why), BG_OK);
        assert_true(why[0] != 0);
    }
    /* every single-byte change either is refused or decodes within bounds */
    uint8_t *c = malloc(b.len + 1);
    for (size_t i = 0; i < b.len; i++)
        for (int v = 0; v < 256; v += 51) {
            memcpy(c, b.data, b.len);
            c[i] ^= (uint8_t)(v | 1);
            if (bg_changelog_decode(c, b.len, &r, &s, why, sizeof why) == BG_OK)
                assert_true(r.state_len <= BG_CHANGELOG_MAX_STATE);
        }
    /* trailing bytes */
    memcpy(c, b.data, b.len);
    c[b.len] = 0;
    assert_int_equal(bg_changelog_decode(c, b.len + 1, &r, &s, why, sizeof why), BG_ERR_MALFORMED);
    free(c);
    bg_buf_free(&b);

    /* a size prefix beyond the cap, and one that lies about a valid block */
    uint8_t rec[64];
    size_t n = 0;
    rec[n++] = 0, rec[n++] = 0, rec[n++] = 0, rec[n++] = 0, rec[n++] = 7;
    rec[n++] = 2 * 2, rec[n++] = 'i', rec[n++] = 'd';    /* identity */
    rec[n++] = 0, rec[n++] = 2;                           /* partition 0, version 1 */
    rec[n++] = 2 * 8;                                     /* 8 bytes of state */
    rec[n++] = 0xff, rec[n++] = 0xff, rec[n++] = 0xff, rec[n++] = 0xff;
    rec[n++] = 0x40, rec[n++] = 'a', rec[n++] = 'b', rec[n++] = 'c';
    rec[n++] = 10, rec[n++] = 2, rec[n++] = 'v';          /* updated_at 5, version "v" */
    assert_int_equal(bg_changelog_decode(rec, n, &r, &s, why, sizeof why), BG_ERR_SNAPSHOT);
    assert_non_null(strstr(why, "cap"));
    uint8_t blk[32];
    int bl = LZ4_compress_default("hello hello hello", (char *)blk, 17, (int)sizeof blk);
    assert_true(bl > 0);
    n = 10;
    rec[n++] = (uint8_t)(2 * (4 + bl));
    rec[n++] = 0, rec[n++] = 0, rec[n++] = 0, rec[n++] = 40; /* claims 40, holds 17 */
    memcpy(rec + n, blk, (size_t)bl);
    n += (size_t)bl;
    rec[n++] = 10, rec[n++] = 2, rec[n++] = 'v';
    assert_int_equal(bg_changelog_decode(rec, n, &r, &s, why, sizeof why), BG_ERR_SNAPSHOT);
    rec[14] = 17; /* the true size decodes */
    assert_int_equal(bg_changelog_decode(rec, n, &r, &s, why, sizeof why), BG_OK);
    assert_memory_equal(r.state, "hello hello hello", 17);
    bg_buf_free(&s);
}

static void test_offsets_header(void **state) {
    (void)state;
    int64_t o[3];
    assert_true(bg_changelog_parse_offsets("12,-1,7", 7, o));
    assert_int_equal(o[0], 12);
    assert_int_equal(o[1], -1);
    assert_int_equal(o[2], 7);
    assert_false(bg_changelog_parse_offsets("12,7", 4, o));
    assert_false(bg_changelog_parse_offsets("1,2,3,", 6, o));
    assert_false(bg_changelog_parse_offsets("a,b,c", 5, o));
    assert_false(bg_changelog_parse_offsets(NULL, 0, o));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_offsets_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
