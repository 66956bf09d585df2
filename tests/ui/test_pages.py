"""The web UI over HTTP: sign-in, escaping, CSRF, roles, CSP, and every page rendering."""

from __future__ import annotations

from pathlib import Path

import pytest
from markupsafe import escape
from sqlalchemy import func, select

from keel.store._schema import AuditEventRow
from keel.ui._web import CSP
from tests.server._live import LiveServer
from tests.ui._world import XSS, World
from tests.ui.conftest import csrf_of, sign_in

BASE = "/ui/p/default"


def _pages(world: World) -> list[str]:
    runs = "&".join(f"run={r}" for r in world.runs)
    return [
        "/experiments",
        "/runs",
        f"/runs/{world.runs[0]}",
        f"/compare?{runs}",
        "/datasets",
        "/datasets/loans",
        "/datasets/loans/v/1",
        f"/datasets/loans/reports/{world.failing_report}",
        "/datasets/loans/diff?before=1&after=2",
        "/lineage",
        f"/lineage?node=run:{world.runs[0]}",
        "/models",
        "/models/churn-model",
        "/models/churn-model/v/2",
        "/deployments",
        "/deployments/churn-api",
        "/monitoring",
        "/monitoring/deployments/churn-api",
        "/monitoring/monitors/churn-drift",
        "/governance/policies",
        "/governance/approvals",
    ]


def test_anonymous_callers_are_sent_to_the_login_form(live: LiveServer) -> None:
    client = live.client(follow_redirects=False)
    answer = client.get(f"{BASE}/runs?filter=x")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/ui/login?next=%2Fui%2Fp%2Fdefault%2Fruns")
    assert client.get("/ui/").headers["location"] == "/ui/login"


def test_a_wrong_token_is_refused_and_a_good_one_opens_a_session(live: LiveServer) -> None:
    client = live.client(follow_redirects=False)
    form = client.get("/ui/login")
    wrong = client.post(
        "/ui/login",
        data={"token": "keel_nope", "csrf": csrf_of(form.text)},
        headers={"origin": live.url},
    )
    assert wrong.status_code == 401 and "Authentication failed" in wrong.text
    assert "keel_session" not in client.cookies
    good = sign_in(live, live.token_for("viewer"))
    cookie = next(c for c in good.cookies.jar if c.name == "keel_session")
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.path == "/ui"
    landing = good.get("/ui/", follow_redirects=True)
    assert landing.status_code == 200 and "Experiments" in landing.text


def test_the_session_cookie_is_strict_and_http_only(live: LiveServer) -> None:
    client = live.client(follow_redirects=False)
    form = client.get("/ui/login")
    answer = client.post(
        "/ui/login",
        data={"token": live.token_for("viewer"), "csrf": csrf_of(form.text)},
        headers={"origin": live.url},
    )
    header = next(
        v
        for k, v in answer.headers.multi_items()
        if k == "set-cookie" and v.startswith("keel_session=")
    )
    assert "HttpOnly" in header and "SameSite=strict" in header.replace("Strict", "strict")
    assert "Secure" not in header  # plain HTTP here; TLS turns Secure on


def test_login_without_the_form_token_is_refused(live: LiveServer) -> None:
    client = live.client(follow_redirects=False)
    answer = client.post(
        "/ui/login",
        data={"token": live.token_for("viewer"), "csrf": "forged"},
        headers={"origin": live.url},
    )
    assert answer.status_code == 403 and "keel_session" not in client.cookies


def test_every_page_renders_with_a_strict_csp(live: LiveServer, world: World) -> None:
    client = sign_in(live, live.token_for("auditor"))
    for page in [*_pages(world), "/governance/audit"]:
        answer = client.get(BASE + page)
        assert answer.status_code == 200, f"{page}: {answer.status_code} {answer.text[:300]}"
        assert answer.headers["content-security-policy"] == CSP
        assert len(answer.headers.get_list("content-security-policy")) == 1
        assert "script-src 'self'" in CSP and "unsafe" not in CSP
        assert "<script>" not in answer.text.replace('<script type="application/json"', "")


def test_a_script_in_a_run_name_is_shown_as_text(live: LiveServer, world: World) -> None:
    client = sign_in(live, live.token_for("viewer"))
    for page in ("/runs", f"/runs/{world.xss_run}", f"/compare?run={world.xss_run}"):
        text = client.get(BASE + page).text
        assert XSS not in text, page
        assert str(escape(XSS)) in text, page


def test_a_bad_filter_is_explained_on_the_page(live: LiveServer) -> None:
    client = sign_in(live, live.token_for("viewer"))
    answer = client.get(f"{BASE}/runs", params={"filter": "metrics.auc >>> 1"})
    assert answer.status_code == 400 and 'class="error"' in answer.text
    found = client.get(
        f"{BASE}/runs", params={"filter": "metrics.auc > 0.9", "order": "metrics.auc DESC"}
    )
    assert found.status_code == 200 and "run-3" in found.text and "run-0" not in found.text


def test_comparison_is_bounded(live: LiveServer, world: World) -> None:
    client = sign_in(live, live.token_for("viewer"))
    many = "&".join(f"run=r{i}" for i in range(21))
    answer = client.get(f"{BASE}/compare?{many}")
    assert answer.status_code == 400 and "At most 20 runs" in answer.text


def _audit_count(live: LiveServer, action: str) -> int:
    with live.services.governor.db.read() as session:
        stmt = select(func.count()).where(AuditEventRow.action == action)
        stmt = stmt.where(AuditEventRow.outcome == "success")
        return int(session.execute(stmt).scalar_one())


def test_a_viewer_sees_no_rollback_button_and_is_refused_anyway(live: LiveServer) -> None:
    client = sign_in(live, live.token_for("viewer"))
    page = client.get(f"{BASE}/deployments/churn-api")
    assert page.status_code == 200 and "Roll back" not in page.text
    confirm = client.get(f"{BASE}/deployments/churn-api/rollback")
    assert "may not roll back" in confirm.text and 'name="confirm"' not in confirm.text
    csrf = csrf_of(client.get(f"{BASE}/runs").text)
    before = _audit_count(live, "deployment.rollback")
    refused = client.post(
        f"{BASE}/deployments/churn-api/rollback",
        data={"csrf": csrf, "confirm": "yes"},
        headers={"origin": live.url},
    )
    assert refused.status_code == 403
    assert _audit_count(live, "deployment.rollback") == before


def test_a_state_change_without_the_csrf_token_is_refused(live: LiveServer) -> None:
    client = sign_in(live, live.token_for("maintainer"))
    before = live.services.deployments.get(live.context_in("default"), "churn-api").revision
    for data in ({"confirm": "yes"}, {"confirm": "yes", "csrf": "stale"}):
        answer = client.post(
            f"{BASE}/deployments/churn-api/rollback", data=data, headers={"origin": live.url}
        )
        assert answer.status_code == 403 and "CSRF" in answer.text
    after = live.services.deployments.get(live.context_in("default"), "churn-api").revision
    assert after == before


def test_a_form_from_another_origin_is_refused_by_the_guard(live: LiveServer) -> None:
    client = sign_in(live, live.token_for("maintainer"))
    csrf = csrf_of(client.get(f"{BASE}/runs").text)
    answer = client.post(
        f"{BASE}/deployments/churn-api/rollback",
        data={"csrf": csrf, "confirm": "yes"},
        headers={"origin": "https://evil.example"},
    )
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "CROSS_ORIGIN"


def test_the_api_still_refuses_form_posts(live: LiveServer) -> None:
    answer = live.client(live.admin_token).post(
        "/api/v1/projects/default/experiments", data={"name": "x"}
    )
    assert answer.status_code == 415


@pytest.mark.parametrize("role", ["viewer", "auditor", "contributor"])
def test_only_roles_that_may_see_the_audit_log_get_it(live: LiveServer, role: str) -> None:
    client = sign_in(live, live.token_for(role))
    answer = client.get(f"{BASE}/governance/audit")
    assert answer.status_code == (200 if role == "auditor" else 403)
    nav = client.get(f"{BASE}/governance/policies").text
    assert ("Audit log" in nav) == (role == "auditor")


def test_signing_out_ends_the_session(live: LiveServer) -> None:
    client = sign_in(live, live.token_for("viewer"))
    csrf = csrf_of(client.get(f"{BASE}/runs").text)
    out = client.post(f"{BASE}/logout", data={"csrf": csrf}, headers={"origin": live.url})
    assert out.status_code == 303
    again = client.get(f"{BASE}/runs")
    assert again.status_code == 303 and again.headers["location"].startswith("/ui/login")


def test_a_revoked_token_ends_its_session(live: LiveServer) -> None:
    issued = live.services.identity.create_token(
        live.operator, role="viewer", principal="user:viewer-default", project="default", days=1
    )
    client = sign_in(live, issued.secret)
    assert client.get(f"{BASE}/runs").status_code == 200
    live.services.identity.revoke_token(live.operator, issued.token.id)
    assert client.get(f"{BASE}/runs").status_code == 303


def test_a_maintainer_rolls_back_and_the_rollback_is_audited(live: LiveServer) -> None:
    client = sign_in(live, live.token_for("maintainer"))
    page = client.get(f"{BASE}/deployments/churn-api")
    assert "Roll back" in page.text
    csrf = csrf_of(client.get(f"{BASE}/deployments/churn-api/rollback").text)
    unconfirmed = client.post(
        f"{BASE}/deployments/churn-api/rollback", data={"csrf": csrf}, headers={"origin": live.url}
    )
    assert unconfirmed.status_code == 400
    before = _audit_count(live, "deployment.rollback")
    done = client.post(
        f"{BASE}/deployments/churn-api/rollback",
        data={"csrf": csrf, "confirm": "yes", "reason": "bad <b>latency</b>"},
        headers={"origin": live.url},
    )
    assert done.status_code == 303
    assert _audit_count(live, "deployment.rollback") == before + 1
    state = live.services.deployments.get(live.context_in("default"), "churn-api").state
    assert state.primary == 1
    revisions = client.get(f"{BASE}/deployments/churn-api").text
    assert "bad &lt;b&gt;latency&lt;/b&gt;" in revisions


def test_the_ml_bom_downloads(live: LiveServer) -> None:
    client = sign_in(live, live.token_for("viewer"))
    answer = client.get(f"{BASE}/models/churn-model/v/1/ml-bom.json")
    assert answer.status_code == 200 and "attachment" in answer.headers["content-disposition"]
    assert answer.json()["bomFormat"] == "CycloneDX"


def test_another_projects_pages_are_refused(live: LiveServer) -> None:
    live.context_in("other")
    client = sign_in(live, live.token_for("viewer"))
    answer = client.get("/ui/p/other/runs")
    assert answer.status_code == 403


def test_the_monitor_page_shows_drift_histograms_and_the_alert(live: LiveServer) -> None:
    client = sign_in(live, live.token_for("viewer"))
    page = client.get(f"{BASE}/monitoring/monitors/churn-drift").text
    assert page.count('class="bar s1"') >= 4 * 10  # current-window bars of every feature
    assert 'f0 <span class="badge bad">drift</span>' in page
    assert 'id="drift-chart"' in page  # two reports: a history chart
    overview = client.get(f"{BASE}/monitoring").text
    assert "churn-drift" in overview and "drift-high" in overview and "firing" in overview


@pytest.mark.parametrize("role", ["maintainer", "admin"])
def test_erasures_are_for_compliance_administrators(live: LiveServer, role: str) -> None:
    client = sign_in(live, live.token_for(role))
    answer = client.get(f"{BASE}/governance/erasures")
    assert answer.status_code == (200 if role == "admin" else 403)
    nav = client.get(f"{BASE}/governance/approvals").text
    assert ("Erasures" in nav) == (role == "admin")


def test_a_malformed_query_is_a_400_page(live: LiveServer) -> None:
    client = sign_in(live, live.token_for("viewer"))
    answer = client.get(f"{BASE}/runs", params={"size": "many"})
    assert answer.status_code == 400 and "Invalid request" in answer.text
    assert answer.headers["content-type"].startswith("text/html")


def test_the_audit_page_verifies_the_chain_only_on_request(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = sign_in(live, live.token_for("auditor"))
    audit = live.services.audit
    walks: list[int] = []
    real = audit.verify

    def counted() -> object:
        walks.append(1)
        return real()

    monkeypatch.setattr(audit, "verify", counted)
    page = client.get(f"{BASE}/governance/audit?action=run.create")
    assert page.status_code == 200 and "Verify chain" in page.text
    assert "Hash chain verified" not in page.text and walks == []
    checked = client.get(f"{BASE}/governance/audit?action=run.create&verify=1")
    assert checked.status_code == 200 and "Hash chain verified" in checked.text
    assert walks == [1]


def test_lineage_links_sources_to_their_dataset(live: LiveServer, tmp_path: Path) -> None:
    from keel.lineage import Node
    from keel.workspace import connect

    csv = tmp_path / "people.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    with connect(settings=live.settings, principal="user:owner") as ws:
        version = ws.datasets.ingest("people", csv)
        graph = ws.lineage.graph(Node("dataset_version", version.id), depth=1, direction="up")
    sources = [e.upstream for e in graph.upstream if e.upstream.type == "source"]
    assert sources, graph
    client = sign_in(live, live.token_for("viewer"))
    page = client.get(f"{BASE}/lineage", params={"node": f"source:{sources[0].id}"}).text
    assert f'href="{BASE}/datasets/people"' in page
    assert "source csv" in page and "people.csv" in page
    assert f'href="{BASE}/datasets/people/v/1"' in page


def test_lineage_links_prediction_logs_to_their_deployment(live: LiveServer) -> None:
    from keel.lineage import LineageService, Node

    deployment = live.services.deployments.get(live.context_in("default"), "churn-api")
    ctx = live.context_in("default")
    with live.services.governor.db.write() as session:
        LineageService.link(
            session,
            ctx,
            Node("deployment", deployment.id),
            Node("prediction_log", "log-1"),
            "logged",
        )
    client = sign_in(live, live.token_for("viewer"))
    page = client.get(f"{BASE}/lineage", params={"node": "prediction_log:log-1"}).text
    assert "prediction log of churn-api" in page
    assert f'href="{BASE}/monitoring/deployments/churn-api"' in page


@pytest.mark.parametrize("name", ["résumé-模型.txt", 'odd "quoted"; name.txt', "plain.txt"])
def test_artifacts_with_any_name_download(live: LiveServer, name: str) -> None:
    from urllib.parse import quote, unquote

    from keel.workspace import connect

    with (
        connect(settings=live.settings, principal="user:owner") as ws,
        ws.runs.start(experiment="downloads", capture_env=False) as run,
    ):
        ws.runs._s.log_bytes(ws.ctx, run.id, b"payload", name=name)
    client = sign_in(live, live.token_for("viewer"))
    answer = client.get(f"{BASE}/runs/{run.id}/artifacts/{quote(name)}")
    assert answer.status_code == 200 and answer.content == b"payload"
    disposition = answer.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="')
    encoded = disposition.split("filename*=UTF-8''", 1)[1]
    assert unquote(encoded) == name
    disposition.encode("ascii")  # the header itself stays ASCII


def test_a_prediction_page_traces_it_to_the_run_and_dataset(live: LiveServer) -> None:
    from keel import clock
    from keel.serving._predlog import _to_table
    from keel.serving._service import ServiceLogSink
    from keel.types import new_id

    ctx = live.context_in("default")
    pid = new_id() + "-2"
    row = (
        pid,
        "churn-api",
        "churn-model",
        2,
        "primary",
        "r-9",
        clock.now(),
        2.5,
        '{"x0": 1.5}',
        "1",
    )
    ServiceLogSink(live.services.deployments, ctx).write_batch("churn-api", pid, _to_table([row]))
    client = sign_in(live, live.token_for("viewer"))
    found = client.get(f"{BASE}/predictions", params={"id": f" {pid} "})
    assert found.status_code == 303 and found.headers["location"] == f"{BASE}/predictions/{pid}"
    page = client.get(f"{BASE}/predictions/{pid}")
    assert page.status_code == 200
    text = page.text
    assert f"<h1>Prediction {pid}</h1>" in text
    revision = live.services.deployments.get(ctx, "churn-api").revision  # other tests move it
    assert "churn-model:2 (primary)" in text and f"churn-api, revision {revision} (" in text
    assert "{&#34;x0&#34;: 1.5}" in text or '{"x0": 1.5}' in text
    assert "none yet" in text  # no label stored
    assert 'data-node="model_version:' in text and 'data-node="run:' in text
    assert 'data-node="dataset_version:' in text  # the run read the loans dataset
    assert "prediction log of churn-api" in text
    bad = client.get(f"{BASE}/predictions/not-an-id")
    assert bad.status_code == 400 and "is not a prediction id" in bad.text
    missing = client.get(f"{BASE}/predictions/{new_id()}")
    assert missing.status_code == 404 and "No logged prediction" in missing.text
    start = client.get(f"{BASE}/lineage").text
    assert f'action="{BASE}/predictions"' in start  # the trace form on the lineage page
