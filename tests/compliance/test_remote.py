"""``keel.connect(url)`` gives the same ``ws.compliance`` and ``ws.supplychain`` as local mode."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import keel
from keel.compliance import ErasureService
from keel.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError
from keel.governance import ComplianceService
from keel.workspace import Workspace, connect
from keel.workspace._policies import SupplyChain
from keel.workspace._remote_compliance import (
    RemoteComplianceService,
    RemoteErasureService,
    RemoteSupplyChain,
)
from tests.compliance._helpers import ALICE, setup_orders, train_on
from tests.server._live import LiveServer, live_server


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path / "home") as server:
        yield server


@pytest.fixture
def local(live: LiveServer) -> Iterator[Workspace]:
    with connect(settings=live.settings, principal="user:owner") as workspace:
        yield workspace


def test_every_public_method_is_mapped_to_a_route() -> None:
    for base, remote in (
        (ComplianceService, RemoteComplianceService),
        (ErasureService, RemoteErasureService),
        (SupplyChain, RemoteSupplyChain),
    ):
        public = {n for n in vars(base) if not n.startswith("_") and callable(vars(base)[n])}
        mapped = {n for n in vars(remote) if not n.startswith("_")}
        assert public - mapped == set(), remote.__name__


def test_remote_compliance_matches_local(
    live: LiveServer, local: Workspace, tmp_path: Path
) -> None:
    setup_orders(local)
    model = train_on(local, "orders", 2)
    with keel.connect(live.url, token=live.token_for("admin", name="user:dpo")) as remote:
        assert [r.dataset for r in remote.compliance.records()] == ["orders"]
        assert remote.compliance.set_location("eu-bucket", kind="storage", region="de").region
        assert [loc.name for loc in remote.compliance.locations()] == ["eu-bucket"]
        declared = remote.compliance.declare(
            "orders",
            purpose="billing",
            lawful_basis="contract",
            categories=["contact"],
            subject_column="customer",
            retention_days=30,
        )
        assert declared.subject_column == "customer" and declared.categories == ("contact",)
        assert remote.compliance.retention() == []
        assert remote.compliance.locate(ALICE) == local.compliance.locate(ALICE)

        export = remote.compliance.access(ALICE, out=tmp_path / "alice.zip")
        assert len(export.rows["orders@1"]) == 2 and export.models == (f"churn:{model.version}",)
        assert "rows/orders-v2.csv" in zipfile.ZipFile(tmp_path / "alice.zip").namelist()

        planned = remote.compliance.erase(ALICE, dry_run=True)
        assert planned.dry_run and len(planned.versions) == 2
        report = remote.compliance.erase(ALICE)
        assert report.state == "done" and report.versions[1].replaced_by == 3
        assert report.models_flagged == (f"churn:{model.version}",)
        assert remote.compliance.erasures()[0].id == report.id
        assert remote.compliance.erasure(report.id) == report
        # an erased version answers a clean 404 before any byte is streamed, and the
        # connection stays usable
        for _ in range(2):
            with pytest.raises(NotFoundError, match="erased") as caught:
                remote.datasets.read("orders", 2)
            assert caught.value.details.get("erased") is True
        assert ALICE not in remote.datasets.read("orders")["customer"].to_list()
        gone = remote.datasets.version("orders", 2)
        assert (gone.erased, gone.replaced_by) == (True, 3)
        assert gone == local.datasets.version("orders", 2)
        assert not remote.datasets.version("orders", 3).erased
        with pytest.raises(NotFoundError):
            remote.compliance.erasure("01ABCDEFGHJKMNPQRSTVWXYZ00")
        assert remote.compliance.enforce_retention(dry_run=True).versions == ()
        with pytest.raises(InvalidInputError, match="non-empty"):
            remote.compliance.erase(" ")
    with pytest.raises(NotFoundError, match="erased"):
        local.datasets.read("orders", 1)
    assert ALICE not in local.datasets.read("orders")["customer"].to_list()
    with keel.connect(live.url, token=live.token_for("viewer")) as viewer:
        with pytest.raises(PermissionDeniedError, match=r"compliance\.admin"):
            viewer.compliance.erase("bob@example.org")
        with pytest.raises(PermissionDeniedError, match=r"compliance\.admin"):
            viewer.compliance.access("bob@example.org")


def test_remote_supply_chain(live: LiveServer, local: Workspace, tmp_path: Path) -> None:
    version = local.models.register("churn", artifact=b"weights", format="onnx")
    with keel.connect(live.url, token=live.token_for("maintainer", name="user:ml")) as remote:
        info = remote.supplychain.verify("churn")
        assert info == local.supplychain.verify("churn", version.version)
        with pytest.raises(ConflictError, match="already signed"):
            remote.supplychain.sign("churn:1")
        document = remote.supplychain.bom("churn", 1)
        assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.6"
        with pytest.raises(InvalidInputError, match="no source run"):
            remote.supplychain.audit_environment("churn")
        assert remote.supplychain.quarantined() == []
        unsafe = tmp_path / "model.pkl"
        unsafe.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
        held = remote.supplychain.scan(unsafe, name="churn")
        assert held.filename == "model.pkl" and held.status == "quarantined"
        assert [q.id for q in remote.supplychain.quarantined()] == [held.id]
    client = live.client(live.token_for("maintainer", name="user:ml"))
    staged = client.post(
        "/api/v1/projects/default/uploads",
        content=b"x",
        headers={"content-type": "application/octet-stream"},
    ).json()["upload_id"]
    for name in ("../model.pkl", "a/b.pkl", ".hidden"):
        refused = client.post(
            "/api/v1/projects/default/supplychain/scan",
            json={"upload_id": staged, "filename": name},
        )
        assert refused.status_code == 400 and "base name" in refused.text
    viewer = keel.connect(live.url, token=live.token_for("viewer"))
    with viewer, pytest.raises(PermissionDeniedError):
        viewer.supplychain.scan(unsafe)


def test_a_server_that_does_not_answer_or_hangs_up_gives_a_keel_error() -> None:
    import socket
    import threading

    from keel.errors import StorageError
    from keel.workspace._http import HttpClient

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        accepted: list[socket.socket] = []

        def accept_and_stay_silent() -> None:
            conn, _ = listener.accept()
            accepted.append(conn)

        thread = threading.Thread(target=accept_and_stay_silent, daemon=True)
        thread.start()
        client = HttpClient(f"http://127.0.0.1:{port}", "token", timeout=0.5)
        try:
            with pytest.raises(StorageError, match=r"did not answer in time.*run the same command"):
                client.call("GET", "/api/v1/whoami")
        finally:
            client.close()
            thread.join(5)
            for conn in accepted:
                conn.close()
    closed = HttpClient(f"http://127.0.0.1:{port}", "token", timeout=2)
    try:
        with pytest.raises(StorageError, match="connection to the Keel server failed"):
            closed.call("GET", "/api/v1/whoami")
    finally:
        closed.close()
