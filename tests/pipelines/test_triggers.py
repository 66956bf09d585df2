"""Triggers and the scheduler: each firing recorded once with its cause, run by one replica."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from keel.errors import AlreadyExistsError, InvalidInputError
from keel.pipelines import (
    Pipeline,
    Scheduler,
    handle_webhook,
    next_fire_time,
    verify_github_signature,
    verify_gitlab_token,
)
from keel.workspace import Workspace, connect
from tests.conftest import make_settings
from tests.pipelines import _steps

SECRET = "It's a Secret to Everybody"


def _resolve(name: str) -> Pipeline:
    assert name == "arith"
    return _steps.arith


def test_schedule_triggers_validate_cron_and_compute_next_time(local_ws: Workspace) -> None:
    with pytest.raises(InvalidInputError, match="not a cron expression"):
        local_ws.pipelines.create_trigger(
            "bad", pipeline="arith", kind="schedule", spec={"cron": "soon"}
        )
    trigger = local_ws.pipelines.create_trigger(
        "nightly", pipeline="arith", kind="schedule", spec={"cron": "0 3 * * *"}, params={"n": 3}
    )
    assert trigger.next_fire_at is not None and trigger.next_fire_at.hour == 3
    assert next_fire_time("*/15 * * * *", trigger.created_at).minute % 15 == 0
    with pytest.raises(AlreadyExistsError):
        local_ws.pipelines.create_trigger(
            "nightly", pipeline="arith", kind="schedule", spec={"cron": "0 3 * * *"}
        )
    with pytest.raises(InvalidInputError, match="needs spec"):
        local_ws.pipelines.create_trigger("d", pipeline="arith", kind="dataset")


def test_a_scheduled_firing_runs_the_pipeline_and_records_its_cause(local_ws: Workspace) -> None:
    trigger = local_ws.pipelines.create_trigger(
        "every-minute",
        pipeline="arith",
        kind="schedule",
        spec={"cron": "* * * * *"},
        params={"n": 3},
    )
    assert trigger.next_fire_at is not None
    scheduler = Scheduler(local_ws.pipelines.service, local_ws.ctx, resolve=_resolve, owner="a")
    assert scheduler.tick(now=trigger.next_fire_at - timedelta(seconds=1)) == []
    (outcome,) = scheduler.tick(now=trigger.next_fire_at + timedelta(minutes=3, seconds=5))
    assert outcome.status == "done" and outcome.pipeline_run_id is not None
    run = local_ws.pipelines.get(outcome.pipeline_run_id)
    assert run.trigger == "schedule"
    assert run.cause is not None and run.cause["trigger"] == "every-minute"
    assert run.cause["missed"] == 3  # missed occurrences are not replayed, only counted
    assert run.params["source"]["n"] == 3
    (firing,) = local_ws.pipelines.firings(trigger="every-minute")
    assert firing.status == "done" and firing.pipeline_run_id == run.id


def test_events_fire_matching_triggers_once_per_event(local_ws: Workspace) -> None:
    pipelines = local_ws.pipelines
    pipelines.create_trigger(
        "on-churn", pipeline="arith", kind="dataset", spec={"dataset": "churn"}
    )
    pipelines.create_trigger(
        "on-other", pipeline="arith", kind="dataset", spec={"dataset": "other"}
    )
    pipelines.create_trigger("on-drift", pipeline="arith", kind="alert", spec={"rule": "drift"})
    fired = pipelines.fire_event("dataset", "churn", event_id="churn@7", details={"version": 7})
    assert [f.trigger for f in fired] == ["on-churn"]
    assert fired[0].cause == {
        "kind": "dataset",
        "subject": "churn",
        "event": "churn@7",
        "version": 7,
    }
    assert pipelines.fire_event("dataset", "churn", event_id="churn@7") == []  # redelivered
    assert [f.trigger for f in pipelines.fire_event("alert", "drift", event_id="A1")] == [
        "on-drift"
    ]
    manual = pipelines.fire("on-other", cause={"reason": "backfill"})
    assert manual.cause["kind"] == "manual" and manual.cause["reason"] == "backfill"
    scheduler = Scheduler(pipelines.service, local_ws.ctx, resolve=_resolve)
    outcomes = scheduler.tick()
    assert sorted(o.firing.trigger for o in outcomes) == ["on-churn", "on-drift", "on-other"]
    assert {pipelines.get(o.pipeline_run_id).trigger for o in outcomes if o.pipeline_run_id} == {
        "dataset",
        "alert",
        "manual",
    }
    assert scheduler.tick() == []


@pytest.fixture
def replicas(backend: str, tmp_path: Path) -> Iterator[tuple[Workspace, Workspace]]:
    """Two workspaces with their own engines on one store: two scheduler replicas."""
    settings = make_settings(tmp_path / "home", backend)
    first = connect(settings=settings, principal="user:tester")
    second = connect(settings=settings, principal="user:tester")
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def test_two_replicas_fire_each_occurrence_once(replicas: tuple[Workspace, Workspace]) -> None:
    one, two = replicas
    trigger = one.pipelines.create_trigger(
        "often", pipeline="arith", kind="schedule", spec={"cron": "* * * * *"}, params={"n": 2}
    )
    one.pipelines.create_trigger("on-data", pipeline="arith", kind="dataset", spec={"dataset": "d"})
    assert trigger.next_fire_at is not None
    schedulers = [
        Scheduler(ws.pipelines.service, ws.ctx, resolve=_resolve, owner=name)
        for ws, name in ((one, "replica-1"), (two, "replica-2"))
    ]
    ran: dict[str, list[str]] = {"replica-1": [], "replica-2": []}
    for minute in range(4):
        now = trigger.next_fire_at + timedelta(minutes=minute, seconds=1)
        one.pipelines.fire_event("dataset", "d", event_id=f"d@{minute}")
        barrier = threading.Barrier(2)

        def tick(scheduler: Scheduler, moment=now, barrier=barrier) -> None:
            barrier.wait()
            for outcome in scheduler.tick(now=moment):
                ran[scheduler.owner].append(outcome.firing.id)

        threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    firings = one.pipelines.firings(limit=100)
    assert len(firings) == 8  # 4 schedule occurrences + 4 dataset events
    assert all(f.status == "done" for f in firings)
    everything = ran["replica-1"] + ran["replica-2"]
    assert sorted(everything) == sorted(f.id for f in firings)  # each ran exactly once
    runs = one.pipelines.runs(pipeline="arith", limit=100)
    assert len(runs) == 8
    assert {f.pipeline_run_id for f in firings} == {r.id for r in runs}


def _github(body: bytes, secret: str = SECRET) -> dict[str, str]:
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-GitHub-Event": "push", "X-Hub-Signature-256": f"sha256={mac}"}


def test_github_signature_verification() -> None:
    body = b"Hello, World!"
    # The example from GitHub's documentation on validating webhook deliveries.
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert verify_github_signature(SECRET, body, expected)
    assert not verify_github_signature(SECRET, body + b" ", expected)
    assert not verify_github_signature("other secret", body, expected)
    assert not verify_github_signature(SECRET, body, expected.replace("sha256=", "sha1="))
    assert not verify_github_signature(SECRET, body, None)
    assert not verify_github_signature("", body, expected)
    assert verify_gitlab_token("tok", "tok") and not verify_gitlab_token("tok", "tok2")
    assert not verify_gitlab_token("tok", None) and not verify_gitlab_token("", "")


def test_webhooks_fire_commit_triggers_only_when_verified(local_ws: Workspace) -> None:
    pipelines = local_ws.pipelines
    pipelines.create_trigger(
        "on-push", pipeline="arith", kind="commit", spec={"repository": "acme/ml", "branch": "main"}
    )
    service = pipelines.service.triggers
    push = {"ref": "refs/heads/main", "after": "a" * 40, "repository": {"full_name": "acme/ml"}}
    body = json.dumps(push).encode()
    bad = handle_webhook(
        service,
        local_ws.ctx,
        provider="github",
        headers=_github(body, "wrong"),
        body=body,
        secret=SECRET,
    )
    assert bad.status == 401 and bad.firings == []
    tampered = handle_webhook(
        service,
        local_ws.ctx,
        provider="github",
        headers=_github(body),
        body=body + b" ",
        secret=SECRET,
    )
    assert tampered.status == 401
    ok = handle_webhook(
        service, local_ws.ctx, provider="github", headers=_github(body), body=body, secret=SECRET
    )
    assert ok.status == 202 and [f.trigger for f in ok.firings] == ["on-push"]
    assert ok.firings[0].cause["commit"] == "a" * 40 and ok.firings[0].cause["branch"] == "main"
    again = handle_webhook(
        service, local_ws.ctx, provider="github", headers=_github(body), body=body, secret=SECRET
    )
    assert again.status == 202 and again.firings == []  # a redelivery fires nothing new
    other_branch = json.dumps({**push, "ref": "refs/heads/dev", "after": "b" * 40}).encode()
    dev = handle_webhook(
        service,
        local_ws.ctx,
        provider="github",
        headers=_github(other_branch),
        body=other_branch,
        secret=SECRET,
    )
    assert dev.status == 202 and dev.firings == []
    ping = handle_webhook(
        service,
        local_ws.ctx,
        provider="github",
        headers={**_github(b"{}"), "X-GitHub-Event": "ping"},
        body=b"{}",
        secret=SECRET,
    )
    assert ping.status == 200
    junk = b"[1, 2"
    assert (
        handle_webhook(
            service,
            local_ws.ctx,
            provider="github",
            headers=_github(junk),
            body=junk,
            secret=SECRET,
        ).status
        == 400
    )
    gitlab = json.dumps(
        {
            "ref": "refs/heads/main",
            "checkout_sha": "c" * 40,
            "project": {"path_with_namespace": "acme/ml"},
        }
    ).encode()
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET}
    lab = handle_webhook(
        service, local_ws.ctx, provider="gitlab", headers=headers, body=gitlab, secret=SECRET
    )
    assert lab.status == 202 and len(lab.firings) == 1
    wrong = handle_webhook(
        service,
        local_ws.ctx,
        provider="gitlab",
        headers={**headers, "X-Gitlab-Token": "nope"},
        body=gitlab,
        secret=SECRET,
    )
    assert wrong.status == 401
    huge = b"x" * (1024 * 1024 + 1)
    assert (
        handle_webhook(
            service,
            local_ws.ctx,
            provider="github",
            headers=_github(huge),
            body=huge,
            secret=SECRET,
        ).status
        == 413
    )
