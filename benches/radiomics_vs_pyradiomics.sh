#!/usr/bin/env bash
# Radiomics benchmark: rtnode against pyradiomics 3.1.0, side by side in one
# run, on the same voxels with the same parameter file.
#
#   PYRADIOMICS_PYTHON=/path/to/venv/bin/python bash benches/radiomics_vs_pyradiomics.sh [PARAMS]
#
# The course: `rtnode synth --rt --noise-hu 20` (512 x 512 x SLICES CT, with
# reproducible noise so that every ROI has texture; a PTV, a small
# sphere, a cylinder and a cone; the body is skipped by name as in the
# stage). rtnode computes every ROI through its worker processes and writes
# the CT and each ROI's voxel mask as NRRD (--masks-out); pyradiomics then
# reads exactly those files, in a process pool of the same size. Reported:
# wall time and peak RSS of each whole run (median of RUNS), then every
# feature value compared (1e-4 relative).
#
# Then the one-ROI case (issue 12; ONE_ROI=0 skips it, FOUR_ROIS=0 skips the
# four-ROI case): pyradiomics' own
# lung2 case (fixtures/pyradiomics/lung2_image.nrrd, lung2_label.nrrd: one
# lung tumour, 512 x 512 x 61) with fixtures/pyradiomics/lung2CT.yaml,
# `rtnode radiomics --image --mask --params` against pyradiomics'
# `RadiomicsFeatureExtractor.execute` on the same two files in one process
# (as its command line runs one case), ONE_RUNS times each, interleaved
# (rtnode, pyradiomics, rtnode, ...) so that both see the same load; the
# median wall time of each and their ratio, then every value compared.
#
# pyradiomics 3.1.0 has no wheel and its source package is broken on PyPI;
# BENCHMARKS.md says how its venv was made. PARAMS defaults to the
# predecessor's CT parameter file (fixtures/pyradiomics/exampleCT.yaml:
# resampling to 1 mm, Original, LoG sigma 1-5 mm, Wavelet).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PARAMS=${1:-fixtures/pyradiomics/exampleCT.yaml}
RUNS=${RUNS:-1}
SLICES=${SLICES:-100}
PROCS=${PROCS:-$(nproc)}
PY=${PYRADIOMICS_PYTHON:?set PYRADIOMICS_PYTHON to a python with pyradiomics 3.1.0}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cargo build --release --locked --bin rtnode >/dev/null 2>&1 || cargo build --release --bin rtnode
BIN="$TARGET/release/rtnode"

. benches/timed.sh

if [ "${FOUR_ROIS:-1}" != 0 ]; then
"$BIN" synth --out "$WORK/ct" --slices "$SLICES" --rows 512 --rt --noise-hu "${NOISE_HU:-20}" >/dev/null
"$BIN" radiomics --ct "$WORK/ct" --rtstruct "$WORK/ct/RS.dcm" --params "$PARAMS" \
    --masks-out "$WORK/masks" --out "$WORK/warm" --workers "$PROCS" >/dev/null
echo "## $(basename "$PARAMS"): $(ls "$WORK/masks" | grep -c '^mask-') ROIs of a 512x512x$SLICES CT, $PROCS processes each ($(nproc) CPUs)"
timed "rtnode radiomics" "$RUNS" "$BIN" radiomics --ct "$WORK/ct" --rtstruct "$WORK/ct/RS.dcm" \
    --params "$PARAMS" --out "$WORK/rtnode" --workers "$PROCS"
timed "pyradiomics 3.1.0 (process pool)" "$RUNS" "$PY" benches/radiomics_pyradiomics.py \
    "$PARAMS" "$WORK/masks" "$WORK/pyradiomics.json" "$PROCS"
echo
echo "## agreement"
"$PY" benches/radiomics_compare.py "$WORK/rtnode/radiomics.json" "$WORK/pyradiomics.json"
echo
fi

[ "${ONE_ROI:-1}" = 0 ] && exit 0
ONE_RUNS=${ONE_RUNS:-5}
ONE_PARAMS=fixtures/pyradiomics/lung2CT.yaml
IMG=fixtures/pyradiomics/lung2_image.nrrd
MASK=fixtures/pyradiomics/lung2_label.nrrd
mkdir -p "$WORK/one"
ln -sf "$ROOT/$IMG" "$WORK/one/image.nrrd"
ln -sf "$ROOT/$MASK" "$WORK/one/mask-label_1.nrrd"
echo "## one ROI: lung2 with $(basename "$ONE_PARAMS"), $ONE_RUNS interleaved runs each ($(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"
"$BIN" radiomics --image "$IMG" --mask "$MASK" --params "$ONE_PARAMS" --out "$WORK/one-warm" >/dev/null
rt=() py=()
for _ in $(seq "$ONE_RUNS"); do
    /usr/bin/time -f "%e %M" -o "$WORK/time" "$BIN" radiomics --image "$IMG" --mask "$MASK" \
        --params "$ONE_PARAMS" --out "$WORK/one-rtnode" >/dev/null
    read -r w m <"$WORK/time"; rt+=("$w"); rt_rss=$m
    /usr/bin/time -f "%e %M" -o "$WORK/time" "$PY" benches/radiomics_pyradiomics.py \
        "$ONE_PARAMS" "$WORK/one" "$WORK/one-pyradiomics.json" 1 >/dev/null
    read -r w m <"$WORK/time"; py+=("$w"); py_rss=$m
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
rt_med=$(median "${rt[@]}") py_med=$(median "${py[@]}")
printf '%-40s %8.2f s %8.0f MiB   (runs: %s)\n' "rtnode radiomics --image --mask" "$rt_med" "$((rt_rss / 1024))" "${rt[*]}"
printf '%-40s %8.2f s %8.0f MiB   (runs: %s)\n' "pyradiomics 3.1.0 (one process)" "$py_med" "$((py_rss / 1024))" "${py[*]}"
awk -v a="$py_med" -v b="$rt_med" 'BEGIN { printf "rtnode is %.1fx faster\n", a / b }'
echo
echo "## agreement (one ROI)"
"$PY" benches/radiomics_compare.py "$WORK/one-rtnode/radiomics.json" "$WORK/one-pyradiomics.json"
