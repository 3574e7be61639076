/* Tests of worker/codec.c and worker/codec_plan.c: the framed Avro codec.
 *
 * Avro-C is the reference: messages are encoded with it (through
 * bg_codec_encode_*) and, in the differential test, decoded by its generic
 * decoder too, field by field against ours. Hand-built bodies (the `wb`
 * builder below) cover what Avro-C would never write: negative lengths,
 * over-long varints, out-of-range indexes, trailing bytes.
 *
 * Where the two decoders legitimately disagree, ours is the stricter one and
 * the reason is one of our documented checks (caps on lengths and counts,
 * varints that overflow their type, boolean bytes other than 0/1, enum
 * indexes out of range, trailing bytes): see differential(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <avro.h>

#include "worker/codec.h"
#include "worker/codec_plan.h"

/* Avro-C mallocs whatever length a mutated message announces; under ASan a
 * failed huge allocation must return NULL (as in production) not abort. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
    /* full malloc stacks, so that the suppression below can see ref_read */
    return "allocator_may_return_null=1:fast_unwind_on_malloc=0:malloc_context_size=40";
}
/* Avro-C's generic decoder leaks the values of a read that fails midway; only
 * the reference decoder of the differential test (ref_read) does that. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:ref_read\n"; }

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static bg_codec *mk(void) {
    bg_codec *c = NULL;
    char err[256] = "";
    assert_int_equal(bg_codec_new(&c, err, sizeof err), BG_OK);
    assert_int_equal(bg_codec_add_defaults(c, err, sizeof err), BG_OK);
    return c;
}

static void add(bg_codec *c, int32_t id, const char *json) {
    char err[512] = "";
    bg_err e = bg_codec_add_schema(c, id, json, strlen(json), err, sizeof err);
    if (e != BG_OK)
        fail_msg("add_schema %d: %s (%s)", id, bg_err_name(e), err);
}

static bg_str S(const char *s) { return (bg_str){s, (uint32_t)strlen(s)}; }
static const bg_str NUL_STR = {NULL, 0};

static bool str_eq(bg_str a, bg_str b) {
    if (!a.ptr || !b.ptr)
        return !a.ptr && !b.ptr;
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

#define CHECK_STR(f)                                                              \
    do {                                                                          \
        if (!str_eq(a->f, b->f)) {                                                \
            print_error("field " #f " differs: '%.*s'%s vs '%.*s'%s\n", (int)a->f.len, \
                        a->f.ptr ? a->f.ptr : "", a->f.ptr ? "" : "(null)", (int)b->f.len, \
                        b->f.ptr ? b->f.ptr : "", b->f.ptr ? "" : "(null)");      \
            return false;                                                         \
        }                                                                         \
    } while (0)
#define CHECK_NUM(f)                                                              \
    do {                                                                          \
        if (a->f != b->f) {                                                       \
            print_error("field " #f " differs: %lld vs %lld\n", (long long)a->f,  \
                        (long long)b->f);                                         \
            return false;                                                         \
        }                                                                         \
    } while (0)

static bool ev_equal(const bg_event *a, const bg_event *b) {
    CHECK_NUM(kind);
    CHECK_STR(event_id);
    CHECK_STR(identity);
    CHECK_STR(owner);
    CHECK_STR(workload_class);
    CHECK_NUM(event_time);
    CHECK_STR(trace_id);
    switch (a->kind) {
    case BG_EV_USAGE:
        CHECK_STR(u.usage.api);
        CHECK_STR(u.usage.destination);
        CHECK_NUM(u.usage.api_calls);
        CHECK_NUM(u.usage.tokens_in);
        CHECK_NUM(u.usage.tokens_out);
        CHECK_NUM(u.usage.cost_micros);
        break;
    case BG_EV_SECRET:
        CHECK_STR(u.secret.secret_id);
        CHECK_NUM(u.secret.secret_kind);
        CHECK_STR(u.secret.issuer);
        CHECK_NUM(u.secret.n_scopes);
        for (uint32_t i = 0; i < a->u.secret.n_scopes; i++)
            CHECK_STR(u.secret.scopes[i]);
        CHECK_NUM(u.secret.ttl_seconds);
        CHECK_STR(u.secret.subject);
        break;
    case BG_EV_TOOLCALL:
        CHECK_STR(u.tool.tool);
        CHECK_STR(u.tool.destination);
        CHECK_STR(u.tool.operation);
        CHECK_STR(u.tool.credential_id);
        CHECK_STR(u.tool.parent_tool);
        CHECK_NUM(u.tool.side_effect);
        CHECK_NUM(u.tool.status);
        CHECK_NUM(u.tool.bytes_out);
        break;
    default:
        return false;
    }
    return true;
}

static bool env_equal(const bg_envelope_msg *a, const bg_envelope_msg *b) {
    CHECK_STR(envelope_id);
    CHECK_STR(identity);
    CHECK_STR(workload_class);
    CHECK_STR(owner);
    CHECK_NUM(not_before);
    CHECK_NUM(not_after);
#define CHECK_OPT(f)     \
    CHECK_NUM(f.set);    \
    if (a->f.set)        \
        CHECK_NUM(f.v)
    CHECK_OPT(max_tokens_per_min);
    CHECK_OPT(max_api_calls_per_min);
    CHECK_OPT(max_cost_micros);
    CHECK_OPT(max_new_secrets);
    CHECK_OPT(max_new_destinations);
    CHECK_NUM(n_allowed_destinations);
    for (uint32_t i = 0; i < a->n_allowed_destinations; i++)
        CHECK_STR(allowed_destinations[i]);
    CHECK_STR(approved_by);
    CHECK_STR(ticket);
    CHECK_NUM(revoked);
    CHECK_STR(key_id);
    CHECK_STR(signature);
    return true;
}

static bg_event usage_ev(void) {
    bg_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = BG_EV_USAGE;
    ev.event_id = S("ev-0001");
    ev.identity = S("spiffe://prod/ns/payments/sa/batch");
    ev.owner = S("team-payments");
    ev.workload_class = NUL_STR;
    ev.event_time = 1718000000123;
    ev.trace_id = S("");
    ev.u.usage.api = S("chat.completions");
    ev.u.usage.destination = S("api.openai.com");
    ev.u.usage.api_calls = 3;
    ev.u.usage.tokens_in = 1200;
    ev.u.usage.tokens_out = 350;
    ev.u.usage.cost_micros = -42;
    return ev;
}

static bg_event secret_ev(void) {
    bg_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = BG_EV_SECRET;
    ev.event_id = S("ev-s1");
    ev.identity = S("ci-bot");
    ev.owner = NUL_STR;
    ev.workload_class = S("ci");
    ev.event_time = 1718000001000;
    ev.trace_id = S("trace-9");
    ev.u.secret.secret_id = S("sec-123");
    ev.u.secret.secret_kind = BG_SK_CLOUD_SESSION;
    ev.u.secret.issuer = S("vault");
    ev.u.secret.n_scopes = 3;
    ev.u.secret.scopes[0] = S("s3:read");
    ev.u.secret.scopes[1] = S("");
    ev.u.secret.scopes[2] = S("kms:decrypt");
    ev.u.secret.ttl_seconds = 3600;
    ev.u.secret.subject = S("ci-bot-child");
    return ev;
}

static bg_event tool_ev(void) {
    bg_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = BG_EV_TOOLCALL;
    ev.event_id = S("ev-t1");
    ev.identity = S("agent-7");
    ev.owner = S("team-ai");
    ev.workload_class = S("agent");
    ev.event_time = 1;
    ev.trace_id = NUL_STR;
    ev.u.tool.tool = S("http.get");
    ev.u.tool.destination = S("internal.api");
    ev.u.tool.operation = S("GET /users");
    ev.u.tool.credential_id = S("sec-123");
    ev.u.tool.parent_tool = NUL_STR;
    ev.u.tool.side_effect = true;
    ev.u.tool.status = BG_TS_DENIED;
    ev.u.tool.bytes_out = 1 << 19;
    return ev;
}

static const uint8_t SIG[] = {0x00, 0xff, 0x10, 0x00, 0x7f};

static bg_envelope_msg envelope_msg(void) {
    bg_envelope_msg m;
    memset(&m, 0, sizeof m);
    m.envelope_id = S("env-1");
    m.identity = NUL_STR;
    m.workload_class = S("batch");
    m.owner = S("team-payments");
    m.not_before = 1718000000000;
    m.not_after = 1718003600000;
    m.max_tokens_per_min = (bg_opt_i64){true, 100000};
    m.max_api_calls_per_min = (bg_opt_i64){false, 0};
    m.max_cost_micros = (bg_opt_i64){true, 0};
    m.max_new_secrets = (bg_opt_i64){true, -1};
    m.max_new_destinations = (bg_opt_i64){false, 0};
    m.n_allowed_destinations = 2;
    m.allowed_destinations[0] = S("api.openai.com");
    m.allowed_destinations[1] = S("s3.amazonaws.com");
    m.approved_by = S("alice");
    m.ticket = S("CHG-1");
    m.revoked = false;
    m.key_id = S("k1");
    m.signature = (bg_str){(const char *)SIG, sizeof SIG};
    return m;
}

static bg_err dec(bg_codec *c, bg_event_kind k, const bg_buf *b, bg_event *out, char *why,
                  size_t n) {
    return bg_codec_decode_event(c, k, b->data, b->len, out, why, n);
}

/* Round trip through a given writer schema id. */
static void roundtrip_event(bg_codec *c, int32_t id, const bg_event *ev) {
    bg_buf b = {0};
    bg_err e = bg_codec_encode_event(c, id, ev, &b);
    if (e != BG_OK)
        fail_msg("encode with schema %d: %s", id, bg_err_name(e));
    bg_event out;
    char why[256] = "";
    e = dec(c, ev->kind, &b, &out, why, sizeof why);
    if (e != BG_OK)
        fail_msg("decode with schema %d: %s: %s", id, bg_err_name(e), why);
    assert_true(ev_equal(ev, &out));
    bg_buf_free(&b);
}

/* Body builder for hand-made messages. */
typedef struct wb {
    uint8_t b[16384];
    size_t n;
} wb;

static void wb_frame(wb *w, int32_t id) {
    w->n = 0;
    w->b[w->n++] = 0;
    w->b[w->n++] = (uint8_t)((uint32_t)id >> 24);
    w->b[w->n++] = (uint8_t)((uint32_t)id >> 16);
    w->b[w->n++] = (uint8_t)((uint32_t)id >> 8);
    w->b[w->n++] = (uint8_t)id;
}
static void wb_varint(wb *w, uint64_t u) {
    while (u >= 0x80) {
        w->b[w->n++] = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    w->b[w->n++] = (uint8_t)u;
}
static void wb_long(wb *w, int64_t v) { wb_varint(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63)); }
static void wb_raw(wb *w, const void *p, size_t n) {
    memcpy(w->b + w->n, p, n);
    w->n += n;
}
static void wb_str(wb *w, const char *s) {
    wb_long(w, (int64_t)strlen(s));
    wb_raw(w, s, strlen(s));
}
static void wb_nstr(wb *w, const char *s) { /* ["null","string"] */
    if (!s) {
        wb_long(w, 0);
        return;
    }
    wb_long(w, 1);
    wb_str(w, s);
}

/* A UsageEvent body in the reader schema's order, with hooks to break it. */
static void usage_body(wb *w, const char *event_id) {
    wb_frame(w, bg_codec_default_id(BG_REC_USAGE));
    wb_str(w, event_id);
    wb_str(w, "id");
    wb_nstr(w, NULL);
    wb_nstr(w, "wc");
    wb_long(w, 1718000000000);
    wb_nstr(w, NULL);
    wb_str(w, "api");
    wb_str(w, "dest");
    wb_long(w, 7);
    wb_long(w, 100);
    wb_long(w, 200);
    wb_long(w, 300);
}

static void expect(bg_codec *c, bg_event_kind k, const wb *w, bg_err want, const char *why_has) {
    bg_event ev;
    char why[256] = "";
    bg_err e = bg_codec_decode_event(c, k, w->b, w->n, &ev, why, sizeof why);
    if (e != want)
        fail_msg("want %s, got %s (%s)", bg_err_name(want), bg_err_name(e), why);
    if (why_has && !strstr(why, why_has))
        fail_msg("reason '%s' does not mention '%s'", why, why_has);
}

/* ------------------------------------------------------------------------ */
/* Registry                                                                 */
/* ------------------------------------------------------------------------ */

static void test_registry(void **state) {
    (void)state;
    bg_codec *c = mk();
    for (int r = 0; r < BG_REC_COUNT; r++) {
        const char *t = bg_codec_reader_schema((bg_record)r);
        assert_non_null(t);
        assert_non_null(strstr(t, "\"namespace\": \"burstguard.v1\""));
        assert_int_equal(bg_codec_default_id((bg_record)r), r + 1);
    }
    /* the text is kept verbatim, logicalType included (Avro-C would drop it) */
    assert_non_null(strstr(bg_codec_reader_schema(BG_REC_USAGE), "timestamp-millis"));
    char err[256] = "";
    const char *u = bg_codec_reader_schema(BG_REC_USAGE);
    /* same text again is fine, another text under the same id is not */
    assert_int_equal(bg_codec_add_schema(c, 1, u, strlen(u), err, sizeof err), BG_OK);
    const char *v = bg_codec_reader_schema(BG_REC_VERDICT);
    assert_int_equal(bg_codec_add_schema(c, 1, v, strlen(v), err, sizeof err), BG_ERR_SCHEMA);
    assert_int_equal(bg_codec_add_schema(c, 50, "{\"type\":", 8, err, sizeof err), BG_ERR_SCHEMA);
    assert_true(strlen(err) > 0);
    bg_codec_free(c);
    bg_codec_free(NULL);
    bg_buf_free(NULL);
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                              */
/* ------------------------------------------------------------------------ */

static void test_roundtrip_inputs(void **state) {
    (void)state;
    bg_codec *c = mk();
    bg_event u = usage_ev(), s = secret_ev(), t = tool_ev();
    roundtrip_event(c, 1, &u);
    roundtrip_event(c, 2, &s);
    roundtrip_event(c, 3, &t);
    s.u.secret.n_scopes = 0;
    roundtrip_event(c, 2, &s);
    s.u.secret.n_scopes = BG_MAX_SCOPES;
    for (uint32_t i = 0; i < BG_MAX_SCOPES; i++)
        s.u.secret.scopes[i] = S("scope");
    roundtrip_event(c, 2, &s);
    /* null vs empty string survive */
    bg_buf b = {0};
    assert_int_equal(bg_codec_encode_event(c, 1, &u, &b), BG_OK);
    bg_event out;
    char why[256];
    assert_int_equal(dec(c, BG_EV_USAGE, &b, &out, why, sizeof why), BG_OK);
    assert_null(out.workload_class.ptr);
    assert_non_null(out.trace_id.ptr);
    assert_int_equal(out.trace_id.len, 0);
    /* views point into the message */
    assert_true((const uint8_t *)out.event_id.ptr > b.data &&
                (const uint8_t *)out.event_id.ptr < b.data + b.len);
    bg_buf_free(&b);

    bg_envelope_msg m = envelope_msg(), mo;
    assert_int_equal(bg_codec_encode_envelope(c, 4, &m, &b), BG_OK);
    assert_int_equal(bg_codec_decode_envelope(c, b.data, b.len, &mo, why, sizeof why), BG_OK);
    assert_true(env_equal(&m, &mo));
    m.signature = NUL_STR;
    m.n_allowed_destinations = 0;
    m.revoked = true;
    assert_int_equal(bg_codec_encode_envelope(c, 4, &m, &b), BG_OK);
    assert_int_equal(bg_codec_decode_envelope(c, b.data, b.len, &mo, why, sizeof why), BG_OK);
    assert_true(env_equal(&m, &mo));
    bg_buf_free(&b);
    bg_codec_free(c);
}

/* Decode an output with Avro-C against our schema text. */
static void avro_read_back(const bg_buf *b, bg_record rec, avro_value_iface_t **iface,
                           avro_value_t *val, avro_schema_t *schema) {
    const char *t = bg_codec_reader_schema(rec);
    assert_int_equal(avro_schema_from_json_length(t, strlen(t), schema), 0);
    *iface = avro_generic_class_from_schema(*schema);
    assert_int_equal(avro_generic_value_new(*iface, val), 0);
    assert_true(b->len > 5);
    assert_int_equal(b->data[0], 0);
    avro_reader_t r = avro_reader_memory((const char *)b->data + 5, (int64_t)(b->len - 5));
    assert_int_equal(avro_value_read(r, val), 0);
    avro_reader_free(r);
}

static void get_str(avro_value_t *rec, const char *name, const char **s) {
    avro_value_t f, br;
    size_t n;
    assert_int_equal(avro_value_get_by_name(rec, name, &f, NULL), 0);
    if (avro_value_get_type(&f) == AVRO_UNION) {
        assert_int_equal(avro_value_get_current_branch(&f, &br), 0);
        f = br;
        if (avro_value_get_type(&f) == AVRO_NULL) {
            *s = NULL;
            return;
        }
    }
    assert_int_equal(avro_value_get_string(&f, s, &n), 0);
}

static int64_t get_long(avro_value_t *rec, const char *name) {
    avro_value_t f;
    assert_int_equal(avro_value_get_by_name(rec, name, &f, NULL), 0);
    int64_t l = 0;
    int32_t i = 0;
    int en = 0;
    if (avro_value_get_type(&f) == AVRO_INT32) {
        avro_value_get_int(&f, &i);
        return i;
    }
    if (avro_value_get_type(&f) == AVRO_ENUM) {
        avro_value_get_enum(&f, &en);
        return en;
    }
    if (avro_value_get_type(&f) == AVRO_BOOLEAN) {
        avro_value_get_boolean(&f, &en);
        return en;
    }
    assert_int_equal(avro_value_get_long(&f, &l), 0);
    return l;
}

static void test_encode_outputs(void **state) {
    (void)state;
    bg_codec *c = mk();
    bg_verdict v;
    memset(&v, 0, sizeof v);
    strcpy(v.verdict_id, "0123456789abcdef0123456789abcdef");
    v.identity = "agent-7";
    v.owner = NULL;
    v.workload_class = "agent";
    v.classification = BG_CLASS_ANOMALOUS;
    v.phase = BG_PHASE_ESCALATED;
    v.action = BG_ACT_REVOKE;
    v.severity = 90;
    v.window_start = 100;
    v.window_end = 200;
    v.decided_at = 150;
    v.n_reasons = 2;
    v.reasons[0] = (bg_reason){"new_secret_new_dest", "correlation", 3, 0.5, 2, 1.5};
    v.reasons[1] = (bg_reason){"rate", "cusum", 1e9, 1, 2, 3};
    v.envelope_id = "env-1";
    v.n_new_secret_ids = 1;
    v.new_secret_ids[0] = "sec-1";
    v.n_review_routes = 2;
    v.review_routes[0] = "team-ai";
    v.review_routes[1] = "secops";
    v.policy_version = "p-7";
    v.n_source = 2;
    v.source[0] = (bg_source_range){BG_EV_USAGE, 3, 10, 20};
    v.source[1] = (bg_source_range){BG_EV_TOOLCALL, 3, 5, 5};
    const char *topics[] = {"nhi.usage.v1", "nhi.secrets.v1", "nhi.toolcalls.v1",
                            "nhi.envelopes.v1"};
    bg_emit_meta m = {.emitted_at = 999, .worker_version = "9.9", .replay = true,
                      .topic_names = topics, .key_id = "wk", .signature = SIG,
                      .signature_len = sizeof SIG};
    bg_buf b = {0};
    assert_int_equal(bg_codec_encode_verdict(c, &v, &m, &b), BG_OK);
    assert_int_equal(b.data[4], bg_codec_default_id(BG_REC_VERDICT));
    avro_value_iface_t *iface;
    avro_value_t val;
    avro_schema_t sch;
    avro_read_back(&b, BG_REC_VERDICT, &iface, &val, &sch);
    const char *s;
    get_str(&val, "verdict_id", &s);
    assert_string_equal(s, v.verdict_id);
    get_str(&val, "owner", &s);
    assert_null(s);
    get_str(&val, "envelope_id", &s);
    assert_string_equal(s, "env-1");
    get_str(&val, "worker_version", &s);
    assert_string_equal(s, "9.9");
    assert_int_equal(get_long(&val, "classification"), 2);
    assert_int_equal(get_long(&val, "phase"), 1);
    assert_int_equal(get_long(&val, "action"), 3);
    assert_int_equal(get_long(&val, "severity"), 90);
    assert_int_equal(get_long(&val, "emitted_at"), 999);
    assert_int_equal(get_long(&val, "replay"), 1);
    avro_value_t f, el;
    size_t n;
    assert_int_equal(avro_value_get_by_name(&val, "reasons", &f, NULL), 0);
    assert_int_equal(avro_value_get_size(&f, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(avro_value_get_by_index(&f, 1, &el, NULL), 0);
    get_str(&el, "detector", &s);
    assert_string_equal(s, "cusum");
    avro_value_t d;
    double dv;
    assert_int_equal(avro_value_get_by_name(&el, "observed", &d, NULL), 0);
    avro_value_get_double(&d, &dv);
    assert_true(dv == 1e9);
    assert_int_equal(avro_value_get_by_name(&val, "source", &f, NULL), 0);
    assert_int_equal(avro_value_get_by_index(&f, 1, &el, NULL), 0);
    get_str(&el, "topic", &s);
    assert_string_equal(s, "nhi.toolcalls.v1");
    assert_int_equal(get_long(&el, "first_offset"), 5);
    assert_int_equal(avro_value_get_by_name(&val, "review_routes", &f, NULL), 0);
    assert_int_equal(avro_value_get_by_index(&f, 1, &el, NULL), 0);
    assert_int_equal(avro_value_get_string(&el, &s, &n), 0);
    assert_string_equal(s, "secops");
    assert_int_equal(avro_value_get_by_name(&val, "new_destinations", &f, NULL), 0);
    assert_int_equal(avro_value_get_size(&f, &n), 0);
    assert_int_equal(n, 0);
    avro_value_decref(&val);
    avro_value_iface_decref(iface);
    avro_schema_decref(sch);

    bg_revocation r;
    memset(&r, 0, sizeof r);
    strcpy(r.command_id, "c0");
    strcpy(r.verdict_id, "v0");
    r.identity = "agent-7";
    r.target = BG_TARGET_SECRET;
    r.secret_id = "sec-1";
    r.reason = "anomalous burst";
    r.issued_at = 150;
    r.dry_run = true;
    assert_int_equal(bg_codec_encode_revocation(c, &r, &m, &b), BG_OK);
    assert_int_equal(b.data[4], bg_codec_default_id(BG_REC_REVOCATION));
    avro_read_back(&b, BG_REC_REVOCATION, &iface, &val, &sch);
    get_str(&val, "secret_id", &s);
    assert_string_equal(s, "sec-1");
    get_str(&val, "key_id", &s);
    assert_string_equal(s, "wk");
    assert_int_equal(get_long(&val, "dry_run"), 1);
    assert_int_equal(avro_value_get_by_name(&val, "signature", &f, NULL), 0);
    assert_int_equal(avro_value_get_current_branch(&f, &el), 0);
    const void *bytes;
    assert_int_equal(avro_value_get_bytes(&el, &bytes, &n), 0);
    assert_int_equal(n, sizeof SIG);
    assert_memory_equal(bytes, SIG, sizeof SIG);
    avro_value_decref(&val);
    avro_value_iface_decref(iface);
    avro_schema_decref(sch);

    /* unsigned: key_id and signature null */
    m.key_id = NULL;
    assert_int_equal(bg_codec_encode_revocation(c, &r, &m, &b), BG_OK);
    avro_read_back(&b, BG_REC_REVOCATION, &iface, &val, &sch);
    get_str(&val, "key_id", &s);
    assert_null(s);
    avro_value_decref(&val);
    avro_value_iface_decref(iface);
    avro_schema_decref(sch);
    bg_buf_free(&b);
    bg_codec_free(c);

    /* outputs use the first id registered for their record */
    char err[256];
    assert_int_equal(bg_codec_new(&c, err, sizeof err), BG_OK);
    assert_int_equal(bg_codec_encode_verdict(c, &v, &m, &b), BG_ERR_UNKNOWN_SCHEMA);
    const char *vt = bg_codec_reader_schema(BG_REC_VERDICT);
    add(c, 300, vt);
    add(c, 200, vt);
    assert_int_equal(bg_codec_encode_verdict(c, &v, &m, &b), BG_OK);
    assert_int_equal(b.data[3] * 256 + b.data[4], 300);
    bg_buf_free(&b);
    bg_codec_free(c);
}

/* ------------------------------------------------------------------------ */
/* Schema evolution                                                         */
/* ------------------------------------------------------------------------ */

/* Extra writer fields of every Avro type, with defaults so the encoder
 * writes real values for them (the decoder must skip them all). */
#define X_BEFORE                                                                           \
    "{\"name\":\"x_null\",\"type\":\"null\",\"default\":null},"                            \
    "{\"name\":\"x_bool\",\"type\":\"boolean\",\"default\":true},"                         \
    "{\"name\":\"x_int\",\"type\":\"int\",\"default\":-123456},"                           \
    "{\"name\":\"x_long\",\"type\":\"long\",\"default\":1234567890123},"
#define X_BETWEEN                                                                          \
    "{\"name\":\"x_float\",\"type\":\"float\",\"default\":1.5},"                           \
    "{\"name\":\"x_double\",\"type\":\"double\",\"default\":-2.25},"                       \
    "{\"name\":\"x_bytes\",\"type\":\"bytes\",\"default\":\"\\u00ff\\u0001ab\"},"          \
    "{\"name\":\"x_string\",\"type\":\"string\",\"default\":\"hello\"},"                   \
    "{\"name\":\"x_fixed\",\"type\":{\"type\":\"fixed\",\"name\":\"Md5\",\"size\":16},"    \
    "\"default\":\"0123456789abcdef\"},"                                                   \
    "{\"name\":\"x_enum\",\"type\":{\"type\":\"enum\",\"name\":\"Color\","                 \
    "\"symbols\":[\"RED\",\"GREEN\"]},\"default\":\"GREEN\"},"
#define X_AFTER                                                                            \
    ",{\"name\":\"x_array\",\"type\":{\"type\":\"array\",\"items\":\"long\"},"             \
    "\"default\":[1,-2,300000]},"                                                          \
    "{\"name\":\"x_map\",\"type\":{\"type\":\"map\",\"values\":\"string\"},"               \
    "\"default\":{\"a\":\"b\",\"cc\":\"dd\"}},"                                            \
    "{\"name\":\"x_union\",\"type\":[\"string\",\"null\",\"long\"],\"default\":\"u\"},"    \
    "{\"name\":\"x_rec\",\"type\":{\"type\":\"record\",\"name\":\"Nested\",\"fields\":["   \
    "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":{\"type\":\"array\","           \
    "\"items\":\"int\"}}},{\"name\":\"s\",\"type\":\"string\"},"                           \
    "{\"name\":\"next\",\"type\":[\"null\",\"Nested\"]}]},"                                \
    "\"default\":{\"m\":{\"k\":[1,2,3],\"j\":[]},\"s\":\"nested\",\"next\":null}},"        \
    "{\"name\":\"x_ref\",\"type\":\"Md5\",\"default\":\"fedcba9876543210\"},"              \
    "{\"name\":\"x_nodefault\",\"type\":{\"type\":\"array\",\"items\":\"Nested\"}}"

#define USAGE_HEAD "{\"type\":\"record\",\"name\":\"UsageEvent\",\"namespace\":\"burstguard.v1\",\"fields\":["
#define NSTR(n) "{\"name\":\"" n "\",\"type\":[\"null\",\"string\"],\"default\":null}"
#define F(n, t) "{\"name\":\"" n "\",\"type\":\"" t "\"}"

static const char *usage_evolved =
    USAGE_HEAD X_BEFORE F("event_id", "string") "," F("identity", "string") "," X_BETWEEN
        NSTR("owner") "," NSTR("workload_class") "," F("event_time", "long") "," NSTR(
            "trace_id") "," F("cost_micros", "long") "," F("api", "string") "," F("destination",
                                                                               "string")
            "," F("api_calls", "int") "," F("tokens_in", "long") "," F("tokens_out",
                                                                       "long") X_AFTER "]}";

static void test_writer_adds_fields(void **state) {
    (void)state;
    bg_codec *c = mk();
    add(c, 100, usage_evolved);
    bg_event u = usage_ev();
    roundtrip_event(c, 100, &u);
    u.owner = NUL_STR;
    u.trace_id = S("t");
    roundtrip_event(c, 100, &u);

    /* Avro-C itself reads our skipped values back as written */
    bg_buf b = {0};
    assert_int_equal(bg_codec_encode_event(c, 100, &u, &b), BG_OK);
    avro_schema_t sch;
    assert_int_equal(avro_schema_from_json_length(usage_evolved, strlen(usage_evolved), &sch), 0);
    avro_value_iface_t *iface = avro_generic_class_from_schema(sch);
    avro_value_t val, f, br;
    assert_int_equal(avro_generic_value_new(iface, &val), 0);
    avro_reader_t r = avro_reader_memory((const char *)b.data + 5, (int64_t)(b.len - 5));
    assert_int_equal(avro_value_read(r, &val), 0);
    avro_reader_free(r);
    const char *s;
    size_t n;
    assert_int_equal(get_long(&val, "x_int"), -123456);
    assert_int_equal(avro_value_get_by_name(&val, "x_union", &f, NULL), 0);
    assert_int_equal(avro_value_get_current_branch(&f, &br), 0);
    assert_int_equal(avro_value_get_string(&br, &s, &n), 0);
    assert_string_equal(s, "u");
    assert_int_equal(avro_value_get_by_name(&val, "x_map", &f, NULL), 0);
    assert_int_equal(avro_value_get_size(&f, &n), 0);
    assert_int_equal(n, 2);
    avro_value_decref(&val);
    avro_value_iface_decref(iface);
    avro_schema_decref(sch);
    bg_buf_free(&b);
    bg_codec_free(c);
}

/* An old producer: no owner, no trace_id (both have defaults in the reader),
 * and the fields in another order. */
static const char *usage_old =
    USAGE_HEAD F("identity", "string") "," F("event_id", "string") "," F("event_time", "long")
        "," F("api", "string") "," F("destination", "string") "," F("api_calls", "int") "," F(
            "tokens_in", "long") "," F("tokens_out", "long") "," F("cost_micros", "long") "," NSTR("workload_class") "]}";

static void test_reader_defaults(void **state) {
    (void)state;
    bg_codec *c = mk();
    add(c, 101, usage_old);
    bg_event u = usage_ev();
    u.owner = NUL_STR;
    u.trace_id = NUL_STR;
    roundtrip_event(c, 101, &u);
    /* our owner is dropped by an old writer, and comes back as the default */
    u.owner = S("team");
    bg_buf b = {0};
    assert_int_equal(bg_codec_encode_event(c, 101, &u, &b), BG_OK);
    bg_event out;
    char why[256];
    assert_int_equal(dec(c, BG_EV_USAGE, &b, &out, why, sizeof why), BG_OK);
    assert_null(out.owner.ptr);
    assert_null(out.trace_id.ptr);
    bg_buf_free(&b);

    /* an old Envelope without the optional limits, signature and destinations */
    add(c, 102,
        "{\"type\":\"record\",\"name\":\"Envelope\",\"namespace\":\"burstguard.v1\",\"fields\":["
        F("envelope_id", "string") "," F("not_before", "long") "," F("not_after", "long") ","
        F("approved_by", "string") "]}");
    bg_envelope_msg m = envelope_msg(), mo;
    assert_int_equal(bg_codec_encode_envelope(c, 102, &m, &b), BG_OK);
    assert_int_equal(bg_codec_decode_envelope(c, b.data, b.len, &mo, why, sizeof why), BG_OK);
    assert_true(str_eq(mo.envelope_id, m.envelope_id));
    assert_null(mo.identity.ptr);
    assert_null(mo.signature.ptr);
    assert_false(mo.max_tokens_per_min.set);
    assert_int_equal(mo.n_allowed_destinations, 0);
    assert_false(mo.revoked);
    bg_buf_free(&b);
    bg_codec_free(c);
}

static void test_missing_required(void **state) {
    (void)state;
    bg_codec *c = mk();
    /* no api: required in the reader, no default */
    add(c, 103, USAGE_HEAD F("event_id", "string") "," F("identity", "string") "," F(
                    "event_time", "long") "," F("destination", "string") "," F("api_calls", "int")
                    "," F("tokens_in", "long") "," F("tokens_out", "long") "," F("cost_micros",
                                                                                 "long") "]}");
    wb w;
    wb_frame(&w, 103);
    wb_str(&w, "e");
    wb_str(&w, "i");
    wb_long(&w, 5);
    wb_str(&w, "d");
    wb_long(&w, 1);
    wb_long(&w, 1);
    wb_long(&w, 1);
    wb_long(&w, 1);
    /* reported on every message of that id, naming the field */
    expect(c, BG_EV_USAGE, &w, BG_ERR_MISSING_FIELD, "api");
    expect(c, BG_EV_USAGE, &w, BG_ERR_MISSING_FIELD, "api");
    bg_codec_free(c);
}

/* A record with an array, then a map, then a string, plus fields the reader
 * added: the shape on which Avro-C 1.11.1's resolver crashes. */
static const char *secret_shape =
    "{\"type\":\"record\",\"name\":\"SecretIssued\",\"namespace\":\"burstguard.v1\",\"fields\":["
    F("event_id", "string") "," F("identity", "string") "," F("event_time", "long") ","
    F("secret_id", "string") ","
    "{\"name\":\"secret_kind\",\"type\":{\"type\":\"enum\",\"name\":\"SecretKind\",\"symbols\":"
    "[\"HSM_KEY\",\"API_KEY\",\"OAUTH_GRANT\",\"OIDC_TOKEN\",\"X509_SVID\",\"JWT_SVID\","
    "\"CLOUD_SESSION\",\"DB_CREDENTIAL\",\"SSH_CERT\",\"SERVICE_IDENTITY\",\"OTHER\"]}},"
    "{\"name\":\"scopes\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
    "{\"name\":\"labels\",\"type\":{\"type\":\"map\",\"values\":\"string\"},\"default\":{\"x\":\"y\"}},"
    F("issuer", "string") "," F("ttl_seconds", "long") "]}";

static void test_avro_c_breaking_shape_and_enums(void **state) {
    (void)state;
    bg_codec *c = mk();
    add(c, 104, secret_shape);
    bg_event s = secret_ev();
    s.owner = s.workload_class = s.trace_id = s.u.secret.subject = NUL_STR;
    roundtrip_event(c, 104, &s);
    /* enum symbols resolve by name (the writer's indexes are shifted) */
    s.u.secret.secret_kind = BG_SK_API_KEY;
    roundtrip_event(c, 104, &s);
    s.u.secret.secret_kind = BG_SK_OTHER;
    roundtrip_event(c, 104, &s);

    /* the writer's HSM_KEY (index 0) is unknown to us: the reader default OTHER */
    wb w;
    wb_frame(&w, 104);
    wb_str(&w, "e");
    wb_str(&w, "i");
    wb_long(&w, 5);
    wb_str(&w, "sid");
    wb_long(&w, 0); /* HSM_KEY */
    wb_long(&w, 1);
    wb_str(&w, "scope");
    wb_long(&w, 0);
    wb_long(&w, 1); /* labels: one entry */
    wb_str(&w, "k");
    wb_str(&w, "v");
    wb_long(&w, 0);
    wb_str(&w, "issuer");
    wb_long(&w, 60);
    bg_event out;
    char why[256];
    assert_int_equal(bg_codec_decode_event(c, BG_EV_SECRET, w.b, w.n, &out, why, sizeof why), BG_OK);
    assert_int_equal(out.u.secret.secret_kind, BG_SK_OTHER);
    assert_int_equal(out.u.secret.n_scopes, 1);
    assert_true(str_eq(out.u.secret.issuer, S("issuer")));
    assert_null(out.u.secret.subject.ptr);
    /* an enum index beyond the writer's symbols */
    w.b[5 + 2 + 2 + 1 + 4] = 22; /* zigzag 11 */
    expect(c, BG_EV_SECRET, &w, BG_ERR_MALFORMED, "enum index");

    /* ToolStatus with a new symbol maps to the reader's default ERROR */
    add(c, 105,
        "{\"type\":\"record\",\"name\":\"ToolCall\",\"namespace\":\"burstguard.v1\",\"fields\":["
        F("event_id", "string") "," F("identity", "string") "," F("event_time", "long") ","
        F("tool", "string") "," F("destination", "string") "," F("operation", "string") ","
        F("side_effect", "boolean") ","
        "{\"name\":\"status\",\"type\":{\"type\":\"enum\",\"name\":\"ToolStatus\",\"symbols\":"
        "[\"OK\",\"TIMEOUT\",\"DENIED\"]}}," F("bytes_out", "long") "]}");
    wb_frame(&w, 105);
    wb_str(&w, "e");
    wb_str(&w, "i");
    wb_long(&w, 5);
    wb_str(&w, "t");
    wb_str(&w, "d");
    wb_str(&w, "o");
    w.b[w.n++] = 1;
    wb_long(&w, 1); /* TIMEOUT */
    wb_long(&w, 9);
    assert_int_equal(bg_codec_decode_event(c, BG_EV_TOOLCALL, w.b, w.n, &out, why, sizeof why), BG_OK);
    assert_int_equal(out.u.tool.status, BG_TS_ERROR);
    assert_true(out.u.tool.side_effect);
    w.b[w.n - 2] = 4; /* DENIED */
    assert_int_equal(bg_codec_decode_event(c, BG_EV_TOOLCALL, w.b, w.n, &out, why, sizeof why), BG_OK);
    assert_int_equal(out.u.tool.status, BG_TS_DENIED);
    /* an enum of another name does not resolve */
    add(c, 106,
        "{\"type\":\"record\",\"name\":\"ToolCall\",\"namespace\":\"burstguard.v1\",\"fields\":["
        F("event_id", "string") "," F("identity", "string") "," F("event_time", "long") ","
        F("tool", "string") "," F("destination", "string") "," F("operation", "string") ","
        F("side_effect", "boolean") ","
        "{\"name\":\"status\",\"type\":{\"type\":\"enum\",\"name\":\"Other\",\"symbols\":[\"OK\"]}},"
        F("bytes_out", "long") "]}");
    w.b[4] = 106;
    expect(c, BG_EV_TOOLCALL, &w, BG_ERR_SCHEMA, "status");
    bg_codec_free(c);
}

static void test_promotions(void **state) {
    (void)state;
    bg_codec *c = mk();
    /* int -> long, bytes -> string, string -> nullable string (non-union to
     * union), [null,string] -> string (union to non-union), [null,int] ->
     * [null,long] */
    add(c, 110, USAGE_HEAD F("event_id", "bytes") "," F("owner", "string") ","
                "{\"name\":\"identity\",\"type\":[\"null\",\"string\"]},"
                F("event_time", "int") "," F("api", "string") "," F("destination", "bytes") ","
                F("api_calls", "int") "," F("tokens_in", "int") "," F("tokens_out", "long") ","
                F("cost_micros", "int") "]}");
    bg_event u = usage_ev();
    u.event_time = 1700;
    u.workload_class = u.trace_id = NUL_STR;
    roundtrip_event(c, 110, &u);
    /* the null branch of the writer's identity cannot feed our string */
    wb w;
    wb_frame(&w, 110);
    wb_str(&w, "e");
    wb_str(&w, "o");
    wb_long(&w, 0); /* identity: null */
    wb_long(&w, 1);
    wb_str(&w, "a");
    wb_str(&w, "d");
    wb_long(&w, 1);
    wb_long(&w, 1);
    wb_long(&w, 1);
    wb_long(&w, 1);
    expect(c, BG_EV_USAGE, &w, BG_ERR_MALFORMED, "identity");
    /* an int wider than 32 bits in an int field */
    wb_frame(&w, 110);
    wb_str(&w, "e");
    wb_str(&w, "o");
    wb_long(&w, 1);
    wb_str(&w, "i");
    wb_long(&w, (int64_t)1 << 40); /* event_time written as int */
    expect(c, BG_EV_USAGE, &w, BG_ERR_MALFORMED, "varint");

    /* envelope: [null,string] signature -> [null,bytes], [null,int] limits */
    add(c, 111,
        "{\"type\":\"record\",\"name\":\"Envelope\",\"namespace\":\"burstguard.v1\",\"fields\":["
        F("envelope_id", "string") "," F("not_before", "long") "," F("not_after", "long") ","
        "{\"name\":\"max_cost_micros\",\"type\":[\"null\",\"int\"]},"
        "{\"name\":\"max_new_secrets\",\"type\":\"int\"},"
        "{\"name\":\"allowed_destinations\",\"type\":{\"type\":\"array\",\"items\":\"bytes\"}},"
        "{\"name\":\"signature\",\"type\":[\"null\",\"string\"]},"
        F("approved_by", "string") "]}");
    bg_envelope_msg m = envelope_msg(), mo;
    m.max_cost_micros = (bg_opt_i64){true, 77};
    bg_buf b = {0};
    char why[256];
    assert_int_equal(bg_codec_encode_envelope(c, 111, &m, &b), BG_OK);
    assert_int_equal(bg_codec_decode_envelope(c, b.data, b.len, &mo, why, sizeof why), BG_OK);
    assert_true(mo.max_cost_micros.set);
    assert_int_equal(mo.max_cost_micros.v, 77);
    assert_true(mo.max_new_secrets.set);
    assert_int_equal(mo.max_new_secrets.v, -1);
    assert_true(str_eq(mo.signature, m.signature));
    assert_int_equal(mo.n_allowed_destinations, 2);
    assert_true(str_eq(mo.allowed_destinations[1], m.allowed_destinations[1]));
    bg_buf_free(&b);

    /* no promotion long -> int, float -> long: the compile fails naming the field */
    add(c, 112, USAGE_HEAD F("event_id", "string") "," F("identity", "string") ","
                F("event_time", "long") "," F("api", "string") "," F("destination", "string") ","
                F("api_calls", "long") "," F("tokens_in", "long") "," F("tokens_out", "float") ","
                F("cost_micros", "long") "]}");
    wb_frame(&w, 112);
    expect(c, BG_EV_USAGE, &w, BG_ERR_SCHEMA, "api_calls");
    bg_codec_free(c);
}

/* ------------------------------------------------------------------------ */
/* Malformed input                                                          */
/* ------------------------------------------------------------------------ */

static void test_truncated_everywhere(void **state) {
    (void)state;
    bg_codec *c = mk();
    add(c, 100, usage_evolved);
    bg_event evs[] = {usage_ev(), secret_ev(), tool_ev(), usage_ev()};
    int32_t ids[] = {1, 2, 3, 100};
    for (size_t k = 0; k < 4; k++) {
        bg_buf b = {0};
        assert_int_equal(bg_codec_encode_event(c, ids[k], &evs[k], &b), BG_OK);
        for (size_t n = 0; n < b.len; n++) {
            bg_event out;
            char why[256] = "";
            bg_err e = bg_codec_decode_event(c, evs[k].kind, b.data, n, &out, why, sizeof why);
            if (e != BG_ERR_TRUNCATED)
                fail_msg("schema %d cut at %zu of %zu: %s (%s)", ids[k], n, b.len, bg_err_name(e),
                         why);
        }
        bg_buf_free(&b);
    }
    bg_envelope_msg m = envelope_msg(), mo;
    bg_buf b = {0};
    assert_int_equal(bg_codec_encode_envelope(c, 4, &m, &b), BG_OK);
    for (size_t n = 0; n < b.len; n++)
        assert_int_equal(bg_codec_decode_envelope(c, b.data, n, &mo, NULL, 0), BG_ERR_TRUNCATED);
    bg_buf_free(&b);
    bg_codec_free(c);
}

static void test_malformed(void **state) {
    (void)state;
    bg_codec *c = mk();
    wb w;
    usage_body(&w, "e");
    expect(c, BG_EV_USAGE, &w, BG_OK, NULL);
    /* wrong magic */
    w.b[0] = 1;
    expect(c, BG_EV_USAGE, &w, BG_ERR_BAD_MAGIC, "magic");
    /* unknown schema id */
    usage_body(&w, "e");
    w.b[4] = 99;
    expect(c, BG_EV_USAGE, &w, BG_ERR_UNKNOWN_SCHEMA, "99");
    /* a record of another type on the topic */
    usage_body(&w, "e");
    expect(c, BG_EV_SECRET, &w, BG_ERR_WRONG_TYPE, "UsageEvent");
    w.b[4] = (uint8_t)bg_codec_default_id(BG_REC_VERDICT);
    expect(c, BG_EV_USAGE, &w, BG_ERR_WRONG_TYPE, "Verdict");
    /* trailing bytes */
    usage_body(&w, "e");
    w.b[w.n++] = 0;
    expect(c, BG_EV_USAGE, &w, BG_ERR_MALFORMED, "trailing");
    /* oversized string */
    static char big[BG_MAX_STRING + 2];
    memset(big, 'x', sizeof big - 1);
    usage_body(&w, big);
    expect(c, BG_EV_USAGE, &w, BG_ERR_OVERSIZED, "cap");
    big[BG_MAX_STRING] = '\0';
    usage_body(&w, big);
    expect(c, BG_EV_USAGE, &w, BG_OK, NULL);
    /* negative length */
    wb_frame(&w, 1);
    wb_long(&w, -3);
    wb_raw(&w, "abcdefgh", 8);
    expect(c, BG_EV_USAGE, &w, BG_ERR_MALFORMED, "negative");
    /* varint overflow: 11 continuation bytes; a 10th byte above 1 */
    wb_frame(&w, 1);
    for (int i = 0; i < 11; i++)
        w.b[w.n++] = 0xff;
    expect(c, BG_EV_USAGE, &w, BG_ERR_MALFORMED, "overflow");
    wb_frame(&w, 1);
    for (int i = 0; i < 9; i++)
        w.b[w.n++] = 0x80;
    w.b[w.n++] = 0x02;
    expect(c, BG_EV_USAGE, &w, BG_ERR_MALFORMED, "overflow");
    /* bad union index (owner): 2, and -1 */
    wb_frame(&w, 1);
    wb_str(&w, "e");
    wb_str(&w, "i");
    wb_long(&w, 2);
    wb_str(&w, "o");
    expect(c, BG_EV_USAGE, &w, BG_ERR_MALFORMED, "union index");
    w.b[5 + 2 + 2] = 1;
    expect(c, BG_EV_USAGE, &w, BG_ERR_MALFORMED, "union index");
    /* a boolean byte other than 0/1 */
    bg_event t = tool_ev();
    bg_buf b = {0};
    assert_int_equal(bg_codec_encode_event(c, 3, &t, &b), BG_OK);
    /* side_effect, status and bytes_out (zigzag 2^20: 3 varint bytes) end the body */
    b.data[b.len - 5] = 2;
    bg_event out;
    char why[256] = "";
    assert_int_equal(dec(c, BG_EV_TOOLCALL, &b, &out, why, sizeof why), BG_ERR_MALFORMED);
    assert_non_null(strstr(why, "boolean"));
    /* bad enum index */
    b.data[b.len - 5] = 1;
    b.data[b.len - 4] = 6; /* 3 */
    assert_int_equal(dec(c, BG_EV_TOOLCALL, &b, &out, why, sizeof why), BG_ERR_MALFORMED);
    assert_non_null(strstr(why, "enum"));
    b.data[b.len - 4] = 4;
    assert_int_equal(dec(c, BG_EV_TOOLCALL, &b, &out, why, sizeof why), BG_OK);
    bg_buf_free(&b);

    /* too many scopes, in one block or across blocks; a negative block count
     * with its byte size is fine; a wrong byte size is not */
    bg_event s = secret_ev();
    for (int variant = 0; variant < 4; variant++) {
        wb_frame(&w, 2);
        wb_str(&w, "e");
        wb_str(&w, "i");
        wb_nstr(&w, NULL);
        wb_nstr(&w, NULL);
        wb_long(&w, 1);
        wb_nstr(&w, NULL);
        wb_str(&w, "sid");
        wb_long(&w, 3);
        wb_str(&w, "vault");
        if (variant == 0) {
            wb_long(&w, BG_MAX_SCOPES + 1);
            for (uint32_t i = 0; i <= BG_MAX_SCOPES; i++)
                wb_str(&w, "s");
        } else if (variant == 1) {
            for (int blk = 0; blk < 2; blk++) {
                wb_long(&w, BG_MAX_SCOPES / 2 + 1);
                for (uint32_t i = 0; i <= BG_MAX_SCOPES / 2; i++)
                    wb_str(&w, "s");
            }
        } else {
            wb_long(&w, -2);
            wb_long(&w, variant == 2 ? 6 : 7); /* two 2-byte strings + ... */
            wb_str(&w, "ab");
            wb_str(&w, "c");
            wb_long(&w, 1);
            wb_str(&w, "d");
        }
        wb_long(&w, 0);
        wb_long(&w, 60);
        wb_nstr(&w, NULL);
        if (variant < 2) {
            expect(c, BG_EV_SECRET, &w, BG_ERR_OVERSIZED, "scopes");
        } else if (variant == 2) {
            /* "ab" is 3 bytes, "c" 2: size 5 is right, 6 is wrong */
            expect(c, BG_EV_SECRET, &w, BG_ERR_MALFORMED, "block byte size");
        } else {
            expect(c, BG_EV_SECRET, &w, BG_ERR_MALFORMED, "block byte size");
        }
    }
    wb_frame(&w, 2);
    wb_str(&w, "e");
    wb_str(&w, "i");
    wb_nstr(&w, NULL);
    wb_nstr(&w, NULL);
    wb_long(&w, 1);
    wb_nstr(&w, NULL);
    wb_str(&w, "sid");
    wb_long(&w, 3);
    wb_str(&w, "vault");
    wb_long(&w, -2);
    wb_long(&w, 5);
    wb_str(&w, "ab");
    wb_str(&w, "c");
    wb_long(&w, 0);
    wb_long(&w, 60);
    wb_nstr(&w, "sub");
    assert_int_equal(bg_codec_decode_event(c, BG_EV_SECRET, w.b, w.n, &s, why, sizeof why), BG_OK);
    assert_int_equal(s.u.secret.n_scopes, 2);
    assert_true(str_eq(s.u.secret.scopes[1], S("c")));
    assert_true(str_eq(s.u.secret.subject, S("sub")));

    /* the message cap */
    uint8_t *huge = calloc(1, BG_MAX_MESSAGE + 1);
    assert_int_equal(bg_codec_decode_event(c, BG_EV_USAGE, huge, BG_MAX_MESSAGE + 1, &out, why,
                                           sizeof why),
                     BG_ERR_OVERSIZED);
    free(huge);
    /* bad arguments */
    assert_int_equal(bg_codec_decode_event(c, BG_EV_ENVELOPE, w.b, w.n, &out, why, sizeof why),
                     BG_ERR_INVALID);
    bg_codec_free(c);
}

/* x_map: one entry "k" -> an array of `items` nulls */
static void skip_prefix(wb *w, int64_t items) {
    wb_frame(w, 120);
    wb_long(w, 1);
    wb_str(w, "k");
    wb_long(w, items);
    if (items)
        wb_long(w, 0);
    wb_long(w, 0);
}

/* x_u = 5, x_e = A, x_f, then our fields */
static void skip_rest(wb *w) {
    wb_long(w, 1);
    wb_long(w, 5);
    wb_long(w, 0);
    wb_raw(w, "abcd", 4);
    wb_str(w, "e");
    wb_str(w, "i");
    wb_long(w, 1);
    wb_str(w, "a");
    wb_str(w, "d");
    for (int i = 0; i < 4; i++)
        wb_long(w, i);
}

/* Skipped values are bounds-checked too, including in evolved writers. */
static void test_skip_malformed(void **state) {
    (void)state;
    bg_codec *c = mk();
    add(c, 120, USAGE_HEAD
        "{\"name\":\"x_map\",\"type\":{\"type\":\"map\",\"values\":{\"type\":\"array\",\"items\":\"null\"}}},"
        "{\"name\":\"x_u\",\"type\":[\"null\",\"long\"]},"
        "{\"name\":\"x_e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"]}},"
        "{\"name\":\"x_f\",\"type\":{\"type\":\"fixed\",\"name\":\"F4\",\"size\":4}},"
        F("event_id", "string") "," F("identity", "string") "," F("event_time", "long") ","
        F("api", "string") "," F("destination", "string") "," F("api_calls", "int") ","
        F("tokens_in", "long") "," F("tokens_out", "long") "," F("cost_micros", "long") "]}");
    wb w;
#define PREFIX(map_items) skip_prefix(&w, map_items)
#define REST skip_rest(&w)
    PREFIX(3);
    REST;
    expect(c, BG_EV_USAGE, &w, BG_OK, NULL);
    /* an array of nulls with 2^40 items: costs no bytes, so the item budget */
    PREFIX((int64_t)1 << 40);
    REST;
    expect(c, BG_EV_USAGE, &w, BG_ERR_OVERSIZED, "items");
    /* union index out of range in a skipped field */
    PREFIX(0);
    wb_long(&w, 3);
    expect(c, BG_EV_USAGE, &w, BG_ERR_MALFORMED, "union index");
    /* skipped enum index out of range */
    PREFIX(0);
    wb_long(&w, 0);
    wb_long(&w, 1);
    expect(c, BG_EV_USAGE, &w, BG_ERR_MALFORMED, "enum index");
    /* skipped fixed truncated */
    PREFIX(0);
    wb_long(&w, 0);
    wb_long(&w, 0);
    wb_raw(&w, "ab", 2);
    expect(c, BG_EV_USAGE, &w, BG_ERR_TRUNCATED, NULL);
    /* skipped map key with a negative length */
    wb_frame(&w, 120);
    wb_long(&w, 1);
    wb_long(&w, -1);
    expect(c, BG_EV_USAGE, &w, BG_ERR_MALFORMED, "negative");
    bg_codec_free(c);
}

/* ------------------------------------------------------------------------ */
/* Differential test against Avro-C's generic decoder                       */
/* ------------------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void) { /* xorshift64*, fixed seed */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717u;
}
static uint32_t rndn(uint32_t n) { return (uint32_t)(rnd() % n); }

static char pool[1 << 20];
static size_t pool_used;
static bg_str rnd_str(void) {
    uint32_t n = rndn(8) == 0 ? rndn(BG_MAX_STRING + 1) : rndn(40);
    if (pool_used + n > sizeof pool)
        pool_used = 0;
    char *p = pool + pool_used;
    for (uint32_t i = 0; i < n; i++)
        p[i] = (char)(rndn(4) == 0 ? rndn(256) : 'a' + rndn(26));
    pool_used += n;
    return (bg_str){p, n};
}
static bg_str rnd_nstr(void) { return rndn(3) == 0 ? NUL_STR : rnd_str(); }
static int64_t rnd_long(void) {
    switch (rndn(4)) {
    case 0: return (int64_t)rnd();
    case 1: return (int64_t)rndn(100);
    case 2: return -(int64_t)rndn(1u << 20);
    default: return (int64_t)(rnd() >> rndn(64));
    }
}

static void rnd_event(bg_event *ev, bg_event_kind k) {
    memset(ev, 0, sizeof *ev);
    ev->kind = k;
    ev->event_id = rnd_str();
    ev->identity = rnd_str();
    ev->owner = rnd_nstr();
    ev->workload_class = rnd_nstr();
    ev->event_time = rnd_long();
    ev->trace_id = rnd_nstr();
    switch (k) {
    case BG_EV_USAGE:
        ev->u.usage.api = rnd_str();
        ev->u.usage.destination = rnd_str();
        ev->u.usage.api_calls = (int32_t)rnd();
        ev->u.usage.tokens_in = rnd_long();
        ev->u.usage.tokens_out = rnd_long();
        ev->u.usage.cost_micros = rnd_long();
        break;
    case BG_EV_SECRET:
        ev->u.secret.secret_id = rnd_str();
        ev->u.secret.secret_kind = (int32_t)rndn(10);
        ev->u.secret.issuer = rnd_str();
        ev->u.secret.n_scopes = rndn(BG_MAX_SCOPES + 1);
        for (uint32_t i = 0; i < ev->u.secret.n_scopes; i++)
            ev->u.secret.scopes[i] = rnd_str();
        ev->u.secret.ttl_seconds = rnd_long();
        ev->u.secret.subject = rnd_nstr();
        break;
    default:
        ev->u.tool.tool = rnd_str();
        ev->u.tool.destination = rnd_str();
        ev->u.tool.operation = rnd_str();
        ev->u.tool.credential_id = rnd_nstr();
        ev->u.tool.parent_tool = rnd_nstr();
        ev->u.tool.side_effect = rndn(2);
        ev->u.tool.status = (int32_t)rndn(3);
        ev->u.tool.bytes_out = rnd_long();
        break;
    }
}

/* Compare Avro-C's generic value of a record to our decoded struct, slot by
 * slot through the reader table (fields the writer lacks are skipped). */
static bool agree(const bg_codec_reader *rd, avro_value_t *val, const void *ours) {
    size_t n;
    const bg_codec_slot *sl = bg_codec_reader_slots(rd, &n);
    const char *base = ours;
    for (size_t k = 0; k < n; k++) {
        avro_value_t f, br;
        if (avro_value_get_by_name(val, sl[k].name, &f, NULL) != 0)
            continue;
        const char *p = base + sl[k].off;
        bool is_null = false;
        if (avro_value_get_type(&f) == AVRO_UNION) {
            if (avro_value_get_current_branch(&f, &br))
                return false;
            f = br;
            is_null = avro_value_get_type(&f) == AVRO_NULL;
        }
        switch (sl[k].kind) {
        case BG_SLOT_STR:
        case BG_SLOT_NSTR:
        case BG_SLOT_NBYTES: {
            bg_str s;
            memcpy(&s, p, sizeof s);
            if (is_null) {
                if (s.ptr)
                    goto bad;
                break;
            }
            const void *q;
            size_t len;
            if (avro_value_get_type(&f) == AVRO_STRING) {
                const char *cs;
                avro_value_get_string(&f, &cs, &len);
                q = cs;
                len--;
            } else {
                avro_value_get_bytes(&f, &q, &len);
            }
            if (!s.ptr || s.len != len || (len && memcmp(s.ptr, q, len) != 0))
                goto bad;
            break;
        }
        case BG_SLOT_LONG:
        case BG_SLOT_NLONG: {
            int64_t want = 0, got;
            if (sl[k].kind == BG_SLOT_NLONG) {
                bg_opt_i64 o;
                memcpy(&o, p, sizeof o);
                if (o.set == is_null)
                    goto bad;
                got = o.v;
            } else {
                memcpy(&got, p, sizeof got);
            }
            if (is_null)
                break;
            avro_value_get_long(&f, &want);
            if (want != got)
                goto bad;
            break;
        }
        case BG_SLOT_INT: {
            int32_t want = 0, got;
            memcpy(&got, p, sizeof got);
            avro_value_get_int(&f, &want);
            if (want != got)
                goto bad;
            break;
        }
        case BG_SLOT_BOOL: {
            int want = 0;
            bool got;
            memcpy(&got, p, sizeof got);
            avro_value_get_boolean(&f, &want);
            if ((want != 0) != got)
                goto bad;
            break;
        }
        case BG_SLOT_ENUM: {
            int want = 0;
            int32_t got;
            memcpy(&got, p, sizeof got);
            avro_value_get_enum(&f, &want);
            if (want != got) /* our writers keep the reader's symbol order */
                goto bad;
            break;
        }
        case BG_SLOT_ARR_STR: {
            uint32_t cnt;
            size_t an;
            memcpy(&cnt, base + sl[k].count_off, sizeof cnt);
            avro_value_get_size(&f, &an);
            if (an != cnt)
                goto bad;
            const bg_str *arr = (const bg_str *)(const void *)p;
            for (size_t i = 0; i < an; i++) {
                avro_value_t el;
                const char *cs;
                size_t len;
                avro_value_get_by_index(&f, i, &el, NULL);
                avro_value_get_string(&el, &cs, &len);
                if (arr[i].len != len - 1 || memcmp(arr[i].ptr, cs, len - 1) != 0)
                    goto bad;
            }
            break;
        }
        default:
            goto bad;
        }
        continue;
    bad:
        print_error("field %s disagrees with Avro-C\n", sl[k].name);
        return false;
    }
    return true;
}

/* Ours rejects and Avro-C accepts: only for a check Avro-C does not make. */
static bool documented_strictness(bg_err e, const char *why) {
    static const char *const ok[] = {"exceeds the cap", "more than", "boolean", "overflow",
                                     "trailing", "enum index", "enum symbol"};
    if (e != BG_ERR_OVERSIZED && e != BG_ERR_MALFORMED)
        return false;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strstr(why, ok[i]))
            return true;
    return false;
}

static int ref_read(avro_value_t *val, const uint8_t *body, size_t len) {
    avro_value_reset(val);
    avro_reader_t r = avro_reader_memory((const char *)body, (int64_t)len);
    int rc = avro_value_read(r, val);
    avro_reader_free(r);
    return rc;
}

/* Avro-C's verdict on a body from a child process: 0 accepted, 1 rejected
 * (or crashed). */
static int ref_read_isolated(avro_value_t *val, const uint8_t *body, size_t len) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0)
            dup2(fd, 2);
        _exit(ref_read(val, body, len) == 0 ? 0 : 1);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return 1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

typedef struct diff_stats {
    unsigned both_ok, both_reject, ours_stricter, total;
} diff_stats;

static void differential_one(bg_codec *c, const bg_codec_reader *rd, int32_t id, bg_event_kind k,
                             avro_value_t *val, const uint8_t *msg, size_t len, bool must_ok,
                             diff_stats *st) {
    bg_event ev;
    bg_envelope_msg env;
    void *dst = k == BG_EV_ENVELOPE ? (void *)&env : (void *)&ev;
    char why[256] = "";
    bg_err e = k == BG_EV_ENVELOPE ? bg_codec_decode_envelope(c, msg, len, &env, why, sizeof why)
                                   : bg_codec_decode_event(c, k, msg, len, &ev, why, sizeof why);
    (void)id;
    st->total++;
    /* Avro-C decodes the body with the writer schema; it does not look at
     * the framing, so only bodies are compared */
    if (len < 5 || msg[0] != 0) {
        assert_int_not_equal(e, BG_OK);
        st->both_reject++;
        return;
    }
    if (e != BG_OK && strstr(why, "negative length")) {
        /* Avro-C 1.11.1 writes before its buffer on a string length of -1
         * (malloc(0), then s[-1] = 0), so it is not asked */
        st->both_reject++;
        return;
    }
    /* past one of our strictness checks Avro-C reads on, into bytes that may
     * hold such a -1: ask it in a child process */
    bool isolate = e != BG_OK && documented_strictness(e, why) && !strstr(why, "trailing");
    int rc = isolate ? ref_read_isolated(val, msg + 5, len - 5) : ref_read(val, msg + 5, len - 5);
    if (must_ok && e != BG_OK)
        fail_msg("valid message rejected: %s (%s)", bg_err_name(e), why);
    if (e == BG_OK && rc != 0)
        fail_msg("we accept what Avro-C rejects (%s)", avro_strerror());
    if (e == BG_OK) {
        assert_true(agree(rd, val, dst));
        st->both_ok++;
    } else if (rc != 0) {
        st->both_reject++;
    } else {
        if (!documented_strictness(e, why)) {
            for (size_t i = 0; i < len; i++)
                print_error("%02x%s", msg[i], i + 1 == len ? "\n" : " ");
            fail_msg("Avro-C accepts, we reject with %s: %s", bg_err_name(e), why);
        }
        st->ours_stricter++;
    }
}

static void test_differential(void **state) {
    (void)state;
    bg_codec *c = mk();
    diff_stats st = {0, 0, 0, 0};
    static const bg_event_kind kinds[] = {BG_EV_USAGE, BG_EV_SECRET, BG_EV_TOOLCALL,
                                          BG_EV_ENVELOPE};
    for (size_t ki = 0; ki < 4; ki++) {
        bg_event_kind k = kinds[ki];
        bg_record rec = (bg_record)k; /* same order for the four inputs */
        const char *t = bg_codec_reader_schema(rec);
        char err[256];
        bg_codec_reader *rd;
        assert_int_equal(bg_codec_reader_new(&rd, rec, t, strlen(t), err, sizeof err), BG_OK);
        avro_schema_t sch;
        assert_int_equal(avro_schema_from_json_length(t, strlen(t), &sch), 0);
        avro_value_iface_t *iface = avro_generic_class_from_schema(sch);
        avro_value_t val;
        assert_int_equal(avro_generic_value_new(iface, &val), 0);
        bg_buf b = {0};
        uint8_t *mut = malloc(BG_MAX_MESSAGE);
        for (int i = 0; i < 1500; i++) {
            bg_event ev;
            bg_envelope_msg env;
            if (k == BG_EV_ENVELOPE) {
                memset(&env, 0, sizeof env);
                env.envelope_id = rnd_str();
                env.identity = rnd_nstr();
                env.workload_class = rnd_nstr();
                env.owner = rnd_nstr();
                env.not_before = rnd_long();
                env.not_after = rnd_long();
                bg_opt_i64 *lim[] = {&env.max_tokens_per_min, &env.max_api_calls_per_min,
                                     &env.max_cost_micros, &env.max_new_secrets,
                                     &env.max_new_destinations};
                for (int j = 0; j < 5; j++)
                    *lim[j] = (bg_opt_i64){rndn(2) != 0, 0};
                for (int j = 0; j < 5; j++)
                    if (lim[j]->set)
                        lim[j]->v = rnd_long();
                env.n_allowed_destinations = rndn(BG_MAX_ALLOWED_DESTS + 1);
                for (uint32_t j = 0; j < env.n_allowed_destinations; j++)
                    env.allowed_destinations[j] = rnd_str();
                env.approved_by = rnd_str();
                env.ticket = rnd_nstr();
                env.revoked = rndn(2);
                env.key_id = rnd_nstr();
                env.signature = rnd_nstr();
                assert_int_equal(bg_codec_encode_envelope(c, 4, &env, &b), BG_OK);
            } else {
                rnd_event(&ev, k);
                assert_int_equal(bg_codec_encode_event(c, (int32_t)rec + 1, &ev, &b), BG_OK);
            }
            differential_one(c, rd, (int32_t)rec + 1, k, &val, b.data, b.len, true, &st);
            /* the decoded fields are also the generated ones */
            if (k != BG_EV_ENVELOPE) {
                bg_event out;
                assert_int_equal(bg_codec_decode_event(c, k, b.data, b.len, &out, NULL, 0), BG_OK);
                assert_true(ev_equal(&ev, &out));
            }
            /* mutations: overwrite, truncate, extend */
            for (int m = 0; m < 4; m++) {
                size_t len = b.len;
                memcpy(mut, b.data, len);
                int nm = 1 + (int)rndn(3);
                for (int j = 0; j < nm; j++) {
                    size_t pos = 5 + rndn((uint32_t)(len - 5));
                    mut[pos] = (uint8_t)(rndn(2) ? rnd() : mut[pos] ^ (1u << rndn(8)));
                }
                if (rndn(4) == 0)
                    len = 5 + rndn((uint32_t)(len - 5));
                else if (rndn(8) == 0)
                    mut[len++] = (uint8_t)rnd();
                differential_one(c, rd, (int32_t)rec + 1, k, &val, mut, len, false, &st);
            }
        }
        free(mut);
        bg_buf_free(&b);
        avro_value_decref(&val);
        avro_value_iface_decref(iface);
        avro_schema_decref(sch);
        bg_codec_reader_free(rd);
    }
    print_message("differential: %u messages, %u both accept (fields equal), %u both reject, "
                  "%u only we reject (documented checks)\n",
                  st.total, st.both_ok, st.both_reject, st.ours_stricter);
    assert_true(st.both_ok > 6000);
    bg_codec_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_roundtrip_inputs),
        cmocka_unit_test(test_encode_outputs),
        cmocka_unit_test(test_writer_adds_fields),
        cmocka_unit_test(test_reader_defaults),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_avro_c_breaking_shape_and_enums),
        cmocka_unit_test(test_promotions),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_skip_malformed),
        cmocka_unit_test(test_differential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
