#!/usr/bin/env bash
# All set-up on a fresh Debian machine with Node: system packages, npm dependencies, the native
# addon, the patched fuse-native and the TypeScript build. Idempotent.
#   scripts/setup.sh          runtime set-up
#   scripts/setup.sh --test   also what the tests need (a registry server, htpasswd)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--test" ]]; then export LAYERFS_TEST_PACKAGES=1; fi
bash scripts/setup-system.sh

if [[ -f package-lock.json ]]; then
  npm ci --no-audit --no-fund
else
  npm install --no-audit --no-fund
fi
