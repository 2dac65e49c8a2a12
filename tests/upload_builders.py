"""Small, explicit billing datasets for the uploader's tests (clean: the audit finds no error).

Customers come in chains of parents (C-0000 ← C-0001 ← C-0002 ← C-0003, then a new chain), so
every upload exercises the hierarchy ordering; each customer has one monthly subscription and
`invoices_per_subscription` consecutive invoices with half-open periods.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from fincome_toolkit.client import FincomeClient, pull
from fincome_toolkit.contract import build_payloads
from fincome_toolkit.frames import FIELDS, Dataset, canonical_schema

CENT = Decimal("0.01")


def frame(name: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A canonical frame from dicts (missing fields are null)."""
    schema = canonical_schema(name)
    records = [{column: row.get(column) for column in schema} for row in rows]
    return pl.DataFrame(records, schema=schema, orient="row")


def make_dataset(
    customers: int = 10, *, invoices_per_subscription: int = 3, chain: int = 4
) -> Dataset:
    """A clean dataset: `customers` customers, as many subscriptions, and their invoices."""
    customer_rows, subscription_rows, invoice_rows = [], [], []
    for i in range(customers):
        customer_id, subscription_id = f"C-{i:04d}", f"S-{i:04d}"
        amount = Decimal(f"{100 + i}.{i % 100:02d}")
        customer_rows.append(
            {
                "id": customer_id,
                "name": f"Company {i} & Co <b>",
                "email": f"billing{i}@example.com",
                "country": "FR",
                "zip_code": "75001",
                "root_parent_id": f"C-{i - 1:04d}" if i % chain else None,
                "custom_properties": '{"segment": "smb"}',
                "source_file": "customers.csv",
                "source_line": i + 2,
            }
        )
        subscription_rows.append(
            {
                "id": subscription_id,
                "customer_id": customer_id,
                "plan_id": "pro",
                "status": "active",
                "start_date": dt.date(2024, 1, 1),
                "interval_unit": "month",
                "interval_count": 1,
                "quantity": 1,
                "amount_excluding_tax": amount,
                "currency": "EUR",
                "custom_properties": "{}",
                "source_file": "subscriptions.csv",
                "source_line": i + 2,
            }
        )
        for k in range(invoices_per_subscription):
            start, end = dt.date(2024, 1 + k, 1), dt.date(2024, 2 + k, 1)
            invoice_rows.append(
                {
                    "id": f"I-{i:04d}-{k}",
                    "customer_id": customer_id,
                    "subscription_id": subscription_id,
                    "issue_date": start,
                    "due_date": start + dt.timedelta(days=30),
                    "status": "paid",
                    "type": "subscription",
                    "period_start": start,
                    "period_end": end,
                    "amount_excluding_tax": amount,
                    "tax_amount": (amount * Decimal("0.2")).quantize(CENT),
                    "currency": "EUR",
                    "custom_properties": "{}",
                    "source_file": "invoices.csv",
                    "source_line": len(invoice_rows) + 2,
                }
            )
    return Dataset(
        customers=frame("customers", customer_rows),
        subscriptions=frame("subscriptions", subscription_rows),
        invoices=frame("invoices", invoice_rows),
    )


def with_values(dataset: Dataset, entity: str, record_id: str, **values: Any) -> Dataset:
    """A copy of `dataset` where one record's fields take new values."""
    changed = dataset.frame(entity).with_columns(
        pl.when(pl.col("id") == record_id)
        .then(pl.lit(value, dtype=dataset.frame(entity).schema[name]))
        .otherwise(pl.col(name))
        .alias(name)
        for name, value in values.items()
    )
    frames = dataset.frames() | {entity: changed}
    return Dataset(**frames)


def write_export(dataset: Dataset, directory: Path) -> Path:
    """Write the dataset as customers.csv, subscriptions.csv and invoices.csv (canonical names)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in dataset.frames().items():
        data.select(list(FIELDS[name])).write_csv(directory / f"{name}.csv")
    return directory


# --- reading what the sandbox holds ----------------------------------------------------------


def stored_ids(box, entity: str) -> list[str]:
    """Ids of the records the sandbox stores, in insertion order (duplicates would show)."""
    return [record["id"] for record in box.records(entity)]


def pulled(box) -> Dataset:
    """Everything the sandbox holds, read back over HTTP."""

    async def read() -> Dataset:
        async with FincomeClient(box.contract(), api_key=box.api_key) as client:
            return await pull(client)

    return asyncio.run(read())


def assert_fincome_holds_exactly(box, dataset: Dataset) -> None:
    """What the sandbox stores equals the source, field by field, each record once."""
    back = pulled(box)
    for entity in FIELDS:
        ids = stored_ids(box, entity)
        assert len(ids) == len(set(ids)), f"duplicated {entity}"
        source = dataset.frame(entity).sort("id")
        stored = back.frame(entity).sort("id")
        assert stored.get_column("id").to_list() == source.get_column("id").to_list()
        plain = [name for name in FIELDS[entity] if name != "custom_properties"]
        assert stored.select(plain).equals(source.select(plain)), entity
        assert build_payloads(entity, stored) == build_payloads(entity, source), entity


def settled_stats(box, *, at_least: int = 0, quiet_reads: int = 4) -> dict:
    """The sandbox's counters once it has counted `at_least` requests and stayed quiet.

    The sandbox counts a request just after answering it, so a test that read the counters
    right after its last answer could miss that last one.
    """
    previous, unchanged = box.stats(), 0
    for _ in range(400):  # at most ~20 s on a very busy machine
        time.sleep(0.05)
        current = box.stats()
        unchanged = unchanged + 1 if current == previous else 0
        if unchanged >= quiet_reads and current["requests"] >= at_least:
            return current
        previous = current
    return previous
