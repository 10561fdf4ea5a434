#!/usr/bin/env bash
# Installs the Debian 12 packages skiff builds, tests and demos with. Idempotent:
# packages already present are skipped, so a second run does no network I/O.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config clang-format
  libuv1-dev libnghttp2-dev libssl-dev
  libprotobuf-dev protobuf-compiler
  libgrpc++-dev protobuf-compiler-grpc
  libyaml-cpp-dev prometheus-cpp-dev libcivetweb-dev nlohmann-json3-dev libcurl4-openssl-dev
  libcli11-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev
  nghttp2-client nghttp2-proxy openssl procps
  prometheus
)
# `make bench` also needs these (scripts/install-deps.sh --bench): the driver, the plot.
if [ "${1:-}" = "--bench" ]; then
  packages+=(python3 gnuplot-nox util-linux)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
