"""Checks the credential wiring of the deployment files (run by validate.sh).

usage: check-credentials.py docker-compose.yml .env.example nats-values.yaml redis-values.yaml rendered-overlay.yaml...

Zero trust on the bus only holds if every service connects as its own NATS
user and nothing else can reach or impersonate it; these are the properties a
later edit could silently break, so each one is asserted here.
"""

import re
import sys

import yaml

# service -> (NATS user, the env/Secret key holding that user's password)
SERVICES = {
    "ingress": ("ingress", "NATS_INGRESS_PASSWORD"),
    "auth": ("auth", "NATS_AUTH_PASSWORD"),
    "approval": ("approval", "NATS_APPROVAL_PASSWORD"),
    "agent-worker": ("agent-worker", "NATS_WORKER_PASSWORD"),
}
PASSWORD_KEYS = {key for _, key in SERVICES.values()} | {"NATS_OPS_PASSWORD"}
RELEASE_KEY = "ZENGATE_RELEASE_SIGNING_SECRET"
RELEASE_USERS = {"approval", "agent-worker"}
# Subjects only the approval user may publish to, and who else may not.
APPROVAL_ONLY = [
    "zengate.approval.released.42.7",
    "zengate.approval.decided.42.7",
    "$KV.approvals.some-id",
    "$JS.API.STREAM.UPDATE.ZENGATE",
    "$JS.API.STREAM.CREATE.KV_approvals",
]
CREDENTIAL_WORDS = ("PASSWORD", "SECRET", "TOKEN", "API_KEY", "NATS_URL", "REDIS_URL", "CREDS", "NKEY")

failures = []


def fail(msg):
    failures.append(msg)


def matches(pattern, subject):
    """NATS subject matching: `*` is one token, `>` one or more at the end."""
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok != "*" and tok != s[i]):
            return False
    return len(p) == len(s)


def check_compose(path):
    doc = yaml.safe_load(open(path))
    services = doc["services"]
    for infra in ("nats", "redis"):
        if services[infra].get("ports"):
            fail(f"{path}: {infra} publishes ports on the host (use docker-compose.debug.yml)")
    if "requirepass" not in str(services["redis"]["command"]) and ">$$REDIS_PASSWORD" not in str(
        services["redis"]["command"]
    ):
        fail(f"{path}: redis runs without a password")
    for name, svc in services.items():
        env = svc.get("environment") or {}
        if svc.get("env_file"):
            fail(f"{path}: {name} uses env_file (hands every secret to every container)")
        refs = " ".join(str(v) for v in env.values())
        if name in SERVICES:
            user, key = SERVICES[name]
            if env.get("NATS_USER") != user:
                fail(f"{path}: {name} has NATS_USER={env.get('NATS_USER')!r}, want {user!r}")
            if f"${{{key}:" not in str(env.get("NATS_PASSWORD", "")):
                fail(f"{path}: {name} NATS_PASSWORD is not ${key}")
            if "REDIS_PASSWORD" not in env:
                fail(f"{path}: {name} has no REDIS_PASSWORD")
            if (RELEASE_KEY in env) != (name in RELEASE_USERS):
                fail(f"{path}: {RELEASE_KEY} must be given to exactly {sorted(RELEASE_USERS)}")
        if name != "nats":
            for other in PASSWORD_KEYS - {SERVICES.get(name, (None, None))[1]}:
                if other in refs:
                    fail(f"{path}: {name} receives {other}, another user's NATS password")
    ingress = services["ingress"]["environment"]
    if str(ingress.get("ZENDESK_SIGNATURE_MAX_AGE")) != "5m":
        fail(f"{path}: ingress ZENDESK_SIGNATURE_MAX_AGE should be 5m")


def check_env_example(compose_path, path):
    """Every variable compose reads from .env is documented in .env.example;
    the required ones are set there, secrets only to refused placeholders."""
    text = open(compose_path).read().replace("$$", "")
    refs = set(re.findall(r"\$\{([A-Z0-9_]+)(:?[?-])?", text))
    example = open(path).read()
    set_vars = dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", example, re.M))
    for name, op in sorted(refs):
        if op == ":?" and name not in set_vars:
            fail(f"{path}: required {name} is not set")
        elif not re.search(rf"^#? ?{name}=", example, re.M):
            fail(f"{path}: {name} (read by {compose_path}) is not documented")
    for name, value in set_vars.items():
        secret = any(w in name for w in ("PASSWORD", "SECRET", "TOKEN"))
        if secret and "REPLACE_ME_" not in value:
            fail(f"{path}: {name} must be a REPLACE_ME_ placeholder, not a usable value")


def check_nats_values(path):
    users = yaml.safe_load(open(path))["config"]["merge"]["authorization"]["users"]
    by_name = {u["user"]: u for u in users}
    for user, key in list(SERVICES.values()) + [("ops", "NATS_OPS_PASSWORD")]:
        u = by_name.get(user)
        if u is None:
            fail(f"{path}: no NATS user {user!r}")
            continue
        if u.get("password") != f"<< ${key} >>":
            fail(f"{path}: user {user} password should be << ${key} >> (from the Secret)")
        perms = u.get("permissions", {})
        if perms.get("subscribe", {}).get("allow") != ["_INBOX.>"]:
            fail(f"{path}: user {user} may subscribe beyond _INBOX.>")
        allow = perms.get("publish", {}).get("allow", [])
        if not allow or any(p in (">", "$JS.API.>", "$JS.>") for p in allow):
            fail(f"{path}: user {user} has an unrestricted publish permission")
        for subject in APPROVAL_ONLY:
            if user != "approval" and any(matches(p, subject) for p in allow):
                fail(f"{path}: user {user} may publish {subject}")
        if user == "ingress":
            plain = [p for p in allow if not p.startswith("$JS.")]
            if plain != ["zendesk.>"]:
                fail(f"{path}: ingress may publish {plain}, want only zendesk.>")
        if any(matches(p, "$JS.API.STREAM.DELETE.ZENGATE") or matches(p, "$JS.API.STREAM.PURGE.ZENGATE") for p in allow):
            fail(f"{path}: user {user} may delete or purge streams")


def check_redis_values(path):
    auth = yaml.safe_load(open(path)).get("auth", {})
    if not auth.get("enabled") or not auth.get("existingSecret"):
        fail(f"{path}: Redis auth must be enabled with an existingSecret")


def check_rendered(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    for d in docs:
        if d["kind"] == "ConfigMap":
            for k in d.get("data", {}):
                if any(w in k for w in CREDENTIAL_WORDS) and not k.endswith("_FILE"):
                    fail(f"{path}: ConfigMap {d['metadata']['name']} holds {k}; it belongs in a Secret")
        if d["kind"] != "Deployment":
            continue
        name = d["metadata"]["name"]
        user, key = SERVICES[name]
        spec = d["spec"]["template"]["spec"]
        (container,) = [c for c in spec["containers"] if c["name"] == name]
        env = {e["name"]: e for e in container.get("env", [])}
        if env.get("NATS_USER", {}).get("value") != user:
            fail(f"{path}: {name} NATS_USER is not {user!r}")
        for var in ("NATS_URL", "REDIS_URL"):
            if "secretKeyRef" not in env.get(var, {}).get("valueFrom", {}):
                fail(f"{path}: {name} {var} does not come from a Secret")
        for var in ("NATS_PASSWORD_FILE", "REDIS_PASSWORD_FILE"):
            if var not in env:
                fail(f"{path}: {name} has no {var}")
        if (f"{RELEASE_KEY}_FILE" in env) != (name in RELEASE_USERS):
            fail(f"{path}: {RELEASE_KEY}_FILE must be set for exactly {sorted(RELEASE_USERS)}")
        if name == "ingress" and env.get("ZENDESK_SIGNATURE_MAX_AGE", {}).get("value") != "5m":
            fail(f"{path}: ingress ZENDESK_SIGNATURE_MAX_AGE should be 5m")
        for e in env.values():
            if any(w in e["name"] for w in ("PASSWORD", "SECRET", "TOKEN", "API_KEY")) and "value" in e and not e["name"].endswith("_FILE"):
                fail(f"{path}: {name} has {e['name']} as a literal value")
        for vol in spec.get("volumes", []):
            secret = vol.get("secret")
            if not secret:
                continue
            items = secret.get("items")
            if not items:
                fail(f"{path}: {name} mounts the whole Secret {secret['secretName']}; list its own keys")
                continue
            keys = {i["key"]: i["path"] for i in items}
            if keys.get(key) != "NATS_PASSWORD":
                fail(f"{path}: {name} does not mount {key} as NATS_PASSWORD")
            for other in PASSWORD_KEYS - {key}:
                if other in keys:
                    fail(f"{path}: {name} mounts {other}, another user's NATS password")
            if (RELEASE_KEY in keys) != (name in RELEASE_USERS):
                fail(f"{path}: {RELEASE_KEY} must be mounted for exactly {sorted(RELEASE_USERS)}")


def main(argv):
    compose, env_example, nats_values, redis_values, *rendered = argv
    check_compose(compose)
    check_env_example(compose, env_example)
    check_nats_values(nats_values)
    check_redis_values(redis_values)
    for path in rendered:
        check_rendered(path)
    for f in failures:
        print("FAIL", f)
    if failures:
        return 1
    print(f"ok -- {len(rendered)} overlay(s), compose and chart values")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
