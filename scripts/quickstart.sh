#!/usr/bin/env bash
# Quick start: all set-up, then the main job: build the sample image (an OCI layout made from
# Debian's busybox-static, no network needed), pull it into the store, mount it with a writable
# layer, run a command inside it with chroot, show what changed, and unmount.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

layerfs() { node bin/layerfs.js "$@"; }
node scripts/make-sample-image.mjs sample/busybox-oci
demo=$(mktemp -d /tmp/layerfs-demo.XXXXXX)
mnt="$demo/rootfs"
mkdir -p "$mnt"

echo "== pull the sample image from its OCI layout into the store ($(layerfs --version))"
layerfs pull oci:sample/busybox-oci:latest
layerfs images
echo "== mount it with a writable layer named 'demo' (kept after unmount; 'layerfs rm demo' deletes it)"
layerfs rm demo >/dev/null 2>&1 || true
layerfs mount --quiet --name demo localhost/busybox-oci:latest "$mnt" >/dev/null
trap 'layerfs umount "$mnt" || true' EXIT
layerfs ps
echo "== run a program of the image: chroot $mnt /bin/sh -c '…'"
chroot "$mnt" /bin/sh -c 'cat /etc/os-release | head -2; echo "motd: $(cat /etc/motd)"; echo "written inside" > /root/hello.txt; rm /etc/motd; ls /'
echo "== what the writable layer changed (layerfs diff demo):"
layerfs diff demo
layerfs umount "$mnt"
trap - EXIT
echo "== unmounted; the writable layer 'demo' keeps /root/hello.txt: mount it again with"
echo "   layerfs mount --name demo localhost/busybox-oci:latest $mnt"
