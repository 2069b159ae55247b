# Generates the lower layers every implementation mounts (sourced by run.sh).
#
# $LAYERS/base  a copy of part of this machine's /usr plus synthetic trees:
#                 big/blob.bin        $BIG_MIB MiB of random data (sequential read, copy-up)
#                 bigdir/             $BIGDIR_FILES small files in one directory (ls -l)
#                 copyup/dNN/         $COPYUP_FILES 4 KiB files, 100 a directory (copy-up)
#                 rmtree/dNN/         $RM_ENTRIES entries: directories of 99 files (rm -rf)
# $LAYERS/mid   overlay-format deletions of base entries: 0/0 character-device whiteouts for
#               every 50th regular file and some directories, opaque directories
#               (trusted.overlay.opaque=y) with a file of their own
# $LAYERS/top   modified copies of every 100th regular file of base/usr, plus new files (some
#               fall in directories mid deleted or made opaque: they reappear there alone)
# $CACHE/extract.tar   $EXTRACT_FILES small files to unpack into the mount
#
# Everything is made once per parameter set; $CACHE/COMPLETE, written last, holds the parameter
# set, so an interrupted or differently sized generation is redone rather than reused.

LAYER_FORMAT=4   # bump when the layout below changes, so old caches are regenerated

layer_spec() {
  echo "format=$LAYER_FORMAT usr=${USR_DIRS// /,} big=$BIG_MIB bigdir=$BIGDIR_FILES copyup=$COPYUP_FILES extract=$EXTRACT_FILES rm=$RM_ENTRIES"
}

ensure_layers() {
  if [[ -f $CACHE/COMPLETE && $(< "$CACHE/COMPLETE") == "$(layer_spec)" ]]; then
    log "reusing layers in $CACHE"
    return
  fi
  log "generating layers in $CACHE ($(layer_spec))"
  rm -rf "$CACHE"
  mkdir -p "$LAYERS/base" "$LAYERS/mid" "$LAYERS/top"
  make_base
  make_mid
  make_top
  make_extract_tarball
  write_layer_stats
  layer_spec > "$CACHE/COMPLETE"
  log "layers ready"
}

make_base() {
  local base=$LAYERS/base dir
  mkdir -p "$base/usr"
  for dir in $USR_DIRS; do
    log "  copying /usr/$dir"
    timeout 1800 cp -a "/usr/$dir" "$base/usr/" || die "copying /usr/$dir failed"
  done
  log "  writing a $BIG_MIB MiB random file"
  mkdir -p "$base/big"
  # Random, so no layer of storage can compress or deduplicate it.
  timeout 600 head -c "${BIG_MIB}M" /dev/urandom > "$base/big/blob.bin" || die "writing blob.bin failed"
  fill_flat_dir "$base/bigdir" "$BIGDIR_FILES"
  fill_tree "$base/copyup" $((COPYUP_FILES / 100)) 100 4096
  # rm -rf target: N/100 directories of 99 files each, so directories plus files = $RM_ENTRIES.
  fill_tree "$base/rmtree" $((RM_ENTRIES / 100)) 99 512
}

# fill_flat_dir DIR N: N tiny files in one directory.
fill_flat_dir() {
  local dir=$1 n=$2 i
  mkdir -p "$dir"
  for ((i = 0; i < n; i++)); do
    printf 'file %d\n' "$i" > "$dir/f$(printf %05d "$i")"
  done
}

# fill_tree DIR DIRS FILES SIZE: DIRS subdirectories of FILES files of SIZE bytes each.
# Written with bash builtins only: tens of thousands of forks would take longer than the bench.
fill_tree() {
  local root=$1 ndirs=$2 nfiles=$3 size=$4 d f sub content
  printf -v content '%*s' "$size" ''
  for ((d = 0; d < ndirs; d++)); do
    printf -v sub '%s/d%03d' "$root" "$d"
    mkdir -p "$sub"
    for ((f = 0; f < nfiles; f++)); do
      printf '%s' "$content" > "$sub/f$(printf %03d "$f")"
    done
  done
}

make_mid() {
  local base=$LAYERS/base mid=$LAYERS/mid path n=0
  log "  mid layer: whiteouts and opaque directories"
  # Some directories three levels below usr/ are made opaque (hiding base's content) and get a file.
  some_dirs 1 > "$CACHE/opaque.list"
  while IFS= read -r path; do
    mkdir -p "$mid/$path"
    setfattr -n trusted.overlay.opaque -v y "$mid/$path"
    echo "added by mid above an opaque directory" > "$mid/$path/MID-ONLY"
    n=$((n + 1))
  done < "$CACHE/opaque.list"
  log "    $n opaque directories"
  # Every 50th regular file of base/usr is deleted by a 0/0 character device (overlay format),
  # except inside the opaque directories: a whiteout there hides nothing, and kernel overlayfs
  # lists such a whiteout in a directory that comes from one layer only (then fails to stat it).
  n=0
  while IFS= read -r path; do
    mkdir -p "$mid/$(dirname "$path")"
    mknod "$mid/$path" c 0 0
    n=$((n + 1))
  done < <(cd "$base" && find usr -type f | LC_ALL=C sort | awk 'NR % 50 == 0' \
             | awk -F/ 'NR == FNR { opaque[$0] = 1; next } !(($1 "/" $2 "/" $3 "/" $4) in opaque)' "$CACHE/opaque.list" -)
  log "    $n file whiteouts"
  # Other directories are deleted whole by a whiteout (unless mid already has that directory).
  n=0
  while IFS= read -r path; do
    [[ -e $mid/$path ]] && continue
    mkdir -p "$mid/$(dirname "$path")"
    mknod "$mid/$path" c 0 0
    n=$((n + 1))
  done < <(some_dirs 3)
  log "    $n directory whiteouts"
}

# some_dirs OFFSET: every 50th directory three levels below base/usr (every 5th when there are
# few, as in quick mode), starting at OFFSET.
some_dirs() {
  (cd "$LAYERS/base" && find usr -mindepth 3 -maxdepth 3 -type d | LC_ALL=C sort) \
    | awk -v offset="$1" '{ dirs[NR] = $0 } END { step = NR >= 500 ? 50 : 5; for (i = offset; i <= NR; i += step) print dirs[i] }'
}

make_top() {
  local base=$LAYERS/base top=$LAYERS/top path n=0 i
  log "  top layer: modified and new files"
  while IFS= read -r path; do
    mkdir -p "$top/$(dirname "$path")"
    cp -p "$base/$path" "$top/$path"
    echo "modified in top" >> "$top/$path"
    n=$((n + 1))
  done < <(cd "$base" && find usr -type f | LC_ALL=C sort | awk 'NR % 100 == 7')
  mkdir -p "$top/usr/top-added"
  for ((i = 0; i < 50; i++)); do echo "new in top $i" > "$top/usr/top-added/n$i"; done
  log "    $n modified files"
}

make_extract_tarball() {
  local tmp=$CACHE/extract-src
  log "  extract tarball: $EXTRACT_FILES files"
  rm -rf "$tmp"
  fill_tree "$tmp/extracted" $((EXTRACT_FILES / 100)) 100 1024
  timeout 300 tar -cf "$CACHE/extract.tar" -C "$tmp" extracted || die "making extract.tar failed"
  rm -rf "$tmp"
}

write_layer_stats() {
  local layer
  for layer in base mid top; do
    printf '%s_entries=%s\n' "$layer" "$(find "$LAYERS/$layer" | wc -l)"
    printf '%s_bytes=%s\n' "$layer" "$(du -sb "$LAYERS/$layer" | cut -f1)"
  done > "$CACHE/stats"
}
