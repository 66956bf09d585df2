"""Copy experiments, runs, metrics, artifacts and registered models from an MLflow server.

The migration path behind ``keel import mlflow --from URL``. It reads the source through
MLflow's REST API (any MLflow server, or another Keel) and writes through a Keel
:class:`~keel.workspace.Workspace`, so every write is authorized and audited as usual.

Idempotent and resumable: each imported run carries the tags ``mlflow.import.source`` and
``mlflow.import.run_id``, and ``mlflow.import.complete`` once all of it is copied; a rerun skips
complete runs, and replaces a run an interrupted import left incomplete (the partial copy is
deleted). Model versions carry ``mlflow.import.version``, and are skipped when already there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from keel.errors import InvalidInputError, KeelError, NotFoundError, StorageError
from keel.tracking import Metric
from keel.types import RunStatus

if TYPE_CHECKING:
    import httpx

    from keel.workspace import Workspace

__all__ = ["ImportReport", "MlflowImporter", "MlflowSource"]

SOURCE_TAG, RUN_TAG, DONE_TAG = (
    "mlflow.import.source",
    "mlflow.import.run_id",
    "mlflow.import.complete",
)
VERSION_TAG = "mlflow.import.version"
_SAFE = {".skops": "skops", ".onnx": "onnx", ".lgb": "lightgbm-text", ".safetensors": "safetensors"}
_NAME = re.compile(r"[^A-Za-z0-9_.\-]+")
_KEY = re.compile(r"^[A-Za-z0-9_\-. /:]{1,250}$")
_FINAL = {"FINISHED", "FAILED", "KILLED"}
_METRIC_CHUNK = 10_000

#: A progress callback: (stage, done, total, what).
Progress = Callable[[str, int, int, str], None]


@dataclass
class ImportReport:
    """What an import did: counts per kind, and what it skipped and why."""

    experiments: int = 0
    runs: int = 0
    runs_skipped: int = 0
    metrics: int = 0
    artifacts: int = 0
    models: int = 0
    versions: int = 0
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiments": self.experiments,
            "runs": self.runs,
            "runs_already_imported": self.runs_skipped,
            "metrics": self.metrics,
            "artifacts": self.artifacts,
            "models": self.models,
            "versions": self.versions,
            "skipped": list(self.skipped),
        }


class MlflowSource:
    """A read-only client of an MLflow server's REST API."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        import httpx

        if not url.startswith(("http://", "https://")):
            raise InvalidInputError(
                f"The MLflow server URL {url[:200]!r} must start with http:// or https://."
            )
        headers = {"authorization": f"Bearer {token}"} if token else {}
        auth = (username, password or "") if username else None
        self.url = url.rstrip("/")
        self._http: httpx.Client = httpx.Client(
            base_url=self.url, headers=headers, auth=auth, timeout=timeout
        )

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import httpx

        try:
            if method == "GET":
                response = self._http.get(f"/api/2.0/mlflow/{path}", params=body)
            else:
                response = self._http.request(method, f"/api/2.0/mlflow/{path}", json=body or {})
        except httpx.HTTPError as exc:
            raise StorageError(f"Cannot reach the MLflow server at {self.url}: {exc}.") from None
        return self._checked(response, path)

    def _checked(self, response: httpx.Response, what: str) -> dict[str, Any]:
        if response.status_code == 404:
            raise NotFoundError(f"The MLflow server answered 404 to {what}: {response.text[:300]}")
        if response.status_code in (401, 403):
            raise InvalidInputError(
                f"The MLflow server at {self.url} refused the credentials ({response.status_code})."
                " Pass --token (or set MLFLOW_TRACKING_TOKEN), or --username and --password."
            )
        if response.status_code >= 400:
            raise StorageError(
                f"The MLflow server answered {response.status_code} to {what}: "
                f"{response.text[:300]}"
            )
        data: dict[str, Any] = response.json() if response.content else {}
        return data

    def pages(
        self, method: str, path: str, key: str, body: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        token = None
        while True:
            page = self.call(method, path, {**body, **({"page_token": token} if token else {})})
            yield from page.get(key, [])
            token = page.get("next_page_token")
            if not token:
                return

    def artifact_files(self, artifact_uri: str) -> list[tuple[str, int]]:
        """Every file under an ``mlflow-artifacts:/`` URI (recursively), paths relative to it."""
        root = _proxy_path(artifact_uri)
        out: list[tuple[str, int]] = []
        todo = [""]
        while todo:
            sub = todo.pop()
            where = f"{root}/{sub}".rstrip("/")
            listed = self._checked(
                self._http.get("/api/2.0/mlflow-artifacts/artifacts", params={"path": where}),
                "artifact listing",
            )
            for item in listed.get("files", []):
                rel = f"{sub}/{item['path']}".strip("/")
                if item.get("is_dir"):
                    todo.append(rel)
                else:
                    out.append((rel, int(item.get("file_size") or 0)))
        return sorted(out)

    def artifact(self, artifact_uri: str, rel: str) -> bytes:
        path = f"{_proxy_path(artifact_uri)}/{rel}"
        response = self._http.get(f"/api/2.0/mlflow-artifacts/artifacts/{path}")
        if response.status_code >= 400:
            self._checked(response, f"artifact {rel}")
        return response.content


def _proxy_path(uri: str) -> str:
    """The proxy path of an ``mlflow-artifacts:`` URI (with or without a host part)."""
    if not uri.startswith("mlflow-artifacts:"):
        raise InvalidInputError(
            f"Artifacts at {uri[:200]!r} are not served by the MLflow server's proxy; start the "
            "source server with artifact serving (mlflow server --serve-artifacts)."
        )
    rest = uri.removeprefix("mlflow-artifacts:")
    if rest.startswith("//"):  # mlflow-artifacts://host:port/path
        rest = rest[2:].partition("/")[2]
    return rest.strip("/")


def keel_name(name: str) -> str:
    """An MLflow experiment or model name made valid for Keel (1-128 of [A-Za-z0-9_.-])."""
    clean = _NAME.sub("-", name).strip("-.") or "unnamed"
    return clean[:128] if clean[0].isalnum() else ("x" + clean)[:128]


class MlflowImporter:
    """Copies an MLflow server's content into a Keel workspace, idempotently."""

    def __init__(self, source: MlflowSource, ws: Workspace, *, progress: Progress | None = None):
        self._src = source
        self._ws = ws
        self._progress = progress or (lambda stage, done, total, what: None)
        self._runs: dict[str, str] = {}  # source run id → Keel run id
        self.report = ImportReport()

    def run(self) -> ImportReport:
        experiments = list(
            self._src.pages(
                "POST",
                "experiments/search",
                "experiments",
                {"max_results": 1000, "view_type": "ACTIVE_ONLY"},
            )
        )
        for index, exp in enumerate(experiments):
            self._progress("experiments", index, len(experiments), exp["name"])
            self._experiment(exp)
        self._progress("experiments", len(experiments), len(experiments), "")
        models = list(
            self._src.pages(
                "GET", "registered-models/search", "registered_models", {"max_results": 1000}
            )
        )
        for index, model in enumerate(models):
            self._progress("models", index, len(models), model["name"])
            self._model(model)
        self._progress("models", len(models), len(models), "")
        return self.report

    # --- tracking -----------------------------------------------------------------------

    def _experiment(self, exp: dict[str, Any]) -> None:
        name = keel_name(exp["name"])
        try:
            self._ws.experiments.get_by_name(name)
        except NotFoundError:
            made = self._ws.experiments.create(name)
            self._ws.experiments.set_tag(made.id, "mlflow.import.name", exp["name"][:8000])
            self.report.experiments += 1
        done, partial = self._imported(name)
        runs = list(
            self._src.pages(
                "POST",
                "runs/search",
                "runs",
                {"experiment_ids": [exp["experiment_id"]], "max_results": 1000},
            )
        )
        for index, run in enumerate(runs):
            source_id = run["info"]["run_id"]
            self._progress("runs", index, len(runs), f"{name}/{run['info'].get('run_name', '')}")
            if source_id in done:
                self._runs[source_id] = done[source_id]
                self.report.runs_skipped += 1
                continue
            if source_id in partial:
                self._ws.runs.delete(partial[source_id])  # an interrupted copy: start again
            self._runs[source_id] = self._run(name, run)

    def _imported(self, experiment: str) -> tuple[dict[str, str], dict[str, str]]:
        done: dict[str, str] = {}
        partial: dict[str, str] = {}
        token = None
        while True:
            page = self._ws.runs.search(
                f"tags.`{SOURCE_TAG}` = '{self._src.url}'",
                experiments=[experiment],
                max_results=5000,
                page_token=token,
            )
            for run in page.runs:
                target = done if run.tags.get(DONE_TAG) == "true" else partial
                target[run.tags.get(RUN_TAG, "")] = run.id
            token = page.next_page_token
            if not token:
                return done, partial

    def _run(self, experiment: str, run: dict[str, Any]) -> str:
        info, data = run["info"], run.get("data", {})
        tags = {t["key"]: t["value"] for t in data.get("tags", []) if _KEY.match(t["key"])}
        tags.update(
            {
                SOURCE_TAG: self._src.url,
                RUN_TAG: info["run_id"],
                "mlflow.import.start_time": str(info.get("start_time", "")),
            }
        )
        params = {p["key"]: p["value"] for p in data.get("params", []) if _KEY.match(p["key"])}
        parent = self._runs.get(tags.pop("mlflow.parentRunId", ""))
        active = self._ws.runs.start(
            experiment=experiment,
            name=info.get("run_name") or None,
            params=params,
            tags=tags,
            parent_run_id=parent,
            capture_env=False,
        )
        for key in sorted({m["key"] for m in data.get("metrics", [])}):
            history = self._src.pages(
                "GET",
                "metrics/get-history",
                "metrics",
                {"run_id": info["run_id"], "metric_key": key},
            )
            chunk: list[Metric] = []
            for m in history:
                chunk.append(
                    Metric(
                        key,
                        _float(m["value"]),
                        int(m.get("step", 0)),
                        int(m.get("timestamp", 0)) or None,
                    )
                )
                if len(chunk) >= _METRIC_CHUNK:
                    active.log_batch(metrics=chunk)
                    self.report.metrics += len(chunk)
                    chunk = []
            if chunk:
                active.log_batch(metrics=chunk)
                self.report.metrics += len(chunk)
        uri = info.get("artifact_uri", "")
        try:
            files = self._src.artifact_files(uri) if uri else []
        except InvalidInputError as exc:
            self.report.skipped.append(f"artifacts of run {info['run_id']}: {exc}")
            files = []
        for rel, _ in files:
            active.log_bytes(self._src.artifact(uri, rel), name=rel)
            self.report.artifacts += 1
        if info.get("status") in _FINAL:
            active.end(RunStatus(info["status"]))
        active.set_tag(DONE_TAG, "true")
        self.report.runs += 1
        return active.id

    # --- registry -----------------------------------------------------------------------

    def _model(self, model: dict[str, Any]) -> None:
        name = keel_name(model["name"])
        try:
            existing = {v.tags.get(VERSION_TAG): v.version for v in self._ws.models.versions(name)}
        except NotFoundError:
            self._ws.models.create(name, description=model.get("description", ""))
            self.report.models += 1
            existing = {}
        for tag in model.get("tags", []):
            if _KEY.match(tag["key"]):
                self._ws.models.set_tag(name, tag["key"], tag["value"])
        versions = sorted(
            self._src.pages(
                "GET",
                "model-versions/search",
                "model_versions",
                {
                    "filter": "name = '" + model["name"].replace("'", "''") + "'",
                    "max_results": 1000,
                },
            ),
            key=lambda v: int(v["version"]),
        )
        mapping: dict[str, int] = {k: v for k, v in existing.items() if k}
        for version in versions:
            if version["version"] not in mapping:
                made = self._version(name, model["name"], version)
                if made is not None:
                    mapping[version["version"]] = made
        for alias in model.get("aliases", []):
            target = mapping.get(str(alias["version"]))
            if target is None:
                self.report.skipped.append(
                    f"alias {name}@{alias['alias']}: its version was not imported"
                )
                continue
            try:
                self._ws.models.set_alias(name, alias["alias"], target, reason="mlflow import")
            except KeelError as exc:
                self.report.skipped.append(f"alias {name}@{alias['alias']}: {exc}")

    def _version(self, name: str, source_name: str, version: dict[str, Any]) -> int | None:
        what = f"{source_name} version {version['version']}"
        uri = self._src.call(
            "GET",
            "model-versions/get-download-uri",
            {"name": source_name, "version": version["version"]},
        )["artifact_uri"]
        try:
            files = self._src.artifact_files(uri)
        except (InvalidInputError, NotFoundError) as exc:
            self.report.skipped.append(f"{what}: {exc}")
            return None
        safe = [rel for rel, _ in files if PurePosixPath(rel).suffix in _SAFE]
        if not safe:
            self.report.skipped.append(
                f"{what}: no safe-format model file (pickles are not imported; scan them with "
                "`keel supplychain scan`)"
            )
            return None
        tags = {t["key"]: t["value"] for t in version.get("tags", []) if _KEY.match(t["key"])}
        tags[VERSION_TAG] = str(version["version"])
        made = self._ws.models.register(
            name,
            artifact=self._src.artifact(uri, safe[0]),
            format=_SAFE[PurePosixPath(safe[0]).suffix],
            run_id=self._runs.get(version.get("run_id") or ""),
            description=version.get("description", ""),
            tags=tags,
        )
        self.report.versions += 1
        return made.version


def _float(value: Any) -> float:
    if isinstance(value, str):
        return {"nan": float("nan"), "infinity": float("inf"), "-infinity": float("-inf")}.get(
            value.lower(), float(value) if value else float("nan")
        )
    return float(value)
