"""``keel admin|users|tokens|server``: real subprocesses, a real server, real exit codes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

KEEL = [sys.executable, "-m", "keel.cli"]


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "KEEL_HOME": str(home), "COLUMNS": "200"}
    env.pop("KEEL_DB_URL", None)
    return env


def keel(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*KEEL, *args], capture_output=True, text=True, env=_env(home), timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"keel {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_identity_commands_and_a_server_that_needs_an_admin(tmp_path: Path) -> None:
    home = tmp_path / "home"
    keel(home, "init", "--json")
    refused = keel(home, "server", "--port", "0", check=False)
    assert refused.returncode == 1
    assert "keel admin create NAME" in refused.stderr
    admin = json.loads(keel(home, "admin", "create", "alice", "--json").stdout)
    assert admin["principal"] == "user:alice" and admin["role"] == "admin"
    assert admin["token"].startswith("keel_")
    keel(home, "users", "create", "service:ci", "--json")
    users = json.loads(keel(home, "users", "list", "--json").stdout)
    assert {"user:alice", "service:ci"} <= {u["name"] for u in users}
    denied = keel(
        home, "tokens", "create", "--principal", "service:ci", "--role", "viewer", check=False
    )
    assert denied.returncode == 1 and "grant one first" in denied.stderr
    tokens = json.loads(keel(home, "tokens", "list", "--json").stdout)
    assert [t["principal"] for t in tokens] == ["user:alice"]
    assert "token" not in tokens[0]
    table = keel(home, "tokens", "list").stdout
    assert admin["id"] in table and admin["token"] not in table

    port = _free_port()
    server = subprocess.Popen(
        [*KEEL, "server", "--port", str(port)],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError(server.stderr.read() if server.stderr else "") from None
                time.sleep(0.1)
        auth = {"authorization": f"Bearer {admin['token']}"}
        assert httpx.get(f"{url}/api/v1/whoami", headers=auth).json()["principal"] == "user:alice"
        keel(home, "tokens", "revoke", admin["id"])
        assert httpx.get(f"{url}/api/v1/whoami", headers=auth).status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=30)
        for stream in (server.stdout, server.stderr):
            if stream is not None:
                stream.close()
    disabled = keel(home, "users", "disable", "user:alice", check=False)
    assert disabled.returncode == 1 and "last identity administrator" in disabled.stderr
