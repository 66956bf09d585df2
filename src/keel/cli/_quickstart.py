"""``keel quickstart``: the whole lifecycle, end to end, on a real credit dataset with real drift.

The data is NannyML's synthetic car-loan dataset (Apache-2.0, shipped inside the ``nannyml``
wheel; see docs/datasets.md): 50,000 loans of a reference period, and 50,000 of a later
production period whose distribution drifts, with their late-arriving repayment labels.

1. Data: ingest the files as dataset versions, classify, derive features, validate through the
   gate, publish.
2. Training: the ``quickstart-train`` pipeline searches a gradient-boosting classifier with
   Optuna and registers the best model; ``champion`` points at it, with the reason recorded.
3. Serving and monitoring: the champion is deployed; a monitor, two alert rules (drift, accuracy)
   and a retraining trigger watch it; production loans are replayed in time order and the
   monitor checks each window: the drift alert fires when ``car_value`` and ``loan_length`` move.
4. Labels arrive: repayments join the logged predictions (the accuracy alert fires) and the
   labelled period is published as the newest version of the training data.
5. The closed loop: the drift alert's trigger retrains on that version; the challenger beats the
   champion offline, is deployed as a canary on the next loans, and the server's analysis
   promotes or rolls it back; a promoted challenger becomes the champion.
6. Reports and checks: the HTML monitoring report, the champion reloads in both formats with
   matching predictions, the audit chain verifies.

The command is a thin face: the stages live in ``_quickstart_data``, ``_quickstart_steps`` and
``_quickstart_serve``; the summary in ``_quickstart_summary``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keel.cli._app import open_workspace, state
from keel.cli._output import echo_json, print_kv
from keel.cli._quickstart_data import FEATURES, SUITE, quickstart_data_dir

if TYPE_CHECKING:
    from keel.workspace import Workspace

__all__ = ["FEATURES", "SUITE", "quickstart", "quickstart_data_dir", "run_quickstart"]

#: Progress stages: data 3, training 2, serving and monitoring 3, labels 1, loop 3, reports 1,
#: checks 1.
STAGES = 14


def _require_sklearn() -> None:
    from keel.errors import MissingDependencyError

    try:
        import sklearn  # noqa: F401
        import skops  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            exc.name or "scikit-learn", extra="sklearn", purpose="keel quickstart"
        ) from exc


def _reload_matches(ws: Workspace, model: str, formats: list[str], rows: Any) -> bool:
    """The champion's formats, reloaded from the registry, predict the same on production rows."""
    import numpy as np

    x = rows.select(FEATURES).head(2_000).to_numpy().astype(float)
    predictions = [
        ws.models.load(f"{model}@champion", format=fmt, verify=True).predict_proba(x)
        for fmt in formats
    ]
    return all(np.allclose(p, predictions[0], atol=1e-4) for p in predictions[1:])


def run_quickstart(ws: Workspace, progress: Any) -> dict[str, Any]:
    """Every stage of the lifecycle, in order; returns the ids and figures of each."""
    from keel.cli import _quickstart_steps as steps
    from keel.cli._quickstart_data import prepare_data
    from keel.cli._quickstart_summary import summarize

    task = progress.add_task("Keel quickstart", total=STAGES)
    started: list[str] = []
    clock: list[float] = []

    def step(description: str) -> None:
        """Start the next stage (the previous one is done); a repeated prefix updates it."""
        stage = description.split(":")[0]
        if stage not in started:
            started.append(stage)
            clock.append(time.perf_counter())
        progress.update(task, completed=len(started) - 1, description=description)

    data = prepare_data(ws, step)
    trained = steps.train_champion(ws, step, data["features"])
    watching = steps.watch(ws, step, data["features"])
    live, later, windows, ids = steps.replay_production(ws, step, data["production_features"])
    labelled = steps.labels_arrive(ws, step, live, ids, data["labels"])
    loop = steps.close_the_loop(ws, step, watching["pipeline"], later, data["labels"])
    reports = steps.write_reports(ws, step, ws.settings.home.resolve(), data["report"].id)
    step("Reloading the champion and verifying the audit chain")
    champion = ws.models.version(f"{steps.MODEL}@champion")
    formats = champion.tags.get("keel.formats", champion.format).split(",")
    same = _reload_matches(ws, steps.MODEL, formats, later)
    chain = ws.audit.verify()
    progress.update(task, completed=STAGES, description="Done")
    clock.append(time.perf_counter())
    summary = summarize(
        ws,
        data=data,
        trained=trained,
        watching=watching,
        windows=windows,
        labelled=labelled,
        loop=loop,
        reports=reports,
        reload_matches=same,
        chain=chain,
        prediction_id=min(ids.values()),  # the first loan served
    )
    summary["stage_seconds"] = [
        {"stage": stage, "seconds": round(end - begin, 2)}
        for stage, begin, end in zip(started, clock, clock[1:], strict=False)
    ]
    return summary


def quickstart(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Run the lifecycle on real data: train, deploy, drift, alert, retrain, canary, promote."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from keel.cli._quickstart_summary import next_steps, rows

    _require_sklearn()
    quickstart_data_dir()
    started = time.perf_counter()
    with (
        open_workspace(create=True) as ws,
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            transient=as_json,
            disable=as_json,
        ) as progress,
    ):
        summary = run_quickstart(ws, progress)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    if as_json:
        echo_json(summary)
        return
    print_kv("Keel quickstart: done", rows(summary))
    typer.echo(next_steps(summary, home=state.home))
