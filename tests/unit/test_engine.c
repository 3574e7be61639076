/* Engine: table-driven cases, events in -> verdicts and revocations out.
 *
 * Each case is a list of events (times in minutes from T0) and the verdicts it
 * must yield, in order, as "PHASE CLASS ACTION identity" strings, plus the
 * secrets that must be revoked. The policy is built in code so this test
 * depends on the engine alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "detectors/engine.h"

#define T0 1795996800000LL /* 2026-11-30T00:00:00Z */
#define MIN 60000LL

typedef struct tev {
    char kind;         /* 'u' usage, 's' secret, 't' tool call, 0 = end; also
                        * 'c' tool call using credential `cred`, 'g' an OAUTH_GRANT issuance,
                        * 'l' a secret with a 30-day TTL, 'm' usage costing `calls` micro-dollars */
    const char *who;   /* identity */
    double at_min;     /* event time, minutes after T0 */
    const char *what;  /* destination (u, t) or secret id (s) */
    int calls;         /* api calls (u) */
    const char *cred;  /* credential_id ('c') */
} tev;

#define MAX_EXPECT 8
typedef struct tcase {
    const char *name;
    tev events[64];
    const char *verdicts[MAX_EXPECT]; /* "ONSET UNEXPECTED THROTTLE id" */
    const char *revoked[MAX_EXPECT];  /* secret ids; "IDENTITY" for the identity itself */
    bool dry_run;                     /* class enforce: false */
    void (*tweak)(bg_policy *p);      /* adjusts the test policy, or NULL */
} tcase;

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    assert_non_null(d);
    memcpy(d, s, n);
    return d;
}

/* Class "svc" (identities spiffe://t/svc/...): 100 calls/min, THROTTLE.
 * Envelope "env-1" for spiffe://t/svc/planned from minute 100 to 130: 500
 * calls/min, destinations a.example, b.example. Envelope "env-2" for
 * spiffe://t/svc/revoked, same window, revoked. */
static void make_policy(bg_policy *p, bool enforce) {
    assert_int_equal(bg_policy_init_default(p), BG_OK);
    bg_class_policy *c = &p->classes[p->n_classes++];
    memset(c, 0, sizeof *c);
    c->name = xstrdup("svc");
    c->match_identity_prefix = xstrdup("spiffe://t/svc/");
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
    c->review_routes[c->n_review_routes++] = xstrdup("platform");
    c->enforce = enforce;
    p->envelopes = calloc(2, sizeof *p->envelopes);
    assert_non_null(p->envelopes);
    for (int i = 0; i < 2; i++) {
        bg_envelope *e = &p->envelopes[p->n_envelopes++];
        e->envelope_id = xstrdup(i ? "env-2" : "env-1");
        e->identity = xstrdup(i ? "spiffe://t/svc/revoked" : "spiffe://t/svc/planned");
        e->not_before = T0 + 100 * MIN;
        e->not_after = T0 + 130 * MIN;
        e->max_api_calls_per_min = 500;
        e->max_tokens_per_min = -1;
        e->max_cost_micros = -1;
        e->max_new_secrets = -1;
        e->max_new_destinations = -1;
        e->allowed_destinations = calloc(2, sizeof(char *));
        e->allowed_destinations[0] = xstrdup("a.example");
        e->allowed_destinations[1] = xstrdup("b.example");
        e->n_allowed_destinations = 2;
        e->approved_by = xstrdup("alice");
        e->revoked = i == 1;
    }
}

static bg_str S(const char *s) { return (bg_str){s, (uint32_t)strlen(s)}; }

static void to_event(const tev *t, bg_event *ev) {
    memset(ev, 0, sizeof *ev);
    ev->event_id = S("e");
    ev->identity = S(t->who);
    ev->event_time = T0 + (int64_t)(t->at_min * (double)MIN);
    switch (t->kind) {
    case 'u':
    case 'm':
        ev->kind = BG_EV_USAGE;
        ev->u.usage.destination = S(t->what);
        ev->u.usage.api = S("api");
        ev->u.usage.api_calls = t->kind == 'm' ? 1 : t->calls;
        ev->u.usage.cost_micros = t->kind == 'm' ? t->calls : 0;
        break;
    case 's':
    case 'g':
    case 'l':
        ev->kind = BG_EV_SECRET;
        ev->u.secret.secret_id = S(t->what);
        ev->u.secret.issuer = S("vault");
        ev->u.secret.secret_kind = t->kind == 'g' ? BG_SK_OAUTH_GRANT : BG_SK_API_KEY;
        ev->u.secret.ttl_seconds = t->kind == 'l' ? 30 * 86400 : 3600;
        break;
    default:
        ev->kind = BG_EV_TOOLCALL;
        ev->u.tool.destination = S(t->what);
        ev->u.tool.tool = S("http");
        if (t->cred)
            ev->u.tool.credential_id = S(t->cred);
        break;
    }
}

/* Background traffic that teaches every test identity a.example and
 * b.example during the learning period (minutes 0..60), at 10 calls/min. */
static void warm_up(bg_engine *e, const tcase *tc, bg_outputs *out) {
    const char *seen[16];
    size_t n = 0;
    for (const tev *t = tc->events; t->kind; t++) {
        bool dup = false;
        for (size_t i = 0; i < n; i++)
            dup |= !strcmp(seen[i], t->who);
        if (!dup && n < 16)
            seen[n++] = t->who;
    }
    for (size_t i = 0; i < n; i++)
        for (int m = 0; m < 70; m += 5) {
            tev a = {'u', seen[i], m, m % 10 ? "a.example" : "b.example", 10, NULL};
            bg_event ev;
            to_event(&a, &ev);
            assert_int_equal(bg_engine_observe(e, &ev, m, out), BG_OK);
        }
}

static void run_case(const tcase *tc, bg_outputs *out, bg_policy *p) {
    make_policy(p, !tc->dry_run);
    if (tc->tweak)
        tc->tweak(p);
    bg_engine *e;
    assert_int_equal(bg_engine_new(p, 3, &e), BG_OK);
    bg_outputs_init(out);
    warm_up(e, tc, out);
    assert_int_equal(out->n_verdicts, 0);
    int64_t off = 1000;
    for (const tev *t = tc->events; t->kind; t++) {
        bg_event ev;
        to_event(t, &ev);
        assert_int_equal(bg_engine_observe(e, &ev, off++, out), BG_OK);
        assert_int_equal(bg_engine_tick(e, out), BG_OK);
    }
    /* a far-away event of another identity moves the watermark: bursts end */
    tev late = {'u', "spiffe://t/other/clock", 600, "z.example", 1, NULL};
    bg_event ev;
    to_event(&late, &ev);
    assert_int_equal(bg_engine_observe(e, &ev, off, out), BG_OK);
    assert_int_equal(bg_engine_tick(e, out), BG_OK);
    bg_engine_free(e);
}

static void check_case(const tcase *tc) {
    bg_outputs out;
    bg_policy p;
    run_case(tc, &out, &p);
    size_t nexp = 0;
    while (nexp < MAX_EXPECT && tc->verdicts[nexp])
        nexp++;
    char got[2048] = "";
    for (size_t i = 0; i < out.n_verdicts; i++) {
        const bg_verdict *v = &out.verdicts[i];
        size_t o = strlen(got);
        snprintf(got + o, sizeof got - o, "[%s %s %s %s]", bg_phase_name(v->phase),
                 bg_class_name(v->classification), bg_action_name(v->action), v->identity);
    }
    char want[2048] = "";
    for (size_t i = 0; i < nexp; i++) {
        size_t o = strlen(want);
        snprintf(want + o, sizeof want - o, "[%s]", tc->verdicts[i]);
    }
    if (strcmp(got, want)) {
        print_error("case %s\n  want %s\n  got  %s\n", tc->name, want, got);
        fail();
    }
    size_t nrev = 0;
    while (nrev < MAX_EXPECT && tc->revoked[nrev])
        nrev++;
    assert_int_equal(out.n_revocations, nrev);
    for (size_t i = 0; i < nrev; i++) {
        if (!strcmp(tc->revoked[i], "IDENTITY")) {
            assert_int_equal(out.revocations[i].target, BG_TARGET_IDENTITY);
            assert_null(out.revocations[i].secret_id);
        } else {
            assert_string_equal(out.revocations[i].secret_id, tc->revoked[i]);
            assert_int_equal(out.revocations[i].target, BG_TARGET_SECRET);
        }
        assert_int_equal(out.revocations[i].dry_run, tc->dry_run);
        /* the command refers to an ANOMALOUS verdict that was emitted */
        bool found = false;
        for (size_t j = 0; j < out.n_verdicts; j++)
            found |= !strcmp(out.verdicts[j].verdict_id, out.revocations[i].verdict_id) &&
                     out.verdicts[j].classification == BG_CLASS_ANOMALOUS;
        assert_true(found);
    }
    bg_outputs_free(&out);
    bg_policy_free(&p);
}

#define ID "spiffe://t/svc/app"
#define PL "spiffe://t/svc/planned"

static void tw_approval(bg_policy *p) { p->classes[1].approval_cost_micros_per_hour = 1000; }
static void tw_day(bg_policy *p) { p->classes[1].max_cost_micros_per_day = 5000; }
static void tw_new_dests(bg_policy *p) { p->classes[1].max_new_destinations_per_hour = 2; }
static void tw_sprawl_identity(bg_policy *p) { p->classes[1].sprawl_revokes_identity = true; }
static char **one_list(const char *s) {
    char **l = calloc(1, sizeof *l);
    assert_non_null(l);
    l[0] = xstrdup(s);
    return l;
}
static void tw_trusted(bg_policy *p) {
    p->destinations.trusted = one_list("good.example");
    p->destinations.n_trusted = 1;
}
static void tw_category(bg_policy *p) {
    p->destinations.categories = calloc(1, sizeof *p->destinations.categories);
    assert_non_null(p->destinations.categories);
    p->destinations.categories[0].name = xstrdup("paste-sites");
    p->destinations.categories[0].risk = 0.2;
    p->destinations.categories[0].dests = one_list("paste.example");
    p->destinations.categories[0].n_dests = 1;
    p->destinations.n_categories = 1;
}
static void tw_known_bad(bg_policy *p) {
    p->destinations.known_bad = one_list("bad.example");
    p->destinations.n_known_bad = 1;
}

static const tcase cases[] = {
    {.name = "under the limit: nothing",
     .events = {{'u', ID, 90, "a.example", 60}, {'u', ID, 90.5, "a.example", 39}}},
    {.name = "rate limit: one ONSET, one ENDED",
     .events = {{'u', ID, 90, "a.example", 60},
                {'u', ID, 90.3, "a.example", 60},
                {'u', ID, 90.6, "a.example", 60},
                {'u', ID, 91.2, "a.example", 150}},
     .verdicts = {"ONSET UNEXPECTED THROTTLE " ID, "ENDED UNEXPECTED THROTTLE " ID}},
    {.name = "inside the envelope: PLANNED",
     .events = {{'u', PL, 110, "a.example", 300}, {'u', PL, 110.5, "b.example", 150}},
     .verdicts = {"ONSET PLANNED ALLOW " PL, "ENDED PLANNED ALLOW " PL}},
    {.name = "beyond the envelope's limit: escalates to UNEXPECTED",
     .events = {{'u', PL, 110, "a.example", 300}, {'u', PL, 110.5, "a.example", 300}},
     .verdicts = {"ONSET PLANNED ALLOW " PL, "ESCALATED UNEXPECTED THROTTLE " PL,
                  "ENDED UNEXPECTED THROTTLE " PL}},
    {.name = "envelope expired: UNEXPECTED",
     .events = {{'u', PL, 131, "a.example", 300}},
     .verdicts = {"ONSET UNEXPECTED THROTTLE " PL, "ENDED UNEXPECTED THROTTLE " PL}},
    {.name = "envelope not yet valid: UNEXPECTED",
     .events = {{'u', PL, 99.5, "a.example", 300}},
     .verdicts = {"ONSET UNEXPECTED THROTTLE " PL, "ENDED UNEXPECTED THROTTLE " PL}},
    {.name = "envelope revoked: UNEXPECTED",
     .events = {{'u', "spiffe://t/svc/revoked", 110, "a.example", 300}},
     .verdicts = {"ONSET UNEXPECTED THROTTLE spiffe://t/svc/revoked",
                  "ENDED UNEXPECTED THROTTLE spiffe://t/svc/revoked"}},
    {.name = "envelope: destination outside allowed_destinations is UNEXPECTED",
     .events = {{'u', PL, 110, "a.example", 300}, {'u', PL, 110.2, "b.example", 1},
                {'u', PL, 110.4, "c.example", 1}},
     .verdicts = {"ONSET PLANNED ALLOW " PL, "ESCALATED UNEXPECTED THROTTLE " PL,
                  "ENDED UNEXPECTED THROTTLE " PL}},
    {.name = "new secret then new destination: ANOMALOUS, secret revoked",
     .events = {{'s', ID, 90, "sec-1"}, {'u', ID, 93, "evil.example", 1}},
     .verdicts = {"ONSET ANOMALOUS REVOKE " ID, "ENDED ANOMALOUS REVOKE " ID},
     .revoked = {"sec-1"}},
    {.name = "new destination then new secret (other order): ANOMALOUS",
     .events = {{'t', ID, 90, "evil.example"}, {'s', ID, 100, "sec-2"}},
     .verdicts = {"ONSET ANOMALOUS REVOKE " ID, "ENDED ANOMALOUS REVOKE " ID},
     .revoked = {"sec-2"}},
    {.name = "dry-run class: the revocation is a dry run",
     .events = {{'s', ID, 90, "sec-1"}, {'u', ID, 93, "evil.example", 1}},
     .verdicts = {"ONSET ANOMALOUS REVOKE " ID, "ENDED ANOMALOUS REVOKE " ID},
     .revoked = {"sec-1"},
     .dry_run = true},
    {.name = "two secrets in the window, one re-delivered: two commands",
     .events = {{'s', ID, 88, "sec-1"}, {'s', ID, 89, "sec-2"}, {'s', ID, 89.5, "sec-1"},
                {'u', ID, 93, "evil.example", 1}},
     .verdicts = {"ONSET ANOMALOUS REVOKE " ID, "ENDED ANOMALOUS REVOKE " ID},
     .revoked = {"sec-1", "sec-2"}},
    {.name = "near-miss: new destination, no new secret",
     .events = {{'u', ID, 90, "new.example", 1}, {'u', ID, 95, "new2.example", 1}}},
    {.name = "near-miss: secret rotation against known destinations",
     .events = {{'s', ID, 90, "sec-rot-1"}, {'u', ID, 91, "a.example", 1},
                {'t', ID, 92, "b.example"}, {'s', ID, 150, "sec-rot-2"}}},
    {.name = "near-miss: secret and new destination 20 min apart (window 15)",
     .events = {{'s', ID, 90, "sec-1"}, {'u', ID, 110, "new.example", 1}}},
    {.name = "near-miss: destinations learned in the first hour are the baseline",
     .events = {{'s', "spiffe://t/svc/fresh", 0.5, "sec-0"},
                {'u', "spiffe://t/svc/fresh", 1, "first.example", 1},
                {'u', "spiffe://t/svc/fresh", 2, "second.example", 1}}},
    {.name = "planned burst that reaches a new destination with a new secret: ANOMALOUS",
     .events = {{'u', PL, 110, "a.example", 300}, {'s', PL, 111, "sec-9"},
                {'u', PL, 112, "b.example", 300}, {'u', PL, 112.5, "evil.example", 1}},
     .verdicts = {"ONSET PLANNED ALLOW " PL, "ESCALATED ANOMALOUS REVOKE " PL,
                  "ENDED ANOMALOUS REVOKE " PL},
     .revoked = {"sec-9"}},
    {.name = "sprawl: a burst of grants is UNEXPECTED",
     .events = {{'g', ID, 90, "g1"}, {'g', ID, 91, "g2"}, {'g', ID, 92, "g3"}, {'g', ID, 93, "g4"}},
     .verdicts = {"ONSET UNEXPECTED THROTTLE " ID, "ENDED UNEXPECTED THROTTLE " ID}},
    {.name = "a secret with a TTL beyond the class maximum is UNEXPECTED",
     .events = {{'l', ID, 90, "long-lived"}},
     .verdicts = {"ONSET UNEXPECTED THROTTLE " ID, "ENDED UNEXPECTED THROTTLE " ID}},
    {.name = "a new credential used against a new destination: ANOMALOUS at full score",
     .events = {{'s', ID, 90, "sec-7"}, {'c', ID, 92, "evil.example", 0, "sec-7"}},
     .verdicts = {"ONSET ANOMALOUS REVOKE " ID, "ENDED ANOMALOUS REVOKE " ID},
     .revoked = {"sec-7"}},
    {.name = "approval: spend above the threshold without an envelope goes to REVIEW",
     .events = {{'m', ID, 90, "a.example", 800, NULL}, {'m', ID, 91, "a.example", 800, NULL}},
     .verdicts = {"ONSET UNEXPECTED REVIEW " ID, "ENDED UNEXPECTED REVIEW " ID},
     .tweak = tw_approval},
    {.name = "approval: the same spend inside an envelope is PLANNED",
     .events = {{'m', PL, 110, "a.example", 800, NULL}, {'m', PL, 111, "a.example", 800, NULL}},
     .verdicts = {"ONSET PLANNED ALLOW " PL, "ENDED PLANNED ALLOW " PL},
     .tweak = tw_approval},
    {.name = "spend ceiling per day",
     .events = {{'m', ID, 90, "a.example", 3000, NULL}, {'m', ID, 300, "a.example", 3000, NULL}},
     .verdicts = {"ONSET UNEXPECTED THROTTLE " ID, "ENDED UNEXPECTED THROTTLE " ID},
     .tweak = tw_day},
    {.name = "new destinations per hour beyond the class maximum",
     .events = {{'u', ID, 90, "n1.example", 1, NULL}, {'u', ID, 91, "n2.example", 1, NULL},
                {'u', ID, 92, "n3.example", 1, NULL}},
     .verdicts = {"ONSET UNEXPECTED THROTTLE " ID, "ENDED UNEXPECTED THROTTLE " ID},
     .tweak = tw_new_dests},
    {.name = "near-miss: a new secret and a first use of a trusted destination",
     .events = {{'s', ID, 90, "sec-1", 0, NULL}, {'u', ID, 92, "good.example", 1, NULL}},
     .tweak = tw_trusted},
    {.name = "a known-bad destination is a signal on its own",
     .events = {{'u', ID, 90, "bad.example", 1, NULL}},
     .verdicts = {"ONSET UNEXPECTED REVIEW " ID, "ENDED UNEXPECTED REVIEW " ID},
     .tweak = tw_known_bad},
    {.name = "a known-bad destination with a new secret: ANOMALOUS",
     .events = {{'s', ID, 90, "sec-kb", 0, NULL}, {'u', ID, 91, "bad.example", 1, NULL}},
     .verdicts = {"ONSET ANOMALOUS REVOKE " ID, "ENDED ANOMALOUS REVOKE " ID},
     .revoked = {"sec-kb"},
     .tweak = tw_known_bad},
    {.name = "a new secret and a first use of a risky category: ANOMALOUS, scored up",
     .events = {{'s', ID, 90, "sec-c", 0, NULL}, {'u', ID, 91, "paste.example", 1, NULL}},
     .verdicts = {"ONSET ANOMALOUS REVOKE " ID, "ENDED ANOMALOUS REVOKE " ID},
     .revoked = {"sec-c"},
     .tweak = tw_category},
    {.name = "sprawl in a class that revokes the identity: ANOMALOUS, target IDENTITY",
     .events = {{'g', ID, 90, "g1", 0, NULL}, {'g', ID, 91, "g2", 0, NULL}, {'g', ID, 92, "g3", 0, NULL},
                {'g', ID, 93, "g4", 0, NULL}},
     .verdicts = {"ONSET ANOMALOUS REVOKE " ID, "ENDED ANOMALOUS REVOKE " ID},
     .revoked = {"IDENTITY"},
     .tweak = tw_sprawl_identity},
    {.name = "an ANOMALOUS burst does not escalate again on a rate limit",
     .events = {{'s', ID, 90, "sec-1"}, {'u', ID, 91, "evil.example", 1},
                {'u', ID, 91.5, "a.example", 200}},
     .verdicts = {"ONSET ANOMALOUS REVOKE " ID, "ENDED ANOMALOUS REVOKE " ID},
     .revoked = {"sec-1"}},
};

static void test_cases(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
}

/* The same input twice yields the same ids; another burst other ids. */
static void test_deterministic_ids(void **state) {
    (void)state;
    bg_outputs a, b;
    bg_policy pa, pb;
    run_case(&cases[8], &a, &pa);
    run_case(&cases[8], &b, &pb);
    assert_int_equal(a.n_verdicts, b.n_verdicts);
    for (size_t i = 0; i < a.n_verdicts; i++)
        assert_string_equal(a.verdicts[i].verdict_id, b.verdicts[i].verdict_id);
    assert_string_equal(a.revocations[0].command_id, b.revocations[0].command_id);
    assert_string_not_equal(a.verdicts[0].verdict_id, a.verdicts[1].verdict_id);
    assert_string_not_equal(a.revocations[0].command_id, a.revocations[0].verdict_id);
    assert_int_equal(strlen(a.verdicts[0].verdict_id), 32);
    bg_outputs c;
    bg_policy pc;
    run_case(&cases[9], &c, &pc);
    assert_string_not_equal(a.verdicts[0].verdict_id, c.verdicts[0].verdict_id);
    bg_outputs_free(&a);
    bg_outputs_free(&b);
    bg_outputs_free(&c);
    bg_policy_free(&pa);
    bg_policy_free(&pb);
    bg_policy_free(&pc);
}

/* A verdict explains itself: reasons, routes, envelope, source offsets. */
static void test_verdict_fields(void **state) {
    (void)state;
    bg_outputs out;
    bg_policy p;
    run_case(&cases[3], &out, &p); /* PLANNED then ESCALATED UNEXPECTED */
    const bg_verdict *on = &out.verdicts[0], *esc = &out.verdicts[1];
    assert_string_equal(on->envelope_id, "env-1");
    assert_string_equal(on->workload_class, "svc");
    assert_int_equal(on->n_review_routes, 0); /* PLANNED routes nowhere */
    assert_true(on->n_reasons >= 1);
    assert_string_equal(on->reasons[0].code, "api_calls_per_min");
    assert_true(on->reasons[0].observed > on->reasons[0].threshold);
    assert_int_equal(esc->n_reasons, 1);
    assert_string_equal(esc->reasons[0].detector, "envelope");
    assert_true(esc->reasons[0].threshold == 500.0);
    assert_true(esc->reasons[0].observed == 600.0);
    assert_int_equal(esc->n_review_routes, 1);
    assert_string_equal(esc->review_routes[0], "platform");
    assert_int_equal(esc->n_source, 1);
    assert_int_equal(esc->source[0].topic, BG_EV_USAGE);
    assert_int_equal(esc->source[0].partition, 3);
    assert_true(esc->source[0].first_offset <= 1000 && esc->source[0].last_offset == 1001);
    assert_true(esc->severity > 0 && esc->severity <= 100);
    assert_string_equal(esc->policy_version, p.version);
    bg_outputs_free(&out);
    bg_policy_free(&p);

    run_case(&cases[8], &out, &p); /* ANOMALOUS */
    const bg_verdict *an = &out.verdicts[0];
    assert_int_equal(an->n_new_secret_ids, 1);
    assert_string_equal(an->new_secret_ids[0], "sec-1");
    assert_int_equal(an->n_new_destinations, 1);
    assert_string_equal(an->new_destinations[0], "evil.example");
    assert_string_equal(an->review_routes[0], "security");
    /* 80 + 20 x correlation score 0.8: 0.7 for the pair, 0.1 because no other
     * identity of the partition uses evil.example */
    assert_int_equal(an->severity, 96);
    assert_true(an->reasons[0].score > 0.79 && an->reasons[0].score < 0.81);
    assert_string_equal(an->reasons[1].code, "rare_destination");
    assert_true(an->reasons[1].observed == 1.0);
    assert_int_equal(an->n_source, 2); /* the usage event and the secret */
    bg_outputs_free(&out);
    bg_policy_free(&p);
}

/* Signals explain themselves with their own reason codes and scores. */
static const tcase *find_case(const char *prefix) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (!strncmp(cases[i].name, prefix, strlen(prefix)))
            return &cases[i];
    fail();
    return NULL;
}

static void test_signal_reasons(void **state) {
    (void)state;
    bg_outputs out;
    bg_policy p;
    run_case(find_case("sprawl"), &out, &p);
    assert_string_equal(out.verdicts[0].reasons[0].code, "identity_sprawl");
    assert_true(out.verdicts[0].reasons[0].observed == 4.0);
    assert_true(out.verdicts[0].reasons[0].threshold == 3.0);
    bg_outputs_free(&out);
    bg_policy_free(&p);
    run_case(find_case("a secret with a TTL"), &out, &p);
    assert_string_equal(out.verdicts[0].reasons[0].code, "secret_ttl_above_max");
    bg_outputs_free(&out);
    bg_policy_free(&p);
    run_case(find_case("a new secret and a first use of a risky"), &out, &p);
    bool risky = false;
    for (uint32_t i = 0; i < out.verdicts[0].n_reasons; i++)
        risky |= !strcmp(out.verdicts[0].reasons[i].code, "risky_destination_category") &&
                 out.verdicts[0].reasons[i].score == 0.2;
    assert_true(risky);
    assert_true(out.verdicts[0].reasons[0].score > 0.99); /* 0.7 + 0.2 + 0.1 (rare) */
    bg_outputs_free(&out);
    bg_policy_free(&p);
    run_case(find_case("a new credential used"), &out, &p);
    const bg_verdict *v = &out.verdicts[0];
    assert_string_equal(v->reasons[0].code, "new_secret_new_destination");
    assert_true(v->reasons[0].score == 1.0);
    assert_int_equal(v->severity, 100);
    bool cred = false;
    for (uint32_t i = 0; i < v->n_reasons; i++)
        cred |= !strcmp(v->reasons[i].code, "new_credential_on_new_destination");
    assert_true(cred);
    bg_outputs_free(&out);
    bg_policy_free(&p);
}

/* A new secret and a tool bigram new for the identity and rare in the
 * partition, used with that secret against a known destination:
 * new_secret_unusual_tool_chain names the bigram in the reasons, the secret
 * is revoked, and the verdict's new_destinations stays empty. */
static void test_tool_chain_reasons(void **state) {
    (void)state;
    bg_policy p;
    make_policy(&p, true);
    bg_engine *e;
    assert_int_equal(bg_engine_new(&p, 3, &e), BG_OK);
    bg_outputs out;
    bg_outputs_init(&out);
    const char *W = "spiffe://t/agent/chain";
    for (int m = 0; m < 70; m += 5) {
        tev a = {'u', W, m, "a.example", 1, NULL};
        bg_event ev;
        to_event(&a, &ev);
        assert_int_equal(bg_engine_observe(e, &ev, m, &out), BG_OK);
    }
    tev k = {'s', W, 90, "sec-key", 0, NULL};
    bg_event ev;
    to_event(&k, &ev);
    assert_int_equal(bg_engine_observe(e, &ev, 100, &out), BG_OK);
    tev c = {'c', W, 91, "a.example", 0, "sec-key"};
    to_event(&c, &ev);
    ev.u.tool.parent_tool = S("search");
    ev.u.tool.tool = S("db.dump");
    ev.u.tool.bytes_out = 4000;
    assert_int_equal(bg_engine_observe(e, &ev, 101, &out), BG_OK);
    assert_int_equal(out.n_verdicts, 1);
    const bg_verdict *v = &out.verdicts[0];
    assert_int_equal(v->classification, BG_CLASS_ANOMALOUS);
    assert_int_equal(v->action, BG_ACT_REVOKE);
    assert_int_equal(v->n_new_destinations, 0);
    assert_int_equal(v->n_new_secret_ids, 1);
    assert_string_equal(v->new_secret_ids[0], "sec-key");
    assert_string_equal(v->reasons[0].code, "new_secret_unusual_tool_chain");
    assert_string_equal(v->reasons[0].detector, "correlation");
    assert_true(v->reasons[0].score == 1.0); /* 0.7 + 0.3 (its credential) + 0.1, capped */
    bool named = false;
    for (uint32_t i = 0; i < v->n_reasons; i++)
        named |= !strcmp(v->reasons[i].code, "tool_chain:search->db.dump");
    assert_true(named);
    assert_int_equal(out.n_revocations, 1);
    assert_string_equal(out.revocations[0].secret_id, "sec-key");
    bg_outputs_free(&out);
    bg_engine_free(e);
    bg_policy_free(&p);
}

static void feed_usage_calls(bg_engine *e, bg_outputs *out, const char *who, double at, int calls);

/* A reload mid-stream: the open burst keeps going under the new policy's
 * class of the same name and ends once; new limits apply to what follows. */
static void test_policy_swap(void **state) {
    (void)state;
    bg_policy p1, p2;
    make_policy(&p1, true);
    make_policy(&p2, true);
    p2.classes[1].max_api_calls_per_min = 1000;
    memcpy(p2.version, "2222222222222222", 17);
    bg_engine *e;
    assert_int_equal(bg_engine_new(&p1, 0, &e), BG_OK);
    bg_outputs out;
    bg_outputs_init(&out);
    feed_usage_calls(e, &out, ID, 90, 300);
    assert_int_equal(out.n_verdicts, 1);
    bg_engine_set_policy(e, &p2);
    bg_policy_free(&p1); /* the engine no longer refers to it */
    feed_usage_calls(e, &out, "spiffe://t/svc/other", 90.5, 300); /* under the new limit */
    feed_usage_calls(e, &out, "spiffe://t/other/clock", 200, 1);
    assert_int_equal(bg_engine_tick(e, &out), BG_OK);
    assert_int_equal(out.n_verdicts, 2);
    assert_int_equal(out.verdicts[1].phase, BG_PHASE_ENDED);
    assert_string_equal(out.verdicts[1].identity, ID);
    assert_string_equal(out.verdicts[1].workload_class, "svc");
    assert_string_equal(out.verdicts[1].policy_version, "2222222222222222");
    bg_engine_free(e);
    bg_outputs_free(&out);
    bg_policy_free(&p2);
}

/* Sprawl across an owner's identities: each stays under its own limit, the
 * owner's total crosses the owner limit. */
static void test_owner_sprawl(void **state) {
    (void)state;
    bg_policy p;
    make_policy(&p, true);
    bg_engine *e;
    assert_int_equal(bg_engine_new(&p, 0, &e), BG_OK);
    bg_outputs out;
    bg_outputs_init(&out);
    const char *ids[] = {"spiffe://t/svc/o1", "spiffe://t/svc/o2", "spiffe://t/svc/o3"};
    int issued = 0;
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 3; i++) {
            tev t = {'g', ids[i], 90 + issued++, "grant", 0, NULL};
            bg_event ev;
            to_event(&t, &ev);
            char sid[16];
            snprintf(sid, sizeof sid, "g-%d", issued);
            ev.u.secret.secret_id = S(sid);
            ev.owner = S("team-sprawl");
            assert_int_equal(bg_engine_observe(e, &ev, issued, &out), BG_OK);
        }
    /* six grants by the owner, two per identity: only the sixth crosses (limit 5) */
    assert_int_equal(out.n_verdicts, 1);
    assert_string_equal(out.verdicts[0].identity, "spiffe://t/svc/o3");
    assert_string_equal(out.verdicts[0].reasons[0].code, "owner_identity_sprawl");
    assert_string_equal(out.verdicts[0].owner, "team-sprawl");
    bg_engine_free(e);
    bg_outputs_free(&out);
    bg_policy_free(&p);
}

/* The stated budget: a quiet identity with a handful of destinations holds
 * its 216-byte struct plus its identity string, nothing more (<= 256); one
 * active in more buckets adds its 560 bytes of detectors. */
static void test_state_bytes(void **state) {
    (void)state;
    bg_policy p;
    make_policy(&p, true);
    bg_engine *e;
    assert_int_equal(bg_engine_new(&p, 0, &e), BG_OK);
    bg_outputs out;
    bg_outputs_init(&out);
    const int n = 1000;
    char name[64];
    size_t names = 0;
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "spiffe://t/svc/mem-%04d", i);
        names += strlen(name) + 1;
        for (int d = 0; d < 5; d++) {
            char dest[32];
            snprintf(dest, sizeof dest, "d%d.example", d);
            tev t = {'u', name, 1 + d * 0.1, dest, 1, NULL}; /* all in one bucket */
            bg_event ev;
            to_event(&t, &ev);
            assert_int_equal(bg_engine_observe(e, &ev, 0, &out), BG_OK);
        }
    }
    size_t bytes = bg_engine_state_bytes(e);
    bg_engine_stats st;
    bg_engine_stats_get(e, &st);
    /* the partition's two Count-Min sketches are shared by all its identities */
    size_t sketches = 2 * (24 + 4 * 2719 * 5);
    size_t per = (bytes - sketches - 2048 * sizeof(void *) - names) / (size_t)n;
    print_message("%d identities: %zu bytes; %zu per identity beyond its name and slot\n", n,
                  bytes, per);
    assert_true(per <= 216);
    /* the same identities active in ten more buckets get their detectors */
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "spiffe://t/svc/mem-%04d", i);
        for (int m = 0; m < 10; m++) {
            tev t = {'u', name, 2 + m, "d0.example", 1, NULL};
            bg_event ev;
            to_event(&t, &ev);
            assert_int_equal(bg_engine_observe(e, &ev, 0, &out), BG_OK);
        }
    }
    size_t busy = (bg_engine_state_bytes(e) - sketches - 2048 * sizeof(void *) - names) / (size_t)n;
    print_message("active in 11 buckets: %zu per identity\n", busy);
    assert_true(busy <= 216 + 560);
    assert_int_equal(out.n_verdicts, 0);
    bg_engine_free(e);
    bg_outputs_free(&out);
    bg_policy_free(&p);
}

/* Detectors: a rate change far below the static limits is found when its
 * bucket closes; the same volume under one trace id (fan-out) is one action
 * and is not; steady noisy traffic raises nothing (fixed seed). */
static uint64_t rng_state = 7;
static uint64_t rnd(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void feed_usage(bg_engine *e, bg_outputs *out, const char *who, double at,
                       const char *trace) {
    tev t = {'u', who, at, "a.example", 1, NULL};
    bg_event ev;
    to_event(&t, &ev);
    if (trace)
        ev.trace_id = S(trace);
    assert_int_equal(bg_engine_observe(e, &ev, 0, out), BG_OK);
}

/* 3..6 actions a minute from minute `from` to `to` */
static void steady(bg_engine *e, bg_outputs *out, const char *who, int from, int to) {
    for (int m = from; m < to; m++) {
        int n = 3 + (int)(rnd() % 4);
        for (int k = 0; k < n; k++)
            feed_usage(e, out, who, m + (k + 0.5) / (n + 1), NULL);
    }
}

static void feed_usage_calls(bg_engine *e, bg_outputs *out, const char *who, double at, int calls) {
    tev t = {'u', who, at, "a.example", calls, NULL};
    bg_event ev;
    to_event(&t, &ev);
    assert_int_equal(bg_engine_observe(e, &ev, 0, out), BG_OK);
}

static void test_detector_rate_change(void **state) {
    (void)state;
    bg_policy p;
    make_policy(&p, true);
    bg_engine *e;
    assert_int_equal(bg_engine_new(&p, 0, &e), BG_OK);
    bg_outputs out;
    bg_outputs_init(&out);
    steady(e, &out, ID, 0, 120);
    assert_int_equal(out.n_verdicts, 0);
    for (int k = 0; k < 80; k++) /* 80 actions in minute 120: the limit is 100 calls */
        feed_usage(e, &out, ID, 120 + k / 100.0, NULL);
    assert_int_equal(out.n_verdicts, 0); /* decided when the bucket closes */
    feed_usage(e, &out, ID, 121.5, NULL);
    assert_int_equal(out.n_verdicts, 1);
    const bg_verdict *v = &out.verdicts[0];
    assert_int_equal(v->classification, BG_CLASS_UNEXPECTED);
    assert_int_equal(v->phase, BG_PHASE_ONSET);
    assert_string_equal(v->reasons[0].code, "rate_change_actions");
    assert_true(v->reasons[0].observed == 80.0);
    assert_true(v->reasons[0].baseline > 2.0 && v->reasons[0].baseline < 8.0);
    steady(e, &out, ID, 122, 200); /* back to normal: the burst ends, once */
    size_t ended = 0;
    for (size_t i = 0; i < out.n_verdicts; i++)
        ended += out.verdicts[i].phase == BG_PHASE_ENDED;
    assert_int_equal(ended, 1);
    assert_int_equal(out.n_verdicts, 2);
    bg_engine_free(e);
    bg_outputs_free(&out);
    bg_policy_free(&p);
}

static void test_detector_fanout_counts_once(void **state) {
    (void)state;
    bg_policy p;
    make_policy(&p, true);
    bg_engine *e;
    assert_int_equal(bg_engine_new(&p, 0, &e), BG_OK);
    bg_outputs out;
    bg_outputs_init(&out);
    steady(e, &out, ID, 0, 120);
    for (int k = 0; k < 80; k++) /* one user action fanning out into 80 backend calls */
        feed_usage(e, &out, ID, 120 + k / 100.0, "trace-one-action");
    steady(e, &out, ID, 121, 200);
    assert_int_equal(out.n_verdicts, 0);
    bg_engine_free(e);
    bg_outputs_free(&out);
    bg_policy_free(&p);
}

static void test_detector_quiet_fleet(void **state) {
    (void)state;
    bg_policy p;
    make_policy(&p, true);
    bg_engine *e;
    assert_int_equal(bg_engine_new(&p, 0, &e), BG_OK);
    bg_outputs out;
    bg_outputs_init(&out);
    char name[64];
    /* 100 identities x 6 hours of noisy steady traffic, minute by minute:
     * 252 000 detector steps */
    for (int m = 0; m < 360; m++)
        for (int i = 0; i < 100; i++) {
            snprintf(name, sizeof name, "spiffe://t/svc/fleet-%03d", i);
            int n = (int)(rnd() % (2 + (uint64_t)i % 8));
            for (int k = 0; k < n; k++)
                feed_usage(e, &out, name, m + (k + 0.5) / (n + 1), NULL);
        }
    assert_int_equal(out.n_verdicts, 0);
    bg_engine_free(e);
    bg_outputs_free(&out);
    bg_policy_free(&p);
}

static void test_late_and_invalid(void **state) {
    (void)state;
    bg_policy p;
    make_policy(&p, true);
    bg_engine *e;
    assert_int_equal(bg_engine_new(&p, 0, &e), BG_OK);
    bg_outputs out;
    bg_outputs_init(&out);
    tev t1 = {'u', ID, 100, "a.example", 1, NULL}, t2 = {'u', ID, 50, "a.example", 1, NULL};
    bg_event ev;
    to_event(&t1, &ev);
    assert_int_equal(bg_engine_observe(e, &ev, 0, &out), BG_OK);
    to_event(&t2, &ev);
    assert_int_equal(bg_engine_observe(e, &ev, 1, &out), BG_OK);
    bg_engine_stats st;
    bg_engine_stats_get(e, &st);
    assert_int_equal(st.late_events, 1);
    assert_int_equal(st.events, 2);
    assert_int_equal(st.identities, 1);
    assert_int_equal(st.watermark, T0 + 100 * MIN - p.allowed_lateness_ms);
    ev.identity = (bg_str){NULL, 0};
    assert_int_equal(bg_engine_observe(e, &ev, 2, &out), BG_ERR_INVALID);
    bg_engine_free(e);
    bg_engine_free(NULL);
    bg_outputs_free(&out);
    bg_policy_free(&p);
}

/* Many identities: the table grows and every identity keeps its own state. */
static void test_many_identities(void **state) {
    (void)state;
    bg_policy p;
    make_policy(&p, true);
    bg_engine *e;
    assert_int_equal(bg_engine_new(&p, 0, &e), BG_OK);
    bg_outputs out;
    bg_outputs_init(&out);
    char name[64];
    for (int i = 0; i < 20000; i++) {
        snprintf(name, sizeof name, "spiffe://t/svc/n%d", i);
        tev t = {'u', name, 70 + (i % 10) * 0.01, "a.example", i == 777 ? 150 : 5, NULL};
        bg_event ev;
        to_event(&t, &ev);
        assert_int_equal(bg_engine_observe(e, &ev, i, &out), BG_OK);
    }
    bg_engine_stats st;
    bg_engine_stats_get(e, &st);
    assert_int_equal(st.identities, 20000);
    assert_int_equal(out.n_verdicts, 1);
    assert_string_equal(out.verdicts[0].identity, "spiffe://t/svc/n777");
    bg_engine_free(e);
    bg_outputs_free(&out);
    bg_policy_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_deterministic_ids),
        cmocka_unit_test(test_verdict_fields),
        cmocka_unit_test(test_signal_reasons),
        cmocka_unit_test(test_tool_chain_reasons),
        cmocka_unit_test(test_owner_sprawl),
        cmocka_unit_test(test_policy_swap),
        cmocka_unit_test(test_state_bytes),
        cmocka_unit_test(test_detector_rate_change),
        cmocka_unit_test(test_detector_fanout_counts_once),
        cmocka_unit_test(test_detector_quiet_fleet),
        cmocka_unit_test(test_late_and_invalid),
        cmocka_unit_test(test_many_identities),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
