#!/usr/bin/env bash
# Slurm executor benchmark: `rtnode process` over COURSES synthetic courses
# (CT + RTSTRUCT + RTPLAN + RTDOSE, SLICES x ROWS x ROWS), once with the
# local executor and once with every stage on the one-node test cluster
# (tests/slurm/start-cluster.sh: slurmctld + slurmd on localhost, 8 CPU
# slots on whatever cores the machine has). Reported: total wall time of
# each, and per stage run on Slurm the overhead from `sbatch` to the
# start of `rtnode run-stage` in the job (queueing, job launch, process
# start), from the coordinator's log and the jobs' logs.
#
#   COURSES=200 WORKERS=2 bash benches/slurm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
COURSES=${COURSES:-200}
SLICES=${SLICES:-12}
ROWS=${ROWS:-48}
WORKERS=${WORKERS:-$(nproc)}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
eval "$(bash tests/slurm/start-cluster.sh)"
cargo build --release --locked --bin rtnode >/dev/null 2>&1 || cargo build --release --bin rtnode
BIN="$TARGET/release/rtnode"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

for i in $(seq -w 1 "$COURSES"); do
    "$BIN" synth --out "$WORK/in/c$i" --slices "$SLICES" --rows "$ROWS" --rt --patient-id "BENCH-$i" >/dev/null
done
cat > "$WORK/rtnode.yaml" <<EOF
pipeline:
  trigger: full
  workers: $WORKERS
  slurm:
    poll_s: 1
    grace_s: 5
EOF
echo "## $COURSES courses of ${SLICES}x${ROWS}x${ROWS}, $(nproc) CPUs, local workers: $WORKERS, Slurm: $(sinfo -h -o %C | cut -d/ -f4) CPU slots"

run() {
    local executor=$1 out=$2
    local t0 t1
    t0=$(date +%s.%N)
    "$BIN" process "$WORK/in" --out "$out" --config "$WORK/rtnode.yaml" --executor "$executor" \
        >"$out.stdout" 2>"$out.stderr"
    t1=$(date +%s.%N)
    local done
    done=$(grep -c $'\tdone\t' "$out.stdout" || true)
    printf '%-6s %8.1f s  %d/%d courses done\n' "$executor" "$(echo "$t1 - $t0" | bc)" "$done" "$COURSES"
}
mkdir -p "$WORK/out"
run local "$WORK/out/local"
run slurm "$WORK/out/slurm"

echo "### sbatch -> run-stage start, every run of the $COURSES courses (queueing for the slots included)"
python3 benches/slurm_latency.py "$WORK/out/slurm"
# One course alone: nothing queues, so this is the overhead itself.
mkdir -p "$WORK/one"
cp -r "$WORK/in/c$(seq -w 1 "$COURSES" | head -1)" "$WORK/one/"
"$BIN" process "$WORK/one" --out "$WORK/out/one" --config "$WORK/rtnode.yaml" --executor slurm \
    >"$WORK/out/one.stdout" 2>"$WORK/out/one.stderr"
echo "### sbatch -> run-stage start, one course alone"
python3 benches/slurm_latency.py "$WORK/out/one"
# Same results both ways (generated UIDs aside) is what tests/pipeline/slurm.rs checks.
