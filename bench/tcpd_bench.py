#!/usr/bin/python3
"""Detection quality of `burstguard series` on the TCPD change-point dataset.

For each of the 25 univariate TCPD series without missing values (all files in
the data folder except run_log, quality_control_1..5 and uk_coal_employ) this
writes a `timestamp,value` CSV (timestamps = the series' 0-based index, as
integer seconds), runs `burstguard series` on it with its default
configuration, takes the rows with changepoint=1 as the predicted change
points, and scores them against the five annotators of annotations.json:

  F1     with a 5-point margin; index 0 is a change point of every annotator
         and of the prediction; precision against the union of the
         annotators, recall averaged over annotators; F = 2PR / (P + R)
  cover  segmentation covering (Arbelaez et al. 2010, eq. 8) of each
         annotator's segmentation by the predicted one, averaged over
         annotators

as defined by the TCPDBench paper (van den Burg & Williams, arXiv:2003.06222)
and its analysis code. Prints a table per series, the means, the published
default-parameter results on the same 25 series, and a checksum of the
predictions.

With --heldout it also measures how much of that figure is fitted: the
preset's three main parameters (hazard_len, noise_mult, slope_var) are
chosen from a small grid of round values (HELDOUT_GRID) on part of the series
and scored on the rest, two ways:

  split  choose on the odd-indexed series (in name order), score the
         even-indexed ones, and vice versa; the 25 held-out scores averaged
  loo    leave one out: for each series, choose on the other 24, score it

The choice maximises the mean of F1 and cover on the tuning part. The grid
holds the defaults, so a held-out figure close to the all-25 one means the
defaults are not picked for these particular series (the grid itself, and
the other parameters, were still chosen by looking at all 25).

Usage (from the repository root):
  /usr/bin/python3 bench/tcpd_bench.py [--bin build/burstguard]
      [--data ../shared/data/tcpd] [--preset series|engine] [--sensitivity X]
      [--heldout]

Standard library only.
"""

import argparse
import hashlib
import itertools
import json
import os
import subprocess
import sys
import tempfile

EXCLUDED = {"run_log", "uk_coal_employ"} | {"quality_control_%d" % i for i in range(1, 6)}
MARGIN = 5

# Published default-parameter results on these 25 series (TCPDBench paper,
# Table "Default", univariate series without missing values).
PUBLISHED = [
    ("binseg", 0.690, 0.655),
    ("pelt", 0.684, 0.656),
    ("amoc", None, 0.657),
    ("bocpd", 0.657, 0.591),
    ("zero", 0.647, 0.557),
]
ORACLE = (0.886, 0.783)  # best oracle-tuned F1 / cover, over the full set

# --heldout: the grid the series preset's parameters are chosen from (the
# defaults are hazard_len 10000, noise_mult 2, slope_var 0.001)
HELDOUT_GRID = {
    "hazard_len": [1000, 3000, 10000, 30000],
    "noise_mult": [1.5, 2, 3],
    "slope_var": [0.0003, 0.001, 0.003],
}


# ---- metrics ---------------------------------------------------------------

def true_positives(truth, pred, margin=MARGIN):
    """Truth points matched to a distinct prediction within the margin;
    each truth point takes its closest still-unused prediction, truth points
    visited in ascending order."""
    left = set(pred)
    tp = set()
    for tau in sorted(truth):
        best = None
        for x in left:
            d = abs(tau - x)
            if d <= margin and (best is None or (d, x) < best):
                best = (d, x)
        if best is not None:
            tp.add(tau)
            left.remove(best[1])
    return tp


def f1_score(annotations, pred, margin=MARGIN):
    sets = [set(a) | {0} for a in annotations.values()]
    x = set(pred) | {0}
    union = set().union(*sets)
    precision = len(true_positives(union, x, margin)) / len(x)
    recall = sum(len(true_positives(s, x, margin)) / len(s) for s in sets) / len(sets)
    if precision + recall == 0:
        return 0.0, precision, recall
    return 2 * precision * recall / (precision + recall), precision, recall


def segments(cps, n):
    """Partition of range(n) into [start, end) runs cut at the change points."""
    cuts = sorted({c for c in cps if 0 < c < n})
    bounds = [0] + cuts + [n]
    return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def covering_single(pred_segs, true_segs, n):
    total = 0.0
    for a, b in true_segs:
        best = 0.0
        for c, d in pred_segs:
            inter = max(0, min(b, d) - max(a, c))
            if inter:
                union = (b - a) + (d - c) - inter
                best = max(best, inter / union)
        total += (b - a) * best
    return total / n


def cover_score(annotations, pred, n):
    ps = segments(pred, n)
    vals = [covering_single(ps, segments(a, n), n) for a in annotations.values()]
    return sum(vals) / len(vals)


def self_check():
    """The doctest values of the reference implementation."""
    def close(a, b):
        return abs(a - b) < 1e-12
    assert true_positives({1, 10, 20, 23}, {3, 8, 20}) == {1, 10, 20}
    assert true_positives({1, 10, 20, 23}, {1, 3, 5, 8, 20}) == {1, 10, 20}
    assert close(f1_score({1: [10, 20], 2: [11, 20], 3: [10], 4: [0, 5]}, [10, 20])[0], 1.0)
    assert close(f1_score({1: [], 2: [10], 3: [50]}, [10])[0], 0.9090909090909091)
    assert close(f1_score({1: [], 2: [10], 3: [50]}, [])[0], 0.8)
    assert close(cover_score({1: [10, 20], 2: [10], 3: [0, 5]}, [10, 20], 45),
                 0.7962962962962963)
    assert close(cover_score({1: [], 2: [10], 3: [40]}, [10], 45), 0.7954144620811286)
    assert close(cover_score({1: [], 2: [10], 3: [40]}, [], 45), 0.8189300411522634)


# ---- running burstguard ------------------------------------------------------

def load_series(path):
    with open(path) as f:
        d = json.load(f)
    if d.get("n_dim", 1) != 1 or len(d["series"]) != 1:
        raise ValueError("%s: not univariate" % path)
    vals = d["series"][0]["raw"]
    if any(v is None for v in vals):
        raise ValueError("%s: has missing values" % path)
    return d["name"], [float(v) for v in vals]


def run_series(binary, values, workdir, name, sensitivity, preset=None, params=None):
    src = os.path.join(workdir, name + ".csv")
    if not os.path.exists(src):
        with open(src, "w") as f:
            f.write("timestamp,value\n")
            for i, v in enumerate(values):
                f.write("%d,%r\n" % (i, v))
    cmd = [binary, "series", "--in", src]
    if preset is not None:
        cmd += ["--preset", preset]
    for k, v in sorted((params or {}).items()):
        cmd += ["--param", "%s=%s" % (k, v)]
    if sensitivity is not None:
        cmd += ["--sensitivity", str(sensitivity)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError("%s: %s exited %d: %s" % (name, binary, res.returncode,
                                                     res.stderr.strip()))
    lines = res.stdout.splitlines()
    if lines[0] != "timestamp,value,anomaly_score,changepoint" or len(lines) != len(values) + 1:
        raise RuntimeError("%s: unexpected output shape" % name)
    pred = []
    for i, line in enumerate(lines[1:]):
        cols = line.split(",")
        score = float(cols[2])
        if not 0.0 <= score <= 1.0:
            raise RuntimeError("%s: score out of [0,1] on row %d" % (name, i))
        if cols[3] == "1":
            pred.append(i)
    return pred


def heldout(binary, names, series, annotations, workdir):
    """Held-out figures for the series preset: (split F1, split cover, loo F1,
    loo cover, the configurations chosen)."""
    keys = sorted(HELDOUT_GRID)
    configs = [dict(zip(keys, vals)) for vals in
               itertools.product(*(HELDOUT_GRID[k] for k in keys))]
    # per configuration, per series: (F1, cover)
    table = []
    for cfg in configs:
        row = {}
        for name in names:
            values = series[name]
            pred = run_series(binary, values, workdir, name, None, "series", cfg)
            row[name] = (f1_score(annotations[name], pred)[0],
                         cover_score(annotations[name], pred, len(values)))
        table.append(row)

    def best(tune):
        def obj(i):
            return sum(table[i][n][0] + table[i][n][1] for n in tune) / (2 * len(tune))
        return max(range(len(configs)), key=lambda i: (obj(i), -i))

    odd, even = names[1::2], names[0::2]
    split = {}
    chosen = []
    for tune, test in ((odd, even), (even, odd)):
        i = best(tune)
        chosen.append(configs[i])
        for n in test:
            split[n] = table[i][n]
    loo = {}
    for n in names:
        i = best([m for m in names if m != n])
        loo[n] = table[i][n]

    def mean(d, j):
        return sum(v[j] for v in d.values()) / len(d)
    return mean(split, 0), mean(split, 1), mean(loo, 0), mean(loo, 1), chosen


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(root, "build", "burstguard"))
    ap.add_argument("--data", default=os.path.join(root, "..", "shared", "data", "tcpd"))
    ap.add_argument("--sensitivity", type=float, default=None,
                    help="passed to burstguard series (default: its own default, 1)")
    ap.add_argument("--preset", choices=["series", "engine"], default=None,
                    help="passed to burstguard series (default: its own default, series)")
    ap.add_argument("--heldout", action="store_true",
                    help="also choose the series preset's parameters on part of the series "
                         "and score the rest (split halves and leave-one-out)")
    args = ap.parse_args()
    self_check()

    with open(os.path.join(args.data, "annotations.json")) as f:
        annotations = json.load(f)
    names = sorted(fn[:-5] for fn in os.listdir(args.data)
                   if fn.endswith(".json") and fn != "annotations.json"
                   and fn[:-5] not in EXCLUDED)
    if len(names) != 25:
        print("warning: %d series found, the published comparison is over 25" % len(names),
              file=sys.stderr)

    rows = []
    digest = hashlib.sha256()
    series = {}
    held = None
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            sname, values = load_series(os.path.join(args.data, name + ".json"))
            series[name] = values
            pred = run_series(args.bin, values, tmp, name, args.sensitivity, args.preset)
            ann = annotations[name]
            f1, p, r = f1_score(ann, pred)
            cov = cover_score(ann, pred, len(values))
            digest.update(("%s:%s;" % (name, ",".join(map(str, pred)))).encode())
            rows.append((name, len(values), pred, f1, p, r, cov))
        if args.heldout:
            held = heldout(args.bin, names, series, annotations, tmp)

    print("%-20s %5s %4s %6s %6s %6s %6s  %s" % ("series", "n", "#cp", "F1", "P", "R", "cover",
                                               "predicted change points"))
    for name, n, pred, f1, p, r, cov in rows:
        shown = ",".join(map(str, pred[:12])) + (",..." if len(pred) > 12 else "")
        print("%-20s %5d %4d %6.3f %6.3f %6.3f %6.3f  %s" % (name, n, len(pred), f1, p, r, cov,
                                                             shown))
    mf1 = sum(r[3] for r in rows) / len(rows)
    mcov = sum(r[6] for r in rows) / len(rows)
    print("%-20s %5s %4s %6.3f %6s %6s %6.3f" % ("mean (%d series)" % len(rows), "", "", mf1,
                                                  "", "", mcov))
    print()
    label = "burstguard series%s (online)" % (" --preset " + args.preset if args.preset else "")
    print("%-34s %6s %6s" % ("method (default parameters)", "F1", "cover"))
    print("%-34s %6.3f %6.3f" % (label, mf1, mcov))
    if held:
        print("%-34s %6.3f %6.3f" % ("  held out, odd/even split", held[0], held[1]))
        print("%-34s %6.3f %6.3f" % ("  held out, leave-one-out", held[2], held[3]))
    for m, f, c in PUBLISHED:
        print("%-34s %6s %6s" % (m + " (published)", "%.3f" % f if f is not None else "-",
                                 "%.3f" % c if c is not None else "-"))
    print("%-34s %6.3f %6.3f" % ("best oracle-tuned (published)", ORACLE[0], ORACLE[1]))
    best_f1 = max(f for _, f, _ in PUBLISHED if f is not None)
    best_cov = max(c for _, _, c in PUBLISHED if c is not None)
    print()
    print("beats every published default on F1: %s (%.3f vs %.3f); on cover: %s (%.3f vs %.3f)"
          % ("yes" if mf1 > best_f1 else "no", mf1, best_f1,
             "yes" if mcov > best_cov else "no", mcov, best_cov))
    if held:
        print("held out: chosen on the odd-indexed series %s, on the even-indexed %s"
              % (held[4][0], held[4][1]))
    print("checksum of predictions: %s" % digest.hexdigest()[:16])


if __name__ == "__main__":
    main()
