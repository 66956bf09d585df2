"""The MLflow-compatible API of `keel server` against a stock `mlflow server`, same client.

Run from the repository root::

    .venv/bin/python bench/bench_mlflow.py [--runs 10000] [--batches 100] [--only ingest|search]
        [--no-record]

Two servers on 127.0.0.1, each one process with one worker, each on SQLite in a temporary
directory, started by this script one after the other (never beside each other's measurement)
and measured once their processes have settled (the stock server's job consumers import for
~20 s after it answers ``/health``):

- **keel**: the app of ``keel server`` (WAL SQLite, bearer token, authorization, request audit
  and the hash-chained audit log all on);
- **mlflow**: ``mlflow server --backend-store-uri sqlite:///… --workers 1``, full ``mlflow``
  installed on first use into ``.cache/mlflow-server-venv`` (gitignored; about two minutes).

This process is the client: the official MLflow client (``mlflow-skinny`` 3.x of the dev
extras), the same for both servers.

1. ``MlflowClient.log_batch`` of 100,000 metrics in batches of 1,000 into one run;
2. ``MlflowClient.search_runs`` over 10,000 runs (1 param, 1 tag, 2 metrics each) of one
   experiment, filtered (``params.group = 'a'``: every run) and ordered by a metric, paged
   1,000 at a time to the end; median of 3 passes. The runs are put into each store directly
   beforehand (Keel's RunService; MLflow's SqlAlchemyStore), as the client would take minutes;
   both populated stores are cached under ``.cache/bench-mlflow/`` and copied for each run.

Floor: the same client making the same ``log_batch`` calls against a null HTTP server (a
child process answering ``{}`` at once, keep-alive, ``Content-Length``): the client's own cost
per call (entities → protobuf → JSON, ``requests``, the socket), which is part of both servers'
figures. Printed beside them, with each server's share above it. Target (issue 8): keel at
least 5x faster than mlflow on both. The figures and ratios are printed and appended to
bench/RESULTS.md (``--no-record`` to skip).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".cache" / "mlflow-server-venv"
STORES = ROOT / ".cache" / "bench-mlflow"

_POPULATE_MLFLOW = """
import random, sys, time
from mlflow.entities import Metric, Param, RunTag
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
store = SqlAlchemyStore(sys.argv[1], sys.argv[2])
exp = store.create_experiment("search")
rng = random.Random(7)
for i in range(int(sys.argv[3])):
    run = store.create_run(exp, "bench", int(time.time() * 1000), [], f"r{i}")
    now = int(time.time() * 1000)
    store.log_batch(run.info.run_id, [Metric("score", rng.random(), now, 0),
                    Metric("loss", rng.random(), now, 0)], [Param("group", "a")],
                    [RunTag("kind", "bench")])
print(exp)
"""


def ensure_mlflow_venv() -> Path:
    """The ``mlflow`` executable of the cached server venv (built on first use)."""
    exe = VENV / "bin" / "mlflow"
    if exe.exists():
        return exe
    print("installing mlflow into .cache/mlflow-server-venv (first run only) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "mlflow>=3"], check=True
    )
    return exe


def serve_keel(home: Path, port_file: Path) -> None:
    """Child process: serve `keel server`'s app until killed."""
    from keel.server import build_services, create_app
    from keel.server._serve import listen, uvicorn_server
    from keel.settings import Settings

    settings = Settings(home=home)
    app = create_app(settings, services=build_services(settings))
    sock = listen("127.0.0.1", 0)
    port_file.write_text(str(sock.getsockname()[1]))
    uvicorn_server(app, settings, log_level="warning").run(sockets=[sock])


_NULL_REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def serve_null(port_file: Path) -> None:
    """Child process: an HTTP/1.1 server that reads each request and answers ``{}`` at once."""
    import asyncio
    import socket

    class NullProtocol(asyncio.Protocol):
        def __init__(self) -> None:
            self.buffer = b""
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            assert self.transport is not None
            self.buffer += data
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                length = 0
                for line in self.buffer[:end].split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                    elif name.strip().lower() == b"transfer-encoding":
                        self.transport.write(
                            b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\n\r\n"
                        )
                        self.transport.close()
                        return
                if len(self.buffer) < end + 4 + length:
                    return
                self.buffer = self.buffer[end + 4 + length :]
                self.transport.write(_NULL_REPLY)

    async def run() -> None:
        sock = socket.socket()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        server = await asyncio.get_running_loop().create_server(NullProtocol, sock=sock)
        port_file.write_text(str(sock.getsockname()[1]))
        await server.serve_forever()

    asyncio.run(run())


def _prepare_keel(home: Path, runs: int) -> tuple[str, str]:
    """A store with ``runs`` runs in experiment 'search'; returns (experiment id, token)."""
    import random

    from keel.governance import OPERATOR_ROLE
    from keel.server import build_services
    from keel.settings import Settings
    from keel.tracking import Metric
    from keel.workspace import connect

    settings = Settings(home=home)
    rng = random.Random(7)
    with connect(settings=settings, principal="user:owner") as ws:
        exp = ws.experiments.create("search").id
        for i in range(runs):
            run = ws.runs.start(
                experiment="search",
                name=f"r{i}",
                params={"group": "a"},
                tags={"kind": "bench"},
                capture_env=False,
            )
            run.log_batch(metrics=[Metric("score", rng.random()), Metric("loss", rng.random())])
    services = build_services(settings, request_audit=False)
    owner = services.projects.context("user:owner", "default")
    operator = replace(owner, principal="user:operator", roles=frozenset({OPERATOR_ROLE}))
    token = services.identity.create_admin(operator, "admin").secret
    services.governor.db.dispose()
    return exp, token


def _stores(tmp: Path, runs: int) -> tuple[str, str, str]:
    """Copies of the populated stores: (keel experiment, keel token, mlflow db URL)."""
    import shutil

    STORES.mkdir(parents=True, exist_ok=True)
    keel_home, mlflow_db = STORES / f"keel-{runs}", STORES / f"mlflow-{runs}.db"
    if not (keel_home / "ready").exists():
        print(f"populating {runs:,} runs in Keel (cached for later runs) ...", flush=True)
        shutil.rmtree(keel_home, ignore_errors=True)
        exp, token = _prepare_keel(keel_home, runs)
        (keel_home / "ready").write_text(f"{exp}\n{token}\n")
    if not (STORES / f"mlflow-{runs}.exp").exists():
        print(f"populating {runs:,} runs in MLflow (cached for later runs) ...", flush=True)
        mlflow_db.unlink(missing_ok=True)
        populated = subprocess.run(
            [
                str(VENV / "bin" / "python"),
                "-c",
                _POPULATE_MLFLOW,
                f"sqlite:///{mlflow_db}",
                str(tmp / "art"),
                str(runs),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        (STORES / f"mlflow-{runs}.exp").write_text(populated.stdout.strip().splitlines()[-1])
    shutil.copytree(keel_home, tmp / "keel")
    shutil.copy(mlflow_db, tmp / "mlflow.db")
    exp, token = (keel_home / "ready").read_text().split()
    return exp, token, f"sqlite:///{tmp / 'mlflow.db'}"


def _wait(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the {what} server exited")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the {what} server did not start")


def _group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of process group ``pgid``."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 of stat: the process group
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _settle(pgid: int, what: str, *, quiet: float = 0.05, limit: float = 120.0) -> None:
    """Wait until the server's processes use under ``quiet`` of a core over one second."""
    deadline = time.monotonic() + limit
    before = _group_cpu(pgid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = _group_cpu(pgid)
        if now - before < quiet:
            return
        before = now
    print(f"warning: the {what} server's processes never settled; measuring anyway", flush=True)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a server and every process it started (the stock server's job consumers)."""
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # stragglers of the group


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _payloads(batches: int) -> list[list[Any]]:
    """The metrics of every call, built before the clock starts.

    They are then frozen out of the garbage collector: 100,000 live entities would make each
    full collection in the client walk them all (~120-200 ms, twice a run), a cost of building
    the workload up front that a training loop, which drops each batch once logged, never
    pays. It is taken out of all three figures alike.
    """
    import gc

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    payloads = [
        [Metric(f"m{j % 10}", float(j), now + j, b * 100 + j // 10) for j in range(1000)]
        for b in range(batches)
    ]
    gc.collect()
    gc.freeze()
    return payloads


def _log_batches(url: str, batches: int) -> float:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url)
    exp = client.create_experiment(f"ingest-{time.time_ns()}")
    run = client.create_run(exp).info.run_id
    payloads = _payloads(batches)
    started = time.perf_counter()
    for metrics in payloads:
        client.log_batch(run, metrics=metrics)
    elapsed = time.perf_counter() - started
    assert len(client.get_metric_history(run, "m0")) == batches * 100
    return elapsed


def _null_floor(batches: int, tmp: Path) -> float:
    """The same client's same ``log_batch`` calls against a server answering ``{}`` at once."""
    from mlflow import MlflowClient

    port_file = tmp / "null.port"
    null = subprocess.Popen([sys.executable, __file__, "--serve-null", str(port_file)])
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text():
            if null.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the null server did not start")
            time.sleep(0.05)
        client = MlflowClient(tracking_uri=f"http://127.0.0.1:{port_file.read_text()}")
        run = "0" * 32  # the null server checks nothing
        payloads = _payloads(batches)
        client.log_batch(run, metrics=payloads[0])  # connect before the clock starts
        started = time.perf_counter()
        for metrics in payloads:
            client.log_batch(run, metrics=metrics)
        return time.perf_counter() - started
    finally:
        null.terminate()
        null.wait(timeout=30)


def _search(url: str, experiment: str, expected: int) -> float:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        token, seen = None, 0
        while True:
            page = client.search_runs(
                [experiment],
                "params.group = 'a'",
                order_by=["metrics.score DESC"],
                max_results=1000,
                page_token=token,
            )
            seen += len(page)
            token = page.token
            if not token:
                break
        times.append(time.perf_counter() - started)
        assert seen == expected, f"{url} returned {seen} runs, expected {expected}"
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--only", choices=["ingest", "search"], help="Run one workload only.")
    parser.add_argument("--serve-keel", nargs=2, type=Path, metavar=("HOME", "PORT_FILE"))
    parser.add_argument("--serve-null", type=Path, metavar="PORT_FILE")
    args = parser.parse_args()
    if args.batches < 1 or args.runs < 1:
        parser.error("--batches and --runs must be at least 1")
    if args.serve_keel:
        serve_keel(*args.serve_keel)
        return 0
    if args.serve_null:
        serve_null(args.serve_null)
        return 0
    mlflow_exe = ensure_mlflow_venv()
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        runs = 0 if args.only == "ingest" else args.runs
        keel_exp, token, db = _stores(tmp, runs)
        mlflow_exp = (STORES / f"mlflow-{runs}.exp").read_text()
        os.environ["MLFLOW_TRACKING_TOKEN"] = token  # the stock server ignores it
        port_file = tmp / "keel.port"
        port = _free_port()
        commands = {
            "keel": [sys.executable, __file__, "--serve-keel", str(tmp / "keel"), str(port_file)],
            "mlflow": [
                str(mlflow_exe),
                "server",
                "--backend-store-uri",
                db,
                "--artifacts-destination",
                str(tmp / "art"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
        }
        exps = {"keel": keel_exp, "mlflow": mlflow_exp}
        result: dict[str, dict[str, float]] = {}
        # One server at a time: the stock server starts several job-consumer processes that
        # import for ~20 s after /health answers; neither server may run beside the other's
        # measurement, and each is measured only once its processes have settled.
        for name, command in commands.items():
            server = subprocess.Popen(
                command,
                stdout=subprocess.DEVNULL if name == "mlflow" else None,
                stderr=subprocess.DEVNULL if name == "mlflow" else None,
                start_new_session=True,  # its children share its process group
            )
            try:
                if name == "keel":
                    while not port_file.exists() or not port_file.read_text():
                        if server.poll() is not None:
                            raise SystemExit("the keel server exited")
                        time.sleep(0.05)
                    url = f"http://127.0.0.1:{port_file.read_text()}"
                else:
                    url = f"http://127.0.0.1:{port}"
                _wait(url, server, name)
                _settle(server.pid, name)
                result[name] = {}
                if args.only != "search":
                    print(f"{name}: log_batch ...", flush=True)
                    result[name]["ingest"] = _log_batches(url, args.batches)
                if args.only != "ingest":
                    print(f"{name}: search_runs ...", flush=True)
                    result[name]["search"] = _search(url, exps[name], args.runs)
                print(f"{name}: {result[name]}", flush=True)
            finally:
                _stop_group(server)
        floor = _null_floor(args.batches, tmp) if "ingest" in result["keel"] else 0.0
    metrics = args.batches * 1000
    lines = [
        "| workload | keel | mlflow server | keel faster by | target ≥ 5x |",
        "|---|---|---|---|---|",
    ]
    for key, label in (
        ("ingest", f"log_batch {metrics:,} metrics (batches of 1,000)"),
        ("search", f"search_runs over {args.runs:,} runs (1,000 per page)"),
    ):
        if key not in result["keel"]:
            continue
        k, m = result["keel"][key], result["mlflow"][key]
        ratio = m / k
        rate = f" ({metrics / k:,.0f}/s vs {metrics / m:,.0f}/s)" if key == "ingest" else ""
        lines.append(
            f"| {label}{rate} | {k:.2f} s | {m:.2f} s | {ratio:.1f}x | "
            f"{'met' if ratio >= 5 else '**not met**'} |"
        )
    table = "\n".join(lines)
    if "ingest" in result["keel"]:
        k, m = result["keel"]["ingest"], result["mlflow"]["ingest"]
        per = 1000 / args.batches
        table += (
            f"\n\nFloor: the same client against a null server answering `{{}}` at once takes "
            f"{floor:.2f} s ({floor * per:.1f} ms per call) of each log_batch figure; above it, "
            f"keel {k - floor:.2f} s ({(k - floor) * per:.1f} ms per call), mlflow "
            f"{m - floor:.2f} s ({(m - floor) * per:.1f} ms per call). Best possible ratio "
            f"with a free keel server: {m / floor:.1f}x."
        )
    print(table)
    if not args.no_record:
        load = os.getloadavg()[0]
        taken = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        with (ROOT / "bench" / "RESULTS.md").open("a") as out:
            out.write(
                f"\n## MLflow-compatible API vs stock `mlflow server` (issue 8, "
                f"`bench/bench_mlflow.py`)\n\nTaken {taken}, "
                f"load average {load:.1f}, same mlflow-skinny client, one worker each, SQLite "
                f"both, `.venv/bin/python bench/bench_mlflow.py`:\n\n{table}\n"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
