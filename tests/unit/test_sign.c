/* Unit tests for worker/sign.c and the canonical bytes of worker/codec.c:
 * key files (format, 0600, loose permissions refused), envelope signatures
 * checked against the policy's approvers (every refusal reason, a tampered
 * field, an owner-scoped key), the approvers section of the policy loader,
 * and signed revocation commands: one verifies, and a change of any byte of
 * the framed message makes it fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "worker/codec.h"
#include "worker/policy_load.h"
#include "worker/sign.h"

static bg_str S(const char *s) {
    bg_str r = {s, s ? (uint32_t)strlen(s) : 0};
    return r;
}

static char tmpdir[64];

static int setup_dir(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bg_test_sign.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void keypair(const char *name, uint8_t sk[64], uint8_t pk[32]) {
    static unsigned seq; /* keygen never overwrites: a fresh prefix per fixture */
    char prefix[128], path[160], err[512];
    snprintf(prefix, sizeof prefix, "%s/%s%u", tmpdir, name, seq++);
    assert_int_equal(bg_sign_keygen(prefix, err, sizeof err), BG_OK);
    snprintf(path, sizeof path, "%s.key", prefix);
    assert_int_equal(bg_sign_load_secret(path, sk, err, sizeof err), BG_OK);
    snprintf(path, sizeof path, "%s.pub", prefix);
    assert_int_equal(bg_sign_load_public(path, pk, err, sizeof err), BG_OK);
}

static void test_key_files(void **state) {
    (void)state;
    char prefix[128], path[160], err[512];
    uint8_t sk[64], pk[32];
    snprintf(prefix, sizeof prefix, "%s/k", tmpdir);
    assert_int_equal(bg_sign_keygen(prefix, err, sizeof err), BG_OK);
    snprintf(path, sizeof path, "%s.key", prefix);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(bg_sign_load_secret(path, sk, err, sizeof err), BG_OK);
    /* the public half of a libsodium secret key is its last 32 bytes */
    char pub[160];
    snprintf(pub, sizeof pub, "%s.pub", prefix);
    assert_int_equal(bg_sign_load_public(pub, pk, err, sizeof err), BG_OK);
    assert_memory_equal(sk + 32, pk, 32);
    /* never overwrites a key */
    assert_int_equal(bg_sign_keygen(prefix, err, sizeof err), BG_ERR_IO);
    /* loose permissions */
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(bg_sign_load_secret(path, sk, err, sizeof err), BG_ERR_CONFIG);
    assert_non_null(strstr(err, "group or others"));
    assert_int_equal(chmod(path, 0604), 0);
    assert_int_equal(bg_sign_load_secret(path, sk, err, sizeof err), BG_ERR_CONFIG);
    /* unreadable, not a key, a public key where a secret one is expected */
    snprintf(path, sizeof path, "%s/missing.key", tmpdir);
    assert_int_equal(bg_sign_load_secret(path, sk, err, sizeof err), BG_ERR_IO);
    snprintf(path, sizeof path, "%s/junk.key", tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not base64 !!!\n", f);
    fclose(f);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(bg_sign_load_secret(path, sk, err, sizeof err), BG_ERR_CONFIG);
    assert_int_equal(bg_sign_load_secret(pub, sk, err, sizeof err), BG_ERR_CONFIG); /* 0644 */
    assert_int_equal(chmod(pub, 0600), 0);
    assert_int_equal(bg_sign_load_secret(pub, sk, err, sizeof err), BG_ERR_CONFIG); /* 32 bytes */
}

/* ------------------------------------------------------------------------ */

static const char *const dests[] = {"api.openai.com", "s3.example"};

static bg_envelope_msg sample_envelope(const char *key_id) {
    bg_envelope_msg m;
    memset(&m, 0, sizeof m);
    m.envelope_id = S("chg-7");
    m.identity = S("spiffe://prod/etl/job-007");
    m.owner = S("data-eng");
    m.not_before = INT64_C(1796083200000);
    m.not_after = INT64_C(1796083200000) + 3600000;
    m.max_api_calls_per_min = (bg_opt_i64){true, 5000};
    m.allowed_destinations[0] = S(dests[0]);
    m.allowed_destinations[1] = S(dests[1]);
    m.n_allowed_destinations = 2;
    m.approved_by = S("alice");
    m.ticket = S("CHG-7");
    m.key_id = S(key_id);
    return m;
}

typedef struct fixture {
    bg_codec *codec;
    bg_buf scratch;
    uint8_t sk_a[64], pk_a[32], sk_b[64], pk_b[32];
    bg_approver ap[2];
    char *owners_b[1];
} fixture;

static int setup_fix(void **state) {
    fixture *x = calloc(1, sizeof *x);
    char err[256];
    if (!x || bg_codec_new(&x->codec, err, sizeof err) ||
        bg_codec_add_defaults(x->codec, err, sizeof err))
        return -1;
    keypair("a", x->sk_a, x->pk_a);
    keypair("b", x->sk_b, x->pk_b);
    x->ap[0].key_id = (char *)"alice-2026";
    memcpy(x->ap[0].public_key, x->pk_a, 32);
    x->ap[1].key_id = (char *)"bob-2026"; /* may only authorise team-web's envelopes */
    memcpy(x->ap[1].public_key, x->pk_b, 32);
    x->owners_b[0] = (char *)"team-web";
    x->ap[1].owners = x->owners_b;
    x->ap[1].n_owners = 1;
    *state = x;
    return 0;
}

static int teardown_fix(void **state) {
    fixture *x = *state;
    bg_buf_free(&x->scratch);
    bg_codec_free(x->codec);
    free(x);
    return 0;
}

static bg_err check(fixture *x, const bg_envelope_msg *m, char *why, size_t n) {
    return bg_sign_check_envelope(x->codec, x->ap, 2, m, &x->scratch, why, n);
}

static void test_envelope_signatures(void **state) {
    fixture *x = *state;
    char why[256];
    uint8_t sig[64];
    bg_envelope_msg m = sample_envelope("alice-2026");
    assert_int_equal(check(x, &m, why, sizeof why), BG_ERR_UNSIGNED);
    assert_int_equal(bg_sign_envelope(x->codec, &m, x->sk_a, &x->scratch, sig), BG_OK);
    m.signature = (bg_str){(const char *)sig, 64};
    assert_int_equal(check(x, &m, why, sizeof why), BG_OK);

    /* through the wire: encode framed, decode, still verifies */
    bg_buf framed = {0};
    assert_int_equal(bg_codec_encode_envelope(x->codec, 4, &m, &framed), BG_OK);
    bg_envelope_msg d;
    assert_int_equal(
        bg_codec_decode_envelope(x->codec, framed.data, framed.len, &d, why, sizeof why), BG_OK);
    assert_int_equal(check(x, &d, why, sizeof why), BG_OK);

    /* every field is covered: tamper one at a time */
    bg_envelope_msg t = m;
    t.max_api_calls_per_min.v = 50000;
    assert_int_equal(check(x, &t, why, sizeof why), BG_ERR_BAD_SIGNATURE);
    t = m;
    t.not_after += 1;
    assert_int_equal(check(x, &t, why, sizeof why), BG_ERR_BAD_SIGNATURE);
    t = m;
    t.allowed_destinations[1] = S("paste.exfil.example");
    assert_int_equal(check(x, &t, why, sizeof why), BG_ERR_BAD_SIGNATURE);
    t = m;
    t.n_allowed_destinations = 1;
    assert_int_equal(check(x, &t, why, sizeof why), BG_ERR_BAD_SIGNATURE);
    t = m;
    t.identity = S("spiffe://prod/etl/job-008");
    assert_int_equal(check(x, &t, why, sizeof why), BG_ERR_BAD_SIGNATURE);
    t = m;
    t.revoked = true;
    assert_int_equal(check(x, &t, why, sizeof why), BG_ERR_BAD_SIGNATURE);
    /* a flipped signature bit, a short signature */
    uint8_t bad[64];
    memcpy(bad, sig, 64);
    bad[17] ^= 0x10;
    t = m;
    t.signature = (bg_str){(const char *)bad, 64};
    assert_int_equal(check(x, &t, why, sizeof why), BG_ERR_BAD_SIGNATURE);
    t.signature = (bg_str){(const char *)sig, 63};
    assert_int_equal(check(x, &t, why, sizeof why), BG_ERR_BAD_SIGNATURE);
    /* key_id is covered too: alice's signature relabelled as bob's */
    t = m;
    t.key_id = S("bob-2026");
    assert_int_equal(check(x, &t, why, sizeof why), BG_ERR_BAD_SIGNATURE);
    /* unknown key */
    t = sample_envelope("mallory");
    assert_int_equal(bg_sign_envelope(x->codec, &t, x->sk_a, &x->scratch, sig), BG_OK);
    t.signature = (bg_str){(const char *)sig, 64};
    assert_int_equal(check(x, &t, why, sizeof why), BG_ERR_UNTRUSTED_KEY);
    assert_non_null(strstr(why, "mallory"));
    /* signed by key b under a's name */
    t = sample_envelope("alice-2026");
    assert_int_equal(bg_sign_envelope(x->codec, &t, x->sk_b, &x->scratch, sig), BG_OK);
    t.signature = (bg_str){(const char *)sig, 64};
    assert_int_equal(check(x, &t, why, sizeof why), BG_ERR_BAD_SIGNATURE);
    bg_buf_free(&framed);
}

static void test_key_scope(void **state) {
    fixture *x = *state;
    char why[256];
    uint8_t sig[64];
    /* bob may sign team-web's envelopes... */
    bg_envelope_msg m = sample_envelope("bob-2026");
    m.owner = S("team-web");
    assert_int_equal(bg_sign_envelope(x->codec, &m, x->sk_b, &x->scratch, sig), BG_OK);
    m.signature = (bg_str){(const char *)sig, 64};
    assert_int_equal(check(x, &m, why, sizeof why), BG_OK);
    /* ...but not data-eng's identities, */
    m = sample_envelope("bob-2026");
    assert_int_equal(bg_sign_envelope(x->codec, &m, x->sk_b, &x->scratch, sig), BG_OK);
    m.signature = (bg_str){(const char *)sig, 64};
    assert_int_equal(check(x, &m, why, sizeof why), BG_ERR_KEY_SCOPE);
    assert_non_null(strstr(why, "data-eng"));
    /* nor an envelope without an owner (it would cover any owner's identity) */
    m = sample_envelope("bob-2026");
    m.owner = (bg_str){NULL, 0};
    assert_int_equal(bg_sign_envelope(x->codec, &m, x->sk_b, &x->scratch, sig), BG_OK);
    m.signature = (bg_str){(const char *)sig, 64};
    assert_int_equal(check(x, &m, why, sizeof why), BG_ERR_KEY_SCOPE);
    /* a class-scoped approver */
    char *classes[1] = {(char *)"etl"};
    x->ap[1].workload_classes = classes;
    x->ap[1].n_workload_classes = 1;
    m = sample_envelope("bob-2026");
    m.owner = S("team-web");
    m.workload_class = S("ci");
    assert_int_equal(bg_sign_envelope(x->codec, &m, x->sk_b, &x->scratch, sig), BG_OK);
    m.signature = (bg_str){(const char *)sig, 64};
    assert_int_equal(check(x, &m, why, sizeof why), BG_ERR_KEY_SCOPE);
    m.workload_class = S("etl");
    m.signature = (bg_str){NULL, 0};
    assert_int_equal(bg_sign_envelope(x->codec, &m, x->sk_b, &x->scratch, sig), BG_OK);
    m.signature = (bg_str){(const char *)sig, 64};
    assert_int_equal(check(x, &m, why, sizeof why), BG_OK);
    x->ap[1].workload_classes = NULL;
    x->ap[1].n_workload_classes = 0;
}

/* ------------------------------------------------------------------------ */

static void sign_command(fixture *x, bg_buf *framed) {
    bg_revocation r;
    memset(&r, 0, sizeof r);
    snprintf(r.command_id, sizeof r.command_id, "cmd-0123456789abcdef");
    snprintf(r.verdict_id, sizeof r.verdict_id, "v-fedcba9876543210");
    r.identity = "spiffe://prod/agent/bot-013";
    r.target = BG_TARGET_SECRET;
    r.secret_id = "sec-bot-013-sts-7f3a";
    r.reason = "new secret used against a never-seen destination";
    r.issued_at = INT64_C(1796083200000);
    bg_buf canon = {0};
    uint8_t sig[64];
    assert_int_equal(bg_codec_canonical_revocation(x->codec, &r, "worker-1", &canon), BG_OK);
    bg_sign_detached(canon.data, canon.len, x->sk_a, sig);
    bg_emit_meta meta = {.key_id = "worker-1", .signature = sig, .signature_len = 64};
    assert_int_equal(bg_codec_encode_revocation(x->codec, &r, &meta, framed), BG_OK);
    bg_buf_free(&canon);
}

static bool command_verifies(fixture *x, const uint8_t *b, size_t len) {
    bg_buf canon = {0};
    char key_id[128], why[256];
    uint8_t sig[64];
    size_t sig_len = 0;
    bool ok = bg_codec_revocation_unsign(x->codec, b, len, &canon, key_id, sizeof key_id, sig,
                                         &sig_len, why, sizeof why) == BG_OK &&
              sig_len == 64 && bg_sign_verify(canon.data, canon.len, sig, sig_len, x->pk_a);
    bg_buf_free(&canon);
    return ok;
}

static void test_revocation_every_byte(void **state) {
    fixture *x = *state;
    bg_buf framed = {0};
    sign_command(x, &framed);
    assert_true(command_verifies(x, framed.data, framed.len));
    /* the recipe of the README: signature is the last field, so the canonical
     * bytes are the body less its last 67 bytes (0x02, 0x80 0x01, 64 bytes),
     * then the null branch 0x00 */
    bg_buf canon = {0};
    char key_id[64], why[128];
    uint8_t sg[64];
    size_t sl = 0;
    assert_int_equal(bg_codec_revocation_unsign(x->codec, framed.data, framed.len, &canon, key_id,
                                                sizeof key_id, sg, &sl, why, sizeof why),
                     BG_OK);
    assert_string_equal(key_id, "worker-1");
    size_t body = framed.len - 5;
    assert_int_equal(canon.len, body - 67 + 1);
    assert_memory_equal(canon.data, framed.data + 5, body - 67);
    assert_int_equal(canon.data[canon.len - 1], 0x00);
    assert_int_equal(framed.data[framed.len - 67], 0x02);
    assert_memory_equal(sg, framed.data + framed.len - 64, 64);
    bg_buf_free(&canon);
    uint8_t *copy = malloc(framed.len + 1);
    assert_non_null(copy);
    static const uint8_t masks[] = {0x01, 0x80, 0xff};
    for (size_t i = 0; i < framed.len; i++)
        for (size_t k = 0; k < sizeof masks; k++) {
            memcpy(copy, framed.data, framed.len);
            copy[i] ^= masks[k];
            if (command_verifies(x, copy, framed.len))
                fail_msg("byte %zu ^ 0x%02x still verifies", i, masks[k]);
        }
    /* truncated, or with a byte appended */
    for (size_t n = 0; n < framed.len; n++)
        assert_false(command_verifies(x, framed.data, n));
    memcpy(copy, framed.data, framed.len);
    copy[framed.len] = 0;
    assert_false(command_verifies(x, copy, framed.len + 1));
    free(copy);
    bg_buf_free(&framed);
}

static void test_revocation_unsigned(void **state) {
    fixture *x = *state;
    bg_revocation r;
    memset(&r, 0, sizeof r);
    snprintf(r.command_id, sizeof r.command_id, "c");
    snprintf(r.verdict_id, sizeof r.verdict_id, "v");
    r.identity = "i";
    r.secret_id = "s";
    r.reason = "x";
    bg_buf framed = {0}, canon = {0};
    assert_int_equal(bg_codec_encode_revocation(x->codec, &r, NULL, &framed), BG_OK);
    char key_id[64], why[256];
    uint8_t sig[64];
    size_t sig_len = 99;
    assert_int_equal(bg_codec_revocation_unsign(x->codec, framed.data, framed.len, &canon, key_id,
                                                sizeof key_id, sig, &sig_len, why, sizeof why),
                     BG_OK);
    assert_int_equal(sig_len, 0);
    assert_string_equal(key_id, "");
    /* an envelope's schema id is not a command */
    framed.data[4] = 4;
    assert_int_not_equal(bg_codec_revocation_unsign(x->codec, framed.data, framed.len, &canon,
                                                    key_id, sizeof key_id, sig, &sig_len, why,
                                                    sizeof why),
                         BG_OK);
    bg_buf_free(&framed);
    bg_buf_free(&canon);
}

/* ------------------------------------------------------------------------ */

static void test_policy_approvers(void **state) {
    fixture *x = *state;
    char b64[64], text[1024], err[512];
    sodium_bin2base64(b64, sizeof b64, x->pk_a, 32, sodium_base64_VARIANT_ORIGINAL);
    snprintf(text, sizeof text,
             "classes:\n  - name: etl\n"
             "approvers:\n"
             "  - key_id: alice-2026\n    public_key: %s\n"
             "  - key_id: bob\n    public_key: \"%s\"\n    owners: [team-web]\n"
             "    workload_classes: [etl]\n",
             b64, b64);
    bg_policy p;
    assert_int_equal(bg_policy_load_text("p.yaml", text, strlen(text), &p, err, sizeof err), BG_OK);
    assert_int_equal(p.n_approvers, 2);
    assert_string_equal(p.approvers[0].key_id, "alice-2026");
    assert_memory_equal(p.approvers[0].public_key, x->pk_a, 32);
    assert_int_equal(p.approvers[0].n_owners, 0);
    assert_int_equal(p.approvers[1].n_owners, 1);
    assert_string_equal(p.approvers[1].owners[0], "team-web");
    assert_string_equal(p.approvers[1].workload_classes[0], "etl");
    FILE *devnull = fopen("/dev/null", "w");
    bg_policy_print(&p, devnull);
    fclose(devnull);
    bg_policy_free(&p);

    static const struct {
        const char *text, *want;
    } bad[] = {
        {"approvers:\n  - key_id: a\n    public_key: AAAA\n",
         "p.yaml:3:17: approver 'a': public_key"},
        {"approvers:\n  - public_key: AAAA\n",
         "p.yaml:2:5: approvers[0]: an approver needs a key_id"},
        {"approvers:\n  - key_id: a\n", "approver 'a': public_key is required"},
        {"approvers: {a: b}\n", "p.yaml:1:12: approvers: expected a list"},
        {"approvers:\n  - key_id: a\n    public_key: K\n    colour: red\n", "colour"},
        {"approvers:\n  - key_id: a\n    public_key: K\n    workload_classes: [nope]\n",
         "workload_class 'nope' is not one of the classes"},
        {"approvers:\n  - key_id: a\n    public_key: K\n  - key_id: a\n    public_key: K\n",
         "approver key_id 'a' is used twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char t[512];
        /* K stands for a valid key, so that each case fails for its own reason */
        const char *src = bad[i].text;
        size_t o = 0;
        for (const char *s = src; *s && o + 50 < sizeof t; s++) {
            if (s[0] == 'K' && (s[1] == '\n')) {
                o += (size_t)snprintf(t + o, sizeof t - o, "%s", b64);
            } else {
                t[o++] = *s;
            }
        }
        t[o] = '\0';
        err[0] = '\0';
        assert_int_equal(bg_policy_load_text("p.yaml", t, strlen(t), &p, err, sizeof err),
                         BG_ERR_CONFIG);
        if (!strstr(err, bad[i].want))
            fail_msg("case %zu: got '%s', want '%s'", i, err, bad[i].want);
    }
}

int main(void) {
    if (bg_sign_init())
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_files),
        cmocka_unit_test_setup_teardown(test_envelope_signatures, setup_fix, teardown_fix),
        cmocka_unit_test_setup_teardown(test_key_scope, setup_fix, teardown_fix),
        cmocka_unit_test_setup_teardown(test_revocation_every_byte, setup_fix, teardown_fix),
        cmocka_unit_test_setup_teardown(test_revocation_unsigned, setup_fix, teardown_fix),
        cmocka_unit_test_setup_teardown(test_policy_approvers, setup_fix, teardown_fix),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
