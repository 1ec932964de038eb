#!/usr/bin/env bash
# Writes secrets.env (the dev overlay's Secret "zengate-secrets") and
# nats-users.env (the NATS chart's per-service passwords) with fresh random
# values, unless they already exist. Prints the commands that create the
# matching Secrets in the nats and redis namespaces.
set -euo pipefail
cd "$(dirname "$0")"
rand() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }
if [ ! -f secrets.env ]; then
  umask 077
  nats_ingress=$(rand) nats_auth=$(rand) nats_approval=$(rand) nats_worker=$(rand)
  cat >secrets.env <<ENV
NATS_URL=nats://nats.nats.svc.cluster.local:4222
REDIS_URL=redis://redis-master.redis.svc.cluster.local:6379
NATS_INGRESS_PASSWORD=$nats_ingress
NATS_AUTH_PASSWORD=$nats_auth
NATS_APPROVAL_PASSWORD=$nats_approval
NATS_WORKER_PASSWORD=$nats_worker
REDIS_PASSWORD=$(rand)
ZENGATE_RELEASE_SIGNING_SECRET=$(rand)
APPROVER_TOKENS=alice:$(rand)
APPROVAL_RESUME_SECRET=$(rand)
ZENDESK_WEBHOOK_SIGNING_SECRET=$(rand)
ZENDESK_JWT_SHARED_SECRET=$(rand)
ZENDESK_API_TOKEN=$(rand)
ENV
  cat >nats-users.env <<ENV
NATS_INGRESS_PASSWORD=$nats_ingress
NATS_AUTH_PASSWORD=$nats_auth
NATS_APPROVAL_PASSWORD=$nats_approval
NATS_WORKER_PASSWORD=$nats_worker
NATS_OPS_PASSWORD=$(rand)
ENV
  echo "wrote $(pwd)/secrets.env and nats-users.env" >&2
fi
cat >&2 <<MSG
Give NATS and Redis the same passwords (before installing their charts):
  kubectl create namespace nats;  kubectl -n nats create secret generic zengate-nats-users --from-env-file=$(pwd)/nats-users.env
  kubectl create namespace redis; kubectl -n redis create secret generic zengate-redis --from-literal=redis-password="\$(sed -n 's/^REDIS_PASSWORD=//p' $(pwd)/secrets.env)"
MSG
