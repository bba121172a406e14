#!/usr/bin/env bash
# A node that stays fast as its archive grows: one rtnode receives BATCHES
# batches of SERIES series x SLICES small CT slices (ROWS x ROWS) over
# STREAMS concurrent dcmtk storescu associations, and after each batch the
# script prints:
#
#   batch  instances stored so far  ingest rate (instances/s)  server RSS (MiB)
#   `rtnode status --json` wall time (ms)
#
# then, on the full data directory:
#   - restart after a clean stop, and after kill -9: seconds from start to the
#     first C-ECHO answered;
#   - course latency: a last CT course sent by an AE whose trigger rule is
#     `ct`, from storescu's return to the course's first stage leaving the
#     queue, minus the configured stable age (1 s), against the same in an
#     empty node.
#
#   bash benches/scale.sh                      # 8 x 50 x 100 = 40,000 instances
#   BATCHES=40 bash benches/scale.sh           # 200,000
#
# Every series has its own patient ID, study and series UIDs (rtnode synth,
# then dcmodify). Courses of the batches are CT-only under the `full` rule,
# so they assemble but never trigger: the figures are the store's and the
# scheduler's, not the stages'. Targets (issue "performance where it
# counts"): last batch's rate >= 0.9 x the first's; RSS <= a fixed base +
# 1 KiB per stored instance; status under 200 ms; C-ECHO within 5 s of a
# start; course latency as in an empty node.
#
# Environment knobs [defaults]: BATCHES [8], SERIES [50], SLICES [100],
# ROWS [32], STREAMS [4], FSYNC [true], BENCH_DIR [mktemp under TMPDIR],
# RTNODE [target/release/rtnode, built when missing], KEEP [0].
#
# Needs: bash, python3, dcmtk (storescu, echoscu, dcmodify).
set -euo pipefail

BATCHES=${BATCHES:-8}
SERIES=${SERIES:-50}
SLICES=${SLICES:-100}
ROWS=${ROWS:-32}
STREAMS=${STREAMS:-4}
FSYNC=${FSYNC:-true}
KEEP=${KEEP:-0}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
export TCP_NODELAY=1

log() { printf '%s\n' "$*" >&2; }
die() { log "scale: $*"; exit 1; }
now() { date +%s.%N; }

if [[ -z ${RTNODE:-} ]]; then
  RTNODE=${CARGO_TARGET_DIR:-$REPO/target}/release/rtnode
  if [[ ! -x $RTNODE ]]; then
    log "building rtnode (cargo build --release)"
    (cd "$REPO" && cargo build --release --locked >&2)
  fi
fi
for t in storescu echoscu dcmodify python3; do
  command -v "$t" >/dev/null || die "$t not found (apt-get install dcmtk python3)"
done

WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/rtnode-scale.XXXXXX")
SERVER_PID=
cleanup() {
  [[ -n $SERVER_PID ]] && kill -9 "$SERVER_PID" 2>/dev/null || true
  if [[ $KEEP == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# One series per folder: a fresh synthetic CT with its own patient.
make_series() { # dir patient_id
  "$RTNODE" synth --out "$1" --slices "$SLICES" --rows "$ROWS" >/dev/null
  dcmodify -nb -m "PatientID=$2" -m "PatientName=Scale^$2" "$1"/*.dcm >/dev/null
}

configure() { # data_dir
  cat >"$WORK/peers.yaml" <<EOF
peers:
  - {ae_title: STORESCU, host: 127.0.0.1, port: 104, may_store: true}
  - {ae_title: LATENCY, host: 127.0.0.1, port: 104, may_store: true}
  - {ae_title: ECHOSCU, host: 127.0.0.1, port: 104}
EOF
  cat >"$WORK/rtnode.yaml" <<EOF
node:
  ae_title: RTNODE
  bind: 127.0.0.1
  data_dir: $1
  peers_file: $WORK/peers.yaml
network:
  max_associations: 32
storage:
  fsync: $FSYNC
pipeline:
  trigger: full
  trigger_by_calling_ae: {LATENCY: ct}
  stable_age_s: 1
EOF
}

PORT=
ECHO_AFTER=
start_server() { # data_dir log; sets SERVER_PID, PORT and ECHO_AFTER (s to the first C-ECHO)
  PORT=$(free_port)
  local t0 t1 i
  t0=$(now)
  "$RTNODE" serve --config "$WORK/rtnode.yaml" --port "$PORT" >>"$2" 2>&1 &
  SERVER_PID=$!
  for ((i = 0; i < 600; i++)); do
    if echoscu -aet ECHOSCU -aec RTNODE 127.0.0.1 "$PORT" >/dev/null 2>&1; then
      t1=$(now)
      ECHO_AFTER=$(python3 -c "print(f'{$t1-$t0:.2f}')")
      return 0
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  tail -20 "$2" >&2
  die "rtnode did not answer C-ECHO"
}

stop_server() {
  [[ -n $SERVER_PID ]] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

rss_mib() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$SERVER_PID/status"; }

status_ms() { # data_dir
  local t0 t1
  t0=$(now)
  "$RTNODE" status --json --data-dir "$1" >/dev/null
  t1=$(now)
  python3 -c "print(f'{($t1-$t0)*1000:.0f}')"
}

send_dirs() { # aet dirs...
  local aet=$1
  shift
  local dirs=("$@") pids=() i
  for ((i = 0; i < STREAMS; i++)); do
    local mine=()
    for ((j = i; j < ${#dirs[@]}; j += STREAMS)); do mine+=("${dirs[j]}"); done
    ((${#mine[@]})) || continue
    storescu -aet "$aet" -aec RTNODE 127.0.0.1 "$PORT" +sd "${mine[@]}" >"$WORK/storescu$i.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || die "storescu failed: $(tail -3 "$WORK"/storescu*.log)"; done
}

# Course latency: one CT-only course from LATENCY (rule `ct`), from the
# sender's return to the first stage leaving the queue, less the stable age.
latency() { # data_dir tag
  local d=$WORK/latency-$2 pid=LAT-$2
  make_series "$d" "$pid"
  local t0 t1
  send_dirs LATENCY "$d"
  t0=$(now)
  for ((i = 0; i < 1200; i++)); do
    if "$RTNODE" status --json --data-dir "$1" | python3 -c '
import json, sys
v = json.load(sys.stdin)
pid = sys.argv[1]
for c in v["courses"]:
    if c["patient_id"] == pid and any(s["state"] != "queued" for s in c["stage_details"]):
        sys.exit(0)
sys.exit(1)' "$pid"; then
      t1=$(now)
      python3 -c "print(f'{$t1-$t0-1.0:.2f}')"
      return 0
    fi
    sleep 0.05
  done
  die "the latency course did not start"
}

DATA=$WORK/data
configure "$DATA"
LOG=$WORK/rtnode.log
start_server "$DATA" "$LOG"
log "empty node: course latency $(latency "$DATA" empty) s (beyond the 1 s stable age)"

printf '%-6s %10s %10s %9s %10s\n' batch instances "inst/s" "RSS MiB" "status ms"
stored=0
first_rate=
for ((b = 1; b <= BATCHES; b++)); do
  dirs=()
  for ((s = 0; s < SERIES; s++)); do
    d=$WORK/in/b$b-s$s
    make_series "$d" "P$b-$s"
    dirs+=("$d")
  done
  cat "$WORK"/in/b$b-*/*.dcm >/dev/null
  t0=$(now)
  send_dirs STORESCU "${dirs[@]}"
  t1=$(now)
  n=$((SERIES * SLICES))
  stored=$((stored + n))
  rate=$(python3 -c "print(f'{$n/($t1-$t0):.0f}')")
  [[ -n $first_rate ]] || first_rate=$rate
  printf '%-6s %10s %10s %9s %10s\n' "$b" "$stored" "$rate" "$(rss_mib)" "$(status_ms "$DATA")"
  rm -rf "$WORK"/in/b$b-*
done
python3 -c "print(f'last batch rate / first: {$rate/$first_rate:.2f}')"
log "full node: course latency $(latency "$DATA" full) s (beyond the 1 s stable age)"

stop_server
start_server "$DATA" "$LOG"
printf 'restart after a clean stop: first C-ECHO after %s s\n' "$ECHO_AFTER"
sleep 5
printf 'RSS 5 s after restart: %s MiB; status %s ms\n' "$(rss_mib)" "$(status_ms "$DATA")"
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=
start_server "$DATA" "$LOG"
printf 'restart after kill -9: first C-ECHO after %s s\n' "$ECHO_AFTER"
stop_server
