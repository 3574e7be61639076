/* libFuzzer target: arbitrary bytes as a changelog snapshot.
 *
 * Byte 0 selects the mode: bit 0 recomputes the trailing checksum first (so
 * mutations reach the structure checks behind it), bit 1 restores under
 * the partition record's key instead of the identity's. The rest is the
 * snapshot. bg_engine_restore must refuse with BG_ERR_SNAPSHOT and a
 * one-line reason, or accept a state the engine can go on with: events,
 * ticks, a snapshot of it that restores again, byte for byte the same. Never
 * a crash, an out-of-bounds read or a leak (ASan). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "detectors/engine.h"
#include "detectors/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bg_policy policy;
static int policy_ready;

static void make_policy(void) {
    bg_policy_init_default(&policy);
    bg_class_policy *c = &policy.classes[policy.n_classes++];
    memset(c, 0, sizeof *c);
    c->name = strdup("svc");
    c->match_identity_prefix = strdup("spiffe://t/svc/");
    c->max_api_calls_per_min = 100;
    c->max_tokens_per_min = -1;
    c->max_cost_micros_per_hour = -1;
    c->max_cost_micros_per_day = -1;
    c->approval_cost_micros_per_hour = -1;
    c->max_new_destinations_per_hour = -1;
    c->max_secrets_per_hour = 50;
    c->max_identity_grants_per_hour = 3;
    c->max_owner_grants_per_hour = 5;
    c->max_secret_ttl_seconds = 7 * 86400;
    c->sensitivity = 1.0;
    c->unexpected_action = BG_ACT_THROTTLE;
    c->enforce = true;
    policy_ready = 1;
}

static const char *intern(void *ctx, const char *s, size_t n) {
    (void)s;
    (void)n;
    return ctx;
}

typedef struct again {
    bg_engine *into;
    int failed;
} again;

static bg_err restore_again(void *opaque, const char *identity, size_t identity_len,
                            const uint8_t *state, size_t state_len, int64_t updated_at) {
    (void)updated_at;
    again *a = opaque;
    char why[256];
    if (bg_engine_restore(a->into, identity, identity_len, BG_SNAPSHOT_VERSION, state, state_len,
                          why, sizeof why) != BG_OK)
        a->failed = 1;
    return BG_OK;
}

static bg_str view(const char *s) {
    return (bg_str){s, (uint32_t)strlen(s)};
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!policy_ready)
        make_policy();
    if (size < 1)
        return 0;
    const uint8_t mode = data[0];
    size_t len = size - 1;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, len);
    if ((mode & 1) && len >= BG_SNAPSHOT_HEADER + BG_SNAPSHOT_TRAILER) {
        uint64_t h = XXH3_64bits_withSeed(buf, len - 8, BG_SNAPSHOT_SEED);
        for (int i = 0; i < 8; i++)
            buf[len - 8 + (size_t)i] = (uint8_t)(h >> (8 * i));
    }
    /* the key: the partition's, or the identity the snapshot names */
    char key[BG_MAX_STRING + 1] = "spiffe://t/svc/fuzz";
    if (mode & 2) {
        strcpy(key, BG_ENGINE_PARTITION_KEY);
    } else {
        bg_ident *id;
        bg_snapshot_names nm;
        uint64_t seq;
        if (bg_snapshot_decode_ident(buf, len, BG_SNAPSHOT_VERSION, intern, (void *)"r", &id, &nm,
                                     &seq, NULL, 0) == BG_OK) {
            memcpy(key, nm.identity.ptr, nm.identity.len);
            key[nm.identity.len] = 0;
            bg_snapshot_ident_free(id);
        }
    }
    bg_engine *e;
    if (bg_engine_new(&policy, 0, &e) != BG_OK) {
        free(buf);
        return 0;
    }
    char why[256];
    bg_err err =
        bg_engine_restore(e, key, strlen(key), BG_SNAPSHOT_VERSION, buf, len, why, sizeof why);
    if (err != BG_OK) {
        if (err != BG_ERR_SNAPSHOT && err != BG_ERR_NOMEM)
            __builtin_trap();
        if (err == BG_ERR_SNAPSHOT && (!why[0] || strchr(why, '\n')))
            __builtin_trap();
    } else {
        /* the state works: events, ticks, and it snapshots and restores again */
        bg_engine_stats st;
        bg_engine_stats_get(e, &st);
        int64_t t = st.stream_time == INT64_MIN ? 1795996800000LL : st.stream_time;
        bg_outputs out;
        bg_outputs_init(&out);
        static const char *const dests[] = {"a.example", "b.example", "c.example"};
        for (int i = 0; i < 6; i++) {
            bg_event ev;
            memset(&ev, 0, sizeof ev);
            ev.event_id = view("e");
            ev.identity = view(key);
            ev.event_time = t + i * 40000;
            ev.trace_id = view(dests[i % 3]);
            if (i == 2) {
                ev.kind = BG_EV_SECRET;
                ev.u.secret.secret_id = view("s");
                ev.u.secret.issuer = view("v");
            } else if (i == 4) {
                ev.kind = BG_EV_TOOLCALL;
                ev.u.tool.destination = view(dests[i % 3]);
                ev.u.tool.tool = view("t");
                ev.u.tool.parent_tool = view("p");
                ev.u.tool.credential_id = view("s");
            } else {
                ev.kind = BG_EV_USAGE;
                ev.u.usage.destination = view(dests[i % 3]);
                ev.u.usage.api = view("api");
                ev.u.usage.api_calls = 200;
            }
            (void)bg_engine_observe(e, &ev, i, &out);
            (void)bg_engine_tick(e, &out);
        }
        bg_engine *f;
        if (bg_engine_new(&policy, 0, &f) == BG_OK) {
            again a = {f, 0};
            (void)bg_engine_snapshot_dirty(e, restore_again, &a);
            if (a.failed)
                __builtin_trap(); /* what the engine writes, it reads back */
            bg_engine_free(f);
        }
        (void)bg_engine_state_bytes(e);
        bg_outputs_free(&out);
    }
    bg_engine_free(e);
    free(buf);
    return 0;
}
