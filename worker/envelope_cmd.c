/* The approver's and the secret manager's side of "Trust" (DESIGN.md):
 *
 *   burstguard keygen --out PREFIX
 *   burstguard envelope create SELECTOR... --from T --to T [limits] --approved-by NAME
 *                              [--ticket T] --key FILE --key-id ID [--brokers LIST]
 *                              [--id ENVELOPE_ID] [--schema-id N] [--topic T] [--out FILE]
 *   burstguard envelope revoke ID (the same flags as create)
 *   burstguard verify-command --pub FILE [--in FILE|-]
 *
 * `envelope revoke` does not read the topic: it takes the same selector,
 * window and approver flags as `create` and produces the envelope again,
 * signed, with revoked: true (a revoked envelope never matches, so its
 * limits do not matter). Times are ISO-8601 (2026-12-01T06:00:00Z, +hh:mm
 * offsets), epoch ms, `now`, or relative to now (`+2h`, `-30m`).
 * --out FILE writes the framed record to FILE instead of producing it. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <sodium.h>

#include "cli.h"
#include "codec.h"
#include "policy_load.h"
#include "sign.h"
#include "yaml_doc.h"

/* ------------------------------------------------------------------------ */
/* Times                                                                    */
/* ------------------------------------------------------------------------ */

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool parse_when(const char *s, int64_t now, int64_t *out) {
    if (!strcmp(s, "now")) {
        *out = now;
        return true;
    }
    if (s[0] == '+' || s[0] == '-') {
        int64_t d;
        if (!s[1] || !bg_yaml_parse_duration(s + 1, &d) || d > INT64_C(100) * 365 * 86400000)
            return false;
        *out = s[0] == '+' ? now + d : now - d;
        return *out >= 0;
    }
    return bg_policy_parse_time(s, out);
}

static void format_time(int64_t ms, char *buf, size_t n) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    if (k == 0 || k >= n)
        return;
    if (ms % 1000)
        snprintf(buf + k, n - k, ".%03dZ", (int)(ms % 1000));
    else
        snprintf(buf + k, n - k, "Z");
}

/* ------------------------------------------------------------------------ */
/* Envelope create / revoke                                                 */
/* ------------------------------------------------------------------------ */

typedef struct env_opts {
    const char *identity, *workload_class, *owner, *from, *to, *approved_by, *ticket;
    const char *key, *key_id, *brokers, *id, *topic, *out;
    long schema_id;
    bg_opt_i64 limits[5]; /* in limit_flags order */
    const char *dests[BG_MAX_ALLOWED_DESTS];
    uint32_t n_dests;
} env_opts;

static const char *const limit_flags[5] = {"--max-tokens-per-min", "--max-api-calls-per-min",
                                           "--max-cost-micros", "--max-new-secrets",
                                           "--max-new-destinations"};
static const char *const limit_words[5] = {"tokens per minute", "API calls per minute",
                                           "micro-dollars of cost over the window", "new secrets",
                                           "new destinations"};

static int env_usage(void) {
    return bg_cli_usage_error(
        "usage: burstguard envelope create|revoke [ID] --identity ID|--workload-class C|--owner O "
        "--from TIME --to TIME [--max-api-calls-per-min N] [--max-tokens-per-min N] "
        "[--max-cost-micros N] [--max-new-secrets N] [--max-new-destinations N] "
        "[--allow-destination D]... --approved-by NAME [--ticket T] --key FILE --key-id ID "
        "[--brokers LIST] [--id ENVELOPE_ID] [--schema-id N] [--topic T] [--out FILE]");
}

static bool str_ok(const char *what, const char *s) {
    if (!*s || strlen(s) > BG_MAX_STRING) {
        bg_cli_usage_error("%s must be non-empty and at most %u bytes", what, BG_MAX_STRING);
        return false;
    }
    return true;
}

static int parse_env_opts(int argc, char **argv, int first, env_opts *o) {
    memset(o, 0, sizeof *o);
    o->schema_id = bg_codec_default_id(BG_REC_ENVELOPE);
    o->brokers = "localhost:9092";
    o->topic = "nhi.envelopes.v1";
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            return bg_cli_usage_error("%s needs a value (see burstguard envelope --help)", a);
        const char *v = argv[++i];
        const char **slot = NULL;
        if (!strcmp(a, "--identity"))
            slot = &o->identity;
        else if (!strcmp(a, "--workload-class"))
            slot = &o->workload_class;
        else if (!strcmp(a, "--owner"))
            slot = &o->owner;
        else if (!strcmp(a, "--from"))
            slot = &o->from;
        else if (!strcmp(a, "--to"))
            slot = &o->to;
        else if (!strcmp(a, "--approved-by"))
            slot = &o->approved_by;
        else if (!strcmp(a, "--ticket"))
            slot = &o->ticket;
        else if (!strcmp(a, "--key"))
            slot = &o->key;
        else if (!strcmp(a, "--key-id"))
            slot = &o->key_id;
        else if (!strcmp(a, "--brokers"))
            slot = &o->brokers;
        else if (!strcmp(a, "--id"))
            slot = &o->id;
        else if (!strcmp(a, "--topic"))
            slot = &o->topic;
        else if (!strcmp(a, "--out"))
            slot = &o->out;
        if (slot) {
            if (*slot && slot != &o->brokers && slot != &o->topic)
                return bg_cli_usage_error("%s given twice", a);
            if (!str_ok(a, v))
                return 2;
            *slot = v;
            continue;
        }
        if (!strcmp(a, "--schema-id")) {
            if (bg_cli_parse_long(a, v, 1, INT32_MAX, &o->schema_id))
                return 2;
            continue;
        }
        if (!strcmp(a, "--allow-destination")) {
            if (o->n_dests == BG_MAX_ALLOWED_DESTS)
                return bg_cli_usage_error("more than %u --allow-destination", BG_MAX_ALLOWED_DESTS);
            if (!str_ok(a, v))
                return 2;
            o->dests[o->n_dests++] = v;
            continue;
        }
        int k;
        for (k = 0; k < 5; k++)
            if (!strcmp(a, limit_flags[k]))
                break;
        if (k == 5)
            return bg_cli_usage_error("unknown option '%s' (see burstguard envelope --help)", a);
        long n;
        if (bg_cli_parse_long(a, v, 0, LONG_MAX, &n))
            return 2;
        o->limits[k] = (bg_opt_i64){true, n};
    }
    if (!o->identity && !o->workload_class && !o->owner)
        return bg_cli_usage_error("an envelope needs a selector: --identity, --workload-class or "
                                  "--owner");
    if (!o->from || !o->to)
        return bg_cli_usage_error("--from and --to are required");
    if (!o->approved_by)
        return bg_cli_usage_error("--approved-by is required");
    if (!o->key || !o->key_id)
        return bg_cli_usage_error("--key and --key-id are required: envelopes are signed");
    return 0;
}

static bg_str view(const char *s) {
    return (bg_str){s, s ? (uint32_t)strlen(s) : 0};
}

typedef struct delivery {
    rd_kafka_resp_err_t err;
    int32_t partition;
    int64_t offset;
    bool done;
} delivery;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    delivery *d = opaque;
    d->err = m->err;
    d->partition = m->partition;
    d->offset = m->offset;
    d->done = true;
}

static int produce_record(const env_opts *o, const char *id, const bg_buf *b) {
    char e[512];
    delivery d = {0};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", o->brokers, e, sizeof e) ||
        rd_kafka_conf_set(conf, "partitioner", "murmur2_random", e, sizeof e) ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", e, sizeof e) ||
        rd_kafka_conf_set(conf, "message.timeout.ms", "30000", e, sizeof e)) {
        rd_kafka_conf_destroy(conf);
        return bg_cli_usage_error("--brokers: %s", e);
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, &d);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    if (!rk) {
        fprintf(stderr, "burstguard: cannot create producer: %s\n", e);
        return 1;
    }
    rd_kafka_resp_err_t err =
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_KEY(id, strlen(id)),
                          RD_KAFKA_V_VALUE(b->data, b->len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (!err)
        rd_kafka_flush(rk, 35000);
    rd_kafka_destroy(rk);
    if (err || !d.done || d.err) {
        fprintf(stderr, "burstguard: envelope %s not delivered to %s at %s: %s\n", id, o->topic,
                o->brokers,
                rd_kafka_err2str(err      ? err
                                 : d.done ? d.err
                                          : RD_KAFKA_RESP_ERR__TIMED_OUT));
        return 1;
    }
    printf("produced to %s partition %" PRId32 " offset %" PRId64 " (key %s)\n", o->topic,
           d.partition, d.offset, id);
    return 0;
}

static int write_out(const char *path, const bg_buf *b) {
    FILE *f = strcmp(path, "-") ? fopen(path, "wb") : stdout;
    if (!f) {
        fprintf(stderr, "burstguard: cannot write '%s': %s\n", path, strerror(errno));
        return 1;
    }
    bool ok = fwrite(b->data, 1, b->len, f) == b->len;
    if (f != stdout)
        ok = fclose(f) == 0 && ok;
    else
        ok = fflush(f) == 0 && ok;
    if (!ok) {
        fprintf(stderr, "burstguard: cannot write '%s'\n", path);
        return 1;
    }
    return 0;
}

static void describe(const bg_envelope_msg *m, const env_opts *o, FILE *f) {
    char a[40], b[40];
    format_time(m->not_before, a, sizeof a);
    format_time(m->not_after, b, sizeof b);
    fprintf(f, "%s envelope %.*s: ", m->revoked ? "revoked" : "authorised", (int)m->envelope_id.len,
            m->envelope_id.ptr);
    const char *sep = "";
    if (o->identity) {
        fprintf(f, "identity %s", o->identity);
        sep = " and ";
    }
    if (o->workload_class) {
        fprintf(f, "%sworkload class %s", sep, o->workload_class);
        sep = " and ";
    }
    if (o->owner)
        fprintf(f, "%sidentities of owner %s", sep, o->owner);
    int64_t mins = (m->not_after - m->not_before) / 60000;
    fprintf(f, ", from %s to %s (%" PRId64 " h %02" PRId64 " min)\n", a, b, mins / 60, mins % 60);
    if (m->revoked) {
        fprintf(f, "  it no longer authorises anything\n");
    } else {
        const bg_opt_i64 *l[5] = {&m->max_tokens_per_min, &m->max_api_calls_per_min,
                                  &m->max_cost_micros, &m->max_new_secrets,
                                  &m->max_new_destinations};
        bool any = false;
        for (int k = 0; k < 5; k++)
            if (l[k]->set) {
                fprintf(f, "  at most %" PRId64 " %s\n", l[k]->v, limit_words[k]);
                any = true;
            }
        if (!any)
            fprintf(f, "  no limit of its own: the class limits apply\n");
        if (!m->n_allowed_destinations)
            fprintf(f, "  to any destination\n");
        for (uint32_t i = 0; i < m->n_allowed_destinations; i++)
            fprintf(f, "  %s %.*s\n", i ? "or" : "only to", (int)m->allowed_destinations[i].len,
                    m->allowed_destinations[i].ptr);
    }
    fprintf(f, "  approved by %.*s%s%s, signed with key %.*s\n", (int)m->approved_by.len,
            m->approved_by.ptr, o->ticket ? ", ticket " : "", o->ticket ? o->ticket : "",
            (int)m->key_id.len, m->key_id.ptr);
}

static int envelope_make(int argc, char **argv, bool revoke) {
    env_opts o;
    const char *rid = NULL;
    int first = 2;
    if (revoke) {
        if (argc < 3 || argv[2][0] == '-')
            return bg_cli_usage_error("usage: burstguard envelope revoke ID --key FILE --key-id "
                                      "ID (and the selector, --from, --to, --approved-by of the "
                                      "envelope)");
        rid = argv[2];
        first = 3;
    }
    int rc = parse_env_opts(argc, argv, first, &o);
    if (rc)
        return rc;
    if (revoke && o.id && strcmp(o.id, rid))
        return bg_cli_usage_error("--id %s differs from the envelope ID %s", o.id, rid);
    if (revoke)
        o.id = rid;
    if (revoke && !str_ok("envelope ID", rid))
        return 2;
    int64_t now = now_ms(), nb, na;
    if (!parse_when(o.from, now, &nb))
        return bg_cli_usage_error("--from: expected an ISO-8601 time (2026-12-01T06:00:00Z), "
                                  "epoch ms, now, or +/- a duration (+2h, -30m); got '%s'",
                                  o.from);
    if (!parse_when(o.to, now, &na))
        return bg_cli_usage_error("--to: expected an ISO-8601 time (2026-12-01T06:00:00Z), "
                                  "epoch ms, now, or +/- a duration (+2h, -30m); got '%s'",
                                  o.to);
    if (na <= nb)
        return bg_cli_usage_error("--to must be later than --from");
    uint8_t sk[BG_SIGN_SECRET_BYTES];
    char errstr[512];
    if (bg_sign_load_secret(o.key, sk, errstr, sizeof errstr))
        return bg_cli_usage_error("%s", errstr);
    char gen_id[40];
    if (!o.id) {
        uint8_t r[8];
        randombytes_buf(r, sizeof r);
        snprintf(gen_id, sizeof gen_id, "env-%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2],
                 r[3], r[4], r[5], r[6], r[7]);
        o.id = gen_id;
    }
    bg_envelope_msg m;
    memset(&m, 0, sizeof m);
    m.envelope_id = view(o.id);
    m.identity = view(o.identity);
    m.workload_class = view(o.workload_class);
    m.owner = view(o.owner);
    m.not_before = nb;
    m.not_after = na;
    m.max_tokens_per_min = o.limits[0];
    m.max_api_calls_per_min = o.limits[1];
    m.max_cost_micros = o.limits[2];
    m.max_new_secrets = o.limits[3];
    m.max_new_destinations = o.limits[4];
    for (uint32_t i = 0; i < o.n_dests; i++)
        m.allowed_destinations[i] = view(o.dests[i]);
    m.n_allowed_destinations = o.n_dests;
    m.approved_by = view(o.approved_by);
    m.ticket = view(o.ticket);
    m.revoked = revoke;
    m.key_id = view(o.key_id);

    bg_codec *codec = NULL;
    bg_buf canon = {0}, framed = {0};
    uint8_t sig[BG_SIGN_BYTES];
    bg_err err = bg_codec_new(&codec, errstr, sizeof errstr);
    if (!err) {
        if (o.schema_id == bg_codec_default_id(BG_REC_ENVELOPE)) {
            err = bg_codec_add_defaults(codec, errstr, sizeof errstr);
        } else {
            const char *t = bg_codec_reader_schema(BG_REC_ENVELOPE);
            err = bg_codec_add_schema(codec, (int32_t)o.schema_id, t, strlen(t), errstr,
                                      sizeof errstr);
        }
    }
    if (!err && (err = bg_sign_envelope(codec, &m, sk, &canon, sig)))
        snprintf(errstr, sizeof errstr, "cannot sign the envelope: %s", bg_err_str(err));
    bg_sign_wipe(sk, sizeof sk);
    if (!err) {
        m.signature = (bg_str){(const char *)sig, BG_SIGN_BYTES};
        if ((err = bg_codec_encode_envelope(codec, (int32_t)o.schema_id, &m, &framed)))
            snprintf(errstr, sizeof errstr, "cannot encode the envelope: %s", bg_err_str(err));
    }
    if (err) {
        fprintf(stderr, "burstguard: %s\n", errstr);
        rc = 1;
    } else {
        describe(&m, &o, stdout);
        rc = o.out ? write_out(o.out, &framed) : produce_record(&o, o.id, &framed);
    }
    bg_buf_free(&canon);
    bg_buf_free(&framed);
    bg_codec_free(codec);
    return rc;
}

int bg_envelope_main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "create"))
        return envelope_make(argc, argv, false);
    if (argc >= 2 && !strcmp(argv[1], "revoke"))
        return envelope_make(argc, argv, true);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        env_usage();
        return 0;
    }
    return env_usage();
}

/* ------------------------------------------------------------------------ */
/* keygen, verify-command                                                   */
/* ------------------------------------------------------------------------ */

int bg_keygen_main(int argc, char **argv) {
    if (argc != 3 || strcmp(argv[1], "--out") != 0 || !argv[2][0])
        return bg_cli_usage_error("usage: burstguard keygen --out PREFIX");
    char errstr[512];
    bg_err err = bg_sign_keygen(argv[2], errstr, sizeof errstr);
    if (err) {
        fprintf(stderr, "burstguard: %s\n", errstr);
        return err == BG_ERR_IO ? 1 : 2;
    }
    char pub[4200];
    snprintf(pub, sizeof pub, "%s.pub", argv[2]);
    uint8_t pk[BG_SIGN_PUBLIC_BYTES];
    char b64[sodium_base64_ENCODED_LEN(BG_SIGN_PUBLIC_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    if (bg_sign_load_public(pub, pk, errstr, sizeof errstr)) {
        fprintf(stderr, "burstguard: %s\n", errstr);
        return 1;
    }
    sodium_bin2base64(b64, sizeof b64, pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
    printf("wrote %s.key (Ed25519 secret key, base64, mode 0600) and %s (public key)\n"
           "public key for the policy's approvers: %s\n",
           argv[2], pub, b64);
    return 0;
}

int bg_verify_command_main(int argc, char **argv) {
    const char *pub = NULL, *in = "-";
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--pub"))
            pub = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--in"))
            in = argv[++i];
        else
            return bg_cli_usage_error("usage: burstguard verify-command --pub FILE [--in FILE|-]");
    }
    if (!pub)
        return bg_cli_usage_error("usage: burstguard verify-command --pub FILE [--in FILE|-]");
    uint8_t pk[BG_SIGN_PUBLIC_BYTES];
    char errstr[512];
    if (bg_sign_load_public(pub, pk, errstr, sizeof errstr))
        return bg_cli_usage_error("%s", errstr);
    FILE *f = strcmp(in, "-") ? fopen(in, "rb") : stdin;
    if (!f)
        return bg_cli_usage_error("cannot read '%s': %s", in, strerror(errno));
    uint8_t *buf = malloc(BG_MAX_MESSAGE + 1);
    if (!buf) {
        if (f != stdin)
            fclose(f);
        fprintf(stderr, "burstguard: out of memory\n");
        return 1;
    }
    size_t len = fread(buf, 1, BG_MAX_MESSAGE + 1, f);
    bool rerr = ferror(f) != 0;
    if (f != stdin)
        fclose(f);
    if (rerr) {
        free(buf);
        return bg_cli_usage_error("cannot read '%s'", in);
    }
    bg_codec *codec = NULL;
    bg_buf canon = {0};
    char key_id[BG_MAX_STRING + 1], why[512] = "";
    uint8_t sig[BG_SIGN_BYTES];
    size_t sig_len = 0;
    int rc = 1;
    bg_err err = bg_codec_new(&codec, why, sizeof why);
    if (!err)
        err = bg_codec_add_defaults(codec, why, sizeof why);
    if (!err && len > BG_MAX_MESSAGE) {
        err = BG_ERR_OVERSIZED;
        snprintf(why, sizeof why, "input is larger than %u bytes", BG_MAX_MESSAGE);
    }
    if (!err)
        err = bg_codec_revocation_unsign(codec, buf, len, &canon, key_id, sizeof key_id, sig,
                                         &sig_len, why, sizeof why);
    if (err) {
        printf("not verified: %s\n", why[0] ? why : bg_err_str(err));
    } else if (!sig_len || !key_id[0]) {
        printf("not verified: the command is unsigned\n");
    } else if (!bg_sign_verify(canon.data, canon.len, sig, sig_len, pk)) {
        printf("not verified: the signature of key '%.80s' does not verify with %s\n", key_id, pub);
    } else {
        printf("verified: signed by key '%.80s'\n", key_id);
        rc = 0;
    }
    bg_buf_free(&canon);
    bg_codec_free(codec);
    free(buf);
    return rc;
}
