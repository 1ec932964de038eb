#!/usr/bin/env bash
# Brings zengate up locally on embedded defaults and shows it working.
#
#   scripts/up.sh                 run until Ctrl-C (one process per service)
#   scripts/up.sh --check         bring up, verify the demo flow, stop (used by the test suite)
#   scripts/up.sh --one-process   the same stack hosted in a single process (zengate-stack)
#
# Reuses a NATS (JetStream, >= 2.10) on 127.0.0.1:4222 and a Redis on 127.0.0.1:6379
# when they already listen; otherwise starts private ones with data under .dev/data.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CHECK=""
ONE=""
for arg in "$@"; do
  case "$arg" in
    --check) CHECK=1 ;;
    --one-process) ONE=1 ;;
    *) echo "usage: scripts/up.sh [--check] [--one-process]" >&2; exit 2 ;;
  esac
done

scripts/setup.sh
export PATH="$ROOT/.dev/bin:$HOME/.cargo/bin:$PATH"
DEV="$ROOT/.dev"
LOGS="$DEV/logs"
mkdir -p "$LOGS" "$DEV/data"

say() { printf '\033[1m[zengate]\033[0m %s\n' "$*"; }
PIDS=()        # zengate services
INFRA=()       # NATS / Redis started here
stop_all() { # pids... : SIGTERM, wait up to 25 s, then SIGKILL
  [ "$#" -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  for _ in $(seq 1 250); do
    kill -0 "$@" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$@" 2>/dev/null || true
}
cleanup() {
  trap - INT TERM EXIT
  say "stopping"
  # services first (they drain against NATS/Redis), then the infrastructure
  stop_all "${PIDS[@]}"
  stop_all "${INFRA[@]}"
  wait 2>/dev/null || true
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
cargo build --quiet -p ingress -p auth -p approval -p agent-worker -p zendesk-sim -p zengate-cli -p zengate-stack
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
  INFRA+=($!)
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
  INFRA+=($!)
  for _ in $(seq 1 100); do port_open "$REDIS_PORT" && break; sleep 0.1; done
  say "started Redis on 127.0.0.1:$REDIS_PORT (data in .dev/data/redis)"
fi
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT"

# --- services ----------------------------------------------------------------
export LOG_FORMAT=pretty RUST_LOG="${RUST_LOG:-info}"
# The image's allocator settings (Dockerfile): arenas committed as used.
export MIMALLOC_ARENA_EAGER_COMMIT=0
export ZENDESK_ACCOUNT_ID=42
export ZENDESK_WEBHOOK_SIGNING_SECRET="local-dev-signing-secret"
export ZENDESK_WEBHOOK_ID=01SIMWEBHOOK
export ZENDESK_SUBDOMAIN=zengate-local ZENDESK_EMAIL=agent@zengate.local ZENDESK_API_TOKEN=local-dev-api-token
export ZENDESK_JWT_SHARED_SECRET="local-dev-jwt-shared-secret"
# A fresh random approver token per run (approval refuses tokens shorter than
# 32 characters and published placeholders); printed at the end.
APPROVER_TOKEN="${APPROVER_TOKEN:-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')}"
export APPROVER_TOKENS="demo:$APPROVER_TOKEN"
export APPROVAL_RESUME_SECRET="local-dev-resume-secret"
pick() { if port_open "$1"; then free_port; else echo "$1"; fi; }
export INGRESS_ADDR="127.0.0.1:$(pick 8080)"
export AUTH_ADDR="127.0.0.1:$(pick 8081)"
export APPROVAL_ADDR="127.0.0.1:$(pick 8082)"
export APPROVAL_PUBLIC_URL="http://$APPROVAL_ADDR"
export AUTH_ALLOWED_ORIGINS="http://$AUTH_ADDR"
WORKER1="127.0.0.1:$(pick 8083)"
WORKER2="127.0.0.1:$(pick 8084)"
export ZENDESK_SIM_ADDR="127.0.0.1:$(pick 8090)"
export ZENDESK_API_BASE_URL="http://$ZENDESK_SIM_ADDR"
export ZENDESK_SIM_WEBHOOK_URL="http://$INGRESS_ADDR/channels/zendesk/webhook"
export WORKER_ADDR="$WORKER1"
# Signed deliveries older than this are refused by the ingress (replay window).
export ZENDESK_SIGNATURE_MAX_AGE=5m
# Release-signing key shared by approval and the agent workers: fresh per run.
ZENGATE_RELEASE_SIGNING_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
export ZENGATE_RELEASE_SIGNING_SECRET

if [ -n "$ONE" ]; then
  say "starting the whole stack in one process"
  args=(); [ -n "$CHECK" ] && args+=(--check)
  "$BIN/zengate-stack" "${args[@]}"
  [ -n "$CHECK" ] && say "check passed (one process)"
  exit 0
fi

start() { # name command...
  local name=$1; shift
  "$@" >"$LOGS/$name.log" 2>&1 &
  PIDS+=($!)
}
start ingress "$BIN/ingress"
start auth "$BIN/auth"
start approval "$BIN/approval"
start zendesk-sim "$BIN/zendesk-sim"
wait_http "http://$INGRESS_ADDR/readyz" ingress
WORKER_ADDR="$WORKER1" start agent-worker-1 "$BIN/agent-worker"
WORKER_ADDR="$WORKER2" start agent-worker-2 "$BIN/agent-worker"
for hp in "$AUTH_ADDR auth" "$APPROVAL_ADDR approval" "$WORKER1 agent-worker-1" "$WORKER2 agent-worker-2"; do
  set -- $hp; wait_http "http://$1/readyz" "$2"
done
wait_http "http://$ZENDESK_SIM_ADDR/__sim/requests" zendesk-sim
say "all services ready"

# --- demo ----------------------------------------------------------------------
WEBHOOK="http://$INGRESS_ADDR/channels/zendesk/webhook"
say "seeding a demo visitor for the auth service"
USER_TOKEN=$("$BIN/zengate" users add --name "Demo Visitor" --email visitor@example.com | tail -n1)
say "an end user opens a ticket in the Zendesk simulator (a signed ticket.created follows)"
TICKET=$(curl -fsS -X POST "http://$ZENDESK_SIM_ADDR/__sim/tickets" -H 'content-type: application/json' \
  -d '{"subject":"My printer is on fire","body":"Smoke everywhere, please help!","requester_name":"Dana Customer","requester_email":"dana@example.com"}')
TICKET_ID=$(echo "$TICKET" | sed -n 's/.*"id":"\{0,1\}\([0-9]*\).*/\1/p' | head -1)
say "ticket $TICKET_ID created; waiting for the worker's proposal to reach the approval console"
PENDING=""
for _ in $(seq 1 300); do
  PENDING=$(curl -fsS -H "Authorization: Bearer $APPROVER_TOKEN" "http://$APPROVAL_ADDR/v1/approvals?state=pending" 2>/dev/null || true)
  echo "$PENDING" | grep -q "$TICKET_ID" && break
  PENDING=""; sleep 0.2
done
[ -n "$PENDING" ] || { say "no pending approval appeared; see $LOGS"; exit 1; }
say "pending approval for ticket $TICKET_ID is waiting in the console"
say "posting a signed sample event straight to the ingress with zengate sign-event"
DEMO_ID="demo-$(date +%s)-$$"
sed "s/demo-ticket-created-1/$DEMO_ID/" deploy/samples/ticket-created.json >"$DEV/demo-event.json"
"$BIN/zengate" sign-event --url "$WEBHOOK" "$DEV/demo-event.json"
say "last events on ZENDESK_EVENTS (sequence, subject, Nats-Msg-Id):"
"$BIN/zengate" events last --count 3 | tee "$LOGS/demo-events.txt"
grep -q "zendesk.42.ticket.9007199254740993.created.*42:$DEMO_ID" "$LOGS/demo-events.txt"

cat <<INFO

  Console     : http://$APPROVAL_ADDR/     approver token: $APPROVER_TOKEN
  Pending     : curl -s -H 'Authorization: Bearer $APPROVER_TOKEN' 'http://$APPROVAL_ADDR/v1/approvals?state=pending'
  Chat JWT    : curl -s -H 'Authorization: Bearer $USER_TOKEN' http://$AUTH_ADDR/webhook/chat-token
  Visitor JWT : curl -s -H 'Authorization: Bearer $USER_TOKEN' 'http://$AUTH_ADDR/webhook/chat-token?audience=zengate'   (for POST http://$APPROVAL_ADDR/v1/ticket-requests)
  Widget JWT  : curl -s -X POST 'http://$AUTH_ADDR/webhook/zendesk-jwt?user_token=$USER_TOKEN'
  Demo page   : http://$AUTH_ADDR/demo
  Webhook     : target/debug/zengate sign-event --secret $ZENDESK_WEBHOOK_SIGNING_SECRET --account $ZENDESK_ACCOUNT_ID --webhook-id $ZENDESK_WEBHOOK_ID --url $WEBHOOK deploy/samples/ticket-created.json
  Simulator   : http://$ZENDESK_SIM_ADDR  (POST /__sim/tickets, /__sim/tickets/{id}/comments)
  Logs        : $LOGS/
INFO

if [ -n "$CHECK" ]; then
  say "check passed"
  exit 0
fi
say "running; Ctrl-C stops everything"
wait -n "${PIDS[@]}" "${INFRA[@]}"
