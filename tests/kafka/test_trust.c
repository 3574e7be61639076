/* Signed envelopes and revocation commands through real processes: keys from
 * `burstguard keygen`, envelopes signed and produced by `burstguard envelope
 * create|revoke` (and, for the cases the CLI cannot make, by this test), a
 * worker whose policy lists approvers: a signed envelope makes a burst
 * PLANNED; unsigned, unknown-key, out-of-scope, badly signed and tampered
 * envelopes are dead-lettered with their reason and never applied; the
 * worker's revocation command verifies with `burstguard verify-command` and
 * fails once a byte changes; after a policy reload the new approvers decide.
 * Also the CLI's usage errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sodium.h>

#include "harness.h"
#include "worker/sign.h"

#define T0 1795996800000LL /* 2026-11-30T00:00:00Z */
#define MIN 60000LL

static h_mock mock;
static char dir[256];
static bg_codec *codec;
static pid_t worker = -1;

/* Run the binary with args (NULL-terminated); stdout to out (or /dev/null),
 * stderr appended to cli.log. Returns the exit code. */
static int cli(const char *out, ...) {
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)h_bin();
    va_list ap;
    va_start(ap, out);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 63)
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    int fd = out ? open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644) : -1;
    pid_t pid = h_spawn(argv, fd, "cli.log");
    if (fd >= 0)
        close(fd);
    return h_wait(pid, 60);
}

static bool file_has(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static void read_line(const char *path, char *buf, size_t n) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, (int)n, f));
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
}

static bg_event usage(const char *who, const char *owner, double at_min, const char *dest,
                      int calls) {
    return h_usage_event("e", who, owner, T0 + (int64_t)(at_min * (double)MIN), dest, calls);
}

static bg_event secret(const char *who, double at_min, const char *id) {
    return h_secret_event("s", who, T0 + (int64_t)(at_min * (double)MIN), id);
}

static bg_envelope_msg envelope(const char *id, const char *who, const char *key_id) {
    bg_envelope_msg e;
    memset(&e, 0, sizeof e);
    e.envelope_id = h_s(id);
    e.identity = h_s(who);
    e.not_before = T0;
    e.not_after = T0 + 180 * MIN;
    e.max_api_calls_per_min = (bg_opt_i64){true, 1000};
    e.approved_by = h_s("alice");
    if (key_id)
        e.key_id = h_s(key_id);
    return e;
}

static void produce_envelope(rd_kafka_t *p, const bg_envelope_msg *e) {
    bg_buf b = {0};
    assert_int_equal(bg_codec_encode_envelope(codec, 4, e, &b), BG_OK);
    assert_int_equal(
        h_produce(p, "nhi.envelopes.v1", e->envelope_id.ptr, e->envelope_id.len, b.data, b.len), 0);
    bg_buf_free(&b);
}

/* an envelope for `who` via the CLI, signed with key PREFIX.key as key_id */
static int cli_envelope(const char *verb, const char *id, const char *who, const char *owner,
                        const char *prefix, const char *key_id) {
    char key[64], from[32], to[32];
    snprintf(key, sizeof key, "%s.key", prefix);
    snprintf(from, sizeof from, "%lld", T0);
    snprintf(to, sizeof to, "%lld", T0 + 180 * MIN);
    if (!strcmp(verb, "revoke"))
        return cli("envelope.out", "envelope", "revoke", id, "--identity", who, "--from", from,
                   "--to", to, "--approved-by", "alice", "--key", key, "--key-id", key_id,
                   "--brokers", mock.bootstrap, NULL);
    if (owner)
        return cli("envelope.out", "envelope", "create", "--id", id, "--identity", who, "--owner",
                   owner, "--from", from, "--to", to, "--max-api-calls-per-min", "1000",
                   "--approved-by", "alice", "--ticket", "CHG-1", "--key", key, "--key-id", key_id,
                   "--brokers", mock.bootstrap, NULL);
    return cli("envelope.out", "envelope", "create", "--id", id, "--identity", who, "--from", from,
               "--to", to, "--max-api-calls-per-min", "1000", "--approved-by", "alice", "--ticket",
               "CHG-1", "--key", key, "--key-id", key_id, "--brokers", mock.bootstrap, NULL);
}

typedef struct onset {
    const char *who;
    int cls;
} onset;

static int has_onset(const bg_rb_msg *m, size_t n, void *arg) {
    onset *o = arg;
    for (size_t i = 0; i < n; i++) {
        bg_rb_verdict v;
        if (bg_rb_verdict_decode(m[i].value, m[i].value_len, &v))
            continue;
        bool ok = !strcmp(v.identity, o->who) && v.phase == BG_PHASE_ONSET;
        if (ok)
            o->cls = v.classification;
        bg_rb_verdict_clear(&v);
        if (ok)
            return 1;
    }
    return 0;
}

static int expect_class(const char *who) {
    onset o = {who, -1};
    bg_rb_msg *m;
    size_t n;
    int ok = h_read_until(mock.bootstrap, "nhi.verdicts.v1", has_onset, &o, 30, &m, &n);
    bg_rb_msgs_free(m, n);
    if (!ok)
        print_error("no ONSET verdict for %s\n", who);
    assert_true(ok);
    return o.cls;
}

static int at_least(const bg_rb_msg *m, size_t n, void *arg) {
    (void)m;
    return n >= *(size_t *)arg;
}

static void test_signed_envelopes_and_commands(void **state) {
    (void)state;
    /* keys */
    assert_int_equal(cli("keygen.out", "keygen", "--out", "alice", NULL), 0);
    assert_int_equal(cli(NULL, "keygen", "--out", "bob", NULL), 0);
    assert_int_equal(cli(NULL, "keygen", "--out", "mallory", NULL), 0);
    assert_int_equal(cli(NULL, "keygen", "--out", "worker", NULL), 0);
    struct stat st;
    assert_int_equal(stat("alice.key", &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char alice_pub[128], bob_pub[128], worker_secret[128];
    read_line("alice.pub", alice_pub, sizeof alice_pub);
    read_line("bob.pub", bob_pub, sizeof bob_pub);
    read_line("worker.key", worker_secret, sizeof worker_secret);
    assert_true(file_has("keygen.out", alice_pub));

    char policy[2048];
    snprintf(policy, sizeof policy,
             "windows: {bucket: 60s, correlation: 15m, learning_period: 1h}\n"
             "classes:\n"
             "  - name: svc\n"
             "    match: {identity_prefix: \"spiffe://t/svc/\"}\n"
             "    limits: {api_calls_per_min: 100}\n"
             "    unexpected_action: THROTTLE\n"
             "approvers:\n"
             "  - key_id: alice-2026\n    public_key: %s\n"
             "  - key_id: bob-2026\n    public_key: %s\n    owners: [team-web]\n",
             alice_pub, bob_pub);
    h_write_file("policy.yaml", policy);
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "kafka:\n  bootstrap.servers: %s\n  group.id: trust\n  session.timeout.ms: 6000\n"
             "policy: policy.yaml\nhttp:\n  listen: \"\"\n"
             "signing:\n  key_file: worker.key\n  key_id: worker-1\n"
             "worker:\n  shutdown_timeout_ms: 5000\n",
             mock.bootstrap);
    h_write_file("config.yaml", cfg);

    const char *P = "spiffe://t/svc/planned", *S = "spiffe://t/svc/scoped",
               *U = "spiffe://t/svc/unsigned", *K = "spiffe://t/svc/unknown-key",
               *B = "spiffe://t/svc/bad-sig", *T = "spiffe://t/svc/tampered",
               *R = "spiffe://t/svc/revoked", *W = "spiffe://t/svc/web",
               *A = "spiffe://t/svc/agent";
    /* through the CLI */
    assert_int_equal(cli_envelope("create", "e-ok", P, NULL, "alice", "alice-2026"), 0);
    assert_true(
        file_has("envelope.out", "authorised envelope e-ok: identity spiffe://t/svc/planned"));
    assert_true(file_has("envelope.out", "at most 1000 API calls per minute"));
    assert_true(file_has("envelope.out", "produced to nhi.envelopes.v1"));
    assert_int_equal(cli_envelope("create", "e-web", W, "team-web", "bob", "bob-2026"), 0);
    assert_int_equal(cli_envelope("create", "e-scope", S, "data-eng", "bob", "bob-2026"), 0);
    assert_int_equal(cli_envelope("create", "e-unknown", K, NULL, "mallory", "mallory"), 0);
    assert_int_equal(cli_envelope("create", "e-badsig", B, NULL, "mallory", "alice-2026"), 0);
    assert_int_equal(cli_envelope("create", "e-rev", R, NULL, "alice", "alice-2026"), 0);
    assert_int_equal(cli_envelope("revoke", "e-rev", R, NULL, "alice", "alice-2026"), 0);
    assert_true(file_has("envelope.out", "revoked envelope e-rev"));
    /* by hand: unsigned, and tampered after signing */
    rd_kafka_t *p = h_producer(mock.bootstrap);
    assert_non_null(p);
    bg_envelope_msg en = envelope("e-unsigned", U, NULL);
    produce_envelope(p, &en);
    uint8_t sk[64], sig[64];
    char err[256];
    assert_int_equal(bg_sign_load_secret("alice.key", sk, err, sizeof err), BG_OK);
    en = envelope("e-tamper", T, "alice-2026");
    bg_buf scratch = {0};
    assert_int_equal(bg_sign_envelope(codec, &en, sk, &scratch, sig), BG_OK);
    bg_buf_free(&scratch);
    en.signature = (bg_str){(const char *)sig, 64};
    en.max_api_calls_per_min.v = 100000; /* raised after the approver signed */
    produce_envelope(p, &en);
    assert_int_equal(rd_kafka_flush(p, 10000), 0);

    char *argv[] = {(char *)h_bin(), "run", "--config", "config.yaml", NULL};
    worker = h_spawn(argv, -1, "worker.log");
    const char *burst[] = {P, S, U, K, B, T, R, W, A};
    const char *owners[] = {NULL, "data-eng", NULL, NULL, NULL, NULL, NULL, "team-web", NULL};
    /* learning period, then a burst of 3x the class limit for each */
    for (int m = 0; m < 80; m += 4)
        for (int i = 0; i < 9; i++) {
            bg_event ev = usage(burst[i], owners[i], m, "a.example", 5);
            assert_int_equal(h_produce_event(p, codec, 1, &ev), 0);
        }
    for (int i = 0; i < 8; i++)
        for (int k = 0; k < 3; k++) {
            bg_event ev = usage(burst[i], owners[i], 95 + k * 0.2, "a.example", 100);
            assert_int_equal(h_produce_event(p, codec, 1, &ev), 0);
        }
    /* A: a new secret and a never-seen destination -> a signed revocation */
    bg_event ev = secret(A, 90, "sec-A-1");
    assert_int_equal(h_produce_event(p, codec, 2, &ev), 0);
    ev = usage(A, NULL, 93, "evil.example", 1);
    assert_int_equal(h_produce_event(p, codec, 1, &ev), 0);
    assert_int_equal(rd_kafka_flush(p, 10000), 0);
    /* The secret and the usage travel on different topics and may reach the
     * worker in either order; A's stream time must not move past the pair's
     * window before both have, so the closing event waits for the revocation. */
    bg_rb_msg *m;
    size_t n, want = 1;
    assert_true(h_read_until(mock.bootstrap, "nhi.revocations.v1", at_least, &want, 30, &m, &n));
    bg_rb_msgs_free(m, n);
    /* a later event closes the buckets */
    for (int i = 0; i < 9; i++) {
        ev = usage(burst[i], owners[i], 110, "a.example", 1);
        assert_int_equal(h_produce_event(p, codec, 1, &ev), 0);
    }
    assert_int_equal(rd_kafka_flush(p, 10000), 0);

    assert_int_equal(expect_class(P), BG_CLASS_PLANNED);
    assert_int_equal(expect_class(W), BG_CLASS_PLANNED); /* bob may authorise team-web */
    const char *refused[] = {S, U, K, B, T, R};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (expect_class(refused[i]) != BG_CLASS_UNEXPECTED)
            fail_msg("%s: an envelope that must not apply made it PLANNED", refused[i]);

    /* the refusals, dead-lettered with their reason */
    static const struct {
        const char *id, *reason;
    } dl[] = {{"e-scope", "key_scope"},
              {"e-unsigned", "unsigned"},
              {"e-unknown", "untrusted_key"},
              {"e-badsig", "bad_signature"},
              {"e-tamper", "bad_signature"}};
    want = 5;
    assert_true(h_read_until(mock.bootstrap, "nhi.deadletter.v1", at_least, &want, 30, &m, &n));
    assert_int_equal(n, 5);
    for (size_t i = 0; i < sizeof dl / sizeof dl[0]; i++) {
        bool found = false;
        for (size_t j = 0; j < n && !found; j++)
            if (m[j].key_len == strlen(dl[i].id) && !memcmp(m[j].key, dl[i].id, m[j].key_len)) {
                found = true;
                const char *r = bg_rb_header(&m[j], "bg.reason");
                if (!r || strcmp(r, dl[i].reason))
                    fail_msg("%s: reason %s, want %s", dl[i].id, r ? r : "(none)", dl[i].reason);
                r = bg_rb_header(&m[j], "bg.topic");
                assert_non_null(r);
                assert_string_equal(r, "nhi.envelopes.v1");
            }
        if (!found)
            fail_msg("%s was not dead-lettered", dl[i].id);
    }
    bg_rb_msgs_free(m, n);

    /* the revocation command: signed by the worker */
    want = 1;
    assert_true(h_read_until(mock.bootstrap, "nhi.revocations.v1", at_least, &want, 30, &m, &n));
    assert_int_equal(n, 1);
    FILE *f = fopen("cmd.bin", "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(m[0].value, 1, m[0].value_len, f), m[0].value_len);
    fclose(f);
    assert_int_equal(
        cli("verify.out", "verify-command", "--pub", "worker.pub", "--in", "cmd.bin", NULL), 0);
    assert_true(file_has("verify.out", "verified: signed by key 'worker-1'"));
    assert_int_equal(
        cli("verify.out", "verify-command", "--pub", "alice.pub", "--in", "cmd.bin", NULL), 1);
    assert_true(file_has("verify.out", "not verified"));
    uint8_t *body = m[0].value;
    body[m[0].value_len / 2] ^= 0x01;
    f = fopen("cmd-changed.bin", "wb");
    assert_non_null(f);
    fwrite(m[0].value, 1, m[0].value_len, f);
    fclose(f);
    assert_int_equal(
        cli("verify.out", "verify-command", "--pub", "worker.pub", "--in", "cmd-changed.bin", NULL),
        1);
    bg_rb_msgs_free(m, n);

    /* a reloaded policy's approvers check what is read from then on: alice
     * is no longer trusted */
    snprintf(policy, sizeof policy,
             "windows: {bucket: 60s, correlation: 15m, learning_period: 1h}\n"
             "classes:\n"
             "  - name: svc\n"
             "    match: {identity_prefix: \"spiffe://t/svc/\"}\n"
             "    limits: {api_calls_per_min: 100}\n"
             "approvers:\n"
             "  - key_id: bob-2026\n    public_key: %s\n",
             bob_pub);
    h_write_file("policy.tmp", policy);
    assert_int_equal(rename("policy.tmp", "policy.yaml"), 0);
    double end = h_now() + 15;
    while (!file_has("worker.log", "policy reloaded") && h_now() < end)
        usleep(100000);
    assert_true(file_has("worker.log", "policy reloaded"));
    assert_int_equal(cli_envelope("create", "e-after-reload", P, NULL, "alice", "alice-2026"), 0);
    want = 6;
    assert_true(h_read_until(mock.bootstrap, "nhi.deadletter.v1", at_least, &want, 30, &m, &n));
    bool after = false;
    for (size_t j = 0; j < n; j++)
        if (m[j].key_len == 14 && !memcmp(m[j].key, "e-after-reload", 14)) {
            const char *r = bg_rb_header(&m[j], "bg.reason");
            after = r && !strcmp(r, "untrusted_key");
        }
    bg_rb_msgs_free(m, n);
    assert_true(after);

    kill(worker, SIGTERM);
    assert_int_equal(h_wait(worker, 20), 0);
    worker = -1;
    rd_kafka_destroy(p);
    bg_sign_wipe(sk, sizeof sk);
    /* with approvers configured there is no "accepted unsigned" warning; the
     * secret key never reaches a log */
    assert_false(file_has("worker.log", "accepted unsigned"));
    assert_true(file_has("worker.log", "refused"));
    assert_false(file_has("worker.log", worker_secret));
    assert_false(file_has("cli.log", worker_secret));
    char alice_secret[128];
    read_line("alice.key", alice_secret, sizeof alice_secret);
    assert_false(file_has("cli.log", alice_secret));
    assert_false(file_has("envelope.out", alice_secret));
}

static void test_cli_errors(void **state) {
    (void)state;
    assert_int_equal(cli(NULL, "keygen", "--out", "cli", NULL), 0);
    assert_int_equal(cli(NULL, "keygen", NULL), 2);
    const char *base[] = {"envelope", "create", "--identity",    "spiffe://x", "--from", "now",
                          "--to",     "+2h",    "--approved-by", "alice",      "--key",  "cli.key",
                          "--key-id", "k",      "--out",         "e.bin"};
#define ENV(...) cli("err.out", base[0], base[1], __VA_ARGS__, NULL)
    assert_int_equal(ENV("--identity", "spiffe://x", "--from", "now", "--to", "+2h",
                         "--approved-by", "alice", "--key", "cli.key", "--key-id", "k", "--out",
                         "e.bin"),
                     0);
    (void)base;
    /* bad times */
    assert_int_equal(ENV("--identity", "x", "--from", "yesterday", "--to", "+2h", "--approved-by",
                         "a", "--key", "cli.key", "--key-id", "k", "--out", "e.bin"),
                     2);
    assert_int_equal(ENV("--identity", "x", "--from", "now", "--to", "+2x", "--approved-by", "a",
                         "--key", "cli.key", "--key-id", "k", "--out", "e.bin"),
                     2);
    assert_int_equal(ENV("--identity", "x", "--from", "2026-13-01T00:00:00Z", "--to", "+2h",
                         "--approved-by", "a", "--key", "cli.key", "--key-id", "k", "--out",
                         "e.bin"),
                     2);
    assert_int_equal(ENV("--identity", "x", "--from", "+2h", "--to", "now", "--approved-by", "a",
                         "--key", "cli.key", "--key-id", "k", "--out", "e.bin"),
                     2);
    assert_true(file_has("cli.log", "--to must be later than --from"));
    /* missing selector, approver, key */
    assert_int_equal(ENV("--from", "now", "--to", "+2h", "--approved-by", "a", "--key", "cli.key",
                         "--key-id", "k", "--out", "e.bin"),
                     2);
    assert_true(file_has("cli.log", "an envelope needs a selector"));
    assert_int_equal(ENV("--owner", "o", "--from", "now", "--to", "+2h", "--key", "cli.key",
                         "--key-id", "k", "--out", "e.bin"),
                     2);
    assert_int_equal(
        ENV("--owner", "o", "--from", "now", "--to", "+2h", "--approved-by", "a", "--out", "e.bin"),
        2);
    assert_int_equal(ENV("--owner", "o", "--from", "now", "--to", "+2h", "--approved-by", "a",
                         "--key", "cli.key", "--key-id", "k", "--max-new-secrets", "-1"),
                     2);
    assert_int_equal(ENV("--owner", "o", "--bogus", "1"), 2);
    /* unreadable key, loose permissions */
    assert_int_equal(ENV("--owner", "o", "--from", "now", "--to", "+2h", "--approved-by", "a",
                         "--key", "missing.key", "--key-id", "k", "--out", "e.bin"),
                     2);
    assert_true(file_has("cli.log", "cannot read key file 'missing.key'"));
    assert_int_equal(chmod("cli.key", 0644), 0);
    assert_int_equal(ENV("--owner", "o", "--from", "now", "--to", "+2h", "--approved-by", "a",
                         "--key", "cli.key", "--key-id", "k", "--out", "e.bin"),
                     2);
    assert_true(file_has("cli.log", "readable or writable by group or others (mode 0644)"));
    /* the worker refuses a loose signing key too, with exit 2 */
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "kafka:\n  bootstrap.servers: %s\nhttp:\n  listen: \"\"\n"
             "signing:\n  key_file: cli.key\n  key_id: w\n",
             mock.bootstrap);
    h_write_file("loose.yaml", cfg);
    assert_int_equal(cli(NULL, "run", "--config", "loose.yaml", NULL), 2);
    assert_int_equal(chmod("cli.key", 0600), 0);
    /* revoke needs its ID */
    assert_int_equal(cli(NULL, "envelope", "revoke", "--owner", "o", NULL), 2);
    assert_int_equal(cli(NULL, "envelope", NULL), 2);
    /* verify-command usage */
    assert_int_equal(cli(NULL, "verify-command", NULL), 2);
    assert_int_equal(cli(NULL, "verify-command", "--pub", "missing.pub", NULL), 2);
    assert_int_equal(cli(NULL, "verify-command", "--pub", "cli.pub", "--in", "missing.bin", NULL),
                     2);
    /* an envelope is not a revocation command */
    assert_int_equal(cli("err.out", "verify-command", "--pub", "cli.pub", "--in", "e.bin", NULL),
                     1);
    assert_true(file_has("err.out", "not verified"));
#undef ENV
}

static int setup(void **state) {
    (void)state;
    h_tmpdir(dir, sizeof dir, "trust");
    if (h_mock_start(&mock, 2))
        return -1;
    char e[256];
    return bg_sign_init() || bg_codec_new(&codec, e, sizeof e) ||
                   bg_codec_add_defaults(codec, e, sizeof e)
               ? -1
               : 0;
}

static int teardown(void **state) {
    (void)state;
    if (worker > 0 && kill(worker, SIGKILL) == 0)
        h_wait(worker, 5);
    h_mock_stop(&mock);
    bg_codec_free(codec);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signed_envelopes_and_commands),
        cmocka_unit_test(test_cli_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
