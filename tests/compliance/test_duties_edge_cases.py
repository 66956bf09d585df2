"""Access and erasure where a subject's data is not simply in one declared column: derived
versions (renamed, pseudonymized, copied to another dataset, or with the column destroyed),
several datasets and id types, rejected lines, prediction logs, monitors and runs."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from keel.errors import NotFoundError
from keel.lineage import Node
from keel.workspace import Workspace
from tests.compliance._helpers import ALICE, orders, setup_orders

BOB = "bob@example.org"


def _holds(ws: Workspace, dataset: str, number: int, value: str) -> bool:
    frame = ws.datasets.read(dataset, number)
    return any(value in str(cell) for row in frame.rows() for cell in row)


def test_derived_versions_are_found_exported_and_erased(ws: Workspace) -> None:
    setup_orders(ws)  # orders v1, v2 (append) hold alice twice
    # v3: the subject column pseudonymized (the rows stay the subject's: the key is held)
    ws.datasets.anonymize("orders", [{"kind": "pseudonymize", "columns": ["customer"]}])
    pseudonymized = ws.datasets.read("orders", 3)
    assert ALICE not in pseudonymized["customer"].to_list()
    # v4: the subject column renamed, in the same dataset (and it is `latest`)
    ws.datasets.transform(
        "orders", [{"op": "rename", "mapping": {"customer": "client"}}], version=2
    )
    # a copy in a dataset that declares nothing, derived by a transform
    ws.datasets.transform(
        "orders", [{"op": "filter", "where": "amount > 0"}], version=2, target="billing"
    )

    located = {(loc.dataset, loc.version): loc.rows for loc in ws.compliance.locate(ALICE)}
    assert located == {
        ("billing", 1): 2,
        ("orders", 1): 2,
        ("orders", 2): 2,
        ("orders", 3): 2,
        ("orders", 4): 2,
    }

    export = ws.compliance.access(ALICE)
    assert set(export.rows) == {"billing@1", "orders@1", "orders@2", "orders@3", "orders@4"}
    assert [r["client"] for r in export.rows["orders@4"]] == [ALICE, ALICE]
    assert [r["amount"] for r in export.rows["orders@3"]] == [1.0, 4.0]  # pseudonymized rows
    assert export.sources["orders@3"]["transform"] == "anonymization"
    assert export.sources["orders@3"]["derived_from"] == "orders:2"
    assert export.sources["billing@1"]["derived_from"] == "orders:2"
    assert export.sources["orders@2"]["appended_to"] == "orders:1"
    assert [r["dataset"] for r in export.records] == ["orders"]
    assert any("no record of processing" in n and "billing" in n for n in export.notes)

    report = ws.compliance.erase(ALICE)
    by_version = {(v.dataset, v.version): v for v in report.versions}
    assert set(by_version) == set(located)
    assert by_version[("orders", 4)].replaced_by == 5  # latest: replaced, tag moved
    assert by_version[("billing", 1)].replaced_by == 2
    assert ws.datasets.get("orders").tags == {"latest": 5}
    assert ws.datasets.read("orders")["client"].to_list() == [
        BOB,
        "carol@example.org",
        "dave@example.org",
    ]
    assert not _holds(ws, "orders", 5, ALICE) and not _holds(ws, "billing", 2, ALICE)
    assert ws.datasets.read("billing").height == 3
    for dataset, number in located:
        with pytest.raises(NotFoundError, match="erased"):
            ws.datasets.read(dataset, number)
    assert ws.compliance.locate(ALICE) == []

    # lineage records every erased version, replaced or not, and each replacement
    erased_v3 = ws.datasets.version("orders", 3).id
    down = ws.lineage.graph(f"dataset_version:{erased_v3}", direction="down", depth=1)
    assert f"erasure:{report.id}" in {str(n) for n in down.nodes}
    new = ws.datasets.version("orders", 5)
    up = ws.lineage.graph(f"dataset_version:{new.id}", direction="up", depth=2)
    assert f"dataset_version:{ws.datasets.version('orders', 4).id}" in {str(n) for n in up.nodes}


def test_a_derived_version_whose_subject_column_was_destroyed_is_named_not_claimed(
    ws: Workspace,
) -> None:
    setup_orders(ws)
    # the subject column masked (its values cannot be matched), and dropped elsewhere; the
    # rows (amount, note: "order of alice…") are still there
    ws.datasets.anonymize("orders", [{"kind": "mask", "columns": ["customer"]}], version=2)
    ws.datasets.transform(
        "orders", [{"op": "drop_columns", "columns": ["customer"]}], version=2, target="flat"
    )
    ws.datasets.ingest("unrelated", orders("zoe@example.org"))  # no subject column, not derived

    export = ws.compliance.access(ALICE)
    (derived,) = [n for n in export.notes if n.startswith("derived from versions")]
    assert "orders:3" in derived and "masked" in derived and "NOT exported" in derived
    assert "flat:1" in derived and "dropped" in derived
    assert any("not searched" in n and "unrelated" in n for n in export.notes)

    report = ws.compliance.erase(ALICE)
    (derived,) = [n for n in report.notes if n.startswith("derived from versions")]
    assert "NOT erased" in derived and "orders:3" in derived and "flat:1" in derived
    # what could not be told apart is left as it was, and not listed as erased
    assert {(v.dataset, v.version) for v in report.versions} == {("orders", 1), ("orders", 2)}
    assert _holds(ws, "orders", 3, f"order of {ALICE}")
    assert any("exactly as text" in n for n in report.notes)


def test_ids_of_other_types_and_spellings_in_several_datasets(ws: Workspace) -> None:
    ws.datasets.ingest("accounts", pl.DataFrame({"account": [123, 5, 123], "n": [1, 2, 3]}))
    ws.datasets.ingest(
        "tickets", pl.DataFrame({"requester": ["123", "00123", " 123", "x"], "n": [1, 2, 3, 4]})
    )
    for dataset, column in (("accounts", "account"), ("tickets", "requester")):
        ws.compliance.declare(dataset, purpose="p", lawful_basis="contract", subject_column=column)
    # an integer id matches its digits exactly, in every dataset, whatever the column's name
    assert [(f.dataset, f.rows) for f in ws.compliance.locate("123")] == [
        ("accounts", 2),
        ("tickets", 1),
    ]
    assert [(f.dataset, f.rows) for f in ws.compliance.locate("00123")] == [("tickets", 1)]
    report = ws.compliance.erase("123")
    assert ws.datasets.read("accounts")["account"].to_list() == [5]
    # other spellings are other ids: kept, and the report says how ids are matched
    assert ws.datasets.read("tickets")["requester"].to_list() == ["00123", " 123", "x"]
    assert any("spelled otherwise (case, spaces, leading zeros)" in n for n in report.notes)


def test_rejected_lines_that_mention_the_subject_are_exported_and_shredded(
    ws: Workspace, tmp_path: Path
) -> None:
    source = tmp_path / "orders.csv"
    source.write_text(
        "customer,amount\n"
        f"{ALICE},1.5\n"
        f"{BOB},2.5\n"
        f"{ALICE},3.5,an,extra field\n"  # rejected: the subject's row
        f"malice.subject@example.org,9,x\n"  # rejected: someone else (not a whole match)
    )
    ws.datasets.ingest("orders", str(source), schema={"customer": "String", "amount": "Float64"})
    assert ws.datasets.rejects("orders").height == 2
    ws.compliance.declare("orders", purpose="p", lawful_basis="contract", subject_column="customer")

    out = tmp_path / "alice.zip"
    export = ws.compliance.access(ALICE, out=out)
    (line,) = export.rejected["orders@1"]
    assert line["line"] == 4 and ALICE in line["text"]
    assert export.sources["orders@1"]["source"]["kind"] == "csv"
    with zipfile.ZipFile(out) as archive:
        assert "rejected/orders-v1.csv" in archive.namelist()
        summary = json.loads(archive.read("subject.json"))
    assert summary["sources"]["orders@1"]["created_by"] == "user:tester"

    report = ws.compliance.erase(ALICE)
    assert any("rejected-row samples" in n and "orders:1 (1 line(s))" in n for n in report.notes)
    with pytest.raises(NotFoundError, match="erased"):
        ws.datasets.rejects("orders", 1)
    assert ws.datasets.read("orders")["customer"].to_list() == [BOB]


def _log(
    ws: Workspace,
    deployment: str,
    rows: list[tuple[str, str, float]],
    redact: frozenset[str] = frozenset(),
) -> None:
    """Log predictions through the model server's logger: (id, customer, f0) per row."""
    from keel.serving import PredictionLogger
    from keel.serving._service import ServiceLogSink

    logger = PredictionLogger(ServiceLogSink(ws.deployments.service, ws.ctx), flush_seconds=60)
    logger.log_request(
        prediction_ids=[r[0] for r in rows],
        deployment=deployment,
        model="churn",
        version=1,
        variant="primary",
        request_id="req-1",
        timestamp=datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
        latency_ms=1.0,
        features=["customer", "f0"],
        rows=np.array([[r[1], r[2]] for r in rows], dtype=object),
        predictions=np.zeros(len(rows), dtype=np.int64),
        redact=redact,
    )
    logger.close()
    assert logger.written == len(rows)


def test_prediction_logs_holding_the_subject_are_exported_and_said_not_erased(
    ws: Workspace, tmp_path: Path
) -> None:
    setup_orders(ws)
    # a model server logged the subject's id in clear: the column was never classified
    _log(ws, "churn-prod", [("p-1", ALICE, 0.5), ("p-2", BOB, 0.1), ("p-3", ALICE, 0.7)])
    _log(ws, "churn-prod", [("p-4", "zoë@example.org", 0.2)])
    # where the column is classified as personal data, the server logs it redacted
    _log(ws, "churn-eu", [("p-5", ALICE, 0.3)], redact=frozenset({"customer"}))
    ws.deployments.service.record_labels(ws.ctx, "churn-prod", [("p-1", 1), ("p-2", 0)])
    assert [p["prediction_id"] for p in ws.compliance.access("zoë@example.org").predictions] == [
        "p-4"
    ]

    out = tmp_path / "alice.zip"
    export = ws.compliance.access(ALICE, out=out)
    assert [(p["prediction_id"], p["label"]) for p in export.predictions] == [
        ("p-1", 1),
        ("p-3", None),
    ]
    assert export.predictions[0]["inputs"] == {"customer": ALICE, "f0": 0.5}
    assert any("2 logged prediction(s)" in n for n in export.notes)
    with zipfile.ZipFile(out) as archive:
        table = list(csv.DictReader(io.StringIO(archive.read("predictions.csv").decode())))
    assert [row["prediction_id"] for row in table] == ["p-1", "p-3"]

    report = ws.compliance.erase(ALICE)
    (said,) = [n for n in report.notes if n.startswith("prediction logs")]
    assert "2 logged prediction(s)" in said and "NOT erased" in said and "churn-prod: 2" in said


def test_monitors_and_runs_that_used_an_erased_version_are_named(ws: Workspace) -> None:
    setup_orders(ws)
    ws.monitors.create("orders-drift", reference="orders:2", model="churn", features=["amount"])
    with ws.runs.start(experiment="train", capture_env=False) as run:
        pass
    ws.datasets.record_use("orders", 1, Node("run", run.id))

    report = ws.compliance.erase(ALICE)
    (monitors,) = [n for n in report.notes if n.startswith("monitors")]
    assert "orders-drift (orders:2; its replacement is orders:3)" in monitors
    (runs,) = [n for n in report.notes if n.startswith("runs")]
    assert f"{run.id} (read orders:1)" in runs and "cannot be reproduced" in runs


def test_an_erasure_planned_while_another_of_the_subject_finished_does_not_get_stuck(
    ws: Workspace, backend: str, tmp_path: Path
) -> None:
    from keel.workspace import connect
    from tests.conftest import make_settings

    setup_orders(ws)
    other = connect(settings=make_settings(tmp_path / "home", backend), principal="user:tester")
    eraser = ws.compliance._e._eraser
    plan = eraser.plan
    first: list[str] = []

    def plan_then_another_request_runs(*args: object, **kwargs: object) -> object:
        made = plan(*args, **kwargs)  # type: ignore[arg-type]
        if not first:  # a second request, started at the same moment, runs to its end
            first.append(other.compliance.erase(ALICE).id)
        return made

    eraser.plan = plan_then_another_request_runs  # type: ignore[method-assign]
    try:
        report = ws.compliance.erase(ALICE)  # its plan is now stale
    finally:
        eraser.plan = plan  # type: ignore[method-assign]
        other.close()
    assert report.state == "done" and report.versions == ()
    assert any(n.startswith(f"already erased by {first[0]}") for n in report.notes)
    assert all(e.state == "done" for e in ws.compliance.erasures())  # nothing left running
    again = ws.compliance.erase(ALICE)
    assert again.versions == () and "nothing to erase" in again.notes[0]
    assert ws.datasets.get("orders").versions == 3  # one replacement, by the first request
