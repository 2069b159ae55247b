#!/usr/bin/env bash
# Benchmarks layerfs against kernel overlayfs and fuse-overlayfs on the same lower layers and
# prints each workload's median time as a ratio to kernel overlayfs. Not a test: nothing fails on
# a slow result. See bench/README.md.
#
#   bash bench/run.sh [--quick] [--only layerfs,layerfs-passthrough,overlay,fuse-overlayfs] [--reps N]
#                     [--workloads walk,read,...] [--cache DIR] [--timeout SECONDS] [--no-build]
#
# Needs root (mounting, dropping caches). Installs the tools it uses with apt-get if missing.
set -uo pipefail   # no -e: failures are handled where they happen, most by recording them

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$REPO/bench
RESULTS_DIR=$BENCH/results

source "$BENCH/lib/common.sh"
source "$BENCH/lib/layers.sh"
source "$BENCH/lib/impls.sh"
source "$BENCH/lib/workloads.sh"
source "$BENCH/lib/build.sh"

usage() { sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

parse_args() {
  MODE=full IMPLS=(overlay fuse-overlayfs layerfs layerfs-passthrough) REPS='' CACHE_ROOT=/var/tmp/layerfs-bench CHOSEN=()
  STEP_TIMEOUT='' BUILD=1
  while (($#)); do
    case $1 in
      --quick) MODE=quick ;;
      --only) IFS=, read -r -a IMPLS <<< "${2:?--only needs a list}"; shift ;;
      --reps) REPS=${2:?--reps needs a number}; shift ;;
      --workloads) IFS=, read -r -a CHOSEN <<< "${2:?--workloads needs a list}"; shift ;;
      --cache) CACHE_ROOT=${2:?--cache needs a directory}; shift ;;
      --timeout) STEP_TIMEOUT=${2:?--timeout needs seconds}; shift ;;
      --no-build) BUILD=0 ;;
      -h | --help) usage; exit 0 ;;
      *) usage >&2; exit 2 ;;
    esac
    shift
  done
  if ((${#CHOSEN[@]})); then
    local wl
    for wl in "${CHOSEN[@]}"; do
      [[ " ${WORKLOADS[*]} " == *" $wl "* ]] || die "unknown workload '$wl' (${WORKLOADS[*]})"
    done
    WORKLOADS=("${CHOSEN[@]}")
  fi
  local impl
  for impl in "${IMPLS[@]}"; do
    [[ $impl == @(overlay|fuse-overlayfs|layerfs|layerfs-passthrough) ]] ||
      die "unknown implementation '$impl' (overlay, fuse-overlayfs, layerfs, layerfs-passthrough)"
  done
  set_sizes
}

# Full sizes are the issue's; quick ones keep the same shape, about a tenth of the work.
set_sizes() {
  if [[ $MODE == full ]]; then
    USR_DIRS="include share" BIG_MIB=1024 BIGDIR_FILES=10000 COPYUP_FILES=1000
    EXTRACT_FILES=10000 RM_ENTRIES=5000 WRITE_MIB=1024
    : "${REPS:=3}" "${STEP_TIMEOUT:=300}"
    LONG_RUN=60
  else
    USR_DIRS="include" BIG_MIB=100 BIGDIR_FILES=2000 COPYUP_FILES=200
    EXTRACT_FILES=2000 RM_ENTRIES=1000 WRITE_MIB=100
    : "${REPS:=1}" "${STEP_TIMEOUT:=120}"
    LONG_RUN=60
  fi
  CACHE=$CACHE_ROOT/$MODE
  LAYERS=$CACHE/layers
  RUN_ROOT=$CACHE_ROOT/run
  RESULTS_TSV=$RUN_ROOT/results.tsv
  export CACHE WRITE_MIB   # read by the workloads in their own bash
}

# layerfs runs from dist/: rebuild it when src/ is newer, so the numbers are for the code in the
# tree. Sets LAYERFS_UNAVAILABLE when the CLI cannot run at all.
check_layerfs() {
  LAYERFS_UNAVAILABLE=
  if ((BUILD)) && dist_stale "$REPO"; then
    log "building layerfs (dist/ is missing or older than src/)"
    if ! (cd "$REPO" && timeout 600 npm run build) > "$RUN_ROOT/build.log" 2>&1; then
      log "warning: npm run build failed (see $RUN_ROOT/build.log); trying the CLI anyway"
      NOTES+=("npm run build failed: $(grep -m1 'error' "$RUN_ROOT/build.log" | cut -c1-200)")
    fi
  fi
  if ! timeout 60 node "$LAYERFS_BIN" --help > /dev/null 2> "$RUN_ROOT/last.err"; then
    LAYERFS_UNAVAILABLE="CLI does not start: $(grep -m1 -E 'Error|error' "$RUN_ROOT/last.err" | cut -c1-200)"
    log "layerfs: $LAYERFS_UNAVAILABLE"
  fi
}

since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

declare -A BROKEN=()   # impl -> why it is no longer run
declare -A SKIP=()     # impl:metric -> set after a timeout or error: later repetitions are skipped
NOTES=()

# run_one IMPL WORKLOAD REP: a fresh upper and mount with cold caches, the workload (and its warm
# repetition), the daemon's peak RSS, unmount.
run_one() {
  local impl=$1 wl=$2 rep=$3 hwm
  [[ -n ${BROKEN[$impl]:-} ]] && return
  [[ -n ${SKIP[$impl:$wl]:-} ]] && return
  if ! mount_fresh "$impl"; then
    BROKEN[$impl]="mount failed: $(last_error) (full stderr: $RUN_ROOT/mount-failure-$impl.err)"
    record "$impl" '*' "$rep" notrun "${BROKEN[$impl]}"
    log "$impl: not running it further"
    return
  fi
  record "$impl" mount "$rep" "$MOUNT_SECONDS"
  drop_caches
  run_timed "$impl" "$wl" "$rep" "$wl"
  if [[ $WARM_WORKLOADS == *" $wl "* ]]; then
    [[ -n ${SKIP[$impl:$wl]:-} ]] && SKIP[$impl:${wl}_warm]=1
    run_timed "$impl" "$wl" "$rep" "${wl}_warm"
  fi
  # Sampled while the daemon still runs; the high-water mark covers the whole mount's life.
  hwm=$(daemon_hwm_kb "$impl")
  [[ -n $hwm ]] && record "$impl" rss "$rep" "$hwm" "$wl"
  unmount_impl "$impl"
}

# mount_fresh IMPL: a fresh upper and mount with cold caches; sets MOUNT_SECONDS. Tries twice,
# so that a passing hiccup does not cost the implementation the rest of the run.
mount_fresh() {
  local impl=$1 try t0
  for try in 1 2; do
    unmount_impl "$impl"
    reset_upper "$impl"
    drop_caches
    t0=$EPOCHREALTIME
    if mount_impl "$impl"; then
      MOUNT_SECONDS=$(since "$t0")
      return 0
    fi
    cp "$RUN_ROOT/last.err" "$RUN_ROOT/mount-failure-$impl.err"
    log "$impl: mount failed (try $try): $(last_error)"
    unmount_impl "$impl"
    ((try == 1)) && sleep 5
  done
  return 1
}

# run_timed IMPL WORKLOAD REP METRIC: times wl_WORKLOAD on IMPL's mount and records it as METRIC.
run_timed() {
  local impl=$1 wl=$2 rep=$3 metric=$4 mnt rc=0
  [[ -n ${SKIP[$impl:$metric]:-} ]] && return
  mnt=$(impl_dir "$impl")/mnt
  timed "$STEP_TIMEOUT" bash -o pipefail -c "wl_$wl \"\$1\"" _ "$mnt" || rc=$?
  if ((rc == 0)); then
    record "$impl" "$metric" "$rep" "$ELAPSED" "$OUTPUT"
    log "  $(impl_label "$impl") $metric #$rep: ${ELAPSED} s  [$OUTPUT]"
    # Keeps a full run near its time budget: a very slow workload is timed once, not $REPS times.
    if awk -v t="$ELAPSED" -v cap="$LONG_RUN" 'BEGIN { exit !(t > cap) }'; then
      SKIP[$impl:$metric]=1
      log "  (over $LONG_RUN s: not repeated)"
    fi
    return
  fi
  # After a timeout or failure another repetition would most likely end the same way, at the
  # cost of the time budget: record it and skip the rest of this metric for this implementation.
  SKIP[$impl:$metric]=1
  if ((rc == 124 || rc == 137)); then
    record "$impl" "$metric" "$rep" timeout "over $STEP_TIMEOUT s"
    log "  $(impl_label "$impl") $metric #$rep: timed out after $STEP_TIMEOUT s"
  else
    record "$impl" "$metric" "$rep" error "status $rc: $(last_error)"
    log "  $(impl_label "$impl") $metric #$rep: failed (status $rc): $(last_error)"
  fi
}

run_all() {
  local wl rep impl
  for wl in "${WORKLOADS[@]}"; do
    log "workload $wl"
    # Implementations take turns within each repetition, so a drift in the machine's speed
    # (other load, disk state) spreads over all of them instead of favouring one.
    for ((rep = 1; rep <= REPS; rep++)); do
      for impl in "${IMPLS[@]}"; do
        run_one "$impl" "$wl" "$rep"
      done
    done
  done
}

on_exit() {
  cleanup_mounts
  local left
  left=$(grep -E 'overlay|fuse' /proc/mounts | grep -F "$RUN_ROOT/")
  [[ -n $left ]] && log "warning: mounts left behind: $left"
}

main() {
  parse_args "$@"
  ((EUID == 0)) || die "run as root: the benchmark mounts filesystems and drops caches"
  local started=$EPOCHSECONDS
  ensure_tools awk:mawk find:findutils tar:tar dd:coreutils timeout:coreutils mknod:coreutils \
    setfattr:attr pgrep:procps mount:mount flock:util-linux fusermount3:fuse3 fuse-overlayfs:fuse-overlayfs
  command -v node > /dev/null || die "node is not installed"
  mkdir -p "$RUN_ROOT" "$RESULTS_DIR"
  # Two runs at once would share mountpoints and upper directories, and skew each other's times.
  exec 9> "$CACHE_ROOT/lock"
  flock -n 9 || die "another benchmark run holds $CACHE_ROOT/lock"
  trap on_exit EXIT
  trap 'exit 130' INT TERM
  cleanup_mounts   # whatever an interrupted earlier run left
  : > "$RESULTS_TSV"

  if [[ " ${IMPLS[*]} " == *" layerfs"* ]]; then
    check_layerfs
    if [[ -n $LAYERFS_UNAVAILABLE ]]; then
      local impl
      for impl in layerfs layerfs-passthrough; do
        BROKEN[$impl]=$LAYERFS_UNAVAILABLE
        record "$impl" '*' 0 notrun "$LAYERFS_UNAVAILABLE"
      done
    fi
  fi
  ensure_layers
  # Only the rows of the workloads run (with their warm repeats), and the mount time.
  describe_workloads | awk -F '\t' -v run=" ${WORKLOADS[*]} " '{ m = $1; sub(/_warm$/, "", m) } m == "mount" || index(run, " " m " ")' > "$RUN_ROOT/workloads.tsv"
  export -f "${WORKLOADS[@]/#/wl_}"

  log "running ${#WORKLOADS[@]} workloads x $REPS repetitions on: ${IMPLS[*]} ($MODE)"
  run_all
  cleanup_mounts

  local note
  for note in "${NOTES[@]}"; do printf '%s\n' "$note"; done > "$RUN_ROOT/notes.txt"
  BENCH_MODE=$MODE BENCH_REPS=$REPS BENCH_IMPLS="${IMPLS[*]}" BENCH_SECONDS=$((EPOCHSECONDS - started)) \
    BENCH_TIMEOUT=$STEP_TIMEOUT BENCH_USR_DIRS=$USR_DIRS BENCH_REPO=$REPO \
    timeout 60 node "$BENCH/lib/report.mjs" "$RUN_ROOT" "$CACHE" "$RESULTS_DIR"
}

main "$@"
