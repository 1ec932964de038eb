#!/usr/bin/env bash
# The full test suite: unit, property and integration tests against private
# NATS JetStream and Redis servers the tests start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.dev/bin:$HOME/.cargo/bin:$PATH"
cargo test --workspace --locked "$@"
deploy/validate.sh
# As a new user would: the README's bring-up, in both forms, reaching a pending approval.
scripts/up.sh --check
scripts/up.sh --one-process --check
