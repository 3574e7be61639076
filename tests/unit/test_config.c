/* Unit tests for worker/config.c: defaults, a full file, every error class
 * (each must name the right line), --set overrides and their precedence,
 * kafka passthrough, relative path resolution, and the shipped example.
 * Files are written to a fresh temporary directory per test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "worker/config.h"

typedef struct fixture {
    char dir[64];
    char paths[8][256]; /* files written, removed at teardown */
    size_t n;
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/bg_test_config_XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    for (size_t i = 0; i < fx->n; i++)
        unlink(fx->paths[i]);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* Write name (relative to the fixture dir) and return its full path. */
static const char *write_file(fixture *fx, const char *name, const char *text) {
    assert_true(fx->n < 8);
    char *p = fx->paths[fx->n++];
    char full[sizeof fx->paths[0]];
    snprintf(full, sizeof full, "%s/%s", fx->dir, name);
    memcpy(p, full, sizeof full);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static void expect_error(const char *path, const char *const *sets, size_t n_sets, bg_err want,
                         const char *prefix, const char *what) {
    bg_config c;
    char err[512];
    bg_err e = bg_config_load(path, sets, n_sets, &c, err, sizeof err);
    if (e == BG_OK)
        bg_config_free(&c);
    if (e != want || strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, what))
        fail_msg("expected %d '%s ... %s', got %d '%s'", (int)want, prefix, what, (int)e, err);
    assert_null(c.topics[0]); /* freed on failure */
}

/* The file `text` fails at line `line` of it, saying `what`. */
static void expect_file_error(fixture *fx, const char *text, int line, const char *what) {
    const char *p = write_file(fx, "c.yaml", text);
    char prefix[320];
    snprintf(prefix, sizeof prefix, "%s:%d: ", p, line);
    expect_error(p, NULL, 0, BG_ERR_CONFIG, prefix, what);
    fx->n--;
    unlink(p);
}

static void test_defaults(void **state) {
    (void)state;
    bg_config c;
    char err[256];
    assert_int_equal(bg_config_load(NULL, NULL, 0, &c, err, sizeof err), BG_OK);
    assert_null(c.path);
    for (int t = 0; t < BG_TOPIC_COUNT; t++)
        assert_string_equal(c.topics[t], bg_topic_defaults[t]);
    assert_string_equal(c.topics[BG_TOPIC_USAGE], "nhi.usage.v1");
    assert_string_equal(c.topics[BG_TOPIC_STATE], "burstguard.state.v1");
    assert_int_equal(c.n_kafka, 0);
    assert_null(c.registry_url);
    assert_int_equal(c.n_local, 0);
    assert_null(c.policy_path);
    assert_string_equal(c.http_listen, "0.0.0.0:9100");
    assert_int_equal(c.batch_max_messages, 10000);
    assert_int_equal(c.batch_max_ms, 100);
    assert_int_equal(c.shutdown_timeout_ms, 10000);
    assert_false(c.dry_run);
    assert_false(c.exactly_once);
    assert_int_equal(c.commit_interval_ms, 1000);
    assert_null(c.transactional_id);
    assert_string_equal(c.instance_id_env, "BURSTGUARD_INSTANCE_ID");
    assert_int_equal(c.state_max_identities, 1000000);
    assert_int_equal(c.state_max_bytes, 536870912);
    assert_int_equal(c.state_idle_ttl_ms, 7LL * 86400000);
    assert_true(c.state_changelog);
    assert_null(bg_config_kafka(&c, "bootstrap.servers"));
    bg_config_free(&c);
    bg_config_free(NULL);
}

static void test_full_file(void **state) {
    fixture *fx = *state;
    write_file(fx, "usage.avsc", "{}");
    write_file(fx, "policy.yaml", "");
    char abs_avsc[300], text[2048];
    snprintf(abs_avsc, sizeof abs_avsc, "%s/usage.avsc", fx->dir);
    snprintf(text, sizeof text,
             "# comment\n"
             "kafka:\n"
             "  bootstrap.servers: broker:9092\n"
             "  group.id: bg\n"
             "  enable.idempotence: true\n"
             "  linger.ms: 5\n"
             "topics:\n"
             "  usage: u\n"
             "  secrets: s\n"
             "  toolcalls: t\n"
             "  envelopes: e\n"
             "  verdicts: v\n"
             "  revocations: r\n"
             "  deadletter: d\n"
             "  state: st\n"
             "schema_registry:\n"
             "  url: https://registry:8081\n"
             "  local:\n"
             "    1: usage.avsc\n"
             "    42: %s\n"
             "policy: policy.yaml\n"
             "http:\n"
             "  listen: \"\"\n"
             "worker:\n"
             "  batch_max_messages: 500\n"
             "  batch_max_ms: 2s\n"
             "  shutdown_timeout_ms: 2500\n"
             "  dry_run: yes\n",
             abs_avsc);
    const char *path = write_file(fx, "config.yaml", text);
    bg_config c;
    char err[512];
    bg_err e = bg_config_load(path, NULL, 0, &c, err, sizeof err);
    if (e)
        fail_msg("%s", err);
    assert_string_equal(c.path, path);
    assert_int_equal(c.n_kafka, 4);
    assert_string_equal(c.kafka[0].key, "bootstrap.servers"); /* file order */
    assert_string_equal(c.kafka[3].key, "linger.ms");
    assert_string_equal(bg_config_kafka(&c, "enable.idempotence"), "true"); /* stringified */
    assert_string_equal(bg_config_kafka(&c, "linger.ms"), "5");
    const char *want[BG_TOPIC_COUNT] = {"u", "s", "t", "e", "v", "r", "d", "st"};
    for (int t = 0; t < BG_TOPIC_COUNT; t++)
        assert_string_equal(c.topics[t], want[t]);
    assert_string_equal(c.registry_url, "https://registry:8081");
    assert_int_equal(c.n_local, 2);
    assert_int_equal(c.local[0].id, 1);
    char rel[300];
    snprintf(rel, sizeof rel, "%s/usage.avsc", fx->dir); /* resolved against the file's dir */
    assert_string_equal(c.local[0].path, rel);
    assert_int_equal(c.local[1].id, 42);
    assert_string_equal(c.local[1].path, abs_avsc); /* absolute stays as is */
    snprintf(rel, sizeof rel, "%s/policy.yaml", fx->dir);
    assert_string_equal(c.policy_path, rel);
    assert_string_equal(c.http_listen, "");
    assert_int_equal(c.batch_max_messages, 500);
    assert_int_equal(c.batch_max_ms, 2000);
    assert_int_equal(c.shutdown_timeout_ms, 2500);
    assert_true(c.dry_run);
    bg_config_free(&c);
}

static void test_dotted_keys_and_empty(void **state) {
    fixture *fx = *state;
    /* dotted keys at any level mean the same as nesting */
    const char *p = write_file(fx, "d.yaml",
                               "topics.usage: a\n"
                               "kafka.bootstrap.servers: h:1\n"
                               "worker:\n"
                               "  dry_run: on\n"
                               "topics:\n"
                               "  secrets: b\n"
                               "http:\n");
    bg_config c;
    char err[512];
    bg_err e = bg_config_load(p, NULL, 0, &c, err, sizeof err);
    if (e)
        fail_msg("%s", err);
    assert_string_equal(c.topics[BG_TOPIC_USAGE], "a");
    assert_string_equal(c.topics[BG_TOPIC_SECRETS], "b");
    assert_string_equal(bg_config_kafka(&c, "bootstrap.servers"), "h:1");
    assert_true(c.dry_run);
    assert_string_equal(c.http_listen, "0.0.0.0:9100"); /* empty section keeps defaults */
    bg_config_free(&c);
    /* an empty file is all defaults */
    p = write_file(fx, "empty.yaml", "# nothing\n");
    assert_int_equal(bg_config_load(p, NULL, 0, &c, err, sizeof err), BG_OK);
    assert_string_equal(c.topics[BG_TOPIC_VERDICTS], "nhi.verdicts.v1");
    bg_config_free(&c);
}

static void test_missing_file(void **state) {
    (void)state;
    expect_error("/nonexistent/x.yaml", NULL, 0, BG_ERR_IO,
                 "cannot read config '/nonexistent/x.yaml': No such file or directory", "");
    /* a directory is not a config file */
    expect_error("/tmp", NULL, 0, BG_ERR_IO, "cannot read config '/tmp': ", "directory");
}

static void test_syntax_error(void **state) {
    fixture *fx = *state;
    expect_file_error(fx, "topics:\n  usage: a\n   secrets: b\n", 3, "YAML syntax error");
    expect_file_error(fx, "kafka: {a: 1\n", 2, "YAML syntax error");
    expect_file_error(fx, "topics:\n  usage: \"unterminated\n", 3, "YAML syntax error");
    expect_file_error(fx, "a: 1\n---\nb: 2\n", 3, "only one YAML document");
}

static void test_unknown_key(void **state) {
    fixture *fx = *state;
    expect_file_error(fx, "topics:\n  usage: a\n  usgae: b\n", 3,
                      "unknown key 'topics.usgae' (did you mean 'topics.usage'?)");
    expect_file_error(fx, "worker:\n  batch_max_ms: 5\n\nfoo: 1\n", 4, "unknown key 'foo'");
    expect_file_error(fx, "schema_registry:\n  URL: http://x\n", 2,
                      "unknown key 'schema_registry.URL'");
    expect_file_error(fx, "worker:\n  threads: 4\n", 2, "unknown key 'worker.threads'");
}

static void test_duplicate_key(void **state) {
    fixture *fx = *state;
    expect_file_error(fx, "topics:\n  usage: a\n  usage: b\n", 3, "duplicate key 'usage'");
    expect_file_error(fx, "topics:\n  usage: a\ntopics.usage: b\n", 3,
                      "duplicate key 'topics.usage'");
    expect_file_error(fx, "topics:\n  usage: a\nworker: {}\ntopics:\n  secrets: b\n", 4,
                      "duplicate key 'topics'");
    expect_file_error(fx, "kafka:\n  a.b: 1\nkafka.a.b: 2\n", 3, "duplicate key 'kafka.a.b'");
    expect_file_error(fx, "kafka:\n  a.b: 1\n  a.b: 2\n", 3, "duplicate key 'a.b'");
}

static void test_wrong_type(void **state) {
    fixture *fx = *state;
    expect_file_error(fx, "topics:\n  usage: {name: x}\n", 2,
                      "topics.usage: expected a single value, found a mapping");
    expect_file_error(fx, "topics:\n  usage: [x]\n", 2, "found a list");
    expect_file_error(fx, "topics: nhi.usage.v1\n", 1,
                      "topics: expected a mapping, found a scalar");
    expect_file_error(fx, "worker:\n  batch_max_messages: abc\n", 2,
                      "worker.batch_max_messages: expected an integer, got 'abc'");
    expect_file_error(fx, "worker:\n  batch_max_messages: 1.5\n", 2, "expected an integer");
    expect_file_error(fx, "worker:\n  batch_max_ms: soon\n", 2, "expected a duration");
    expect_file_error(fx, "worker:\n  dry_run: maybe\n", 2, "expected true or false");
    expect_file_error(fx, "kafka:\n  bootstrap.servers: [a, b]\n", 2, "expected a single value");
    expect_file_error(fx, "kafka: localhost\n", 1, "kafka: expected a mapping");
    expect_file_error(fx, "kafka:\n  client.id:\n", 2, "kafka.client.id: expected a value");
    expect_file_error(fx, "- a\n- b\n", 1, "expected a mapping of keys at the top level");
    expect_file_error(fx, "schema_registry:\n  url: ftp://x\n", 2, "not an http:// or https://");
    expect_file_error(fx, "http:\n  listen: 9100\n", 2, "not HOST:PORT");
    expect_file_error(fx, "http:\n  listen: \"0.0.0.0:99999\"\n", 2, "not HOST:PORT");
}

static void test_out_of_range(void **state) {
    fixture *fx = *state;
    expect_file_error(fx, "worker:\n  batch_max_messages: 0\n", 2,
                      "worker.batch_max_messages: 0 is out of range (1..1000000)");
    expect_file_error(fx, "worker:\n  batch_max_messages: 99999999999999999999\n", 2,
                      "expected an integer");
    expect_file_error(fx, "worker:\n\n  batch_max_ms: 2m\n", 3,
                      "worker.batch_max_ms: 2m is out of range (1ms..1m)");
    expect_file_error(fx, "worker:\n  shutdown_timeout_ms: -1\n", 2, "expected a duration");
}

static void test_empty_topic(void **state) {
    fixture *fx = *state;
    expect_file_error(fx, "topics:\n  verdicts: \"\"\n", 2, "topics.verdicts: empty topic name");
    expect_file_error(fx, "topics:\n  verdicts:\n", 2, "empty topic name");
    expect_file_error(fx, "topics:\n  verdicts: \"a b\"\n", 2, "has ' '");
    expect_file_error(fx, "topics:\n  usage: x\n  verdicts: x\n", 3,
                      "topics.verdicts: 'x' is also topics.usage");
}

static void test_paths_must_exist(void **state) {
    fixture *fx = *state;
    expect_file_error(fx, "schema_registry:\n  local:\n    7: missing.avsc\n", 3,
                      "schema_registry.local.7: cannot read");
    expect_file_error(fx, "schema_registry:\n  local:\n    7: missing.avsc\n", 3,
                      "missing.avsc': No such file or directory");
    expect_file_error(fx, "schema_registry:\n  local:\n    x: a.avsc\n", 3,
                      "schema id must be an integer");
    expect_file_error(fx, "schema_registry:\n  local:\n    -1: a.avsc\n", 3,
                      "schema id must be an integer");
    expect_file_error(fx, "schema_registry:\n  local:\n    1: a.avsc\n    1: b.avsc\n", 4,
                      "duplicate key '1'");
    expect_file_error(fx, "schema_registry:\n  local:\n    1: a.avsc\n    01: b.avsc\n", 4,
                      "duplicate schema id 1");
    expect_file_error(fx, "\npolicy: nope.yaml\n", 2, "policy: cannot read");
    expect_file_error(fx, "policy: \"\"\n", 1, "policy: empty path");
}

static void test_set_overrides(void **state) {
    fixture *fx = *state;
    write_file(fx, "policy.yaml", "");
    const char *path = write_file(fx, "config.yaml",
                                  "kafka:\n"
                                  "  bootstrap.servers: file:9092\n"
                                  "  group.id: g\n"
                                  "topics:\n"
                                  "  usage: from-file\n"
                                  "policy: missing.yaml\n"
                                  "worker:\n"
                                  "  batch_max_ms: 0\n");
    /* a value that is wrong in itself is reported even if a --set would
     * replace it: only checks of final values (paths, distinct topics) wait */
    const char *fix[] = {"worker.batch_max_ms=5"};
    expect_error(path, fix, 1, BG_ERR_CONFIG, "", "out of range");

    path = write_file(fx, "config2.yaml",
                      "kafka:\n"
                      "  bootstrap.servers: file:9092\n"
                      "  group.id: g\n"
                      "topics:\n"
                      "  usage: from-file\n"
                      "policy: missing.yaml\n");
    char avsc[300], pol[300], set_local[400], set_policy[400];
    snprintf(avsc, sizeof avsc, "%s/s.avsc", fx->dir);
    write_file(fx, "s.avsc", "{}");
    snprintf(pol, sizeof pol, "%s/policy.yaml", fx->dir);
    snprintf(set_local, sizeof set_local, "schema_registry.local.9=%s", avsc);
    snprintf(set_policy, sizeof set_policy, "policy=%s", pol);
    const char *sets[] = {
        "topics.usage=first",
        "topics.usage=x", /* later --set wins */
        "kafka.bootstrap.servers=h:9092",
        "kafka.security.protocol=SASL_SSL",
        "worker.batch_max_ms=50",
        "worker.dry_run=true",
        set_local,
        set_policy, /* fixes the file's missing policy: checked after overrides */
        "http.listen=",
        "schema_registry.url=http://reg:8081",
    };
    bg_config c;
    char err[512];
    bg_err e = bg_config_load(path, sets, sizeof sets / sizeof sets[0], &c, err, sizeof err);
    if (e)
        fail_msg("%s", err);
    assert_string_equal(c.topics[BG_TOPIC_USAGE], "x");
    assert_string_equal(bg_config_kafka(&c, "bootstrap.servers"), "h:9092");
    assert_string_equal(bg_config_kafka(&c, "group.id"), "g");
    assert_string_equal(bg_config_kafka(&c, "security.protocol"), "SASL_SSL");
    assert_int_equal(c.n_kafka, 3);
    assert_string_equal(c.kafka[0].key, "bootstrap.servers"); /* replaced in place */
    assert_string_equal(c.kafka[2].key, "security.protocol"); /* new ones last */
    assert_int_equal(c.batch_max_ms, 50);
    assert_true(c.dry_run);
    assert_int_equal(c.n_local, 1);
    assert_int_equal(c.local[0].id, 9);
    assert_string_equal(c.local[0].path, avsc);
    assert_string_equal(c.policy_path, pol);
    assert_string_equal(c.http_listen, "");
    assert_string_equal(c.registry_url, "http://reg:8081");
    bg_config_free(&c);

    /* overrides without a file */
    const char *sets2[] = {"topics.state=my.state", "schema_registry.url=http://a",
                           "schema_registry.url="};
    assert_int_equal(bg_config_load(NULL, sets2, 3, &c, err, sizeof err), BG_OK);
    assert_string_equal(c.topics[BG_TOPIC_STATE], "my.state");
    assert_null(c.registry_url); /* empty unsets an optional key */
    bg_config_free(&c);

    /* the policy error names the file line when no --set replaces it */
    char prefix[320];
    snprintf(prefix, sizeof prefix, "%s:6: ", path);
    expect_error(path, NULL, 0, BG_ERR_CONFIG, prefix, "policy: cannot read");
    /* ... and the --set when the override is the bad one */
    const char *sets3[] = {"policy=/nonexistent.yaml"};
    expect_error(path, sets3, 1, BG_ERR_CONFIG, "--set policy=/nonexistent.yaml: ",
                 "cannot read '/nonexistent.yaml'");
}

static void test_set_errors(void **state) {
    (void)state;
    /* a credential's value never appears in an error */
    const char *s0[] = {"kafka.sasl.password"};
    expect_error(NULL, s0, 1, BG_ERR_CONFIG, "--set kafka.sasl.password: ", "expected key=value");
    const char *s00[] = {"topics.sasl_password=hunter2"};
    expect_error(NULL, s00, 1, BG_ERR_CONFIG, "--set topics.sasl_password=(redacted): ",
                 "unknown key");
    const char *s1[] = {"topics.usgae=x"};
    expect_error(NULL, s1, 1, BG_ERR_CONFIG, "--set topics.usgae=x: unknown key 'topics.usgae'",
                 "did you mean 'topics.usage'");
    const char *s2[] = {"topics.usage"};
    expect_error(NULL, s2, 1, BG_ERR_CONFIG, "--set topics.usage: ", "expected key=value");
    const char *s3[] = {"topics=x"};
    expect_error(NULL, s3, 1, BG_ERR_CONFIG, "--set topics=x: ", "is a section");
    const char *s4[] = {"worker.batch_max_messages=lots"};
    expect_error(NULL, s4, 1, BG_ERR_CONFIG, "--set worker.batch_max_messages=lots: ",
                 "expected an integer, got 'lots'");
    const char *s5[] = {"kafka=x"};
    expect_error(NULL, s5, 1, BG_ERR_CONFIG, "--set kafka=x: ", "kafka.<property>");
    const char *s6[] = {"schema_registry.local.abc=x.avsc"};
    expect_error(NULL, s6, 1, BG_ERR_CONFIG, "--set schema_registry.local.abc=x.avsc: ",
                 "schema id must be an integer");
    const char *s7[] = {"topics.usage="};
    expect_error(NULL, s7, 1, BG_ERR_CONFIG, "--set topics.usage=: ", "empty topic name");
    const char *s8[] = {"=x"};
    expect_error(NULL, s8, 1, BG_ERR_CONFIG, "--set =x: ", "empty key");
    const char *s9[] = {"topics.usage=ok", "worker.batch_max_messages=0"};
    expect_error(NULL, s9, 2, BG_ERR_CONFIG, "--set worker.batch_max_messages=0: ",
                 "out of range");
    const char *s10[] = {"schema_registry.local.3=/nonexistent.avsc"};
    expect_error(NULL, s10, 1, BG_ERR_CONFIG, "--set schema_registry.local.3=/nonexistent.avsc: ",
                 "schema_registry.local.3: cannot read");
    const char *s11[] = {"topics.verdicts=nhi.usage.v1"};
    expect_error(NULL, s11, 1, BG_ERR_CONFIG, "--set topics.verdicts=nhi.usage.v1: ",
                 "is also topics.usage");
}

static void test_example_config(void **state) {
    (void)state;
    const char *src = getenv("BG_SOURCE_DIR");
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/examples/config.yaml", src ? src : ".");
    bg_config c;
    bg_err e = bg_config_load(path, NULL, 0, &c, err, sizeof err);
    if (e)
        fail_msg("%s", err);
    assert_string_equal(bg_config_kafka(&c, "bootstrap.servers"), "localhost:9092");
    assert_non_null(c.policy_path);
    assert_non_null(strstr(c.policy_path, "examples/policy.yaml"));
    assert_true(c.n_local >= 1);
    bg_config_free(&c);
}

static void test_state_and_guarantee(void **state) {
    (void)state;
    bg_config c;
    char err[256];
    const char *ok[] = {"worker.guarantee=exactly_once", "state.idle_ttl=2h",
                        "state.max_identities=10", "state.changelog=false",
                        "worker.commit_interval_ms=250ms", "kafka.group.instance.id=pod-7"};
    assert_int_equal(bg_config_load(NULL, ok, 6, &c, err, sizeof err), BG_OK);
    assert_true(c.exactly_once);
    assert_int_equal(c.state_idle_ttl_ms, 7200000);
    assert_int_equal(c.state_max_identities, 10);
    assert_false(c.state_changelog);
    assert_int_equal(c.commit_interval_ms, 250);
    assert_string_equal(bg_config_instance_id(&c), "pod-7");
    bg_config_free(&c);
    const char *env[] = {"worker.instance_id_env=BG_TEST_POD"};
    setenv("BG_TEST_POD", "burstguard-3", 1);
    assert_int_equal(bg_config_load(NULL, env, 1, &c, err, sizeof err), BG_OK);
    assert_string_equal(bg_config_instance_id(&c), "burstguard-3");
    bg_config_free(&c);
    const char *bad[][1] = {{"worker.guarantee=maybe"}, {"state.idle_ttl=soon"},
                            {"state.max_identities=-1"}, {"worker.instance_id_env=1X"},
                            {"worker.commit_interval_ms=1"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(bg_config_load(NULL, bad[i], 1, &c, err, sizeof err), BG_ERR_CONFIG);
        assert_null(strchr(err, '\n'));
        assert_non_null(strstr(err, "--set"));
    }
}

static void test_print_defaults(void **state) {
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    bg_config_print_defaults(f);
    fclose(f);
    for (int t = 0; t < BG_TOPIC_COUNT; t++)
        assert_non_null(strstr(buf, bg_topic_defaults[t]));
    assert_non_null(strstr(buf, "topics.usage"));
    assert_non_null(strstr(buf, "kafka.<property>"));
    assert_non_null(strstr(buf, "schema_registry.local.<id>"));
    assert_non_null(strstr(buf, "worker.batch_max_messages"));
    assert_non_null(strstr(buf, "(1..1000000)"));
    assert_non_null(strstr(buf, "0.0.0.0:9100"));
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test_setup_teardown(test_full_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dotted_keys_and_empty, setup, teardown),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test_setup_teardown(test_syntax_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_topic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paths_must_exist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_overrides, setup, teardown),
        cmocka_unit_test(test_set_errors),
        cmocka_unit_test(test_example_config),
        cmocka_unit_test(test_print_defaults),
        cmocka_unit_test(test_state_and_guarantee),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
