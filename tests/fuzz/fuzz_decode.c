/* libFuzzer target for the framed Avro decoder (worker/codec.c, codec_plan.c).
 *
 * Input: byte 0 selects the topic (0 usage, 1 secrets, 2 tool calls, 3
 * envelopes; taken modulo 4), the rest is the Kafka message value. The codec
 * knows the built-in schemas (ids 1..7) plus two evolved writers: a
 * UsageEvent with extra fields of every Avro type (id 100) and an old
 * SecretIssued without the optional fields, with a map after its array (id
 * 101), so the fuzzer reaches the skip and default paths.
 *
 * Properties checked beyond "no crash, no out-of-bounds read" (ASan):
 * every decoded string lies inside the input or is a reader default; counts
 * are within their caps; and a decoded event re-encoded with the reader
 * schema (Avro-C) decodes to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char evolved_usage[] =
    "{\"type\":\"record\",\"name\":\"UsageEvent\",\"namespace\":\"burstguard.v1\",\"fields\":["
    "{\"name\":\"x_map\",\"type\":{\"type\":\"map\",\"values\":{\"type\":\"array\",\"items\":\"long\"}},\"default\":{\"k\":[1,2]}},"
    "{\"name\":\"event_id\",\"type\":\"string\"},"
    "{\"name\":\"identity\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"x_rec\",\"type\":{\"type\":\"record\",\"name\":\"Node\",\"fields\":["
    "{\"name\":\"v\",\"type\":\"double\"},{\"name\":\"f\",\"type\":{\"type\":\"fixed\",\"name\":\"F3\",\"size\":3}},"
    "{\"name\":\"next\",\"type\":[\"null\",\"Node\"]}]},\"default\":{\"v\":1.0,\"f\":\"abc\",\"next\":null}},"
    "{\"name\":\"owner\",\"type\":\"string\",\"default\":\"o\"},"
    "{\"name\":\"event_time\",\"type\":\"int\"},"
    "{\"name\":\"x_enum\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\",\"C\"]},\"default\":\"B\"},"
    "{\"name\":\"api\",\"type\":\"bytes\"},"
    "{\"name\":\"destination\",\"type\":\"string\"},"
    "{\"name\":\"x_union\",\"type\":[\"null\",\"boolean\",\"float\",\"string\"],\"default\":null},"
    "{\"name\":\"api_calls\",\"type\":\"int\"},"
    "{\"name\":\"tokens_in\",\"type\":\"int\"},"
    "{\"name\":\"tokens_out\",\"type\":\"long\"},"
    "{\"name\":\"cost_micros\",\"type\":[\"long\",\"null\"],\"default\":0},"
    "{\"name\":\"x_arr\",\"type\":{\"type\":\"array\",\"items\":[\"null\",\"bytes\"]},\"default\":[null]}"
    "]}";

static const char old_secret[] =
    "{\"type\":\"record\",\"name\":\"SecretIssued\",\"namespace\":\"burstguard.v1\",\"fields\":["
    "{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"identity\",\"type\":\"string\"},"
    "{\"name\":\"event_time\",\"type\":\"long\"},{\"name\":\"secret_id\",\"type\":\"string\"},"
    "{\"name\":\"secret_kind\",\"type\":{\"type\":\"enum\",\"name\":\"SecretKind\",\"symbols\":"
    "[\"NEW_KIND\",\"API_KEY\",\"OTHER\"]}},"
    "{\"name\":\"scopes\",\"type\":{\"type\":\"array\",\"items\":[\"string\",\"null\"]}},"
    "{\"name\":\"tags\",\"type\":{\"type\":\"map\",\"values\":\"string\"},\"default\":{}},"
    "{\"name\":\"issuer\",\"type\":\"string\"},{\"name\":\"ttl_seconds\",\"type\":\"long\"}]}";

static bg_codec *codec;

static void teardown(void) { bg_codec_free(codec); }

static void setup(void) {
    char err[256];
    if (bg_codec_new(&codec, err, sizeof err) != BG_OK ||
        bg_codec_add_defaults(codec, err, sizeof err) != BG_OK ||
        bg_codec_add_schema(codec, 100, evolved_usage, sizeof evolved_usage - 1, err,
                            sizeof err) != BG_OK ||
        bg_codec_add_schema(codec, 101, old_secret, sizeof old_secret - 1, err, sizeof err) !=
            BG_OK)
        abort(); /* our own schemas: a setup bug, not an input */
    atexit(teardown); /* so that LeakSanitizer sees a clean exit */
}

static int in_input(bg_str s, const uint8_t *data, size_t size) {
    if (!s.ptr)
        return s.len == 0;
    if (s.len > BG_MAX_STRING)
        return 0;
    const uint8_t *p = (const uint8_t *)s.ptr;
    /* a reader default lives outside the input; ours are all null or empty */
    return (p >= data && p + s.len <= data + size) || s.len == 0;
}

static int same(bg_str a, bg_str b) {
    if (!a.ptr || !b.ptr)
        return !a.ptr && !b.ptr;
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void check_event(const bg_event *ev, const uint8_t *data, size_t size) {
    const bg_str *s[] = {&ev->event_id, &ev->identity, &ev->owner, &ev->workload_class,
                         &ev->trace_id};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        if (!in_input(*s[i], data, size))
            __builtin_trap();
    if (ev->kind == BG_EV_SECRET) {
        if (ev->u.secret.n_scopes > BG_MAX_SCOPES || ev->u.secret.secret_kind < 0 ||
            ev->u.secret.secret_kind > BG_SK_OTHER)
            __builtin_trap();
        for (uint32_t i = 0; i < ev->u.secret.n_scopes; i++)
            if (!in_input(ev->u.secret.scopes[i], data, size))
                __builtin_trap();
    }
    /* re-encode with the reader schema and decode again: the same fields */
    bg_buf b = {0};
    if (bg_codec_encode_event(codec, (int32_t)ev->kind + 1, ev, &b) != BG_OK)
        __builtin_trap();
    bg_event again;
    if (bg_codec_decode_event(codec, ev->kind, b.data, b.len, &again, NULL, 0) != BG_OK ||
        !same(ev->event_id, again.event_id) || !same(ev->owner, again.owner) ||
        !same(ev->trace_id, again.trace_id) || ev->event_time != again.event_time)
        __builtin_trap();
    if (ev->kind == BG_EV_USAGE &&
        (!same(ev->u.usage.api, again.u.usage.api) ||
         ev->u.usage.tokens_in != again.u.usage.tokens_in))
        __builtin_trap();
    if (ev->kind == BG_EV_SECRET && ev->u.secret.n_scopes != again.u.secret.n_scopes)
        __builtin_trap();
    bg_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!codec)
        setup();
    if (size == 0)
        return 0;
    unsigned sel = data[0] % 4u;
    data++;
    size--;
    char why[256];
    if (sel < 3) {
        bg_event ev;
        if (bg_codec_decode_event(codec, (bg_event_kind)sel, data, size, &ev, why, sizeof why) ==
            BG_OK)
            check_event(&ev, data, size);
    } else {
        bg_envelope_msg env;
        if (bg_codec_decode_envelope(codec, data, size, &env, why, sizeof why) == BG_OK) {
            if (env.n_allowed_destinations > BG_MAX_ALLOWED_DESTS ||
                !in_input(env.envelope_id, data, size) || !in_input(env.signature, data, size))
                __builtin_trap();
            bg_buf b = {0};
            bg_envelope_msg again;
            if (bg_codec_encode_envelope(codec, 4, &env, &b) != BG_OK ||
                bg_codec_decode_envelope(codec, b.data, b.len, &again, NULL, 0) != BG_OK ||
                !same(env.signature, again.signature) ||
                env.n_allowed_destinations != again.n_allowed_destinations)
                __builtin_trap();
            bg_buf_free(&b);
        }
    }
    return 0;
}
