/* Backtest reports (see report.h): times, reading a replay's outputs back,
 * bursts, labels, scoring, and the text / JSON / compare writers. The HTML
 * page is in report_html.c. */
#include "report.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "../detectors/verdict.h"

/* ---- times ------------------------------------------------------------------ */

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool digits(const char *s, int n, int64_t *out) {
    int64_t v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bg_err bg_time_parse(const char *s, int64_t *ms) {
    if (!s || !*s)
        return BG_ERR_INVALID;
    size_t len = strlen(s);
    bool all_digits = true;
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)s[i]))
            all_digits = false;
    if (all_digits) {
        if (len > 15)
            return BG_ERR_INVALID;
        int64_t v;
        if (!digits(s, (int)len, &v))
            return BG_ERR_INVALID;
        *ms = v;
        return BG_OK;
    }
    int64_t y, mo, d, h, mi, sec = 0, frac = 0;
    if (len < 16 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi))
        return BG_ERR_INVALID;
    const char *p = s + 16;
    if (*p == ':') {
        if (!digits(p + 1, 2, &sec))
            return BG_ERR_INVALID;
        p += 3;
        if (*p == '.' || *p == ',') {
            p++;
            int n = 0;
            int64_t scale = 100;
            while (isdigit((unsigned char)*p)) {
                if (n < 3)
                    frac += (*p - '0') * scale;
                scale /= 10;
                n++;
                p++;
            }
            if (n == 0 || n > 9)
                return BG_ERR_INVALID;
        }
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int64_t oh, om;
        int sign = *p == '-' ? -1 : 1;
        if (!digits(p + 1, 2, &oh))
            return BG_ERR_INVALID;
        const char *q = p + 3;
        if (*q == ':')
            q++;
        if (!digits(q, 2, &om) || oh > 23 || om > 59)
            return BG_ERR_INVALID;
        off = sign * (oh * 60 + om) * 60000;
        p = q + 2;
    } else {
        return BG_ERR_INVALID; /* a time without a zone is ambiguous */
    }
    if (*p)
        return BG_ERR_INVALID;
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
        h > 23 || mi > 59 || sec > 60)
        return BG_ERR_INVALID;
    int64_t days = days_from_civil(y, mo, d);
    *ms = ((days * 24 + h) * 60 + mi) * 60000 + sec * 1000 + frac - off;
    return BG_OK;
}

void bg_time_iso(int64_t ms, char *buf, size_t n) {
    int64_t s = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int64_t rem = ms - s * 1000;
    time_t t = (time_t)s;
    struct tm tm;
    gmtime_r(&t, &tm);
    char tmp[40];
    strftime(tmp, sizeof tmp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, n, "%s.%03dZ", tmp, (int)rem);
}

/* ---- outputs read back --------------------------------------------------------- */

static char *jstr(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return strdup(json_is_string(v) ? json_string_value(v) : "");
}
static int64_t jint(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}
static int jenum(json_t *o, const char *k, const char *(*name)(int), int n) {
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v))
        return -1;
    for (int i = 0; i < n; i++)
        if (!strcmp(json_string_value(v), name(i)))
            return i;
    return -1;
}
static const char *cls_name(int i) { return bg_class_name((bg_class)i); }
static const char *phase_name(int i) { return bg_phase_name((bg_phase)i); }
static const char *act_name(int i) { return bg_action_name((bg_action)i); }

static char *joined(json_t *o, const char *k, const char *field) {
    json_t *a = json_object_get(o, k);
    size_t cap = 64, len = 0;
    char *s = calloc(1, cap);
    if (!s || !json_is_array(a))
        return s;
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e) {
        json_t *x = field ? json_object_get(e, field) : e;
        const char *t = json_is_string(x) ? json_string_value(x) : "";
        size_t tl = strlen(t);
        if (len + tl + 2 > cap) {
            while (len + tl + 2 > cap)
                cap *= 2;
            char *ns = realloc(s, cap);
            if (!ns)
                return s;
            s = ns;
        }
        if (len)
            s[len++] = ',';
        memcpy(s + len, t, tl);
        len += tl;
        s[len] = 0;
    }
    return s;
}

bg_err bg_rp_parse_verdict(const char *line, bg_rp_verdict *v) {
    memset(v, 0, sizeof *v);
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        return BG_ERR_MALFORMED;
    }
    v->verdict_id = jstr(o, "verdict_id");
    v->identity = jstr(o, "identity");
    v->workload_class = jstr(o, "workload_class");
    v->envelope_id = jstr(o, "envelope_id");
    v->cls = jenum(o, "classification", cls_name, 3);
    v->phase = jenum(o, "phase", phase_name, 3);
    v->action = jenum(o, "action", act_name, 4);
    v->severity = (int)jint(o, "severity");
    v->window_start = jint(o, "window_start");
    v->window_end = jint(o, "window_end");
    v->decided_at = jint(o, "decided_at");
    v->reasons = joined(o, "reasons", "code");
    v->new_secret_ids = joined(o, "new_secret_ids", NULL);
    v->new_destinations = joined(o, "new_destinations", NULL);
    json_decref(o);
    if (!v->verdict_id || !v->identity || !*v->verdict_id || v->cls < 0 || v->phase < 0 ||
        v->action < 0)
        return BG_ERR_MALFORMED;
    return BG_OK;
}

bg_err bg_rp_parse_revocation(const char *line, bg_rp_revocation *r) {
    memset(r, 0, sizeof *r);
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        return BG_ERR_MALFORMED;
    }
    r->command_id = jstr(o, "command_id");
    r->verdict_id = jstr(o, "verdict_id");
    r->identity = jstr(o, "identity");
    r->secret_id = jstr(o, "secret_id");
    r->issued_at = jint(o, "issued_at");
    json_decref(o);
    if (!r->command_id || !r->identity || !r->secret_id || !*r->command_id)
        return BG_ERR_MALFORMED;
    return BG_OK;
}

static void verdict_free(bg_rp_verdict *v) {
    free(v->verdict_id);
    free(v->identity);
    free(v->workload_class);
    free(v->envelope_id);
    free(v->reasons);
    free(v->new_secret_ids);
    free(v->new_destinations);
}
static void revocation_free(bg_rp_revocation *r) {
    free(r->command_id);
    free(r->verdict_id);
    free(r->identity);
    free(r->secret_id);
}

void bg_rp_set_free(bg_rp_set *s) {
    for (size_t i = 0; i < s->n_v; i++)
        verdict_free(&s->v[i]);
    for (size_t i = 0; i < s->n_r; i++)
        revocation_free(&s->r[i]);
    free(s->v);
    free(s->r);
    memset(s, 0, sizeof *s);
}

/* Read a file's lines; fn parses each non-empty one. */
static bg_err read_lines(const char *path, bool verdicts, bg_rp_set *s, char *errstr, size_t n) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errstr, n, "cannot read %.900s: %s", path, strerror(errno));
        return BG_ERR_IO;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0, acap = 0;
    ssize_t got;
    bg_err err = BG_OK;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = 0;
        if (!got)
            continue;
        size_t *cnt = verdicts ? &s->n_v : &s->n_r;
        if (*cnt == acap) {
            acap = acap ? acap * 2 : 64;
            void *nv = verdicts ? realloc(s->v, acap * sizeof *s->v)
                                : realloc(s->r, acap * sizeof *s->r);
            if (!nv) {
                err = BG_ERR_NOMEM;
                break;
            }
            if (verdicts)
                s->v = nv;
            else
                s->r = nv;
        }
        bg_err pe = verdicts ? bg_rp_parse_verdict(line, &s->v[s->n_v])
                             : bg_rp_parse_revocation(line, &s->r[s->n_r]);
        if (pe) {
            if (verdicts)
                verdict_free(&s->v[s->n_v]);
            else
                revocation_free(&s->r[s->n_r]);
            snprintf(errstr, n, "%.900s:%zu: not a %s record", path, lineno,
                     verdicts ? "verdict" : "revocation");
            err = BG_ERR_MALFORMED;
            break;
        }
        (*cnt)++;
    }
    free(line);
    fclose(f);
    return err;
}

bg_err bg_rp_load(const char *dir, bg_rp_set *s, char *errstr, size_t errstr_size) {
    memset(s, 0, sizeof *s);
    char path[4096];
    snprintf(path, sizeof path, "%s/verdicts.jsonl", dir);
    bg_err err = read_lines(path, true, s, errstr, errstr_size);
    if (!err) {
        snprintf(path, sizeof path, "%s/revocations.jsonl", dir);
        err = read_lines(path, false, s, errstr, errstr_size);
    }
    if (err)
        bg_rp_set_free(s);
    return err;
}

/* ---- bursts -------------------------------------------------------------------- */

static int cmp_verdict_ptr(const void *a, const void *b) {
    const bg_rp_verdict *x = *(const bg_rp_verdict *const *)a, *y = *(const bg_rp_verdict *const *)b;
    int c = strcmp(x->identity, y->identity);
    if (c)
        return c;
    if (x->window_start != y->window_start)
        return x->window_start < y->window_start ? -1 : 1;
    if (x->decided_at != y->decided_at)
        return x->decided_at < y->decided_at ? -1 : 1;
    if (x->phase != y->phase)
        return x->phase < y->phase ? -1 : 1;
    return strcmp(x->verdict_id, y->verdict_id);
}

static void add_reasons(char *dst, size_t cap, const char *codes) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", codes);
    char *save = NULL;
    for (char *w = strtok_r(tmp, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        bool have = false;
        size_t wl = strlen(w);
        for (const char *p = dst; (p = strstr(p, w)) != NULL; p += wl)
            if ((p == dst || p[-1] == ',') && (p[wl] == ',' || !p[wl]))
                have = true;
        if (have)
            continue;
        size_t l = strlen(dst);
        if (l + wl + 2 < cap)
            snprintf(dst + l, cap - l, "%s%s", l ? "," : "", w);
    }
}

bg_err bg_rp_bursts(const bg_rp_set *s, bg_rp_burst **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (!s->n_v)
        return BG_OK;
    const bg_rp_verdict **p = malloc(s->n_v * sizeof *p);
    bg_rp_burst *b = calloc(s->n_v, sizeof *b);
    if (!p || !b) {
        free(p);
        free(b);
        return BG_ERR_NOMEM;
    }
    for (size_t i = 0; i < s->n_v; i++)
        p[i] = &s->v[i];
    qsort(p, s->n_v, sizeof *p, cmp_verdict_ptr);
    size_t nb = 0;
    for (size_t i = 0; i < s->n_v; i++) {
        const bg_rp_verdict *v = p[i];
        bg_rp_burst *cur = nb ? &b[nb - 1] : NULL;
        if (!cur || strcmp(cur->identity, v->identity) || cur->onset != v->window_start) {
            cur = &b[nb++];
            cur->identity = v->identity;
            cur->onset = v->window_start;
            cur->end = v->window_end;
            cur->cls = -1;
            cur->action = -1;
            for (int c = 0; c < 3; c++)
                cur->first_decided[c] = INT64_MAX;
            cur->onset_verdict_id = v->verdict_id;
        }
        cur->n_verdicts++;
        if (v->window_end > cur->end)
            cur->end = v->window_end;
        if (v->phase != BG_PHASE_ENDED) {
            if (v->cls > cur->cls)
                cur->cls = v->cls;
            if (v->action > cur->action)
                cur->action = v->action;
            if (v->cls >= 0 && v->cls < 3 && v->decided_at < cur->first_decided[v->cls])
                cur->first_decided[v->cls] = v->decided_at;
        }
        add_reasons(cur->reasons, sizeof cur->reasons, v->reasons);
    }
    /* a burst seen only through its ENDED verdict (range cut) keeps that class */
    for (size_t i = 0; i < nb; i++)
        if (b[i].cls < 0)
            for (size_t j = 0; j < s->n_v; j++)
                if (!strcmp(s->v[j].identity, b[i].identity) && s->v[j].window_start == b[i].onset) {
                    b[i].cls = s->v[j].cls;
                    b[i].action = s->v[j].action;
                    if (s->v[j].cls >= 0 && s->v[j].cls < 3)
                        b[i].first_decided[s->v[j].cls] = s->v[j].decided_at;
                }
    free(p);
    *out = b;
    *n = nb;
    return BG_OK;
}

/* ---- labels -------------------------------------------------------------------- */

const char *bg_label_class_name(int cls) {
    return cls == BG_LABEL_BENIGN ? "BENIGN" : cls >= 0 && cls < 3 ? bg_class_name((bg_class)cls) : "?";
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s))
        s++;
    size_t l = strlen(s);
    while (l && isspace((unsigned char)s[l - 1]))
        s[--l] = 0;
    return s;
}

bg_err bg_label_parse(const char *line, bg_label *l, char *why, size_t why_size) {
    memset(l, 0, sizeof *l);
    char tmp[2048];
    if (strlen(line) >= sizeof tmp) {
        snprintf(why, why_size, "line longer than %zu bytes", sizeof tmp - 1);
        return BG_ERR_INVALID;
    }
    snprintf(tmp, sizeof tmp, "%s", line);
    char *f[6] = {0};
    char *p = tmp;
    for (int i = 0; i < 5; i++) {
        char *c = strchr(p, ',');
        if (!c) {
            snprintf(why, why_size, "expected 6 fields identity,class,start,end,secret_ids,"
                                    "description; got %d",
                     i + 1);
            return BG_ERR_INVALID;
        }
        *c = 0;
        f[i] = trim(p);
        p = c + 1;
    }
    f[5] = trim(p);
    if (!*f[0]) {
        snprintf(why, why_size, "empty identity");
        return BG_ERR_INVALID;
    }
    int cls = -1;
    for (int c = 0; c < 3; c++)
        if (!strcmp(f[1], bg_class_name((bg_class)c)))
            cls = c;
    if (!strcmp(f[1], "BENIGN"))
        cls = BG_LABEL_BENIGN;
    if (cls < 0) {
        snprintf(why, why_size, "class '%s' is not PLANNED, UNEXPECTED, ANOMALOUS or BENIGN", f[1]);
        return BG_ERR_INVALID;
    }
    if (bg_time_parse(f[2], &l->start) || bg_time_parse(f[3], &l->end)) {
        snprintf(why, why_size, "start/end must be ISO-8601 or epoch ms");
        return BG_ERR_INVALID;
    }
    if (l->end < l->start) {
        snprintf(why, why_size, "end is before start");
        return BG_ERR_INVALID;
    }
    l->cls = cls;
    l->identity = strdup(f[0]);
    l->secret_ids = strdup(f[4]);
    l->what = strdup(f[5]);
    if (!l->identity || !l->secret_ids || !l->what) {
        free(l->identity);
        free(l->secret_ids);
        free(l->what);
        snprintf(why, why_size, "out of memory");
        return BG_ERR_NOMEM;
    }
    return BG_OK;
}

void bg_labels_free(bg_label *l, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(l[i].identity);
        free(l[i].secret_ids);
        free(l[i].what);
    }
    free(l);
}

bg_err bg_labels_load(const char *path, bg_label **out, size_t *n, char *errstr,
                      size_t errstr_size) {
    *out = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errstr, errstr_size, "cannot read labels '%.900s': %s", path, strerror(errno));
        return BG_ERR_IO;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0, acap = 0;
    ssize_t got;
    bg_err err = BG_OK;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = 0;
        char *t = trim(line);
        if (!*t || *t == '#')
            continue;
        if (*n == acap) {
            acap = acap ? acap * 2 : 32;
            bg_label *nl = realloc(*out, acap * sizeof *nl);
            if (!nl) {
                err = BG_ERR_NOMEM;
                break;
            }
            *out = nl;
        }
        char why[256];
        if ((err = bg_label_parse(t, &(*out)[*n], why, sizeof why)) != BG_OK) {
            snprintf(errstr, errstr_size, "%.700s:%zu: %s", path, lineno, why);
            break;
        }
        (*n)++;
    }
    free(line);
    fclose(f);
    if (err) {
        bg_labels_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return err;
}

/* ---- scoring ------------------------------------------------------------------- */

static bool overlaps(const bg_rp_burst *b, const bg_label *l, int64_t slack) {
    return !strcmp(b->identity, l->identity) && b->onset <= l->end + slack &&
           b->end >= l->start - slack;
}

static bool lists_secret(const char *list, const char *id) {
    size_t il = strlen(id);
    if (!il)
        return false;
    for (const char *p = list; (p = strstr(p, id)) != NULL; p += il)
        if ((p == list || p[-1] == ';') && (p[il] == ';' || !p[il]))
            return true;
    return false;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* nearest rank: the ceil(q * n)-th smallest */
static int64_t rank(const int64_t *v, size_t n, double q) {
    size_t k = (size_t)(q * (double)n + 0.999999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

void bg_score_compute(const bg_rp_set *s, const bg_rp_burst *b, size_t nb, const bg_label *l,
                      size_t nl, int64_t slack_ms, bg_score *out) {
    memset(out, 0, sizeof *out);
    out->slack_ms = slack_ms;
    int64_t *delays = malloc((nl ? nl : 1) * sizeof *delays);
    for (int c = 0; c < 3; c++) {
        bg_class_score *cs = &out->c[c];
        size_t nd = 0;
        for (size_t i = 0; i < nl; i++) {
            if (l[i].cls != c)
                continue;
            cs->labels++;
            int64_t best = INT64_MAX;
            for (size_t j = 0; j < nb; j++)
                if (b[j].cls == c && overlaps(&b[j], &l[i], slack_ms) &&
                    b[j].first_decided[c] < best)
                    best = b[j].first_decided[c];
            if (best != INT64_MAX) {
                cs->tp_labels++;
                if (delays)
                    delays[nd++] = best > l[i].start ? best - l[i].start : 0;
            } else if (out->missed_labels < BG_SCORE_MAX_LIST) {
                out->missed_idx[out->missed_labels++] = i;
            }
        }
        for (size_t j = 0; j < nb; j++) {
            if (b[j].cls != c)
                continue;
            cs->detected++;
            bool tp = false, benign = false;
            for (size_t i = 0; i < nl; i++) {
                if (!overlaps(&b[j], &l[i], slack_ms))
                    continue;
                if (l[i].cls == c)
                    tp = true;
                else if (l[i].cls == BG_LABEL_BENIGN)
                    benign = true;
            }
            if (tp)
                cs->tp_bursts++;
            else if (benign && c != BG_CLASS_ANOMALOUS)
                cs->detected--; /* tolerated: benign novelty reviewed */
            else {
                cs->fp_bursts++;
                if (benign)
                    out->benign_flagged++;
            }
        }
        cs->recall = cs->labels ? (double)cs->tp_labels / (double)cs->labels : -1;
        cs->precision = cs->detected ? (double)cs->tp_bursts / (double)cs->detected : -1;
        cs->n_delays = nd;
        cs->delay_median_ms = cs->delay_p95_ms = -1;
        if (nd && delays) {
            qsort(delays, nd, sizeof *delays, cmp_i64);
            cs->delay_median_ms = rank(delays, nd, 0.5);
            cs->delay_p95_ms = rank(delays, nd, 0.95);
        }
    }
    free(delays);
    for (size_t i = 0; s && i < s->n_r; i++) {
        const bg_rp_revocation *r = &s->r[i];
        bool ok = false, collateral = false;
        for (size_t k = 0; k < nl && !ok; k++) {
            if (l[k].cls != BG_CLASS_ANOMALOUS || strcmp(l[k].identity, r->identity))
                continue;
            ok = *r->secret_id ? lists_secret(l[k].secret_ids, r->secret_id) : !*l[k].secret_ids;
            if (r->issued_at >= l[k].start - slack_ms && r->issued_at <= l[k].end + slack_ms)
                collateral = true;
        }
        if (ok)
            continue;
        if (collateral) {
            if (out->collateral_revocations < BG_SCORE_MAX_LIST)
                out->collateral_idx[out->collateral_revocations++] = i;
        } else if (out->false_revocations < BG_SCORE_MAX_LIST) {
            out->false_rev_idx[out->false_revocations++] = i;
        }
    }
    for (size_t k = 0; k < nl; k++) {
        if (l[k].cls != BG_CLASS_ANOMALOUS || !*l[k].secret_ids)
            continue;
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s", l[k].secret_ids);
        char *save = NULL;
        for (char *w = strtok_r(tmp, ";", &save); w; w = strtok_r(NULL, ";", &save)) {
            bool found = false;
            for (size_t i = 0; s && i < s->n_r && !found; i++)
                found = !strcmp(s->r[i].secret_id, w) && !strcmp(s->r[i].identity, l[k].identity);
            if (!found && out->missed_revocations < BG_SCORE_MAX_LIST)
                snprintf(out->missed[out->missed_revocations++], sizeof out->missed[0], "%s of %s",
                         w, l[k].identity);
        }
    }
}

/* ---- writers ------------------------------------------------------------------- */

bg_err bg_report_html(const bg_report_in *in, const bg_rp_burst *b, size_t nb, FILE *f);

static void pct(char *buf, size_t n, double v) {
    if (v < 0)
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%.1f %%", v * 100.0);
}

static void dur(char *buf, size_t n, int64_t ms) {
    if (ms < 0)
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%.1f s", (double)ms / 1000.0);
}

static void write_txt(const bg_report_in *in, const bg_rp_burst *b, size_t nb, const bg_score *sc,
                      FILE *f) {
    char t0[40], t1[40];
    bg_time_iso(in->from, t0, sizeof t0);
    bg_time_iso(in->to, t1, sizeof t1);
    fprintf(f, "burstguard backtest\n");
    fprintf(f, "range (event time, inclusive): %s .. %s\n", t0, t1);
    fprintf(f, "policy version: %s\n", in->policy_version ? in->policy_version : "-");
    fprintf(f, "events applied: usage %" PRIu64 ", secrets %" PRIu64 ", tool calls %" PRIu64
               "; outside the range %" PRIu64 "; dead letters %" PRIu64 "\n",
            in->events[0], in->events[1], in->events[2], in->skipped_out_of_range, in->deadletters);
    size_t counts[3][4] = {{0}};
    for (size_t i = 0; i < in->set->n_v; i++)
        if (in->set->v[i].cls >= 0 && in->set->v[i].cls < 3 && in->set->v[i].action >= 0 &&
            in->set->v[i].action < 4)
            counts[in->set->v[i].cls][in->set->v[i].action]++;
    fprintf(f, "\nverdicts: %zu, revocation commands: %zu, bursts: %zu\n", in->set->n_v,
            in->set->n_r, nb);
    fprintf(f, "%-11s %7s %9s %7s %7s\n", "class", "ALLOW", "THROTTLE", "REVIEW", "REVOKE");
    for (int c = 0; c < 3; c++)
        fprintf(f, "%-11s %7zu %9zu %7zu %7zu\n", bg_class_name((bg_class)c), counts[c][0],
                counts[c][1], counts[c][2], counts[c][3]);
    fprintf(f, "\nbursts per identity:\n");
    const char *last = NULL;
    for (size_t i = 0; i < nb; i++) {
        if (!last || strcmp(last, b[i].identity))
            fprintf(f, "  %s\n", b[i].identity);
        last = b[i].identity;
        char a[40], e[40];
        bg_time_iso(b[i].onset, a, sizeof a);
        bg_time_iso(b[i].end, e, sizeof e);
        fprintf(f, "    %s .. %s  %-10s %-8s  %s\n", a, e,
                b[i].cls >= 0 ? bg_class_name((bg_class)b[i].cls) : "?",
                b[i].action >= 0 ? bg_action_name((bg_action)b[i].action) : "?", b[i].reasons);
    }
    if (!sc)
        return;
    fprintf(f, "\nscored against %zu labels (match: same identity, overlap with +-%" PRId64
               " s of slack)\n",
            in->n_labels, sc->slack_ms / 1000);
    fprintf(f, "%-11s %6s %8s %4s %4s %10s %8s %13s %10s\n", "class", "labels", "detected", "tp",
            "fp", "precision", "recall", "delay median", "delay p95");
    for (int c = 0; c < 3; c++) {
        const bg_class_score *cs = &sc->c[c];
        char p[16], r[16], dm[16], dp[16];
        pct(p, sizeof p, cs->precision);
        pct(r, sizeof r, cs->recall);
        dur(dm, sizeof dm, cs->delay_median_ms);
        dur(dp, sizeof dp, cs->delay_p95_ms);
        fprintf(f, "%-11s %6zu %8zu %4zu %4zu %10s %8s %13s %10s\n", bg_class_name((bg_class)c),
                cs->labels, cs->detected, cs->tp_bursts, cs->fp_bursts, p, r, dm, dp);
    }
    fprintf(f, "ANOMALOUS bursts on BENIGN labels: %zu\n", sc->benign_flagged);
    fprintf(f, "false revocations: %zu\n", sc->false_revocations);
    for (size_t i = 0; i < sc->false_revocations; i++) {
        const bg_rp_revocation *r = &in->set->r[sc->false_rev_idx[i]];
        char t[40];
        bg_time_iso(r->issued_at, t, sizeof t);
        fprintf(f, "  %s of %s at %s (command %s, verdict %s)\n", *r->secret_id ? r->secret_id : "-",
                r->identity, t, r->command_id, r->verdict_id);
    }
    fprintf(f, "collateral revocations (other secrets of a compromised identity): %zu\n",
            sc->collateral_revocations);
    for (size_t i = 0; i < sc->collateral_revocations; i++) {
        const bg_rp_revocation *r = &in->set->r[sc->collateral_idx[i]];
        char t[40];
        bg_time_iso(r->issued_at, t, sizeof t);
        fprintf(f, "  %s of %s at %s (command %s)\n", *r->secret_id ? r->secret_id : "-",
                r->identity, t, r->command_id);
    }
    fprintf(f, "missed revocations: %zu\n", sc->missed_revocations);
    for (size_t i = 0; i < sc->missed_revocations; i++)
        fprintf(f, "  %s\n", sc->missed[i]);
    fprintf(f, "labels not found with their class: %zu\n", sc->missed_labels);
    for (size_t i = 0; i < sc->missed_labels; i++) {
        const bg_label *l = &in->labels[sc->missed_idx[i]];
        char t[40];
        bg_time_iso(l->start, t, sizeof t);
        fprintf(f, "  %s %s at %s: %s\n", bg_label_class_name(l->cls), l->identity, t, l->what);
    }
}

static json_t *json_report(const bg_report_in *in, const bg_rp_burst *b, size_t nb,
                           const bg_score *sc) {
    json_t *o = json_object();
    json_object_set_new(o, "from", json_integer(in->from));
    json_object_set_new(o, "to", json_integer(in->to));
    json_object_set_new(o, "policy_version", json_string(in->policy_version ? in->policy_version : ""));
    json_t *ev = json_object();
    json_object_set_new(ev, "usage", json_integer((json_int_t)in->events[0]));
    json_object_set_new(ev, "secrets", json_integer((json_int_t)in->events[1]));
    json_object_set_new(ev, "toolcalls", json_integer((json_int_t)in->events[2]));
    json_object_set_new(ev, "outside_range", json_integer((json_int_t)in->skipped_out_of_range));
    json_object_set_new(ev, "dead_letters", json_integer((json_int_t)in->deadletters));
    json_object_set_new(o, "events", ev);
    json_t *counts = json_object();
    for (int c = 0; c < 3; c++) {
        json_t *byact = json_object();
        for (int a = 0; a < 4; a++) {
            size_t k = 0;
            for (size_t i = 0; i < in->set->n_v; i++)
                k += in->set->v[i].cls == c && in->set->v[i].action == a;
            json_object_set_new(byact, bg_action_name((bg_action)a), json_integer((json_int_t)k));
        }
        json_object_set_new(counts, bg_class_name((bg_class)c), byact);
    }
    json_object_set_new(o, "verdicts", counts);
    json_object_set_new(o, "revocations", json_integer((json_int_t)in->set->n_r));
    json_t *ba = json_array();
    for (size_t i = 0; i < nb; i++) {
        json_t *x = json_object();
        json_object_set_new(x, "identity", json_string(b[i].identity));
        json_object_set_new(x, "onset", json_integer(b[i].onset));
        json_object_set_new(x, "end", json_integer(b[i].end));
        json_object_set_new(x, "class", json_string(b[i].cls >= 0 ? bg_class_name((bg_class)b[i].cls) : "?"));
        json_object_set_new(x, "action", json_string(b[i].action >= 0 ? bg_action_name((bg_action)b[i].action) : "?"));
        json_object_set_new(x, "reasons", json_string(b[i].reasons));
        json_object_set_new(x, "verdict_id", json_string(b[i].onset_verdict_id));
        json_array_append_new(ba, x);
    }
    json_object_set_new(o, "bursts", ba);
    if (sc) {
        json_t *s = json_object();
        for (int c = 0; c < 3; c++) {
            const bg_class_score *cs = &sc->c[c];
            json_t *x = json_object();
            json_object_set_new(x, "labels", json_integer((json_int_t)cs->labels));
            json_object_set_new(x, "detected", json_integer((json_int_t)cs->detected));
            json_object_set_new(x, "true_positives", json_integer((json_int_t)cs->tp_bursts));
            json_object_set_new(x, "false_positives", json_integer((json_int_t)cs->fp_bursts));
            json_object_set_new(x, "precision", cs->precision < 0 ? json_null() : json_real(cs->precision));
            json_object_set_new(x, "recall", cs->recall < 0 ? json_null() : json_real(cs->recall));
            json_object_set_new(x, "delay_median_ms", cs->delay_median_ms < 0 ? json_null() : json_integer(cs->delay_median_ms));
            json_object_set_new(x, "delay_p95_ms", cs->delay_p95_ms < 0 ? json_null() : json_integer(cs->delay_p95_ms));
            json_object_set_new(s, bg_class_name((bg_class)c), x);
        }
        json_t *fr = json_array();
        for (size_t i = 0; i < sc->false_revocations; i++) {
            const bg_rp_revocation *r = &in->set->r[sc->false_rev_idx[i]];
            json_t *x = json_object();
            json_object_set_new(x, "identity", json_string(r->identity));
            json_object_set_new(x, "secret_id", json_string(r->secret_id));
            json_object_set_new(x, "command_id", json_string(r->command_id));
            json_object_set_new(x, "issued_at", json_integer(r->issued_at));
            json_array_append_new(fr, x);
        }
        json_object_set_new(s, "false_revocations", fr);
        json_t *cr = json_array();
        for (size_t i = 0; i < sc->collateral_revocations; i++) {
            const bg_rp_revocation *r = &in->set->r[sc->collateral_idx[i]];
            json_t *x = json_object();
            json_object_set_new(x, "identity", json_string(r->identity));
            json_object_set_new(x, "secret_id", json_string(r->secret_id));
            json_object_set_new(x, "command_id", json_string(r->command_id));
            json_array_append_new(cr, x);
        }
        json_object_set_new(s, "collateral_revocations", cr);
        json_t *mr = json_array();
        for (size_t i = 0; i < sc->missed_revocations; i++)
            json_array_append_new(mr, json_string(sc->missed[i]));
        json_object_set_new(s, "missed_revocations", mr);
        json_object_set_new(s, "benign_flagged_anomalous", json_integer((json_int_t)sc->benign_flagged));
        json_object_set_new(o, "score", s);
    }
    return o;
}

#define SCORE_SLACK_MS (15 * 60000LL)

bg_err bg_report_write(const bg_report_in *in, char *errstr, size_t errstr_size) {
    bg_rp_burst *b = NULL;
    size_t nb = 0;
    if (bg_rp_bursts(in->set, &b, &nb)) {
        snprintf(errstr, errstr_size, "out of memory grouping bursts");
        return BG_ERR_NOMEM;
    }
    bg_score *sc = NULL;
    if (in->labels) {
        sc = malloc(sizeof *sc);
        if (!sc) {
            free(b);
            snprintf(errstr, errstr_size, "out of memory scoring");
            return BG_ERR_NOMEM;
        }
        bg_score_compute(in->set, b, nb, in->labels, in->n_labels, SCORE_SLACK_MS, sc);
    }
    bg_err err = BG_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/report.txt", in->dir);
    FILE *f = fopen(path, "w");
    if (f) {
        write_txt(in, b, nb, sc, f);
        if (fclose(f))
            f = NULL;
    }
    if (!f) {
        snprintf(errstr, errstr_size, "cannot write %.900s: %s", path, strerror(errno));
        err = BG_ERR_IO;
    }
    if (!err) {
        snprintf(path, sizeof path, "%s/report.json", in->dir);
        json_t *o = json_report(in, b, nb, sc);
        if (json_dump_file(o, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) {
            snprintf(errstr, errstr_size, "cannot write %.900s", path);
            err = BG_ERR_IO;
        }
        json_decref(o);
    }
    if (!err) {
        snprintf(path, sizeof path, "%s/report.html", in->dir);
        f = fopen(path, "w");
        if (!f || bg_report_html(in, b, nb, f) || fclose(f)) {
            snprintf(errstr, errstr_size, "cannot write %.900s", path);
            err = BG_ERR_IO;
        }
    }
    free(sc);
    free(b);
    return err;
}

/* ---- compare ------------------------------------------------------------------- */

static const bg_rp_burst *find_burst(const bg_rp_burst *b, size_t nb, const bg_rp_burst *x,
                                     const bg_rp_set *xs, const bg_rp_set *bs) {
    for (size_t i = 0; i < nb; i++)
        if (!strcmp(b[i].identity, x->identity) && b[i].onset == x->onset)
            return &b[i];
    /* else a shared verdict id */
    for (size_t i = 0; i < xs->n_v; i++) {
        if (strcmp(xs->v[i].identity, x->identity) || xs->v[i].window_start != x->onset)
            continue;
        for (size_t j = 0; j < bs->n_v; j++)
            if (!strcmp(bs->v[j].verdict_id, xs->v[i].verdict_id))
                for (size_t k = 0; k < nb; k++)
                    if (!strcmp(b[k].identity, bs->v[j].identity) &&
                        b[k].onset == bs->v[j].window_start)
                        return &b[k];
    }
    return NULL;
}

static void burst_line(FILE *f, const char *tag, const bg_rp_burst *b) {
    char t[40];
    bg_time_iso(b->onset, t, sizeof t);
    fprintf(f, "%s %s onset %s: %s/%s (%s)\n", tag, b->identity, t,
            b->cls >= 0 ? bg_class_name((bg_class)b->cls) : "?",
            b->action >= 0 ? bg_action_name((bg_action)b->action) : "?", b->reasons);
}

bg_err bg_report_compare(const bg_rp_set *mine, const bg_rp_set *other, const char *mine_name,
                         const char *other_name, FILE *out, bg_compare_counts *counts) {
    bg_rp_burst *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    if (bg_rp_bursts(mine, &a, &na) || bg_rp_bursts(other, &b, &nb)) {
        free(a);
        free(b);
        return BG_ERR_NOMEM;
    }
    bg_compare_counts c = {0};
    fprintf(out, "compare: %s (this backtest) against %s\n", mine_name, other_name);
    fprintf(out, "bursts: %zu here, %zu there; matched on (identity, onset), else a shared "
                 "verdict id\n\n",
            na, nb);
    for (size_t i = 0; i < na; i++) {
        const bg_rp_burst *x = find_burst(b, nb, &a[i], mine, other);
        if (!x) {
            burst_line(out, "gained ", &a[i]);
            c.gained++;
        } else if (x->cls != a[i].cls || x->action != a[i].action) {
            char t[40];
            bg_time_iso(a[i].onset, t, sizeof t);
            fprintf(out, "changed %s onset %s: %s/%s -> %s/%s (%s)\n", a[i].identity, t,
                    x->cls >= 0 ? bg_class_name((bg_class)x->cls) : "?",
                    x->action >= 0 ? bg_action_name((bg_action)x->action) : "?",
                    a[i].cls >= 0 ? bg_class_name((bg_class)a[i].cls) : "?",
                    a[i].action >= 0 ? bg_action_name((bg_action)a[i].action) : "?", a[i].reasons);
            c.changed++;
        } else {
            c.same++;
        }
    }
    for (size_t i = 0; i < nb; i++)
        if (!find_burst(a, na, &b[i], other, mine)) {
            burst_line(out, "lost   ", &b[i]);
            c.lost++;
        }
    fprintf(out, "\nsummary: %zu gained, %zu lost, %zu changed, %zu unchanged\n", c.gained, c.lost,
            c.changed, c.same);
    if (counts)
        *counts = c;
    free(a);
    free(b);
    return BG_OK;
}
