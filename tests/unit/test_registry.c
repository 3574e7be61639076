/* Unit tests for worker/registry.c against tests/kafka/registry_double.py,
 * a Schema Registry test double started per test: a schema fetched and
 * cached (the double counts requests), 404/40403 as not found and cached,
 * 500s retried until success, a slow registry timing out and retried, basic
 * auth wrong and right, an invalid schema as a final BG_ERR_SCHEMA, an
 * unreachable registry, and the configuration errors of bg_registry_new. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/kafka/registry_double.h"
#include "worker/codec.h"
#include "worker/registry.h"

#define EVOLVED_USAGE                                                                              \
    "{\"type\":\"record\",\"name\":\"UsageEvent\",\"namespace\":\"burstguard.v1\",\"fields\":["    \
    "{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"identity\",\"type\":\"string\"},"     \
    "{\"name\":\"region\",\"type\":\"string\",\"default\":\"eu\"}]}"

typedef struct fx {
    char dir[64];
    char pwfile[96];
    h_reg reg;
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/bg_test_registry_XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    char p[160];
    snprintf(p, sizeof p, "%s/100.avsc", f->dir);
    FILE *o = fopen(p, "w");
    if (!o)
        return -1;
    fputs(EVOLVED_USAGE, o);
    fclose(o);
    snprintf(p, sizeof p, "%s/101.avsc", f->dir);
    o = fopen(p, "w");
    if (!o)
        return -1;
    fputs("{\"type\":\"record\",\"name\":\"Broken\",\"fields\":[{\"name\":\"x\",\"type\":"
          "\"nosuch\"}]}",
          o);
    fclose(o);
    snprintf(f->pwfile, sizeof f->pwfile, "%s/pw", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    h_reg_stop(&f->reg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", f->dir);
    free(f);
    return 0;
}

static bg_registry *client(fx *f, const char *user, const char *password, int64_t timeout_ms,
                           int max_attempts) {
    bg_registry_opts o = {.url = f->reg.url,
                          .timeout_ms = timeout_ms,
                          .retry_max_ms = 400,
                          .max_attempts = max_attempts};
    if (user) {
        FILE *p = fopen(f->pwfile, "w");
        assert_non_null(p);
        fprintf(p, "%s\n", password);
        fclose(p);
        o.username = user;
        o.password_file = f->pwfile;
    }
    bg_registry *r = NULL;
    char e[256];
    assert_int_equal(bg_registry_new(&o, &r, e, sizeof e), BG_OK);
    return r;
}

static void start(fx *f, const char *const *extra) {
    assert_int_equal(h_reg_start(&f->reg, f->dir, extra), 0);
}

static void test_fetch_and_cache(void **state) {
    fx *f = *state;
    start(f, NULL);
    bg_registry *r = client(f, NULL, NULL, 2000, 1);
    const char *text;
    size_t len;
    char why[256];
    assert_int_equal(bg_registry_fetch(r, 100, &text, &len, why, sizeof why), BG_OK);
    assert_int_equal(len, strlen(EVOLVED_USAGE));
    assert_memory_equal(text, EVOLVED_USAGE, len);
    assert_int_equal(bg_registry_fetch(r, 100, &text, &len, why, sizeof why), BG_OK);
    assert_int_equal(h_reg_requests(&f->reg), 1); /* the second came from the cache */
    assert_int_equal(bg_registry_requests(r), 1);

    bg_codec *c;
    assert_int_equal(bg_codec_new(&c, why, sizeof why), BG_OK);
    assert_false(bg_codec_has_schema(c, 100));
    assert_int_equal(bg_registry_resolve(r, c, 100, NULL, why, sizeof why), BG_OK);
    assert_true(bg_codec_has_schema(c, 100));
    assert_int_equal(h_reg_requests(&f->reg), 1);
    bg_codec_free(c);
    bg_registry_free(r);
}

static void test_not_found_is_cached(void **state) {
    fx *f = *state;
    start(f, NULL);
    bg_registry *r = client(f, NULL, NULL, 2000, 0);
    const char *text;
    size_t len;
    char why[256];
    assert_int_equal(bg_registry_fetch(r, 77, &text, &len, why, sizeof why), BG_ERR_UNKNOWN_SCHEMA);
    assert_non_null(strstr(why, "77"));
    bg_codec *c;
    assert_int_equal(bg_codec_new(&c, why, sizeof why), BG_OK);
    /* max_attempts 0 (retry forever): a 404 is final, it must not be retried */
    assert_int_equal(bg_registry_resolve(r, c, 77, NULL, why, sizeof why), BG_ERR_UNKNOWN_SCHEMA);
    assert_int_equal(h_reg_requests(&f->reg), 1);
    bg_codec_free(c);
    bg_registry_free(r);
}

static void test_invalid_schema(void **state) {
    fx *f = *state;
    start(f, NULL);
    bg_registry *r = client(f, NULL, NULL, 2000, 0);
    bg_codec *c;
    char why[256];
    assert_int_equal(bg_codec_new(&c, why, sizeof why), BG_OK);
    assert_int_equal(bg_registry_resolve(r, c, 101, NULL, why, sizeof why), BG_ERR_SCHEMA);
    assert_false(bg_codec_has_schema(c, 101));
    assert_int_equal(bg_registry_resolve(r, c, 101, NULL, why, sizeof why), BG_ERR_SCHEMA);
    assert_int_equal(h_reg_requests(&f->reg), 1);
    bg_codec_free(c);
    bg_registry_free(r);
}

static void test_500_retried(void **state) {
    fx *f = *state;
    const char *extra[] = {"--fail-first", "3", NULL};
    start(f, extra);
    bg_registry *r = client(f, NULL, NULL, 2000, 0);
    const char *text;
    size_t len;
    char why[256];
    assert_int_equal(bg_registry_fetch(r, 100, &text, &len, why, sizeof why), BG_ERR_IO);
    assert_non_null(strstr(why, "500"));
    bg_codec *c;
    assert_int_equal(bg_codec_new(&c, why, sizeof why), BG_OK);
    assert_int_equal(bg_registry_resolve(r, c, 100, NULL, why, sizeof why), BG_OK);
    assert_true(bg_codec_has_schema(c, 100));
    assert_int_equal(h_reg_requests(&f->reg), 4); /* 3 failures, then the answer */
    bg_codec_free(c);
    bg_registry_free(r);
}

static void test_slow_times_out(void **state) {
    fx *f = *state;
    const char *extra[] = {"--slow", "1.5", NULL};
    start(f, extra);
    bg_registry *r = client(f, NULL, NULL, 300, 2);
    bg_codec *c;
    char why[256];
    assert_int_equal(bg_codec_new(&c, why, sizeof why), BG_OK);
    assert_int_equal(bg_registry_resolve(r, c, 100, NULL, why, sizeof why), BG_ERR_IO);
    assert_non_null(strstr(why, "Timeout"));
    assert_int_equal(bg_registry_requests(r), 2); /* retried once, then out of attempts */
    assert_false(bg_codec_has_schema(c, 100));
    /* a stop flag ends the wait at once, without another request */
    volatile sig_atomic_t stop = 1;
    bg_registry_free(r);
    r = client(f, NULL, NULL, 300, 0);
    assert_int_equal(bg_registry_resolve(r, c, 100, &stop, why, sizeof why), BG_ERR_IO);
    assert_int_equal(bg_registry_requests(r), 1);
    bg_codec_free(c);
    bg_registry_free(r);
}

static void test_auth(void **state) {
    fx *f = *state;
    const char *extra[] = {"--auth", "bg:s3cret", NULL};
    start(f, extra);
    const char *text;
    size_t len;
    char why[256];
    bg_registry *r = client(f, NULL, NULL, 2000, 1);
    assert_int_equal(bg_registry_fetch(r, 100, &text, &len, why, sizeof why), BG_ERR_CONFIG);
    bg_registry_free(r);
    r = client(f, "bg", "wrong", 2000, 1);
    assert_int_equal(bg_registry_fetch(r, 100, &text, &len, why, sizeof why), BG_ERR_CONFIG);
    assert_non_null(strstr(why, "401"));
    assert_null(strstr(why, "wrong")); /* never the password */
    bg_registry_free(r);
    r = client(f, "bg", "s3cret", 2000, 1);
    assert_int_equal(bg_registry_fetch(r, 100, &text, &len, why, sizeof why), BG_OK);
    bg_registry_free(r);
}

static void test_unreachable(void **state) {
    fx *f = *state;
    /* a port nobody listens on: bind one, note it, close it */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
    close(s);
    snprintf(f->reg.url, sizeof f->reg.url, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    bg_registry *r = client(f, NULL, NULL, 1000, 2);
    bg_codec *c;
    char why[256];
    assert_int_equal(bg_codec_new(&c, why, sizeof why), BG_OK);
    assert_int_equal(bg_registry_resolve(r, c, 100, NULL, why, sizeof why), BG_ERR_IO);
    assert_int_equal(bg_registry_requests(r), 2);
    bg_codec_free(c);
    bg_registry_free(r);
}

static void test_config_errors(void **state) {
    fx *f = *state;
    bg_registry *r = NULL;
    char e[256];
    bg_registry_opts o = {.url = "http://reg:99999", .timeout_ms = 1000, .retry_max_ms = 1000};
    assert_int_equal(bg_registry_new(&o, &r, e, sizeof e), BG_ERR_CONFIG);
    assert_non_null(strstr(e, "schema_registry.url"));
    o.url = "ftp://reg";
    assert_int_equal(bg_registry_new(&o, &r, e, sizeof e), BG_ERR_CONFIG);
    o.url = "http://reg:8081";
    o.username = "bg";
    assert_int_equal(bg_registry_new(&o, &r, e, sizeof e), BG_ERR_CONFIG);
    o.password_file = "/nonexistent/pw";
    assert_int_equal(bg_registry_new(&o, &r, e, sizeof e), BG_ERR_CONFIG);
    assert_non_null(strstr(e, "password_file"));
    FILE *p = fopen(f->pwfile, "w");
    assert_non_null(p);
    fclose(p);
    o.password_file = f->pwfile;
    assert_int_equal(bg_registry_new(&o, &r, e, sizeof e), BG_ERR_CONFIG); /* empty */
    assert_null(r);
    bg_registry_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fetch_and_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_is_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_500_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
