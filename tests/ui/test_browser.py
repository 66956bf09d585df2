"""The web UI in a real browser (Debian's Chromium driven by playwright).

Signs in, compares runs (the curves are drawn by uPlot under the strict CSP), opens the lineage
graph and clicks through it, rolls a deployment back through its confirmation page, and checks
that a script in a run name stays text. Screenshots of the main pages go to test-artifacts/ui/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server._live import LiveServer
from tests.ui._world import XSS, World

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).parents[2] / "test-artifacts" / "ui"
BASE = "/ui/p/default"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium package (.ci/run installs it)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        made = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        try:
            yield made
        finally:
            made.close()


@pytest.fixture
def page(browser: Any, live: LiveServer) -> Iterator[Any]:
    """A signed-in maintainer's tab; fails the test on any CSP violation or script error."""
    context = browser.new_context(base_url=live.url, viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    tab.on(
        "console",
        lambda msg: problems.append(msg.text) if msg.type == "error" else None,
    )
    tab.on("dialog", lambda dialog: problems.append(f"a dialog opened: {dialog.message}"))
    tab.goto("/ui/")
    assert "/ui/login" in tab.url
    tab.fill("input[name=token]", live.token_for("maintainer"))
    tab.click("button[type=submit]")
    tab.wait_for_url("**/ui/p/default/experiments")
    try:
        yield tab
    finally:
        context.close()
    assert problems == [], problems


def _shot(tab: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_compare_runs_draws_overlaid_curves(page: Any, world: World) -> None:
    page.goto(f"{BASE}/runs?experiment=churn")
    _shot(page, "runs")
    page.fill("input[name=filter]", "metrics.auc > 0.91")  # htmx swaps the table in place
    page.click("button:has-text('Search')")
    page.wait_for_url("**filter=metrics.auc*")
    page.wait_for_function("() => document.querySelectorAll('table.runs tbody tr').length === 1")
    assert "run-3" in page.locator("table.runs tbody").inner_text()
    page.goto(f"{BASE}/runs?experiment=churn")
    for run_id in world.runs[:3]:
        page.check(f"input[name=run][value='{run_id}']")
    page.click("text=Compare selected")
    page.wait_for_url("**/compare?**")
    page.wait_for_selector("div.chart[data-drawn='1'] canvas")
    assert page.locator("table.compare thead th").count() == 4
    assert page.locator("tr.differs").count() >= 2  # lr and depth differ
    _shot(page, "compare")


def test_lineage_click_through(page: Any, world: World) -> None:
    page.goto(f"{BASE}/runs/{world.runs[0]}")
    _shot(page, "run")
    page.click("main a:text-is('lineage')")
    page.wait_for_selector("svg.lineage g.node")
    assert page.locator("svg.lineage g.node").count() >= 5
    _shot(page, "lineage")
    page.locator("svg.lineage g.t-deployment a").first.click()
    page.wait_for_url("**/deployments/churn-api")
    assert page.locator("h1").inner_text() == "Deployment churn-api"


def test_roll_back_a_deployment(page: Any, live: LiveServer) -> None:
    page.goto(f"{BASE}/deployments/churn-api")
    _shot(page, "deployment")
    page.click("text=Roll back…")
    page.wait_for_url("**/rollback")
    page.fill("input[name=reason]", "latency regression")
    page.click("button:has-text('Roll back now')")  # refused by the browser: not confirmed
    assert page.url.endswith("/rollback")
    page.check("input[name=confirm]")
    page.click("button:has-text('Roll back now')")
    page.wait_for_url("**/deployments/churn-api?done=rollback")
    assert "latency regression" in page.locator("table").last.inner_text()
    events = live.services.audit.events(
        __import__("keel.store", fromlist=["AuditQuery"]).AuditQuery(action="deployment.rollback")
    )
    assert events and events[-1].principal == "user:maintainer-default"


def test_a_script_in_a_run_name_is_text(page: Any, world: World) -> None:
    page.goto(f"{BASE}/runs/{world.xss_run}")
    assert page.locator("h1").inner_text() == f"Run {XSS}"
    assert page.locator("main img").count() == 0
    assert page.evaluate("() => document.querySelectorAll('main script:not([type])').length") == 0


def test_screenshots_of_the_main_pages(page: Any, world: World) -> None:
    for name, url in [
        ("experiments", "/experiments"),
        ("dataset-version", "/datasets/loans/v/1"),
        ("validation-report", f"/datasets/loans/reports/{world.failing_report}"),
        ("models", "/models/churn-model"),
        ("model-version", "/models/churn-model/v/2"),
        ("monitoring", "/monitoring"),
        ("monitor", "/monitoring/monitors/churn-drift"),
        ("policies", "/governance/policies"),
    ]:
        page.goto(BASE + url)
        assert page.locator("h1").count() == 1, url
        _shot(page, name)
        assert (SHOTS / f"{name}.png").stat().st_size > 1_000, name


def test_a_bad_filter_shows_its_message_in_place(browser: Any, live: LiveServer) -> None:
    """htmx swaps the 400 answer of a bad filter in (htmx 2 swaps no 4xx by default)."""
    context = browser.new_context(base_url=live.url)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and "status of 400" not in msg.text
            else None
        ),
    )
    try:
        tab.goto("/ui/login")
        tab.fill("input[name=token]", live.token_for("viewer"))
        tab.click("button[type=submit]")
        tab.wait_for_url("**/ui/p/default/experiments")
        tab.goto(f"{BASE}/runs?experiment=churn")
        assert tab.locator("table.runs tbody tr").count() >= 1
        tab.fill("input[name=filter]", "metrics.auc >>> 1")
        tab.click("button:has-text('Search')")
        tab.wait_for_selector("#runs p.error[role=alert]")
        assert tab.locator("#runs p.error").inner_text().strip() != ""
        assert tab.locator("#runs input[name=filter]").input_value() == "metrics.auc >>> 1"
    finally:
        context.close()
    assert errors == [], errors
