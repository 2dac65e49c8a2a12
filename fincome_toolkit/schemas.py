"""pandera models of the three canonical frames, and their failures turned into audit issues.

pandera (native polars backend) checks what is local to a column or a row: required values present,
ISO codes, e-mail shape, non-negative amounts and counts, `start < end` within a row. Everything
that needs joins, grouping or ordering lives in the rule catalog, in plain polars: references,
period sequences, and duplicate ids too (CUS/SUB/INV-002) - pandera's `unique=True` hashes the ids
in a pass of its own, while the rules share one pass between "id repeated" and "repeated with
conflicting attributes", which matters at 10M invoices.

Every check carries the code of the catalog rule it implements, so a failure becomes an issue row
(`frames`-level id, source file and line, column, value, message) and never an exception dump.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData
from pandera.errors import SchemaErrors

from fincome_toolkit import frames
from fincome_toolkit.codes import ISO_3166_ALPHA2_COUNTRIES, ISO_4217_CURRENCIES
from fincome_toolkit.errors import InputError
from fincome_toolkit.rule_base import ROW, fmt
from fincome_toolkit.rules import RULES_BY_CODE

# Deliberately loose: one "@", no spaces, a dot in the domain. Deliverability is not our business.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"

Money = Annotated[pl.Decimal, 18, 2]  # frames.MONEY, spelt the way pandera reads dtypes
_CURRENCIES = sorted(ISO_4217_CURRENCIES)
_COUNTRIES = sorted(ISO_3166_ALPHA2_COUNTRIES)


def _column_isin(data: PolarsData, allowed: list[str]) -> pl.LazyFrame:
    return data.lazyframe.select(pl.col(data.key).is_in(allowed))


def _before(data: PolarsData, start: str) -> pl.LazyFrame:
    # A column-level check on the end column that reads the start column of the same row: pandera
    # then reports only the end value, instead of serialising whole rows in Python.
    return data.lazyframe.select(pl.col(start) < pl.col(data.key))


class _Provenance(pa.DataFrameModel):
    source_file: str = pa.Field(nullable=True)
    source_line: int = pa.Field(nullable=True)

    class Config:
        strict = False  # the engine's row index rides along
        coerce = False


class CustomerSchema(_Provenance):
    """A customer row: id and name present, ISO country, plausible e-mail."""

    id: str = pa.Field(nullable=False)
    name: str = pa.Field(nullable=False)
    email: str = pa.Field(nullable=True)
    country: str = pa.Field(nullable=True)
    zip_code: str = pa.Field(nullable=True)
    root_parent_id: str = pa.Field(nullable=True)
    custom_properties: str = pa.Field(nullable=True)

    @pa.check("email", name="CUS-004")
    def email_shape(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key).str.contains(EMAIL_PATTERN))

    @pa.check("country", name="CUS-005")
    def iso_country(cls, data: PolarsData) -> pl.LazyFrame:
        return _column_isin(data, _COUNTRIES)


class SubscriptionSchema(_Provenance):
    """A subscription row: required fields, ISO currency, interval >= 1, start < end."""

    id: str = pa.Field(nullable=False)
    customer_id: str = pa.Field(nullable=False)
    plan_id: str = pa.Field(nullable=True)
    status: Annotated[pl.Enum, list(frames.SUBSCRIPTION_STATUSES)] = pa.Field(nullable=True)
    start_date: pl.Date = pa.Field(nullable=False)
    end_date: pl.Date = pa.Field(nullable=True)
    cancelled_at: pl.Date = pa.Field(nullable=True)
    interval_unit: Annotated[pl.Enum, list(frames.INTERVAL_UNITS)] = pa.Field(nullable=False)
    interval_count: int = pa.Field(nullable=False)
    quantity: int = pa.Field(nullable=True)
    amount_excluding_tax: Money = pa.Field(nullable=False)
    currency: str = pa.Field(nullable=False)
    custom_properties: str = pa.Field(nullable=True)

    @pa.check("end_date", name="SUB-005")
    def start_before_end(cls, data: PolarsData) -> pl.LazyFrame:
        return _before(data, "start_date")

    @pa.check("currency", name="SUB-006")
    def iso_currency(cls, data: PolarsData) -> pl.LazyFrame:
        return _column_isin(data, _CURRENCIES)

    @pa.check("interval_count", name="SUB-007")
    def interval_at_least_one(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key) >= 1)

    @pa.check("quantity", name="SUB-013")
    def quantity_not_negative(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key) >= 0)


class InvoiceSchema(_Provenance):
    """An invoice row: required fields, ISO currency, tax >= 0, period start < end."""

    id: str = pa.Field(nullable=False)
    customer_id: str = pa.Field(nullable=False)
    subscription_id: str = pa.Field(nullable=True)
    issue_date: pl.Date = pa.Field(nullable=False)
    due_date: pl.Date = pa.Field(nullable=True)
    status: Annotated[pl.Enum, list(frames.INVOICE_STATUSES)] = pa.Field(nullable=False)
    type: Annotated[pl.Enum, list(frames.INVOICE_TYPES)] = pa.Field(nullable=True)
    period_start: pl.Date = pa.Field(nullable=True)
    period_end: pl.Date = pa.Field(nullable=True)
    amount_excluding_tax: Money = pa.Field(nullable=False)
    tax_amount: Money = pa.Field(nullable=True)
    currency: str = pa.Field(nullable=False)
    custom_properties: str = pa.Field(nullable=True)

    @pa.check("period_end", name="INV-009")
    def period_start_before_end(cls, data: PolarsData) -> pl.LazyFrame:
        return _before(data, "period_start")

    @pa.check("tax_amount", name="INV-018")
    def tax_not_negative(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key) >= 0)

    @pa.check("currency", name="INV-024")
    def iso_currency(cls, data: PolarsData) -> pl.LazyFrame:
        return _column_isin(data, _CURRENCIES)


SCHEMAS: dict[str, type[pa.DataFrameModel]] = {
    "customers": CustomerSchema,
    "subscriptions": SubscriptionSchema,
    "invoices": InvoiceSchema,
}
_PREFIX = {"customers": "CUS", "subscriptions": "SUB", "invoices": "INV"}

ISSUE_SCHEMA: dict[str, pl.DataType] = {
    "rule": pl.String(),
    "severity": pl.String(),
    "frame": pl.String(),
    "record_id": pl.String(),
    "file": pl.String(),
    "line": pl.Int64(),
    "column": pl.String(),
    "value": pl.String(),
    "message": pl.String(),
}


def _value(column: str) -> pl.Expr:
    return pl.col("failure_case").fill_null("").alias(column)


# How each check's failure reads to an analyst, as an expression over the failing record.
_MESSAGES: dict[str, Callable[[str], pl.Expr]] = {
    "required": lambda column: pl.lit(f"required field '{column}' is empty"),
    "CUS-004": lambda column: fmt("email '{}' is not an e-mail address", _value(column)),
    "CUS-005": lambda column: fmt(
        "country '{}' is not an ISO 3166-1 alpha-2 code (e.g. FR, DE, US)", _value(column)
    ),
    "SUB-005": lambda column: fmt(
        "start_date {} is not before end_date {}", pl.col("start_date"), pl.col("end_date")
    ),
    "SUB-006": lambda column: fmt("currency '{}' is not an active ISO 4217 code", _value(column)),
    "SUB-007": lambda column: fmt("interval_count {} is below 1", _value(column)),
    "SUB-013": lambda column: fmt("quantity {} is negative", _value(column)),
    "INV-009": lambda column: fmt(
        "period_start {} is not before period_end {}", pl.col("period_start"), pl.col("period_end")
    ),
    "INV-018": lambda column: fmt("tax_amount {} is negative", _value(column)),
    "INV-024": lambda column: fmt("currency '{}' is not an active ISO 4217 code", _value(column)),
}


def _rule_code(frame: str, check: str) -> str:
    if check == "not_nullable":
        return f"{_PREFIX[frame]}-001"
    return check


def _message_key(check: str) -> str:
    return "required" if check == "not_nullable" else check


def require_canonical(name: str, frame: pl.DataFrame) -> None:
    """Raise InputError when `frame` lacks a canonical column or has the wrong dtype for one."""
    expected = frames.canonical_schema(name)
    missing = [column for column in expected if column not in frame.columns]
    if missing:
        raise InputError(
            f"the {name} frame lacks the column(s) {', '.join(missing)}",
            where=f"{name} frame",
            fix="load the files with load_dataset() (and a column mapping) so every canonical "
            "column exists",
        )
    wrong = [
        f"{column} is {frame.schema[column]}, expected {dtype}"
        for column, dtype in expected.items()
        if frame.schema[column] != dtype
    ]
    if wrong:
        raise InputError(
            f"the {name} frame has wrong column types: {'; '.join(wrong)}",
            where=f"{name} frame",
            fix="build the frames with load_dataset() or cast them to frames.canonical_schema()",
        )


def _failure_cases(name: str, frame: pl.DataFrame) -> pl.DataFrame:
    """pandera's failure cases for one frame (empty when it passes)."""
    try:
        SCHEMAS[name].validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
        # A failure without a row index is about the frame's shape, not a record: the input is
        # unusable rather than dirty. require_canonical() normally catches these first.
        shape_errors = cases.filter(pl.col("index").is_null())
        if shape_errors.height:
            raise InputError(
                f"the {name} frame does not match its schema: "
                f"{shape_errors.select('column', 'check').rows()}",
                where=f"{name} frame",
                fix="cast the frame to frames.canonical_schema()",
            ) from None
        return cases.select("failure_case", "column", "check", pl.col("index").cast(pl.UInt32))
    return pl.DataFrame(
        schema={
            "failure_case": pl.String,
            "column": pl.String,
            "check": pl.String,
            "index": pl.UInt32,
        }
    )


def _issues_for_check(
    name: str, frame: pl.DataFrame, cases: pl.DataFrame, column: str, check: str
) -> pl.DataFrame:
    # the failing rows, fetched by position (a gather, not a join on a 10M-row frame)
    records = frame.select(pl.all().gather(cases["index"])).hstack(
        cases.select("failure_case", "index")
    )
    return records.select(
        rule=pl.lit(_rule_code(name, check)),
        severity=pl.lit(None, pl.String),
        frame=pl.lit(name),
        record_id=pl.col("id"),
        file=pl.col(frames.SOURCE_FILE),
        line=pl.col(frames.SOURCE_LINE),
        column=pl.lit(column),
        value=pl.col("failure_case"),
        message=_MESSAGES[_message_key(check)](column),
        _row=pl.col("index"),
    )


def schema_issues(name: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Issue rows for one frame that already carries the engine's `_row` index column.

    `severity` is left null: the engine sets it from the rule's severity and thresholds.
    """
    cases = _failure_cases(name, frame.drop(ROW))
    parts = [
        _issues_for_check(name, frame, group, column, check)
        for (column, check), group in cases.group_by("column", "check", maintain_order=True)
    ]
    if not parts:
        return pl.DataFrame(schema=ISSUE_SCHEMA | {ROW: pl.UInt32()})
    return pl.concat(parts)


def validate_schemas(dataset: frames.Dataset) -> pl.DataFrame:
    """Validate the three frames with pandera and return one issue row per failing value.

    Columns: `rule, severity, frame, record_id, file, line, column, value, message`; severity is
    each rule's default severity (the audit engine may escalate it with thresholds).
    """
    parts = []
    for name, frame in dataset.frames().items():
        require_canonical(name, frame)
        parts.append(schema_issues(name, frame.with_row_index(ROW)).drop(ROW))
    severities = {code: rule.severity for code, rule in RULES_BY_CODE.items()}
    return pl.concat(parts).with_columns(
        severity=pl.col("rule").replace_strict(severities, return_dtype=pl.String)
    )
