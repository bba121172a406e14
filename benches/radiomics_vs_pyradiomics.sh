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
