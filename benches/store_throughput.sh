#!/usr/bin/env bash
# Store throughput of rtnode's C-STORE SCP, against three references, in one run.
#
#   bash benches/store_throughput.sh
#
# Sends SLICES synthetic CT slices (ROWS x ROWS, 16 bit; `rtnode synth`) with
# dcmtk storescu over loopback and prints instances/s and ratios for:
#
#   orthanc1  rtnode (storage.fsync: true), 1 association  vs Orthanc, 1 association
#   orthanc4  rtnode (storage.fsync: true), STREAMS assocs vs Orthanc, STREAMS assocs
#   loopd1    rtnode (storage.fsync: true), 1 association vs the write+fsync+
#             rename loop with --dirsync (also fsyncs the directory after each
#             rename: the same durability as rtnode's rule, but no index), 1 thread
#   loopd4    the same with STREAMS associations / STREAMS threads
#   sender1   rtnode (storage.fsync: false), 1 association vs storescp --ignore (stores nothing)
#
# and, for context (COMPARISONS=all):
#   sender4   as sender1 with STREAMS associations (storescp --fork --ignore)
#   store1    rtnode (storage.fsync: false), 1 association vs storescp writing
#             each file to disk (no fsync, no index): a plain file-storing SCP
#   loop1     rtnode (storage.fsync: true), 1 association vs the loop without
#             the directory fsync (the name is not durable), 1 thread
#   loop4     the same with STREAMS associations / STREAMS threads
#
# BEFORE=<another rtnode binary> (e.g. a build of the previous commit) makes
# every pair whose A is rtnode a triple: that binary runs the same case in the
# same pair (order A C B, then B C A, ...), and the report adds its ratio to
# the reference (C/B) and the new-over-old ratio (A/C): before and after from
# one run, under the same disk and the same background load.
#
# The disk's speed drifts from run to run, so every comparison is measured as
# PAIRS adjacent A/B pairs (order alternating AB, BA, AB, ...; the pairs of the
# different comparisons are interleaved round-robin), and the median A/B ratio
# with its min-max spread is reported. Every run starts from an empty data
# directory; before each run the input files are read again (so they are in
# the page cache whatever the kernel reclaimed meanwhile) and `sync` runs.
#
# Environment knobs (defaults in brackets):
#   PAIRS        A/B pairs per comparison [5]
#   COMPARISONS  which comparisons, space separated
#                ["orthanc1 orthanc4 loopd1 loopd4 sender1"]; "all" adds
#                sender4 store1 loop1 loop4
#   SLICES       number of instances [1000]
#   ROWS         matrix size [512]
#   STREAMS      concurrent associations / loop threads for the "4" cases [4]
#   BENCH_DIR    parent directory of the work directory (must be on the disk
#                under test) [a mktemp dir under ${TMPDIR:-/tmp}]
#   RTNODE       rtnode binary [${CARGO_TARGET_DIR:-target}/release/rtnode,
#                built with `cargo build --release` when missing]
#   BEFORE       a second rtnode binary measured in the same pairs (see above) []
#   PDU          max PDU announced by Orthanc and storescp (4096..131072)
#                [131072, their largest; rtnode keeps its default 262144]
#   INSTALL      1: apt-get install dcmtk / orthanc when missing (needs root) [1]
#   KEEP         1: keep the work directory and logs [0]
#   RESULTS      also write the raw per-run figures (TSV) to this file []
#   BUSY_LIMIT   before each pair the script measures, over one second in
#                which it runs nothing, how busy the CPUs are with other work;
#                at this share (%) or more it waits ... [10]
#   QUIET_WAIT   ... up to this many seconds, then runs the pair anyway [120]
#   REDO         a pair with the CPUs this busy just before or just after it
#                is measured again, at most this many times, then kept and
#                flagged (its "bg CPU" column in the table) [3]
#
# Needs: bash, python3, dcmtk (storescu, storescp, echoscu), Orthanc.
set -euo pipefail

PAIRS=${PAIRS:-5}
COMPARISONS=${COMPARISONS:-"orthanc1 orthanc4 loopd1 loopd4 sender1"}
[[ $COMPARISONS == all ]] && COMPARISONS="orthanc1 orthanc4 loopd1 loopd4 sender1 sender4 store1 loop1 loop4"
BEFORE=${BEFORE:-}
SLICES=${SLICES:-1000}
ROWS=${ROWS:-512}
STREAMS=${STREAMS:-4}
PDU=${PDU:-131072}
INSTALL=${INSTALL:-1}
KEEP=${KEEP:-0}
RESULTS=${RESULTS:-}
BUSY_LIMIT=${BUSY_LIMIT:-10}
QUIET_WAIT=${QUIET_WAIT:-120}
REDO=${REDO:-3}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

# dcmtk (storescu, storescp, and Orthanc's DICOM layer) leaves Nagle's
# algorithm on unless told otherwise, which caps a loopback transfer near
# 20 images/s; every process started below inherits this.
export TCP_NODELAY=1

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- tools ---
install_missing() {
  local pkgs=()
  command -v storescu >/dev/null && command -v storescp >/dev/null &&
    command -v echoscu >/dev/null || pkgs+=(dcmtk)
  command -v Orthanc >/dev/null || pkgs+=(orthanc)
  command -v python3 >/dev/null || pkgs+=(python3)
  ((${#pkgs[@]})) || return 0
  [[ $INSTALL == 1 ]] || die "missing: ${pkgs[*]} (INSTALL=0)"
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  log "installing ${pkgs[*]} from the distribution"
  # The orthanc package starts a system service when allowed to; forbid
  # service starts for the duration of the install (we run our own Orthanc).
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    made_policy=1
  fi
  local rc=0 p
  # Refresh the package lists only when one of the packages has no candidate.
  for p in "${pkgs[@]}"; do
    if ! apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
      "${sudo[@]}" apt-get update || rc=$?
      break
    fi
  done
  ((rc == 0)) && { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y "${pkgs[@]}" || rc=$?; }
  ((made_policy)) && "${sudo[@]}" rm -f "$policy"
  ((rc == 0)) || die "apt-get install ${pkgs[*]} failed"
}
install_missing

if pgrep -x Orthanc >/dev/null; then
  log "warning: an Orthanc process is already running (pids: $(pgrep -x Orthanc | tr '\n' ' '))."
  log "         It does not conflict with ours (own ports and directories), but it"
  log "         competes for CPU and disk; stop it (e.g. 'service orthanc stop') for clean figures."
fi

if [[ -z ${RTNODE:-} ]]; then
  RTNODE=${CARGO_TARGET_DIR:-$REPO/target}/release/rtnode
  if [[ ! -x $RTNODE ]]; then
    log "building rtnode (cargo build --release)"
    (cd "$REPO" && cargo build --release) >&2
  fi
fi
[[ -x $RTNODE ]] || die "rtnode binary not found: $RTNODE"
[[ -z $BEFORE || -x $BEFORE ]] || die "BEFORE binary not found: $BEFORE"

# ------------------------------------------------------------ work dir ---
if [[ -n ${BENCH_DIR:-} ]]; then
  mkdir -p "$BENCH_DIR"
  WORK=$(mktemp -d "$BENCH_DIR/store-bench.XXXXXX")
else
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/store-bench.XXXXXX")
fi
SERVER_PID=
cleanup() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ $KEEP == 1 ]]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RAW=$WORK/results.tsv
: >"$RAW"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

now() { printf '%s' "$EPOCHREALTIME"; }

# Share of all CPUs busy during one second in which this script runs nothing:
# what other work on the machine takes from the runs that follow.
background_busy() {
  local a b
  a=$(awk '/^cpu / { print $2+$3+$4+$7+$8+$9, $5+$6 }' /proc/stat)
  sleep 1
  b=$(awk '/^cpu / { print $2+$3+$4+$7+$8+$9, $5+$6 }' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
    busy = y[1] - x[1]; idle = y[2] - x[2];
    printf "%.0f", ((busy + idle) > 0 ? 100 * busy / (busy + idle) : 0) }'
}
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.1f", n / (b - a) }'; }

# Waits until a DICOM SCP answers C-ECHO (as STORESCU) or the process dies.
wait_echo() { # aet port pid
  local i
  for ((i = 0; i < 300; i++)); do
    kill -0 "$3" 2>/dev/null || return 1
    echoscu -aet STORESCU -aec "$1" 127.0.0.1 "$2" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

stop_server() {
  [[ -n $SERVER_PID ]] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

# Sends the data set with n concurrent storescu processes to aet@port and
# sets R to instances/s, timed from the first storescu's start to the last's end.
send() { # n aet port logprefix
  local n=$1 aet=$2 port=$3 lp=$4 t0 t1 i fail=0
  local dirs=("$WORK/data/all")
  ((n == 1)) || dirs=("${SPLIT_DIRS[@]}")
  local pids=()
  t0=$(now)
  for ((i = 0; i < n; i++)); do
    storescu -aec "$aet" -aet STORESCU 127.0.0.1 "$port" +sd "${dirs[i]}" \
      >"$lp.storescu$i.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[i]}" || { fail=1; log "storescu $i failed; see below"; tail -5 "$lp.storescu$i.log" >&2; }
  done
  t1=$(now)
  ((fail == 0)) || return 1
  R=$(rate "$SLICES" "$t0" "$t1")
}

count_files() { find "$1" -type f "${@:2}" | wc -l; }

# Untimed preparation of every run: inputs into the page cache, dirty data
# of earlier runs onto the disk.
prepare() {
  cat "$WORK"/data/all/*.dcm >/dev/null
  sync
}

# ----------------------------------------------------------- the runs ---
run_rtnode() { # fsync(true|false) n [binary]
  local fsync=$1 n=$2 bin=${3:-$RTNODE} d=$WORK/run/rtnode
  rm -rf "$WORK/run"; mkdir -p "$d"
  cat >"$WORK/run/peers.yaml" <<EOF
peers:
  - ae_title: STORESCU
    host: 127.0.0.1
    port: 104
    may_store: true
    description: "dcmtk storescu on loopback (benchmark)"
EOF
  cat >"$WORK/run/rtnode.yaml" <<EOF
node:
  ae_title: RTNODE
  bind: 127.0.0.1
  data_dir: $d
  peers_file: $WORK/run/peers.yaml
storage:
  fsync: $fsync
EOF
  local lp=$WORK/logs/rtnode$([[ $bin == "$RTNODE" ]] || echo -before)-fsync$fsync-$n-$RUN_NO
  prepare
  # node.port in the file must be 1-65535; --port 0 picks a free port, and
  # node.json in the data directory tells which.
  "$bin" serve --config "$WORK/run/rtnode.yaml" --port 0 >"$lp.log" 2>&1 &
  SERVER_PID=$!
  local i port=
  for ((i = 0; i < 300; i++)); do
    [[ -s $d/node.json ]] && port=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["port"])' "$d/node.json" 2>/dev/null) && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n $port ]] || { tail -20 "$lp.log" >&2; die "rtnode did not start"; }
  send "$n" RTNODE "$port" "$lp" || { stop_server; tail -20 "$lp.log" >&2; die "send to rtnode failed"; }
  stop_server
  local got
  got=$(count_files "$d/store" -name '*.dcm')
  ((got == SLICES)) || die "rtnode stored $got of $SLICES instances (log: $lp.log)"
  rm -rf "$WORK/run"
}

run_orthanc() { # n
  local n=$1 d=$WORK/run/orthanc port http
  rm -rf "$WORK/run"; mkdir -p "$d/storage" "$d/index"
  port=$(free_port); http=$(free_port)
  sed -e "s|@STORAGE_DIR@|$d/storage|" -e "s|@INDEX_DIR@|$d/index|" \
      -e "s|@DICOM_PORT@|$port|" -e "s|@HTTP_PORT@|$http|" -e "s|@PDU@|$PDU|" \
      "$HERE/orthanc.json.in" >"$WORK/run/orthanc.json"
  local lp=$WORK/logs/orthanc-$n-$RUN_NO
  prepare
  Orthanc "$WORK/run/orthanc.json" >"$lp.log" 2>&1 &
  SERVER_PID=$!
  wait_echo ORTHANC "$port" "$SERVER_PID" || { tail -20 "$lp.log" >&2; die "Orthanc did not start"; }
  send "$n" ORTHANC "$port" "$lp" || { stop_server; tail -20 "$lp.log" >&2; die "send to Orthanc failed"; }
  stop_server
  local got
  got=$(count_files "$d/storage")
  ((got == SLICES)) || die "Orthanc stored $got of $SLICES instances (log: $lp.log)"
  rm -rf "$WORK/run"
}

run_storescp() { # mode(ignore|store) n
  local mode=$1 n=$2 port opts=()
  ((n == 1)) || opts+=(--fork)
  if [[ $mode == ignore ]]; then opts+=(--ignore); else opts+=(-od "$WORK/run/storescp"); fi
  rm -rf "$WORK/run"; mkdir -p "$WORK/run/storescp"
  port=$(free_port)
  local lp=$WORK/logs/storescp-$mode-$n-$RUN_NO
  prepare
  (cd "$WORK/run/storescp" && exec storescp "${opts[@]}" -pdu "$PDU" "$port") >"$lp.log" 2>&1 &
  SERVER_PID=$!
  wait_echo ANY-SCP "$port" "$SERVER_PID" || { tail -20 "$lp.log" >&2; die "storescp did not start"; }
  send "$n" ANY-SCP "$port" "$lp" || { stop_server; die "send to storescp failed"; }
  stop_server
  if [[ $mode == store ]]; then
    local got
    got=$(count_files "$WORK/run/storescp")
    ((got == SLICES)) || die "storescp stored $got of $SLICES instances (log: $lp.log)"
  fi
  rm -rf "$WORK/run"
}

run_loop() { # dirsync(0|1) n
  local dirsync=() n=$2 dirs=("$WORK/data/all") out
  [[ $1 == 1 ]] && dirsync=(--dirsync)
  ((n == 1)) || dirs=("${SPLIT_DIRS[@]}")
  rm -rf "$WORK/run"; mkdir -p "$WORK/run/loop"
  prepare
  out=$(python3 "$HERE/fsync_loop.py" "${dirsync[@]}" "$WORK/run/loop" "${dirs[@]}") || die "fsync loop failed"
  local got
  got=$(count_files "$WORK/run/loop" -name '*.dcm')
  ((got == SLICES)) || die "loop wrote $got of $SLICES files"
  rm -rf "$WORK/run"
  # "<files> files <bytes> bytes <s> s <rate> files/s": its own timing, which
  # leaves out interpreter start-up (in the loop's favour).
  R=$(awk '{ print $7 }' <<<"$out")
}

# ----------------------------------------------------------- the data ---
log "work directory: $WORK"
mkdir -p "$WORK/logs" "$WORK/data"
log "generating $SLICES slices of ${ROWS}x$ROWS (rtnode synth)"
"$RTNODE" synth --out "$WORK/data/all" --slices "$SLICES" --rows "$ROWS" >&2
mapfile -t FILES < <(find "$WORK/data/all" -type f -name '*.dcm' | sort)
((${#FILES[@]} == SLICES)) || die "synth produced ${#FILES[@]} files, expected $SLICES"
# STREAMS folders with every STREAMS-th file (hard links: same page-cache pages).
SPLIT_DIRS=()
for ((s = 0; s < STREAMS; s++)); do
  mkdir -p "$WORK/data/split$s"
  SPLIT_DIRS+=("$WORK/data/split$s")
done
for i in "${!FILES[@]}"; do
  ln "${FILES[i]}" "$WORK/data/split$((i % STREAMS))/"
done
DATA_BYTES=$(du -sb "$WORK/data/all" | awk '{print $1}')
cat "${FILES[@]}" >/dev/null # into the page cache

# ------------------------------------------------------------ machine ---
machine_info() {
  local dev
  dev=$(df --output=source "$WORK" | tail -1)
  echo "date:        $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu:         $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "memory:      $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "kernel:      $(uname -r)"
  echo "work dir fs: $(df --output=fstype "$WORK" | tail -1 | tr -d ' ') on $dev ($(findmnt -no OPTIONS -T "$WORK" 2>/dev/null || echo '?'))"
  local base rot
  base=$(basename "$(readlink -f "$dev")")
  if [[ -e /sys/class/block/$base ]]; then
    local disk=$base
    [[ -e /sys/class/block/$base/partition ]] && disk=$(basename "$(readlink -f "/sys/class/block/$base/..")")
    rot=$(cat "/sys/block/$disk/queue/rotational" 2>/dev/null || echo '?')
    echo "disk:        $disk, rotational=$rot, $(lsblk -dno SIZE,MODEL "/dev/$disk" 2>/dev/null | sed 's/  */ /g')"
  fi
  echo "data:        $SLICES files, $DATA_BYTES bytes (${ROWS}x$ROWS, 16 bit)"
  echo "dcmtk:       $({ storescu --version 2>&1 || true; } | grep -m1 -o 'v[0-9][0-9.]*' || true)"
  echo "orthanc:     $({ Orthanc --version 2>&1 || true; } | head -1)"
  echo "rtnode:      $("$RTNODE" --version 2>/dev/null || echo '?'), $RTNODE (built $(date -u -r "$RTNODE" '+%Y-%m-%d %H:%M UTC'))"
  [[ -z $BEFORE ]] || echo "before:      $("$BEFORE" --version 2>/dev/null || echo '?'), $BEFORE (built $(date -u -r "$BEFORE" '+%Y-%m-%d %H:%M UTC'))"
  echo "repository:  $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' (src has uncommitted changes)')"
  echo "pairs:       $PAIRS; streams: $STREAMS; receiver PDU (Orthanc, storescp): $PDU"
}
machine_info

# ---------------------------------------------------------- schedule ---
# comparison -> "A-run|B-run|label|target-ratio|target-text"
describe() {
  case $1 in
    orthanc1) echo "rtnode_on 1|orthanc 1|rtnode (fsync) vs Orthanc, 1 association|1.0|ahead of Orthanc (>1.00)" ;;
    orthanc4) echo "rtnode_on $STREAMS|orthanc $STREAMS|rtnode (fsync) vs Orthanc, $STREAMS associations|2.0|>=2.00x Orthanc" ;;
    loop1) echo "rtnode_on 1|loop 1|rtnode (fsync) vs write+fsync+rename loop (no dir fsync), 1 association / 1 thread|-|(context; no target)" ;;
    loop4) echo "rtnode_on $STREAMS|loop $STREAMS|rtnode (fsync) vs write+fsync+rename loop (no dir fsync), $STREAMS associations / $STREAMS threads|-|(context; no target)" ;;
    sender1) echo "rtnode_off 1|storescp 1|rtnode (fsync: false) vs storescp --ignore, 1 association|0.9|>=0.90 of the sender's limit" ;;
    sender4) echo "rtnode_off $STREAMS|storescp $STREAMS|rtnode (fsync: false) vs storescp --fork --ignore, $STREAMS associations|-|(context; no target)" ;;
    store1) echo "rtnode_off 1|storescp_store 1|rtnode (fsync: false) vs storescp writing files (no fsync), 1 association|-|(context; no target)" ;;
    loopd1) echo "rtnode_on 1|loopd 1|rtnode (fsync) vs write+fsync+rename+dir-fsync loop, 1 association / 1 thread|0.9|>=0.90 of the loop" ;;
    loopd4) echo "rtnode_on $STREAMS|loopd $STREAMS|rtnode (fsync) vs write+fsync+rename+dir-fsync loop, $STREAMS associations / $STREAMS threads|0.9|>=0.90 of the loop" ;;
    *) die "unknown comparison: $1" ;;
  esac
}

run_one() { # kind n [rtnode binary]
  case $1 in
    rtnode_on) run_rtnode true "$2" "${3:-}" ;;
    rtnode_off) run_rtnode false "$2" "${3:-}" ;;
    orthanc) run_orthanc "$2" ;;
    loop) run_loop 0 "$2" ;;
    loopd) run_loop 1 "$2" ;;
    storescp) run_storescp ignore "$2" ;;
    storescp_store) run_storescp store "$2" ;;
  esac
}

for c in $COMPARISONS; do describe "$c" >/dev/null; done
RUN_NO=0
# Waits (up to QUIET_WAIT s) until other work leaves the CPUs alone; sets BG.
wait_quiet() {
  local waited=0
  BG=$(background_busy)
  while ((BG >= BUSY_LIMIT && waited < QUIET_WAIT)); do
    ((waited == 0)) && log "other work keeps ${BG}% of the CPUs busy; waiting up to ${QUIET_WAIT}s"
    sleep 4
    waited=$((waited + 5))
    BG=$(background_busy)
  done
}

for ((p = 1; p <= PAIRS; p++)); do
  for c in $COMPARISONS; do
    IFS='|' read -r a b label _ _ <<<"$(describe "$c")"
    if [[ -n $BEFORE && $a == rtnode_* ]]; then
      if ((p % 2)); then order=(A C B); else order=(B C A); fi
    elif ((p % 2)); then order=(A B); else order=(B A); fi
    # A pair counts as clean when the CPUs were quiet just before and just
    # after it; a disturbed pair is measured again (REDO times at most) and
    # otherwise kept, flagged by its bg CPU figure in the table.
    for ((attempt = 0; attempt <= REDO; attempt++)); do
      declare -A got=()
      wait_quiet
      bg_before=$BG
      for which in "${order[@]}"; do
        RUN_NO=$((RUN_NO + 1))
        bin=
        case $which in A) spec=$a ;; B) spec=$b ;; C) spec=$a bin=$BEFORE ;; esac
        # shellcheck disable=SC2086
        run_one $spec $bin
        got[$which]=$R
        log "pair $p/$PAIRS  $c  $which ($spec): ${got[$which]} instances/s"
      done
      bg_after=$(background_busy)
      bg=$((bg_before > bg_after ? bg_before : bg_after))
      ((bg < BUSY_LIMIT)) && break
      ((attempt < REDO)) && log "pair $p/$PAIRS  $c: other work kept ${bg}% of the CPUs busy around it; measuring it again"
    done
    ((bg < BUSY_LIMIT)) || log "warning: pair $p/$PAIRS $c kept although disturbed (${bg}% busy)"
    printf '%s\t%d\t%s\t%s\t%s\t%s\t%s\n' "$c" "$p" "${got[A]}" "${got[B]}" "${order[*]}" "$bg" "${got[C]:--}" >>"$RAW"
    unset got
  done
done

[[ -n $RESULTS ]] && cp "$RAW" "$RESULTS"

# ------------------------------------------------------------- report ---
DESCS=$WORK/descriptions.tsv
: >"$DESCS"
for c in $COMPARISONS; do
  IFS='|' read -r a b label target ttext <<<"$(describe "$c")"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$a" "$b" "$label" "$target" "$ttext" >>"$DESCS"
done
echo
python3 - "$RAW" "$DESCS" "$BUSY_LIMIT" <<'EOF'
import statistics, sys
raw, descs, busy_limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = {}
for line in open(raw):
    c, p, a, b, order, bg, before = line.rstrip("\n").split("\t")
    before = None if before == "-" else float(before)
    rows.setdefault(c, []).append((int(p), float(a), float(b), order.replace(" ", ""), int(bg), before))
summary = []
for line in open(descs):
    c, a, b, label, target, ttext = line.rstrip("\n").split("\t")
    target = None if target == "-" else float(target)
    runs = rows.get(c, [])
    print(f"== {c}: {label}")
    print(f"   A = {a.replace('_on', ' fsync:true').replace('_off', ' fsync:false')}, B = {b}  (instances/s)")
    has_c = any(x[5] is not None for x in runs)
    if has_c:
        print("   C = the same as A with the BEFORE binary")
    print(f"   {'pair':>4}  {'order':>5}  {'A':>8}  {'B':>8}  {'A/B':>6}  {'bg CPU':>6}"
          + (f"  {'C':>8}  {'C/B':>6}  {'A/C':>6}" if has_c else ""))
    ratios = []
    before_ratios, gains = [], []
    for p, va, vb, order, bg, vc in runs:
        r = va / vb
        ratios.append(r)
        extra = ""
        if vc is not None:
            before_ratios.append(vc / vb)
            gains.append(va / vc)
            extra = f"  {vc:>8.1f}  {vc / vb:>6.2f}  {va / vc:>6.2f}"
        print(f"   {p:>4}  {order:>5}  {va:>8.1f}  {vb:>8.1f}  {r:>6.2f}  {bg:>5}%{extra}")
    if not ratios:
        continue
    med, lo, hi = statistics.median(ratios), min(ratios), max(ratios)
    ma = statistics.median(x[1] for x in runs)
    mb = statistics.median(x[2] for x in runs)
    print(f"   median A {ma:.1f}/s, median B {mb:.1f}/s; "
          f"median ratio {med:.2f} (spread {lo:.2f}-{hi:.2f})")
    before_note = ""
    if before_ratios:
        mc = statistics.median(x[5] for x in runs if x[5] is not None)
        bm, gm = statistics.median(before_ratios), statistics.median(gains)
        print(f"   BEFORE: median C {mc:.1f}/s; median C/B {bm:.2f} "
              f"(spread {min(before_ratios):.2f}-{max(before_ratios):.2f}); "
              f"after/before A/C {gm:.2f} (spread {min(gains):.2f}-{max(gains):.2f})")
        before_note = f"  [before {bm:.2f}; after/before {gm:.2f}]"
    print()
    disturbed = sum(1 for x in runs if x[4] >= busy_limit)
    note = f"; {disturbed} of {len(runs)} pairs disturbed" if disturbed else ""
    if target is None:
        summary.append((c, label, ttext, med, lo, hi, note.lstrip("; ") + before_note))
        continue
    if target == 1.0:
        met = med > target
    else:
        met = med >= target
    every = all((r > target) if target == 1.0 else (r >= target) for r in ratios)
    verdict = "met" if met else "NOT met"
    if met and not every:
        verdict += " (median only; not in every pair)"
    elif met:
        verdict += " (in every pair)"
    verdict += note + before_note
    summary.append((c, label, ttext, med, lo, hi, verdict))
print("   (bg CPU: share of the CPUs that other work kept busy in an idle second")
print("   just before or just after the pair, the larger; BUSY_LIMIT % or more")
print("   means the pair was disturbed)")
print()
print("== summary against the targets (median A/B ratio, min-max over pairs)")
for c, label, ttext, med, lo, hi, verdict in summary:
    print(f"   {c:<9} {med:5.2f} ({lo:.2f}-{hi:.2f})  target {ttext:<30} {verdict}")
EOF
