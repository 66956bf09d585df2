"""Group statistics for bias checks on a declared sensitive attribute.

Representation share per group, positive-label rate per group, their largest difference
(statistical parity) and the disparate-impact ratio (lowest rate over the highest, or the most
unequal ratio between a declared privileged group and any other, either way round; the
four-fifths rule asks for at least 0.8).

The attribute and the label are read under fixed names of their own (``group``, ``label``) so
that no column name, ``n`` say, can collide with the names of the statistics.

Groups are keyed by their values as the column holds them (``"f"``, ``1.0``, ``True``, a
``date``) and the null group by ``None``, which no value can stand for: a text group
``"(null)"`` is a group of its own. ``group_name`` and ``group_names`` name them for a report,
bounded and distinct (``null``, or ``(null)`` as a key, for the null group; text quoted when
it would read the same), and ``find_group`` matches a declared privileged group by value in
the column's type: ``1`` is the group ``1.0`` of a float column, ``"2024-01-01"`` a date
column's day, ``"true"`` a boolean column's ``True`` and ``true`` a text column's ``"true"``.

A rate is measured over the rows whose label is known: a null (or, in a float column, NaN)
label is neither positive nor negative, so those rows are left out of every rate rather than
counted as negatives. What cannot be measured raises ``InvalidInputError`` naming what was
seen, with what was measured in its details (``rows`` per group for a single group,
``measured``, a ``GroupRates``, for the labels), so a check fails with that reason and still
shows the groups (a gate fails closed): a single group to compare shares of, a label that is
null everywhere, a positive value the label never takes. With a privileged group the
disparate-impact ratio is two-sided (see ``GroupRates.impact_ratio``): a privileged group never
selected while another group is gives 0.0, as one selected far more often does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from keel.data._checks import temporal_value
from keel.errors import InvalidInputError

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "LISTED",
    "NAME_WIDTH",
    "NULL_GROUP",
    "GroupRates",
    "Redact",
    "find_group",
    "group_name",
    "group_names",
    "group_rates",
    "group_shares",
    "identifier_note",
    "listed",
    "missing_columns",
    "shown_rates",
    "unequal_groups",
]

#: label values and groups named in a message, at most
_SHOWN = 5
#: groups a report's tables list, at most: the most unequal (``unequal_groups``)
LISTED = 10
#: an attribute with at least this many groups, of fewer than two rows each on average, is
#: most likely an identifier (``identifier_note``)
_IDENTIFIER_GROUPS = 20
#: characters of a group's name (or a value) shown
NAME_WIDTH = 40
#: the null group's name as a key of a report's mapping of groups
NULL_GROUP = "(null)"

#: ``(column, values) -> values as a report may show them`` (``Redactor.values``)
Redact = Callable[[str, Sequence[Any]], list[Any]]


def _cut(text: str, width: int = NAME_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _text(group: Any) -> str:
    # ISO for dates and date-times, as ``parse_suite`` keeps a date given as ``privileged``
    return group.isoformat() if isinstance(group, date) else str(group)


def group_name(group: Any) -> str:
    """A group as a message names it: ``null`` for the null group, text quoted (``'f'``,
    ``'(null)'``), any other value as written (``1.0``, ``2024-01-01``), cut to
    ``NAME_WIDTH`` characters."""
    if group is None:
        return "null"
    return _cut(repr(group) if isinstance(group, str) else _text(group))


def group_names(groups: Iterable[Any]) -> dict[Any, str]:
    """Distinct names for ``groups`` as keys of a report's mapping: ``(null)`` for the null
    group and only for it (a text value that reads the same is quoted), a value's text cut to
    ``NAME_WIDTH`` characters otherwise; two values that read the same once cut get ``#2``,
    ``#3``, … after the second and later ones."""
    names: dict[Any, str] = {}
    taken = {NULL_GROUP}
    for group in groups:
        if group is None:
            names[group] = NULL_GROUP
            continue
        name = _cut(_text(group))
        if name == NULL_GROUP:
            name = repr(group)
        base, number = name, 2
        while name in taken:
            name, number = f"{_cut(base, NAME_WIDTH - 4)} #{number}", number + 1
        taken.add(name)
        names[group] = name
    return names


def listed(groups: Sequence[Any], describe: Callable[[Any], str] = group_name) -> str:
    """``'a', 'b', … and 7 more``: the first few of ``groups`` for a message."""
    shown = ", ".join(describe(g) for g in groups[:_SHOWN])
    return shown + (f" and {len(groups) - _SHOWN:,} more" if len(groups) > _SHOWN else "")


def find_group(value: object, dtype: pl.DataType, groups: Iterable[Any]) -> Any:
    """The group of ``groups`` (the values of a column of ``dtype``) that ``value`` declares,
    compared by value in the column's type, or None when there is none (``value`` names a
    group, never the null one, so None is no group here).

    ``1`` and ``"1"`` match ``1.0`` in a float column and ``1`` in an integer one (``1.5``
    matches neither); an ISO string a date or date-time (as instants: ``temporal_value``);
    ``"true"`` and ``"false"`` a boolean column's values; a number or boolean a text column's
    text of it (``True`` is ``"True"``, or else ``"true"`` or ``"TRUE"``); an ISO 8601 time
    (``08:30:00``) or duration (``PT1H30M``) a time or duration column's.

    Raises:
        InvalidInputError: the column holds dates, date-times, times or durations and
            ``value`` is none (nor an ISO 8601 string of one), which no group could match.
    """
    _check_temporal(value, dtype)
    present = list(groups)
    for candidate in _candidates(value, dtype):
        for group in present:
            if (
                group is not None
                and isinstance(group, str) == isinstance(candidate, str)
                and group == candidate
            ):
                return group
    return None


#: per temporal type: what its values are, and an ISO 8601 example
_TEMPORAL = {
    "Date": ("a date", "2024-01-31"),
    "Datetime": ("a date-time", "2024-01-31T08:00:00, or with a zone 2024-01-31T08:00:00+00:00"),
    "Time": ("a time of day (without a zone)", "08:30:00"),
    "Duration": ("a duration", "PT1H30M or P2D"),
}


def _check_temporal(value: object, dtype: pl.DataType) -> None:
    """Raises InvalidInputError when ``dtype`` is temporal and ``value`` is not of its kind."""
    import polars as pl

    if value is None or not dtype.is_temporal():
        return
    target = temporal_value(value, dtype)
    if isinstance(dtype, pl.Datetime):
        fits = isinstance(target, datetime)
    elif dtype == pl.Date:
        fits = type(target) is date
    elif dtype == pl.Time:
        fits = isinstance(target, time) and target.tzinfo is None
    else:
        fits = isinstance(target, timedelta)
    if fits:
        return
    kind = dtype.base_type().__name__
    noun, example = _TEMPORAL.get(kind, (f"a {kind}", "ISO 8601"))
    yaml = (
        " (in YAML, quote it: an unquoted 08:30:00 is read as a number of seconds)"
        if isinstance(value, int | float) and kind in ("Time", "Duration")
        else ""
    )
    raise InvalidInputError(
        f"The privileged group {value!r:.40} is not {noun}, as the values of the column "
        f"({dtype!s:.40}) are: write it in ISO 8601, for example {example}{yaml}.",
        privileged=repr(value)[:40],
        dtype=str(dtype)[:40],
    )


def _candidates(value: object, dtype: pl.DataType) -> list[object]:
    import polars as pl

    value = temporal_value(value, dtype)
    if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
        if isinstance(value, str):
            return [value]
        text = _text(value)
        return [text, text.lower(), text.upper()] if isinstance(value, bool) else [text]
    if isinstance(value, str) and dtype == pl.Boolean:
        word = value.strip().lower()
        return [word == "true"] if word in ("true", "false") else []
    if isinstance(value, str) and dtype.is_numeric():
        try:
            return [int(value.strip())]
        except ValueError:
            pass
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return []
        return [number if isinstance(dtype, pl.Decimal) else float(number)]
    if isinstance(value, float) and isinstance(dtype, pl.Decimal):
        return [Decimal(repr(value))]
    return [value]


def _groups(frame: pl.DataFrame, attribute: str) -> None:
    """Raises InvalidInputError when ``attribute`` holds lists, structs or Python objects: a
    group is one value, compared by value."""
    import polars as pl

    dtype = frame.schema[attribute]
    if dtype.is_nested() or dtype == pl.Object:
        raise InvalidInputError(
            f"{attribute:.40} is {dtype!s:.40}: a bias check groups the rows by one value of "
            "the sensitive attribute each; set 'column' to a column of single values."
        )


def group_shares(frame: pl.DataFrame, attribute: str) -> dict[Any, float]:
    """Each group's share of the rows (null, keyed None, is a group of its own), largest
    first.

    Empty for no rows. Raises InvalidInputError when the rows hold a single group (every value
    the same, or every value null): shares are compared between groups, and one group's 100%
    says nothing about those missing from the data. The error's ``rows`` detail counts the
    rows of that group.
    """
    import polars as pl

    if frame.height == 0:
        return {}
    _groups(frame, attribute)
    counts = (
        frame.select(pl.col(attribute).alias("group"))
        .group_by("group")
        .agg(pl.len().alias("n"))
        .sort("n", descending=True)
    )
    total = frame.height
    keys = counts.get_column("group").to_list()
    shares = {g: int(n) / total for g, n in zip(keys, counts.get_column("n"), strict=True)}
    if len(shares) < 2:
        only = next(iter(shares))
        held = "null" if only is None else group_name(only)
        raise InvalidInputError(
            f"Every value of {attribute:.40} is {held} ({total:,} rows): one group holds 100% "
            "of the rows, and representation compares the shares of at least two groups; "
            "check that 'column' names the sensitive attribute and that the data holds its "
            "groups.",
            rows={only: total},
        )
    return shares


@dataclass(frozen=True, slots=True)
class GroupRates:
    """Positive-label rate per group, and the parity measures derived from them.

    ``rates`` and ``counts`` are for the groups kept: ``counts`` are the rows with a known
    label per group (the rates' denominators). ``rows`` and ``labelled`` count every group
    met, kept or left out (too few labelled rows for ``min_count``, or none), by all its rows
    and by those with a known label; ``unlabelled`` the rows left out of every rate for a null
    or NaN label.
    """

    rates: dict[Any, float]
    counts: dict[Any, int]
    #: rows with the positive label, over the groups kept
    positives: int = 0
    #: rows whose label is null (or NaN), in any group
    unlabelled: int = 0
    rows: dict[Any, int] = field(default_factory=dict)
    labelled: dict[Any, int] = field(default_factory=dict)

    @property
    def left_out(self) -> dict[Any, int]:
        """The groups met but not kept, with their rows that have a known label."""
        return {g: self.labelled.get(g, 0) for g in self.rows if g not in self.rates}

    @property
    def difference(self) -> float:
        """Largest minus smallest rate (0 when fewer than two groups)."""
        if len(self.rates) < 2:
            return 0.0
        return max(self.rates.values()) - min(self.rates.values())

    def impact_ratio(self, privileged: Any = None) -> float:
        """Lowest rate divided by the highest; or, with ``privileged`` (a group's key; None
        declares none, and the null group cannot be privileged), each other group's rate
        compared with the privileged group's both ways, the most unequal pair's smaller rate
        over its larger: 0.8 holds exactly when every other group's rate is within 0.8-1.25
        times the privileged group's. Two-sided, so a privileged group favoured by half
        (0.5) and one disfavoured by half (also 0.5) read the same, and a privileged group
        never selected while another is gives 0.0, the widest disparity, not an infinite
        ratio that a one-sided rule would pass.

        Always within 0-1; 1.0 when every group has the same rate, including when all rates
        are zero, and when there are fewer than two groups (a check fails before asking then,
        and when no row is positive).

        Raises:
            InvalidInputError: ``privileged`` is not one of the groups.
        """
        if privileged is not None and privileged not in self.rates:
            raise InvalidInputError(
                f"The privileged group {group_name(privileged)} is not among the groups "
                f"measured ({listed(list(self.rates))}); set 'privileged' to one of them."
            )
        if len(self.rates) < 2:
            return 1.0
        if privileged is None:
            return _ratio(min(self.rates.values()), max(self.rates.values()))
        base = self.rates[privileged]
        return min(
            _ratio(min(rate, base), max(rate, base))
            for group, rate in self.rates.items()
            if group != privileged
        )

    def most_unequal(self, privileged: Any) -> Any:
        """The other group whose rate is furthest, as a ratio, from the privileged group's."""
        base = self.rates[privileged]
        others = [g for g in self.rates if g != privileged]
        return min(others, key=lambda g: _ratio(min(self.rates[g], base), max(self.rates[g], base)))


def _ratio(low: float, high: float) -> float:
    return 1.0 if high == 0 else low / high


def group_rates(
    frame: pl.DataFrame,
    attribute: str,
    label: str,
    positive: Any,
    *,
    min_count: int = 1,
    redact: Redact | None = None,
) -> GroupRates:
    """The share of rows whose ``label`` equals ``positive``, per group of ``attribute``.

    Rows whose label is null or NaN are left out (``GroupRates.unlabelled`` counts them), and
    so are groups with fewer than ``min_count`` labelled rows (their rates are noise), or none.
    No rows at all gives no groups. ``redact`` (``Redactor.values``) replaces personal data
    among the label values an error names.

    Raises:
        InvalidInputError: ``attribute`` holds lists, structs or objects; ``positive`` cannot be
            compared with the label column (``1`` against a column of ``yes``/``no``); every
            label is null or NaN; or no label equals ``positive``, which measures nothing and
            is most likely a wrong ``positive`` (the message names the values the label holds,
            a few of them). The last two carry the groups measured as ``measured``.
    """
    import polars as pl

    _groups(frame, attribute)
    data = frame.select(pl.col(attribute).alias("group"), pl.col(label).alias("label"))
    dtype = data.schema["label"]
    target = temporal_value(positive, dtype)
    known = pl.col("label").is_not_null()
    if dtype.is_float():
        known = known & pl.col("label").is_not_nan()
    hit = known & (pl.col("label") == pl.lit(target))
    try:
        data.head(0).select(hit)  # a comparison of the wrong types fails here, on no rows
    except pl.exceptions.PolarsError as exc:
        raise InvalidInputError(
            f"The positive label {positive!r:.30} cannot be compared with {label:.40} "
            f"({dtype!s:.40}): set 'positive' to one of the label's values"
            f"{_present(data, known, label, redact)}."
        ) from exc
    stats = (
        data.group_by("group")
        .agg(
            pl.len().alias("rows"),
            known.sum().alias("n"),
            hit.fill_null(False).sum().alias("positives"),
        )
        .sort("group", nulls_last=True)
    )
    keys = stats.get_column("group").to_list()
    rows = [int(n) for n in stats.get_column("rows")]
    counts = [int(n) for n in stats.get_column("n")]
    hits = [int(h) for h in stats.get_column("positives")]
    kept = [i for i, n in enumerate(counts) if n >= max(min_count, 1)]
    measured = GroupRates(
        rates={keys[i]: hits[i] / counts[i] for i in kept},
        counts={keys[i]: counts[i] for i in kept},
        positives=sum(hits[i] for i in kept),
        unlabelled=data.height - sum(counts),
        rows=dict(zip(keys, rows, strict=True)),
        labelled=dict(zip(keys, counts, strict=True)),
    )
    if data.height and not sum(counts):
        missing = "null or NaN" if dtype.is_float() else "null"
        raise InvalidInputError(
            f"Every value of {label:.40} is {missing} ({data.height:,} rows): there is no "
            "label to measure a positive rate on; check that 'label' names the outcome column.",
            measured=measured,
        )
    if sum(counts) and not sum(hits):
        raise InvalidInputError(
            f"No row has the positive label ({label:.40} = {positive!r:.30})"
            f"{_present(data, known, label, redact)}: set 'positive' to the value of a "
            "positive outcome (every rate is 0, which measures nothing).",
            measured=measured,
        )
    return measured


def _present(data: pl.DataFrame, known: pl.Expr, label: str, redact: Redact | None) -> str:
    """``; the label holds 0, 2`` — the label's first few known values (in the order met,
    personal data replaced by ``redact``), for an error."""
    values = data.filter(known).get_column("label").unique(maintain_order=True)
    if values.is_empty():
        return ""
    first = values.head(_SHOWN).to_list()
    shown = ", ".join(repr(v)[:20] for v in (redact(label, first) if redact else first))
    more = f" and {values.len() - _SHOWN:,} more" if values.len() > _SHOWN else ""
    return f"; the label holds {shown}{more}"


def shown_rates(rates: Mapping[Any, float]) -> str:
    """``'a': 50.00%, 'b': 25.00%`` for a message: every group's rate when there are at most
    ``_SHOWN``, else the most unequal few, lowest first (``'c': 0.00%, …, 'a': 90.00% and 7
    more``)."""
    items = list(rates.items())
    if len(items) > _SHOWN:
        chosen = unequal_groups(rates, _SHOWN)
        items = sorted(((g, rates[g]) for g in chosen), key=lambda item: item[1])
    shown = ", ".join(f"{group_name(g)}: {r:.2%}" for g, r in items)
    return shown + (f" and {len(rates) - _SHOWN:,} more" if len(rates) > _SHOWN else "")


def unequal_groups(
    values: Mapping[Any, float], limit: int = LISTED, also: Iterable[Any] = ()
) -> list[Any]:
    """The groups of ``values`` (a rate or a share per group) that a report lists: ``also``
    (the groups a result names), then the lowest and the highest values in turn, until
    ``limit`` groups are chosen; in the order of ``values``. An attribute of many groups (an
    identifier, say) is shown by its extremes, not by the first groups in its order."""
    if len(values) <= limit:
        return list(values)
    ordered = sorted(values, key=lambda g: values[g])
    chosen = dict.fromkeys(g for g in also if g in values)
    low, high = 0, len(ordered) - 1
    while len(chosen) < limit and low <= high:
        chosen.setdefault(ordered[low])
        low += 1
        if len(chosen) < limit and low <= high:
            chosen.setdefault(ordered[high])
            high -= 1
    return [g for g in values if g in chosen]


def identifier_note(attribute: str, groups: int, rows: int) -> str:
    """For a failure's reason: `` Note: 'id' has 300 distinct values in 300 rows …`` when the
    attribute has many groups of fewer than two rows each on average (most likely an
    identifier, whose groups no parity can be measured over), else nothing."""
    if groups < _IDENTIFIER_GROUPS or groups * 2 <= rows:
        return ""
    return (
        f" Note: {attribute:.40} has {groups:,} distinct values in {rows:,} rows, most likely "
        "an identifier rather than a sensitive attribute; set 'column' to the attribute whose "
        "groups to compare (each of many rows)."
    )


#: what each field of a bias check that names a column names
_ROLES = {"column": "the sensitive attribute", "label": "the outcome"}


def missing_columns(named: Mapping[str, str], columns: Sequence[str]) -> str:
    """Why a bias check cannot run on data of ``columns``: the fields of ``named`` (field →
    the column it names, ``{"column": "gender"}``) whose column is not among them, and the
    first few columns there are."""
    missing = [(f, c) for f, c in named.items() if c not in columns]
    what = " and ".join(
        f"{field!r} names {group_name(column)} ({_ROLES.get(field, field)})"
        for field, column in missing
    )
    which, fix = (
        ("is not a column", "it to one of them")
        if len(missing) == 1
        else ("are not columns", "them to columns it has")
    )
    return (
        f"{what}, which {which} of the data (its columns: {listed(list(columns)) or 'none'}); "
        f"set {fix}."
    )
