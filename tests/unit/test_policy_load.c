/* Unit tests for worker/policy_load.c: the policy YAML format, its error
 * messages (every one must name the right FILE:LINE:COL), and the lookups of
 * detectors/policy.c on a loaded policy (class resolution, envelope matching).
 * Run under ASan (-DBG_SANITIZE=ON) these also prove the error paths free
 * everything. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "worker/policy_load.h"

static bg_str S(const char *s) {
    bg_str r = {s, s ? (uint32_t)strlen(s) : 0};
    return r;
}
static const bg_str NONE = {NULL, 0};

/* 2026-12-01T00:00:00Z in ms */
#define T0 INT64_C(1796083200000)
#define HOUR INT64_C(3600000)

static const char full_policy[] =
    "windows:\n"
    "  bucket: 30s\n"
    "  correlation: 10m\n"
    "  learning_period: 2h\n"
    "  allowed_lateness: 500ms\n"
    "  quiet_buckets: 3\n"
    "default_class: general\n"
    "classes:\n"
    "  - name: ci\n"
    "    match:\n"
    "      identity_prefix: \"spiffe://prod/ci/\"\n"
    "      owner: team-ci\n"
    "    limits:\n"
    "      api_calls_per_min: 600\n"
    "      tokens_per_min: 200000\n"
    "      cost_micros_per_hour: 5000000\n"
    "      secrets_per_hour: 20\n"
    "    unexpected_action: THROTTLE\n"
    "    review_routes: [platform, \"app:{owner}\"]\n"
    "    enforce: true\n"
    "  - name: agent\n"
    "    match: {identity_prefix: \"spiffe://prod/agents/\"}\n"
    "    limits: {tokens_per_min: 400000}\n"
    "    enforce: false\n"
    "  - name: etl\n"
    "    match: {owner: data-eng}\n"
    "  - name: general\n"
    "  - name: manual\n"
    "envelopes:\n"
    "  - id: chg-1042\n"
    "    identity: spiffe://prod/etl/nightly\n"
    "    workload_class: etl\n"
    "    owner: data-eng\n"
    "    not_before: 2026-12-01T00:00:00Z\n"
    "    not_after: 2026-12-01T06:00:00Z\n"
    "    limits: {api_calls_per_min: 5000, tokens_per_min: 1000000, cost_micros: 90000000,\n"
    "             new_secrets: 2, new_destinations: 3}\n"
    "    allowed_destinations: [api.openai.com, s3.eu-west-1.amazonaws.com]\n"
    "    approved_by: alice\n"
    "    ticket: CHG-1042\n"
    "  - id: old\n"
    "    owner: data-eng\n"
    "    not_before: 1796083200000\n"
    "    not_after: 2026-12-01T03:00:00+02:00\n"
    "    approved_by: bob\n"
    "    revoked: true\n"
    "  - id: agents-week\n"
    "    workload_class: agent\n"
    "    not_before: 2026-12-01T00:00:00.250Z\n"
    "    not_after: 2026-12-08T00:00:00Z\n"
    "    approved_by: carol\n";

static bg_err load(const char *text, bg_policy *p, char *err, size_t errsz) {
    return bg_policy_load_text("p.yaml", text, strlen(text), p, err, errsz);
}

/* The text must fail with BG_ERR_CONFIG, at `pos` ("p.yaml:L:C:"), saying `what`. */
static void expect_error(const char *text, const char *pos, const char *what) {
    bg_policy p;
    char err[512];
    bg_err e = load(text, &p, err, sizeof err);
    if (e == BG_OK)
        bg_policy_free(&p);
    if (e != BG_ERR_CONFIG || strncmp(err, pos, strlen(pos)) != 0 || !strstr(err, what))
        fail_msg("expected '%s ... %s', got %d '%s'\n--- input:\n%s", pos, what, (int)e, err,
                 text);
    /* on failure the output is freed and empty */
    assert_int_equal(p.n_classes, 0);
    assert_null(p.envelopes);
}

static void test_full_policy(void **state) {
    (void)state;
    bg_policy p;
    char err[512];
    assert_int_equal(load(full_policy, &p, err, sizeof err), BG_OK);

    assert_int_equal(p.bucket_ms, 30000);
    assert_int_equal(p.correlation_window_ms, 600000);
    assert_int_equal(p.learning_period_ms, 7200000);
    assert_int_equal(p.allowed_lateness_ms, 500);
    assert_int_equal(p.quiet_buckets, 3);

    assert_int_equal(p.n_classes, 5); /* "general" is named, no built-in appended */
    assert_string_equal(p.classes[p.default_class].name, "general");
    const bg_class_policy *ci = &p.classes[0];
    assert_string_equal(ci->name, "ci");
    assert_string_equal(ci->match_identity_prefix, "spiffe://prod/ci/");
    assert_string_equal(ci->match_owner, "team-ci");
    assert_int_equal(ci->max_api_calls_per_min, 600);
    assert_int_equal(ci->max_tokens_per_min, 200000);
    assert_int_equal(ci->max_cost_micros_per_hour, 5000000);
    assert_int_equal(ci->max_secrets_per_hour, 20);
    assert_int_equal(ci->unexpected_action, BG_ACT_THROTTLE);
    assert_int_equal(ci->n_review_routes, 2);
    assert_string_equal(ci->review_routes[0], "platform");
    assert_string_equal(ci->review_routes[1], "app:{owner}");
    assert_true(ci->enforce);

    const bg_class_policy *agent = &p.classes[1];
    assert_null(agent->match_owner);
    assert_int_equal(agent->max_tokens_per_min, 400000);
    assert_int_equal(agent->max_api_calls_per_min, -1); /* missing limit */
    assert_int_equal(agent->max_cost_micros_per_hour, -1);
    assert_int_equal(agent->unexpected_action, BG_ACT_REVIEW); /* default action */
    assert_false(agent->enforce);
    assert_int_equal(agent->n_review_routes, 0);

    assert_int_equal(p.n_envelopes, 3);
    const bg_envelope *e = &p.envelopes[0];
    assert_string_equal(e->envelope_id, "chg-1042");
    assert_string_equal(e->identity, "spiffe://prod/etl/nightly");
    assert_string_equal(e->workload_class, "etl");
    assert_string_equal(e->owner, "data-eng");
    assert_int_equal(e->not_before, T0);
    assert_int_equal(e->not_after, T0 + 6 * HOUR);
    assert_int_equal(e->max_api_calls_per_min, 5000);
    assert_int_equal(e->max_tokens_per_min, 1000000);
    assert_int_equal(e->max_cost_micros, 90000000);
    assert_int_equal(e->max_new_secrets, 2);
    assert_int_equal(e->max_new_destinations, 3);
    assert_int_equal(e->n_allowed_destinations, 2);
    assert_string_equal(e->allowed_destinations[1], "s3.eu-west-1.amazonaws.com");
    assert_string_equal(e->approved_by, "alice");
    assert_string_equal(e->ticket, "CHG-1042");
    assert_false(e->revoked);

    const bg_envelope *old = &p.envelopes[1];
    assert_int_equal(old->not_before, T0);           /* epoch ms */
    assert_int_equal(old->not_after, T0 + HOUR);     /* 03:00+02:00 = 01:00Z */
    assert_int_equal(old->max_tokens_per_min, -1);   /* not raised */
    assert_null(old->ticket);
    assert_null(old->allowed_destinations);
    assert_true(old->revoked);
    assert_int_equal(p.envelopes[2].not_before, T0 + 250); /* fractional seconds */

    /* version: first 16 hex digits of XXH3-64 of the bytes */
    char want[17];
    snprintf(want, sizeof want, "%016llx",
             (unsigned long long)XXH3_64bits(full_policy, strlen(full_policy)));
    assert_string_equal(p.version, want);
    bg_policy_free(&p);
}

static void test_version_changes_with_text(void **state) {
    (void)state;
    bg_policy a, b;
    char err[256];
    assert_int_equal(load("windows: {bucket: 60s}\n", &a, err, sizeof err), BG_OK);
    assert_int_equal(load("windows: {bucket: 60s}  \n", &b, err, sizeof err), BG_OK);
    assert_int_equal(strlen(a.version), 16);
    assert_string_not_equal(a.version, b.version);
    bg_policy_free(&a);
    bg_policy_free(&b);
}

static void test_empty_policy_is_default(void **state) {
    (void)state;
    bg_policy p, d;
    char err[256];
    assert_int_equal(bg_policy_load_text("e.yaml", "", 0, &p, err, sizeof err), BG_OK);
    assert_int_equal(bg_policy_init_default(&d), BG_OK);
    assert_int_equal(p.n_classes, 1);
    assert_string_equal(p.classes[0].name, "default");
    assert_int_equal(p.classes[0].max_api_calls_per_min, -1);
    assert_int_equal(p.classes[0].unexpected_action, d.classes[0].unexpected_action);
    assert_int_equal(p.bucket_ms, d.bucket_ms);
    assert_int_equal(p.correlation_window_ms, d.correlation_window_ms);
    assert_int_equal(p.learning_period_ms, d.learning_period_ms);
    assert_int_equal(p.allowed_lateness_ms, d.allowed_lateness_ms);
    assert_int_equal(p.quiet_buckets, d.quiet_buckets);
    assert_int_equal(p.n_envelopes, 0);
    bg_policy_free(&p);
    bg_policy_free(&d);
    /* a document that is only a comment is empty too */
    assert_int_equal(load("# nothing yet\n", &p, err, sizeof err), BG_OK);
    assert_int_equal(p.n_classes, 1);
    bg_policy_free(&p);
}

static void test_default_class_resolution(void **state) {
    (void)state;
    bg_policy p;
    char err[256];
    /* a class named "default" is the default without default_class */
    assert_int_equal(load("classes:\n  - name: a\n  - name: default\n", &p, err, sizeof err),
                     BG_OK);
    assert_int_equal(p.n_classes, 2);
    assert_int_equal(p.default_class, 1);
    bg_policy_free(&p);
    /* otherwise a built-in "default" with no limits is appended */
    assert_int_equal(
        load("classes:\n  - name: a\n    limits: {api_calls_per_min: 5}\n", &p, err, sizeof err),
        BG_OK);
    assert_int_equal(p.n_classes, 2);
    assert_int_equal(p.default_class, 1);
    assert_string_equal(p.classes[1].name, "default");
    assert_int_equal(p.classes[1].max_api_calls_per_min, -1);
    assert_int_equal(p.classes[1].max_secrets_per_hour, -1);
    bg_policy_free(&p);
    /* an envelope may name the built-in default class */
    assert_int_equal(load("envelopes:\n  - {id: e, workload_class: default, not_before: 1,\n"
                          "     not_after: 2, approved_by: x}\n",
                          &p, err, sizeof err),
                     BG_OK);
    bg_policy_free(&p);
}

static void test_class_for(void **state) {
    (void)state;
    bg_policy p;
    char err[512];
    assert_int_equal(load(full_policy, &p, err, sizeof err), BG_OK);
    /* explicit workload_class naming a class wins over selectors */
    assert_string_equal(
        bg_policy_class_for(&p, S("spiffe://prod/ci/x"), S("team-ci"), S("manual"))->name,
        "manual");
    /* prefix + owner both required for ci */
    assert_string_equal(bg_policy_class_for(&p, S("spiffe://prod/ci/x"), S("team-ci"), NONE)->name,
                        "ci");
    assert_string_equal(bg_policy_class_for(&p, S("spiffe://prod/ci/x"), S("other"), NONE)->name,
                        "general");
    /* prefix only */
    assert_string_equal(bg_policy_class_for(&p, S("spiffe://prod/agents/a1"), NONE, NONE)->name,
                        "agent");
    /* owner only */
    assert_string_equal(bg_policy_class_for(&p, S("svc-x"), S("data-eng"), NONE)->name, "etl");
    /* an unknown explicit class falls back to selectors, then the default */
    assert_string_equal(bg_policy_class_for(&p, S("svc-x"), S("data-eng"), S("nope"))->name,
                        "etl");
    assert_string_equal(bg_policy_class_for(&p, S("svc-y"), NONE, S("nope"))->name, "general");
    /* a class without selectors matches only explicitly */
    assert_string_equal(bg_policy_class_for(&p, S("manual"), S("manual"), NONE)->name, "general");
    bg_policy_free(&p);
}

static void test_envelope_for(void **state) {
    (void)state;
    bg_policy p;
    char err[512];
    assert_int_equal(load(full_policy, &p, err, sizeof err), BG_OK);
    bg_str id = S("spiffe://prod/etl/nightly"), owner = S("data-eng");
    const bg_envelope *e;
    /* not_before inclusive, not_after exclusive */
    assert_null(bg_policy_envelope_for(&p, id, "etl", owner, T0 - 1));
    e = bg_policy_envelope_for(&p, id, "etl", owner, T0);
    assert_non_null(e);
    assert_string_equal(e->envelope_id, "chg-1042");
    e = bg_policy_envelope_for(&p, id, "etl", owner, T0 + 6 * HOUR - 1);
    assert_non_null(e);
    assert_null(bg_policy_envelope_for(&p, id, "etl", owner, T0 + 6 * HOUR));
    /* every selector must match */
    assert_null(bg_policy_envelope_for(&p, S("spiffe://prod/etl/other"), "etl", owner, T0));
    assert_null(bg_policy_envelope_for(&p, id, "ci", owner, T0));
    assert_null(bg_policy_envelope_for(&p, id, "etl", S("someone"), T0));
    /* "old" would match any data-eng identity but is revoked */
    assert_null(bg_policy_envelope_for(&p, S("svc-z"), "etl", owner, T0 + 10));
    /* class-only envelope, from .250 */
    assert_null(bg_policy_envelope_for(&p, S("a1"), "agent", NONE, T0 + 249));
    e = bg_policy_envelope_for(&p, S("a1"), "agent", NONE, T0 + 250);
    assert_non_null(e);
    assert_string_equal(e->envelope_id, "agents-week");
    bg_policy_free(&p);
}

static void test_example_policy(void **state) {
    (void)state;
    const char *src = getenv("BG_SOURCE_DIR");
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/examples/policy.yaml", src ? src : ".");
    bg_policy p;
    bg_err e = bg_policy_load(path, &p, err, sizeof err);
    if (e != BG_OK)
        fail_msg("%s", err);
    bg_str none = {NULL, 0};
    const char *want[] = {"ci", "agent", "etl", "default"};
    assert_int_equal(p.n_classes, 4);
    for (uint32_t i = 0; i < 4; i++)
        assert_string_equal(p.classes[i].name, want[i]);
    assert_string_equal(p.classes[p.default_class].name, "default");
    assert_int_equal(p.n_envelopes, 1);
    assert_string_equal(
        bg_policy_class_for(&p, S("spiffe://prod/ci/build-7"), none, none)->name, "ci");
    /* the printout is readable words, mentioning every class and envelope */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    bg_policy_print(&p, f);
    fclose(f);
    assert_non_null(strstr(buf, "class ci"));
    assert_non_null(strstr(buf, "class default (the default class)"));
    assert_non_null(strstr(buf, "no limit"));
    assert_non_null(strstr(buf, "dry run"));
    assert_non_null(strstr(buf, "envelope chg-1042"));
    assert_non_null(strstr(buf, "2026-12-01T06:00:00Z"));
    assert_non_null(strstr(buf, "approved by alice, ticket CHG-1042"));
    assert_non_null(strstr(buf, "$90.00"));
    free(buf);
    bg_policy_free(&p);
}

static void test_missing_file(void **state) {
    (void)state;
    bg_policy p;
    char err[256];
    assert_int_equal(bg_policy_load("/nonexistent/policy.yaml", &p, err, sizeof err), BG_ERR_IO);
    assert_string_equal(err,
                        "cannot read policy '/nonexistent/policy.yaml': No such file or directory");
}

static void test_syntax_errors(void **state) {
    (void)state;
    expect_error("classes:\n  - name: a\n   bad: [\n", "p.yaml:3:", "YAML syntax error");
    expect_error("windows: {bucket: 60s\n", "p.yaml:2:", "YAML syntax error");
    expect_error("a: 1\n---\nb: 2\n", "p.yaml:3:1:", "only one YAML document");
    expect_error("windows: *nope\n", "p.yaml:1:", "YAML syntax error");
    static const char nul[] = "windows:\n  bucket: 6\0s\n";
    bg_policy p;
    char err[256];
    assert_int_equal(bg_policy_load_text("p.yaml", nul, sizeof nul - 1, &p, err, sizeof err),
                     BG_ERR_CONFIG);
    assert_non_null(strstr(err, "p.yaml:2:"));
}

static void test_structure_errors(void **state) {
    (void)state;
    expect_error("classes: []\nwindow: {}\n", "p.yaml:2:1:", "unknown key 'window'");
    expect_error("- a\n", "p.yaml:1:1:", "expected a mapping");
    expect_error("classes: ci\n", "p.yaml:1:10:", "expected a list");
    expect_error("classes:\n  - name: a\n    limit: {}\n", "p.yaml:3:5:", "unknown key 'limit'");
    expect_error("classes:\n  - name: a\n    limits: {api_calls: 1}\n", "p.yaml:3:14:",
                 "unknown key 'api_calls'");
    expect_error("classes:\n  - name: a\n    match: {prefix: x}\n", "p.yaml:3:13:",
                 "unknown key 'prefix'");
    expect_error("windows: {bucket: 60s, bucket: 30s}\n", "p.yaml:1:24:",
                 "duplicate key 'bucket'");
    expect_error("classes:\n  - name: a\n    name: b\n", "p.yaml:3:5:", "duplicate key 'name'");
    expect_error("classes:\n  - name: [a]\n", "p.yaml:2:11:", "expected a single value");
    expect_error("classes:\n  - name: a\n    review_routes: x\n", "p.yaml:3:20:",
                 "expected a list");
    expect_error("envelopes:\n  - id: e\n    owner: o\n    not_before: 1\n    not_after: 2\n"
                 "    approved_by: x\n    expires: 3\n",
                 "p.yaml:7:5:", "unknown key 'expires'");
}

/* The detection keys of a class and the destination lists. */
static void test_detection_keys(void **state) {
    (void)state;
    bg_policy p;
    char err[256];
    const char *text =
        "classes:\n  - name: a\n    limits:\n      cost_micros_per_day: 9000\n"
        "      approval_cost_micros_per_hour: 700\n      new_destinations_per_hour: 4\n"
        "      identity_grants_per_hour: 3\n      owner_grants_per_hour: 12\n"
        "      secret_ttl_seconds: 3600\n    sensitivity: 2.5\n    sprawl_action: REVOKE_IDENTITY\n"
        "  - name: b\n"
        "destinations:\n  trusted: [good.example, also.good]\n  known_bad: [bad.example]\n"
        "  categories:\n    - {name: paste, risk: 0.2, destinations: [paste.example]}\n"
        "    - {name: exfil, risk: 0.5, destinations: [paste.example, drop.example]}\n";
    assert_int_equal(load(text, &p, err, sizeof err), BG_OK);
    const bg_class_policy *a = &p.classes[0], *b = &p.classes[1];
    assert_int_equal(a->max_cost_micros_per_day, 9000);
    assert_int_equal(a->approval_cost_micros_per_hour, 700);
    assert_int_equal(a->max_new_destinations_per_hour, 4);
    assert_int_equal(a->max_identity_grants_per_hour, 3);
    assert_int_equal(a->max_owner_grants_per_hour, 12);
    assert_int_equal(a->max_secret_ttl_seconds, 3600);
    assert_true(a->sensitivity == 2.5);
    assert_true(a->sprawl_revokes_identity);
    /* unset: no limit, default sensitivity, sprawl reviewed */
    assert_int_equal(b->max_cost_micros_per_day, -1);
    assert_int_equal(b->approval_cost_micros_per_hour, -1);
    assert_int_equal(b->max_new_destinations_per_hour, -1);
    assert_true(b->sensitivity == 1.0);
    assert_false(b->sprawl_revokes_identity);
    assert_int_equal(p.destinations.n_trusted, 2);
    assert_string_equal(p.destinations.trusted[1], "also.good");
    assert_int_equal(p.destinations.n_known_bad, 1);
    assert_true(bg_policy_dest_listed(p.destinations.known_bad, 1,
                                      (bg_str){"bad.example", 11}));
    assert_false(bg_policy_dest_listed(p.destinations.known_bad, 1, (bg_str){"bad.exampl", 10}));
    assert_int_equal(p.destinations.n_categories, 2);
    const bg_dest_category *cat = bg_policy_dest_category(&p, (bg_str){"paste.example", 13});
    assert_non_null(cat);
    assert_string_equal(cat->name, "exfil"); /* the riskiest category wins */
    assert_null(bg_policy_dest_category(&p, (bg_str){"else.example", 12}));
    bg_policy_free(&p);
    /* glob selectors */
    assert_int_equal(load("classes:\n  - name: g\n    match: {identity_glob: \"spiffe://*/ci-runner-[0-9]*\"}\n",
                          &p, err, sizeof err),
                     BG_OK);
    assert_string_equal(bg_policy_class_for(&p, (bg_str){"spiffe://prod/x/ci-runner-7", 27},
                                            (bg_str){NULL, 0}, (bg_str){NULL, 0})->name,
                        "g");
    assert_string_equal(bg_policy_class_for(&p, (bg_str){"spiffe://prod/ci-runner-x", 25},
                                            (bg_str){NULL, 0}, (bg_str){NULL, 0})->name,
                        "default");
    bg_policy_free(&p);
    expect_error("classes:\n  - name: a\n    sprawl_action: PANIC\n", "p.yaml:3:20:",
                 "REVIEW or REVOKE_IDENTITY");
    expect_error("classes:\n  - name: a\n    sensitivity: 9\n", "p.yaml:3:18:", "0.25..4");
    expect_error("destinations:\n  trusted: [a]\n  knwon_bad: [b]\n", "p.yaml:3:3:",
                 "knwon_bad");
    expect_error("destinations:\n  known_bad: bad.example\n", "p.yaml:2:14:", "expected a list");
    expect_error("destinations:\n  categories:\n    - {name: x, risk: 2}\n", "p.yaml:3:23:",
                 "0..1");
    expect_error("destinations:\n  categories:\n    - {risk: 0.1}\n", "p.yaml:3:7:",
                 "needs a name");
}

/* persistent_destination: defaults, values, off, and its errors. */
static void test_persistent_destination(void **state) {
    (void)state;
    bg_policy p;
    char err[256];
    const char *text =
        "classes:\n  - name: a\n    persistent_destination: {visits: 5, spread: 45m, "
        "window: 6h}\n  - name: b\n  - name: c\n    persistent_destination:\n"
        "      visits: 0\n";
    assert_int_equal(load(text, &p, err, sizeof err), BG_OK);
    assert_int_equal(p.classes[0].persist_visits, 5);
    assert_int_equal(p.classes[0].persist_spread_ms, 45 * 60000);
    assert_int_equal(p.classes[0].persist_window_ms, 6 * 3600000LL);
    assert_int_equal(p.classes[1].persist_visits, 3); /* defaults */
    assert_int_equal(p.classes[1].persist_spread_ms, 20 * 60000);
    assert_int_equal(p.classes[1].persist_window_ms, 2 * 3600000LL);
    assert_int_equal(p.classes[2].persist_visits, 0); /* off */
    bg_policy_free(&p);
    expect_error("classes:\n  - name: a\n    persistent_destination: {visits: -1}\n",
                 "p.yaml:3:38:", "0..1000");
    expect_error("classes:\n  - name: a\n    persistent_destination: {spread: 3h}\n",
                 "p.yaml:3:29:", "shorter than its window");
    expect_error("classes:\n  - name: a\n    persistent_destination: {visit: 3}\n",
                 "p.yaml:3:30:", "visit");
    expect_error("classes:\n  - name: a\n    persistent_destination: {window: 10s}\n",
                 "p.yaml:3:38:", "out of range");
}

static void test_class_errors(void **state) {
    (void)state;
    expect_error("classes:\n  - match: {owner: x}\n", "p.yaml:2:5:", "needs a name");
    expect_error("classes:\n  - name: \"\"\n", "p.yaml:2:11:", "must not be empty");
    expect_error("classes:\n  - name: a\n  - name: b\n  - name: a\n", "p.yaml:4:11:",
                 "class name 'a' is used twice");
    expect_error("classes:\n  - name: a\n    unexpected_action: REVOKE\n", "p.yaml:3:24:",
                 "must be THROTTLE or REVIEW, not 'REVOKE'");
    expect_error("classes:\n  - name: a\n    unexpected_action: ALLOW\n", "p.yaml:3:24:",
                 "THROTTLE or REVIEW");
    expect_error("classes:\n  - name: a\n    limits:\n      tokens_per_min: -5\n", "p.yaml:4:23:",
                 "cannot be negative");
    expect_error("classes:\n  - name: a\n    limits:\n      tokens_per_min: lots\n",
                 "p.yaml:4:23:", "expected a whole number");
    expect_error("classes:\n  - name: a\n    limits:\n      tokens_per_min: 99999999999999999999\n",
                 "p.yaml:4:23:", "expected a whole number");
    expect_error("classes:\n  - name: a\n    enforce: maybe\n", "p.yaml:3:14:",
                 "expected true or false");
    expect_error("classes:\n  - name: a\n    review_routes: [a, b, c, d, e, f, g, h, i]\n",
                 "p.yaml:3:45:", "more than 8");
    expect_error("classes:\n  - name: a\n    review_routes: [a, \"\"]\n", "p.yaml:3:24:",
                 "must not be empty");
    expect_error("default_class: nope\nclasses:\n  - name: a\n", "p.yaml:1:16:",
                 "default_class 'nope' is not one of the classes");
    /* review_routes exactly at the cap is fine */
    bg_policy p;
    char err[256];
    assert_int_equal(
        load("classes:\n  - name: a\n    review_routes: [a, b, c, d, e, f, g, h]\n", &p, err,
             sizeof err),
        BG_OK);
    assert_int_equal(p.classes[0].n_review_routes, BG_POLICY_MAX_ROUTES);
    bg_policy_free(&p);
}

static void test_too_many_classes(void **state) {
    (void)state;
    char text[8192];
    size_t off = (size_t)snprintf(text, sizeof text, "classes:\n");
    for (unsigned i = 0; i < BG_POLICY_MAX_CLASSES; i++)
        off += (size_t)snprintf(text + off, sizeof text - off, "  - name: c%u\n", i);
    /* 64 classes and none is "default": no room for the built-in one */
    expect_error(text, "p.yaml:2:3:", "none is the default");
    char text2[8192 + 32];
    snprintf(text2, sizeof text2, "default_class: c3\n%s", text);
    bg_policy p;
    char err[256];
    assert_int_equal(load(text2, &p, err, sizeof err), BG_OK);
    assert_int_equal(p.n_classes, BG_POLICY_MAX_CLASSES);
    bg_policy_free(&p);
    snprintf(text + off, sizeof text - off, "  - name: one_more\n");
    expect_error(text, "p.yaml:66:5:", "more than 64 classes");
}

static void test_window_errors(void **state) {
    (void)state;
    expect_error("windows:\n  bucket: 60 s\n", "p.yaml:2:11:", "expected a duration");
    expect_error("windows:\n  bucket: 1w\n", "p.yaml:2:11:", "expected a duration");
    expect_error("windows:\n  bucket: 0\n", "p.yaml:2:11:", "out of range");
    expect_error("windows:\n  bucket: 2h\n", "p.yaml:2:11:", "out of range (1s..1h)");
    expect_error("windows:\n  correlation: -1s\n", "p.yaml:2:16:", "expected a duration");
    expect_error("windows:\n  quiet_buckets: 0\n", "p.yaml:2:18:", "quiet_buckets");
    expect_error("windows:\n  learning_period: 99999999999999999999d\n", "p.yaml:2:20:",
                 "expected a duration");
    bg_policy p;
    char err[256];
    assert_int_equal(load("windows: {bucket: 1d}\n", &p, err, sizeof err), BG_ERR_CONFIG);
    assert_int_equal(load("windows: {bucket: 1h, correlation: 1d, learning_period: 15m,\n"
                          "          allowed_lateness: 0, quiet_buckets: 1}\n",
                          &p, err, sizeof err),
                     BG_OK);
    assert_int_equal(p.bucket_ms, 3600000);
    assert_int_equal(p.correlation_window_ms, 86400000);
    assert_int_equal(p.learning_period_ms, 900000);
    assert_int_equal(p.allowed_lateness_ms, 0);
    bg_policy_free(&p);
}

#define ENV_HEAD "classes:\n  - name: etl\nenvelopes:\n  - id: e1\n"

static void test_envelope_errors(void **state) {
    (void)state;
    expect_error(ENV_HEAD "    not_before: 1\n    not_after: 2\n    approved_by: x\n",
                 "p.yaml:4:5:", "at least one selector");
    expect_error(ENV_HEAD "    workload_class: nope\n    not_before: 1\n    not_after: 2\n"
                          "    approved_by: x\n",
                 "p.yaml:5:21:", "workload_class 'nope' is not one of the classes");
    expect_error(ENV_HEAD "    owner: o\n    not_after: 2\n    approved_by: x\n", "p.yaml:4:5:",
                 "not_before is required");
    expect_error(ENV_HEAD "    owner: o\n    not_before: 1\n    approved_by: x\n", "p.yaml:4:5:",
                 "not_after is required");
    expect_error(ENV_HEAD "    owner: o\n    not_before: 1\n    not_after: 2\n", "p.yaml:4:5:",
                 "approved_by is required");
    expect_error(ENV_HEAD "    owner: o\n    not_before: 2026-12-01T06:00:00Z\n"
                          "    not_after: 2026-12-01T06:00:00Z\n    approved_by: x\n",
                 "p.yaml:7:16:", "not_after must be later than not_before");
    expect_error(ENV_HEAD "    owner: o\n    not_before: 2026-12-01T08:00:00+02:00\n"
                          "    not_after: 2026-12-01T06:00:00Z\n    approved_by: x\n",
                 "p.yaml:7:16:", "later than not_before");
    expect_error(ENV_HEAD "    owner: o\n    not_before: 2026-02-29T00:00:00Z\n"
                          "    not_after: 2026-12-01T06:00:00Z\n    approved_by: x\n",
                 "p.yaml:6:17:", "expected an ISO-8601 time");
    expect_error(ENV_HEAD "    owner: o\n    not_before: 2026-12-01T00:00:00\n"
                          "    not_after: 2026-12-01T06:00:00Z\n    approved_by: x\n",
                 "p.yaml:6:17:", "ISO-8601");
    expect_error(ENV_HEAD "    owner: o\n    not_before: 2026-12-01 00:00:00Z\n"
                          "    not_after: 2026-12-01T06:00:00Z\n    approved_by: x\n",
                 "p.yaml:6:17:", "ISO-8601");
    expect_error(ENV_HEAD "    owner: o\n    not_before: 2026-12-01T24:00:00Z\n"
                          "    not_after: 2026-12-02T06:00:00Z\n    approved_by: x\n",
                 "p.yaml:6:17:", "ISO-8601");
    expect_error(ENV_HEAD "    owner: o\n    not_before: -5\n    not_after: 2\n"
                          "    approved_by: x\n",
                 "p.yaml:6:17:", "ISO-8601");
    expect_error(ENV_HEAD "    owner: o\n    not_before: 1\n    not_after: 2\n"
                          "    approved_by: x\n    limits: {new_secrets: -1}\n",
                 "p.yaml:9:27:", "cannot be negative");
    expect_error(ENV_HEAD "    owner: o\n    not_before: 1\n    not_after: 2\n"
                          "    approved_by: x\n    limits: {cost_micros_per_hour: 1}\n",
                 "p.yaml:9:14:", "unknown key 'cost_micros_per_hour'");
    expect_error(ENV_HEAD "    owner: o\n    not_before: 1\n    not_after: 2\n"
                          "    approved_by: x\n    revoked: perhaps\n",
                 "p.yaml:9:14:", "expected true or false");
    expect_error(ENV_HEAD "    owner: o\n    not_before: 1\n    not_after: 2\n"
                          "    approved_by: x\n"
                          "  - id: e1\n    owner: o\n    not_before: 1\n    not_after: 2\n"
                          "    approved_by: x\n",
                 "p.yaml:9:9:", "envelope id 'e1' is used twice");
    expect_error("envelopes:\n  - owner: o\n", "p.yaml:2:5:", "needs an id");
    expect_error("envelopes: {id: x}\n", "p.yaml:1:12:", "expected a list");
}

static void test_times(void **state) {
    (void)state;
    bg_policy p;
    char err[256];
    assert_int_equal(load("envelopes:\n  - {id: a, owner: o, not_before: 2024-02-29T23:59:59.999Z,"
                          " not_after: 2024-03-01T01:00:00+01:00, approved_by: x}\n"
                          "  - {id: b, owner: o, not_before: 1970-01-01T00:00:00Z,"
                          " not_after: 1970-01-01T00:00:00.001-00:00, approved_by: x}\n"
                          "  - {id: c, owner: o, not_before: 2026-12-01T05:30:00+05:30,"
                          " not_after: 9999-12-31T23:59:59.999999Z, approved_by: x}\n",
                          &p, err, sizeof err),
                     BG_OK);
    /* 2024-03-01T00:00:00Z = 1709251200000 */
    assert_int_equal(p.envelopes[0].not_before, INT64_C(1709251200000) - 1);
    assert_int_equal(p.envelopes[0].not_after, INT64_C(1709251200000));
    assert_int_equal(p.envelopes[1].not_before, 0);
    assert_int_equal(p.envelopes[1].not_after, 1);
    assert_int_equal(p.envelopes[2].not_before, T0);
    assert_int_equal(p.envelopes[2].not_after, INT64_C(253402300799999));
    bg_policy_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_policy),
        cmocka_unit_test(test_version_changes_with_text),
        cmocka_unit_test(test_empty_policy_is_default),
        cmocka_unit_test(test_default_class_resolution),
        cmocka_unit_test(test_class_for),
        cmocka_unit_test(test_envelope_for),
        cmocka_unit_test(test_example_policy),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_class_errors),
        cmocka_unit_test(test_detection_keys),
        cmocka_unit_test(test_persistent_destination),
        cmocka_unit_test(test_too_many_classes),
        cmocka_unit_test(test_window_errors),
        cmocka_unit_test(test_envelope_errors),
        cmocka_unit_test(test_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
