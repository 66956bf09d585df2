"""The model server's HTTP surface as a raw ASGI app: V2 REST, ``/predict``, ``/metrics``.

Raw ASGI keeps the hot path short (FastAPI's validation layer costs about a third of the
throughput on one core). Bodies are read up to a limit, parsed whatever the Content-Type
(tritonclient sends none), and every refusal is ``{"error": "..."}`` with a 4xx status.
"""

# ruff: noqa: N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from keel.serving._host import Endpoint, ModelHost
from keel.serving._protocol import (
    RequestError,
    check_outputs,
    dumps,
    output_datatype,
    parse_json,
    parse_predict,
    parse_v2,
    v2_datatype,
)
from keel.serving._runtime import ServedVersion

__all__ = ["MAX_BODY", "ServerApp"]

_log = logging.getLogger("keel.serving")
MAX_BODY = 8 * 1024 * 1024
_JSON = [(b"content-type", b"application/json")]
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class ServerApp:
    """ASGI application over a ModelHost.

    Args:
        host: the loaded models and deployments.
        max_body: the largest request body accepted (bytes); larger is 413.
        on_startup / on_shutdown: callables run by the ASGI lifespan (controller, flushing).
        labels: stores late labels posted to ``/labels/NAME`` (the ground-truth store), called
            off the event loop with ``(deployment, [(prediction_id, label), ...])``.
    """

    def __init__(
        self,
        host: ModelHost,
        *,
        max_body: int = MAX_BODY,
        on_startup: Callable[[], Awaitable[None]] | None = None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
        labels: Callable[[str | None, list[tuple[str, Any]]], Any] | None = None,
    ) -> None:
        self.host = host
        self.max_body = max_body
        self._on_startup = on_startup
        self._on_shutdown = on_shutdown
        self._store_labels = labels
        self.ready = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            status, payload, headers = await self._handle(scope, receive)
        except RequestError as exc:
            status, payload, headers = exc.status, _error(exc.message), _JSON
        except Exception as exc:  # last resort: never leak a traceback to the client
            _log.exception("unhandled error serving %s", scope.get("path"))
            status, payload, headers = 500, _error(f"Internal error: {type(exc).__name__}."), _JSON
        headers = [*headers, (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.host.start()
                if self._on_startup is not None:
                    await self._on_startup()
                self.ready = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.ready = False
                await self.host.stop()
                if self._on_shutdown is not None:
                    await self._on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise RequestError(400, "Invalid Content-Length header.") from None
                if declared > self.max_body:
                    raise RequestError(413, _too_big(self.max_body))
            elif name == b"inference-header-content-length":
                raise RequestError(
                    400,
                    "The binary tensor data extension is not supported; send JSON tensors "
                    "(tritonclient: binary_data=False).",
                )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestError(400, "The client disconnected before sending the body.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise RequestError(413, _too_big(self.max_body))
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, bytes, list[Any]]:
        path: str = scope["path"]
        method: str = scope["method"]
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["v2"]:
            return await self._v2(parts[1:], method, scope, receive)
        if parts == ["predict"] or (len(parts) == 2 and parts[0] == "predict"):
            _expect(method, "POST")
            return await self._predict(parts[1] if len(parts) == 2 else None, scope, receive)
        if len(parts) == 2 and parts[0] == "labels":
            _expect(method, "POST")
            return await self._labels(parts[1], scope, receive)
        if parts == ["metrics"]:
            _expect(method, "GET")
            body, content_type = self.host.metrics.render()
            return 200, body, [(b"content-type", content_type.encode())]
        raise RequestError(404, f"No route for {method} {path[:200]}.")

    async def _v2(
        self, parts: list[str], method: str, scope: Scope, receive: Receive
    ) -> tuple[int, bytes, list[Any]]:
        if not parts:
            _expect(method, "GET")
            return _ok({"name": "keel", "version": "1", "extensions": []})
        if parts[0] == "health" and len(parts) == 2 and parts[1] in ("live", "ready"):
            _expect(method, "GET")
            if parts[1] == "live":
                return _ok({"live": True})
            ready = self.ready and bool(self.host.endpoints)
            return (200 if ready else 503), _dumps({"ready": ready}), _JSON
        if parts[0] != "models" or len(parts) < 2:
            raise RequestError(404, f"No V2 route /v2/{'/'.join(parts)[:200]}.")
        endpoint = self.host.endpoint(parts[1])
        rest = parts[2:]
        version: str | None = None
        if rest[:1] == ["versions"]:
            if len(rest) < 2:
                raise RequestError(404, "Give a version: /v2/models/NAME/versions/N.")
            version, rest = rest[1], rest[2:]
            self.host.pick(endpoint, version, None)
        if not rest:
            _expect(method, "GET")
            return _ok(_metadata(endpoint, version))
        if rest == ["ready"]:
            _expect(method, "GET")
            return _ok({"name": endpoint.name, "ready": True})
        if rest == ["infer"]:
            _expect(method, "POST")
            return await self._infer(endpoint, version, scope, receive)
        raise RequestError(404, f"No V2 route /v2/{'/'.join(parts)[:200]}.")

    async def _infer(
        self, endpoint: Endpoint, version: str | None, scope: Scope, receive: Receive
    ) -> tuple[int, bytes, list[Any]]:
        body = parse_json(await self._body(scope, receive))
        chosen = self.host.pick(endpoint, version, _sticky(scope, body))
        served = endpoint.served(chosen.version)
        X, request_id, wanted = parse_v2(body, served.signature)
        names = check_outputs(wanted, _produced(served))
        served, out, ids = await self.host.predict(endpoint, chosen, X, request_id=request_id)
        outputs = []
        for name in names:
            array = out[name]
            datatype = output_datatype(array.dtype)
            data = array.reshape(-1).tolist()
            if datatype == "BYTES":
                data = [str(v) for v in data]
            outputs.append(
                {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}
            )
        response: dict[str, Any] = {
            "model_name": endpoint.name,
            "model_version": str(served.version),
            "outputs": outputs,
            "parameters": {"prediction_ids": ",".join(ids), "variant": chosen.variant},
        }
        if request_id is not None:
            response["id"] = request_id
        return _ok(response)

    async def _predict(
        self, name: str | None, scope: Scope, receive: Receive
    ) -> tuple[int, bytes, list[Any]]:
        if name is None:
            if len(self.host.endpoints) != 1:
                raise RequestError(
                    404,
                    "Several models are served; post to /predict/NAME (served: "
                    f"{', '.join(sorted(self.host.endpoints))}).",
                )
            name = next(iter(self.host.endpoints))
        endpoint = self.host.endpoint(name)
        body = parse_json(await self._body(scope, receive))
        chosen = self.host.pick(endpoint, None, _sticky(scope, body))
        X = parse_predict(body, endpoint.served(chosen.version).signature)
        served, out, ids = await self.host.predict(endpoint, chosen, X)
        response: dict[str, Any] = {
            "model": served.model,
            "version": served.version,
            "variant": chosen.variant,
            "prediction_ids": ids,
            "predictions": out["prediction"].tolist(),
        }
        if "probabilities" in out:
            response["probabilities"] = out["probabilities"].tolist()
            response["classes"] = list(served.classes or ())
        return _ok(response)

    async def _labels(
        self, name: str, scope: Scope, receive: Receive
    ) -> tuple[int, bytes, list[Any]]:
        """Late ground truth: ``{"labels": [{"prediction_id", "label"}]}``.

        The labels are stored in the ground-truth store (monitoring joins them with the
        prediction logs; the canary analysis reads them back), and labels of a rolling
        canary's recent predictions count towards its accuracy check at once.
        """
        endpoint = self.host.endpoint(name)
        body = parse_json(await self._body(scope, receive))
        labels = body.get("labels") if isinstance(body, dict) else None
        if not isinstance(labels, list):
            raise RequestError(
                400, 'Send {"labels": [{"prediction_id": "...", "label": ...}, ...]}.'
            )
        matched = 0
        for index, item in enumerate(labels):
            if not isinstance(item, dict) or not isinstance(item.get("prediction_id"), str):
                raise RequestError(400, f"labels[{index}] needs a string 'prediction_id'.")
            matched += endpoint.record_label(item["prediction_id"], item.get("label"))
        if self._store_labels is not None:
            pairs = [(str(item["prediction_id"]), item.get("label")) for item in labels]
            try:
                await run_in_thread(self._store_labels, endpoint.deployment, pairs)
            except Exception as exc:
                _log.error("labels for %s could not be stored: %s", name[:100], exc)
                raise RequestError(
                    503, f"The labels could not be stored ({type(exc).__name__}); send them again."
                ) from exc
        return _ok({"received": len(labels), "matched": matched})


def _sticky(scope: Scope, body: Any) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-keel-route-key":
            return str(value.decode("latin-1"))[:256]
    if isinstance(body, dict):
        params = body.get("parameters")
        if isinstance(params, dict) and isinstance(params.get("route_key"), str):
            return str(params["route_key"])[:256]
        if isinstance(body.get("route_key"), str):
            return str(body["route_key"])[:256]
    return None


def _produced(served: ServedVersion) -> tuple[str, ...]:
    """The outputs a version answers with (what ``ServedVersion.predict`` returns)."""
    return ("prediction", "probabilities") if served.kind == "classifier" else ("prediction",)


def _metadata(endpoint: Endpoint, version: str | None) -> dict[str, Any]:
    import numpy as np

    number = int(version) if version is not None else endpoint.state.primary
    served = endpoint.served(number)
    sig = served.signature
    if served.kind != "classifier":
        prediction = "FP64"
    elif served.classes is None:
        prediction = "INT64"  # the index of the most probable class
    else:  # the class labels, as ServedVersion.predict returns them
        prediction = output_datatype(np.asarray(served.classes).dtype)
    outputs = [{"name": "prediction", "datatype": prediction, "shape": [-1]}]
    if served.kind == "classifier":
        outputs.append(
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(served.classes or ())]}
        )
    return {
        "name": endpoint.name,
        "versions": [str(v) for v in sorted(endpoint.versions)],
        "platform": served.platform,
        "inputs": [
            {"name": "input", "datatype": v2_datatype(sig.dtype), "shape": [-1, sig.width]},
        ],
        "outputs": outputs,
        "parameters": {
            "features": list(sig.features),
            "model": served.model,
            "version": str(served.version),
        },
    }


def _expect(method: str, allowed: str) -> None:
    if method != allowed:
        raise RequestError(405, f"Method {method} is not allowed here; use {allowed}.")


def _too_big(limit: int) -> str:
    return f"The request body is larger than the limit of {limit} bytes; send fewer rows."


def _dumps(value: Any) -> bytes:
    return dumps(value)


def _ok(value: Any) -> tuple[int, bytes, list[Any]]:
    return 200, _dumps(value), _JSON


def _error(message: str) -> bytes:
    return _dumps({"error": message})


async def run_in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
