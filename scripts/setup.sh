#!/usr/bin/env bash
# Installs what Latchkey needs on Debian 12 (as root, or with sudo) and builds it.
# Safe to run again: it installs only what is missing and rebuilds incrementally.
#
#   scripts/setup.sh            # packages, npm packages for the test OAuth server, build
#   BUILD_DIR=out scripts/setup.sh
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

packages=(
  g++ cmake make pkg-config ccache clang-format git openssl curl jq ca-certificates
  libcaf-dev librocksdb-dev libboost-json1.81-dev libcpp-httplib-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev libspdlog-dev libcli11-dev libtomlplusplus-dev
)
# The bundled OAuth server runs on Node.js; keep a newer one if the machine already has it.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

echo "setup: npm packages for the test OAuth server"
(cd "$root/tests/oauth-server" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

echo "setup: building in $build_dir"
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLATCHKEY_BUILD_TESTS=ON -DLATCHKEY_BUILD_BENCH=ON >/dev/null
cmake --build "$build_dir" -j2
