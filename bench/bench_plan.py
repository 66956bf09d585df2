"""``keel plan`` on a project of 50 datasets, 20 pipelines and 20 deployments (target ≤ 1 s).

Run from the repository root::

    .venv/bin/python bench/bench_plan.py [--datasets 50] [--pipelines 20] [--deployments 20]
        [--repeats 7]

Setup (not timed): a fresh SQLite store in a temporary folder, a generated keel.yaml (each
dataset with a source and a check suite, each pipeline with a schedule trigger and a model,
each deployment with a canary strategy, a monitor and an alert rule: ~250 resources), applied
once; then 10% of the datasets and deployments are edited so the plan has updates to diff.

Timed, median of ``--repeats``:

- **plan in process**: ``load_project`` (YAML parse, JSON Schema, references and cycles) plus
  the plan as ``keel plan`` computes it for the store's owner: the recorded and live state read
  in plain SQL (``keel.workspace._read_only_plan``), every resource diffed; and the same plan
  through the workspace's services (the full path, taken when the plain-SQL one steps aside);
- **keel plan** end to end: the CLI in a fresh interpreter, as a CI job runs it.

Floors: ``yaml.load`` (libyaml) of the same file plus one read of the recorded state — the parse
and the query the plan cannot avoid — and, for the CLI, two fresh interpreters: one that only
imports the third-party libraries ``keel plan`` uses (typer, PyYAML, jsonschema,
pydantic-settings), and one that opens the store the full way and closes it
(``keel.connect(create=False)``: SQLAlchemy, the schema check and the keys, what every other
store-touching command pays).

Keel's modules import lazily (the workspace builds an area's service on first use), so the
fresh-interpreter figures depend on whether Python may cache bytecode: with
``PYTHONDONTWRITEBYTECODE=1`` (set for the end-to-end runs) and an editable install every Keel
module is compiled from source on each start, except where a ``__pycache__`` folder already
holds its current bytecode: for a strict figure, run the benchmark on a clean copy
(``PYTHONPATH=<copy>/src``). ``keel plan`` is also timed with a warm bytecode cache in a
temporary folder (``PYTHONPYCACHEPREFIX``), as an installed wheel has. Each fresh-interpreter
figure is given as wall time and as CPU time (user + system of the child): on a shared machine
the CPU time is the steadier of the two.

``--against SRC`` times ``keel plan`` alternately with another copy of Keel's sources (e.g.
``git archive HEAD src | tar -x -C /tmp/head`` then ``--against /tmp/head/src``), both with and
without a warm bytecode cache, ``--cli-repeats`` runs each, so the two are compared under the
same load.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def project_file(datasets: int, pipelines: int, deployments: int, *, edit: bool = False) -> str:
    data: dict[str, dict[str, object]] = {
        "sources": {},
        "datasets": {},
        "checks": {},
        "pipelines": {},
        "triggers": {},
        "models": {},
        "deployments": {},
        "monitors": {},
        "alerts": {},
    }
    for i in range(datasets):
        data["sources"][f"src-{i}"] = {"kind": "file", "uri": f"data/table_{i}.csv"}
        data["checks"][f"checks-{i}"] = {
            "suite": [
                {"kind": "not_null", "column": "id"},
                {
                    "kind": "range",
                    "column": "age",
                    "min": 0,
                    "max": 120 + (i if edit and i % 10 == 0 else 0),
                },
            ]
        }
        data["datasets"][f"table-{i}"] = {
            "source": f"src-{i}",
            "checks": [f"checks-{i}"],
            **({"derived_from": [f"table-{i - 1}"]} if i else {}),
        }
    for i in range(pipelines):
        data["pipelines"][f"train-{i}"] = f"flows.train_{i}:pipeline"
        data["triggers"][f"nightly-{i}"] = {
            "pipeline": f"train-{i}",
            "schedule": f"{i % 60} 3 * * *",
        }
        data["models"][f"model-{i}"] = {
            "pipeline": f"train-{i}",
            "dataset": f"table-{i}",
            "promotion": {
                "production": {"metrics": {"auc": {"min": 0.8}}, "max_regression": {"auc": 0.01}}
            },
        }
    for i in range(deployments):
        data["deployments"][f"deploy-{i}"] = {
            "model": f"model-{i % pipelines}",
            "environment": "production" if i % 2 else "staging",
            "strategy": "canary",
            "steps": [5, 25, 100] if not (edit and i % 10 == 0) else [10, 50, 100],
            "target": {"kind": "kubernetes", "namespace": "ml", "replicas": 2},
        }
        data["monitors"][f"drift-{i}"] = {
            "deployment": f"deploy-{i}",
            "kind": "drift",
            "window": "1h",
        }
        data["alerts"][f"drift-high-{i}"] = {
            "monitor": f"drift-{i}",
            "condition": "drift.share > 0.3",
        }
    return yaml.safe_dump(data, sort_keys=False)


_LIBRARIES = "import typer, yaml, jsonschema, pydantic_settings"
_CONNECT = "import keel; keel.connect(create=False).close()"


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _timed(
    command: list[str], *, cwd: Path, env: dict[str, str], cpu: list[float] | None = None
) -> float:
    """Wall seconds of one run; its CPU seconds appended to ``cpu`` when given."""
    before = _cpu()
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=True)
    wall = time.perf_counter() - started
    if cpu is not None:
        cpu.append(_cpu() - before)
    return wall


def _ms(seconds: list[float]) -> str:
    return f"{statistics.median(seconds) * 1000:.0f} ms (best {min(seconds) * 1000:.0f})"


def _source_tree(path: str) -> Path:
    """The folder holding the ``keel`` package of ``--against``; a clear error otherwise."""
    folder = Path(path).resolve()
    if not (folder / "keel" / "__init__.py").is_file():
        raise SystemExit(
            f"--against {path}: there is no keel/__init__.py there; give the folder that holds "
            "the keel package (the src folder of a copy of the repository)."
        )
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=50)
    parser.add_argument("--pipelines", type=int, default=20)
    parser.add_argument("--deployments", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--cli-repeats", type=int, default=None, help="fresh-interpreter runs (default repeats/2)"
    )
    parser.add_argument(
        "--against", metavar="SRC", help="also time keel plan with the keel package in SRC"
    )
    args = parser.parse_args()
    for name in ("datasets", "pipelines", "deployments", "repeats", "cli_repeats"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    if args.datasets < args.pipelines:
        parser.error("--datasets must be at least --pipelines (each model reads a dataset)")
    against = _source_tree(args.against) if args.against else None

    from keel.cicd import ProjectStateService, load_project
    from keel.settings import Settings
    from keel.workspace import connect
    from keel.workspace._read_only_plan import read_only_plan

    with tempfile.TemporaryDirectory(prefix="keel-bench-plan-") as scratch:
        folder = Path(scratch)
        path = folder / "keel.yaml"
        path.write_text(project_file(args.datasets, args.pipelines, args.deployments))
        ws = connect(
            settings=Settings(home=folder / ".keel"), create=True
        )  # the OS user, as the CLI
        service = ProjectStateService(ws._governor)
        applied = service.apply(ws.ctx, load_project(path))  # records only: no live effects
        path.write_text(project_file(args.datasets, args.pipelines, args.deployments, edit=True))

        timings, full_timings, floor = [], [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            quick = read_only_plan(ws.settings, load_project(path), principal=ws.ctx.principal)
            timings.append(time.perf_counter() - started)
            started = time.perf_counter()
            plan = ws.project_file.plan(load_project(path))  # live state observed too
            full_timings.append(time.perf_counter() - started)
            if quick is None or quick.to_dict() != plan.to_dict():
                raise SystemExit("the plain-SQL plan differs from the full path's: a bug")
            started = time.perf_counter()
            yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
            service.current(ws.ctx)
            floor.append(time.perf_counter() - started)
        ws.close()

        env = {**os.environ, "KEEL_HOME": str(folder / ".keel")}
        env.pop("KEEL_DB_URL", None)
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # existing __pycache__ folders are still read
        cached = {**env, "PYTHONPYCACHEPREFIX": str(folder / "pycache")}
        cached.pop("PYTHONDONTWRITEBYTECODE", None)
        plan_cmd = [sys.executable, "-m", "keel.cli", "plan"]
        subprocess.run(plan_cmd, cwd=folder, env=cached, capture_output=True, check=True)  # warm
        other: dict[str, dict[str, str]] = {}
        if against is not None:
            search = os.pathsep.join([str(against), os.environ.get("PYTHONPATH", "")])
            other["no cache"] = {**env, "PYTHONPATH": search.rstrip(os.pathsep)}
            other["warm cache"] = {
                **cached,
                "PYTHONPATH": search.rstrip(os.pathsep),
                "PYTHONPYCACHEPREFIX": str(folder / "pycache-against"),
            }
            subprocess.run(
                plan_cmd, cwd=folder, env=other["warm cache"], capture_output=True, check=True
            )  # warm
        floors = {
            "libraries": [sys.executable, "-c", _LIBRARIES],
            "connect": [sys.executable, "-c", _CONNECT],
        }
        cli: list[float] = []
        cli_cached: list[float] = []
        cpu: list[float] = []
        cpu_cached: list[float] = []
        other_runs: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in other}
        floor_runs: dict[str, list[float]] = {name: [] for name in floors}
        loads: list[float] = []
        for _ in range(args.cli_repeats or max(3, args.repeats // 2)):
            cli.append(_timed(plan_cmd, cwd=folder, env=env, cpu=cpu))
            cli_cached.append(_timed(plan_cmd, cwd=folder, env=cached, cpu=cpu_cached))
            for name, other_env in other.items():
                wall, used = other_runs[name]
                wall.append(_timed(plan_cmd, cwd=folder, env=other_env, cpu=used))
            for name, command in floors.items():
                floor_runs[name].append(_timed(command, cwd=folder, env=env))
            loads.append(os.getloadavg()[0])
        done = subprocess.run(
            plan_cmd, cwd=folder, env=env, capture_output=True, text=True, check=True
        )

    resources = len(applied.plan.changes)
    print(f"resources: {resources}; plan: {plan.summary()}")
    print(f"last line of `keel plan`: {done.stdout.strip().splitlines()[-1]}")
    print(f"plan in process (load, validate, diff): {statistics.median(timings) * 1000:.1f} ms")
    print(
        "plan in process through the services (the full path): "
        f"{statistics.median(full_timings) * 1000:.1f} ms"
    )
    print(f"keel plan (fresh interpreter, end to end): {_ms(cli)}; CPU {_ms(cpu)}")
    print(
        f"keel plan (fresh interpreter, warm bytecode cache): {_ms(cli_cached)}; "
        f"CPU {_ms(cpu_cached)}"
    )
    for name, (wall, used) in other_runs.items():
        print(f"keel plan of {against} ({name}), alternating: {_ms(wall)}; CPU {_ms(used)}")
    print(f"floor (libyaml load + one state read): {statistics.median(floor) * 1000:.1f} ms")
    print(f"floor (fresh interpreter importing plan's libraries): {_ms(floor_runs['libraries'])}")
    print(f"floor (fresh interpreter opening and closing the store): {_ms(floor_runs['connect'])}")
    print(f"load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"1-min load average during the fresh-interpreter runs: {min(loads):.2f}-{max(loads):.2f}"
    )
    target = "met" if statistics.median(cli) <= 1.0 else "NOT met"
    print(f"target keel plan <= 1 s: {target}")


if __name__ == "__main__":
    main()
