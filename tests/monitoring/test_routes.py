"""The REST routes of monitoring, over a real server on the deployed model's store."""

from __future__ import annotations

from tests.monitoring.conftest import Deployed, log_predictions, traffic
from tests.server._live import live_server


def test_monitoring_over_rest(deployed: Deployed) -> None:
    ws = deployed.ws
    inputs, predicted, truth = traffic(deployed.model, 200, shift=2.0)
    ids = log_predictions(ws, deployed.deployment, inputs, predicted)
    base = "/api/v1/projects/default"
    ws.projects.grant("user:owner", "owner")  # the live server sets up tokens as this owner
    with live_server(ws.settings.home) as live:
        client = live.client(live.token_for("contributor"))
        made = client.post(
            f"{base}/monitors",
            json={
                "name": "churn",
                "reference": "customers:1",
                "deployment": deployed.deployment,
                "target": "label",
                "window": "count:1000",
            },
        )
        assert made.status_code == 201, made.text
        bad = client.post(f"{base}/monitors", json={"name": "x", "reference": "customers:1"})
        assert bad.status_code == 400 and "exactly one" in bad.text
        labels = [{"prediction_id": i, "label": t} for i, t in zip(ids, truth, strict=True)]
        stored = client.post(f"{base}/labels", json={"labels": [*labels, {"prediction_id": "z"}]})
        assert stored.status_code == 200
        assert (stored.json()["stored"], stored.json()["invalid"]) == (200, 1)
        rule = client.post(
            f"{base}/alert-rules",
            json={
                "name": "drift-high",
                "monitor": "churn",
                "metric": "drift.share",
                "threshold": 0.2,
            },
        )
        assert rule.status_code == 201, rule.text
        run = client.post(f"{base}/monitors/churn/run", json={})
        assert run.status_code == 200, run.text
        report = run.json()
        assert report["status"] == "drift" and report["quality"]["coverage"] == 1.0
        listed = client.get(f"{base}/monitors/churn/reports").json()
        assert [r["id"] for r in listed] == [report["id"]]
        one = client.get(f"{base}/monitors/churn/reports/{report['id']}")
        assert one.json()["drift"] == report["drift"]
        page = client.get(f"{base}/monitors/churn/report.html")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "Monitor churn" in page.text
        alerts = client.get(f"{base}/alerts", params={"state": "firing"}).json()
        assert [a["rule"] for a in alerts] == ["drift-high"]
        viewer = live.client(live.token_for("viewer"))
        assert viewer.get(f"{base}/monitors/churn").status_code == 200
        assert viewer.post(f"{base}/monitors/churn/run", json={}).status_code == 403
        assert client.delete(f"{base}/alert-rules/drift-high").status_code == 200
        assert client.delete(f"{base}/monitors/churn").status_code == 200
        assert client.get(f"{base}/monitors/churn").status_code == 404
