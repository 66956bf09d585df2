"""Experiments: named groups of runs inside a project."""

from __future__ import annotations

from keel.errors import AlreadyExistsError, ConflictError, InvalidInputError, NotFoundError
from keel.governance import Context, Governor, Permission
from keel.store import ExperimentRepository
from keel.store._schema import ExperimentRow
from keel.tracking._model import Experiment
from keel.tracking._validate import MAX_TAG_VALUE, check_key
from keel.types import validate_name

__all__ = ["ExperimentService"]


def _to_experiment(row: ExperimentRow, tags: dict[str, str]) -> Experiment:
    return Experiment(
        id=row.id,
        name=row.name,
        description=row.description,
        lifecycle=row.lifecycle,
        created_at=row.created_at,
        tags=tags,
    )


def _missing(ref: str) -> NotFoundError:
    return NotFoundError(
        f"Experiment '{ref}' does not exist in this project. List experiments with "
        "ws.experiments.list(), or create it with ws.experiments.create(name).",
        experiment=ref,
    )


class ExperimentService:
    """Creates, finds, tags, deletes and restores experiments."""

    def __init__(self, governor: Governor) -> None:
        self._gov = governor

    def create(self, ctx: Context, name: str, *, description: str = "") -> Experiment:
        validate_name(name, what="experiment name")
        with self._gov.write(
            ctx, Permission.EXPERIMENT_WRITE, "experiment.create", object_type="experiment"
        ) as work:
            repo = ExperimentRepository(work.session, ctx.project_id)
            if repo.by_name(name) is not None:
                raise AlreadyExistsError(
                    f"An experiment named '{name}' already exists in project "
                    f"'{ctx.project_name}'. Use ws.experiments.get_by_name('{name}') or pick "
                    "another name.",
                    name=name,
                )
            row = repo.create(name, description=description)
            work.object_id = row.id
            work.details = {"name": name}
            return _to_experiment(row, {})

    def ensure(self, ctx: Context, name: str) -> Experiment:
        """The experiment called ``name``, created if it does not exist yet."""
        validate_name(name, what="experiment name")
        with self._gov.read(
            ctx, Permission.EXPERIMENT_READ, "experiment.read", object_type="experiment"
        ) as session:
            row = ExperimentRepository(session, ctx.project_id).by_name(name)
            if row is not None:
                if row.lifecycle != "active":
                    raise NotFoundError(
                        f"Experiment '{name}' is deleted. Restore it with "
                        f"ws.experiments.restore('{row.id}') or use another name.",
                        experiment=name,
                    )
                return _to_experiment(row, {})
        try:
            return self.create(ctx, name)
        except (AlreadyExistsError, ConflictError):  # created concurrently by another process
            return self.get_by_name(ctx, name)

    def get(self, ctx: Context, experiment_id: str) -> Experiment:
        with self._gov.read(
            ctx, Permission.EXPERIMENT_READ, "experiment.read", object_type="experiment"
        ) as session:
            repo = ExperimentRepository(session, ctx.project_id)
            row = repo.get(experiment_id)
            if row is None:
                raise _missing(experiment_id)
            return _to_experiment(row, repo.tags(row.id))

    def get_by_name(self, ctx: Context, name: str) -> Experiment:
        with self._gov.read(
            ctx, Permission.EXPERIMENT_READ, "experiment.read", object_type="experiment"
        ) as session:
            repo = ExperimentRepository(session, ctx.project_id)
            row = repo.by_name(name)
            if row is None:
                raise _missing(name)
            return _to_experiment(row, repo.tags(row.id))

    def list(self, ctx: Context, *, include_deleted: bool = False) -> list[Experiment]:
        with self._gov.read(
            ctx, Permission.EXPERIMENT_READ, "experiment.list", object_type="experiment"
        ) as session:
            repo = ExperimentRepository(session, ctx.project_id)
            return [_to_experiment(row, {}) for row in repo.list(include_deleted=include_deleted)]

    def set_tag(self, ctx: Context, experiment_id: str, key: str, value: str) -> None:
        check_key(key, what="tag")
        text = str(value)
        if len(text) > MAX_TAG_VALUE:
            raise InvalidInputError(
                f"Tag '{key}' is {len(text)} characters; the limit is {MAX_TAG_VALUE}."
            )
        with self._gov.write(
            ctx,
            Permission.EXPERIMENT_WRITE,
            "experiment.set_tag",
            object_type="experiment",
            object_id=experiment_id,
        ) as work:
            repo = ExperimentRepository(work.session, ctx.project_id)
            if repo.get(experiment_id) is None:
                raise _missing(experiment_id)
            repo.set_tag(experiment_id, key, text)
            work.details = {"key": key}

    def delete(self, ctx: Context, experiment_id: str) -> None:
        self._set_lifecycle(ctx, experiment_id, "deleted")

    def restore(self, ctx: Context, experiment_id: str) -> None:
        self._set_lifecycle(ctx, experiment_id, "active")

    def _set_lifecycle(self, ctx: Context, experiment_id: str, lifecycle: str) -> None:
        action = "experiment.delete" if lifecycle == "deleted" else "experiment.restore"
        with self._gov.write(
            ctx,
            Permission.EXPERIMENT_WRITE,
            action,
            object_type="experiment",
            object_id=experiment_id,
        ) as work:
            row = ExperimentRepository(work.session, ctx.project_id).get(experiment_id)
            if row is None:
                raise _missing(experiment_id)
            row.lifecycle = lifecycle
