#!/usr/bin/env bash
# The project's test command (`npm test`): installs the Debian packages the tests spawn real
# servers from, then type-checks, lints and runs tap. Every step runs even when an earlier one
# failed (one run shows every problem); any failure makes the exit status non-zero.
# The last line is `N passed, N failed[, N skipped]`: tap's top-level tests of every test file,
# plus the typecheck and lint steps as one test each.
#
# Test files start their own servers (test/helpers/*.ts, each on a free port with its own data
# directory, stopped in t.teardown). This script only guarantees that nothing outlives the run:
# every process started under it carries READINESS_TEST_RUN in its environment and is killed on
# exit, and the services' temp directories live under READINESS_TEST_TMPDIR, removed on exit.
set -uo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# ---------------------------------------------------------------------------------------------
# 1. Debian packages (fast path: nothing to do when every binary is there)
# ---------------------------------------------------------------------------------------------
PG_BIN=/usr/lib/postgresql/15/bin
missing=()
[[ -x $PG_BIN/postgres && -x $PG_BIN/initdb && -x $PG_BIN/pg_isready ]] || missing+=(postgresql)
# pg_stat_statements ships in postgresql-15 on Debian 12; checked anyway in case of a partial install.
[[ -f /usr/share/postgresql/15/extension/pg_stat_statements.control ]] || missing+=(postgresql)
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
# test/probes/tcp.test.ts compares the tcp probe with blackbox_exporter's tcp_connect.
command -v prometheus-blackbox-exporter >/dev/null 2>&1 || missing+=(prometheus-blackbox-exporter)
# The netns test (unshare -n, ip link) and the mount-namespace /etc/hosts of the tcp test.
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
# The status page's browser tests drive Debian's Chromium through playwright-core.
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
# A font with the page's state icons (✓ ✗ ⚠ ◷ ⊘), so screenshots show text, not boxes.
[[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || missing+=(fonts-dejavu-core)
# The image and deploy tests run the service in a network namespace of its own (loopback only):
# unshare, nsenter and setpriv are util-linux (essential); `ip` brings loopback up. The deploy
# tests render with the machine's own `kubectl kustomize` (kustomize v5; Debian's
# kubernetes-client is 1.20, too old): it is not installed here.
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
# Debian's `loki` package is an unrelated genetics program (MCMC linkage analysis) and Grafana Loki
# is not packaged for Debian 12: never install it; Loki tests serve Loki's API from a local server.
command -v loki >/dev/null 2>&1 || echo "test.sh: Grafana Loki is not available from Debian 12 (its 'loki' package is another program): skipped"

if ((${#missing[@]} > 0)); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
fi
if ((${#missing[@]} > 0)) && [[ $(id -u) -ne 0 ]]; then
  echo "test.sh: missing Debian packages (${missing[*]}) and not root: the tests that need them will fail; install them with apt-get" >&2
elif ((${#missing[@]} > 0)); then
  log "installing ${missing[*]}"
  # Package scripts must not start system-wide daemons (a cluster on 5432, prometheus on 9090):
  # the tests start their own and the run must leave nothing running.
  made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"
  rc=$?
  ((made_policy)) && rm -f /usr/sbin/policy-rc.d
  if ((rc != 0)); then
    echo "test.sh: apt-get install failed (exit $rc)" >&2
    exit 2
  fi
fi

# ---------------------------------------------------------------------------------------------
# 2. Run marker and temp directory, cleaned on any exit
# ---------------------------------------------------------------------------------------------
READINESS_TEST_RUN="$$-$(date +%s%N)"
READINESS_TEST_TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/readiness-test.XXXXXX")
# Services run as an unprivileged user (initdb refuses root): they must reach their dirs below.
chmod 755 "$READINESS_TEST_TMPDIR"
export READINESS_TEST_RUN READINESS_TEST_TMPDIR

marked_pids() {
  local p pid
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [[ $pid == "$$" ]] && continue
    grep -qzx "READINESS_TEST_RUN=$1" "$p/environ" 2>/dev/null && echo "$pid"
  done
}

cleanup() {
  local run=${READINESS_TEST_RUN:-} pids i
  [[ -n $run ]] || return 0
  # Children of this function (grep) must not carry the marker, or they would find themselves.
  unset READINESS_TEST_RUN
  mapfile -t pids < <(marked_pids "$run")
  if ((${#pids[@]} > 0)); then
    echo "test.sh: stopping ${#pids[@]} leftover process(es): ${pids[*]}" >&2
    # SIGINT is a fast shutdown for postgres and a clean stop for prometheus/alertmanager/node.
    kill -INT "${pids[@]}" 2>/dev/null
    for ((i = 0; i < 50; i++)); do
      mapfile -t pids < <(marked_pids "$run")
      ((${#pids[@]} == 0)) && break
      sleep 0.1
    done
    ((${#pids[@]} > 0)) && kill -KILL "${pids[@]}" 2>/dev/null
  fi
  rm -rf "$READINESS_TEST_TMPDIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# 3. Typecheck, lint, tests
# ---------------------------------------------------------------------------------------------
passed=0 failed=0 skipped=0 status=0
failed_steps=()
step_failed() { # step_failed NAME: counted, and named again before the summary
  echo "test.sh: $1 FAILED" >&2
  failed=$((failed + 1))
  failed_steps+=("$1")
  status=1
}
step() { # step NAME CMD...: a static check counted as one test
  local name=$1
  shift
  log "$name: $*"
  if "$@"; then
    passed=$((passed + 1))
  else
    step_failed "$name"
  fi
}

# The CLI and serve tests run the compiled command the package ships (bin/readiness.js), so the
# build comes first. It is skipped when dist/ is newer than everything it is built from (on CI,
# `npm ci` built it a moment ago through `prepare`); any newer source, config or lock file, or
# no dist/, builds again.
build_marker=dist/bundle/modules.json
build_inputs=(src tsconfig.json tsconfig.build.json package.json package-lock.json node_modules/.package-lock.json)
if [[ -f $build_marker && -z $(find "${build_inputs[@]}" -newer "$build_marker" -print -quit 2>/dev/null) ]]; then
  log "build: dist/ is newer than src/, the tsconfigs and the package files: not rebuilt"
  passed=$((passed + 1))
else
  step build npm run build --silent
fi

# The static checks do not depend on the tests: they run beside tap, one after another and
# niced (the tests' timing comes first), which fills the CPU the tests leave idle while they
# wait on their servers. Their output is printed after tap's.
static_dir="$READINESS_TEST_TMPDIR/static"
mkdir -p "$static_dir"
static_names=(typecheck typecheck-ui lint)
static_cmds=("npx tsc --noEmit" "npx tsc -p tsconfig.ui.json" "npx eslint .")
(
  for i in "${!static_names[@]}"; do
    # shellcheck disable=SC2086 # each command is plain words
    nice -n 10 ${static_cmds[$i]} >"$static_dir/${static_names[$i]}.log" 2>&1
    echo $? >"$static_dir/${static_names[$i]}.rc"
  done
) &
static_pid=$!

log "tests: npx tap --reporter=tap $*"
tap_out="$READINESS_TEST_TMPDIR/tap.out"
npx tap --reporter=tap "$@" | tee "$tap_out"
tap_rc=${PIPESTATUS[0]}
((tap_rc != 0)) && status=1

wait "$static_pid"
for i in "${!static_names[@]}"; do
  name=${static_names[$i]}
  log "$name: ${static_cmds[$i]}"
  cat "$static_dir/$name.log" 2>/dev/null
  if [[ $(cat "$static_dir/$name.rc" 2>/dev/null) == 0 ]]; then
    passed=$((passed + 1))
  else
    step_failed "$name"
  fi
done

# Counts the top-level tests of each test file: in tap's TAP stream a file is a subtest at
# indent 0 and its own top-level tests/asserts are the `ok`/`not ok` lines at indent 4.
# A file that failed without a failing test inside (crash, timeout, syntax error) counts as one
# failure; a file skipped as a whole counts as one skip.
read -r t_pass t_fail t_skip < <(awk '
  function directive(line) { return tolower(line) ~ /# (skip|todo)/ }
  /^# Subtest: /          { inner = 0; innerfail = 0; next }
  /^    (not )?ok [0-9]+/  {
    inner++
    if (directive($0)) skip++
    else if ($0 ~ /^    not ok/) { fail++; innerfail++ }
    else pass++
    next
  }
  /^(not )?ok [0-9]+/      {
    if ($0 ~ /^not ok/ && !directive($0) && innerfail == 0) fail++
    else if (inner == 0 && directive($0)) skip++
    next
  }
  END { printf "%d %d %d\n", pass, fail, skip }' "$tap_out")
passed=$((passed + t_pass))
failed=$((failed + t_fail))
skipped=$((skipped + t_skip))
if ((tap_rc != 0 && t_fail == 0)); then
  echo "test.sh: tap exited $tap_rc without a failing test (no test files, or tap itself failed)" >&2
  failed=$((failed + 1))
fi

# The fault suite's figure: each test/faults/*.test.ts prints `# faults(NAME): N cases, N held,
# N broken[, N skipped]` (test/helpers/faults.ts); their sum is printed just before the summary.
# A fault file that ended without its line (crashed, killed at its time bound, or not using
# faultSuite) counts as one broken case and fails the run.
read -r f_files f_cases f_held f_broken f_skipped f_missing < <(awk '
  function close_file() {
    if (file ~ /^test\/faults\// && !seen) { missing++; broken++; print "test.sh: " file " printed no faults figure line" > "/dev/stderr" }
    file = ""
  }
  /^# Subtest: /   { close_file(); file = substr($0, 12); seen = 0; next }
  /^    # faults\([^)]*\): [0-9]+ cases, [0-9]+ held, [0-9]+ broken/ {
    line = $0; sub(/^    # faults\([^)]*\): /, "", line)
    n = split(line, part, /, /)
    for (i = 1; i <= n; i++) {
      split(part[i], kv, " ")
      if (kv[2] == "cases") cases += kv[1]
      else if (kv[2] == "held") held += kv[1]
      else if (kv[2] == "broken") broken += kv[1]
      else if (kv[2] == "skipped") skipped += kv[1]
    }
    files++; seen = 1; next
  }
  /^(not )?ok [0-9]+/ { close_file(); next }
  END { close_file(); printf "%d %d %d %d %d %d\n", files, cases, held, broken, skipped, missing }' "$tap_out")
faults=""
if ((f_files + f_missing > 0)); then
  faults="faults: $f_cases cases, $f_held held, $f_broken broken"
  ((f_skipped > 0)) && faults+=", $f_skipped skipped"
  faults+=" ($f_files files"
  ((f_missing > 0)) && faults+=", $f_missing without a figure line"
  faults+=")"
  if ((f_missing > 0)); then
    # Already a failed file when it crashed; a fault file that passed without its line is one more.
    failed=$((failed + f_missing))
    status=1
  fi
fi

# CI shows only part of a long log, so the failures are named again just before the summary:
# `FAILED file: test > its first failing assertion`, or the file alone when it failed outside
# its tests (crash, time limit, exit status).
failures=$(awk '
  function name_of(line) { sub(/^ *(not )?ok [0-9]+ (- )?/, "", line); sub(/ # time=.*/, "", line); return line }
  function directive(line) { return tolower(line) ~ /# (skip|todo)/ }
  /^# Subtest: /         { file = substr($0, 12); filefail = 0; first = ""; next }
  /^        +not ok [0-9]+/ { if (first == "" && !directive($0)) first = name_of($0); next }
  /^    (not )?ok [0-9]+/  {
    if ($0 ~ /^    not ok/ && !directive($0)) {
      print "FAILED " file ": " name_of($0) (first != "" ? " > " first : ""); filefail = 1
    }
    first = ""; next
  }
  /^not ok [0-9]+/         { if (!directive($0) && !filefail) print "FAILED " name_of($0) " (outside its tests: crash, time limit or exit status)"; next }
' "$tap_out")
# Clean up before the summary so that it stays the last line.
cleanup
trap - EXIT
summary="$passed passed, $failed failed"
((skipped > 0)) && summary+=", $skipped skipped"
echo
((${#failed_steps[@]} > 0)) && printf 'FAILED step %s (its output is above)\n' "${failed_steps[@]}"
[[ -n $failures ]] && printf '%s\n' "$failures"
[[ -n $faults ]] && echo "$faults"
echo "$summary"
exit "$status"
