/* The identity store: bounds, eviction order, tombstones, idle TTL in event
 * time, backward-shift deletion, dirty tracking and byte accounting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "detectors/engine.h"
#include "detectors/snapshot.h"

#define T0 1795996800000LL /* 2026-11-30T00:00:00Z */
#define MIN 60000LL

static bg_str S(const char *s) {
    return (bg_str){s, (uint32_t)strlen(s)};
}

/* Class "svc": 100 calls a minute, THROTTLE; 1 h learning period. */
static void make_policy(bg_policy *p) {
    assert_int_equal(bg_policy_init_default(p), BG_OK);
    bg_class_policy *c = &p->classes[p->n_classes++];
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
}

static void usage_at(bg_engine *e, const char *who, int64_t t, const char *dest, int calls,
                     bg_outputs *out) {
    bg_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = BG_EV_USAGE;
    ev.event_id = S("e");
    ev.identity = S(who);
    ev.event_time = t;
    ev.u.usage.destination = S(dest);
    ev.u.usage.api = S("api");
    ev.u.usage.api_calls = calls;
    assert_int_equal(bg_engine_observe(e, &ev, 1, out), BG_OK);
}

static void secret_at(bg_engine *e, const char *who, int64_t t, const char *sid, bg_outputs *out) {
    bg_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = BG_EV_SECRET;
    ev.event_id = S("e");
    ev.identity = S(who);
    ev.event_time = t;
    ev.u.secret.secret_id = S(sid);
    ev.u.secret.issuer = S("vault");
    ev.u.secret.ttl_seconds = 3600;
    assert_int_equal(bg_engine_observe(e, &ev, 2, out), BG_OK);
}

static const char *name(char *buf, size_t n, int i) {
    snprintf(buf, n, "spiffe://t/svc/id-%07d", i);
    return buf;
}

typedef struct names {
    char v[4096][40];
    size_t n;
    size_t total;
} names;

static bg_err take(void *opaque, const char *identity, size_t len) {
    names *l = opaque;
    if (l->n < 4096)
        snprintf(l->v[l->n++], sizeof l->v[0], "%.*s", (int)len, identity);
    l->total++;
    return BG_OK;
}

static bool live(bg_engine *e, const char *who) {
    /* the identity is live when another event for it creates nothing */
    bg_engine_stats a, b;
    bg_engine_stats_get(e, &a);
    bg_outputs out;
    bg_outputs_init(&out);
    bg_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = BG_EV_TOOLCALL; /* changes counters only */
    ev.event_id = S("e");
    ev.identity = S(who);
    ev.event_time = a.stream_time == INT64_MIN ? T0 : a.stream_time;
    ev.u.tool.tool = S("t");
    assert_int_equal(bg_engine_observe(e, &ev, 3, &out), BG_OK);
    bg_engine_stats_get(e, &b);
    bg_outputs_free(&out);
    if (b.identities != a.identities) {
        bg_engine_forget(e, who, strlen(who)); /* undo */
        return false;
    }
    return true;
}

/* max_identities 100: the 101st identity evicts a batch of the least
 * recently active (6 = 101 / 16), oldest first in the tombstone list; an
 * identity with an open burst stays even though it is the oldest. */
static void test_eviction_order(void **state) {
    (void)state;
    bg_policy p;
    make_policy(&p);
    bg_engine *e;
    assert_int_equal(bg_engine_new(&p, 0, &e), BG_OK);
    bg_outputs out;
    bg_outputs_init(&out);
    char b[64];
    /* id 0: a burst (over the limit), the oldest activity of all */
    usage_at(e, name(b, sizeof b, 0), T0, "a.example", 500, &out);
    assert_int_equal(out.n_verdicts, 1);
    for (int i = 1; i < 100; i++) /* one a minute, ids 1..99 */
        usage_at(e, name(b, sizeof b, i), T0 + i * MIN, "a.example", 1, &out);
    bg_engine_limits lim = {.max_identities = 100};
    bg_engine_set_limits(e, &lim);
    bg_engine_state_stats st;
    bg_engine_state_stats_get(e, &st);
    assert_int_equal(st.evicted_bound, 0);
    usage_at(e, name(b, sizeof b, 100), T0 + 100 * MIN, "a.example", 1, &out);
    bg_engine_state_stats_get(e, &st);
    assert_int_equal(st.evicted_bound, 6);
    bg_engine_stats es;
    bg_engine_stats_get(e, &es);
    assert_int_equal(es.identities, 95);
    names *l = calloc(1, sizeof *l);
    assert_non_null(l);
    assert_int_equal(bg_engine_take_evicted(e, take, l), BG_OK);
    assert_int_equal(l->n, 6);
    for (int i = 0; i < 6; i++)
        assert_string_equal(l->v[i], name(b, sizeof b, i + 1));
    /* the list is cleared */
    l->n = 0;
    assert_int_equal(bg_engine_take_evicted(e, take, l), BG_OK);
    assert_int_equal(l->n, 0);
    assert_true(live(e, name(b, sizeof b, 0)));
    assert_false(live(e, name(b, sizeof b, 1)));
    assert_true(live(e, name(b, sizeof b, 7)));
    /* the burst is still open: nothing ended it */
    for (size_t i = 0; i < out.n_verdicts; i++)
        assert_int_not_equal(out.verdicts[i].phase, BG_PHASE_ENDED);
    free(l);
    bg_outputs_free(&out);
    bg_engine_free(e);
    bg_policy_free(&p);
}

/* When every identity has an open burst, the bound still holds: the least
 * recently active go, their bursts end with no verdict. */
static void test_eviction_all_bursts(void **state) {
    (void)state;
    bg_policy p;
    make_policy(&p);
    bg_engine *e;
    assert_int_equal(bg_engine_new(&p, 0, &e), BG_OK);
    bg_engine_limits lim = {.max_identities = 32};
    bg_engine_set_limits(e, &lim);
    bg_outputs out;
    bg_outputs_init(&out);
    char b[64];
    for (int i = 0; i < 33; i++)
        usage_at(e, name(b, sizeof b, i), T0 + i * 1000, "a.example", 500, &out);
    assert_int_equal(out.n_verdicts, 33); /* 33 ONSETs, no ENDED */
    bg_engine_stats es;
    bg_engine_stats_get(e, &es);
    assert_int_equal(es.identities, 31); /* 33 > 32: a batch of max(33 / 16, 1) = 2 */
    names *l = calloc(1, sizeof *l);
    assert_non_null(l);
    assert_int_equal(bg_engine_take_evicted(e, take, l), BG_OK);
    assert_int_equal(l->n, 2);
    assert_string_equal(l->v[0], name(b, sizeof b, 0));
    assert_string_equal(l->v[1], name(b, sizeof b, 1));
    /* ticks far later end the remaining bursts, and only those */
    usage_at(e, "spiffe://t/svc/clock", T0 + 60 * MIN, "a.example", 1, &out);
    bg_outputs_reset(&out);
    assert_int_equal(bg_engine_tick(e, &out), BG_OK);
    size_t ended = 0;
    for (size_t i = 0; i < out.n_verdicts; i++)
        ended += out.verdicts[i].phase == BG_PHASE_ENDED;
    assert_int_equal(ended, 31);
    free(l);
    bg_outputs_free(&out);
    bg_engine_free(e);
    bg_policy_free(&p);
}

/* An identity flood: 1 M identities through a store of at most 10 k. The
 * tracked bytes stay bounded and agree with a full walk. */
static void test_flood_bounded(void **state) {
    (void)state;
    bg_policy p;
    make_policy(&p);
    bg_engine *e;
    assert_int_equal(bg_engine_new(&p, 0, &e), BG_OK);
    bg_engine_limits lim = {.max_identities = 10000};
    bg_engine_set_limits(e, &lim);
    bg_outputs out;
    bg_outputs_init(&out);
    names *l = calloc(1, sizeof *l);
    assert_non_null(l);
    char b[64];
    uint64_t max_bytes = 0, max_ids = 0;
    for (int i = 0; i < 1000000; i++) {
        usage_at(e, name(b, sizeof b, i), T0 + i * 10, "a.example", 1, &out);
        if (i % 1000 == 999) {
            bg_engine_state_stats st;
            bg_engine_state_stats_get(e, &st);
            bg_engine_stats es;
            bg_engine_stats_get(e, &es);
            max_bytes = st.bytes > max_bytes ? st.bytes : max_bytes;
            max_ids = es.identities > max_ids ? es.identities : max_ids;
            assert_int_equal(bg_engine_take_evicted(e, take, l), BG_OK);
            assert_int_equal(bg_engine_tick(e, &out), BG_OK);
            bg_outputs_reset(&out);
        }
    }
    bg_engine_state_stats st;
    bg_engine_state_stats_get(e, &st);
    assert_int_equal(st.bytes, bg_engine_state_bytes(e));
    bg_engine_stats es;
    bg_engine_stats_get(e, &es);
    print_message("1M identities, max_identities 10k: at most %llu live, %llu bytes; %llu evicted, "
                  "%zu tombstones\n",
                  (unsigned long long)max_ids, (unsigned long long)max_bytes,
                  (unsigned long long)st.evicted_bound, l->total);
    assert_true(max_ids <= 10000);
    assert_int_equal(st.evicted_bound + es.identities, 1000000);
    assert_int_equal(l->total, st.evicted_bound);
    assert_int_equal(st.tombstones_dropped, 0);
    /* 10 k quiet identities: struct, name, slot (cap 16 k), plus the sketches */
    assert_true(max_bytes <= 10000ull * (216 + 32) + 16384 * 8 + 2 * 54400 + 4096);
    free(l);
    bg_outputs_free(&out);
    bg_engine_free(e);
    bg_policy_free(&p);
}

/* A quiet identity costs at most 256 bytes with its slot and its name
 * (here 26 bytes): 216 for the struct, the name, 8 bytes a slot at a load
 * between 0.35 and 0.7. */
static void test_quiet_identity_budget(void **state) {
    (void)state;
    bg_policy p;
    make_policy(&p);
    bg_engine *e;
    assert_int_equal(bg_engine_new(&p, 0, &e), BG_OK);
    bg_outputs out;
    bg_outputs_init(&out);
    char b[64];
    for (int i = 0; i < 10000; i++)
        usage_at(e, name(b, sizeof b, i), T0 + i, "a.example", 1, &out);
    bg_engine_state_stats st;
    bg_engine_state_stats_get(e, &st);
    const size_t sketches = 2 * (24 + 4 * 2719 * 5);
    double per = (double)(st.bytes - sketches) / 10000.0;
    print_message("quiet identity: %.1f bytes with slot and name\n", per);
    assert_true(per <= 256.0);
    bg_outputs_free(&out);
    bg_engine_free(e);
    bg_policy_free(&p);
}

/* Tombstones nobody takes are capped (2^20 names): the oldest go untold,
 * counted; the list keeps the newest, oldest first. */
static void test_tombstones_capped(void **state) {
    (void)state;
    bg_policy p;
    make_policy(&p);
    bg_engine *e;
    assert_int_equal(bg_engine_new(&p, 0, &e), BG_OK);
    bg_engine_limits lim = {.max_identities = 1000};
    bg_engine_set_limits(e, &lim);
    bg_outputs out;
    bg_outputs_init(&out);
    char b[64];
    const int n = 1100000;
    for (int i = 0; i < n; i++)
        usage_at(e, name(b, sizeof b, i), T0 + i, "a.example", 1, &out);
    bg_engine_state_stats st;
    bg_engine_state_stats_get(e, &st);
    names *l = calloc(1, sizeof *l);
    assert_non_null(l);
    assert_int_equal(bg_engine_take_evicted(e, take, l), BG_OK);
    assert_int_equal(l->total, 1u << 20);
    assert_int_equal(st.tombstones_dropped + l->total, st.evicted_bound);
    /* the first one told is the oldest kept */
    assert_string_equal(l->v[0], name(b, sizeof b, (int)st.tombstones_dropped));
    free(l);
    bg_outputs_free(&out);
    bg_engine_free(e);
    bg_policy_free(&p);
}

/* max_bytes alone bounds the store too. */
static void test_max_bytes(void **state) {
    (void)state;
    bg_policy p;
    make_policy(&p);
    bg_engine *e;
    assert_int_equal(bg_engine_new(&p, 0, &e), BG_OK);
    const uint64_t cap = 1u << 20;
    bg_engine_limits lim = {.max_bytes = cap};
    bg_engine_set_limits(e, &lim);
    bg_outputs out;
    bg_outputs_init(&out);
    char b[64], d[32];
    for (int i = 0; i < 20000; i++) {
        for (int k = 0; k < (i % 3 ? 1 : 12); k++) { /* some with heap novelty sets */
            snprintf(d, sizeof d, "d%d.example", k);
            usage_at(e, name(b, sizeof b, i), T0 + i * 10, d, 1, &out);
        }
        bg_engine_state_stats st;
        bg_engine_state_stats_get(e, &st);
        assert_true(st.bytes <= cap);
    }
    bg_engine_state_stats st;
    bg_engine_state_stats_get(e, &st);
    assert_true(st.evicted_bound > 0);
    assert_int_equal(st.bytes, bg_engine_state_bytes(e));
    bg_outputs_free(&out);
    bg_engine_free(e);
    bg_policy_free(&p);
}

/* Backward-shift deletion: random inserts and deletes (fixed seed), and
 * every identity that should be there is found, none that should not. */
static uint64_t rng = 12345;
static uint64_t rnd(void) {
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void test_backward_shift(void **state) {
    (void)state;
    bg_policy p;
    make_policy(&p);
    bg_engine *e;
    assert_int_equal(bg_engine_new(&p, 0, &e), BG_OK);
    bg_outputs out;
    bg_outputs_init(&out);
    enum { N = 3000 };
    bool *in = calloc(N, sizeof *in);
    assert_non_null(in);
    char b[64];
    size_t n_in = 0;
    for (int round = 0; round < 40000; round++) {
        int i = (int)(rnd() % N);
        if (in[i] && rnd() % 2) {
            bg_engine_forget(e, name(b, sizeof b, i), strlen(b));
            in[i] = false;
            n_in--;
        } else if (!in[i]) {
            usage_at(e, name(b, sizeof b, i), T0, "a.example", 1, &out);
            in[i] = true;
            n_in++;
        }
    }
    bg_engine_stats es;
    bg_engine_stats_get(e, &es);
    assert_int_equal(es.identities, n_in);
    for (int i = 0; i < N; i++)
        assert_int_equal(live(e, name(b, sizeof b, i)), in[i]);
    bg_engine_state_stats st;
    bg_engine_state_stats_get(e, &st);
    assert_int_equal(st.bytes, bg_engine_state_bytes(e));
    free(in);
    bg_outputs_free(&out);
    bg_engine_free(e);
    bg_policy_free(&p);
}

/* Idle TTL in event time: identities quiet for more than idle_ttl_ms behind
 * the watermark go on ticks; one with an open burst stays until its burst
 * ends. */
static void test_idle_ttl(void **state) {
    (void)state;
    bg_policy p;
    make_policy(&p);
    bg_engine *e;
    assert_int_equal(bg_engine_new(&p, 0, &e), BG_OK);
    bg_engine_limits lim = {.idle_ttl_ms = 30 * MIN};
    bg_engine_set_limits(e, &lim);
    bg_outputs out;
    bg_outputs_init(&out);
    char b[64];
    for (int i = 0; i < 50; i++)
        usage_at(e, name(b, sizeof b, i), T0, "a.example", 1, &out);
    usage_at(e, "spiffe://t/svc/bursty", T0 + 20 * MIN, "a.example", 500, &out);
    /* 25 minutes later: nobody is idle yet */
    usage_at(e, "spiffe://t/svc/clock", T0 + 25 * MIN, "a.example", 1, &out);
    assert_int_equal(bg_engine_tick(e, &out), BG_OK);
    bg_engine_state_stats st;
    bg_engine_state_stats_get(e, &st);
    assert_int_equal(st.evicted_idle, 0);
    /* 40 minutes: the 50 are 40 min behind (watermark = 40 min - lateness) */
    for (int k = 0; k < 100; k++) /* events earn the sweep its slots */
        usage_at(e, "spiffe://t/svc/clock", T0 + 40 * MIN + k, "a.example", 1, &out);
    for (int k = 0; k < 64; k++)
        assert_int_equal(bg_engine_tick(e, &out), BG_OK);
    bg_engine_state_stats_get(e, &st);
    assert_int_equal(st.evicted_idle, 50);
    assert_true(live(e, "spiffe://t/svc/bursty"));
    bg_engine_stats es;
    bg_engine_stats_get(e, &es);
    assert_int_equal(es.identities, 2);
    /* much later the burst has ended (ticks) and the bursty one goes too */
    for (int k = 0; k < 100; k++)
        usage_at(e, "spiffe://t/svc/clock", T0 + 120 * MIN + k, "a.example", 1, &out);
    for (int k = 0; k < 64; k++)
        assert_int_equal(bg_engine_tick(e, &out), BG_OK);
    bg_engine_state_stats_get(e, &st);
    assert_int_equal(st.evicted_idle, 51);
    names *l = calloc(1, sizeof *l);
    assert_non_null(l);
    assert_int_equal(bg_engine_take_evicted(e, take, l), BG_OK);
    assert_int_equal(l->n, 51);
    assert_string_equal(l->v[50], "spiffe://t/svc/bursty");
    free(l);
    bg_outputs_free(&out);
    bg_engine_free(e);
    bg_policy_free(&p);
}

/* An identity evicted after a long history comes back with new secrets and
 * new destinations: it starts cold (learning period), so no verdict. */
static void test_evicted_returns_cold(void **state) {
    (void)state;
    bg_policy p;
    make_policy(&p);
    bg_engine *e;
    assert_int_equal(bg_engine_new(&p, 0, &e), BG_OK);
    bg_engine_limits lim = {.idle_ttl_ms = 60 * MIN};
    bg_engine_set_limits(e, &lim);
    bg_outputs out;
    bg_outputs_init(&out);
    const char *who = "spiffe://t/svc/returning";
    for (int m = 0; m < 120; m++)
        usage_at(e, who, T0 + m * MIN, "a.example", 5, &out);
    assert_int_equal(out.n_verdicts, 0);
    for (int k = 0; k < 200; k++)
        usage_at(e, "spiffe://t/svc/clock", T0 + 300 * MIN + k * 1000, "a.example", 1, &out);
    for (int k = 0; k < 16; k++)
        assert_int_equal(bg_engine_tick(e, &out), BG_OK);
    bg_engine_state_stats st;
    bg_engine_state_stats_get(e, &st);
    assert_int_equal(st.evicted_idle, 1);
    /* back: new secrets, many new destinations, in its first minutes */
    char d[32], s[32];
    for (int i = 0; i < 20; i++) {
        snprintf(s, sizeof s, "sec-%d", i);
        snprintf(d, sizeof d, "new%d.example", i);
        secret_at(e, who, T0 + 301 * MIN + i * 1000, s, &out);
        usage_at(e, who, T0 + 301 * MIN + i * 1000 + 500, d, 5, &out);
    }
    for (size_t i = 0; i < out.n_verdicts; i++)
        print_message("%s %s %s %s\n", bg_phase_name(out.verdicts[i].phase),
                      bg_class_name(out.verdicts[i].classification), out.verdicts[i].identity,
                      out.verdicts[i].reasons[0].code);
    assert_int_equal(out.n_verdicts, 0);
    assert_int_equal(out.n_revocations, 0);
    /* it is listed for its tombstone, but it is live again: skipped */
    names *l = calloc(1, sizeof *l);
    assert_non_null(l);
    assert_int_equal(bg_engine_take_evicted(e, take, l), BG_OK);
    assert_int_equal(l->n, 0);
    free(l);
    bg_outputs_free(&out);
    bg_engine_free(e);
    bg_policy_free(&p);
}

typedef struct seen {
    char v[64][48];
    size_t n;
    int fail_at; /* -1: never */
} seen;

static bg_err visit(void *opaque, const char *identity, size_t identity_len, const uint8_t *st,
                    size_t len, int64_t updated_at) {
    (void)st;
    (void)len;
    (void)updated_at;
    seen *s = opaque;
    if (s->fail_at >= 0 && (size_t)s->fail_at == s->n)
        return BG_ERR_IO;
    assert_true(s->n < 64);
    snprintf(s->v[s->n++], sizeof s->v[0], "%.*s", (int)identity_len, identity);
    return BG_OK;
}

/* Dirty tracking: only what changed is visited, in order of change; an
 * evicted dirty identity is skipped; a failing callback leaves the rest. */
static void test_dirty(void **state) {
    (void)state;
    bg_policy p;
    make_policy(&p);
    bg_engine *e;
    assert_int_equal(bg_engine_new(&p, 0, &e), BG_OK);
    bg_outputs out;
    bg_outputs_init(&out);
    char b[64];
    for (int i = 0; i < 10; i++)
        usage_at(e, name(b, sizeof b, i), T0 + i, "a.example", 1, &out);
    seen s = {.fail_at = -1};
    assert_int_equal(bg_engine_snapshot_dirty(e, visit, &s), BG_OK);
    assert_int_equal(s.n, 11); /* ten and the partition record */
    assert_string_equal(s.v[10], BG_ENGINE_PARTITION_KEY);
    bg_engine_state_stats st;
    bg_engine_state_stats_get(e, &st);
    assert_int_equal(st.dirty, 0);
    /* three change (one twice), one of them is forgotten */
    usage_at(e, name(b, sizeof b, 7), T0 + 100, "a.example", 1, &out);
    usage_at(e, name(b, sizeof b, 2), T0 + 100, "a.example", 1, &out);
    usage_at(e, name(b, sizeof b, 7), T0 + 101, "a.example", 1, &out);
    usage_at(e, name(b, sizeof b, 5), T0 + 102, "a.example", 1, &out);
    bg_engine_forget(e, name(b, sizeof b, 2), strlen(b));
    bg_engine_state_stats_get(e, &st);
    assert_int_equal(st.dirty, 2);
    s.n = 0;
    s.fail_at = 1;
    assert_int_equal(bg_engine_snapshot_dirty(e, visit, &s), BG_ERR_IO);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.v[0], name(b, sizeof b, 7));
    bg_engine_state_stats_get(e, &st);
    assert_int_equal(st.dirty, 1);
    s.n = 0;
    s.fail_at = -1;
    assert_int_equal(bg_engine_snapshot_dirty(e, visit, &s), BG_OK);
    assert_int_equal(s.n, 1); /* known destination: the sketches did not change */
    assert_string_equal(s.v[0], name(b, sizeof b, 5));
    /* a tick that closes a burst's buckets makes it dirty */
    usage_at(e, "spiffe://t/svc/bursty", T0 + MIN, "a.example", 500, &out);
    assert_int_equal(bg_engine_snapshot_dirty(e, visit, &s), BG_OK);
    usage_at(e, name(b, sizeof b, 1), T0 + 10 * MIN, "a.example", 1, &out);
    s.n = 0;
    assert_int_equal(bg_engine_tick(e, &out), BG_OK);
    assert_int_equal(bg_engine_snapshot_dirty(e, visit, &s), BG_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.v[1], "spiffe://t/svc/bursty");
    /* events under the reserved key are refused */
    bg_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = BG_EV_USAGE;
    ev.identity = S(BG_ENGINE_PARTITION_KEY);
    ev.event_time = T0;
    assert_int_equal(bg_engine_observe(e, &ev, 0, &out), BG_ERR_INVALID);
    bg_outputs_free(&out);
    bg_engine_free(e);
    bg_policy_free(&p);
}

/* The dirty list stays bounded when nobody snapshots while identities churn. */
static void test_dirty_list_bounded(void **state) {
    (void)state;
    bg_policy p;
    make_policy(&p);
    bg_engine *e;
    assert_int_equal(bg_engine_new(&p, 0, &e), BG_OK);
    bg_engine_limits lim = {.max_identities = 1000};
    bg_engine_set_limits(e, &lim);
    bg_outputs out;
    bg_outputs_init(&out);
    char b[64];
    for (int i = 0; i < 200000; i++)
        usage_at(e, name(b, sizeof b, i), T0 + i, "a.example", 1, &out);
    bg_engine_state_stats st;
    bg_engine_state_stats_get(e, &st);
    assert_true(st.dirty <= 1000);
    seen *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->fail_at = 64; /* stops the walk after 64 */
    assert_int_equal(bg_engine_snapshot_dirty(e, visit, s), BG_ERR_IO);
    /* the survivors are the most recent ones, in order */
    assert_string_equal(s->v[63], name(b, sizeof b, 200000 - (int)st.dirty + 63));
    free(s);
    bg_outputs_free(&out);
    bg_engine_free(e);
    bg_policy_free(&p);
}

typedef struct blobs {
    char key[2100][40];
    uint8_t *st[2100];
    size_t len[2100];
    size_t n;
} blobs;

static bg_err keep_blob(void *opaque, const char *identity, size_t identity_len,
                        const uint8_t *state, size_t state_len, int64_t updated_at) {
    (void)updated_at;
    blobs *b = opaque;
    assert_true(b->n < 2100 && identity_len < 40);
    snprintf(b->key[b->n], sizeof b->key[0], "%.*s", (int)identity_len, identity);
    b->st[b->n] = malloc(state_len);
    assert_non_null(b->st[b->n]);
    memcpy(b->st[b->n], state, state_len);
    b->len[b->n++] = state_len;
    return BG_OK;
}

/* Restoring more identities than the bound holds evicts as events do: the
 * least recently active go, listed for their tombstones. */
static void test_restore_within_bounds(void **state) {
    (void)state;
    bg_policy p;
    make_policy(&p);
    bg_engine *e, *f;
    assert_int_equal(bg_engine_new(&p, 0, &e), BG_OK);
    assert_int_equal(bg_engine_new(&p, 0, &f), BG_OK);
    bg_outputs out;
    bg_outputs_init(&out);
    char b[64];
    for (int i = 0; i < 2000; i++)
        usage_at(e, name(b, sizeof b, i), T0 + i * 1000, "a.example", 1, &out);
    blobs *bl = calloc(1, sizeof *bl);
    assert_non_null(bl);
    assert_int_equal(bg_engine_snapshot_dirty(e, keep_blob, bl), BG_OK);
    bg_engine_limits lim = {.max_identities = 1000};
    bg_engine_set_limits(f, &lim);
    char why[256];
    for (size_t i = 0; i < bl->n; i++)
        assert_int_equal(bg_engine_restore(f, bl->key[i], strlen(bl->key[i]), BG_SNAPSHOT_VERSION,
                                           bl->st[i], bl->len[i], why, sizeof why),
                         BG_OK);
    bg_engine_stats es;
    bg_engine_stats_get(f, &es);
    bg_engine_state_stats st;
    bg_engine_state_stats_get(f, &st);
    assert_true(es.identities <= 1000);
    assert_int_equal(st.restored, 2000);
    assert_int_equal(st.evicted_bound + es.identities, 2000);
    assert_true(live(f, name(b, sizeof b, 1999)));
    assert_false(live(f, name(b, sizeof b, 0)));
    names *l = calloc(1, sizeof *l);
    assert_non_null(l);
    assert_int_equal(bg_engine_take_evicted(f, take, l), BG_OK);
    assert_int_equal(l->total, st.evicted_bound);
    for (size_t i = 0; i < bl->n; i++)
        free(bl->st[i]);
    free(bl);
    free(l);
    bg_outputs_free(&out);
    bg_engine_free(e);
    bg_engine_free(f);
    bg_policy_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eviction_order),       cmocka_unit_test(test_eviction_all_bursts),
        cmocka_unit_test(test_flood_bounded),        cmocka_unit_test(test_quiet_identity_budget),
        cmocka_unit_test(test_tombstones_capped),    cmocka_unit_test(test_max_bytes),
        cmocka_unit_test(test_backward_shift),       cmocka_unit_test(test_idle_ttl),
        cmocka_unit_test(test_evicted_returns_cold), cmocka_unit_test(test_dirty),
        cmocka_unit_test(test_dirty_list_bounded),   cmocka_unit_test(test_restore_within_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
