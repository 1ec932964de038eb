#!/usr/bin/env bash
# Offline validation of the deployment files:
# - docker-compose.yml against the Compose specification schema (shipped in the
#   docker-compose wheel on PyPI);
# - every Kubernetes overlay rendered with kustomize and validated against the
#   Kubernetes OpenAPI schemas shipped in the kubernetes-validate package, and
#   its custom resources (KEDA) against the CRD schemas shipped in the npm
#   package @kubernetes-models/keda (deploy/validate-crds);
# - the credential wiring (deploy/check-credentials.py): every service gets
#   only its own NATS user and the secrets it uses, NATS and Redis are not
#   published on the host, no credential sits in a ConfigMap, and only the
#   approval user may publish releases, decisions or approvals-bucket writes;
#   every variable compose reads is documented in .env.example, secrets there
#   only as refused REPLACE_ME_ placeholders;
# - deploy/nats/nats-server.conf, when present, with `nats-server -t`.
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=.dev
mkdir -p "$DEV/cache"
[ -x "$DEV/venv/bin/pip" ] || python3 -m venv "$DEV/venv"
PY="$DEV/venv/bin"
"$PY/pip" install -q --disable-pip-version-check "kubernetes-validate==1.37.0" "check-jsonschema==0.39.0"
if [ ! -f "$DEV/cache/compose_spec.json" ]; then
  "$PY/pip" download -q --disable-pip-version-check --no-deps "docker-compose==1.29.2" -d "$DEV/cache"
  "$PY/python" - "$DEV/cache" <<'PY'
import glob, sys, zipfile
d = sys.argv[1]
whl = glob.glob(f"{d}/docker_compose-1.29.2-*.whl")[0]
open(f"{d}/compose_spec.json", "wb").write(zipfile.ZipFile(whl).read("compose/config/compose_spec.json"))
PY
fi
echo "[validate] docker-compose.yml, docker-compose.debug.yml"
"$PY/check-jsonschema" --schemafile "$DEV/cache/compose_spec.json" docker-compose.yml docker-compose.debug.yml

if ! command -v kubectl >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO=sudo
  $SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kubernetes-client >/dev/null
fi
if ! command -v npm >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO=sudo
  $SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -d deploy/validate-crds/node_modules/@kubernetes-models/keda ]; then
  npm ci --prefix deploy/validate-crds --silent --no-audit --no-fund >/dev/null
fi
# The dev overlay's Secret is generated from a git-ignored file of random values.
[ -f deploy/k8s/overlays/dev/secrets.env ] || deploy/k8s/overlays/dev/generate-secrets.sh 2>/dev/null
rendered=()
for overlay in deploy/k8s/overlays/*/; do
  name=$(basename "$overlay")
  out="$DEV/cache/k8s-$name.yaml"
  kubectl kustomize "$overlay" >"$out" 2>/dev/null
  kinds=$(grep -c '^kind:' "$out")
  echo "[validate] k8s overlay $name: $kinds objects"
  # Custom resources (KEDA) have no schema in the Kubernetes set; they are
  # checked below. Everything else is strict.
  "$PY/kubernetes-validate" --strict --quiet --no-warn -k 1.30 "$out"
  rendered+=("$out")
done
echo "[validate] custom resources"
node deploy/validate-crds/validate.mjs "${rendered[@]}"
echo "[validate] credentials wiring"
"$PY/python" deploy/check-credentials.py docker-compose.yml .env.example deploy/k8s/nats-values.yaml deploy/k8s/redis-values.yaml "${rendered[@]}"
if [ -f deploy/nats/nats-server.conf ] && command -v nats-server >/dev/null 2>&1; then
  echo "[validate] deploy/nats/nats-server.conf"
  NATS_INGRESS_PASSWORD=x NATS_AUTH_PASSWORD=x NATS_APPROVAL_PASSWORD=x NATS_WORKER_PASSWORD=x NATS_OPS_PASSWORD=x \
    nats-server -t -c deploy/nats/nats-server.conf
fi
echo "[validate] deployment files valid"
