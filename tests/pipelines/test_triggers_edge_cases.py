"""Edge cases of triggers, on SQLite and the real PostgreSQL: cron as Vixie cron reads it (five
fields, UTC), catch-up after an outage, one firing per event under concurrent deliveries, and
commit webhooks that delete a branch or name a repository in other letter case. Leases and
replicas: test_scheduler_leases.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from keel.errors import InvalidInputError
from keel.pipelines import Pipeline, Scheduler, handle_webhook, next_fire_time
from keel.pipelines._triggers import check_cron
from keel.store import TriggerRepository
from keel.workspace import Workspace
from tests.pipelines import _steps
from tests.pipelines._trigger_steps import wait_until

SECRET = "It's a Secret to Everybody"
START = datetime(2025, 1, 1, tzinfo=UTC)  # a Wednesday


def _occurrences(cron: str, count: int, start: datetime = START) -> list[str]:
    found, moment = [], start
    for _ in range(count):
        moment = next_fire_time(cron, moment)
        found.append(moment.strftime("%a %Y-%m-%d %H:%M"))
    return found


# -- cron -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("0 3 * * * *", "it has 6 fields, not five (no seconds, no years)"),
        ("* * * * * *", "it has 6 fields"),
        ("0 3 * * * 2030", "it has 6 fields"),
        ("0 3 * *", "it has 4 fields"),
        ("5-1 * * * *", "the minute range '5-1' runs backwards"),
        ("0 3 * * SAT-SUN", "runs backwards; write low-high (7 is Sunday too)"),
        ("5/10 * * * *", "'5/10' steps from one minute; write '5-59/10'"),
        ("*/0 * * * *", "the minute step '0' is not 1-60"),
        ("61 * * * *", "the minute 61 is outside 0-59"),
        ("0 24 * * *", "the hour 24 is outside 0-23"),
        ("0 3 0 * *", "the day of month 0 is outside 1-31"),
        ("0 3 * * MONDAY", "the day of week 'MONDAY' is not a number or a name (SUN-SAT)"),
        ("0 3 * MON *", "the month 'MON' is not a number or a name (JAN-DEC)"),
        ("0 3 L * *", "the day of month 'L' is not a number"),
        ("0 3 ? * *", "has characters other than digits, names and * , - /"),
        ("0 3 * * 5#2", "has characters other than digits"),
        ("1,,2 * * * *", "the minute '' is not a number"),
        ("@reboot", "@reboot is not a schedule"),
        ("soon", "it has 1 field"),
        ("", "not a non-empty string"),
    ],
)
def test_cron_refuses_what_vixie_cron_refuses_and_says_why(cron: str, problem: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_cron(cron)
    message = str(caught.value)
    assert message.startswith(f"{cron!r} is not a cron expression: ")
    assert problem in message
    assert "Write five fields, minute hour day-of-month month day-of-week, in UTC" in message


def test_a_six_field_schedule_is_refused_not_run_every_second(local_ws: Workspace) -> None:
    # croniter reads a sixth field as seconds: '0 3 * * * *' fired 60 times at 03:00
    with pytest.raises(InvalidInputError, match="it has 6 fields"):
        local_ws.pipelines.create_trigger(
            "six", pipeline="arith", kind="schedule", spec={"cron": "0 3 * * * *"}
        )
    assert local_ws.pipelines.triggers() == []


def test_a_schedule_that_never_occurs_is_invalid_input(local_ws: Workspace) -> None:
    for cron in ("0 0 30 2 *", "0 0 31 4 *"):
        with pytest.raises(InvalidInputError, match="it never occurs"):
            local_ws.pipelines.create_trigger(
                "never", pipeline="arith", kind="schedule", spec={"cron": cron}
            )
    assert _occurrences("0 0 29 2 *", 2) == ["Tue 2028-02-29 00:00", "Sun 2032-02-29 00:00"]


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        # both day fields restricted: a day matching either fires (Vixie's OR)
        ("0 3 13 * FRI", ["Fri 2025-01-03 03:00", "Fri 2025-01-10 03:00", "Mon 2025-01-13 03:00"]),
        ("0 3 1,15 * 0", ["Wed 2025-01-01 03:00", "Sun 2025-01-05 03:00", "Sun 2025-01-12 03:00"]),
        # a day field starting with '*' is unrestricted: the other one decides (Vixie's AND)
        ("0 3 */2 * MON", ["Mon 2025-01-13 03:00", "Mon 2025-01-27 03:00", "Mon 2025-02-03 03:00"]),
        ("0 3 1 * */1", ["Wed 2025-01-01 03:00", "Sat 2025-02-01 03:00", "Sat 2025-03-01 03:00"]),
        # names, ranges, steps, lists, Sunday as 7, macros
        ("30 9 * JAN-FEB MON-FRI", ["Wed 2025-01-01 09:30", "Thu 2025-01-02 09:30"]),
        ("0 3 * * 1-5/2", ["Wed 2025-01-01 03:00", "Fri 2025-01-03 03:00", "Mon 2025-01-06 03:00"]),
        ("0 3 * * 5-7", ["Fri 2025-01-03 03:00", "Sat 2025-01-04 03:00", "Sun 2025-01-05 03:00"]),
        ("*/20 1 * * *", ["Wed 2025-01-01 01:00", "Wed 2025-01-01 01:20"]),
        ("@daily", ["Thu 2025-01-02 00:00", "Fri 2025-01-03 00:00"]),
        ("@weekly", ["Sun 2025-01-05 00:00", "Sun 2025-01-12 00:00"]),
        ("@HOURLY", ["Wed 2025-01-01 01:00", "Wed 2025-01-01 02:00"]),
    ],
)
def test_cron_day_fields_and_syntax_follow_vixie_cron(cron: str, expected: list[str]) -> None:
    assert _occurrences(cron, len(expected)) == expected


def test_next_fire_time_is_in_utc_whatever_zone_it_is_given() -> None:
    berlin = datetime(2025, 3, 30, 0, 0, tzinfo=ZoneInfo("Europe/Berlin"))  # 29 Mar 23:00 UTC
    found = next_fire_time("0 3 * * *", berlin)
    assert found == datetime(2025, 3, 30, 3, 0, tzinfo=UTC)
    assert found.utcoffset() == timedelta(0)
    naive = next_fire_time("0 3 * * *", datetime(2025, 3, 30, 0, 0))  # naive is UTC
    assert naive == datetime(2025, 3, 30, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "day", "due"),
    [
        ("30 2 * * *", "2025-03-30", "2025-03-30T02:30:00+00:00"),  # Europe springs forward
        ("30 1 * * *", "2025-10-26", "2025-10-26T01:30:00+00:00"),  # Europe falls back
        ("30 2 * * *", "2025-03-09", "2025-03-09T02:30:00+00:00"),  # the US springs forward
        ("30 1 * * *", "2025-11-02", "2025-11-02T01:30:00+00:00"),  # the US falls back
    ],
)
def test_a_schedule_fires_once_on_a_daylight_saving_day(
    local_ws: Workspace, cron: str, day: str, due: str
) -> None:
    """Schedules are in UTC: no clock change skips or repeats an occurrence."""
    local_ws.pipelines.create_trigger("dst", pipeline="arith", kind="schedule", spec={"cron": cron})
    midnight = datetime.fromisoformat(day).replace(tzinfo=UTC)
    _move_schedule(local_ws, "dst", next_fire_time(cron, midnight))
    triggers = local_ws.pipelines.service.triggers
    fired = []
    for quarter in range(4 * 24):  # a tick every quarter of an hour, all day
        fired += triggers.record_due(local_ws.ctx, midnight + timedelta(minutes=15 * quarter))
    assert [f.due_at.isoformat() for f in fired] == [due]
    assert "missed" not in fired[0].cause


def _move_schedule(ws: Workspace, name: str, when: datetime) -> None:
    """Make a schedule next due at ``when``, as if no scheduler had run since then."""
    with ws._governor.db.write() as session:
        row = TriggerRepository(session, ws.ctx.project_id).get_by_name(name)
        assert row is not None
        row.next_fire_at = when


def test_a_schedule_spec_takes_no_time_zone_and_a_commit_spec_no_misspelt_key(
    local_ws: Workspace,
) -> None:
    pipelines = local_ws.pipelines
    with pytest.raises(InvalidInputError) as caught:
        pipelines.create_trigger(
            "berlin",
            pipeline="arith",
            kind="schedule",
            spec={"cron": "30 2 * * *", "timezone": "Europe/Berlin"},
        )
    assert str(caught.value) == (
        "A schedule trigger's spec takes cron; unknown: timezone. Schedules are in UTC: write "
        "the time in UTC."
    )
    with pytest.raises(InvalidInputError, match="takes repository, branch; unknown: branches"):
        pipelines.create_trigger(
            "push",
            pipeline="arith",
            kind="commit",
            spec={"repository": "acme/ml", "branches": "main"},  # would watch every branch
        )
    with pytest.raises(InvalidInputError, match="branch is a name"):
        pipelines.create_trigger(
            "push", pipeline="arith", kind="commit", spec={"repository": "a/b", "branch": 1}
        )
    assert pipelines.triggers() == []


# -- catch-up ---------------------------------------------------------------------------------


def test_after_a_long_outage_only_the_latest_occurrence_fires_once(local_ws: Workspace) -> None:
    """20 days down with an every-minute schedule: one firing, for the latest minute."""
    pipelines = local_ws.pipelines
    trigger = pipelines.create_trigger(
        "often", pipeline="arith", kind="schedule", spec={"cron": "* * * * *"}
    )
    assert trigger.next_fire_at is not None
    triggers = pipelines.service.triggers
    back = trigger.next_fire_at + timedelta(days=20, seconds=30)
    (fired,) = triggers.record_due(local_ws.ctx, back)
    latest = back.replace(second=0)
    assert fired.due_at == latest
    assert fired.cause["scheduled_for"] == latest.isoformat()
    assert fired.cause["missed"] == 1000 and fired.cause["missed_more"] is True
    assert fired.cause["missed_since"] == trigger.next_fire_at.isoformat()
    (row,) = pipelines.triggers()
    assert row.next_fire_at == latest + timedelta(minutes=1)
    # the next ticks (seconds apart) fire nothing more until the next minute
    assert triggers.record_due(local_ws.ctx, back + timedelta(seconds=5)) == []
    assert triggers.record_due(local_ws.ctx, back + timedelta(seconds=25)) == []
    (following,) = triggers.record_due(local_ws.ctx, back + timedelta(seconds=31))
    assert following.due_at == latest + timedelta(minutes=1)
    assert "missed" not in following.cause
    assert len(pipelines.firings(trigger="often")) == 2


def test_a_short_outage_counts_each_missed_occurrence(local_ws: Workspace) -> None:
    trigger = local_ws.pipelines.create_trigger(
        "hourly", pipeline="arith", kind="schedule", spec={"cron": "@hourly"}
    )
    assert trigger.next_fire_at is not None
    triggers = local_ws.pipelines.service.triggers
    (fired,) = triggers.record_due(local_ws.ctx, trigger.next_fire_at + timedelta(hours=5))
    assert fired.due_at == trigger.next_fire_at + timedelta(hours=5)
    assert fired.cause["missed"] == 5 and "missed_more" not in fired.cause


def test_a_stored_schedule_that_no_longer_parses_fails_once_and_stops(
    local_ws: Workspace,
) -> None:
    """A schedule stored before the parser refused it does not block the other schedules."""
    pipelines = local_ws.pipelines
    pipelines.create_trigger("good", pipeline="arith", kind="schedule", spec={"cron": "@hourly"})
    pipelines.create_trigger("old", pipeline="arith", kind="schedule", spec={"cron": "@hourly"})
    with local_ws._governor.db.write() as session:
        row = TriggerRepository(session, local_ws.ctx.project_id).get_by_name("old")
        assert row is not None
        row.spec = {"cron": "0 3 * * * *"}
    (good,) = [t for t in pipelines.triggers() if t.name == "good"]
    assert good.next_fire_at is not None
    later = good.next_fire_at + timedelta(minutes=1)
    fired = pipelines.service.triggers.record_due(local_ws.ctx, later)
    assert sorted(f.trigger for f in fired) == ["good", "old"]
    (broken,) = pipelines.firings(trigger="old")
    assert broken.status == "failed" and broken.error is not None
    assert broken.error.startswith("'0 3 * * * *' is not a cron expression: it has 6 fields")
    assert "off until the trigger is replaced" in broken.error
    (old,) = [t for t in pipelines.triggers() if t.name == "old"]
    assert old.next_fire_at is None
    assert pipelines.service.triggers.record_due(local_ws.ctx, later + timedelta(days=1)) != []
    assert len(pipelines.firings(trigger="old")) == 1
    assert Scheduler(pipelines.service, local_ws.ctx, resolve=_arith).tick(later) != []
    assert pipelines.firings(trigger="old")[0].status == "failed"  # never claimed nor run


def _arith(name: str) -> Pipeline:
    assert name == "arith"
    return _steps.arith


# -- events -----------------------------------------------------------------------------------


def test_a_caller_cannot_pass_for_another_kind_or_person_in_the_cause(
    local_ws: Workspace,
) -> None:
    pipelines = local_ws.pipelines
    pipelines.create_trigger("on-d", pipeline="arith", kind="dataset", spec={"dataset": "d"})
    manual = pipelines.fire("on-d", cause={"by": "user:ceo", "kind": "schedule", "why": "x"})
    assert manual.cause == {"why": "x", "kind": "manual", "by": "user:tester"}
    (event,) = pipelines.fire_event(
        "dataset", "d", event_id="d@1", details={"kind": "manual", "subject": "e", "version": 1}
    )
    assert event.cause == {"kind": "dataset", "subject": "d", "event": "d@1", "version": 1}
    outcomes = Scheduler(pipelines.service, local_ws.ctx, resolve=_arith).tick()
    runs = {o.firing.id: pipelines.get(o.pipeline_run_id) for o in outcomes if o.pipeline_run_id}
    assert runs[manual.id].trigger == "manual" and runs[manual.id].cause["by"] == "user:tester"
    assert runs[event.id].trigger == "dataset"


def test_versions_landing_together_fire_once_each(ws: Workspace) -> None:
    pipelines = ws.pipelines
    pipelines.create_trigger(
        "on-churn", pipeline="arith", kind="dataset", spec={"dataset": "churn"}
    )
    barrier = threading.Barrier(3)
    fired: list[str] = []
    errors: list[BaseException] = []

    def publish(version: int) -> None:
        barrier.wait()
        try:
            for found in pipelines.fire_event("dataset", "churn", event_id=f"churn@{version}"):
                fired.append(found.cause["event"])
        except BaseException as exc:  # asserted below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(v,)) for v in (7, 8, 8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(fired) == ["churn@7", "churn@8"]
    outcomes = Scheduler(pipelines.service, ws.ctx, resolve=_arith).tick()
    assert sorted(o.firing.cause["event"] for o in outcomes) == ["churn@7", "churn@8"]
    assert all(o.status == "done" for o in outcomes)
    assert pipelines.fire_event("dataset", "churn", event_id="churn@8") == []


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # SQLite serialises writers
def test_a_delivery_racing_the_same_event_fires_nothing_and_raises_nothing(
    ws: Workspace, backend: str
) -> None:
    """On PostgreSQL the second of two concurrent deliveries blocks on the first one's unique
    key, then fails it: that means "recorded already", not a ConflictError for the caller."""
    pipelines = ws.pipelines
    trigger = pipelines.create_trigger(
        "on-d", pipeline="arith", kind="dataset", spec={"dataset": "d"}
    )
    pipelines.create_trigger("on-d-too", pipeline="arith", kind="dataset", spec={"dataset": "d"})
    engine = create_engine(backend)
    result: dict[str, Any] = {}

    def second() -> None:
        try:
            result["fired"] = pipelines.fire_event("dataset", "d", event_id="d@1")
        except BaseException as exc:  # asserted below
            result["error"] = exc

    try:
        with engine.connect() as first:
            # the first delivery: recorded, not committed yet
            first.execute(
                text(
                    "INSERT INTO trigger_firings (id, project_id, trigger_id, dedupe_key, due_at,"
                    " cause, status, created_at) VALUES ('01FIRSTDELIVERY00000000000', :p, :t,"
                    " 'dataset:d@1', now(), '{}', 'pending', now())"
                ),
                {"p": ws.ctx.project_id, "t": trigger.id},
            )
            thread = threading.Thread(target=second)
            thread.start()
            with engine.connect() as watch:
                wait_until(
                    "the second delivery to wait on the first one's key",
                    lambda: watch.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            "current_database() AND wait_event_type = 'Lock'"
                        )
                    ).scalar(),
                )
            first.commit()
        thread.join(timeout=120)
    finally:
        engine.dispose()
    assert "error" not in result, result.get("error")
    assert [f.trigger for f in result["fired"]] == ["on-d-too"]  # the other trigger still fires
    assert sorted(f.trigger for f in pipelines.firings()) == ["on-d", "on-d-too"]


# -- webhooks ---------------------------------------------------------------------------------


def _github(body: bytes, event: str = "push", delivery: str = "d-1") -> dict[str, str]:
    mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": event,
        "X-Hub-Signature-256": f"sha256={mac}",
        "X-GitHub-Delivery": delivery,
    }


def _deliver(ws: Workspace, provider: str, headers: dict[str, str], body: bytes) -> Any:
    return handle_webhook(
        ws.pipelines.service.triggers,
        ws.ctx,
        provider=provider,
        headers=headers,
        body=body,
        secret=SECRET,
    )


def test_a_push_that_deletes_a_branch_or_tag_runs_nothing(ws: Workspace) -> None:
    ws.pipelines.create_trigger(
        "any-push", pipeline="arith", kind="commit", spec={"repository": "acme/ml"}
    )
    deleted = {
        "ref": "refs/heads/feature",
        "before": "a" * 40,
        "after": "0" * 40,
        "deleted": True,
        "repository": {"full_name": "acme/ml"},
    }
    body = json.dumps(deleted).encode()
    github = _deliver(ws, "github", _github(body), body)
    assert (github.status, github.message, github.firings) == (
        200,
        "The push deletes a branch or tag; nothing to run.",
        [],
    )
    tag = json.dumps(
        {
            "ref": "refs/tags/v1",
            "after": "0" * 40,
            "checkout_sha": None,
            "project": {"path_with_namespace": "acme/ml"},
        }
    ).encode()
    headers = {"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Token": SECRET}
    gitlab = _deliver(ws, "gitlab", headers, tag)
    assert (gitlab.status, gitlab.firings) == (200, [])
    assert ws.pipelines.firings() == []


def test_a_push_fires_whatever_the_letter_case_of_the_repository(ws: Workspace) -> None:
    ws.pipelines.create_trigger(
        "on-push",
        pipeline="arith",
        kind="commit",
        spec={"repository": "acme/churn-model", "branch": "main"},
    )
    push = {
        "ref": "refs/heads/main",
        "after": "b" * 40,
        "repository": {"full_name": "Acme/Churn-Model"},
    }
    body = json.dumps(push).encode()
    first = _deliver(ws, "github", _github(body, delivery="72d3162e"), body)
    assert first.status == 202 and [f.trigger for f in first.firings] == ["on-push"]
    assert first.firings[0].cause["delivery"] == "72d3162e"
    replayed = _deliver(ws, "github", _github(body, delivery="72d3162e"), body)  # redelivered
    assert (replayed.status, replayed.firings) == (202, [])
    other_branch = json.dumps({**push, "ref": "refs/heads/Main", "after": "c" * 40}).encode()
    assert _deliver(ws, "github", _github(other_branch), other_branch).firings == []
    opened = b'{"action": "opened"}'
    issue = _deliver(ws, "github", _github(opened, "issues"), opened)
    assert (issue.status, issue.message) == (200, "Not a push event; nothing to do.")
    assert len(ws.pipelines.firings()) == 1


def test_publishing_a_dataset_version_fires_its_dataset_triggers(local_ws: Workspace) -> None:
    # before: the docs said a published version fires ("churn", event_id="churn@7"), but
    # nothing in Keel called fire_event: dataset triggers fired only when a caller did
    import polars as pl

    pipelines = local_ws.pipelines
    pipelines.create_trigger(
        "on-churn", pipeline="arith", kind="dataset", spec={"dataset": "churn"}
    )
    version = local_ws.datasets.ingest("churn", pl.DataFrame({"x": [1, 2, 3]}))
    assert pipelines.firings(trigger="on-churn") == []  # ingested, not published yet
    local_ws.datasets.validate("churn", [{"kind": "not_null", "column": "x"}])
    local_ws.datasets.publish("churn")
    [firing] = pipelines.firings(trigger="on-churn")
    assert firing.cause["event"] == f"churn@{version.version}"
    assert firing.cause["version"] == version.version
    local_ws.datasets.publish("churn")  # published again: the same version fires nothing new
    assert len(pipelines.firings(trigger="on-churn")) == 1
    outcomes = Scheduler(pipelines.service, local_ws.ctx, resolve=_arith).tick()
    assert [o.status for o in outcomes] == ["done"]
