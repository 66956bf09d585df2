"""Anonymization steps: masking, keyed pseudonymization, generalization, suppression, k-anonymity.

Steps are declared as data and validated once (``parse_steps``)::

    - {kind: mask, columns: [card], keep_last: 4}
    - {kind: pseudonymize, columns: [customer_id, email]}
    - {kind: generalize, column: age, bin_width: 10}
    - {kind: generalize, column: birth_date, truncate: year}
    - {kind: generalize, column: postcode, keep_first: 3}
    - {kind: suppress, columns: [notes]}
    - {kind: suppress_rows, where: "country = 'XX'"}
    - {kind: k_anonymity, quasi_identifiers: [age, postcode, gender], k: 5}

Pseudonyms are ``HMAC-SHA-256(key, value)`` rendered as the first ``length`` hex digits
(default 16, i.e. 64 bits): the same value and key give the same pseudonym in every version,
another key gives unrelated ones. Among ``n`` distinct values the chance that any two share a
pseudonym is at most ``n² / 2^(4·length+1)`` (the birthday bound): about 2.7e-8 for a million
values at the default length; raise ``length`` (up to 64) for more.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keel.errors import InvalidInputError

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "ANONYMIZATION_KINDS",
    "AnonymizationRecord",
    "AnonymizationStep",
    "apply_anonymization",
    "collision_bound",
    "enforce_k_anonymity",
    "k_anonymity",
    "parse_steps",
    "pseudonym",
]

MIN_KEY_BYTES = 16
DEFAULT_LENGTH = 16
MAX_STEPS = 200
_TRUNCATE = {"year": "1y", "quarter": "1q", "month": "1mo", "week": "1w", "day": "1d", "hour": "1h"}

#: kind -> (required fields, optional fields with their defaults)
ANONYMIZATION_KINDS: dict[str, tuple[frozenset[str], dict[str, Any]]] = {
    "mask": (frozenset({"columns"}), {"keep_last": 0, "char": "*"}),
    "pseudonymize": (frozenset({"columns"}), {"length": DEFAULT_LENGTH}),
    "generalize": (
        frozenset({"column"}),
        {"bin_width": None, "bins": None, "truncate": None, "keep_first": None},
    ),
    "suppress": (frozenset({"columns"}), {}),
    "suppress_rows": (frozenset({"where"}), {}),
    "k_anonymity": (frozenset({"quasi_identifiers", "k"}), {}),
}


@dataclass(frozen=True, slots=True)
class AnonymizationStep:
    """One validated step."""

    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **{k: v for k, v in self.params.items() if v is not None}}


@dataclass(frozen=True, slots=True)
class AnonymizationRecord:
    """What an anonymization did, stored with the version it produced."""

    steps: tuple[dict[str, Any], ...]
    masked: tuple[str, ...] = ()
    pseudonymized: tuple[str, ...] = ()
    generalized: tuple[str, ...] = ()
    suppressed_columns: tuple[str, ...] = ()
    rows_in: int = 0
    rows_suppressed: int = 0
    quasi_identifiers: tuple[str, ...] = ()
    #: The k-anonymity of the output over ``quasi_identifiers``, measured on the final rows.
    k: int | None = None
    #: Columns a step transformed that still hold personal data: a mask whose ``keep_last`` or a
    #: ``keep_first`` that covered most values whole, a truncation or bins that left most values
    #: as they were (``truncate: day`` on a Date), or an output a detector still recognises.
    retained: tuple[str, ...] = ()

    @property
    def anonymized_columns(self) -> tuple[str, ...]:
        """Columns whose values were transformed and no longer hold what they held (for
        ``propagate``: only these may lose their personal-data labels)."""
        done = dict.fromkeys((*self.masked, *self.pseudonymized, *self.generalized))
        return tuple(c for c in done if c not in self.retained)

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [dict(s) for s in self.steps],
            "masked": list(self.masked),
            "pseudonymized": list(self.pseudonymized),
            "generalized": list(self.generalized),
            "suppressed_columns": list(self.suppressed_columns),
            "rows_in": self.rows_in,
            "rows_suppressed": self.rows_suppressed,
            "quasi_identifiers": list(self.quasi_identifiers),
            "k": self.k,
            "retained": list(self.retained),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnonymizationRecord:
        return cls(
            steps=tuple(dict(s) for s in data.get("steps", ())),
            masked=tuple(data.get("masked", ())),
            pseudonymized=tuple(data.get("pseudonymized", ())),
            generalized=tuple(data.get("generalized", ())),
            suppressed_columns=tuple(data.get("suppressed_columns", ())),
            rows_in=int(data.get("rows_in", 0)),
            rows_suppressed=int(data.get("rows_suppressed", 0)),
            quasi_identifiers=tuple(data.get("quasi_identifiers", ())),
            k=data.get("k"),
            retained=tuple(data.get("retained", ())),
        )


def _bad(index: int, kind: object, message: str) -> InvalidInputError:
    return InvalidInputError(f"Anonymization step #{index + 1} ({kind}): {message}", step=index + 1)


def _names(index: int, kind: str, value: object, what: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, Sequence)
        or not value
        or not all(isinstance(v, str) and v for v in value)
    ):
        raise _bad(index, kind, f"'{what}' must be a non-empty list of column names.")
    return list(dict.fromkeys(value))


def _int(index: int, kind: str, params: Mapping[str, Any], key: str, low: int, high: int) -> None:
    value = params.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(
            index, kind, f"'{key}' must be an integer from {low} to {high}; got {value!r:.30}."
        )


def parse_steps(spec: Sequence[Mapping[str, Any]]) -> tuple[AnonymizationStep, ...]:
    """Validate a list of steps; errors name the step, the field, and the allowed values."""
    if isinstance(spec, str | bytes | Mapping) or not isinstance(spec, Sequence):
        raise InvalidInputError("Anonymization steps are a list of mappings, each with a 'kind'.")
    if not spec or len(spec) > MAX_STEPS:
        raise InvalidInputError(f"Give between 1 and {MAX_STEPS} anonymization steps.")
    steps = []
    for index, item in enumerate(spec):
        if not isinstance(item, Mapping):
            raise _bad(index, "?", "a step is a mapping with a 'kind'.")
        kind = item.get("kind")
        if kind not in ANONYMIZATION_KINDS:
            raise _bad(index, kind, f"unknown kind; use one of: {', '.join(ANONYMIZATION_KINDS)}.")
        required, optional = ANONYMIZATION_KINDS[kind]
        unknown = set(item) - {"kind"} - required - set(optional)
        if unknown:
            allowed = ", ".join(sorted(required | set(optional)))
            raise _bad(
                index,
                kind,
                f"unknown field(s) {', '.join(sorted(map(str, unknown)))}; allowed: {allowed}.",
            )
        missing = required - set(item)
        if missing:
            raise _bad(index, kind, f"needs the field(s) {', '.join(sorted(missing))}.")
        params: dict[str, Any] = {k: item.get(k, d) for k, d in optional.items()}
        params.update({k: item[k] for k in required})
        _validate(index, str(kind), params)
        steps.append(AnonymizationStep(str(kind), params))
    return tuple(steps)


def _validate(index: int, kind: str, params: dict[str, Any]) -> None:
    for key in ("columns", "quasi_identifiers"):
        if key in params:
            params[key] = _names(index, kind, params[key], key)
    if "column" in params and (not isinstance(params["column"], str) or not params["column"]):
        raise _bad(index, kind, "'column' must be a column name.")
    _int(index, kind, params, "keep_last", 0, 64)
    _int(index, kind, params, "length", 8, 64)
    _int(index, kind, params, "keep_first", 0, 64)
    _int(index, kind, params, "k", 2, 1_000_000)
    if kind == "mask" and (not isinstance(params["char"], str) or len(params["char"]) != 1):
        raise _bad(index, kind, "'char' must be a single character.")
    if kind == "generalize":
        chosen = [
            k for k in ("bin_width", "bins", "truncate", "keep_first") if params[k] is not None
        ]
        if len(chosen) != 1:
            raise _bad(index, kind, "give exactly one of bin_width, bins, truncate or keep_first.")
        width = params["bin_width"]
        if width is not None and (
            isinstance(width, bool) or not isinstance(width, int | float) or width <= 0
        ):
            raise _bad(index, kind, "'bin_width' must be a positive number.")
        edges = params["bins"]
        if edges is not None and (
            not isinstance(edges, Sequence)
            or not 1 <= len(edges) <= 100
            or not all(isinstance(e, int | float) and not isinstance(e, bool) for e in edges)
            or list(edges) != sorted(set(edges))
        ):
            raise _bad(index, kind, "'bins' must be 1-100 strictly increasing numbers.")
        if params["truncate"] is not None and params["truncate"] not in _TRUNCATE:
            raise _bad(index, kind, f"'truncate' must be one of: {', '.join(_TRUNCATE)}.")
    if kind == "suppress_rows":
        import polars as pl

        where = params["where"]
        if not isinstance(where, str) or not where.strip() or len(where) > 2000:
            raise _bad(index, kind, "'where' must be a SQL expression, e.g. \"age > 90\".")
        try:
            pl.sql_expr(where)
        except Exception as exc:
            raise _bad(index, kind, f"'where' does not parse: {str(exc)[:200]}") from None


def pseudonym(value: str, key: bytes, length: int = DEFAULT_LENGTH) -> str:
    """``HMAC-SHA-256(key, value)`` as its first ``length`` hex digits."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:length]


def collision_bound(distinct: int, length: int = DEFAULT_LENGTH) -> float:
    """Upper bound on the chance that two of ``distinct`` values share a pseudonym."""
    return min(1.0, distinct * distinct / 2.0 ** (4 * length + 1))


def k_anonymity(frame: pl.DataFrame, quasi_identifiers: Sequence[str]) -> int:
    """The size of the smallest group of rows sharing the quasi-identifiers (0 when empty)."""
    import polars as pl

    _require(frame, quasi_identifiers)
    if frame.height == 0:
        return 0
    if not quasi_identifiers:
        return frame.height
    sizes = frame.group_by(list(quasi_identifiers)).agg(pl.len().alias("n"))
    smallest = sizes.select(pl.col("n").min()).item()
    return int(smallest or 0)


def enforce_k_anonymity(
    frame: pl.DataFrame, quasi_identifiers: Sequence[str], k: int
) -> tuple[pl.DataFrame, int]:
    """Suppress the rows of every group smaller than ``k``; returns (frame, rows suppressed).

    Every group left has at least ``k`` rows, so the result is k-anonymous or empty.
    """
    import polars as pl

    _require(frame, quasi_identifiers)
    if k < 1:
        raise InvalidInputError(f"k must be at least 1; got {k}.")
    if not quasi_identifiers:
        kept = frame if frame.height >= k else frame.head(0)
        return kept, frame.height - kept.height
    size = pl.len().over(list(quasi_identifiers))
    kept = frame.filter(size >= k)
    return kept, frame.height - kept.height


def _require(frame: pl.DataFrame, columns: Sequence[str], *, kind: str = "") -> None:
    missing = [c for c in columns if c not in frame.schema]
    if missing:
        raise InvalidInputError(
            f"Column(s) {', '.join(missing)} not in the data; its columns are: "
            f"{', '.join(frame.columns[:30])}.",
            columns=missing,
        )
    nested = [c for c in columns if kind and frame.schema[c].is_nested()]
    if nested:
        raise InvalidInputError(
            f"Column(s) {', '.join(nested)} hold lists or structs, which {kind} cannot "
            "change value by value. Suppress them, or flatten them first (a transform that "
            "unnests or explodes them) and anonymize the result.",
            columns=nested,
        )


def apply_anonymization(
    frame: pl.DataFrame, steps: Sequence[AnonymizationStep], *, key: bytes
) -> tuple[pl.DataFrame, AnonymizationRecord]:
    """Apply ``steps`` in order; returns the new frame and the record of what was done."""
    import polars as pl

    if any(s.kind == "pseudonymize" for s in steps) and len(key) < MIN_KEY_BYTES:
        raise InvalidInputError(
            f"Pseudonymization needs a key of at least {MIN_KEY_BYTES} bytes; got {len(key)}. "
            "Use the dataset's key from the key provider."
        )
    done: dict[str, list[str]] = {"masked": [], "pseudonymized": [], "generalized": []}
    suppressed: list[str] = []
    rows_in = frame.height
    enforced: list[tuple[tuple[str, ...], int]] = []
    #: per column a mask or generalization transformed, the share of its values the steps left
    #: whole (a mask's ``keep_last``, a ``keep_first``, a truncation or bins no coarser than
    #: the values themselves)
    whole: dict[str, float] = {}
    for step in steps:
        p = step.params
        if step.kind == "mask":
            _require(frame, p["columns"], kind="mask")
            for c in p["columns"]:
                share = _share_kept_whole(frame, c, p["keep_last"])
                whole[c] = min(share, whole.get(c, share))
            frame = frame.with_columns(
                _mask(pl.col(c), p["keep_last"], p["char"]) for c in p["columns"]
            )
            done["masked"] += p["columns"]
        elif step.kind == "pseudonymize":
            _require(frame, p["columns"], kind="pseudonymize")
            frame = frame.with_columns(
                _pseudonymize(frame.get_column(c), key, p["length"]) for c in p["columns"]
            )
            done["pseudonymized"] += p["columns"]
            for c in p["columns"]:  # keyed hashes: nothing of the values is left
                whole.pop(c, None)
        elif step.kind == "generalize":
            name = p["column"]
            _require(frame, [name], kind="generalize")
            before = frame.get_column(name)
            frame = frame.with_columns(_generalize(frame, p))
            share = _share_generalized_whole(before, frame.get_column(name), p)
            # A later step can only keep what an earlier one left: truncating to the month and
            # then to the day leaves the month's coarseness, not the day's.
            whole[name] = min(share, whole.get(name, share))
            done["generalized"].append(name)
        elif step.kind == "suppress":
            _require(frame, p["columns"])
            frame = frame.drop(p["columns"])
            suppressed += p["columns"]
        elif step.kind == "suppress_rows":
            frame = frame.filter(~pl.sql_expr(p["where"]).fill_null(False))
        else:  # k_anonymity
            enforced.append((tuple(p["quasi_identifiers"]), p["k"]))
            frame, _ = enforce_k_anonymity(frame, enforced[-1][0], p["k"])
    frame, qis, k_result = _final_k(frame, enforced)
    transformed = _kept([*done["masked"], *done["pseudonymized"], *done["generalized"]], suppressed)
    record = AnonymizationRecord(
        steps=tuple(s.to_dict() for s in steps),
        masked=_kept(done["masked"], suppressed),
        pseudonymized=_kept(done["pseudonymized"], suppressed),
        generalized=_kept(done["generalized"], suppressed),
        suppressed_columns=tuple(dict.fromkeys(suppressed)),
        rows_in=rows_in,
        rows_suppressed=rows_in - frame.height,
        quasi_identifiers=qis,
        k=k_result,
        retained=tuple(
            c for c in transformed if c in whole and _still_personal(frame, c, whole[c])
        ),
    )
    return frame, record


def _final_k(
    frame: pl.DataFrame, enforced: Sequence[tuple[tuple[str, ...], int]]
) -> tuple[pl.DataFrame, tuple[str, ...], int | None]:
    """The output with every k-anonymity step still holding, its last quasi-identifiers and
    the k measured on it (None when no step asked for k-anonymity).

    A later step can break what a k-anonymity step enforced (``suppress_rows`` leaving a group
    of 2 where k was 10), so each one is enforced again on the final rows until all hold:
    removing a whole group never makes another group of the same quasi-identifiers smaller.
    Quasi-identifiers a later ``suppress`` dropped are measured without (fewer columns give
    larger groups, so the guarantee still holds for the columns left).
    """
    if not enforced:
        return frame, (), None
    checks = [(tuple(c for c in qis if c in frame.schema), k) for qis, k in enforced]
    while True:
        before = frame.height
        for qis, k in checks:
            if k_anonymity(frame, qis) < k:
                frame, _ = enforce_k_anonymity(frame, qis, k)
        if frame.height == before:
            break
    qis = checks[-1][0]
    return frame, qis, k_anonymity(frame, qis)


def _share_kept_whole(frame: pl.DataFrame, column: str, keep: int) -> float:
    """The share of the non-empty values of ``column`` that a mask keeping the last ``keep``
    characters, or a prefix of ``keep``, leaves mostly readable: at least half their
    characters kept (``*111111111110006`` is still a card number, ``************0006`` is not)."""
    import polars as pl

    length = frame.get_column(column).cast(pl.String).drop_nulls().str.len_chars()
    present = length.filter(length > 0)
    if present.len() == 0:
        return 0.0
    return float((present <= 2 * keep).sum()) / present.len()


def _share_generalized_whole(before: pl.Series, after: pl.Series, p: Mapping[str, Any]) -> float:
    """The share of the non-empty values of a column that a generalization left whole,
    measured on its output, so a step that coarsens nothing keeps the personal-data label
    (``truncate: day`` on a Date is the identity; bins of width 1 on whole numbers name
    each value).

    ``keep_first`` is judged as a mask is (at least half of each value's characters kept). A
    truncation keeps a value whole when its output equals it. A bin keeps a value whole when
    the bin can hold no other value at the column's precision: whole numbers (an integer
    column, or a float one whose values are all whole) and a bin spanning a single one of
    them.
    """
    import polars as pl

    if p["keep_first"] is not None:
        frame = pl.DataFrame([before])
        return _share_kept_whole(frame, before.name, p["keep_first"])
    present = before.is_not_null()
    total = int(present.sum())
    if total == 0:
        return 0.0
    if p["truncate"] is not None:
        return float((present & (before == after).fill_null(False)).sum()) / total
    values = before.filter(present)
    if values.dtype.is_decimal() or values.dtype.is_float():
        values = values.cast(pl.Float64)
        if not bool((values == values.round(0)).all()):
            return 0.0  # fractions: any bin is a range of values
    unsigned = values.dtype.is_unsigned_integer()
    low, high = _bin_bounds(values.cast(pl.Float64), p, floor=0.0 if unsigned else -math.inf)
    # whole numbers in [low, high): one means the bin names the value
    count = high.ceil() - low.ceil()
    return float((count == 1).sum()) / total


def _bin_bounds(
    values: pl.Series, p: Mapping[str, Any], *, floor: float
) -> tuple[pl.Series, pl.Series]:
    """Each value's bin as ``[low, high)``, outer bins reaching to ``floor`` and infinity."""
    import polars as pl

    if p["bin_width"] is not None:
        width = float(p["bin_width"])
        low = (values / width).floor() * width
        return low, low + width
    edges = [float(e) for e in p["bins"]]
    frame = pl.DataFrame({"v": values})
    low_expr: Any = pl.when(pl.col("v") < edges[0]).then(pl.lit(floor))
    high_expr: Any = pl.when(pl.col("v") < edges[0]).then(pl.lit(edges[0]))
    for a, b in itertools.pairwise(edges):
        low_expr = low_expr.when(pl.col("v") < b).then(pl.lit(a))
        high_expr = high_expr.when(pl.col("v") < b).then(pl.lit(b))
    bounds = frame.select(
        low_expr.otherwise(pl.lit(edges[-1])).alias("low"),
        high_expr.otherwise(pl.lit(math.inf)).alias("high"),
    )
    return bounds.get_column("low"), bounds.get_column("high")


_CHECKED_VALUES = 10_000


def _still_personal(frame: pl.DataFrame, column: str, kept_whole: float) -> bool:
    """Whether a transformed column still holds personal data: most of its values were left
    mostly readable (``kept_whole`` at least ``MIN_CONFIDENCE``), or a detector recognises
    any value of its output (a seeded sample of at most ``_CHECKED_VALUES``)."""
    import polars as pl

    from keel.data._classify import MIN_CONFIDENCE
    from keel.data._detectors import DETECTORS

    if kept_whole >= MIN_CONFIDENCE:
        return True
    values = frame.get_column(column).drop_nulls()
    if values.len() > _CHECKED_VALUES:
        values = values.sample(_CHECKED_VALUES, seed=0)
    if values.dtype.is_integer():
        digits = values.cast(pl.String)
        return any(bool(d.detect_integers(digits).any()) for d in DETECTORS if d.digits_only)
    if values.dtype not in (pl.String, pl.Categorical, pl.Enum):
        return False
    text = values.cast(pl.String)
    # ``generalize keep_first`` appends a ``*`` to the prefix it keeps: look past it too.
    texts = (text, text.str.strip_suffix("*"))
    return any(bool(d.detect(t).any()) for t in texts for d in DETECTORS)


def _kept(columns: list[str], suppressed: list[str]) -> tuple[str, ...]:
    return tuple(c for c in dict.fromkeys(columns) if c not in suppressed)


def _mask(col: pl.Expr, keep_last: int, char: str) -> pl.Expr:
    import polars as pl

    text = col.cast(pl.String)
    if keep_last == 0:
        return (
            pl.when(text.is_null())
            .then(None)
            .otherwise(pl.lit(char).repeat_by(text.str.len_chars()).list.join(""))
            .name.keep()
        )
    # Signed arithmetic: the unsigned length minus ``keep_last`` would wrap for a value
    # shorter than ``keep_last`` (an empty string) and ask for billions of mask characters.
    length = text.str.len_chars().cast(pl.Int64)
    hidden = (length - keep_last).clip(lower_bound=0)
    return (pl.lit(char).repeat_by(hidden).list.join("") + text.str.slice(hidden)).name.keep()


def _pseudonymize(column: pl.Series, key: bytes, length: int) -> pl.Series:
    """Pseudonyms of the distinct values, computed once each and joined back."""
    import polars as pl

    text = column.cast(pl.String)
    distinct = text.unique().drop_nulls()
    mapping = {v: pseudonym(v, key, length) for v in distinct.to_list()}
    return text.replace_strict(mapping, default=None, return_dtype=pl.String).alias(column.name)


def _generalize(frame: pl.DataFrame, p: Mapping[str, Any]) -> pl.Expr:
    import polars as pl

    name = p["column"]
    col = pl.col(name)
    dtype = frame.schema[name]
    if p["truncate"] is not None:
        # ``dt.truncate`` works on calendar points only: a Time or Duration has no year or
        # month to truncate to, and Polars would fail with its own traceback.
        if not isinstance(dtype, pl.Date | pl.Datetime):
            raise InvalidInputError(
                f"Column {name} is {dtype}; 'truncate' works on Date and Datetime columns only. "
                "For a time of day or a duration, cast it to a number (e.g. the hour, or "
                "seconds) and generalize it with bin_width or bins, or suppress it.",
                column=name,
                dtype=str(dtype),
            )
        return col.dt.truncate(_TRUNCATE[p["truncate"]])
    if p["keep_first"] is not None:
        text = col.cast(pl.String)
        return (text.str.slice(0, p["keep_first"]) + pl.lit("*")).alias(name)
    if not dtype.is_numeric():
        raise InvalidInputError(f"Column {name} is {dtype}; binning needs a numeric column.")
    if p["bin_width"] is not None:
        width = p["bin_width"]
        low = (col / width).floor() * width
        return (pl.lit("[") + _num(low) + pl.lit(", ") + _num(low + width) + pl.lit(")")).alias(
            name
        )
    edges = list(p["bins"])
    labels = [f"< {edges[0]}"] + [f"[{a}, {b})" for a, b in itertools.pairwise(edges)]
    labels.append(f">= {edges[-1]}")
    chain: Any = pl.when(col.is_null()).then(pl.lit(None, dtype=pl.String))
    for edge, label in zip(edges, labels, strict=False):
        chain = chain.when(col < edge).then(pl.lit(label))
    binned: pl.Expr = chain.otherwise(pl.lit(labels[-1])).alias(name)
    return binned


def _num(expr: pl.Expr) -> pl.Expr:
    """A float that holds a whole number printed without ``.0``."""
    import polars as pl

    return (
        pl.when(expr == expr.round(0))
        .then(expr.cast(pl.Int64).cast(pl.String))
        .otherwise(expr.cast(pl.String))
    )
