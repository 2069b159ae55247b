#!/usr/bin/env bash
# Runs every test file under test/ with node:test. Node 20's --test does not expand globs, so
# the files are listed explicitly; finding none is a failure, never a green run.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t files < <(find test -name '*.test.ts' -type f | sort)
if ((${#files[@]} == 0)); then
  echo "run-tests: no test files found under test/" >&2
  exit 1
fi
echo "run-tests: ${#files[@]} test files" >&2
exec node --import tsx --test --test-concurrency=1 "${files[@]}"
