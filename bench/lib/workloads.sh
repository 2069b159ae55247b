# The timed workloads (sourced by run.sh and exported to the `bash -c` that `timed` runs).
# Each wl_NAME takes the mountpoint and is only the timed part; what it prints (a count) is kept
# as a sanity check that every implementation saw the same tree. A failing step fails the run.

# Order in which workloads run and appear in the table.
WORKLOADS=(walk ls read tar copyup_small copyup_big extract rm write)
# Workloads also timed "warm": repeated at once on the same mount, caches as the first run left them.
WARM_WORKLOADS=" walk read "

# Stat every entry: -printf with size and mtime makes find lstat each one, as `ls -lR` would.
wl_walk() { find "$1" -printf '%y %s %T@\n' | wc -l; }

# ls -l sorts and lstat()s every name in the 10,000-file directory (plus xattr look-ups for ACLs).
wl_ls() { ls -l "$1/bigdir" | wc -l; }

# dd with 1 MiB reads straight to /dev/null: no pipe copy in the way of a warm (cached) read.
wl_read() { dd if="$1/big/blob.bin" of=/dev/null bs=1M status=none && echo ok; }

# GNU tar skips reading file data when the archive is /dev/null, so pipe it to wc instead.
wl_tar() { tar -cf - -C "$1" . | wc -c; }

# Appending one byte copies each file up to the upper layer first. printf and >> are builtins,
# so the loop forks nothing and measures the filesystem, not process creation.
wl_copyup_small() {
  local f n=0
  for f in "$1"/copyup/*/*; do
    printf x >> "$f" || return 1
    n=$((n + 1))
  done
  echo "$n"
}

wl_copyup_big() { printf x >> "$1/big/blob.bin" && stat -c %s "$1/big/blob.bin"; }

wl_extract() { tar -xf "$CACHE/extract.tar" -C "$1" && find "$1/extracted" | wc -l; }

# Deleting lower entries means a whiteout for each (and copying up the directories holding them).
wl_rm() { rm -rf "$1/rmtree" && [[ ! -e $1/rmtree ]] && echo gone; }

wl_write() {
  dd if=/dev/zero of="$1/written.bin" bs=1M count="$WRITE_MIB" conv=fsync status=none \
    && stat -c %s "$1/written.bin"
}

# 12345 -> 12,345 (printf's %'d groups digits only under a locale that says so).
thousands() {
  local n=$1
  while [[ $n =~ ^([0-9]+)([0-9]{3})(.*)$ ]]; do n=${BASH_REMATCH[1]},${BASH_REMATCH[2]}${BASH_REMATCH[3]}; done
  echo "$n"
}

# Table labels, one "metric<TAB>label" row each, for report.mjs.
describe_workloads() {
  local big="$BIG_MIB MiB" write="$WRITE_MIB MiB"
  ((BIG_MIB == 1024)) && big="1 GiB"
  ((WRITE_MIB == 1024)) && write="1 GiB"
  printf '%s\t%s\n' \
    walk "walk (stat every entry), cold" \
    walk_warm "walk (stat every entry), warm" \
    ls "ls -l of the $(thousands "$BIGDIR_FILES")-file directory, cold" \
    read "sequential read of the $big file, cold" \
    read_warm "sequential read of the $big file, warm" \
    tar "tar of the whole tree (piped to wc), cold" \
    copyup_small "copy-up of $(thousands "$COPYUP_FILES") small files (append a byte)" \
    copyup_big "copy-up of the $big file (append a byte)" \
    extract "tar -x of $(thousands "$EXTRACT_FILES") small files into the mount" \
    rm "rm -rf of a $(thousands "$RM_ENTRIES")-entry lower directory" \
    write "sequential write of $write (dd bs=1M conv=fsync)" \
    mount "mount until ready, cold caches (extra, for reference)"
}
