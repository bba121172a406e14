#!/usr/bin/env bash
# End-to-end segmentation on a GPU: a TotalSegmentator-sized 3-D U-Net
# (benches/totalseg_unet.py: nnU-Net 3d_fullres shape, 31 M parameters,
# 128^3 patches at 1.5 mm, random weights) on a synthetic 512x512x200 CT,
# through `rtnode process` (organize, the body contour plus the model in
# the segmentation stage, QC, DVH), then the same number of patches through
# Python torch for the network's own time.
#
#   RTNODE=target/release/rtnode PYTHON=python3 bash benches/segmentation_gpu.sh
#
# RTNODE: a build with `--features torch`; PYTHON: a Python with torch (the
# one whose libtorch the binary loads). DEVICE [auto], CLASSES [25],
# ROWS [512], SLICES [200], BATCH [2].
set -euo pipefail
cd "$(dirname "$0")/.."
RTNODE=${RTNODE:-target/release/rtnode}
PYTHON=${PYTHON:-python3}
CLASSES=${CLASSES:-25}
ROWS=${ROWS:-512}
SLICES=${SLICES:-200}
BATCH=${BATCH:-2}
work=$(mktemp -d "${TMPDIR:-/tmp}/rtnode-gpu-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$PYTHON" benches/totalseg_unet.py make "$work/unet.pt" "$CLASSES"
"$RTNODE" synth --out "$work/ct" --rows "$ROWS" --slices "$SLICES" >/dev/null
labels=$(for c in $(seq 1 $((CLASSES - 1))); do
  printf '        - {value: %d, name: Organ_%02d, colour: [%d, 120, 200]}\n' "$c" "$c" "$((c * 9 % 256))"
done)
echo "peers: []" >"$work/ae-titles.yaml"
cat >"$work/rtnode.yaml" <<YAML
node:
  data_dir: data
  peers_file: ae-titles.yaml
pipeline:
  trigger: ct
segmentation:
  models:
    - name: TotalSegmentator-size U-Net
      version: random-weights
      file: unet.pt
      spacing_mm: [1.5, 1.5, 1.5]
      orientation: RAS
      intensity: {clip_hu: [-1024, 1500], mean: 60.0, std: 300.0}
      patch_size: [128, 128, 128]
      overlap: 0.5
      batch_size: $BATCH
      device: ${DEVICE:-auto}
      labels:
$labels
YAML
"$RTNODE" doctor --config "$work/rtnode.yaml" 2>/dev/null | grep -Ei "libtorch|cuda|model" || true
start=$(date +%s.%N)
"$RTNODE" process "$work/ct" --out "$work/out" --config "$work/rtnode.yaml"
end=$(date +%s.%N)
echo "rtnode process, whole command: $(awk "BEGIN {printf \"%.1f\", $end - $start}") s"
manifest=$(find "$work/out/courses" -name manifest.json | head -1)
"$PYTHON" - "$manifest" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
for name, st in m["stages"].items():
    print(f"stage {name}: {st.get('state')} {st.get('duration_ms')} ms")
seg = m["stages"]["segmentation"]["summary"]
print("segmentation phases (ms):", json.dumps(seg["timings_ms"]))
for run in seg["segmenters"]:
    print("segmenter:", run["name"], json.dumps(run["run"]))
print("rois:", len(seg["rois"]), "points:", sum(r["points"] for r in seg["rois"]))
model = seg["segmenters"][-1]["run"]
open(sys.argv[1] + ".patches", "w").write(str(model["patches"]))
PY
"$PYTHON" benches/totalseg_unet.py forward "$work/unet.pt" "$(cat "$manifest.patches")" "$BATCH" cuda
