"""A validator for the XSD subset keel's junit.xsd uses (no XSD library is a dependency).

It reads the schema itself — global elements, their attributes (type, use), a sequence or a
choice of element references with min/maxOccurs, simple content — and checks a document
against it, returning every violation. When lxml is installed the tests also use its full XSD
validator on the same schema.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

XS = "{http://www.w3.org/2001/XMLSchema}"


@dataclass
class _Element:
    attributes: dict[str, tuple[str, bool]] = field(default_factory=dict)
    group: str | None = None  # "sequence" or "choice"
    children: list[tuple[str, int, int | None]] = field(default_factory=list)
    group_min: int = 1
    group_max: int | None = 1
    text: bool = False


def _occurs(node: ET.Element, name: str) -> int | None:
    value = node.get(name, "1")
    return None if value == "unbounded" else int(value)


def load(path: Path) -> tuple[dict[str, _Element], dict[str, tuple[str, dict[str, str]]]]:
    root = ET.parse(path).getroot()  # noqa: S314 (our own schema)
    simple: dict[str, tuple[str, dict[str, str]]] = {}
    for node in root.findall(f"{XS}simpleType"):
        restriction = node.find(f"{XS}restriction")
        assert restriction is not None
        facets = {child.tag.removeprefix(XS): child.get("value", "") for child in restriction}
        simple[node.get("name", "")] = (restriction.get("base", ""), facets)
    elements: dict[str, _Element] = {}
    for node in root.findall(f"{XS}element"):
        spec = _Element()
        complex_type = node.find(f"{XS}complexType")
        if complex_type is None:
            spec.text = True
        else:
            holder = complex_type
            content = complex_type.find(f"{XS}simpleContent")
            if content is not None:
                spec.text = True
                holder = content.find(f"{XS}extension")  # type: ignore[assignment]
            for attribute in holder.findall(f"{XS}attribute"):
                spec.attributes[attribute.get("name", "")] = (
                    attribute.get("type", "xs:string"),
                    attribute.get("use") == "required",
                )
            for kind in ("sequence", "choice"):
                group = complex_type.find(f"{XS}{kind}")
                if group is not None:
                    spec.group = kind
                    spec.group_min = _occurs(group, "minOccurs") or 0
                    spec.group_max = _occurs(group, "maxOccurs")
                    spec.children = [
                        (
                            child.get("ref", ""),
                            _occurs(child, "minOccurs") or 0,
                            _occurs(child, "maxOccurs"),
                        )
                        for child in group.findall(f"{XS}element")
                    ]
        elements[node.get("name", "")] = spec
    return elements, simple


def _value_ok(value: str, type_name: str, simple: dict[str, tuple[str, dict[str, str]]]) -> bool:
    base, facets = simple.get(type_name, (type_name, {}))
    if base == "xs:nonNegativeInteger":
        return value.isdigit()
    if base == "xs:decimal":
        try:
            number = Decimal(value)
        except InvalidOperation:
            return False
        return "minInclusive" not in facets or number >= Decimal(facets["minInclusive"])
    if "pattern" in facets:
        return re.fullmatch(facets["pattern"], value) is not None
    return base == "xs:string"


def validate(document: str, schema: Path) -> list[str]:
    """Every violation of ``document`` against ``schema`` (empty when valid)."""
    elements, simple = load(schema)
    problems: list[str] = []

    def check(node: ET.Element, where: str) -> None:
        spec = elements.get(node.tag)
        if spec is None:
            problems.append(f"{where}: element <{node.tag}> is not declared")
            return
        for name, (type_name, required) in spec.attributes.items():
            value = node.get(name)
            if value is None:
                if required:
                    problems.append(f"{where}: missing required attribute '{name}'")
            elif not _value_ok(value, type_name, simple):
                problems.append(f"{where}: attribute {name}={value!r} is not a {type_name}")
        for name in node.attrib:
            if name not in spec.attributes:
                problems.append(f"{where}: attribute '{name}' is not declared")
        if (node.text or "").strip() and not spec.text:
            problems.append(f"{where}: text is not allowed in <{node.tag}>")
        kids = list(node)
        allowed = {name: (low, high) for name, low, high in spec.children}
        for kid in kids:
            if kid.tag not in allowed:
                problems.append(f"{where}: <{kid.tag}> is not allowed in <{node.tag}>")
        if spec.group == "sequence":
            order = [name for name, _, _ in spec.children]
            positions = [order.index(k.tag) for k in kids if k.tag in allowed]
            if positions != sorted(positions):
                problems.append(f"{where}: children of <{node.tag}> are out of order")
            for name, (low, high) in allowed.items():
                count = sum(1 for k in kids if k.tag == name)
                if count < low or (high is not None and count > high):
                    problems.append(f"{where}: {count} <{name}> in <{node.tag}>")
        elif spec.group == "choice":
            if len(kids) < spec.group_min or (
                spec.group_max is not None and len(kids) > spec.group_max
            ):
                problems.append(f"{where}: <{node.tag}> has {len(kids)} children")
        elif kids:
            problems.append(f"{where}: <{node.tag}> takes no children")
        for index, kid in enumerate(kids):
            check(kid, f"{where}/{kid.tag}[{index}]")

    root = ET.fromstring(document)  # noqa: S314 (a document we generated)
    check(root, root.tag)
    return problems
