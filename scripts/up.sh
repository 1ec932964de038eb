#!/usr/bin/env bash
# Brings zengate up locally on embedded defaults and shows it working.
#
#   scripts/up.sh            run until Ctrl-C
#   scripts/up.sh --check    bring up, verify the demo flow, stop (used by the test suite)
#
# Reuses a NATS (JetStream, >= 2.10) on 127.0.0.1:4222 and a Redis on 127.0.0.1:6379
# when they already listen; otherwise starts private ones with data under .dev/data.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CHECK=""
[ "${1:-}" = "--check" ] && CHECK=1

scripts/setup.sh
export PATH="$ROOT/.dev/bin:$HOME/.cargo/bin:$PATH"
DEV="$ROOT/.dev"
LOGS="$DEV/logs"
mkdir -p "$LOGS" "$DEV/data"

say() { printf '\033[1m[zengate]\033[0m %s\n' "$*"; }
PIDS=()
cleanup() {
  trap - INT TERM EXIT
  if [ "${#PIDS[@]}" -gt 0 ]; then
    say "stopping"
    kill -TERM "${PIDS[@]}" 2>/dev/null || true
    wait "${PIDS[@]}" 2>/dev/null || true
  fi
}
trap cleanup INT TERM EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url what
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  say "$2 did not become ready; see $LOGS"; return 1
}

# --- build -----------------------------------------------------------------
say "building (first build takes a few minutes)"
cargo build --quiet -p ingress -p zengate-cli
BIN="$ROOT/target/debug"

# --- NATS --------------------------------------------------------------------
nats_info() { # port -> INFO json line
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; head -n1 <&3" 2>/dev/null || true
}
NATS_PORT=4222
info=$(nats_info 4222)
if [ -n "$info" ] && echo "$info" | grep -q '"jetstream":true' &&
   v=$(echo "$info" | sed -n 's/.*"version":"\([0-9]*\.[0-9]*\).*/\1/p') &&
   [ "$(printf '2.10\n%s\n' "$v" | sort -V | head -1)" = "2.10" ]; then
  say "reusing NATS $v with JetStream on 127.0.0.1:4222"
else
  [ -n "$info" ] && say "NATS on 4222 is too old or lacks JetStream; starting a private one"
  port_open 4222 && NATS_PORT=$(free_port)
  nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$DEV/data/nats" >"$LOGS/nats.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do port_open "$NATS_PORT" && break; sleep 0.1; done
  say "started NATS on 127.0.0.1:$NATS_PORT (data in .dev/data/nats)"
fi
export NATS_URL="nats://127.0.0.1:$NATS_PORT"

# --- Redis -------------------------------------------------------------------
REDIS_PORT=6379
if port_open 6379 && [ "$(timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/6379; printf "PING\r\n" >&3; head -c5 <&3' 2>/dev/null)" = "+PONG" ]; then
  say "reusing Redis on 127.0.0.1:6379"
else
  port_open 6379 && REDIS_PORT=$(free_port)
  mkdir -p "$DEV/data/redis"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$DEV/data/redis" --appendonly yes >"$LOGS/redis.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do port_open "$REDIS_PORT" && break; sleep 0.1; done
  say "started Redis on 127.0.0.1:$REDIS_PORT (data in .dev/data/redis)"
fi
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT"

# --- services ----------------------------------------------------------------
export LOG_FORMAT=pretty RUST_LOG="${RUST_LOG:-info}"
export ZENDESK_ACCOUNT_ID=42
export ZENDESK_WEBHOOK_SIGNING_SECRET="local-dev-signing-secret"
pick() { if port_open "$1"; then free_port; else echo "$1"; fi; }
INGRESS_PORT=$(pick 8080)
export INGRESS_ADDR="127.0.0.1:$INGRESS_PORT"
"$BIN/ingress" >"$LOGS/ingress.log" 2>&1 &
PIDS+=($!)
wait_http "http://$INGRESS_ADDR/readyz" ingress
say "ingress ready on http://$INGRESS_ADDR"

# --- demo ----------------------------------------------------------------------
WEBHOOK="http://$INGRESS_ADDR/channels/zendesk/webhook"
say "posting a signed ticket.created event"
DEMO_ID="demo-$(date +%s)-$$"
sed "s/demo-ticket-created-1/$DEMO_ID/" deploy/samples/ticket-created.json >"$DEV/demo-event.json"
"$BIN/zengate" sign-event --url "$WEBHOOK" "$DEV/demo-event.json"
say "last events on ZENDESK_EVENTS (sequence, subject, Nats-Msg-Id):"
"$BIN/zengate" events last --count 3 | tee "$LOGS/demo-events.txt"
grep -q "zendesk.42.ticket.9007199254740993.created.*42:$DEMO_ID" "$LOGS/demo-events.txt"

cat <<INFO

  Webhook URL : $WEBHOOK
  Sign & send : target/debug/zengate sign-event --url $WEBHOOK deploy/samples/ticket-created.json
  Print curl  : target/debug/zengate sign-event --curl --url $WEBHOOK deploy/samples/ticket-created.json
  Events      : target/debug/zengate events last
  Logs        : $LOGS/
INFO

if [ -n "$CHECK" ]; then
  say "check passed"
  exit 0
fi
say "running; Ctrl-C stops everything"
wait -n "${PIDS[@]}"
