#!/usr/bin/env bash
# Extraction throughput of a large real layer (a copy of /usr as tar+gzip and tar+zstd): layerfs's
# extractLayer, as the store runs it (metadata index, digest and diffID checks), against
# GNU tar and umoci on the same blob. Prints a markdown table (median of REPS runs, ratios against
# GNU tar, peak RSS). Not a test: record its output in README.md.
#
#   bench/extract/run.sh                       # REPS=3 SRC=usr WORK=/var/tmp/layerfs-bench-extract
#   REPS=1 SRC=usr/share bench/extract/run.sh  # quicker
#
# Needs: tar, gzip, zstd, umoci (Debian package), /usr/bin/time (package `time`), node, root
# (owners and devices), and about 3x the size of SRC free in WORK.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
WORK=${WORK:-/var/tmp/layerfs-bench-extract}
SRC=${SRC:-usr}
REPS=${REPS:-3}

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
  blob() { # stores stdin as a blob; prints "digest size"
    local tmp="$layout/blobs/tmp" digest
    cat >"$tmp"
    digest=$(sha256sum <"$tmp" | cut -d' ' -f1)
    mv "$tmp" "$layout/blobs/sha256/$digest"
    echo "$digest $(stat -c %s "$layout/blobs/sha256/$digest")"
  }
  read -r ldigest lsize < <(blob <"$layers/layer.tar.gz")
  read -r cdigest csize < <(printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["%s"]}}' "$diffid" | blob)
  read -r mdigest msize < <(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' "$cdigest" "$csize" "$ldigest" "$lsize" | blob)
  printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' "$mdigest" "$msize" >"$layout/index.json"
fi

# --- runs --------------------------------------------------------------------------------------
out="$WORK/out"
results="$WORK/results.tsv"
: >"$results"
run() { # name command... ; the command extracts into $out/t
  local name=$1
  shift
  rm -rf "$out"
  mkdir -p "$out/t"
  sync # the previous run's dirty pages are not this run's cost
  if ! /usr/bin/time -f '%e %M %U %S' -o "$WORK/time.txt" "$@" >"$WORK/run.log" 2>&1; then
    echo "run.sh: $name failed:" >&2
    cat "$WORK/run.log" >&2
    exit 1
  fi
  read -r wall rss user sys <"$WORK/time.txt"
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$wall" "$rss" "$user" "$sys" >>"$results"
  echo "run.sh: $name: ${wall}s, peak RSS ${rss} KiB" >&2
  rm -rf "$out"
}
ours="$here/extract.mjs"
for _ in $(seq "$REPS"); do
  run 'GNU tar -xzf (gzip)' tar --numeric-owner -xzf "$layers/layer.tar.gz" -C "$out/t"
  run 'layerfs extractLayer (gzip)' node "$ours" "$build/dist" "$layers/layer.tar.gz" "$out/t" "$out/index" "$diffid"
  run 'layerfs + content digests (gzip)' node "$ours" "$build/dist" "$layers/layer.tar.gz" "$out/t" "$out/index" "$diffid" --content-digests
  run 'umoci unpack (gzip)' umoci unpack --image "$layout:bench" "$out/t/bundle"
  run 'GNU tar --zstd -xf (zstd)' tar --numeric-owner --zstd -xf "$layers/layer.tar.zst" -C "$out/t"
  run 'layerfs extractLayer (zstd)' node "$ours" "$build/dist" "$layers/layer.tar.zst" "$out/t" "$out/index" "$diffid"
done

# --- table: medians; ratio = GNU tar's time / this time (> 1: faster than GNU tar) -----------------
echo
echo "Layer: /$SRC, $entries entries, $((size / 1024 / 1024)) MiB uncompressed," \
  "gzip $(($(stat -c %s "$layers/layer.tar.gz") / 1024 / 1024)) MiB, zstd $(($(stat -c %s "$layers/layer.tar.zst") / 1024 / 1024)) MiB;" \
  "median of $REPS run(s); $(nproc) CPUs; $(date -u +%F)"
echo
node - "$results" "$size" <<'EOF'
const [file, size] = process.argv.slice(2);
const rows = require('node:fs').readFileSync(file, 'utf8').trim().split('\n').map((l) => l.split('\t'));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]; };
const names = [...new Set(rows.map((r) => r[0]))];
const stats = Object.fromEntries(names.map((n) => {
  const rs = rows.filter((r) => r[0] === n);
  return [n, { wall: median(rs.map((r) => +r[1])), rss: Math.max(...rs.map((r) => +r[2])), cpu: median(rs.map((r) => +r[3] + +r[4])) }];
}));
const base = { gzip: stats['GNU tar -xzf (gzip)'].wall, zstd: stats['GNU tar --zstd -xf (zstd)'].wall };
console.log('| tool | wall (s) | MiB/s (uncompressed) | vs GNU tar | CPU user+sys (s) | peak RSS (MiB) |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const n of names) {
  const s = stats[n];
  const kind = n.endsWith('(zstd)') ? 'zstd' : 'gzip';
  console.log(`| ${n} | ${s.wall.toFixed(2)} | ${(size / 2 ** 20 / s.wall).toFixed(0)} | ${(base[kind] / s.wall).toFixed(2)}x | ${s.cpu.toFixed(1)} | ${(s.rss / 1024).toFixed(0)} |`);
}
EOF
