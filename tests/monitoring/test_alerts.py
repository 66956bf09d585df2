"""Alert rules: states and deduplication, channels (log, webhook, Slack, SMTP), egress policy,
retries and failures that leave the alert visible, and triggers fired by alerts."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from datetime import timedelta
from typing import Any

import polars as pl
import pytest

from keel import clock
from keel.errors import AlreadyExistsError, InvalidInputError, NotFoundError, PermissionDeniedError
from keel.governance import EnvSecretProvider
from keel.lineage import Node
from keel.monitoring import SIGNATURE_HEADER, Alert, check_address
from keel.monitoring._egress import parse_url
from tests.monitoring.conftest import Deployed, Sink, traffic


def _frame(model: Any, shift: float) -> pl.DataFrame:
    inputs, predicted, _ = traffic(model, 300, shift=shift)
    return pl.DataFrame(inputs).with_columns(pl.Series("prediction", predicted))


@pytest.fixture
def monitored(deployed: Deployed) -> Deployed:
    deployed.ws.monitors.create("m", reference="customers:1", deployment=deployed.deployment)
    return deployed


def test_alerts_fire_once_resolve_and_fire_again(monitored: Deployed) -> None:
    ws, model = monitored.ws, monitored.model
    ws.monitors.add_rule("drift-high", monitor="m", metric="drift.share", threshold=0.2)
    first = ws.monitors.run("m", current=_frame(model, 3.0))
    assert [a["state"] for a in first.alerts] == ["firing"]
    ws.monitors.run("m", current=_frame(model, 3.0))  # still breached: deduplicated
    assert ws.monitors.wait_deliveries(30)
    alerts = ws.monitors.alerts(rule="drift-high")
    assert [a.state for a in alerts] == ["firing"]
    assert [(d.kind, d.event, d.status) for d in alerts[0].deliveries] == [
        ("log", "firing", "sent")
    ]
    calm = ws.monitors.run("m", current=_frame(model, 0.0))
    assert [a["state"] for a in calm.alerts] == ["resolved"]
    ws.monitors.run("m", current=_frame(model, 3.0))
    assert ws.monitors.wait_deliveries(30)
    states = [a.state for a in ws.monitors.alerts(rule="drift-high")]
    assert states == ["firing", "resolved"]
    resolved = ws.monitors.alerts(state="resolved")[0]
    assert [d.event for d in resolved.deliveries] == ["firing", "resolved"]
    assert resolved.resolved_at is not None and resolved.fired_at is not None


def test_for_duration_keeps_an_alert_pending_until_it_held_long_enough(monitored: Deployed) -> None:
    ws, model = monitored.ws, monitored.model
    ws.monitors.add_rule(
        "slow", monitor="m", metric="drift.share", threshold=0.2, for_duration="10m"
    )
    now = clock.now()
    assert [
        a["state"] for a in ws.monitors.run("m", current=_frame(model, 3.0), now=now).alerts
    ] == ["pending"]
    later = ws.monitors.run("m", current=_frame(model, 3.0), now=now + timedelta(minutes=5))
    assert [a["state"] for a in later.alerts] == ["pending"]
    fired = ws.monitors.run("m", current=_frame(model, 3.0), now=now + timedelta(minutes=11))
    assert [a["state"] for a in fired.alerts] == ["firing"]
    ws.monitors.add_rule(
        "blip", monitor="m", metric="drift.share", threshold=0.2, for_duration="1h"
    )
    ws.monitors.run("m", current=_frame(model, 3.0), now=now + timedelta(minutes=12))
    ws.monitors.run("m", current=_frame(model, 0.0), now=now + timedelta(minutes=13))
    assert ws.monitors.alerts(rule="blip") == []  # cleared before it fired: no alert stays


def test_a_rule_window_takes_the_worst_report_in_it(monitored: Deployed) -> None:
    ws, model = monitored.ws, monitored.model
    ws.monitors.add_rule("any-hour", monitor="m", metric="drift.share", threshold=0.2, window="1h")
    now = clock.now()
    ws.monitors.run("m", current=_frame(model, 3.0), now=now - timedelta(minutes=30))
    calm = ws.monitors.run("m", current=_frame(model, 0.0), now=now)
    assert calm.drift["share_drifted"] <= 0.2
    assert [a.state for a in ws.monitors.alerts(rule="any-hour")] == ["firing"]


def test_webhooks_are_signed_json(
    monitored: Deployed, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, model = monitored.ws, monitored.model
    monkeypatch.setenv(EnvSecretProvider.variable("hook-key"), "s3cret-key")
    ws.monitors.add_rule(
        "drift-high",
        monitor="m",
        metric="drift.share",
        threshold=0.2,
        channels=[
            {
                "type": "webhook",
                "url": sink.url,
                "secret": "secret://hook-key",
                "allow_private": True,
            }
        ],
    )
    report = ws.monitors.run("m", current=_frame(model, 3.0))
    assert ws.monitors.wait_deliveries(30)
    ((headers, body),) = sink.received
    expected = "sha256=" + hmac.new(b"s3cret-key", body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER.lower()] == expected
    assert headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert payload["event"] == "firing"
    assert payload["alert"]["rule"] == "drift-high" and payload["alert"]["report_id"] == report.id
    assert ws.monitors.alerts()[0].deliveries[0].status == "sent"


def test_slack_channels_get_a_text_message(monitored: Deployed, sink: Sink) -> None:
    ws, model = monitored.ws, monitored.model
    ws.monitors.add_rule(
        "drift-high",
        monitor="m",
        metric="drift.share",
        threshold=0.2,
        channels=[{"type": "slack", "url": sink.url, "allow_private": True}],
    )
    ws.monitors.run("m", current=_frame(model, 3.0))
    assert ws.monitors.wait_deliveries(30)
    ((_, body),) = sink.received
    text = json.loads(body)["text"]
    assert text.startswith("[FIRING] drift-high on monitor m")


def test_the_egress_policy_refuses_private_targets_unless_allowed(
    monitored: Deployed, sink: Sink
) -> None:
    ws, model = monitored.ws, monitored.model
    ws.monitors.add_rule(
        "drift-high",
        monitor="m",
        metric="drift.share",
        threshold=0.2,
        channels=[{"type": "webhook", "url": sink.url}],
    )
    ws.monitors.run("m", current=_frame(model, 3.0))
    assert ws.monitors.wait_deliveries(30)
    alert = ws.monitors.alerts()[0]
    assert alert.state == "firing"  # the alert stays visible
    delivery = alert.deliveries[0]
    assert delivery.status == "failed" and delivery.attempts == 1
    assert "loopback" in (delivery.error or "") and "allow_private" in (delivery.error or "")
    assert sink.received == []
    for address in (
        "10.0.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "::ffff:127.0.0.1",
        "fd00::1",
    ):
        assert check_address(address, allow_private=False) is not None, address
    assert check_address("8.8.8.8", allow_private=False) is None
    assert check_address("0.0.0.0", allow_private=True) is not None  # noqa: S104
    with pytest.raises(InvalidInputError, match="scheme"):
        parse_url("file:///etc/passwd", allow_private=True)
    with pytest.raises(PermissionDeniedError, match="egress"):
        parse_url("http://localhost:9/x", allow_private=False)


def test_a_failing_target_is_retried_then_marked_failed(monitored: Deployed, sink: Sink) -> None:
    ws, model = monitored.ws, monitored.model
    sink.status = 500
    ws.monitors.add_rule(
        "drift-high",
        monitor="m",
        metric="drift.share",
        threshold=0.2,
        channels=[
            {
                "type": "webhook",
                "url": sink.url,
                "allow_private": True,
                "retries": 3,
                "backoff": 0.01,
            },
            {"type": "log"},
        ],
    )
    ws.monitors.run("m", current=_frame(model, 3.0))
    assert ws.monitors.wait_deliveries(60)
    assert len(sink.received) == 3
    alert = ws.monitors.alerts()[0]
    assert alert.state == "firing"
    by_kind = {d.kind: d for d in alert.deliveries}
    assert (by_kind["webhook"].status, by_kind["webhook"].attempts) == ("failed", 3)
    assert "HTTP 500" in (by_kind["webhook"].error or "")
    assert by_kind["log"].status == "sent"  # one failing channel does not stop the others


def test_a_target_that_times_out_never_holds_up_the_run(monitored: Deployed, sink: Sink) -> None:
    ws, model = monitored.ws, monitored.model
    sink.delay = 3.0
    ws.monitors.add_rule(
        "drift-high",
        monitor="m",
        metric="drift.share",
        threshold=0.2,
        channels=[
            {
                "type": "webhook",
                "url": sink.url,
                "allow_private": True,
                "timeout": 1.0,
                "retries": 2,
                "backoff": 0.0,
            }
        ],
    )
    report = ws.monitors.run("m", current=_frame(model, 3.0))
    assert [a["state"] for a in report.alerts] == ["firing"]
    assert ws.monitors.alerts()[0].deliveries[0].status == "pending"  # still being sent
    assert ws.monitors.wait_deliveries(60)
    delivery = ws.monitors.alerts()[0].deliveries[0]
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    assert "timed out" in (delivery.error or "").lower()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_email_goes_through_an_smtp_server(monitored: Deployed) -> None:
    from aiosmtpd.controller import Controller

    ws, model = monitored.ws, monitored.model
    messages: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            messages.append(envelope.content)
            return "250 Message accepted"

    port = _free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        ws.monitors.add_rule(
            "drift-high",
            monitor="m",
            metric="drift.share",
            threshold=0.2,
            channels=[
                {
                    "type": "email",
                    "to": ["ops@example.com"],
                    "host": "127.0.0.1",
                    "port": port,
                    "sender": "keel@example.com",
                    "allow_private": True,
                }
            ],
        )
        ws.monitors.run("m", current=_frame(model, 3.0))
        assert ws.monitors.wait_deliveries(30)
    finally:
        controller.stop()
    (message,) = messages
    text = message.decode()
    assert "Subject: [FIRING] drift-high on monitor m" in text
    assert "To: ops@example.com" in text
    assert ws.monitors.alerts()[0].deliveries[0].status == "sent"


def test_a_firing_alert_fires_alert_triggers_with_its_cause(monitored: Deployed) -> None:
    ws, model = monitored.ws, monitored.model
    ws.pipelines.create_trigger(
        "retrain", pipeline="retrain", kind="alert", spec={"rule": "drift-high"}
    )
    ws.pipelines.create_trigger(
        "other", pipeline="retrain", kind="alert", spec={"rule": "unrelated"}
    )
    seen: list[tuple[Alert, list[Any]]] = []
    ws.monitors.on_fire(lambda ctx, alert, firings: seen.append((alert, firings)))
    ws.monitors.add_rule("drift-high", monitor="m", metric="drift.share", threshold=0.2)
    ws.monitors.run("m", current=_frame(model, 3.0))
    ws.monitors.run("m", current=_frame(model, 3.0))  # the same alert fires its triggers once
    firings = ws.pipelines.firings()
    assert [f.trigger for f in firings] == ["retrain"]
    alert = ws.monitors.alerts()[0]
    assert firings[0].cause["event"] == alert.id and firings[0].cause["monitor"] == "m"
    assert len(seen) == 1 and seen[0][0].id == alert.id and seen[0][1][0].id == firings[0].id
    graph = ws.lineage.graph(Node("alert", alert.id), direction="both")
    relations = {
        (e.upstream.type, e.downstream.type, e.relation) for e in graph.upstream + graph.downstream
    }
    assert ("monitor_report", "alert", "raised") in relations
    assert ("alert", "trigger", "fired") in relations


def test_rule_mistakes_are_explained(monitored: Deployed) -> None:
    ws = monitored.ws
    with pytest.raises(NotFoundError, match="create it first"):
        ws.monitors.add_rule("r", monitor="nope", metric="drift.share", threshold=0.1)
    with pytest.raises(InvalidInputError, match="comparison"):
        ws.monitors.add_rule("r", monitor="m", metric="drift.share", threshold=0.1, comparison="!=")
    with pytest.raises(InvalidInputError, match="secret reference"):
        ws.monitors.add_rule(
            "r",
            monitor="m",
            metric="drift.share",
            threshold=0.1,
            channels=[{"type": "webhook", "url": "https://example.com", "secret": "plain"}],
        )
    with pytest.raises(InvalidInputError, match="Unknown field"):
        ws.monitors.add_rule(
            "r",
            monitor="m",
            metric="drift.share",
            threshold=0.1,
            channels=[{"type": "log", "x": 1}],
        )
    with pytest.raises(InvalidInputError, match="'to'"):
        ws.monitors.add_rule(
            "r",
            monitor="m",
            metric="drift.share",
            threshold=0.1,
            channels=[{"type": "email", "host": "smtp.example.com"}],
        )
    ws.monitors.add_rule("r", monitor="m", metric="quality.accuracy", threshold=0.8, comparison="<")
    with pytest.raises(AlreadyExistsError):
        ws.monitors.add_rule("r", monitor="m", metric="drift.share", threshold=0.1)
    assert [r.name for r in ws.monitors.rules(monitor="m")] == ["r"]
    ws.monitors.delete_rule("r")
    assert ws.monitors.rules() == []
