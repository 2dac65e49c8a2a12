"""The canonical frames: the one place that names every field and its polars dtype.

The fields are those of the API contract (assumption A9). Every loaded frame also carries two
provenance columns, `source_file` and `source_line`, so any value can be traced back to the
export it came from. Money is exact: `pl.Decimal(18, 2)` in major units (A10).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

MONEY = pl.Decimal(18, 2)

INVOICE_STATUSES = ("open", "paid", "unpaid")
SUBSCRIPTION_STATUSES = ("active", "trialing", "paused", "cancelled", "ended")
INTERVAL_UNITS = ("day", "week", "month", "year")
INVOICE_TYPES = ("subscription", "one_off")

InvoiceStatus = pl.Enum(INVOICE_STATUSES)
SubscriptionStatus = pl.Enum(SUBSCRIPTION_STATUSES)
IntervalUnit = pl.Enum(INTERVAL_UNITS)
InvoiceType = pl.Enum(INVOICE_TYPES)

# Provenance: where each row came from. `source_line` is the 1-based line of the row in its
# file (CSV/NDJSON text line, spreadsheet row), or the 1-based record index (JSON array, Parquet).
SOURCE_FILE = "source_file"
SOURCE_LINE = "source_line"
PROVENANCE: dict[str, pl.DataType] = {SOURCE_FILE: pl.String(), SOURCE_LINE: pl.Int64()}

CUSTOMER_FIELDS: dict[str, pl.DataType] = {
    "id": pl.String(),
    "name": pl.String(),
    "email": pl.String(),
    "country": pl.String(),  # ISO 3166-1 alpha-2, upper case
    "zip_code": pl.String(),
    "root_parent_id": pl.String(),
    "custom_properties": pl.String(),  # a JSON object as text, "{}" when empty
}

SUBSCRIPTION_FIELDS: dict[str, pl.DataType] = {
    "id": pl.String(),
    "customer_id": pl.String(),
    "plan_id": pl.String(),
    "status": SubscriptionStatus,
    "start_date": pl.Date(),
    "end_date": pl.Date(),  # exclusive; null = open-ended
    "cancelled_at": pl.Date(),
    "interval_unit": IntervalUnit,
    "interval_count": pl.Int64(),
    "quantity": pl.Int64(),
    "amount_excluding_tax": MONEY,  # price per billing interval, after discounts
    "currency": pl.String(),  # ISO 4217, upper case
    "custom_properties": pl.String(),
}

INVOICE_FIELDS: dict[str, pl.DataType] = {
    "id": pl.String(),
    "customer_id": pl.String(),
    "subscription_id": pl.String(),
    "issue_date": pl.Date(),
    "due_date": pl.Date(),
    "status": InvoiceStatus,
    "type": InvoiceType,
    "period_start": pl.Date(),
    "period_end": pl.Date(),  # service period end, exclusive
    "amount_excluding_tax": MONEY,
    "tax_amount": MONEY,
    "currency": pl.String(),
    "custom_properties": pl.String(),
}

FIELDS: dict[str, dict[str, pl.DataType]] = {
    "customers": CUSTOMER_FIELDS,
    "subscriptions": SUBSCRIPTION_FIELDS,
    "invoices": INVOICE_FIELDS,
}
FRAME_NAMES = tuple(FIELDS)  # also the upload order: a record only references earlier frames

# Fields without which a record means nothing to Fincome (seed page and A9).
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "customers": ("id", "name"),
    "subscriptions": (
        "id",
        "customer_id",
        "start_date",
        "interval_unit",
        "interval_count",
        "amount_excluding_tax",
        "currency",
    ),
    "invoices": ("id", "customer_id", "issue_date", "status", "amount_excluding_tax", "currency"),
}

# One row per value that could not be understood while loading; nothing is dropped silently.
PARSE_ISSUE_SCHEMA: dict[str, pl.DataType] = {
    "frame": pl.String(),
    "file": pl.String(),
    "line": pl.Int64(),
    "record_id": pl.String(),
    "column": pl.String(),
    "raw_value": pl.String(),
    "reason": pl.String(),
}


def canonical_schema(frame: str, *, provenance: bool = True) -> pl.Schema:
    """The polars schema of a canonical frame, with the provenance columns by default."""
    fields = dict(FIELDS[frame])
    if provenance:
        fields |= PROVENANCE
    return pl.Schema(fields)


def empty_frame(frame: str) -> pl.DataFrame:
    """An empty canonical frame with the right dtypes."""
    return pl.DataFrame(schema=canonical_schema(frame))


def empty_parse_issues() -> pl.DataFrame:
    """An empty parse-issue frame."""
    return pl.DataFrame(schema=PARSE_ISSUE_SCHEMA)


@dataclass(frozen=True)
class SourceFile:
    """One input file as it was read: enough to cite it in a report and to detect a change."""

    frame: str
    path: Path
    sha256: str
    format: str  # csv, json, ndjson, parquet, xlsx
    rows: int
    encoding: str | None = None
    delimiter: str | None = None


@dataclass(frozen=True)
class Dataset:
    """The three canonical frames of one export, with what could not be parsed and the sources."""

    customers: pl.DataFrame = field(default_factory=lambda: empty_frame("customers"))
    subscriptions: pl.DataFrame = field(default_factory=lambda: empty_frame("subscriptions"))
    invoices: pl.DataFrame = field(default_factory=lambda: empty_frame("invoices"))
    parse_issues: pl.DataFrame = field(default_factory=empty_parse_issues)
    sources: tuple[SourceFile, ...] = ()

    def frame(self, name: str) -> pl.DataFrame:
        """The canonical frame called `name` (customers, subscriptions or invoices)."""
        if name not in FIELDS:
            raise KeyError(f"unknown frame {name!r}; expected one of {', '.join(FIELDS)}")
        return getattr(self, name)

    def frames(self) -> dict[str, pl.DataFrame]:
        """The three canonical frames by name, in upload order."""
        return {name: self.frame(name) for name in FRAME_NAMES}
