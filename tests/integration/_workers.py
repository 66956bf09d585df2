"""Worker processes for the fault and concurrency tests, and the parent's handle on them.

Run as a script (``python tests/integration/_workers.py <command> ...``), each command opens
its own Workspace on the given store and reports progress as lines on stdout, flushed at once,
so the parent can act at a known moment (kill it, or count what it did):

- ``log-forever``: log batches of metrics to one run forever; batch ``k`` has step ``k``.
  Prints ``begin k`` before and ``committed k`` after each ``log_batch`` call.
- ``move-alias``: move one alias round the versions of a model forever. Prints ``moved i v``
  after each ``set_alias`` returned.
- ``ingest``: print ``ready``, wait for ``go`` on stdin, start a run, log a fixed number of
  batches (reading the store now and then, as a real client does), end the run, and print
  ``done <run id>``.
- ``register``: print ``ready``, wait for ``go``, register one new version of a model, and
  print ``version <n>``.

The parent side is :class:`Worker`: it starts a command with ``sys.executable``, reads its
stdout in a thread so waiting for a line can time out, and kills it with SIGKILL.
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keel.workspace import Workspace

SCRIPT = Path(__file__).resolve()
PRINCIPAL = "user:tester"


# --- parent side ----------------------------------------------------------------------------


class Worker:
    """One worker subprocess: its stdout lines on a queue, its stderr kept for the end."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.args = list(args)
        self._proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), *args],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._errors: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_errors, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _read_errors(self) -> None:  # drained continuously, so a chatty worker never blocks
        assert self._proc.stderr is not None
        self._errors.extend(self._proc.stderr)

    def wait_for(self, prefix: str, *, timeout: float = 60.0) -> str:
        """The first next stdout line starting with ``prefix``; fails if the worker exits."""
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"worker {self.args[0]} printed no {prefix!r} line within {timeout} s"
                ) from None
            if line is None:
                self.wait(timeout=10)
                raise AssertionError(
                    f"worker {self.args[0]} exited ({self._proc.returncode}) before printing "
                    f"{prefix!r}; stderr:\n{self.stderr[-3000:]}"
                )
            self.lines.append(line)
            if line.startswith(prefix):
                return line

    def send(self, text: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(text + "\n")
        self._proc.stdin.flush()

    def kill(self) -> None:
        """SIGKILL: no handler, no atexit, no rollback by the process itself."""
        os.kill(self._proc.pid, signal.SIGKILL)
        self.wait(timeout=30)

    def wait(self, *, timeout: float) -> int:
        """Wait for the exit and drain stdout into ``lines``; the exit code."""
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=30)
            raise AssertionError(f"worker {self.args[0]} did not finish in {timeout} s") from None
        for reader in self._readers:
            reader.join(timeout=30)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return self._proc.returncode

    @property
    def stderr(self) -> str:
        return "".join(self._errors)

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    def close(self) -> None:
        if self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGKILL)
            self.wait(timeout=30)
        for stream in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --- worker side ----------------------------------------------------------------------------


def _connect(db_url: str, home: str) -> Workspace:
    import keel
    from keel.settings import Settings

    return keel.connect(settings=Settings(home=Path(home), db_url=db_url), principal=PRINCIPAL)


def _say(text: str) -> None:
    print(text, flush=True)


def log_forever(db_url: str, home: str, run_id: str, *, size: int, keys: int, start: int) -> None:
    from keel.tracking import Metric

    ws = _connect(db_url, home)
    per_key = size // keys
    step = start
    while True:
        base = step * size
        batch = [
            Metric(f"k{i % keys:04d}", float(base + i), step, 1_000_000 + base + i // keys)
            for i in range(keys * per_key)
        ]
        _say(f"begin {step}")
        ws.runs.log_batch(run_id, metrics=batch)
        _say(f"committed {step}")
        step += 1


def move_alias(db_url: str, home: str, model: str, *, alias: str, versions: int) -> None:
    ws = _connect(db_url, home)
    moves = 0
    while True:
        version = moves % versions + 1
        ws.models.set_alias(model, alias, version, reason=f"move {moves}")
        moves += 1
        _say(f"moved {moves} {version}")


def ingest(db_url: str, home: str, *, experiment: str, batches: int, size: int, keys: int) -> None:
    from keel.tracking import Metric

    ws = _connect(db_url, home)
    _say("ready")
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("expected 'go' on stdin")
    per_key = size // keys
    with ws.runs.start(
        experiment=experiment, capture_env=False, params={"pid": os.getpid()}
    ) as run:
        for step in range(batches):
            run.log_batch(
                [
                    Metric(f"k{i % keys:02d}", float(step * size + i), step, 1_000 + i // keys)
                    for i in range(keys * per_key)
                ]
            )
            if step % 10 == 9:  # readers interleave with the writers, as in real use
                ws.runs.metric_history(run.id, "k00")
                ws.runs.search("metrics.k01 > 0", max_results=10)
    _say(f"done {run.id}")
    ws.close()


def register(db_url: str, home: str, model: str) -> None:
    ws = _connect(db_url, home)
    _say("ready")
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("expected 'go' on stdin")
    version = ws.models.register(model, artifact=os.urandom(64), format="onnx")
    _say(f"version {version.version}")
    ws.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    forever = commands.add_parser("log-forever")
    forever.add_argument("db_url")
    forever.add_argument("home")
    forever.add_argument("run_id")
    forever.add_argument("--size", type=int, default=20_000)
    forever.add_argument("--keys", type=int, default=2_000)
    forever.add_argument("--start", type=int, default=0)

    alias = commands.add_parser("move-alias")
    alias.add_argument("db_url")
    alias.add_argument("home")
    alias.add_argument("model")
    alias.add_argument("--alias", default="champion")
    alias.add_argument("--versions", type=int, required=True)

    load = commands.add_parser("ingest")
    load.add_argument("db_url")
    load.add_argument("home")
    load.add_argument("--experiment", required=True)
    load.add_argument("--batches", type=int, default=50)
    load.add_argument("--size", type=int, default=200)
    load.add_argument("--keys", type=int, default=20)

    new = commands.add_parser("register")
    new.add_argument("db_url")
    new.add_argument("home")
    new.add_argument("model")

    args = parser.parse_args(argv)
    if args.command == "log-forever":
        log_forever(
            args.db_url, args.home, args.run_id, size=args.size, keys=args.keys, start=args.start
        )
    elif args.command == "move-alias":
        move_alias(args.db_url, args.home, args.model, alias=args.alias, versions=args.versions)
    elif args.command == "register":
        register(args.db_url, args.home, args.model)
    else:
        ingest(
            args.db_url,
            args.home,
            experiment=args.experiment,
            batches=args.batches,
            size=args.size,
            keys=args.keys,
        )


if __name__ == "__main__":
    main()
