"""Compares rtnode's radiomics.json with pyradiomics' output feature by feature.

usage: radiomics_compare.py RTNODE_JSON PYRADIOMICS_JSON [REL_TOL]

Prints the number of values compared, the worst relative difference, and
every value outside REL_TOL (default 1e-4; values within 1e-9 of zero are
compared absolutely). Exit status 1 when any value differs or is missing.
"""
import json
import math
import sys

ours = json.load(open(sys.argv[1]))
theirs = json.load(open(sys.argv[2]))
tol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-4
compared, bad, worst = 0, [], (0.0, "")
for roi, feats in sorted(theirs.items()):
    # rtnode names the mask files after the ROI with unsafe characters as _
    mine = next((v for k, v in ours.items() if "".join(c if c.isalnum() or c in "-_" else "_" for c in k) == roi), None)
    if mine is None:
        bad.append(f"{roi}: not in rtnode's output")
        continue
    mf = mine.get("features", mine)
    for name, want in sorted(feats.items()):
        got = mf.get(name)
        if got is None:
            bad.append(f"{roi} {name}: missing in rtnode")
            continue
        compared += 1
        if math.isnan(want) or math.isnan(got):
            if not (math.isnan(want) and math.isnan(got)):
                bad.append(f"{roi} {name}: rtnode {got} pyradiomics {want}")
            continue
        d = abs(got - want) if abs(want) <= 1e-9 else abs(got - want) / abs(want)
        if d > worst[0]:
            worst = (d, f"{roi} {name}")
        if d > (1e-9 if abs(want) <= 1e-9 else tol):
            bad.append(f"{roi} {name}: rtnode {got} pyradiomics {want} (rel {d:.2e})")
print(f"{compared} values compared, {len(bad)} outside {tol:g}; worst {worst[0]:.2e} ({worst[1]})")
for b in bad[:40]:
    print("  " + b)
sys.exit(1 if bad else 0)
