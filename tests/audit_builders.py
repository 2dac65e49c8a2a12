"""Small hand-built canonical datasets for the audit, rules, schema and fixes tests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import polars as pl

from fincome_toolkit import frames

D = dt.date.fromisoformat
AS_OF = dt.date(2025, 6, 30)


def frame(name: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A canonical frame from partial rows: missing fields are null, provenance is filled in
    (`<name>.csv`, lines 2, 3, ... as in a CSV with a header) unless given."""
    schema = frames.canonical_schema(name)
    complete = []
    for line, row in enumerate(rows, start=2):
        record = dict.fromkeys(schema.names())
        record |= {frames.SOURCE_FILE: f"{name}.csv", frames.SOURCE_LINE: line}
        record |= {k: _value(v) for k, v in row.items()}
        complete.append(record)
    return pl.DataFrame(complete, schema=schema) if complete else frames.empty_frame(name)


def _value(value: Any) -> Any:
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        return D(value)
    if isinstance(value, float | int) and not isinstance(value, bool):
        return value
    return value


def customer(id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": id,
        "name": f"Company {id}",
        "email": f"billing@{id.lower()}.example",
        "country": "FR",
        "custom_properties": "{}",
    } | fields


def subscription(id: str, customer_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": id,
        "customer_id": customer_id,
        "plan_id": "pro",
        "status": "active",
        "start_date": "2025-01-01",
        "interval_unit": "month",
        "interval_count": 1,
        "quantity": 1,
        "amount_excluding_tax": Decimal("100.00"),
        "currency": "EUR",
        "custom_properties": "{}",
    } | fields


def invoice(
    id: str,
    subscription_id: str | None,
    customer_id: str,
    start: str | None,
    end: str | None,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "id": id,
        "customer_id": customer_id,
        "subscription_id": subscription_id,
        "issue_date": start or "2025-01-01",
        "status": "paid",
        "type": "subscription",
        "period_start": start,
        "period_end": end,
        "amount_excluding_tax": Decimal("100.00"),
        "tax_amount": Decimal("20.00"),
        "currency": "EUR",
        "custom_properties": "{}",
    } | fields


def monthly_invoices(
    sub: str,
    cust: str,
    first: str,
    months: int,
    *,
    prefix: str = "I",
    inclusive: bool = False,
    **fields: Any,
) -> list[dict[str, Any]]:
    """`months` consecutive monthly invoices of one subscription from `first` (calendar months,
    anchored on `first`'s day)."""
    starts = pl.date_range(D(first), D(first), eager=True)  # one date, offset below
    rows = []
    for k in range(months):
        start = starts.dt.offset_by(f"{k}mo")[0]
        end = starts.dt.offset_by(f"{k + 1}mo")[0]
        if inclusive:
            end = end - dt.timedelta(days=1)
        rows.append(
            invoice(
                f"{prefix}{sub}-{k + 1}", sub, cust, start.isoformat(), end.isoformat(), **fields
            )
        )
    return rows


def replaced(rows: list[dict[str, Any]], index: int, **fields: Any) -> list[dict[str, Any]]:
    """`rows` with row `index` updated."""
    return [row | fields if i == index else row for i, row in enumerate(rows)]


def dataset(
    customers: list[dict[str, Any]] = (),
    subscriptions: list[dict[str, Any]] = (),
    invoices: list[dict[str, Any]] = (),
    parse_issues: pl.DataFrame | None = None,
) -> frames.Dataset:
    """A Dataset from partial rows of each frame."""
    return frames.Dataset(
        customers=frame("customers", list(customers)),
        subscriptions=frame("subscriptions", list(subscriptions)),
        invoices=frame("invoices", list(invoices)),
        parse_issues=parse_issues if parse_issues is not None else frames.empty_parse_issues(),
    )


def clean_dataset() -> frames.Dataset:
    """Two customers, two monthly subscriptions, six months of invoices each: passes every rule
    (as of AS_OF)."""
    return dataset(
        customers=[customer("C1"), customer("C2", name="Globex", email="ap@globex.example")],
        subscriptions=[
            subscription("S1", "C1"),
            subscription("S2", "C2", start_date="2025-01-31", plan_id="team"),
        ],
        invoices=monthly_invoices("S1", "C1", "2025-01-01", 6)
        + monthly_invoices("S2", "C2", "2025-01-31", 5),
    )
