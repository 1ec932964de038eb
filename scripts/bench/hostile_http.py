#!/usr/bin/env python3
"""Hostile HTTP clients against the service binaries (a measurement, not a test).

For each binary directory given, starts a private nats-server and
redis-server on free loopback ports, then each service in turn, and reports:

- slowloris: 300 connections each sending a request line and one header,
  never finishing; how many the service still holds open after 7 s and 45 s;
- big headers (auth only): 200 connections each sending ~380 KB of headers
  without ending the block; the service's RSS before, at its peak, and 3 s
  after the burst, and how many connections the service closed itself.

Usage: scripts/bench/hostile_http.py BIN_DIR [BIN_DIR...]
(e.g. target/debug). Needs nats-server and redis-server on PATH.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

SERVICES = {
    "ingress": "INGRESS_ADDR",
    "auth": "AUTH_ADDR",
    "approval": "APPROVAL_ADDR",
    "agent-worker": "WORKER_ADDR",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, deadline=30.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not up")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_count(conns):
    """Connections the server has not closed (a read would block)."""
    n = 0
    for c in conns:
        c.setblocking(False)
        try:
            while c.recv(65536):
                pass  # an answer (431, 408); read on to see whether it closed
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n


def connect_many(port, count, payload):
    conns = []
    for _ in range(count):
        c = socket.create_connection(("127.0.0.1", port))
        try:
            c.sendall(payload)
        except OSError:
            pass
        conns.append(c)
    return conns


def slowloris(port):
    conns = connect_many(port, 300, b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
    time.sleep(7)
    after7 = open_count(conns)
    time.sleep(38)
    after45 = open_count(conns)
    for c in conns:
        c.close()
    return after7, after45


def big_headers(port, pid):
    idle = rss_kib(pid)
    header = b"X-Big-%d: " + b"a" * 3990 + b"\r\n"
    block = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
        header.replace(b"%d", str(i).encode()) for i in range(95)
    )
    conns = []
    peak = idle
    for _ in range(200):
        c = socket.create_connection(("127.0.0.1", port))
        c.settimeout(2)
        try:
            c.sendall(block)
        except OSError:
            pass
        conns.append(c)
        peak = max(peak, rss_kib(pid))
    for _ in range(30):
        peak = max(peak, rss_kib(pid))
        time.sleep(0.1)
    closed = 200 - open_count(conns)
    after = rss_kib(pid)
    for c in conns:
        c.close()
    return idle, peak, after, closed, len(block)


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    work = tempfile.mkdtemp(prefix="zg-hostile-")
    nats_port, redis_port = free_port(), free_port()
    nats = subprocess.Popen(
        ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(nats_port), "-sd", work],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", work],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)
    base_env = {
        "PATH": os.environ.get("PATH", ""),
        "NATS_URL": f"nats://127.0.0.1:{nats_port}",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}",
        "ZENDESK_ACCOUNT_ID": "42",
        "ZENDESK_WEBHOOK_SIGNING_SECRET": "bench-signing-secret",
        "ZENDESK_SUBDOMAIN": "acme",
        "ZENDESK_EMAIL": "agent@acme.test",
        "ZENDESK_API_TOKEN": "api-token",
        "ZENDESK_API_BASE_URL": "http://127.0.0.1:9",
        "ZENDESK_JWT_SHARED_SECRET": "jwt-shared-secret-0123456789abcdef",
        "APPROVER_TOKENS": "erin:bench-approver-token-0123456789abcdef",
        "APPROVAL_RESUME_SECRET": "bench-resume-secret-0123456789",
        "ZENGATE_RELEASE_SIGNING_SECRET": "bench-release-signing-key-0123456789abcdef",
        "RUST_LOG": "error",
    }
    try:
        for bins in sys.argv[1:]:
            print(f"== {bins}")
            for svc, addr_var in SERVICES.items():
                port = free_port()
                env = dict(base_env, **{addr_var: f"127.0.0.1:{port}"})
                proc = subprocess.Popen([os.path.join(bins, svc)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    wait_http(f"http://127.0.0.1:{port}/healthz")
                    if svc == "auth":
                        idle, peak, after, closed, size = big_headers(port, proc.pid)
                        print(f"{svc}: 200 x {size // 1024} KiB headers: RSS idle {idle // 1024} MiB, "
                              f"peak {peak // 1024} MiB, after {after // 1024} MiB, "
                              f"closed by the service {closed}/200")
                    a7, a45 = slowloris(port)
                    print(f"{svc}: 300 half-sent requests: open after 7 s {a7}, after 45 s {a45}; "
                          f"RSS {rss_kib(proc.pid) // 1024} MiB")
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
    finally:
        nats.terminate()
        redis.terminate()
        nats.wait()
        redis.wait()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
