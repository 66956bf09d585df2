"""Supply chain: real modelscan/fickling scans, quarantine, skops signing, ML-BOM, pip-audit."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from keel.errors import IntegrityError, InvalidInputError
from keel.governance import build_ml_bom, scan_file, validate_bom
from keel.governance._mlbom import parse_pip_audit
from keel.workspace import Workspace


class _Exploit:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, ("echo pwned > /tmp/keel-should-never-exist",))


@pytest.fixture
def malicious(tmp_path: Path) -> Path:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(_Exploit()))
    return path


@pytest.fixture
def benign(tmp_path: Path) -> Path:
    path = tmp_path / "weights.pkl"
    path.write_bytes(pickle.dumps({"weights": [0.1, 0.2], "bias": 1.0}))
    return path


def test_malicious_pickle_is_rejected_by_both_scanners(malicious: Path) -> None:
    report = scan_file(malicious)
    assert report.verdict == "rejected"
    assert report.exit_codes["modelscan"] != 0 and report.exit_codes["fickling"] != 0
    tools = {f["tool"] for f in report.findings}
    assert tools == {"modelscan", "fickling"}
    assert any("system" in f["detail"] for f in report.findings)
    assert not Path("/tmp/keel-should-never-exist").exists()


def test_benign_pickle_is_clean(benign: Path) -> None:
    report = scan_file(benign)
    assert report.is_clean and report.files_scanned == 1 and report.findings == ()


def test_a_joblib_model_that_the_scanners_cannot_read_is_rejected(tmp_path: Path) -> None:
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).normal(size=(50, 3))
    model = LogisticRegression().fit(x, x[:, 0] > 0)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    report = scan_file(path)
    assert report.verdict == "rejected", report.to_dict()


def test_not_a_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        scan_file(tmp_path / "missing.pkl")


def test_quarantine_holds_rejected_and_unallowed_files(
    local_ws: Workspace, malicious: Path, benign: Path
) -> None:
    bad = local_ws.supplychain.scan(malicious)
    assert (bad.verdict, bad.status) == ("rejected", "quarantined")
    held = local_ws.supplychain.scan(benign)
    assert (held.verdict, held.status) == ("clean", "quarantined")  # no policy allows pickles
    local_ws.policies.apply(
        "name: pickles\ngates: [model.register]\nrules:\n"
        "  - id: scanned-clean\n    when: {model.format: pickle}\n"
        "    require: {path: scan.verdict, op: ==, value: clean}\n"
    )
    released = local_ws.supplychain.scan(benign)
    assert released.status == "released" and released.is_released
    statuses = [q.status for q in local_ws.supplychain.quarantined()]
    assert sorted(statuses) == ["quarantined", "quarantined", "released"]
    outcomes = [e.details["status"] for e in local_ws.audit.events(action="supplychain.scan")]
    assert outcomes == ["quarantined", "quarantined", "released"]


def test_a_benign_skops_model_is_signed_verified_and_described(local_ws: Workspace) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris()
    model = LogisticRegression(max_iter=500).fit(data.data, data.target)
    with local_ws.runs.start(experiment="iris") as run:
        pass
    version = local_ws.models.log_sklearn(
        model,
        name="iris",
        run_id=run.id,
        metrics={"accuracy": 0.97},
        signature={"inputs": [{"name": n} for n in data.feature_names]},
    )
    info = local_ws.supplychain.verify("iris", version.version)
    assert info.algorithm == "ed25519" and info.key_id == local_ws.signer.key_id
    assert local_ws.models.load_sklearn("iris").predict(data.data[:2]).shape == (2,)
    document = local_ws.supplychain.bom("iris")
    component = document["metadata"]["component"]
    assert document["specVersion"] == "1.6" and component["type"] == "machine-learning-model"
    assert component["hashes"][0]["content"] == version.artifact_digest.split(":")[1]
    names = {c["name"] for c in document["components"]}
    assert {"scikit-learn", "skops"} <= names
    validate_bom(document)


def test_invalid_boms_are_refused() -> None:
    good = build_ml_bom(
        project="p",
        model="m",
        version=1,
        version_id="V",
        digest="sha256:" + "0" * 64,
        fmt="onnx",
        created_at="2026-01-01T00:00:00Z",
        timestamp="2026-01-01T00:00:00Z",
    )
    validate_bom(good)
    bad = json.loads(json.dumps(good))
    bad["metadata"]["component"]["type"] = "model"
    with pytest.raises(IntegrityError, match=r"not valid CycloneDX 1\.6"):
        validate_bom(bad)
    with pytest.raises(InvalidInputError):
        build_ml_bom(
            project="p",
            model="m",
            version=1,
            version_id="V",
            digest="md5:abc",
            fmt="onnx",
            created_at="x",
            timestamp="x",
        )


def test_pip_audit_report_parsing_and_strictness() -> None:
    report = parse_pip_audit(
        {
            "dependencies": [
                {"name": "requests", "version": "2.19.0", "vulns": [{"id": "PYSEC-2018-28"}]},
                {"name": "idna", "version": "3.7", "vulns": []},
                {"name": "gone", "skip_reason": "Dependency not found on PyPI"},
            ]
        },
        1,
    )
    assert report.audited == 2 and report.vulnerable[0]["vulns"][0]["id"] == "PYSEC-2018-28"
    assert not report.ok(strict=False)
    clean = parse_pip_audit({"dependencies": [{"name": "gone", "skip_reason": "offline"}]}, 0)
    assert clean.ok(strict=False) and not clean.ok(strict=True)


def test_pip_audit_runs_on_a_recorded_environment(local_ws: Workspace) -> None:
    """Real pip-audit; offline here, every package is reported as not audited (not as safe)."""
    from keel.governance import audit_packages

    report = audit_packages({"idna": "3.7"})
    assert report.audited + len(report.skipped) == 1
    if report.skipped:
        assert not report.ok(strict=True)
    with pytest.raises(InvalidInputError):
        audit_packages({"idna; rm -rf /": "1"})


def test_signing_keys_come_from_a_secret_or_a_private_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from keel.errors import ConfigurationError
    from keel.governance import ModelSigner
    from keel.settings import Settings

    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    monkeypatch.setenv("KEEL_SECRET_MODEL_SIGNING", base64.b64encode(raw).decode())
    from_secret = ModelSigner.from_settings(
        Settings(home=tmp_path, signing_key="secret://model-signing")
    )
    assert from_secret.public_key.public_bytes_raw() == key.public_key().public_bytes_raw()
    with pytest.raises(ConfigurationError, match="must be a secret:// reference"):
        ModelSigner.from_settings(
            Settings(home=tmp_path, signing_key=base64.b64encode(raw).decode())
        )
    created = ModelSigner.from_settings(Settings(home=tmp_path))
    path = tmp_path / "signing.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert ModelSigner.from_file(path).key_id == created.key_id
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        ModelSigner.from_file(path)
    with pytest.raises(TypeError):
        pickle.dumps(created)
    other = ModelSigner.generate()
    assert not created.verify_bytes(b"x", other.sign_bytes(b"x"), key_id=other.key_id)
