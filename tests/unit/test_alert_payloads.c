/* Alert sink (worker/alert.c) without Kafka or HTTP: a known Verdict encoded
 * with the codec, decoded to the generic JSON object, rendered in the three
 * payload formats and parsed back with jansson; filter matching; the dedup
 * set and its bound; the sinks file's errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "worker/alert.h"
#include "worker/codec.h"

static json_t *known_verdict(int classification, int action, int32_t severity, const char *owner) {
    char err[256];
    bg_codec *c;
    assert_int_equal(bg_codec_new(&c, err, sizeof err), BG_OK);
    assert_int_equal(bg_codec_add_defaults(c, err, sizeof err), BG_OK);
    bg_verdict v;
    memset(&v, 0, sizeof v);
    strcpy(v.verdict_id, "0123456789abcdef0123456789abcdef");
    v.identity = "agent-7";
    v.owner = owner;
    v.workload_class = "agent";
    v.classification = (bg_class)classification;
    v.phase = BG_PHASE_ESCALATED;
    v.action = (bg_action)action;
    v.severity = severity;
    v.window_start = 100;
    v.window_end = 200;
    v.decided_at = 150;
    v.n_reasons = 1;
    v.reasons[0] = (bg_reason){"new_secret_new_dest", "correlation", 3, 0.5, 2, 1.5};
    v.envelope_id = "env-1";
    v.n_new_secret_ids = 1;
    v.new_secret_ids[0] = "sec-1";
    v.n_new_destinations = 1;
    v.new_destinations[0] = "paste.example";
    v.n_review_routes = 1;
    v.review_routes[0] = "secops";
    v.policy_version = "p-7";
    const char *topics[] = {"nhi.usage.v1", "nhi.secrets.v1", "nhi.toolcalls.v1",
                            "nhi.envelopes.v1"};
    bg_emit_meta m = {.emitted_at = 999, .worker_version = "9.9", .topic_names = topics};
    bg_buf b = {0};
    assert_int_equal(bg_codec_encode_verdict(c, &v, &m, &b), BG_OK);
    json_t *j;
    assert_int_equal(bg_alert_verdict_json(b.data, b.len, &j), BG_OK);
    bg_buf_free(&b);
    bg_codec_free(c);
    return j;
}

static json_t *render(const bg_alert_sink *s, const json_t *v) {
    char *body;
    assert_int_equal(bg_alert_payload(s, v, &body), BG_OK);
    json_error_t je;
    json_t *p = json_loads(body, 0, &je);
    assert_non_null(p);
    free(body);
    return p;
}

static const char *gs(const json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    assert_non_null(s);
    return s;
}

static void test_json_format(void **state) {
    (void)state;
    json_t *v = known_verdict(BG_CLASS_ANOMALOUS, BG_ACT_REVOKE, 90, "team-a");
    bg_alert_sink s = {.format = BG_ALERT_JSON};
    json_t *p = render(&s, v);
    assert_string_equal(gs(p, "verdict_id"), "0123456789abcdef0123456789abcdef");
    assert_string_equal(gs(p, "identity"), "agent-7");
    assert_string_equal(gs(p, "owner"), "team-a");
    assert_string_equal(gs(p, "workload_class"), "agent");
    assert_string_equal(gs(p, "classification"), "ANOMALOUS");
    assert_string_equal(gs(p, "phase"), "ESCALATED");
    assert_string_equal(gs(p, "action"), "REVOKE");
    assert_int_equal(json_integer_value(json_object_get(p, "severity")), 90);
    assert_int_equal(json_integer_value(json_object_get(p, "window_start")), 100);
    assert_int_equal(json_integer_value(json_object_get(p, "window_end")), 200);
    assert_int_equal(json_integer_value(json_object_get(p, "decided_at")), 150);
    assert_string_equal(gs(p, "envelope_id"), "env-1");
    assert_string_equal(gs(p, "policy_version"), "p-7");
    json_t *r = json_array_get(json_object_get(p, "reasons"), 0);
    assert_non_null(r);
    assert_string_equal(gs(r, "code"), "new_secret_new_dest");
    assert_string_equal(gs(r, "detector"), "correlation");
    assert_true(json_real_value(json_object_get(r, "observed")) == 3.0);
    assert_true(json_real_value(json_object_get(r, "baseline")) == 0.5);
    assert_true(json_real_value(json_object_get(r, "threshold")) == 2.0);
    assert_true(json_real_value(json_object_get(r, "score")) == 1.5);
    assert_string_equal(json_string_value(json_array_get(json_object_get(p, "new_secret_ids"), 0)),
                        "sec-1");
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(p, "new_destinations"), 0)),
        "paste.example");
    assert_string_equal(json_string_value(json_array_get(json_object_get(p, "review_routes"), 0)),
                        "secops");
    assert_null(json_object_get(p, "emitted_at")); /* only the listed fields */
    json_decref(p);
    json_decref(v);
    /* a null owner stays null */
    v = known_verdict(BG_CLASS_ANOMALOUS, BG_ACT_REVOKE, 90, NULL);
    assert_true(json_is_null(json_object_get(v, "owner")));
    json_decref(v);
}

static void test_slack_format(void **state) {
    (void)state;
    json_t *v = known_verdict(BG_CLASS_ANOMALOUS, BG_ACT_REVOKE, 90, "team-a");
    bg_alert_sink s = {.format = BG_ALERT_SLACK};
    json_t *p = render(&s, v);
    const char *text = gs(p, "text");
    assert_non_null(strstr(text, "agent-7"));
    assert_non_null(strstr(text, "ANOMALOUS"));
    assert_non_null(strstr(text, "REVOKE"));
    json_t *blocks = json_object_get(p, "blocks");
    assert_true(json_array_size(blocks) >= 2);
    assert_string_equal(gs(json_array_get(blocks, 0), "type"), "section");
    json_t *fields = json_object_get(json_array_get(blocks, 1), "fields");
    assert_true(json_array_size(fields) >= 5);
    bool found = false;
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f) {
        assert_string_equal(gs(f, "type"), "mrkdwn");
        if (strstr(gs(f, "text"), "0123456789abcdef0123456789abcdef"))
            found = true;
    }
    assert_true(found);
    json_decref(p);
    json_decref(v);
}

static void test_pagerduty_format(void **state) {
    (void)state;
    json_t *v = known_verdict(BG_CLASS_ANOMALOUS, BG_ACT_REVOKE, 90, "team-a");
    char rk[] = "R0UTINGKEY";
    bg_alert_sink s = {.format = BG_ALERT_PAGERDUTY, .routing_key = rk};
    json_t *p = render(&s, v);
    assert_string_equal(gs(p, "routing_key"), "R0UTINGKEY");
    assert_string_equal(gs(p, "event_action"), "trigger");
    assert_string_equal(gs(p, "dedup_key"), "0123456789abcdef0123456789abcdef");
    json_t *pl = json_object_get(p, "payload");
    assert_non_null(strstr(gs(pl, "summary"), "agent-7"));
    assert_string_equal(gs(pl, "source"), "agent-7");
    assert_string_equal(gs(pl, "severity"), "critical");
    assert_string_equal(gs(json_object_get(pl, "custom_details"), "verdict_id"),
                        "0123456789abcdef0123456789abcdef");
    json_decref(p);
    json_decref(v);
}

static void test_pd_severity(void **state) {
    (void)state;
    struct {
        int cls;
        int32_t sev;
        const char *want;
    } cases[] = {{BG_CLASS_UNEXPECTED, 85, "critical"}, {BG_CLASS_UNEXPECTED, 65, "error"},
                 {BG_CLASS_UNEXPECTED, 35, "warning"},  {BG_CLASS_UNEXPECTED, 10, "info"},
                 {BG_CLASS_ANOMALOUS, 10, "error"},     {BG_CLASS_PLANNED, 95, "warning"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v = known_verdict(cases[i].cls, BG_ACT_REVIEW, cases[i].sev, NULL);
        assert_string_equal(bg_alert_pd_severity(v), cases[i].want);
        json_decref(v);
    }
}

static void test_filters(void **state) {
    (void)state;
    json_t *v = known_verdict(BG_CLASS_ANOMALOUS, BG_ACT_REVOKE, 70, "team-a");
    bg_alert_filter any = {0};
    assert_true(bg_alert_match(&any, v));
    bg_alert_filter f = {.classifications = 1 << BG_CLASS_ANOMALOUS};
    assert_true(bg_alert_match(&f, v));
    f.classifications = 1 << BG_CLASS_PLANNED | 1 << BG_CLASS_UNEXPECTED;
    assert_false(bg_alert_match(&f, v));
    f = (bg_alert_filter){.actions = 1 << BG_ACT_REVIEW};
    assert_false(bg_alert_match(&f, v));
    f.actions |= 1 << BG_ACT_REVOKE;
    assert_true(bg_alert_match(&f, v));
    f = (bg_alert_filter){.min_severity = 70};
    assert_true(bg_alert_match(&f, v));
    f.min_severity = 71;
    assert_false(bg_alert_match(&f, v));
    char o1[] = "team-b", o2[] = "team-a";
    f = (bg_alert_filter){.owners = {o1}, .n_owners = 1};
    assert_false(bg_alert_match(&f, v));
    f.owners[1] = o2;
    f.n_owners = 2;
    assert_true(bg_alert_match(&f, v));
    json_decref(v);
    /* an owner filter never matches a verdict without owner */
    v = known_verdict(BG_CLASS_ANOMALOUS, BG_ACT_REVOKE, 70, NULL);
    assert_false(bg_alert_match(&f, v));
    json_decref(v);
}

static void test_dedup_bound(void **state) {
    (void)state;
    bg_alert_dedup *d;
    assert_int_equal(bg_alert_dedup_new(0, &d), BG_ERR_INVALID);
    assert_int_equal(bg_alert_dedup_new(1000, &d), BG_OK);
    char id[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "v-%d", i);
        assert_false(bg_alert_dedup_has(d, id));
        assert_int_equal(bg_alert_dedup_add(d, id), BG_OK);
        assert_true(bg_alert_dedup_has(d, id));
        assert_int_equal(bg_alert_dedup_add(d, id), BG_OK); /* again: no-op */
        assert_true(bg_alert_dedup_size(d) <= 1000);
    }
    assert_int_equal(bg_alert_dedup_size(d), 1000);
    /* exactly the last 1000 are remembered */
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "v-%d", i);
        assert_int_equal(bg_alert_dedup_has(d, id), i >= 4000);
    }
    bg_alert_dedup_free(d);
    bg_alert_dedup_free(NULL);
}

static bg_err load_text(const char *text, bg_alert_sinks *s, char *err, size_t errsz) {
    char path[] = "/tmp/bg-alert-sinks-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    bg_err e = bg_alert_sinks_load(path, s, err, errsz);
    unlink(path);
    return e;
}

static void test_sinks_file(void **state) {
    (void)state;
    char err[512];
    bg_alert_sinks s;
    assert_int_equal(load_text("sinks:\n"
                               "  - name: a\n"
                               "    url: http://127.0.0.1:1/x\n"
                               "    filters:\n"
                               "      classifications: [ANOMALOUS, UNEXPECTED]\n"
                               "      actions: [REVOKE]\n"
                               "      min_severity: 40\n"
                               "      owners: [team-a]\n"
                               "    timeout: 2s\n"
                               "    max_attempts: 3\n",
                               &s, err, sizeof err),
                     BG_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.sinks[0].name, "a");
    assert_int_equal(s.sinks[0].format, BG_ALERT_JSON);
    assert_int_equal(s.sinks[0].timeout_ms, 2000);
    assert_int_equal(s.sinks[0].max_attempts, 3);
    assert_int_equal(s.sinks[0].filter.classifications,
                     1 << BG_CLASS_ANOMALOUS | 1 << BG_CLASS_UNEXPECTED);
    assert_int_equal(s.sinks[0].filter.actions, 1 << BG_ACT_REVOKE);
    assert_int_equal(s.sinks[0].filter.min_severity, 40);
    assert_int_equal(s.sinks[0].filter.n_owners, 1);
    bg_alert_sinks_free(&s);

    struct {
        const char *text, *want;
    } bad[] = {
        {"sinks:\n  - name: a\n    url: http://h/\n    colour: red\n", ":4:5: "},
        {"sinks:\n  - name: a\n    url: ftp://h/\n", "not an http"},
        {"sinks:\n  - name: a\n    url: http://h/\n    format: teams\n", "format 'teams'"},
        {"sinks:\n  - name: a\n    url: http://h/\n    format: pagerduty\n", "routing_key_file"},
        {"sinks:\n  - name: a\n    url: http://h/\n    filters: {actions: [NUKE]}\n", "NUKE"},
        {"sinks:\n  - name: a\n    url: http://h/\n  - name: a\n    url: http://h/\n",
         "duplicate sink"},
        {"sinks: []\n", "empty"},
        {"sink:\n  - name: a\n", "sink"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(load_text(bad[i].text, &s, err, sizeof err), BG_ERR_CONFIG);
        if (!strstr(err, bad[i].want))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].want);
        assert_non_null(strstr(err, "/tmp/bg-alert-sinks-"));
    }
}

static void test_bad_input(void **state) {
    (void)state;
    json_t *j;
    uint8_t junk[] = {0, 0, 0, 0, 3, 0xff, 0xff, 0xff};
    assert_int_equal(bg_alert_verdict_json(junk, 3, &j), BG_ERR_TRUNCATED);
    junk[0] = 1;
    assert_int_equal(bg_alert_verdict_json(junk, sizeof junk, &j), BG_ERR_BAD_MAGIC);
    junk[0] = 0;
    assert_int_not_equal(bg_alert_verdict_json(junk, sizeof junk, &j), BG_OK);
    assert_null(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_format),      cmocka_unit_test(test_slack_format),
        cmocka_unit_test(test_pagerduty_format), cmocka_unit_test(test_pd_severity),
        cmocka_unit_test(test_filters),          cmocka_unit_test(test_dedup_bound),
        cmocka_unit_test(test_sinks_file),       cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
