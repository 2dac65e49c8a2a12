"""Parsing the mapped fields of one file: which parser reads each field, the per-file decisions
(day/month order, decimal separator), the parsers run side by side, and custom properties.

Used by `loading.py`. Each field's raw text is released as soon as it is parsed, and only the
unreadable values (row, raw text, reason) are kept from it, so a 10M-row file never holds its
text and its parsed values in full at the same time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import polars as pl

from fincome_toolkit import parsing
from fincome_toolkit._parse_core import constant
from fincome_toolkit.frames import FIELDS, MONEY
from fincome_toolkit.mapping import Constant

Parser = Callable[..., parsing.Parsed]

_TEXT_PARSERS: dict[str, Parser] = {"country": parsing.parse_countries}
_ENUM_PARSERS: dict[tuple[str, str], Parser] = {
    ("invoices", "status"): parsing.parse_invoice_statuses,
    ("subscriptions", "status"): parsing.parse_subscription_statuses,
    ("subscriptions", "interval_unit"): parsing.parse_interval_units,
    ("invoices", "type"): parsing.parse_invoice_types,
}


def parser_for(frame: str, field: str) -> Parser:
    """The parser that reads canonical field `field` of `frame`."""
    dtype = FIELDS[frame][field]
    if (frame, field) in _ENUM_PARSERS:
        return _ENUM_PARSERS[(frame, field)]
    if dtype == pl.Date:
        return parsing.parse_dates
    if dtype == MONEY:
        return parsing.parse_amounts
    if dtype == pl.Int64:
        return parsing.parse_integers
    if field == "currency":
        return parsing.parse_currencies
    return _TEXT_PARSERS.get(field, parsing.parse_ids)


def _column_decision(
    frame: str,
    columns: Mapping[str, pl.Series],
    *,
    dtype: pl.DataType,
    evidence: Callable[..., Any],
    explicit: bool | None,
    options: parsing.ParseOptions,
) -> dict[str, bool | None]:
    """Per column of `dtype`: its own decision, else the one its sibling columns agree on."""
    names = [f for f in columns if FIELDS[frame][f] == dtype]
    if explicit is not None:
        return dict.fromkeys(names, explicit)
    own = {f: evidence(columns[f], options=options).decision() for f in names}
    decided = {d for d in own.values() if d is not None}
    shared = decided.pop() if len(decided) == 1 else None
    return {f: shared if d is None else d for f, d in own.items()}


@dataclass(frozen=True)
class ParsedField:
    """One parsed field: its values, side products, and its unreadable values (row, raw, why)."""

    values: pl.Series
    failed_rows: pl.Series  # row positions (UInt32) of values present but not understood
    failed_raw: pl.Series
    reasons: pl.Series
    notes: tuple[str, ...]
    extra: Mapping[str, pl.Series]


def parse_fields(
    frame: str, columns: dict[str, pl.Series], options: parsing.ParseOptions
) -> dict[str, ParsedField]:
    """Parse every mapped field, in parallel threads (polars releases the GIL while it works).

    Each field's raw column is taken out of `columns` as it is parsed, so that the raw text is
    freed field by field instead of living until the whole frame is parsed (a 10M-row file).
    """
    day_first = _column_decision(
        frame,
        columns,
        dtype=pl.Date(),
        evidence=parsing.date_order_evidence,
        explicit=options.day_first,
        options=options,
    )
    decimal_comma = _column_decision(
        frame,
        columns,
        dtype=MONEY,
        evidence=parsing.amount_decimal_evidence,
        explicit=options.decimal_comma,
        options=options,
    )

    def parse(field: str) -> ParsedField:
        kwargs: dict[str, Any] = {"options": options}
        if field in day_first:
            kwargs["day_first"] = day_first[field]
        if field in decimal_comma:
            kwargs["decimal_comma"] = decimal_comma[field]
        raw = columns.pop(field)
        result = parser_for(frame, field)(raw, **kwargs)
        failed = result.reasons.is_not_null()
        rows = failed.arg_true() if failed.any() else pl.Series(dtype=pl.UInt32)
        return ParsedField(
            values=result.values,
            failed_rows=rows,
            failed_raw=raw.cast(pl.String).gather(rows),
            reasons=result.reasons.gather(rows),
            notes=result.notes,
            extra=result.extra,
        )

    fields = list(columns)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return dict(zip(fields, pool.map(parse, fields), strict=True))


def field_inputs(
    data: pl.DataFrame, sources: Mapping[str, str | Constant], frame: str
) -> dict[str, pl.Series]:
    """The raw text feeding each canonical field (a constant repeated on every row)."""
    inputs = {}
    for field in FIELDS[frame]:
        source = sources.get(field)
        if isinstance(source, Constant):
            value = source.value
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            inputs[field] = constant(text, data.height, name=field)
        elif source is not None:
            inputs[field] = data[source].alias(field)
    return inputs


def custom_properties_column(
    data: pl.DataFrame,
    source: str | Constant | None,
    extra: tuple[str, ...],
    options: parsing.ParseOptions,
) -> pl.Series:
    """A JSON object per row: the mapped column (wrapped when not already an object) and,
    with `extra_columns = "custom_properties"`, every source column no field uses."""
    objects: list[pl.Series] = []
    if isinstance(source, str):
        objects.append(_mapped_objects(data[source], source, options))
    if options.extra_columns == "custom_properties" and extra:
        cleaned = data.select(parsing.clean_text(data[c], options=options).alias(c) for c in extra)
        objects.append(cleaned.select(pl.struct(extra).struct.json_encode()).to_series())
    if not objects:
        return constant("{}", data.height, name="custom_properties")
    if len(objects) == 1:  # "{" + the object's body + "}" is the object itself
        return objects[0]
    parts = pl.DataFrame(
        {f"b{i}": o.str.slice(1, o.str.len_chars() - 2) for i, o in enumerate(objects)}
    )
    joined = pl.concat_str(
        [pl.col(c).replace("", None) for c in parts.columns], separator=",", ignore_nulls=True
    )
    return parts.select(pl.concat_str(pl.lit("{"), joined.fill_null(""), pl.lit("}"))).to_series()


_EMPTY_OBJECT = "{}"


def _mapped_objects(raw: pl.Series, name: str, options: parsing.ParseOptions) -> pl.Series:
    """The mapped column cleaned and made JSON objects. Rows holding exactly `{}` (most rows of
    most exports) stay as they are; only the others are cleaned and checked."""
    text = raw if raw.dtype == pl.String else raw.cast(pl.String)
    if _EMPTY_OBJECT.lower() in (v.lower() for v in options.null_values):
        return _as_objects(parsing.clean_text(text, options=options), name)
    others = text.ne_missing(_EMPTY_OBJECT).arg_true()
    if len(others) == 0:
        return text
    rest = _as_objects(parsing.clean_text(text.gather(others), options=options), name)
    return text.clone().scatter(others, rest)


def _as_objects(values: pl.Series, name: str) -> pl.Series:
    """Each value as a JSON object: itself when it is one already (`{...}` on one line), else
    `{"<name>": value}`. Only the values that need it are encoded (exports are mostly `{}`)."""
    is_object = (
        values.str.starts_with("{")
        & values.str.ends_with("}")
        & ~values.str.contains("\n", literal=True)
    ).fill_null(False)
    others = (~is_object).arg_true()
    if len(others) == 0:
        return values
    wrapped = pl.DataFrame({name: values.gather(others)}).select(
        pl.struct(name).struct.json_encode()
    )
    return values.clone().scatter(others, wrapped.to_series())
