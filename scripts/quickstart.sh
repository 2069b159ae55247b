#!/usr/bin/env bash
# Quick start: all set-up, then mount a generated three-layer tree with a writable upper, show
# the merged view, change it (copy-up, whiteout), show what landed in the upper, and unmount.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

demo=$(mktemp -d /tmp/layerfs-demo.XXXXXX)
node scripts/make-sample-layers.mjs "$demo/layers"
mkdir -p "$demo/upper" "$demo/mnt"
layerfs() { node bin/layerfs.js "$@"; }

layerfs mount --lower "$demo/layers/top:$demo/layers/mid:$demo/layers/base" --upper "$demo/upper" "$demo/mnt"
trap 'layerfs umount "$demo/mnt" || true' EXIT
echo "== mounted $demo/mnt (top: top, then mid, then base)"
echo "== merged tree:"
(cd "$demo/mnt" && find . -mindepth 1 | sort | sed 's/^/   /')
echo "== etc/motd: $(cat "$demo/mnt/etc/motd")"
echo "== change it: append to etc/motd (copy-up), delete a base file (whiteout), add a file"
echo "edited through the mount" >> "$demo/mnt/etc/motd"
rm "$demo/mnt/var/cache/app/stale-2.bin"
echo "new" > "$demo/mnt/srv/new.txt"
echo "== the upper directory now holds only the changes (an OCI layer diff):"
(cd "$demo/upper" && find . -mindepth 1 | sort | sed 's/^/   /')
echo "== lower layers are untouched: base etc/motd is still: $(cat "$demo/layers/base/etc/motd")"
layerfs umount "$demo/mnt"
trap - EXIT
echo "== unmounted; demo files are in $demo"
