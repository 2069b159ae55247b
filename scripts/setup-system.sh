#!/usr/bin/env bash
# Installs the system packages layerfs needs on Debian. Idempotent; needs root.
#   runtime : fuse3 (fusermount3, /dev/fuse helpers), libfuse2 (fuse-native links libfuse.so.2)
#   build   : libfuse-dev, pkg-config (fuse-native is rebuilt from source with our patch)
#   tests   : attr (getfattr/setfattr), fuse-overlayfs (benchmark peer, reference mount program),
#             busybox-static (sample image); with LAYERFS_TEST_PACKAGES=1 also a registry, skopeo,
#             umoci, buildah and podman with runc (the real clients of the mount program,
#             test/e2e/mount-program.test.ts and podman-mount-program.test.ts; crun cannot run
#             containers on a hybrid cgroup host, see docs/mount-program.md)
set -euo pipefail

packages=(fuse3 libfuse2 libfuse-dev pkg-config attr fuse-overlayfs busybox-static python3 make g++)
if [[ "${LAYERFS_TEST_PACKAGES:-0}" == 1 ]]; then
  packages+=(docker-registry apache2-utils openssl skopeo umoci buildah podman runc)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "layerfs setup: missing packages: ${missing[*]} (run this script as root)" >&2
    exit 1
  fi
  echo "layerfs setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# docker-registry's package starts a system service we do not want; tests start their own.
if systemctl is-active --quiet docker-registry 2>/dev/null; then systemctl stop docker-registry || true; fi

if [[ ! -e /dev/fuse ]]; then
  modprobe fuse 2>/dev/null || true
fi
[[ -c /dev/fuse ]] || { echo "layerfs setup: /dev/fuse is not available on this machine" >&2; exit 1; }
