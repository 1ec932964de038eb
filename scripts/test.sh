#!/usr/bin/env bash
# The full test suite: unit, property and integration tests against private
# NATS JetStream and Redis servers the tests start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.dev/bin:$HOME/.cargo/bin:$PATH"
cargo test --workspace --locked "$@"
deploy/validate.sh
