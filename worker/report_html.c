/* report.html: a self-contained page (inline CSS and SVG, no script, no
 * network) with the backtest's counts and one timeline per flagged identity:
 * its rate per bucket (api calls + tool calls), a baseline (the trailing mean
 * of the previous BASELINE_N buckets, dashed), each burst as a shaded span
 * coloured by class, and each verdict as a mark at its decided_at. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../detectors/verdict.h"
#include "report.h"

#define MAX_TIMELINES 100
#define BASELINE_N 10
#define W 900.0
#define H 120.0

bg_err bg_report_html(const bg_report_in *in, const bg_rp_burst *b, size_t nb, FILE *f);

static void esc(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static const char *colour(int cls) {
    return cls == BG_CLASS_ANOMALOUS ? "#d62728" : cls == BG_CLASS_UNEXPECTED ? "#ff7f0e" : "#2ca02c";
}

static const bg_rp_series *series_of(const bg_report_in *in, const char *identity) {
    for (size_t i = 0; i < in->n_series; i++)
        if (!strcmp(in->series[i].identity, identity))
            return &in->series[i];
    return NULL;
}

static double xpos(const bg_report_in *in, int64_t t) {
    double span = (double)(in->to - in->from);
    if (span <= 0)
        span = 1;
    double x = (double)(t - in->from) / span * W;
    return x < 0 ? 0 : x > W ? W : x;
}

static void timeline(FILE *f, const bg_report_in *in, const char *identity, const bg_rp_burst *b,
                     size_t nb) {
    const bg_rp_series *s = series_of(in, identity);
    double max = 1;
    if (s)
        for (size_t i = 0; i < s->n; i++)
            if (s->rate[i] > max)
                max = s->rate[i];
    fprintf(f, "<h3>");
    esc(f, identity);
    fprintf(f, "</h3>\n<svg width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n", W,
            H + 14, W, H + 14);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#fafafa\" "
               "stroke=\"#ccc\"/>\n",
            W, H);
    for (size_t i = 0; i < nb; i++) {
        if (strcmp(b[i].identity, identity))
            continue;
        double x0 = xpos(in, b[i].onset), x1 = xpos(in, b[i].end);
        fprintf(f, "<rect x=\"%.1f\" y=\"0\" width=\"%.1f\" height=\"%.0f\" fill=\"%s\" "
                   "fill-opacity=\"0.18\"><title>%s %s</title></rect>\n",
                x0, x1 - x0 < 1 ? 1 : x1 - x0, H, colour(b[i].cls),
                b[i].cls >= 0 ? bg_class_name((bg_class)b[i].cls) : "?", b[i].reasons);
    }
    if (s && s->n) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.2\" points=\"");
        for (size_t i = 0; i < s->n; i++) {
            int64_t t = s->t0 + (int64_t)i * s->bucket_ms;
            fprintf(f, "%.1f,%.1f ", xpos(in, t), H - s->rate[i] / max * (H - 6));
        }
        fprintf(f, "\"/>\n<polyline fill=\"none\" stroke=\"#555\" stroke-dasharray=\"4 3\" "
                   "points=\"");
        for (size_t i = 0; i < s->n; i++) {
            double sum = 0;
            size_t k = 0;
            for (size_t j = i > BASELINE_N ? i - BASELINE_N : 0; j < i; j++, k++)
                sum += s->rate[j];
            double m = k ? sum / (double)k : s->rate[i];
            int64_t t = s->t0 + (int64_t)i * s->bucket_ms;
            fprintf(f, "%.1f,%.1f ", xpos(in, t), H - m / max * (H - 6));
        }
        fprintf(f, "\"/>\n");
    }
    for (size_t i = 0; i < in->set->n_v; i++) {
        const bg_rp_verdict *v = &in->set->v[i];
        if (strcmp(v->identity, identity))
            continue;
        char t[40];
        bg_time_iso(v->decided_at, t, sizeof t);
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.0f\" r=\"4\" fill=\"%s\"><title>%s %s/%s %s at "
                   "%s</title></circle>\n",
                xpos(in, v->decided_at), H + 7, colour(v->cls),
                bg_phase_name((bg_phase)v->phase), bg_class_name((bg_class)v->cls),
                bg_action_name((bg_action)v->action), v->verdict_id, t);
    }
    fprintf(f, "<text x=\"4\" y=\"12\" font-size=\"10\" fill=\"#333\">max %.0f per %" PRId64
               " s bucket</text>\n</svg>\n",
            max, s ? s->bucket_ms / 1000 : 0);
}

bg_err bg_report_html(const bg_report_in *in, const bg_rp_burst *b, size_t nb, FILE *f) {
    char t0[40], t1[40];
    bg_time_iso(in->from, t0, sizeof t0);
    bg_time_iso(in->to, t1, sizeof t1);
    fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>burstguard "
               "backtest</title>\n<style>body{font-family:sans-serif;margin:2em}"
               "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}"
               "h3{font-size:13px;margin:14px 0 2px;font-family:monospace}</style></head><body>\n");
    fprintf(f, "<h1>burstguard backtest</h1>\n<p>event time %s .. %s, policy %s; usage %" PRIu64
               ", secrets %" PRIu64 ", tool calls %" PRIu64 "; %zu verdicts, %zu revocation "
               "commands, %zu bursts.</p>\n",
            t0, t1, in->policy_version ? in->policy_version : "-", in->events[0], in->events[1],
            in->events[2], in->set->n_v, in->set->n_r, nb);
    fprintf(f, "<p>Legend: blue = rate per bucket, dashed = trailing mean of the previous %d "
               "buckets; spans and marks: <span style=\"color:%s\">PLANNED</span>, "
               "<span style=\"color:%s\">UNEXPECTED</span>, <span "
               "style=\"color:%s\">ANOMALOUS</span> (hover for details).</p>\n",
            BASELINE_N, colour(0), colour(1), colour(2));
    fprintf(f, "<table><tr><th>identity</th><th>onset</th><th>class</th><th>action</th>"
               "<th>reasons</th></tr>\n");
    for (size_t i = 0; i < nb; i++) {
        char t[40];
        bg_time_iso(b[i].onset, t, sizeof t);
        fprintf(f, "<tr><td>");
        esc(f, b[i].identity);
        fprintf(f, "</td><td>%s</td><td style=\"color:%s\">%s</td><td>%s</td><td>", t,
                colour(b[i].cls), b[i].cls >= 0 ? bg_class_name((bg_class)b[i].cls) : "?",
                b[i].action >= 0 ? bg_action_name((bg_action)b[i].action) : "?");
        esc(f, b[i].reasons);
        fprintf(f, "</td></tr>\n");
    }
    fprintf(f, "</table>\n<h2>Timelines</h2>\n");
    size_t shown = 0;
    for (size_t i = 0; i < nb && shown < MAX_TIMELINES; i++) {
        if (i && !strcmp(b[i].identity, b[i - 1].identity))
            continue;
        timeline(f, in, b[i].identity, b, nb);
        shown++;
    }
    if (shown == MAX_TIMELINES)
        fprintf(f, "<p>(first %d flagged identities shown)</p>\n", MAX_TIMELINES);
    fprintf(f, "</body></html>\n");
    return ferror(f) ? BG_ERR_IO : BG_OK;
}
