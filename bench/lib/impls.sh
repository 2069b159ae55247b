# Mounting, unmounting and finding the daemon of each implementation (sourced by run.sh).
# Implementations: overlay (kernel overlayfs), fuse-overlayfs, layerfs, and layerfs-passthrough
# (layerfs with --passthrough: the kernel reads lower files itself; opt-in on a writable mount).
# Each has its own directory $RUN_ROOT/IMPL with mnt/, upper/ and work/.

LAYERFS_BIN=$REPO/bin/layerfs.js
MOUNT_TIMEOUT=90   # seconds a mount may take before it counts as failed
UMOUNT_TIMEOUT=60

impl_label() {
  case $1 in
    overlay) echo "kernel overlayfs" ;;
    layerfs-passthrough) echo "layerfs --passthrough" ;;
    *) echo "$1" ;;
  esac
}

impl_dir() { echo "$RUN_ROOT/$1"; }

# Lower directories, top first, as all three implementations take them.
lowerdirs() { echo "$LAYERS/top:$LAYERS/mid:$LAYERS/base"; }

# Empties the upper and work directories so every run starts from the bare lower layers.
reset_upper() {
  local dir
  dir=$(impl_dir "$1")
  timeout 300 rm -rf "$dir/upper" "$dir/work" || die "cannot remove $dir/upper"
  mkdir -p "$dir/upper" "$dir/work" "$dir/mnt"
}

# mount_impl IMPL: mounts IMPL on its mnt/ and returns once the mount serves requests.
# Writes the mount command's errors to $RUN_ROOT/last.err.
mount_impl() {
  local impl=$1 dir lower
  dir=$(impl_dir "$impl")
  lower=$(lowerdirs)
  case $impl in
    overlay)
      timeout "$MOUNT_TIMEOUT" mount -t overlay overlay \
        -o "lowerdir=$lower,upperdir=$dir/upper,workdir=$dir/work" "$dir/mnt" ;;
    fuse-overlayfs)
      timeout "$MOUNT_TIMEOUT" fuse-overlayfs \
        -o "lowerdir=$lower,upperdir=$dir/upper,workdir=$dir/work" "$dir/mnt" ;;
    layerfs | layerfs-passthrough)
      local extra=()
      [[ $impl == layerfs-passthrough ]] && extra=(--passthrough)
      timeout "$MOUNT_TIMEOUT" node "$LAYERFS_BIN" mount "${extra[@]}" \
        --lower "$lower" --upper "$dir/upper" --workdir "$dir/work" "$dir/mnt" ;;
  esac 2> "$RUN_ROOT/last.err" || return 1
  # Remember the daemon's pid, for its RSS and for the exit trap should unmounting fail.
  if [[ $impl != overlay ]]; then
    local pid
    pid=$(daemon_pid "$impl")
    [[ -n $pid ]] && echo "$pid" >> "$RUN_ROOT/daemon-pids"
  fi
  is_mounted "$dir/mnt" || { echo "not in /proc/mounts after mounting" >> "$RUN_ROOT/last.err"; return 1; }
  # A mount that is listed but cannot stat its own root is of no use to any workload.
  timeout 30 stat "$dir/mnt" > /dev/null 2>> "$RUN_ROOT/last.err"
}

is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }

# daemon_pid IMPL: the pid of the FUSE daemon serving IMPL's mount (nothing for the kernel).
daemon_pid() {
  local impl=$1 mnt
  mnt=$(impl_dir "$impl")/mnt
  case $impl in
    fuse-overlayfs) pgrep -n -f -- "^fuse-overlayfs .*$mnt\$" ;;
    layerfs | layerfs-passthrough) layerfs_pid "$mnt" ;;
  esac
}

# layerfs records each mount in /run/layerfs/mounts/*.json ({"pid": ..., "mountpoint": ...});
# fall back to the newest mount daemon (`dist/bundle/daemon.cjs`; its command line names no mountpoint,
# and the benchmark runs one layerfs mount at a time).
layerfs_pid() {
  local mnt=$1 pid
  pid=$(node -e '
    const fs = require("fs"), dir = "/run/layerfs/mounts";
    let files = [];
    try { files = fs.readdirSync(dir).filter((f) => f.endsWith(".json")); } catch {}
    for (const f of files) {
      try {
        const s = JSON.parse(fs.readFileSync(`${dir}/${f}`, "utf8"));
        if (s.mountpoint === process.argv[1]) { console.log(s.pid); break; }
      } catch {}
    }' "$mnt" 2> /dev/null)
  if [[ -z $pid ]] || ! kill -0 "$pid" 2> /dev/null; then
    pid=$(pgrep -n -f -- "dist/bundle/daemon.cjs")
  fi
  echo "$pid"
}

# Peak resident set size (VmHWM, kB) of IMPL's daemon so far; empty for the kernel.
daemon_hwm_kb() {
  local pid
  pid=$(daemon_pid "$1")
  [[ -n $pid ]] && awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2> /dev/null
}

# unmount_impl IMPL: unmounts IMPL's mount and waits for its daemon to exit, so that neither the
# daemon nor its late writes overlap the next run.
unmount_impl() {
  local impl=$1 dir pid i
  dir=$(impl_dir "$impl")
  is_mounted "$dir/mnt" || return 0
  pid=$(daemon_pid "$impl")
  case $impl in
    overlay) timeout "$UMOUNT_TIMEOUT" umount "$dir/mnt" ;;
    fuse-overlayfs) timeout "$UMOUNT_TIMEOUT" fusermount3 -u "$dir/mnt" ;;
    layerfs | layerfs-passthrough) timeout "$UMOUNT_TIMEOUT" node "$LAYERFS_BIN" umount "$dir/mnt" ;;
  esac || log "unmounting $impl failed (status $?)"
  if is_mounted "$dir/mnt"; then
    log "$impl is still mounted; detaching it lazily"
    timeout "$UMOUNT_TIMEOUT" umount -l "$dir/mnt"
  fi
  if [[ -n $pid ]]; then
    for ((i = 0; i < UMOUNT_TIMEOUT * 10; i++)); do
      kill -0 "$pid" 2> /dev/null || return 0
      sleep 0.1
    done
    log "$impl daemon $pid did not exit after unmounting"
  fi
}

# Exit trap: unmounts whatever is still mounted under $RUN_ROOT, then ends any daemon this run
# started (by the pids it recorded) that outlived its mount.
cleanup_mounts() {
  local impl mnt pid
  for impl in overlay fuse-overlayfs layerfs layerfs-passthrough; do
    is_mounted "$(impl_dir "$impl")/mnt" && unmount_impl "$impl"
  done
  # Anything else under our run directory (e.g. left by an interrupted earlier run).
  while read -r mnt; do
    log "detaching leftover mount $mnt"
    umount "$mnt" 2> /dev/null || umount -l "$mnt"
  done < <(awk -v r="$RUN_ROOT/" 'index($2, r) == 1 { print $2 }' /proc/mounts)
  if [[ -f $RUN_ROOT/daemon-pids ]]; then
    while read -r pid; do
      # Only if the pid still belongs to one of our daemons, not a process that reused it.
      if grep -qa -e fuse-overlayfs -e layerfs.js "/proc/$pid/cmdline" 2> /dev/null; then
        log "ending leftover daemon $pid"
        kill "$pid"
      fi
    done < "$RUN_ROOT/daemon-pids"
    rm -f "$RUN_ROOT/daemon-pids"
  fi
}
