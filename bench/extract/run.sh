#!/usr/bin/env bash
# Extraction throughput of a large real layer (a copy of /usr as tar+gzip and tar+zstd): layerfs's
# extractLayer, as the store runs it (metadata index, digest and diffID checks), against GNU tar
# and umoci on the same blob. Prints a markdown table (median of REPS runs, ratios against GNU tar,
# peak RSS). Not a test: record its output in README.md.
#
#   bench/extract/run.sh                                     # REPS=3 SRC=usr PLACES="tmpfs disk"
#   REPS=1 SRC=usr/share PLACES=tmpfs bench/extract/run.sh   # quicker
#
# Needs: tar, gzip, zstd, umoci (Debian package), /usr/bin/time (package `time`), node, root
# (owners and devices), about 7x the size of SRC free in WORK and 1x in /dev/shm.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
WORK=${WORK:-/var/tmp/layerfs-bench-extract}
SRC=${SRC:-usr}
REPS=${REPS:-3}
PLACES=${PLACES:-tmpfs disk}
COOLDOWN=${COOLDOWN:-400}

need() { command -v "$1" >/dev/null || { echo "run.sh: $1 is missing ($2)" >&2; exit 1; }; }
need tar 'apt-get install tar'
need gzip 'apt-get install gzip'
need zstd 'apt-get install zstd'
need umoci 'apt-get install umoci'
need /usr/bin/time 'apt-get install time'
need node 'Node.js >= 20'
[ "$(id -u)" = 0 ] || { echo "run.sh: run as root (all three tools then restore owners and devices)" >&2; exit 1; }
mkdir -p "$WORK"

# --- our extractor, compiled once (outside the repo's dist/, which is not ours to overwrite) -----
build="$WORK/build"
rm -rf "$build"
mkdir -p "$build"
(cd "$repo" && node_modules/.bin/tsc -p tsconfig.json --outDir "$build/dist" --sourceMap false)
ln -s "$repo/native-bindings" "$build/native-bindings" # dist/native loads ../../native-bindings
ln -s "$repo/node_modules" "$build/node_modules"
echo '{"type":"module"}' >"$build/package.json"

# --- the layer: one tar of SRC, compressed both ways --------------------------------------------
layers="$WORK/layers/$(echo "$SRC" | tr / _)"
mkdir -p "$layers"
if [ ! -s "$layers/layer.tar.zst" ]; then
  echo "run.sh: making the layer from /$SRC (gzip -6 is single-threaded: minutes for /usr)" >&2
  tar -C / --numeric-owner -cf "$layers/layer.tar" "$SRC" || [ $? -eq 1 ] # 1: a file changed while read
  sha256sum <"$layers/layer.tar" | cut -d' ' -f1 >"$layers/diffid"
  stat -c %s "$layers/layer.tar" >"$layers/size"
  tar -tvf "$layers/layer.tar" | wc -l >"$layers/entries"
  gzip -6 <"$layers/layer.tar" >"$layers/layer.tar.gz"
  zstd -q -3 -T0 "$layers/layer.tar" -o "$layers/layer.tar.zst"
  rm "$layers/layer.tar"
fi
diffid="sha256:$(cat "$layers/diffid")"
size=$(cat "$layers/size")
entries=$(cat "$layers/entries")

# --- an OCI layout holding the gzip layer, for umoci ----------------------------------------------
layout="$layers/oci"
if [ ! -f "$layout/index.json" ]; then
  mkdir -p "$layout/blobs/sha256"
  store() { # FILE: hardlinks FILE in as a blob; prints "digest size"
    local digest
    digest=$(sha256sum <"$1" | cut -d' ' -f1)
    ln -f "$1" "$layout/blobs/sha256/$digest"
    echo "$digest $(stat -c %s "$1")"
  }
  read -r ldigest lsize < <(store "$layers/layer.tar.gz")
  printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["%s"]}}' "$diffid" >"$layers/config.json"
  read -r cdigest csize < <(store "$layers/config.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$cdigest" "$csize" "$ldigest" "$lsize" >"$layers/manifest.json"
  read -r mdigest msize < <(store "$layers/manifest.json")
  printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' \
    "$mdigest" "$msize" >"$layout/index.json"
fi

# --- runs --------------------------------------------------------------------------------------
# Two places to extract to:
# - tmpfs (/dev/shm): no disk in the way, so it compares the extractors themselves; reproducible.
# - disk (WORK): what a real cache sees. On ext4 a big `rm -rf` makes inode allocation slow for a
#   while (new inodes avoid "recently deleted" ones for up to 6 minutes, and without a journal
#   every allocation then scans its whole group), which would punish whichever tool runs right
#   after a delete. So every run of a round extracts into a new directory, the round's outputs are
#   deleted together at its end, and a cool-down of COOLDOWN seconds follows.
results="$WORK/results.tsv"
: >"$results"
ours="$here/extract.mjs"
n=0
fresh() { # a new empty output directory: sets $out and $t (the extraction target in it)
  n=$((n + 1))
  out="$base/out-$n"
  t="$out/t"
  mkdir -p "$t"
}
run() { # PLACE NAME COMMAND... (the command extracts into $t)
  local place=$1 name=$2
  shift 2
  sync # the previous run's dirty pages are not this run's cost
  if ! /usr/bin/time -f '%e %M %U %S' -o "$WORK/time.txt" "$@" >"$WORK/run.log" 2>&1; then
    echo "run.sh: $name failed:" >&2
    cat "$WORK/run.log" >&2
    exit 1
  fi
  read -r wall rss user sys <"$WORK/time.txt"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$place" "$name" "$wall" "$rss" "$user" "$sys" >>"$results"
  echo "run.sh: [$place] $name: ${wall}s, peak RSS ${rss} KiB" >&2
  if [ "$place" = tmpfs ]; then rm -rf "$out"; fi
}
for place in $PLACES; do
  case $place in
    tmpfs) base=/dev/shm/layerfs-bench-extract ;;
    disk) base="$WORK/runs" ;;
    *) echo "run.sh: unknown place $place (tmpfs, disk)" >&2; exit 1 ;;
  esac
  rm -rf "$base"
  mkdir -p "$base"
  for _ in $(seq "$REPS"); do
    fresh; run "$place" 'GNU tar -xzf (gzip)' tar --numeric-owner -xzf "$layers/layer.tar.gz" -C "$t"
    fresh; run "$place" 'layerfs extractLayer (gzip)' node "$ours" "$build/dist" "$layers/layer.tar.gz" "$t" "$out/index" "$diffid"
    fresh; run "$place" 'layerfs + content digests (gzip)' node "$ours" "$build/dist" "$layers/layer.tar.gz" "$t" "$out/index" "$diffid" --content-digests
    fresh; run "$place" 'umoci unpack (gzip)' umoci unpack --image "$layout:bench" "$t/bundle"
    fresh; run "$place" 'GNU tar --zstd -xf (zstd)' tar --numeric-owner --zstd -xf "$layers/layer.tar.zst" -C "$t"
    fresh; run "$place" 'layerfs extractLayer (zstd)' node "$ours" "$build/dist" "$layers/layer.tar.zst" "$t" "$out/index" "$diffid"
    if [ "$place" = disk ]; then
      rm -rf "$base"/out-*
      sync
      echo "run.sh: cooling down ${COOLDOWN}s after deleting the round's outputs" >&2
      sleep "$COOLDOWN"
    fi
  done
  rm -rf "$base"
done

# --- table: medians; ratio = GNU tar's time / this time (> 1: faster than GNU tar) ---------------
echo
echo "Layer: /$SRC, $entries entries, $((size / 1024 / 1024)) MiB uncompressed," \
  "gzip $(($(stat -c %s "$layers/layer.tar.gz") / 1024 / 1024)) MiB, zstd $(($(stat -c %s "$layers/layer.tar.zst") / 1024 / 1024)) MiB;" \
  "median of $REPS run(s); $(nproc) CPUs; node $(node --version); $(date -u +%F)"
echo
node "$here/table.mjs" "$results" "$size"
