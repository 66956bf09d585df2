"""``keel deploy`` / ``keel deployments`` through the real CLI, and the generated manifests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from keel.serving._kubernetes import KubernetesTarget, render_manifests
from keel.workspace import Workspace


def keel(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEEL_HOME": str(home), "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "keel.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"keel {' '.join(args)} failed: {result.stderr}")
    return result


def test_deploy_canary_promote_rollback_and_manifests(served_ws: Workspace, tmp_path: Path) -> None:
    from keel.workspace import local_principal

    served_ws.projects.grant(local_principal(), "owner")
    home = served_ws.settings.home
    out = tmp_path / "k8s"
    first = json.loads(
        keel(
            home,
            "deploy",
            "churn@champion",
            "--env",
            "production",
            "--target",
            "kubernetes",
            "--out",
            str(out),
            "--json",
        ).stdout
    )
    assert first["name"] == "churn-production" and first["primary"] == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "Dockerfile",
        "deployment.yaml",
        "hpa.yaml",
        "service.yaml",
    ]
    canary = json.loads(
        keel(
            home,
            "deploy",
            "churn@challenger",
            "--env",
            "production",
            "--strategy",
            "canary",
            "--steps",
            "10,50,100",
            "--json",
        ).stdout
    )
    assert (canary["phase"], canary["weight"], canary["candidate"]) == ("rolling", 0.1, 2)
    text = keel(home, "deployments", "status", "churn-production").stdout
    assert "90% v1 / 10% v2" in text
    promoted = json.loads(keel(home, "deployments", "promote", "churn-production", "--json").stdout)
    assert promoted["weight"] == 0.5
    back = json.loads(
        keel(home, "deployments", "rollback", "churn-production", "--reason", "x", "--json").stdout
    )
    assert (back["phase"], back["candidate"], back["primary"]) == ("rolled_back", None, 1)
    listed = json.loads(keel(home, "deployments", "list", "--json").stdout)
    assert [d["name"] for d in listed] == ["churn-production"]
    shown = json.loads(keel(home, "deployments", "show", "churn-production", "--json").stdout)
    assert [r["action"] for r in shown["revisions"]] == ["deploy", "deploy", "promote", "rollback"]
    bad = keel(home, "deploy", "churn@champion", "--env", "qa", check=False)
    assert bad.returncode == 2 and "Unknown environment 'qa'" in bad.stderr + bad.stdout
    missing = keel(home, "deployments", "show", "nope", check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr + missing.stdout


@pytest.mark.parametrize("name", ["deployment.yaml", "service.yaml", "hpa.yaml"])
def test_manifests_validate_against_the_kubernetes_schemas(name: str) -> None:
    import kubernetes_validate

    manifest = render_manifests(KubernetesTarget("churn-production"))[name]
    kubernetes_validate.validate(
        yaml.safe_load(yaml.safe_dump(manifest)), kubernetes_validate.latest_version(), strict=True
    )
    if name == "deployment.yaml":
        container = manifest["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert "--deployment" in container["args"]


def test_an_invalid_manifest_is_caught_by_the_validator() -> None:
    import kubernetes_validate

    manifest = render_manifests(KubernetesTarget("churn"))["hpa.yaml"]
    manifest["spec"]["maxReplicas"] = "ten"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)
