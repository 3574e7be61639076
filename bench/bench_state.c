/* State that survives: snapshot encode / decode / restore rates, LZ4 size,
 * bytes per identity, and the hot-path cost of dirty tracking.
 *
 * Builds an engine of N identities (default 1 M; argv[1] overrides) from a
 * stream like bench_engine's (half the events from 1% of the identities, 2-4
 * destinations each, an hour of event time so the busy ones get their
 * detectors), then:
 *   encode   bg_engine_snapshot_dirty over every identity (the callback
 *            copies each record into memory touched beforehand),
 *            identities/s and MB/s of raw bytes
 *   lz4      each record compressed on its own (LZ4_compress_default), as
 *            the worker does: total size and ratio, MB/s
 *   decode   bg_snapshot_decode_ident + free per record (pure decoding)
 *   restore  bg_engine_restore of every record into a fresh engine
 *   memory   bytes per identity as the engine counts them and as jemalloc
 *            does (stats.allocated delta around building the engine)
 *   dirty    engine events/s with dirty tracking on and off on the same
 *            engine, alternating runs, median of 5 each (every run starts
 *            with every identity clean, so each run marks them again, and
 *            with caches flushed by a 64 MiB write)
 * and prints a table and a checksum of what it computed. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lz4.h>
#include "bench/bench_util.h"
#include "detectors/engine.h"
#include "detectors/snapshot.h"

/* Records as the changelog would hold them: key and raw state, in one arena. */
typedef struct store {
    uint8_t *arena;
    size_t used, cap;
    size_t *key_at, *key_len, *st_at, *st_len;
    size_t n, ncap;
    uint64_t check;
} store;

static void *grow(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return q;
}

static size_t put(store *s, const void *p, size_t n) {
    if (s->used + n > s->cap) {
        s->cap = (s->cap ? s->cap * 2 : 1 << 24) + n;
        s->arena = grow(s->arena, s->cap);
    }
    memcpy(s->arena + s->used, p, n);
    s->used += n;
    return s->used - n;
}

static bg_err keep(void *opaque, const char *identity, size_t identity_len, const uint8_t *state,
                   size_t state_len, int64_t updated_at) {
    store *s = opaque;
    if (s->n == s->ncap) {
        s->ncap = s->ncap ? s->ncap * 2 : 1 << 16;
        s->key_at = grow(s->key_at, s->ncap * sizeof(size_t));
        s->key_len = grow(s->key_len, s->ncap * sizeof(size_t));
        s->st_at = grow(s->st_at, s->ncap * sizeof(size_t));
        s->st_len = grow(s->st_len, s->ncap * sizeof(size_t));
    }
    s->key_at[s->n] = put(s, identity, identity_len);
    s->key_len[s->n] = identity_len;
    s->st_at[s->n] = put(s, state, state_len);
    s->st_len[s->n] = state_len;
    s->n++;
    s->check = s->check * 31 + state_len + (uint64_t)updated_at;
    return BG_OK;
}

static bg_err count_only(void *opaque, const char *identity, size_t identity_len,
                         const uint8_t *state, size_t state_len, int64_t updated_at) {
    (void)identity;
    (void)identity_len;
    (void)updated_at;
    *(uint64_t *)opaque += state_len + state[state_len / 2];
    return BG_OK;
}

static const char *intern(void *ctx, const char *s, size_t n) {
    (void)ctx;
    static char pool[256][72];
    static int used;
    for (int i = 0; i < used; i++)
        if (!strncmp(pool[i], s, n) && pool[i][n] == 0)
            return pool[i];
    if (used == 256 || n >= 72)
        return NULL;
    memcpy(pool[used], s, n);
    pool[used][n] = 0;
    return pool[used++];
}

int main(int argc, char **argv) {
    size_t n_ident = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 1000000;
    if (n_ident < 100)
        n_ident = 100;
    size_t n_events = n_ident * 4 < 2000000 ? 2000000 : n_ident * 4;
    char(*names)[48] = malloc(n_ident * sizeof *names);
    bg_event *evs = malloc(n_events * sizeof *evs);
    if (!names || !evs) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    static const char *dests[] = {
        "api.openai.com",     "github.com",         "s3.eu-west-1.amazonaws.com",
        "warehouse.internal", "vector-db.internal", "pypi.org"};
    for (size_t i = 0; i < n_ident; i++)
        snprintf(names[i], sizeof names[i], "spiffe://prod/agent/bot-%07zu", i);
    const int64_t t0 = 1795996800000;
    for (size_t i = 0; i < n_events; i++) {
        /* every identity once first, then half the events from 1% of them */
        size_t who = i < n_ident    ? i
                     : (next() % 2) ? next() % (n_ident / 100 + 1)
                                    : next() % n_ident;
        bg_event *e = &evs[i];
        memset(e, 0, sizeof *e);
        uint64_t r = next() % 100;
        e->kind = r < 80 ? BG_EV_USAGE : r < 81 ? BG_EV_SECRET : BG_EV_TOOLCALL;
        e->event_id = (bg_str){"e", 1};
        e->identity = (bg_str){names[who], (uint32_t)strlen(names[who])};
        e->event_time = t0 + (int64_t)(i * 3600000 / n_events);
        const char *d = dests[(who + next() % 3) % 6];
        if (e->kind == BG_EV_USAGE) {
            e->u.usage.destination = (bg_str){d, (uint32_t)strlen(d)};
            e->u.usage.api = (bg_str){"chat", 4};
            e->u.usage.api_calls = 1;
            e->u.usage.tokens_in = 500;
            e->u.usage.cost_micros = 300;
        } else if (e->kind == BG_EV_SECRET) {
            e->u.secret.secret_id = (bg_str){"sec-rotated", 11};
            e->u.secret.issuer = (bg_str){"vault", 5};
            e->u.secret.ttl_seconds = 3600;
        } else {
            e->u.tool.destination = (bg_str){d, (uint32_t)strlen(d)};
            e->u.tool.tool = (bg_str){"search", 6};
            e->u.tool.parent_tool = (bg_str){"planner", 7};
        }
    }
    bg_policy p;
    bg_policy_init_default(&p);
    bg_outputs out;
    bg_outputs_init(&out);

    /* ---- build: memory per identity ---- */
    size_t a0 = allocated();
    bg_engine *eng;
    if (bg_engine_new(&p, 0, &eng)) {
        fprintf(stderr, "engine\n");
        return 1;
    }
    for (size_t i = 0; i < n_events; i++) {
        bg_engine_observe(eng, &evs[i], (int64_t)i, &out);
        if (i % 4096 == 4095) {
            bg_engine_tick(eng, &out);
            bg_outputs_reset(&out);
        }
    }
    size_t a1 = allocated();
    bg_engine_stats st;
    bg_engine_stats_get(eng, &st);
    bg_engine_state_stats ss;
    bg_engine_state_stats_get(eng, &ss);
    double per_eng = (double)ss.bytes / (double)st.identities;
    double per_jem = a1 > a0 ? (double)(a1 - a0) / (double)st.identities : 0.0;

    /* ---- encode ---- */
    store s = {0};
    /* the records' memory is allocated and touched first: the pass times
     * encoding and a copy into warm memory, not page faults */
    s.cap = n_ident * 400 + (1u << 24);
    s.arena = grow(NULL, s.cap);
    memset(s.arena, 0, s.cap);
    s.ncap = n_ident + 16;
    s.key_at = grow(NULL, s.ncap * sizeof(size_t));
    s.key_len = grow(NULL, s.ncap * sizeof(size_t));
    s.st_at = grow(NULL, s.ncap * sizeof(size_t));
    s.st_len = grow(NULL, s.ncap * sizeof(size_t));
    memset(s.key_at, 0, s.ncap * sizeof(size_t));
    memset(s.key_len, 0, s.ncap * sizeof(size_t));
    memset(s.st_at, 0, s.ncap * sizeof(size_t));
    memset(s.st_len, 0, s.ncap * sizeof(size_t));
    double t = now();
    bg_engine_snapshot_dirty(eng, keep, &s);
    double t_enc = now() - t;
    size_t raw = 0, raw_part = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.key_len[i] == sizeof BG_ENGINE_PARTITION_KEY - 1 &&
            !memcmp(s.arena + s.key_at[i], BG_ENGINE_PARTITION_KEY, s.key_len[i]))
            raw_part += s.st_len[i];
        else
            raw += s.st_len[i];
    }
    size_t n_id = s.n - (raw_part ? 1 : 0);

    /* ---- lz4, per record ---- */
    char *z = malloc((size_t)LZ4_compressBound(BG_SNAPSHOT_MAX));
    size_t comp = 0, comp_part = 0;
    t = now();
    for (size_t i = 0; i < s.n; i++) {
        int c = LZ4_compress_default((const char *)s.arena + s.st_at[i], z, (int)s.st_len[i],
                                     LZ4_compressBound(BG_SNAPSHOT_MAX));
        if (i == s.n - 1 && raw_part)
            comp_part = (size_t)c;
        else
            comp += (size_t)c;
        s.check = s.check * 31 + (uint64_t)c;
    }
    double t_lz4 = now() - t;

    /* ---- decode ---- */
    t = now();
    for (size_t i = 0; i < n_id; i++) {
        bg_ident *id;
        bg_snapshot_names nm;
        uint64_t seq;
        if (bg_snapshot_decode_ident(s.arena + s.st_at[i], s.st_len[i], BG_SNAPSHOT_VERSION, intern,
                                     NULL, &id, &nm, &seq, NULL, 0) != BG_OK) {
            fprintf(stderr, "decode failed at %zu\n", i);
            return 1;
        }
        s.check += id->seen.n;
        bg_snapshot_ident_free(id);
    }
    double t_dec = now() - t;

    /* ---- restore ---- */
    bg_engine *fresh;
    bg_engine_new(&p, 0, &fresh);
    char why[256];
    t = now();
    for (size_t i = 0; i < s.n; i++)
        if (bg_engine_restore(fresh, (const char *)s.arena + s.key_at[i], s.key_len[i],
                              BG_SNAPSHOT_VERSION, s.arena + s.st_at[i], s.st_len[i], why,
                              sizeof why) != BG_OK) {
            fprintf(stderr, "restore failed: %s\n", why);
            return 1;
        }
    double t_res = now() - t;
    bg_engine_stats sf;
    bg_engine_stats_get(fresh, &sf);
    s.check = s.check * 31 + sf.identities;
    bg_engine_free(fresh);

    /* ---- dirty tracking: on vs off, alternating, same engine ---- */
    double on[5], off[5];
    size_t scratch_n = 64u << 20;
    uint8_t *scratch = malloc(scratch_n);
    for (int rep = 0; rep < 10; rep++) {
        bool track = rep % 2 == 0;
        /* every run starts with every identity clean and cold caches */
        bg_engine_set_dirty_tracking(eng, true);
        bg_engine_snapshot_dirty(eng, count_only, &s.check);
        if (scratch)
            memset(scratch, rep, scratch_n);
        bg_engine_set_dirty_tracking(eng, track);
        double s0 = now();
        for (size_t i = 0; i < n_events; i++) {
            bg_event e = evs[i];
            e.event_time += (int64_t)(rep + 1) * 3600000;
            bg_engine_observe(eng, &e, (int64_t)i, &out);
        }
        double rate = (double)n_events / (now() - s0);
        (track ? on : off)[rep / 2] = rate;
        bg_outputs_reset(&out);
    }
    free(scratch);
    qsort(on, 5, sizeof on[0], cmp_d);
    qsort(off, 5, sizeof off[0], cmp_d);

    const double MB = 1e6;
    printf("bench_state: %zu identities (%" PRIu64 " live), %zu events\n", n_ident, st.identities,
           n_events);
    printf("%-34s %14s %12s\n", "measure", "value", "unit");
    printf("%-34s %14.0f %12s\n", "encode (snapshot_dirty)", (double)n_id / t_enc, "ident/s");
    printf("%-34s %14.1f %12s\n", "encode throughput", (double)(raw + raw_part) / t_enc / MB,
           "MB/s raw");
    printf("%-34s %14.1f %12s\n", "raw bytes per identity", (double)raw / (double)n_id, "B");
    printf("%-34s %14.1f %12s\n", "lz4 bytes per identity", (double)comp / (double)n_id, "B");
    printf("%-34s %14.2f %12s\n", "lz4 ratio (identities)", (double)raw / (double)comp, "x");
    printf("%-34s %14zu %12s\n", "partition record raw", raw_part, "B");
    printf("%-34s %14zu %12s\n", "partition record lz4", comp_part, "B");
    printf("%-34s %14.1f %12s\n", "lz4 compress", (double)(raw + raw_part) / t_lz4 / MB, "MB/s");
    printf("%-34s %14.0f %12s\n", "decode", (double)n_id / t_dec, "ident/s");
    printf("%-34s %14.1f %12s\n", "decode throughput", (double)raw / t_dec / MB, "MB/s raw");
    printf("%-34s %14.0f %12s\n", "restore into engine", (double)s.n / t_res, "ident/s");
    printf("%-34s %14.1f %12s\n", "state bytes/identity (engine)", per_eng, "B");
    printf("%-34s %14.1f %12s\n", "allocated bytes/identity (jemalloc)", per_jem, "B");
    printf("%-34s %14.0f %12s\n", "events/s, dirty tracking on", on[2], "events/s");
    printf("%-34s %14.0f %12s\n", "events/s, dirty tracking off", off[2], "events/s");
    printf("%-34s %14.1f %12s\n", "dirty tracking cost", (1.0 / on[2] - 1.0 / off[2]) * 1e9,
           "ns/event");
    printf("checksum %016" PRIx64 "\n", s.check);
    free(z);
    free(s.arena);
    free(s.key_at);
    free(s.key_len);
    free(s.st_at);
    free(s.st_len);
    bg_outputs_free(&out);
    bg_engine_free(eng);
    bg_policy_free(&p);
    free(evs);
    free(names);
    return 0;
}
