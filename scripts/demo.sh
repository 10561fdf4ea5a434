#!/usr/bin/env bash
# `make demo`: two sidecars with mTLS between them, on loopback.
#
#   user_client --h2c--> 127.0.0.1:15001 skiff "frontend" (config/demo.yaml)
#               --mTLS--> 127.0.0.1:15443 skiff "users" (config/demo-users.yaml)
#               --h2c--> 127.0.0.1:50051 user_server
#
# The frontend's skiff presents spiffe://mesh.local/ns/default/sa/frontend and accepts only a
# server that is .../sa/users; the users' skiff allows only the frontend and passes its verified
# identity to user_server in x-skiff-peer-identity, which user_server prints. Development
# certificates come from certs/gen-dev-certs.sh (into certs/dev/, created when missing).
#
# Environment:
#   BUILD_DIR         build tree with skiff and examples/ (default: build)
#   DEMO_SECONDS      how long the client runs; 0 or unset = until Ctrl-C
#   DEMO_CONCURRENCY  client workers (default 4)
#   DEMO_CONFIG       the frontend skiff's config (default config/demo.yaml)
#   DEMO_USERS_CONFIG the users skiff's config (default config/demo-users.yaml)
#   DEMO_LOG_DIR      where skiff's and user_server's logs go (default: a new /tmp/skiff-demo.*)
#
# Every process this script starts is stopped by PID when it exits, however it exits.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
DEMO_SECONDS=${DEMO_SECONDS:-0}
DEMO_CONCURRENCY=${DEMO_CONCURRENCY:-4}
DEMO_CONFIG=${DEMO_CONFIG:-config/demo.yaml}
DEMO_USERS_CONFIG=${DEMO_USERS_CONFIG:-config/demo-users.yaml}
SERVER_ADDR=127.0.0.1:50051
SKIFF_ADDR=127.0.0.1:15001
USERS_SKIFF_ADDR=127.0.0.1:15443
CERT_DIR=certs/dev
READY_TIMEOUT_S=10

die() {
  echo "demo: $*" >&2
  exit 1
}

find_binary() {  # name candidates... -> first executable candidate
  local name=$1
  shift
  local c
  for c in "$@"; do
    if [[ -x $c ]]; then
      echo "$c"
      return 0
    fi
  done
  die "$name not found (looked in: $*); build first: make build (BUILD_DIR=$BUILD_DIR)"
}

SKIFF=$(find_binary skiff "$BUILD_DIR/src/skiff" "$BUILD_DIR/skiff")
USER_SERVER=$(find_binary user_server "$BUILD_DIR/examples/user_server")
USER_CLIENT=$(find_binary user_client "$BUILD_DIR/examples/user_client")
[[ -f $DEMO_CONFIG ]] || die "config $DEMO_CONFIG not found"
[[ -f $DEMO_USERS_CONFIG ]] || die "config $DEMO_USERS_CONFIG not found"

LOG_DIR=${DEMO_LOG_DIR:-$(mktemp -d /tmp/skiff-demo.XXXXXX)}
mkdir -p "$LOG_DIR"

# PIDs of everything started here, in start order; stopped in reverse order.
PIDS=()
NAMES=()

# shellcheck disable=SC2317  # called from the EXIT trap
stop_all() {
  local i pid n
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid" 2>/dev/null || true
    # Up to 10 s to drain and exit (skiff's drain_timeout is shorter), then SIGKILL.
    for ((n = 0; n < 100; n++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "demo: ${NAMES[i]} (pid $pid) ignored SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
  NAMES=()
}
# shellcheck disable=SC2317
on_exit() {
  local rc=$?
  stop_all
  echo "demo: logs are in $LOG_DIR" >&2
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

port_in_use() {  # host:port -> true if something accepts connections there
  local host=${1%:*} port=${1##*:}
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

check_port_free() {  # host:port what
  if port_in_use "$1"; then
    local who=""
    if command -v ss >/dev/null; then
      who=$(ss -Hltnp "sport = :${1##*:}" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -1)
    fi
    die "$1 (needed for $2) is already in use${who:+ by $who}; stop that process and retry"
  fi
}

# Servers run in their own session, so a Ctrl-C in the terminal reaches only this script and
# user_client; stop_all then stops skiff (which drains) before user_server, and the client's
# last calls are not cut by a server shutting down under them. (A background job of a
# non-interactive shell is not a process group leader, so setsid execs in place and $! is the
# server's own PID.)
start() {  # name logfile cmd...
  local name=$1 log=$2
  shift 2
  setsid "$@" >"$log" 2>&1 </dev/null &
  PIDS+=($!)
  NAMES+=("$name")
  echo "demo: started $name (pid $!): $*" >&2
}

# Waits until |pattern| appears in |log|, or fails if the process exits or |timeout_s| passes.
wait_for_line() {  # name pid log pattern timeout_s
  local name=$1 pid=$2 log=$3 pattern=$4 timeout_s=$5
  local deadline=$((SECONDS + timeout_s))
  until grep -q -- "$pattern" "$log" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      local rc=0
      wait "$pid" || rc=$?
      echo "demo: $name exited (status $rc) before it was ready; its log ($log):" >&2
      sed 's/^/  | /' "$log" >&2
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      echo "demo: $name not ready after ${timeout_s}s (waiting for '$pattern'); its log:" >&2
      sed 's/^/  | /' "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
}

check_port_free "$SERVER_ADDR" user_server
check_port_free "$USERS_SKIFF_ADDR" "skiff (users)"
check_port_free "$SKIFF_ADDR" "skiff (frontend)"

# Development CA and SPIFFE certificates for both sidecars (kept across runs).
if [[ ! -s $CERT_DIR/ca.crt || ! -s $CERT_DIR/frontend.crt || ! -s $CERT_DIR/users.crt ]]; then
  bash certs/gen-dev-certs.sh "$CERT_DIR" frontend users
fi

start user_server "$LOG_DIR/user_server.log" "$USER_SERVER" --listen "$SERVER_ADDR"
wait_for_line user_server "${PIDS[-1]}" "$LOG_DIR/user_server.log" "listening on" "$READY_TIMEOUT_S"

start skiff-users "$LOG_DIR/skiff-users.log" "$SKIFF" --config "$DEMO_USERS_CONFIG"
wait_for_line skiff-users "${PIDS[-1]}" "$LOG_DIR/skiff-users.log" \
  'listener "inbound" listening on' "$READY_TIMEOUT_S"
grep -E -- 'listening on|TLS certificate' "$LOG_DIR/skiff-users.log" |
  sed 's/^/demo: skiff (users): /' >&2

start skiff "$LOG_DIR/skiff.log" "$SKIFF" --config "$DEMO_CONFIG"
wait_for_line skiff "${PIDS[-1]}" "$LOG_DIR/skiff.log" 'listener "outbound" listening on' \
  "$READY_TIMEOUT_S"
grep -E -- 'listening on|TLS certificate' "$LOG_DIR/skiff.log" |
  sed 's/^/demo: skiff (frontend): /' >&2

# Shows, as soon as user_server logs it, which verified caller identity reached it.
(
  until grep -q -- 'verified caller' "$LOG_DIR/user_server.log" 2>/dev/null; do sleep 0.2; done
  grep -- 'verified caller' "$LOG_DIR/user_server.log" | head -1 | sed 's/^/demo: /' >&2
) &
PIDS+=($!)
NAMES+=(identity-watch)

if ((DEMO_SECONDS > 0)); then
  echo "demo: running user_client for ${DEMO_SECONDS}s against skiff at $SKIFF_ADDR" >&2
else
  echo "demo: running user_client against skiff at $SKIFF_ADDR; Ctrl-C to stop" >&2
fi
# The client runs in the background so that `wait` (unlike a foreground command) returns as
# soon as a signal arrives. Ctrl-C reaches user_client directly (same process group; it resets
# SIGINT from the ignored state a background job starts in), which prints its summary and exits;
# a SIGTERM to this script is passed on to it.
"$USER_CLIENT" --target "$SKIFF_ADDR" --seconds "$DEMO_SECONDS" \
  --concurrency "$DEMO_CONCURRENCY" &
client_pid=$!
PIDS+=("$client_pid")
NAMES+=(user_client)
terminated=0
trap 'echo "demo: interrupted" >&2' INT
trap 'terminated=1; kill -TERM "$client_pid" 2>/dev/null || true' TERM
rc=0
while :; do
  wait "$client_pid" && rc=0 || rc=$?
  # A trapped signal makes `wait` return early (status > 128): wait again while the client
  # runs; if it has exited meanwhile, one more wait returns its own status.
  if ((rc > 128)); then
    if kill -0 "$client_pid" 2>/dev/null; then continue; fi
    wait "$client_pid" && rc=0 || rc=$?
  fi
  break
done
unset 'PIDS[-1]' 'NAMES[-1]'
if ((terminated)); then
  echo "demo: terminated" >&2
  exit 143
fi
if ((rc == 0)); then
  echo "demo: OK, every call through skiff succeeded (or was an expected NOT_FOUND)" >&2
else
  echo "demo: user_client reported failures (exit $rc); skiff's log: $LOG_DIR/skiff.log" >&2
fi
exit "$rc"
