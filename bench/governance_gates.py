"""What policy gates, signatures and redaction add to the registry, against their floors.

Run from the repository root::

    .venv/bin/python bench/governance_gates.py [--repeats 200]

What is timed (medians, in microseconds, SQLite store in a temporary KEEL_HOME):

- **evaluate**: the pure evaluation of ``examples/policies/production.yaml`` (5 rules) over a
  promotion context. Floor: the same five comparisons written as plain Python.
- **gate**: ``PolicyService.gate`` on ``alias.promote`` with that policy active: one read
  transaction (active policies, approvals), the evaluation, and one write transaction with the
  decision row and its hash-chained audit event. Floor: an empty write transaction with one
  audit append (``Governor.write``), the cost of recording anything durably.
- **sign / verify**: Ed25519 over a version payload (the bare ``cryptography`` calls are the
  floor; what the registry adds is one row in the register transaction and one read).
- **redact**: ``redact_mapping`` of 100 params (what ``log_batch`` now pays per call). Floor:
  copying the same dict.
- **register**: ``ws.models.register`` of a 1 KiB artifact without and with the policy and
  signer (the difference is what governance adds per registration).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keel.governance import (
    Permission,
    evaluate,
    model_context,
    parse_policy,
    redact_mapping,
    version_payload,
)
from keel.settings import Settings
from keel.workspace import connect

POLICY = Path(__file__).parents[1] / "examples" / "policies" / "production.yaml"


def _median_us(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1000


def _plain(ctx: dict[str, Any]) -> bool:
    m = ctx["model"]["metrics"]
    return (
        m["auc"] >= 0.8
        and m["disparate_impact"] >= 0.8
        and not set(ctx["model"]["features"]) & {"nationality", "religion"}
        and ctx["regions"]["storage"] in ("ae",)
        and len(set(ctx["approvals"]["approved_by"]) - {ctx["approvals"]["requester"]}) >= 1
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    n = args.repeats
    document = parse_policy(POLICY.read_text())
    context = model_context(
        name="churn",
        version=1,
        fmt="onnx",
        digest="sha256:" + "0" * 64,
        metrics={"auc": 0.9, "disparate_impact": 0.9},
        tags={},
        signature={"inputs": [{"name": "tenure"}]},
        run_id=None,
        region="ae",
        alias="production",
    )
    context["approvals"] = {"requester": "user:a", "approved_by": ["user:b"]}
    rows = []
    rows.append(
        (
            "evaluate (5 rules)",
            _median_us(lambda: evaluate([document], "alias.promote", context), n),
            _median_us(lambda: _plain(context), n),
        )
    )
    params = {f"param_{i}": f"value-{i}" for i in range(100)}
    rows.append(
        (
            "redact 100 params",
            _median_us(lambda: redact_mapping(params), n),
            _median_us(lambda: dict(params), n),
        )
    )

    with tempfile.TemporaryDirectory() as scratch:
        ws = connect(settings=Settings(home=Path(scratch) / "plain"), principal="user:a")
        gov = connect(
            settings=Settings(home=Path(scratch) / "gov", region="ae"), principal="user:a"
        )
        try:
            gov.policies.apply(POLICY.read_text())
            payload = version_payload(
                project_id="p", model="m", version=1, version_id="V", digest="d", fmt="onnx"
            )
            signer = gov.signer
            signature = signer.sign_bytes(payload.encode())
            rows.append(
                (
                    "sign (Ed25519)",
                    _median_us(lambda: signer.sign_bytes(payload.encode()), n),
                    _median_us(lambda: signer._key.sign(payload.encode()), n),
                )
            )
            rows.append(
                (
                    "verify (Ed25519)",
                    _median_us(
                        lambda: signer.verify_bytes(
                            payload.encode(), signature, key_id=signer.key_id
                        ),
                        n,
                    ),
                    _median_us(
                        lambda: signer.public_key.verify(
                            __import__("base64").b64decode(signature), payload.encode()
                        ),
                        n,
                    ),
                )
            )

            staging_ctx = {**context, "alias": "staging"}

            def gate() -> None:
                gov.policies.gate(
                    "alias.promote",
                    subject="model:churn:1@staging",
                    context=staging_ctx,
                    permission=Permission.MODEL_PROMOTE,
                )

            def empty_write() -> None:
                with gov._governor.write(
                    gov.ctx, Permission.MODEL_PROMOTE, "bench.noop", object_type="bench"
                ):
                    pass

            rows.append(
                ("gate alias.promote (SQLite)", _median_us(gate, n), _median_us(empty_write, n))
            )
            artifact = b"x" * 1024
            plain = _median_us(lambda: ws.models.register("m", artifact=artifact, format="onnx"), n)
            governed = _median_us(
                lambda: gov.models.register("m", artifact=artifact, format="onnx"), n
            )
            rows.append(("register 1 KiB: governed vs plain", governed, plain))
        finally:
            ws.close()
            gov.close()
    print(f"{'what':40} {'keel (µs)':>12} {'floor (µs)':>12} {'ratio':>7}")
    for what, ours, floor in rows:
        print(f"{what:40} {ours:12.1f} {floor:12.1f} {ours / floor:7.1f}")


if __name__ == "__main__":
    main()
