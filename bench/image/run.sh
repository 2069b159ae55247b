#!/usr/bin/env bash
# Image mounts and commits (issue 5): the time from starting `layerfs mount IMAGE MOUNTPOINT` of a
# cached image to the first successful `stat` in the mount, for a Debian-sized image and for
# synthetic images of 20,000 / 50,000 / 200,000 small files (how it grows); and `layerfs commit`
# of a writable layer with 10,000 changed files against `tar czf` of the same upper directory.
# Prints markdown tables of medians. Not a test: nothing fails on a slow result. See README.md.
#
#   sudo bash bench/image/run.sh                              # REPS=5 mounts, COMMIT_REPS=3
#   REPS=3 COMMIT_REPS=1 SIZES=20000 sudo bash bench/image/run.sh   # quicker
#   COLD=0 sudo bash bench/image/run.sh                       # never drop the page cache
#
# Environment: WORK (default /var/tmp/layerfs-bench-image: the images, the store, results), REPS
# (mounts per image and kind, default 5), COMMIT_REPS (default 3), SIZES (file counts of the
# synthetic images, multiples of 1000, default "20000 50000 200000"), COLD=0 (skip the mounts
# after `echo 3 > /proc/sys/vm/drop_caches`, which also slow whatever else runs on the machine),
# SKIP_COMMIT=1, SKIP_MOUNTS=1, BUILD=0 (never rebuild dist/), STEP_TIMEOUT (seconds, default 600).
#
# Needs root (mounting, drop_caches), tar, gzip, time, procps, node; about 5 GiB free in WORK
# (images 0.6 GiB, store 3.6 GiB, the commit's writable layer and archives) and 0.5 GiB in /dev/shm
# while the synthetic images are generated. Tables go to stdout and WORK/tables.md.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cli=$repo/bin/layerfs.js
WORK=${WORK:-/var/tmp/layerfs-bench-image}
REPS=${REPS:-5}
COMMIT_REPS=${COMMIT_REPS:-3}
SIZES=${SIZES:-20000 50000 200000}
COLD=${COLD:-1}
SKIP_COMMIT=${SKIP_COMMIT:-0}
SKIP_MOUNTS=${SKIP_MOUNTS:-0}
BUILD=${BUILD:-1}
STEP_TIMEOUT=${STEP_TIMEOUT:-600}
IMAGE_VERSION=1 # bump when an image's recipe changes: a built image of another version is rebuilt
COMMIT_NAME=layerfs-bench-commit

log() { printf 'image-bench %(%H:%M:%S)T: %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 is missing ($2)"; }

need tar 'apt-get install tar'
need gzip 'apt-get install gzip'
need /usr/bin/time 'apt-get install time'
need node 'Node.js >= 20'
need ps 'apt-get install procps'
[[ $(id -u) == 0 ]] || die "run as root (layerfs mounts need it, and so does drop_caches)"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive number, not '$REPS'"
[[ $COMMIT_REPS =~ ^[1-9][0-9]*$ ]] || die "COMMIT_REPS must be a positive number, not '$COMMIT_REPS'"
for n in $SIZES; do
  [[ $n =~ ^[1-9][0-9]*000$ ]] || die "SIZES: $n is not a multiple of 1000"
done
mkdir -p "$WORK"
exec 9>"$WORK/lock"
flock -n 9 || die "another run holds $WORK/lock"

store=$WORK/store    # layerfs' store (kept between runs: the images stay pulled)
rundir=$WORK/run     # --run-dir: this run's mount state and daemon logs, apart from other mounts
mnt=$WORK/mnt
out=$WORK/out        # tar czf's archives
gen=/dev/shm/layerfs-bench-image-gen
results=$WORK/mounts.tsv
commits=$WORK/commits.tsv
mkdir -p "$rundir" "$mnt"

# True while process PID runs. Not `kill -0`: an exited daemon (its parent gone) stays a zombie
# until PID 1 reaps it, which on this kind of VM (a Firecracker init) takes up to ~2 s.
alive() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ -n $state && $state != Z* ]]
}

# Removes every writable layer of the benchmark's own store that is not mounted (what an
# interrupted run leaves behind: a mount can be interrupted after it made its layer).
remove_layers() {
  local name
  for name in $(node "$cli" ps -a --root "$store" 2>/dev/null | awk 'NR > 1 && $6 == "unmounted" { print $1 }'); do
    node "$cli" rm --root "$store" "$name" >/dev/null 2>&1 || log "warning: could not remove the writable layer $name"
  done
}

# --- clean-up: only what this run started or made ----------------------------------------------
daemons=()    # pids of mount daemons this run started
containers=() # writable layers this run made
cleanup() {
  set +e
  if grep -qF " $mnt " /proc/mounts; then
    timeout 60 node "$cli" umount --run-dir "$rundir" "$mnt" 2>/dev/null || umount -l "$mnt"
  fi
  local pid
  for pid in "${daemons[@]}"; do
    # A daemon still alive 10 s after its unmount is ended; only pids this run recorded.
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
    # A pid reused meanwhile is left alone: ours are a mount daemon, or the CLI serving this store.
    alive "$pid" && grep -qE "daemon\.js|$store" "/proc/$pid/cmdline" 2>/dev/null && { log "ending daemon $pid"; kill "$pid"; }
  done
  local name
  for name in "${containers[@]}"; do node "$cli" rm --root "$store" "$name" >/dev/null 2>&1; done
  [[ -d $store ]] && remove_layers
  rm -rf "$gen" "$out"
  grep -qF " $mnt " /proc/mounts && log "warning: $mnt is still mounted"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- layerfs from dist/, rebuilt when src/ is newer ---------------------------------------------
# shellcheck source=../lib/build.sh
source "$repo/bench/lib/build.sh"
build_if_stale "$repo" "$BUILD"
node "$cli" --help >/dev/null || die "node bin/layerfs.js does not start (build it: npm run build)"
if grep -qF " $mnt " /proc/mounts; then
  log "unmounting $mnt, left mounted by an earlier run"
  node "$cli" umount --run-dir "$rundir" "$mnt" || umount -l "$mnt"
fi
[[ -d $store ]] && remove_layers

# --- images: OCI layouts of gzip layers made with GNU tar ---------------------------------------
# WORK/images/layerfs-bench-KEY/ holds the layers, the layout (oci/layerfs-bench-KEY/) and the
# facts the tables show; COMPLETE (written last) names the recipe, and anything else is built
# again. In the store the image is named localhost/layerfs-bench-KEY:1 (layerfs names an image
# from a layout after the layout's directory and its ref.name, "1").

store_blob() { # LAYOUT FILE: hardlinks FILE into the layout; prints "digest size"
  local digest
  digest=$(sha256sum <"$2" | cut -d' ' -f1)
  ln -f "$2" "$1/blobs/sha256/$digest"
  echo "$digest $(stat -c %s "$2")"
}

write_layout() { # DIR NLAYERS: DIR/oci/<name of DIR> from DIR/layer-{1..N}.tar.gz (+ .diffid), bottom first
  local dir=$1 count=$2 layout=$1/oci/${1##*/} layers='' diffids='' history='' n digest size arch
  rm -rf "$dir/oci"
  mkdir -p "$layout/blobs/sha256"
  for ((n = 1; n <= count; n++)); do
    read -r digest size < <(store_blob "$layout" "$dir/layer-$n.tar.gz")
    layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$digest\",\"size\":$size}"
    diffids+="${diffids:+,}\"sha256:$(cat "$dir/layer-$n.diffid")\""
    history+="${history:+,}{\"created\":\"2026-01-01T00:00:00Z\",\"created_by\":\"bench/image/run.sh layer $n\"}"
  done
  arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
  printf '{"created":"2026-01-01T00:00:00Z","architecture":"%s","os":"linux","config":{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[%s]},"history":[%s]}' \
    "$arch" "$diffids" "$history" >"$dir/config.json"
  read -r digest size < <(store_blob "$layout" "$dir/config.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
    "$digest" "$size" "$layers" >"$dir/manifest.json"
  read -r digest size < <(store_blob "$layout" "$dir/manifest.json")
  printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"1"}}]}' \
    "$digest" "$size" >"$layout/index.json"
  echo "sha256:$digest" >"$dir/manifest.digest"
}

compress_layer() { # DIR N: DIR/layer-N.tar -> .tar.gz, .diffid, .list (its entry names)
  sha256sum <"$1/layer-$2.tar" | cut -d' ' -f1 >"$1/layer-$2.diffid"
  tar -tf "$1/layer-$2.tar" | sed 's|/$||' >"$1/layer-$2.list"
  gzip -6 -n <"$1/layer-$2.tar" >"$1/layer-$2.tar.gz"
  rm "$1/layer-$2.tar"
}

finish_image() { # DIR NLAYERS RECIPE: layout, facts, COMPLETE
  local dir=$1 count=$2 n
  write_layout "$dir" "$count"
  echo "$count" >"$dir/layers"
  cat "$dir"/layer-*.list | sort -u | wc -l >"$dir/entries" # the merged tree's entries (no deletions here)
  cat "$dir"/layer-*.tar.gz | wc -c >"$dir/compressed"
  echo "$3" >"$dir/COMPLETE"
}

existing() { # PATHS... relative to /: those that exist (a missing one would fail tar)
  local p
  for p in "$@"; do [[ -e /$p || -L /$p ]] && printf '%s\n' "$p"; done
  return 0
}

# "debian": three layers of this machine's Debian files, about 120,000 entries (a full system's
# /usr rather than the small debian:12 base image). /etc/os-release, the file the benchmark stats,
# is a symlink to ../usr/lib/os-release in the bottom layer, so the first stat walks every layer.
debian_layer() { # DIR N PARENTS -- TREES: layer N = the PARENTS directories alone + whole TREES
  local dir=$1 n=$2 rc=0 parents=() trees=()
  shift 2
  while [[ $1 != -- ]]; do parents+=("$1"); shift; done
  shift
  mapfile -t parents < <(existing "${parents[@]}")
  mapfile -t trees < <(existing "$@")
  ((${#trees[@]} > 0)) || { log "layer $n of the debian image: none of $* exists here"; return 1; }
  tar -C / --numeric-owner -cf "$dir/layer-$n.tar" --no-recursion "${parents[@]}" --recursion "${trees[@]}" 2>"$dir/layer-$n.log" || rc=$?
  ((rc <= 1)) || { cat "$dir/layer-$n.log" >&2; return 1; } # 1: a file changed while being read
  compress_layer "$dir" "$n"
}

build_debian() { # DIR
  local dir=$1 pids=() pid
  rm -rf "$dir"
  mkdir -p "$dir"
  log "making the debian image's 3 layers from /etc, /var/lib/dpkg and /usr (tar + gzip -6: a few minutes)"
  debian_layer "$dir" 1 usr usr/lib var var/lib -- etc var/lib/dpkg usr/lib/os-release usr/bin usr/sbin usr/share &
  pids+=($!)
  debian_layer "$dir" 2 usr usr/lib -- usr/include usr/libexec usr/lib/python3 usr/lib/python3.11 usr/lib/node_modules usr/lib/systemd usr/lib/git-core &
  pids+=($!)
  debian_layer "$dir" 3 usr usr/lib usr/lib/google-cloud-sdk -- usr/lib/google-cloud-sdk/lib &
  pids+=($!)
  for pid in "${pids[@]}"; do wait "$pid" || die "making a layer of the debian image failed"; done
  finish_image "$dir" 3 "$2"
}

# "files-N": one layer of N small files, N/1000 directories of 1000 (d000/f0000 ...), plus
# etc/os-release; file sizes 17-1047 bytes (its name, then zeros), about 530 on average.
build_files() { # DIR N RECIPE
  local dir=$1 n=$2 d f dn fn pad
  rm -rf "$dir" "$gen"
  mkdir -p "$dir" "$gen/etc"
  log "making the files-$n image (generating $n files in $gen)"
  printf 'PRETTY_NAME="layerfs bench, %s files"\nID=layerfs-bench\n' "$n" >"$gen/etc/os-release"
  printf -v pad '%01024d' 0
  for ((d = 0; d < n / 1000; d++)); do
    printf -v dn 'd%03d' "$d"
    mkdir "$gen/$dn"
    for ((f = 0; f < 1000; f++)); do
      printf -v fn 'f%04d' "$f"
      printf 'file %s/%s\n%s\n' "$dn" "$fn" "${pad:0:$(((d * 1000 + f) * 7919 % 1031))}" >"$gen/$dn/$fn"
    done
  done
  (cd "$gen" && find . -mindepth 1 -maxdepth 1 -printf '%f\n' | sort) >"$dir/top.list"
  tar -C "$gen" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1767225600 -cf "$dir/layer-1.tar" -T "$dir/top.list"
  rm -rf "$gen"
  compress_layer "$dir" 1
  finish_image "$dir" 1 "$3"
}

keys=(debian)
for n in $SIZES; do keys+=("files-$n"); done
for key in "${keys[@]}"; do
  dir=$WORK/images/layerfs-bench-$key
  if [[ $key == debian ]]; then
    recipe="version=$IMAGE_VERSION debian"
    [[ $(cat "$dir/COMPLETE" 2>/dev/null) == "$recipe" ]] || build_debian "$dir" "$recipe"
  else
    recipe="version=$IMAGE_VERSION files=${key#files-}"
    [[ $(cat "$dir/COMPLETE" 2>/dev/null) == "$recipe" ]] || build_files "$dir" "${key#files-}" "$recipe"
  fi
  [[ -f $dir/oci/layerfs-bench-$key/index.json ]] || write_layout "$dir" "$(cat "$dir/layers")"
  # Into the store (a pull of an image the store has only reads the manifest).
  t0=$EPOCHREALTIME
  node "$cli" pull --root "$store" --quiet "oci:$dir/oci/layerfs-bench-$key" >"$WORK/pull.out" || die "layerfs pull of oci:$dir/oci/layerfs-bench-$key failed"
  [[ $(cat "$WORK/pull.out") == "$(cat "$dir/manifest.digest")" ]] || die "pull of $key gave $(cat "$WORK/pull.out"), the layout has $(cat "$dir/manifest.digest")"
  log "image $key: $(cat "$dir/entries") entries in $(cat "$dir/layers") layer(s), $(($(cat "$dir/compressed") / 1024 / 1024)) MiB compressed; in the store (pull: $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s)"
done
ref_of() { echo "localhost/layerfs-bench-$1:1"; }

# --- one mount, timed ------------------------------------------------------------------------
# Sets MOUNT_US (start of `layerfs mount` to its return), STAT_US (start of `layerfs mount` to
# the first successful `stat -L MNT/etc/os-release`), UMOUNT_US, EXIT_US (from umount's return
# until the daemon has exited: the next mount waits for it; in mounts.tsv only), in microseconds.
daemon_pid() {
  local file
  file=$(grep -lF "\"mountpoint\": \"$mnt\"" "$rundir"/mounts/*.json 2>/dev/null) || true
  file=${file%%$'\n'*}
  [[ -n $file ]] && sed -n 's/^ *"pid": *\([0-9]*\).*/\1/p' "$file" | sed -n 1p
}

# KINDS: rw (a new writable layer, as `layerfs mount IMAGE MP` makes), ro (--read-only), cold (rw
# after drop_caches), fg (--read-only --foreground: one process serves, no daemon is started; it
# runs in the background here and the mountpoint is polled every 5 ms until the stat succeeds).
mount_once() { # KEY KIND
  local key=$1 kind=$2 args=() name='' pid='' t0 t1 t2 t3 t4 deadline tries=0
  [[ $kind == ro || $kind == fg ]] && args+=(--read-only)
  sync
  [[ $kind == cold ]] && echo 3 >/proc/sys/vm/drop_caches
  t0=${EPOCHREALTIME/[.,]/}
  if [[ $kind == fg ]]; then
    node "$cli" mount --root "$store" --run-dir "$rundir" --quiet --foreground "${args[@]}" "$(ref_of "$key")" "$mnt" >>"$WORK/foreground.log" 2>&1 &
    pid=$!
    daemons+=("$pid")
    t1=''
  else
    name=$(timeout "$STEP_TIMEOUT" node "$cli" mount --root "$store" --run-dir "$rundir" --quiet "${args[@]}" "$(ref_of "$key")" "$mnt") ||
      die "layerfs mount $(ref_of "$key") failed (daemon log: $rundir/logs/)"
    t1=${EPOCHREALTIME/[.,]/}
    [[ $kind == ro ]] || containers+=("$name")
    pid=$(daemon_pid) || true
    [[ -n $pid ]] && daemons+=("$pid")
  fi
  deadline=$((t0 + 60000000))
  until tries=$((tries + 1)) && stat -L -c %s -- "$mnt/etc/os-release" >/dev/null 2>&1; do
    ((${EPOCHREALTIME/[.,]/} < deadline)) || die "no successful stat of $mnt/etc/os-release within 60 s of starting the mount"
    if [[ $kind == fg ]]; then
      alive "$pid" || die "layerfs mount --foreground exited (see $WORK/foreground.log)"
      sleep 0.005
    fi
  done
  t2=${EPOCHREALTIME/[.,]/}
  timeout 120 node "$cli" umount --run-dir "$rundir" "$mnt" || die "layerfs umount $mnt failed"
  t3=${EPOCHREALTIME/[.,]/}
  if [[ $kind == fg ]]; then
    wait "$pid" || die "layerfs mount --foreground ended with an error (see $WORK/foreground.log)"
  elif [[ -n $pid ]]; then
    while alive "$pid"; do
      ((${EPOCHREALTIME/[.,]/} < t3 + 60000000)) || die "the daemon (pid $pid) is still running 60 s after its unmount"
      sleep 0.02
    done
  fi
  t4=${EPOCHREALTIME/[.,]/}
  if [[ $kind == rw || $kind == cold ]]; then
    node "$cli" rm --root "$store" "$name" >/dev/null || die "layerfs rm $name failed"
    unset 'containers[-1]'
  fi
  MOUNT_US=${t1:+$((t1 - t0))} STAT_US=$((t2 - t0)) UMOUNT_US=$((t3 - t2)) EXIT_US=$((t4 - t3)) STAT_TRIES=$tries
}

# Start-up of Node and of the CLI alone, for comparison: a mount starts two such processes
# (the command, then the daemon, which signals ready).
time_cmd_us() { # COMMAND...: sets CMD_US
  local t0
  t0=${EPOCHREALTIME/[.,]/}
  "$@" >/dev/null
  CMD_US=$((${EPOCHREALTIME/[.,]/} - t0))
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$EPOCHSECONDS
kinds=(rw ro fg)
((COLD)) && kinds=(cold rw ro fg) # cold first: the warm mounts then follow a mount of the same image

if ((!SKIP_MOUNTS)); then
  : >"$results"
  # Sanity, untimed: each image mounts and shows what it should.
  for key in "${keys[@]}"; do
    name=$(node "$cli" mount --root "$store" --run-dir "$rundir" --quiet --read-only "$(ref_of "$key")" "$mnt") || die "mount of $key failed"
    pid=$(daemon_pid) || true
    [[ -n $pid ]] && daemons+=("$pid")
    grep -q '^ID=' "$mnt/etc/os-release" || die "$key: $mnt/etc/os-release has no ID= line"
    top=$(find "$mnt" -mindepth 1 -maxdepth 1 | wc -l)
    if [[ $key == files-* ]]; then
      n=${key#files-}
      last=$(printf '%s/d%03d/f0999' "$mnt" $((n / 1000 - 1)))
      [[ -f $last ]] || die "$key: $last is missing"
      ((top == n / 1000 + 1)) || die "$key: the root lists $top names, not $((n / 1000 + 1))"
    fi
    log "sanity: $key mounts, root has $top names, etc/os-release reads"
    node "$cli" umount --run-dir "$rundir" "$mnt"
    [[ -n $pid ]] && while alive "$pid"; do sleep 0.05; done
  done

  for rep in $(seq "$REPS"); do
    time_cmd_us node -e 0
    printf '%s\tnode -e 0\t-\t%s\t\t\t\t\n' "$rep" "$CMD_US" >>"$results"
    time_cmd_us node "$cli" --version
    printf '%s\tlayerfs --version\t-\t%s\t\t\t\t\n' "$rep" "$CMD_US" >>"$results"
    # The images take turns, starting one further each round, so a drift hits them all alike.
    for ((i = 0; i < ${#keys[@]}; i++)); do
      key=${keys[$(((i + rep - 1) % ${#keys[@]}))]}
      for kind in "${kinds[@]}"; do
        mount_once "$key" "$kind"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$key" "$kind" "$MOUNT_US" "$STAT_US" "$UMOUNT_US" "$EXIT_US" "$STAT_TRIES" >>"$results"
        shown=-
        [[ -n $MOUNT_US ]] && shown=$((MOUNT_US / 1000))
        log "#$rep $key $kind: mount returned after $shown ms, first stat after $((STAT_US / 1000)) ms (stat run $STAT_TRIES time(s)); umount $((UMOUNT_US / 1000)) ms, daemon gone $((EXIT_US / 1000)) ms later"
      done
    done
  done
fi

# --- commit: 10,000 changed files in a writable layer of the debian image -----------------------
# Through the mount (so the upper is what layerfs makes of it):
#   C  4,500 regular files of /usr/share (every k-th of the sorted list) get a line appended: each
#      is copied up whole;
#   D  500 more of that list (every 10th pick) are deleted: whiteouts;
#   A  5,000 new files under /opt/bench-new: every k-th regular file of this machine's /usr/lib up
#      to 1 MiB (shared objects, Python, data...), with their directories, unpacked by tar.
# Then unmounted; timed on the same upper: `layerfs commit NAME REPO:TAG` (tar + gzip -6 into the
# store, digests, blob, image) and `tar -czf FILE -C UPPER .` (GNU tar with gzip -6 in a second
# process) into a file on the same disk, in alternating order.
if ((!SKIP_COMMIT)); then
  : >"$commits"
  ref=$(ref_of debian)
  if node "$cli" ps -a --root "$store" | awk -v name="$COMMIT_NAME" 'NR > 1 && $1 == name { found = 1 } END { exit !found }'; then
    node "$cli" rm --root "$store" "$COMMIT_NAME" >/dev/null || die "cannot remove the writable layer $COMMIT_NAME of an earlier run"
  fi
  node "$cli" mount --root "$store" --run-dir "$rundir" --quiet --name "$COMMIT_NAME" "$ref" "$mnt" >/dev/null || die "mount of $ref failed"
  containers+=("$COMMIT_NAME")
  pid=$(daemon_pid) || true
  [[ -n $pid ]] && daemons+=("$pid")
  t0=$EPOCHREALTIME
  (cd "$mnt" && find usr/share -type f) | sort >"$WORK/share.list"
  k=$(($(wc -l <"$WORK/share.list") / 5000))
  ((k >= 1)) || die "the debian image has fewer than 5,000 files in /usr/share"
  awk -v k="$k" 'NR % k == 0 && ++n <= 5000' "$WORK/share.list" >"$WORK/picked.list"
  awk 'NR % 10 != 0' "$WORK/picked.list" >"$WORK/changed.list"
  awk 'NR % 10 == 0' "$WORK/picked.list" >"$WORK/deleted.list"
  (cd / && find usr/lib -type f -size -1025k) | sort >"$WORK/lib.list"
  k=$(($(wc -l <"$WORK/lib.list") / 5000))
  ((k >= 1)) || die "this machine has fewer than 5,000 files up to 1 MiB in /usr/lib"
  awk -v k="$k" 'NR % k == 0 && ++n <= 5000' "$WORK/lib.list" >"$WORK/added.list"
  [[ $(wc -l <"$WORK/changed.list") == 4500 && $(wc -l <"$WORK/deleted.list") == 500 && $(wc -l <"$WORK/added.list") == 5000 ]] ||
    die "could not pick 4,500 + 500 + 5,000 files"
  log "writing 4,500 changed, 500 deleted and 5,000 new files through the mount"
  while IFS= read -r f; do printf 'changed by bench/image/run.sh\n' >>"$mnt/$f"; done <"$WORK/changed.list"
  (cd "$mnt" && tr '\n' '\0' <"$WORK/deleted.list" | xargs -0 rm -f --)
  mkdir -p "$mnt/opt/bench-new"
  tar -C / -cf - --no-recursion -T "$WORK/added.list" | tar -C "$mnt/opt/bench-new" -xf -
  sync
  write_s=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  node "$cli" umount --run-dir "$rundir" "$mnt" || die "layerfs umount $mnt failed"
  [[ -n $pid ]] && while alive "$pid"; do sleep 0.05; done
  upper=$store/containers/$COMMIT_NAME/upper
  [[ -d $upper ]] || die "no upper directory at $upper"
  upper_entries=$(find "$upper" -mindepth 1 | wc -l)
  upper_files=$(find "$upper" -type f | wc -l)
  upper_dirs=$(find "$upper" -mindepth 1 -type d | wc -l)
  upper_whiteouts=$(find "$upper" -type f -name '.wh.*' | wc -l)
  upper_bytes=$(find "$upper" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
  log "upper: $upper_entries entries, $upper_files regular files ($upper_whiteouts whiteouts), $upper_dirs directories, $((upper_bytes / 1024 / 1024)) MiB; writing it took ${write_s} s"

  commit_run() { # REP NAME COMMAND...
    local rep=$1 name=$2 wall rss user sys
    shift 2
    sync
    /usr/bin/time -f '%e %M %U %S' -o "$WORK/time.txt" timeout "$STEP_TIMEOUT" "$@" >"$WORK/run.log" 2>&1 || {
      tail -n 20 "$WORK/run.log" >&2
      die "$name failed"
    }
    read -r wall rss user sys <"$WORK/time.txt"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$name" "$wall" "$rss" "$user" "$sys" >>"$commits"
    log "#$rep $name: ${wall}s, peak RSS $((rss / 1024)) MiB"
  }
  layerfs_commit() {
    commit_run "$1" 'layerfs commit' node "$cli" commit --root "$store" "$COMMIT_NAME" "localhost/layerfs-bench-committed:$1"
    digest=$(node "$cli" inspect --root "$store" "localhost/layerfs-bench-committed:$1" |
      node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).manifest.layers.at(-1).digest))')
    blob=$store/blobs/sha256/${digest#sha256:}
    commit_bytes=$(stat -c %s "$blob")
    if (($1 == 1)); then commit_entries=$(tar -tzf "$blob" | wc -l); fi
    node "$cli" rmi --root "$store" "localhost/layerfs-bench-committed:$1" >/dev/null || die "layerfs rmi of the committed image failed"
  }
  tar_czf() {
    rm -rf "$out"
    mkdir -p "$out"
    commit_run "$1" 'tar czf' tar -czf "$out/upper.tar.gz" -C "$upper" .
    tar_bytes=$(stat -c %s "$out/upper.tar.gz")
    if (($1 == 1)); then tar_entries=$(($(tar -tzf "$out/upper.tar.gz" | wc -l) - 1)); fi # less "./"
    rm -rf "$out"
  }
  for rep in $(seq "$COMMIT_REPS"); do
    if ((rep % 2)); then layerfs_commit "$rep"; tar_czf "$rep"; else tar_czf "$rep"; layerfs_commit "$rep"; fi
  done
  node "$cli" rm --root "$store" "$COMMIT_NAME" >/dev/null || log "warning: could not remove the writable layer $COMMIT_NAME"
  containers=() # the rw mounts' layers were removed after each mount
  printf '%s %s %s %s %s %s %s %s %s %s\n' "$upper_entries" "$upper_files" "$upper_whiteouts" "$upper_bytes" "$commit_entries" "$tar_entries" "$commit_bytes" "$tar_bytes" "$write_s" "$upper_dirs" >"$WORK/commit-facts.txt"
fi
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# --- tables --------------------------------------------------------------------------------------
# Also written to WORK/tables.md; WORK/mounts.tsv and WORK/commits.tsv have every sample.
facts() { # KEY: "entries layers compressed-bytes"
  local dir=$WORK/images/layerfs-bench-$1
  echo "$(cat "$dir/entries") $(cat "$dir/layers") $(cat "$dir/compressed")"
}
{
  echo
  echo "$(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r), node $(node --version);" \
    "store on $(findmnt -n -o FSTYPE -T "$store" 2>/dev/null | head -n 1); load average at start $load_start, at end $load_end;" \
    "$(date -u +%F); $(((EPOCHSECONDS - started) / 60)) min"
  if ((!SKIP_MOUNTS)); then
    echo
    echo "Mounts: median of $REPS per image and kind; times from starting \`layerfs mount\`."
    echo
    for key in "${keys[@]}"; do printf '%s %s\n' "$key" "$(facts "$key")"; done >"$WORK/images.txt"
    node --input-type=module - "$results" "$WORK/images.txt" "$COLD" <<'EOF'
import { readFileSync } from 'node:fs';

const rows = readFileSync(process.argv[2], 'utf8').trim().split('\n').map((line) => line.split('\t'));
const images = readFileSync(process.argv[3], 'utf8').trim().split('\n').map((line) => line.split(' '));
const cold = process.argv[4] === '1';
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const pick = (image, kind, col) => rows.filter((r) => r[1] === image && r[2] === kind).map((r) => Number(r[col]) / 1e6);
const sec = (x) => (x >= 1 ? x.toFixed(2) : x.toFixed(3));
const range = (xs) => `${sec(Math.min(...xs))}-${sec(Math.max(...xs))}`;
const num = (n) => Number(n).toLocaleString('en-US');
const header = ['image', 'entries', 'layers', 'gzip MiB', 'mount returns (s)', 'first stat (s)', 'first stat: range', 'read-only: first stat (s)', 'one process (--foreground, read-only): first stat (s)'];
if (cold) header.push('after drop_caches: mount returns (s)', 'after drop_caches: first stat (s)');
header.push('umount (s)');
console.log(`| ${header.join(' | ')} |`);
console.log(`|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
for (const [key, entries, layers, bytes] of images) {
  const mib = Number(bytes) / 1048576;
  const cells = [key, num(entries), layers, mib < 10 ? mib.toFixed(1) : mib.toFixed(0)];
  cells.push(sec(median(pick(key, 'rw', 3))), `**${sec(median(pick(key, 'rw', 4)))}**`, range(pick(key, 'rw', 4)), sec(median(pick(key, 'ro', 4))), sec(median(pick(key, 'fg', 4))));
  if (cold) cells.push(sec(median(pick(key, 'cold', 3))), sec(median(pick(key, 'cold', 4))));
  const all = rows.filter((r) => r[1] === key);
  cells.push(sec(median(all.map((r) => Number(r[5]) / 1e6))));
  console.log(`| ${cells.join(' | ')} |`);
}
const timed = rows.filter((r) => r[2] !== '-');
const first = timed.filter((r) => r[2] !== 'fg' && r[7] === '1').length;
console.log();
console.log(`After \`mount\` returned, the first \`stat\` succeeded in ${first} of ${timed.filter((r) => r[2] !== 'fg').length} mounts.`);
console.log();
console.log('| start-up alone, for comparison | median (s) |');
console.log('|---|---:|');
for (const name of ['node -e 0', 'layerfs --version']) console.log(`| \`${name}\` | ${sec(median(pick(name, '-', 3)))} |`);
EOF
  fi
  if ((!SKIP_COMMIT)); then
    read -r upper_entries upper_files upper_whiteouts upper_bytes commit_entries tar_entries commit_bytes tar_bytes write_s upper_dirs <"$WORK/commit-facts.txt"
    echo
    echo "Commit: upper of $upper_entries entries ($upper_files regular files, $upper_whiteouts of them whiteouts; $upper_dirs directories), $((upper_bytes / 1024 / 1024)) MiB in files;" \
      "written through the mount in $write_s s; layerfs' layer $commit_entries entries, $((commit_bytes / 1024 / 1024)) MiB gzip;" \
      "tar czf's $tar_entries entries (without ./), $((tar_bytes / 1024 / 1024)) MiB; median of $COMMIT_REPS."
    echo
    node --input-type=module - "$commits" <<'EOF'
import { readFileSync } from 'node:fs';

const rows = readFileSync(process.argv[2], 'utf8').trim().split('\n').map((line) => line.split('\t'));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const stats = (name) => {
  const mine = rows.filter((r) => r[1] === name);
  return {
    wall: median(mine.map((r) => Number(r[2]))),
    walls: mine.map((r) => Number(r[2]).toFixed(2)).join(', '),
    cpu: median(mine.map((r) => Number(r[4]) + Number(r[5]))),
    rss: Math.max(...mine.map((r) => Number(r[3]))),
  };
};
const tar = stats('tar czf');
console.log('| command | wall (s) | vs tar czf | every run (s) | CPU user+sys (s) | peak RSS (MiB) |');
console.log('|---|---:|---:|---|---:|---:|');
for (const name of ['layerfs commit', 'tar czf']) {
  const s = stats(name);
  console.log(`| ${name} | ${s.wall.toFixed(2)} | ${(s.wall / tar.wall).toFixed(2)}x | ${s.walls} | ${s.cpu.toFixed(1)} | ${(s.rss / 1024).toFixed(0)} |`);
}
EOF
  fi
} | tee "$WORK/tables.md"
