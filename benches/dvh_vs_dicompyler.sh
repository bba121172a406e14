#!/usr/bin/env bash
# DVH benchmark: rtnode against dicompyler-core 0.5.6, side by side in one run.
#
#   bash benches/dvh_vs_dicompyler.sh            # RUNS=3 ACCURATE_RUNS=1 by default
#
# 1. Speed: every ROI of dicompyler-core's own breast case
#    (fixtures/dicompyler), wall time (median of RUNS) and peak RSS of the
#    whole process, file reading included, for rtnode and for
#    dicompyler-core's default mode and accurate mode (in-plane
#    supersampling to 0.5 mm within the structure extents).
# 2. Accuracy: the same three on `rtnode synth --rt` (spheres, a cylinder
#    and a cone in a linear z gradient, with closed-form DVH values, see
#    src/synth/rt.rs), errors against the analytic values.
#
# Needs python3 with venv and network access for pip the first time
# (dicompyler-core 0.5.6 needs pydicom < 3; scikit-image for its
# interpolation). The venv lives in target/dvh-bench-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-3}
ACCURATE_RUNS=${ACCURATE_RUNS:-1}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=${DVH_BENCH_VENV:-$TARGET/dvh-bench-venv}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "dicompyler-core==0.5.6" "pydicom<3" scikit-image
fi
PY="$VENV/bin/python"
cargo build --release --locked --bin rtnode >/dev/null 2>&1 || cargo build --release --bin rtnode
BIN="$TARGET/release/rtnode"

. benches/timed.sh

F=fixtures/dicompyler
echo "## speed: dicompyler-core breast case, all ROIs ($(nproc) CPUs, $(uname -m))"
timed "rtnode dvh" "$RUNS" "$BIN" dvh --rtstruct $F/rtss.dcm --rtdose $F/rtdose.dcm --rtplan $F/rtplan.dcm --out "$WORK/rtnode"
timed "rtnode dvh (1 thread)" "$RUNS" env RAYON_NUM_THREADS=1 "$BIN" dvh --rtstruct $F/rtss.dcm --rtdose $F/rtdose.dcm --rtplan $F/rtplan.dcm
timed "dicompyler-core 0.5.6 default" "$RUNS" "$PY" benches/dvh_vs_dicompyler.py default $F/rtss.dcm $F/rtdose.dcm "$WORK/dc_default.json"
timed "dicompyler-core 0.5.6 accurate" "$ACCURATE_RUNS" "$PY" benches/dvh_vs_dicompyler.py accurate $F/rtss.dcm $F/rtdose.dcm "$WORK/dc_accurate.json"

echo
echo "## accuracy: rtnode synth --rt (analytic DVH), error against exact values"
"$BIN" synth --out "$WORK/synth" --slices 64 --rows 256 --rt >/dev/null
S=$WORK/synth
"$BIN" dvh --rtstruct $S/RS.dcm --rtdose $S/RD.dcm --rtplan $S/RP.dcm --json >"$WORK/synth_rtnode.json"
"$PY" benches/dvh_vs_dicompyler.py default $S/RS.dcm $S/RD.dcm "$WORK/synth_default.json"
"$PY" benches/dvh_vs_dicompyler.py accurate $S/RS.dcm $S/RD.dcm "$WORK/synth_accurate.json"
"$PY" - "$WORK" <<'PYEOF'
import json, math, sys
w = sys.argv[1]
# src/synth/rt.rs: D(z) = 50 + 0.2 (z - zc) Gy; r = 20 mm; every shape
# centred on zc along z, ending on slab boundaries.
r, g, rx = 20.0, 0.2, 50.0
exact = {
    "PTV": {"volume_cc": 4 / 3 * math.pi * r**3 / 1000, "Dmin": rx - g * r, "Dmean": rx, "Dmax": rx + g * r, "D50": rx},
    "Sphere_small": {"volume_cc": 4 / 3 * math.pi * (r / 2) ** 3 / 1000, "Dmin": rx - g * r / 2, "Dmean": rx, "Dmax": rx + g * r / 2},
    "Cylinder": {"volume_cc": math.pi * 15**2 * 2 * r / 1000, "Dmean": rx, "D95": rx - g * r + 0.05 * 2 * g * r, "D5": rx + g * r - 0.05 * 2 * g * r},
    "Cone": {"volume_cc": math.pi * r**2 * 2 * r / 3 / 1000, "Dmean": rx - g * r / 2, "Dmax": rx + g * r},
}
tools = {
    "rtnode": json.load(open(f"{w}/synth_rtnode.json")),
    "dicompyler default": json.load(open(f"{w}/synth_default.json")),
    "dicompyler accurate": json.load(open(f"{w}/synth_accurate.json")),
}
print(f"{'ROI':13} {'metric':10} {'exact':>9} " + " ".join(f"{t:>21}" for t in tools))
worst = {t: (0.0, 0.0) for t in tools}
for roi, metrics in exact.items():
    for m, e in metrics.items():
        cells = []
        for t, res in tools.items():
            v = res.get(roi, {}).get(m)
            if v is None:
                cells.append(f"{'-':>21}")
                continue
            if m == "volume_cc":
                err = 100 * (v / e - 1)
                cells.append(f"{v:9.3f} ({err:+6.2f} %)")
                worst[t] = (max(worst[t][0], abs(err)), worst[t][1])
            else:
                err = v - e
                cells.append(f"{v:9.3f} ({err:+6.3f} Gy)")
                worst[t] = (worst[t][0], max(worst[t][1], abs(err)))
        print(f"{roi:13} {m:10} {e:9.3f} " + " ".join(cells))
print()
for t, (v, d) in worst.items():
    print(f"{t:21} worst volume error {v:5.2f} %, worst dose error {d:5.3f} Gy")
PYEOF
