#!/usr/bin/env bash
# The one test command (README, .ci/run): all set-up, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
bash scripts/open-checkout-to-nobody.sh
npm run typecheck
bash scripts/run-tests.sh
