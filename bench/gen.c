/* Labeled synthetic traffic generator (see gen.h).
 *
 * All events are generated up front into one array (strings in an arena),
 * then sorted by event time, so consumers see a plausible interleaving of the
 * three topics. A few hundred identities over a few hours is ~150k events. */
#include "gen.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>

#define MIN_MS 60000
#define HOUR_MS 3600000

/* Events as kept until they are handed out: bg_event with room for two
 * scopes instead of BG_MAX_SCOPES (1.2 KB -> about 0.2 KB per event, which
 * is what lets one generator hold 10 M events). bg_gen_event() expands one
 * into a full bg_event. */
typedef struct gsecret {
    bg_str secret_id;
    int32_t secret_kind;
    bg_str issuer;
    bg_str scopes[2];
    uint32_t n_scopes;
    int64_t ttl_seconds;
    bg_str subject;
} gsecret;

typedef struct gev {
    bg_event_kind kind;
    bg_str event_id, identity, owner, workload_class;
    int64_t event_time;
    bg_str trace_id;
    union {
        bg_usage usage;
        gsecret secret;
        bg_toolcall tool;
    } u;
} gev;

typedef struct arena {
    char **blocks;
    size_t n_blocks, used, cap;
} arena;

struct bg_gen {
    gev *ev;
    bg_event *out; /* the event bg_gen_event() last expanded */
    size_t n, cap;
    arena ar;
    bg_gen_label *labels;
    size_t n_labels, cap_labels;
    char *policy;
    uint64_t rng;
    bool oom;
};

static uint64_t rnd(bg_gen *g) { /* splitmix64 */
    uint64_t z = (g->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int64_t rrange(bg_gen *g, int64_t lo, int64_t hi) { /* [lo, hi] */
    return lo + (int64_t)(rnd(g) % (uint64_t)(hi - lo + 1));
}

static bg_str lit(const char *s) { return (bg_str){s, (uint32_t)strlen(s)}; }

static bg_str str(bg_gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bg_str str(bg_gen *g, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    size_t len = (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1;
    arena *a = &g->ar;
    if (!a->n_blocks || a->cap - a->used < len + 1) {
        char **nb = realloc(a->blocks, (a->n_blocks + 1) * sizeof *nb);
        if (!nb) {
            g->oom = true;
            return (bg_str){"", 0};
        }
        a->blocks = nb;
        a->blocks[a->n_blocks] = malloc(1 << 20);
        if (!a->blocks[a->n_blocks]) {
            g->oom = true;
            return (bg_str){"", 0};
        }
        a->n_blocks++;
        a->used = 0;
        a->cap = 1 << 20;
    }
    char *d = a->blocks[a->n_blocks - 1] + a->used;
    memcpy(d, tmp, len + 1);
    a->used += len + 1;
    return (bg_str){d, (uint32_t)len};
}

static gev *push(bg_gen *g) {
    if (g->n == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 65536;
        gev *ne = realloc(g->ev, nc * sizeof *ne);
        if (!ne) {
            g->oom = true;
            return NULL;
        }
        g->ev = ne;
        g->cap = nc;
    }
    gev *e = &g->ev[g->n++];
    memset(e, 0, sizeof *e);
    return e;
}

static void add_label(bg_gen *g, bg_gen_label l) {
    if (g->n_labels == g->cap_labels) {
        size_t nc = g->cap_labels ? g->cap_labels * 2 : 16;
        bg_gen_label *nl = realloc(g->labels, nc * sizeof *nl);
        if (!nl) {
            g->oom = true;
            return;
        }
        g->labels = nl;
        g->cap_labels = nc;
    }
    g->labels[g->n_labels++] = l;
}

typedef struct who {
    bg_str identity, owner, wclass;
    int cls; /* 0 ci, 1 agent, 2 etl */
    bg_str dests[3];
    int n_dests;
} who;

static const char *class_names[3] = {"ci", "agent", "etl"};
static const char *owners[3] = {"team-ci", "team-ai", "data-eng"};
static const char *dest_pool[3][5] = {
    {"github.com", "registry.npmjs.org", "artifacts.internal", "pypi.org", "ghcr.io"},
    {"api.openai.com", "api.anthropic.com", "vector-db.internal", "tickets.internal", "search.internal"},
    {"s3.eu-west-1.amazonaws.com", "warehouse.internal", "kafka-connect.internal", "bigquery.googleapis.com", "sftp.partner.example"},
};

static gev *base(bg_gen *g, const who *w, bg_event_kind kind, int64_t t, uint64_t *seq) {
    gev *e = push(g);
    if (!e)
        return NULL;
    e->kind = kind;
    e->event_id = str(g, "ev-%llu", (unsigned long long)(*seq)++);
    e->identity = w->identity;
    e->owner = w->owner;
    e->workload_class = w->wclass;
    e->event_time = t;
    return e;
}

static void usage(bg_gen *g, const who *w, int64_t t, bg_str dest, int32_t calls, int64_t tok,
                  int64_t cost, uint64_t *seq) {
    gev *e = base(g, w, BG_EV_USAGE, t, seq);
    if (!e)
        return;
    e->trace_id = str(g, "tr-%llx", (unsigned long long)(rnd(g) & 0xffffffffffull));
    e->u.usage.api = lit(w->cls == 1 ? "chat.completions" : w->cls == 0 ? "git.fetch" : "s3.put");
    e->u.usage.destination = dest;
    e->u.usage.api_calls = calls;
    e->u.usage.tokens_in = tok;
    e->u.usage.tokens_out = tok / 4;
    e->u.usage.cost_micros = cost;
}

static void secret(bg_gen *g, const who *w, int64_t t, bg_str id, int32_t kind, uint64_t *seq) {
    gev *e = base(g, w, BG_EV_SECRET, t, seq);
    if (!e)
        return;
    e->u.secret.secret_id = id;
    e->u.secret.secret_kind = kind;
    e->u.secret.issuer = lit(kind == BG_SK_CLOUD_SESSION ? "aws-sts" : "vault");
    e->u.secret.scopes[0] = lit("read");
    e->u.secret.scopes[1] = lit("write");
    e->u.secret.n_scopes = 2;
    e->u.secret.ttl_seconds = 3600;
}

static void toolcall(bg_gen *g, const who *w, int64_t t, bg_str dest, const char *tool,
                     const char *parent, bg_str cred, uint64_t *seq) {
    gev *e = base(g, w, BG_EV_TOOLCALL, t, seq);
    if (!e)
        return;
    e->u.tool.tool = lit(tool);
    e->u.tool.destination = dest;
    e->u.tool.operation = lit("invoke");
    e->u.tool.credential_id = cred;
    if (parent)
        e->u.tool.parent_tool = lit(parent);
    e->u.tool.side_effect = false;
    e->u.tool.status = BG_TS_OK;
    e->u.tool.bytes_out = rrange(g, 200, 5000);
}

static int cmp_time(const void *a, const void *b) {
    const gev *x = a, *y = b;
    if (x->event_time != y->event_time)
        return x->event_time < y->event_time ? -1 : 1;
    /* stable tie-break on event_id text for determinism */
    size_t n = x->event_id.len < y->event_id.len ? x->event_id.len : y->event_id.len;
    int c = memcmp(x->event_id.ptr, y->event_id.ptr, n);
    return c ? c : (int)x->event_id.len - (int)y->event_id.len;
}

static void iso(char *buf, size_t n, int64_t ms) {
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void bg_gen_opts_default(bg_gen_opts *o) {
    o->seed = 42;
    o->identities = 300;
    o->start_ms = 1795996800000; /* 2026-11-30T00:00:00Z */
    o->duration_ms = 3 * (int64_t)HOUR_MS;
    o->full = false;
}

/* ---- the extended scenario set (opts.full) ------------------------------------ */

typedef struct pbuf {
    char *p;
    size_t len, cap;
    bool oom;
} pbuf;

static void pb_f(pbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pb_f(pbuf *b, const char *fmt, ...) {
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n <= 0 || b->oom)
        return;
    size_t len = (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1;
    if (b->len + len + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 4096;
        while (nc < b->len + len + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, tmp, len + 1);
    b->len += len;
}

/* A daily cycle: the period between an identity's events is shortest at
 * 14:00 and longest at 02:00 (rate x1.5 .. x0.5 of the mean), plus noise. */
static int64_t daily(int64_t period, int64_t since_start) {
    static const double pi = 3.14159265358979323846;
    double phase = (double)(since_start % (24 * (int64_t)HOUR_MS)) / (24.0 * HOUR_MS);
    double f = 1.0 + 0.5 * sin(2 * pi * (phase - 0.333));
    return (int64_t)((double)period / f);
}

/* Realism on top of the steady traffic: fan-out traces (one root action,
 * three backend calls under one trace id) for agents, and retries after
 * errors (a failed deploy call retried 2 s later) for CI runners. */
static void realism(bg_gen *g, const who *w, int64_t t, bg_str d, uint64_t *seq) {
    uint64_t r = rnd(g);
    if (w->cls == 1 && r % 4 == 0) {
        bg_str tr = str(g, "tr-fan-%llx", (unsigned long long)(r >> 16));
        for (int k = 0; k < 3; k++) {
            gev *e = base(g, w, BG_EV_USAGE, t + 100 + k * 150, seq);
            if (!e)
                return;
            e->trace_id = tr;
            e->u.usage.api = lit("embeddings");
            e->u.usage.destination = w->dests[(size_t)k % (size_t)w->n_dests];
            e->u.usage.api_calls = 1;
            e->u.usage.tokens_in = 300;
            e->u.usage.tokens_out = 0;
            e->u.usage.cost_micros = 30;
        }
    } else if (w->cls == 0 && r % 20 == 0) {
        toolcall(g, w, t + 300, d, "deploy", "build", (bg_str){NULL, 0}, seq);
        if (!g->oom)
            g->ev[g->n - 1].u.tool.status = BG_TS_ERROR;
        toolcall(g, w, t + 2300, d, "deploy", "build", (bg_str){NULL, 0}, seq);
    }
}

static who *pick(who *ws, int n, int cls, int k) {
    for (int i = 0; i < n; i++)
        if (ws[i].cls == cls && k-- == 0)
            return &ws[i];
    return NULL;
}

static void label(bg_gen *g, const who *w, bool benign, bg_class c, int64_t a, int64_t b,
                  const char *secret, const char *what) {
    add_label(g, (bg_gen_label){w->identity.ptr, benign, c, a, b,
                                secret ? str(g, "%s", secret).ptr : NULL, str(g, "%s", what).ptr});
}

/* k instances of every extended scenario, staggered over the hours after
 * the learning period; identities from index 30 of each class (the classic
 * planted ones are below). Envelopes and trusted destinations go to pol. */
static void plant_full(bg_gen *g, who *ws, int n, int64_t T0, int64_t T1, uint64_t *seq, pbuf *pol,
                       pbuf *unused) {
    (void)unused;
    int k = n / 300 < 1 ? 1 : n / 300;
    int64_t first = T0 + 70 * MIN_MS, span = (T1 - 30 * MIN_MS) - first;
    bg_str trusted = str(g, "%s", "api.trusted-partner.example");
    for (int j = 0; j < k; j++) {
        int64_t s = first + (int64_t)j * span / k;
        int64_t step = span / k / 10; /* scenarios of one instance 1/10 of its slot apart */
        if (step > 6 * MIN_MS)
            step = 6 * MIN_MS;
        char tmp[256], tmp2[256];
        who *w;
        /* UNEXPECTED: CI runner at 1800 calls/min for 10 min (limit 600) */
        if ((w = pick(ws, n, 0, 30 + 4 * j))) {
            int64_t a = s;
            for (int64_t t = a; t < a + 10 * MIN_MS; t += 2000)
                usage(g, w, t, w->dests[0], 60, 0, 500, seq);
            label(g, w, false, BG_CLASS_UNEXPECTED, a, a + 10 * MIN_MS, NULL,
                  "CI runner at 1800 calls/min, class limit 600, no envelope");
        }
        /* UNEXPECTED: agent at 400k tokens/min for 8 min (limit 200k) */
        if ((w = pick(ws, n, 1, 30 + 8 * j))) {
            int64_t a = s + step;
            for (int64_t t = a; t < a + 8 * MIN_MS; t += 6000)
                usage(g, w, t, w->dests[0], 1, 40000, 4000, seq);
            label(g, w, false, BG_CLASS_UNEXPECTED, a, a + 8 * MIN_MS, NULL,
                  "agent at 400k tokens/min, class limit 200k, no envelope");
        }
        /* PLANNED: etl backfill at 2500 calls/min inside its envelope */
        if ((w = pick(ws, n, 2, 30 + 4 * j))) {
            int64_t a = s + 2 * step;
            for (int64_t t = a; t < a + 15 * MIN_MS; t += 2400)
                usage(g, w, t, w->dests[rnd(g) % (uint64_t)w->n_dests], 100, 0, 200, seq);
            char e0[32], e1[32];
            iso(e0, sizeof e0, a - 5 * MIN_MS);
            iso(e1, sizeof e1, a + 20 * MIN_MS);
            pb_f(pol,
                 "  - id: chg-%d\n    identity: \"%s\"\n    not_before: %s\n    not_after: %s\n"
                 "    limits: {api_calls_per_min: 5000, cost_micros: 50000000}\n"
                 "    allowed_destinations: [%s, %s%s%s]\n    approved_by: bob@example.com\n",
                 3000 + j, w->identity.ptr, e0, e1, w->dests[0].ptr, w->dests[1].ptr,
                 w->n_dests > 2 ? ", " : "", w->n_dests > 2 ? w->dests[2].ptr : "");
            label(g, w, false, BG_CLASS_PLANNED, a, a + 15 * MIN_MS, NULL,
                  "etl backfill at 2500 calls/min inside its envelope (class limit 1000)");
        }
        /* ANOMALOUS: new cloud session, then a never-seen destination */
        if ((w = pick(ws, n, 1, 31 + 8 * j))) {
            int64_t a = s + 3 * step;
            snprintf(tmp, sizeof tmp, "sec-x%d-sts", j);
            bg_str sec = str(g, "%s", tmp), dst = str(g, "exfil-%d.example", j);
            secret(g, w, a, sec, BG_SK_CLOUD_SESSION, seq);
            for (int q = 0; q < 6; q++) {
                toolcall(g, w, a + 180000 + q * 20000, dst, "http.post", "search", sec, seq);
                usage(g, w, a + 190000 + q * 20000, dst, 1, 8000, 24000, seq);
            }
            label(g, w, false, BG_CLASS_ANOMALOUS, a + 180000, a + 5 * MIN_MS, tmp,
                  "new cloud session used against a never-seen destination");
        }
        /* ANOMALOUS: new API key, then a tool chain never seen anywhere
         * (search -> db.dump -> http.post) to a known destination */
        if ((w = pick(ws, n, 1, 32 + 8 * j))) {
            int64_t a = s + 4 * step;
            snprintf(tmp, sizeof tmp, "sec-x%d-key", j);
            bg_str sec = str(g, "%s", tmp);
            secret(g, w, a, sec, BG_SK_API_KEY, seq);
            for (int q = 0; q < 4; q++) {
                toolcall(g, w, a + 60000 + q * 30000, w->dests[0], "db.dump", "search", sec, seq);
                toolcall(g, w, a + 61000 + q * 30000, w->dests[0], "http.post", "db.dump", sec, seq);
            }
            label(g, w, false, BG_CLASS_ANOMALOUS, a + 60000, a + 5 * MIN_MS, tmp,
                  "new API key driving an unusual tool chain search->db.dump->http.post");
        }
        /* ANOMALOUS: a credential issued 10 min earlier used against a new destination */
        if ((w = pick(ws, n, 1, 33 + 8 * j))) {
            int64_t a = s + 5 * step;
            snprintf(tmp, sizeof tmp, "sec-x%d-db", j);
            bg_str sec = str(g, "%s", tmp), dst = str(g, "db-%d.attacker.example", j);
            secret(g, w, a - 10 * MIN_MS, sec, BG_SK_DB_CREDENTIAL, seq);
            for (int q = 0; q < 3; q++)
                toolcall(g, w, a + q * 40000, dst, "sql.query", "planner", sec, seq);
            label(g, w, false, BG_CLASS_ANOMALOUS, a, a + 3 * MIN_MS, tmp,
                  "a 10-minute-old DB credential used against a new destination");
        }
        /* BENIGN: a rotation storm (three secrets in 4 min) on known destinations */
        if ((w = pick(ws, n, 1, 34 + 8 * j))) {
            int64_t a = s + 6 * step;
            for (int q = 0; q < 3; q++) {
                snprintf(tmp2, sizeof tmp2, "sec-x%d-rot-%d", j, q);
                bg_str sec = str(g, "%s", tmp2);
                secret(g, w, a + q * 2 * MIN_MS, sec, BG_SK_API_KEY, seq);
                toolcall(g, w, a + q * 2 * MIN_MS + 5000, w->dests[0], "search", "planner", sec, seq);
            }
            label(g, w, true, BG_CLASS_UNEXPECTED, a, a + 6 * MIN_MS, NULL,
                  "secret rotation storm on known destinations (benign)");
        }
        /* BENIGN: a new secret with a new but trusted destination */
        if ((w = pick(ws, n, 1, 35 + 8 * j))) {
            int64_t a = s + 7 * step;
            snprintf(tmp2, sizeof tmp2, "sec-x%d-partner", j);
            bg_str sec = str(g, "%s", tmp2);
            secret(g, w, a, sec, BG_SK_OAUTH_GRANT, seq);
            for (int q = 0; q < 5; q++)
                usage(g, w, a + 60000 + q * 30000, trusted, 1, 2000, 6000, seq);
            label(g, w, true, BG_CLASS_UNEXPECTED, a, a + 5 * MIN_MS, NULL,
                  "new OAuth grant used with a new trusted partner destination (benign)");
        }
        /* ANOMALOUS: identity sprawl, a CI runner minting 20 service identities in 10 min */
        if ((w = pick(ws, n, 0, 31 + 4 * j))) {
            int64_t a = s + 8 * step;
            for (int q = 0; q < 20; q++) {
                bg_str sec = str(g, "sec-x%d-svc-%d", j, q);
                secret(g, w, a + q * 30000, sec, BG_SK_SERVICE_IDENTITY, seq);
                if (!g->oom)
                    g->ev[g->n - 1].u.secret.subject = str(g, "spiffe://prod/minted/x%d-%d", j, q);
            }
            label(g, w, false, BG_CLASS_ANOMALOUS, a, a + 10 * MIN_MS, NULL,
                  "identity sprawl: 20 service identities minted in 10 min (class limit 5/h)");
        }
        /* ANOMALOUS: slow low-volume exfiltration, one small post every 10 min
         * for 2 h to one never-seen destination, no new secret */
        if ((w = pick(ws, n, 1, 36 + 8 * j))) {
            int64_t a = s + 9 * step;
            bg_str dst = str(g, "drop-%d.example", j);
            int64_t e = a + 2 * (int64_t)HOUR_MS < T1 ? a + 2 * (int64_t)HOUR_MS : T1 - 1;
            for (int64_t t = a; t < e; t += 10 * MIN_MS)
                toolcall(g, w, t, dst, "http.post", "search", (bg_str){NULL, 0}, seq);
            label(g, w, false, BG_CLASS_ANOMALOUS, a, e, NULL,
                  "slow low-volume exfiltration: one small post per 10 min to a new destination");
        }
        /* BENIGN: a third-party integration that touches 30 destinations of its own */
        if ((w = pick(ws, n, 2, 31 + 4 * j))) {
            for (int64_t t = T0 + 30000; t < T1; t += 5 * MIN_MS)
                for (int q = 0; q < 30; q++)
                    usage(g, w, t + q * 500, str(g, "hook-%02d.partner-%d.example", q, j), 1, 0, 10,
                          seq);
            label(g, w, true, BG_CLASS_UNEXPECTED, T0 + 60 * MIN_MS, T1, NULL,
                  "third-party integration fanning out to its 30 destinations (benign)");
        }
    }
    pb_f(pol, "destinations:\n  trusted: [%s]\n", trusted.ptr);
}

bg_err bg_gen_new(const bg_gen_opts *o, bg_gen **out) {
    if (o->identities < (o->full ? 300 : 60) || o->duration_ms < 3 * (int64_t)HOUR_MS)
        return BG_ERR_INVALID;
    bg_gen *g = calloc(1, sizeof *g);
    if (!g)
        return BG_ERR_NOMEM;
    g->out = calloc(1, sizeof *g->out);
    if (!g->out) {
        free(g);
        return BG_ERR_NOMEM;
    }
    g->rng = o->seed;
    const int64_t T0 = o->start_ms, T1 = o->start_ms + o->duration_ms;
    uint64_t seq = 0;
    int n = o->identities;
    who *ws = calloc((size_t)n, sizeof *ws);
    if (!ws) {
        free(g->out);
        free(g);
        return BG_ERR_NOMEM;
    }
    /* 40% ci, 40% agent, 20% etl */
    int idx[3] = {0, 0, 0};
    for (int i = 0; i < n; i++) {
        who *w = &ws[i];
        w->cls = i % 5 < 2 ? 0 : i % 5 < 4 ? 1 : 2;
        int k = idx[w->cls]++;
        if (w->cls == 0)
            w->identity = str(g, "spiffe://prod/ci/runner-%03d", k);
        else if (w->cls == 1)
            w->identity = str(g, "spiffe://prod/agent/bot-%03d", k);
        else
            w->identity = str(g, "spiffe://prod/etl/job-%03d", k);
        w->owner = str(g, "%s", owners[w->cls]);
        /* a third of the producers leave workload_class to the policy's selectors */
        w->wclass = i % 3 ? str(g, "%s", class_names[w->cls]) : (bg_str){NULL, 0};
        w->n_dests = 2 + (int)(rnd(g) % 2);
        int first = (int)(rnd(g) % 5);
        for (int d = 0; d < w->n_dests; d++)
            w->dests[d] = str(g, "%s", dest_pool[w->cls][(first + d) % 5]);
    }
    /* planted identities: the first of each class index below exist when n >= 60 */
    who *planned = NULL, *unexpected = NULL, *compromised = NULL, *adopter = NULL;
    for (int i = 0; i < n; i++) {
        const char *id = ws[i].identity.ptr;
        if (!strcmp(id, "spiffe://prod/etl/job-007"))
            planned = &ws[i];
        if (!strcmp(id, "spiffe://prod/ci/runner-017"))
            unexpected = &ws[i];
        if (!strcmp(id, "spiffe://prod/agent/bot-013"))
            compromised = &ws[i];
        if (!strcmp(id, "spiffe://prod/agent/bot-021"))
            adopter = &ws[i];
    }
    const int64_t p0 = T0 + 105 * MIN_MS, p1 = T0 + 125 * MIN_MS;  /* planned burst */
    const int64_t env0 = T0 + 100 * MIN_MS, env1 = T0 + 130 * MIN_MS;
    const int64_t u0 = T0 + 110 * MIN_MS, u1 = T0 + 120 * MIN_MS;  /* unexpected burst */
    const int64_t c0 = T0 + 140 * MIN_MS;                          /* compromise */
    const int64_t a0 = T0 + 150 * MIN_MS;                          /* benign adoption */

    for (int i = 0; i < n; i++) {
        who *w = &ws[i];
        int64_t period = w->cls == 0 ? 30000 : w->cls == 1 ? 20000 : 60000;
        int64_t rot_phase = rrange(g, 0, HOUR_MS - 1);
        for (int64_t t = T0 + rrange(g, 0, period); t < T1;
             t += (o->full ? daily(period, t - T0) : period) + rrange(g, -5000, 5000)) {
            bg_str d = w->dests[rnd(g) % (uint64_t)w->n_dests];
            if (o->full)
                realism(g, w, t, d, &seq);
            if (w->cls == 0)
                usage(g, w, t, d, (int32_t)rrange(g, 5, 40), 0, rrange(g, 100, 1000), &seq);
            else if (w->cls == 1) {
                int64_t tok = rrange(g, 500, 6000);
                usage(g, w, t, d, 1, tok, tok * 3, &seq);
                if (rnd(g) % 3 == 0)
                    toolcall(g, w, t + 200, w->dests[rnd(g) % (uint64_t)w->n_dests], "search",
                             "planner", (bg_str){NULL, 0}, &seq);
            } else
                usage(g, w, t, d, (int32_t)rrange(g, 20, 200), 0, rrange(g, 500, 5000), &seq);
        }
        /* hourly rotation against known destinations; none near a planted event
         * of the same identity (the window is 15 min either side) */
        for (int64_t t = T0 + rot_phase; t < T1; t += HOUR_MS) {
            if (w == compromised && t > c0 - 20 * MIN_MS && t < c0 + 25 * MIN_MS)
                continue;
            if (w == adopter && t > a0 - 20 * MIN_MS && t < a0 + 20 * MIN_MS)
                continue;
            secret(g, w, t, str(g, "sec-%s-rot-%lld", w->identity.ptr + 14, (long long)((t - T0) / HOUR_MS)),
                   w->cls == 1 ? BG_SK_API_KEY : BG_SK_OIDC_TOKEN, &seq);
        }
    }
    if (!planned || !unexpected || !compromised || !adopter) {
        bg_gen_free(g);
        free(ws);
        return BG_ERR_INVALID;
    }
    /* PLANNED: 2500 calls/min for 20 min to its usual destinations */
    for (int64_t t = p0; t < p1; t += 2400)
        usage(g, planned, t, planned->dests[rnd(g) % (uint64_t)planned->n_dests], 100, 0, 200, &seq);
    /* UNEXPECTED: 1800 calls/min for 10 min (limit 600) */
    for (int64_t t = u0; t < u1; t += 2000)
        usage(g, unexpected, t, unexpected->dests[0], 60, 0, 500, &seq);
    /* ANOMALOUS: a new cloud session, then a never-seen destination within minutes */
    bg_str bad_secret = str(g, "%s", "sec-bot-013-sts-7f3a");
    secret(g, compromised, c0, bad_secret, BG_SK_CLOUD_SESSION, &seq);
    bg_str exfil = str(g, "%s", "paste.exfil.example");
    for (int k = 0; k < 6; k++) {
        toolcall(g, compromised, c0 + 180000 + k * 20000, exfil, "http.post", "search", bad_secret, &seq);
        usage(g, compromised, c0 + 190000 + k * 20000, exfil, 1, 8000, 24000, &seq);
    }
    /* benign: bot-021 adopts a new model API, no new secret around it */
    bg_str newapi = str(g, "%s", "api.mistral.ai");
    for (int k = 0; k < 10; k++)
        usage(g, adopter, a0 + k * 30000, newapi, 1, 2000, 6000, &seq);
    pbuf extra = {0}, ci_extra = {0};
    if (o->full)
        plant_full(g, ws, n, T0, T1, &seq, &extra, &ci_extra);
    if (g->oom || extra.oom || ci_extra.oom) {
        free(extra.p);
        free(ci_extra.p);
        free(ws);
        bg_gen_free(g);
        return BG_ERR_NOMEM;
    }
    qsort(g->ev, g->n, sizeof *g->ev, cmp_time);

    add_label(g, (bg_gen_label){
        planned->identity.ptr, false, BG_CLASS_PLANNED, p0, p1, NULL,
        "etl backfill at 2500 calls/min inside envelope chg-2041 (class limit 1000)"});
    add_label(g, (bg_gen_label){
        unexpected->identity.ptr, false, BG_CLASS_UNEXPECTED, u0, u1, NULL,
        "CI runner at 1800 calls/min, class limit 600, no envelope"});
    add_label(g, (bg_gen_label){
        compromised->identity.ptr, false, BG_CLASS_ANOMALOUS, c0 + 180000, c0 + 5 * MIN_MS, bad_secret.ptr,
        "new cloud session used against never-seen paste.exfil.example"});
    add_label(g, (bg_gen_label){
        adopter->identity.ptr, true, BG_CLASS_UNEXPECTED, a0, a0 + 5 * MIN_MS, NULL,
        "agent adopts api.mistral.ai with no new secret (benign)"});

    char e0[32], e1[32];
    iso(e0, sizeof e0, env0);
    iso(e1, sizeof e1, env1);
    size_t pol_cap = 8192 + extra.len + ci_extra.len;
    char *pol = malloc(pol_cap);
    if (!pol) {
        free(extra.p);
        free(ci_extra.p);
        free(ws);
        bg_gen_free(g);
        return BG_ERR_NOMEM;
    }
    snprintf(pol, pol_cap,
             "# Policy for the demo workload (bench/gen.c).\n"
             "windows:\n  bucket: 60s\n  correlation: 15m\n  learning_period: 1h\n"
             "  allowed_lateness: 30s\n  quiet_buckets: 2\n"
             "default_class: general\n"
             "classes:\n"
             "  - name: ci\n    match: {identity_prefix: \"spiffe://prod/ci/\"}\n"
             "    limits: {api_calls_per_min: 600, cost_micros_per_hour: 5000000, secrets_per_hour: 10%s}\n%s"
             "    unexpected_action: THROTTLE\n    review_routes: [platform, \"app:{owner}\"]\n"
             "  - name: agent\n    match: {identity_prefix: \"spiffe://prod/agent/\"}\n"
             "    limits: {api_calls_per_min: 120, tokens_per_min: 200000, cost_micros_per_hour: 20000000}\n"
             "    unexpected_action: REVIEW\n    review_routes: [\"app:{owner}\"]\n"
             "  - name: etl\n    match: {identity_prefix: \"spiffe://prod/etl/\"}\n"
             "    limits: {api_calls_per_min: 1000, cost_micros_per_hour: 10000000}\n"
             "    unexpected_action: REVIEW\n    review_routes: [data-platform]\n"
             "  - name: general\n    unexpected_action: REVIEW\n    review_routes: [security]\n"
             "envelopes:\n"
             "  - id: chg-2041\n    identity: \"%s\"\n    not_before: %s\n    not_after: %s\n"
             "    limits: {api_calls_per_min: 5000, cost_micros: 50000000}\n"
             "    allowed_destinations: [%s, %s%s%s]\n"
             "    approved_by: alice@example.com\n    ticket: CHG-2041\n%s",
             o->full ? ", identity_grants_per_hour: 5" : "",
             o->full ? "    sprawl_action: REVOKE_IDENTITY\n" : "", planned->identity.ptr, e0, e1, planned->dests[0].ptr, planned->dests[1].ptr,
             planned->n_dests > 2 ? ", " : "", planned->n_dests > 2 ? planned->dests[2].ptr : "", extra.p ? extra.p : "");
    g->policy = pol;
    free(extra.p);
    free(ci_extra.p);
    free(ws);
    if (!g->policy) {
        bg_gen_free(g);
        return BG_ERR_NOMEM;
    }
    *out = g;
    return BG_OK;
}

void bg_gen_free(bg_gen *g) {
    if (!g)
        return;
    for (size_t i = 0; i < g->ar.n_blocks; i++)
        free(g->ar.blocks[i]);
    free(g->ar.blocks);
    free(g->ev);
    free(g->out);
    free(g->policy);
    free(g->labels);
    free(g);
}

size_t bg_gen_count(const bg_gen *g) { return g->n; }
const bg_event *bg_gen_event(const bg_gen *g, size_t i) {
    const gev *x = &g->ev[i];
    bg_event *e = g->out;
    memset(e, 0, sizeof *e);
    e->kind = x->kind;
    e->event_id = x->event_id;
    e->identity = x->identity;
    e->owner = x->owner;
    e->workload_class = x->workload_class;
    e->event_time = x->event_time;
    e->trace_id = x->trace_id;
    if (x->kind == BG_EV_USAGE) {
        e->u.usage = x->u.usage;
    } else if (x->kind == BG_EV_TOOLCALL) {
        e->u.tool = x->u.tool;
    } else {
        const gsecret *s = &x->u.secret;
        e->u.secret.secret_id = s->secret_id;
        e->u.secret.secret_kind = s->secret_kind;
        e->u.secret.issuer = s->issuer;
        e->u.secret.n_scopes = s->n_scopes < 2 ? s->n_scopes : 2;
        for (uint32_t k = 0; k < e->u.secret.n_scopes; k++)
            e->u.secret.scopes[k] = s->scopes[k];
        e->u.secret.ttl_seconds = s->ttl_seconds;
        e->u.secret.subject = s->subject;
    }
    return e;
}
size_t bg_gen_labels(const bg_gen *g, const bg_gen_label **labels) {
    *labels = g->labels;
    return g->n_labels;
}
const char *bg_gen_policy_yaml(const bg_gen *g) { return g->policy; }
