#!/usr/bin/env bash
# First measurement of the proxy hop: h2load gRPC unary (1 KiB request message, 5-byte gRPC
# prefix, content-type application/grpc, te: trailers) against the demo UserService directly,
# through skiff (1 worker) and through nghttpx (1 worker, h2c both sides), interleaved, RUNS
# times each. Reports req/s and the proxy's CPU microseconds per completed request (utime+stime
# of the whole process from /proc over the measured window). Loopback only; every process it
# starts is stopped by PID on exit.
#
#   bench/unary.sh            # BUILD_DIR=build RUNS=5 REQUESTS=50000 CLIENTS=8 STREAMS=16
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
RUNS=${RUNS:-5}
REQUESTS=${REQUESTS:-50000}
CLIENTS=${CLIENTS:-8}
STREAMS=${STREAMS:-16}
BACKEND_PORT=${BACKEND_PORT:-52051}
SKIFF_PORT=${SKIFF_PORT:-52001}
NGHTTPX_PORT=${NGHTTPX_PORT:-52002}

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# GetUserRequest{id: 1} plus an unknown length-delimited field 15 of 1012 bytes: a 1 KiB
# message that the server parses (proto3 keeps unknown fields) and answers.
python3 - "$work/body.bin" <<'PY'
import struct, sys
payload = b"\x08\x01" + b"\x7a" + bytes([0xf4, 0x07]) + b"x" * 1012
sys.stdout.flush()
open(sys.argv[1], "wb").write(b"\x00" + struct.pack(">I", len(payload)) + payload)
PY

wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "port $1 never opened" >&2
  exit 1
}

"$BUILD_DIR/examples/user_server" --listen "127.0.0.1:$BACKEND_PORT" >"$work/server.log" 2>&1 &
pids+=($!)
cat >"$work/skiff.yaml" <<YAML
workers: 1
listeners:
  - name: bench
    address: 127.0.0.1:$SKIFF_PORT
    routes:
      - match: { service: user.UserService }
        cluster: users
clusters:
  - name: users
    endpoints: [ "127.0.0.1:$BACKEND_PORT" ]
YAML
"$BUILD_DIR/src/skiff" --config "$work/skiff.yaml" --log-level warn >"$work/skiff.log" 2>&1 &
skiff_pid=$!
pids+=($skiff_pid)
nghttpx --frontend="127.0.0.1,$NGHTTPX_PORT;no-tls" --backend="127.0.0.1,$BACKEND_PORT;;proto=h2" \
  --workers=1 --no-ocsp --errorlog-file="$work/nghttpx.log" --accesslog-file=/dev/null \
  --conf=/dev/null >/dev/null 2>&1 &
nghttpx_pid=$!
pids+=($nghttpx_pid)
wait_port "$BACKEND_PORT"; wait_port "$SKIFF_PORT"; wait_port "$NGHTTPX_PORT"

cpu_ticks() {  # utime + stime of a process and its child processes (nghttpx forks its workers)
  local total=0 p
  for p in "$1" $(pgrep -P "$1"); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)

run_h2load() {  # port -> "req/s succeeded"
  h2load -n "$REQUESTS" -c "$CLIENTS" -m "$STREAMS" -d "$work/body.bin" \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://127.0.0.1:$1/user.UserService/GetUser" >"$work/h2load.out" 2>&1
  local rps ok
  rps=$(awk '/^finished in/ {print $4}' "$work/h2load.out")
  ok=$(awk '/^requests:/ {print $8}' "$work/h2load.out")
  echo "$rps $ok"
}

measure() {  # name port pid -> appends "name rps us_per_req"
  local name=$1 port=$2 pid=${3:-}
  local before after rps ok us
  [ -n "$pid" ] && before=$(cpu_ticks "$pid")
  read -r rps ok < <(run_h2load "$port")
  if [ -n "$pid" ]; then
    after=$(cpu_ticks "$pid")
    us=$(python3 -c "print(round(($after-$before)*1e6/$hz/$ok, 2))")
  else
    us="-"
  fi
  echo "$name $rps $us $ok" >>"$work/results"
  printf '%-8s %10s req/s  %8s us/req  (%s ok)\n' "$name" "$rps" "$us" "$ok"
}

run_h2load "$SKIFF_PORT" >/dev/null  # warm-up: connections, allocator
run_h2load "$NGHTTPX_PORT" >/dev/null
for i in $(seq 1 "$RUNS"); do
  echo "run $i/$RUNS"
  measure direct "$BACKEND_PORT"
  measure skiff "$SKIFF_PORT" "$skiff_pid"
  measure nghttpx "$NGHTTPX_PORT" "$nghttpx_pid"
done

echo
echo "medians over $RUNS runs ($REQUESTS requests, $CLIENTS connections x $STREAMS streams, 1 KiB unary):"
python3 - "$work/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, rps, us, ok = line.split()
    rows.setdefault(name, []).append((float(rps), None if us == "-" else float(us)))
for name in ("direct", "skiff", "nghttpx"):
    r = rows.get(name, [])
    rps = [x[0] for x in r]
    us = [x[1] for x in r if x[1] is not None]
    line = f"  {name:8s} req/s median {statistics.median(rps):10.0f} (min {min(rps):.0f}, max {max(rps):.0f})"
    if us:
        line += f"   CPU us/req median {statistics.median(us):6.2f} (min {min(us):.2f}, max {max(us):.2f})"
    print(line)
PY
echo "skiff RSS after load: $(awk '/VmRSS/ {print $2, $3}' /proc/$skiff_pid/status)"
