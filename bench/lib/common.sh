# Helpers shared by the benchmark scripts (sourced, not run).

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Cold start for the next step: write back dirty pages first (drop_caches only drops clean ones),
# then drop the page cache, dentries and inodes.
drop_caches() {
  timeout 300 sync
  echo 3 > /proc/sys/vm/drop_caches
}

# timed LIMIT CMD...: runs CMD under `timeout` (killed LIMIT s later, KILL 10 s after that) and
# sets ELAPSED to its wall-clock seconds and OUTPUT to its stdout. The clock is bash's own
# EPOCHREALTIME, so nothing is forked inside the timed region except CMD itself.
# Returns CMD's status (124 or 137 on timeout).
timed() {
  local limit=$1; shift
  local out=$RUN_ROOT/last.out rc=0 t0 t1
  t0=$EPOCHREALTIME
  timeout -k 10 "$limit" "$@" > "$out" 2> "$RUN_ROOT/last.err" || rc=$?
  t1=$EPOCHREALTIME
  ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  OUTPUT=$(head -c 200 "$out")
  return "$rc"
}

# The gist of the last command's stderr, on one line, for error notes: the first line naming an
# error (a Node stack trace ends in lines that say nothing), else the last lines.
last_error() {
  local file=$RUN_ROOT/last.err
  { grep -m1 -E 'rror|layerfs:|fuse:' "$file" || tail -n 3 "$file"; } 2> /dev/null | tr '\n\t' '  ' | cut -c1-300
}

# record IMPL METRIC REP VALUE [NOTE]: one row of raw results (VALUE: seconds, kB, "timeout" or
# "error"); report.mjs turns the rows into the table.
record() {
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >> "$RESULTS_TSV"
}

# Installs the Debian packages that provide the given commands, if any is missing.
# Arguments are COMMAND:PACKAGE pairs.
ensure_tools() {
  local pair missing=()
  for pair in "$@"; do
    command -v "${pair%%:*}" > /dev/null || missing+=("${pair#*:}")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]} with apt-get"
  timeout 300 apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "${missing[@]}" > /dev/null \
    || die "apt-get install ${missing[*]} failed"
}
