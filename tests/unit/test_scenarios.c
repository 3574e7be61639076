/* Scenario files: a policy, events in, verdicts and revocation commands out.
 *
 * Each tests/data/scenarios/NAME.scn holds sections:
 *   policy:   policy YAML, every line indented by two spaces
 *   events:   one event a line, time in minutes after 2026-11-30T00:00Z:
 *               MIN learn IDENTITY DEST[,DEST...]   usage every 5 min from MIN for 70 min
 *               MIN usage IDENTITY DEST CALLS [COST_MICROS]
 *               MIN secret IDENTITY SECRET_ID [KIND]   (KIND: api_key, oauth_grant, ...)
 *               MIN tool IDENTITY DEST [CREDENTIAL_ID|-] [PARENT->TOOL|-] [BYTES_OUT]
 *                                   tool "http" (or TOOL) with parent PARENT; BYTES_OUT > 0
 *                                   makes it a call with side effects
 *               MIN reload                     swap in the policy of the next `policy:` section
 *   expect:   the verdicts in order, "PHASE CLASS ACTION IDENTITY [envelope=ID]"
 *   revoke:   the revocation commands in order, "SECRET_ID|IDENTITY [dry_run]"
 * After the events a far-away event closes every bucket, so bursts end. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "detectors/engine.h"
#include "worker/policy_load.h"

#define T0 1795996800000LL
#define MIN 60000LL
#define MAX_POLICIES 4

typedef struct scenario {
    char *policies[MAX_POLICIES];
    int n_policies;
    char events[8192];
    char expect[4096];
    char revoke[1024];
} scenario;

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b)
        b[n] = 0;
    fclose(f);
    return b;
}

static void append(char *dst, size_t cap, const char *line) {
    size_t n = strlen(dst);
    snprintf(dst + n, cap - n, "%s\n", line);
}

static void parse(char *text, scenario *sc) {
    memset(sc, 0, sizeof *sc);
    char *section = "";
    size_t pcap = 8192;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        if (!strcmp(line, "policy:") || !strcmp(line, "events:") || !strcmp(line, "expect:") ||
            !strcmp(line, "revoke:")) {
            section = line;
            if (!strcmp(line, "policy:")) {
                assert_true(sc->n_policies < MAX_POLICIES);
                sc->policies[sc->n_policies++] = calloc(1, pcap);
            }
            continue;
        }
        if (!strcmp(section, "policy:"))
            append(sc->policies[sc->n_policies - 1], pcap, line + (line[0] == ' ' ? 2 : 0));
        else if (!strcmp(section, "events:"))
            append(sc->events, sizeof sc->events, line);
        else if (!strcmp(section, "expect:"))
            append(sc->expect, sizeof sc->expect, line);
        else if (!strcmp(section, "revoke:"))
            append(sc->revoke, sizeof sc->revoke, line);
    }
}

static bg_str S(const char *s) { return (bg_str){s, (uint32_t)strlen(s)}; }

static int secret_kind(const char *k) {
    static const char *names[] = {"api_key", "oauth_grant", "oidc_token", "x509_svid",
                                  "jwt_svid", "cloud_session", "db_credential", "ssh_cert",
                                  "service_identity", "other"};
    for (int i = 0; i < 10; i++)
        if (!strcmp(k, names[i]))
            return i;
    fail_msg("unknown secret kind %s", k);
    return 0;
}

static const char *version_now; /* of the policy in force */
static size_t versions_checked;

/* Apply one event; every verdict it caused carries the policy in force. */
static void observe(bg_engine *e, bg_event *ev, int64_t *off, bg_outputs *out) {
    ev->event_id = S("e");
    assert_int_equal(bg_engine_observe(e, ev, (*off)++, out), BG_OK);
    assert_int_equal(bg_engine_tick(e, out), BG_OK);
    for (; versions_checked < out->n_verdicts; versions_checked++)
        assert_string_equal(out->verdicts[versions_checked].policy_version, version_now);
}

static void run_scenario(const char *name, char *text) {
    scenario sc;
    parse(text, &sc);
    assert_true(sc.n_policies >= 1);
    bg_policy pols[MAX_POLICIES];
    char err[512];
    for (int i = 0; i < sc.n_policies; i++)
        if (bg_policy_load_text(name, sc.policies[i], strlen(sc.policies[i]), &pols[i], err,
                                sizeof err))
            fail_msg("%s: policy %d: %s", name, i, err);
    int cur = 0;
    version_now = pols[0].version;
    versions_checked = 0;
    bg_engine *e;
    assert_int_equal(bg_engine_new(&pols[0], 0, &e), BG_OK);
    bg_outputs out;
    bg_outputs_init(&out);
    int64_t off = 0;
    char *save;
    for (char *line = strtok_r(sc.events, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        double at;
        char kind[16], who[256] = "", a1[256] = "", a2[256] = "", a3[256] = "", a4[32] = "";
        long n1 = 0, n2 = 0;
        int got =
            sscanf(line, "%lf %15s %255s %255s %255s %255s %31s", &at, kind, who, a1, a2, a3, a4);
        assert_true(got >= 2);
        n1 = strtol(a2, NULL, 10);
        bg_event ev;
        memset(&ev, 0, sizeof ev);
        ev.identity = S(who);
        ev.event_time = T0 + (int64_t)(at * (double)MIN);
        if (!strcmp(kind, "reload")) {
            assert_true(cur + 1 < sc.n_policies);
            bg_engine_set_policy(e, &pols[++cur]);
            version_now = pols[cur].version;
        } else if (!strcmp(kind, "learn")) {
            char *dests[8];
            int nd = 0;
            for (char *d = strtok(a1, ","); d && nd < 8; d = strtok(NULL, ","))
                dests[nd++] = d;
            for (int m = 0; m < 70; m += 5) {
                memset(&ev, 0, sizeof ev);
                ev.kind = BG_EV_USAGE;
                ev.identity = S(who);
                ev.event_time = T0 + (int64_t)((at + m) * (double)MIN);
                ev.u.usage.destination = S(dests[(m / 5) % nd]);
                ev.u.usage.api_calls = 1;
                observe(e, &ev, &off, &out);
            }
        } else if (!strcmp(kind, "usage")) {
            char calls[32] = "", cost[32] = "";
            sscanf(line, "%*f %*s %*s %*s %31s %31s", calls, cost);
            ev.kind = BG_EV_USAGE;
            ev.u.usage.destination = S(a1);
            ev.u.usage.api_calls = (int32_t)strtol(calls, NULL, 10);
            n2 = strtol(cost, NULL, 10);
            ev.u.usage.cost_micros = n2;
            observe(e, &ev, &off, &out);
        } else if (!strcmp(kind, "secret")) {
            ev.kind = BG_EV_SECRET;
            ev.u.secret.secret_id = S(a1);
            ev.u.secret.secret_kind = a2[0] ? secret_kind(a2) : BG_SK_API_KEY;
            ev.u.secret.ttl_seconds = 3600;
            observe(e, &ev, &off, &out);
        } else if (!strcmp(kind, "tool")) {
            ev.kind = BG_EV_TOOLCALL;
            ev.u.tool.destination = S(a1);
            ev.u.tool.tool = S("http");
            if (a2[0] && strcmp(a2, "-"))
                ev.u.tool.credential_id = S(a2);
            char *arrow = strstr(a3, "->");
            if (arrow) {
                ev.u.tool.parent_tool = (bg_str){a3, (uint32_t)(arrow - a3)};
                ev.u.tool.tool = S(arrow + 2);
            }
            ev.u.tool.bytes_out = strtol(a4, NULL, 10);
            observe(e, &ev, &off, &out);
        } else {
            fail_msg("%s: unknown event '%s'", name, line);
        }
        (void)n1;
    }
    bg_event clock;
    memset(&clock, 0, sizeof clock);
    clock.kind = BG_EV_USAGE;
    clock.identity = S("scenario/clock");
    clock.event_time = T0 + 100000 * MIN;
    clock.u.usage.destination = S("clock.example");
    observe(e, &clock, &off, &out);

    char got[4096] = "", grev[1024] = "";
    for (size_t i = 0; i < out.n_verdicts; i++) {
        const bg_verdict *v = &out.verdicts[i];
        char line[512];
        snprintf(line, sizeof line, "%s %s %s %s%s%s", bg_phase_name(v->phase),
                 bg_class_name(v->classification), bg_action_name(v->action), v->identity,
                 v->envelope_id ? " envelope=" : "", v->envelope_id ? v->envelope_id : "");
        append(got, sizeof got, line);
    }
    for (size_t i = 0; i < out.n_revocations; i++) {
        const bg_revocation *r = &out.revocations[i];
        char line[512];
        snprintf(line, sizeof line, "%s%s", r->secret_id ? r->secret_id : "IDENTITY",
                 r->dry_run ? " dry_run" : "");
        append(grev, sizeof grev, line);
    }
    if (strcmp(got, sc.expect) || strcmp(grev, sc.revoke))
        fail_msg("scenario %s\n--- want verdicts:\n%s--- got:\n%s--- want revocations:\n%s--- "
                 "got:\n%s",
                 name, sc.expect, got, sc.revoke, grev);
    print_message("%-40s %zu verdicts, %zu commands\n", name, out.n_verdicts, out.n_revocations);
    bg_engine_free(e);
    bg_outputs_free(&out);
    for (int i = 0; i < sc.n_policies; i++) {
        bg_policy_free(&pols[i]);
        free(sc.policies[i]);
    }
}

static void test_scenarios(void **state) {
    (void)state;
    const char *src = getenv("BG_SOURCE_DIR");
    char dirpath[1024];
    snprintf(dirpath, sizeof dirpath, "%s/tests/data/scenarios", src ? src : ".");
    DIR *d = opendir(dirpath);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    char *names[64];
    while ((de = readdir(d)) && n < 64)
        if (strstr(de->d_name, ".scn"))
            names[n++] = strdup(de->d_name);
    closedir(d);
    assert_true(n >= 8);
    for (int i = 0; i < n; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dirpath, names[i]);
        char *text = read_file(path);
        assert_non_null(text);
        run_scenario(names[i], text);
        free(text);
        free(names[i]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_scenarios)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
