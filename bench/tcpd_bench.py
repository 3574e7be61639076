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

Usage (from the repository root):
  /usr/bin/python3 bench/tcpd_bench.py [--bin build/burstguard]
      [--data ../shared/data/tcpd] [--sensitivity X]

Standard library only.
"""

import argparse
import hashlib
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


def run_series(binary, values, workdir, name, sensitivity):
    src = os.path.join(workdir, name + ".csv")
    with open(src, "w") as f:
        f.write("timestamp,value\n")
        for i, v in enumerate(values):
            f.write("%d,%r\n" % (i, v))
    cmd = [binary, "series", "--in", src]
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


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(root, "build", "burstguard"))
    ap.add_argument("--data", default=os.path.join(root, "..", "shared", "data", "tcpd"))
    ap.add_argument("--sensitivity", type=float, default=None,
                    help="passed to burstguard series (default: its own default, 1)")
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
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            sname, values = load_series(os.path.join(args.data, name + ".json"))
            pred = run_series(args.bin, values, tmp, name, args.sensitivity)
            ann = annotations[name]
            f1, p, r = f1_score(ann, pred)
            cov = cover_score(ann, pred, len(values))
            digest.update(("%s:%s;" % (name, ",".join(map(str, pred)))).encode())
            rows.append((name, len(values), pred, f1, p, r, cov))

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
    print("%-34s %6s %6s" % ("method (default parameters)", "F1", "cover"))
    print("%-34s %6.3f %6.3f" % ("burstguard series (online)", mf1, mcov))
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
    print("checksum of predictions: %s" % digest.hexdigest()[:16])


if __name__ == "__main__":
    main()
