"""The quickstart's traffic: a model server in a thread, fed production loans in time order."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from keel.cli._quickstart_data import FEATURES

if TYPE_CHECKING:
    import polars as pl

    from keel.serving import AnalysisConfig, ServerHandle
    from keel.workspace import Workspace

__all__ = ["Traffic"]

#: Rows per request while replaying (the server micro-batches and logs every row).
BATCH = 100
#: The longest the prediction logger may take to store what was sent (it flushes every second).
LOG_WAIT_SECONDS = 30.0


class Traffic:
    """Serve ``deployment`` in a background thread and replay rows against it.

    Each response's prediction ids are kept by loan id, so the late labels can be joined to the
    logged predictions (``keel monitors labels ingest``).

    Args:
        ws: the workspace.
        deployment: the deployment served (its routing and canary analysis included).
        analysis: the automatic canary analysis (None: no automatic moves).
    """

    def __init__(
        self, ws: Workspace, deployment: str, *, analysis: AnalysisConfig | None = None
    ) -> None:
        self._ws, self._deployment, self._analysis = ws, deployment, analysis
        self._handle: ServerHandle | None = None
        self._client: Any = None
        self.prediction_ids: dict[int, str] = {}
        self.sent = 0

    def __enter__(self) -> Traffic:
        import httpx

        from keel.serving import ServeOptions, start_in_thread

        options = ServeOptions(
            deployments=[self._deployment], poll_seconds=0.25, analysis=self._analysis
        )
        self._handle = start_in_thread(self._ws.deployments.server(options))
        self._client = httpx.Client(base_url=self._handle.url, timeout=60)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            self._client.close()
        if self._handle is not None:
            self._handle.stop()  # drains the prediction logger

    def send(
        self, rows: pl.DataFrame, *, labels: dict[int, int] | None = None, batch: int = BATCH
    ) -> list[str]:
        """Predict ``rows`` (``batch`` per request); with ``labels``, post each row's label back."""
        ids = rows["id"].to_list()
        records = rows.select(FEATURES).to_dicts()
        answered: list[str] = []
        for first in range(0, len(records), batch):
            answer = self._client.post(
                f"/predict/{self._deployment}", json=records[first : first + batch]
            )
            answer.raise_for_status()
            predicted = answer.json()["prediction_ids"]
            loans = ids[first : first + batch]
            for loan, pid in zip(loans, predicted, strict=True):
                self.prediction_ids[int(loan)] = pid
            answered.extend(predicted)
            if labels is not None:
                truth = [
                    {"prediction_id": pid, "label": labels[int(loan)]}
                    for loan, pid in zip(loans, predicted, strict=True)
                ]
                self._client.post(
                    f"/labels/{self._deployment}", json={"labels": truth}
                ).raise_for_status()
        self.sent += len(answered)
        return answered

    def until_decided(
        self,
        rows: pl.DataFrame,
        *,
        labels: dict[int, int],
        seconds: float,
        progress: Callable[[int], None],
        batch: int = BATCH,
    ) -> bool:
        """Replay ``rows`` (again from the start if needed) until the canary is decided."""
        started = time.monotonic()
        offset = 0
        while self._ws.deployments.get(self._deployment).state.phase == "rolling":
            if time.monotonic() - started > seconds:
                return False
            if offset >= rows.height:
                offset = 0
            self.send(rows.slice(offset, batch * 25), labels=labels, batch=batch)
            offset += batch * 25
            progress(self.sent)
        return True

    def wait_logged(self, expected: int) -> int:
        """Wait until ``expected`` predictions of the deployment are in the log store."""
        deadline = time.monotonic() + LOG_WAIT_SECONDS
        while True:
            logged = int(self._ws.deployments.read_predictions(self._deployment).height)
            if logged >= expected or time.monotonic() > deadline:
                return logged
            time.sleep(0.25)
