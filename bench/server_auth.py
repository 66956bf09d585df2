"""What authentication, authorization and request audit add to one REST request.

Run from the repository root::

    .venv/bin/python bench/server_auth.py [--requests 2000]

Two server processes serve the same store (SQLite, WAL, a temporary KEEL_HOME), each one
uvicorn worker on 127.0.0.1 with TCP_NODELAY:

- **governed**: the app of ``keel server``: the bearer token is looked up (one read
  transaction: token, principal, project, role bindings), its hash compared in constant time,
  the Context built, the service authorizes, and the request is queued for the hash-chained
  audit log (written in batches by a background thread, with the tokens' last use).
- **floor**: the same app and route with authentication stubbed out (a fixed Context) and no
  request audit. The service's own permission check (a set lookup) remains in both.

This process is the client: sequential ``GET /api/v1/projects/default/runs/{id}`` over one
keep-alive connection per server, the two servers taking turns request by request. The figure is the
difference of the median latencies; the target (issue 7) is at most 1 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROUTE = "/api/v1/projects/default/runs/{run}"


def serve(home: Path, mode: str, port_file: Path) -> None:
    """Child process: serve the app (governed or floor) until killed."""
    from keel.governance import Context
    from keel.server import build_services, create_app
    from keel.server._deps import _caller
    from keel.server._serve import listen, uvicorn_server
    from keel.settings import Settings

    settings = Settings(home=home)
    services = build_services(settings, request_audit=mode == "governed")
    app = create_app(settings, services=services, request_audit=mode == "governed")
    if mode == "floor":
        fixed: Context = services.projects.context("user:admin", "default")

        def stub() -> Context:
            return fixed

        app.dependency_overrides[_caller] = stub
    sock = listen("127.0.0.1", 0)
    port_file.write_text(str(sock.getsockname()[1]))
    uvicorn_server(app, settings, log_level="warning").run(sockets=[sock])


def _prepare(home: Path) -> tuple[str, str]:
    from keel.governance import OPERATOR_ROLE
    from keel.server import build_services
    from keel.settings import Settings
    from keel.workspace import connect

    settings = Settings(home=home)
    with connect(settings=settings, principal="user:owner") as ws:
        with ws.runs.start(experiment="bench", params={"p": 1}, capture_env=False) as active:
            active.log_metrics({"auc": 0.9})
        run = active.id
    services = build_services(settings, request_audit=False)
    owner = services.projects.context("user:owner", "default")
    operator = replace(owner, principal="user:operator", roles=frozenset({OPERATOR_ROLE}))
    token = services.identity.create_admin(operator, "admin").secret
    services.governor.db.dispose()
    return run, token


def _start(home: Path, mode: str) -> tuple[subprocess.Popen[bytes], int]:
    port_file = home.parent / f"{mode}.port"
    process = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            mode,
            "--home",
            str(home),
            "--port-file",
            str(port_file),
        ]
    )
    deadline = time.monotonic() + 60
    while not port_file.exists() or not port_file.read_text():
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit(f"the {mode} server did not start")
        time.sleep(0.05)
    return process, int(port_file.read_text())


def _latencies(client: object, path: str, count: int) -> list[float]:
    import httpx

    assert isinstance(client, httpx.Client)
    out = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(path)
        out.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"GET {path} answered {response.status_code}: {response.text[:200]}")
    return out


def _in_process(run: str, token: str) -> dict[str, float]:
    """The same three steps without HTTP, timed one by one (medians of 2000, microseconds)."""
    del run
    from keel.governance import Permission
    from keel.server import build_services
    from keel.settings import Settings

    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        run_id, secret = _prepare(home)
        services = build_services(Settings(home=home))
        auditor = services.auditor
        assert auditor is not None
        scope = {"type": "http", "method": "GET", "path": ROUTE.format(run=run_id), "state": {}}
        found: dict[str, list[float]] = {"authenticate": [], "authorize": [], "audit": []}
        for _ in range(2000):
            t0 = time.perf_counter()
            ctx = services.identity.authenticate(secret, project="default", source="127.0.0.1")
            t1 = time.perf_counter()
            services.governor.check(ctx, Permission.RUN_READ, action="run.read", object_type="run")
            t2 = time.perf_counter()
            auditor.record(scope, 200, 0.001)
            t3 = time.perf_counter()
            found["authenticate"].append(t1 - t0)
            found["authorize"].append(t2 - t1)
            found["audit"].append(t3 - t2)
        auditor.close()
        services.governor.db.dispose()
    del token
    return {key: statistics.median(values) * 1e6 for key, values in found.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--serve", choices=["governed", "floor"])
    parser.add_argument("--home", type=Path)
    parser.add_argument("--port-file", type=Path)
    args = parser.parse_args()
    if args.serve:
        serve(args.home, args.serve, args.port_file)
        return 0

    import httpx

    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        run, token = _prepare(home)
        servers = {mode: _start(home, mode) for mode in ("governed", "floor")}
        try:
            clients = {
                mode: httpx.Client(
                    base_url=f"http://127.0.0.1:{port}",
                    headers={"authorization": f"Bearer {token}"},
                )
                for mode, (_process, port) in servers.items()
            }
            path = ROUTE.format(run=run)
            timings: dict[str, list[float]] = {"governed": [], "floor": []}
            for client in clients.values():
                _latencies(client, path, 200)  # warm up
            for _ in range(args.requests):  # alternate request by request: same load for both
                for mode, client in clients.items():
                    timings[mode] += _latencies(client, path, 1)
            for client in clients.values():
                client.close()
        finally:
            for process, _port in servers.values():
                process.terminate()
                process.wait(timeout=30)

    def q(values: list[float], fraction: float) -> float:
        return sorted(values)[int(fraction * (len(values) - 1))] * 1000

    governed, floor = timings["governed"], timings["floor"]
    direct = _in_process(run, token)
    print(f"requests per server: {len(governed)} over one keep-alive connection, pid {os.getpid()}")
    print(f"governed: p50 {q(governed, 0.5):.3f} ms  p90 {q(governed, 0.9):.3f} ms")
    print(f"floor:    p50 {q(floor, 0.5):.3f} ms  p90 {q(floor, 0.9):.3f} ms")
    added = statistics.median(governed) * 1000 - statistics.median(floor) * 1000
    print(
        f"in process, per request: authenticate {direct['authenticate']:.1f} us, "
        f"authorize {direct['authorize']:.2f} us, queue the audit event {direct['audit']:.1f} us"
    )
    verdict = "meets" if added <= 1.0 else "MISSES"
    print(
        f"added by authentication + authorization + audit: {added:.3f} ms p50 "
        f"({verdict} the 1 ms target)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
