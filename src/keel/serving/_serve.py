"""Assemble and run a model server: load deployments, keep them in step with the store, analyse."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from keel import clock
from keel.errors import ConflictError, KeelError, MissingDependencyError
from keel.serving._analysis import AnalysisConfig
from keel.serving._app import MAX_BODY, ServerApp
from keel.serving._host import Endpoint, ModelHost
from keel.serving._predlog import PredictionLogger
from keel.serving._service import DeploymentService, ServiceLogSink

if TYPE_CHECKING:
    from keel.governance import Context

__all__ = ["ServeOptions", "ServerHandle", "build_server", "run_server", "start_in_thread"]

_log = logging.getLogger("keel.serving")


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """What one server process serves and how.

    Attributes:
        models: model references served directly (``churn@champion``, ``churn:3``).
        deployments: deployment names served with their routing (and followed in the store).
        log_predictions: log every prediction of a deployment.
        analysis: thresholds of the automatic canary analysis (None: no automatic moves).
        poll_seconds: how often the server re-reads deployment state and analyses canaries.
    """

    models: Sequence[str] = ()
    deployments: Sequence[str] = ()
    log_predictions: bool = True
    analysis: AnalysisConfig | None = field(default_factory=AnalysisConfig)
    poll_seconds: float = 2.0
    max_batch: int = 64
    max_wait: float = 0.0005
    max_body: int = MAX_BODY


class _Controller:
    """Follows deployment state in the store and runs the automatic canary analysis."""

    def __init__(
        self, service: DeploymentService, ctx: Context, host: ModelHost, options: ServeOptions
    ) -> None:
        self._service, self._ctx, self._host, self._options = service, ctx, host, options
        self._task: asyncio.Task[None] | None = None
        self._labels_seen = clock.now()

    def sync(self, name: str) -> None:
        current = self._service.get(self._ctx, name)
        endpoint = self._host.endpoints.get(name)
        if endpoint is None or endpoint.revision != current.revision:
            self._host.apply_state(name, current.model, current.state, revision=current.revision)

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._options.poll_seconds)
            for name in self._options.deployments:
                try:
                    await self._step(loop, name)
                except KeelError as exc:  # keep serving what we serve; say why
                    _log.warning("deployment %s: %s", name, exc)
                except Exception:  # a broken candidate must not stop the controller
                    _log.exception("deployment %s: could not follow its state", name)

    async def _step(self, loop: asyncio.AbstractEventLoop, name: str) -> None:
        """Analyse, then follow the store; database calls run off the event loop."""
        endpoint = self._host.endpoints.get(name)
        config = self._options.analysis
        if endpoint is not None and endpoint.state.canary_weight > 0.0 and endpoint.awaiting:
            await loop.run_in_executor(None, self.pull_labels, endpoint)
        if endpoint is not None and config is not None and endpoint.state.canary_weight > 0.0:
            decision = self._host.analyse(name, config)
            if decision.action != "hold":
                apply = functools.partial(
                    self._service.apply_decision,
                    self._ctx,
                    name,
                    decision,
                    expected_revision=endpoint.revision,
                )
                with contextlib.suppress(ConflictError):  # moved on meanwhile: discard
                    await loop.run_in_executor(None, apply)
        current = await loop.run_in_executor(None, self._service.get, self._ctx, name)
        endpoint = self._host.endpoints.get(name)
        if endpoint is None or endpoint.revision != current.revision:
            # loading a version (a large model: seconds) would stall every request on the
            # loop: load off it, then switch on it (the switch and a shadow worker need it)
            loaded = await loop.run_in_executor(
                None, self._host.load_versions, name, current.model, current.state
            )
            self._host.apply_state(
                name, current.model, current.state, revision=current.revision, loaded=loaded
            )

    def pull_labels(self, endpoint: Endpoint) -> int:
        """Count labels stored since the last pull (any route: server, CLI, SDK) towards the
        canary's accuracy check; a label already counted is not counted again."""
        started = clock.now()
        since = self._labels_seen - timedelta(seconds=5)  # overlap: commits land out of order
        counted = 0
        for prediction_id, label in self._service.labels_since(self._ctx, since):
            counted += endpoint.record_label(prediction_id, label)
        self._labels_seen = started
        return counted


def build_server(service: DeploymentService, ctx: Context, options: ServeOptions) -> ServerApp:
    """Load every model and deployment of ``options`` (verified, smoke-tested) into an app."""
    logger = (
        PredictionLogger(ServiceLogSink(service, ctx))
        if options.log_predictions and options.deployments
        else None
    )
    host = ModelHost(
        service.loader(ctx), logger=logger, max_batch=options.max_batch, max_wait=options.max_wait
    )
    from keel.tracking import parse_model_ref

    for ref in options.models:
        name, selector = parse_model_ref(ref)
        host.add_model(name, selector)
    controller = _Controller(service, ctx, host, options)
    for name in options.deployments:
        controller.sync(name)

    async def shutdown() -> None:
        await controller.stop()
        if logger is not None:
            await asyncio.get_running_loop().run_in_executor(None, logger.close)

    app = ServerApp(
        host,
        max_body=options.max_body,
        on_startup=controller.start,
        on_shutdown=shutdown,
        labels=functools.partial(service.record_labels, ctx),
    )
    app.controller = controller  # type: ignore[attr-defined]
    return app


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit it
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingDependencyError("uvicorn", extra="server", purpose="The model server") from exc
    return uvicorn


def _config(app: ServerApp, **kwargs: Any) -> Any:
    uvicorn = _uvicorn()

    return uvicorn.Config(
        app,
        lifespan="on",
        log_level="warning",
        access_log=False,
        http="auto",
        loop="auto",
        workers=1,
        **kwargs,
    )


def run_server(app: ServerApp, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve ``app`` in this process (one worker, TCP_NODELAY) until interrupted."""
    uvicorn = _uvicorn()

    sock = _listen(host, port)
    uvicorn.Server(_config(app)).run(sockets=[sock])


@dataclass
class ServerHandle:
    """A server running in a background thread (tests, notebooks)."""

    url: str
    app: ServerApp
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def start_in_thread(app: ServerApp, *, host: str = "127.0.0.1", port: int = 0) -> ServerHandle:
    """Start ``app`` on a free port in a daemon thread and wait until it is ready."""
    import time

    uvicorn = _uvicorn()

    sock = _listen(host, port)
    server = uvicorn.Server(_config(app))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the model server did not start within 30 s")
        time.sleep(0.01)
    return ServerHandle(f"http://{host}:{sock.getsockname()[1]}", app, server, thread)
