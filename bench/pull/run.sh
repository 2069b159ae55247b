#!/usr/bin/env bash
# Pull of a multi-layer image of a few hundred MiB from a local registry into an empty store:
# `layerfs pull` against what it replaces, `skopeo copy docker://… oci:DIR` followed by
# `umoci unpack`. Prints a markdown table (median of REPS runs, wall time, ratio to skopeo+umoci,
# CPU, peak RSS). Not a test: nothing fails on a slow result. See bench/pull/README.md.
#
#   bash bench/pull/run.sh                      # REPS=3, outputs on disk under WORK
#   REPS=1 COOLDOWN=0 bash bench/pull/run.sh    # one round, no pause
#   OUT=/dev/shm/layerfs-bench-pull bash bench/pull/run.sh   # outputs on tmpfs
#
# Environment: WORK (default /var/tmp/layerfs-bench-pull: the image, the registry's storage,
# results), OUT (where each run's store / OCI dir / bundle goes, default WORK/runs), REPS,
# COOLDOWN (seconds to wait after deleting a round's outputs on a disk, default 300), LIB_MIB
# (how much of /usr/lib/<multiarch> goes into layer 2, default 300), DROP_CACHES=1 (drop the page
# cache before every timed run; off by default since it disturbs anything else running),
# BUILD=0 (never rebuild dist/).
#
# Needs root (the extractors restore owners), Debian's docker-registry, skopeo, umoci, time,
# curl, tar, gzip, node; about 2.5 GiB free in WORK and 4 GiB per round in OUT.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
WORK=${WORK:-/var/tmp/layerfs-bench-pull}
OUT=${OUT:-$WORK/runs}
REPS=${REPS:-3}
COOLDOWN=${COOLDOWN:-300}
LIB_MIB=${LIB_MIB:-300}
DROP_CACHES=${DROP_CACHES:-0}
BUILD=${BUILD:-1}
STEP_TIMEOUT=${STEP_TIMEOUT:-1800}
REGISTRY=/usr/bin/docker-registry
IMAGE_VERSION=1 # bump when the image's recipe changes: a cached image of another version is rebuilt

log() { echo "pull-bench: $*" >&2; }
die() { echo "pull-bench: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 is missing ($2)"; }

need "$REGISTRY" 'apt-get install docker-registry'
need skopeo 'apt-get install skopeo'
need umoci 'apt-get install umoci'
need /usr/bin/time 'apt-get install time'
need curl 'apt-get install curl'
need tar 'apt-get install tar'
need gzip 'apt-get install gzip'
need node 'Node.js >= 20'
[[ $(id -u) == 0 ]] || die "run as root: layerfs and umoci then restore owners (umoci would need --rootless otherwise)"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive number, not '$REPS'"
mkdir -p "$WORK" "$OUT"

# Two runs at once would share the registry storage and skew each other's times.
exec 9>"$WORK/lock"
flock -n 9 || die "another run holds $WORK/lock"

reg_pid=''
reg_tmp=''
cleanup() {
  if [[ -n $reg_pid ]] && kill -0 "$reg_pid" 2>/dev/null; then
    kill "$reg_pid" 2>/dev/null || true
    wait "$reg_pid" 2>/dev/null || true
  fi
  [[ -n $reg_tmp ]] && rm -rf "$reg_tmp"
  rm -rf "${OUT:?}"/round-*
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- layerfs from dist/, rebuilt when src/ is newer -----------------------------------------------
# shellcheck source=../lib/build.sh
source "$repo/bench/lib/build.sh"
build_if_stale "$repo" "$BUILD"
node "$repo/bin/layerfs.js" --help >/dev/null || die "node bin/layerfs.js does not start (build it: npm run build)"

# --- the image: four gzip layers made from this machine's /usr and /etc ---------------------------
# Built once into WORK/image and reused while COMPLETE (written last) names this recipe.
multiarch=$(find /usr/lib -mindepth 1 -maxdepth 1 -type d -name '*-linux-gnu*' -printf '%f\n' | LC_ALL=C sort | head -n 1)
[[ -n $multiarch ]] || die "no /usr/lib/*-linux-gnu directory to take layer 2 from"
recipe="version=$IMAGE_VERSION lib=$multiarch:$LIB_MIB"
img=$WORK/image
layout=$img/oci

make_layer() { # N PATHS...: $img/layer-N.tar.gz and $img/layer-N.diffid (sha256 of the tar)
  local n=$1 rc=0
  shift
  tar -C / --numeric-owner -cf "$img/layer-$n.tar" "$@" 2>"$img/layer-$n.log" || rc=$?
  ((rc <= 1)) || { cat "$img/layer-$n.log" >&2; return 1; } # 1: a file changed while being read
  sha256sum <"$img/layer-$n.tar" | cut -d' ' -f1 >"$img/layer-$n.diffid"
  gzip -6 -n <"$img/layer-$n.tar" >"$img/layer-$n.tar.gz"
  rm "$img/layer-$n.tar"
}

store_blob() { # FILE: hardlinks FILE into the layout; prints "digest size"
  local digest
  digest=$(sha256sum <"$1" | cut -d' ' -f1)
  ln -f "$1" "$layout/blobs/sha256/$digest"
  echo "$digest $(stat -c %s "$1")"
}

build_image() {
  rm -rf "$img"
  mkdir -p "$img" "$layout/blobs/sha256"
  # Layer 2: the first LIB_MIB MiB of /usr/lib/<multiarch>, whole top-level entries in name order.
  (cd / && du -s --apparent-size --block-size=1 "usr/lib/$multiarch"/* | LC_ALL=C sort -k2) |
    awk -F'\t' -v budget=$((LIB_MIB * 1024 * 1024)) '{ if (sum + $1 > budget && sum > 0) exit; sum += $1; print $2 }' >"$img/lib.list"
  log "making the image's layers (tar + gzip -6 of about $((600 + 324 + LIB_MIB)) MiB; minutes on 2 CPUs)"
  local pids=() pid
  make_layer 1 --no-recursion usr --recursion usr/share &
  pids+=($!)
  make_layer 2 --no-recursion usr usr/lib "usr/lib/$multiarch" --recursion -T "$img/lib.list" &
  pids+=($!)
  make_layer 3 --no-recursion usr --recursion usr/bin &
  pids+=($!)
  make_layer 4 etc --no-recursion var var/lib --recursion var/lib/dpkg &
  pids+=($!)
  for pid in "${pids[@]}"; do wait "$pid" || die "making a layer failed"; done

  local layers='' diffids='' history='' n digest size arch
  for n in 1 2 3 4; do
    read -r digest size < <(store_blob "$img/layer-$n.tar.gz")
    layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$digest\",\"size\":$size}"
    diffids+="${diffids:+,}\"sha256:$(cat "$img/layer-$n.diffid")\""
    history+="${history:+,}{\"created\":\"2026-01-01T00:00:00Z\",\"created_by\":\"bench/pull/run.sh layer $n\"}"
  done
  arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
  printf '{"created":"2026-01-01T00:00:00Z","architecture":"%s","os":"linux","config":{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[%s]},"history":[%s]}' \
    "$arch" "$diffids" "$history" >"$img/config.json"
  read -r digest size < <(store_blob "$img/config.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
    "$digest" "$size" "$layers" >"$img/manifest.json"
  read -r digest size < <(store_blob "$img/manifest.json")
  printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' \
    "$digest" "$size" >"$layout/index.json"
  echo "sha256:$digest" >"$img/manifest.digest"
  echo "$recipe" >"$img/COMPLETE"
}

if [[ $(cat "$img/COMPLETE" 2>/dev/null) != "$recipe" ]]; then
  build_image
fi
manifest_digest=$(cat "$img/manifest.digest")
compressed=$(cat "$img"/layer-*.tar.gz | wc -c)
log "image: 4 layers, $((compressed / 1024 / 1024)) MiB compressed, manifest $manifest_digest"

# --- the registry: Debian's docker-registry on a free loopback port, storage kept in WORK ---------
free_port() {
  node -e 'const s = require("node:net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

start_registry() {
  reg_tmp=$(mktemp -d /tmp/layerfs-bench-pull-registry.XXXXXX)
  mkdir -p "$WORK/registry"
  local _attempt _i
  for _attempt in 1 2 3 4 5; do
    port=$(free_port)
    cat >"$reg_tmp/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: "$WORK/registry"
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: "127.0.0.1:$port"
  secret: "layerfs-bench-pull"
health:
  storagedriver:
    enabled: false
EOF
    "$REGISTRY" serve "$reg_tmp/config.yml" >"$reg_tmp/registry.log" 2>&1 &
    reg_pid=$!
    for _i in $(seq 150); do
      if curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; then
        log "registry listening on 127.0.0.1:$port (pid $reg_pid)"
        return 0
      fi
      kill -0 "$reg_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$reg_pid" 2>/dev/null; then
      die "docker-registry did not answer on 127.0.0.1:$port within 15 s: $(tail -n 5 "$reg_tmp/registry.log")"
    fi
    wait "$reg_pid" || true
    reg_pid=''
    grep -qi 'address already in use' "$reg_tmp/registry.log" || die "docker-registry exited: $(tail -n 5 "$reg_tmp/registry.log")"
  done
  die "no free port for docker-registry after 5 attempts"
}
start_registry
ref="127.0.0.1:$port/bench:1"

pushed=$(skopeo inspect --tls-verify=false --raw "docker://$ref" 2>/dev/null | sha256sum | cut -d' ' -f1) || true
if [[ "sha256:$pushed" != "$manifest_digest" ]]; then
  log "pushing the image to $ref"
  skopeo copy -q --dest-tls-verify=false "oci:$layout:bench" "docker://$ref" >/dev/null
  pushed=$(skopeo inspect --tls-verify=false --raw "docker://$ref" | sha256sum | cut -d' ' -f1)
  [[ "sha256:$pushed" == "$manifest_digest" ]] || log "note: the registry serves manifest sha256:$pushed (skopeo rewrote it on push)"
fi

# --- runs ---------------------------------------------------------------------------------------
results=$WORK/results.tsv
: >"$results"
on_tmpfs=0
[[ $(stat -f -c %T "$OUT") == tmpfs ]] && on_tmpfs=1
# Anything left by an interrupted run is deleted now; on a disk, ext4 then allocates inodes
# slowly for a while (see bench/extract/run.sh), so the first round waits like the others.
if compgen -G "$OUT/*" >/dev/null; then
  rm -rf "${OUT:?}"/*
  if ((!on_tmpfs && COOLDOWN > 0)); then
    sync
    log "cooling down ${COOLDOWN}s after deleting an earlier run's outputs"
    sleep "$COOLDOWN"
  fi
fi

run() { # REP NAME COMMAND...
  local rep=$1 name=$2 wall rss user sys
  shift 2
  sync
  if [[ $DROP_CACHES == 1 ]]; then echo 3 >/proc/sys/vm/drop_caches; fi
  if ! /usr/bin/time -f '%e %M %U %S' -o "$WORK/time.txt" timeout "$STEP_TIMEOUT" "$@" >"$WORK/run.log" 2>&1; then
    log "$name failed:"
    tail -n 20 "$WORK/run.log" >&2
    exit 1
  fi
  read -r wall rss user sys <"$WORK/time.txt"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$name" "$wall" "$rss" "$user" "$sys" >>"$results"
  log "#$rep $name: ${wall}s, peak RSS $((rss / 1024)) MiB"
}

run_layerfs() { run "$1" 'layerfs pull' node "$repo/bin/layerfs.js" pull --root "$round/layerfs-store" "$ref"; }
run_skopeo_umoci() {
  run "$1" 'skopeo copy' skopeo copy --src-tls-verify=false "docker://$ref" "oci:$round/skopeo-oci:bench"
  run "$1" 'umoci unpack' umoci unpack --image "$round/skopeo-oci:bench" "$round/bundle"
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$EPOCHSECONDS
for rep in $(seq "$REPS"); do
  round=$OUT/round-$rep
  mkdir -p "$round"
  # Turns alternate, so a drift in the machine's speed does not always favour the same side.
  if ((rep % 2)); then
    run_layerfs "$rep"
    run_skopeo_umoci "$rep"
  else
    run_skopeo_umoci "$rep"
    run_layerfs "$rep"
  fi
  if ((rep == 1)); then
    # Sanity: both sides produced the same tree (layers do not overlap, so entries add up).
    ours=$(find "$round"/layerfs-store/layers/sha256/*/fs -mindepth 1 | sed 's|^.*/fs/||' | LC_ALL=C sort -u | wc -l)
    theirs=$(find "$round/bundle/rootfs" -mindepth 1 | wc -l)
    ours_bytes=$(find "$round"/layerfs-store/layers/sha256/*/fs -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
    theirs_bytes=$(find "$round/bundle/rootfs" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
    echo "$ours $theirs $ours_bytes $theirs_bytes" >"$WORK/sanity.txt"
    log "sanity: entries layerfs $ours, umoci $theirs; bytes in regular files layerfs $ours_bytes, umoci $theirs_bytes"
  fi
  rm -rf "$round"
  if ((rep < REPS && !on_tmpfs && COOLDOWN > 0)); then
    sync
    log "cooling down ${COOLDOWN}s after deleting the round's outputs"
    sleep "$COOLDOWN"
  fi
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# --- table: medians; the ratio is skopeo+umoci's wall time over this one's (> 1: faster) ---------
# Also written to WORK/table.md; WORK/results.tsv has every sample (rep, tool, wall, KiB, user, sys).
read -r ours theirs ours_bytes theirs_bytes <"$WORK/sanity.txt"
fstype=$(findmnt -n -o FSTYPE -T "$OUT" 2>/dev/null | head -n 1 || stat -f -c %T "$OUT")
{
  echo
  echo "Image: 4 gzip layers, $((compressed / 1024 / 1024)) MiB compressed, $((theirs_bytes / 1024 / 1024)) MiB of files," \
    "$theirs entries (layerfs: $ours entries, $((ours_bytes / 1024 / 1024)) MiB); local docker-registry on 127.0.0.1;" \
    "outputs on $fstype; median of $REPS run(s); $(nproc) CPUs; node $(node --version);" \
    "load average at start $load_start, at end $load_end; $(date -u +%F); $(((EPOCHSECONDS - started) / 60)) min"
  echo
  node --input-type=module - "$results" <<'EOF'
import { readFileSync } from 'node:fs';

const rows = readFileSync(process.argv[2], 'utf8').trim().split('\n').map((line) => line.split('\t'));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const reps = [...new Set(rows.map((r) => r[0]))];
const sample = (rep, name) => rows.find((r) => r[0] === rep && r[1] === name);
// Per repetition: the wall time, CPU time and peak RSS of a tool; "skopeo + umoci" adds the two
// steps of the same repetition (RSS: the larger of the two, they run one after the other).
const per = (name) =>
  reps.map((rep) => {
    const parts = name === 'skopeo copy + umoci unpack' ? ['skopeo copy', 'umoci unpack'].map((n) => sample(rep, n)) : [sample(rep, name)];
    return {
      wall: parts.reduce((s, r) => s + Number(r[2]), 0),
      cpu: parts.reduce((s, r) => s + Number(r[4]) + Number(r[5]), 0),
      rss: Math.max(...parts.map((r) => Number(r[3]))),
    };
  });
const names = ['layerfs pull', 'skopeo copy', 'umoci unpack', 'skopeo copy + umoci unpack'];
const stats = Object.fromEntries(
  names.map((n) => {
    const runs = per(n);
    return [n, { wall: median(runs.map((r) => r.wall)), cpu: median(runs.map((r) => r.cpu)), rss: Math.max(...runs.map((r) => r.rss)) }];
  }),
);
const base = stats['skopeo copy + umoci unpack'].wall;
console.log('| tool | wall (s) | vs skopeo + umoci | CPU user+sys (s) | peak RSS (MiB) |');
console.log('|---|---:|---:|---:|---:|');
for (const n of names) {
  const s = stats[n];
  const ratio = n === 'skopeo copy' || n === 'umoci unpack' ? '' : `${(base / s.wall).toFixed(2)}x`;
  console.log(`| ${n} | ${s.wall.toFixed(2)} | ${ratio} | ${s.cpu.toFixed(1)} | ${(s.rss / 1024).toFixed(0)} |`);
}
EOF
} | tee "$WORK/table.md"
