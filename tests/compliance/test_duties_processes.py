"""Erasures in processes of their own: one killed outright (SIGKILL) is resumed by running
it again; two of the same subject at once run it once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from keel.errors import NotFoundError
from keel.workspace import connect
from tests.compliance._helpers import ALICE, orders, setup_orders
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]

#: Runs an erasure in a process of its own, which kills itself with SIGKILL (nothing can
#: clean up) once the named step has advanced ``count`` times.
KILLED_ERASURE = """
import os, signal, sys
from pathlib import Path
from keel.workspace import connect
from tests.conftest import make_settings

home, db, subject, step, count = sys.argv[1:6]
ws = connect(settings=make_settings(Path(home), db), principal="user:tester")
seen = []

def die(what, done, total):
    if what == step:
        seen.append(done)
        if len(seen) >= int(count):
            os.kill(os.getpid(), signal.SIGKILL)

ws.compliance.erase(subject, progress=die)
print("not killed")
"""


def _kill_midway(home: Path, backend: str, step: str, count: int) -> None:
    done = subprocess.run(
        [sys.executable, "-c", KILLED_ERASURE, str(home), backend, ALICE, step, str(count)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == -9, (done.returncode, done.stdout, done.stderr[-2000:])


@pytest.mark.parametrize(("step", "count"), [("rewrite", 3), ("shred", 1)])
def test_an_erasure_killed_by_sigkill_is_resumed_at_once_by_running_it_again(
    backend: str, tmp_path: Path, step: str, count: int
) -> None:
    home = tmp_path / "home"
    with connect(settings=make_settings(home, backend), principal="user:tester") as ws:
        setup_orders(ws)  # orders v1, v2 (shares v1's part), both hold alice
        ws.datasets.ingest("orders", orders("zed@example.org", ALICE), mode="append")  # v3
        ws.datasets.ingest("tickets", orders(ALICE, "yan@example.org"))
        ws.compliance.declare(
            "tickets", purpose="support", lawful_basis="contract", subject_column="customer"
        )

    _kill_midway(home, backend, step, count)

    with connect(settings=make_settings(home, backend), principal="user:tester") as ws:
        (pending,) = ws.compliance.erasures()
        assert pending.state == "running"
        # the killed process could not give its claim up; it is gone, so this takes over
        report = ws.compliance.erase(ALICE)
        assert report.id == pending.id and report.state == "done"
        assert [(v.dataset, v.version, v.rows_removed, v.replaced_by) for v in report.versions] == [
            ("orders", 1, 2, None),
            ("orders", 2, 2, None),
            ("orders", 3, 3, 4),
            ("tickets", 1, 1, 2),
        ]
        # one replacement each, written once (found again when resuming)
        assert ws.datasets.get("orders").versions == 4
        assert ws.datasets.get("tickets").versions == 2
        assert ws.datasets.get("orders").tags == {"latest": 4}
        assert sorted(ws.datasets.read("orders")["customer"].to_list()) == [
            "bob@example.org",
            "carol@example.org",
            "dave@example.org",
            "zed@example.org",
        ]
        assert ws.datasets.read("tickets")["customer"].to_list() == ["yan@example.org"]
        for dataset, number in (("orders", 1), ("orders", 2), ("orders", 3), ("tickets", 1)):
            with pytest.raises(NotFoundError, match="erased"):
                ws.datasets.read(dataset, number)
        # every part that held the subject is gone, whichever run destroyed it
        assert sum(report.parts.values()) == 3
        assert report.parts["deleted"] == 0
        if step == "shred":  # the killed run destroyed one; the report says so
            assert report.parts["absent"] == 1
            assert any("already gone" in note for note in report.notes)
        assert ws.compliance.locate(ALICE) == []
        again = ws.compliance.erase(ALICE)  # idempotent: nothing left
        assert again.versions == () and "nothing to erase" in again.notes[0]
        assert [e.state for e in ws.compliance.erasures()] == ["done", "done"]
        every = pl.concat([ws.datasets.read("orders"), ws.datasets.read("tickets")], how="vertical")
        assert ALICE not in every["customer"].to_list()


def test_a_running_erasure_of_a_live_process_is_still_refused(backend: str, tmp_path: Path) -> None:
    from keel.errors import ConflictError

    home = tmp_path / "home"
    with connect(settings=make_settings(home, backend), principal="user:tester") as ws:
        setup_orders(ws)
        refused: list[str] = []

        def retry_meanwhile(what: str, done: int, total: int) -> None:
            if what == "rewrite" and not refused:
                with pytest.raises(ConflictError) as caught:
                    ws.compliance.erase(ALICE)
                refused.append(str(caught.value))

        report = ws.compliance.erase(ALICE, progress=retry_meanwhile)
        assert report.state == "done"
        (message,) = refused
        assert "process" in message and "claimed until" in message
        assert "run the same command again" in message


#: Erases the subject and prints the outcome as JSON (a conflict is an outcome too).
ERASE = """
import json, sys
from pathlib import Path
from keel.errors import ConflictError
from keel.workspace import connect
from tests.conftest import make_settings

home, db, subject = sys.argv[1:4]
with connect(settings=make_settings(Path(home), db), principal="user:tester") as ws:
    try:
        report = ws.compliance.erase(subject)
        print(json.dumps({"id": report.id, "versions": len(report.versions)}))
    except ConflictError as exc:
        print(json.dumps({"conflict": exc.details.get("erasure_id"), "message": str(exc)[:600]}))
"""


def test_two_erasures_of_one_subject_at_once_run_it_once(backend: str, tmp_path: Path) -> None:
    import json

    home = tmp_path / "home"
    with connect(settings=make_settings(home, backend), principal="user:tester") as ws:
        setup_orders(ws)
        for name in ("tickets", "visits", "invoices"):
            ws.datasets.ingest(name, orders(ALICE, f"{name}@example.org"))
            ws.compliance.declare(
                name, purpose="p", lawful_basis="contract", subject_column="customer"
            )
    command = [sys.executable, "-c", ERASE, str(home), backend, ALICE]
    both = [
        subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outcomes, messages = [], []
    for process in both:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
        outcome = json.loads(out.strip().splitlines()[-1])
        messages.append(outcome.pop("message", ""))  # shown when an assertion fails
        outcomes.append(outcome)
    with connect(settings=make_settings(home, backend), principal="user:tester") as ws:
        done = [e for e in ws.compliance.erasures() if e.versions]
        # whichever came second was refused (it named the running erasure) or, if it came
        # after the first had finished, found nothing left to erase
        assert len(done) == 1, (outcomes, [(e.id, e.state, len(e.versions)) for e in done])
        (erasure,) = done
        for outcome in outcomes:
            assert (
                outcome
                in (
                    {"id": erasure.id, "versions": 5},
                    {"conflict": erasure.id},
                )
                or outcome.get("versions") == 0
            ), (outcomes, messages)
        assert {"id": erasure.id, "versions": 5} in outcomes
        assert all(e.state == "done" for e in ws.compliance.erasures())
        # each affected version replaced once
        assert ws.datasets.get("orders").versions == 3
        for name in ("tickets", "visits", "invoices"):
            assert ws.datasets.get(name).versions == 2
            assert ws.datasets.read(name)["customer"].to_list() == [f"{name}@example.org"]
        assert ws.compliance.locate(ALICE) == []


def test_two_processes_creating_the_index_secret_at_once_agree_on_one(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keel import clock
    from keel.store import ErasureRepository
    from keel.store._schema_compliance import SubjectSecretRow

    home = tmp_path / "home"
    with (
        connect(settings=make_settings(home, backend), principal="user:tester") as ws,
        connect(settings=make_settings(home, backend), principal="user:tester") as other,
    ):
        setup_orders(ws)
        read, raced = ErasureRepository.secret, []

        def read_then_the_other_creates_it(self: ErasureRepository) -> str | None:
            found = read(self)
            if not raced:
                raced.append([])
                raced[0] = other.compliance.locate(ALICE)  # the other creates its secret
            return found

        def insert_as_if_none_existed(self: ErasureRepository, digest: str) -> str:
            # this process checked before the other committed: its insert collides
            self._session.add(
                SubjectSecretRow(
                    project_id=ws.ctx.project_id, digest=digest, created_at=clock.now()
                )
            )
            self._session.flush()
            return digest

        monkeypatch.setattr(ErasureRepository, "secret", read_then_the_other_creates_it)
        with monkeypatch.context() as patch:
            patch.setattr(ErasureRepository, "set_secret", insert_as_if_none_existed)
            found = ws.compliance.locate(ALICE)
        assert [(f.dataset, f.version) for f in found] == [("orders", 1), ("orders", 2)]
        assert [(f.dataset, f.version) for f in raced[0]] == [("orders", 1), ("orders", 2)]
        # one secret: both processes hash the subject alike
        assert (
            ws.compliance.erase(ALICE, dry_run=True).subject
            == other.compliance.erase(ALICE, dry_run=True).subject
        )
