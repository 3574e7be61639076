/* Backtest report module: time parsing, labels, bursts, the scoring rules on
 * a small case computed by hand, and compare. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "detectors/verdict.h"
#include "worker/report.h"

static void test_time_parse(void **state) {
    (void)state;
    int64_t t;
    assert_int_equal(bg_time_parse("2026-11-30T00:00:00Z", &t), BG_OK);
    assert_int_equal(t, 1795996800000LL);
    assert_int_equal(bg_time_parse("2026-11-30T00:00Z", &t), BG_OK);
    assert_int_equal(t, 1795996800000LL);
    assert_int_equal(bg_time_parse("2026-11-30T00:00:00.250Z", &t), BG_OK);
    assert_int_equal(t, 1795996800250LL);
    assert_int_equal(bg_time_parse("2026-11-30T00:00:00.1234567Z", &t), BG_OK);
    assert_int_equal(t, 1795996800123LL);
    assert_int_equal(bg_time_parse("2026-11-30T01:30:00+01:30", &t), BG_OK);
    assert_int_equal(t, 1795996800000LL);
    assert_int_equal(bg_time_parse("2026-11-29T22:00:00-02:00", &t), BG_OK);
    assert_int_equal(t, 1795996800000LL);
    assert_int_equal(bg_time_parse("1795996800000", &t), BG_OK);
    assert_int_equal(t, 1795996800000LL);
    assert_int_equal(bg_time_parse("2024-02-29T00:00:00Z", &t), BG_OK);
    const char *bad[] = {"", "yesterday", "2026-11-30", "2026-11-30T00:00", "2026-13-01T00:00Z",
                         "2026-02-29T00:00Z", "2026-11-31T00:00Z", "2026-11-30T24:00Z",
                         "2026-11-30T00:00:00.Z", "2026-11-30T00:00:00Zjunk", "12345678901234567",
                         "-5", "2026-11-30T00:00+25:00"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(bg_time_parse(bad[i], &t), BG_ERR_INVALID);
    char buf[40];
    bg_time_iso(1795996800250LL, buf, sizeof buf);
    assert_string_equal(buf, "2026-11-30T00:00:00.250Z");
}

static void test_label_parse(void **state) {
    (void)state;
    bg_label l;
    char why[256];
    assert_int_equal(bg_label_parse("spiffe://a,ANOMALOUS,2026-11-30T00:00Z,1795996860000,s1;s2,"
                                    "new secret, then exfil",
                                    &l, why, sizeof why),
                     BG_OK);
    assert_string_equal(l.identity, "spiffe://a");
    assert_int_equal(l.cls, BG_CLASS_ANOMALOUS);
    assert_int_equal(l.start, 1795996800000LL);
    assert_int_equal(l.end, 1795996860000LL);
    assert_string_equal(l.secret_ids, "s1;s2");
    assert_string_equal(l.what, "new secret, then exfil");
    free(l.identity);
    free(l.secret_ids);
    free(l.what);
    assert_int_equal(bg_label_parse("x,BENIGN,1,2,,", &l, why, sizeof why), BG_OK);
    assert_int_equal(l.cls, BG_LABEL_BENIGN);
    free(l.identity);
    free(l.secret_ids);
    free(l.what);
    assert_int_equal(bg_label_parse("x,WEIRD,1,2,,", &l, why, sizeof why), BG_ERR_INVALID);
    assert_int_equal(bg_label_parse("x,PLANNED,2,1,,", &l, why, sizeof why), BG_ERR_INVALID);
    assert_int_equal(bg_label_parse("x,PLANNED,1,2", &l, why, sizeof why), BG_ERR_INVALID);
    assert_int_equal(bg_label_parse(",PLANNED,1,2,,", &l, why, sizeof why), BG_ERR_INVALID);
    assert_int_equal(bg_label_parse("x,PLANNED,soon,2,,", &l, why, sizeof why), BG_ERR_INVALID);
}

/* A verdict line as replay writes it (the fields the report reads). */
static void add_v(bg_rp_set *s, const char *id, const char *who, const char *cls,
                  const char *phase, const char *action, int64_t start, int64_t end,
                  int64_t decided) {
    char line[1024];
    snprintf(line, sizeof line,
             "{\"verdict_id\":\"%s\",\"identity\":\"%s\",\"owner\":null,\"workload_class\":\"c\","
             "\"classification\":\"%s\",\"phase\":\"%s\",\"action\":\"%s\",\"severity\":50,"
             "\"window_start\":%lld,\"window_end\":%lld,\"decided_at\":%lld,\"emitted_at\":%lld,"
             "\"reasons\":[{\"code\":\"r1\",\"detector\":\"d\",\"observed\":1,\"baseline\":0,"
             "\"threshold\":1,\"score\":1}],\"envelope_id\":null,\"new_secret_ids\":[],"
             "\"new_destinations\":[],\"review_routes\":[],\"policy_version\":\"p\",\"source\":[],"
             "\"worker_version\":\"0\",\"replay\":true}",
             id, who, cls, phase, action, (long long)start, (long long)end, (long long)decided,
             (long long)decided);
    s->v = realloc(s->v, (s->n_v + 1) * sizeof *s->v);
    assert_int_equal(bg_rp_parse_verdict(line, &s->v[s->n_v]), BG_OK);
    s->n_v++;
}

static void add_r(bg_rp_set *s, const char *id, const char *who, const char *secret, int64_t at) {
    char line[512];
    snprintf(line, sizeof line,
             "{\"command_id\":\"%s\",\"verdict_id\":\"v\",\"identity\":\"%s\",\"target\":\"SECRET\","
             "\"secret_id\":\"%s\",\"reason\":\"r\",\"issued_at\":%lld,\"dry_run\":false,"
             "\"key_id\":null,\"signature\":null}",
             id, who, secret, (long long)at);
    s->r = realloc(s->r, (s->n_r + 1) * sizeof *s->r);
    assert_int_equal(bg_rp_parse_revocation(line, &s->r[s->n_r]), BG_OK);
    s->n_r++;
}

static bg_label lab(const char *who, int cls, int64_t a, int64_t b, const char *secrets) {
    return (bg_label){strdup(who), cls, a, b, strdup(secrets), strdup("t")};
}

/* The hand-computed case (slack 900 s):
 *   labels  X ANOMALOUS [1000 s, 1300 s] secret s1; U ANOMALOUS [4000 s, 4100 s];
 *           Y UNEXPECTED [2000 s, 2600 s]; Z UNEXPECTED [5000 s, 5100 s] (never found);
 *           W BENIGN [7000 s, 7100 s]
 *   bursts  X ANOMALOUS decided 1090 s (ESCALATED from UNEXPECTED at 1060 s);
 *           U ANOMALOUS decided 4300 s; V ANOMALOUS (unlabeled);
 *           Y UNEXPECTED decided 2060 s; Q UNEXPECTED (unlabeled);
 *           W UNEXPECTED (benign: tolerated, counted neither way)
 *   revocations  s1 of X (right), s9 of V (false)
 * => ANOMALOUS  recall 2/2, precision 2/3, delays {90 s, 300 s}: median 90 s, p95 300 s
 *    UNEXPECTED recall 1/2, precision 1/2 (Y tp, Q fp), delay 60 s
 *    PLANNED    undefined; 1 false revocation; 1 label missed (Z). */
static void test_scoring_by_hand(void **state) {
    (void)state;
    bg_rp_set s = {0};
    add_v(&s, "x1", "X", "UNEXPECTED", "ONSET", "THROTTLE", 1060000, 1060000, 1060000);
    add_v(&s, "x2", "X", "ANOMALOUS", "ESCALATED", "REVOKE", 1060000, 1080000, 1090000);
    add_v(&s, "x3", "X", "ANOMALOUS", "ENDED", "REVOKE", 1060000, 1200000, 1400000);
    add_v(&s, "u1", "U", "ANOMALOUS", "ONSET", "REVOKE", 4290000, 4290000, 4300000);
    add_v(&s, "v1", "V", "ANOMALOUS", "ONSET", "REVOKE", 9000000, 9000000, 9000000);
    add_v(&s, "y1", "Y", "UNEXPECTED", "ONSET", "THROTTLE", 2030000, 2030000, 2060000);
    add_v(&s, "q1", "Q", "UNEXPECTED", "ONSET", "THROTTLE", 3000000, 3000000, 3000000);
    add_v(&s, "w1", "W", "UNEXPECTED", "ONSET", "REVIEW", 7005000, 7005000, 7010000);
    add_r(&s, "c1", "X", "s1", 1090000);
    add_r(&s, "c2", "V", "s9", 9000000);
    bg_label l[5] = {lab("X", BG_CLASS_ANOMALOUS, 1000000, 1300000, "s1"),
                     lab("U", BG_CLASS_ANOMALOUS, 4000000, 4100000, ""),
                     lab("Y", BG_CLASS_UNEXPECTED, 2000000, 2600000, ""),
                     lab("Z", BG_CLASS_UNEXPECTED, 5000000, 5100000, ""),
                     lab("W", BG_LABEL_BENIGN, 7000000, 7100000, "")};
    bg_rp_burst *b;
    size_t nb;
    assert_int_equal(bg_rp_bursts(&s, &b, &nb), BG_OK);
    assert_int_equal(nb, 6);
    /* X's burst: escalated to ANOMALOUS/REVOKE, onset verdict x1 */
    assert_string_equal(b[4].identity, "X");
    assert_int_equal(b[4].cls, BG_CLASS_ANOMALOUS);
    assert_int_equal(b[4].action, BG_ACT_REVOKE);
    assert_int_equal(b[4].end, 1200000);
    assert_string_equal(b[4].onset_verdict_id, "x1");
    bg_score sc;
    bg_score_compute(&s, b, nb, l, 5, 900000, &sc);
    const bg_class_score *an = &sc.c[BG_CLASS_ANOMALOUS], *un = &sc.c[BG_CLASS_UNEXPECTED],
                         *pl = &sc.c[BG_CLASS_PLANNED];
    assert_int_equal(an->labels, 2);
    assert_int_equal(an->tp_labels, 2);
    assert_int_equal(an->detected, 3);
    assert_int_equal(an->tp_bursts, 2);
    assert_int_equal(an->fp_bursts, 1);
    assert_true(an->recall == 1.0);
    assert_true(an->precision > 0.6666 && an->precision < 0.6667);
    assert_int_equal(an->delay_median_ms, 90000);
    assert_int_equal(an->delay_p95_ms, 300000);
    assert_int_equal(un->labels, 2);
    assert_int_equal(un->tp_labels, 1);
    assert_int_equal(un->detected, 2);
    assert_int_equal(un->fp_bursts, 1);
    assert_true(un->recall == 0.5);
    assert_true(un->precision == 0.5);
    assert_int_equal(un->delay_median_ms, 60000);
    assert_int_equal(un->delay_p95_ms, 60000);
    assert_true(pl->recall < 0 && pl->precision < 0);
    assert_int_equal(pl->delay_median_ms, -1);
    assert_int_equal(sc.false_revocations, 1);
    assert_string_equal(s.r[sc.false_rev_idx[0]].secret_id, "s9");
    assert_int_equal(sc.missed_revocations, 0);
    assert_int_equal(sc.missed_labels, 1);
    assert_string_equal(l[sc.missed_idx[0]].identity, "Z");
    assert_int_equal(sc.benign_flagged, 0);

    /* the compromise's secret not revoked: a missed revocation; W flagged ANOMALOUS: counted */
    bg_rp_set s2 = {0};
    add_v(&s2, "w2", "W", "ANOMALOUS", "ONSET", "REVOKE", 7005000, 7005000, 7010000);
    add_r(&s2, "c3", "W", "sw", 7010000);
    bg_rp_burst *b2;
    size_t nb2;
    assert_int_equal(bg_rp_bursts(&s2, &b2, &nb2), BG_OK);
    bg_score_compute(&s2, b2, nb2, l, 5, 900000, &sc);
    assert_int_equal(sc.missed_revocations, 1);
    assert_string_equal(sc.missed[0], "s1 of X");
    assert_int_equal(sc.benign_flagged, 1);
    assert_int_equal(sc.false_revocations, 1);
    assert_int_equal(sc.c[BG_CLASS_ANOMALOUS].recall, 0);

    /* compare: s2 against s: W changed class; everything else of s lost */
    FILE *f = tmpfile();
    bg_compare_counts cc;
    assert_int_equal(bg_report_compare(&s2, &s, "new", "old", f, &cc), BG_OK);
    assert_int_equal(cc.gained, 0);
    assert_int_equal(cc.changed, 1);
    assert_int_equal(cc.lost, 5);
    assert_int_equal(cc.same, 0);
    rewind(f);
    char text[4096] = "";
    size_t got = fread(text, 1, sizeof text - 1, f);
    text[got] = 0;
    fclose(f);
    assert_non_null(strstr(text, "changed W onset"));
    assert_non_null(strstr(text, "UNEXPECTED/REVIEW -> ANOMALOUS/REVOKE"));
    free(b);
    free(b2);
    bg_rp_set_free(&s);
    bg_rp_set_free(&s2);
    for (int i = 0; i < 5; i++) {
        free(l[i].identity);
        free(l[i].secret_ids);
        free(l[i].what);
    }
}

static void test_malformed_lines(void **state) {
    (void)state;
    bg_rp_verdict v;
    bg_rp_revocation r;
    const char *bad[] = {"", "{", "[]", "null", "{\"verdict_id\":\"a\"}",
                         "{\"verdict_id\":\"a\",\"identity\":\"x\",\"classification\":\"WEIRD\","
                         "\"phase\":\"ONSET\",\"action\":\"ALLOW\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(bg_rp_parse_verdict(bad[i], &v), BG_ERR_MALFORMED);
        free(v.verdict_id);
        free(v.identity);
        free(v.workload_class);
        free(v.envelope_id);
        free(v.reasons);
        free(v.new_secret_ids);
        free(v.new_destinations);
        assert_int_equal(bg_rp_parse_revocation(bad[i], &r), BG_ERR_MALFORMED);
        free(r.command_id);
        free(r.verdict_id);
        free(r.identity);
        free(r.secret_id);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_label_parse),
        cmocka_unit_test(test_scoring_by_hand),
        cmocka_unit_test(test_malformed_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
