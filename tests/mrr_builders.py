"""Hand-built subscriptions and invoices for the metrics, rates, reconcile and chart tests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import polars as pl

from fincome_toolkit import frames
from fincome_toolkit.frames import Dataset

D = dt.date.fromisoformat


def frame(name: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A canonical frame from partial rows: missing fields null, provenance `<name>.csv`, 2..."""
    schema = frames.canonical_schema(name)
    complete = []
    for line, row in enumerate(rows, start=2):
        record = dict.fromkeys(schema.names())
        record |= {frames.SOURCE_FILE: f"{name}.csv", frames.SOURCE_LINE: line}
        record |= {key: _value(value) for key, value in row.items()}
        complete.append(record)
    return pl.DataFrame(complete, schema=schema) if complete else frames.empty_frame(name)


def _value(value: Any) -> Any:
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        return D(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return value


def sub(
    id: str,
    start: str,
    end: str | None = None,
    amount: str = "100",
    *,
    customer: str = "c1",
    unit: str = "month",
    count: int = 1,
    currency: str = "EUR",
    **extra: Any,
) -> dict[str, Any]:
    """A subscription row."""
    return {
        "id": id,
        "customer_id": customer,
        "status": "active",
        "start_date": start,
        "end_date": end,
        "interval_unit": unit,
        "interval_count": count,
        "quantity": 1,
        "amount_excluding_tax": Decimal(amount),
        "currency": currency,
        "custom_properties": "{}",
        **extra,
    }


def inv(
    id: str,
    start: str | None,
    end: str | None,
    amount: str = "100",
    *,
    customer: str = "c1",
    subscription: str | None = "s1",
    type: str = "subscription",
    currency: str = "EUR",
    status: str = "paid",
    **extra: Any,
) -> dict[str, Any]:
    """An invoice row (issued on its period start unless `issue_date` is given)."""
    return {
        "id": id,
        "customer_id": customer,
        "subscription_id": subscription,
        "issue_date": start or "2025-01-01",
        "status": status,
        "type": type,
        "period_start": start,
        "period_end": end,
        "amount_excluding_tax": Decimal(amount),
        "tax_amount": Decimal("0"),
        "currency": currency,
        "custom_properties": "{}",
        **extra,
    }


def dataset(
    subscriptions: list[dict[str, Any]] = (), invoices: list[dict[str, Any]] = ()
) -> Dataset:
    """A Dataset of the given subscription and invoice rows (no customers needed for MRR)."""
    return Dataset(
        subscriptions=frame("subscriptions", list(subscriptions)),
        invoices=frame("invoices", list(invoices)),
    )


def by_month(mrr: pl.DataFrame, customer: str = "c1") -> dict[str, Decimal]:
    """{"YYYY-MM": mrr} of one customer, zero rows included."""
    rows = mrr.filter(pl.col("customer_id") == customer).sort("month")
    return {month.strftime("%Y-%m"): value for month, value in rows.select("month", "mrr").rows()}
