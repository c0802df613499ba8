#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the whole test suite: unit tests, then the
# integration tests against the bundled OAuth server and real latchkeyd processes.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
"$root/scripts/setup.sh"
cd "$build_dir"
ctest --output-on-failure -j2 --timeout 600
