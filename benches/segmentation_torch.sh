#!/usr/bin/env bash
# The same TorchScript model run by Python torch and by rtnode on the same CT,
# in one run:
#
#   bash benches/segmentation_torch.sh
#
# 1. makes a small 3-D U-Net (two levels, 16/32 channels, CLASSES outputs,
#    random weights) with Python torch and saves it as TorchScript;
# 2. rtnode (release, feature `torch`) segments a synthetic CT of
#    ROWS x ROWS x SLICES through the segmentation stage, cold (a fresh
#    process, the first course), then the same volume again with the model
#    warm;
# 3. Python torch runs the same sliding window (same patches, batch,
#    Gaussian weights, argmax) on organize's volume.nrrd, cold then warm,
#    with the same number of threads, and compares its labels with rtnode's.
#
# The machine's other load drifts, so the two sides run as PAIRS adjacent
# pairs of processes (order alternating rtnode/Python, Python/rtnode, ...),
# each timing one cold pass and REPEAT warm passes; the ratio of a pair is
# that of the two sides' median warm passes, and the median ratio over the
# pairs is reported with its min-max spread.
#
# Printed: the forward passes' time and ratio (rtnode's overhead on the
# network itself: tensors in and out through tch), the whole sliding
# window's (patch extraction, forward, Gaussian aggregation), whether the
# labels agree voxel for voxel, and the whole stage's time per slice.
#
# Needs a full torch install (`bash tests/setup-torch.sh`, which also gives
# the Python torch); the build uses it through LIBTORCH.
#
# Environment knobs (defaults in brackets):
#   ROWS [256]  SLICES [32]  PATCH [32,96,96]  BATCH [2]  CLASSES [5]
#   PAIRS [4]  REPEAT [3]
#   RTNODE_TORCH_VENV  the torch venv [.venv-torch]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-256}
SLICES=${SLICES:-32}
PATCH=${PATCH:-32,96,96}
BATCH=${BATCH:-2}
CLASSES=${CLASSES:-5}
PAIRS=${PAIRS:-4}
REPEAT=${REPEAT:-3}
torch_env=$(bash tests/setup-torch.sh full)
eval "$torch_env"
venv="${RTNODE_TORCH_VENV:-$PWD/.venv-torch}"
py="$venv/bin/python"

work=$(mktemp -d "${TMPDIR:-/tmp}/rtnode-seg-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$py" benches/segmentation_torch.py make-model "$work/model.pt" "$CLASSES"
cargo build --release --locked --features torch --tests >"$work/build.log" 2>&1 ||
  { cat "$work/build.log"; exit 1; }

# rtnode's stage runs with the pipeline's thread count for it (the
# machine's cores with one segmentation worker); Python gets the same.
run_rust() { # $1: pair number
  local d="$work/rust$1"
  mkdir -p "$d"
  RTNODE_BENCH_MODEL="$work/model.pt" RTNODE_BENCH_DIR="$d" RTNODE_BENCH_ROWS=$ROWS \
    RTNODE_BENCH_SLICES=$SLICES RTNODE_BENCH_PATCH=$PATCH RTNODE_BENCH_BATCH=$BATCH \
    RTNODE_BENCH_CLASSES=$CLASSES RTNODE_BENCH_REPEAT=$REPEAT \
    cargo test --release --locked --features torch --test torch \
    bench_stage_for_the_script -- --ignored --nocapture >"$d/log" 2>&1 ||
    { cat "$d/log"; exit 1; }
  grep -o 'BENCH_JSON .*' "$d/log" | cut -d' ' -f2- >"$d/result.json"
}
run_python() { # $1: pair number; the volume and labels of rtnode's first run
  local r="$work/rust1/result.json"
  "$py" benches/segmentation_torch.py run "$work/model.pt" "$(jq -r .volume "$r")" \
    "$(jq -r .labels "$r")" --patch "$PATCH" --batch "$BATCH" --clip -1000 1000 \
    --mean -100 --std 500 --threads "$(jq -r '.warm[0].threads' "$r")" \
    --repeat "$REPEAT" >"$work/python$1.json"
}
run_rust 1
run_python 1
for i in $(seq 2 "$PAIRS"); do
  if ((i % 2)); then run_rust "$i"; run_python "$i"; else run_python "$i"; run_rust "$i"; fi
done

jq -rn --slurpfile r <(cat "$work"/rust*/result.json) \
  --slurpfile p <(cat "$work"/python*.json) \
  --arg cpu "$(lscpu | sed -n 's/^Model name: *//p')" '
  def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def r3: . * 1000 | round / 1000;
  def spread(f; g): [range(0; $r | length) | (($r[.] | f) / ($p[.] | g))] | "\(median | r3) (\(min | r3)-\(max | r3))";
  ($r[0]) as $r0 | ($p[0]) as $p0 |
  "CT \($r0.rows)x\($r0.rows)x\($r0.slices), model grid \($r0.warm[0].model_grid | tostring), \($r0.warm[0].patches) patches of \(env.PATCH // "32,96,96"), batch \($r0.warm[0].batch_size), \($r0.warm[0].threads) threads each side, \($cpu); \($r | length) pairs x \($r0.warm | length) warm passes",
  "",
  "| median warm pass | rtnode (tch 0.26) | Python torch \($p0.torch) | rtnode / Python (median of pairs, min-max) |",
  "|---|---|---|---|",
  "| forward passes (ms) | \([$r[] | [.warm[].timings_ms.forward] | median] | median) | \([$p[] | .forward_ms_warm | median] | median) | \(spread([.warm[].timings_ms.forward] | median; .forward_ms_warm | median)) |",
  "| sliding window (ms) | \([$r[] | [.warm[].timings_ms.inference] | median] | median) | \([$p[] | .inference_ms_warm | median] | median) | \(spread([.warm[].timings_ms.inference] | median; .inference_ms_warm | median)) |",
  "| cold forward passes (ms) | \([$r[].cold.timings_ms.forward] | median) | \([$p[].forward_ms_cold] | median) | \(spread(.cold.timings_ms.forward; .forward_ms_cold)) |",
  "",
  "labels agreeing voxel for voxel with Python torch: \([$p[].voxels_agreeing] | min * 100 | r3)%",
  "whole stage, cold (read, model load, resampling, inference, contours, RTSTRUCT): median \([$r[].stage_ms] | median) ms = \(([$r[].stage_ms] | median) / $r0.slices | round) ms/slice; phases of the first run \($r0.stage_timings_ms | tostring); CT to and from the model grid (warm) \($r0.warm[0].timings_ms.to_model_grid)/\($r0.warm[0].timings_ms.to_ct_grid) ms"
'
