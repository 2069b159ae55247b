# shellcheck shell=bash
# layerfs runs from dist/bundle/ in every benchmark: what decides that it must be rebuilt, and the
# rebuild itself, shared by bench/run.sh, bench/image/run.sh and bench/pull/run.sh. The caller
# defines log().

# True when dist/ is missing or older than any TypeScript source under REPO/src.
dist_stale() {
  local repo=$1 bundle=$1/dist/bundle/layerfs.js
  [[ ! -f $bundle || -n $(find "$repo/src" -name '*.ts' -newer "$bundle" | head -n 1) ]]
}

# Rebuilds REPO's dist/ when it is stale and BUILD (the second argument) is 1; a failed build is
# shown and the run goes on with dist/ as it is (the caller checks that the CLI starts).
build_if_stale() {
  local repo=$1 build=$2
  dist_stale "$repo" || return 0
  if [[ $build == 1 ]]; then
    log "building layerfs (dist/ is missing or older than src/)"
    (cd "$repo" && npm run build) >&2 || log "warning: npm run build failed (above); going on with dist/ as it is"
  else
    log "warning: dist/ is missing or older than src/ and BUILD=0: measuring dist/ as it is"
  fi
}
