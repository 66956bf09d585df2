"""Model serving: a 100-tree random forest on 20 features, ONNX, single-row V2 requests.

Targets (issue 5): over HTTP from a separate process with 8 concurrent keep-alive clients,
p50 ≤ 2 ms and ≥ 2,000 requests/s on this 2-core machine; canary and shadow routing cost
≤ 10% of direct throughput. Floor: the in-process predict call (and bare onnxruntime).

One server process serves three deployments of the same model side by side — ``direct``
(one version), ``canary`` (50/50 between two versions) and ``shadow`` (every request also
copied to the candidate) — with prediction logging on. The client is a separate process with
8 raw asyncio keep-alive connections (a light client: both share the 2 cores).

Variants run interleaved (direct, canary, shadow, repeated ``--rounds`` times after one warm-up
round); the table shows the median of the rounds.

Run: .venv/bin/python bench/serving.py [--seconds 5] [--rounds 3]
"""

# ruff: noqa: N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

_SERVER = """
import sys
from keel.serving import ServeOptions, run_server
from keel.settings import Settings
from keel.workspace import connect
ws = connect(settings=Settings(home=sys.argv[1]), principal="user:bench")
options = ServeOptions(deployments=["direct", "canary", "shadow"], analysis=None)
run_server(ws.deployments.server(options), port=int(sys.argv[2]))
"""


NAMES = ("direct", "canary", "shadow")


def _client(port: int, name: str, seconds: float, clients: int) -> dict[str, float]:
    """Run in a separate process: ``clients`` keep-alive connections for ``seconds``."""
    row = np.random.default_rng(0).normal(size=(1, 20)).astype(np.float32)
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 20],
                    "datatype": "FP32",
                    "data": row.ravel().tolist(),
                }
            ]
        }
    ).encode()
    request = (
        f"POST /v2/models/{name}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors = 0

    async def worker(stop: float) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while time.perf_counter() < stop:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
        writer.close()

    async def main() -> float:
        await asyncio.gather(*(worker(time.perf_counter() + 0.5) for _ in range(clients)))
        latencies.clear()
        begin = time.perf_counter()
        await asyncio.gather(*(worker(begin + seconds) for _ in range(clients)))
        return time.perf_counter() - begin

    elapsed = asyncio.run(main())
    ordered = sorted(latencies)
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p95_ms": ordered[int(len(ordered) * 0.95)] * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99)] * 1000,
        "errors": errors,
    }


def _setup(home: Path) -> tuple[float, float]:
    from sklearn.ensemble import RandomForestClassifier

    from keel.settings import Settings
    from keel.workspace import connect

    ws = connect(settings=Settings(home=home), principal="user:bench")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 20))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(np.int64)
    for seed in (0, 1):
        model = RandomForestClassifier(n_estimators=100, random_state=seed).fit(X, y)
        ws.models.log_model(model, name="forest", sample=X[:100])
    for name, strategy in (("direct", None), ("canary", "canary"), ("shadow", "shadow")):
        ws.deployments.deploy("forest:1", environment="production", name=name)
        if strategy:
            ws.deployments.deploy(
                "forest:2",
                environment="production",
                name=name,
                strategy=strategy,
                steps="50,100",
            )
    # the floor: the in-process predict call of the served (ONNX) version, one row
    served = ws.deployments.service.loader(ws.ctx).load("forest", 1)
    row = X[:1].astype(np.float32)
    session = served.predictor.model
    feed = {session.get_inputs()[0].name: row}
    floors = []
    for call in (lambda: served.predict(row), lambda: session.run(None, feed)):
        for _ in range(200):
            call()
        times = []
        for _ in range(2000):
            t = time.perf_counter()
            call()
            times.append(time.perf_counter() - t)
        floors.append(statistics.median(times) * 1e6)
    ws.close()
    return floors[0], floors[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--client-only", nargs=3, metavar=("PORT", "NAME", "SECONDS"))
    args = parser.parse_args()
    if args.client_only:
        port, name, seconds = args.client_only
        print(json.dumps(_client(int(port), name, float(seconds), args.clients)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        served_us, onnx_us = _setup(home)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-c", _SERVER, str(home), str(port)])
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the model server did not start")
                time.sleep(0.2)
            runs: dict[str, list[dict[str, float]]] = {n: [] for n in NAMES}
            for round_ in range(args.rounds + 1):  # round 0 warms the server up, not counted
                for name in NAMES:
                    seconds = 1.0 if round_ == 0 else args.seconds
                    out = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--clients",
                            str(args.clients),
                            "--client-only",
                            str(port),
                            name,
                            str(seconds),
                        ],
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    if out.returncode != 0:
                        raise SystemExit(f"client failed: {out.stderr[-2000:]}")
                    if round_:
                        runs[name].append(json.loads(out.stdout))
            results = {
                name: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
                for name, rs in runs.items()
            }
        finally:
            server.terminate()
            server.wait(30)
    print(
        f"floor: in-process ServedVersion.predict (1 row, ONNX): {served_us:.1f} µs; "
        f"bare onnxruntime run: {onnx_us:.1f} µs"
    )
    print(f"{'variant':8} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'vs direct':>9}")
    base = results["direct"]["rps"]
    for name, r in results.items():
        print(
            f"{name:8} {r['rps']:8.0f} {r['p50_ms']:7.2f} {r['p95_ms']:7.2f} "
            f"{r['p99_ms']:7.2f} {r['rps'] / base - 1:+9.1%}  errors={r['errors']:.0f}"
        )


if __name__ == "__main__":
    main()
