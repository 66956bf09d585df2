"""YAML with line numbers: parse a document and find the line of any path inside it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from keel.errors import InvalidInputError

__all__ = ["LocatedDocument", "parse_located"]


@dataclass(frozen=True, slots=True)
class LocatedDocument:
    """A parsed YAML mapping and its node tree (from ``yaml.compose``) for line look-ups."""

    data: dict[str, Any]
    root: Any
    file: str

    def line_of(self, path: Sequence[str | int], *, key: bool = False) -> int:
        """The 1-based line of ``path`` (of its key when ``key``), or of its nearest parent."""
        import yaml

        node = self.root
        line = 1 if node is None else node.start_mark.line + 1
        for part in path:
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if str(k.value) == str(part):
                        line = (k if key else v).start_mark.line + 1
                        node = v
                        break
                else:
                    return line
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if not 0 <= part < len(node.value):
                    return line
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line

    def duplicate_keys(self) -> list[tuple[list[str | int], str, int, int]]:
        """Keys given twice in one mapping: (path of the mapping, key, first line, second line).

        YAML loaders keep the last value silently; a project file must not.
        """
        import yaml

        found: list[tuple[list[str | int], str, int, int]] = []

        def walk(node: Any, path: list[str | int]) -> None:
            if isinstance(node, yaml.MappingNode):
                seen: dict[str, int] = {}
                for k, v in node.value:
                    key = str(k.value)
                    line = k.start_mark.line + 1
                    if key in seen and key != "<<":
                        found.append((path, key, seen[key], line))
                    else:
                        seen[key] = line
                    walk(v, [*path, key])
            elif isinstance(node, yaml.SequenceNode):
                for index, item in enumerate(node.value):
                    walk(item, [*path, index])

        walk(self.root, [])
        return found


def parse_located(text: str, *, file: str) -> LocatedDocument:
    """Parse ``text`` (one YAML mapping); a syntax error names its file and line."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)  # libyaml: ~10x faster
    try:
        root = loader.get_single_node()  # one parse: the nodes, then the data built from them
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or "invalid YAML"
        raise InvalidInputError(
            f"{file}:{line}: {problem}. Fix the YAML syntax there (indentation, a missing ':' "
            "or an unclosed quote are the usual causes).",
            file=file,
            line=line,
        ) from None
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{file}: not valid YAML: {str(exc)[:300]}", file=file) from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"{file}:1: the project file must be a mapping of sections (sources, datasets, "
            f"pipelines, ...), not a {type(data).__name__}.",
            file=file,
        )
    return LocatedDocument(data=data, root=root, file=file)
